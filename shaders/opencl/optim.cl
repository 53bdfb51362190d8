/*
 * Optimizer updates, in place on state tensors (src/core/ir.h). Values the
 * CPU reference derives per step in double (Adam's step size, the EMA's
 * decay) arrive as kernel arguments computed the same way on the host.
 * Each item updates 8 consecutive values.
 */

/* min(1, clip_norm / sqrt(sumsq)) when clipping, else 1. */
inline float clip_scale(__global const float *ss, uint sso, float clip_norm, int has_clip)
{
    if (!has_clip)
        return 1.0f;
    float norm = sqrt(ss[sso]);
    return norm > clip_norm ? clip_norm / norm : 1.0f;
}

/* The gradient with the Keras penalties: g * clip + 2 l2 p + l1 sign(p). */
inline float penalized(float g, float p, float clip, float l1, float l2)
{
    float s = p > 0.0f ? 1.0f : p < 0.0f ? -1.0f : 0.0f;
    return g * clip + 2.0f * l2 * p + l1 * s;
}

/* momentum == 0: v is unused (any buffer). */
__kernel __attribute__((reqd_work_group_size(LOOM_EW_WG, 1, 1)))
void opt_sgd(__global float *p, uint po, __global const float *g, uint go, __global float *v, uint vo, uint n,
             __global const float *ss, uint sso, float clip_norm, int has_clip, float l1, float l2, float mu,
             int nesterov, float lr)
{
    uint i = (uint)get_global_id(0) * 8u;
    if (i >= n)
        return;
    uint end = min(i + 8u, n);
    float clip = clip_scale(ss, sso, clip_norm, has_clip);
    for (; i < end; i++) {
        float pi = p[po + i];
        float gi = penalized(g[go + i], pi, clip, l1, l2);
        if (mu == 0.0f) {
            p[po + i] = pi - lr * gi;
        } else {
            float vi = mu * v[vo + i] - lr * gi;
            v[vo + i] = vi;
            p[po + i] = pi + (nesterov ? mu * vi - lr * gi : vi);
        }
    }
}

__kernel __attribute__((reqd_work_group_size(LOOM_EW_WG, 1, 1)))
void opt_adam(__global float *p, uint po, __global const float *g, uint go, __global float *m, uint mo,
              __global float *v, uint vo, uint n, __global const float *ss, uint sso, float clip_norm, int has_clip,
              float l1, float l2, float b1, float b2, float eps, float wd, float lr, float alpha)
{
    uint i = (uint)get_global_id(0) * 8u;
    if (i >= n)
        return;
    uint end = min(i + 8u, n);
    float clip = clip_scale(ss, sso, clip_norm, has_clip);
    for (; i < end; i++) {
        float pi = p[po + i];
        float gi = penalized(g[go + i], pi, clip, l1, l2);
        if (wd != 0.0f)
            pi -= lr * wd * pi;
        float mi = m[mo + i], vi = v[vo + i];
        mi += (gi - mi) * (1.0f - b1);
        vi += (gi * gi - vi) * (1.0f - b2);
        m[mo + i] = mi;
        v[vo + i] = vi;
        p[po + i] = pi - alpha * mi / (sqrt(vi) + eps);
    }
}

/* d = 0 at step 1 (the average starts at the parameter), else the decay. */
__kernel __attribute__((reqd_work_group_size(LOOM_EW_WG, 1, 1)))
void opt_ema(__global float *e, uint eo, __global const float *p, uint po, uint n, float d)
{
    uint i = (uint)get_global_id(0) * 8u;
    if (i + 8u <= n) {
        vstore8(d * vload8(0, e + eo + i) + (1.0f - d) * vload8(0, p + po + i), 0, e + eo + i);
        return;
    }
    for (; i < n; i++)
        e[eo + i] = d * e[eo + i] + (1.0f - d) * p[po + i];
}
