/*
 * The graph's intermediate representation: op ids, node attributes and the
 * per-run values. What each op is -- its name, family, arity, shape rule,
 * cost, gradient, in-place rule -- is defined once, in the op table
 * (op_table.h / op_table.c); the CPU backend (src/backends/cpu/) is the
 * executable reference of every op's semantics.
 */
#ifndef LOOM_IR_H
#define LOOM_IR_H

#include "loom.h"

#define LOOM_OP_ENUM_(name, ID, ...) LOOM_OP_##ID,

typedef enum loom_op {
    LOOM_OP_NONE = 0,
    /* leaves */
    LOOM_OP_INPUT,      /* uploaded by loom_program_set_input */
    LOOM_OP_PARAM,      /* lives in the loom_state */
    LOOM_OP_CONST,      /* data in node->data, uploaded at compile */

    /* the element-wise ops of include/loom_ops.h */
    LOOM_UNARY_OPS(LOOM_OP_ENUM_)
    LOOM_UNARY1_OPS(LOOM_OP_ENUM_)
    LOOM_UNARY2_OPS(LOOM_OP_ENUM_)
    LOOM_BINARY_OPS(LOOM_OP_ENUM_)

    /* dx = dy * f'(v) for the unary op attr.fwd; in: dy, v (x or y as the
     * op's line in loom_ops.h says). */
    LOOM_OP_UNARY_GRAD,
    /* d(out)/d(operand attr.side) * dy of the binary op attr.fwd, at the
     * forward output's shape (core reduces it onto the operand's); in: dy,
     * a, b. */
    LOOM_OP_BINARY_GRAD,
    /* in: cond, a, b (broadcast). out = cond != 0 ? a : b. */
    LOOM_OP_WHERE,
    /* in: x. out: the same values in the node's dtype. */
    LOOM_OP_CAST,

    /* C = op(A) x op(B). in: A, B. attr: ta, tb. 2-D. Fusions made at
     * compile (src/core/program.c): with attr.bias, in[2] is a row bias [N]
     * added to every row, then attr.act (a unary op, params p1 p2) applied,
     * if not NONE; with attr.dact (a unary op whose derivative reads its
     * output), in[2] is that output y and C = (A x B) * f'(y) -- a backward
     * pass's activation gradient. */
    LOOM_OP_MATMUL,

    /* out[i] = in[strided i]: one gather kernel serves all three */
    LOOM_OP_COPY,       /* reshape: same elements, new shape (a no-op in place) */
    LOOM_OP_EXPAND,     /* in broadcast to the node's shape; attr.rshape is the
                           input's shape aligned to the output's rank */
    LOOM_OP_TRANSPOSE,  /* out dim i = in dim attr.perm[i] */

    /* along attr.axis */
    LOOM_OP_SOFTMAX,
    LOOM_OP_LOG_SOFTMAX,
    LOOM_OP_SOFTMAX_GRAD,     /* in: dy, y.  y * (dy - sum(dy * y)) */
    LOOM_OP_LOG_SOFTMAX_GRAD, /* in: dy, y.  dy - exp(y) * sum(dy) */

    /* out[j] = alpha * (sum | max | min) of in over the elements that
     * broadcast onto j. attr.rshape is the out shape in the input's rank
     * (each dim equal to the input's or 1); the node's own shape may drop
     * the size-1 dims. MAX and MIN reduce one axis, attr.axis. */
    LOOM_OP_REDUCE_SUM,
    LOOM_OP_REDUCE_MAX,
    LOOM_OP_REDUCE_MIN,
    /* in: dy (the reduced shape), x. dx = dy at the first arg-max (arg-min)
     * of each slice along attr.axis, 0 elsewhere. */
    LOOM_OP_REDUCE_MAX_GRAD,
    LOOM_OP_REDUCE_MIN_GRAD,
    /* i32 index of the max (min) along attr.axis (first on ties), axis removed */
    LOOM_OP_ARGMAX,
    LOOM_OP_ARGMIN,

    /* in: logits [N,C], labels i32 [N]. out: f32 scalar
     * mean_n( logsumexp(logits[n]) - logits[n, label[n]] ); a label outside
     * [0, C) gives NaN (labels from the host are checked before). */
    LOOM_OP_SPARSE_XENT,
    /* in: dloss (f32 scalar), logits [N,C], labels [N].
     * out [N,C] = dloss / N * (softmax(logits) - onehot(label)). */
    LOOM_OP_SPARSE_XENT_GRAD,

    /* y = keep ? x / (1 - rate) : 0, keep = loom_rng_uniform(seed, salt,
     * step, i) >= rate. attr: alpha = rate, seed, salt. The dropout of a
     * gradient uses the same seed and salt, hence the same mask. */
    LOOM_OP_DROPOUT,

    /* f32 scalar = sum over every input of sum(x*x). Any number of inputs.
     * Not finite when any input holds an inf or NaN: the updates of a
     * loss-scaled program skip their step then. */
    LOOM_OP_SUMSQ,
    /* f32 scalar: the per-run loss scale (1 without scaling); the seed of
     * a loss-scaled backward pass. */
    LOOM_OP_LOSS_SCALE,

    /* Optimizer updates: no output; they write state tensors in place.
     * in[0] = param, in[1] = grad, then the moments, then optionally the
     * SUMSQ scalar of every gradient (attr.clip).
     * Gradient used: g = grad * u * clip + 2 l2 p + l1 sign(p), where u is
     * the run's 1 / loss scale and clip = min(1, clip_norm / (u sqrt(sumsq)))
     * when clipping, else 1; with attr.skip_nonfinite the update does
     * nothing when sumsq is not finite. The rate and the step come from the
     * run slot. */
    LOOM_OP_SGD_UPDATE,  /* in: p, g, [mom].  momentum == 0: p -= lr g.
                            else v = mu v - lr g; p += nesterov ? mu v - lr g : v */
    LOOM_OP_ADAM_UPDATE, /* in: p, g, m, v. m += (g - m)(1-b1); v += (g*g - v)(1-b2);
                            p -= alpha m / (sqrt v + eps) + lr wd p (AdamW, decay
                            applied before the step); alpha = the slot's bias-corrected rate */
    LOOM_OP_EMA_UPDATE,  /* in: ema, p.  ema = decay ema + (1 - decay) p;
                            the slot's decay is 0 at step 1: ema = p */

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
    int32_t bias;              /* MATMUL: fused row bias (in[2]) */
    int32_t act;               /* MATMUL: fused unary op, LOOM_OP_NONE if none */
    int32_t dact;              /* MATMUL: fused activation gradient, LOOM_OP_NONE if none */
    int32_t axis;              /* ARGMAX, softmax family, REDUCE_MAX/MIN and their grads */
    int32_t fwd;               /* UNARY_GRAD, BINARY_GRAD: the forward op */
    int32_t side;              /* BINARY_GRAD: 0 for a, 1 for b */
    float p1, p2;              /* unary ops' parameters (scale alpha, clamp lo hi, ...) */
    int32_t perm[LOOM_MAX_DIMS];
    int64_t rshape[LOOM_MAX_DIMS]; /* REDUCE_*, EXPAND (rank = rdim) */
    int32_t rdim;
    float alpha;               /* REDUCE_SUM factor, dropout rate */
    uint32_t seed, salt;       /* DROPOUT */
    /* optimizers */
    float beta1, beta2, eps, momentum, weight_decay, l1, l2, clip_norm, decay;
    int32_t nesterov;
    int32_t clip;              /* 1: the last input is the SUMSQ scalar */
    int32_t skip_nonfinite;    /* loss-scaled: a non-finite sumsq skips the step */
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
    int dead;                  /* in a program: fused into a later node, not run */
    void *data;                /* CONST: the values; CUSTOM: the GLSL source */
    size_t data_bytes;
    loom_attr attr;
} loom_node;

/* The counter-based RNG shared by every backend (the GLSL and OpenCL
 * kernels implement the same integer arithmetic): a 32-bit avalanche hash
 * applied three times. Returns a float in [0, 1) with 24 random bits. The
 * part that depends on the run only (h0) is computed once per run in core
 * and handed to every backend in the run slot. */
static inline uint32_t loom_rng_hash(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

static inline uint32_t loom_rng_h0(uint32_t seed, uint32_t salt, uint32_t step)
{
    return loom_rng_hash(seed ^ loom_rng_hash(salt * 0x9e3779b9U + loom_rng_hash(step)));
}

static inline float loom_rng_element(uint32_t h0, uint32_t i)
{
    return (float)(loom_rng_hash(h0 ^ i) >> 8) * (1.0f / 16777216.0f);
}

static inline float loom_rng_uniform(uint32_t seed, uint32_t salt, uint32_t step, uint32_t i)
{
    return loom_rng_element(loom_rng_h0(seed, salt, step), i);
}

int64_t loom_numel(int ndim, const int64_t *shape);

#endif
