/* Reading `loom bench --json` results files into the bench view's model.
 * A file is all or nothing: one that is not a results file leaves the
 * model as it was and says why. */
#include "bench.h"
#include "dash.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_MAX_BYTES (64L << 20)

static const char *const known_suites[] = {"gemm", "bandwidth", "dispatch", "train", "infer", "startup"};
#define NKNOWN ((int)(sizeof known_suites / sizeof known_suites[0]))

void dash_bench_init(dash_bench *b)
{
    memset(b, 0, sizeof *b);
}

void dash_bench_free(dash_bench *b)
{
    free(b->res);
    dash_bench_init(b);
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) ? v->valuedouble : NAN;
}

static void str(char *dst, size_t n, const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    snprintf(dst, n, "%s", cJSON_IsString(v) && v->valuestring ? v->valuestring : "");
}

/* Booleans as JSON has them; a missing key takes def. */
static int flag(const cJSON *o, const char *k, int def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v);
    return def;
}

static int column_of(dash_bench *b, int file, const char *spec)
{
    for (int i = 0; i < b->ncols; i++)
        if (b->cols[i].file == file && !strcmp(b->cols[i].spec, spec))
            return i;
    if (b->ncols == DASH_BENCH_MAX_COLUMNS)
        return -1;
    dash_bench_column *c = &b->cols[b->ncols];
    memset(c, 0, sizeof *c);
    c->file = file;
    snprintf(c->spec, sizeof c->spec, "%s", spec);
    return b->ncols++;
}

int dash_bench_load(dash_bench *b, const char *path, char *err, size_t errlen)
{
    if (b->nfiles == DASH_BENCH_MAX_FILES) {
        snprintf(err, errlen, "%s: at most %d results files at a time", path, DASH_BENCH_MAX_FILES);
        return -1;
    }
    char *text = dash_read_file(path, BENCH_MAX_BYTES, NULL, err, errlen);
    if (!text)
        return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *results = cJSON_GetObjectItemCaseSensitive(root, "results");
    const cJSON *devices = cJSON_GetObjectItemCaseSensitive(root, "devices");
    double schema = num(root, "schema");
    int rc = -1;
    if (!root) {
        snprintf(err, errlen, "%s: not JSON", path);
        goto out;
    }
    if (!cJSON_IsObject(root) || !cJSON_IsArray(results)) {
        snprintf(err, errlen, "%s: not a loom bench results file (no \"results\" array)", path);
        goto out;
    }
    if (!isnan(schema) && schema != 1) {
        snprintf(err, errlen, "%s: results schema %g; this loom-dash reads schema 1", path, schema);
        goto out;
    }
    if (cJSON_GetArraySize(results) == 0) {
        snprintf(err, errlen, "%s: no results", path);
        goto out;
    }

    /* Work on a copy so a file that fails half-way leaves b untouched. */
    dash_bench nb = *b;
    int fi = nb.nfiles++;
    dash_bench_file *f = &nb.files[fi];
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path);
    str(f->hostname, sizeof f->hostname, root, "hostname");
    str(f->cpu_model, sizeof f->cpu_model, root, "cpu_model");
    str(f->version, sizeof f->version, root, "loom_version");
    str(f->commit, sizeof f->commit, root, "commit");
    str(f->date, sizeof f->date, root, "date");
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "quick");
    f->quick = cJSON_IsBool(q) ? cJSON_IsTrue(q) : -1;

    int listed_devices = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, devices)
    {
        char spec[32];
        str(spec, sizeof spec, d, "spec");
        if (!spec[0])
            continue;
        int c = column_of(&nb, fi, spec);
        if (c < 0) {
            snprintf(err, errlen, "%s: more than %d devices in all", path, DASH_BENCH_MAX_COLUMNS);
            goto out;
        }
        str(nb.cols[c].name, sizeof nb.cols[c].name, d, "name");
        str(nb.cols[c].backend, sizeof nb.cols[c].backend, d, "backend");
        str(nb.cols[c].driver, sizeof nb.cols[c].driver, d, "driver");
        listed_devices++;
    }
    int first_new = nb.ncols;

    int n = cJSON_GetArraySize(results);
    dash_bench_result *res = malloc(sizeof *res * (size_t)(b->nres + n));
    if (!res) {
        snprintf(err, errlen, "%s: out of memory for %d results", path, n);
        goto out;
    }
    if (b->nres)
        memcpy(res, b->res, sizeof *res * (size_t)b->nres);
    nb.res = res;
    nb.cap = b->nres + n;
    nb.nres = b->nres;
    const cJSON *r;
    cJSON_ArrayForEach(r, results)
    {
        dash_bench_result x;
        memset(&x, 0, sizeof x);
        char spec[32];
        str(spec, sizeof spec, r, "device");
        str(x.suite, sizeof x.suite, r, "suite");
        str(x.name, sizeof x.name, r, "name");
        str(x.unit, sizeof x.unit, r, "unit");
        str(x.ref_name, sizeof x.ref_name, r, "ref_name");
        x.higher_is_better = flag(r, "higher_is_better", 1);
        x.correct = flag(r, "correct", 1);
        x.median = num(r, "median");
        x.min = num(r, "min");
        x.max = num(r, "max");
        x.ref_median = num(r, "ref_median");
        x.ratio = num(r, "ratio");
        double runs = num(r, "runs");
        x.runs = isnan(runs) ? 0 : (int)runs;
        if (isnan(x.ratio) && !isnan(x.ref_median) && x.ref_median > 0 && !isnan(x.median))
            x.ratio = x.higher_is_better ? x.median / x.ref_median : x.ref_median / x.median;
        /* A WRONG result is shown even without a figure; a correct one
         * needs its figure. */
        if (!cJSON_IsObject(r) || !spec[0] || !x.suite[0] || !x.name[0] || (x.correct && isnan(x.median))) {
            nb.skipped++;
            continue;
        }
        x.column = column_of(&nb, fi, spec);
        if (x.column < 0) {
            free(res);
            snprintf(err, errlen, "%s: more than %d devices in all", path, DASH_BENCH_MAX_COLUMNS);
            goto out;
        }
        /* a column the devices list does not name holds a reference */
        if (x.column >= first_new && listed_devices)
            nb.cols[x.column].reference = 1;
        nb.res[nb.nres++] = x;
    }
    if (nb.nres == b->nres) {
        free(res);
        snprintf(err, errlen, "%s: no usable results (%d without a device, suite, name or figure)", path,
                 nb.skipped - b->skipped);
        goto out;
    }
    free(b->res);
    *b = nb;
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

void dash_bench_label(dash_bench *b)
{
    for (int i = 0; i < b->ncols; i++) {
        dash_bench_column *c = &b->cols[i];
        const dash_bench_file *f = &b->files[c->file];
        if (b->nfiles < 2) {
            snprintf(c->label, sizeof c->label, "%s", c->spec);
            continue;
        }
        int shared = !f->hostname[0];
        for (int k = 0; k < b->nfiles && !shared; k++)
            shared = k != c->file && !strcmp(b->files[k].hostname, f->hostname);
        if (!shared) {
            snprintf(c->label, sizeof c->label, "%s %s", f->hostname, c->spec);
            continue;
        }
        /* the file's name without directory and .json */
        const char *base = strrchr(f->path, '/');
        base = base ? base + 1 : f->path;
        int len = (int)strlen(base);
        if (len > 5 && !strcmp(base + len - 5, ".json"))
            len -= 5;
        snprintf(c->label, sizeof c->label, "%.*s %s", len > 40 ? 40 : len, base, c->spec);
    }
}

static int listed(const char **l, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(l[i], s))
            return 1;
    return 0;
}

int dash_bench_suites(const dash_bench *b, const char **out, int max)
{
    int n = 0;
    for (int k = 0; k < NKNOWN && n < max; k++)
        for (int i = 0; i < b->nres; i++)
            if (!strcmp(b->res[i].suite, known_suites[k])) {
                out[n++] = known_suites[k];
                break;
            }
    for (int i = 0; i < b->nres && n < max; i++)
        if (!listed(out, n, b->res[i].suite))
            out[n++] = b->res[i].suite;
    return n;
}

int dash_bench_groups(const dash_bench *b, const char *suite, const char **out, int max)
{
    int n = 0;
    for (int i = 0; i < b->nres && n < max; i++)
        if (!strcmp(b->res[i].suite, suite) && !listed(out, n, b->res[i].name))
            out[n++] = b->res[i].name;
    return n;
}

const dash_bench_result *dash_bench_find(const dash_bench *b, int column, const char *suite, const char *name)
{
    /* the last wins: a file that repeats a figure keeps its later one */
    const dash_bench_result *hit = NULL;
    for (int i = 0; i < b->nres; i++) {
        const dash_bench_result *r = &b->res[i];
        if (r->column == column && !strcmp(r->suite, suite) && !strcmp(r->name, name))
            hit = r;
    }
    return hit;
}

int dash_bench_best(const dash_bench *b, const char *suite, const char *name)
{
    int best = -1, n = 0;
    double v = 0;
    for (int c = 0; c < b->ncols; c++) {
        const dash_bench_result *r = dash_bench_find(b, c, suite, name);
        if (!r || !r->correct || isnan(r->median) || b->cols[c].reference)
            continue;
        n++;
        if (best < 0 || (r->higher_is_better ? r->median > v : r->median < v)) {
            best = c;
            v = r->median;
        }
    }
    return n >= 2 ? best : -1;
}
