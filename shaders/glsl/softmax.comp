#version 450
// Softmax and log-softmax along an axis: a row is the axis at one (outer,
// inner) position, its elements inner apart. One workgroup per row, or one
// invocation per row.
#include "common.glsl"
#include "dtype.glsl"
#define WG 64
#include "wgreduce.glsl"

layout(local_size_x = WG) in;
layout(constant_id = 0) const uint LOG = 0;
// 1: one invocation per row, no barriers (few columns, or drivers where a
// workgroup barrier is costly); 0: one workgroup per row.
layout(constant_id = 1) const uint PER_THREAD = 0;

layout(set = 0, binding = 0, std430) readonly buffer BufX { TS x_[]; };
layout(set = 0, binding = 1, std430) writeonly buffer BufY { TS y_[]; };
#define X(j) TLOAD(x_[base + (j) * p.inner])
#define Y(j, v) y_[base + (j) * p.inner] = TSTORE(v)
layout(push_constant) uniform Push { loom_pc_rows p; };

void row_alone()
{
    uint row = flat_gid();
    if (row >= p.rows)
        return;
    uint base = (row / p.inner) * p.cols * p.inner + row % p.inner;
    float m = NEG_INF;
    for (uint j = 0; j < p.cols; j++)
        m = max(m, X(j));
    float s = 0.0;
    for (uint j = 0; j < p.cols; j++)
        s += exp(X(j) - m);
    float lse = m + log(s);
    for (uint j = 0; j < p.cols; j++)
        Y(j, LOG != 0 ? X(j) - lse : exp(X(j) - m) / s);
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
    uint base = (row / p.inner) * p.cols * p.inner + row % p.inner;
    uint l = gl_LocalInvocationIndex;
    float m = NEG_INF;
    for (uint j = l; j < p.cols; j += WG)
        m = max(m, X(j));
    m = wg_max(m);
    float s = 0.0;
    for (uint j = l; j < p.cols; j += WG)
        s += exp(X(j) - m);
    s = wg_sum(s);
    if (LOG != 0) {
        float lse = m + log(s);
        for (uint j = l; j < p.cols; j += WG)
            Y(j, X(j) - lse);
    } else {
        for (uint j = l; j < p.cols; j += WG)
            Y(j, exp(X(j) - m) / s);
    }
}
