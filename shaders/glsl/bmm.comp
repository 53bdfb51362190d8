#version 450
// Batched GEMM: one batch per z of the grid, a 64 x 64 tile of C per
// workgroup, a 4 x 4 block per invocation read straight from the storage
// buffers (no shared memory, no barriers: the same on CPU drivers, where a
// barrier is dear, and on GPUs, whose caches serve the reuse). Any
// transposes through the strides; the operands stored in the variant's
// dtype, the sums in f32.
#include "common.glsl"
#include "dtype.glsl"

#define TM 4
#define TN 4
#define WX 16
#define WY 16

layout(local_size_x = WX, local_size_y = WY) in;

layout(set = 0, binding = 0, std430) readonly buffer BufA { TS a[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufB { TS b[]; };
layout(set = 0, binding = 2, std430) writeonly buffer BufC { TS c[]; };
layout(push_constant) uniform Push { loom_pc_bmm p; };

void main()
{
    if (p.m == 0u || p.n == 0u || p.nb1 == 0u)
        return; // a warm-up dispatch (zero push constants)
    uint z = gl_WorkGroupID.z;
    uint i0 = z / p.nb1, i1 = z % p.nb1;
    uint abase = i0 * p.sa0 + i1 * p.sa1, bbase = i0 * p.sb0 + i1 * p.sb1, cbase = z * p.m * p.n;
    uint m0 = gl_WorkGroupID.y * (WY * TM) + gl_LocalInvocationID.y;
    uint n0 = gl_WorkGroupID.x * (WX * TN) + gl_LocalInvocationID.x;
    float acc[TM][TN];
    uint rows[TM], cols[TN];
    [[unroll]] for (uint i = 0; i < TM; i++) {
        // rows and columns past the edges are clamped in (never stored)
        rows[i] = min(m0 + i * WY, p.m - 1);
        [[unroll]] for (uint j = 0; j < TN; j++)
            acc[i][j] = 0.0;
    }
    [[unroll]] for (uint j = 0; j < TN; j++)
        cols[j] = min(n0 + j * WX, p.n - 1);
    for (uint kk = 0; kk < p.k; kk++) {
        float av[TM], bv[TN];
        [[unroll]] for (uint i = 0; i < TM; i++)
            av[i] = TLOAD(a[abase + rows[i] * p.sam + kk * p.sak]);
        [[unroll]] for (uint j = 0; j < TN; j++)
            bv[j] = TLOAD(b[bbase + kk * p.sbk + cols[j] * p.sbn]);
        [[unroll]] for (uint i = 0; i < TM; i++)
            [[unroll]] for (uint j = 0; j < TN; j++)
                acc[i][j] += av[i] * bv[j];
    }
    [[unroll]] for (uint i = 0; i < TM; i++) {
        uint gm = m0 + i * WY;
        [[unroll]] for (uint j = 0; j < TN; j++) {
            uint gn = n0 + j * WX;
            if (gm < p.m && gn < p.n)
                c[cbase + gm * p.n + gn] = TSTORE(acc[i][j]);
        }
    }
}
