/*
 * loom-vk-bench: figures for the Vulkan backend, measured in one run.
 *
 *   SGEMM GFLOP/s at 256, 512, 1024, 2048 on a device beside OpenBLAS
 *   the cost of one dispatch inside a recorded program
 *   start-up (context, device, compile, first run) cold and with a warm
 *   pipeline cache
 *
 * usage: loom-vk-bench [device-spec] [sizes...]   (default vulkan:0)
 * Uses the public API only, plus OpenBLAS for the reference figure.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "loom.h"

#include <cblas.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fill(float *x, size_t n, unsigned seed)
{
    unsigned s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
    }
}

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)type, (void)ftw;
    if (remove(path) != 0)
        fprintf(stderr, "loom-vk-bench: cannot remove %s: %s\n", path, strerror(errno));
    return 0;
}

static int die(loom_ctx *ctx, const char *what)
{
    fprintf(stderr, "loom-vk-bench: %s: %s\n", what, ctx ? loom_last_error(ctx) : "");
    return 1;
}

/* Repeats until at least `secs` have passed (and at least twice). */
static double time_runs(loom_program *p, double secs, int *runs)
{
    int n = 0;
    double t0 = now(), t;
    do {
        if (loom_program_run(p) != LOOM_OK)
            return -1;
        n++;
        t = now() - t0;
    } while (t < secs || n < 2);
    *runs = n;
    return t / n;
}

static int bench_gemm(loom_ctx *ctx, loom_device *dev, int n)
{
    size_t nn = (size_t)n * (size_t)n;
    float *a = malloc(nn * 4), *b = malloc(nn * 4), *c = malloc(nn * 4), *r = malloc(nn * 4);
    fill(a, nn, 1);
    fill(b, nn, 2);
    loom_graph *g;
    loom_state *st;
    loom_program *p = NULL;
    int64_t sh[2] = {n, n};
    loom_graph_create(ctx, &g);
    loom_tensor ta = loom_input(g, "a", LOOM_F32, 2, sh), tb = loom_input(g, "b", LOOM_F32, 2, sh);
    loom_output(g, loom_matmul(g, ta, tb, 0, 0), "c");
    loom_state_create(dev, &st);
    if (loom_compile(g, dev, st, NULL, &p) != LOOM_OK)
        return die(ctx, "compile sgemm");
    loom_program_set_input(p, "a", a, nn * 4);
    loom_program_set_input(p, "b", b, nn * 4);
    int runs = 0;
    loom_program_run(p); /* first run outside the timing */
    double t = time_runs(p, 1.0, &runs);
    if (t < 0)
        return die(ctx, "run sgemm");
    loom_program_read(p, "c", c, nn * 4);
    double flops = 2.0 * n * (double)n * n;
    /* OpenBLAS on the same data, also warmed up once. */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, r, n);
    int bruns = 0;
    double b0 = now(), bt;
    do {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, r, n);
        bruns++;
        bt = now() - b0;
    } while (bt < 1.0 || bruns < 2);
    bt /= bruns;
    double err = 0;
    for (size_t i = 0; i < nn; i++) {
        double e = c[i] - r[i];
        e = e < 0 ? -e : e;
        err = e > err ? e : err;
    }
    printf("sgemm %5d  %-10s %8.2f GFLOP/s (%3d runs)   openblas %8.2f GFLOP/s   ratio %.3f   max |diff| %.2g\n", n,
           loom_device_get(dev)->spec, flops / t * 1e-9, runs, flops / bt * 1e-9, bt / t, err);
    loom_program_destroy(p);
    loom_state_destroy(st);
    loom_graph_destroy(g);
    free(a), free(b), free(c), free(r);
    return 0;
}

/* A chain of k tiny dependent ops against a chain of 1: the difference per
 * op is the cost of a dispatch (and its barrier) inside one recording. */
static double chain_time(loom_ctx *ctx, loom_device *dev, int k)
{
    loom_graph *g;
    loom_state *st;
    loom_program *p = NULL;
    int64_t sh[1] = {64};
    loom_graph_create(ctx, &g);
    loom_tensor x = loom_input(g, "x", LOOM_F32, 1, sh);
    for (int i = 0; i < k; i++)
        x = loom_scale(g, x, 1.0001f);
    loom_output(g, x, "y");
    loom_state_create(dev, &st);
    if (loom_compile(g, dev, st, NULL, &p) != LOOM_OK) {
        die(ctx, "compile chain");
        return -1;
    }
    float in[64] = {0};
    loom_program_set_input(p, "x", in, sizeof in);
    loom_program_run(p);
    int runs;
    double t = time_runs(p, 0.5, &runs);
    loom_program_destroy(p);
    loom_state_destroy(st);
    loom_graph_destroy(g);
    return t;
}

/* The 784-64-64-10 MLP training step (Adam) at batch n, in dev's context. */
static loom_program *mlp_step(loom_ctx *ctx, loom_device *dev, int n, loom_graph **gout, loom_state **sout)
{
    loom_graph *g;
    loom_graph_create(ctx, &g);
    int64_t xs[2] = {n, 784}, ls[1] = {n};
    int64_t ws[3][2] = {{784, 64}, {64, 64}, {64, 10}};
    loom_tensor h = loom_input(g, "x", LOOM_F32, 2, xs), lab = loom_input(g, "labels", LOOM_I32, 1, ls);
    loom_state *st;
    loom_state_create(dev, &st);
    for (int l = 0; l < 3; l++) {
        char wn[8], bn[8];
        snprintf(wn, sizeof wn, "w%d", l);
        snprintf(bn, sizeof bn, "b%d", l);
        int64_t bs[1] = {ws[l][1]};
        size_t nw = (size_t)(ws[l][0] * ws[l][1]);
        float *w = malloc(nw * 4);
        fill(w, nw, (unsigned)l + 10);
        for (size_t i = 0; i < nw; i++)
            w[i] *= 0.1f;
        loom_state_write(st, wn, LOOM_F32, 2, ws[l], w);
        free(w);
        loom_tensor z = loom_add(g, loom_matmul(g, h, loom_param(g, wn, LOOM_F32, 2, ws[l], 1), 0, 0),
                                 loom_param(g, bn, LOOM_F32, 1, bs, 1));
        h = l < 2 ? loom_relu(g, z) : z;
    }
    loom_tensor loss = loom_sparse_cross_entropy(g, h, lab);
    loom_output(g, loss, "loss");
    loom_backward(g, loss, NULL, 0);
    loom_optimizer opt = loom_optimizer_default(LOOM_OPT_ADAM);
    loom_optimize(g, &opt);
    loom_program *p = NULL;
    if (loom_compile(g, dev, st, NULL, &p) != LOOM_OK) {
        die(ctx, "compile mlp");
        return NULL;
    }
    float *xv = calloc((size_t)n * 784, 4);
    int32_t *lv = calloc((size_t)n, 4);
    fill(xv, (size_t)n * 784, 3);
    for (int i = 0; i < n; i++)
        lv[i] = i % 10;
    loom_program_set_input(p, "x", xv, (size_t)n * 784 * 4);
    loom_program_set_input(p, "labels", lv, (size_t)n * 4);
    free(xv);
    free(lv);
    *gout = g;
    *sout = st;
    return p;
}

/* Context + device + compile of the MLP training step + first run. */
static double startup(const char *spec, const char *cache_dir)
{
    double t0 = now();
    loom_ctx_opts o;
    loom_ctx_opts_default(&o);
    o.cache_dir = cache_dir;
    o.validation = 0;
    loom_ctx *ctx;
    if (loom_ctx_create(&o, &ctx) != LOOM_OK)
        return -1;
    loom_device *dev;
    if (loom_device_open(ctx, spec, &dev) != LOOM_OK) {
        die(ctx, "open");
        return -1;
    }
    loom_graph *g;
    loom_state *st;
    loom_program *p = mlp_step(ctx, dev, 32, &g, &st);
    if (!p || loom_program_run(p) != LOOM_OK) {
        die(ctx, "run mlp");
        return -1;
    }
    double t = now() - t0;
    loom_program_destroy(p);
    loom_state_destroy(st);
    loom_graph_destroy(g);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
    return t;
}

/* Training samples per second of the MLP step at batch n. */
static double train_rate(loom_ctx *ctx, loom_device *dev, int n, int *nodes)
{
    loom_graph *g;
    loom_state *st;
    loom_program *p = mlp_step(ctx, dev, n, &g, &st);
    if (!p)
        return -1;
    loom_program_run(p);
    int runs;
    double t = time_runs(p, 1.0, &runs);
    *nodes = loom_graph_node_count(g);
    loom_program_destroy(p);
    loom_state_destroy(st);
    loom_graph_destroy(g);
    return t > 0 ? n / t : -1;
}

int main(int argc, char **argv)
{
    const char *spec = argc > 1 ? argv[1] : "vulkan:0";
    int sizes[16] = {256, 512, 1024, 2048}, nsizes = 4;
    if (argc > 2) {
        nsizes = 0;
        for (int i = 2; i < argc && nsizes < 16; i++)
            sizes[nsizes++] = atoi(argv[i]);
    }
    loom_ctx_opts o;
    loom_ctx_opts_default(&o);
    o.validation = 0;
    loom_ctx *ctx;
    if (loom_ctx_create(&o, &ctx) != LOOM_OK)
        return 1;
    loom_device *dev;
    if (loom_device_open(ctx, spec, &dev) != LOOM_OK)
        return die(ctx, "open");
    printf("device %s: %s (%s)\n", spec, loom_device_get(dev)->name, loom_device_get(dev)->driver);
    for (int i = 0; i < nsizes; i++)
        if (bench_gemm(ctx, dev, sizes[i]))
            return 1;
    double t1 = chain_time(ctx, dev, 1), t201 = chain_time(ctx, dev, 201);
    if (t1 < 0 || t201 < 0)
        return 1;
    printf("dispatch cost inside one recording: %.1f us per dependent op (run of 1 op: %.1f us, of 201: %.1f us)\n",
           (t201 - t1) / 200 * 1e6, t1 * 1e6, t201 * 1e6);
    loom_device *cpu;
    if (loom_device_open(ctx, "cpu", &cpu) != LOOM_OK)
        return die(ctx, "open cpu");
    for (int b = 32; b <= 256; b *= 8) {
        int nodes = 0;
        double r = train_rate(ctx, dev, b, &nodes), rc = train_rate(ctx, cpu, b, &nodes);
        printf("MLP 784-64-64-10 Adam training step, batch %3d: %s %9.0f samples/s   cpu %9.0f samples/s  (%d graph nodes)\n",
               b, spec, r, rc, nodes);
    }
    loom_device_close(cpu);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);

    char dir[] = "/tmp/loom-vk-bench-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    double cold = startup(spec, dir), warm = startup(spec, dir);
    printf("start-up to the first training step (ctx, device, compile, run): cold cache %.1f ms, warm cache %.1f ms\n",
           cold * 1e3, warm * 1e3);
    /* the cache folder, deepest first, without a shell */
    if (nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "loom-vk-bench: cannot remove %s: %s\n", dir, strerror(errno));
    return 0;
}
