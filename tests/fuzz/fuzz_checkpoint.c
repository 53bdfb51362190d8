/* libFuzzer harness: checkpoints and model files, restored into a compiled
 * model of the shared architecture (loom_sequential_restore) and loaded
 * anew (loom_sequential_load); either model is then trained from the
 * progress the file claims, evaluated and run.
 *
 * Input: the safetensors header (JSON), a NUL, then the data section. The
 * harness writes the 8-byte header length in front, so that a mutation of
 * the header (a "-1" where "0" was) keeps the file well framed; the framing
 * itself is fuzz_safetensors' subject. An input without a NUL is all
 * header. */
#include "fuzz_common.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Restore leaves the model unchanged on error: one model serves until an
 * input is accepted, then a fresh one takes its place. */
static loom_sequential *model;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    loom_ctx *ctx = fz_ctx();
    const uint8_t *nul = memchr(data, 0, size);
    size_t hl = nul ? (size_t)(nul - data) : size, dl = nul ? size - hl - 1 : 0;
    unsigned char *file = malloc(8 + size);
    if (!file)
        return 0;
    for (int i = 0; i < 8; i++)
        file[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(file + 8, data, hl);
    if (dl)
        memcpy(file + 8 + hl, nul + 1, dl);
    const char *path = fz_file(0, file, 8 + hl + dl);
    free(file);
    if (!model)
        model = fz_model();
    if (loom_sequential_restore(model, path) == LOOM_OK) {
        fz_exercise(model);
        loom_sequential_destroy(model);
        model = NULL;
    }
    loom_sequential *m = NULL;
    if (loom_sequential_load(ctx, path, fz_cpu(), NULL, &m) == LOOM_OK) {
        fz_exercise(m);
        loom_sequential_destroy(m);
    }
    return 0;
}
