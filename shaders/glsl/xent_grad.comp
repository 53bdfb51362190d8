#version 450
// Sparse cross-entropy, backward: out[r] = dloss / N * (softmax(z[r]) -
// onehot(label[r])), in the logits' dtype (NaN rows for a label outside
// [0, C)). One workgroup per row, or one invocation per row.
#include "common.glsl"
#include "dtype.glsl"
#define WG 64
#include "wgreduce.glsl"

layout(local_size_x = WG) in;
// 1: one invocation per row, no barriers; 0: one workgroup per row.
layout(constant_id = 1) const uint PER_THREAD = 0;

layout(set = 0, binding = 0, std430) readonly buffer BufDl { float dl[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufZ { TS z_[]; };
#define z(i) TLOAD(z_[i])
layout(set = 0, binding = 2, std430) readonly buffer BufL { int lab[]; };
layout(set = 0, binding = 3, std430) writeonly buffer BufY { TS y[]; };
layout(push_constant) uniform Push { loom_pc_rows p; };

void row_alone()
{
    uint row = flat_gid();
    if (row >= p.rows)
        return;
    uint base = row * p.cols;
    float m = NEG_INF;
    for (uint j = 0; j < p.cols; j++)
        m = max(m, z(base + j));
    float s = 0.0;
    for (uint j = 0; j < p.cols; j++)
        s += exp(z(base + j) - m);
    float scale = dl[0] / float(p.rows);
    uint label = lab[row] < 0 ? 0xffffffffu : uint(lab[row]);
    for (uint j = 0; j < p.cols; j++) {
        float v = exp(z(base + j) - m) / s;
        if (j == label)
            v -= 1.0;
        y[base + j] = TSTORE(label < p.cols ? v * scale : uintBitsToFloat(0x7fc00000u));
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
    float m = NEG_INF;
    for (uint j = l; j < p.cols; j += WG)
        m = max(m, z(base + j));
    m = wg_max(m);
    float s = 0.0;
    for (uint j = l; j < p.cols; j += WG)
        s += exp(z(base + j) - m);
    s = wg_sum(s);
    float scale = dl[0] / float(p.rows);
    uint label = lab[row] < 0 ? 0xffffffffu : uint(lab[row]);
    for (uint j = l; j < p.cols; j += WG) {
        float v = exp(z(base + j) - m) / s;
        if (j == label)
            v -= 1.0;
        y[base + j] = TSTORE(label < p.cols ? v * scale : uintBitsToFloat(0x7fc00000u));
    }
}
