#version 450
// Element-wise unary ops (LOOM_OP_SCALE..SQUARE), one pipeline per op.
#include "common.glsl"
#include "math.glsl"

layout(local_size_x = 256) in;
// 0 scale, 1 relu, 2 sigmoid, 3 tanh, 4 gelu, 5 exp, 6 log, 7 square
layout(constant_id = 0) const uint OP = 0;

layout(set = 0, binding = 0, std430) readonly buffer BufA { float a[]; };
layout(set = 0, binding = 1, std430) writeonly buffer BufY { float y[]; };
layout(push_constant) uniform Push { loom_pc_unary p; };

void main()
{
    uint i = flat_gid();
    if (i >= p.n)
        return;
    float x = a[i];
    float r;
    if (OP == 0)
        r = p.alpha * x;
    else if (OP == 1)
        r = x > 0.0 ? x : 0.0;
    else if (OP == 2)
        r = 1.0 / (1.0 + exp(-x));
    else if (OP == 3)
        r = loom_tanh(x);
    else if (OP == 4)
        r = loom_gelu(x);
    else if (OP == 5)
        r = exp(x);
    else if (OP == 6)
        r = log(x);
    else
        r = x * x;
    y[i] = r;
}
