/* loom run MODEL.onnx: one run of an ONNX model on a device, its outputs
 * written as .npy files in the model's own element types. */
#include "onnx_cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

enum { O_INPUT = CLI_OPT_BASE, O_DEVICE, O_OUTPUT, O_PROFILE, O_BATCH, O_DIM, O_RANDOM, O_JSON };

static const struct option opts[] = {
    {"input", required_argument, 0, O_INPUT},   {"device", required_argument, 0, O_DEVICE},
    {"output", required_argument, 0, O_OUTPUT}, {"profile", required_argument, 0, O_PROFILE},
    {"batch", required_argument, 0, O_BATCH},   {"dim", required_argument, 0, O_DIM},
    {"random", no_argument, 0, O_RANDOM},       {"json", no_argument, 0, O_JSON},
    {"help", no_argument, 0, 'h'},              {0, 0, 0, 0},
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* An output name as a file name: what is not [A-Za-z0-9._-] becomes _. */
static void file_name(const char *name, char *out, size_t n)
{
    size_t k = 0;
    for (const char *p = name; *p && k + 1 < n; p++)
        out[k++] = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
                           *p == '-' || *p == '_'
                       ? *p
                       : '_';
    out[k] = 0;
    if (!k || !strcmp(out, ".") || !strcmp(out, ".."))
        snprintf(out, n, "output");
}

/* MODEL is the first argument; the options follow it. */
int cli_model_args(const char *cmd, int argc, char **argv, const char **model)
{
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
            cli_usage(stdout, cmd);
            return -1;
        }
        cli_usage_error(cmd, "the model file comes first: loom %s MODEL.onnx [options]", cmd);
        return CLI_EXIT_USAGE;
    }
    *model = argv[1];
    return 0;
}

int cmd_run(int argc, char **argv)
{
    static cli_model_opts mo;
    memset(&mo, 0, sizeof mo);
    int rc = cli_model_args("run", argc, argv, &mo.path);
    if (rc)
        return rc < 0 ? 0 : rc;
    const char *spec = "auto", *outdir = ".", *trace_path = NULL;
    int json = 0;
    cli_args a = cli_args_init("run", argc - 1, argv + 1, opts);
    for (int c; (c = cli_next(&a)) != -1;) {
        int bad = 0;
        switch (c) {
        case O_INPUT: bad = cli_model_input("run", &mo, optarg); break;
        case O_DEVICE: spec = optarg; break;
        case O_OUTPUT: outdir = optarg; break;
        case O_PROFILE: trace_path = optarg; break;
        case O_BATCH: bad = cli_int(&a, 1, 1 << 30, &mo.batch); break;
        case O_DIM: bad = cli_model_dim("run", &mo, optarg); break;
        case O_RANDOM: mo.random = 1; break;
        case O_JSON: json = 1; break;
        default: cli_model_opts_free(&mo); return a.rc;
        }
        if (bad) {
            cli_model_opts_free(&mo);
            return bad;
        }
    }
    struct stat sb;
    if (stat(outdir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        cli_model_opts_free(&mo);
        return cli_usage_error("run", "--output %s is not a folder", outdir);
    }
    mo.profile = trace_path != NULL;
    loom_ctx *ctx = cli_ctx();
    if (!ctx) {
        cli_model_opts_free(&mo);
        return 1;
    }
    loom_device *dev = NULL;
    static cli_model m;
    memset(&m, 0, sizeof m);
    loom_trace *trace = NULL;
    cJSON *root = NULL;
    rc = 1;
    if (loom_device_open(ctx, spec, &dev) != LOOM_OK) {
        fprintf(stderr, "loom run: %s\n", loom_last_error(ctx));
        goto done;
    }
    if ((rc = cli_model_open("run", ctx, dev, &mo, &m)) != 0)
        goto done;
    rc = 1;
    double t0 = now_s();
    if (loom_program_run(m.p) != LOOM_OK) {
        fprintf(stderr, "loom run: %s\n", loom_last_error(ctx));
        goto done;
    }
    double run_s = now_s() - t0;
    if (trace_path && (loom_trace_create(ctx, &trace) != LOOM_OK || loom_trace_add_run(trace, m.p, -1, "run") ||
                       loom_trace_write(trace, trace_path) != LOOM_OK)) {
        fprintf(stderr, "loom run: --profile %s: %s\n", trace_path, loom_last_error(ctx));
        goto done;
    }
    root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", mo.path);
    cJSON_AddStringToObject(root, "device", loom_device_get(dev)->spec);
    cJSON_AddNumberToObject(root, "load_s", m.load_s);
    cJSON_AddNumberToObject(root, "compile_s", m.compile_s);
    cJSON_AddNumberToObject(root, "run_s", run_s);
    cJSON *outs = cJSON_AddArrayToObject(root, "outputs");
    if (!json)
        printf("%s on %s: loaded in %.3f s, compiled in %.3f s, ran in %.3f ms\n", mo.path,
               loom_device_get(dev)->spec, m.load_s, m.compile_s, run_s * 1e3);
    for (int i = 0; i < m.info.noutputs; i++) {
        const loom_onnx_value *o = &m.info.outputs[i];
        uint64_t count = 1;
        for (int k = 0; k < o->ndim; k++)
            count *= (uint64_t)o->shape[k];
        size_t lb = (size_t)count * loom_dtype_size(o->dtype);
        /* NumPy has no bfloat16: those outputs are written as float32 */
        int type = o->type == LOOM_ONNX_BFLOAT16 ? LOOM_ONNX_FLOAT : o->type;
        size_t ob = (size_t)count * loom_onnx_type_size(type);
        void *got = malloc(lb ? lb : 1), *conv = malloc(ob ? ob : 1);
        loom_status s = got && conv ? loom_program_read(m.p, o->name, got, lb) : LOOM_E_OOM;
        if (s == LOOM_OK)
            s = loom_onnx_from_dtype(ctx, o->dtype, got, (size_t)count, type, conv);
        size_t nb = 0;
        unsigned char *file = s == LOOM_OK ? npy_encode(type, o->ndim, o->shape, conv, &nb) : NULL;
        char fname[256], path[1024];
        file_name(o->name, fname, sizeof fname);
        snprintf(path, sizeof path, "%s/%s.npy", outdir, fname);
        if (file)
            s = loom_write_file_atomic(ctx, path, file, nb);
        free(file);
        free(got);
        free(conv);
        if (s != LOOM_OK || !nb) {
            fprintf(stderr, "loom run: output \"%s\": %s\n", o->name, s != LOOM_OK ? loom_last_error(ctx) :
                    "no NumPy element type for it");
            goto done;
        }
        cJSON *jo = cJSON_CreateObject();
        cJSON_AddStringToObject(jo, "name", o->name);
        cJSON_AddStringToObject(jo, "dtype", cli_numpy_name(type));
        cJSON *sh = cJSON_AddArrayToObject(jo, "shape");
        for (int k = 0; k < o->ndim; k++)
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)o->shape[k]));
        cJSON_AddStringToObject(jo, "file", path);
        cJSON_AddItemToArray(outs, jo);
        if (!json) {
            printf("  %s: %s [", o->name, cli_numpy_name(type));
            for (int k = 0; k < o->ndim; k++)
                printf("%s%lld", k ? "," : "", (long long)o->shape[k]);
            printf("] -> %s\n", path);
        }
    }
    if (trace_path && !json)
        printf("  trace -> %s\n", trace_path);
    rc = 0;
    if (json) {
        rc = cli_print_json(root);
        root = NULL;
    }
done:
    cJSON_Delete(root);
    loom_trace_destroy(trace);
    cli_model_close(&m);
    loom_device_close(dev);
    cli_model_opts_free(&mo);
    return cli_finish(ctx, "run", rc);
}
