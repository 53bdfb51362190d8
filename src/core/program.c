/* loom_compile and the program's life: copy, fuse, ask the backend, plan,
 * allocate, prepare, run. */
#include "program.h"
#include "graph.h"
#include "profile.h"

#include <assert.h>
#include <math.h>
#include <string.h>

/* A node's input array has room for 3: the fusion pass turns an add (2
 * inputs) or an activation (1) into a matmul with a bias (3). */
static int in_room(int nin)
{
    return nin < 3 ? 3 : nin;
}

static void program_free(loom_program *p)
{
    loom_ctx *ctx = p->ctx;
    const loom_backend_ops *ops = p->dev->ops;
    if (p->bprog)
        ops->release(p->bprog);
    if (p->arena)
        ops->buffer_free(p->dev->bdev, p->arena);
    if (p->st)
        loom_state_detach(p->st, p);
    for (int i = 0; i < p->n; i++) {
        loom_free(ctx, p->nodes[i].in, (size_t)in_room(p->nodes[i].nin) * sizeof(int32_t));
        loom_strfree(ctx, p->nodes[i].name);
        loom_free(ctx, p->nodes[i].data, p->nodes[i].data_bytes);
    }
    loom_free(ctx, p->nodes, (size_t)p->nalloc * sizeof *p->nodes);
    loom_free(ctx, p->gidx, (size_t)p->nalloc * sizeof *p->gidx);
    loom_free(ctx, p->tensors, (size_t)(p->n ? p->n : 1) * sizeof *p->tensors);
    loom_free(ctx, p->exec, (size_t)(p->nexec ? p->nexec : 1) * sizeof *p->exec);
    loom_free(ctx, p->exec_in, (size_t)(p->nexec_in ? p->nexec_in : 1) * sizeof *p->exec_in);
    loom_free(ctx, p->slots, (size_t)(p->eprog.nslots ? p->eprog.nslots : 1) * sizeof *p->slots);
    loom_free(ctx, p->pending, (size_t)p->cappending * sizeof *p->pending);
    loom_plan_result_free(ctx, &p->plan);
    loom_profile_free(p);
    p->magic = 0;
    loom_free(ctx, p, sizeof *p);
}

void loom_program_destroy(loom_program *p)
{
    if (!p || p->magic != LOOM_PROGRAM_MAGIC)
        return;
    if (p->inflight && p->dev->ops->wait)
        (void)p->dev->ops->wait(p->bprog, p->fence); /* its buffers are freed next */
    program_free(p);
}

/* Copies the nodes the outputs and updates need, renumbered densely. */
static loom_status copy_needed(loom_program *p, const loom_graph *g)
{
    loom_ctx *ctx = p->ctx;
    int32_t *map = loom_calloc(ctx, (size_t)g->n, sizeof *map);
    if (!map)
        return loom_fail(ctx, LOOM_E_OOM, "loom_compile: out of memory");
    int any = 0;
    for (int i = g->n - 1; i >= 0; i--) {
        const loom_node *nd = &g->nodes[i];
        if (nd->is_output || nd->side_effect)
            map[i] = 1, any = 1;
        if (map[i])
            for (int k = 0; k < nd->nin; k++)
                map[nd->in[k] - 1] = 1;
    }
    if (!any) {
        loom_free(ctx, map, (size_t)g->n * sizeof *map);
        return loom_fail(ctx, LOOM_E_INVALID, "loom_compile: nothing to compute (mark a tensor with loom_output)");
    }
    int n = 0;
    for (int i = 0; i < g->n; i++)
        if (map[i])
            map[i] = ++n;
    loom_status s = LOOM_OK;
    p->nodes = loom_calloc(ctx, (size_t)n, sizeof *p->nodes);
    p->gidx = loom_calloc(ctx, (size_t)n, sizeof *p->gidx);
    p->nalloc = n;
    if (!p->nodes || !p->gidx) {
        s = loom_fail(ctx, LOOM_E_OOM, "loom_compile: out of memory for %d nodes", n);
        goto out;
    }
    for (int i = 0; i < g->n; i++) {
        if (!map[i])
            continue;
        const loom_node *gn = &g->nodes[i];
        loom_node *d = &p->nodes[p->n];
        *d = *gn;
        p->gidx[p->n] = i;
        d->in = NULL;
        d->nin = 0;
        d->data = NULL;
        d->data_bytes = 0;
        d->name = loom_strdup(ctx, gn->name);
        if (!d->name) {
            s = loom_fail(ctx, LOOM_E_OOM, "loom_compile: out of memory");
            goto out;
        }
        p->n++;
        /* What a running node reads from its own data (a custom op's
         * source) goes along; constants are uploaded from the graph. */
        if (gn->data && gn->role == LOOM_ROLE_INTERMEDIATE) {
            if (!(d->data = loom_malloc(ctx, gn->data_bytes))) {
                s = loom_fail(ctx, LOOM_E_OOM, "loom_compile: out of memory");
                goto out;
            }
            memcpy(d->data, gn->data, gn->data_bytes);
            d->data_bytes = gn->data_bytes;
        }
        int nin = gn->nin;
        if (nin) {
            d->in = loom_malloc(ctx, (size_t)in_room(nin) * sizeof *d->in);
            if (!d->in) {
                s = loom_fail(ctx, LOOM_E_OOM, "loom_compile: out of memory");
                goto out;
            }
            d->nin = nin;
            for (int k = 0; k < nin; k++)
                d->in[k] = map[gn->in[k] - 1];
        }
    }
out:
    loom_free(ctx, map, (size_t)g->n * sizeof *map);
    return s;
}

static int is_upload(const loom_node *nd)
{
    return nd->op == LOOM_OP_INPUT || nd->op == LOOM_OP_CONST;
}

/* Nodes that hold memory: everything but parameters (in the state), updates
 * (no output) and nodes a fusion absorbed. */
static int planned(const loom_node *nd)
{
    return nd->op != LOOM_OP_PARAM && !nd->side_effect && !nd->dead;
}

static int find_io(const loom_program *p, const char *name);

static loom_status check_binding(loom_program *p, const loom_node *nd, uint64_t bytes)
{
    const loom_device_info *info = &p->dev->info;
    if (info->max_binding_bytes && bytes > info->max_binding_bytes) {
        char sb[96];
        return loom_fail(p->ctx, LOOM_E_UNSUPPORTED,
                         "loom_compile: tensor \"%s\" (%s %s %s) is %llu bytes, above the largest binding of %s "
                         "(%s: %llu bytes)",
                         nd->name, loom_op_name(nd->op), loom_dtype_name(nd->dtype),
                         loom_shape_str(sb, sizeof sb, nd->ndim, nd->shape), (unsigned long long)bytes,
                         info->spec, info->name, (unsigned long long)info->max_binding_bytes);
    }
    return LOOM_OK;
}

/* Liveness over the node order, then the planner. */
static loom_status plan(loom_program *p, uint64_t *offsets)
{
    loom_ctx *ctx = p->ctx;
    int n = p->n;
    int *last = loom_malloc(ctx, (size_t)n * sizeof *last);
    int *order = loom_malloc(ctx, (size_t)n * sizeof *order);
    int *slot = loom_malloc(ctx, (size_t)n * sizeof *slot);
    loom_plan_tensor *pt = loom_calloc(ctx, (size_t)n, sizeof *pt);
    loom_status s = LOOM_OK;
    if (!last || !order || !pt || !slot) {
        s = loom_fail(ctx, LOOM_E_OOM, "loom_compile: out of memory planning %d nodes", n);
        goto out;
    }
    for (int i = 0; i < n; i++)
        last[i] = i;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < p->nodes[i].nin && !p->nodes[i].dead; k++) {
            int src = p->nodes[i].in[k] - 1;
            if (last[src] < i)
                last[src] = i;
        }
    int np = 0;
    /* Uploaded tensors first: they must hold from before step 0 to the
     * end of every run. */
    for (int i = 0; i < n; i++)
        slot[i] = -1;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++) {
            const loom_node *nd = &p->nodes[i];
            int early = is_upload(nd) || (p->guard && nd->is_output);
            if (!planned(nd) || early != (pass == 0))
                continue;
            loom_plan_tensor *t = &pt[np];
            int guarded = p->guard && nd->is_output;
            t->bytes = (uint64_t)nd->numel * loom_dtype_size(nd->dtype) + (guarded ? 2u * (uint64_t)p->guard : 0);
            /* Guarded outputs hold their block for the whole run, so no
             * earlier tensor legitimately writes over their guards. */
            /* a value a later node computes (node.by) exists from there */
            t->first = (pass == 0 || guarded) ? 0 : nd->by ? nd->by - 1 : i;
            t->last = (pass == 0 || nd->is_output) ? n - 1 : last[i];
            t->inplace_src = -1;
            if (pass == 1 && (loom_op_def_of(nd->op)->flags & LOOM_OPF_INPLACE)) {
                for (int k = 0; k < nd->nin; k++) {
                    int src = nd->in[k] - 1;
                    const loom_node *ns = &p->nodes[src];
                    if (slot[src] >= 0 && !is_upload(ns) && !(p->guard && nd->is_output) && !ns->is_output &&
                        last[src] == i && ns->numel == nd->numel && ns->dtype == nd->dtype) {
                        t->inplace_src = slot[src];
                        break;
                    }
                }
            }
            order[np] = i;
            slot[i] = np++;
        }
    /* loom_plan takes them by first step: a value a later node computes
     * (node.by) starts there, after the tensors of the nodes in between */
    uint64_t align = p->dev->info.alignment ? p->dev->info.alignment : 16;
    s = loom_plan(ctx, pt, np, n, align, &p->plan);
    if (s != LOOM_OK)
        goto out;
    for (int k = 0; k < np; k++)
        offsets[order[k]] = pt[k].offset;
out:
    loom_free(ctx, last, (size_t)n * sizeof *last);
    loom_free(ctx, order, (size_t)n * sizeof *order);
    loom_free(ctx, slot, (size_t)n * sizeof *slot);
    loom_free(ctx, pt, (size_t)n * sizeof *pt);
    return s;
}

#define GUARD_BYTE 0xA5

static loom_status fill_guards(loom_program *p, const loom_bref *m)
{
    unsigned char pat[1024];
    memset(pat, GUARD_BYTE, sizeof pat);
    const loom_backend_ops *ops = p->dev->ops;
    LOOM_TRY(ops->buffer_write(p->dev->bdev, m->buf, m->offset - (uint64_t)p->guard, pat, (uint64_t)p->guard));
    return ops->buffer_write(p->dev->bdev, m->buf, m->offset + m->bytes, pat, (uint64_t)p->guard);
}

loom_status loom_program_check_guards(loom_program *p)
{
    if (!p || p->magic != LOOM_PROGRAM_MAGIC)
        return LOOM_E_INVALID;
    if (!p->guard)
        return LOOM_OK;
    unsigned char buf[1024];
    for (int i = 0; i < p->n; i++) {
        const loom_node *nd = &p->nodes[i];
        if (!nd->is_output || !planned(nd) || is_upload(nd))
            continue;
        const loom_bref *m = &p->tensors[i].mem;
        for (int side = 0; side < 2; side++) {
            uint64_t off = side ? m->offset + m->bytes : m->offset - (uint64_t)p->guard;
            LOOM_TRY(p->dev->ops->buffer_read(p->dev->bdev, m->buf, off, buf, (uint64_t)p->guard));
            for (int k = 0; k < p->guard; k++)
                if (buf[k] != GUARD_BYTE)
                    return loom_fail(p->ctx, LOOM_E_DEVICE,
                                     "guard check on %s: op %s wrote %s its output \"%s\" (byte %d of the guard)",
                                     p->dev->info.spec, loom_op_name(nd->op), side ? "past the end of" : "before",
                                     nd->name, side ? k : p->guard - k);
        }
    }
    return LOOM_OK;
}

/* Indices that are the program's own data (constants) are checked now,
 * those that come with each run in loom_program_set_input; indices from the
 * state reach the kernels, which give NaN (or add nothing) for one out of
 * range. An op's index input (LOOM_OPF_LABELS, the table's index_in) is
 * followed back through the layout ops (reshape, expand, transpose: the
 * same values) to the leaf that holds them. */
static int index_leaf(const loom_program *p, const loom_node *nd)
{
    int i = nd->in[loom_op_def_of(nd->op)->index_in] - 1;
    while (loom_op_def_of(p->nodes[i].op)->family == LOOM_FAM_GATHER)
        i = p->nodes[i].in[0] - 1;
    return i;
}

static loom_status check_labels(loom_program *p, const loom_node *nd, const int32_t *v, int64_t n,
                                const char *what)
{
    const loom_op_def *def = loom_op_def_of(nd->op);
    const loom_node *ins[8] = {0};
    for (int k = 0; k < nd->nin && k < 8; k++)
        ins[k] = &p->nodes[nd->in[k] - 1];
    int64_t c = def->index_bound(nd, ins);
    for (int64_t j = 0; j < n; j++)
        if (v[j] < 0 || v[j] >= c)
            return loom_fail(p->ctx, LOOM_E_RANGE, "%s: %s %d at index %lld of %s \"%s\" is outside [0, %lld)",
                             loom_op_name(nd->op), def->index_what, v[j], (long long)j, what,
                             p->nodes[index_leaf(p, nd)].name, (long long)c);
    return LOOM_OK;
}

static loom_status check_constant_labels(loom_program *p, const loom_graph *g)
{
    for (int i = 0; i < p->n; i++) {
        const loom_node *nd = &p->nodes[i];
        if (!(loom_op_def_of(nd->op)->flags & LOOM_OPF_LABELS))
            continue;
        const loom_node *gl = &g->nodes[p->gidx[index_leaf(p, nd)]];
        if (gl->op == LOOM_OP_CONST)
            LOOM_TRY(check_labels(p, nd, gl->data, gl->numel, "the constant"));
    }
    return LOOM_OK;
}

static loom_status place_tensors(loom_program *p, const loom_graph *g)
{
    loom_ctx *ctx = p->ctx;
    const loom_backend_ops *ops = p->dev->ops;
    uint64_t *offsets = loom_calloc(ctx, (size_t)p->n, sizeof *offsets);
    loom_status s = LOOM_OK;
    if (!offsets)
        return loom_fail(ctx, LOOM_E_OOM, "loom_compile: out of memory");
    /* Every tensor's binding first: a refused compile creates no state
     * tensor. */
    for (int i = 0; i < p->n; i++) {
        loom_node *nd = &p->nodes[i];
        if (!nd->side_effect && !nd->dead &&
            (s = check_binding(p, nd, (uint64_t)nd->numel * loom_dtype_size(nd->dtype))) != LOOM_OK)
            goto out;
    }
    for (int i = 0; i < p->n; i++) {
        loom_node *nd = &p->nodes[i];
        if (nd->side_effect || nd->dead)
            continue;
        if (nd->op == LOOM_OP_PARAM) {
            loom_state_slot *e;
            if ((s = loom_state_ensure(p->st, nd->name, nd->dtype, nd->ndim, nd->shape, &e)) != LOOM_OK)
                goto out;
            p->tensors[i].mem = (loom_bref){e->buf, 0, e->bytes};
        }
    }
    if ((s = plan(p, offsets)) != LOOM_OK)
        goto out;
    if (p->plan.arena_bytes) {
        s = ops->buffer_alloc(p->dev->bdev, p->plan.arena_bytes, LOOM_LIFE_ARENA, &p->arena);
        if (s != LOOM_OK)
            goto out;
    }
    for (int i = 0; i < p->n; i++) {
        loom_node *nd = &p->nodes[i];
        if (!planned(nd))
            continue;
        uint64_t bytes = (uint64_t)nd->numel * loom_dtype_size(nd->dtype);
        uint64_t gb = p->guard && nd->is_output ? (uint64_t)p->guard : 0;
        p->tensors[i].mem = (loom_bref){p->arena, offsets[i] + gb, bytes};
        if (gb && (s = fill_guards(p, &p->tensors[i].mem)) != LOOM_OK)
            goto out;
    }
    /* Constants go up once, now. The graph still holds their data. */
    for (int i = 0; i < p->n; i++) {
        const loom_node *gn = &g->nodes[p->gidx[i]];
        if (gn->op == LOOM_OP_CONST) {
            loom_bref *m = &p->tensors[i].mem;
            if ((s = ops->buffer_write(p->dev->bdev, m->buf, m->offset, gn->data, m->bytes)) != LOOM_OK)
                goto out;
        }
    }
out:
    loom_free(ctx, offsets, (size_t)p->n * sizeof *offsets);
    return s;
}

static int backend_supports(const loom_program *p, const loom_exec_node *x)
{
    /* No supports() slot: every built-in op, but no custom kernel. */
    return p->dev->ops->supports ? p->dev->ops->supports(p->dev->bdev, x)
                                 : x->def->family != LOOM_FAM_CUSTOM;
}

static loom_status unsupported(const loom_program *p, const loom_node *nd)
{
    char sb[96];
    return loom_fail(p->ctx, LOOM_E_UNSUPPORTED, "loom_compile: %s cannot run op %s (\"%s\" %s %s) on %s",
                     p->dev->ops->name, loom_op_name(nd->op), nd->name, loom_dtype_name(nd->dtype),
                     loom_shape_str(sb, sizeof sb, nd->ndim, nd->shape), p->dev->info.spec);
}

/* Updates of one optimizer that follow each other form a group a backend
 * may run as one multi-tensor dispatch: the same op, the same
 * hyper-parameters (so the same run-slot values), the same clipping sumsq. */
static int same_update(const loom_exec_node *a, const loom_exec_node *b)
{
    const loom_attr *x = &a->node->attr, *y = &b->node->attr;
    return a->node->op == b->node->op && a->nin == b->nin && x->beta1 == y->beta1 && x->beta2 == y->beta2 &&
           x->eps == y->eps && x->momentum == y->momentum && x->weight_decay == y->weight_decay && x->l1 == y->l1 &&
           x->l2 == y->l2 && x->clip_norm == y->clip_norm && x->decay == y->decay && x->nesterov == y->nesterov &&
           x->clip == y->clip && x->skip_nonfinite == y->skip_nonfinite &&
           (!x->clip || a->in[a->nin - 1] == b->in[b->nin - 1]);
}

static void group_updates(loom_program *p)
{
    for (int i = 0; i < p->nexec;) {
        loom_exec_node *x = &p->exec[i];
        int j = i + 1;
        if (x->def->flags & LOOM_OPF_MULTI)
            while (j < p->nexec && same_update(x, &p->exec[j]))
                p->exec[j++].group = 0;
        x->group = j - i;
        i = j;
    }
}

/* The exec nodes, in order, each asked of the backend before any memory
 * or state tensor exists: a refused compile leaves the state as it was. */
static loom_status build_exec(loom_program *p)
{
    loom_ctx *ctx = p->ctx;
    p->tensors = loom_calloc(ctx, (size_t)(p->n ? p->n : 1), sizeof *p->tensors);
    if (!p->tensors)
        return loom_fail(ctx, LOOM_E_OOM, "loom_compile: out of memory");
    for (int i = 0; i < p->n; i++) {
        p->tensors[i].node = &p->nodes[i];
        if (p->nodes[i].role == LOOM_ROLE_INTERMEDIATE && !p->nodes[i].dead && !p->nodes[i].by) {
            p->nexec++;
            p->nexec_in += p->nodes[i].nin;
        }
    }
    p->exec = loom_calloc(ctx, (size_t)(p->nexec ? p->nexec : 1), sizeof *p->exec);
    p->exec_in = loom_calloc(ctx, (size_t)(p->nexec_in ? p->nexec_in : 1), sizeof *p->exec_in);
    if (!p->exec || !p->exec_in)
        return loom_fail(ctx, LOOM_E_OOM, "loom_compile: out of memory");
    int e = 0, k = 0, nslots = 0;
    for (int i = 0; i < p->n; i++) {
        loom_node *nd = &p->nodes[i];
        if (nd->role != LOOM_ROLE_INTERMEDIATE || nd->dead || nd->by)
            continue;
        loom_exec_node *x = &p->exec[e];
        x->node = nd;
        x->def = loom_op_def_of(nd->op);
        x->index = e;
        x->nin = nd->nin;
        x->in = &p->exec_in[k];
        for (int j = 0; j < nd->nin; j++)
            p->exec_in[k++] = &p->tensors[nd->in[j] - 1];
        x->out = nd->side_effect ? NULL : &p->tensors[i];
        for (int a = 0; a < 2; a++)
            x->also[a] = nd->also[a] ? &p->tensors[nd->also[a] - 1] : NULL;
        x->group = 1;
        x->run_slot = x->def->runvals ? nslots++ : -1;
        if (nd->side_effect)
            p->has_updates = 1;
        if (!backend_supports(p, x))
            return unsupported(p, nd);
        if (ctx->log_level >= LOOM_LOG_DEBUG) {
            char sb[96];
            loom_logf(ctx, LOOM_LOG_DEBUG, "loom_compile: node %d: %s \"%s\" %s %s%s", e, loom_op_name(nd->op), nd->name,
                      loom_dtype_name(nd->dtype), loom_shape_str(sb, sizeof sb, nd->ndim, nd->shape),
                      nd->also[0] || nd->also[1] ? " (with the loss / prediction)" : "");
        }
        e++;
    }
    if (!p->no_fusion)
        group_updates(p);
    p->eprog.nnodes = p->nexec;
    p->eprog.nodes = p->exec;
    p->eprog.profile = p->profile;
    p->eprog.nslots = nslots;
    p->eprog.name = "program";
    p->slots = loom_calloc(ctx, (size_t)(nslots ? nslots : 1), sizeof *p->slots);
    if (!p->slots)
        return loom_fail(ctx, LOOM_E_OOM, "loom_compile: out of memory");
    return LOOM_OK;
}

/* ---- fusion -------------------------------------------------------------------- */

/* The consumers of each node (of the live program). */
static int consumers(const loom_program *p, int i, int *only)
{
    int c = 0;
    for (int j = i + 1; j < p->n; j++) {
        const loom_node *nd = &p->nodes[j];
        if (nd->dead)
            continue;
        for (int k = 0; k < nd->nin; k++)
            if (nd->in[k] - 1 == i) {
                c++;
                *only = j;
            }
    }
    return c;
}

/* Would the backend run node m (a matmul) with this epilogue (its third
 * input: the bias, or the activation's output)? Asked with a stand-alone
 * exec node: nothing is placed yet. */
static int epilogue_ok(const loom_program *p, const loom_node *m, const loom_node *out, int third)
{
    loom_node fused = *m;
    fused.dtype = out->dtype;
    loom_exec_tensor ta = {&p->nodes[m->in[0] - 1], {0}}, tb = {&p->nodes[m->in[1] - 1], {0}},
                     tc = {&p->nodes[third - 1], {0}}, to = {&fused, {0}};
    const loom_exec_tensor *ins[3] = {&ta, &tb, &tc};
    loom_exec_node x = {&fused, loom_op_def_of(fused.op), 0, 3, ins, &to, -1, {NULL, NULL}, 1};
    return backend_supports(p, &x);
}

/* Nothing between node i and node j (j included) reads node i: a node at
 * j may compute it. */
static int unread_until(const loom_program *p, int i, int j)
{
    for (int k = i + 1; k <= j; k++) {
        const loom_node *nd = &p->nodes[k];
        if (nd->dead || nd->by)
            continue;
        for (int a = 0; a < nd->nin; a++)
            if (nd->in[a] - 1 == i)
                return 0;
    }
    return 1;
}

/* Would the backend run node n (placed nowhere yet) as it now stands? */
static int node_ok(const loom_program *p, const loom_node *n)
{
    loom_exec_tensor ts[8], also[2], to = {n, {0}};
    const loom_exec_tensor *ins[8];
    assert(n->nin <= 8);
    for (int k = 0; k < n->nin; k++) {
        ts[k] = (loom_exec_tensor){&p->nodes[n->in[k] - 1], {0}};
        ins[k] = &ts[k];
    }
    loom_exec_node x = {n, loom_op_def_of(n->op), 0, n->nin, ins, n->side_effect ? NULL : &to, -1, {NULL, NULL}, 1};
    for (int a = 0; a < 2; a++)
        if (n->also[a]) {
            also[a] = (loom_exec_tensor){&p->nodes[n->also[a] - 1], {0}};
            x.also[a] = &also[a];
        }
    return backend_supports(p, &x);
}

/* A classifier's loss and prediction come out of the kernel of the loss's
 * gradient (node.also): one pass over the logits where there were three.
 * Only where nothing reads them before that kernel runs. */
static void fuse_loss(loom_program *p)
{
    for (int j = 0; j < p->n; j++) {
        loom_node *gr = &p->nodes[j];
        if (gr->op != LOOM_OP_SPARSE_XENT_GRAD || gr->dead)
            continue;
        int32_t z = gr->in[1], lab = gr->in[2];
        const loom_node *nz = &p->nodes[z - 1];
        for (int i = 0; i < j; i++) {
            loom_node *nd = &p->nodes[i];
            if (nd->dead || nd->by || !unread_until(p, i, j))
                continue;
            int slot;
            if (nd->op == LOOM_OP_SPARSE_XENT && nd->in[0] == z && nd->in[1] == lab)
                slot = 0;
            else if (nd->op == LOOM_OP_ARGMAX && nd->in[0] == z && nz->ndim == 2 &&
                     (nd->attr.axis == 1 || nd->attr.axis == -1))
                slot = 1;
            else
                continue;
            if (gr->also[slot])
                continue;
            gr->also[slot] = i + 1;
            if (!node_ok(p, gr)) {
                gr->also[slot] = 0;
                continue;
            }
            nd->by = j + 1;
            p->fused++;
        }
    }
}

/* A bias's gradient (the column sum of the layer's output gradient) is
 * summed by its update itself (attr.grad_rows): no reduction of its own. */
static void fold_bias_grads(loom_program *p)
{
    for (int i = 0; i < p->n; i++) {
        loom_node *u = &p->nodes[i];
        int only = -1;
        if ((u->op != LOOM_OP_ADAM_UPDATE && u->op != LOOM_OP_SGD_UPDATE) || u->dead || u->attr.grad_rows)
            continue;
        int r = u->in[1] - 1;
        loom_node *red = &p->nodes[r];
        if (red->op != LOOM_OP_REDUCE_SUM || red->dead || red->by || red->is_output || red->attr.alpha != 1.0f ||
            consumers(p, r, &only) != 1)
            continue;
        const loom_node *src = &p->nodes[red->in[0] - 1];
        int64_t n = p->nodes[u->in[0] - 1].numel;
        if (src->ndim != 2 || src->dtype != LOOM_F32 || src->shape[1] != n || red->numel != n || red->attr.rdim < 1 ||
            red->attr.rshape[red->attr.rdim - 1] != n || src->shape[0] > INT32_MAX)
            continue;
        int32_t g = u->in[1];
        u->in[1] = red->in[0];
        u->attr.grad_rows = (int32_t)src->shape[0];
        if (!node_ok(p, u)) {
            u->in[1] = g;
            u->attr.grad_rows = 0;
            continue;
        }
        red->dead = 1;
        p->fused++;
    }
}

/* The core fusion pass, before planning: a matmul whose only consumer adds
 * a row bias [N] becomes one node (attr.bias, in[2]); an activation that is
 * the add's only consumer joins it (attr.act) where the backend accepts
 * that too. The absorbed nodes are dead: never planned, never run. */
static void fuse(loom_program *p)
{
    for (int i = 0; i < p->n; i++) {
        loom_node *m = &p->nodes[i];
        int j = -1, k = -1;
        if (m->op != LOOM_OP_MATMUL || m->dead || m->is_output || m->attr.bias || consumers(p, i, &j) != 1)
            continue;
        loom_node *add = &p->nodes[j];
        if (add->op != LOOM_OP_ADD || add->dtype != m->dtype)
            continue;
        int other = add->in[0] - 1 == i ? add->in[1] : add->in[0];
        const loom_node *b = &p->nodes[other - 1];
        int n = (int)m->shape[1];
        if (other - 1 == i || b->numel != n || b->shape[b->ndim - 1] != n || b->dtype != m->dtype ||
            add->numel != m->numel)
            continue;
        if (!epilogue_ok(p, &(loom_node){.op = LOOM_OP_MATMUL, .dtype = m->dtype, .ndim = 2, .shape = {m->shape[0], n},
                                         .numel = m->numel, .nin = 3, .in = m->in,
                                         .attr = (loom_attr){.ta = m->attr.ta, .tb = m->attr.tb, .bias = 1,
                                                             .act = LOOM_OP_NONE, .dact = LOOM_OP_NONE}},
                         add, other))
            continue;
        /* The add (or the activation) becomes the fused matmul, keeping its
         * output and its consumers. */
        loom_node *last = add;
        loom_attr at = m->attr;
        at.bias = 1;
        at.act = at.dact = LOOM_OP_NONE;
        if (!add->is_output && consumers(p, j, &k) == 1) {
            loom_node *act = &p->nodes[k];
            const loom_op_def *def = loom_op_def_of(act->op);
            if (def->family == LOOM_FAM_UNARY && act->dtype == m->dtype && loom_op_epilogue(act->op)) {
                loom_attr a2 = at;
                a2.act = act->op;
                a2.p1 = act->attr.p1;
                a2.p2 = act->attr.p2;
                loom_node probe = {.op = LOOM_OP_MATMUL, .dtype = m->dtype, .ndim = 2, .shape = {m->shape[0], n},
                                   .numel = m->numel, .nin = 3, .in = m->in, .attr = a2};
                if (epilogue_ok(p, &probe, act, other)) {
                    at = a2;
                    last = act;
                }
            }
        }
        int32_t a_in = m->in[0], b_in = m->in[1];
        last->op = LOOM_OP_MATMUL;
        last->attr = at;
        /* the node keeps its in array (room for 3 was made at copy) */
        if (last != add)
            add->dead = 1;
        last->in[0] = a_in;
        last->in[1] = b_in;
        last->in[2] = other;
        last->nin = 3;
        m->dead = 1;
        /* Profiles and traces call it what it mostly is, the layer's matmul
         * (an output keeps the name it is read by). */
        if (!last->is_output) {
            char *t = last->name;
            last->name = m->name;
            m->name = t;
        }
        p->fused++;
    }

    /* The backward pass: a matmul whose only consumer is the gradient of an
     * activation that reads its output (relu, tanh, sigmoid) applies that
     * gradient itself (attr.dact, in[2] = the activation's output). */
    for (int i = 0; i < p->n; i++) {
        loom_node *m = &p->nodes[i];
        int j = -1;
        if (m->op != LOOM_OP_MATMUL || m->dead || m->is_output || m->attr.bias || m->attr.dact ||
            m->attr.act != LOOM_OP_NONE || consumers(p, i, &j) != 1)
            continue;
        loom_node *u = &p->nodes[j];
        if (u->op != LOOM_OP_UNARY_GRAD || u->in[0] - 1 != i || u->dtype != m->dtype)
            continue;
        loom_op fwd = (loom_op)u->attr.fwd;
        if (!(loom_op_def_of(fwd)->flags & LOOM_OPF_FROM_Y) || !loom_op_epilogue(fwd))
            continue;
        int y = u->in[1];
        loom_attr at = m->attr;
        at.dact = fwd;
        at.p1 = u->attr.p1;
        at.p2 = u->attr.p2;
        loom_node probe = {.op = LOOM_OP_MATMUL, .dtype = m->dtype, .ndim = 2, .shape = {m->shape[0], m->shape[1]},
                           .numel = m->numel, .nin = 3, .in = m->in, .attr = at};
        if (!epilogue_ok(p, &probe, u, y))
            continue;
        int32_t a_in = m->in[0], b_in = m->in[1];
        u->op = LOOM_OP_MATMUL;
        u->attr = at;
        u->in[0] = a_in;
        u->in[1] = b_in;
        u->in[2] = y;
        u->nin = 3;
        m->dead = 1;
        if (!u->is_output) {
            char *t = u->name;
            u->name = m->name;
            m->name = t;
        }
        p->fused++;
    }
    fuse_loss(p);
    fold_bias_grads(p);
}

loom_status loom_compile(loom_graph *g, loom_device *dev, loom_state *st, const loom_compile_opts *opts,
                         loom_program **out)
{
    if (!out)
        return LOOM_E_INVALID;
    *out = NULL;
    if (!g)
        return LOOM_E_INVALID;
    loom_ctx *ctx = g->ctx;
    if (!loom_device_valid(dev))
        return loom_fail(ctx, LOOM_E_INVALID, "loom_compile: the device handle is NULL or closed");
    if (!st)
        return loom_fail(ctx, LOOM_E_INVALID, "loom_compile: NULL state");
    if (st->dev != dev)
        return loom_fail(ctx, LOOM_E_INVALID, "loom_compile: the state belongs to %s, not %s", st->dev->info.spec,
                         dev->info.spec);
    if (g->err != LOOM_OK)
        return loom_fail(ctx, g->err, "loom_compile on %s: %s", dev->info.spec, g->errmsg);
    loom_program *p = loom_calloc(ctx, 1, sizeof *p);
    if (!p)
        return loom_fail(ctx, LOOM_E_OOM, "loom_compile: out of memory");
    p->ctx = ctx;
    p->dev = dev;
    p->profile = opts ? opts->profile : 0;
    p->guard = opts && opts->guard ? 1024 : 0;
    p->has_opt = g->has_opt;
    p->opt = g->opt;
    p->loss_scaling = g->loss_scaling;
    p->scaling = g->scaling;
    loom_status s = loom_state_attach(st, p);
    if (s != LOOM_OK) {
        loom_free(ctx, p, sizeof *p);
        return s;
    }
    p->st = st;
    p->magic = LOOM_PROGRAM_MAGIC;
    if ((s = copy_needed(p, g)) == LOOM_OK && (s = check_constant_labels(p, g)) == LOOM_OK) {
        /* A loss-scaled step's sumsq is read after the run: it is kept. */
        int ss = p->loss_scaling ? find_io(p, "grad_sumsq") : -1;
        if (ss >= 0)
            p->nodes[ss].is_output = 1;
        p->no_fusion = opts && opts->no_fusion;
        if (!p->no_fusion)
            fuse(p);
        if ((s = build_exec(p)) == LOOM_OK && (s = place_tensors(p, g)) == LOOM_OK)
            s = dev->ops->prepare(dev->bdev, &p->eprog, &p->bprog);
    }
    if (s != LOOM_OK) {
        program_free(p);
        return s;
    }
    if (p->loss_scaling && !(st->loss_scale > 0))
        st->loss_scale = p->scaling.init;
    *out = p;
    return LOOM_OK;
}

static int find_io(const loom_program *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (!p->nodes[i].dead && !strcmp(p->nodes[i].name, name))
            return i;
    return -1;
}

static int valid(const loom_program *p)
{
    return p && p->magic == LOOM_PROGRAM_MAGIC;
}

loom_status loom_program_set_input(loom_program *p, const char *name, const void *data, size_t bytes)
{
    if (!valid(p))
        return LOOM_E_INVALID;
    if (!name || !data)
        return loom_fail(p->ctx, LOOM_E_INVALID, "loom_program_set_input: NULL %s", name ? "data" : "name");
    int i = find_io(p, name);
    if (i < 0 || p->nodes[i].op != LOOM_OP_INPUT)
        return loom_fail(p->ctx, LOOM_E_INVALID, "loom_program_set_input: no input \"%s\" in this program", name);
    const loom_bref *m = &p->tensors[i].mem;
    if (bytes != m->bytes) {
        char sb[96];
        return loom_fail(p->ctx, LOOM_E_SHAPE,
                         "loom_program_set_input \"%s\": %zu bytes given, %s %s needs %llu", name, bytes,
                         loom_dtype_name(p->nodes[i].dtype),
                         loom_shape_str(sb, sizeof sb, p->nodes[i].ndim, p->nodes[i].shape),
                         (unsigned long long)m->bytes);
    }
    /* Labels are checked on the host as they go up: a kernel that met a
     * label outside [0, C) could only produce a NaN. */
    for (int j = 0; j < p->n; j++) {
        const loom_node *nd = &p->nodes[j];
        if (!nd->dead && (loom_op_def_of(nd->op)->flags & LOOM_OPF_LABELS) && index_leaf(p, nd) == i)
            LOOM_TRY(check_labels(p, nd, data, p->nodes[i].numel, "the input"));
    }
    LOOM_TRY(loom_program_wait(p));
    return p->dev->ops->buffer_write(p->dev->bdev, m->buf, m->offset, data, m->bytes);
}

/* The per-run values, once, for every backend. */
static void fill_slots(loom_program *p, int64_t step)
{
    float lr = p->has_opt ? loom_optimizer_lr(&p->opt, step) : 0.0f;
    float scale = p->loss_scaling && p->st->loss_scale > 0 ? p->st->loss_scale : 1.0f;
    for (int i = 0; i < p->nexec; i++) {
        const loom_exec_node *x = &p->exec[i];
        if (x->run_slot < 0)
            continue;
        const loom_attr *at = &x->node->attr;
        loom_run_slot *s = &p->slots[x->run_slot];
        memset(s, 0, sizeof *s);
        s->lr = lr;
        s->step = (uint32_t)step;
        s->loss_scale = scale;
        s->inv_scale = 1.0f / scale;
        if (x->def->runvals & LOOM_RUN_ADAM) {
            /* bias-corrected step size, in double and rounded once */
            double t = (double)step;
            s->alpha = (float)((double)lr * sqrt(1.0 - pow(at->beta2, t)) / (1.0 - pow(at->beta1, t)));
        }
        if (x->def->runvals & LOOM_RUN_EMA)
            s->decay = step <= 1 ? 0.0f : at->decay; /* the first update copies the weights */
        if (x->def->runvals & LOOM_RUN_DROPOUT)
            s->h0 = loom_rng_h0(at->seed, at->salt, (uint32_t)step);
    }
}

/* Dynamic loss scaling after a step: the gradients' sumsq says whether it
 * was taken (the updates skipped it on device when it was not finite). */
static loom_status scale_after_step(loom_program *p, int *taken)
{
    *taken = 1;
    int i = find_io(p, "grad_sumsq");
    if (i < 0)
        return LOOM_OK;
    float sumsq;
    const loom_bref *m = &p->tensors[i].mem;
    LOOM_TRY(p->dev->ops->buffer_read(p->dev->bdev, m->buf, m->offset, &sumsq, sizeof sumsq));
    loom_state *st = p->st;
    if (!isfinite(sumsq)) {
        *taken = 0;
        st->skipped_steps++;
        st->good_steps = 0;
        st->loss_scale *= p->scaling.backoff;
        if (st->loss_scale < 1e-30f)
            st->loss_scale = 1e-30f;
        loom_logf(p->ctx, LOOM_LOG_INFO, "loss scaling: step %lld skipped (a gradient is not finite), scale now %g",
                  (long long)st->step + 1, (double)st->loss_scale);
    } else if (++st->good_steps >= p->scaling.interval) {
        st->good_steps = 0;
        if (st->loss_scale * p->scaling.growth < 3.0e38f)
            st->loss_scale *= p->scaling.growth;
    }
    return LOOM_OK;
}

/* After a replay: the step, the loss scale, the profile. */
static loom_status finish_run(loom_program *p, double t0)
{
    p->last_run_ns = loom_now_ns() - t0;
    p->runs++;
    int taken = 1;
    if (p->has_updates && p->loss_scaling)
        LOOM_TRY(scale_after_step(p, &taken));
    if (p->has_updates && taken)
        p->st->step++;
    if (p->profile)
        loom_profile_record(p, t0);
    return LOOM_OK;
}

loom_status loom_program_submit(loom_program *p)
{
    if (!valid(p))
        return LOOM_E_INVALID;
    if (!p->st)
        return loom_fail(p->ctx, LOOM_E_STATE, "loom_program_submit: the program's state was destroyed");
    if (p->inflight)
        return loom_fail(p->ctx, LOOM_E_STATE, "loom_program_submit on %s: the last submit is still in flight "
                         "(loom_program_wait first)", p->dev->info.spec);
    int64_t step = p->st->step + (p->has_updates ? 1 : 0);
    fill_slots(p, step);
    loom_run_args args = {p->eprog.nslots, p->slots};
    p->submit_ns = loom_now_ns();
    p->fence = NULL;
    const loom_backend_ops *ops = p->dev->ops;
    loom_status s = ops->submit && ops->wait ? ops->submit(p->bprog, &args, &p->fence) : ops->run(p->bprog, &args);
    if (s != LOOM_OK)
        return s;
    p->inflight = 1;
    return LOOM_OK;
}

loom_status loom_program_wait(loom_program *p)
{
    if (!valid(p))
        return LOOM_E_INVALID;
    if (!p->inflight)
        return LOOM_OK;
    p->inflight = 0;
    const loom_backend_ops *ops = p->dev->ops;
    if (ops->submit && ops->wait)
        LOOM_TRY(ops->wait(p->bprog, p->fence));
    p->fence = NULL;
    int npend = p->npending;
    p->npending = 0;
    for (int i = 0; i < npend; i++) {
        const loom_bref *m = &p->tensors[p->pending[i].tensor].mem;
        LOOM_TRY(ops->buffer_read(p->dev->bdev, m->buf, m->offset, p->pending[i].dst, m->bytes));
    }
    if (!p->st)
        return loom_fail(p->ctx, LOOM_E_STATE, "loom_program_wait: the program's state was destroyed");
    return finish_run(p, p->submit_ns);
}

loom_status loom_program_read_async(loom_program *p, const char *name, void *data, size_t bytes)
{
    if (!valid(p))
        return LOOM_E_INVALID;
    if (!p->inflight)
        return loom_program_read(p, name, data, bytes);
    if (!name || !data)
        return loom_fail(p->ctx, LOOM_E_INVALID, "loom_program_read_async: NULL %s", name ? "data" : "name");
    int i = find_io(p, name);
    if (i < 0 || !(p->nodes[i].is_output || p->nodes[i].op == LOOM_OP_INPUT))
        return loom_fail(p->ctx, LOOM_E_INVALID, "loom_program_read_async: no output \"%s\" in this program", name);
    const loom_bref *m = &p->tensors[i].mem;
    if (bytes != m->bytes)
        return loom_fail(p->ctx, LOOM_E_SHAPE, "loom_program_read_async \"%s\": %zu bytes asked, it holds %llu", name,
                         bytes, (unsigned long long)m->bytes);
    const loom_backend_ops *ops = p->dev->ops;
    if (ops->buffer_read_async) {
        loom_status s = ops->buffer_read_async(p->dev->bdev, m->buf, m->offset, data, m->bytes);
        if (s != LOOM_E_UNSUPPORTED)
            return s;
        loom_clear_error(p->ctx);
    }
    if (p->npending == p->cappending) {
        int ncap = p->cappending ? p->cappending * 2 : 8;
        struct loom_pending_read *np = loom_realloc(p->ctx, p->pending, (size_t)p->cappending * sizeof *np,
                                                    (size_t)ncap * sizeof *np);
        if (!np)
            return loom_fail(p->ctx, LOOM_E_OOM, "loom_program_read_async: out of memory");
        p->pending = np;
        p->cappending = ncap;
    }
    p->pending[p->npending].tensor = i;
    p->pending[p->npending].dst = data;
    p->npending++;
    return LOOM_OK;
}

loom_status loom_program_run(loom_program *p)
{
    if (!valid(p))
        return LOOM_E_INVALID;
    if (!p->st)
        return loom_fail(p->ctx, LOOM_E_STATE, "loom_program_run: the program's state was destroyed");
    LOOM_TRY(loom_program_wait(p));
    int64_t step = p->st->step + (p->has_updates ? 1 : 0);
    fill_slots(p, step);
    loom_run_args args = {p->eprog.nslots, p->slots};
    double t0 = loom_now_ns();
    loom_status s = p->dev->ops->run(p->bprog, &args);
    if (s != LOOM_OK)
        return s;
    return finish_run(p, t0);
}

loom_status loom_program_read(loom_program *p, const char *name, void *data, size_t bytes)
{
    if (!valid(p))
        return LOOM_E_INVALID;
    if (!name || !data)
        return loom_fail(p->ctx, LOOM_E_INVALID, "loom_program_read: NULL %s", name ? "data" : "name");
    int i = find_io(p, name);
    if (i < 0 || !(p->nodes[i].is_output || p->nodes[i].op == LOOM_OP_INPUT))
        return loom_fail(p->ctx, LOOM_E_INVALID, "loom_program_read: no output \"%s\" in this program", name);
    LOOM_TRY(loom_program_wait(p));
    const loom_bref *m = &p->tensors[i].mem;
    if (bytes != m->bytes)
        return loom_fail(p->ctx, LOOM_E_SHAPE, "loom_program_read \"%s\": %zu bytes asked, it holds %llu", name,
                         bytes, (unsigned long long)m->bytes);
    return p->dev->ops->buffer_read(p->dev->bdev, m->buf, m->offset, data, m->bytes);
}

loom_status loom_program_plan(const loom_program *p, loom_plan_report *out)
{
    if (!valid(p) || !out)
        return LOOM_E_INVALID;
    memset(out, 0, sizeof *out);
    out->arena_bytes = p->plan.arena_bytes;
    out->lower_bound = p->plan.lower_bound;
    out->naive_bytes = p->plan.naive_bytes;
    out->steps = p->plan.steps;
    out->live_bytes = p->plan.live_bytes;
    out->inplace = p->plan.inplace;
    out->dispatches = p->dev->ops->dispatches ? p->dev->ops->dispatches(p->bprog) : p->nexec;
    out->fused = p->fused;
    if (p->st)
        for (int i = 0; i < p->st->n; i++)
            out->state_bytes += p->st->e[i].bytes;
    return LOOM_OK;
}
