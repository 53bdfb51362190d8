/* Pruning, distillation and half-precision export (src/nn/prune*.c,
 * distill.c): the schedule against TF-MOT's formula, masks that keep their
 * zeros through Adam steps on every backend, structured pruning's shapes
 * and a forward pass that does not change when the channels it removes
 * were zero, 2:4 masks, the distillation loss and its gradient against a
 * hand computation and finite differences, half-precision files on every
 * device, corrupt files refused. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MLP_JSON                                                                                                  \
    "{\"input\": 24, \"layers\": [{\"type\": \"dense\", \"units\": 16, \"activation\": \"relu\"},"               \
    " {\"type\": \"dense\", \"units\": 10, \"activation\": \"softmax\"}]}"

static loom_sequential *model(loom_ctx *ctx, loom_device *dev, const char *json, int64_t batch, uint64_t seed)
{
    loom_sequential *m;
    ck_assert_msg(loom_sequential_from_json(ctx, json, "test", &m) == LOOM_OK, "%s", loom_last_error(ctx));
    loom_model_config c = loom_model_config_default();
    c.batch = batch;
    c.seed = seed;
    ck_assert_msg(loom_sequential_compile(m, dev, &c) == LOOM_OK, "%s", loom_last_error(ctx));
    return m;
}

/* n rows of f inputs whose class (i % 10) shifts a band of them, scaled. */
static loom_dataset *data(loom_ctx *ctx, int64_t n, int64_t f, uint32_t seed)
{
    float *x = malloc((size_t)(n * f) * sizeof *x);
    int32_t *y = malloc((size_t)n * sizeof *y);
    tu_fill(x, (size_t)(n * f), seed, 0, 1);
    for (int64_t i = 0; i < n; i++) {
        y[i] = (int32_t)(i % 10);
        for (int64_t k = 0; k < f; k++)
            if (k * 10 / f == y[i])
                x[i * f + k] += 1.0f;
    }
    loom_dataset *ds;
    ck_assert(loom_dataset_create(ctx, n, f, x, 1, y, &ds) == LOOM_OK);
    free(x);
    free(y);
    float st[2] = {0, 1};
    ck_assert(loom_dataset_scale(ds, LOOM_SCALE_STANDARD, st, NULL) == LOOM_OK);
    return ds;
}

static float *read_param(loom_sequential *m, const char *name, int64_t *count)
{
    loom_state *st = loom_sequential_state(m);
    for (int i = 0; i < loom_state_count(st); i++) {
        const char *nm;
        loom_dtype dt;
        int nd;
        int64_t sh[LOOM_MAX_DIMS], n = 1;
        loom_state_entry(st, i, &nm, &dt, &nd, sh);
        if (strcmp(nm, name))
            continue;
        for (int d = 0; d < nd; d++)
            n *= sh[d];
        float *w = malloc((size_t)n * sizeof *w);
        ck_assert(loom_state_read(st, name, w, (size_t)n * sizeof *w) == LOOM_OK);
        *count = n;
        return w;
    }
    ck_abort_msg("no state tensor %s", name);
    return NULL;
}

static int64_t zeros(const float *w, int64_t n)
{
    int64_t z = 0;
    for (int64_t i = 0; i < n; i++)
        z += w[i] == 0.0f;
    return z;
}

/* ---- the schedule ------------------------------------------------------------------ */

START_TEST(schedule_formula)
{
    loom_prune_schedule s = loom_prune_schedule_default();
    s.initial_sparsity = 0.2f;
    s.final_sparsity = 0.8f;
    s.begin_step = 100;
    s.end_step = 300;
    s.frequency = 50;
    /* TF-MOT PolynomialDecay: final + (initial - final) (1 - p)^3 */
    for (int64_t t = 0; t <= 400; t += 10) {
        double p = (double)(t - 100) / 200.0;
        p = p < 0 ? 0 : p > 1 ? 1 : p;
        double want = 0.8 + (0.2 - 0.8) * pow(1 - p, 3);
        ck_assert_msg(fabs(loom_prune_sparsity_at(&s, t) - want) < 1e-6, "step %lld: %g, want %g", (long long)t,
                      (double)loom_prune_sparsity_at(&s, t), want);
    }
    ck_assert(fabs(loom_prune_sparsity_at(&s, 200) - (0.8 - 0.6 * 0.125)) < 1e-6);
    int due[] = {100, 150, 200, 250, 300};
    int k = 0;
    for (int64_t t = 0; t <= 400; t++)
        if (loom_prune_due(&s, t)) {
            ck_assert_msg(k < 5 && t == due[k], "pruned at step %lld", (long long)t);
            k++;
        }
    ck_assert_int_eq(k, 5);
    /* a schedule out of range is refused with what is wrong */
    loom_ctx *ctx = tu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_sequential *m = model(ctx, dev, MLP_JSON, 8, 1);
    s.end_step = 50;
    ck_assert_int_eq(loom_sequential_set_pruning(m, &s), LOOM_E_INVALID);
    ck_assert_msg(strstr(loom_last_error(ctx), "steps 100 to 50"), "%s", loom_last_error(ctx));
    s.end_step = 300;
    s.final_sparsity = 1.0f;
    ck_assert_int_eq(loom_sequential_set_pruning(m, &s), LOOM_E_INVALID);
    loom_sequential_destroy(m);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- magnitude pruning while fine-tuning, every backend ---------------------------- */

typedef struct run_result {
    float *k0, *k1, *m0;
    int64_t n0, n1;
} run_result;

static void prune_fit(loom_ctx *ctx, const char *spec, run_result *r)
{
    loom_device *dev = tu_open(ctx, spec);
    loom_sequential *m = model(ctx, dev, MLP_JSON, 16, 7);
    loom_dataset *ds = data(ctx, 64, 24, 3);
    loom_prune_schedule s = loom_prune_schedule_default();
    s.final_sparsity = 0.75f;
    s.begin_step = 0;
    s.end_step = 4;
    s.frequency = 2;
    ck_assert_msg(loom_sequential_set_pruning(m, &s) == LOOM_OK, "%s", loom_last_error(ctx));
    loom_fit_config fc = loom_fit_config_default();
    fc.epochs = 3; /* 12 Adam steps: the masks change at 0, 2 and 4, then hold */
    fc.shuffle = 0;
    ck_assert_msg(loom_sequential_fit(m, ds, &fc, NULL) == LOOM_OK, "%s: %s", spec, loom_last_error(ctx));
    r->k0 = read_param(m, "dense0/kernel", &r->n0);
    r->k1 = read_param(m, "dense1/kernel", &r->n1);
    int64_t nm;
    r->m0 = read_param(m, "dense0/kernel/mask", &nm);
    /* per layer: exactly floor(0.75 n) zeros, where the mask is 0 */
    ck_assert_int_eq(zeros(r->k0, r->n0), (int64_t)(0.75 * (double)r->n0));
    ck_assert_int_eq(zeros(r->k1, r->n1), (int64_t)(0.75 * (double)r->n1));
    for (int64_t i = 0; i < r->n0; i++)
        ck_assert_msg((r->m0[i] == 0.0f) == (r->k0[i] == 0.0f), "%s: weight %lld is %g under mask %g", spec,
                      (long long)i, (double)r->k0[i], (double)r->m0[i]);
    double sp;
    int64_t nw;
    ck_assert(loom_sequential_sparsity(m, &sp, &nw) == LOOM_OK);
    ck_assert_int_eq(nw, r->n0 + r->n1);
    /* a model file holds the pruned weights, not the masks */
    char path[64];
    snprintf(path, sizeof path, "/tmp/loom_prune_%d.safetensors", (int)getpid());
    ck_assert(loom_sequential_save(m, path) == LOOM_OK);
    loom_sequential *back;
    ck_assert_msg(loom_sequential_load(ctx, path, dev, NULL, &back) == LOOM_OK, "%s", loom_last_error(ctx));
    double sp2;
    ck_assert(loom_sequential_sparsity(back, &sp2, NULL) == LOOM_OK);
    ck_assert(sp2 == sp);
    /* so does a checkpoint, which loads (masks are the set-up's, not the model's) */
    loom_sequential_destroy(back);
    ck_assert(loom_sequential_checkpoint(m, path) == LOOM_OK);
    ck_assert_msg(loom_sequential_load(ctx, path, dev, NULL, &back) == LOOM_OK, "%s", loom_last_error(ctx));
    unlink(path);
    loom_sequential_destroy(back);
    loom_dataset_destroy(ds);
    loom_sequential_destroy(m);
    loom_device_close(dev);
}

START_TEST(masks_hold_through_adam_every_backend)
{
    loom_ctx *ctx = tu_ctx();
    char specs[8][32];
    int n = tu_devices(ctx, specs, 8);
    run_result ref;
    prune_fit(ctx, "cpu", &ref);
    for (int d = 0; d < n; d++) {
        if (!strcmp(specs[d], "cpu"))
            continue;
        run_result r;
        prune_fit(ctx, specs[d], &r);
        /* the same masks and, within rounding, the same weights as the CPU's */
        for (int64_t i = 0; i < r.n0; i++)
            ck_assert_msg(r.m0[i] == ref.m0[i], "%s: mask %lld differs from the CPU's", specs[d], (long long)i);
        tu_assert_close(r.k0, ref.k0, (size_t)r.n0, 1e-4, 1e-3);
        tu_assert_close(r.k1, ref.k1, (size_t)r.n1, 1e-4, 1e-3);
        free(r.k0), free(r.k1), free(r.m0);
    }
    free(ref.k0), free(ref.k1), free(ref.m0);
    loom_ctx_destroy(ctx);
}
END_TEST

/* The op itself refuses what it cannot do. */
START_TEST(mask_update_refuses_bad_operands)
{
    loom_ctx *ctx = tu_ctx();
    loom_graph *g;
    ck_assert(loom_graph_create(ctx, &g) == LOOM_OK);
    int64_t s[2] = {3, 4}, t[2] = {4, 3};
    loom_tensor p = loom_param(g, "w", LOOM_F32, 2, s, 1);
    loom_tensor m = loom_param(g, "w/mask", LOOM_F32, 2, t, 0);
    ck_assert_int_eq(loom_mask_update(g, p, m), LOOM_E_SHAPE);
    ck_assert_msg(strstr(loom_graph_error(g), "mask \"w/mask\" [4,3]") && strstr(loom_graph_error(g), "[3,4]"),
                  "%s", loom_graph_error(g));
    loom_graph_destroy(g);
    ck_assert(loom_graph_create(ctx, &g) == LOOM_OK);
    loom_tensor x = loom_input(g, "x", LOOM_F32, 2, s);
    ck_assert_int_eq(loom_mask_update(g, x, loom_param(g, "x/mask", LOOM_F32, 2, s, 0)), LOOM_E_INVALID);
    ck_assert_msg(strstr(loom_graph_error(g), "must be an f32 parameter"), "%s", loom_graph_error(g));
    loom_graph_destroy(g);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- 2:4 ---------------------------------------------------------------------------------- */

#define CONV_JSON                                                                                                 \
    "{\"input\": [1, 8, 8], \"layers\": [{\"type\": \"conv2d\", \"filters\": 8, \"kernel\": [3, 3], \"padding\": " \
    "\"same\", \"activation\": \"relu\"}, {\"type\": \"max_pool2d\", \"pool\": [2, 2]}, {\"type\": \"flatten\"},"   \
    " {\"type\": \"dense\", \"units\": 16, \"activation\": \"relu\"}, {\"type\": \"dense\", \"units\": 10, "       \
    "\"activation\": \"softmax\"}]}"

START_TEST(pattern_2_4)
{
    loom_ctx *ctx = tu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_sequential *m = model(ctx, dev, CONV_JSON, 4, 3);
    ck_assert_int_eq(loom_sequential_is_2_4(m), 0);
    int64_t nc, nd;
    float *c0 = read_param(m, "conv0/kernel", &nc), *d0 = read_param(m, "dense0/kernel", &nd);
    ck_assert(loom_sequential_prune(m, 0.5f, LOOM_PRUNE_LAYER, LOOM_PRUNE_2_4) == LOOM_OK);
    ck_assert_int_eq(loom_sequential_is_2_4(m), 1);
    int64_t n;
    float *c1 = read_param(m, "conv0/kernel", &n), *d1 = read_param(m, "dense0/kernel", &n);
    /* conv0 [8, 1, 3, 3]: each filter's 9 inputs are 2 groups of 4 and a tail that stays */
    for (int o = 0; o < 8; o++) {
        for (int g = 0; g < 2; g++) {
            const float *a = c0 + o * 9 + g * 4, *b = c1 + o * 9 + g * 4;
            int z = 0;
            for (int q = 0; q < 4; q++) {
                z += b[q] == 0.0f;
                if (b[q] == 0.0f) /* a zero's magnitude is below the two kept */
                    for (int r = 0; r < 4; r++)
                        ck_assert(b[r] == 0.0f || fabsf(a[q]) <= fabsf(a[r]));
                else
                    ck_assert(b[q] == a[q]);
            }
            ck_assert_int_eq(z, 2);
        }
        ck_assert(c1[o * 9 + 8] == c0[o * 9 + 8]);
    }
    /* dense0 [128, 16]: groups of 4 consecutive inputs (rows) per unit */
    for (int u = 0; u < 16; u++)
        for (int g = 0; g < 128; g += 4) {
            int z = 0;
            for (int q = 0; q < 4; q++)
                z += d1[(g + q) * 16 + u] == 0.0f;
            ck_assert_int_eq(z, 2);
        }
    (void)nd;
    free(c0), free(c1), free(d0), free(d1);
    loom_sequential_destroy(m);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- structured pruning ---------------------------------------------------------------- */

static void write_param(loom_sequential *m, const char *name, const float *w, int nd, const int64_t *shape)
{
    ck_assert(loom_state_write(loom_sequential_state(m), name, LOOM_F32, nd, shape, w) == LOOM_OK);
}

START_TEST(structured_shapes_and_equivalence)
{
    loom_ctx *ctx = tu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_sequential *m = model(ctx, dev, CONV_JSON, 4, 5);
    /* the odd filters and the even units are zero: pruning half of each
     * by L1 removes exactly them, and the outputs do not move */
    int64_t nk, nb, nd, ndb;
    float *ck = read_param(m, "conv0/kernel", &nk), *cb = read_param(m, "conv0/bias", &nb);
    float *dk = read_param(m, "dense0/kernel", &nd), *db = read_param(m, "dense0/bias", &ndb);
    for (int o = 1; o < 8; o += 2) {
        memset(ck + o * 9, 0, 9 * sizeof *ck);
        cb[o] = 0;
    }
    for (int i = 0; i < 8; i++) cb[i] += i % 2 ? 0.0f : 0.1f;
    for (int r = 0; r < 128; r++)
        for (int u = 0; u < 16; u += 2)
            dk[r * 16 + u] = 0;
    int64_t s4[4] = {8, 1, 3, 3}, s1[1] = {8}, s2[2] = {128, 16}, s16[1] = {16};
    write_param(m, "conv0/kernel", ck, 4, s4);
    write_param(m, "conv0/bias", cb, 1, s1);
    write_param(m, "dense0/kernel", dk, 2, s2);
    write_param(m, "dense0/bias", db, 1, s16);
    float x[3 * 64], y0[30], y1[30];
    tu_fill(x, 3 * 64, 9, -1, 1);
    ck_assert(loom_sequential_predict(m, x, 3, y0) == LOOM_OK);
    loom_sequential *p;
    ck_assert_msg(loom_sequential_prune_structured(m, 0.5f, 1, &p) == LOOM_OK, "%s", loom_last_error(ctx));
    loom_state *st = loom_sequential_state(p);
    const char *names[4] = {"conv0/kernel", "conv0/bias", "dense0/kernel", "dense1/kernel"};
    int64_t want[4][4] = {{4, 1, 3, 3}, {4}, {64, 8}, {8, 10}};
    int wnd[4] = {4, 1, 2, 2};
    for (int k = 0; k < 4; k++) {
        int found = 0;
        for (int i = 0; i < loom_state_count(st); i++) {
            const char *nm;
            loom_dtype dt;
            int ndim;
            int64_t sh[4];
            loom_state_entry(st, i, &nm, &dt, &ndim, sh);
            if (strcmp(nm, names[k]))
                continue;
            found = 1;
            ck_assert_int_eq(ndim, wnd[k]);
            for (int d = 0; d < ndim; d++)
                ck_assert_msg(sh[d] == want[k][d], "%s dim %d: %lld", nm, d, (long long)sh[d]);
        }
        ck_assert_msg(found, "%s missing", names[k]);
    }
    ck_assert(loom_sequential_predict(p, x, 3, y1) == LOOM_OK);
    tu_assert_close(y1, y0, 30, 1e-6, 1e-5);
    /* the pruned model's file is smaller */
    char a[64], b[64];
    snprintf(a, sizeof a, "/tmp/loom_sp_a_%d.safetensors", (int)getpid());
    snprintf(b, sizeof b, "/tmp/loom_sp_b_%d.safetensors", (int)getpid());
    ck_assert(loom_sequential_save(m, a) == LOOM_OK && loom_sequential_save(p, b) == LOOM_OK);
    struct stat sa, sb;
    ck_assert(stat(a, &sa) == 0 && stat(b, &sb) == 0);
    ck_assert_msg(sb.st_size < sa.st_size * 6 / 10, "%lld vs %lld bytes", (long long)sb.st_size,
                  (long long)sa.st_size);
    unlink(a), unlink(b);
    free(ck), free(cb), free(dk), free(db);
    loom_sequential_destroy(p);
    loom_sequential_destroy(m);
    /* batch norm between: its channels go with the filters */
    m = model(ctx, dev,
              "{\"input\": [1, 8, 8], \"layers\": [{\"type\": \"conv2d\", \"filters\": 6, \"kernel\": [3, 3]},"
              " {\"type\": \"batch_norm\"}, {\"type\": \"global_avg_pool2d\"}, {\"type\": \"dense\", \"units\": 10,"
              " \"activation\": \"softmax\"}]}",
              4, 5);
    ck_assert(loom_sequential_prune_structured(m, 0.5f, 2, &p) == LOOM_OK);
    int64_t n;
    free(read_param(p, "bn0/gamma", &n));
    ck_assert_int_eq(n, 3);
    free(read_param(p, "bn0/running", &n));
    ck_assert_int_eq(n, 6);
    free(read_param(p, "dense0/kernel", &n));
    ck_assert_int_eq(n, 30);
    loom_sequential_destroy(p);
    /* nothing to prune: the last dense layer keeps its classes */
    loom_sequential_destroy(m);
    m = model(ctx, dev, "{\"input\": 8, \"layers\": [{\"type\": \"dense\", \"units\": 10}]}", 4, 5);
    ck_assert_int_eq(loom_sequential_prune_structured(m, 0.5f, 1, &p), LOOM_E_INVALID);
    ck_assert(p == NULL);
    loom_sequential_destroy(m);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- distillation ------------------------------------------------------------------------ */

START_TEST(distillation_loss_and_gradient)
{
    loom_ctx *ctx = tu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    enum { N = 3, C = 5 };
    const float T = 2.5f, alpha = 0.7f;
    float s[N * C], t[N * C];
    int32_t y[N] = {1, 4, 0};
    tu_fill(s, N * C, 1, -2, 2);
    tu_fill(t, N * C, 2, -3, 3);
    loom_graph *g;
    ck_assert(loom_graph_create(ctx, &g) == LOOM_OK);
    int64_t sh[2] = {N, C}, ls[1] = {N};
    loom_tensor xs = loom_input(g, "s", LOOM_F32, 2, sh), xt = loom_input(g, "t", LOOM_F32, 2, sh);
    loom_tensor lab = loom_input(g, "y", LOOM_I32, 1, ls);
    loom_tensor loss = loom_distillation_loss(g, xs, xt, lab, T, alpha);
    loom_output(g, loss, "loss");
    ck_assert(loom_backward(g, loss, &xs, 1) == LOOM_OK);
    loom_output(g, loom_grad(g, xs), "ds");
    loom_state *st;
    ck_assert(loom_state_create(dev, &st) == LOOM_OK);
    const char *names[3] = {"s", "t", "y"};
    const void *vals[3] = {s, t, y};
    size_t bytes[3] = {sizeof s, sizeof t, sizeof y};
    loom_program *p = tu_compile_run(g, dev, st, 3, names, vals, bytes);
    float got, ds[N * C];
    ck_assert(loom_program_read(p, "loss", &got, sizeof got) == LOOM_OK);
    ck_assert(loom_program_read(p, "ds", ds, sizeof ds) == LOOM_OK);
    /* by hand, in double: alpha T^2 KL(pt || ps) + (1 - alpha) CE(s, y),
     * d/ds = alpha T (ps - pt) / N + (1 - alpha) (softmax(s) - onehot) / N */
    double want = 0, dwant[N * C];
    for (int n = 0; n < N; n++) {
        double ms = -1e30, mt = -1e30, m1 = -1e30, zs = 0, zt = 0, z1 = 0;
        for (int c = 0; c < C; c++) {
            ms = fmax(ms, s[n * C + c] / T), mt = fmax(mt, t[n * C + c] / T), m1 = fmax(m1, s[n * C + c]);
        }
        for (int c = 0; c < C; c++) {
            zs += exp(s[n * C + c] / T - ms), zt += exp(t[n * C + c] / T - mt), z1 += exp(s[n * C + c] - m1);
        }
        for (int c = 0; c < C; c++) {
            double ps = exp(s[n * C + c] / T - ms) / zs, pt = exp(t[n * C + c] / T - mt) / zt;
            double p1 = exp(s[n * C + c] - m1) / z1;
            want += alpha * T * T * pt * (log(pt) - log(ps)) / N;
            dwant[n * C + c] = (alpha * T * (ps - pt) + (1 - alpha) * (p1 - (c == y[n]))) / N;
        }
        want += (1 - alpha) * -log(exp(s[n * C + y[n]] - m1) / z1) / N;
    }
    ck_assert_msg(fabs(got - want) < 1e-5 * (1 + fabs(want)), "loss %g, by hand %g", (double)got, want);
    float dw[N * C];
    for (int i = 0; i < N * C; i++)
        dw[i] = (float)dwant[i];
    tu_assert_close(ds, dw, N * C, 1e-6, 1e-4);
    /* finite differences of the program's own loss */
    for (int i = 0; i < N * C; i += 2) {
        float sp[N * C], sm[N * C], lp, lm;
        const float h = 1e-2f;
        memcpy(sp, s, sizeof s), memcpy(sm, s, sizeof s);
        sp[i] += h, sm[i] -= h;
        ck_assert(loom_program_set_input(p, "s", sp, sizeof sp) == LOOM_OK && loom_program_run(p) == LOOM_OK);
        ck_assert(loom_program_read(p, "loss", &lp, sizeof lp) == LOOM_OK);
        ck_assert(loom_program_set_input(p, "s", sm, sizeof sm) == LOOM_OK && loom_program_run(p) == LOOM_OK);
        ck_assert(loom_program_read(p, "loss", &lm, sizeof lm) == LOOM_OK);
        double fd = (lp - lm) / (2.0 * h);
        ck_assert_msg(fabs(fd - ds[i]) < 2e-3 + 1e-2 * fabs(ds[i]), "element %d: fd %g, gradient %g", i, fd,
                      (double)ds[i]);
    }
    /* when the student agrees with the teacher the KL is 0 */
    ck_assert(loom_program_set_input(p, "s", t, sizeof t) == LOOM_OK && loom_program_run(p) == LOOM_OK);
    ck_assert(loom_program_read(p, "loss", &got, sizeof got) == LOOM_OK);
    double ce = 0;
    for (int n = 0; n < N; n++) {
        double m1 = -1e30, z1 = 0;
        for (int c = 0; c < C; c++)
            m1 = fmax(m1, t[n * C + c]);
        for (int c = 0; c < C; c++)
            z1 += exp(t[n * C + c] - m1);
        ce += -(t[n * C + y[n]] - m1 - log(z1)) / N;
    }
    ck_assert_msg(fabs(got - (1 - alpha) * ce) < 1e-5, "loss %g, want %g", (double)got, (1 - alpha) * ce);
    loom_program_destroy(p);
    loom_graph_destroy(g);
    /* bad arguments name themselves */
    ck_assert(loom_graph_create(ctx, &g) == LOOM_OK);
    xs = loom_input(g, "s", LOOM_F32, 2, sh);
    lab = loom_input(g, "y", LOOM_I32, 1, ls);
    ck_assert(loom_distillation_loss(g, xs, xs, lab, 0.0f, 0.5f).id == 0);
    ck_assert_msg(strstr(loom_graph_error(g), "temperature 0"), "%s", loom_graph_error(g));
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

START_TEST(student_trains_against_frozen_teacher)
{
    loom_ctx *ctx = tu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_dataset *ds = data(ctx, 64, 24, 4);
    loom_sequential *t = model(ctx, dev, MLP_JSON, 16, 1);
    loom_fit_config fc = loom_fit_config_default();
    fc.epochs = 2;
    ck_assert(loom_sequential_fit(t, ds, &fc, NULL) == LOOM_OK);
    loom_sequential *s = model(ctx, dev,
                               "{\"input\": 24, \"layers\": [{\"type\": \"dense\", \"units\": 8, \"activation\": "
                               "\"relu\"}, {\"type\": \"dense\", \"units\": 10, \"activation\": \"softmax\"}]}",
                               16, 1);
    ck_assert_msg(loom_sequential_set_teacher(s, t, 3.0f, 0.8f) == LOOM_OK, "%s", loom_last_error(ctx));
    int64_t n;
    float *before = read_param(t, "dense0/kernel", &n), *s0 = read_param(s, "dense0/kernel", &n);
    loom_sequential_destroy(t); /* the student keeps what it needs */
    loom_fit_stats last;
    ck_assert_msg(loom_sequential_fit(s, ds, &fc, &last) == LOOM_OK, "%s", loom_last_error(ctx));
    ck_assert(isfinite(last.loss) && last.loss > 0);
    float *after = read_param(s, "teacher/dense0/kernel", &n), *s1 = read_param(s, "dense0/kernel", &n);
    /* the teacher is frozen, the student learns */
    ck_assert(memcmp(before, after, (size_t)n * sizeof *before) == 0);
    ck_assert(memcmp(s0, s1, 24 * 8 * sizeof *s0) != 0);
    /* the student's file carries no teacher and loads as a plain model */
    char path[64];
    snprintf(path, sizeof path, "/tmp/loom_distill_%d.safetensors", (int)getpid());
    ck_assert(loom_sequential_save(s, path) == LOOM_OK);
    loom_sequential *back;
    ck_assert_msg(loom_sequential_load(ctx, path, dev, NULL, &back) == LOOM_OK, "%s", loom_last_error(ctx));
    loom_tensor_file *f;
    ck_assert(loom_safetensors_open(ctx, path, &f) == LOOM_OK);
    ck_assert_int_eq(loom_safetensors_count(f), 4);
    loom_safetensors_close(f);
    loom_sequential_destroy(back);
    ck_assert(loom_sequential_checkpoint(s, path) == LOOM_OK);
    ck_assert_msg(loom_sequential_load(ctx, path, dev, NULL, &back) == LOOM_OK, "%s", loom_last_error(ctx));
    unlink(path);
    /* a teacher of other classes is refused */
    loom_sequential *odd = model(ctx, dev, "{\"input\": 24, \"layers\": [{\"type\": \"dense\", \"units\": 7}]}", 16, 1);
    ck_assert_int_eq(loom_sequential_set_teacher(back, odd, 2.0f, 0.5f), LOOM_E_SHAPE);
    ck_assert_msg(strstr(loom_last_error(ctx), "gives 7 classes"), "%s", loom_last_error(ctx));
    ck_assert_int_eq(loom_sequential_set_teacher(s, NULL, 0, 0), LOOM_OK);
    free(before), free(after), free(s0), free(s1);
    loom_sequential_destroy(odd);
    loom_sequential_destroy(back);
    loom_sequential_destroy(s);
    loom_dataset_destroy(ds);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- half-precision files and corrupt files --------------------------------------------- */

START_TEST(half_files_on_every_device)
{
    loom_ctx *ctx = tu_ctx();
    loom_device *cpu = tu_open(ctx, "cpu");
    loom_sequential *m = model(ctx, cpu, CONV_JSON, 4, 11);
    loom_dataset *ds = data(ctx, 32, 64, 5);
    float st[2] = {0, 1};
    ck_assert(loom_sequential_set_preprocess(m, LOOM_SCALE_STANDARD, st) == LOOM_OK);
    float x[4 * 64], y0[40], y1[40];
    tu_fill(x, 4 * 64, 3, -1, 1);
    ck_assert(loom_sequential_predict(m, x, 4, y0) == LOOM_OK);
    char specs[8][32];
    int nd = tu_devices(ctx, specs, 8);
    loom_dtype dts[2] = {LOOM_F16, LOOM_BF16};
    char path[64], f32[64];
    snprintf(f32, sizeof f32, "/tmp/loom_h32_%d.safetensors", (int)getpid());
    ck_assert(loom_sequential_save(m, f32) == LOOM_OK);
    struct stat s32, sh;
    ck_assert(stat(f32, &s32) == 0);
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "/tmp/loom_h%d_%d.safetensors", k, (int)getpid());
        ck_assert(loom_sequential_save_as(m, path, dts[k]) == LOOM_OK);
        ck_assert(stat(path, &sh) == 0);
        ck_assert_msg(sh.st_size < s32.st_size * 6 / 10, "%lld vs %lld bytes", (long long)sh.st_size,
                      (long long)s32.st_size);
        for (int d = 0; d < nd; d++) {
            loom_device *dev = tu_open(ctx, specs[d]);
            loom_sequential *h;
            ck_assert_msg(loom_sequential_load(ctx, path, dev, NULL, &h) == LOOM_OK, "%s: %s", specs[d],
                          loom_last_error(ctx));
            ck_assert(loom_sequential_predict(h, x, 4, y1) == LOOM_OK);
            /* the weights rounded to 11 (f16) or 8 (bf16) bits */
            tu_assert_close(y1, y0, 40, k ? 2e-2 : 3e-3, k ? 5e-2 : 1e-2);
            loom_eval_result r;
            memset(&r, 0, sizeof r);
            ck_assert_msg(loom_sequential_evaluate(h, ds, 0, &r) == LOOM_OK, "%s", loom_last_error(ctx));
            ck_assert_int_eq(r.count, 32);
            loom_eval_result_free(&r);
            loom_sequential_destroy(h);
            loom_device_close(dev);
        }
        /* a file cut short or with a broken header is refused, not run */
        FILE *fp = fopen(path, "rb");
        size_t n = (size_t)sh.st_size;
        unsigned char *buf = malloc(n);
        ck_assert(fp && fread(buf, 1, n, fp) == n);
        fclose(fp);
        fp = fopen(path, "wb");
        fwrite(buf, 1, n - 100, fp);
        fclose(fp);
        loom_sequential *bad = NULL;
        ck_assert_int_eq(loom_sequential_load(ctx, path, cpu, NULL, &bad), LOOM_E_FORMAT);
        ck_assert(bad == NULL);
        ck_assert_msg(strstr(loom_last_error(ctx), path), "%s", loom_last_error(ctx));
        buf[12] ^= 0x55;
        fp = fopen(path, "wb");
        fwrite(buf, 1, n, fp);
        fclose(fp);
        ck_assert_int_eq(loom_sequential_load(ctx, path, cpu, NULL, &bad), LOOM_E_FORMAT);
        free(buf);
        unlink(path);
    }
    ck_assert_int_eq(loom_sequential_save_as(m, f32, LOOM_I32), LOOM_E_DTYPE);
    unlink(f32);
    loom_dataset_destroy(ds);
    loom_sequential_destroy(m);
    loom_device_close(cpu);
    loom_ctx_destroy(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("prune");
    TCase *tc = tcase_create("prune");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, schedule_formula);
    tcase_add_test(tc, masks_hold_through_adam_every_backend);
    tcase_add_test(tc, mask_update_refuses_bad_operands);
    tcase_add_test(tc, pattern_2_4);
    tcase_add_test(tc, structured_shapes_and_equivalence);
    tcase_add_test(tc, distillation_loss_and_gradient);
    tcase_add_test(tc, student_trains_against_frozen_teacher);
    tcase_add_test(tc, half_files_on_every_device);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
