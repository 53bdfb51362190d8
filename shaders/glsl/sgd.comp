#version 450
// SGD, plain (MOMENTUM = 0) or with (Nesterov) momentum, in place on the
// parameter and its velocity; one tensor, or with LOOM_MULTI a group of
// them (update.glsl).
#include "common.glsl"
#ifdef LOOM_MULTI
#define RUN_BINDING 3
#define TABLE_BINDING 4
#else
#define RUN_BINDING 4
#endif
#include "runslots.glsl"

layout(local_size_x = 256) in;
layout(constant_id = 0) const uint MOMENTUM = 0;

#ifdef LOOM_MULTI
layout(set = 0, binding = 0, std430) buffer BufS { float st[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufG { float gr[]; };
layout(set = 0, binding = 2, std430) readonly buffer BufN { float sumsq[]; };
#define W st[e_p + i]
#define VEL st[e_m + i]
#define G(k) gr[e_g + (k)]
#else
layout(set = 0, binding = 0, std430) buffer BufP { float w[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufG { float g[]; };
layout(set = 0, binding = 2, std430) buffer BufV { float v[]; };
layout(set = 0, binding = 3, std430) readonly buffer BufN { float sumsq[]; };
#define W w[i]
#define VEL v[i]
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
    float lr = run[p.slot].lr;
    for (uint j = 0u; j < PER; j++) {
        uint i = i0 + j * gl_WorkGroupSize.x;
        if (i >= n)
            return;
        float gi = penalized(grad_sum(i, n, rows), W, f);
        if (MOMENTUM == 0) {
            W -= lr * gi;
        } else {
            float vi = p.momentum * VEL - lr * gi;
            VEL = vi;
            W += p.nesterov != 0u ? p.momentum * vi - lr * gi : vi;
        }
    }
}
