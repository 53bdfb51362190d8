/* The Sequential model's sequence layers: their JSON fields, shapes,
 * weights and graphs (seq_layers.h). Built on include/loom.h alone.
 *
 * Activations inside a block stay [batch * T, D] so that every projection
 * is one GEMM with its bias (which the fusion pass folds in); attention
 * reads them as [batch, T, heads, head size] (LOOM_LAYOUT_BNHD), no
 * transposes. LSTM and GRU are unrolled in the graph, one step after the
 * other; backpropagation through time is the autodiff of that graph. */
#include "seq_layers.h"
#include "nn_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const type_names[SEQ_COUNT] = {
    [SEQ_RESHAPE] = "reshape",      [SEQ_PATCHES] = "patches",   [SEQ_EMBEDDING] = "embedding",
    [SEQ_POSITION] = "position",    [SEQ_LAYER_NORM] = "layer_norm", [SEQ_RMS_NORM] = "rms_norm",
    [SEQ_ATTENTION] = "attention",  [SEQ_ENCODER] = "transformer_encoder",
    [SEQ_DECODER] = "transformer_decoder", [SEQ_POOL] = "pool", [SEQ_LSTM] = "lstm", [SEQ_GRU] = "gru",
};

/* the JSON fields of each kind, besides "type" */
static const char *const keys_reshape[] = {"type", "shape", NULL};
static const char *const keys_patches[] = {"type", "size", "rows", "cols", NULL};
static const char *const keys_embedding[] = {"type", "vocab", "dim", "tokens", NULL};
static const char *const keys_plain[] = {"type", NULL};
static const char *const keys_norm[] = {"type", "eps", NULL};
static const char *const keys_attention[] = {"type", "heads", "kv_heads", "causal", "rope", NULL};
static const char *const keys_block[] = {"type", "heads", "kv_heads", "ffn", "activation", "norm", "rope", "dropout",
                                         NULL};
static const char *const keys_pool[] = {"type", "mode", NULL};
static const char *const keys_rnn[] = {"type", "units", "return_sequences", NULL};

static const char *const *const kind_keys[SEQ_COUNT] = {
    [SEQ_RESHAPE] = keys_reshape, [SEQ_PATCHES] = keys_patches,     [SEQ_EMBEDDING] = keys_embedding,
    [SEQ_POSITION] = keys_plain,  [SEQ_LAYER_NORM] = keys_norm,     [SEQ_RMS_NORM] = keys_norm,
    [SEQ_ATTENTION] = keys_attention, [SEQ_ENCODER] = keys_block,   [SEQ_DECODER] = keys_block,
    [SEQ_POOL] = keys_pool,       [SEQ_LSTM] = keys_rnn,            [SEQ_GRU] = keys_rnn,
};

static const char *const act_names[] = {"gelu", "relu", "swiglu"};
static const char *const pool_names[] = {"mean", "first", "last"};

#define MAX_DIM ((int64_t)1 << 24)

int loom_seq_kind(const char *type)
{
    for (int k = 0; type && k < SEQ_COUNT; k++)
        if (!strcmp(type, type_names[k]))
            return k;
    return -1;
}

const char *loom_seq_type(seq_kind k)
{
    return (unsigned)k < SEQ_COUNT ? type_names[k] : "?";
}

/* ---- JSON ---------------------------------------------------------------------- */

typedef struct parser {
    loom_ctx *ctx;
    const cJSON *o;
    int li;
    const char *what, *type;
    loom_status s;
} parser;

#define PBAD(ps, ...)                                                                                         \
    do {                                                                                                       \
        char m_[200];                                                                                          \
        snprintf(m_, sizeof m_, __VA_ARGS__);                                                                 \
        (ps)->s = loom_fail((ps)->ctx, LOOM_E_FORMAT, "%s: loom.architecture layer %d (%s): %s", (ps)->what,   \
                            (ps)->li, (ps)->type, m_);                                                         \
    } while (0)

/* An integer field in [lo, hi]; def when absent (def < lo: required). */
static int64_t field_int(parser *ps, const char *key, int64_t lo, int64_t hi, int64_t def)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(ps->o, key);
    if (ps->s != LOOM_OK)
        return def;
    if (!j) {
        if (def < lo)
            PBAD(ps, "\"%s\" is missing", key);
        return def;
    }
    double d = cJSON_IsNumber(j) ? j->valuedouble : NAN;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d)) {
        PBAD(ps, "\"%s\" is not an integer in [%lld, %lld]", key, (long long)lo, (long long)hi);
        return def;
    }
    return (int64_t)d;
}

static int field_bool(parser *ps, const char *key, int def)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(ps->o, key);
    if (ps->s != LOOM_OK || !j)
        return def;
    if (!cJSON_IsBool(j)) {
        PBAD(ps, "\"%s\" is not true or false", key);
        return def;
    }
    return cJSON_IsTrue(j);
}

static float field_float(parser *ps, const char *key, double lo, double hi, float def)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(ps->o, key);
    if (ps->s != LOOM_OK || !j)
        return def;
    if (!cJSON_IsNumber(j) || !(j->valuedouble >= lo && j->valuedouble <= hi)) {
        PBAD(ps, "\"%s\" is not a number in [%g, %g]", key, lo, hi);
        return def;
    }
    return (float)j->valuedouble;
}

static int field_name(parser *ps, const char *key, const char *const *names, int n, int def)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(ps->o, key);
    if (ps->s != LOOM_OK || !j)
        return def;
    const char *v = cJSON_GetStringValue(j);
    for (int i = 0; v && i < n; i++)
        if (!strcmp(v, names[i]))
            return i;
    PBAD(ps, "\"%s\" is not one of the known names (\"%s\", ...)", key, names[0]);
    return def;
}

loom_status loom_seq_parse(loom_ctx *ctx, const cJSON *o, int li, const char *what, nn_seq_layer *out)
{
    memset(out, 0, sizeof *out);
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "type"));
    int k = loom_seq_kind(type);
    parser ps = {ctx, o, li, what, type ? type : "?", LOOM_OK};
    if (k < 0)
        return loom_fail(ctx, LOOM_E_FORMAT, "%s: loom.architecture layer %d has unknown type \"%.64s\"", what, li,
                         type ? type : "?");
    out->kind = (seq_kind)k;
    for (const cJSON *f = o->child; f; f = f->next) {
        int known = 0;
        for (int i = 0; kind_keys[k][i] && !known; i++)
            known = f->string && !strcmp(f->string, kind_keys[k][i]);
        if (!known)
            return loom_fail(ctx, LOOM_E_FORMAT, "%s: loom.architecture layer %d has an unknown field \"%.64s\"", what,
                             li, f->string ? f->string : "?");
    }
    switch (out->kind) {
    case SEQ_RESHAPE: {
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(o, "shape");
        int n = cJSON_IsArray(sh) ? cJSON_GetArraySize(sh) : 0;
        if (n < 1 || n > NN_SHAPE_MAX) {
            PBAD(&ps, "\"shape\" is not an array of 1 to %d dims", NN_SHAPE_MAX);
            break;
        }
        out->shape.ndim = n;
        for (int i = 0; i < n; i++) {
            const cJSON *d = cJSON_GetArrayItem(sh, i);
            if (!cJSON_IsNumber(d) || !(d->valuedouble >= 1 && d->valuedouble <= (double)MAX_DIM) ||
                d->valuedouble != floor(d->valuedouble)) {
                PBAD(&ps, "\"shape\"[%d] is not an integer in [1, %lld]", i, (long long)MAX_DIM);
                break;
            }
            out->shape.d[i] = (int64_t)d->valuedouble;
        }
        break;
    }
    case SEQ_PATCHES:
        out->size = field_int(&ps, "size", 1, 4096, 0);
        out->rows = field_int(&ps, "rows", 1, 65536, 0);
        out->cols = field_int(&ps, "cols", 1, 65536, 0);
        break;
    case SEQ_EMBEDDING: {
        out->vocab = field_int(&ps, "vocab", 1, INT32_MAX, 0);
        out->dim = field_int(&ps, "dim", 1, MAX_DIM, 0);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "tokens");
        if (t && ps.s == LOOM_OK) {
            int n = cJSON_IsArray(t) ? cJSON_GetArraySize(t) : -1;
            if (n != out->vocab || n > 256) {
                PBAD(&ps, "\"tokens\" is not an array of \"vocab\" (at most 256) bytes");
                break;
            }
            for (int i = 0; i < n; i++) {
                const cJSON *b = cJSON_GetArrayItem(t, i);
                if (!cJSON_IsNumber(b) || !(b->valuedouble >= 0 && b->valuedouble <= 255) ||
                    b->valuedouble != floor(b->valuedouble)) {
                    PBAD(&ps, "\"tokens\"[%d] is not a byte", i);
                    break;
                }
                out->tokens[i] = (unsigned char)b->valuedouble;
            }
            out->ntokens = n;
        }
        break;
    }
    case SEQ_LAYER_NORM:
    case SEQ_RMS_NORM:
        out->eps = field_float(&ps, "eps", 0, 1, out->kind == SEQ_RMS_NORM ? 1e-6f : 1e-5f);
        break;
    case SEQ_ATTENTION:
    case SEQ_ENCODER:
    case SEQ_DECODER:
        out->heads = field_int(&ps, "heads", 1, 4096, 0);
        out->kv_heads = field_int(&ps, "kv_heads", 1, 4096, out->heads);
        out->rope = field_bool(&ps, "rope", 0);
        out->causal = out->kind == SEQ_DECODER;
        if (out->kind == SEQ_ATTENTION) {
            out->causal = field_bool(&ps, "causal", 0);
            break;
        }
        out->ffn = field_int(&ps, "ffn", 1, MAX_DIM, 0);
        out->act = (seq_act)field_name(&ps, "activation", act_names, 3, SEQ_ACT_GELU);
        out->rms = field_name(&ps, "norm", (const char *const[]){"layer", "rms"}, 2, 0);
        out->dropout = field_float(&ps, "dropout", 0, 0.999, 0.0f);
        out->eps = out->rms ? 1e-6f : 1e-5f;
        break;
    case SEQ_POOL:
        out->pool = (seq_pool)field_name(&ps, "mode", pool_names, 3, SEQ_POOL_MEAN);
        break;
    case SEQ_LSTM:
    case SEQ_GRU:
        out->units = field_int(&ps, "units", 1, MAX_DIM, 0);
        out->return_sequences = field_bool(&ps, "return_sequences", 0);
        break;
    default:
        break;
    }
    return ps.s;
}

void loom_seq_describe(const nn_seq_layer *l, cJSON *o)
{
    cJSON_AddStringToObject(o, "type", type_names[l->kind]);
    switch (l->kind) {
    case SEQ_RESHAPE: {
        cJSON *a = cJSON_AddArrayToObject(o, "shape");
        for (int i = 0; i < l->shape.ndim; i++)
            cJSON_AddItemToArray(a, cJSON_CreateNumber((double)l->shape.d[i]));
        break;
    }
    case SEQ_PATCHES:
        cJSON_AddNumberToObject(o, "size", (double)l->size);
        cJSON_AddNumberToObject(o, "rows", (double)l->rows);
        cJSON_AddNumberToObject(o, "cols", (double)l->cols);
        break;
    case SEQ_EMBEDDING:
        cJSON_AddNumberToObject(o, "vocab", (double)l->vocab);
        cJSON_AddNumberToObject(o, "dim", (double)l->dim);
        if (l->ntokens) {
            cJSON *a = cJSON_AddArrayToObject(o, "tokens");
            for (int i = 0; i < l->ntokens; i++)
                cJSON_AddItemToArray(a, cJSON_CreateNumber(l->tokens[i]));
        }
        break;
    case SEQ_LAYER_NORM:
    case SEQ_RMS_NORM:
        cJSON_AddNumberToObject(o, "eps", (double)l->eps);
        break;
    case SEQ_ATTENTION:
    case SEQ_ENCODER:
    case SEQ_DECODER:
        cJSON_AddNumberToObject(o, "heads", (double)l->heads);
        cJSON_AddNumberToObject(o, "kv_heads", (double)l->kv_heads);
        cJSON_AddBoolToObject(o, "rope", l->rope);
        if (l->kind == SEQ_ATTENTION) {
            cJSON_AddBoolToObject(o, "causal", l->causal);
            break;
        }
        cJSON_AddNumberToObject(o, "ffn", (double)l->ffn);
        cJSON_AddStringToObject(o, "activation", act_names[l->act]);
        cJSON_AddStringToObject(o, "norm", l->rms ? "rms" : "layer");
        cJSON_AddNumberToObject(o, "dropout", (double)l->dropout);
        break;
    case SEQ_POOL:
        cJSON_AddStringToObject(o, "mode", pool_names[l->pool]);
        break;
    case SEQ_LSTM:
    case SEQ_GRU:
        cJSON_AddNumberToObject(o, "units", (double)l->units);
        cJSON_AddBoolToObject(o, "return_sequences", l->return_sequences);
        break;
    default:
        break;
    }
}

/* ---- shapes ------------------------------------------------------------------------ */

static int64_t numel_of(const nn_shape *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++)
        n *= s->d[i];
    return n;
}

static const char *shape_str(char *buf, size_t n, const nn_shape *s)
{
    return loom_shape_str(buf, n, s->ndim, s->d);
}

loom_status loom_seq_shape(loom_ctx *ctx, const nn_seq_layer *l, int li, const nn_shape *in, nn_shape *out)
{
    char sb[96];
    const char *t = type_names[l->kind];
    *out = *in;
#define SBAD(...) loom_fail(ctx, LOOM_E_SHAPE, "layer %d (%s) takes samples of %s: " __VA_ARGS__)
    switch (l->kind) {
    case SEQ_RESHAPE:
        if (numel_of(&l->shape) != numel_of(in))
            return SBAD("%lld values cannot become %s", li, t, shape_str(sb, sizeof sb, in), (long long)numel_of(in),
                        "the target shape");
        *out = l->shape;
        return LOOM_OK;
    case SEQ_PATCHES:
        if (numel_of(in) != l->rows * l->cols || l->rows % l->size || l->cols % l->size)
            return SBAD("they must be %lld x %lld images that %lld x %lld patches tile", li, t,
                        shape_str(sb, sizeof sb, in), (long long)l->rows, (long long)l->cols, (long long)l->size,
                        (long long)l->size);
        out->ndim = 2;
        out->d[0] = (l->rows / l->size) * (l->cols / l->size);
        out->d[1] = l->size * l->size;
        return LOOM_OK;
    case SEQ_EMBEDDING:
        if (in->ndim != 1)
            return SBAD("it reads one sequence of token ids per sample", li, t, shape_str(sb, sizeof sb, in));
        out->ndim = 2;
        out->d[1] = l->dim;
        return LOOM_OK;
    case SEQ_LAYER_NORM:
    case SEQ_RMS_NORM:
        return LOOM_OK;
    case SEQ_POSITION:
    case SEQ_ATTENTION:
    case SEQ_ENCODER:
    case SEQ_DECODER: {
        if (in->ndim != 2)
            return SBAD("it needs [sequence, features]", li, t, shape_str(sb, sizeof sb, in));
        if (l->kind == SEQ_POSITION)
            return LOOM_OK;
        int64_t d = in->d[1];
        if (d % l->heads || l->heads % l->kv_heads || d / l->heads > 256 || (l->rope && (d / l->heads) % 2))
            return SBAD("%lld features in %lld heads (%lld key-value heads) do not fit (heads that divide the "
                        "features and are a multiple of the key-value heads, a head size up to 256, even with rope)",
                        li, t, shape_str(sb, sizeof sb, in), (long long)d, (long long)l->heads,
                        (long long)l->kv_heads);
        return LOOM_OK;
    }
    case SEQ_POOL:
        if (in->ndim != 2)
            return SBAD("it pools [sequence, features]", li, t, shape_str(sb, sizeof sb, in));
        out->ndim = 1;
        out->d[0] = in->d[1];
        return LOOM_OK;
    case SEQ_LSTM:
    case SEQ_GRU:
        if (in->ndim != 2)
            return SBAD("it needs [sequence, features]", li, t, shape_str(sb, sizeof sb, in));
        if (l->return_sequences) {
            out->d[1] = l->units;
        } else {
            out->ndim = 1;
            out->d[0] = l->units;
        }
        return LOOM_OK;
    default:
        return LOOM_E_INVALID;
    }
#undef SBAD
}

/* ---- weights ------------------------------------------------------------------------- */

/* One weight of a kind's list: its name under the scope, shape from the
 * sample's features (F), the layer's width (D = F for blocks) and units. */
typedef struct wdef {
    const char *name;
    char rows, cols;           /* 'F' features in, 'U' units, 'Q' q width, 'K' k width, 'H' ffn, 'T' positions,
                                  'V' vocab, 'P' patch / embedding dim, 0: a vector */
    nn_init_kind init;
} wdef;

static const wdef w_embedding[] = {{"table", 'V', 'P', NN_INIT_NORMAL}};
static const wdef w_position[] = {{"table", 'T', 'F', NN_INIT_NORMAL}};
static const wdef w_norm[] = {{"gamma", 'F', 0, NN_INIT_ONE}, {"beta", 'F', 0, NN_INIT_ZERO}};
static const wdef w_rms[] = {{"gamma", 'F', 0, NN_INIT_ONE}};
#define ATTN_WEIGHTS(prefix)                                                                                \
    {prefix "wq", 'F', 'Q', NN_INIT_GLOROT}, {prefix "bq", 'Q', 0, NN_INIT_ZERO},                           \
        {prefix "wk", 'F', 'K', NN_INIT_GLOROT}, {prefix "bk", 'K', 0, NN_INIT_ZERO},                       \
        {prefix "wv", 'F', 'K', NN_INIT_GLOROT}, {prefix "bv", 'K', 0, NN_INIT_ZERO},                       \
        {prefix "wo", 'Q', 'F', NN_INIT_GLOROT}, { prefix "bo", 'F', 0, NN_INIT_ZERO }
static const wdef w_attention[] = {ATTN_WEIGHTS("")};
/* pre-norm blocks: norm1, attention, norm2, the feed-forward layers (the
 * gate's weights last, for SwiGLU only) */
static const wdef w_block[] = {{"norm1/gamma", 'F', 0, NN_INIT_ONE}, {"norm1/beta", 'F', 0, NN_INIT_ZERO},
                               ATTN_WEIGHTS("attn/"),
                               {"norm2/gamma", 'F', 0, NN_INIT_ONE}, {"norm2/beta", 'F', 0, NN_INIT_ZERO},
                               {"ffn/w1", 'F', 'H', NN_INIT_GLOROT}, {"ffn/b1", 'H', 0, NN_INIT_ZERO},
                               {"ffn/w2", 'H', 'F', NN_INIT_GLOROT}, {"ffn/b2", 'F', 0, NN_INIT_ZERO},
                               {"ffn/wg", 'F', 'H', NN_INIT_GLOROT}, {"ffn/bg", 'H', 0, NN_INIT_ZERO}};
/* LSTM gates i, f, g, o and GRU gates r, z, n: input and recurrent
 * kernels and a bias each (GRU's candidate also a recurrent bias) */
static const wdef w_lstm[] = {{"w_i", 'F', 'U', NN_INIT_GLOROT}, {"u_i", 'U', 'U', NN_INIT_GLOROT},
                              {"b_i", 'U', 0, NN_INIT_ZERO},     {"w_f", 'F', 'U', NN_INIT_GLOROT},
                              {"u_f", 'U', 'U', NN_INIT_GLOROT}, {"b_f", 'U', 0, NN_INIT_ONE},
                              {"w_g", 'F', 'U', NN_INIT_GLOROT}, {"u_g", 'U', 'U', NN_INIT_GLOROT},
                              {"b_g", 'U', 0, NN_INIT_ZERO},     {"w_o", 'F', 'U', NN_INIT_GLOROT},
                              {"u_o", 'U', 'U', NN_INIT_GLOROT}, {"b_o", 'U', 0, NN_INIT_ZERO}};
static const wdef w_gru[] = {{"w_r", 'F', 'U', NN_INIT_GLOROT}, {"u_r", 'U', 'U', NN_INIT_GLOROT},
                             {"b_r", 'U', 0, NN_INIT_ZERO},     {"w_z", 'F', 'U', NN_INIT_GLOROT},
                             {"u_z", 'U', 'U', NN_INIT_GLOROT}, {"b_z", 'U', 0, NN_INIT_ZERO},
                             {"w_n", 'F', 'U', NN_INIT_GLOROT}, {"u_n", 'U', 'U', NN_INIT_GLOROT},
                             {"b_n", 'U', 0, NN_INIT_ZERO},     {"b_hn", 'U', 0, NN_INIT_ZERO}};

#define COUNT(a) ((int)(sizeof a / sizeof a[0]))

static const wdef *weights_of(const nn_seq_layer *l, int *n)
{
    switch (l->kind) {
    case SEQ_EMBEDDING: *n = 1; return w_embedding;
    case SEQ_POSITION: *n = 1; return w_position;
    case SEQ_LAYER_NORM: *n = 2; return w_norm;
    case SEQ_RMS_NORM: *n = 1; return w_rms;
    case SEQ_ATTENTION: *n = COUNT(w_attention); return w_attention;
    case SEQ_ENCODER:
    case SEQ_DECODER: *n = COUNT(w_block); return w_block;
    case SEQ_LSTM: *n = COUNT(w_lstm); return w_lstm;
    case SEQ_GRU: *n = COUNT(w_gru); return w_gru;
    default: *n = 0; return NULL;
    }
}

/* A block's weights it has: RMS norms have no shift, only SwiGLU a gate. */
static int has_weight(const nn_seq_layer *l, const wdef *w)
{
    if (l->kind != SEQ_ENCODER && l->kind != SEQ_DECODER)
        return 1;
    size_t n = strlen(w->name);
    if (l->rms && n >= 4 && !strcmp(w->name + n - 4, "beta"))
        return 0;
    return l->act == SEQ_ACT_SWIGLU || (strncmp(w->name, "ffn/wg", 6) != 0 && strncmp(w->name, "ffn/bg", 6) != 0);
}

/* The layer's k-th weight. */
static const wdef *nth_weight(const nn_seq_layer *l, int k)
{
    int n;
    const wdef *w = weights_of(l, &n);
    for (int i = 0; i < n; i++)
        if (has_weight(l, &w[i]) && k-- == 0)
            return &w[i];
    return NULL;
}

int loom_seq_nparams(const nn_seq_layer *l)
{
    int n, c = 0;
    const wdef *w = weights_of(l, &n);
    for (int i = 0; i < n; i++)
        c += has_weight(l, &w[i]);
    return c;
}

static int64_t dim_of(const nn_seq_layer *l, const nn_shape *in, char c)
{
    int64_t f = in->d[in->ndim - 1], dh = l->heads ? f / l->heads : 0;
    switch (c) {
    case 'F': return f;
    case 'U': return l->units;
    case 'Q': return f;
    case 'K': return dh * l->kv_heads;
    case 'H': return l->ffn;
    case 'T': return in->d[0];
    case 'V': return l->vocab;
    case 'P': return l->dim;
    default: return 0;
    }
}

void loom_seq_param(const nn_seq_layer *l, const char *scope, const nn_shape *in, int k, char *name, size_t n,
                    int *ndim, int64_t shape[LOOM_MAX_DIMS], nn_init_kind *init)
{
    const wdef *w = nth_weight(l, k);
    snprintf(name, n, "%s/%s", scope, w->name);
    shape[0] = dim_of(l, in, w->rows);
    *ndim = w->cols ? 2 : 1;
    if (w->cols)
        shape[1] = dim_of(l, in, w->cols);
    *init = w->init;
}

/* ---- graphs ----------------------------------------------------------------------------- */

#define MAX_WEIGHTS 32

typedef struct bctx {
    loom_graph *g;
    const nn_seq_layer *l;
    const char *scope;
    const nn_shape *in;
    loom_dtype dt;
    loom_tensor cache[MAX_WEIGHTS]; /* each weight, cast, made once per graph */
} bctx;

/* The weight called `name` under the scope, in the compute dtype (the one
 * node each, however many steps read it). */
static loom_tensor weight(bctx *b, const char *name)
{
    int cnt = loom_seq_nparams(b->l);
    for (int k = 0; k < cnt && k < MAX_WEIGHTS; k++)
        if (!strcmp(nth_weight(b->l, k)->name, name)) {
            if (b->cache[k].id)
                return b->cache[k];
            char full[160];
            int nd;
            int64_t s[LOOM_MAX_DIMS];
            nn_init_kind init;
            loom_seq_param(b->l, b->scope, b->in, k, full, sizeof full, &nd, s, &init);
            b->cache[k] = loom_cast(b->g, loom_param(b->g, full, LOOM_F32, nd, s, 1), b->dt);
            return b->cache[k];
        }
    return LOOM_NONE;
}

/* x [rows, in] W [in, out] + bias: one GEMM whose bias the fusion pass
 * folds in. */
static loom_tensor linear(bctx *b, loom_tensor x, const char *wn, const char *bn)
{
    loom_tensor y = loom_matmul(b->g, x, weight(b, wn), 0, 0);
    return bn ? loom_add(b->g, y, weight(b, bn)) : y;
}

static loom_tensor reshape2(loom_graph *g, loom_tensor x, int64_t a, int64_t c)
{
    int64_t s[2] = {a, c};
    return loom_reshape(g, x, 2, s);
}

/* Multi-head self-attention over x [batch * T, D]; the weights under
 * prefix ("" or "attn/"). */
static loom_tensor self_attention(bctx *b, loom_tensor x, int64_t batch, const char *prefix)
{
    loom_graph *g = b->g;
    const nn_seq_layer *l = b->l;
    int64_t t = b->in->d[0], d = b->in->d[1], dh = d / l->heads;
    char n[8][32];
    static const char *const w[8] = {"wq", "bq", "wk", "bk", "wv", "bv", "wo", "bo"};
    for (int i = 0; i < 8; i++)
        snprintf(n[i], sizeof n[i], "%s%s", prefix, w[i]);
    int64_t sq[4] = {batch, t, l->heads, dh}, sk[4] = {batch, t, l->kv_heads, dh};
    loom_tensor q = loom_reshape(g, linear(b, x, n[0], n[1]), 4, sq);
    loom_tensor k = loom_reshape(g, linear(b, x, n[2], n[3]), 4, sk);
    loom_tensor v = loom_reshape(g, linear(b, x, n[4], n[5]), 4, sk);
    if (l->rope) {
        q = loom_rope(g, q, 1, 10000.0f);
        k = loom_rope(g, k, 1, 10000.0f);
    }
    loom_attention_opts o = loom_attention_opts_default();
    o.causal = l->causal;
    o.layout = LOOM_LAYOUT_BNHD;
    loom_tensor a = loom_attention(g, q, k, v, LOOM_NONE, &o);
    return linear(b, reshape2(g, a, batch * t, d), n[6], n[7]);
}

static loom_tensor norm(bctx *b, loom_tensor x, const char *prefix, int rms, float eps)
{
    char gn[32], bn[32];
    snprintf(gn, sizeof gn, "%sgamma", prefix);
    snprintf(bn, sizeof bn, "%sbeta", prefix);
    if (rms)
        return loom_rms_norm(b->g, x, weight(b, gn), eps);
    return loom_layer_norm(b->g, x, weight(b, gn), weight(b, bn), eps);
}

/* The pre-norm Transformer block: x + attention(norm(x)), then
 * x + ffn(norm(x)). */
static loom_tensor block(bctx *b, loom_tensor x, int64_t batch, int train, uint32_t seed)
{
    loom_graph *g = b->g;
    const nn_seq_layer *l = b->l;
    int64_t t = b->in->d[0], d = b->in->d[1];
    x = reshape2(g, x, batch * t, d);
    loom_tensor a = self_attention(b, norm(b, x, "norm1/", l->rms, l->eps), batch, "attn/");
    if (train && l->dropout > 0)
        a = loom_dropout(g, a, l->dropout, seed);
    x = loom_add(g, x, a);
    loom_tensor h = norm(b, x, "norm2/", l->rms, l->eps), f;
    if (l->act == SEQ_ACT_SWIGLU) {
        f = loom_swiglu(g, linear(b, h, "ffn/wg", "ffn/bg"), linear(b, h, "ffn/w1", "ffn/b1"));
    } else {
        f = linear(b, h, "ffn/w1", "ffn/b1");
        f = l->act == SEQ_ACT_RELU ? loom_relu(g, f) : loom_gelu(g, f);
    }
    f = linear(b, f, "ffn/w2", "ffn/b2");
    if (train && l->dropout > 0)
        f = loom_dropout(g, f, l->dropout, seed ^ 0x5bd1e995u);
    int64_t s[3] = {batch, t, d};
    return loom_reshape(g, loom_add(g, x, f), 3, s);
}

/* The time step t of x [batch, T, F]: [batch, F]. */
static loom_tensor step_of(loom_graph *g, loom_tensor x, int64_t t)
{
    int32_t i = (int32_t)t;
    return loom_take(g, x, loom_constant(g, NULL, LOOM_I32, 0, NULL, &i), 1);
}

/* h_t into the sequence of outputs: seq + h_t at step t ([batch, T, U]). */
static loom_tensor put_step(bctx *b, loom_tensor seq, loom_tensor ht, int64_t batch, int64_t t, int64_t steps)
{
    loom_graph *g = b->g;
    int64_t u = b->l->units, s1[3] = {batch, 1, u}, n = batch * u;
    int32_t *idx = loom_malloc(loom_graph_ctx(g), (size_t)n * sizeof *idx);
    if (!idx)
        return LOOM_NONE;
    for (int64_t i = 0; i < n; i++)
        idx[i] = (int32_t)t;
    loom_tensor it = loom_constant(g, NULL, LOOM_I32, 3, s1, idx);
    loom_free(loom_graph_ctx(g), idx, (size_t)n * sizeof *idx);
    if (!seq.id) {
        /* zeros (all bits zero in every float dtype) */
        int64_t sa[3] = {batch, steps, u};
        size_t bytes = (size_t)(batch * steps * u) * loom_dtype_size(b->dt);
        void *zero = loom_calloc(loom_graph_ctx(g), 1, bytes);
        if (!zero)
            return LOOM_NONE;
        seq = loom_constant(g, NULL, b->dt, 3, sa, zero);
        loom_free(loom_graph_ctx(g), zero, bytes);
    }
    return loom_scatter_add(g, seq, 1, it, loom_reshape(g, ht, 3, s1));
}

static loom_tensor gate(bctx *b, loom_tensor xt, loom_tensor h, const char *w, const char *u, const char *bias)
{
    loom_tensor z = linear(b, xt, w, bias);
    return h.id ? loom_add(b->g, z, loom_matmul(b->g, h, weight(b, u), 0, 0)) : z;
}

/* LSTM and GRU unrolled over the T steps of x [batch, T, F]. */
static loom_tensor recurrent(bctx *b, loom_tensor x, int64_t batch)
{
    loom_graph *g = b->g;
    int64_t steps = b->in->d[0];
    loom_tensor h = LOOM_NONE, c = LOOM_NONE, seq = LOOM_NONE;
    for (int64_t t = 0; t < steps && loom_graph_status(g) == LOOM_OK; t++) {
        loom_tensor xt = step_of(g, x, t);
        if (b->l->kind == SEQ_LSTM) {
            loom_tensor i = loom_sigmoid(g, gate(b, xt, h, "w_i", "u_i", "b_i"));
            loom_tensor f = loom_sigmoid(g, gate(b, xt, h, "w_f", "u_f", "b_f"));
            loom_tensor gg = loom_tanh(g, gate(b, xt, h, "w_g", "u_g", "b_g"));
            loom_tensor o = loom_sigmoid(g, gate(b, xt, h, "w_o", "u_o", "b_o"));
            c = c.id ? loom_add(g, loom_mul(g, f, c), loom_mul(g, i, gg)) : loom_mul(g, i, gg);
            h = loom_mul(g, o, loom_tanh(g, c));
        } else {
            loom_tensor r = loom_sigmoid(g, gate(b, xt, h, "w_r", "u_r", "b_r"));
            loom_tensor z = loom_sigmoid(g, gate(b, xt, h, "w_z", "u_z", "b_z"));
            loom_tensor hn = h.id ? loom_add(g, loom_matmul(g, h, weight(b, "u_n"), 0, 0), weight(b, "b_hn"))
                                  : weight(b, "b_hn");
            loom_tensor n = loom_tanh(g, loom_add(g, linear(b, xt, "w_n", "b_n"), loom_mul(g, r, hn)));
            /* (1 - z) n + z h = n + z (h - n) */
            h = h.id ? loom_add(g, n, loom_mul(g, z, loom_sub(g, h, n))) : loom_sub(g, n, loom_mul(g, z, n));
        }
        if (b->l->return_sequences)
            seq = put_step(b, seq, h, batch, t, steps);
    }
    return b->l->return_sequences ? seq : h;
}

/* The permutation that cuts a row-major image into size x size patches,
 * each row-major, the patches in row-major order. */
static loom_tensor patches(bctx *b, loom_tensor x, int64_t batch)
{
    loom_graph *g = b->g;
    const nn_seq_layer *l = b->l;
    int64_t n = l->rows * l->cols, pc = l->cols / l->size, k = 0;
    int32_t *perm = loom_malloc(loom_graph_ctx(g), (size_t)n * sizeof *perm);
    if (!perm)
        return LOOM_NONE;
    for (int64_t p = 0; p < n / (l->size * l->size); p++)
        for (int64_t r = 0; r < l->size; r++)
            for (int64_t c = 0; c < l->size; c++)
                perm[k++] = (int32_t)(((p / pc) * l->size + r) * l->cols + (p % pc) * l->size + c);
    loom_tensor idx = loom_constant(g, NULL, LOOM_I32, 1, &n, perm);
    loom_free(loom_graph_ctx(g), perm, (size_t)n * sizeof *perm);
    int64_t s[3] = {batch, n / (l->size * l->size), l->size * l->size};
    return loom_reshape(g, loom_take(g, reshape2(g, x, batch, n), idx, 1), 3, s);
}

loom_tensor loom_seq_build(loom_graph *g, const nn_seq_layer *l, const char *scope, const nn_shape *in, loom_tensor h,
                           int64_t batch, int train, loom_dtype dt, uint32_t seed)
{
    bctx b = {g, l, scope, in, dt, {{0}}};
    nn_shape out;
    if (loom_seq_shape(loom_graph_ctx(g), l, 0, in, &out) != LOOM_OK)
        return LOOM_NONE;
    int64_t s[LOOM_MAX_DIMS] = {batch};
    for (int i = 0; i < out.ndim; i++)
        s[1 + i] = out.d[i];
    switch (l->kind) {
    case SEQ_RESHAPE:
        return loom_reshape(g, h, 1 + out.ndim, s);
    case SEQ_PATCHES:
        return patches(&b, h, batch);
    case SEQ_EMBEDDING:
        /* the inputs' values are the ids (f32 holds integers up to 2^24
         * exactly; the batch's are checked on the host as they go in) */
        return loom_embedding(g, weight(&b, "table"), loom_cast(g, h, LOOM_I32));
    case SEQ_POSITION:
        return loom_add(g, h, weight(&b, "table"));
    case SEQ_LAYER_NORM:
    case SEQ_RMS_NORM:
        return norm(&b, h, "", l->kind == SEQ_RMS_NORM, l->eps);
    case SEQ_ATTENTION: {
        loom_tensor y = self_attention(&b, reshape2(g, h, batch * in->d[0], in->d[1]), batch, "");
        return loom_reshape(g, y, 3, s);
    }
    case SEQ_ENCODER:
    case SEQ_DECODER:
        return block(&b, h, batch, train, seed);
    case SEQ_POOL: {
        if (l->pool == SEQ_POOL_MEAN)
            return loom_mean(g, h, 1, 0);
        int32_t i = l->pool == SEQ_POOL_FIRST ? 0 : (int32_t)(in->d[0] - 1);
        return loom_take(g, h, loom_constant(g, NULL, LOOM_I32, 0, NULL, &i), 1);
    }
    case SEQ_LSTM:
    case SEQ_GRU:
        return recurrent(&b, h, batch);
    default:
        return LOOM_NONE;
    }
}

loom_status loom_seq_check_tokens(loom_ctx *ctx, const nn_seq_layer *l, const char *scope, const float *x, int64_t n,
                                  int64_t features)
{
    for (int64_t r = 0; r < n; r++)
        for (int64_t j = 0; j < features; j++) {
            float v = x[r * features + j];
            if (!(v >= 0 && v < (float)l->vocab) || v != floorf(v))
                return loom_fail(ctx, LOOM_E_RANGE, "%s: token %g at row %lld, position %lld is not an id in [0, %lld)",
                                 scope, (double)v, (long long)r, (long long)j, (long long)l->vocab);
        }
    return LOOM_OK;
}
