#version 450
// GEMM for GPUs: BM x BN tiles of C per workgroup, A and B staged through
// shared memory BK deep, a TM x TN register block per invocation. Any
// transposes (through the strides), any sizes (loads outside the matrices
// read zero, stores outside are skipped). One variant per dtype: the
// operands are stored in it, the products accumulate in f32 (with
// LOOM_F16_ARITH, on devices with shaderFloat16, the tiles are held and
// multiplied in f16, the sums still in f32).
#include "common.glsl"
#include "dtype.glsl"
#include "epilogue.glsl"
#if defined(LOOM_F16_ARITH)
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#define TILE float16_t
#define TILE_OF(v) (v)
#define MULT(x, y) float((x) * (y))
#else
#define TILE float
#define TILE_OF(v) TLOAD(v)
#define MULT(x, y) ((x) * (y))
#endif

#define BM 64
#define BN 64
#define BK 16
#define TM 4
#define TN 4
#define WX (BN / TN)
#define WY (BM / TM)

layout(local_size_x = WX, local_size_y = WY) in;

layout(set = 0, binding = 0, std430) readonly buffer BufA { TS a[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufB { TS b[]; };
layout(set = 0, binding = 2, std430) writeonly buffer BufC { TS c[]; };
// the row bias (has_bias), or the activation's output y (depi)
layout(set = 0, binding = 3, std430) readonly buffer BufThird { TS third[]; };
layout(push_constant) uniform Push { loom_pc_gemm p; };

shared TILE As[BK][BM];
shared TILE Bs[BK][BN];

void main()
{
    uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y;
    uint t = gl_LocalInvocationIndex;
    uint m0 = gl_WorkGroupID.y * BM, n0 = gl_WorkGroupID.x * BN;
    float acc[TM][TN];
    [[unroll]] for (uint i = 0; i < TM; i++)
        [[unroll]] for (uint j = 0; j < TN; j++)
            acc[i][j] = 0.0;
    for (uint k0 = 0; k0 < p.k; k0 += BK) {
        [[unroll]] for (uint r = 0; r < BM * BK / (WX * WY); r++) {
            uint e = t + r * WX * WY;
            uint row = e / BK, kk = e % BK;
            uint gm = m0 + row, gk = k0 + kk;
            As[kk][row] = (gm < p.m && gk < p.k) ? TILE_OF(a[gm * p.sam + gk * p.sak]) : TILE(0.0);
        }
        [[unroll]] for (uint r = 0; r < BN * BK / (WX * WY); r++) {
            uint e = t + r * WX * WY;
            uint kk = e / BN, col = e % BN;
            uint gn = n0 + col, gk = k0 + kk;
            Bs[kk][col] = (gn < p.n && gk < p.k) ? TILE_OF(b[gk * p.sbk + gn * p.sbn]) : TILE(0.0);
        }
        barrier();
        [[unroll]] for (uint kk = 0; kk < BK; kk++) {
            TILE av[TM], bv[TN];
            [[unroll]] for (uint i = 0; i < TM; i++)
                av[i] = As[kk][ty + i * WY];
            [[unroll]] for (uint j = 0; j < TN; j++)
                bv[j] = Bs[kk][tx + j * WX];
            [[unroll]] for (uint i = 0; i < TM; i++)
                [[unroll]] for (uint j = 0; j < TN; j++)
                    acc[i][j] += MULT(av[i], bv[j]);
        }
        barrier();
    }
    [[unroll]] for (uint i = 0; i < TM; i++) {
        uint gm = m0 + ty + i * WY;
        [[unroll]] for (uint j = 0; j < TN; j++) {
            uint gn = n0 + tx + j * WX;
            if (gm < p.m && gn < p.n) {
                float v = acc[i][j];
                if (p.has_bias != 0u)
                    v += TLOAD(third[gn]);
                if (p.epi != LOOM_EPI_NONE)
                    v = loom_epi(p.epi, v, p.p1, p.p2);
                if (p.depi != LOOM_EPI_NONE)
                    v = loom_depi(p.depi, v, TLOAD(third[gm * p.n + gn]), p.p1, p.p2);
                c[gm * p.n + gn] = TSTORE(v);
            }
        }
    }
}
