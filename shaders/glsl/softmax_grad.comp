#version 450
// Gradients of softmax (y * (dy - sum(dy * y))) and log-softmax
// (dy - exp(y) * sum(dy)) over the last axis: one workgroup per row.
#include "common.glsl"
#define WG 64
#include "wgreduce.glsl"

layout(local_size_x = WG) in;
layout(constant_id = 0) const uint LOG = 0;
// 1: one invocation per row, no barriers; 0: one workgroup per row.
layout(constant_id = 1) const uint PER_THREAD = 0;

layout(set = 0, binding = 0, std430) readonly buffer BufDy { float dy[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufV { float v[]; };
layout(set = 0, binding = 2, std430) writeonly buffer BufY { float y[]; };
layout(push_constant) uniform Push { loom_pc_rows p; };

void row_alone()
{
    uint row = flat_gid();
    if (row >= p.rows)
        return;
    uint base = row * p.cols;
    float acc = 0.0;
    for (uint j = 0; j < p.cols; j++)
        acc += LOG != 0 ? dy[base + j] : dy[base + j] * v[base + j];
    for (uint j = 0; j < p.cols; j++) {
        float d = dy[base + j], s = v[base + j];
        y[base + j] = LOG != 0 ? d - exp(s) * acc : s * (d - acc);
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
    uint base = row * p.cols;
    uint l = gl_LocalInvocationIndex;
    float acc = 0.0;
    for (uint j = l; j < p.cols; j += WG)
        acc += LOG != 0 ? dy[base + j] : dy[base + j] * v[base + j];
    acc = wg_sum(acc);
    for (uint j = l; j < p.cols; j += WG) {
        float d = dy[base + j], s = v[base + j];
        y[base + j] = LOG != 0 ? d - exp(s) * acc : s * (d - acc);
    }
}
