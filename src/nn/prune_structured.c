/* Structured pruning: whole conv2d filters and dense units removed, so the
 * model that comes out has smaller tensors (and runs faster), not zeros.
 *
 * A layer is narrowed when what it gives reaches the next conv2d or dense
 * layer through channel-wise layers only (batch norm, pooling, activation,
 * dropout, flatten): then its kept filters / units are those of the
 * largest L1 or L2 kernel norm, and the same channels are kept in the
 * batch norms between and in the consumer's input (a flatten spreads a
 * channel over its H x W columns). The new model is built from the old
 * one's description with the new widths, compiled on the same device, and
 * given the surviving weights. */
#include "model.h"
#include "nn_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Layers that pass channels through one for one. */
static int channelwise(layer_kind k)
{
    return k == LAYER_BATCH_NORM || k == LAYER_MAX_POOL2D || k == LAYER_AVG_POOL2D ||
           k == LAYER_GLOBAL_AVG_POOL2D || k == LAYER_ACTIVATION || k == LAYER_DROPOUT ||
           k == LAYER_SPATIAL_DROPOUT || k == LAYER_FLATTEN;
}

static int narrowable(const layer *l)
{
    return (l->kind == LAYER_CONV2D && l->groups == 1) || (l->kind == LAYER_DENSE && l->in_ndim == 1);
}

/* 1 if layer i may lose outputs: its consumer is a conv2d (one group) or a
 * dense layer over features, reached through channel-wise layers. */
static int prunable_layer(const loom_sequential *m, int i)
{
    if (!narrowable(&m->layers[i]))
        return 0;
    for (int j = i + 1; j < m->nlayers; j++) {
        const layer *l = &m->layers[j];
        if (channelwise(l->kind))
            continue;
        return narrowable(l);
    }
    return 0;
}

typedef struct idx_list {
    int64_t *v;               /* kept indices, ascending; NULL: all */
    int64_t n;
} idx_list;

static void list_free(loom_ctx *ctx, idx_list *l)
{
    loom_free(ctx, l->v, (size_t)l->n * sizeof *l->v);
    l->v = NULL;
    l->n = 0;
}

typedef struct scored {
    double norm;
    int64_t index;
} scored;

static int by_norm_desc(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->norm != y->norm)
        return x->norm > y->norm ? -1 : 1;
    return x->index < y->index ? -1 : 1;
}

static int by_index(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The kept outputs of layer i (kernel w of its shape): the keep largest
 * norms, in ascending order. */
static loom_status choose(loom_ctx *ctx, const layer *l, const float *w, const int64_t *shape, int norm, int64_t keep,
                          idx_list *out)
{
    int64_t outs = l->kind == LAYER_CONV2D ? shape[0] : shape[1];
    int64_t per = l->kind == LAYER_CONV2D ? shape[1] * shape[2] * shape[3] : shape[0];
    scored *s = loom_calloc(ctx, (size_t)outs, sizeof *s);
    out->v = loom_calloc(ctx, (size_t)keep, sizeof *out->v);
    if (!s || !out->v) {
        loom_free(ctx, s, (size_t)outs * sizeof *s);
        loom_free(ctx, out->v, (size_t)keep * sizeof *out->v);
        out->v = NULL;
        return loom_fail(ctx, LOOM_E_OOM, "prune_structured: out of memory");
    }
    for (int64_t o = 0; o < outs; o++) {
        double acc = 0;
        for (int64_t e = 0; e < per; e++) {
            /* conv2d: filter o is row o of [OC, C KH KW]; dense: column o of [in, out] */
            double v = l->kind == LAYER_CONV2D ? w[o * per + e] : w[e * outs + o];
            acc += norm == 2 ? v * v : fabs(v);
        }
        s[o].norm = acc;
        s[o].index = o;
    }
    qsort(s, (size_t)outs, sizeof *s, by_norm_desc);
    for (int64_t k = 0; k < keep; k++)
        out->v[k] = s[k].index;
    qsort(out->v, (size_t)keep, sizeof *out->v, by_index);
    out->n = keep;
    loom_free(ctx, s, (size_t)outs * sizeof *s);
    return LOOM_OK;
}

/* dst = src sliced: axis `axis` of an ndim tensor (shape: src's) keeps the
 * indices of keep (NULL: all). */
static void slice_axis(float *dst, const float *src, int ndim, const int64_t *shape, int axis, const idx_list *keep,
                       int64_t *new_shape)
{
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++)
        outer *= shape[d];
    for (int d = axis + 1; d < ndim; d++)
        inner *= shape[d];
    int64_t n = keep->v ? keep->n : shape[axis];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < n; k++) {
            int64_t from = keep->v ? keep->v[k] : k;
            memcpy(dst + (o * n + k) * inner, src + (o * shape[axis] + from) * inner, (size_t)inner * sizeof *dst);
        }
    for (int d = 0; d < ndim; d++)
        new_shape[d] = shape[d];
    new_shape[axis] = n;
}

/* The new model's description: m's with layer i's width keep[i] (> 0). */
static loom_status narrowed(loom_sequential *m, const int64_t *keep, loom_sequential **out)
{
    cJSON *root = cJSON_Parse(m->describe);
    cJSON *layers = root ? cJSON_GetObjectItemCaseSensitive(root, "layers") : NULL;
    if (!layers || cJSON_GetArraySize(layers) != m->nlayers) {
        cJSON_Delete(root);
        return loom_fail(m->ctx, LOOM_E_STATE, "prune_structured: the model's description does not parse");
    }
    for (int i = 0; i < m->nlayers; i++) {
        if (!keep[i])
            continue;
        cJSON *l = cJSON_GetArrayItem(layers, i);
        const char *key = m->layers[i].kind == LAYER_CONV2D ? "filters" : "units";
        cJSON_ReplaceItemInObjectCaseSensitive(l, key, cJSON_CreateNumber((double)keep[i]));
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!json)
        return loom_fail(m->ctx, LOOM_E_OOM, "prune_structured: out of memory");
    loom_status s = loom_sequential_from_json(m->ctx, json, "the pruned model", out);
    free(json);
    return s;
}

/* Copies every parameter of layer i from m into n, sliced by the kept
 * inputs (in) and outputs (outk) of the layer. */
static loom_status copy_layer(loom_sequential *m, loom_sequential *n, int i, const idx_list *in, const idx_list *outk)
{
    loom_ctx *ctx = m->ctx;
    const layer *l = &m->layers[i];
    for (int k = 0; k < loom_model_layer_nparams(m, i); k++) {
        model_param po;
        loom_model_layer_param(m, i, k, &po);
        int64_t count = 1;
        for (int d = 0; d < po.ndim; d++)
            count *= po.shape[d];
        size_t bytes = (size_t)count * sizeof(float);
        float *a = loom_malloc(ctx, bytes), *b = loom_malloc(ctx, bytes);
        loom_status s = a && b ? loom_state_read(m->st, po.name, a, bytes)
                               : loom_fail(ctx, LOOM_E_OOM, "prune_structured: out of memory for %s", po.name);
        int64_t s1[4], s2[4];
        idx_list all = {NULL, 0};
        if (s == LOOM_OK) {
            if (l->kind == LAYER_CONV2D && k == 0) {
                slice_axis(b, a, 4, po.shape, 0, outk, s1);
                slice_axis(a, b, 4, s1, 1, in, s2);
            } else if (l->kind == LAYER_DENSE && k == 0) {
                slice_axis(b, a, 2, po.shape, 1, outk, s1);
                slice_axis(a, b, 2, s1, 0, in, s2);
            } else if ((l->kind == LAYER_CONV2D || l->kind == LAYER_DENSE) && k == 1) {
                slice_axis(b, a, 1, po.shape, 0, outk, s1);
                memcpy(a, b, (size_t)s1[0] * sizeof *a);
                memcpy(s2, s1, sizeof s2);
            } else if (l->kind == LAYER_BATCH_NORM) {
                /* [C], or the running statistics [2, C] */
                slice_axis(b, a, po.ndim, po.shape, po.ndim - 1, in, s2);
                memcpy(a, b, (size_t)(po.ndim == 2 ? 2 * s2[1] : s2[0]) * sizeof *a);
            } else {
                slice_axis(b, a, po.ndim, po.shape, 0, &all, s2);
                memcpy(a, b, bytes);
            }
            s = loom_state_write(n->st, po.name, LOOM_F32, po.ndim, s2, a);
        }
        loom_free(ctx, a, bytes);
        loom_free(ctx, b, bytes);
        LOOM_TRY(s);
    }
    return LOOM_OK;
}

loom_status loom_sequential_prune_structured(loom_sequential *m, float fraction, int norm, loom_sequential **out)
{
    if (!m || !out)
        return m ? loom_fail(m->ctx, LOOM_E_INVALID, "prune_structured: NULL out") : LOOM_E_INVALID;
    *out = NULL;
    loom_ctx *ctx = m->ctx;
    if (!m->compiled)
        return loom_fail(ctx, LOOM_E_STATE, "prune_structured: compile (or load) the model first");
    if (!(fraction >= 0.0f && fraction < 1.0f) || (norm != 1 && norm != 2))
        return loom_fail(ctx, LOOM_E_INVALID, "prune_structured: fraction %g (in [0, 1)) and norm %d (1 or 2)",
                         (double)fraction, norm);
    int64_t keep[LOOM_MAX_LAYERS] = {0};
    idx_list kept[LOOM_MAX_LAYERS];
    memset(kept, 0, sizeof kept);
    loom_status s = LOOM_OK;
    int any = 0;
    for (int i = 0; i < m->nlayers && s == LOOM_OK; i++) {
        if (!prunable_layer(m, i))
            continue;
        const layer *l = &m->layers[i];
        int64_t k = (int64_t)llround((double)l->units * (1.0 - (double)fraction));
        k = k < 1 ? 1 : k;
        if (k == l->units)
            continue;
        model_param pk;
        loom_model_layer_param(m, i, 0, &pk);
        int64_t count = 1;
        for (int d = 0; d < pk.ndim; d++)
            count *= pk.shape[d];
        size_t bytes = (size_t)count * sizeof(float);
        float *w = loom_malloc(ctx, bytes);
        s = w ? loom_state_read(m->st, pk.name, w, bytes) : loom_fail(ctx, LOOM_E_OOM, "prune_structured: out of memory");
        if (s == LOOM_OK)
            s = choose(ctx, l, w, pk.shape, norm, k, &kept[i]);
        loom_free(ctx, w, bytes);
        keep[i] = k;
        any = 1;
    }
    loom_sequential *n = NULL;
    if (s == LOOM_OK && !any)
        s = loom_fail(ctx, LOOM_E_INVALID, "prune_structured: no layer of the model can lose %g of its outputs "
                      "(conv2d or dense layers that feed another)", (double)fraction);
    if (s == LOOM_OK)
        s = narrowed(m, keep, &n);
    if (s == LOOM_OK)
        s = loom_sequential_compile(n, m->dev, &m->cfg);
    if (s == LOOM_OK && m->pre_set)
        s = loom_sequential_set_preprocess(n, m->pre_how, m->pre_stats);
    /* the weights: walk the layers with the channels (or features) that
     * survive in the activation between them */
    idx_list cur = {NULL, 0};
    int own = 0;
    for (int i = 0; i < m->nlayers && s == LOOM_OK; i++) {
        const layer *l = &m->layers[i];
        s = copy_layer(m, n, i, &cur, &kept[i]);
        if (s != LOOM_OK)
            break;
        if (l->kind == LAYER_CONV2D || l->kind == LAYER_DENSE || l->kind == LAYER_SEQ) {
            if (own)
                list_free(ctx, &cur);
            cur = kept[i];
            own = 0;
        } else if (l->kind == LAYER_FLATTEN && cur.v) {
            /* channel c becomes columns c HW .. c HW + HW - 1 */
            int64_t hw = l->in_ndim == 3 ? l->in_shape[1] * l->in_shape[2] : 1;
            idx_list f = {loom_calloc(ctx, (size_t)(cur.n * hw), sizeof(int64_t)), cur.n * hw};
            if (!f.v) {
                s = loom_fail(ctx, LOOM_E_OOM, "prune_structured: out of memory");
                break;
            }
            for (int64_t c = 0; c < cur.n; c++)
                for (int64_t e = 0; e < hw; e++)
                    f.v[c * hw + e] = cur.v[c] * hw + e;
            if (own)
                list_free(ctx, &cur);
            cur = f;
            own = 1;
        }
    }
    if (own)
        list_free(ctx, &cur);
    for (int i = 0; i < m->nlayers; i++)
        list_free(ctx, &kept[i]);
    if (s != LOOM_OK) {
        loom_sequential_destroy(n);
        return s;
    }
    *out = n;
    return LOOM_OK;
}
