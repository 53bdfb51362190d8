#version 450
// Convolution for CPU-type drivers (lavapipe), where a workgroup barrier
// and shared memory are slow: no shared memory, each invocation computes
// TM rows x TN columns of the implicit GEMM in registers, walking the
// kernel taps in nested loops (no index division inside them) and reading
// the tensors directly (through texel buffers with TEXEL). Rows and
// columns past the edges are clamped (their results are not stored).
#include "conv_common.glsl"

// TM (16, or 4 for a GEMM of few rows: depthwise) is a specialization
// constant: the driver unrolls the block once it is known.
layout(constant_id = 1) const uint TM = 16;
#define TN 8
layout(local_size_x = 64) in;

void main()
{
    uint g = gl_WorkGroupID.z;
    uint M = gemm_m(), N = gemm_n();
    uint cols = (N + TN - 1) / TN, rows = (M + TM - 1) / TM;
    uint t = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (t >= cols * rows)
        return;
    uint m0 = (t / cols) * TM, j0 = (t % cols) * TN;
    uint mr[TM];
    [[unroll]] for (uint i = 0; i < TM; i++)
        mr[i] = min(m0 + i, M - 1u);
    float acc[TM][TN];
    [[unroll]] for (uint i = 0; i < TM; i++)
        [[unroll]] for (uint j = 0; j < TN; j++)
            acc[i][j] = 0.0;
    uint kk = p.kh * p.kw;
    if (MODE == LOOM_CONV_FWD) {
        // columns: output pixels (nn, i, jj)
        uint ohw = p.oh * p.ow, xb[TN];
        int ih0[TN], iw0[TN];
        [[unroll]] for (uint j = 0; j < TN; j++) {
            uint q = min(j0 + j, N - 1u), nn = q / ohw, r = q % ohw;
            xb[j] = (nn * p.c + g * p.cg) * p.h * p.w;
            ih0[j] = int((r / p.ow) * p.sh) - int(p.pt);
            iw0[j] = int((r % p.ow) * p.sw) - int(p.pl);
        }
        for (uint c = 0; c < p.cg; c++)
            for (uint a = 0; a < p.kh; a++)
                for (uint b = 0; b < p.kw; b++) {
                    uint tap = (c * p.kh + a) * p.kw + b;
                    float wv[TM], xv[TN];
                    [[unroll]] for (uint i = 0; i < TM; i++)
                        wv[i] = LD1((g * p.ocg + mr[i]) * p.cg * kk + tap);
                    [[unroll]] for (uint j = 0; j < TN; j++) {
                        int ih = ih0[j] + int(a * p.dh), iw = iw0[j] + int(b * p.dw);
                        bool in_ = ih >= 0 && iw >= 0 && ih < int(p.h) && iw < int(p.w);
                        float v = LD0(xb[j] + (c * p.h + uint(clamp(ih, 0, int(p.h) - 1))) * p.w +
                                      uint(clamp(iw, 0, int(p.w) - 1)));
                        xv[j] = in_ ? v : 0.0;
                    }
                    [[unroll]] for (uint i = 0; i < TM; i++)
                        [[unroll]] for (uint j = 0; j < TN; j++)
                            acc[i][j] = fma(wv[i], xv[j], acc[i][j]);
                }
    } else if (MODE == LOOM_CONV_BWD_DATA) {
        // columns: input pixels (nn, hh, ww); rows: the group's input channels
        uint hw = p.h * p.w, nb[TN], hh[TN], ww[TN];
        [[unroll]] for (uint j = 0; j < TN; j++) {
            uint q = min(j0 + j, N - 1u), r = q % hw;
            nb[j] = q / hw;
            hh[j] = r / p.w;
            ww[j] = r % p.w;
        }
        for (uint o = 0; o < p.ocg; o++)
            for (uint a = 0; a < p.kh; a++)
                for (uint b = 0; b < p.kw; b++) {
                    float wv[TM], dv[TN];
                    [[unroll]] for (uint i = 0; i < TM; i++)
                        wv[i] = LD1(((g * p.ocg + o) * p.cg + mr[i]) * kk + a * p.kw + b);
                    [[unroll]] for (uint j = 0; j < TN; j++)
                        dv[j] = dy_through(nb[j], g * p.ocg + o, hh[j], ww[j], a, b);
                    [[unroll]] for (uint i = 0; i < TM; i++)
                        [[unroll]] for (uint j = 0; j < TN; j++)
                            acc[i][j] = fma(wv[i], dv[j], acc[i][j]);
                }
    } else {
        // columns: taps (c, a, b) of the weights; the long sum runs over
        // every output pixel of every sample
        uint ch[TN];
        int da[TN], db[TN];
        [[unroll]] for (uint j = 0; j < TN; j++) {
            uint q = min(j0 + j, N - 1u), r = q % kk;
            ch[j] = g * p.cg + q / kk;
            da[j] = int((r / p.kw) * p.dh) - int(p.pt);
            db[j] = int((r % p.kw) * p.dw) - int(p.pl);
        }
        // over rows (sample, output row) r0..r1: the host splits the sum
        // where the driver limits the iterations of an invocation
        for (uint r = p.r0; r < p.r1; r++) {
            uint nn = r / p.oh, i = r % p.oh;
            for (uint jj = 0; jj < p.ow; jj++) {
                float dv[TM], xv[TN];
                [[unroll]] for (uint q = 0; q < TM; q++)
                    dv[q] = LD0(((nn * p.oc + g * p.ocg + mr[q]) * p.oh + i) * p.ow + jj);
                [[unroll]] for (uint j = 0; j < TN; j++)
                    xv[j] = x_at(nn, ch[j], int(i * p.sh) + da[j], int(jj * p.sw) + db[j]);
                [[unroll]] for (uint q = 0; q < TM; q++)
                    [[unroll]] for (uint j = 0; j < TN; j++)
                        acc[q][j] = fma(dv[q], xv[j], acc[q][j]);
            }
        }
    }
    [[unroll]] for (uint i = 0; i < TM; i++)
        [[unroll]] for (uint j = 0; j < TN; j++)
            if (m0 + i < M && j0 + j < N)
                store_c(g, m0 + i, j0 + j, acc[i][j]);
}
