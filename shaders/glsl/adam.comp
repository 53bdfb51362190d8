#version 450
// Adam and AdamW (decoupled weight decay applied before the step), in place
// on the parameter and both moments.
#include "common.glsl"
#define RUN_BINDING 5
#include "runslots.glsl"

layout(local_size_x = 256) in;

layout(set = 0, binding = 0, std430) buffer BufP { float w[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufG { float g[]; };
layout(set = 0, binding = 2, std430) buffer BufM { float m[]; };
layout(set = 0, binding = 3, std430) buffer BufV { float v[]; };
layout(set = 0, binding = 4, std430) readonly buffer BufN { float sumsq[]; };
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
    float lr = run[p.slot].lr, alpha = run[p.slot].alpha;
    float wi = w[i];
    float gi = penalized(g[i], wi, f);
    if (p.weight_decay != 0.0)
        wi -= lr * p.weight_decay * wi;
    float mi = m[i] + (gi - m[i]) * (1.0 - p.beta1);
    float vi = v[i] + (gi * gi - v[i]) * (1.0 - p.beta2);
    m[i] = mi;
    v[i] = vi;
    w[i] = wi - alpha * mi / (sqrt(vi) + p.eps);
}
