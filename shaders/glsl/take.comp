#version 450
// take (code LOOM_INDEX_TAKE: x [outer, bound, inner] at nj indices into
// [outer, nj, inner]) and gather (LOOM_INDEX_GATHER: out at p = x at p with
// its axis coordinate idx[p]). An index outside [0, bound) gives NaN: the
// host checked the indices it was given; others come from the state.
#include "common.glsl"
#include "dtype.glsl"
#include "codes.h"

layout(local_size_x = 256) in;
layout(constant_id = 0) const uint CODE = 0;

layout(set = 0, binding = 0, std430) readonly buffer BufX { TS x_[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufI { int idx_[]; };
layout(set = 0, binding = 2, std430) writeonly buffer BufY { TS y_[]; };
layout(push_constant) uniform Push { loom_pc_index p; };

void main()
{
    uint e = flat_gid();
    if (e >= p.n)
        return;
    float nan = uintBitsToFloat(0x7fc00000u);
    if (CODE == LOOM_INDEX_TAKE) {
        uint i = e % p.inner, r = e / p.inner, j = r % p.nj, o = r / p.nj;
        int v = idx_[j];
        y_[e] = v < 0 || uint(v) >= p.bound ? TSTORE(nan) : x_[(o * p.bound + uint(v)) * p.inner + i];
        return;
    }
    int v = idx_[e];
    if (v < 0 || uint(v) >= p.bound) {
        y_[e] = TSTORE(nan);
        return;
    }
    uint c[4];
    uint r = e;
    [[unroll]] for (int k = 3; k >= 0; k--) {
        c[k] = r % p.d[k];
        r /= p.d[k];
    }
    c[p.axis] = uint(v);
    y_[e] = x_[c[0] * p.xs[0] + c[1] * p.xs[1] + c[2] * p.xs[2] + c[3] * p.xs[3]];
}
