/* The graph builder's internals, shared by ops.c, autodiff.c, optim.c and
 * program.c. */
#ifndef LOOM_GRAPH_H
#define LOOM_GRAPH_H

#include "internal.h"
#include "ir.h"

struct loom_graph {
    loom_ctx *ctx;
    loom_node *nodes;
    int n, cap;
    loom_status err;            /* sticky: the first op error */
    char errmsg[LOOM_ERRMSG];
    int32_t *grad;              /* grad[i]: gradient id of node i (0: none) */
    int grad_cap;
    uint32_t dropout_count;     /* salts for dropout nodes */
    loom_optimizer opt;         /* set by loom_optimize: the lr schedule */
    int has_opt;
    int loss_scaling;           /* backward seeded with the run's loss scale */
    loom_loss_scaling scaling;  /* its policy (loom_backward_scaled) */
    char scope[LOOM_SCOPE_MAX]; /* loom_graph_scope: prefix of generated names */
    int scope_start;            /* the first node made in that scope */
};

/* Node of a tensor id, or NULL for LOOM_NONE / out of range. */
static inline loom_node *loom_node_of(const loom_graph *g, loom_tensor t)
{
    return (g && t.id > 0 && t.id <= g->n) ? &g->nodes[t.id - 1] : NULL;
}

/* Sets the sticky error (first one wins) and returns LOOM_NONE. */
loom_tensor loom_graph_fail(loom_graph *g, loom_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Appends a node; takes copies of `in` and `name` (NULL: generated).
 * Returns LOOM_NONE (and sets the sticky error) on failure. */
loom_tensor loom_graph_add(loom_graph *g, loom_op op, loom_dtype dt, int ndim,
                           const int64_t *shape, int nin, const int32_t *in,
                           const char *name, const loom_attr *attr);

/* Checks the graph's sticky error and the inputs of an op about to be
 * built; 0 if the op must return LOOM_NONE. */
int loom_graph_check_inputs(loom_graph *g, const char *op, int n, const loom_tensor *ts);

/* An element-wise op of the table over n inputs (its shape rule, one
 * dtype), with the unary parameters p1, p2. */
loom_tensor loom_op_elementwise(loom_graph *g, loom_op op, int n, const loom_tensor *ins, float p1, float p2);

/* numpy broadcasting of two shapes; 0 if incompatible. */
int loom_broadcast_shape(int na, const int64_t *a, int nb, const int64_t *b,
                         int *nout, int64_t *out);

/* loom_matmul of operands that are not both 2-D (ops_seq.c). */
loom_tensor loom_matmul_nd(loom_graph *g, loom_tensor a, loom_tensor b, int ta, int tb);

/* loom_matmul of operands that are not both 2-D (ops_seq.c). */
loom_tensor loom_matmul_nd(loom_graph *g, loom_tensor a, loom_tensor b, int ta, int tb);

#endif
