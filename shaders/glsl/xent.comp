#version 450
// Sparse cross-entropy, forward: mean over rows of
// logsumexp(z[r]) - z[r, label[r]] (f32 whatever the logits' dtype; NaN
// for a label outside [0, C)). One workgroup over rows r0 <= r < r1, its
// sum added onto the loss with acc (the host splits the rows where the
// driver lets an invocation loop only so far). ROW_WG 0: each invocation
// walks whole rows; 1: the workgroup walks each row together (rows too
// long for one invocation). Then the workgroup sums.
#include "common.glsl"
#include "dtype.glsl"
#define WG 256
#include "wgreduce.glsl"

layout(local_size_x = WG) in;
layout(constant_id = 0) const uint ROW_WG = 0;

layout(set = 0, binding = 0, std430) readonly buffer BufZ { TS z_[]; };
#define z(i) TLOAD(z_[i])
layout(set = 0, binding = 1, std430) readonly buffer BufL { int lab[]; };
layout(set = 0, binding = 2, std430) buffer BufY { float y[]; };
layout(push_constant) uniform Push { loom_pc_rows p; };

void main()
{
    uint l = gl_LocalInvocationIndex;
    float total = 0.0;
    if (ROW_WG == 0u) {
        for (uint r = p.r0 + l; r < p.r1; r += WG) {
            uint base = r * p.cols;
            int label = lab[r];
            if (label < 0 || uint(label) >= p.cols) {
                total += uintBitsToFloat(0x7fc00000u);
                continue;
            }
            float m = z(base);
            for (uint j = 1; j < p.cols; j++)
                m = max(m, z(base + j));
            float s = 0.0;
            for (uint j = 0; j < p.cols; j++)
                s += exp(z(base + j) - m);
            total += m + log(s) - z(base + uint(label));
        }
    } else {
        for (uint r = p.r0; r < p.r1; r++) {
            uint base = r * p.cols;
            int label = lab[r]; // uniform over the workgroup
            if (label < 0 || uint(label) >= p.cols) {
                if (l == 0u)
                    total += uintBitsToFloat(0x7fc00000u);
                continue;
            }
            float m = NEG_INF;
            for (uint j = l; j < p.cols; j += WG)
                m = max(m, z(base + j));
            m = wg_max(m);
            float s = 0.0;
            for (uint j = l; j < p.cols; j += WG)
                s += exp(z(base + j) - m);
            s = wg_sum(s);
            if (l == 0u)
                total += m + log(s) - z(base + uint(label));
        }
    }
    total = wg_sum(total);
    if (l == 0 && p.rows > 0)
        y[0] = (p.acc != 0u ? y[0] : 0.0) + total / float(p.rows);
}
