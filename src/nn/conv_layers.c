/* The Sequential model's layers of convolutional networks: conv2d,
 * pooling, batch norm, flatten, activation and spatial dropout. Their
 * shapes (checked as they are added), their JSON, their parameters and
 * their graphs; and the training augmentation of image models. Built on
 * include/loom.h alone. */
#include "model.h"
#include "nn_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- shapes ------------------------------------------------------------------ */

static int64_t conv_out(int64_t n, int64_t k, int64_t s, int64_t d, int same)
{
    if (same)
        return (n + s - 1) / s;
    int64_t span = n - d * (k - 1) - 1;
    return span < 0 ? 0 : span / s + 1;
}

static const char *shape_text(char *buf, size_t n, int nd, const int64_t *s)
{
    return loom_shape_str(buf, n, nd, s);
}

loom_status loom_model_conv_shape(loom_ctx *ctx, layer *l, const char *what)
{
    char a[96];
    shape_text(a, sizeof a, l->in_ndim, l->in_shape);
    int image = l->in_ndim == 3;
    l->out_ndim = l->in_ndim;
    memcpy(l->out_shape, l->in_shape, sizeof l->out_shape);
    switch (l->kind) {
    case LAYER_ACTIVATION:
    case LAYER_BATCH_NORM:
        return LOOM_OK;
    case LAYER_FLATTEN:
        /* whatever the rank: images, sequences */
        l->out_ndim = 1;
        for (int i = 1; i < l->in_ndim; i++)
            l->out_shape[0] *= l->in_shape[i];
        return LOOM_OK;
    default:
        break;
    }
    if (!image)
        return loom_fail(ctx, LOOM_E_SHAPE, "%s: its input %s is not an image [C, H, W]", what, a);
    if (l->kind == LAYER_GLOBAL_AVG_POOL2D) {
        l->out_ndim = 1;
        return LOOM_OK;
    }
    if (l->kind == LAYER_SPATIAL_DROPOUT)
        return LOOM_OK;
    int conv = l->kind == LAYER_CONV2D;
    if (conv) {
        if (l->in_shape[0] % l->groups || l->units % l->groups)
            return loom_fail(ctx, LOOM_E_SHAPE, "%s: %d groups do not divide %lld input channels and %lld filters",
                             what, l->groups, (long long)l->in_shape[0], (long long)l->units);
        l->out_shape[0] = l->units;
    }
    for (int i = 0; i < 2; i++) {
        l->out_shape[1 + i] = conv_out(l->in_shape[1 + i], l->kernel[i], l->stride[i], conv ? l->dilation[i] : 1,
                                       l->same);
        if (l->out_shape[1 + i] < 1)
            return loom_fail(ctx, LOOM_E_SHAPE, "%s: a %d x %d window does not fit its input %s", what, l->kernel[0],
                             l->kernel[1], a);
    }
    return LOOM_OK;
}

/* ---- adding layers --------------------------------------------------------------- */

loom_conv2d_layer loom_conv2d_layer_default(int64_t filters, int kh, int kw)
{
    loom_conv2d_layer l;
    memset(&l, 0, sizeof l);
    l.filters = filters;
    l.kernel[0] = kh;
    l.kernel[1] = kw;
    l.stride[0] = l.stride[1] = 1;
    l.dilation[0] = l.dilation[1] = 1;
    l.groups = 1;
    l.act = LOOM_ACT_NONE;
    l.init = LOOM_INIT_HE_NORMAL;
    return l;
}

/* Appends l (sequential.c's add_layer checks its shape). */
loom_status loom_model_add(loom_sequential *m, layer l, const char *what);

static layer blank(layer_kind kind)
{
    layer l;
    memset(&l, 0, sizeof l);
    l.kind = kind;
    l.stride[0] = l.stride[1] = 1;
    l.dilation[0] = l.dilation[1] = 1;
    l.groups = 1;
    return l;
}

static int window_ok(int k)
{
    return k >= 1 && k <= 4096;
}

loom_status loom_sequential_add_conv2d(loom_sequential *m, const loom_conv2d_layer *c)
{
    if (!m)
        return LOOM_E_INVALID;
    if (!c)
        return loom_fail(m->ctx, LOOM_E_INVALID, "conv2d: NULL layer");
    layer l = blank(LAYER_CONV2D);
    l.units = c->filters;
    l.act = c->act;
    l.init = c->init;
    l.same = !!c->same;
    l.use_bias = !c->no_bias;
    l.groups = c->groups ? c->groups : 1;
    for (int i = 0; i < 2; i++) {
        l.kernel[i] = c->kernel[i];
        l.stride[i] = c->stride[i] ? c->stride[i] : 1;
        l.dilation[i] = c->dilation[i] ? c->dilation[i] : 1;
        if (!window_ok(l.kernel[i]) || l.stride[i] < 1 || l.stride[i] > 4096 || l.dilation[i] < 1 ||
            l.dilation[i] > 4096)
            return loom_fail(m->ctx, LOOM_E_INVALID, "conv2d: kernel %d x %d, stride %d x %d, dilation %d x %d (each "
                             "in [1, 4096])", c->kernel[0], c->kernel[1], l.stride[0], l.stride[1], l.dilation[0],
                             l.dilation[1]);
    }
    if (c->filters <= 0 || c->filters > LOOM_MAX_UNITS || l.groups < 1 || l.groups > 65536)
        return loom_fail(m->ctx, LOOM_E_INVALID, "conv2d: %lld filters in %d groups", (long long)c->filters, l.groups);
    if ((unsigned)c->act > LOOM_ACT_SOFTMAX || c->act == LOOM_ACT_SOFTMAX || (unsigned)c->init > LOOM_INIT_HE_NORMAL)
        return loom_fail(m->ctx, LOOM_E_INVALID, "conv2d: activation %d or init %d is not one a convolution takes",
                         (int)c->act, (int)c->init);
    return loom_model_add(m, l, "conv2d");
}

static loom_status add_pool(loom_sequential *m, layer_kind kind, int kh, int kw, int stride, int same)
{
    if (!m)
        return LOOM_E_INVALID;
    const char *what = kind == LAYER_MAX_POOL2D ? "max_pool2d" : "avg_pool2d";
    if (!window_ok(kh) || !window_ok(kw) || stride < 0 || stride > 4096)
        return loom_fail(m->ctx, LOOM_E_INVALID, "%s: window %d x %d, stride %d", what, kh, kw, stride);
    layer l = blank(kind);
    l.kernel[0] = kh;
    l.kernel[1] = kw;
    l.stride[0] = stride ? stride : kh;
    l.stride[1] = stride ? stride : kw;
    l.same = !!same;
    return loom_model_add(m, l, what);
}

loom_status loom_sequential_add_max_pool2d(loom_sequential *m, int kh, int kw, int stride, int same)
{
    return add_pool(m, LAYER_MAX_POOL2D, kh, kw, stride, same);
}

loom_status loom_sequential_add_avg_pool2d(loom_sequential *m, int kh, int kw, int stride, int same)
{
    return add_pool(m, LAYER_AVG_POOL2D, kh, kw, stride, same);
}

loom_status loom_sequential_add_global_avg_pool2d(loom_sequential *m)
{
    return m ? loom_model_add(m, blank(LAYER_GLOBAL_AVG_POOL2D), "global_avg_pool2d") : LOOM_E_INVALID;
}

loom_status loom_sequential_add_batch_norm(loom_sequential *m, float momentum, float eps)
{
    if (!m)
        return LOOM_E_INVALID;
    layer l = blank(LAYER_BATCH_NORM);
    l.momentum = momentum > 0 ? momentum : 0.99f;
    l.eps = eps > 0 ? eps : 1e-3f;
    if (!(l.momentum < 1.0f) || !(l.eps < 1.0f) || !isfinite(momentum) || !isfinite(eps))
        return loom_fail(m->ctx, LOOM_E_INVALID, "batch_norm: momentum %g must be in [0, 1) and eps %g in (0, 1)",
                         (double)momentum, (double)eps);
    return loom_model_add(m, l, "batch_norm");
}

loom_status loom_sequential_add_flatten(loom_sequential *m)
{
    return m ? loom_model_add(m, blank(LAYER_FLATTEN), "flatten") : LOOM_E_INVALID;
}

loom_status loom_sequential_add_activation(loom_sequential *m, loom_activation act)
{
    if (!m)
        return LOOM_E_INVALID;
    if ((unsigned)act > LOOM_ACT_SOFTMAX)
        return loom_fail(m->ctx, LOOM_E_INVALID, "activation: unknown activation %d", (int)act);
    layer l = blank(LAYER_ACTIVATION);
    l.act = act;
    return loom_model_add(m, l, "activation");
}

loom_status loom_sequential_add_spatial_dropout(loom_sequential *m, float rate)
{
    if (!m)
        return LOOM_E_INVALID;
    if (!(rate >= 0.0f && rate < 1.0f))
        return loom_fail(m->ctx, LOOM_E_INVALID, "spatial_dropout: rate %g outside [0, 1)", (double)rate);
    layer l = blank(LAYER_SPATIAL_DROPOUT);
    l.rate = rate;
    return loom_model_add(m, l, "spatial_dropout");
}

/* ---- JSON ------------------------------------------------------------------------ */

static const char *const act_names[] = {"linear", "relu", "sigmoid", "tanh", "gelu", "softmax"};
static const char *const init_names[] = {"glorot_uniform", "he_normal"};

static const char *kind_name(layer_kind k)
{
    switch (k) {
    case LAYER_CONV2D: return "conv2d";
    case LAYER_MAX_POOL2D: return "max_pool2d";
    case LAYER_AVG_POOL2D: return "avg_pool2d";
    case LAYER_GLOBAL_AVG_POOL2D: return "global_avg_pool2d";
    case LAYER_BATCH_NORM: return "batch_norm";
    case LAYER_FLATTEN: return "flatten";
    case LAYER_ACTIVATION: return "activation";
    case LAYER_SPATIAL_DROPOUT: return "spatial_dropout";
    default: return NULL;
    }
}

const char *loom_model_conv_prefix(layer_kind k)
{
    return k == LAYER_CONV2D ? "conv" : k == LAYER_BATCH_NORM ? "bn" : kind_name(k);
}

static void add_pair(cJSON *o, const char *key, const int v[2])
{
    cJSON *a = cJSON_AddArrayToObject(o, key);
    cJSON_AddItemToArray(a, cJSON_CreateNumber(v[0]));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(v[1]));
}

/* A float as its shortest decimal (0.99, not 0.990000009536743). */
static double decimal(float v)
{
    char b[32];
    snprintf(b, sizeof b, "%.7g", (double)v);
    return strtod(b, NULL);
}

void loom_model_describe_conv(const layer *l, void *obj)
{
    cJSON *o = obj;
    cJSON_AddStringToObject(o, "type", kind_name(l->kind));
    switch (l->kind) {
    case LAYER_CONV2D:
        cJSON_AddNumberToObject(o, "filters", (double)l->units);
        add_pair(o, "kernel", l->kernel);
        add_pair(o, "stride", l->stride);
        add_pair(o, "dilation", l->dilation);
        cJSON_AddStringToObject(o, "padding", l->same ? "same" : "valid");
        cJSON_AddNumberToObject(o, "groups", l->groups);
        cJSON_AddBoolToObject(o, "use_bias", l->use_bias);
        cJSON_AddStringToObject(o, "activation", act_names[l->act]);
        cJSON_AddStringToObject(o, "init", init_names[l->init]);
        break;
    case LAYER_MAX_POOL2D:
    case LAYER_AVG_POOL2D:
        add_pair(o, "pool", l->kernel);
        add_pair(o, "stride", l->stride);
        cJSON_AddStringToObject(o, "padding", l->same ? "same" : "valid");
        break;
    case LAYER_BATCH_NORM:
        cJSON_AddNumberToObject(o, "momentum", decimal(l->momentum));
        cJSON_AddNumberToObject(o, "eps", decimal(l->eps));
        break;
    case LAYER_ACTIVATION:
        cJSON_AddStringToObject(o, "activation", act_names[l->act]);
        break;
    case LAYER_SPATIAL_DROPOUT:
        cJSON_AddNumberToObject(o, "rate", decimal(l->rate));
        break;
    default:
        break;
    }
}

/* A whole number in [lo, hi] into *out. */
static int whole(const cJSON *j, int64_t lo, int64_t hi, int64_t *out)
{
    if (!cJSON_IsNumber(j) || !(j->valuedouble >= (double)lo && j->valuedouble <= (double)hi) ||
        j->valuedouble != floor(j->valuedouble))
        return 0;
    *out = (int64_t)j->valuedouble;
    return 1;
}

/* "key": n or [a, b] into v (absent: def); 0 if malformed. */
static int pair_field(const cJSON *o, const char *key, int lo, int hi, int def, int v[2])
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    int64_t a, b;
    if (!j) {
        v[0] = v[1] = def;
        return 1;
    }
    if (whole(j, lo, hi, &a)) {
        v[0] = v[1] = (int)a;
        return 1;
    }
    if (cJSON_IsArray(j) && cJSON_GetArraySize(j) == 2 && whole(cJSON_GetArrayItem(j, 0), lo, hi, &a) &&
        whole(cJSON_GetArrayItem(j, 1), lo, hi, &b)) {
        v[0] = (int)a;
        v[1] = (int)b;
        return 1;
    }
    return 0;
}

static int name_of(const cJSON *o, const char *key, const char *const *names, int n, int def)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j)
        return def;
    const char *s = cJSON_GetStringValue(j);
    for (int i = 0; s && i < n; i++)
        if (!strcmp(s, names[i]))
            return i;
    return -1;
}

static const char *stray_key(const cJSON *o, const char *const *keys)
{
    for (const cJSON *k = o->child; k; k = k->next) {
        int known = 0;
        for (int i = 0; keys[i] && !known; i++)
            known = k->string && !strcmp(k->string, keys[i]);
        if (!known)
            return k->string ? k->string : "?";
    }
    return NULL;
}

int loom_model_parse_conv(loom_ctx *ctx, const char *type, const void *obj, const char *what, int index, layer *l,
                          loom_status *s)
{
    static const char *const conv_keys[] = {"type", "filters", "kernel", "stride", "dilation", "padding", "groups",
                                            "use_bias", "activation", "init", NULL};
    static const char *const pool_keys[] = {"type", "pool", "stride", "padding", NULL};
    static const char *const bn_keys[] = {"type", "momentum", "eps", NULL};
    static const char *const act_keys[] = {"type", "activation", NULL};
    static const char *const drop_keys[] = {"type", "rate", NULL};
    static const char *const bare_keys[] = {"type", NULL};
    static const char *const paddings[] = {"valid", "same"};
    const cJSON *o = obj;
    layer_kind kind;
    const char *const *keys;
    if (!strcmp(type, "conv2d"))
        kind = LAYER_CONV2D, keys = conv_keys;
    else if (!strcmp(type, "max_pool2d"))
        kind = LAYER_MAX_POOL2D, keys = pool_keys;
    else if (!strcmp(type, "avg_pool2d"))
        kind = LAYER_AVG_POOL2D, keys = pool_keys;
    else if (!strcmp(type, "global_avg_pool2d"))
        kind = LAYER_GLOBAL_AVG_POOL2D, keys = bare_keys;
    else if (!strcmp(type, "batch_norm"))
        kind = LAYER_BATCH_NORM, keys = bn_keys;
    else if (!strcmp(type, "flatten"))
        kind = LAYER_FLATTEN, keys = bare_keys;
    else if (!strcmp(type, "activation"))
        kind = LAYER_ACTIVATION, keys = act_keys;
    else if (!strcmp(type, "spatial_dropout"))
        kind = LAYER_SPATIAL_DROPOUT, keys = drop_keys;
    else
        return 0;
    *s = LOOM_OK;
#define LBAD(...) (*s = loom_fail(ctx, LOOM_E_FORMAT, __VA_ARGS__), 1)
    const char *unk = stray_key(o, keys);
    if (unk)
        return LBAD("%s: layer %d (%s) has an unknown field \"%.64s\"", what, index, type, unk);
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->groups = 1;
    l->stride[0] = l->stride[1] = l->dilation[0] = l->dilation[1] = 1;
    int64_t v;
    if (kind == LAYER_CONV2D) {
        const cJSON *ub = cJSON_GetObjectItemCaseSensitive(o, "use_bias");
        int act = name_of(o, "activation", act_names, 5, LOOM_ACT_NONE);
        int init = name_of(o, "init", init_names, 2, LOOM_INIT_HE_NORMAL);
        int pad = name_of(o, "padding", paddings, 2, 0);
        if (!whole(cJSON_GetObjectItemCaseSensitive(o, "filters"), 1, LOOM_MAX_UNITS, &v))
            return LBAD("%s: layer %d (conv2d): \"filters\" is not an integer in [1, %lld]", what, index,
                        (long long)LOOM_MAX_UNITS);
        l->units = v;
        if (!cJSON_GetObjectItemCaseSensitive(o, "kernel") || !pair_field(o, "kernel", 1, 4096, 0, l->kernel))
            return LBAD("%s: layer %d (conv2d): \"kernel\" is not a size or a pair of sizes in [1, 4096]", what,
                        index);
        if (!pair_field(o, "stride", 1, 4096, 1, l->stride) || !pair_field(o, "dilation", 1, 4096, 1, l->dilation))
            return LBAD("%s: layer %d (conv2d): \"stride\" and \"dilation\" are sizes or pairs in [1, 4096]", what,
                        index);
        if (pad < 0 || act < 0 || init < 0)
            return LBAD("%s: layer %d (conv2d): unknown \"%s\"", what, index,
                        pad < 0 ? "padding" : act < 0 ? "activation" : "init");
        const cJSON *gj = cJSON_GetObjectItemCaseSensitive(o, "groups");
        if (gj && !whole(gj, 1, 65536, &v))
            return LBAD("%s: layer %d (conv2d): \"groups\" is not an integer in [1, 65536]", what, index);
        l->groups = gj ? (int)v : 1;
        if (ub && !cJSON_IsBool(ub))
            return LBAD("%s: layer %d (conv2d): \"use_bias\" is not true or false", what, index);
        l->use_bias = !ub || cJSON_IsTrue(ub);
        l->same = pad;
        l->act = (loom_activation)act;
        l->init = (loom_init)init;
    } else if (kind == LAYER_MAX_POOL2D || kind == LAYER_AVG_POOL2D) {
        int pad = name_of(o, "padding", paddings, 2, 0);
        if (!pair_field(o, "pool", 1, 4096, 2, l->kernel))
            return LBAD("%s: layer %d (%s): \"pool\" is not a size or a pair of sizes in [1, 4096]", what, index, type);
        int st[2];
        if (!pair_field(o, "stride", 1, 4096, 0, st))
            return LBAD("%s: layer %d (%s): \"stride\" is not a size or a pair of sizes in [1, 4096]", what, index, type);
        l->stride[0] = st[0] ? st[0] : l->kernel[0];
        l->stride[1] = st[1] ? st[1] : l->kernel[1];
        if (pad < 0)
            return LBAD("%s: layer %d (%s): unknown \"padding\"", what, index, type);
        l->same = pad;
    } else if (kind == LAYER_BATCH_NORM) {
        const cJSON *mj = cJSON_GetObjectItemCaseSensitive(o, "momentum"), *ej = cJSON_GetObjectItemCaseSensitive(o, "eps");
        l->momentum = mj && cJSON_IsNumber(mj) ? (float)mj->valuedouble : 0.99f;
        l->eps = ej && cJSON_IsNumber(ej) ? (float)ej->valuedouble : 1e-3f;
        if ((mj && !cJSON_IsNumber(mj)) || (ej && !cJSON_IsNumber(ej)) || !(l->momentum >= 0 && l->momentum < 1) ||
            !(l->eps > 0 && l->eps < 1))
            return LBAD("%s: layer %d (batch_norm): \"momentum\" must be a number in [0, 1) and \"eps\" in (0, 1)",
                        what, index);
    } else if (kind == LAYER_ACTIVATION) {
        int act = name_of(o, "activation", act_names, 6, -1);
        if (act < 0)
            return LBAD("%s: layer %d (activation): \"activation\" is not one of linear, relu, sigmoid, tanh, gelu, "
                        "softmax", what, index);
        l->act = (loom_activation)act;
    } else if (kind == LAYER_SPATIAL_DROPOUT) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "rate");
        if (!cJSON_IsNumber(r) || !(r->valuedouble >= 0.0 && r->valuedouble < 1.0))
            return LBAD("%s: layer %d (spatial_dropout): \"rate\" is not a number in [0, 1)", what, index);
        l->rate = (float)r->valuedouble;
    }
#undef LBAD
    return 1;
}

/* ---- parameters --------------------------------------------------------------------- */

static void param(model_param *p, const char *fmt, int index, const char *leaf, int ndim, const int64_t *shape,
                  int trainable, param_init init)
{
    snprintf(p->name, sizeof p->name, fmt, index, leaf);
    p->ndim = ndim;
    memset(p->shape, 0, sizeof p->shape);
    memcpy(p->shape, shape, (size_t)ndim * sizeof *shape);
    p->trainable = trainable;
    p->init = init;
    p->fan_in = p->fan_out = 0;
}

int loom_model_conv_params(const layer *l, int index, model_param out[3])
{
    if (l->kind == LAYER_CONV2D) {
        int64_t cg = l->in_shape[0] / l->groups;
        int64_t ks[4] = {l->units, cg, l->kernel[0], l->kernel[1]}, bs[1] = {l->units};
        param(&out[0], "conv%d/%s", index, "kernel", 4, ks, 1, PINIT_KERNEL);
        /* Keras: fan_in = kh kw C / G, fan_out = kh kw filters */
        out[0].fan_in = cg * l->kernel[0] * l->kernel[1];
        out[0].fan_out = l->units * l->kernel[0] * l->kernel[1];
        if (!l->use_bias)
            return 1;
        param(&out[1], "conv%d/%s", index, "bias", 1, bs, 1, PINIT_ZEROS);
        return 2;
    }
    if (l->kind == LAYER_BATCH_NORM) {
        int64_t cs[1] = {l->in_shape[0]}, rs[2] = {2, l->in_shape[0]};
        param(&out[0], "bn%d/%s", index, "gamma", 1, cs, 1, PINIT_ONES);
        param(&out[1], "bn%d/%s", index, "beta", 1, cs, 1, PINIT_ZEROS);
        param(&out[2], "bn%d/%s", index, "running", 2, rs, 0, PINIT_RUNNING);
        return 3;
    }
    return 0;
}

/* ---- graphs ---------------------------------------------------------------------------- */

static loom_tensor param_in(loom_graph *g, const model_param *p, loom_dtype dt)
{
    return loom_cast(g, loom_param(g, p->name, LOOM_F32, p->ndim, p->shape, p->trainable), dt);
}

loom_tensor loom_model_build_conv(loom_sequential *m, loom_graph *g, int i, int train, loom_tensor h)
{
    const layer *l = &m->layers[i];
    loom_dtype dt = m->cfg.precision;
    model_param ps[3];
    for (int k = 0; k < loom_model_layer_nparams(m, i) && k < 3; k++)
        loom_model_layer_param(m, i, k, &ps[k]);
    char scope[64];
    loom_model_scope(m, i, scope, sizeof scope);
    if (loom_graph_scope(g, scope) != LOOM_OK)
        return LOOM_NONE;
    uint32_t seed = (uint32_t)(m->cfg.seed * 2654435761u) + (uint32_t)i + m->drop_salt;
    switch (l->kind) {
    case LAYER_CONV2D: {
        loom_conv2d_opts o = loom_conv2d_opts_default();
        for (int k = 0; k < 2; k++) {
            o.stride[k] = l->stride[k];
            o.dilation[k] = l->dilation[k];
        }
        o.same = l->same;
        o.groups = l->groups;
        h = loom_conv2d(g, h, param_in(g, &ps[0], dt), l->use_bias ? param_in(g, &ps[1], dt) : LOOM_NONE, &o);
        h = loom_model_activate(g, h, l->act);
        break;
    }
    case LAYER_MAX_POOL2D:
    case LAYER_AVG_POOL2D: {
        loom_pool2d_opts o;
        memset(&o, 0, sizeof o);
        for (int k = 0; k < 2; k++) {
            o.kernel[k] = l->kernel[k];
            o.stride[k] = l->stride[k];
        }
        o.same = l->same;
        h = l->kind == LAYER_MAX_POOL2D ? loom_max_pool2d(g, h, &o) : loom_avg_pool2d(g, h, &o);
        break;
    }
    case LAYER_GLOBAL_AVG_POOL2D:
        h = loom_global_avg_pool2d(g, h);
        break;
    case LAYER_BATCH_NORM: {
        loom_tensor run = loom_param(g, ps[2].name, LOOM_F32, 2, ps[2].shape, 0);
        h = loom_batch_norm(g, h, param_in(g, &ps[0], dt), param_in(g, &ps[1], dt), run, l->momentum, l->eps, train);
        break;
    }
    case LAYER_FLATTEN:
        h = loom_flatten(g, h);
        break;
    case LAYER_ACTIVATION:
        h = loom_model_activate(g, h, l->act);
        break;
    case LAYER_SPATIAL_DROPOUT:
        if (train && l->rate > 0.0f)
            h = loom_spatial_dropout(g, h, l->rate, seed);
        break;
    default:
        break;
    }
    if (loom_graph_scope(g, NULL) != LOOM_OK)
        return LOOM_NONE;
    return h;
}

/* ---- augmentation --------------------------------------------------------------------- */

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

loom_status loom_model_augment(loom_sequential *m, const loom_fit_config *cfg, float *x, int64_t nb, int64_t step)
{
    if (m->in_ndim != 3 || (cfg->augment_shift <= 0 && !cfg->augment_flip))
        return LOOM_OK;
    int64_t c = m->in_shape[0], h = m->in_shape[1], w = m->in_shape[2], per = c * h * w;
    int s = cfg->augment_shift;
    if (s < 0 || s > 64)
        return loom_fail(m->ctx, LOOM_E_INVALID, "fit: augment_shift %d outside [0, 64]", s);
    /* the value of a raw 0 after the model's scaling */
    float zero = 0.0f;
    if (m->pre_set)
        loom_scale_values(m->pre_how, m->pre_stats, &zero, 1);
    size_t bytes = (size_t)per * sizeof(float);
    float *tmp = loom_malloc(m->ctx, bytes);
    if (!tmp)
        return loom_fail(m->ctx, LOOM_E_OOM, "fit: out of memory for augmentation");
    for (int64_t r = 0; r < nb; r++) {
        /* one draw per (seed, step, row): the same images move alike on
         * every run and device */
        uint64_t z = mix(m->cfg.seed * 0x9e3779b97f4a7c15ULL ^ mix((uint64_t)step * 0x632be59bd9b4e019ULL + (uint64_t)r));
        int dy = s ? (int)(z % (uint64_t)(2 * s + 1)) - s : 0;
        int dx = s ? (int)((z >> 16) % (uint64_t)(2 * s + 1)) - s : 0;
        int flip = cfg->augment_flip && ((z >> 40) & 1);
        float *img = x + r * per;
        memcpy(tmp, img, bytes);
        for (int64_t ch = 0; ch < c; ch++)
            for (int64_t i = 0; i < h; i++)
                for (int64_t j = 0; j < w; j++) {
                    int64_t si = i - dy, sj = j - dx;
                    if (flip)
                        sj = w - 1 - sj;
                    img[(ch * h + i) * w + j] =
                        si >= 0 && si < h && sj >= 0 && sj < w ? tmp[(ch * h + si) * w + sj] : zero;
                }
    }
    loom_free(m->ctx, tmp, bytes);
    return LOOM_OK;
}
