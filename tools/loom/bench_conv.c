/* loom bench --suite conv: conv2d forward and backward (to the input and
 * to the weights) in GFLOP/s on every device, for layer shapes of real
 * networks, beside im2col + OpenBLAS SGEMM on the CPU timed in the same
 * run. A device's time is its conv nodes' (profiled device timestamps, the
 * elementwise seeding of the backward pass left out); every result is
 * checked against the CPU device's. */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct conv_shape {
    const char *name;
    int n, c, h, w, oc, k, stride, pad, groups;
    int quick_n;               /* the batch of --quick */
} conv_shape;

/* From ResNet-50 and MobileNet. */
static const conv_shape shapes[] = {
    {"3x3 s1 64ch 56x56 (ResNet)", 8, 64, 56, 56, 64, 3, 1, 1, 1, 1},
    {"3x3 s1 128ch 28x28 (ResNet)", 8, 128, 28, 28, 128, 3, 1, 1, 1, 2},
    {"1x1 256->64 56x56 (ResNet)", 8, 256, 56, 56, 64, 1, 1, 0, 1, 1},
    {"dw 3x3 128ch 56x56 (MobileNet)", 8, 128, 56, 56, 128, 3, 1, 1, 128, 2},
    {"7x7 s2 3->64 224x224 (stem)", 8, 3, 224, 224, 64, 7, 2, 3, 1, 1},
};

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

static bench_fig *fig(bench_run *r, const char *dev, const char *name)
{
    if (r->nfigs == BENCH_MAX_FIGS)
        return NULL;
    bench_fig *f = &r->figs[r->nfigs++];
    memset(f, 0, sizeof *f);
    snprintf(f->device, sizeof f->device, "%s", dev);
    snprintf(f->suite, sizeof f->suite, "conv");
    snprintf(f->name, sizeof f->name, "%s", name);
    snprintf(f->unit, sizeof f->unit, "GFLOP/s");
    f->hib = 1;
    f->correct = 1;
    f->ref_median = NAN;
    return f;
}

/* GFLOP/s of flops from n times (s): median, and the range. */
static void rate(bench_fig *f, double *t, int n, double flops)
{
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    double med = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    f->median = flops / med * 1e-9;
    f->min = flops / t[n - 1] * 1e-9;
    f->max = flops / t[0] * 1e-9;
    f->runs = n;
}

static void fill(float *x, size_t n, uint32_t seed)
{
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
    }
}

typedef struct geom {
    int n, c, h, w, oc, k, s, p, g, oh, ow, cg, ocg;
} geom;

static geom geom_of(const conv_shape *cs, int quick)
{
    geom g = {quick ? cs->quick_n : cs->n, cs->c, cs->h, cs->w, cs->oc, cs->k, cs->stride, cs->pad, cs->groups, 0, 0,
              0, 0};
    g.oh = (g.h + 2 * g.p - g.k) / g.s + 1;
    g.ow = (g.w + 2 * g.p - g.k) / g.s + 1;
    g.cg = g.c / g.g;
    g.ocg = g.oc / g.g;
    return g;
}

static double flops_of(const geom *g)
{
    return 2.0 * g->n * g->oc * g->oh * g->ow * (double)g->cg * g->k * g->k;
}

/* ---- the reference: im2col + OpenBLAS ------------------------------------------ */

static void im2col(const geom *g, const float *x, int n, int gi, float *cols)
{
    int ohw = g->oh * g->ow;
    for (int c = 0; c < g->cg; c++)
        for (int a = 0; a < g->k; a++)
            for (int b = 0; b < g->k; b++) {
                float *row = cols + (size_t)((c * g->k + a) * g->k + b) * ohw;
                const float *plane = x + ((size_t)n * g->c + (size_t)gi * g->cg + c) * g->h * g->w;
                for (int i = 0; i < g->oh; i++) {
                    int ih = i * g->s - g->p + a;
                    for (int j = 0; j < g->ow; j++) {
                        int iw = j * g->s - g->p + b;
                        row[i * g->ow + j] = ih >= 0 && ih < g->h && iw >= 0 && iw < g->w ? plane[ih * g->w + iw] : 0;
                    }
                }
            }
}

static void col2im(const geom *g, const float *cols, int n, int gi, float *dx)
{
    int ohw = g->oh * g->ow;
    for (int c = 0; c < g->cg; c++)
        for (int a = 0; a < g->k; a++)
            for (int b = 0; b < g->k; b++) {
                const float *row = cols + (size_t)((c * g->k + a) * g->k + b) * ohw;
                float *plane = dx + ((size_t)n * g->c + (size_t)gi * g->cg + c) * g->h * g->w;
                for (int i = 0; i < g->oh; i++) {
                    int ih = i * g->s - g->p + a;
                    for (int j = 0; j < g->ow; j++) {
                        int iw = j * g->s - g->p + b;
                        if (ih >= 0 && ih < g->h && iw >= 0 && iw < g->w)
                            plane[ih * g->w + iw] += row[i * g->ow + j];
                    }
                }
            }
}

/* Forward (y) or backward (dx, dw from dy) per sample and group, as a
 * framework without its own convolution does it. */
static void reference(const geom *g, int backward, const float *x, const float *w, const float *dy, float *y,
                      float *dx, float *dw, float *cols)
{
    int kk = g->cg * g->k * g->k, ohw = g->oh * g->ow;
    if (backward) {
        memset(dx, 0, (size_t)g->n * g->c * g->h * g->w * sizeof *dx);
        memset(dw, 0, (size_t)g->oc * kk * sizeof *dw);
    }
    for (int n = 0; n < g->n; n++)
        for (int gi = 0; gi < g->g; gi++) {
            const float *wg = w + (size_t)gi * g->ocg * kk;
            if (!backward) {
                im2col(g, x, n, gi, cols);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->ocg, ohw, kk, 1, wg, kk, cols, ohw, 0,
                            y + ((size_t)n * g->oc + (size_t)gi * g->ocg) * ohw, ohw);
                continue;
            }
            const float *d = dy + ((size_t)n * g->oc + (size_t)gi * g->ocg) * ohw;
            im2col(g, x, n, gi, cols);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->ocg, kk, ohw, 1, d, ohw, cols, ohw, 1,
                        dw + (size_t)gi * g->ocg * kk, kk);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kk, ohw, g->ocg, 1, wg, kk, d, ohw, 0, cols, ohw);
            col2im(g, cols, n, gi, dx);
        }
}

/* ---- a device ------------------------------------------------------------------------ */

typedef struct results {
    float *y, *dx, *dw;
} results;

/* Times the forward or backward pass on dev: the profiled time of the
 * conv nodes per run, into t[reps]; the results into out. */
static loom_status run_device(const bench_device *dv, const geom *g, int backward, const float *x, const float *w,
                              const float *dy, int reps, double *t, results *out)
{
    loom_graph *gr = NULL;
    loom_state *st = NULL;
    loom_program *p = NULL;
    loom_status e = loom_graph_create(dv->ctx, &gr);
    if (e == LOOM_OK)
        e = loom_state_create(dv->dev, &st);
    int64_t xs[4] = {g->n, g->c, g->h, g->w}, ws[4] = {g->oc, g->cg, g->k, g->k}, ys[4] = {g->n, g->oc, g->oh, g->ow};
    size_t nx = (size_t)g->n * g->c * g->h * g->w, nw = (size_t)g->oc * g->cg * g->k * g->k,
           ny = (size_t)g->n * g->oc * g->oh * g->ow;
    if (e == LOOM_OK) {
        loom_conv2d_opts o = loom_conv2d_opts_default();
        o.stride[0] = o.stride[1] = g->s;
        o.pad[0] = o.pad[1] = o.pad[2] = o.pad[3] = g->p;
        o.groups = g->g;
        loom_tensor xt = loom_input(gr, "x", LOOM_F32, 4, xs), wt = loom_input(gr, "w", LOOM_F32, 4, ws);
        loom_tensor y = loom_conv2d(gr, xt, wt, LOOM_NONE, &o);
        if (!backward) {
            loom_output(gr, y, "y");
        } else {
            /* loss = sum(y * dy): the gradient of y is dy */
            loom_tensor loss = loom_sum_all(gr, loom_mul(gr, y, loom_input(gr, "dy", LOOM_F32, 4, ys)));
            loom_tensor wrt[2] = {xt, wt};
            e = loom_backward(gr, loss, wrt, 2);
            loom_output(gr, loom_grad(gr, xt), "dx");
            loom_output(gr, loom_grad(gr, wt), "dw");
        }
        loom_compile_opts co = {0};
        co.profile = 1;
        if (e == LOOM_OK)
            e = loom_compile(gr, dv->dev, st, &co, &p);
    }
    if (e == LOOM_OK)
        e = loom_program_set_input(p, "x", x, nx * 4);
    if (e == LOOM_OK)
        e = loom_program_set_input(p, "w", w, nw * 4);
    if (e == LOOM_OK && backward)
        e = loom_program_set_input(p, "dy", dy, ny * 4);
    if (e == LOOM_OK)
        e = loom_program_run(p); /* warm-up (JIT, first touch) */
    for (int i = 0; i < reps && e == LOOM_OK; i++) {
        e = loom_profile_reset(p);
        double t0 = now_s();
        if (e == LOOM_OK)
            e = loom_program_run(p);
        double wall = now_s() - t0;
        loom_profile_report rep;
        if (e == LOOM_OK)
            e = loom_profile_get(p, &rep);
        double conv = 0;
        for (int k = 0; e == LOOM_OK && k < rep.nnodes; k++)
            if (!strncmp(rep.nodes[k].op, "conv", 4))
                conv += rep.nodes[k].total_ns;
        t[i] = rep.timed && conv > 0 ? conv * 1e-9 : wall;
    }
    if (e == LOOM_OK && !backward)
        e = loom_program_read(p, "y", out->y, ny * 4);
    if (e == LOOM_OK && backward)
        e = loom_program_read(p, "dx", out->dx, nx * 4);
    if (e == LOOM_OK && backward)
        e = loom_program_read(p, "dw", out->dw, nw * 4);
    loom_program_destroy(p);
    loom_state_destroy(st);
    loom_graph_destroy(gr);
    return e;
}

/* |a - b| within the f32 rounding of a sum of k products of values < 1 */
static int close_to(const float *a, const float *b, size_t n, int k)
{
    double scale = 0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(b[i]));
    double tol = 1e-5 * sqrt((double)k + 1) * (scale + 1);
    for (size_t i = 0; i < n; i++)
        if (!(fabs((double)a[i] - b[i]) <= tol))
            return 0;
    return 1;
}

void bench_suite_conv(const bench_device *devs, int ndev, int quick, const bench_device *ref, bench_run *r)
{
    int nshapes = (int)(sizeof shapes / sizeof shapes[0]);
    for (int si = 0; si < nshapes; si++) {
        geom g = geom_of(&shapes[si], quick);
        int reps = quick ? 2 : 5;
        size_t nx = (size_t)g.n * g.c * g.h * g.w, nw = (size_t)g.oc * g.cg * g.k * g.k,
               ny = (size_t)g.n * g.oc * g.oh * g.ow, ncols = (size_t)g.cg * g.k * g.k * g.oh * g.ow;
        float *x = malloc(nx * 4), *w = malloc(nw * 4), *dy = malloc(ny * 4), *cols = malloc(ncols * 4);
        results want = {malloc(ny * 4), malloc(nx * 4), malloc(nw * 4)}, got = {malloc(ny * 4), malloc(nx * 4),
                                                                                malloc(nw * 4)};
        double *t = malloc((size_t)reps * sizeof *t);
        if (!x || !w || !dy || !cols || !want.y || !want.dx || !want.dw || !got.y || !got.dx || !got.dw || !t) {
            fprintf(stderr, "bench: conv %s: out of memory\n", shapes[si].name);
            goto next;
        }
        fill(x, nx, 11);
        fill(w, nw, 12);
        fill(dy, ny, 13);
        for (int pass = 0; pass < 2; pass++) {
            char name[64];
            snprintf(name, sizeof name, "%s %s", pass ? "bwd" : "fwd", shapes[si].name);
            /* backward: to the input and to the weights, twice the forward's work */
            double flops = flops_of(&g) * (pass ? 2 : 1);
            /* the reference, timed the same way */
            for (int i = -1; i < reps; i++) {
                double t0 = now_s();
                reference(&g, pass, x, w, dy, got.y, got.dx, got.dw, cols);
                if (i >= 0)
                    t[i] = now_s() - t0;
            }
            bench_fig *rf = fig(r, "openblas", name);
            if (rf)
                rate(rf, t, reps, flops);
            /* the CPU device's results are what every device is checked against */
            int have = ref && run_device(ref, &g, pass, x, w, dy, 0, t, &want) == LOOM_OK;
            for (int d = 0; d < ndev; d++) {
                fprintf(stderr, "bench: conv %s on %s\n", name, devs[d].spec);
                loom_status e = run_device(&devs[d], &g, pass, x, w, dy, reps, t, &got);
                if (e != LOOM_OK) {
                    fprintf(stderr, "bench: conv %s on %s failed: %s\n", name, devs[d].spec,
                            loom_last_error(devs[d].ctx));
                    continue;
                }
                bench_fig *f = fig(r, devs[d].spec, name);
                if (!f)
                    continue;
                rate(f, t, reps, flops);
                if (devs[d].corrupt)
                    got.y[0] += 1.0f, got.dx[0] += 1.0f;
                int k = g.cg * g.k * g.k;
                f->correct = have && (pass ? close_to(got.dx, want.dx, nx, g.ocg * g.k * g.k) &&
                                                 close_to(got.dw, want.dw, nw, g.n * g.oh * g.ow)
                                           : close_to(got.y, want.y, ny, k));
                snprintf(f->ref_name, sizeof f->ref_name, "im2col+sgemm");
                f->ref_median = rf ? rf->median : NAN;
            }
        }
    next:
        free(x), free(w), free(dy), free(cols), free(t);
        free(want.y), free(want.dx), free(want.dw), free(got.y), free(got.dx), free(got.dw);
    }
}
