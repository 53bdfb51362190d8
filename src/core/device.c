/* The device registry, device specs and the choice of "auto". */
#include "device_registry.h"
#include "backend.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

loom_status loom_registry_init(loom_ctx *ctx, int mask)
{
    ctx->backends = loom_calloc(ctx, (size_t)loom_backend_count, sizeof *ctx->backends);
    if (!ctx->backends)
        return loom_fail(ctx, LOOM_E_OOM, "loom_ctx_create: out of memory for the backend table");
    ctx->nbackends = loom_backend_count;
    int total = 0;
    for (int b = 0; b < loom_backend_count; b++) {
        const loom_backend_ops *ops = loom_backends[b];
        ctx->backends[b].ops = ops;
        if (mask && !(mask & (1 << ops->kind)))
            continue;
        void *bs = NULL;
        loom_status s = ops->init(ctx, &bs);
        if (s == LOOM_E_OOM)
            return s;
        if (s != LOOM_OK) {
            /* A broken driver must not take the other backends with it. */
            loom_logf(ctx, LOOM_LOG_INFO, "backend %s unavailable: %s", ops->name, ctx->error);
            loom_clear_error(ctx);
            continue;
        }
        ctx->backends[b].bstate = bs;
        total += bs ? ops->device_count(bs) : 0;
    }
    ctx->devices = loom_calloc(ctx, (size_t)(total ? total : 1), sizeof *ctx->devices);
    if (!ctx->devices)
        return loom_fail(ctx, LOOM_E_OOM, "loom_ctx_create: out of memory for the device table");
    for (int b = 0; b < ctx->nbackends; b++) {
        void *bs = ctx->backends[b].bstate;
        if (!bs)
            continue;
        const loom_backend_ops *ops = ctx->backends[b].ops;
        int n = ops->device_count(bs);
        for (int i = 0; i < n; i++) {
            loom_device_entry *e = &ctx->devices[ctx->ndevices];
            memset(e, 0, sizeof *e);
            e->backend = b;
            e->local = i;
            if (ops->device_info(bs, i, &e->info) != LOOM_OK) {
                loom_logf(ctx, LOOM_LOG_INFO, "%s device %d skipped: %s", ops->name, i, ctx->error);
                loom_clear_error(ctx);
                continue;
            }
            e->info.backend = ops->kind;
            if (ops->kind == LOOM_BACKEND_CPU)
                snprintf(e->info.spec, sizeof e->info.spec, "cpu");
            else
                snprintf(e->info.spec, sizeof e->info.spec, "%s:%d", ops->name, i);
            ctx->ndevices++;
        }
    }
    return LOOM_OK;
}

void loom_registry_shutdown(loom_ctx *ctx)
{
    for (int b = 0; b < ctx->nbackends; b++)
        if (ctx->backends[b].bstate)
            ctx->backends[b].ops->shutdown(ctx->backends[b].bstate);
    loom_free(ctx, ctx->backends, (size_t)ctx->nbackends * sizeof *ctx->backends);
    loom_free(ctx, ctx->devices, (size_t)(ctx->ndevices ? ctx->ndevices : 1) * sizeof *ctx->devices);
    ctx->backends = NULL;
    ctx->devices = NULL;
}

int loom_device_count(loom_ctx *ctx)
{
    return ctx ? ctx->ndevices : 0;
}

loom_status loom_device_get_info(loom_ctx *ctx, int index, loom_device_info *info)
{
    if (!ctx || !info)
        return LOOM_E_INVALID;
    if (index < 0 || index >= ctx->ndevices)
        return loom_fail(ctx, LOOM_E_INVALID, "loom_device_get_info: index %d out of range (%d devices)",
                         index, ctx->ndevices);
    *info = ctx->devices[index].info;
    return LOOM_OK;
}

/* Lower is better: discrete, integrated, the CPU backend, then CPU
 * implementations of GPU APIs (slower than our CPU backend on the same
 * cores). */
static int preference(const loom_device_info *d)
{
    if (d->backend == LOOM_BACKEND_CPU)
        return 2;
    switch (d->type) {
    case LOOM_DEVICE_DISCRETE: return 0;
    case LOOM_DEVICE_INTEGRATED: return 1;
    case LOOM_DEVICE_VIRTUAL: return 3;
    case LOOM_DEVICE_CPU: return 4;
    default: return 5;
    }
}

static int pick_auto(loom_ctx *ctx)
{
    int best = -1;
    for (int i = 0; i < ctx->ndevices; i++) {
        const loom_device_info *d = &ctx->devices[i].info;
        if (!d->can_run)
            continue;
        /* Ties keep the API order of the registry (Vulkan before OpenCL). */
        if (best < 0 || preference(d) < preference(&ctx->devices[best].info))
            best = i;
    }
    return best;
}

static int find_spec(loom_ctx *ctx, const char *spec)
{
    if (!strcasecmp(spec, "auto"))
        return pick_auto(ctx);
    for (int i = 0; i < ctx->ndevices; i++) {
        const loom_device_info *d = &ctx->devices[i].info;
        if (!strcasecmp(spec, d->spec))
            return i;
        if (d->backend == LOOM_BACKEND_CPU && !strcasecmp(spec, "cpu:0"))
            return i;
        /* backend:UUID */
        const char *colon = strchr(spec, ':');
        if (colon && d->uuid[0] && !strcasecmp(colon + 1, d->uuid)) {
            size_t n = (size_t)(colon - spec);
            const char *bn = ctx->backends[ctx->devices[i].backend].ops->name;
            if (strlen(bn) == n && !strncasecmp(spec, bn, n))
                return i;
        }
    }
    return -1;
}

static void device_list(loom_ctx *ctx, char *buf, size_t n)
{
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; i < ctx->ndevices && k < n; i++) {
        const loom_device_info *d = &ctx->devices[i].info;
        k += (size_t)snprintf(buf + k, n - k, "%s%s (%s%s)", i ? ", " : "", d->spec, d->name,
                              d->can_run ? "" : ", cannot run graphs yet");
    }
    if (ctx->ndevices == 0)
        snprintf(buf, n, "none");
}

loom_status loom_device_open(loom_ctx *ctx, const char *spec, loom_device **out)
{
    if (!ctx || !out)
        return loom_fail(ctx, LOOM_E_INVALID, "loom_device_open: NULL %s", ctx ? "out" : "ctx");
    *out = NULL;
    const char *s = spec && *spec ? spec : "auto";
    if (!strcasecmp(s, "auto") && ctx->device_env[0])
        s = ctx->device_env;
    int idx = find_spec(ctx, s);
    char list[LOOM_ERRMSG / 2];
    if (idx < 0) {
        device_list(ctx, list, sizeof list);
        return loom_fail(ctx, LOOM_E_INVALID, "loom_device_open: no device matches \"%s\"; devices: %s", s, list);
    }
    loom_device_entry *e = &ctx->devices[idx];
    if (!e->info.can_run) {
        device_list(ctx, list, sizeof list);
        return loom_fail(ctx, LOOM_E_UNSUPPORTED,
                         "loom_device_open: %s (%s) is listed but its backend cannot run graphs yet; devices: %s",
                         e->info.spec, e->info.name, list);
    }
    loom_device *dev = loom_calloc(ctx, 1, sizeof *dev);
    if (!dev)
        return loom_fail(ctx, LOOM_E_OOM, "loom_device_open %s: out of memory", e->info.spec);
    dev->ctx = ctx;
    dev->ops = ctx->backends[e->backend].ops;
    dev->info = e->info;
    loom_status st = dev->ops->device_open(ctx->backends[e->backend].bstate, e->local, &dev->bdev);
    if (st != LOOM_OK) {
        loom_free(ctx, dev, sizeof *dev);
        return st;
    }
    dev->magic = LOOM_DEVICE_MAGIC;
    *out = dev;
    loom_logf(ctx, LOOM_LOG_INFO, "opened %s: %s", dev->info.spec, dev->info.name);
    return LOOM_OK;
}

int loom_device_valid(const loom_device *dev)
{
    return dev && dev->magic == LOOM_DEVICE_MAGIC;
}

void loom_device_close(loom_device *dev)
{
    if (!loom_device_valid(dev))
        return;
    dev->ops->device_close(dev->bdev);
    dev->magic = 0;
    loom_free(dev->ctx, dev, sizeof *dev);
}

const loom_device_info *loom_device_get(const loom_device *dev)
{
    return loom_device_valid(dev) ? &dev->info : NULL;
}
