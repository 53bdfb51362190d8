/* Model files and checkpoints of the Sequential API: what save and
 * checkpoint write, the one validation pass every file goes through on
 * load (tensors, dtypes, shapes, finite values, the loom.config and
 * progress records), and the inputs' preprocessing they record. Small
 * models on synthetic IDX data: no device but the CPU, no data set. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[64];

static void setup(void)
{
    strcpy(tmpdir, "/tmp/loom_mf_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
    DIR *d = opendir(tmpdir);
    if (!d)
        return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
            remove(p);
        }
    closedir(d);
    rmdir(tmpdir);
}

static const char *tpath(const char *name)
{
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static loom_ctx *cpu_ctx(void)
{
    loom_ctx_opts o;
    loom_ctx_opts_default(&o);
    o.log_level = LOOM_LOG_ERROR;
    o.backends = 1 << LOOM_BACKEND_CPU;
    loom_ctx *ctx = NULL;
    ck_assert_int_eq(loom_ctx_create(&o, &ctx), LOOM_OK);
    return ctx;
}

/* ---- synthetic data: N images of 2x4 pixels, labels i % 3 ----------------- */

enum { N = 60, F = 8, K = 3 };

static void write_idx(const char *path, int ndim, const uint32_t *dims, const unsigned char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    unsigned char head[4] = {0, 0, 8, (unsigned char)ndim};
    fwrite(head, 1, 4, f);
    for (int i = 0; i < ndim; i++) {
        unsigned char b[4] = {(unsigned char)(dims[i] >> 24), (unsigned char)(dims[i] >> 16),
                              (unsigned char)(dims[i] >> 8), (unsigned char)dims[i]};
        fwrite(b, 1, 4, f);
    }
    fwrite(data, 1, n, f);
    fclose(f);
}

static loom_dataset *data(loom_ctx *ctx, int scale)
{
    unsigned char px[N * F], lb[N];
    for (int i = 0; i < N; i++) {
        lb[i] = (unsigned char)(i % K);
        for (int j = 0; j < F; j++)
            px[i * F + j] = (unsigned char)((j % K == lb[i] ? 200 : 20) + (i * 7 + j * 13) % 30);
    }
    uint32_t di[3] = {N, 2, 4}, dl[1] = {N};
    write_idx(tpath("img"), 3, di, px, sizeof px);
    write_idx(tpath("lab"), 1, dl, lb, sizeof lb);
    loom_dataset *ds = NULL;
    ck_assert_int_eq(loom_dataset_load_idx(ctx, tpath("img"), tpath("lab"), &ds), LOOM_OK);
    if (scale >= 0)
        ck_assert_int_eq(loom_dataset_scale(ds, (loom_scaling)scale, NULL, NULL), LOOM_OK);
    return ds;
}

static loom_sequential *model(loom_ctx *ctx, loom_device *dev, float ema)
{
    loom_sequential *m = NULL;
    ck_assert_int_eq(loom_sequential_create(ctx, F, &m), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_dense(m, 4, LOOM_ACT_RELU, LOOM_INIT_GLOROT_UNIFORM), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_dense(m, K, LOOM_ACT_SOFTMAX, LOOM_INIT_GLOROT_UNIFORM), LOOM_OK);
    loom_model_config c = loom_model_config_default();
    c.batch = 16;
    c.optimizer.ema_decay = ema;
    ck_assert_msg(loom_sequential_compile(m, dev, &c) == LOOM_OK, "%s", loom_last_error(ctx));
    return m;
}

/* A trained model saved as a model file and as a checkpoint. */
static loom_sequential *trained(loom_ctx *ctx, loom_device *dev, loom_dataset *ds, float ema)
{
    loom_sequential *m = model(ctx, dev, ema);
    loom_fit_config fc = loom_fit_config_default();
    fc.epochs = 2;
    ck_assert_msg(loom_sequential_fit(m, ds, &fc, NULL) == LOOM_OK, "%s", loom_last_error(ctx));
    ck_assert_int_eq(loom_sequential_save(m, tpath("model.st")), LOOM_OK);
    ck_assert_int_eq(loom_sequential_checkpoint(m, tpath("ckpt.st")), LOOM_OK);
    return m;
}

/* ---- editing safetensors files ------------------------------------------- */

typedef struct stfile {
    cJSON *h;
    unsigned char *data;
    size_t n;
} stfile;

static stfile st_read(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    size_t size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(size);
    ck_assert_uint_eq(fread(b, 1, size, f), size);
    fclose(f);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | b[i];
    char *h = malloc(hl + 1);
    memcpy(h, b + 8, hl);
    h[hl] = 0;
    stfile s;
    s.h = cJSON_Parse(h);
    ck_assert_ptr_nonnull(s.h);
    s.n = size - 8 - hl;
    s.data = malloc(s.n + 4096);
    memcpy(s.data, b + 8 + hl, s.n);
    free(h);
    free(b);
    return s;
}

static void st_write(const char *path, stfile *s)
{
    char *h = cJSON_PrintUnformatted(s->h);
    size_t hl = strlen(h);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(h, 1, hl, f);
    fwrite(s->data, 1, s->n, f);
    fclose(f);
    free(h);
    cJSON_Delete(s->h);
    free(s->data);
}

static int st_has(const char *path, const char *name)
{
    stfile s = st_read(path);
    int has = cJSON_GetObjectItemCaseSensitive(s.h, name) != NULL;
    cJSON_Delete(s.h);
    free(s.data);
    return has;
}

static int st_tensors(const char *path)
{
    stfile s = st_read(path);
    int n = cJSON_GetArraySize(s.h) - (cJSON_GetObjectItemCaseSensitive(s.h, "__metadata__") ? 1 : 0);
    cJSON_Delete(s.h);
    free(s.data);
    return n;
}

static const char *st_meta(stfile *s, const char *key)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s->h, "__metadata__"), key));
}

/* src with metadata key set to value (NULL: removed), written to dst. */
static void with_meta(const char *src, const char *dst, const char *key, const char *value)
{
    stfile s = st_read(src);
    cJSON *m = cJSON_GetObjectItemCaseSensitive(s.h, "__metadata__");
    cJSON_DeleteItemFromObjectCaseSensitive(m, key);
    if (value)
        cJSON_AddStringToObject(m, key, value);
    st_write(dst, &s);
}

/* src with the loom.config field (optimizer.X for "optimizer.X") set to
 * the JSON text value. */
static void with_config(const char *src, const char *dst, const char *field, const char *value)
{
    stfile s = st_read(src);
    cJSON *cfg = cJSON_Parse(st_meta(&s, "loom.config"));
    ck_assert_ptr_nonnull(cfg);
    cJSON *o = cfg;
    const char *dot = strchr(field, '.');
    char head[64];
    if (dot) {
        snprintf(head, sizeof head, "%.*s", (int)(dot - field), field);
        o = cJSON_GetObjectItemCaseSensitive(cfg, head);
        field = dot + 1;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(o, field);
    cJSON_AddItemToObject(o, field, cJSON_Parse(value));
    char *text = cJSON_PrintUnformatted(cfg);
    cJSON_Delete(cfg);
    st_write(dst, &s);
    with_meta(dst, dst, "loom.config", text);
    free(text);
}

static void without_tensor(const char *src, const char *dst, const char *name)
{
    stfile s = st_read(src);
    ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(s.h, name));
    cJSON_DeleteItemFromObjectCaseSensitive(s.h, name);
    st_write(dst, &s);
}

/* Appends a tensor of n floats of value v. */
static void with_tensor(const char *src, const char *dst, const char *name, const char *dtype, int ndim,
                        const int *shape, size_t n, float v)
{
    stfile s = st_read(src);
    cJSON *t = cJSON_AddObjectToObject(s.h, name);
    cJSON_AddStringToObject(t, "dtype", dtype);
    cJSON_AddItemToObject(t, "shape", cJSON_CreateIntArray(shape, ndim));
    double offs[2] = {(double)s.n, (double)(s.n + 4 * n)};
    cJSON_AddItemToObject(t, "data_offsets", cJSON_CreateDoubleArray(offs, 2));
    for (size_t i = 0; i < n; i++)
        memcpy(s.data + s.n + 4 * i, &v, 4);
    s.n += 4 * n;
    st_write(dst, &s);
}

/* Sets element i of tensor name to v. */
static void poke(const char *src, const char *dst, const char *name, int i, float v)
{
    stfile s = st_read(src);
    cJSON *t = cJSON_GetObjectItemCaseSensitive(s.h, name);
    ck_assert_ptr_nonnull(t);
    size_t begin = (size_t)cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(t, "data_offsets"), 0)->valuedouble;
    memcpy(s.data + begin + 4 * (size_t)i, &v, 4);
    st_write(dst, &s);
}

/* Loading path must fail with LOOM_E_FORMAT and a message holding what. */
static void refused(loom_ctx *ctx, loom_device *dev, const char *path, const char *what)
{
    loom_sequential *m = (loom_sequential *)&m;
    loom_status s = loom_sequential_load(ctx, path, dev, NULL, &m);
    ck_assert_msg(s == LOOM_E_FORMAT, "%s: want bad file format, got %s (%s)", what, loom_status_str(s),
                  loom_last_error(ctx));
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(loom_last_error(ctx), what), "message \"%s\" does not say \"%s\"", loom_last_error(ctx),
                  what);
    ck_assert_msg(strstr(loom_last_error(ctx), path), "message \"%s\" does not name %s", loom_last_error(ctx),
                  path);
}

/* ---- what is written --------------------------------------------------------- */

/* save writes the weights only (and their average when the optimizer
 * keeps one); a checkpoint adds Adam's moments. */
START_TEST(save_writes_weights_only)
{
    loom_ctx *ctx = cpu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_dataset *ds = data(ctx, LOOM_SCALE_UNIT);
    loom_sequential *m = trained(ctx, dev, ds, 0);
    ck_assert_int_eq(st_tensors(tpath("model.st")), 4);
    ck_assert(st_has(tpath("model.st"), "dense1/bias"));
    ck_assert(!st_has(tpath("model.st"), "dense0/kernel/m"));
    ck_assert_int_eq(st_tensors(tpath("ckpt.st")), 12);
    ck_assert(st_has(tpath("ckpt.st"), "dense0/kernel/m"));
    ck_assert(st_has(tpath("ckpt.st"), "dense1/bias/v"));
    loom_sequential_destroy(m);
    m = trained(ctx, dev, ds, 0.9f);
    ck_assert_int_eq(st_tensors(tpath("model.st")), 8);
    ck_assert(st_has(tpath("model.st"), "dense0/kernel/ema"));
    ck_assert_int_eq(st_tensors(tpath("ckpt.st")), 16);
    /* a model file loads with a fresh optimizer and predicts the same */
    float x[F] = {0.1f, 0.9f, 0.2f, 0.3f, 0.8f, 0.1f, 0.5f, 0.4f}, p1[K], p2[K];
    ck_assert_int_eq(loom_sequential_predict(m, x, 1, p1), LOOM_OK);
    loom_sequential *r = NULL;
    ck_assert_msg(loom_sequential_load(ctx, tpath("model.st"), dev, NULL, &r) == LOOM_OK, "%s", loom_last_error(ctx));
    ck_assert_int_eq(loom_sequential_predict(r, x, 1, p2), LOOM_OK);
    ck_assert(!memcmp(p1, p2, sizeof p1));
    ck_assert_int_eq(loom_state_step(loom_sequential_state(r)), 0);
    loom_eval_result e1, e2;
    ck_assert_int_eq(loom_sequential_evaluate(m, ds, 1, &e1), LOOM_OK);
    ck_assert_int_eq(loom_sequential_evaluate(r, ds, 1, &e2), LOOM_OK);
    ck_assert_double_eq(e1.loss, e2.loss);
    loom_eval_result_free(&e1);
    loom_eval_result_free(&e2);
    loom_sequential_destroy(r);
    /* the checkpoint resumes its step */
    ck_assert_int_eq(loom_sequential_load(ctx, tpath("ckpt.st"), dev, NULL, &r), LOOM_OK);
    ck_assert_int_eq(loom_state_step(loom_sequential_state(r)), 8);
    loom_sequential_destroy(r);
    loom_sequential_destroy(m);
    loom_dataset_destroy(ds);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- the validation pass ------------------------------------------------- */

START_TEST(tensors_validated)
{
    loom_ctx *ctx = cpu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_dataset *ds = data(ctx, LOOM_SCALE_UNIT);
    loom_sequential *m = trained(ctx, dev, ds, 0);
    const char *model = tpath("model.st"), *ckpt = tpath("ckpt.st"), *bad = tpath("bad.st");
    /* a missing weight is never replaced by its initial value */
    without_tensor(model, bad, "dense1/bias");
    refused(ctx, dev, bad, "weight \"dense1/bias\" is missing");
    without_tensor(ckpt, bad, "dense0/kernel");
    refused(ctx, dev, bad, "weight \"dense0/kernel\" is missing");
    /* nothing unknown */
    int one[1] = {3};
    with_tensor(model, bad, "extra", "F32", 1, one, 3, 1.0f);
    refused(ctx, dev, bad, "tensor \"extra\" is not part of the model's architecture");
    with_tensor(model, bad, "dense7/bias", "F32", 1, one, 3, 1.0f);
    refused(ctx, dev, bad, "tensor \"dense7/bias\" is not part of the model's architecture");
    with_tensor(model, bad, "dense1/bias/junk", "F32", 1, one, 3, 1.0f);
    refused(ctx, dev, bad, "tensor \"dense1/bias/junk\" is not part of");
    /* dtype and shape of the architecture */
    without_tensor(model, bad, "dense1/bias");
    int four[1] = {4};
    with_tensor(bad, bad, "dense1/bias", "F32", 1, four, 4, 0.0f);
    refused(ctx, dev, bad, "tensor \"dense1/bias\" is f32 [4] in the file, the architecture needs f32 [3]");
    without_tensor(model, bad, "dense1/bias");
    with_tensor(bad, bad, "dense1/bias", "I32", 1, one, 3, 0.0f);
    refused(ctx, dev, bad, "tensor \"dense1/bias\" is i32 [3] in the file");
    /* a moment of the wrong shape, though this optimizer would not use it */
    with_tensor(model, bad, "dense1/bias/momentum", "F32", 1, four, 4, 0.0f);
    refused(ctx, dev, bad, "tensor \"dense1/bias/momentum\" is f32 [4]");
    /* finite values only */
    poke(model, bad, "dense0/kernel", 5, NAN);
    refused(ctx, dev, bad, "tensor \"dense0/kernel\" holds NaN at element 5");
    poke(model, bad, "dense1/bias", 2, -INFINITY);
    refused(ctx, dev, bad, "tensor \"dense1/bias\" holds an infinity at element 2");
    poke(ckpt, bad, "dense0/bias/v", 0, INFINITY);
    refused(ctx, dev, bad, "tensor \"dense0/bias/v\" holds an infinity at element 0");
    /* a checkpoint carries every moment its optimizer keeps; a model file
     * need not */
    without_tensor(ckpt, bad, "dense0/kernel/m");
    refused(ctx, dev, bad, "the checkpoint lacks optimizer moment \"dense0/kernel/m\"");
    loom_sequential *r = NULL;
    with_meta(ckpt, bad, "loom.kind", "model");
    without_tensor(bad, bad, "dense0/kernel/m");
    ck_assert_msg(loom_sequential_load(ctx, bad, dev, NULL, &r) == LOOM_OK, "%s", loom_last_error(ctx));
    loom_sequential_destroy(r);
    /* restore goes through the same pass and leaves the model as it was */
    float before[K], after[K];
    ck_assert_int_eq(loom_state_read(loom_sequential_state(m), "dense1/bias", before, sizeof before), LOOM_OK);
    poke(model, bad, "dense1/bias", 0, NAN);
    ck_assert_int_eq(loom_sequential_restore(m, bad), LOOM_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "holds NaN"));
    ck_assert_int_eq(loom_state_read(loom_sequential_state(m), "dense1/bias", after, sizeof after), LOOM_OK);
    ck_assert(!memcmp(before, after, sizeof after));
    loom_sequential_destroy(m);
    loom_dataset_destroy(ds);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

START_TEST(config_validated)
{
    loom_ctx *ctx = cpu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_dataset *ds = data(ctx, LOOM_SCALE_UNIT);
    loom_sequential *m = trained(ctx, dev, ds, 0);
    const char *model = tpath("model.st"), *bad = tpath("bad.st");
    static const struct {
        const char *field, *value, *what;
    } cases[] = {
        {"batch", "4611686018427387904", "batch 4611686018427387904 is outside [1, 2147483647]"},
        {"batch", "0", "batch 0 is outside"},
        {"batch", "-3", "batch -3 is outside"},
        {"batch", "2.5", "field batch = 2.5 is not an integer"},
        {"loss", "7", "loss 7 is not 0 (sparse cross-entropy)"},
        {"loss", "\"mse\"", "field loss is not a number"},
        {"seed", "-1", "field seed is not an integer"},
        {"color", "1", "unknown field color"},
        {"optimizer.kind", "9", "optimizer.kind 9 is not 0 (sgd), 1 (adam) or 2 (adamw)"},
        {"optimizer.schedule", "5", "optimizer.schedule 5 is not 0 (constant), 1 (step) or 2 (cosine)"},
        {"optimizer.lr", "-1", "optimizer.lr -1 is not a finite number > 0"},
        {"optimizer.lr", "1e300", "optimizer.lr = 1e+300 does not fit a float"},
        {"optimizer.beta2", "1", "optimizer.beta2 1 is outside [0, 1)"},
        {"optimizer.ema_decay", "1.5", "optimizer.ema_decay 1.5 is outside [0, 1)"},
        {"optimizer.momentum", "null", "field optimizer.momentum is not a number"},
        {"optimizer.warp", "1", "unknown field optimizer.warp"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        with_config(model, bad, cases[i].field, cases[i].value);
        refused(ctx, dev, bad, cases[i].what);
        loom_model_config c;
        ck_assert_int_eq(loom_model_config_read(ctx, bad, &c), LOOM_E_FORMAT);
        ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), cases[i].what));
    }
    with_meta(model, bad, "loom.config", "{\"batch\": 16,");
    refused(ctx, dev, bad, "loom.config is not a JSON object");
    with_meta(model, bad, "loom.config", "[1,2]");
    refused(ctx, dev, bad, "loom.config is not a JSON object");
    with_meta(model, bad, "loom.config", NULL);
    refused(ctx, dev, bad, "no loom.config");
    with_meta(model, bad, "loom.kind", "weights");
    refused(ctx, dev, bad, "loom.kind \"weights\" is not \"model\" or \"checkpoint\"");
    with_meta(model, bad, "loom.colour", "red");
    refused(ctx, dev, bad, "unknown metadata record \"loom.colour\"");
    with_meta(model, bad, "loom.architecture", "{\"input\":8,\"layers\":[{\"type\":\"dense\",\"units\":1e30,"
                                               "\"activation\":\"relu\",\"init\":\"he_normal\"}]}");
    refused(ctx, dev, bad, "layer 0 (dense): \"units\" is not an integer");
    with_meta(model, bad, "loom.preprocess", "{\"scaling\":\"standard\",\"mean\":1,\"std\":0}");
    refused(ctx, dev, bad, "loom.preprocess field std is not a finite number > 0");
    /* other keys are a user's own */
    with_meta(model, bad, "note", "trained on Tuesday");
    loom_sequential *r = NULL;
    ck_assert_msg(loom_sequential_load(ctx, bad, dev, NULL, &r) == LOOM_OK, "%s", loom_last_error(ctx));
    loom_sequential_destroy(r);
    /* the API refuses what a file may not hold */
    loom_sequential *q = NULL;
    ck_assert_int_eq(loom_sequential_create(ctx, F, &q), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_dense(q, K, LOOM_ACT_SOFTMAX, LOOM_INIT_GLOROT_UNIFORM), LOOM_OK);
    loom_model_config c = loom_model_config_default();
    c.batch = (int64_t)1 << 62;
    ck_assert_int_eq(loom_sequential_compile(q, dev, &c), LOOM_E_INVALID);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "batch 4611686018427387904 is outside"));
    c = loom_model_config_default();
    c.loss = (loom_loss)7;
    ck_assert_int_eq(loom_sequential_compile(q, dev, &c), LOOM_E_INVALID);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "loss 7"));
    loom_sequential_destroy(q);
    loom_sequential_destroy(m);
    loom_dataset_destroy(ds);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* A checkpoint's step, epoch and position in the epoch are whole numbers
 * >= 0, and the position lies inside the epoch of the data it resumes
 * on: a negative epoch_step read before the shuffle order. */
START_TEST(progress_validated)
{
    loom_ctx *ctx = cpu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_dataset *ds = data(ctx, LOOM_SCALE_UNIT);
    loom_sequential *m = trained(ctx, dev, ds, 0);
    const char *ckpt = tpath("ckpt.st"), *bad = tpath("bad.st");
    with_meta(ckpt, bad, "loom.epoch_step", "-1000");
    refused(ctx, dev, bad, "loom.epoch_step -1000 is negative");
    with_meta(ckpt, bad, "loom.epoch", "-1");
    refused(ctx, dev, bad, "loom.epoch -1 is negative");
    with_meta(ckpt, bad, "loom.step", "-5");
    refused(ctx, dev, bad, "loom.step -5 is negative");
    with_meta(ckpt, bad, "loom.step", "12abc");
    refused(ctx, dev, bad, "loom.step \"12abc\" is not a whole number");
    with_meta(ckpt, bad, "loom.step", "99999999999999999999999");
    refused(ctx, dev, bad, "is not a whole number");
    with_meta(ckpt, bad, "loom.epoch_step", NULL);
    refused(ctx, dev, bad, "the checkpoint has no loom.epoch_step");
    /* past the end of this data's epoch (60 rows, batch 16: 4 steps) */
    with_meta(ckpt, bad, "loom.epoch_step", "5");
    with_meta(bad, bad, "loom.epoch", "0");
    loom_sequential *r = NULL;
    ck_assert_msg(loom_sequential_load(ctx, bad, dev, NULL, &r) == LOOM_OK, "%s", loom_last_error(ctx));
    loom_fit_config fc = loom_fit_config_default();
    fc.epochs = 2;
    ck_assert_int_eq(loom_sequential_fit(r, ds, &fc, NULL), LOOM_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "loom.epoch_step 5 is outside [0, 4]"));
    loom_sequential_destroy(r);
    with_meta(ckpt, bad, "loom.epoch_step", "4");
    with_meta(bad, bad, "loom.epoch", "0");
    ck_assert_int_eq(loom_sequential_load(ctx, bad, dev, NULL, &r), LOOM_OK);
    ck_assert_msg(loom_sequential_fit(r, ds, &fc, NULL) == LOOM_OK, "%s", loom_last_error(ctx));
    loom_sequential_destroy(r);
    loom_sequential_destroy(m);
    loom_dataset_destroy(ds);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- preprocessing ----------------------------------------------------------- */

START_TEST(preprocessing_recorded)
{
    loom_ctx *ctx = cpu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    for (int how = 0; how < 2; how++) {
        loom_dataset *ds = data(ctx, -1);
        float stats[2];
        ck_assert_int_eq(loom_dataset_scale(ds, (loom_scaling)how, NULL, stats), LOOM_OK);
        loom_sequential *m = model(ctx, dev, 0);
        loom_scaling got;
        float gs[2];
        ck_assert_int_eq(loom_sequential_get_preprocess(m, &got, gs), LOOM_E_STATE);
        loom_fit_config fc = loom_fit_config_default();
        fc.epochs = 1;
        ck_assert_int_eq(loom_sequential_fit(m, ds, &fc, NULL), LOOM_OK);
        ck_assert_int_eq(loom_sequential_get_preprocess(m, &got, gs), LOOM_OK);
        ck_assert_int_eq(got, how);
        ck_assert_float_eq(gs[0], stats[0]);
        ck_assert_float_eq(gs[1], stats[1]);
        ck_assert_int_eq(loom_sequential_save(m, tpath("model.st")), LOOM_OK);
        loom_sequential *r = NULL;
        ck_assert_int_eq(loom_sequential_load(ctx, tpath("model.st"), dev, NULL, &r), LOOM_OK);
        ck_assert_int_eq(loom_sequential_get_preprocess(r, &got, gs), LOOM_OK);
        ck_assert_int_eq(got, how);
        ck_assert_float_eq(gs[0], stats[0]);
        ck_assert_float_eq(gs[1], stats[1]);
        /* raw inputs preprocessed by the model match the scaled data bit for bit */
        loom_dataset *raw = data(ctx, -1);
        float x[2 * F];
        memcpy(x, loom_dataset_images(raw), sizeof x);
        ck_assert_int_eq(loom_sequential_preprocess(r, x, 2), LOOM_OK);
        ck_assert(!memcmp(x, loom_dataset_images(ds), sizeof x));
        /* data scaled otherwise (or not at all) is refused */
        loom_eval_result e;
        ck_assert_int_eq(loom_sequential_evaluate(r, raw, 0, &e), LOOM_E_INVALID);
        ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "the data set is not scaled"));
        ck_assert_int_eq(loom_dataset_scale(raw, (loom_scaling)!how, NULL, NULL), LOOM_OK);
        ck_assert_int_eq(loom_sequential_evaluate(r, raw, 0, &e), LOOM_E_INVALID);
        ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "the model's inputs are scaled"));
        ck_assert_int_eq(loom_sequential_evaluate(r, ds, 0, &e), LOOM_OK);
        loom_eval_result_free(&e);
        loom_dataset_destroy(raw);
        loom_sequential_destroy(r);
        loom_sequential_destroy(m);
        loom_dataset_destroy(ds);
    }
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* The bytes of a safetensors file's tensors (after its header). */
static long data_bytes(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    unsigned char h[8];
    ck_assert_uint_eq(fread(h, 1, 8, f), 8);
    long header = 0;
    for (int i = 7; i >= 0; i--)
        header = header << 8 | h[i];
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n - 8 - header;
}

/* Mixed precision and half-precision files: a model trained in f16 (with
 * loss scaling) and in bf16 records its precision; saved with its weights
 * in f16 / bf16 the file holds half-precision tensors and loads back with
 * the weights widened, predicting as the rounded weights do. */
START_TEST(half_precision_models)
{
    loom_ctx *ctx = cpu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_dataset *ds = data(ctx, LOOM_SCALE_UNIT);
    const loom_dtype precisions[2] = {LOOM_F16, LOOM_BF16};
    for (int k = 0; k < 2; k++) {
        loom_dtype dt = precisions[k];
        loom_sequential *m = NULL;
        ck_assert_int_eq(loom_sequential_create(ctx, F, &m), LOOM_OK);
        ck_assert_int_eq(loom_sequential_add_dense(m, 16, LOOM_ACT_RELU, LOOM_INIT_GLOROT_UNIFORM), LOOM_OK);
        ck_assert_int_eq(loom_sequential_add_dense(m, K, LOOM_ACT_SOFTMAX, LOOM_INIT_GLOROT_UNIFORM), LOOM_OK);
        loom_model_config c = loom_model_config_default();
        c.batch = 8;
        c.precision = dt;
        c.optimizer.lr = 0.01f;
        ck_assert_int_eq(loom_sequential_compile(m, dev, &c), LOOM_OK);
        loom_fit_config fc = loom_fit_config_default();
        fc.epochs = 20;
        loom_fit_stats st;
        ck_assert_msg(loom_sequential_fit(m, ds, &fc, &st) == LOOM_OK, "%s", loom_last_error(ctx));
        /* f16 keeps a dynamic loss scale, bf16 none */
        ck_assert(dt == LOOM_F16 ? st.loss_scale > 0 : st.loss_scale == 0);
        loom_eval_result e;
        ck_assert_int_eq(loom_sequential_evaluate(m, ds, 0, &e), LOOM_OK);
        ck_assert_msg(e.accuracy > 0.9, "%s training: accuracy %g", loom_dtype_name(dt), e.accuracy);
        loom_eval_result_free(&e);
        ck_assert_int_eq(loom_sequential_save(m, tpath("f32.st")), LOOM_OK);
        ck_assert_int_eq(loom_sequential_save_as(m, tpath("half.st"), dt), LOOM_OK);
        ck_assert_int_eq(loom_sequential_save_as(m, tpath("bad.st"), LOOM_I32), LOOM_E_DTYPE);
        /* the tensors take half the bytes */
        ck_assert_int_eq(2 * data_bytes(tpath("half.st")), data_bytes(tpath("f32.st")));
        loom_tensor_file *tf = NULL;
        ck_assert_int_eq(loom_safetensors_open(ctx, tpath("half.st"), &tf), LOOM_OK);
        for (int i = 0; i < loom_safetensors_count(tf); i++) {
            loom_dtype fdt;
            ck_assert_int_eq(loom_safetensors_tensor(tf, i, NULL, &fdt, NULL, NULL, NULL), LOOM_OK);
            ck_assert_int_eq(fdt, dt);
        }
        loom_safetensors_close(tf);
        loom_sequential *r = NULL;
        ck_assert_msg(loom_sequential_load(ctx, tpath("half.st"), dev, NULL, &r) == LOOM_OK, "%s",
                      loom_last_error(ctx));
        ck_assert_int_eq(loom_sequential_config(r).precision, dt);
        /* every weight is the original rounded to dt, now in f32 */
        float w[F * 16], wr[F * 16], h;
        ck_assert_int_eq(loom_state_read(loom_sequential_state(m), "dense0/kernel", w, sizeof w), LOOM_OK);
        ck_assert_int_eq(loom_state_read(loom_sequential_state(r), "dense0/kernel", wr, sizeof wr), LOOM_OK);
        for (int i = 0; i < F * 16; i++) {
            float back;
            ck_assert_int_eq(loom_convert(dt, &h, LOOM_F32, &w[i], 1), LOOM_OK);
            ck_assert_int_eq(loom_convert(LOOM_F32, &back, dt, &h, 1), LOOM_OK);
            ck_assert_msg(wr[i] == back, "weight %d: %g loaded, %g rounded", i, (double)wr[i], (double)back);
        }
        ck_assert_int_eq(loom_sequential_evaluate(r, ds, 0, &e), LOOM_OK);
        ck_assert_msg(e.accuracy > 0.9, "reloaded %s model: accuracy %g", loom_dtype_name(dt), e.accuracy);
        loom_eval_result_free(&e);
        loom_sequential_destroy(r);
        loom_sequential_destroy(m);
    }
    loom_dataset_destroy(ds);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* A safetensors file's F16 and BF16 tensors load into half-precision
 * parameters of a graph, bit for bit. */
START_TEST(half_tensors_into_params)
{
    loom_ctx *ctx = cpu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_state *st;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    int64_t s4[1] = {4};
    float v[4] = {1.5f, -0.25f, 3.0e4f, 1e-3f};
    uint16_t h[4], b[4];
    ck_assert_int_eq(loom_convert(LOOM_F16, h, LOOM_F32, v, 4), LOOM_OK);
    ck_assert_int_eq(loom_convert(LOOM_BF16, b, LOOM_F32, v, 4), LOOM_OK);
    ck_assert_int_eq(loom_state_write(st, "h", LOOM_F16, 1, s4, h), LOOM_OK);
    ck_assert_int_eq(loom_state_write(st, "b", LOOM_BF16, 1, s4, b), LOOM_OK);
    ck_assert_int_eq(loom_safetensors_save(st, tpath("halves.st"), NULL, NULL), LOOM_OK);
    loom_state_destroy(st);
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    loom_tensor_file *tf = NULL;
    ck_assert_int_eq(loom_safetensors_open(ctx, tpath("halves.st"), &tf), LOOM_OK);
    ck_assert_int_eq(loom_safetensors_to_state(tf, st), LOOM_OK);
    loom_safetensors_close(tf);
    loom_graph *g;
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    loom_tensor ph = loom_param(g, "h", LOOM_F16, 1, s4, 0), pb = loom_param(g, "b", LOOM_BF16, 1, s4, 0);
    loom_output(g, loom_cast(g, loom_add(g, ph, ph), LOOM_F32), "h2");
    loom_output(g, loom_cast(g, pb, LOOM_F32), "b32");
    loom_program *p = tu_compile_run(g, dev, st, 0, NULL, NULL, NULL);
    float h2[4], b32[4];
    ck_assert_int_eq(loom_program_read(p, "h2", h2, sizeof h2), LOOM_OK);
    ck_assert_int_eq(loom_program_read(p, "b32", b32, sizeof b32), LOOM_OK);
    for (int i = 0; i < 4; i++) {
        float hv, bv;
        loom_convert(LOOM_F32, &hv, LOOM_F16, &h[i], 1);
        loom_convert(LOOM_F32, &bv, LOOM_BF16, &b[i], 1);
        ck_assert(h2[i] == 2 * hv);
        ck_assert(b32[i] == bv);
    }
    /* a half-precision parameter is never trainable (updates keep f32 masters) */
    ck_assert_int_eq(loom_backward(g, loom_sum_all(g, loom_cast(g, ph, LOOM_F32)), NULL, 0), LOOM_OK);
    ck_assert_int_eq(loom_grad(g, ph).id, 0);
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model_file");
    TCase *t = tcase_create("model_file");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, save_writes_weights_only);
    tcase_add_test(t, tensors_validated);
    tcase_add_test(t, config_validated);
    tcase_add_test(t, progress_validated);
    tcase_add_test(t, preprocessing_recorded);
    tcase_add_test(t, half_precision_models);
    tcase_add_test(t, half_tensors_into_params);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
