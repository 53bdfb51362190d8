#version 450
// Exponential moving average of a parameter: ema = d ema + (1 - d) p, with
// d = 0 at the first step (the host puts d in the run slot).
#include "common.glsl"
#define RUN_BINDING 2
#include "runslots.glsl"

layout(local_size_x = 256) in;

layout(set = 0, binding = 0, std430) buffer BufE { float e[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufP { float w[]; };
layout(push_constant) uniform Push { loom_pc_update p; };

void main()
{
    uint i = flat_gid();
    if (i >= p.n)
        return;
    float d = run[p.slot].decay;
    e[i] = d * e[i] + (1.0 - d) * w[i];
}
