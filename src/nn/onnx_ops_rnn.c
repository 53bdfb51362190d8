/* LSTM, GRU and RNN, unrolled over the (static) sequence into loom's
 * matmuls and element-wise ops: the weights are split per gate at load
 * (W, R, B must be known: initializers), the input projection of every
 * step is one matmul, each step two per gate. Directions forward, reverse
 * and bidirectional; layouts 0 and 1; the default activations and those
 * ONNX lists that loom has; clip. */
#include "onnx_ops.h"

#include <math.h>
#include <string.h>

#define RNN_MAX_STEPS 4096

typedef enum { ACT_SIGMOID, ACT_TANH, ACT_RELU, ACT_HARD_SIGMOID, ACT_LEAKY_RELU, ACT_SOFTSIGN, ACT_SOFTPLUS,
               ACT_ELU, ACT_AFFINE, ACT_SCALED_TANH } rnn_act_kind;

typedef struct rnn_act {
    rnn_act_kind kind;
    float alpha, beta;
} rnn_act;

static loom_tensor apply(ox *b, const rnn_act *a, loom_tensor x, loom_dtype dt)
{
    loom_graph *g = b->g;
    switch (a->kind) {
    case ACT_SIGMOID: return loom_sigmoid(g, x);
    case ACT_TANH: return loom_tanh(g, x);
    case ACT_RELU: return loom_relu(g, x);
    case ACT_HARD_SIGMOID:
        return loom_clamp(g, loom_add(g, loom_scale(g, x, a->alpha), ox_scalar(b, a->beta, dt)), 0.0f, 1.0f);
    case ACT_LEAKY_RELU: return loom_leaky_relu(g, x, a->alpha);
    case ACT_SOFTSIGN: return loom_softsign(g, x);
    case ACT_SOFTPLUS: return loom_softplus(g, x);
    case ACT_ELU: return loom_elu(g, x, a->alpha);
    case ACT_AFFINE: return loom_add(g, loom_scale(g, x, a->alpha), ox_scalar(b, a->beta, dt));
    case ACT_SCALED_TANH: return loom_scale(g, loom_tanh(g, loom_scale(g, x, a->beta)), a->alpha);
    }
    return x;
}

/* The node's activations: `count` per direction, defaults when absent. */
static loom_status activations(ox *b, int count, int dirs, const rnn_act_kind *defaults, rnn_act *out)
{
    const Onnx__NodeProto *nd = b->node;
    const Onnx__AttributeProto *acts = NULL;
    for (size_t i = 0; i < nd->n_attribute; i++)
        if (nd->attribute[i]->name && !strcmp(nd->attribute[i]->name, "activations"))
            acts = nd->attribute[i];
    ox_attr_ignore(b, "activations");
    const float *al, *be;
    size_t nal, nbe;
    LOOM_TRY(ox_attr_floats(b, "activation_alpha", &al, &nal, NULL));
    LOOM_TRY(ox_attr_floats(b, "activation_beta", &be, &nbe, NULL));
    static const struct {
        const char *name;
        rnn_act_kind kind;
        float alpha, beta;
    } known[] = {
        {"Sigmoid", ACT_SIGMOID, 0, 0},          {"Tanh", ACT_TANH, 0, 0},
        {"Relu", ACT_RELU, 0, 0},                {"HardSigmoid", ACT_HARD_SIGMOID, 0.2f, 0.5f},
        {"LeakyRelu", ACT_LEAKY_RELU, 0.01f, 0}, {"Softsign", ACT_SOFTSIGN, 0, 0},
        {"Softplus", ACT_SOFTPLUS, 0, 0},        {"Elu", ACT_ELU, 1.0f, 0},
        {"Affine", ACT_AFFINE, 1.0f, 0},         {"ScaledTanh", ACT_SCALED_TANH, 1.0f, 1.0f},
    };
    if (acts && acts->n_strings && acts->n_strings != (size_t)(count * dirs))
        return ox_fail(b, LOOM_E_FORMAT, "attribute 'activations' has %zu names for %d directions of %d", acts->n_strings,
                       dirs, count);
    size_t ai = 0, bi = 0;
    for (int i = 0; i < count * dirs; i++) {
        if (!acts || !acts->n_strings) {
            out[i].kind = defaults[i % count];
            out[i].alpha = out[i].beta = 0;
            continue;
        }
        const ProtobufCBinaryData *s = &acts->strings[i];
        int found = -1;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            if (s->len == strlen(known[k].name) && !memcmp(s->data, known[k].name, s->len))
                found = (int)k;
        if (found < 0)
            return ox_fail(b, LOOM_E_UNSUPPORTED, "attribute 'activations': \"%.*s\" is not supported",
                           (int)(s->len < 40 ? s->len : 40), (const char *)s->data);
        out[i].kind = known[found].kind;
        out[i].alpha = known[found].alpha;
        out[i].beta = known[found].beta;
        /* alpha / beta are consumed in order by the activations that take them */
        int takes_a = out[i].kind >= ACT_HARD_SIGMOID && out[i].kind != ACT_SOFTSIGN && out[i].kind != ACT_SOFTPLUS;
        int takes_b = out[i].kind == ACT_HARD_SIGMOID || out[i].kind == ACT_AFFINE || out[i].kind == ACT_SCALED_TANH;
        if (takes_a && ai < nal)
            out[i].alpha = al[ai++];
        if (takes_b && bi < nbe)
            out[i].beta = be[bi++];
    }
    return LOOM_OK;
}

/* Gate g of direction d of a known [dirs, gates * H, K] weight, as a [K, H]
 * constant (transposed for x [B, K] x it). */
static loom_status gate_weight(ox *b, const ox_const *w, int d, int gate, int64_t H, loom_dtype dt, loom_tensor *out)
{
    int64_t K = w->shape[2], G = w->shape[1];
    float *m = loom_malloc(b->ctx, (size_t)(K * H) * sizeof *m);
    if (!m)
        return ox_fail(b, LOOM_E_OOM, "out of memory");
    for (int64_t r = 0; r < H; r++)
        for (int64_t k = 0; k < K; k++)
            m[k * H + r] = (float)ox_const_get(w, (d * G + gate * H + r) * K + k);
    int64_t s[2] = {K, H};
    loom_tensor t = loom_constant(b->g, NULL, LOOM_F32, 2, s, m);
    loom_free(b->ctx, m, (size_t)(K * H) * sizeof *m);
    *out = dt == LOOM_F32 ? t : loom_cast(b->g, t, dt);
    return ox_check_graph(b);
}

/* A bias of direction d: Wb + Rb for gate (or one of them alone) as [H]. */
static loom_tensor gate_bias(ox *b, const ox_const *bias, int d, int gate, int64_t H, int gates, int which,
                             loom_dtype dt)
{
    float *v = loom_calloc(b->ctx, (size_t)H, sizeof *v);
    if (!v)
        return LOOM_NONE;
    int any = 0;
    for (int64_t r = 0; bias && r < H; r++) {
        int64_t base = d * 2 * gates * H;
        double wb = ox_const_get(bias, base + gate * H + r), rb = ox_const_get(bias, base + (gates + gate) * H + r);
        v[r] = (float)(which == 0 ? wb + rb : which == 1 ? wb : rb);
        any |= v[r] != 0;
    }
    int64_t s[1] = {H};
    loom_tensor t = any ? loom_constant(b->g, NULL, LOOM_F32, 1, s, v) : LOOM_NONE;
    loom_free(b->ctx, v, (size_t)H * sizeof *v);
    return t.id && dt != LOOM_F32 ? loom_cast(b->g, t, dt) : t;
}

/* Gate k of direction d of a run-time [dirs, gates * H, K] weight: [H, K]. */
static loom_status rt_gate(ox *b, loom_tensor w, int d, int k, int64_t H, loom_tensor *out)
{
    loom_tensor t;
    LOOM_TRY(ox_slice_axis(b, w, 0, d, 1, &t));
    LOOM_TRY(ox_slice_axis(b, t, 1, k * H, H, &t));
    int64_t s[2] = {H, loom_tensor_dim(b->g, w, 2)};
    *out = loom_reshape(b->g, t, 2, s);
    return ox_check_graph(b);
}

/* Part k (of 2 * gates) of direction d of a run-time [dirs, 2 gates H] bias: [H]. */
static loom_status rt_bias(ox *b, loom_tensor bias, int d, int k, int64_t H, loom_tensor *out)
{
    loom_tensor t;
    LOOM_TRY(ox_slice_axis(b, bias, 0, d, 1, &t));
    LOOM_TRY(ox_slice_axis(b, t, 1, k * H, H, &t));
    int64_t s[1] = {H};
    *out = loom_reshape(b->g, t, 1, s);
    return ox_check_graph(b);
}

typedef enum { CELL_RNN, CELL_GRU, CELL_LSTM } cell_kind;

static loom_status recurrent(ox *b, cell_kind kind)
{
    static const int ngates[3] = {1, 3, 4};
    int gates = ngates[kind];
    int64_t hidden, layout, lbr = 0, input_forget = 0;
    float clip;
    int has_clip, has_hidden;
    const char *dir;
    LOOM_TRY(ox_attr_int(b, "hidden_size", 0, &hidden, &has_hidden));
    LOOM_TRY(ox_attr_int(b, "layout", 0, &layout, NULL));
    LOOM_TRY(ox_attr_float(b, "clip", 0, &clip, &has_clip));
    LOOM_TRY(ox_attr_string(b, "direction", "forward", &dir));
    if (kind == CELL_GRU)
        LOOM_TRY(ox_attr_int(b, "linear_before_reset", 0, &lbr, NULL));
    if (kind == CELL_LSTM)
        LOOM_TRY(ox_attr_int(b, "input_forget", 0, &input_forget, NULL));
    if (input_forget)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "attribute 'input_forget' = 1 is not supported");
    int dirs = !strcmp(dir, "bidirectional") ? 2 : 1, reverse = !strcmp(dir, "reverse");
    if (dirs == 1 && !reverse && strcmp(dir, "forward"))
        return ox_fail(b, LOOM_E_FORMAT, "attribute 'direction' = \"%s\"", dir);
    static const rnn_act_kind d_rnn[1] = {ACT_TANH}, d_gru[2] = {ACT_SIGMOID, ACT_TANH},
                              d_lstm[3] = {ACT_SIGMOID, ACT_TANH, ACT_TANH};
    const rnn_act_kind *defs = kind == CELL_RNN ? d_rnn : kind == CELL_GRU ? d_gru : d_lstm;
    int nact = kind == CELL_RNN ? 1 : kind == CELL_GRU ? 2 : 3;
    rnn_act act[6];
    LOOM_TRY(activations(b, nact, dirs, defs, act));
    ox_val *x, *wv, *rv, *bv = ox_in(b, 3), *lens = ox_in(b, 4), *h0v = ox_in(b, 5);
    ox_val *c0v = kind == CELL_LSTM ? ox_in(b, 6) : NULL, *pv = kind == CELL_LSTM ? ox_in(b, 7) : NULL;
    LOOM_TRY(ox_need(b, 0, &x));
    LOOM_TRY(ox_need(b, 1, &wv));
    LOOM_TRY(ox_need(b, 2, &rv));
    loom_status s;
    const ox_const *W = ox_known(b, wv, &s), *R, *B = NULL;
    if (s != LOOM_OK)
        return s;
    R = ox_known(b, rv, &s);
    if (s != LOOM_OK)
        return s;
    if (bv) {
        B = ox_known(b, bv, &s);
        if (s != LOOM_OK)
            return s;
    }
    /* computed at run time, they are sliced per gate in the graph */
    int known = W && R && (!bv || B);
    int wn, rn, bn;
    int64_t ws[OX_MAX_RANK], rs[OX_MAX_RANK], bsh[OX_MAX_RANK];
    ox_shape(b, wv, &wn, ws);
    ox_shape(b, rv, &rn, rs);
    if (bv)
        ox_shape(b, bv, &bn, bsh);
    if (wn != 3 || rn != 3 || ws[0] != dirs || rs[0] != dirs)
        return ox_fail(b, LOOM_E_SHAPE, "W and R must be [%d, %d * hidden, ...]", dirs, gates);
    int64_t H = has_hidden ? hidden : ws[1] / gates;
    if (ws[1] != gates * H || rs[1] != gates * H || rs[2] != H ||
        (bv && (bn != 2 || bsh[0] != dirs || bsh[1] != 2 * gates * H)))
        return ox_fail(b, LOOM_E_SHAPE, "W, R, B do not fit hidden_size %lld", (long long)H);
    loom_dtype dt = ox_float_dt(b, x);
    loom_tensor tx;
    LOOM_TRY(ox_tensor(b, x, dt, &tx));
    loom_graph *g = b->g;
    if (loom_tensor_ndim(g, tx) != 3)
        return ox_fail(b, LOOM_E_SHAPE, "X must be 3-D");
    if (layout) {
        int perm[3] = {1, 0, 2};
        tx = loom_transpose(g, tx, perm);
    }
    int64_t T = loom_tensor_dim(g, tx, 0), Bt = loom_tensor_dim(g, tx, 1), I = loom_tensor_dim(g, tx, 2);
    if (ws[2] != I)
        return ox_fail(b, LOOM_E_SHAPE, "W's input size %lld, X's %lld", (long long)ws[2], (long long)I);
    loom_tensor tW = LOOM_NONE, tR = LOOM_NONE, tB = LOOM_NONE, tP = LOOM_NONE;
    if (pv) {
        if (ox_rank(b, pv) != 2 || ox_dim(b, pv, 0) != dirs || ox_dim(b, pv, 1) != 3 * H)
            return ox_fail(b, LOOM_E_SHAPE, "P must be [%d, 3 * %lld]", dirs, (long long)H);
        LOOM_TRY(ox_tensor(b, pv, dt, &tP));
    }
    /* R multiplies a hidden state: none with one step from zero */
    int recurs = T > 1 || h0v;
    if (!known) {
        LOOM_TRY(ox_tensor(b, wv, dt, &tW));
        if (recurs)
            LOOM_TRY(ox_tensor(b, rv, dt, &tR));
        if (bv)
            LOOM_TRY(ox_tensor(b, bv, dt, &tB));
    }
    if (T > RNN_MAX_STEPS)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "%lld steps (loom unrolls at most %d)", (long long)T, RNN_MAX_STEPS);
    /* shorter sequences: a step updates the state of rows t < len only,
     * and their outputs are 0 past it */
    loom_tensor tlen = LOOM_NONE;
    if (lens) {
        ox_const *kl = ox_known(b, lens, &s);
        if (s != LOOM_OK)
            return s;
        int full = kl != NULL;
        for (int64_t i = 0; kl && i < kl->n; i++)
            full &= ox_const_geti(kl, i) == T;
        if (!full) {
            LOOM_TRY(ox_tensor(b, lens, dt, &tlen));
            int64_t s2l[2] = {Bt, 1};
            tlen = loom_reshape(g, tlen, 2, s2l);
        }
    }
    /* initial states [dirs, B, H] */
    loom_tensor h0 = LOOM_NONE, c0 = LOOM_NONE;
    if (h0v)
        LOOM_TRY(ox_tensor(b, h0v, dt, &h0));
    if (c0v)
        LOOM_TRY(ox_tensor(b, c0v, dt, &c0));
    int64_t s2[2] = {T * Bt, I}, bh[2] = {Bt, H};
    loom_tensor x2 = loom_reshape(g, tx, 2, s2);
    loom_tensor yd[2], hd[2], cd[2];
    for (int d = 0; d < dirs; d++) {
        int back = reverse || d == 1;
        const rnn_act *fa = &act[d * nact];
        loom_tensor wg[4], rg[4], bg[4], wbh = LOOM_NONE, rbh = LOOM_NONE;
        int tb = !known; /* run-time gates are [H, K]: multiplied transposed */
        for (int k = 0; k < gates; k++) {
            if (known) {
                LOOM_TRY(gate_weight(b, W, d, k, H, dt, &wg[k]));
                LOOM_TRY(gate_weight(b, R, d, k, H, dt, &rg[k]));
                bg[k] = B ? gate_bias(b, B, d, k, H, gates, 0, dt) : LOOM_NONE;
                continue;
            }
            LOOM_TRY(rt_gate(b, tW, d, k, H, &wg[k]));
            rg[k] = LOOM_NONE;
            if (recurs)
                LOOM_TRY(rt_gate(b, tR, d, k, H, &rg[k]));
            bg[k] = LOOM_NONE;
            if (tB.id) {
                loom_tensor wb, rb;
                LOOM_TRY(rt_bias(b, tB, d, k, H, &wb));
                LOOM_TRY(rt_bias(b, tB, d, gates + k, H, &rb));
                bg[k] = loom_add(g, wb, rb);
                if (kind == CELL_GRU && lbr && k == 2) {
                    wbh = wb;
                    rbh = rb;
                }
            }
        }
        if (known && kind == CELL_GRU && lbr && B) {
            /* the h gate keeps Wb and Rb apart: Rb is inside r (.) (...) */
            wbh = gate_bias(b, B, d, 2, H, gates, 1, dt);
            rbh = gate_bias(b, B, d, 2, H, gates, 2, dt);
        }
        /* x W^T for every step at once, per gate: [T * B, H] */
        loom_tensor xp[4];
        for (int k = 0; k < gates; k++)
            xp[k] = loom_matmul(g, x2, wg[k], 0, tb);
        LOOM_TRY(ox_check_graph(b));
        loom_tensor h, c = LOOM_NONE;
        if (h0.id) {
            LOOM_TRY(ox_slice_axis(b, h0, 0, d, 1, &h));
            h = loom_reshape(g, h, 2, bh);
        } else {
            h = LOOM_NONE;
        }
        if (kind == CELL_LSTM) {
            if (c0.id) {
                LOOM_TRY(ox_slice_axis(b, c0, 0, d, 1, &c));
                c = loom_reshape(g, c, 2, bh);
            }
        }
        /* peepholes i, o, f of this direction */
        loom_tensor pi = LOOM_NONE, po = LOOM_NONE, pf = LOOM_NONE;
        if (tP.id) {
            LOOM_TRY(rt_bias(b, tP, d, 0, H, &pi));
            LOOM_TRY(rt_bias(b, tP, d, 1, H, &po));
            LOOM_TRY(rt_bias(b, tP, d, 2, H, &pf));
        }
        loom_tensor *steps = loom_calloc(b->ctx, (size_t)T, sizeof *steps);
        if (!steps)
            return ox_fail(b, LOOM_E_OOM, "out of memory");
        s = LOOM_OK;
        for (int64_t i = 0; i < T && s == LOOM_OK; i++) {
            int64_t t = back ? T - 1 - i : i;
            loom_tensor prev_c = c;
            loom_tensor pre[4];
            for (int k = 0; k < gates && s == LOOM_OK; k++)
                s = ox_slice_axis(b, xp[k], 0, t * Bt, Bt, &pre[k]);
            if (s != LOOM_OK)
                break;
            /* pre-activations: x W^T + h R^T + biases */
            loom_tensor hr[4] = {LOOM_NONE, LOOM_NONE, LOOM_NONE, LOOM_NONE};
            for (int k = 0; k < gates; k++) {
                if (h.id && !(kind == CELL_GRU && k == 2))
                    hr[k] = loom_matmul(g, h, rg[k], 0, tb);
                loom_tensor p = hr[k].id ? loom_add(g, pre[k], hr[k]) : pre[k];
                if (bg[k].id && !(kind == CELL_GRU && k == 2 && lbr))
                    p = loom_add(g, p, bg[k]);
                /* GRU's h gate is clipped once it is whole, below */
                pre[k] = has_clip && !(kind == CELL_GRU && k == 2) ? loom_clamp(g, p, -clip, clip) : p;
            }
            loom_tensor hn;
            if (kind == CELL_RNN) {
                hn = apply(b, &fa[0], pre[0], dt);
            } else if (kind == CELL_GRU) {
                /* gates z, r, h */
                loom_tensor z = apply(b, &fa[0], pre[0], dt), r = apply(b, &fa[0], pre[1], dt), hh;
                if (!h.id) {
                    loom_tensor p = pre[2];
                    if (lbr) {
                        if (rbh.id)
                            p = loom_add(g, p, loom_mul(g, r, rbh));
                        if (wbh.id)
                            p = loom_add(g, p, wbh);
                    }
                    if (has_clip)
                        p = loom_clamp(g, p, -clip, clip);
                    hh = apply(b, &fa[1], p, dt);
                    hn = loom_mul(g, loom_sub(g, ox_scalar(b, 1, dt), z), hh);
                } else {
                    loom_tensor p = pre[2];
                    if (lbr) {
                        loom_tensor q = loom_matmul(g, h, rg[2], 0, tb);
                        if (rbh.id)
                            q = loom_add(g, q, rbh);
                        p = loom_add(g, p, loom_mul(g, r, q));
                        if (wbh.id)
                            p = loom_add(g, p, wbh);
                    } else {
                        p = loom_add(g, p, loom_matmul(g, loom_mul(g, r, h), rg[2], 0, tb));
                    }
                    if (has_clip)
                        p = loom_clamp(g, p, -clip, clip);
                    hh = apply(b, &fa[1], p, dt);
                    hn = loom_add(g, loom_mul(g, loom_sub(g, ox_scalar(b, 1, dt), z), hh), loom_mul(g, z, h));
                }
            } else {
                /* gates i, o, f, c; peepholes see the cell before (i, f)
                 * and after (o) the step */
                if (pi.id && c.id) {
                    pre[0] = loom_add(g, pre[0], loom_mul(g, pi, c));
                    pre[2] = loom_add(g, pre[2], loom_mul(g, pf, c));
                }
                loom_tensor ig = apply(b, &fa[0], pre[0], dt);
                loom_tensor fg = apply(b, &fa[0], pre[2], dt), cg = apply(b, &fa[1], pre[3], dt);
                loom_tensor cn = loom_mul(g, ig, cg);
                if (c.id)
                    cn = loom_add(g, loom_mul(g, fg, c), cn);
                c = cn;
                if (po.id)
                    pre[1] = loom_add(g, pre[1], loom_mul(g, po, c));
                loom_tensor og = apply(b, &fa[0], pre[1], dt);
                hn = loom_mul(g, og, apply(b, &fa[2], c, dt));
            }
            if (tlen.id) {
                loom_tensor on = loom_lt(g, ox_scalar(b, (double)t, dt), tlen); /* [B, 1] */
                loom_tensor zero = ox_scalar(b, 0, dt);
                steps[t] = loom_where(g, on, hn, zero);
                hn = loom_where(g, on, hn, h.id ? h : zero);
                if (kind == CELL_LSTM)
                    c = loom_where(g, on, c, prev_c.id ? prev_c : zero);
                h = hn;
            } else {
                h = hn;
                steps[t] = h;
            }
            s = ox_check_graph(b);
        }
        if (s == LOOM_OK && ox_out(b, 0)) {
            /* Y: [T, 1, B, H] of this direction */
            int64_t s4[4] = {1, 1, Bt, H};
            for (int64_t t = 0; t < T; t++)
                steps[t] = loom_reshape(g, steps[t], 4, s4);
            s = ox_concat(b, (int)T, steps, 0, &yd[d]);
        }
        loom_free(b->ctx, steps, (size_t)T * sizeof *steps);
        LOOM_TRY(s);
        int64_t s3[3] = {1, Bt, H};
        hd[d] = loom_reshape(g, h, 3, s3);
        cd[d] = kind == CELL_LSTM ? loom_reshape(g, c, 3, s3) : LOOM_NONE;
    }
    LOOM_TRY(ox_check_graph(b));
    if (ox_out(b, 0)) {
        loom_tensor y;
        LOOM_TRY(ox_concat(b, dirs, yd, 1, &y)); /* [T, dirs, B, H] */
        if (layout) {
            int perm[4] = {2, 0, 1, 3};    /* [B, T, dirs, H] */
            y = loom_transpose(g, y, perm);
        }
        LOOM_TRY(ox_set_num(b, 0, y, x->type));
    }
    if (ox_out(b, 1)) {
        loom_tensor yh;
        LOOM_TRY(ox_concat(b, dirs, hd, 0, &yh)); /* [dirs, B, H] */
        if (layout) {
            int perm[3] = {1, 0, 2};
            yh = loom_transpose(g, yh, perm);
        }
        LOOM_TRY(ox_set_num(b, 1, yh, x->type));
    }
    if (kind == CELL_LSTM && ox_out(b, 2)) {
        loom_tensor yc;
        LOOM_TRY(ox_concat(b, dirs, cd, 0, &yc));
        if (layout) {
            int perm[3] = {1, 0, 2};
            yc = loom_transpose(g, yc, perm);
        }
        LOOM_TRY(ox_set_num(b, 2, yc, x->type));
    }
    return LOOM_OK;
}

loom_status oxb_rnn(ox *b) { return recurrent(b, CELL_RNN); }
loom_status oxb_gru(ox *b) { return recurrent(b, CELL_GRU); }
loom_status oxb_lstm(ox *b) { return recurrent(b, CELL_LSTM); }
