/* Shared helpers of the Check suites. */
#ifndef LOOM_TESTUTIL_H
#define LOOM_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "loom.h"

/* A context whose log is silent unless LOOM_LOG says otherwise. */
loom_ctx *tu_ctx(void);
/* Opens spec or fails the test. */
loom_device *tu_open(loom_ctx *ctx, const char *spec);

/* Deterministic data. */
void tu_fill(float *x, size_t n, uint32_t seed, float lo, float hi);

/* max |a - b| / (atol + rtol |b|) over n values: <= 1 passes. */
double tu_err(const float *a, const float *b, size_t n, double atol, double rtol);
/* Fails with the first bad index when two arrays differ beyond tolerance. */
#define tu_assert_close(a, b, n, atol, rtol)                                                         \
    do {                                                                                             \
        double e_ = tu_err((a), (b), (n), (atol), (rtol));                                          \
        ck_assert_msg(e_ <= 1.0, "arrays differ: normalized error %g (atol %g rtol %g)", e_,         \
                      (double)(atol), (double)(rtol));                                               \
    } while (0)

/* Runs loom_compile + set inputs + run; fails the test with the last error
 * on any failure. names/data/bytes describe the inputs. */
loom_program *tu_compile_run(loom_graph *g, loom_device *dev, loom_state *st, int n, const char *const *names,
                             const void *const *data, const size_t *bytes);

/* Specs of every device present that can run graphs, including "cpu".
 * LOOM_TEST_DEVICES=vulkan:1,opencl:0 keeps those alone (the CPU only when
 * listed) and fails the test when one of them is absent. */
int tu_devices(loom_ctx *ctx, char specs[][32], int max);
/* 1 when the environment variable env is unset or empty, or name starts
 * with one of its comma-separated prefixes (LOOM_TEST_CASES=matmul,add). */
int tu_listed(const char *env, const char *name);

#endif
