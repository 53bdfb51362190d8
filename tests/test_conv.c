/* Convolutional networks' ops against plain definitions written here
 * (direct loops, not the backends' im2col or tiles), on every device; the
 * binding limit of a device refused by name at compile; bad shapes refused
 * by the constructors with messages that name them. The op matrix
 * (test_op_matrix) compares backends with each other; this suite pins what
 * the ops mean. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- plain definitions ---------------------------------------------------- */

typedef struct conv_case {
    int n, c, h, w, oc, kh, kw;
    loom_conv2d_opts o;
} conv_case;

static int out_size(int n, int k, int s, int d, int lo, int hi)
{
    return (n + lo + hi - d * (k - 1) - 1) / s + 1;
}

/* y[n, o, i, j] = b[o] + sum w[o, c, a, b] x[n, g C/G + c, i s - pt + a d, j s - pl + b d] */
static void conv_direct(const conv_case *k, const float *x, const float *w, const float *b, float *y, int oh, int ow)
{
    int g = k->o.groups, cg = k->c / g, ocg = k->oc / g;
    for (int n = 0; n < k->n; n++)
        for (int o = 0; o < k->oc; o++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++) {
                    double s = b ? b[o] : 0;
                    int gi = o / ocg;
                    for (int c = 0; c < cg; c++)
                        for (int a = 0; a < k->kh; a++)
                            for (int bb = 0; bb < k->kw; bb++) {
                                int ih = i * k->o.stride[0] - k->o.pad[0] + a * k->o.dilation[0];
                                int iw = j * k->o.stride[1] - k->o.pad[1] + bb * k->o.dilation[1];
                                if (ih < 0 || ih >= k->h || iw < 0 || iw >= k->w)
                                    continue;
                                s += (double)w[((o * cg + c) * k->kh + a) * k->kw + bb] *
                                     x[((n * k->c + gi * cg + c) * k->h + ih) * k->w + iw];
                            }
                    y[((n * k->oc + o) * oh + i) * ow + j] = (float)s;
                }
}

/* Runs one graph on dev: inputs by name, one output read back. */
static void run_graph(loom_graph *g, loom_device *dev, int nin, const char *const *names, const void *const *data,
                      const size_t *bytes, const char *out, float *y, size_t ybytes)
{
    loom_state *st;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    loom_program *p = tu_compile_run(g, dev, st, nin, names, data, bytes);
    ck_assert_int_eq(loom_program_read(p, out, y, ybytes), LOOM_OK);
    loom_program_destroy(p);
    loom_state_destroy(st);
}

static void check_conv(loom_ctx *ctx, const char *spec, const conv_case *k)
{
    int oh = out_size(k->h, k->kh, k->o.stride[0], k->o.dilation[0], k->o.pad[0], k->o.pad[2]);
    int ow = out_size(k->w, k->kw, k->o.stride[1], k->o.dilation[1], k->o.pad[1], k->o.pad[3]);
    size_t nx = (size_t)k->n * k->c * k->h * k->w, nw = (size_t)k->oc * (k->c / k->o.groups) * k->kh * k->kw;
    size_t ny = (size_t)k->n * k->oc * oh * ow;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc((size_t)k->oc * 4), *y = malloc(ny * 4),
          *want = malloc(ny * 4);
    tu_fill(x, nx, 3, -1, 1);
    tu_fill(w, nw, 4, -1, 1);
    tu_fill(b, (size_t)k->oc, 5, -1, 1);
    conv_direct(k, x, w, b, want, oh, ow);
    loom_device *dev = tu_open(ctx, spec);
    loom_graph *g;
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t xs[4] = {k->n, k->c, k->h, k->w}, ws[4] = {k->oc, k->c / k->o.groups, k->kh, k->kw}, bs[1] = {k->oc};
    loom_tensor t = loom_conv2d(g, loom_input(g, "x", LOOM_F32, 4, xs), loom_input(g, "w", LOOM_F32, 4, ws),
                                loom_input(g, "b", LOOM_F32, 1, bs), &k->o);
    ck_assert_msg(t.id, "%s", loom_graph_error(g));
    ck_assert_int_eq(loom_tensor_dim(g, t, 2), oh);
    ck_assert_int_eq(loom_tensor_dim(g, t, 3), ow);
    loom_output(g, t, "y");
    const char *names[3] = {"x", "w", "b"};
    const void *data[3] = {x, w, b};
    size_t bytes[3] = {nx * 4, nw * 4, (size_t)k->oc * 4};
    run_graph(g, dev, 3, names, data, bytes, "y", y, ny * 4);
    double e = tu_err(y, want, ny, 1e-4, 1e-4);
    ck_assert_msg(e <= 1, "conv2d %dx%dx%dx%d * %dx%d (groups %d) on %s differs from the direct sum: %g", k->n, k->c,
                  k->h, k->w, k->kh, k->kw, k->o.groups, spec, e);
    loom_graph_destroy(g);
    loom_device_close(dev);
    free(x), free(w), free(b), free(y), free(want);
}

START_TEST(conv2d_is_the_direct_sum)
{
    loom_ctx *ctx = tu_ctx();
    char specs[16][32];
    int nd = tu_devices(ctx, specs, 16);
    conv_case cases[6];
    for (int i = 0; i < 6; i++) {
        memset(&cases[i], 0, sizeof cases[i]);
        cases[i].o = loom_conv2d_opts_default();
    }
    cases[0] = (conv_case){2, 3, 7, 9, 4, 3, 3, cases[0].o};
    cases[0].o.pad[0] = cases[0].o.pad[1] = cases[0].o.pad[2] = cases[0].o.pad[3] = 1;
    cases[1] = (conv_case){1, 4, 10, 7, 6, 3, 2, cases[1].o};
    cases[1].o.stride[0] = 2;
    cases[1].o.pad[0] = 2, cases[1].o.pad[3] = 1; /* asymmetric */
    cases[1].o.groups = 2;
    cases[2] = (conv_case){2, 5, 9, 9, 5, 3, 3, cases[2].o};
    cases[2].o.groups = 5; /* depthwise */
    cases[2].o.dilation[0] = cases[2].o.dilation[1] = 2;
    cases[2].o.pad[0] = cases[2].o.pad[1] = cases[2].o.pad[2] = cases[2].o.pad[3] = 2;
    cases[3] = (conv_case){1, 3, 13, 11, 2, 7, 7, cases[3].o};
    cases[3].o.stride[0] = cases[3].o.stride[1] = 2;
    cases[3].o.pad[0] = cases[3].o.pad[1] = cases[3].o.pad[2] = cases[3].o.pad[3] = 3;
    cases[4] = (conv_case){3, 6, 5, 4, 7, 1, 1, cases[4].o}; /* 1x1 */
    cases[5] = (conv_case){1, 33, 4, 5, 17, 3, 3, cases[5].o}; /* no tile fits */
    for (int d = 0; d < nd; d++)
        for (int i = 0; i < 6; i++)
            check_conv(ctx, specs[d], &cases[i]);
    loom_ctx_destroy(ctx);
}
END_TEST

/* "same": ceil(H / s) outputs, the odd padding at the bottom and right
 * (TensorFlow's), so a 4x4 kernel at stride 1 pads 1 before and 2 after. */
START_TEST(same_padding_is_tensorflows)
{
    loom_ctx *ctx = tu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    conv_case k = {1, 1, 5, 6, 1, 4, 4, loom_conv2d_opts_default()};
    k.o.pad[0] = k.o.pad[1] = 1;
    k.o.pad[2] = k.o.pad[3] = 2;
    float x[30], w[16], y[30], want[30];
    tu_fill(x, 30, 1, -1, 1);
    tu_fill(w, 16, 2, -1, 1);
    conv_direct(&k, x, w, NULL, want, 5, 6);
    loom_graph *g;
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t xs[4] = {1, 1, 5, 6}, ws[4] = {1, 1, 4, 4};
    loom_conv2d_opts o = loom_conv2d_opts_default();
    o.same = 1;
    loom_tensor t = loom_conv2d(g, loom_input(g, "x", LOOM_F32, 4, xs), loom_input(g, "w", LOOM_F32, 4, ws), LOOM_NONE,
                                &o);
    loom_output(g, t, "y");
    const char *names[2] = {"x", "w"};
    const void *data[2] = {x, w};
    size_t bytes[2] = {sizeof x, sizeof w};
    run_graph(g, dev, 2, names, data, bytes, "y", y, sizeof y);
    tu_assert_close(y, want, 30, 1e-5, 1e-5);
    loom_graph_destroy(g);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* conv_transpose2d scatters: x[n, c, i s - pt + a d, ...] gets
 * w[c_in, c, a, b] y[n, c_in, i, j]; its output size follows PyTorch's. */
START_TEST(conv_transpose_scatters)
{
    loom_ctx *ctx = tu_ctx();
    char specs[16][32];
    int nd = tu_devices(ctx, specs, 16);
    enum { N = 2, IC = 4, H = 4, W = 5, OCG = 3, G = 2, K = 3, S = 2, P = 1 };
    int oh = (H - 1) * S - 2 * P + K + 1, ow = (W - 1) * S - 2 * P + K + 1; /* output padding 1 */
    int oc = OCG * G;
    float x[N * IC * H * W], w[IC * OCG * K * K], b[OCG * G];
    tu_fill(x, sizeof x / 4, 7, -1, 1);
    tu_fill(w, sizeof w / 4, 8, -1, 1);
    tu_fill(b, sizeof b / 4, 9, -1, 1);
    size_t ny = (size_t)N * oc * oh * ow;
    double *acc = calloc(ny, sizeof *acc);
    float *want = malloc(ny * 4), *y = malloc(ny * 4);
    for (int n = 0; n < N; n++)
        for (int ci = 0; ci < IC; ci++)
            for (int i = 0; i < H; i++)
                for (int j = 0; j < W; j++)
                    for (int c = 0; c < OCG; c++)
                        for (int a = 0; a < K; a++)
                            for (int bb = 0; bb < K; bb++) {
                                int oi = i * S - P + a, oj = j * S - P + bb, co = (ci / (IC / G)) * OCG + c;
                                if (oi < 0 || oi >= oh || oj < 0 || oj >= ow)
                                    continue;
                                acc[((n * oc + co) * oh + oi) * ow + oj] +=
                                    (double)x[((n * IC + ci) * H + i) * W + j] * w[((ci * OCG + c) * K + a) * K + bb];
                            }
    for (size_t i = 0; i < ny; i++)
        want[i] = (float)(acc[i] + b[(i / (size_t)(oh * ow)) % (size_t)oc]);
    for (int d = 0; d < nd; d++) {
        loom_device *dev = tu_open(ctx, specs[d]);
        loom_graph *g;
        ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
        int64_t xs[4] = {N, IC, H, W}, ws[4] = {IC, OCG, K, K}, bs[1] = {oc};
        loom_conv2d_opts o = loom_conv2d_opts_default();
        o.stride[0] = o.stride[1] = S;
        o.pad[0] = o.pad[1] = o.pad[2] = o.pad[3] = P;
        o.groups = G;
        int op[2] = {1, 1};
        loom_tensor t = loom_conv_transpose2d(g, loom_input(g, "x", LOOM_F32, 4, xs), loom_input(g, "w", LOOM_F32, 4, ws),
                                              loom_input(g, "b", LOOM_F32, 1, bs), &o, op);
        ck_assert_msg(t.id, "%s", loom_graph_error(g));
        ck_assert_int_eq(loom_tensor_dim(g, t, 1), oc);
        ck_assert_int_eq(loom_tensor_dim(g, t, 2), oh);
        ck_assert_int_eq(loom_tensor_dim(g, t, 3), ow);
        loom_output(g, t, "y");
        const char *names[3] = {"x", "w", "b"};
        const void *data[3] = {x, w, b};
        size_t bytes[3] = {sizeof x, sizeof w, sizeof b};
        run_graph(g, dev, 3, names, data, bytes, "y", y, ny * 4);
        double e = tu_err(y, want, ny, 1e-4, 1e-4);
        ck_assert_msg(e <= 1, "conv_transpose2d on %s differs from the scatter: %g", specs[d], e);
        loom_graph_destroy(g);
        loom_device_close(dev);
    }
    free(acc), free(want), free(y);
    loom_ctx_destroy(ctx);
}
END_TEST

/* Max ignores the padding (a window over negative values and padding gives
 * the largest value, not 0); average divides by the elements inside, or by
 * the whole window with count_pad. */
START_TEST(pooling_windows)
{
    loom_ctx *ctx = tu_ctx();
    char specs[16][32];
    int nd = tu_devices(ctx, specs, 16);
    enum { H = 5, W = 6 };
    float x[H * W];
    for (int i = 0; i < H * W; i++)
        x[i] = -1.0f - (float)((i * 7) % 11);
    /* 3x3 windows, stride 2, padding 1: 3 x 3 outputs */
    float want_max[9], want_avg[9], want_avgp[9];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            float m = -INFINITY, s = 0;
            int cnt = 0;
            for (int a = -1; a <= 1; a++)
                for (int b = -1; b <= 1; b++) {
                    int r = 2 * i + a, c = 2 * j + b;
                    if (r < 0 || r >= H || c < 0 || c >= W)
                        continue;
                    m = fmaxf(m, x[r * W + c]);
                    s += x[r * W + c];
                    cnt++;
                }
            want_max[i * 3 + j] = m;
            want_avg[i * 3 + j] = s / (float)cnt;
            want_avgp[i * 3 + j] = s / 9.0f;
        }
    for (int d = 0; d < nd; d++) {
        loom_device *dev = tu_open(ctx, specs[d]);
        for (int kind = 0; kind < 3; kind++) {
            loom_graph *g;
            ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
            int64_t xs[4] = {1, 1, H, W};
            loom_pool2d_opts o = {{3, 3}, {2, 2}, {1, 1, 1, 1}, 0, kind == 2};
            loom_tensor in = loom_input(g, "x", LOOM_F32, 4, xs);
            loom_tensor t = kind == 0 ? loom_max_pool2d(g, in, &o) : loom_avg_pool2d(g, in, &o);
            ck_assert_msg(t.id, "%s", loom_graph_error(g));
            loom_output(g, t, "y");
            float y[9];
            const char *names[1] = {"x"};
            const void *data[1] = {x};
            size_t bytes[1] = {sizeof x};
            run_graph(g, dev, 1, names, data, bytes, "y", y, sizeof y);
            tu_assert_close(y, kind == 0 ? want_max : kind == 1 ? want_avg : want_avgp, 9, 1e-5, 1e-5);
            loom_graph_destroy(g);
        }
        loom_device_close(dev);
    }
    loom_ctx_destroy(ctx);
}
END_TEST

/* Batch norm in training: per channel over N, H, W, with the biased
 * variance; the running statistics move by (1 - momentum) towards the
 * batch's; inference uses them. Group norm: per sample and group. */
START_TEST(normalization_formulas)
{
    loom_ctx *ctx = tu_ctx();
    char specs[16][32];
    int nd = tu_devices(ctx, specs, 16);
    enum { N = 3, C = 4, S = 6 };
    float x[N * C * S], ga[C], be[C], run0[2 * C];
    tu_fill(x, N * C * S, 11, -2, 3);
    for (int c = 0; c < C; c++) {
        ga[c] = 0.5f + (float)c;
        be[c] = 0.25f * (float)c - 0.5f;
        run0[c] = 0.1f * (float)c;
        run0[C + c] = 1.0f + 0.5f * (float)c;
    }
    float want[N * C * S], want_run[2 * C], want_inf[N * C * S], want_gn[N * C * S];
    for (int c = 0; c < C; c++) {
        double m = 0, v = 0;
        for (int n = 0; n < N; n++)
            for (int s = 0; s < S; s++)
                m += x[(n * C + c) * S + s];
        m /= N * S;
        for (int n = 0; n < N; n++)
            for (int s = 0; s < S; s++)
                v += (x[(n * C + c) * S + s] - m) * (x[(n * C + c) * S + s] - m);
        v /= N * S;
        for (int n = 0; n < N; n++)
            for (int s = 0; s < S; s++) {
                int i = (n * C + c) * S + s;
                want[i] = (float)((x[i] - m) / sqrt(v + 1e-3) * ga[c] + be[c]);
                want_inf[i] = (float)((x[i] - run0[c]) / sqrt(run0[C + c] + 1e-3) * ga[c] + be[c]);
            }
        want_run[c] = (float)(0.8 * run0[c] + 0.2 * m);
        want_run[C + c] = (float)(0.8 * run0[C + c] + 0.2 * v);
    }
    /* group norm, 2 groups of 2 channels */
    for (int n = 0; n < N; n++)
        for (int gi = 0; gi < 2; gi++) {
            double m = 0, v = 0;
            for (int k = 0; k < 2 * S; k++)
                m += x[(n * C + 2 * gi) * S + k];
            m /= 2 * S;
            for (int k = 0; k < 2 * S; k++) {
                double dd = x[(n * C + 2 * gi) * S + k] - m;
                v += dd * dd;
            }
            v /= 2 * S;
            for (int k = 0; k < 2 * S; k++) {
                int i = (n * C + 2 * gi) * S + k, c = i / S % C;
                want_gn[i] = (float)((x[i] - m) / sqrt(v + 1e-5) * ga[c] + be[c]);
            }
        }
    for (int d = 0; d < nd; d++) {
        loom_device *dev = tu_open(ctx, specs[d]);
        loom_state *st;
        ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
        int64_t xs[4] = {N, C, 2, 3}, cs[1] = {C}, rs[2] = {2, C};
        ck_assert_int_eq(loom_state_write(st, "bn/running", LOOM_F32, 2, rs, run0), LOOM_OK);
        for (int mode = 0; mode < 3; mode++) {
            loom_graph *g;
            ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
            loom_tensor in = loom_input(g, "x", LOOM_F32, 4, xs), gt = loom_input(g, "gamma", LOOM_F32, 1, cs),
                        bt = loom_input(g, "beta", LOOM_F32, 1, cs);
            loom_tensor run = loom_param(g, "bn/running", LOOM_F32, 2, rs, 0);
            loom_tensor y = mode == 2 ? loom_group_norm(g, in, gt, bt, 2, 1e-5f)
                                      : loom_batch_norm(g, in, gt, bt, run, 0.8f, 1e-3f, mode == 0);
            ck_assert_msg(y.id, "%s", loom_graph_error(g));
            loom_output(g, y, "y");
            const char *names[3] = {"x", "gamma", "beta"};
            const void *data[3] = {x, ga, be};
            size_t bytes[3] = {sizeof x, sizeof ga, sizeof be};
            loom_program *p = tu_compile_run(g, dev, st, 3, names, data, bytes);
            float got[N * C * S];
            ck_assert_int_eq(loom_program_read(p, "y", got, sizeof got), LOOM_OK);
            const float *w = mode == 0 ? want : mode == 1 ? want_inf : want_gn;
            double e = tu_err(got, w, N * C * S, 1e-4, 1e-4);
            ck_assert_msg(e <= 1, "%s on %s: %g", mode == 2 ? "group norm" : mode ? "batch norm (inference)"
                                                                          : "batch norm (training)", specs[d], e);
            if (mode == 0) {
                float r[2 * C];
                ck_assert_int_eq(loom_state_read(st, "bn/running", r, sizeof r), LOOM_OK);
                tu_assert_close(r, want_run, 2 * C, 1e-5, 1e-4);
                /* back to the start, for inference */
                ck_assert_int_eq(loom_state_write(st, "bn/running", LOOM_F32, 2, rs, run0), LOOM_OK);
            }
            loom_program_destroy(p);
            loom_graph_destroy(g);
        }
        loom_state_destroy(st);
        loom_device_close(dev);
    }
    loom_ctx_destroy(ctx);
}
END_TEST

/* slice, pad (constant and reflect) and concat, element by element. */
START_TEST(windows_and_concat)
{
    loom_ctx *ctx = tu_ctx();
    char specs[16][32];
    int nd = tu_devices(ctx, specs, 16);
    float x[4 * 5];
    for (int i = 0; i < 20; i++)
        x[i] = (float)i;
    /* x[1:4:2, -4::3] = rows 1, 3 and columns 1, 4 */
    const float want_slice[4] = {6, 9, 16, 19};
    /* reflect row 0 by 2 before and 1 after: 2 1 0 1 2 3 4 3 */
    const float want_reflect[8] = {2, 1, 0, 1, 2, 3, 4, 3};
    for (int d = 0; d < nd; d++) {
        loom_device *dev = tu_open(ctx, specs[d]);
        loom_graph *g;
        ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
        int64_t xs[2] = {4, 5};
        loom_tensor in = loom_input(g, "x", LOOM_F32, 2, xs);
        int64_t st[2] = {1, -4}, sp[2] = {4, 5}, se[2] = {2, 3};
        loom_output(g, loom_slice(g, in, st, sp, se), "slice");
        int64_t r0[2] = {0, 0}, r1[2] = {1, 5}, lo[2] = {0, 2}, hi[2] = {0, 1};
        loom_tensor row = loom_slice(g, in, r0, r1, NULL);
        loom_output(g, loom_pad(g, row, lo, hi, LOOM_PAD_REFLECT, 0), "reflect");
        int64_t lc[2] = {1, 0}, hc[2] = {0, 0};
        loom_output(g, loom_pad(g, row, lc, hc, LOOM_PAD_CONSTANT, -7), "const");
        loom_tensor parts[2] = {row, loom_scale(g, row, 2)};
        loom_output(g, loom_concat(g, 2, parts, 0), "cat");
        ck_assert_msg(loom_graph_status(g) == LOOM_OK, "%s", loom_graph_error(g));
        loom_state *s;
        ck_assert_int_eq(loom_state_create(dev, &s), LOOM_OK);
        const char *names[1] = {"x"};
        const void *data[1] = {x};
        size_t bytes[1] = {sizeof x};
        loom_program *p = tu_compile_run(g, dev, s, 1, names, data, bytes);
        float y[10];
        ck_assert_int_eq(loom_program_read(p, "slice", y, 16), LOOM_OK);
        tu_assert_close(y, want_slice, 4, 0, 0);
        ck_assert_int_eq(loom_program_read(p, "reflect", y, 32), LOOM_OK);
        tu_assert_close(y, want_reflect, 8, 0, 0);
        ck_assert_int_eq(loom_program_read(p, "const", y, 40), LOOM_OK);
        for (int i = 0; i < 10; i++)
            ck_assert(y[i] == (i < 5 ? -7.0f : (float)(i - 5)));
        ck_assert_int_eq(loom_program_read(p, "cat", y, 40), LOOM_OK);
        for (int i = 0; i < 10; i++)
            ck_assert(y[i] == (i < 5 ? (float)i : 2.0f * (float)(i - 5)));
        loom_program_destroy(p);
        loom_state_destroy(s);
        loom_graph_destroy(g);
        loom_device_close(dev);
    }
    loom_ctx_destroy(ctx);
}
END_TEST

/* Shapes that do not fit are refused where they are built, naming them. */
START_TEST(bad_shapes_are_named)
{
    loom_ctx *ctx = tu_ctx();
    struct {
        int64_t xs[4], ws[4];
        int groups, stride;
        const char *want;
    } bad[] = {
        {{1, 3, 8, 8}, {4, 2, 3, 3}, 1, 1, "do not fit"},      /* C / groups != w's second dim */
        {{1, 4, 8, 8}, {3, 2, 3, 3}, 2, 1, "do not fit"},      /* OC not divisible by groups */
        {{1, 3, 2, 2}, {4, 3, 3, 3}, 1, 1, "does not fit input"}, /* kernel larger than the input */
        {{1, 3, 8, 8}, {4, 3, 3, 3}, 1, -1, "stride"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        loom_graph *g;
        ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
        loom_conv2d_opts o = loom_conv2d_opts_default();
        o.groups = bad[i].groups;
        o.stride[0] = bad[i].stride;
        loom_tensor t = loom_conv2d(g, loom_input(g, "x", LOOM_F32, 4, bad[i].xs), loom_input(g, "w", LOOM_F32, 4, bad[i].ws),
                                    LOOM_NONE, &o);
        ck_assert_int_eq(t.id, 0);
        ck_assert_msg(strstr(loom_graph_error(g), bad[i].want) && strstr(loom_graph_error(g), "conv2d"),
                      "case %zu: %s", i, loom_graph_error(g));
        loom_graph_destroy(g);
    }
    /* a pooling window over its padding, a reflection wider than the dim */
    loom_graph *g;
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t xs[4] = {1, 2, 5, 5};
    loom_tensor x = loom_input(g, "x", LOOM_F32, 4, xs);
    loom_pool2d_opts po = {{2, 2}, {2, 2}, {2, 0, 0, 0}, 0, 0};
    ck_assert_int_eq(loom_max_pool2d(g, x, &po).id, 0);
    ck_assert_ptr_nonnull(strstr(loom_graph_error(g), "smaller than the window"));
    loom_graph_destroy(g);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    x = loom_input(g, "x", LOOM_F32, 4, xs);
    int64_t lo[4] = {0, 0, 5, 0}, hi[4] = {0, 0, 0, 0};
    ck_assert_int_eq(loom_pad(g, x, lo, hi, LOOM_PAD_REFLECT, 0).id, 0);
    ck_assert_ptr_nonnull(strstr(loom_graph_error(g), "reflect"));
    loom_graph_destroy(g);
    loom_ctx_destroy(ctx);
}
END_TEST

/* A convolution whose output is larger than the largest binding of a
 * device (lavapipe: 128 MiB) is refused when it is compiled, with
 * LOOM_E_UNSUPPORTED naming the tensor and the limit, before the state is
 * touched. (The op does not split it.) */
START_TEST(binding_limit_is_refused_by_name)
{
    loom_ctx *ctx = tu_ctx();
    char specs[16][32];
    int nd = tu_devices(ctx, specs, 16), checked = 0;
    for (int d = 0; d < nd; d++) {
        loom_device *dev = tu_open(ctx, specs[d]);
        uint64_t limit = loom_device_get(dev)->max_binding_bytes;
        if (!limit || limit > ((uint64_t)1 << 31)) {
            loom_device_close(dev);
            continue; /* no limit a test can reach without GiBs */
        }
        /* output [1, 8, H, H] f32 just past the limit; the input is small */
        int64_t h = 64;
        while ((uint64_t)(8 * h * h * 4) <= limit)
            h *= 2;
        int64_t xs[4] = {1, 1, h, h}, ws[4] = {8, 1, 1, 1};
        loom_graph *g;
        loom_state *st;
        ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
        ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
        loom_tensor y = loom_conv2d(g, loom_input(g, "x", LOOM_F32, 4, xs), loom_param(g, "w", LOOM_F32, 4, ws, 1),
                                    LOOM_NONE, NULL);
        loom_output(g, y, "big_activation");
        loom_program *p = NULL;
        ck_assert_int_eq(loom_compile(g, dev, st, NULL, &p), LOOM_E_UNSUPPORTED);
        const char *msg = loom_last_error(ctx);
        char lim[32];
        snprintf(lim, sizeof lim, "%llu bytes", (unsigned long long)limit);
        ck_assert_msg(strstr(msg, "big_activation") && strstr(msg, lim) && strstr(msg, specs[d]), "%s", msg);
        ck_assert_int_eq(loom_state_count(st), 0);
        loom_state_destroy(st);
        loom_graph_destroy(g);
        loom_device_close(dev);
        checked++;
    }
    if (!checked)
        fprintf(stderr, "conv: no device with a binding limit below 2 GiB, binding test skipped\n");
    loom_ctx_destroy(ctx);
}
END_TEST


/* conv2d forward and both gradients on one device with a given tuning
 * (NULL: the device's own); y, dx, dw, db into out (n each). */
typedef struct grads {
    float *v[4];
    size_t n[4];
} grads;

static grads conv_grads(loom_ctx *ctx, const char *spec, const char *tuning, const conv_case *k, loom_dtype dt)
{
    loom_device *dev = tu_open(ctx, spec);
    if (tuning)
        ck_assert_msg(loom_device_set_tuning(dev, tuning) == LOOM_OK, "%s", loom_last_error(ctx));
    loom_graph *g;
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t xs[4] = {k->n, k->c, k->h, k->w}, ws[4] = {k->oc, k->c / k->o.groups, k->kh, k->kw}, bs[1] = {k->oc};
    loom_tensor x = loom_input(g, "x", LOOM_F32, 4, xs), w = loom_input(g, "w", LOOM_F32, 4, ws),
                b = loom_input(g, "b", LOOM_F32, 1, bs);
    loom_tensor y = loom_cast(g, loom_conv2d(g, loom_cast(g, x, dt), loom_cast(g, w, dt), loom_cast(g, b, dt), &k->o),
                              LOOM_F32);
    ck_assert_msg(y.id, "%s", loom_graph_error(g));
    int64_t ys[4];
    size_t ny = 1;
    for (int i = 0; i < 4; i++)
        ny *= (size_t)(ys[i] = loom_tensor_dim(g, y, i));
    float *wt = malloc(ny * 4);
    tu_fill(wt, ny, 21, -1, 1);
    loom_tensor loss = loom_sum_all(g, loom_mul(g, y, loom_constant(g, "wt", LOOM_F32, 4, ys, wt)));
    free(wt);
    loom_tensor wrt[3] = {x, w, b};
    ck_assert_int_eq(loom_backward(g, loss, wrt, 3), LOOM_OK);
    loom_output(g, y, "y");
    loom_output(g, loom_grad(g, x), "dx");
    loom_output(g, loom_grad(g, w), "dw");
    loom_output(g, loom_grad(g, b), "db");
    grads r;
    r.n[0] = ny;
    r.n[1] = (size_t)(xs[0] * xs[1] * xs[2] * xs[3]);
    r.n[2] = (size_t)(ws[0] * ws[1] * ws[2] * ws[3]);
    r.n[3] = (size_t)k->oc;
    float *in[3];
    for (int i = 0; i < 3; i++) {
        in[i] = malloc(r.n[i + 1] * 4);
        tu_fill(in[i], r.n[i + 1], 31u + (uint32_t)i, -1, 1);
    }
    const char *names[3] = {"x", "w", "b"};
    const void *data[3] = {in[0], in[1], in[2]};
    size_t bytes[3] = {r.n[1] * 4, r.n[2] * 4, r.n[3] * 4};
    loom_state *st;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    loom_program *p = tu_compile_run(g, dev, st, 3, names, data, bytes);
    static const char *const outs[4] = {"y", "dx", "dw", "db"};
    for (int i = 0; i < 4; i++) {
        r.v[i] = malloc(r.n[i] * 4);
        ck_assert_int_eq(loom_program_read(p, outs[i], r.v[i], r.n[i] * 4), LOOM_OK);
    }
    ck_assert_uint_eq(loom_validation_errors(ctx), 0);
    for (int i = 0; i < 3; i++)
        free(in[i]);
    loom_program_destroy(p);
    loom_state_destroy(st);
    loom_graph_destroy(g);
    loom_device_close(dev);
    return r;
}

/* Every Vulkan convolution kernel, whichever a device would choose: the
 * shared-memory tiles (GPUs), the register blocks through storage buffers
 * and through texel buffers (CPU drivers), forward and both gradients, in
 * f32 and f16, against the CPU. */
START_TEST(vulkan_conv_variants)
{
    loom_ctx *ctx = tu_ctx();
    char specs[16][32];
    int nd = tu_devices(ctx, specs, 16);
    static const char *const tunings[3] = {"{\"gemm_read\": \"storage\", \"slow_barriers\": false}",
                                           "{\"gemm_read\": \"storage\", \"slow_barriers\": true}",
                                           "{\"gemm_read\": \"texel\", \"slow_barriers\": true}"};
    conv_case cases[7];
    for (int i = 0; i < 7; i++)
        cases[i].o = loom_conv2d_opts_default();
    cases[0] = (conv_case){2, 5, 9, 7, 70, 3, 3, cases[0].o}; /* 70 output channels: two row tiles */
    cases[0].o.stride[0] = cases[0].o.stride[1] = 2;
    cases[0].o.pad[0] = cases[0].o.pad[1] = cases[0].o.pad[2] = cases[0].o.pad[3] = 1;
    cases[1] = (conv_case){1, 6, 8, 9, 6, 3, 2, cases[1].o};
    cases[1].o.groups = 6;
    cases[1].o.dilation[0] = 2;
    cases[1].o.pad[0] = 2, cases[1].o.pad[2] = 1;
    cases[2] = (conv_case){3, 20, 5, 6, 9, 1, 1, cases[2].o};
    cases[3] = (conv_case){1, 3, 11, 10, 4, 7, 5, cases[3].o};
    cases[3].o.stride[0] = 2, cases[3].o.stride[1] = 3;
    cases[3].o.pad[0] = cases[3].o.pad[1] = 3, cases[3].o.pad[2] = 2;
    /* the weights' sum runs over 2 x 200 x 200 outputs: past the 65535
     * loop iterations after which llvmpipe ends an invocation's loops */
    cases[4] = (conv_case){2, 1, 200, 200, 4, 3, 3, cases[4].o};
    cases[4].o.pad[0] = cases[4].o.pad[1] = cases[4].o.pad[2] = cases[4].o.pad[3] = 1;
    /* rows of 7 outputs: each costs ow + 2 loop passes, so the parts of the
     * weights' sum must be sized by 9 per row, not 8 (1400 x 7 rows) */
    cases[5] = (conv_case){1400, 1, 7, 7, 4, 3, 3, cases[5].o};
    cases[5].o.pad[0] = cases[5].o.pad[1] = cases[5].o.pad[2] = cases[5].o.pad[3] = 1;
    /* the bias gradient sums 100 x 28 x 28 = 78400 outputs for each of 16
     * channels: past the budget of the one-invocation-per-output reduction */
    cases[6] = (conv_case){100, 4, 28, 28, 16, 3, 3, cases[6].o};
    cases[6].o.pad[0] = cases[6].o.pad[1] = cases[6].o.pad[2] = cases[6].o.pad[3] = 1;
    int ran = 0;
    for (int d = 0; d < nd; d++) {
        if (strncmp(specs[d], "vulkan:", 7))
            continue;
        for (int c = 0; c < 7; c++) {
            grads ref = conv_grads(ctx, "cpu", NULL, &cases[c], LOOM_F32);
            for (int t = 0; t < 3; t++)
                for (int h = 0; h < 2; h++) {
                    loom_dtype dt = h ? LOOM_F16 : LOOM_F32;
                    if (t == 2 && h)
                        continue; /* texel reads are f32 */
                    grads r = conv_grads(ctx, specs[d], tunings[t], &cases[c], dt);
                    for (int i = 0; i < 4; i++) {
                        double big = 0;
                        for (size_t j = 0; j < ref.n[i]; j++)
                            big = fmax(big, fabs(ref.v[i][j]));
                        /* f32: sums of up to 80000 products (case 4) round at 1e-5 of their size */
                        double tol = h ? 4e-3 * (big + 1) : 1e-4 * (1 + 0.1 * big);
                        double e = tu_err(r.v[i], ref.v[i], r.n[i], tol, h ? 1e-2 : 1e-4);
                        ck_assert_msg(e <= 1, "case %d on %s with %s in %s: %s differs from the CPU: %g", c, specs[d],
                                      tunings[t], loom_dtype_name(dt), (const char *[]){"y", "dx", "dw", "db"}[i], e);
                        free(r.v[i]);
                    }
                    ran++;
                }
            for (int i = 0; i < 4; i++)
                free(ref.v[i]);
        }
    }
    if (!ran)
        fprintf(stderr, "conv: no Vulkan device, variant test skipped\n");
    loom_ctx_destroy(ctx);
}
END_TEST

/* The CPU's two convolution paths, oneDNN's (where the library has it)
 * and the own im2col + OpenBLAS (LOOM_CPU_CONV=own), forward and both
 * gradients, agree: odd geometries, and a stride whose last window stops
 * short of the edge (oneDNN's trailing padding -1). */
START_TEST(cpu_conv_paths_agree)
{
    loom_ctx *ctx = tu_ctx();
    conv_case cases[4];
    for (int i = 0; i < 4; i++)
        cases[i].o = loom_conv2d_opts_default();
    cases[0] = (conv_case){2, 4, 28, 28, 8, 3, 3, cases[0].o};
    cases[0].o.stride[0] = cases[0].o.stride[1] = 2;
    cases[1] = (conv_case){1, 6, 8, 9, 6, 3, 2, cases[1].o};
    cases[1].o.groups = 6;
    cases[1].o.dilation[0] = 2;
    cases[1].o.pad[0] = 2, cases[1].o.pad[2] = 1;
    cases[2] = (conv_case){3, 32, 14, 14, 64, 3, 3, cases[2].o}; /* the CNN's second layer */
    cases[2].o.pad[0] = cases[2].o.pad[1] = cases[2].o.pad[2] = cases[2].o.pad[3] = 1;
    cases[3] = (conv_case){1, 3, 11, 10, 4, 7, 5, cases[3].o};
    cases[3].o.stride[0] = 2, cases[3].o.stride[1] = 3;
    cases[3].o.pad[0] = cases[3].o.pad[1] = 3, cases[3].o.pad[2] = 2;
    for (int c = 0; c < 4; c++) {
        setenv("LOOM_CPU_CONV", "own", 1);
        grads own = conv_grads(ctx, "cpu", NULL, &cases[c], LOOM_F32);
        unsetenv("LOOM_CPU_CONV");
        grads lib = conv_grads(ctx, "cpu", NULL, &cases[c], LOOM_F32);
        for (int i = 0; i < 4; i++) {
            double e = tu_err(lib.v[i], own.v[i], own.n[i], 1e-4, 1e-4);
            ck_assert_msg(e <= 1, "case %d: the CPU's %s differs between its convolution paths: %g", c,
                          (const char *[]){"y", "dx", "dw", "db"}[i], e);
            free(own.v[i]);
            free(lib.v[i]);
        }
    }
    loom_ctx_destroy(ctx);
}
END_TEST

/* Where loom was built with oneDNN (LOOM_TEST_ONEDNN from the build), the
 * CPU opens it at run time with its OpenMP runtime made passive, and gives
 * the process its environment back as it was. */
START_TEST(cpu_opens_onednn)
{
    if (!getenv("LOOM_TEST_ONEDNN"))
        return;
    unsetenv("OMP_WAIT_POLICY");
    loom_ctx *ctx = tu_ctx();
    int n = loom_device_count(ctx), found = 0;
    for (int i = 0; i < n; i++) {
        loom_device_info info;
        ck_assert_int_eq(loom_device_get_info(ctx, i, &info), LOOM_OK);
        if (strcmp(info.spec, "cpu") != 0)
            continue;
        found = 1;
        ck_assert_msg(strstr(info.driver, "oneDNN") != NULL, "the CPU's driver line names no oneDNN: %s", info.driver);
    }
    ck_assert_msg(found, "no cpu device");
    ck_assert_msg(getenv("OMP_WAIT_POLICY") == NULL, "OMP_WAIT_POLICY left set: %s", getenv("OMP_WAIT_POLICY"));
    loom_ctx_destroy(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("conv");
    TCase *tc = tcase_create("definitions");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, conv2d_is_the_direct_sum);
    tcase_add_test(tc, cpu_conv_paths_agree);
    tcase_add_test(tc, cpu_opens_onednn);
    tcase_add_test(tc, same_padding_is_tensorflows);
    tcase_add_test(tc, conv_transpose_scatters);
    tcase_add_test(tc, pooling_windows);
    tcase_add_test(tc, normalization_formulas);
    tcase_add_test(tc, windows_and_concat);
    tcase_add_test(tc, bad_shapes_are_named);
    tcase_add_test(tc, binding_limit_is_refused_by_name);
    suite_add_tcase(s, tc);
    tc = tcase_create("vulkan");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, vulkan_conv_variants);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
