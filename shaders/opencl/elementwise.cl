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

/* b is one row of c values repeated over every row of a and y (a bias). */
__kernel __attribute__((reqd_work_group_size(LOOM_EW_WG, 1, 1)))
void ew_binary_row(__global float *y, uint yo, __global const float *a, uint ao, __global const float *b, uint bo,
                   uint n, uint op, uint c)
{
    uint i = (uint)get_global_id(0) * 8u;
    if (i >= n)
        return;
    uint j = i % c;
    if (i + 8u <= n && j + 8u <= c) {
        vstore8(binary_float8(op, vload8(0, a + ao + i), vload8(0, b + bo + j)), 0, y + yo + i);
        return;
    }
    uint end = min(i + 8u, n);
    for (; i < end; i++) {
        y[yo + i] = binary_float(op, a[ao + i], b[bo + j]);
        if (++j == c)
            j = 0;
    }
}

/* General numpy broadcasting in 4-D: out dims d, input strides sa and sb
 * (0 along broadcast dims). Each item walks 8 consecutive outputs. */
__kernel __attribute__((reqd_work_group_size(LOOM_EW_WG, 1, 1)))
void ew_binary_bcast(__global float *y, uint yo, __global const float *a, uint ao, __global const float *b, uint bo,
                     uint n, uint op, uint4 d, uint4 sa, uint4 sb)
{
    uint i = (uint)get_global_id(0) * 8u;
    if (i >= n)
        return;
    uint end = min(i + 8u, n);
    uint r = i;
    uint c3 = r % d.w;
    r /= d.w;
    uint c2 = r % d.z;
    r /= d.z;
    uint c1 = r % d.y;
    uint c0 = r / d.y;
    for (; i < end; i++) {
        uint ia = c0 * sa.x + c1 * sa.y + c2 * sa.z + c3 * sa.w;
        uint ib = c0 * sb.x + c1 * sb.y + c2 * sb.z + c3 * sb.w;
        y[yo + i] = binary_float(op, a[ao + ia], b[bo + ib]);
        if (++c3 == d.w) {
            c3 = 0;
            if (++c2 == d.z) {
                c2 = 0;
                if (++c1 == d.y) {
                    c1 = 0;
                    c0++;
                }
            }
        }
    }
}

/* 4-byte gather: y[i] = a[offset of i in (d, s)]. Serves EXPAND (strides 0
 * along broadcast dims) and TRANSPOSE (permuted strides), f32 or i32. */
__kernel __attribute__((reqd_work_group_size(LOOM_EW_WG, 1, 1)))
void ew_gather(__global uint *y, uint yo, __global const uint *a, uint ao, uint n, uint4 d, uint4 s)
{
    uint i = (uint)get_global_id(0) * 8u;
    if (i >= n)
        return;
    uint end = min(i + 8u, n);
    uint r = i;
    uint c3 = r % d.w;
    r /= d.w;
    uint c2 = r % d.z;
    r /= d.z;
    uint c1 = r % d.y;
    uint c0 = r / d.y;
    for (; i < end; i++) {
        y[yo + i] = a[ao + c0 * s.x + c1 * s.y + c2 * s.z + c3 * s.w];
        if (++c3 == d.w) {
            c3 = 0;
            if (++c2 == d.z) {
                c2 = 0;
                if (++c1 == d.y) {
                    c1 = 0;
                    c0++;
                }
            }
        }
    }
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
