/*
 * The OpenCL C bodies of the binary ops of include/loom_ops.h, one line
 * each: LOOM_BINARY(name, y from a and b); for the ops whose gradient is a
 * kernel, LOOM_BINARY_GRAD(name, d/da, d/db). Each expression serves float
 * and float8 (T is either). The kernels binary_<name>, binary_row_<name>,
 * binary_bcast_<name> and binary_grad_<name> are made from these lines
 * (elementwise.cl); each must match src/backends/cpu/cpu_ew.c.
 */
LOOM_BINARY(add, a + b)
LOOM_BINARY(sub, a - b)
LOOM_BINARY(mul, a * b)
LOOM_BINARY(div, a / b)
LOOM_BINARY(pow, pow(a, b))
LOOM_BINARY_GRAD(pow, b == (T)0.0f ? (T)0.0f : b * pow(a, b - (T)1.0f), a > (T)0.0f ? pow(a, b) * log(a) : (T)0.0f)
LOOM_BINARY(maximum, a >= b ? a : b)
LOOM_BINARY_GRAD(maximum, a >= b ? (T)1.0f : (T)0.0f, a >= b ? (T)0.0f : (T)1.0f)
LOOM_BINARY(minimum, a <= b ? a : b)
LOOM_BINARY_GRAD(minimum, a <= b ? (T)1.0f : (T)0.0f, a <= b ? (T)0.0f : (T)1.0f)
LOOM_BINARY(eq, a == b ? (T)1.0f : (T)0.0f)
LOOM_BINARY(lt, a < b ? (T)1.0f : (T)0.0f)
LOOM_BINARY(le, a <= b ? (T)1.0f : (T)0.0f)
LOOM_BINARY(gt, a > b ? (T)1.0f : (T)0.0f)
LOOM_BINARY(ge, a >= b ? (T)1.0f : (T)0.0f)
