#version 450
// out[i] = in[strided index of i]: reshape copies (dense), broadcasts
// (LOOM_OP_EXPAND, stride 0 along broadcast dims) and transposes (permuted
// strides). 32-bit words, so any 32-bit dtype.
#include "common.glsl"

layout(local_size_x = 256) in;

layout(set = 0, binding = 0, std430) readonly buffer BufA { uint a[]; };
layout(set = 0, binding = 1, std430) writeonly buffer BufY { uint y[]; };
layout(push_constant) uniform Push { loom_pc_bcast p; };

void main()
{
    uint i = flat_gid();
    if (i >= p.n)
        return;
    y[i] = p.dense != 0 ? a[i] : a[strided_index(i, p.d, p.sa)];
}
