/* The Sequential model: layers, weight initialization, and the training
 * and evaluation graphs compiled from them. */
#include "model.h"
#include "nn_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

loom_status loom_sequential_create(loom_ctx *ctx, int64_t input_features, loom_sequential **out)
{
    if (!ctx || !out)
        return LOOM_E_INVALID;
    *out = NULL;
    if (input_features <= 0 || input_features > LOOM_MAX_UNITS)
        return loom_fail(ctx, LOOM_E_SHAPE, "loom_sequential_create: %lld input features (1 to %lld)",
                         (long long)input_features, (long long)LOOM_MAX_UNITS);
    loom_sequential *m = loom_calloc(ctx, 1, sizeof *m);
    if (!m)
        return loom_fail(ctx, LOOM_E_OOM, "loom_sequential_create: out of memory");
    m->ctx = ctx;
    m->in_features = input_features;
    m->in_ndim = 1;
    m->in_shape[0] = input_features;
    *out = m;
    return LOOM_OK;
}

loom_status loom_sequential_create_image(loom_ctx *ctx, int64_t channels, int64_t height, int64_t width,
                                         loom_sequential **out)
{
    if (!ctx || !out)
        return LOOM_E_INVALID;
    *out = NULL;
    int64_t dims[3] = {channels, height, width};
    uint64_t total = 1;
    for (int i = 0; i < 3; i++)
        if (dims[i] <= 0 || dims[i] > LOOM_MAX_UNITS || loom_mul_u64(total, (uint64_t)dims[i], &total) ||
            total > (uint64_t)LOOM_MAX_UNITS)
            return loom_fail(ctx, LOOM_E_SHAPE, "loom_sequential_create_image: images of %lld x %lld x %lld (each "
                             "and their product in [1, %lld])", (long long)channels, (long long)height,
                             (long long)width, (long long)LOOM_MAX_UNITS);
    LOOM_TRY(loom_sequential_create(ctx, (int64_t)total, out));
    (*out)->in_ndim = 3;
    memcpy((*out)->in_shape, dims, sizeof dims);
    return loom_model_describe(*out);
}

static void free_buffers(loom_sequential *m)
{
    loom_free(m->ctx, m->xbuf, m->xbuf_bytes);
    loom_free(m->ctx, m->ybuf, m->ybuf_bytes);
    loom_free(m->ctx, m->pbuf, m->ybuf_bytes);
    loom_free(m->ctx, m->tbuf, m->tbuf_bytes);
    m->xbuf = m->tbuf = NULL;
    m->ybuf = m->pbuf = NULL;
    m->xbuf_bytes = m->ybuf_bytes = m->tbuf_bytes = 0;
}

static void free_progs(loom_sequential *m)
{
    for (int i = 0; i < m->nprogs; i++) {
        loom_program_destroy(m->progs[i].p);
        loom_graph_destroy(m->progs[i].g);
    }
    m->nprogs = 0;
}

void loom_model_drop_train_progs(loom_sequential *m)
{
    int k = 0;
    for (int i = 0; i < m->nprogs; i++) {
        if (m->progs[i].train) {
            loom_program_destroy(m->progs[i].p);
            loom_graph_destroy(m->progs[i].g);
        } else {
            m->progs[k++] = m->progs[i];
        }
    }
    m->nprogs = k;
}

void loom_sequential_destroy(loom_sequential *m)
{
    if (!m)
        return;
    loom_replicas_free(m);
    free_progs(m);
    loom_sequential_destroy(m->teacher);
    loom_state_destroy(m->st);
    loom_strfree(m->ctx, m->describe);
    free_buffers(m);
    loom_free(m->ctx, m->quant, sizeof *m->quant);
    loom_free(m->ctx, m, sizeof *m);
}

static nn_shape to_nn_shape(int ndim, const int64_t *d)
{
    nn_shape sh = {ndim, {0, 0, 0}};
    memcpy(sh.d, d, (size_t)ndim * sizeof *d);
    return sh;
}

/* The shape walk: what layer l (number li) gives per sample over what it
 * takes (l->in_*), into l->out_*; LOOM_E_SHAPE naming the layer. Dense
 * layers map the last axis of features or sequences, not images. */
static loom_status layer_shape(loom_ctx *ctx, layer *l, int li, const char *what)
{
    char where[64], a[96];
    snprintf(where, sizeof where, "%s (layer %d)", what, li);
    l->out_ndim = l->in_ndim;
    memcpy(l->out_shape, l->in_shape, sizeof l->out_shape);
    switch (l->kind) {
    case LAYER_DENSE:
        if (l->in_ndim == 3)
            return loom_fail(ctx, LOOM_E_SHAPE, "%s: its input is an image %s (per sample); add a flatten layer "
                             "before it", where, loom_shape_str(a, sizeof a, l->in_ndim, l->in_shape));
        l->out_shape[l->in_ndim - 1] = l->units;
        return LOOM_OK;
    case LAYER_DROPOUT:
        return LOOM_OK;
    case LAYER_SEQ: {
        nn_shape in = to_nn_shape(l->in_ndim, l->in_shape), out;
        LOOM_TRY(loom_seq_shape(ctx, &l->seq, li, &in, &out));
        l->out_ndim = out.ndim;
        memcpy(l->out_shape, out.d, sizeof l->out_shape);
        return LOOM_OK;
    }
    default:
        return loom_model_conv_shape(ctx, l, where);
    }
}

static loom_status add_layer(loom_sequential *m, layer l, const char *what)
{
    if (!m)
        return LOOM_E_INVALID;
    if (m->compiled)
        return loom_fail(m->ctx, LOOM_E_STATE, "%s: the model is already compiled", what);
    if (m->nlayers == LOOM_MAX_LAYERS)
        return loom_fail(m->ctx, LOOM_E_INVALID, "%s: more than %d layers", what, LOOM_MAX_LAYERS);
    /* the layer takes what the one before gives (or the model's input) */
    const layer *prev = m->nlayers ? &m->layers[m->nlayers - 1] : NULL;
    l.in_ndim = prev ? prev->out_ndim : m->in_ndim;
    memcpy(l.in_shape, prev ? prev->out_shape : m->in_shape, sizeof l.in_shape);
    LOOM_TRY(layer_shape(m->ctx, &l, m->nlayers, what));
    m->layers[m->nlayers++] = l;
    return loom_model_describe(m);
}

loom_status loom_model_add(loom_sequential *m, layer l, const char *what)
{
    return add_layer(m, l, what);
}

loom_status loom_sequential_add_dense(loom_sequential *m, int64_t units, loom_activation act, loom_init init)
{
    if (m && (units <= 0 || units > LOOM_MAX_UNITS))
        return loom_fail(m->ctx, LOOM_E_SHAPE, "dense: %lld units (1 to %lld)", (long long)units,
                         (long long)LOOM_MAX_UNITS);
    if (m && ((unsigned)act > LOOM_ACT_SOFTMAX || (unsigned)init > LOOM_INIT_HE_NORMAL))
        return loom_fail(m->ctx, LOOM_E_INVALID, "dense: unknown activation %d or init %d", (int)act, (int)init);
    layer l = {.kind = LAYER_DENSE, .units = units, .act = act, .init = init};
    return add_layer(m, l, "dense");
}

loom_status loom_sequential_add_dropout(loom_sequential *m, float rate)
{
    if (m && !(rate >= 0.0f && rate < 1.0f))
        return loom_fail(m->ctx, LOOM_E_INVALID, "dropout: rate %g outside [0, 1)", (double)rate);
    layer l = {.kind = LAYER_DROPOUT, .act = LOOM_ACT_NONE, .init = LOOM_INIT_GLOROT_UNIFORM, .rate = rate};
    return add_layer(m, l, "dropout");
}

static loom_status parse_layer(loom_sequential *m, const cJSON *l, int li, const char *what, int file);

loom_status loom_sequential_add_json(loom_sequential *m, const char *layer_json)
{
    if (!m || !layer_json)
        return m ? loom_fail(m->ctx, LOOM_E_INVALID, "loom_sequential_add_json: NULL layer") : LOOM_E_INVALID;
    cJSON *o = cJSON_Parse(layer_json);
    loom_status s = cJSON_IsObject(o) ? parse_layer(m, o, m->nlayers, "loom_sequential_add_json", 0)
                                      : loom_fail(m->ctx, LOOM_E_FORMAT, "loom_sequential_add_json: not a JSON object: "
                                                  "%.80s", layer_json);
    cJSON_Delete(o);
    return s;
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
    if (m->in_ndim == 3) {
        cJSON *in = cJSON_AddArrayToObject(root, "input");
        for (int i = 0; i < 3; i++)
            cJSON_AddItemToArray(in, cJSON_CreateNumber((double)m->in_shape[i]));
    } else {
        cJSON_AddNumberToObject(root, "input", (double)m->in_features);
    }
    for (int i = 0; i < m->nlayers; i++) {
        const layer *l = &m->layers[i];
        cJSON *o = cJSON_CreateObject();
        if (l->kind == LAYER_DENSE) {
            cJSON_AddStringToObject(o, "type", "dense");
            cJSON_AddNumberToObject(o, "units", (double)l->units);
            cJSON_AddStringToObject(o, "activation", act_names[l->act]);
            cJSON_AddStringToObject(o, "init", init_names[l->init]);
        } else if (l->kind == LAYER_SEQ) {
            loom_seq_describe(&l->seq, o);
        } else if (l->kind != LAYER_DROPOUT) {
            loom_model_describe_conv(l, o);
        } else {
            cJSON_AddStringToObject(o, "type", "dropout");
            cJSON_AddNumberToObject(o, "rate", (double)l->rate);
        }
        cJSON_AddItemToArray(layers, o);
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    /* cJSON allocates with malloc: the model keeps a copy made through the
     * context's allocator. */
    char *copy = s ? loom_strdup(m->ctx, s) : NULL;
    cJSON_free(s);
    if (!copy)
        return loom_fail(m->ctx, LOOM_E_OOM, "sequential: out of memory describing the model");
    loom_strfree(m->ctx, m->describe);
    m->describe = copy;
    return LOOM_OK;
}

static int find_name(const char *const *names, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (s && !strcmp(names[i], s))
            return i;
    return -1;
}

/* A JSON number that is an integer in [lo, hi]. */
static int json_int(const cJSON *j, int64_t lo, int64_t hi, int64_t *out)
{
    if (!cJSON_IsNumber(j))
        return 0;
    double d = j->valuedouble;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d))
        return 0;
    *out = (int64_t)d;
    return 1;
}

/* Every key of object o is one of the NULL-terminated names; else the
 * first that is not. */
static const char *unknown_key(const cJSON *o, const char *const *names)
{
    for (const cJSON *k = o->child; k; k = k->next) {
        int known = 0;
        for (int i = 0; names[i] && !known; i++)
            known = k->string && !strcmp(k->string, names[i]);
        if (!known)
            return k->string ? k->string : "?";
    }
    return NULL;
}

static const char *const arch_keys[] = {"input", "layers", NULL};
static const char *const dense_keys[] = {"type", "units", "activation", "init", NULL};
static const char *const dropout_keys[] = {"type", "rate", NULL};

#define ARCH_BAD(...) (s = loom_fail(ctx, LOOM_E_FORMAT, __VA_ARGS__))
#define LOOM_ERRMSG_COPY 512

/* One layer of an architecture (li: its index, what: the file, or the
 * call when not a file: its shape errors stay LOOM_E_SHAPE). */
static loom_status parse_layer(loom_sequential *m, const cJSON *l, int li, const char *what, int file)
{
    loom_ctx *ctx = m->ctx;
    loom_status s = LOOM_OK;
    const char *unk = NULL;
    const char *type = cJSON_IsObject(l) ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(l, "type")) : NULL;
    layer conv;
    if (type && loom_model_parse_conv(ctx, type, l, what, li, &conv, &s)) {
        if (s == LOOM_OK)
            s = add_layer(m, conv, type);
    } else if (type && !strcmp(type, "dense")) {
        int64_t units = 0;
        /* activation and init may be left out: linear, Glorot uniform */
        const cJSON *ja = cJSON_GetObjectItemCaseSensitive(l, "activation"), *ji = cJSON_GetObjectItemCaseSensitive(l, "init");
        int act = ja ? find_name(act_names, 6, cJSON_GetStringValue(ja)) : LOOM_ACT_NONE;
        int init = ji ? find_name(init_names, 2, cJSON_GetStringValue(ji)) : LOOM_INIT_GLOROT_UNIFORM;
        if ((unk = unknown_key(l, dense_keys)))
            ARCH_BAD("%s: loom.architecture layer %d has an unknown field \"%.64s\"", what, li, unk);
        else if (!json_int(cJSON_GetObjectItemCaseSensitive(l, "units"), 1, LOOM_MAX_UNITS, &units))
            ARCH_BAD("%s: loom.architecture layer %d (dense): \"units\" is not an integer in [1, %lld]", what, li,
                     (long long)LOOM_MAX_UNITS);
        else if (act < 0)
            ARCH_BAD("%s: loom.architecture layer %d (dense): unknown \"activation\"", what, li);
        else if (init < 0)
            ARCH_BAD("%s: loom.architecture layer %d (dense): unknown \"init\"", what, li);
        else
            s = loom_sequential_add_dense(m, units, (loom_activation)act, (loom_init)init);
    } else if (type && !strcmp(type, "dropout")) {
        const cJSON *rate = cJSON_GetObjectItemCaseSensitive(l, "rate");
        if ((unk = unknown_key(l, dropout_keys)))
            ARCH_BAD("%s: loom.architecture layer %d has an unknown field \"%.64s\"", what, li, unk);
        else if (!cJSON_IsNumber(rate) || !(rate->valuedouble >= 0.0 && rate->valuedouble < 1.0))
            ARCH_BAD("%s: loom.architecture layer %d (dropout): \"rate\" is not a number in [0, 1)", what, li);
        else
            s = loom_sequential_add_dropout(m, (float)rate->valuedouble);
    } else if (loom_seq_kind(type) >= 0) {
        layer sl = {.kind = LAYER_SEQ, .act = LOOM_ACT_NONE, .init = LOOM_INIT_GLOROT_UNIFORM};
        s = loom_seq_parse(ctx, l, li, what, &sl.seq);
        if (s == LOOM_OK)
            s = add_layer(m, sl, loom_seq_type(sl.seq.kind));
    } else {
        ARCH_BAD("%s: loom.architecture layer %d has unknown type \"%.64s\"", what, li, type ? type : "?");
    }
    if (s != LOOM_OK && s != LOOM_E_OOM && s != LOOM_E_FORMAT) {
        /* a copy: the message is rewritten into the buffer it is read from */
        char why[LOOM_ERRMSG_COPY];
        snprintf(why, sizeof why, "%s", loom_last_error(ctx));
        s = loom_fail(ctx, file ? LOOM_E_FORMAT : s, "%s: loom.architecture layer %d: %s", what, li, why);
    }
    return s;
}

loom_status loom_model_from_json(loom_ctx *ctx, const char *json, const char *what, loom_sequential **out)
{
    cJSON *root = cJSON_Parse(json);
    loom_status s = LOOM_OK;
    loom_sequential *m = NULL;
    const cJSON *in = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "input") : NULL;
    const cJSON *layers = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "layers") : NULL;
    int64_t nin = 0;
    const char *unk = NULL;
    if (!cJSON_IsObject(root) || !cJSON_IsArray(layers)) {
        ARCH_BAD("%s: loom.architecture is not a loom Sequential description: %.80s", what, json);
        goto out;
    }
    if ((unk = unknown_key(root, arch_keys))) {
        ARCH_BAD("%s: loom.architecture has an unknown field \"%.64s\"", what, unk);
        goto out;
    }
    int64_t img[3];
    int image = cJSON_IsArray(in) && cJSON_GetArraySize(in) == 3 &&
                json_int(cJSON_GetArrayItem(in, 0), 1, LOOM_MAX_UNITS, &img[0]) &&
                json_int(cJSON_GetArrayItem(in, 1), 1, LOOM_MAX_UNITS, &img[1]) &&
                json_int(cJSON_GetArrayItem(in, 2), 1, LOOM_MAX_UNITS, &img[2]);
    if (!image && !json_int(in, 1, LOOM_MAX_UNITS, &nin)) {
        ARCH_BAD("%s: loom.architecture: \"input\" is not an integer in [1, %lld] or an image [C, H, W]", what,
                 (long long)LOOM_MAX_UNITS);
        goto out;
    }
    if (cJSON_GetArraySize(layers) > LOOM_MAX_LAYERS) {
        ARCH_BAD("%s: loom.architecture has %d layers, at most %d are allowed", what, cJSON_GetArraySize(layers),
                 LOOM_MAX_LAYERS);
        goto out;
    }
    s = image ? loom_sequential_create_image(ctx, img[0], img[1], img[2], &m) : loom_sequential_create(ctx, nin, &m);
    if (s != LOOM_OK) {
        if (s != LOOM_E_OOM) {
            char why[LOOM_ERRMSG_COPY];
            snprintf(why, sizeof why, "%s", loom_last_error(ctx));
            s = loom_fail(ctx, LOOM_E_FORMAT, "%s: loom.architecture: %s", what, why);
        }
        goto out;
    }
    const cJSON *l;
    int li = 0;
    cJSON_ArrayForEach(l, layers)
    {
        if ((s = parse_layer(m, l, li, what, 1)) != LOOM_OK)
            goto out;
        li++;
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

loom_status loom_sequential_from_json(loom_ctx *ctx, const char *json, const char *what, loom_sequential **out)
{
    if (!ctx || !out)
        return LOOM_E_INVALID;
    *out = NULL;
    if (!json)
        return loom_fail(ctx, LOOM_E_INVALID, "loom_sequential_from_json: NULL description");
    return loom_model_from_json(ctx, json, what ? what : "model description", out);
}

void loom_model_shapes(const loom_sequential *m, nn_shape *shapes)
{
    for (int i = 0; i < m->nlayers; i++)
        shapes[i] = to_nn_shape(m->layers[i].in_ndim, m->layers[i].in_shape);
    const layer *last = m->nlayers ? &m->layers[m->nlayers - 1] : NULL;
    shapes[m->nlayers] = last ? to_nn_shape(last->out_ndim, last->out_shape) : to_nn_shape(m->in_ndim, m->in_shape);
}

/* The sample shape out of the model (the layers were checked as added). */
static nn_shape out_shape(const loom_sequential *m)
{
    const layer *last = m->nlayers ? &m->layers[m->nlayers - 1] : NULL;
    return last ? to_nn_shape(last->out_ndim, last->out_shape) : to_nn_shape(m->in_ndim, m->in_shape);
}

int64_t loom_model_outputs(const loom_sequential *m)
{
    nn_shape sh = out_shape(m);
    int64_t n = 1;
    for (int i = 0; i < sh.ndim; i++)
        n *= sh.d[i];
    return n;
}

int64_t loom_model_positions(const loom_sequential *m)
{
    nn_shape sh = out_shape(m);
    return loom_model_outputs(m) / sh.d[sh.ndim - 1];
}

/* The number of layer i among the layers that share its prefix. */
static int kind_index(const loom_sequential *m, int i)
{
    const layer *l = &m->layers[i];
    int k = 0;
    for (int j = 0; j < i; j++)
        k += m->layers[j].kind == l->kind && (l->kind != LAYER_SEQ || m->layers[j].seq.kind == l->seq.kind);
    return k;
}

void loom_model_scope(const loom_sequential *m, int i, char *buf, size_t n)
{
    const layer *l = &m->layers[i];
    const char *prefix = l->kind == LAYER_DENSE     ? "dense"
                         : l->kind == LAYER_DROPOUT ? "dropout"
                         : l->kind == LAYER_SEQ     ? loom_seq_type(l->seq.kind)
                                                    : loom_model_conv_prefix(l->kind);
    snprintf(buf, n, "%s%s%d", m->name_prefix ? m->name_prefix : "", prefix, kind_index(m, i));
}

int loom_model_layer_nparams(const loom_sequential *m, int i)
{
    const layer *l = &m->layers[i];
    model_param ps[3];
    switch (l->kind) {
    case LAYER_DENSE: return 2;
    case LAYER_DROPOUT: return 0;
    case LAYER_SEQ: return loom_seq_nparams(&l->seq);
    default: return loom_model_conv_params(l, 0, ps);
    }
}

static const param_init seq_inits[] = {
    [NN_INIT_GLOROT] = PINIT_KERNEL, [NN_INIT_NORMAL] = PINIT_NORMAL, [NN_INIT_ZERO] = PINIT_ZEROS,
    [NN_INIT_ONE] = PINIT_ONES};

void loom_model_layer_param(const loom_sequential *m, int i, int k, model_param *p)
{
    const layer *l = &m->layers[i];
    memset(p, 0, sizeof *p);
    p->trainable = 1;
    if (l->kind == LAYER_DENSE) {
        /* over the last axis: [features, units] whatever the rank */
        char kn[sizeof p->name];
        loom_model_param_names(kind_index(m, i), kn, p->name, sizeof p->name);
        if (!k)
            memcpy(p->name, kn, sizeof kn);
        p->ndim = k ? 1 : 2;
        p->shape[0] = k ? l->units : l->in_shape[l->in_ndim - 1];
        p->shape[1] = k ? 0 : l->units;
        p->init = k ? PINIT_ZEROS : PINIT_KERNEL;
        p->fan_in = p->shape[0];
        p->fan_out = l->units;
    } else if (l->kind == LAYER_SEQ) {
        char scope[64];
        nn_init_kind init;
        nn_shape in = to_nn_shape(l->in_ndim, l->in_shape);
        loom_model_scope(m, i, scope, sizeof scope);
        loom_seq_param(&l->seq, scope, &in, k, p->name, sizeof p->name, &p->ndim, p->shape, &init);
        p->init = seq_inits[init];
        /* the sequence layers' matrices are Glorot uniform over [rows, cols] */
        p->fan_in = p->shape[0];
        p->fan_out = p->ndim > 1 ? p->shape[1] : 1;
    } else {
        model_param ps[3];
        int n = loom_model_conv_params(l, kind_index(m, i), ps);
        if (k < n)
            *p = ps[k];
    }
    /* a teacher inside a student's graph: its own names, frozen (the
     * sequence layers' names come from their scope, already prefixed) */
    if (m->name_prefix && l->kind != LAYER_SEQ) {
        char full[sizeof p->name];
        snprintf(full, sizeof full, "%s%s", m->name_prefix, p->name);
        memcpy(p->name, full, sizeof full);
    }
    if (m->frozen)
        p->trainable = 0;
}

int loom_model_param_count(const loom_sequential *m)
{
    int n = 0;
    for (int i = 0; i < m->nlayers; i++)
        n += loom_model_layer_nparams(m, i);
    return n;
}

int loom_model_param(const loom_sequential *m, int k, model_param *p, int *layer_index)
{
    for (int i = 0; i < m->nlayers && k >= 0; i++) {
        int n = loom_model_layer_nparams(m, i);
        if (k < n) {
            loom_model_layer_param(m, i, k, p);
            if (layer_index)
                *layer_index = i;
            return 1;
        }
        k -= n;
    }
    return 0;
}

int64_t loom_sequential_outputs(const loom_sequential *m)
{
    return m ? loom_model_outputs(m) : 0;
}

int64_t loom_sequential_inputs(const loom_sequential *m)
{
    return m ? m->in_features : 0;
}

int loom_sequential_input_shape(const loom_sequential *m, int64_t shape[3])
{
    if (!m || !shape)
        return 0;
    int nd = m->in_ndim == 3 ? 3 : 1;
    for (int i = 0; i < nd; i++)
        shape[i] = nd == 3 ? m->in_shape[i] : m->in_features;
    return nd;
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

/* The index of the layer that reads token ids (an embedding first), -1. */
static int token_layer(const loom_sequential *m)
{
    for (int i = 0; i < m->nlayers; i++) {
        const layer *l = &m->layers[i];
        if (l->kind == LAYER_SEQ && l->seq.kind == SEQ_EMBEDDING)
            return i;
        if (l->kind != LAYER_DROPOUT && !(l->kind == LAYER_SEQ && l->seq.kind == SEQ_RESHAPE))
            return -1;
    }
    return -1;
}

loom_status loom_model_check_inputs(const loom_sequential *m, const float *x, int64_t n)
{
    int t = token_layer(m);
    if (t < 0)
        return LOOM_OK;
    char scope[64];
    loom_model_scope(m, t, scope, sizeof scope);
    return loom_seq_check_tokens(m->ctx, &m->layers[t].seq, scope, x, n, m->in_features);
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

/* Every parameter in layer order; kernels draw from one seeded stream
 * (Glorot uniform or He normal), biases and shifts start at 0, scales at
 * 1, running statistics at mean 0 and variance 1. */
static loom_status init_weights(loom_sequential *m)
{
    uint64_t rng = m->cfg.seed * 0x2545f4914f6cdd1dULL + 1;
    int np = loom_model_param_count(m);
    for (int k = 0; k < np; k++) {
        model_param p;
        int li = 0;
        loom_model_param(m, k, &p, &li);
        const layer *l = &m->layers[li];
        if (loom_model_quant_replaced(m, p.name))
            continue; /* an int8 layer's kernel is its i8 copy (quantize.c) */
        uint64_t count;
        size_t bytes = 0;
        float *w = NULL;
        if (!loom_shape_bytes(p.ndim, p.shape, sizeof *w, &count, NULL) && count <= SIZE_MAX / sizeof *w) {
            bytes = (size_t)count * sizeof *w;
            w = loom_calloc(m->ctx, (size_t)count, sizeof *w);
        }
        if (!w)
            return loom_fail(m->ctx, LOOM_E_OOM, "sequential: out of memory initializing %s", p.name);
        if (p.init == PINIT_KERNEL && l->init == LOOM_INIT_GLOROT_UNIFORM) {
            double lim = sqrt(6.0 / (double)(p.fan_in + p.fan_out));
            for (uint64_t e = 0; e < count; e++)
                w[e] = (float)((uniform01(&rng) * 2.0 - 1.0) * lim);
        } else if (p.init == PINIT_KERNEL || p.init == PINIT_NORMAL) {
            double sd = p.init == PINIT_NORMAL ? 0.02 : sqrt(2.0 / (double)p.fan_in);
            for (uint64_t e = 0; e < count; e++) {
                double u1 = uniform01(&rng), u2 = uniform01(&rng);
                w[e] = (float)(sd * sqrt(-2.0 * log(u1 + 1e-300)) * cos(6.283185307179586 * u2));
            }
        } else if (p.init == PINIT_ONES) {
            for (uint64_t e = 0; e < count; e++)
                w[e] = 1.0f;
        } else if (p.init == PINIT_RUNNING) {
            for (int64_t e = 0; e < p.shape[1]; e++)
                w[p.shape[1] + e] = 1.0f; /* row 0 the mean, row 1 the variance */
        }
        loom_status s = loom_state_write(m->st, p.name, LOOM_F32, p.ndim, p.shape, w);
        loom_free(m->ctx, w, bytes);
        if (s != LOOM_OK)
            return s;
    }
    return LOOM_OK;
}

/* ---- graphs ------------------------------------------------------------- */

loom_tensor loom_model_activate(loom_graph *g, loom_tensor h, loom_activation a)
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

static int64_t sample_numel(const nn_shape *sh)
{
    int64_t n = 1;
    for (int i = 0; i < sh->ndim; i++)
        n *= sh->d[i];
    return n;
}

/* t as [ndim dims]; t itself when it has that shape already (no copy, and
 * the fusion passes see the ops of an MLP's head as they are). */
static loom_tensor shaped(loom_graph *g, loom_tensor t, int ndim, const int64_t *shape)
{
    int same = loom_tensor_ndim(g, t) == ndim;
    for (int i = 0; i < ndim && same; i++)
        same = loom_tensor_dim(g, t, i) == shape[i];
    return same ? t : loom_reshape(g, t, ndim, shape);
}

/* [batch, sample...] as a tensor shape. */
static int batched_shape(int64_t batch, const nn_shape *sh, int64_t *out)
{
    out[0] = batch;
    for (int i = 0; i < sh->ndim; i++)
        out[1 + i] = sh->d[i];
    return 1 + sh->ndim;
}

static loom_status grad_outputs(loom_sequential *m, loom_graph *g);

loom_status loom_model_forward(loom_sequential *m, loom_graph *g, int train, int64_t batch, loom_tensor x,
                               model_forward *out)
{
    nn_shape shapes[LOOM_MAX_LAYERS + 1];
    loom_model_shapes(m, shapes);
    /* Mixed precision: the inputs and the f32 master weights are cast to
     * the compute dtype where they are used; the logits go back to f32
     * for the loss and the outputs. Token ids stay f32 (exact). */
    loom_dtype dt = m->cfg.precision;
    loom_tensor h = token_layer(m) >= 0 ? x : loom_cast(g, x, dt);
    if (m->in_ndim == 3) {
        /* the rows are images: NCHW, a reshape that moves nothing */
        int64_t is[4] = {batch, m->in_shape[0], m->in_shape[1], m->in_shape[2]};
        h = shaped(g, h, 4, is);
    }
    int last_dense = -1, last_compute = -1;
    for (int i = 0; i < m->nlayers; i++) {
        if (m->layers[i].kind == LAYER_DENSE)
            last_dense = i;
        if (m->layers[i].kind != LAYER_DROPOUT && m->layers[i].kind != LAYER_SPATIAL_DROPOUT)
            last_compute = i;
    }
    loom_tensor logits = LOOM_NONE;
    int softmax_layer = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const layer *l = &m->layers[i];
        if (l->kind == LAYER_DROPOUT) {
            if (train && l->rate > 0.0f)
                h = loom_dropout(g, h, l->rate, (uint32_t)(m->cfg.seed * 2654435761u) + (uint32_t)i + m->drop_salt);
            continue;
        }
        char scope[64];
        loom_model_scope(m, i, scope, sizeof scope);
        if (m->probe && !train && (l->kind == LAYER_DENSE || l->kind == LAYER_CONV2D)) {
            char pname[32];
            snprintf(pname, sizeof pname, "probe%d", i);
            /* a copy: h may be the input x itself, which stays an input */
            LOOM_TRY(loom_output(g, loom_scale(g, loom_cast(g, h, LOOM_F32), 1.0f), pname));
        }
        if (l->kind == LAYER_CONV2D && loom_model_qlayer(m, i)) {
            h = loom_model_build_qconv(m, g, i, h);
            continue;
        }
        if (l->kind != LAYER_DENSE && l->kind != LAYER_SEQ) {
            /* a softmax of its own at the end: the loss takes its input */
            if (i == last_compute && l->kind == LAYER_ACTIVATION && l->act == LOOM_ACT_SOFTMAX) {
                h = loom_cast(g, h, LOOM_F32);
                logits = h;
                softmax_layer = 1;
            }
            h = loom_model_build_conv(m, g, i, train, h);
            continue;
        }
        LOOM_TRY(loom_graph_scope(g, scope)); /* the layer's ops are "dense1/matmul", ... */
        if (l->kind == LAYER_SEQ) {
            h = loom_seq_build(g, &l->seq, scope, &shapes[i], h, batch, train, dt,
                               (uint32_t)(m->cfg.seed * 2654435761u) + (uint32_t)i + m->drop_salt);
            LOOM_TRY(loom_graph_scope(g, NULL));
            continue;
        }
        model_param pk, pb;
        loom_model_layer_param(m, i, 0, &pk);
        loom_model_layer_param(m, i, 1, &pb);
        /* over the last axis of samples of any rank: one GEMM over rows */
        const nn_shape *in = &shapes[i];
        int64_t fin = in->d[in->ndim - 1], rows = batch * (sample_numel(in) / fin);
        int64_t s2[2] = {rows, fin}, so[LOOM_MAX_DIMS];
        if (in->ndim > 1)
            h = shaped(g, h, 2, s2);
        int fused = 0;
        if (loom_model_qlayer(m, i))
            h = loom_model_build_qdense(m, g, i, h, &fused);
        else
            h = loom_add(g,
                         loom_matmul(g, h, loom_cast(g, loom_param(g, pk.name, LOOM_F32, 2, pk.shape, pk.trainable), dt), 0, 0),
                         loom_cast(g, loom_param(g, pb.name, LOOM_F32, 1, pb.shape, pb.trainable), dt));
        if (i == last_dense) {
            h = loom_cast(g, h, LOOM_F32);
            logits = h;
        }
        if (!fused)
            h = loom_model_activate(g, h, l->act);
        if (in->ndim > 1)
            h = shaped(g, h, batched_shape(batch, &shapes[i + 1], so), so);
        LOOM_TRY(loom_graph_scope(g, NULL));
    }
    out->h = loom_cast(g, h, LOOM_F32);
    /* the logits stand in for a softmax output when the softmax is the last thing computed */
    out->softmax_out = softmax_layer ||
                       (last_dense >= 0 && last_dense == last_compute && m->layers[last_dense].act == LOOM_ACT_SOFTMAX);
    out->logits = out->softmax_out ? logits : LOOM_NONE;
    return loom_graph_status(g);
}

/* Builds forward (+ loss, backward and updates when train; with a teacher, its
 * forward pass and the distillation loss; with pruning, the mask updates). Outputs:
 * "loss" (when targets exist), "out" (eval: the model's output), "pred"
 * (argmax, classification). A model whose output is a sequence ([T, C]
 * per sample) predicts each of its T positions: labels [batch * T]. */
static loom_status build(loom_sequential *m, loom_graph *g, int mode, int64_t batch)
{
    int train = mode != LOOM_MODEL_EVAL;
    if (train && m->quant)
        return loom_fail(m->ctx, LOOM_E_UNSUPPORTED, "sequential: a quantized (int8) model is inference only; "
                         "train the f32 model and quantize it again");
    int64_t xs[2] = {batch, m->in_features};
    loom_tensor x = loom_input(g, "x", LOOM_F32, 2, xs);
    model_forward fw;
    LOOM_TRY(loom_model_forward(m, g, train, batch, x, &fw));
    loom_dtype dt = m->cfg.precision;
    loom_tensor h = fw.h, logits = fw.logits;
    int softmax_out = fw.softmax_out;
    int classify = m->cfg.loss != LOOM_LOSS_MSE;
    int64_t outs = loom_model_outputs(m), pos = loom_model_positions(m), classes = outs / pos;
    int64_t flat2[2] = {batch * pos, classes}, out2[2] = {batch, outs};
    loom_tensor hf = shaped(g, h, 2, flat2), lf = softmax_out ? shaped(g, logits, 2, flat2) : LOOM_NONE;
    loom_tensor loss = LOOM_NONE;
    if (m->cfg.loss == LOOM_LOSS_SPARSE_CE) {
        int64_t ls[1] = {batch * pos};
        loom_tensor labels = loom_input(g, "labels", LOOM_I32, 1, ls);
        /* On a softmax output, the loss comes from the logits: the same
         * value as Keras's cross-entropy of the probabilities, stable. */
        if (train && m->teacher) {
            /* distillation: the frozen teacher's forward pass over the
             * same batch, in this program */
            loom_tensor tl;
            LOOM_TRY(loom_model_build_teacher(m, g, x, batch, &tl));
            LOOM_TRY(loom_graph_scope(g, "distill")); /* profiles show the loss's share */
            loss = loom_distillation_loss(g, softmax_out ? lf : hf, tl, labels, m->temperature, m->alpha);
            LOOM_TRY(loom_graph_scope(g, NULL));
        } else {
            loss = softmax_out ? loom_sparse_cross_entropy(g, lf, labels)
                               : loom_sparse_cross_entropy(g, hf, labels);
        }
    } else {
        int64_t ts[2] = {batch, outs};
        loom_tensor t = loom_input(g, "targets", LOOM_F32, 2, ts);
        loom_tensor ho = shaped(g, h, 2, out2);
        if (m->cfg.loss == LOOM_LOSS_CE)
            loss = softmax_out ? loom_cross_entropy(g, shaped(g, logits, 2, out2), t)
                               : loom_scale(g, loom_sum_all(g, loom_mul(g, t, loom_log(g, ho))),
                                            -1.0f / (float)batch);
        else
            loss = loom_mse(g, ho, t);
    }
    loom_output(g, loss, "loss");
    /* softmax keeps the order: the prediction comes from the logits, so a
     * training step never computes the probabilities */
    if (classify)
        loom_output(g, loom_argmax(g, softmax_out ? lf : hf, -1), "pred");
    if (!train) {
        loom_output(g, shaped(g, h, 2, out2), "out");
    } else {
        /* f16 gradients underflow without a loss scale; bf16 has f32's range */
        if (dt == LOOM_F16)
            LOOM_TRY(loom_backward_scaled(g, loss, NULL, 0, NULL));
        else
            LOOM_TRY(loom_backward(g, loss, NULL, 0));
        if (mode == LOOM_MODEL_TRAIN) {
            LOOM_TRY(loom_optimize(g, &m->cfg.optimizer));
            if (m->prune_on)
                LOOM_TRY(loom_model_build_masks(m, g));
        } else {
            LOOM_TRY(grad_outputs(m, g));
        }
    }
    return loom_graph_status(g);
}

/* The gradients half of a split step: each trainable parameter's gradient
 * is an output of its own, read after the replay (so the fusion pass keeps
 * the bias gradients' reductions instead of folding them into updates). */
static loom_status grad_outputs(loom_sequential *m, loom_graph *g)
{
    for (int k = 0; k < loom_model_param_count(m); k++) {
        model_param p;
        loom_model_param(m, k, &p, NULL);
        if (!p.trainable)
            continue;
        loom_tensor t = loom_graph_find(g, p.name), gr = t.id ? loom_grad(g, t) : LOOM_NONE;
        if (!gr.id)
            return loom_fail(m->ctx, LOOM_E_STATE, "sequential: the parameter %s has no gradient", p.name);
        char name[160];
        snprintf(name, sizeof name, "grad:%s", p.name);
        LOOM_TRY(loom_output(g, gr, name));
    }
    return LOOM_OK;
}

loom_status loom_model_build(loom_sequential *m, loom_graph *g, int mode, int64_t batch)
{
    if (mode != LOOM_MODEL_UPDATE)
        return build(m, g, mode, batch);
    /* The update half: the same update nodes loom_optimize makes, over
     * gradients that come in as inputs. */
    for (int k = 0; k < loom_model_param_count(m); k++) {
        model_param p;
        loom_model_param(m, k, &p, NULL);
        if (!p.trainable)
            continue;
        char name[160];
        snprintf(name, sizeof name, "grad:%s", p.name);
        loom_tensor t = loom_param(g, p.name, LOOM_F32, p.ndim, p.shape, 1);
        LOOM_TRY(loom_set_grad(g, t, loom_input(g, name, LOOM_F32, p.ndim, p.shape)));
    }
    LOOM_TRY(loom_optimize(g, &m->cfg.optimizer));
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
    loom_status s = build(m, mp->g, train ? LOOM_MODEL_TRAIN : LOOM_MODEL_EVAL, batch);
    if (s == LOOM_OK) {
        loom_compile_opts o = {0};
        o.profile = m->cfg.profile;
        s = loom_compile(mp->g, m->dev, m->st, &o, &mp->p);
    } else if (loom_graph_status(mp->g) != LOOM_OK) {
        /* an op's sticky error; the builder's own refusals keep their message */
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

loom_status loom_sequential_plan(loom_sequential *m, int train, loom_plan_report *out)
{
    if (!m || !out)
        return LOOM_E_INVALID;
    if (!m->compiled)
        return loom_fail(m->ctx, LOOM_E_STATE, "loom_sequential_plan: compile the model first");
    model_prog *mp;
    LOOM_TRY(loom_model_prog(m, !!train, m->cfg.batch, &mp));
    return loom_program_plan(mp->p, out);
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
    /* a sequence [T, C] per sample predicts each of its positions; images are no predictions */
    if (m->layers[m->nlayers - 1].out_ndim == 3)
        return loom_fail(m->ctx, LOOM_E_SHAPE, "loom_sequential_compile: the model ends in images; end it with "
                         "flatten, global_avg_pool2d or dense");
    loom_model_config c = cfg ? *cfg : loom_model_config_default();
    char why[160];
    if (loom_model_config_problem(&c, why, sizeof why))
        return loom_fail(m->ctx, LOOM_E_INVALID, "loom_sequential_compile: %s", why);
    /* The batch buffers: every product checked, whatever the batch size
     * a file or an option asked for. */
    int64_t outs = loom_model_outputs(m), b = c.batch, pos = loom_model_positions(m);
    if (pos > 1 && c.loss != LOOM_LOSS_SPARSE_CE)
        return loom_fail(m->ctx, LOOM_E_INVALID, "loom_sequential_compile: the model predicts %lld positions per "
                         "sample; only the sparse cross-entropy takes a label per position", (long long)pos);
    size_t xb, yb, tb;
    if (loom_mul_size((size_t)b, (size_t)m->in_features, &xb) || loom_mul_size(xb, sizeof(float), &xb) ||
        loom_mul_size((size_t)b, (size_t)pos, &yb) || loom_mul_size(yb, sizeof(int32_t), &yb) ||
        loom_mul_size((size_t)b, (size_t)outs, &tb) ||
        loom_mul_size(tb, sizeof(float), &tb))
        return loom_fail(m->ctx, LOOM_E_OOM, "loom_sequential_compile: batch %lld of %lld inputs and %lld outputs "
                         "is too large for this machine", (long long)b, (long long)m->in_features, (long long)outs);
    m->cfg = c;
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
    if (s == LOOM_OK && m->quant)
        s = loom_model_quant_init(m);
    if (s == LOOM_OK && !m->quant)
        s = loom_model_prog(m, 1, b, &mp);
    if (s == LOOM_OK)
        s = loom_model_prog(m, 0, b, &mp);
    if (s != LOOM_OK) {
        free_progs(m);
        free_buffers(m);
        loom_state_destroy(m->st);
        m->st = NULL;
        return s;
    }
    m->compiled = 1;
    return LOOM_OK;
}

/* ---- preprocessing ---------------------------------------------------------- */

loom_status loom_sequential_set_preprocess(loom_sequential *m, loom_scaling how, const float stats[2])
{
    if (!m)
        return LOOM_E_INVALID;
    float st[2] = {0.0f, 255.0f};
    if (how == LOOM_SCALE_STANDARD) {
        if (!stats)
            return loom_fail(m->ctx, LOOM_E_INVALID, "loom_sequential_set_preprocess: standardisation needs its "
                             "(mean, std)");
        st[0] = stats[0];
        st[1] = stats[1];
        if (!isfinite(st[0]) || !isfinite(st[1]) || !(st[1] > 0))
            return loom_fail(m->ctx, LOOM_E_INVALID, "loom_sequential_set_preprocess: stats (mean %g, std %g) need "
                             "a finite mean and a std > 0", (double)st[0], (double)st[1]);
    } else if (how != LOOM_SCALE_UNIT) {
        return loom_fail(m->ctx, LOOM_E_INVALID, "loom_sequential_set_preprocess: unknown scaling %d", (int)how);
    }
    m->pre_set = 1;
    m->pre_how = how;
    m->pre_stats[0] = st[0];
    m->pre_stats[1] = st[1];
    return LOOM_OK;
}

loom_status loom_sequential_get_preprocess(const loom_sequential *m, loom_scaling *how, float stats[2])
{
    if (!m)
        return LOOM_E_INVALID;
    if (!m->pre_set)
        return loom_fail(m->ctx, LOOM_E_STATE, "the model records no input preprocessing");
    if (how)
        *how = m->pre_how;
    if (stats) {
        stats[0] = m->pre_stats[0];
        stats[1] = m->pre_stats[1];
    }
    return LOOM_OK;
}

loom_status loom_sequential_preprocess(const loom_sequential *m, float *x, int64_t n)
{
    if (!m)
        return LOOM_E_INVALID;
    size_t total;
    if (!x || n < 0 || loom_mul_size((size_t)n, (size_t)m->in_features, &total))
        return loom_fail(m->ctx, LOOM_E_INVALID, "loom_sequential_preprocess: bad arguments (n %lld)", (long long)n);
    LOOM_TRY(loom_sequential_get_preprocess(m, NULL, NULL));
    loom_scale_values(m->pre_how, m->pre_stats, x, total);
    return LOOM_OK;
}
