#version 450
// Running statistics: r = momentum r + (1 - momentum) batch, in f32.
#include "common.glsl"

layout(local_size_x = 64) in;

layout(set = 0, binding = 0, std430) buffer BufR { float r[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufS { float s[]; };
layout(push_constant) uniform Push { loom_pc_unary p; };

void main()
{
    uint i = flat_gid();
    if (i >= p.n)
        return;
    r[i] = p.p1 * r[i] + (1.0 - p.p1) * s[i];
}
