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
     * out [N,C] = dloss / N * (softmax(logits) - onehot(label)). Fused
     * (node.also), it writes the loss and the arg-max of each row too. */
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

    /* ---- convolutional networks (src/core/ops_conv.c) ---------------------
     * NCHW. The conv family shares its geometry (attr.stride, attr.pad as
     * top, left, bottom, right, attr.dil, attr.cgroups): the convolution's
     * input X [N, C, H, W], its weights W [OC, C / groups, KH, KW] and its
     * output Y [N, OC, OH, OW], OH = (H + pt + pb - dil (KH - 1) - 1) / s + 1.
     * Which of them a node reads and writes is its code (codes.h). */
    /* in: x, w, [bias [OC]]. out: y. */
    LOOM_OP_CONV2D,
    /* in: y (a tensor of the output's geometry), w, [bias [C]]. out: x's
     * geometry, the transpose of conv2d (its gradient to the input). */
    LOOM_OP_CONV_TRANSPOSE2D,
    /* in: dy, x. out: dw, the gradient of conv2d to its weights. */
    LOOM_OP_CONV2D_GRAD_WEIGHT,
    /* in: x [N, C, H, W]. attr.kernel, stride, pad; out [N, C, OH, OW].
     * Max ignores the padding; avg divides by the window's elements inside
     * the input (attr.side = 0) or by the whole window (attr.side = 1). */
    LOOM_OP_MAX_POOL2D,
    LOOM_OP_AVG_POOL2D,
    /* in: dy, x. dx = dy at the first arg-max of each window (windows that
     * share an element each add theirs). */
    LOOM_OP_MAX_POOL2D_GRAD,
    /* in: dy. dx, of the node's shape. */
    LOOM_OP_AVG_POOL2D_GRAD,
    /* Normalization over x [N, C, ...] (S = the elements of one channel of
     * one sample): attr.cgroups = 0 is batch norm (one statistic per
     * channel, over N and S), G > 0 group norm (one per sample and group
     * of C / G channels). Statistics are [2, Q]: the mean, then the biased
     * variance. */
    LOOM_OP_NORM_STATS,      /* in: x. out: [2, Q]. */
    /* in: x, stats, gamma [C], beta [C]. y = (x - mean) / sqrt(var + eps)
     * gamma + beta. attr.side = 1: the statistics are fixed (running
     * statistics), so the gradient does not flow through them. */
    LOOM_OP_NORM_APPLY,
    /* in: dy, x, stats, gamma. out [2, Q]: per statistic, the sums of
     * gamma dy and of gamma dy xhat. */
    LOOM_OP_NORM_GRAD_STATS,
    /* in: dy, x, stats, gamma, gstats. dx = rstd (gamma dy - (A + xhat B) / M),
     * M the elements of one statistic (attr.side = 1: A = B = 0). */
    LOOM_OP_NORM_GRAD,
    /* in: dy, x, stats. out [2, C]: per channel, the sums of dy xhat (the
     * gradient of gamma) and of dy (of beta), from one pass. */
    LOOM_OP_NORM_DGAMMA,
    /* An update: in: running [2, C] (f32, written), stats [2, C] (f32).
     * running = momentum running + (1 - momentum) stats. */
    LOOM_OP_NORM_RUNNING_UPDATE,
    /* Rank <= 4 windows of one tensor (attr.wstart, attr.wstep per axis,
     * aligned to rank 4). SLICE: out[i] = in[start + i step]. PAD:
     * out[i] = in[i - lo] inside, attr.wmode 0 the constant attr.wvalue
     * outside, 1 the reflection (without the edge). SLICE_GRAD: dx of a
     * slice (zeros off the lattice); PAD_GRAD: dx of a reflecting pad. */
    LOOM_OP_SLICE,
    LOOM_OP_SLICE_GRAD,
    LOOM_OP_PAD,
    LOOM_OP_PAD_GRAD,
    /* in: any number of tensors, equal but along attr.axis. */
    LOOM_OP_CONCAT,

    /* ---- sequence models (src/core/ops_seq.c) ---- */

    /* C[b] = op(A[b]) x op(B[b]) over batch dims that broadcast. in: A
     * [..., M, K] (or [..., K, M] with ta), B [..., K, N] (or [..., N, K]),
     * ranks 2 to 4, at least one above 2. attr: ta, tb. out [batch..., M, N]. */
    LOOM_OP_BATCH_MATMUL,
    /* Over the last axis C: y = (x - mean) / sqrt(var + eps) * gamma + beta
     * (layer norm), y = x / sqrt(mean(x^2) + eps) * gamma (RMS norm). in:
     * x, then gamma [C] if attr.affine & 1, then beta [C] if attr.affine & 2
     * (layer norm only). attr: norm_eps. */
    LOOM_OP_LAYER_NORM,
    LOOM_OP_RMS_NORM,
    /* dx of the norm of the same code. in: dy, x, [gamma] (attr.affine & 1). */
    LOOM_OP_LAYER_NORM_GRAD,
    LOOM_OP_RMS_NORM_GRAD,
    /* out = numpy take: x viewed [outer, V, inner] along attr.axis, idx i32
     * of any shape [J...]; out [outer, J..., inner] = x[o, idx[j], i]. An
     * index outside [0, V) gives NaN (indices from the host are checked
     * before: LOOM_OPF_LABELS). The embedding lookup is take on axis 0. */
    LOOM_OP_TAKE,
    /* The gradient of take: in dy, idx; out [outer, V, inner] (the node's
     * shape, x's) = the sum over j with idx[j] == v of dy[o, j, i], in
     * ascending j: deterministic, no atomics (each output owns its sum). */
    LOOM_OP_TAKE_GRAD,
    /* torch.gather along attr.axis: in x, idx (i32, x's rank, no dim larger
     * than x's but along the axis); out (idx's shape)[p] = x[p with its axis
     * coordinate replaced by idx[p]]. Out of range: NaN. */
    LOOM_OP_GATHER,
    /* The scatter-add that is gather's gradient: in idx, src (idx's shape);
     * out (the node's shape) [q] = sum over p with p == q off the axis and
     * idx[p] == q[axis] of src[p], in ascending p. Out-of-range indices add
     * nothing. loom_scatter_add adds a base to it. */
    LOOM_OP_SCATTER_ADD,
    /* Rotary position embedding over the last axis D (even), half-split
     * pairs (x[i], x[i + D/2]) rotated by theta = pos * base^(-2i/D), pos the
     * coordinate along attr.axis. attr: rope_base, rope_inverse (rotate by
     * -theta: the gradient). */
    LOOM_OP_ROPE,
    /* Fused scaled-dot-product attention, the N x N scores never stored:
     * o = softmax(scale q k^T + mask [+ causal]) v. in: q [B, Hq, Nq, D],
     * k, v [B, Hkv, Nk, D] (Hq a multiple of Hkv: grouped-query heads; with
     * attr.layout BNHD the middle dims are swapped), then an additive mask
     * broadcast to [B, Hq, Nq, Nk] if attr.has_mask. attr: causal (key j
     * seen by query i iff j <= i + Nk - Nq), attn_scale. A query that sees
     * no key gives 0. out: q's shape. */
    LOOM_OP_ATTENTION,
    /* The backward pass's row statistics, recomputed: in q, k, o, do,
     * [mask]; out f32 [B, Hq, Nq, 2] = (logsumexp of the row's scores, +inf
     * for a row that sees no key; sum_d do * o). */
    LOOM_OP_ATTENTION_STATS,
    /* dq, dk, dv: in do, q, k, v, stats, [mask]; out q's, k's, v's shape. */
    LOOM_OP_ATTENTION_GRAD_Q,
    LOOM_OP_ATTENTION_GRAD_K,
    LOOM_OP_ATTENTION_GRAD_V,

    /* ---- int8 quantized inference (src/core/ops_quant.c) ----------------
     * Inference only: none of them has a gradient (loom_backward through
     * one is LOOM_E_UNSUPPORTED). Quantization parameters are a tensor qp
     * f32 [2, C]: row 0 the scales, row 1 the zero points (whole numbers
     * in [-128, 127]); attr.axis is the channel axis (C = that dim), or -1
     * for one pair over the whole tensor (C = 1). */
    /* in: x (f32), qp. out i8: saturate(round_half_even(x / s) + z). */
    LOOM_OP_QUANTIZE,
    /* in: q (i8), qp. out f32: (q - z) s. */
    LOOM_OP_DEQUANTIZE,
    /* in: a i8 [M, K], w i8 [N, K] (the weights' rows are output
     * channels), bias i32 [N], mult f32 [N]. acc = sum_k a w + bias (i32),
     * t = float(acc) mult[n]; out f32: attr.act(t); out i8:
     * saturate(round_half_even(t) + attr.qzero), at least attr.qzero when
     * attr.act is relu. */
    LOOM_OP_QMATMUL,
    /* in: x i8 [N, C, H, W], w i8 [OC, C / groups, KH, KW], bias i32 [OC],
     * mult f32 [OC]; the conv family's geometry, padding reads
     * attr.qzero_in (the input's zero point: a real 0); the epilogue of
     * QMATMUL per output channel. */
    LOOM_OP_QCONV2D,
    /* ---- pruning ---- */
    /* in: p, mask (p's shape, f32 0 / 1).  p = p * mask: run after the
     * optimizer's update so pruned weights stay zero through fine-tuning
     * (loom_mask_update). */
    LOOM_OP_MASK_UPDATE,

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
    int32_t grad_rows;         /* SGD/ADAM: in[1] is [grad_rows, n] and the gradient
                                  is its column sum (a bias's, folded in by the
                                  fusion pass); 0: in[1] is the gradient */
    uint32_t groups[3];        /* CUSTOM */
    /* convolutional networks: conv, pool, norm and window ops (see each) */
    int32_t stride[2], dil[2], kernel[2];
    int32_t pad[4];            /* top, left, bottom, right */
    int32_t cgroups;           /* conv: groups; norm: 0 batch norm, G group norm */
    int64_t wstart[4];         /* SLICE, PAD (as -lo), aligned to rank 4 */
    int32_t wstep[4];
    int32_t wmode;             /* PAD: 0 constant, 1 reflect */
    float wvalue;              /* PAD: the constant */

    /* sequence ops (ops_seq.c) */
    float norm_eps;            /* LAYER_NORM, RMS_NORM and their gradients */
    int32_t affine;            /* norms: 1 gamma is an input, 2 beta is */
    int32_t causal;            /* ATTENTION*: the causal mask */
    int32_t has_mask;          /* ATTENTION*: the last input is an additive mask */
    int32_t layout;            /* ATTENTION*: LOOM_LAYOUT_BHND or LOOM_LAYOUT_BNHD */
    float attn_scale;          /* ATTENTION*: the scores' factor */
    float rope_base;           /* ROPE */
    int32_t rope_inverse;      /* ROPE: rotate by -theta */

    /* int8 ops (ops_quant.c); attr.act is the epilogue, attr.axis the
     * channel axis of QUANTIZE / DEQUANTIZE */
    int32_t qzero;             /* QMATMUL, QCONV2D: the i8 output's zero point */
    int32_t qzero_in;          /* QCONV2D: the input's zero point (the padding) */
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
    int32_t by;                /* in a program: its value is computed by that later
                                  node (id), along with the later node's own: planned
                                  from there on, not run itself */
    int32_t also[2];           /* in a program: the nodes (ids) whose values this one
                                  computes too (SPARSE_XENT_GRAD: the loss, the
                                  prediction); 0 if none */
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
