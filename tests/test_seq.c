/* The sequence ops beyond the op matrix: fused attention against the
 * unfused composition on every device (forward and backward, to 1e-4 in
 * f32), the planner's arena of both, indices checked on the host (inputs,
 * constants, through a reshape) and those from the graph giving NaN or
 * nothing on every device, a learned mask refused. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct attn_cfg {
    int64_t b, hq, hkv, nq, nk, d;
    int causal;
    loom_layout layout;
    int mask;                   /* 0 none, 1 padding [B,1,1,Nk], 2 additive [Nq,Nk] */
} attn_cfg;

static void qkv_shape(const attn_cfg *c, int64_t h, int64_t n, int64_t s[4])
{
    s[0] = c->b;
    s[1] = c->layout == LOOM_LAYOUT_BNHD ? n : h;
    s[2] = c->layout == LOOM_LAYOUT_BNHD ? h : n;
    s[3] = c->d;
}

static size_t prod(const int64_t *s, int n)
{
    size_t p = 1;
    for (int i = 0; i < n; i++)
        p *= (size_t)s[i];
    return p;
}

typedef struct attn_run {
    float *out[4];              /* o, dq, dk, dv */
    size_t n[4];
    loom_plan_report plan;
} attn_run;

/* Builds o = attention (fused or the reference), loss = sum(o * w), its
 * gradients; runs it on spec over the given data (compile_only: plans). */
static attn_run run_attention(loom_ctx *ctx, const char *spec, const attn_cfg *c, int fused, float *const *data,
                              int compile_only)
{
    attn_run r = {0};
    loom_device *dev = tu_open(ctx, spec);
    loom_state *st;
    loom_graph *g;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t sq[4], sk[4], sm[4];
    qkv_shape(c, c->hq, c->nq, sq);
    qkv_shape(c, c->hkv, c->nk, sk);
    int mdim = c->mask == 1 ? 4 : 2;
    if (c->mask == 1) {
        sm[0] = c->b, sm[1] = 1, sm[2] = 1, sm[3] = c->nk;
    } else {
        sm[0] = c->nq, sm[1] = c->nk;
    }
    loom_tensor q = loom_input(g, "q", LOOM_F32, 4, sq), k = loom_input(g, "k", LOOM_F32, 4, sk),
                v = loom_input(g, "v", LOOM_F32, 4, sk);
    loom_tensor m = c->mask ? loom_input(g, "mask", LOOM_F32, mdim, sm) : LOOM_NONE;
    loom_attention_opts o = loom_attention_opts_default();
    o.causal = c->causal;
    o.layout = c->layout;
    loom_tensor y = fused ? loom_attention(g, q, k, v, m, &o) : loom_attention_reference(g, q, k, v, m, &o);
    ck_assert_msg(y.id, "%s", loom_graph_error(g));
    size_t ny = prod(sq, 4);
    float *w = malloc(ny * sizeof *w);
    tu_fill(w, ny, 91, -1, 1);
    loom_tensor loss = loom_sum_all(g, loom_mul(g, y, loom_constant(g, "w", LOOM_F32, 4, sq, w)));
    free(w);
    loom_tensor wrt[3] = {q, k, v};
    ck_assert_int_eq(loom_backward(g, loss, wrt, 3), LOOM_OK);
    ck_assert_int_eq(loom_output(g, y, "o"), LOOM_OK);
    static const char *const gn[3] = {"dq", "dk", "dv"};
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(loom_output(g, loom_grad(g, wrt[i]), gn[i]), LOOM_OK);
    loom_program *p = NULL;
    ck_assert_msg(loom_compile(g, dev, st, NULL, &p) == LOOM_OK, "%s: %s", spec, loom_last_error(ctx));
    ck_assert_int_eq(loom_program_plan(p, &r.plan), LOOM_OK);
    if (!compile_only) {
        const char *names[4] = {"q", "k", "v", "mask"};
        size_t sizes[4] = {ny, prod(sk, 4), prod(sk, 4), prod(sm, mdim)};
        for (int i = 0; i < (c->mask ? 4 : 3); i++)
            ck_assert_int_eq(loom_program_set_input(p, names[i], data[i], sizes[i] * 4), LOOM_OK);
        ck_assert_msg(loom_program_run(p) == LOOM_OK, "%s: %s", spec, loom_last_error(ctx));
        const char *outs[4] = {"o", "dq", "dk", "dv"};
        size_t on[4] = {ny, ny, prod(sk, 4), prod(sk, 4)};
        for (int i = 0; i < 4; i++) {
            r.n[i] = on[i];
            r.out[i] = malloc(on[i] * sizeof(float));
            ck_assert_int_eq(loom_program_read(p, outs[i], r.out[i], on[i] * 4), LOOM_OK);
        }
        ck_assert_uint_eq(loom_validation_errors(ctx), 0);
    }
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
    return r;
}

static void free_run(attn_run *r)
{
    for (int i = 0; i < 4; i++)
        free(r->out[i]);
}

static const attn_cfg configs[] = {
    {2, 4, 2, 77, 77, 64, 1, LOOM_LAYOUT_BHND, 0},   /* grouped-query, causal, 77 fits no tile */
    {1, 2, 2, 5, 130, 32, 0, LOOM_LAYOUT_BNHD, 1},   /* padding, cross lengths, BNHD */
    {2, 3, 1, 129, 129, 80, 0, LOOM_LAYOUT_BHND, 2}, /* multi-query, an additive mask, head size 80 */
    {1, 1, 1, 1, 1, 32, 1, LOOM_LAYOUT_BHND, 0},     /* sequence 1 */
};

/* The fused op and the composition of batched matmuls and a softmax agree
 * to 1e-4 on every device, forward and every gradient. */
START_TEST(fused_matches_reference)
{
    const attn_cfg *c = &configs[_i];
    loom_ctx *ctx = tu_ctx();
    char specs[16][32];
    int nd = tu_devices(ctx, specs, 16);
    int64_t sq[4], sk[4];
    qkv_shape(c, c->hq, c->nq, sq);
    qkv_shape(c, c->hkv, c->nk, sk);
    size_t n[4] = {prod(sq, 4), prod(sk, 4), prod(sk, 4), c->mask == 1 ? (size_t)(c->b * c->nk) : (size_t)(c->nq * c->nk)};
    float *data[4];
    for (int i = 0; i < 4; i++) {
        data[i] = malloc(n[i] * sizeof(float));
        tu_fill(data[i], n[i], 7u + (uint32_t)i, -1.5f, 1.5f);
    }
    if (c->mask == 1) /* the last 7 keys hidden */
        for (size_t j = 0; j < n[3]; j++)
            data[3][j] = (int64_t)(j % (size_t)c->nk) >= c->nk - 7 ? -INFINITY : 0.0f;
    for (int d = 0; d < nd; d++) {
        attn_run f = run_attention(ctx, specs[d], c, 1, data, 0);
        attn_run r = run_attention(ctx, specs[d], c, 0, data, 0);
        for (int i = 0; i < 4; i++) {
            double e = tu_err(f.out[i], r.out[i], f.n[i], 1e-4, 1e-4);
            ck_assert_msg(e <= 1.0, "config %d on %s: %s of the fused attention differs from the composition: "
                          "normalized error %g", _i, specs[d], (const char *const[]){"o", "dq", "dk", "dv"}[i], e);
        }
        free_run(&f);
        free_run(&r);
    }
    for (int i = 0; i < 4; i++)
        free(data[i]);
    loom_ctx_destroy(ctx);
}
END_TEST

/* The fused attention's arena (forward and backward) holds no N x N
 * scores: it is smaller than the composition's by at least one such
 * matrix per head. */
START_TEST(fused_arena_smaller)
{
    loom_ctx *ctx = tu_ctx();
    attn_cfg c = {1, 2, 2, 256, 256, 64, 1, LOOM_LAYOUT_BHND, 0};
    attn_run f = run_attention(ctx, "cpu", &c, 1, NULL, 1);
    attn_run r = run_attention(ctx, "cpu", &c, 0, NULL, 1);
    uint64_t scores = (uint64_t)(c.b * c.hq * c.nq * c.nk) * 4;
    ck_assert_msg(r.plan.arena_bytes >= f.plan.arena_bytes + scores,
                  "fused arena %llu, reference %llu, one score matrix %llu", (unsigned long long)f.plan.arena_bytes,
                  (unsigned long long)r.plan.arena_bytes, (unsigned long long)scores);
    loom_ctx_destroy(ctx);
}
END_TEST

typedef struct fixture {
    loom_ctx *ctx;
    loom_device *dev;
    loom_state *st;
    loom_graph *g;
} fixture;

static fixture fx_open(const char *spec)
{
    fixture f;
    f.ctx = tu_ctx();
    f.dev = tu_open(f.ctx, spec);
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

/* Indices from the host are checked where they come in, with the index,
 * its place and the bound in the message; through a reshape too. */
START_TEST(host_indices_checked)
{
    fixture f = fx_open("cpu");
    int64_t ts[2] = {33, 4}, is[1] = {6}, is2[2] = {2, 3};
    loom_tensor table = loom_input(f.g, "table", LOOM_F32, 2, ts);
    loom_tensor ids = loom_input(f.g, "ids", LOOM_I32, 1, is);
    loom_output(f.g, loom_embedding(f.g, table, loom_reshape(f.g, ids, 2, is2)), "y");
    loom_program *p;
    ck_assert_int_eq(loom_compile(f.g, f.dev, f.st, NULL, &p), LOOM_OK);
    int32_t good[6] = {0, 32, 5, 1, 2, 3}, bad[6] = {0, 1, 40, 1, 2, 3}, neg[6] = {0, 1, 2, -1, 2, 3};
    ck_assert_int_eq(loom_program_set_input(p, "ids", good, sizeof good), LOOM_OK);
    ck_assert_int_eq(loom_program_set_input(p, "ids", bad, sizeof bad), LOOM_E_RANGE);
    ck_assert_ptr_nonnull(strstr(loom_last_error(f.ctx), "take: index 40 at index 2 of the input \"ids\" is outside [0, 33)"));
    ck_assert_int_eq(loom_program_set_input(p, "ids", neg, sizeof neg), LOOM_E_RANGE);
    ck_assert_ptr_nonnull(strstr(loom_last_error(f.ctx), "index -1 at index 3"));
    loom_program_destroy(p);
    fx_close(&f);

    /* a constant: refused by the compile */
    f = fx_open("cpu");
    int64_t xs[2] = {4, 5}, gs[2] = {4, 2};
    int32_t gidx[8] = {0, 4, 1, 2, 3, 0, 5, 1};
    loom_tensor x = loom_input(f.g, "x", LOOM_F32, 2, xs);
    loom_output(f.g, loom_gather(f.g, x, 1, loom_constant(f.g, "gidx", LOOM_I32, 2, gs, gidx)), "y");
    ck_assert_int_eq(loom_compile(f.g, f.dev, f.st, NULL, &p), LOOM_E_RANGE);
    ck_assert_ptr_nonnull(strstr(loom_last_error(f.ctx), "gather: index 5 at index 6 of the constant \"gidx\" is "
                                                         "outside [0, 5)"));
    fx_close(&f);

    /* the scatter-add's bound is its output's axis */
    f = fx_open("cpu");
    int64_t bs[2] = {3, 4}, ss[2] = {3, 2};
    loom_tensor base = loom_input(f.g, "base", LOOM_F32, 2, bs);
    loom_tensor sidx = loom_input(f.g, "sidx", LOOM_I32, 2, ss);
    loom_output(f.g, loom_scatter_add(f.g, base, 1, sidx, loom_input(f.g, "src", LOOM_F32, 2, ss)), "y");
    ck_assert_int_eq(loom_compile(f.g, f.dev, f.st, NULL, &p), LOOM_OK);
    int32_t sbad[6] = {0, 1, 2, 3, 4, 0};
    ck_assert_int_eq(loom_program_set_input(p, "sidx", sbad, sizeof sbad), LOOM_E_RANGE);
    ck_assert_ptr_nonnull(strstr(loom_last_error(f.ctx), "index 4 at index 4 of the input \"sidx\" is outside [0, 4)"));
    loom_program_destroy(p);
    fx_close(&f);
}
END_TEST

/* Indices made inside the graph reach the kernels: every device gives NaN
 * for a take out of range and adds nothing for such a scatter, reading
 * and writing nothing outside the tensors (guard zones). */
START_TEST(graph_indices_safe)
{
    loom_ctx *ctx = tu_ctx();
    char specs[16][32];
    int nd = tu_devices(ctx, specs, 16);
    for (int d = 0; d < nd; d++) {
        fixture f = fx_open(specs[d]);
        int64_t ts[2] = {5, 3}, is[1] = {4}, bs[2] = {2, 3};
        loom_tensor table = loom_input(f.g, "table", LOOM_F32, 2, ts);
        loom_tensor ids = loom_cast(f.g, loom_input(f.g, "fids", LOOM_F32, 1, is), LOOM_I32);
        loom_output(f.g, loom_take(f.g, table, ids, 0), "y");
        loom_tensor base = loom_input(f.g, "base", LOOM_F32, 2, bs);
        int64_t s2[2] = {2, 2};
        loom_tensor sids = loom_reshape(f.g, ids, 2, s2);
        int64_t src_s[2] = {2, 2};
        float src[4] = {10, 20, 30, 40};
        loom_output(f.g, loom_scatter_add(f.g, base, 1, sids, loom_constant(f.g, "src", LOOM_F32, 2, src_s, src)), "z");
        loom_compile_opts o = {0};
        o.guard = 1;
        loom_program *p;
        ck_assert_msg(loom_compile(f.g, f.dev, f.st, &o, &p) == LOOM_OK, "%s: %s", specs[d], loom_last_error(f.ctx));
        float tv[15], fids[4] = {1, 7, -3, 2}, bv[6] = {0};
        for (int i = 0; i < 15; i++)
            tv[i] = (float)i;
        ck_assert_int_eq(loom_program_set_input(p, "table", tv, sizeof tv), LOOM_OK);
        ck_assert_int_eq(loom_program_set_input(p, "fids", fids, sizeof fids), LOOM_OK);
        ck_assert_int_eq(loom_program_set_input(p, "base", bv, sizeof bv), LOOM_OK);
        ck_assert_int_eq(loom_program_run(p), LOOM_OK);
        ck_assert_int_eq(loom_program_check_guards(p), LOOM_OK);
        float y[12], z[6];
        ck_assert_int_eq(loom_program_read(p, "y", y, sizeof y), LOOM_OK);
        ck_assert_int_eq(loom_program_read(p, "z", z, sizeof z), LOOM_OK);
        for (int j = 0; j < 3; j++) {
            ck_assert_msg(y[j] == tv[3 + j] && y[9 + j] == tv[6 + j], "%s: rows 1 and 2", specs[d]);
            ck_assert_msg(isnan(y[3 + j]) && isnan(y[6 + j]), "%s: rows 7 and -3 are not NaN", specs[d]);
        }
        /* row 0 of z gets 10 at column 1 (7 adds nothing); row 1 gets 40
         * at column 2 (-3 adds nothing) */
        float want[6] = {0, 10, 0, 0, 0, 40};
        for (int j = 0; j < 6; j++)
            ck_assert_msg(z[j] == want[j], "%s: z[%d] = %g, want %g", specs[d], j, (double)z[j], (double)want[j]);
        loom_program_destroy(p);
        fx_close(&f);
    }
    loom_ctx_destroy(ctx);
}
END_TEST

/* Indices from the state (an i32 tensor nothing checks on the host) reach
 * the kernels too: NaN rows, nothing written outside. */
START_TEST(state_indices_safe)
{
    loom_ctx *ctx = tu_ctx();
    char specs[16][32];
    int nd = tu_devices(ctx, specs, 16);
    for (int d = 0; d < nd; d++) {
        fixture f = fx_open(specs[d]);
        int64_t ts[2] = {4, 2}, is[1] = {3};
        int32_t ids[3] = {3, 4, -1};
        ck_assert_int_eq(loom_state_write(f.st, "ids", LOOM_I32, 1, is, ids), LOOM_OK);
        loom_tensor table = loom_input(f.g, "table", LOOM_F32, 2, ts);
        loom_output(f.g, loom_embedding(f.g, table, loom_param(f.g, "ids", LOOM_I32, 1, is, 0)), "y");
        loom_compile_opts o = {0};
        o.guard = 1;
        loom_program *p;
        ck_assert_msg(loom_compile(f.g, f.dev, f.st, &o, &p) == LOOM_OK, "%s: %s", specs[d], loom_last_error(f.ctx));
        float tv[8] = {0, 1, 2, 3, 4, 5, 6, 7}, y[6];
        ck_assert_int_eq(loom_program_set_input(p, "table", tv, sizeof tv), LOOM_OK);
        ck_assert_int_eq(loom_program_run(p), LOOM_OK);
        ck_assert_int_eq(loom_program_check_guards(p), LOOM_OK);
        ck_assert_int_eq(loom_program_read(p, "y", y, sizeof y), LOOM_OK);
        ck_assert_msg(y[0] == 6 && y[1] == 7 && isnan(y[2]) && isnan(y[3]) && isnan(y[4]) && isnan(y[5]),
                      "%s: %g %g %g %g %g %g", specs[d], (double)y[0], (double)y[1], (double)y[2], (double)y[3],
                      (double)y[4], (double)y[5]);
        loom_program_destroy(p);
        fx_close(&f);
    }
    loom_ctx_destroy(ctx);
}
END_TEST

/* The embedding's gradient sums each row's contributions in one order on
 * every device: many repeats of a few rows give the same bits twice, and
 * the CPU's bits. */
START_TEST(scatter_deterministic)
{
    enum { IDS = 3000, ROWS = 7, DIM = 5 };
    loom_ctx *ctx = tu_ctx();
    char specs[16][32];
    int nd = tu_devices(ctx, specs, 16);
    int32_t *ids = malloc(IDS * sizeof *ids);
    float *dy = malloc(IDS * DIM * sizeof *dy), ref[ROWS * DIM];
    for (int i = 0; i < IDS; i++)
        ids[i] = (i * 7 + i / 11) % ROWS;
    tu_fill(dy, IDS * DIM, 17, -1, 1);
    for (int d = 0; d < nd; d++) {
        fixture f = fx_open(specs[d]);
        int64_t ts[2] = {ROWS, DIM}, is[1] = {IDS}, ds[2] = {IDS, DIM};
        loom_tensor table = loom_input(f.g, "table", LOOM_F32, 2, ts);
        loom_tensor y = loom_embedding(f.g, table, loom_input(f.g, "ids", LOOM_I32, 1, is));
        loom_tensor loss = loom_sum_all(f.g, loom_mul(f.g, y, loom_input(f.g, "dy", LOOM_F32, 2, ds)));
        ck_assert_int_eq(loom_backward(f.g, loss, &table, 1), LOOM_OK);
        loom_output(f.g, loom_grad(f.g, table), "dtable");
        loom_program *p;
        ck_assert_msg(loom_compile(f.g, f.dev, f.st, NULL, &p) == LOOM_OK, "%s: %s", specs[d], loom_last_error(f.ctx));
        float a[ROWS * DIM], b[ROWS * DIM];
        ck_assert_int_eq(loom_program_set_input(p, "ids", ids, IDS * sizeof *ids), LOOM_OK);
        ck_assert_int_eq(loom_program_set_input(p, "dy", dy, IDS * DIM * sizeof *dy), LOOM_OK);
        ck_assert_int_eq(loom_program_run(p), LOOM_OK);
        ck_assert_int_eq(loom_program_read(p, "dtable", a, sizeof a), LOOM_OK);
        ck_assert_int_eq(loom_program_run(p), LOOM_OK);
        ck_assert_int_eq(loom_program_read(p, "dtable", b, sizeof b), LOOM_OK);
        ck_assert_msg(!memcmp(a, b, sizeof a), "%s: two runs differ", specs[d]);
        if (d == 0)
            memcpy(ref, a, sizeof a);
        ck_assert_msg(!memcmp(a, ref, sizeof a), "%s: the sums differ from %s's in their bits", specs[d], specs[0]);
        loom_program_destroy(p);
        fx_close(&f);
    }
    free(ids);
    free(dy);
    loom_ctx_destroy(ctx);
}
END_TEST

/* A mask that depends on a trainable parameter would need a gradient the
 * fused op does not give: refused by name, not silently zero. */
START_TEST(learned_mask_refused)
{
    fixture f = fx_open("cpu");
    int64_t s[4] = {1, 1, 3, 8}, ms[2] = {3, 3};
    loom_tensor q = loom_param(f.g, "q", LOOM_F32, 4, s, 1);
    loom_tensor bias = loom_param(f.g, "bias", LOOM_F32, 2, ms, 1);
    loom_tensor y = loom_attention(f.g, q, q, q, bias, NULL);
    ck_assert_int_eq(loom_backward(f.g, loom_sum_all(f.g, y), NULL, 0), LOOM_E_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(loom_graph_error(f.g), "mask \"bias\""));
    fx_close(&f);
    /* shapes: a head count that does not divide, a mask that does not broadcast */
    f = fx_open("cpu");
    int64_t kq[4] = {1, 3, 4, 8}, kk[4] = {1, 2, 4, 8}, bad[2] = {5, 4};
    loom_tensor a = loom_input(f.g, "a", LOOM_F32, 4, kq), b = loom_input(f.g, "b", LOOM_F32, 4, kk);
    ck_assert_int_eq(loom_attention(f.g, a, b, b, LOOM_NONE, NULL).id, 0);
    ck_assert_int_eq(loom_graph_status(f.g), LOOM_E_SHAPE);
    ck_assert_ptr_nonnull(strstr(loom_graph_error(f.g), "head count"));
    fx_close(&f);
    f = fx_open("cpu");
    a = loom_input(f.g, "a", LOOM_F32, 4, kq);
    ck_assert_int_eq(loom_attention(f.g, a, a, a, loom_input(f.g, "m", LOOM_F32, 2, bad), NULL).id, 0);
    ck_assert_ptr_nonnull(strstr(loom_graph_error(f.g), "does not broadcast to the scores [1,3,4,4]"));
    fx_close(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("seq");
    TCase *tc = tcase_create("attention");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, fused_matches_reference, 0, (int)(sizeof configs / sizeof configs[0]));
    tcase_add_test(tc, fused_arena_smaller);
    tcase_add_test(tc, learned_mask_refused);
    suite_add_tcase(s, tc);
    TCase *ti = tcase_create("indices");
    tcase_set_timeout(ti, 300);
    tcase_add_test(ti, host_indices_checked);
    tcase_add_test(ti, graph_indices_safe);
    tcase_add_test(ti, state_indices_safe);
    tcase_add_test(ti, scatter_deterministic);
    suite_add_tcase(s, ti);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
