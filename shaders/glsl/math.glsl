// Functions GLSL lacks, accurate to a few float ulps so results stay
// within the op matrix's tolerances of the CPU's libm.
#ifndef LOOM_MATH_GLSL
#define LOOM_MATH_GLSL

// erfc(|x|) by the Chebyshev fit of Numerical Recipes (erfcc): fractional
// error below 1.2e-7 everywhere.
float loom_erf(float x)
{
    float z = abs(x);
    float t = 1.0 / (1.0 + 0.5 * z);
    float r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
              t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
              t * (-0.82215223 + t * 0.17087277)))))))));
    float e = 1.0 - r;
    return x >= 0.0 ? e : -e;
}

// tanh saturates to +-1 in float well before |x| = 10; clamping keeps
// exp-based implementations from computing inf / inf.
float loom_tanh(float x)
{
    return tanh(clamp(x, -10.0, 10.0));
}

float loom_gelu(float x)
{
    return 0.5 * x * (1.0 + loom_erf(x * 0.70710678118654752));
}

float loom_gelu_grad(float x)
{
    float cdf = 0.5 * (1.0 + loom_erf(x * 0.70710678118654752));
    float pdf = exp(-0.5 * x * x) * 0.39894228040143268;
    return cdf + x * pdf;
}

// log(1 + x) without losing the digits of a small x.
float loom_log1p(float x)
{
    float u = 1.0 + x;
    return u == 1.0 ? x : log(u) * (x / (u - 1.0));
}

// exp(x) - 1 without losing the digits of a small x.
float loom_expm1(float x)
{
    float u = exp(x);
    if (u == 1.0)
        return x;
    float um1 = u - 1.0;
    return um1 == -1.0 ? -1.0 : um1 * x / log(u);
}

// a^b as C's powf for a >= 0 (GLSL's pow is undefined for a < 0 and
// imprecise at a = 0): integral b of a negative a keeps its sign.
float loom_pow(float a, float b)
{
    if (a == 0.0)
        return b > 0.0 ? 0.0 : b == 0.0 ? 1.0 : uintBitsToFloat(0x7f800000u);
    float r = exp2(b * log2(abs(a)));
    if (a < 0.0)
        return floor(b) == b ? (mod(b, 2.0) == 1.0 ? -r : r) : uintBitsToFloat(0x7fc00000u);
    return r;
}

#endif
