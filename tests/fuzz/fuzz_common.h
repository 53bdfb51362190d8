/* Shared set-up of the libFuzzer harnesses (tests/fuzz/fuzz_*.c): one
 * context and one CPU device per process, inputs handed to loom's readers
 * as files. Everything goes through include/loom.h, as an application's
 * code would. */
#ifndef LOOM_FUZZ_COMMON_H
#define LOOM_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "loom.h"

/* A context whose allocator refuses any one allocation over 256 MiB and
 * more than 1 GiB in all (a crafted size must end as LOOM_E_OOM, never as
 * the fuzzer's own out-of-memory), checks that every free and realloc
 * passes back the size that was allocated, and whose log is silent. Only
 * the CPU backend is loaded. */
loom_ctx *fz_ctx(void);
/* The context's "cpu" device. */
loom_device *fz_cpu(void);
/* Writes data into in-memory file number slot (0..3) and returns a path
 * that opens it ("/proc/self/fd/N"): the readers under test take paths. */
const char *fz_file(int slot, const void *data, size_t n);
/* A file under a private temporary folder (for what loom writes). */
const char *fz_tmp_path(const char *name);

/* Touches every byte (ASan sees a bad pointer or length at once). */
uint64_t fz_touch(const void *p, size_t n);

/* The small model the model-file harnesses share: 4 inputs, dense(3,
 * relu), dropout(0.25), dense(2, softmax), Adam, batch 2. NULL on failure
 * (the harness then aborts: the set-up itself is broken). */
loom_sequential *fz_model(void);
/* 6 rows of 2x2 images with labels 0/1, scaled to [0, 1]. */
loom_dataset *fz_data(void);
/* Fit (progress-bounded: at most 8 steps, whatever epoch or step the
 * model claims), evaluate and predict once, ignoring the statuses: what is
 * tested is that none of them touches memory it must not. Models of more
 * than 2^20 state elements are only loaded, not run (time, not safety). */
void fz_exercise(loom_sequential *m);

/* The shared model's file (loom_sequential_save, or _checkpoint after a
 * few steps when checkpoint is set) with its __metadata__ record key set
 * to value (a C string: an input's bytes up to its first NUL): the bytes
 * in *out (caller frees), their count returned. The header's length is
 * recomputed, so the fuzzer works on the record, not on the framing. */
size_t fz_model_file(int checkpoint, const char *key, const char *value, unsigned char **out);
/* An input's bytes as a C string (caller frees), bytes >= 0x80 as '?':
 * the safetensors header must be UTF-8, which fuzz_safetensors tests. */
char *fz_cstr(const uint8_t *data, size_t size);

/* The whole of a file. NULL if it cannot be read. */
unsigned char *fz_read_file(const char *path, size_t *n);

#endif
