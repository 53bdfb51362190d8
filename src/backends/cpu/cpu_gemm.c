/* The matmul family on the CPU (cpu_gemm.h). */
#include "cpu_gemm.h"
#include "cpu_kernels.h"

#include <cblas.h>
#include <pthread.h>
#include <string.h>

int loom_cpu_gemm_threads(int64_t m, int64_t n, int64_t k, int avail)
{
    if (avail <= 1 || m <= 0 || n <= 0 || k <= 0)
        return 1;
    double share = (double)m * (double)n * (double)k / (double)LOOM_CPU_GEMM_WORK_PER_THREAD;
    if (share < 2.0)
        return 1;
    return share < (double)avail ? (int)share : avail;
}

static int avail_threads = 1;
static pthread_once_t avail_once = PTHREAD_ONCE_INIT;

static void read_avail(void)
{
    int t = openblas_get_num_threads();
    avail_threads = t > 0 ? t : 1;
}

void loom_cpu_sgemm(int ta, int tb, int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                    float beta, float *c, int ldc)
{
    pthread_once(&avail_once, read_avail);
    /* OpenBLAS's own rule threads any product past 2^18 multiply-adds,
     * and its pool threads spin between products: on two shared cores the
     * seed's step ran 6x slower with two threads than with one. The count
     * is process-wide, so it goes back to what it was. */
    int want = loom_cpu_gemm_threads(m, n, k, avail_threads), had = openblas_get_num_threads();
    if (had != want)
        openblas_set_num_threads(want);
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a,
                lda, b, ldb, beta, c, ldc);
    if (had != want)
        openblas_set_num_threads(had);
}

/* The epilogues are branch-free: a relu over a layer's outputs takes each
 * branch at random, and the mispredictions of a plain loop cost more than
 * the arithmetic (5 us of a 32x64 layer's 7 us here). relu's own bodies
 * (cpu_ew.c) are the masked vector loops this wants, in place. */
void loom_cpu_relu_inplace(float *y, int64_t n)
{
    cpu_unary[LOOM_OP_RELU].f(y, y, n, 0.0f, 0.0f);
}

void loom_cpu_relu_grad_inplace(float *y, const float *v, int64_t n)
{
    cpu_unary[LOOM_OP_RELU].d(y, y, v, n, 0.0f, 0.0f);
}

void loom_cpu_matmul(const loom_exec_node *x, float *y, void *const *in)
{
    const loom_node *nd = x->node, *na = x->in[0]->node, *nb = x->in[1]->node;
    int m = (int)nd->shape[0], n = (int)nd->shape[1];
    int k = (int)(nd->attr.ta ? na->shape[0] : na->shape[1]);
    float beta = 0.0f;
    if (nd->attr.bias) {
        /* C starts as the bias in every row; the GEMM adds onto it, so the
         * sum rounds as the unfused bias add after the product does */
        const float *bias = in[2];
        for (int r = 0; r < m; r++)
            memcpy(y + (int64_t)r * n, bias, (size_t)n * sizeof *y);
        beta = 1.0f;
    }
    loom_cpu_sgemm(nd->attr.ta, nd->attr.tb, m, n, k, in[0], (int)na->shape[1], in[1], (int)nb->shape[1], beta, y,
                   n);
    if (nd->attr.act == LOOM_OP_RELU)
        loom_cpu_relu_inplace(y, nd->numel);
    else if (nd->attr.act != LOOM_OP_NONE)
        cpu_unary[nd->attr.act].f(y, y, nd->numel, nd->attr.p1, nd->attr.p2);
    if (nd->attr.dact == LOOM_OP_RELU)
        loom_cpu_relu_grad_inplace(y, in[2], nd->numel);
    else if (nd->attr.dact != LOOM_OP_NONE)
        cpu_unary[nd->attr.dact].d(y, y, in[2], nd->numel, nd->attr.p1, nd->attr.p2);
}
