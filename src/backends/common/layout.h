/* Index arithmetic every backend shares: shapes aligned to rank 4, the
 * strides of a broadcast operand, a transpose and the gather family, and a
 * tensor split along one axis. One definition, so the kernels of every
 * backend walk tensors exactly as the CPU reference does. */
#ifndef LOOM_BACKEND_LAYOUT_H
#define LOOM_BACKEND_LAYOUT_H

#include <math.h>

#include "../../core/ir.h"
#include "codes.h"

/* Rank-4 view of a shape whose last dims line up with the output's. */
static inline void loom_shape4(int nd, const int64_t *shape, int64_t out[4])
{
    for (int i = 0; i < 4; i++) {
        int k = i - (4 - nd);
        out[i] = k >= 0 ? shape[k] : 1;
    }
}

/* Strides of `shape` (rank nd) in the rank-4 index space out4; 0 along the
 * dims where it is broadcast (size 1 against a larger out dim). */
static inline void loom_bstrides(int nd, const int64_t *shape, const int64_t out4[4], int64_t st[4])
{
    int64_t s = 1;
    for (int i = 3; i >= 0; i--) {
        int k = i - (4 - nd);
        int64_t d = k >= 0 ? shape[k] : 1;
        st[i] = (d == 1 && out4[i] != 1) ? 0 : s;
        s *= d;
    }
}

/* A transpose as a gather: the out shape d (rank 4) and, per out dim, the
 * input stride it walks (out dim i walks input dim perm[i]). */
static inline void loom_transpose_strides(const loom_node *in, const loom_node *out, int64_t d[4], int64_t st[4])
{
    int nd = in->ndim;
    int64_t ist[LOOM_MAX_DIMS] = {0}, s = 1;
    for (int i = nd - 1; i >= 0; i--) {
        ist[i] = s;
        s *= in->shape[i];
    }
    for (int i = 0; i < 4; i++) {
        int k = i - (4 - nd);
        d[i] = k >= 0 ? out->shape[k] : 1;
        st[i] = k >= 0 ? ist[out->attr.perm[k]] : 0;
    }
}

/* out[i] = in[strided i] for the gather family: EXPAND walks the input
 * with stride 0 along broadcast dims, TRANSPOSE with permuted strides; the
 * out shape as rank 4 in d. (COPY needs no strides.) */
static inline void loom_gather_strides(int code, const loom_node *in, const loom_node *out, int64_t d[4],
                                       int64_t st[4])
{
    if (code == LOOM_GATHER_TRANSPOSE) {
        loom_transpose_strides(in, out, d, st);
        return;
    }
    loom_shape4(out->ndim, out->shape, d);
    if (code == LOOM_GATHER_EXPAND) {
        loom_bstrides(out->attr.rdim, out->attr.rshape, d, st);
    } else {
        int64_t s = 1;
        for (int i = 3; i >= 0; i--) {
            st[i] = s;
            s *= d[i];
        }
    }
}

/* A tensor seen along one axis: outer x n x inner, row-major. */
typedef struct loom_axis_split {
    int64_t outer, n, inner;
} loom_axis_split;

static inline loom_axis_split loom_axis_split_of(const loom_node *t, int axis)
{
    loom_axis_split s = {1, 1, 1};
    if (t->ndim == 0)
        return s;
    s.n = t->shape[axis];
    for (int i = 0; i < axis; i++)
        s.outer *= t->shape[i];
    for (int i = axis + 1; i < t->ndim; i++)
        s.inner *= t->shape[i];
    return s;
}

/* ---- sequence ops ----------------------------------------------------------- */

/* A batched matmul (LOOM_OP_BATCH_MATMUL): its batch dims folded into two
 * (outer nb[0], inner nb[1]; 1 where absent), each operand's matrix offset
 * per step of them (elements; 0 along a dim it is broadcast over), and the
 * GEMM of one batch as the 2-D matmul reads it (row lengths lda, ldb). */
typedef struct loom_bmm_dims {
    int64_t nb[2];
    int64_t sa[2], sb[2];
    int64_t m, n, k, lda, ldb;
} loom_bmm_dims;

static inline loom_bmm_dims loom_bmm_dims_of(const loom_node *out, const loom_node *a, const loom_node *b)
{
    loom_bmm_dims d;
    int nbo = out->ndim - 2;
    int64_t ob[4] = {1, 1, 1, 1}, as[4], bs[4];
    for (int i = 0; i < nbo; i++)
        ob[4 - nbo + i] = out->shape[i];
    /* strides in whole matrices along the batch dims, rank-4 aligned */
    loom_bstrides(a->ndim - 2, a->shape, ob, as);
    loom_bstrides(b->ndim - 2, b->shape, ob, bs);
    int64_t ma = a->shape[a->ndim - 2] * a->shape[a->ndim - 1], mb = b->shape[b->ndim - 2] * b->shape[b->ndim - 1];
    d.nb[0] = ob[2];
    d.nb[1] = ob[3];
    d.sa[0] = as[2] * ma;
    d.sa[1] = as[3] * ma;
    d.sb[0] = bs[2] * mb;
    d.sb[1] = bs[3] * mb;
    d.m = out->shape[out->ndim - 2];
    d.n = out->shape[out->ndim - 1];
    d.k = out->attr.ta ? a->shape[a->ndim - 2] : a->shape[a->ndim - 1];
    d.lda = a->shape[a->ndim - 1];
    d.ldb = b->shape[b->ndim - 1];
    return d;
}

/* Fused attention's tensors (LOOM_OP_ATTENTION and its gradients) as the
 * kernels walk them: element (b, h, i, d) of q (and o, do, dq) at
 * b*qs[0] + h*qs[1] + i*qs[2] + d, of k and v at the ks strides; the mask
 * (if any) at the broadcast strides ms over (b, h, i, j). */
typedef struct loom_attn_dims {
    int64_t b, hq, hkv, nq, nk, d;
    int64_t qs[3], ks[3], ms[4];
    int has_mask, causal;
    float scale;
} loom_attn_dims;

static inline loom_attn_dims loom_attn_dims_of(const loom_node *nd, const loom_node *q, const loom_node *k,
                                               const loom_node *mask)
{
    loom_attn_dims a;
    int bnhd = nd->attr.layout == LOOM_ATTN_BNHD;
    a.b = q->shape[0];
    a.hq = q->shape[bnhd ? 2 : 1];
    a.nq = q->shape[bnhd ? 1 : 2];
    a.hkv = k->shape[bnhd ? 2 : 1];
    a.nk = k->shape[bnhd ? 1 : 2];
    a.d = q->shape[3];
    a.qs[0] = a.hq * a.nq * a.d;
    a.qs[1] = bnhd ? a.d : a.nq * a.d;
    a.qs[2] = bnhd ? a.hq * a.d : a.d;
    a.ks[0] = a.hkv * a.nk * a.d;
    a.ks[1] = bnhd ? a.d : a.nk * a.d;
    a.ks[2] = bnhd ? a.hkv * a.d : a.d;
    a.has_mask = mask != NULL;
    a.causal = nd->attr.causal;
    a.scale = nd->attr.attn_scale;
    int64_t full[4] = {a.b, a.hq, a.nq, a.nk};
    for (int i = 0; i < 4; i++)
        a.ms[i] = 0;
    if (mask)
        loom_bstrides(mask->ndim, mask->shape, full, a.ms);
    return a;
}

/* The last key query i sees (causal): i + nk - nq, clamped to nk - 1;
 * -1 when it sees none. */
static inline int64_t loom_attn_last_key(const loom_attn_dims *a, int64_t i)
{
    if (!a->causal)
        return a->nk - 1;
    int64_t l = i + a->nk - a->nq;
    return l < a->nk - 1 ? l : a->nk - 1;
}

#endif
