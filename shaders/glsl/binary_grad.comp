#version 450
// dy * d OP / d a (SIDE 0) or d b (SIDE 1) at the output's shape; core
// then sums it onto the operand's shape. dy is dense, a and b broadcast.
#include "common.glsl"
#include "dtype.glsl"
#include "math.glsl"
#include "ew_binary.glsl"

layout(local_size_x = 256) in;
layout(constant_id = 0) const uint SIDE = 0;

layout(set = 0, binding = 0, std430) readonly buffer BufDy { TS dy[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufA { TS a[]; };
layout(set = 0, binding = 2, std430) readonly buffer BufB { TS b[]; };
layout(set = 0, binding = 3, std430) writeonly buffer BufY { TS y[]; };
layout(push_constant) uniform Push { loom_pc_bcast p; };

void main()
{
    uint i = flat_gid();
    if (i >= p.n)
        return;
    float x = TLOAD(a[p.dense != 0 ? i : strided_index(i, p.d, p.sa)]);
    float z = TLOAD(b[p.dense != 0 ? i : strided_index(i, p.d, p.sb)]);
    y[i] = TSTORE(TLOAD(dy[i]) * (SIDE == 0 ? DA(x, z) : DB(x, z)));
}
