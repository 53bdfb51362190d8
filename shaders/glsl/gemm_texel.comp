#version 450
// SGEMM for CPU-type Vulkan drivers (lavapipe): A and B are read through
// uniform texel buffers, which such drivers fetch an order of magnitude
// faster than storage buffers, and each invocation keeps a TM x TN block of
// C in registers; no shared memory (scalarized there too). Indices are
// clamped into the matrices so every fetch is in bounds; stores outside C
// are skipped.
#include "common.glsl"

#ifndef TM
#define TM 4
#endif
#ifndef TN
#define TN 4
#endif
#ifndef WX
#define WX 8
#endif
#ifndef WY
#define WY 8
#endif

layout(local_size_x = WX, local_size_y = WY) in;

layout(set = 0, binding = 0) uniform samplerBuffer A;
layout(set = 0, binding = 1) uniform samplerBuffer B;
layout(set = 0, binding = 2, std430) writeonly buffer BufC { float c[]; };
layout(set = 0, binding = 3, std430) readonly buffer BufBias { float bias[]; };
layout(push_constant) uniform Push { loom_pc_gemm p; };

void main()
{
    uint n0 = gl_WorkGroupID.x * (WX * TN) + gl_LocalInvocationID.x;
    uint m0 = gl_WorkGroupID.y * (WY * TM) + gl_LocalInvocationID.y;
    if (p.m == 0u || p.n == 0u)
        return;
    uint ra[TM], cb[TN];
    [[unroll]] for (uint i = 0; i < TM; i++)
        ra[i] = min(m0 + i * WY, p.m - 1u) * p.sam;
    [[unroll]] for (uint j = 0; j < TN; j++)
        cb[j] = min(n0 + j * WX, p.n - 1u) * p.sbn;
    float acc[TM][TN];
    [[unroll]] for (uint i = 0; i < TM; i++)
        [[unroll]] for (uint j = 0; j < TN; j++)
            acc[i][j] = 0.0;
    uint ka = 0u, kb = 0u;
    for (uint k = 0; k < p.k; k++) {
        float av[TM], bv[TN];
        [[unroll]] for (uint i = 0; i < TM; i++)
            av[i] = texelFetch(A, int(ra[i] + ka)).x;
        [[unroll]] for (uint j = 0; j < TN; j++)
            bv[j] = texelFetch(B, int(cb[j] + kb)).x;
        [[unroll]] for (uint i = 0; i < TM; i++)
            [[unroll]] for (uint j = 0; j < TN; j++)
                acc[i][j] += av[i] * bv[j];
        ka += p.sak;
        kb += p.sbk;
    }
    [[unroll]] for (uint i = 0; i < TM; i++) {
        uint gm = m0 + i * WY;
        [[unroll]] for (uint j = 0; j < TN; j++) {
            uint gn = n0 + j * WX;
            if (gm < p.m && gn < p.n)
                c[gm * p.n + gn] = acc[i][j] + (p.has_bias != 0u ? bias[gn] : 0.0);
        }
    }
}
