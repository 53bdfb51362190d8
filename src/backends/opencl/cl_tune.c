/* The bounded search over CLBlast's GEMM parameters (loom tune):
 *   1. Xgemm (the tiled kernel of large sizes): candidates near known-good
 *      points for the device type, timed at the requested size with every
 *      size sent to Xgemm;
 *   2. XgemmDirect (small sizes): candidates timed at min(size, 256) with
 *      every size sent to XgemmDirect;
 *   3. the size where Xgemm starts to win (GemmRoutine's
 *      XGEMM_MIN_INDIRECT_SIZE), from both winners at 64..512.
 * Every candidate is checked against the host before it is timed. The
 * result is kept only where it beats the set in use before the search
 * (CLBlast's own unless a stored set was applied); it is stored as JSON and
 * applied at every later open of the device. */
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
static loom_status time_gemm(tuner *t, size_t n, double *gflops)
{
    cl_dev *d = t->d;
    cl_gemm_call g = {0, 0, n, n, n, t->a, t->b, t->c, 0, 0, 0, n, n, n};
    double best = 0;
    for (int rep = -1; rep < t->o->reps; rep++) {
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

/* Applies p, checks it on an odd size, times it at n. A failure rejects
 * the candidate and is not an error of the search. */
static int measure(tuner *t, const cl_gemm_params *p, size_t n, double *gflops)
{
    cl_dev *d = t->d;
    loom_status s = loom_cl_gemm_apply(d, p);
    if (s == LOOM_OK)
        s = loom_cl_gemm_verify(d, 61, 67, 71, 0, 1, "tuning candidate");
    if (s == LOOM_OK)
        s = time_gemm(t, n, gflops);
    if (s != LOOM_OK) {
        loom_logf(d->ctx, LOOM_LOG_INFO, "%s: tuning candidate rejected: %s", d->label, loom_last_error(d->ctx));
        loom_clear_error(d->ctx);
        t->r->rejected++;
        return 0;
    }
    t->r->measured++;
    return 1;
}

/* ---- candidates --------------------------------------------------------- */

enum { X_GEMMK, X_KREG, X_KWG, X_KWI, X_MDIMA, X_MDIMC, X_MWG, X_NDIMB, X_NDIMC, X_NWG, X_SA, X_SB, X_STRM, X_STRN,
       X_VWM, X_VWN };
enum { D_KWID, D_MDIMAD, D_MDIMCD, D_NDIMBD, D_NDIMCD, D_PADA, D_PADB, D_VWMD, D_VWND, D_WGD };

/* Known-good points: measured on PoCL (8-wide vectors, local memory, 64x64
 * tiles), and a typical GPU set; candidates are taken nearest first. */
static const size_t xseed_cpu[7] = {64, 64, 8, 8, 64, 8, 1};  /* MWG NWG MDIMC NDIMC KWG KWI SA=SB */
static const size_t xseed_gpu[7] = {64, 64, 16, 16, 32, 2, 1};
static const size_t xvw_cpu[2] = {8, 8}, xvw_gpu[2] = {2, 2};
static const size_t dseed_cpu[5] = {32, 8, 8, 4, 8}; /* WGD MDIMCD NDIMCD VW KWID */
static const size_t dseed_gpu[5] = {32, 8, 8, 2, 2};

typedef struct cand {
    size_t v[LOOM_CL_XGEMM_NPARAMS > LOOM_CL_DIRECT_NPARAMS ? LOOM_CL_XGEMM_NPARAMS : LOOM_CL_DIRECT_NPARAMS];
    int dist;
} cand;

static int silent_ok(cl_dev *d, const cl_gemm_params *p)
{
    loom_status s = loom_cl_gemm_check(d, p);
    if (s != LOOM_OK)
        loom_clear_error(d->ctx);
    return s == LOOM_OK;
}

static int diff(size_t a, size_t b)
{
    return a != b;
}

/* Insertion into a list kept sorted by distance (stable: earlier wins). */
static void keep(cand *list, int *n, int cap, const cand *c)
{
    int i;
    if (*n < cap)
        i = (*n)++;
    else if (list[cap - 1].dist > c->dist)
        i = cap - 1;
    else
        return;
    while (i > 0 && list[i - 1].dist > c->dist) {
        list[i] = list[i - 1];
        i--;
    }
    list[i] = *c;
}

static int xgemm_candidates(cl_dev *d, int gpu, cand *out, int cap)
{
    static const size_t wg[] = {32, 64, 128}, dim[] = {4, 8, 16}, vw[] = {2, 4, 8}, kwg[] = {32, 64}, kwi[] = {2, 8};
    const size_t *seed = gpu ? xseed_gpu : xseed_cpu, *sv = gpu ? xvw_gpu : xvw_cpu;
    int n = 0;
    for (size_t a = 0; a < 3; a++)
    for (size_t b = 0; b < 3; b++)
    for (size_t c = 0; c < 3; c++)
    for (size_t e = 0; e < 3; e++)
    for (size_t f = 0; f < 3; f++)
    for (size_t g = 0; g < 2; g++)
    for (size_t h = 0; h < 2; h++)
    for (size_t s = 0; s < 2; s++) {
        cl_gemm_params p = {0};
        p.has_xgemm = 1;
        size_t *x = p.xgemm;
        x[X_GEMMK] = 0, x[X_KREG] = 1, x[X_STRM] = x[X_STRN] = 0;
        x[X_MWG] = wg[a], x[X_NWG] = wg[b];
        x[X_MDIMC] = x[X_MDIMA] = dim[c], x[X_NDIMC] = x[X_NDIMB] = dim[e];
        x[X_VWM] = x[X_VWN] = vw[f];
        x[X_KWG] = kwg[g], x[X_KWI] = kwi[h];
        x[X_SA] = x[X_SB] = s;
        if (!silent_ok(d, &p))
            continue;
        cand cd;
        memcpy(cd.v, x, sizeof p.xgemm);
        cd.dist = diff(x[X_MWG], seed[0]) + diff(x[X_NWG], seed[1]) + diff(x[X_MDIMC], seed[2]) +
                  diff(x[X_NDIMC], seed[3]) + diff(x[X_KWG], seed[4]) + diff(x[X_KWI], seed[5]) +
                  diff(x[X_SA], seed[6]) + diff(x[X_VWM], sv[0]);
        keep(out, &n, cap, &cd);
    }
    return n;
}

static int direct_candidates(cl_dev *d, int gpu, cand *out, int cap)
{
    static const size_t wgd[] = {16, 32, 64}, dim[] = {4, 8, 16}, vw[] = {1, 2, 4, 8}, kwid[] = {2, 8};
    const size_t *seed = gpu ? dseed_gpu : dseed_cpu;
    int n = 0;
    for (size_t a = 0; a < 3; a++)
    for (size_t b = 0; b < 3; b++)
    for (size_t c = 0; c < 3; c++)
    for (size_t e = 0; e < 4; e++)
    for (size_t f = 0; f < 2; f++) {
        cl_gemm_params p = {0};
        p.has_direct = 1;
        size_t *x = p.direct;
        x[D_WGD] = wgd[a];
        x[D_MDIMCD] = x[D_MDIMAD] = dim[b];
        x[D_NDIMCD] = x[D_NDIMBD] = dim[c];
        x[D_VWMD] = x[D_VWND] = vw[e];
        x[D_KWID] = kwid[f];
        x[D_PADA] = x[D_PADB] = 1;
        if (!silent_ok(d, &p))
            continue;
        cand cd;
        memcpy(cd.v, x, sizeof p.direct);
        cd.dist = diff(x[D_WGD], seed[0]) + diff(x[D_MDIMCD], seed[1]) + diff(x[D_NDIMCD], seed[2]) +
                  diff(x[D_VWMD], seed[3]) + diff(x[D_KWID], seed[4]);
        keep(out, &n, cap, &cd);
    }
    return n;
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
    LOOM_TRY(loom_cl_gemm_json(d, p, gflops, baseline, t->o->size, &text));
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
    cand xs[64], ds[64];
    int nx = xgemm_candidates(d, gpu, xs, nx_max < 64 ? nx_max : 64);
    int ndc = nd_max > 0 ? direct_candidates(d, gpu, ds, nd_max < 64 ? nd_max : 64) : 0;
    t.total = 1 + nx + ndc + 2 + 1;
    loom_status s = make_buffers(&t, n);
    if (s != LOOM_OK) {
        free_buffers(&t);
        return s;
    }
    cl_gemm_params before;
    int had = d->gemm != NULL;
    if (had)
        before = *d->gemm;
    double baseline = 0;
    if ((s = time_gemm(&t, n, &baseline)) != LOOM_OK)
        goto out;
    r->baseline_gflops = baseline;
    progress(&t, "baseline: %.1f GFLOP/s", baseline);

    /* 1. Xgemm, every size indirect. */
    cl_gemm_params best = {0};
    double best_x = 0;
    for (int i = 0; i < nx; i++) {
        cl_gemm_params p = {0};
        p.has_xgemm = p.has_routine = 1;
        memcpy(p.xgemm, xs[i].v, sizeof p.xgemm);
        p.min_indirect = 0;
        double g = 0;
        if (measure(&t, &p, n, &g) && g > best_x) {
            best_x = g;
            best.has_xgemm = 1;
            memcpy(best.xgemm, p.xgemm, sizeof p.xgemm);
        }
        const size_t *x = p.xgemm;
        char what[160];
        snprintf(what, sizeof what, "Xgemm MWG=%zu NWG=%zu MDIMC=%zu NDIMC=%zu KWG=%zu KWI=%zu SA=%zu VW=%zu: %%.1f",
                 x[X_MWG], x[X_NWG], x[X_MDIMC], x[X_NDIMC], x[X_KWG], x[X_KWI], x[X_SA], x[X_VWM]);
        progress(&t, what, g);
    }
    /* CLBlast's (or the stored) Xgemm stays unless beaten. */
    if (best_x <= baseline)
        best.has_xgemm = 0;

    /* 2. XgemmDirect, every size direct. */
    double best_d = 0;
    for (int i = 0; i < ndc; i++) {
        cl_gemm_params p = best;
        p.has_direct = p.has_routine = 1;
        memcpy(p.direct, ds[i].v, sizeof p.direct);
        p.min_indirect = ALL_DIRECT;
        double g = 0;
        if (measure(&t, &p, nd, &g) && g > best_d) {
            best_d = g;
            best.has_direct = 1;
            memcpy(best.direct, p.direct, sizeof p.direct);
        }
        const size_t *x = p.direct;
        char what[160];
        snprintf(what, sizeof what, "XgemmDirect WGD=%zu MDIMCD=%zu NDIMCD=%zu VW=%zu KWID=%zu: %%.1f", x[D_WGD],
                 x[D_MDIMCD], x[D_NDIMCD], x[D_VWMD], x[D_KWID]);
        progress(&t, what, g);
    }

    /* 3. Where Xgemm starts to win: the smallest size from which it is at
     * least as fast as XgemmDirect (the winner of 2, else CLBlast's). The
     * boundary is always part of the result, so this process and later
     * ones run the same set. */
    if (best.has_xgemm || best.has_direct || best_x > 0) {
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
        for (int k = 0; k < ns && ok; k++)
            ok = measure(&t, &pi, sizes[k], &gi[k]);
        progress(&t, "Xgemm at 64..512", 0);
        for (int k = 0; k < ns && ok; k++)
            ok = measure(&t, &pd, sizes[k], &gd[k]);
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
            (s = loom_cl_gemm_verify(d, 29, 33, 17, 0, 1, "final set, small")) != LOOM_OK ||
            (s = loom_cl_gemm_verify(d, 131, 67, 259, 1, 1, "final set, large")) != LOOM_OK ||
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
