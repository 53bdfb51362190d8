#version 450
// SGD, plain (MOMENTUM = 0) or with (Nesterov) momentum, in place on the
// parameter and its velocity.
#include "common.glsl"
#define RUN_BINDING 4
#include "runslots.glsl"

layout(local_size_x = 256) in;
layout(constant_id = 0) const uint MOMENTUM = 0;

layout(set = 0, binding = 0, std430) buffer BufP { float w[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufG { float g[]; };
layout(set = 0, binding = 2, std430) buffer BufV { float v[]; };
layout(set = 0, binding = 3, std430) readonly buffer BufN { float sumsq[]; };
layout(push_constant) uniform Push { loom_pc_update p; };

#include "penalty.glsl"

void main()
{
    uint i = flat_gid();
    if (i >= p.n)
        return;
    bool skip;
    float f = grad_factor(p.clip != 0u ? sumsq[0] : 0.0, run[p.slot].inv_scale, skip);
    if (skip)
        return;
    float lr = run[p.slot].lr;
    float gi = penalized(g[i], w[i], f);
    if (MOMENTUM == 0) {
        w[i] -= lr * gi;
    } else {
        float vi = p.momentum * v[i] - lr * gi;
        v[i] = vi;
        w[i] += p.nesterov != 0u ? p.momentum * vi - lr * gi : vi;
    }
}
