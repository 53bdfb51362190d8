/* The sequence layers of the Sequential model and the models made of
 * them: each layer's gradients (LSTM and GRU through time, attention and
 * the Transformer blocks) against finite differences, their JSON fields
 * and shapes checked, a token outside the vocabulary refused, a language
 * model's file round trip, and the three examples' models training alike
 * on every device over their first 50 steps. */
#include "testutil.h"
#include "nn/seq_layers.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- one layer's gradients against finite differences ---------------------------- */

typedef struct layer_case {
    const char *json;
    int64_t batch;
    nn_shape in;
} layer_case;

static const layer_case layer_cases[] = {
    {"{\"type\": \"lstm\", \"units\": 5}", 2, {2, {4, 3, 0}}},
    {"{\"type\": \"lstm\", \"units\": 3, \"return_sequences\": true}", 2, {2, {3, 4, 0}}},
    {"{\"type\": \"gru\", \"units\": 4, \"return_sequences\": true}", 2, {2, {4, 3, 0}}},
    {"{\"type\": \"gru\", \"units\": 5}", 1, {2, {5, 2, 0}}},
    {"{\"type\": \"attention\", \"heads\": 2, \"causal\": true}", 2, {2, {5, 8, 0}}},
    {"{\"type\": \"transformer_encoder\", \"heads\": 2, \"ffn\": 12}", 2, {2, {3, 8, 0}}},
    {"{\"type\": \"transformer_decoder\", \"heads\": 4, \"kv_heads\": 2, \"ffn\": 10, \"activation\": \"swiglu\", "
     "\"norm\": \"rms\", \"rope\": true}", 2, {2, {6, 8, 0}}},
    {"{\"type\": \"position\"}", 2, {2, {3, 4, 0}}},
    {"{\"type\": \"layer_norm\"}", 3, {2, {2, 6, 0}}},
    {"{\"type\": \"pool\", \"mode\": \"last\"}", 2, {2, {3, 4, 0}}},
    {"{\"type\": \"patches\", \"size\": 2, \"rows\": 4, \"cols\": 6}", 2, {1, {24, 0, 0}}},
};

static size_t numel(int nd, const int64_t *s)
{
    size_t n = 1;
    for (int i = 0; i < nd; i++)
        n *= (size_t)s[i];
    return n;
}

/* Builds the layer over x; loss = sum(y * w). With grads, outputs the
 * gradient of every weight ("g<k>") and of x ("gx"). */
static loom_program *layer_prog(loom_ctx *ctx, loom_device *dev, loom_state *st, loom_graph **gp,
                                const nn_seq_layer *l, const layer_case *c, int grads)
{
    ck_assert_int_eq(loom_graph_create(ctx, gp), LOOM_OK);
    loom_graph *g = *gp;
    int64_t xs[4] = {c->batch};
    for (int i = 0; i < c->in.ndim; i++)
        xs[1 + i] = c->in.d[i];
    loom_tensor x = loom_input(g, "x", LOOM_F32, 1 + c->in.ndim, xs);
    loom_tensor y = loom_seq_build(g, l, "L", &c->in, x, c->batch, 0, LOOM_F32, 1);
    ck_assert_msg(y.id, "%s: %s", c->json, loom_graph_error(g));
    int yn = loom_tensor_ndim(g, y);
    int64_t ys[4];
    for (int i = 0; i < yn; i++)
        ys[i] = loom_tensor_dim(g, y, i);
    size_t ny = numel(yn, ys);
    float *w = malloc(ny * sizeof *w);
    tu_fill(w, ny, 5, -1, 1);
    loom_tensor loss = loom_sum_all(g, loom_mul(g, y, loom_constant(g, "w", LOOM_F32, yn, ys, w)));
    free(w);
    loom_output(g, loss, "loss");
    if (grads) {
        loom_tensor wrt[1] = {x};
        ck_assert_int_eq(loom_backward(g, loss, wrt, 1), LOOM_OK);
        if (strstr(c->json, "patches") == NULL)
            loom_output(g, loom_grad(g, x), "gx");
        for (int k = 0; k < loom_seq_nparams(l); k++) {
            char name[128], gn[16];
            int nd;
            int64_t s[4];
            nn_init_kind init;
            loom_seq_param(l, "L", &c->in, k, name, sizeof name, &nd, s, &init);
            loom_tensor pk = loom_graph_find(g, name);
            ck_assert_msg(pk.id, "%s: weight %s is not in the graph", c->json, name);
            snprintf(gn, sizeof gn, "g%d", k);
            ck_assert_msg(loom_grad(g, pk).id, "%s: weight %s has no gradient", c->json, name);
            loom_output(g, loom_grad(g, pk), gn);
        }
    }
    loom_program *p = NULL;
    ck_assert_msg(loom_compile(g, dev, st, NULL, &p) == LOOM_OK, "%s: %s", c->json, loom_last_error(ctx));
    return p;
}

static double loss_of(loom_program *p, const float *x, size_t nx)
{
    ck_assert_int_eq(loom_program_set_input(p, "x", x, nx * 4), LOOM_OK);
    ck_assert_int_eq(loom_program_run(p), LOOM_OK);
    float l;
    ck_assert_int_eq(loom_program_read(p, "loss", &l, 4), LOOM_OK);
    return l;
}

/* central differences of a float32 loss: the step and the tolerance of
 * test_grad.c */
static void check_fd(const char *what, double num, double an, double lp, float eps)
{
    double tol = 2e-2 * (1 + fabs(num)) + 1e-6 * fabs(lp) / eps;
    ck_assert_msg(fabs(num - an) <= tol, "%s: analytic %g, numeric %g", what, an, num);
}

START_TEST(layer_gradients)
{
    const layer_case *c = &layer_cases[_i];
    loom_ctx *ctx = tu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_state *st;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    cJSON *o = cJSON_Parse(c->json);
    nn_seq_layer l;
    ck_assert_int_eq(loom_seq_parse(ctx, o, 0, "test", &l), LOOM_OK);
    cJSON_Delete(o);
    /* every weight random (not its initialization: biases zero hide terms) */
    for (int k = 0; k < loom_seq_nparams(&l); k++) {
        char name[128];
        int nd;
        int64_t s[4];
        nn_init_kind init;
        loom_seq_param(&l, "L", &c->in, k, name, sizeof name, &nd, s, &init);
        size_t n = numel(nd, s);
        float *v = malloc(n * sizeof *v);
        tu_fill(v, n, 40u + (uint32_t)k, -0.6f, 0.6f);
        ck_assert_int_eq(loom_state_write(st, name, LOOM_F32, nd, s, v), LOOM_OK);
        free(v);
    }
    loom_graph *g1, *g2;
    loom_program *lp = layer_prog(ctx, dev, st, &g1, &l, c, 0), *gp = layer_prog(ctx, dev, st, &g2, &l, c, 1);
    size_t nx = (size_t)c->batch * numel(c->in.ndim, c->in.d);
    float *x = malloc(nx * sizeof *x);
    tu_fill(x, nx, 3, -1, 1);
    loss_of(gp, x, nx);
    const float eps = 1e-2f;
    /* the input's gradient, at a few places */
    if (!strstr(c->json, "patches")) {
        float *gx = malloc(nx * sizeof *gx);
        ck_assert_int_eq(loom_program_read(gp, "gx", gx, nx * 4), LOOM_OK);
        for (size_t i = 0; i < nx; i += nx / 7 + 1) {
            float x0 = x[i];
            x[i] = x0 + eps;
            double lplus = loss_of(lp, x, nx);
            x[i] = x0 - eps;
            double lminus = loss_of(lp, x, nx);
            x[i] = x0;
            char what[200];
            snprintf(what, sizeof what, "%s: d loss / d x[%zu]", c->json, i);
            check_fd(what, (lplus - lminus) / (2 * eps), gx[i], lplus, eps);
        }
        free(gx);
    }
    /* each weight's, at a few places */
    for (int k = 0; k < loom_seq_nparams(&l); k++) {
        char name[128], gn[16];
        int nd;
        int64_t s[4];
        nn_init_kind init;
        loom_seq_param(&l, "L", &c->in, k, name, sizeof name, &nd, s, &init);
        size_t n = numel(nd, s);
        float *v = malloc(n * 4), *an = malloc(n * 4);
        snprintf(gn, sizeof gn, "g%d", k);
        ck_assert_int_eq(loom_program_read(gp, gn, an, n * 4), LOOM_OK);
        ck_assert_int_eq(loom_state_read(st, name, v, n * 4), LOOM_OK);
        for (size_t i = 0; i < n; i += n / 3 + 1) {
            float v0 = v[i];
            v[i] = v0 + eps;
            ck_assert_int_eq(loom_state_write(st, name, LOOM_F32, nd, s, v), LOOM_OK);
            double lplus = loss_of(lp, x, nx);
            v[i] = v0 - eps;
            ck_assert_int_eq(loom_state_write(st, name, LOOM_F32, nd, s, v), LOOM_OK);
            double lminus = loss_of(lp, x, nx);
            v[i] = v0;
            ck_assert_int_eq(loom_state_write(st, name, LOOM_F32, nd, s, v), LOOM_OK);
            char what[256];
            snprintf(what, sizeof what, "%s: d loss / d %s[%zu]", c->json, name, i);
            check_fd(what, (lplus - lminus) / (2 * eps), an[i], lplus, eps);
        }
        free(v);
        free(an);
    }
    free(x);
    loom_program_destroy(lp);
    loom_program_destroy(gp);
    loom_graph_destroy(g1);
    loom_graph_destroy(g2);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- descriptions -------------------------------------------------------------------- */

/* Every kind's fields survive describe and parse, and a file's errors
 * name the layer and the field. */
START_TEST(descriptions)
{
    loom_ctx *ctx = tu_ctx();
    loom_sequential *m;
    ck_assert_int_eq(loom_sequential_create(ctx, 12, &m), LOOM_OK);
    const char *layers[] = {
        "{\"type\": \"embedding\", \"vocab\": 3, \"dim\": 8, \"tokens\": [97, 98, 99]}",
        "{\"type\": \"position\"}",
        "{\"type\": \"transformer_decoder\", \"heads\": 4, \"kv_heads\": 2, \"ffn\": 16, \"activation\": \"swiglu\", "
        "\"norm\": \"rms\", \"rope\": true, \"dropout\": 0.1}",
        "{\"type\": \"transformer_encoder\", \"heads\": 2, \"ffn\": 16, \"activation\": \"relu\"}",
        "{\"type\": \"attention\", \"heads\": 2, \"causal\": true}",
        "{\"type\": \"rms_norm\", \"eps\": 0.001}",
        "{\"type\": \"gru\", \"units\": 6, \"return_sequences\": true}",
        "{\"type\": \"lstm\", \"units\": 6, \"return_sequences\": true}",
        "{\"type\": \"reshape\", \"shape\": [12, 3, 2]}",
        "{\"type\": \"reshape\", \"shape\": [12, 6]}",
        "{\"type\": \"pool\", \"mode\": \"first\"}",
        "{\"type\": \"dense\", \"units\": 3}",
    };
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++)
        ck_assert_msg(loom_sequential_add_json(m, layers[i]) == LOOM_OK, "%s: %s", layers[i], loom_last_error(ctx));
    char *d1 = strdup(loom_sequential_describe(m));
    loom_sequential *m2;
    ck_assert_int_eq(loom_sequential_create(ctx, 12, &m2), LOOM_OK);
    cJSON *root = cJSON_Parse(d1), *l;
    cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(root, "layers"))
    {
        char *t = cJSON_PrintUnformatted(l);
        ck_assert_msg(loom_sequential_add_json(m2, t) == LOOM_OK, "%s: %s", t, loom_last_error(ctx));
        cJSON_free(t);
    }
    cJSON_Delete(root);
    ck_assert_str_eq(d1, loom_sequential_describe(m2));
    ck_assert_ptr_nonnull(strstr(d1, "\"tokens\":[97,98,99]"));
    ck_assert_int_eq(loom_sequential_outputs(m), 3);
    free(d1);
    loom_sequential_destroy(m2);

    /* refused: what and where */
    static const struct {
        const char *json;
        loom_status s;
        const char *msg;
    } bad[] = {
        {"{\"type\": \"lstm\", \"units\": 4, \"cell\": 3}", LOOM_E_FORMAT, "unknown field \"cell\""},
        {"{\"type\": \"transformer_encoder\", \"heads\": 4}", LOOM_E_FORMAT, "\"ffn\" is missing"},
        {"{\"type\": \"transformer_encoder\", \"heads\": 5, \"ffn\": 8}", LOOM_E_SHAPE, "do not fit"},
        {"{\"type\": \"attention\", \"heads\": 0}", LOOM_E_FORMAT, "\"heads\" is not an integer in [1, 4096]"},
        {"{\"type\": \"pool\", \"mode\": \"max\"}", LOOM_E_FORMAT, "\"mode\" is not one of"},
        {"{\"type\": \"embedding\", \"vocab\": 3, \"dim\": 2, \"tokens\": [1, 2]}", LOOM_E_FORMAT, "\"tokens\""},
        {"{\"type\": \"reshape\", \"shape\": [5]}", LOOM_E_SHAPE, "cannot become"},
        {"{\"type\": \"patches\", \"size\": 5, \"rows\": 4, \"cols\": 3}", LOOM_E_SHAPE, "tile"},
        {"{\"type\": \"lstm\", \"units\": 4, \"return_sequences\": 1}", LOOM_E_FORMAT, "not true or false"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        loom_sequential *b;
        ck_assert_int_eq(loom_sequential_create(ctx, 12, &b), LOOM_OK);
        if (strstr(bad[i].json, "transformer") || strstr(bad[i].json, "attention") || strstr(bad[i].json, "pool") ||
            strstr(bad[i].json, "lstm"))
            ck_assert_int_eq(loom_sequential_add_json(b, "{\"type\": \"reshape\", \"shape\": [3, 4]}"), LOOM_OK);
        loom_status s = loom_sequential_add_json(b, bad[i].json);
        ck_assert_msg(s == bad[i].s && strstr(loom_last_error(ctx), bad[i].msg), "%s: %s (%s)", bad[i].json,
                      loom_status_str(s), loom_last_error(ctx));
        loom_sequential_destroy(b);
    }
    /* a wrapped message keeps what it wraps (loom_fail formats through a
     * copy: its argument was the buffer it wrote into) */
    loom_sequential *b;
    ck_assert_int_eq(loom_sequential_create(ctx, 12, &b), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_json(b, "{\"type\": \"reshape\", \"shape\": [3, 4]}"), LOOM_OK);
    ck_assert_int_eq(loom_sequential_add_json(b, "{\"type\": \"transformer_encoder\", \"heads\": 5, \"ffn\": 8}"),
                     LOOM_E_SHAPE);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "loom_sequential_add_json: loom.architecture layer 1: layer 1 "
                                                       "(transformer_encoder) takes samples of [3,4]: 4 features in 5 "
                                                       "heads"));
    loom_sequential_destroy(b);
    loom_sequential_destroy(m);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- a language model -------------------------------------------------------------------- */

/* A tiny causal model over 6 tokens, windows of 8. */
static loom_sequential *tiny_lm(loom_ctx *ctx, loom_device *dev, int64_t batch)
{
    loom_sequential *m;
    ck_assert_int_eq(loom_sequential_create(ctx, 8, &m), LOOM_OK);
    const char *layers[] = {
        "{\"type\": \"embedding\", \"vocab\": 6, \"dim\": 16, \"tokens\": [10, 32, 97, 98, 99, 100]}",
        "{\"type\": \"position\"}",
        "{\"type\": \"transformer_decoder\", \"heads\": 2, \"ffn\": 32}",
        "{\"type\": \"layer_norm\"}",
        "{\"type\": \"dense\", \"units\": 6}",
    };
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++)
        ck_assert_msg(loom_sequential_add_json(m, layers[i]) == LOOM_OK, "%s", loom_last_error(ctx));
    loom_model_config c = loom_model_config_default();
    c.batch = batch;
    c.optimizer.lr = 0.01f;
    ck_assert_msg(loom_sequential_compile(m, dev, &c) == LOOM_OK, "%s", loom_last_error(ctx));
    return m;
}

/* "abcd abcd ..." windows: x a window, y the next token at each position. */
static loom_dataset *tiny_text(loom_ctx *ctx, int64_t n)
{
    float *x = malloc((size_t)(n * 8) * sizeof *x);
    int32_t *y = malloc((size_t)(n * 8) * sizeof *y);
    static const int32_t cycle[5] = {2, 3, 4, 5, 1};
    for (int64_t w = 0; w < n; w++)
        for (int j = 0; j < 8; j++) {
            x[w * 8 + j] = (float)cycle[(w + j) % 5];
            y[w * 8 + j] = cycle[(w + j + 1) % 5];
        }
    loom_dataset *ds;
    ck_assert_int_eq(loom_dataset_create(ctx, n, 8, x, 8, y, &ds), LOOM_OK);
    free(x);
    free(y);
    return ds;
}

/* It learns the cycle, its file loads back to the same predictions, and a
 * token id outside the vocabulary is refused before anything runs. */
START_TEST(language_model)
{
    loom_ctx *ctx = tu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_sequential *m = tiny_lm(ctx, dev, 10);
    loom_dataset *ds = tiny_text(ctx, 40);
    ck_assert_int_eq(loom_dataset_label_len(ds), 8);
    loom_fit_config fc = loom_fit_config_default();
    fc.epochs = 30;
    fc.shuffle = 0;
    loom_fit_stats st;
    ck_assert_msg(loom_sequential_fit(m, ds, &fc, &st) == LOOM_OK, "%s", loom_last_error(ctx));
    ck_assert_msg(st.accuracy > 0.95, "accuracy %.3f after %lld steps", st.accuracy, (long long)st.step);
    loom_eval_result r;
    ck_assert_int_eq(loom_sequential_evaluate(m, ds, 0, &r), LOOM_OK);
    ck_assert_int_eq(r.classes, 6);
    ck_assert(r.accuracy > 0.95);
    loom_eval_result_free(&r);
    float x[8] = {2, 3, 4, 5, 1, 2, 3, 4}, a[48], b[48];
    ck_assert_int_eq(loom_sequential_predict(m, x, 1, a), LOOM_OK);
    char path[64];
    snprintf(path, sizeof path, "/tmp/loom_seq_lm_%d.safetensors", (int)getpid());
    ck_assert_int_eq(loom_sequential_save(m, path), LOOM_OK);
    loom_sequential *m2;
    ck_assert_msg(loom_sequential_load(ctx, path, dev, NULL, &m2) == LOOM_OK, "%s", loom_last_error(ctx));
    ck_assert_int_eq(loom_sequential_predict(m2, x, 1, b), LOOM_OK);
    ck_assert_int_eq(memcmp(a, b, sizeof a), 0);
    ck_assert_str_eq(loom_sequential_describe(m), loom_sequential_describe(m2));
    remove(path);
    /* a token outside [0, 6), or not a whole number */
    x[3] = 6;
    ck_assert_int_eq(loom_sequential_predict(m2, x, 1, b), LOOM_E_RANGE);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "embedding0: token 6 at row 0, position 3"));
    x[3] = 2.5f;
    ck_assert_int_eq(loom_sequential_predict(m2, x, 1, b), LOOM_E_RANGE);
    /* data with one label per row for a model of 8 positions */
    loom_dataset *one;
    float x1[8] = {0};
    int32_t y1[1] = {1};
    ck_assert_int_eq(loom_dataset_create(ctx, 1, 8, x1, 1, y1, &one), LOOM_OK);
    ck_assert_int_eq(loom_sequential_fit(m2, one, &fc, NULL), LOOM_E_SHAPE);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "1 labels per row, the model predicts 8 positions"));
    loom_dataset_destroy(one);
    loom_sequential_destroy(m2);
    loom_sequential_destroy(m);
    loom_dataset_destroy(ds);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- the examples' models on every device --------------------------------------------------- */

static const char *data_dir(void)
{
    const char *e = getenv("LOOM_TEST_MNIST");
    if (e && *e)
        return e;
    return access(LOOM_DEFAULT_DATA_DIR "/train-labels-idx1-ubyte.gz", R_OK) == 0 ? LOOM_DEFAULT_DATA_DIR : NULL;
}

#define STEPS 50

typedef struct curve {
    double loss[STEPS];
    int n;
} curve;

static int record(void *u, const loom_fit_stats *s)
{
    curve *c = u;
    if (c->n < STEPS)
        c->loss[c->n++] = s->loss;
    return c->n >= STEPS;
}

static const char *const vit[] = {
    "{\"type\": \"patches\", \"size\": 7, \"rows\": 28, \"cols\": 28}",
    "{\"type\": \"dense\", \"units\": 64}",
    "{\"type\": \"position\"}",
    "{\"type\": \"transformer_encoder\", \"heads\": 4, \"ffn\": 128}",
    "{\"type\": \"transformer_encoder\", \"heads\": 4, \"ffn\": 128}",
    "{\"type\": \"transformer_encoder\", \"heads\": 4, \"ffn\": 128}",
    "{\"type\": \"transformer_encoder\", \"heads\": 4, \"ffn\": 128}",
    "{\"type\": \"layer_norm\"}",
    "{\"type\": \"pool\", \"mode\": \"mean\"}",
    "{\"type\": \"dense\", \"units\": 10, \"activation\": \"softmax\"}",
    NULL,
};
static const char *const lstm[] = {
    "{\"type\": \"reshape\", \"shape\": [28, 28]}",
    "{\"type\": \"lstm\", \"units\": 128}",
    "{\"type\": \"dense\", \"units\": 10, \"activation\": \"softmax\"}",
    NULL,
};

/* The running mean of the loss over the first 50 steps of a model (ViT,
 * LSTM: the examples' architectures at batch 8 on a slice of
 * Fashion-MNIST; lm: the tiny language model) on spec. */
static curve train_curve(loom_ctx *ctx, const char *spec, int which, loom_dataset *ds)
{
    curve c = {{0}, 0};
    loom_device *dev = tu_open(ctx, spec);
    loom_sequential *m;
    if (which == 2) {
        m = tiny_lm(ctx, dev, 8);
    } else {
        ck_assert_int_eq(loom_sequential_create(ctx, 784, &m), LOOM_OK);
        for (const char *const *l = which ? lstm : vit; *l; l++)
            ck_assert_int_eq(loom_sequential_add_json(m, *l), LOOM_OK);
        loom_model_config cfg = loom_model_config_default();
        cfg.batch = 8;
        ck_assert_msg(loom_sequential_compile(m, dev, &cfg) == LOOM_OK, "%s: %s", spec, loom_last_error(ctx));
    }
    loom_fit_config fc = loom_fit_config_default();
    fc.epochs = 1;
    fc.shuffle = 0;
    fc.progress = record;
    fc.user = &c;
    fc.progress_every = 1;
    ck_assert_msg(loom_sequential_fit(m, ds, &fc, NULL) == LOOM_OK, "%s: %s", spec, loom_last_error(ctx));
    ck_assert_uint_eq(loom_validation_errors(ctx), 0);
    loom_sequential_destroy(m);
    loom_device_close(dev);
    return c;
}

START_TEST(losses_agree)
{
    static const char *const names[3] = {"vit", "lstm", "lm"};
    if (_i < 2 && !data_dir()) {
        fprintf(stderr, "seq_models: Fashion-MNIST not installed, %s skipped\n", names[_i]);
        return;
    }
    loom_ctx *ctx = tu_ctx();
    loom_dataset *ds = NULL;
    if (_i < 2) {
        loom_dataset *all;
        ck_assert_int_eq(loom_dataset_load_mnist(ctx, data_dir(), 1, &all), LOOM_OK);
        ck_assert_int_eq(loom_dataset_subset(all, 0, STEPS * 8 + 8, &ds), LOOM_OK);
        loom_dataset_destroy(all);
        ck_assert_int_eq(loom_dataset_scale(ds, LOOM_SCALE_UNIT, NULL, NULL), LOOM_OK);
    } else {
        ds = tiny_text(ctx, STEPS * 8 + 8);
    }
    char specs[16][32];
    int nd = tu_devices(ctx, specs, 16);
    curve ref = train_curve(ctx, "cpu", _i, ds);
    ck_assert_int_eq(ref.n, STEPS);
    ck_assert_msg(ref.loss[STEPS - 1] < ref.loss[0], "%s: the loss does not fall on the CPU (%g to %g)", names[_i],
                  ref.loss[0], ref.loss[STEPS - 1]);
    for (int d = 0; d < nd; d++) {
        if (!strcmp(specs[d], "cpu"))
            continue;
        curve c = train_curve(ctx, specs[d], _i, ds);
        ck_assert_int_eq(c.n, STEPS);
        double worst = 0;
        for (int k = 0; k < STEPS; k++)
            worst = fmax(worst, fabs(c.loss[k] - ref.loss[k]) / (1e-3 * fabs(ref.loss[k]) + 1e-4));
        fprintf(stderr, "seq_models: %s on %s: 50 steps, loss %.5f (cpu %.5f), worst difference %.3g of the "
                "tolerance\n", names[_i], specs[d], c.loss[STEPS - 1], ref.loss[STEPS - 1], worst);
        ck_assert_msg(worst <= 1.0, "%s on %s: the running loss leaves cpu's by more than 1e-3 relative", names[_i],
                      specs[d]);
    }
    loom_dataset_destroy(ds);
    loom_ctx_destroy(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("seq_models");
    TCase *tl = tcase_create("layers");
    tcase_set_timeout(tl, 600);
    tcase_add_loop_test(tl, layer_gradients, 0, (int)(sizeof layer_cases / sizeof layer_cases[0]));
    tcase_add_test(tl, descriptions);
    tcase_add_test(tl, language_model);
    suite_add_tcase(s, tl);
    TCase *tt = tcase_create("train");
    tcase_set_timeout(tt, 1200);
    tcase_add_loop_test(tt, losses_agree, 0, 3);
    suite_add_tcase(s, tt);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
