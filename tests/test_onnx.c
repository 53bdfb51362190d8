/* The ONNX importer on models these tests build themselves (protobuf-c's
 * structs, tests/onnx_build.c): values against the host on every device,
 * folding of the shape arithmetic exporters emit, symbolic dims,
 * initializer encodings and dtypes, external data, every refusal with its
 * status and message (the graph NULL and the state untouched), a sweep of
 * corrupt files (truncations, flipped bytes, oversize dims, missing
 * initializers) that must never crash, allocation failures, and the
 * export of a Sequential model read back. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"
#include "onnx_build.h"
#include "../tools/loom/npy.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define F LOOM_ONNX_FLOAT
#define I64 LOOM_ONNX_INT64

static char tmpdir[64];

static void setup(void)
{
    strcpy(tmpdir, "/tmp/loom_onnx_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
    char cmd[128];
    /* only the folder this fixture made */
    snprintf(cmd, sizeof cmd, "%s", tmpdir);
    const char *names[] = {"m.onnx", "w.bin", "sub/w.bin", "seq.onnx", "x.npy", "y.npy", "out.txt", "err.txt",
                           "trace.json", "bench.json", NULL};
    for (int i = 0; names[i]; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s/%s", tmpdir, names[i]);
        remove(p);
    }
    char sub[256];
    snprintf(sub, sizeof sub, "%s/sub", tmpdir);
    rmdir(sub);
    rmdir(cmd);
}

static const char *tpath(const char *name)
{
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static void write_file(const char *path, const void *d, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(d, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* Loads packed bytes; returns the status, *g the graph. */
static loom_status load_bytes(loom_ctx *ctx, ob_model *m, loom_graph **g, loom_state *st, const loom_onnx_opts *o,
                              loom_onnx_info *info)
{
    size_t n;
    uint8_t *d = ob_pack(m, &n);
    loom_status s = loom_onnx_load_memory(ctx, d, n, g, st, o, info);
    free(d);
    return s;
}

static void expect_fail(loom_ctx *ctx, ob_model *m, loom_status want, const char *const *parts)
{
    loom_graph *g = (loom_graph *)&g;
    loom_onnx_info info;
    loom_status s = load_bytes(ctx, m, &g, NULL, NULL, &info);
    ck_assert_msg(s == want, "status %s, expected %s: %s", loom_status_str(s), loom_status_str(want),
                  loom_last_error(ctx));
    ck_assert_ptr_null(g);
    ck_assert_int_eq(info.nnodes, 0);
    for (int i = 0; parts && parts[i]; i++)
        ck_assert_msg(strstr(loom_last_error(ctx), parts[i]), "message \"%s\" lacks \"%s\"", loom_last_error(ctx),
                      parts[i]);
}

/* ---- a small MLP: MatMul + Add + Relu, Gemm, Softmax ---- */

static const int64_t s_w1[2] = {4, 5}, s_b1[1] = {5}, s_w2[2] = {6, 5}, s_b2[1] = {6};

static ob_model *mlp_model(float *w1, float *b1, float *w2, float *b2)
{
    tu_fill(w1, 20, 1, -1, 1);
    tu_fill(b1, 5, 2, -1, 1);
    tu_fill(w2, 30, 3, -1, 1);
    tu_fill(b2, 6, 4, -1, 1);
    ob_model *m = ob_new(17);
    int64_t sx[2] = {-1, 4}, sy[2] = {-1, 6};
    ob_input(m, "x", F, 2, sx);
    ob_output(m, "y", F, 2, sy);
    ob_init(m, ob_tensor_f32(m, "w1", 2, s_w1, w1, 0));
    ob_init(m, ob_tensor_f32(m, "b1", 1, s_b1, b1, 1));
    ob_init(m, ob_tensor_f32(m, "w2", 2, s_w2, w2, 0));
    ob_init(m, ob_tensor_f32(m, "b2", 1, s_b2, b2, 0));
    ob_node(m, "MatMul", "mm", "x,w1", "h0");
    ob_node(m, "Add", "add", "h0,b1", "h1");
    ob_node(m, "Relu", "relu", "h1", "h2");
    Onnx__NodeProto *gm = ob_node(m, "Gemm", "gemm", "h2,w2,b2", "z");
    ob_attr_int(m, gm, "transB", 1);
    ob_attr_float(m, gm, "alpha", 0.5f);
    Onnx__NodeProto *sm = ob_node(m, "Softmax", "softmax", "z", "y");
    ob_attr_int(m, sm, "axis", -1);
    return m;
}

static void mlp_host(const float *x, int64_t n, const float *w1, const float *b1, const float *w2, const float *b2,
                     float *y)
{
    for (int64_t r = 0; r < n; r++) {
        float h[5], z[6], mx = -INFINITY, sum = 0;
        for (int j = 0; j < 5; j++) {
            double a = b1[j];
            for (int k = 0; k < 4; k++)
                a += (double)x[r * 4 + k] * w1[k * 5 + j];
            h[j] = a > 0 ? (float)a : 0;
        }
        for (int j = 0; j < 6; j++) {
            double a = 0;
            for (int k = 0; k < 5; k++)
                a += (double)h[k] * w2[j * 5 + k];
            z[j] = (float)(0.5 * a + b2[j]);
            mx = z[j] > mx ? z[j] : mx;
        }
        for (int j = 0; j < 6; j++)
            sum += expf(z[j] - mx);
        for (int j = 0; j < 6; j++)
            y[r * 6 + j] = expf(z[j] - mx) / sum;
    }
}

START_TEST(mlp_on_every_device)
{
    loom_ctx *ctx = tu_ctx();
    char specs[8][32];
    int nd = tu_devices(ctx, specs, 8);
    float w1[20], b1[5], w2[30], b2[6], x[12], want[18], got[18];
    ob_model *m = mlp_model(w1, b1, w2, b2);
    size_t n;
    uint8_t *bytes = ob_pack(m, &n);
    write_file(tpath("m.onnx"), bytes, n);
    tu_fill(x, 12, 9, -2, 2);
    mlp_host(x, 3, w1, b1, w2, b2, want);
    for (int d = 0; d < nd; d++) {
        loom_device *dev = tu_open(ctx, specs[d]);
        loom_state *st = NULL;
        ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
        loom_onnx_opts o;
        loom_onnx_opts_default(&o);
        o.batch = 3;
        o.prefix = "m/";
        loom_graph *g = NULL;
        loom_onnx_info info;
        loom_status s = loom_onnx_load(ctx, tpath("m.onnx"), &g, st, &o, &info);
        ck_assert_msg(s == LOOM_OK, "%s: %s", specs[d], loom_last_error(ctx));
        ck_assert_int_eq(info.ninputs, 1);
        ck_assert_str_eq(info.inputs[0].name, "x");
        ck_assert_int_eq(info.inputs[0].shape[0], 3);
        ck_assert_int_eq(info.inputs[0].used, 1);
        ck_assert_int_eq(info.noutputs, 1);
        ck_assert_int_eq(info.outputs[0].ndim, 2);
        ck_assert_int_eq(info.outputs[0].shape[1], 6);
        ck_assert_int_eq(info.nnodes, 5);
        ck_assert_str_eq(info.nodes[3].op_type, "Gemm");
        ck_assert_int_gt(info.nodes[3].count, 0);
        ck_assert_int_eq(info.nparams, 4);
        ck_assert_int_eq(info.opset, 17);
        ck_assert_int_eq(loom_state_count(st), 4);
        float back[30];
        ck_assert_int_eq(loom_state_read(st, "m/w2", back, sizeof back), LOOM_OK);
        ck_assert_mem_eq(back, w2, sizeof back);
        const char *names[1] = {"x"};
        const void *data[1] = {x};
        size_t sizes[1] = {sizeof x};
        loom_program *p = tu_compile_run(g, dev, st, 1, names, data, sizes);
        ck_assert_int_eq(loom_program_read(p, "y", got, sizeof got), LOOM_OK);
        tu_assert_close(got, want, 18, 1e-5, 1e-4);
        loom_program_destroy(p);
        loom_graph_destroy(g);
        loom_onnx_info_free(&info);
        loom_state_destroy(st);
        loom_device_close(dev);
    }
    free(bytes);
    ob_free(m);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- shape arithmetic an exporter emits ---- */

/* y = Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1])) * 2, with a
 * ConstantOfShape and a Range folded too. */
START_TEST(shape_chain_folds)
{
    loom_ctx *ctx = tu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_state *st = NULL;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    ob_model *m = ob_new(13);
    int64_t sx[3] = {2, 3, 4}, sy[2] = {2, 12};
    ob_input(m, "x", F, 3, sx);
    ob_output(m, "y", F, 2, sy);
    ob_node(m, "Shape", "shape", "x", "s");
    int64_t zero = 0, minus1 = -1, one = 1;
    Onnx__NodeProto *c0 = ob_node(m, "Constant", "c0", "", "i0");
    ob_attr_tensor(m, c0, "value", ob_tensor_i64(m, "", 0, NULL, &zero, 1));
    ob_node(m, "Gather", "gather", "s,i0", "n");
    Onnx__NodeProto *ax = ob_node(m, "Constant", "ax", "", "axes");
    int64_t s1[1] = {1};
    ob_attr_tensor(m, ax, "value", ob_tensor_i64(m, "", 1, s1, &zero, 0));
    ob_node(m, "Unsqueeze", "unsq", "n,axes", "n1");
    ob_init(m, ob_tensor_i64(m, "m1", 1, s1, &minus1, 0));
    Onnx__NodeProto *cc = ob_node(m, "Concat", "concat", "n1,m1", "shp");
    ob_attr_int(m, cc, "axis", 0);
    ob_node(m, "Reshape", "reshape", "x,shp", "r");
    /* two = ConstantOfShape([1]) filled with 2, then Range(0, 1, 1) */
    Onnx__NodeProto *cs = ob_node(m, "ConstantOfShape", "cos", "one_shape", "two");
    float twof = 2;
    ob_attr_tensor(m, cs, "value", ob_tensor_f32(m, "", 1, s1, &twof, 0));
    ob_init(m, ob_tensor_i64(m, "one_shape", 1, s1, &one, 0));
    ob_node(m, "Mul", "mul", "r,two", "y");
    loom_graph *g = NULL;
    loom_onnx_info info;
    loom_status s = load_bytes(ctx, m, &g, st, NULL, &info);
    ck_assert_msg(s == LOOM_OK, "%s", loom_last_error(ctx));
    /* the shape arithmetic left no op behind; the initializers it read
     * are no state tensors */
    for (int i = 0; i < info.nnodes; i++)
        if (strcmp(info.nodes[i].op_type, "Reshape") && strcmp(info.nodes[i].op_type, "Mul"))
            ck_assert_msg(info.nodes[i].count == 0, "%s made %d loom nodes", info.nodes[i].name,
                          info.nodes[i].count);
    ck_assert_int_eq(info.nparams, 0);
    ck_assert_int_eq(loom_state_count(st), 0);
    ck_assert_int_eq(info.outputs[0].ndim, 2);
    ck_assert_int_eq(info.outputs[0].shape[1], 12);
    float x[24], y[24];
    for (int i = 0; i < 24; i++)
        x[i] = (float)i;
    const char *names[1] = {"x"};
    const void *data[1] = {x};
    size_t sizes[1] = {sizeof x};
    loom_program *p = tu_compile_run(g, dev, st, 1, names, data, sizes);
    ck_assert_int_eq(loom_program_read(p, "y", y, sizeof y), LOOM_OK);
    for (int i = 0; i < 24; i++)
        ck_assert_float_eq(y[i], 2.0f * (float)i);
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_onnx_info_free(&info);
    ob_free(m);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* Slice, Concat and Transpose at run time, Where on a comparison, an
 * integer input cast to float, ReduceMean over two axes. */
START_TEST(movement_and_masks)
{
    loom_ctx *ctx = tu_ctx();
    char specs[8][32];
    int nd = tu_devices(ctx, specs, 8);
    ob_model *m = ob_new(18);
    int64_t sx[2] = {2, 6}, sk[1] = {2}, sy[2] = {2, 4}, sr[2] = {1, 1};
    ob_input(m, "x", F, 2, sx);
    ob_input(m, "k", I64, 1, sk);
    ob_output(m, "y", F, 2, sy);
    ob_output(m, "r", F, 2, sr);
    int64_t st0[1] = {1}, en0[1] = {5}, ax1[1] = {1}, ax01[2] = {0, 1};
    int64_t s1[1] = {1};
    ob_init(m, ob_tensor_i64(m, "starts", 1, s1, st0, 0));
    ob_init(m, ob_tensor_i64(m, "ends", 1, s1, en0, 0));
    ob_init(m, ob_tensor_i64(m, "axes", 1, s1, ax1, 0));
    ob_init(m, ob_tensor_i64(m, "raxes", 1, sk, ax01, 0));
    ob_node(m, "Slice", "slice", "x,starts,ends,axes", "a");         /* [2,4]: columns 1..4 */
    Onnx__NodeProto *cc = ob_node(m, "Concat", "cat", "a,a", "aa"); /* [2,8] */
    ob_attr_int(m, cc, "axis", 1);
    Onnx__NodeProto *tr = ob_node(m, "Transpose", "tr", "aa", "t"); /* [8,2] */
    int64_t perm[2] = {1, 0};
    ob_attr_ints(m, tr, "perm", 2, perm);
    ob_node(m, "Cast", "cast", "k", "kf");
    ob_attr_int(m, ob_graph(m)->node[ob_graph(m)->n_node - 1], "to", F);
    ob_node(m, "Less", "less", "a,kf", "mask"); /* kf [2] broadcast over rows? no: over the last axis */
    ob_node(m, "Where", "where", "mask,a,kf", "y0");
    ob_node(m, "Identity", "id", "y0", "y");
    Onnx__NodeProto *rm = ob_node(m, "ReduceMean", "rmean", "t,raxes", "r");
    ob_attr_int(m, rm, "keepdims", 1);
    float x[12];
    for (int i = 0; i < 12; i++)
        x[i] = (float)(i % 6) - 1.0f;
    int64_t k[2] = {1, 2};
    /* a = x[:, 1:5] = [0,1,2,3] per row; kf broadcast [2] does not fit [2,4]:
     * the expected error names both shapes */
    loom_graph *g = NULL;
    loom_status s = load_bytes(ctx, m, &g, NULL, NULL, NULL);
    ck_assert_int_eq(s, LOOM_E_SHAPE);
    ck_assert_ptr_null(g);
    ck_assert_msg(strstr(loom_last_error(ctx), "less") && strstr(loom_last_error(ctx), "[2,4]") &&
                      strstr(loom_last_error(ctx), "[2]"),
                  "%s", loom_last_error(ctx));
    /* with k of [4] it fits */
    int64_t sk4[1] = {4};
    ob_graph(m)->input[1]->type->tensor_type->shape->dim[0]->dim_value = 4;
    (void)sk4;
    int64_t k4[4] = {1, 2, 0, 5};
    for (int d = 0; d < nd; d++) {
        loom_device *dev = tu_open(ctx, specs[d]);
        loom_state *st = NULL;
        ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
        loom_onnx_info info;
        s = load_bytes(ctx, m, &g, st, NULL, &info);
        ck_assert_msg(s == LOOM_OK, "%s: %s", specs[d], loom_last_error(ctx));
        ck_assert_int_eq(info.inputs[1].dtype, LOOM_I32);
        int32_t k32[4];
        ck_assert_int_eq(loom_onnx_to_dtype(ctx, I64, k4, 4, LOOM_I32, k32), LOOM_OK);
        const char *names[2] = {"x", "k"};
        const void *data[2] = {x, k32};
        size_t sizes[2] = {sizeof x, sizeof k32};
        loom_program *p = tu_compile_run(g, dev, st, 2, names, data, sizes);
        float y[8], r;
        ck_assert_int_eq(loom_program_read(p, "y", y, sizeof y), LOOM_OK);
        ck_assert_int_eq(loom_program_read(p, "r", &r, sizeof r), LOOM_OK);
        for (int row = 0; row < 2; row++)
            for (int c = 0; c < 4; c++) {
                float a = x[row * 6 + 1 + c];
                float want = a < (float)k4[c] ? a : (float)k4[c];
                ck_assert_msg(y[row * 4 + c] == want, "%s: y[%d][%d] = %g, want %g", specs[d], row, c,
                              (double)y[row * 4 + c], (double)want);
            }
        ck_assert_msg(fabsf(r - 1.5f) < 1e-6f, "%s: mean %g", specs[d], (double)r);
        loom_program_destroy(p);
        loom_graph_destroy(g);
        loom_onnx_info_free(&info);
        loom_state_destroy(st);
        loom_device_close(dev);
    }
    (void)k;
    ob_free(m);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- symbolic dims, initializer encodings ---- */

START_TEST(symbolic_dims)
{
    loom_ctx *ctx = tu_ctx();
    ob_model *m = ob_new(13);
    int64_t sx[3] = {-1, -2, 4};
    ob_input(m, "x", F, 3, sx);
    ob_output(m, "y", F, 3, sx);
    ob_node(m, "Relu", "r", "x", "y");
    loom_onnx_opts o;
    loom_onnx_opts_default(&o);
    o.batch = 5;
    loom_onnx_dim dims[1] = {{"S", 7}};
    o.dims = dims;
    o.ndims = 1;
    loom_graph *g = NULL;
    loom_onnx_info info;
    ck_assert_int_eq(load_bytes(ctx, m, &g, NULL, &o, &info), LOOM_OK);
    ck_assert_int_eq(info.inputs[0].shape[0], 5);
    ck_assert_int_eq(info.inputs[0].shape[1], 7);
    ck_assert_int_eq(info.inputs[0].shape[2], 4);
    loom_graph_destroy(g);
    loom_onnx_info_free(&info);
    /* a caller's whole shape wins */
    loom_onnx_shape sh = {"x", 3, {2, 2, 4, 0}};
    o.shapes = &sh;
    o.nshapes = 1;
    ck_assert_int_eq(load_bytes(ctx, m, &g, NULL, &o, &info), LOOM_OK);
    ck_assert_int_eq(info.outputs[0].shape[0], 2);
    loom_graph_destroy(g);
    loom_onnx_info_free(&info);
    /* a dim value below 1 is refused, naming the option */
    dims[0].value = 0;
    o.nshapes = 0;
    ck_assert_int_eq(load_bytes(ctx, m, &g, NULL, &o, NULL), LOOM_E_INVALID);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "\"S\""));
    ob_free(m);
    loom_ctx_destroy(ctx);
}
END_TEST

START_TEST(initializer_dtypes)
{
    loom_ctx *ctx = tu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_state *st = NULL;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    ob_model *m = ob_new(13);
    int64_t s4[1] = {4};
    ob_input(m, "x", F, 1, s4);
    ob_output(m, "y", F, 1, s4);
    ob_output(m, "h", LOOM_ONNX_FLOAT16, 1, s4);
    float vals[4] = {1.5f, -2.0f, 0.25f, 3.0f};
    uint16_t h[4], bf[4];
    loom_convert(LOOM_F16, h, LOOM_F32, vals, 4);
    loom_convert(LOOM_BF16, bf, LOOM_F32, vals, 4);
    ob_init(m, ob_tensor(m, "wh", LOOM_ONNX_FLOAT16, 1, s4, h, sizeof h));
    Onnx__TensorProto *tb = ob_tensor(m, "wb", LOOM_ONNX_BFLOAT16, 1, s4, NULL, 0);
    int32_t bfi[4];
    for (int i = 0; i < 4; i++)
        bfi[i] = bf[i];
    tb->int32_data = bfi;
    tb->n_int32_data = 4;
    ob_init(m, tb);
    uint8_t bools[4] = {1, 0, 1, 1};
    ob_init(m, ob_tensor(m, "wz", LOOM_ONNX_BOOL, 1, s4, bools, 4));
    int64_t i64[4] = {3, -4, 5, 100000};
    ob_init(m, ob_tensor_i64(m, "wi", 1, s4, i64, 1));
    /* y = x * cast(wb, f32) + cast(wi, f32) where wz, else x; h = wh */
    ob_node(m, "Cast", "cb", "wb", "bff");
    ob_attr_int(m, ob_graph(m)->node[0], "to", F);
    ob_node(m, "Cast", "ci", "wi", "iff");
    ob_attr_int(m, ob_graph(m)->node[1], "to", F);
    ob_node(m, "Mul", "mul", "x,bff", "p");
    ob_node(m, "Add", "add", "p,iff", "q");
    ob_node(m, "Where", "where", "wz,q,x", "y");
    ob_node(m, "Identity", "id", "wh", "h");
    loom_graph *g = NULL;
    loom_onnx_info info;
    loom_status s = load_bytes(ctx, m, &g, st, NULL, &info);
    ck_assert_msg(s == LOOM_OK, "%s", loom_last_error(ctx));
    /* the folded casts consumed wb and wi; wh and wz are parameters */
    ck_assert_int_eq(info.nparams, 2);
    loom_dtype dt;
    int ndim;
    int64_t shape[4];
    for (int i = 0; i < loom_state_count(st); i++) {
        const char *nm;
        ck_assert_int_eq(loom_state_entry(st, i, &nm, &dt, &ndim, shape), LOOM_OK);
        ck_assert_int_eq(dt, strcmp(nm, "wh") ? LOOM_F32 : LOOM_F16);
    }
    ck_assert_int_eq(info.outputs[1].dtype, LOOM_F16);
    float x[4] = {1, 2, 3, 4}, y[4];
    const char *names[1] = {"x"};
    const void *data[1] = {x};
    size_t sizes[1] = {sizeof x};
    loom_program *p = tu_compile_run(g, dev, st, 1, names, data, sizes);
    ck_assert_int_eq(loom_program_read(p, "y", y, sizeof y), LOOM_OK);
    for (int i = 0; i < 4; i++) {
        float want = bools[i] ? x[i] * vals[i] + (float)i64[i] : x[i];
        ck_assert_msg(y[i] == want, "y[%d] = %g, want %g", i, (double)y[i], (double)want);
    }
    uint16_t hb[4];
    ck_assert_int_eq(loom_program_read(p, "h", hb, sizeof hb), LOOM_OK);
    ck_assert_mem_eq(hb, h, sizeof h);
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_onnx_info_free(&info);
    /* an int64 used as data beyond i32: refused, naming it and the value */
    ob_model *m2 = ob_new(13);
    ob_output(m2, "y", I64, 1, s4);
    int64_t big[4] = {1, 2, (int64_t)1 << 40, 3};
    ob_init(m2, ob_tensor_i64(m2, "big", 1, s4, big, 0));
    ob_input(m2, "x", I64, 1, s4);
    ob_node(m2, "Add", "add", "x,big", "y");
    int before = loom_state_count(st);
    s = load_bytes(ctx, m2, &g, st, NULL, NULL);
    ck_assert_int_eq(s, LOOM_E_UNSUPPORTED);
    ck_assert_ptr_null(g);
    ck_assert_msg(strstr(loom_last_error(ctx), "big") && strstr(loom_last_error(ctx), "1099511627776"), "%s",
                  loom_last_error(ctx));
    ck_assert_int_eq(loom_state_count(st), before);
    ob_free(m2);
    ob_free(m);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

START_TEST(external_data)
{
    loom_ctx *ctx = tu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_state *st = NULL;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    float w[6] = {1, 2, 3, 4, 5, 6}, file[10] = {0};
    memcpy(file + 3, w, sizeof w);
    write_file(tpath("w.bin"), file, sizeof file);
    const char *cases[][2] = {
        {"w.bin", NULL},                  /* loads */
        {"../w.bin", "leaves the model's folder"},
        {"/etc/passwd", "leaves the model's folder"},
        {"nowhere.bin", "cannot open external data"},
    };
    int64_t s6[1] = {6};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        ob_model *m = ob_new(13);
        ob_input(m, "x", F, 1, s6);
        ob_output(m, "y", F, 1, s6);
        ob_init(m, ob_tensor_external(m, "w", F, 1, s6, cases[c][0], 12, 24));
        ob_node(m, "Mul", "mul", "x,w", "y");
        size_t n;
        uint8_t *d = ob_pack(m, &n);
        write_file(tpath("m.onnx"), d, n);
        free(d);
        loom_graph *g = NULL;
        loom_status s = loom_onnx_load(ctx, tpath("m.onnx"), &g, st, NULL, NULL);
        if (!cases[c][1]) {
            ck_assert_msg(s == LOOM_OK, "%s", loom_last_error(ctx));
            float back[6];
            ck_assert_int_eq(loom_state_read(st, "w", back, sizeof back), LOOM_OK);
            ck_assert_mem_eq(back, w, sizeof w);
            loom_graph_destroy(g);
        } else {
            ck_assert_msg(s == LOOM_E_FORMAT || s == LOOM_E_IO, "%s: %s", cases[c][0], loom_status_str(s));
            ck_assert_ptr_null(g);
            ck_assert_msg(strstr(loom_last_error(ctx), cases[c][1]) && strstr(loom_last_error(ctx), "\"w\""), "%s",
                          loom_last_error(ctx));
        }
        /* the same model from memory: no folder to read it from */
        if (!cases[c][1]) {
            size_t bn;
            uint8_t *bd = ob_pack(m, &bn);
            s = loom_onnx_load_memory(ctx, bd, bn, &g, NULL, NULL, NULL);
            free(bd);
            ck_assert_int_eq(s, LOOM_E_UNSUPPORTED);
            ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "base_dir"));
        }
        ob_free(m);
    }
    /* a length that is not the shape's */
    ob_model *m = ob_new(13);
    ob_input(m, "x", F, 1, s6);
    ob_output(m, "y", F, 1, s6);
    ob_init(m, ob_tensor_external(m, "w", F, 1, s6, "w.bin", 12, 20));
    ob_node(m, "Mul", "mul", "x,w", "y");
    size_t n;
    uint8_t *d = ob_pack(m, &n);
    write_file(tpath("m.onnx"), d, n);
    free(d);
    loom_graph *g = NULL;
    ck_assert_int_eq(loom_onnx_load(ctx, tpath("m.onnx"), &g, NULL, NULL, NULL), LOOM_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "length 20"));
    ob_free(m);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- refusals ---- */

static ob_model *relu_model(int64_t opset)
{
    ob_model *m = ob_new(opset);
    int64_t s[2] = {2, 3};
    ob_input(m, "x", F, 2, s);
    ob_output(m, "y", F, 2, s);
    ob_node(m, "Relu", "r", "x", "y");
    return m;
}

START_TEST(refusals)
{
    loom_ctx *ctx = tu_ctx();
    int64_t s[2] = {2, 3};
    {
        ob_model *m = relu_model(13);
        ob_node(m, "FancyOp", "fancy", "y", "z");
        const char *p[] = {"\"fancy\"", "FancyOp", "not supported", NULL};
        expect_fail(ctx, m, LOOM_E_UNSUPPORTED, p);
        ob_free(m);
    }
    {
        ob_model *m = relu_model(13);
        ob_attr_int(m, ob_graph(m)->node[0], "shiny", 1);
        const char *p[] = {"\"r\"", "Relu", "attribute 'shiny'", NULL};
        expect_fail(ctx, m, LOOM_E_UNSUPPORTED, p);
        ob_free(m);
    }
    {
        ob_model *m = relu_model(11);
        const char *p[] = {"opset 11", "13", NULL};
        expect_fail(ctx, m, LOOM_E_UNSUPPORTED, p);
        ob_free(m);
    }
    {
        /* an attribute value the builder does not take */
        ob_model *m = relu_model(20);
        Onnx__NodeProto *n = ob_node(m, "Gelu", "gelu", "y", "z");
        ob_attr_string(m, n, "approximate", "cubic");
        ob_output(m, "z", F, 2, s);
        const char *p[] = {"\"gelu\"", "Gelu", "approximate", "cubic", NULL};
        expect_fail(ctx, m, LOOM_E_UNSUPPORTED, p);
        ob_free(m);
    }
    {
        ob_model *m = relu_model(13);
        ob_node(m, "Add", "add", "y,ghost", "z");
        const char *p[] = {"\"add\"", "\"ghost\"", "defined by no node", NULL};
        expect_fail(ctx, m, LOOM_E_FORMAT, p);
        ob_free(m);
    }
    {
        /* a -> b -> a */
        ob_model *m = relu_model(13);
        ob_node(m, "Neg", "n1", "b", "a");
        ob_node(m, "Neg", "n2", "a", "b");
        const char *p[] = {"cycle", "\"n1\"", NULL};
        expect_fail(ctx, m, LOOM_E_FORMAT, p);
        ob_free(m);
    }
    {
        ob_model *m = relu_model(13);
        ob_node(m, "Neg", "again", "x", "y");
        const char *p[] = {"\"y\"", "defined twice", NULL};
        expect_fail(ctx, m, LOOM_E_FORMAT, p);
        ob_free(m);
    }
    {
        /* the same by a node without a name (crashed: found by fuzz_onnx) */
        ob_model *m = relu_model(13);
        ob_node(m, "Neg", NULL, "x", "y");
        Onnx__AttributeProto *a = NULL;
        (void)a;
        const char *p[] = {"\"y\"", "defined twice", "Neg", NULL};
        expect_fail(ctx, m, LOOM_E_FORMAT, p);
        ob_free(m);
    }
    {
        /* a ConstantOfShape value of two values (read after it was freed:
         * found by fuzz_onnx) */
        ob_model *m = relu_model(13);
        int64_t two = 2, s1[1] = {1};
        float vals[2] = {1, 2};
        ob_init(m, ob_tensor_i64(m, "shp", 1, s1, &two, 0));
        Onnx__NodeProto *n = ob_node(m, "ConstantOfShape", "cos", "shp", "k");
        ob_attr_tensor(m, n, "value", ob_tensor_f32(m, "", 1, &two, vals, 0));
        ob_output(m, "k", F, 1, &two);
        const char *p[] = {"\"cos\"", "holds 2 values, one expected", NULL};
        expect_fail(ctx, m, LOOM_E_FORMAT, p);
        ob_free(m);
    }
    {
        /* an attribute without a name on a node without a name */
        ob_model *m = relu_model(13);
        Onnx__NodeProto *n = ob_node(m, "Neg", NULL, "y", "z");
        ob_attr_int(m, n, "x", 1);
        n->attribute[0]->name = NULL;
        ob_output(m, "z", F, 2, s);
        const char *p[] = {"node 1 (Neg)", "attribute ''", NULL};
        expect_fail(ctx, m, LOOM_E_UNSUPPORTED, p);
        ob_free(m);
    }
    {
        ob_model *m = relu_model(13);
        ob_output(m, "nothing", F, 2, s);
        const char *p[] = {"graph output", "\"nothing\"", NULL};
        expect_fail(ctx, m, LOOM_E_FORMAT, p);
        ob_free(m);
    }
    {
        /* an initializer shorter than its shape, raw and typed */
        for (int typed = 0; typed < 2; typed++) {
            ob_model *m = relu_model(13);
            float w[6] = {0};
            Onnx__TensorProto *t = ob_tensor_f32(m, "short", 2, s, w, typed);
            if (typed)
                t->n_float_data = 5;
            else
                t->raw_data.len = 20;
            ob_init(m, t);
            ob_node(m, "Add", "add", "y,short", "z");
            ob_output(m, "z", F, 2, s);
            const char *p[] = {"\"short\"", typed ? "float_data holds 5 values" : "raw_data holds 20 bytes",
                               typed ? "needs 6" : "needs 24", NULL};
            expect_fail(ctx, m, LOOM_E_FORMAT, p);
            ob_free(m);
        }
    }
    {
        /* 5 dims where loom holds 4 */
        ob_model *m = ob_new(13);
        int64_t s5[5] = {1, 2, 1, 2, 1};
        ob_input(m, "x", F, 5, s5);
        ob_output(m, "y", F, 5, s5);
        ob_node(m, "Relu", "r", "x", "y");
        const char *p[] = {"\"x\"", "5 dims", NULL};
        expect_fail(ctx, m, LOOM_E_UNSUPPORTED, p);
        ob_free(m);
    }
    {
        ob_model *m = ob_new(13);
        ob_input(m, "x", F, -1, NULL);
        ob_output(m, "y", F, -1, NULL);
        ob_node(m, "Relu", "r", "x", "y");
        const char *p[] = {"\"x\"", "no shape", NULL};
        expect_fail(ctx, m, LOOM_E_UNSUPPORTED, p);
        ob_free(m);
    }
    {
        ob_model *m = ob_new(13);
        ob_input(m, "x", LOOM_ONNX_STRING, 2, s);
        ob_output(m, "y", LOOM_ONNX_STRING, 2, s);
        ob_node(m, "Identity", "i", "x", "y");
        const char *p[] = {"\"x\"", "string", NULL};
        expect_fail(ctx, m, LOOM_E_UNSUPPORTED, p);
        ob_free(m);
    }
    {
        /* an attribute of the wrong type */
        ob_model *m = ob_new(13);
        ob_input(m, "x", F, 2, s);
        ob_output(m, "y", F, 2, s);
        Onnx__NodeProto *n = ob_node(m, "Softmax", "sm", "x", "y");
        ob_attr_float(m, n, "axis", 1.0f);
        const char *p[] = {"\"sm\"", "attribute 'axis' is FLOAT, INT expected", NULL};
        expect_fail(ctx, m, LOOM_E_FORMAT, p);
        ob_free(m);
    }
    {
        /* not a model at all */
        loom_graph *g = (loom_graph *)&g;
        const char junk[] = "this is not a protobuf \xff\xff\xff\xff\xff";
        ck_assert_int_eq(loom_onnx_load_memory(ctx, junk, sizeof junk, &g, NULL, NULL, NULL), LOOM_E_FORMAT);
        ck_assert_ptr_null(g);
        ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "byte"));
        ck_assert_int_eq(loom_onnx_load_memory(ctx, "", 0, &g, NULL, NULL, NULL), LOOM_E_FORMAT);
        ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "no graph"));
        ck_assert_int_eq(loom_onnx_load(ctx, "/nonexistent/m.onnx", &g, NULL, NULL, NULL), LOOM_E_IO);
        ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "/nonexistent/m.onnx"));
    }
    loom_ctx_destroy(ctx);
}
END_TEST

/* A failed load leaves a state that already holds tensors as it was; a
 * shape conflict with it is refused before anything is written. */
START_TEST(all_or_nothing)
{
    loom_ctx *ctx = tu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_state *st = NULL;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    float old[20];
    tu_fill(old, 20, 7, -1, 1);
    int64_t s45[2] = {4, 5}, s3[1] = {3};
    ck_assert_int_eq(loom_state_write(st, "keep", LOOM_F32, 2, s45, old), LOOM_OK);
    ck_assert_int_eq(loom_state_write(st, "b1", LOOM_F32, 1, s3, old), LOOM_OK);
    float w1[20], b1[5], w2[30], b2[6];
    ob_model *m = mlp_model(w1, b1, w2, b2);
    /* b1 exists with shape [3]: refused, nothing written */
    loom_graph *g = (loom_graph *)&g;
    ck_assert_int_eq(load_bytes(ctx, m, &g, st, NULL, NULL), LOOM_E_SHAPE);
    ck_assert_ptr_null(g);
    ck_assert_msg(strstr(loom_last_error(ctx), "\"b1\"") && strstr(loom_last_error(ctx), "[3]") &&
                      strstr(loom_last_error(ctx), "[5]"),
                  "%s", loom_last_error(ctx));
    ck_assert_int_eq(loom_state_count(st), 2);
    /* a node refused after the initializers were read */
    ck_assert_int_eq(loom_state_remove(st, "b1"), LOOM_OK);
    ob_node(m, "Unknowable", "last", "y", "zz");
    ck_assert_int_eq(load_bytes(ctx, m, &g, st, NULL, NULL), LOOM_E_UNSUPPORTED);
    ck_assert_ptr_null(g);
    ck_assert_int_eq(loom_state_count(st), 1);
    float back[20];
    ck_assert_int_eq(loom_state_read(st, "keep", back, sizeof back), LOOM_OK);
    ck_assert_mem_eq(back, old, sizeof old);
    /* loom_state_remove refuses a tensor a live program binds */
    loom_graph *pg;
    ck_assert_int_eq(loom_graph_create(ctx, &pg), LOOM_OK);
    loom_tensor k = loom_param(pg, "keep", LOOM_F32, 2, s45, 0);
    loom_output(pg, loom_relu(pg, k), "out");
    loom_program *p = NULL;
    ck_assert_int_eq(loom_compile(pg, dev, st, NULL, &p), LOOM_OK);
    ck_assert_int_eq(loom_state_remove(st, "keep"), LOOM_E_STATE);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "\"keep\""));
    loom_program_destroy(p);
    ck_assert_int_eq(loom_state_remove(st, "keep"), LOOM_OK);
    ck_assert_int_eq(loom_state_remove(st, "keep"), LOOM_E_INVALID);
    ck_assert_int_eq(loom_state_count(st), 0);
    loom_graph_destroy(pg);
    ob_free(m);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- the corrupt-model sweep ---- */

static int clean_status(loom_status s)
{
    return s == LOOM_OK || s == LOOM_E_FORMAT || s == LOOM_E_UNSUPPORTED || s == LOOM_E_SHAPE ||
           s == LOOM_E_INVALID || s == LOOM_E_RANGE || s == LOOM_E_DTYPE;
}

static void sweep_one(loom_ctx *ctx, const uint8_t *d, size_t n, int *ok, int *refused)
{
    loom_graph *g = (loom_graph *)&g;
    loom_onnx_info info;
    loom_status s = loom_onnx_load_memory(ctx, d, n, &g, NULL, NULL, &info);
    ck_assert_msg(clean_status(s), "status %s: %s", loom_status_str(s), loom_last_error(ctx));
    if (s == LOOM_OK) {
        ck_assert_ptr_nonnull(g);
        loom_graph_destroy(g);
        loom_onnx_info_free(&info);
        (*ok)++;
    } else {
        ck_assert_ptr_null(g);
        ck_assert_int_gt(strlen(loom_last_error(ctx)), 10);
        (*refused)++;
    }
}

START_TEST(corrupt_sweep)
{
    loom_ctx *ctx = tu_ctx();
    float w1[20], b1[5], w2[30], b2[6];
    ob_model *m = mlp_model(w1, b1, w2, b2);
    size_t n;
    uint8_t *d = ob_pack(m, &n);
    uint8_t *c = malloc(n);
    int ok = 0, refused = 0;
    /* every truncation */
    for (size_t len = 0; len < n; len++) {
        memcpy(c, d, len);
        sweep_one(ctx, c, len, &ok, &refused);
    }
    ck_assert_int_gt(refused, (int)n / 2);
    /* every byte flipped, and each bit of the first 200 */
    for (size_t i = 0; i < n; i++) {
        memcpy(c, d, n);
        c[i] ^= 0xff;
        sweep_one(ctx, c, n, &ok, &refused);
        for (int bit = 0; i < 200 && bit < 8; bit++) {
            memcpy(c, d, n);
            c[i] ^= (uint8_t)(1u << bit);
            sweep_one(ctx, c, n, &ok, &refused);
        }
    }
    ck_assert_int_gt(ok, 0);
    /* oversize and negative dims of an initializer */
    int64_t huge[2] = {(int64_t)1 << 40, (int64_t)1 << 40}, neg[2] = {-2, 3};
    ob_graph(m)->initializer[0]->dims = huge;
    uint8_t *d2 = ob_pack(m, &n);
    loom_graph *g = (loom_graph *)&g;
    ck_assert_int_eq(loom_onnx_load_memory(ctx, d2, n, &g, NULL, NULL, NULL), LOOM_E_FORMAT);
    ck_assert_ptr_null(g);
    ck_assert_msg(strstr(loom_last_error(ctx), "\"w1\""), "%s", loom_last_error(ctx));
    free(d2);
    ob_graph(m)->initializer[0]->dims = neg;
    d2 = ob_pack(m, &n);
    ck_assert_int_eq(loom_onnx_load_memory(ctx, d2, n, &g, NULL, NULL, NULL), LOOM_E_FORMAT);
    ck_assert_msg(strstr(loom_last_error(ctx), "dim 0 is -2"), "%s", loom_last_error(ctx));
    free(d2);
    /* a missing initializer: w2 dropped */
    Onnx__GraphProto *gp = ob_graph(m);
    gp->initializer[0]->dims = (int64_t *)s_w1;
    gp->initializer[2] = gp->initializer[3];
    gp->n_initializer = 3;
    d2 = ob_pack(m, &n);
    ck_assert_int_eq(loom_onnx_load_memory(ctx, d2, n, &g, NULL, NULL, NULL), LOOM_E_FORMAT);
    ck_assert_msg(strstr(loom_last_error(ctx), "\"w2\"") && strstr(loom_last_error(ctx), "\"gemm\""), "%s",
                  loom_last_error(ctx));
    free(d2);
    /* an oversize input dim */
    int64_t big[2] = {(int64_t)1 << 62, 4};
    ob_model *m3 = ob_new(13);
    ob_input(m3, "x", F, 2, big);
    ob_output(m3, "y", F, 2, big);
    ob_node(m3, "Relu", "r", "x", "y");
    ck_assert_int_eq(load_bytes(ctx, m3, &g, NULL, NULL, NULL), LOOM_E_SHAPE);
    ck_assert_ptr_null(g);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "\"x\""));
    ob_free(m3);
    /* nesting deeper than the parser may recurse: ModelProto.graph ->
     * GraphProto.node -> NodeProto.attribute -> AttributeProto.g ->
     * GraphProto.node ..., 200 levels, built from the inside out */
    size_t depth = 200, cap = depth * 8 + 8, at = cap;
    uint8_t *nest = malloc(cap);
    for (size_t i = depth; i-- > 0;) {
        static const uint8_t tags[3] = {(1 << 3) | 2, (5 << 3) | 2, (6 << 3) | 2};
        size_t len = cap - at;
        uint8_t v[8];
        int nv = 0;
        do {
            v[nv++] = (uint8_t)((len & 0x7f) | (len > 0x7f ? 0x80 : 0));
            len >>= 7;
        } while (len);
        at -= (size_t)nv;
        memcpy(nest + at, v, (size_t)nv);
        nest[--at] = i == 0 ? (7 << 3) | 2 : tags[(i - 1) % 3];
    }
    ck_assert_int_eq(loom_onnx_load_memory(ctx, nest + at, cap - at, &g, NULL, NULL, NULL), LOOM_E_FORMAT);
    ck_assert_msg(strstr(loom_last_error(ctx), "deep"), "%s", loom_last_error(ctx));
    free(nest);
    free(c);
    free(d);
    ob_free(m);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- allocation failures ---- */

typedef struct failing {
    long n, fail_at, live;
} failing;

static void *fail_alloc(void *user, void *ptr, size_t osize, size_t nsize)
{
    failing *f = user;
    (void)osize;
    if (nsize == 0) {
        if (ptr)
            f->live--;
        free(ptr);
        return NULL;
    }
    if (++f->n == f->fail_at)
        return NULL;
    void *p = realloc(ptr, nsize);
    if (p && !ptr)
        f->live++;
    return p;
}

static void silent(void *u, loom_log_level l, const char *m)
{
    (void)u, (void)l, (void)m;
}

START_TEST(out_of_memory)
{
    float w1[20], b1[5], w2[30], b2[6];
    ob_model *m = mlp_model(w1, b1, w2, b2);
    size_t n;
    uint8_t *d = ob_pack(m, &n);
    int failures = 0;
    for (long k = 1;; k++) {
        failing fa = {0, 0, 0};
        loom_ctx_opts o;
        loom_ctx_opts_default(&o);
        o.alloc = fail_alloc;
        o.alloc_user = &fa;
        o.log = silent;
        o.backends = 1 << LOOM_BACKEND_CPU;
        loom_ctx *ctx = NULL;
        ck_assert_int_eq(loom_ctx_create(&o, &ctx), LOOM_OK);
        loom_device *dev = NULL;
        ck_assert_int_eq(loom_device_open(ctx, "cpu", &dev), LOOM_OK);
        long base = fa.live;
        loom_state *st = NULL;
        ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
        fa.n = 0;
        fa.fail_at = k;
        loom_graph *g = NULL;
        loom_onnx_info info;
        loom_status s = loom_onnx_load_memory(ctx, d, n, &g, st, NULL, &info);
        fa.fail_at = 0;
        if (s == LOOM_OK) {
            loom_graph_destroy(g);
            loom_onnx_info_free(&info);
            loom_state_destroy(st);
            loom_device_close(dev);
            loom_ctx_destroy(ctx);
            break;
        }
        ck_assert_msg(s == LOOM_E_OOM, "allocation %ld: %s (%s)", k, loom_status_str(s), loom_last_error(ctx));
        ck_assert_ptr_null(g);
        ck_assert_int_eq(loom_state_count(st), 0);
        /* what the state grew for the tensors it did not keep is its own */
        loom_state_destroy(st);
        ck_assert_msg(fa.live == base, "allocation %ld failed: %ld blocks leaked", k, fa.live - base);
        failures++;
        loom_device_close(dev);
        loom_ctx_destroy(ctx);
    }
    ck_assert_int_gt(failures, 50);
    free(d);
    ob_free(m);
}
END_TEST


/* A refused model frees everything it allocated: the live blocks of a
 * counting allocator are back where they were after each refusal
 * (ConstantOfShape with a value and a shape computed at run time leaked
 * its value: found by tests/fuzz/fuzz_onnx.c). */
START_TEST(refusals_free_everything)
{
    failing fa = {0, 0, 0};
    loom_ctx_opts o;
    loom_ctx_opts_default(&o);
    o.alloc = fail_alloc;
    o.alloc_user = &fa;
    o.log = silent;
    o.backends = 1 << LOOM_BACKEND_CPU;
    loom_ctx *ctx = NULL;
    ck_assert_int_eq(loom_ctx_create(&o, &ctx), LOOM_OK);
    int64_t s1[1] = {2}, s2[2] = {2, 3};
    for (int c = 0; c < 5; c++) {
        ob_model *m = ob_new(13);
        ob_input(m, "shape", I64, 1, s1);
        ob_input(m, "x", F, 2, s2);
        ob_output(m, "y", F, 2, s2);
        float one = 1;
        int64_t one_shape[1] = {1};
        switch (c) {
        case 0: { /* the leak */
            Onnx__NodeProto *n = ob_node(m, "ConstantOfShape", "cos", "shape", "k");
            ob_attr_tensor(m, n, "value", ob_tensor_f32(m, "", 1, one_shape, &one, 0));
            ob_node(m, "Add", "add", "x,k", "y");
            break;
        }
        case 1: ob_node(m, "Reshape", "r", "x,shape", "y"); break;
        case 2: ob_node(m, "Expand", "e", "x,shape", "y"); break;
        case 3: {
            Onnx__NodeProto *n = ob_node(m, "Constant", "c", "", "k");
            ob_attr_tensor(m, n, "value", ob_tensor_f32(m, "", 1, one_shape, &one, 0));
            ob_node(m, "Tile", "t", "x,shape", "y");
            break;
        }
        default: ob_node(m, "Slice", "s", "x,shape,shape", "y"); break;
        }
        long before = fa.live;
        loom_graph *g = NULL;
        loom_onnx_info info;
        loom_status st = load_bytes(ctx, m, &g, NULL, NULL, &info);
        ck_assert_msg(st == LOOM_E_UNSUPPORTED, "case %d: %s", c, loom_last_error(ctx));
        ck_assert_ptr_null(g);
        ck_assert_msg(fa.live == before, "case %d (%s): %ld blocks left", c, loom_last_error(ctx), fa.live - before);
        ob_free(m);
    }
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- TensorProto files, values fixed at load, one node alone ---- */

START_TEST(tensor_files_and_values)
{
    loom_ctx *ctx = tu_ctx();
    ob_model *m = ob_new(13);
    int64_t sx[2] = {2, 3}, s1[1] = {1}, sflat[1] = {6};
    ob_input(m, "x", F, 2, sx);
    ob_input(m, "shape", I64, 1, s1);
    ob_output(m, "y", F, 1, sflat);
    ob_node(m, "Reshape", "reshape", "x,shape", "y");
    /* the shape computed at run time is refused, naming it */
    loom_graph *g = NULL;
    ck_assert_int_eq(load_bytes(ctx, m, &g, NULL, NULL, NULL), LOOM_E_UNSUPPORTED);
    ck_assert_msg(strstr(loom_last_error(ctx), "\"shape\"") && strstr(loom_last_error(ctx), "at load"), "%s",
                  loom_last_error(ctx));
    /* given at load through a serialized TensorProto */
    int64_t six = 6;
    ob_model *tm = ob_new(0);
    Onnx__TensorProto *tp = ob_tensor_i64(tm, "shape", 1, s1, &six, 0);
    size_t tn;
    uint8_t *td = ob_pack_tensor(tp, &tn);
    loom_onnx_tensor t;
    ck_assert_int_eq(loom_onnx_tensor_read(ctx, td, tn, NULL, &t), LOOM_OK);
    ck_assert_str_eq(t.name, "shape");
    ck_assert_int_eq(t.type, I64);
    ck_assert_int_eq(t.count, 1);
    ck_assert_int_eq(((int64_t *)t.data)[0], 6);
    loom_onnx_opts o;
    loom_onnx_opts_default(&o);
    o.values = &t;
    o.nvalues = 1;
    loom_onnx_info info;
    ck_assert_int_eq(load_bytes(ctx, m, &g, NULL, &o, &info), LOOM_OK);
    ck_assert_int_eq(info.ninputs, 1);
    ck_assert_int_eq(info.outputs[0].shape[0], 6);
    loom_graph_destroy(g);
    loom_onnx_info_free(&info);
    /* a truncated TensorProto names the field */
    loom_onnx_tensor_free(&t);
    ck_assert_int_eq(loom_onnx_tensor_read(ctx, td, tn - 3, NULL, &t), LOOM_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "TensorProto"));
    ck_assert_ptr_null(t.data);
    loom_onnx_tensor_free(&t);
    free(td);
    /* one node alone, its computed inputs turned into graph inputs */
    ob_model *m2 = relu_model(13);
    int64_t s23[2] = {2, 3};
    ob_node(m2, "Neg", "neg", "y", "z");
    ob_output(m2, "z", F, 2, s23);
    o.values = NULL;
    o.nvalues = 0;
    o.node_only = 1;
    ck_assert_int_eq(load_bytes(ctx, m2, &g, NULL, &o, &info), LOOM_OK);
    ck_assert_int_eq(info.ninputs, 1);
    ck_assert_str_eq(info.inputs[0].name, "y");
    ck_assert_int_eq(info.noutputs, 1);
    ck_assert_str_eq(info.outputs[0].name, "z");
    ck_assert_int_eq(info.nnodes, 1);
    ck_assert_str_eq(info.nodes[0].op_type, "Neg");
    loom_graph_destroy(g);
    loom_onnx_info_free(&info);
    o.node_only = 5;
    ck_assert_int_eq(load_bytes(ctx, m2, &g, NULL, &o, NULL), LOOM_E_INVALID);
    ob_free(m2);
    ob_free(tm);
    ob_free(m);
    loom_ctx_destroy(ctx);
}
END_TEST


/* ---- export ---- */

START_TEST(export_sequential)
{
    loom_ctx *ctx = tu_ctx();
    char specs[8][32];
    int nd = tu_devices(ctx, specs, 8);
    loom_device *cpu = tu_open(ctx, "cpu");
    loom_sequential *m = NULL;
    ck_assert_int_eq(loom_sequential_create(ctx, 6, &m), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_dense(m, 8, LOOM_ACT_RELU, LOOM_INIT_HE_NORMAL), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_dropout(m, 0.5f), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_dense(m, 7, LOOM_ACT_GELU, LOOM_INIT_GLOROT_UNIFORM), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_dense(m, 5, LOOM_ACT_TANH, LOOM_INIT_GLOROT_UNIFORM), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_dense(m, 3, LOOM_ACT_SOFTMAX, LOOM_INIT_GLOROT_UNIFORM), LOOM_OK);
    /* not compiled: no weights to write */
    ck_assert_int_eq(loom_onnx_save(m, tpath("seq.onnx")), LOOM_E_STATE);
    loom_model_config cfg = loom_model_config_default();
    ck_assert_int_eq(loom_sequential_compile(m, cpu, &cfg), LOOM_OK);
    float x[24], want[12], got[12];
    tu_fill(x, 24, 5, -2, 2);
    ck_assert_int_eq(loom_sequential_predict(m, x, 4, want), LOOM_OK);
    ck_assert_int_eq(loom_onnx_save(m, tpath("seq.onnx")), LOOM_OK);
    for (int d = 0; d < nd; d++) {
        loom_device *dev = tu_open(ctx, specs[d]);
        loom_state *st = NULL;
        ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
        loom_onnx_opts o;
        loom_onnx_opts_default(&o);
        o.batch = 4;
        loom_graph *g = NULL;
        loom_onnx_info info;
        ck_assert_msg(loom_onnx_load(ctx, tpath("seq.onnx"), &g, st, &o, &info) == LOOM_OK, "%s: %s", specs[d],
                      loom_last_error(ctx));
        ck_assert_str_eq(info.inputs[0].name, "x");
        ck_assert_str_eq(info.outputs[0].name, "y");
        ck_assert_int_eq(info.nparams, 11); /* 8 weights, the 3 constants of gelu */
        ck_assert_ptr_nonnull(strstr(info.producer, "loom"));
        const char *names[1] = {"x"};
        const void *data[1] = {x};
        size_t sizes[1] = {sizeof x};
        loom_program *p = tu_compile_run(g, dev, st, 1, names, data, sizes);
        ck_assert_int_eq(loom_program_read(p, "y", got, sizeof got), LOOM_OK);
        double e = tu_err(got, want, 12, 1e-6, 1e-4);
        ck_assert_msg(e <= 1.0, "%s: the exported model differs from predict (normalized error %g)", specs[d], e);
        loom_program_destroy(p);
        loom_graph_destroy(g);
        loom_onnx_info_free(&info);
        loom_state_destroy(st);
        loom_device_close(dev);
    }
    loom_sequential_destroy(m);
    loom_device_close(cpu);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- the CLI: loom run, loom info, loom bench --model ---- */

static int run_cli(const char *const *args)
{
    const char *cli = getenv("LOOM_CLI");
    ck_assert_msg(cli != NULL, "LOOM_CLI is not set");
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *)cli;
    for (int i = 0; args[i] && argc < 31; i++)
        argv[argc++] = (char *)args[i];
    argv[argc] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, tpath("out.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, tpath("err.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pid_t pid;
    extern char **environ;
    ck_assert_int_eq(posix_spawn(&pid, cli, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

START_TEST(cli_run_info_bench)
{
    float w1[20], b1[5], w2[30], b2[6], x[8], want[12];
    ob_model *m = mlp_model(w1, b1, w2, b2);
    size_t n;
    uint8_t *bytes = ob_pack(m, &n);
    write_file(tpath("m.onnx"), bytes, n);
    free(bytes);
    tu_fill(x, 8, 11, -1, 1);
    mlp_host(x, 2, w1, b1, w2, b2, want);
    int64_t xs[2] = {2, 4};
    unsigned char *npy = npy_encode(LOOM_ONNX_FLOAT, 2, xs, x, &n);
    write_file(tpath("x.npy"), npy, n);
    free(npy);
    char in_arg[300];
    snprintf(in_arg, sizeof in_arg, "x=%s", tpath("x.npy"));
    /* the batch of 2 comes from the .npy file's shape */
    const char *a1[] = {"run", tpath("m.onnx"), "--input", in_arg, "--device", "cpu", "--output", tmpdir, "--json",
                        "--profile", tpath("trace.json"), NULL};
    int rc = run_cli(a1);
    ck_assert_msg(rc == 0, "loom run: %d\n%s", rc, slurp(tpath("err.txt")));
    cJSON *j = cJSON_Parse(slurp(tpath("out.txt")));
    ck_assert_ptr_nonnull(j);
    cJSON *o0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "outputs"), 0);
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(o0, "name")), "y");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o0, "shape")), 2);
    cJSON_Delete(j);
    npy_array y;
    char err[256];
    ck_assert_msg(npy_read(tpath("y.npy"), &y, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(y.type, LOOM_ONNX_FLOAT);
    ck_assert_int_eq(y.ndim, 2);
    ck_assert_int_eq(y.shape[0], 2);
    ck_assert_int_eq(y.shape[1], 6);
    tu_assert_close((float *)y.data, want, 12, 1e-5, 1e-4);
    npy_free(&y);
    ck_assert_ptr_nonnull(strstr(slurp(tpath("trace.json")), "traceEvents"));
    /* an input not given, a wrong name, a bad option */
    const char *a2[] = {"run", tpath("m.onnx"), "--device", "cpu", "--output", tmpdir, NULL};
    ck_assert_int_eq(run_cli(a2), 2);
    ck_assert_ptr_nonnull(strstr(slurp(tpath("err.txt")), "input \"x\""));
    const char *a3[] = {"run", tpath("m.onnx"), "--input", "nosuch=/dev/null", NULL};
    ck_assert_int_eq(run_cli(a3), 2);
    const char *a4[] = {"run", "--frobnicate", NULL};
    ck_assert_int_eq(run_cli(a4), 2);
    /* loom info: ops and the devices that run them */
    const char *a5[] = {"info", tpath("m.onnx"), "--device", "cpu", "--json", NULL};
    rc = run_cli(a5);
    ck_assert_msg(rc == 0, "loom info: %d\n%s", rc, slurp(tpath("err.txt")));
    j = cJSON_Parse(slurp(tpath("out.txt")));
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "ops")), 5);
    cJSON *gemm = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "nodes"), 3);
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(gemm, "op_type")), "Gemm");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(gemm, "runs_on"), "cpu")));
    ck_assert_int_eq((int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "params")), 4);
    cJSON_Delete(j);
    /* loom bench --model */
    const char *a6[] = {"bench", "--model", tpath("m.onnx"), "--device", "cpu", "--runs", "3", "--json",
                        tpath("bench.json"), NULL};
    rc = run_cli(a6);
    ck_assert_msg(rc == 0, "loom bench --model: %d\n%s", rc, slurp(tpath("err.txt")));
    j = cJSON_Parse(slurp(tpath("bench.json")));
    ck_assert_ptr_nonnull(j);
    cJSON *d0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "devices"), 0);
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(d0, "device")), "cpu");
    ck_assert(cJSON_GetNumberValue(cJSON_GetObjectItem(d0, "median_ms")) >= 0);
    cJSON_Delete(j);
    ob_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("onnx");
    TCase *t = tcase_create("import");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, mlp_on_every_device);
    tcase_add_test(t, shape_chain_folds);
    tcase_add_test(t, movement_and_masks);
    tcase_add_test(t, symbolic_dims);
    tcase_add_test(t, initializer_dtypes);
    tcase_add_test(t, external_data);
    tcase_add_test(t, tensor_files_and_values);
    tcase_add_test(t, export_sequential);
    tcase_add_test(t, cli_run_info_bench);
    suite_add_tcase(s, t);
    t = tcase_create("errors");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, refusals);
    tcase_add_test(t, all_or_nothing);
    tcase_add_test(t, corrupt_sweep);
    tcase_add_test(t, out_of_memory);
    tcase_add_test(t, refusals_free_everything);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
