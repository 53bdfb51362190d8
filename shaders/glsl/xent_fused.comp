#version 450
// Sparse cross-entropy's loss, its gradient and each row's arg-max in one
// pass over the logits (the core's fusion of a classifier's training step):
// grad[r] = dloss / N * (softmax(z[r]) - onehot(label[r])) in the logits'
// dtype, loss = mean over rows of logsumexp(z[r]) - z[r, label[r]] (f32),
// pred[r] = the first arg-max of z[r] (HAS_PRED). The arithmetic of
// xent.comp, xent_grad.comp and argmax.comp, so the values are theirs. One
// workgroup; each invocation walks whole rows, then the workgroup sums.
#include "common.glsl"
#include "dtype.glsl"
#define WG 256
#include "wgreduce.glsl"

layout(local_size_x = WG) in;
layout(constant_id = 0) const uint HAS_LOSS = 1;
layout(constant_id = 1) const uint HAS_PRED = 1;

layout(set = 0, binding = 0, std430) readonly buffer BufDl { float dl[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufZ { TS z_[]; };
#define z(i) TLOAD(z_[i])
layout(set = 0, binding = 2, std430) readonly buffer BufL { int lab[]; };
layout(set = 0, binding = 3, std430) writeonly buffer BufY { TS y[]; };
layout(set = 0, binding = 4, std430) writeonly buffer BufLoss { float loss[]; };
layout(set = 0, binding = 5, std430) writeonly buffer BufPred { int pred[]; };
layout(push_constant) uniform Push { loom_pc_rows p; };

void main()
{
    uint l = gl_LocalInvocationIndex;
    float scale = dl[0] / float(p.rows);
    float total = 0.0;
    for (uint r = l; r < p.rows; r += WG) {
        uint base = r * p.cols;
        float m = z(base);
        uint best = 0u;
        for (uint j = 1; j < p.cols; j++) {
            float v = z(base + j);
            if (v > m) {
                m = v;
                best = j;
            }
        }
        if (HAS_PRED != 0u)
            pred[r] = int(best);
        float s = 0.0;
        for (uint j = 0; j < p.cols; j++)
            s += exp(z(base + j) - m);
        uint label = lab[r] < 0 ? 0xffffffffu : uint(lab[r]);
        if (label >= p.cols) {
            total += uintBitsToFloat(0x7fc00000u);
            for (uint j = 0; j < p.cols; j++)
                y[base + j] = TSTORE(uintBitsToFloat(0x7fc00000u));
            continue;
        }
        total += m + log(s) - z(base + label);
        for (uint j = 0; j < p.cols; j++) {
            float v = exp(z(base + j) - m) / s;
            if (j == label)
                v -= 1.0;
            y[base + j] = TSTORE(v * scale);
        }
    }
    if (HAS_LOSS != 0u) {
        total = wg_sum(total);
        if (l == 0 && p.rows > 0)
            loss[0] = total / float(p.rows);
    }
}
