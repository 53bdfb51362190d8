#version 450
// Convolution as an implicit GEMM tiled through shared memory (for GPUs):
// a workgroup of 16 x 16 computes a 64 x 64 block of C (4 x 4 each, rows
// and columns 16 apart), staging 16-deep slices of A (the weights, or dy)
// and B (the input's windows, gathered from the tensor as they are needed)
// in shared memory. ONE_BY_ONE: a 1x1 convolution with stride 1 and no
// padding, whose B is the input's rows: a plain batched GEMM.
#include "conv_common.glsl"

#define BM 64
#define BN 64
#define BK 16
layout(local_size_x = 16, local_size_y = 16) in;
layout(constant_id = 1) const uint ONE_BY_ONE = 0;

shared float As[BK][BM];
shared float Bs[BK][BN + 1];

float load_a(uint g, uint m, uint k)
{
    if (MODE == LOOM_CONV_FWD)
        return LD1((g * p.ocg + m) * gemm_k() + k);
    if (MODE == LOOM_CONV_BWD_DATA) {
        uint kk = p.kh * p.kw, o = k / kk;
        return LD1(((g * p.ocg + o) * p.cg + m) * kk + k % kk);
    }
    uint ohw = p.oh * p.ow, nn = k / ohw;
    return LD0((nn * p.oc + g * p.ocg + m) * ohw + k % ohw);
}

float load_b(uint g, uint k, uint j)
{
    if (MODE == LOOM_CONV_FWD) {
        uint ohw = p.oh * p.ow, nn = j / ohw, r = j % ohw;
        if (ONE_BY_ONE != 0u)
            return LD0((nn * p.c + g * p.cg + k) * ohw + r);
        uint kk = p.kh * p.kw, c = k / kk, t = k % kk, a = t / p.kw, b = t % p.kw;
        uint i = r / p.ow, jj = r % p.ow;
        return x_at(nn, g * p.cg + c, int(i * p.sh + a * p.dh) - int(p.pt), int(jj * p.sw + b * p.dw) - int(p.pl));
    }
    if (MODE == LOOM_CONV_BWD_DATA) {
        uint kk = p.kh * p.kw, o = k / kk, t = k % kk, a = t / p.kw, b = t % p.kw;
        uint hw = p.h * p.w, nn = j / hw, r = j % hw;
        return dy_through(nn, g * p.ocg + o, r / p.w, r % p.w, a, b);
    }
    uint kk = p.kh * p.kw, c = j / kk, t = j % kk, a = t / p.kw, b = t % p.kw;
    uint ohw = p.oh * p.ow, nn = k / ohw, r = k % ohw, i = r / p.ow, jj = r % p.ow;
    return x_at(nn, g * p.cg + c, int(i * p.sh + a * p.dh) - int(p.pt), int(jj * p.sw + b * p.dw) - int(p.pl));
}

void main()
{
    uint g = gl_WorkGroupID.z;
    uint M = gemm_m(), N = gemm_n(), K = gemm_k();
    uint m0 = gl_WorkGroupID.y * BM, n0 = gl_WorkGroupID.x * BN;
    uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y, tid = ty * 16u + tx;
    float acc[4][4];
    [[unroll]] for (uint i = 0; i < 4; i++)
        [[unroll]] for (uint j = 0; j < 4; j++)
            acc[i][j] = 0.0;
    for (uint k0 = 0; k0 < K; k0 += BK) {
        [[unroll]] for (uint r = 0; r < 4; r++) {
            uint e = tid + 256u * r;
            uint kk = e % BK, mm = e / BK;
            As[kk][mm] = m0 + mm < M && k0 + kk < K ? load_a(g, m0 + mm, k0 + kk) : 0.0;
            uint jj = e % BN, kb = e / BN;
            Bs[kb][jj] = k0 + kb < K && n0 + jj < N ? load_b(g, k0 + kb, n0 + jj) : 0.0;
        }
        barrier();
        [[unroll]] for (uint kk = 0; kk < BK; kk++) {
            float a[4], b[4];
            [[unroll]] for (uint i = 0; i < 4; i++)
                a[i] = As[kk][ty + 16u * i];
            [[unroll]] for (uint j = 0; j < 4; j++)
                b[j] = Bs[kk][tx + 16u * j];
            [[unroll]] for (uint i = 0; i < 4; i++)
                [[unroll]] for (uint j = 0; j < 4; j++)
                    acc[i][j] = fma(a[i], b[j], acc[i][j]);
        }
        barrier();
    }
    [[unroll]] for (uint i = 0; i < 4; i++)
        [[unroll]] for (uint j = 0; j < 4; j++) {
            uint m = m0 + ty + 16u * i, n = n0 + tx + 16u * j;
            if (m < M && n < N)
                store_c(g, m, n, acc[i][j]);
        }
}
