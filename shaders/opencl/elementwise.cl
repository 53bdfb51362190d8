/*
 * Element-wise kernels: unary ops and their gradients, binary ops with and
 * without broadcasting, broadcast (expand), transpose and dropout.
 *
 * PoCL vectorizes poorly across work items, so each item handles 8
 * consecutive values with float8 and the last item finishes the tail one
 * value at a time. Semantics follow src/backends/cpu/cpu_kernels.c.
 */

#define LOOM_SQRT1_2 0.70710678118654752f
#define LOOM_INV_SQRT_2PI 0.39894228040143268f

/* One definition per type (float and float8): the vector ternary of
 * OpenCL C selects per component. */
#define LOOM_DEF_UNARY(T)                                                      \
    inline T unary_##T(uint op, T x, float alpha)                              \
    {                                                                          \
        switch (op) {                                                          \
        case LOOM_CL_U_SCALE: return alpha * x;                                \
        case LOOM_CL_U_RELU: return x > (T)0.0f ? x : (T)0.0f;                 \
        case LOOM_CL_U_SIGMOID: return (T)1.0f / ((T)1.0f + exp(-x));          \
        case LOOM_CL_U_TANH: return tanh(x);                                   \
        case LOOM_CL_U_GELU: return 0.5f * x * (1.0f + erf(x * LOOM_SQRT1_2)); \
        case LOOM_CL_U_EXP: return exp(x);                                     \
        case LOOM_CL_U_LOG: return log(x);                                     \
        default: return x * x;                                                 \
        }                                                                      \
    }

#define LOOM_DEF_GRAD(T)                                                       \
    inline T grad_##T(uint op, T dy, T v)                                      \
    {                                                                          \
        switch (op) {                                                          \
        case LOOM_CL_G_RELU: return v > (T)0.0f ? dy : (T)0.0f;                \
        case LOOM_CL_G_SIGMOID: return dy * v * (1.0f - v);                    \
        case LOOM_CL_G_TANH: return dy * (1.0f - v * v);                       \
        default: {                                                             \
            T cdf = 0.5f * (1.0f + erf(v * LOOM_SQRT1_2));                     \
            T pdf = exp(-0.5f * v * v) * LOOM_INV_SQRT_2PI;                    \
            return dy * (cdf + v * pdf);                                       \
        }                                                                      \
        }                                                                      \
    }

#define LOOM_DEF_BINARY(T)                                                     \
    inline T binary_##T(uint op, T a, T b)                                     \
    {                                                                          \
        switch (op) {                                                          \
        case LOOM_CL_B_ADD: return a + b;                                      \
        case LOOM_CL_B_SUB: return a - b;                                      \
        case LOOM_CL_B_MUL: return a * b;                                      \
        default: return a / b;                                                 \
        }                                                                      \
    }

LOOM_DEF_UNARY(float)
LOOM_DEF_UNARY(float8)
LOOM_DEF_GRAD(float)
LOOM_DEF_GRAD(float8)
LOOM_DEF_BINARY(float)
LOOM_DEF_BINARY(float8)

/* y may alias a (the planner writes in place over a dying input): each
 * item reads its values before it writes them, so no restrict. */
__kernel __attribute__((reqd_work_group_size(LOOM_EW_WG, 1, 1)))
void ew_unary(__global float *y, uint yo, __global const float *a, uint ao, uint n, uint op, float alpha)
{
    uint i = (uint)get_global_id(0) * 8u;
    if (i + 8u <= n) {
        vstore8(unary_float8(op, vload8(0, a + ao + i), alpha), 0, y + yo + i);
        return;
    }
    for (; i < n; i++)
        y[yo + i] = unary_float(op, a[ao + i], alpha);
}

/* in: dy, then x or y as src/core/ir.h says for each op. */
__kernel __attribute__((reqd_work_group_size(LOOM_EW_WG, 1, 1)))
void ew_unary_grad(__global float *y, uint yo, __global const float *dy, uint dyo, __global const float *v, uint vo,
                   uint n, uint op)
{
    uint i = (uint)get_global_id(0) * 8u;
    if (i + 8u <= n) {
        vstore8(grad_float8(op, vload8(0, dy + dyo + i), vload8(0, v + vo + i)), 0, y + yo + i);
        return;
    }
    for (; i < n; i++)
        y[yo + i] = grad_float(op, dy[dyo + i], v[vo + i]);
}

__kernel __attribute__((reqd_work_group_size(LOOM_EW_WG, 1, 1)))
void ew_binary(__global float *y, uint yo, __global const float *a, uint ao, __global const float *b, uint bo, uint n,
               uint op)
{
    uint i = (uint)get_global_id(0) * 8u;
    if (i + 8u <= n) {
        vstore8(binary_float8(op, vload8(0, a + ao + i), vload8(0, b + bo + i)), 0, y + yo + i);
        return;
    }
    for (; i < n; i++)
        y[yo + i] = binary_float(op, a[ao + i], b[bo + i]);
}

/* b is one row of c values repeated over every row of a and y (a bias).
 * Two dimensions, (column chunk of 8, row), so that neighbouring items
 * read neighbouring memory: PoCL turns the modulo of a 1-D version into
 * gathers. The host picks the work-group shape. */
__kernel void ew_binary_row(__global float *y, uint yo, __global const float *a, uint ao, __global const float *b,
                            uint bo, uint rows, uint c, uint op)
{
    uint j = (uint)get_global_id(0) * 8u, r = (uint)get_global_id(1);
    if (j >= c || r >= rows)
        return;
    uint i = r * c + j;
    if (j + 8u <= c) {
        vstore8(binary_float8(op, vload8(0, a + ao + i), vload8(0, b + bo + j)), 0, y + yo + i);
        return;
    }
    for (; j < c; j++, i++)
        y[yo + i] = binary_float(op, a[ao + i], b[bo + j]);
}

/* The row of the (d.x, d.y, d.z) index space of rows: strides s give its
 * offset. */
inline uint row_base(uint r, uint4 d, uint4 s)
{
    uint c2 = r % d.z, t = r / d.z;
    return (t / d.y) * s.x + (t % d.y) * s.y + c2 * s.z;
}

/* General numpy broadcasting in 4-D: out dims d, input strides sa and sb
 * (0 along broadcast dims). Two dimensions, (chunk of 8 along d.w, row):
 * along the last axis an input is either contiguous (stride 1) or one
 * repeated value (stride 0), so both load 8 values at once. */
__kernel void ew_binary_bcast(__global float *y, uint yo, __global const float *a, uint ao, __global const float *b,
                              uint bo, uint rows, uint op, uint4 d, uint4 sa, uint4 sb)
{
    uint j = (uint)get_global_id(0) * 8u, r = (uint)get_global_id(1);
    if (j >= d.w || r >= rows)
        return;
    uint ra = ao + row_base(r, d, sa), rb = bo + row_base(r, d, sb), i = yo + r * d.w + j;
    if (j + 8u <= d.w) {
        float8 va = sa.w ? vload8(0, a + ra + j) : (float8)(a[ra]);
        float8 vb = sb.w ? vload8(0, b + rb + j) : (float8)(b[rb]);
        vstore8(binary_float8(op, va, vb), 0, y + i);
        return;
    }
    for (; j < d.w; j++, i++)
        y[i] = binary_float(op, a[ra + j * sa.w], b[rb + j * sb.w]);
}

/* 4-byte gather: y[i] = a[offset of i in (d, s)]. Serves EXPAND (strides 0
 * along broadcast dims) and TRANSPOSE (permuted strides), f32 or i32.
 * Laid out as ew_binary_bcast. */
__kernel void ew_gather(__global uint *y, uint yo, __global const uint *a, uint ao, uint rows, uint4 d, uint4 s)
{
    uint j = (uint)get_global_id(0) * 8u, r = (uint)get_global_id(1);
    if (j >= d.w || r >= rows)
        return;
    uint ra = ao + row_base(r, d, s), i = yo + r * d.w + j;
    if (j + 8u <= d.w && s.w <= 1u) {
        vstore8(s.w ? vload8(0, a + ra + j) : (uint8)(a[ra]), 0, y + i);
        return;
    }
    uint end = min(j + 8u, d.w);
    for (; j < end; j++, i++)
        y[i] = a[ra + j * s.w];
}

/* h0 = the part of loom_rng_uniform that depends only on (seed, salt,
 * step), computed on the host once per run; the element hash is here. */
__kernel __attribute__((reqd_work_group_size(LOOM_EW_WG, 1, 1)))
void ew_dropout(__global float *y, uint yo, __global const float *a, uint ao, uint n, uint h0, float rate, float keep)
{
    uint i = (uint)get_global_id(0) * 8u;
    if (i + 8u <= n) {
        uint8 idx = (uint8)(i) + (uint8)(0u, 1u, 2u, 3u, 4u, 5u, 6u, 7u);
        uint8 h = loom_rng_hash8((uint8)(h0) ^ idx);
        float8 u = convert_float8(h >> 8) * (1.0f / 16777216.0f);
        float8 x = vload8(0, a + ao + i);
        vstore8(u >= (float8)(rate) ? x * keep : (float8)(0.0f), 0, y + yo + i);
        return;
    }
    for (; i < n; i++) {
        float u = (float)(loom_rng_hash(h0 ^ i) >> 8) * (1.0f / 16777216.0f);
        y[yo + i] = u >= rate ? a[ao + i] * keep : 0.0f;
    }
}
