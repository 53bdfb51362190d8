/* loom bench: GEMM, bandwidth, dispatch, training, inference and start-up
 * on every device, beside the references measured in the same run, with
 * every result checked against the CPU device. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "bench.h"

#include <cblas.h> /* the OpenBLAS reference, timed beside the devices */
#include <cjson/cJSON.h>
#include <dlfcn.h>
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median, min and max of n samples (sorted in place); p99 if asked. */
static void stats(double *v, int n, double *med, double *mn, double *mx, double *p99)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    *med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    *mn = v[0];
    *mx = v[n - 1];
    if (p99)
        *p99 = v[(int)ceil(0.99 * n) - 1];
}

static bench_fig *add_fig(bench_run *r, const char *dev, const char *suite, const char *name, const char *unit,
                          int hib)
{
    if (r->nfigs == BENCH_MAX_FIGS)
        return NULL;
    bench_fig *f = &r->figs[r->nfigs++];
    memset(f, 0, sizeof *f);
    snprintf(f->device, sizeof f->device, "%s", dev);
    snprintf(f->suite, sizeof f->suite, "%s", suite);
    snprintf(f->name, sizeof f->name, "%s", name);
    snprintf(f->unit, sizeof f->unit, "%s", unit);
    f->hib = hib;
    f->correct = 1;
    f->ref_median = NAN;
    return f;
}

/* Samples are turned into the figure: rates (higher is better) from times
 * when `work` > 0 (figure = work / time), else the times themselves. */
static void set_fig(bench_fig *f, double *times, int n, double work, double scale)
{
    double med, mn, mx;
    stats(times, n, &med, &mn, &mx, NULL);
    if (work > 0) {
        f->median = work / med * scale;
        f->min = work / mx * scale;
        f->max = work / mn * scale;
    } else {
        f->median = med * scale;
        f->min = mn * scale;
        f->max = mx * scale;
    }
    f->runs = n;
}

typedef bench_device devrun;

bench_fig *bench_add_fig(bench_run *r, const char *dev, const char *suite, const char *name, const char *unit, int hib)
{
    return add_fig(r, dev, suite, name, unit, hib);
}

void bench_set_fig(bench_fig *f, double *times, int n, double work, double scale)
{
    set_fig(f, times, n, work, scale);
}

double bench_now_s(void)
{
    return now_s();
}

static void fill(float *x, size_t n, uint32_t seed)
{
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
    }
}

/* A fresh folder <TMPDIR or /tmp>/<stem>-XXXXXX; -1 with a message. */
static int bench_mkdtemp(char *buf, size_t n, const char *stem)
{
    const char *base = getenv("TMPDIR");
    if (!base || !base[0])
        base = "/tmp";
    int k = snprintf(buf, n, "%s/%s-XXXXXX", base, stem);
    if (k < 0 || (size_t)k >= n || !mkdtemp(buf)) {
        fprintf(stderr, "bench: cannot create a temporary folder %s/%s-XXXXXX: %s\n", base, stem,
                k >= 0 && (size_t)k < n ? strerror(errno) : "path too long");
        return -1;
    }
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)type, (void)ftw;
    if (remove(path) != 0)
        fprintf(stderr, "bench: cannot remove %s: %s\n", path, strerror(errno));
    return 0;
}

/* Removes a folder this run made, deepest first, without a shell: the
 * path is used as it is, whatever characters it holds. */
static void bench_rmtree(const char *dir)
{
    if (nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "bench: cannot remove %s: %s\n", dir, strerror(errno));
}

/* ---- gemm --------------------------------------------------------------- */

typedef struct gemm_shape {
    int m, n, k, ta, tb;
    const char *name;
    loom_dtype dt;             /* operands and result; f32 accumulation */
} gemm_shape;

static const gemm_shape gemm_shapes[] = {
    {256, 256, 256, 0, 0, "sgemm 256", LOOM_F32},
    {512, 512, 512, 0, 0, "sgemm 512", LOOM_F32},
    {1024, 1024, 1024, 0, 0, "sgemm 1024", LOOM_F32},
    {2048, 2048, 2048, 0, 0, "sgemm 2048", LOOM_F32},
    /* the MLP's backward at batch 256: dW0 = x^T dH, dX = dH W0^T */
    {784, 64, 256, 1, 0, "sgemm 784x64x256 (x^T dH)", LOOM_F32},
    {256, 784, 64, 0, 1, "sgemm 256x784x64 (dH W^T)", LOOM_F32},
    /* half-precision storage: beside OpenBLAS on the rounded values */
    {512, 512, 512, 0, 0, "fp16 gemm 512", LOOM_F16},
    {1024, 1024, 1024, 0, 0, "fp16 gemm 1024", LOOM_F16},
    {512, 512, 512, 0, 0, "bf16 gemm 512", LOOM_BF16},
    {1024, 1024, 1024, 0, 0, "bf16 gemm 1024", LOOM_BF16},
    /* int8: loom_qmatmul, i32 accumulation, dequantized f32 out (GOP/s) */
    {512, 512, 512, 0, 0, "int8 gemm 512", LOOM_I8},
    {1024, 1024, 1024, 0, 0, "int8 gemm 1024", LOOM_I8},
    {256, 128, 3136, 0, 0, "int8 gemm 256x128x3136 (CNN dense)", LOOM_I8},
};

/* OpenBLAS's bf16 GEMM where the library has it (Debian 12's is built
 * without): found at run time, never a link dependency. */
typedef void (*sbgemm_fn)(int order, int ta, int tb, int m, int n, int k, float alpha, const uint16_t *a, int lda,
                          const uint16_t *b, int ldb, float beta, float *c, int ldc);

static sbgemm_fn find_sbgemm(void)
{
    void *h = dlopen(NULL, RTLD_NOW);
    return h ? (sbgemm_fn)(uintptr_t)dlsym(h, "cblas_sbgemm") : NULL;
}

static loom_status run_gemm(devrun *d, const gemm_shape *s, int reps, const float *a, const float *b,
                            const float *ref, bench_run *r, double ref_gflops, const char *ref_name)
{
    size_t es = loom_dtype_size(s->dt), na = (size_t)s->m * s->k, nb = (size_t)s->k * s->n;
    void *ha = malloc(na * es), *hb = malloc(nb * es), *hc = malloc((size_t)s->m * s->n * es);
    loom_graph *g = NULL;
    loom_state *st = NULL;
    loom_program *p = NULL;
    float *c = malloc((size_t)s->m * (size_t)s->n * sizeof *c);
    double *t = malloc((size_t)reps * sizeof *t);
    loom_status e = c && t && ha && hb && hc ? LOOM_OK : LOOM_E_OOM;
    if (e == LOOM_OK)
        e = loom_convert(s->dt, ha, LOOM_F32, a, na);
    if (e == LOOM_OK)
        e = loom_convert(s->dt, hb, LOOM_F32, b, nb);
    if (e == LOOM_OK)
        e = loom_graph_create(d->ctx, &g);
    if (e == LOOM_OK)
        e = loom_state_create(d->dev, &st);
    if (e == LOOM_OK) {
        int64_t sa[2] = {s->ta ? s->k : s->m, s->ta ? s->m : s->k}, sb[2] = {s->tb ? s->n : s->k, s->tb ? s->k : s->n};
        loom_output(g, loom_matmul(g, loom_input(g, "a", s->dt, 2, sa), loom_input(g, "b", s->dt, 2, sb), s->ta, s->tb),
                    "c");
        e = loom_compile(g, d->dev, st, NULL, &p);
    }
    if (e == LOOM_OK)
        e = loom_program_set_input(p, "a", ha, na * es);
    if (e == LOOM_OK)
        e = loom_program_set_input(p, "b", hb, nb * es);
    if (e == LOOM_OK)
        e = loom_program_run(p); /* warm-up */
    for (int i = 0; i < reps && e == LOOM_OK; i++) {
        double t0 = now_s();
        e = loom_program_run(p);
        t[i] = now_s() - t0;
    }
    if (e == LOOM_OK)
        e = loom_program_read(p, "c", hc, (size_t)s->m * s->n * es);
    if (e == LOOM_OK)
        e = loom_convert(LOOM_F32, c, s->dt, hc, (size_t)s->m * s->n);
    if (e == LOOM_OK) {
        bench_fig *f = add_fig(r, d->spec, "gemm", s->name, "GFLOP/s", 1);
        if (f) {
            set_fig(f, t, reps, 2.0 * s->m * s->n * (double)s->k, 1e-9);
            if (d->corrupt)
                c[7] += 1.0f;
            double worst = 0, scale = 0;
            for (size_t i = 0; i < (size_t)s->m * s->n; i++) {
                double dd = fabs((double)c[i] - ref[i]);
                worst = dd > worst ? dd : worst;
                scale = fabs(ref[i]) > scale ? fabs(ref[i]) : scale;
            }
            /* the products accumulate in f32 everywhere: a half result
             * differs from the f32 reference by its own rounding */
            double eps = s->dt == LOOM_F16 ? 1.0 / 1024 : s->dt == LOOM_BF16 ? 1.0 / 128 : 0;
            f->correct = worst <= (1e-4 * sqrt((double)s->k / 64.0 + 1) + eps) * (scale + 1);
            snprintf(f->ref_name, sizeof f->ref_name, "%s", ref_name);
            f->ref_median = ref_gflops;
        }
    }
    loom_program_destroy(p);
    loom_state_destroy(st);
    loom_graph_destroy(g);
    free(c);
    free(t);
    free(ha);
    free(hb);
    free(hc);
    return e;
}

/* int8: a [M, K] and w [N, K] of whole numbers in [-127, 127] (a and b's
 * values, rounded), bias 0 and multipliers 1, so the f32 output is the
 * integer product itself: exact against OpenBLAS's sgemm of the same
 * values (every partial sum below 2^24). */
static loom_status run_qgemm(devrun *d, const gemm_shape *s, int reps, const float *a, const float *b,
                             const float *ref, bench_run *r, double ref_gflops, const char *ref_name)
{
    size_t na = (size_t)s->m * s->k, nb = (size_t)s->k * s->n, nc = (size_t)s->m * s->n;
    int8_t *ha = malloc(na), *hw = malloc(nb);
    int32_t *bias = calloc((size_t)s->n, sizeof *bias);
    float *mult = malloc((size_t)s->n * sizeof *mult), *c = malloc(nc * sizeof *c);
    double *t = malloc((size_t)reps * sizeof *t);
    loom_graph *g = NULL;
    loom_state *st = NULL;
    loom_program *p = NULL;
    loom_status e = ha && hw && bias && mult && c && t ? LOOM_OK : LOOM_E_OOM;
    for (size_t i = 0; e == LOOM_OK && i < na; i++)
        ha[i] = (int8_t)a[i];
    /* w's row j is b's column j */
    for (int64_t k = 0; e == LOOM_OK && k < s->k; k++)
        for (int64_t j = 0; j < s->n; j++)
            hw[j * s->k + k] = (int8_t)b[k * s->n + j];
    for (int64_t j = 0; e == LOOM_OK && j < s->n; j++)
        mult[j] = 1.0f;
    if (e == LOOM_OK)
        e = loom_graph_create(d->ctx, &g);
    if (e == LOOM_OK)
        e = loom_state_create(d->dev, &st);
    if (e == LOOM_OK) {
        int64_t sa[2] = {s->m, s->k}, sw[2] = {s->n, s->k}, sn[1] = {s->n};
        loom_tensor y = loom_qmatmul(g, loom_input(g, "a", LOOM_I8, 2, sa), loom_input(g, "w", LOOM_I8, 2, sw),
                                     loom_input(g, "bias", LOOM_I32, 1, sn), loom_input(g, "mult", LOOM_F32, 1, sn),
                                     NULL);
        loom_output(g, y, "c");
        e = loom_compile(g, d->dev, st, NULL, &p);
    }
    if (e == LOOM_OK)
        e = loom_program_set_input(p, "a", ha, na);
    if (e == LOOM_OK)
        e = loom_program_set_input(p, "w", hw, nb);
    if (e == LOOM_OK)
        e = loom_program_set_input(p, "bias", bias, (size_t)s->n * 4);
    if (e == LOOM_OK)
        e = loom_program_set_input(p, "mult", mult, (size_t)s->n * 4);
    if (e == LOOM_OK)
        e = loom_program_run(p); /* warm-up */
    for (int i = 0; i < reps && e == LOOM_OK; i++) {
        double t0 = now_s();
        e = loom_program_run(p);
        t[i] = now_s() - t0;
    }
    if (e == LOOM_OK)
        e = loom_program_read(p, "c", c, nc * sizeof *c);
    if (e == LOOM_OK) {
        bench_fig *f = add_fig(r, d->spec, "gemm", s->name, "GOP/s", 1);
        if (f) {
            set_fig(f, t, reps, 2.0 * s->m * s->n * (double)s->k, 1e-9);
            if (d->corrupt)
                c[7] += 1.0f;
            size_t bad = 0;
            for (size_t i = 0; i < nc; i++)
                bad += c[i] != ref[i];
            f->correct = bad == 0;
            snprintf(f->ref_name, sizeof f->ref_name, "%s sgemm", ref_name);
            f->ref_median = ref_gflops;
        }
    }
    loom_program_destroy(p);
    loom_state_destroy(st);
    loom_graph_destroy(g);
    free(ha);
    free(hw);
    free(bias);
    free(mult);
    free(c);
    free(t);
    return e;
}

static void suite_gemm(devrun *devs, int ndev, int quick, bench_run *r, int with_ref)
{
    int nshapes = (int)(sizeof gemm_shapes / sizeof gemm_shapes[0]);
    for (int si = 0; si < nshapes; si++) {
        const gemm_shape *s = &gemm_shapes[si];
        if (quick && s->m * (double)s->n * s->k > 600.0 * 600 * 600)
            continue;
        int reps = quick ? 3 : (s->m >= 1024 ? 5 : 9);
        size_t na = (size_t)s->m * s->k, nb = (size_t)s->k * s->n, nc = (size_t)s->m * s->n;
        float *a = malloc(na * 4), *b = malloc(nb * 4), *ref = malloc(nc * 4);
        double *t = malloc((size_t)reps * sizeof *t);
        if (!a || !b || !ref || !t) {
            free(a), free(b), free(ref), free(t);
            return;
        }
        fill(a, na, 1);
        fill(b, nb, 2);
        /* int8: whole numbers in [-127, 127] */
        for (size_t i = 0; s->dt == LOOM_I8 && i < (na > nb ? na : nb); i++) {
            if (i < na)
                a[i] = nearbyintf(a[i] * 254.0f);
            if (i < nb)
                b[i] = nearbyintf(b[i] * 254.0f);
        }
        /* half precision: every side sees the values rounded to the dtype */
        if (s->dt == LOOM_F16 || s->dt == LOOM_BF16) {
            uint16_t *h = malloc((na > nb ? na : nb) * 2);
            if (h) {
                loom_convert(s->dt, h, LOOM_F32, a, na);
                loom_convert(LOOM_F32, a, s->dt, h, na);
                loom_convert(s->dt, h, LOOM_F32, b, nb);
                loom_convert(LOOM_F32, b, s->dt, h, nb);
            }
            free(h);
        }
        /* the reference, timed the same way: OpenBLAS sgemm on the (rounded)
         * values, or its sbgemm on the bf16 ones where it has one */
        int lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
        sbgemm_fn sb = s->dt == LOOM_BF16 ? find_sbgemm() : NULL;
        uint16_t *a16 = sb ? malloc(na * 2) : NULL, *b16 = sb ? malloc(nb * 2) : NULL;
        if (sb && a16 && b16) {
            loom_convert(LOOM_BF16, a16, LOOM_F32, a, na);
            loom_convert(LOOM_BF16, b16, LOOM_F32, b, nb);
        } else {
            sb = NULL;
        }
        const char *ref_name = sb ? "OpenBLAS sbgemm" : "OpenBLAS";
        for (int i = -1; i < reps; i++) {
            double t0 = now_s();
            if (sb)
                sb(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans, s->m, s->n,
                   s->k, 1, a16, lda, b16, ldb, 0, ref, s->n);
            else
                cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans, s->m,
                            s->n, s->k, 1, a, lda, b, ldb, 0, ref, s->n);
            if (i >= 0)
                t[i] = now_s() - t0;
        }
        free(a16);
        free(b16);
        bench_fig *rf = with_ref ? add_fig(r, "openblas", "gemm", s->name, s->dt == LOOM_I8 ? "GOP/s" : "GFLOP/s", 1) : NULL;
        if (rf)
            set_fig(rf, t, reps, 2.0 * s->m * s->n * (double)s->k, 1e-9);
        double refg = rf ? rf->median : NAN;
        for (int d = 0; d < ndev; d++) {
            fprintf(stderr, "bench: gemm %s on %s\n", s->name, devs[d].spec);
            loom_status e = s->dt == LOOM_I8 ? run_qgemm(&devs[d], s, reps, a, b, ref, r, refg, ref_name)
                                             : run_gemm(&devs[d], s, reps, a, b, ref, r, refg, ref_name);
            if (e != LOOM_OK)
                fprintf(stderr, "bench: %s on %s failed: %s\n", s->name, devs[d].spec, loom_last_error(devs[d].ctx));
        }
        free(a), free(b), free(ref), free(t);
    }
}

/* ---- bandwidth ---------------------------------------------------------- */

static void suite_bandwidth(devrun *devs, int ndev, int quick, bench_run *r)
{
    int64_t n = quick ? (1 << 20) : (1 << 24);
    int reps = quick ? 3 : 9;
    float *x = malloc((size_t)n * 4), *y = malloc((size_t)n * 4), *o = malloc((size_t)n * 4);
    double *t = malloc((size_t)reps * sizeof *t);
    if (!x || !y || !o || !t)
        goto out;
    fill(x, (size_t)n, 3);
    fill(y, (size_t)n, 4);
    char name[64];
    snprintf(name, sizeof name, "copy %lld MiB", (long long)(n * 4 >> 20));
    memcpy(o, x, (size_t)n * 4); /* first touch of o's pages is not bandwidth */
    for (int i = 0; i < reps; i++) {
        double t0 = now_s();
        memcpy(o, x, (size_t)n * 4);
        t[i] = now_s() - t0;
    }
    bench_fig *mf = add_fig(r, "memcpy", "bandwidth", name, "GB/s", 1);
    if (mf)
        set_fig(mf, t, reps, 8.0 * (double)n, 1e-9);
    for (int d = 0; d < ndev; d++) {
        for (int kind = 0; kind < 2; kind++) {
            loom_graph *g = NULL;
            loom_state *st = NULL;
            loom_program *p = NULL;
            devrun *dv = &devs[d];
            loom_status e = loom_graph_create(dv->ctx, &g);
            if (e == LOOM_OK)
                e = loom_state_create(dv->dev, &st);
            int64_t s1[1] = {n};
            if (e == LOOM_OK) {
                loom_tensor xt = loom_input(g, "x", LOOM_F32, 1, s1);
                loom_tensor out = kind == 0 ? loom_scale(g, xt, 1.0f)
                                            : loom_add(g, loom_scale(g, xt, 0.5f), loom_input(g, "y", LOOM_F32, 1, s1));
                loom_output(g, out, "o");
                e = loom_compile(g, dv->dev, st, NULL, &p);
            }
            if (e == LOOM_OK)
                e = loom_program_set_input(p, "x", x, (size_t)n * 4);
            if (e == LOOM_OK && kind)
                e = loom_program_set_input(p, "y", y, (size_t)n * 4);
            if (e == LOOM_OK)
                e = loom_program_run(p);
            for (int i = 0; i < reps && e == LOOM_OK; i++) {
                double t0 = now_s();
                e = loom_program_run(p);
                t[i] = now_s() - t0;
            }
            if (e == LOOM_OK)
                e = loom_program_read(p, "o", o, (size_t)n * 4);
            if (e == LOOM_OK) {
                snprintf(name, sizeof name, "%s %lld MiB", kind ? "axpy" : "copy", (long long)(n * 4 >> 20));
                bench_fig *f = add_fig(r, dv->spec, "bandwidth", name, "GB/s", 1);
                if (f) {
                    /* copy reads and writes n floats; axpy reads two, writes one
                     * (our axpy is two dispatches: its figure is per byte moved
                     * by the op, not per dispatch) */
                    set_fig(f, t, reps, (kind ? 12.0 : 8.0) * (double)n, 1e-9);
                    if (dv->corrupt)
                        o[3] += 1;
                    int ok = 1;
                    for (int64_t i = 0; i < n && ok; i++)
                        ok = fabsf(o[i] - (kind ? 0.5f * x[i] + y[i] : x[i])) <= 1e-6f;
                    f->correct = ok;
                    if (!kind && mf) {
                        snprintf(f->ref_name, sizeof f->ref_name, "memcpy");
                        f->ref_median = mf->median;
                    }
                }
            } else {
                fprintf(stderr, "bench: bandwidth on %s failed: %s\n", dv->spec, loom_last_error(dv->ctx));
            }
            loom_program_destroy(p);
            loom_state_destroy(st);
            loom_graph_destroy(g);
        }
    }
out:
    free(x), free(y), free(o), free(t);
}

/* ---- dispatch ----------------------------------------------------------- */

static loom_status time_chain(devrun *dv, int len, int reps, double *med, int *correct)
{
    loom_graph *g = NULL;
    loom_state *st = NULL;
    loom_program *p = NULL;
    double *t = malloc((size_t)reps * sizeof *t);
    loom_status e = t ? loom_graph_create(dv->ctx, &g) : LOOM_E_OOM;
    if (e == LOOM_OK)
        e = loom_state_create(dv->dev, &st);
    if (e == LOOM_OK) {
        int64_t s[1] = {64};
        loom_tensor h = loom_input(g, "x", LOOM_F32, 1, s);
        for (int i = 0; i < len; i++)
            h = loom_scale(g, h, 1.01f);
        loom_output(g, h, "y");
        e = loom_compile(g, dv->dev, st, NULL, &p);
    }
    float x[64], y[64];
    for (int i = 0; i < 64; i++)
        x[i] = (float)i;
    if (e == LOOM_OK)
        e = loom_program_set_input(p, "x", x, sizeof x);
    if (e == LOOM_OK)
        e = loom_program_run(p);
    for (int i = 0; i < reps && e == LOOM_OK; i++) {
        double t0 = now_s();
        e = loom_program_run(p);
        t[i] = now_s() - t0;
    }
    if (e == LOOM_OK)
        e = loom_program_read(p, "y", y, sizeof y);
    if (e == LOOM_OK) {
        double mn, mx;
        stats(t, reps, med, &mn, &mx, NULL);
        double want = 63.0 * pow(1.01, len);
        *correct = fabs(y[63] - want) <= 1e-4 * want + (dv->corrupt ? -1 : 0);
    }
    loom_program_destroy(p);
    loom_state_destroy(st);
    loom_graph_destroy(g);
    free(t);
    return e;
}

static void suite_dispatch(devrun *devs, int ndev, int quick, bench_run *r)
{
    int reps = quick ? 21 : 101;
    for (int d = 0; d < ndev; d++) {
        double one, hundred;
        int ok1 = 0, ok100 = 0;
        loom_status e = time_chain(&devs[d], 1, reps, &one, &ok1);
        if (e == LOOM_OK)
            e = time_chain(&devs[d], 100, quick ? 5 : 21, &hundred, &ok100);
        if (e != LOOM_OK) {
            fprintf(stderr, "bench: dispatch on %s failed: %s\n", devs[d].spec, loom_last_error(devs[d].ctx));
            continue;
        }
        bench_fig *f = add_fig(r, devs[d].spec, "dispatch", "one dispatch, submit + wait", "us", 0);
        if (f) {
            f->median = f->min = f->max = one * 1e6;
            f->runs = reps;
            f->correct = ok1;
        }
        f = add_fig(r, devs[d].spec, "dispatch", "per dispatch, 100-dispatch program", "us", 0);
        if (f) {
            f->median = f->min = f->max = (hundred - one) / 99.0 * 1e6;
            f->runs = quick ? 5 : 21;
            f->correct = ok100;
        }
    }
}

/* ---- train -------------------------------------------------------------- */

/* One epoch of the MLP on tr, then its test accuracy on te. */
static loom_status train_once(devrun *dv, int64_t batch, loom_dataset *tr, loom_dataset *te, double *acc,
                              double *samples_per_s)
{
    loom_sequential *m = NULL;
    loom_model_config mc = loom_model_config_default();
    mc.batch = batch;
    loom_fit_config fc = loom_fit_config_default();
    fc.epochs = 1;
    loom_fit_stats last;
    loom_eval_result ev;
    memset(&ev, 0, sizeof ev);
    loom_status e = loom_sequential_create(dv->ctx, 784, &m);
    if (e == LOOM_OK)
        e = loom_sequential_add_dense(m, 64, LOOM_ACT_RELU, LOOM_INIT_GLOROT_UNIFORM);
    if (e == LOOM_OK)
        e = loom_sequential_add_dense(m, 64, LOOM_ACT_RELU, LOOM_INIT_GLOROT_UNIFORM);
    if (e == LOOM_OK)
        e = loom_sequential_add_dense(m, 10, LOOM_ACT_SOFTMAX, LOOM_INIT_GLOROT_UNIFORM);
    if (e == LOOM_OK)
        e = loom_sequential_compile(m, dv->dev, &mc);
    if (e == LOOM_OK) {
        fprintf(stderr, "bench: train batch %lld on %s\n", (long long)batch, dv->spec);
        e = loom_sequential_fit(m, tr, &fc, &last);
    }
    if (e == LOOM_OK)
        e = loom_sequential_evaluate(m, te, 0, &ev);
    if (e == LOOM_OK) {
        *acc = ev.accuracy;
        *samples_per_s = last.samples_per_s;
    }
    loom_eval_result_free(&ev);
    loom_sequential_destroy(m);
    return e;
}

static void suite_train(devrun *devs, int ndev, int quick, const char *data, devrun *ref, bench_run *r)
{
    loom_ctx *ctx = devs[0].ctx;
    loom_dataset *full = NULL, *tr = NULL, *te = NULL;
    if (loom_dataset_load_mnist(ctx, data, 1, &full) || loom_dataset_scale(full, LOOM_SCALE_UNIT, NULL, NULL) ||
        loom_dataset_subset(full, 0, quick ? 3000 : loom_dataset_count(full), &tr) ||
        loom_dataset_load_mnist(ctx, data, 0, &te) || loom_dataset_scale(te, LOOM_SCALE_UNIT, NULL, NULL)) {
        fprintf(stderr, "bench: train suite skipped: %s\n", loom_last_error(ctx));
        goto out;
    }
    static const int64_t batches[2] = {32, 256};
    for (int bi = 0; bi < 2; bi++) {
        /* The reference: the same seed and data on the CPU device. When the
         * CPU device is measured too (it comes first) its run is the
         * reference, so it is not trained twice. */
        double want = NAN, sps;
        int cpu_measured = !strcmp(devs[0].spec, "cpu") && !devs[0].corrupt;
        if (ref && !cpu_measured && train_once(ref, batches[bi], tr, te, &want, &sps) != LOOM_OK)
            fprintf(stderr, "bench: no CPU reference for train: %s\n", loom_last_error(ref->ctx));
        for (int d = 0; d < ndev; d++) {
            devrun *dv = &devs[d];
            double acc;
            loom_status e = train_once(dv, batches[bi], tr, te, &acc, &sps);
            if (e != LOOM_OK) {
                fprintf(stderr, "bench: train on %s failed: %s\n", dv->spec, loom_last_error(dv->ctx));
                continue;
            }
            if (d == 0 && cpu_measured)
                want = acc;
            char name[64];
            snprintf(name, sizeof name, "mlp train b%lld, %lld img/epoch", (long long)batches[bi],
                     (long long)loom_dataset_count(tr));
            bench_fig *f = add_fig(r, dv->spec, "train", name, "samples/s", 1);
            if (f) {
                f->median = f->min = f->max = sps;
                f->runs = 1;
                acc -= dv->corrupt ? 0.5 : 0;
                /* same seed and data: every device lands where the CPU does */
                f->correct = fabs(acc - want) <= 0.02;
                f->extra = acc;
                snprintf(f->extra_name, sizeof f->extra_name, "test_accuracy");
            }
        }
    }
out:
    loom_dataset_destroy(full);
    loom_dataset_destroy(tr);
    loom_dataset_destroy(te);
}

/* ---- infer -------------------------------------------------------------- */

/* The MLP forward pass at one batch size on one device: compiled, seeded
 * weights, a warm-up run, then reps timed runs (into t), and the
 * probabilities read back. */
static loom_status mlp_probs(devrun *dv, int64_t batch, const float *x, int reps, double *t, float *probs)
{
    int hidden[2] = {64, 64};
    loom_graph *g = NULL;
    loom_state *st = NULL;
    loom_program *p = NULL;
    loom_status e = loom_graph_create(dv->ctx, &g);
    if (e == LOOM_OK)
        e = loom_state_create(dv->dev, &st);
    if (e == LOOM_OK) {
        cli_mlp_forward(g, batch, hidden, 2);
        e = loom_compile(g, dv->dev, st, NULL, &p);
    }
    if (e == LOOM_OK)
        e = cli_mlp_init(st, hidden, 2, 7);
    if (e == LOOM_OK)
        e = loom_program_set_input(p, "x", x, (size_t)batch * 784 * 4);
    if (e == LOOM_OK)
        e = loom_program_run(p);
    for (int i = 0; i < reps && e == LOOM_OK; i++) {
        double t0 = now_s();
        e = loom_program_run(p);
        t[i] = now_s() - t0;
    }
    if (e == LOOM_OK)
        e = loom_program_read(p, "probs", probs, (size_t)batch * 40);
    loom_program_destroy(p);
    loom_state_destroy(st);
    loom_graph_destroy(g);
    return e;
}

/* 1 if n probabilities match the reference (0 when there is none). */
static int probs_match(const float *got, const float *ref, size_t n)
{
    if (!ref)
        return 0;
    for (size_t j = 0; j < n; j++)
        if (!(fabsf(got[j] - ref[j]) <= 1e-4f))
            return 0;
    return 1;
}

static void suite_infer(devrun *devs, int ndev, int quick, devrun *ref, bench_run *r)
{
    static float probs[256 * 10], want[2][256 * 10];
    float *x = malloc(256 * 784 * sizeof *x);
    if (!x)
        return;
    fill(x, 256 * 784, 9);
    /* the reference: the same batches on the CPU device, whichever devices
     * are measured */
    int have_ref = ref && mlp_probs(ref, 1, x, 0, NULL, want[0]) == LOOM_OK &&
                   mlp_probs(ref, 256, x, 0, NULL, want[1]) == LOOM_OK;
    if (!have_ref)
        fprintf(stderr, "bench: no CPU reference for infer%s%s: every result is marked WRONG\n", ref ? ": " : "",
                ref ? loom_last_error(ref->ctx) : "");
    for (int d = 0; d < ndev; d++) {
        devrun *dv = &devs[d];
        for (int mode = 0; mode < 2; mode++) {
            int64_t batch = mode ? 256 : 1;
            int reps = mode ? (quick ? 5 : 21) : (quick ? 50 : 500);
            double *t = malloc((size_t)reps * sizeof *t);
            loom_status e = t ? mlp_probs(dv, batch, x, reps, t, probs) : LOOM_E_OOM;
            if (e == LOOM_OK) {
                if (dv->corrupt)
                    probs[0] += 0.5f;
                int ok = probs_match(probs, have_ref ? want[mode] : NULL, (size_t)batch * 10);
                if (mode == 0) {
                    double med, mn, mx, p99;
                    stats(t, reps, &med, &mn, &mx, &p99);
                    bench_fig *f = add_fig(r, dv->spec, "infer", "batch 1 latency (median)", "us", 0);
                    if (f) {
                        f->median = med * 1e6, f->min = mn * 1e6, f->max = mx * 1e6, f->runs = reps;
                        f->correct = ok;
                    }
                    f = add_fig(r, dv->spec, "infer", "batch 1 latency (p99)", "us", 0);
                    if (f) {
                        f->median = f->min = f->max = p99 * 1e6, f->runs = reps;
                        f->correct = ok;
                    }
                } else {
                    bench_fig *f = add_fig(r, dv->spec, "infer", "batch 256 throughput", "samples/s", 1);
                    if (f) {
                        set_fig(f, t, reps, 256.0, 1.0);
                        f->correct = ok;
                    }
                }
            } else {
                fprintf(stderr, "bench: infer on %s failed: %s\n", dv->spec, loom_last_error(dv->ctx));
            }
            free(t);
        }
    }
    free(x);
}

/* ---- startup ------------------------------------------------------------ */

/* ctx creation to the first result of a batch-1 MLP forward pass, with a
 * given cache folder. On failure the context's message is copied to err. */
static loom_status startup_once(const char *spec, const char *cache, double *secs, float *out, char *err,
                                size_t errlen)
{
    double t0 = now_s();
    loom_ctx_opts o;
    loom_ctx_opts_default(&o);
    o.cache_dir = cache;
    loom_ctx *ctx = NULL;
    loom_device *dev = NULL;
    loom_state *st = NULL;
    loom_graph *g = NULL;
    loom_program *p = NULL;
    int hidden[2] = {64, 64};
    float x[784];
    fill(x, 784, 5);
    loom_status e = loom_ctx_create(&o, &ctx);
    if (e == LOOM_OK)
        e = loom_device_open(ctx, spec, &dev);
    if (e == LOOM_OK)
        e = loom_state_create(dev, &st);
    if (e == LOOM_OK)
        e = loom_graph_create(ctx, &g);
    if (e == LOOM_OK) {
        cli_mlp_forward(g, 1, hidden, 2);
        e = loom_compile(g, dev, st, NULL, &p);
    }
    if (e == LOOM_OK)
        e = cli_mlp_init(st, hidden, 2, 7);
    if (e == LOOM_OK)
        e = loom_program_set_input(p, "x", x, sizeof x);
    if (e == LOOM_OK)
        e = loom_program_run(p);
    if (e == LOOM_OK)
        e = loom_program_read(p, "probs", out, 40);
    *secs = now_s() - t0;
    if (e != LOOM_OK)
        snprintf(err, errlen, "%s", ctx ? loom_last_error(ctx) : loom_status_str(e));
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
    return e;
}

static void suite_startup(devrun *devs, int ndev, devrun *ref, bench_run *r)
{
    char cache[4096];
    if (bench_mkdtemp(cache, sizeof cache, "loom-bench-cache") != 0)
        return;
    fprintf(stderr, "bench: startup with fresh caches in %s\n", cache);
    /* the reference: the same first result on the CPU device */
    float want[10], x[784];
    fill(x, 784, 5);
    int have_ref = ref && mlp_probs(ref, 1, x, 0, NULL, want) == LOOM_OK;
    if (!have_ref)
        fprintf(stderr, "bench: no CPU reference for startup%s%s: every result is marked WRONG\n", ref ? ": " : "",
                ref ? loom_last_error(ref->ctx) : "");
    for (int d = 0; d < ndev; d++) {
        char sub[4200], err[512] = "";
        snprintf(sub, sizeof sub, "%s/%s", cache, devs[d].spec);
        double cold, warm;
        float out[10];
        loom_status e = startup_once(devs[d].spec, sub, &cold, out, err, sizeof err);
        if (e == LOOM_OK)
            e = startup_once(devs[d].spec, sub, &warm, out, err, sizeof err);
        if (e != LOOM_OK) {
            fprintf(stderr, "bench: startup on %s failed: %s\n", devs[d].spec, err);
            continue;
        }
        if (devs[d].corrupt)
            out[0] += 0.5f;
        int ok = probs_match(out, have_ref ? want : NULL, 10);
        bench_fig *f = add_fig(r, devs[d].spec, "startup", "ctx to first result, cold cache", "ms", 0);
        if (f)
            f->median = f->min = f->max = cold * 1e3, f->runs = 1, f->correct = ok;
        f = add_fig(r, devs[d].spec, "startup", "ctx to first result, warm cache", "ms", 0);
        if (f)
            f->median = f->min = f->max = warm * 1e3, f->runs = 1, f->correct = ok;
    }
    bench_rmtree(cache);
}

/* ---- CLBlast's defaults ------------------------------------------------- */

/* CLBlast keeps one parameter set per process and device, and loom's OpenCL
 * backend applies a tuned set when it opens a device. So CLBlast's own
 * defaults are measured first, through a context whose cache folder holds
 * no tuning, before the main context opens anything. */
static void clblast_defaults(const char *spec, int quick, bench_run *r)
{
    /* every GEMM on CLBlast, with its own parameters: neither loom's
     * database nor its GEMM kernel (the backend reads this at open) */
    char cache[4096];
    if (bench_mkdtemp(cache, sizeof cache, "loom-bench-untuned") != 0)
        return;
    char *was = getenv("LOOM_OPENCL_GEMM") ? strdup(getenv("LOOM_OPENCL_GEMM")) : NULL;
    setenv("LOOM_OPENCL_GEMM", "clblast-default", 1);
    loom_ctx_opts o;
    loom_ctx_opts_default(&o);
    o.cache_dir = cache;
    o.backends = 1 << LOOM_BACKEND_OPENCL;
    loom_ctx *ctx = NULL;
    if (loom_ctx_create(&o, &ctx) == LOOM_OK) {
        for (int i = 0; i < loom_device_count(ctx); i++) {
            loom_device_info info;
            loom_device_get_info(ctx, i, &info);
            if (!info.can_run || (strcmp(spec, "all") && strcmp(spec, info.spec)))
                continue;
            devrun d = {ctx, NULL, NULL, 0};
            if (loom_device_open(ctx, info.spec, &d.dev) != LOOM_OK)
                continue;
            char label[48];
            snprintf(label, sizeof label, "clblast:%.24s", info.spec + 7);
            d.spec = label;
            suite_gemm(&d, 1, quick, r, 0);
            loom_device_close(d.dev);
        }
        loom_ctx_destroy(ctx);
    }
    bench_rmtree(cache);
    if (was)
        setenv("LOOM_OPENCL_GEMM", was, 1);
    else
        unsetenv("LOOM_OPENCL_GEMM");
    free(was);
}

/* An OpenCL device's GEMM figures are compared with CLBlast's defaults on
 * the same device (OpenBLAS stays in its own column). */
static void link_clblast_refs(bench_run *r)
{
    for (int i = 0; i < r->nfigs; i++) {
        bench_fig *f = &r->figs[i];
        if (strcmp(f->suite, "gemm") || strncmp(f->device, "opencl:", 7))
            continue;
        char label[48];
        snprintf(label, sizeof label, "clblast:%s", f->device + 7);
        for (int k = 0; k < r->nfigs; k++)
            if (!strcmp(r->figs[k].device, label) && !strcmp(r->figs[k].name, f->name)) {
                snprintf(f->ref_name, sizeof f->ref_name, "CLBlast default");
                f->ref_median = r->figs[k].median;
            }
    }
}

/* ---- the command -------------------------------------------------------- */

static const char *const suite_names[] = {"gemm", "bandwidth", "dispatch", "train", "infer", "startup", "conv",
                                          "attention"};
#define NSUITES ((int)(sizeof suite_names / sizeof suite_names[0]))

static const char bench_usage[] =
    "usage: loom bench [--device SPEC|all] [--suite LIST] [--quick] [--data DIR] [--json FILE]\n"
    "                  [--compare BASELINE.json] [--results FILE]\n"
    "  --device SPEC    the devices to measure (default all); every result is checked against\n"
    "                   the CPU device, which computes the reference whatever --device says\n"
    "  --suite LIST     comma-separated, of gemm, bandwidth, dispatch, train, infer, startup (default all\n"
    "                   of those), conv (conv2d forward and backward beside im2col + OpenBLAS), attention\n"
    "                   (fused vs unfused at sequence 128, 512, 2048); conv and attention asked for by name\n"
    "  --quick          fewer sizes and repetitions\n"
    "  --data DIR       Fashion-MNIST for the train suite (default " LOOM_DEFAULT_DATA_DIR ")\n"
    "  --json FILE      write the results (schema 1; loom-dash --bench shows them)\n"
    "  --compare BASE   compare with a saved run: figures with a reference measured in the same run are\n"
    "                   judged by their ratio to it, the others against the noise (both runs' spread, the\n"
    "                   drift of the references between the runs, at least 5%)\n"
    "  --results FILE   compare a saved run instead of measuring\n"
    "  --model M.onnx   time an ONNX model on each device instead (see loom --help)\n"
    "exit status: 0 done; 1 no device, or a file that cannot be read or written; 2 a bad option;\n"
    "             3 --compare found a regression beyond the noise\n";

static int bench_bad_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "loom bench: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", bench_usage);
    return 2;
}

/* Parses "gemm,train" into want[]; -1 with the bad name in bad. */
static int parse_suites(const char *list, int want[NSUITES], char *bad, size_t badlen)
{
    memset(want, 0, NSUITES * sizeof *want);
    const char *p = list;
    for (;;) {
        size_t n = strcspn(p, ",");
        int k = 0;
        while (k < NSUITES && (strlen(suite_names[k]) != n || strncmp(p, suite_names[k], n)))
            k++;
        if (k == NSUITES) {
            snprintf(bad, badlen, "%.*s", (int)n, p);
            return -1;
        }
        want[k] = 1;
        if (!p[n])
            return 0;
        p += n + 1;
    }
}

int cmd_bench(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--model") || !strncmp(argv[i], "--model=", 8))
            return cmd_bench_model(argc, argv);
    const char *spec = "all", *suites = NULL, *json = NULL, *baseline = NULL, *results = NULL;
    const char *data = LOOM_DEFAULT_DATA_DIR;
    int quick = 0;
    static const struct option longopts[] = {
        {"device", required_argument, NULL, 'd'}, {"suite", required_argument, NULL, 's'},
        {"json", required_argument, NULL, 'j'},   {"compare", required_argument, NULL, 'c'},
        {"results", required_argument, NULL, 'r'}, {"data", required_argument, NULL, 'D'},
        {"quick", no_argument, NULL, 'q'},         {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1;) {
        switch (c) {
        case 'd': spec = optarg; break;
        case 's': suites = optarg; break;
        case 'j': json = optarg; break;
        case 'c': baseline = optarg; break;
        case 'r': results = optarg; break;
        case 'D': data = optarg; break;
        case 'q': quick = 1; break;
        case 'h': fputs(bench_usage, stdout); return 0;
        case ':': return bench_bad_usage("%s needs a value", argv[optind - 1]);
        default: return bench_bad_usage("unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return bench_bad_usage("unexpected argument \"%s\"", argv[optind]);
    int want[NSUITES];
    char bad[64];
    if (parse_suites(suites ? suites : "gemm,bandwidth,dispatch,train,infer,startup", want, bad, sizeof bad)) {
        fprintf(stderr, "loom bench: unknown suite \"%s\" in --suite %s; the suites are", bad, suites);
        for (int k = 0; k < NSUITES; k++)
            fprintf(stderr, "%s %s", k ? "," : "", suite_names[k]);
        fprintf(stderr, "\n");
        return 2;
    }
    /* test hook: LOOM_BENCH_CORRUPT=<spec> makes that device's results wrong */
    const char *corrupt = getenv("LOOM_BENCH_CORRUPT");
    static bench_run run;
    memset(&run, 0, sizeof run);
    if (results) {
        /* compare two saved runs without measuring */
        if (bench_load(results, &run) != 0) {
            fprintf(stderr, "loom bench: cannot read %s\n", results);
            return 1;
        }
    } else {
        if (want[0])
            clblast_defaults(spec, quick, &run);
        loom_ctx *ctx = cli_ctx();
        if (!ctx)
            return 1;
        devrun devs[16];
        int ndev = 0;
        for (int i = 0; i < loom_device_count(ctx) && ndev < 16; i++) {
            loom_device_info info;
            loom_device_get_info(ctx, i, &info);
            if (!info.can_run || (strcmp(spec, "all") && strcmp(spec, info.spec)))
                continue;
            devrun *dv = &devs[ndev];
            dv->ctx = ctx;
            if (loom_device_open(ctx, info.spec, &dv->dev) != LOOM_OK) {
                fprintf(stderr, "bench: %s skipped: %s\n", info.spec, loom_last_error(ctx));
                continue;
            }
            dv->spec = loom_device_get(dv->dev)->spec;
            dv->corrupt = corrupt && !strcmp(corrupt, dv->spec);
            bench_add_device(&run, loom_device_get(dv->dev));
            ndev++;
        }
        if (!ndev) {
            fprintf(stderr, "loom bench: no device matches \"%s\"\n", spec);
            loom_ctx_destroy(ctx);
            return 1;
        }
        /* the CPU device first when measured */
        for (int d = 1; d < ndev; d++)
            if (!strcmp(devs[d].spec, "cpu")) {
                devrun tmp = devs[0];
                devs[0] = devs[d];
                devs[d] = tmp;
            }
        /* Every result is checked against the CPU device: opened for the
         * reference alone when --device names another. */
        devrun cpu_ref = {ctx, NULL, "cpu (reference)", 0}, *ref = &cpu_ref;
        if (!strcmp(devs[0].spec, "cpu"))
            cpu_ref.dev = devs[0].dev;
        else if (loom_device_open(ctx, "cpu", &cpu_ref.dev) != LOOM_OK) {
            fprintf(stderr, "bench: the CPU reference device cannot be opened: %s\n", loom_last_error(ctx));
            ref = NULL;
        }
        run.quick = quick;
        if (want[0])
            suite_gemm(devs, ndev, quick, &run, 1);
        if (want[1])
            suite_bandwidth(devs, ndev, quick, &run);
        if (want[2])
            suite_dispatch(devs, ndev, quick, &run);
        if (want[3])
            suite_train(devs, ndev, quick, data, ref, &run);
        if (want[4])
            suite_infer(devs, ndev, quick, ref, &run);
        if (want[5])
            suite_startup(devs, ndev, ref, &run);
        if (want[6])
            bench_suite_conv(devs, ndev, quick, ref, &run);
        if (want[7])
            bench_suite_attention(devs, ndev, quick, &run);
        if (cpu_ref.dev && cpu_ref.dev != devs[0].dev)
            loom_device_close(cpu_ref.dev);
        for (int d = 0; d < ndev; d++)
            loom_device_close(devs[d].dev);
        loom_ctx_destroy(ctx);
        link_clblast_refs(&run);
        for (int i = 0; i < run.nfigs; i++) {
            bench_fig *f = &run.figs[i];
            f->ratio = isnan(f->ref_median) || f->ref_median == 0 ? NAN : f->median / f->ref_median;
        }
    }
    bench_print(&run, stdout);
    if (json && bench_save(&run, json) != 0) {
        fprintf(stderr, "loom bench: cannot write %s\n", json);
        return 1;
    }
    if (baseline) {
        static bench_run base;
        memset(&base, 0, sizeof base);
        if (bench_load(baseline, &base) != 0) {
            fprintf(stderr, "loom bench: cannot read the baseline %s\n", baseline);
            return 1;
        }
        int regressions = bench_compare(&base, &run, stdout);
        return regressions ? 3 : 0;
    }
    return 0;
}
