/* A test allocator that fails the Nth allocation: for every N through a
 * compile and a run, a clean status and no leak. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

typedef struct counting {
    long n;            /* allocations so far */
    long fail_at;      /* fail the allocation with this number (1-based); 0: never */
    long live;         /* blocks not yet freed */
    int failed;
} counting;

static void *alloc_fn(void *user, void *ptr, size_t osize, size_t nsize)
{
    counting *c = user;
    (void)osize;
    if (nsize == 0) {
        if (ptr)
            c->live--;
        free(ptr);
        return NULL;
    }
    c->n++;
    if (c->fail_at && c->n == c->fail_at) {
        c->failed = 1;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p && !ptr)
        c->live++;
    return p;
}

static void quiet(void *u, loom_log_level l, const char *m)
{
    (void)u, (void)l, (void)m;
}

/* Builds, compiles and runs a small MLP training step under the allocator;
 * returns the first failing status (LOOM_OK if none failed). */
static loom_status scenario(counting *c)
{
    loom_ctx_opts o;
    loom_ctx_opts_default(&o);
    o.alloc = alloc_fn;
    o.alloc_user = c;
    o.log = quiet;
    o.backends = 1 << LOOM_BACKEND_CPU;
    loom_ctx *ctx = NULL;
    loom_status s = loom_ctx_create(&o, &ctx);
    if (s != LOOM_OK)
        return s;
    loom_device *dev = NULL;
    loom_state *st = NULL;
    loom_graph *g = NULL;
    loom_program *p = NULL;
    if ((s = loom_device_open(ctx, "cpu", &dev)) != LOOM_OK)
        goto out;
    if ((s = loom_state_create(dev, &st)) != LOOM_OK)
        goto out;
    if ((s = loom_graph_create(ctx, &g)) != LOOM_OK)
        goto out;
    int64_t xs[2] = {8, 12}, ws[2] = {12, 5}, bs[1] = {5}, ls[1] = {8};
    loom_tensor x = loom_input(g, "x", LOOM_F32, 2, xs);
    loom_tensor lab = loom_input(g, "labels", LOOM_I32, 1, ls);
    loom_tensor w = loom_param(g, "w", LOOM_F32, 2, ws, 1);
    loom_tensor b = loom_param(g, "b", LOOM_F32, 1, bs, 1);
    loom_tensor z = loom_add(g, loom_matmul(g, loom_relu(g, x), w, 0, 0), b);
    loom_tensor loss = loom_sparse_cross_entropy(g, z, lab);
    loom_output(g, loss, "loss");
    if ((s = loom_backward(g, loss, NULL, 0)) != LOOM_OK)
        goto out;
    loom_optimizer opt = loom_optimizer_default(LOOM_OPT_ADAM);
    opt.clip_norm = 1.0f;
    if ((s = loom_optimize(g, &opt)) != LOOM_OK)
        goto out;
    if ((s = loom_compile(g, dev, st, NULL, &p)) != LOOM_OK)
        goto out;
    float xv[96];
    int32_t lv[8] = {0, 1, 2, 3, 4, 0, 1, 2};
    tu_fill(xv, 96, 3, -1, 1);
    if ((s = loom_program_set_input(p, "x", xv, sizeof xv)) != LOOM_OK)
        goto out;
    if ((s = loom_program_set_input(p, "labels", lv, sizeof lv)) != LOOM_OK)
        goto out;
    s = loom_program_run(p);
out:
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
    return s;
}

START_TEST(every_allocation_fails_cleanly)
{
    counting c = {0};
    ck_assert_int_eq(scenario(&c), LOOM_OK);
    ck_assert_int_eq(c.live, 0);
    long total = c.n;
    ck_assert_int_gt(total, 20);
    for (long n = 1; n <= total; n++) {
        counting f = {0};
        f.fail_at = n;
        loom_status s = scenario(&f);
        ck_assert_msg(f.failed, "allocation %ld was never made", n);
        ck_assert_msg(s == LOOM_E_OOM, "failing allocation %ld of %ld gave %s, not out of memory", n, total,
                      loom_status_str(s));
        ck_assert_msg(f.live == 0, "failing allocation %ld of %ld leaked %ld blocks", n, total, f.live);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("oom");
    TCase *tc = tcase_create("oom");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, every_allocation_fails_cleanly);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
