#version 450
// The reductions of normalization, one workgroup per result (codes.h):
//   LOOM_NORM_STATS       per statistic q: the mean and the biased variance
//                         of x (two passes over its elements);
//   LOOM_NORM_GRAD_STATS  per statistic q: sum gamma dy and sum gamma dy xhat;
//   LOOM_NORM_DGAMMA      per channel: sum dy xhat and sum dy (rows 0, 1).
// Bindings: 0 x (STATS) or dy, 1 x, 2 the statistics, 3 gamma, 4 the
// result; those a code does not read are aliases.
#include "common.glsl"
#include "codes.h"
#include "dtype.glsl"
#define WG 64
#include "wgreduce.glsl"

// An invocation's elements, WG apart, go U to a loop pass: where the
// driver counts loop passes (llvmpipe ends an invocation's loops after
// 65535) a statistic of a large batch stays within the count.
#define U 8

layout(local_size_x = WG) in;
layout(constant_id = 0) const uint CODE = LOOM_NORM_STATS;

layout(set = 0, binding = 0, std430) readonly buffer BufA { TS a[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufX { TS x[]; };
layout(set = 0, binding = 2, std430) readonly buffer BufS { TS st[]; };
layout(set = 0, binding = 3, std430) readonly buffer BufG { TS gamma[]; };
layout(set = 0, binding = 4, std430) writeonly buffer BufY { TS y[]; };
layout(push_constant) uniform Push { loom_pc_norm p; };

// Element t of statistic q's elements (blocks of len, stride apart).
uint at_q(uint q, uint t)
{
    return q * p.len + (t / p.len) * p.stride + t % p.len;
}

// Element t of channel c: sample t / s, position t % s.
uint at_c(uint c, uint t)
{
    return ((t / p.s) * p.c + c) * p.s + t % p.s;
}

uint stat_of(uint i)
{
    return ((i / p.s) / p.cpg) % p.q;
}

float rstd(uint q)
{
    return 1.0 / sqrt(TLOAD(st[p.q + q]) + p.eps);
}

void main()
{
    uint j = flat_group(), l = gl_LocalInvocationIndex;
    uint m = p.blocks * p.len;
    if (CODE == LOOM_NORM_STATS) {
        if (j >= p.q)
            return;
        float s = 0.0;
        for (uint t0 = l; t0 < m; t0 += WG * U)
            [[unroll]] for (uint u = 0; u < U; u++) {
                uint t = t0 + u * WG;
                if (t < m)
                    s += TLOAD(a[at_q(j, t)]);
            }
        float mean = wg_sum(s) / float(m);
        float v = 0.0;
        for (uint t0 = l; t0 < m; t0 += WG * U)
            [[unroll]] for (uint u = 0; u < U; u++) {
                uint t = t0 + u * WG;
                if (t < m) {
                    float d = TLOAD(a[at_q(j, t)]) - mean;
                    v += d * d;
                }
            }
        v = wg_sum(v) / float(m);
        if (l == 0u) {
            y[j] = TSTORE(mean);
            y[p.q + j] = TSTORE(v);
        }
    } else if (CODE == LOOM_NORM_GRAD_STATS) {
        if (j >= p.q)
            return;
        float mean = TLOAD(st[j]), rs = rstd(j), sa = 0.0, sb = 0.0;
        for (uint t0 = l; t0 < m; t0 += WG * U)
            [[unroll]] for (uint u = 0; u < U; u++) {
                uint t = t0 + u * WG;
                if (t < m) {
                    uint i = at_q(j, t);
                    float gd = TLOAD(gamma[(i / p.s) % p.c]) * TLOAD(a[i]);
                    sa += gd;
                    sb += gd * ((TLOAD(x[i]) - mean) * rs);
                }
            }
        sa = wg_sum(sa);
        sb = wg_sum(sb);
        if (l == 0u) {
            y[j] = TSTORE(sa);
            y[p.q + j] = TSTORE(sb);
        }
    } else {
        if (j >= p.c)
            return;
        uint mc = p.n * p.s;
        float s = 0.0, sd = 0.0;
        for (uint t0 = l; t0 < mc; t0 += WG * U)
            [[unroll]] for (uint u = 0; u < U; u++) {
                uint t = t0 + u * WG;
                if (t < mc) {
                    uint i = at_c(j, t), q = stat_of(i);
                    float d = TLOAD(a[i]);
                    s += d * (TLOAD(x[i]) - TLOAD(st[q])) * rstd(q);
                    sd += d;
                }
            }
        s = wg_sum(s);
        sd = wg_sum(sd);
        if (l == 0u) {
            y[j] = TSTORE(s);
            y[p.c + j] = TSTORE(sd);
        }
    }
}
