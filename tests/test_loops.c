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
 * with LOOM_OK, runs it and reads the output into *out (io.n floats). */
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
    if (s == LOOM_OK) {
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
        loom_program_destroy(p);
    }
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
        float *got = NULL;
        size_t n = 0;
        loom_status s = run_case(ctx, specs[k], build, d, &got, &n, err, sizeof err);
        free(got);
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

static Suite *suite(void)
{
    Suite *s = suite_create("loops");
    TCase *tc = tcase_create("vulkan");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, reduce_long_columns);
    tcase_add_test(tc, reduce_parts);
    tcase_add_test(tc, conv_forward_refused);
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
