/* The CPU bodies of the element-wise ops of include/loom_ops.h: each op's
 * function and its derivative, and one table entry naming them. These are
 * the reference the GLSL (shaders/glsl/ew_*.glsl) and OpenCL C
 * (shaders/opencl/ew_*.cl) bodies are checked against. */
#include "cpu_kernels.h"
#include "cpu_simd.h"

#include <math.h>

/* ---- unary: y = f(x; p, q), and dy * f'(v) with v = x or y ---------------- */

/* relu and its derivative as masks (cpu_simd.h: the scalar form was a
 * branch per element, mispredicted on activations' random signs); NaN
 * compares false, so gives 0 as the scalar form did */
static void relu_f(float *y, const float *x, int64_t n, float p, float q)
{
    (void)p, (void)q;
    const cpu_v4 zero = v4_splat(0.0f);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        cpu_v4 v = v4_load(x + i);
        v4_store(y + i, v4_select(v > zero, v));
    }
    for (; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}
static void relu_d(float *y, const float *dy, const float *x, int64_t n, float p, float q)
{
    (void)p, (void)q;
    const cpu_v4 zero = v4_splat(0.0f);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        v4_store(y + i, v4_select(v4_load(x + i) > zero, v4_load(dy + i)));
    for (; i < n; i++)
        y[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

static void sigmoid_f(float *y, const float *x, int64_t n, float p, float q)
{
    (void)p, (void)q;
    for (int64_t i = 0; i < n; i++)
        y[i] = 1.0f / (1.0f + expf(-x[i]));
}
static void sigmoid_d(float *y, const float *dy, const float *s, int64_t n, float p, float q)
{
    (void)p, (void)q;
    for (int64_t i = 0; i < n; i++)
        y[i] = dy[i] * s[i] * (1.0f - s[i]);
}

static void tanh_f(float *y, const float *x, int64_t n, float p, float q)
{
    (void)p, (void)q;
    for (int64_t i = 0; i < n; i++)
        y[i] = tanhf(x[i]);
}
static void tanh_d(float *y, const float *dy, const float *t, int64_t n, float p, float q)
{
    (void)p, (void)q;
    for (int64_t i = 0; i < n; i++)
        y[i] = dy[i] * (1.0f - t[i] * t[i]);
}

/* gelu through the vector erf and exp of cpu_simd.h: libm's erff and
 * expf per element made gelu and its gradient a fifth of a ViT step */
static void gelu_f(float *y, const float *x, int64_t n, float p, float q)
{
    (void)p, (void)q;
    const cpu_v4 half = v4_splat(0.5f), one = v4_splat(1.0f), s = v4_splat(0.70710678118654752f);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        cpu_v4 v = v4_load(x + i);
        v4_store(y + i, half * v * (one + v4_erf(v * s)));
    }
    for (; i < n; i++)
        y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}
static void gelu_d(float *y, const float *dy, const float *x, int64_t n, float p, float q)
{
    (void)p, (void)q;
    const cpu_v4 half = v4_splat(0.5f), one = v4_splat(1.0f), s = v4_splat(0.70710678118654752f),
                 c = v4_splat(0.39894228040143268f);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        cpu_v4 v = v4_load(x + i);
        cpu_v4 cdf = half * (one + v4_erf(v * s)), pdf = v4_exp(-half * v * v) * c;
        v4_store(y + i, v4_load(dy + i) * (cdf + v * pdf));
    }
    for (; i < n; i++) {
        float cdf = 0.5f * (1.0f + erff(x[i] * 0.70710678118654752f));
        float pdf = expf(-0.5f * x[i] * x[i]) * 0.39894228040143268f;
        y[i] = dy[i] * (cdf + x[i] * pdf);
    }
}

static void exp_f(float *y, const float *x, int64_t n, float p, float q)
{
    (void)p, (void)q;
    for (int64_t i = 0; i < n; i++)
        y[i] = expf(x[i]);
}
static void exp_d(float *y, const float *dy, const float *e, int64_t n, float p, float q)
{
    (void)p, (void)q;
    for (int64_t i = 0; i < n; i++)
        y[i] = dy[i] * e[i];
}

static void log_f(float *y, const float *x, int64_t n, float p, float q)
{
    (void)p, (void)q;
    for (int64_t i = 0; i < n; i++)
        y[i] = logf(x[i]);
}
static void log_d(float *y, const float *dy, const float *x, int64_t n, float p, float q)
{
    (void)p, (void)q;
    for (int64_t i = 0; i < n; i++)
        y[i] = dy[i] / x[i];
}

static void square_f(float *y, const float *x, int64_t n, float p, float q)
{
    (void)p, (void)q;
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] * x[i];
}
static void square_d(float *y, const float *dy, const float *x, int64_t n, float p, float q)
{
    (void)p, (void)q;
    for (int64_t i = 0; i < n; i++)
        y[i] = 2.0f * dy[i] * x[i];
}

static void abs_f(float *y, const float *x, int64_t n, float p, float q)
{
    (void)p, (void)q;
    for (int64_t i = 0; i < n; i++)
        y[i] = fabsf(x[i]);
}
static void abs_d(float *y, const float *dy, const float *x, int64_t n, float p, float q)
{
    (void)p, (void)q;
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? dy[i] : x[i] < 0.0f ? -dy[i] : 0.0f;
}

static void neg_f(float *y, const float *x, int64_t n, float p, float q)
{
    (void)p, (void)q;
    for (int64_t i = 0; i < n; i++)
        y[i] = -x[i];
}
static void neg_d(float *y, const float *dy, const float *x, int64_t n, float p, float q)
{
    (void)x, (void)p, (void)q;
    for (int64_t i = 0; i < n; i++)
        y[i] = -dy[i];
}

static void sqrt_f(float *y, const float *x, int64_t n, float p, float q)
{
    (void)p, (void)q;
    for (int64_t i = 0; i < n; i++)
        y[i] = sqrtf(x[i]);
}
static void sqrt_d(float *y, const float *dy, const float *s, int64_t n, float p, float q)
{
    (void)p, (void)q;
    for (int64_t i = 0; i < n; i++)
        y[i] = 0.5f * dy[i] / s[i];
}

static void rsqrt_f(float *y, const float *x, int64_t n, float p, float q)
{
    (void)p, (void)q;
    for (int64_t i = 0; i < n; i++)
        y[i] = 1.0f / sqrtf(x[i]);
}
static void rsqrt_d(float *y, const float *dy, const float *r, int64_t n, float p, float q)
{
    (void)p, (void)q;
    for (int64_t i = 0; i < n; i++)
        y[i] = -0.5f * dy[i] * r[i] * r[i] * r[i];
}

static void silu_f(float *y, const float *x, int64_t n, float p, float q)
{
    (void)p, (void)q;
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] / (1.0f + expf(-x[i]));
}
static void silu_d(float *y, const float *dy, const float *x, int64_t n, float p, float q)
{
    (void)p, (void)q;
    for (int64_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + expf(-x[i]));
        y[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}

static void softplus_f(float *y, const float *x, int64_t n, float p, float q)
{
    (void)p, (void)q;
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] > 20.0f ? x[i] : log1pf(expf(x[i]));
}
static void softplus_d(float *y, const float *dy, const float *x, int64_t n, float p, float q)
{
    (void)p, (void)q;
    for (int64_t i = 0; i < n; i++)
        y[i] = dy[i] / (1.0f + expf(-x[i]));
}

static void softsign_f(float *y, const float *x, int64_t n, float p, float q)
{
    (void)p, (void)q;
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] / (1.0f + fabsf(x[i]));
}
static void softsign_d(float *y, const float *dy, const float *x, int64_t n, float p, float q)
{
    (void)p, (void)q;
    for (int64_t i = 0; i < n; i++) {
        float d = 1.0f + fabsf(x[i]);
        y[i] = dy[i] / (d * d);
    }
}

static void scale_f(float *y, const float *x, int64_t n, float a, float q)
{
    (void)q;
    for (int64_t i = 0; i < n; i++)
        y[i] = a * x[i];
}
static void scale_d(float *y, const float *dy, const float *x, int64_t n, float a, float q)
{
    (void)x, (void)q;
    for (int64_t i = 0; i < n; i++)
        y[i] = a * dy[i];
}

static void leaky_relu_f(float *y, const float *x, int64_t n, float slope, float q)
{
    (void)q;
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : slope * x[i];
}
static void leaky_relu_d(float *y, const float *dy, const float *x, int64_t n, float slope, float q)
{
    (void)q;
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? dy[i] : slope * dy[i];
}

static void elu_f(float *y, const float *x, int64_t n, float a, float q)
{
    (void)q;
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : a * expm1f(x[i]);
}
static void elu_d(float *y, const float *dy, const float *x, int64_t n, float a, float q)
{
    (void)q;
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? dy[i] : dy[i] * a * expf(x[i]);
}

static void clamp_f(float *y, const float *x, int64_t n, float lo, float hi)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] < lo ? lo : x[i] > hi ? hi : x[i];
}
static void clamp_d(float *y, const float *dy, const float *x, int64_t n, float lo, float hi)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] >= lo && x[i] <= hi ? dy[i] : 0.0f;
}

const cpu_unary_body cpu_unary[LOOM_OP_COUNT] = {
    [LOOM_OP_RELU] = {relu_f, relu_d},
    [LOOM_OP_SIGMOID] = {sigmoid_f, sigmoid_d},
    [LOOM_OP_TANH] = {tanh_f, tanh_d},
    [LOOM_OP_GELU] = {gelu_f, gelu_d},
    [LOOM_OP_EXP] = {exp_f, exp_d},
    [LOOM_OP_LOG] = {log_f, log_d},
    [LOOM_OP_SQUARE] = {square_f, square_d},
    [LOOM_OP_ABS] = {abs_f, abs_d},
    [LOOM_OP_NEG] = {neg_f, neg_d},
    [LOOM_OP_SQRT] = {sqrt_f, sqrt_d},
    [LOOM_OP_RSQRT] = {rsqrt_f, rsqrt_d},
    [LOOM_OP_SILU] = {silu_f, silu_d},
    [LOOM_OP_SOFTPLUS] = {softplus_f, softplus_d},
    [LOOM_OP_SOFTSIGN] = {softsign_f, softsign_d},
    [LOOM_OP_SCALE] = {scale_f, scale_d},
    [LOOM_OP_LEAKY_RELU] = {leaky_relu_f, leaky_relu_d},
    [LOOM_OP_ELU] = {elu_f, elu_d},
    [LOOM_OP_CLAMP] = {clamp_f, clamp_d},
};

/* ---- binary: y = f(a, b); the derivative kernels d/da, d/db --------------- */

static float add_f(float a, float b) { return a + b; }
static float sub_f(float a, float b) { return a - b; }
static float mul_f(float a, float b) { return a * b; }
static float div_f(float a, float b) { return a / b; }

static float pow_f(float a, float b) { return powf(a, b); }
static float pow_da(float a, float b) { return b == 0.0f ? 0.0f : b * powf(a, b - 1.0f); }
static float pow_db(float a, float b) { return a > 0.0f ? powf(a, b) * logf(a) : 0.0f; }

static float maximum_f(float a, float b) { return a >= b ? a : b; }
static float maximum_da(float a, float b) { return a >= b ? 1.0f : 0.0f; }
static float maximum_db(float a, float b) { return a >= b ? 0.0f : 1.0f; }

static float minimum_f(float a, float b) { return a <= b ? a : b; }
static float minimum_da(float a, float b) { return a <= b ? 1.0f : 0.0f; }
static float minimum_db(float a, float b) { return a <= b ? 0.0f : 1.0f; }

static float eq_f(float a, float b) { return a == b ? 1.0f : 0.0f; }
static float lt_f(float a, float b) { return a < b ? 1.0f : 0.0f; }
static float le_f(float a, float b) { return a <= b ? 1.0f : 0.0f; }
static float gt_f(float a, float b) { return a > b ? 1.0f : 0.0f; }
static float ge_f(float a, float b) { return a >= b ? 1.0f : 0.0f; }

const cpu_binary_body cpu_binary[LOOM_OP_COUNT] = {
    [LOOM_OP_ADD] = {add_f, NULL, NULL},
    [LOOM_OP_SUB] = {sub_f, NULL, NULL},
    [LOOM_OP_MUL] = {mul_f, NULL, NULL},
    [LOOM_OP_DIV] = {div_f, NULL, NULL},
    [LOOM_OP_POW] = {pow_f, pow_da, pow_db},
    [LOOM_OP_MAXIMUM] = {maximum_f, maximum_da, maximum_db},
    [LOOM_OP_MINIMUM] = {minimum_f, minimum_da, minimum_db},
    [LOOM_OP_EQ] = {eq_f, NULL, NULL},
    [LOOM_OP_LT] = {lt_f, NULL, NULL},
    [LOOM_OP_LE] = {le_f, NULL, NULL},
    [LOOM_OP_GT] = {gt_f, NULL, NULL},
    [LOOM_OP_GE] = {ge_f, NULL, NULL},
};
