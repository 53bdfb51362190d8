/*
 * The Chrome-trace recorder (loom_trace_*). The file is the JSON object
 * form of the Trace Event Format, which ui.perfetto.dev and
 * chrome://tracing open:
 *
 *   - each device is a process (pid 1, 2, ...) named "spec: device name",
 *     with one thread, its queue (tid 1);
 *   - on that track, complete ("X") slices nest: cat "step" (consecutive
 *     runs given one step number) > cat "run" (one loom_program_run) >
 *     cat "node" (one node's device time; args: op, shape, flops, bytes);
 *   - counter ("C") events per device: "busy %", "memory bytes", the
 *     vendor's "vendor util %", "vendor memory bytes", "engine %", and
 *     whatever loom_trace_counter adds;
 *   - "otherData" carries the devices and each program's planner report
 *     with its live-bytes timeline, which loom-dash draws.
 *
 * Times are microseconds from the first recorded event, written from whole
 * nanoseconds so that slices that do not overlap on the device do not
 * overlap in the file.
 */
#include "jsonw.h"
#include "profile.h"
#include "program.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TRACE_MAX_NODES 1000000
#define TRACE_VENDOR_PERIOD_NS 1e8

typedef struct tr_str {
    char *s;
    uint32_t hash;
    int32_t name, op, shape;    /* node keys: the parts, interned */
    double flops, bytes;
} tr_str;

typedef struct tr_dev {
    const loom_device *dev;
    loom_device_info info;
    double last_vc_ns;
    loom_vendor_counters prev_vc;
    int have_prev_vc;
} tr_dev;

typedef struct tr_node {
    double ts, dur;
    int32_t key;
} tr_node;

typedef struct tr_run {
    double ts, end, wall, busy_pct;
    int64_t step;
    int32_t label, dev;
    int32_t first, n;           /* its nodes in the node array */
} tr_run;

typedef struct tr_counter {
    double ts, value;
    int32_t name, dev;
} tr_counter;

typedef struct tr_plan {
    const loom_program *prog;
    int32_t dev, label;
    loom_plan_report r;
    uint64_t *live;
} tr_plan;

struct loom_trace {
    loom_ctx *ctx;
    tr_str *strs;
    int nstr, capstr;
    int32_t *slots;             /* open addressing: index + 1, 0 = empty */
    int nslots;
    tr_dev *devs;
    int ndev, capdev;
    tr_node *nodes;
    int nnodes, capnodes;
    tr_run *runs;
    int nruns, capruns;
    tr_counter *ctrs;
    int nctrs, capctrs;
    tr_plan *plans;
    int nplans, capplans;
    int64_t dropped_runs;
};

/* Grows *arr (of *cap elements of size sz) to hold need; 0 on OOM. */
static int grow(loom_ctx *ctx, void **arr, int *cap, int need, size_t sz)
{
    if (need <= *cap)
        return 1;
    int nc = *cap ? *cap : 16;
    while (nc < need)
        nc *= 2;
    void *n = loom_realloc(ctx, *arr, (size_t)*cap * sz, (size_t)nc * sz);
    if (!n)
        return 0;
    *arr = n;
    *cap = nc;
    return 1;
}

static uint32_t fnv(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static int rehash(loom_trace *t, int nslots)
{
    int32_t *s = loom_calloc(t->ctx, (size_t)nslots, sizeof *s);
    if (!s)
        return 0;
    for (int i = 0; i < t->nstr; i++) {
        uint32_t j = t->strs[i].hash & (uint32_t)(nslots - 1);
        while (s[j])
            j = (j + 1) & (uint32_t)(nslots - 1);
        s[j] = i + 1;
    }
    loom_free(t->ctx, t->slots, (size_t)t->nslots * sizeof *t->slots);
    t->slots = s;
    t->nslots = nslots;
    return 1;
}

/* The id of s, added if new; -1 on OOM. *fresh says whether it was new. */
static int32_t intern(loom_trace *t, const char *s, int *fresh)
{
    if (fresh)
        *fresh = 0;
    if ((t->nstr + 1) * 2 > t->nslots && !rehash(t, t->nslots ? t->nslots * 2 : 256))
        return -1;
    uint32_t h = fnv(s), j = h & (uint32_t)(t->nslots - 1);
    while (t->slots[j]) {
        const tr_str *e = &t->strs[t->slots[j] - 1];
        if (e->hash == h && !strcmp(e->s, s))
            return t->slots[j] - 1;
        j = (j + 1) & (uint32_t)(t->nslots - 1);
    }
    if (!grow(t->ctx, (void **)&t->strs, &t->capstr, t->nstr + 1, sizeof *t->strs))
        return -1;
    tr_str *e = &t->strs[t->nstr];
    memset(e, 0, sizeof *e);
    if (!(e->s = loom_strdup(t->ctx, s)))
        return -1;
    e->hash = h;
    t->slots[j] = ++t->nstr;
    if (fresh)
        *fresh = 1;
    return t->nstr - 1;
}

loom_status loom_trace_create(loom_ctx *ctx, loom_trace **out)
{
    if (!out)
        return LOOM_E_INVALID;
    *out = NULL;
    if (!ctx)
        return LOOM_E_INVALID;
    loom_trace *t = loom_calloc(ctx, 1, sizeof *t);
    if (!t)
        return loom_fail(ctx, LOOM_E_OOM, "loom_trace_create: out of memory");
    t->ctx = ctx;
    *out = t;
    return LOOM_OK;
}

void loom_trace_destroy(loom_trace *t)
{
    if (!t)
        return;
    loom_ctx *ctx = t->ctx;
    for (int i = 0; i < t->nstr; i++)
        loom_strfree(ctx, t->strs[i].s);
    for (int i = 0; i < t->nplans; i++)
        loom_free(ctx, t->plans[i].live, (size_t)t->plans[i].r.steps * sizeof(uint64_t));
    loom_free(ctx, t->strs, (size_t)t->capstr * sizeof *t->strs);
    loom_free(ctx, t->slots, (size_t)t->nslots * sizeof *t->slots);
    loom_free(ctx, t->devs, (size_t)t->capdev * sizeof *t->devs);
    loom_free(ctx, t->nodes, (size_t)t->capnodes * sizeof *t->nodes);
    loom_free(ctx, t->runs, (size_t)t->capruns * sizeof *t->runs);
    loom_free(ctx, t->ctrs, (size_t)t->capctrs * sizeof *t->ctrs);
    loom_free(ctx, t->plans, (size_t)t->capplans * sizeof *t->plans);
    loom_free(ctx, t, sizeof *t);
}

static loom_status oom(loom_trace *t, const char *what)
{
    return loom_fail(t->ctx, LOOM_E_OOM, "loom_trace: out of memory recording %s", what);
}

static int32_t dev_index(loom_trace *t, const loom_device *dev)
{
    for (int i = 0; i < t->ndev; i++)
        if (t->devs[i].dev == dev && !strcmp(t->devs[i].info.spec, dev->info.spec))
            return i;
    if (!grow(t->ctx, (void **)&t->devs, &t->capdev, t->ndev + 1, sizeof *t->devs))
        return -1;
    tr_dev *d = &t->devs[t->ndev];
    memset(d, 0, sizeof *d);
    d->dev = dev;
    d->info = dev->info;
    d->last_vc_ns = -INFINITY;
    return t->ndev++;
}

static loom_status add_counter(loom_trace *t, int32_t dev, const char *name, double ts, double value)
{
    int32_t id = intern(t, name, NULL);
    if (id < 0 || !grow(t->ctx, (void **)&t->ctrs, &t->capctrs, t->nctrs + 1, sizeof *t->ctrs))
        return oom(t, "a counter");
    t->ctrs[t->nctrs++] = (tr_counter){ts, value, id, dev};
    return LOOM_OK;
}

loom_status loom_trace_counter(loom_trace *t, loom_device *dev, const char *name, double value)
{
    if (!t)
        return LOOM_E_INVALID;
    if (!loom_device_valid(dev) || !name)
        return loom_fail(t->ctx, LOOM_E_INVALID, "loom_trace_counter: %s", name ? "closed device" : "NULL name");
    int32_t d = dev_index(t, dev);
    if (d < 0)
        return oom(t, "a device");
    return add_counter(t, d, name, loom_now_ns(), value);
}

static loom_status keep_plan(loom_trace *t, loom_program *p, int32_t dev, int32_t label)
{
    for (int i = 0; i < t->nplans; i++)
        if (t->plans[i].prog == p && t->plans[i].label == label)
            return LOOM_OK;
    if (!grow(t->ctx, (void **)&t->plans, &t->capplans, t->nplans + 1, sizeof *t->plans))
        return oom(t, "a plan");
    tr_plan *pl = &t->plans[t->nplans];
    memset(pl, 0, sizeof *pl);
    LOOM_TRY(loom_program_plan(p, &pl->r));
    if (pl->r.steps > 0) {
        pl->live = loom_malloc(t->ctx, (size_t)pl->r.steps * sizeof *pl->live);
        if (!pl->live)
            return oom(t, "a plan");
        memcpy(pl->live, pl->r.live_bytes, (size_t)pl->r.steps * sizeof *pl->live);
    }
    pl->r.live_bytes = NULL;
    pl->prog = p;
    pl->dev = dev;
    pl->label = label;
    t->nplans++;
    return LOOM_OK;
}

static loom_status sample_vendor(loom_trace *t, int32_t di, loom_device *dev, double now)
{
    tr_dev *d = &t->devs[di];
    if (now - d->last_vc_ns < TRACE_VENDOR_PERIOD_NS)
        return LOOM_OK;
    d->last_vc_ns = now;
    loom_vendor_counters vc;
    if (loom_vendor_counters_read(dev, &vc) != LOOM_OK)
        return LOOM_OK;
    if (vc.util_present)
        LOOM_TRY(add_counter(t, di, "vendor util %", now, vc.util_pct));
    if (vc.mem_used_present)
        LOOM_TRY(add_counter(t, di, "vendor memory bytes", now, (double)vc.mem_used_bytes));
    double e = d->have_prev_vc ? loom_vendor_engine_pct(&d->prev_vc, &vc) : -1;
    if (e >= 0)
        LOOM_TRY(add_counter(t, di, "engine %", now, e));
    d->prev_vc = vc;
    d->have_prev_vc = 1;
    return LOOM_OK;
}

loom_status loom_trace_add_run(loom_trace *t, loom_program *p, int64_t step, const char *label)
{
    if (!t)
        return LOOM_E_INVALID;
    if (!p || p->magic != LOOM_PROGRAM_MAGIC)
        return loom_fail(t->ctx, LOOM_E_INVALID, "loom_trace_add_run: NULL or destroyed program");
    loom_profile_report r;
    LOOM_TRY(loom_profile_get(p, &r));
    if (!r.enabled)
        return loom_fail(t->ctx, LOOM_E_STATE,
                         "loom_trace_add_run on %s: the program was compiled without profile = 1",
                         p->dev->info.spec);
    if (r.runs == 0)
        return loom_fail(t->ctx, LOOM_E_STATE, "loom_trace_add_run on %s: the program has not run yet",
                         p->dev->info.spec);
    int timed = r.busy_last_pct >= 0;
    int n = timed ? r.nnodes : 0;
    if (t->nnodes + n > TRACE_MAX_NODES) {
        t->dropped_runs++;
        return LOOM_OK;
    }
    int32_t di = dev_index(t, p->dev);
    int32_t lab = intern(t, label ? label : "run", NULL);
    if (di < 0 || lab < 0 || !grow(t->ctx, (void **)&t->runs, &t->capruns, t->nruns + 1, sizeof *t->runs) ||
        !grow(t->ctx, (void **)&t->nodes, &t->capnodes, t->nnodes + n, sizeof *t->nodes))
        return oom(t, "a run");
    tr_run *run = &t->runs[t->nruns];
    run->ts = r.last_start_ns;
    run->end = r.last_start_ns + r.wall_last_ns;
    run->wall = r.wall_last_ns;
    run->busy_pct = r.busy_last_pct;
    run->step = step;
    run->label = lab;
    run->dev = di;
    run->first = t->nnodes;
    run->n = n;
    for (int i = 0; i < n; i++) {
        const loom_profile_node *e = &r.nodes[i];
        char key[512];
        snprintf(key, sizeof key, "%s\x1f%s\x1f%s", e->name, e->op, e->shape);
        int fresh;
        int32_t k = intern(t, key, &fresh);
        if (k < 0)
            return oom(t, "a node");
        if (fresh) {
            int32_t a = intern(t, e->name, NULL), b = intern(t, e->op, NULL), c = intern(t, e->shape, NULL);
            if (a < 0 || b < 0 || c < 0)
                return oom(t, "a node");
            tr_str *s = &t->strs[k];
            s->name = a, s->op = b, s->shape = c;
            s->flops = e->flops, s->bytes = e->bytes;
        }
        double dur = e->last_end_ns - e->last_start_ns;
        t->nodes[t->nnodes + i] = (tr_node){e->last_start_ns, dur, k};
        if (e->last_start_ns < run->ts)
            run->ts = e->last_start_ns;
        if (e->last_end_ns > run->end)
            run->end = e->last_end_ns;
    }
    /* The nodes' times are the device's clock mapped onto the host's,
     * good to some microseconds, and a device runs one program at a time:
     * where that error starts this run before the device's last one ended
     * (seen on a loaded machine: 10 us), the run moves later by the
     * difference, its nodes with it. */
    for (int32_t i = t->nruns - 1; i >= 0; i--) {
        if (t->runs[i].dev != di)
            continue;
        double lag = t->runs[i].end - run->ts;
        if (lag > 0) {
            run->ts += lag;
            run->end += lag;
            for (int k = 0; k < n; k++)
                t->nodes[t->nnodes + k].ts += lag;
        }
        break;
    }
    t->nnodes += n;
    t->nruns++;
    LOOM_TRY(keep_plan(t, p, di, lab));
    if (timed)
        LOOM_TRY(add_counter(t, di, "busy %", run->end, r.busy_last_pct));
    LOOM_TRY(add_counter(t, di, "memory bytes", run->end, (double)r.mem_bytes));
    return sample_vendor(t, di, p->dev, loom_now_ns());
}

/* ---- writing ---------------------------------------------------------------- */

typedef struct tw {
    loom_jw w;
    double origin;
} tw;

static double rel_ns(const tw *o, double t)
{
    return rint(t - o->origin);
}

static void slice(tw *o, const char *cat, const char *name, int pid, double ts, double end)
{
    double a = rel_ns(o, ts), b = rel_ns(o, end);
    if (b < a)
        b = a;
    loom_jw_raw(&o->w, "\n");
    loom_jw_begin_obj(&o->w);
    loom_jw_kstr(&o->w, "ph", "X");
    loom_jw_kstr(&o->w, "cat", cat);
    loom_jw_kstr(&o->w, "name", name);
    loom_jw_kint(&o->w, "pid", pid);
    loom_jw_kint(&o->w, "tid", 1);
    loom_jw_key(&o->w, "ts");
    loom_jw_fixed3(&o->w, a / 1e3);
    loom_jw_key(&o->w, "dur");
    loom_jw_fixed3(&o->w, (b - a) / 1e3);
    loom_jw_key(&o->w, "args");
    loom_jw_begin_obj(&o->w);
}

static void end_slice(tw *o)
{
    loom_jw_end_obj(&o->w);
    loom_jw_end_obj(&o->w);
}

static void meta(tw *o, const char *what, int pid, int tid, const char *key, const char *sval, int64_t ival)
{
    loom_jw_raw(&o->w, "\n");
    loom_jw_begin_obj(&o->w);
    loom_jw_kstr(&o->w, "ph", "M");
    loom_jw_kstr(&o->w, "name", what);
    loom_jw_kint(&o->w, "pid", pid);
    if (tid)
        loom_jw_kint(&o->w, "tid", tid);
    loom_jw_key(&o->w, "args");
    loom_jw_begin_obj(&o->w);
    if (sval)
        loom_jw_kstr(&o->w, key, sval);
    else
        loom_jw_kint(&o->w, key, ival);
    loom_jw_end_obj(&o->w);
    loom_jw_end_obj(&o->w);
}

static void write_events(loom_trace *t, tw *o)
{
    loom_jw *w = &o->w;
    for (int d = 0; d < t->ndev; d++) {
        char pname[320];
        snprintf(pname, sizeof pname, "%s: %s", t->devs[d].info.spec, t->devs[d].info.name);
        meta(o, "process_name", d + 1, 0, "name", pname, 0);
        meta(o, "process_sort_index", d + 1, 0, "sort_index", NULL, d + 1);
        meta(o, "thread_name", d + 1, 1, "name", "queue", 0);
    }
    for (int d = 0; d < t->ndev; d++) {
        for (int i = 0; i < t->nruns; i++) {
            const tr_run *run = &t->runs[i];
            if (run->dev != d)
                continue;
            /* A step slice opens at the first run of a group of consecutive
             * runs (on this device) that share a step number. */
            int prev = -1;
            for (int j = i - 1; j >= 0 && prev < 0; j--)
                if (t->runs[j].dev == d)
                    prev = j;
            if (run->step >= 0 && (prev < 0 || t->runs[prev].step != run->step)) {
                double end = run->end;
                for (int j = i + 1; j < t->nruns; j++) {
                    if (t->runs[j].dev != d)
                        continue;
                    if (t->runs[j].step != run->step)
                        break;
                    if (t->runs[j].end > end)
                        end = t->runs[j].end;
                }
                char sname[40];
                snprintf(sname, sizeof sname, "step %lld", (long long)run->step);
                slice(o, "step", sname, d + 1, run->ts, end);
                loom_jw_kint(w, "step", run->step);
                end_slice(o);
            }
            slice(o, "run", t->strs[run->label].s, d + 1, run->ts, run->end);
            loom_jw_knum(w, "wall_ms", run->wall / 1e6);
            loom_jw_knum(w, "busy_pct", run->busy_pct >= 0 ? run->busy_pct : NAN);
            if (run->step >= 0)
                loom_jw_kint(w, "step", run->step);
            end_slice(o);
            for (int k = run->first; k < run->first + run->n; k++) {
                const tr_node *nd = &t->nodes[k];
                const tr_str *key = &t->strs[nd->key];
                slice(o, "node", t->strs[key->name].s, d + 1, nd->ts, nd->ts + nd->dur);
                loom_jw_kstr(w, "op", t->strs[key->op].s);
                loom_jw_kstr(w, "shape", t->strs[key->shape].s);
                loom_jw_knum(w, "flops", key->flops);
                loom_jw_knum(w, "bytes", key->bytes);
                if (run->step >= 0)
                    loom_jw_kint(w, "step", run->step);
                end_slice(o);
            }
            if (w->sink && w->len > 60000)
                loom_jw_flush(w);
        }
    }
    for (int i = 0; i < t->nctrs; i++) {
        const tr_counter *c = &t->ctrs[i];
        loom_jw_raw(w, "\n");
        loom_jw_begin_obj(w);
        loom_jw_kstr(w, "ph", "C");
        loom_jw_kstr(w, "name", t->strs[c->name].s);
        loom_jw_kint(w, "pid", c->dev + 1);
        loom_jw_key(w, "ts");
        loom_jw_fixed3(w, rel_ns(o, c->ts) / 1e3);
        loom_jw_key(w, "args");
        loom_jw_begin_obj(w);
        loom_jw_knum(w, "value", c->value);
        loom_jw_end_obj(w);
        loom_jw_end_obj(w);
    }
}

static void write_other(loom_trace *t, tw *o)
{
    loom_jw *w = &o->w;
    loom_jw_key(w, "otherData");
    loom_jw_begin_obj(w);
    loom_jw_kstr(w, "loom_version", loom_version_string());
    loom_jw_kint(w, "dropped_runs", t->dropped_runs);
    loom_jw_key(w, "devices");
    loom_jw_begin_arr(w);
    for (int d = 0; d < t->ndev; d++) {
        const loom_device_info *i = &t->devs[d].info;
        loom_jw_begin_obj(w);
        loom_jw_kint(w, "pid", d + 1);
        loom_jw_kstr(w, "spec", i->spec);
        loom_jw_kstr(w, "name", i->name);
        loom_jw_kstr(w, "vendor", i->vendor);
        loom_jw_kstr(w, "driver", i->driver);
        loom_jw_end_obj(w);
    }
    loom_jw_end_arr(w);
    loom_jw_key(w, "plans");
    loom_jw_begin_arr(w);
    for (int k = 0; k < t->nplans; k++) {
        const tr_plan *pl = &t->plans[k];
        loom_jw_raw(w, "\n");
        loom_jw_begin_obj(w);
        loom_jw_kint(w, "pid", pl->dev + 1);
        loom_jw_kstr(w, "label", t->strs[pl->label].s);
        loom_jw_knum(w, "arena_bytes", (double)pl->r.arena_bytes);
        loom_jw_knum(w, "lower_bound", (double)pl->r.lower_bound);
        loom_jw_knum(w, "naive_bytes", (double)pl->r.naive_bytes);
        loom_jw_knum(w, "state_bytes", (double)pl->r.state_bytes);
        loom_jw_key(w, "live_bytes");
        loom_jw_begin_arr(w);
        for (int s = 0; s < pl->r.steps; s++)
            loom_jw_num(w, (double)pl->live[s]);
        loom_jw_end_arr(w);
        loom_jw_end_obj(w);
    }
    loom_jw_end_arr(w);
    loom_jw_end_obj(w);
}

loom_status loom_trace_write(loom_trace *t, const char *path)
{
    if (!t)
        return LOOM_E_INVALID;
    if (!path)
        return loom_fail(t->ctx, LOOM_E_INVALID, "loom_trace_write: NULL path");
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return loom_fail(t->ctx, LOOM_E_IO, "loom_trace_write %s: cannot create %s: %s", path, tmp, strerror(errno));
    tw o;
    loom_jw_init(&o.w, t->ctx, f);
    o.origin = INFINITY;
    for (int i = 0; i < t->nruns; i++)
        o.origin = fmin(o.origin, t->runs[i].ts);
    for (int i = 0; i < t->nctrs; i++)
        o.origin = fmin(o.origin, t->ctrs[i].ts);
    if (!isfinite(o.origin))
        o.origin = 0;
    loom_jw_begin_obj(&o.w);
    loom_jw_kstr(&o.w, "displayTimeUnit", "ns");
    loom_jw_key(&o.w, "traceEvents");
    loom_jw_begin_arr(&o.w);
    write_events(t, &o);
    loom_jw_end_arr(&o.w);
    write_other(t, &o);
    loom_jw_end_obj(&o.w);
    loom_jw_raw(&o.w, "\n");
    int ok = !o.w.oom && loom_jw_flush(&o.w);
    int e = errno;
    ok &= fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    int was_oom = o.w.oom;
    loom_jw_free(&o.w);
    if (!ok || rename(tmp, path) != 0) {
        if (ok)
            e = errno;
        remove(tmp);
        if (was_oom)
            return loom_fail(t->ctx, LOOM_E_OOM, "loom_trace_write %s: out of memory", path);
        return loom_fail(t->ctx, LOOM_E_IO, "loom_trace_write %s: %s", path, strerror(e));
    }
    return LOOM_OK;
}
