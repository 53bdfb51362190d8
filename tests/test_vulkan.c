/* The Vulkan backend beyond the op matrix: GEMM over every transpose and
 * read path against the CPU backend, training steps (optimizers, clipping,
 * dropout, EMA) against the CPU backend, the binding limit, the
 * sub-allocator and staged transfers, timestamps, and the pipeline cache
 * file (written, reloaded, and ignored when corrupt, truncated or foreign).
 * Every test fails on any validation message. Without a Vulkan device that
 * can run graphs the tests say so and pass. */
#include "testutil.h"

#include "backends/vulkan/vk_internal.h"
#include "core/program.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------- */

static int have_vulkan(loom_ctx *ctx)
{
    loom_device_info info;
    for (int i = 0; i < loom_device_count(ctx); i++)
        if (loom_device_get_info(ctx, i, &info) == LOOM_OK && info.backend == LOOM_BACKEND_VULKAN && info.can_run)
            return 1;
    fprintf(stderr, "test_vulkan: no Vulkan device can run graphs here; skipped\n");
    return 0;
}

static void no_validation_errors(loom_ctx *ctx)
{
    ck_assert_msg(loom_validation_errors(ctx) == 0, "%llu Vulkan validation errors",
                  (unsigned long long)loom_validation_errors(ctx));
}

/* A log sink that keeps every message, for the cache tests. */
typedef struct logbuf {
    char text[1 << 16];
    size_t n;
} logbuf;

static void keep_log(void *user, loom_log_level level, const char *msg)
{
    logbuf *b = user;
    size_t len = strlen(msg);
    if (b->n + len + 2 < sizeof b->text) {
        memcpy(b->text + b->n, msg, len);
        b->n += len;
        b->text[b->n++] = '\n';
        b->text[b->n] = '\0';
    }
    if (level == LOOM_LOG_ERROR)
        fprintf(stderr, "loom: %s\n", msg);
}

static loom_ctx *ctx_logging(const char *cache_dir, logbuf *b)
{
    loom_ctx_opts o;
    loom_ctx_opts_default(&o);
    o.cache_dir = cache_dir;
    o.log = keep_log;
    o.log_user = b;
    o.log_level = LOOM_LOG_INFO;
    loom_ctx *ctx = NULL;
    ck_assert_int_eq(loom_ctx_create(&o, &ctx), LOOM_OK);
    return ctx;
}

/* ---- GEMM ------------------------------------------------------------------ */

typedef struct gemm_shape {
    int m, n, k;
} gemm_shape;

/* Odd sizes, K = 1, K = 4097, sizes that are multiples of 4 (the vec4 read
 * paths) alone and mixed with odd ones, and more than one workgroup tile in
 * both dims with ragged edges. */
static const gemm_shape gemm_shapes[] = {
    {1, 1, 1},   {5, 7, 1},    {17, 23, 31}, {64, 96, 128}, {64, 33, 96},
    {33, 64, 96}, {3, 5, 4097}, {8, 12, 4097}, {130, 70, 20},
};

/* The 4 transposes of one shape in one graph; outputs "c<ta><tb>". */
static void gemm_run(loom_ctx *ctx, const char *spec, const gemm_shape *s, float *out[4], float *in[8])
{
    loom_device *dev = tu_open(ctx, spec);
    loom_state *st;
    loom_graph *g;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    char names[8][8];
    size_t bytes[8];
    for (int t = 0; t < 4; t++) {
        int ta = t >> 1, tb = t & 1;
        int64_t as[2] = {ta ? s->k : s->m, ta ? s->m : s->k}, bs[2] = {tb ? s->n : s->k, tb ? s->k : s->n};
        snprintf(names[2 * t], 8, "a%d", t);
        snprintf(names[2 * t + 1], 8, "b%d", t);
        bytes[2 * t] = (size_t)(s->m * s->k) * 4;
        bytes[2 * t + 1] = (size_t)(s->k * s->n) * 4;
        loom_tensor a = loom_input(g, names[2 * t], LOOM_F32, 2, as);
        loom_tensor b = loom_input(g, names[2 * t + 1], LOOM_F32, 2, bs);
        char on[8];
        snprintf(on, sizeof on, "c%d%d", ta, tb);
        ck_assert_int_eq(loom_output(g, loom_matmul(g, a, b, ta, tb), on), LOOM_OK);
    }
    loom_compile_opts o = {.guard = 1};
    loom_program *p = NULL;
    ck_assert_msg(loom_compile(g, dev, st, &o, &p) == LOOM_OK, "compile on %s: %s", spec, loom_last_error(ctx));
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(loom_program_set_input(p, names[i], in[i], bytes[i]), LOOM_OK);
    ck_assert_msg(loom_program_run(p) == LOOM_OK, "run on %s: %s", spec, loom_last_error(ctx));
    ck_assert_msg(loom_program_check_guards(p) == LOOM_OK, "%s", loom_last_error(ctx));
    for (int t = 0; t < 4; t++) {
        char on[8];
        snprintf(on, sizeof on, "c%d%d", t >> 1, t & 1);
        out[t] = malloc((size_t)(s->m * s->n) * 4);
        ck_assert_int_eq(loom_program_read(p, on, out[t], (size_t)(s->m * s->n) * 4), LOOM_OK);
    }
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
}

START_TEST(test_gemm_transposes)
{
    const gemm_shape *s = &gemm_shapes[_i];
    loom_ctx *ctx = tu_ctx();
    if (!have_vulkan(ctx)) {
        loom_ctx_destroy(ctx);
        return;
    }
    float *in[8];
    for (int i = 0; i < 8; i++) {
        size_t n = (size_t)(i % 2 ? s->k * s->n : s->m * s->k);
        in[i] = malloc(n * 4);
        tu_fill(in[i], n, 17u + (uint32_t)i, -1, 1);
    }
    float *ref[4], *got[4];
    gemm_run(ctx, "cpu", s, ref, in);
    gemm_run(ctx, "vulkan:0", s, got, in);
    /* Sums of K products of values in [-1, 1]: the error grows with K. */
    double atol = 1e-5 * (double)s->k + 1e-6;
    for (int t = 0; t < 4; t++) {
        double e = tu_err(got[t], ref[t], (size_t)(s->m * s->n), atol, 1e-4);
        ck_assert_msg(e <= 1.0, "matmul %dx%dx%d ta=%d tb=%d on vulkan:0 differs from cpu: normalized error %g", s->m,
                      s->n, s->k, t >> 1, t & 1, e);
        free(ref[t]);
        free(got[t]);
    }
    for (int i = 0; i < 8; i++)
        free(in[i]);
    no_validation_errors(ctx);
    loom_ctx_destroy(ctx);
}
END_TEST

/* A GEMM followed by a row-bias add becomes one dispatch, unless the GEMM's
 * result is read elsewhere or is an output; results match the CPU either
 * way. Returns the outputs y0..y3 and the number of dispatches. */
static int bias_graph(loom_ctx *ctx, const char *spec, float *out[4])
{
    enum { M = 19, K = 24, N = 36 };
    loom_device *dev = tu_open(ctx, spec);
    loom_state *st;
    loom_graph *g;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t as[2] = {M, K}, ws[2] = {K, N}, bs[1] = {N}, bs2[2] = {1, N};
    float a[M * K], w[K * N], b[N];
    tu_fill(a, M * K, 1, -1, 1);
    tu_fill(w, K * N, 2, -1, 1);
    tu_fill(b, N, 3, -1, 1);
    loom_tensor ta = loom_constant(g, "a", LOOM_F32, 2, as, a), tw = loom_constant(g, "w", LOOM_F32, 2, ws, w);
    loom_tensor tb = loom_constant(g, "b", LOOM_F32, 1, bs, b), tb2 = loom_constant(g, "b2", LOOM_F32, 2, bs2, b);
    /* fused: bias on either side, [N] or [1,N] */
    loom_output(g, loom_add(g, loom_matmul(g, ta, tw, 0, 0), tb), "y0");
    loom_output(g, loom_add(g, tb2, loom_matmul(g, ta, tw, 0, 0)), "y1");
    /* not fused: the product is read twice, or is an output itself */
    loom_tensor mm = loom_matmul(g, ta, tw, 0, 0);
    loom_output(g, loom_add(g, mm, tb), "y2");
    loom_output(g, loom_relu(g, mm), "y3");
    loom_tensor mo = loom_matmul(g, ta, tw, 0, 0);
    loom_output(g, mo, "mo");
    loom_output(g, loom_add(g, mo, tb), "y4");
    loom_program *p = NULL;
    ck_assert_msg(loom_compile(g, dev, st, NULL, &p) == LOOM_OK, "%s", loom_last_error(ctx));
    ck_assert_int_eq(loom_program_run(p), LOOM_OK);
    const char *names[5] = {"y0", "y1", "y2", "y3", "y4"};
    for (int i = 0; i < 5; i++) {
        out[i] = malloc(M * N * 4);
        ck_assert_int_eq(loom_program_read(p, names[i], out[i], M * N * 4), LOOM_OK);
    }
    int ndisp = strcmp(spec, "cpu") ? ((vk_prog *)p->bprog)->ndisp : 0;
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
    return ndisp;
}

START_TEST(test_gemm_bias_fusion)
{
    loom_ctx *ctx = tu_ctx();
    if (!have_vulkan(ctx)) {
        loom_ctx_destroy(ctx);
        return;
    }
    float *ref[5], *got[5];
    bias_graph(ctx, "cpu", ref);
    int ndisp = bias_graph(ctx, "vulkan:0", got);
    /* 4 GEMMs, relu, the two adds that were not fused */
    ck_assert_int_eq(ndisp, 7);
    for (int i = 0; i < 5; i++) {
        double e = tu_err(got[i], ref[i], 19 * 36, 1e-5, 1e-5);
        ck_assert_msg(e <= 1.0, "y%d differs from cpu: normalized error %g", i, e);
        free(ref[i]);
        free(got[i]);
    }
    no_validation_errors(ctx);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- training steps --------------------------------------------------------- */

/* A 6-layer tanh/relu/gelu MLP with dropout (12 trainable tensors, so the
 * gradient norm takes two SUMSQ dispatches), a sparse cross-entropy loss,
 * the optimizer under test with clipping and an EMA; 3 steps. Returns the
 * losses and the final first-layer weights and EMA. */
static void train_steps(loom_ctx *ctx, const char *spec, const loom_optimizer *opt, float loss[3], float *w0,
                        float *ema0)
{
    enum { N = 16, D = 12, C = 5, L = 6 };
    loom_device *dev = tu_open(ctx, spec);
    loom_state *st;
    loom_graph *g;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t xs[2] = {N, D}, ls[1] = {N};
    loom_tensor h = loom_input(g, "x", LOOM_F32, 2, xs);
    loom_tensor lab = loom_input(g, "labels", LOOM_I32, 1, ls);
    for (int l = 0; l < L; l++) {
        int out = l == L - 1 ? C : D;
        int64_t ws[2] = {D, out}, bs[1] = {out};
        char wn[8], bn[8];
        snprintf(wn, sizeof wn, "w%d", l);
        snprintf(bn, sizeof bn, "b%d", l);
        float w[D * D], b[D];
        tu_fill(w, (size_t)(D * out), 300u + (uint32_t)l, -0.5f, 0.5f);
        tu_fill(b, (size_t)out, 400u + (uint32_t)l, -0.1f, 0.1f);
        ck_assert_int_eq(loom_state_write(st, wn, LOOM_F32, 2, ws, w), LOOM_OK);
        ck_assert_int_eq(loom_state_write(st, bn, LOOM_F32, 1, bs, b), LOOM_OK);
        loom_tensor z = loom_add(g, loom_matmul(g, h, loom_param(g, wn, LOOM_F32, 2, ws, 1), 0, 0),
                                 loom_param(g, bn, LOOM_F32, 1, bs, 1));
        if (l < L - 1) {
            z = l % 3 == 0 ? loom_tanh(g, z) : l % 3 == 1 ? loom_relu(g, z) : loom_gelu(g, z);
            if (l == 1)
                z = loom_dropout(g, z, 0.25f, 99);
        }
        h = z;
    }
    loom_tensor lt = loom_sparse_cross_entropy(g, h, lab);
    ck_assert_int_eq(loom_output(g, lt, "loss"), LOOM_OK);
    ck_assert_msg(loom_backward(g, lt, NULL, 0) == LOOM_OK, "%s", loom_graph_error(g));
    ck_assert_msg(loom_optimize(g, opt) == LOOM_OK, "%s", loom_graph_error(g));
    loom_program *p = NULL;
    ck_assert_msg(loom_compile(g, dev, st, NULL, &p) == LOOM_OK, "compile on %s: %s", spec, loom_last_error(ctx));
    float x[N * D];
    int32_t labels[N];
    tu_fill(x, N * D, 5, -2, 2);
    for (int i = 0; i < N; i++)
        labels[i] = (i * 3 + 1) % C;
    ck_assert_int_eq(loom_program_set_input(p, "x", x, sizeof x), LOOM_OK);
    ck_assert_int_eq(loom_program_set_input(p, "labels", labels, sizeof labels), LOOM_OK);
    for (int s = 0; s < 3; s++) {
        ck_assert_msg(loom_program_run(p) == LOOM_OK, "step %d on %s: %s", s, spec, loom_last_error(ctx));
        ck_assert_int_eq(loom_program_read(p, "loss", &loss[s], 4), LOOM_OK);
    }
    ck_assert_int_eq(loom_state_read(st, "w0", w0, D * D * 4), LOOM_OK);
    if (ema0)
        ck_assert_int_eq(loom_state_read(st, "w0/ema", ema0, D * D * 4), LOOM_OK);
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
}

static void compare_training(const loom_optimizer *opt, int ema)
{
    loom_ctx *ctx = tu_ctx();
    if (!have_vulkan(ctx)) {
        loom_ctx_destroy(ctx);
        return;
    }
    float lc[3], lv[3], wc[144], wv[144], ec[144], ev[144];
    train_steps(ctx, "cpu", opt, lc, wc, ema ? ec : NULL);
    train_steps(ctx, "vulkan:0", opt, lv, wv, ema ? ev : NULL);
    for (int s = 0; s < 3; s++)
        ck_assert_msg(fabsf(lc[s] - lv[s]) <= 1e-4f + 1e-4f * fabsf(lc[s]), "step %d: loss %g on cpu, %g on vulkan:0",
                      s, (double)lc[s], (double)lv[s]);
    ck_assert_msg(lc[2] != lc[0], "the loss did not move: the updates did nothing");
    tu_assert_close(wv, wc, 144, 1e-5, 1e-3);
    if (ema)
        tu_assert_close(ev, ec, 144, 1e-5, 1e-3);
    no_validation_errors(ctx);
    loom_ctx_destroy(ctx);
}

START_TEST(test_train_adamw_clip_ema)
{
    loom_optimizer opt = loom_optimizer_default(LOOM_OPT_ADAMW);
    opt.lr = 0.01f;
    opt.clip_norm = 0.5f;
    opt.l2 = 1e-3f;
    opt.ema_decay = 0.9f;
    opt.schedule = LOOM_LR_COSINE;
    opt.warmup_steps = 1;
    opt.total_steps = 10;
    compare_training(&opt, 1);
}
END_TEST

START_TEST(test_train_sgd_nesterov)
{
    loom_optimizer opt = loom_optimizer_default(LOOM_OPT_SGD);
    opt.lr = 0.05f;
    opt.momentum = 0.9f;
    opt.nesterov = 1;
    opt.l1 = 1e-3f;
    compare_training(&opt, 0);
}
END_TEST

START_TEST(test_train_sgd_plain)
{
    loom_optimizer opt = loom_optimizer_default(LOOM_OPT_SGD);
    opt.lr = 0.1f;
    opt.schedule = LOOM_LR_STEP;
    opt.step_size = 2;
    opt.gamma = 0.5f;
    compare_training(&opt, 0);
}
END_TEST

/* ---- limits and memory -------------------------------------------------------- */

/* More workgroups than one grid row holds (65535 on most devices): the
 * dispatch spreads over y, and every element must be written once. An
 * in-place op shows a double write (y = x*0.5 + 1 applied twice). */
START_TEST(test_grid_rows_in_place)
{
    loom_ctx *ctx = tu_ctx();
    if (!have_vulkan(ctx)) {
        loom_ctx_destroy(ctx);
        return;
    }
    const int64_t n = 65535LL * 256 + 1000;
    loom_device *dev = tu_open(ctx, "vulkan:0");
    loom_state *st;
    loom_graph *g;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t s1[1] = {n};
    loom_tensor x = loom_input(g, "x", LOOM_F32, 1, s1), y = loom_input(g, "y", LOOM_F32, 1, s1);
    loom_output(g, loom_add(g, loom_scale(g, x, 0.5f), y), "o");
    float *a = malloc((size_t)n * 4), *b = malloc((size_t)n * 4), *o = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++)
        a[i] = (float)(i % 1000), b[i] = 1.0f;
    const char *names[2] = {"x", "y"};
    const void *data[2] = {a, b};
    size_t bytes[2] = {(size_t)n * 4, (size_t)n * 4};
    loom_program *p = tu_compile_run(g, dev, st, 2, names, data, bytes);
    loom_plan_report r;
    ck_assert_int_eq(loom_program_plan(p, &r), LOOM_OK);
    ck_assert_int_ge(r.inplace, 1);
    ck_assert_int_eq(loom_program_read(p, "o", o, (size_t)n * 4), LOOM_OK);
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(o[i] == 0.5f * a[i] + 1.0f, "o[%lld] = %g, want %g", (long long)i, (double)o[i],
                      (double)(0.5f * a[i] + 1.0f));
    no_validation_errors(ctx);
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
    free(a), free(b), free(o);
}
END_TEST

START_TEST(test_binding_limit)
{
    loom_ctx *ctx = tu_ctx();
    if (!have_vulkan(ctx)) {
        loom_ctx_destroy(ctx);
        return;
    }
    loom_device *dev = tu_open(ctx, "vulkan:0");
    const loom_device_info *info = loom_device_get(dev);
    vk_dev *vd = ((struct loom_device *)dev)->bdev;
    ck_assert_uint_eq(info->max_binding_bytes, vd->lim->max_storage_range < vd->lim->max_alloc_bytes
                                                   ? vd->lim->max_storage_range
                                                   : vd->lim->max_alloc_bytes);
    if (strstr(info->name, "llvmpipe"))
        ck_assert_uint_eq(info->max_binding_bytes, 128u << 20);
    if (info->max_binding_bytes > (1ull << 31)) {
        fprintf(stderr, "test_vulkan: binding limit %llu too large to test cheaply; skipped\n",
                (unsigned long long)info->max_binding_bytes);
    } else {
        loom_state *st;
        loom_graph *g;
        ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
        ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
        int64_t shape[1] = {(int64_t)(info->max_binding_bytes / 4) + 1};
        loom_tensor x = loom_input(g, "big", LOOM_F32, 1, shape);
        loom_output(g, loom_relu(g, x), "y");
        loom_program *p = NULL;
        ck_assert_int_eq(loom_compile(g, dev, st, NULL, &p), LOOM_E_UNSUPPORTED);
        ck_assert_ptr_null(p);
        char limit[32];
        snprintf(limit, sizeof limit, "%llu", (unsigned long long)info->max_binding_bytes);
        const char *msg = loom_last_error(ctx);
        ck_assert_msg(strstr(msg, limit) && strstr(msg, "\"big\"") && strstr(msg, "vulkan:0"),
                      "the message names neither the tensor, the limit nor the device: %s", msg);
        loom_graph_destroy(g);
        loom_state_destroy(st);
    }
    no_validation_errors(ctx);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_suballocation)
{
    loom_ctx *ctx = tu_ctx();
    if (!have_vulkan(ctx)) {
        loom_ctx_destroy(ctx);
        return;
    }
    loom_device *dev = tu_open(ctx, "vulkan:0");
    const loom_backend_ops *ops = ((struct loom_device *)dev)->ops;
    vk_dev *vd = ((struct loom_device *)dev)->bdev;
    uint32_t before = vd->nallocs;
    enum { NBUF = 600 };
    void *bufs[NBUF];
    /* Many small tensors share one block; offsets are aligned, ranges
     * disjoint, and contents independent. */
    for (int i = 0; i < NBUF; i++) {
        ck_assert_int_eq(ops->buffer_alloc(vd, (uint64_t)(4 + (i % 37) * 12), LOOM_LIFE_STATE, &bufs[i]), LOOM_OK);
        vk_buf *b = bufs[i];
        ck_assert_uint_eq(b->offset % vd->align, 0);
        uint32_t v[40];
        for (int k = 0; k < 40; k++)
            v[k] = (uint32_t)(i * 1000 + k);
        ck_assert_int_eq(ops->buffer_write(vd, b, 0, v, b->size < sizeof v ? b->size : sizeof v), LOOM_OK);
    }
    ck_assert_uint_le(vd->nallocs - before, 1);
    for (int i = 0; i < NBUF; i += 2)
        ops->buffer_free(vd, bufs[i]);
    for (int i = 1; i < NBUF; i += 2) {
        vk_buf *b = bufs[i];
        uint32_t v[40];
        ck_assert_int_eq(ops->buffer_read(vd, b, 0, v, b->size < sizeof v ? b->size : sizeof v), LOOM_OK);
        ck_assert_uint_eq(v[0], (uint32_t)(i * 1000));
        for (int j = i + 2; j < NBUF && j < i + 8; j += 2) {
            vk_buf *o = bufs[j];
            ck_assert(o->block != b->block || o->offset >= b->offset + b->size || b->offset >= o->offset + o->size);
        }
        ops->buffer_free(vd, b);
    }
    /* Freed ranges merge back into one. */
    ck_assert_int_eq(vd->blocks[LOOM_LIFE_STATE]->sa.nfree, 1);
    ck_assert_uint_eq(vd->blocks[LOOM_LIFE_STATE]->sa.used, 0);
    /* More than the device can allocate at once: LOOM_E_OOM naming sizes. */
    void *huge = NULL;
    uint64_t too_big = vd->lim->max_alloc_bytes + (1ull << 20);
    ck_assert_int_eq(ops->buffer_alloc(vd, too_big, LOOM_LIFE_ARENA, &huge), LOOM_E_OOM);
    ck_assert_ptr_null(huge);
    char sz[32];
    snprintf(sz, sizeof sz, "%llu", (unsigned long long)too_big);
    ck_assert_msg(strstr(loom_last_error(ctx), sz) && strstr(loom_last_error(ctx), "largest allocation"), "%s",
                  loom_last_error(ctx));
    no_validation_errors(ctx);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* Memory the host cannot map, as on a discrete GPU: state writes and
 * inputs wait in the upload buffer for the next submit, reads go through
 * the staging buffer, and a program's updates reach the state. */
START_TEST(test_staged_memory)
{
    loom_ctx *ctx = tu_ctx();
    if (!have_vulkan(ctx)) {
        loom_ctx_destroy(ctx);
        return;
    }
    loom_device *dev = tu_open(ctx, "vulkan:0");
    vk_dev *vd = ((struct loom_device *)dev)->bdev;
    ck_assert_ptr_null(vd->blocks[LOOM_LIFE_STATE]);
    ck_assert_ptr_null(vd->blocks[LOOM_LIFE_ARENA]);
    vd->mapped[LOOM_LIFE_STATE] = vd->mapped[LOOM_LIFE_ARENA] = 0;
    loom_state *st;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    enum { N = 3000 };
    static float w[N], x[N], got[N], wx[N];
    tu_fill(w, N, 9, -1, 1);
    int64_t shape[1] = {N};
    ck_assert_int_eq(loom_state_write(st, "w", LOOM_F32, 1, shape, w), LOOM_OK);
    ck_assert_ptr_null(vd->blocks[LOOM_LIFE_STATE]->map);
    ck_assert_int_gt(vd->ncopies, 0); /* queued, not yet on the device */
    ck_assert_int_eq(loom_state_read(st, "w", got, sizeof got), LOOM_OK);
    ck_assert_int_eq(vd->ncopies, 0);
    ck_assert_mem_eq(got, w, sizeof w);
    /* loss = sum((w x)^2); SGD: w -= lr 2 x^2 w. */
    loom_graph *g;
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    loom_tensor pw = loom_param(g, "w", LOOM_F32, 1, shape, 1);
    loom_tensor tx = loom_input(g, "x", LOOM_F32, 1, shape);
    loom_tensor m = loom_mul(g, pw, tx);
    loom_tensor loss = loom_sum_all(g, loom_square(g, m));
    loom_output(g, loss, "loss");
    loom_output(g, m, "wx");
    ck_assert_int_eq(loom_backward(g, loss, NULL, 0), LOOM_OK);
    loom_optimizer opt = loom_optimizer_default(LOOM_OPT_SGD);
    opt.lr = 0.125f;
    ck_assert_int_eq(loom_optimize(g, &opt), LOOM_OK);
    loom_program *p = NULL;
    ck_assert_msg(loom_compile(g, dev, st, NULL, &p) == LOOM_OK, "%s", loom_last_error(ctx));
    ck_assert_ptr_null(vd->blocks[LOOM_LIFE_ARENA]->map);
    for (int step = 0; step < 2; step++) {
        tu_fill(x, N, 20u + (uint32_t)step, -1, 1);
        ck_assert_int_eq(loom_program_set_input(p, "x", x, sizeof x), LOOM_OK);
        ck_assert_int_gt(vd->ncopies, 0);
        ck_assert_int_eq(loom_program_run(p), LOOM_OK);
        ck_assert_int_eq(vd->ncopies, 0);
        ck_assert_int_eq(loom_program_read(p, "wx", wx, sizeof wx), LOOM_OK);
        double ref = 0;
        for (int i = 0; i < N; i++) {
            ck_assert_msg(wx[i] == w[i] * x[i], "step %d: wx[%d] = %g, expected %g", step, i, (double)wx[i],
                          (double)(w[i] * x[i]));
            ref += (double)wx[i] * wx[i];
            w[i] -= 0.125f * (2.0f * wx[i] * x[i]);
        }
        float lv;
        ck_assert_int_eq(loom_program_read(p, "loss", &lv, sizeof lv), LOOM_OK);
        ck_assert_msg(fabs(lv - ref) <= 1e-4 * ref, "step %d: loss %g, expected %g", step, (double)lv, ref);
        ck_assert_int_eq(loom_state_read(st, "w", got, sizeof got), LOOM_OK);
        tu_assert_close(got, w, N, 1e-6, 1e-5);
    }
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    no_validation_errors(ctx);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- host allocation failures -------------------------------------------- */

/* An allocator that fails the Nth allocation after it is armed, and keeps
 * the bytes outstanding so a leak on any error path shows. */
typedef struct failing_alloc {
    long count, fail_at;   /* fail_at 0: never */
    long long outstanding;
} failing_alloc;

static void *failing(void *user, void *ptr, size_t osize, size_t nsize)
{
    failing_alloc *f = user;
    if (nsize == 0) {
        if (ptr)
            f->outstanding -= (long long)osize;
        free(ptr);
        return NULL;
    }
    if (f->fail_at && ++f->count == f->fail_at)
        return NULL;
    void *q = realloc(ptr, nsize);
    if (q)
        f->outstanding += (long long)nsize - (ptr ? (long long)osize : 0);
    return q;
}

/* One training step of a small MLP from scratch; the first failing call's
 * status, LOOM_OK if none failed. */
static loom_status oom_round(loom_ctx *ctx, loom_device *dev)
{
    loom_state *st = NULL;
    loom_graph *g = NULL;
    loom_program *p = NULL;
    loom_status s = loom_state_create(dev, &st);
    if (s == LOOM_OK)
        s = loom_graph_create(ctx, &g);
    if (s == LOOM_OK) {
        int64_t xs[2] = {8, 12}, ws[2] = {12, 4}, bs[1] = {4}, ls[1] = {8};
        loom_tensor x = loom_input(g, "x", LOOM_F32, 2, xs), lab = loom_input(g, "labels", LOOM_I32, 1, ls);
        loom_tensor z = loom_add(g, loom_matmul(g, x, loom_param(g, "w", LOOM_F32, 2, ws, 1), 0, 0),
                                 loom_param(g, "b", LOOM_F32, 1, bs, 1));
        loom_tensor loss = loom_sparse_cross_entropy(g, loom_relu(g, z), lab);
        loom_output(g, loss, "loss");
        loom_backward(g, loss, NULL, 0);
        loom_optimizer opt = loom_optimizer_default(LOOM_OPT_ADAM);
        opt.clip_norm = 1.0f;
        loom_optimize(g, &opt);
        s = loom_compile(g, dev, st, NULL, &p);
    }
    float xv[96] = {0};
    int32_t lv[8] = {0};
    float loss = -1;
    if (s == LOOM_OK)
        s = loom_program_set_input(p, "x", xv, sizeof xv);
    if (s == LOOM_OK)
        s = loom_program_set_input(p, "labels", lv, sizeof lv);
    if (s == LOOM_OK)
        s = loom_program_run(p);
    if (s == LOOM_OK)
        s = loom_program_read(p, "loss", &loss, sizeof loss);
    if (s == LOOM_OK)
        ck_assert_msg(fabsf(loss - logf(4.0f)) < 1e-5f, "loss %g, expected log 4", (double)loss);
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    return s;
}

START_TEST(test_host_oom)
{
    loom_ctx *probe = tu_ctx();
    int ok = have_vulkan(probe);
    loom_ctx_destroy(probe);
    if (!ok)
        return;
    static failing_alloc fa;
    memset(&fa, 0, sizeof fa);
    loom_ctx_opts o;
    loom_ctx_opts_default(&o);
    o.alloc = failing;
    o.alloc_user = &fa;
    o.log = keep_log;
    static logbuf log;
    o.log_user = &log;
    o.log_level = LOOM_LOG_ERROR;
    loom_ctx *ctx = NULL;
    ck_assert_int_eq(loom_ctx_create(&o, &ctx), LOOM_OK);
    loom_device *dev = tu_open(ctx, "vulkan:0");
    /* A first round that succeeds creates what the device keeps between
     * programs (memory blocks, pipelines): that is not a leak. */
    ck_assert_int_eq(oom_round(ctx, dev), LOOM_OK);
    long long base = fa.outstanding;
    int failures = 0;
    for (long n = 1; n < 5000; n++) {
        fa.count = 0;
        fa.fail_at = n;
        loom_status s = oom_round(ctx, dev);
        fa.fail_at = 0;
        ck_assert_msg(fa.outstanding == base, "allocation %ld failed: %lld bytes leaked (status %s: %s)", n,
                      fa.outstanding - base, loom_status_str(s), loom_last_error(ctx));
        if (fa.count < n) {
            ck_assert_msg(s == LOOM_OK, "no allocation failed, yet: %s", loom_last_error(ctx));
            break;
        }
        ck_assert_msg(s == LOOM_E_OOM, "allocation %ld failed and the status is %s: %s", n, loom_status_str(s),
                      loom_last_error(ctx));
        failures++;
    }
    ck_assert_int_gt(failures, 10);
    no_validation_errors(ctx);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- a lost device ----------------------------------------------------------- */

/* VK_ERROR_DEVICE_LOST becomes LOOM_E_DEVICE naming the call; the device
 * then refuses work with a clear message, and the context still runs
 * graphs on its other devices. */
START_TEST(test_device_lost)
{
    loom_ctx *ctx = tu_ctx();
    if (!have_vulkan(ctx)) {
        loom_ctx_destroy(ctx);
        return;
    }
    loom_device *dev = tu_open(ctx, "vulkan:0");
    vk_dev *vd = ((struct loom_device *)dev)->bdev;
    loom_state *st;
    loom_graph *g;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t s1[1] = {4};
    loom_tensor x = loom_input(g, "x", LOOM_F32, 1, s1);
    loom_output(g, loom_relu(g, x), "y");
    loom_program *p = NULL;
    ck_assert_int_eq(loom_compile(g, dev, st, NULL, &p), LOOM_OK);
    ck_assert_int_eq(vk_fail(vd, VK_ERROR_DEVICE_LOST, "vkQueueSubmit", "of a test"), LOOM_E_DEVICE);
    ck_assert_msg(strstr(loom_last_error(ctx), "vkQueueSubmit") && strstr(loom_last_error(ctx), "VK_ERROR_DEVICE_LOST"),
                  "%s", loom_last_error(ctx));
    ck_assert_int_eq(loom_program_run(p), LOOM_E_DEVICE);
    ck_assert_msg(strstr(loom_last_error(ctx), "lost") && strstr(loom_last_error(ctx), "program"), "%s",
                  loom_last_error(ctx));
    float v[4] = {1, -1, 2, -2};
    ck_assert_int_eq(loom_program_set_input(p, "x", v, sizeof v), LOOM_E_DEVICE);
    loom_program *p2 = NULL;
    ck_assert_int_eq(loom_compile(g, dev, st, NULL, &p2), LOOM_E_DEVICE);
    ck_assert_int_eq(vk_fail(vd, VK_ERROR_OUT_OF_DEVICE_MEMORY, "vkAllocateMemory", "of a test"), LOOM_E_OOM);
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
    /* The context goes on: a graph on the CPU, and a fresh open of the
     * Vulkan device. */
    loom_device *cpu = tu_open(ctx, "cpu");
    ck_assert_int_eq(loom_state_create(cpu, &st), LOOM_OK);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    x = loom_input(g, "x", LOOM_F32, 1, s1);
    loom_output(g, loom_relu(g, x), "y");
    ck_assert_int_eq(loom_compile(g, cpu, st, NULL, &p), LOOM_OK);
    ck_assert_int_eq(loom_program_set_input(p, "x", v, sizeof v), LOOM_OK);
    ck_assert_int_eq(loom_program_run(p), LOOM_OK);
    float y[4];
    ck_assert_int_eq(loom_program_read(p, "y", y, sizeof y), LOOM_OK);
    ck_assert(y[0] == 1 && y[1] == 0 && y[2] == 2 && y[3] == 0);
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(cpu);
    dev = tu_open(ctx, "vulkan:0");
    loom_device_close(dev);
    no_validation_errors(ctx);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- custom GLSL kernels ----------------------------------------------------- */

static const char *custom_glsl =
    "#version 450\n"
    "layout(local_size_x = 64) in;\n"
    "layout(set = 0, binding = 0) readonly buffer A { float a[]; };\n"
    "layout(set = 0, binding = 1) readonly buffer B { float b[]; };\n"
    "layout(set = 0, binding = 2) writeonly buffer Y { float y[]; };\n"
    "layout(push_constant) uniform Counts { uint n[9]; } pc;\n"
    "void main() {\n"
    "    uint i = gl_GlobalInvocationID.x;\n"
    "    if (i < pc.n[0])\n"
    "        y[i] = a[i] * b[i % pc.n[2]] + float(pc.n[1]);\n"
    "}\n";

/* relu(x) -> custom(., w) -> scale: the kernel's result in a graph. */
static loom_status custom_graph(loom_ctx *ctx, loom_device *dev, const char *glsl, float *out)
{
    enum { N = 1000, NB = 7 };
    loom_state *st;
    loom_graph *g;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t xs[1] = {N}, ws[1] = {NB};
    float x[N], w[NB];
    tu_fill(x, N, 4, -1, 1);
    tu_fill(w, NB, 5, -1, 1);
    loom_tensor in[2] = {loom_relu(g, loom_constant(g, "x", LOOM_F32, 1, xs, x)),
                         loom_constant(g, "w", LOOM_F32, 1, ws, w)};
    uint32_t groups[3] = {(N + 63) / 64, 1, 1};
    loom_tensor c = loom_custom_op(g, "axpb", glsl, 2, in, LOOM_F32, 1, xs, groups);
    ck_assert_msg(c.id != 0, "%s", loom_graph_error(g));
    loom_output(g, loom_scale(g, c, 0.5f), "y");
    loom_program *p = NULL;
    loom_status s = loom_compile(g, dev, st, NULL, &p);
    if (s == LOOM_OK) {
        ck_assert_int_eq(loom_program_run(p), LOOM_OK);
        ck_assert_int_eq(loom_program_read(p, "y", out, N * 4), LOOM_OK);
        for (int i = 0; i < N; i++) {
            float ref = 0.5f * ((x[i] > 0 ? x[i] : 0) * w[i % NB] + (float)N);
            ck_assert_msg(fabsf(out[i] - ref) <= 1e-5f * fabsf(ref), "y[%d] = %g, expected %g", i, (double)out[i],
                          (double)ref);
        }
    }
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    return s;
}

START_TEST(test_custom_op)
{
    loom_ctx *ctx = tu_ctx();
    if (!have_vulkan(ctx)) {
        loom_ctx_destroy(ctx);
        return;
    }
    static float out[1000];
    loom_device *dev = tu_open(ctx, "vulkan:0");
    vk_dev *vd = ((struct loom_device *)dev)->bdev;
    ck_assert_msg(custom_graph(ctx, dev, custom_glsl, out) == LOOM_OK, "%s", loom_last_error(ctx));
    ck_assert_int_eq(vd->ncustom, 1);
    /* The same source again: compiled once per device. */
    ck_assert_int_eq(custom_graph(ctx, dev, custom_glsl, out), LOOM_OK);
    ck_assert_int_eq(vd->ncustom, 1);
    /* A GLSL error: the compile fails with the compiler's words. */
    const char *broken = "#version 450\nlayout(local_size_x = 1) in;\nvoid main() { undeclared_thing = 1; }\n";
    ck_assert_int_eq(custom_graph(ctx, dev, broken, out), LOOM_E_INVALID);
    const char *msg = loom_last_error(ctx);
    ck_assert_msg(strstr(msg, "axpb") && strstr(msg, "undeclared_thing") && strstr(msg, "error"), "%s", msg);
    ck_assert_int_eq(vd->ncustom, 1);
    no_validation_errors(ctx);
    loom_device_close(dev);
    /* Backends without custom kernels refuse the node. */
    loom_device *cpu = tu_open(ctx, "cpu");
    ck_assert_int_eq(custom_graph(ctx, cpu, custom_glsl, out), LOOM_E_UNSUPPORTED);
    ck_assert_msg(strstr(loom_last_error(ctx), "custom"), "%s", loom_last_error(ctx));
    loom_device_close(cpu);
    /* Bad arguments are sticky graph errors. */
    loom_graph *g;
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t s1[1] = {4};
    uint32_t zero[3] = {0, 1, 1};
    ck_assert_int_eq(loom_custom_op(g, "c", custom_glsl, 0, NULL, LOOM_F32, 1, s1, zero).id, 0);
    ck_assert_int_eq(loom_graph_status(g), LOOM_E_INVALID);
    loom_graph_destroy(g);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- timestamps ----------------------------------------------------------- */

START_TEST(test_timestamps)
{
    loom_ctx *ctx = tu_ctx();
    if (!have_vulkan(ctx)) {
        loom_ctx_destroy(ctx);
        return;
    }
    loom_device *dev = tu_open(ctx, "vulkan:0");
    loom_state *st;
    loom_graph *g;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t s[2] = {64, 64};
    loom_tensor a = loom_input(g, "a", LOOM_F32, 2, s);
    loom_tensor y = loom_softmax(g, loom_relu(g, loom_matmul(g, a, a, 0, 1)));
    loom_output(g, y, "y");
    loom_compile_opts o = {.profile = 1};
    loom_program *p = NULL;
    ck_assert_int_eq(loom_compile(g, dev, st, &o, &p), LOOM_OK);
    static float in[64 * 64];
    tu_fill(in, 64 * 64, 3, -1, 1);
    ck_assert_int_eq(loom_program_set_input(p, "a", in, sizeof in), LOOM_OK);
    const loom_backend_ops *ops = p->dev->ops;
    double t0[3], t1[3];
    ck_assert_int_eq(ops->timestamps(p->bprog, t0, t1, p->nexec), LOOM_E_STATE); /* before any run */
    double before = loom_now_ns();
    ck_assert_int_eq(loom_program_run(p), LOOM_OK);
    double after = loom_now_ns();
    ck_assert_int_eq(p->nexec, 3);
    loom_status ts = ops->timestamps(p->bprog, t0, t1, 3);
    if (ts == LOOM_E_UNSUPPORTED) {
        fprintf(stderr, "test_vulkan: the compute queue has no timestamps; skipped\n");
    } else {
        ck_assert_int_eq(ts, LOOM_OK);
        /* On the host's monotonic clock: inside the run, in order. A small
         * slack covers the calibration's own error. */
        double slack = 2e6;
        for (int i = 0; i < 3; i++) {
            ck_assert_msg(t0[i] <= t1[i], "node %d ends before it starts", i);
            ck_assert_msg(t0[i] >= before - slack && t1[i] <= after + slack,
                          "node %d at [%.0f, %.0f] ns, outside the run [%.0f, %.0f]", i, t0[i], t1[i], before, after);
            if (i)
                ck_assert_msg(t0[i] >= t1[i - 1] - 1, "node %d starts before node %d ends", i, i - 1);
        }
    }
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    no_validation_errors(ctx);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- the pipeline cache ------------------------------------------------------- */

/* A small graph compiled and run on vulkan:0 in a fresh context over the
 * cache folder `dir`; checks the result and returns the context's log. */
static void cache_round(const char *dir, logbuf *log)
{
    memset(log, 0, sizeof *log);
    loom_ctx *ctx = ctx_logging(dir, log);
    loom_device *dev = tu_open(ctx, "vulkan:0");
    loom_state *st;
    loom_graph *g;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t s[1] = {5};
    loom_tensor x = loom_input(g, "x", LOOM_F32, 1, s);
    loom_output(g, loom_scale(g, loom_exp(g, x), 2.0f), "y");
    loom_program *p = NULL;
    ck_assert_msg(loom_compile(g, dev, st, NULL, &p) == LOOM_OK, "%s", loom_last_error(ctx));
    float in[5] = {0, 1, -1, 2, 0.5f}, out[5];
    ck_assert_int_eq(loom_program_set_input(p, "x", in, sizeof in), LOOM_OK);
    ck_assert_int_eq(loom_program_run(p), LOOM_OK);
    ck_assert_int_eq(loom_program_read(p, "y", out, sizeof out), LOOM_OK);
    for (int i = 0; i < 5; i++)
        ck_assert_msg(fabsf(out[i] - 2.0f * expf(in[i])) <= 1e-5f * 2.0f * expf(in[i]), "y[%d] = %g", i,
                      (double)out[i]);
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    no_validation_errors(ctx);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}

static void cache_path(const char *dir, char *path, size_t n)
{
    loom_ctx *ctx = tu_ctx();
    loom_device_info info;
    for (int i = 0; i < loom_device_count(ctx); i++)
        if (loom_device_get_info(ctx, i, &info) == LOOM_OK && !strcmp(info.spec, "vulkan:0"))
            snprintf(path, n, "%s/vulkan-%s.pipelines", dir, info.uuid);
    loom_ctx_destroy(ctx);
}

static long file_size(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

/* Rewrites the file with `edit` applied to its bytes. */
static void edit_file(const char *path, void (*edit)(unsigned char *buf, long *n))
{
    long n = file_size(path);
    ck_assert_int_gt(n, 0);
    unsigned char *buf = malloc((size_t)n + 64);
    FILE *f = fopen(path, "rb");
    ck_assert_int_eq((long)fread(buf, 1, (size_t)n, f), n);
    fclose(f);
    edit(buf, &n);
    f = fopen(path, "wb");
    ck_assert_int_eq((long)fwrite(buf, 1, (size_t)n, f), n);
    fclose(f);
    free(buf);
}

static void flip_data(unsigned char *b, long *n) { b[*n - 1] ^= 0x5a; }
static void cut_header(unsigned char *b, long *n) { (void)b; *n = 40; }
static void cut_data(unsigned char *b, long *n) { (void)b; *n -= 8; }
static void foreign_uuid(unsigned char *b, long *n) { (void)n; b[24] ^= 0xff; }
static void foreign_device(unsigned char *b, long *n) { (void)n; b[12] ^= 0x01; }
static void garbage(unsigned char *b, long *n)
{
    for (long i = 0; i < *n; i++)
        b[i] = (unsigned char)(i * 31 + 7);
}

START_TEST(test_pipeline_cache)
{
    loom_ctx *probe = tu_ctx();
    int ok = have_vulkan(probe);
    loom_ctx_destroy(probe);
    if (!ok)
        return;
    char dir[] = "/tmp/loom-test-pcache-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char sub[128], path[512];
    /* A folder that does not exist yet: it is created. */
    snprintf(sub, sizeof sub, "%s/nested/cache", dir);
    cache_path(sub, path, sizeof path);
    static logbuf log;

    cache_round(sub, &log);
    ck_assert_msg(strstr(log.text, "pipeline cache saved"), "no save logged:\n%s", log.text);
    ck_assert_int_ge(file_size(path), 56 + 32); /* loom header + the driver's own */

    cache_round(sub, &log);
    ck_assert_msg(strstr(log.text, "pipeline cache loaded from"), "the second context did not load the cache:\n%s",
                  log.text);

    static const struct {
        void (*edit)(unsigned char *, long *);
        const char *why;
    } bad[] = {
        {flip_data, "checksum mismatch"},
        {cut_header, "truncated header"},
        {cut_data, "truncated or padded"},
        {foreign_uuid, "another driver"},
        {foreign_device, "another device"},
        {garbage, "not a loom pipeline cache"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        edit_file(path, bad[i].edit);
        cache_round(sub, &log);
        ck_assert_msg(strstr(log.text, "ignored") && strstr(log.text, bad[i].why),
                      "case %zu: expected \"%s\" in the log:\n%s", i, bad[i].why, log.text);
        ck_assert_msg(!strstr(log.text, "pipeline cache loaded"), "case %zu: a bad cache was loaded", i);
        /* The file is written afresh and loads again. */
        cache_round(sub, &log);
        ck_assert_msg(strstr(log.text, "pipeline cache loaded from"), "case %zu: not rewritten:\n%s", i, log.text);
    }
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* The GEMM read path: measured once, kept as JSON, ignored when foreign or
 * malformed. */
START_TEST(test_tuning_cache)
{
    loom_ctx *probe = tu_ctx();
    int ok = have_vulkan(probe);
    loom_ctx_destroy(probe);
    if (!ok)
        return;
    char dir[] = "/tmp/loom-test-tune-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char pcache[512], path[600];
    cache_path(dir, pcache, sizeof pcache);
    snprintf(path, sizeof path, "%.*s-tune.json", (int)(strlen(pcache) - strlen(".pipelines")), pcache);
    static logbuf log;
    cache_round(dir, &log);
    ck_assert_msg(strstr(log.text, "through texel buffers") && strstr(log.text, "ms through storage buffers"),
                  "no measurement logged:\n%s", log.text);
    ck_assert_int_gt(file_size(path), 0);
    cache_round(dir, &log);
    ck_assert_msg(strstr(log.text, "GEMM read path") && !strstr(log.text, "ms through storage"),
                  "the second context measured again:\n%s", log.text);
    static const char *bad[][2] = {
        {"{\"format\": 1, \"gemm_read\": ", "not JSON"},
        {"{\"format\": 1, \"device_uuid\": \"00\", \"gemm_read\": \"texel\"}", "another device"},
        {"[1, 2, 3]", "another format"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs(bad[i][0], f);
        fclose(f);
        cache_round(dir, &log);
        ck_assert_msg(strstr(log.text, "tuning cache") && strstr(log.text, bad[i][1]) &&
                          strstr(log.text, "ms through storage"),
                      "case %zu: expected \"%s\" and a new measurement:\n%s", i, bad[i][1], log.text);
    }

    /* The public tuning entry points. */
    memset(&log, 0, sizeof log);
    loom_ctx *ctx = ctx_logging(dir, &log);
    loom_device *dev = tu_open(ctx, "vulkan:0");
    loom_tune_opts o;
    loom_tune_opts_default(&o);
    o.size = 64;
    loom_tune_report r;
    ck_assert_msg(loom_device_tune(dev, &o, &r) == LOOM_OK, "%s", loom_last_error(ctx));
    ck_assert_int_eq(r.measured, 2);
    ck_assert_int_eq(r.rejected, 0);
    ck_assert(r.best_gflops > 0 && r.best_gflops >= r.baseline_gflops);
    ck_assert_str_eq(r.path, path);
    char text[256];
    ck_assert_int_eq(loom_device_get_tuning(dev, text, sizeof text), LOOM_OK);
    ck_assert_msg(strstr(text, "\"gemm_read\""), "%s", text);
    ck_assert_int_eq(loom_device_set_tuning(dev, "{\"gemm_read\": \"sideways\"}"), LOOM_E_INVALID);
    ck_assert_msg(strstr(loom_last_error(ctx), "gemm_read"), "%s", loom_last_error(ctx));
    ck_assert_int_eq(loom_device_get_tuning(dev, text, sizeof text), LOOM_OK);
    ck_assert_int_eq(loom_device_get_tuning(dev, text, 8), LOOM_E_INVALID);
    for (int k = 0; k < 2; k++) {
        const char *set = k ? "{\"gemm_read\": \"texel\"}" : "{\"gemm_read\": \"storage\"}";
        ck_assert_msg(loom_device_set_tuning(dev, set) == LOOM_OK, "%s", loom_last_error(ctx));
        ck_assert_int_eq(loom_device_get_tuning(dev, text, sizeof text), LOOM_OK);
        ck_assert_msg(strstr(text, k ? "\"texel\"" : "\"storage\""), "%s after %s", text, set);
    }
    ck_assert_int_eq(loom_device_set_tuning(dev, NULL), LOOM_OK); /* the stored choice */
    no_validation_errors(ctx);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vulkan");
    TCase *tc = tcase_create("gemm");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_gemm_transposes, 0, (int)(sizeof gemm_shapes / sizeof gemm_shapes[0]));
    tcase_add_test(tc, test_gemm_bias_fusion);
    suite_add_tcase(s, tc);
    tc = tcase_create("training");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_train_adamw_clip_ema);
    tcase_add_test(tc, test_train_sgd_nesterov);
    tcase_add_test(tc, test_train_sgd_plain);
    suite_add_tcase(s, tc);
    tc = tcase_create("memory");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_binding_limit);
    tcase_add_test(tc, test_grid_rows_in_place);
    tcase_add_test(tc, test_suballocation);
    tcase_add_test(tc, test_staged_memory);
    tcase_add_test(tc, test_host_oom);
    tcase_add_test(tc, test_device_lost);
    suite_add_tcase(s, tc);
    tc = tcase_create("custom");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_custom_op);
    suite_add_tcase(s, tc);
    tc = tcase_create("profiling");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_timestamps);
    suite_add_tcase(s, tc);
    tc = tcase_create("pipeline_cache");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_pipeline_cache);
    tcase_add_test(tc, test_tuning_cache);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
