/*
 * Which variant of its family's kernel an op is. The op table
 * (src/core/op_table.c) gives each op its code; the kernels of every
 * backend read the code, never the op's id. Plain #defines, so that C11,
 * GLSL and OpenCL C all read this one file.
 */
#ifndef LOOM_CODES_H
#define LOOM_CODES_H

/* gather: out[i] = in[strided i] */
#define LOOM_GATHER_COPY 0
#define LOOM_GATHER_EXPAND 1
#define LOOM_GATHER_TRANSPOSE 2

/* softmax family */
#define LOOM_SOFTMAX_PLAIN 0
#define LOOM_SOFTMAX_LOG 1

/* reductions */
#define LOOM_REDUCE_SUM 0
#define LOOM_REDUCE_MAX 1
#define LOOM_REDUCE_MIN 2

/* arg-reductions and the gradients of max / min */
#define LOOM_ARG_MAX 0
#define LOOM_ARG_MIN 1

/* the activations a GEMM applies in its epilogue (and whose gradient it
 * applies, for those whose derivative reads their output) */
#define LOOM_EPI_NONE 0
#define LOOM_EPI_RELU 1
#define LOOM_EPI_GELU 2
#define LOOM_EPI_TANH 3
#define LOOM_EPI_SIGMOID 4
#define LOOM_EPI_SILU 5

#endif
