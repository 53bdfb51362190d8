#version 450
// Fused attention, the flash-attention scheme: the scores of a query
// against a tile of TB keys at a time, a running max and sum, the N x N
// matrix never stored. One variant per kernel:
//   ATTN_FWD    o = softmax(scale q k^T + mask) v       (a query per invocation)
//   ATTN_STATS  the backward pass's (logsumexp, sum(do * o)) per query
//   ATTN_DQ     dq = scale sum_j P (do.v_j - D) k_j      (a query per invocation)
//   ATTN_DK     dk = scale sum_i P (do_i.v - D_i) q_i   (a key per invocation)
//   ATTN_DV     dv = sum_i P do_i                        (a key per invocation)
// with P = exp(scale q.k + mask - L) recomputed from the statistics. The
// workgroup's invocations share a (batch, head) and stage the other side's
// rows through shared memory (SHARED = 0 reads them from the buffers: on
// drivers where barriers are dear). Head size D and tile TB are
// specialization constants; tensors in the variant's dtype, f32 inside.
#include "common.glsl"
#include "dtype.glsl"

#define WG 64
layout(local_size_x = WG) in;
layout(constant_id = 0) const uint D = 64;
layout(constant_id = 1) const uint TB = 32;
layout(constant_id = 2) const uint SHARED = 1;

#if defined(ATTN_FWD)
layout(set = 0, binding = 0, std430) readonly buffer BufQ { TS q_[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufK { TS k_[]; };
layout(set = 0, binding = 2, std430) readonly buffer BufV { TS v_[]; };
layout(set = 0, binding = 3, std430) readonly buffer BufM { TS mask_[]; };
layout(set = 0, binding = 4, std430) writeonly buffer BufO { TS out_[]; };
#define QUERY_ROWS 1
#define USE_V 1
#elif defined(ATTN_STATS)
layout(set = 0, binding = 0, std430) readonly buffer BufQ { TS q_[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufK { TS k_[]; };
layout(set = 0, binding = 2, std430) readonly buffer BufO { TS o_[]; };
layout(set = 0, binding = 3, std430) readonly buffer BufDo { TS do_[]; };
layout(set = 0, binding = 4, std430) readonly buffer BufM { TS mask_[]; };
layout(set = 0, binding = 5, std430) writeonly buffer BufS { float stats_[]; };
#define QUERY_ROWS 1
#else
layout(set = 0, binding = 0, std430) readonly buffer BufDo { TS do_[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufQ { TS q_[]; };
layout(set = 0, binding = 2, std430) readonly buffer BufK { TS k_[]; };
layout(set = 0, binding = 3, std430) readonly buffer BufV { TS v_[]; };
layout(set = 0, binding = 4, std430) readonly buffer BufS { float stats_[]; };
layout(set = 0, binding = 5, std430) readonly buffer BufM { TS mask_[]; };
layout(set = 0, binding = 6, std430) writeonly buffer BufO { TS out_[]; };
#if defined(ATTN_DQ)
#define QUERY_ROWS 1
#define USE_V 1
#endif
#endif
layout(push_constant) uniform Push { loom_pc_attn p; };

#define NEG_INF uintBitsToFloat(0xff800000u)
#define POS_INF uintBitsToFloat(0x7f800000u)

// The last key query i sees, -1 for none.
int last_key(uint i)
{
    int last = int(p.nk) - 1;
    if (p.causal != 0u)
        last = min(last, int(i) + int(p.nk) - int(p.nq));
    return last;
}

float mask_at(uint b, uint h, uint i, uint j)
{
    return p.has_mask != 0u ? TLOAD(mask_[b * p.ms[0] + h * p.ms[1] + i * p.ms[2] + j * p.ms[3]]) : 0.0;
}

shared float sa_[TB * D];
shared float sb_[TB * D];
#if !defined(QUERY_ROWS)
shared float sl_[TB];
shared float sd_[TB];
#endif

#if defined(QUERY_ROWS)
// ---- one query per invocation: forward, statistics, dq ----------------------

// key row t of the tile at j0 (shared, or read from the buffer)
#define KEY(t, e) (SHARED != 0 ? sa_[(t) * D + (e)] : TLOAD(k_[kb + (j0 + (t)) * p.ks[2] + (e)]))
#define VAL(t, e) (SHARED != 0 ? sb_[(t) * D + (e)] : TLOAD(v_[kb + (j0 + (t)) * p.ks[2] + (e)]))

void main()
{
    if (p.nq == 0u || p.nk == 0u || p.hkv == 0u || p.hq == 0u)
        return; // a warm-up dispatch (zero push constants)
    uint bh = gl_WorkGroupID.y, b = bh / p.hq, h = bh % p.hq, hk = h / (p.hq / p.hkv);
    uint l = gl_LocalInvocationID.x, i = gl_WorkGroupID.x * WG + l;
    bool live = i < p.nq;
    uint ic = min(i, p.nq - 1);
    uint qb = b * p.qs[0] + h * p.qs[1] + ic * p.qs[2], kb = b * p.ks[0] + hk * p.ks[1];
    int last = last_key(ic);
    // the keys any query of the workgroup sees: a bound uniform over it
    int kend = last_key(min(gl_WorkGroupID.x * WG + WG - 1, p.nq - 1)) + 1;
    float qr[D], acc[D];
    [[unroll]] for (uint e = 0; e < D; e++) {
        qr[e] = TLOAD(q_[qb + e]);
        acc[e] = 0.0;
    }
#if defined(ATTN_DQ)
    float dor[D];
    [[unroll]] for (uint e = 0; e < D; e++)
        dor[e] = TLOAD(do_[qb + e]);
    float L = stats_[(bh * p.nq + ic) * 2], Dd = stats_[(bh * p.nq + ic) * 2 + 1];
#else
    float m = NEG_INF, lsum = 0.0;
#endif
    for (uint j0 = 0; j0 < uint(max(kend, 0)); j0 += TB) {
        uint nt = min(TB, uint(kend) - j0);
        if (SHARED != 0) {
            barrier();
            for (uint e = l; e < nt * D; e += WG) {
                uint r = e / D, c = e % D, at = kb + (j0 + r) * p.ks[2] + c;
                sa_[e] = TLOAD(k_[at]);
#if defined(USE_V)
                sb_[e] = TLOAD(v_[at]);
#endif
            }
            barrier();
        }
        if (!live)
            continue;
#if defined(ATTN_DQ)
        for (uint t = 0; t < nt; t++) {
            uint j = j0 + t;
            if (int(j) > last)
                break;
            float s = 0.0, dp = 0.0;
            [[unroll]] for (uint e = 0; e < D; e++) {
                s += qr[e] * KEY(t, e);
                dp += dor[e] * VAL(t, e);
            }
            float pr = exp(s * p.scale + mask_at(b, h, i, j) - L);
            float ds = pr * (dp - Dd);
            [[unroll]] for (uint e = 0; e < D; e++)
                acc[e] += ds * KEY(t, e);
        }
#else
        float sc[TB];
        float mt = m;
        for (uint t = 0; t < nt; t++) {
            uint j = j0 + t;
            float s = NEG_INF;
            if (int(j) <= last) {
                s = 0.0;
                [[unroll]] for (uint e = 0; e < D; e++)
                    s += qr[e] * KEY(t, e);
                s = s * p.scale + mask_at(b, h, i, j);
            }
            sc[t] = s;
            mt = max(mt, s);
        }
        if (mt == NEG_INF)
            continue; // nothing seen yet
        float corr = exp(m - mt);
        lsum *= corr;
#if defined(ATTN_FWD)
        [[unroll]] for (uint e = 0; e < D; e++)
            acc[e] *= corr;
#endif
        for (uint t = 0; t < nt; t++) {
            float pr = exp(sc[t] - mt);
            lsum += pr;
#if defined(ATTN_FWD)
            [[unroll]] for (uint e = 0; e < D; e++)
                acc[e] += pr * VAL(t, e);
#endif
        }
        m = mt;
#endif
    }
    if (!live)
        return;
#if defined(ATTN_FWD)
    float inv = lsum > 0.0 ? 1.0 / lsum : 0.0;
    [[unroll]] for (uint e = 0; e < D; e++)
        out_[qb + e] = TSTORE(acc[e] * inv);
#elif defined(ATTN_STATS)
    float dd = 0.0;
    [[unroll]] for (uint e = 0; e < D; e++)
        dd += TLOAD(o_[qb + e]) * TLOAD(do_[qb + e]);
    stats_[(bh * p.nq + i) * 2] = m == NEG_INF ? POS_INF : m + log(lsum);
    stats_[(bh * p.nq + i) * 2 + 1] = dd;
#else
    [[unroll]] for (uint e = 0; e < D; e++)
        out_[qb + e] = TSTORE(acc[e] * p.scale);
#endif
}

#else
// ---- one key per invocation: dk, dv ------------------------------------------

#define QRY(t, e) (SHARED != 0 ? sa_[(t) * D + (e)] : TLOAD(q_[qbase + (i0 + (t)) * p.qs[2] + (e)]))
#define DOUT(t, e) (SHARED != 0 ? sb_[(t) * D + (e)] : TLOAD(do_[qbase + (i0 + (t)) * p.qs[2] + (e)]))
#define LSE(t) (SHARED != 0 ? sl_[t] : stats_[(sbase + i0 + (t)) * 2])
#define DEL(t) (SHARED != 0 ? sd_[t] : stats_[(sbase + i0 + (t)) * 2 + 1])

void main()
{
    if (p.nq == 0u || p.nk == 0u || p.hkv == 0u || p.hq == 0u)
        return; // a warm-up dispatch (zero push constants)
    uint bk = gl_WorkGroupID.y, b = bk / p.hkv, hk = bk % p.hkv, group = p.hq / p.hkv;
    uint l = gl_LocalInvocationID.x, j = gl_WorkGroupID.x * WG + l;
    bool live = j < p.nk;
    uint jc = min(j, p.nk - 1);
    uint kb = b * p.ks[0] + hk * p.ks[1] + jc * p.ks[2];
    float kr[D], acc[D];
#if defined(ATTN_DK)
    float vr[D];
#endif
    [[unroll]] for (uint e = 0; e < D; e++) {
        kr[e] = TLOAD(k_[kb + e]);
#if defined(ATTN_DK)
        vr[e] = TLOAD(v_[kb + e]);
#endif
        acc[e] = 0.0;
    }
    // causal: query i sees key j iff i >= j - (nk - nq); the workgroup's
    // first key bounds where its queries start
    int shift = int(p.nk) - int(p.nq);
    uint jfirst = gl_WorkGroupID.x * WG;
    uint istart = p.causal != 0u ? uint(clamp(int(jfirst) - shift, 0, int(p.nq))) : 0u;
    istart = istart / TB * TB;
    for (uint h = hk * group; h < (hk + 1u) * group; h++) {
        uint qbase = b * p.qs[0] + h * p.qs[1], sbase = (b * p.hq + h) * p.nq;
        for (uint i0 = istart; i0 < p.nq; i0 += TB) {
            uint nt = min(TB, p.nq - i0);
            if (SHARED != 0) {
                barrier();
                for (uint e = l; e < nt * D; e += WG) {
                    uint r = e / D, c = e % D, at = qbase + (i0 + r) * p.qs[2] + c;
                    sa_[e] = TLOAD(q_[at]);
                    sb_[e] = TLOAD(do_[at]);
                }
                for (uint r = l; r < nt; r += WG) {
                    sl_[r] = stats_[(sbase + i0 + r) * 2];
                    sd_[r] = stats_[(sbase + i0 + r) * 2 + 1];
                }
                barrier();
            }
            if (!live)
                continue;
            for (uint t = 0; t < nt; t++) {
                uint i = i0 + t;
                if (p.causal != 0u && int(j) > int(i) + shift)
                    continue;
                float s = 0.0;
                [[unroll]] for (uint e = 0; e < D; e++)
                    s += QRY(t, e) * kr[e];
                float pr = exp(s * p.scale + mask_at(b, h, i, j) - LSE(t));
#if defined(ATTN_DV)
                [[unroll]] for (uint e = 0; e < D; e++)
                    acc[e] += pr * DOUT(t, e);
#else
                float dp = 0.0;
                [[unroll]] for (uint e = 0; e < D; e++)
                    dp += DOUT(t, e) * vr[e];
                float ds = pr * (dp - DEL(t));
                [[unroll]] for (uint e = 0; e < D; e++)
                    acc[e] += ds * QRY(t, e);
#endif
            }
        }
    }
    if (!live)
        return;
#if defined(ATTN_DV)
    [[unroll]] for (uint e = 0; e < D; e++)
        out_[kb + e] = TSTORE(acc[e]);
#else
    [[unroll]] for (uint e = 0; e < D; e++)
        out_[kb + e] = TSTORE(acc[e] * p.scale);
#endif
}
#endif
