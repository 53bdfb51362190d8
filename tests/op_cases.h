/* The one table of op cases, run on every backend present against the CPU
 * reference (forward and backward). */
#ifndef LOOM_OP_CASES_H
#define LOOM_OP_CASES_H

#include "loom.h"

typedef enum case_kind {
    K_MATMUL, K_ADD, K_SUB, K_MUL, K_DIV, K_SCALE, K_RELU, K_SIGMOID, K_TANH, K_GELU, K_EXP, K_LOG,
    K_SQUARE, K_SOFTMAX, K_LOG_SOFTMAX, K_SUM, K_MEAN, K_SUM_ALL, K_ARGMAX, K_RESHAPE, K_TRANSPOSE,
    K_SPARSE_XENT, K_XENT, K_MSE, K_DROPOUT
} case_kind;

typedef struct op_case {
    const char *name;
    case_kind kind;
    int nin;
    int ndim[2];
    int64_t shape[2][4];
    float lo, hi;             /* input range */
    int ta, tb;               /* matmul */
    int axis, keepdim;        /* reductions, argmax */
    float alpha;              /* scale, dropout rate */
    int perm[4];              /* transpose */
    double atol, rtol;        /* forward and backward */
    int backward;             /* check gradients too */
} op_case;

extern const op_case op_cases[];
extern const int op_case_count;

/* Builds the case's op over its inputs (named "in0", "in1"); the result. */
loom_tensor op_case_build(loom_graph *g, const op_case *c, loom_tensor *ins);

#endif
