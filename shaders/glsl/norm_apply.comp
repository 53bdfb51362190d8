#version 450
// Normalization element-wise (codes.h): LOOM_NORM_APPLY y = (x - mean)
// rstd gamma + beta (bindings x, stats, gamma, beta, -, y);
// LOOM_NORM_GRAD dx = rstd (gamma dy - (A + xhat B) / M) with the sums
// A, B of NORM_GRAD_STATS, or rstd gamma dy for fixed statistics
// (bindings dy, x, stats, gamma, gstats, dx).
#include "common.glsl"
#include "codes.h"
#include "dtype.glsl"

layout(local_size_x = 256) in;
layout(constant_id = 0) const uint CODE = LOOM_NORM_APPLY;

layout(set = 0, binding = 0, std430) readonly buffer Buf0 { TS b0[]; };
layout(set = 0, binding = 1, std430) readonly buffer Buf1 { TS b1[]; };
layout(set = 0, binding = 2, std430) readonly buffer Buf2 { TS b2[]; };
layout(set = 0, binding = 3, std430) readonly buffer Buf3 { TS b3[]; };
layout(set = 0, binding = 4, std430) readonly buffer Buf4 { TS b4[]; };
layout(set = 0, binding = 5, std430) writeonly buffer BufY { TS y[]; };
layout(push_constant) uniform Push { loom_pc_norm p; };

void main()
{
    uint i = flat_gid();
    if (i >= p.numel)
        return;
    uint r = i / p.s, q = (r / p.cpg) % p.q, c = r % p.c;
    if (CODE == LOOM_NORM_APPLY) {
        float rs = 1.0 / sqrt(TLOAD(b1[p.q + q]) + p.eps);
        y[i] = TSTORE((TLOAD(b0[i]) - TLOAD(b1[q])) * rs * TLOAD(b2[c]) + TLOAD(b3[c]));
        return;
    }
    float rs = 1.0 / sqrt(TLOAD(b2[p.q + q]) + p.eps), gd = TLOAD(b3[c]) * TLOAD(b0[i]);
    if (p.frozen != 0u) {
        y[i] = TSTORE(rs * gd);
        return;
    }
    float m = float(p.blocks * p.len);
    float xhat = (TLOAD(b1[i]) - TLOAD(b2[q])) * rs;
    y[i] = TSTORE(rs * (gd - (TLOAD(b4[q]) + xhat * TLOAD(b4[p.q + q])) / m));
}
