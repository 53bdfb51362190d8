/* Internals shared by the data-set and model-file code of src/nn, which is
 * built on the public API (include/loom.h) alone. */
#ifndef LOOM_NN_INTERNAL_H
#define LOOM_NN_INTERNAL_H

#include "loom.h"
#include "../common/checked.h"

#include <stddef.h>
#include <time.h>

struct loom_dataset {
    loom_ctx *ctx;
    int64_t n;
    int64_t features;
    int64_t rows, cols;         /* the image size the features came from */
    int classes;
    int scaled;                 /* loom_dataset_scale ran: a second one is a bug */
    loom_scaling scaling;       /* when scaled: how, and its (mean, std) */
    float stats[2];
    float *x;                   /* [n, features] */
    int32_t *y;                 /* [n, ylen] */
    int64_t ylen;               /* labels per row: 1, or a sequence's */
};

/* A data set of n rows with room for its data (contents undefined);
 * NULL when out of memory (no message set). */
loom_dataset *loom_dataset_alloc(loom_ctx *ctx, int64_t n, int64_t features);
/* The same with ylen labels per row. */
loom_dataset *loom_dataset_alloc_seq(loom_ctx *ctx, int64_t n, int64_t features, int64_t ylen);
/* Recomputes ds->classes from the labels. */
void loom_dataset_count_classes(loom_dataset *ds);

/* Applies a scaling to n values in place: the one definition that
 * loom_dataset_scale and loom_sequential_preprocess share, so a model's
 * inputs are scaled bit for bit as its training data was. */
void loom_scale_values(loom_scaling how, const float stats[2], float *x, size_t n);

/* Monotonic clock in seconds (src/nn keeps its own: core's is internal). */
static inline double loom_nn_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Saves the tensors of st that keep(name, user) accepts (every one when
 * keep is NULL), as loom_safetensors_save does; its f32 tensors stored as
 * `as` (LOOM_F32: as they are; LOOM_F16, LOOM_BF16: rounded). */
loom_status loom_safetensors_save_filtered(loom_state *st, const char *path, const char *const *meta,
                                           int (*keep)(const char *name, void *user), void *user, loom_dtype as);

/* The keys of a tensor file's __metadata__, in file order. */
int loom_safetensors_meta_count(const loom_tensor_file *f);
const char *loom_safetensors_meta_key(const loom_tensor_file *f, int i);

/* File formats fix their byte order; these read and write it whatever the
 * host's order is. */
static inline uint32_t loom_load_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline uint64_t loom_load_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static inline void loom_store_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline int loom_host_is_le(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

/* Reverses the bytes of each of the count elements of size elem (1, 2, 4
 * or 8) in place: little-endian file data <-> a big-endian host. */
static inline void loom_swap_elems(void *data, size_t count, size_t elem)
{
    unsigned char *p = data;
    if (elem < 2)
        return;
    for (size_t i = 0; i < count; i++, p += elem)
        for (size_t a = 0, b = elem - 1; a < b; a++, b--) {
            unsigned char t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

#endif
