/* Loading a saved Chrome trace (from loom_trace_write) into the model:
 * the first device's counters, run rate and per-node totals. */
#include "dash.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRACE_MAX_BYTES (512L << 20)

int dash_is_trace(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    char b[256];
    size_t n = fread(b, 1, sizeof b - 1, f);
    fclose(f);
    b[n] = 0;
    const char *s = b;
    while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
        s++;
    if (*s == '[')
        return 1;
    if (*s != '{')
        return 0;
    s++;
    while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
        s++;
    return !strncmp(s, "\"traceEvents\"", 13) || !strncmp(s, "\"displayTimeUnit\"", 17) ||
           !strncmp(s, "\"otherData\"", 11);
}

char *dash_read_file(const char *path, long max, long *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open %s", path);
        return NULL;
    }
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        n = ftell(f);
    if (n < 0 || n > max || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        if (n < 0)
            snprintf(err, errlen, "%s: cannot read", path);
        else
            snprintf(err, errlen, "%s: larger than %ld MiB", path, max >> 20);
        return NULL;
    }
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        snprintf(err, errlen, "%s: cannot read", path);
        return NULL;
    }
    fclose(f);
    buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *sval(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) && v->valuestring ? v->valuestring : NULL;
}

static void add(dash_series *s, double x, double y)
{
    if (!isfinite(x) || !isfinite(y))
        return;
    if (s->n == s->cap) {
        int nc = s->cap ? s->cap * 2 : 256;
        double *nx = realloc(s->x, (size_t)nc * sizeof *nx);
        if (!nx)
            return;
        s->x = nx;
        double *ny = realloc(s->y, (size_t)nc * sizeof *ny);
        if (!ny)
            return;
        s->y = ny;
        s->cap = nc;
    }
    s->x[s->n] = x;
    s->y[s->n++] = y;
}

/* Insertion sort by x: trace events come per device in time order, so
 * this is near linear. */
static void sort_series(dash_series *s)
{
    for (int i = 1; i < s->n; i++) {
        double x = s->x[i], y = s->y[i];
        int j = i - 1;
        while (j >= 0 && s->x[j] > x) {
            s->x[j + 1] = s->x[j];
            s->y[j + 1] = s->y[j];
            j--;
        }
        s->x[j + 1] = x;
        s->y[j + 1] = y;
    }
}

typedef struct agg {
    char name[64], op[32];
    double total_us, flops, bytes;
    int64_t count;
} agg;

static int agg_desc(const void *a, const void *b)
{
    double x = ((const agg *)a)->total_us, y = ((const agg *)b)->total_us;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void load_other(dash_model *m, const cJSON *other)
{
    const cJSON *devs = cJSON_GetObjectItemCaseSensitive(other, "devices");
    m->ndevices = cJSON_IsArray(devs) ? cJSON_GetArraySize(devs) : 0;
    const cJSON *d = m->ndevices ? cJSON_GetArrayItem(devs, 0) : NULL;
    if (cJSON_IsObject(d)) {
        const char *v;
        if ((v = sval(d, "name")))
            snprintf(m->device, sizeof m->device, "%s", v);
        if ((v = sval(d, "vendor")))
            snprintf(m->vendor, sizeof m->vendor, "%s", v);
        if ((v = sval(d, "driver")))
            snprintf(m->driver, sizeof m->driver, "%s", v);
        if ((v = sval(d, "spec")))
            snprintf(m->spec, sizeof m->spec, "%s", v);
        m->have_header = 1;
    }
    const cJSON *plans = cJSON_GetObjectItemCaseSensitive(other, "plans"), *p;
    cJSON_ArrayForEach(p, plans)
    {
        if (m->nplans == DASH_MAX_PLANS || num(p, "pid") != 1)
            continue;
        dash_plan *pl = &m->plans[m->nplans];
        memset(pl, 0, sizeof *pl);
        const char *l = sval(p, "label");
        snprintf(pl->label, sizeof pl->label, "%s", l ? l : "program");
        pl->arena = num(p, "arena_bytes");
        pl->lower_bound = num(p, "lower_bound");
        pl->naive = num(p, "naive_bytes");
        pl->state_bytes = num(p, "state_bytes");
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(p, "live_bytes"), *e;
        int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
        pl->live = n ? malloc((size_t)n * sizeof *pl->live) : NULL;
        if (n && !pl->live)
            continue;
        cJSON_ArrayForEach(e, arr)
            pl->live[pl->nlive++] = cJSON_IsNumber(e) ? e->valuedouble : 0;
        m->nplans++;
    }
}

int dash_load_trace(dash_model *m, const char *path, char *err, size_t errlen)
{
    long len = 0;
    char *buf = dash_read_file(path, TRACE_MAX_BYTES, &len, err, errlen);
    if (!buf)
        return -1;
    cJSON *root = cJSON_ParseWithLength(buf, (size_t)len);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long off = at && at >= buf && at <= buf + len ? (long)(at - buf) : -1;
        snprintf(err, errlen, "%s: not JSON (parse error near byte %ld)", path, off);
        free(buf);
        return -1;
    }
    free(buf);
    const cJSON *events = cJSON_IsArray(root) ? root : cJSON_GetObjectItemCaseSensitive(root, "traceEvents");
    if (!cJSON_IsArray(events)) {
        snprintf(err, errlen, "%s: not a Chrome trace (no traceEvents array)", path);
        cJSON_Delete(root);
        return -1;
    }
    dash_model_free(m);
    m->from_trace = 1;
    if (!cJSON_IsArray(root))
        load_other(m, cJSON_GetObjectItemCaseSensitive(root, "otherData"));
    int nagg = 0, capagg = 0, samples_counter = 0;
    agg *ag = NULL;
    double prev_run = NAN;
    char run_label[64] = "";
    int in_first_kind = 0;      /* the nodes seen belong to a run of run_label */
    const cJSON *e;
    cJSON_ArrayForEach(e, events)
    {
        const char *ph = sval(e, "ph"), *name = sval(e, "name"), *cat = sval(e, "cat");
        double pid = num(e, "pid"), ts = num(e, "ts") / 1e6;
        if (!ph || !name || pid != 1)
            continue;
        m->lines++;
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(e, "args");
        if (!strcmp(ph, "C")) {
            double v = num(args, "value");
            int id = !strcmp(name, "busy %")                ? DS_BUSY
                     : !strcmp(name, "memory bytes")        ? DS_MEM
                     : !strcmp(name, "vendor util %")       ? DS_VENDOR_UTIL
                     : !strcmp(name, "vendor memory bytes") ? DS_VENDOR_MEM
                     : !strcmp(name, "engine %")            ? DS_ENGINE
                     : !strcmp(name, "loss")                ? DS_LOSS
                     : !strcmp(name, "accuracy")            ? DS_ACCURACY
                     : !strcmp(name, "samples/s")           ? DS_THROUGHPUT
                                                            : -1;
            if (id == DS_THROUGHPUT && !samples_counter) {
                samples_counter = 1;
                m->s[DS_THROUGHPUT].n = 0; /* a real rate replaces runs/s */
            }
            if (id >= 0)
                add(&m->s[id], ts, v);
        } else if (!strcmp(ph, "X") && cat && !strcmp(cat, "run")) {
            if (!run_label[0])
                snprintf(run_label, sizeof run_label, "%s", name);
            in_first_kind = !strcmp(run_label, name);
            if (!in_first_kind)
                continue; /* figures of the first kind of run (the train step) */
            m->ops_runs++;
            add(&m->s[DS_STEP_MS], ts, num(args, "wall_ms"));
            if (isfinite(prev_run) && ts > prev_run && !samples_counter)
                add(&m->s[DS_THROUGHPUT], ts, 1.0 / (ts - prev_run));
            prev_run = ts;
            double st = num(args, "step");
            if (isfinite(st))
                m->last_step = (int64_t)st;
            if (ts > m->last_time)
                m->last_time = ts;
        } else if (!strcmp(ph, "X") && cat && !strcmp(cat, "node") && in_first_kind) {
            int k = 0;
            while (k < nagg && strcmp(ag[k].name, name))
                k++;
            if (k == nagg) {
                if (nagg == capagg) {
                    int nc = capagg ? capagg * 2 : 64;
                    agg *na = realloc(ag, (size_t)nc * sizeof *na);
                    if (!na)
                        continue;
                    ag = na;
                    capagg = nc;
                }
                memset(&ag[k], 0, sizeof ag[k]);
                snprintf(ag[k].name, sizeof ag[k].name, "%s", name);
                const char *op = sval(args, "op");
                snprintf(ag[k].op, sizeof ag[k].op, "%s", op ? op : "?");
                nagg++;
            }
            double dur = num(e, "dur"), fl = num(args, "flops"), by = num(args, "bytes");
            ag[k].total_us += isfinite(dur) ? dur : 0;
            ag[k].flops += isfinite(fl) ? fl : 0;
            ag[k].bytes += isfinite(by) ? by : 0;
            ag[k].count++;
        }
    }
    if (nagg)
        qsort(ag, (size_t)nagg, sizeof *ag, agg_desc);
    for (int k = 0; k < nagg && m->nops < DASH_MAX_OPS; k++) {
        dash_op *o = &m->ops[m->nops++];
        memset(o, 0, sizeof *o);
        snprintf(o->name, sizeof o->name, "%s", ag[k].name);
        snprintf(o->op, sizeof o->op, "%s", ag[k].op);
        o->count = ag[k].count;
        o->total_ms = ag[k].total_us / 1e3;
        o->mean_us = ag[k].count ? ag[k].total_us / (double)ag[k].count : 0;
        o->gflops = ag[k].total_us > 0 ? ag[k].flops / (ag[k].total_us * 1e3) : 0;
        o->gbps = ag[k].total_us > 0 ? ag[k].bytes / (ag[k].total_us * 1e3) : 0;
    }
    free(ag);
    for (int i = 0; i < DS_COUNT; i++)
        sort_series(&m->s[i]);
    m->ended = 1;
    cJSON_Delete(root);
    return 0;
}
