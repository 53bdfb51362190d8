/*
 * Convolutional networks' kernels: convolutions (direct, TM x TN of the
 * implicit GEMM per work item, the kernel taps walked in nested loops),
 * pooling and its gradients, normalization, windows, the pad gradient and
 * concat. Tensors in the program's dtype (TS), the arithmetic in f32; the
 * index math mirrors src/backends/cpu/cpu_conv.c and the geometry of
 * src/core/conv_geom.h (push.h: loom_pc_conv and friends, passed by value).
 */

/* A work item's block: CONV_TM rows (the host builds 16, or 4 for
 * convolutions of few channels) by CONV_TN columns; on PoCL 16 x 8
 * measured fastest (2.7 GFLOP/s forward at 64 channels; 4 x 8: 1.1). */
#ifndef CONV_TM
#define CONV_TM 16
#endif
#define CONV_TN 8

/* The moves of windows and concat: words of the dtype's size. */
#if defined(LOOM_F16) || defined(LOOM_BF16)
typedef ushort WORD;
#else
typedef uint WORD;
#endif

inline float conv_x_at(__global const TS *x, uint xo, const loom_pc_conv *p, uint nn, uint ch, int ih, int iw)
{
    if (ih < 0 || iw < 0 || ih >= (int)p->h || iw >= (int)p->w)
        return 0.0f;
    return LD(x, xo + ((nn * p->c + ch) * p->h + (uint)ih) * p->w + (uint)iw);
}

/* item t of group g: its first row and column of the GEMM, or 0 if past */
inline int conv_block(uint m_rows, uint n_cols, uint *m0, uint *j0)
{
    uint cols = (n_cols + CONV_TN - 1) / CONV_TN, rows = (m_rows + CONV_TM - 1) / CONV_TM;
    uint t = (uint)get_global_id(0);
    if (t >= cols * rows)
        return 0;
    *m0 = (t / cols) * CONV_TM;
    *j0 = (t % cols) * CONV_TN;
    return 1;
}

/* y = W X (+ bias): rows output channels of the group, columns output pixels */
__kernel void conv_fwd(__global TS *y, uint yo, __global const TS *x, uint xo, __global const TS *w, uint wo,
                       __global const TS *bias, uint bo, loom_pc_conv p)
{
    uint g = (uint)get_global_id(1), M = p.ocg, ohw = p.oh * p.ow, N = p.n * ohw, m0, j0;
    if (!conv_block(M, N, &m0, &j0))
        return;
    uint kk = p.kh * p.kw, xb[CONV_TN], mr[CONV_TM];
    int ih0[CONV_TN], iw0[CONV_TN];
    for (uint j = 0; j < CONV_TN; j++) {
        uint q = min(j0 + j, N - 1u), nn = q / ohw, r = q % ohw;
        xb[j] = xo + (nn * p.c + g * p.cg) * p.h * p.w;
        ih0[j] = (int)((r / p.ow) * p.sh) - (int)p.pt;
        iw0[j] = (int)((r % p.ow) * p.sw) - (int)p.pl;
    }
    for (uint i = 0; i < CONV_TM; i++)
        mr[i] = wo + (g * p.ocg + min(m0 + i, M - 1u)) * p.cg * kk;
    float acc[CONV_TM][CONV_TN];
    for (uint i = 0; i < CONV_TM; i++)
        for (uint j = 0; j < CONV_TN; j++)
            acc[i][j] = 0.0f;
    for (uint c = 0; c < p.cg; c++)
        for (uint a = 0; a < p.kh; a++)
            for (uint b = 0; b < p.kw; b++) {
                uint tap = (c * p.kh + a) * p.kw + b;
                float wv[CONV_TM], xv[CONV_TN];
                for (uint i = 0; i < CONV_TM; i++)
                    wv[i] = LD(w, mr[i] + tap);
                for (uint j = 0; j < CONV_TN; j++) {
                    int ih = ih0[j] + (int)(a * p.dh), iw = iw0[j] + (int)(b * p.dw);
                    xv[j] = ih >= 0 && iw >= 0 && ih < (int)p.h && iw < (int)p.w
                                ? LD(x, xb[j] + (c * p.h + (uint)ih) * p.w + (uint)iw)
                                : 0.0f;
                }
                for (uint i = 0; i < CONV_TM; i++)
                    for (uint j = 0; j < CONV_TN; j++)
                        acc[i][j] += wv[i] * xv[j];
            }
    for (uint i = 0; i < CONV_TM; i++)
        for (uint j = 0; j < CONV_TN; j++) {
            uint m = m0 + i, q = j0 + j;
            if (m >= M || q >= N)
                continue;
            uint ch = g * p.ocg + m;
            float v = acc[i][j] + (p.has_bias ? LD(bias, bo + ch) : 0.0f);
            ST(y, yo + ((q / ohw) * p.oc + ch) * ohw + q % ohw, v);
        }
}

/* dx = W^T dy (+ bias): rows input channels of the group, columns input pixels */
__kernel void conv_bwd_data(__global TS *dx, uint xo, __global const TS *dy, uint yo, __global const TS *w, uint wo,
                            __global const TS *bias, uint bo, loom_pc_conv p)
{
    uint g = (uint)get_global_id(1), M = p.cg, hw = p.h * p.w, N = p.n * hw, m0, j0;
    if (!conv_block(M, N, &m0, &j0))
        return;
    uint kk = p.kh * p.kw, nb[CONV_TN], hh[CONV_TN], ww[CONV_TN], mr[CONV_TM];
    int unit = p.sh == 1u && p.sw == 1u;
    for (uint j = 0; j < CONV_TN; j++) {
        uint q = min(j0 + j, N - 1u), r = q % hw;
        nb[j] = q / hw;
        hh[j] = r / p.w;
        ww[j] = r % p.w;
    }
    for (uint i = 0; i < CONV_TM; i++)
        mr[i] = min(m0 + i, M - 1u);
    float acc[CONV_TM][CONV_TN];
    for (uint i = 0; i < CONV_TM; i++)
        for (uint j = 0; j < CONV_TN; j++)
            acc[i][j] = 0.0f;
    for (uint o = 0; o < p.ocg; o++)
        for (uint a = 0; a < p.kh; a++)
            for (uint b = 0; b < p.kw; b++) {
                float wv[CONV_TM], dv[CONV_TN];
                for (uint i = 0; i < CONV_TM; i++)
                    wv[i] = LD(w, wo + ((g * p.ocg + o) * p.cg + mr[i]) * kk + a * p.kw + b);
                for (uint j = 0; j < CONV_TN; j++) {
                    int ti = (int)(hh[j] + p.pt) - (int)(a * p.dh), tj = (int)(ww[j] + p.pl) - (int)(b * p.dw);
                    dv[j] = 0.0f;
                    if (ti >= 0 && tj >= 0) {
                        uint i2 = (uint)ti, j2 = (uint)tj;
                        int on = 1;
                        if (unit == 0) { /* stride 1 (most layers): no division */
                            i2 = (uint)ti / p.sh;
                            j2 = (uint)tj / p.sw;
                            on = i2 * p.sh == (uint)ti && j2 * p.sw == (uint)tj;
                        }
                        if (on && i2 < p.oh && j2 < p.ow)
                            dv[j] = LD(dy, yo + ((nb[j] * p.oc + g * p.ocg + o) * p.oh + i2) * p.ow + j2);
                    }
                }
                for (uint i = 0; i < CONV_TM; i++)
                    for (uint j = 0; j < CONV_TN; j++)
                        acc[i][j] += wv[i] * dv[j];
            }
    for (uint i = 0; i < CONV_TM; i++)
        for (uint j = 0; j < CONV_TN; j++) {
            uint m = m0 + i, q = j0 + j;
            if (m >= M || q >= N)
                continue;
            uint ch = g * p.cg + m;
            float v = acc[i][j] + (p.has_bias ? LD(bias, bo + ch) : 0.0f);
            ST(dx, xo + ((q / hw) * p.c + ch) * hw + q % hw, v);
        }
}

/* dw = dy X^T: rows output channels of the group, columns taps (c, a, b),
 * the sum over every output pixel of every sample */
__kernel void conv_bwd_filter(__global TS *dw, uint wo, __global const TS *dy, uint yo, __global const TS *x, uint xo,
                              __global const TS *unused, uint uo, loom_pc_conv p)
{
    uint g = (uint)get_global_id(1), M = p.ocg, kk = p.kh * p.kw, N = p.cg * kk, m0, j0;
    if (!conv_block(M, N, &m0, &j0))
        return;
    uint ch[CONV_TN], mr[CONV_TM];
    int da[CONV_TN], db[CONV_TN];
    for (uint j = 0; j < CONV_TN; j++) {
        uint q = min(j0 + j, N - 1u), r = q % kk;
        ch[j] = g * p.cg + q / kk;
        da[j] = (int)((r / p.kw) * p.dh) - (int)p.pt;
        db[j] = (int)((r % p.kw) * p.dw) - (int)p.pl;
    }
    for (uint i = 0; i < CONV_TM; i++)
        mr[i] = g * p.ocg + min(m0 + i, M - 1u);
    float acc[CONV_TM][CONV_TN];
    for (uint i = 0; i < CONV_TM; i++)
        for (uint j = 0; j < CONV_TN; j++)
            acc[i][j] = 0.0f;
    for (uint nn = 0; nn < p.n; nn++)
        for (uint i = 0; i < p.oh; i++)
            for (uint jj = 0; jj < p.ow; jj++) {
                float dv[CONV_TM], xv[CONV_TN];
                for (uint r = 0; r < CONV_TM; r++)
                    dv[r] = LD(dy, yo + ((nn * p.oc + mr[r]) * p.oh + i) * p.ow + jj);
                for (uint j = 0; j < CONV_TN; j++)
                    xv[j] = conv_x_at(x, xo, &p, nn, ch[j], (int)(i * p.sh) + da[j], (int)(jj * p.sw) + db[j]);
                for (uint r = 0; r < CONV_TM; r++)
                    for (uint j = 0; j < CONV_TN; j++)
                        acc[r][j] += dv[r] * xv[j];
            }
    for (uint i = 0; i < CONV_TM; i++)
        for (uint j = 0; j < CONV_TN; j++)
            if (m0 + i < M && j0 + j < N)
                ST(dw, wo + (g * p.ocg + m0 + i) * N + j0 + j, acc[i][j]);
}

/* ---- pooling ---------------------------------------------------------------- */

__kernel void pool(__global TS *y, uint yo, __global const TS *x, uint xo, loom_pc_pool p, uint code)
{
    uint i = (uint)get_global_id(0), ohw = p.oh * p.ow;
    if (i >= p.planes * ohw)
        return;
    uint plane = i / ohw, r = i % ohw;
    int hs = (int)((r / p.ow) * p.sh) - (int)p.pt, ws = (int)((r % p.ow) * p.sw) - (int)p.pl;
    int h0 = max(hs, 0), w0 = max(ws, 0), h1 = min(hs + (int)p.kh, (int)p.h), w1 = min(ws + (int)p.kw, (int)p.w);
    uint base = xo + plane * p.h * p.w;
    float acc = code == LOOM_POOL_MAX ? LD(x, base + (uint)h0 * p.w + (uint)w0) : 0.0f;
    for (int h = h0; h < h1; h++)
        for (int c = w0; c < w1; c++) {
            float v = LD(x, base + (uint)h * p.w + (uint)c);
            acc = code == LOOM_POOL_MAX ? (v > acc ? v : acc) : acc + v;
        }
    if (code != LOOM_POOL_MAX)
        acc /= (float)(p.count_pad ? p.kh * p.kw : (uint)((h1 - h0) * (w1 - w0)));
    ST(y, yo + i, acc);
}

/* dx[i]: the dy of every window holding i, at its first arg-max (max) or
 * divided over it (average; x unused) */
__kernel void pool_grad(__global TS *dx, uint xo_, __global const TS *dy, uint yo, __global const TS *x, uint xo,
                        loom_pc_pool p, uint code)
{
    uint i = (uint)get_global_id(0), hw = p.h * p.w;
    if (i >= p.planes * hw)
        return;
    uint plane = i / hw, r = i % hw;
    int hh = (int)(r / p.w), ww = (int)(r % p.w);
    int ohl = max(0, (hh + (int)p.pt - (int)p.kh + (int)p.sh) / (int)p.sh);
    int ohh = min((int)p.oh - 1, (hh + (int)p.pt) / (int)p.sh);
    int owl = max(0, (ww + (int)p.pl - (int)p.kw + (int)p.sw) / (int)p.sw);
    int owh = min((int)p.ow - 1, (ww + (int)p.pl) / (int)p.sw);
    uint base = xo + plane * hw;
    float s = 0.0f;
    for (int oh = ohl; oh <= ohh; oh++)
        for (int ow = owl; ow <= owh; ow++) {
            int hs = oh * (int)p.sh - (int)p.pt, ws = ow * (int)p.sw - (int)p.pl;
            int h0 = max(hs, 0), w0 = max(ws, 0), h1 = min(hs + (int)p.kh, (int)p.h), w1 = min(ws + (int)p.kw, (int)p.w);
            float d = LD(dy, yo + plane * p.oh * p.ow + (uint)oh * p.ow + (uint)ow);
            if (code == LOOM_POOL_MAX) {
                int bh = h0, bw = w0;
                float best = LD(x, base + (uint)h0 * p.w + (uint)w0);
                for (int h = h0; h < h1; h++)
                    for (int c = w0; c < w1; c++) {
                        float v = LD(x, base + (uint)h * p.w + (uint)c);
                        if (v > best) {
                            best = v;
                            bh = h;
                            bw = c;
                        }
                    }
                if (bh == hh && bw == ww)
                    s += d;
            } else {
                s += d / (float)(p.count_pad ? p.kh * p.kw : (uint)((h1 - h0) * (w1 - w0)));
            }
        }
    ST(dx, xo_ + i, s);
}

/* ---- normalization ------------------------------------------------------------ */

inline float norm_wg_sum(__local float *s, float v)
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

/* One work group per result (codes.h): STATS the mean and biased variance
 * of statistic j; GRAD_STATS sum gamma dy and sum gamma dy xhat; DGAMMA
 * per channel sum dy xhat and sum dy (rows 0 and 1). a is x (STATS) or dy. */
__kernel __attribute__((reqd_work_group_size(LOOM_RED_WG, 1, 1)))
void norm_reduce(__global TS *y, uint yo, __global const TS *a, uint ao, __global const TS *x, uint xo,
                 __global const TS *st, uint so, __global const TS *gamma, uint go, loom_pc_norm p, uint code)
{
    __local float s[LOOM_RED_WG];
    uint j = (uint)get_group_id(0), l = (uint)get_local_id(0), m = p.blocks * p.len;
    if (code == LOOM_NORM_STATS) {
        float sum = 0.0f;
        for (uint t = l; t < m; t += LOOM_RED_WG)
            sum += LD(a, ao + j * p.len + (t / p.len) * p.stride + t % p.len);
        float mean = norm_wg_sum(s, sum) / (float)m, v = 0.0f;
        for (uint t = l; t < m; t += LOOM_RED_WG) {
            float d = LD(a, ao + j * p.len + (t / p.len) * p.stride + t % p.len) - mean;
            v += d * d;
        }
        v = norm_wg_sum(s, v) / (float)m;
        if (l == 0) {
            ST(y, yo + j, mean);
            ST(y, yo + p.q + j, v);
        }
    } else if (code == LOOM_NORM_GRAD_STATS) {
        float mean = LD(st, so + j), rs = 1.0f / sqrt(LD(st, so + p.q + j) + p.eps), sa = 0.0f, sb = 0.0f;
        for (uint t = l; t < m; t += LOOM_RED_WG) {
            uint i = j * p.len + (t / p.len) * p.stride + t % p.len;
            float gd = LD(gamma, go + (i / p.s) % p.c) * LD(a, ao + i);
            sa += gd;
            sb += gd * ((LD(x, xo + i) - mean) * rs);
        }
        sa = norm_wg_sum(s, sa);
        sb = norm_wg_sum(s, sb);
        if (l == 0) {
            ST(y, yo + j, sa);
            ST(y, yo + p.q + j, sb);
        }
    } else {
        uint mc = p.n * p.s;
        float sum = 0.0f, sd = 0.0f;
        for (uint t = l; t < mc; t += LOOM_RED_WG) {
            uint i = ((t / p.s) * p.c + j) * p.s + t % p.s, q = ((i / p.s) / p.cpg) % p.q;
            float d = LD(a, ao + i);
            sum += d * (LD(x, xo + i) - LD(st, so + q)) / sqrt(LD(st, so + p.q + q) + p.eps);
            sd += d;
        }
        sum = norm_wg_sum(s, sum);
        sd = norm_wg_sum(s, sd);
        if (l == 0) {
            ST(y, yo + j, sum);
            ST(y, yo + p.c + j, sd);
        }
    }
}

/* APPLY: b0 x, b1 stats, b2 gamma, b3 beta; GRAD: b0 dy, b1 x, b2 stats,
 * b3 gamma, b4 the sums of GRAD_STATS */
__kernel void norm_apply(__global TS *y, uint yo, __global const TS *b0, uint o0, __global const TS *b1, uint o1,
                         __global const TS *b2, uint o2, __global const TS *b3, uint o3, __global const TS *b4, uint o4,
                         loom_pc_norm p, uint code)
{
    uint i = (uint)get_global_id(0);
    if (i >= p.numel)
        return;
    uint r = i / p.s, q = (r / p.cpg) % p.q, c = r % p.c;
    if (code == LOOM_NORM_APPLY) {
        float rs = 1.0f / sqrt(LD(b1, o1 + p.q + q) + p.eps);
        ST(y, yo + i, (LD(b0, o0 + i) - LD(b1, o1 + q)) * rs * LD(b2, o2 + c) + LD(b3, o3 + c));
        return;
    }
    float rs = 1.0f / sqrt(LD(b2, o2 + p.q + q) + p.eps), gd = LD(b3, o3 + c) * LD(b0, o0 + i);
    if (p.frozen) {
        ST(y, yo + i, rs * gd);
        return;
    }
    float xhat = (LD(b1, o1 + i) - LD(b2, o2 + q)) * rs;
    ST(y, yo + i, rs * (gd - (LD(b4, o4 + q) + xhat * LD(b4, o4 + p.q + q)) / (float)(p.blocks * p.len)));
}

__kernel void norm_update(__global float *r, uint ro, __global const float *s, uint so, uint n, float momentum)
{
    uint i = (uint)get_global_id(0);
    if (i < n)
        r[ro + i] = momentum * r[ro + i] + (1.0f - momentum) * s[so + i];
}

/* pruning: p *= mask in place, after the optimizer's step */
__kernel void mask_update(__global float *w, uint wo, __global const float *mask, uint mo, uint n)
{
    uint i = (uint)get_global_id(0);
    if (i < n)
        w[wo + i] *= mask[mo + i];
}

/* ---- windows and concat ----------------------------------------------------------- */

inline int window_reflect(int c, int n)
{
    if (n == 1)
        return 0;
    return c < 0 ? -c : c >= n ? 2 * (n - 1) - c : c;
}

/* SLICE, PAD, SLICE_GRAD (codes.h) as words; fill: the constant's bits */
__kernel void window(__global WORD *y, uint yo, __global const WORD *a, uint ao, loom_pc_window p, uint code, uint fill)
{
    uint i = (uint)get_global_id(0);
    if (i >= p.n)
        return;
    uint o[4], r = i;
    for (int d = 3; d >= 0; d--) {
        o[d] = r % p.od[d];
        r /= p.od[d];
    }
    uint off = 0;
    int inside = 1;
    for (int d = 0; d < 4; d++) {
        int c;
        if (code == LOOM_WINDOW_SLICE_GRAD) {
            int t = (int)o[d] - p.start[d];
            int q = t >= 0 ? t / (int)p.step[d] : 0;
            inside = inside && t >= 0 && q * (int)p.step[d] == t && q < (int)p.id[d];
            c = q;
        } else {
            c = p.start[d] + (int)(o[d] * p.step[d]);
            if (c < 0 || c >= (int)p.id[d]) {
                if (code == LOOM_WINDOW_PAD && p.mode == 1u)
                    c = window_reflect(c, (int)p.id[d]);
                else
                    inside = 0;
            }
        }
        off = off * p.id[d] + (uint)max(c, 0);
    }
    y[yo + i] = inside ? a[ao + off] : (WORD)fill;
}

__kernel void pad_grad(__global TS *dx, uint xo, __global const TS *dy, uint yo, loom_pc_window p)
{
    uint i = (uint)get_global_id(0);
    if (i >= p.n)
        return;
    uint o[4], r = i;
    for (int d = 3; d >= 0; d--) {
        o[d] = r % p.od[d];
        r /= p.od[d];
    }
    int cand[4][3], nc[4];
    for (int d = 0; d < 4; d++) {
        int lo = -p.start[d], n = (int)p.od[d], od = (int)o[d], hi = (int)p.id[d] - n - lo;
        nc[d] = 1;
        cand[d][0] = od + lo;
        if (od > 0 && od <= lo)
            cand[d][nc[d]++] = lo - od;
        if (od < n - 1 && od >= n - 1 - hi)
            cand[d][nc[d]++] = lo + 2 * (n - 1) - od;
    }
    float s = 0.0f;
    for (int c0 = 0; c0 < nc[0]; c0++)
        for (int c1 = 0; c1 < nc[1]; c1++)
            for (int c2 = 0; c2 < nc[2]; c2++)
                for (int c3 = 0; c3 < nc[3]; c3++)
                    s += LD(dy, yo + (((uint)cand[0][c0] * p.id[1] + (uint)cand[1][c1]) * p.id[2] + (uint)cand[2][c2]) *
                                         p.id[3] + (uint)cand[3][c3]);
    ST(dx, xo + i, s);
}

__kernel void concat_place(__global WORD *y, uint yo, __global const WORD *a, uint ao, loom_pc_concat p)
{
    uint i = (uint)get_global_id(0);
    if (i < p.n)
        y[yo + (i / p.len) * p.out_len + p.off + i % p.len] = a[ao + i];
}
