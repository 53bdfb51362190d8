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

/* sum g[k] (x[k] - m) */
static inline float cpu_dot_dev(const float *g, const float *x, int64_t n, float m)
{
    cpu_v4 a0 = v4_splat(0.0f), a1 = a0, vm = v4_splat(m);
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) {
        a0 += v4_load(g + k) * (v4_load(x + k) - vm);
        a1 += v4_load(g + k + 4) * (v4_load(x + k + 4) - vm);
    }
    float s = v4_hsum2(a0, a1);
    for (; k < n; k++)
        s += g[k] * (x[k] - m);
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

/* e^x to about 2 ulp: x = n ln2 + r with |r| <= ln2 / 2 (n rounded by the
 * 1.5 * 2^23 trick, which needs no SSE4.1 round), a degree-6 Taylor
 * polynomial in r, and 2^n built in the exponent bits. x is clamped to
 * where 2^n is a normal float: e^x below 1.2e-38 comes out as about that,
 * not 0 or a denormal (the callers' exps of -x^2 decay to nothing either
 * way); NaN is not kept. */
static inline cpu_v4 v4_exp(cpu_v4 x)
{
    const cpu_v4 hi = v4_splat(88.3762626647949f), lo = v4_splat(-87.3365447504f);
    x = (cpu_v4)(((cpu_v4i)x & (cpu_v4i)(x < hi)) | ((cpu_v4i)hi & (cpu_v4i)(x >= hi)));
    x = (cpu_v4)(((cpu_v4i)x & (cpu_v4i)(x > lo)) | ((cpu_v4i)lo & (cpu_v4i)(x <= lo)));
    const cpu_v4 magic = v4_splat(12582912.0f);
    cpu_v4 n = (x * v4_splat(1.44269504088896341f) + magic) - magic;
    cpu_v4 r = x - n * v4_splat(0.693359375f) - n * v4_splat(-2.12194440e-4f);
    cpu_v4 pl = v4_splat(1.0f / 720.0f);
    pl = pl * r + v4_splat(1.0f / 120.0f);
    pl = pl * r + v4_splat(1.0f / 24.0f);
    pl = pl * r + v4_splat(1.0f / 6.0f);
    pl = pl * r + v4_splat(0.5f);
    pl = pl * r + v4_splat(1.0f);
    pl = pl * r + v4_splat(1.0f);
    cpu_v4i e = (__builtin_convertvector(n, cpu_v4i) + 127) << 23;
    return pl * (cpu_v4)e;
}

/* erf(x) by the Chebyshev fit of Numerical Recipes (erfcc), fractional
 * error below 1.2e-7: the same formula as shaders/glsl/math.glsl's */
static inline cpu_v4 v4_erf(cpu_v4 x)
{
    cpu_v4i sign = (cpu_v4i)x & (cpu_v4i)v4_splat(-0.0f);
    cpu_v4 z = (cpu_v4)((cpu_v4i)x & ~(cpu_v4i)v4_splat(-0.0f));
    cpu_v4 t = v4_splat(1.0f) / (v4_splat(1.0f) + v4_splat(0.5f) * z);
    cpu_v4 q = v4_splat(0.17087277f);
    q = q * t + v4_splat(-0.82215223f);
    q = q * t + v4_splat(1.48851587f);
    q = q * t + v4_splat(-1.13520398f);
    q = q * t + v4_splat(0.27886807f);
    q = q * t + v4_splat(-0.18628806f);
    q = q * t + v4_splat(0.09678418f);
    q = q * t + v4_splat(0.37409196f);
    q = q * t + v4_splat(1.00002368f);
    cpu_v4 e = v4_splat(1.0f) - t * v4_exp(t * q - z * z - v4_splat(1.26551223f));
    return (cpu_v4)((cpu_v4i)e ^ sign);
}

#endif
