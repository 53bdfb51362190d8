#version 450
// The gradient of a unary op: dx = DOP(dy, v; p1, p2), v the forward input
// or output as the op's line in include/loom_ops.h says.
#include "common.glsl"
#include "dtype.glsl"
#include "math.glsl"
#include "ew_unary.glsl"

layout(local_size_x = 256) in;

layout(set = 0, binding = 0, std430) readonly buffer BufDy { TS dy[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufV { TS v[]; };
layout(set = 0, binding = 2, std430) writeonly buffer BufY { TS y[]; };
layout(push_constant) uniform Push { loom_pc_unary p; };

void main()
{
    uint i = flat_gid();
    if (i >= p.n)
        return;
    y[i] = TSTORE(DOP(TLOAD(dy[i]), TLOAD(v[i]), p.p1, p.p2));
}
