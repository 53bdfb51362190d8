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

#endif
