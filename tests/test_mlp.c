/* The seed's 784-64-64-10 MLP forward pass on every device present, against
 * a naive reference in double precision. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { B = 37 };
static const int dims[4] = {784, 64, 64, 10};

static void reference(const float *x, float *const *w, float *const *b, double *out)
{
    double h[B][784], t[B][784];
    for (int i = 0; i < B; i++)
        for (int j = 0; j < 784; j++)
            h[i][j] = x[i * 784 + j];
    for (int l = 0; l < 3; l++) {
        int in = dims[l], o = dims[l + 1];
        for (int i = 0; i < B; i++)
            for (int j = 0; j < o; j++) {
                double s = b[l][j];
                for (int k = 0; k < in; k++)
                    s += h[i][k] * (double)w[l][k * o + j];
                t[i][j] = l < 2 ? (s > 0 ? s : 0) : s;
            }
        for (int i = 0; i < B; i++)
            for (int j = 0; j < o; j++)
                h[i][j] = t[i][j];
    }
    for (int i = 0; i < B; i++) {
        double m = h[i][0], s = 0;
        for (int j = 1; j < 10; j++)
            m = h[i][j] > m ? h[i][j] : m;
        for (int j = 0; j < 10; j++)
            s += exp(h[i][j] - m);
        for (int j = 0; j < 10; j++)
            out[i * 10 + j] = exp(h[i][j] - m) / s;
    }
}

START_TEST(mlp_forward_matches)
{
    static float x[B * 784];
    float *w[3], *b[3];
    tu_fill(x, B * 784, 11, 0, 1);
    for (int l = 0; l < 3; l++) {
        w[l] = malloc((size_t)(dims[l] * dims[l + 1]) * sizeof(float));
        b[l] = malloc((size_t)dims[l + 1] * sizeof(float));
        float lim = sqrtf(6.0f / (float)(dims[l] + dims[l + 1]));
        tu_fill(w[l], (size_t)(dims[l] * dims[l + 1]), 20 + l, -lim, lim);
        tu_fill(b[l], (size_t)dims[l + 1], 30 + l, -0.1f, 0.1f);
    }
    static double ref[B * 10];
    reference(x, w, b, ref);
    loom_ctx *ctx = tu_ctx();
    char specs[16][32];
    int nd = tu_devices(ctx, specs, 16);
    for (int d = 0; d < nd; d++) {
        loom_device *dev = tu_open(ctx, specs[d]);
        loom_state *st;
        loom_graph *g;
        ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
        ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
        int64_t xs[2] = {B, 784};
        loom_tensor h = loom_input(g, "x", LOOM_F32, 2, xs);
        for (int l = 0; l < 3; l++) {
            char kn[16], bn[16];
            snprintf(kn, sizeof kn, "k%d", l);
            snprintf(bn, sizeof bn, "b%d", l);
            int64_t ks[2] = {dims[l], dims[l + 1]}, bs[1] = {dims[l + 1]};
            ck_assert_int_eq(loom_state_write(st, kn, LOOM_F32, 2, ks, w[l]), LOOM_OK);
            ck_assert_int_eq(loom_state_write(st, bn, LOOM_F32, 1, bs, b[l]), LOOM_OK);
            h = loom_add(g, loom_matmul(g, h, loom_param(g, kn, LOOM_F32, 2, ks, 1), 0, 0),
                         loom_param(g, bn, LOOM_F32, 1, bs, 1));
            h = l < 2 ? loom_relu(g, h) : loom_softmax(g, h);
        }
        loom_output(g, h, "probs");
        const char *names[1] = {"x"};
        const void *data[1] = {x};
        size_t bytes[1] = {sizeof x};
        loom_program *p = tu_compile_run(g, dev, st, 1, names, data, bytes);
        float probs[B * 10];
        ck_assert_int_eq(loom_program_read(p, "probs", probs, sizeof probs), LOOM_OK);
        double worst = 0;
        for (int i = 0; i < B * 10; i++) {
            double e = fabs(probs[i] - ref[i]) / fabs(ref[i]);
            worst = e > worst ? e : worst;
        }
        fprintf(stderr, "mlp forward on %s: max relative error %.3g\n", specs[d], worst);
        ck_assert_msg(worst <= 1e-5, "%s: max relative error %g > 1e-5", specs[d], worst);
        loom_program_destroy(p);
        loom_graph_destroy(g);
        loom_state_destroy(st);
        loom_device_close(dev);
    }
    loom_ctx_destroy(ctx);
    for (int l = 0; l < 3; l++)
        free(w[l]), free(b[l]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mlp");
    TCase *tc = tcase_create("forward");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, mlp_forward_matches);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
