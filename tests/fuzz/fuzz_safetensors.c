/* libFuzzer harness: the safetensors reader (loom_safetensors_open) on a
 * file of arbitrary bytes, then everything a caller may do with what it
 * accepted: every tensor's entry and data, the metadata, and the copy into
 * a state on the CPU device. */
#include "fuzz_common.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink; /* keeps the reads */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    loom_ctx *ctx = fz_ctx();
    loom_tensor_file *f = NULL;
    if (loom_safetensors_open(ctx, fz_file(0, data, size), &f) != LOOM_OK)
        return 0;
    static const char *const keys[] = {"format", "loom.kind", "loom.architecture", "loom.config", "loom.step", ""};
    uint64_t h = 0;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = loom_safetensors_metadata(f, keys[i]);
        if (v)
            h += fz_touch(v, strlen(v));
    }
    int n = loom_safetensors_count(f);
    for (int i = -1; i <= n; i++) {     /* one past each end: refused, not read */
        const char *name;
        loom_dtype dt;
        int ndim;
        int64_t shape[LOOM_MAX_DIMS];
        const void *p;
        if (loom_safetensors_tensor(f, i, &name, &dt, &ndim, shape, &p) != LOOM_OK)
            continue;
        uint64_t numel = 1;
        for (int d = 0; d < ndim; d++)
            numel *= (uint64_t)shape[d];
        h += fz_touch(name, strlen(name)) + fz_touch(p, (size_t)(numel * loom_dtype_size(dt)));
    }
    loom_state *st = NULL;
    if (loom_state_create(fz_cpu(), &st) == LOOM_OK) {
        (void)loom_safetensors_to_state(f, st);
        loom_state_destroy(st);
    }
    loom_safetensors_close(f);
    sink = h;
    return 0;
}
