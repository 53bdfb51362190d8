/*
 * The profiler: per-node device time folded over runs, FLOPs and bytes from
 * shapes, busy time as the union of node intervals, memory from the planner
 * and the state. The backends only supply timestamps (backend.h); this file
 * turns them into statistics. loom_program_run calls loom_profile_record
 * only for programs compiled with profile = 1, so profiling off costs one
 * branch per run.
 *
 * The metrics stream (profile_metrics.c) is JSON Lines, schema 1. Each line
 * is one object with a "type" and "time" (seconds since the stream opened,
 * CLOCK_MONOTONIC). A value the run does not have is null, never 0.
 *
 *   {"type":"header","schema":1,"loom":"0.1.0","unix_time":1712345678.25,
 *    "device":{"spec":"cpu","name":"...","vendor":"host","driver":"...",
 *              "backend":"cpu","type":"cpu","memory_bytes":16777216000},
 *    "vendor_counters":"nvml"}            (source that answered, "" if none)
 *   {"type":"step","time":1.5,"step":100,"epoch":0,"loss":0.61,
 *    "accuracy":0.78,"val_loss":null,"val_accuracy":null,"lr":0.001,
 *    "samples_per_s":5321.4,"step_ms":12.0,"busy_pct":97.2,
 *    "vendor_util_pct":null,"engine_pct":null,"mem_bytes":1234567,
 *    "state_bytes":1000000,"arena_bytes":234567,
 *    "vendor_mem_used_bytes":null}
 *   {"type":"ops","time":1.5,"step":100,"runs":100,"wall_ms":12.0,
 *    "busy_pct":97.2,"omitted":0,
 *    "ops":[{"name":"matmul_7","op":"matmul","shape":"[64,128]","count":100,
 *            "total_ms":310.2,"mean_us":3102,"min_us":2950,"max_us":4012,
 *            "flops":12845056,"bytes":466944,"gflops":4.14,"gbps":0.15}, ...]}
 *      (the 32 nodes with the most device time, largest first)
 *   {"type":"plan","time":0.01,"label":"train","arena_bytes":409600,
 *    "lower_bound":401408,"naive_bytes":1220608,"state_bytes":1000000,
 *    "inplace":3,"live_bytes":[200704,233472, ...]}   (one per node step)
 *   {"type":"end","time":60.2,"lines":6021}
 *
 * Each line is written with one write(2) on an O_APPEND descriptor, so a
 * follower sees whole lines except while one is in flight; it must keep a
 * trailing fragment without a newline until the rest arrives.
 */
#include "profile.h"
#include "program.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct span {
    double a, b;
} span;

typedef struct loom_profile_data {
    int n;
    loom_profile_node *nodes;
    char (*shapes)[48];
    double *t0, *t1;           /* the backend's timestamps of the last run */
    span *spans;               /* scratch for the union */
    int64_t runs, timed_runs;
    double wall_total, wall_min, wall_max, wall_last, last_start;
    double wall_timed;         /* wall time of the timed runs only */
    double device_total, busy_total, busy_last;
    int last_timed;
    int warned;
} loom_profile_data;

static double tensor_bytes(const loom_exec_tensor *t)
{
    return (double)t->node->numel * (double)loom_dtype_size(t->node->dtype);
}

/* FLOPs from the op table: its cost function, or its arithmetic per output
 * element (a transcendental counts as one); bytes are every input read once
 * and the output (or, for updates, each input they write back) written once. */
void loom_profile_cost(const loom_exec_node *x, double *flops, double *bytes)
{
    const loom_op_def *def = x->def;
    double in_bytes = 0, out_bytes = x->out ? tensor_bytes(x->out) : 0;
    for (int k = 0; k < x->nin; k++) {
        in_bytes += tensor_bytes(x->in[k]);
        if (!x->out && k < 8 && (def->writes >> k) & 1)
            out_bytes += tensor_bytes(x->in[k]);
    }
    *flops = def->cost ? def->cost(x) : (double)def->flops * (double)x->node->numel;
    *bytes = in_bytes + out_bytes;
}

static loom_profile_data *prof_ensure(loom_program *p)
{
    if (p->prof)
        return p->prof;
    loom_ctx *ctx = p->ctx;
    int n = p->nexec;
    size_t cap = (size_t)(n ? n : 1);
    loom_profile_data *d = loom_calloc(ctx, 1, sizeof *d);
    if (!d)
        return NULL;
    d->n = n;
    d->nodes = loom_calloc(ctx, cap, sizeof *d->nodes);
    d->shapes = loom_calloc(ctx, cap, sizeof *d->shapes);
    d->t0 = loom_calloc(ctx, cap, sizeof *d->t0);
    d->t1 = loom_calloc(ctx, cap, sizeof *d->t1);
    d->spans = loom_calloc(ctx, cap, sizeof *d->spans);
    p->prof = d;
    if (!d->nodes || !d->shapes || !d->t0 || !d->t1 || !d->spans) {
        loom_profile_free(p);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        const loom_exec_node *x = &p->exec[i];
        loom_profile_node *e = &d->nodes[i];
        e->name = x->node->name;
        e->op = loom_op_name(x->node->op);
        if (x->out)
            loom_shape_str(d->shapes[i], sizeof d->shapes[i], x->node->ndim, x->node->shape);
        else
            snprintf(d->shapes[i], sizeof d->shapes[i], "-");
        e->shape = d->shapes[i];
        loom_profile_cost(x, &e->flops, &e->bytes);
    }
    return d;
}

void loom_profile_free(loom_program *p)
{
    loom_profile_data *d = p->prof;
    if (!d)
        return;
    loom_ctx *ctx = p->ctx;
    size_t cap = (size_t)(d->n ? d->n : 1);
    loom_free(ctx, d->nodes, cap * sizeof *d->nodes);
    loom_free(ctx, d->shapes, cap * sizeof *d->shapes);
    loom_free(ctx, d->t0, cap * sizeof *d->t0);
    loom_free(ctx, d->t1, cap * sizeof *d->t1);
    loom_free(ctx, d->spans, cap * sizeof *d->spans);
    loom_free(ctx, d, sizeof *d);
    p->prof = NULL;
}

static int span_cmp(const void *x, const void *y)
{
    const span *a = x, *b = y;
    return a->a < b->a ? -1 : a->a > b->a;
}

/* Length of the union of the spans, each clipped to [lo, hi]. */
static double union_length(span *s, int n, double lo, double hi)
{
    int m = 0;
    for (int i = 0; i < n; i++) {
        double a = s[i].a < lo ? lo : s[i].a, b = s[i].b > hi ? hi : s[i].b;
        if (b > a)
            s[m++] = (span){a, b};
    }
    qsort(s, (size_t)m, sizeof *s, span_cmp);
    double total = 0, ca = 0, cb = 0;
    int open = 0;
    for (int i = 0; i < m; i++) {
        if (open && s[i].a <= cb) {
            if (s[i].b > cb)
                cb = s[i].b;
            continue;
        }
        if (open)
            total += cb - ca;
        ca = s[i].a, cb = s[i].b, open = 1;
    }
    if (open)
        total += cb - ca;
    return total;
}

void loom_profile_record(loom_program *p, double t0_ns)
{
    loom_profile_data *d = prof_ensure(p);
    if (!d) {
        loom_logf(p->ctx, LOOM_LOG_WARN, "profiler on %s: out of memory, run not recorded", p->dev->info.spec);
        return;
    }
    double wall = p->last_run_ns;
    if (d->runs == 0 || wall < d->wall_min)
        d->wall_min = wall;
    if (wall > d->wall_max)
        d->wall_max = wall;
    d->runs++;
    d->wall_total += wall;
    d->wall_last = wall;
    d->last_start = t0_ns;
    d->last_timed = 0;
    const loom_backend_ops *ops = p->dev->ops;
    if (d->n > 0) {
        if (!ops->timestamps)
            return;
        loom_status s = ops->timestamps(p->bprog, d->t0, d->t1, d->n);
        if (s != LOOM_OK) {
            if (!d->warned)
                loom_logf(p->ctx, LOOM_LOG_WARN, "profiler on %s: the %s backend gave no timestamps (%s)",
                          p->dev->info.spec, ops->name, loom_status_str(s));
            d->warned = 1;
            return;
        }
    }
    for (int i = 0; i < d->n; i++) {
        loom_profile_node *e = &d->nodes[i];
        double dur = d->t1[i] - d->t0[i];
        if (!(dur > 0))
            dur = 0;
        if (e->count == 0 || dur < e->min_ns)
            e->min_ns = dur;
        if (dur > e->max_ns)
            e->max_ns = dur;
        e->count++;
        e->total_ns += dur;
        e->mean_ns = e->total_ns / (double)e->count;
        e->last_start_ns = d->t0[i];
        e->last_end_ns = d->t0[i] + dur;
        e->gflops = e->total_ns > 0 ? e->flops * (double)e->count / e->total_ns : 0;
        e->gbps = e->total_ns > 0 ? e->bytes * (double)e->count / e->total_ns : 0;
        d->device_total += dur;
        d->spans[i] = (span){d->t0[i], d->t0[i] + dur};
    }
    d->busy_last = union_length(d->spans, d->n, t0_ns, t0_ns + wall);
    d->busy_total += d->busy_last;
    d->wall_timed += wall;
    d->timed_runs++;
    d->last_timed = 1;
}

static int valid(const loom_program *p)
{
    return p && p->magic == LOOM_PROGRAM_MAGIC;
}

loom_status loom_profile_get(loom_program *p, loom_profile_report *out)
{
    if (!valid(p) || !out)
        return LOOM_E_INVALID;
    memset(out, 0, sizeof *out);
    loom_profile_data *d = prof_ensure(p);
    if (!d)
        return loom_fail(p->ctx, LOOM_E_OOM, "loom_profile_get on %s: out of memory for %d nodes",
                         p->dev->info.spec, p->nexec);
    out->enabled = p->profile;
    out->runs = d->runs;
    out->timed = d->runs > 0 && d->timed_runs == d->runs;
    out->wall_total_ns = d->wall_total;
    out->wall_mean_ns = d->runs ? d->wall_total / (double)d->runs : 0;
    out->wall_min_ns = d->wall_min;
    out->wall_max_ns = d->wall_max;
    out->wall_last_ns = d->wall_last;
    out->last_start_ns = d->last_start;
    out->device_total_ns = d->device_total;
    out->busy_total_ns = d->busy_total;
    out->busy_pct = d->timed_runs && d->wall_timed > 0 ? 100.0 * d->busy_total / d->wall_timed : -1;
    out->busy_last_pct = d->last_timed && d->wall_last > 0 ? 100.0 * d->busy_last / d->wall_last : -1;
    if (d->timed_runs && !(d->wall_timed > 0))
        out->busy_pct = 0;
    if (d->last_timed && !(d->wall_last > 0))
        out->busy_last_pct = 0;
    for (int i = 0; i < d->n; i++) {
        out->flops_per_run += d->nodes[i].flops;
        out->bytes_per_run += d->nodes[i].bytes;
    }
    out->gflops = d->busy_total > 0 ? out->flops_per_run * (double)d->timed_runs / d->busy_total : 0;
    if (p->st)
        for (int i = 0; i < p->st->n; i++)
            out->state_bytes += p->st->e[i].bytes;
    out->arena_bytes = p->plan.arena_bytes;
    out->mem_bytes = out->state_bytes + out->arena_bytes;
    out->nnodes = d->n;
    loom_plan_report pr;
    out->dispatches = loom_program_plan(p, &pr) == LOOM_OK ? pr.dispatches : d->n;
    out->nodes = d->nodes;
    return LOOM_OK;
}

loom_status loom_profile_reset(loom_program *p)
{
    if (!valid(p))
        return LOOM_E_INVALID;
    loom_profile_data *d = p->prof;
    if (!d)
        return LOOM_OK;
    for (int i = 0; i < d->n; i++) {
        loom_profile_node *e = &d->nodes[i];
        e->count = 0;
        e->total_ns = e->mean_ns = e->min_ns = e->max_ns = 0;
        e->last_start_ns = e->last_end_ns = e->gflops = e->gbps = 0;
    }
    d->runs = d->timed_runs = 0;
    d->wall_total = d->wall_min = d->wall_max = d->wall_last = d->last_start = 0;
    d->wall_timed = d->device_total = d->busy_total = d->busy_last = 0;
    d->last_timed = 0;
    return LOOM_OK;
}
