/* libFuzzer harness: the architecture of a model file (__metadata__
 * "loom.architecture", JSON), parsed by loom_sequential_load, which
 * builds and compiles the model it describes before loading the weights;
 * a model it accepts is then trained, evaluated and run.
 *
 * Input: the record's text, placed in a file of the shared model
 * (fuzz_common.c): its weights fit only architectures of the same shapes. */
#include "fuzz_common.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    loom_ctx *ctx = fz_ctx();
    char *text = fz_cstr(data, size);
    unsigned char *file = NULL;
    size_t n = fz_model_file(0, "loom.architecture", text, &file);
    free(text);
    const char *path = fz_file(0, file, n);
    free(file);
    loom_sequential *m = NULL;
    if (loom_sequential_load(ctx, path, fz_cpu(), NULL, &m) == LOOM_OK) {
        fz_exercise(m);
        loom_sequential_destroy(m);
    }
    return 0;
}
