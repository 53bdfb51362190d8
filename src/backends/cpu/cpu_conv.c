/* The CPU reference of convolutional networks' ops: convolutions as
 * im2col + OpenBLAS SGEMM (the columns of a chunk of samples in the
 * program's workspace), pooling, normalization, windows and concat, in f32
 * over f32 views of the tensors. */
#include "cpu_dnnl.h"
#include "cpu_kernels.h"
#include "cpu_simd.h"
#include "../../core/conv_geom.h"
#include "../common/layout.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* ---- convolutions ------------------------------------------------------------ */

/* At most this many floats of columns per chunk of samples: the columns
 * of a chunk stay in the cache between im2col and the GEMM that reads
 * them, and the workspace is bounded whatever the batch. A chunk of one
 * sample also writes the GEMM's result straight into y (and reads dy as
 * it is). */
#define COLS_MAX ((int64_t)1 << LOOM_CONV_COLS_LOG2)
#ifndef LOOM_CONV_COLS_LOG2
#define LOOM_CONV_COLS_LOG2 17
#endif

static loom_conv_geom geom_of(const loom_exec_node *x)
{
    const loom_node *in[3] = {x->in[0]->node, x->in[1]->node, NULL};
    return loom_conv_geom_of(x->def->code, x->node, in);
}

/* Samples per chunk: as many as fit COLS_MAX, at least one. */
static int64_t chunk_of(const loom_conv_geom *g)
{
    int64_t per = g->cg * g->kh * g->kw * g->oh * g->ow;
    int64_t nb = per ? COLS_MAX / per : g->n;
    return nb < 1 ? 1 : nb > g->n ? g->n : nb;
}

/* A 1x1 convolution with stride 1 and no padding reads x as it is: its
 * columns are the input's rows. */
static int direct_1x1(const loom_conv_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 && g->pl == 0 && g->oh == g->h &&
           g->ow == g->w;
}

size_t cpu_workspace_floats(const loom_exec_node *x)
{
    if (x->def->family == LOOM_FAM_QCONV || x->def->family == LOOM_FAM_QMATMUL)
        return loom_cpu_quant_workspace_floats(x);
    if (x->def->family != LOOM_FAM_CONV)
        return 0;
    loom_conv_geom g = geom_of(x);
    int64_t nb = chunk_of(&g), ohw = g.oh * g.ow;
    /* the columns and the chunk's output (or dy) rows of one group */
    return (size_t)((g.cg * g.kh * g.kw + g.ocg) * nb * ohw);
}

/* The loops around the GEMMs run on every core (cpu_parallel_for);
 * OpenBLAS threads the GEMMs themselves. */
typedef struct cols_job {
    const loom_conv_geom *g;
    const float *src;
    float *dst;
    int64_t n0, nb, gi;
} cols_job;

/* cols [K, nb * OHW] of samples n0.. of group gi: row (c, kh, kw), column
 * (n, oh, ow), zeros where the window is in the padding. Rows [t0, t1). */
static void im2col_rows(void *arg, int64_t t0, int64_t t1)
{
    const cols_job *j = arg;
    const loom_conv_geom *g = j->g;
    int64_t ohw = g->oh * g->ow, ld = j->nb * ohw;
    for (int64_t t = t0; t < t1; t++) {
        int64_t c = t / (g->kh * g->kw), kh = t / g->kw % g->kh, kw = t % g->kw;
        float *row = j->dst + t * ld;
        for (int64_t n = 0; n < j->nb; n++) {
            const float *plane = j->src + ((j->n0 + n) * g->c + j->gi * g->cg + c) * g->h * g->w;
            float *o = row + n * ohw;
            for (int64_t oh = 0; oh < g->oh; oh++, o += g->ow) {
                int64_t ih = oh * g->sh - g->pt + kh * g->dh;
                if (ih < 0 || ih >= g->h) {
                    memset(o, 0, (size_t)g->ow * sizeof *o);
                    continue;
                }
                const float *r = plane + ih * g->w;
                int64_t iw0 = kw * g->dw - g->pl;
                for (int64_t ow = 0; ow < g->ow; ow++) {
                    int64_t iw = iw0 + ow * g->sw;
                    o[ow] = iw >= 0 && iw < g->w ? r[iw] : 0.0f;
                }
            }
        }
    }
}

static void im2col(const loom_conv_geom *g, const float *x, int64_t n0, int64_t nb, int64_t gi, float *cols)
{
    cols_job j = {g, x, cols, n0, nb, gi};
    int64_t taps = g->cg * g->kh * g->kw;
    cpu_parallel_for(taps, taps * nb * g->oh * g->ow, im2col_rows, &j);
}

/* The reverse of im2col: every column entry added into dx where it came
 * from; channels [c0, c1) (each writes its own planes). */
static void col2im_channels(void *arg, int64_t c0, int64_t c1)
{
    const cols_job *j = arg;
    const loom_conv_geom *g = j->g;
    int64_t ohw = g->oh * g->ow, ld = j->nb * ohw;
    for (int64_t c = c0; c < c1; c++)
        for (int64_t kh = 0; kh < g->kh; kh++)
            for (int64_t kw = 0; kw < g->kw; kw++) {
                const float *row = j->src + ((c * g->kh + kh) * g->kw + kw) * ld;
                for (int64_t n = 0; n < j->nb; n++) {
                    float *plane = j->dst + ((j->n0 + n) * g->c + j->gi * g->cg + c) * g->h * g->w;
                    const float *o = row + n * ohw;
                    for (int64_t oh = 0; oh < g->oh; oh++, o += g->ow) {
                        int64_t ih = oh * g->sh - g->pt + kh * g->dh;
                        if (ih < 0 || ih >= g->h)
                            continue;
                        float *r = plane + ih * g->w;
                        int64_t iw0 = kw * g->dw - g->pl;
                        for (int64_t ow = 0; ow < g->ow; ow++) {
                            int64_t iw = iw0 + ow * g->sw;
                            if (iw >= 0 && iw < g->w)
                                r[iw] += o[ow];
                        }
                    }
                }
            }
}

static void col2im(const loom_conv_geom *g, const float *cols, int64_t n0, int64_t nb, int64_t gi, float *dx)
{
    cols_job j = {g, cols, dx, n0, nb, gi};
    cpu_parallel_for(g->cg, g->cg * g->kh * g->kw * nb * g->oh * g->ow, col2im_channels, &j);
}

/* rows [OCg, nb * OHW] of group gi <-> y [N, OC, OH, OW] */
static void rows_to_nchw(const loom_conv_geom *g, const float *rows, int64_t n0, int64_t nb, int64_t gi, float *y)
{
    int64_t ohw = g->oh * g->ow;
    for (int64_t m = 0; m < g->ocg; m++)
        for (int64_t n = 0; n < nb; n++)
            memcpy(y + ((n0 + n) * g->oc + gi * g->ocg + m) * ohw, rows + (m * nb + n) * ohw,
                   (size_t)ohw * sizeof *y);
}

static void nchw_to_rows(const loom_conv_geom *g, const float *y, int64_t n0, int64_t nb, int64_t gi, float *rows)
{
    int64_t ohw = g->oh * g->ow;
    for (int64_t m = 0; m < g->ocg; m++)
        for (int64_t n = 0; n < nb; n++)
            memcpy(rows + (m * nb + n) * ohw, y + ((n0 + n) * g->oc + gi * g->ocg + m) * ohw,
                   (size_t)ohw * sizeof *y);
}

/* y[n, c, :] += bias[c] over planes of hw */
static void add_channel_bias(float *y, const float *bias, int64_t n, int64_t c, int64_t hw)
{
    for (int64_t i = 0; i < n * c; i++) {
        float *p = y + i * hw, b = bias[i % c];
        for (int64_t j = 0; j < hw; j++)
            p[j] += b;
    }
}

/* y = conv2d(x, w) + bias */
static void conv_fwd(const loom_conv_geom *g, const float *x, const float *w, const float *bias, float *y,
                     float *ws)
{
    int64_t k = g->cg * g->kh * g->kw, ohw = g->oh * g->ow, nb = chunk_of(g);
    for (int64_t gi = 0; gi < g->groups; gi++) {
        const float *wg = w + gi * g->ocg * k;
        if (direct_1x1(g)) {
            /* W [OCg, Cg] x x_n [Cg, HW], straight into y */
            for (int64_t n = 0; n < g->n; n++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)g->ocg, (int)ohw, (int)k, 1.0f, wg,
                            (int)k, x + (n * g->c + gi * g->cg) * ohw, (int)ohw, 0.0f,
                            y + (n * g->oc + gi * g->ocg) * ohw, (int)ohw);
            continue;
        }
        for (int64_t n0 = 0; n0 < g->n; n0 += nb) {
            int64_t cnt = g->n - n0 < nb ? g->n - n0 : nb;
            float *cols = ws, *rows = cnt == 1 ? y + (n0 * g->oc + gi * g->ocg) * ohw : ws + k * cnt * ohw;
            im2col(g, x, n0, cnt, gi, cols);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)g->ocg, (int)(cnt * ohw), (int)k, 1.0f, wg,
                        (int)k, cols, (int)(cnt * ohw), 0.0f, rows, (int)(cnt * ohw));
            if (cnt > 1)
                rows_to_nchw(g, rows, n0, cnt, gi, y);
        }
    }
    if (bias)
        add_channel_bias(y, bias, g->n, g->oc, ohw);
}

/* dx = conv_transpose2d(dy, w) + bias (bias over dx's channels) */
static void conv_bwd_data(const loom_conv_geom *g, const float *dy, const float *w, const float *bias, float *dx,
                          float *ws)
{
    int64_t k = g->cg * g->kh * g->kw, ohw = g->oh * g->ow, nb = chunk_of(g), hw = g->h * g->w;
    if (!direct_1x1(g))
        memset(dx, 0, (size_t)(g->n * g->c * hw) * sizeof *dx);
    for (int64_t gi = 0; gi < g->groups; gi++) {
        const float *wg = w + gi * g->ocg * k;
        if (direct_1x1(g)) {
            for (int64_t n = 0; n < g->n; n++)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)k, (int)ohw, (int)g->ocg, 1.0f, wg, (int)k,
                            dy + (n * g->oc + gi * g->ocg) * ohw, (int)ohw, 0.0f, dx + (n * g->c + gi * g->cg) * hw,
                            (int)hw);
            continue;
        }
        for (int64_t n0 = 0; n0 < g->n; n0 += nb) {
            int64_t cnt = g->n - n0 < nb ? g->n - n0 : nb;
            float *cols = ws, *rows = ws + k * cnt * ohw;
            const float *r = rows;
            if (cnt > 1)
                nchw_to_rows(g, dy, n0, cnt, gi, rows);
            else
                r = dy + (n0 * g->oc + gi * g->ocg) * ohw;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)k, (int)(cnt * ohw), (int)g->ocg, 1.0f, wg,
                        (int)k, r, (int)(cnt * ohw), 0.0f, cols, (int)(cnt * ohw));
            col2im(g, cols, n0, cnt, gi, dx);
        }
    }
    if (bias)
        add_channel_bias(dx, bias, g->n, g->c, hw);
}

/* dw = sum over the samples of dy rows x columns^T */
static void conv_bwd_filter(const loom_conv_geom *g, const float *dy, const float *x, float *dw, float *ws)
{
    int64_t k = g->cg * g->kh * g->kw, ohw = g->oh * g->ow, nb = chunk_of(g);
    for (int64_t gi = 0; gi < g->groups; gi++) {
        float *dwg = dw + gi * g->ocg * k;
        if (direct_1x1(g)) {
            for (int64_t n = 0; n < g->n; n++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)g->ocg, (int)k, (int)ohw, 1.0f,
                            dy + (n * g->oc + gi * g->ocg) * ohw, (int)ohw, x + (n * g->c + gi * g->cg) * ohw,
                            (int)ohw, n ? 1.0f : 0.0f, dwg, (int)k);
            continue;
        }
        for (int64_t n0 = 0; n0 < g->n; n0 += nb) {
            int64_t cnt = g->n - n0 < nb ? g->n - n0 : nb;
            float *cols = ws, *rows = ws + k * cnt * ohw;
            const float *r = rows;
            im2col(g, x, n0, cnt, gi, cols);
            if (cnt > 1)
                nchw_to_rows(g, dy, n0, cnt, gi, rows);
            else
                r = dy + (n0 * g->oc + gi * g->ocg) * ohw;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)g->ocg, (int)k, (int)(cnt * ohw), 1.0f, r,
                        (int)(cnt * ohw), cols, (int)(cnt * ohw), n0 ? 1.0f : 0.0f, dwg, (int)k);
        }
    }
}

void cpu_k_conv(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    loom_conv_geom g = geom_of(x);
    float *ws = in[x->nin];
    const float *bias = x->nin > 2 ? in[2] : NULL;
#ifdef LOOM_HAVE_DNNL
    /* 1x1 convolutions stay the one GEMM they are here (faster than
     * oneDNN's, measured); the others go to oneDNN where it takes them */
    if (!direct_1x1(&g) && loom_cpu_dnnl_conv(x->def->code, &g, in[0], in[1], bias, out)) {
        /* oneDNN's backward to the data has no bias: a transposed
         * convolution's comes here */
        if (x->def->code == LOOM_CONV_BWD_DATA && bias)
            add_channel_bias(out, bias, g.n, g.c, g.h * g.w);
        return;
    }
#endif
    switch (x->def->code) {
    case LOOM_CONV_FWD: conv_fwd(&g, in[0], in[1], bias, out, ws); break;
    case LOOM_CONV_BWD_DATA: conv_bwd_data(&g, in[0], in[1], bias, out, ws); break;
    default: conv_bwd_filter(&g, in[0], in[1], out, ws); break;
    }
}

/* ---- pooling -------------------------------------------------------------------- */

/* The window of output (oh, ow): its first row and column (may be in the
 * padding) and the rows and columns inside the input. */
typedef struct window {
    int64_t h0, h1, w0, w1;    /* [h0, h1) x [w0, w1) inside the input */
    int64_t count;             /* the divisor of an average */
} window;

static window window_of(const loom_conv_geom *g, int64_t oh, int64_t ow, int count_pad)
{
    window wd;
    int64_t hs = oh * g->sh - g->pt, ws = ow * g->sw - g->pl;
    wd.h0 = hs < 0 ? 0 : hs;
    wd.w0 = ws < 0 ? 0 : ws;
    wd.h1 = hs + g->kh < g->h ? hs + g->kh : g->h;
    wd.w1 = ws + g->kw < g->w ? ws + g->kw : g->w;
    wd.count = count_pad ? g->kh * g->kw : (wd.h1 - wd.h0) * (wd.w1 - wd.w0);
    return wd;
}

/* The first arg-max of a window in row-major order. */
static int64_t window_argmax(const float *plane, int64_t w, const window *wd)
{
    int64_t best = wd->h0 * w + wd->w0;
    for (int64_t h = wd->h0; h < wd->h1; h++)
        for (int64_t c = wd->w0; c < wd->w1; c++)
            if (plane[h * w + c] > plane[best])
                best = h * w + c;
    return best;
}

typedef struct pool_job {
    loom_conv_geom g;
    const float *a, *dy;
    float *y;
    int is_max, count_pad;
} pool_job;

/* Windows that tile the input without overlap or padding (2 x 2 at stride
 * 2, the common case) need no window arithmetic. */
static int tiles(const loom_conv_geom *g)
{
    return g->kh == g->sh && g->kw == g->sw && g->pt == 0 && g->pl == 0 && g->oh * g->kh <= g->h &&
           g->ow * g->kw <= g->w;
}

static void pool_planes(void *arg, int64_t p0, int64_t p1)
{
    const pool_job *j = arg;
    const loom_conv_geom *g = &j->g;
    for (int64_t p = p0; p < p1; p++) {
        const float *plane = j->a + p * g->h * g->w;
        float *o = j->y + p * g->oh * g->ow;
        if (j->is_max && tiles(g)) {
            for (int64_t oh = 0; oh < g->oh; oh++)
                for (int64_t ow = 0; ow < g->ow; ow++) {
                    const float *r = plane + oh * g->kh * g->w + ow * g->kw;
                    float m = r[0];
                    for (int64_t h = 0; h < g->kh; h++)
                        for (int64_t c = 0; c < g->kw; c++)
                            m = r[h * g->w + c] > m ? r[h * g->w + c] : m;
                    o[oh * g->ow + ow] = m;
                }
            continue;
        }
        for (int64_t oh = 0; oh < g->oh; oh++)
            for (int64_t ow = 0; ow < g->ow; ow++) {
                window wd = window_of(g, oh, ow, j->count_pad);
                if (j->is_max) {
                    o[oh * g->ow + ow] = plane[window_argmax(plane, g->w, &wd)];
                    continue;
                }
                float s = 0;
                for (int64_t h = wd.h0; h < wd.h1; h++)
                    for (int64_t c = wd.w0; c < wd.w1; c++)
                        s += plane[h * g->w + c];
                o[oh * g->ow + ow] = s / (float)wd.count;
            }
    }
}

void cpu_k_pool(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    pool_job j = {loom_pool_geom_of(0, x->node, x->in[0]->node), in[0], NULL, out, x->def->code == LOOM_POOL_MAX,
                  x->node->attr.side};
    cpu_parallel_for(j.g.n * j.g.c, x->in[0]->node->numel, pool_planes, &j);
}

/* Every window adds its dy into dx: at its arg-max (max), or divided over
 * its elements (average); planes [p0, p1). */
static void pool_grad_planes(void *arg, int64_t p0, int64_t p1)
{
    const pool_job *j = arg;
    const loom_conv_geom *g = &j->g;
    for (int64_t p = p0; p < p1; p++) {
        const float *plane = j->is_max ? j->a + p * g->h * g->w : NULL, *d = j->dy + p * g->oh * g->ow;
        float *o = j->y + p * g->h * g->w;
        if (j->is_max && tiles(g)) {
            /* windows that tile the plane each write their own elements:
             * dy at the first arg-max (as window_argmax finds it), 0 at the
             * rest, and the rows and columns no window covers 0 */
            for (int64_t oh = 0; oh < g->oh; oh++) {
                for (int64_t ow = 0; ow < g->ow; ow++) {
                    int64_t base = oh * g->kh * g->w + ow * g->kw, best = base;
                    for (int64_t h = 0; h < g->kh; h++)
                        for (int64_t c = 0; c < g->kw; c++) {
                            int64_t at = base + h * g->w + c;
                            best = plane[at] > plane[best] ? at : best;
                            o[at] = 0.0f;
                        }
                    o[best] = d[oh * g->ow + ow];
                }
                for (int64_t h = oh * g->kh; h < (oh + 1) * g->kh; h++)
                    for (int64_t c = g->ow * g->kw; c < g->w; c++)
                        o[h * g->w + c] = 0.0f;
            }
            memset(o + g->oh * g->kh * g->w, 0, (size_t)((g->h - g->oh * g->kh) * g->w) * sizeof *o);
            continue;
        }
        memset(o, 0, (size_t)(g->h * g->w) * sizeof *o);
        for (int64_t oh = 0; oh < g->oh; oh++)
            for (int64_t ow = 0; ow < g->ow; ow++) {
                window wd = window_of(g, oh, ow, j->count_pad);
                float v = d[oh * g->ow + ow];
                if (j->is_max) {
                    o[window_argmax(plane, g->w, &wd)] += v;
                    continue;
                }
                v /= (float)wd.count;
                for (int64_t h = wd.h0; h < wd.h1; h++)
                    for (int64_t c = wd.w0; c < wd.w1; c++)
                        o[h * g->w + c] += v;
            }
    }
}

void cpu_k_pool_grad(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    pool_job j = {loom_pool_geom_of(1, x->node, x->in[0]->node), x->nin > 1 ? in[1] : NULL, in[0], out,
                  x->def->code == LOOM_POOL_MAX, x->node->attr.side};
    cpu_parallel_for(j.g.n * j.g.c, x->node->numel, pool_grad_planes, &j);
}

/* ---- normalization -------------------------------------------------------------- */

static float rstd_of(float var, float eps)
{
    return 1.0f / sqrtf(var + eps);
}

typedef struct norm_job {
    loom_norm_geom g;
    const loom_attr *at;
    const float *a, *dy, *st, *gamma, *beta, *gs;
    float *y;
    double *sums;              /* per plane: sum dy, sum dy x */
    int64_t p0;                /* the first plane of the sums' chunk */
} norm_job;

/* Statistics [q0, q1): the mean, then the biased variance, in two passes
 * (in double across runs: means of a few hundred thousand similar values
 * lose digits in one). */
static void norm_stats_rows(void *arg, int64_t q0, int64_t q1)
{
    const norm_job *j = arg;
    const loom_norm_geom *g = &j->g;
    for (int64_t q = q0; q < q1; q++) {
        double s = 0, ss = 0;
        for (int64_t b = 0; b < g->blocks; b++)
            s += cpu_sum(j->a + q * g->len + b * g->stride, g->len);
        float fm = (float)(s / (double)g->m);
        for (int64_t b = 0; b < g->blocks; b++)
            ss += cpu_sum_sqdev(j->a + q * g->len + b * g->stride, g->len, fm);
        j->y[q] = fm;
        j->y[g->q + q] = (float)(ss / (double)g->m);
    }
}

/* y = (x - mean) rstd gamma + beta, planes [p0, p1) */
static void norm_apply_planes(void *arg, int64_t p0, int64_t p1)
{
    const norm_job *j = arg;
    const loom_norm_geom *g = &j->g;
    for (int64_t p = p0; p < p1; p++) {
        int64_t q = (p / g->cpg) % g->q, c = p % g->c;
        float scale = rstd_of(j->st[g->q + q], j->at->eps) * j->gamma[c], shift = j->beta[c] - j->st[q] * scale;
        const float *r = j->a + p * g->s;
        float *o = j->y + p * g->s;
        for (int64_t k = 0; k < g->s; k++)
            o[k] = r[k] * scale + shift;
    }
}

/* dx = rstd (gamma dy - (A + xhat B) / M), planes [p0, p1) */
static void norm_grad_planes(void *arg, int64_t p0, int64_t p1)
{
    const norm_job *j = arg;
    const loom_norm_geom *g = &j->g;
    float inv_m = 1.0f / (float)g->m;
    for (int64_t p = p0; p < p1; p++) {
        int64_t q = (p / g->cpg) % g->q, c = p % g->c;
        float rs = rstd_of(j->st[g->q + q], j->at->eps), gm = j->gamma[c] * rs, mean = j->st[q];
        const float *d = j->dy + p * g->s, *r = j->a + p * g->s;
        float *o = j->y + p * g->s;
        if (j->at->side) {
            for (int64_t k = 0; k < g->s; k++)
                o[k] = gm * d[k];
            continue;
        }
        float ca = j->gs[q] * inv_m, cb = j->gs[g->q + q] * inv_m * rs;
        for (int64_t k = 0; k < g->s; k++)
            o[k] = rs * (j->gamma[c] * d[k] - ca - (r[k] - mean) * cb);
    }
}

/* Per plane of the chunk: the sums of dy and of dy x. */
static void norm_sums_planes(void *arg, int64_t p0, int64_t p1)
{
    const norm_job *j = arg;
    const loom_norm_geom *g = &j->g;
    for (int64_t p = p0; p < p1; p++) {
        const float *d = j->dy + (j->p0 + p) * g->s, *r = j->a + (j->p0 + p) * g->s;
        float a, b;
        cpu_sum_dot(d, r, g->s, &a, &b);
        j->sums[2 * p] = a;
        j->sums[2 * p + 1] = b;
    }
}

/* x [N, C, S] plane by plane (contiguous runs of S), each plane's
 * statistic q = ((n C + c) / cpg) % Q. */
void cpu_k_norm(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    const loom_attr *at = &x->node->attr;
    int code = x->def->code;
    /* x is in[0] for the statistics and the forward, in[1] for gradients */
    const loom_node *nx = code == LOOM_NORM_STATS || code == LOOM_NORM_APPLY ? x->in[0]->node : x->in[1]->node;
    norm_job j;
    memset(&j, 0, sizeof j);
    j.g = loom_norm_geom_of(nx, at->cgroups);
    j.at = at;
    j.y = out;
    const loom_norm_geom *g = &j.g;
    int64_t planes = g->n * g->c;
    if (code == LOOM_NORM_STATS) {
        j.a = in[0];
        cpu_parallel_for(g->q, 2 * nx->numel, norm_stats_rows, &j);
        return;
    }
    if (code == LOOM_NORM_APPLY) {
        j.a = in[0], j.st = in[1], j.gamma = in[2], j.beta = in[3];
        cpu_parallel_for(planes, nx->numel, norm_apply_planes, &j);
        return;
    }
    j.dy = in[0], j.a = in[1], j.st = in[2];
    if (code == LOOM_NORM_GRAD) {
        j.gamma = in[3], j.gs = in[4];
        cpu_parallel_for(planes, 2 * nx->numel, norm_grad_planes, &j);
        return;
    }
    /* GRAD_STATS (per statistic: sum gamma dy, sum gamma dy xhat) and
     * DGAMMA (per channel: sum dy xhat, sum dy) from the planes' sums, as
     * sum dy xhat = rstd (sum dy x - mean sum dy) */
    const float *gamma = code == LOOM_NORM_GRAD_STATS ? in[3] : NULL;
    int64_t rows = code == LOOM_NORM_DGAMMA ? g->c : g->q;
    float *y = out;
    memset(y, 0, (size_t)(2 * rows) * sizeof *y);
    enum { CHUNK = 2048 };
    double sums[2 * CHUNK];
    j.sums = sums;
    for (int64_t base = 0; base < planes; base += CHUNK) {
        int64_t cnt = planes - base < CHUNK ? planes - base : CHUNK;
        j.p0 = base;
        cpu_parallel_for(cnt, 2 * cnt * g->s, norm_sums_planes, &j);
        for (int64_t k = 0; k < cnt; k++) {
            int64_t p = base + k, q = (p / g->cpg) % g->q, c = p % g->c;
            double sd = sums[2 * k], sdx = sums[2 * k + 1];
            double gx = rstd_of(j.st[g->q + q], at->eps) * (sdx - j.st[q] * sd);
            int64_t r = code == LOOM_NORM_DGAMMA ? c : q;
            y[r] += (float)(gamma ? gamma[c] * sd : gx);
            y[rows + r] += (float)(gamma ? gamma[c] * gx : sd);
        }
    }
}

void cpu_k_norm_update(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)out, (void)slot;
    float *r = in[0];
    const float *s = in[1];
    float m = x->node->attr.momentum;
    for (int64_t i = 0; i < x->in[0]->node->numel; i++)
        r[i] = m * r[i] + (1.0f - m) * s[i];
}

/* Pruning: p *= mask, in place (the mask holds exact 0s and 1s). */
void cpu_k_mask_update(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)out, (void)slot;
    float *p = in[0];
    const float *mask = in[1];
    for (int64_t i = 0; i < x->in[0]->node->numel; i++)
        p[i] *= mask[i];
}

/* ---- windows and concat ------------------------------------------------------------ */

/* Reflection of i into [0, n) without repeating the edge (|i| < n). */
static int64_t reflect(int64_t i, int64_t n)
{
    if (n == 1)
        return 0;
    if (i < 0)
        return -i;
    if (i >= n)
        return 2 * (n - 1) - i;
    return i;
}

void cpu_k_window(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    const loom_node *nd = x->node, *ni = x->in[0]->node;
    const loom_attr *at = &nd->attr;
    int64_t od[4], id[4];
    loom_shape4(nd->ndim, nd->shape, od);
    loom_shape4(ni->ndim, ni->shape, id);
    int code = x->def->code;
    const uint32_t *a = in[0];
    uint32_t *y = out;
    float fill = code == LOOM_WINDOW_PAD ? at->wvalue : 0.0f;
    uint32_t fbits;
    memcpy(&fbits, &fill, sizeof fbits);
    const float *af = in[0];
    float *yf = out;
    int64_t k = 0;
    for (int64_t i0 = 0; i0 < od[0]; i0++)
        for (int64_t i1 = 0; i1 < od[1]; i1++)
            for (int64_t i2 = 0; i2 < od[2]; i2++)
                for (int64_t i3 = 0; i3 < od[3]; i3++, k++) {
                    int64_t o[4] = {i0, i1, i2, i3}, off = 0;
                    if (code == LOOM_WINDOW_PAD_GRAD) {
                        /* dx[o] = the sum of dy over every padded position
                         * that reflects onto o: per axis o itself and its
                         * mirrors past either edge */
                        int64_t cand[4][3], nc[4];
                        for (int d = 0; d < 4; d++) {
                            int64_t lo = -at->wstart[d], n = od[d], p = o[d] + lo;
                            nc[d] = 0;
                            cand[d][nc[d]++] = p;
                            if (o[d] > 0 && o[d] <= lo)
                                cand[d][nc[d]++] = lo - o[d];
                            int64_t hi = id[d] - n - lo;
                            if (o[d] < n - 1 && o[d] >= n - 1 - hi)
                                cand[d][nc[d]++] = lo + 2 * (n - 1) - o[d];
                        }
                        float s = 0;
                        for (int64_t c0 = 0; c0 < nc[0]; c0++)
                            for (int64_t c1 = 0; c1 < nc[1]; c1++)
                                for (int64_t c2 = 0; c2 < nc[2]; c2++)
                                    for (int64_t c3 = 0; c3 < nc[3]; c3++)
                                        s += af[((cand[0][c0] * id[1] + cand[1][c1]) * id[2] + cand[2][c2]) * id[3] +
                                                cand[3][c3]];
                        yf[k] = s;
                        continue;
                    }
                    int inside = 1;
                    for (int d = 0; d < 4 && inside; d++) {
                        int64_t c;
                        if (code == LOOM_WINDOW_SLICE_GRAD) {
                            /* dx[o] is dy at the slice's element on o, if any */
                            int64_t r = o[d] - at->wstart[d];
                            inside = r >= 0 && r % at->wstep[d] == 0 && r / at->wstep[d] < id[d];
                            c = inside ? r / at->wstep[d] : 0;
                        } else {
                            c = at->wstart[d] + o[d] * at->wstep[d];
                            if (c < 0 || c >= id[d]) {
                                if (code == LOOM_WINDOW_PAD && at->wmode == LOOM_PAD_REFLECT)
                                    c = reflect(c, id[d]);
                                else
                                    inside = 0;
                            }
                        }
                        off = off * id[d] + c;
                    }
                    y[k] = inside ? a[off] : fbits;
                }
}

void cpu_k_concat(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    loom_axis_split sp = loom_axis_split_of(x->node, x->node->attr.axis);
    uint32_t *y = out;
    int64_t off = 0;
    for (int k = 0; k < x->nin; k++) {
        int64_t len = x->in[k]->node->shape[x->node->attr.axis] * sp.inner;
        const uint32_t *a = in[k];
        for (int64_t o = 0; o < sp.outer; o++)
            memcpy(y + o * sp.n * sp.inner + off, a + o * len, (size_t)len * sizeof *y);
        off += len;
    }
}
