/*
 * loom-bench-opencl: what the OpenCL backend costs, in one run.
 *
 *   1. start-up: context, device open, compiling a training step of the
 *      784-64-64-10 MLP and its first run (run the program twice: the
 *      second run shows warm caches);
 *   2. SGEMM GFLOP/s at 256, 512, 1024, 2048 through a loom program on the
 *      device with CLBlast's own parameters, then with the parameters
 *      `loom tune` stored, and OpenBLAS on the host (cblas_sgemm);
 *   3. the cost of one launch inside a replayed program.
 *
 * CLBlast keeps parameters per process and device, so the defaults are
 * measured first, from a context whose cache directory holds no tuning;
 * the start-up runs in a child process.
 *
 * usage: loom-bench-opencl [--device opencl:0] [--sizes 256,512,1024,2048]
 *                          [--reps 5] [--json]
 */
#define _POSIX_C_SOURCE 200809L
#include "loom.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One JSON object on one line of stdout (JSON lines), freed. */
static void print_json(cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    if (s)
        puts(s);
    else
        fprintf(stderr, "loom-bench-opencl: out of memory printing JSON\n");
    cJSON_free(s);
    cJSON_Delete(o);
}

static const char *opt(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name))
            return argv[i + 1];
    return def;
}

static void quiet(void *u, loom_log_level l, const char *m)
{
    (void)u;
    if (l == LOOM_LOG_ERROR)
        fprintf(stderr, "loom: %s\n", m);
}

static loom_ctx *make_ctx(const char *cache_dir)
{
    loom_ctx_opts o;
    loom_ctx_opts_default(&o);
    o.cache_dir = cache_dir;
    o.log = quiet;
    loom_ctx *ctx = NULL;
    if (loom_ctx_create(&o, &ctx) != LOOM_OK)
        return NULL;
    return ctx;
}

static void fill(float *x, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
}

/* ---- 1. start-up ------------------------------------------------------------ */

static int startup(const char *spec, int json)
{
    double t0 = now_s();
    loom_ctx *ctx = make_ctx(NULL);
    if (!ctx)
        return 1;
    double t_ctx = now_s();
    loom_device *dev = NULL;
    loom_state *st = NULL;
    loom_graph *g = NULL;
    loom_program *p = NULL;
    int rc = 1;
    if (loom_device_open(ctx, spec, &dev) != LOOM_OK)
        goto out;
    double t_open = now_s();
    int64_t batch = 32, sx[2] = {batch, 784}, sl[1] = {batch};
    loom_state_create(dev, &st);
    loom_graph_create(ctx, &g);
    loom_tensor h = loom_input(g, "x", LOOM_F32, 2, sx), lab = loom_input(g, "y", LOOM_I32, 1, sl);
    int dims[4] = {784, 64, 64, 10};
    for (int i = 0; i < 3; i++) {
        char n[16];
        int64_t sw[2] = {dims[i], dims[i + 1]}, sb[1] = {dims[i + 1]};
        snprintf(n, sizeof n, "w%d", i);
        loom_tensor w = loom_param(g, n, LOOM_F32, 2, sw, 1);
        snprintf(n, sizeof n, "b%d", i);
        h = loom_add(g, loom_matmul(g, h, w, 0, 0), loom_param(g, n, LOOM_F32, 1, sb, 1));
        if (i < 2)
            h = loom_relu(g, h);
    }
    loom_tensor loss = loom_sparse_cross_entropy(g, h, lab);
    loom_output(g, loss, "loss");
    loom_optimizer opt = loom_optimizer_default(LOOM_OPT_ADAM);
    if (loom_backward(g, loss, NULL, 0) != LOOM_OK || loom_optimize(g, &opt) != LOOM_OK ||
        loom_compile(g, dev, st, NULL, &p) != LOOM_OK)
        goto out;
    double t_compile = now_s();
    float *x = malloc((size_t)batch * 784 * 4);
    int32_t y[32];
    fill(x, (size_t)batch * 784, 7);
    for (int i = 0; i < 32; i++)
        y[i] = i % 10;
    loom_program_set_input(p, "x", x, (size_t)batch * 784 * 4);
    loom_program_set_input(p, "y", y, sizeof y);
    free(x);
    if (loom_program_run(p) != LOOM_OK)
        goto out;
    double t_run = now_s();
    if (json) {
        cJSON *o = cJSON_CreateObject(), *su = cJSON_AddObjectToObject(o, "startup");
        cJSON_AddNumberToObject(su, "ctx_s", t_ctx - t0);
        cJSON_AddNumberToObject(su, "open_s", t_open - t_ctx);
        cJSON_AddNumberToObject(su, "compile_s", t_compile - t_open);
        cJSON_AddNumberToObject(su, "first_run_s", t_run - t_compile);
        cJSON_AddNumberToObject(su, "total_s", t_run - t0);
        print_json(o);
    } else
        printf("start-up     context %.3f s, open %.3f s, compile MLP train step %.3f s, first step %.3f s: "
               "%.3f s in all\n",
               t_ctx - t0, t_open - t_ctx, t_compile - t_open, t_run - t_compile, t_run - t0);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "start-up: %s\n", loom_last_error(ctx));
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
    return rc;
}

/* ---- 2. SGEMM ----------------------------------------------------------------- */

/* Best GFLOP/s of reps runs of an n^3 matmul program (after one warm-up). */
static double loom_gemm(loom_ctx *ctx, const char *spec, int n, int reps)
{
    loom_device *dev = NULL;
    loom_state *st = NULL;
    loom_graph *g = NULL;
    loom_program *p = NULL;
    double best = 0;
    int64_t s[2] = {n, n};
    if (loom_device_open(ctx, spec, &dev) || loom_state_create(dev, &st) || loom_graph_create(ctx, &g))
        goto out;
    loom_output(g, loom_matmul(g, loom_input(g, "a", LOOM_F32, 2, s), loom_input(g, "b", LOOM_F32, 2, s), 0, 0),
                "c");
    if (loom_compile(g, dev, st, NULL, &p))
        goto out;
    size_t bytes = (size_t)n * n * 4;
    float *a = malloc(bytes);
    fill(a, (size_t)n * n, 3);
    loom_program_set_input(p, "a", a, bytes);
    loom_program_set_input(p, "b", a, bytes);
    free(a);
    for (int r = -1; r < reps; r++) {
        double t0 = now_s();
        if (loom_program_run(p))
            goto out;
        double t = now_s() - t0;
        if (r >= 0 && (best == 0 || t < best))
            best = t;
    }
out:
    if (best == 0)
        fprintf(stderr, "gemm %d on %s: %s\n", n, spec, loom_last_error(ctx));
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
    return best > 0 ? 2.0 * n * (double)n * n / best * 1e-9 : 0;
}

static double blas_gemm(int n, int reps)
{
    size_t cnt = (size_t)n * n;
    float *a = malloc(cnt * 4), *c = malloc(cnt * 4);
    fill(a, cnt, 3);
    double best = 0;
    for (int r = -1; r < reps; r++) {
        double t0 = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, a, n, 0.0f, c, n);
        double t = now_s() - t0;
        if (r >= 0 && (best == 0 || t < best))
            best = t;
    }
    free(a);
    free(c);
    return 2.0 * n * (double)n * n / best * 1e-9;
}

/* ---- 3. per-launch cost ------------------------------------------------------- */

/* Wall time per run of a program of `len` chained element-wise nodes on a
 * 256-value tensor (best of reps after a warm-up). */
static double chain_run_s(loom_ctx *ctx, loom_device *dev, int len, int reps, int *launches)
{
    loom_state *st = NULL;
    loom_graph *g = NULL;
    loom_program *p = NULL;
    double best = 0;
    int64_t s[1] = {256};
    if (loom_state_create(dev, &st) || loom_graph_create(ctx, &g))
        goto out;
    loom_tensor x = loom_input(g, "x", LOOM_F32, 1, s), y = x;
    for (int i = 0; i < len; i++)
        y = (i & 1) ? loom_relu(g, y) : loom_scale(g, y, 0.999f);
    loom_output(g, y, "y");
    if (loom_compile(g, dev, st, NULL, &p))
        goto out;
    float v[256];
    fill(v, 256, 1);
    loom_program_set_input(p, "x", v, sizeof v);
    for (int r = -2; r < reps; r++) {
        double t0 = now_s();
        if (loom_program_run(p))
            goto out;
        double t = now_s() - t0;
        if (r >= 0 && (best == 0 || t < best))
            best = t;
    }
    *launches = len;
out:
    if (best == 0)
        fprintf(stderr, "launch chain: %s\n", loom_last_error(ctx));
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    return best;
}

int main(int argc, char **argv)
{
    const char *spec = opt(argc, argv, "--device", "opencl:0");
    int reps = atoi(opt(argc, argv, "--reps", "5"));
    int json = 0;
    for (int i = 1; i < argc; i++)
        json |= !strcmp(argv[i], "--json");
    int sizes[8], ns = 0;
    char list[128];
    snprintf(list, sizeof list, "%s", opt(argc, argv, "--sizes", "256,512,1024,2048"));
    for (char *t = strtok(list, ","); t && ns < 8; t = strtok(NULL, ","))
        sizes[ns++] = atoi(t);
    if (reps < 1 || ns == 0) {
        fprintf(stderr, "usage: loom-bench-opencl [--device SPEC] [--sizes 256,512,...] [--reps N] [--json]\n");
        return 2;
    }

    /* Start-up in a child process, so that nothing of it is warm in this
     * one, and this one's CLBlast still has its defaults. */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
    {
        int rc = startup(spec, json);
        fflush(stdout);
        _exit(rc);
    }
    int wst = 0;
    if (pid < 0 || waitpid(pid, &wst, 0) != pid || !WIFEXITED(wst) || WEXITSTATUS(wst) != 0) {
        fprintf(stderr, "start-up measurement failed\n");
        return 1;
    }

    /* CLBlast's defaults: a context whose cache holds no tuning. */
    char empty[] = "/tmp/loom-bench-XXXXXX";
    if (!mkdtemp(empty)) {
        perror("mkdtemp");
        return 1;
    }
    double gdef[8] = {0}, gtun[8] = {0}, gblas[8] = {0};
    loom_ctx *cdef = make_ctx(empty);
    if (!cdef)
        return 1;
    for (int i = 0; i < ns; i++)
        gdef[i] = loom_gemm(cdef, spec, sizes[i], reps);

    /* loom's tuned parameters: the normal cache. */
    loom_ctx *ctun = make_ctx(NULL);
    loom_device *probe = NULL;
    char tuning[8192] = "";
    int tuned = 0;
    if (ctun && loom_device_open(ctun, spec, &probe) == LOOM_OK) {
        if (loom_device_get_tuning(probe, tuning, sizeof tuning) == LOOM_OK)
            tuned = strstr(tuning, "\"Xgemm\"") || strstr(tuning, "\"XgemmDirect\"");
        loom_device_close(probe);
    }
    if (tuned)
        for (int i = 0; i < ns; i++)
            gtun[i] = loom_gemm(ctun, spec, sizes[i], reps);
    else
        fprintf(stderr, "no stored tuning for %s: run `loom tune --device %s` first\n", spec, spec);
    for (int i = 0; i < ns; i++)
        gblas[i] = blas_gemm(sizes[i], reps);

    /* Per-launch cost: a 400-node chain against a 1-node one. */
    loom_device *dev = NULL;
    double per_launch_us = 0, one = 0, many = 0;
    int l1 = 0, l2 = 0;
    if (loom_device_open(ctun, spec, &dev) == LOOM_OK) {
        one = chain_run_s(ctun, dev, 1, reps * 4, &l1);
        many = chain_run_s(ctun, dev, 401, reps * 4, &l2);
        if (one > 0 && many > 0)
            per_launch_us = (many - one) / (l2 - l1) * 1e6;
        loom_device_close(dev);
    }

    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "device", spec);
        cJSON *arr = cJSON_AddArrayToObject(o, "sgemm_gflops");
        for (int i = 0; i < ns; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "n", sizes[i]);
            /* no stored tuning: no figure, not a zero */
            cJSON_AddItemToObject(e, "tuned", tuned ? cJSON_CreateNumber(gtun[i]) : cJSON_CreateNull());
            cJSON_AddNumberToObject(e, "clblast_default", gdef[i]);
            cJSON_AddNumberToObject(e, "openblas", gblas[i]);
            cJSON_AddItemToArray(arr, e);
        }
        cJSON_AddNumberToObject(o, "launch_us", per_launch_us);
        cJSON_AddNumberToObject(o, "run_1_node_us", one * 1e6);
        cJSON_AddNumberToObject(o, "run_401_nodes_us", many * 1e6);
        print_json(o);
    } else {
        printf("SGEMM GFLOP/s on %s (best of %d), square n x n x n:\n", spec, reps);
        printf("  %6s %12s %16s %10s %14s %14s\n", "n", "loom tuned", "CLBlast default", "OpenBLAS", "tuned/OpenBLAS",
               "default/OpenBLAS");
        for (int i = 0; i < ns; i++)
            printf("  %6d %12.1f %16.1f %10.1f %14.2f %14.2f\n", sizes[i], gtun[i], gdef[i], gblas[i],
                   gtun[i] / gblas[i], gdef[i] / gblas[i]);
        printf("launch       %.2f us per kernel inside a replayed program (1 node: %.1f us per run, 401 nodes: "
               "%.1f us per run)\n",
               per_launch_us, one * 1e6, many * 1e6);
    }
    loom_ctx_destroy(cdef);
    loom_ctx_destroy(ctun);
    rmdir(empty); /* may hold a binary-cache folder; left in /tmp then */
    return 0;
}
