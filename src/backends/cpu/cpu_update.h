/* The CPU's Adam update over a span of parameters, four lanes at a time
 * where the CPU has SSE2: the plain loop in cpu_kernels.c stayed scalar
 * (its stores to p, m and v might alias the attr's floats, and sqrtf sets
 * errno), and it was half of a batch-32 fit's cycles. */
#ifndef LOOM_CPU_UPDATE_H
#define LOOM_CPU_UPDATE_H

#include "../../core/ir.h"

#include <stdint.h>

/* For i < n: the gradient gi = f * g_i + 2 l2 p_i + l1 sign(p_i), where g_i
 * is g[i] (rows 0) or the sum over r < rows of g[r * n + i] added in order
 * from 0.0f (a bias gradient's column sums); then p_i -= lr * weight_decay *
 * p_i when weight_decay is set, m_i += (gi - m_i)(1 - beta1), v_i += (gi^2 -
 * v_i)(1 - beta2), p_i -= alpha m_i / (sqrt(v_i) + eps). The operations are
 * IEEE single precision in this order in every lane and in the scalar tail,
 * so the bits do not depend on n's remainder or on SSE2. */
/* Element i of an update's gradient: g[i] (rows 0) or, a bias's gradient
 * folded into its update (attr.grad_rows), the sum over r < rows of
 * g[r * n + i], added in order from 0.0f as k_reduce adds. */
float loom_cpu_grad_at(const float *g, int64_t rows, int64_t n, int64_t i);

void loom_cpu_adam_span(const loom_attr *at, float *p, const float *g, int64_t rows, float *m, float *v, int64_t n,
                        float f, float lr, float alpha);

#endif
