#version 450
// Layer norm (code LOOM_LNORM_LAYER) and RMS norm over rows of cols
// elements; without -DNORM_GRAD y = xhat * gamma + beta, with it the
// gradient dx from dy (binding 0), x, gamma. One workgroup per row, or one
// invocation per row (short rows, or drivers where barriers are dear).
// Statistics in f32, two passes over the row.
#include "common.glsl"
#include "dtype.glsl"
#define WG 64
#include "wgreduce.glsl"

layout(local_size_x = WG) in;
layout(constant_id = 0) const uint RMS = 0;
layout(constant_id = 1) const uint PER_THREAD = 0;

#if defined(NORM_GRAD)
layout(set = 0, binding = 0, std430) readonly buffer BufDy { TS dy_[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufX { TS x_[]; };
layout(set = 0, binding = 2, std430) readonly buffer BufG { TS gamma_[]; };
layout(set = 0, binding = 3, std430) writeonly buffer BufY { TS y_[]; };
#define DY(j) TLOAD(dy_[base + (j)])
#define G(j) (DY(j) * ((p.affine & 1u) != 0u ? TLOAD(gamma_[j]) : 1.0))
#else
layout(set = 0, binding = 0, std430) readonly buffer BufX { TS x_[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufG { TS gamma_[]; };
layout(set = 0, binding = 2, std430) readonly buffer BufB { TS beta_[]; };
layout(set = 0, binding = 3, std430) writeonly buffer BufY { TS y_[]; };
#endif
#define X(j) TLOAD(x_[base + (j)])
layout(push_constant) uniform Push { loom_pc_lnorm p; };

// Sums over the row, by the workgroup (l, step WG) or by one invocation.
#define ROW_SUM(acc, expr)                                                   \
    {                                                                        \
        acc = 0.0;                                                           \
        for (uint j = start; j < p.cols; j += step)                          \
            acc += (expr);                                                   \
        if (PER_THREAD == 0)                                                 \
            acc = wg_sum(acc);                                               \
    }

void norm_row(uint row, uint start, uint step)
{
    uint base = row * p.cols;
    float n = float(p.cols), mean = 0.0, var;
    if (RMS == 0) {
        ROW_SUM(mean, X(j));
        mean /= n;
    }
    ROW_SUM(var, (X(j) - mean) * (X(j) - mean));
    float rstd = 1.0 / sqrt(var / n + p.eps);
#if defined(NORM_GRAD)
    float sg, sgx;
    ROW_SUM(sg, G(j));
    ROW_SUM(sgx, G(j) * (X(j) - mean) * rstd);
    sg /= n;
    sgx /= n;
    for (uint j = start; j < p.cols; j += step)
        y_[base + j] = TSTORE(rstd * (G(j) - (RMS == 0 ? sg : 0.0) - (X(j) - mean) * rstd * sgx));
#else
    for (uint j = start; j < p.cols; j += step) {
        float v = (X(j) - mean) * rstd;
        if ((p.affine & 1u) != 0u)
            v *= TLOAD(gamma_[j]);
        if ((p.affine & 2u) != 0u)
            v += TLOAD(beta_[j]);
        y_[base + j] = TSTORE(v);
    }
#endif
}

void main()
{
    if (PER_THREAD != 0) {
        uint row = flat_gid();
        if (row < p.rows)
            norm_row(row, 0, 1);
        return;
    }
    uint row = flat_group();
    if (row < p.rows) // uniform over the workgroup
        norm_row(row, gl_LocalInvocationIndex, WG);
}
