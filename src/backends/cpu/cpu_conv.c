/* The CPU reference of convolutional networks' ops: convolutions as
 * im2col + OpenBLAS SGEMM (the columns of a chunk of samples in the
 * program's workspace), pooling, normalization, windows and concat, in f32
 * over f32 views of the tensors. */
#include "cpu_kernels.h"
#include "../../core/conv_geom.h"
#include "../common/layout.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* ---- convolutions ------------------------------------------------------------ */

/* At most this many floats of columns per chunk of samples (32 MiB): the
 * workspace stays bounded whatever the batch. */
#define COLS_MAX ((int64_t)8 << 20)

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
    if (x->def->family != LOOM_FAM_CONV)
        return 0;
    loom_conv_geom g = geom_of(x);
    int64_t nb = chunk_of(&g), ohw = g.oh * g.ow;
    /* the columns and the chunk's output (or dy) rows of one group */
    return (size_t)((g.cg * g.kh * g.kw + g.ocg) * nb * ohw);
}

/* cols [K, nb * OHW] of samples n0.. of group gi: row (c, kh, kw), column
 * (n, oh, ow), zeros where the window is in the padding. */
static void im2col(const loom_conv_geom *g, const float *x, int64_t n0, int64_t nb, int64_t gi, float *cols)
{
    int64_t ohw = g->oh * g->ow, ld = nb * ohw;
    for (int64_t c = 0; c < g->cg; c++)
        for (int64_t kh = 0; kh < g->kh; kh++)
            for (int64_t kw = 0; kw < g->kw; kw++) {
                float *row = cols + ((c * g->kh + kh) * g->kw + kw) * ld;
                for (int64_t n = 0; n < nb; n++) {
                    const float *plane = x + ((n0 + n) * g->c + gi * g->cg + c) * g->h * g->w;
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

/* The reverse of im2col: every column entry added into dx where it came
 * from. */
static void col2im(const loom_conv_geom *g, const float *cols, int64_t n0, int64_t nb, int64_t gi, float *dx)
{
    int64_t ohw = g->oh * g->ow, ld = nb * ohw;
    for (int64_t c = 0; c < g->cg; c++)
        for (int64_t kh = 0; kh < g->kh; kh++)
            for (int64_t kw = 0; kw < g->kw; kw++) {
                const float *row = cols + ((c * g->kh + kh) * g->kw + kw) * ld;
                for (int64_t n = 0; n < nb; n++) {
                    float *plane = dx + ((n0 + n) * g->c + gi * g->cg + c) * g->h * g->w;
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
            float *cols = ws, *rows = ws + k * cnt * ohw;
            im2col(g, x, n0, cnt, gi, cols);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)g->ocg, (int)(cnt * ohw), (int)k, 1.0f, wg,
                        (int)k, cols, (int)(cnt * ohw), 0.0f, rows, (int)(cnt * ohw));
            rows_to_nchw(g, rows, n0, cnt, gi, y);
        }
    }
    if (bias)
        for (int64_t n = 0; n < g->n; n++)
            for (int64_t c = 0; c < g->oc; c++) {
                float *p = y + (n * g->oc + c) * ohw, b = bias[c];
                for (int64_t i = 0; i < ohw; i++)
                    p[i] += b;
            }
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
            nchw_to_rows(g, dy, n0, cnt, gi, rows);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)k, (int)(cnt * ohw), (int)g->ocg, 1.0f, wg,
                        (int)k, rows, (int)(cnt * ohw), 0.0f, cols, (int)(cnt * ohw));
            col2im(g, cols, n0, cnt, gi, dx);
        }
    }
    if (bias)
        for (int64_t n = 0; n < g->n; n++)
            for (int64_t c = 0; c < g->c; c++) {
                float *p = dx + (n * g->c + c) * hw, b = bias[c];
                for (int64_t i = 0; i < hw; i++)
                    p[i] += b;
            }
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
            im2col(g, x, n0, cnt, gi, cols);
            nchw_to_rows(g, dy, n0, cnt, gi, rows);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)g->ocg, (int)k, (int)(cnt * ohw), 1.0f, rows,
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

void cpu_k_pool(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    loom_conv_geom g = loom_pool_geom_of(0, x->node, x->in[0]->node);
    const float *a = in[0];
    float *y = out;
    int is_max = x->def->code == LOOM_POOL_MAX, count_pad = x->node->attr.side;
    for (int64_t p = 0; p < g.n * g.c; p++) {
        const float *plane = a + p * g.h * g.w;
        float *o = y + p * g.oh * g.ow;
        for (int64_t oh = 0; oh < g.oh; oh++)
            for (int64_t ow = 0; ow < g.ow; ow++) {
                window wd = window_of(&g, oh, ow, count_pad);
                if (is_max) {
                    o[oh * g.ow + ow] = plane[window_argmax(plane, g.w, &wd)];
                    continue;
                }
                float s = 0;
                for (int64_t h = wd.h0; h < wd.h1; h++)
                    for (int64_t c = wd.w0; c < wd.w1; c++)
                        s += plane[h * g.w + c];
                o[oh * g.ow + ow] = s / (float)wd.count;
            }
    }
}

/* in: dy [, x]. Every window adds its dy into dx: at its arg-max (max), or
 * divided over its elements (average). */
void cpu_k_pool_grad(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    loom_conv_geom g = loom_pool_geom_of(1, x->node, x->in[0]->node);
    const float *dy = in[0], *a = x->nin > 1 ? in[1] : NULL;
    float *dx = out;
    int is_max = x->def->code == LOOM_POOL_MAX, count_pad = x->node->attr.side;
    memset(dx, 0, (size_t)x->node->numel * sizeof *dx);
    for (int64_t p = 0; p < g.n * g.c; p++) {
        const float *plane = is_max ? a + p * g.h * g.w : NULL, *d = dy + p * g.oh * g.ow;
        float *o = dx + p * g.h * g.w;
        for (int64_t oh = 0; oh < g.oh; oh++)
            for (int64_t ow = 0; ow < g.ow; ow++) {
                window wd = window_of(&g, oh, ow, count_pad);
                float v = d[oh * g.ow + ow];
                if (is_max) {
                    o[window_argmax(plane, g.w, &wd)] += v;
                    continue;
                }
                v /= (float)wd.count;
                for (int64_t h = wd.h0; h < wd.h1; h++)
                    for (int64_t c = wd.w0; c < wd.w1; c++)
                        o[h * g.w + c] += v;
            }
    }
}

/* ---- normalization -------------------------------------------------------------- */

/* Element j of statistic q's elements: its offset in x. */
static int64_t norm_at(const loom_norm_geom *g, int64_t q, int64_t j)
{
    return q * g->len + (j / g->len) * g->stride + j % g->len;
}

static float rstd_of(float var, float eps)
{
    return 1.0f / sqrtf(var + eps);
}

void cpu_k_norm(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    const loom_attr *at = &x->node->attr;
    int code = x->def->code;
    /* x is in[0] for the statistics and the forward, in[1] for gradients */
    const loom_node *nx = code == LOOM_NORM_STATS || code == LOOM_NORM_APPLY ? x->in[0]->node : x->in[1]->node;
    loom_norm_geom g = loom_norm_geom_of(nx, at->cgroups);
    float *y = out;
    if (code == LOOM_NORM_STATS) {
        const float *a = in[0];
        for (int64_t q = 0; q < g.q; q++) {
            double s = 0, ss = 0;
            for (int64_t j = 0; j < g.m; j++)
                s += a[norm_at(&g, q, j)];
            double mean = s / (double)g.m;
            for (int64_t j = 0; j < g.m; j++) {
                double dd = a[norm_at(&g, q, j)] - mean;
                ss += dd * dd;
            }
            y[q] = (float)mean;
            y[g.q + q] = (float)(ss / (double)g.m);
        }
        return;
    }
    if (code == LOOM_NORM_APPLY) {
        const float *a = in[0], *st = in[1], *gamma = in[2], *beta = in[3];
        for (int64_t i = 0; i < nx->numel; i++) {
            int64_t r = i / g.s, q = (r / g.cpg) % g.q, c = r % g.c;
            y[i] = (a[i] - st[q]) * rstd_of(st[g.q + q], at->eps) * gamma[c] + beta[c];
        }
        return;
    }
    const float *dy = in[0], *a = in[1], *st = in[2];
    if (code == LOOM_NORM_DGAMMA) {
        for (int64_t c = 0; c < g.c; c++) {
            double s = 0;
            for (int64_t n = 0; n < g.n; n++)
                for (int64_t k = 0; k < g.s; k++) {
                    int64_t r = n * g.c + c, i = r * g.s + k, q = (r / g.cpg) % g.q;
                    s += (double)dy[i] * (a[i] - st[q]) * rstd_of(st[g.q + q], at->eps);
                }
            y[c] = (float)s;
        }
        return;
    }
    const float *gamma = in[3];
    if (code == LOOM_NORM_GRAD_STATS) {
        for (int64_t q = 0; q < g.q; q++) {
            double sa = 0, sb = 0;
            float mean = st[q], rs = rstd_of(st[g.q + q], at->eps);
            for (int64_t j = 0; j < g.m; j++) {
                int64_t i = norm_at(&g, q, j), c = (i / g.s) % g.c;
                double gd = (double)gamma[c] * dy[i];
                sa += gd;
                sb += gd * (double)((a[i] - mean) * rs);
            }
            y[q] = (float)sa;
            y[g.q + q] = (float)sb;
        }
        return;
    }
    /* LOOM_NORM_GRAD */
    const float *gs = in[4];
    float inv_m = 1.0f / (float)g.m;
    for (int64_t i = 0; i < nx->numel; i++) {
        int64_t r = i / g.s, q = (r / g.cpg) % g.q, c = r % g.c;
        float rs = rstd_of(st[g.q + q], at->eps), gd = gamma[c] * dy[i];
        if (at->side)
            y[i] = rs * gd;
        else
            y[i] = rs * (gd - (gs[q] + (a[i] - st[q]) * rs * gs[g.q + q]) * inv_m);
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
