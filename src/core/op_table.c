/* The op table: what every op is, once. */
#include "op_table.h"
#include "autodiff.h"
#include "backend.h"
#include "conv_geom.h"

#include <string.h>

/* ---- costs (FLOPs from shapes; see include/loom.h, profiling) ------------ */

static double numel_of(const loom_exec_tensor *t)
{
    return (double)t->node->numel;
}

static double cost_matmul(const loom_exec_node *x)
{
    const loom_node *nd = x->node, *a = x->in[0]->node;
    double k = (double)(nd->attr.ta ? a->shape[0] : a->shape[1]);
    double f = 2.0 * (double)nd->shape[0] * (double)nd->shape[1] * k;
    if (nd->attr.bias)
        f += (double)nd->numel;
    if (nd->attr.act != LOOM_OP_NONE)
        f += (double)loom_op_def_of((loom_op)nd->attr.act)->flops * (double)nd->numel;
    if (nd->attr.dact != LOOM_OP_NONE)
        f += (double)loom_op_def_of((loom_op)nd->attr.dact)->flops * (double)nd->numel;
    return f;
}

/* integer multiply-adds (counted as two operations) and the epilogue */
static double cost_qmatmul(const loom_exec_node *x)
{
    const loom_node *nd = x->node, *a = x->in[0]->node;
    return 2.0 * (double)nd->numel * (double)a->shape[1] + 3.0 * (double)nd->numel;
}

static double cost_reduce(const loom_exec_node *x)
{
    return numel_of(x->in[0]) + (double)x->node->numel; /* the adds, then the scale of each result */
}

static double cost_inputs(const loom_exec_node *x)
{
    return numel_of(x->in[x->nin - 1]);
}

static double cost_xent(const loom_exec_node *x)
{
    const loom_node *lg = x->in[0]->node;
    return 4.0 * (double)lg->numel + (double)lg->shape[0];
}

static double cost_sumsq(const loom_exec_node *x)
{
    double f = 0;
    for (int k = 0; k < x->nin; k++)
        f += 2.0 * numel_of(x->in[k]);
    return f;
}

static double cost_sgd(const loom_exec_node *x)
{
    const loom_attr *a = &x->node->attr;
    double e = 2 + (a->momentum != 0 ? 2 : 0) + (a->nesterov ? 2 : 0) + (a->l2 != 0 ? 2 : 0) + (a->l1 != 0 ? 2 : 0) +
               (a->clip ? 1 : 0);
    return e * numel_of(x->in[0]);
}

static double cost_adam(const loom_exec_node *x)
{
    const loom_attr *a = &x->node->attr;
    return (12 + (a->weight_decay != 0 ? 2 : 0) + (a->l2 != 0 ? 2 : 0) + (a->l1 != 0 ? 2 : 0) + (a->clip ? 1 : 0)) *
           numel_of(x->in[0]);
}

static double cost_ema(const loom_exec_node *x)
{
    return 3 * numel_of(x->in[0]);
}

static double cost_conv(const loom_exec_node *x)
{
    const loom_node *in[3] = {x->in[0]->node, x->in[1]->node, NULL};
    loom_conv_geom cg = loom_conv_geom_of(x->def->code, x->node, in);
    return 2.0 * loom_conv_macs(&cg) + (x->nin > 2 ? (double)x->node->numel : 0);
}

/* a comparison or an add per window element, each output (forward) or each
 * gradient element spread (backward) */
static double cost_pool(const loom_exec_node *x)
{
    const loom_attr *a = &x->node->attr;
    double window = (double)a->kernel[0] * (double)a->kernel[1];
    return window * (double)x->in[0]->node->numel * (x->def->family == LOOM_FAM_POOL ? 0 : 1) +
           window * (double)x->node->numel * (x->def->family == LOOM_FAM_POOL ? 1 : 0);
}

static double cost_norm(const loom_exec_node *x)
{
    static const double per[5] = {[LOOM_NORM_STATS] = 3, [LOOM_NORM_APPLY] = 4, [LOOM_NORM_GRAD_STATS] = 5,
                                  [LOOM_NORM_GRAD] = 7, [LOOM_NORM_DGAMMA] = 4};
    int code = x->def->code;
    /* the statistics' node reads x, the others read dy and x of x's size */
    const loom_node *big = code == LOOM_NORM_STATS || code == LOOM_NORM_APPLY ? x->in[0]->node : x->in[1]->node;
    return per[code] * (double)big->numel;
}

/* ---- sequence ops ------------------------------------------------------------ */

static double cost_bmm(const loom_exec_node *x)
{
    const loom_node *nd = x->node, *a = x->in[0]->node;
    double k = (double)a->shape[a->ndim - (nd->attr.ta ? 2 : 1)];
    return 2.0 * (double)nd->numel * k;
}

/* the owner of each output scans the indices along its axis */
static double cost_scatter(const loom_exec_node *x)
{
    return numel_of(x->in[0]) + numel_of(x->in[1]);
}

/* Pairs of a query and a key it sees (causal: the lower triangle, offset
 * by Nk - Nq), times the multiply-adds per pair of each kernel (scores 2D,
 * their product with v 2D; the gradients recompute the scores). */
static double cost_attention(const loom_exec_node *x)
{
    const loom_node *nd = x->node, *q = x->in[nd->op == LOOM_OP_ATTENTION ? 0 : 1]->node,
                    *k = x->in[nd->op == LOOM_OP_ATTENTION ? 1 : 2]->node;
    int bnhd = nd->attr.layout == LOOM_ATTN_BNHD;
    double b = (double)q->shape[0], h = (double)q->shape[bnhd ? 2 : 1], d = (double)q->shape[3];
    int64_t nq = q->shape[bnhd ? 1 : 2], nk = k->shape[bnhd ? 1 : 2];
    double pairs = 0;
    if (nd->attr.causal) {
        for (int64_t i = 0; i < nq; i++) {
            int64_t last = i + nk - nq;
            pairs += last < 0 ? 0.0 : (double)(last + 1 < nk ? last + 1 : nk);
        }
    } else {
        pairs = (double)nq * (double)nk;
    }
    int code = loom_op_def_of(nd->op)->code;
    double per = code == LOOM_ATTN_FWD ? 4 : code == LOOM_ATTN_STATS ? 2 : code == LOOM_ATTN_DV ? 4 : 6;
    return b * h * pairs * (per * d + 3);
}

static double cost_mask(const loom_exec_node *x)
{
    return numel_of(x->in[0]);
}

static int64_t bound_classes(const loom_node *nd, const loom_node *const *ins)
{
    const loom_node *logits = ins[nd->nin - 2];
    return logits->shape[logits->ndim - 1];
}

static int64_t bound_axis_of_input(const loom_node *nd, const loom_node *const *ins)
{
    return ins[0]->shape[nd->attr.axis];
}

static int64_t bound_axis_of_output(const loom_node *nd, const loom_node *const *ins)
{
    (void)ins;
    return nd->shape[nd->attr.axis];
}

/* ---- the table -------------------------------------------------------------- */

#define FROM_X_FLAG_ 0
#define FROM_Y_FLAG_ LOOM_OPF_FROM_Y
#define UNARY_DEF_(nm, ID, fl, from, np)                                                                     \
    [LOOM_OP_##ID] = {.name = #nm, .family = LOOM_FAM_UNARY, .arity = 1, .shape = LOOM_SHAPE_SAME,            \
                      .flags = LOOM_OPF_INPLACE | from##_FLAG_, .flops = fl, .grad = loom_grad_unary,         \
                      .unary_params = np},
#define UNARY0_(nm, ID, fl, from) UNARY_DEF_(nm, ID, fl, from, 0)
#define UNARY1_(nm, ID, fl, from, p) UNARY_DEF_(nm, ID, fl, from, 1)
#define UNARY2_(nm, ID, fl, from, p, q) UNARY_DEF_(nm, ID, fl, from, 2)

#define GRAD_ADD_ loom_grad_add
#define GRAD_SUB_ loom_grad_sub
#define GRAD_MUL_ loom_grad_mul
#define GRAD_DIV_ loom_grad_div
#define GRAD_KERNEL_ loom_grad_binary
#define GRAD_NONE_ NULL
#define FLAGS_ADD_ 0
#define FLAGS_SUB_ 0
#define FLAGS_MUL_ 0
#define FLAGS_DIV_ 0
#define FLAGS_KERNEL_ 0
#define FLAGS_NONE_ LOOM_OPF_NONDIFF
#define BINARY_(nm, ID, fl, gr)                                                                              \
    [LOOM_OP_##ID] = {.name = #nm, .family = LOOM_FAM_BINARY, .arity = 2, .shape = LOOM_SHAPE_BROADCAST,      \
                      .flags = LOOM_OPF_INPLACE | FLAGS_##gr##_, .flops = fl, .grad = GRAD_##gr##_},

/* The gradient ops are not differentiated again. */
#define GRADIENT_OP_ LOOM_OPF_NO_GRAD

const loom_op_def loom_op_defs[LOOM_OP_COUNT] = {
    [LOOM_OP_NONE] = {.name = "none"},
    [LOOM_OP_INPUT] = {.name = "input", .family = LOOM_FAM_LEAF},
    [LOOM_OP_PARAM] = {.name = "param", .family = LOOM_FAM_LEAF},
    [LOOM_OP_CONST] = {.name = "const", .family = LOOM_FAM_LEAF},

    LOOM_UNARY_OPS(UNARY0_)
    LOOM_UNARY1_OPS(UNARY1_)
    LOOM_UNARY2_OPS(UNARY2_)
    LOOM_BINARY_OPS(BINARY_)

    [LOOM_OP_UNARY_GRAD] = {.name = "unary_grad", .family = LOOM_FAM_UNARY_GRAD, .arity = 2,
                            .shape = LOOM_SHAPE_SAME, .flags = LOOM_OPF_INPLACE | GRADIENT_OP_, .flops = 2},
    [LOOM_OP_BINARY_GRAD] = {.name = "binary_grad", .family = LOOM_FAM_BINARY_GRAD, .arity = 3,
                             .shape = LOOM_SHAPE_BROADCAST, .flags = GRADIENT_OP_, .flops = 3},
    [LOOM_OP_WHERE] = {.name = "where", .family = LOOM_FAM_WHERE, .arity = 3, .shape = LOOM_SHAPE_BROADCAST,
                       .flags = LOOM_OPF_INPLACE, .flops = 1, .grad = loom_grad_where},
    [LOOM_OP_CAST] = {.name = "cast", .family = LOOM_FAM_CAST, .arity = 1, .shape = LOOM_SHAPE_SAME, .flops = 1,
                      .grad = loom_grad_cast},

    [LOOM_OP_MATMUL] = {.name = "matmul", .family = LOOM_FAM_MATMUL, .arity = -1, .cost = cost_matmul,
                        .grad = loom_grad_matmul},

    [LOOM_OP_COPY] = {.name = "reshape", .family = LOOM_FAM_GATHER, .code = LOOM_GATHER_COPY, .arity = 1,
                      .flags = LOOM_OPF_INPLACE, .grad = loom_grad_reshape},
    [LOOM_OP_EXPAND] = {.name = "expand", .family = LOOM_FAM_GATHER, .code = LOOM_GATHER_EXPAND, .arity = 1,
                        .grad = loom_grad_expand},
    [LOOM_OP_TRANSPOSE] = {.name = "transpose", .family = LOOM_FAM_GATHER, .code = LOOM_GATHER_TRANSPOSE,
                           .arity = 1, .grad = loom_grad_transpose},

    /* max, subtract, exp, sum, divide or log */
    [LOOM_OP_SOFTMAX] = {.name = "softmax", .family = LOOM_FAM_SOFTMAX, .code = LOOM_SOFTMAX_PLAIN, .arity = 1,
                         .shape = LOOM_SHAPE_SAME, .flops = 5, .grad = loom_grad_softmax},
    [LOOM_OP_LOG_SOFTMAX] = {.name = "log_softmax", .family = LOOM_FAM_SOFTMAX, .code = LOOM_SOFTMAX_LOG,
                             .arity = 1, .shape = LOOM_SHAPE_SAME, .flops = 5, .grad = loom_grad_softmax},
    [LOOM_OP_SOFTMAX_GRAD] = {.name = "softmax_grad", .family = LOOM_FAM_SOFTMAX_GRAD,
                              .code = LOOM_SOFTMAX_PLAIN, .arity = 2, .shape = LOOM_SHAPE_SAME, .flops = 4,
                              .flags = GRADIENT_OP_},
    [LOOM_OP_LOG_SOFTMAX_GRAD] = {.name = "log_softmax_grad", .family = LOOM_FAM_SOFTMAX_GRAD,
                                  .code = LOOM_SOFTMAX_LOG, .arity = 2, .shape = LOOM_SHAPE_SAME, .flops = 4,
                                  .flags = GRADIENT_OP_},

    [LOOM_OP_REDUCE_SUM] = {.name = "reduce_sum", .family = LOOM_FAM_REDUCE, .code = LOOM_REDUCE_SUM, .arity = 1,
                            .cost = cost_reduce, .grad = loom_grad_reduce_sum},
    [LOOM_OP_REDUCE_MAX] = {.name = "reduce_max", .family = LOOM_FAM_REDUCE, .code = LOOM_REDUCE_MAX, .arity = 1,
                            .cost = cost_inputs, .grad = loom_grad_reduce_arg},
    [LOOM_OP_REDUCE_MIN] = {.name = "reduce_min", .family = LOOM_FAM_REDUCE, .code = LOOM_REDUCE_MIN, .arity = 1,
                            .cost = cost_inputs, .grad = loom_grad_reduce_arg},
    [LOOM_OP_REDUCE_MAX_GRAD] = {.name = "reduce_max_grad", .family = LOOM_FAM_ARG_GRAD, .code = LOOM_ARG_MAX,
                                 .arity = 2, .cost = cost_inputs, .flags = GRADIENT_OP_},
    [LOOM_OP_REDUCE_MIN_GRAD] = {.name = "reduce_min_grad", .family = LOOM_FAM_ARG_GRAD, .code = LOOM_ARG_MIN,
                                 .arity = 2, .cost = cost_inputs, .flags = GRADIENT_OP_},
    [LOOM_OP_ARGMAX] = {.name = "argmax", .family = LOOM_FAM_ARG_REDUCE, .code = LOOM_ARG_MAX, .arity = 1,
                        .cost = cost_inputs, .flags = LOOM_OPF_NONDIFF},
    [LOOM_OP_ARGMIN] = {.name = "argmin", .family = LOOM_FAM_ARG_REDUCE, .code = LOOM_ARG_MIN, .arity = 1,
                        .cost = cost_inputs, .flags = LOOM_OPF_NONDIFF},

    [LOOM_OP_SPARSE_XENT] = {.name = "sparse_cross_entropy", .family = LOOM_FAM_XENT, .arity = 2,
                             .flags = LOOM_OPF_LABELS, .cost = cost_xent, .grad = loom_grad_xent,
                             .index_in = 1, .index_what = "label", .index_bound = bound_classes},
    [LOOM_OP_SPARSE_XENT_GRAD] = {.name = "sparse_cross_entropy_grad", .family = LOOM_FAM_XENT_GRAD, .arity = 3,
                                  .flags = LOOM_OPF_LABELS | GRADIENT_OP_, .flops = 5, .index_in = 2,
                                  .index_what = "label", .index_bound = bound_classes},

    [LOOM_OP_DROPOUT] = {.name = "dropout", .family = LOOM_FAM_DROPOUT, .arity = 1, .shape = LOOM_SHAPE_SAME,
                         .flags = LOOM_OPF_INPLACE, .runvals = LOOM_RUN_DROPOUT, .flops = 1,
                         .grad = loom_grad_dropout},

    [LOOM_OP_SUMSQ] = {.name = "sumsq", .family = LOOM_FAM_SUMSQ, .arity = -1, .cost = cost_sumsq,
                       .flags = LOOM_OPF_NO_GRAD},
    [LOOM_OP_LOSS_SCALE] = {.name = "loss_scale", .family = LOOM_FAM_RUN_VALUE, .arity = 0,
                            .flags = LOOM_OPF_NONDIFF, .runvals = LOOM_RUN_SCALE},

    [LOOM_OP_SGD_UPDATE] = {.name = "sgd_update", .family = LOOM_FAM_SGD, .arity = -1, .cost = cost_sgd,
                            .flags = LOOM_OPF_UPDATE | LOOM_OPF_MULTI | LOOM_OPF_NO_GRAD, .writes = 0x5,
                            .runvals = LOOM_RUN_STEP | LOOM_RUN_SCALE},
    [LOOM_OP_ADAM_UPDATE] = {.name = "adam_update", .family = LOOM_FAM_ADAM, .arity = -1, .cost = cost_adam,
                             .flags = LOOM_OPF_UPDATE | LOOM_OPF_MULTI | LOOM_OPF_NO_GRAD, .writes = 0xd,
                             .runvals = LOOM_RUN_STEP | LOOM_RUN_ADAM | LOOM_RUN_SCALE},
    [LOOM_OP_EMA_UPDATE] = {.name = "ema_update", .family = LOOM_FAM_EMA, .arity = 2, .cost = cost_ema,
                            .flags = LOOM_OPF_UPDATE | LOOM_OPF_MULTI | LOOM_OPF_NO_GRAD, .writes = 0x1, .runvals = LOOM_RUN_EMA},

    [LOOM_OP_CUSTOM] = {.name = "custom", .family = LOOM_FAM_CUSTOM, .arity = -1, .flags = LOOM_OPF_NO_GRAD,
                        .gpu_reason = "users' GLSL runs on Vulkan only"},

    [LOOM_OP_CONV2D] = {.name = "conv2d", .family = LOOM_FAM_CONV, .code = LOOM_CONV_FWD, .arity = -1,
                        .cost = cost_conv, .grad = loom_grad_conv2d},
    [LOOM_OP_CONV_TRANSPOSE2D] = {.name = "conv_transpose2d", .family = LOOM_FAM_CONV, .code = LOOM_CONV_BWD_DATA,
                                  .arity = -1, .cost = cost_conv, .grad = loom_grad_conv_transpose2d},
    [LOOM_OP_CONV2D_GRAD_WEIGHT] = {.name = "conv2d_grad_weight", .family = LOOM_FAM_CONV,
                                    .code = LOOM_CONV_BWD_FILTER, .arity = 2, .cost = cost_conv,
                                    .flags = GRADIENT_OP_},
    [LOOM_OP_MAX_POOL2D] = {.name = "max_pool2d", .family = LOOM_FAM_POOL, .code = LOOM_POOL_MAX, .arity = 1,
                            .cost = cost_pool, .grad = loom_grad_pool},
    [LOOM_OP_AVG_POOL2D] = {.name = "avg_pool2d", .family = LOOM_FAM_POOL, .code = LOOM_POOL_AVG, .arity = 1,
                            .cost = cost_pool, .grad = loom_grad_pool},
    [LOOM_OP_MAX_POOL2D_GRAD] = {.name = "max_pool2d_grad", .family = LOOM_FAM_POOL_GRAD, .code = LOOM_POOL_MAX,
                                 .arity = 2, .cost = cost_pool, .flags = GRADIENT_OP_},
    [LOOM_OP_AVG_POOL2D_GRAD] = {.name = "avg_pool2d_grad", .family = LOOM_FAM_POOL_GRAD, .code = LOOM_POOL_AVG,
                                 .arity = 1, .cost = cost_pool, .flags = GRADIENT_OP_},
    /* the statistics' gradient is part of the normalization's (NORM_GRAD) */
    [LOOM_OP_NORM_STATS] = {.name = "norm_stats", .family = LOOM_FAM_NORM, .code = LOOM_NORM_STATS, .arity = 1,
                            .cost = cost_norm, .flags = LOOM_OPF_NONDIFF},
    [LOOM_OP_NORM_APPLY] = {.name = "norm", .family = LOOM_FAM_NORM, .code = LOOM_NORM_APPLY, .arity = 4,
                            .cost = cost_norm, .grad = loom_grad_norm_apply},
    [LOOM_OP_NORM_GRAD_STATS] = {.name = "norm_grad_stats", .family = LOOM_FAM_NORM, .code = LOOM_NORM_GRAD_STATS,
                                 .arity = 4, .cost = cost_norm, .flags = GRADIENT_OP_},
    [LOOM_OP_NORM_GRAD] = {.name = "norm_grad", .family = LOOM_FAM_NORM, .code = LOOM_NORM_GRAD, .arity = 5,
                           .cost = cost_norm, .flags = GRADIENT_OP_},
    [LOOM_OP_NORM_DGAMMA] = {.name = "norm_dgamma", .family = LOOM_FAM_NORM, .code = LOOM_NORM_DGAMMA, .arity = 3,
                             .cost = cost_norm, .flags = GRADIENT_OP_},
    [LOOM_OP_NORM_RUNNING_UPDATE] = {.name = "norm_running_update", .family = LOOM_FAM_NORM_UPDATE, .arity = 2,
                                     .cost = cost_ema, .flags = LOOM_OPF_UPDATE | LOOM_OPF_NO_GRAD, .writes = 0x1},
    [LOOM_OP_SLICE] = {.name = "slice", .family = LOOM_FAM_WINDOW, .code = LOOM_WINDOW_SLICE, .arity = 1,
                       .grad = loom_grad_slice},
    [LOOM_OP_SLICE_GRAD] = {.name = "slice_grad", .family = LOOM_FAM_WINDOW, .code = LOOM_WINDOW_SLICE_GRAD,
                            .arity = 1, .flags = GRADIENT_OP_},
    [LOOM_OP_PAD] = {.name = "pad", .family = LOOM_FAM_WINDOW, .code = LOOM_WINDOW_PAD, .arity = 1,
                     .grad = loom_grad_pad},
    [LOOM_OP_PAD_GRAD] = {.name = "pad_grad", .family = LOOM_FAM_WINDOW, .code = LOOM_WINDOW_PAD_GRAD, .arity = 1,
                          .flags = GRADIENT_OP_, .flops = 1},
    [LOOM_OP_CONCAT] = {.name = "concat", .family = LOOM_FAM_CONCAT, .arity = -1, .grad = loom_grad_concat},

    /* ---- sequence models ---- */
    [LOOM_OP_BATCH_MATMUL] = {.name = "batch_matmul", .family = LOOM_FAM_BMM, .arity = 2, .cost = cost_bmm,
                              .grad = loom_grad_batch_matmul},
    /* mean, variance, normalize, scale and shift */
    [LOOM_OP_LAYER_NORM] = {.name = "layer_norm", .family = LOOM_FAM_LNORM, .code = LOOM_LNORM_LAYER, .arity = -1,
                            .shape = LOOM_SHAPE_SAME, .flops = 8, .grad = loom_grad_norm},
    [LOOM_OP_RMS_NORM] = {.name = "rms_norm", .family = LOOM_FAM_LNORM, .code = LOOM_LNORM_RMS, .arity = -1,
                          .shape = LOOM_SHAPE_SAME, .flops = 5, .grad = loom_grad_norm},
    [LOOM_OP_LAYER_NORM_GRAD] = {.name = "layer_norm_grad", .family = LOOM_FAM_LNORM_GRAD, .code = LOOM_LNORM_LAYER,
                                 .arity = -1, .shape = LOOM_SHAPE_SAME, .flops = 14, .flags = GRADIENT_OP_},
    [LOOM_OP_RMS_NORM_GRAD] = {.name = "rms_norm_grad", .family = LOOM_FAM_LNORM_GRAD, .code = LOOM_LNORM_RMS,
                               .arity = -1, .shape = LOOM_SHAPE_SAME, .flops = 10, .flags = GRADIENT_OP_},
    [LOOM_OP_TAKE] = {.name = "take", .family = LOOM_FAM_TAKE, .code = LOOM_INDEX_TAKE, .arity = 2, .flops = 1,
                      .flags = LOOM_OPF_LABELS, .grad = loom_grad_take, .index_in = 1, .index_what = "index",
                      .index_bound = bound_axis_of_input},
    [LOOM_OP_TAKE_GRAD] = {.name = "take_grad", .family = LOOM_FAM_SCATTER, .code = LOOM_INDEX_TAKE, .arity = 2,
                           .cost = cost_scatter, .flags = LOOM_OPF_LABELS | GRADIENT_OP_, .index_in = 1,
                           .index_what = "index", .index_bound = bound_axis_of_output},
    [LOOM_OP_GATHER] = {.name = "gather", .family = LOOM_FAM_TAKE, .code = LOOM_INDEX_GATHER, .arity = 2,
                        .flops = 1, .flags = LOOM_OPF_LABELS, .grad = loom_grad_gather, .index_in = 1,
                        .index_what = "index", .index_bound = bound_axis_of_input},
    [LOOM_OP_SCATTER_ADD] = {.name = "scatter_add", .family = LOOM_FAM_SCATTER, .code = LOOM_INDEX_GATHER,
                             .arity = 2, .cost = cost_scatter, .flags = LOOM_OPF_LABELS,
                             .grad = loom_grad_scatter_add, .index_in = 1, .index_what = "index",
                             .index_bound = bound_axis_of_output},
    /* the angle, its sine and cosine, a rotation */
    [LOOM_OP_ROPE] = {.name = "rope", .family = LOOM_FAM_ROPE, .arity = 1, .shape = LOOM_SHAPE_SAME, .flops = 5,
                      .grad = loom_grad_rope},
    [LOOM_OP_ATTENTION] = {.name = "attention", .family = LOOM_FAM_ATTENTION, .code = LOOM_ATTN_FWD,
                           .arity = -1, .cost = cost_attention, .grad = loom_grad_attention},
    [LOOM_OP_ATTENTION_STATS] = {.name = "attention_stats", .family = LOOM_FAM_ATTENTION,
                                 .code = LOOM_ATTN_STATS, .arity = -1, .cost = cost_attention,
                                 .flags = GRADIENT_OP_},
    [LOOM_OP_ATTENTION_GRAD_Q] = {.name = "attention_grad_q", .family = LOOM_FAM_ATTENTION, .code = LOOM_ATTN_DQ,
                                  .arity = -1, .cost = cost_attention, .flags = GRADIENT_OP_},
    [LOOM_OP_ATTENTION_GRAD_K] = {.name = "attention_grad_k", .family = LOOM_FAM_ATTENTION, .code = LOOM_ATTN_DK,
                                  .arity = -1, .cost = cost_attention, .flags = GRADIENT_OP_},
    [LOOM_OP_ATTENTION_GRAD_V] = {.name = "attention_grad_v", .family = LOOM_FAM_ATTENTION, .code = LOOM_ATTN_DV,
                                  .arity = -1, .cost = cost_attention, .flags = GRADIENT_OP_},

    /* int8 inference: no gradient (quantization-aware training would
     * need a straight-through rule; loom quantizes trained models) */
    [LOOM_OP_QUANTIZE] = {.name = "quantize", .family = LOOM_FAM_QUANT, .code = LOOM_QUANT_Q, .arity = 2,
                          .flops = 3, .flags = LOOM_OPF_NO_GRAD},
    [LOOM_OP_DEQUANTIZE] = {.name = "dequantize", .family = LOOM_FAM_QUANT, .code = LOOM_QUANT_DQ, .arity = 2,
                            .flops = 2, .flags = LOOM_OPF_NO_GRAD},
    [LOOM_OP_QMATMUL] = {.name = "qmatmul", .family = LOOM_FAM_QMATMUL, .arity = 4, .cost = cost_qmatmul,
                         .flags = LOOM_OPF_NO_GRAD},
    [LOOM_OP_QCONV2D] = {.name = "qconv2d", .family = LOOM_FAM_QCONV, .code = LOOM_CONV_FWD, .arity = 4,
                         .cost = cost_conv, .flags = LOOM_OPF_NO_GRAD},
    /* ---- pruning: one multiply per weight ---- */
    [LOOM_OP_MASK_UPDATE] = {.name = "mask_update", .family = LOOM_FAM_MASK, .arity = 2, .cost = cost_mask,
                             .flags = LOOM_OPF_UPDATE | LOOM_OPF_NO_GRAD, .writes = 0x1},
};

/* The activations GEMM kernels apply in their epilogue (shaders/codes.h). */
static const struct {
    loom_op op;
    int code;
} epilogues[] = {
    {LOOM_OP_RELU, LOOM_EPI_RELU},   {LOOM_OP_GELU, LOOM_EPI_GELU}, {LOOM_OP_TANH, LOOM_EPI_TANH},
    {LOOM_OP_SIGMOID, LOOM_EPI_SIGMOID}, {LOOM_OP_SILU, LOOM_EPI_SILU},
};

int loom_op_epilogue(loom_op op)
{
    for (size_t i = 0; i < sizeof epilogues / sizeof epilogues[0]; i++)
        if (epilogues[i].op == op)
            return epilogues[i].code;
    return LOOM_EPI_NONE;
}

const char *loom_op_name(loom_op op)
{
    const char *n = (unsigned)op < LOOM_OP_COUNT ? loom_op_defs[op].name : NULL;
    return n ? n : "?";
}

loom_op loom_op_by_name(const char *name)
{
    for (int op = 1; op < LOOM_OP_COUNT; op++)
        if (loom_op_defs[op].name && !strcmp(loom_op_defs[op].name, name))
            return (loom_op)op;
    return LOOM_OP_NONE;
}
