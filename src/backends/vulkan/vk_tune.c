/* Per-device choices, measured once per device and driver and kept as JSON
 * in the cache folder: which read path the GEMM takes. CPU-type drivers
 * scalarize storage-buffer and shared-memory reads, GPUs are fast there;
 * rather than guess from the device type, both GEMMs run once on the same
 * data and the faster one becomes the device's VK_QUIRK_TEXEL_READS flag.
 * A cache entry for another device or driver, or one that does not parse,
 * is ignored with a log line and measured afresh. */
#include "vk_internal.h"

#include <cjson/cJSON.h>
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

/* The best of 3 runs of an n x n x n GEMM on the path the quirks select, in
 * ms; the first run (pipeline JIT) is not counted. */
static loom_status time_gemm(vk_dev *d, int n, void *bufs[3], double *ms)
{
    loom_node nodes[3];
    memset(nodes, 0, sizeof nodes);
    for (int i = 0; i < 3; i++) {
        nodes[i].op = i < 2 ? LOOM_OP_INPUT : LOOM_OP_MATMUL;
        nodes[i].dtype = LOOM_F32;
        nodes[i].ndim = 2;
        nodes[i].shape[0] = nodes[i].shape[1] = n;
        nodes[i].numel = (int64_t)n * n;
        nodes[i].name = i == 0 ? "tune_a" : i == 1 ? "tune_b" : "tune_c";
    }
    loom_exec_tensor t[3];
    for (int i = 0; i < 3; i++)
        t[i] = (loom_exec_tensor){&nodes[i], {bufs[i], 0, (uint64_t)n * n * 4}};
    const loom_exec_tensor *in[2] = {&t[0], &t[1]};
    loom_exec_node x = {&nodes[2], 0, 2, in, &t[2]};
    loom_exec_program prog = {1, &x, 0, "GEMM tuning"};
    void *bp = NULL;
    LOOM_TRY(vk_prepare(d, &prog, &bp));
    loom_run_args args = {0};
    loom_status s = vk_run(bp, &args);
    *ms = 1e30;
    for (int r = 0; r < 3 && s == LOOM_OK; r++) {
        double t0 = loom_now_ns();
        s = vk_run(bp, &args);
        double dt = (loom_now_ns() - t0) * 1e-6;
        if (dt < *ms)
            *ms = dt;
    }
    vk_release(bp);
    return s;
}

static loom_status measure(vk_dev *d, int *texel, double *tms, double *sms, int *size)
{
    void *bufs[3] = {NULL, NULL, NULL};
    loom_status s = LOOM_OK;
    int n = 128;
    for (int attempt = 0; attempt < 2; attempt++) {
        uint64_t bytes = (uint64_t)n * n * 4;
        for (int i = 0; i < 3 && s == LOOM_OK; i++)
            s = vk_buffer_alloc(d, bytes, LOOM_LIFE_ARENA, &bufs[i]);
        /* Values do not matter for timing, but they are finite. */
        if (s == LOOM_OK) {
            float *ones = loom_malloc(d->ctx, (size_t)bytes);
            if (!ones)
                s = loom_fail(d->ctx, LOOM_E_OOM, "%s: out of memory tuning", d->info->spec);
            for (int i = 0; ones && i < n * n; i++)
                ones[i] = 1.0f / (float)n;
            for (int i = 0; i < 2 && s == LOOM_OK; i++)
                s = vk_buffer_write(d, bufs[i], 0, ones, bytes);
            loom_free(d->ctx, ones, (size_t)bytes);
        }
        unsigned saved = d->quirks;
        if (s == LOOM_OK) {
            d->quirks = saved | VK_QUIRK_TEXEL_READS;
            s = time_gemm(d, n, bufs, tms);
        }
        if (s == LOOM_OK) {
            d->quirks = saved & ~VK_QUIRK_TEXEL_READS;
            s = time_gemm(d, n, bufs, sms);
        }
        d->quirks = saved;
        for (int i = 0; i < 3; i++)
            if (bufs[i])
                vk_buffer_free(d, bufs[i]);
        bufs[0] = bufs[1] = bufs[2] = NULL;
        if (s != LOOM_OK)
            return s;
        /* Both too quick to tell apart (a GPU): measure a larger one. */
        if (*tms > 2.0 || *sms > 2.0)
            break;
        n = 512;
    }
    *texel = *tms < *sms;
    *size = n;
    return LOOM_OK;
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
        d->quirks &= ~VK_QUIRK_TEXEL_READS;
        return LOOM_OK;
    }
    if (!load_choice(d, &texel)) {
        double tms = 0, sms = 0;
        int size = 0;
        loom_status s = measure(d, &texel, &tms, &sms, &size);
        if (s != LOOM_OK)
            return s;
        loom_logf(d->ctx, LOOM_LOG_INFO, "%s: GEMM %d^3 takes %.2f ms through texel buffers, %.2f ms through storage "
                  "buffers: reading through %s", d->info->spec, size, tms, sms, texel ? "texel buffers" : "storage buffers");
        save_choice(d, texel, tms, sms, size);
    }
    if (texel)
        d->quirks |= VK_QUIRK_TEXEL_READS;
    else
        d->quirks &= ~VK_QUIRK_TEXEL_READS;
    return LOOM_OK;
}
