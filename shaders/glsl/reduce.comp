#version 450
// out[j] = alpha * the sum (CODE LOOM_REDUCE_SUM), or the max or min, of
// the input over the elements that meet in j (those t0 <= t < t1 of them,
// combined onto out[j] with acc: the host splits a reduction longer than
// the driver lets an invocation loop). PER_THREAD = 1: one invocation per
// output (few elements meet in each); 0: one workgroup per output.
#include "common.glsl"
#include "codes.h"
#include "dtype.glsl"
#define WG 64
#include "wgreduce.glsl"

layout(local_size_x = WG) in;
layout(constant_id = 0) const uint PER_THREAD = 0;
layout(constant_id = 1) const uint CODE = LOOM_REDUCE_SUM;

layout(set = 0, binding = 0, std430) readonly buffer BufX { TS x[]; };
layout(set = 0, binding = 1, std430) buffer BufY { TS y[]; };
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

float start()
{
    return CODE == LOOM_REDUCE_SUM ? 0.0 : CODE == LOOM_REDUCE_MAX ? NEG_INF : -NEG_INF;
}

float combine(float s, float v)
{
    return CODE == LOOM_REDUCE_SUM ? s + v : CODE == LOOM_REDUCE_MAX ? max(s, v) : min(s, v);
}

// The output of a part: the previous parts' result combined in with acc.
void finish(uint j, float s)
{
    if (CODE == LOOM_REDUCE_SUM)
        s *= p.alpha;
    if (p.acc != 0u)
        s = combine(TLOAD(y[j]), s);
    y[j] = TSTORE(s);
}

void main()
{
    if (PER_THREAD != 0) {
        uint j = flat_gid();
        if (j >= p.on)
            return;
        float s = start();
        for (uint t = p.t0; t < p.t1; t++)
            s = combine(s, TLOAD(x[element(j, t)]));
        finish(j, s);
    } else {
        uint j = flat_group();
        if (j >= p.on)
            return;
        float s = start();
        for (uint t = p.t0 + gl_LocalInvocationIndex; t < p.t1; t += WG)
            s = combine(s, TLOAD(x[element(j, t)]));
        s = CODE == LOOM_REDUCE_SUM ? wg_sum(s) : CODE == LOOM_REDUCE_MAX ? wg_max(s) : -wg_max(-s);
        if (gl_LocalInvocationIndex == 0)
            finish(j, s);
    }
}
