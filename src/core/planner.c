/* Liveness, in-place reuse and best-fit placement with merging of freed
 * blocks. A unit is one block of memory; a chain of in-place writes
 * extends one unit over several tensors. */
#include "planner.h"
#include "../common/suballoc.h"

#include <string.h>

typedef struct unit {
    uint64_t off, size;
    int first, last;
} unit;

static uint64_t align_up(uint64_t x, uint64_t a)
{
    return a ? (x + a - 1) / a * a : x;
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
    /* the tensors by defining step (stable): a value a later node computes
     * (node.by) comes before its definer in the node order */
    int *byfirst = loom_malloc(ctx, (size_t)(n ? n : 1) * sizeof *byfirst);
    int *rank = loom_malloc(ctx, (size_t)(n ? n : 1) * sizeof *rank);
    loom_suballoc fl;
    int have_fl = loom_suballoc_init(&fl, ctx, LOOM_SUBALLOC_GROW) == LOOM_OK;
    loom_status st = LOOM_OK;
    if (!out->live_bytes || !u || !byfirst || !rank || !have_fl) {
        st = loom_fail(ctx, LOOM_E_OOM, "planner: out of memory for %d tensors over %d steps", n, steps);
        goto done;
    }
    for (int k = 0; k < n; k++) {
        int j = k;
        while (j > 0 && t[byfirst[j - 1]].first > t[k].first) {
            byfirst[j] = byfirst[j - 1];
            j--;
        }
        byfirst[j] = k;
    }
    for (int k = 0; k < n; k++)
        rank[byfirst[k]] = k;
    for (int k = 0; k < n; k++)
        if (t[k].first < 0 || t[k].first >= steps || t[k].last < t[k].first) {
            st = loom_fail(ctx, LOOM_E_INVALID, "planner: internal: tensor %d (steps %d to %d) outside the %d steps",
                           k, t[k].first, t[k].last, steps);
            goto done;
        }
    int nunits = 0;
    int ti = 0;
    for (int s = 0; s < steps; s++) {
        for (; ti < n && t[byfirst[ti]].first == s; ti++) {
            loom_plan_tensor *x = &t[byfirst[ti]];
            uint64_t size = align_up(x->bytes ? x->bytes : 1, alignment);
            out->naive_bytes += size;
            int src = x->inplace_src;
            if (src >= 0 && src < n && rank[src] < ti && t[src].last == s && u[t[src].unit].last == s &&
                u[t[src].unit].size >= size) {
                /* Extend the dying input's unit instead of a new block. */
                x->unit = t[src].unit;
                u[x->unit].last = x->last;
                out->inplace++;
            } else {
                uint64_t off = 0;
                if (loom_suballoc_take(&fl, size, alignment, &off) != 1) {
                    st = loom_fail(ctx, LOOM_E_OOM, "planner: out of memory for %d tensors", n);
                    goto done;
                }
                x->unit = nunits++;
                u[x->unit] = (unit){off, size, s, x->last};
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
                loom_suballoc_give(&fl, u[k].off, u[k].size);
        }
        out->live_bytes[s] = live;
        if (live > out->lower_bound)
            out->lower_bound = live;
    }
    if (ti != n) {
        st = loom_fail(ctx, LOOM_E_INVALID, "planner: internal: tensor %d defined at step %d of %d", byfirst[ti],
                       t[byfirst[ti]].first, steps);
        goto done;
    }
    out->arena_bytes = fl.end;
done:
    loom_free(ctx, u, (size_t)(n ? n : 1) * sizeof *u);
    loom_free(ctx, byfirst, (size_t)(n ? n : 1) * sizeof *byfirst);
    loom_free(ctx, rank, (size_t)(n ? n : 1) * sizeof *rank);
    if (have_fl)
        loom_suballoc_release(&fl);
    if (st != LOOM_OK)
        loom_plan_result_free(ctx, out);
    return st;
}

void loom_plan_result_free(loom_ctx *ctx, loom_plan_result *r)
{
    loom_free(ctx, r->live_bytes, (size_t)(r->steps ? r->steps : 1) * sizeof *r->live_bytes);
    r->live_bytes = NULL;
}
