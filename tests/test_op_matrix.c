/* The op matrix: every case of op_cases.c, forward and backward, on every
 * device present, against the CPU backend; guard zones fence each output. */
#include "op_cases.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct result {
    int nout;
    float *out[3];          /* out, grad0, grad1 */
    size_t n[3];
    int is_int;
} result;

static void make_inputs(const op_case *c, float *data[2], size_t n[2], loom_dtype dt[2])
{
    for (int i = 0; i < c->nin; i++) {
        n[i] = 1;
        for (int k = 0; k < c->ndim[i]; k++)
            n[i] *= (size_t)c->shape[i][k];
        data[i] = malloc(n[i] * sizeof(float));
        dt[i] = LOOM_F32;
        tu_fill(data[i], n[i], 100u + (uint32_t)i * 7u + (uint32_t)c->kind, c->lo, c->hi);
        if (c->kind == K_SPARSE_XENT && i == 1) {
            int32_t *lab = (int32_t *)data[i];
            int64_t classes = c->shape[0][1];
            for (size_t k = 0; k < n[i]; k++)
                lab[k] = (int32_t)((k * 7 + 3) % (size_t)classes);
            dt[i] = LOOM_I32;
        }
    }
}

static result run_case(loom_ctx *ctx, const char *spec, const op_case *c)
{
    result r = {0};
    loom_device *dev = tu_open(ctx, spec);
    loom_state *st = NULL;
    loom_graph *g = NULL;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    float *data[2] = {0};
    size_t n[2] = {0};
    loom_dtype dt[2];
    make_inputs(c, data, n, dt);
    loom_tensor in[2];
    const char *names[2] = {"in0", "in1"};
    for (int i = 0; i < c->nin; i++)
        in[i] = loom_input(g, names[i], dt[i], c->ndim[i], c->shape[i]);
    loom_tensor y = op_case_build(g, c, in);
    ck_assert_msg(y.id != 0, "%s: build failed: %s", c->name, loom_graph_error(g));
    loom_output(g, y, "out");
    r.is_int = loom_tensor_dtype(g, y) == LOOM_I32;
    r.n[0] = 1;
    for (int k = 0; k < loom_tensor_ndim(g, y); k++)
        r.n[0] *= (size_t)loom_tensor_dim(g, y, k);
    r.nout = 1;
    if (c->backward) {
        /* loss = sum(out * w): a gradient of out that is not all ones. */
        float *w = malloc(r.n[0] * sizeof *w);
        tu_fill(w, r.n[0], 77, -1, 1);
        int64_t ys[4];
        int yn = loom_tensor_ndim(g, y);
        for (int k = 0; k < yn; k++)
            ys[k] = loom_tensor_dim(g, y, k);
        loom_tensor wt = loom_constant(g, "w", LOOM_F32, yn, ys, w);
        free(w);
        loom_tensor loss = loom_sum_all(g, loom_mul(g, y, wt));
        loom_tensor wrt[2];
        int nw = 0;
        for (int i = 0; i < c->nin; i++)
            if (dt[i] == LOOM_F32)
                wrt[nw++] = in[i];
        ck_assert_msg(loom_backward(g, loss, wrt, nw) == LOOM_OK, "%s: backward: %s", c->name, loom_graph_error(g));
        for (int i = 0; i < nw; i++) {
            loom_tensor gr = loom_grad(g, wrt[i]);
            if (!gr.id)
                continue; /* the input does not reach the loss */
            char gn[16];
            snprintf(gn, sizeof gn, "grad%d", i);
            ck_assert_int_eq(loom_output(g, gr, gn), LOOM_OK);
            r.n[r.nout++] = n[i];
        }
    }
    loom_compile_opts o = {0};
    o.guard = 1;
    loom_program *p = NULL;
    loom_status s = loom_compile(g, dev, st, &o, &p);
    ck_assert_msg(s == LOOM_OK, "%s on %s: compile: %s", c->name, spec, loom_last_error(ctx));
    for (int i = 0; i < c->nin; i++)
        ck_assert_int_eq(loom_program_set_input(p, names[i], data[i], n[i] * 4), LOOM_OK);
    s = loom_program_run(p);
    ck_assert_msg(s == LOOM_OK, "%s on %s: run: %s", c->name, spec, loom_last_error(ctx));
    s = loom_program_check_guards(p);
    ck_assert_msg(s == LOOM_OK, "%s on %s: %s", c->name, spec, loom_last_error(ctx));
    for (int k = 0; k < r.nout; k++) {
        r.out[k] = malloc(r.n[k] * sizeof(float));
        char on[16];
        snprintf(on, sizeof on, k ? "grad%d" : "out", k - 1);
        ck_assert_int_eq(loom_program_read(p, on, r.out[k], r.n[k] * 4), LOOM_OK);
    }
    ck_assert_msg(loom_validation_errors(ctx) == 0, "%s on %s: %llu validation errors", c->name, spec,
                  (unsigned long long)loom_validation_errors(ctx));
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
    for (int i = 0; i < c->nin; i++)
        free(data[i]);
    return r;
}

static void free_result(result *r)
{
    for (int k = 0; k < r->nout; k++)
        free(r->out[k]);
}

START_TEST(test_case)
{
    const op_case *c = &op_cases[_i];
    if (!tu_listed("LOOM_TEST_CASES", c->name))
        return; /* a subset was asked for (tools/device_check.sh's quick mode) */
    loom_ctx *ctx = tu_ctx();
    char specs[16][32];
    int nd = tu_devices(ctx, specs, 16);
    result ref = run_case(ctx, "cpu", c);
    int compared = 0;
    for (int d = 0; d < nd; d++) {
        if (!strcmp(specs[d], "cpu"))
            continue;
        result r = run_case(ctx, specs[d], c);
        ck_assert_int_eq(r.nout, ref.nout);
        for (int k = 0; k < r.nout; k++) {
            if (ref.is_int && k == 0) {
                ck_assert_msg(memcmp(r.out[0], ref.out[0], r.n[0] * 4) == 0, "%s on %s: indices differ", c->name,
                              specs[d]);
                continue;
            }
            double e = tu_err(r.out[k], ref.out[k], r.n[k], c->atol ? c->atol : 1e-7, c->rtol ? c->rtol : 1e-7);
            ck_assert_msg(e <= 1.0, "%s on %s: %s differs from cpu: normalized error %g", c->name, specs[d],
                          k ? "gradient" : "output", e);
        }
        free_result(&r);
        compared++;
    }
    if (compared == 0 && _i == 0)
        fprintf(stderr, "op_matrix: no device besides cpu can run graphs; only the cpu guard runs are checked\n");
    free_result(&ref);
    loom_ctx_destroy(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("op_matrix");
    TCase *tc = tcase_create("cases");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_case, 0, op_case_count);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
