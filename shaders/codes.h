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

/* convolutions: which of (x, w, y) a node computes from the other two */
#define LOOM_CONV_FWD 0          /* y from x, w */
#define LOOM_CONV_BWD_DATA 1     /* x from y, w (conv_transpose2d) */
#define LOOM_CONV_BWD_FILTER 2   /* w from y, x */

/* pooling */
#define LOOM_POOL_MAX 0
#define LOOM_POOL_AVG 1

/* normalization: what a node of the family computes */
#define LOOM_NORM_STATS 0
#define LOOM_NORM_APPLY 1
#define LOOM_NORM_GRAD_STATS 2
#define LOOM_NORM_GRAD 3
#define LOOM_NORM_DGAMMA 4

/* windows of a tensor */
#define LOOM_WINDOW_SLICE 0
#define LOOM_WINDOW_SLICE_GRAD 1
#define LOOM_WINDOW_PAD 2
#define LOOM_WINDOW_PAD_GRAD 3

/* layer norm, RMS norm and their gradients */
#define LOOM_LNORM_LAYER 0
#define LOOM_LNORM_RMS 1

/* indexing: take (embedding) and gather; their gradients (scatter-adds) */
#define LOOM_INDEX_TAKE 0
#define LOOM_INDEX_GATHER 1

/* fused attention: the forward pass, the backward pass's row statistics,
 * and the three gradients */
#define LOOM_ATTN_FWD 0
#define LOOM_ATTN_STATS 1
#define LOOM_ATTN_DQ 2
#define LOOM_ATTN_DK 3
#define LOOM_ATTN_DV 4

/* attention tensor layouts (loom_layout of include/loom.h) */
#define LOOM_ATTN_BHND 0
#define LOOM_ATTN_BNHD 1

/* int8: quantize, dequantize */
#define LOOM_QUANT_Q 0
#define LOOM_QUANT_DQ 1

#endif
