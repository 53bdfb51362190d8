/*
 * Checked arithmetic for every size, shape product and offset computed from
 * data a user can hand loom (model files, options, shapes): one helper,
 * used by core, the backends, src/nn and the tools. Pure arithmetic: it
 * includes nothing of loom's internals.
 */
#ifndef LOOM_CHECKED_H
#define LOOM_CHECKED_H

#include <stddef.h>
#include <stdint.h>

/* Each returns 1 when the result does not fit (then *out is undefined),
 * 0 when it does. */
static inline int loom_mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    return __builtin_mul_overflow(a, b, out);
}

static inline int loom_add_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    return __builtin_add_overflow(a, b, out);
}

static inline int loom_mul_size(size_t a, size_t b, size_t *out)
{
    return __builtin_mul_overflow(a, b, out);
}

static inline int loom_add_size(size_t a, size_t b, size_t *out)
{
    return __builtin_add_overflow(a, b, out);
}

/* The largest element count or byte count loom accepts for one tensor:
 * what an int64_t index and a size_t byte count both hold. */
#define LOOM_MAX_BYTES ((uint64_t)INT64_MAX < (uint64_t)SIZE_MAX ? (uint64_t)INT64_MAX : (uint64_t)SIZE_MAX)

/* numel = product of the dims and bytes = numel * elem_size, both within
 * LOOM_MAX_BYTES; 1 if a dim is negative or either overflows. Zero dims
 * give zero (callers that refuse empty tensors check dims themselves). */
static inline int loom_shape_bytes(int ndim, const int64_t *shape, uint64_t elem_size, uint64_t *numel,
                                   uint64_t *bytes)
{
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || loom_mul_u64(n, (uint64_t)shape[i], &n) || n > LOOM_MAX_BYTES)
            return 1;
    }
    uint64_t b;
    if (loom_mul_u64(n, elem_size, &b) || b > LOOM_MAX_BYTES)
        return 1;
    if (numel)
        *numel = n;
    if (bytes)
        *bytes = b;
    return 0;
}

#endif
