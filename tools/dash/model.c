/* The dashboard's model: what the metrics lines (or a trace) say. */
#include "dash.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Past this many points a series keeps every other one, so a long run
 * costs bounded memory and drawing time. */
#define SERIES_MAX 40000

void dash_model_init(dash_model *m)
{
    memset(m, 0, sizeof *m);
    m->last_step = -1;
    m->last_epoch = -1;
}

void dash_model_free(dash_model *m)
{
    for (int i = 0; i < DS_COUNT; i++) {
        free(m->s[i].x);
        free(m->s[i].y);
    }
    for (int i = 0; i < m->nplans; i++)
        free(m->plans[i].live);
    dash_model_init(m);
}

static void series_add(dash_series *s, double x, double y)
{
    if (!isfinite(x) || !isfinite(y))
        return;
    if (s->n == SERIES_MAX) {
        int k = 0;
        for (int i = 0; i < s->n; i += 2, k++)
            s->x[k] = s->x[i], s->y[k] = s->y[i];
        s->n = k;
    }
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
    s->y[s->n] = y;
    s->n++;
}

double dash_series_last(const dash_series *s)
{
    return s->n ? s->y[s->n - 1] : NAN;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void str(const cJSON *o, const char *k, char *out, size_t n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsString(v) && v->valuestring)
        snprintf(out, n, "%s", v->valuestring);
}

static void apply_header(dash_model *m, const cJSON *o)
{
    if (m->lines > 1 && (m->s[DS_LOSS].n || m->s[DS_BUSY].n || m->nops)) {
        /* A second header: a new run appended to the same file. */
        int64_t lines = m->lines, bad = m->bad_lines;
        dash_model_free(m);
        m->lines = lines;
        m->bad_lines = bad;
    }
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "device");
    if (cJSON_IsObject(d)) {
        str(d, "name", m->device, sizeof m->device);
        str(d, "vendor", m->vendor, sizeof m->vendor);
        str(d, "driver", m->driver, sizeof m->driver);
        str(d, "spec", m->spec, sizeof m->spec);
        str(d, "backend", m->backend, sizeof m->backend);
    }
    str(o, "vendor_counters", m->vendor_source, sizeof m->vendor_source);
    m->have_header = 1;
}

static void apply_step(dash_model *m, const cJSON *o, double t)
{
    static const struct {
        const char *key;
        int id;
    } map[] = {
        {"samples_per_s", DS_THROUGHPUT}, {"busy_pct", DS_BUSY},   {"vendor_util_pct", DS_VENDOR_UTIL},
        {"engine_pct", DS_ENGINE},        {"mem_bytes", DS_MEM},   {"vendor_mem_used_bytes", DS_VENDOR_MEM},
        {"loss", DS_LOSS},                {"val_loss", DS_VAL_LOSS}, {"accuracy", DS_ACCURACY},
        {"val_accuracy", DS_VAL_ACCURACY}, {"step_ms", DS_STEP_MS},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        series_add(&m->s[map[i].id], t, num(o, map[i].key));
    double st = num(o, "step"), ep = num(o, "epoch");
    if (isfinite(st))
        m->last_step = (int64_t)st;
    if (isfinite(ep))
        m->last_epoch = (int64_t)ep;
}

static void apply_ops(dash_model *m, const cJSON *o)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "ops");
    if (!cJSON_IsArray(arr))
        return;
    m->nops = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        if (m->nops == DASH_MAX_OPS || !cJSON_IsObject(e))
            break;
        dash_op *op = &m->ops[m->nops];
        memset(op, 0, sizeof *op);
        str(e, "name", op->name, sizeof op->name);
        str(e, "op", op->op, sizeof op->op);
        double c = num(e, "count");
        op->count = isfinite(c) ? (int64_t)c : 0;
        op->total_ms = num(e, "total_ms");
        op->mean_us = num(e, "mean_us");
        op->gflops = num(e, "gflops");
        op->gbps = num(e, "gbps");
        if (isfinite(op->total_ms))
            m->nops++;
    }
    double r = num(o, "runs");
    m->ops_runs = isfinite(r) ? (int64_t)r : 0;
    m->ops_busy_pct = num(o, "busy_pct");
    m->ops_wall_ms = num(o, "wall_ms");
}

static void apply_plan(dash_model *m, const cJSON *o)
{
    char label[48] = "program";
    str(o, "label", label, sizeof label);
    int k = 0;
    while (k < m->nplans && strcmp(m->plans[k].label, label))
        k++;
    if (k == DASH_MAX_PLANS)
        return;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "live_bytes");
    int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
    double *live = n ? malloc((size_t)n * sizeof *live) : NULL;
    if (n && !live)
        return;
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
        live[i++] = cJSON_IsNumber(e) ? e->valuedouble : 0;
    dash_plan *p = &m->plans[k];
    if (k == m->nplans)
        m->nplans++;
    else
        free(p->live);
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    p->arena = num(o, "arena_bytes");
    p->lower_bound = num(o, "lower_bound");
    p->naive = num(o, "naive_bytes");
    p->state_bytes = num(o, "state_bytes");
    p->live = live;
    p->nlive = n;
}

int dash_model_line(dash_model *m, const char *line, size_t len)
{
    while (len && (line[0] == ' ' || line[0] == '\t'))
        line++, len--;
    if (len == 0)
        return 1; /* a blank line is harmless */
    m->lines++;
    cJSON *o = cJSON_ParseWithLength(line, len);
    const cJSON *type = o ? cJSON_GetObjectItemCaseSensitive(o, "type") : NULL;
    if (!cJSON_IsObject(o) || !cJSON_IsString(type)) {
        cJSON_Delete(o);
        m->bad_lines++;
        return 0;
    }
    double t = num(o, "time");
    if (isfinite(t) && t > m->last_time)
        m->last_time = t;
    const char *ty = type->valuestring;
    if (!strcmp(ty, "header"))
        apply_header(m, o);
    else if (!strcmp(ty, "step"))
        apply_step(m, o, isfinite(t) ? t : m->last_time);
    else if (!strcmp(ty, "ops"))
        apply_ops(m, o);
    else if (!strcmp(ty, "plan"))
        apply_plan(m, o);
    else if (!strcmp(ty, "end"))
        m->ended = 1;
    else
        m->other_lines++; /* a newer schema's line: ignored */
    cJSON_Delete(o);
    return 1;
}

void dash_model_line_cb(void *user, const char *line, size_t len)
{
    dash_model_line(user, line, len);
}
