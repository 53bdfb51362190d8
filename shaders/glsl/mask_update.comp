#version 450
// Pruning: p = p * mask in place, after the optimizer's step (f32).
#include "common.glsl"

layout(local_size_x = 64) in;

layout(set = 0, binding = 0, std430) buffer BufP { float w[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufM { float mask[]; };
layout(push_constant) uniform Push { loom_pc_unary p; };

void main()
{
    uint i = flat_gid();
    if (i >= p.n)
        return;
    w[i] *= mask[i];
}
