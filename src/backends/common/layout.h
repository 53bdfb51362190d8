/* Index arithmetic every backend shares: shapes aligned to rank 4, the
 * strides of a broadcast operand and of a transpose, and the per-run
 * scalars of the optimizer updates. One definition, so the kernels of every
 * backend walk tensors exactly as the CPU reference does. */
#ifndef LOOM_BACKEND_LAYOUT_H
#define LOOM_BACKEND_LAYOUT_H

#include <math.h>

#include "../../core/ir.h"

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

/* Adam's bias-corrected step size for update number `step`, in double and
 * rounded once (every backend passes this value to its kernel). */
static inline float loom_adam_step_size(const loom_attr *at, float lr, int64_t step)
{
    double t = (double)step;
    return (float)((double)lr * sqrt(1.0 - pow(at->beta2, t)) / (1.0 - pow(at->beta1, t)));
}

/* The EMA's decay at update `step`: the first update copies the weights. */
static inline float loom_ema_decay(const loom_attr *at, int64_t step)
{
    return step <= 1 ? 0.0f : at->decay;
}

#endif
