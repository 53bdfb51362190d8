#version 450
// Gradients of the unary activations: y = dy * f'(v), where v is the
// forward input (relu, gelu) or output (sigmoid, tanh) as src/core/ir.h says.
#include "common.glsl"
#include "math.glsl"

layout(local_size_x = 256) in;
// 0 relu, 1 sigmoid, 2 tanh, 3 gelu
layout(constant_id = 0) const uint OP = 0;

layout(set = 0, binding = 0, std430) readonly buffer BufDy { float dy[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufV { float v[]; };
layout(set = 0, binding = 2, std430) writeonly buffer BufY { float y[]; };
layout(push_constant) uniform Push { loom_pc_unary p; };

void main()
{
    uint i = flat_gid();
    if (i >= p.n)
        return;
    float d = dy[i];
    float x = v[i];
    float r;
    if (OP == 0)
        r = x > 0.0 ? d : 0.0;
    else if (OP == 1)
        r = d * x * (1.0 - x);
    else if (OP == 2)
        r = d * (1.0 - x * x);
    else
        r = d * loom_gelu_grad(x);
    y[i] = r;
}
