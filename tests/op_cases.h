/* The one table of op cases, run on every backend present against the CPU
 * reference (forward and backward, in f32 and in the half dtypes). A case
 * names what it builds: an op of the op table (element-wise ops are built
 * from the table itself) or one of the builders in op_cases.c. */
#ifndef LOOM_OP_CASES_H
#define LOOM_OP_CASES_H

#include "loom.h"

typedef struct op_case {
    const char *name;
    const char *op;           /* an op's name, or a builder's */
    int nin;
    int ndim[3];
    int64_t shape[3][4];
    float lo, hi;             /* input range */
    int ta, tb;               /* matmul */
    int axis, keepdim;        /* reductions, softmax, argmax */
    float p1, p2;             /* unary parameters, dropout rate */
    int perm[4];              /* transpose */
    double atol, rtol;        /* f32, forward and backward */
    int backward;             /* check gradients too */
    int kink;                 /* finite differences skip points near 0 (relu, abs, ...) */
    int f32_only;             /* not run in f16 / bf16 */
} op_case;

extern const op_case op_cases[];
extern const int op_case_count;

/* Input i of the case holds class labels (i32), not floats. */
int op_case_labels(const op_case *c, int i);
/* Input 0 of the case is a trainable parameter in the state (optimizer
 * cases): the result is the parameter after one update. */
int op_case_stateful(const op_case *c);
/* Builds the case's op over its inputs (named "in0", "in1", "in2", in the
 * given float dtype); the result. */
loom_tensor op_case_build(loom_graph *g, const op_case *c, loom_tensor *ins, loom_dtype dt);

#endif
