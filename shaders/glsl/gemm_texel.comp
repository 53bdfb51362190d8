#version 450
// SGEMM for CPU-type Vulkan drivers (lavapipe). There a storage-buffer or
// shared-memory access is a per-lane loop with a branch, while a texel fetch
// is a vectorized gather, and a vec4 texel costs about what a scalar does:
// so A and B are read through uniform texel buffers, as vec4 along a
// contiguous dim wherever the sizes allow, and each invocation keeps a
// TM x (4 TN4) block of C in registers. No shared memory, no subgroup ops
// (a broadcast is a loop there too).
//
// Read paths (one variant each): A_KVEC, A contiguous along k (no
// transpose, K % 4 == 0), 4 k-steps of one row per fetch; A_MVEC, A
// contiguous along m (transposed, M % 4 == 0), 4 rows at one k-step per
// fetch; neither: scalar fetches at any strides. B_NVEC (no transpose,
// N % 4 == 0): 4 columns at one k-step; B_KVEC (transposed, K % 4 == 0): 4
// k-steps of one column; neither: scalars.
//
// Stores: with C_VEC (N % 4 == 0) C is an rgba32f storage texel buffer and
// each 4 adjacent columns are one texel store, a quarter of the per-lane
// store loops of scalar stores, which are what a GEMM with a short K spends
// most of its time on. The epilogue (row bias, activation, activation
// gradient) is a specialization constant, not a push constant: the driver
// evaluates both sides of every branch under a mask, so a switch over
// activations read at run time costs every activation's arithmetic per
// element; fixed per pipeline, the unused ones are compiled out. The bias
// or y (binding 3) is read through a texel buffer too (vec4 with C_VEC).
//
// K runs in blocks of 4 k-steps: each block's operands are fetched first,
// then each accumulator takes its 4 products in a row, so that the driver's
// code keeps one accumulator at a time in registers instead of reloading
// all of them per k-step (measured on lavapipe: a third less time than
// k-outermost, and than 4 blocks per loop iteration). Rows and columns past
// the edges are clamped into the matrices (their results are never
// stored); k-steps past K in the last block read 0.
#include "common.glsl"
#include "epilogue.glsl"

#define TM 16   // rows per invocation: TM / 4 groups of 4 adjacent rows
#define TN4 2   // column groups of 4 adjacent columns per invocation

// The workgroup's shape is chosen per GEMM (at most 8 x 8): a small C gets
// a small workgroup instead of invocations that compute clamped copies.
layout(local_size_x_id = 1, local_size_y_id = 2) in;
#define WX gl_WorkGroupSize.x
#define WY gl_WorkGroupSize.y

// bit 0: add the row bias; bits 1-4: the LOOM_EPI_* activation; bits 5-8:
// the LOOM_EPI_* activation whose gradient C is multiplied by
layout(constant_id = 0) const uint EPI = 0;
const bool HAS_BIAS = (EPI & 1u) != 0u;
const uint ACT = (EPI >> 1) & 15u;
const uint DACT = (EPI >> 5) & 15u;

layout(set = 0, binding = 0) uniform samplerBuffer A;
layout(set = 0, binding = 1) uniform samplerBuffer B;
#if defined(C_VEC)
layout(set = 0, binding = 2, rgba32f) uniform writeonly imageBuffer C;
#else
layout(set = 0, binding = 2, std430) writeonly buffer BufC { float c[]; };
#endif
// the row bias (HAS_BIAS), or the activation's output y (DACT)
layout(set = 0, binding = 3) uniform samplerBuffer Third;
layout(push_constant) uniform Push { loom_pc_gemm p; };

// Fetch bases, fixed for the whole K loop: per row (A) and per column (B)
// for scalar and k-contiguous reads, per group of 4 for the others.
#if defined(A_MVEC)
int a_base[TM / 4];
#else
int a_base[TM];
#endif
#if defined(B_NVEC)
int b_base[TN4];
#else
int b_base[4 * TN4];
#endif

// a, b = A[rows][k0..k0+3], B[k0..k0+3][column groups]
void fetch4(uint k0, const bool tail, out float a[TM][4], out vec4 b[4][TN4])
{
#if defined(A_KVEC)
    [[unroll]] for (uint i = 0; i < TM; i++) {
        vec4 v = texelFetch(A, a_base[i] + int(k0 / 4u));
        [[unroll]] for (uint e = 0; e < 4; e++)
            a[i][e] = v[e];
    }
#elif defined(A_MVEC)
    [[unroll]] for (uint kk = 0; kk < 4; kk++) {
        uint k = tail ? min(k0 + kk, p.k - 1u) : k0 + kk;
        [[unroll]] for (uint g = 0; g < TM / 4; g++) {
            vec4 v = texelFetch(A, int(k * (p.sak / 4u)) + a_base[g]);
            [[unroll]] for (uint q = 0; q < 4; q++)
                a[4 * g + q][kk] = v[q];
        }
    }
#else
    [[unroll]] for (uint kk = 0; kk < 4; kk++) {
        uint k = tail ? min(k0 + kk, p.k - 1u) : k0 + kk;
        [[unroll]] for (uint i = 0; i < TM; i++)
            a[i][kk] = texelFetch(A, a_base[i] + int(k * p.sak)).x;
    }
#endif
#if defined(B_NVEC)
    [[unroll]] for (uint kk = 0; kk < 4; kk++) {
        uint k = tail ? min(k0 + kk, p.k - 1u) : k0 + kk;
        [[unroll]] for (uint j = 0; j < TN4; j++)
            b[kk][j] = texelFetch(B, int(k * (p.sbk / 4u)) + b_base[j]);
    }
#elif defined(B_KVEC)
    [[unroll]] for (uint j = 0; j < TN4; j++)
        [[unroll]] for (uint q = 0; q < 4; q++) {
            vec4 v = texelFetch(B, b_base[4 * j + q] + int(k0 / 4u));
            [[unroll]] for (uint kk = 0; kk < 4; kk++)
                b[kk][j][q] = v[kk];
        }
#else
    [[unroll]] for (uint kk = 0; kk < 4; kk++) {
        uint k = tail ? min(k0 + kk, p.k - 1u) : k0 + kk;
        [[unroll]] for (uint j = 0; j < TN4; j++)
            [[unroll]] for (uint q = 0; q < 4; q++)
                b[kk][j][q] = texelFetch(B, b_base[4 * j + q] + int(k * p.sbk)).x;
    }
#endif
    if (tail) {
        // Only paths without a k-vec4 get here with K % 4 != 0.
        [[unroll]] for (uint kk = 0; kk < 4; kk++)
            if (k0 + kk >= p.k) {
                [[unroll]] for (uint i = 0; i < TM; i++)
                    a[i][kk] = 0.0;
                [[unroll]] for (uint j = 0; j < TN4; j++)
                    b[kk][j] = vec4(0.0);
            }
    }
}

// acc[i][j] += A[row i][k0..k0+3] . B[k0..k0+3][column group j]
void block4(uint k0, const bool tail, inout vec4 acc[TM][TN4])
{
    float a[TM][4];
    vec4 b[4][TN4];
    fetch4(k0, tail, a, b);
    [[unroll]] for (uint i = 0; i < TM; i++)
        [[unroll]] for (uint j = 0; j < TN4; j++)
            [[unroll]] for (uint kk = 0; kk < 4; kk++)
                acc[i][j] = fma(vec4(a[i][kk]), b[kk][j], acc[i][j]);
}

// Row i of this invocation's block, column group j.
uint row_of(uint i)
{
    return (gl_WorkGroupID.y * (WY * TM / 4) + (i / 4) * WY + gl_LocalInvocationID.y) * 4 + i % 4;
}

uint col_of(uint j)
{
    return (gl_WorkGroupID.x * (WX * TN4) + j * WX + gl_LocalInvocationID.x) * 4;
}

vec4 epilogue(vec4 v, uint gm, uint gn)
{
#if defined(C_VEC)
    if (HAS_BIAS)
        v += texelFetch(Third, int(gn / 4u));
    if (ACT != LOOM_EPI_NONE)
        [[unroll]] for (uint q = 0; q < 4; q++)
            v[q] = loom_epi(ACT, v[q], p.p1, p.p2);
    if (DACT != LOOM_EPI_NONE) {
        vec4 y = texelFetch(Third, int((gm * p.n + gn) / 4u));
        [[unroll]] for (uint q = 0; q < 4; q++)
            v[q] = loom_depi(DACT, v[q], y[q], p.p1, p.p2);
    }
#else
    [[unroll]] for (uint q = 0; q < 4; q++) {
        uint c = min(gn + q, p.n - 1u);
        if (HAS_BIAS)
            v[q] += texelFetch(Third, int(c)).x;
        if (ACT != LOOM_EPI_NONE)
            v[q] = loom_epi(ACT, v[q], p.p1, p.p2);
        if (DACT != LOOM_EPI_NONE)
            v[q] = loom_depi(DACT, v[q], texelFetch(Third, int(gm * p.n + c)).x, p.p1, p.p2);
    }
#endif
    return v;
}

void main()
{
    if (p.m == 0u || p.n == 0u)
        return;
#if defined(A_KVEC)
    [[unroll]] for (uint i = 0; i < TM; i++)
        a_base[i] = int(min(row_of(i), p.m - 1u) * (p.sam / 4u));
#elif defined(A_MVEC)
    [[unroll]] for (uint g = 0; g < TM / 4; g++)
        a_base[g] = int(min(row_of(4 * g), p.m - 4u) / 4u);
#else
    [[unroll]] for (uint i = 0; i < TM; i++)
        a_base[i] = int(min(row_of(i), p.m - 1u) * p.sam);
#endif
#if defined(B_NVEC)
    [[unroll]] for (uint j = 0; j < TN4; j++)
        b_base[j] = int(min(col_of(j), p.n - 4u) / 4u);
#elif defined(B_KVEC)
    [[unroll]] for (uint j = 0; j < 4 * TN4; j++)
        b_base[j] = int(min(col_of(j / 4) + j % 4, p.n - 1u) * (p.sbn / 4u));
#else
    [[unroll]] for (uint j = 0; j < 4 * TN4; j++)
        b_base[j] = int(min(col_of(j / 4) + j % 4, p.n - 1u) * p.sbn);
#endif
    vec4 acc[TM][TN4];
    [[unroll]] for (uint i = 0; i < TM; i++)
        [[unroll]] for (uint j = 0; j < TN4; j++)
            acc[i][j] = vec4(0.0);
    uint k0 = 0;
    for (; k0 + 4 <= p.k; k0 += 4)
        block4(k0, false, acc);
    if (k0 < p.k)
        block4(k0, true, acc);

    [[unroll]] for (uint i = 0; i < TM; i++) {
        uint gm = row_of(i);
        [[unroll]] for (uint j = 0; j < TN4; j++) {
            uint gn = col_of(j);
#if defined(C_VEC)
            if (gm < p.m && gn < p.n)
                imageStore(C, int((gm * p.n + gn) / 4u), epilogue(acc[i][j], gm, gn));
#else
            vec4 v = epilogue(acc[i][j], min(gm, p.m - 1u), gn);
            [[unroll]] for (uint q = 0; q < 4; q++)
                if (gm < p.m && gn + q < p.n)
                    c[gm * p.n + gn + q] = v[q];
#endif
        }
    }
}
