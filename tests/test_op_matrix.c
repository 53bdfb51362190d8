/* The op matrix: every case of op_cases.c, forward and backward, in f32,
 * f16 and bf16, on every device present, against the CPU backend in f32
 * over the same (rounded) inputs, compiled without fusion, so each fused
 * kernel (the GEMM epilogues) answers to the ops it replaces, the CPU's too;
 * guard zones fence each output. And the op
 * table's coverage: every op has a CPU kernel, a gradient rule (or says it
 * has none), a case here, and a kernel on every GPU backend built in (or a
 * stated reason). */
#include "op_cases.h"
#include "testutil.h"
#include "core/backend.h"
#include "core/graph.h"
#include "core/op_table.h"
#include "core/autodiff.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct result {
    int nout;
    float *out[OP_CASE_MAX_IN + 1]; /* out, then the gradient of each float input */
    size_t n[OP_CASE_MAX_IN + 1];
    int is_int;
} result;

static size_t numel_of(int ndim, const int64_t *shape)
{
    size_t n = 1;
    for (int k = 0; k < ndim; k++)
        n *= (size_t)shape[k];
    return n;
}

/* f32 values rounded through dt, as the half-precision runs see them. */
static void round_to(float *x, size_t n, loom_dtype dt)
{
    for (size_t i = 0; i < n; i++)
        x[i] = dt == LOOM_F16 ? loom_f16_to_f32(loom_f32_to_f16(x[i]))
               : dt == LOOM_BF16 ? loom_bf16_to_f32(loom_f32_to_bf16(x[i])) : x[i];
}

static void *to_dtype(const float *x, size_t n, loom_dtype dt)
{
    if (dt == LOOM_F32) {
        float *y = malloc(n * 4);
        memcpy(y, x, n * 4);
        return y;
    }
    uint16_t *h = malloc(n * 2);
    for (size_t i = 0; i < n; i++)
        h[i] = dt == LOOM_F16 ? loom_f32_to_f16(x[i]) : loom_f32_to_bf16(x[i]);
    return h;
}

static void from_dtype(float *y, const void *v, size_t n, loom_dtype dt)
{
    const uint16_t *h = v;
    for (size_t i = 0; i < n; i++)
        y[i] = dt == LOOM_F32 ? ((const float *)v)[i] : dt == LOOM_F16 ? loom_f16_to_f32(h[i]) : loom_bf16_to_f32(h[i]);
}

static void make_inputs(const op_case *c, float *data[OP_CASE_MAX_IN], size_t n[OP_CASE_MAX_IN], loom_dtype dt)
{
    for (int i = 0; i < c->nin; i++) {
        n[i] = numel_of(c->ndim[i], c->shape[i]);
        data[i] = malloc(n[i] * sizeof(float));
        op_case_fill(c, i, data[i], n[i], 100u + (uint32_t)i * 7u + (uint32_t)(c - op_cases));
        if (!op_case_labels(c, i))
            round_to(data[i], n[i], dt);
    }
}

static const char *const in_names[OP_CASE_MAX_IN] = {"in0", "in1", "in2", "in3"};

/* Runs case c on spec with its tensors in dtype dt (data: f32 values,
 * already rounded to dt). */
static result run_case(loom_ctx *ctx, const char *spec, int unfused, const op_case *c, loom_dtype dt, float *const *data,
                       const size_t *n)
{
    result r = {0};
    loom_device *dev = tu_open(ctx, spec);
    loom_state *st = NULL;
    loom_graph *g = NULL;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    loom_tensor in[OP_CASE_MAX_IN];
    int stateful = op_case_stateful(c);
    for (int i = 0; i < c->nin; i++) {
        loom_dtype idt = op_case_labels(c, i) ? LOOM_I32 : dt;
        if (stateful)
            in[i] = loom_param(g, "p", LOOM_F32, c->ndim[i], c->shape[i], 1);
        else
            in[i] = loom_input(g, in_names[i], idt, c->ndim[i], c->shape[i]);
    }
    loom_tensor y = op_case_build(g, c, in, dt);
    ck_assert_msg(y.id != 0, "%s (%s): build failed: %s", c->name, loom_dtype_name(dt), loom_graph_error(g));
    if (!stateful)
        loom_output(g, y, "out");
    r.is_int = loom_tensor_dtype(g, y) == LOOM_I32;
    loom_dtype ydt = loom_tensor_dtype(g, y);
    r.n[0] = 1;
    for (int k = 0; k < loom_tensor_ndim(g, y); k++)
        r.n[0] *= (size_t)loom_tensor_dim(g, y, k);
    r.nout = 1;
    loom_dtype gdt[OP_CASE_MAX_IN + 1] = {ydt};
    if (c->backward) {
        /* loss = sum(out * w): a gradient of out that is not all ones. */
        float *w = malloc(r.n[0] * sizeof *w);
        tu_fill(w, r.n[0], 77, -1, 1);
        round_to(w, r.n[0], ydt);
        void *wd = to_dtype(w, r.n[0], ydt);
        int64_t ys[4];
        int yn = loom_tensor_ndim(g, y);
        for (int k = 0; k < yn; k++)
            ys[k] = loom_tensor_dim(g, y, k);
        loom_tensor wt = loom_constant(g, "w", ydt, yn, ys, wd);
        free(w);
        free(wd);
        loom_tensor loss = loom_sum_all(g, loom_mul(g, y, wt));
        loom_tensor wrt[OP_CASE_MAX_IN];
        int wi[OP_CASE_MAX_IN], nw = 0;
        for (int i = 0; i < c->nin; i++)
            if (!op_case_nograd(c, i)) {
                wi[nw] = i;
                wrt[nw++] = in[i];
            }
        ck_assert_msg(loom_backward(g, loss, wrt, nw) == LOOM_OK, "%s: backward: %s", c->name, loom_graph_error(g));
        for (int i = 0; i < nw; i++) {
            loom_tensor gr = loom_grad(g, wrt[i]);
            if (!gr.id)
                continue; /* the input does not reach the loss */
            char gname[16];
            snprintf(gname, sizeof gname, "grad%d", r.nout - 1);
            ck_assert_int_eq(loom_output(g, gr, gname), LOOM_OK);
            gdt[r.nout] = loom_tensor_dtype(g, gr);
            r.n[r.nout++] = n[wi[i]];
        }
    }
    loom_compile_opts o = {0};
    o.guard = 1;
    o.no_fusion = unfused;
    loom_program *p = NULL;
    loom_status s = loom_compile(g, dev, st, &o, &p);
    ck_assert_msg(s == LOOM_OK, "%s (%s) on %s: compile: %s", c->name, loom_dtype_name(dt), spec,
                  loom_last_error(ctx));
    for (int i = 0; i < c->nin; i++) {
        if (stateful) {
            ck_assert_int_eq(loom_state_write(st, "p", LOOM_F32, c->ndim[i], c->shape[i], data[i]), LOOM_OK);
            continue;
        }
        loom_dtype idt = op_case_labels(c, i) ? LOOM_I32 : dt;
        void *v = idt == LOOM_I32 ? NULL : to_dtype(data[i], n[i], idt);
        ck_assert_int_eq(loom_program_set_input(p, in_names[i], v ? v : data[i], n[i] * loom_dtype_size(idt)),
                         LOOM_OK);
        free(v);
    }
    s = loom_program_run(p);
    ck_assert_msg(s == LOOM_OK, "%s (%s) on %s: run: %s", c->name, loom_dtype_name(dt), spec, loom_last_error(ctx));
    s = loom_program_check_guards(p);
    ck_assert_msg(s == LOOM_OK, "%s (%s) on %s: %s", c->name, loom_dtype_name(dt), spec, loom_last_error(ctx));
    for (int k = 0; k < r.nout; k++) {
        r.out[k] = malloc(r.n[k] * sizeof(float));
        if (stateful) {
            ck_assert_int_eq(loom_state_read(st, "p", r.out[k], r.n[k] * 4), LOOM_OK);
            continue;
        }
        char on[16];
        snprintf(on, sizeof on, k ? "grad%d" : "out", k - 1);
        size_t es = loom_dtype_size(gdt[k]);
        void *raw = malloc(r.n[k] * es);
        ck_assert_int_eq(loom_program_read(p, on, raw, r.n[k] * es), LOOM_OK);
        if (gdt[k] == LOOM_I32)
            memcpy(r.out[k], raw, r.n[k] * 4);
        else
            from_dtype(r.out[k], raw, r.n[k], gdt[k]);
        free(raw);
    }
    ck_assert_msg(loom_validation_errors(ctx) == 0, "%s on %s: %llu validation errors", c->name, spec,
                  (unsigned long long)loom_validation_errors(ctx));
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
    return r;
}

static void free_result(result *r)
{
    for (int k = 0; k < r->nout; k++)
        free(r->out[k]);
}

/* Tolerances per dtype: the f32 ones, widened by what rounding to the
 * dtype costs (its epsilon, times a few roundings along the way). */
static void tolerances(const op_case *c, loom_dtype dt, double *atol, double *rtol)
{
    double a = c->atol ? c->atol : 1e-7, r = c->rtol ? c->rtol : 1e-7;
    double eps = dt == LOOM_F16 ? 9.8e-4 : dt == LOOM_BF16 ? 7.9e-3 : 0;
    *atol = a + 4 * eps;
    *rtol = r + 4 * eps;
}

static void compare(const op_case *c, const char *spec, loom_dtype dt, const result *r, const result *ref)
{
    ck_assert_int_eq(r->nout, ref->nout);
    double atol, rtol;
    tolerances(c, dt, &atol, &rtol);
    for (int k = 0; k < r->nout; k++) {
        if (ref->is_int && k == 0) {
            ck_assert_msg(memcmp(r->out[0], ref->out[0], r->n[0] * 4) == 0, "%s (%s) on %s: indices differ",
                          c->name, loom_dtype_name(dt), spec);
            continue;
        }
        /* a gradient's scale follows the sum it comes from: judge it
         * against the reference's largest value */
        double big = 0;
        for (size_t i = 0; i < ref->n[k]; i++)
            big = fmax(big, fabs(ref->out[k][i]));
        double e = tu_err(r->out[k], ref->out[k], r->n[k], atol * (dt == LOOM_F32 ? 1 : fmax(1, big)), rtol);
        ck_assert_msg(e <= 1.0, "%s (%s) on %s: %s differs from cpu f32: normalized error %g", c->name,
                      loom_dtype_name(dt), spec, k ? "gradient" : "output", e);
    }
}

START_TEST(test_case)
{
    const op_case *c = &op_cases[_i];
    if (!tu_listed("LOOM_TEST_CASES", c->name))
        return; /* a subset was asked for (tools/device_check.sh's quick mode) */
    loom_ctx *ctx = tu_ctx();
    char specs[16][32];
    int nd = tu_devices(ctx, specs, 16);
    static const loom_dtype dts[3] = {LOOM_F32, LOOM_F16, LOOM_BF16};
    int compared = 0;
    for (int t = 0; t < (c->f32_only ? 1 : 3); t++) {
        loom_dtype dt = dts[t];
        float *data[OP_CASE_MAX_IN] = {0};
        size_t n[OP_CASE_MAX_IN] = {0};
        make_inputs(c, data, n, dt);
        result ref = run_case(ctx, "cpu", 1, c, LOOM_F32, data, n);
        for (int d = 0; d < nd; d++) {
            result r = run_case(ctx, specs[d], 0, c, dt, data, n);
            compare(c, specs[d], dt, &r, &ref);
            free_result(&r);
            compared++;
        }
        free_result(&ref);
        for (int i = 0; i < c->nin; i++)
            free(data[i]);
    }
    ck_assert_int_gt(compared, 0);
    loom_ctx_destroy(ctx);
}
END_TEST

/* The ops a case's graph holds (forward and backward, before compile). */
static void collect_ops(const op_case *c, loom_ctx *ctx, unsigned char *seen)
{
    loom_graph *g;
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    loom_tensor in[OP_CASE_MAX_IN];
    for (int i = 0; i < c->nin; i++)
        in[i] = op_case_stateful(c) ? loom_param(g, "p", LOOM_F32, c->ndim[i], c->shape[i], 1)
                                    : loom_input(g, in_names[i], op_case_labels(c, i) ? LOOM_I32 : LOOM_F32,
                                                 c->ndim[i], c->shape[i]);
    loom_tensor y = op_case_build(g, c, in, LOOM_F32);
    ck_assert_msg(y.id, "%s: %s", c->name, loom_graph_error(g));
    if (c->backward) {
        loom_tensor loss = loom_sum_all(g, y);
        int nw = 0;
        loom_tensor wrt[OP_CASE_MAX_IN];
        for (int i = 0; i < c->nin; i++)
            if (!op_case_nograd(c, i))
                wrt[nw++] = in[i];
        ck_assert_int_eq(loom_backward(g, loss, wrt, nw), LOOM_OK);
    }
    for (int i = 0; i < g->n; i++) {
        seen[g->nodes[i].op] = 1;
        if (g->nodes[i].op == LOOM_OP_UNARY_GRAD || g->nodes[i].op == LOOM_OP_BINARY_GRAD)
            seen[LOOM_OP_COUNT + g->nodes[i].attr.fwd] = 1; /* its derivative kernel ran */
    }
    loom_graph_destroy(g);
}

START_TEST(table_coverage)
{
    loom_ctx *ctx = tu_ctx();
    unsigned char seen[2 * LOOM_OP_COUNT] = {0};
    for (int i = 0; i < op_case_count; i++)
        collect_ops(&op_cases[i], ctx, seen);
    int missing = 0;
    for (int op = 1; op < LOOM_OP_COUNT; op++) {
        const loom_op_def *def = &loom_op_defs[op];
        ck_assert_msg(def->name != NULL, "op %d has no entry in the op table", op);
        /* leaves run nothing; users' GLSL kernels are test_vulkan's */
        if (def->family == LOOM_FAM_LEAF || def->family == LOOM_FAM_CUSTOM)
            continue;
        if (!seen[op]) {
            fprintf(stderr, "op table: %s has no op-matrix case\n", def->name);
            missing++;
        }
        if (!(def->grad || (def->flags & (LOOM_OPF_NONDIFF | LOOM_OPF_NO_GRAD)))) {
            fprintf(stderr, "op table: %s has no gradient rule and does not say it has none\n", def->name);
            missing++;
        }
        if (def->grad == loom_grad_unary || def->grad == loom_grad_binary)
            if (!seen[LOOM_OP_COUNT + op]) {
                fprintf(stderr, "op table: the derivative of %s is never run by a case\n", def->name);
                missing++;
            }
        for (int b = 0; b < loom_backend_count; b++) {
            const loom_backend_ops *be = loom_backends[b];
            int has = be->has_kernel && be->has_kernel((loom_op)op, LOOM_F32);
            if (be->kind == LOOM_BACKEND_CPU && !has) {
                fprintf(stderr, "op table: %s has no CPU kernel\n", def->name);
                missing++;
            } else if (be->kind != LOOM_BACKEND_CPU && !has && !def->gpu_reason) {
                fprintf(stderr, "op table: %s has no %s kernel and no stated reason\n", def->name, be->name);
                missing++;
            }
        }
    }
    ck_assert_msg(missing == 0, "%d gaps in the op table's coverage (listed above)", missing);
    loom_ctx_destroy(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("op_matrix");
    TCase *tc = tcase_create("cases");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, table_coverage);
    tcase_add_loop_test(tc, test_case, 0, op_case_count);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
