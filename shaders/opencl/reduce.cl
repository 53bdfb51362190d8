/*
 * Reductions: sums over axes, the sum of squares of gradients, argmax, the
 * softmax family over the last axis and the sparse cross-entropy.
 *
 * Two shapes of each row/axis reduction: one work item per output (many
 * short reductions) and one work group per output with a tree in local
 * memory (few long ones); the host picks per node. The CPU reference sums
 * some of these in double; here sums are float, in a tree, which the op
 * matrix's tolerances cover.
 */

inline float wg_sum(__local float *s, float v)
{
    uint l = (uint)get_local_id(0);
    s[l] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint k = LOOM_RED_WG / 2; k > 0; k >>= 1) {
        if (l < k)
            s[l] += s[l + k];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float r = s[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

inline float wg_max(__local float *s, float v)
{
    uint l = (uint)get_local_id(0);
    s[l] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint k = LOOM_RED_WG / 2; k > 0; k >>= 1) {
        if (l < k)
            s[l] = fmax(s[l], s[l + k]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float r = s[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

/* REDUCE_SUM: output o is the dense index over the kept dims (sizes kd,
 * input strides ks); the R reduced elements are the dense index space of
 * the reduced dims (sizes rd, strides rs). y = alpha * sum. */
__kernel __attribute__((reqd_work_group_size(LOOM_RED_WG, 1, 1)))
void red_sum_item(__global float *y, uint yo, __global const float *a, uint ao, uint nout, uint4 kd, uint4 ks,
                  uint4 rd, uint4 rs, uint R, float alpha)
{
    uint o = (uint)get_global_id(0);
    if (o >= nout)
        return;
    __global const float *p = a + ao + loom_off4(o, kd, ks);
    float acc = 0.0f;
    if (rd.x == 1u && rd.y == 1u && rd.z == 1u) {
        for (uint r = 0; r < R; r++)
            acc += p[r * rs.w];
    } else {
        for (uint r = 0; r < R; r++)
            acc += p[loom_off4(r, rd, rs)];
    }
    y[yo + o] = acc * alpha;
}

__kernel __attribute__((reqd_work_group_size(LOOM_RED_WG, 1, 1)))
void red_sum_wg(__global float *y, uint yo, __global const float *a, uint ao, uint nout, uint4 kd, uint4 ks,
                uint4 rd, uint4 rs, uint R, float alpha)
{
    __local float s[LOOM_RED_WG];
    uint o = (uint)get_group_id(0);
    __global const float *p = a + ao + loom_off4(o, kd, ks);
    float acc = 0.0f;
    for (uint r = (uint)get_local_id(0); r < R; r += LOOM_RED_WG)
        acc += p[loom_off4(r, rd, rs)];
    float t = wg_sum(s, acc);
    if (get_local_id(0) == 0)
        y[yo + o] = t * alpha;
}

/* REDUCE_SUM of [R, C] to [C] (the gradient of a bias): item i sums
 * columns 8i..8i+7 down the rows with float8 loads, in row order, as the
 * CPU reference does. */
__kernel __attribute__((reqd_work_group_size(LOOM_RED_WG, 1, 1)))
void red_sum_cols(__global float *y, uint yo, __global const float *a, uint ao, uint R, uint C, float alpha)
{
    uint j = (uint)get_global_id(0) * 8u;
    if (j >= C)
        return;
    __global const float *p = a + ao;
    if (j + 8u <= C) {
        float8 acc = (float8)(0.0f);
        for (uint r = 0; r < R; r++)
            acc += vload8(0, p + r * C + j);
        vstore8(acc * alpha, 0, y + yo + j);
        return;
    }
    for (; j < C; j++) {
        float acc = 0.0f;
        for (uint r = 0; r < R; r++)
            acc += p[r * C + j];
        y[yo + j] = acc * alpha;
    }
}

/* SUMSQ: one input per launch; the first launch of a node writes, the
 * others add (accumulate = 1). One work group. */
__kernel __attribute__((reqd_work_group_size(LOOM_RED_WG, 1, 1)))
void red_sumsq(__global float *y, uint yo, __global const float *a, uint ao, uint n, int accumulate)
{
    __local float s[LOOM_RED_WG];
    uint l = (uint)get_local_id(0);
    float8 acc8 = (float8)(0.0f);
    uint n8 = n / 8u;
    for (uint k = l; k < n8; k += LOOM_RED_WG) {
        float8 v = vload8(0, a + ao + k * 8u);
        acc8 += v * v;
    }
    float acc = acc8.s0 + acc8.s1 + acc8.s2 + acc8.s3 + acc8.s4 + acc8.s5 + acc8.s6 + acc8.s7;
    for (uint i = n8 * 8u + l; i < n; i += LOOM_RED_WG)
        acc += a[ao + i] * a[ao + i];
    float t = wg_sum(s, acc);
    if (l == 0)
        y[yo] = accumulate ? y[yo] + t : t;
}

/* Index of the largest value along an axis of n (first on ties), for
 * outer x inner outputs. */
__kernel __attribute__((reqd_work_group_size(LOOM_RED_WG, 1, 1)))
void red_argmax(__global int *y, uint yo, __global const float *a, uint ao, uint outer, uint n, uint inner)
{
    uint o = (uint)get_global_id(0);
    if (o >= outer * inner)
        return;
    uint oo = o / inner, in = o % inner;
    __global const float *p = a + ao + oo * n * inner + in;
    int best = 0;
    float bv = p[0];
    for (uint j = 1; j < n; j++) {
        float v = p[j * inner];
        if (v > bv) {
            bv = v;
            best = (int)j;
        }
    }
    y[yo + o] = best;
}

/* The softmax family over rows of c values, by mode (codes.h):
 *   SOFTMAX, LOG_SOFTMAX:        a = x
 *   SOFTMAX_GRAD:                a = dy, b = y       y * (dy - sum(dy * y))
 *   LOG_SOFTMAX_GRAD:            a = dy, b = y       dy - exp(y) * sum(dy)
 *   XENT_GRAD:                   a = logits, b = dloss (a scalar), lab
 *                                dloss / rows * (softmax(a) - onehot(lab))
 * One work item per row. */
__kernel __attribute__((reqd_work_group_size(LOOM_RED_WG, 1, 1)))
void rows_item(__global float *y, uint yo, __global const float *a, uint ao, __global const float *b, uint bo,
               __global const int *lab, uint lo, uint rows, uint c, uint mode)
{
    uint r = (uint)get_global_id(0);
    if (r >= rows)
        return;
    __global const float *x = a + ao + r * c;
    __global float *o = y + yo + r * c;
    if (mode == LOOM_CL_R_SOFTMAX_GRAD || mode == LOOM_CL_R_LOG_SOFTMAX_GRAD) {
        __global const float *v = b + bo + r * c;
        float acc = 0.0f;
        if (mode == LOOM_CL_R_SOFTMAX_GRAD) {
            for (uint j = 0; j < c; j++)
                acc += x[j] * v[j];
            for (uint j = 0; j < c; j++)
                o[j] = v[j] * (x[j] - acc);
        } else {
            for (uint j = 0; j < c; j++)
                acc += x[j];
            for (uint j = 0; j < c; j++)
                o[j] = x[j] - exp(v[j]) * acc;
        }
        return;
    }
    float m = x[0];
    for (uint j = 1; j < c; j++)
        m = x[j] > m ? x[j] : m;
    float s = 0.0f;
    for (uint j = 0; j < c; j++)
        s += exp(x[j] - m);
    if (mode == LOOM_CL_R_SOFTMAX) {
        for (uint j = 0; j < c; j++)
            o[j] = exp(x[j] - m) / s;
    } else if (mode == LOOM_CL_R_LOG_SOFTMAX) {
        float lse = m + log(s);
        for (uint j = 0; j < c; j++)
            o[j] = x[j] - lse;
    } else {
        float scale = b[bo] / (float)rows;
        int t = lab[lo + r];
        for (uint j = 0; j < c; j++)
            o[j] = (exp(x[j] - m) / s - ((int)j == t ? 1.0f : 0.0f)) * scale;
    }
}

/* The same, one work group per row. */
__kernel __attribute__((reqd_work_group_size(LOOM_RED_WG, 1, 1)))
void rows_wg(__global float *y, uint yo, __global const float *a, uint ao, __global const float *b, uint bo,
             __global const int *lab, uint lo, uint rows, uint c, uint mode)
{
    __local float sh[LOOM_RED_WG];
    uint r = (uint)get_group_id(0), l = (uint)get_local_id(0);
    __global const float *x = a + ao + r * c;
    __global float *o = y + yo + r * c;
    if (mode == LOOM_CL_R_SOFTMAX_GRAD || mode == LOOM_CL_R_LOG_SOFTMAX_GRAD) {
        __global const float *v = b + bo + r * c;
        float acc = 0.0f;
        for (uint j = l; j < c; j += LOOM_RED_WG)
            acc += mode == LOOM_CL_R_SOFTMAX_GRAD ? x[j] * v[j] : x[j];
        acc = wg_sum(sh, acc);
        for (uint j = l; j < c; j += LOOM_RED_WG)
            o[j] = mode == LOOM_CL_R_SOFTMAX_GRAD ? v[j] * (x[j] - acc) : x[j] - exp(v[j]) * acc;
        return;
    }
    float m = -INFINITY;
    for (uint j = l; j < c; j += LOOM_RED_WG)
        m = x[j] > m ? x[j] : m;
    m = wg_max(sh, m);
    float s = 0.0f;
    for (uint j = l; j < c; j += LOOM_RED_WG)
        s += exp(x[j] - m);
    s = wg_sum(sh, s);
    if (mode == LOOM_CL_R_SOFTMAX) {
        for (uint j = l; j < c; j += LOOM_RED_WG)
            o[j] = exp(x[j] - m) / s;
    } else if (mode == LOOM_CL_R_LOG_SOFTMAX) {
        float lse = m + log(s);
        for (uint j = l; j < c; j += LOOM_RED_WG)
            o[j] = x[j] - lse;
    } else {
        float scale = b[bo] / (float)rows;
        int t = lab[lo + r];
        for (uint j = l; j < c; j += LOOM_RED_WG)
            o[j] = (exp(x[j] - m) / s - ((int)j == t ? 1.0f : 0.0f)) * scale;
    }
}

/* SPARSE_XENT: mean over rows of logsumexp(z[r]) - z[r, lab[r]]. One work
 * group; each item takes whole rows. */
__kernel __attribute__((reqd_work_group_size(LOOM_RED_WG, 1, 1)))
void xent(__global float *y, uint yo, __global const float *z, uint zo, __global const int *lab, uint lo, uint rows,
          uint c)
{
    __local float sh[LOOM_RED_WG];
    uint l = (uint)get_local_id(0);
    float total = 0.0f;
    for (uint r = l; r < rows; r += LOOM_RED_WG) {
        __global const float *x = z + zo + r * c;
        float m = x[0];
        for (uint j = 1; j < c; j++)
            m = x[j] > m ? x[j] : m;
        float s = 0.0f;
        for (uint j = 0; j < c; j++)
            s += exp(x[j] - m);
        total += m + log(s) - x[lab[lo + r]];
    }
    total = wg_sum(sh, total);
    if (l == 0)
        y[yo] = total / (float)rows;
}
