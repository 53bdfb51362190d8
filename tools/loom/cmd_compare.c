/* loom eval --compare A B ...: model files side by side, one row per
 * (model, device): test accuracy, file size, and the latency of one
 * prediction at batch 1 and at batch 256 (the median of --runs timed runs
 * after two warm-up runs; each batch size is its own compiled program). */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_MODELS 16
#define MAX_DEVICES 16
#define BIG_BATCH 256

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct compare_row {
    const char *model, *device;
    double accuracy, bytes, ms1, ms256;
    int64_t images;
} compare_row;

/* Median latency in ms of predicting n rows of x; NAN after an error. */
static double latency_ms(loom_sequential *m, const float *x, int64_t n, float *out, int runs)
{
    double *t = malloc((size_t)runs * sizeof *t);
    if (!t)
        return NAN;
    for (int w = 0; w < 2; w++)
        if (loom_sequential_predict(m, x, n, out)) {
            free(t);
            return NAN;
        }
    for (int r = 0; r < runs; r++) {
        double t0 = now_s();
        if (loom_sequential_predict(m, x, n, out)) {
            free(t);
            return NAN;
        }
        t[r] = (now_s() - t0) * 1e3;
    }
    qsort(t, (size_t)runs, sizeof *t, cmp_double);
    double med = runs % 2 ? t[runs / 2] : 0.5 * (t[runs / 2 - 1] + t[runs / 2]);
    free(t);
    return med;
}

/* One (model, device): load with batch 256 (evaluation runs at it), then
 * evaluate and time. 0, or 1 after an error in loom_last_error. */
static int measure(loom_ctx *ctx, loom_device *dev, const char *path, const char *data, int64_t limit, int runs,
                   compare_row *row)
{
    loom_model_config mc;
    loom_sequential *m = NULL;
    loom_dataset *test = NULL;
    loom_eval_result ev;
    memset(&ev, 0, sizeof ev);
    float *x = NULL, *out = NULL;
    int rc = 1;
    if (loom_model_config_read(ctx, path, &mc))
        return 1;
    mc.batch = BIG_BATCH;
    if (loom_sequential_load(ctx, path, dev, &mc, &m) || cli_load_data(ctx, data, 0, limit, &test))
        goto done;
    loom_scaling how = LOOM_SCALE_UNIT;
    float stats[2] = {0.0f, 255.0f};
    if (loom_sequential_get_preprocess(m, &how, stats) != LOOM_OK)
        loom_sequential_set_preprocess(m, how, stats);
    if (loom_dataset_scale(test, how, stats, NULL) || loom_sequential_evaluate(m, test, 0, &ev))
        goto done;
    int64_t f = loom_sequential_inputs(m), k = loom_sequential_outputs(m);
    int64_t n = loom_dataset_count(test) < BIG_BATCH ? loom_dataset_count(test) : BIG_BATCH;
    x = malloc((size_t)BIG_BATCH * (size_t)f * sizeof *x);
    out = malloc((size_t)BIG_BATCH * (size_t)k * sizeof *out);
    if (!x || !out) {
        loom_fail(ctx, LOOM_E_OOM, "compare: out of memory");
        goto done;
    }
    /* the test images, repeated when the set is smaller than the batch */
    for (int64_t r = 0; r < BIG_BATCH; r++)
        memcpy(x + r * f, loom_dataset_images(test) + (r % n) * f, (size_t)f * sizeof *x);
    row->ms1 = latency_ms(m, x, 1, out, runs);
    row->ms256 = isnan(row->ms1) ? NAN : latency_ms(m, x, BIG_BATCH, out, runs);
    if (isnan(row->ms256))
        goto done;
    row->accuracy = ev.accuracy;
    row->images = ev.count;
    struct stat st;
    row->bytes = stat(path, &st) ? NAN : (double)st.st_size;
    rc = 0;
done:
    free(x);
    free(out);
    loom_eval_result_free(&ev);
    loom_sequential_destroy(m);
    loom_dataset_destroy(test);
    return rc;
}

/* --name V or --name=V at argv[*i]: the value (and *i moved past it),
 * NULL if argv[*i] is not that option. */
static const char *value_of(int argc, char **argv, int *i, const char *name, int *missing)
{
    size_t n = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, n))
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n])
        return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

static int parse_count(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || v < lo || v > hi)
        return 1;
    *out = v;
    return 0;
}

int cmd_eval_compare(int argc, char **argv)
{
    const char *models[MAX_MODELS], *spec = "auto", *data = LOOM_DEFAULT_DATA_DIR;
    int nmodels = 0, json = 0;
    int64_t limit = 0, runs = 20;
    /* the model files are the free arguments: getopt's permutation would
     * take them apart from --compare, so this command scans argv itself */
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *v;
        if (!strcmp(argv[i], "--compare"))
            continue;
        if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            cli_usage(stdout, "eval");
            return 0;
        } else if ((v = value_of(argc, argv, &i, "--device", &missing))) {
            spec = v;
        } else if ((v = value_of(argc, argv, &i, "--data", &missing))) {
            data = v;
        } else if ((v = value_of(argc, argv, &i, "--limit", &missing))) {
            if (parse_count(v, 0, INT64_MAX, &limit))
                return cli_usage_error("eval", "--limit %s: want a count >= 0", v);
        } else if ((v = value_of(argc, argv, &i, "--runs", &missing))) {
            if (parse_count(v, 1, 10000, &runs))
                return cli_usage_error("eval", "--runs %s: want 1 to 10000", v);
        } else if (missing) {
            return cli_usage_error("eval", "%s needs a value", argv[i]);
        } else if (argv[i][0] == '-') {
            return cli_usage_error("eval", "--compare: unknown option %s", argv[i]);
        } else if (nmodels == MAX_MODELS) {
            return cli_usage_error("eval", "--compare: at most %d models", MAX_MODELS);
        } else {
            models[nmodels++] = argv[i];
        }
    }
    if (!nmodels)
        return cli_usage_error("eval", "--compare needs model files");
    loom_ctx *ctx = cli_ctx();
    if (!ctx)
        return 1;
    /* the devices: one spec, or every device that can run graphs */
    char specs[MAX_DEVICES][32];
    int nspecs = 0;
    if (!strcmp(spec, "all")) {
        for (int d = 0; d < loom_device_count(ctx) && nspecs < MAX_DEVICES; d++) {
            loom_device_info info;
            if (loom_device_get_info(ctx, d, &info) == LOOM_OK && info.can_run)
                snprintf(specs[nspecs++], sizeof specs[0], "%s", info.spec);
        }
    } else {
        /* one spec or a list: cpu,vulkan:0,opencl:0 */
        for (const char *p = spec; *p && nspecs < MAX_DEVICES;) {
            size_t n = strcspn(p, ",");
            if (n == 0 || n >= sizeof specs[0]) {
                loom_ctx_destroy(ctx);
                return cli_usage_error("eval", "--device \"%s\": give a device, a list of devices (cpu,vulkan:0) or all",
                                       spec);
            }
            snprintf(specs[nspecs++], sizeof specs[0], "%.*s", (int)n, p);
            p += n + (p[n] == ',');
        }
    }
    compare_row rows[MAX_MODELS * MAX_DEVICES];
    int nrows = 0, rc = 0;
    for (int d = 0; d < nspecs && !rc; d++) {
        loom_device *dev = NULL;
        if (loom_device_open(ctx, specs[d], &dev)) {
            fprintf(stderr, "loom eval --compare: %s\n", loom_last_error(ctx));
            rc = 1;
            break;
        }
        for (int k = 0; k < nmodels && !rc; k++) {
            compare_row *r = &rows[nrows];
            memset(r, 0, sizeof *r);
            r->model = models[k];
            r->device = loom_device_get(dev)->spec;
            if (measure(ctx, dev, models[k], data, limit, (int)runs, r)) {
                fprintf(stderr, "loom eval --compare: %s on %s: %s\n", models[k], specs[d], loom_last_error(ctx));
                rc = 1;
            } else {
                r->device = specs[d];
                nrows++;
            }
        }
        loom_device_close(dev);
    }
    if (!rc && json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "runs", (double)runs);
        cJSON *arr = cJSON_AddArrayToObject(o, "rows");
        for (int i = 0; i < nrows; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "model", rows[i].model);
            cJSON_AddStringToObject(e, "device", rows[i].device);
            cJSON_AddNumberToObject(e, "test_images", (double)rows[i].images);
            cJSON_AddItemToObject(e, "test_accuracy", cli_json_number(rows[i].accuracy));
            cJSON_AddItemToObject(e, "file_bytes", cli_json_number(rows[i].bytes));
            cJSON_AddItemToObject(e, "latency_ms_batch1", cli_json_number(rows[i].ms1));
            cJSON_AddItemToObject(e, "latency_ms_batch256", cli_json_number(rows[i].ms256));
            cJSON_AddItemToArray(arr, e);
        }
        if (cli_print_json(o))
            rc = 1;
    } else if (!rc) {
        printf("%-40s %-10s %9s %12s %12s %14s\n", "model", "device", "accuracy", "file bytes", "batch 1 ms",
               "batch 256 ms");
        for (int i = 0; i < nrows; i++)
            printf("%-40s %-10s %9.4f %12.0f %12.3f %14.3f\n", rows[i].model, rows[i].device, rows[i].accuracy,
                   rows[i].bytes, rows[i].ms1, rows[i].ms256);
        printf("(%lld test images; latency: median of %lld runs)\n", nrows ? (long long)rows[0].images : 0LL,
               (long long)runs);
    }
    return cli_finish(ctx, "eval", rc);
}
