/* loom bench --model MODEL.onnx: one ONNX model timed on every device
 * (or --device SPEC): load and compile once, warm-up runs, then timed
 * runs; the median, min and max per run, and each device's outputs
 * checked against the first device's. */
#include "onnx_cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { O_MODEL = CLI_OPT_BASE, O_DEVICE, O_RUNS, O_WARMUP, O_BATCH, O_DIM, O_INPUT, O_JSON };

static const struct option opts[] = {
    {"model", required_argument, 0, O_MODEL},   {"device", required_argument, 0, O_DEVICE},
    {"runs", required_argument, 0, O_RUNS},     {"warmup", required_argument, 0, O_WARMUP},
    {"batch", required_argument, 0, O_BATCH},   {"dim", required_argument, 0, O_DIM},
    {"input", required_argument, 0, O_INPUT},   {"json", required_argument, 0, O_JSON},
    {"help", no_argument, 0, 'h'},              {0, 0, 0, 0},
};

#define MAX_DEVS 8

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Every output as f32, concatenated (the first device's is the reference). */
static float *read_outputs(loom_ctx *ctx, cli_model *m, size_t *n)
{
    size_t total = 0;
    for (int i = 0; i < m->info.noutputs; i++) {
        uint64_t c = 1;
        for (int k = 0; k < m->info.outputs[i].ndim; k++)
            c *= (uint64_t)m->info.outputs[i].shape[k];
        total += (size_t)c;
    }
    float *all = malloc((total ? total : 1) * sizeof *all);
    size_t at = 0;
    for (int i = 0; all && i < m->info.noutputs; i++) {
        const loom_onnx_value *o = &m->info.outputs[i];
        uint64_t c = 1;
        for (int k = 0; k < o->ndim; k++)
            c *= (uint64_t)o->shape[k];
        size_t lb = (size_t)c * loom_dtype_size(o->dtype);
        void *raw = malloc(lb ? lb : 1);
        if (!raw || loom_program_read(m->p, o->name, raw, lb) != LOOM_OK ||
            loom_onnx_from_dtype(ctx, o->dtype, raw, (size_t)c, LOOM_ONNX_FLOAT, all + at) != LOOM_OK) {
            free(raw);
            free(all);
            return NULL;
        }
        free(raw);
        at += (size_t)c;
    }
    *n = total;
    return all;
}

int cmd_bench_model(int argc, char **argv)
{
    static cli_model_opts mo;
    memset(&mo, 0, sizeof mo);
    const char *spec = "all", *json = NULL;
    int64_t runs = 20, warmup = 3;
    cli_args a = cli_args_init("bench", argc, argv, opts);
    for (int c; (c = cli_next(&a)) != -1;) {
        int bad = 0;
        switch (c) {
        case O_MODEL: mo.path = optarg; break;
        case O_DEVICE: spec = optarg; break;
        case O_RUNS: bad = cli_int(&a, 1, 100000, &runs); break;
        case O_WARMUP: bad = cli_int(&a, 0, 10000, &warmup); break;
        case O_BATCH: bad = cli_int(&a, 1, 1 << 30, &mo.batch); break;
        case O_DIM: bad = cli_model_dim("bench", &mo, optarg); break;
        case O_INPUT: bad = cli_model_input("bench", &mo, optarg); break;
        case O_JSON: json = optarg; break;
        default: cli_model_opts_free(&mo); return a.rc;
        }
        if (bad) {
            cli_model_opts_free(&mo);
            return bad;
        }
    }
    if (!mo.path) {
        cli_model_opts_free(&mo);
        return cli_usage_error("bench", "--model needs a file");
    }
    mo.random = 1;
    loom_ctx *ctx = cli_ctx();
    if (!ctx) {
        cli_model_opts_free(&mo);
        return 1;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", mo.path);
    cJSON_AddNumberToObject(root, "runs", (double)runs);
    cJSON *jd = cJSON_AddArrayToObject(root, "devices");
    float *ref = NULL;
    size_t nref = 0;
    char ref_spec[32] = "";
    int rc = 0, ndone = 0;
    printf("%s: %lld timed runs after %lld warm-up runs (ms per run)\n", mo.path, (long long)runs,
           (long long)warmup);
    printf("  %-12s %10s %10s %10s %10s %10s  %s\n", "device", "median", "min", "max", "load s", "compile s",
           "max rel diff vs first");
    for (int i = 0; i < loom_device_count(ctx) && ndone < MAX_DEVS; i++) {
        loom_device_info di;
        if (loom_device_get_info(ctx, i, &di) != LOOM_OK || !di.can_run)
            continue;
        if (strcmp(spec, "all") && strcmp(spec, di.spec))
            continue;
        loom_device *dev = NULL;
        static cli_model m;
        if (loom_device_open(ctx, di.spec, &dev) != LOOM_OK) {
            fprintf(stderr, "loom bench: %s: %s\n", di.spec, loom_last_error(ctx));
            rc = 1;
            continue;
        }
        if (cli_model_open("bench", ctx, dev, &mo, &m)) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "device", di.spec);
            cJSON_AddStringToObject(o, "error", loom_last_error(ctx));
            cJSON_AddItemToArray(jd, o);
            printf("  %-12s %s\n", di.spec, loom_last_error(ctx));
            loom_device_close(dev);
            rc = 1;
            continue;
        }
        double *t = malloc((size_t)runs * sizeof *t);
        int ok = t != NULL;
        for (int64_t k = 0; ok && k < warmup; k++)
            ok = loom_program_run(m.p) == LOOM_OK;
        for (int64_t k = 0; ok && k < runs; k++) {
            double t0 = now_s();
            ok = loom_program_run(m.p) == LOOM_OK;
            t[k] = (now_s() - t0) * 1e3;
        }
        size_t n = 0;
        float *out = ok ? read_outputs(ctx, &m, &n) : NULL;
        double worst = 0;
        if (out && !ref) {
            ref = out;
            nref = n;
            snprintf(ref_spec, sizeof ref_spec, "%s", di.spec);
            out = NULL;
        } else if (out) {
            for (size_t k = 0; k < n && k < nref; k++) {
                double d = fabs((double)out[k] - ref[k]) / fmax(fabs((double)ref[k]), 1e-6);
                worst = d > worst ? d : worst;
            }
        }
        if (!ok) {
            printf("  %-12s %s\n", di.spec, loom_last_error(ctx));
            rc = 1;
        } else {
            qsort(t, (size_t)runs, sizeof *t, cmp_d);
            double med = runs % 2 ? t[runs / 2] : 0.5 * (t[runs / 2 - 1] + t[runs / 2]);
            printf("  %-12s %10.4f %10.4f %10.4f %10.3f %10.3f  ", di.spec, med, t[0], t[runs - 1], m.load_s,
                   m.compile_s);
            if (strcmp(ref_spec, di.spec))
                printf("%.3g (vs %s)\n", worst, ref_spec);
            else
                printf("reference\n");
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "device", di.spec);
            cJSON_AddStringToObject(o, "name", di.name);
            cJSON_AddItemToObject(o, "median_ms", cli_json_number(med));
            cJSON_AddItemToObject(o, "min_ms", cli_json_number(t[0]));
            cJSON_AddItemToObject(o, "max_ms", cli_json_number(t[runs - 1]));
            cJSON_AddItemToObject(o, "load_s", cli_json_number(m.load_s));
            cJSON_AddItemToObject(o, "compile_s", cli_json_number(m.compile_s));
            if (strcmp(ref_spec, di.spec)) {
                cJSON_AddStringToObject(o, "reference", ref_spec);
                cJSON_AddItemToObject(o, "max_rel_diff", cli_json_number(worst));
            }
            cJSON_AddItemToArray(jd, o);
        }
        free(out);
        free(t);
        cli_model_close(&m);
        loom_device_close(dev);
        ndone++;
    }
    if (!ndone && strcmp(spec, "all")) {
        fprintf(stderr, "loom bench: no device \"%s\" that runs graphs\n", spec);
        rc = CLI_EXIT_USAGE;
    }
    if (json) {
        char *txt = cJSON_Print(root);
        if (!txt || loom_write_file_atomic(ctx, json, txt, strlen(txt)) != LOOM_OK) {
            fprintf(stderr, "loom bench: --json %s: %s\n", json, txt ? loom_last_error(ctx) : "out of memory");
            rc = 1;
        }
        cJSON_free(txt);
    }
    cJSON_Delete(root);
    free(ref);
    cli_model_opts_free(&mo);
    return cli_finish(ctx, "bench", rc);
}
