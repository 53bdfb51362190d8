/* The CPU reference of the sequence ops (src/core/ir.h gives their
 * semantics): batched matmul, layer / RMS norm and their gradients, take,
 * gather and their scatter-add gradients, rotary embeddings. In f32 over
 * f32 views, as every CPU kernel. */
#include "cpu_kernels.h"
#include "../common/layout.h"
#include "cpu_simd.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* ---- batched matmul ----------------------------------------------------------- */

void loom_cpu_bmm(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    const loom_node *nd = x->node;
    loom_bmm_dims d = loom_bmm_dims_of(nd, x->in[0]->node, x->in[1]->node);
    const float *a = in[0], *b = in[1];
    float *y = out;
    int64_t mn = d.m * d.n;
    for (int64_t i0 = 0; i0 < d.nb[0]; i0++)
        for (int64_t i1 = 0; i1 < d.nb[1]; i1++) {
            const float *pa = a + i0 * d.sa[0] + i1 * d.sa[1], *pb = b + i0 * d.sb[0] + i1 * d.sb[1];
            float *pc = y + (i0 * d.nb[1] + i1) * mn;
            cblas_sgemm(CblasRowMajor, nd->attr.ta ? CblasTrans : CblasNoTrans, nd->attr.tb ? CblasTrans : CblasNoTrans,
                        (int)d.m, (int)d.n, (int)d.k, 1.0f, pa, (int)d.lda, pb, (int)d.ldb, 0.0f, pc, (int)d.n);
        }
}

/* ---- normalization -------------------------------------------------------------- */

/* The row's mean (0 for RMS norm) and 1 / sqrt(variance or mean square +
 * eps), over eight float lanes (cpu_simd.h): the sums in double were a
 * serial add chain per element, and a ViT step's layer norms took 13 ms
 * of its 126. */
static void row_stats(const float *r, int64_t c, int rms, float eps, float *mean, float *rstd)
{
    float m = rms ? 0.0f : cpu_sum(r, c) / (float)c;
    *mean = m;
    *rstd = 1.0f / sqrtf(cpu_sum_sqdev(r, c, m) / (float)c + eps);
}

typedef struct norm_job {
    const loom_exec_node *x;
    float *y;
    void *const *in;
} norm_job;

static void norm_rows(void *arg, int64_t r0, int64_t r1)
{
    const norm_job *jb = arg;
    const loom_node *nd = jb->x->node;
    int rms = jb->x->def->code == LOOM_LNORM_RMS, aff = nd->attr.affine;
    int64_t c = nd->shape[nd->ndim - 1];
    const float *a = jb->in[0], *gamma = (aff & 1) ? jb->in[1] : NULL, *beta = (aff & 2) ? jb->in[1 + (aff & 1)] : NULL;
    for (int64_t r = r0; r < r1; r++) {
        const float *row = a + r * c;
        float *y = jb->y + r * c, mean, rstd;
        row_stats(row, c, rms, nd->attr.norm_eps, &mean, &rstd);
        for (int64_t j = 0; j < c; j++) {
            float v = (row[j] - mean) * rstd;
            if (gamma)
                v *= gamma[j];
            if (beta)
                v += beta[j];
            y[j] = v;
        }
    }
}

void loom_cpu_norm(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    const loom_node *nd = x->node;
    int64_t c = nd->shape[nd->ndim - 1];
    norm_job jb = {x, out, in};
    cpu_parallel_for(nd->numel / c, nd->numel, norm_rows, &jb);
}

/* in: dy, x, [gamma]. With g = dy * gamma and xhat the normalized row:
 * layer norm dx = rstd (g - mean(g) - xhat mean(g xhat)), RMS norm
 * dx = rstd (g - xhat mean(g xhat)). */
static void norm_grad_rows(void *arg, int64_t r0, int64_t r1)
{
    const norm_job *jb = arg;
    const loom_node *nd = jb->x->node;
    int rms = jb->x->def->code == LOOM_LNORM_RMS;
    int64_t c = nd->shape[nd->ndim - 1];
    const float *dy = jb->in[0], *a = jb->in[1], *gamma = (nd->attr.affine & 1) ? jb->in[2] : NULL;
    for (int64_t r = r0; r < r1; r++) {
        const float *row = a + r * c, *d = dy + r * c;
        float *y = jb->y + r * c, mean, rstd;
        row_stats(row, c, rms, nd->attr.norm_eps, &mean, &rstd);
        /* g and xhat into the output row, then their sums */
        float *g = y;
        for (int64_t j = 0; j < c; j++)
            g[j] = gamma ? d[j] * gamma[j] : d[j];
        float sg = rms ? 0.0f : cpu_sum(g, c) / (float)c, sgx = rstd * cpu_dot_dev(g, row, c, mean) / (float)c;
        for (int64_t j = 0; j < c; j++) {
            float xh = (row[j] - mean) * rstd;
            y[j] = rstd * (g[j] - sg - xh * sgx);
        }
    }
}

void loom_cpu_norm_grad(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    const loom_node *nd = x->node;
    int64_t c = nd->shape[nd->ndim - 1];
    norm_job jb = {x, out, in};
    cpu_parallel_for(nd->numel / c, 3 * nd->numel, norm_grad_rows, &jb);
}

/* ---- indexing ---------------------------------------------------------------------- */

/* The rank-4 walk of an index tensor (gather / scatter): for element p of
 * idx (coords c0..c3), the offset in x of c with the axis coordinate left
 * out (the kernel adds idx[p] times the axis's stride). */
typedef struct idx_walk {
    int64_t d[4];       /* idx's shape, rank 4 */
    int64_t xs[4];      /* x's dense strides, rank 4 */
    int axis;           /* in the rank-4 index space */
} idx_walk;

static idx_walk idx_walk_of(const loom_node *xn, const loom_node *in, int axis)
{
    idx_walk w;
    int64_t xd[4];
    loom_shape4(in->ndim, in->shape, w.d);
    loom_shape4(xn->ndim, xn->shape, xd);
    int64_t s = 1;
    for (int i = 3; i >= 0; i--) {
        w.xs[i] = s;
        s *= xd[i];
    }
    w.axis = axis + 4 - xn->ndim;
    return w;
}

/* take: out [outer, J, inner] = x [outer, V, inner] at the indices. */
void loom_cpu_take(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    const loom_node *nx = x->in[0]->node, *ni = x->in[1]->node;
    const float *a = in[0];
    const int32_t *idx = in[1];
    float *y = out;
    if (x->def->code == LOOM_INDEX_TAKE) {
        loom_axis_split sp = loom_axis_split_of(nx, x->node->attr.axis);
        int64_t nj = ni->numel;
        for (int64_t o = 0; o < sp.outer; o++)
            for (int64_t j = 0; j < nj; j++) {
                int32_t v = idx[j];
                float *row = y + (o * nj + j) * sp.inner;
                if (v < 0 || v >= sp.n)
                    for (int64_t i = 0; i < sp.inner; i++)
                        row[i] = NAN;
                else
                    memcpy(row, a + (o * sp.n + v) * sp.inner, (size_t)sp.inner * sizeof *row);
            }
        return;
    }
    idx_walk w = idx_walk_of(nx, ni, x->node->attr.axis);
    int64_t n = nx->shape[x->node->attr.axis], p = 0;
    for (int64_t c0 = 0; c0 < w.d[0]; c0++)
        for (int64_t c1 = 0; c1 < w.d[1]; c1++)
            for (int64_t c2 = 0; c2 < w.d[2]; c2++)
                for (int64_t c3 = 0; c3 < w.d[3]; c3++, p++) {
                    int64_t c[4] = {c0, c1, c2, c3};
                    c[w.axis] = idx[p];
                    y[p] = idx[p] < 0 || idx[p] >= n ? NAN
                                                     : a[c[0] * w.xs[0] + c[1] * w.xs[1] + c[2] * w.xs[2] + c[3] * w.xs[3]];
                }
}

/* The scatter-adds (in: src, idx): every output the sum of what lands on
 * it in ascending source order (the GPU kernels sum in the same order);
 * out-of-range indices add nothing. */
void loom_cpu_scatter(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    const loom_node *nd = x->node, *ni = x->in[1]->node;
    const float *src = in[0];
    const int32_t *idx = in[1];
    float *y = out;
    memset(y, 0, (size_t)nd->numel * sizeof *y);
    if (x->def->code == LOOM_INDEX_TAKE) {
        loom_axis_split sp = loom_axis_split_of(nd, nd->attr.axis);
        int64_t nj = ni->numel;
        for (int64_t o = 0; o < sp.outer; o++)
            for (int64_t j = 0; j < nj; j++) {
                int32_t v = idx[j];
                if (v < 0 || v >= sp.n)
                    continue;
                float *row = y + (o * sp.n + v) * sp.inner;
                const float *s = src + (o * nj + j) * sp.inner;
                for (int64_t i = 0; i < sp.inner; i++)
                    row[i] += s[i];
            }
        return;
    }
    idx_walk w = idx_walk_of(nd, ni, nd->attr.axis);
    int64_t n = nd->shape[nd->attr.axis], p = 0;
    for (int64_t c0 = 0; c0 < w.d[0]; c0++)
        for (int64_t c1 = 0; c1 < w.d[1]; c1++)
            for (int64_t c2 = 0; c2 < w.d[2]; c2++)
                for (int64_t c3 = 0; c3 < w.d[3]; c3++, p++) {
                    if (idx[p] < 0 || idx[p] >= n)
                        continue;
                    int64_t c[4] = {c0, c1, c2, c3};
                    c[w.axis] = idx[p];
                    y[c[0] * w.xs[0] + c[1] * w.xs[1] + c[2] * w.xs[2] + c[3] * w.xs[3]] += src[p];
                }
}

/* ---- rotary position embedding ------------------------------------------------------- */

void loom_cpu_rope(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    const loom_node *nd = x->node;
    int axis = nd->attr.axis;
    int64_t dim = nd->shape[nd->ndim - 1], half = dim / 2, npos = nd->shape[axis], outer = 1, mid = 1;
    for (int i = 0; i < axis; i++)
        outer *= nd->shape[i];
    for (int i = axis + 1; i < nd->ndim - 1; i++)
        mid *= nd->shape[i];
    /* the kernels of every backend compute the angle alike, in f32 */
    float l2b = log2f(nd->attr.rope_base), sign = nd->attr.rope_inverse ? -1.0f : 1.0f;
    const float *a = in[0];
    float *y = out;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t p = 0; p < npos; p++)
            for (int64_t m = 0; m < mid; m++) {
                int64_t base = ((o * npos + p) * mid + m) * dim;
                for (int64_t i = 0; i < half; i++) {
                    float th = (float)p * exp2f(-(float)(2 * i) / (float)dim * l2b);
                    float c = cosf(th), s = sign * sinf(th), x1 = a[base + i], x2 = a[base + i + half];
                    y[base + i] = x1 * c - x2 * s;
                    y[base + i + half] = x1 * s + x2 * c;
                }
            }
}
