#version 450
// out[j] = alpha * sum of the input over the elements that broadcast onto
// j (LOOM_OP_REDUCE_SUM). PER_THREAD = 1: one invocation per output (few
// elements meet in each); 0: one workgroup per output.
#include "common.glsl"
#define WG 64
#include "wgreduce.glsl"

layout(local_size_x = WG) in;
layout(constant_id = 0) const uint PER_THREAD = 0;

layout(set = 0, binding = 0, std430) readonly buffer BufX { float x[]; };
layout(set = 0, binding = 1, std430) writeonly buffer BufY { float y[]; };
layout(push_constant) uniform Push { loom_pc_reduce p; };

// Input offset of the t-th element (in input order) that meets in output j.
uint element(uint j, uint t)
{
    uint off = 0;
    [[unroll]] for (int k = 3; k >= 0; k--) {
        uint oc, tc;
        if (p.r[k] == 1u && p.d[k] != 1u) {
            oc = 0u;
            tc = t % p.d[k];
            t /= p.d[k];
        } else {
            oc = j % p.r[k];
            j /= p.r[k];
            tc = 0u;
        }
        off += (oc + tc) * p.st[k];
    }
    return off;
}

void main()
{
    if (PER_THREAD != 0) {
        uint j = flat_gid();
        if (j >= p.on)
            return;
        float s = 0.0;
        for (uint t = 0; t < p.rn; t++)
            s += x[element(j, t)];
        y[j] = s * p.alpha;
    } else {
        uint j = flat_group();
        if (j >= p.on)
            return;
        float s = 0.0;
        for (uint t = gl_LocalInvocationIndex; t < p.rn; t += WG)
            s += x[element(j, t)];
        s = wg_sum(s);
        if (gl_LocalInvocationIndex == 0)
            y[j] = s * p.alpha;
    }
}
