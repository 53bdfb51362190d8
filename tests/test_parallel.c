/* Data-parallel training (src/nn/replicas.c): the step split at the
 * gradient boundary, replicas on several devices of any backend against
 * one device at the same batch, processes (threads here, through a
 * collective of shared memory) against one process at N x batch, the
 * replicas' hash check, the shares of a batch, bad input; and the pieces
 * under it: loom_program_submit / wait on every device, loom_set_grad. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { ROWS = 384, FEAT = 24, CLASSES = 4, HID = 16 };

/* Rows whose class is the argmax of a fixed projection: learnable. */
static loom_dataset *make_data(loom_ctx *ctx, int64_t n, uint32_t seed)
{
    float *x = malloc((size_t)n * FEAT * sizeof *x), proj[FEAT * CLASSES];
    int32_t *y = malloc((size_t)n * sizeof *y);
    tu_fill(x, (size_t)n * FEAT, seed, -1.0f, 1.0f);
    tu_fill(proj, FEAT * CLASSES, 99, -1.0f, 1.0f);
    for (int64_t i = 0; i < n; i++) {
        float best = -1e30f;
        for (int c = 0; c < CLASSES; c++) {
            float v = 0;
            for (int f = 0; f < FEAT; f++)
                v += x[i * FEAT + f] * proj[f * CLASSES + c];
            if (v > best) {
                best = v;
                y[i] = c;
            }
        }
    }
    /* every class present, so the class count is CLASSES */
    for (int c = 0; c < CLASSES; c++)
        y[c] = c;
    loom_dataset *ds = NULL;
    ck_assert_int_eq(loom_dataset_create(ctx, n, FEAT, x, 1, y, &ds), LOOM_OK);
    free(x);
    free(y);
    return ds;
}

static loom_sequential *make_mlp(loom_ctx *ctx, loom_device *dev, int64_t batch, float dropout)
{
    loom_sequential *m = NULL;
    ck_assert_int_eq(loom_sequential_create(ctx, FEAT, &m), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_dense(m, HID, LOOM_ACT_RELU, LOOM_INIT_GLOROT_UNIFORM), LOOM_OK);
    if (dropout > 0)
        ck_assert_int_eq(loom_sequential_add_dropout(m, dropout), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_dense(m, CLASSES, LOOM_ACT_SOFTMAX, LOOM_INIT_GLOROT_UNIFORM), LOOM_OK);
    loom_model_config c = loom_model_config_default();
    c.batch = batch;
    c.seed = 7;
    c.optimizer.lr = 0.01f;
    ck_assert_msg(loom_sequential_compile(m, dev, &c) == LOOM_OK, "%s", loom_last_error(ctx));
    return m;
}

enum { NWEIGHTS = FEAT * HID + HID + HID * CLASSES + CLASSES };

/* Every weight of the MLP, in one array. */
static void read_weights(loom_sequential *m, float *w)
{
    static const char *names[] = {"dense0/kernel", "dense0/bias", "dense1/kernel", "dense1/bias"};
    static const size_t counts[] = {FEAT * HID, HID, HID * CLASSES, CLASSES};
    size_t off = 0;
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(loom_state_read(loom_sequential_state(m), names[i], w + off, counts[i] * sizeof *w),
                         LOOM_OK);
        off += counts[i];
    }
}

static void fit(loom_ctx *ctx, loom_sequential *m, loom_dataset *ds, int epochs)
{
    loom_fit_config fc = loom_fit_config_default();
    fc.epochs = epochs;
    ck_assert_msg(loom_sequential_fit(m, ds, &fc, NULL) == LOOM_OK, "%s", loom_last_error(ctx));
}

/* The weights after `epochs` on one device at `batch`. */
static void reference(loom_ctx *ctx, loom_dataset *ds, int64_t batch, int epochs, float *w)
{
    loom_device *dev = tu_open(ctx, "cpu");
    loom_sequential *m = make_mlp(ctx, dev, batch, 0);
    fit(ctx, m, ds, epochs);
    read_weights(m, w);
    loom_sequential_destroy(m);
    loom_device_close(dev);
}

/* ---- the split step ------------------------------------------------------ */

/* One replica runs the step in its two halves (gradients, then update):
 * the same weights as the fused step, on every device, to float
 * tolerance (the fused step folds the biases' sums into the updates). */
START_TEST(split_step_matches_fused)
{
    loom_ctx *ctx = tu_ctx();
    loom_dataset *ds = make_data(ctx, ROWS, 1);
    char specs[16][32];
    int nd = tu_devices(ctx, specs, 16);
    float *a = malloc(NWEIGHTS * sizeof *a), *b = malloc(NWEIGHTS * sizeof *b);
    for (int d = 0; d < nd; d++) {
        loom_device *dev = tu_open(ctx, specs[d]);
        loom_sequential *m = make_mlp(ctx, dev, 32, 0);
        fit(ctx, m, ds, 2);
        read_weights(m, a);
        loom_sequential_destroy(m);
        m = make_mlp(ctx, dev, 32, 0);
        ck_assert_msg(loom_sequential_replicate(m, NULL, 0, NULL) == LOOM_OK, "%s", loom_last_error(ctx));
        fit(ctx, m, ds, 2);
        read_weights(m, b);
        loom_replica_stats rs;
        ck_assert_int_eq(loom_sequential_replica_stats(m, &rs), LOOM_OK);
        ck_assert_int_eq(rs.steps, 2 * ROWS / 32);
        ck_assert_int_eq(rs.grad_bytes, NWEIGHTS * 4);
        ck_assert_int_eq(loom_state_step(loom_sequential_state(m)), 2 * ROWS / 32);
        fprintf(stderr, "parallel: split step on %s: max normalized error %g\n", specs[d],
                tu_err(b, a, NWEIGHTS, 1e-5, 1e-4));
        tu_assert_close(b, a, NWEIGHTS, 1e-5, 1e-4);
        loom_sequential_destroy(m);
        loom_device_close(dev);
    }
    free(a);
    free(b);
    loom_dataset_destroy(ds);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- replicas in one process --------------------------------------------- */

static void replicas_match_one(const char *const *specs, int n, loom_replica_update update)
{
    loom_ctx *ctx = tu_ctx();
    loom_dataset *ds = make_data(ctx, ROWS, 2);
    float *want = malloc(NWEIGHTS * sizeof *want), *got = malloc(NWEIGHTS * sizeof *got);
    reference(ctx, ds, 32, 2, want);
    loom_device *devs[LOOM_MAX_REPLICAS];
    for (int i = 0; i < n; i++)
        devs[i] = tu_open(ctx, specs[i]);
    loom_sequential *m = make_mlp(ctx, devs[0], 32, 0);
    loom_replica_opts ro = loom_replica_opts_default();
    ro.check_every = 5;
    ro.balance_steps = 4;
    ro.update = update;
    ck_assert_msg(loom_sequential_replicate(m, devs + 1, n - 1, &ro) == LOOM_OK, "%s", loom_last_error(ctx));
    fit(ctx, m, ds, 2);
    read_weights(m, got);
    char what[256] = "";
    for (int i = 0; i < n; i++)
        snprintf(what + strlen(what), sizeof what - strlen(what), "%s%s", i ? "+" : "", specs[i]);
    fprintf(stderr, "parallel: %s vs one cpu at batch 32: max normalized error %g\n", what,
            tu_err(got, want, NWEIGHTS, 1e-5, 1e-4));
    tu_assert_close(got, want, NWEIGHTS, 1e-5, 1e-4);
    loom_replica_stats rs;
    ck_assert_int_eq(loom_sequential_replica_stats(m, &rs), LOOM_OK);
    ck_assert_int_eq(rs.replicas, n);
    ck_assert_int_eq(rs.steps, 2 * ROWS / 32);
    /* at replicate, every 5 steps and at the end of the fit */
    ck_assert_int_ge(rs.checks, 1 + rs.steps / 5 + 1);
    int64_t sum = 0;
    for (int i = 0; i < n; i++) {
        ck_assert_int_ge(rs.rows[i], 1);
        ck_assert_msg(rs.rows_per_s[i] > 0, "%s: no speed measured", specs[i]);
        sum += rs.rows[i];
    }
    ck_assert_int_eq(sum, 32);
    uint64_t h1 = 0, h2 = 0;
    ck_assert_int_eq(loom_sequential_check_replicas(m, &h1), LOOM_OK);
    ck_assert_int_eq(loom_sequential_check_replicas(m, &h2), LOOM_OK);
    ck_assert(h1 == h2 && h1 == rs.hash);
    /* evaluation and files come from the first replica: they work as before */
    loom_eval_result r;
    ck_assert_int_eq(loom_sequential_evaluate(m, ds, 0, &r), LOOM_OK);
    ck_assert_msg(r.accuracy > 0.5, "%s: accuracy %.3f after 2 epochs", what, r.accuracy);
    loom_eval_result_free(&r);
    loom_sequential_destroy(m);
    for (int i = 0; i < n; i++)
        loom_device_close(devs[i]);
    free(want);
    free(got);
    loom_dataset_destroy(ds);
    loom_ctx_destroy(ctx);
}

START_TEST(two_cpu_replicas_match_one)
{
    const char *specs[] = {"cpu", "cpu"};
    replicas_match_one(specs, 2, LOOM_UPDATE_AUTO);
}
END_TEST

/* cpu + every other device present (vulkan:0 + opencl:0 here), updated
 * once and broadcast (AUTO across backends). */
START_TEST(mixed_devices_match_one)
{
    loom_ctx *ctx = tu_ctx();
    char all[16][32];
    int nd = tu_devices(ctx, all, 16);
    const char *specs[LOOM_MAX_REPLICAS] = {"cpu"};
    int n = 1;
    for (int i = 0; i < nd && n < 3; i++)
        if (strcmp(all[i], "cpu"))
            specs[n++] = all[i];
    if (n == 1) {
        fprintf(stderr, "parallel: no device beside the CPU; cpu + cpu + cpu instead\n");
        specs[n++] = "cpu";
        specs[n++] = "cpu";
    }
    char keep[LOOM_MAX_REPLICAS][32];
    for (int i = 0; i < n; i++)
        snprintf(keep[i], sizeof keep[i], "%s", specs[i]), specs[i] = keep[i];
    loom_ctx_destroy(ctx);
    replicas_match_one(specs, n, LOOM_UPDATE_AUTO);
    /* and every replica running the optimizer itself, when they are alike */
    const char *cc[] = {"cpu", "cpu", "cpu"};
    replicas_match_one(cc, 3, LOOM_UPDATE_EACH);
}
END_TEST

/* Fixed shares split the batch as asked; dropout and batch norm train on
 * and the replicas stay identical (batch norm's running statistics are
 * averaged and written back into every replica). */
START_TEST(shares_dropout_batch_norm)
{
    loom_ctx *ctx = tu_ctx();
    loom_dataset *ds = make_data(ctx, ROWS, 3);
    loom_device *a = tu_open(ctx, "cpu"), *b = tu_open(ctx, "cpu");
    loom_sequential *m = make_mlp(ctx, a, 32, 0.3f);
    double shares[2] = {3, 1};
    loom_replica_opts ro = loom_replica_opts_default();
    ro.shares = shares;
    ro.balance_steps = 0;
    ro.check_every = 1;
    ck_assert_int_eq(loom_sequential_replicate(m, &b, 1, &ro), LOOM_OK);
    fit(ctx, m, ds, 1);
    loom_replica_stats rs;
    ck_assert_int_eq(loom_sequential_replica_stats(m, &rs), LOOM_OK);
    ck_assert_int_eq(rs.rows[0], 24);
    ck_assert_int_eq(rs.rows[1], 8);
    ck_assert_int_eq(rs.checks, 1 + ROWS / 32 + 1);
    loom_sequential_destroy(m);

    /* an image model with batch norm and spatial dropout */
    loom_sequential *c = NULL;
    ck_assert_int_eq(loom_sequential_create_image(ctx, 1, 4, 6, &c), LOOM_OK);
    loom_conv2d_layer cl = loom_conv2d_layer_default(3, 3, 3);
    cl.same = 1;
    cl.act = LOOM_ACT_RELU;
    ck_assert_msg(loom_sequential_add_conv2d(c, &cl) == LOOM_OK, "%s", loom_last_error(ctx));
    ck_assert_int_eq(loom_sequential_add_batch_norm(c, 0.9f, 1e-3f), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_spatial_dropout(c, 0.2f), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_flatten(c), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_dense(c, CLASSES, LOOM_ACT_SOFTMAX, LOOM_INIT_GLOROT_UNIFORM), LOOM_OK);
    loom_model_config mc = loom_model_config_default();
    ck_assert_msg(loom_sequential_compile(c, a, &mc) == LOOM_OK, "%s", loom_last_error(ctx));
    ro.shares = NULL;
    ck_assert_int_eq(loom_sequential_replicate(c, &b, 1, &ro), LOOM_OK);
    float before[6], after[6];
    ck_assert_int_eq(loom_state_read(loom_sequential_state(c), "bn0/running", before, sizeof before), LOOM_OK);
    fit(ctx, c, ds, 1);
    ck_assert_int_eq(loom_state_read(loom_sequential_state(c), "bn0/running", after, sizeof after), LOOM_OK);
    ck_assert_msg(memcmp(before, after, sizeof after), "the running statistics did not move");
    ck_assert_int_eq(loom_sequential_check_replicas(c, NULL), LOOM_OK);
    loom_sequential_destroy(c);
    loom_device_close(a);
    loom_device_close(b);
    loom_dataset_destroy(ds);
    loom_ctx_destroy(ctx);
}
END_TEST

/* A replica whose weights differ is found and named. */
START_TEST(diverged_replica_is_named)
{
    loom_ctx *ctx = tu_ctx();
    loom_dataset *ds = make_data(ctx, ROWS, 4);
    loom_device *a = tu_open(ctx, "cpu"), *b = tu_open(ctx, "cpu");
    /* another model's weights in a file */
    loom_sequential *other = make_mlp(ctx, a, 32, 0);
    fit(ctx, other, ds, 1);
    char path[] = "/tmp/loom-parallel-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(loom_sequential_save(other, path), LOOM_OK);
    loom_sequential_destroy(other);
    loom_sequential *m = make_mlp(ctx, a, 32, 0);
    ck_assert_int_eq(loom_sequential_replicate(m, &b, 1, NULL), LOOM_OK);
    /* restore writes the first replica's state alone */
    ck_assert_int_eq(loom_sequential_restore(m, path), LOOM_OK);
    ck_assert_int_eq(loom_sequential_check_replicas(m, NULL), LOOM_E_STATE);
    const char *e = loom_last_error(ctx);
    ck_assert_msg(strstr(e, "replicas differ") && strstr(e, "cpu") && strstr(e, "dense0/kernel"), "%s", e);
    /* the fit stops at its first check */
    loom_fit_config fc = loom_fit_config_default();
    fc.epochs = 1;
    ck_assert_int_eq(loom_sequential_fit(m, ds, &fc, NULL), LOOM_E_STATE);
    loom_sequential_destroy(m);
    remove(path);
    loom_device_close(a);
    loom_device_close(b);
    loom_dataset_destroy(ds);
    loom_ctx_destroy(ctx);
}
END_TEST

START_TEST(bad_input)
{
    loom_ctx *ctx = tu_ctx();
    loom_device *a = tu_open(ctx, "cpu"), *b = tu_open(ctx, "cpu"), *c = tu_open(ctx, "cpu");
    loom_device *two[2] = {b, c};
    loom_sequential *m = make_mlp(ctx, a, 2, 0);
    ck_assert_int_eq(loom_sequential_replicate(m, two, 2, NULL), LOOM_E_INVALID);
    ck_assert_msg(strstr(loom_last_error(ctx), "batch 2 is smaller than the 3 devices"), "%s", loom_last_error(ctx));
    loom_device *none[1] = {NULL};
    ck_assert_int_eq(loom_sequential_replicate(m, none, 1, NULL), LOOM_E_INVALID);
    ck_assert_msg(strstr(loom_last_error(ctx), "NULL"), "%s", loom_last_error(ctx));
    loom_device *many[LOOM_MAX_REPLICAS];
    for (int i = 0; i < LOOM_MAX_REPLICAS; i++)
        many[i] = b;
    ck_assert_int_eq(loom_sequential_replicate(m, many, LOOM_MAX_REPLICAS, NULL), LOOM_E_INVALID);
    double bad_shares[2] = {1, 0};
    loom_replica_opts ro = loom_replica_opts_default();
    ro.shares = bad_shares;
    ck_assert_int_eq(loom_sequential_replicate(m, &b, 1, &ro), LOOM_E_INVALID);
    ck_assert_msg(strstr(loom_last_error(ctx), "share 1"), "%s", loom_last_error(ctx));
    loom_collective half = {0, 2, NULL, NULL, NULL, NULL, NULL};
    ro = loom_replica_opts_default();
    ro.collective = &half;
    ck_assert_int_eq(loom_sequential_replicate(m, &b, 1, &ro), LOOM_E_INVALID);
    ck_assert_msg(strstr(loom_last_error(ctx), "collective"), "%s", loom_last_error(ctx));
    /* a failed replicate leaves the model as it was: one device, training */
    loom_dataset *ds = make_data(ctx, 64, 5);
    fit(ctx, m, ds, 1);
    ck_assert_int_eq(loom_sequential_check_replicas(m, NULL), LOOM_E_STATE);
    ck_assert_int_eq(loom_sequential_replicate(m, &b, 1, NULL), LOOM_OK);
    ck_assert_int_eq(loom_sequential_replicate(m, &c, 1, NULL), LOOM_E_STATE);
    ck_assert_msg(strstr(loom_last_error(ctx), "already"), "%s", loom_last_error(ctx));
    loom_sequential_destroy(m);
    /* not compiled */
    loom_sequential *u = NULL;
    ck_assert_int_eq(loom_sequential_create(ctx, FEAT, &u), LOOM_OK);
    ck_assert_int_eq(loom_sequential_replicate(u, &b, 1, NULL), LOOM_E_STATE);
    loom_sequential_destroy(u);
    /* f16's loss scaling is not split */
    ck_assert_int_eq(loom_sequential_create(ctx, FEAT, &u), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_dense(u, CLASSES, LOOM_ACT_SOFTMAX, LOOM_INIT_GLOROT_UNIFORM), LOOM_OK);
    loom_model_config hc = loom_model_config_default();
    hc.precision = LOOM_F16;
    ck_assert_msg(loom_sequential_compile(u, a, &hc) == LOOM_OK, "%s", loom_last_error(ctx));
    ck_assert_int_eq(loom_sequential_replicate(u, &b, 1, NULL), LOOM_E_UNSUPPORTED);
    ck_assert_msg(strstr(loom_last_error(ctx), "f16"), "%s", loom_last_error(ctx));
    loom_sequential_destroy(u);
    loom_dataset_destroy(ds);
    loom_device_close(a);
    loom_device_close(b);
    loom_device_close(c);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- processes: threads through a collective of shared memory ------------ */

#define MAXP 4

typedef struct shared {
    int size;
    pthread_barrier_t bar;
    float *slot[MAXP];
    double *dslot[MAXP];
    void *bcast;
    int fail_after;            /* > 0: every rank's sum number N fails, as when
                                  a rank died and the watchdog found it */
} shared;

typedef struct proc {
    shared *sh;
    loom_ctx *ctx;
    int rank;
    int sums;
    loom_collective coll;
    int64_t batch;
    loom_dataset *ds;
    float w[NWEIGHTS];
    loom_status fit_status;
    char err[512];
} proc;

/* Every rank adds the slots in rank order: the same bytes everywhere. */
static loom_status t_sum_start(void *user, float *data, int64_t n, void **req)
{
    proc *p = user;
    shared *sh = p->sh;
    p->sums++;
    if (sh->fail_after > 0 && p->sums >= sh->fail_after)
        return loom_fail(p->ctx, LOOM_E_DEVICE, "rank %d: rank %d (pid 1 on test) died; stopping", p->rank,
                         sh->size - 1 - p->rank);
    sh->slot[p->rank] = data;
    pthread_barrier_wait(&sh->bar);
    float *tmp = malloc((size_t)n * sizeof *tmp);
    for (int64_t i = 0; i < n; i++) {
        float s = sh->slot[0][i];
        for (int r = 1; r < sh->size; r++)
            s += sh->slot[r][i];
        tmp[i] = s;
    }
    pthread_barrier_wait(&sh->bar);
    memcpy(data, tmp, (size_t)n * sizeof *tmp);
    free(tmp);
    *req = data;
    return LOOM_OK;
}

static loom_status t_wait(void *user, void *req)
{
    (void)user;
    (void)req;
    return LOOM_OK;
}

static loom_status t_broadcast(void *user, void *data, size_t bytes)
{
    proc *p = user;
    shared *sh = p->sh;
    if (p->rank == 0)
        sh->bcast = data;
    pthread_barrier_wait(&sh->bar);
    if (p->rank != 0)
        memcpy(data, sh->bcast, bytes);
    pthread_barrier_wait(&sh->bar);
    return LOOM_OK;
}

static loom_status t_sum_doubles(void *user, double *data, int n)
{
    proc *p = user;
    shared *sh = p->sh;
    sh->dslot[p->rank] = data;
    pthread_barrier_wait(&sh->bar);
    double tmp[64];
    ck_assert_int_le(n, 64);
    for (int i = 0; i < n; i++) {
        tmp[i] = 0;
        for (int r = 0; r < sh->size; r++)
            tmp[i] += sh->dslot[r][i];
    }
    pthread_barrier_wait(&sh->bar);
    memcpy(data, tmp, (size_t)n * sizeof *tmp);
    return LOOM_OK;
}

static void *proc_main(void *arg)
{
    proc *p = arg;
    loom_ctx *ctx = tu_ctx();
    p->ctx = ctx;
    loom_device *dev = tu_open(ctx, "cpu");
    loom_sequential *m = make_mlp(ctx, dev, p->batch, 0);
    p->coll = (loom_collective){p->rank, p->sh->size, p, t_sum_start, t_wait, t_broadcast, t_sum_doubles};
    loom_replica_opts ro = loom_replica_opts_default();
    ro.collective = &p->coll;
    ro.check_every = 3;
    ro.bucket_bytes = 256; /* several buckets in flight */
    loom_status s = loom_sequential_replicate(m, NULL, 0, &ro);
    if (s == LOOM_OK) {
        loom_fit_config fc = loom_fit_config_default();
        fc.epochs = 2;
        s = loom_sequential_fit(m, p->ds, &fc, NULL);
    }
    p->fit_status = s;
    snprintf(p->err, sizeof p->err, "%s", s ? loom_last_error(ctx) : "");
    if (s == LOOM_OK)
        read_weights(m, p->w);
    loom_sequential_destroy(m);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
    return NULL;
}

static void run_procs(int np, int64_t batch, loom_dataset *ds, proc *ps, int fail_after)
{
    shared sh;
    memset(&sh, 0, sizeof sh);
    sh.size = np;
    sh.fail_after = fail_after;
    pthread_barrier_init(&sh.bar, NULL, (unsigned)np);
    pthread_t th[MAXP];
    for (int r = 0; r < np; r++) {
        memset(&ps[r], 0, sizeof ps[r]);
        ps[r].sh = &sh;
        ps[r].rank = r;
        ps[r].batch = batch;
        ps[r].ds = ds;
        ck_assert_int_eq(pthread_create(&th[r], NULL, proc_main, &ps[r]), 0);
    }
    for (int r = 0; r < np; r++)
        pthread_join(th[r], NULL);
    pthread_barrier_destroy(&sh.bar);
}

/* N processes at batch B train as one at N x B (the same data order),
 * and end with the same bytes. */
START_TEST(processes_match_one_at_n_batches)
{
    loom_ctx *ctx = tu_ctx();
    loom_dataset *ds = make_data(ctx, ROWS, 6);
    float *want = malloc(NWEIGHTS * sizeof *want);
    proc *ps = calloc(MAXP, sizeof *ps);
    for (int np = 2; np <= 3; np++) {
        reference(ctx, ds, 16 * np, 2, want);
        run_procs(np, 16, ds, ps, 0);
        for (int r = 0; r < np; r++) {
            ck_assert_msg(ps[r].fit_status == LOOM_OK, "rank %d: %s", r, ps[r].err);
            ck_assert_msg(!memcmp(ps[r].w, ps[0].w, sizeof ps[0].w), "rank %d's weights differ from rank 0's", r);
        }
        fprintf(stderr, "parallel: %d processes at batch 16 vs one at %d: max normalized error %g\n", np, 16 * np,
                tu_err(ps[0].w, want, NWEIGHTS, 1e-5, 1e-4));
        tu_assert_close(ps[0].w, want, NWEIGHTS, 1e-5, 1e-4);
    }
    free(ps);
    free(want);
    loom_dataset_destroy(ds);
    loom_ctx_destroy(ctx);
}
END_TEST

/* A collective that fails (a rank died) stops every fit with its error. */
START_TEST(collective_failure_stops_the_fit)
{
    loom_ctx *ctx = tu_ctx();
    loom_dataset *ds = make_data(ctx, ROWS, 7);
    proc *ps = calloc(MAXP, sizeof *ps);
    run_procs(2, 16, ds, ps, 5);
    for (int r = 0; r < 2; r++) {
        ck_assert_int_eq(ps[r].fit_status, LOOM_E_DEVICE);
        char want[64];
        snprintf(want, sizeof want, "rank %d (pid 1 on test) died", 1 - r);
        ck_assert_msg(strstr(ps[r].err, want), "rank %d: %s", r, ps[r].err);
    }
    free(ps);
    loom_dataset_destroy(ds);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- the pieces under it -------------------------------------------------- */

/* submit returns, a second submit is refused, a read waits; on every device. */
START_TEST(submit_and_wait)
{
    loom_ctx *ctx = tu_ctx();
    char specs[16][32];
    int nd = tu_devices(ctx, specs, 16);
    for (int d = 0; d < nd; d++) {
        loom_device *dev = tu_open(ctx, specs[d]);
        loom_state *st;
        ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
        loom_graph *g;
        ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
        int64_t s[1] = {1000};
        loom_tensor x = loom_input(g, "x", LOOM_F32, 1, s);
        loom_output(g, loom_scale(g, loom_relu(g, x), 2.0f), "y");
        loom_program *p;
        ck_assert_int_eq(loom_compile(g, dev, st, NULL, &p), LOOM_OK);
        float in[1000], out[1000];
        tu_fill(in, 1000, 3, -1, 1);
        ck_assert_int_eq(loom_program_set_input(p, "x", in, sizeof in), LOOM_OK);
        ck_assert_int_eq(loom_program_submit(p), LOOM_OK);
        ck_assert_int_eq(loom_program_submit(p), LOOM_E_STATE);
        ck_assert_msg(strstr(loom_last_error(ctx), "in flight"), "%s", loom_last_error(ctx));
        ck_assert_int_eq(loom_program_read(p, "y", out, sizeof out), LOOM_OK);
        for (int i = 0; i < 1000; i++)
            ck_assert_float_eq(out[i], in[i] > 0 ? 2 * in[i] : 0.0f);
        ck_assert_int_eq(loom_program_wait(p), LOOM_OK); /* nothing in flight: fine */
        /* new input while in flight: set_input waits for the replay first */
        ck_assert_int_eq(loom_program_submit(p), LOOM_OK);
        for (int i = 0; i < 1000; i++)
            in[i] = -in[i];
        ck_assert_int_eq(loom_program_set_input(p, "x", in, sizeof in), LOOM_OK);
        ck_assert_int_eq(loom_program_run(p), LOOM_OK);
        ck_assert_int_eq(loom_program_read(p, "y", out, sizeof out), LOOM_OK);
        for (int i = 0; i < 1000; i++)
            ck_assert_float_eq(out[i], in[i] > 0 ? 2 * in[i] : 0.0f);
        /* a read queued behind the replay lands by the wait */
        float queued[1000];
        memset(queued, 0, sizeof queued);
        ck_assert_int_eq(loom_program_submit(p), LOOM_OK);
        ck_assert_int_eq(loom_program_read_async(p, "y", queued, sizeof queued), LOOM_OK);
        ck_assert_int_eq(loom_program_read_async(p, "y", queued, 4), LOOM_E_SHAPE);
        ck_assert_int_eq(loom_program_read_async(p, "nope", queued, sizeof queued), LOOM_E_INVALID);
        ck_assert_int_eq(loom_program_wait(p), LOOM_OK);
        for (int i = 0; i < 1000; i++)
            ck_assert_float_eq(queued[i], in[i] > 0 ? 2 * in[i] : 0.0f);
        /* destroyed while in flight */
        ck_assert_int_eq(loom_program_submit(p), LOOM_OK);
        loom_program_destroy(p);
        loom_graph_destroy(g);
        loom_state_destroy(st);
        loom_device_close(dev);
    }
    loom_ctx_destroy(ctx);
}
END_TEST

START_TEST(set_grad)
{
    loom_ctx *ctx = tu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_state *st;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    float w0[3] = {1, 2, 3}, gr[3] = {0.5f, -1.0f, 2.0f}, w[3];
    int64_t s3[1] = {3}, s2[1] = {2};
    ck_assert_int_eq(loom_state_write(st, "w", LOOM_F32, 1, s3, w0), LOOM_OK);
    loom_graph *g;
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    loom_tensor p = loom_param(g, "w", LOOM_F32, 1, s3, 1);
    loom_tensor gi = loom_input(g, "grad:w", LOOM_F32, 1, s3);
    loom_tensor bad = loom_input(g, "bad", LOOM_F32, 1, s2);
    ck_assert_int_eq(loom_set_grad(g, gi, gi), LOOM_E_INVALID);
    loom_graph_destroy(g);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    p = loom_param(g, "w", LOOM_F32, 1, s3, 1);
    gi = loom_input(g, "grad:w", LOOM_F32, 1, s3);
    bad = loom_input(g, "bad", LOOM_F32, 1, s2);
    ck_assert_int_eq(loom_set_grad(g, p, bad), LOOM_E_SHAPE);
    ck_assert_msg(strstr(loom_last_error(ctx), "does not fit"), "%s", loom_last_error(ctx));
    loom_graph_destroy(g);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    p = loom_param(g, "w", LOOM_F32, 1, s3, 1);
    gi = loom_input(g, "grad:w", LOOM_F32, 1, s3);
    ck_assert_int_eq(loom_set_grad(g, p, gi), LOOM_OK);
    ck_assert_int_eq(loom_set_grad(g, p, gi), LOOM_E_STATE);
    loom_graph_destroy(g);
    /* the update half: SGD, lr 0.1, w - 0.1 g */
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    p = loom_param(g, "w", LOOM_F32, 1, s3, 1);
    gi = loom_input(g, "grad:w", LOOM_F32, 1, s3);
    ck_assert_int_eq(loom_set_grad(g, p, gi), LOOM_OK);
    loom_optimizer o = loom_optimizer_default(LOOM_OPT_SGD);
    o.lr = 0.1f;
    ck_assert_int_eq(loom_optimize(g, &o), LOOM_OK);
    loom_program *pr;
    ck_assert_msg(loom_compile(g, dev, st, NULL, &pr) == LOOM_OK, "%s", loom_last_error(ctx));
    ck_assert_int_eq(loom_program_set_input(pr, "grad:w", gr, sizeof gr), LOOM_OK);
    ck_assert_int_eq(loom_program_run(pr), LOOM_OK);
    ck_assert_int_eq(loom_state_read(st, "w", w, sizeof w), LOOM_OK);
    for (int i = 0; i < 3; i++)
        ck_assert_float_eq_tol(w[i], w0[i] - 0.1f * gr[i], 1e-6f);
    ck_assert_int_eq(loom_state_step(st), 1);
    loom_program_destroy(pr);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

Suite *parallel_suite(void)
{
    Suite *s = suite_create("parallel");
    TCase *pieces = tcase_create("pieces");
    tcase_add_test(pieces, submit_and_wait);
    tcase_add_test(pieces, set_grad);
    suite_add_tcase(s, pieces);
    TCase *rep = tcase_create("replicas");
    tcase_set_timeout(rep, 600);
    tcase_add_test(rep, split_step_matches_fused);
    tcase_add_test(rep, two_cpu_replicas_match_one);
    tcase_add_test(rep, mixed_devices_match_one);
    tcase_add_test(rep, shares_dropout_batch_norm);
    tcase_add_test(rep, diverged_replica_is_named);
    tcase_add_test(rep, bad_input);
    suite_add_tcase(s, rep);
    TCase *procs = tcase_create("processes");
    tcase_set_timeout(procs, 600);
    tcase_add_test(procs, processes_match_one_at_n_batches);
    tcase_add_test(procs, collective_failure_stops_the_fit);
    suite_add_tcase(s, procs);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(parallel_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
