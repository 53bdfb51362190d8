/* The matmul family on the CPU: OpenBLAS SGEMM with the thread count chosen
 * per product, and the fused epilogues (bias, activation, activation
 * gradient) of src/core/ir.h's LOOM_OP_MATMUL. */
#ifndef LOOM_CPU_GEMM_H
#define LOOM_CPU_GEMM_H

#include "../../core/backend.h"

/* A product of at least this many multiply-adds (m*n*k) gets a thread of
 * its own per this many: waking a pool thread costs microseconds on an idle
 * machine and far more on a loaded one, so a product is split only where
 * each thread's share runs ~50 us single-threaded (2^21 multiply-adds at
 * the ~45 G/s one core gives here). The seed MLP's 32x784x64 (1.6M) stays
 * on one thread; its 256x784x64 (12.8M) takes two. */
#define LOOM_CPU_GEMM_WORK_PER_THREAD (1 << 21)

/* The threads for an m x n x k product when avail may be used (>= 1). */
int loom_cpu_gemm_threads(int64_t m, int64_t n, int64_t k, int avail);

/* Row-major C = A' B' + beta C (A' = A or its transpose): cblas_sgemm with
 * OpenBLAS held at loom_cpu_gemm_threads threads for this call, avail being
 * the count OpenBLAS had at the first call (OPENBLAS_NUM_THREADS or the
 * cores); the count found is restored after. */
void loom_cpu_sgemm(int ta, int tb, int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                    float beta, float *c, int ldc);

/* y = max(y, 0) in place, bit for bit relu's f (NaN and -0 become +0). */
void loom_cpu_relu_inplace(float *y, int64_t n);
/* y = v > 0 ? y : 0 in place: dy * relu'(v), bit for bit relu's d. */
void loom_cpu_relu_grad_inplace(float *y, const float *v, int64_t n);

/* One LOOM_OP_MATMUL node: in[0] A, in[1] B, in[2] the bias or the output
 * whose activation gradient is applied (attr.bias, attr.act, attr.dact). */
void loom_cpu_matmul(const loom_exec_node *x, float *y, void *const *in);

#endif
