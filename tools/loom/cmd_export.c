/* loom export --model FILE --output OUT.onnx: a saved Sequential model as
 * ONNX (loom_onnx_save). --sample N also writes OUT.x.npy (N rows of
 * seeded, already preprocessed inputs) and OUT.y.npy (the model's own
 * outputs for them, loom_sequential_predict), so that another runtime can
 * be checked against loom. */
#include "npy.h"
#include "onnx_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { O_MODEL = CLI_OPT_BASE, O_OUTPUT, O_SAMPLE, O_DEVICE };

static const struct option opts[] = {
    {"model", required_argument, 0, O_MODEL},   {"output", required_argument, 0, O_OUTPUT},
    {"sample", required_argument, 0, O_SAMPLE}, {"device", required_argument, 0, O_DEVICE},
    {"help", no_argument, 0, 'h'},              {0, 0, 0, 0},
};

/* rows samples of the given shape (ndim dims) */
static int write_npy(loom_ctx *ctx, const char *base, const char *suffix, int64_t rows, int ndim, const int64_t *dims,
                     const float *v)
{
    char path[1024];
    snprintf(path, sizeof path, "%s%s", base, suffix);
    int64_t shape[4] = {rows, 0, 0, 0};
    for (int i = 0; i < ndim && i < 3; i++)
        shape[1 + i] = dims[i];
    size_t n;
    unsigned char *d = npy_encode(LOOM_ONNX_FLOAT, 1 + ndim, shape, v, &n);
    loom_status s = d ? loom_write_file_atomic(ctx, path, d, n) : LOOM_E_OOM;
    free(d);
    if (s != LOOM_OK) {
        fprintf(stderr, "loom export: %s: %s\n", path, loom_last_error(ctx));
        return 1;
    }
    printf("  %s\n", path);
    return 0;
}

int cmd_export(int argc, char **argv)
{
    const char *model = NULL, *output = NULL, *spec = "cpu";
    int64_t sample = 0;
    cli_args a = cli_args_init("export", argc, argv, opts);
    for (int c; (c = cli_next(&a)) != -1;) {
        int bad = 0;
        switch (c) {
        case O_MODEL: model = optarg; break;
        case O_OUTPUT: output = optarg; break;
        case O_SAMPLE: bad = cli_int(&a, 1, 1 << 16, &sample); break;
        case O_DEVICE: spec = optarg; break;
        default: return a.rc;
        }
        if (bad)
            return bad;
    }
    if (!model || !output)
        return cli_usage_error("export", "--model and --output are needed");
    loom_ctx *ctx = cli_ctx();
    if (!ctx)
        return 1;
    loom_device *dev = NULL;
    loom_sequential *m = NULL;
    float *x = NULL, *y = NULL;
    int rc = 1;
    if (loom_device_open(ctx, spec, &dev) != LOOM_OK || loom_sequential_load(ctx, model, dev, NULL, &m) != LOOM_OK ||
        loom_onnx_save(m, output) != LOOM_OK) {
        fprintf(stderr, "loom export: %s\n", loom_last_error(ctx));
        goto done;
    }
    printf("%s -> %s\n", model, output);
    rc = 0;
    if (sample) {
        int64_t in = loom_sequential_inputs(m), out = loom_sequential_outputs(m);
        x = malloc((size_t)(sample * in) * sizeof *x);
        y = malloc((size_t)(sample * out) * sizeof *y);
        if (!x || !y) {
            fprintf(stderr, "loom export: out of memory for %lld samples\n", (long long)sample);
            rc = 1;
            goto done;
        }
        uint32_t r = 7;
        for (int64_t i = 0; i < sample * in; i++) {
            r = r * 1664525u + 1013904223u;
            x[i] = (float)(r >> 8) / 16777216.0f * 2.0f - 1.0f;
        }
        if (loom_sequential_predict(m, x, sample, y) != LOOM_OK) {
            fprintf(stderr, "loom export: %s\n", loom_last_error(ctx));
            rc = 1;
            goto done;
        }
        int64_t xs[3];
        int xn = loom_sequential_input_shape(m, xs);
        rc = write_npy(ctx, output, ".x.npy", sample, xn, xs, x) || write_npy(ctx, output, ".y.npy", sample, 1, &out, y);
    }
done:
    free(x);
    free(y);
    loom_sequential_destroy(m);
    loom_device_close(dev);
    return cli_finish(ctx, "export", rc);
}
