/* An ONNX model opened for a command: inputs from .npy or TensorProto
 * files (their shapes override the model's, so a batch of 8 needs no
 * option), or seeded random values; loaded, compiled and fed. */
#include "onnx_cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

const char *cli_numpy_name(int type)
{
    switch (type) {
    case LOOM_ONNX_FLOAT: return "float32";
    case LOOM_ONNX_DOUBLE: return "float64";
    case LOOM_ONNX_FLOAT16: return "float16";
    case LOOM_ONNX_BFLOAT16: return "bfloat16";
    case LOOM_ONNX_BOOL: return "bool";
    default: return loom_onnx_type_name(type);
    }
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* A TensorProto file through the library's reader, as an array. */
static int read_pb(const char *path, npy_array *out, char *err, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, n, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    size_t len = fstat(fileno(f), &sb) == 0 ? (size_t)sb.st_size : 0;
    unsigned char *d = malloc(len ? len : 1);
    int ok = d && (!len || fread(d, 1, len, f) == len);
    fclose(f);
    loom_ctx *ctx = NULL;
    loom_onnx_tensor t;
    memset(&t, 0, sizeof t);
    if (ok && loom_ctx_create(NULL, &ctx) == LOOM_OK && loom_onnx_tensor_read(ctx, d, len, NULL, &t) == LOOM_OK) {
        memset(out, 0, sizeof *out);
        out->type = t.type;
        out->ndim = t.ndim;
        memcpy(out->shape, t.shape, sizeof out->shape);
        out->count = t.count;
        out->data = malloc(t.bytes ? t.bytes : 1);
        if (out->data)
            memcpy(out->data, t.data, t.bytes);
        ok = out->data != NULL;
        if (!ok)
            snprintf(err, n, "%s: out of memory", path);
    } else {
        snprintf(err, n, "%s: %s", path, ctx ? loom_last_error(ctx) : "cannot read it");
        ok = 0;
    }
    loom_onnx_tensor_free(&t);
    loom_ctx_destroy(ctx);
    free(d);
    return ok ? 0 : -1;
}

int cli_model_input(const char *cmd, cli_model_opts *o, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1])
        return cli_usage_error(cmd, "--input takes NAME=FILE (.npy or a TensorProto .pb), not \"%s\"", arg);
    if (o->ninputs == CLI_MAX_INPUTS)
        return cli_usage_error(cmd, "at most %d --input options", CLI_MAX_INPUTS);
    size_t nl = (size_t)(eq - arg);
    char *name = malloc(nl + 1);
    if (!name)
        return CLI_EXIT_USAGE;
    memcpy(name, arg, nl);
    name[nl] = 0;
    for (int i = 0; i < o->ninputs; i++)
        if (!strcmp(o->input_names[i], name)) {
            free(name);
            return cli_usage_error(cmd, "--input %.*s is given twice", (int)nl, arg);
        }
    char err[512];
    npy_array *a = &o->inputs[o->ninputs];
    int rc = ends_with(eq + 1, ".pb") ? read_pb(eq + 1, a, err, sizeof err) : npy_read(eq + 1, a, err, sizeof err);
    if (rc) {
        free(name);
        fprintf(stderr, "loom %s: --input %s: %s\n", cmd, arg, err);
        return CLI_EXIT_USAGE;
    }
    o->input_names[o->ninputs++] = name;
    return 0;
}

int cli_model_dim(const char *cmd, cli_model_opts *o, const char *arg)
{
    const char *eq = strchr(arg, '=');
    char *end;
    long long v = eq ? strtoll(eq + 1, &end, 10) : 0;
    if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof o->dim_names[0] || !eq[1] || *end || v < 1 || v > (1 << 30))
        return cli_usage_error(cmd, "--dim takes NAME=SIZE (a symbolic dimension, 1 to 2^30), not \"%s\"", arg);
    if (o->ndims == CLI_MAX_DIMS)
        return cli_usage_error(cmd, "at most %d --dim options", CLI_MAX_DIMS);
    memcpy(o->dim_names[o->ndims], arg, (size_t)(eq - arg));
    o->dim_names[o->ndims][eq - arg] = 0;
    o->dims[o->ndims].name = o->dim_names[o->ndims];
    o->dims[o->ndims].value = v;
    o->ndims++;
    return 0;
}

void cli_model_opts_free(cli_model_opts *o)
{
    for (int i = 0; i < o->ninputs; i++) {
        free((char *)o->input_names[i]);
        npy_free(&o->inputs[i]);
    }
    o->ninputs = 0;
}

static const npy_array *given(const cli_model_opts *o, const char *name)
{
    for (int i = 0; i < o->ninputs; i++)
        if (!strcmp(o->input_names[i], name))
            return &o->inputs[i];
    return NULL;
}

int cli_model_open(const char *cmd, loom_ctx *ctx, loom_device *dev, cli_model_opts *o, cli_model *m)
{
    memset(m, 0, sizeof *m);
    m->dev = dev;
    loom_onnx_opts lo;
    loom_onnx_opts_default(&lo);
    if (o->batch)
        lo.batch = o->batch;
    lo.dims = o->dims;
    lo.ndims = o->ndims;
    /* the given arrays' shapes are the inputs' shapes */
    loom_onnx_shape shapes[CLI_MAX_INPUTS];
    int ns = 0;
    for (int i = 0; i < o->ninputs; i++) {
        const npy_array *a = &o->inputs[i];
        if (a->ndim > LOOM_MAX_DIMS) {
            fprintf(stderr, "loom %s: input \"%s\" has %d dims; loom's tensors hold at most %d\n", cmd,
                    o->input_names[i], a->ndim, LOOM_MAX_DIMS);
            return 1;
        }
        shapes[ns].name = o->input_names[i];
        shapes[ns].ndim = a->ndim;
        memcpy(shapes[ns].shape, a->shape, (size_t)a->ndim * sizeof a->shape[0]);
        ns++;
    }
    lo.shapes = shapes;
    lo.nshapes = ns;
    double t0 = now_s();
    loom_status s = loom_state_create(dev, &m->st);
    if (s == LOOM_OK)
        s = loom_onnx_load(ctx, o->path, &m->g, m->st, &lo, &m->info);
    m->load_s = now_s() - t0;
    if (s != LOOM_OK) {
        fprintf(stderr, "loom %s: %s\n", cmd, loom_last_error(ctx));
        cli_model_close(m);
        return 1;
    }
    for (int i = 0; i < o->ninputs; i++) {
        int found = 0;
        for (int j = 0; j < m->info.ninputs; j++)
            found |= !strcmp(m->info.inputs[j].name, o->input_names[i]);
        if (!found) {
            fprintf(stderr, "loom %s: the model has no input \"%s\" (its inputs:", cmd, o->input_names[i]);
            for (int j = 0; j < m->info.ninputs; j++)
                fprintf(stderr, " %s", m->info.inputs[j].name);
            fprintf(stderr, ")\n");
            cli_model_close(m);
            return 1;
        }
    }
    loom_compile_opts co = {0};
    co.profile = o->profile;
    t0 = now_s();
    s = loom_compile(m->g, dev, m->st, &co, &m->p);
    m->compile_s = now_s() - t0;
    if (s != LOOM_OK) {
        fprintf(stderr, "loom %s: %s\n", cmd, loom_last_error(ctx));
        cli_model_close(m);
        return 1;
    }
    uint32_t seed = 42;
    for (int j = 0; j < m->info.ninputs; j++) {
        const loom_onnx_value *in = &m->info.inputs[j];
        if (!in->used)
            continue;
        uint64_t count = 1;
        for (int k = 0; k < in->ndim; k++)
            count *= (uint64_t)in->shape[k];
        size_t bytes = (size_t)count * loom_dtype_size(in->dtype);
        void *buf = malloc(bytes ? bytes : 1);
        if (!buf) {
            fprintf(stderr, "loom %s: out of memory for input \"%s\"\n", cmd, in->name);
            cli_model_close(m);
            return 1;
        }
        const npy_array *a = given(o, in->name);
        s = LOOM_OK;
        if (a) {
            s = loom_onnx_to_dtype(ctx, a->type, a->data, (size_t)a->count, in->dtype, buf);
        } else if (o->random) {
            /* uniform [0, 1) for floats, 0 / 1 for bools, 0..9 for integers */
            float *f = malloc((size_t)count * sizeof *f + 1);
            if (f) {
                for (uint64_t k = 0; k < count; k++) {
                    seed = seed * 1664525u + 1013904223u;
                    float u = (float)(seed >> 8) / 16777216.0f;
                    f[k] = in->dtype == LOOM_I32 ? (float)(int)(u * 10) : in->type == LOOM_ONNX_BOOL ? (u < 0.5f) : u;
                }
                s = loom_onnx_to_dtype(ctx, LOOM_ONNX_FLOAT, f, (size_t)count, in->dtype, buf);
                free(f);
            } else {
                s = LOOM_E_OOM;
            }
        } else {
            fprintf(stderr, "loom %s: input \"%s\" (%s", cmd, in->name, cli_numpy_name(in->type));
            for (int k = 0; k < in->ndim; k++)
                fprintf(stderr, "%s%lld", k ? "x" : " ", (long long)in->shape[k]);
            fprintf(stderr, ") is not given: --input %s=FILE.npy, or --random\n", in->name);
            free(buf);
            cli_model_close(m);
            return CLI_EXIT_USAGE;
        }
        if (s == LOOM_OK)
            s = loom_program_set_input(m->p, in->name, buf, bytes);
        free(buf);
        if (s != LOOM_OK) {
            fprintf(stderr, "loom %s: input \"%s\": %s\n", cmd, in->name, loom_last_error(ctx));
            cli_model_close(m);
            return 1;
        }
    }
    return 0;
}

void cli_model_close(cli_model *m)
{
    loom_program_destroy(m->p);
    loom_graph_destroy(m->g);
    loom_onnx_info_free(&m->info);
    loom_state_destroy(m->st);
    m->p = NULL;
    m->g = NULL;
    m->st = NULL;
}
