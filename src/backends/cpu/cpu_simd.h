/* Four-float vectors for the CPU backend's own loops, through the
 * compiler's vector extension (GCC and clang) so that they need no -O3, no
 * -ffast-math and no ISA flag: one SSE (or NEON) register on the baseline
 * ISA, so that they pass and return in registers there. The loops that use them were scalar and branchy at -O2 (relu
 * compiled to a compare and a mispredicted jump per element) or a chain
 * of dependent adds (a sum over a plane: one add per four cycles). Sums
 * here run in eight lanes (two vectors), so they differ from a sequential sum in the
 * last bits; the GPU backends' reductions are not sequential either. */
#ifndef LOOM_CPU_SIMD_H
#define LOOM_CPU_SIMD_H

#include <stdint.h>
#include <string.h>

typedef float cpu_v4 __attribute__((vector_size(16)));
typedef int32_t cpu_v4i __attribute__((vector_size(16)));

static inline cpu_v4 v4_load(const float *p)
{
    cpu_v4 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void v4_store(float *p, cpu_v4 v)
{
    memcpy(p, &v, sizeof v);
}

static inline cpu_v4 v4_splat(float x)
{
    return (cpu_v4){x, x, x, x};
}

/* a where mask (all ones), else 0 */
static inline cpu_v4 v4_select(cpu_v4i mask, cpu_v4 a)
{
    return (cpu_v4)((cpu_v4i)a & mask);
}

/* the eight lanes of two accumulators */
static inline float v4_hsum2(cpu_v4 a, cpu_v4 b)
{
    cpu_v4 v = a + b;
    return (v[0] + v[2]) + (v[1] + v[3]);
}

/* sum x[k] */
static inline float cpu_sum(const float *x, int64_t n)
{
    cpu_v4 a0 = v4_splat(0.0f), a1 = a0;
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) {
        a0 += v4_load(x + k);
        a1 += v4_load(x + k + 4);
    }
    float s = v4_hsum2(a0, a1);
    for (; k < n; k++)
        s += x[k];
    return s;
}

/* sum (x[k] - m)^2 */
static inline float cpu_sum_sqdev(const float *x, int64_t n, float m)
{
    cpu_v4 a0 = v4_splat(0.0f), a1 = a0, vm = v4_splat(m);
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) {
        cpu_v4 d0 = v4_load(x + k) - vm, d1 = v4_load(x + k + 4) - vm;
        a0 += d0 * d0;
        a1 += d1 * d1;
    }
    float s = v4_hsum2(a0, a1);
    for (; k < n; k++)
        s += (x[k] - m) * (x[k] - m);
    return s;
}

/* *sa = sum a[k], *sab = sum a[k] b[k] */
static inline void cpu_sum_dot(const float *a, const float *b, int64_t n, float *sa, float *sab)
{
    cpu_v4 s0 = v4_splat(0.0f), s1 = s0, d0 = s0, d1 = s0;
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) {
        cpu_v4 a0 = v4_load(a + k), a1 = v4_load(a + k + 4);
        s0 += a0;
        s1 += a1;
        d0 += a0 * v4_load(b + k);
        d1 += a1 * v4_load(b + k + 4);
    }
    float fs = v4_hsum2(s0, s1), fd = v4_hsum2(d0, d1);
    for (; k < n; k++) {
        fs += a[k];
        fd += a[k] * b[k];
    }
    *sa = fs;
    *sab = fd;
}

#endif
