#version 450
// Element-wise add, sub, mul, div with numpy broadcasting (LOOM_OP_ADD..DIV).
#include "common.glsl"

layout(local_size_x = 256) in;
layout(constant_id = 0) const uint OP = 0; // 0 add, 1 sub, 2 mul, 3 div

layout(set = 0, binding = 0, std430) readonly buffer BufA { float a[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufB { float b[]; };
layout(set = 0, binding = 2, std430) writeonly buffer BufY { float y[]; };
layout(push_constant) uniform Push { loom_pc_bcast p; };

void main()
{
    uint i = flat_gid();
    if (i >= p.n)
        return;
    float x, z;
    if (p.dense != 0) {
        x = a[i];
        z = b[i];
    } else {
        x = a[strided_index(i, p.d, p.sa)];
        z = b[strided_index(i, p.d, p.sb)];
    }
    float r;
    if (OP == 0)
        r = x + z;
    else if (OP == 1)
        r = x - z;
    else if (OP == 2)
        r = x * z;
    else
        r = x / z;
    y[i] = r;
}
