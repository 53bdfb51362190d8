#version 450
// Exponential moving average of a parameter: ema = d ema + (1 - d) p, with
// d = 0 at the first step (the host puts d in the run slot); one tensor, or
// with LOOM_MULTI a group of them (update.glsl).
#include "common.glsl"
#ifdef LOOM_MULTI
#define RUN_BINDING 1
#define TABLE_BINDING 2
#else
#define RUN_BINDING 2
#endif
#include "runslots.glsl"

layout(local_size_x = 256) in;

#ifdef LOOM_MULTI
// the averages and the parameters, both in one window of the state
layout(set = 0, binding = 0, std430) buffer BufS { float st[]; };
#define E st[e_p + i]
#define G(k) st[e_g + (k)]
#else
layout(set = 0, binding = 0, std430) buffer BufE { float e[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufP { float w[]; };
#define E e[i]
#define G(k) w[k]
#endif
layout(push_constant) uniform Push { loom_pc_update p; };

#include "update.glsl"

void main()
{
    uint i0, n, rows;
    update_first(i0, n, rows);
    float d = run[p.slot].decay;
    for (uint j = 0u; j < PER; j++) {
        uint i = i0 + j * gl_WorkGroupSize.x;
        if (i >= n)
            return;
        E = d * E + (1.0 - d) * G(i);
    }
}
