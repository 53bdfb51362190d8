/* The bounded search over CLBlast's GEMM parameters (loom tune):
 *   1. Xgemm (the tiled kernel of large sizes): hill climbing, one
 *      parameter at a time, from a known-good point for the device type,
 *      timed at the requested size with every size sent to Xgemm;
 *   2. XgemmDirect (small sizes): the same, timed at min(size, 256) with
 *      every size sent to XgemmDirect;
 *   3. the size where Xgemm starts to win (GemmRoutine's
 *      XGEMM_MIN_INDIRECT_SIZE), from both winners at 64..512.
 * Every candidate is checked against the host before it is timed. The
 * result is kept only where it beats the set in use before the search
 * (CLBlast's own unless a stored set was applied); it is stored as JSON and
 * applied at every later open of the device. Each distinct set costs a
 * build of CLBlast's GEMM program (seconds on PoCL, cached by the driver
 * afterwards), hence the budget. CLBlast cannot go back to its own values
 * within a process, so a process that searched keeps the last candidate
 * where the search kept CLBlast's; later processes use what was stored. */
#include "cl_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

/* Every size is direct below this cube root (m n k < 4096^3). */
#define ALL_DIRECT 4096

typedef struct tuner {
    cl_dev *d;
    const loom_tune_opts *o;
    loom_tune_report *r;
    cl_mem a, b, c;
    size_t cap;                /* elements in each buffer */
    int done, total;
} tuner;

static void progress(tuner *t, const char *fmt, double gflops)
{
    t->done++;
    if (t->o->progress) {
        char what[256];
        snprintf(what, sizeof what, fmt, gflops);
        t->o->progress(t->o->progress_user, t->done, t->total, what);
    }
}

/* Best of reps runs of an n x n x n GEMM after one untimed run (which also
 * builds CLBlast's program for the parameters in use). */
static loom_status time_gemm_reps(tuner *t, size_t n, int reps, double *gflops)
{
    cl_dev *d = t->d;
    cl_gemm_call g = {0, 0, 0, n, n, n, t->a, t->b, t->c, 0, 0, 0, n, n, n};
    double best = 0;
    for (int rep = -1; rep < reps; rep++) {
        double t0 = loom_now_ns();
        LOOM_TRY(loom_cl_gemm(d, &g, NULL, NULL, "tuning"));
        cl_int e = clFinish(d->queue);
        if (e != CL_SUCCESS)
            return loom_cl_fail(d, e, "clFinish", "timing a %zu^3 GEMM", n);
        double s = (loom_now_ns() - t0) * 1e-9;
        if (rep >= 0 && (best == 0 || s < best))
            best = s;
    }
    *gflops = 2.0 * (double)n * (double)n * (double)n / best * 1e-9;
    return LOOM_OK;
}

static loom_status time_gemm(tuner *t, size_t n, double *gflops)
{
    return time_gemm_reps(t, n, t->o->reps, gflops);
}

/* Applies p, checks it on an odd size, times it at n. A failure rejects
 * the candidate and is not an error of the search. */
static int measure_(tuner *t, const cl_gemm_params *p, size_t n, double *gflops, int count)
{
    cl_dev *d = t->d;
    loom_status s = loom_cl_gemm_apply(d, p);
    if (s == LOOM_OK)
        s = loom_cl_gemm_verify(d, NULL, 61, 67, 71, 0, 1, "tuning candidate");
    if (s == LOOM_OK)
        s = time_gemm(t, n, gflops);
    if (s != LOOM_OK) {
        loom_logf(d->ctx, LOOM_LOG_INFO, "%s: tuning candidate rejected: %s", d->label, loom_last_error(d->ctx));
        loom_clear_error(d->ctx);
        t->r->rejected += count;
        return 0;
    }
    t->r->measured += count;
    return 1;
}

static int measure(tuner *t, const cl_gemm_params *p, size_t n, double *gflops)
{
    return measure_(t, p, n, gflops, 1);
}

/* Timings on a shared machine drift with its load: a candidate is
 * compared with the current best timed right after it (no build: CLBlast
 * keeps both programs), never with a figure from minutes before. */
static int remeasure(tuner *t, const cl_gemm_params *p, size_t n, double *gflops)
{
    return measure_(t, p, n, gflops, 0);
}

/* ---- candidates: hill climbing from a known-good point ------------------- */

enum { X_GEMMK, X_KREG, X_KWG, X_KWI, X_MDIMA, X_MDIMC, X_MWG, X_NDIMB, X_NDIMC, X_NWG, X_SA, X_SB, X_STRM, X_STRN,
       X_VWM, X_VWN };
enum { D_KWID, D_MDIMAD, D_MDIMCD, D_NDIMBD, D_NDIMCD, D_PADA, D_PADB, D_VWMD, D_VWND, D_WGD };

/* One tunable: where it sits in the parameter array, the values tried, and
 * a second index kept equal to it (MDIMA = MDIMC, as CLBlast's own tuner
 * does in its first variant), or -1. */
typedef struct axis {
    int at, tie;
    int nv;
    size_t v[6];
} axis;

static const axis xgemm_axes[] = {
    {X_VWM, -1, 5, {1, 2, 4, 8, 16}}, {X_VWN, -1, 5, {1, 2, 4, 8, 16}}, {X_MWG, -1, 5, {16, 32, 64, 128, 256}},
    {X_NWG, -1, 5, {16, 32, 64, 128, 256}}, {X_MDIMC, X_MDIMA, 4, {4, 8, 16, 32}}, {X_NDIMC, X_NDIMB, 4, {4, 8, 16, 32}},
    {X_KWG, -1, 3, {16, 32, 64}},   {X_KWI, -1, 2, {2, 8}},             {X_SA, -1, 2, {0, 1}},
    {X_SB, -1, 2, {0, 1}},
};
static const axis direct_axes[] = {
    {D_VWMD, -1, 4, {1, 2, 4, 8}},  {D_VWND, -1, 4, {1, 2, 4, 8}},   {D_WGD, -1, 4, {8, 16, 32, 64}},
    {D_MDIMCD, D_MDIMAD, 4, {4, 8, 16, 32}}, {D_NDIMCD, D_NDIMBD, 4, {4, 8, 16, 32}}, {D_KWID, -1, 3, {2, 8, 16}},
    {D_PADA, D_PADB, 2, {0, 1}},
};

/* Known-good starting points: measured on PoCL with AVX-512 (16-wide
 * vectors, local memory, 128x128 tiles, 8x8 threads: about 1.5x the
 * 8-wide 64x64 set), and a typical GPU set. */
static const size_t xseed_cpu[LOOM_CL_XGEMM_NPARAMS] = {0, 1, 64, 8, 8, 8, 128, 8, 8, 128, 1, 1, 0, 0, 16, 16};
static const size_t xseed_gpu[LOOM_CL_XGEMM_NPARAMS] = {0, 1, 32, 2, 16, 16, 64, 16, 16, 64, 1, 1, 0, 0, 2, 2};
static const size_t dseed_cpu[LOOM_CL_DIRECT_NPARAMS] = {8, 8, 8, 8, 8, 1, 1, 4, 4, 64};
static const size_t dseed_gpu[LOOM_CL_DIRECT_NPARAMS] = {2, 8, 8, 8, 8, 1, 1, 2, 2, 32};

#define MAX_SEEN 128

typedef struct climb {
    int direct;                /* 0: Xgemm, 1: XgemmDirect */
    size_t seen[MAX_SEEN][LOOM_CL_XGEMM_NPARAMS];
    int nseen;
} climb;

static size_t *params_of(cl_gemm_params *p, int direct)
{
    return direct ? p->direct : p->xgemm;
}

static int valid(cl_dev *d, const cl_gemm_params *p)
{
    loom_status s = loom_cl_gemm_check(d, p);
    if (s != LOOM_OK)
        loom_clear_error(d->ctx);
    return s == LOOM_OK;
}

static int seen_before(climb *c, const size_t *v, size_t n)
{
    for (int i = 0; i < c->nseen; i++)
        if (!memcmp(c->seen[i], v, n * sizeof *v))
            return 1;
    if (c->nseen < MAX_SEEN)
        memcpy(c->seen[c->nseen++], v, n * sizeof *v);
    return 0;
}

static void describe(char *buf, size_t n, int direct, const size_t *x)
{
    if (direct)
        snprintf(buf, n, "XgemmDirect WGD %zu DIMCD %zu/%zu VWD %zu/%zu KWID %zu PAD %zu: %%.1f", x[D_WGD],
                 x[D_MDIMCD], x[D_NDIMCD], x[D_VWMD], x[D_VWND], x[D_KWID], x[D_PADA]);
    else
        snprintf(buf, n, "Xgemm WG %zu/%zu DIMC %zu/%zu VW %zu/%zu KWG %zu KWI %zu S %zu/%zu: %%.1f", x[X_MWG],
                 x[X_NWG], x[X_MDIMC], x[X_NDIMC], x[X_VWM], x[X_VWN], x[X_KWG], x[X_KWI], x[X_SA], x[X_SB]);
}

/* First-improvement hill climbing over one parameter at a time, from the
 * seed, within budget measurements. base holds the other kernel's set and
 * the routine's boundary; the winner lands in base. Returns the best
 * GFLOP/s the winner showed over all its timings (0 if nothing ran): on a
 * shared machine the best of many timings is the steadiest figure. */
static double climb_kernel(tuner *t, cl_gemm_params *base, int direct, const size_t *seed, size_t n, int budget)
{
    cl_dev *d = t->d;
    size_t np = direct ? LOOM_CL_DIRECT_NPARAMS : LOOM_CL_XGEMM_NPARAMS;
    const axis *axes = direct ? direct_axes : xgemm_axes;
    int naxes = direct ? (int)(sizeof direct_axes / sizeof direct_axes[0]) : (int)(sizeof xgemm_axes / sizeof xgemm_axes[0]);
    climb c = {direct, {{0}}, 0};
    cl_gemm_params cur = *base;
    if (direct)
        cur.has_direct = 1;
    else
        cur.has_xgemm = 1;
    memcpy(params_of(&cur, direct), seed, np * sizeof *seed);
    if (!valid(d, &cur)) {
        cl_gemm_params safe;
        loom_cl_gemm_safe(d, &safe);
        memcpy(params_of(&cur, direct), params_of(&safe, direct), np * sizeof(size_t));
    }
    char what[200];
    double g_cur = 0;
    seen_before(&c, params_of(&cur, direct), np);
    if (budget > 0) {
        if (!measure(t, &cur, n, &g_cur))
            g_cur = 0;
        describe(what, sizeof what, direct, params_of(&cur, direct));
        progress(t, what, g_cur);
        budget--;
    }
    int improved = 1;
    while (budget > 0 && improved) {
        improved = 0;
        for (int a = 0; a < naxes && budget > 0; a++) {
            /* The neighbours of the current value (all values if it is
             * not one of the axis's): a step, not a leap, per build. */
            int at = -1;
            for (int k = 0; k < axes[a].nv; k++)
                if (params_of(&cur, direct)[axes[a].at] == axes[a].v[k])
                    at = k;
            for (int k = 0; k < axes[a].nv && budget > 0; k++) {
                cl_gemm_params cand = cur;
                size_t *x = params_of(&cand, direct);
                if (k == at || (at >= 0 && k != at - 1 && k != at + 1))
                    continue;
                x[axes[a].at] = axes[a].v[k];
                if (axes[a].tie >= 0)
                    x[axes[a].tie] = axes[a].v[k];
                if (!valid(d, &cand) || seen_before(&c, x, np))
                    continue;
                double g = 0, g_ref = 0;
                if (!measure(t, &cand, n, &g))
                    g = 0;
                budget--;
                describe(what, sizeof what, direct, x);
                progress(t, what, g);
                if (g > 0 && g_cur == 0) { /* the seed failed: the first that runs */
                    cur = cand;
                    g_cur = g;
                    improved = 1;
                    break;
                }
                /* 3%: less is within the noise of a shared machine. */
                if (g > 0 && remeasure(t, &cur, n, &g_ref)) {
                    if (g > g_ref * 1.03) {
                        cur = cand;
                        g_cur = g;
                        improved = 1;
                        break;
                    }
                    g_cur = g_ref > g_cur ? g_ref : g_cur;
                }
            }
        }
    }
    if (g_cur > 0) {
        /* Applied last: the winner is the set in use. */
        loom_status as = loom_cl_gemm_apply(d, &cur);
        if (as != LOOM_OK)
            loom_clear_error(d->ctx);
        memcpy(params_of(base, direct), params_of(&cur, direct), np * sizeof(size_t));
        if (direct)
            base->has_direct = 1;
        else
            base->has_xgemm = 1;
    }
    return g_cur;
}

/* ---- the search ----------------------------------------------------------- */

static loom_status make_buffers(tuner *t, size_t n)
{
    cl_dev *d = t->d;
    t->cap = n * n;
    float *h = loom_malloc(d->ctx, t->cap * sizeof *h);
    if (!h)
        return loom_fail(d->ctx, LOOM_E_OOM, "%s: out of memory for %zux%zu tuning matrices", d->label, n, n);
    for (size_t i = 0; i < t->cap; i++)
        h[i] = (float)((i * 7919u) % 1000u) * 1e-3f - 0.5f;
    cl_int e = CL_SUCCESS;
    cl_mem *m[3] = {&t->a, &t->b, &t->c};
    for (int i = 0; i < 3 && e == CL_SUCCESS; i++)
        *m[i] = clCreateBuffer(d->context, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, t->cap * 4, h, &e);
    loom_free(d->ctx, h, t->cap * sizeof *h);
    if (e != CL_SUCCESS)
        return loom_cl_fail(d, e, "clCreateBuffer", "three %zux%zu tuning matrices", n, n);
    return LOOM_OK;
}

static void free_buffers(tuner *t)
{
    cl_mem m[3] = {t->a, t->b, t->c};
    for (int i = 0; i < 3; i++)
        if (m[i])
            clReleaseMemObject(m[i]);
}

static loom_status store(tuner *t, const cl_gemm_params *p, double gflops, double baseline)
{
    cl_dev *d = t->d;
    char *text = NULL;
    LOOM_TRY(loom_cl_gemm_json(d, p, d->choice, gflops, baseline, t->o->size, &text));
    loom_cl_gemm_store_path(d, t->r->path, sizeof t->r->path);
    loom_status s = LOOM_OK;
    if (!loom_cl_make_dirs(t->r->path))
        s = loom_fail(d->ctx, LOOM_E_IO, "%s: cannot create the directory of %s", d->label, t->r->path);
    else
        s = loom_write_file_atomic(d->ctx, t->r->path, text, strlen(text));
    cJSON_free(text);
    return s;
}

loom_status loom_cl_tune(void *bdev, const loom_tune_opts *o, loom_tune_report *r)
{
    cl_dev *d = bdev;
    double t_start = loom_now_ns();
    tuner t = {d, o, r, NULL, NULL, NULL, 0, 0, 0};
    size_t n = (size_t)o->size, nd = n < 256 ? n : 256;
    int budget = o->max_candidates;
    int nx_max = budget > 1 ? (budget * 2 + 2) / 3 : 1, nd_max = budget - nx_max;
    cl_device_type type = 0;
    clGetDeviceInfo(d->id, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    int gpu = (type & CL_DEVICE_TYPE_GPU) != 0;
    t.total = 1 + nx_max + (nd_max > 0 ? nd_max + 1 : 0) + 2 + 1;
    loom_status s = make_buffers(&t, n);
    if (s != LOOM_OK) {
        free_buffers(&t);
        return s;
    }
    cl_gemm_params before;
    int had = d->gemm != NULL;
    if (had)
        before = *d->gemm;
    /* The baseline is timed once only (CLBlast cannot return to it once
     * overridden): three times the runs, the best kept. */
    double baseline = 0;
    if ((s = time_gemm_reps(&t, n, 3 * o->reps, &baseline)) != LOOM_OK)
        goto out;
    r->baseline_gflops = baseline;
    progress(&t, "baseline: %.1f GFLOP/s", baseline);

    /* 1. Xgemm, every size sent to it. */
    cl_gemm_params best = {0};
    best.has_routine = 1;
    best.min_indirect = 0;
    double best_x = climb_kernel(&t, &best, 0, gpu ? xseed_gpu : xseed_cpu, n, nx_max);
    /* CLBlast's (or the stored) Xgemm stays unless beaten. */
    if (best_x <= baseline)
        best.has_xgemm = 0;

    /* 2. XgemmDirect, every size sent to it; CLBlast's own first, which
     * stays unless beaten. */
    best.min_indirect = ALL_DIRECT;
    if (nd_max > 0) {
        double base_d = 0, more = 0;
        if (!measure_(&t, &best, nd, &base_d, 1) || time_gemm_reps(&t, nd, 3 * o->reps, &more) != LOOM_OK) {
            loom_clear_error(d->ctx);
            base_d = 0;
        }
        base_d = more > base_d ? more : base_d;
        progress(&t, "XgemmDirect baseline: %.1f", base_d);
        if (climb_kernel(&t, &best, 1, gpu ? dseed_gpu : dseed_cpu, nd, nd_max) <= base_d)
            best.has_direct = 0;
    }
    best.has_routine = 0;

    /* 3. Where Xgemm starts to win: the smallest size from which it is at
     * least as fast as XgemmDirect (the winner of 2, else CLBlast's). The
     * boundary is always part of the result, so this process and later
     * ones run the same set. */
    if (best_x > 0) {
        static const size_t sizes[] = {64, 128, 256, 512};
        double gi[4] = {0}, gd[4] = {0};
        int ns = 0;
        while (ns < 4 && sizes[ns] <= n)
            ns++;
        cl_gemm_params pi = best, pd = best;
        pi.has_routine = pd.has_routine = 1;
        pi.min_indirect = 0;
        pd.min_indirect = ALL_DIRECT;
        int ok = 1;
        /* Alternating, so both see the same load. */
        for (int k = 0; k < ns && ok; k++)
            ok = remeasure(&t, &pi, sizes[k], &gi[k]) && remeasure(&t, &pd, sizes[k], &gd[k]);
        progress(&t, "Xgemm at 64..512", 0);
        progress(&t, "XgemmDirect at 64..512", 0);
        if (ok && ns) {
            /* Direct everywhere measured: Xgemm from twice the largest. */
            size_t th = sizes[ns - 1] * 2;
            for (int k = ns - 1; k >= 0 && gi[k] >= gd[k]; k--)
                th = sizes[k];
            best.has_routine = 1;
            best.min_indirect = th == sizes[0] ? 0 : th;
        }
    }

    /* The final set, checked on both paths and timed at the size asked. */
    double final = baseline;
    int improved = best.has_xgemm || best.has_direct || best.has_routine;
    if (improved) {
        if ((s = loom_cl_gemm_apply(d, &best)) != LOOM_OK ||
            (s = loom_cl_gemm_verify(d, NULL, 29, 33, 17, 0, 1, "final set, small")) != LOOM_OK ||
            (s = loom_cl_gemm_verify(d, NULL, 131, 67, 259, 1, 1, "final set, large")) != LOOM_OK ||
            (s = time_gemm(&t, n, &final)) != LOOM_OK)
            goto out;
    } else if (had) {
        if ((s = loom_cl_gemm_apply(d, &before)) != LOOM_OK)
            goto out;
    } else {
        loom_logf(d->ctx, LOOM_LOG_WARN,
                  "%s: no candidate beat CLBlast's own GEMM parameters; this process keeps the last candidate "
                  "(CLBlast cannot return to its own), later ones will use CLBlast's", d->label);
    }
    progress(&t, "final: %.1f GFLOP/s", final);
    r->best_gflops = final;
    r->improved = improved;
    s = store(&t, improved ? &best : (had ? &before : NULL), final, baseline);
    if (s == LOOM_OK)
        snprintf(d->gemm_source, sizeof d->gemm_source, "%s", r->path);
out:
    free_buffers(&t);
    r->seconds = (loom_now_ns() - t_start) * 1e-9;
    return s;
}
