/* An LSTM classifier on Fashion-MNIST: each image read as a sequence of
 * its 28 rows of 28 pixels, one LSTM layer of 128 units (unrolled over the
 * 28 steps in the graph: backpropagation through time is its autodiff),
 * its last state into a softmax over the 10 classes. Adam.
 *
 * Build: cc lstm_fashion_mnist.c $(pkg-config --cflags --libs loom)
 * Run:   ./lstm_fashion_mnist --device cpu --epochs 3 [--save lstm.safetensors]
 *        (--train-rows / --test-rows for a slice, --steps to stop early)
 */
#include <loom.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(call)                                                                                         \
    do {                                                                                                    \
        if ((call) != LOOM_OK) {                                                                            \
            fprintf(stderr, "lstm_fashion_mnist: %s\n", loom_last_error(ctx));                               \
            return 1;                                                                                       \
        }                                                                                                   \
    } while (0)

static const char *const layers[] = {
    "{\"type\": \"reshape\", \"shape\": [28, 28]}",
    "{\"type\": \"lstm\", \"units\": 128}",
    "{\"type\": \"dense\", \"units\": 10, \"activation\": \"softmax\"}",
};

typedef struct progress {
    int64_t stop_after;
} progress;

static int report(void *user, const loom_fit_stats *s)
{
    const progress *p = user;
    printf("epoch %d/%d step %lld: loss %.4f accuracy %.4f, %.0f samples/s%s\n", s->epoch, s->epochs,
           (long long)s->step, s->loss, s->accuracy, s->samples_per_s, s->end_of_epoch ? " (end of epoch)" : "");
    fflush(stdout);
    return p->stop_after > 0 && s->step >= p->stop_after;
}

int main(int argc, char **argv)
{
    const char *spec = "auto", *dir = LOOM_DEFAULT_DATA_DIR, *save = NULL;
    int epochs = 3;
    int64_t batch = 128, train_rows = 0, test_rows = 0, every = 100;
    float lr = 2e-3f;
    progress prog = {0};
    static const struct option opts[] = {{"device", required_argument, 0, 'd'}, {"data", required_argument, 0, 'D'},
                                         {"epochs", required_argument, 0, 'e'}, {"batch", required_argument, 0, 'b'},
                                         {"lr", required_argument, 0, 'l'},     {"save", required_argument, 0, 's'},
                                         {"train-rows", required_argument, 0, 't'},
                                         {"test-rows", required_argument, 0, 'T'},
                                         {"steps", required_argument, 0, 'n'},  {"every", required_argument, 0, 'v'},
                                         {0, 0, 0, 0}};
    for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        switch (c) {
        case 'd': spec = optarg; break;
        case 'D': dir = optarg; break;
        case 'e': epochs = atoi(optarg); break;
        case 'b': batch = atoll(optarg); break;
        case 'l': lr = (float)atof(optarg); break;
        case 's': save = optarg; break;
        case 't': train_rows = atoll(optarg); break;
        case 'T': test_rows = atoll(optarg); break;
        case 'n': prog.stop_after = atoll(optarg); break;
        case 'v': every = atoll(optarg); break;
        default: fprintf(stderr, "usage: lstm_fashion_mnist [--device SPEC] [--epochs N] [--batch N] [--lr X] "
                         "[--save FILE] [--train-rows N] [--test-rows N] [--steps N] [--data DIR]\n");
            return 2;
        }
    }
    loom_ctx *ctx;
    loom_device *dev;
    loom_dataset *train, *test;
    loom_sequential *model;
    if (loom_ctx_create(NULL, &ctx) != LOOM_OK)
        return 1;
    CHECK(loom_device_open(ctx, spec, &dev));
    CHECK(loom_dataset_load_mnist(ctx, dir, 1, &train));
    CHECK(loom_dataset_load_mnist(ctx, dir, 0, &test));
    if (train_rows > 0) {
        loom_dataset *s;
        CHECK(loom_dataset_subset(train, 0, train_rows, &s));
        loom_dataset_destroy(train);
        train = s;
    }
    if (test_rows > 0) {
        loom_dataset *s;
        CHECK(loom_dataset_subset(test, 0, test_rows, &s));
        loom_dataset_destroy(test);
        test = s;
    }
    float stats[2];
    CHECK(loom_dataset_scale(train, LOOM_SCALE_STANDARD, NULL, stats));
    CHECK(loom_dataset_scale(test, LOOM_SCALE_STANDARD, stats, NULL));

    CHECK(loom_sequential_create(ctx, 784, &model));
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++)
        CHECK(loom_sequential_add_json(model, layers[i]));
    loom_model_config cfg = loom_model_config_default();
    cfg.batch = batch;
    cfg.optimizer = loom_optimizer_default(LOOM_OPT_ADAM);
    cfg.optimizer.lr = lr;
    cfg.optimizer.clip_norm = 1.0f; /* recurrent gradients can spike */
    CHECK(loom_sequential_compile(model, dev, &cfg));

    loom_fit_config fit = loom_fit_config_default();
    fit.epochs = epochs;
    fit.progress = report;
    fit.user = &prog;
    fit.progress_every = every;
    loom_fit_stats last;
    CHECK(loom_sequential_fit(model, train, &fit, &last));
    loom_eval_result r;
    CHECK(loom_sequential_evaluate(model, test, 0, &r));
    printf("\nTest accuracy: %.4f (loss %.4f) on %lld test images, %s, after %lld steps (%.0f samples/s)\n",
           r.accuracy, r.loss, (long long)r.count, loom_device_get(dev)->spec, (long long)last.step,
           last.samples_per_s);
    if (save)
        CHECK(loom_sequential_save(model, save));
    loom_eval_result_free(&r);
    loom_sequential_destroy(model);
    loom_dataset_destroy(train);
    loom_dataset_destroy(test);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
    return 0;
}
