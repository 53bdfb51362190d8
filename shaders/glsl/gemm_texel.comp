#version 450
// SGEMM for CPU-type Vulkan drivers (lavapipe). There a storage-buffer or
// shared-memory read is a per-lane loop with a branch, while a texel fetch
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
// K runs in blocks of 4, two per loop iteration: the accumulators are
// loop-carried registers that such drivers store under the execution mask
// on every iteration, so more work per iteration is cheaper. Rows and
// columns past the edges are clamped into the matrices (their results are
// never stored); k-steps past K in the last block read 0.
#include "common.glsl"
#include "epilogue.glsl"

#define TM 16   // rows per invocation: TM / 4 groups of 4 adjacent rows
#define TN4 2   // column groups of 4 adjacent columns per invocation

// The workgroup's shape is chosen per GEMM (at most 8 x 8): a small C gets
// a small workgroup instead of invocations that compute clamped copies.
layout(local_size_x_id = 1, local_size_y_id = 2) in;
#define WX gl_WorkGroupSize.x
#define WY gl_WorkGroupSize.y

layout(set = 0, binding = 0) uniform samplerBuffer A;
layout(set = 0, binding = 1) uniform samplerBuffer B;
layout(set = 0, binding = 2, std430) writeonly buffer BufC { float c[]; };
// the row bias (has_bias), or the activation's output y (depi)
layout(set = 0, binding = 3, std430) readonly buffer BufThird { float third[]; };
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

// acc[i][j] += A[row i][k0..k0+3] . B[k0..k0+3][column group j]
void block4(uint k0, const bool tail, inout vec4 acc[TM][TN4])
{
    float a[TM][4];
    vec4 b[4][TN4];
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
    [[unroll]] for (uint kk = 0; kk < 4; kk++)
        [[unroll]] for (uint i = 0; i < TM; i++)
            [[unroll]] for (uint j = 0; j < TN4; j++)
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
    for (; k0 + 16 <= p.k; k0 += 16) {
        block4(k0, false, acc);
        block4(k0 + 4, false, acc);
        block4(k0 + 8, false, acc);
        block4(k0 + 12, false, acc);
    }
    for (; k0 + 4 <= p.k; k0 += 4)
        block4(k0, false, acc);
    if (k0 < p.k)
        block4(k0, true, acc);

    [[unroll]] for (uint i = 0; i < TM; i++) {
        uint gm = row_of(i);
        [[unroll]] for (uint j = 0; j < TN4; j++) {
            uint gn = col_of(j);
            [[unroll]] for (uint q = 0; q < 4; q++)
                if (gm < p.m && gn + q < p.n) {
                    uint o = gm * p.n + gn + q;
                    float v = acc[i][j][q];
                    if (p.has_bias != 0u)
                        v += third[gn + q];
                    if (p.epi != LOOM_EPI_NONE)
                        v = loom_epi(p.epi, v, p.p1, p.p2);
                    if (p.depi != LOOM_EPI_NONE)
                        v = loom_depi(p.depi, v, third[o], p.p1, p.p2);
                    c[o] = v;
                }
        }
    }
}
