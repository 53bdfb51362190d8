#include "op_cases.h"
#include "testutil.h"
#include "core/graph.h"
#include "core/op_table.h"

#include <math.h>
#include <string.h>

/* The first rows are positional and leave the later fields (the sequence
 * ops' fill, index_hi, causal, layout, scale) zero, which is what they
 * mean; the later rows name their fields. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define S1(a) {a}
#define S2(a, b) {a, b}
#define S3(a, b, c) {a, b, c}
#define S4(a, b, c, d) {a, b, c, d}

/* Shapes include 1, 7, 33, 127, 1000 and 1023 and sizes that are not a
 * multiple of any tile. Columns: name, op, nin, ndim, shapes, lo, hi, ta, tb,
 * axis, keepdim, p1, p2, perm, atol, rtol, backward, kink, f32_only. */
const op_case op_cases[] = {
    {"matmul_nn_1x1x1", "matmul", 2, {2, 2}, {S2(1, 1), S2(1, 1)}, -1, 1, 0, 0, 0, 0, 0, 0, {0}, 1e-5, 1e-4, 1, 0, 0},
    {"matmul_nn_7x33x127", "matmul", 2, {2, 2}, {S2(7, 33), S2(33, 127)}, -1, 1, 0, 0, 0, 0, 0, 0, {0}, 1e-4, 1e-4, 1, 0, 0},
    {"matmul_nt_33x7x65", "matmul", 2, {2, 2}, {S2(33, 7), S2(65, 7)}, -1, 1, 0, 1, 0, 0, 0, 0, {0}, 1e-4, 1e-4, 1, 0, 0},
    {"matmul_tn_64x100x10", "matmul", 2, {2, 2}, {S2(100, 64), S2(100, 10)}, -1, 1, 1, 0, 0, 0, 0, 0, {0}, 1e-4, 1e-4, 1, 0, 0},
    {"matmul_tt_17x31x23", "matmul", 2, {2, 2}, {S2(31, 17), S2(23, 31)}, -1, 1, 1, 1, 0, 0, 0, 0, {0}, 1e-4, 1e-4, 1, 0, 0},
    {"matmul_k1", "matmul", 2, {2, 2}, {S2(127, 1), S2(1, 33)}, -1, 1, 0, 0, 0, 0, 0, 0, {0}, 1e-5, 1e-4, 1, 0, 0},
    {"matmul_mlp_256x784x64", "matmul", 2, {2, 2}, {S2(256, 784), S2(784, 64)}, 0, 1, 0, 0, 0, 0, 0, 0, {0}, 1e-3, 1e-4, 1, 0, 0},
    {"matmul_k4097", "matmul", 2, {2, 2}, {S2(3, 4097), S2(4097, 5)}, -1, 1, 0, 0, 0, 0, 0, 0, {0}, 1e-3, 1e-3, 0, 0, 0},
    {"matmul_1000x1023x7", "matmul", 2, {2, 2}, {S2(1000, 7), S2(7, 1023)}, -1, 1, 0, 0, 0, 0, 0, 0, {0}, 1e-4, 1e-4, 0, 0, 0},
    /* matmul + row bias (+ activation): the fusion pass's patterns */
    {"dense_bias_33x65x17", "dense", 3, {2, 2, 1}, {S2(33, 65), S2(65, 17), S1(17)}, -1, 1, 0, 0, 0, 0, 0, 0, {0}, 1e-4, 1e-4, 1, 0, 0},
    {"dense_tanh_7x127x33", "dense_tanh", 3, {2, 2, 1}, {S2(7, 127), S2(127, 33), S1(33)}, -1, 1, 0, 0, 0, 0, 0, 0, {0}, 1e-4, 1e-4, 1, 0, 0},

    {"add_same_1023", "add", 2, {1, 1}, {S1(1023), S1(1023)}, -2, 2, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-6, 1, 0, 0},
    {"add_row_bias", "add", 2, {2, 1}, {S2(33, 127), S1(127)}, -2, 2, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1, 0, 0},
    {"add_col", "add", 2, {2, 2}, {S2(7, 1), S2(7, 33)}, -2, 2, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1, 0, 0},
    {"add_outer", "add", 2, {2, 2}, {S2(7, 1), S2(1, 33)}, -2, 2, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1, 0, 0},
    {"add_4d", "add", 2, {4, 3}, {S4(2, 3, 5, 7), S3(3, 1, 7)}, -2, 2, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1, 0, 0},
    {"add_scalar", "add", 2, {2, 0}, {S2(7, 33), {0}}, -2, 2, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1, 0, 0},
    {"sub_bcast", "sub", 2, {2, 1}, {S2(127, 33), S1(33)}, -2, 2, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1, 0, 0},
    {"mul_bcast", "mul", 2, {3, 2}, {S3(5, 7, 33), S2(7, 1)}, -2, 2, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1, 0, 0},
    {"div_same", "div", 2, {2, 2}, {S2(33, 31), S2(33, 31)}, 0.5f, 2, 0, 0, 0, 0, 0, 0, {0}, 1e-5, 1e-5, 1, 0, 0},
    {"div_bcast", "div", 2, {2, 1}, {S2(7, 1000), S1(1000)}, 0.5f, 2, 0, 0, 0, 0, 0, 0, {0}, 1e-5, 1e-5, 1, 0, 0},
    {"pow_bcast", "pow", 2, {2, 1}, {S2(33, 17), S1(17)}, 0.5f, 1.6f, 0, 0, 0, 0, 0, 0, {0}, 1e-5, 1e-4, 1, 0, 0},
    {"maximum_bcast", "maximum", 2, {2, 2}, {S2(7, 33), S2(1, 33)}, -2, 2, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1, 1, 0},
    {"minimum_4d", "minimum", 2, {4, 1}, {S4(2, 3, 5, 7), S1(7)}, -2, 2, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1, 1, 0},
    {"eq_max", "eq_max", 2, {2, 1}, {S2(33, 7), S1(7)}, -2, 2, 0, 0, 0, 0, 0, 0, {0}, 0, 0, 0, 0, 0},
    {"lt_bcast", "lt", 2, {2, 1}, {S2(33, 7), S1(7)}, -2, 2, 0, 0, 0, 0, 0, 0, {0}, 0, 0, 0, 0, 0},
    {"le_same", "le", 2, {1, 1}, {S1(1023), S1(1023)}, -2, 2, 0, 0, 0, 0, 0, 0, {0}, 0, 0, 0, 0, 0},
    {"gt_scalar", "gt", 2, {2, 0}, {S2(7, 33), {0}}, -2, 2, 0, 0, 0, 0, 0, 0, {0}, 0, 0, 0, 0, 0},
    {"ge_outer", "ge", 2, {2, 2}, {S2(7, 1), S2(1, 33)}, -2, 2, 0, 0, 0, 0, 0, 0, {0}, 0, 0, 0, 0, 0},
    {"where_bcast", "where_gt", 3, {2, 2, 1}, {S2(33, 7), S2(33, 7), S1(7)}, -2, 2, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-6, 1, 1, 0},

    {"scale_1000", "scale", 1, {1}, {S1(1000)}, -2, 2, 0, 0, 0, 0, -0.75f, 0, {0}, 1e-6, 1e-6, 1, 0, 0},
    {"relu_127x33", "relu", 1, {2}, {S2(127, 33)}, -2, 2, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-6, 1, 1, 0},
    {"sigmoid_1023", "sigmoid", 1, {1}, {S1(1023)}, -6, 6, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1, 0, 0},
    {"tanh_1023", "tanh", 1, {1}, {S1(1023)}, -4, 4, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1, 0, 0},
    {"gelu_1023", "gelu", 1, {1}, {S1(1023)}, -4, 4, 0, 0, 0, 0, 0, 0, {0}, 1e-5, 1e-4, 1, 0, 0},
    {"exp_7x7", "exp", 1, {2}, {S2(7, 7)}, -3, 3, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1, 0, 0},
    {"log_33", "log", 1, {1}, {S1(33)}, 0.1f, 5, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1, 0, 0},
    {"square_1", "square", 1, {1}, {S1(1)}, -2, 2, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-6, 1, 0, 0},
    {"abs_1023", "abs", 1, {1}, {S1(1023)}, -2, 2, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-6, 1, 1, 0},
    {"neg_7x33", "neg", 1, {2}, {S2(7, 33)}, -2, 2, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-6, 1, 0, 0},
    {"sqrt_127", "sqrt", 1, {1}, {S1(127)}, 0.1f, 4, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1, 0, 0},
    {"rsqrt_127", "rsqrt", 1, {1}, {S1(127)}, 0.2f, 4, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1, 0, 0},
    {"silu_1023", "silu", 1, {1}, {S1(1023)}, -6, 6, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1, 0, 0},
    {"softplus_1023", "softplus", 1, {1}, {S1(1023)}, -25, 25, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1, 0, 0},
    {"softsign_1023", "softsign", 1, {1}, {S1(1023)}, -5, 5, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1, 0, 0},
    {"leaky_relu_33x7", "leaky_relu", 1, {2}, {S2(33, 7)}, -2, 2, 0, 0, 0, 0, 0.2f, 0, {0}, 1e-6, 1e-6, 1, 1, 0},
    {"elu_1023", "elu", 1, {1}, {S1(1023)}, -3, 3, 0, 0, 0, 0, 1.5f, 0, {0}, 1e-6, 1e-5, 1, 1, 0},
    {"clamp_1000", "clamp", 1, {1}, {S1(1000)}, -3, 3, 0, 0, 0, 0, -1.0f, 1.5f, {0}, 1e-6, 1e-6, 1, 1, 0},

    {"softmax_7x10", "softmax", 1, {2}, {S2(7, 10)}, -5, 5, 0, 0, -1, 0, 0, 0, {0}, 1e-6, 1e-5, 1, 0, 0},
    {"softmax_1x1023", "softmax", 1, {2}, {S2(1, 1023)}, -5, 5, 0, 0, -1, 0, 0, 0, {0}, 1e-7, 1e-4, 1, 0, 0},
    {"softmax_3d", "softmax", 1, {3}, {S3(3, 5, 33)}, -5, 5, 0, 0, -1, 0, 0, 0, {0}, 1e-6, 1e-5, 1, 0, 0},
    {"softmax_axis0", "softmax", 1, {3}, {S3(33, 5, 3)}, -5, 5, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1, 0, 0},
    {"log_softmax_33x127", "log_softmax", 1, {2}, {S2(33, 127)}, -5, 5, 0, 0, -1, 0, 0, 0, {0}, 1e-5, 1e-5, 1, 0, 0},
    {"log_softmax_axis1", "log_softmax", 1, {4}, {S4(2, 129, 3, 5)}, -5, 5, 0, 0, 1, 0, 0, 0, {0}, 1e-5, 1e-5, 1, 0, 0},

    {"sum_axis0", "sum", 1, {2}, {S2(1000, 7)}, -1, 1, 0, 0, 0, 0, 0, 0, {0}, 1e-4, 1e-4, 1, 0, 0},
    {"sum_axis1_keep", "sum", 1, {2}, {S2(7, 1023)}, -1, 1, 0, 0, 1, 1, 0, 0, {0}, 1e-4, 1e-4, 1, 0, 0},
    {"sum_axis1_4d", "sum", 1, {4}, {S4(2, 3, 5, 7)}, -1, 1, 0, 0, 1, 0, 0, 0, {0}, 1e-5, 1e-4, 1, 0, 0},
    {"mean_last", "mean", 1, {3}, {S3(3, 7, 33)}, -1, 1, 0, 0, -1, 0, 0, 0, {0}, 1e-6, 1e-4, 1, 0, 0},
    {"sum_all_1023x7", "sum_all", 1, {2}, {S2(1023, 7)}, -1, 1, 0, 0, 0, 0, 0, 0, {0}, 1e-3, 1e-4, 1, 0, 0},
    {"max_last", "max", 1, {2}, {S2(33, 127)}, -1, 1, 0, 0, -1, 0, 0, 0, {0}, 0, 0, 1, 1, 0},
    {"max_axis1_keep", "max", 1, {3}, {S3(5, 1000, 3)}, -1, 1, 0, 0, 1, 1, 0, 0, {0}, 0, 0, 1, 1, 0},
    {"min_axis0", "min", 1, {2}, {S2(7, 33)}, -1, 1, 0, 0, 0, 0, 0, 0, {0}, 0, 0, 1, 1, 0},
    {"argmax_last", "argmax", 1, {2}, {S2(127, 10)}, -1, 1, 0, 0, 1, 0, 0, 0, {0}, 0, 0, 0, 0, 0},
    {"argmax_axis0", "argmax", 1, {3}, {S3(7, 5, 3)}, -1, 1, 0, 0, 0, 0, 0, 0, {0}, 0, 0, 0, 0, 0},
    {"argmin_axis1", "argmin", 1, {3}, {S3(7, 129, 3)}, -1, 1, 0, 0, 1, 0, 0, 0, {0}, 0, 0, 0, 0, 0},

    {"reshape_2d_3d", "reshape", 1, {2}, {S2(6, 35)}, -1, 1, 0, 0, 0, 0, 0, 0, {0}, 0, 0, 1, 0, 0},
    {"transpose_2d", "transpose", 1, {2}, {S2(33, 127)}, -1, 1, 0, 0, 0, 0, 0, 0, {1, 0}, 0, 0, 1, 0, 0},
    {"transpose_4d", "transpose", 1, {4}, {S4(2, 3, 5, 7)}, -1, 1, 0, 0, 0, 0, 0, 0, {2, 0, 3, 1}, 0, 0, 1, 0, 0},
    {"cast_halves", "cast_roundtrip", 1, {2}, {S2(33, 31)}, -4, 4, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-2, 1, 0, 0},
    {"cast_i32", "cast_i32", 1, {1}, {S1(1000)}, -50, 50, 0, 0, 0, 0, 0, 0, {0}, 0, 0, 0, 0, 0},

    {"sparse_xent_32x10", "sparse_cross_entropy", 2, {2, 1}, {S2(32, 10), S1(32)}, -4, 4, 0, 0, 0, 0, 0, 0, {0}, 1e-5, 1e-4, 1, 0, 0},
    {"sparse_xent_1x1023", "sparse_cross_entropy", 2, {2, 1}, {S2(1, 1023), S1(1)}, -4, 4, 0, 0, 0, 0, 0, 0, {0}, 1e-5, 1e-4, 1, 0, 0},
    {"xent_7x33", "cross_entropy", 2, {2, 2}, {S2(7, 33), S2(7, 33)}, 0, 1, 0, 0, 0, 0, 0, 0, {0}, 1e-5, 1e-4, 1, 0, 0},
    {"mse_127x3", "mse", 2, {2, 2}, {S2(127, 3), S2(127, 3)}, -1, 1, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-4, 1, 0, 0},
    {"dropout_1000", "dropout", 1, {2}, {S2(1000, 7)}, -1, 1, 0, 0, 0, 0, 0.3f, 0, {0}, 1e-6, 1e-6, 1, 0, 0},

    /* one optimizer step on a parameter (in0): the parameter after it */
    {"adam_step_33x7", "step_adam", 1, {2}, {S2(33, 7)}, -1, 1, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 0, 0, 0},
    {"sgd_nesterov_clip_1000", "step_sgd_clip", 1, {1}, {S1(1000)}, -1, 1, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 0, 0, 0},
    {"ema_127", "step_ema", 1, {1}, {S1(127)}, -1, 1, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 0, 0, 0},
    {"amp_adam_7x33", "step_amp", 1, {2}, {S2(7, 33)}, -1, 1, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 0, 0, 0},

    /* ---- sequence models (designated initializers: the fields a case sets) ---- */
#define IDX OP_FILL_INDEX
#define PAD OP_FILL_PADDING
    /* batched matmul: broadcast batch dims, every transpose, a 2-D operand */
    {.name = "bmm_3d_nn", .op = "matmul", .nin = 2, .ndim = {3, 3}, .shape = {S3(3, 7, 5), S3(3, 5, 9)},
     .lo = -1, .hi = 1, .atol = 1e-5, .rtol = 1e-4, .backward = 1},
    {.name = "bmm_4d_bcast_nt", .op = "matmul", .nin = 2, .ndim = {4, 4}, .shape = {S4(2, 3, 7, 33), S4(1, 3, 17, 33)},
     .lo = -1, .hi = 1, .tb = 1, .atol = 1e-5, .rtol = 1e-4, .backward = 1},
    {.name = "bmm_tn_2d_left", .op = "matmul", .nin = 2, .ndim = {2, 4}, .shape = {S2(5, 4), S4(2, 3, 5, 6)},
     .lo = -1, .hi = 1, .ta = 1, .atol = 1e-5, .rtol = 1e-4, .backward = 1},
    {.name = "bmm_tt_4d", .op = "matmul", .nin = 2, .ndim = {4, 4}, .shape = {S4(2, 1, 9, 7), S4(1, 3, 5, 9)},
     .lo = -1, .hi = 1, .ta = 1, .tb = 1, .atol = 1e-5, .rtol = 1e-4, .backward = 1},
    {.name = "matmul_3d_by_2d", .op = "matmul", .nin = 2, .ndim = {3, 2}, .shape = {S3(2, 7, 33), S2(33, 5)},
     .lo = -1, .hi = 1, .atol = 1e-5, .rtol = 1e-4, .backward = 1},
    /* normalization over the last axis */
    {.name = "layer_norm_7x33", .op = "layer_norm", .nin = 3, .ndim = {2, 1, 1}, .shape = {S2(7, 33), S1(33), S1(33)},
     .lo = -2, .hi = 2, .atol = 1e-5, .rtol = 1e-4, .backward = 1},
    {.name = "layer_norm_plain_3d", .op = "layer_norm", .nin = 1, .ndim = {3}, .shape = {S3(3, 5, 127)}, .lo = -2,
     .hi = 3, .atol = 1e-5, .rtol = 1e-4, .backward = 1},
    {.name = "rms_norm_5x65", .op = "rms_norm", .nin = 2, .ndim = {2, 1}, .shape = {S2(5, 65), S1(65)}, .lo = -2,
     .hi = 2, .atol = 1e-5, .rtol = 1e-4, .backward = 1},
    {.name = "rms_norm_plain_1", .op = "rms_norm", .nin = 1, .ndim = {2}, .shape = {S2(9, 1)}, .lo = 0.5f, .hi = 2,
     .atol = 1e-5, .rtol = 1e-4, .backward = 1},
    /* indexing: embedding rows, take along an axis, gather, scatter-add */
    {.name = "embedding_33x7", .op = "embedding", .nin = 2, .ndim = {2, 2}, .shape = {S2(33, 7), S2(5, 3)}, .lo = -1,
     .hi = 1, .fill = {0, IDX}, .index_hi = 33, .atol = 1e-6, .rtol = 1e-5, .backward = 1},
    {.name = "take_axis1", .op = "take", .nin = 2, .ndim = {3, 1}, .shape = {S3(4, 9, 5), S1(13)}, .lo = -1, .hi = 1,
     .axis = 1, .fill = {0, IDX}, .index_hi = 9, .atol = 1e-6, .rtol = 1e-5, .backward = 1},
    {.name = "take_scalar_index", .op = "take", .nin = 2, .ndim = {2, 0}, .shape = {S2(7, 5), {0}}, .lo = -1, .hi = 1,
     .fill = {0, IDX}, .index_hi = 7, .atol = 1e-6, .rtol = 1e-5, .backward = 1},
    {.name = "gather_axis1", .op = "gather", .nin = 2, .ndim = {3, 3}, .shape = {S3(4, 9, 5), S3(4, 3, 5)}, .lo = -1,
     .hi = 1, .axis = 1, .fill = {0, IDX}, .index_hi = 9, .atol = 1e-6, .rtol = 1e-5, .backward = 1},
    {.name = "gather_axis0_narrow", .op = "gather", .nin = 2, .ndim = {2, 2}, .shape = {S2(7, 3), S2(2, 2)}, .lo = -1,
     .hi = 1, .fill = {0, IDX}, .index_hi = 7, .atol = 1e-6, .rtol = 1e-5, .backward = 1},
    {.name = "scatter_add_axis1", .op = "scatter_add", .nin = 3, .ndim = {2, 2, 2},
     .shape = {S2(5, 6), S2(5, 4), S2(5, 4)}, .lo = -1, .hi = 1, .axis = 1, .fill = {0, IDX, 0}, .index_hi = 6,
     .atol = 1e-6, .rtol = 1e-5, .backward = 1},
    /* rotary embeddings along the sequence axis of either layout */
    {.name = "rope_bhnd_d8", .op = "rope", .nin = 1, .ndim = {4}, .shape = {S4(2, 3, 7, 8)}, .lo = -1, .hi = 1,
     .axis = 2, .scale = 10000, .atol = 1e-5, .rtol = 1e-4, .backward = 1},
    {.name = "rope_bnhd_d32", .op = "rope", .nin = 1, .ndim = {4}, .shape = {S4(2, 33, 3, 32)}, .lo = -1, .hi = 1,
     .axis = 1, .scale = 500, .atol = 1e-5, .rtol = 1e-4, .backward = 1},
    /* fused attention: sequence 1, lengths no tile fits, head sizes 32 / 64 /
     * 80, causal, padding, additive and combined masks, grouped-query and
     * multi-query heads, both layouts, queries that see no key */
    {.name = "attn_seq1_d32", .op = "attention", .nin = 3, .ndim = {4, 4, 4},
     .shape = {S4(2, 2, 1, 32), S4(2, 2, 1, 32), S4(2, 2, 1, 32)}, .lo = -1, .hi = 1, .atol = 1e-5, .rtol = 1e-4,
     .backward = 1},
    {.name = "attn_causal_d64_n33", .op = "attention", .nin = 3, .ndim = {4, 4, 4},
     .shape = {S4(1, 2, 33, 64), S4(1, 2, 33, 64), S4(1, 2, 33, 64)}, .lo = -1, .hi = 1, .causal = 1, .atol = 1e-5,
     .rtol = 1e-4, .backward = 1},
    {.name = "attn_gqa_causal_d80_n70", .op = "attention", .nin = 3, .ndim = {4, 4, 4},
     .shape = {S4(1, 4, 70, 80), S4(1, 2, 70, 80), S4(1, 2, 70, 80)}, .lo = -1, .hi = 1, .causal = 1, .atol = 1e-5,
     .rtol = 1e-4, .backward = 1},
    {.name = "attn_padding_d64_n17", .op = "attention", .nin = 4, .ndim = {4, 4, 4, 4},
     .shape = {S4(3, 2, 17, 64), S4(3, 2, 17, 64), S4(3, 2, 17, 64), S4(3, 1, 1, 17)}, .lo = -1, .hi = 1,
     .fill = {0, 0, 0, PAD}, .atol = 1e-5, .rtol = 1e-4, .backward = 1},
    {.name = "attn_bnhd_mqa_additive_d32", .op = "attention", .nin = 4, .ndim = {4, 4, 4, 2},
     .shape = {S4(2, 9, 4, 32), S4(2, 9, 1, 32), S4(2, 9, 1, 32), S2(9, 9)}, .lo = -1, .hi = 1,
     .layout = LOOM_LAYOUT_BNHD, .atol = 1e-5, .rtol = 1e-4, .backward = 1},
    {.name = "attn_cross_causal_padding_d32", .op = "attention", .nin = 4, .ndim = {4, 4, 4, 4},
     .shape = {S4(3, 2, 5, 32), S4(3, 2, 13, 32), S4(3, 2, 13, 32), S4(3, 1, 1, 13)}, .lo = -1, .hi = 1,
     .causal = 1, .fill = {0, 0, 0, PAD}, .scale = 0.3f, .atol = 1e-5, .rtol = 1e-4, .backward = 1},
    {.name = "attn_causal_unseen_rows_d32", .op = "attention", .nin = 3, .ndim = {4, 4, 4},
     .shape = {S4(1, 1, 9, 32), S4(1, 1, 4, 32), S4(1, 1, 4, 32)}, .lo = -1, .hi = 1, .causal = 1, .atol = 1e-5,
     .rtol = 1e-4, .backward = 1},
    {.name = "attn_ref_gqa_causal_d32", .op = "attention_ref", .nin = 3, .ndim = {4, 4, 4},
     .shape = {S4(1, 4, 17, 32), S4(1, 2, 17, 32), S4(1, 2, 17, 32)}, .lo = -1, .hi = 1, .causal = 1, .atol = 1e-5,
     .rtol = 1e-4, .backward = 1},
#undef IDX
#undef PAD
};

const int op_case_count = (int)(sizeof op_cases / sizeof op_cases[0]);

int op_case_labels(const op_case *c, int i)
{
    return (i == 1 && !strcmp(c->op, "sparse_cross_entropy")) || c->fill[i] == OP_FILL_INDEX;
}

int op_case_nograd(const op_case *c, int i)
{
    return op_case_labels(c, i) || (c->nin == 4 && !strncmp(c->op, "attention", 9));
}

void op_case_fill(const op_case *c, int i, float *x, size_t n, uint32_t seed)
{
    tu_fill(x, n, seed, c->lo, c->hi);
    if (i == 1 && !strcmp(c->op, "sparse_cross_entropy")) {
        int32_t *lab = (int32_t *)x;
        for (size_t k = 0; k < n; k++)
            lab[k] = (int32_t)((k * 7 + 3) % (size_t)c->shape[0][1]);
    } else if (c->fill[i] == OP_FILL_INDEX) {
        /* every index of the range, in a scrambled order, some repeated */
        int32_t *v = (int32_t *)x;
        for (size_t k = 0; k < n; k++)
            v[k] = (int32_t)((k * 5 + 2 + k / 3) % (size_t)c->index_hi);
    } else if (c->fill[i] == OP_FILL_PADDING) {
        int64_t keys = c->shape[i][c->ndim[i] - 1];
        for (size_t k = 0; k < n; k++) {
            int64_t b = (int64_t)(k / (size_t)keys), j = (int64_t)(k % (size_t)keys);
            x[k] = j >= keys - b % 3 ? -INFINITY : 0.0f;
        }
    }
}

int op_case_stateful(const op_case *c)
{
    return !strncmp(c->op, "step_", 5);
}

static loom_tensor optimizer_step(loom_graph *g, const op_case *c, loom_tensor p, loom_dtype dt)
{
    loom_optimizer o = loom_optimizer_default(LOOM_OPT_ADAM);
    loom_tensor y = loom_square(g, loom_scale(g, p, 1.5f));
    if (!strcmp(c->op, "step_sgd_clip")) {
        o = loom_optimizer_default(LOOM_OPT_SGD);
        o.momentum = 0.9f;
        o.nesterov = 1;
        o.clip_norm = 0.5f;
        o.l2 = 0.01f;
    } else if (!strcmp(c->op, "step_ema")) {
        o.ema_decay = 0.9f;
    }
    if (!strcmp(c->op, "step_amp")) {
        /* mixed precision: f32 master weights, the arithmetic in dt */
        y = loom_cast(g, loom_square(g, loom_cast(g, loom_scale(g, p, 1.5f), dt)), LOOM_F32);
        loom_backward_scaled(g, loom_sum_all(g, y), NULL, 0, NULL);
    } else {
        loom_backward(g, loom_sum_all(g, y), NULL, 0);
    }
    loom_optimize(g, &o);
    return p;
}

loom_tensor op_case_build(loom_graph *g, const op_case *c, loom_tensor *in, loom_dtype dt)
{
    loom_op op = loom_op_by_name(c->op);
    /* the element-wise ops come from the table itself */
    if (op != LOOM_OP_NONE && loom_op_def_of(op)->family == LOOM_FAM_UNARY)
        return loom_op_elementwise(g, op, 1, in, c->p1, c->p2);
    if (op != LOOM_OP_NONE && loom_op_def_of(op)->family == LOOM_FAM_BINARY)
        return loom_op_elementwise(g, op, 2, in, 0, 0);
    const char *b = c->op;
    if (!strcmp(b, "matmul"))
        return loom_matmul(g, in[0], in[1], c->ta, c->tb);
    if (!strcmp(b, "dense"))
        return loom_add(g, loom_matmul(g, in[0], in[1], 0, 0), in[2]);
    if (!strcmp(b, "dense_tanh"))
        return loom_tanh(g, loom_add(g, in[2], loom_matmul(g, in[0], in[1], 0, 0)));
    if (!strcmp(b, "eq_max"))
        return loom_eq(g, in[0], loom_maximum(g, in[0], in[1]));
    if (!strcmp(b, "where_gt"))
        return loom_where(g, loom_gt(g, in[0], in[2]), in[1], in[2]);
    if (!strcmp(b, "softmax"))
        return loom_softmax_axis(g, in[0], c->axis);
    if (!strcmp(b, "log_softmax"))
        return loom_log_softmax_axis(g, in[0], c->axis);
    if (!strcmp(b, "sum"))
        return loom_sum(g, in[0], c->axis, c->keepdim);
    if (!strcmp(b, "mean"))
        return loom_mean(g, in[0], c->axis, c->keepdim);
    if (!strcmp(b, "sum_all"))
        return loom_sum_all(g, in[0]);
    if (!strcmp(b, "max"))
        return loom_max(g, in[0], c->axis, c->keepdim);
    if (!strcmp(b, "min"))
        return loom_min(g, in[0], c->axis, c->keepdim);
    if (!strcmp(b, "argmax"))
        return loom_argmax(g, in[0], c->axis);
    if (!strcmp(b, "argmin"))
        return loom_argmin(g, in[0], c->axis);
    if (!strcmp(b, "reshape")) {
        int64_t s[3] = {5, -1, 6};
        return loom_reshape(g, in[0], 3, s);
    }
    if (!strcmp(b, "transpose"))
        return loom_transpose(g, in[0], c->perm);
    if (!strcmp(b, "cast_roundtrip")) {
        loom_dtype other = dt == LOOM_F16 ? LOOM_BF16 : LOOM_F16;
        return loom_cast(g, loom_scale(g, loom_cast(g, loom_cast(g, in[0], other), LOOM_F32), 2.0f), dt);
    }
    if (!strcmp(b, "cast_i32"))
        return loom_cast(g, in[0], LOOM_I32);
    if (!strcmp(b, "sparse_cross_entropy"))
        return loom_sparse_cross_entropy(g, in[0], in[1]);
    if (!strcmp(b, "cross_entropy"))
        return loom_cross_entropy(g, in[0], in[1]);
    if (!strcmp(b, "mse"))
        return loom_mse(g, in[0], in[1]);
    if (!strcmp(b, "dropout"))
        return loom_dropout(g, in[0], c->p1, 1234);
    if (op_case_stateful(c))
        return optimizer_step(g, c, in[0], dt);
    if (!strcmp(b, "layer_norm"))
        return loom_layer_norm(g, in[0], c->nin > 1 ? in[1] : LOOM_NONE, c->nin > 2 ? in[2] : LOOM_NONE, 1e-5f);
    if (!strcmp(b, "rms_norm"))
        return loom_rms_norm(g, in[0], c->nin > 1 ? in[1] : LOOM_NONE, 1e-6f);
    if (!strcmp(b, "embedding"))
        return loom_embedding(g, in[0], in[1]);
    if (!strcmp(b, "take"))
        return loom_take(g, in[0], in[1], c->axis);
    if (!strcmp(b, "gather"))
        return loom_gather(g, in[0], c->axis, in[1]);
    if (!strcmp(b, "scatter_add"))
        return loom_scatter_add(g, in[0], c->axis, in[1], in[2]);
    if (!strcmp(b, "rope"))
        return loom_rope(g, in[0], c->axis, c->scale);
    if (!strcmp(b, "attention") || !strcmp(b, "attention_ref")) {
        loom_attention_opts o = loom_attention_opts_default();
        o.causal = c->causal;
        o.layout = (loom_layout)c->layout;
        o.scale = c->scale;
        loom_tensor mask = c->nin > 3 ? in[3] : LOOM_NONE;
        return !strcmp(b, "attention") ? loom_attention(g, in[0], in[1], in[2], mask, &o)
                                       : loom_attention_reference(g, in[0], in[1], in[2], mask, &o);
    }
    return LOOM_NONE;
}
