#version 450
// Index of the largest value along one axis, first on ties: one
// invocation per (outer, inner) pair.
#include "common.glsl"

layout(local_size_x = 256) in;

layout(set = 0, binding = 0, std430) readonly buffer BufX { float x[]; };
layout(set = 0, binding = 1, std430) writeonly buffer BufY { int y[]; };
layout(push_constant) uniform Push { loom_pc_argmax p; };

void main()
{
    uint i = flat_gid();
    if (i >= p.outer * p.inner)
        return;
    uint o = i / p.inner, in_ = i % p.inner;
    uint base = o * p.n * p.inner + in_;
    float best = x[base];
    int bi = 0;
    for (uint j = 1; j < p.n; j++) {
        float v = x[base + j * p.inner];
        if (v > best) {
            best = v;
            bi = int(j);
        }
    }
    y[i] = bi;
}
