/* The sorted free list with neighbour merging (see suballoc.h). */
#include "suballoc.h"

#include <string.h>

loom_status loom_suballoc_init(loom_suballoc *sa, loom_ctx *ctx, uint64_t capacity)
{
    memset(sa, 0, sizeof *sa);
    sa->ctx = ctx;
    sa->capacity = capacity;
    sa->cap = 8;
    sa->free = loom_malloc(ctx, (size_t)sa->cap * sizeof *sa->free);
    if (!sa->free)
        return loom_fail(ctx, LOOM_E_OOM, "sub-allocator: out of host memory");
    if (capacity != LOOM_SUBALLOC_GROW && capacity > 0)
        sa->free[sa->nfree++] = (loom_range){0, capacity};
    return LOOM_OK;
}

void loom_suballoc_release(loom_suballoc *sa)
{
    loom_free(sa->ctx, sa->free, (size_t)sa->cap * sizeof *sa->free);
    sa->free = NULL;
    sa->cap = sa->nfree = 0;
}

static uint64_t align_up(uint64_t x, uint64_t a)
{
    return (x + a - 1) / a * a;
}

/* Free ranges lie between live ones: at most live + 2 of them (one more
 * while a take splits). Room for that is made before a take, so a give
 * never allocates. */
static int reserve(loom_suballoc *sa)
{
    if (sa->live + 3 <= sa->cap)
        return 1;
    int ncap = sa->cap * 2;
    loom_range *nf = loom_realloc(sa->ctx, sa->free, (size_t)sa->cap * sizeof *nf, (size_t)ncap * sizeof *nf);
    if (!nf)
        return 0;
    sa->free = nf;
    sa->cap = ncap;
    return 1;
}

static void remove_at(loom_suballoc *sa, int i)
{
    memmove(&sa->free[i], &sa->free[i + 1], (size_t)(sa->nfree - i - 1) * sizeof *sa->free);
    sa->nfree--;
}

/* Cuts [start, start + size) out of free range i. */
static void carve(loom_suballoc *sa, int i, uint64_t start, uint64_t size)
{
    loom_range *f = &sa->free[i];
    uint64_t end = start + size, fend = f->off + f->size;
    if (start > f->off && end < fend) {
        memmove(&sa->free[i + 2], &sa->free[i + 1], (size_t)(sa->nfree - i - 1) * sizeof *sa->free);
        sa->free[i + 1] = (loom_range){end, fend - end};
        f->size = start - f->off;
        sa->nfree++;
    } else if (start > f->off) {
        f->size = start - f->off;
    } else if (end < fend) {
        f->off = end;
        f->size = fend - end;
    } else {
        remove_at(sa, i);
    }
}

int loom_suballoc_take(loom_suballoc *sa, uint64_t size, uint64_t align, uint64_t *off)
{
    if (align == 0)
        align = 1;
    if (!reserve(sa))
        return -1;
    int best = -1;
    uint64_t best_start = 0;
    for (int i = 0; i < sa->nfree; i++) {
        const loom_range *f = &sa->free[i];
        uint64_t start = align_up(f->off, align);
        if (start < f->off || start - f->off > f->size || f->size - (start - f->off) < size)
            continue;
        if (best < 0 || f->size < sa->free[best].size) {
            best = i;
            best_start = start;
        }
    }
    if (best >= 0) {
        carve(sa, best, best_start, size);
    } else if (sa->capacity == LOOM_SUBALLOC_GROW) {
        /* Extend the space, starting inside a free range that touches its
         * end when there is one; an alignment gap stays free. */
        loom_range *last = sa->nfree ? &sa->free[sa->nfree - 1] : NULL;
        int touches = last && last->off + last->size == sa->end;
        uint64_t start = align_up(touches ? last->off : sa->end, align);
        if (touches) {
            last->size = start - last->off;
            if (last->size == 0)
                sa->nfree--;
        } else if (start > sa->end) {
            sa->free[sa->nfree++] = (loom_range){sa->end, start - sa->end};
        }
        best_start = start;
        sa->end = start + size;
    } else {
        return 0;
    }
    sa->live++;
    sa->used += size;
    *off = best_start;
    return 1;
}

void loom_suballoc_give(loom_suballoc *sa, uint64_t off, uint64_t size)
{
    int i = 0;
    while (i < sa->nfree && sa->free[i].off < off)
        i++;
    sa->live--;
    sa->used -= size;
    int prev = i > 0 && sa->free[i - 1].off + sa->free[i - 1].size == off;
    int next = i < sa->nfree && off + size == sa->free[i].off;
    if (prev && next) {
        sa->free[i - 1].size += size + sa->free[i].size;
        remove_at(sa, i);
    } else if (prev) {
        sa->free[i - 1].size += size;
    } else if (next) {
        sa->free[i].off = off;
        sa->free[i].size += size;
    } else {
        memmove(&sa->free[i + 1], &sa->free[i], (size_t)(sa->nfree - i) * sizeof *sa->free);
        sa->free[i] = (loom_range){off, size};
        sa->nfree++;
    }
}
