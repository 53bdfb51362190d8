#version 450
// Inverted dropout with the counter-based mask of loom_rng_uniform; the
// part of the hash that depends on the run (h0) comes in the run slot.
#include "common.glsl"
#include "dtype.glsl"
#define RUN_BINDING 2
#include "runslots.glsl"

layout(local_size_x = 256) in;

layout(set = 0, binding = 0, std430) readonly buffer BufX { TS x[]; };
layout(set = 0, binding = 1, std430) writeonly buffer BufY { TS y[]; };
layout(push_constant) uniform Push { loom_pc_dropout p; };

void main()
{
    uint i = flat_gid();
    if (i >= p.n)
        return;
    float u = loom_rng_element(run[p.slot].h0, i);
    y[i] = TSTORE(u >= p.rate ? TLOAD(x[i]) * p.keep : 0.0);
}
