/* The profiler on every device present: per-node statistics, busy time,
 * FLOPs from shapes; the Chrome trace; the metrics stream and a follower
 * reading it while it grows; vendor counters against fixture trees. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include "core/profile.h"
#include "dash.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { M = 7, K = 33, H = 20, O = 9 };

/* xt [K,M] -> matmul(ta) [M,H] -> add bias -> relu -> matmul(tb) [M,O] ->
 * softmax: five nodes that run. */
static loom_graph *forward_graph(loom_ctx *ctx)
{
    loom_graph *g = NULL;
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t xs[2] = {K, M}, ws[2] = {K, H}, bs[1] = {H}, w2s[2] = {O, H};
    loom_tensor x = loom_input(g, "xt", LOOM_F32, 2, xs);
    loom_tensor w = loom_param(g, "w1", LOOM_F32, 2, ws, 1);
    loom_tensor b = loom_param(g, "b1", LOOM_F32, 1, bs, 1);
    loom_tensor w2 = loom_param(g, "w2", LOOM_F32, 2, w2s, 1);
    loom_tensor h = loom_relu(g, loom_add(g, loom_matmul(g, x, w, 1, 0), b));
    loom_tensor y = loom_softmax(g, loom_matmul(g, h, w2, 0, 1));
    ck_assert_int_eq(loom_output(g, y, "p"), LOOM_OK);
    return g;
}

static loom_program *compile_forward(loom_device *dev, loom_state *st, loom_graph *g, int profile)
{
    /* node by node: the figures below are per node of the graph */
    loom_compile_opts o = {.profile = profile, .no_fusion = 1};
    loom_program *p = NULL;
    loom_status s = loom_compile(g, dev, st, &o, &p);
    ck_assert_msg(s == LOOM_OK, "compile on %s: %s", loom_device_get(dev)->spec, loom_status_str(s));
    float x[K * M];
    tu_fill(x, K * M, 3, -1, 1);
    ck_assert_int_eq(loom_program_set_input(p, "xt", x, sizeof x), LOOM_OK);
    return p;
}

static const loom_profile_node *find_op(const loom_profile_report *r, const char *op, int nth)
{
    for (int i = 0; i < r->nnodes; i++)
        if (!strcmp(r->nodes[i].op, op) && nth-- == 0)
            return &r->nodes[i];
    return NULL;
}

static void check_report(const char *spec, const loom_profile_report *r, int64_t runs)
{
    ck_assert_msg(r->enabled && r->timed, "%s: profile enabled %d timed %d", spec, r->enabled, r->timed);
    ck_assert_int_eq(r->runs, runs);
    double sum = 0, sum_last = 0;
    for (int i = 0; i < r->nnodes; i++) {
        const loom_profile_node *e = &r->nodes[i];
        ck_assert_msg(e->count == runs, "%s: node %s timed %lld times", spec, e->name, (long long)e->count);
        ck_assert_msg(e->total_ns >= 0 && e->min_ns >= 0 && e->min_ns <= e->mean_ns + 1e-6 &&
                          e->mean_ns <= e->max_ns + 1e-6,
                      "%s: node %s times total %g min %g mean %g max %g", spec, e->name, e->total_ns, e->min_ns,
                      e->mean_ns, e->max_ns);
        ck_assert_msg(e->last_end_ns >= e->last_start_ns, "%s: node %s ends before it starts", spec, e->name);
        sum += e->total_ns;
        sum_last += e->last_end_ns - e->last_start_ns;
    }
    ck_assert_msg(sum <= r->wall_total_ns * (1 + 1e-12), "%s: nodes took %.0f ns of a %.0f ns wall", spec, sum,
                  r->wall_total_ns);
    ck_assert_msg(sum_last <= r->wall_last_ns * (1 + 1e-12), "%s: last run: nodes %.0f ns, wall %.0f ns", spec,
                  sum_last, r->wall_last_ns);
    ck_assert_msg(r->busy_pct >= 0 && r->busy_pct <= 100, "%s: busy %g%%", spec, r->busy_pct);
    ck_assert_msg(r->busy_last_pct >= 0 && r->busy_last_pct <= 100, "%s: last busy %g%%", spec, r->busy_last_pct);
    ck_assert(r->busy_total_ns <= r->wall_total_ns * (1 + 1e-12));
    ck_assert(r->device_total_ns >= r->busy_total_ns * (1 - 1e-12));
    ck_assert(r->wall_min_ns <= r->wall_mean_ns && r->wall_mean_ns <= r->wall_max_ns);
}

START_TEST(test_profile_every_device)
{
    loom_ctx *ctx = tu_ctx();
    char specs[8][32];
    int n = tu_devices(ctx, specs, 8);
    ck_assert_int_ge(n, 1);
    for (int d = 0; d < n; d++) {
        loom_device *dev = tu_open(ctx, specs[d]);
        loom_state *st = NULL;
        ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
        loom_graph *g = forward_graph(ctx);
        loom_program *p = compile_forward(dev, st, g, 1);
        for (int k = 0; k < 3; k++)
            ck_assert_msg(loom_program_run(p) == LOOM_OK, "%s: %s", specs[d], loom_last_error(ctx));
        loom_profile_report r;
        ck_assert_int_eq(loom_profile_get(p, &r), LOOM_OK);
        ck_assert_msg(r.nnodes == 5, "%s: %d profile entries for 5 nodes", specs[d], r.nnodes);
        check_report(specs[d], &r, 3);
        const loom_profile_node *mm0 = find_op(&r, "matmul", 0), *mm1 = find_op(&r, "matmul", 1);
        ck_assert_ptr_nonnull(mm0);
        ck_assert_ptr_nonnull(mm1);
        /* GEMM: 2*M*N*K, K read from the transposed side where it is. */
        ck_assert_double_eq(mm0->flops, 2.0 * M * H * K);
        ck_assert_double_eq(mm1->flops, 2.0 * M * O * H);
        ck_assert_double_eq(mm0->bytes, 4.0 * (K * M + K * H + M * H));
        ck_assert_str_eq(mm0->shape, "[7,20]");
        ck_assert_double_eq(find_op(&r, "add", 0)->flops, (double)M * H);
        if (mm0->total_ns > 0)
            ck_assert_double_eq_tol(mm0->gflops, mm0->flops * 3 / mm0->total_ns, 1e-9 * mm0->gflops);
        double fl = 0;
        for (int i = 0; i < r.nnodes; i++)
            fl += r.nodes[i].flops;
        ck_assert_double_eq(r.flops_per_run, fl);
        loom_plan_report pr;
        ck_assert_int_eq(loom_program_plan(p, &pr), LOOM_OK);
        ck_assert_uint_eq(r.arena_bytes, pr.arena_bytes);
        ck_assert_uint_eq(r.state_bytes, pr.state_bytes);
        ck_assert_uint_eq(r.state_bytes, 4u * (K * H + H + O * H));
        ck_assert_uint_eq(r.mem_bytes, r.state_bytes + r.arena_bytes);
        loom_program_destroy(p);
        loom_graph_destroy(g);
        loom_state_destroy(st);
        loom_device_close(dev);
    }
    loom_ctx_destroy(ctx);
}
END_TEST

/* A training step: forward, loss, gradients, Adam updates. */
static loom_graph *train_graph(loom_ctx *ctx, int64_t b)
{
    loom_graph *g = NULL;
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t xs[2] = {b, 12}, ys[1] = {b}, w1[2] = {12, 16}, b1[1] = {16}, w2[2] = {16, 4};
    loom_tensor x = loom_input(g, "x", LOOM_F32, 2, xs);
    loom_tensor y = loom_input(g, "y", LOOM_I32, 1, ys);
    loom_tensor h = loom_relu(g, loom_add(g, loom_matmul(g, x, loom_param(g, "w1", LOOM_F32, 2, w1, 1), 0, 0),
                                          loom_param(g, "b1", LOOM_F32, 1, b1, 1)));
    loom_tensor logits = loom_matmul(g, h, loom_param(g, "w2", LOOM_F32, 2, w2, 1), 0, 0);
    loom_tensor loss = loom_sparse_cross_entropy(g, logits, y);
    loom_output(g, loss, "loss");
    ck_assert_int_eq(loom_backward(g, loss, NULL, 0), LOOM_OK);
    loom_optimizer o = loom_optimizer_default(LOOM_OPT_ADAM);
    ck_assert_int_eq(loom_optimize(g, &o), LOOM_OK);
    return g;
}

static loom_program *compile_train(loom_device *dev, loom_state *st, loom_graph *g, int64_t b, int profile)
{
    loom_compile_opts o = {.profile = profile};
    loom_program *p = NULL;
    ck_assert_int_eq(loom_compile(g, dev, st, &o, &p), LOOM_OK);
    float x[64 * 12];
    int32_t y[64];
    tu_fill(x, (size_t)b * 12, 9, -1, 1);
    for (int i = 0; i < b; i++)
        y[i] = i % 4;
    ck_assert_int_eq(loom_program_set_input(p, "x", x, (size_t)b * 12 * sizeof *x), LOOM_OK);
    ck_assert_int_eq(loom_program_set_input(p, "y", y, (size_t)b * sizeof *y), LOOM_OK);
    return p;
}

START_TEST(test_profile_train_every_device)
{
    loom_ctx *ctx = tu_ctx();
    char specs[8][32];
    int n = tu_devices(ctx, specs, 8);
    for (int d = 0; d < n; d++) {
        loom_device *dev = tu_open(ctx, specs[d]);
        loom_state *st = NULL;
        ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
        loom_graph *g = train_graph(ctx, 32);
        loom_program *p = compile_train(dev, st, g, 32, 1);
        for (int k = 0; k < 2; k++)
            ck_assert_msg(loom_program_run(p) == LOOM_OK, "%s: %s", specs[d], loom_last_error(ctx));
        loom_profile_report r;
        ck_assert_int_eq(loom_profile_get(p, &r), LOOM_OK);
        check_report(specs[d], &r, 2);
        int updates = 0;
        for (int i = 0; i < r.nnodes; i++) {
            ck_assert_msg(r.nodes[i].bytes > 0, "%s: node %s (%s) moves no bytes", specs[d], r.nodes[i].name,
                          r.nodes[i].op);
            if (!strcmp(r.nodes[i].op, "adam_update")) {
                updates++;
                ck_assert_str_eq(r.nodes[i].shape, "-");
                ck_assert(r.nodes[i].flops > 0);
            }
        }
        ck_assert_int_eq(updates, 3);
        loom_program_destroy(p);
        loom_graph_destroy(g);
        loom_state_destroy(st);
        loom_device_close(dev);
    }
    loom_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_profile_off_and_reset)
{
    loom_ctx *ctx = tu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_state *st = NULL;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    loom_graph *g = forward_graph(ctx);
    loom_program *off = compile_forward(dev, st, g, 0);
    ck_assert_int_eq(loom_program_run(off), LOOM_OK);
    loom_profile_report r;
    ck_assert_int_eq(loom_profile_get(off, &r), LOOM_OK);
    ck_assert_int_eq(r.enabled, 0);
    ck_assert_int_eq(r.runs, 0);
    ck_assert_double_eq(r.busy_pct, -1);
    ck_assert_int_eq(r.nnodes, 5);
    ck_assert_int_eq(r.nodes[0].count, 0);
    ck_assert_double_eq(find_op(&r, "matmul", 0)->flops, 2.0 * M * H * K); /* static figures stay */
    loom_trace *t = NULL;
    ck_assert_int_eq(loom_trace_create(ctx, &t), LOOM_OK);
    ck_assert_int_eq(loom_trace_add_run(t, off, 1, NULL), LOOM_E_STATE);
    ck_assert_msg(strstr(loom_last_error(ctx), "profile = 1") && strstr(loom_last_error(ctx), "cpu"), "%s",
                  loom_last_error(ctx));
    loom_trace_destroy(t);

    loom_program *p = compile_forward(dev, st, g, 1);
    ck_assert_int_eq(loom_trace_create(ctx, &t), LOOM_OK);
    ck_assert_int_eq(loom_trace_add_run(t, p, 1, NULL), LOOM_E_STATE); /* not run yet */
    loom_trace_destroy(t);
    ck_assert_int_eq(loom_program_run(p), LOOM_OK);
    ck_assert_int_eq(loom_program_run(p), LOOM_OK);
    ck_assert_int_eq(loom_profile_reset(p), LOOM_OK);
    ck_assert_int_eq(loom_profile_get(p, &r), LOOM_OK);
    ck_assert_int_eq(r.runs, 0);
    ck_assert_double_eq(r.busy_pct, -1);
    for (int i = 0; i < r.nnodes; i++)
        ck_assert(r.nodes[i].count == 0 && r.nodes[i].total_ns == 0);
    ck_assert_int_eq(loom_program_run(p), LOOM_OK);
    ck_assert_int_eq(loom_profile_get(p, &r), LOOM_OK);
    check_report("cpu", &r, 1);
    ck_assert_int_eq(loom_profile_get(NULL, &r), LOOM_E_INVALID);
    ck_assert_int_eq(loom_profile_reset(NULL), LOOM_E_INVALID);
    loom_program_destroy(p);
    loom_program_destroy(off);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- the Chrome trace ---- */

static char *tmpdir(void)
{
    static char dir[] = "/tmp/loom_prof_XXXXXX";
    static char buf[64];
    memcpy(buf, dir, sizeof dir);
    ck_assert_ptr_nonnull(mkdtemp(buf));
    return buf;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    ck_assert_int_eq(fread(b, 1, (size_t)n, f), n);
    b[n] = 0;
    fclose(f);
    return b;
}

typedef struct ev {
    const char *cat, *name;
    int pid, tid;
    long long a, b;             /* ns */
} ev;

static long long us_to_ns(const cJSON *v)
{
    return llround(v->valuedouble * 1000.0);
}

static int by_ts(const void *x, const void *y)
{
    const ev *a = x, *b = y;
    return a->a < b->a ? -1 : a->a > b->a;
}

/* Slices of one category on one track never overlap. */
static void check_no_overlap(ev *e, int n, const char *cat)
{
    ev *s = malloc(((size_t)n + 1) * sizeof *s);
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!strcmp(e[i].cat, cat))
            s[k++] = e[i];
    qsort(s, (size_t)k, sizeof *s, by_ts);
    for (int i = 1; i < k; i++)
        if (s[i].pid == s[i - 1].pid && s[i].tid == s[i - 1].tid)
            ck_assert_msg(s[i].a >= s[i - 1].b, "%s slices overlap: %s [%lld,%lld] and %s [%lld,%lld]", cat,
                          s[i - 1].name, s[i - 1].a, s[i - 1].b, s[i].name, s[i].a, s[i].b);
    free(s);
}

/* Each slice of cat lies inside a slice of parent on its track. */
static void check_nested(ev *e, int n, const char *cat, const char *parent)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(e[i].cat, cat))
            continue;
        int inside = 0;
        for (int j = 0; j < n && !inside; j++)
            inside = !strcmp(e[j].cat, parent) && e[j].pid == e[i].pid && e[j].tid == e[i].tid &&
                     e[j].a <= e[i].a && e[i].b <= e[j].b;
        ck_assert_msg(inside, "%s slice %s [%lld,%lld] is in no %s slice", cat, e[i].name, e[i].a, e[i].b, parent);
    }
}

typedef struct traced {
    loom_device *dev;
    loom_state *st, *st2;       /* the two models share parameter names */
    loom_graph *gt, *gf;
    loom_program *train, *fwd;
} traced;

START_TEST(test_trace)
{
    loom_ctx *ctx = tu_ctx();
    char specs[8][32];
    int ndev = tu_devices(ctx, specs, 8);
    traced td[8];
    loom_trace *t = NULL;
    ck_assert_int_eq(loom_trace_create(ctx, &t), LOOM_OK);
    int want_nodes = 0;
    for (int d = 0; d < ndev; d++) {
        traced *x = &td[d];
        x->dev = tu_open(ctx, specs[d]);
        ck_assert_int_eq(loom_state_create(x->dev, &x->st), LOOM_OK);
        ck_assert_int_eq(loom_state_create(x->dev, &x->st2), LOOM_OK);
        x->gt = train_graph(ctx, 16);
        x->gf = forward_graph(ctx);
        x->train = compile_train(x->dev, x->st, x->gt, 16, 1);
        x->fwd = compile_forward(x->dev, x->st2, x->gf, 1);
        /* steps 1, 1, 2 of train, then a forward run inside step 2 */
        int64_t steps[3] = {1, 1, 2};
        for (int k = 0; k < 3; k++) {
            ck_assert_int_eq(loom_program_run(x->train), LOOM_OK);
            ck_assert_int_eq(loom_trace_add_run(t, x->train, steps[k], "train"), LOOM_OK);
            ck_assert_int_eq(loom_trace_counter(t, x->dev, "loss", 1.0 / (k + 1)), LOOM_OK);
        }
        ck_assert_int_eq(loom_program_run(x->fwd), LOOM_OK);
        ck_assert_int_eq(loom_trace_add_run(t, x->fwd, 2, "eval"), LOOM_OK);
        loom_profile_report rt, rf;
        ck_assert_int_eq(loom_profile_get(x->train, &rt), LOOM_OK);
        ck_assert_int_eq(loom_profile_get(x->fwd, &rf), LOOM_OK);
        want_nodes += 3 * rt.nnodes + rf.nnodes; /* one slice per node per run */
    }
    char *dir = tmpdir(), path[128], bad[160];
    snprintf(path, sizeof path, "%s/t.json", dir);
    ck_assert_int_eq(loom_trace_write(t, path), LOOM_OK);
    snprintf(bad, sizeof bad, "%s/missing/t.json", dir);
    ck_assert_int_eq(loom_trace_write(t, bad), LOOM_E_IO);
    ck_assert_msg(strstr(loom_last_error(ctx), bad), "%s", loom_last_error(ctx));
    loom_trace_destroy(t);

    char *text = slurp(path);
    cJSON *root = cJSON_Parse(text);
    ck_assert_msg(root != NULL, "the trace is not JSON");
    const cJSON *events = cJSON_GetObjectItem(root, "traceEvents"), *e;
    ck_assert(cJSON_IsArray(events));
    int n = cJSON_GetArraySize(events), ne = 0, nnode = 0, nrun = 0, nstep = 0, nbusy = 0, nloss = 0, named = 0;
    ev *evs = calloc((size_t)n, sizeof *evs);
    cJSON_ArrayForEach(e, events)
    {
        const char *ph = cJSON_GetObjectItem(e, "ph")->valuestring;
        const char *name = cJSON_GetObjectItem(e, "name")->valuestring;
        const cJSON *args = cJSON_GetObjectItem(e, "args");
        int pid = cJSON_GetObjectItem(e, "pid")->valueint;
        ck_assert(pid >= 1 && pid <= ndev);
        if (!strcmp(ph, "M") && !strcmp(name, "process_name")) {
            named++;
            ck_assert_ptr_nonnull(strstr(cJSON_GetObjectItem(args, "name")->valuestring,
                                         loom_device_get(td[pid - 1].dev)->name));
        }
        if (!strcmp(ph, "C")) {
            double v = cJSON_GetObjectItem(args, "value")->valuedouble;
            if (!strcmp(name, "busy %")) {
                nbusy++;
                ck_assert(v >= 0 && v <= 100);
            }
            nloss += !strcmp(name, "loss");
        }
        if (strcmp(ph, "X"))
            continue;
        ev *x = &evs[ne++];
        x->cat = cJSON_GetObjectItem(e, "cat")->valuestring;
        x->name = name;
        x->pid = pid;
        x->tid = cJSON_GetObjectItem(e, "tid")->valueint;
        x->a = us_to_ns(cJSON_GetObjectItem(e, "ts"));
        x->b = x->a + us_to_ns(cJSON_GetObjectItem(e, "dur"));
        ck_assert(x->a >= 0 && x->b >= x->a);
        nnode += !strcmp(x->cat, "node");
        nrun += !strcmp(x->cat, "run");
        nstep += !strcmp(x->cat, "step");
        if (!strcmp(x->cat, "node")) {
            ck_assert(cJSON_IsString(cJSON_GetObjectItem(args, "op")));
            ck_assert(cJSON_GetObjectItem(args, "flops")->valuedouble >= 0);
        }
    }
    ck_assert_int_eq(named, ndev);
    ck_assert_int_eq(nnode, want_nodes);
    ck_assert_int_eq(nrun, 4 * ndev);
    ck_assert_int_eq(nstep, 2 * ndev);
    ck_assert_int_eq(nbusy, 4 * ndev);
    ck_assert_int_eq(nloss, 3 * ndev);
    check_no_overlap(evs, ne, "node");
    check_no_overlap(evs, ne, "run");
    check_no_overlap(evs, ne, "step");
    check_nested(evs, ne, "node", "run");
    check_nested(evs, ne, "run", "step");
    const cJSON *other = cJSON_GetObjectItem(root, "otherData");
    const cJSON *plans = cJSON_GetObjectItem(other, "plans");
    ck_assert_int_eq(cJSON_GetArraySize(plans), 2 * ndev);
    loom_plan_report pr;
    ck_assert_int_eq(loom_program_plan(td[0].train, &pr), LOOM_OK);
    const cJSON *p0 = cJSON_GetArrayItem(plans, 0);
    ck_assert_str_eq(cJSON_GetObjectItem(p0, "label")->valuestring, "train");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(p0, "live_bytes")), pr.steps);
    ck_assert_double_eq(cJSON_GetObjectItem(p0, "arena_bytes")->valuedouble, (double)pr.arena_bytes);
    const cJSON *d0 = cJSON_GetArrayItem(cJSON_GetObjectItem(other, "devices"), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(d0, "name")->valuestring, loom_device_get(td[0].dev)->name);
    /* Written through a temporary name: nothing else is left in the folder. */
    DIR *dd = opendir(dir);
    struct dirent *de;
    int files = 0;
    while ((de = readdir(dd)))
        files += de->d_name[0] != '.';
    closedir(dd);
    ck_assert_int_eq(files, 1);

    /* The dashboard's loader reads back the first device. */
    loom_profile_report rt;
    ck_assert_int_eq(loom_profile_get(td[0].train, &rt), LOOM_OK);
    dash_model m;
    dash_model_init(&m);
    char err[256];
    ck_assert_msg(dash_load_trace(&m, path, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(m.ndevices, ndev);
    ck_assert_int_eq(m.nops, rt.nnodes); /* the first kind of run: train */
    ck_assert_int_eq(m.ops_runs, 3);
    ck_assert_int_eq(m.s[DS_BUSY].n, 4);
    ck_assert_int_eq(m.s[DS_LOSS].n, 3);
    ck_assert_int_eq(m.nplans, 2);
    for (int i = 1; i < m.nops; i++)
        ck_assert(m.ops[i - 1].total_ms >= m.ops[i].total_ms);
    dash_model_free(&m);

    remove(path);
    rmdir(dir);
    free(evs);
    cJSON_Delete(root);
    free(text);
    for (int d = 0; d < ndev; d++) {
        traced *x = &td[d];
        loom_program_destroy(x->train);
        loom_program_destroy(x->fwd);
        loom_graph_destroy(x->gt);
        loom_graph_destroy(x->gf);
        loom_state_destroy(x->st);
        loom_state_destroy(x->st2);
        loom_device_close(x->dev);
    }
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- the metrics stream ---- */

static cJSON *line_json(const char *line, size_t len)
{
    cJSON *o = cJSON_ParseWithLength(line, len);
    ck_assert_msg(cJSON_IsObject(o), "not a JSON object: %.*s", (int)len, line);
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(o, "type")));
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(o, "time")));
    return o;
}

START_TEST(test_metrics_file)
{
    loom_ctx *ctx = tu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_state *st = NULL;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    loom_graph *g = train_graph(ctx, 16);
    loom_program *p = compile_train(dev, st, g, 16, 1);
    char *dir = tmpdir(), path[128], bad[160];
    snprintf(path, sizeof path, "%s/m.jsonl", dir);
    snprintf(bad, sizeof bad, "%s/missing/m.jsonl", dir);
    loom_metrics *m = NULL;
    ck_assert_int_eq(loom_metrics_open(ctx, bad, dev, &m), LOOM_E_IO);
    ck_assert_msg(strstr(loom_last_error(ctx), bad), "%s", loom_last_error(ctx));
    ck_assert_ptr_null(m);
    ck_assert_int_eq(loom_metrics_open(ctx, path, dev, &m), LOOM_OK);
    ck_assert_int_eq(loom_metrics_write_plan(m, p, "train"), LOOM_OK);
    for (int s = 1; s <= 5; s++) {
        ck_assert_int_eq(loom_program_run(p), LOOM_OK);
        loom_metrics_line l;
        loom_metrics_line_init(&l);
        l.step = s;
        l.epoch = 0;
        l.loss = 1.0 / s;
        l.samples_per_s = 100.0 * s;
        ck_assert_int_eq(loom_metrics_sample(m, p, &l), LOOM_OK);
        ck_assert(l.busy_pct >= 0 && l.busy_pct <= 100);
        ck_assert(isnan(l.vendor_util_pct)); /* a CPU: absent, not 0 */
        ck_assert_int_eq(loom_metrics_write(m, &l), LOOM_OK);
    }
    ck_assert_int_eq(loom_metrics_write_ops(m, p, 5), LOOM_OK);
    ck_assert_int_eq(loom_metrics_close(m), LOOM_OK);

    loom_profile_report r;
    ck_assert_int_eq(loom_profile_get(p, &r), LOOM_OK);
    loom_plan_report pr;
    ck_assert_int_eq(loom_program_plan(p, &pr), LOOM_OK);
    char *text = slurp(path);
    int nlines = 0, steps = 0;
    char *save = NULL;
    for (char *ln = strtok_r(text, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save), nlines++) {
        cJSON *o = line_json(ln, strlen(ln));
        const char *ty = cJSON_GetObjectItem(o, "type")->valuestring;
        if (nlines == 0) {
            ck_assert_str_eq(ty, "header");
            const cJSON *d = cJSON_GetObjectItem(o, "device");
            ck_assert_str_eq(cJSON_GetObjectItem(d, "name")->valuestring, loom_device_get(dev)->name);
            ck_assert_str_eq(cJSON_GetObjectItem(d, "vendor")->valuestring, loom_device_get(dev)->vendor);
            ck_assert_str_eq(cJSON_GetObjectItem(d, "driver")->valuestring, loom_device_get(dev)->driver);
            ck_assert_str_eq(cJSON_GetObjectItem(o, "vendor_counters")->valuestring, "");
        } else if (!strcmp(ty, "step")) {
            steps++;
            ck_assert_int_eq(cJSON_GetObjectItem(o, "step")->valueint, steps);
            ck_assert_double_eq_tol(cJSON_GetObjectItem(o, "loss")->valuedouble, 1.0 / steps, 1e-12);
            double busy = cJSON_GetObjectItem(o, "busy_pct")->valuedouble;
            ck_assert(busy >= 0 && busy <= 100);
            ck_assert(cJSON_IsNull(cJSON_GetObjectItem(o, "vendor_util_pct")));
            ck_assert(cJSON_IsNull(cJSON_GetObjectItem(o, "accuracy")));
            ck_assert_double_eq(cJSON_GetObjectItem(o, "mem_bytes")->valuedouble, (double)r.mem_bytes);
            ck_assert(cJSON_GetObjectItem(o, "step_ms")->valuedouble > 0);
        } else if (!strcmp(ty, "ops")) {
            const cJSON *ops = cJSON_GetObjectItem(o, "ops"), *e;
            ck_assert_int_eq(cJSON_GetArraySize(ops), r.nnodes < 32 ? r.nnodes : 32);
            ck_assert_int_eq(cJSON_GetObjectItem(o, "runs")->valueint, 5);
            double prev = INFINITY;
            cJSON_ArrayForEach(e, ops)
            {
                double tm = cJSON_GetObjectItem(e, "total_ms")->valuedouble;
                ck_assert(tm <= prev && tm >= 0);
                prev = tm;
                ck_assert(cJSON_GetObjectItem(e, "gflops")->valuedouble >= 0);
                ck_assert_int_eq(cJSON_GetObjectItem(e, "count")->valueint, 5);
            }
        } else if (!strcmp(ty, "plan")) {
            ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "live_bytes")), pr.steps);
            ck_assert_str_eq(cJSON_GetObjectItem(o, "label")->valuestring, "train");
        } else {
            ck_assert_str_eq(ty, "end");
            ck_assert_int_eq(cJSON_GetObjectItem(o, "lines")->valueint, nlines + 1);
        }
        cJSON_Delete(o);
    }
    ck_assert_int_eq(nlines, 1 + 1 + 5 + 1 + 1);
    ck_assert_int_eq(steps, 5);
    free(text);
    remove(path);
    rmdir(dir);
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

typedef struct seen {
    int lines, bad, ended;
    int64_t steps[64];
    int nsteps;
} seen;

static void on_line(void *user, const char *line, size_t len)
{
    seen *s = user;
    s->lines++;
    cJSON *o = cJSON_ParseWithLength(line, len);
    const cJSON *ty = o ? cJSON_GetObjectItem(o, "type") : NULL;
    if (!cJSON_IsString(ty)) {
        s->bad++;
    } else if (!strcmp(ty->valuestring, "step") && s->nsteps < 64) {
        s->steps[s->nsteps++] = (int64_t)cJSON_GetObjectItem(o, "step")->valuedouble;
    } else if (!strcmp(ty->valuestring, "end")) {
        s->ended = 1;
    }
    cJSON_Delete(o);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Another process writes the stream while this one follows it: the file
 * appears late, grows line by line, and ends with a line written in two
 * halves; the follower hands over whole lines only, in order. */
START_TEST(test_metrics_follow)
{
    char *dir = tmpdir(), path[128];
    snprintf(path, sizeof path, "%s/live.jsonl", dir);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        sleep_ms(60);
        loom_ctx *ctx = NULL;
        if (loom_ctx_create(NULL, &ctx) != LOOM_OK)
            _exit(2);
        loom_metrics *m = NULL;
        if (loom_metrics_open(ctx, path, NULL, &m) != LOOM_OK)
            _exit(3);
        for (int s = 1; s <= 20; s++) {
            loom_metrics_line l;
            loom_metrics_line_init(&l);
            l.step = s;
            l.loss = 2.0 / s;
            if (loom_metrics_write(m, &l) != LOOM_OK)
                _exit(4);
            sleep_ms(3);
        }
        if (loom_metrics_close(m) != LOOM_OK)
            _exit(5);
        loom_ctx_destroy(ctx);
        int fd = open(path, O_WRONLY | O_APPEND);
        const char *a = "{\"type\":\"step\",\"time\":9.5,", *b = "\"step\":99}\n";
        if (fd < 0 || write(fd, a, strlen(a)) < 0)
            _exit(6);
        sleep_ms(80);
        if (write(fd, b, strlen(b)) < 0)
            _exit(7);
        close(fd);
        _exit(0);
    }
    dash_follow f;
    ck_assert_int_eq(dash_follow_open(&f, path), 0);
    seen s = {0};
    int polls_missing = 0;
    for (int i = 0; i < 5000 && !(s.nsteps == 21); i++) {
        int n = dash_follow_poll(&f, on_line, &s);
        ck_assert_int_ge(n, 0);
        polls_missing += !dash_follow_exists(&f);
        sleep_ms(2);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer exited %d", status);
    ck_assert_msg(polls_missing > 0, "the follower never saw the file missing");
    ck_assert_int_eq(s.bad, 0);
    ck_assert(s.ended);
    ck_assert_int_eq(s.nsteps, 21);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(s.steps[i], i + 1);
    ck_assert_int_eq(s.steps[20], 99);
    ck_assert_int_eq(s.lines, 1 + 20 + 1 + 1);
    /* Nothing new: a poll reads nothing. */
    ck_assert_int_eq(dash_follow_poll(&f, on_line, &s), 0);
    /* A new run truncates the file: the follower says so, then reads it
     * from the start. */
    FILE *w = fopen(path, "w");
    fputs("{\"type\":\"header\",\"time\":0}\n{\"type\":\"step\",\"time\":0.1,\"step\":1}\n", w);
    fclose(w);
    ck_assert_int_eq(dash_follow_poll(&f, on_line, &s), DASH_RESTART);
    seen s2 = {0};
    ck_assert_int_eq(dash_follow_poll(&f, on_line, &s2), 2);
    ck_assert_int_eq(s2.nsteps, 1);
    dash_follow_close(&f);
    remove(path);
    rmdir(dir);
}
END_TEST

START_TEST(test_model_lines)
{
    dash_model m;
    dash_model_init(&m);
    const char *lines[] = {
        "{\"type\":\"header\",\"time\":0,\"device\":{\"name\":\"GPU X\",\"vendor\":\"V\",\"driver\":\"D 1.0\"}}",
        "not json at all",
        "{\"type\":\"step\",\"time\":1,\"step\":10,\"loss\":0.5,\"busy_pct\":80,\"vendor_util_pct\":null}",
        "[1,2,3]",
        "{\"type\":\"future_kind\",\"time\":2}",
        "{\"type\":\"step\",\"time\":2,\"step\":20,\"loss\":0.25,\"busy_pct\":90}",
        "{\"type\":\"end\",\"time\":3}",
    };
    int ok = 0;
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        ok += dash_model_line(&m, lines[i], strlen(lines[i]));
    ck_assert_int_eq(ok, 5);
    ck_assert_int_eq(m.bad_lines, 2);
    ck_assert_int_eq(m.other_lines, 1);
    ck_assert_str_eq(m.device, "GPU X");
    ck_assert_str_eq(m.driver, "D 1.0");
    ck_assert_int_eq(m.s[DS_LOSS].n, 2);
    ck_assert_double_eq(dash_series_last(&m.s[DS_LOSS]), 0.25);
    ck_assert_int_eq(m.s[DS_VENDOR_UTIL].n, 0); /* null stays absent */
    ck_assert(isnan(dash_series_last(&m.s[DS_VENDOR_UTIL])));
    ck_assert_int_eq(m.last_step, 20);
    ck_assert(m.ended);
    dash_model_free(&m);
}
END_TEST

/* ---- vendor counters ---- */

START_TEST(test_vendor_cpu_absent)
{
    loom_ctx *ctx = tu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_vendor_counters c;
    ck_assert_int_eq(loom_vendor_counters_read(dev, &c), LOOM_OK);
    ck_assert_str_eq(c.source, "");
    ck_assert(!c.util_present && !c.mem_used_present && !c.mem_total_present && !c.clock_present &&
              !c.mem_clock_present && !c.temp_present && !c.power_present && !c.engine_present &&
              !c.client_mem_present);
    ck_assert(c.sample_ns > 0);
    ck_assert_double_eq(loom_vendor_engine_pct(&c, &c), -1);
    ck_assert_int_eq(loom_vendor_counters_read(NULL, &c), LOOM_E_INVALID);
    ck_assert_int_eq(loom_vendor_counters_read(dev, NULL), LOOM_E_INVALID);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

static void vendor_dir(char *buf, size_t n, const char *sub)
{
    const char *data = getenv("LOOM_TEST_DATA");
    ck_assert_ptr_nonnull(data);
    snprintf(buf, n, "%s/vendor/%s", data, sub);
}

START_TEST(test_vendor_amd_fixture)
{
    char drm[512], fa[512], fb[512];
    vendor_dir(drm, sizeof drm, "drm");
    vendor_dir(fa, sizeof fa, "fdinfo_a");
    vendor_dir(fb, sizeof fb, "fdinfo_b");
    loom_vendor_counters a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    loom_vendor_read_drm(drm, fa, 0x1002, &a);
    ck_assert_str_eq(a.source, "amdgpu sysfs card0 + fdinfo");
    ck_assert(a.util_present && a.util_pct == 37);
    ck_assert(a.mem_used_present && a.mem_used_bytes == 1073741824ull);
    ck_assert(a.mem_total_present && a.mem_total_bytes == 17163091968ull);
    ck_assert(a.clock_present && a.clock_mhz == 1200);
    ck_assert(a.mem_clock_present && a.mem_clock_mhz == 1000);
    ck_assert(a.temp_present && a.temp_c == 54.0);
    ck_assert(a.power_present && a.power_w == 87.0);
    /* one client (two fds share its id), other devices and drivers left out */
    ck_assert(a.engine_present && a.engine_busy_ns == 501000000.0);
    ck_assert(a.client_mem_present && a.client_mem_bytes == 2048u * 1024u);
    loom_vendor_read_drm(drm, fb, 0x1002, &b);
    a.sample_ns = 1e9;
    b.sample_ns = 2e9;
    ck_assert_double_eq_tol(loom_vendor_engine_pct(&a, &b), 25.0, 1e-9);
    b.sample_ns = 1.1e9; /* more busy time than wall time: clamped */
    ck_assert_double_eq(loom_vendor_engine_pct(&a, &b), 100.0);

    loom_vendor_counters i;
    memset(&i, 0, sizeof i);
    loom_vendor_read_drm(drm, fa, 0x8086, &i);
    ck_assert_str_eq(i.source, "i915 sysfs card1 + fdinfo");
    ck_assert(!i.util_present && !i.mem_used_present);
    ck_assert(i.clock_present && i.clock_mhz == 1350);
    ck_assert(i.engine_present && i.engine_busy_ns == 3001000.0);
    ck_assert(i.client_mem_present && i.client_mem_bytes == 4u << 20);

    loom_vendor_counters none;
    memset(&none, 0, sizeof none);
    loom_vendor_read_drm(drm, fa, 0x10de, &none); /* no such card, no such driver */
    ck_assert_str_eq(none.source, "");
    ck_assert(!none.util_present && !none.engine_present && !none.clock_present);
    loom_vendor_read_drm("/nonexistent/drm", "/nonexistent/fdinfo", 0x1002, &none);
    ck_assert_str_eq(none.source, "");
}
END_TEST

START_TEST(test_vendor_nvml)
{
    loom_vendor_counters c;
    memset(&c, 0, sizeof c);
    void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    int found = loom_vendor_read_nvml("", &c);
    if (!lib) {
        ck_assert_int_eq(found, 0);
        ck_assert(!c.util_present && !c.mem_used_present && !c.temp_present);
        ck_assert_str_eq(c.source, "");
    } else {
        /* A machine with NVML: one GPU matches without a UUID. */
        if (found) {
            ck_assert_str_eq(c.source, "nvml");
            ck_assert(!c.util_present || (c.util_pct >= 0 && c.util_pct <= 100));
            ck_assert(!c.mem_total_present || c.mem_total_bytes > 0);
        }
        dlclose(lib);
    }
}
END_TEST

/* ---- names: loom_graph_scope ---- */

START_TEST(test_graph_scope_names)
{
    loom_ctx *ctx = tu_ctx();
    loom_graph *g = NULL;
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t xs[2] = {4, 8}, ws[2] = {8, 8};
    loom_tensor x = loom_input(g, "x", LOOM_F32, 2, xs);
    ck_assert_int_eq(loom_graph_scope(g, "dense1"), LOOM_OK);
    loom_tensor w = loom_param(g, "w", LOOM_F32, 2, ws, 1);
    loom_tensor a = loom_matmul(g, x, w, 0, 0);
    loom_tensor b = loom_add(g, a, x);
    loom_tensor c = loom_matmul(g, b, w, 0, 0);
    ck_assert_str_eq(loom_tensor_name(g, w), "w"); /* given names stay */
    ck_assert_str_eq(loom_tensor_name(g, a), "dense1/matmul");
    ck_assert_str_eq(loom_tensor_name(g, b), "dense1/add");
    char want[64];
    snprintf(want, sizeof want, "dense1/matmul_%d", c.id);
    ck_assert_str_eq(loom_tensor_name(g, c), want);
    ck_assert_int_eq(loom_graph_find(g, "dense1/matmul").id, a.id);
    /* a new scope starts its own names; none goes back to the old ones */
    ck_assert_int_eq(loom_graph_scope(g, "dense2"), LOOM_OK);
    loom_tensor d = loom_matmul(g, c, w, 0, 0);
    ck_assert_str_eq(loom_tensor_name(g, d), "dense2/matmul");
    char big[LOOM_SCOPE_MAX + 1];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    ck_assert_int_eq(loom_graph_scope(g, big), LOOM_E_INVALID);
    ck_assert_msg(strstr(loom_last_error(ctx), "loom_graph_scope") && strstr(loom_last_error(ctx), "at most 63"),
                  "%s", loom_last_error(ctx));
    ck_assert_str_eq(loom_tensor_name(g, loom_relu(g, d)), "dense2/relu"); /* the scope stays */
    ck_assert_int_eq(loom_graph_scope(g, NULL), LOOM_OK);
    loom_tensor e = loom_relu(g, d);
    snprintf(want, sizeof want, "relu_%d", e.id);
    ck_assert_str_eq(loom_tensor_name(g, e), want);
    ck_assert_int_eq(loom_graph_status(g), LOOM_OK);
    ck_assert_int_eq(loom_graph_scope(NULL, "x"), LOOM_E_INVALID);
    loom_graph_destroy(g);
    loom_ctx_destroy(ctx);
}
END_TEST

/* A Sequential model's trace names a layer's ops after the layer, as its
 * updates are ("dense0/kernel/update"), and the dashboard shows them. */
START_TEST(test_sequential_trace_names)
{
    loom_ctx *ctx = tu_ctx();
    loom_dataset *full = NULL, *tr = NULL;
    loom_status s = loom_dataset_load_mnist(ctx, LOOM_DEFAULT_DATA_DIR, 0, &full);
    ck_assert_msg(s == LOOM_OK, "%s", loom_last_error(ctx));
    ck_assert_int_eq(loom_dataset_subset(full, 0, 128, &tr), LOOM_OK);
    ck_assert_int_eq(loom_dataset_scale(tr, LOOM_SCALE_UNIT, NULL, NULL), LOOM_OK);
    char specs[8][32];
    int nd = tu_devices(ctx, specs, 8);
    for (int d = 0; d < nd; d++) {
        loom_device *dev = tu_open(ctx, specs[d]);
        loom_sequential *m = NULL;
        ck_assert_int_eq(loom_sequential_create(ctx, 784, &m), LOOM_OK);
        ck_assert_int_eq(loom_sequential_add_dense(m, 16, LOOM_ACT_RELU, LOOM_INIT_GLOROT_UNIFORM), LOOM_OK);
        ck_assert_int_eq(loom_sequential_add_dense(m, 10, LOOM_ACT_SOFTMAX, LOOM_INIT_GLOROT_UNIFORM), LOOM_OK);
        loom_model_config mc = loom_model_config_default();
        mc.batch = 32;
        mc.profile = 1;
        ck_assert_int_eq(loom_sequential_compile(m, dev, &mc), LOOM_OK);
        loom_trace *t = NULL;
        ck_assert_int_eq(loom_trace_create(ctx, &t), LOOM_OK);
        loom_fit_config fc = loom_fit_config_default();
        fc.epochs = 1;
        fc.trace = t;
        fc.trace_steps = 2;
        loom_fit_stats st;
        s = loom_sequential_fit(m, tr, &fc, &st);
        ck_assert_msg(s == LOOM_OK, "%s: %s", specs[d], loom_last_error(ctx));
        char *dir = tmpdir(), path[128];
        snprintf(path, sizeof path, "%s/t.json", dir);
        ck_assert_int_eq(loom_trace_write(t, path), LOOM_OK);
        loom_trace_destroy(t);
        char *text = slurp(path);
        cJSON *root = cJSON_Parse(text);
        ck_assert_ptr_nonnull(root);
        static const char *want[] = {"dense0/matmul", "dense0/add", "dense0/relu", "dense1/matmul",
                                     "dense1/add",    "dense0/kernel/update", "dense1/softmax"};
        int seen[7] = {0};
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(root, "traceEvents"))
        {
            const cJSON *cat = cJSON_GetObjectItem(e, "cat");
            if (!cJSON_IsString(cat) || strcmp(cat->valuestring, "node"))
                continue;
            for (int k = 0; k < 7; k++)
                seen[k] += !strcmp(cJSON_GetObjectItem(e, "name")->valuestring, want[k]);
        }
        /* a backend that fuses bias and activation into the matmul runs
         * them inside "denseN/matmul" */
        for (int k = 0; k < 6; k++) {
            int fusable = strstr(want[k], "/add") || strstr(want[k], "/relu");
            ck_assert_msg(seen[k] == 2 || (fusable && seen[k] == 0),
                          "%s: node slice %s seen %d times, want one per traced step", specs[d], want[k], seen[k]);
        }
        /* the loss and the prediction come from the logits: a training step
         * has no use for the probabilities */
        ck_assert_msg(seen[6] == 0, "%s: a training step ran %s", specs[d], want[6]);
        dash_model dm;
        dash_model_init(&dm);
        char err[256];
        ck_assert_msg(dash_load_trace(&dm, path, err, sizeof err) == 0, "%s", err);
        int found = 0;
        for (int i = 0; i < dm.nops; i++)
            found += !strcmp(dm.ops[i].name, "dense1/matmul") && !strcmp(dm.ops[i].op, "matmul");
        ck_assert_int_eq(found, 1);
        dash_model_free(&dm);
        cJSON_Delete(root);
        free(text);
        remove(path);
        rmdir(dir);
        loom_sequential_destroy(m);
        loom_device_close(dev);
    }
    loom_dataset_destroy(tr);
    loom_dataset_destroy(full);
    loom_ctx_destroy(ctx);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("profile");
    TCase *t = tcase_create("profile");
    tcase_add_test(t, test_profile_every_device);
    tcase_add_test(t, test_profile_train_every_device);
    tcase_add_test(t, test_profile_off_and_reset);
    suite_add_tcase(s, t);
    t = tcase_create("exports");
    tcase_add_test(t, test_trace);
    tcase_add_test(t, test_metrics_file);
    tcase_add_test(t, test_metrics_follow);
    tcase_add_test(t, test_model_lines);
    suite_add_tcase(s, t);
    t = tcase_create("names");
    tcase_add_test(t, test_graph_scope_names);
    tcase_add_test(t, test_sequential_trace_names);
    suite_add_tcase(s, t);
    t = tcase_create("vendor");
    tcase_add_test(t, test_vendor_cpu_absent);
    tcase_add_test(t, test_vendor_amd_fixture);
    tcase_add_test(t, test_vendor_nvml);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
