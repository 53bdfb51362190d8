#version 450
// Inverted dropout with the counter-based mask of loom_rng_uniform.
#include "common.glsl"
#define RUN_BINDING 2
#include "runslots.glsl"

layout(local_size_x = 256) in;

layout(set = 0, binding = 0, std430) readonly buffer BufX { float x[]; };
layout(set = 0, binding = 1, std430) writeonly buffer BufY { float y[]; };
layout(push_constant) uniform Push { loom_pc_dropout p; };

void main()
{
    uint i = flat_gid();
    if (i >= p.n)
        return;
    float u = loom_rng_uniform(p.seed, p.salt, run[p.slot].step, i);
    y[i] = u >= p.rate ? x[i] * p.keep : 0.0;
}
