/* Optimizer steps against hand-computed updates. loss = sum(w * c), so the
 * gradient of w is exactly c at every step. */
#include "testutil.h"

#include <math.h>
#include <string.h>

enum { N = 3 };
static const float C[N] = {0.5f, -2.0f, 1.5f};
static const float W0[N] = {1.0f, -1.0f, 0.0f};

typedef struct rig {
    loom_ctx *ctx;
    loom_device *dev;
    loom_state *st;
    loom_graph *g;
    loom_program *p;
} rig;

static rig rig_make(const loom_optimizer *opt)
{
    rig r;
    r.ctx = tu_ctx();
    r.dev = tu_open(r.ctx, "cpu");
    ck_assert_int_eq(loom_state_create(r.dev, &r.st), LOOM_OK);
    ck_assert_int_eq(loom_graph_create(r.ctx, &r.g), LOOM_OK);
    int64_t s[1] = {N};
    loom_tensor w = loom_param(r.g, "w", LOOM_F32, 1, s, 1);
    loom_tensor loss = loom_sum_all(r.g, loom_mul(r.g, w, loom_constant(r.g, "c", LOOM_F32, 1, s, C)));
    loom_output(r.g, loss, "loss");
    ck_assert_int_eq(loom_backward(r.g, loss, NULL, 0), LOOM_OK);
    ck_assert_int_eq(loom_optimize(r.g, opt), LOOM_OK);
    ck_assert_int_eq(loom_state_write(r.st, "w", LOOM_F32, 1, s, W0), LOOM_OK);
    ck_assert_msg(loom_compile(r.g, r.dev, r.st, NULL, &r.p) == LOOM_OK, "%s", loom_last_error(r.ctx));
    return r;
}

static void rig_step(rig *r, float *w)
{
    ck_assert_int_eq(loom_program_run(r->p), LOOM_OK);
    ck_assert_int_eq(loom_state_read(r->st, "w", w, N * sizeof *w), LOOM_OK);
}

static void rig_free(rig *r)
{
    loom_program_destroy(r->p);
    loom_graph_destroy(r->g);
    loom_state_destroy(r->st);
    loom_device_close(r->dev);
    loom_ctx_destroy(r->ctx);
}

static void expect(const float *got, const double *want, const char *what, int step)
{
    for (int i = 0; i < N; i++)
        ck_assert_msg(fabs(got[i] - want[i]) <= 1e-6 * (1 + fabs(want[i])), "%s step %d: w[%d] = %.9g, want %.9g",
                      what, step, i, (double)got[i], want[i]);
}

START_TEST(sgd_plain_momentum_nesterov)
{
    for (int variant = 0; variant < 3; variant++) {
        loom_optimizer o = loom_optimizer_default(LOOM_OPT_SGD);
        o.lr = 0.1f;
        o.momentum = variant ? 0.9f : 0.0f;
        o.nesterov = variant == 2;
        rig r = rig_make(&o);
        double w[N], v[N] = {0};
        for (int i = 0; i < N; i++)
            w[i] = W0[i];
        for (int step = 1; step <= 4; step++) {
            for (int i = 0; i < N; i++) {
                if (!variant) {
                    w[i] -= 0.1 * C[i];
                } else {
                    v[i] = 0.9 * v[i] - 0.1 * C[i];
                    w[i] += variant == 2 ? 0.9 * v[i] - 0.1 * C[i] : v[i];
                }
            }
            float got[N];
            rig_step(&r, got);
            expect(got, w, variant == 0 ? "sgd" : variant == 1 ? "momentum" : "nesterov", step);
        }
        ck_assert_int_eq(loom_state_step(r.st), 4);
        rig_free(&r);
    }
}
END_TEST

static void adam_ref(double *w, double *m, double *v, int t, double lr, double wd, const double *g)
{
    const double b1 = 0.9, b2 = 0.999, eps = 1e-7;
    double alpha = lr * sqrt(1 - pow(b2, t)) / (1 - pow(b1, t));
    for (int i = 0; i < N; i++) {
        w[i] -= lr * wd * w[i];
        m[i] += (g[i] - m[i]) * (1 - b1);
        v[i] += (g[i] * g[i] - v[i]) * (1 - b2);
        w[i] -= alpha * m[i] / (sqrt(v[i]) + eps);
    }
}

START_TEST(adam_and_adamw)
{
    for (int kind = LOOM_OPT_ADAM; kind <= LOOM_OPT_ADAMW; kind++) {
        loom_optimizer o = loom_optimizer_default((loom_optimizer_kind)kind);
        ck_assert(o.lr == 0.001f && o.beta1 == 0.9f && o.beta2 == 0.999f && o.eps == 1e-7f);
        rig r = rig_make(&o);
        double w[N], m[N] = {0}, v[N] = {0}, g[N];
        for (int i = 0; i < N; i++)
            w[i] = W0[i], g[i] = C[i];
        for (int t = 1; t <= 5; t++) {
            adam_ref(w, m, v, t, 0.001, kind == LOOM_OPT_ADAMW ? 0.004 : 0.0, g);
            float got[N];
            rig_step(&r, got);
            expect(got, w, kind == LOOM_OPT_ADAM ? "adam" : "adamw", t);
        }
        float mm[N];
        ck_assert_int_eq(loom_state_read(r.st, "w/m", mm, sizeof mm), LOOM_OK);
        ck_assert(fabs(mm[1] - m[1]) < 1e-6);
        rig_free(&r);
    }
}
END_TEST

START_TEST(penalties_and_clipping)
{
    /* L1 + L2 on SGD: g = c + 2 l2 w + l1 sign(w) */
    loom_optimizer o = loom_optimizer_default(LOOM_OPT_SGD);
    o.lr = 0.1f;
    o.l1 = 0.01f;
    o.l2 = 0.05f;
    rig r = rig_make(&o);
    double w[N];
    for (int i = 0; i < N; i++)
        w[i] = W0[i];
    for (int step = 1; step <= 3; step++) {
        for (int i = 0; i < N; i++) {
            double s = w[i] > 0 ? 1 : w[i] < 0 ? -1 : 0;
            w[i] -= 0.1 * (C[i] + 2 * 0.05 * w[i] + 0.01 * s);
        }
        float got[N];
        rig_step(&r, got);
        expect(got, w, "sgd l1+l2", step);
    }
    rig_free(&r);
    /* clipping by global norm: |c| = sqrt(0.25+4+2.25) = 2.5495 -> scale 1/|c| */
    o = loom_optimizer_default(LOOM_OPT_SGD);
    o.lr = 0.1f;
    o.clip_norm = 1.0f;
    r = rig_make(&o);
    double norm = sqrt(0.25 + 4.0 + 2.25);
    for (int i = 0; i < N; i++)
        w[i] = W0[i] - 0.1 * C[i] / norm;
    float got[N];
    rig_step(&r, got);
    expect(got, w, "clip", 1);
    rig_free(&r);
    /* a clip above the norm changes nothing */
    o.clip_norm = 10.0f;
    r = rig_make(&o);
    for (int i = 0; i < N; i++)
        w[i] = W0[i] - 0.1 * C[i];
    rig_step(&r, got);
    expect(got, w, "no clip", 1);
    rig_free(&r);
}
END_TEST

START_TEST(schedules)
{
    loom_optimizer o = loom_optimizer_default(LOOM_OPT_SGD);
    o.lr = 0.1f;
    ck_assert(loom_optimizer_lr(&o, 1) == 0.1f && loom_optimizer_lr(&o, 1000) == 0.1f);
    o.schedule = LOOM_LR_STEP;
    o.step_size = 2;
    o.gamma = 0.5f;
    ck_assert(loom_optimizer_lr(&o, 1) == 0.1f);
    ck_assert(loom_optimizer_lr(&o, 2) == 0.1f);
    ck_assert(fabsf(loom_optimizer_lr(&o, 3) - 0.05f) < 1e-9f);
    ck_assert(fabsf(loom_optimizer_lr(&o, 5) - 0.025f) < 1e-9f);
    /* the program uses the schedule: steps 1,2 at 0.1, step 3 at 0.05 */
    rig r = rig_make(&o);
    double w[N];
    float got[N];
    for (int i = 0; i < N; i++)
        w[i] = W0[i];
    for (int step = 1; step <= 3; step++) {
        double lr = step <= 2 ? 0.1 : 0.05;
        for (int i = 0; i < N; i++)
            w[i] -= lr * C[i];
        rig_step(&r, got);
        expect(got, w, "step schedule", step);
    }
    rig_free(&r);
    loom_optimizer c = loom_optimizer_default(LOOM_OPT_ADAM);
    c.schedule = LOOM_LR_COSINE;
    c.lr = 1.0f;
    c.lr_min = 0.0f;
    c.warmup_steps = 4;
    c.total_steps = 12;
    ck_assert(fabsf(loom_optimizer_lr(&c, 1) - 0.25f) < 1e-7f);
    ck_assert(fabsf(loom_optimizer_lr(&c, 4) - 1.0f) < 1e-7f);
    ck_assert(fabsf(loom_optimizer_lr(&c, 8) - 0.5f) < 1e-6f);  /* half way: cos(pi/2) */
    ck_assert(fabsf(loom_optimizer_lr(&c, 12)) < 1e-6f);
    ck_assert(fabsf(loom_optimizer_lr(&c, 50)) < 1e-6f);
}
END_TEST

START_TEST(ema_of_weights)
{
    loom_optimizer o = loom_optimizer_default(LOOM_OPT_SGD);
    o.lr = 0.1f;
    o.ema_decay = 0.5f;
    rig r = rig_make(&o);
    double w[N], e[N];
    float got[N], ema[N];
    for (int i = 0; i < N; i++)
        w[i] = W0[i];
    for (int step = 1; step <= 3; step++) {
        for (int i = 0; i < N; i++) {
            w[i] -= 0.1 * C[i];
            e[i] = step == 1 ? w[i] : 0.5 * e[i] + 0.5 * w[i];
        }
        rig_step(&r, got);
        ck_assert_int_eq(loom_state_read(r.st, "w/ema", ema, sizeof ema), LOOM_OK);
        expect(ema, e, "ema", step);
    }
    rig_free(&r);
}
END_TEST

START_TEST(bad_optimizer_use)
{
    loom_ctx *ctx = tu_ctx();
    loom_graph *g;
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    loom_optimizer o = loom_optimizer_default(LOOM_OPT_ADAM);
    ck_assert_int_eq(loom_optimize(g, &o), LOOM_E_STATE);
    ck_assert_ptr_nonnull(strstr(loom_graph_error(g), "loom_backward"));
    loom_graph_destroy(g);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t s[1] = {2};
    loom_tensor w = loom_param(g, "w", LOOM_F32, 1, s, 1);
    ck_assert_int_eq(loom_backward(g, loom_sum_all(g, w), NULL, 0), LOOM_OK);
    o.lr = -1;
    ck_assert_int_eq(loom_optimize(g, &o), LOOM_E_INVALID);
    loom_graph_destroy(g);
    loom_ctx_destroy(ctx);
}
END_TEST

/* Dynamic loss scaling on every device: the f16 gradient of 60000 x
 * overflows at the initial scale (65536), so the step is skipped (the
 * parameter, the step count stay), the scale halves; it takes 16 halvings
 * before 60000 x scale fits a half, and then one step is taken with the
 * gradient unscaled exactly. */
START_TEST(loss_scaling_skips_overflow)
{
    loom_ctx *ctx = tu_ctx();
    char specs[8][32];
    int nd = tu_devices(ctx, specs, 8);
    for (int d = 0; d < nd; d++) {
        loom_device *dev = tu_open(ctx, specs[d]);
        loom_state *st;
        loom_graph *g;
        ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
        ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
        int64_t s3[1] = {3};
        loom_tensor p = loom_param(g, "p", LOOM_F32, 1, s3, 1);
        loom_tensor y = loom_scale(g, loom_cast(g, p, LOOM_F16), 60000.0f);
        loom_tensor loss = loom_sum_all(g, loom_cast(g, y, LOOM_F32));
        loom_output(g, loss, "loss");
        ck_assert_int_eq(loom_backward_scaled(g, loss, NULL, 0, NULL), LOOM_OK);
        loom_optimizer o = loom_optimizer_default(LOOM_OPT_SGD);
        o.lr = 1e-6f;
        ck_assert_int_eq(loom_optimize(g, &o), LOOM_OK);
        float p0[3] = {0.5f, 1.0f, -2.0f}, pv[3];
        ck_assert_int_eq(loom_state_write(st, "p", LOOM_F32, 1, s3, p0), LOOM_OK);
        loom_program *prog = NULL;
        ck_assert_msg(loom_compile(g, dev, st, NULL, &prog) == LOOM_OK, "%s: %s", specs[d], loom_last_error(ctx));
        ck_assert_int_eq(loom_program_run(prog), LOOM_OK);
        ck_assert_int_eq(loom_state_step(st), 0);
        ck_assert_int_eq(loom_state_skipped_steps(st), 1);
        ck_assert(loom_state_loss_scale(st) == 32768.0f);
        ck_assert_int_eq(loom_state_read(st, "p", pv, sizeof pv), LOOM_OK);
        for (int i = 0; i < 3; i++)
            ck_assert_msg(pv[i] == p0[i], "%s: a skipped step changed p[%d]: %g", specs[d], i, (double)pv[i]);
        int runs = 1;
        while (loom_state_step(st) == 0 && runs < 40) {
            ck_assert_int_eq(loom_program_run(prog), LOOM_OK);
            runs++;
        }
        ck_assert_int_eq(loom_state_step(st), 1);
        ck_assert_int_eq(loom_state_skipped_steps(st), 16);
        ck_assert(loom_state_loss_scale(st) == 1.0f);
        ck_assert_int_eq(loom_state_read(st, "p", pv, sizeof pv), LOOM_OK);
        for (int i = 0; i < 3; i++)
            ck_assert_msg(fabsf(pv[i] - (p0[i] - 0.06f)) < 1e-6f, "%s: p[%d] = %g after the step, want %g", specs[d],
                          i, (double)pv[i], (double)(p0[i] - 0.06f));
        loom_program_destroy(prog);
        loom_graph_destroy(g);
        loom_state_destroy(st);
        loom_device_close(dev);
    }
    loom_ctx_destroy(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("optim");
    tcase_add_test(tc, sgd_plain_momentum_nesterov);
    tcase_add_test(tc, adam_and_adamw);
    tcase_add_test(tc, penalties_and_clipping);
    tcase_add_test(tc, schedules);
    tcase_add_test(tc, ema_of_weights);
    tcase_add_test(tc, bad_optimizer_use);
    tcase_add_test(tc, loss_scaling_skips_overflow);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
