/* The ONNX importer on graphs that need more than a one-to-one mapping:
 * Attention the fused op does not hold (a softcap, value heads of another
 * size, past keys and values), the expanded grouped-query pattern whose
 * Expand has five dims, and graph inputs with no elements. Each model is
 * built here (onnx_build.c) and its results are checked against a host
 * computation in double, on every device. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"
#include "onnx_build.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define F LOOM_ONNX_FLOAT
#define I64 LOOM_ONNX_INT64

/* softmax(softcap(scale q k^T) + mask) v for q [B, Hq, Nq, D], k
 * [B, Hkv, Nk, D], v [B, Hkv, Nk, Dv]; mask [Nq, Nk] additive or NULL;
 * causal: key j seen by query i when j <= i + past. */
typedef struct attn_case {
    int64_t B, hq, hkv, nq, nk, d, dv, past;
    float scale, softcap;
    int causal;
} attn_case;

static void attn_host(const attn_case *c, const float *q, const float *k, const float *v, const float *mask, float *y)
{
    int64_t rep = c->hq / c->hkv;
    double *s = malloc((size_t)c->nk * sizeof *s);
    ck_assert_ptr_nonnull(s);
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t h = 0; h < c->hq; h++) {
            int64_t hk = h / rep;
            for (int64_t i = 0; i < c->nq; i++) {
                const float *qi = q + ((b * c->hq + h) * c->nq + i) * c->d;
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j < c->nk; j++) {
                    const float *kj = k + ((b * c->hkv + hk) * c->nk + j) * c->d;
                    double a = 0;
                    for (int64_t e = 0; e < c->d; e++)
                        a += (double)qi[e] * kj[e];
                    a *= c->scale;
                    if (c->softcap > 0)
                        a = c->softcap * tanh(a / c->softcap);
                    if (mask)
                        a += mask[i * c->nk + j];
                    if (c->causal && j > i + c->past)
                        a = -INFINITY;
                    s[j] = a;
                    mx = a > mx ? a : mx;
                }
                for (int64_t j = 0; j < c->nk; j++)
                    sum += s[j] = exp(s[j] - mx);
                float *yi = y + ((b * c->hq + h) * c->nq + i) * c->dv;
                for (int64_t e = 0; e < c->dv; e++) {
                    double a = 0;
                    for (int64_t j = 0; j < c->nk; j++)
                        a += s[j] / sum * v[((b * c->hkv + hk) * c->nk + j) * c->dv + e];
                    yi[e] = (float)a;
                }
            }
        }
    free(s);
}

/* Loads packed model bytes on spec, feeds the named inputs, runs and
 * reads each output into outs. */
static void run_on(loom_ctx *ctx, const char *spec, ob_model *m, int nin, const char *const *names,
                   const void *const *data, const size_t *sizes, int nout, const char *const *onames, float **outs,
                   const size_t *osizes)
{
    size_t n;
    uint8_t *bytes = ob_pack(m, &n);
    loom_device *dev = tu_open(ctx, spec);
    loom_state *st = NULL;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    loom_graph *g = NULL;
    loom_onnx_info info;
    loom_status s = loom_onnx_load_memory(ctx, bytes, n, &g, st, NULL, &info);
    ck_assert_msg(s == LOOM_OK, "%s: %s", spec, loom_last_error(ctx));
    loom_program *p = tu_compile_run(g, dev, st, nin, names, data, sizes);
    for (int i = 0; i < nout; i++)
        ck_assert_msg(loom_program_read(p, onames[i], outs[i], osizes[i]) == LOOM_OK, "%s: %s: %s", spec, onames[i],
                      loom_last_error(ctx));
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_onnx_info_free(&info);
    loom_state_destroy(st);
    loom_device_close(dev);
    free(bytes);
}

/* Loads the file at path on spec for `batch` rows, runs it on x and
 * reads "y" into got (n values); in_shape: its input's shape (4 dims). */
static void run_file(loom_ctx *ctx, const char *spec, const char *path, int64_t batch, const float *x, size_t xbytes,
                     float *got, size_t n, int64_t in_shape[4])
{
    loom_device *dev = tu_open(ctx, spec);
    loom_state *st = NULL;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    loom_onnx_opts o;
    loom_onnx_opts_default(&o);
    o.batch = batch;
    loom_graph *g = NULL;
    loom_onnx_info info;
    ck_assert_msg(loom_onnx_load(ctx, path, &g, st, &o, &info) == LOOM_OK, "%s: %s", spec, loom_last_error(ctx));
    memset(in_shape, 0, 4 * sizeof *in_shape);
    for (int i = 0; i < info.inputs[0].ndim && i < 4; i++)
        in_shape[i] = info.inputs[0].shape[i];
    const char *names[1] = {"x"};
    const void *data[1] = {x};
    size_t sizes[1] = {xbytes};
    loom_program *p = tu_compile_run(g, dev, st, 1, names, data, sizes);
    ck_assert_int_eq(loom_program_read(p, "y", got, n * sizeof *got), LOOM_OK);
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_onnx_info_free(&info);
    loom_state_destroy(st);
    loom_device_close(dev);
}

/* 4-D grouped-query attention with value heads of another size than the
 * queries', a softcap and an additive mask: the composed path. */
START_TEST(attention_softcap_gqa_value_heads)
{
    attn_case c = {.B = 2, .hq = 4, .hkv = 2, .nq = 3, .nk = 5, .d = 8, .dv = 6, .softcap = 2.0f};
    c.scale = 1.0f / sqrtf((float)c.d);
    enum { NQ = 2 * 4 * 3 * 8, NK = 2 * 2 * 5 * 8, NV = 2 * 2 * 5 * 6, NM = 3 * 5, NY = 2 * 4 * 3 * 6 };
    float q[NQ], k[NK], v[NV], mask[NM], want[NY], got[NY];
    tu_fill(q, NQ, 1, -2, 2);
    tu_fill(k, NK, 2, -2, 2);
    tu_fill(v, NV, 3, -1, 1);
    tu_fill(mask, NM, 4, -1, 0);
    mask[2] = -INFINITY;
    attn_host(&c, q, k, v, mask, want);
    ob_model *m = ob_new(23);
    int64_t sq[4] = {2, 4, 3, 8}, sk[4] = {2, 2, 5, 8}, sv[4] = {2, 2, 5, 6}, sm[2] = {3, 5}, sy[4] = {2, 4, 3, 6};
    ob_input(m, "q", F, 4, sq);
    ob_input(m, "k", F, 4, sk);
    ob_input(m, "v", F, 4, sv);
    ob_input(m, "mask", F, 2, sm);
    ob_output(m, "y", F, 4, sy);
    Onnx__NodeProto *n = ob_node(m, "Attention", "attn", "q,k,v,mask", "y");
    ob_attr_float(m, n, "softcap", c.softcap);
    loom_ctx *ctx = tu_ctx();
    char specs[8][32];
    int nd = tu_devices(ctx, specs, 8);
    const char *names[4] = {"q", "k", "v", "mask"};
    const void *data[4] = {q, k, v, mask};
    size_t sizes[4] = {sizeof q, sizeof k, sizeof v, sizeof mask};
    const char *on[1] = {"y"};
    float *outs[1] = {got};
    size_t os[1] = {sizeof got};
    for (int d = 0; d < nd; d++) {
        memset(got, 0, sizeof got);
        run_on(ctx, specs[d], m, 4, names, data, sizes, 1, on, outs, os);
        tu_assert_close(got, want, NY, 1e-4, 1e-3);
    }
    ob_free(m);
    loom_ctx_destroy(ctx);
}
END_TEST

/* 3-D inputs with past keys and values, causal: the present keys and
 * values are the past followed by the new, and query i sees the past and
 * the new keys up to its own. */
START_TEST(attention_past_present_causal)
{
    enum { B = 2, H = 2, N = 3, P = 2, D = 4 };
    attn_case c = {.B = B, .hq = H, .hkv = H, .nq = N, .nk = P + N, .d = D, .dv = D, .past = P, .causal = 1};
    c.scale = 0.5f;
    float q3[B * N * H * D], k3[B * N * H * D], v3[B * N * H * D], pk[B * H * P * D], pv[B * H * P * D];
    tu_fill(q3, sizeof q3 / 4, 11, -2, 2);
    tu_fill(k3, sizeof k3 / 4, 12, -2, 2);
    tu_fill(v3, sizeof v3 / 4, 13, -1, 1);
    tu_fill(pk, sizeof pk / 4, 14, -2, 2);
    tu_fill(pv, sizeof pv / 4, 15, -1, 1);
    /* the host works in [B, H, seq, D]: the 3-D [B, N, H*D] transposed,
     * the past in front */
    float q[B * H * N * D], k[B * H * (P + N) * D], v[B * H * (P + N) * D];
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            for (int j = 0; j < P; j++)
                for (int e = 0; e < D; e++) {
                    k[((b * H + h) * (P + N) + j) * D + e] = pk[((b * H + h) * P + j) * D + e];
                    v[((b * H + h) * (P + N) + j) * D + e] = pv[((b * H + h) * P + j) * D + e];
                }
            for (int i = 0; i < N; i++)
                for (int e = 0; e < D; e++) {
                    int src = (b * N + i) * H * D + h * D + e;
                    q[((b * H + h) * N + i) * D + e] = q3[src];
                    k[((b * H + h) * (P + N) + P + i) * D + e] = k3[src];
                    v[((b * H + h) * (P + N) + P + i) * D + e] = v3[src];
                }
        }
    float yh[B * H * N * D], want[B * N * H * D], got[B * N * H * D], present[B * H * (P + N) * D];
    attn_host(&c, q, k, v, NULL, yh);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < N; i++)
                for (int e = 0; e < D; e++)
                    want[(b * N + i) * H * D + h * D + e] = yh[((b * H + h) * N + i) * D + e];
    ob_model *m = ob_new(23);
    int64_t s3[3] = {B, N, H * D}, sp[4] = {B, H, P, D}, spr[4] = {B, H, P + N, D};
    ob_input(m, "q", F, 3, s3);
    ob_input(m, "k", F, 3, s3);
    ob_input(m, "v", F, 3, s3);
    ob_input(m, "pk", F, 4, sp);
    ob_input(m, "pv", F, 4, sp);
    ob_output(m, "y", F, 3, s3);
    ob_output(m, "present_k", F, 4, spr);
    ob_output(m, "present_v", F, 4, spr);
    Onnx__NodeProto *n = ob_node(m, "Attention", "attn", "q,k,v,,pk,pv", "y,present_k,present_v");
    ob_attr_int(m, n, "q_num_heads", H);
    ob_attr_int(m, n, "kv_num_heads", H);
    ob_attr_int(m, n, "is_causal", 1);
    ob_attr_float(m, n, "scale", c.scale);
    loom_ctx *ctx = tu_ctx();
    char specs[8][32];
    int nd = tu_devices(ctx, specs, 8);
    const char *names[5] = {"q", "k", "v", "pk", "pv"};
    const void *data[5] = {q3, k3, v3, pk, pv};
    size_t sizes[5] = {sizeof q3, sizeof k3, sizeof v3, sizeof pk, sizeof pv};
    const char *on[2] = {"y", "present_k"};
    float *outs[2] = {got, present};
    size_t os[2] = {sizeof got, sizeof present};
    for (int d = 0; d < nd; d++) {
        run_on(ctx, specs[d], m, 5, names, data, sizes, 2, on, outs, os);
        tu_assert_close(got, want, B * N * H * D, 1e-4, 1e-3);
        ck_assert_mem_eq(present, k, sizeof present);
    }
    ob_free(m);
    loom_ctx_destroy(ctx);
}
END_TEST

/* Unsqueeze -> Expand to five dims -> Reshape, as ONNX's expanded
 * attention repeats each key-value head for its query group. */
START_TEST(expand_five_dims_then_reshape)
{
    enum { B = 2, HKV = 3, G = 2, S = 4, D = 5, NK = B * HKV * S * D };
    float k[NK], want[NK * G], got[NK * G];
    tu_fill(k, NK, 21, -1, 1);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < HKV * G; h++)
            for (int j = 0; j < S * D; j++)
                want[(b * HKV * G + h) * S * D + j] = k[(b * HKV + h / G) * S * D + j];
    ob_model *m = ob_new(17);
    int64_t sk[4] = {B, HKV, S, D}, sy[4] = {B, HKV * G, S, D}, one = 1, five = 5, four = 4;
    int64_t axes[1] = {2}, shape5[5] = {B, HKV, G, S, D}, shape4[4] = {B, HKV * G, S, D};
    ob_input(m, "k", F, 4, sk);
    ob_output(m, "y", F, 4, sy);
    ob_init(m, ob_tensor_i64(m, "axes", 1, &one, axes, 0));
    ob_init(m, ob_tensor_i64(m, "shape5", 1, &five, shape5, 0));
    ob_init(m, ob_tensor_i64(m, "shape4", 1, &four, shape4, 0));
    ob_node(m, "Unsqueeze", "u", "k,axes", "k5");
    ob_node(m, "Expand", "e", "k5,shape5", "kx");
    ob_node(m, "Reshape", "r", "kx,shape4", "y");
    loom_ctx *ctx = tu_ctx();
    char specs[8][32];
    int nd = tu_devices(ctx, specs, 8);
    const char *names[1] = {"k"};
    const void *data[1] = {k};
    size_t sizes[1] = {sizeof k};
    const char *on[1] = {"y"};
    float *outs[1] = {got};
    size_t os[1] = {sizeof got};
    for (int d = 0; d < nd; d++) {
        memset(got, 0, sizeof got);
        run_on(ctx, specs[d], m, 1, names, data, sizes, 1, on, outs, os);
        ck_assert_mem_eq(got, want, sizeof got);
    }
    ob_free(m);

    /* seven dims that alternate between growing and not: seven groups,
     * more than a loom tensor holds -- refused, naming why */
    m = ob_new(17);
    int64_t s7[7] = {2, 1, 3, 1, 4, 1, 5}, w7[7] = {2, 2, 3, 2, 4, 2, 5}, seven = 7;
    ob_input(m, "x", F, 4, (int64_t[4]){2, 3, 4, 5});
    ob_output(m, "y", F, 4, (int64_t[4]){2, 2, 3, 2});
    ob_init(m, ob_tensor_i64(m, "s7", 1, &seven, s7, 0));
    ob_init(m, ob_tensor_i64(m, "w7", 1, &seven, w7, 0));
    ob_node(m, "Reshape", "r", "x,s7", "x7");
    ob_node(m, "Expand", "e", "x7,w7", "y");
    size_t n;
    uint8_t *bytes = ob_pack(m, &n);
    loom_graph *g = NULL;
    loom_onnx_info info;
    loom_status s = loom_onnx_load_memory(ctx, bytes, n, &g, NULL, NULL, &info);
    ck_assert_int_eq(s, LOOM_E_UNSUPPORTED);
    ck_assert_ptr_null(g);
    ck_assert_msg(strstr(loom_last_error(ctx), "Expand") && strstr(loom_last_error(ctx), "7 groups"), "%s",
                  loom_last_error(ctx));
    free(bytes);
    ob_free(m);
    loom_ctx_destroy(ctx);
}
END_TEST

/* A graph input with no elements is known without its data: ReduceSum
 * with empty axes sums everything (noop_with_empty_axes 0). */
START_TEST(empty_input_is_known)
{
    float x[6] = {1, 2, 3, 4, 5, 6.5f}, got[1] = {0};
    ob_model *m = ob_new(18);
    int64_t sx[2] = {2, 3}, zero = 0, sy[2] = {1, 1};
    ob_input(m, "x", F, 2, sx);
    ob_input(m, "axes", I64, 1, &zero);
    ob_output(m, "y", F, 2, sy);
    ob_node(m, "ReduceSum", "r", "x,axes", "y");
    loom_ctx *ctx = tu_ctx();
    char specs[8][32];
    int nd = tu_devices(ctx, specs, 8);
    const char *names[1] = {"x"};
    const void *data[1] = {x};
    size_t sizes[1] = {sizeof x};
    const char *on[1] = {"y"};
    float *outs[1] = {got};
    size_t os[1] = {sizeof got};
    for (int d = 0; d < nd; d++) {
        got[0] = 0;
        run_on(ctx, specs[d], m, 1, names, data, sizes, 1, on, outs, os);
        ck_assert_float_eq_tol(got[0], 21.5f, 1e-5f);
    }
    ob_free(m);

    /* an op that needs the empty value as a tensor refuses it */
    m = ob_new(18);
    ob_input(m, "x", F, 1, &zero);
    ob_output(m, "y", F, 1, &zero);
    ob_node(m, "Relu", "r", "x", "y");
    size_t n;
    uint8_t *bytes = ob_pack(m, &n);
    loom_graph *g = NULL;
    loom_onnx_info info;
    ck_assert_int_eq(loom_onnx_load_memory(ctx, bytes, n, &g, NULL, NULL, &info), LOOM_E_UNSUPPORTED);
    ck_assert_ptr_null(g);
    ck_assert_msg(strstr(loom_last_error(ctx), "empty"), "%s", loom_last_error(ctx));
    free(bytes);
    ob_free(m);
    loom_ctx_destroy(ctx);
}
END_TEST

/* loom_onnx_save of an image model: conv2d ("same" with stride 2, and
 * valid), batch norm with running statistics of its own, max and average
 * pooling, global average pooling, flatten and dense; loom's importer
 * runs the file on every device with the outputs of
 * loom_sequential_predict. A layer with no ONNX form is refused. */
START_TEST(export_cnn)
{
    loom_ctx *ctx = tu_ctx();
    char specs[8][32];
    int nd = tu_devices(ctx, specs, 8);
    loom_device *cpu = tu_open(ctx, "cpu");
    loom_sequential *m = NULL;
    ck_assert_int_eq(loom_sequential_create_image(ctx, 2, 9, 9, &m), LOOM_OK);
    loom_conv2d_layer c = loom_conv2d_layer_default(4, 3, 3);
    c.same = 1;
    c.stride[0] = c.stride[1] = 2;
    c.act = LOOM_ACT_RELU;
    ck_assert_int_eq(loom_sequential_add_conv2d(m, &c), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_batch_norm(m, 0.9f, 1e-3f), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_max_pool2d(m, 2, 2, 1, 1), LOOM_OK);
    c = loom_conv2d_layer_default(6, 2, 2);
    c.groups = 2;
    c.act = LOOM_ACT_TANH;
    ck_assert_int_eq(loom_sequential_add_conv2d(m, &c), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_spatial_dropout(m, 0.3f), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_avg_pool2d(m, 2, 2, 1, 1), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_flatten(m), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_dense(m, 5, LOOM_ACT_SOFTMAX, LOOM_INIT_GLOROT_UNIFORM), LOOM_OK);
    loom_model_config cfg = loom_model_config_default();
    ck_assert_int_eq(loom_sequential_compile(m, cpu, &cfg), LOOM_OK);
    /* running statistics that are not the initial 0 and 1 */
    float run[8] = {0.1f, -0.2f, 0.3f, 0.05f, 0.5f, 2.0f, 1.5f, 0.8f};
    int64_t rs[2] = {2, 4};
    ck_assert_int_eq(loom_state_write(loom_sequential_state(m), "bn0/running", LOOM_F32, 2, rs, run), LOOM_OK);
    enum { N = 3, X = N * 2 * 9 * 9, Y = N * 5 };
    float x[X], want[Y], got[Y];
    tu_fill(x, X, 31, -2, 2);
    ck_assert_int_eq(loom_sequential_predict(m, x, N, want), LOOM_OK);
    char path[] = "/tmp/loom_export_cnn_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_msg(loom_onnx_save(m, path) == LOOM_OK, "%s", loom_last_error(ctx));
    for (int d = 0; d < nd; d++) {
        int64_t in[4];
        run_file(ctx, specs[d], path, N, x, sizeof x, got, Y, in);
        ck_assert(in[3] == 9 && in[1] == 2); /* [N, 2, 9, 9] */
        double e = tu_err(got, want, Y, 1e-6, 1e-4);
        ck_assert_msg(e <= 1.0, "%s: the exported CNN differs from predict (normalized error %g)", specs[d], e);
    }
    remove(path);
    loom_sequential_destroy(m);

    /* rotary embeddings have no op at opset 17: refused, nothing written */
    ck_assert_int_eq(loom_sequential_create(ctx, 24, &m), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_json(m, "{\"type\": \"reshape\", \"shape\": [6, 4]}"), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_json(m, "{\"type\": \"attention\", \"heads\": 2, \"rope\": true}"),
                     LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_json(m, "{\"type\": \"pool\", \"mode\": \"last\"}"), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_dense(m, 3, LOOM_ACT_NONE, LOOM_INIT_GLOROT_UNIFORM), LOOM_OK);
    ck_assert_int_eq(loom_sequential_compile(m, cpu, &cfg), LOOM_OK);
    remove(path);
    ck_assert_int_eq(loom_onnx_save(m, path), LOOM_E_UNSUPPORTED);
    ck_assert_msg(strstr(loom_last_error(ctx), "attention0") && strstr(loom_last_error(ctx), "rotary"), "%s",
                  loom_last_error(ctx));
    ck_assert_int_ne(access(path, F_OK), 0);
    loom_sequential_destroy(m);

    /* a reshape to a sequence is one: Reshape keeping the batch */
    ck_assert_int_eq(loom_sequential_create(ctx, 24, &m), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_json(m, "{\"type\": \"reshape\", \"shape\": [6, 4]}"), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_flatten(m), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_dense(m, 3, LOOM_ACT_NONE, LOOM_INIT_GLOROT_UNIFORM), LOOM_OK);
    ck_assert_int_eq(loom_sequential_compile(m, cpu, &cfg), LOOM_OK);
    float xs[2 * 24], ws[2 * 3], gs[2 * 3];
    tu_fill(xs, 48, 32, -1, 1);
    ck_assert_int_eq(loom_sequential_predict(m, xs, 2, ws), LOOM_OK);
    ck_assert_msg(loom_onnx_save(m, path) == LOOM_OK, "%s", loom_last_error(ctx));
    int64_t in[4];
    run_file(ctx, "cpu", path, 2, xs, sizeof xs, gs, 6, in);
    tu_assert_close(gs, ws, 6, 1e-6, 1e-5);
    remove(path);
    loom_sequential_destroy(m);
    loom_device_close(cpu);
    loom_ctx_destroy(ctx);
}
END_TEST

/* loom_onnx_save of sequence models, read back by loom's importer on
 * every device against loom_sequential_predict: a small ViT (patches,
 * position, an encoder block with grouped-query heads, a decoder block
 * with SwiGLU and RMS norm, layer norm, mean pooling), and a text model
 * (embedding, causal attention, RMS norm, GRU and LSTM, the last step). */
static const char *const vit_layers[] = {
    "{\"type\": \"patches\", \"size\": 4, \"rows\": 8, \"cols\": 8}",
    "{\"type\": \"dense\", \"units\": 12, \"activation\": \"linear\"}",
    "{\"type\": \"position\"}",
    "{\"type\": \"transformer_encoder\", \"heads\": 4, \"kv_heads\": 2, \"ffn\": 24}",
    "{\"type\": \"transformer_decoder\", \"heads\": 2, \"ffn\": 16, \"activation\": \"swiglu\", \"norm\": \"rms\"}",
    "{\"type\": \"layer_norm\"}",
    "{\"type\": \"pool\", \"mode\": \"mean\"}",
    "{\"type\": \"dense\", \"units\": 5, \"activation\": \"softmax\"}",
    NULL,
};
static const char *const text_layers[] = {
    "{\"type\": \"embedding\", \"vocab\": 11, \"dim\": 6}",
    "{\"type\": \"attention\", \"heads\": 2, \"causal\": true}",
    "{\"type\": \"rms_norm\"}",
    "{\"type\": \"gru\", \"units\": 5, \"return_sequences\": true}",
    "{\"type\": \"lstm\", \"units\": 4}",
    "{\"type\": \"dense\", \"units\": 3}",
    NULL,
};

START_TEST(export_sequence_models)
{
    loom_ctx *ctx = tu_ctx();
    char specs[8][32];
    int nd = tu_devices(ctx, specs, 8);
    loom_device *cpu = tu_open(ctx, "cpu");
    const char *const *models[2] = {vit_layers, text_layers};
    const int64_t features[2] = {64, 8}, outs[2] = {5, 3};
    char path[] = "/tmp/loom_export_seq_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    for (int k = 0; k < 2; k++) {
        loom_sequential *m = NULL;
        ck_assert_int_eq(loom_sequential_create(ctx, features[k], &m), LOOM_OK);
        for (const char *const *l = models[k]; *l; l++)
            ck_assert_msg(loom_sequential_add_json(m, *l) == LOOM_OK, "%s: %s", *l, loom_last_error(ctx));
        loom_model_config cfg = loom_model_config_default();
        ck_assert_int_eq(loom_sequential_compile(m, cpu, &cfg), LOOM_OK);
        enum { N = 3 };
        float x[N * 64], want[N * 5], got[N * 5];
        tu_fill(x, (size_t)(N * features[k]), 41 + (uint32_t)k, -1, 1);
        if (k == 1)
            for (int i = 0; i < N * 8; i++)
                x[i] = (float)((i * 7 + 3) % 11); /* token ids */
        ck_assert_msg(loom_sequential_predict(m, x, N, want) == LOOM_OK, "%s", loom_last_error(ctx));
        ck_assert_msg(loom_onnx_save(m, path) == LOOM_OK, "%s", loom_last_error(ctx));
        for (int d = 0; d < nd; d++) {
            int64_t in[4];
            run_file(ctx, specs[d], path, N, x, (size_t)(N * features[k]) * sizeof(float), got, (size_t)(N * outs[k]),
                     in);
            double e = tu_err(got, want, (size_t)(N * outs[k]), 1e-5, 1e-3);
            ck_assert_msg(e <= 1.0, "model %d on %s: the export differs from predict (normalized error %g)", k,
                          specs[d], e);
        }
        loom_sequential_destroy(m);
    }
    remove(path);
    loom_device_close(cpu);
    loom_ctx_destroy(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("onnx_graphs");
    TCase *tc = tcase_create("importer");
    tcase_set_timeout(tc, 600); /* cold PoCL program caches on a loaded 2-core machine */
    tcase_add_test(tc, attention_softcap_gqa_value_heads);
    tcase_add_test(tc, attention_past_present_causal);
    tcase_add_test(tc, expand_five_dims_then_reshape);
    tcase_add_test(tc, empty_input_is_known);
    tcase_add_test(tc, export_cnn);
    tcase_add_test(tc, export_sequence_models);
    suite_add_tcase(s, tc);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
