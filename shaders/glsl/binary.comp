#version 450
// A binary element-wise op with numpy broadcasting, y = OP(a, b): one
// variant per op of ew_binary.glsl and per dtype.
#include "common.glsl"
#include "dtype.glsl"
#include "math.glsl"
#include "ew_binary.glsl"

layout(local_size_x = 256) in;

layout(set = 0, binding = 0, std430) readonly buffer BufA { TS a[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufB { TS b[]; };
layout(set = 0, binding = 2, std430) writeonly buffer BufY { TS y[]; };
layout(push_constant) uniform Push { loom_pc_bcast p; };

void main()
{
    uint i = flat_gid();
    if (i >= p.n)
        return;
    float x, z;
    if (p.dense != 0) {
        x = TLOAD(a[i]);
        z = TLOAD(b[i]);
    } else {
        x = TLOAD(a[strided_index(i, p.d, p.sa)]);
        z = TLOAD(b[strided_index(i, p.d, p.sb)]);
    }
    y[i] = TSTORE(OP(x, z));
}
