// The GLSL bodies of the binary ops of include/loom_ops.h: op_<name>(a, b),
// and for the ops whose gradient is a kernel, da_<name>(a, b) and
// db_<name>(a, b), the partial derivatives. The build makes one variant of
// binary.comp per op_ line and one of binary_grad.comp per da_ line
// (shaders/glsl/meson.build reads this file); each must match
// src/backends/cpu/cpu_ew.c.
#ifndef LOOM_EW_BINARY_GLSL
#define LOOM_EW_BINARY_GLSL

float op_add(float a, float b) { return a + b; }
float op_sub(float a, float b) { return a - b; }
float op_mul(float a, float b) { return a * b; }
float op_div(float a, float b) { return a / b; }

float op_pow(float a, float b) { return loom_pow(a, b); }
float da_pow(float a, float b) { return b == 0.0 ? 0.0 : b * loom_pow(a, b - 1.0); }
float db_pow(float a, float b) { return a > 0.0 ? loom_pow(a, b) * log(a) : 0.0; }

float op_maximum(float a, float b) { return a >= b ? a : b; }
float da_maximum(float a, float b) { return a >= b ? 1.0 : 0.0; }
float db_maximum(float a, float b) { return a >= b ? 0.0 : 1.0; }

float op_minimum(float a, float b) { return a <= b ? a : b; }
float da_minimum(float a, float b) { return a <= b ? 1.0 : 0.0; }
float db_minimum(float a, float b) { return a <= b ? 0.0 : 1.0; }

float op_eq(float a, float b) { return a == b ? 1.0 : 0.0; }
float op_lt(float a, float b) { return a < b ? 1.0 : 0.0; }
float op_le(float a, float b) { return a <= b ? 1.0 : 0.0; }
float op_gt(float a, float b) { return a > b ? 1.0 : 0.0; }
float op_ge(float a, float b) { return a >= b ? 1.0 : 0.0; }

#endif
