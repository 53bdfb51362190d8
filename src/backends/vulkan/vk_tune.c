/* Per-device choices, measured once per device and driver and kept as JSON
 * in the cache folder: which read path the GEMM takes. CPU-type drivers
 * scalarize storage-buffer and shared-memory reads, GPUs are fast there;
 * rather than guess from the device type, both GEMMs run once on the same
 * data and the faster one becomes the device's VK_QUIRK_TEXEL_READS flag.
 * A cache entry for another device or driver, or one that does not parse,
 * is ignored with a log line and measured afresh. */
#include "vk_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define TUNE_FORMAT 1

static void tune_path(const vk_dev *d, char *path, size_t n)
{
    snprintf(path, n, "%s/vulkan-%s-tune.json", d->ctx->cache_dir, d->info->uuid);
}

/* 1 and the choice if the file holds one for this device and driver. */
static int load_choice(vk_dev *d, int *texel)
{
    char path[700];
    tune_path(d, path, sizeof path);
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    cJSON *j = cJSON_Parse(buf);
    const char *why = NULL;
    if (!j) {
        why = "not JSON";
    } else {
        const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j, "format");
        const cJSON *uuid = cJSON_GetObjectItemCaseSensitive(j, "device_uuid");
        const cJSON *drv = cJSON_GetObjectItemCaseSensitive(j, "driver");
        const cJSON *ver = cJSON_GetObjectItemCaseSensitive(j, "driver_version");
        const cJSON *read = cJSON_GetObjectItemCaseSensitive(j, "gemm_read");
        if (!cJSON_IsNumber(fmt) || fmt->valueint != TUNE_FORMAT)
            why = "another format";
        else if (!cJSON_IsString(uuid) || strcmp(uuid->valuestring, d->info->uuid) != 0)
            why = "another device";
        else if (!cJSON_IsString(drv) || strcmp(drv->valuestring, d->info->driver) != 0 || !cJSON_IsNumber(ver) ||
                 (uint32_t)ver->valuedouble != d->lim->driver_version)
            why = "another driver";
        else if (!cJSON_IsString(read) || (strcmp(read->valuestring, "texel") && strcmp(read->valuestring, "storage")))
            why = "no valid gemm_read";
        else
            *texel = !strcmp(read->valuestring, "texel");
    }
    cJSON_Delete(j);
    if (why) {
        loom_logf(d->ctx, LOOM_LOG_INFO, "%s: tuning cache %s ignored: %s", d->info->spec, path, why);
        return 0;
    }
    loom_logf(d->ctx, LOOM_LOG_INFO, "%s: GEMM read path \"%s\" from %s", d->info->spec, *texel ? "texel" : "storage",
              path);
    return 1;
}

static void save_choice(vk_dev *d, int texel, double texel_ms, double storage_ms, int size)
{
    char path[700];
    tune_path(d, path, sizeof path);
    cJSON *j = cJSON_CreateObject();
    if (!j)
        return;
    cJSON_AddNumberToObject(j, "format", TUNE_FORMAT);
    cJSON_AddStringToObject(j, "backend", "vulkan");
    cJSON_AddStringToObject(j, "device", d->info->name);
    cJSON_AddStringToObject(j, "device_uuid", d->info->uuid);
    cJSON_AddStringToObject(j, "driver", d->info->driver);
    cJSON_AddNumberToObject(j, "driver_version", d->lim->driver_version);
    cJSON_AddStringToObject(j, "gemm_read", texel ? "texel" : "storage");
    cJSON_AddNumberToObject(j, "gemm_size", size);
    cJSON_AddNumberToObject(j, "texel_ms", texel_ms);
    cJSON_AddNumberToObject(j, "storage_ms", storage_ms);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text)
        return;
    /* A choice that cannot be kept is measured again next time: logged,
     * not returned. */
    char err[LOOM_ERRMSG];
    snprintf(err, sizeof err, "%s", d->ctx->error);
    if (vk_mkdirs(d->ctx->cache_dir) != 0 || loom_write_file_atomic(d->ctx, path, text, strlen(text)) != LOOM_OK)
        loom_logf(d->ctx, LOOM_LOG_WARN, "%s: cannot write the tuning cache %s", d->info->spec, path);
    snprintf(d->ctx->error, sizeof d->ctx->error, "%s", err);
    cJSON_free(text);
}

/* An n x n x n GEMM on the path `texel` selects, over inputs that
 * time_gemm fills; the best of `reps` runs in ms (the first run, which
 * JITs on some drivers, not counted), and 16 entries of C checked against
 * host dot products. */
typedef struct tune_bufs {
    int n;
    void *buf[3];
    float *a, *b;      /* host copies of the inputs */
} tune_bufs;

static void bufs_free(vk_dev *d, tune_bufs *t)
{
    for (int i = 0; i < 3; i++)
        if (t->buf[i])
            vk_buffer_free(d, t->buf[i]);
    size_t bytes = (size_t)t->n * (size_t)t->n * 4;
    loom_free(d->ctx, t->a, bytes);
    loom_free(d->ctx, t->b, bytes);
    memset(t, 0, sizeof *t);
}

static loom_status bufs_make(vk_dev *d, int n, tune_bufs *t)
{
    memset(t, 0, sizeof *t);
    t->n = n;
    uint64_t bytes = (uint64_t)n * (uint64_t)n * 4;
    loom_status s = LOOM_OK;
    for (int i = 0; i < 3 && s == LOOM_OK; i++)
        s = vk_buffer_alloc(d, bytes, LOOM_LIFE_ARENA, &t->buf[i]);
    t->a = loom_malloc(d->ctx, (size_t)bytes);
    t->b = loom_malloc(d->ctx, (size_t)bytes);
    if (s == LOOM_OK && (!t->a || !t->b))
        s = loom_fail(d->ctx, LOOM_E_OOM, "%s: out of memory for a %d^3 GEMM", d->info->spec, n);
    if (s == LOOM_OK) {
        uint32_t x = 12345;
        for (int i = 0; i < n * n; i++) {
            x = x * 1664525u + 1013904223u;
            t->a[i] = (float)(x >> 9) / 8388608.0f - 1.0f;
            x = x * 1664525u + 1013904223u;
            t->b[i] = (float)(x >> 9) / 8388608.0f - 1.0f;
        }
        s = vk_buffer_write(d, t->buf[0], 0, t->a, bytes);
    }
    if (s == LOOM_OK)
        s = vk_buffer_write(d, t->buf[1], 0, t->b, bytes);
    if (s != LOOM_OK)
        bufs_free(d, t);
    return s;
}

static loom_status time_gemm(vk_dev *d, const tune_bufs *t, int texel, int reps, double *ms, int *wrong)
{
    int n = t->n;
    loom_node nodes[3];
    memset(nodes, 0, sizeof nodes);
    static char names[3][8] = {"tune_a", "tune_b", "tune_c"};
    for (int i = 0; i < 3; i++) {
        nodes[i].op = i < 2 ? LOOM_OP_INPUT : LOOM_OP_MATMUL;
        nodes[i].dtype = LOOM_F32;
        nodes[i].ndim = 2;
        nodes[i].shape[0] = nodes[i].shape[1] = n;
        nodes[i].numel = (int64_t)n * n;
        nodes[i].name = names[i];
    }
    loom_exec_tensor tt[3];
    for (int i = 0; i < 3; i++)
        tt[i] = (loom_exec_tensor){&nodes[i], {t->buf[i], 0, (uint64_t)n * n * 4}};
    const loom_exec_tensor *in[2] = {&tt[0], &tt[1]};
    nodes[2].attr.act = LOOM_OP_NONE;
    loom_exec_node x = {.node = &nodes[2], .def = loom_op_def_of(LOOM_OP_MATMUL), .index = 0, .nin = 2, .in = in,
                        .out = &tt[2], .run_slot = -1};
    loom_exec_program prog = {.nnodes = 1, .nodes = &x, .name = "GEMM tuning"};
    unsigned saved = d->quirks;
    d->quirks = texel ? saved | VK_QUIRK_TEXEL_READS : saved & ~VK_QUIRK_TEXEL_READS;
    void *bp = NULL;
    loom_status s = vk_prepare(d, &prog, &bp);
    d->quirks = saved;
    if (s != LOOM_OK)
        return s;
    loom_run_args args = {0};
    s = vk_run(bp, &args);
    *ms = 1e30;
    for (int r = 0; r < reps && s == LOOM_OK; r++) {
        double t0 = loom_now_ns();
        s = vk_run(bp, &args);
        double dt = (loom_now_ns() - t0) * 1e-6;
        if (dt < *ms)
            *ms = dt;
    }
    vk_release(bp);
    *wrong = 0;
    uint32_t x2 = 777;
    for (int e = 0; e < 16 && s == LOOM_OK; e++) {
        x2 = x2 * 1664525u + 1013904223u;
        int i = (int)(x2 % (uint32_t)n), j = (int)((x2 >> 16) % (uint32_t)n);
        double ref = 0, mag = 0;
        for (int k = 0; k < n; k++) {
            ref += (double)t->a[(size_t)i * n + k] * t->b[(size_t)k * n + j];
            mag += fabs((double)t->a[(size_t)i * n + k] * t->b[(size_t)k * n + j]);
        }
        float got;
        s = vk_buffer_read(d, t->buf[2], ((uint64_t)i * n + j) * 4, &got, 4);
        if (s == LOOM_OK && !(fabs(got - ref) <= 1e-5 * mag + 1e-6))
            *wrong = 1;
    }
    return s;
}

static loom_status measure(vk_dev *d, int *texel, double *tms, double *sms, int *size)
{
    int n = 128, wrong_t = 0, wrong_s = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        tune_bufs t;
        LOOM_TRY(bufs_make(d, n, &t));
        loom_status s = time_gemm(d, &t, 1, 3, tms, &wrong_t);
        if (s == LOOM_OK)
            s = time_gemm(d, &t, 0, 3, sms, &wrong_s);
        bufs_free(d, &t);
        vk_memory_trim(d); /* the measurement keeps no device memory */
        if (s != LOOM_OK)
            return s;
        /* Both too quick to tell apart (a GPU): measure a larger one. */
        if (*tms > 2.0 || *sms > 2.0)
            break;
        n = 512;
    }
    /* A path that computes wrong results is a quirk of its own: never taken. */
    if (wrong_t || wrong_s)
        loom_logf(d->ctx, LOOM_LOG_WARN, "%s: the %s GEMM gives wrong results on this driver; not used", d->info->spec,
                  wrong_t ? "texel-buffer" : "storage-buffer");
    *texel = wrong_s || (!wrong_t && *tms < *sms);
    *size = n;
    return LOOM_OK;
}

static void apply(vk_dev *d, int texel)
{
    if (texel)
        d->quirks |= VK_QUIRK_TEXEL_READS;
    else
        d->quirks &= ~VK_QUIRK_TEXEL_READS;
}

loom_status vk_tune(vk_dev *d)
{
    int texel = 0;
    /* CPU drivers run a workgroup's invocations as loops over SIMD
     * vectors; a barrier splits those loops (llvmpipe: a coroutine switch
     * per invocation batch), so reductions across a workgroup cost far
     * more than the same sums done by one invocation. */
    if (d->lim->cpu_type)
        d->quirks |= VK_QUIRK_SLOW_BARRIERS;
    if (!d->lim->texel_r32f) {
        apply(d, 0);
        return LOOM_OK;
    }
    if (!load_choice(d, &texel)) {
        double tms = 0, sms = 0;
        int size = 0;
        LOOM_TRY(measure(d, &texel, &tms, &sms, &size));
        loom_logf(d->ctx, LOOM_LOG_INFO, "%s: GEMM %d^3 takes %.2f ms through texel buffers, %.2f ms through storage "
                  "buffers: reading through %s", d->info->spec, size, tms, sms, texel ? "texel buffers" : "storage buffers");
        save_choice(d, texel, tms, sms, size);
    }
    apply(d, texel);
    return LOOM_OK;
}

/* ---- loom_device_tune, loom_device_get_tuning, loom_device_set_tuning ---- */

loom_status vk_tune_device(void *bdev, const loom_tune_opts *opts, loom_tune_report *out)
{
    vk_dev *d = bdev;
    double t0 = loom_now_ns();
    int n = opts->size;
    int current = (d->quirks & VK_QUIRK_TEXEL_READS) != 0;
    int ncand = d->lim->texel_r32f && opts->max_candidates >= 2 ? 2 : 1;
    double ms[2] = {1e30, 1e30};
    int wrong[2] = {0, 0};
    tune_bufs t;
    LOOM_TRY(bufs_make(d, n, &t));
    loom_status s = LOOM_OK;
    /* The path in use first: it is the baseline. */
    for (int c = 0; c < ncand && s == LOOM_OK; c++) {
        int texel = c == 0 ? current : !current;
        if (opts->progress)
            opts->progress(opts->progress_user, c, ncand, texel ? "texel-buffer GEMM" : "storage-buffer GEMM");
        s = time_gemm(d, &t, texel, opts->reps, &ms[texel], &wrong[texel]);
        out->measured++;
        if (wrong[texel]) {
            out->rejected++;
            ms[texel] = 1e30;
        }
    }
    bufs_free(d, &t);
    if (s != LOOM_OK)
        return s;
    if (opts->progress)
        opts->progress(opts->progress_user, ncand, ncand, "done");
    double flops = 2.0 * n * (double)n * n;
    int best = ms[1] < ms[0] ? 1 : 0;
    if (ms[best] >= 1e30)
        return loom_fail(d->ctx, LOOM_E_DEVICE, "%s (%s): no GEMM read path gives right results", d->info->spec,
                         d->info->name);
    out->baseline_gflops = ms[current] < 1e30 ? flops / (ms[current] * 1e6) : 0;
    out->best_gflops = flops / (ms[best] * 1e6);
    out->improved = best != current;
    apply(d, best);
    save_choice(d, best, ms[1] < 1e30 ? ms[1] : -1, ms[0] < 1e30 ? ms[0] : -1, n);
    char path[700];
    tune_path(d, path, sizeof path);
    size_t len = strlen(path) < sizeof out->path ? strlen(path) : sizeof out->path - 1;
    memcpy(out->path, path, len);
    out->path[len] = '\0';
    out->seconds = (loom_now_ns() - t0) * 1e-9;
    return LOOM_OK;
}

loom_status vk_get_tuning(void *bdev, char *buf, size_t n)
{
    vk_dev *d = bdev;
    cJSON *o = cJSON_CreateObject();
    int ok = o && cJSON_AddStringToObject(o, "backend", "vulkan") &&
             cJSON_AddStringToObject(o, "gemm_read", d->quirks & VK_QUIRK_TEXEL_READS ? "texel" : "storage") &&
             cJSON_AddBoolToObject(o, "slow_barriers", (d->quirks & VK_QUIRK_SLOW_BARRIERS) != 0);
    char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!s)
        return loom_fail(d->ctx, LOOM_E_OOM, "loom_device_get_tuning (%s): out of memory", d->info->spec);
    size_t len = strlen(s);
    if (len >= n) {
        cJSON_free(s);
        return loom_fail(d->ctx, LOOM_E_INVALID, "loom_device_get_tuning: %zu bytes are too few", n);
    }
    memcpy(buf, s, len + 1);
    cJSON_free(s);
    return LOOM_OK;
}

loom_status vk_set_tuning(void *bdev, const char *json)
{
    vk_dev *d = bdev;
    int texel, slow_barriers = (d->quirks & VK_QUIRK_SLOW_BARRIERS) != 0;
    if (!json) {
        if (!load_choice(d, &texel))
            return loom_fail(d->ctx, LOOM_E_INVALID, "%s: no stored tuning for this device and driver", d->info->spec);
    } else {
        cJSON *j = cJSON_Parse(json);
        const cJSON *read = j ? cJSON_GetObjectItemCaseSensitive(j, "gemm_read") : NULL;
        const cJSON *slow = j ? cJSON_GetObjectItemCaseSensitive(j, "slow_barriers") : NULL;
        int ok = cJSON_IsString(read) && (!strcmp(read->valuestring, "texel") || !strcmp(read->valuestring, "storage"));
        texel = ok && !strcmp(read->valuestring, "texel");
        /* the kernels' choice between shared-memory tiles and register
         * blocks (convolutions, reductions) may be set too */
        if (ok && cJSON_IsBool(slow))
            slow_barriers = cJSON_IsTrue(slow);
        else if (ok && slow)
            ok = 0;
        cJSON_Delete(j);
        if (!ok)
            return loom_fail(d->ctx, LOOM_E_INVALID,
                             "%s: a Vulkan tuning needs \"gemm_read\": \"texel\" or \"storage\" (and "
                             "\"slow_barriers\", if given, true or false)", d->info->spec);
        if (texel && !d->lim->texel_r32f)
            return loom_fail(d->ctx, LOOM_E_INVALID,
                             "%s (%s): \"gemm_read\": \"texel\" needs R32_SFLOAT uniform texel buffers, which the "
                             "device lacks", d->info->spec, d->info->name);
    }
    tune_bufs t;
    LOOM_TRY(bufs_make(d, 96, &t));
    double ms;
    int wrong = 0;
    loom_status s = time_gemm(d, &t, texel, 1, &ms, &wrong);
    bufs_free(d, &t);
    if (s != LOOM_OK)
        return s;
    if (wrong)
        return loom_fail(d->ctx, LOOM_E_DEVICE, "%s (%s): the %s GEMM gives wrong results; the tuning in use is kept",
                         d->info->spec, d->info->name, texel ? "texel-buffer" : "storage-buffer");
    apply(d, texel);
    if (slow_barriers)
        d->quirks |= VK_QUIRK_SLOW_BARRIERS;
    else
        d->quirks &= ~VK_QUIRK_SLOW_BARRIERS;
    return LOOM_OK;
}
