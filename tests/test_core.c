/* Context, devices, errors and the graph's sticky error rules. */
#include "testutil.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

START_TEST(status_strings)
{
    ck_assert_str_eq(loom_status_str(LOOM_OK), "ok");
    ck_assert_str_eq(loom_status_str(LOOM_E_SHAPE), "shape mismatch");
    ck_assert_str_eq(loom_status_str(LOOM_E_OOM), "out of memory");
    ck_assert_str_eq(loom_status_str((loom_status)999), "unknown status");
    ck_assert_int_eq(loom_dtype_size(LOOM_F32), 4);
    ck_assert_int_eq(loom_dtype_size(LOOM_I32), 4);
    ck_assert_int_eq(loom_dtype_size(LOOM_F16), 2);
    ck_assert_int_eq(loom_dtype_size(LOOM_BF16), 2);
    ck_assert_int_eq(loom_dtype_size(LOOM_I8), 1);
}
END_TEST

START_TEST(devices_listed)
{
    loom_ctx *ctx = tu_ctx();
    int n = loom_device_count(ctx);
    ck_assert_int_ge(n, 1);
    loom_device_info d;
    ck_assert_int_eq(loom_device_get_info(ctx, 0, &d), LOOM_OK);
    ck_assert_str_eq(d.spec, "cpu");
    ck_assert_int_eq(d.can_run, 1);
    ck_assert_int_eq(d.backend, LOOM_BACKEND_CPU);
    ck_assert_int_eq(loom_device_get_info(ctx, n, &d), LOOM_E_INVALID);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "out of range"));
    /* Every API the loaders report is listed with a spec of its backend. */
    for (int i = 1; i < n; i++) {
        ck_assert_int_eq(loom_device_get_info(ctx, i, &d), LOOM_OK);
        ck_assert(!strncmp(d.spec, "vulkan:", 7) || !strncmp(d.spec, "opencl:", 7));
        ck_assert(strlen(d.name) > 0);
    }
    loom_ctx_destroy(ctx);
}
END_TEST

START_TEST(open_specs)
{
    loom_ctx *ctx = tu_ctx();
    loom_device *dev = NULL;
    ck_assert_int_eq(loom_device_open(ctx, "cpu", &dev), LOOM_OK);
    ck_assert_str_eq(loom_device_get(dev)->spec, "cpu");
    loom_device_close(dev);
    /* auto never picks a listed-only device */
    ck_assert_int_eq(loom_device_open(ctx, "auto", &dev), LOOM_OK);
    ck_assert_int_eq(loom_device_get(dev)->can_run, 1);
    loom_device_close(dev);
    ck_assert_int_eq(loom_device_open(ctx, "tpu:3", &dev), LOOM_E_INVALID);
    ck_assert_ptr_null(dev);
    const char *msg = loom_last_error(ctx);
    ck_assert_ptr_nonnull(strstr(msg, "tpu:3"));
    ck_assert_ptr_nonnull(strstr(msg, "cpu ("));   /* the list of devices */
    ck_assert_int_eq(loom_device_open(ctx, "vulkan:99", &dev), LOOM_E_INVALID);
    ck_assert_int_eq(loom_device_open(ctx, "cpu", NULL), LOOM_E_INVALID);
    ck_assert_int_eq(loom_device_open(NULL, "cpu", &dev), LOOM_E_INVALID);
    loom_ctx_destroy(ctx);
}
END_TEST

START_TEST(env_overrides_auto)
{
    setenv("LOOM_DEVICE", "nonexistent:7", 1);
    loom_ctx *ctx = tu_ctx();
    unsetenv("LOOM_DEVICE");
    loom_device *dev = NULL;
    ck_assert_int_eq(loom_device_open(ctx, "auto", &dev), LOOM_E_INVALID);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "nonexistent:7"));
    /* An explicit spec is not overridden. */
    ck_assert_int_eq(loom_device_open(ctx, "cpu", &dev), LOOM_OK);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

START_TEST(null_handles)
{
    loom_ctx *ctx = tu_ctx();
    loom_graph *g = NULL;
    ck_assert_int_eq(loom_graph_create(ctx, NULL), LOOM_E_INVALID);
    ck_assert_int_eq(loom_graph_create(NULL, &g), LOOM_E_INVALID);
    ck_assert_int_eq(loom_state_create(NULL, NULL), LOOM_E_INVALID);
    loom_state *st = NULL;
    ck_assert_int_eq(loom_state_create(NULL, &st), LOOM_E_INVALID);
    ck_assert_int_eq(loom_compile(NULL, NULL, NULL, NULL, NULL), LOOM_E_INVALID);
    ck_assert_int_eq(loom_program_run(NULL), LOOM_E_INVALID);
    ck_assert_int_eq(loom_program_set_input(NULL, "x", "", 1), LOOM_E_INVALID);
    ck_assert_int_eq(loom_program_read(NULL, "x", NULL, 0), LOOM_E_INVALID);
    ck_assert_int_eq(loom_state_read(NULL, "x", NULL, 0), LOOM_E_INVALID);
    ck_assert(loom_relu(NULL, LOOM_NONE).id == 0);
    loom_graph_destroy(NULL);
    loom_state_destroy(NULL);
    loom_program_destroy(NULL);
    loom_device_close(NULL);
    loom_ctx_destroy(NULL);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    loom_tensor bogus = {42};
    ck_assert(loom_relu(g, bogus).id == 0);
    ck_assert_int_eq(loom_graph_status(g), LOOM_E_INVALID);
    ck_assert_ptr_nonnull(strstr(loom_graph_error(g), "relu"));
    loom_graph_destroy(g);
    loom_ctx_destroy(ctx);
}
END_TEST

START_TEST(shape_error_is_sticky)
{
    loom_ctx *ctx = tu_ctx();
    loom_graph *g;
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t sa[2] = {4, 3}, sb[2] = {5, 2};
    loom_tensor a = loom_input(g, "a", LOOM_F32, 2, sa);
    loom_tensor b = loom_input(g, "b", LOOM_F32, 2, sb);
    loom_tensor c = loom_matmul(g, a, b, 0, 0);
    ck_assert_int_eq(c.id, 0);
    /* later ops on the failed graph stay failed, and the first error wins */
    loom_tensor d = loom_add(g, a, a);
    ck_assert_int_eq(d.id, 0);
    ck_assert_int_eq(loom_graph_status(g), LOOM_E_SHAPE);
    const char *m = loom_graph_error(g);
    ck_assert_ptr_nonnull(strstr(m, "matmul"));
    ck_assert_ptr_nonnull(strstr(m, "[4,3]"));
    ck_assert_ptr_nonnull(strstr(m, "[5,2]"));
    loom_device *dev = tu_open(ctx, "cpu");
    loom_state *st;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    loom_program *p = NULL;
    ck_assert_int_eq(loom_compile(g, dev, st, NULL, &p), LOOM_E_SHAPE);
    ck_assert_ptr_null(p);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "[4,3]"));
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "cpu"));
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_graph_destroy(g);
    loom_ctx_destroy(ctx);
}
END_TEST

/* numpy rules: dims align from the right; equal or 1 broadcast. */
START_TEST(broadcast_rules)
{
    static const struct {
        int na, nb;
        int64_t a[4], b[4];
        int ok;
        int nout;
        int64_t out[4];
    } cases[] = {
        {2, 1, {3, 4}, {4}, 1, 2, {3, 4}},
        {2, 2, {3, 1}, {1, 4}, 1, 2, {3, 4}},
        {3, 2, {2, 3, 4}, {3, 1}, 1, 3, {2, 3, 4}},
        {4, 0, {2, 3, 4, 5}, {0}, 1, 4, {2, 3, 4, 5}},
        {1, 1, {1}, {7}, 1, 1, {7}},
        {2, 1, {3, 4}, {3}, 0, 0, {0}},
        {2, 2, {2, 3}, {3, 2}, 0, 0, {0}},
        {3, 3, {2, 1, 4}, {3, 5, 4}, 0, 0, {0}},
    };
    loom_ctx *ctx = tu_ctx();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        loom_graph *g;
        ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
        loom_tensor a = loom_input(g, "a", LOOM_F32, cases[i].na, cases[i].a);
        loom_tensor b = loom_input(g, "b", LOOM_F32, cases[i].nb, cases[i].b);
        loom_tensor c = loom_mul(g, a, b);
        if (cases[i].ok) {
            ck_assert_msg(c.id != 0, "case %zu refused: %s", i, loom_graph_error(g));
            ck_assert_int_eq(loom_tensor_ndim(g, c), cases[i].nout);
            for (int k = 0; k < cases[i].nout; k++)
                ck_assert_int_eq(loom_tensor_dim(g, c, k), cases[i].out[k]);
        } else {
            ck_assert_msg(c.id == 0, "case %zu accepted", i);
            ck_assert_int_eq(loom_graph_status(g), LOOM_E_SHAPE);
            ck_assert_ptr_nonnull(strstr(loom_graph_error(g), "do not broadcast"));
        }
        loom_graph_destroy(g);
    }
    loom_ctx_destroy(ctx);
}
END_TEST

START_TEST(bad_leaves)
{
    loom_ctx *ctx = tu_ctx();
    loom_graph *g;
    int64_t s[5] = {1, 2, 3, 4, 5}, z[2] = {3, 0};
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    ck_assert_int_eq(loom_input(g, "x", LOOM_F32, 5, s).id, 0);
    ck_assert_int_eq(loom_graph_status(g), LOOM_E_SHAPE);
    loom_graph_destroy(g);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    ck_assert_int_eq(loom_input(g, "x", LOOM_F32, 2, z).id, 0);
    ck_assert_ptr_nonnull(strstr(loom_graph_error(g), "[3,0]"));
    loom_graph_destroy(g);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    ck_assert(loom_input(g, "x", LOOM_F32, 2, s).id != 0);
    ck_assert_int_eq(loom_input(g, "x", LOOM_F32, 2, s).id, 0);
    ck_assert_ptr_nonnull(strstr(loom_graph_error(g), "already used"));
    loom_graph_destroy(g);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    /* half precision and i8 are tensor dtypes; arithmetic on i8 is the
     * int8 ops' alone */
    ck_assert(loom_input(g, "h", LOOM_F16, 2, s).id != 0);
    ck_assert(loom_input(g, "b", LOOM_BF16, 2, s).id != 0);
    loom_tensor q8 = loom_input(g, "q", LOOM_I8, 2, s);
    ck_assert(q8.id != 0);
    ck_assert_int_eq(loom_add(g, q8, q8).id, 0);
    ck_assert_int_eq(loom_graph_status(g), LOOM_E_DTYPE);
    ck_assert_ptr_nonnull(strstr(loom_graph_error(g), "a float dtype is needed"));
    loom_graph_destroy(g);
    loom_ctx_destroy(ctx);
}
END_TEST

START_TEST(io_errors_and_use_after_destroy)
{
    loom_ctx *ctx = tu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_state *st;
    loom_graph *g;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t s[2] = {2, 3};
    loom_tensor x = loom_input(g, "x", LOOM_F32, 2, s);
    loom_output(g, loom_relu(g, x), "y");
    loom_program *p;
    ck_assert_int_eq(loom_compile(g, dev, st, NULL, &p), LOOM_OK);
    float v[6] = {-1, 2, -3, 4, -5, 6}, out[6];
    ck_assert_int_eq(loom_program_set_input(p, "x", v, 5 * sizeof(float)), LOOM_E_SHAPE);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "[2,3]"));
    ck_assert_int_eq(loom_program_set_input(p, "nope", v, sizeof v), LOOM_E_INVALID);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "nope"));
    ck_assert_int_eq(loom_program_set_input(p, "x", v, sizeof v), LOOM_OK);
    ck_assert_int_eq(loom_program_run(p), LOOM_OK);
    ck_assert_int_eq(loom_program_read(p, "y", out, sizeof out), LOOM_OK);
    ck_assert(out[0] == 0.0f && out[1] == 2.0f && out[5] == 6.0f);
    ck_assert_int_eq(loom_program_read(p, "y", out, 4), LOOM_E_SHAPE);
    /* The program outlives its state: it refuses to run, it does not crash. */
    loom_state_destroy(st);
    ck_assert_int_eq(loom_program_run(p), LOOM_E_STATE);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "destroyed"));
    loom_program_destroy(p);
    /* a graph with nothing marked as output */
    loom_graph *g2;
    ck_assert_int_eq(loom_graph_create(ctx, &g2), LOOM_OK);
    loom_relu(g2, loom_input(g2, "x", LOOM_F32, 2, s));
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    ck_assert_int_eq(loom_compile(g2, dev, st, NULL, &p), LOOM_E_INVALID);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "nothing to compute"));
    loom_state_destroy(st);
    loom_graph_destroy(g2);
    loom_graph_destroy(g);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

START_TEST(state_params)
{
    loom_ctx *ctx = tu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_state *st;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    int64_t s[2] = {2, 2}, s3[1] = {3};
    float w[4] = {1, 2, 3, 4}, r[4];
    ck_assert_int_eq(loom_state_write(st, "w", LOOM_F32, 2, s, w), LOOM_OK);
    ck_assert_int_eq(loom_state_write(st, "w", LOOM_F32, 1, s3, w), LOOM_E_SHAPE);
    ck_assert_int_eq(loom_state_read(st, "w", r, sizeof r), LOOM_OK);
    ck_assert(!memcmp(w, r, sizeof r));
    ck_assert_int_eq(loom_state_read(st, "missing", r, sizeof r), LOOM_E_INVALID);
    /* a graph param with another shape than the state's is refused */
    loom_graph *g;
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    loom_tensor p = loom_param(g, "w", LOOM_F32, 1, s3, 1);
    loom_output(g, loom_relu(g, p), "y");
    loom_program *prog = NULL;
    ck_assert_int_eq(loom_compile(g, dev, st, NULL, &prog), LOOM_E_SHAPE);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "\"w\""));
    loom_graph_destroy(g);
    /* two programs share one state */
    loom_graph *g1, *g2;
    ck_assert_int_eq(loom_graph_create(ctx, &g1), LOOM_OK);
    ck_assert_int_eq(loom_graph_create(ctx, &g2), LOOM_OK);
    loom_output(g1, loom_scale(g1, loom_param(g1, "w", LOOM_F32, 2, s, 1), 2.0f), "y");
    loom_output(g2, loom_scale(g2, loom_param(g2, "w", LOOM_F32, 2, s, 1), 3.0f), "y");
    loom_program *p1, *p2;
    ck_assert_int_eq(loom_compile(g1, dev, st, NULL, &p1), LOOM_OK);
    ck_assert_int_eq(loom_compile(g2, dev, st, NULL, &p2), LOOM_OK);
    ck_assert_int_eq(loom_program_run(p2), LOOM_OK);
    ck_assert_int_eq(loom_program_read(p2, "y", r, sizeof r), LOOM_OK);
    ck_assert(r[3] == 12.0f);
    float w2[4] = {5, 6, 7, 8};
    ck_assert_int_eq(loom_state_write(st, "w", LOOM_F32, 2, s, w2), LOOM_OK);
    ck_assert_int_eq(loom_program_run(p1), LOOM_OK);
    ck_assert_int_eq(loom_program_read(p1, "y", r, sizeof r), LOOM_OK);
    ck_assert(r[0] == 10.0f && r[3] == 16.0f);
    ck_assert_int_eq(loom_state_count(st), 1);
    loom_program_destroy(p1);
    loom_program_destroy(p2);
    loom_graph_destroy(g1);
    loom_graph_destroy(g2);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* Byte counts that do not fit are refused where the shape is given (a
 * wrapped product once compiled as a 0-byte tensor on every device). */
START_TEST(oversized_shapes)
{
    loom_ctx *ctx = tu_ctx();
    loom_graph *g;
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t huge[2] = {INT64_C(1) << 32, INT64_C(1) << 32};
    ck_assert_int_eq(loom_input(g, "x", LOOM_F32, 2, huge).id, 0);
    ck_assert_int_eq(loom_graph_status(g), LOOM_E_SHAPE);
    ck_assert_ptr_nonnull(strstr(loom_graph_error(g), "more elements than a tensor can hold"));
    loom_graph_destroy(g);
    /* each leaf fits; their broadcast does not */
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t col[2] = {INT64_C(1) << 31, 1}, row[2] = {1, INT64_C(1) << 31};
    loom_tensor a = loom_input(g, "a", LOOM_F32, 2, col), b = loom_input(g, "b", LOOM_F32, 2, row);
    ck_assert_int_ne(a.id, 0);
    ck_assert_int_ne(b.id, 0);
    ck_assert_int_eq(loom_add(g, a, b).id, 0);
    ck_assert_int_eq(loom_graph_status(g), LOOM_E_SHAPE);
    ck_assert_ptr_nonnull(strstr(loom_graph_error(g), "add: result shape"));
    loom_graph_destroy(g);
    loom_device *dev = tu_open(ctx, "cpu");
    loom_state *st;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    float one = 1;
    ck_assert_int_eq(loom_state_write(st, "w", LOOM_F32, 2, huge, &one), LOOM_E_SHAPE);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "more bytes than a tensor can hold"));
    ck_assert_int_eq(loom_state_count(st), 0);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* The state finds names through a hash index: many tensors, each found. */
START_TEST(state_many_names)
{
    loom_ctx *ctx = tu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_state *st;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    int64_t one[1] = {1};
    for (int i = 0; i < 50000; i++) {
        char name[32];
        float v = (float)i;
        snprintf(name, sizeof name, "layer%d/w", i);
        ck_assert_int_eq(loom_state_write(st, name, LOOM_F32, 1, one, &v), LOOM_OK);
    }
    ck_assert_int_eq(loom_state_count(st), 50000);
    for (int i = 0; i < 50000; i += 4999) {
        char name[32];
        float v = -1;
        snprintf(name, sizeof name, "layer%d/w", i);
        ck_assert_int_eq(loom_state_read(st, name, &v, sizeof v), LOOM_OK);
        ck_assert(v == (float)i);
    }
    float v = 0;
    ck_assert_int_eq(loom_state_read(st, "layer50000/w", &v, sizeof v), LOOM_E_INVALID);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* A compile the backend refuses touches nothing: the state gets no tensor
 * (it used to keep zero-filled entries for every parameter). */
START_TEST(refused_compile_leaves_state)
{
    loom_ctx *ctx = tu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_state *st;
    loom_graph *g;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t s[1] = {8};
    loom_tensor w = loom_param(g, "w", LOOM_F32, 1, s, 1);
    uint32_t groups[3] = {1, 1, 1};
    loom_tensor y = loom_custom_op(g, "mine", "#version 450\nvoid main() {}\n", 1, &w, LOOM_F32, 1, s, groups);
    loom_output(g, loom_relu(g, y), "y");
    loom_program *p = NULL;
    ck_assert_int_eq(loom_compile(g, dev, st, NULL, &p), LOOM_E_UNSUPPORTED);
    ck_assert_ptr_null(p);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "custom"));
    ck_assert_int_eq(loom_state_count(st), 0);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- atomic writes: stale temporaries of dead writers --------------------- */

static int exists(const char *dir, const char *name)
{
    char p[1200];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &sb) == 0;
}

/* A child that creates `name` in dir, holds an exclusive flock on it (as a
 * writer in the middle of a save does) and signals the parent through a
 * pipe; it then waits to be killed. */
static pid_t holder(const char *dir, const char *name_fmt, int use_own_pid)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char p[1200], name[256];
        snprintf(name, sizeof name, name_fmt, use_own_pid ? (long)getpid() : 0L);
        snprintf(p, sizeof p, "%s/%s", dir, name);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        char ok = fd >= 0 && write(fd, "partial", 7) == 7 && flock(fd, LOCK_EX) == 0;
        if (write(fds[1], &ok, 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    char ok = 0;
    close(fds[1]);
    ck_assert_int_eq(read(fds[0], &ok, 1), 1);
    close(fds[0]);
    ck_assert_msg(ok, "the holder could not create %s", name_fmt);
    return pid;
}

static void kill_reap(pid_t pid)
{
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
}

START_TEST(atomic_write_removes_stale_temps)
{
    char dir[] = "/tmp/loom_test_atomic_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    loom_ctx *ctx = tu_ctx();
    char target[1100], name[256];
    snprintf(target, sizeof target, "%s/model.bin", dir);

    /* A writer killed with -9 in the middle of a save. */
    pid_t dead = holder(dir, "model.bin.tmp.%ld", 1);
    kill_reap(dead);
    char stale[256];
    snprintf(stale, sizeof stale, "model.bin.tmp.%ld", (long)dead);
    ck_assert(exists(dir, stale));
    /* A live writer, saving right now. */
    pid_t live = holder(dir, "model.bin.tmp.%ld", 1);
    char live_name[256];
    snprintf(live_name, sizeof live_name, "model.bin.tmp.%ld", (long)live);
    /* Names that are not this target's temporaries, with the dead pid. */
    const char *keep_fmt[] = {"other.bin.tmp.%ld", "model.bin.tmp.%ldx", "model.bin.tmp.0%ld", "model.bin.%ld",
                              "xmodel.bin.tmp.%ld"};
    for (int i = 0; i < 5; i++) {
        char p[1200];
        snprintf(name, sizeof name, keep_fmt[i], (long)dead);
        snprintf(p, sizeof p, "%s/%s", dir, name);
        FILE *f = fopen(p, "wb");
        ck_assert_ptr_nonnull(f);
        fclose(f);
    }

    ck_assert_int_eq(loom_write_file_atomic(ctx, target, "new", 3), LOOM_OK);
    ck_assert_msg(!exists(dir, stale), "%s of dead pid %ld is still there", stale, (long)dead);
    ck_assert_msg(exists(dir, live_name), "the live writer's %s was removed", live_name);
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, keep_fmt[i], (long)dead);
        ck_assert_msg(exists(dir, name), "%s is not a temporary of model.bin but was removed", name);
    }
    FILE *f = fopen(target, "rb");
    char buf[8] = {0};
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fread(buf, 1, sizeof buf, f), 3);
    fclose(f);
    ck_assert_str_eq(buf, "new");
    snprintf(name, sizeof name, "model.bin.tmp.%ld", (long)getpid());
    ck_assert(!exists(dir, name));

    /* A dead pid whose file is still locked (a writer in another pid
     * namespace sharing the folder) is left alone. */
    kill_reap(live);
    pid_t gone = holder(dir, "model.bin.tmp.%ld", 1);
    kill_reap(gone);
    snprintf(stale, sizeof stale, "model.bin.tmp.%ld", (long)gone);
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, stale);
    int fd = open(p, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    pid_t locker = fork();
    ck_assert_int_ge(locker, 0);
    if (locker == 0) {
        flock(fd, LOCK_EX);     /* the lock is the open file's: shared with the parent, hence a child */
        for (;;)
            pause();
    }
    close(fd);
    for (int tries = 0; tries < 1000; tries++) {   /* until the child holds the lock */
        int probe = open(p, O_RDONLY);
        int held = flock(probe, LOCK_EX | LOCK_NB) != 0;
        close(probe);
        if (held)
            break;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    ck_assert_int_eq(loom_write_file_atomic(ctx, target, "newer", 5), LOOM_OK);
    ck_assert_msg(exists(dir, stale), "%s was removed while its lock was held", stale);
    ck_assert_msg(!exists(dir, live_name), "%s of the writer killed since is still there", live_name);
    kill_reap(locker);
    /* ... and removed by the next save once nobody holds it. */
    ck_assert_int_eq(loom_write_file_atomic(ctx, target, "newest", 6), LOOM_OK);
    ck_assert(!exists(dir, stale));
    loom_ctx_destroy(ctx);
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, keep_fmt[i], (long)dead);
        snprintf(p, sizeof p, "%s/%s", dir, name);
        ck_assert_int_eq(unlink(p), 0);
    }
    ck_assert_int_eq(unlink(target), 0);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, status_strings);
    tcase_add_test(tc, devices_listed);
    tcase_add_test(tc, open_specs);
    tcase_add_test(tc, env_overrides_auto);
    tcase_add_test(tc, null_handles);
    tcase_add_test(tc, shape_error_is_sticky);
    tcase_add_test(tc, broadcast_rules);
    tcase_add_test(tc, bad_leaves);
    tcase_add_test(tc, io_errors_and_use_after_destroy);
    tcase_add_test(tc, state_params);
    tcase_add_test(tc, oversized_shapes);
    tcase_add_test(tc, state_many_names);
    tcase_add_test(tc, refused_compile_leaves_state);
    tcase_add_test(tc, atomic_write_removes_stale_temps);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
