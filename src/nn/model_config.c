/* The records a model file carries beside its architecture: the training
 * configuration (loom.config) and the inputs' preprocessing
 * (loom.preprocess), written as JSON and read back strictly: a field that
 * is unknown, not a number or out of range is refused by name, never
 * replaced by a default. */
#include "model.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- ranges ---------------------------------------------------------------- */

#define PROBLEM(...) (snprintf(buf, n, __VA_ARGS__), buf)

static int finite_ge0(float v)
{
    return isfinite(v) && v >= 0.0f;
}

static int unit_open(float v)
{
    return v >= 0.0f && v < 1.0f;
}

const char *loom_model_config_problem(const loom_model_config *c, char *buf, size_t n)
{
    const loom_optimizer *o = &c->optimizer;
    if ((unsigned)c->loss > LOOM_LOSS_MSE)
        return PROBLEM("loss %d is not 0 (sparse cross-entropy), 1 (cross-entropy) or 2 (mse)", (int)c->loss);
    if (c->batch < 1 || c->batch > LOOM_MAX_BATCH)
        return PROBLEM("batch %lld is outside [1, %lld]", (long long)c->batch, (long long)LOOM_MAX_BATCH);
    if (c->precision != LOOM_F32 && c->precision != LOOM_F16 && c->precision != LOOM_BF16)
        return PROBLEM("precision %d is not 0 (f32), 2 (f16) or 3 (bf16)", (int)c->precision);
    if ((unsigned)o->kind > LOOM_OPT_ADAMW)
        return PROBLEM("optimizer.kind %d is not 0 (sgd), 1 (adam) or 2 (adamw)", (int)o->kind);
    if (!(isfinite(o->lr) && o->lr > 0.0f))
        return PROBLEM("optimizer.lr %g is not a finite number > 0", (double)o->lr);
    if (!unit_open(o->beta1))
        return PROBLEM("optimizer.beta1 %g is outside [0, 1)", (double)o->beta1);
    if (!unit_open(o->beta2))
        return PROBLEM("optimizer.beta2 %g is outside [0, 1)", (double)o->beta2);
    if (!finite_ge0(o->eps) || (o->kind != LOOM_OPT_SGD && !(o->eps > 0.0f)))
        return PROBLEM("optimizer.eps %g is not a finite number > 0", (double)o->eps);
    if (!(o->momentum >= 0.0f && o->momentum <= 1.0f))
        return PROBLEM("optimizer.momentum %g is outside [0, 1]", (double)o->momentum);
    if (o->nesterov != 0 && o->nesterov != 1)
        return PROBLEM("optimizer.nesterov %d is not 0 or 1", o->nesterov);
    if (!finite_ge0(o->weight_decay))
        return PROBLEM("optimizer.weight_decay %g is not a finite number >= 0", (double)o->weight_decay);
    if (!finite_ge0(o->l1))
        return PROBLEM("optimizer.l1 %g is not a finite number >= 0", (double)o->l1);
    if (!finite_ge0(o->l2))
        return PROBLEM("optimizer.l2 %g is not a finite number >= 0", (double)o->l2);
    if (!finite_ge0(o->clip_norm))
        return PROBLEM("optimizer.clip_norm %g is not a finite number >= 0", (double)o->clip_norm);
    if ((unsigned)o->schedule > LOOM_LR_COSINE)
        return PROBLEM("optimizer.schedule %d is not 0 (constant), 1 (step) or 2 (cosine)", (int)o->schedule);
    if (o->step_size < 0 || (o->schedule == LOOM_LR_STEP && o->step_size == 0))
        return PROBLEM("optimizer.step_size %lld is not %s", (long long)o->step_size,
                       o->schedule == LOOM_LR_STEP ? "> 0 (the step schedule divides by it)" : ">= 0");
    if (!(isfinite(o->gamma) && (o->schedule != LOOM_LR_STEP || o->gamma > 0.0f)))
        return PROBLEM("optimizer.gamma %g is not a finite number%s", (double)o->gamma,
                       o->schedule == LOOM_LR_STEP ? " > 0" : "");
    if (o->warmup_steps < 0)
        return PROBLEM("optimizer.warmup_steps %lld is negative", (long long)o->warmup_steps);
    if (o->total_steps < 0)
        return PROBLEM("optimizer.total_steps %lld is negative", (long long)o->total_steps);
    if (!finite_ge0(o->lr_min))
        return PROBLEM("optimizer.lr_min %g is not a finite number >= 0", (double)o->lr_min);
    if (!unit_open(o->ema_decay))
        return PROBLEM("optimizer.ema_decay %g is outside [0, 1)", (double)o->ema_decay);
    return NULL;
}

/* ---- writing ---------------------------------------------------------------- */

/* A malloc'd cJSON string copied into the context's allocator. */
static char *own(loom_ctx *ctx, char *s)
{
    char *copy = s ? loom_strdup(ctx, s) : NULL;
    cJSON_free(s);
    return copy;
}

char *loom_model_config_json(loom_ctx *ctx, const loom_model_config *c)
{
    const loom_optimizer *o = &c->optimizer;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "loss", c->loss);
    cJSON_AddNumberToObject(r, "batch", (double)c->batch);
    cJSON_AddNumberToObject(r, "seed", (double)c->seed);
    cJSON_AddStringToObject(r, "precision", loom_dtype_name(c->precision));
    cJSON *j = cJSON_AddObjectToObject(r, "optimizer");
    cJSON_AddNumberToObject(j, "kind", o->kind);
    cJSON_AddNumberToObject(j, "lr", o->lr);
    cJSON_AddNumberToObject(j, "beta1", o->beta1);
    cJSON_AddNumberToObject(j, "beta2", o->beta2);
    cJSON_AddNumberToObject(j, "eps", o->eps);
    cJSON_AddNumberToObject(j, "momentum", o->momentum);
    cJSON_AddNumberToObject(j, "nesterov", o->nesterov);
    cJSON_AddNumberToObject(j, "weight_decay", o->weight_decay);
    cJSON_AddNumberToObject(j, "l1", o->l1);
    cJSON_AddNumberToObject(j, "l2", o->l2);
    cJSON_AddNumberToObject(j, "clip_norm", o->clip_norm);
    cJSON_AddNumberToObject(j, "schedule", o->schedule);
    cJSON_AddNumberToObject(j, "step_size", (double)o->step_size);
    cJSON_AddNumberToObject(j, "gamma", o->gamma);
    cJSON_AddNumberToObject(j, "warmup_steps", (double)o->warmup_steps);
    cJSON_AddNumberToObject(j, "total_steps", (double)o->total_steps);
    cJSON_AddNumberToObject(j, "lr_min", o->lr_min);
    cJSON_AddNumberToObject(j, "ema_decay", o->ema_decay);
    char *s = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);
    return own(ctx, s);
}

char *loom_model_preprocess_json(const loom_sequential *m)
{
    if (!m->pre_set)
        return NULL;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "scaling", m->pre_how == LOOM_SCALE_STANDARD ? "standard" : "unit");
    /* floats held exactly by the doubles cJSON prints (17 digits when
     * needed), so the stats come back bit for bit */
    cJSON_AddNumberToObject(r, "mean", m->pre_stats[0]);
    cJSON_AddNumberToObject(r, "std", m->pre_stats[1]);
    char *s = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);
    return own(m->ctx, s);
}

/* ---- reading ---------------------------------------------------------------- */

/* Enums are stored through an int (store's F_ENUM). */
_Static_assert(sizeof(loom_loss) == sizeof(int) && sizeof(loom_optimizer_kind) == sizeof(int) &&
                   sizeof(loom_lr_schedule) == sizeof(int),
               "the config's enums are int-sized");

typedef enum { F_FLOAT, F_INT, F_ENUM } field_kind;

typedef struct field {
    const char *name;
    field_kind kind;
    size_t offset;              /* in loom_optimizer or loom_model_config */
    int bits;                   /* F_INT: 64 or 32 (int); F_ENUM: an enum */
} field;

#define OPT(f, k, b) {#f, k, offsetof(loom_optimizer, f), b}
static const field opt_fields[] = {
    OPT(kind, F_ENUM, 0),        OPT(lr, F_FLOAT, 0),         OPT(beta1, F_FLOAT, 0),
    OPT(beta2, F_FLOAT, 0),      OPT(eps, F_FLOAT, 0),        OPT(momentum, F_FLOAT, 0),
    OPT(nesterov, F_INT, 32),    OPT(weight_decay, F_FLOAT, 0), OPT(l1, F_FLOAT, 0),
    OPT(l2, F_FLOAT, 0),         OPT(clip_norm, F_FLOAT, 0),  OPT(schedule, F_ENUM, 0),
    OPT(step_size, F_INT, 64),   OPT(gamma, F_FLOAT, 0),      OPT(warmup_steps, F_INT, 64),
    OPT(total_steps, F_INT, 64), OPT(lr_min, F_FLOAT, 0),     OPT(ema_decay, F_FLOAT, 0),
};

#define BAD(...) loom_fail(ctx, LOOM_E_FORMAT, __VA_ARGS__)

/* Stores number j into the field at base + f->offset; LOOM_E_FORMAT when
 * it cannot be held (not an integer where one is needed, out of the
 * type's range). Ranges of meaning are loom_model_config_problem's. */
static loom_status store(loom_ctx *ctx, const char *path, const char *prefix, const field *f, const cJSON *j,
                         void *base)
{
    if (!cJSON_IsNumber(j))
        return BAD("model file %s: loom.config field %s%s is not a number", path, prefix, f->name);
    double d = j->valuedouble;
    char *p = (char *)base + f->offset;
    if (f->kind == F_FLOAT) {
        /* a double beyond float's range would become inf: refused */
        if (!isfinite(d) || fabs(d) > 3.4028234663852886e38)
            return BAD("model file %s: loom.config field %s%s = %g does not fit a float", path, prefix, f->name, d);
        float v = (float)d;
        memcpy(p, &v, sizeof v);
        return LOOM_OK;
    }
    /* int64_t: [-2^63, 2^63) (every double that large is an integer) */
    double lo = f->bits == 64 ? -9223372036854775808.0 : (double)INT32_MIN;
    double hi = f->bits == 64 ? 9223372036854775808.0 : (double)INT32_MAX + 1.0;
    if (d != floor(d) || d < lo || d >= hi)
        return BAD("model file %s: loom.config field %s%s = %.17g is not an integer in range", path, prefix, f->name,
                   d);
    if (f->bits == 64) {
        int64_t v = (int64_t)d;
        memcpy(p, &v, sizeof v);
    } else {
        /* int and the enums: both stored as int-sized values */
        int v = (int)d;
        memcpy(p, &v, sizeof v);
    }
    return LOOM_OK;
}

static const field *find_field(const field *fs, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (name && !strcmp(fs[i].name, name))
            return &fs[i];
    return NULL;
}

static loom_status parse_optimizer(loom_ctx *ctx, const char *path, const cJSON *j, loom_optimizer *o)
{
    if (!cJSON_IsObject(j))
        return BAD("model file %s: loom.config field optimizer is not an object", path);
    /* the kind picks the defaults of the fields the file leaves out */
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(j, "kind");
    loom_optimizer_kind k = LOOM_OPT_ADAM;
    if (kind) {
        int v;
        field kf = {"kind", F_ENUM, 0, 0};
        LOOM_TRY(store(ctx, path, "optimizer.", &kf, kind, &v));
        if (v < 0 || v > LOOM_OPT_ADAMW)
            return BAD("model file %s: loom.config field optimizer.kind %d is not 0 (sgd), 1 (adam) or 2 (adamw)",
                       path, v);
        k = (loom_optimizer_kind)v;
    }
    *o = loom_optimizer_default(k);
    for (const cJSON *e = j->child; e; e = e->next) {
        const field *f = find_field(opt_fields, sizeof opt_fields / sizeof opt_fields[0], e->string);
        if (!f)
            return BAD("model file %s: loom.config has an unknown field optimizer.%.64s", path,
                       e->string ? e->string : "?");
        LOOM_TRY(store(ctx, path, "optimizer.", f, e, o));
    }
    return LOOM_OK;
}

loom_status loom_model_config_parse(loom_ctx *ctx, const char *path, const char *json, loom_model_config *out)
{
    loom_model_config c = loom_model_config_default();
    if (!json)
        return BAD("model file %s: no loom.config in the file's __metadata__", path);
    cJSON *r = cJSON_Parse(json);
    loom_status s = LOOM_OK;
    if (!cJSON_IsObject(r))
        s = BAD("model file %s: loom.config is not a JSON object: %.80s", path, json);
    /* the optimizer first: its kind sets the defaults */
    const cJSON *opt = s == LOOM_OK ? cJSON_GetObjectItemCaseSensitive(r, "optimizer") : NULL;
    if (s == LOOM_OK && opt)
        s = parse_optimizer(ctx, path, opt, &c.optimizer);
    for (const cJSON *e = s == LOOM_OK ? r->child : NULL; e && s == LOOM_OK; e = e->next) {
        const char *k = e->string ? e->string : "?";
        if (!strcmp(k, "optimizer")) {
            continue;
        } else if (!strcmp(k, "loss")) {
            field f = {"loss", F_ENUM, offsetof(loom_model_config, loss), 0};
            s = store(ctx, path, "", &f, e, &c);
        } else if (!strcmp(k, "batch")) {
            field f = {"batch", F_INT, offsetof(loom_model_config, batch), 64};
            s = store(ctx, path, "", &f, e, &c);
        } else if (!strcmp(k, "precision")) {
            const char *v = cJSON_GetStringValue(e);
            if (v && !strcmp(v, "f32"))
                c.precision = LOOM_F32;
            else if (v && !strcmp(v, "f16"))
                c.precision = LOOM_F16;
            else if (v && !strcmp(v, "bf16"))
                c.precision = LOOM_BF16;
            else
                s = BAD("model file %s: loom.config field precision is not \"f32\", \"f16\" or \"bf16\"", path);
        } else if (!strcmp(k, "seed")) {
            double d = cJSON_IsNumber(e) ? e->valuedouble : -1;
            if (!(d >= 0 && d < 18446744073709551616.0) || d != floor(d))
                s = BAD("model file %s: loom.config field seed is not an integer in [0, 2^64)", path);
            else
                c.seed = (uint64_t)d;
        } else {
            s = BAD("model file %s: loom.config has an unknown field %.64s", path, k);
        }
    }
    cJSON_Delete(r);
    char why[160];
    if (s == LOOM_OK && loom_model_config_problem(&c, why, sizeof why))
        s = BAD("model file %s: loom.config: %s", path, why);
    if (s == LOOM_OK)
        *out = c;
    return s;
}

loom_status loom_model_preprocess_parse(loom_ctx *ctx, const char *path, const char *json, loom_scaling *how,
                                        float stats[2])
{
    cJSON *r = cJSON_Parse(json);
    loom_status s = LOOM_OK;
    const char *kind = cJSON_IsObject(r) ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "scaling")) : NULL;
    const cJSON *mean = cJSON_IsObject(r) ? cJSON_GetObjectItemCaseSensitive(r, "mean") : NULL;
    const cJSON *sd = cJSON_IsObject(r) ? cJSON_GetObjectItemCaseSensitive(r, "std") : NULL;
    if (!cJSON_IsObject(r)) {
        s = BAD("model file %s: loom.preprocess is not a JSON object: %.80s", path, json);
    } else if (!kind || (strcmp(kind, "unit") && strcmp(kind, "standard"))) {
        s = BAD("model file %s: loom.preprocess field scaling is not \"unit\" or \"standard\"", path);
    } else {
        for (const cJSON *e = r->child; e && s == LOOM_OK; e = e->next)
            if (!e->string || (strcmp(e->string, "scaling") && strcmp(e->string, "mean") && strcmp(e->string, "std")))
                s = BAD("model file %s: loom.preprocess has an unknown field %.64s", path,
                        e->string ? e->string : "?");
        if (s == LOOM_OK && (!cJSON_IsNumber(mean) || !isfinite(mean->valuedouble) ||
                             fabs(mean->valuedouble) > 3.4028234663852886e38))
            s = BAD("model file %s: loom.preprocess field mean is not a finite number", path);
        if (s == LOOM_OK && (!cJSON_IsNumber(sd) || !(sd->valuedouble > 0) || sd->valuedouble > 3.4028234663852886e38))
            s = BAD("model file %s: loom.preprocess field std is not a finite number > 0", path);
    }
    if (s == LOOM_OK) {
        *how = !strcmp(kind, "standard") ? LOOM_SCALE_STANDARD : LOOM_SCALE_UNIT;
        stats[0] = (float)mean->valuedouble;
        stats[1] = (float)sd->valuedouble;
        if (*how == LOOM_SCALE_UNIT && (stats[0] != 0.0f || stats[1] != 255.0f))
            s = BAD("model file %s: loom.preprocess: unit scaling has mean 0 and std 255, not %g and %g", path,
                    (double)stats[0], (double)stats[1]);
        if (s == LOOM_OK && !(stats[1] > 0))
            s = BAD("model file %s: loom.preprocess field std is not a finite number > 0", path);
    }
    cJSON_Delete(r);
    return s;
}
