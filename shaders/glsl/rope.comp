#version 450
// Rotary position embedding: one invocation per pair (x[i], x[i + halfdim])
// of a row; the angle pos * 2^(-(2i / dim) log2(base)) in f32, as the CPU
// computes it.
#include "common.glsl"
#include "dtype.glsl"

layout(local_size_x = 256) in;

layout(set = 0, binding = 0, std430) readonly buffer BufX { TS x_[]; };
layout(set = 0, binding = 1, std430) writeonly buffer BufY { TS y_[]; };
layout(push_constant) uniform Push { loom_pc_rope p; };

void main()
{
    uint e = flat_gid();
    if (e >= p.n)
        return;
    uint i = e % p.halfdim, row = e / p.halfdim, pos = (row / p.mid) % p.npos;
    uint dim = 2u * p.halfdim, base = row * dim;
    float th = float(pos) * exp2(-float(2u * i) / float(dim) * p.l2b);
    float c = cos(th), s = p.sign * sin(th);
    float x1 = TLOAD(x_[base + i]), x2 = TLOAD(x_[base + i + p.halfdim]);
    y_[base + i] = TSTORE(x1 * c - x2 * s);
    y_[base + i + p.halfdim] = TSTORE(x1 * s + x2 * c);
}
