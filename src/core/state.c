/* The state: parameters and optimizer moments shared by every program
 * compiled against it. */
#include "state.h"
#include "backend.h"
#include "program.h"
#include "../common/checked.h"

#include <string.h>

loom_status loom_state_create(loom_device *dev, loom_state **out)
{
    if (!out)
        return LOOM_E_INVALID;
    *out = NULL;
    if (!loom_device_valid(dev))
        return LOOM_E_INVALID;
    loom_state *st = loom_calloc(dev->ctx, 1, sizeof *st);
    if (!st)
        return loom_fail(dev->ctx, LOOM_E_OOM, "loom_state_create on %s: out of memory", dev->info.spec);
    st->ctx = dev->ctx;
    st->dev = dev;
    st->loss_scale = 0; /* set by the first loss-scaled program */
    *out = st;
    return LOOM_OK;
}

void loom_state_destroy(loom_state *st)
{
    if (!st)
        return;
    loom_ctx *ctx = st->ctx;
    /* Programs that still point here can no longer run. */
    for (int i = 0; i < st->nprogs; i++)
        st->progs[i]->st = NULL;
    for (int i = 0; i < st->n; i++) {
        st->dev->ops->buffer_free(st->dev->bdev, st->e[i].buf);
        loom_strfree(ctx, st->e[i].name);
    }
    loom_free(ctx, st->e, (size_t)st->cap * sizeof *st->e);
    loom_free(ctx, st->index, (size_t)st->index_cap * sizeof *st->index);
    loom_free(ctx, st->progs, (size_t)st->progs_cap * sizeof *st->progs);
    loom_free(ctx, st, sizeof *st);
}

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* Models with hundreds of thousands of tensors load in linear time: names
 * are found through a hash index, not a scan. */
loom_state_slot *loom_state_find(loom_state *st, const char *name)
{
    if (!st->index_cap)
        return NULL;
    uint32_t mask = (uint32_t)st->index_cap - 1;
    for (uint32_t i = name_hash(name) & mask;; i = (i + 1) & mask) {
        int32_t k = st->index[i];
        if (k == 0)
            return NULL;
        if (!strcmp(st->e[k - 1].name, name))
            return &st->e[k - 1];
    }
}

static void index_put(loom_state *st, int entry)
{
    uint32_t mask = (uint32_t)st->index_cap - 1;
    uint32_t i = name_hash(st->e[entry].name) & mask;
    while (st->index[i])
        i = (i + 1) & mask;
    st->index[i] = entry + 1;
}

/* Room in the index for one more entry (kept at most half full). */
static int index_reserve(loom_state *st)
{
    if (2 * (st->n + 1) <= st->index_cap)
        return 1;
    int ncap = st->index_cap ? 2 * st->index_cap : 32;
    int32_t *ni = loom_calloc(st->ctx, (size_t)ncap, sizeof *ni);
    if (!ni)
        return 0;
    loom_free(st->ctx, st->index, (size_t)st->index_cap * sizeof *st->index);
    st->index = ni;
    st->index_cap = ncap;
    for (int k = 0; k < st->n; k++)
        index_put(st, k);
    return 1;
}

static int same_shape(const loom_state_slot *e, loom_dtype dt, int ndim, const int64_t *shape)
{
    if (e->dtype != dt || e->ndim != ndim)
        return 0;
    for (int i = 0; i < ndim; i++)
        if (e->shape[i] != shape[i])
            return 0;
    return 1;
}

static loom_status create_entry(loom_state *st, const char *name, loom_dtype dt, int ndim, const int64_t *shape,
                                const void *data, loom_state_slot **out)
{
    loom_ctx *ctx = st->ctx;
    char sb[96];
    if (!name || !*name)
        return loom_fail(ctx, LOOM_E_INVALID, "loom_state_write: a name is required");
    if (ndim < 0 || ndim > LOOM_MAX_DIMS || (ndim && !shape) || loom_dtype_size(dt) == 0)
        return loom_fail(ctx, LOOM_E_SHAPE, "loom_state_write \"%s\": bad shape or dtype", name);
    for (int i = 0; i < ndim; i++)
        if (shape[i] <= 0)
            return loom_fail(ctx, LOOM_E_SHAPE, "loom_state_write \"%s\": shape %s has a dim <= 0", name,
                             loom_shape_str(sb, sizeof sb, ndim, shape));
    uint64_t bytes;
    if (loom_shape_bytes(ndim, shape, loom_dtype_size(dt), NULL, &bytes))
        return loom_fail(ctx, LOOM_E_SHAPE, "loom_state_write \"%s\": shape %s of %s has more bytes than a tensor "
                         "can hold", name, loom_shape_str(sb, sizeof sb, ndim, shape), loom_dtype_name(dt));
    const loom_device_info *info = &st->dev->info;
    if (info->max_binding_bytes && bytes > info->max_binding_bytes)
        return loom_fail(ctx, LOOM_E_UNSUPPORTED,
                         "state tensor \"%s\" %s is %llu bytes, above the largest binding of %s (%llu bytes)",
                         name, loom_shape_str(sb, sizeof sb, ndim, shape), (unsigned long long)bytes, info->spec,
                         (unsigned long long)info->max_binding_bytes);
    if (!index_reserve(st))
        return loom_fail(ctx, LOOM_E_OOM, "state tensor \"%s\": out of memory", name);
    if (st->n == st->cap) {
        int ncap = st->cap ? st->cap * 2 : 16;
        loom_state_slot *ne = loom_realloc(ctx, st->e, (size_t)st->cap * sizeof *ne, (size_t)ncap * sizeof *ne);
        if (!ne)
            return loom_fail(ctx, LOOM_E_OOM, "state tensor \"%s\": out of memory", name);
        st->e = ne;
        st->cap = ncap;
    }
    loom_state_slot e = {0};
    e.name = loom_strdup(ctx, name);
    if (!e.name)
        return loom_fail(ctx, LOOM_E_OOM, "state tensor \"%s\": out of memory", name);
    e.dtype = dt;
    e.ndim = ndim;
    for (int i = 0; i < ndim; i++)
        e.shape[i] = shape[i];
    e.bytes = bytes;
    loom_status s = st->dev->ops->buffer_alloc(st->dev->bdev, bytes, LOOM_LIFE_STATE, &e.buf);
    if (s != LOOM_OK) {
        loom_strfree(ctx, e.name);
        return s;
    }
    if (data) {
        s = st->dev->ops->buffer_write(st->dev->bdev, e.buf, 0, data, bytes);
    } else {
        void *zero = loom_calloc(ctx, 1, (size_t)bytes);
        s = zero ? st->dev->ops->buffer_write(st->dev->bdev, e.buf, 0, zero, bytes)
                 : loom_fail(ctx, LOOM_E_OOM, "state tensor \"%s\": out of memory for %llu zero bytes", name,
                             (unsigned long long)bytes);
        loom_free(ctx, zero, (size_t)bytes);
    }
    if (s != LOOM_OK) {
        st->dev->ops->buffer_free(st->dev->bdev, e.buf);
        loom_strfree(ctx, e.name);
        return s;
    }
    st->e[st->n] = e;
    if (out)
        *out = &st->e[st->n];
    index_put(st, st->n);
    st->n++;
    return LOOM_OK;
}

loom_status loom_state_write(loom_state *st, const char *name, loom_dtype dt, int ndim, const int64_t *shape,
                             const void *data)
{
    if (!st)
        return LOOM_E_INVALID;
    if (!data)
        return loom_fail(st->ctx, LOOM_E_INVALID, "loom_state_write \"%s\": NULL data", name ? name : "?");
    if (!name)
        return loom_fail(st->ctx, LOOM_E_INVALID, "loom_state_write: NULL name");
    loom_state_slot *e = loom_state_find(st, name);
    if (!e)
        return create_entry(st, name, dt, ndim, shape, data, NULL);
    if (!same_shape(e, dt, ndim, shape)) {
        char a[96], b[96];
        return loom_fail(st->ctx, LOOM_E_SHAPE, "loom_state_write \"%s\": it is %s %s, the data is %s %s", name,
                         loom_dtype_name(e->dtype), loom_shape_str(a, sizeof a, e->ndim, e->shape),
                         loom_dtype_name(dt), loom_shape_str(b, sizeof b, ndim, shape));
    }
    return st->dev->ops->buffer_write(st->dev->bdev, e->buf, 0, data, e->bytes);
}

loom_status loom_state_ensure(loom_state *st, const char *name, loom_dtype dt, int ndim, const int64_t *shape,
                              loom_state_slot **out)
{
    loom_state_slot *e = loom_state_find(st, name);
    if (!e)
        return create_entry(st, name, dt, ndim, shape, NULL, out);
    if (!same_shape(e, dt, ndim, shape)) {
        char a[96], b[96];
        return loom_fail(st->ctx, LOOM_E_SHAPE, "param \"%s\": the state holds %s %s, the graph wants %s %s", name,
                         loom_dtype_name(e->dtype), loom_shape_str(a, sizeof a, e->ndim, e->shape),
                         loom_dtype_name(dt), loom_shape_str(b, sizeof b, ndim, shape));
    }
    *out = e;
    return LOOM_OK;
}

loom_status loom_state_read(loom_state *st, const char *name, void *data, size_t bytes)
{
    if (!st)
        return LOOM_E_INVALID;
    if (!name || !data)
        return loom_fail(st->ctx, LOOM_E_INVALID, "loom_state_read: NULL %s", name ? "data" : "name");
    loom_state_slot *e = loom_state_find(st, name);
    if (!e)
        return loom_fail(st->ctx, LOOM_E_INVALID, "loom_state_read: no tensor \"%s\" in the state", name);
    if (bytes != e->bytes)
        return loom_fail(st->ctx, LOOM_E_SHAPE, "loom_state_read \"%s\": %zu bytes asked, it holds %llu", name,
                         bytes, (unsigned long long)e->bytes);
    return st->dev->ops->buffer_read(st->dev->bdev, e->buf, 0, data, e->bytes);
}

loom_status loom_state_remove(loom_state *st, const char *name)
{
    if (!st)
        return LOOM_E_INVALID;
    if (!name)
        return loom_fail(st->ctx, LOOM_E_INVALID, "loom_state_remove: NULL name");
    loom_state_slot *e = loom_state_find(st, name);
    if (!e)
        return loom_fail(st->ctx, LOOM_E_INVALID, "loom_state_remove: no tensor \"%s\" in the state", name);
    /* A compiled program binds the buffer itself: it must outlive them. */
    for (int k = 0; k < st->nprogs; k++) {
        const struct loom_program *p = st->progs[k];
        for (int i = 0; i < p->n; i++)
            if (p->nodes[i].op == LOOM_OP_PARAM && p->tensors && p->tensors[i].mem.buf == e->buf)
                return loom_fail(st->ctx, LOOM_E_STATE,
                                 "loom_state_remove \"%s\": a program compiled against the state uses it", name);
    }
    int at = (int)(e - st->e);
    st->dev->ops->buffer_free(st->dev->bdev, e->buf);
    loom_strfree(st->ctx, e->name);
    /* Keep the order (files are saved in it) and rebuild the index. */
    memmove(&st->e[at], &st->e[at + 1], (size_t)(st->n - at - 1) * sizeof *st->e);
    st->n--;
    memset(st->index, 0, (size_t)st->index_cap * sizeof *st->index);
    for (int k = 0; k < st->n; k++)
        index_put(st, k);
    return LOOM_OK;
}

int loom_state_count(const loom_state *st)
{
    return st ? st->n : 0;
}

loom_status loom_state_entry(const loom_state *st, int i, const char **name, loom_dtype *dt, int *ndim,
                             int64_t shape[LOOM_MAX_DIMS])
{
    if (!st || i < 0 || i >= st->n)
        return LOOM_E_INVALID;
    const loom_state_slot *e = &st->e[i];
    if (name)
        *name = e->name;
    if (dt)
        *dt = e->dtype;
    if (ndim)
        *ndim = e->ndim;
    if (shape)
        for (int k = 0; k < LOOM_MAX_DIMS; k++)
            shape[k] = k < e->ndim ? e->shape[k] : 1;
    return LOOM_OK;
}

loom_ctx *loom_state_ctx(const loom_state *st)
{
    return st ? st->ctx : NULL;
}

int64_t loom_state_step(const loom_state *st)
{
    return st ? st->step : 0;
}

void loom_state_set_step(loom_state *st, int64_t step)
{
    if (st)
        st->step = step;
}

float loom_state_loss_scale(const loom_state *st)
{
    return st ? st->loss_scale : 0;
}

int64_t loom_state_skipped_steps(const loom_state *st)
{
    return st ? st->skipped_steps : 0;
}

loom_status loom_state_set_loss_scale(loom_state *st, float scale, int64_t skipped)
{
    if (!st)
        return LOOM_E_INVALID;
    if (!(scale > 0) || scale > 3.0e38f || skipped < 0)
        return loom_fail(st->ctx, LOOM_E_INVALID, "loom_state_set_loss_scale: scale %g, %lld skipped steps",
                         (double)scale, (long long)skipped);
    st->loss_scale = scale;
    st->skipped_steps = skipped;
    st->good_steps = 0;
    return LOOM_OK;
}

loom_status loom_state_attach(loom_state *st, struct loom_program *p)
{
    if (st->nprogs == st->progs_cap) {
        int ncap = st->progs_cap ? st->progs_cap * 2 : 4;
        struct loom_program **np = loom_realloc(st->ctx, st->progs, (size_t)st->progs_cap * sizeof *np,
                                                (size_t)ncap * sizeof *np);
        if (!np)
            return loom_fail(st->ctx, LOOM_E_OOM, "loom_compile: out of memory");
        st->progs = np;
        st->progs_cap = ncap;
    }
    st->progs[st->nprogs++] = p;
    return LOOM_OK;
}

void loom_state_detach(loom_state *st, struct loom_program *p)
{
    for (int i = 0; i < st->nprogs; i++)
        if (st->progs[i] == p) {
            st->progs[i] = st->progs[--st->nprogs];
            return;
        }
}
