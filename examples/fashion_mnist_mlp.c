/* The seed's Keras example, line for line, in loom's C API:
 *
 *   model = Sequential([Dense(64, relu, input_shape=(784,)), Dense(64, relu), Dense(10, softmax)])
 *   model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
 *   model.fit(x_train, y_train, epochs=5)
 *   test_loss, test_acc = model.evaluate(x_test, y_test)
 *
 * Build: cc fashion_mnist_mlp.c $(pkg-config --cflags --libs loom)
 * Run:   ./fashion_mnist_mlp [device] [data dir]          (device: auto, cpu, vulkan:0, opencl:0)
 */
#include <loom.h>
#include <stdio.h>

#define CHECK(call) do { if ((call) != LOOM_OK) { fprintf(stderr, "%s\n", loom_last_error(ctx)); return 1; } } while (0)

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
    CHECK(loom_dataset_load_mnist(ctx, dir, 1, &train));            /* (x_train, y_train) */
    CHECK(loom_dataset_load_mnist(ctx, dir, 0, &test));             /* (x_test, y_test) */
    CHECK(loom_dataset_scale(train, LOOM_SCALE_UNIT, NULL, NULL));  /* x / 255 */
    CHECK(loom_dataset_scale(test, LOOM_SCALE_UNIT, NULL, NULL));

    CHECK(loom_sequential_create(ctx, 784, &model));
    CHECK(loom_sequential_add_dense(model, 64, LOOM_ACT_RELU, LOOM_INIT_GLOROT_UNIFORM));
    CHECK(loom_sequential_add_dense(model, 64, LOOM_ACT_RELU, LOOM_INIT_GLOROT_UNIFORM));
    CHECK(loom_sequential_add_dense(model, 10, LOOM_ACT_SOFTMAX, LOOM_INIT_GLOROT_UNIFORM));
    loom_model_config cfg = loom_model_config_default();            /* adam, sparse CE, batch 32 */
    CHECK(loom_sequential_compile(model, dev, &cfg));

    loom_fit_config fit = loom_fit_config_default();                /* epochs=5 */
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
