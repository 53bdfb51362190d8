#version 450
// The gradient of max (CODE LOOM_ARG_MAX) or min along one axis: dx = dy
// at the first arg-max of each (outer, inner) slice, 0 elsewhere. One
// invocation per slice writes the whole slice.
#include "common.glsl"
#include "codes.h"
#include "dtype.glsl"

layout(local_size_x = 256) in;
layout(constant_id = 0) const uint CODE = LOOM_ARG_MAX;

layout(set = 0, binding = 0, std430) readonly buffer BufDy { TS dy[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufX { TS x[]; };
layout(set = 0, binding = 2, std430) writeonly buffer BufY { TS y[]; };
layout(push_constant) uniform Push { loom_pc_argmax p; };

void main()
{
    uint i = flat_gid();
    if (i >= p.outer * p.inner)
        return;
    uint o = i / p.inner, in_ = i % p.inner;
    uint base = o * p.n * p.inner + in_;
    float best = TLOAD(x[base]);
    uint bi = 0;
    for (uint j = 1; j < p.n; j++) {
        float v = TLOAD(x[base + j * p.inner]);
        if (CODE == LOOM_ARG_MAX ? v > best : v < best) {
            best = v;
            bi = j;
        }
    }
    float d = TLOAD(dy[i]);
    for (uint j = 0; j < p.n; j++)
        y[base + j * p.inner] = TSTORE(j == bi ? d : 0.0);
}
