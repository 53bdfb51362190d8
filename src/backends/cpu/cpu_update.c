/* The CPU's Adam update over a span (cpu_update.h). */
#include "cpu_update.h"

#include <math.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

float loom_cpu_grad_at(const float *g, int64_t rows, int64_t n, int64_t i)
{
    if (!rows)
        return g[i];
    float s = 0.0f;
    for (int64_t r = 0; r < rows; r++)
        s += g[r * n + i];
    return s;
}

void loom_cpu_adam_span(const loom_attr *at, float *p, const float *g, int64_t rows, float *m, float *v, int64_t n,
                        float f, float lr, float alpha)
{
    const float l1 = at->l1, l2x2 = 2.0f * at->l2, wd = at->weight_decay, eps = at->eps;
    const float b1 = 1.0f - at->beta1, b2 = 1.0f - at->beta2;
    int64_t i = 0;
#if defined(__SSE2__)
    const __m128 vl1 = _mm_set1_ps(l1), vl2 = _mm_set1_ps(l2x2), vdec = _mm_set1_ps(lr * wd), vb1 = _mm_set1_ps(b1),
                 vb2 = _mm_set1_ps(b2), veps = _mm_set1_ps(eps), valpha = _mm_set1_ps(alpha), vf = _mm_set1_ps(f),
                 zero = _mm_setzero_ps(), one = _mm_set1_ps(1.0f), mone = _mm_set1_ps(-1.0f);
    for (; i + 4 <= n; i += 4) {
        __m128 gs;
        if (!rows) {
            gs = _mm_loadu_ps(g + i);
        } else {
            gs = zero;
            for (int64_t r = 0; r < rows; r++)
                gs = _mm_add_ps(gs, _mm_loadu_ps(g + r * n + i));
        }
        __m128 pi = _mm_loadu_ps(p + i), mi = _mm_loadu_ps(m + i), vi = _mm_loadu_ps(v + i);
        /* sign(p): +1, -1, or 0 for zeros and NaN, as the scalar ternary */
        __m128 s = _mm_or_ps(_mm_and_ps(_mm_cmpgt_ps(pi, zero), one), _mm_and_ps(_mm_cmplt_ps(pi, zero), mone));
        __m128 gi = _mm_add_ps(_mm_add_ps(_mm_mul_ps(gs, vf), _mm_mul_ps(vl2, pi)), _mm_mul_ps(vl1, s));
        if (wd != 0.0f)
            pi = _mm_sub_ps(pi, _mm_mul_ps(vdec, pi));
        mi = _mm_add_ps(mi, _mm_mul_ps(_mm_sub_ps(gi, mi), vb1));
        vi = _mm_add_ps(vi, _mm_mul_ps(_mm_sub_ps(_mm_mul_ps(gi, gi), vi), vb2));
        _mm_storeu_ps(m + i, mi);
        _mm_storeu_ps(v + i, vi);
        _mm_storeu_ps(p + i, _mm_sub_ps(pi, _mm_div_ps(_mm_mul_ps(valpha, mi), _mm_add_ps(_mm_sqrt_ps(vi), veps))));
    }
#endif
    for (; i < n; i++) {
        float pi = p[i], s = pi > 0.0f ? 1.0f : pi < 0.0f ? -1.0f : 0.0f;
        float gi = loom_cpu_grad_at(g, rows, n, i) * f + l2x2 * pi + l1 * s;
        if (wd != 0.0f)
            pi -= lr * wd * pi;
        float mi = m[i] + (gi - m[i]) * b1, vi = v[i] + (gi * gi - v[i]) * b2;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - alpha * mi / (sqrtf(vi) + eps);
    }
}
