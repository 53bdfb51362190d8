#version 450
// y = c != 0 ? a : b, the three broadcast onto the output.
#include "common.glsl"
#include "dtype.glsl"

layout(local_size_x = 256) in;

layout(set = 0, binding = 0, std430) readonly buffer BufC { TS c[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufA { TS a[]; };
layout(set = 0, binding = 2, std430) readonly buffer BufB { TS b[]; };
layout(set = 0, binding = 3, std430) writeonly buffer BufY { TS y[]; };
layout(push_constant) uniform Push { loom_pc_where p; };

void main()
{
    uint i = flat_gid();
    if (i >= p.n)
        return;
    bool take = TLOAD(c[strided_index(i, p.d, p.sc)]) != 0.0;
    y[i] = take ? a[strided_index(i, p.d, p.sa)] : b[strided_index(i, p.d, p.sb)];
}
