/* Internals shared by core and backends: the context, errors, allocation. */
#ifndef LOOM_INTERNAL_H
#define LOOM_INTERNAL_H

#include "loom.h"

#include <stdarg.h>
#include <stdio.h>

#define LOOM_ERRMSG 1024

struct loom_backend_ops;

typedef struct loom_backend_slot {
    const struct loom_backend_ops *ops;
    void *bstate;               /* NULL when init failed or found nothing */
} loom_backend_slot;

/* One entry of the device registry: which backend and its local index. */
typedef struct loom_device_entry {
    int backend;                /* index into ctx->backends */
    int local;                  /* the backend's own device index */
    loom_device_info info;
} loom_device_entry;

struct loom_ctx {
    loom_alloc_fn alloc;
    void *alloc_user;
    loom_log_fn log;
    void *log_user;
    int log_level;
    int validation;
    char cache_dir[512];
    char device_env[64];        /* LOOM_DEVICE, read once */
    char error[LOOM_ERRMSG];
    uint64_t validation_errors;
    loom_backend_slot *backends;
    int nbackends;
    loom_device_entry *devices;
    int ndevices;
};

/* loom_malloc & co., loom_fail, loom_logf, loom_shape_str and
 * loom_write_file_atomic are public (include/loom.h). */
void loom_clear_error(loom_ctx *ctx);

/* Monotonic clock in nanoseconds. */
double loom_now_ns(void);


#endif
