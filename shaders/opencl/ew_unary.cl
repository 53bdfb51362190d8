/*
 * The OpenCL C bodies of the unary ops of include/loom_ops.h, one line
 * each: LOOM_UNARY(name, y from x, dy f'(v)) with the op's parameters p and
 * q, v the forward input or output as the op's line says. Each expression
 * serves float and float8 (T is either); constants go through (T). The
 * kernels unary_<name> and unary_grad_<name> are made from each line
 * (elementwise.cl); each must match src/backends/cpu/cpu_ew.c.
 */
LOOM_UNARY(relu, x > (T)0.0f ? x : (T)0.0f, v > (T)0.0f ? dy : (T)0.0f)
LOOM_UNARY(sigmoid, (T)1.0f / ((T)1.0f + exp(-x)), dy * v * ((T)1.0f - v))
LOOM_UNARY(tanh, tanh(x), dy * ((T)1.0f - v * v))
LOOM_UNARY(gelu, 0.5f * x * (1.0f + erf(x * LOOM_SQRT1_2)),
           dy * (0.5f * (1.0f + erf(v * LOOM_SQRT1_2)) + v * exp(-0.5f * v * v) * LOOM_INV_SQRT_2PI))
LOOM_UNARY(exp, exp(x), dy * v)
LOOM_UNARY(log, log(x), dy / v)
LOOM_UNARY(square, x * x, 2.0f * dy * v)
LOOM_UNARY(abs, fabs(x), v > (T)0.0f ? dy : v < (T)0.0f ? -dy : (T)0.0f)
LOOM_UNARY(neg, -x, -dy)
LOOM_UNARY(sqrt, sqrt(x), 0.5f * dy / v)
LOOM_UNARY(rsqrt, (T)1.0f / sqrt(x), -0.5f * dy * v * v * v)
LOOM_UNARY(silu, x / ((T)1.0f + exp(-x)),
           dy / ((T)1.0f + exp(-v)) * ((T)1.0f + v * ((T)1.0f - (T)1.0f / ((T)1.0f + exp(-v)))))
LOOM_UNARY(softplus, x > (T)20.0f ? x : log1p(exp(x)), dy / ((T)1.0f + exp(-v)))
LOOM_UNARY(softsign, x / ((T)1.0f + fabs(x)), dy / (((T)1.0f + fabs(v)) * ((T)1.0f + fabs(v))))
LOOM_UNARY(scale, p * x, p * dy)
LOOM_UNARY(leaky_relu, x > (T)0.0f ? x : p * x, v > (T)0.0f ? dy : p * dy)
LOOM_UNARY(elu, x > (T)0.0f ? x : p * expm1(x), v > (T)0.0f ? dy : dy * p * exp(v))
LOOM_UNARY(clamp, x < (T)p ? (T)p : x > (T)q ? (T)q : x, v >= (T)p && v <= (T)q ? dy : (T)0.0f)
