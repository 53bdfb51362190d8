/*
 * The one sub-allocator: ranges of one address space handed out from a free
 * list kept sorted by offset, with neighbours merged on free. It serves the
 * memory planner (an arena that grows to what the plan needs) and every
 * backend's device memory (fixed-size blocks cut into tensors).
 */
#ifndef LOOM_SUBALLOC_H
#define LOOM_SUBALLOC_H

#include "loom.h"

#define LOOM_SUBALLOC_GROW UINT64_MAX

typedef struct loom_range {
    uint64_t off, size;
} loom_range;

typedef struct loom_suballoc {
    loom_ctx *ctx;
    loom_range *free;          /* sorted by offset, never adjacent */
    int nfree, cap;
    int live;                  /* ranges handed out */
    uint64_t used;             /* their bytes */
    uint64_t capacity;         /* the space's size, or LOOM_SUBALLOC_GROW */
    uint64_t end;              /* growable: the extent reached so far */
} loom_suballoc;

/* A space of `capacity` bytes, all free, or LOOM_SUBALLOC_GROW for one that
 * extends at its end when nothing fits. LOOM_E_OOM if the list cannot be
 * allocated. */
loom_status loom_suballoc_init(loom_suballoc *sa, loom_ctx *ctx, uint64_t capacity);
void loom_suballoc_release(loom_suballoc *sa);
/* Best fit: the smallest free range that holds size bytes at an offset that
 * is a multiple of align (any positive number). 1 and *off on success; 0
 * when a fixed space has no room; -1 when the host is out of memory. */
int loom_suballoc_take(loom_suballoc *sa, uint64_t size, uint64_t align, uint64_t *off);
/* Returns a range that take handed out. Never allocates (room for the free
 * range was reserved when it was taken). */
void loom_suballoc_give(loom_suballoc *sa, uint64_t off, uint64_t size);

#endif
