/* libFuzzer harness: the training configuration of a model file
 * (__metadata__ "loom.config", JSON), read by loom_model_config_read and
 * by loom_sequential_load, which compiles the model with it; the loaded
 * model is then trained, evaluated and run.
 *
 * Input: the record's text. The harness places it in a file of the shared
 * model (fuzz_common.c) so that every input reaches the config parser. */
#include "fuzz_common.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    loom_ctx *ctx = fz_ctx();
    char *text = fz_cstr(data, size);
    unsigned char *file = NULL;
    size_t n = fz_model_file(0, "loom.config", text, &file);
    free(text);
    const char *path = fz_file(0, file, n);
    free(file);
    loom_model_config cfg;
    if (loom_model_config_read(ctx, path, &cfg) != LOOM_OK)
        return 0;
    loom_sequential *m = NULL;
    if (loom_sequential_load(ctx, path, fz_cpu(), NULL, &m) == LOOM_OK) {
        fz_exercise(m);
        loom_sequential_destroy(m);
    }
    return 0;
}
