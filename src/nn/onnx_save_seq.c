/* The ONNX export of the sequence layers (seq_layers.c), at opset 17, as
 * the same arithmetic loom's graphs do: patches as a Gather of the
 * image's pixels, token embeddings as a Gather of the table, learned
 * positions added, LayerNormalization (RMS norm composed), multi-head
 * self-attention from MatMul, Softmax and the causal mask as a constant
 * (grouped-query heads by a Gather of the key-value heads), the pre-norm
 * blocks with their feed-forward layers, pooling over the sequence, and
 * LSTM and GRU as ONNX's own ops (batch-first layout; GRU with
 * linear_before_reset, as loom's cell). Rotary embeddings have no op at
 * opset 17 and are refused. */
#include "onnx_save.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct seqx {
    saver *s;
    loom_sequential *m;
    Onnx__GraphProto *g;
    int layer;
    const char *sc;
    const nn_seq_layer *l;
    const nn_shape *in;
    int tmp;                   /* counter of the layer's value names */
} seqx;

/* A fresh value name under the layer's scope. */
static const char *fresh(seqx *x, const char *what, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s_%d", x->sc, what, x->tmp++);
    return buf;
}

/* Weight `w` of the layer ("attn/wq") as an initializer; its full name in
 * buf. */
static loom_status wt(seqx *x, const char *w, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", x->sc, w);
    int np = loom_model_layer_nparams(x->m, x->layer);
    for (int k = 0; k < np; k++) {
        model_param p;
        loom_model_layer_param(x->m, x->layer, k, &p);
        if (!strcmp(p.name, buf))
            return oxs_weight(x->s, x->m->st, x->g, p.name, p.ndim, p.shape);
    }
    return loom_fail(x->s->ctx, LOOM_E_STATE, "loom_onnx_save: %s has no weight \"%s\"", x->sc, buf);
}

/* op(a, b) -> a fresh value in out */
static Onnx__NodeProto *op2(seqx *x, const char *op, const char *a, const char *b, char *out, size_t n)
{
    char name[192];
    fresh(x, op, out, n);
    snprintf(name, sizeof name, "%s/op", out);
    return oxs_node(x->s, x->g, op, name, a, b, out);
}

/* in W + b (MatMul broadcasts over the leading dims) */
static loom_status linear(seqx *x, const char *in, const char *w, const char *b, char *out, size_t n)
{
    char wn[192], bn[192], mm[192];
    LOOM_TRY(wt(x, w, wn, sizeof wn));
    op2(x, "MatMul", in, wn, mm, sizeof mm);
    if (!b) {
        snprintf(out, n, "%s", mm);
        return LOOM_OK;
    }
    LOOM_TRY(wt(x, b, bn, sizeof bn));
    op2(x, "Add", mm, bn, out, n);
    return LOOM_OK;
}

static void shape_const(seqx *x, int nd, const int64_t *v, char *name, size_t n)
{
    fresh(x, "shape", name, n);
    oxs_ints_init(x->s, x->g, name, 1, nd, v);
}

static void reshape(seqx *x, const char *in, int nd, const int64_t *to, char *out, size_t n)
{
    char shp[192];
    shape_const(x, nd, to, shp, sizeof shp);
    op2(x, "Reshape", in, shp, out, n);
}

static void transpose(seqx *x, const char *in, const int64_t perm[4], char *out, size_t n)
{
    oxs_attr_ints(x->s, op2(x, "Transpose", in, NULL, out, n), "perm", 4, perm);
}

static loom_status norm(seqx *x, const char *in, const char *prefix, int rms, float eps, char *out, size_t n)
{
    char gw[64], bw[64], gn[192], bn[192];
    snprintf(gw, sizeof gw, "%sgamma", prefix);
    snprintf(bw, sizeof bw, "%sbeta", prefix);
    LOOM_TRY(wt(x, gw, gn, sizeof gn));
    if (!rms) {
        LOOM_TRY(wt(x, bw, bn, sizeof bn));
        Onnx__NodeProto *nd = op2(x, "LayerNormalization", in, gn, out, n);
        oxs_add_input(x->s, nd, bn);
        oxs_attr_int(x->s, nd, "axis", -1);
        oxs_attr_float(x->s, nd, "epsilon", eps);
        return LOOM_OK;
    }
    /* x / sqrt(mean(x^2) + eps) gamma */
    char sq[192], ms[192], e[192], pe[192], rt[192], dv[192];
    op2(x, "Mul", in, in, sq, sizeof sq);
    int64_t last = -1;
    Onnx__NodeProto *rm = op2(x, "ReduceMean", sq, NULL, ms, sizeof ms);
    oxs_attr_ints(x->s, rm, "axes", 1, &last);
    oxs_attr_int(x->s, rm, "keepdims", 1);
    fresh(x, "eps", e, sizeof e);
    oxs_scalar_init(x->s, x->g, e, eps);
    op2(x, "Add", ms, e, pe, sizeof pe);
    op2(x, "Sqrt", pe, NULL, rt, sizeof rt);
    op2(x, "Div", in, rt, dv, sizeof dv);
    op2(x, "Mul", dv, gn, out, n);
    return LOOM_OK;
}

/* Multi-head self-attention of in [N, T, D]; the weights under prefix. */
static loom_status attention(seqx *x, const char *in, const char *prefix, char *out, size_t n)
{
    const nn_seq_layer *l = x->l;
    if (l->rope)
        return loom_fail(x->s->ctx, LOOM_E_UNSUPPORTED, "loom_onnx_save: %s uses rotary position embeddings, which "
                         "have no ONNX op at opset 17", x->sc);
    int64_t t = x->in->d[0], d = x->in->d[1], dh = d / l->heads, kvh = l->kv_heads ? l->kv_heads : l->heads;
    static const char *const w[8] = {"wq", "bq", "wk", "bk", "wv", "bv", "wo", "bo"};
    char wn[8][64];
    for (int i = 0; i < 8; i++)
        snprintf(wn[i], sizeof wn[i], "%s%s", prefix, w[i]);
    static const int64_t heads_first[4] = {0, 2, 1, 3}, kt[4] = {0, 1, 3, 2};
    char p[3][192], r[3][192], hf[3][192];
    for (int j = 0; j < 3; j++) {
        int64_t to[4] = {0, t, j ? kvh : l->heads, dh};
        LOOM_TRY(linear(x, in, wn[2 * j], wn[2 * j + 1], p[j], sizeof p[j]));
        reshape(x, p[j], 4, to, r[j], sizeof r[j]);
        transpose(x, r[j], heads_first, hf[j], sizeof hf[j]);
    }
    if (kvh != l->heads) {
        /* each query head reads the key-value head of its group */
        if (l->heads > 4096)
            return loom_fail(x->s->ctx, LOOM_E_UNSUPPORTED, "loom_onnx_save: %s has %lld heads", x->sc,
                             (long long)l->heads);
        int64_t idx[4096];
        for (int64_t h = 0; h < l->heads; h++)
            idx[h] = h / (l->heads / kvh);
        char in_name[192];
        fresh(x, "kv_heads", in_name, sizeof in_name);
        oxs_ints_init(x->s, x->g, in_name, 1, (int)l->heads, idx);
        for (int j = 1; j < 3; j++) {
            char gth[192];
            oxs_attr_int(x->s, op2(x, "Gather", hf[j], in_name, gth, sizeof gth), "axis", 1);
            snprintf(hf[j], sizeof hf[j], "%s", gth);
        }
    }
    char ktr[192], sc[192], scaled[192], sm[192], av[192], back[192], flat[192], sn[192];
    transpose(x, hf[1], kt, ktr, sizeof ktr);
    op2(x, "MatMul", hf[0], ktr, sc, sizeof sc);
    fresh(x, "scale", sn, sizeof sn);
    oxs_scalar_init(x->s, x->g, sn, 1.0f / sqrtf((float)dh));
    op2(x, "Mul", sc, sn, scaled, sizeof scaled);
    if (l->causal) {
        uint64_t cells = (uint64_t)t * (uint64_t)t;
        float *mask = loom_malloc(x->s->ctx, (size_t)cells * sizeof *mask);
        if (!mask)
            return loom_fail(x->s->ctx, LOOM_E_OOM, "loom_onnx_save: out of memory for %s's mask", x->sc);
        for (int64_t i = 0; i < t; i++)
            for (int64_t j = 0; j < t; j++)
                mask[i * t + j] = j <= i ? 0.0f : -INFINITY;
        char mn[192], masked[192];
        int64_t ms[2] = {t, t};
        fresh(x, "causal", mn, sizeof mn);
        oxs_f32_init(x->s, x->g, mn, 2, ms, mask);
        loom_free(x->s->ctx, mask, (size_t)cells * sizeof *mask);
        op2(x, "Add", scaled, mn, masked, sizeof masked);
        snprintf(scaled, sizeof scaled, "%s", masked);
    }
    oxs_attr_int(x->s, op2(x, "Softmax", scaled, NULL, sm, sizeof sm), "axis", -1);
    op2(x, "MatMul", sm, hf[2], av, sizeof av);
    transpose(x, av, heads_first, back, sizeof back);
    int64_t to[3] = {0, t, d};
    reshape(x, back, 3, to, flat, sizeof flat);
    return linear(x, flat, wn[6], wn[7], out, n);
}

/* x + attention(norm1(x)), then + ffn(norm2(x)) */
static loom_status block(seqx *x, const char *in, char *out, size_t n)
{
    const nn_seq_layer *l = x->l;
    char n1[192], a[192], r1[192], n2[192], f1[192], f[192], f2[192];
    LOOM_TRY(norm(x, in, "norm1/", l->rms, l->eps, n1, sizeof n1));
    LOOM_TRY(attention(x, n1, "attn/", a, sizeof a));
    op2(x, "Add", in, a, r1, sizeof r1);
    LOOM_TRY(norm(x, r1, "norm2/", l->rms, l->eps, n2, sizeof n2));
    LOOM_TRY(linear(x, n2, "ffn/w1", "ffn/b1", f1, sizeof f1));
    if (l->act == SEQ_ACT_SWIGLU) {
        /* silu(gate) up */
        char gt[192], sg[192], si[192];
        LOOM_TRY(linear(x, n2, "ffn/wg", "ffn/bg", gt, sizeof gt));
        op2(x, "Sigmoid", gt, NULL, sg, sizeof sg);
        op2(x, "Mul", gt, sg, si, sizeof si);
        op2(x, "Mul", si, f1, f, sizeof f);
    } else if (l->act == SEQ_ACT_RELU) {
        op2(x, "Relu", f1, NULL, f, sizeof f);
    } else {
        char sc[96];
        snprintf(sc, sizeof sc, "%s/ffn", x->sc);
        oxs_activation(x->s, x->g, LOOM_ACT_GELU, sc, f1, f, sizeof f);
    }
    LOOM_TRY(linear(x, f, "ffn/w2", "ffn/b2", f2, sizeof f2));
    op2(x, "Add", r1, f2, out, n);
    return LOOM_OK;
}

/* an image's size x size patches, row-major, in row-major order */
static loom_status patches(seqx *x, const char *in, char *out, size_t n)
{
    const nn_seq_layer *l = x->l;
    int64_t px = l->rows * l->cols, pc = l->cols / l->size, k = 0;
    int64_t *perm = loom_malloc(x->s->ctx, (size_t)px * sizeof *perm);
    if (!perm)
        return loom_fail(x->s->ctx, LOOM_E_OOM, "loom_onnx_save: out of memory for %s", x->sc);
    for (int64_t p = 0; p < px / (l->size * l->size); p++)
        for (int64_t r = 0; r < l->size; r++)
            for (int64_t c = 0; c < l->size; c++)
                perm[k++] = ((p / pc) * l->size + r) * l->cols + (p % pc) * l->size + c;
    char idx[192], flat[192], gth[192];
    fresh(x, "pixels", idx, sizeof idx);
    oxs_ints_init(x->s, x->g, idx, 1, (int)px, perm);
    loom_free(x->s->ctx, perm, (size_t)px * sizeof *perm);
    int64_t to2[2] = {0, px}, to3[3] = {0, px / (l->size * l->size), l->size * l->size};
    reshape(x, in, 2, to2, flat, sizeof flat);
    oxs_attr_int(x->s, op2(x, "Gather", flat, idx, gth, sizeof gth), "axis", 1);
    reshape(x, gth, 3, to3, out, n);
    return LOOM_OK;
}

/* The gates' weights of an LSTM (i, o, f, c) or a GRU (z, r, n), from
 * loom's [F, U] / [U, U] kernels, as ONNX's W [1, G U, F], R [1, G U, U]
 * and B [1, 2 G U]. */
static loom_status rnn_weights(seqx *x, int lstm, char *wname, char *rname, char *bname, size_t n)
{
    const nn_seq_layer *l = x->l;
    int64_t f = x->in->d[1], u = l->units;
    static const char *const lg[4] = {"i", "o", "f", "g"}, *const gg[3] = {"z", "r", "n"};
    int gates = lstm ? 4 : 3;
    size_t wn = (size_t)(gates * u * f), rn = (size_t)(gates * u * u), bn = (size_t)(2 * gates * u);
    size_t tmpn = (size_t)(f > u ? f : u) * (size_t)u;
    float *w = loom_calloc(x->s->ctx, wn + rn + bn + tmpn, sizeof *w);
    if (!w)
        return loom_fail(x->s->ctx, LOOM_E_OOM, "loom_onnx_save: out of memory for %s", x->sc);
    float *r = w + wn, *b = r + rn, *tmp = b + bn;
    loom_status st = LOOM_OK;
    for (int q = 0; q < gates && st == LOOM_OK; q++) {
        const char *gname = lstm ? lg[q] : gg[q];
        char name[192];
        snprintf(name, sizeof name, "%s/w_%s", x->sc, gname);
        st = loom_state_read(x->m->st, name, tmp, (size_t)(f * u) * sizeof *tmp);
        for (int64_t a = 0; st == LOOM_OK && a < u; a++)
            for (int64_t c = 0; c < f; c++)
                w[(q * u + a) * f + c] = tmp[c * u + a];
        snprintf(name, sizeof name, "%s/u_%s", x->sc, gname);
        if (st == LOOM_OK)
            st = loom_state_read(x->m->st, name, tmp, (size_t)(u * u) * sizeof *tmp);
        for (int64_t a = 0; st == LOOM_OK && a < u; a++)
            for (int64_t c = 0; c < u; c++)
                r[(q * u + a) * u + c] = tmp[c * u + a];
        snprintf(name, sizeof name, "%s/b_%s", x->sc, gname);
        if (st == LOOM_OK)
            st = loom_state_read(x->m->st, name, b + q * u, (size_t)u * sizeof *b);
    }
    if (st == LOOM_OK && !lstm) {
        /* the candidate's recurrent bias: inside r (linear_before_reset) */
        char name[192];
        snprintf(name, sizeof name, "%s/b_hn", x->sc);
        st = loom_state_read(x->m->st, name, b + 5 * u, (size_t)u * sizeof *b);
    }
    if (st == LOOM_OK) {
        int64_t ws[3] = {1, gates * u, f}, rs[3] = {1, gates * u, u}, bs[2] = {1, 2 * gates * u};
        oxs_f32_init(x->s, x->g, fresh(x, "W", wname, n), 3, ws, w);
        oxs_f32_init(x->s, x->g, fresh(x, "R", rname, n), 3, rs, r);
        oxs_f32_init(x->s, x->g, fresh(x, "B", bname, n), 2, bs, b);
    }
    loom_free(x->s->ctx, w, (wn + rn + bn + tmpn) * sizeof *w);
    return st;
}

static loom_status recurrent(seqx *x, const char *in, char *out, size_t n)
{
    const nn_seq_layer *l = x->l;
    int lstm = l->kind == SEQ_LSTM;
    char wn[192], rn[192], bn[192], y[192], yh[192], name[192];
    LOOM_TRY(rnn_weights(x, lstm, wn, rn, bn, sizeof wn));
    fresh(x, "Y", y, sizeof y);
    fresh(x, "Y_h", yh, sizeof yh);
    snprintf(name, sizeof name, "%s/%s", x->sc, lstm ? "lstm" : "gru");
    Onnx__NodeProto *nd = oxs_node(x->s, x->g, lstm ? "LSTM" : "GRU", name, in, wn, y);
    oxs_add_input(x->s, nd, rn);
    oxs_add_input(x->s, nd, bn);
    if (nd)
        oxs_push(x->s, &nd->n_output, (void ***)&nd->output, oxs_str(x->s, yh));
    oxs_attr_int(x->s, nd, "hidden_size", l->units);
    oxs_attr_int(x->s, nd, "layout", 1);
    if (!lstm)
        oxs_attr_int(x->s, nd, "linear_before_reset", 1);
    /* batch first: Y [N, T, 1, U], Y_h [N, 1, U] */
    if (l->return_sequences) {
        int64_t to[3] = {0, x->in->d[0], l->units};
        reshape(x, y, 3, to, out, n);
    } else {
        int64_t to[2] = {0, l->units};
        reshape(x, yh, 2, to, out, n);
    }
    return LOOM_OK;
}

loom_status oxs_seq_layer(saver *s, loom_sequential *m, Onnx__GraphProto *g, int i, const char *sc,
                          const nn_shape *in, const char *cur, char *out, size_t n)
{
    seqx x = {s, m, g, i, sc, &m->layers[i].seq, in, 0};
    const nn_seq_layer *l = x.l;
    switch (l->kind) {
    case SEQ_PATCHES:
        return patches(&x, cur, out, n);
    case SEQ_EMBEDDING: {
        /* the inputs' values are the ids */
        char tn[192], ids[192];
        LOOM_TRY(wt(&x, "table", tn, sizeof tn));
        oxs_attr_int(s, op2(&x, "Cast", cur, NULL, ids, sizeof ids), "to", LOOM_ONNX_INT64);
        oxs_attr_int(s, op2(&x, "Gather", tn, ids, out, n), "axis", 0);
        return LOOM_OK;
    }
    case SEQ_POSITION: {
        char tn[192];
        LOOM_TRY(wt(&x, "table", tn, sizeof tn));
        op2(&x, "Add", cur, tn, out, n);
        return LOOM_OK;
    }
    case SEQ_LAYER_NORM:
    case SEQ_RMS_NORM:
        return norm(&x, cur, "", l->kind == SEQ_RMS_NORM, l->eps, out, n);
    case SEQ_ATTENTION:
        return attention(&x, cur, "", out, n);
    case SEQ_ENCODER:
    case SEQ_DECODER:
        return block(&x, cur, out, n);
    case SEQ_POOL: {
        if (l->pool == SEQ_POOL_MEAN) {
            int64_t ax = 1;
            Onnx__NodeProto *nd = op2(&x, "ReduceMean", cur, NULL, out, n);
            oxs_attr_ints(s, nd, "axes", 1, &ax);
            oxs_attr_int(s, nd, "keepdims", 0);
            return LOOM_OK;
        }
        int64_t at = l->pool == SEQ_POOL_FIRST ? 0 : in->d[0] - 1;
        char idx[192];
        fresh(&x, "step", idx, sizeof idx);
        oxs_ints_init(s, g, idx, 0, 1, &at);
        oxs_attr_int(s, op2(&x, "Gather", cur, idx, out, n), "axis", 1);
        return LOOM_OK;
    }
    case SEQ_LSTM:
    case SEQ_GRU:
        return recurrent(&x, cur, out, n);
    default:
        return loom_fail(s->ctx, LOOM_E_UNSUPPORTED, "loom_onnx_save: layer %d (%s) has no ONNX form in loom's export",
                         i, sc);
    }
}
