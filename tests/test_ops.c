/* Every op on the CPU backend: small hand-checked cases with exact answers
 * and random cases against naive loops written here. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct fixture {
    loom_ctx *ctx;
    loom_device *dev;
    loom_state *st;
    loom_graph *g;
} fixture;

static fixture fx_open(void)
{
    fixture f;
    f.ctx = tu_ctx();
    f.dev = tu_open(f.ctx, "cpu");
    ck_assert_int_eq(loom_state_create(f.dev, &f.st), LOOM_OK);
    ck_assert_int_eq(loom_graph_create(f.ctx, &f.g), LOOM_OK);
    return f;
}

static void fx_close(fixture *f)
{
    loom_graph_destroy(f->g);
    loom_state_destroy(f->st);
    loom_device_close(f->dev);
    loom_ctx_destroy(f->ctx);
}

/* Compiles f.g with output "y", runs with up to two inputs, reads y. */
static void run(fixture *f, loom_tensor y, const void *a, size_t na, const void *b, size_t nb, void *out, size_t nout)
{
    ck_assert_msg(y.id != 0, "build: %s", loom_graph_error(f->g));
    ck_assert_int_eq(loom_output(f->g, y, "y"), LOOM_OK);
    const char *names[2] = {"a", "b"};
    const void *data[2] = {a, b};
    size_t bytes[2] = {na, nb};
    loom_program *p = tu_compile_run(f->g, f->dev, f->st, b ? 2 : 1, names, data, bytes);
    ck_assert_int_eq(loom_program_read(p, "y", out, nout), LOOM_OK);
    loom_program_destroy(p);
}

START_TEST(matmul_exact)
{
    /* [[1,2],[3,4]] x [[5,6],[7,8]] = [[19,22],[43,50]] */
    float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8}, y[4];
    static const float want[4][4] = {
        {19, 22, 43, 50}, /* a b */
        {26, 30, 38, 44}, /* a^T b */
        {17, 23, 39, 53}, /* a b^T */
        {23, 31, 34, 46}, /* a^T b^T */
    };
    for (int t = 0; t < 4; t++) {
        fixture f = fx_open();
        int64_t s[2] = {2, 2};
        loom_tensor A = loom_input(f.g, "a", LOOM_F32, 2, s), B = loom_input(f.g, "b", LOOM_F32, 2, s);
        run(&f, loom_matmul(f.g, A, B, t & 1, t >> 1), a, sizeof a, b, sizeof b, y, sizeof y);
        for (int i = 0; i < 4; i++)
            ck_assert_msg(y[i] == want[t][i], "transpose %d: y[%d] = %g, want %g", t, i, (double)y[i],
                          (double)want[t][i]);
        fx_close(&f);
    }
}
END_TEST

START_TEST(matmul_random)
{
    const int M = 37, K = 53, N = 29;
    for (int t = 0; t < 4; t++) {
        int ta = t & 1, tb = t >> 1;
        float *a = malloc(M * K * 4), *b = malloc(K * N * 4), *y = malloc(M * N * 4), *ref = malloc(M * N * 4);
        tu_fill(a, M * K, 1, -1, 1);
        tu_fill(b, K * N, 2, -1, 1);
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double s = 0;
                for (int k = 0; k < K; k++)
                    s += (double)(ta ? a[k * M + i] : a[i * K + k]) * (tb ? b[j * K + k] : b[k * N + j]);
                ref[i * N + j] = (float)s;
            }
        fixture f = fx_open();
        int64_t sa[2] = {ta ? K : M, ta ? M : K}, sb[2] = {tb ? N : K, tb ? K : N};
        loom_tensor A = loom_input(f.g, "a", LOOM_F32, 2, sa), B = loom_input(f.g, "b", LOOM_F32, 2, sb);
        run(&f, loom_matmul(f.g, A, B, ta, tb), a, M * K * 4, b, K * N * 4, y, M * N * 4);
        tu_assert_close(y, ref, (size_t)(M * N), 1e-5, 1e-5);
        fx_close(&f);
        free(a), free(b), free(y), free(ref);
    }
}
END_TEST

START_TEST(binary_broadcast)
{
    /* [2,3] op [3] and [2,1] */
    float a[6] = {1, 2, 3, 4, 5, 6}, b[3] = {10, 20, 40}, c[2] = {2, 4}, y[6];
    fixture f = fx_open();
    int64_t sa[2] = {2, 3}, sb[1] = {3};
    run(&f, loom_add(f.g, loom_input(f.g, "a", LOOM_F32, 2, sa), loom_input(f.g, "b", LOOM_F32, 1, sb)), a,
        sizeof a, b, sizeof b, y, sizeof y);
    float w1[6] = {11, 22, 43, 14, 25, 46};
    ck_assert(!memcmp(y, w1, sizeof y));
    fx_close(&f);
    f = fx_open();
    int64_t sc[2] = {2, 1};
    run(&f, loom_div(f.g, loom_input(f.g, "a", LOOM_F32, 2, sa), loom_input(f.g, "b", LOOM_F32, 2, sc)), a,
        sizeof a, c, sizeof c, y, sizeof y);
    float w2[6] = {0.5f, 1, 1.5f, 1, 1.25f, 1.5f};
    ck_assert(!memcmp(y, w2, sizeof y));
    fx_close(&f);
    f = fx_open();
    run(&f, loom_sub(f.g, loom_input(f.g, "a", LOOM_F32, 2, sa), loom_input(f.g, "b", LOOM_F32, 2, sc)), a,
        sizeof a, c, sizeof c, y, sizeof y);
    float w3[6] = {-1, 0, 1, 0, 1, 2};
    ck_assert(!memcmp(y, w3, sizeof y));
    fx_close(&f);
    /* random 4-D against a naive loop: [2,3,4,5] * [3,1,5] */
    float *x = malloc(120 * 4), *z = malloc(15 * 4), *o = malloc(120 * 4), *ref = malloc(120 * 4);
    tu_fill(x, 120, 3, -2, 2);
    tu_fill(z, 15, 4, -2, 2);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 4; k++)
                for (int l = 0; l < 5; l++)
                    ref[((i * 3 + j) * 4 + k) * 5 + l] = x[((i * 3 + j) * 4 + k) * 5 + l] * z[j * 5 + l];
    f = fx_open();
    int64_t s4[4] = {2, 3, 4, 5}, s3[3] = {3, 1, 5};
    run(&f, loom_mul(f.g, loom_input(f.g, "a", LOOM_F32, 4, s4), loom_input(f.g, "b", LOOM_F32, 3, s3)), x, 480,
        z, 60, o, 480);
    ck_assert(!memcmp(o, ref, 480));
    fx_close(&f);
    free(x), free(z), free(o), free(ref);
}
END_TEST

START_TEST(unary_ops)
{
    float a[5] = {-2, -0.5f, 0, 0.5f, 2}, y[5];
    struct {
        loom_tensor (*fn)(loom_graph *, loom_tensor);
        double (*ref)(double);
        const char *name;
    } ops[] = {{loom_sigmoid, NULL, "sigmoid"}, {loom_tanh, tanh, "tanh"}, {loom_exp, exp, "exp"},
               {loom_relu, NULL, "relu"},       {loom_gelu, NULL, "gelu"}, {loom_square, NULL, "square"}};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        fixture f = fx_open();
        int64_t s[1] = {5};
        run(&f, ops[k].fn(f.g, loom_input(f.g, "a", LOOM_F32, 1, s)), a, sizeof a, NULL, 0, y, sizeof y);
        for (int i = 0; i < 5; i++) {
            double x = a[i], want;
            if (!strcmp(ops[k].name, "sigmoid"))
                want = 1 / (1 + exp(-x));
            else if (!strcmp(ops[k].name, "relu"))
                want = x > 0 ? x : 0;
            else if (!strcmp(ops[k].name, "gelu"))
                want = 0.5 * x * (1 + erf(x / sqrt(2.0)));
            else if (!strcmp(ops[k].name, "square"))
                want = x * x;
            else
                want = ops[k].ref(x);
            ck_assert_msg(fabs(y[i] - want) <= 1e-6 * (1 + fabs(want)), "%s(%g) = %g, want %g", ops[k].name, x,
                          (double)y[i], want);
        }
        fx_close(&f);
    }
    fixture f = fx_open();
    float p[3] = {1, 2.718281828f, 0.5f}, ly[3];
    int64_t s3[1] = {3};
    run(&f, loom_log(f.g, loom_input(f.g, "a", LOOM_F32, 1, s3)), p, sizeof p, NULL, 0, ly, sizeof ly);
    ck_assert(fabs(ly[0]) < 1e-7 && fabs(ly[1] - 1) < 1e-6 && fabs(ly[2] - log(0.5)) < 1e-6);
    fx_close(&f);
    f = fx_open();
    run(&f, loom_scale(f.g, loom_input(f.g, "a", LOOM_F32, 1, s3), -2.5f), p, sizeof p, NULL, 0, ly, sizeof ly);
    ck_assert(ly[0] == -2.5f && ly[2] == -1.25f);
    fx_close(&f);
}
END_TEST

START_TEST(softmax_family)
{
    /* softmax([0, ln 2, ln 5]) = [1/8, 2/8, 5/8] */
    float a[6] = {0, 0.69314718f, 1.60943791f, 3, 3, 3}, y[6];
    fixture f = fx_open();
    int64_t s[2] = {2, 3};
    run(&f, loom_softmax(f.g, loom_input(f.g, "a", LOOM_F32, 2, s)), a, sizeof a, NULL, 0, y, sizeof y);
    float want[6] = {0.125f, 0.25f, 0.625f, 1 / 3.f, 1 / 3.f, 1 / 3.f};
    tu_assert_close(y, want, 6, 1e-7, 1e-6);
    fx_close(&f);
    f = fx_open();
    run(&f, loom_log_softmax(f.g, loom_input(f.g, "a", LOOM_F32, 2, s)), a, sizeof a, NULL, 0, y, sizeof y);
    for (int i = 0; i < 6; i++)
        want[i] = logf(want[i]);
    tu_assert_close(y, want, 6, 1e-6, 1e-6);
    fx_close(&f);
    /* large logits do not overflow */
    float big[3] = {1000, 1001, 1002}, yb[3];
    f = fx_open();
    int64_t s3[2] = {1, 3};
    run(&f, loom_softmax(f.g, loom_input(f.g, "a", LOOM_F32, 2, s3)), big, sizeof big, NULL, 0, yb, sizeof yb);
    ck_assert(!isnan(yb[0]) && fabs(yb[0] + yb[1] + yb[2] - 1) < 1e-6);
    fx_close(&f);
}
END_TEST

START_TEST(reductions)
{
    float a[6] = {1, 2, 3, 4, 5, 6}, y[6];
    int64_t s[2] = {2, 3};
    fixture f = fx_open();
    run(&f, loom_sum(f.g, loom_input(f.g, "a", LOOM_F32, 2, s), 0, 0), a, sizeof a, NULL, 0, y, 12);
    ck_assert(y[0] == 5 && y[1] == 7 && y[2] == 9);
    fx_close(&f);
    f = fx_open();
    loom_tensor m = loom_mean(f.g, loom_input(f.g, "a", LOOM_F32, 2, s), -1, 1);
    ck_assert_int_eq(loom_tensor_ndim(f.g, m), 2);
    ck_assert_int_eq(loom_tensor_dim(f.g, m, 1), 1);
    run(&f, m, a, sizeof a, NULL, 0, y, 8);
    ck_assert(y[0] == 2 && y[1] == 5);
    fx_close(&f);
    f = fx_open();
    run(&f, loom_sum_all(f.g, loom_input(f.g, "a", LOOM_F32, 2, s)), a, sizeof a, NULL, 0, y, 4);
    ck_assert(y[0] == 21);
    fx_close(&f);
    /* argmax, first on ties */
    float b[6] = {3, 9, 9, -1, -5, -2};
    int32_t idx[3];
    f = fx_open();
    run(&f, loom_argmax(f.g, loom_input(f.g, "a", LOOM_F32, 2, s), 1), b, sizeof b, NULL, 0, idx, 8);
    ck_assert(idx[0] == 1 && idx[1] == 0);
    fx_close(&f);
    f = fx_open();
    run(&f, loom_argmax(f.g, loom_input(f.g, "a", LOOM_F32, 2, s), 0), b, sizeof b, NULL, 0, idx, 12);
    ck_assert(idx[0] == 0 && idx[1] == 0 && idx[2] == 0);
    fx_close(&f);
    /* random 3-D sum over the middle axis against a loop */
    float *x = malloc(4 * 7 * 5 * 4), *o = malloc(20 * 4), *ref = calloc(20, 4);
    tu_fill(x, 140, 9, -1, 1);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 7; j++)
            for (int k = 0; k < 5; k++)
                ref[i * 5 + k] += x[(i * 7 + j) * 5 + k];
    f = fx_open();
    int64_t s3[3] = {4, 7, 5};
    run(&f, loom_sum(f.g, loom_input(f.g, "a", LOOM_F32, 3, s3), 1, 0), x, 560, NULL, 0, o, 80);
    tu_assert_close(o, ref, 20, 1e-6, 1e-6);
    fx_close(&f);
    free(x), free(o), free(ref);
}
END_TEST

START_TEST(shape_ops)
{
    float a[6] = {1, 2, 3, 4, 5, 6}, y[6];
    int64_t s[2] = {2, 3};
    fixture f = fx_open();
    int64_t r[2] = {3, -1};
    loom_tensor t = loom_reshape(f.g, loom_input(f.g, "a", LOOM_F32, 2, s), 2, r);
    ck_assert_int_eq(loom_tensor_dim(f.g, t, 1), 2);
    run(&f, t, a, sizeof a, NULL, 0, y, sizeof y);
    ck_assert(!memcmp(a, y, sizeof y));
    fx_close(&f);
    f = fx_open();
    int perm[2] = {1, 0};
    run(&f, loom_transpose(f.g, loom_input(f.g, "a", LOOM_F32, 2, s), perm), a, sizeof a, NULL, 0, y, sizeof y);
    float want[6] = {1, 4, 2, 5, 3, 6};
    ck_assert(!memcmp(y, want, sizeof y));
    fx_close(&f);
    /* a bad reshape names both shapes */
    f = fx_open();
    int64_t bad[2] = {4, 2};
    ck_assert_int_eq(loom_reshape(f.g, loom_input(f.g, "a", LOOM_F32, 2, s), 2, bad).id, 0);
    ck_assert_ptr_nonnull(strstr(loom_graph_error(f.g), "[2,3]"));
    ck_assert_ptr_nonnull(strstr(loom_graph_error(f.g), "[4,2]"));
    fx_close(&f);
    /* 3-D transpose against a loop */
    float x[24], o[24], ref[24];
    tu_fill(x, 24, 5, -1, 1);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 4; k++)
                ref[(k * 2 + i) * 3 + j] = x[(i * 3 + j) * 4 + k]; /* perm {2,0,1} */
    f = fx_open();
    int64_t s3[3] = {2, 3, 4};
    int p3[3] = {2, 0, 1};
    run(&f, loom_transpose(f.g, loom_input(f.g, "a", LOOM_F32, 3, s3), p3), x, sizeof x, NULL, 0, o, sizeof o);
    ck_assert(!memcmp(o, ref, sizeof o));
    fx_close(&f);
}
END_TEST

START_TEST(losses)
{
    /* logits [[0,0],[ln3,0]], labels [0,1]: losses ln2 and ln4 -> mean 1.5 ln 2 */
    float z[4] = {0, 0, 1.09861229f, 0};
    int32_t lab[2] = {0, 1};
    float y;
    fixture f = fx_open();
    int64_t sz[2] = {2, 2}, sl[1] = {2};
    loom_tensor L = loom_sparse_cross_entropy(f.g, loom_input(f.g, "a", LOOM_F32, 2, sz),
                                              loom_input(f.g, "b", LOOM_I32, 1, sl));
    run(&f, L, z, sizeof z, lab, sizeof lab, &y, 4);
    ck_assert(fabs(y - 1.5 * log(2.0)) < 1e-6);
    fx_close(&f);
    /* an out-of-range label is refused with its index */
    f = fx_open();
    L = loom_sparse_cross_entropy(f.g, loom_input(f.g, "a", LOOM_F32, 2, sz), loom_input(f.g, "b", LOOM_I32, 1, sl));
    loom_output(f.g, L, "y");
    loom_program *p;
    ck_assert_int_eq(loom_compile(f.g, f.dev, f.st, NULL, &p), LOOM_OK);
    int32_t badlab[2] = {1, 7};
    ck_assert_int_eq(loom_program_set_input(p, "b", badlab, sizeof badlab), LOOM_E_RANGE);
    ck_assert_ptr_nonnull(strstr(loom_last_error(f.ctx), "label 7 at index 1"));
    int32_t neg[2] = {-1, 0};
    ck_assert_int_eq(loom_program_set_input(p, "b", neg, sizeof neg), LOOM_E_RANGE);
    loom_program_destroy(p);
    fx_close(&f);
    /* mse of [1,2] and [0,4] = (1 + 4) / 2 */
    float a[2] = {1, 2}, b[2] = {0, 4};
    f = fx_open();
    int64_t s2[1] = {2};
    run(&f, loom_mse(f.g, loom_input(f.g, "a", LOOM_F32, 1, s2), loom_input(f.g, "b", LOOM_F32, 1, s2)), a, 8, b,
        8, &y, 4);
    ck_assert(y == 2.5f);
    fx_close(&f);
    /* categorical cross-entropy with one-hot targets equals the sparse one */
    float t[4] = {1, 0, 0, 1};
    f = fx_open();
    run(&f, loom_cross_entropy(f.g, loom_input(f.g, "a", LOOM_F32, 2, sz), loom_input(f.g, "b", LOOM_F32, 2, sz)), z,
        sizeof z, t, sizeof t, &y, 4);
    ck_assert(fabs(y - 1.5 * log(2.0)) < 1e-6);
    fx_close(&f);
}
END_TEST

/* Class indices that do not come through loom_program_set_input (audit
 * item 5): a constant is refused by the compile with the label, its place
 * and the bound; labels in the state reach the kernels, which give NaN for
 * the loss and the rows of its gradient and touch nothing outside their
 * tensors (guard zones), fused into one kernel or not, on every device. */
START_TEST(labels_outside_set_input)
{
    loom_ctx *ctx = tu_ctx();
    loom_device *cpu = tu_open(ctx, "cpu");
    loom_graph *g = NULL;
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t zs[2] = {3, 10}, ls[1] = {3};
    int32_t bad[3] = {1, 9, 10};
    loom_tensor z = loom_input(g, "z", LOOM_F32, 2, zs);
    loom_output(g, loom_sparse_cross_entropy(g, z, loom_constant(g, "labels", LOOM_I32, 1, ls, bad)), "loss");
    loom_state *st = NULL;
    ck_assert_int_eq(loom_state_create(cpu, &st), LOOM_OK);
    loom_program *p = NULL;
    ck_assert_int_eq(loom_compile(g, cpu, st, NULL, &p), LOOM_E_RANGE);
    ck_assert_ptr_null(p);
    ck_assert_msg(strstr(loom_last_error(ctx), "label 10 at index 2 of the constant \"labels\" is outside [0, 10)"),
                  "%s", loom_last_error(ctx));
    loom_state_destroy(st);
    loom_graph_destroy(g);
    loom_device_close(cpu);

    char specs[8][32];
    int nd = tu_devices(ctx, specs, 8);
    int32_t lab[3] = {2, 200, -7};
    float zv[30];
    for (int i = 0; i < 30; i++)
        zv[i] = (float)(i % 7) * 0.25f;
    for (int d = 0; d < nd; d++)
        for (int fusion = 0; fusion < 2; fusion++) {
            loom_device *dev = tu_open(ctx, specs[d]);
            ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
            ck_assert_int_eq(loom_state_write(st, "labels", LOOM_I32, 1, ls, lab), LOOM_OK);
            ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
            loom_tensor zz = loom_input(g, "z", LOOM_F32, 2, zs);
            loom_tensor w = loom_param(g, "w", LOOM_F32, 2, zs, 1);
            loom_tensor logits = loom_mul(g, zz, w);
            loom_tensor loss = loom_sparse_cross_entropy(g, logits, loom_param(g, "labels", LOOM_I32, 1, ls, 0));
            loom_output(g, loss, "loss");
            loom_output(g, loom_argmax(g, logits, -1), "pred");
            loom_tensor wrt[1] = {w};
            ck_assert_int_eq(loom_backward(g, loss, wrt, 1), LOOM_OK);
            loom_output(g, loom_grad(g, w), "dw");
            loom_compile_opts o = {0};
            o.guard = 1;
            o.no_fusion = !fusion;
            float ones[30];
            for (int i = 0; i < 30; i++)
                ones[i] = 1.0f;
            ck_assert_int_eq(loom_state_write(st, "w", LOOM_F32, 2, zs, ones), LOOM_OK);
            ck_assert_msg(loom_compile(g, dev, st, &o, &p) == LOOM_OK, "%s: %s", specs[d], loom_last_error(ctx));
            ck_assert_int_eq(loom_program_set_input(p, "z", zv, sizeof zv), LOOM_OK);
            ck_assert_int_eq(loom_program_run(p), LOOM_OK);
            ck_assert_msg(loom_program_check_guards(p) == LOOM_OK, "%s: %s", specs[d], loom_last_error(ctx));
            float l = 0, dw[30];
            ck_assert_int_eq(loom_program_read(p, "loss", &l, sizeof l), LOOM_OK);
            ck_assert_int_eq(loom_program_read(p, "dw", dw, sizeof dw), LOOM_OK);
            ck_assert_msg(isnan(l), "%s (fusion %d): loss %g with labels 200 and -7", specs[d], fusion, (double)l);
            for (int j = 0; j < 10; j++) {
                ck_assert_msg(isfinite(dw[j]), "%s (fusion %d): row 0 (label 2) of dw", specs[d], fusion);
                ck_assert_msg(isnan(dw[10 + j]) && isnan(dw[20 + j]), "%s (fusion %d): rows 1 and 2 of dw are not NaN",
                              specs[d], fusion);
            }
            loom_program_destroy(p);
            loom_graph_destroy(g);
            loom_state_destroy(st);
            loom_device_close(dev);
        }
    loom_ctx_destroy(ctx);
}
END_TEST

START_TEST(dropout_mask)
{
    enum { N = 20000 };
    float *a = malloc(N * 4), *y = malloc(N * 4);
    for (int i = 0; i < N; i++)
        a[i] = 1.0f;
    fixture f = fx_open();
    int64_t s[1] = {N};
    run(&f, loom_dropout(f.g, loom_input(f.g, "a", LOOM_F32, 1, s), 0.25f, 99), a, N * 4, NULL, 0, y, N * 4);
    int zeros = 0;
    for (int i = 0; i < N; i++) {
        ck_assert(y[i] == 0.0f || fabsf(y[i] - 1.0f / 0.75f) < 1e-6f);
        zeros += y[i] == 0.0f;
    }
    /* 25% +- 5 sigma */
    ck_assert_int_gt(zeros, N / 4 - 5 * 61);
    ck_assert_int_lt(zeros, N / 4 + 5 * 61);
    fx_close(&f);
    free(a), free(y);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("cpu");
    tcase_add_test(tc, matmul_exact);
    tcase_add_test(tc, matmul_random);
    tcase_add_test(tc, binary_broadcast);
    tcase_add_test(tc, unary_ops);
    tcase_add_test(tc, softmax_family);
    tcase_add_test(tc, reductions);
    tcase_add_test(tc, shape_ops);
    tcase_add_test(tc, losses);
    tcase_add_test(tc, labels_outside_set_input);
    tcase_add_test(tc, dropout_mask);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
