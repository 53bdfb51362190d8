// Shared by every kernel: the push-constant structs, the flat invocation
// index over a 2-D grid of workgroups, and loom's counter-based RNG.
#ifndef LOOM_COMMON_GLSL
#define LOOM_COMMON_GLSL

#extension GL_EXT_control_flow_attributes : enable

#include "push.h"

// The host spreads large 1-D dispatches over x and y (at most 65535
// workgroups per dimension on many devices); the index runs over both.
// A macro, not a function: gl_WorkGroupSize only holds the shader's size
// after its local_size layout, and this file is included before that
// (in a function here glslang took it as 1, so rows of a 2-D grid
// overlapped and in-place ops ran twice on part of their data).
#define flat_gid() (gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x)

uint flat_group()
{
    return gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
}

// The same integer arithmetic as loom_rng_hash / loom_rng_uniform in
// src/core/ir.h: every backend draws the same dropout mask.
uint loom_rng_hash(uint x)
{
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

// loom_rng_element: element i of the mask whose run part is h0.
float loom_rng_element(uint h0, uint i)
{
    return float(loom_rng_hash(h0 ^ i) >> 8) * (1.0 / 16777216.0);
}

// Rank-4 offset of flat index i over dims d with strides s.
uint strided_index(uint i, uint d[4], uint s[4])
{
    uint i3 = i % d[3];
    uint r = i / d[3];
    uint i2 = r % d[2];
    r /= d[2];
    uint i1 = r % d[1];
    uint i0 = r / d[1];
    return i0 * s[0] + i1 * s[1] + i2 * s[2] + i3 * s[3];
}

#endif
