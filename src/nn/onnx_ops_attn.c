/* The Attention builder (opset 23): loom's fused attention where it
 * holds the node, and otherwise the composition ONNX's reference spells
 * out (batched matmuls, softcap, the masks as a tensor, a softmax): value
 * heads of another size than the query's, a softcap, past and present
 * keys and values, a padding length per batch, the scores as an output. */
#include "onnx_ops.h"

#ifdef LOOM_ONNX_SEQ

#include <math.h>
#include <string.h>

typedef struct attn_node {
    int64_t causal, qh, kvh, mode;
    int has_qh, has_kvh;
    float scale, softcap;
    int rank;                  /* of q: 3 ([B, N, H*D]) or 4 ([B, H, N, D]) */
    loom_dtype dt;
} attn_node;

/* [B, N, H*D] as [B, H, N, D] (bhnd) or [B, N, H, D] */
static loom_tensor split_heads(loom_graph *g, loom_tensor t, int64_t heads, int bhnd)
{
    int64_t s[4] = {loom_tensor_dim(g, t, 0), loom_tensor_dim(g, t, 1), heads, loom_tensor_dim(g, t, 2) / heads};
    static const int swap[4] = {0, 2, 1, 3};
    t = loom_reshape(g, t, 4, s);
    return bhnd ? loom_transpose(g, t, swap) : t;
}

/* The mask as an additive float tensor of dt: a boolean mask is 0 where
 * true and -inf where false. */
static loom_status additive_mask(ox *b, ox_val *mv, loom_dtype dt, loom_tensor *out)
{
    if (mv->type != LOOM_ONNX_BOOL)
        return ox_tensor(b, mv, dt, out);
    loom_tensor mb;
    LOOM_TRY(ox_tensor(b, mv, dt, &mb));
    *out = loom_where(b->g, mb, ox_scalar(b, 0, dt), ox_scalar(b, -INFINITY, dt));
    return LOOM_OK;
}

/* 0 where key j is seen by query i (j <= i + offset), -inf where not:
 * [nq, nk] of dt. */
static loom_status causal_mask(ox *b, int64_t nq, int64_t nk, int64_t offset, loom_dtype dt, loom_tensor *out)
{
    uint64_t cells = (uint64_t)nq * (uint64_t)nk;
    if (cells > ((uint64_t)1 << 28))
        return ox_fail(b, LOOM_E_UNSUPPORTED, "a causal mask of %lld x %lld", (long long)nq, (long long)nk);
    float *c = loom_malloc(b->ctx, (size_t)cells * sizeof *c);
    if (!c)
        return ox_fail(b, LOOM_E_OOM, "out of memory");
    for (int64_t i = 0; i < nq; i++)
        for (int64_t j = 0; j < nk; j++)
            c[i * nk + j] = j <= i + offset ? 0.0f : -INFINITY;
    int64_t cs[2] = {nq, nk};
    loom_tensor cm = loom_constant(b->g, NULL, LOOM_F32, 2, cs, c);
    loom_free(b->ctx, c, (size_t)cells * sizeof *c);
    *out = dt != LOOM_F32 ? loom_cast(b->g, cm, dt) : cm;
    return LOOM_OK;
}

/* nonpad_kv_seqlen [B] as [B, 1, 1, nk]: 0 for the keys below each
 * batch's length, -inf from it on. */
static loom_status padding_mask(ox *b, ox_val *lv, int64_t batch, int64_t nk, loom_dtype dt, loom_tensor *out)
{
    loom_graph *g = b->g;
    loom_tensor len;
    LOOM_TRY(ox_tensor(b, lv, dt, &len));
    if (loom_tensor_ndim(g, len) != 1 || loom_tensor_dim(g, len, 0) != batch)
        return ox_fail(b, LOOM_E_SHAPE, "nonpad_kv_seqlen must be [%lld]", (long long)batch);
    float *pos = loom_malloc(b->ctx, (size_t)nk * sizeof *pos);
    if (!pos)
        return ox_fail(b, LOOM_E_OOM, "out of memory");
    for (int64_t j = 0; j < nk; j++)
        pos[j] = (float)j;
    int64_t ps[4] = {1, 1, 1, nk}, ls[4] = {batch, 1, 1, 1};
    loom_tensor p = loom_constant(g, NULL, LOOM_F32, 4, ps, pos);
    loom_free(b->ctx, pos, (size_t)nk * sizeof *pos);
    if (dt != LOOM_F32)
        p = loom_cast(g, p, dt);
    loom_tensor seen = loom_lt(g, p, loom_reshape(g, len, 4, ls));
    *out = loom_where(g, seen, ox_scalar(b, 0, dt), ox_scalar(b, -INFINITY, dt));
    return LOOM_OK;
}

static loom_status attention_composed(ox *b, const attn_node *a, loom_tensor tq, loom_tensor tk, loom_tensor tv)
{
    loom_graph *g = b->g;
    loom_dtype dt = a->dt;
    int64_t B = loom_tensor_dim(g, tq, 0);
    if (a->rank == 3) {
        tq = split_heads(g, tq, a->qh, 1);
        tk = split_heads(g, tk, a->kvh, 1);
        tv = split_heads(g, tv, a->kvh, 1);
    }
    LOOM_TRY(ox_check_graph(b));
    int64_t hq = loom_tensor_dim(g, tq, 1), hkv = loom_tensor_dim(g, tk, 1);
    int64_t d = loom_tensor_dim(g, tq, 3), past = 0;
    ox_val *pk = ox_in(b, 4), *pv = ox_in(b, 5);
    if ((pk != NULL) != (pv != NULL))
        return ox_fail(b, LOOM_E_FORMAT, "past_key and past_value come together");
    if (pk) {
        loom_tensor tpk, tpv;
        LOOM_TRY(ox_tensor(b, pk, dt, &tpk));
        LOOM_TRY(ox_tensor(b, pv, dt, &tpv));
        if (loom_tensor_ndim(g, tpk) != 4 || loom_tensor_ndim(g, tpv) != 4)
            return ox_fail(b, LOOM_E_SHAPE, "past_key and past_value must be [B, kv heads, past, head size]");
        past = loom_tensor_dim(g, tpk, 2);
        loom_tensor ks[2] = {tpk, tk}, vs[2] = {tpv, tv};
        tk = loom_concat(g, 2, ks, 2);
        tv = loom_concat(g, 2, vs, 2);
    }
    LOOM_TRY(ox_check_graph(b));
    if (ox_out(b, 1))
        LOOM_TRY(ox_set_num(b, 1, tk, ox_in(b, 0)->type));
    if (ox_out(b, 2))
        LOOM_TRY(ox_set_num(b, 2, tv, ox_in(b, 0)->type));
    int64_t nq = loom_tensor_dim(g, tq, 2), nk = loom_tensor_dim(g, tk, 2);
    if (hkv < 1 || hq % hkv)
        return ox_fail(b, LOOM_E_SHAPE, "%lld query heads are no multiple of %lld key-value heads", (long long)hq,
                       (long long)hkv);
    if (hq != hkv) {
        /* each query head reads the key-value head of its group */
        if (hq > 1024)
            return ox_fail(b, LOOM_E_UNSUPPORTED, "%lld query heads", (long long)hq);
        int32_t heads[1024];
        for (int64_t h = 0; h < hq; h++)
            heads[h] = (int32_t)(h / (hq / hkv));
        loom_tensor idx = loom_constant(g, NULL, LOOM_I32, 1, &hq, heads);
        tk = loom_take(g, tk, idx, 1);
        tv = loom_take(g, tv, idx, 1);
    }
    float scale = a->scale != 0 ? a->scale : 1.0f / sqrtf((float)d);
    loom_tensor s = loom_scale(g, loom_matmul(g, tq, tk, 0, 1), scale);
    if (a->softcap > 0)
        s = loom_scale(g, loom_tanh(g, loom_scale(g, s, 1.0f / a->softcap)), a->softcap);
    loom_tensor qk = s, bias = LOOM_NONE;
    ox_val *mv = ox_in(b, 3);
    if (mv) {
        LOOM_TRY(additive_mask(b, mv, dt, &bias));
        int mr = loom_tensor_ndim(g, bias);
        int64_t mk = loom_tensor_dim(g, bias, mr - 1);
        if (mk > nk)
            return ox_fail(b, LOOM_E_SHAPE, "the mask covers %lld keys of %lld", (long long)mk, (long long)nk);
        if (mk < nk) {
            int64_t lo[LOOM_MAX_DIMS] = {0}, hi[LOOM_MAX_DIMS] = {0};
            hi[mr - 1] = nk - mk;
            bias = loom_pad(g, bias, lo, hi, LOOM_PAD_CONSTANT, -INFINITY);
        }
    }
    if (a->causal) {
        loom_tensor cm;
        LOOM_TRY(causal_mask(b, nq, nk, past, dt, &cm));
        bias = bias.id ? loom_add(g, bias, cm) : cm;
    }
    ox_val *lv = ox_in(b, 6);
    if (lv) {
        loom_tensor pm;
        LOOM_TRY(padding_mask(b, lv, B, nk, dt, &pm));
        bias = bias.id ? loom_add(g, bias, pm) : pm;
    }
    if (bias.id)
        s = loom_add(g, s, bias);
    loom_tensor p = loom_softmax(g, s);
    if (ox_out(b, 3)) {
        /* as the reference: mode 2 the scores with the masks, 3 the
         * softmax, otherwise the (softcapped) scaled product */
        loom_tensor o3 = a->mode == 2 ? s : a->mode == 3 ? p : qk;
        if (a->mode == 2 && !bias.id)
            o3 = qk;
        LOOM_TRY(ox_set_num(b, 3, o3, ox_in(b, 0)->type));
    }
    loom_tensor y = loom_matmul(g, p, tv, 0, 0);
    if (a->rank == 3) {
        static const int swap[4] = {0, 2, 1, 3};
        y = loom_transpose(g, y, swap);
        int64_t s3[3] = {B, nq, hq * loom_tensor_dim(g, tv, 3)};
        y = loom_reshape(g, y, 3, s3);
    }
    return ox_set_num(b, 0, y, ox_in(b, 0)->type);
}

/* q [B, Hq, Nq, D], k and v [B, Hkv, Nk, D], or the 3-D [B, N, H * D]
 * forms with q_num_heads / kv_num_heads; an additive or boolean mask;
 * causal with the upper-left alignment ONNX uses. */
loom_status oxb_attention(ox *b)
{
    attn_node a;
    int64_t sp;
    LOOM_TRY(ox_attr_int(b, "is_causal", 0, &a.causal, NULL));
    LOOM_TRY(ox_attr_int(b, "q_num_heads", 0, &a.qh, &a.has_qh));
    LOOM_TRY(ox_attr_int(b, "kv_num_heads", 0, &a.kvh, &a.has_kvh));
    LOOM_TRY(ox_attr_int(b, "qk_matmul_output_mode", 0, &a.mode, NULL));
    LOOM_TRY(ox_attr_float(b, "scale", 0, &a.scale, NULL));
    LOOM_TRY(ox_attr_float(b, "softcap", 0, &a.softcap, NULL));
    LOOM_TRY(ox_attr_int(b, "softmax_precision", 0, &sp, NULL));
    ox_val *q, *k, *v;
    LOOM_TRY(ox_need(b, 0, &q));
    LOOM_TRY(ox_need(b, 1, &k));
    LOOM_TRY(ox_need(b, 2, &v));
    a.dt = ox_float_dt(b, q);
    loom_tensor tq, tk, tv, tm = LOOM_NONE;
    LOOM_TRY(ox_tensor(b, q, a.dt, &tq));
    LOOM_TRY(ox_tensor(b, k, a.dt, &tk));
    LOOM_TRY(ox_tensor(b, v, a.dt, &tv));
    loom_graph *g = b->g;
    a.rank = loom_tensor_ndim(g, tq);
    if (a.rank != 3 && a.rank != 4)
        return ox_fail(b, LOOM_E_SHAPE, "q has rank %d (3 or 4 expected)", a.rank);
    if (loom_tensor_ndim(g, tk) != a.rank || loom_tensor_ndim(g, tv) != a.rank)
        return ox_fail(b, LOOM_E_SHAPE, "q, k and v have ranks %d, %d and %d", a.rank, loom_tensor_ndim(g, tk),
                       loom_tensor_ndim(g, tv));
    if (a.rank == 3 && (!a.has_qh || !a.has_kvh || a.qh < 1 || a.kvh < 1))
        return ox_fail(b, LOOM_E_FORMAT, "3-D inputs need q_num_heads and kv_num_heads");
    int64_t dq = a.rank == 3 ? loom_tensor_dim(g, tq, 2) / a.qh : loom_tensor_dim(g, tq, 3);
    int64_t dv = a.rank == 3 ? loom_tensor_dim(g, tv, 2) / a.kvh : loom_tensor_dim(g, tv, 3);
    int seq_axis = a.rank == 3 ? 1 : 2;
    int64_t nq = loom_tensor_dim(g, tq, seq_axis), nk = loom_tensor_dim(g, tk, seq_axis);
    ox_val *mv = ox_in(b, 3);
    int mask_short = 0;
    if (mv) {
        int mr;
        int64_t ms[OX_MAX_RANK];
        ox_shape(b, mv, &mr, ms);
        mask_short = mr < 1 || ms[mr - 1] != nk;
    }
    /* what the fused op does not hold goes the long way */
    if (a.softcap != 0 || dq != dv || mask_short || ox_in(b, 4) || ox_in(b, 5) || ox_in(b, 6) || ox_out(b, 1) ||
        ox_out(b, 2) || ox_out(b, 3))
        return attention_composed(b, &a, tq, tk, tv);
    int64_t B = loom_tensor_dim(g, tq, 0);
    loom_attention_opts o = loom_attention_opts_default();
    o.scale = a.scale;
    if (a.rank == 3) {
        tq = split_heads(g, tq, a.qh, 0);
        tk = split_heads(g, tk, a.kvh, 0);
        tv = split_heads(g, tv, a.kvh, 0);
        o.layout = LOOM_LAYOUT_BNHD;
    }
    LOOM_TRY(ox_check_graph(b));
    if (mv)
        LOOM_TRY(additive_mask(b, mv, a.dt, &tm));
    if (a.causal && nq == nk) {
        o.causal = 1;
    } else if (a.causal) {
        loom_tensor cm;
        LOOM_TRY(causal_mask(b, nq, nk, 0, a.dt, &cm));
        tm = tm.id ? loom_add(g, tm, cm) : cm;
    }
    loom_tensor y = loom_attention(g, tq, tk, tv, tm, &o);
    if (a.rank == 3) {
        int64_t s3[3] = {B, nq, loom_tensor_dim(g, y, 2) * loom_tensor_dim(g, y, 3)};
        y = loom_reshape(g, y, 3, s3);
    }
    return ox_set_num(b, 0, y, q->type);
}
#endif
