#version 450
// The run's loss scale as a tensor: the seed of a loss-scaled backward pass.
#include "common.glsl"
#define RUN_BINDING 1
#include "runslots.glsl"

layout(local_size_x = 1) in;

layout(set = 0, binding = 0, std430) writeonly buffer BufY { float y[]; };
layout(push_constant) uniform Push { loom_pc_slot p; };

void main()
{
    if (p.n != 0u)
        y[0] = run[p.slot].loss_scale;
}
