// What the convolution kernels share: their bindings, and the convolution
// seen as an implicit GEMM C[M, N] = A[M, K] B[K, N] per group (workgroup
// z), whose operands are read from the tensors where they lie (nothing is
// materialised):
//   LOOM_CONV_FWD        Y = W X:  M = oc / G, N = n oh ow, K = c / G kh kw
//   LOOM_CONV_BWD_DATA   dX = W^T dY: M = c / G, N = n h w, K = oc / G kh kw
//   LOOM_CONV_BWD_FILTER dW = dY X^T: M = oc / G, N = c / G kh kw, K = n oh ow
// Binding 0 is the node's first input (x, or dy), 1 its second (w, or x),
// 2 the output, 3 the bias (an alias when there is none). TEXEL (f32 only)
// reads the inputs through texel buffers, which CPU drivers vectorize.
#ifndef LOOM_CONV_COMMON_GLSL
#define LOOM_CONV_COMMON_GLSL

#include "common.glsl"
#include "codes.h"
#include "dtype.glsl"

layout(constant_id = 0) const uint MODE = LOOM_CONV_FWD;

#if defined(TEXEL)
layout(set = 0, binding = 0) uniform samplerBuffer In0;
layout(set = 0, binding = 1) uniform samplerBuffer In1;
#define LD0(i) texelFetch(In0, int(i)).x
#define LD1(i) texelFetch(In1, int(i)).x
#else
layout(set = 0, binding = 0, std430) readonly buffer Buf0 { TS in0[]; };
layout(set = 0, binding = 1, std430) readonly buffer Buf1 { TS in1[]; };
#define LD0(i) TLOAD(in0[i])
#define LD1(i) TLOAD(in1[i])
#endif
// read too where a weight gradient is summed in parts (p.acc)
layout(set = 0, binding = 2, std430) buffer BufY { TS y[]; };
layout(set = 0, binding = 3, std430) readonly buffer BufBias { TS bias[]; };
layout(push_constant) uniform Push { loom_pc_conv p; };

uint gemm_m()
{
    return MODE == LOOM_CONV_BWD_DATA ? p.cg : p.ocg;
}

uint gemm_n()
{
    return MODE == LOOM_CONV_FWD ? p.n * p.oh * p.ow : MODE == LOOM_CONV_BWD_DATA ? p.n * p.h * p.w : p.cg * p.kh * p.kw;
}

uint gemm_k()
{
    return MODE == LOOM_CONV_FWD ? p.cg * p.kh * p.kw : MODE == LOOM_CONV_BWD_DATA ? p.ocg * p.kh * p.kw : p.n * p.oh * p.ow;
}

// x at (sample nn, channel ch, row ih, column iw), 0 in the padding; the
// tensor is binding 0 (FWD) or 1 (BWD_FILTER). The load is clamped into
// the tensor and the padding selected after it: no branch around a load,
// which CPU drivers turn into per-lane loops.
float x_at(uint nn, uint ch, int ih, int iw)
{
    bool in_ = ih >= 0 && iw >= 0 && ih < int(p.h) && iw < int(p.w);
    uint i = ((nn * p.c + ch) * p.h + uint(clamp(ih, 0, int(p.h) - 1))) * p.w + uint(clamp(iw, 0, int(p.w) - 1));
    float v = MODE == LOOM_CONV_FWD ? LD0(i) : LD1(i);
    return in_ ? v : 0.0;
}

// dy at (nn, channel o) for the input position (hh, ww) reached through
// kernel tap (a, b): the output whose window puts that tap there, if any.
float dy_through(uint nn, uint o, uint hh, uint ww, uint a, uint b)
{
    int ti = int(hh + p.pt) - int(a * p.dh), tj = int(ww + p.pl) - int(b * p.dw);
    bool ok = ti >= 0 && tj >= 0;
    uint i = uint(max(ti, 0)), j = uint(max(tj, 0));
    // stride 1 (most layers): no division
    if (p.sh != 1u || p.sw != 1u) {
        uint i2 = i / p.sh, j2 = j / p.sw;
        ok = ok && i2 * p.sh == i && j2 * p.sw == j;
        i = i2;
        j = j2;
    }
    ok = ok && i < p.oh && j < p.ow;
    float v = LD0(((nn * p.oc + o) * p.oh + min(i, p.oh - 1u)) * p.ow + min(j, p.ow - 1u));
    return ok ? v : 0.0;
}

// C[m, j] of group g into the output, with the bias of its channel.
void store_c(uint g, uint m, uint j, float v)
{
    uint idx;
    if (MODE == LOOM_CONV_FWD) {
        uint ohw = p.oh * p.ow, nn = j / ohw;
        idx = (nn * p.oc + g * p.ocg + m) * ohw + j % ohw;
        if (p.has_bias != 0u)
            v += TLOAD(bias[g * p.ocg + m]);
    } else if (MODE == LOOM_CONV_BWD_DATA) {
        uint hw = p.h * p.w, nn = j / hw;
        idx = (nn * p.c + g * p.cg + m) * hw + j % hw;
        if (p.has_bias != 0u)
            v += TLOAD(bias[g * p.cg + m]);
    } else {
        idx = (g * p.ocg + m) * gemm_n() + j;
        if (p.acc != 0u)
            v += TLOAD(y[idx]);
    }
    y[idx] = TSTORE(v);
}

#endif
