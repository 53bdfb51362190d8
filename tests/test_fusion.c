/* The core fusion pass as a user meets it: a fused program computes what
 * the same graph compiled with no_fusion computes, on every device, in
 * fewer dispatches. The seed MLP's training step (GEMM epilogues forward
 * and backward, the loss + its gradient + the prediction in one kernel,
 * the biases' gradients summed by their updates, one multi-tensor
 * optimizer dispatch) over 50 steps; groups of updates of every optimizer
 * with clipping and penalties; groups that outgrow one binding. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BATCH = 32, STEPS = 50, IN = 784, CLASSES = 10 };

static const int64_t dims[4] = {IN, 64, 64, CLASSES};

/* The seed MLP's step as src/nn builds it: relu layers, logits into sparse
 * cross-entropy, the prediction from the logits (pred 1), or from a
 * reshape of them as a sequence model's head has it (pred 2: the loss
 * joins its gradient over nodes that come between), Adam. */
static loom_graph *mlp_step(loom_ctx *ctx, int pred, int half)
{
    loom_graph *g = NULL;
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t xs[2] = {BATCH, IN}, ls[1] = {BATCH};
    loom_dtype dt = half ? LOOM_F16 : LOOM_F32;
    loom_tensor h = loom_cast(g, loom_input(g, "x", LOOM_F32, 2, xs), dt);
    loom_tensor labels = loom_input(g, "labels", LOOM_I32, 1, ls);
    for (int l = 0; l < 3; l++) {
        char kn[16], bn[16];
        snprintf(kn, sizeof kn, "k%d", l);
        snprintf(bn, sizeof bn, "b%d", l);
        int64_t ks[2] = {dims[l], dims[l + 1]}, bs[1] = {dims[l + 1]};
        h = loom_add(g, loom_matmul(g, h, loom_cast(g, loom_param(g, kn, LOOM_F32, 2, ks, 1), dt), 0, 0),
                     loom_cast(g, loom_param(g, bn, LOOM_F32, 1, bs, 1), dt));
        if (l < 2)
            h = loom_relu(g, h);
    }
    h = loom_cast(g, h, LOOM_F32);
    loom_tensor loss = loom_sparse_cross_entropy(g, h, labels);
    ck_assert_int_eq(loom_output(g, loss, "loss"), LOOM_OK);
    int64_t flat[2] = {BATCH, CLASSES};
    if (pred)
        ck_assert_int_eq(loom_output(g, loom_argmax(g, pred == 2 ? loom_reshape(g, h, 2, flat) : h, -1), "pred"),
                         LOOM_OK);
    if (half)
        ck_assert_int_eq(loom_backward_scaled(g, loss, NULL, 0, NULL), LOOM_OK);
    else
        ck_assert_int_eq(loom_backward(g, loss, NULL, 0), LOOM_OK);
    loom_optimizer o = loom_optimizer_default(LOOM_OPT_ADAM);
    ck_assert_int_eq(loom_optimize(g, &o), LOOM_OK);
    return g;
}

typedef struct trace {
    float loss[STEPS];
    int32_t pred[STEPS][BATCH];
    float k0[IN * 64];          /* the first kernel after the last step */
    int dispatches;
    int fused;
} trace;

static void init_params(loom_state *st)
{
    for (int l = 0; l < 3; l++) {
        char kn[16], bn[16];
        snprintf(kn, sizeof kn, "k%d", l);
        snprintf(bn, sizeof bn, "b%d", l);
        size_t nk = (size_t)(dims[l] * dims[l + 1]);
        float *k = malloc(nk * sizeof *k), b[64];
        float lim = sqrtf(6.0f / (float)(dims[l] + dims[l + 1]));
        tu_fill(k, nk, 11 + (uint32_t)l, -lim, lim);
        tu_fill(b, (size_t)dims[l + 1], 21 + (uint32_t)l, -0.1f, 0.1f);
        int64_t ks[2] = {dims[l], dims[l + 1]}, bs[1] = {dims[l + 1]};
        ck_assert_int_eq(loom_state_write(st, kn, LOOM_F32, 2, ks, k), LOOM_OK);
        ck_assert_int_eq(loom_state_write(st, bn, LOOM_F32, 1, bs, b), LOOM_OK);
        free(k);
    }
}

static void run_steps(loom_ctx *ctx, const char *spec, int fusion, int pred, int half, trace *t)
{
    loom_device *dev = tu_open(ctx, spec);
    loom_state *st = NULL;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    loom_graph *g = mlp_step(ctx, pred, half);
    loom_compile_opts o = {.no_fusion = !fusion};
    loom_program *p = NULL;
    ck_assert_msg(loom_compile(g, dev, st, &o, &p) == LOOM_OK, "%s: %s", spec, loom_last_error(ctx));
    init_params(st);
    loom_plan_report r;
    ck_assert_int_eq(loom_program_plan(p, &r), LOOM_OK);
    t->dispatches = r.dispatches;
    t->fused = r.fused;
    float *x = malloc((size_t)BATCH * IN * sizeof *x);
    int32_t lab[BATCH];
    for (int s = 0; s < STEPS; s++) {
        tu_fill(x, (size_t)BATCH * IN, 1000 + (uint32_t)s, 0, 1);
        for (int i = 0; i < BATCH; i++)
            lab[i] = (int32_t)((s * 7 + i * 3) % CLASSES);
        ck_assert_int_eq(loom_program_set_input(p, "x", x, (size_t)BATCH * IN * sizeof *x), LOOM_OK);
        ck_assert_int_eq(loom_program_set_input(p, "labels", lab, sizeof lab), LOOM_OK);
        ck_assert_msg(loom_program_run(p) == LOOM_OK, "%s: step %d: %s", spec, s, loom_last_error(ctx));
        ck_assert_int_eq(loom_program_read(p, "loss", &t->loss[s], sizeof t->loss[s]), LOOM_OK);
        if (pred)
            ck_assert_int_eq(loom_program_read(p, "pred", t->pred[s], sizeof t->pred[s]), LOOM_OK);
    }
    ck_assert_int_eq(loom_state_read(st, "k0", t->k0, sizeof t->k0), LOOM_OK);
    ck_assert_msg(loom_validation_errors(ctx) == 0, "%s: validation errors", spec);
    free(x);
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
}

/* Fused and unfused, on each device: the same losses step by step (to
 * float rounding: a GEMM that starts from the bias adds in another order),
 * the same predictions, the same weights; and the dispatch counts of the
 * issue. */
static void train_step(int pred, int half)
{
    /* f16: a GEMM that applies the relu's gradient rounds once, not twice */
    double tol = half ? 2e-2 : 1e-5;
    loom_ctx *ctx = tu_ctx();
    char specs[8][32];
    int nd = tu_devices(ctx, specs, 8);
    static trace ref, fused, plain;
    run_steps(ctx, "cpu", 0, pred, half, &ref);
    ck_assert_int_eq(ref.fused, 0);
    for (int d = 0; d < nd; d++) {
        run_steps(ctx, specs[d], 1, pred, half, &fused);
        run_steps(ctx, specs[d], 0, pred, half, &plain);
        double worst = 0;
        for (int s = 0; s < STEPS; s++) {
            double e = fabs((double)fused.loss[s] - plain.loss[s]) / fabs((double)plain.loss[s]);
            worst = fmax(worst, e);
            ck_assert_msg(e <= tol, "%s: step %d: fused loss %.9g, unfused %.9g", specs[d], s, (double)fused.loss[s],
                          (double)plain.loss[s]);
            ck_assert_msg(fabs((double)fused.loss[s] - ref.loss[s]) <= (half ? tol : 1e-3) * fabs((double)ref.loss[s]),
                          "%s: step %d: loss %.9g, cpu's %.9g", specs[d], s, (double)fused.loss[s],
                          (double)ref.loss[s]);
            if (pred && !half)
                ck_assert_msg(!memcmp(fused.pred[s], plain.pred[s], sizeof fused.pred[s]),
                              "%s: step %d: fused predictions differ from unfused", specs[d], s);
        }
        if (!half)
            tu_assert_close(fused.k0, plain.k0, (size_t)IN * 64, 1e-5, 1e-4);
        fprintf(stderr, "%s%s%s: %d dispatches fused (%d fusions), %d unfused; losses agree to %.2g over %d steps\n",
                specs[d], pred == 1 ? "" : pred ? " (prediction of a reshape)" : " (no prediction)",
                half ? " (f16, loss scaling)" : "", fused.dispatches, fused.fused, plain.dispatches, worst,
                STEPS);
        /* the loss and the prediction join the loss's gradient, the 3 bias
         * gradients are summed by their updates (every backend); where
         * the GEMM has epilogues, 3 matmuls take their bias (and relu) and
         * 2 in the backward pass a relu gradient */
        ck_assert_int_ge(fused.fused, (pred == 1 ? 2 : 1) + 3);
        ck_assert_int_le(fused.fused, 3 + (pred == 1 ? 2 : 1) + 2 + 3);
        ck_assert_int_lt(fused.dispatches, plain.dispatches);
        if ((!strncmp(specs[d], "vulkan", 6) || !strncmp(specs[d], "opencl", 6)) && !half)
            ck_assert_int_le(fused.dispatches, 12);
    }
    loom_ctx_destroy(ctx);
}

START_TEST(train_step_matches_unfused)
{
    train_step(1, 0);
}
END_TEST

START_TEST(train_step_without_prediction)
{
    train_step(0, 0);
}
END_TEST

/* Mixed precision: f16 layers, f32 loss, dynamic loss scaling (the loss
 * scale's value sits between the loss and its gradient in the node order,
 * which once left the planner placing every later tensor at offset 0). */
START_TEST(train_step_f16_loss_scaled)
{
    train_step(1, 1);
}
END_TEST

/* The loss computed by its gradient's kernel (node.by) starts at that
 * kernel, after the reshape and the argmax between them: the planner
 * takes the tensors in order of first step (they were left unplaced, at
 * offset 0 over the inputs: the fused step wrote past its arena). */
START_TEST(train_step_loss_fused_over_other_nodes)
{
    train_step(2, 0);
}
END_TEST

/* ---- groups of updates ------------------------------------------------------------ */

static const int64_t sizes[] = {1, 7, 33, 1000, 4097, 8, 255, 2049};
#define NP ((int)(sizeof sizes / sizeof sizes[0]))

/* loss = sum_i sum(w_i^2 * c_i) over parameters of ragged sizes, one bias
 * among them whose gradient is a column sum ([4, 255] -> [255]). */
static loom_graph *many_params(loom_ctx *ctx, const loom_optimizer *o)
{
    loom_graph *g = NULL;
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    loom_tensor total = LOOM_NONE;
    for (int i = 0; i < NP; i++) {
        char name[16];
        snprintf(name, sizeof name, "w%d", i);
        loom_tensor w = loom_param(g, name, LOOM_F32, 1, &sizes[i], 1);
        loom_tensor t;
        if (sizes[i] == 255) {
            int64_t xs[2] = {4, 255};
            /* a bias: [4, 255] + w, the sum's gradient reduces over rows */
            loom_tensor x = loom_input(g, "x", LOOM_F32, 2, xs);
            t = loom_sum_all(g, loom_square(g, loom_add(g, x, w)));
        } else {
            t = loom_sum_all(g, loom_scale(g, loom_square(g, w), 0.5f + (float)i));
        }
        total = i ? loom_add(g, total, t) : t;
    }
    ck_assert_int_eq(loom_output(g, total, "loss"), LOOM_OK);
    ck_assert_int_eq(loom_backward(g, total, NULL, 0), LOOM_OK);
    ck_assert_int_eq(loom_optimize(g, o), LOOM_OK);
    return g;
}

static float *run_group(loom_ctx *ctx, const char *spec, const loom_optimizer *o, int fusion, int *dispatches)
{
    loom_device *dev = tu_open(ctx, spec);
    loom_state *st = NULL;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    loom_graph *g = many_params(ctx, o);
    loom_compile_opts co = {.no_fusion = !fusion};
    loom_program *p = NULL;
    ck_assert_msg(loom_compile(g, dev, st, &co, &p) == LOOM_OK, "%s: %s", spec, loom_last_error(ctx));
    size_t total = 0;
    for (int i = 0; i < NP; i++)
        total += (size_t)sizes[i];
    float *w = malloc(total * sizeof *w), *x = malloc(4 * 255 * sizeof *x);
    size_t at = 0;
    for (int i = 0; i < NP; i++) {
        char name[16];
        snprintf(name, sizeof name, "w%d", i);
        tu_fill(w + at, (size_t)sizes[i], 40 + (uint32_t)i, -1, 1);
        ck_assert_int_eq(loom_state_write(st, name, LOOM_F32, 1, &sizes[i], w + at), LOOM_OK);
        at += (size_t)sizes[i];
    }
    tu_fill(x, 4 * 255, 99, -1, 1);
    ck_assert_int_eq(loom_program_set_input(p, "x", x, 4 * 255 * sizeof *x), LOOM_OK);
    for (int s = 0; s < 3; s++)
        ck_assert_msg(loom_program_run(p) == LOOM_OK, "%s: %s", spec, loom_last_error(ctx));
    loom_plan_report r;
    ck_assert_int_eq(loom_program_plan(p, &r), LOOM_OK);
    *dispatches = r.dispatches;
    /* the weights, then (EMA) the averages */
    float *out = malloc(2 * total * sizeof *out);
    at = 0;
    for (int i = 0; i < NP; i++) {
        char name[24];
        snprintf(name, sizeof name, "w%d", i);
        ck_assert_int_eq(loom_state_read(st, name, out + at, (size_t)sizes[i] * 4), LOOM_OK);
        if (o->ema_decay > 0) {
            snprintf(name, sizeof name, "w%d/ema", i);
            ck_assert_int_eq(loom_state_read(st, name, out + total + at, (size_t)sizes[i] * 4), LOOM_OK);
        } else {
            memset(out + total + at, 0, (size_t)sizes[i] * 4);
        }
        at += (size_t)sizes[i];
    }
    ck_assert_msg(loom_validation_errors(ctx) == 0, "%s: validation errors", spec);
    free(w);
    free(x);
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
    return out;
}

static loom_optimizer opt_case(int i)
{
    loom_optimizer o;
    switch (i) {
    case 0:
        o = loom_optimizer_default(LOOM_OPT_ADAM);
        o.lr = 0.01f;
        break;
    case 1:
        o = loom_optimizer_default(LOOM_OPT_ADAMW);
        o.lr = 0.01f;
        o.clip_norm = 1.0f;
        o.l2 = 0.01f;
        o.ema_decay = 0.9f;
        break;
    case 2:
        o = loom_optimizer_default(LOOM_OPT_SGD);
        o.momentum = 0.9f;
        o.nesterov = 1;
        o.l1 = 0.001f;
        break;
    default:
        o = loom_optimizer_default(LOOM_OPT_SGD);
        o.clip_norm = 0.5f;
        break;
    }
    return o;
}

START_TEST(grouped_updates_match)
{
    loom_ctx *ctx = tu_ctx();
    char specs[8][32];
    int nd = tu_devices(ctx, specs, 8);
    loom_optimizer o = opt_case(_i);
    size_t total = 0;
    for (int i = 0; i < NP; i++)
        total += (size_t)sizes[i];
    int dref, dfused, dplain;
    float *ref = run_group(ctx, "cpu", &o, 0, &dref);
    for (int d = 0; d < nd; d++) {
        float *f = run_group(ctx, specs[d], &o, 1, &dfused);
        float *u = run_group(ctx, specs[d], &o, 0, &dplain);
        tu_assert_close(f, u, 2 * total, 1e-6, 1e-5);
        tu_assert_close(f, ref, 2 * total, 1e-5, 1e-4);
        /* a GPU runs the NP updates (and NP EMAs) as one dispatch each */
        if (strcmp(specs[d], "cpu"))
            ck_assert_msg(dplain - dfused >= (NP - 1) * (o.ema_decay > 0 ? 2 : 1),
                          "%s: %d dispatches fused, %d unfused", specs[d], dfused, dplain);
        free(f);
        free(u);
    }
    free(ref);
    loom_ctx_destroy(ctx);
}
END_TEST

/* Parameters whose state outgrows one binding (lavapipe: 128 MiB): the
 * group is split where a window would not reach, and still matches. */
START_TEST(group_split_by_binding)
{
    loom_ctx *ctx = tu_ctx();
    char specs[8][32];
    int nd = tu_devices(ctx, specs, 8);
    enum { NBIG = 5 };
    const int64_t n = 3 * 1024 * 1024; /* 12 MiB, 36 MiB with its moments */
    for (int d = 0; d < nd; d++) {
        loom_device *dev = tu_open(ctx, specs[d]);
        loom_state *st = NULL;
        ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
        loom_graph *g = NULL;
        ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
        loom_tensor total = LOOM_NONE;
        for (int i = 0; i < NBIG; i++) {
            char name[16];
            snprintf(name, sizeof name, "big%d", i);
            loom_tensor t = loom_sum_all(g, loom_square(g, loom_param(g, name, LOOM_F32, 1, &n, 1)));
            total = i ? loom_add(g, total, t) : t;
        }
        ck_assert_int_eq(loom_output(g, total, "loss"), LOOM_OK);
        ck_assert_int_eq(loom_backward(g, total, NULL, 0), LOOM_OK);
        loom_optimizer o = loom_optimizer_default(LOOM_OPT_ADAM);
        o.lr = 0.1f;
        ck_assert_int_eq(loom_optimize(g, &o), LOOM_OK);
        loom_program *p = NULL;
        ck_assert_msg(loom_compile(g, dev, st, NULL, &p) == LOOM_OK, "%s: %s", specs[d], loom_last_error(ctx));
        float *w = malloc((size_t)n * sizeof *w);
        for (int i = 0; i < NBIG; i++) {
            char name[16];
            snprintf(name, sizeof name, "big%d", i);
            for (int64_t k = 0; k < n; k++)
                w[k] = (float)(i + 1) * (k % 2 ? 1.0f : -1.0f);
            ck_assert_int_eq(loom_state_write(st, name, LOOM_F32, 1, &n, w), LOOM_OK);
        }
        ck_assert_msg(loom_program_run(p) == LOOM_OK, "%s: %s", specs[d], loom_last_error(ctx));
        /* Adam's first step moves every weight by lr against its sign */
        for (int i = 0; i < NBIG; i++) {
            char name[16];
            snprintf(name, sizeof name, "big%d", i);
            ck_assert_int_eq(loom_state_read(st, name, w, (size_t)n * sizeof *w), LOOM_OK);
            for (int64_t k = 0; k < n; k += 4099) {
                float want = (float)(i + 1) * (k % 2 ? 1.0f : -1.0f);
                want += want > 0 ? -0.1f : 0.1f;
                ck_assert_msg(fabsf(w[k] - want) <= 1e-5f, "%s: big%d[%lld] = %g, want %g", specs[d], i,
                              (long long)k, (double)w[k], (double)want);
            }
        }
        ck_assert_msg(loom_validation_errors(ctx) == 0, "%s: validation errors", specs[d]);
        free(w);
        loom_program_destroy(p);
        loom_graph_destroy(g);
        loom_state_destroy(st);
        loom_device_close(dev);
    }
    loom_ctx_destroy(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fusion");
    TCase *tc = tcase_create("fusion");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, train_step_matches_unfused);
    tcase_add_test(tc, train_step_without_prediction);
    tcase_add_test(tc, train_step_f16_loss_scaled);
    tcase_add_test(tc, train_step_loss_fused_over_other_nodes);
    tcase_add_loop_test(tc, grouped_updates_match, 0, 4);
    tcase_add_test(tc, group_split_by_binding);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
