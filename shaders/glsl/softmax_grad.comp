#version 450
// Gradients of softmax (y * (dy - sum(dy * y))) and log-softmax
// (dy - exp(y) * sum(dy)) along an axis (rows as softmax.comp has them).
#include "common.glsl"
#include "dtype.glsl"
#define WG 64
#include "wgreduce.glsl"

layout(local_size_x = WG) in;
layout(constant_id = 0) const uint LOG = 0;
// 1: one invocation per row, no barriers; 0: one workgroup per row.
layout(constant_id = 1) const uint PER_THREAD = 0;

layout(set = 0, binding = 0, std430) readonly buffer BufDy { TS dy_[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufV { TS v_[]; };
layout(set = 0, binding = 2, std430) writeonly buffer BufY { TS y_[]; };
#define DY(j) TLOAD(dy_[base + (j) * p.inner])
#define V(j) TLOAD(v_[base + (j) * p.inner])
#define Y(j, val) y_[base + (j) * p.inner] = TSTORE(val)
layout(push_constant) uniform Push { loom_pc_rows p; };

void row_alone()
{
    uint row = flat_gid();
    if (row >= p.rows)
        return;
    uint base = (row / p.inner) * p.cols * p.inner + row % p.inner;
    float acc = 0.0;
    for (uint j = 0; j < p.cols; j++)
        acc += LOG != 0 ? DY(j) : DY(j) * V(j);
    for (uint j = 0; j < p.cols; j++) {
        float d = DY(j), s = V(j);
        Y(j, LOG != 0 ? d - exp(s) * acc : s * (d - acc));
    }
}

void main()
{
    if (PER_THREAD != 0) {
        row_alone();
        return;
    }
    uint row = flat_group();
    if (row >= p.rows)
        return;
    uint base = (row / p.inner) * p.cols * p.inner + row % p.inner;
    uint l = gl_LocalInvocationIndex;
    float acc = 0.0;
    for (uint j = l; j < p.cols; j += WG)
        acc += LOG != 0 ? DY(j) : DY(j) * V(j);
    acc = wg_sum(acc);
    for (uint j = l; j < p.cols; j += WG) {
        float d = DY(j), s = V(j);
        Y(j, LOG != 0 ? d - exp(s) * acc : s * (d - acc));
    }
}
