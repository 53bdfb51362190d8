/* The memory planner: pure code that assigns arena offsets. It knows
 * nothing of devices or graphs, so it is tested on its own. */
#ifndef LOOM_PLANNER_H
#define LOOM_PLANNER_H

#include "internal.h"

typedef struct loom_plan_tensor {
    uint64_t bytes;     /* unaligned size */
    int first;          /* step that defines it (0 for uploaded tensors) */
    int last;           /* last step that reads it (>= first) */
    int inplace_src;    /* -1, or a tensor this one may overwrite: an input of
                           its defining step that dies there, same bytes */
    /* results */
    uint64_t offset;
    int unit;           /* tensors that share memory through in-place
                           writes share a unit */
} loom_plan_tensor;

typedef struct loom_plan_result {
    uint64_t arena_bytes;
    uint64_t lower_bound;
    uint64_t naive_bytes;
    int inplace;
    int steps;
    uint64_t *live_bytes;   /* steps entries, allocated through ctx */
} loom_plan_result;

/* Tensors in any order (placed by `first`, ties in the given order); each
 * first in [0, steps). Offsets are multiples of alignment (a power of two
 * or any positive number). */
loom_status loom_plan(loom_ctx *ctx, loom_plan_tensor *t, int n, int steps, uint64_t alignment,
                      loom_plan_result *out);
void loom_plan_result_free(loom_ctx *ctx, loom_plan_result *r);

#endif
