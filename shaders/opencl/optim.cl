/*
 * Optimizer updates, in place on f32 state tensors (src/core/ir.h). The
 * per-run values (the rate, Adam's step size, the EMA's decay, the loss
 * scale) arrive in the run slot core computed. Each item updates 8
 * consecutive values.
 */

/* The factor of every gradient: the run's 1 / loss scale, clipped by the
 * global norm when clipping; -1 when a loss-scaled step is skipped (its
 * gradients are not finite). */
inline float grad_factor(__global const float *ss, uint sso, float clip_norm, int has_ss, int skip_nonfinite,
                         float inv_scale)
{
    if (!has_ss)
        return inv_scale;
    float s = ss[sso];
    if (skip_nonfinite && !isfinite(s))
        return -1.0f;
    float norm = sqrt(s) * inv_scale;
    return clip_norm > 0.0f && norm > clip_norm ? inv_scale * clip_norm / norm : inv_scale;
}

/* The gradient with the Keras penalties: g * clip + 2 l2 p + l1 sign(p),
 * for float and float8 (the same expression, hence the same rounding). */
#define LOOM_DEF_PENALIZED(T)                                                  \
    inline T penalized_##T(T g, T p, float clip, float l1, float l2)           \
    {                                                                          \
        T s = p > (T)0.0f ? (T)1.0f : p < (T)0.0f ? (T)-1.0f : (T)0.0f;        \
        return g * clip + 2.0f * l2 * p + l1 * s;                              \
    }

LOOM_DEF_PENALIZED(float)
LOOM_DEF_PENALIZED(float8)

/* The gradient at i (8 values, or 1): g itself, or (a bias's gradient
 * folded into its update, rows > 0) the sum of column i of a [rows, n]
 * gradient, in row order. */
inline float8 grad8(__global const float *g, uint go, uint n, uint rows, uint i)
{
    if (rows == 0u)
        return vload8(0, g + go + i);
    float8 s = (float8)(0.0f);
    for (uint r = 0; r < rows; r++)
        s += vload8(0, g + go + r * n + i);
    return s;
}

inline float grad1(__global const float *g, uint go, uint n, uint rows, uint i)
{
    if (rows == 0u)
        return g[go + i];
    float s = 0.0f;
    for (uint r = 0; r < rows; r++)
        s += g[go + r * n + i];
    return s;
}

/* One item of SGD: values i .. i+7 of a tensor of n. momentum == 0: v is
 * unused (any buffer). */
inline void sgd_item(__global float *p, uint po, __global const float *g, uint go, __global float *v, uint vo, uint n,
                     uint rows, uint i, float clip, float l1, float l2, float mu, int nesterov, float lr)
{
    if (i + 8u <= n) {
        float8 pi = vload8(0, p + po + i);
        float8 gi = penalized_float8(grad8(g, go, n, rows, i), pi, clip, l1, l2);
        if (mu == 0.0f) {
            vstore8(pi - lr * gi, 0, p + po + i);
        } else {
            float8 vi = mu * vload8(0, v + vo + i) - lr * gi;
            vstore8(vi, 0, v + vo + i);
            vstore8(pi + (nesterov ? mu * vi - lr * gi : vi), 0, p + po + i);
        }
        return;
    }
    for (; i < n; i++) {
        float pi = p[po + i];
        float gi = penalized_float(grad1(g, go, n, rows, i), pi, clip, l1, l2);
        if (mu == 0.0f) {
            p[po + i] = pi - lr * gi;
        } else {
            float vi = mu * v[vo + i] - lr * gi;
            v[vo + i] = vi;
            p[po + i] = pi + (nesterov ? mu * vi - lr * gi : vi);
        }
    }
}

#define LOOM_ADAM_STEP(T)                                                      \
    {                                                                          \
        T gi = penalized_##T(g_, p_, clip, l1, l2);                            \
        if (wd != 0.0f)                                                        \
            p_ -= lr * wd * p_;                                                \
        m_ += (gi - m_) * (1.0f - b1);                                         \
        v_ += (gi * gi - v_) * (1.0f - b2);                                    \
        p_ -= alpha * m_ / (sqrt(v_) + eps);                                   \
    }

inline void adam_item(__global float *p, uint po, __global const float *g, uint go, __global float *m, uint mo,
                      __global float *v, uint vo, uint n, uint rows, uint i, float clip, float l1, float l2, float b1,
                      float b2, float eps, float wd, float lr, float alpha)
{
    if (i + 8u <= n) {
        float8 p_ = vload8(0, p + po + i), g_ = grad8(g, go, n, rows, i);
        float8 m_ = vload8(0, m + mo + i), v_ = vload8(0, v + vo + i);
        LOOM_ADAM_STEP(float8)
        vstore8(p_, 0, p + po + i);
        vstore8(m_, 0, m + mo + i);
        vstore8(v_, 0, v + vo + i);
        return;
    }
    for (; i < n; i++) {
        float p_ = p[po + i], g_ = grad1(g, go, n, rows, i), m_ = m[mo + i], v_ = v[vo + i];
        LOOM_ADAM_STEP(float)
        p[po + i] = p_;
        m[mo + i] = m_;
        v[vo + i] = v_;
    }
}

inline void ema_item(__global float *e, uint eo, __global const float *p, uint po, uint n, uint i, float d)
{
    if (i + 8u <= n) {
        vstore8(d * vload8(0, e + eo + i) + (1.0f - d) * vload8(0, p + po + i), 0, e + eo + i);
        return;
    }
    for (; i < n; i++)
        e[eo + i] = d * e[eo + i] + (1.0f - d) * p[po + i];
}

/* A multi-tensor update (the core's group of updates, one launch): the
 * table's entry of this work group's tensor, found by bisection over the
 * entries' first groups (LOOM_UPDATE_ENTRY words each: offsets of the
 * parameter, gradient, two moments; size; gradient rows; first group). */
inline __global const uint *entry_of(__global const uint *tab, uint count, uint *i)
{
    uint wg = (uint)get_group_id(0), lo = 0, hi = count;
    while (hi - lo > 1u) {
        uint mid = (lo + hi) / 2u;
        if (tab[mid * LOOM_UPDATE_ENTRY + 6u] <= wg)
            lo = mid;
        else
            hi = mid;
    }
    __global const uint *e = tab + lo * LOOM_UPDATE_ENTRY;
    *i = ((wg - e[6]) * LOOM_EW_WG + (uint)get_local_id(0)) * 8u;
    return e;
}

__kernel __attribute__((reqd_work_group_size(LOOM_EW_WG, 1, 1)))
void opt_sgd(__global float *p, uint po, __global const float *g, uint go, __global float *v, uint vo, uint n,
             uint rows, __global const float *ss, uint sso, float clip_norm, int has_clip, int skip_nonfinite, float l1,
             float l2, float mu, int nesterov, loom_run_slot run)
{
    uint i = (uint)get_global_id(0) * 8u;
    if (i >= n)
        return;
    float clip = grad_factor(ss, sso, clip_norm, has_clip, skip_nonfinite, run.inv_scale);
    if (clip < 0.0f)
        return;
    sgd_item(p, po, g, go, v, vo, n, rows, i, clip, l1, l2, mu, nesterov, run.lr);
}

/* s: the block of the parameters and velocities, g: the gradients' */
__kernel __attribute__((reqd_work_group_size(LOOM_EW_WG, 1, 1)))
void opt_sgd_multi(__global float *s, __global const float *g, __global const uint *tab, uint tabo, uint count,
                   __global const float *ss, uint sso, float clip_norm, int has_clip, int skip_nonfinite, float l1,
                   float l2, float mu, int nesterov, loom_run_slot run)
{
    uint i;
    __global const uint *e = entry_of(tab + tabo, count, &i);
    if (i >= e[4])
        return;
    float clip = grad_factor(ss, sso, clip_norm, has_clip, skip_nonfinite, run.inv_scale);
    if (clip < 0.0f)
        return;
    sgd_item(s, e[0], g, e[1], s, e[2], e[4], e[5], i, clip, l1, l2, mu, nesterov, run.lr);
}

__kernel __attribute__((reqd_work_group_size(LOOM_EW_WG, 1, 1)))
void opt_adam(__global float *p, uint po, __global const float *g, uint go, __global float *m, uint mo,
              __global float *v, uint vo, uint n, uint rows, __global const float *ss, uint sso, float clip_norm,
              int has_clip, int skip_nonfinite, float l1, float l2, float b1, float b2, float eps, float wd,
              loom_run_slot run)
{
    uint i = (uint)get_global_id(0) * 8u;
    if (i >= n)
        return;
    float clip = grad_factor(ss, sso, clip_norm, has_clip, skip_nonfinite, run.inv_scale);
    if (clip < 0.0f)
        return;
    adam_item(p, po, g, go, m, mo, v, vo, n, rows, i, clip, l1, l2, b1, b2, eps, wd, run.lr, run.alpha);
}

/* s: the block of the parameters and moments, g: the gradients' */
__kernel __attribute__((reqd_work_group_size(LOOM_EW_WG, 1, 1)))
void opt_adam_multi(__global float *s, __global const float *g, __global const uint *tab, uint tabo, uint count,
                    __global const float *ss, uint sso, float clip_norm, int has_clip, int skip_nonfinite, float l1,
                    float l2, float b1, float b2, float eps, float wd, loom_run_slot run)
{
    uint i;
    __global const uint *e = entry_of(tab + tabo, count, &i);
    if (i >= e[4])
        return;
    float clip = grad_factor(ss, sso, clip_norm, has_clip, skip_nonfinite, run.inv_scale);
    if (clip < 0.0f)
        return;
    adam_item(s, e[0], g, e[1], s, e[2], s, e[3], e[4], e[5], i, clip, l1, l2, b1, b2, eps, wd, run.lr, run.alpha);
}

/* d = 0 at step 1 (the average starts at the parameter), else the decay. */
__kernel __attribute__((reqd_work_group_size(LOOM_EW_WG, 1, 1)))
void opt_ema(__global float *e, uint eo, __global const float *p, uint po, uint n, loom_run_slot run)
{
    ema_item(e, eo, p, po, n, (uint)get_global_id(0) * 8u, run.decay);
}

/* s: the block of the averages and the parameters */
__kernel __attribute__((reqd_work_group_size(LOOM_EW_WG, 1, 1)))
void opt_ema_multi(__global float *s, __global const uint *tab, uint tabo, uint count, loom_run_slot run)
{
    uint i;
    __global const uint *e = entry_of(tab + tabo, count, &i);
    if (i < e[4])
        ema_item(s, e[0], s, e[1], e[4], i, run.decay);
}
