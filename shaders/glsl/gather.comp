#version 450
// out[i] = in[strided index of i]: reshape copies (dense), broadcasts
// (LOOM_OP_EXPAND, stride 0 along broadcast dims) and transposes (permuted
// strides). Moves words, so any dtype of the word's size: 32-bit, or
// 16-bit with -DLOOM_WORD16.
#include "common.glsl"
#if defined(LOOM_WORD16)
#extension GL_EXT_shader_16bit_storage : require
#define WORD uint16_t
#else
#define WORD uint
#endif

layout(local_size_x = 256) in;

layout(set = 0, binding = 0, std430) readonly buffer BufA { WORD a[]; };
layout(set = 0, binding = 1, std430) writeonly buffer BufY { WORD y[]; };
layout(push_constant) uniform Push { loom_pc_bcast p; };

void main()
{
    uint i = flat_gid();
    if (i >= p.n)
        return;
    y[i] = p.dense != 0 ? a[i] : a[strided_index(i, p.d, p.sa)];
}
