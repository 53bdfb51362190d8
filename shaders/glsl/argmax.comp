#version 450
// Index of the largest (CODE LOOM_ARG_MAX) or smallest value along one
// axis, first on ties: one invocation per (outer, inner) pair.
#include "common.glsl"
#include "codes.h"
#include "dtype.glsl"

layout(local_size_x = 256) in;
layout(constant_id = 0) const uint CODE = LOOM_ARG_MAX;

layout(set = 0, binding = 0, std430) readonly buffer BufX { TS x[]; };
layout(set = 0, binding = 1, std430) writeonly buffer BufY { int y[]; };
layout(push_constant) uniform Push { loom_pc_argmax p; };

void main()
{
    uint i = flat_gid();
    if (i >= p.outer * p.inner)
        return;
    uint o = i / p.inner, in_ = i % p.inner;
    uint base = o * p.n * p.inner + in_;
    float best = TLOAD(x[base]);
    int bi = 0;
    for (uint j = 1; j < p.n; j++) {
        float v = TLOAD(x[base + j * p.inner]);
        if (CODE == LOOM_ARG_MAX ? v > best : v < best) {
            best = v;
            bi = int(j);
        }
    }
    y[i] = bi;
}
