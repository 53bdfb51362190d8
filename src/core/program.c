/* loom_compile and the program's life: plan, allocate, prepare, run. */
#include "program.h"
#include "graph.h"
#include "profile.h"

#include <string.h>

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
        loom_free(ctx, p->nodes[i].in, (size_t)p->nodes[i].nin * sizeof(int32_t));
        loom_strfree(ctx, p->nodes[i].name);
    }
    loom_free(ctx, p->nodes, (size_t)p->nalloc * sizeof *p->nodes);
    loom_free(ctx, p->gidx, (size_t)p->nalloc * sizeof *p->gidx);
    loom_free(ctx, p->tensors, (size_t)(p->n ? p->n : 1) * sizeof *p->tensors);
    loom_free(ctx, p->exec, (size_t)(p->nexec ? p->nexec : 1) * sizeof *p->exec);
    loom_free(ctx, p->exec_in, (size_t)(p->nexec_in ? p->nexec_in : 1) * sizeof *p->exec_in);
    loom_plan_result_free(ctx, &p->plan);
    loom_profile_free(p);
    p->magic = 0;
    loom_free(ctx, p, sizeof *p);
}

void loom_program_destroy(loom_program *p)
{
    if (!p || p->magic != LOOM_PROGRAM_MAGIC)
        return;
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
        loom_node *d = &p->nodes[p->n];
        *d = g->nodes[i];
        p->gidx[p->n] = i;
        d->in = NULL;
        d->nin = 0;
        d->data = NULL;
        d->name = loom_strdup(ctx, g->nodes[i].name);
        if (!d->name) {
            s = loom_fail(ctx, LOOM_E_OOM, "loom_compile: out of memory");
            goto out;
        }
        p->n++;
        int nin = g->nodes[i].nin;
        if (nin) {
            d->in = loom_malloc(ctx, (size_t)nin * sizeof *d->in);
            if (!d->in) {
                s = loom_fail(ctx, LOOM_E_OOM, "loom_compile: out of memory");
                goto out;
            }
            d->nin = nin;
            for (int k = 0; k < nin; k++)
                d->in[k] = map[g->nodes[i].in[k] - 1];
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
        for (int k = 0; k < p->nodes[i].nin; k++) {
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
            if (nd->op == LOOM_OP_PARAM || nd->side_effect || early != (pass == 0))
                continue;
            loom_plan_tensor *t = &pt[np];
            int guarded = p->guard && nd->is_output;
            t->bytes = (uint64_t)nd->numel * loom_dtype_size(nd->dtype) + (guarded ? 2u * (uint64_t)p->guard : 0);
            /* Guarded outputs hold their block for the whole run, so no
             * earlier tensor legitimately writes over their guards. */
            t->first = (pass == 0 || guarded) ? 0 : i;
            t->last = (pass == 0 || nd->is_output) ? n - 1 : last[i];
            t->inplace_src = -1;
            if (pass == 1 && loom_op_elementwise(nd->op)) {
                for (int k = 0; k < nd->nin; k++) {
                    int src = nd->in[k] - 1;
                    const loom_node *ns = &p->nodes[src];
                    if (slot[src] >= 0 && !is_upload(ns) && !(p->guard && nd->is_output) && !ns->is_output && last[src] == i &&
                        ns->numel == nd->numel && ns->dtype == nd->dtype) {
                        t->inplace_src = slot[src];
                        break;
                    }
                }
            }
            order[np] = i;
            slot[i] = np++;
        }
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
        if (!nd->is_output || nd->op == LOOM_OP_PARAM || nd->side_effect || nd->op == LOOM_OP_INPUT ||
            nd->op == LOOM_OP_CONST)
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

static loom_status place_tensors(loom_program *p, const loom_graph *g)
{
    loom_ctx *ctx = p->ctx;
    const loom_backend_ops *ops = p->dev->ops;
    p->tensors = loom_calloc(ctx, (size_t)p->n, sizeof *p->tensors);
    uint64_t *offsets = loom_calloc(ctx, (size_t)p->n, sizeof *offsets);
    loom_status s = LOOM_OK;
    if (!p->tensors || !offsets) {
        s = loom_fail(ctx, LOOM_E_OOM, "loom_compile: out of memory");
        goto out;
    }
    for (int i = 0; i < p->n; i++) {
        loom_node *nd = &p->nodes[i];
        uint64_t bytes = (uint64_t)nd->numel * loom_dtype_size(nd->dtype);
        p->tensors[i].node = nd;
        if (nd->side_effect)
            continue;
        if ((s = check_binding(p, nd, bytes)) != LOOM_OK)
            goto out;
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
        if (nd->op == LOOM_OP_PARAM || nd->side_effect)
            continue;
        uint64_t bytes = (uint64_t)nd->numel * loom_dtype_size(nd->dtype);
        uint64_t g = p->guard && nd->is_output ? (uint64_t)p->guard : 0;
        p->tensors[i].mem = (loom_bref){p->arena, offsets[i] + g, bytes};
        if (g && (s = fill_guards(p, &p->tensors[i].mem)) != LOOM_OK)
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

static loom_status build_exec(loom_program *p)
{
    loom_ctx *ctx = p->ctx;
    for (int i = 0; i < p->n; i++)
        if (p->nodes[i].role == LOOM_ROLE_INTERMEDIATE) {
            p->nexec++;
            p->nexec_in += p->nodes[i].nin;
        }
    p->exec = loom_calloc(ctx, (size_t)(p->nexec ? p->nexec : 1), sizeof *p->exec);
    p->exec_in = loom_calloc(ctx, (size_t)(p->nexec_in ? p->nexec_in : 1), sizeof *p->exec_in);
    if (!p->exec || !p->exec_in)
        return loom_fail(ctx, LOOM_E_OOM, "loom_compile: out of memory");
    int e = 0, k = 0;
    for (int i = 0; i < p->n; i++) {
        loom_node *nd = &p->nodes[i];
        if (nd->role != LOOM_ROLE_INTERMEDIATE)
            continue;
        loom_exec_node *x = &p->exec[e];
        x->node = nd;
        x->index = e;
        x->nin = nd->nin;
        x->in = &p->exec_in[k];
        for (int j = 0; j < nd->nin; j++)
            p->exec_in[k++] = &p->tensors[nd->in[j] - 1];
        x->out = nd->side_effect ? NULL : &p->tensors[i];
        if (nd->side_effect)
            p->has_updates = 1;
        if (p->dev->ops->supports && !p->dev->ops->supports(p->dev->bdev, x)) {
            char sb[96];
            return loom_fail(ctx, LOOM_E_UNSUPPORTED, "loom_compile: %s cannot run op %s (\"%s\" %s) on %s",
                             p->dev->ops->name, loom_op_name(nd->op), nd->name,
                             loom_shape_str(sb, sizeof sb, nd->ndim, nd->shape), p->dev->info.spec);
        }
        e++;
    }
    p->eprog.nnodes = p->nexec;
    p->eprog.nodes = p->exec;
    p->eprog.profile = p->profile;
    p->eprog.name = "program";
    return LOOM_OK;
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
    loom_status s = loom_state_attach(st, p);
    if (s != LOOM_OK) {
        loom_free(ctx, p, sizeof *p);
        return s;
    }
    p->st = st;
    p->magic = LOOM_PROGRAM_MAGIC;
    if ((s = copy_needed(p, g)) != LOOM_OK || (s = place_tensors(p, g)) != LOOM_OK ||
        (s = build_exec(p)) != LOOM_OK || (s = dev->ops->prepare(dev->bdev, &p->eprog, &p->bprog)) != LOOM_OK) {
        program_free(p);
        return s;
    }
    *out = p;
    return LOOM_OK;
}

static int find_io(const loom_program *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->nodes[i].name, name))
            return i;
    return -1;
}

static int valid(const loom_program *p)
{
    return p && p->magic == LOOM_PROGRAM_MAGIC;
}

/* Labels are checked on the host as they go up: a kernel that met a label
 * outside [0, C) could only produce a NaN or read out of bounds. */
static loom_status check_labels(loom_program *p, int idx, const int32_t *v)
{
    for (int i = 0; i < p->n; i++) {
        const loom_node *nd = &p->nodes[i];
        int lab = nd->op == LOOM_OP_SPARSE_XENT ? 1 : nd->op == LOOM_OP_SPARSE_XENT_GRAD ? 2 : -1;
        if (lab < 0 || nd->in[lab] - 1 != idx)
            continue;
        const loom_node *logits = &p->nodes[nd->in[lab - 1] - 1];
        int64_t c = logits->shape[1];
        for (int64_t j = 0; j < p->nodes[idx].numel; j++)
            if (v[j] < 0 || v[j] >= c)
                return loom_fail(p->ctx, LOOM_E_RANGE,
                                 "sparse_cross_entropy: label %d at index %lld of \"%s\" is outside [0, %lld)",
                                 v[j], (long long)j, p->nodes[idx].name, (long long)c);
    }
    return LOOM_OK;
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
    if (p->nodes[i].dtype == LOOM_I32)
        LOOM_TRY(check_labels(p, i, data));
    return p->dev->ops->buffer_write(p->dev->bdev, m->buf, m->offset, data, m->bytes);
}

loom_status loom_program_run(loom_program *p)
{
    if (!valid(p))
        return LOOM_E_INVALID;
    if (!p->st)
        return loom_fail(p->ctx, LOOM_E_STATE, "loom_program_run: the program's state was destroyed");
    loom_run_args args = {0};
    args.step = p->st->step + (p->has_updates ? 1 : 0);
    args.lr = p->has_opt ? loom_optimizer_lr(&p->opt, args.step) : 0.0f;
    double t0 = loom_now_ns();
    loom_status s = p->dev->ops->run(p->bprog, &args);
    p->last_run_ns = loom_now_ns() - t0;
    if (s != LOOM_OK)
        return s;
    p->runs++;
    if (p->has_updates)
        p->st->step++;
    if (p->profile)
        loom_profile_record(p, t0);
    return LOOM_OK;
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
    if (p->st)
        for (int i = 0; i < p->st->n; i++)
            out->state_bytes += p->st->e[i].bytes;
    return LOOM_OK;
}
