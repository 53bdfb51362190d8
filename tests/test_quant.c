/* int8 inference: the int8 ops on every device against integer references
 * computed here (exact), calibration on hand-made histograms with known
 * answers, quantized model files (round trip and corruption), and
 * `loom optimize --quantize int8` end to end on a small model. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- deterministic integers -------------------------------------------------- */

static uint32_t rng_next(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

static void fill_i8(int8_t *x, size_t n, uint32_t seed, int lo, int hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (int8_t)(lo + (int)(rng_next(&seed) % (uint32_t)(hi - lo + 1)));
}

/* The epilogue of include/loom.h, written out. */
static void epilogue(int32_t acc, float mult, int i8, int zero, int relu, void *out, size_t o)
{
    float t = (float)acc * mult;
    if (i8) {
        float q = nearbyintf(t) + (float)zero;
        float lo = relu ? (float)zero : -128.0f;
        q = q < lo ? lo : q > 127.0f ? 127.0f : q;
        ((int8_t *)out)[o] = (int8_t)q;
    } else {
        ((float *)out)[o] = relu ? fmaxf(t, 0.0f) : t;
    }
}

static size_t bytes_of(loom_dtype dt, size_t n)
{
    return n * loom_dtype_size(dt);
}

/* Runs g (inputs in0..in3) on spec and reads "out". */
static void run_on(const char *spec, loom_graph *g, int nin, const void *const *data, const size_t *bytes, void *out,
                   size_t out_bytes)
{
    static const char *const names[4] = {"in0", "in1", "in2", "in3"};
    loom_ctx *ctx = loom_graph_ctx(g);
    loom_device *dev = tu_open(ctx, spec);
    loom_state *st = NULL;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    loom_program *p = tu_compile_run(g, dev, st, nin, names, data, bytes);
    ck_assert_msg(loom_program_read(p, "out", out, out_bytes) == LOOM_OK, "%s: %s", spec, loom_last_error(ctx));
    loom_program_destroy(p);
    loom_state_destroy(st);
    loom_device_close(dev);
}

/* ---- qmatmul ------------------------------------------------------------------- */

typedef struct qmm_case {
    int64_t m, k, n;
    int i8, relu, zero;
    int extreme; /* every a and w -128: each 1024 of K sums to 2^24 */
} qmm_case;

/* The last three are past OpenCL's threshold for its f32 GEMMs (cl_quant.c):
 * K in three chunks of 1024 (the last partial), one whole chunk, and the
 * largest sum a chunk can hold, at every output. */
static const qmm_case qmm_cases[] = {
    {1, 1, 1, 0, 0, 0, 0},      {7, 37, 5, 1, 1, -128, 0}, {33, 64, 17, 0, 1, 0, 0},
    {5, 300, 9, 1, 0, 3, 0},    {64, 48, 33, 0, 0, 0, 0},  {3, 17, 70, 1, 1, -20, 0},
    {40, 2100, 70, 1, 1, -5, 0}, {130, 1024, 65, 0, 0, 0, 0}, {16, 2048, 64, 0, 0, 0, 1},
};

/* c on spec against the integer reference, exactly (seed picks the data). */
static void qmm_on(loom_ctx *ctx, const qmm_case *c, uint32_t seed, const char *spec)
{
    size_t na = (size_t)(c->m * c->k), nw = (size_t)(c->n * c->k), no = (size_t)(c->m * c->n);
    int8_t *a = malloc(na), *w = malloc(nw);
    int32_t *bias = malloc((size_t)c->n * 4);
    float *mult = malloc((size_t)c->n * 4);
    fill_i8(a, na, 11u + seed, -128, c->extreme ? -128 : 127);
    fill_i8(w, nw, 23u + seed, c->extreme ? -128 : -127, c->extreme ? -128 : 127);
    uint32_t s = 5;
    for (int64_t j = 0; j < c->n; j++) {
        bias[j] = (int32_t)(rng_next(&s) % 20001) - 10000;
        mult[j] = (float)(1.0 + (double)(rng_next(&s) % 1000)) * (c->i8 ? 1e-5f : 1e-4f);
    }
    loom_dtype odt = c->i8 ? LOOM_I8 : LOOM_F32;
    void *ref = malloc(bytes_of(odt, no)), *got = malloc(bytes_of(odt, no));
    for (int64_t i = 0; i < c->m; i++)
        for (int64_t j = 0; j < c->n; j++) {
            int32_t acc = bias[j];
            for (int64_t q = 0; q < c->k; q++)
                acc += (int32_t)a[i * c->k + q] * (int32_t)w[j * c->k + q];
            epilogue(acc, mult[j], c->i8, c->zero, c->relu, ref, (size_t)(i * c->n + j));
        }
    loom_graph *g;
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t sa[2] = {c->m, c->k}, sw[2] = {c->n, c->k}, sn[1] = {c->n};
    loom_tensor ta = loom_input(g, "in0", LOOM_I8, 2, sa), tw = loom_input(g, "in1", LOOM_I8, 2, sw);
    loom_tensor tb = loom_input(g, "in2", LOOM_I32, 1, sn), tm = loom_input(g, "in3", LOOM_F32, 1, sn);
    loom_qgemm_opts o = loom_qgemm_opts_default();
    o.out = odt;
    o.out_zero = c->zero;
    o.act = c->relu ? LOOM_ACT_RELU : LOOM_ACT_NONE;
    loom_tensor y = loom_qmatmul(g, ta, tw, tb, tm, &o);
    ck_assert_msg(y.id, "%s", loom_graph_error(g));
    loom_output(g, y, "out");
    const void *data[4] = {a, w, bias, mult};
    size_t bytes[4] = {na, nw, (size_t)c->n * 4, (size_t)c->n * 4};
    memset(got, 0x5a, bytes_of(odt, no));
    run_on(spec, g, 4, data, bytes, got, bytes_of(odt, no));
    size_t bad = no;
    for (size_t e = 0; e < no && bad == no; e++)
        if (c->i8 ? ((int8_t *)got)[e] != ((int8_t *)ref)[e] : ((float *)got)[e] != ((float *)ref)[e])
            bad = e;
    ck_assert_msg(bad == no, "qmatmul %lldx%lldx%lld (%s) on %s differs at %zu: %g, integer reference %g",
                  (long long)c->m, (long long)c->k, (long long)c->n, loom_dtype_name(odt), spec, bad,
                  c->i8 ? (double)((int8_t *)got)[bad] : (double)((float *)got)[bad],
                  c->i8 ? (double)((int8_t *)ref)[bad] : (double)((float *)ref)[bad]);
    loom_graph_destroy(g);
    free(a);
    free(w);
    free(bias);
    free(mult);
    free(ref);
    free(got);
}

START_TEST(qmatmul_exact)
{
    loom_ctx *ctx = tu_ctx();
    char specs[16][32];
    int nd = tu_devices(ctx, specs, 16);
    for (int d = 0; d < nd; d++)
        qmm_on(ctx, &qmm_cases[_i], (uint32_t)_i, specs[d]);
    loom_ctx_destroy(ctx);
}
END_TEST

/* The Vulkan GEMM's kernel, from its debug line ("... through <variant>"). */
static char qmm_variant[64];

static void note_variant(void *u, loom_log_level l, const char *m)
{
    (void)u;
    const char *t = strstr(m, " through q");
    if (t)
        snprintf(qmm_variant, sizeof qmm_variant, "%s", t + 9);
    else if (l == LOOM_LOG_ERROR)
        fprintf(stderr, "loom: %s\n", m);
}

/* Rows of whole 4-byte words take the tiled GEMM, through OpSDot on a
 * device with VK_KHR_shader_integer_dot_product (lavapipe has it), else
 * (and with LOOM_VULKAN_INT8_DOT=0) unpacking the words; other rows the
 * one-output-per-invocation kernel. Each exactly, over partial tiles. */
START_TEST(qmatmul_vulkan_dot)
{
    loom_ctx_opts co;
    loom_ctx_opts_default(&co);
    co.log = note_variant;
    co.log_level = LOOM_LOG_DEBUG;
    loom_ctx *ctx = NULL;
    ck_assert_int_eq(loom_ctx_create(&co, &ctx), LOOM_OK);
    char specs[16][32];
    int nd = tu_devices(ctx, specs, 16), seen = 0;
    static const qmm_case whole = {70, 100, 130, 1, 1, -128, 0}, odd = {9, 66, 13, 0, 0, 0, 0};
    for (int d = 0; d < nd; d++) {
        if (strncmp(specs[d], "vulkan", 6) != 0)
            continue;
        loom_device *dev = tu_open(ctx, specs[d]);
        int has = loom_device_get(dev)->int8_dot;
        loom_device_close(dev);
        seen++;
        qmm_variant[0] = 0;
        qmm_on(ctx, &whole, 1, specs[d]);
        ck_assert_str_eq(qmm_variant, has ? "qgemm_tiled_dot_i8" : "qgemm_tiled_i8");
        qmm_on(ctx, &odd, 2, specs[d]);
        ck_assert_str_eq(qmm_variant, "qmatmul_f32");
        setenv("LOOM_VULKAN_INT8_DOT", "0", 1);
        qmm_on(ctx, &whole, 1, specs[d]);
        unsetenv("LOOM_VULKAN_INT8_DOT");
        ck_assert_str_eq(qmm_variant, "qgemm_tiled_i8");
    }
    if (!seen)
        fprintf(stderr, "quant: no Vulkan device, the dot-product path is not exercised\n");
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- qconv2d -------------------------------------------------------------------- */

typedef struct qconv_case {
    int64_t n, c, h, w, oc, kh, kw;
    int stride, pad, groups, in_zero, i8, relu, zero;
} qconv_case;

static const qconv_case qconv_cases[] = {
    {2, 3, 7, 9, 4, 3, 3, 1, 1, 1, -128, 0, 1, 0},
    {1, 4, 9, 8, 6, 3, 3, 2, 1, 2, 7, 1, 0, -3},
    {2, 6, 5, 5, 6, 3, 3, 1, 1, 6, 0, 1, 1, -128},
    {1, 17, 6, 5, 33, 1, 1, 1, 0, 1, -20, 0, 0, 0},
};

START_TEST(qconv_exact)
{
    const qconv_case *c = &qconv_cases[_i];
    loom_ctx *ctx = tu_ctx();
    int64_t cg = c->c / c->groups, ocg = c->oc / c->groups;
    int64_t oh = (c->h + 2 * c->pad - c->kh) / c->stride + 1, ow = (c->w + 2 * c->pad - c->kw) / c->stride + 1;
    size_t nx = (size_t)(c->n * c->c * c->h * c->w), nw = (size_t)(c->oc * cg * c->kh * c->kw);
    size_t no = (size_t)(c->n * c->oc * oh * ow);
    int8_t *x = malloc(nx), *w = malloc(nw);
    int32_t *bias = malloc((size_t)c->oc * 4);
    float *mult = malloc((size_t)c->oc * 4);
    fill_i8(x, nx, 31u + (uint32_t)_i, -128, 127);
    fill_i8(w, nw, 37u + (uint32_t)_i, -127, 127);
    uint32_t s = 9;
    for (int64_t j = 0; j < c->oc; j++) {
        bias[j] = (int32_t)(rng_next(&s) % 2001) - 1000;
        mult[j] = (float)(1.0 + (double)(rng_next(&s) % 1000)) * 2e-5f;
    }
    loom_dtype odt = c->i8 ? LOOM_I8 : LOOM_F32;
    void *ref = malloc(bytes_of(odt, no)), *got = malloc(bytes_of(odt, no));
    for (int64_t b = 0; b < c->n; b++)
        for (int64_t o = 0; o < c->oc; o++)
            for (int64_t y = 0; y < oh; y++)
                for (int64_t z = 0; z < ow; z++) {
                    int32_t acc = bias[o];
                    int64_t gi = o / ocg;
                    for (int64_t ci = 0; ci < cg; ci++)
                        for (int64_t i = 0; i < c->kh; i++)
                            for (int64_t j = 0; j < c->kw; j++) {
                                int64_t ih = y * c->stride - c->pad + i, iw = z * c->stride - c->pad + j;
                                int32_t v = ih >= 0 && ih < c->h && iw >= 0 && iw < c->w
                                                ? x[((b * c->c + gi * cg + ci) * c->h + ih) * c->w + iw]
                                                : c->in_zero;
                                acc += v * w[((o * cg + ci) * c->kh + i) * c->kw + j];
                            }
                    epilogue(acc, mult[o], c->i8, c->zero, c->relu, ref, (size_t)(((b * c->oc + o) * oh + y) * ow + z));
                }
    char specs[16][32];
    int nd = tu_devices(ctx, specs, 15);
    /* and once more the CPU's own kernel, beside its oneDNN one */
    snprintf(specs[nd++], sizeof specs[0], "cpu");
    for (int d = 0; d < nd; d++) {
        int own = d == nd - 1;
        if (own)
            setenv("LOOM_CPU_CONV", "own", 1);
        loom_graph *g;
        ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
        int64_t sx[4] = {c->n, c->c, c->h, c->w}, sw[4] = {c->oc, cg, c->kh, c->kw}, sn[1] = {c->oc};
        loom_tensor tx = loom_input(g, "in0", LOOM_I8, 4, sx), tw = loom_input(g, "in1", LOOM_I8, 4, sw);
        loom_tensor tb = loom_input(g, "in2", LOOM_I32, 1, sn), tm = loom_input(g, "in3", LOOM_F32, 1, sn);
        loom_conv2d_opts co = loom_conv2d_opts_default();
        co.stride[0] = co.stride[1] = c->stride;
        co.pad[0] = co.pad[1] = co.pad[2] = co.pad[3] = c->pad;
        co.groups = c->groups;
        loom_qgemm_opts o = loom_qgemm_opts_default();
        o.out = odt;
        o.out_zero = c->zero;
        o.in_zero = c->in_zero;
        o.act = c->relu ? LOOM_ACT_RELU : LOOM_ACT_NONE;
        loom_tensor y = loom_qconv2d(g, tx, tw, tb, tm, &co, &o);
        ck_assert_msg(y.id, "%s", loom_graph_error(g));
        loom_output(g, y, "out");
        const void *data[4] = {x, w, bias, mult};
        size_t bytes[4] = {nx, nw, (size_t)c->oc * 4, (size_t)c->oc * 4};
        memset(got, 0x5a, bytes_of(odt, no));
        run_on(specs[d], g, 4, data, bytes, got, bytes_of(odt, no));
        size_t bad = no;
        for (size_t e = 0; e < no && bad == no; e++)
            if (c->i8 ? ((int8_t *)got)[e] != ((int8_t *)ref)[e] : ((float *)got)[e] != ((float *)ref)[e])
                bad = e;
        if (own)
            unsetenv("LOOM_CPU_CONV");
        ck_assert_msg(bad == no, "qconv2d case %d (%s) on %s%s differs at %zu: %g, integer reference %g", _i,
                      loom_dtype_name(odt), specs[d], own ? " (own kernel)" : "", bad,
                      c->i8 ? (double)((int8_t *)got)[bad] : (double)((float *)got)[bad],
                      c->i8 ? (double)((int8_t *)ref)[bad] : (double)((float *)ref)[bad]);
        loom_graph_destroy(g);
    }
    free(x);
    free(w);
    free(bias);
    free(mult);
    free(ref);
    free(got);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- quantize, dequantize --------------------------------------------------------- */

/* Values k + f with f away from a half (the division's last bit cannot
 * move them across a rounding boundary), per channel along axis 1 of
 * [3, 4, 5], some beyond the range (saturation). */
START_TEST(quantize_roundtrip)
{
    loom_ctx *ctx = tu_ctx();
    int64_t sx[3] = {3, 4, 5}, sq[2] = {2, 4};
    size_t n = 60;
    float x[60], qp[8] = {0.5f, 0.25f, 0.1f, 2.0f, 0, -3, 10, 127};
    uint32_t s = 3;
    for (size_t i = 0; i < n; i++) {
        int ch = (int)((i / 5) % 4);
        int k = (int)(rng_next(&s) % 300) - 150;
        float f = 0.1f + 0.3f * (float)(rng_next(&s) % 2) + 0.5f * (float)(rng_next(&s) % 2);
        x[i] = ((float)k + f) * qp[ch];
    }
    int8_t ref[60], got[60];
    float dref[60], dgot[60];
    for (size_t i = 0; i < n; i++) {
        int ch = (int)((i / 5) % 4);
        ref[i] = loom_quantize_value(x[i], qp[ch], (int)qp[4 + ch]);
        dref[i] = ((float)ref[i] - qp[4 + ch]) * qp[ch];
        /* the host's rounding is the one of include/loom.h */
        double t = nearbyint((double)x[i] / qp[ch]) + qp[4 + ch];
        ck_assert_int_eq(ref[i], (int8_t)(t < -128 ? -128 : t > 127 ? 127 : t));
    }
    /* ties go to even, NaN to the zero point */
    ck_assert_int_eq(loom_quantize_value(2.5f, 1.0f, 0), 2);
    ck_assert_int_eq(loom_quantize_value(3.5f, 1.0f, 0), 4);
    ck_assert_int_eq(loom_quantize_value(-2.5f, 1.0f, 0), -2);
    ck_assert_int_eq(loom_quantize_value(1000.0f, 1.0f, 0), 127);
    ck_assert_int_eq(loom_quantize_value(-1000.0f, 1.0f, 5), -128);
    ck_assert_int_eq(loom_quantize_value(NAN, 1.0f, 9), 9);
    char specs[16][32];
    int nd = tu_devices(ctx, specs, 16);
    for (int d = 0; d < nd; d++) {
        loom_graph *g;
        ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
        loom_tensor tx = loom_input(g, "in0", LOOM_F32, 3, sx), tq = loom_input(g, "in1", LOOM_F32, 2, sq);
        loom_tensor q = loom_quantize(g, tx, tq, 1);
        loom_output(g, q, "out");
        loom_output(g, loom_dequantize(g, q, tq, 1), "deq");
        const void *data[2] = {x, qp};
        size_t bytes[2] = {sizeof x, sizeof qp};
        loom_device *dev = tu_open(ctx, specs[d]);
        loom_state *st;
        ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
        static const char *const names[2] = {"in0", "in1"};
        loom_program *p = tu_compile_run(g, dev, st, 2, names, data, bytes);
        ck_assert_int_eq(loom_program_read(p, "out", got, sizeof got), LOOM_OK);
        ck_assert_int_eq(loom_program_read(p, "deq", dgot, sizeof dgot), LOOM_OK);
        for (size_t i = 0; i < n; i++) {
            ck_assert_msg(got[i] == ref[i], "quantize on %s: element %zu = %d, %d expected", specs[d], i, got[i],
                          ref[i]);
            ck_assert_msg(dgot[i] == dref[i], "dequantize on %s: element %zu = %g, %g expected", specs[d], i,
                          (double)dgot[i], (double)dref[i]);
        }
        loom_program_destroy(p);
        loom_state_destroy(st);
        loom_device_close(dev);
        loom_graph_destroy(g);
    }
    loom_ctx_destroy(ctx);
}
END_TEST

/* Bad operands: a clear status naming the op and the shapes. */
START_TEST(bad_operands)
{
    loom_ctx *ctx = tu_ctx();
    loom_graph *g;
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t s2[2] = {4, 6}, s3[2] = {2, 3}, s4[1] = {4};
    loom_tensor x = loom_input(g, "x", LOOM_F32, 2, s2), qp = loom_input(g, "qp", LOOM_F32, 2, s3);
    ck_assert_int_eq(loom_quantize(g, x, qp, 0).id, 0);
    ck_assert_int_eq(loom_graph_status(g), LOOM_E_SHAPE);
    ck_assert_ptr_nonnull(strstr(loom_graph_error(g), "[2, 4]"));
    loom_graph_destroy(g);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    loom_tensor a = loom_input(g, "a", LOOM_F32, 2, s2), w = loom_input(g, "w", LOOM_I8, 2, s2);
    loom_tensor b = loom_input(g, "b", LOOM_I32, 1, s4), m = loom_input(g, "m", LOOM_F32, 1, s4);
    ck_assert_int_eq(loom_qmatmul(g, a, w, b, m, NULL).id, 0);
    ck_assert_int_eq(loom_graph_status(g), LOOM_E_DTYPE);
    ck_assert_ptr_nonnull(strstr(loom_graph_error(g), "qmatmul: input \"a\" is f32, i8 is needed"));
    loom_graph_destroy(g);
    /* no gradient: inference only (the i8 tensor carries none) */
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t s1[2] = {1, 1};
    loom_tensor p = loom_param(g, "p", LOOM_F32, 2, s2, 1);
    loom_tensor q = loom_quantize(g, p, loom_input(g, "qp", LOOM_F32, 2, (int64_t[2]){2, 1}), -1);
    (void)s1;
    loom_tensor y = loom_sum_all(g, loom_dequantize(g, q, loom_graph_find(g, "qp"), -1));
    ck_assert_int_eq(loom_backward(g, y, &p, 1), LOOM_OK);
    ck_assert_int_eq(loom_grad(g, p).id, 0);
    loom_graph_destroy(g);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- calibration --------------------------------------------------------------------- */

START_TEST(calib_known_answers)
{
    loom_ctx *ctx = tu_ctx();
    /* uniform over the first 1000 bins: the clipped and the quantized
     * distributions first agree when nothing is clipped */
    uint64_t *bins = calloc(LOOM_CALIB_BINS, sizeof *bins);
    for (int i = 0; i < 1000; i++)
        bins[i] = 50;
    ck_assert_int_eq(loom_calib_kl_bins(bins, LOOM_CALIB_BINS, 128), 1000);
    /* the same over 300 bins and 64 levels */
    memset(bins, 0, LOOM_CALIB_BINS * sizeof *bins);
    for (int i = 0; i < 300; i++)
        bins[i] = 7;
    ck_assert_int_eq(loom_calib_kl_bins(bins, 512, 64), 300);
    /* a bulk with a far, thin tail: the tail is clipped (the threshold
     * ends far below the largest value) */
    memset(bins, 0, LOOM_CALIB_BINS * sizeof *bins);
    for (int i = 0; i < 200; i++)
        bins[i] = (uint64_t)(100000.0 * exp(-(double)i / 40.0)) + 1;
    bins[2047] = 1;
    int kl = loom_calib_kl_bins(bins, LOOM_CALIB_BINS, 128);
    ck_assert_msg(kl >= 128 && kl < 400, "kl threshold %d bins", kl);
    ck_assert_int_eq(loom_calib_kl_bins(bins, 100, 128), 0);
    free(bins);

    /* histograms from values: 0..9999 / 1000 (absmax 10) */
    loom_calib_hist *h = calloc(1, sizeof *h);
    h->absmax = 10.0;
    float v[10000];
    for (int i = 0; i < 10000; i++)
        v[i] = (float)i / 1000.0f;
    loom_calib_hist_add(h, v, 10000);
    ck_assert_int_eq((int)h->count, 10000);
    double t;
    ck_assert_int_eq(loom_calib_threshold(ctx, h, LOOM_CALIB_MINMAX, 0, &t), LOOM_OK);
    ck_assert(fabs(t - 9.999) < 1e-6);
    /* 50%: half the values lie below 5.0, the upper edge of bin 1023 */
    ck_assert_int_eq(loom_calib_threshold(ctx, h, LOOM_CALIB_PERCENTILE, 50.0, &t), LOOM_OK);
    ck_assert_msg(fabs(t - 1024 * 10.0 / 2048) < 1e-9, "percentile 50: %g", t);
    ck_assert_int_eq(loom_calib_threshold(ctx, h, LOOM_CALIB_PERCENTILE, 0, &t), LOOM_OK);
    ck_assert(t > 9.99 && t <= 9.999);
    ck_assert_int_eq(loom_calib_threshold(ctx, h, LOOM_CALIB_KL, 0, &t), LOOM_OK);
    ck_assert(t > 9.9 && t <= 9.999); /* uniform: nothing worth clipping */
    ck_assert_int_eq(loom_calib_threshold(ctx, h, LOOM_CALIB_PERCENTILE, 150, &t), LOOM_E_INVALID);
    memset(h, 0, sizeof *h);
    ck_assert_int_eq(loom_calib_threshold(ctx, h, LOOM_CALIB_KL, 0, &t), LOOM_E_INVALID);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "empty histogram"));
    ck_assert_int_eq(loom_calib_method_by_name("kl"), LOOM_CALIB_KL);
    ck_assert_int_eq(loom_calib_method_by_name("entropy"), -1);
    free(h);
    loom_ctx_destroy(ctx);
}
END_TEST


/* ---- quantized models ------------------------------------------------------------ */

/* Synthetic 12x12 images, 4 classes: class c lights a quarter of the rows;
 * scaled to [0, 1]. */
static loom_dataset *make_images(loom_ctx *ctx, int64_t n, uint32_t seed)
{
    float *x = malloc((size_t)n * 144 * sizeof *x);
    int32_t *y = malloc((size_t)n * sizeof *y);
    for (int64_t i = 0; i < n; i++) {
        int c = (int)(i % 4);
        y[i] = c;
        for (int r = 0; r < 12; r++)
            for (int q = 0; q < 12; q++)
                x[i * 144 + r * 12 + q] = (float)(rng_next(&seed) % 100) / 250.0f + (r / 3 == c ? 0.5f : 0.0f);
    }
    loom_dataset *ds = NULL;
    ck_assert_int_eq(loom_dataset_create(ctx, n, 144, x, 1, y, &ds), LOOM_OK);
    free(x);
    free(y);
    return ds;
}

/* conv2d relu, batch norm, max pool, flatten, dense relu, dense softmax:
 * every kind an int8 model keeps or quantizes, trained one epoch. */
static loom_sequential *small_cnn(loom_ctx *ctx, loom_device *dev, loom_dataset *train)
{
    loom_sequential *m = NULL;
    ck_assert_int_eq(loom_sequential_create_image(ctx, 1, 12, 12, &m), LOOM_OK);
    loom_conv2d_layer c = loom_conv2d_layer_default(6, 3, 3);
    c.same = 1;
    c.act = LOOM_ACT_RELU;
    ck_assert_int_eq(loom_sequential_add_conv2d(m, &c), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_batch_norm(m, 0.9f, 1e-3f), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_max_pool2d(m, 2, 2, 2, 0), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_flatten(m), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_dense(m, 16, LOOM_ACT_RELU, LOOM_INIT_HE_NORMAL), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_dense(m, 4, LOOM_ACT_SOFTMAX, LOOM_INIT_GLOROT_UNIFORM), LOOM_OK);
    loom_model_config mc = loom_model_config_default();
    mc.batch = 16;
    ck_assert_int_eq(loom_sequential_compile(m, dev, &mc), LOOM_OK);
    loom_fit_config fc = loom_fit_config_default();
    fc.epochs = 1;
    ck_assert_msg(loom_sequential_fit(m, train, &fc, NULL) == LOOM_OK, "%s", loom_last_error(ctx));
    return m;
}

static char tmp[64];

static const char *tpath(const char *name)
{
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmp, name);
    return buf[k];
}

START_TEST(model_int8)
{
    strcpy(tmp, "/tmp/loom_quant_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    loom_ctx *ctx = tu_ctx();
    loom_device *cpu = tu_open(ctx, "cpu");
    loom_dataset *train = make_images(ctx, 320, 1), *test = make_images(ctx, 96, 2);
    loom_sequential *m = small_cnn(ctx, cpu, train);
    loom_quant_opts qo = loom_quant_opts_default();
    qo.samples = 128;
    qo.max_drop = -1; /* every layer int8 */
    char specs[16][32];
    int nd = tu_devices(ctx, specs, 16);
    int64_t n = 96;
    float *pf = malloc((size_t)n * 4 * sizeof *pf), *pq = malloc((size_t)n * 4 * sizeof *pq);
    float *pl = malloc((size_t)n * 4 * sizeof *pl);
    ck_assert_int_eq(loom_sequential_predict(m, loom_dataset_images(test), n, pf), LOOM_OK);
    loom_sequential *q0 = NULL;
    loom_device *dev0 = NULL;
    for (int d = 0; d < nd; d++) {
        loom_device *dev = tu_open(ctx, specs[d]);
        loom_sequential *q = NULL;
        loom_quant_report rep;
        ck_assert_msg(loom_sequential_quantize(m, train, dev, &qo, &q, &rep) == LOOM_OK, "%s: %s", specs[d],
                      loom_last_error(ctx));
        ck_assert(loom_sequential_is_quantized(q));
        ck_assert_int_eq(rep.nlayers, 3);
        for (int k = 0; k < rep.nlayers; k++)
            ck_assert(rep.layers[k].int8);
        /* after relu and batch norm: the conv's input is [0, 1] (zero
         * point -128); the first dense reads batch-normed values */
        ck_assert_int_eq(rep.layers[0].in_zero, -128);
        ck_assert_msg(loom_sequential_predict(q, loom_dataset_images(test), n, pq) == LOOM_OK, "%s: %s", specs[d],
                      loom_last_error(ctx));
        /* against the float model: close, the same classes nearly always */
        int agree = 0;
        double worst = 0;
        for (int64_t i = 0; i < n; i++) {
            int af = 0, aq = 0;
            for (int c = 1; c < 4; c++) {
                af = pf[i * 4 + c] > pf[i * 4 + af] ? c : af;
                aq = pq[i * 4 + c] > pq[i * 4 + aq] ? c : aq;
            }
            agree += af == aq;
            for (int c = 0; c < 4; c++)
                worst = fmax(worst, fabs(pf[i * 4 + c] - pq[i * 4 + c]));
        }
        ck_assert_msg(agree >= n - 3 && worst < 0.15, "%s: int8 agrees with f32 on %d of %lld, worst %g", specs[d],
                      agree, (long long)n, worst);
        /* training a quantized model is refused */
        loom_fit_config fc = loom_fit_config_default();
        fc.epochs = 1;
        ck_assert_int_eq(loom_sequential_fit(q, train, &fc, NULL), LOOM_E_UNSUPPORTED);
        ck_assert_msg(strstr(loom_last_error(ctx), "inference only"), "%s", loom_last_error(ctx));
        if (d == 0) {
            q0 = q;
            dev0 = dev; /* q0 lives on it */
            memcpy(pl, pq, (size_t)n * 4 * sizeof *pq);
            continue;
        } else {
            /* every device computes the same integers: the same outputs up
             * to the float ops between the int8 layers */
            tu_assert_close(pq, pl, (size_t)n * 4, 1e-4, 1e-3);
            loom_sequential_destroy(q);
        }
        loom_device_close(dev);
    }
    /* the file: i8 kernels and f32 scales; loaded back on every device, the
     * same outputs */
    const char *qf = tpath("q.lm");
    ck_assert_int_eq(loom_sequential_save(q0, qf), LOOM_OK);
    for (int d = 0; d < nd; d++) {
        loom_device *dev = tu_open(ctx, specs[d]);
        loom_sequential *l = NULL;
        ck_assert_msg(loom_sequential_load(ctx, qf, dev, NULL, &l) == LOOM_OK, "%s", loom_last_error(ctx));
        ck_assert(loom_sequential_is_quantized(l));
        ck_assert_int_eq(loom_sequential_predict(l, loom_dataset_images(test), n, pq), LOOM_OK);
        tu_assert_close(pq, pl, (size_t)n * 4, d ? 1e-4 : 0, d ? 1e-3 : 0);
        loom_sequential_destroy(l);
        loom_device_close(dev);
    }
    loom_tensor_file *f = NULL;
    ck_assert_int_eq(loom_safetensors_open(ctx, qf, &f), LOOM_OK);
    int i8 = 0;
    for (int t = 0; t < loom_safetensors_count(f); t++) {
        const char *name;
        loom_dtype dt;
        loom_safetensors_tensor(f, t, &name, &dt, NULL, NULL, NULL);
        i8 += dt == LOOM_I8;
        ck_assert_msg(!strstr(name, "/kernel") || strstr(name, "/kernel_q"), "%s: an f32 kernel in the file", name);
        ck_assert_msg(!strstr(name, "qbias") && !strstr(name, "qmult"), "%s: a derived tensor in the file", name);
    }
    ck_assert_int_eq(i8, 3);
    ck_assert_ptr_nonnull(loom_safetensors_metadata(f, "loom.quant"));
    loom_safetensors_close(f);
    /* a quantized model is not quantized again, nor saved in half */
    loom_sequential *qq = NULL;
    ck_assert_int_eq(loom_sequential_quantize(q0, train, cpu, &qo, &qq, NULL), LOOM_E_INVALID);
    ck_assert_int_eq(loom_sequential_save_as(q0, tpath("h.lm"), LOOM_F16), LOOM_E_UNSUPPORTED);
    ck_assert_int_eq(access(tpath("h.lm"), F_OK), -1);
    loom_sequential_destroy(q0);
    loom_device_close(dev0);
    loom_sequential_destroy(m);
    free(pf);
    free(pq);
    free(pl);
    loom_dataset_destroy(train);
    loom_dataset_destroy(test);
    loom_device_close(cpu);
    loom_ctx_destroy(ctx);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* A copy of the file at src with one change: tensor `name` dropped
 * (how 0), stored as f32 (how 1), its first value set to v (how 2), or
 * metadata record `name` set to the string v_s (how 3). */
static void rewrite(loom_ctx *ctx, const char *src, const char *dst, const char *name, int how, float v,
                    const char *v_s)
{
    static const char *const keys[] = {"format", "loom.kind", "loom.architecture", "loom.config", "loom.preprocess",
                                       "loom.quant", "loom.step"};
    loom_tensor_file *f = NULL;
    ck_assert_int_eq(loom_safetensors_open(ctx, src, &f), LOOM_OK);
    loom_device *dev = tu_open(ctx, "cpu");
    loom_state *st = NULL;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    for (int t = 0; t < loom_safetensors_count(f); t++) {
        const char *tn;
        loom_dtype dt;
        int ndim;
        int64_t shape[4];
        const void *data;
        loom_safetensors_tensor(f, t, &tn, &dt, &ndim, shape, &data);
        size_t count = 1;
        for (int k = 0; k < ndim; k++)
            count *= (size_t)shape[k];
        int hit = how < 3 && !strcmp(tn, name);
        if (hit && how == 0)
            continue;
        void *copy = malloc(count * 4 + 4);
        memcpy(copy, data, count * loom_dtype_size(dt));
        if (hit && how == 1) {
            float *fl = malloc(count * 4);
            for (size_t e = 0; e < count; e++)
                fl[e] = (float)((const int8_t *)data)[e];
            free(copy);
            copy = fl;
            dt = LOOM_F32;
        }
        if (hit && how == 2)
            memcpy(copy, &v, 4);
        ck_assert_int_eq(loom_state_write(st, tn, dt, ndim, shape, copy), LOOM_OK);
        free(copy);
    }
    const char *meta[16];
    int k = 0;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *val = how == 3 && !strcmp(keys[i], name) ? v_s : loom_safetensors_metadata(f, keys[i]);
        if (val) {
            meta[k++] = keys[i];
            meta[k++] = val;
        }
    }
    meta[k] = NULL;
    ck_assert_int_eq(loom_safetensors_save(st, dst, meta, NULL), LOOM_OK);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_safetensors_close(f);
}

START_TEST(model_file_corrupt)
{
    strcpy(tmp, "/tmp/loom_quant_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    loom_ctx *ctx = tu_ctx();
    loom_device *cpu = tu_open(ctx, "cpu");
    loom_dataset *train = make_images(ctx, 160, 3);
    loom_sequential *m = small_cnn(ctx, cpu, train), *q = NULL;
    loom_quant_opts qo = loom_quant_opts_default();
    qo.samples = 64;
    qo.max_drop = -1;
    ck_assert_int_eq(loom_sequential_quantize(m, train, cpu, &qo, &q, NULL), LOOM_OK);
    const char *good = tpath("good.lm"), *bad = tpath("bad.lm");
    ck_assert_int_eq(loom_sequential_save(q, good), LOOM_OK);
    struct {
        const char *name;
        int how;
        float v;
        const char *v_s;
        const char *message;
    } cases[] = {
        {"conv0/w_scale", 0, 0, NULL, "weight \"conv0/w_scale\" is missing"},
        {"dense0/kernel_q", 0, 0, NULL, "weight \"dense0/kernel_q\" is missing"},
        {"dense1/kernel_q", 1, 0, NULL, "is f32 [4,16] in the file, the architecture needs i8 [4,16]"},
        {"dense0/w_scale", 2, -1.0f, NULL, "weight scale 0 of \"dense0/w_scale\" is -1"},
        {"dense0/w_scale", 2, NAN, NULL, "holds NaN at element 0"},
        {"loom.quant", 3, 0, "{\"method\":\"kl\",\"percentile\":0,\"int8\":[{\"layer\":0,\"in_scale\":0.1,\"in_zero\":300}]}",
         "in_zero is not a whole number in [-128, 127]"},
        {"loom.quant", 3, 0, "{\"method\":\"kl\",\"percentile\":0,\"int8\":[{\"layer\":1,\"in_scale\":0.1,\"in_zero\":0}]}",
         "not the index of a dense or conv2d layer"},
        {"loom.quant", 3, 0, "{\"method\":\"entropy\",\"percentile\":0,\"int8\":[]}", "loom.quant.method"},
        {"loom.quant", 3, 0, "[1, 2", "loom.quant is not a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rewrite(ctx, good, bad, cases[i].name, cases[i].how, cases[i].v, cases[i].v_s);
        loom_sequential *l = (loom_sequential *)1;
        ck_assert_int_eq(loom_sequential_load(ctx, bad, cpu, NULL, &l), LOOM_E_FORMAT);
        ck_assert_ptr_null(l);
        ck_assert_msg(strstr(loom_last_error(ctx), cases[i].message), "case %zu: \"%s\" not in \"%s\"", i,
                      cases[i].message, loom_last_error(ctx));
    }
    /* the float kernel of a layer the plan runs int8 */
    rewrite(ctx, good, bad, "loom.quant", 3, 0,
            "{\"method\":\"kl\",\"percentile\":0,\"int8\":[{\"layer\":0,\"in_scale\":0.1,\"in_zero\":0},"
            "{\"layer\":4,\"in_scale\":0.1,\"in_zero\":0},{\"layer\":5,\"in_scale\":0.1,\"in_zero\":0}]}");
    loom_sequential *l = NULL;
    ck_assert_int_eq(loom_sequential_load(ctx, bad, cpu, NULL, &l), LOOM_OK); /* scales may differ */
    loom_sequential_destroy(l);
    const char *fl = tpath("float.lm");
    ck_assert_int_eq(loom_sequential_save(m, fl), LOOM_OK);
    rewrite(ctx, fl, bad, "loom.quant", 3, 0,
            "{\"method\":\"kl\",\"percentile\":0,\"int8\":[{\"layer\":4,\"in_scale\":0.1,\"in_zero\":0}]}");
    ck_assert_int_eq(loom_sequential_load(ctx, bad, cpu, NULL, &l), LOOM_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "is an f32 kernel, but loom.quant runs its layer in int8"));
    /* a truncated file */
    FILE *in = fopen(good, "rb"), *out = fopen(bad, "wb");
    char buf[4096];
    size_t got = fread(buf, 1, sizeof buf, in);
    fwrite(buf, 1, got / 2, out);
    fclose(in);
    fclose(out);
    ck_assert_int_eq(loom_sequential_load(ctx, bad, cpu, NULL, &l), LOOM_E_FORMAT);
    loom_sequential_destroy(q);
    loom_sequential_destroy(m);
    loom_dataset_destroy(train);
    loom_device_close(cpu);
    loom_ctx_destroy(ctx);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("quant");
    TCase *tk = tcase_create("kernels");
    tcase_set_timeout(tk, 300);
    tcase_add_loop_test(tk, qmatmul_exact, 0, (int)(sizeof qmm_cases / sizeof qmm_cases[0]));
    tcase_add_test(tk, qmatmul_vulkan_dot);
    tcase_add_loop_test(tk, qconv_exact, 0, (int)(sizeof qconv_cases / sizeof qconv_cases[0]));
    tcase_add_test(tk, quantize_roundtrip);
    tcase_add_test(tk, bad_operands);
    suite_add_tcase(s, tk);
    TCase *tc = tcase_create("calibration");
    tcase_add_test(tc, calib_known_answers);
    suite_add_tcase(s, tc);
    TCase *tm = tcase_create("models");
    tcase_set_timeout(tm, 600);
    tcase_add_test(tm, model_int8);
    tcase_add_test(tm, model_file_corrupt);
    suite_add_tcase(s, tm);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
