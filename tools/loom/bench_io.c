/* loom bench output: the terminal table (devices as columns), the JSON
 * record and the comparison against a baseline. */
#include "bench.h"
#include "loom_commit.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *type_names[] = {"discrete", "integrated", "virtual", "cpu", "other"};
static const char *backend_names[] = {"cpu", "vulkan", "opencl"};

void bench_add_device(bench_run *r, const loom_device_info *d)
{
    if (r->ndevs == BENCH_MAX_DEVS)
        return;
    bench_dev *b = &r->devs[r->ndevs++];
    snprintf(b->spec, sizeof b->spec, "%s", d->spec);
    snprintf(b->name, sizeof b->name, "%s", d->name);
    snprintf(b->backend, sizeof b->backend, "%s", backend_names[d->backend % 3]);
    snprintf(b->vendor, sizeof b->vendor, "%s", d->vendor);
    snprintf(b->driver, sizeof b->driver, "%s", d->driver);
    snprintf(b->api, sizeof b->api, "%s", d->api_version);
    snprintf(b->uuid, sizeof b->uuid, "%s", d->uuid);
    snprintf(b->type, sizeof b->type, "%s", type_names[d->type <= LOOM_DEVICE_OTHER ? d->type : 4]);
}

/* Columns: every device of the run, then the references seen. */
static int columns(const bench_run *r, const char *cols[32])
{
    int n = 0;
    for (int i = 0; i < r->ndevs && n < 32; i++)
        cols[n++] = r->devs[i].spec;
    for (int i = 0; i < r->nfigs && n < 32; i++) {
        int seen = 0;
        for (int k = 0; k < n; k++)
            seen |= !strcmp(cols[k], r->figs[i].device);
        if (!seen)
            cols[n++] = r->figs[i].device;
    }
    return n;
}

static const bench_fig *find(const bench_run *r, const char *dev, const char *suite, const char *name)
{
    for (int i = 0; i < r->nfigs; i++)
        if (!strcmp(r->figs[i].device, dev) && !strcmp(r->figs[i].suite, suite) && !strcmp(r->figs[i].name, name))
            return &r->figs[i];
    return NULL;
}

void bench_print(const bench_run *r, FILE *f)
{
    const char *cols[32];
    int nc = columns(r, cols);
    fprintf(f, "\nloom bench %s%s\n", r->quick ? "(quick) " : "", r->date);
    for (int i = 0; i < r->ndevs; i++)
        fprintf(f, "  %-10s %s | %s | %s\n", r->devs[i].spec, r->devs[i].name, r->devs[i].driver, r->devs[i].api);
    fprintf(f, "\n%-44s %-9s", "figure (median; ratio to the reference)", "unit");
    for (int c = 0; c < nc; c++)
        fprintf(f, " %20s", cols[c]);
    fprintf(f, "\n");
    for (int i = 0; i < r->nfigs; i++) {
        const bench_fig *x = &r->figs[i];
        /* one row per (suite, name), at its first appearance */
        int first = 1;
        for (int k = 0; k < i && first; k++)
            first = strcmp(r->figs[k].suite, x->suite) || strcmp(r->figs[k].name, x->name);
        if (!first)
            continue;
        char label[64];
        snprintf(label, sizeof label, "%s: %s", x->suite, x->name);
        fprintf(f, "%-44.44s %-9s", label, x->unit);
        for (int c = 0; c < nc; c++) {
            const bench_fig *y = find(r, cols[c], x->suite, x->name);
            char cell[64];
            if (!y)
                snprintf(cell, sizeof cell, "-");
            else if (!y->correct)
                snprintf(cell, sizeof cell, "WRONG");
            else if (!isnan(y->ratio))
                snprintf(cell, sizeof cell, "%.4g (%.2fx)", y->median, y->ratio);
            else
                snprintf(cell, sizeof cell, "%.4g", y->median);
            fprintf(f, " %20s", cell);
        }
        fprintf(f, "\n");
    }
    fprintf(f, "\nratios: gemm to OpenBLAS (OpenCL devices: to CLBlast's defaults, clblast:N), copy to memcpy, in this run; WRONG: the device's result differs "
               "from the CPU reference (not ranked)\n");
}

static void now_iso(char *buf, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void cpu_model(char *buf, size_t n)
{
    snprintf(buf, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) {
                c += 2;
                c[strcspn(c, "\n")] = 0;
                snprintf(buf, n, "%s", c);
            }
            break;
        }
    fclose(f);
}

static cJSON *num_or_null(double v)
{
    return isnan(v) || isinf(v) ? cJSON_CreateNull() : cJSON_CreateNumber(v);
}

int bench_save(bench_run *r, const char *path)
{
    if (!r->date[0])
        now_iso(r->date, sizeof r->date);
    if (!r->version[0])
        snprintf(r->version, sizeof r->version, "%s", loom_version_string());
    if (!r->commit[0])
        snprintf(r->commit, sizeof r->commit, "%s", LOOM_COMMIT);
    if (!r->cpu[0])
        cpu_model(r->cpu, sizeof r->cpu);
    if (!r->host[0] && gethostname(r->host, sizeof r->host) != 0)
        snprintf(r->host, sizeof r->host, "unknown");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "schema", 1);
    cJSON_AddStringToObject(o, "loom_version", r->version);
    cJSON_AddStringToObject(o, "commit", r->commit);
    cJSON_AddStringToObject(o, "date", r->date);
    cJSON_AddStringToObject(o, "cpu_model", r->cpu);
    cJSON_AddStringToObject(o, "hostname", r->host);
    cJSON_AddBoolToObject(o, "quick", r->quick);
    cJSON *devs = cJSON_AddArrayToObject(o, "devices");
    for (int i = 0; i < r->ndevs; i++) {
        const bench_dev *d = &r->devs[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "spec", d->spec);
        cJSON_AddStringToObject(x, "name", d->name);
        cJSON_AddStringToObject(x, "backend", d->backend);
        cJSON_AddStringToObject(x, "vendor", d->vendor);
        cJSON_AddStringToObject(x, "driver", d->driver);
        cJSON_AddStringToObject(x, "api_version", d->api);
        cJSON_AddStringToObject(x, "uuid", d->uuid);
        cJSON_AddStringToObject(x, "type", d->type);
        cJSON_AddItemToArray(devs, x);
    }
    cJSON *res = cJSON_AddArrayToObject(o, "results");
    for (int i = 0; i < r->nfigs; i++) {
        const bench_fig *x = &r->figs[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "device", x->device);
        cJSON_AddStringToObject(j, "suite", x->suite);
        cJSON_AddStringToObject(j, "name", x->name);
        cJSON_AddStringToObject(j, "unit", x->unit);
        cJSON_AddBoolToObject(j, "higher_is_better", x->hib);
        cJSON_AddItemToObject(j, "median", num_or_null(x->median));
        cJSON_AddItemToObject(j, "min", num_or_null(x->min));
        cJSON_AddItemToObject(j, "max", num_or_null(x->max));
        cJSON_AddNumberToObject(j, "runs", x->runs);
        cJSON_AddBoolToObject(j, "correct", x->correct);
        if (x->ref_name[0])
            cJSON_AddStringToObject(j, "ref_name", x->ref_name);
        else
            cJSON_AddNullToObject(j, "ref_name");
        cJSON_AddItemToObject(j, "ref_median", num_or_null(x->ref_median));
        cJSON_AddItemToObject(j, "ratio", num_or_null(x->ratio));
        if (x->extra_name[0])
            cJSON_AddItemToObject(j, x->extra_name, num_or_null(x->extra));
        cJSON_AddItemToArray(res, j);
    }
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    if (!s)
        return -1;
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    int ok = f && fputs(s, f) >= 0 && fputc('\n', f) != EOF;
    ok = f && fclose(f) == 0 && ok;
    free(s);
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return -1;
    }
    return 0;
}

static void str(const cJSON *o, const char *k, char *dst, size_t n)
{
    const char *v = cJSON_GetStringValue(cJSON_GetObjectItem(o, k));
    snprintf(dst, n, "%s", v ? v : "");
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

int bench_load(const char *path, bench_run *r)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n > 0 ? malloc((size_t)n + 1) : NULL;
    int ok = buf && fread(buf, 1, (size_t)n, f) == (size_t)n;
    fclose(f);
    if (!ok) {
        free(buf);
        return -1;
    }
    buf[n] = 0;
    cJSON *o = cJSON_Parse(buf);
    free(buf);
    const cJSON *res = o ? cJSON_GetObjectItem(o, "results") : NULL;
    if (!cJSON_IsArray(res)) {
        cJSON_Delete(o);
        return -1;
    }
    memset(r, 0, sizeof *r);
    str(o, "loom_version", r->version, sizeof r->version);
    str(o, "commit", r->commit, sizeof r->commit);
    str(o, "date", r->date, sizeof r->date);
    str(o, "cpu_model", r->cpu, sizeof r->cpu);
    str(o, "hostname", r->host, sizeof r->host);
    r->quick = cJSON_IsTrue(cJSON_GetObjectItem(o, "quick"));
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItem(o, "devices"))
    {
        if (r->ndevs == BENCH_MAX_DEVS)
            break;
        bench_dev *b = &r->devs[r->ndevs++];
        str(d, "spec", b->spec, sizeof b->spec);
        str(d, "name", b->name, sizeof b->name);
        str(d, "backend", b->backend, sizeof b->backend);
        str(d, "vendor", b->vendor, sizeof b->vendor);
        str(d, "driver", b->driver, sizeof b->driver);
        str(d, "api_version", b->api, sizeof b->api);
        str(d, "uuid", b->uuid, sizeof b->uuid);
        str(d, "type", b->type, sizeof b->type);
    }
    const cJSON *x;
    cJSON_ArrayForEach(x, res)
    {
        if (r->nfigs == BENCH_MAX_FIGS)
            break;
        bench_fig *g = &r->figs[r->nfigs++];
        memset(g, 0, sizeof *g);
        str(x, "device", g->device, sizeof g->device);
        str(x, "suite", g->suite, sizeof g->suite);
        str(x, "name", g->name, sizeof g->name);
        str(x, "unit", g->unit, sizeof g->unit);
        str(x, "ref_name", g->ref_name, sizeof g->ref_name);
        g->hib = cJSON_IsTrue(cJSON_GetObjectItem(x, "higher_is_better"));
        g->median = num(x, "median");
        g->min = num(x, "min");
        g->max = num(x, "max");
        g->runs = (int)num(x, "runs");
        g->correct = !cJSON_IsFalse(cJSON_GetObjectItem(x, "correct"));
        g->ref_median = num(x, "ref_median");
        g->ratio = num(x, "ratio");
    }
    cJSON_Delete(o);
    return 0;
}

static double spread(const bench_fig *f)
{
    return f && f->median > 0 && !isnan(f->min) && !isnan(f->max) ? (f->max - f->min) / f->median : 0;
}

/* A reference measured in the run (openblas, memcpy, clblast:N) is written
 * as a figure of a "device" the run's device list does not have. */
static int is_reference(const bench_run *r, const char *dev)
{
    for (int i = 0; i < r->ndevs; i++)
        if (!strcmp(r->devs[i].spec, dev))
            return 0;
    /* a saved run without its device list: the references' own names */
    return r->ndevs > 0 || !strcmp(dev, "openblas") || !strcmp(dev, "memcpy") || !strncmp(dev, "clblast:", 8);
}

/* The reference row a figure's ratio was taken to, or NULL. */
static const bench_fig *ref_row(const bench_run *r, const bench_fig *f)
{
    char dev[48] = "";
    if (!strcmp(f->ref_name, "OpenBLAS"))
        snprintf(dev, sizeof dev, "openblas");
    else if (!strcmp(f->ref_name, "memcpy"))
        snprintf(dev, sizeof dev, "memcpy");
    else if (!strcmp(f->ref_name, "CLBlast default") && !strncmp(f->device, "opencl:", 7))
        snprintf(dev, sizeof dev, "clblast:%.30s", f->device + 7);
    if (!dev[0])
        return NULL;
    for (int i = 0; i < r->nfigs; i++)
        if (!strcmp(r->figs[i].device, dev) && !strcmp(r->figs[i].suite, f->suite))
            if (!strcmp(dev, "memcpy") || !strcmp(r->figs[i].name, f->name))
                return &r->figs[i];
    return NULL;
}

int bench_compare(const bench_run *base, const bench_run *cur, FILE *f)
{
    /* How far the machine itself moved between the runs: the largest change
     * of a reference (OpenBLAS, memcpy) measured in both. loom's figures
     * without a reference of their own are judged against it. */
    double drift = 0;
    for (int i = 0; i < cur->nfigs; i++) {
        const bench_fig *c = &cur->figs[i];
        const bench_fig *b = find(base, c->device, c->suite, c->name);
        if (b && is_reference(cur, c->device) && b->median > 0 && c->median > 0)
            drift = fmax(drift, fabs(c->median - b->median) / b->median);
    }
    int regressions = 0;
    fprintf(f, "\ncompared with %s (%s, %s)\n%-12s %-44s %12s %12s %9s\n", base->date, base->commit, base->host,
            "device", "figure", "baseline", "now", "change");
    for (int i = 0; i < cur->nfigs; i++) {
        const bench_fig *c = &cur->figs[i];
        const bench_fig *b = find(base, c->device, c->suite, c->name);
        if (!b || !(b->median > 0) || isnan(c->median))
            continue;
        double change = (c->median - b->median) / b->median, worse, noise;
        const char *how = "";
        int ref = is_reference(cur, c->device);
        if (!isnan(b->ratio) && !isnan(c->ratio) && b->ratio > 0) {
            /* Judged by the ratio to the reference measured beside it: the
             * machine's own speed cancels. Its noise is the spread of both. */
            double rc = (c->ratio - b->ratio) / b->ratio;
            worse = c->hib ? -rc : rc;
            noise = fmax(spread(b) + spread(ref_row(base, b)), spread(c) + spread(ref_row(cur, c)));
            how = " (ratio)";
        } else {
            worse = c->hib ? -change : change;
            noise = fmax(fmax(spread(b), spread(c)), drift);
        }
        noise = fmax(noise, 0.05);
        /* a reference is not loom's figure: its change is the drift, shown */
        int reg = !ref && (worse > noise || (b->correct && !c->correct));
        regressions += reg;
        char label[64];
        snprintf(label, sizeof label, "%s: %s", c->suite, c->name);
        fprintf(f, "%-12s %-44.44s %12.4g %12.4g %+8.1f%%%s%s\n", c->device, label, b->median, c->median,
                change * 100.0, ref ? "  (reference)" : how,
                reg ? (c->correct ? "  REGRESSION" : "  REGRESSION (WRONG)") : "");
    }
    fprintf(f,
            "%d regression%s beyond the noise (figures with a reference: their ratio to it, against both runs' "
            "spread; the others: against the larger of both runs' min-max spread, the references' drift "
            "between the runs (%.1f%%), and 5%%)\n",
            regressions, regressions == 1 ? "" : "s", drift * 100.0);
    return regressions;
}
