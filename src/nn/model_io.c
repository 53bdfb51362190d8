/* Model files and checkpoints: safetensors with the architecture, the
 * training configuration and the progress in __metadata__. */
#include "model.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"

static char *config_json(const loom_model_config *c)
{
    const loom_optimizer *o = &c->optimizer;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "loss", c->loss);
    cJSON_AddNumberToObject(r, "batch", (double)c->batch);
    cJSON_AddNumberToObject(r, "seed", (double)c->seed);
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
    return s;
}

/* A number field within [lo, hi], else def: converting a double outside
 * the target type's range (1e300 as an int) is undefined behaviour. */
static double num_in(const cJSON *o, const char *k, double def, double lo, double hi)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(v) && v->valuedouble >= lo && v->valuedouble <= hi ? v->valuedouble : def;
}

#define num(o, k, def) num_in(o, k, def, -3.4e38, 3.4e38)                 /* float */
#define num_int(o, k, def) num_in(o, k, def, -2147483648.0, 2147483647.0)
#define num_i64(o, k, def) num_in(o, k, def, -9223372036854774784.0, 9223372036854774784.0)
#define num_u64(o, k, def) num_in(o, k, def, 0.0, 18446744073709549568.0)

static loom_model_config config_parse(const char *json)
{
    loom_model_config c = loom_model_config_default();
    cJSON *r = json ? cJSON_Parse(json) : NULL;
    if (!r)
        return c;
    c.loss = (loom_loss)(int)num_int(r, "loss", c.loss);
    c.batch = (int64_t)num_i64(r, "batch", (double)c.batch);
    c.seed = (uint64_t)num_u64(r, "seed", (double)c.seed);
    const cJSON *j = cJSON_GetObjectItem(r, "optimizer");
    if (j) {
        loom_optimizer *o = &c.optimizer;
        *o = loom_optimizer_default((loom_optimizer_kind)(int)num_int(j, "kind", o->kind));
        o->lr = (float)num(j, "lr", o->lr);
        o->beta1 = (float)num(j, "beta1", o->beta1);
        o->beta2 = (float)num(j, "beta2", o->beta2);
        o->eps = (float)num(j, "eps", o->eps);
        o->momentum = (float)num(j, "momentum", o->momentum);
        o->nesterov = (int)num_int(j, "nesterov", o->nesterov);
        o->weight_decay = (float)num(j, "weight_decay", o->weight_decay);
        o->l1 = (float)num(j, "l1", o->l1);
        o->l2 = (float)num(j, "l2", o->l2);
        o->clip_norm = (float)num(j, "clip_norm", o->clip_norm);
        o->schedule = (loom_lr_schedule)(int)num_int(j, "schedule", o->schedule);
        o->step_size = (int64_t)num_i64(j, "step_size", (double)o->step_size);
        o->gamma = (float)num(j, "gamma", o->gamma);
        o->warmup_steps = (int64_t)num_i64(j, "warmup_steps", (double)o->warmup_steps);
        o->total_steps = (int64_t)num_i64(j, "total_steps", (double)o->total_steps);
        o->lr_min = (float)num(j, "lr_min", o->lr_min);
        o->ema_decay = (float)num(j, "ema_decay", o->ema_decay);
    }
    cJSON_Delete(r);
    return c;
}

static loom_status write_file(loom_sequential *m, const char *path, int checkpoint)
{
    if (!m)
        return LOOM_E_INVALID;
    if (!m->compiled)
        return loom_fail(m->ctx, LOOM_E_STATE, "save %s: compile (or train) the model first", path ? path : "");
    if (!path)
        return loom_fail(m->ctx, LOOM_E_INVALID, "save: NULL path");
    char *cfg = config_json(&m->cfg);
    char step[32], epoch[32], estep[32];
    snprintf(step, sizeof step, "%lld", (long long)loom_state_step(m->st));
    snprintf(epoch, sizeof epoch, "%lld", (long long)m->epoch);
    snprintf(estep, sizeof estep, "%lld", (long long)m->epoch_step);
    const char *meta[] = {"format", "loom", "loom.kind", checkpoint ? "checkpoint" : "model",
                          "loom.architecture", m->describe, "loom.config", cfg ? cfg : "{}",
                          "loom.step", step, "loom.epoch", epoch, "loom.epoch_step", estep, NULL};
    loom_status s = loom_safetensors_save(m->st, path, meta, NULL);
    free(cfg);
    return s;
}

loom_status loom_sequential_save(loom_sequential *m, const char *path)
{
    return write_file(m, path, 0);
}

loom_status loom_sequential_checkpoint(loom_sequential *m, const char *path)
{
    return write_file(m, path, 1);
}

/* The progress records must be whole numbers in [0, 2^53]: a negative
 * epoch_step made fit read before its shuffle order, a step near 2^63
 * overflows as it advances. Checked before anything is changed. */
static loom_status check_progress(loom_ctx *ctx, const char *path, const loom_tensor_file *f)
{
    static const char *const keys[] = {"loom.step", "loom.epoch", "loom.epoch_step"};
    for (int i = 0; i < 3; i++) {
        const char *v = loom_safetensors_metadata(f, keys[i]);
        if (!v)
            continue;
        size_t n = strspn(v, "0123456789");
        if (n == 0 || v[n] != '\0' || n > 16 || strtoll(v, NULL, 10) > (1LL << 53))
            return loom_fail(ctx, LOOM_E_FORMAT, "model file %s: %s \"%.40s\" is not a whole number in [0, 2^53]",
                             path, keys[i], v);
    }
    return LOOM_OK;
}

static void restore_progress(loom_sequential *m, const loom_tensor_file *f)
{
    const char *kind = loom_safetensors_metadata(f, "loom.kind");
    const char *step = loom_safetensors_metadata(f, "loom.step");
    if (step)
        loom_state_set_step(m->st, atoll(step));
    if (kind && !strcmp(kind, "checkpoint")) {
        const char *e = loom_safetensors_metadata(f, "loom.epoch");
        const char *es = loom_safetensors_metadata(f, "loom.epoch_step");
        m->epoch = e ? atoll(e) : 0;
        m->epoch_step = es ? atoll(es) : 0;
    }
}

loom_status loom_sequential_restore(loom_sequential *m, const char *path)
{
    if (!m)
        return LOOM_E_INVALID;
    if (!m->compiled)
        return loom_fail(m->ctx, LOOM_E_STATE, "restore %s: compile the model first", path ? path : "");
    loom_tensor_file *f = NULL;
    LOOM_TRY(loom_safetensors_open(m->ctx, path, &f));
    const char *arch = loom_safetensors_metadata(f, "loom.architecture");
    loom_status s = LOOM_OK;
    if (!arch || strcmp(arch, m->describe) != 0)
        s = loom_fail(m->ctx, LOOM_E_FORMAT, "restore %s: the file holds another architecture (%.200s) than the model (%.200s)",
                      path, arch ? arch : "none", m->describe);
    if (s == LOOM_OK)
        s = check_progress(m->ctx, path, f);
    if (s == LOOM_OK)
        s = loom_safetensors_to_state(f, m->st);
    if (s == LOOM_OK)
        restore_progress(m, f);
    loom_safetensors_close(f);
    return s;
}

loom_status loom_sequential_load(loom_ctx *ctx, const char *path, loom_device *dev, const loom_model_config *cfg,
                                 loom_sequential **out)
{
    if (!ctx || !out)
        return LOOM_E_INVALID;
    *out = NULL;
    loom_tensor_file *f = NULL;
    LOOM_TRY(loom_safetensors_open(ctx, path, &f));
    const char *arch = loom_safetensors_metadata(f, "loom.architecture");
    loom_sequential *m = NULL;
    loom_status s = LOOM_OK;
    if (!arch)
        s = loom_fail(ctx, LOOM_E_FORMAT, "load %s: no loom.architecture in the file's __metadata__", path);
    if (s == LOOM_OK)
        s = check_progress(ctx, path, f);
    if (s == LOOM_OK)
        s = loom_model_from_json(ctx, arch, &m);
    if (s == LOOM_OK) {
        loom_model_config c = cfg ? *cfg : config_parse(loom_safetensors_metadata(f, "loom.config"));
        s = loom_sequential_compile(m, dev, &c);
    }
    if (s == LOOM_OK)
        s = loom_safetensors_to_state(f, m->st);
    if (s == LOOM_OK)
        restore_progress(m, f);
    loom_safetensors_close(f);
    if (s != LOOM_OK) {
        loom_sequential_destroy(m);
        return s;
    }
    *out = m;
    return LOOM_OK;
}

loom_status loom_model_config_read(loom_ctx *ctx, const char *path, loom_model_config *out)
{
    if (!ctx || !out)
        return LOOM_E_INVALID;
    loom_tensor_file *f = NULL;
    LOOM_TRY(loom_safetensors_open(ctx, path, &f));
    *out = config_parse(loom_safetensors_metadata(f, "loom.config"));
    loom_safetensors_close(f);
    return LOOM_OK;
}
