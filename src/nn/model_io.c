/* Model files and checkpoints: safetensors with the architecture, the
 * training configuration, the inputs' preprocessing and the progress in
 * __metadata__.
 *
 * A model file (loom_sequential_save) holds the weights and, when the
 * optimizer keeps one, their moving average; a checkpoint also holds the
 * optimizer's moments and the progress. Reading either goes through one
 * validation pass before anything is written into the model: every
 * metadata record known and in range, every tensor the architecture needs
 * present as F32 of its shape, nothing the architecture does not know,
 * every value finite; a checkpoint must carry each moment its optimizer
 * keeps. Any failure is LOOM_E_FORMAT naming the file and what is wrong. */
#include "model.h"
#include "name_map.h"
#include "nn_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BAD(...) loom_fail(ctx, LOOM_E_FORMAT, __VA_ARGS__)

/* ---- tensors a model knows -------------------------------------------------- */

/* ROLE_DERIVED: an int8 layer's tensors computed at load (quantize.c);
 * ROLE_REPLACED: the f32 kernel of a layer that runs int8. */
typedef enum tensor_role { ROLE_UNKNOWN, ROLE_PARAM, ROLE_MOMENT, ROLE_EMA, ROLE_DERIVED, ROLE_REPLACED } tensor_role;

/* What a name means to the model: its role and the dtype and shape it
 * must have. */
typedef struct tensor_kind {
    tensor_role role;
    loom_dtype dtype;
    int ndim;
    int64_t shape[4];
} tensor_kind;

static const char *const moment_suffixes[] = {"m", "v", "momentum"};

/* Every parameter of the model (loom_model_param: kernels, biases, batch
 * norm's scale, shift and running statistics, the sequence layers'
 * weights); trainable ones may carry optimizer moments and a moving
 * average, "<name>/m" and the like. */
static tensor_kind classify(const loom_sequential *m, const char *name)
{
    tensor_kind k = {ROLE_UNKNOWN, LOOM_F32, 0, {0, 0, 0, 0}};
    int derived;
    if (loom_model_quant_tensor(m, name, &k.dtype, &k.ndim, k.shape, &derived)) {
        k.role = derived ? ROLE_DERIVED : ROLE_PARAM;
        return k;
    }
    if (loom_model_quant_replaced(m, name)) {
        k.role = ROLE_REPLACED;
        return k;
    }
    model_param p;
    for (int i = 0; loom_model_param(m, i, &p, NULL); i++) {
        size_t len = strlen(p.name);
        if (strncmp(name, p.name, len))
            continue;
        k.ndim = p.ndim;
        memcpy(k.shape, p.shape, sizeof k.shape);
        if (!name[len]) {
            k.role = ROLE_PARAM;
            return k;
        }
        if (name[len] != '/' || !p.trainable)
            continue;
        const char *suffix = name + len + 1;
        if (!strcmp(suffix, "ema")) {
            k.role = ROLE_EMA;
            return k;
        }
        for (size_t s = 0; s < sizeof moment_suffixes / sizeof moment_suffixes[0]; s++)
            if (!strcmp(suffix, moment_suffixes[s])) {
                k.role = ROLE_MOMENT;
                return k;
            }
    }
    k.role = ROLE_UNKNOWN;
    return k;
}

/* ---- writing ------------------------------------------------------------------ */

/* A model file keeps the weights and their average, not the moments. */
static int model_keep(const char *name, void *user)
{
    tensor_role r = classify(user, name).role;
    return r == ROLE_PARAM || r == ROLE_EMA;
}

/* A checkpoint keeps the moments too, but not what the model does not
 * know: pruning's masks and a teacher's weights ("teacher/...") are the
 * training set-up's, not the model's (a checkpoint resumes as plain
 * fine-tuning of the pruned weights). */
static int checkpoint_keep(const char *name, void *user)
{
    return classify(user, name).role != ROLE_UNKNOWN;
}

static loom_status write_file(loom_sequential *m, const char *path, int checkpoint, loom_dtype as)
{
    if (!m)
        return LOOM_E_INVALID;
    if (!m->compiled)
        return loom_fail(m->ctx, LOOM_E_STATE, "save %s: compile (or train) the model first", path ? path : "");
    if (!path)
        return loom_fail(m->ctx, LOOM_E_INVALID, "save: NULL path");
    loom_ctx *ctx = m->ctx;
    if (m->quant && (checkpoint || as != LOOM_F32))
        return loom_fail(ctx, LOOM_E_UNSUPPORTED, "save %s: a quantized model is saved as it is (i8 weights, f32 "
                         "scales): %s", path, checkpoint ? "it has no training state to checkpoint"
                                                          : "its scales stay f32");
    char *cfg = loom_model_config_json(ctx, &m->cfg);
    char *pre = loom_model_preprocess_json(m);
    char *quant = m->quant ? loom_model_quant_json(m) : NULL;
    if (!cfg || (m->pre_set && !pre) || (m->quant && !quant)) {
        loom_strfree(ctx, cfg);
        loom_strfree(ctx, pre);
        loom_strfree(ctx, quant);
        return loom_fail(ctx, LOOM_E_OOM, "save %s: out of memory", path);
    }
    char step[32], epoch[32], estep[32], scale[64];
    snprintf(scale, sizeof scale, "%.9g %lld", (double)loom_state_loss_scale(m->st),
             (long long)loom_state_skipped_steps(m->st));
    snprintf(step, sizeof step, "%lld", (long long)loom_state_step(m->st));
    snprintf(epoch, sizeof epoch, "%lld", (long long)m->epoch);
    snprintf(estep, sizeof estep, "%lld", (long long)m->epoch_step);
    const char *meta[20];
    int k = 0;
    meta[k++] = "format", meta[k++] = "loom";
    meta[k++] = "loom.kind", meta[k++] = checkpoint ? "checkpoint" : "model";
    meta[k++] = "loom.architecture", meta[k++] = m->describe;
    meta[k++] = "loom.config", meta[k++] = cfg;
    if (pre)
        meta[k++] = "loom.preprocess", meta[k++] = pre;
    if (quant)
        meta[k++] = "loom.quant", meta[k++] = quant;
    meta[k++] = "loom.step", meta[k++] = step;
    if (checkpoint) {
        meta[k++] = "loom.epoch", meta[k++] = epoch;
        meta[k++] = "loom.epoch_step", meta[k++] = estep;
        /* dynamic loss scaling resumes at the scale it reached */
        if (loom_state_loss_scale(m->st) > 0)
            meta[k++] = "loom.loss_scale", meta[k++] = scale;
    }
    meta[k] = NULL;
    loom_status s = loom_safetensors_save_filtered(m->st, path, meta, checkpoint ? checkpoint_keep : model_keep, m, as);
    loom_strfree(ctx, cfg);
    loom_strfree(ctx, pre);
    loom_strfree(ctx, quant);
    return s;
}

loom_status loom_sequential_save_as(loom_sequential *m, const char *path, loom_dtype dtype)
{
    if (m && dtype != LOOM_F32 && dtype != LOOM_F16 && dtype != LOOM_BF16)
        return loom_fail(m->ctx, LOOM_E_DTYPE, "save %s: weights in %s (f32, f16 or bf16)", path ? path : "",
                         loom_dtype_name(dtype));
    return write_file(m, path, 0, dtype);
}

loom_status loom_sequential_save(loom_sequential *m, const char *path)
{
    return write_file(m, path, 0, LOOM_F32);
}

loom_status loom_sequential_checkpoint(loom_sequential *m, const char *path)
{
    return write_file(m, path, 1, LOOM_F32);
}

/* ---- reading: the metadata ---------------------------------------------------- */

static const char *const known_meta[] = {"loom.kind",  "loom.architecture", "loom.config",     "loom.preprocess",
                                         "loom.step",  "loom.epoch",        "loom.epoch_step", "loom.loss_scale",
                                         "loom.quant", NULL};

/* A metadata value that must be a whole decimal number >= 0. */
static loom_status meta_count(loom_ctx *ctx, const char *path, const loom_tensor_file *f, const char *key,
                              int required, int64_t *out)
{
    const char *v = loom_safetensors_metadata(f, key);
    if (!v) {
        if (required)
            return BAD("model file %s: the checkpoint has no %s", path, key);
        *out = 0;
        return LOOM_OK;
    }
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno == ERANGE || (*v != '-' && (*v < '0' || *v > '9')))
        return BAD("model file %s: %s \"%.40s\" is not a whole number", path, key, v);
    if (x < 0)
        return BAD("model file %s: %s %lld is negative", path, key, x);
    *out = x;
    return LOOM_OK;
}

/* Everything read from a file before the model is touched. */
typedef struct file_record {
    int checkpoint;
    loom_model_config cfg;
    int pre_set;
    loom_scaling pre_how;
    float pre_stats[2];
    int64_t step, epoch, epoch_step;
    int has_scale;             /* a checkpoint of loss-scaled training */
    float loss_scale;
    int64_t skipped;
} file_record;

static loom_status read_meta(loom_ctx *ctx, const char *path, const loom_tensor_file *f, file_record *r)
{
    memset(r, 0, sizeof *r);
    const char *kind = loom_safetensors_metadata(f, "loom.kind");
    if (!kind)
        return BAD("model file %s: no loom.kind in the file's __metadata__ (not a loom model file?)", path);
    if (strcmp(kind, "model") && strcmp(kind, "checkpoint"))
        return BAD("model file %s: loom.kind \"%.40s\" is not \"model\" or \"checkpoint\"", path, kind);
    r->checkpoint = !strcmp(kind, "checkpoint");
    LOOM_TRY(loom_model_config_parse(ctx, path, loom_safetensors_metadata(f, "loom.config"), &r->cfg));
    const char *pre = loom_safetensors_metadata(f, "loom.preprocess");
    if (pre) {
        LOOM_TRY(loom_model_preprocess_parse(ctx, path, pre, &r->pre_how, r->pre_stats));
        r->pre_set = 1;
    }
    LOOM_TRY(meta_count(ctx, path, f, "loom.step", r->checkpoint, &r->step));
    if (r->checkpoint) {
        LOOM_TRY(meta_count(ctx, path, f, "loom.epoch", 1, &r->epoch));
        LOOM_TRY(meta_count(ctx, path, f, "loom.epoch_step", 1, &r->epoch_step));
        const char *ls = loom_safetensors_metadata(f, "loom.loss_scale");
        if (ls) {
            double scale;
            long long skipped;
            char end;
            if (sscanf(ls, "%lf %lld%c", &scale, &skipped, &end) != 2 || !(scale > 0 && scale < 3.0e38) ||
                skipped < 0)
                return BAD("model file %s: loom.loss_scale \"%.40s\" is not a scale > 0 and a count >= 0", path, ls);
            r->has_scale = 1;
            r->loss_scale = (float)scale;
            r->skipped = skipped;
        }
    }
    return LOOM_OK;
}

/* Refuses records in loom's namespace that this version does not know
 * (a newer or a damaged writer); other keys ("format", a user's notes)
 * are left alone. */
static loom_status check_meta_keys(loom_ctx *ctx, const char *path, const loom_tensor_file *f)
{
    for (int i = 0; i < loom_safetensors_meta_count(f); i++) {
        const char *key = loom_safetensors_meta_key(f, i);
        if (strncmp(key, "loom.", 5))
            continue;
        int known = 0;
        for (int k = 0; known_meta[k] && !known; k++)
            known = !strcmp(key, known_meta[k]);
        if (!known)
            return BAD("model file %s: unknown metadata record \"%.64s\"", path, key);
    }
    return LOOM_OK;
}

/* ---- reading: the tensors ---------------------------------------------------- */

static int same_shape(const tensor_kind *k, int ndim, const int64_t *shape)
{
    if (k->ndim != ndim)
        return 0;
    for (int d = 0; d < ndim; d++)
        if (shape[d] != k->shape[d])
            return 0;
    return 1;
}

/* The first element of an F32 tensor that is NaN or infinite, or -1. */
static int64_t first_nonfinite(const void *data, uint64_t count, loom_dtype dt, float *bad)
{
    const unsigned char *p = data;
    size_t es = loom_dtype_size(dt);
    for (uint64_t i = 0; i < count; i++) {
        float v;
        loom_convert(LOOM_F32, &v, dt, p + i * es, 1);
        if (!isfinite(v)) {
            *bad = v;
            return (int64_t)i;
        }
    }
    return -1;
}

/* What the validation found: for each state entry, the file tensor that
 * fills it (-1: none; the moments stay zero, an average starts as the
 * weights). */
typedef struct load_plan {
    int nstate;
    int *from;
} load_plan;

static loom_status check_tensors(loom_sequential *m, const char *path, const loom_tensor_file *f, int checkpoint,
                                 load_plan *plan)
{
    loom_ctx *ctx = m->ctx;
    char a[96], b[96];
    int nstate = loom_state_count(m->st);
    nn_name_map smap;
    LOOM_TRY(nn_name_map_init(&smap, ctx, (size_t)nstate, path));
    for (int i = 0; i < nstate; i++) {
        const char *name;
        loom_state_entry(m->st, i, &name, NULL, NULL, NULL);
        nn_name_map_put(&smap, name, i);
    }
    plan->nstate = nstate;
    plan->from = loom_malloc(ctx, (size_t)(nstate ? nstate : 1) * sizeof *plan->from);
    loom_status s = plan->from ? LOOM_OK : loom_fail(ctx, LOOM_E_OOM, "model file %s: out of memory", path);
    for (int i = 0; i < nstate && s == LOOM_OK; i++)
        plan->from[i] = -1;
    int n = loom_safetensors_count(f);
    for (int i = 0; i < n && s == LOOM_OK; i++) {
        const char *name;
        loom_dtype dt;
        int ndim;
        int64_t shape[LOOM_MAX_DIMS];
        const void *data;
        loom_safetensors_tensor(f, i, &name, &dt, &ndim, shape, &data);
        tensor_kind k = classify(m, name);
        if (k.role == ROLE_UNKNOWN || k.role == ROLE_DERIVED) {
            s = BAD("model file %s: tensor \"%.100s\" is not part of the model's architecture%s", path, name,
                    k.role == ROLE_DERIVED ? " (an int8 layer's derived tensor, computed at load)" : "");
            break;
        }
        if (k.role == ROLE_REPLACED) {
            s = BAD("model file %s: tensor \"%.100s\" is an f32 kernel, but loom.quant runs its layer in int8 "
                    "(kernel_q and w_scale are needed)", path, name);
            break;
        }
        /* weights may be stored in half precision (loom_sequential_save_as):
         * they widen into the f32 weights */
        int half_ok = k.dtype == LOOM_F32 && (dt == LOOM_F16 || dt == LOOM_BF16) && k.role != ROLE_MOMENT;
        if ((dt != k.dtype && !half_ok) || !same_shape(&k, ndim, shape)) {
            s = BAD("model file %s: tensor \"%.100s\" is %s %s in the file, the architecture needs %s %s", path,
                    name, loom_dtype_name(dt), loom_shape_str(a, sizeof a, ndim, shape), loom_dtype_name(k.dtype),
                    loom_shape_str(b, sizeof b, k.ndim, k.shape));
            break;
        }
        uint64_t count = 1;
        for (int d = 0; d < ndim; d++)
            count *= (uint64_t)shape[d]; /* the shape matched the architecture's */
        float bad;
        int64_t at = loom_dtype_is_float(dt) ? first_nonfinite(data, count, dt, &bad) : -1;
        if (at >= 0) {
            s = BAD("model file %s: tensor \"%.100s\" holds %s at element %lld", path, name,
                    isnan(bad) ? "NaN" : "an infinity", (long long)at);
            break;
        }
        int slot = nn_name_map_get(&smap, name);
        if (slot >= 0)
            plan->from[slot] = i;
        else
            loom_logf(ctx, LOOM_LOG_INFO, "model file %s: tensor \"%s\" is not used by this optimizer, skipped", path,
                      name);
    }
    for (int i = 0; i < nstate && s == LOOM_OK; i++) {
        if (plan->from[i] >= 0)
            continue;
        const char *name;
        loom_state_entry(m->st, i, &name, NULL, NULL, NULL);
        tensor_role r = classify(m, name).role;
        if (r == ROLE_PARAM)
            s = BAD("model file %s: weight \"%.100s\" is missing", path, name);
        else if (checkpoint && r == ROLE_MOMENT)
            s = BAD("model file %s: the checkpoint lacks optimizer moment \"%.100s\", which its optimizer keeps "
                    "(a resumed run would start it from zero)", path, name);
        else if (checkpoint && r == ROLE_EMA)
            s = BAD("model file %s: the checkpoint lacks the moving average \"%.100s\" (ema_decay is set)", path,
                    name);
    }
    nn_name_map_free(&smap);
    return s;
}

static void free_plan(loom_ctx *ctx, load_plan *plan)
{
    loom_free(ctx, plan->from, (size_t)(plan->nstate ? plan->nstate : 1) * sizeof *plan->from);
    plan->from = NULL;
}

/* Writes the checked file into the model. */
static loom_status apply(loom_sequential *m, const loom_tensor_file *f, const file_record *r, const load_plan *plan)
{
    loom_ctx *ctx = m->ctx;
    for (int i = 0; i < plan->nstate; i++) {
        const char *name;
        loom_dtype dt;
        int ndim;
        int64_t shape[LOOM_MAX_DIMS];
        loom_state_entry(m->st, i, &name, &dt, &ndim, shape);
        if (plan->from[i] >= 0) {
            const void *data;
            loom_dtype fdt;
            loom_safetensors_tensor(f, plan->from[i], NULL, &fdt, NULL, NULL, &data);
            if (fdt == dt) {
                LOOM_TRY(loom_state_write(m->st, name, dt, ndim, shape, data));
                continue;
            }
            uint64_t count;
            if (loom_shape_bytes(ndim, shape, 4, &count, NULL) || count > SIZE_MAX / 4)
                return loom_fail(ctx, LOOM_E_OOM, "load: tensor \"%s\" is too large", name);
            float *w = loom_malloc(ctx, (size_t)count * 4);
            loom_status s = w ? loom_convert(dt, w, fdt, data, (size_t)count)
                              : loom_fail(ctx, LOOM_E_OOM, "load: out of memory for \"%s\"", name);
            if (s == LOOM_OK)
                s = loom_state_write(m->st, name, dt, ndim, shape, w);
            loom_free(ctx, w, (size_t)count * 4);
            LOOM_TRY(s);
        }
    }
    /* after every weight is in: averages the file does not hold */
    for (int i = 0; i < plan->nstate; i++) {
        const char *name;
        loom_dtype dt;
        int ndim;
        int64_t shape[LOOM_MAX_DIMS];
        loom_state_entry(m->st, i, &name, &dt, &ndim, shape);
        size_t len = strlen(name);
        if (plan->from[i] >= 0 || classify(m, name).role != ROLE_EMA || len < 5)
            continue;
        /* A model file saved without an average: the average of weights
         * with no history is the weights. */
        char pname[128];
        snprintf(pname, sizeof pname, "%.*s", (int)(len - 4), name);
        uint64_t bytes;
        if (loom_shape_bytes(ndim, shape, sizeof(float), NULL, &bytes) || bytes > SIZE_MAX)
            return loom_fail(ctx, LOOM_E_OOM, "load: tensor \"%s\" is too large", name);
        float *w = loom_malloc(ctx, (size_t)bytes);
        if (!w)
            return loom_fail(ctx, LOOM_E_OOM, "load: out of memory for \"%s\"", name);
        loom_status s = loom_state_read(m->st, pname, w, (size_t)bytes);
        if (s == LOOM_OK)
            s = loom_state_write(m->st, name, dt, ndim, shape, w);
        loom_free(ctx, w, (size_t)bytes);
        LOOM_TRY(s);
    }
    /* A checkpoint resumes its optimizer; a model file's optimizer starts
     * afresh (its moments are not in the file). */
    loom_state_set_step(m->st, r->checkpoint ? r->step : 0);
    if (r->has_scale)
        LOOM_TRY(loom_state_set_loss_scale(m->st, r->loss_scale, r->skipped));
    m->epoch = r->checkpoint ? r->epoch : 0;
    m->epoch_step = r->checkpoint ? r->epoch_step : 0;
    if (r->pre_set) {
        m->pre_set = 1;
        m->pre_how = r->pre_how;
        m->pre_stats[0] = r->pre_stats[0];
        m->pre_stats[1] = r->pre_stats[1];
    }
    return LOOM_OK;
}

/* The validation pass and, if it passes, the write. */
static loom_status check_and_apply(loom_sequential *m, const char *path, const loom_tensor_file *f,
                                   const file_record *r)
{
    load_plan plan = {0, NULL};
    loom_status s = check_tensors(m, path, f, r->checkpoint, &plan);
    if (s == LOOM_OK && m->quant)
        s = loom_model_quant_check(m, path, f);
    if (s == LOOM_OK)
        s = apply(m, f, r, &plan);
    if (s == LOOM_OK && m->quant)
        s = loom_model_quant_derive(m);
    free_plan(m->ctx, &plan);
    return s;
}

/* Opens a model file and reads its metadata records. */
static loom_status open_model(loom_ctx *ctx, const char *path, loom_tensor_file **f, file_record *r)
{
    LOOM_TRY(loom_safetensors_open(ctx, path, f));
    loom_status s = check_meta_keys(ctx, path, *f);
    if (s == LOOM_OK)
        s = read_meta(ctx, path, *f, r);
    if (s != LOOM_OK) {
        loom_safetensors_close(*f);
        *f = NULL;
    }
    return s;
}

loom_status loom_sequential_restore(loom_sequential *m, const char *path)
{
    if (!m)
        return LOOM_E_INVALID;
    if (!m->compiled)
        return loom_fail(m->ctx, LOOM_E_STATE, "restore %s: compile the model first", path ? path : "");
    loom_ctx *ctx = m->ctx;
    loom_tensor_file *f = NULL;
    file_record r;
    LOOM_TRY(open_model(ctx, path, &f, &r));
    const char *arch = loom_safetensors_metadata(f, "loom.architecture");
    loom_status s = LOOM_OK;
    if (!arch || strcmp(arch, m->describe) != 0)
        s = BAD("restore %s: the file holds another architecture (%.200s) than the model (%.200s)", path,
                arch ? arch : "none", m->describe);
    if (s == LOOM_OK)
        s = check_and_apply(m, path, f, &r);
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
    file_record r;
    LOOM_TRY(open_model(ctx, path, &f, &r));
    const char *arch = loom_safetensors_metadata(f, "loom.architecture");
    loom_sequential *m = NULL;
    loom_status s = LOOM_OK;
    if (!arch)
        s = BAD("model file %s: no loom.architecture in the file's __metadata__", path);
    if (s == LOOM_OK)
        s = loom_model_from_json(ctx, arch, path, &m);
    const char *quant = loom_safetensors_metadata(f, "loom.quant");
    if (s == LOOM_OK && quant)
        s = loom_model_quant_parse(m, path, quant);
    if (s == LOOM_OK)
        s = loom_sequential_compile(m, dev, cfg ? cfg : &r.cfg);
    if (s == LOOM_OK)
        s = check_and_apply(m, path, f, &r);
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
    file_record r;
    LOOM_TRY(open_model(ctx, path, &f, &r));
    loom_safetensors_close(f);
    *out = r.cfg;
    return LOOM_OK;
}
