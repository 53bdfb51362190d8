/* The CPU backend's GEMM (src/backends/cpu/cpu_gemm.c): the thread count it
 * picks per product, that a product computes the bits OpenBLAS gives on that
 * many threads (OpenBLAS's sums round differently on one thread and on its
 * pool: 32x784x64 differs in most elements here), and the branch-free relu
 * epilogues against the reference element-wise bodies; the four-lane Adam
 * update (cpu_update.c) against the scalar loop it replaced, bit for bit. */
#include "testutil.h"
#include "backends/cpu/cpu_gemm.h"
#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/cpu_update.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

START_TEST(threads_by_size)
{
    /* the seed MLP at batch 32 stays on one thread, at 256 it takes two */
    ck_assert_int_eq(loom_cpu_gemm_threads(32, 64, 784, 2), 1);
    ck_assert_int_eq(loom_cpu_gemm_threads(784, 64, 32, 2), 1);
    ck_assert_int_eq(loom_cpu_gemm_threads(32, 64, 64, 16), 1);
    ck_assert_int_eq(loom_cpu_gemm_threads(256, 64, 784, 2), 2);
    ck_assert_int_eq(loom_cpu_gemm_threads(256, 64, 784, 1), 1);
    /* one thread per LOOM_CPU_GEMM_WORK_PER_THREAD multiply-adds, up to avail */
    ck_assert_int_eq(loom_cpu_gemm_threads(256, 64, 784, 16), 6);
    ck_assert_int_eq(loom_cpu_gemm_threads(1024, 1024, 1024, 8), 8);
    ck_assert_int_eq(loom_cpu_gemm_threads(2, 1024, 1024, 8), 1);
    ck_assert_int_eq(loom_cpu_gemm_threads(4, 1024, 1024, 8), 2);
    ck_assert_int_eq(loom_cpu_gemm_threads(0, 1024, 1024, 8), 1);
    ck_assert_int_eq(loom_cpu_gemm_threads(1024, 1024, 1024, 0), 1);
}
END_TEST

typedef struct shape {
    int ta, tb, m, n, k;
} shape;

/* C of one product through loom_cpu_sgemm (OpenBLAS at 2 threads) and
 * through OpenBLAS held at blas_threads: the same bits, and within rounding
 * of the other thread count. beta 1 over a non-zero C, as a bias does. */
static void same_product(const shape *s, int blas_threads)
{
    int lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
    size_t na = (size_t)s->m * (size_t)s->k, nb = (size_t)s->k * (size_t)s->n, nc = (size_t)s->m * (size_t)s->n;
    float *a = malloc(na * sizeof *a), *b = malloc(nb * sizeof *b);
    float *c0 = malloc(nc * sizeof *c0), *c1 = malloc(nc * sizeof *c1);
    ck_assert(a && b && c0 && c1);
    tu_fill(a, na, 1, -1.0f, 1.0f);
    tu_fill(b, nb, 2, -1.0f, 1.0f);
    tu_fill(c0, nc, 3, -1.0f, 1.0f);
    memcpy(c1, c0, nc * sizeof *c1);
    openblas_set_num_threads(blas_threads);
    cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans, s->m, s->n,
                s->k, 1.0f, a, lda, b, ldb, 1.0f, c0, s->n);
    openblas_set_num_threads(2);
    loom_cpu_sgemm(s->ta, s->tb, s->m, s->n, s->k, a, lda, b, ldb, 1.0f, c1, s->n);
    /* the process-wide count is left as it was found */
    ck_assert_int_eq(openblas_get_num_threads(), 2);
    size_t bad = nc;
    for (size_t i = 0; i < nc && bad == nc; i++)
        if (memcmp(&c0[i], &c1[i], sizeof *c0))
            bad = i;
    ck_assert_msg(bad == nc, "%dx%dx%d ta %d tb %d: C[%zu] is %.9g on %d OpenBLAS thread(s), %.9g through "
                  "loom_cpu_sgemm", s->m, s->n, s->k, s->ta, s->tb, bad, (double)c0[bad], blas_threads,
                  (double)c1[bad]);
    tu_fill(c0, nc, 3, -1.0f, 1.0f);
    openblas_set_num_threads(3 - blas_threads);
    cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans, s->m, s->n,
                s->k, 1.0f, a, lda, b, ldb, 1.0f, c0, s->n);
    openblas_set_num_threads(2);
    /* another thread count sums the k products in another order: a few
     * ulps of the partial sums (up to ~sqrt(k) here) apart, 1.5e-5 at
     * k = 784 on OpenBLAS's Zen kernels */
    tu_assert_close(c1, c0, nc, 2e-6 * sqrt((double)s->k), 1e-5);
    free(a);
    free(b);
    free(c0);
    free(c1);
}

/* The seed's products at batch 32 run on one thread though OpenBLAS has
 * two: the bits of one thread. */
START_TEST(small_products_take_one_thread)
{
    /* loom_cpu_sgemm reads the threads it may use at its first call */
    openblas_set_num_threads(2);
    static const shape s[] = {{0, 0, 32, 64, 784}, {1, 0, 784, 64, 32}, {0, 1, 32, 64, 64}, {0, 0, 33, 65, 781}};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        ck_assert_int_eq(loom_cpu_gemm_threads(s[i].m, s[i].n, s[i].k, 2), 1);
        same_product(&s[i], 1);
    }
}
END_TEST

/* At batch 256 they take both: the bits of two threads. */
START_TEST(large_products_take_the_pool)
{
    openblas_set_num_threads(2);
    static const shape s[] = {{0, 0, 256, 64, 784}, {1, 0, 784, 64, 256}, {0, 1, 257, 63, 785}};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        ck_assert_int_eq(loom_cpu_gemm_threads(s[i].m, s[i].n, s[i].k, 2), 2);
        same_product(&s[i], 2);
    }
}
END_TEST

/* Values every branch of relu meets: signs, both zeros, NaN, infinities,
 * denormals. */
static void relu_values(float *v, int n, uint32_t seed)
{
    static const float special[] = {0.0f, -0.0f, 1.0f, -1.0f, INFINITY, -INFINITY, NAN, -NAN, 1e-40f, -1e-40f};
    tu_fill(v, (size_t)n, seed, -2.0f, 2.0f);
    for (int i = 0; i < n; i++)
        if ((i * 7 + (int)seed) % 3 == 0)
            v[i] = special[(i + (int)seed) % (int)(sizeof special / sizeof special[0])];
}

START_TEST(relu_epilogues_match_the_reference)
{
    enum { MAX = 41 };
    float x[MAX + 1], v[MAX + 1], want[MAX + 1], got[MAX + 1];
    /* every length through the vector body and its tail, at an odd start */
    for (int n = 0; n <= MAX; n++) {
        relu_values(x, MAX + 1, (uint32_t)n + 1);
        relu_values(v, MAX + 1, (uint32_t)n + 100);
        memcpy(got, x, sizeof got);
        cpu_unary[LOOM_OP_RELU].f(want + 1, x + 1, n, 0.0f, 0.0f);
        loom_cpu_relu_inplace(got + 1, n);
        ck_assert_msg(!memcmp(want + 1, got + 1, (size_t)n * sizeof *got), "relu over %d values differs", n);
        memcpy(got, x, sizeof got);
        cpu_unary[LOOM_OP_RELU].d(want + 1, x + 1, v + 1, n, 0.0f, 0.0f);
        loom_cpu_relu_grad_inplace(got + 1, v + 1, n);
        ck_assert_msg(!memcmp(want + 1, got + 1, (size_t)n * sizeof *got), "relu' over %d values differs", n);
        ck_assert_msg(!memcmp(&got[0], &x[0], sizeof *got) && (n == MAX || !memcmp(&got[n + 1], &x[n + 1],
                      sizeof *got)), "an epilogue over %d values wrote outside them", n);
    }
}
END_TEST

/* The Adam loop cpu_kernels.c ran before loom_cpu_adam_span, verbatim but
 * for the gradient's column sums (rows > 0). */
static void adam_scalar(const loom_attr *at, float *p, const float *g, int64_t rows, float *m, float *v, int64_t n,
                        float f, float lr, float alpha)
{
    for (int64_t i = 0; i < n; i++) {
        float gs = g[i];
        if (rows) {
            gs = 0.0f;
            for (int64_t r = 0; r < rows; r++)
                gs += g[r * n + i];
        }
        float sg = p[i] > 0.0f ? 1.0f : p[i] < 0.0f ? -1.0f : 0.0f;
        float gi = gs * f + 2.0f * at->l2 * p[i] + at->l1 * sg;
        if (at->weight_decay != 0.0f)
            p[i] -= lr * at->weight_decay * p[i];
        m[i] += (gi - m[i]) * (1.0f - at->beta1);
        v[i] += (gi * gi - v[i]) * (1.0f - at->beta2);
        p[i] -= alpha * m[i] / (sqrtf(v[i]) + at->eps);
    }
}

START_TEST(adam_span_matches_the_scalar_loop)
{
    enum { MAX = 37, ROWS = 3 };
    /* plain Adam, AdamW's decay, l1 + l2 penalties with a loss-scale factor */
    const float cfg[3][4] = {{0.0f, 0.0f, 0.0f, 1.0f}, {0.0f, 0.0f, 0.004f, 1.0f}, {0.01f, 0.02f, 0.0f, 0.125f}};
    for (int c = 0; c < 3; c++) {
        loom_attr at;
        memset(&at, 0, sizeof at);
        at.l1 = cfg[c][0];
        at.l2 = cfg[c][1];
        at.weight_decay = cfg[c][2];
        at.beta1 = 0.9f;
        at.beta2 = 0.999f;
        at.eps = 1e-7f;
        for (int64_t rows = 0; rows <= ROWS; rows += ROWS) {
            for (int n = 0; n <= MAX; n++) {
                float g[ROWS * MAX], p[2][MAX + 2], m[2][MAX + 2], v[2][MAX + 2];
                for (int i = 0; i < ROWS * MAX; i++)
                    g[i] = (float)((i * 7919 + c * 31 + n) % 201 - 100) * 1e-3f;
                for (int i = 0; i < MAX + 2; i++) {
                    /* zeros of both signs and negatives among the weights */
                    p[0][i] = i % 5 == 0 ? (i % 10 ? -0.0f : 0.0f) : (float)((i * 37 + n) % 41 - 20) * 0.05f;
                    m[0][i] = (float)((i * 13 + c) % 9 - 4) * 1e-3f;
                    v[0][i] = (float)((i * 11 + n) % 7) * 1e-5f;
                }
                memcpy(p[1], p[0], sizeof p[0]);
                memcpy(m[1], m[0], sizeof m[0]);
                memcpy(v[1], v[0], sizeof v[0]);
                const float *gg = rows ? g : g + 5;
                for (int step = 0; step < 3; step++) {
                    adam_scalar(&at, p[0] + 1, gg, rows, m[0] + 1, v[0] + 1, n, cfg[c][3], 1e-3f, 7e-4f);
                    loom_cpu_adam_span(&at, p[1] + 1, gg, rows, m[1] + 1, v[1] + 1, n, cfg[c][3], 1e-3f, 7e-4f);
                }
                ck_assert_msg(!memcmp(p[0], p[1], sizeof p[0]) && !memcmp(m[0], m[1], sizeof m[0]) &&
                                  !memcmp(v[0], v[1], sizeof v[0]),
                              "adam over %d values (config %d, %d gradient rows) differs from the scalar loop", n, c,
                              (int)rows);
            }
        }
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cpu_gemm");
    TCase *tc = tcase_create("gemm");
    tcase_add_test(tc, threads_by_size);
    tcase_add_test(tc, small_products_take_one_thread);
    tcase_add_test(tc, large_products_take_the_pool);
    tcase_add_test(tc, relu_epilogues_match_the_reference);
    tcase_add_test(tc, adam_span_matches_the_scalar_loop);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
