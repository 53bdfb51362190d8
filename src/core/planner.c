/* Liveness, in-place reuse and best-fit placement with merging of freed
 * blocks. A unit is one block of memory; a chain of in-place writes
 * extends one unit over several tensors. */
#include "planner.h"

#include <string.h>

typedef struct block {
    uint64_t off, size;
} block;

typedef struct unit {
    uint64_t off, size;
    int first, last;
} unit;

typedef struct freelist {
    block *b;
    int n, cap;
    uint64_t end;       /* the arena's current size */
} freelist;

static uint64_t align_up(uint64_t x, uint64_t a)
{
    return a ? (x + a - 1) / a * a : x;
}

/* Best fit: the smallest free block that holds size; else grow the arena,
 * reusing a free block that touches its end. */
static uint64_t fl_alloc(freelist *fl, uint64_t size)
{
    int best = -1;
    for (int i = 0; i < fl->n; i++)
        if (fl->b[i].size >= size && (best < 0 || fl->b[i].size < fl->b[best].size))
            best = i;
    if (best >= 0) {
        uint64_t off = fl->b[best].off;
        fl->b[best].off += size;
        fl->b[best].size -= size;
        if (fl->b[best].size == 0) {
            memmove(&fl->b[best], &fl->b[best + 1], (size_t)(fl->n - best - 1) * sizeof *fl->b);
            fl->n--;
        }
        return off;
    }
    if (fl->n && fl->b[fl->n - 1].off + fl->b[fl->n - 1].size == fl->end) {
        uint64_t off = fl->b[fl->n - 1].off;
        fl->end = off + size;
        fl->n--;
        return off;
    }
    uint64_t off = fl->end;
    fl->end += size;
    return off;
}

/* Inserts in offset order and merges with both neighbours. The list never
 * holds more blocks than units, so it cannot overflow its capacity. */
static void fl_free(freelist *fl, uint64_t off, uint64_t size)
{
    int i = 0;
    while (i < fl->n && fl->b[i].off < off)
        i++;
    int merged_prev = i > 0 && fl->b[i - 1].off + fl->b[i - 1].size == off;
    int merged_next = i < fl->n && off + size == fl->b[i].off;
    if (merged_prev && merged_next) {
        fl->b[i - 1].size += size + fl->b[i].size;
        memmove(&fl->b[i], &fl->b[i + 1], (size_t)(fl->n - i - 1) * sizeof *fl->b);
        fl->n--;
    } else if (merged_prev) {
        fl->b[i - 1].size += size;
    } else if (merged_next) {
        fl->b[i].off = off;
        fl->b[i].size += size;
    } else {
        memmove(&fl->b[i + 1], &fl->b[i], (size_t)(fl->n - i) * sizeof *fl->b);
        fl->b[i] = (block){off, size};
        fl->n++;
    }
}

loom_status loom_plan(loom_ctx *ctx, loom_plan_tensor *t, int n, int steps, uint64_t alignment,
                      loom_plan_result *out)
{
    memset(out, 0, sizeof *out);
    if (alignment == 0)
        alignment = 1;
    out->steps = steps;
    out->live_bytes = loom_calloc(ctx, (size_t)(steps ? steps : 1), sizeof *out->live_bytes);
    unit *u = loom_calloc(ctx, (size_t)(n ? n : 1), sizeof *u);
    freelist fl = {0};
    fl.cap = n + 1;
    fl.b = loom_calloc(ctx, (size_t)fl.cap, sizeof *fl.b);
    loom_status st = LOOM_OK;
    if (!out->live_bytes || !u || !fl.b) {
        st = loom_fail(ctx, LOOM_E_OOM, "planner: out of memory for %d tensors over %d steps", n, steps);
        goto done;
    }
    int nunits = 0;
    int ti = 0;
    for (int s = 0; s < steps; s++) {
        for (; ti < n && t[ti].first == s; ti++) {
            loom_plan_tensor *x = &t[ti];
            uint64_t size = align_up(x->bytes ? x->bytes : 1, alignment);
            out->naive_bytes += size;
            int src = x->inplace_src;
            if (src >= 0 && src < ti && t[src].last == s && u[t[src].unit].last == s &&
                u[t[src].unit].size >= size) {
                /* Extend the dying input's unit instead of a new block. */
                x->unit = t[src].unit;
                u[x->unit].last = x->last;
                out->inplace++;
            } else {
                x->unit = nunits++;
                u[x->unit] = (unit){fl_alloc(&fl, size), size, s, x->last};
            }
            x->offset = u[x->unit].off;
        }
        /* A unit extended by an in-place write has moved its last use, so
         * only units whose (final) last step is this one are freed. */
        uint64_t live = 0;
        for (int k = 0; k < nunits; k++) {
            if (u[k].first <= s && u[k].last >= s)
                live += u[k].size;
            if (u[k].last == s)
                fl_free(&fl, u[k].off, u[k].size);
        }
        out->live_bytes[s] = live;
        if (live > out->lower_bound)
            out->lower_bound = live;
    }
    out->arena_bytes = fl.end;
done:
    loom_free(ctx, u, (size_t)(n ? n : 1) * sizeof *u);
    loom_free(ctx, fl.b, (size_t)fl.cap * sizeof *fl.b);
    if (st != LOOM_OK)
        loom_plan_result_free(ctx, out);
    return st;
}

void loom_plan_result_free(loom_ctx *ctx, loom_plan_result *r)
{
    loom_free(ctx, r->live_bytes, (size_t)(r->steps ? r->steps : 1) * sizeof *r->live_bytes);
    r->live_bytes = NULL;
}
