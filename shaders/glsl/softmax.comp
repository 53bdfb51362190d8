#version 450
// Softmax and log-softmax over the last axis: one workgroup per row.
#include "common.glsl"
#define WG 64
#include "wgreduce.glsl"

layout(local_size_x = WG) in;
layout(constant_id = 0) const uint LOG = 0;
// 1: one invocation per row, no barriers (few columns, or drivers where a
// workgroup barrier is costly); 0: one workgroup per row.
layout(constant_id = 1) const uint PER_THREAD = 0;

layout(set = 0, binding = 0, std430) readonly buffer BufX { float x[]; };
layout(set = 0, binding = 1, std430) writeonly buffer BufY { float y[]; };
layout(push_constant) uniform Push { loom_pc_rows p; };

void row_alone()
{
    uint row = flat_gid();
    if (row >= p.rows)
        return;
    uint base = row * p.cols;
    float m = NEG_INF;
    for (uint j = 0; j < p.cols; j++)
        m = max(m, x[base + j]);
    float s = 0.0;
    for (uint j = 0; j < p.cols; j++)
        s += exp(x[base + j] - m);
    float lse = m + log(s);
    for (uint j = 0; j < p.cols; j++)
        y[base + j] = LOG != 0 ? x[base + j] - lse : exp(x[base + j] - m) / s;
}

void main()
{
    if (PER_THREAD != 0) {
        row_alone();
        return;
    }
    uint row = flat_group();
    if (row >= p.rows)
        return; // uniform over the workgroup
    uint base = row * p.cols;
    uint l = gl_LocalInvocationIndex;
    float m = NEG_INF;
    for (uint j = l; j < p.cols; j += WG)
        m = max(m, x[base + j]);
    m = wg_max(m);
    float s = 0.0;
    for (uint j = l; j < p.cols; j += WG)
        s += exp(x[base + j] - m);
    s = wg_sum(s);
    if (LOG != 0) {
        float lse = m + log(s);
        for (uint j = l; j < p.cols; j += WG)
            y[base + j] = x[base + j] - lse;
    } else {
        for (uint j = l; j < p.cols; j += WG)
            y[base + j] = exp(x[base + j] - m) / s;
    }
}
