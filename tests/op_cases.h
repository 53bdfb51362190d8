/* The one table of op cases, run on every backend present against the CPU
 * reference (forward and backward, in f32 and in the half dtypes). A case
 * names what it builds: an op of the op table (element-wise ops are built
 * from the table itself) or one of the builders in op_cases.c. */
#ifndef LOOM_OP_CASES_H
#define LOOM_OP_CASES_H

#include "loom.h"

#define OP_CASE_MAX_IN 4

typedef struct op_case {
    const char *name;
    const char *op;           /* an op's name, or a builder's */
    int nin;
    int ndim[OP_CASE_MAX_IN];
    int64_t shape[OP_CASE_MAX_IN][4];
    float lo, hi;             /* input range */
    int ta, tb;               /* matmul */
    int axis, keepdim;        /* reductions, softmax, argmax */
    float p1, p2;             /* unary parameters, dropout rate */
    int perm[4];              /* transpose */
    double atol, rtol;        /* f32, forward and backward */
    int backward;             /* check gradients too */
    int kink;                 /* finite differences skip points near 0 (relu, abs, ...) */
    int f32_only;             /* not run in f16 / bf16 */
    /* the sequence ops' cases (written with designated initializers) */
    unsigned char fill[OP_CASE_MAX_IN]; /* how each input is made: OP_FILL_* */
    int index_hi;             /* OP_FILL_INDEX: indices in [0, index_hi) */
    int causal, layout;       /* attention */
    float scale;              /* attention (0: 1/sqrt(D)), rope's base */
} op_case;

/* How an input of a case is filled. */
enum {
    OP_FILL_RANGE = 0,        /* floats in [lo, hi) */
    OP_FILL_INDEX,            /* i32 indices in [0, index_hi) */
    OP_FILL_PADDING           /* an attention padding mask over its last dim
                                 (keys): 0, then -inf over the last b % 3
                                 keys of batch b; it takes no gradient */
};

extern const op_case op_cases[];
extern const int op_case_count;

/* Input i of the case holds class labels or indices (i32), not floats. */
int op_case_labels(const op_case *c, int i);
/* Input i takes no gradient (indices, attention masks). */
int op_case_nograd(const op_case *c, int i);
/* Fills input i (n values) as the case says: x holds its floats, or its
 * i32 values for index inputs. */
void op_case_fill(const op_case *c, int i, float *x, size_t n, uint32_t seed);
/* Input 0 of the case is a trainable parameter in the state (optimizer
 * cases): the result is the parameter after one update. */
int op_case_stateful(const op_case *c);
/* Builds the case's op over its inputs (named "in0" to "in3", in the given
 * float dtype); the result. */
loom_tensor op_case_build(loom_graph *g, const op_case *c, loom_tensor *ins, loom_dtype dt);

#endif
