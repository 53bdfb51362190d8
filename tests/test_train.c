/* Training end to end on real Fashion-MNIST slices: learning, determinism,
 * resume from a checkpoint, and the model file round trip. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* LOOM_TEST_MNIST names another folder (tools/device_check.sh carries a
 * slice of the data set to machines without it). */
static const char *data_dir(void)
{
    const char *e = getenv("LOOM_TEST_MNIST");
    if (e && *e)
        return e;
    return access(LOOM_DEFAULT_DATA_DIR "/train-labels-idx1-ubyte.gz", R_OK) == 0 ? LOOM_DEFAULT_DATA_DIR : NULL;
}

static loom_dataset *slice(loom_ctx *ctx, int train, int64_t n)
{
    loom_dataset *ds = NULL, *sub = NULL;
    ck_assert_int_eq(loom_dataset_load_mnist(ctx, data_dir(), train, &ds), LOOM_OK);
    ck_assert_int_eq(loom_dataset_scale(ds, LOOM_SCALE_UNIT, NULL, NULL), LOOM_OK);
    ck_assert_int_eq(loom_dataset_subset(ds, 0, n, &sub), LOOM_OK);
    loom_dataset_destroy(ds);
    return sub;
}

static loom_sequential *mlp_with(loom_ctx *ctx, loom_device *dev, float dropout, const loom_model_config *cfg);

static loom_sequential *mlp(loom_ctx *ctx, loom_device *dev, float dropout)
{
    loom_model_config c = loom_model_config_default();
    return mlp_with(ctx, dev, dropout, &c);
}

static loom_sequential *mlp_with(loom_ctx *ctx, loom_device *dev, float dropout, const loom_model_config *cfg)
{
    loom_sequential *m;
    ck_assert_int_eq(loom_sequential_create(ctx, 784, &m), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_dense(m, 64, LOOM_ACT_RELU, LOOM_INIT_GLOROT_UNIFORM), LOOM_OK);
    if (dropout > 0)
        ck_assert_int_eq(loom_sequential_add_dropout(m, dropout), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_dense(m, 64, LOOM_ACT_RELU, LOOM_INIT_GLOROT_UNIFORM), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_dense(m, 10, LOOM_ACT_SOFTMAX, LOOM_INIT_GLOROT_UNIFORM), LOOM_OK);
    ck_assert_msg(loom_sequential_compile(m, dev, cfg) == LOOM_OK, "%s", loom_last_error(ctx));
    return m;
}

typedef struct losses {
    double v[64];
    int n;
} losses;

static int record(void *u, const loom_fit_stats *s)
{
    losses *l = u;
    if (l->n < 64)
        l->v[l->n++] = s->loss;
    return 0;
}

/* The learning test: 6,000 images, 2 epochs, >= 0.75 on the first
 * 1,000 test images, on every device present. */
START_TEST(learns_fashion_mnist)
{
    if (!data_dir()) {
        fprintf(stderr, "train: Fashion-MNIST not installed, skipped\n");
        return;
    }
    loom_ctx *ctx = tu_ctx();
    loom_dataset *tr = slice(ctx, 1, 6000), *te = slice(ctx, 0, 1000);
    char specs[16][32];
    int nd = tu_devices(ctx, specs, 16);
    for (int d = 0; d < nd; d++) {
        loom_device *dev = tu_open(ctx, specs[d]);
        loom_sequential *m = mlp(ctx, dev, 0);
        loom_fit_config fc = loom_fit_config_default();
        fc.epochs = 2;
        ck_assert_msg(loom_sequential_fit(m, tr, &fc, NULL) == LOOM_OK, "%s", loom_last_error(ctx));
        loom_eval_result r;
        ck_assert_int_eq(loom_sequential_evaluate(m, te, 0, &r), LOOM_OK);
        fprintf(stderr, "train: %s reaches %.4f on 1000 test images\n", specs[d], r.accuracy);
        ck_assert_msg(r.accuracy >= 0.75, "%s: accuracy %.4f < 0.75", specs[d], r.accuracy);
        ck_assert_int_eq(r.count, 1000);
        int64_t total = 0;
        for (int i = 0; i < 100; i++)
            total += r.confusion[i];
        ck_assert_int_eq(total, 1000);
        loom_eval_result_free(&r);
        loom_sequential_destroy(m);
        loom_device_close(dev);
    }
    loom_dataset_destroy(tr);
    loom_dataset_destroy(te);
    loom_ctx_destroy(ctx);
}
END_TEST

static void weights(loom_sequential *m, float *w, size_t n)
{
    ck_assert_int_eq(loom_state_read(loom_sequential_state(m), "dense0/kernel", w, n * sizeof *w), LOOM_OK);
}

/* A cosine schedule of no length (total_steps 0) spans the fit it runs
 * in: 3 epochs of 1,000 rows at 32 = 96 updates, the same weights bit for
 * bit as total_steps 96 given, other weights than the constant rate, and
 * the rate reaches lr_min (0) at the last update. */
START_TEST(cosine_spans_the_fit)
{
    if (!data_dir())
        return;
    loom_ctx *ctx = tu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_dataset *tr = slice(ctx, 1, 1000);
    enum { NW = 784 * 64 };
    float *w[3] = {malloc(NW * 4), malloc(NW * 4), malloc(NW * 4)};
    loom_fit_config fc = loom_fit_config_default();
    fc.epochs = 3;
    for (int k = 0; k < 3; k++) {
        loom_model_config c = loom_model_config_default();
        c.optimizer.schedule = k == 2 ? LOOM_LR_CONSTANT : LOOM_LR_COSINE;
        c.optimizer.total_steps = k == 1 ? 96 : 0;
        loom_sequential *m = mlp_with(ctx, dev, 0.0f, &c);
        ck_assert_msg(loom_sequential_fit(m, tr, &fc, NULL) == LOOM_OK, "%s", loom_last_error(ctx));
        weights(m, w[k], NW);
        loom_model_config got = loom_sequential_config(m);
        if (k < 2) {
            ck_assert_int_eq(got.optimizer.total_steps, 96);
            ck_assert_float_eq(loom_optimizer_lr(&got.optimizer, 96), 0.0f);
            ck_assert_float_eq_tol(loom_optimizer_lr(&got.optimizer, 1), 0.5 * c.optimizer.lr * (1.0 + cos(3.14159265358979323846 / 96.0)),
                                   1e-9);
        }
        loom_sequential_destroy(m);
    }
    ck_assert_msg(!memcmp(w[0], w[1], NW * 4), "the resolved cosine differs from the one given its length");
    ck_assert_msg(memcmp(w[0], w[2], NW * 4), "the cosine schedule trained as the constant rate did");
    for (int k = 0; k < 3; k++)
        free(w[k]);
    loom_dataset_destroy(tr);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* Same seed -> the same loss sequence bit for bit; a run resumed from a
 * checkpoint ends with the same weights as an uninterrupted one. Dropout
 * is on, so the counter-based RNG must also resume where it stopped. */
START_TEST(deterministic_and_resumable)
{
    if (!data_dir())
        return;
    loom_ctx *ctx = tu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_dataset *tr = slice(ctx, 1, 1000);
    enum { NW = 784 * 64 };
    float *w1 = malloc(NW * 4), *w2 = malloc(NW * 4), *w3 = malloc(NW * 4);
    losses a = {0}, b = {0};
    loom_fit_config fc = loom_fit_config_default();
    fc.epochs = 3;
    fc.progress = record;
    fc.progress_every = 8;
    fc.user = &a;
    loom_sequential *m = mlp(ctx, dev, 0.2f);
    ck_assert_int_eq(loom_sequential_fit(m, tr, &fc, NULL), LOOM_OK);
    weights(m, w1, NW);
    loom_sequential_destroy(m);
    fc.user = &b;
    m = mlp(ctx, dev, 0.2f);
    ck_assert_int_eq(loom_sequential_fit(m, tr, &fc, NULL), LOOM_OK);
    weights(m, w2, NW);
    ck_assert_int_eq(a.n, b.n);
    ck_assert_int_gt(a.n, 10);
    for (int i = 0; i < a.n; i++)
        ck_assert_msg(a.v[i] == b.v[i], "loss %d differs: %.9g vs %.9g", i, a.v[i], b.v[i]);
    ck_assert(!memcmp(w1, w2, NW * 4));
    loom_sequential_destroy(m);
    /* interrupted after 50 steps (mid-epoch 2), resumed from the checkpoint */
    char path[] = "/tmp/loom-ckpt-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    m = mlp(ctx, dev, 0.2f);
    loom_fit_config part = loom_fit_config_default();
    part.epochs = 3;
    part.checkpoint_every = 50;
    part.checkpoint_path = path;
    part.progress = NULL;
    /* stop right after the checkpoint by training to epoch 2 only, then
     * reloading the step-50 checkpoint (32 steps per epoch) */
    part.epochs = 2;
    ck_assert_int_eq(loom_sequential_fit(m, tr, &part, NULL), LOOM_OK);
    loom_sequential_destroy(m);
    loom_sequential *r = NULL;
    ck_assert_msg(loom_sequential_load(ctx, path, dev, NULL, &r) == LOOM_OK, "%s", loom_last_error(ctx));
    ck_assert_int_eq(loom_state_step(loom_sequential_state(r)), 50);
    loom_fit_config rest = loom_fit_config_default();
    rest.epochs = 3;
    ck_assert_int_eq(loom_sequential_fit(r, tr, &rest, NULL), LOOM_OK);
    weights(r, w3, NW);
    ck_assert_msg(!memcmp(w1, w3, NW * 4), "resumed weights differ from the uninterrupted run");
    /* a model file reloads bit-exactly and predicts the same */
    float x[784], p1[10], p2[10];
    int32_t y;
    int64_t idx = 5;
    ck_assert_int_eq(loom_dataset_gather(tr, &idx, 1, x, &y), LOOM_OK);
    ck_assert_int_eq(loom_sequential_predict(r, x, 1, p1), LOOM_OK);
    ck_assert_int_eq(loom_sequential_save(r, path), LOOM_OK);
    loom_sequential *r2 = NULL;
    ck_assert_int_eq(loom_sequential_load(ctx, path, dev, NULL, &r2), LOOM_OK);
    ck_assert_int_eq(loom_sequential_predict(r2, x, 1, p2), LOOM_OK);
    ck_assert(!memcmp(p1, p2, sizeof p1));
    /* restoring a file of another architecture fails and changes nothing */
    loom_sequential *other;
    ck_assert_int_eq(loom_sequential_create(ctx, 784, &other), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_dense(other, 10, LOOM_ACT_SOFTMAX, LOOM_INIT_GLOROT_UNIFORM), LOOM_OK);
    ck_assert_int_eq(loom_sequential_compile(other, dev, NULL), LOOM_OK);
    float before[7840], after[7840];
    ck_assert_int_eq(loom_state_read(loom_sequential_state(other), "dense0/kernel", before, sizeof before), LOOM_OK);
    ck_assert_int_eq(loom_sequential_restore(other, path), LOOM_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "architecture"));
    ck_assert_int_eq(loom_state_read(loom_sequential_state(other), "dense0/kernel", after, sizeof after), LOOM_OK);
    ck_assert(!memcmp(before, after, sizeof after));
    loom_sequential_destroy(other);
    loom_sequential_destroy(r2);
    loom_sequential_destroy(r);
    unlink(path);
    free(w1), free(w2), free(w3);
    loom_dataset_destroy(tr);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("train");
    /* two cases, so that CK_RUN_CASE=learn runs the per-device one alone */
    TCase *tc = tcase_create("learn");
    tcase_set_timeout(tc, 1200);
    tcase_add_test(tc, learns_fashion_mnist);
    suite_add_tcase(s, tc);
    tc = tcase_create("resume");
    tcase_set_timeout(tc, 1200);
    tcase_add_test(tc, deterministic_and_resumable);
    tcase_add_test(tc, cosine_spans_the_fit);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
