/* The Sequential model: layers, weight initialization, and the training
 * and evaluation graphs compiled from them. */
#include "model.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/checked.h"
#include "../core/internal.h"

loom_status loom_sequential_create(loom_ctx *ctx, int64_t input_features, loom_sequential **out)
{
    if (!ctx || !out)
        return LOOM_E_INVALID;
    *out = NULL;
    if (input_features <= 0)
        return loom_fail(ctx, LOOM_E_SHAPE, "loom_sequential_create: %lld input features", (long long)input_features);
    loom_sequential *m = loom_calloc(ctx, 1, sizeof *m);
    if (!m)
        return loom_fail(ctx, LOOM_E_OOM, "loom_sequential_create: out of memory");
    m->ctx = ctx;
    m->in_features = input_features;
    *out = m;
    return LOOM_OK;
}

static void free_progs(loom_sequential *m)
{
    for (int i = 0; i < m->nprogs; i++) {
        loom_program_destroy(m->progs[i].p);
        loom_graph_destroy(m->progs[i].g);
    }
    m->nprogs = 0;
}

static void free_bufs(loom_sequential *m)
{
    loom_free(m->ctx, m->xbuf, m->xbuf_bytes);
    loom_free(m->ctx, m->ybuf, m->ybuf_bytes);
    loom_free(m->ctx, m->pbuf, m->ybuf_bytes);
    loom_free(m->ctx, m->tbuf, m->tbuf_bytes);
    m->xbuf = m->tbuf = NULL;
    m->ybuf = m->pbuf = NULL;
    m->xbuf_bytes = m->ybuf_bytes = m->tbuf_bytes = 0;
}

void loom_sequential_destroy(loom_sequential *m)
{
    if (!m)
        return;
    free_progs(m);
    loom_state_destroy(m->st);
    free(m->describe);
    free_bufs(m);
    loom_free(m->ctx, m, sizeof *m);
}

static loom_status add_layer(loom_sequential *m, layer l, const char *what)
{
    if (!m)
        return LOOM_E_INVALID;
    if (m->compiled)
        return loom_fail(m->ctx, LOOM_E_STATE, "%s: the model is already compiled", what);
    if (m->nlayers == LOOM_MAX_LAYERS)
        return loom_fail(m->ctx, LOOM_E_INVALID, "%s: more than %d layers", what, LOOM_MAX_LAYERS);
    m->layers[m->nlayers++] = l;
    return loom_model_describe(m);
}

loom_status loom_sequential_add_dense(loom_sequential *m, int64_t units, loom_activation act, loom_init init)
{
    if (m && units <= 0)
        return loom_fail(m->ctx, LOOM_E_SHAPE, "dense: %lld units", (long long)units);
    if (m && ((unsigned)act > LOOM_ACT_SOFTMAX || (unsigned)init > LOOM_INIT_HE_NORMAL))
        return loom_fail(m->ctx, LOOM_E_INVALID, "dense: unknown activation %d or init %d", (int)act, (int)init);
    layer l = {LAYER_DENSE, units, act, init, 0};
    return add_layer(m, l, "dense");
}

loom_status loom_sequential_add_dropout(loom_sequential *m, float rate)
{
    if (m && !(rate >= 0.0f && rate < 1.0f))
        return loom_fail(m->ctx, LOOM_E_INVALID, "dropout: rate %g outside [0, 1)", (double)rate);
    layer l = {LAYER_DROPOUT, 0, LOOM_ACT_NONE, LOOM_INIT_GLOROT_UNIFORM, rate};
    return add_layer(m, l, "dropout");
}

const char *loom_sequential_describe(loom_sequential *m)
{
    return m && m->describe ? m->describe : "";
}

static const char *act_names[] = {"linear", "relu", "sigmoid", "tanh", "gelu", "softmax"};
static const char *init_names[] = {"glorot_uniform", "he_normal"};

loom_status loom_model_describe(loom_sequential *m)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *layers = cJSON_AddArrayToObject(root, "layers");
    cJSON_AddNumberToObject(root, "input", (double)m->in_features);
    for (int i = 0; i < m->nlayers; i++) {
        const layer *l = &m->layers[i];
        cJSON *o = cJSON_CreateObject();
        if (l->kind == LAYER_DENSE) {
            cJSON_AddStringToObject(o, "type", "dense");
            cJSON_AddNumberToObject(o, "units", (double)l->units);
            cJSON_AddStringToObject(o, "activation", act_names[l->act]);
            cJSON_AddStringToObject(o, "init", init_names[l->init]);
        } else {
            cJSON_AddStringToObject(o, "type", "dropout");
            cJSON_AddNumberToObject(o, "rate", (double)l->rate);
        }
        cJSON_AddItemToArray(layers, o);
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!s)
        return loom_fail(m->ctx, LOOM_E_OOM, "sequential: out of memory describing the model");
    free(m->describe);
    m->describe = s;
    return LOOM_OK;
}

static int find_name(const char *const *names, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (s && !strcmp(names[i], s))
            return i;
    return -1;
}

/* Widths (inputs, units) a model file may give: beyond any dense layer
 * loom can hold, and within what a double converts to int64_t exactly. */
#define LOOM_ARCH_MAX_WIDTH 2147483647.0

loom_status loom_model_from_json(loom_ctx *ctx, const char *json, loom_sequential **out)
{
    cJSON *root = cJSON_Parse(json);
    loom_status s = LOOM_OK;
    loom_sequential *m = NULL;
    const cJSON *in = root ? cJSON_GetObjectItem(root, "input") : NULL;
    const cJSON *layers = root ? cJSON_GetObjectItem(root, "layers") : NULL;
    if (!cJSON_IsNumber(in) || !cJSON_IsArray(layers)) {
        s = loom_fail(ctx, LOOM_E_FORMAT, "model architecture: not a loom Sequential description: %.80s", json);
        goto out;
    }
    /* a double outside int64_t's range converts with undefined behaviour */
    if (!(in->valuedouble >= 1 && in->valuedouble <= LOOM_ARCH_MAX_WIDTH)) {
        s = loom_fail(ctx, LOOM_E_FORMAT, "model architecture: input width %g is outside [1, %.0f]", in->valuedouble,
                      LOOM_ARCH_MAX_WIDTH);
        goto out;
    }
    if ((s = loom_sequential_create(ctx, (int64_t)in->valuedouble, &m)) != LOOM_OK)
        goto out;
    const cJSON *l;
    cJSON_ArrayForEach(l, layers)
    {
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(l, "type"));
        if (type && !strcmp(type, "dense")) {
            const cJSON *units = cJSON_GetObjectItem(l, "units");
            int act = find_name(act_names, 6, cJSON_GetStringValue(cJSON_GetObjectItem(l, "activation")));
            int init = find_name(init_names, 2, cJSON_GetStringValue(cJSON_GetObjectItem(l, "init")));
            if (!cJSON_IsNumber(units) || !(units->valuedouble >= 1 && units->valuedouble <= LOOM_ARCH_MAX_WIDTH) ||
                act < 0 || init < 0) {
                s = loom_fail(ctx, LOOM_E_FORMAT, "model architecture: bad dense layer");
                goto out;
            }
            s = loom_sequential_add_dense(m, (int64_t)units->valuedouble, (loom_activation)act, (loom_init)init);
        } else if (type && !strcmp(type, "dropout")) {
            const cJSON *rate = cJSON_GetObjectItem(l, "rate");
            s = cJSON_IsNumber(rate) && fabs(rate->valuedouble) <= 1.0
                    ? loom_sequential_add_dropout(m, (float)rate->valuedouble)
                    : loom_fail(ctx, LOOM_E_FORMAT, "model architecture: bad dropout layer");
        } else {
            s = loom_fail(ctx, LOOM_E_FORMAT, "model architecture: unknown layer type \"%s\"", type ? type : "?");
        }
        if (s != LOOM_OK) {
            if (s != LOOM_E_OOM)
                s = LOOM_E_FORMAT;
            goto out;
        }
    }
out:
    cJSON_Delete(root);
    if (s != LOOM_OK) {
        loom_sequential_destroy(m);
        m = NULL;
    }
    *out = m;
    return s;
}

int64_t loom_model_outputs(const loom_sequential *m)
{
    int64_t n = m->in_features;
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].kind == LAYER_DENSE)
            n = m->layers[i].units;
    return n;
}

int64_t loom_sequential_outputs(const loom_sequential *m)
{
    return m ? loom_model_outputs(m) : 0;
}

loom_model_config loom_sequential_config(const loom_sequential *m)
{
    return m ? m->cfg : loom_model_config_default();
}

loom_state *loom_sequential_state(loom_sequential *m)
{
    return m ? m->st : NULL;
}

void loom_model_param_names(int l, char *kernel, char *bias, size_t n)
{
    snprintf(kernel, n, "dense%d/kernel", l);
    snprintf(bias, n, "dense%d/bias", l);
}

loom_model_config loom_model_config_default(void)
{
    loom_model_config c;
    memset(&c, 0, sizeof c);
    c.optimizer = loom_optimizer_default(LOOM_OPT_ADAM);
    c.loss = LOOM_LOSS_SPARSE_CE;
    c.batch = 32;
    c.seed = 42;
    return c;
}

/* ---- weights ------------------------------------------------------------ */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *s)
{
    return (double)(splitmix(s) >> 11) * (1.0 / 9007199254740992.0);
}

static loom_status init_weights(loom_sequential *m)
{
    uint64_t rng = m->cfg.seed * 0x2545f4914f6cdd1dULL + 1;
    int64_t in = m->in_features;
    int dense = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const layer *l = &m->layers[i];
        if (l->kind != LAYER_DENSE)
            continue;
        int64_t out = l->units;
        size_t wn, wb = 0;
        float *w = NULL, *b = NULL;
        if (!loom_mul_size((size_t)in, (size_t)out, &wn) && !loom_mul_size(wn, sizeof *w, &wb)) {
            w = loom_malloc(m->ctx, wb);
            b = loom_calloc(m->ctx, (size_t)out, sizeof *b);
        }
        if (!w || !b) {
            loom_free(m->ctx, w, wb);
            loom_free(m->ctx, b, (size_t)out * sizeof *b);
            return loom_fail(m->ctx, LOOM_E_OOM, "sequential: out of memory initializing dense%d [%lld,%lld]", dense,
                             (long long)in, (long long)out);
        }
        if (l->init == LOOM_INIT_GLOROT_UNIFORM) {
            double lim = sqrt(6.0 / (double)(in + out));
            for (int64_t k = 0; k < in * out; k++)
                w[k] = (float)((uniform01(&rng) * 2.0 - 1.0) * lim);
        } else {
            double sd = sqrt(2.0 / (double)in);
            for (int64_t k = 0; k < in * out; k++) {
                double u1 = uniform01(&rng), u2 = uniform01(&rng);
                w[k] = (float)(sd * sqrt(-2.0 * log(u1 + 1e-300)) * cos(6.283185307179586 * u2));
            }
        }
        char kn[64], bn[64];
        loom_model_param_names(dense, kn, bn, sizeof kn);
        int64_t ks[2] = {in, out}, bs[1] = {out};
        loom_status s = loom_state_write(m->st, kn, LOOM_F32, 2, ks, w);
        if (s == LOOM_OK)
            s = loom_state_write(m->st, bn, LOOM_F32, 1, bs, b);
        loom_free(m->ctx, w, wb);
        loom_free(m->ctx, b, (size_t)out * sizeof *b);
        if (s != LOOM_OK)
            return s;
        in = out;
        dense++;
    }
    return LOOM_OK;
}

/* ---- graphs ------------------------------------------------------------- */

static loom_tensor activate(loom_graph *g, loom_tensor h, loom_activation a)
{
    switch (a) {
    case LOOM_ACT_RELU: return loom_relu(g, h);
    case LOOM_ACT_SIGMOID: return loom_sigmoid(g, h);
    case LOOM_ACT_TANH: return loom_tanh(g, h);
    case LOOM_ACT_GELU: return loom_gelu(g, h);
    case LOOM_ACT_SOFTMAX: return loom_softmax(g, h);
    default: return h;
    }
}

/* Builds forward (+ loss, backward and updates when train). Outputs:
 * "loss" (when targets exist), "out" (eval: the model's output), "pred"
 * (argmax, classification). */
static loom_status build(loom_sequential *m, loom_graph *g, int train, int64_t batch)
{
    int64_t xs[2] = {batch, m->in_features};
    loom_tensor h = loom_input(g, "x", LOOM_F32, 2, xs);
    int64_t in = m->in_features;
    int dense = 0;
    int last_dense = -1;
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].kind == LAYER_DENSE)
            last_dense = i;
    loom_tensor logits = LOOM_NONE;
    for (int i = 0; i < m->nlayers; i++) {
        const layer *l = &m->layers[i];
        if (l->kind == LAYER_DROPOUT) {
            if (train && l->rate > 0.0f)
                h = loom_dropout(g, h, l->rate, (uint32_t)(m->cfg.seed * 2654435761u) + (uint32_t)i);
            continue;
        }
        char kn[64], bn[64];
        loom_model_param_names(dense++, kn, bn, sizeof kn);
        int64_t ks[2] = {in, l->units}, bs[1] = {l->units};
        h = loom_add(g, loom_matmul(g, h, loom_param(g, kn, LOOM_F32, 2, ks, 1), 0, 0),
                     loom_param(g, bn, LOOM_F32, 1, bs, 1));
        if (i == last_dense)
            logits = h;
        h = activate(g, h, l->act);
        in = l->units;
    }
    int classify = m->cfg.loss != LOOM_LOSS_MSE;
    int softmax_out = last_dense >= 0 && m->layers[last_dense].act == LOOM_ACT_SOFTMAX;
    int64_t outs = loom_model_outputs(m);
    loom_tensor loss = LOOM_NONE;
    if (m->cfg.loss == LOOM_LOSS_SPARSE_CE) {
        int64_t ls[1] = {batch};
        loom_tensor labels = loom_input(g, "labels", LOOM_I32, 1, ls);
        /* On a softmax output, the loss comes from the logits: the same
         * value as Keras's cross-entropy of the probabilities, stable. */
        loss = softmax_out ? loom_sparse_cross_entropy(g, logits, labels)
                           : loom_sparse_cross_entropy(g, h, labels);
    } else {
        int64_t ts[2] = {batch, outs};
        loom_tensor t = loom_input(g, "targets", LOOM_F32, 2, ts);
        if (m->cfg.loss == LOOM_LOSS_CE)
            loss = softmax_out ? loom_cross_entropy(g, logits, t)
                               : loom_scale(g, loom_sum_all(g, loom_mul(g, t, loom_log(g, h))),
                                            -1.0f / (float)batch);
        else
            loss = loom_mse(g, h, t);
    }
    loom_output(g, loss, "loss");
    if (classify)
        loom_output(g, loom_argmax(g, h, -1), "pred");
    if (!train) {
        loom_output(g, h, "out");
    } else {
        LOOM_TRY(loom_backward(g, loss, NULL, 0));
        LOOM_TRY(loom_optimize(g, &m->cfg.optimizer));
    }
    return loom_graph_status(g);
}

loom_status loom_model_prog(loom_sequential *m, int train, int64_t batch, model_prog **out)
{
    for (int i = 0; i < m->nprogs; i++)
        if (m->progs[i].train == train && m->progs[i].batch == batch) {
            *out = &m->progs[i];
            return LOOM_OK;
        }
    if (m->nprogs == LOOM_MAX_PROGS) {
        /* Keep the two main programs (first compiled), recycle the rest. */
        model_prog *v = &m->progs[LOOM_MAX_PROGS - 1];
        loom_program_destroy(v->p);
        loom_graph_destroy(v->g);
        m->nprogs--;
    }
    model_prog *mp = &m->progs[m->nprogs];
    memset(mp, 0, sizeof *mp);
    mp->train = train;
    mp->batch = batch;
    LOOM_TRY(loom_graph_create(m->ctx, &mp->g));
    loom_status s = build(m, mp->g, train, batch);
    if (s == LOOM_OK) {
        loom_compile_opts o = {0};
        o.profile = m->cfg.profile;
        s = loom_compile(mp->g, m->dev, m->st, &o, &mp->p);
    } else {
        s = loom_fail(m->ctx, s, "sequential: building the %s graph: %s", train ? "training" : "evaluation",
                      loom_graph_error(mp->g));
    }
    if (s != LOOM_OK) {
        loom_graph_destroy(mp->g);
        mp->g = NULL;
        return s;
    }
    m->nprogs++;
    *out = mp;
    return LOOM_OK;
}

loom_status loom_sequential_compile(loom_sequential *m, loom_device *dev, const loom_model_config *cfg)
{
    if (!m || !dev)
        return m ? loom_fail(m->ctx, LOOM_E_INVALID, "loom_sequential_compile: NULL device") : LOOM_E_INVALID;
    if (m->compiled)
        return loom_fail(m->ctx, LOOM_E_STATE, "loom_sequential_compile: already compiled");
    int dense = 0;
    for (int i = 0; i < m->nlayers; i++)
        dense += m->layers[i].kind == LAYER_DENSE;
    if (!dense)
        return loom_fail(m->ctx, LOOM_E_INVALID, "loom_sequential_compile: the model has no dense layer");
    m->cfg = cfg ? *cfg : loom_model_config_default();
    if (m->cfg.batch <= 0 || m->cfg.batch > INT32_MAX)
        return loom_fail(m->ctx, LOOM_E_INVALID, "loom_sequential_compile: batch %lld is outside [1, %d]",
                         (long long)m->cfg.batch, INT32_MAX);
    /* The batch buffers, sized by a batch a file may give: every product
     * checked, through the context's allocator. */
    int64_t outs = loom_model_outputs(m), b = m->cfg.batch;
    size_t xb, yb, tb;
    if (loom_mul_size((size_t)b, (size_t)m->in_features, &xb) || loom_mul_size(xb, sizeof(float), &xb) ||
        loom_mul_size((size_t)b, sizeof(int32_t), &yb) || loom_mul_size((size_t)b, (size_t)outs, &tb) ||
        loom_mul_size(tb, sizeof(float), &tb))
        return loom_fail(m->ctx, LOOM_E_OOM, "loom_sequential_compile: batch %lld of %lld inputs and %lld outputs "
                         "is too large for this machine", (long long)b, (long long)m->in_features, (long long)outs);
    m->dev = dev;
    LOOM_TRY(loom_state_create(dev, &m->st));
    m->xbuf = loom_malloc(m->ctx, xb);
    m->ybuf = loom_malloc(m->ctx, yb);
    m->pbuf = loom_malloc(m->ctx, yb);
    m->tbuf = loom_malloc(m->ctx, tb);
    m->xbuf_bytes = xb;
    m->ybuf_bytes = yb;
    m->tbuf_bytes = tb;
    loom_status s = LOOM_OK;
    model_prog *mp;
    if (!m->xbuf || !m->ybuf || !m->pbuf || !m->tbuf)
        s = loom_fail(m->ctx, LOOM_E_OOM, "loom_sequential_compile: out of memory for batch %lld", (long long)b);
    if (s == LOOM_OK)
        s = init_weights(m);
    if (s == LOOM_OK)
        s = loom_model_prog(m, 1, b, &mp);
    if (s == LOOM_OK)
        s = loom_model_prog(m, 0, b, &mp);
    if (s != LOOM_OK) {
        free_progs(m);
        free_bufs(m);
        loom_state_destroy(m->st);
        m->st = NULL;
        return s;
    }
    m->compiled = 1;
    return LOOM_OK;
}
