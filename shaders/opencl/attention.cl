/*
 * Fused attention, the flash-attention scheme, as shaders/glsl/attention.comp
 * does it (its comment has the kernels' arithmetic): a work group of 64
 * queries (or keys) of one (batch, head) stages the other side's rows
 * TB at a time through local memory, the scores never stored whole. Built
 * per dtype and head size: -DHEAD_D=64 -DTB=31.
 */
#define WG 64

/* the arguments: loom_pc_attn of push.h, as the Vulkan kernels take them */

inline int attn_last_key(const loom_pc_attn *p, uint i)
{
    int last = (int)p->nk - 1;
    if (p->causal)
        last = min(last, (int)i + (int)p->nk - (int)p->nq);
    return last;
}

inline float attn_mask(const loom_pc_attn *p, __global const TS *m, uint mo, uint b, uint h, uint i, uint j)
{
    return p->has_mask ? LD(m, mo + b * p->ms[0] + h * p->ms[1] + i * p->ms[2] + j * p->ms[3]) : 0.0f;
}

/* One query per item: code LOOM_ATTN_FWD (y = o), LOOM_ATTN_STATS (y =
 * stats, f32, from o and do), LOOM_ATTN_DQ (y = dq, from do, v, stats). */
inline void attn_query(loom_pc_attn p, uint code, __global const TS *q, uint qo, __global const TS *k, uint ko,
                       __global const TS *v, uint vo, __global const TS *o, uint oo, __global const TS *dout, uint doo,
                       __global float *stats, uint so, __global const TS *m, uint mo, __global TS *y, uint yo,
                       __global float *ys, uint yso, __local float *sk, __local float *sv)
{
    if (p.nq == 0u || p.nk == 0u)
        return;
    uint bh = (uint)get_group_id(1), b = bh / p.hq, h = bh % p.hq, hk = h / (p.hq / p.hkv);
    uint l = (uint)get_local_id(0), i = (uint)get_group_id(0) * WG + l;
    int live = i < p.nq;
    uint ic = min(i, p.nq - 1u);
    uint qb = b * p.qs[0] + h * p.qs[1] + ic * p.qs[2], kb = b * p.ks[0] + hk * p.ks[1];
    int last = attn_last_key(&p, ic);
    int kend = attn_last_key(&p, min((uint)get_group_id(0) * WG + WG - 1u, p.nq - 1u)) + 1;
    int use_v = code != LOOM_ATTN_STATS;
    float qr[HEAD_D], acc[HEAD_D], dor[HEAD_D];
    for (uint e = 0; e < HEAD_D; e++) {
        qr[e] = LD(q, qo + qb + e);
        acc[e] = 0.0f;
        dor[e] = code == LOOM_ATTN_DQ ? LD(dout, doo + qb + e) : 0.0f;
    }
    float L = 0.0f, Dd = 0.0f, mx = -INFINITY, lsum = 0.0f;
    if (code == LOOM_ATTN_DQ) {
        L = stats[so + (bh * p.nq + ic) * 2];
        Dd = stats[so + (bh * p.nq + ic) * 2 + 1];
    }
    for (uint j0 = 0; j0 < (uint)max(kend, 0); j0 += TB) {
        uint nt = min((uint)TB, (uint)kend - j0);
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint e = l; e < nt * HEAD_D; e += WG) {
            uint r = e / HEAD_D, c = e % HEAD_D, at = kb + (j0 + r) * p.ks[2] + c;
            sk[e] = LD(k, ko + at);
            if (use_v)
                sv[e] = LD(v, vo + at);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (!live)
            continue;
        if (code == LOOM_ATTN_DQ) {
            for (uint t = 0; t < nt; t++) {
                uint j = j0 + t;
                if ((int)j > last)
                    break;
                float s = 0.0f, dp = 0.0f;
                for (uint e = 0; e < HEAD_D; e++) {
                    s += qr[e] * sk[t * HEAD_D + e];
                    dp += dor[e] * sv[t * HEAD_D + e];
                }
                float pr = exp(s * p.scale + attn_mask(&p, m, mo, b, h, i, j) - L);
                float ds = pr * (dp - Dd);
                for (uint e = 0; e < HEAD_D; e++)
                    acc[e] += ds * sk[t * HEAD_D + e];
            }
            continue;
        }
        float sc[TB];
        float mt = mx;
        for (uint t = 0; t < nt; t++) {
            uint j = j0 + t;
            float s = -INFINITY;
            if ((int)j <= last) {
                s = 0.0f;
                for (uint e = 0; e < HEAD_D; e++)
                    s += qr[e] * sk[t * HEAD_D + e];
                s = s * p.scale + attn_mask(&p, m, mo, b, h, i, j);
            }
            sc[t] = s;
            mt = fmax(mt, s);
        }
        if (mt == -INFINITY)
            continue;
        float corr = exp(mx - mt);
        lsum *= corr;
        if (code == LOOM_ATTN_FWD)
            for (uint e = 0; e < HEAD_D; e++)
                acc[e] *= corr;
        for (uint t = 0; t < nt; t++) {
            float pr = exp(sc[t] - mt);
            lsum += pr;
            if (code == LOOM_ATTN_FWD)
                for (uint e = 0; e < HEAD_D; e++)
                    acc[e] += pr * sv[t * HEAD_D + e];
        }
        mx = mt;
    }
    if (!live)
        return;
    if (code == LOOM_ATTN_FWD) {
        float inv = lsum > 0.0f ? 1.0f / lsum : 0.0f;
        for (uint e = 0; e < HEAD_D; e++)
            ST(y, yo + qb + e, acc[e] * inv);
    } else if (code == LOOM_ATTN_STATS) {
        float dd = 0.0f;
        for (uint e = 0; e < HEAD_D; e++)
            dd += LD(o, oo + qb + e) * LD(dout, doo + qb + e);
        ys[yso + (bh * p.nq + i) * 2] = mx == -INFINITY ? INFINITY : mx + log(lsum);
        ys[yso + (bh * p.nq + i) * 2 + 1] = dd;
    } else {
        for (uint e = 0; e < HEAD_D; e++)
            ST(y, yo + qb + e, acc[e] * p.scale);
    }
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void attn_fwd(__global TS *y, uint yo, __global const TS *q, uint qo, __global const TS *k, uint ko,
              __global const TS *v, uint vo, __global const TS *m, uint mo, loom_pc_attn p)
{
    __local float sk[TB * HEAD_D], sv[TB * HEAD_D];
    attn_query(p, LOOM_ATTN_FWD, q, qo, k, ko, v, vo, q, qo, q, qo, NULL, 0, m, mo, y, yo, NULL, 0, sk, sv);
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void attn_stats(__global float *ys, uint yso, __global const TS *q, uint qo, __global const TS *k, uint ko,
                __global const TS *o, uint oo, __global const TS *dout, uint doo, __global const TS *m, uint mo,
                loom_pc_attn p)
{
    __local float sk[TB * HEAD_D], sv[TB * HEAD_D];
    attn_query(p, LOOM_ATTN_STATS, q, qo, k, ko, k, ko, o, oo, dout, doo, NULL, 0, m, mo, NULL, 0, ys, yso, sk, sv);
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void attn_dq(__global TS *y, uint yo, __global const TS *dout, uint doo, __global const TS *q, uint qo,
             __global const TS *k, uint ko, __global const TS *v, uint vo, __global float *stats, uint so,
             __global const TS *m, uint mo, loom_pc_attn p)
{
    __local float sk[TB * HEAD_D], sv[TB * HEAD_D];
    attn_query(p, LOOM_ATTN_DQ, q, qo, k, ko, v, vo, q, qo, dout, doo, stats, so, m, mo, y, yo, NULL, 0, sk, sv);
}

/* One key per item: dk (want_k) or dv, summed over the query heads of the
 * key's group and the queries that see it. */
inline void attn_key(loom_pc_attn p, int want_k, __global const TS *dout, uint doo, __global const TS *q, uint qo,
                     __global const TS *k, uint ko, __global const TS *v, uint vo, __global const float *stats,
                     uint so, __global const TS *m, uint mo, __global TS *y, uint yo, __local float *sq,
                     __local float *sd, __local float *sl, __local float *sdd)
{
    if (p.nq == 0u || p.nk == 0u)
        return;
    uint bk = (uint)get_group_id(1), b = bk / p.hkv, hk = bk % p.hkv, group = p.hq / p.hkv;
    uint l = (uint)get_local_id(0), j = (uint)get_group_id(0) * WG + l;
    int live = j < p.nk;
    uint jc = min(j, p.nk - 1u);
    uint kb = b * p.ks[0] + hk * p.ks[1] + jc * p.ks[2];
    float kr[HEAD_D], vr[HEAD_D], acc[HEAD_D];
    for (uint e = 0; e < HEAD_D; e++) {
        kr[e] = LD(k, ko + kb + e);
        vr[e] = want_k ? LD(v, vo + kb + e) : 0.0f;
        acc[e] = 0.0f;
    }
    int shift = (int)p.nk - (int)p.nq;
    uint istart = p.causal ? (uint)clamp((int)((uint)get_group_id(0) * WG) - shift, 0, (int)p.nq) : 0u;
    istart = istart / TB * TB;
    for (uint h = hk * group; h < (hk + 1u) * group; h++) {
        uint qbase = b * p.qs[0] + h * p.qs[1], sbase = (b * p.hq + h) * p.nq;
        for (uint i0 = istart; i0 < p.nq; i0 += TB) {
            uint nt = min((uint)TB, p.nq - i0);
            barrier(CLK_LOCAL_MEM_FENCE);
            for (uint e = l; e < nt * HEAD_D; e += WG) {
                uint r = e / HEAD_D, c = e % HEAD_D, at = qbase + (i0 + r) * p.qs[2] + c;
                sq[e] = LD(q, qo + at);
                sd[e] = LD(dout, doo + at);
            }
            for (uint r = l; r < nt; r += WG) {
                sl[r] = stats[so + (sbase + i0 + r) * 2];
                sdd[r] = stats[so + (sbase + i0 + r) * 2 + 1];
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            if (!live)
                continue;
            for (uint t = 0; t < nt; t++) {
                uint i = i0 + t;
                if (p.causal && (int)j > (int)i + shift)
                    continue;
                float s = 0.0f;
                for (uint e = 0; e < HEAD_D; e++)
                    s += sq[t * HEAD_D + e] * kr[e];
                float pr = exp(s * p.scale + attn_mask(&p, m, mo, b, h, i, j) - sl[t]);
                if (!want_k) {
                    for (uint e = 0; e < HEAD_D; e++)
                        acc[e] += pr * sd[t * HEAD_D + e];
                    continue;
                }
                float dp = 0.0f;
                for (uint e = 0; e < HEAD_D; e++)
                    dp += sd[t * HEAD_D + e] * vr[e];
                float ds = pr * (dp - sdd[t]);
                for (uint e = 0; e < HEAD_D; e++)
                    acc[e] += ds * sq[t * HEAD_D + e];
            }
        }
    }
    if (!live)
        return;
    for (uint e = 0; e < HEAD_D; e++)
        ST(y, yo + kb + e, want_k ? acc[e] * p.scale : acc[e]);
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void attn_dk(__global TS *y, uint yo, __global const TS *dout, uint doo, __global const TS *q, uint qo,
             __global const TS *k, uint ko, __global const TS *v, uint vo, __global float *stats, uint so,
             __global const TS *m, uint mo, loom_pc_attn p)
{
    __local float sq[TB * HEAD_D], sd[TB * HEAD_D], sl[TB], sdd[TB];
    attn_key(p, 1, dout, doo, q, qo, k, ko, v, vo, stats, so, m, mo, y, yo, sq, sd, sl, sdd);
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void attn_dv(__global TS *y, uint yo, __global const TS *dout, uint doo, __global const TS *q, uint qo,
             __global const TS *k, uint ko, __global const TS *v, uint vo, __global float *stats, uint so,
             __global const TS *m, uint mo, loom_pc_attn p)
{
    __local float sq[TB * HEAD_D], sd[TB * HEAD_D], sl[TB], sdd[TB];
    attn_key(p, 0, dout, doo, q, qo, k, ko, v, vo, stats, so, m, mo, y, yo, sq, sd, sl, sdd);
}
