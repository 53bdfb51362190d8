/* Shapes past the loop budget of a driver: Mesa's llvmpipe ends every loop
 * of an invocation once the invocation has made 65535 loop passes in all
 * (gallivm's LP_MAX_TGSI_LOOP_ITERATIONS), with no error. Each kernel
 * family that can walk that far is run here at the smallest shape that
 * went wrong before it was planned around the limit (another variant, or
 * the sum split over dispatches), against the CPU; the families that
 * refuse instead are refused by name at compile. The cases are sized to
 * the limit, so on a device without one they are small ordinary runs. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- one graph, on one device --------------------------------------------- */

/* The inputs a case feeds and the output it reads ("out", or a state
 * entry), owned by the case. */
typedef struct run_io {
    int nin;
    const char *names[4];
    float *data[4];
    size_t bytes[4];
    const char *out;
    int from_state;
    int is_int;
    size_t n;
} run_io;

typedef void (*build_fn)(loom_graph *g, loom_state *st, const int64_t *d, run_io *io);

static float *filled(size_t n, uint32_t seed, float lo, float hi)
{
    float *v = malloc(n * sizeof *v);
    ck_assert_ptr_nonnull(v);
    tu_fill(v, n, seed, lo, hi);
    return v;
}

static void feed(run_io *io, const char *name, float *v, size_t n)
{
    io->names[io->nin] = name;
    io->data[io->nin] = v;
    io->bytes[io->nin] = n * 4;
    io->nin++;
}

/* Builds the case on spec and compiles it: the status of the compile;
 * with LOOM_OK and out, runs it and reads the output into *out (io.n
 * floats). */
static loom_status run_case(loom_ctx *ctx, const char *spec, build_fn build, const int64_t *d, float **out,
                            size_t *n, char *err, size_t nerr)
{
    loom_device *dev = tu_open(ctx, spec);
    loom_graph *g;
    loom_state *st;
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    run_io io = {0};
    build(g, st, d, &io);
    ck_assert_msg(loom_graph_status(g) == LOOM_OK, "%s", loom_graph_error(g));
    loom_program *p = NULL;
    loom_status s = loom_compile(g, dev, st, NULL, &p);
    snprintf(err, nerr, "%s", s == LOOM_OK ? "" : loom_last_error(ctx));
    if (s == LOOM_OK && out) {
        for (int i = 0; i < io.nin; i++) {
            loom_status si = loom_program_set_input(p, io.names[i], io.data[i], io.bytes[i]);
            ck_assert_msg(si == LOOM_OK, "set_input %s: %s", io.names[i], loom_last_error(ctx));
        }
        ck_assert_msg(loom_program_run(p) == LOOM_OK, "run on %s: %s", spec, loom_last_error(ctx));
        float *o = malloc(io.n * sizeof *o);
        ck_assert_ptr_nonnull(o);
        if (io.from_state)
            ck_assert_int_eq(loom_state_read(st, io.out, o, io.n * 4), LOOM_OK);
        else
            ck_assert_int_eq(loom_program_read(p, io.out ? io.out : "out", o, io.n * 4), LOOM_OK);
        if (io.is_int)
            for (size_t i = 0; i < io.n; i++) {
                int32_t v;
                memcpy(&v, &o[i], sizeof v);
                o[i] = (float)v;
            }
        *out = o;
        *n = io.n;
    }
    loom_program_destroy(p);
    for (int i = 0; i < io.nin; i++)
        free(io.data[i]);
    loom_state_destroy(st);
    loom_graph_destroy(g);
    loom_device_close(dev);
    return s;
}

/* 1 if the device cuts loops short (the budget these cases are sized to). */
static int budgeted(loom_ctx *ctx, const char *spec)
{
    loom_device *dev = tu_open(ctx, spec);
    int r = strstr(loom_device_get(dev)->name, "llvmpipe") != NULL;
    loom_device_close(dev);
    return r;
}

/* The case on every Vulkan device against the CPU, |error| within
 * atol + rtol |cpu|; the number of devices it ran on. */
static int check_close(const char *what, build_fn build, const int64_t *d, double atol, double rtol)
{
    loom_ctx *ctx = tu_ctx();
    char specs[16][32], err[512];
    int nd = tu_devices(ctx, specs, 16), ran = 0;
    float *ref = NULL, *got = NULL;
    size_t nref = 0, ngot = 0;
    for (int k = 0; k < nd; k++) {
        if (strncmp(specs[k], "vulkan:", 7))
            continue;
        if (!ref)
            ck_assert_msg(run_case(ctx, "cpu", build, d, &ref, &nref, err, sizeof err) == LOOM_OK, "%s on cpu: %s",
                          what, err);
        loom_status s = run_case(ctx, specs[k], build, d, &got, &ngot, err, sizeof err);
        ck_assert_msg(s == LOOM_OK, "%s on %s: %s", what, specs[k], err);
        ck_assert_uint_eq(ngot, nref);
        double e = tu_err(got, ref, nref, atol, rtol);
        size_t at = 0;
        for (size_t i = 0; i < nref; i++)
            if (fabs((double)got[i] - ref[i]) > fabs((double)got[at] - ref[at]) || isnan(got[i]))
                at = i;
        ck_assert_msg(e <= 1, "%s on %s differs from the CPU: error %g, at %zu %g where the CPU has %g", what,
                      specs[k], e, at, got[at], ref[at]);
        free(got);
        ran++;
    }
    ck_assert_uint_eq(loom_validation_errors(ctx), 0);
    free(ref);
    loom_ctx_destroy(ctx);
    if (!ran)
        fprintf(stderr, "loops: no Vulkan device, %s skipped\n", what);
    return ran;
}

/* The case refused at compile on every device with a loop budget, by a
 * message naming the op, the device and the budget. */
static void check_refused(const char *what, build_fn build, const int64_t *d, const char *op)
{
    loom_ctx *ctx = tu_ctx();
    char specs[16][32], err[512];
    int nd = tu_devices(ctx, specs, 16), ran = 0;
    for (int k = 0; k < nd; k++) {
        if (strncmp(specs[k], "vulkan:", 7) || !budgeted(ctx, specs[k]))
            continue;
        loom_status s = run_case(ctx, specs[k], build, d, NULL, NULL, err, sizeof err);
        ck_assert_msg(s == LOOM_E_UNSUPPORTED, "%s on %s: compiled (%s), where it should be refused", what, specs[k],
                      loom_status_str(s));
        ck_assert_msg(strstr(err, op) && strstr(err, specs[k]) && strstr(err, "loop budget") && strstr(err, "65535"),
                      "%s on %s: the refusal does not name the op %s, the device and the budget: %s", what, specs[k],
                      op, err);
        ran++;
    }
    ck_assert_uint_eq(loom_validation_errors(ctx), 0);
    loom_ctx_destroy(ctx);
    if (!ran)
        fprintf(stderr, "loops: no device with a loop budget, %s skipped\n", what);
}

/* ---- reductions ------------------------------------------------------------- */

/* sum over axis 0 of [d0, d1] (d2: 1 max, 2 min), values in [-1, 1] */
static void build_reduce(loom_graph *g, loom_state *st, const int64_t *d, run_io *io)
{
    (void)st;
    int64_t s[2] = {d[0], d[1]};
    loom_tensor x = loom_input(g, "x", LOOM_F32, 2, s);
    loom_tensor r = d[2] == 1 ? loom_max(g, x, 0, 0) : d[2] == 2 ? loom_min(g, x, 0, 0) : loom_sum(g, x, 0, 0);
    loom_output(g, r, "out");
    size_t n = (size_t)(d[0] * d[1]);
    float *v = filled(n, 7, -1, 1);
    /* an extreme far down each column: a part that stopped early misses it */
    if (d[2])
        for (int64_t j = 0; j < d[1]; j++)
            v[(size_t)((d[0] - 1 - j) * d[1] + j)] = d[2] == 1 ? 5.0f : -5.0f;
    feed(io, "x", v, n);
    io->n = (size_t)d[1];
}

/* One invocation per output walked all 70000 elements of each of 16
 * columns (65535 summed); now a workgroup each. */
START_TEST(reduce_long_columns)
{
    int64_t d[3] = {70000, 16, 0};
    check_close("sum over 70000 x 16", build_reduce, d, 0.05, 1e-5);
}
END_TEST

/* One workgroup past 64 x 65535 elements (the sum of 4.2M collapsed to
 * two partials): the reduction runs in parts, combined dispatch by
 * dispatch, for sums and for the max and min. */
START_TEST(reduce_parts)
{
    int64_t sum[3] = {4300000, 1, 0}, mx[3] = {4300000, 1, 1}, mn[3] = {4300000, 1, 2};
    check_close("sum of 4.3M", build_reduce, sum, 0.5, 1e-5);
    check_close("max of 4.3M", build_reduce, mx, 0, 0);
    check_close("min of 4.3M", build_reduce, mn, 0, 0);
}
END_TEST

/* ---- convolutions -------------------------------------------------------------- */

/* conv2d forward, x [1, d0, 4, 4], w [16, d0, d1, d1], same padding */
static void build_conv(loom_graph *g, loom_state *st, const int64_t *d, run_io *io)
{
    (void)st;
    int64_t sx[4] = {1, d[0], 4, 4}, sw[4] = {16, d[0], d[1], d[1]};
    loom_tensor x = loom_input(g, "x", LOOM_F32, 4, sx), w = loom_input(g, "w", LOOM_F32, 4, sw);
    loom_conv2d_opts o = loom_conv2d_opts_default();
    o.same = 1;
    loom_output(g, loom_conv2d(g, x, w, LOOM_NONE, &o), "out");
    size_t nx = (size_t)d[0] * 16, nw = (size_t)(16 * d[0] * d[1] * d[1]);
    feed(io, "x", filled(nx, 3, -1, 1), nx);
    feed(io, "w", filled(nw, 4, -1, 1), nw);
    io->n = 256;
}

/* Where barriers are dear an invocation walks every tap of its output:
 * c x (kh kw + 2 kh + 3) passes. A 1x1 kernel over 10923 channels (65538)
 * passed the old count of c x (kh kw + kh + 1) and summed 10922 of them. */
START_TEST(conv_forward_refused)
{
    int64_t d[2] = {10923, 1};
    check_refused("1x1 conv2d over 10923 channels", build_conv, d, "conv2d");
}
END_TEST

/* ---- row-wise kernels ---------------------------------------------------------- */

/* softmax of x [d0, d1] (d2: 1 log-softmax) and its gradient against
 * weights r: "out" = [y, dx] */
static void build_softmax(loom_graph *g, loom_state *st, const int64_t *d, run_io *io)
{
    int64_t s[2] = {d[0], d[1]};
    size_t n = (size_t)(d[0] * d[1]);
    loom_tensor x = loom_param(g, "x", LOOM_F32, 2, s, 1);
    loom_tensor y = d[2] ? loom_log_softmax(g, x) : loom_softmax(g, x);
    float *r = filled(n, 5, -1, 1);
    loom_tensor loss = loom_sum_all(g, loom_mul(g, y, loom_constant(g, "r", LOOM_F32, 2, s, r)));
    free(r);
    ck_assert_int_eq(loom_backward(g, loss, NULL, 0), LOOM_OK);
    int64_t flat[1] = {(int64_t)n};
    loom_output(g, loom_concat(g, 2, (loom_tensor[]){loom_reshape(g, y, 1, flat), loom_reshape(g, loom_grad(g, x), 1, flat)},
                               0),
                "out");
    float *xv = filled(n, 6, -4, 4);
    ck_assert_int_eq(loom_state_write(st, "x", LOOM_F32, 2, s, xv), LOOM_OK);
    free(xv);
    io->n = 2 * n;
}

/* An invocation per row walked 3 x 21846 elements (softmax) and 2 x
 * 32768 (its gradient): the rows go to workgroups. */
START_TEST(softmax_long_rows)
{
    int64_t fwd[3] = {16, 21846, 0}, bwd[3] = {16, 32768, 1};
    check_close("softmax of 16 x 21846", build_softmax, fwd, 1e-7, 1e-4);
    check_close("log-softmax and gradient of 16 x 32768", build_softmax, bwd, 1e-6, 1e-4);
}
END_TEST

/* layer norm (d2: RMS norm) of x [d0, d1] with gamma and beta, and dx */
static void build_lnorm(loom_graph *g, loom_state *st, const int64_t *d, run_io *io)
{
    int64_t s[2] = {d[0], d[1]}, sc[1] = {d[1]};
    size_t n = (size_t)(d[0] * d[1]);
    loom_tensor x = loom_param(g, "x", LOOM_F32, 2, s, 1), ga = loom_param(g, "g", LOOM_F32, 1, sc, 0),
                be = loom_param(g, "be", LOOM_F32, 1, sc, 0);
    loom_tensor y = d[2] ? loom_rms_norm(g, x, ga, 1e-5f) : loom_layer_norm(g, x, ga, be, 1e-5f);
    float *r = filled(n, 8, -1, 1);
    loom_tensor loss = loom_sum_all(g, loom_mul(g, y, loom_constant(g, "r", LOOM_F32, 2, s, r)));
    free(r);
    ck_assert_int_eq(loom_backward(g, loss, NULL, 0), LOOM_OK);
    int64_t flat[1] = {(int64_t)n};
    loom_output(g, loom_concat(g, 2, (loom_tensor[]){loom_reshape(g, y, 1, flat), loom_reshape(g, loom_grad(g, x), 1, flat)},
                               0),
                "out");
    float *xv = filled(n, 9, -2, 2), *gv = filled((size_t)d[1], 10, 0.5f, 1.5f), *bv = filled((size_t)d[1], 11, -1, 1);
    ck_assert_int_eq(loom_state_write(st, "x", LOOM_F32, 2, s, xv), LOOM_OK);
    ck_assert_int_eq(loom_state_write(st, "g", LOOM_F32, 1, sc, gv), LOOM_OK);
    if (!d[2])
        ck_assert_int_eq(loom_state_write(st, "be", LOOM_F32, 1, sc, bv), LOOM_OK);
    free(xv);
    free(gv);
    free(bv);
    io->n = 2 * n;
}

/* The layer norm gradient walks a row 5 times (13107 columns: 65540
 * passes), RMS norm's 3 times (21846): the rows go to workgroups. */
START_TEST(norm_long_rows)
{
    int64_t ln[3] = {16, 13107, 0}, rms[3] = {16, 21846, 1};
    check_close("layer norm of 16 x 13107", build_lnorm, ln, 1e-4, 1e-4);
    check_close("RMS norm of 16 x 21846", build_lnorm, rms, 1e-4, 1e-4);
}
END_TEST

/* ---- cross-entropy ----------------------------------------------------------------- */

/* sparse cross-entropy of logits [d0, d1]; d2 bit 0: the gradient too,
 * bit 1: the arg-max too (the loss and the prediction fuse into the
 * gradient's kernel where they fit). "out" = [loss, dz..., pred...] */
static void build_xent(loom_graph *g, loom_state *st, const int64_t *d, run_io *io)
{
    int64_t s[2] = {d[0], d[1]}, sl[1] = {d[0]}, one[1] = {1};
    size_t n = (size_t)(d[0] * d[1]);
    loom_tensor z = loom_param(g, "z", LOOM_F32, 2, s, 1), lab = loom_input(g, "lab", LOOM_I32, 1, sl);
    loom_tensor loss = loom_sparse_cross_entropy(g, z, lab);
    loom_tensor parts[3] = {loom_reshape(g, loss, 1, one)};
    int np = 1;
    if (d[2] & 1) {
        ck_assert_int_eq(loom_backward(g, loss, NULL, 0), LOOM_OK);
        int64_t flat[1] = {(int64_t)n};
        parts[np++] = loom_reshape(g, loom_grad(g, z), 1, flat);
    }
    if (d[2] & 2)
        parts[np++] = loom_cast(g, loom_argmax(g, z, 1), LOOM_F32);
    loom_output(g, np > 1 ? loom_concat(g, np, parts, 0) : parts[0], "out");
    float *zv = filled(n, 12, -3, 3);
    ck_assert_int_eq(loom_state_write(st, "z", LOOM_F32, 2, s, zv), LOOM_OK);
    free(zv);
    float *lv = malloc((size_t)d[0] * 4);
    for (int64_t i = 0; i < d[0]; i++) {
        int32_t l = (int32_t)((i * 7919) % d[1]);
        memcpy(&lv[i], &l, 4);
    }
    feed(io, "lab", lv, (size_t)d[0]);
    io->n = 1 + ((d[2] & 1) ? n : 0) + ((d[2] & 2) ? (size_t)d[0] : 0);
}

/* The loss's one workgroup walked 2 rows of 16384 per invocation past the
 * budget (257 rows), and a row of 40000 alone: the rows go in parts, and
 * a row that long is walked by the whole workgroup. */
START_TEST(xent_loss_parts)
{
    int64_t parts[3] = {257, 16384, 0}, wide[3] = {4, 40000, 0};
    check_close("cross-entropy of 257 x 16384", build_xent, parts, 1e-5, 1e-5);
    check_close("cross-entropy of 4 x 40000", build_xent, wide, 1e-5, 1e-5);
}
END_TEST

/* The loss, gradient and prediction fused in one workgroup walked a row
 * of 22000 three times (32 rows); unfused, the gradient's invocation per
 * row did the same (64 rows): the fusion is declined and the rows go to
 * workgroups. */
START_TEST(xent_grad_long_rows)
{
    int64_t fused[3] = {32, 22000, 3}, rows[3] = {64, 22000, 1};
    check_close("cross-entropy, gradient and arg-max of 32 x 22000", build_xent, fused, 1e-6, 1e-4);
    check_close("cross-entropy gradient of 64 x 22000", build_xent, rows, 1e-6, 1e-4);
}
END_TEST

/* ---- arg-max ----------------------------------------------------------------------- */

/* argmax of x [4, d0] along the rows (d1: the gradient of max instead) */
static void build_arg(loom_graph *g, loom_state *st, const int64_t *d, run_io *io)
{
    (void)st;
    int64_t s[2] = {4, d[0]};
    loom_tensor x = loom_input(g, "x", LOOM_F32, 2, s);
    if (d[1]) {
        loom_tensor xp = loom_param(g, "xp", LOOM_F32, 2, s, 1);
        loom_tensor loss = loom_sum_all(g, loom_max(g, loom_add(g, x, xp), 1, 0));
        ck_assert_int_eq(loom_backward(g, loss, NULL, 0), LOOM_OK);
        loom_output(g, loom_grad(g, xp), "out");
    } else {
        loom_output(g, loom_argmax(g, x, 1), "out");
    }
    feed(io, "x", filled((size_t)(4 * d[0]), 13, -1, 1), (size_t)(4 * d[0]));
    io->n = 4;
}

/* An invocation per slice walks it (twice for the gradient): refused. */
START_TEST(arg_refused)
{
    int64_t amax[2] = {65537, 0}, grad[2] = {32768, 1};
    check_refused("argmax over 65537", build_arg, amax, "argmax");
    check_refused("max gradient over 32768", build_arg, grad, "max");
}
END_TEST

/* ---- indexing ---------------------------------------------------------------------- */

/* The gradient of an embedding [16, 8] over d0 ids (d1: of gather along
 * axis 0 of x [16, 2] by idx [d0, 2] instead) */
static void build_index(loom_graph *g, loom_state *st, const int64_t *d, run_io *io)
{
    int64_t st_[2] = {16, d[1] ? 2 : 8}, si[2] = {d[0], 2};
    loom_tensor t = loom_param(g, "t", LOOM_F32, 2, st_, 1);
    loom_tensor ids = loom_input(g, "ids", LOOM_I32, d[1] ? 2 : 1, si);
    loom_tensor y = d[1] ? loom_gather(g, t, 0, ids) : loom_embedding(g, t, ids);
    size_t ny = (size_t)d[0] * (d[1] ? 2 : 8), ni = (size_t)d[0] * (d[1] ? 2 : 1);
    int64_t sy[2] = {d[0], d[1] ? 2 : 8};
    float *r = filled(ny, 14, -1, 1);
    loom_tensor loss = loom_sum_all(g, loom_mul(g, y, loom_constant(g, "r", LOOM_F32, 2, sy, r)));
    free(r);
    ck_assert_int_eq(loom_backward(g, loss, NULL, 0), LOOM_OK);
    loom_output(g, loom_grad(g, t), "out");
    float *tv = filled((size_t)(16 * st_[1]), 15, -1, 1);
    ck_assert_int_eq(loom_state_write(st, "t", LOOM_F32, 2, st_, tv), LOOM_OK);
    free(tv);
    float *iv = malloc(ni * 4);
    for (size_t i = 0; i < ni; i++) {
        int32_t v = (int32_t)((i * 5 + i / 7) % 16);
        memcpy(&iv[i], &v, 4);
    }
    feed(io, "ids", iv, ni);
    io->n = (size_t)(16 * st_[1]);
}

/* A scatter-add's invocation walked every index (the embedding gradient
 * over 65536 tokens, past it) or the axis (gather's): the walk goes in
 * parts. */
START_TEST(scatter_parts)
{
    int64_t take[2] = {70000, 0}, gather[2] = {70000, 1};
    check_close("embedding gradient over 70000 ids", build_index, take, 1e-3, 1e-5);
    check_close("gather gradient over an axis of 70000", build_index, gather, 1e-3, 1e-5);
}
END_TEST

/* ---- updates and clipping ---------------------------------------------------------- */

/* x [d0, 4] W [4, d1] + bias, SGD (d2: Adam): the bias after a step; the
 * core folds the bias's column sum into its update where it can. d3: the
 * gradient norm clipped to 1 (x [d0 / 4, 4] W [4, 4] and a parameter of
 * d1 elements whose gradient is all ones: "out" is that parameter). */
static void build_update(loom_graph *g, loom_state *st, const int64_t *d, run_io *io)
{
    if (d[3]) {
        int64_t s[1] = {d[1]};
        loom_tensor w = loom_param(g, "w", LOOM_F32, 1, s, 1);
        loom_tensor loss = loom_sum_all(g, w);
        ck_assert_int_eq(loom_backward(g, loss, NULL, 0), LOOM_OK);
        loom_optimizer o = loom_optimizer_default(LOOM_OPT_SGD);
        o.lr = 1.0f;
        o.clip_norm = 1.0f;
        ck_assert_int_eq(loom_optimize(g, &o), LOOM_OK);
        loom_output(g, loss, "loss");
        float *z = calloc((size_t)d[1], 4);
        ck_assert_int_eq(loom_state_write(st, "w", LOOM_F32, 1, s, z), LOOM_OK);
        free(z);
        io->out = "w";
        io->from_state = 1;
        io->n = (size_t)d[1]; /* each -1 / sqrt(n) */
        return;
    }
    int64_t sx[2] = {d[0], 4}, sw[2] = {4, d[1]}, sb[1] = {d[1]};
    loom_tensor x = loom_input(g, "x", LOOM_F32, 2, sx);
    loom_tensor w = loom_param(g, "w", LOOM_F32, 2, sw, 1), b = loom_param(g, "bias", LOOM_F32, 1, sb, 1);
    loom_tensor loss = loom_sum_all(g, loom_add(g, loom_matmul(g, x, w, 0, 0), b));
    loom_output(g, loss, "loss");
    ck_assert_int_eq(loom_backward(g, loss, NULL, 0), LOOM_OK);
    loom_optimizer o = loom_optimizer_default(d[2] ? LOOM_OPT_ADAM : LOOM_OPT_SGD);
    o.lr = 1e-6f;
    ck_assert_int_eq(loom_optimize(g, &o), LOOM_OK);
    float *wv = filled((size_t)(4 * d[1]), 16, -1, 1), *z = calloc((size_t)d[1], 4);
    ck_assert_int_eq(loom_state_write(st, "w", LOOM_F32, 2, sw, wv), LOOM_OK);
    ck_assert_int_eq(loom_state_write(st, "bias", LOOM_F32, 1, sb, z), LOOM_OK);
    free(wv);
    free(z);
    feed(io, "x", filled((size_t)(4 * d[0]), 17, -1, 1), (size_t)(4 * d[0]));
    io->out = d[2] ? "bias/m" : "bias";
    io->from_state = 1;
    io->n = (size_t)d[1];
}

/* SGD's invocation summed 16 elements of a folded bias gradient over 4100
 * rows (16 x 4102 passes): the fold is declined and the reduction sums. */
START_TEST(update_fold_declined)
{
    int64_t sgd[4] = {4100, 4096, 0, 0};
    check_close("SGD of a bias over 4100 rows", build_update, sgd, 1e-9, 1e-5);
}
END_TEST

/* The gradient norm's one workgroup walked 20M elements (the norm came
 * out as sqrt(131070)): the gradients go in pieces. */
START_TEST(clip_norm_pieces)
{
    int64_t clip[4] = {0, 17000000, 0, 1};
    check_close("clip norm of 17M", build_update, clip, 1e-9, 1e-4);
}
END_TEST

/* ---- batch norm -------------------------------------------------------------------- */

/* batch norm of x [1, d1, d0, d0] (training) and its gradient; "out": the
 * first elements of y, dx, and dgamma, dbeta */
static void build_bn(loom_graph *g, loom_state *st, const int64_t *d, run_io *io)
{
    int64_t s[4] = {1, d[1], d[0], d[0]}, sc[1] = {d[1]};
    size_t n = (size_t)(d[1] * d[0] * d[0]);
    loom_tensor x = loom_param(g, "x", LOOM_F32, 4, s, 1);
    loom_tensor ga = loom_param(g, "g", LOOM_F32, 1, sc, 1), be = loom_param(g, "be", LOOM_F32, 1, sc, 1);
    loom_tensor y = loom_batch_norm(g, x, ga, be, LOOM_NONE, 0.99f, 1e-3f, 1);
    float *r = filled(n, 18, -1, 1);
    loom_tensor loss = loom_sum_all(g, loom_mul(g, y, loom_constant(g, "r", LOOM_F32, 4, s, r)));
    free(r);
    ck_assert_int_eq(loom_backward(g, loss, NULL, 0), LOOM_OK);
    int64_t flat[1] = {(int64_t)n}, st0[1] = {0}, st1[1] = {64};
    loom_tensor parts[4] = {loom_slice(g, loom_reshape(g, y, 1, flat), st0, st1, NULL),
                            loom_slice(g, loom_reshape(g, loom_grad(g, x), 1, flat), st0, st1, NULL),
                            loom_grad(g, ga), loom_grad(g, be)};
    loom_output(g, loom_concat(g, 4, parts, 0), "out");
    float *xv = filled(n, 19, -1, 1);
    /* a tail far from the rest: a mean that stopped short misses it */
    for (size_t i = n / (size_t)d[1] - 4096; i < n / (size_t)d[1]; i++)
        xv[i] += 50.0f;
    ck_assert_int_eq(loom_state_write(st, "x", LOOM_F32, 4, s, xv), LOOM_OK);
    free(xv);
    float one[2] = {1, 1}, zero[2] = {0, 0};
    ck_assert_int_eq(loom_state_write(st, "g", LOOM_F32, 1, sc, one), LOOM_OK);
    ck_assert_int_eq(loom_state_write(st, "be", LOOM_F32, 1, sc, zero), LOOM_OK);
    io->n = 128 + 2 * (size_t)d[1];
}

/* A statistic's workgroup walked a 64th of 4.2M elements, twice (the
 * mean collapsed): the walk takes 8 elements a pass. */
START_TEST(batch_norm_large)
{
    int64_t d[2] = {2050, 1};
    check_close("batch norm over 2050 x 2050", build_bn, d, 1e-3, 1e-3);
}
END_TEST

/* ---- products ----------------------------------------------------------------------- */

/* [4, d0] x [d0, 8] (d1: batched, rank 3; d2: in f16) */
static void build_matmul(loom_graph *g, loom_state *st, const int64_t *d, run_io *io)
{
    (void)st;
    int64_t sa[3] = {1, 4, d[0]}, sb[3] = {1, d[0], 8};
    int nd = d[1] ? 3 : 2;
    loom_tensor a = loom_input(g, "a", LOOM_F32, nd, d[1] ? sa : sa + 1);
    loom_tensor b = loom_input(g, "b", LOOM_F32, nd, d[1] ? sb : sb + 1);
    if (d[2]) {
        a = loom_cast(g, a, LOOM_F16);
        b = loom_cast(g, b, LOOM_F16);
    }
    loom_output(g, loom_cast(g, loom_matmul(g, a, b, 0, 0), LOOM_F32), "out");
    feed(io, "a", filled((size_t)(4 * d[0]), 20, -1, 1), (size_t)(4 * d[0]));
    feed(io, "b", filled((size_t)(8 * d[0]), 21, -1, 1), (size_t)(8 * d[0]));
    io->n = 32;
}

/* The texel GEMM walks K four at a time (262148: past the budget): the
 * tiled GEMM, sixteen at a time, takes over. */
START_TEST(matmul_long_k)
{
    int64_t d[3] = {262148, 0, 0};
    check_close("matmul over K 262148", build_matmul, d, 0.05, 1e-4);
}
END_TEST

/* The batched GEMM walks K one at a time, the tiled f16 GEMM sixteen:
 * refused past the budget. */
START_TEST(matmul_refused)
{
    int64_t bmm[3] = {65536, 1, 0}, half[3] = {1048576, 0, 1};
    check_refused("batched matmul over K 65536", build_matmul, bmm, "batch_matmul");
    check_refused("f16 matmul over K 1048576", build_matmul, half, "matmul");
}
END_TEST

/* ---- attention ---------------------------------------------------------------------- */

/* attention of q [1, d2, d0, 64] over k, v [1, 1, d1, 64] (d3: dk) */
static void build_attention(loom_graph *g, loom_state *st, const int64_t *d, run_io *io)
{
    (void)st;
    int64_t sq[4] = {1, d[2], d[0], 64}, sk[4] = {1, 1, d[1], 64};
    loom_tensor q = loom_input(g, "q", LOOM_F32, 4, sq);
    loom_tensor k = loom_param(g, "k", LOOM_F32, 4, sk, 1), v = loom_param(g, "v", LOOM_F32, 4, sk, 1);
    loom_tensor o = loom_attention(g, q, k, v, LOOM_NONE, NULL);
    if (d[3]) {
        ck_assert_int_eq(loom_backward(g, loom_sum_all(g, o), NULL, 0), LOOM_OK);
        loom_output(g, loom_grad(g, k), "out");
    } else {
        loom_output(g, o, "out");
    }
    io->n = 64;
}

/* A query's invocation walks every key twice (forward, the statistics) or
 * once (dq); a key's walks every query of its heads (dk, dv): refused
 * past the budget (31500 keys; 8 query heads of 8192 on one key head). */
START_TEST(attention_refused)
{
    int64_t fwd[4] = {64, 31500, 1, 0}, dk[4] = {8192, 64, 8, 1};
    check_refused("attention over 31500 keys", build_attention, fwd, "attention");
    check_refused("attention's dk over 8 x 8192 queries", build_attention, dk, "attention_grad");
}
END_TEST

/* ---- pooling, int8 ------------------------------------------------------------------ */

/* max pooling of x [1, 1, d0, d0] by d1 x d1 windows at stride d2 (d3:
 * the gradient) */
static void build_pool(loom_graph *g, loom_state *st, const int64_t *d, run_io *io)
{
    (void)st;
    int64_t s[4] = {1, 1, d[0], d[0]};
    loom_tensor x = loom_param(g, "x", LOOM_F32, 4, s, 1);
    loom_pool2d_opts o = {{(int)d[1], (int)d[1]}, {(int)d[2], (int)d[2]}, {0, 0, 0, 0}, 0, 0};
    loom_tensor y = loom_max_pool2d(g, x, &o);
    if (d[3]) {
        ck_assert_int_eq(loom_backward(g, loom_sum_all(g, y), NULL, 0), LOOM_OK);
        y = loom_grad(g, x);
    }
    loom_output(g, y, "out");
    io->n = 1;
}

/* A window's invocation walks it: 256 x 256 is past the budget, and the
 * gradient of 16 x 16 at stride 1 walks 256 windows of 256. Refused. */
START_TEST(pool_refused)
{
    int64_t fwd[4] = {256, 256, 256, 0}, grad[4] = {32, 16, 1, 1};
    check_refused("max pooling by 256 x 256", build_pool, fwd, "max_pool2d");
    check_refused("max pooling's gradient by 16 x 16 at stride 1", build_pool, grad, "max_pool2d_grad");
}
END_TEST

/* the int8 convolution of x [1, d0, 4, 4] by w [16, d0, 1, 1] (d1: the
 * int8 GEMM of [4, d0] by [16, d0] instead) */
static void build_quant(loom_graph *g, loom_state *st, const int64_t *d, run_io *io)
{
    (void)st;
    int64_t sx[4] = {1, d[0], 4, 4}, sw[4] = {16, d[0], 1, 1}, sa[2] = {4, d[0]}, sn[1] = {16};
    loom_tensor bias = loom_input(g, "bias", LOOM_I32, 1, sn), mult = loom_input(g, "mult", LOOM_F32, 1, sn);
    loom_qgemm_opts o = loom_qgemm_opts_default();
    loom_tensor y;
    if (d[1])
        y = loom_qmatmul(g, loom_input(g, "a", LOOM_I8, 2, sa), loom_input(g, "w", LOOM_I8, 2, sw), bias, mult, &o);
    else
        y = loom_qconv2d(g, loom_input(g, "x", LOOM_I8, 4, sx), loom_input(g, "w", LOOM_I8, 4, sw), bias, mult, NULL,
                         &o);
    loom_output(g, y, "out");
    io->n = 1;
}

/* The int8 convolution walks its taps as the f32 one does (10923 channels
 * of 1x1), the int8 GEMM of rows not in whole words K four at a time:
 * refused past the budget. */
START_TEST(quant_refused)
{
    int64_t conv[2] = {10923, 0}, gemm[2] = {262147, 1};
    check_refused("qconv2d over 10923 channels", build_quant, conv, "qconv2d");
    check_refused("qmatmul over K 262147", build_quant, gemm, "qmatmul");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("loops");
    TCase *tc = tcase_create("vulkan");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, reduce_long_columns);
    tcase_add_test(tc, reduce_parts);
    tcase_add_test(tc, conv_forward_refused);
    tcase_add_test(tc, softmax_long_rows);
    tcase_add_test(tc, norm_long_rows);
    tcase_add_test(tc, xent_loss_parts);
    tcase_add_test(tc, xent_grad_long_rows);
    tcase_add_test(tc, arg_refused);
    tcase_add_test(tc, scatter_parts);
    tcase_add_test(tc, update_fold_declined);
    tcase_add_test(tc, clip_norm_pieces);
    tcase_add_test(tc, batch_norm_large);
    tcase_add_test(tc, matmul_long_k);
    tcase_add_test(tc, matmul_refused);
    tcase_add_test(tc, attention_refused);
    tcase_add_test(tc, pool_refused);
    tcase_add_test(tc, quant_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
