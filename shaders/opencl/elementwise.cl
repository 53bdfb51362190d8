/*
 * Element-wise kernels: the unary and binary ops (made from the body lines
 * of ew_unary.cl and ew_binary.cl, which the build appends after this
 * file), where, broadcasts / transposes / copies (gather), dropout.
 *
 * PoCL vectorizes poorly across work items, so each item handles 8
 * consecutive values with float8 and the last item finishes the tail one
 * value at a time. y may alias an input (the planner writes in place over
 * a dying input): each item reads its values before it writes them, so no
 * restrict. Semantics follow src/backends/cpu/.
 */

#define LOOM_SQRT1_2 0.70710678118654752f
#define LOOM_INV_SQRT_2PI 0.39894228040143268f

/* T is float in the scalar tail and float8 in the vector body: one
 * expression serves both. */
#define LOOM_UNARY(name, F, D)                                                                               \
    __kernel __attribute__((reqd_work_group_size(LOOM_EW_WG, 1, 1))) void unary_##name(                      \
        __global TS *y, uint yo, __global const TS *a, uint ao, uint n, float p, float q)                    \
    {                                                                                                        \
        uint i = (uint)get_global_id(0) * 8u;                                                                \
        if (i + 8u <= n) {                                                                                   \
            typedef float8 T;                                                                                \
            T x = LD8(a, ao + i);                                                                            \
            ST8(y, yo + i, (F));                                                                             \
            return;                                                                                          \
        }                                                                                                    \
        typedef float T;                                                                                     \
        for (; i < n; i++) {                                                                                 \
            T x = LD(a, ao + i);                                                                             \
            ST(y, yo + i, (F));                                                                              \
        }                                                                                                    \
    }                                                                                                        \
    __kernel __attribute__((reqd_work_group_size(LOOM_EW_WG, 1, 1))) void unary_grad_##name(                 \
        __global TS *y, uint yo, __global const TS *g, uint go, __global const TS *w, uint wo, uint n, float p, \
        float q)                                                                                             \
    {                                                                                                        \
        uint i = (uint)get_global_id(0) * 8u;                                                                \
        if (i + 8u <= n) {                                                                                   \
            typedef float8 T;                                                                                \
            T dy = LD8(g, go + i), v = LD8(w, wo + i);                                                       \
            ST8(y, yo + i, (D));                                                                             \
            return;                                                                                          \
        }                                                                                                    \
        typedef float T;                                                                                     \
        for (; i < n; i++) {                                                                                 \
            T dy = LD(g, go + i), v = LD(w, wo + i);                                                         \
            ST(y, yo + i, (D));                                                                              \
        }                                                                                                    \
    }

/* Three shapes of each binary op: same-shaped operands; b one row of c
 * values repeated over every row of a (a bias: two dimensions, (column
 * chunk of 8, row), so that neighbouring items read neighbouring memory);
 * general numpy broadcasting in 4-D, out dims d, operand strides sa and sb
 * (0 along broadcast dims), laid out (chunk of 8 along d.w, row): along the
 * last axis an operand is either contiguous (stride 1) or one repeated
 * value (stride 0), so both load 8 values at once. */
#define LOOM_BINARY(name, F)                                                                                 \
    __kernel __attribute__((reqd_work_group_size(LOOM_EW_WG, 1, 1))) void binary_##name(                     \
        __global TS *y, uint yo, __global const TS *pa, uint ao, __global const TS *pb, uint bo, uint n)     \
    {                                                                                                        \
        uint i = (uint)get_global_id(0) * 8u;                                                                \
        if (i + 8u <= n) {                                                                                   \
            typedef float8 T;                                                                                \
            T a = LD8(pa, ao + i), b = LD8(pb, bo + i);                                                      \
            ST8(y, yo + i, (F));                                                                             \
            return;                                                                                          \
        }                                                                                                    \
        typedef float T;                                                                                     \
        for (; i < n; i++) {                                                                                 \
            T a = LD(pa, ao + i), b = LD(pb, bo + i);                                                        \
            ST(y, yo + i, (F));                                                                              \
        }                                                                                                    \
    }                                                                                                        \
    __kernel void binary_row_##name(__global TS *y, uint yo, __global const TS *pa, uint ao,                 \
                                    __global const TS *pb, uint bo, uint rows, uint c)                       \
    {                                                                                                        \
        uint j = (uint)get_global_id(0) * 8u, r = (uint)get_global_id(1);                                    \
        if (j >= c || r >= rows)                                                                             \
            return;                                                                                          \
        uint i = r * c + j;                                                                                  \
        if (j + 8u <= c) {                                                                                   \
            typedef float8 T;                                                                                \
            T a = LD8(pa, ao + i), b = LD8(pb, bo + j);                                                      \
            ST8(y, yo + i, (F));                                                                             \
            return;                                                                                          \
        }                                                                                                    \
        typedef float T;                                                                                     \
        for (; j < c; j++, i++) {                                                                            \
            T a = LD(pa, ao + i), b = LD(pb, bo + j);                                                        \
            ST(y, yo + i, (F));                                                                              \
        }                                                                                                    \
    }                                                                                                        \
    __kernel void binary_bcast_##name(__global TS *y, uint yo, __global const TS *pa, uint ao,               \
                                      __global const TS *pb, uint bo, uint rows, uint4 d, uint4 sa, uint4 sb) \
    {                                                                                                        \
        uint j = (uint)get_global_id(0) * 8u, r = (uint)get_global_id(1);                                    \
        if (j >= d.w || r >= rows)                                                                           \
            return;                                                                                          \
        uint ra = ao + loom_row_base(r, d, sa), rb = bo + loom_row_base(r, d, sb), i = yo + r * d.w + j;     \
        if (j + 8u <= d.w) {                                                                                 \
            typedef float8 T;                                                                                \
            T a = sa.w ? LD8(pa, ra + j) : (T)(LD(pa, ra));                                                  \
            T b = sb.w ? LD8(pb, rb + j) : (T)(LD(pb, rb));                                                  \
            ST8(y, i, (F));                                                                                  \
            return;                                                                                          \
        }                                                                                                    \
        typedef float T;                                                                                     \
        for (; j < d.w; j++, i++) {                                                                          \
            T a = LD(pa, ra + j * sa.w), b = LD(pb, rb + j * sb.w);                                          \
            ST(y, i, (F));                                                                                   \
        }                                                                                                    \
    }

/* dy * d f / d a (side 0) or d b (side 1) at the output's shape: dy dense,
 * a and b broadcast as in binary_bcast (d, sa, sb; rows of d.w). */
#define LOOM_BINARY_GRAD(name, DA, DB)                                                                       \
    __kernel void binary_grad_##name(__global TS *y, uint yo, __global const TS *pg, uint go,                \
                                     __global const TS *pa, uint ao, __global const TS *pb, uint bo,         \
                                     uint rows, uint4 d, uint4 sa, uint4 sb, uint side)                      \
    {                                                                                                        \
        uint j = (uint)get_global_id(0), r = (uint)get_global_id(1);                                         \
        if (j >= d.w || r >= rows)                                                                           \
            return;                                                                                          \
        typedef float T;                                                                                     \
        uint ra = ao + loom_row_base(r, d, sa), rb = bo + loom_row_base(r, d, sb), i = r * d.w + j;          \
        T a = LD(pa, ra + j * sa.w), b = LD(pb, rb + j * sb.w);                                              \
        ST(y, yo + i, LD(pg, go + i) * (side ? (DB) : (DA)));                                                \
    }

/* c != 0 ? a : b, the three broadcast onto the output: one item per value. */
__kernel __attribute__((reqd_work_group_size(LOOM_EW_WG, 1, 1)))
void where_bcast(__global TS *y, uint yo, __global const TS *c, uint co, __global const TS *a, uint ao,
                 __global const TS *b, uint bo, uint n, uint4 d, uint4 sc, uint4 sa, uint4 sb)
{
    uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    ST(y, yo + i, LD(c, co + loom_off4(i, d, sc)) != 0.0f ? LD(a, ao + loom_off4(i, d, sa)) : LD(b, bo + loom_off4(i, d, sb)));
}

/* y[i] = a[offset of i in (d, s)]: EXPAND (strides 0 along broadcast
 * dims) and TRANSPOSE (permuted strides), by element size (WORD). Laid out
 * as binary_bcast. */
#define LOOM_GATHER(name, WORD, WORD8)                                                                       \
    __kernel void name(__global WORD *y, uint yo, __global const WORD *a, uint ao, uint rows, uint4 d, uint4 s) \
    {                                                                                                        \
        uint j = (uint)get_global_id(0) * 8u, r = (uint)get_global_id(1);                                    \
        if (j >= d.w || r >= rows)                                                                           \
            return;                                                                                          \
        uint ra = ao + loom_row_base(r, d, s), i = yo + r * d.w + j;                                         \
        if (j + 8u <= d.w && s.w <= 1u) {                                                                    \
            vstore8(s.w ? vload8(0, a + ra + j) : (WORD8)(a[ra]), 0, y + i);                                 \
            return;                                                                                          \
        }                                                                                                    \
        uint end = min(j + 8u, d.w);                                                                         \
        for (; j < end; j++, i++)                                                                            \
            y[i] = a[ra + j * s.w];                                                                          \
    }
LOOM_GATHER(gather_32, uint, uint8)
LOOM_GATHER(gather_16, ushort, ushort8)

/* The run slot's h0 is the part of loom_rng_uniform that depends only on
 * (seed, salt, step), computed in core once per run; the element hash is
 * here. */
__kernel __attribute__((reqd_work_group_size(LOOM_EW_WG, 1, 1)))
void ew_dropout(__global TS *y, uint yo, __global const TS *a, uint ao, uint n, float rate, float keep,
                loom_run_slot run)
{
    uint i = (uint)get_global_id(0) * 8u;
    if (i + 8u <= n) {
        uint8 idx = (uint8)(i) + (uint8)(0u, 1u, 2u, 3u, 4u, 5u, 6u, 7u);
        uint8 h = loom_rng_hash8((uint8)(run.h0) ^ idx);
        float8 u = convert_float8(h >> 8) * (1.0f / 16777216.0f);
        float8 x = LD8(a, ao + i);
        ST8(y, yo + i, u >= (float8)(rate) ? x * keep : (float8)(0.0f));
        return;
    }
    for (; i < n; i++) {
        float u = (float)(loom_rng_hash(run.h0 ^ i) >> 8) * (1.0f / 16777216.0f);
        ST(y, yo + i, u >= rate ? LD(a, ao + i) * keep : 0.0f);
    }
}
