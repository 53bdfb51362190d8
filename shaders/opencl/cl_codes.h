/*
 * Op codes shared by the OpenCL kernels and the host code that launches
 * them (src/backends/opencl/). Plain #defines so that both C11 and
 * OpenCL C read the same file; the build embeds it ahead of every .cl.
 */
#ifndef LOOM_CL_CODES_H
#define LOOM_CL_CODES_H

/* ew_unary */
#define LOOM_CL_U_SCALE 0
#define LOOM_CL_U_RELU 1
#define LOOM_CL_U_SIGMOID 2
#define LOOM_CL_U_TANH 3
#define LOOM_CL_U_GELU 4
#define LOOM_CL_U_EXP 5
#define LOOM_CL_U_LOG 6
#define LOOM_CL_U_SQUARE 7

/* ew_unary_grad */
#define LOOM_CL_G_RELU 0
#define LOOM_CL_G_SIGMOID 1
#define LOOM_CL_G_TANH 2
#define LOOM_CL_G_GELU 3

/* ew_binary_* */
#define LOOM_CL_B_ADD 0
#define LOOM_CL_B_SUB 1
#define LOOM_CL_B_MUL 2
#define LOOM_CL_B_DIV 3

/* rows_* (softmax family and the sparse cross-entropy gradient) */
#define LOOM_CL_R_SOFTMAX 0
#define LOOM_CL_R_LOG_SOFTMAX 1
#define LOOM_CL_R_SOFTMAX_GRAD 2
#define LOOM_CL_R_LOG_SOFTMAX_GRAD 3
#define LOOM_CL_R_XENT_GRAD 4

#endif
