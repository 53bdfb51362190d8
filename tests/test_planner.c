/* The memory planner on its own (random DAGs) and on the MLP graph. */
#include "core/planner.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

/* A random DAG of `steps` nodes; each node reads 1-3 earlier ones. Node i
 * defines tensor i at step i (uploads at step 0); last use is its last
 * reader; some are outputs (live to the end). Element-wise nodes of the
 * same size as a dying input may write in place. */
static int make_dag(loom_plan_tensor *t, int steps, int *nupload)
{
    int nin[512][3], cnt[512];
    int up = 1 + (int)rnd(3);
    *nupload = up;
    for (int i = 0; i < steps; i++) {
        t[i].bytes = 1 + rnd(4) * 1000 + rnd(977);
        t[i].first = i < up ? 0 : i;
        t[i].last = i < up ? steps - 1 : i;
        t[i].inplace_src = -1;
        cnt[i] = 0;
        if (i >= up) {
            cnt[i] = 1 + (int)rnd(3);
            for (int k = 0; k < cnt[i]; k++) {
                int src = (int)rnd((uint32_t)i);
                nin[i][k] = src;
                if (t[src].last < i)
                    t[src].last = i;
            }
        }
    }
    for (int i = up; i < steps; i++)
        if (rnd(4) == 0)
            t[i].last = steps - 1; /* an output */
    for (int i = up; i < steps; i++)
        for (int k = 0; k < cnt[i]; k++) {
            int src = nin[i][k];
            if (src >= up && t[src].last == i && rnd(2)) {
                t[i].bytes = t[src].bytes; /* same size: may go in place */
                t[i].inplace_src = src;
                break;
            }
        }
    return steps;
}

START_TEST(random_dags)
{
    loom_ctx *ctx = tu_ctx();
    rng_state = 0x1234567u;
    static loom_plan_tensor t[512];
    int total_inplace = 0;
    for (int trial = 0; trial < 1000; trial++) {
        int steps = 2 + (int)rnd(200);
        int up;
        make_dag(t, steps, &up);
        uint64_t align = (uint64_t[]){1, 16, 64, 256}[rnd(4)];
        /* the planner wants tensors in order of first use: uploads are at
         * the front already */
        loom_plan_result r;
        ck_assert_int_eq(loom_plan(ctx, t, steps, steps, align, &r), LOOM_OK);
        ck_assert_uint_le(r.lower_bound, r.arena_bytes);
        ck_assert_uint_le(r.arena_bytes, r.naive_bytes);
        uint64_t peak = 0;
        for (int s = 0; s < steps; s++)
            peak = r.live_bytes[s] > peak ? r.live_bytes[s] : peak;
        ck_assert_uint_eq(peak, r.lower_bound);
        total_inplace += r.inplace;
        for (int i = 0; i < steps; i++) {
            ck_assert_uint_eq(t[i].offset % align, 0);
            uint64_t si = (t[i].bytes + align - 1) / align * align;
            ck_assert_uint_le(t[i].offset + si, r.arena_bytes);
            for (int j = i + 1; j < steps; j++) {
                if (t[i].unit == t[j].unit)
                    continue; /* in-place chain: shares memory by design */
                int live_together = !(t[i].last < t[j].first || t[j].last < t[i].first);
                if (!live_together)
                    continue;
                uint64_t sj = (t[j].bytes + align - 1) / align * align;
                int overlap = t[i].offset < t[j].offset + sj && t[j].offset < t[i].offset + si;
                ck_assert_msg(!overlap, "trial %d: tensors %d [%d,%d] and %d [%d,%d] overlap", trial, i, t[i].first,
                              t[i].last, j, t[j].first, t[j].last);
            }
        }
        /* an in-place write really shares its input's block */
        for (int i = 0; i < steps; i++)
            if (t[i].inplace_src >= 0 && t[i].unit == t[t[i].inplace_src].unit)
                ck_assert_uint_eq(t[i].offset, t[t[i].inplace_src].offset);
        loom_plan_result_free(ctx, &r);
    }
    ck_assert_int_gt(total_inplace, 100);
    loom_ctx_destroy(ctx);
}
END_TEST

/* Tensors given out of order of first step (a value a later node
 * computes, node.by) are placed at their first step like the others: each
 * its own block while they overlap. A step outside the program is refused,
 * naming the tensor. */
START_TEST(out_of_order_placed)
{
    loom_ctx *ctx = tu_ctx();
    loom_plan_tensor t[3] = {
        {100, 0, 2, -1, 0, 0},
        {100, 2, 2, -1, 0, 0},
        {100, 1, 2, -1, 0, 0},
    };
    loom_plan_result r;
    ck_assert_int_eq(loom_plan(ctx, t, 3, 3, 1, &r), LOOM_OK);
    ck_assert_uint_eq(r.arena_bytes, 300);
    ck_assert(t[0].offset != t[1].offset && t[1].offset != t[2].offset && t[0].offset != t[2].offset);
    loom_plan_result_free(ctx, &r);
    /* the one defined last takes the block of one that died before it */
    t[0].last = 0;
    ck_assert_int_eq(loom_plan(ctx, t, 3, 3, 1, &r), LOOM_OK);
    ck_assert_uint_eq(r.arena_bytes, 200);
    ck_assert(t[1].offset != t[2].offset);
    loom_plan_result_free(ctx, &r);
    t[2].first = 3;
    ck_assert_int_eq(loom_plan(ctx, t, 3, 3, 1, &r), LOOM_E_INVALID);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "tensor 2 (steps 3 to 2) outside the 3 steps"));
    loom_ctx_destroy(ctx);
}
END_TEST

START_TEST(hand_checked)
{
    /* a -> b -> c, each 100 bytes, align 1: a and c can share. */
    loom_ctx *ctx = tu_ctx();
    loom_plan_tensor t[3] = {
        {100, 0, 1, -1, 0, 0},
        {100, 1, 2, -1, 0, 0},
        {100, 2, 2, -1, 0, 0},
    };
    loom_plan_result r;
    ck_assert_int_eq(loom_plan(ctx, t, 3, 3, 1, &r), LOOM_OK);
    ck_assert_uint_eq(r.arena_bytes, 200);
    ck_assert_uint_eq(r.lower_bound, 200);
    ck_assert_uint_eq(r.naive_bytes, 300);
    ck_assert_uint_eq(t[2].offset, t[0].offset);
    loom_plan_result_free(ctx, &r);
    /* the same chain in place: one block */
    t[1].inplace_src = 0;
    t[2].inplace_src = 1;
    ck_assert_int_eq(loom_plan(ctx, t, 3, 3, 1, &r), LOOM_OK);
    ck_assert_uint_eq(r.arena_bytes, 100);
    ck_assert_int_eq(r.inplace, 2);
    loom_plan_result_free(ctx, &r);
    loom_ctx_destroy(ctx);
}
END_TEST

static loom_plan_report plan_mlp(loom_ctx *ctx, loom_program **pp, loom_graph **gp, loom_state **sp,
                                 loom_device **dp, int64_t batch, int fusion, int train)
{
    *dp = tu_open(ctx, "cpu");
    ck_assert_int_eq(loom_state_create(*dp, sp), LOOM_OK);
    ck_assert_int_eq(loom_graph_create(ctx, gp), LOOM_OK);
    loom_graph *g = *gp;
    int64_t xs[2] = {batch, 784};
    loom_tensor h = loom_input(g, "x", LOOM_F32, 2, xs);
    int64_t dims[4] = {784, 64, 64, 10};
    for (int l = 0; l < 3; l++) {
        char kn[16], bn[16];
        snprintf(kn, sizeof kn, "k%d", l);
        snprintf(bn, sizeof bn, "b%d", l);
        int64_t ks[2] = {dims[l], dims[l + 1]}, bs[1] = {dims[l + 1]};
        h = loom_add(g, loom_matmul(g, h, loom_param(g, kn, LOOM_F32, 2, ks, 1), 0, 0),
                     loom_param(g, bn, LOOM_F32, 1, bs, 1));
        h = l < 2 ? loom_relu(g, h) : loom_softmax(g, h);
    }
    loom_output(g, h, "probs");
    if (train) {
        ck_assert_int_eq(loom_backward(g, loom_sum_all(g, loom_square(g, h)), NULL, 0), LOOM_OK);
        loom_optimizer sgd = loom_optimizer_default(LOOM_OPT_SGD);
        ck_assert_int_eq(loom_optimize(g, &sgd), LOOM_OK);
    }
    loom_compile_opts o = {.no_fusion = !fusion};
    ck_assert_int_eq(loom_compile(g, *dp, *sp, &o, pp), LOOM_OK);
    loom_plan_report r;
    ck_assert_int_eq(loom_program_plan(*pp, &r), LOOM_OK);
    return r;
}

START_TEST(mlp_graph)
{
    loom_ctx *ctx = tu_ctx();
    loom_program *p;
    loom_graph *g;
    loom_state *st;
    loom_device *dev;
    loom_plan_report r = plan_mlp(ctx, &p, &g, &st, &dev, 256, 0, 0);
    ck_assert_uint_le(r.lower_bound, r.arena_bytes);
    ck_assert_uint_le(r.arena_bytes, r.naive_bytes);
    /* within 10% of the lower bound (the figure) */
    ck_assert_uint_le(r.arena_bytes * 10, r.lower_bound * 11);
    /* the input alone is 256*784*4 bytes and lives through the whole run */
    ck_assert_uint_ge(r.lower_bound, 256u * 784u * 4u);
    ck_assert_int_gt(r.inplace, 0);
    ck_assert_uint_eq(r.state_bytes, (784 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10) * 4);
    ck_assert_int_eq(r.steps, loom_graph_node_count(g));
    ck_assert_int_eq(r.fused, 0);
    ck_assert_int_eq(r.dispatches, 9);
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
    /* Fused, each layer is one node: matmul + bias (+ relu on the CPU),
     * and the arena holds no pre-activation tensor. */
    loom_plan_report f = plan_mlp(ctx, &p, &g, &st, &dev, 256, 1, 0);
    ck_assert_int_eq(f.fused, 3);
    ck_assert_int_eq(f.dispatches, 4);
    ck_assert_uint_le(f.arena_bytes, r.arena_bytes);
    ck_assert_uint_lt(f.naive_bytes, r.naive_bytes);
    ck_assert_uint_le(f.lower_bound, f.arena_bytes);
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* The backward pass fuses too: the matmul that carries a gradient back
 * into a relu layer applies relu's derivative in its epilogue. */
START_TEST(mlp_train_graph)
{
    loom_ctx *ctx = tu_ctx();
    loom_program *p;
    loom_graph *g;
    loom_state *st;
    loom_device *dev;
    loom_plan_report r = plan_mlp(ctx, &p, &g, &st, &dev, 64, 0, 1);
    ck_assert_int_eq(r.fused, 0);
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_plan_report f = plan_mlp(ctx, &p, &g, &st, &dev, 64, 1, 1);
    /* forward: bias + relu twice, bias once; backward: two relu gradients;
     * the three biases' gradients summed by their updates */
    ck_assert_int_eq(f.fused, 3 + 2 + 3);
    ck_assert_int_eq(r.dispatches - f.dispatches, 2 + 2 + 1 + 1 + 1 + 3);
    ck_assert_uint_le(f.arena_bytes, r.arena_bytes);
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("planner");
    TCase *tc = tcase_create("planner");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, hand_checked);
    tcase_add_test(tc, out_of_order_placed);
    tcase_add_test(tc, random_dags);
    tcase_add_test(tc, mlp_graph);
    tcase_add_test(tc, mlp_train_graph);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
