/* Data-parallel training of a Sequential model: replicas of its state on
 * several devices (of any backend) and, through a caller's collective,
 * several processes. A step is split at the gradient boundary: every
 * device runs the gradients half on its share of the batch (all of them
 * at once: loom_program_submit), the host averages the gradients bucket by
 * bucket (each bucket's sum over the processes starts as soon as it is
 * complete, overlapping the next bucket's download), and the same reduced
 * bytes go into every replica's update half. */
#include "model.h"
#include "nn_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define REP_PROGS 6            /* gradients programs kept per replica (batch sizes) */
#define REP_MAX_BUCKETS 4096

typedef struct rep_prog {
    int64_t batch;
    uint64_t used;             /* last use, for eviction */
    loom_graph *g;
    loom_program *p;
} rep_prog;

typedef struct replica {
    loom_device *dev;
    loom_state *st;            /* replica 0: the model's own state */
    rep_prog progs[REP_PROGS];
    int nprogs;
    loom_graph *ug;            /* the update half (NULL where it is not run) */
    loom_program *up;
    double share;              /* of a batch */
    double speed;              /* measured rows/s (0: not yet) */
    double meas_rows, meas_s;  /* since the last rebalance */
    uint32_t salt;
    float *host;               /* its gradients, copied behind its replay */
    float loss;
    /* this step */
    rep_prog *cur;
    int64_t n, lo;
    int waited;
} replica;

/* A tensor the step reduces: a gradient, or running statistics. */
typedef struct rtensor {
    char name[128];            /* the state's name */
    char out[160];             /* the gradients program's output */
    int trainable;
    int ndim;
    int64_t shape[4];
    int64_t count;
    int64_t off;               /* in rep->flat */
} rtensor;

typedef struct rbucket {
    int first, last;           /* tensors [first, last] */
    int64_t off, count;
} rbucket;

struct nn_replicas {
    replica r[LOOM_MAX_REPLICAS];
    int n;
    loom_replica_opts opts;
    loom_collective coll;
    int has_coll;
    loom_replica_update update;
    rtensor *t;
    int nt;
    rbucket *b;
    int nb;
    float *flat, *tmp;
    int64_t flat_count, tmp_count;
    void **reqs;
    uint64_t clock;
    int64_t balanced;          /* rebalances made */
    loom_replica_stats stats;
    double last_reduce_s, last_allreduce_s, last_update_s; /* the last step's */
    model_prog ran;            /* the leader's gradients program, for metrics */
};

loom_replica_opts loom_replica_opts_default(void)
{
    loom_replica_opts o;
    memset(&o, 0, sizeof o);
    o.check_every = 100;
    o.bucket_bytes = 1 << 20;
    o.balance_steps = 8;
    o.update = LOOM_UPDATE_AUTO;
    return o;
}

static const char *spec_of(const replica *r)
{
    return loom_device_get(r->dev)->spec;
}

/* ---- programs ----------------------------------------------------------- */

static void free_prog(rep_prog *p)
{
    loom_program_destroy(p->p);
    loom_graph_destroy(p->g);
    memset(p, 0, sizeof *p);
}

static loom_status compile_half(loom_sequential *m, replica *r, int mode, int64_t batch, loom_graph **g,
                                loom_program **p)
{
    LOOM_TRY(loom_graph_create(m->ctx, g));
    m->drop_salt = r->salt;
    loom_status s = loom_model_build(m, *g, mode, batch);
    m->drop_salt = 0;
    if (s != LOOM_OK) {
        s = loom_fail(m->ctx, s, "replicas: building the %s half of the training step for %s: %s",
                      mode == LOOM_MODEL_GRADS ? "gradients" : "update", spec_of(r), loom_graph_error(*g));
    } else {
        loom_compile_opts o = {0};
        o.profile = m->cfg.profile;
        s = loom_compile(*g, r->dev, r->st, &o, p);
    }
    if (s != LOOM_OK) {
        loom_graph_destroy(*g);
        *g = NULL;
        *p = NULL;
    }
    return s;
}

/* The gradients program of replica r at `batch` rows (compiled on first use). */
static loom_status grads_prog(loom_sequential *m, replica *r, int64_t batch, rep_prog **out)
{
    struct nn_replicas *rep = m->rep;
    rep->clock++;
    for (int i = 0; i < r->nprogs; i++)
        if (r->progs[i].batch == batch) {
            r->progs[i].used = rep->clock;
            *out = &r->progs[i];
            return LOOM_OK;
        }
    rep_prog *slot;
    if (r->nprogs < REP_PROGS) {
        slot = &r->progs[r->nprogs++];
    } else {
        slot = &r->progs[0];
        for (int i = 1; i < REP_PROGS; i++)
            if (r->progs[i].used < slot->used)
                slot = &r->progs[i];
        free_prog(slot);
    }
    loom_status s = compile_half(m, r, LOOM_MODEL_GRADS, batch, &slot->g, &slot->p);
    if (s != LOOM_OK) {
        *slot = r->progs[--r->nprogs];
        memset(&r->progs[r->nprogs], 0, sizeof r->progs[0]);
        return s;
    }
    slot->batch = batch;
    slot->used = rep->clock;
    *out = slot;
    return LOOM_OK;
}

/* ---- the shares of a batch ---------------------------------------------- */

/* n rows split by the shares: at least one each while there are rows
 * enough, the remainder by the largest fractions. */
static void split_rows(struct nn_replicas *rep, int64_t n, int64_t *rows)
{
    int R = rep->n;
    double total = 0;
    for (int i = 0; i < R; i++)
        total += rep->r[i].share;
    int64_t given = 0;
    double frac[LOOM_MAX_REPLICAS];
    for (int i = 0; i < R; i++) {
        double want = total > 0 ? (double)n * rep->r[i].share / total : (double)n / R;
        rows[i] = (int64_t)floor(want);
        if (n >= R && rows[i] < 1)
            rows[i] = 1;
        frac[i] = want - floor(want);
        given += rows[i];
    }
    while (given > n) { /* the minimum of one each took too many: from the largest */
        int k = 0;
        for (int i = 1; i < R; i++)
            if (rows[i] > rows[k])
                k = i;
        rows[k]--;
        given--;
    }
    while (given < n) {
        int k = 0;
        for (int i = 1; i < R; i++)
            if (frac[i] > frac[k])
                k = i;
        rows[k]++;
        frac[k] -= 1.0;
        given++;
    }
}

static void update_row_stats(struct nn_replicas *rep, int64_t batch)
{
    split_rows(rep, batch, rep->stats.rows);
    for (int i = 0; i < rep->n; i++)
        rep->stats.rows_per_s[i] = rep->r[i].speed;
}

/* New shares from the speeds measured since the last rebalance. */
static void rebalance(loom_sequential *m)
{
    struct nn_replicas *rep = m->rep;
    int ok = 1;
    for (int i = 0; i < rep->n; i++)
        ok &= rep->r[i].meas_s > 0 && rep->r[i].meas_rows > 0;
    if (!ok)
        return;
    for (int i = 0; i < rep->n; i++) {
        replica *r = &rep->r[i];
        r->speed = r->meas_rows / r->meas_s;
        r->share = r->speed;
        r->meas_rows = r->meas_s = 0;
    }
    rep->balanced++;
    update_row_stats(rep, m->cfg.batch);
    char line[512];
    size_t len = 0;
    for (int i = 0; i < rep->n && len < sizeof line; i++)
        len += (size_t)snprintf(line + len, sizeof line - len, "%s%s %lld rows (%.0f rows/s)", i ? ", " : "",
                                spec_of(&rep->r[i]), (long long)rep->stats.rows[i], rep->r[i].speed);
    loom_logf(m->ctx, LOOM_LOG_INFO, "replicas: batch %lld split as %s", (long long)m->cfg.batch, line);
}

/* ---- hashing ------------------------------------------------------------ */

static uint64_t fnv(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* The hash of a replica's weights and running statistics, whose values
 * land in mine (to name the first tensor that differs). */
static loom_status hash_replica(loom_sequential *m, replica *r, uint64_t *h, float *mine)
{
    struct nn_replicas *rep = m->rep;
    uint64_t x = 0xcbf29ce484222325ULL;
    for (int i = 0; i < rep->nt; i++) {
        const rtensor *t = &rep->t[i];
        float *dst = mine + t->off;
        LOOM_TRY(loom_state_read(r->st, t->name, dst, (size_t)t->count * sizeof(float)));
        x = fnv(x, dst, (size_t)t->count * sizeof(float));
    }
    *h = x;
    return LOOM_OK;
}

static const char *first_diff(const struct nn_replicas *rep, const float *a, const float *b)
{
    for (int i = 0; i < rep->nt; i++)
        if (memcmp(a + rep->t[i].off, b + rep->t[i].off, (size_t)rep->t[i].count * sizeof(float)))
            return rep->t[i].name;
    return "?";
}

loom_status loom_sequential_check_replicas(loom_sequential *m, uint64_t *hash)
{
    if (!m)
        return LOOM_E_INVALID;
    struct nn_replicas *rep = m->rep;
    if (!rep)
        return loom_fail(m->ctx, LOOM_E_STATE, "loom_sequential_check_replicas: the model has no replicas "
                         "(loom_sequential_replicate)");
    size_t bytes = (size_t)rep->flat_count * sizeof(float);
    float *a = loom_malloc(m->ctx, bytes ? bytes : 1), *b = loom_malloc(m->ctx, bytes ? bytes : 1);
    loom_status s = a && b ? LOOM_OK : loom_fail(m->ctx, LOOM_E_OOM, "replicas: out of memory hashing the weights");
    uint64_t h0 = 0;
    if (s == LOOM_OK)
        s = hash_replica(m, &rep->r[0], &h0, a);
    for (int i = 1; i < rep->n && s == LOOM_OK; i++) {
        uint64_t hi;
        s = hash_replica(m, &rep->r[i], &hi, b);
        if (s == LOOM_OK && hi != h0)
            s = loom_fail(m->ctx, LOOM_E_STATE, "replicas differ after step %lld: %s (weights hash %016llx) and %s "
                          "(hash %016llx) hold different weights, first in \"%s\"",
                          (long long)loom_state_step(m->st), spec_of(&rep->r[0]), (unsigned long long)h0,
                          spec_of(&rep->r[i]), (unsigned long long)hi, first_diff(rep, a, b));
    }
    if (s == LOOM_OK && rep->has_coll && rep->coll.size > 1) {
        /* rank 0's hash to everyone; then who differs, summed */
        uint64_t root = h0;
        s = rep->coll.broadcast(rep->coll.user, &root, sizeof root);
        int np = rep->coll.size;
        double *bad = s == LOOM_OK ? loom_calloc(m->ctx, (size_t)np, sizeof *bad) : NULL;
        if (s == LOOM_OK && !bad)
            s = loom_fail(m->ctx, LOOM_E_OOM, "replicas: out of memory comparing %d processes", np);
        if (s == LOOM_OK) {
            bad[rep->coll.rank] = root != h0;
            s = rep->coll.sum_doubles(rep->coll.user, bad, np);
        }
        if (s == LOOM_OK) {
            char who[256] = "";
            size_t len = 0;
            int nbad = 0;
            for (int i = 0; i < np; i++)
                if (bad[i] != 0 && len < sizeof who) {
                    len += (size_t)snprintf(who + len, sizeof who - len, "%s%d", nbad ? ", " : "", i);
                    nbad++;
                }
            if (nbad)
                s = loom_fail(m->ctx, LOOM_E_STATE, "processes differ after step %lld: rank%s %s hold%s weights "
                              "other than rank 0's (hash %016llx; this is rank %d, hash %016llx)",
                              (long long)loom_state_step(m->st), nbad > 1 ? "s" : "", who, nbad > 1 ? "" : "s",
                              (unsigned long long)root, rep->coll.rank, (unsigned long long)h0);
        }
        loom_free(m->ctx, bad, (size_t)np * sizeof *bad);
    }
    loom_free(m->ctx, a, bytes ? bytes : 1);
    loom_free(m->ctx, b, bytes ? bytes : 1);
    if (s == LOOM_OK) {
        rep->stats.checks++;
        rep->stats.hash = h0;
        if (hash)
            *hash = h0;
    }
    return s;
}

/* ---- set-up ------------------------------------------------------------- */

/* The tensors a step reduces, in model order, and their buckets. */
static loom_status plan_tensors(loom_sequential *m, struct nn_replicas *rep)
{
    int np = loom_model_param_count(m);
    rep->t = loom_calloc(m->ctx, (size_t)(np ? np : 1), sizeof *rep->t);
    rep->b = loom_calloc(m->ctx, (size_t)(np ? np : 1), sizeof *rep->b);
    if (!rep->t || !rep->b)
        return loom_fail(m->ctx, LOOM_E_OOM, "replicas: out of memory for %d tensors", np);
    int64_t off = 0, biggest = 1;
    for (int k = 0; k < np; k++) {
        model_param p;
        loom_model_param(m, k, &p, NULL);
        rtensor *t = &rep->t[rep->nt++];
        snprintf(t->name, sizeof t->name, "%s", p.name);
        snprintf(t->out, sizeof t->out, p.trainable ? "grad:%s" : "%s", p.name);
        t->trainable = p.trainable;
        t->ndim = p.ndim;
        memcpy(t->shape, p.shape, sizeof t->shape);
        t->count = 1;
        for (int d = 0; d < p.ndim; d++)
            t->count *= p.shape[d];
        t->off = off;
        off += t->count;
        if (t->count > biggest)
            biggest = t->count;
    }
    int64_t per = rep->opts.bucket_bytes / (int64_t)sizeof(float);
    if (per < 1)
        per = 1;
    for (int i = 0; i < rep->nt; i++) {
        rbucket *b = rep->nb ? &rep->b[rep->nb - 1] : NULL;
        if (!b || b->count + rep->t[i].count > per) {
            b = &rep->b[rep->nb++];
            b->first = i;
            b->off = rep->t[i].off;
            b->count = 0;
        }
        b->last = i;
        b->count += rep->t[i].count;
    }
    rep->flat_count = off;
    rep->tmp_count = biggest;
    rep->flat = loom_malloc(m->ctx, (size_t)(off ? off : 1) * sizeof(float));
    rep->tmp = loom_malloc(m->ctx, (size_t)biggest * sizeof(float));
    rep->reqs = loom_calloc(m->ctx, (size_t)(rep->nb ? rep->nb : 1), sizeof *rep->reqs);
    if (!rep->flat || !rep->tmp || !rep->reqs)
        return loom_fail(m->ctx, LOOM_E_OOM, "replicas: out of memory for %lld gradient values", (long long)off);
    rep->stats.grad_bytes = off * (int64_t)sizeof(float);
    rep->stats.buckets = rep->nb;
    return LOOM_OK;
}

/* Every entry of src's state into dst's (weights, moments). */
static loom_status copy_state(loom_sequential *m, loom_state *src, loom_state *dst)
{
    for (int i = 0; i < loom_state_count(src); i++) {
        const char *name;
        loom_dtype dt;
        int nd;
        int64_t shape[LOOM_MAX_DIMS];
        LOOM_TRY(loom_state_entry(src, i, &name, &dt, &nd, shape));
        uint64_t bytes;
        size_t esz = loom_dtype_size(dt);
        if (loom_shape_bytes(nd, shape, esz, NULL, &bytes) || bytes > SIZE_MAX)
            return loom_fail(m->ctx, LOOM_E_OOM, "replicas: \"%s\" is too large to copy", name);
        void *buf = loom_malloc(m->ctx, bytes ? (size_t)bytes : 1);
        if (!buf)
            return loom_fail(m->ctx, LOOM_E_OOM, "replicas: out of memory copying \"%s\"", name);
        loom_status s = loom_state_read(src, name, buf, (size_t)bytes);
        if (s == LOOM_OK)
            s = loom_state_write(dst, name, dt, nd, shape, buf);
        loom_free(m->ctx, buf, bytes ? (size_t)bytes : 1);
        LOOM_TRY(s);
    }
    loom_state_set_step(dst, loom_state_step(src));
    return LOOM_OK;
}

/* Rank 0's state, progress and seed into every process. */
static loom_status broadcast_state(loom_sequential *m, struct nn_replicas *rep)
{
    const loom_collective *c = &rep->coll;
    int64_t desc[6] = {loom_state_count(m->st), rep->flat_count, loom_state_step(m->st), m->epoch, m->epoch_step,
                       (int64_t)m->cfg.seed};
    int64_t mine[6];
    memcpy(mine, desc, sizeof mine);
    LOOM_TRY(c->broadcast(c->user, desc, sizeof desc));
    if (desc[0] != mine[0] || desc[1] != mine[1])
        return loom_fail(m->ctx, LOOM_E_STATE, "replicas: rank %d's model has %lld state tensors of %lld weights, "
                         "rank 0's %lld of %lld: every process must build the same model", c->rank,
                         (long long)mine[0], (long long)mine[1], (long long)desc[0], (long long)desc[1]);
    loom_state_set_step(m->st, desc[2]);
    m->epoch = desc[3];
    m->epoch_step = desc[4];
    m->cfg.seed = (uint64_t)desc[5]; /* rank 0 decides the data order */
    for (int i = 0; i < loom_state_count(m->st); i++) {
        const char *name;
        loom_dtype dt;
        int nd;
        int64_t shape[LOOM_MAX_DIMS];
        LOOM_TRY(loom_state_entry(m->st, i, &name, &dt, &nd, shape));
        uint64_t bytes;
        size_t esz = loom_dtype_size(dt);
        if (loom_shape_bytes(nd, shape, esz, NULL, &bytes) || bytes > SIZE_MAX)
            return loom_fail(m->ctx, LOOM_E_OOM, "replicas: \"%s\" is too large to broadcast", name);
        void *buf = loom_malloc(m->ctx, bytes ? (size_t)bytes : 1);
        if (!buf)
            return loom_fail(m->ctx, LOOM_E_OOM, "replicas: out of memory broadcasting \"%s\"", name);
        char nm[256];
        snprintf(nm, sizeof nm, "%s", name); /* the entry's name may move on write */
        loom_status s = loom_state_read(m->st, nm, buf, (size_t)bytes);
        if (s == LOOM_OK)
            s = c->broadcast(c->user, buf, (size_t)bytes);
        if (s == LOOM_OK)
            s = loom_state_write(m->st, nm, dt, nd, shape, buf);
        loom_free(m->ctx, buf, bytes ? (size_t)bytes : 1);
        LOOM_TRY(s);
    }
    return LOOM_OK;
}

static int same_kind(const loom_device *a, const loom_device *b)
{
    const loom_device_info *x = loom_device_get(a), *y = loom_device_get(b);
    return x->backend == y->backend && !strcmp(x->name, y->name) && !strcmp(x->driver, y->driver);
}

void loom_replicas_free(loom_sequential *m)
{
    struct nn_replicas *rep = m ? m->rep : NULL;
    if (!rep)
        return;
    for (int i = 0; i < rep->n; i++) {
        replica *r = &rep->r[i];
        for (int k = 0; k < r->nprogs; k++)
            free_prog(&r->progs[k]);
        loom_program_destroy(r->up);
        loom_graph_destroy(r->ug);
        loom_free(m->ctx, r->host, (size_t)(rep->flat_count ? rep->flat_count : 1) * sizeof(float));
        if (i > 0)
            loom_state_destroy(r->st);
    }
    int np = loom_model_param_count(m);
    loom_free(m->ctx, rep->t, (size_t)(np ? np : 1) * sizeof *rep->t);
    loom_free(m->ctx, rep->b, (size_t)(np ? np : 1) * sizeof *rep->b);
    loom_free(m->ctx, rep->flat, (size_t)(rep->flat_count ? rep->flat_count : 1) * sizeof(float));
    loom_free(m->ctx, rep->tmp, (size_t)rep->tmp_count * sizeof(float));
    loom_free(m->ctx, rep->reqs, (size_t)(rep->nb ? rep->nb : 1) * sizeof *rep->reqs);
    loom_free(m->ctx, rep, sizeof *rep);
    m->rep = NULL;
}

loom_status loom_sequential_replicate(loom_sequential *m, loom_device *const *more, int nmore,
                                      const loom_replica_opts *opts)
{
    if (!m)
        return LOOM_E_INVALID;
    const char *what = "loom_sequential_replicate";
    if (!m->compiled)
        return loom_fail(m->ctx, LOOM_E_STATE, "%s: compile (or load) the model first", what);
    if (m->rep)
        return loom_fail(m->ctx, LOOM_E_STATE, "%s: the model has replicas already", what);
    loom_replica_opts o = opts ? *opts : loom_replica_opts_default();
    if (nmore < 0 || nmore + 1 > LOOM_MAX_REPLICAS || (nmore > 0 && !more))
        return loom_fail(m->ctx, LOOM_E_INVALID, "%s: %d devices; 1 to %d can hold replicas", what, nmore + 1,
                         LOOM_MAX_REPLICAS);
    for (int i = 0; i < nmore; i++)
        if (!more[i] || !loom_device_get(more[i]))
            return loom_fail(m->ctx, LOOM_E_INVALID, "%s: device %d of the list is NULL", what, i + 1);
    if (m->cfg.batch < nmore + 1)
        return loom_fail(m->ctx, LOOM_E_INVALID, "%s: batch %lld is smaller than the %d devices: each needs rows of "
                         "every batch", what, (long long)m->cfg.batch, nmore + 1);
    if (m->cfg.precision == LOOM_F16)
        return loom_fail(m->ctx, LOOM_E_UNSUPPORTED, "%s: f16 precision's dynamic loss scaling is not split across "
                         "replicas yet; train replicas in f32 or bf16", what);
    if (o.check_every < 0 || o.bucket_bytes < 4 || o.balance_steps < 0)
        return loom_fail(m->ctx, LOOM_E_INVALID, "%s: check_every %lld, bucket_bytes %lld, balance_steps %lld",
                         what, (long long)o.check_every, (long long)o.bucket_bytes, (long long)o.balance_steps);
    if (o.collective) {
        const loom_collective *c = o.collective;
        if (c->size < 1 || c->rank < 0 || c->rank >= c->size || !c->sum_start || !c->wait || !c->broadcast ||
            !c->sum_doubles)
            return loom_fail(m->ctx, LOOM_E_INVALID, "%s: the collective (rank %d of %d) lacks a function or its "
                             "rank is out of range", what, c->rank, c->size);
    }
    if (o.shares)
        for (int i = 0; i <= nmore; i++)
            if (!(o.shares[i] > 0) || !isfinite(o.shares[i]))
                return loom_fail(m->ctx, LOOM_E_INVALID, "%s: share %d is %g; shares are > 0", what, i,
                                 o.shares[i]);
    struct nn_replicas *rep = loom_calloc(m->ctx, 1, sizeof *rep);
    if (!rep)
        return loom_fail(m->ctx, LOOM_E_OOM, "%s: out of memory", what);
    m->rep = rep;
    rep->opts = o;
    rep->opts.shares = NULL;
    if (o.collective) {
        rep->coll = *o.collective;
        rep->has_coll = 1;
    }
    rep->n = nmore + 1;
    for (int i = 0; i < rep->n; i++) {
        replica *r = &rep->r[i];
        r->dev = i ? more[i - 1] : m->dev;
        r->share = o.shares ? o.shares[i] : 1.0;
        /* each device, and each process, draws its own dropout masks */
        r->salt = (uint32_t)(i + (rep->has_coll ? rep->coll.rank * LOOM_MAX_REPLICAS : 0)) * 0x9e3779b9u;
    }
    rep->update = o.update;
    if (rep->update == LOOM_UPDATE_AUTO) {
        rep->update = LOOM_UPDATE_EACH;
        for (int i = 1; i < rep->n; i++)
            if (!same_kind(rep->r[0].dev, rep->r[i].dev))
                rep->update = LOOM_UPDATE_BROADCAST;
    }
    rep->stats.replicas = rep->n;
    rep->stats.update = rep->update;
    loom_status s = plan_tensors(m, rep);
    if (s == LOOM_OK && rep->has_coll && rep->coll.size > 1)
        s = broadcast_state(m, rep);
    for (int i = 0; i < rep->n && s == LOOM_OK; i++)
        if (!(rep->r[i].host = loom_malloc(m->ctx, (size_t)(rep->flat_count ? rep->flat_count : 1) * sizeof(float))))
            s = loom_fail(m->ctx, LOOM_E_OOM, "%s: out of memory for %lld gradient values", what,
                          (long long)rep->flat_count);
    rep->r[0].st = m->st;
    for (int i = 1; i < rep->n && s == LOOM_OK; i++) {
        replica *r = &rep->r[i];
        s = loom_state_create(r->dev, &r->st);
        if (s == LOOM_OK)
            s = copy_state(m, m->st, r->st);
    }
    for (int i = 0; i < rep->n && s == LOOM_OK; i++)
        if (i == 0 || rep->update == LOOM_UPDATE_EACH)
            s = compile_half(m, &rep->r[i], LOOM_MODEL_UPDATE, 0, &rep->r[i].ug, &rep->r[i].up);
    if (s == LOOM_OK) {
        update_row_stats(rep, m->cfg.batch);
        s = loom_sequential_check_replicas(m, NULL);
    }
    if (s != LOOM_OK)
        loom_replicas_free(m);
    return s;
}

loom_status loom_replicas_rebuild_updates(loom_sequential *m)
{
    struct nn_replicas *rep = m ? m->rep : NULL;
    loom_status s = LOOM_OK;
    for (int i = 0; rep && i < rep->n && s == LOOM_OK; i++) {
        replica *r = &rep->r[i];
        if (!r->up)
            continue;
        loom_program_destroy(r->up);
        loom_graph_destroy(r->ug);
        r->up = NULL;
        r->ug = NULL;
        s = compile_half(m, r, LOOM_MODEL_UPDATE, 0, &r->ug, &r->up);
    }
    return s;
}

loom_status loom_sequential_replica_stats(const loom_sequential *m, loom_replica_stats *out)
{
    if (!m || !out)
        return LOOM_E_INVALID;
    if (!m->rep)
        return loom_fail(m->ctx, LOOM_E_STATE, "loom_sequential_replica_stats: the model has no replicas");
    *out = m->rep->stats;
    return LOOM_OK;
}

int loom_replicas_size(const loom_sequential *m)
{
    return m->rep && m->rep->has_coll ? m->rep->coll.size : 1;
}

int loom_replicas_rank(const loom_sequential *m)
{
    return m->rep && m->rep->has_coll ? m->rep->coll.rank : 0;
}

loom_status loom_replicas_sum(loom_sequential *m, double *v, int n)
{
    if (!m->rep || !m->rep->has_coll || m->rep->coll.size < 2)
        return LOOM_OK;
    return m->rep->coll.sum_doubles(m->rep->coll.user, v, n);
}

loom_status loom_replicas_end(loom_sequential *m)
{
    return m->rep ? loom_sequential_check_replicas(m, NULL) : LOOM_OK;
}

/* ---- one step ----------------------------------------------------------- */

/* Uploads replica r's rows of the batch into its gradients program. */
static loom_status feed(loom_sequential *m, replica *r)
{
    loom_program *p = r->cur->p;
    int64_t f = m->in_features, pos = loom_model_positions(m), outs = loom_model_outputs(m);
    LOOM_TRY(loom_model_check_inputs(m, m->xbuf + r->lo * f, r->n));
    LOOM_TRY(loom_program_set_input(p, "x", m->xbuf + r->lo * f, (size_t)(r->n * f) * sizeof(float)));
    if (m->cfg.loss == LOOM_LOSS_SPARSE_CE)
        return loom_program_set_input(p, "labels", m->ybuf + r->lo * pos, (size_t)(r->n * pos) * sizeof(int32_t));
    float *t = m->tbuf + r->lo * outs;
    memset(t, 0, (size_t)(r->n * outs) * sizeof(float));
    for (int64_t i = 0; i < r->n; i++) {
        int32_t y = m->ybuf[r->lo + i];
        if (y < 0 || y >= outs)
            return loom_fail(m->ctx, LOOM_E_RANGE, "targets: label %d at row %lld is outside [0, %lld)", y,
                             (long long)(r->lo + i), (long long)outs);
        t[i * outs + y] = 1.0f;
    }
    return loom_program_set_input(p, "targets", t, (size_t)(r->n * outs) * sizeof(float));
}

/* Starts replica r's gradients half, with the copies of its results
 * queued behind it (no round trip each after the wait). */
static loom_status submit_replica(loom_sequential *m, replica *r)
{
    struct nn_replicas *rep = m->rep;
    loom_program *p = r->cur->p;
    LOOM_TRY(loom_program_submit(p));
    LOOM_TRY(loom_program_read_async(p, "loss", &r->loss, sizeof r->loss));
    if (m->cfg.loss != LOOM_LOSS_MSE) {
        int64_t pos = loom_model_positions(m);
        LOOM_TRY(loom_program_read_async(p, "pred", m->pbuf + r->lo * pos, (size_t)(r->n * pos) * sizeof(int32_t)));
    }
    for (int i = 0; i < rep->nt; i++)
        if (rep->t[i].trainable)
            LOOM_TRY(loom_program_read_async(p, rep->t[i].out, r->host + rep->t[i].off,
                                             (size_t)rep->t[i].count * sizeof(float)));
    return LOOM_OK;
}

static loom_status wait_replica(loom_sequential *m, replica *r, double *loss_sum, int64_t *correct)
{
    if (r->waited || r->n == 0)
        return LOOM_OK;
    r->waited = 1;
    LOOM_TRY(loom_program_wait(r->cur->p)); /* the queued reads are done with it */
    *loss_sum += (double)r->loss * (double)r->n;
    if (m->cfg.loss != LOOM_LOSS_MSE) {
        int64_t pos = loom_model_positions(m), np = r->n * pos;
        const int32_t *pred = m->pbuf + r->lo * pos;
        for (int64_t i = 0; i < np; i++)
            *correct += pred[i] == m->ybuf[r->lo * pos + i];
    }
    return LOOM_OK;
}

/* Replica r's share of tensor t, weighted, into the reduction. */
static loom_status contribute(loom_sequential *m, replica *r, const rtensor *t, double w, int first)
{
    struct nn_replicas *rep = m->rep;
    size_t bytes = (size_t)t->count * sizeof(float);
    float *dst = rep->flat + t->off;
    const float *src = r->host + t->off;
    if (!t->trainable) { /* running statistics, updated in its state */
        LOOM_TRY(loom_state_read(r->st, t->name, rep->tmp, bytes));
        src = rep->tmp;
    }
    float wf = (float)w;
    if (first)
        for (int64_t i = 0; i < t->count; i++)
            dst[i] = wf * src[i];
    else
        for (int64_t i = 0; i < t->count; i++)
            dst[i] += wf * src[i];
    return LOOM_OK;
}

/* The reduced values into replica r: gradients into its update program's
 * inputs, running statistics into its state. */
static loom_status apply_inputs(loom_sequential *m, replica *r, int grads, int stats)
{
    struct nn_replicas *rep = m->rep;
    for (int i = 0; i < rep->nt; i++) {
        const rtensor *t = &rep->t[i];
        size_t bytes = (size_t)t->count * sizeof(float);
        if (t->trainable && grads)
            LOOM_TRY(loom_program_set_input(r->up, t->out, rep->flat + t->off, bytes));
        else if (!t->trainable && stats)
            LOOM_TRY(loom_state_write(r->st, t->name, LOOM_F32, t->ndim, t->shape, rep->flat + t->off));
    }
    return LOOM_OK;
}

/* Broadcast mode: the first replica's new weights into the others. */
static loom_status copy_weights(loom_sequential *m)
{
    struct nn_replicas *rep = m->rep;
    for (int i = 0; i < rep->nt; i++) {
        const rtensor *t = &rep->t[i];
        if (!t->trainable)
            continue;
        LOOM_TRY(loom_state_read(rep->r[0].st, t->name, rep->tmp, (size_t)t->count * sizeof(float)));
        for (int k = 1; k < rep->n; k++)
            LOOM_TRY(loom_state_write(rep->r[k].st, t->name, LOOM_F32, t->ndim, t->shape, rep->tmp));
    }
    for (int k = 1; k < rep->n; k++)
        loom_state_set_step(rep->r[k].st, loom_state_step(rep->r[0].st));
    return LOOM_OK;
}

static int is_cpu(const replica *r)
{
    return loom_device_get(r->dev)->backend == LOOM_BACKEND_CPU;
}

loom_status loom_replicas_step(loom_sequential *m, int64_t nb, int64_t global, double *loss_sum, int64_t *correct,
                               model_prog **ran)
{
    struct nn_replicas *rep = m->rep;
    int R = rep->n;
    int64_t rows[LOOM_MAX_REPLICAS];
    split_rows(rep, nb, rows);
    int balancing = rep->stats.steps < rep->opts.balance_steps;
    int64_t lo = 0;
    for (int i = 0; i < R; i++) {
        replica *r = &rep->r[i];
        r->n = rows[i];
        r->lo = lo;
        r->waited = 0;
        r->cur = NULL;
        lo += rows[i];
        if (r->n > 0) {
            LOOM_TRY(grads_prog(m, r, r->n, &r->cur));
            LOOM_TRY(feed(m, r));
        }
    }
    double t0 = loom_nn_now_s();
    if (balancing) {
        /* each device alone, timed */
        for (int i = 0; i < R; i++) {
            replica *r = &rep->r[i];
            if (!r->n)
                continue;
            double a = loom_nn_now_s();
            LOOM_TRY(submit_replica(m, r));
            LOOM_TRY(wait_replica(m, r, loss_sum, correct));
            r->meas_s += loom_nn_now_s() - a;
            r->meas_rows += (double)r->n;
        }
    } else {
        /* the asynchronous devices first: they compute while the CPU does */
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0; i < R; i++)
                if (rep->r[i].n && is_cpu(&rep->r[i]) == pass)
                    LOOM_TRY(submit_replica(m, &rep->r[i]));
    }
    double t1 = loom_nn_now_s();
    int coll = rep->has_coll && rep->coll.size > 1;
    /* bucket by bucket: every device's share, then the processes' sum */
    double wait_s = 0;
    for (int b = 0; b < rep->nb; b++) {
        const rbucket *bk = &rep->b[b];
        int first = 1;
        for (int i = 0; i < R; i++) {
            replica *r = &rep->r[i];
            if (!r->n)
                continue;
            double a = loom_nn_now_s();
            LOOM_TRY(wait_replica(m, r, loss_sum, correct));
            wait_s += loom_nn_now_s() - a;
            double w = (double)r->n / (double)global;
            for (int k = bk->first; k <= bk->last; k++)
                LOOM_TRY(contribute(m, r, &rep->t[k], w, first));
            first = 0;
        }
        if (first)
            memset(rep->flat + bk->off, 0, (size_t)bk->count * sizeof(float));
        if (coll)
            LOOM_TRY(rep->coll.sum_start(rep->coll.user, rep->flat + bk->off, bk->count, &rep->reqs[b]));
    }
    for (int i = 0; i < R; i++) /* a replica with nothing to reduce still ran */
        LOOM_TRY(wait_replica(m, &rep->r[i], loss_sum, correct));
    double t2 = loom_nn_now_s();
    for (int b = 0; b < rep->nb && coll; b++)
        LOOM_TRY(rep->coll.wait(rep->coll.user, rep->reqs[b]));
    double t3 = loom_nn_now_s();
    if (rep->update == LOOM_UPDATE_EACH) {
        for (int i = 0; i < R; i++) {
            LOOM_TRY(apply_inputs(m, &rep->r[i], 1, 1));
            LOOM_TRY(loom_program_submit(rep->r[i].up));
        }
        for (int i = 0; i < R; i++)
            LOOM_TRY(loom_program_wait(rep->r[i].up));
    } else {
        LOOM_TRY(apply_inputs(m, &rep->r[0], 1, 1));
        LOOM_TRY(loom_program_run(rep->r[0].up));
        for (int i = 1; i < R; i++)
            LOOM_TRY(apply_inputs(m, &rep->r[i], 0, 1));
        LOOM_TRY(copy_weights(m));
    }
    double t4 = loom_nn_now_s();
    rep->stats.steps++;
    rep->stats.compute_s += (t1 - t0) + wait_s;
    rep->stats.reduce_s += (t2 - t1) - wait_s;
    rep->stats.allreduce_s += t3 - t2;
    rep->stats.update_s += t4 - t3;
    rep->last_reduce_s = (t2 - t1) - wait_s;
    rep->last_allreduce_s = t3 - t2;
    rep->last_update_s = t4 - t3;
    if (balancing && (rep->stats.steps == rep->opts.balance_steps ||
                      rep->stats.steps == (rep->opts.balance_steps + 1) / 2))
        rebalance(m);
    if (rep->opts.check_every > 0 && rep->stats.steps % rep->opts.check_every == 0)
        LOOM_TRY(loom_sequential_check_replicas(m, NULL));
    rep->ran.p = rep->r[0].cur ? rep->r[0].cur->p : NULL;
    rep->ran.train = 1;
    rep->ran.batch = rep->r[0].n;
    if (ran)
        *ran = rep->ran.p ? &rep->ran : NULL;
    return LOOM_OK;
}

loom_status loom_replicas_trace(loom_sequential *m, struct loom_trace *trace, int64_t step)
{
    struct nn_replicas *rep = m->rep;
    for (int i = 0; i < rep->n; i++) {
        replica *r = &rep->r[i];
        if (r->cur && r->n > 0)
            LOOM_TRY(loom_trace_add_run(trace, r->cur->p, step, "gradients"));
        if (r->up && (i == 0 || rep->update == LOOM_UPDATE_EACH))
            LOOM_TRY(loom_trace_add_run(trace, r->up, step, "update"));
    }
    loom_device *lead = rep->r[0].dev;
    LOOM_TRY(loom_trace_counter(trace, lead, "host reduce ms", 1e3 * rep->last_reduce_s));
    if (rep->has_coll && rep->coll.size > 1)
        LOOM_TRY(loom_trace_counter(trace, lead, "allreduce ms", 1e3 * rep->last_allreduce_s));
    return loom_trace_counter(trace, lead, "update + copies ms", 1e3 * rep->last_update_s);
}
