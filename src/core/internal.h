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

/* Allocation through the context's allocator. */
void *loom_malloc(loom_ctx *ctx, size_t n);
void *loom_calloc(loom_ctx *ctx, size_t count, size_t size);
void *loom_realloc(loom_ctx *ctx, void *p, size_t osize, size_t nsize);
void loom_free(loom_ctx *ctx, void *p, size_t n);
char *loom_strdup(loom_ctx *ctx, const char *s);
void loom_strfree(loom_ctx *ctx, char *s);

/* Records the message as the context's last error, logs it and returns s. */
loom_status loom_fail(loom_ctx *ctx, loom_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void loom_logf(loom_ctx *ctx, loom_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void loom_clear_error(loom_ctx *ctx);

/* Returns the status of call if it is not LOOM_OK. */
#define LOOM_TRY(call)                        \
    do {                                      \
        loom_status loom_try_s_ = (call);     \
        if (loom_try_s_ != LOOM_OK)           \
            return loom_try_s_;               \
    } while (0)

/* "[2,3]" into buf. */
const char *loom_shape_str(char *buf, size_t n, int ndim, const int64_t *shape);

/* Monotonic clock in nanoseconds. */
double loom_now_ns(void);

/* Writes bytes to path through a temporary name and a rename, so a reader
 * never sees a half-written file. */
loom_status loom_write_file_atomic(loom_ctx *ctx, const char *path, const void *data, size_t bytes);

#endif
