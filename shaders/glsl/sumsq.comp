#version 450
// Sum of x*x over up to 8 inputs into one scalar (the global gradient norm
// for clipping). One workgroup; a longer list of inputs takes several
// dispatches, each adding the previous partial sum.
#include "common.glsl"
#define WG 256
#include "wgreduce.glsl"

layout(local_size_x = WG) in;

layout(set = 0, binding = 0, std430) readonly buffer Buf0 { float x0[]; };
layout(set = 0, binding = 1, std430) readonly buffer Buf1 { float x1[]; };
layout(set = 0, binding = 2, std430) readonly buffer Buf2 { float x2[]; };
layout(set = 0, binding = 3, std430) readonly buffer Buf3 { float x3[]; };
layout(set = 0, binding = 4, std430) readonly buffer Buf4 { float x4[]; };
layout(set = 0, binding = 5, std430) readonly buffer Buf5 { float x5[]; };
layout(set = 0, binding = 6, std430) readonly buffer Buf6 { float x6[]; };
layout(set = 0, binding = 7, std430) readonly buffer Buf7 { float x7[]; };
layout(set = 0, binding = 8, std430) buffer BufY { float y[]; };
layout(push_constant) uniform Push { loom_pc_sumsq p; };

void main()
{
    uint l = gl_LocalInvocationIndex;
    float s = 0.0;
    for (uint i = l; i < p.n[0]; i += WG) s += x0[i] * x0[i];
    for (uint i = l; i < p.n[1]; i += WG) s += x1[i] * x1[i];
    for (uint i = l; i < p.n[2]; i += WG) s += x2[i] * x2[i];
    for (uint i = l; i < p.n[3]; i += WG) s += x3[i] * x3[i];
    for (uint i = l; i < p.n[4]; i += WG) s += x4[i] * x4[i];
    for (uint i = l; i < p.n[5]; i += WG) s += x5[i] * x5[i];
    for (uint i = l; i < p.n[6]; i += WG) s += x6[i] * x6[i];
    for (uint i = l; i < p.n[7]; i += WG) s += x7[i] * x7[i];
    s = wg_sum(s);
    if (l == 0 && p.n[0] > 0)
        y[0] = p.accumulate != 0 ? y[0] + s : s;
}
