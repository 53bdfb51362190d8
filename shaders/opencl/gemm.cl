/*
 * loom's own GEMM, with the epilogues of a fused dense layer: C = op(A)
 * op(B) (+ a row bias) (then an activation), or C = (op(A) op(B)) * f'(y)
 * (the gradient into an activation, y its output). Arguments as the Vulkan
 * GEMM's push constants (loom_pc_gemm, shaders/push.h): element (i, k) of
 * op(A) at i * sam + k * sak, (k, j) of op(B) at k * sbk + j * sbn, any
 * transposes; C dense [m, n]; the third operand is the bias [n] or y
 * [m, n].
 *
 * Shaped for CPU drivers first (PoCL), where a work group is a loop over
 * its items in one thread and local memory is cache: a group computes a
 * BM x BN tile of C; for each block of GEMM_KB values of k it stages the
 * block of op(B) in local memory as rows of BN floats (zeros outside the
 * matrix, transposed if B is), whatever B's layout and dtype; each item
 * then computes GEMM_TM rows x GEMM_NV vectors of GEMM_VW columns by
 * broadcasting one value of A against each vector of B (fma, f32
 * accumulation), the outer-product form that CPUs vectorize. Every size
 * (edges of any tile), every dtype (f16 and bf16 are loaded and stored
 * through LD / ST of common.cl; PoCL has no cl_khr_fp16).
 *
 * Build options (cl_gemm_own.c): GEMM_WX, GEMM_WY (the work group),
 * GEMM_TM, GEMM_NV, GEMM_VW, GEMM_KB; the dtype (LOOM_F16 / LOOM_BF16).
 */

#ifndef GEMM_WX
#define GEMM_WX 1
#endif
#ifndef GEMM_WY
#define GEMM_WY 8
#endif
#ifndef GEMM_TM
#define GEMM_TM 8
#endif
#ifndef GEMM_NV
#define GEMM_NV 2
#endif
#ifndef GEMM_KB
#define GEMM_KB 128
#endif

#define GEMM_TN (GEMM_NV * GEMM_VW)
#define GEMM_BM (GEMM_WY * GEMM_TM)
#define GEMM_BN (GEMM_WX * GEMM_TN)
#define GEMM_WG (GEMM_WX * GEMM_WY)
#define GVLOAD GEMM_CAT(vload, GEMM_VW)
#define GVSTORE GEMM_CAT(vstore, GEMM_VW)

#if !defined(LOOM_F16) && !defined(LOOM_BF16)
#define GEMM_F32 1
#endif

/* The activation of a LOOM_EPI_* code, and dy f'(y) for those whose
 * derivative reads their output (as shaders/glsl/epilogue.glsl). */
inline GV loom_epi(uint code, GV v, float p, float q)
{
    switch (code) {
    case LOOM_EPI_RELU: return epiv_relu(v, p, q);
    case LOOM_EPI_GELU: return epiv_gelu(v, p, q);
    case LOOM_EPI_TANH: return epiv_tanh(v, p, q);
    case LOOM_EPI_SIGMOID: return epiv_sigmoid(v, p, q);
    case LOOM_EPI_SILU: return epiv_silu(v, p, q);
    default: return v;
    }
}

inline GV loom_depi(uint code, GV dy, GV y, float p, float q)
{
    switch (code) {
    case LOOM_EPI_RELU: return depiv_relu(dy, y, p, q);
    case LOOM_EPI_TANH: return depiv_tanh(dy, y, p, q);
    case LOOM_EPI_SIGMOID: return depiv_sigmoid(dy, y, p, q);
    default: return dy;
    }
}

/* GEMM_VW values from p[i]: the first cnt of them, zeros after. */
inline GV gemm_ld(__global const TS *p, uint i, uint cnt)
{
#ifdef GEMM_F32
    if (cnt >= GEMM_VW)
        return GVLOAD(0, p + i);
#endif
    float t[GEMM_VW];
    for (uint e = 0; e < GEMM_VW; e++)
        t[e] = e < cnt ? LD(p, i + e) : 0.0f;
    return GVLOAD(0, t);
}

/* The first cnt values of v to p[i..]. */
inline void gemm_st(__global TS *p, uint i, uint cnt, GV v)
{
#ifdef GEMM_F32
    if (cnt >= GEMM_VW) {
        GVSTORE(v, 0, p + i);
        return;
    }
#endif
    float t[GEMM_VW];
    GVSTORE(v, 0, t);
    uint end = cnt < GEMM_VW ? cnt : GEMM_VW;
    for (uint e = 0; e < end; e++)
        ST(p, i + e, t[e]);
}

__kernel __attribute__((reqd_work_group_size(GEMM_WX, GEMM_WY, 1)))
void gemm(__global TS *c, uint co, __global const TS *a, uint ao, __global const TS *b, uint bo,
          __global const TS *t3, uint to, loom_pc_gemm g)
{
    __local float bs[GEMM_KB * GEMM_BN];
    uint tx = (uint)get_local_id(0), ty = (uint)get_local_id(1), lid = ty * GEMM_WX + tx;
    uint n0 = (uint)get_group_id(0) * GEMM_BN, m0 = (uint)get_group_id(1) * GEMM_BM;
    uint r0 = m0 + ty * GEMM_TM, c0 = tx * GEMM_TN;
    /* rows past the end read the last row; their results are dropped */
    __global const TS *arow[GEMM_TM];
#pragma unroll
    for (uint i = 0; i < GEMM_TM; i++)
        arow[i] = a + ao + min(r0 + i, g.m - 1u) * g.sam;
    GV acc[GEMM_TM][GEMM_NV];
    for (uint i = 0; i < GEMM_TM; i++)
        for (uint v = 0; v < GEMM_NV; v++)
            acc[i][v] = (GV)(0.0f);
    int full_n = n0 + GEMM_BN <= g.n;
    for (uint k0 = 0; k0 < g.k; k0 += GEMM_KB) {
        uint kn = min((uint)GEMM_KB, g.k - k0);
        if (g.sbn == 1u) {
            /* B's rows are contiguous: whole rows of the block per item */
            for (uint kk = lid; kk < kn; kk += GEMM_WG) {
                uint src = bo + (k0 + kk) * g.sbk + n0;
                __local float *dst = bs + kk * GEMM_BN;
                if (full_n)
                    for (uint j = 0; j < GEMM_BN; j++)
                        dst[j] = LD(b, src + j);
                else
                    for (uint j = 0; j < GEMM_BN; j++)
                        dst[j] = n0 + j < g.n ? LD(b, src + j) : 0.0f;
            }
        } else {
            /* B transposed: its columns are contiguous along k */
            for (uint j = lid; j < GEMM_BN; j += GEMM_WG) {
                if (n0 + j < g.n) {
                    uint src = bo + (n0 + j) * g.sbn + k0 * g.sbk;
                    for (uint kk = 0; kk < kn; kk++)
                        bs[kk * GEMM_BN + j] = LD(b, src + kk * g.sbk);
                } else {
                    for (uint kk = 0; kk < kn; kk++)
                        bs[kk * GEMM_BN + j] = 0.0f;
                }
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        /* the accumulators in registers for the block (PoCL keeps what
         * lives across a barrier in memory) */
        GV r[GEMM_TM][GEMM_NV];
#pragma unroll
        for (uint i = 0; i < GEMM_TM; i++)
#pragma unroll
            for (uint v = 0; v < GEMM_NV; v++)
                r[i][v] = acc[i][v];
        for (uint kk = 0; kk < kn; kk++) {
            GV bv[GEMM_NV];
#pragma unroll
            for (uint v = 0; v < GEMM_NV; v++)
                bv[v] = GVLOAD(0, bs + kk * GEMM_BN + c0 + v * GEMM_VW);
            uint ka = (k0 + kk) * g.sak;
#pragma unroll
            for (uint i = 0; i < GEMM_TM; i++) {
                GV av = (GV)(LD(arow[i], ka));
#pragma unroll
                for (uint v = 0; v < GEMM_NV; v++)
                    r[i][v] = fma(av, bv[v], r[i][v]);
            }
        }
#pragma unroll
        for (uint i = 0; i < GEMM_TM; i++)
#pragma unroll
            for (uint v = 0; v < GEMM_NV; v++)
                acc[i][v] = r[i][v];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (uint i = 0; i < GEMM_TM; i++) {
        uint row = r0 + i;
        if (row >= g.m)
            break;
        for (uint v = 0; v < GEMM_NV; v++) {
            uint col = n0 + c0 + v * GEMM_VW;
            if (col >= g.n)
                break;
            uint cnt = g.n - col;
            GV x = acc[i][v];
            if (g.has_bias)
                x += gemm_ld(t3, to + col, cnt);
            if (g.epi != LOOM_EPI_NONE)
                x = loom_epi(g.epi, x, g.p1, g.p2);
            if (g.depi != LOOM_EPI_NONE)
                x = loom_depi(g.depi, x, gemm_ld(t3, to + row * g.n + col, cnt), g.p1, g.p2);
            gemm_st(c, co + row * g.n + col, cnt, x);
        }
    }
}
