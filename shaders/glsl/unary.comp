#version 450
// A unary element-wise op, y = OP(x; p1, p2): one variant per op of
// ew_unary.glsl and per dtype.
#include "common.glsl"
#include "dtype.glsl"
#include "math.glsl"
#include "ew_unary.glsl"

layout(local_size_x = 256) in;

layout(set = 0, binding = 0, std430) readonly buffer BufA { TS a[]; };
layout(set = 0, binding = 1, std430) writeonly buffer BufY { TS y[]; };
layout(push_constant) uniform Push { loom_pc_unary p; };

void main()
{
    uint i = flat_gid();
    if (i >= p.n)
        return;
    y[i] = TSTORE(OP(TLOAD(a[i]), p.p1, p.p2));
}
