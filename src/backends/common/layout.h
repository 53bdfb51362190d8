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

#endif
