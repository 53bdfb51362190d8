/*
 * The graph's intermediate representation: op codes, node attributes and
 * the semantics every backend implements. The CPU backend
 * (src/backends/cpu/cpu_kernels.c) is the executable reference for each.
 */
#ifndef LOOM_IR_H
#define LOOM_IR_H

#include "loom.h"

typedef enum loom_op {
    LOOM_OP_NONE = 0,
    /* leaves */
    LOOM_OP_INPUT,      /* uploaded by loom_program_set_input */
    LOOM_OP_PARAM,      /* lives in the loom_state */
    LOOM_OP_CONST,      /* data in node->data, uploaded at compile */

    /* C = op(A) x op(B). in: A, B. attr: ta, tb. 2-D only. */
    LOOM_OP_MATMUL,

    /* element-wise, numpy broadcasting of in[0] and in[1] to the out shape */
    LOOM_OP_ADD,
    LOOM_OP_SUB,
    LOOM_OP_MUL,
    LOOM_OP_DIV,

    /* element-wise unary, out shape = in shape */
    LOOM_OP_SCALE,      /* y = alpha * x */
    LOOM_OP_RELU,       /* max(x, 0) */
    LOOM_OP_SIGMOID,
    LOOM_OP_TANH,
    LOOM_OP_GELU,       /* 0.5 x (1 + erf(x / sqrt 2)) */
    LOOM_OP_EXP,
    LOOM_OP_LOG,
    LOOM_OP_SQUARE,
    LOOM_OP_COPY,       /* reshape: same elements, new shape (a no-op in place) */

    /* unary gradients: in[0] = dy, in[1] = x or y as noted */
    LOOM_OP_RELU_GRAD,    /* dy * (x > 0)            in[1] = x */
    LOOM_OP_SIGMOID_GRAD, /* dy * y * (1 - y)        in[1] = y */
    LOOM_OP_TANH_GRAD,    /* dy * (1 - y*y)          in[1] = y */
    LOOM_OP_GELU_GRAD,    /* dy * gelu'(x)           in[1] = x */

    /* over the last axis */
    LOOM_OP_SOFTMAX,
    LOOM_OP_LOG_SOFTMAX,
    LOOM_OP_SOFTMAX_GRAD,     /* in: dy, y.  y * (dy - sum(dy * y)) */
    LOOM_OP_LOG_SOFTMAX_GRAD, /* in: dy, y.  dy - exp(y) * sum(dy) */

    /* out[j] = alpha * sum of in over the elements that broadcast onto j.
     * attr.rshape is the out shape in the input's rank (each dim equal to
     * the input's or 1); the node's own shape may drop the size-1 dims. */
    LOOM_OP_REDUCE_SUM,
    /* out = in broadcast (numpy rules) to the node's shape; attr.rshape is
     * the input's shape aligned to the output's rank. */
    LOOM_OP_EXPAND,
    /* out[...] = in[perm-permuted index]: out dim i = in dim perm[i] */
    LOOM_OP_TRANSPOSE,
    /* i32 index of the max along attr.axis (first on ties), axis removed */
    LOOM_OP_ARGMAX,

    /* in: logits [N,C], labels i32 [N]. out: scalar
     * mean_n( logsumexp(logits[n]) - logits[n, label[n]] ). */
    LOOM_OP_SPARSE_XENT,
    /* in: dloss (scalar), logits [N,C], labels [N].
     * out [N,C] = dloss / N * (softmax(logits) - onehot(label)). */
    LOOM_OP_SPARSE_XENT_GRAD,

    /* y = keep ? x / (1 - rate) : 0, keep = loom_rng_uniform(seed, salt,
     * step, i) >= rate. attr: alpha = rate, seed, salt. The dropout of a
     * gradient uses the same seed and salt, hence the same mask. */
    LOOM_OP_DROPOUT,

    /* scalar = sum over every input of sum(x*x). Any number of inputs. */
    LOOM_OP_SUMSQ,

    /* Optimizer updates: no output; they write state tensors in place.
     * in[0] = param, in[1] = grad, then the moments, then optionally the
     * SUMSQ scalar of every gradient (attr.clip_norm > 0).
     * Gradient used: g = grad * clip + 2 l2 p + l1 sign(p) (the gradients of
 * the Keras penalties l2 sum p^2 and l1 sum |p|), where
     * clip = min(1, clip_norm / sqrt(sumsq)) when clipping, else 1.
     * The learning rate and step come from loom_run_args. */
    LOOM_OP_SGD_UPDATE,  /* in: p, g, [mom].  momentum == 0: p -= lr g.
                            else v = mu v - lr g; p += nesterov ? mu v - lr g : v */
    LOOM_OP_ADAM_UPDATE, /* in: p, g, m, v. m += (g - m)(1-b1); v += (g*g - v)(1-b2);
                            p -= lr sqrt(1-b2^t)/(1-b1^t) m / (sqrt v + eps)
                            + lr wd p (AdamW, decay applied before the step) */
    LOOM_OP_EMA_UPDATE,  /* in: ema, p.  ema = decay ema + (1 - decay) p;
                            at step 1, ema = p */

    /* A user's GLSL compute shader (loom_custom_op): node->data holds the
     * source, attr.groups the workgroup count. Only a backend whose
     * supports() says yes runs it; it has no gradient. */
    LOOM_OP_CUSTOM,

    LOOM_OP_COUNT
} loom_op;

typedef enum loom_role {
    LOOM_ROLE_INTERMEDIATE = 0,
    LOOM_ROLE_INPUT,
    LOOM_ROLE_PARAM,
    LOOM_ROLE_CONST
} loom_role;

typedef struct loom_attr {
    int32_t ta, tb;            /* MATMUL */
    int32_t axis;              /* ARGMAX */
    int32_t perm[LOOM_MAX_DIMS];
    int64_t rshape[LOOM_MAX_DIMS]; /* REDUCE_SUM, EXPAND (rank = rdim) */
    int32_t rdim;
    float alpha;               /* SCALE factor, REDUCE_SUM factor, dropout rate */
    uint32_t seed, salt;       /* DROPOUT */
    /* optimizers */
    float beta1, beta2, eps, momentum, weight_decay, l1, l2, clip_norm, decay;
    int32_t nesterov;
    int32_t clip;              /* 1: the last input is the SUMSQ scalar */
    uint32_t groups[3];        /* CUSTOM */
} loom_attr;

typedef struct loom_node {
    loom_op op;
    loom_role role;
    loom_dtype dtype;
    int ndim;
    int64_t shape[LOOM_MAX_DIMS];
    int64_t numel;
    int nin;
    int32_t *in;               /* tensor ids (node index + 1) */
    char *name;                /* always set: given or generated */
    int is_output;
    int trainable;             /* PARAM */
    int side_effect;           /* updates: kept although nothing reads them */
    void *data;                /* CONST */
    loom_attr attr;
} loom_node;

/* Arguments of one run, read by kernels that need them. */
typedef struct loom_run_args {
    int64_t step;              /* 1-based number of this optimizer update */
    float lr;                  /* learning rate of this step */
} loom_run_args;

/* The counter-based RNG shared by every backend (the GLSL and OpenCL
 * kernels implement the same integer arithmetic): a 32-bit avalanche hash
 * applied three times. Returns a float in [0, 1) with 24 random bits. */
static inline uint32_t loom_rng_hash(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

static inline float loom_rng_uniform(uint32_t seed, uint32_t salt, uint32_t step, uint32_t i)
{
    uint32_t h = loom_rng_hash(seed ^ loom_rng_hash(salt * 0x9e3779b9U + loom_rng_hash(step)));
    h = loom_rng_hash(h ^ i);
    return (float)(h >> 8) * (1.0f / 16777216.0f);
}

int64_t loom_numel(int ndim, const int64_t *shape);
const char *loom_op_name(loom_op op);
/* 1 for ops whose out[i] depends only on in[k][i] of same-shaped inputs:
 * the planner may let them write over a dying input. */
int loom_op_elementwise(loom_op op);

#endif
