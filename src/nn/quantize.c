/* Post-training int8 quantization of Sequential models.
 *
 * An int8 layer (dense or conv2d) keeps in its state, under its scope S:
 *   S/kernel_q  i8, one row per output channel (dense [units, in], the
 *               transpose of S/kernel; conv2d the kernel's own shape),
 *   S/w_scale   f32 [units], the per-channel weight scales (zero point 0),
 *   S/bias      f32, as a float layer (when it has one);
 * and, derived from those and the plan's input scale and zero point when
 * the model is made or loaded (never stored):
 *   S/in_q      f32 [2, 1], the input's quantization (loom_quantize's qp),
 *   S/qbias     i32 [units] = round(bias / mult) - in_zero sum_k w[n, k],
 *   S/qmult     f32 [units] = in_scale w_scale[n].
 * The layer runs as quantize(input) -> qmatmul / qconv2d with an f32
 * output (bias and relu fused); pooling, batch norm and softmax stay f32
 * between int8 layers. The plan (which layers, the inputs' scales) is
 * the model file's loom.quant record. */
#include "model.h"
#include "nn_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define BAD(...) loom_fail(ctx, LOOM_E_FORMAT, __VA_ARGS__)

int loom_model_qlayer(const loom_sequential *m, int i)
{
    return m->quant && i >= 0 && i < m->nlayers && m->quant->int8[i] &&
           (m->layers[i].kind == LAYER_DENSE || m->layers[i].kind == LAYER_CONV2D);
}

int loom_sequential_is_quantized(const loom_sequential *m)
{
    return m && m->quant != NULL;
}

/* The int8 layer's sizes: units (output channels) and inputs per output;
 * the i8 kernel's shape. */
static void qdims(const loom_sequential *m, int i, int64_t *units, int64_t *k, int *ndim, int64_t *wshape)
{
    const layer *l = &m->layers[i];
    *units = l->units;
    if (l->kind == LAYER_DENSE) {
        *k = l->in_shape[l->in_ndim - 1];
        *ndim = 2;
        wshape[0] = l->units;
        wshape[1] = *k;
    } else {
        int64_t cg = l->in_shape[0] / (l->groups ? l->groups : 1);
        *k = cg * l->kernel[0] * l->kernel[1];
        *ndim = 4;
        wshape[0] = l->units;
        wshape[1] = cg;
        wshape[2] = l->kernel[0];
        wshape[3] = l->kernel[1];
    }
}

static void qname(const loom_sequential *m, int i, const char *suffix, char *buf, size_t n)
{
    char scope[64];
    loom_model_scope(m, i, scope, sizeof scope);
    snprintf(buf, n, "%s/%s", scope, suffix);
}

static int has_bias(const loom_sequential *m, int i)
{
    const layer *l = &m->layers[i];
    return l->kind == LAYER_DENSE || l->use_bias;
}

/* ---- the graph -------------------------------------------------------------- */

typedef struct qparams_t {
    loom_tensor qp, w, bias, mult;
} qparams_t;

static qparams_t layer_params(loom_sequential *m, loom_graph *g, int i)
{
    qparams_t t;
    int64_t units, k, ws[4], qs[2] = {2, 1};
    int wn;
    char nm[128];
    qdims(m, i, &units, &k, &wn, ws);
    qname(m, i, "in_q", nm, sizeof nm);
    t.qp = loom_param(g, nm, LOOM_F32, 2, qs, 0);
    qname(m, i, "kernel_q", nm, sizeof nm);
    t.w = loom_param(g, nm, LOOM_I8, wn, ws, 0);
    qname(m, i, "qbias", nm, sizeof nm);
    t.bias = loom_param(g, nm, LOOM_I32, 1, &units, 0);
    qname(m, i, "qmult", nm, sizeof nm);
    t.mult = loom_param(g, nm, LOOM_F32, 1, &units, 0);
    return t;
}

static loom_qgemm_opts epilogue_of(const layer *l, int *fused)
{
    loom_qgemm_opts o = loom_qgemm_opts_default();
    *fused = l->act == LOOM_ACT_RELU || l->act == LOOM_ACT_NONE;
    o.act = l->act == LOOM_ACT_RELU ? LOOM_ACT_RELU : LOOM_ACT_NONE;
    return o;
}

loom_tensor loom_model_build_qdense(loom_sequential *m, loom_graph *g, int i, loom_tensor h, int *fused)
{
    qparams_t t = layer_params(m, g, i);
    loom_qgemm_opts o = epilogue_of(&m->layers[i], fused);
    loom_tensor q = loom_quantize(g, loom_cast(g, h, LOOM_F32), t.qp, -1);
    return loom_cast(g, loom_qmatmul(g, q, t.w, t.bias, t.mult, &o), m->cfg.precision);
}

loom_tensor loom_model_build_qconv(loom_sequential *m, loom_graph *g, int i, loom_tensor h)
{
    const layer *l = &m->layers[i];
    char scope[64];
    loom_model_scope(m, i, scope, sizeof scope);
    if (loom_graph_scope(g, scope) != LOOM_OK)
        return LOOM_NONE;
    qparams_t t = layer_params(m, g, i);
    int fused;
    loom_qgemm_opts o = epilogue_of(l, &fused);
    o.in_zero = m->quant->in_zero[i];
    loom_conv2d_opts c = loom_conv2d_opts_default();
    for (int k = 0; k < 2; k++) {
        c.stride[k] = l->stride[k];
        c.dilation[k] = l->dilation[k];
    }
    c.same = l->same;
    c.groups = l->groups;
    loom_tensor q = loom_quantize(g, loom_cast(g, h, LOOM_F32), t.qp, -1);
    h = loom_cast(g, loom_qconv2d(g, q, t.w, t.bias, t.mult, &c, &o), m->cfg.precision);
    if (!fused)
        h = loom_model_activate(g, h, l->act);
    if (loom_graph_scope(g, NULL) != LOOM_OK)
        return LOOM_NONE;
    return h;
}

/* ---- the state's tensors ----------------------------------------------------- */

static const char *const stored[] = {"kernel_q", "w_scale"};
static const char *const derived_names[] = {"in_q", "qbias", "qmult"};

int loom_model_quant_tensor(const loom_sequential *m, const char *name, loom_dtype *dt, int *ndim, int64_t *shape,
                            int *derived)
{
    for (int i = 0; i < m->nlayers; i++) {
        if (!loom_model_qlayer(m, i))
            continue;
        char scope[64];
        loom_model_scope(m, i, scope, sizeof scope);
        size_t n = strlen(scope);
        if (strncmp(name, scope, n) || name[n] != '/')
            continue;
        const char *suffix = name + n + 1;
        int64_t units, k, ws[4];
        int wn;
        qdims(m, i, &units, &k, &wn, ws);
        memset(shape, 0, 4 * sizeof *shape);
        for (int s = 0; s < 2; s++)
            if (!strcmp(suffix, stored[s])) {
                *derived = 0;
                *dt = s ? LOOM_F32 : LOOM_I8;
                *ndim = s ? 1 : wn;
                if (s)
                    shape[0] = units;
                else
                    memcpy(shape, ws, sizeof ws);
                return 1;
            }
        for (int s = 0; s < 3; s++)
            if (!strcmp(suffix, derived_names[s])) {
                *derived = 1;
                *dt = s == 1 ? LOOM_I32 : LOOM_F32;
                *ndim = s ? 1 : 2;
                shape[0] = s ? units : 2;
                shape[1] = s ? 0 : 1;
                return 1;
            }
    }
    return 0;
}

int loom_model_quant_replaced(const loom_sequential *m, const char *name)
{
    for (int i = 0; i < m->nlayers; i++) {
        char nm[128];
        if (!loom_model_qlayer(m, i))
            continue;
        qname(m, i, "kernel", nm, sizeof nm);
        if (!strcmp(nm, name))
            return 1;
    }
    return 0;
}

/* Reads (or allocates) a host copy of count elements of size es. */
static void *host_buf(loom_ctx *ctx, int64_t count, size_t es)
{
    return loom_calloc(ctx, (size_t)(count > 0 ? count : 1), es);
}

loom_status loom_model_quant_derive(loom_sequential *m)
{
    loom_ctx *ctx = m->ctx;
    for (int i = 0; i < m->nlayers; i++) {
        if (!loom_model_qlayer(m, i))
            continue;
        int64_t units, k, ws[4], qs[2] = {2, 1};
        int wn;
        qdims(m, i, &units, &k, &wn, ws);
        int8_t *w = host_buf(ctx, units * k, 1);
        float *scale = host_buf(ctx, units, 4), *bias = host_buf(ctx, units, 4), *mult = host_buf(ctx, units, 4);
        int32_t *qb = host_buf(ctx, units, 4);
        char nm[128];
        loom_status s = w && scale && bias && mult && qb
                            ? LOOM_OK
                            : loom_fail(ctx, LOOM_E_OOM, "quantize: out of memory for layer %d", i);
        if (s == LOOM_OK) {
            qname(m, i, "kernel_q", nm, sizeof nm);
            s = loom_state_read(m->st, nm, w, (size_t)(units * k));
        }
        if (s == LOOM_OK) {
            qname(m, i, "w_scale", nm, sizeof nm);
            s = loom_state_read(m->st, nm, scale, (size_t)units * 4);
        }
        if (s == LOOM_OK && has_bias(m, i)) {
            qname(m, i, "bias", nm, sizeof nm);
            s = loom_state_read(m->st, nm, bias, (size_t)units * 4);
        }
        float sa = m->quant->in_scale[i];
        int za = m->quant->in_zero[i];
        for (int64_t n = 0; n < units && s == LOOM_OK; n++) {
            int64_t sum = 0;
            for (int64_t j = 0; j < k; j++)
                sum += w[n * k + j];
            mult[n] = sa * scale[n];
            double b = mult[n] > 0 ? nearbyint((double)bias[n] / (double)mult[n]) : 0.0;
            double q = b - (double)za * (double)sum;
            if (!(fabs(q) < 2147483647.0))
                s = loom_fail(ctx, LOOM_E_RANGE, "quantize: layer %d channel %lld: the bias %g over the scale %g "
                              "does not fit in 32 bits", i, (long long)n, (double)bias[n], (double)mult[n]);
            else
                qb[n] = (int32_t)q;
        }
        float qp[2] = {sa, (float)za};
        if (s == LOOM_OK) {
            qname(m, i, "in_q", nm, sizeof nm);
            s = loom_state_write(m->st, nm, LOOM_F32, 2, qs, qp);
        }
        if (s == LOOM_OK) {
            qname(m, i, "qbias", nm, sizeof nm);
            s = loom_state_write(m->st, nm, LOOM_I32, 1, &units, qb);
        }
        if (s == LOOM_OK) {
            qname(m, i, "qmult", nm, sizeof nm);
            s = loom_state_write(m->st, nm, LOOM_F32, 1, &units, mult);
        }
        loom_free(ctx, w, (size_t)(units * k > 0 ? units * k : 1));
        loom_free(ctx, scale, (size_t)units * 4);
        loom_free(ctx, bias, (size_t)units * 4);
        loom_free(ctx, mult, (size_t)units * 4);
        loom_free(ctx, qb, (size_t)units * 4);
        LOOM_TRY(s);
    }
    return LOOM_OK;
}

loom_status loom_model_quant_init(loom_sequential *m)
{
    loom_ctx *ctx = m->ctx;
    for (int i = 0; i < m->nlayers; i++) {
        if (!loom_model_qlayer(m, i))
            continue;
        int64_t units, k, ws[4];
        int wn;
        qdims(m, i, &units, &k, &wn, ws);
        int8_t *w = host_buf(ctx, units * k, 1);
        float *one = host_buf(ctx, units, 4);
        char nm[128];
        loom_status s = w && one ? LOOM_OK : loom_fail(ctx, LOOM_E_OOM, "quantize: out of memory for layer %d", i);
        for (int64_t n = 0; n < units && s == LOOM_OK; n++)
            one[n] = 1.0f;
        if (s == LOOM_OK) {
            qname(m, i, "kernel_q", nm, sizeof nm);
            s = loom_state_write(m->st, nm, LOOM_I8, wn, ws, w);
        }
        if (s == LOOM_OK) {
            qname(m, i, "w_scale", nm, sizeof nm);
            s = loom_state_write(m->st, nm, LOOM_F32, 1, &units, one);
        }
        loom_free(ctx, w, (size_t)(units * k > 0 ? units * k : 1));
        loom_free(ctx, one, (size_t)units * 4);
        LOOM_TRY(s);
    }
    return loom_model_quant_derive(m);
}

loom_status loom_model_quant_check(const loom_sequential *m, const char *path, const loom_tensor_file *f)
{
    loom_ctx *ctx = m->ctx;
    for (int t = 0; t < loom_safetensors_count(f); t++) {
        const char *name;
        loom_dtype dt;
        int ndim;
        int64_t shape[LOOM_MAX_DIMS];
        const void *data;
        loom_safetensors_tensor(f, t, &name, &dt, &ndim, shape, &data);
        size_t n = strlen(name);
        if (n < 8 || strcmp(name + n - 8, "/w_scale") || dt != LOOM_F32 || ndim != 1)
            continue;
        for (int64_t c = 0; c < shape[0]; c++) {
            float v;
            memcpy(&v, (const char *)data + c * 4, 4);
            if (!(v > 0) || !isfinite(v))
                return BAD("model file %s: weight scale %lld of \"%.100s\" is %g (a scale is finite and > 0)", path,
                           (long long)c, name, (double)v);
        }
    }
    return LOOM_OK;
}

/* ---- the loom.quant record --------------------------------------------------- */

char *loom_model_quant_json(const loom_sequential *m)
{
    cJSON *o = cJSON_CreateObject(), *ls = cJSON_CreateArray();
    if (!o || !ls) {
        cJSON_Delete(o);
        cJSON_Delete(ls);
        return NULL;
    }
    cJSON_AddStringToObject(o, "method", loom_calib_method_name(m->quant->method));
    cJSON_AddNumberToObject(o, "percentile", m->quant->percentile);
    for (int i = 0; i < m->nlayers; i++) {
        if (!loom_model_qlayer(m, i))
            continue;
        cJSON *l = cJSON_CreateObject();
        cJSON_AddNumberToObject(l, "layer", i);
        cJSON_AddNumberToObject(l, "in_scale", (double)m->quant->in_scale[i]);
        cJSON_AddNumberToObject(l, "in_zero", m->quant->in_zero[i]);
        cJSON_AddItemToArray(ls, l);
    }
    cJSON_AddItemToObject(o, "int8", ls);
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char *r = txt ? loom_strdup(m->ctx, txt) : NULL;
    cJSON_free(txt);
    return r;
}

loom_status loom_model_quant_parse(loom_sequential *m, const char *path, const char *json)
{
    loom_ctx *ctx = m->ctx;
    cJSON *o = cJSON_Parse(json);
    nn_quant *q = loom_calloc(ctx, 1, sizeof *q);
    loom_status s = LOOM_OK;
    if (!q)
        s = loom_fail(ctx, LOOM_E_OOM, "model file %s: out of memory", path);
    else if (!cJSON_IsObject(o))
        s = BAD("model file %s: loom.quant is not a JSON object", path);
    const cJSON *meth = s == LOOM_OK ? cJSON_GetObjectItemCaseSensitive(o, "method") : NULL;
    const cJSON *pct = s == LOOM_OK ? cJSON_GetObjectItemCaseSensitive(o, "percentile") : NULL;
    const cJSON *ls = s == LOOM_OK ? cJSON_GetObjectItemCaseSensitive(o, "int8") : NULL;
    if (s == LOOM_OK && (!cJSON_IsString(meth) || loom_calib_method_by_name(meth->valuestring) < 0))
        s = BAD("model file %s: loom.quant.method is not \"minmax\", \"percentile\" or \"kl\"", path);
    if (s == LOOM_OK && (!cJSON_IsNumber(pct) || !(pct->valuedouble >= 0 && pct->valuedouble <= 100)))
        s = BAD("model file %s: loom.quant.percentile is not a number in [0, 100]", path);
    if (s == LOOM_OK && !cJSON_IsArray(ls))
        s = BAD("model file %s: loom.quant.int8 is not an array of layers", path);
    if (s == LOOM_OK) {
        q->method = (loom_calib_method)loom_calib_method_by_name(meth->valuestring);
        q->percentile = pct->valuedouble;
    }
    const cJSON *l;
    int k = 0;
    const cJSON *over = s == LOOM_OK ? ls : (const cJSON *)NULL;
    cJSON_ArrayForEach(l, over)
    {
        const cJSON *li = cJSON_GetObjectItemCaseSensitive(l, "layer");
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(l, "in_scale");
        const cJSON *zp = cJSON_GetObjectItemCaseSensitive(l, "in_zero");
        if (!cJSON_IsNumber(li) || li->valuedouble != (double)(int)li->valuedouble || li->valueint < 0 ||
            li->valueint >= m->nlayers ||
            (m->layers[li->valueint].kind != LAYER_DENSE && m->layers[li->valueint].kind != LAYER_CONV2D)) {
            s = BAD("model file %s: loom.quant.int8[%d].layer is not the index of a dense or conv2d layer", path, k);
            break;
        }
        if (!cJSON_IsNumber(sc) || !(sc->valuedouble > 0) || !isfinite((float)sc->valuedouble)) {
            s = BAD("model file %s: loom.quant.int8[%d].in_scale is not a finite number > 0", path, k);
            break;
        }
        if (!cJSON_IsNumber(zp) || zp->valuedouble != (double)(int)zp->valuedouble || zp->valueint < -128 ||
            zp->valueint > 127) {
            s = BAD("model file %s: loom.quant.int8[%d].in_zero is not a whole number in [-128, 127]", path, k);
            break;
        }
        if (q->int8[li->valueint]) {
            s = BAD("model file %s: loom.quant.int8 names layer %d twice", path, li->valueint);
            break;
        }
        q->int8[li->valueint] = 1;
        q->in_scale[li->valueint] = (float)sc->valuedouble;
        q->in_zero[li->valueint] = zp->valueint;
        k++;
    }
    cJSON_Delete(o);
    if (s != LOOM_OK) {
        loom_free(ctx, q, sizeof *q);
        return s;
    }
    loom_free(ctx, m->quant, sizeof *m->quant);
    m->quant = q;
    return LOOM_OK;
}

/* ---- making a quantized model -------------------------------------------------- */

loom_quant_opts loom_quant_opts_default(void)
{
    loom_quant_opts o;
    memset(&o, 0, sizeof o);
    o.method = LOOM_CALIB_PERCENTILE;
    o.percentile = 99.99;
    o.samples = 1000;
    o.max_drop = 0.5;
    return o;
}

/* The activations' ranges: for each dense / conv2d layer, the histogram
 * of its input over the calibration rows. */
typedef struct calib_run {
    loom_sequential *m;
    const float *x;            /* [n, features] */
    int64_t n, batch;
    loom_calib_hist *hist;     /* per layer */
    int *probed;               /* per layer: 1 if it has a probe */
} calib_run;

/* One pass over the rows: pass 0 the ranges, pass 1 the histograms. */
static loom_status calib_pass(calib_run *c, loom_program *p, int pass)
{
    loom_sequential *m = c->m;
    loom_ctx *ctx = m->ctx;
    int64_t f = m->in_features;
    size_t xb = (size_t)(c->batch * f) * sizeof(float);
    float *xbuf = loom_malloc(ctx, xb);
    if (!xbuf)
        return loom_fail(ctx, LOOM_E_OOM, "quantize: out of memory for a batch");
    loom_status s = LOOM_OK;
    float *vals = NULL;
    size_t vals_bytes = 0;
    for (int64_t r = 0; r < c->n && s == LOOM_OK; r += c->batch) {
        int64_t nb = c->n - r < c->batch ? c->n - r : c->batch;
        /* a short last batch repeats its first row; only nb rows count */
        for (int64_t b = 0; b < c->batch; b++)
            memcpy(xbuf + b * f, c->x + (r + (b < nb ? b : 0)) * f, (size_t)f * sizeof(float));
        s = loom_program_set_input(p, "x", xbuf, xb);
        if (s == LOOM_OK)
            s = loom_program_run(p);
        for (int i = 0; i < m->nlayers && s == LOOM_OK; i++) {
            if (!c->probed[i])
                continue;
            char nm[32];
            snprintf(nm, sizeof nm, "probe%d", i);
            size_t per = (size_t)m->layers[i].in_shape[0];
            for (int d = 1; d < m->layers[i].in_ndim; d++)
                per *= (size_t)m->layers[i].in_shape[d];
            size_t need = per * (size_t)c->batch * sizeof(float);
            if (need > vals_bytes) {
                float *nv = loom_realloc(ctx, vals, vals_bytes, need);
                if (!nv) {
                    s = loom_fail(ctx, LOOM_E_OOM, "quantize: out of memory for layer %d's activations", i);
                    break;
                }
                vals = nv;
                vals_bytes = need;
            }
            s = loom_program_read(p, nm, vals, need);
            if (s != LOOM_OK)
                break;
            loom_calib_hist *h = &c->hist[i];
            size_t cnt = per * (size_t)nb;
            if (pass == 0) {
                for (size_t e = 0; e < cnt; e++)
                    if (isfinite(vals[e])) {
                        double a = fabs((double)vals[e]);
                        h->absmax = a > h->absmax ? a : h->absmax;
                    }
            } else {
                loom_calib_hist_add(h, vals, cnt);
            }
        }
    }
    loom_free(ctx, vals, vals_bytes);
    loom_free(ctx, xbuf, xb);
    return s;
}

static loom_status calibrate(loom_sequential *m, const float *x, int64_t n, loom_calib_hist *hist, int *probed)
{
    loom_ctx *ctx = m->ctx;
    int64_t batch = n < 64 ? n : 64;
    loom_graph *g = NULL;
    loom_program *p = NULL;
    LOOM_TRY(loom_graph_create(ctx, &g));
    m->probe = 1;
    loom_status s = loom_model_build(m, g, 0, batch);
    m->probe = 0;
    if (s == LOOM_OK)
        s = loom_compile(g, m->dev, m->st, NULL, &p);
    else
        s = loom_fail(ctx, s, "quantize: the calibration graph: %s", loom_graph_error(g));
    for (int i = 0; i < m->nlayers; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "probe%d", i);
        probed[i] = s == LOOM_OK && loom_graph_find(g, nm).id != 0;
    }
    calib_run c = {m, x, n, batch, hist, probed};
    if (s == LOOM_OK)
        s = calib_pass(&c, p, 0);
    for (int i = 0; i < m->nlayers && s == LOOM_OK; i++)
        if (hist[i].absmax <= 0)
            hist[i].absmax = 1; /* all zeros: any range does */
    if (s == LOOM_OK)
        s = calib_pass(&c, p, 1);
    loom_program_destroy(p);
    loom_graph_destroy(g);
    return s;
}

/* The input quantization of a layer from its histogram: [0, T] over 256
 * levels (zero point -128) when nothing negative was seen (after relu),
 * else [-T, T] over 255 (zero point 0). */
static loom_status input_qparams(loom_ctx *ctx, const loom_calib_hist *h, const loom_quant_opts *o, float *scale,
                                 int *zero)
{
    double t;
    LOOM_TRY(loom_calib_threshold(ctx, h, o->method, o->percentile, &t));
    if (h->min >= 0) {
        *scale = (float)(t / 255.0);
        *zero = -128;
    } else {
        *scale = (float)(t / 127.0);
        *zero = 0;
    }
    if (!(*scale > 0) || !isfinite(*scale))
        *scale = 1.0f;
    return LOOM_OK;
}

/* Per-channel symmetric weights: w [units, k] rows (dense kernels are
 * transposed from [k, units] on the way). */
static loom_status quantize_weights(loom_sequential *src, loom_sequential *dst, int i)
{
    loom_ctx *ctx = src->ctx;
    int64_t units, k, ws[4];
    int wn;
    qdims(src, i, &units, &k, &wn, ws);
    float *w = host_buf(ctx, units * k, 4), *scale = host_buf(ctx, units, 4);
    int8_t *q = host_buf(ctx, units * k, 1);
    char nm[128];
    loom_status s = w && scale && q ? LOOM_OK : loom_fail(ctx, LOOM_E_OOM, "quantize: out of memory for layer %d", i);
    if (s == LOOM_OK) {
        qname(src, i, "kernel", nm, sizeof nm);
        s = loom_state_read(src->st, nm, w, (size_t)(units * k) * 4);
    }
    int dense = src->layers[i].kind == LAYER_DENSE;
    for (int64_t n = 0; n < units && s == LOOM_OK; n++) {
        double amax = 0;
        for (int64_t j = 0; j < k; j++)
            amax = fmax(amax, fabs((double)w[dense ? j * units + n : n * k + j]));
        scale[n] = amax > 0 ? (float)(amax / 127.0) : 1.0f;
        for (int64_t j = 0; j < k; j++)
            q[n * k + j] = loom_quantize_value(w[dense ? j * units + n : n * k + j], scale[n], 0);
    }
    if (s == LOOM_OK) {
        qname(src, i, "kernel_q", nm, sizeof nm);
        s = loom_state_write(dst->st, nm, LOOM_I8, wn, ws, q);
    }
    if (s == LOOM_OK) {
        qname(src, i, "w_scale", nm, sizeof nm);
        s = loom_state_write(dst->st, nm, LOOM_F32, 1, &units, scale);
    }
    loom_free(ctx, w, (size_t)(units * k > 0 ? units * k : 1) * 4);
    loom_free(ctx, scale, (size_t)units * 4);
    loom_free(ctx, q, (size_t)(units * k > 0 ? units * k : 1));
    return s;
}

/* A model of m's architecture with plan's int8 layers, on dev, its
 * weights from m (quantized where the plan says). */
static loom_status make_qmodel(loom_sequential *m, const nn_quant *plan, loom_device *dev, loom_sequential **out)
{
    loom_ctx *ctx = m->ctx;
    loom_sequential *q = NULL;
    *out = NULL;
    LOOM_TRY(loom_model_from_json(ctx, m->describe, "quantize", &q));
    q->quant = loom_malloc(ctx, sizeof *q->quant);
    loom_status s = q->quant ? LOOM_OK : loom_fail(ctx, LOOM_E_OOM, "quantize: out of memory");
    if (s == LOOM_OK) {
        *q->quant = *plan;
        q->pre_set = m->pre_set;
        q->pre_how = m->pre_how;
        memcpy(q->pre_stats, m->pre_stats, sizeof q->pre_stats);
        loom_model_config cfg = m->cfg;
        s = loom_sequential_compile(q, dev, &cfg);
    }
    /* the float weights as they are, the int8 layers' kernels quantized */
    model_param p;
    for (int k = 0; s == LOOM_OK && loom_model_param(m, k, &p, NULL); k++) {
        if (loom_model_quant_replaced(q, p.name))
            continue;
        uint64_t bytes;
        if (loom_shape_bytes(p.ndim, p.shape, 4, NULL, &bytes) || bytes > SIZE_MAX) {
            s = loom_fail(ctx, LOOM_E_OOM, "quantize: %s is too large", p.name);
            break;
        }
        float *w = loom_malloc(ctx, (size_t)bytes);
        s = w ? loom_state_read(m->st, p.name, w, (size_t)bytes) : loom_fail(ctx, LOOM_E_OOM, "quantize: out of memory");
        if (s == LOOM_OK)
            s = loom_state_write(q->st, p.name, LOOM_F32, p.ndim, p.shape, w);
        loom_free(ctx, w, (size_t)bytes);
    }
    for (int i = 0; i < m->nlayers && s == LOOM_OK; i++)
        if (loom_model_qlayer(q, i))
            s = quantize_weights(m, q, i);
    if (s == LOOM_OK)
        s = loom_model_quant_derive(q);
    if (s != LOOM_OK) {
        loom_sequential_destroy(q);
        return s;
    }
    *out = q;
    return LOOM_OK;
}

static loom_status accuracy_of(loom_sequential *m, loom_dataset *ds, double *acc)
{
    loom_eval_result r;
    memset(&r, 0, sizeof r);
    LOOM_TRY(loom_sequential_evaluate(m, ds, 0, &r));
    *acc = r.accuracy;
    loom_eval_result_free(&r);
    return LOOM_OK;
}

loom_status loom_sequential_quantize(loom_sequential *m, loom_dataset *calib, loom_device *dev,
                                     const loom_quant_opts *opts, loom_sequential **out, loom_quant_report *report)
{
    if (!m || !out)
        return m ? loom_fail(m->ctx, LOOM_E_INVALID, "loom_sequential_quantize: NULL output") : LOOM_E_INVALID;
    loom_ctx *ctx = m->ctx;
    *out = NULL;
    if (!m->compiled)
        return loom_fail(ctx, LOOM_E_STATE, "loom_sequential_quantize: compile (or load) the model first");
    if (m->quant)
        return loom_fail(ctx, LOOM_E_INVALID, "loom_sequential_quantize: the model is quantized already");
    if (!calib || !dev)
        return loom_fail(ctx, LOOM_E_INVALID, "loom_sequential_quantize: NULL %s", calib ? "device" : "data set");
    loom_quant_opts o = opts ? *opts : loom_quant_opts_default();
    if ((unsigned)o.method > LOOM_CALIB_KL)
        return loom_fail(ctx, LOOM_E_INVALID, "loom_sequential_quantize: calibration method %d (minmax, percentile, "
                         "kl)", (int)o.method);
    if (o.percentile == 0)
        o.percentile = 99.99;
    if (!(o.percentile > 0 && o.percentile <= 100))
        return loom_fail(ctx, LOOM_E_INVALID, "loom_sequential_quantize: percentile %g is not in (0, 100]",
                         o.percentile);
    if (calib->features != m->in_features)
        return loom_fail(ctx, LOOM_E_SHAPE, "loom_sequential_quantize: the data set has %lld features, the model "
                         "takes %lld", (long long)calib->features, (long long)m->in_features);
    LOOM_TRY(loom_model_check_scaling(m, calib, "loom_sequential_quantize"));
    int64_t n = o.samples > 0 ? o.samples : 1000;
    n = n < calib->n ? n : calib->n;
    if (n < 1)
        return loom_fail(ctx, LOOM_E_INVALID, "loom_sequential_quantize: no calibration rows");
    int quantizable = 0;
    for (int i = 0; i < m->nlayers; i++)
        quantizable += m->layers[i].kind == LAYER_DENSE || m->layers[i].kind == LAYER_CONV2D;
    if (!quantizable)
        return loom_fail(ctx, LOOM_E_UNSUPPORTED, "loom_sequential_quantize: the model has no dense or conv2d layer");

    loom_calib_hist *hist = loom_calloc(ctx, (size_t)m->nlayers, sizeof *hist);
    loom_dataset *sub = NULL;
    int probed[LOOM_MAX_LAYERS] = {0};
    loom_status s = hist ? LOOM_OK : loom_fail(ctx, LOOM_E_OOM, "quantize: out of memory for the histograms");
    if (s == LOOM_OK)
        s = calibrate(m, calib->x, n, hist, probed);
    if (s == LOOM_OK)
        s = loom_dataset_subset(calib, 0, n, &sub);
    nn_quant plan;
    memset(&plan, 0, sizeof plan);
    plan.method = o.method;
    plan.percentile = o.method == LOOM_CALIB_PERCENTILE ? o.percentile : 0;
    for (int i = 0; i < m->nlayers && s == LOOM_OK; i++)
        if (probed[i])
            s = input_qparams(ctx, &hist[i], &o, &plan.in_scale[i], &plan.in_zero[i]);
    loom_quant_report rep;
    memset(&rep, 0, sizeof rep);
    if (s == LOOM_OK)
        s = accuracy_of(m, sub, &rep.calib_acc_f32);
    /* each layer alone: its cost in accuracy on the calibration rows */
    for (int i = 0; i < m->nlayers && s == LOOM_OK; i++) {
        if (!probed[i])
            continue;
        loom_quant_layer *ql = &rep.layers[rep.nlayers++];
        ql->layer = i;
        loom_model_scope(m, i, ql->scope, sizeof ql->scope);
        ql->in_scale = plan.in_scale[i];
        ql->in_zero = plan.in_zero[i];
        ql->int8 = 1;
        if (o.max_drop < 0)
            continue;
        nn_quant one = plan;
        memset(one.int8, 0, sizeof one.int8);
        one.int8[i] = 1;
        loom_sequential *qm = NULL;
        double acc = 0;
        s = make_qmodel(m, &one, dev, &qm);
        if (s == LOOM_OK)
            s = accuracy_of(qm, sub, &acc);
        loom_sequential_destroy(qm);
        ql->drop = 100.0 * (rep.calib_acc_f32 - acc);
        ql->int8 = ql->drop <= o.max_drop;
    }
    for (int k = 0; k < rep.nlayers; k++)
        plan.int8[rep.layers[k].layer] = (unsigned char)rep.layers[k].int8;
    loom_sequential *qm = NULL;
    if (s == LOOM_OK)
        s = make_qmodel(m, &plan, dev, &qm);
    if (s == LOOM_OK)
        s = accuracy_of(qm, sub, &rep.calib_acc_int8);
    loom_dataset_destroy(sub);
    loom_free(ctx, hist, (size_t)m->nlayers * sizeof *hist);
    if (s != LOOM_OK) {
        loom_sequential_destroy(qm);
        return s;
    }
    if (report)
        *report = rep;
    *out = qm;
    return LOOM_OK;
}
