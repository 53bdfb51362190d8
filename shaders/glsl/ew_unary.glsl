// The GLSL bodies of the unary ops of include/loom_ops.h: op_<name>(x, p, q)
// and d_<name>(dy, v, p, q) = dy f'(v), v the input or the output as the
// op's line says. The build makes one kernel variant of unary.comp and of
// unary_grad.comp per op_ line (shaders/glsl/meson.build reads this file);
// each must match src/backends/cpu/cpu_ew.c.
#ifndef LOOM_EW_UNARY_GLSL
#define LOOM_EW_UNARY_GLSL

float op_relu(float x, float p, float q) { return x > 0.0 ? x : 0.0; }
float d_relu(float dy, float x, float p, float q) { return x > 0.0 ? dy : 0.0; }

float op_sigmoid(float x, float p, float q) { return 1.0 / (1.0 + exp(-x)); }
float d_sigmoid(float dy, float s, float p, float q) { return dy * s * (1.0 - s); }

float op_tanh(float x, float p, float q) { return loom_tanh(x); }
float d_tanh(float dy, float t, float p, float q) { return dy * (1.0 - t * t); }

float op_gelu(float x, float p, float q) { return loom_gelu(x); }
float d_gelu(float dy, float x, float p, float q) { return dy * loom_gelu_grad(x); }

float op_exp(float x, float p, float q) { return exp(x); }
float d_exp(float dy, float e, float p, float q) { return dy * e; }

float op_log(float x, float p, float q) { return log(x); }
float d_log(float dy, float x, float p, float q) { return dy / x; }

float op_square(float x, float p, float q) { return x * x; }
float d_square(float dy, float x, float p, float q) { return 2.0 * dy * x; }

float op_abs(float x, float p, float q) { return abs(x); }
float d_abs(float dy, float x, float p, float q) { return x > 0.0 ? dy : x < 0.0 ? -dy : 0.0; }

float op_neg(float x, float p, float q) { return -x; }
float d_neg(float dy, float x, float p, float q) { return -dy; }

float op_sqrt(float x, float p, float q) { return sqrt(x); }
float d_sqrt(float dy, float s, float p, float q) { return 0.5 * dy / s; }

float op_rsqrt(float x, float p, float q) { return 1.0 / sqrt(x); }
float d_rsqrt(float dy, float r, float p, float q) { return -0.5 * dy * r * r * r; }

float op_silu(float x, float p, float q) { return x / (1.0 + exp(-x)); }
float d_silu(float dy, float x, float p, float q) { float s = 1.0 / (1.0 + exp(-x)); return dy * s * (1.0 + x * (1.0 - s)); }

float op_softplus(float x, float p, float q) { return x > 20.0 ? x : loom_log1p(exp(x)); }
float d_softplus(float dy, float x, float p, float q) { return dy / (1.0 + exp(-x)); }

float op_softsign(float x, float p, float q) { return x / (1.0 + abs(x)); }
float d_softsign(float dy, float x, float p, float q) { float d = 1.0 + abs(x); return dy / (d * d); }

float op_scale(float x, float a, float q) { return a * x; }
float d_scale(float dy, float x, float a, float q) { return a * dy; }

float op_leaky_relu(float x, float slope, float q) { return x > 0.0 ? x : slope * x; }
float d_leaky_relu(float dy, float x, float slope, float q) { return x > 0.0 ? dy : slope * dy; }

float op_elu(float x, float a, float q) { return x > 0.0 ? x : a * loom_expm1(x); }
float d_elu(float dy, float x, float a, float q) { return x > 0.0 ? dy : dy * a * exp(x); }

float op_clamp(float x, float lo, float hi) { return x < lo ? lo : x > hi ? hi : x; }
float d_clamp(float dy, float x, float lo, float hi) { return x >= lo && x <= hi ? dy : 0.0; }

#endif
