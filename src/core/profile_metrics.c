/* The metrics stream: JSON Lines that loom-dash follows while a run goes.
 * The schema is documented at the top of profile.c. */
#include "jsonw.h"
#include "profile.h"
#include "program.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define METRICS_SCHEMA 1
#define METRICS_TOP_OPS 32
#define METRICS_WINDOWS 8

/* Where the previous sample left each program, for figures over the
 * interval between two samples. */
typedef struct window {
    const loom_program *p;
    int64_t runs;
    double wall, busy;
} window;

struct loom_metrics {
    loom_ctx *ctx;
    loom_device *dev;
    int fd;
    char *path;
    double t_open;
    int64_t lines;
    window win[METRICS_WINDOWS];
    int next_win;
    loom_vendor_counters prev_vc;
    int have_prev_vc;
};

void loom_metrics_line_init(loom_metrics_line *l)
{
    if (!l)
        return;
    l->step = -1;
    l->epoch = -1;
    l->loss = l->accuracy = l->val_loss = l->val_accuracy = l->lr = NAN;
    l->samples_per_s = l->step_ms = l->busy_pct = l->vendor_util_pct = l->engine_pct = NAN;
    l->mem_bytes = l->state_bytes = l->arena_bytes = l->vendor_mem_used_bytes = NAN;
    l->loss_scale = l->skipped_steps = NAN;
}

static const char *type_name(loom_device_type t)
{
    switch (t) {
    case LOOM_DEVICE_DISCRETE: return "discrete";
    case LOOM_DEVICE_INTEGRATED: return "integrated";
    case LOOM_DEVICE_VIRTUAL: return "virtual";
    case LOOM_DEVICE_CPU: return "cpu";
    default: return "other";
    }
}

static const char *backend_name(loom_backend_kind k)
{
    return k == LOOM_BACKEND_VULKAN ? "vulkan" : k == LOOM_BACKEND_OPENCL ? "opencl" : "cpu";
}

/* Appends the finished line with one write(2). */
static loom_status emit(loom_metrics *m, loom_jw *w, const char *what)
{
    loom_jw_raw(w, "\n");
    if (w->oom) {
        loom_jw_free(w);
        return loom_fail(m->ctx, LOOM_E_OOM, "metrics %s: out of memory for a %s line", m->path, what);
    }
    size_t off = 0;
    while (off < w->len) {
        ssize_t k = write(m->fd, w->buf + off, w->len - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            int e = errno;
            loom_jw_free(w);
            return loom_fail(m->ctx, LOOM_E_IO, "metrics %s: cannot append a %s line: %s", m->path, what,
                             strerror(e));
        }
        off += (size_t)k;
    }
    loom_jw_free(w);
    m->lines++;
    return LOOM_OK;
}

static void begin_line(loom_metrics *m, loom_jw *w, const char *type)
{
    loom_jw_init(w, m->ctx, NULL);
    loom_jw_begin_obj(w);
    loom_jw_kstr(w, "type", type);
    loom_jw_knum(w, "time", (loom_now_ns() - m->t_open) / 1e9);
}

loom_status loom_metrics_open(loom_ctx *ctx, const char *path, loom_device *dev, loom_metrics **out)
{
    if (!out)
        return LOOM_E_INVALID;
    *out = NULL;
    if (!ctx)
        return LOOM_E_INVALID;
    if (!path)
        return loom_fail(ctx, LOOM_E_INVALID, "loom_metrics_open: NULL path");
    if (dev && !loom_device_valid(dev))
        return loom_fail(ctx, LOOM_E_INVALID, "loom_metrics_open %s: the device handle is closed", path);
    loom_metrics *m = loom_calloc(ctx, 1, sizeof *m);
    if (!m || !(m->path = loom_strdup(ctx, path))) {
        loom_free(ctx, m, sizeof *m);
        return loom_fail(ctx, LOOM_E_OOM, "loom_metrics_open %s: out of memory", path);
    }
    m->ctx = ctx;
    m->dev = dev;
    m->t_open = loom_now_ns();
    m->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (m->fd < 0) {
        int e = errno;
        loom_strfree(ctx, m->path);
        loom_free(ctx, m, sizeof *m);
        return loom_fail(ctx, LOOM_E_IO, "loom_metrics_open: cannot create %s: %s", path, strerror(e));
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    loom_jw w;
    begin_line(m, &w, "header");
    loom_jw_kint(&w, "schema", METRICS_SCHEMA);
    loom_jw_kstr(&w, "loom", loom_version_string());
    loom_jw_knum(&w, "unix_time", (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
    const char *source = "";
    loom_vendor_counters vc;
    if (dev) {
        const loom_device_info *d = &dev->info;
        loom_jw_key(&w, "device");
        loom_jw_begin_obj(&w);
        loom_jw_kstr(&w, "spec", d->spec);
        loom_jw_kstr(&w, "name", d->name);
        loom_jw_kstr(&w, "vendor", d->vendor);
        loom_jw_kstr(&w, "driver", d->driver);
        loom_jw_kstr(&w, "backend", backend_name(d->backend));
        loom_jw_kstr(&w, "type", type_name(d->type));
        loom_jw_knum(&w, "memory_bytes", (double)d->memory_bytes);
        loom_jw_end_obj(&w);
        if (loom_vendor_counters_read(dev, &vc) == LOOM_OK) {
            source = vc.source;
            m->prev_vc = vc;
            m->have_prev_vc = 1;
        }
    }
    loom_jw_kstr(&w, "vendor_counters", source);
    loom_jw_end_obj(&w);
    loom_status s = emit(m, &w, "header");
    if (s != LOOM_OK) {
        close(m->fd);
        loom_strfree(ctx, m->path);
        loom_free(ctx, m, sizeof *m);
        return s;
    }
    *out = m;
    return LOOM_OK;
}

static window *window_of(loom_metrics *m, const loom_program *p)
{
    for (int i = 0; i < METRICS_WINDOWS; i++)
        if (m->win[i].p == p)
            return &m->win[i];
    window *w = &m->win[m->next_win];
    m->next_win = (m->next_win + 1) % METRICS_WINDOWS;
    *w = (window){p, 0, 0, 0};
    return w;
}

loom_status loom_metrics_sample(loom_metrics *m, loom_program *p, loom_metrics_line *l)
{
    if (!m || !l)
        return LOOM_E_INVALID;
    if (p) {
        loom_profile_report r;
        LOOM_TRY(loom_profile_get(p, &r));
        window *w = window_of(m, p);
        if (r.runs < w->runs) /* reset since the last sample */
            *w = (window){p, 0, 0, 0};
        int64_t runs = r.runs - w->runs;
        double wall = r.wall_total_ns - w->wall, busy = r.busy_total_ns - w->busy;
        if (runs > 0 && isnan(l->step_ms))
            l->step_ms = wall / (double)runs / 1e6;
        if (runs > 0 && r.timed && isnan(l->busy_pct))
            l->busy_pct = wall > 0 ? fmin(100.0, fmax(0.0, 100.0 * busy / wall)) : 0.0;
        *w = (window){p, r.runs, r.wall_total_ns, r.busy_total_ns};
        if (isnan(l->mem_bytes))
            l->mem_bytes = (double)r.mem_bytes;
        if (isnan(l->state_bytes))
            l->state_bytes = (double)r.state_bytes;
        if (isnan(l->arena_bytes))
            l->arena_bytes = (double)r.arena_bytes;
    }
    loom_device *dev = m->dev ? m->dev : p ? p->dev : NULL;
    loom_vendor_counters vc;
    if (dev && loom_vendor_counters_read(dev, &vc) == LOOM_OK) {
        if (vc.util_present && isnan(l->vendor_util_pct))
            l->vendor_util_pct = vc.util_pct;
        if (vc.mem_used_present && isnan(l->vendor_mem_used_bytes))
            l->vendor_mem_used_bytes = (double)vc.mem_used_bytes;
        double e = m->have_prev_vc ? loom_vendor_engine_pct(&m->prev_vc, &vc) : -1;
        if (e >= 0 && isnan(l->engine_pct))
            l->engine_pct = e;
        m->prev_vc = vc;
        m->have_prev_vc = 1;
    }
    return LOOM_OK;
}

static void kint_or_null(loom_jw *w, const char *k, int64_t v)
{
    loom_jw_key(w, k);
    if (v < 0)
        loom_jw_null(w);
    else
        loom_jw_int(w, v);
}

loom_status loom_metrics_write(loom_metrics *m, const loom_metrics_line *l)
{
    if (!m || !l)
        return LOOM_E_INVALID;
    loom_jw w;
    begin_line(m, &w, "step");
    kint_or_null(&w, "step", l->step);
    kint_or_null(&w, "epoch", l->epoch);
    loom_jw_knum(&w, "loss", l->loss);
    loom_jw_knum(&w, "accuracy", l->accuracy);
    loom_jw_knum(&w, "val_loss", l->val_loss);
    loom_jw_knum(&w, "val_accuracy", l->val_accuracy);
    loom_jw_knum(&w, "lr", l->lr);
    loom_jw_knum(&w, "samples_per_s", l->samples_per_s);
    loom_jw_knum(&w, "step_ms", l->step_ms);
    loom_jw_knum(&w, "busy_pct", l->busy_pct);
    loom_jw_knum(&w, "vendor_util_pct", l->vendor_util_pct);
    loom_jw_knum(&w, "engine_pct", l->engine_pct);
    loom_jw_knum(&w, "mem_bytes", l->mem_bytes);
    loom_jw_knum(&w, "state_bytes", l->state_bytes);
    loom_jw_knum(&w, "arena_bytes", l->arena_bytes);
    loom_jw_knum(&w, "vendor_mem_used_bytes", l->vendor_mem_used_bytes);
    loom_jw_knum(&w, "loss_scale", l->loss_scale);
    loom_jw_knum(&w, "skipped_steps", l->skipped_steps);
    loom_jw_end_obj(&w);
    return emit(m, &w, "step");
}

typedef struct ranked {
    double total;
    int i;
} ranked;

static int by_total_desc(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    return x->total < y->total ? 1 : x->total > y->total ? -1 : x->i - y->i;
}

loom_status loom_metrics_write_ops(loom_metrics *m, loom_program *p, int64_t step)
{
    if (!m || !p)
        return LOOM_E_INVALID;
    loom_profile_report r;
    LOOM_TRY(loom_profile_get(p, &r));
    if (!r.enabled)
        return loom_fail(m->ctx, LOOM_E_STATE,
                         "loom_metrics_write_ops on %s: the program was compiled without profile = 1",
                         p->dev->info.spec);
    int n = r.nnodes;
    ranked *idx = loom_malloc(m->ctx, (size_t)(n ? n : 1) * sizeof *idx);
    if (!idx)
        return loom_fail(m->ctx, LOOM_E_OOM, "loom_metrics_write_ops: out of memory for %d nodes", n);
    for (int i = 0; i < n; i++)
        idx[i] = (ranked){r.nodes[i].total_ns, i};
    qsort(idx, (size_t)n, sizeof *idx, by_total_desc);
    int top = n < METRICS_TOP_OPS ? n : METRICS_TOP_OPS;
    loom_jw w;
    begin_line(m, &w, "ops");
    kint_or_null(&w, "step", step);
    loom_jw_kint(&w, "runs", r.runs);
    loom_jw_knum(&w, "wall_ms", r.runs ? r.wall_mean_ns / 1e6 : NAN);
    loom_jw_knum(&w, "busy_pct", r.busy_pct >= 0 ? r.busy_pct : NAN);
    loom_jw_kint(&w, "omitted", n - top);
    loom_jw_key(&w, "ops");
    loom_jw_begin_arr(&w);
    for (int k = 0; k < top; k++) {
        const loom_profile_node *e = &r.nodes[idx[k].i];
        loom_jw_begin_obj(&w);
        loom_jw_kstr(&w, "name", e->name);
        loom_jw_kstr(&w, "op", e->op);
        loom_jw_kstr(&w, "shape", e->shape);
        loom_jw_kint(&w, "count", e->count);
        loom_jw_knum(&w, "total_ms", e->total_ns / 1e6);
        loom_jw_knum(&w, "mean_us", e->mean_ns / 1e3);
        loom_jw_knum(&w, "min_us", e->min_ns / 1e3);
        loom_jw_knum(&w, "max_us", e->max_ns / 1e3);
        loom_jw_knum(&w, "flops", e->flops);
        loom_jw_knum(&w, "bytes", e->bytes);
        loom_jw_knum(&w, "gflops", e->gflops);
        loom_jw_knum(&w, "gbps", e->gbps);
        loom_jw_end_obj(&w);
    }
    loom_jw_end_arr(&w);
    loom_jw_end_obj(&w);
    loom_free(m->ctx, idx, (size_t)(n ? n : 1) * sizeof *idx);
    return emit(m, &w, "ops");
}

loom_status loom_metrics_write_plan(loom_metrics *m, loom_program *p, const char *label)
{
    if (!m || !p)
        return LOOM_E_INVALID;
    loom_plan_report pr;
    LOOM_TRY(loom_program_plan(p, &pr));
    loom_jw w;
    begin_line(m, &w, "plan");
    loom_jw_kstr(&w, "label", label ? label : "program");
    loom_jw_knum(&w, "arena_bytes", (double)pr.arena_bytes);
    loom_jw_knum(&w, "lower_bound", (double)pr.lower_bound);
    loom_jw_knum(&w, "naive_bytes", (double)pr.naive_bytes);
    loom_jw_knum(&w, "state_bytes", (double)pr.state_bytes);
    loom_jw_kint(&w, "inplace", pr.inplace);
    loom_jw_key(&w, "live_bytes");
    loom_jw_begin_arr(&w);
    for (int i = 0; i < pr.steps; i++)
        loom_jw_num(&w, (double)pr.live_bytes[i]);
    loom_jw_end_arr(&w);
    loom_jw_end_obj(&w);
    return emit(m, &w, "plan");
}

loom_status loom_metrics_close(loom_metrics *m)
{
    if (!m)
        return LOOM_OK;
    loom_jw w;
    begin_line(m, &w, "end");
    loom_jw_kint(&w, "lines", m->lines + 1);
    loom_jw_end_obj(&w);
    loom_status s = emit(m, &w, "end");
    if (close(m->fd) != 0 && s == LOOM_OK)
        s = loom_fail(m->ctx, LOOM_E_IO, "metrics %s: close failed: %s", m->path, strerror(errno));
    loom_ctx *ctx = m->ctx;
    loom_strfree(ctx, m->path);
    loom_free(ctx, m, sizeof *m);
    return s;
}
