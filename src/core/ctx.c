/* The context: allocation, errors, logging, options parsed once. */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"
#include "backend.h"
#include "device_registry.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void *default_alloc(void *user, void *ptr, size_t osize, size_t nsize)
{
    (void)user;
    (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, nsize);
}

static void default_log(void *user, loom_log_level level, const char *msg)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    (void)user;
    fprintf(stderr, "loom %s: %s\n", names[level], msg);
}

void *loom_malloc(loom_ctx *ctx, size_t n)
{
    return ctx->alloc(ctx->alloc_user, NULL, 0, n ? n : 1);
}

void *loom_calloc(loom_ctx *ctx, size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    size_t n = count * size;
    void *p = loom_malloc(ctx, n);
    if (p)
        memset(p, 0, n > 0 ? n : 1);
    return p;
}

void *loom_realloc(loom_ctx *ctx, void *p, size_t osize, size_t nsize)
{
    return ctx->alloc(ctx->alloc_user, p, osize, nsize ? nsize : 1);
}

void loom_free(loom_ctx *ctx, void *p, size_t n)
{
    if (p)
        ctx->alloc(ctx->alloc_user, p, n, 0);
}

char *loom_strdup(loom_ctx *ctx, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = loom_malloc(ctx, n);
    if (d)
        memcpy(d, s, n);
    return d;
}

void loom_strfree(loom_ctx *ctx, char *s)
{
    if (s)
        loom_free(ctx, s, strlen(s) + 1);
}

const char *loom_status_str(loom_status s)
{
    switch (s) {
    case LOOM_OK: return "ok";
    case LOOM_E_INVALID: return "invalid argument";
    case LOOM_E_SHAPE: return "shape mismatch";
    case LOOM_E_DTYPE: return "wrong dtype";
    case LOOM_E_RANGE: return "value out of range";
    case LOOM_E_STATE: return "invalid state";
    case LOOM_E_OOM: return "out of memory";
    case LOOM_E_DEVICE: return "device error";
    case LOOM_E_UNSUPPORTED: return "unsupported";
    case LOOM_E_IO: return "i/o error";
    case LOOM_E_FORMAT: return "bad file format";
    }
    return "unknown status";
}

const char *loom_version_string(void)
{
#define LOOM_STR2(x) #x
#define LOOM_STR(x) LOOM_STR2(x)
    return LOOM_STR(LOOM_VERSION_MAJOR) "." LOOM_STR(LOOM_VERSION_MINOR) "." LOOM_STR(LOOM_VERSION_PATCH);
}

void loom_logf(loom_ctx *ctx, loom_log_level level, const char *fmt, ...)
{
    if (!ctx || (int)level > ctx->log_level)
        return;
    char buf[LOOM_ERRMSG];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ctx->log(ctx->log_user, level, buf);
}

loom_status loom_fail(loom_ctx *ctx, loom_status s, const char *fmt, ...)
{
    if (!ctx)
        return s;
    /* through a copy: an argument may be the last error itself (a message
     * wrapped with its context), which vsnprintf must not read while it
     * writes */
    char msg[sizeof ctx->error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(ctx->error, msg, sizeof msg);
    if (ctx->log_level >= LOOM_LOG_DEBUG)
        ctx->log(ctx->log_user, LOOM_LOG_DEBUG, ctx->error);
    return s;
}

void loom_clear_error(loom_ctx *ctx)
{
    if (ctx)
        ctx->error[0] = '\0';
}

const char *loom_last_error(const loom_ctx *ctx)
{
    return ctx ? ctx->error : "no context";
}

uint64_t loom_validation_errors(const loom_ctx *ctx)
{
    return ctx ? ctx->validation_errors : 0;
}

void loom_set_log(loom_ctx *ctx, loom_log_fn fn, void *user, loom_log_level level)
{
    if (!ctx)
        return;
    ctx->log = fn ? fn : default_log;
    ctx->log_user = fn ? user : NULL;
    ctx->log_level = (int)level;
}

const char *loom_shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n - k, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (k < n)
        snprintf(buf + k, n - k, "]");
    return buf;
}

double loom_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Temporary files are "<name>.tmp.<pid>" beside the target, held under an
 * exclusive flock while written. A writer killed mid-save (kill -9, power
 * loss) leaves its temporary behind; the next save of the same target
 * removes those siblings whose pid is not a live process and whose lock is
 * free. Both are checked: a pid alone can be reused, and a writer in another
 * pid namespace sharing the folder has a pid we cannot see, but it holds the
 * lock. Only names of exactly this pattern for this target are touched. */
static void remove_stale_temps(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t blen = strlen(base);
    size_t dlen = slash ? (size_t)(slash - path) : 0;
    char dir[1100];
    if (dlen >= sizeof dir)
        return;
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (dlen == 0)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)dlen, path);
    DIR *d = opendir(dir);
    if (!d)
        return;
    int dfd = dirfd(d);
    long self = (long)getpid();
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (strncmp(n, base, blen) != 0 || strncmp(n + blen, ".tmp.", 5) != 0)
            continue;
        const char *digits = n + blen + 5;
        char *end = NULL;
        errno = 0;
        long pid = strtol(digits, &end, 10);
        if (digits[0] < '1' || digits[0] > '9' || *end || errno || pid <= 0 || pid == self || (pid_t)pid != pid)
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;                   /* alive, or not ours to judge */
        struct stat sb;
        if (fstatat(dfd, n, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode))
            continue;
        int fd = openat(dfd, n, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
            continue;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            unlinkat(dfd, n, 0);
        close(fd);
    }
    closedir(d);
}

loom_status loom_write_file_atomic(loom_ctx *ctx, const char *path, const void *data, size_t bytes)
{
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    remove_stale_temps(path);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return loom_fail(ctx, LOOM_E_IO, "write %s: cannot create %s: %s", path, tmp, strerror(errno));
    /* Marks the temporary as in use for remove_stale_temps; released by
     * fclose or by the process's death. A file system without flock still
     * saves: the lock is advisory. */
    (void)flock(fileno(f), LOCK_EX | LOCK_NB);
    int ok = fwrite(data, 1, bytes, f) == bytes;
    ok &= fflush(f) == 0;
    ok &= fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    if (!ok) {
        int e = errno;
        remove(tmp);
        return loom_fail(ctx, LOOM_E_IO, "write %s: %s", path, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return loom_fail(ctx, LOOM_E_IO, "write %s: rename from %s: %s", path, tmp, strerror(e));
    }
    return LOOM_OK;
}

/* ---- options, read once ------------------------------------------------- */

void loom_ctx_opts_default(loom_ctx_opts *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->log_level = -1;
    opts->validation = -1;
}

static int env_level(void)
{
    const char *e = getenv("LOOM_LOG");
    if (!e || !*e)
        return LOOM_LOG_WARN;
    if (!strcmp(e, "error")) return LOOM_LOG_ERROR;
    if (!strcmp(e, "warn")) return LOOM_LOG_WARN;
    if (!strcmp(e, "info")) return LOOM_LOG_INFO;
    if (!strcmp(e, "debug")) return LOOM_LOG_DEBUG;
    return atoi(e);
}

static void resolve_cache_dir(loom_ctx *ctx, const char *given)
{
    const char *e;
    if (given && *given)
        snprintf(ctx->cache_dir, sizeof ctx->cache_dir, "%s", given);
    else if ((e = getenv("LOOM_CACHE_DIR")) && *e)
        snprintf(ctx->cache_dir, sizeof ctx->cache_dir, "%s", e);
    else if ((e = getenv("XDG_CACHE_HOME")) && *e)
        snprintf(ctx->cache_dir, sizeof ctx->cache_dir, "%s/loom", e);
    else if ((e = getenv("HOME")) && *e)
        snprintf(ctx->cache_dir, sizeof ctx->cache_dir, "%s/.cache/loom", e);
    else
        snprintf(ctx->cache_dir, sizeof ctx->cache_dir, "/tmp/loom-cache");
}

loom_status loom_ctx_create(const loom_ctx_opts *opts, loom_ctx **out)
{
    loom_ctx_opts o;
    if (!out)
        return LOOM_E_INVALID;
    *out = NULL;
    if (opts)
        o = *opts;
    else
        loom_ctx_opts_default(&o);
    loom_alloc_fn alloc = o.alloc ? o.alloc : default_alloc;
    loom_ctx *ctx = alloc(o.alloc_user, NULL, 0, sizeof *ctx);
    if (!ctx)
        return LOOM_E_OOM;
    memset(ctx, 0, sizeof *ctx);
    ctx->alloc = alloc;
    ctx->alloc_user = o.alloc_user;
    ctx->log = o.log ? o.log : default_log;
    ctx->log_user = o.log_user;
    ctx->log_level = o.log_level >= 0 ? o.log_level : env_level();
    if (o.validation >= 0) {
        ctx->validation = o.validation;
    } else {
        const char *v = getenv("LOOM_VK_VALIDATION");
        ctx->validation = v && *v && strcmp(v, "0") != 0;
    }
    const char *dev = getenv("LOOM_DEVICE");
    if (dev)
        snprintf(ctx->device_env, sizeof ctx->device_env, "%s", dev);
    resolve_cache_dir(ctx, o.cache_dir);
    loom_status s = loom_registry_init(ctx, o.backends);
    if (s != LOOM_OK) {
        char msg[LOOM_ERRMSG];
        snprintf(msg, sizeof msg, "%s", ctx->error);
        loom_log_fn log = ctx->log;
        void *log_user = ctx->log_user;
        loom_ctx_destroy(ctx);
        log(log_user, LOOM_LOG_ERROR, msg);
        return s;
    }
    *out = ctx;
    return LOOM_OK;
}

void loom_ctx_destroy(loom_ctx *ctx)
{
    if (!ctx)
        return;
    loom_registry_shutdown(ctx);
    ctx->alloc(ctx->alloc_user, ctx, sizeof *ctx, 0);
}
