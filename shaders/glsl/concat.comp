#version 450
// One input of a concat into its place: outer runs of len words each, to
// out[o * out_len + off + j]. Words of 32 bits, or 16 with -DLOOM_WORD16.
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
layout(push_constant) uniform Push { loom_pc_concat p; };

void main()
{
    uint i = flat_gid();
    if (i >= p.n)
        return;
    y[(i / p.len) * p.out_len + p.off + i % p.len] = a[i];
}
