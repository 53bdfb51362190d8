/*
 * Profiling a training run: an MLP on Fashion-MNIST, with a metrics stream
 * that loom-dash follows and a Chrome trace for Perfetto.
 *
 *   profile_mlp [--device cpu] [--steps 600] [--batch 64]
 *               [--metrics m.jsonl] [--trace t.json [--trace-steps N]] [--bench N]
 *
 * --bench N times N steps with profiling off, then on, alternating blocks,
 * and prints the mean step time of each (the cost of the profiler).
 */
#include "loom.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#define CLASSES 10
#define PIXELS 784

static const char *opt(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name))
            return argv[i + 1];
    return def;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A gzipped IDX file: the big-endian header, then bytes. */
static unsigned char *read_idx(const char *path, int want_dims, int *count)
{
    gzFile f = gzopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char h[16];
    int hlen = 4 + 4 * want_dims;
    unsigned char *data = NULL;
    if (gzread(f, h, (unsigned)hlen) == hlen && h[2] == 0x08 && h[3] == want_dims) {
        long n = 1;
        for (int d = 0; d < want_dims; d++)
            n *= (long)h[4 + 4 * d] << 24 | (long)h[5 + 4 * d] << 16 | (long)h[6 + 4 * d] << 8 | h[7 + 4 * d];
        *count = (int)h[4] << 24 | h[5] << 16 | h[6] << 8 | h[7];
        data = malloc((size_t)n);
        if (data && gzread(f, data, (unsigned)n) != (int)n) {
            free(data);
            data = NULL;
        }
    }
    gzclose(f);
    return data;
}

typedef struct dataset {
    unsigned char *images, *labels;
    int n;
} dataset;

static int load(const char *dir, const char *split, dataset *d)
{
    char p[512];
    int ni = 0, nl = 0;
    snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte.gz", dir, split);
    d->images = read_idx(p, 3, &ni);
    snprintf(p, sizeof p, "%s/%s-labels-idx1-ubyte.gz", dir, split);
    d->labels = read_idx(p, 1, &nl);
    d->n = ni < nl ? ni : nl;
    return d->images && d->labels && d->n > 0;
}

static void batch(const dataset *d, int first, int b, float *x, int32_t *y)
{
    for (int i = 0; i < b; i++) {
        int k = (first + i) % d->n;
        for (int j = 0; j < PIXELS; j++)
            x[(size_t)i * PIXELS + j] = d->images[(size_t)k * PIXELS + j] / 255.0f;
        y[i] = d->labels[k];
    }
}

/* x -> 128 relu -> 64 relu -> 10 logits; params dense{0,1,2}/{kernel,bias}. */
static loom_tensor mlp(loom_graph *g, int64_t b)
{
    static const int64_t widths[] = {PIXELS, 128, 64, CLASSES};
    int64_t xs[2] = {b, PIXELS};
    loom_tensor h = loom_input(g, "x", LOOM_F32, 2, xs);
    for (int l = 0; l < 3; l++) {
        char kn[32], bn[32], scope[16];
        snprintf(kn, sizeof kn, "dense%d/kernel", l);
        snprintf(bn, sizeof bn, "dense%d/bias", l);
        snprintf(scope, sizeof scope, "dense%d", l);
        loom_graph_scope(g, scope); /* the profile names the layer's ops "dense0/matmul", ... */
        int64_t ks[2] = {widths[l], widths[l + 1]}, bs[1] = {widths[l + 1]};
        h = loom_add(g, loom_matmul(g, h, loom_param(g, kn, LOOM_F32, 2, ks, 1), 0, 0),
                     loom_param(g, bn, LOOM_F32, 1, bs, 1));
        if (l < 2)
            h = loom_relu(g, h);
    }
    loom_graph_scope(g, NULL);
    return h;
}

static loom_status init_params(loom_state *st)
{
    static const int64_t widths[] = {PIXELS, 128, 64, CLASSES};
    uint64_t r = 42;
    for (int l = 0; l < 3; l++) {
        int64_t in = widths[l], out = widths[l + 1];
        float *w = malloc((size_t)(in * out) * sizeof *w), *bias = calloc((size_t)out, sizeof *bias);
        if (!w || !bias) {
            free(w);
            free(bias);
            return LOOM_E_OOM;
        }
        float lim = sqrtf(6.0f / (float)(in + out));
        for (int64_t i = 0; i < in * out; i++) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            w[i] = ((float)(r >> 40) / 16777216.0f * 2 - 1) * lim;
        }
        char kn[32], bn[32];
        snprintf(kn, sizeof kn, "dense%d/kernel", l);
        snprintf(bn, sizeof bn, "dense%d/bias", l);
        int64_t ks[2] = {in, out}, bs[1] = {out};
        loom_status s = loom_state_write(st, kn, LOOM_F32, 2, ks, w);
        if (s == LOOM_OK)
            s = loom_state_write(st, bn, LOOM_F32, 1, bs, bias);
        free(w);
        free(bias);
        if (s != LOOM_OK)
            return s;
    }
    return LOOM_OK;
}

typedef struct run {
    loom_ctx *ctx;
    loom_device *dev;
    loom_state *st;
    loom_graph *gt, *ge;
    loom_program *train, *train_off, *eval;
    int b;
} run;

#define CHECK(call)                                                                              \
    do {                                                                                         \
        loom_status s_ = (call);                                                                 \
        if (s_ != LOOM_OK) {                                                                     \
            fprintf(stderr, "profile_mlp: %s: %s\n", #call, loom_last_error(r->ctx));            \
            return 1;                                                                            \
        }                                                                                        \
    } while (0)

static int build(run *r, int bench)
{
    int64_t ls[1] = {r->b};
    CHECK(loom_graph_create(r->ctx, &r->gt));
    loom_tensor logits = mlp(r->gt, r->b);
    loom_tensor y = loom_input(r->gt, "y", LOOM_I32, 1, ls);
    loom_tensor loss = loom_sparse_cross_entropy(r->gt, logits, y);
    loom_output(r->gt, loss, "loss");
    loom_output(r->gt, logits, "logits");
    CHECK(loom_backward(r->gt, loss, NULL, 0));
    loom_optimizer o = loom_optimizer_default(LOOM_OPT_ADAM);
    CHECK(loom_optimize(r->gt, &o));
    loom_compile_opts on = {.profile = 1}, off = {.profile = 0};
    CHECK(loom_compile(r->gt, r->dev, r->st, &on, &r->train));
    if (bench)
        CHECK(loom_compile(r->gt, r->dev, r->st, &off, &r->train_off));
    CHECK(loom_graph_create(r->ctx, &r->ge));
    loom_output(r->ge, mlp(r->ge, r->b), "logits");
    CHECK(loom_compile(r->ge, r->dev, r->st, &on, &r->eval));
    return 0;
}

static int correct(const float *logits, const int32_t *y, int b)
{
    int c = 0;
    for (int i = 0; i < b; i++) {
        int best = 0;
        for (int k = 1; k < CLASSES; k++)
            if (logits[i * CLASSES + k] > logits[i * CLASSES + best])
                best = k;
        c += best == y[i];
    }
    return c;
}

static int step(run *r, loom_program *p, const dataset *d, int first, float *x, int32_t *y, float *loss,
                float *logits)
{
    batch(d, first, r->b, x, y);
    CHECK(loom_program_set_input(p, "x", x, (size_t)r->b * PIXELS * sizeof *x));
    CHECK(loom_program_set_input(p, "y", y, (size_t)r->b * sizeof *y));
    CHECK(loom_program_run(p));
    CHECK(loom_program_read(p, "loss", loss, sizeof *loss));
    CHECK(loom_program_read(p, "logits", logits, (size_t)r->b * CLASSES * sizeof *logits));
    return 0;
}

static int bench(run *r, const dataset *d, int n, float *x, int32_t *y, float *logits)
{
    double t[2] = {0, 0};
    int blocks = 6, per = n / blocks > 0 ? n / blocks : 1;
    float loss;
    for (int k = 0; k < 20; k++) /* warm caches */
        if (step(r, r->train_off, d, k * r->b, x, y, &loss, logits))
            return 1;
    for (int blk = 0; blk < blocks * 2; blk++) {
        loom_program *p = blk % 2 ? r->train : r->train_off;
        double t0 = now_ms();
        for (int k = 0; k < per; k++)
            if (step(r, p, d, (blk * per + k) * r->b, x, y, &loss, logits))
                return 1;
        t[blk % 2] += now_ms() - t0;
    }
    loom_profile_report rep;
    CHECK(loom_profile_get(r->train, &rep));
    printf("bench %s batch %d: step %.3f ms with profiling off, %.3f ms on (%d steps each); "
           "device busy %.1f%%, %.2f GFLOP/s\n",
           loom_device_get(r->dev)->spec, r->b, t[0] / (blocks * per), t[1] / (blocks * per), blocks * per,
           rep.busy_pct, rep.gflops);
    return 0;
}

int main(int argc, char **argv)
{
    run rr = {0}, *r = &rr;
    const char *spec = opt(argc, argv, "--device", "cpu");
    const char *dir = opt(argc, argv, "--data", "/usr/share/datasets/fashion-mnist");
    const char *mpath = opt(argc, argv, "--metrics", NULL), *tpath = opt(argc, argv, "--trace", NULL);
    int steps = atoi(opt(argc, argv, "--steps", "600"));
    int nbench = atoi(opt(argc, argv, "--bench", "0"));
    int trace_steps = atoi(opt(argc, argv, "--trace-steps", "1000000000"));
    r->b = atoi(opt(argc, argv, "--batch", "64"));
    dataset train = {0}, test = {0};
    if (r->b < 1 || !load(dir, "train", &train) || !load(dir, "t10k", &test)) {
        fprintf(stderr, "profile_mlp: cannot read Fashion-MNIST under %s\n", dir);
        return 1;
    }
    CHECK(loom_ctx_create(NULL, &r->ctx));
    CHECK(loom_device_open(r->ctx, spec, &r->dev));
    CHECK(loom_state_create(r->dev, &r->st));
    CHECK(init_params(r->st));
    if (build(r, nbench > 0))
        return 1;
    float *x = malloc((size_t)r->b * PIXELS * sizeof *x), *logits = malloc((size_t)r->b * CLASSES * sizeof *logits);
    int32_t *y = malloc((size_t)r->b * sizeof *y);
    if (!x || !y || !logits)
        return 1;
    if (nbench > 0)
        return bench(r, &train, nbench, x, y, logits);

    loom_metrics *m = NULL;
    loom_trace *tr = NULL;
    if (mpath) {
        CHECK(loom_metrics_open(r->ctx, mpath, r->dev, &m));
        CHECK(loom_metrics_write_plan(m, r->train, "train"));
        CHECK(loom_metrics_write_plan(m, r->eval, "eval"));
    }
    if (tpath)
        CHECK(loom_trace_create(r->ctx, &tr));
    int epoch_steps = train.n / r->b, hits = 0, seen = 0;
    double t_last = now_ms(), loss_sum = 0;
    for (int s = 1; s <= steps; s++) {
        float loss;
        if (step(r, r->train, &train, (s - 1) * r->b, x, y, &loss, logits))
            return 1;
        hits += correct(logits, y, r->b);
        seen += r->b;
        loss_sum += loss;
        if (tr && s <= trace_steps) {
            CHECK(loom_trace_add_run(tr, r->train, s, "train"));
            CHECK(loom_trace_counter(tr, r->dev, "loss", loss));
        }
        int report = s % 10 == 0 || s == steps;
        if (m && report) {
            double t = now_ms();
            loom_metrics_line l;
            loom_metrics_line_init(&l);
            l.step = s;
            l.epoch = (s - 1) / epoch_steps;
            l.loss = loss_sum / 10;
            l.accuracy = (double)hits / seen;
            l.lr = 0.001;
            l.samples_per_s = seen / ((t - t_last) / 1e3);
            if (s % 100 == 0 || s == steps) {
                /* a quick validation pass over a few test batches */
                int vh = 0, vn = 0;
                for (int k = 0; k < 4; k++) {
                    batch(&test, k * r->b, r->b, x, y);
                    CHECK(loom_program_set_input(r->eval, "x", x, (size_t)r->b * PIXELS * sizeof *x));
                    CHECK(loom_program_run(r->eval));
                    CHECK(loom_program_read(r->eval, "logits", logits, (size_t)r->b * CLASSES * sizeof *logits));
                    vh += correct(logits, y, r->b);
                    vn += r->b;
                    if (tr && s <= trace_steps)
                        CHECK(loom_trace_add_run(tr, r->eval, s, "eval"));
                }
                l.val_accuracy = (double)vh / vn;
            }
            CHECK(loom_metrics_sample(m, r->train, &l));
            CHECK(loom_metrics_write(m, &l));
            if (s % 50 == 0 || s == steps)
                CHECK(loom_metrics_write_ops(m, r->train, s));
            t_last = now_ms();
            hits = seen = 0;
            loss_sum = 0;
        }
    }
    loom_profile_report rep;
    CHECK(loom_profile_get(r->train, &rep));
    printf("%d steps on %s: %.3f ms/step, busy %.1f%%, %.2f GFLOP/s, memory %llu bytes\n", steps,
           loom_device_get(r->dev)->spec, rep.wall_mean_ns / 1e6, rep.busy_pct, rep.gflops,
           (unsigned long long)rep.mem_bytes);
    if (m)
        CHECK(loom_metrics_close(m));
    if (tr) {
        CHECK(loom_trace_write(tr, tpath));
        loom_trace_destroy(tr);
    }
    loom_program_destroy(r->train);
    loom_program_destroy(r->train_off);
    loom_program_destroy(r->eval);
    loom_graph_destroy(r->gt);
    loom_graph_destroy(r->ge);
    loom_state_destroy(r->st);
    loom_device_close(r->dev);
    loom_ctx_destroy(r->ctx);
    free(x);
    free(y);
    free(logits);
    free(train.images);
    free(train.labels);
    free(test.images);
    free(test.labels);
    return 0;
}
