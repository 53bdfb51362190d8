/* A small convolutional network on Fashion-MNIST, as one would write it in
 * Keras:
 *
 *   model = Sequential([
 *       Conv2D(32, 3, padding='same', activation='relu', input_shape=(1, 28, 28)), BatchNormalization(),
 *       MaxPooling2D(2),
 *       Conv2D(64, 3, padding='same', activation='relu'), BatchNormalization(), MaxPooling2D(2),
 *       Flatten(), Dense(128, activation='relu'), Dropout(0.3), Dense(10, activation='softmax')])
 *   model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
 *   model.fit(x_train, y_train, epochs=5, batch_size=64)
 *
 * The same model is examples/models/cnn.json, which `loom train --model`
 * reads. Build: cc fashion_mnist_cnn.c $(pkg-config --cflags --libs loom)
 * Run:   ./fashion_mnist_cnn [device] [data dir] [epochs]   (device: auto, cpu, vulkan:0, opencl:0)
 */
#include <loom.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(call) do { if ((call) != LOOM_OK) { fprintf(stderr, "%s\n", loom_last_error(ctx)); return 1; } } while (0)

static int progress(void *user, const loom_fit_stats *s)
{
    (void)user;
    if (s->end_of_epoch)
        printf("epoch %d/%d  loss %.4f  acc %.4f  %.0f samples/s\n", s->epoch, s->epochs, s->loss, s->accuracy,
               s->samples_per_s);
    return 0;
}

int main(int argc, char **argv)
{
    loom_ctx *ctx;
    loom_device *dev;
    loom_dataset *train, *test;
    loom_sequential *model;
    loom_eval_result r;
    const char *dir = argc > 2 ? argv[2] : LOOM_DEFAULT_DATA_DIR;
    if (loom_ctx_create(NULL, &ctx) != LOOM_OK) return 1;
    CHECK(loom_device_open(ctx, argc > 1 ? argv[1] : "auto", &dev));
    CHECK(loom_dataset_load_mnist(ctx, dir, 1, &train));
    CHECK(loom_dataset_load_mnist(ctx, dir, 0, &test));
    CHECK(loom_dataset_scale(train, LOOM_SCALE_UNIT, NULL, NULL));
    CHECK(loom_dataset_scale(test, LOOM_SCALE_UNIT, NULL, NULL));

    CHECK(loom_sequential_create_image(ctx, 1, 28, 28, &model));   /* [N, 1, 28, 28] */
    loom_conv2d_layer conv = loom_conv2d_layer_default(32, 3, 3);  /* He initialisation */
    conv.same = 1;
    conv.act = LOOM_ACT_RELU;
    CHECK(loom_sequential_add_conv2d(model, &conv));
    CHECK(loom_sequential_add_batch_norm(model, 0, 0));             /* momentum 0.99, eps 1e-3 */
    CHECK(loom_sequential_add_max_pool2d(model, 2, 2, 0, 0));
    conv.filters = 64;
    CHECK(loom_sequential_add_conv2d(model, &conv));
    CHECK(loom_sequential_add_batch_norm(model, 0, 0));
    CHECK(loom_sequential_add_max_pool2d(model, 2, 2, 0, 0));
    CHECK(loom_sequential_add_flatten(model));
    CHECK(loom_sequential_add_dense(model, 128, LOOM_ACT_RELU, LOOM_INIT_HE_NORMAL));
    CHECK(loom_sequential_add_dropout(model, 0.3f));
    CHECK(loom_sequential_add_dense(model, 10, LOOM_ACT_SOFTMAX, LOOM_INIT_GLOROT_UNIFORM));
    loom_model_config cfg = loom_model_config_default();            /* adam, sparse CE */
    cfg.batch = 64;
    CHECK(loom_sequential_compile(model, dev, &cfg));

    loom_fit_config fit = loom_fit_config_default();
    fit.epochs = argc > 3 ? atoi(argv[3]) : 5;
    fit.progress = progress;
    CHECK(loom_sequential_fit(model, train, &fit, NULL));
    CHECK(loom_sequential_evaluate(model, test, 0, &r));
    printf("\nTest accuracy: %.4f (loss %.4f) on %s\n", r.accuracy, r.loss, loom_device_get(dev)->spec);

    loom_eval_result_free(&r);
    loom_sequential_destroy(model);
    loom_dataset_destroy(train);
    loom_dataset_destroy(test);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
    return 0;
}
