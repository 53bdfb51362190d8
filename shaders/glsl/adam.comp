#version 450
// Adam and AdamW (decoupled weight decay applied before the step), in place
// on the parameter and both moments; one tensor, or with LOOM_MULTI a group
// of them (update.glsl).
#include "common.glsl"
#ifdef LOOM_MULTI
#define RUN_BINDING 3
#define TABLE_BINDING 4
#else
#define RUN_BINDING 5
#endif
#include "runslots.glsl"

layout(local_size_x = 256) in;

#ifdef LOOM_MULTI
// the parameters and moments (a window of the state), the gradients
layout(set = 0, binding = 0, std430) buffer BufS { float st[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufG { float gr[]; };
layout(set = 0, binding = 2, std430) readonly buffer BufN { float sumsq[]; };
#define W st[e_p + i]
#define M st[e_m + i]
#define V st[e_v + i]
#define G(k) gr[e_g + (k)]
#else
layout(set = 0, binding = 0, std430) buffer BufP { float w[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufG { float g[]; };
layout(set = 0, binding = 2, std430) buffer BufM { float m[]; };
layout(set = 0, binding = 3, std430) buffer BufV { float v[]; };
layout(set = 0, binding = 4, std430) readonly buffer BufN { float sumsq[]; };
#define W w[i]
#define M m[i]
#define V v[i]
#define G(k) g[k]
#endif
layout(push_constant) uniform Push { loom_pc_update p; };

#include "penalty.glsl"
#include "update.glsl"

void main()
{
    uint i0, n, rows;
    update_first(i0, n, rows);
    if (i0 >= n)
        return;
    bool skip;
    float f = grad_factor(p.clip != 0u ? sumsq[0] : 0.0, run[p.slot].inv_scale, skip);
    if (skip)
        return;
    float lr = run[p.slot].lr, alpha = run[p.slot].alpha;
    for (uint j = 0u; j < PER; j++) {
        uint i = i0 + j * gl_WorkGroupSize.x;
        if (i >= n)
            return;
        float wi = W;
        float gi = penalized(grad_sum(i, n, rows), wi, f);
        if (p.weight_decay != 0.0)
            wi -= lr * p.weight_decay * wi;
        float mi = M + (gi - M) * (1.0 - p.beta1);
        float vi = V + (gi * gi - V) * (1.0 - p.beta2);
        M = mi;
        V = vi;
        W = wi - alpha * mi / (sqrt(vi) + p.eps);
    }
}
