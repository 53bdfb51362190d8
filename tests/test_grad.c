/* Every op's backward on the CPU backend against central finite
 * differences of loss = sum(op(inputs) * w), over the op_cases table
 * (random small shapes, broadcast cases included). */
#include "op_cases.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct gctx {
    loom_ctx *ctx;
    loom_device *dev;
    loom_state *st;
    loom_program *loss_prog, *grad_prog;
    loom_graph *g1, *g2;
} gctx;

static size_t numel(const op_case *c, int i)
{
    size_t n = 1;
    for (int k = 0; k < c->ndim[i]; k++)
        n *= (size_t)c->shape[i][k];
    return n;
}

/* zeros of input i's size (the gradient of an input the loss ignores) */
static const float *calloc_zero(const op_case *c, int i)
{
    static float z[8192];
    ck_assert_uint_le(numel(c, i), 8192);
    return z;
}

/* Builds the case with loss = sum(y * w); grads=1 also appends backward. */
static loom_program *build(gctx *gc, loom_graph **gp, const op_case *c, int grads, int *ngrad)
{
    ck_assert_int_eq(loom_graph_create(gc->ctx, gp), LOOM_OK);
    loom_graph *g = *gp;
    loom_tensor in[OP_CASE_MAX_IN];
    const char *names[OP_CASE_MAX_IN] = {"in0", "in1", "in2", "in3"};
    for (int i = 0; i < c->nin; i++)
        in[i] = loom_input(g, names[i], op_case_labels(c, i) ? LOOM_I32 : LOOM_F32, c->ndim[i], c->shape[i]);
    loom_tensor y = op_case_build(g, c, in, LOOM_F32);
    ck_assert_msg(y.id, "%s: %s", c->name, loom_graph_error(g));
    int yn = loom_tensor_ndim(g, y);
    int64_t ys[4];
    size_t ny = 1;
    for (int k = 0; k < yn; k++)
        ny *= (size_t)(ys[k] = loom_tensor_dim(g, y, k));
    float *w = malloc(ny * sizeof *w);
    tu_fill(w, ny, 77, -1, 1);
    loom_tensor loss = loom_sum_all(g, loom_mul(g, y, loom_constant(g, "w", LOOM_F32, yn, ys, w)));
    free(w);
    loom_output(g, loss, "loss");
    *ngrad = 0;
    if (grads) {
        loom_tensor wrt[OP_CASE_MAX_IN];
        int nw = 0;
        for (int i = 0; i < c->nin; i++)
            if (!op_case_nograd(c, i))
                wrt[nw++] = in[i];
        ck_assert_int_eq(loom_backward(g, loss, wrt, nw), LOOM_OK);
        for (int i = 0; i < c->nin; i++) {
            if (op_case_nograd(c, i))
                continue;
            char gn[16];
            snprintf(gn, sizeof gn, "g%d", i);
            /* an input that only decides a mask (where's condition) has none */
            loom_tensor gr = loom_grad(g, in[i]);
            if (!gr.id) {
                int64_t one = 1;
                static const float zero = 0;
                gr = loom_constant(g, NULL, LOOM_F32, 1, &one, &zero);
                gr = loom_mul(g, loom_constant(g, NULL, LOOM_F32, c->ndim[i], c->shape[i], calloc_zero(c, i)), gr);
            }
            ck_assert_int_eq(loom_output(g, gr, gn), LOOM_OK);
        }
        *ngrad = c->nin;
    }
    loom_program *p = NULL;
    ck_assert_msg(loom_compile(g, gc->dev, gc->st, NULL, &p) == LOOM_OK, "%s: %s", c->name,
                  loom_last_error(gc->ctx));
    return p;
}

static double eval_loss(loom_program *p, const op_case *c, float *const *data)
{
    for (int i = 0; i < c->nin; i++)
        ck_assert_int_eq(loom_program_set_input(p, (const char *const[]){"in0", "in1", "in2", "in3"}[i], data[i],
                                                numel(c, i) * 4),
                         LOOM_OK);
    ck_assert_int_eq(loom_program_run(p), LOOM_OK);
    float l;
    ck_assert_int_eq(loom_program_read(p, "loss", &l, 4), LOOM_OK);
    return l;
}

START_TEST(finite_differences)
{
    const op_case *c = &op_cases[_i];
    if (!c->backward || numel(c, 0) > 50000 || op_case_stateful(c))
        return; /* big cases: float32 loss noise swamps the differences */
    gctx gc = {0};
    gc.ctx = tu_ctx();
    gc.dev = tu_open(gc.ctx, "cpu");
    ck_assert_int_eq(loom_state_create(gc.dev, &gc.st), LOOM_OK);
    int ng;
    gc.loss_prog = build(&gc, &gc.g1, c, 0, &ng);
    gc.grad_prog = build(&gc, &gc.g2, c, 1, &ng);
    float *data[OP_CASE_MAX_IN] = {NULL};
    for (int i = 0; i < c->nin; i++) {
        data[i] = malloc(numel(c, i) * 4);
        op_case_fill(c, i, data[i], numel(c, i), 100u + (uint32_t)i * 7u + (uint32_t)_i);
    }
    eval_loss(gc.grad_prog, c, data);
    for (int i = 0; i < ng; i++) {
        if (op_case_nograd(c, i))
            continue;
        size_t n = numel(c, i);
        float *an = malloc(n * 4);
        char gn[16];
        snprintf(gn, sizeof gn, "g%d", i);
        ck_assert_int_eq(loom_program_read(gc.grad_prog, gn, an, n * 4), LOOM_OK);
        /* up to 24 probed elements per input, spread over the tensor */
        size_t stride = n > 24 ? n / 24 : 1;
        for (size_t k = 0; k < n; k += stride) {
            float x0 = data[i][k];
            const float eps = 1e-2f * (fabsf(x0) > 1 ? fabsf(x0) : 1);
            data[i][k] = x0 + eps;
            double lp = eval_loss(gc.loss_prog, c, data);
            data[i][k] = x0 - eps;
            double lm = eval_loss(gc.loss_prog, c, data);
            data[i][k] = x0;
            if (c->kink) {
                /* a kink (relu at 0, max where a = b, clamp at its bounds)
                 * inside [x0 - eps, x0 + eps]: the one-sided slopes differ */
                double l0 = eval_loss(gc.loss_prog, c, data);
                double right = (lp - l0) / eps, left = (l0 - lm) / eps;
                if (fabs(right - left) > 1e-2 * (1 + fabs(right) + fabs(left)) + 2e-6 * fabs(l0) / eps)
                    continue;
            }
            double num = (lp - lm) / (2.0 * eps);
            /* float32 forward: the loss carries ~1e-6 relative noise */
            double tol = 2e-2 * (1 + fabs(num)) + 1e-6 * fabs(lp) / eps;
            ck_assert_msg(fabs(num - an[k]) <= tol, "%s: d loss / d in%d[%zu]: analytic %g, numeric %g", c->name, i,
                          k, (double)an[k], num);
        }
        free(an);
    }
    for (int i = 0; i < c->nin; i++)
        free(data[i]);
    loom_program_destroy(gc.loss_prog);
    loom_program_destroy(gc.grad_prog);
    loom_graph_destroy(gc.g1);
    loom_graph_destroy(gc.g2);
    loom_state_destroy(gc.st);
    loom_device_close(gc.dev);
    loom_ctx_destroy(gc.ctx);
}
END_TEST

/* A tensor used by several ops accumulates its gradient: d/dx of
 * sum(x*x + 3x) = 2x + 3. */
START_TEST(fan_out_accumulates)
{
    loom_ctx *ctx = tu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_state *st;
    loom_graph *g;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t s[1] = {4};
    loom_tensor x = loom_param(g, "x", LOOM_F32, 1, s, 1);
    loom_tensor loss = loom_sum_all(g, loom_add(g, loom_mul(g, x, x), loom_scale(g, x, 3.0f)));
    ck_assert_int_eq(loom_backward(g, loss, NULL, 0), LOOM_OK);
    loom_output(g, loom_grad(g, x), "dx");
    float xv[4] = {1, -2, 0.5f, 0}, dx[4];
    ck_assert_int_eq(loom_state_write(st, "x", LOOM_F32, 1, s, xv), LOOM_OK);
    loom_program *p = tu_compile_run(g, dev, st, 0, NULL, NULL, NULL);
    ck_assert_int_eq(loom_program_read(p, "dx", dx, sizeof dx), LOOM_OK);
    for (int i = 0; i < 4; i++)
        ck_assert(dx[i] == 2 * xv[i] + 3);
    /* a second backward on the same graph is refused */
    ck_assert_int_eq(loom_backward(g, loss, NULL, 0), LOOM_E_STATE);
    loom_program_destroy(p);
    loom_graph_destroy(g);
    /* the loss must be a scalar */
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    x = loom_param(g, "x", LOOM_F32, 1, s, 1);
    ck_assert_int_eq(loom_backward(g, loom_relu(g, x), NULL, 0), LOOM_E_SHAPE);
    ck_assert_ptr_nonnull(strstr(loom_graph_error(g), "scalar"));
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("grad");
    TCase *tc = tcase_create("finite_differences");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, finite_differences, 0, op_case_count);
    tcase_add_test(tc, fan_out_accumulates);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
