/* Convolutional networks end to end on small Fashion-MNIST slices: a CNN
 * with batch norm and dropout learns on every device, and its losses agree
 * across backends step by step; model descriptions in JSON and model files
 * of CNNs (round trip, the validation of their tensors); augmentation from
 * the seed. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* A small CNN with every kind of layer a CNN has. */
static const char small_cnn[] =
    "{\"input\": [1, 28, 28], \"layers\": ["
    "{\"type\": \"conv2d\", \"filters\": 8, \"kernel\": 3, \"padding\": \"same\", \"activation\": \"relu\"},"
    "{\"type\": \"batch_norm\", \"momentum\": 0.9},"
    "{\"type\": \"max_pool2d\", \"pool\": 2},"
    "{\"type\": \"conv2d\", \"filters\": 12, \"kernel\": [3, 3], \"stride\": 1, \"padding\": \"valid\"},"
    "{\"type\": \"activation\", \"activation\": \"relu\"},"
    "{\"type\": \"spatial_dropout\", \"rate\": 0.1},"
    "{\"type\": \"avg_pool2d\", \"pool\": [2, 2]},"
    "{\"type\": \"flatten\"},"
    "{\"type\": \"dense\", \"units\": 32, \"activation\": \"relu\", \"init\": \"he_normal\"},"
    "{\"type\": \"dropout\", \"rate\": 0.3},"
    "{\"type\": \"dense\", \"units\": 10, \"activation\": \"softmax\"}]}";

static loom_sequential *cnn(loom_ctx *ctx, loom_device *dev, int64_t batch)
{
    loom_sequential *m = NULL;
    ck_assert_msg(loom_sequential_from_json(ctx, small_cnn, "small_cnn", &m) == LOOM_OK, "%s", loom_last_error(ctx));
    loom_model_config c = loom_model_config_default();
    c.batch = batch;
    ck_assert_msg(loom_sequential_compile(m, dev, &c) == LOOM_OK, "%s", loom_last_error(ctx));
    return m;
}

typedef struct losses {
    double v[128];
    int n;
} losses;

static int record(void *u, const loom_fit_stats *s)
{
    losses *l = u;
    if (l->n < 128 && !s->end_of_epoch)
        l->v[l->n++] = s->loss;
    return 0;
}

/* 2,048 images, 2 epochs: >= 0.7 on the first 500 test images, on every
 * device present. */
START_TEST(cnn_learns_on_every_device)
{
    if (!data_dir()) {
        fprintf(stderr, "cnn: Fashion-MNIST not installed, skipped\n");
        return;
    }
    loom_ctx *ctx = tu_ctx();
    loom_dataset *tr = slice(ctx, 1, 2048), *te = slice(ctx, 0, 500);
    char specs[16][32];
    int nd = tu_devices(ctx, specs, 16);
    for (int d = 0; d < nd; d++) {
        loom_device *dev = tu_open(ctx, specs[d]);
        loom_sequential *m = cnn(ctx, dev, 32);
        loom_fit_config fc = loom_fit_config_default();
        fc.epochs = 2;
        ck_assert_msg(loom_sequential_fit(m, tr, &fc, NULL) == LOOM_OK, "%s", loom_last_error(ctx));
        loom_eval_result r;
        ck_assert_int_eq(loom_sequential_evaluate(m, te, 0, &r), LOOM_OK);
        fprintf(stderr, "cnn: %s reaches %.4f on 500 test images\n", specs[d], r.accuracy);
        ck_assert_msg(r.accuracy >= 0.7, "%s: accuracy %.4f < 0.7", specs[d], r.accuracy);
        /* training moved the running statistics away from (0, 1) */
        float run[16];
        ck_assert_int_eq(loom_state_read(loom_sequential_state(m), "bn0/running", run, sizeof run), LOOM_OK);
        ck_assert(fabsf(run[0]) > 1e-3f && fabsf(run[8] - 1.0f) > 1e-3f);
        ck_assert_uint_eq(loom_validation_errors(ctx), 0);
        loom_eval_result_free(&r);
        loom_sequential_destroy(m);
        loom_device_close(dev);
    }
    loom_dataset_destroy(tr);
    loom_dataset_destroy(te);
    loom_ctx_destroy(ctx);
}
END_TEST

/* The same seed and data give the same first 50 losses on every backend,
 * dropout (and spatial dropout) on: the counter-based masks are the same
 * everywhere, the rest differs by float rounding only. */
START_TEST(cnn_losses_agree_across_backends)
{
    if (!data_dir())
        return;
    loom_ctx *ctx = tu_ctx();
    loom_dataset *tr = slice(ctx, 1, 50 * 16);
    char specs[16][32];
    int nd = tu_devices(ctx, specs, 16);
    losses ref = {0};
    int have_ref = 0, compared = 0;
    for (int d = 0; d < nd; d++) {
        loom_device *dev = tu_open(ctx, specs[d]);
        loom_sequential *m = cnn(ctx, dev, 16);
        losses l = {0};
        loom_fit_config fc = loom_fit_config_default();
        fc.epochs = 1;
        fc.shuffle = 0;
        fc.progress = record;
        fc.progress_every = 1;
        fc.user = &l;
        ck_assert_msg(loom_sequential_fit(m, tr, &fc, NULL) == LOOM_OK, "%s", loom_last_error(ctx));
        ck_assert_int_eq(l.n, 49); /* every step but the last, which ends the epoch */
        /* each step's own loss, from the running means */
        for (int i = l.n - 1; i > 0; i--)
            l.v[i] = l.v[i] * (i + 1) - l.v[i - 1] * i;
        if (!have_ref) {
            ck_assert_str_eq(specs[d], "cpu");
            ref = l;
            have_ref = 1;
        } else {
            double worst = 0;
            for (int i = 0; i < l.n; i++)
                worst = fmax(worst, fabs(l.v[i] - ref.v[i]) / (1e-3 + fabs(ref.v[i])));
            fprintf(stderr, "cnn: %s's losses over the first 49 steps differ from cpu's by %.2e at most (relative)\n",
                    specs[d], worst);
            for (int i = 0; i < l.n; i++)
                ck_assert_msg(fabs(l.v[i] - ref.v[i]) <= 2e-4 * (1 + fabs(ref.v[i])),
                              "%s: step %d loss %.7f, cpu %.7f", specs[d], i + 1, l.v[i], ref.v[i]);
            compared++;
        }
        loom_sequential_destroy(m);
        loom_device_close(dev);
    }
    if (!compared)
        fprintf(stderr, "cnn: one device only, nothing to compare\n");
    loom_dataset_destroy(tr);
    loom_ctx_destroy(ctx);
}
END_TEST

/* Augmentation is drawn from the seed: two fits are the same; it moves
 * the images (another loss than without); its shift and flip are what
 * they say on one image. */
START_TEST(augmentation_is_seeded)
{
    if (!data_dir())
        return;
    loom_ctx *ctx = tu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_dataset *tr = slice(ctx, 1, 256);
    losses a = {0}, b = {0}, c = {0};
    losses *runs[3] = {&a, &b, &c};
    for (int r = 0; r < 3; r++) {
        loom_sequential *m = cnn(ctx, dev, 32);
        loom_fit_config fc = loom_fit_config_default();
        fc.epochs = 1;
        fc.progress = record;
        fc.progress_every = 1;
        fc.user = runs[r];
        fc.augment_shift = r < 2 ? 2 : 0;
        fc.augment_flip = r < 2;
        ck_assert_int_eq(loom_sequential_fit(m, tr, &fc, NULL), LOOM_OK);
        loom_sequential_destroy(m);
    }
    ck_assert_int_eq(a.n, 7);
    int same = 1, differs = 0;
    for (int i = 0; i < a.n; i++) {
        same &= a.v[i] == b.v[i];
        differs |= a.v[i] != c.v[i];
    }
    ck_assert_msg(same, "two augmented fits of one seed differ");
    ck_assert_msg(differs, "augmentation changed nothing");
    loom_dataset_destroy(tr);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* A CNN's model file reloads into the same predictions (the running
 * statistics included); its tensors are validated like a dense model's. */
START_TEST(cnn_model_file)
{
    loom_ctx *ctx = tu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_sequential *m = cnn(ctx, dev, 8);
    loom_state *st = loom_sequential_state(m);
    /* running statistics other than the initial ones, so a file that lost
     * them would predict otherwise */
    float run[16];
    for (int i = 0; i < 16; i++)
        run[i] = i < 8 ? 0.05f * (float)i : 0.5f + 0.1f * (float)i;
    int64_t rs[2] = {2, 8};
    ck_assert_int_eq(loom_state_write(st, "bn0/running", LOOM_F32, 2, rs, run), LOOM_OK);
    float x[2 * 784], p1[20], p2[20];
    tu_fill(x, 2 * 784, 3, 0, 1);
    ck_assert_int_eq(loom_sequential_predict(m, x, 2, p1), LOOM_OK);
    char path[] = "/tmp/loom-cnn-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(loom_sequential_save(m, path), LOOM_OK);
    loom_sequential *r = NULL;
    ck_assert_msg(loom_sequential_load(ctx, path, dev, NULL, &r) == LOOM_OK, "%s", loom_last_error(ctx));
    ck_assert_int_eq(loom_sequential_predict(r, x, 2, p2), LOOM_OK);
    ck_assert(!memcmp(p1, p2, sizeof p1));
    ck_assert_str_eq(loom_sequential_describe(r), loom_sequential_describe(m));
    ck_assert_int_eq(loom_sequential_inputs(r), 784);
    loom_sequential_destroy(r);
    /* a file without the running statistics is refused, naming them */
    loom_tensor_file *f;
    ck_assert_int_eq(loom_safetensors_open(ctx, path, &f), LOOM_OK);
    const char *arch = loom_safetensors_metadata(f, "loom.architecture");
    ck_assert_ptr_nonnull(strstr(arch, "\"batch_norm\""));
    loom_safetensors_close(f);
    loom_state *part;
    ck_assert_int_eq(loom_state_create(dev, &part), LOOM_OK);
    for (int i = 0; i < loom_state_count(st); i++) {
        const char *name;
        loom_dtype dt;
        int ndim;
        int64_t shape[4];
        loom_state_entry(st, i, &name, &dt, &ndim, shape);
        if (!strcmp(name, "bn0/running") || strstr(name, "/m") || strstr(name, "/v"))
            continue;
        size_t n = 1;
        for (int k = 0; k < ndim; k++)
            n *= (size_t)shape[k];
        float *buf = malloc(n * 4);
        ck_assert_int_eq(loom_state_read(st, name, buf, n * 4), LOOM_OK);
        ck_assert_int_eq(loom_state_write(part, name, dt, ndim, shape, buf), LOOM_OK);
        free(buf);
    }
    char bad[] = "/tmp/loom-cnn-bad-XXXXXX";
    fd = mkstemp(bad);
    ck_assert_int_ge(fd, 0);
    close(fd);
    const char *meta[] = {"loom.kind", "model", "loom.architecture", loom_sequential_describe(m), "loom.config", "{}",
                          NULL};
    ck_assert_int_eq(loom_safetensors_save(part, bad, meta, NULL), LOOM_OK);
    ck_assert_int_eq(loom_sequential_load(ctx, bad, dev, NULL, &r), LOOM_E_FORMAT);
    ck_assert_msg(strstr(loom_last_error(ctx), "weight \"bn0/running\" is missing"), "%s", loom_last_error(ctx));
    /* a kernel of another shape is refused, naming both shapes */
    int64_t ks[4] = {8, 1, 5, 5};
    float k5[200] = {0};
    ck_assert_int_eq(loom_state_write(part, "bn0/running", LOOM_F32, 2, rs, run), LOOM_OK);
    loom_state *wrong;
    ck_assert_int_eq(loom_state_create(dev, &wrong), LOOM_OK);
    ck_assert_int_eq(loom_state_write(wrong, "conv0/kernel", LOOM_F32, 4, ks, k5), LOOM_OK);
    ck_assert_int_eq(loom_safetensors_save(wrong, bad, meta, NULL), LOOM_OK);
    ck_assert_int_eq(loom_sequential_load(ctx, bad, dev, NULL, &r), LOOM_E_FORMAT);
    ck_assert_msg(strstr(loom_last_error(ctx), "conv0/kernel") && strstr(loom_last_error(ctx), "[8,1,3,3]"), "%s",
                  loom_last_error(ctx));
    /* no optimizer moments for the running statistics: such a tensor is
     * not part of the architecture */
    ck_assert_int_eq(loom_state_write(part, "bn0/running/m", LOOM_F32, 2, rs, run), LOOM_OK);
    ck_assert_int_eq(loom_safetensors_save(part, bad, meta, NULL), LOOM_OK);
    ck_assert_int_eq(loom_sequential_load(ctx, bad, dev, NULL, &r), LOOM_E_FORMAT);
    ck_assert_msg(strstr(loom_last_error(ctx), "bn0/running/m"), "%s", loom_last_error(ctx));
    loom_state_destroy(wrong);
    loom_state_destroy(part);
    unlink(bad);
    unlink(path);
    loom_sequential_destroy(m);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* Descriptions that do not fit are refused, naming the layer and why. */
START_TEST(descriptions_are_checked)
{
    loom_ctx *ctx = tu_ctx();
    struct {
        const char *json, *want;
    } bad[] = {
        {"{\"input\": [1, 28, 28], \"layers\": [{\"type\": \"dense\", \"units\": 10}]}", "add a flatten layer"},
        {"{\"input\": 784, \"layers\": [{\"type\": \"conv2d\", \"filters\": 4, \"kernel\": 3}]}", "not an image"},
        {"{\"input\": [1, 4, 4], \"layers\": [{\"type\": \"conv2d\", \"filters\": 4, \"kernel\": 5}]}",
         "does not fit its input"},
        {"{\"input\": [3, 8, 8], \"layers\": [{\"type\": \"conv2d\", \"filters\": 4, \"kernel\": 3, \"groups\": 2}]}",
         "groups do not divide"},
        {"{\"input\": [1, 8, 8], \"layers\": [{\"type\": \"conv2d\", \"filters\": 4}]}", "\"kernel\""},
        {"{\"input\": [1, 8, 8], \"layers\": [{\"type\": \"max_pool2d\", \"pool\": 2, \"size\": 3}]}",
         "unknown field \"size\""},
        {"{\"input\": [1, 8, 8], \"layers\": [{\"type\": \"batch_norm\", \"momentum\": 1.5}]}", "\"momentum\""},
        {"{\"input\": [1, 8], \"layers\": []}", "\"input\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        loom_sequential *m = NULL;
        ck_assert_int_eq(loom_sequential_from_json(ctx, bad[i].json, "desc.json", &m), LOOM_E_FORMAT);
        ck_assert_ptr_null(m);
        ck_assert_msg(strstr(loom_last_error(ctx), bad[i].want) && strstr(loom_last_error(ctx), "desc.json"),
                      "case %zu: %s", i, loom_last_error(ctx));
    }
    /* a model that ends in images cannot compile */
    loom_sequential *m;
    ck_assert_int_eq(loom_sequential_create_image(ctx, 1, 8, 8, &m), LOOM_OK);
    loom_conv2d_layer c = loom_conv2d_layer_default(4, 3, 3);
    ck_assert_int_eq(loom_sequential_add_conv2d(m, &c), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_flatten(m), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_dense(m, 10, LOOM_ACT_SOFTMAX, LOOM_INIT_GLOROT_UNIFORM), LOOM_OK);
    ck_assert_int_eq(loom_sequential_outputs(m), 10);
    ck_assert_int_eq(loom_sequential_add_conv2d(m, &c), LOOM_E_SHAPE);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "not an image"));
    loom_sequential_destroy(m);
    loom_ctx_destroy(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cnn");
    TCase *tc = tcase_create("learn");
    tcase_set_timeout(tc, 1500);
    tcase_add_test(tc, cnn_learns_on_every_device);
    tcase_add_test(tc, cnn_losses_agree_across_backends);
    suite_add_tcase(s, tc);
    tc = tcase_create("model");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, augmentation_is_seeded);
    tcase_add_test(tc, cnn_model_file);
    tcase_add_test(tc, descriptions_are_checked);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
