/* The OpenCL backend on opencl:0: CLBlast GEMM against the CPU backend,
 * optimizer updates and dropout over several steps, profiling timestamps,
 * memory limits, build failures with their log, the program binary cache,
 * and GEMM tuning (stored, reloaded, applied, refused when impossible).
 * Each test skips, saying so, when no OpenCL device can run graphs. */
#include "testutil.h"

#include "backends/opencl/cl_internal.h"
#include "core/device_registry.h"
#include "core/program.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPEC "opencl:0"

static int have_opencl(loom_ctx *ctx)
{
    for (int i = 0; i < loom_device_count(ctx); i++) {
        loom_device_info d;
        if (loom_device_get_info(ctx, i, &d) == LOOM_OK && d.can_run && !strcmp(d.spec, SPEC))
            return 1;
    }
    fprintf(stderr, "test_opencl: no %s that can run graphs; skipped\n", SPEC);
    return 0;
}

/* A context with its own cache directory (and a log we can read). */
typedef struct logbuf {
    char text[16384];
    size_t n;
} logbuf;

static void capture(void *user, loom_log_level level, const char *msg)
{
    logbuf *b = user;
    (void)level;
    int k = snprintf(b->text + b->n, sizeof b->text - b->n, "%s\n", msg);
    if (k > 0 && b->n + (size_t)k < sizeof b->text)
        b->n += (size_t)k;
}

static loom_ctx *ctx_in(const char *cache_dir, logbuf *log)
{
    loom_ctx_opts o;
    loom_ctx_opts_default(&o);
    o.cache_dir = cache_dir;
    if (log) {
        o.log = capture;
        o.log_user = log;
        o.log_level = LOOM_LOG_DEBUG;
    } else {
        o.log_level = LOOM_LOG_ERROR;
    }
    loom_ctx *ctx = NULL;
    ck_assert_int_eq(loom_ctx_create(&o, &ctx), LOOM_OK);
    return ctx;
}

static void fresh_dir(char *buf, size_t n, const char *tag)
{
    const char *base = getenv("LOOM_CACHE_DIR");
    snprintf(buf, n, "%s/test_opencl_%s_XXXXXX", base && *base ? base : "/tmp", tag);
    mkdir(base && *base ? base : "/tmp", 0755);
    ck_assert_ptr_nonnull(mkdtemp(buf));
}

static cl_dev *cl_of(loom_device *dev)
{
    return (cl_dev *)dev->bdev;
}

/* ---- GEMM ------------------------------------------------------------------ */

/* C = op(A) op(B) on dev; a dummy input placed first moves A, B and C to
 * non-zero offsets of the arena. */
static float *matmul_on(loom_ctx *ctx, const char *spec, int m, int n, int k, int ta, int tb, const float *a,
                        const float *b)
{
    loom_device *dev = tu_open(ctx, spec);
    loom_state *st;
    loom_graph *g;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t sd[1] = {3}, sa[2] = {ta ? k : m, ta ? m : k}, sb[2] = {tb ? n : k, tb ? k : n};
    loom_tensor pad = loom_input(g, "pad", LOOM_F32, 1, sd);
    loom_tensor ta_ = loom_input(g, "a", LOOM_F32, 2, sa), tb_ = loom_input(g, "b", LOOM_F32, 2, sb);
    loom_output(g, loom_scale(g, pad, 2.0f), "pad2");
    loom_output(g, loom_matmul(g, ta_, tb_, ta, tb), "c");
    loom_program *p;
    ck_assert_msg(loom_compile(g, dev, st, NULL, &p) == LOOM_OK, "%s", loom_last_error(ctx));
    float padv[3] = {1, 2, 3};
    ck_assert_int_eq(loom_program_set_input(p, "pad", padv, sizeof padv), LOOM_OK);
    ck_assert_int_eq(loom_program_set_input(p, "a", a, (size_t)m * k * 4), LOOM_OK);
    ck_assert_int_eq(loom_program_set_input(p, "b", b, (size_t)k * n * 4), LOOM_OK);
    ck_assert_msg(loom_program_run(p) == LOOM_OK, "%s", loom_last_error(ctx));
    float *c = malloc((size_t)m * n * 4);
    ck_assert_int_eq(loom_program_read(p, "c", c, (size_t)m * n * 4), LOOM_OK);
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
    return c;
}

static void gemm_vs_cpu(loom_ctx *ctx, int m, int n, int k, int ta, int tb)
{
    float *a = malloc((size_t)m * k * 4), *b = malloc((size_t)k * n * 4);
    tu_fill(a, (size_t)m * k, (uint32_t)(m * 31 + k), -1, 1);
    tu_fill(b, (size_t)k * n, (uint32_t)(n * 17 + k), -1, 1);
    float *ref = matmul_on(ctx, "cpu", m, n, k, ta, tb, a, b);
    float *got = matmul_on(ctx, SPEC, m, n, k, ta, tb, a, b);
    double e = tu_err(got, ref, (size_t)m * n, 1e-5 * sqrt((double)k), 1e-4);
    ck_assert_msg(e <= 1.0, "gemm %dx%dx%d ta=%d tb=%d differs from cpu: normalized error %g", m, n, k, ta, tb, e);
    free(a), free(b), free(ref), free(got);
}

START_TEST(gemm_transposes_odd_sizes_offsets)
{
    loom_ctx *ctx = tu_ctx();
    if (!have_opencl(ctx)) {
        loom_ctx_destroy(ctx);
        return;
    }
    static const int sizes[][3] = {{1, 1, 1}, {7, 13, 5}, {33, 65, 17}, {130, 67, 259}, {1, 300, 77}};
    for (int t = 0; t < 4; t++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            gemm_vs_cpu(ctx, sizes[s][0], sizes[s][1], sizes[s][2], t & 1, t >> 1);
    /* Large enough for CLBlast's indirect (padded, tiled) path. */
    gemm_vs_cpu(ctx, 1001, 997, 903, 0, 0);
    gemm_vs_cpu(ctx, 997, 1001, 903, 1, 1);
    loom_ctx_destroy(ctx);
}
END_TEST

/* The backend's own check, through raw buffers with offsets 5, 7, 3. */
START_TEST(gemm_verify_with_offsets)
{
    loom_ctx *ctx = tu_ctx();
    if (!have_opencl(ctx)) {
        loom_ctx_destroy(ctx);
        return;
    }
    loom_device *dev = tu_open(ctx, SPEC);
    for (int t = 0; t < 4; t++)
        ck_assert_msg(loom_cl_gemm_verify(cl_of(dev), NULL, 31, 29, 37, t & 1, t >> 1, "test") == LOOM_OK, "%s",
                      loom_last_error(ctx));
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- fused GEMMs ---------------------------------------------------------------- */

/* The seed's training step (784-64-64-10, relu, softmax, Adam, batch 256)
 * as loom train compiles it, planned on spec. */
static loom_plan_report seed_step_plan(loom_ctx *ctx, const char *spec)
{
    loom_device *dev = tu_open(ctx, spec);
    loom_sequential *m = NULL;
    loom_model_config mc = loom_model_config_default();
    mc.batch = 256;
    ck_assert_int_eq(loom_sequential_create(ctx, 784, &m), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_dense(m, 64, LOOM_ACT_RELU, LOOM_INIT_GLOROT_UNIFORM), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_dense(m, 64, LOOM_ACT_RELU, LOOM_INIT_GLOROT_UNIFORM), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_dense(m, 10, LOOM_ACT_SOFTMAX, LOOM_INIT_GLOROT_UNIFORM), LOOM_OK);
    ck_assert_msg(loom_sequential_compile(m, dev, &mc) == LOOM_OK, "%s", loom_last_error(ctx));
    loom_plan_report r;
    ck_assert_msg(loom_sequential_plan(m, 1, &r) == LOOM_OK, "%s", loom_last_error(ctx));
    loom_sequential_destroy(m);
    loom_device_close(dev);
    return r;
}

/* The fusion pass's matmuls (bias + relu, bias, relu's gradient) run on
 * OpenCL in one launch each, as on the CPU and Vulkan: the step makes as
 * many launches as there. */
START_TEST(train_step_dispatches_match_other_backends)
{
    loom_ctx *ctx = tu_ctx();
    if (!have_opencl(ctx)) {
        loom_ctx_destroy(ctx);
        return;
    }
    loom_plan_report cl = seed_step_plan(ctx, SPEC), cpu = seed_step_plan(ctx, "cpu");
    ck_assert_int_eq(cl.fused, 5);
    ck_assert_int_eq(cl.fused, cpu.fused);
    ck_assert_int_eq(cl.dispatches, cpu.dispatches);
    for (int i = 0; i < loom_device_count(ctx); i++) {
        loom_device_info d;
        if (loom_device_get_info(ctx, i, &d) == LOOM_OK && d.can_run && !strcmp(d.spec, "vulkan:0")) {
            loom_plan_report vk = seed_step_plan(ctx, "vulkan:0");
            ck_assert_int_eq(cl.dispatches, vk.dispatches);
        }
    }
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- training steps ---------------------------------------------------------- */

typedef struct trained {
    float w[12], b[3], loss[6], ema[12];
} trained;

/* x [8,4] -> dropout -> dense 4->3 (+bias) -> sparse xent, 6 steps. */
static trained train_on(loom_ctx *ctx, const char *spec, const loom_optimizer *opt, float rate)
{
    loom_device *dev = tu_open(ctx, spec);
    loom_state *st;
    loom_graph *g;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t sx[2] = {8, 4}, sl[1] = {8}, sw[2] = {4, 3}, sbias[1] = {3};
    loom_tensor x = loom_input(g, "x", LOOM_F32, 2, sx), lab = loom_input(g, "lab", LOOM_I32, 1, sl);
    loom_tensor w = loom_param(g, "w", LOOM_F32, 2, sw, 1), b = loom_param(g, "b", LOOM_F32, 1, sbias, 1);
    loom_tensor h = rate > 0 ? loom_dropout(g, x, rate, 99) : x;
    loom_tensor loss = loom_sparse_cross_entropy(g, loom_add(g, loom_matmul(g, h, w, 0, 0), b), lab);
    loom_output(g, loss, "loss");
    ck_assert_int_eq(loom_backward(g, loss, NULL, 0), LOOM_OK);
    ck_assert_msg(loom_optimize(g, opt) == LOOM_OK, "%s", loom_graph_error(g));
    float w0[12], b0[3] = {0.1f, -0.2f, 0.05f}, xv[32];
    int32_t lv[8] = {0, 1, 2, 1, 0, 2, 2, 1};
    tu_fill(w0, 12, 5, -0.5f, 0.5f);
    tu_fill(xv, 32, 6, -1, 1);
    ck_assert_int_eq(loom_state_write(st, "w", LOOM_F32, 2, sw, w0), LOOM_OK);
    ck_assert_int_eq(loom_state_write(st, "b", LOOM_F32, 1, sbias, b0), LOOM_OK);
    loom_program *p;
    ck_assert_msg(loom_compile(g, dev, st, NULL, &p) == LOOM_OK, "%s", loom_last_error(ctx));
    ck_assert_int_eq(loom_program_set_input(p, "x", xv, sizeof xv), LOOM_OK);
    ck_assert_int_eq(loom_program_set_input(p, "lab", lv, sizeof lv), LOOM_OK);
    trained t;
    memset(&t, 0, sizeof t);
    for (int s = 0; s < 6; s++) {
        ck_assert_msg(loom_program_run(p) == LOOM_OK, "%s", loom_last_error(ctx));
        ck_assert_int_eq(loom_program_read(p, "loss", &t.loss[s], 4), LOOM_OK);
    }
    ck_assert_int_eq(loom_state_read(st, "w", t.w, sizeof t.w), LOOM_OK);
    ck_assert_int_eq(loom_state_read(st, "b", t.b, sizeof t.b), LOOM_OK);
    if (opt->ema_decay > 0)
        ck_assert_int_eq(loom_state_read(st, "w/ema", t.ema, sizeof t.ema), LOOM_OK);
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
    return t;
}

static void same_training(loom_ctx *ctx, const loom_optimizer *opt, float rate, const char *what)
{
    trained c = train_on(ctx, "cpu", opt, rate), o = train_on(ctx, SPEC, opt, rate);
    double e = tu_err(o.loss, c.loss, 6, 1e-6, 1e-5);
    ck_assert_msg(e <= 1, "%s: losses differ from cpu (normalized error %g; step 6: %.8g vs %.8g)", what, e,
                  (double)o.loss[5], (double)c.loss[5]);
    ck_assert_msg(tu_err(o.w, c.w, 12, 1e-6, 1e-5) <= 1, "%s: weights differ from cpu", what);
    ck_assert_msg(tu_err(o.b, c.b, 3, 1e-6, 1e-5) <= 1, "%s: biases differ from cpu", what);
    ck_assert_msg(tu_err(o.ema, c.ema, 12, 1e-6, 1e-5) <= 1, "%s: EMA differs from cpu", what);
    /* The weights moved: the updates ran. */
    ck_assert_msg(fabsf(c.loss[5] - c.loss[0]) > 1e-4f, "%s: the loss did not change", what);
}

START_TEST(optimizers_match_cpu)
{
    loom_ctx *ctx = tu_ctx();
    if (!have_opencl(ctx)) {
        loom_ctx_destroy(ctx);
        return;
    }
    loom_optimizer o = loom_optimizer_default(LOOM_OPT_SGD);
    o.lr = 0.1f;
    same_training(ctx, &o, 0, "sgd");
    o.momentum = 0.9f;
    same_training(ctx, &o, 0, "sgd momentum");
    o.nesterov = 1;
    o.l1 = 0.01f;
    o.l2 = 0.02f;
    same_training(ctx, &o, 0, "sgd nesterov l1 l2");
    loom_optimizer a = loom_optimizer_default(LOOM_OPT_ADAM);
    a.lr = 0.05f;
    same_training(ctx, &a, 0, "adam");
    loom_optimizer aw = loom_optimizer_default(LOOM_OPT_ADAMW);
    aw.lr = 0.05f;
    aw.clip_norm = 0.1f;
    aw.ema_decay = 0.9f;
    aw.schedule = LOOM_LR_COSINE;
    aw.warmup_steps = 2;
    aw.total_steps = 6;
    same_training(ctx, &aw, 0, "adamw clip ema cosine");
    loom_ctx_destroy(ctx);
}
END_TEST

/* The mask depends on the step: the same dropout on both backends at every
 * step, forward and backward. */
START_TEST(dropout_training_matches_cpu)
{
    loom_ctx *ctx = tu_ctx();
    if (!have_opencl(ctx)) {
        loom_ctx_destroy(ctx);
        return;
    }
    loom_optimizer o = loom_optimizer_default(LOOM_OPT_SGD);
    o.lr = 0.2f;
    same_training(ctx, &o, 0.4f, "sgd with dropout 0.4");
    loom_ctx_destroy(ctx);
}
END_TEST

/* The learning test: the 784-64-64-10 MLP with dropout on the first 1600
 * Fashion-MNIST images, 50 steps of Adam from the same seed on both
 * backends: the same loss within 1e-3 and the same accuracy. */
typedef struct fit_result {
    double loss, test_acc;
} fit_result;

static fit_result fit_on(loom_ctx *ctx, const char *spec, loom_dataset *train, loom_dataset *test)
{
    loom_device *dev = tu_open(ctx, spec);
    loom_sequential *m;
    ck_assert_int_eq(loom_sequential_create(ctx, 784, &m), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_dense(m, 64, LOOM_ACT_RELU, LOOM_INIT_GLOROT_UNIFORM), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_dropout(m, 0.1f), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_dense(m, 64, LOOM_ACT_RELU, LOOM_INIT_GLOROT_UNIFORM), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_dense(m, 10, LOOM_ACT_SOFTMAX, LOOM_INIT_GLOROT_UNIFORM), LOOM_OK);
    loom_model_config cfg = loom_model_config_default();
    ck_assert_msg(loom_sequential_compile(m, dev, &cfg) == LOOM_OK, "%s", loom_last_error(ctx));
    loom_fit_config fc = loom_fit_config_default();
    fc.epochs = 1;
    loom_fit_stats last;
    ck_assert_msg(loom_sequential_fit(m, train, &fc, &last) == LOOM_OK, "%s", loom_last_error(ctx));
    ck_assert_int_eq(last.step, 50);
    loom_eval_result ev;
    ck_assert_int_eq(loom_sequential_evaluate(m, test, 0, &ev), LOOM_OK);
    fit_result r = {last.loss, ev.accuracy};
    loom_eval_result_free(&ev);
    loom_sequential_destroy(m);
    loom_device_close(dev);
    return r;
}

START_TEST(learning_matches_cpu)
{
    loom_ctx *ctx = tu_ctx();
    if (!have_opencl(ctx)) {
        loom_ctx_destroy(ctx);
        return;
    }
    loom_dataset *all = NULL, *all_test = NULL, *train = NULL, *test = NULL;
    if (loom_dataset_load_mnist(ctx, LOOM_DEFAULT_DATA_DIR, 1, &all) != LOOM_OK ||
        loom_dataset_load_mnist(ctx, LOOM_DEFAULT_DATA_DIR, 0, &all_test) != LOOM_OK) {
        fprintf(stderr, "test_opencl: no Fashion-MNIST at %s; learning test skipped\n", LOOM_DEFAULT_DATA_DIR);
        loom_dataset_destroy(all);
        loom_ctx_destroy(ctx);
        return;
    }
    ck_assert_int_eq(loom_dataset_subset(all, 0, 1600, &train), LOOM_OK);
    ck_assert_int_eq(loom_dataset_subset(all_test, 0, 1000, &test), LOOM_OK);
    ck_assert_int_eq(loom_dataset_scale(train, LOOM_SCALE_UNIT, NULL, NULL), LOOM_OK);
    ck_assert_int_eq(loom_dataset_scale(test, LOOM_SCALE_UNIT, NULL, NULL), LOOM_OK);
    fit_result c = fit_on(ctx, "cpu", train, test), o = fit_on(ctx, SPEC, train, test);
    fprintf(stderr, "learning: loss after 50 steps cpu %.6f %s %.6f; test accuracy %.3f / %.3f\n", c.loss, SPEC,
            o.loss, c.test_acc, o.test_acc);
    ck_assert_msg(fabs(c.loss - o.loss) <= 1e-3, "loss after 50 steps: cpu %.6f, %s %.6f", c.loss, SPEC, o.loss);
    ck_assert_msg(fabs(c.test_acc - o.test_acc) <= 0.005, "test accuracy: cpu %.4f, %s %.4f", c.test_acc, SPEC,
                  o.test_acc);
    ck_assert_msg(o.test_acc > 0.6, "%s learned nothing: test accuracy %.3f", SPEC, o.test_acc);
    loom_dataset_destroy(train);
    loom_dataset_destroy(test);
    loom_dataset_destroy(all);
    loom_dataset_destroy(all_test);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- profiling --------------------------------------------------------------- */

START_TEST(profile_timestamps_on_host_timeline)
{
    loom_ctx *ctx = tu_ctx();
    if (!have_opencl(ctx)) {
        loom_ctx_destroy(ctx);
        return;
    }
    loom_device *dev = tu_open(ctx, SPEC);
    loom_state *st;
    loom_graph *g;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t s[2] = {64, 96};
    loom_tensor x = loom_input(g, "x", LOOM_F32, 2, s);
    loom_tensor y = loom_softmax(g, loom_matmul(g, loom_relu(g, x), x, 0, 1));
    loom_output(g, loom_reshape(g, y, 1, (int64_t[]){64 * 64}), "y");
    loom_compile_opts co = {.profile = 1};
    loom_program *p;
    ck_assert_msg(loom_compile(g, dev, st, &co, &p) == LOOM_OK, "%s", loom_last_error(ctx));
    float *xv = malloc(64 * 96 * 4);
    tu_fill(xv, 64 * 96, 3, -1, 1);
    ck_assert_int_eq(loom_program_set_input(p, "x", xv, 64 * 96 * 4), LOOM_OK);
    double before = loom_now_ns();
    ck_assert_int_eq(loom_program_run(p), LOOM_OK);
    double after = loom_now_ns();
    int n = p->eprog.nnodes;
    ck_assert_int_ge(n, 3);
    double t0[16], t1[16];
    ck_assert_int_eq(dev->ops->timestamps(p->bprog, t0, t1, n), LOOM_OK);
    /* The marker calibration may be off by half a round trip; 2 ms covers
     * it on a loaded machine. */
    double slack = 2e6;
    for (int i = 0; i < n; i++) {
        ck_assert_msg(t0[i] <= t1[i], "node %d ends before it starts", i);
        ck_assert_msg(t0[i] >= before - slack && t1[i] <= after + slack,
                      "node %d at [%.0f, %.0f] ns, outside the run [%.0f, %.0f]", i, t0[i], t1[i], before, after);
        if (i)
            ck_assert_msg(t0[i] >= t1[i - 1] - 1e3, "node %d starts before node %d ends (in-order queue)", i, i - 1);
    }
    ck_assert_msg(t1[n - 1] > t0[0], "no time passed");
    ck_assert_int_eq(dev->ops->timestamps(p->bprog, t0, t1, n + 1), LOOM_E_STATE);
    free(xv);
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- memory and errors --------------------------------------------------------- */

START_TEST(memory_blocks_and_limits)
{
    loom_ctx *ctx = tu_ctx();
    if (!have_opencl(ctx)) {
        loom_ctx_destroy(ctx);
        return;
    }
    loom_device *dev = tu_open(ctx, SPEC);
    cl_dev *d = cl_of(dev);
    void *a, *b, *c, *b2;
    ck_assert_int_eq(loom_cl_buffer_alloc(d, 1000, LOOM_LIFE_STATE, &a), LOOM_OK);
    ck_assert_int_eq(loom_cl_buffer_alloc(d, 3000, LOOM_LIFE_STATE, &b), LOOM_OK);
    ck_assert_int_eq(loom_cl_buffer_alloc(d, 10, LOOM_LIFE_STATE, &c), LOOM_OK);
    cl_buf *ba = a, *bb = b, *bc = c;
    /* One block, aligned ranges that do not overlap. */
    ck_assert_ptr_eq(ba->block, bb->block);
    ck_assert_ptr_eq(bb->block, bc->block);
    ck_assert_int_eq(bb->offset % d->lim.align, 0);
    ck_assert_int_eq(bc->offset % d->lim.align, 0);
    ck_assert(bb->offset >= ba->offset + 1000 && bc->offset >= bb->offset + 3000);
    /* A freed range is reused; data round-trips at an offset. */
    uint64_t off_b = bb->offset;
    loom_cl_buffer_free(d, b);
    ck_assert_int_eq(loom_cl_buffer_alloc(d, 2900, LOOM_LIFE_STATE, &b2), LOOM_OK);
    ck_assert_int_eq(((cl_buf *)b2)->offset, off_b);
    float in[5] = {1, 2, 3, 4, 5}, out[5] = {0};
    ck_assert_int_eq(loom_cl_buffer_write(d, b2, 100, in, sizeof in), LOOM_OK);
    ck_assert_int_eq(loom_cl_buffer_read(d, b2, 100, out, sizeof out), LOOM_OK);
    ck_assert_mem_eq(in, out, sizeof in);
    ck_assert_int_eq(loom_cl_buffer_read(d, b2, 2890, out, sizeof out), LOOM_E_INVALID);
    /* The arena has its own block. */
    void *ar;
    ck_assert_int_eq(loom_cl_buffer_alloc(d, 64, LOOM_LIFE_ARENA, &ar), LOOM_OK);
    ck_assert_ptr_ne(((cl_buf *)ar)->block, ba->block);
    loom_cl_buffer_free(d, ar);
    loom_cl_buffer_free(d, a);
    loom_cl_buffer_free(d, b2);
    loom_cl_buffer_free(d, c);
    ck_assert_int_eq(d->nblocks, 0);
    /* Larger than one allocation may be: refused with the sizes. */
    void *big = NULL;
    uint64_t too = loom_cl_max_block(d) + 1;
    ck_assert_int_eq(loom_cl_buffer_alloc(d, too, LOOM_LIFE_ARENA, &big), LOOM_E_UNSUPPORTED);
    ck_assert_ptr_null(big);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "CL_DEVICE_MAX_MEM_ALLOC_SIZE"));
    /* Through a graph: two live tensors that together exceed it. */
    loom_state *st;
    loom_graph *g;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t n = (int64_t)(loom_cl_max_block(d) / 4 * 3 / 4);
    loom_tensor x = loom_input(g, "x", LOOM_F32, 1, &n);
    loom_output(g, loom_add(g, x, loom_relu(g, x)), "y");
    loom_program *p = NULL;
    ck_assert_int_eq(loom_compile(g, dev, st, NULL, &p), LOOM_E_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "arena"));
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

START_TEST(error_names)
{
    ck_assert_str_eq(loom_cl_errname(CL_OUT_OF_RESOURCES), "CL_OUT_OF_RESOURCES");
    ck_assert_str_eq(loom_cl_errname(-11), "CL_BUILD_PROGRAM_FAILURE");
    ck_assert_str_eq(loom_cl_errname(-2046), "CLBlastInvalidLocalMemUsage");
    ck_assert_str_eq(loom_cl_errname(12345), "unknown error code");
    ck_assert_int_eq(loom_cl_status(CL_MEM_OBJECT_ALLOCATION_FAILURE), LOOM_E_OOM);
    ck_assert_int_eq(loom_cl_status(CL_INVALID_KERNEL_ARGS), LOOM_E_DEVICE);
}
END_TEST

START_TEST(bad_kernel_gives_build_log)
{
    char dir[512];
    fresh_dir(dir, sizeof dir, "bad");
    loom_ctx *ctx = ctx_in(dir, NULL);
    if (!have_opencl(ctx)) {
        loom_ctx_destroy(ctx);
        return;
    }
    loom_device *dev = tu_open(ctx, SPEC);
    const char *src = "__kernel void broken(__global float *y) { y[0] = no_such_symbol_here; }\n";
    size_t len = strlen(src);
    cl_program prog = NULL;
    loom_status s = loom_cl_build(cl_of(dev), &src, &len, 1, "", "broken.cl", &prog, NULL);
    ck_assert_int_eq(s, LOOM_E_DEVICE);
    ck_assert_ptr_null(prog);
    const char *msg = loom_last_error(ctx);
    ck_assert_msg(strstr(msg, "clBuildProgram") && strstr(msg, "CL_BUILD_PROGRAM_FAILURE"), "message: %s", msg);
    ck_assert_msg(strstr(msg, "broken.cl") && strstr(msg, "no_such_symbol_here"), "no build log in: %s", msg);
    /* The device still works afterwards. */
    ck_assert_int_eq(loom_cl_gemm_verify(cl_of(dev), NULL, 3, 4, 5, 0, 0, "after a bad build"), LOOM_OK);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

START_TEST(binary_cache_written_and_reused)
{
    char dir[512];
    fresh_dir(dir, sizeof dir, "bin");
    logbuf *log = calloc(1, sizeof *log);
    loom_ctx *ctx = ctx_in(dir, log);
    if (!have_opencl(ctx)) {
        loom_ctx_destroy(ctx);
        free(log);
        return;
    }
    const char *src = "__kernel void twice(__global float *y) { y[get_global_id(0)] *= 2.0f; }\n";
    size_t len = strlen(src);
    loom_device *dev = tu_open(ctx, SPEC);
    cl_program prog = NULL;
    int cached = -1;
    ck_assert_int_eq(loom_cl_build(cl_of(dev), &src, &len, 1, "", "twice.cl", &prog, &cached), LOOM_OK);
    ck_assert_int_eq(cached, 0);
    clReleaseProgram(prog);
    char path[1100];
    loom_cl_cache_path(cl_of(dev), &src, &len, 1, "", path, sizeof path);
    struct stat sb;
    ck_assert_msg(stat(path, &sb) == 0 && sb.st_size > 0, "no binary at %s", path);
    /* loom's own programs: built by the first context. */
    loom_program *p = NULL;
    loom_state *st;
    loom_graph *g;
    int64_t n = 100;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    loom_output(g, loom_relu(g, loom_input(g, "x", LOOM_F32, 1, &n)), "y");
    ck_assert_int_eq(loom_compile(g, dev, st, NULL, &p), LOOM_OK);
    loom_program_destroy(p);
    loom_state_destroy(st);
    loom_graph_destroy(g);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
    ck_assert_ptr_nonnull(strstr(log->text, "built elementwise.cl"));

    /* A second context builds nothing. */
    memset(log, 0, sizeof *log);
    ctx = ctx_in(dir, log);
    dev = tu_open(ctx, SPEC);
    ck_assert_int_eq(loom_cl_build(cl_of(dev), &src, &len, 1, "", "twice.cl", &prog, &cached), LOOM_OK);
    ck_assert_int_eq(cached, 1);
    clReleaseProgram(prog);
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    loom_output(g, loom_relu(g, loom_input(g, "x", LOOM_F32, 1, &n)), "y");
    ck_assert_int_eq(loom_compile(g, dev, st, NULL, &p), LOOM_OK);
    float x[100], y[100];
    tu_fill(x, 100, 1, -1, 1);
    ck_assert_int_eq(loom_program_set_input(p, "x", x, sizeof x), LOOM_OK);
    ck_assert_int_eq(loom_program_run(p), LOOM_OK);
    ck_assert_int_eq(loom_program_read(p, "y", y, sizeof y), LOOM_OK);
    for (int i = 0; i < 100; i++)
        ck_assert(y[i] == (x[i] > 0 ? x[i] : 0.0f));
    ck_assert_msg(strstr(log->text, "elementwise.cl from the binary cache"), "log: %s", log->text);
    ck_assert_msg(!strstr(log->text, "built "), "the second context built something: %s", log->text);
    loom_program_destroy(p);
    loom_state_destroy(st);

    /* A truncated file is rebuilt over, with a warning, never trusted. */
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(ftruncate(fileno(f), sb.st_size / 2), 0);
    fclose(f);
    memset(log, 0, sizeof *log);
    ck_assert_int_eq(loom_cl_build(cl_of(dev), &src, &len, 1, "", "twice.cl", &prog, &cached), LOOM_OK);
    ck_assert_int_eq(cached, 0);
    ck_assert_msg(strstr(log->text, "truncated"), "log: %s", log->text);
    clReleaseProgram(prog);
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq(loom_cl_build(cl_of(dev), &src, &len, 1, "", "twice.cl", &prog, &cached), LOOM_OK);
    ck_assert_int_eq(cached, 1);
    clReleaseProgram(prog);
    loom_graph_destroy(g);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
    free(log);
}
END_TEST

/* ---- tuning -------------------------------------------------------------------- */

/* 1 if both JSON texts hold the same parameter sections. */
static int same_params(const char *a, const char *b)
{
    cJSON *ja = cJSON_Parse(a), *jb = cJSON_Parse(b);
    int same = ja && jb;
    static const char *const keys[] = {"Xgemm", "XgemmDirect", "GemmRoutine", "use_default"};
    for (int i = 0; i < 4 && same; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(ja, keys[i]), *y = cJSON_GetObjectItemCaseSensitive(jb, keys[i]);
        same = (!x && !y) || (x && y && cJSON_Compare(x, y, 1));
    }
    cJSON_Delete(ja);
    cJSON_Delete(jb);
    return same;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static void check_matmul_on(loom_ctx *ctx)
{
    gemm_vs_cpu(ctx, 37, 41, 29, 0, 1);
    gemm_vs_cpu(ctx, 131, 67, 259, 1, 0);
}

START_TEST(tuning_stored_reloaded_applied)
{
    char dir[512];
    fresh_dir(dir, sizeof dir, "tune");
    loom_ctx *ctx = ctx_in(dir, NULL);
    if (!have_opencl(ctx)) {
        loom_ctx_destroy(ctx);
        return;
    }
    loom_device *dev = tu_open(ctx, SPEC);
    char before[4096];
    ck_assert_int_eq(loom_device_get_tuning(dev, before, sizeof before), LOOM_OK);
    ck_assert_ptr_nonnull(strstr(before, "\"use_default\""));
    loom_tune_opts o;
    loom_tune_opts_default(&o);
    o.size = 128;
    o.max_candidates = 2;
    o.reps = 1;
    loom_tune_report r;
    ck_assert_msg(loom_device_tune(dev, &o, &r) == LOOM_OK, "%s", loom_last_error(ctx));
    ck_assert_int_ge(r.measured, 1);
    ck_assert(r.baseline_gflops > 0 && r.best_gflops > 0);
    struct stat sb;
    ck_assert_msg(stat(r.path, &sb) == 0, "nothing stored at %s", r.path);
    char tuned[4096];
    ck_assert_int_eq(loom_device_get_tuning(dev, tuned, sizeof tuned), LOOM_OK);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);

    /* Force a set that is surely stored and differs from CLBlast's: the
     * known-good PoCL set with 64x64 tiles. */
    const char *set = "{\"Xgemm\": {\"GEMMK\":0,\"KREG\":1,\"KWG\":64,\"KWI\":8,\"MDIMA\":8,\"MDIMC\":8,\"MWG\":64,"
                      "\"NDIMB\":8,\"NDIMC\":8,\"NWG\":64,\"SA\":1,\"SB\":1,\"STRM\":0,\"STRN\":0,\"VWM\":8,\"VWN\":8},"
                      "\"GemmRoutine\": {\"XGEMM_MIN_INDIRECT_SIZE\": 96}}";
    ctx = ctx_in(dir, NULL);
    dev = tu_open(ctx, SPEC);
    /* Reloaded by a new context from the file the search wrote. */
    char again[4096];
    ck_assert_int_eq(loom_device_get_tuning(dev, again, sizeof again), LOOM_OK);
    char *stored = slurp(r.path);
    ck_assert_msg(same_params(again, stored), "reloaded %s, stored %s", again, stored);
    ck_assert_ptr_nonnull(strstr(stored, "\"gflops\""));
    ck_assert_ptr_nonnull(strstr(stored, "\"GemmRoutine\""));
    /* What the search left in use is what it stored, where it beat CLBlast. */
    if (strstr(stored, "\"Xgemm\""))
        ck_assert_msg(same_params(again, tuned), "in use after the search %s, stored %s", tuned, stored);
    free(stored);
    ck_assert_msg(loom_device_set_tuning(dev, set) == LOOM_OK, "%s", loom_last_error(ctx));
    ck_assert_int_eq(loom_device_get_tuning(dev, again, sizeof again), LOOM_OK);
    ck_assert_ptr_nonnull(strstr(again, "\"XGEMM_MIN_INDIRECT_SIZE\":\t96"));
    /* Store it where the device looks, as the search would. */
    FILE *f = fopen(r.path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(again, f);
    fclose(f);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);

    ctx = ctx_in(dir, NULL);
    dev = tu_open(ctx, SPEC);
    ck_assert_int_eq(loom_device_get_tuning(dev, again, sizeof again), LOOM_OK);
    ck_assert_ptr_nonnull(strstr(again, "\"KWI\":\t8"));
    ck_assert_ptr_nonnull(strstr(again, "\"XGEMM_MIN_INDIRECT_SIZE\":\t96"));
    ck_assert_str_eq(cl_of(dev)->gemm_source, r.path);
    loom_device_close(dev);
    /* Results with the reloaded set (sizes on both sides of 96). */
    check_matmul_on(ctx);
    loom_ctx_destroy(ctx);
}
END_TEST

START_TEST(impossible_tuning_gives_status)
{
    char dir[512];
    fresh_dir(dir, sizeof dir, "bad_tune");
    logbuf *log = calloc(1, sizeof *log);
    loom_ctx *ctx = ctx_in(dir, log);
    if (!have_opencl(ctx)) {
        loom_ctx_destroy(ctx);
        free(log);
        return;
    }
    loom_device *dev = tu_open(ctx, SPEC);
    char before[4096], after[4096];
    ck_assert_int_eq(loom_device_get_tuning(dev, before, sizeof before), LOOM_OK);
    /* MWG=60 is not a multiple of MDIMC*VWM = 64. */
    const char *bad = "{\"Xgemm\": {\"GEMMK\":0,\"KREG\":1,\"KWG\":64,\"KWI\":8,\"MDIMA\":8,\"MDIMC\":8,\"MWG\":60,"
                      "\"NDIMB\":8,\"NDIMC\":8,\"NWG\":64,\"SA\":1,\"SB\":1,\"STRM\":0,\"STRN\":0,\"VWM\":8,\"VWN\":8}}";
    ck_assert_int_eq(loom_device_set_tuning(dev, bad), LOOM_E_INVALID);
    ck_assert_msg(strstr(loom_last_error(ctx), "MWG=60"), "%s", loom_last_error(ctx));
    /* More threads than a work group may have. */
    const char *huge = "{\"XgemmDirect\": {\"KWID\":2,\"MDIMAD\":128,\"MDIMCD\":128,\"NDIMBD\":128,\"NDIMCD\":128,"
                       "\"PADA\":1,\"PADB\":1,\"VWMD\":1,\"VWND\":1,\"WGD\":128}}";
    ck_assert_int_eq(loom_device_set_tuning(dev, huge), LOOM_E_INVALID);
    ck_assert_msg(strstr(loom_last_error(ctx), "work-group limit"), "%s", loom_last_error(ctx));
    /* Missing parameter, malformed text, another device. */
    ck_assert_int_eq(loom_device_set_tuning(dev, "{\"Xgemm\": {\"KWG\": 64}}"), LOOM_E_INVALID);
    ck_assert_msg(strstr(loom_last_error(ctx), "lacks"), "%s", loom_last_error(ctx));
    ck_assert_int_eq(loom_device_set_tuning(dev, "{\"Xgemm\": "), LOOM_E_FORMAT);
    ck_assert_int_eq(loom_device_set_tuning(dev, "{\"device\": \"some other GPU\", \"use_default\": true}"),
                     LOOM_E_INVALID);
    ck_assert_int_eq(loom_device_get_tuning(dev, after, sizeof after), LOOM_OK);
    ck_assert_str_eq(after, before);
    ck_assert_int_eq(loom_device_set_tuning(NULL, bad), LOOM_E_INVALID);
    /* A corrupt stored file: the open still works, says why, and GEMM is right. */
    char path[1100];
    loom_cl_gemm_store_path(cl_of(dev), path, sizeof path);
    loom_device_close(dev);
    ck_assert(loom_cl_make_dirs(path));
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(bad, f);
    fclose(f);
    memset(log, 0, sizeof *log);
    dev = tu_open(ctx, SPEC);
    ck_assert_msg(strstr(log->text, "ignoring the stored GEMM parameters") && strstr(log->text, "MWG=60"), "log: %s",
                  log->text);
    loom_device_close(dev);
    check_matmul_on(ctx);
    /* The CPU backend has nothing to tune. */
    loom_device *cpu = tu_open(ctx, "cpu");
    ck_assert_int_eq(loom_device_tune(cpu, NULL, NULL), LOOM_E_UNSUPPORTED);
    loom_device_close(cpu);
    loom_ctx_destroy(ctx);
    free(log);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("opencl");
    TCase *tc = tcase_create("opencl");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, error_names);
    tcase_add_test(tc, gemm_transposes_odd_sizes_offsets);
    tcase_add_test(tc, gemm_verify_with_offsets);
    tcase_add_test(tc, train_step_dispatches_match_other_backends);
    tcase_add_test(tc, optimizers_match_cpu);
    tcase_add_test(tc, dropout_training_matches_cpu);
    tcase_add_test(tc, learning_matches_cpu);
    tcase_add_test(tc, profile_timestamps_on_host_timeline);
    tcase_add_test(tc, memory_blocks_and_limits);
    tcase_add_test(tc, bad_kernel_gives_build_log);
    tcase_add_test(tc, binary_cache_written_and_reused);
    tcase_add_test(tc, tuning_stored_reloaded_applied);
    tcase_add_test(tc, impossible_tuning_gives_status);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
