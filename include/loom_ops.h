/*
 * loom's element-wise ops, one line each. This list is the op table's entry
 * for each of them: include/loom.h declares the constructors loom_<name>
 * from it, and the library builds its op table, its gradients and its
 * kernel variants from the same lines. Included by loom.h; not on its own.
 *
 * Columns: the op's name (the constructor is loom_<name>), its id (the
 * internal op LOOM_OP_<ID>), the arithmetic it costs per output element (a
 * transcendental counts as one), and what its gradient needs:
 *   unary ops:  FROM_X  the derivative is computed from the input x,
 *               FROM_Y  from the output y (so y is kept for the backward pass);
 *   binary ops: ADD, SUB, MUL, DIV  composed from other ops,
 *               KERNEL  a derivative kernel per operand,
 *               NONE  not differentiable (the gradient is zero: masks).
 * Unary ops with parameters name them in the last columns.
 */
#ifndef LOOM_OPS_H
#define LOOM_OPS_H

/* y = f(x): loom_<name>(g, x). */
#define LOOM_UNARY_OPS(X)                                                                  \
    X(relu, RELU, 1, FROM_Y)          /* max(x, 0); y > 0 exactly where x > 0 */                                          \
    X(sigmoid, SIGMOID, 3, FROM_Y)    /* 1 / (1 + exp(-x)) */                                   \
    X(tanh, TANH, 1, FROM_Y)                                                                    \
    X(gelu, GELU, 5, FROM_X)          /* 0.5 x (1 + erf(x / sqrt 2)), the exact form */         \
    X(exp, EXP, 1, FROM_Y)                                                                      \
    X(log, LOG, 1, FROM_X)                                                                      \
    X(square, SQUARE, 1, FROM_X)                                                                \
    X(abs, ABS, 1, FROM_X)            /* gradient sign(x), 0 at 0 */                            \
    X(neg, NEG, 1, FROM_X)                                                                      \
    X(sqrt, SQRT, 1, FROM_Y)                                                                    \
    X(rsqrt, RSQRT, 2, FROM_Y)        /* 1 / sqrt(x) */                                         \
    X(silu, SILU, 4, FROM_X)          /* x sigmoid(x) (swish) */                                \
    X(softplus, SOFTPLUS, 3, FROM_X)  /* log(1 + exp(x)), linear above x = 20 */                             \
    X(softsign, SOFTSIGN, 3, FROM_X)  /* x / (1 + |x|) */

/* y = f(x; p): loom_<name>(g, x, p). */
#define LOOM_UNARY1_OPS(X)                                                                 \
    X(scale, SCALE, 1, FROM_X, alpha)          /* alpha x */                                    \
    X(leaky_relu, LEAKY_RELU, 2, FROM_X, slope) /* x > 0 ? x : slope x (Keras: 0.3, torch: 0.01) */ \
    X(elu, ELU, 3, FROM_X, alpha)              /* x > 0 ? x : alpha (exp(x) - 1) */

/* y = f(x; p, q): loom_<name>(g, x, p, q). */
#define LOOM_UNARY2_OPS(X)                                                                 \
    X(clamp, CLAMP, 2, FROM_X, lo, hi) /* min(max(x, lo), hi); gradient 1 inside [lo, hi] */

/* y = f(a, b) with numpy broadcasting: loom_<name>(g, a, b). The
 * comparisons give a mask in the inputs' dtype: 1 where true, 0 where not. */
#define LOOM_BINARY_OPS(X)                                                                 \
    X(add, ADD, 1, ADD)                                                                    \
    X(sub, SUB, 1, SUB)                                                                    \
    X(mul, MUL, 1, MUL)                                                                    \
    X(div, DIV, 1, DIV)                                                                    \
    X(pow, POW, 3, KERNEL)         /* a^b (a > 0 for non-integer b) */                     \
    X(maximum, MAXIMUM, 1, KERNEL) /* gradient to a where a >= b, else to b */             \
    X(minimum, MINIMUM, 1, KERNEL) /* gradient to a where a <= b, else to b */             \
    X(eq, EQ, 1, NONE)                                                                     \
    X(lt, LT, 1, NONE)                                                                     \
    X(le, LE, 1, NONE)                                                                     \
    X(gt, GT, 1, NONE)                                                                     \
    X(ge, GE, 1, NONE)

#endif
