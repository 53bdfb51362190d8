/*
 * Reductions: sums, maxima and minima over axes, the sum of squares of
 * gradients, argmax / argmin and the gradients of max / min, the softmax
 * family along an axis and the sparse cross-entropy. Tensors in the
 * program's dtype (TS); the arithmetic in f32.
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

/* The reductions by code (codes.h): sum, max, min. */
inline float red_start(uint code)
{
    return code == LOOM_REDUCE_SUM ? 0.0f : code == LOOM_REDUCE_MAX ? -INFINITY : INFINITY;
}

inline float red_combine(uint code, float s, float v)
{
    return code == LOOM_REDUCE_SUM ? s + v : code == LOOM_REDUCE_MAX ? fmax(s, v) : fmin(s, v);
}

/* Output o is the dense index over the kept dims (sizes kd, input strides
 * ks); the R reduced elements are the dense index space of the reduced
 * dims (sizes rd, strides rs). y = alpha * the sum, or the max / min. */
__kernel __attribute__((reqd_work_group_size(LOOM_RED_WG, 1, 1)))
void red_item(__global TS *y, uint yo, __global const TS *a, uint ao, uint nout, uint4 kd, uint4 ks, uint4 rd,
              uint4 rs, uint R, float alpha, uint code)
{
    uint o = (uint)get_global_id(0);
    if (o >= nout)
        return;
    uint base = ao + loom_off4(o, kd, ks);
    float acc = red_start(code);
    if (rd.x == 1u && rd.y == 1u && rd.z == 1u) {
        for (uint r = 0; r < R; r++)
            acc = red_combine(code, acc, LD(a, base + r * rs.w));
    } else {
        for (uint r = 0; r < R; r++)
            acc = red_combine(code, acc, LD(a, base + loom_off4(r, rd, rs)));
    }
    ST(y, yo + o, code == LOOM_REDUCE_SUM ? acc * alpha : acc);
}

__kernel __attribute__((reqd_work_group_size(LOOM_RED_WG, 1, 1)))
void red_wg(__global TS *y, uint yo, __global const TS *a, uint ao, uint nout, uint4 kd, uint4 ks, uint4 rd,
            uint4 rs, uint R, float alpha, uint code)
{
    __local float s[LOOM_RED_WG];
    uint o = (uint)get_group_id(0);
    uint base = ao + loom_off4(o, kd, ks);
    float acc = red_start(code);
    for (uint r = (uint)get_local_id(0); r < R; r += LOOM_RED_WG)
        acc = red_combine(code, acc, LD(a, base + loom_off4(r, rd, rs)));
    float t = code == LOOM_REDUCE_SUM ? wg_sum(s, acc) : code == LOOM_REDUCE_MAX ? wg_max(s, acc) : -wg_max(s, -acc);
    if (get_local_id(0) == 0)
        ST(y, yo + o, code == LOOM_REDUCE_SUM ? t * alpha : t);
}

/* The sum of [R, C] to [C] (the gradient of a bias): item i sums columns
 * 8i..8i+7 down the rows with float8 loads, in row order, as the CPU
 * reference does. */
__kernel __attribute__((reqd_work_group_size(LOOM_RED_WG, 1, 1)))
void red_sum_cols(__global TS *y, uint yo, __global const TS *a, uint ao, uint R, uint C, float alpha)
{
    uint j = (uint)get_global_id(0) * 8u;
    if (j >= C)
        return;
    if (j + 8u <= C) {
        float8 acc = (float8)(0.0f);
        for (uint r = 0; r < R; r++)
            acc += LD8(a, ao + r * C + j);
        ST8(y, yo + j, acc * alpha);
        return;
    }
    for (; j < C; j++) {
        float acc = 0.0f;
        for (uint r = 0; r < R; r++)
            acc += LD(a, ao + r * C + j);
        ST(y, yo + j, acc * alpha);
    }
}

/* SUMSQ (f32 gradients): one input per launch; the first launch of a node
 * writes, the others add (accumulate = 1). One work group. */
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

/* The run's loss scale as a tensor (the seed of a loss-scaled backward). */
__kernel void run_loss_scale(__global float *y, uint yo, loom_run_slot run)
{
    y[yo] = run.loss_scale;
}

/* The first arg-max (code LOOM_ARG_MAX) or arg-min along an axis of n at
 * p (elements inner apart). */
inline uint arg_of(__global const TS *a, uint base, uint n, uint inner, uint code)
{
    uint best = 0;
    float bv = LD(a, base);
    for (uint j = 1; j < n; j++) {
        float v = LD(a, base + j * inner);
        if (code == LOOM_ARG_MAX ? v > bv : v < bv) {
            bv = v;
            best = j;
        }
    }
    return best;
}

/* argmax / argmin: one item per (outer, inner) output. */
__kernel __attribute__((reqd_work_group_size(LOOM_RED_WG, 1, 1)))
void red_arg(__global int *y, uint yo, __global const TS *a, uint ao, uint outer, uint n, uint inner, uint code)
{
    uint o = (uint)get_global_id(0);
    if (o >= outer * inner)
        return;
    y[yo + o] = (int)arg_of(a, ao + (o / inner) * n * inner + o % inner, n, inner, code);
}

/* The gradient of max / min: dx = dy at each slice's arg, 0 elsewhere; one
 * item writes its whole slice. */
__kernel __attribute__((reqd_work_group_size(LOOM_RED_WG, 1, 1)))
void red_arg_grad(__global TS *y, uint yo, __global const TS *dy, uint dyo, __global const TS *a, uint ao,
                  uint outer, uint n, uint inner, uint code)
{
    uint o = (uint)get_global_id(0);
    if (o >= outer * inner)
        return;
    uint base = (o / inner) * n * inner + o % inner;
    uint best = arg_of(a, ao + base, n, inner, code);
    float d = LD(dy, dyo + o);
    for (uint j = 0; j < n; j++)
        ST(y, yo + base + j * inner, j == best ? d : 0.0f);
}

/* Rows of c values, each inner apart: row r of rows = outer * inner. */
inline uint row_start(uint r, uint c, uint inner)
{
    return (r / inner) * c * inner + r % inner;
}

/* The softmax family along an axis, by code (codes.h) and grad:
 *   softmax, log_softmax:        a = x
 *   their gradients:             a = dy, b = y
 *     softmax:     y * (dy - sum(dy * y));  log_softmax: dy - exp(y) * sum(dy)
 * One work item per row. */
__kernel __attribute__((reqd_work_group_size(LOOM_RED_WG, 1, 1)))
void rows_item(__global TS *y, uint yo, __global const TS *a, uint ao, __global const TS *b, uint bo, uint rows,
               uint c, uint inner, uint code, uint grad)
{
    uint r = (uint)get_global_id(0);
    if (r >= rows)
        return;
    uint s0 = row_start(r, c, inner);
    uint x = ao + s0, o = yo + s0, v = bo + s0;
    if (grad) {
        float acc = 0.0f;
        for (uint j = 0; j < c; j++)
            acc += code == LOOM_SOFTMAX_PLAIN ? LD(a, x + j * inner) * LD(b, v + j * inner) : LD(a, x + j * inner);
        for (uint j = 0; j < c; j++) {
            float d = LD(a, x + j * inner), s = LD(b, v + j * inner);
            ST(y, o + j * inner, code == LOOM_SOFTMAX_PLAIN ? s * (d - acc) : d - exp(s) * acc);
        }
        return;
    }
    float m = LD(a, x);
    for (uint j = 1; j < c; j++)
        m = fmax(m, LD(a, x + j * inner));
    float s = 0.0f;
    for (uint j = 0; j < c; j++)
        s += exp(LD(a, x + j * inner) - m);
    float lse = m + log(s);
    for (uint j = 0; j < c; j++) {
        float xv = LD(a, x + j * inner);
        ST(y, o + j * inner, code == LOOM_SOFTMAX_PLAIN ? exp(xv - m) / s : xv - lse);
    }
}

/* The same, one work group per row. */
__kernel __attribute__((reqd_work_group_size(LOOM_RED_WG, 1, 1)))
void rows_wg(__global TS *y, uint yo, __global const TS *a, uint ao, __global const TS *b, uint bo, uint rows,
             uint c, uint inner, uint code, uint grad)
{
    __local float sh[LOOM_RED_WG];
    uint r = (uint)get_group_id(0), l = (uint)get_local_id(0);
    uint s0 = row_start(r, c, inner);
    uint x = ao + s0, o = yo + s0, v = bo + s0;
    if (grad) {
        float acc = 0.0f;
        for (uint j = l; j < c; j += LOOM_RED_WG)
            acc += code == LOOM_SOFTMAX_PLAIN ? LD(a, x + j * inner) * LD(b, v + j * inner) : LD(a, x + j * inner);
        acc = wg_sum(sh, acc);
        for (uint j = l; j < c; j += LOOM_RED_WG) {
            float d = LD(a, x + j * inner), s = LD(b, v + j * inner);
            ST(y, o + j * inner, code == LOOM_SOFTMAX_PLAIN ? s * (d - acc) : d - exp(s) * acc);
        }
        return;
    }
    float m = -INFINITY;
    for (uint j = l; j < c; j += LOOM_RED_WG)
        m = fmax(m, LD(a, x + j * inner));
    m = wg_max(sh, m);
    float s = 0.0f;
    for (uint j = l; j < c; j += LOOM_RED_WG)
        s += exp(LD(a, x + j * inner) - m);
    s = wg_sum(sh, s);
    float lse = m + log(s);
    for (uint j = l; j < c; j += LOOM_RED_WG) {
        float xv = LD(a, x + j * inner);
        ST(y, o + j * inner, code == LOOM_SOFTMAX_PLAIN ? exp(xv - m) / s : xv - lse);
    }
}

/* SPARSE_XENT_GRAD: dloss / rows * (softmax(z[r]) - onehot(lab[r])); a
 * label outside [0, c) gives a row of NaN. One item per row. */
__kernel __attribute__((reqd_work_group_size(LOOM_RED_WG, 1, 1)))
void xent_grad(__global TS *y, uint yo, __global const float *dl, uint dlo, __global const TS *z, uint zo,
               __global const int *lab, uint lo, uint rows, uint c)
{
    uint r = (uint)get_global_id(0);
    if (r >= rows)
        return;
    uint x = zo + r * c, o = yo + r * c;
    int t = lab[lo + r];
    if (t < 0 || (uint)t >= c) {
        for (uint j = 0; j < c; j++)
            ST(y, o + j, NAN);
        return;
    }
    float m = LD(z, x);
    for (uint j = 1; j < c; j++)
        m = fmax(m, LD(z, x + j));
    float s = 0.0f;
    for (uint j = 0; j < c; j++)
        s += exp(LD(z, x + j) - m);
    float scale = dl[dlo] / (float)rows;
    for (uint j = 0; j < c; j++)
        ST(y, o + j, (exp(LD(z, x + j) - m) / s - ((int)j == t ? 1.0f : 0.0f)) * scale);
}

/* SPARSE_XENT: mean over rows of logsumexp(z[r]) - z[r, lab[r]] (f32; NaN
 * for a label outside [0, c)). One work group; each item takes whole rows. */
__kernel __attribute__((reqd_work_group_size(LOOM_RED_WG, 1, 1)))
void xent(__global float *y, uint yo, __global const TS *z, uint zo, __global const int *lab, uint lo, uint rows,
          uint c)
{
    __local float sh[LOOM_RED_WG];
    uint l = (uint)get_local_id(0);
    float total = 0.0f;
    for (uint r = l; r < rows; r += LOOM_RED_WG) {
        uint x = zo + r * c;
        int t = lab[lo + r];
        if (t < 0 || (uint)t >= c) {
            total += NAN;
            continue;
        }
        float m = LD(z, x);
        for (uint j = 1; j < c; j++)
            m = fmax(m, LD(z, x + j));
        float s = 0.0f;
        for (uint j = 0; j < c; j++)
            s += exp(LD(z, x + j) - m);
        total += m + log(s) - LD(z, x + (uint)t);
    }
    total = wg_sum(sh, total);
    if (l == 0)
        y[yo] = total / (float)rows;
}

/* SPARSE_XENT_GRAD fused with the loss and the prediction (the core's
 * fusion of a classifier's step): the gradient as xent_grad writes it, the
 * loss as xent, each row's first arg-max as red_arg, in one pass over the
 * logits. One work group; each item takes whole rows. */
__kernel __attribute__((reqd_work_group_size(LOOM_RED_WG, 1, 1)))
void xent_fused(__global TS *y, uint yo, __global float *loss, uint losso, __global int *pred, uint predo,
                int has_loss, int has_pred, __global const float *dl, uint dlo, __global const TS *z, uint zo,
                __global const int *lab, uint lo, uint rows, uint c)
{
    __local float sh[LOOM_RED_WG];
    uint l = (uint)get_local_id(0);
    float scale = dl[dlo] / (float)rows, total = 0.0f;
    for (uint r = l; r < rows; r += LOOM_RED_WG) {
        uint x = zo + r * c, o = yo + r * c;
        float m = LD(z, x);
        int best = 0;
        for (uint j = 1; j < c; j++) {
            float v = LD(z, x + j);
            if (v > m) {
                m = v;
                best = (int)j;
            }
        }
        if (has_pred)
            pred[predo + r] = best;
        int t = lab[lo + r];
        if (t < 0 || (uint)t >= c) {
            total += NAN;
            for (uint j = 0; j < c; j++)
                ST(y, o + j, NAN);
            continue;
        }
        float s = 0.0f;
        for (uint j = 0; j < c; j++)
            s += exp(LD(z, x + j) - m);
        total += m + log(s) - LD(z, x + (uint)t);
        for (uint j = 0; j < c; j++)
            ST(y, o + j, (exp(LD(z, x + j) - m) / s - ((int)j == t ? 1.0f : 0.0f)) * scale);
    }
    total = wg_sum(sh, total);
    if (l == 0 && has_loss)
        loss[losso] = total / (float)rows;
}
