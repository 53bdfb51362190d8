#include "op_cases.h"
#include "testutil.h"
#include "core/graph.h"
#include "core/op_table.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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
    /* two layers: the backward pass's matmul applies the activation's
     * gradient in its epilogue */
    {"mlp_relu_33x65x17", "mlp_relu", 3, {2, 2, 2}, {S2(33, 65), S2(65, 31), S2(31, 17)}, -1, 1, 0, 0, 0, 0, 0, 0, {0}, 1e-4, 1e-4, 1, 1, 0},
    {"mlp_sigmoid_7x127x33", "mlp_sigmoid", 3, {2, 2, 2}, {S2(7, 127), S2(127, 33), S2(33, 9)}, -1, 1, 0, 0, 0, 0, 0, 0, {0}, 1e-4, 1e-4, 1, 0, 0},
    {"dense_tanh_7x127x33", "dense_tanh", 3, {2, 2, 1}, {S2(7, 127), S2(127, 33), S1(33)}, -1, 1, 0, 0, 0, 0, 0, 0, {0}, 1e-4, 1e-4, 1, 0, 0},
    /* every epilogue (LOOM_EPI_*), forward and through its gradient; sizes
     * off every tile, k over several staged blocks, the transposes */
    {"dense_relu_70x300x45", "dense_relu", 3, {2, 2, 1}, {S2(70, 300), S2(300, 45), S1(45)}, -1, 1, 0, 0, 0, 0, 0, 0, {0}, 1e-4, 1e-4, 1, 1, 0},
    /* forward only: gelu's and silu's gradients read their input, which
     * keeps the activation out of the GEMM in a training graph */
    {"dense_gelu_33x65x17", "dense_gelu", 3, {2, 2, 1}, {S2(33, 65), S2(65, 17), S1(17)}, -1, 1, 0, 0, 0, 0, 0, 0, {0}, 1e-4, 1e-4, 0, 0, 0},
    {"dense_silu_37x29x41", "dense_silu", 3, {2, 2, 1}, {S2(37, 29), S2(29, 41), S1(41)}, -1, 1, 0, 0, 0, 0, 0, 0, {0}, 1e-4, 1e-4, 0, 0, 0},
    {"dense_sigmoid_129x64x10", "dense_sigmoid", 3, {2, 2, 1}, {S2(129, 64), S2(64, 10), S1(10)}, -1, 1, 0, 0, 0, 0, 0, 0, {0}, 1e-4, 1e-4, 1, 0, 0},
    {"dense_relu_nt_31x23x50", "dense_relu", 3, {2, 2, 1}, {S2(31, 23), S2(50, 23), S1(50)}, -1, 1, 0, 1, 0, 0, 0, 0, {0}, 1e-4, 1e-4, 1, 1, 0},
    {"dense_gelu_tn_70x40x33", "dense_gelu", 3, {2, 2, 1}, {S2(70, 40), S2(70, 33), S1(33)}, -1, 1, 1, 0, 0, 0, 0, 0, {0}, 1e-4, 1e-4, 1, 0, 0},
    {"mlp_tanh_65x200x19", "mlp_tanh", 3, {2, 2, 2}, {S2(65, 200), S2(200, 37), S2(37, 19)}, -1, 1, 0, 0, 0, 0, 0, 0, {0}, 1e-4, 1e-4, 1, 0, 0},

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
    /* pruning: an Adam step, then the mask (every third weight zero) */
    {"adam_mask_33x7", "step_mask", 1, {2}, {S2(33, 7)}, -1, 1, 0, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 0, 0, 0},

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
    /* convolutional networks: odd sizes, stride 2, padding 1, dilation 2,
     * groups = channels, 1x1, 7x7, non-square inputs and kernels, batch 1,
     * channel counts that fit no tile. The builder's name is followed by
     * its attributes: s stride, p padding top, left, bottom, right, d
     * dilation, g groups, k window, ... (conv_case) */
    {.name = "conv2d_3x3_p1", .op = "conv2d p=1,1,1,1 bias", .nin = 3, .ndim = {4, 4, 1}, .shape = {S4(2, 3, 7, 9), S4(4, 3, 3, 3), S1(4)}, .lo = -1, .hi = 1,
     .atol = 1e-5, .rtol = 1e-4, .backward = 1, .kink = 0},
    {.name = "conv2d_s2_p1", .op = "conv2d s=2,2 p=1,1,1,1 bias", .nin = 3, .ndim = {4, 4, 1}, .shape = {S4(2, 3, 9, 8), S4(5, 3, 3, 3), S1(5)}, .lo = -1, .hi = 1,
     .atol = 1e-5, .rtol = 1e-4, .backward = 1, .kink = 0},
    {.name = "conv2d_d2", .op = "conv2d d=2,2 p=2,2,2,2", .nin = 2, .ndim = {4, 4}, .shape = {S4(1, 2, 9, 9), S4(3, 2, 3, 3)}, .lo = -1, .hi = 1,
     .atol = 1e-5, .rtol = 1e-4, .backward = 1, .kink = 0},
    {.name = "conv2d_depthwise", .op = "conv2d g=6 p=1,1,1,1 bias", .nin = 3, .ndim = {4, 4, 1}, .shape = {S4(2, 6, 8, 7), S4(6, 1, 3, 3), S1(6)}, .lo = -1, .hi = 1,
     .atol = 1e-5, .rtol = 1e-4, .backward = 1, .kink = 0},
    {.name = "conv2d_groups2_3x2", .op = "conv2d g=2", .nin = 2, .ndim = {4, 4}, .shape = {S4(2, 4, 6, 6), S4(6, 2, 3, 2)}, .lo = -1, .hi = 1,
     .atol = 1e-5, .rtol = 1e-4, .backward = 1, .kink = 0},
    {.name = "conv2d_1x1", .op = "conv2d bias", .nin = 3, .ndim = {4, 4, 1}, .shape = {S4(2, 5, 6, 7), S4(3, 5, 1, 1), S1(3)}, .lo = -1, .hi = 1,
     .atol = 1e-5, .rtol = 1e-4, .backward = 1, .kink = 0},
    {.name = "conv2d_7x7_s2", .op = "conv2d s=2,2 p=3,3,3,3", .nin = 2, .ndim = {4, 4}, .shape = {S4(1, 3, 17, 15), S4(4, 3, 7, 7)}, .lo = -1, .hi = 1,
     .atol = 1e-4, .rtol = 1e-4, .backward = 1, .kink = 0},
    {.name = "conv2d_same_s2_4x4", .op = "conv2d s=2,2 same", .nin = 2, .ndim = {4, 4}, .shape = {S4(2, 2, 8, 9), S4(3, 2, 4, 4)}, .lo = -1, .hi = 1,
     .atol = 1e-5, .rtol = 1e-4, .backward = 1, .kink = 0},
    {.name = "conv2d_nonsquare", .op = "conv2d s=1,2 p=1,2,0,1", .nin = 2, .ndim = {4, 4}, .shape = {S4(1, 3, 5, 11), S4(2, 3, 2, 5)}, .lo = -1, .hi = 1,
     .atol = 1e-5, .rtol = 1e-4, .backward = 1, .kink = 0},
    {.name = "conv2d_b1_17to33", .op = "conv2d p=1,1,1,1 bias", .nin = 3, .ndim = {4, 4, 1}, .shape = {S4(1, 17, 5, 6), S4(33, 17, 3, 3), S1(33)}, .lo = -1, .hi = 1,
     .atol = 1e-4, .rtol = 1e-4, .backward = 1, .kink = 0},
    /* int8 inference: float inputs quantized in the graph (per tensor, and
     * per output channel for the weights), the int8 product with its fused
     * requantize, and for i8 outputs a dequantize; every step is integer
     * or one rounded multiply, so every backend matches the CPU to the bit */
    {.name = "qmatmul_f32_33x70x17", .op = "qmatmul", .nin = 2, .ndim = {2, 2}, .shape = {S2(33, 70), S2(17, 70)},
     .lo = -1.2f, .hi = 1.2f, .atol = 1e-6, .rtol = 1e-6, .f32_only = 1},
    {.name = "qmatmul_i8_relu_7x300x45", .op = "qmatmul i8 relu", .nin = 2, .ndim = {2, 2},
     .shape = {S2(7, 300), S2(45, 300)}, .lo = -1, .hi = 1, .atol = 1e-6, .rtol = 1e-6, .f32_only = 1},
    {.name = "qconv2d_p1_relu", .op = "qconv2d p=1,1,1,1 relu", .nin = 2, .ndim = {4, 4},
     .shape = {S4(2, 3, 7, 9), S4(5, 3, 3, 3)}, .lo = -1, .hi = 1, .atol = 1e-6, .rtol = 1e-6, .f32_only = 1},
    {.name = "qconv2d_i8_s2_g2", .op = "qconv2d i8 s=2,2 p=1,1,1,1 g=2", .nin = 2, .ndim = {4, 4},
     .shape = {S4(1, 4, 9, 8), S4(6, 2, 3, 3)}, .lo = -1, .hi = 1, .atol = 1e-6, .rtol = 1e-6, .f32_only = 1},
    {.name = "conv1d_s2", .op = "conv1d s=1,2 p=0,2,0,2 bias", .nin = 3, .ndim = {3, 3, 1}, .shape = {S3(2, 3, 20), S3(4, 3, 5), S1(4)}, .lo = -1, .hi = 1,
     .atol = 1e-5, .rtol = 1e-4, .backward = 1, .kink = 0},
    {.name = "conv_transpose2d_s2", .op = "conv_transpose2d s=2,2 p=1,1,1,1 op=1,1 bias", .nin = 3, .ndim = {4, 4, 1}, .shape = {S4(2, 4, 5, 6), S4(4, 3, 3, 3), S1(3)}, .lo = -1, .hi = 1,
     .atol = 1e-5, .rtol = 1e-4, .backward = 1, .kink = 0},
    {.name = "conv_transpose2d_g2_d2", .op = "conv_transpose2d g=2 d=2,2", .nin = 2, .ndim = {4, 4}, .shape = {S4(1, 4, 4, 5), S4(4, 2, 2, 3)}, .lo = -1, .hi = 1,
     .atol = 1e-5, .rtol = 1e-4, .backward = 1, .kink = 0},
    {.name = "max_pool2d_2x2", .op = "max_pool2d k=2,2", .nin = 1, .ndim = {4}, .shape = {S4(2, 3, 9, 9)}, .lo = -1, .hi = 1,
     .atol = 1e-6, .rtol = 1e-4, .backward = 1, .kink = 1},
    {.name = "max_pool2d_3x3_s2_p1", .op = "max_pool2d k=3,3 s=2,2 p=1,1,1,1", .nin = 1, .ndim = {4}, .shape = {S4(1, 4, 9, 7)}, .lo = -1, .hi = 1,
     .atol = 1e-6, .rtol = 1e-4, .backward = 1, .kink = 1},
    {.name = "avg_pool2d_3x2_s1", .op = "avg_pool2d k=3,2 s=1,1 p=1,1,1,1", .nin = 1, .ndim = {4}, .shape = {S4(2, 2, 6, 5)}, .lo = -1, .hi = 1,
     .atol = 1e-6, .rtol = 1e-4, .backward = 1, .kink = 0},
    {.name = "avg_pool2d_count_pad", .op = "avg_pool2d k=3,3 s=2,2 p=1,1,1,1 cp", .nin = 1, .ndim = {4}, .shape = {S4(1, 3, 7, 7)}, .lo = -1, .hi = 1,
     .atol = 1e-6, .rtol = 1e-4, .backward = 1, .kink = 0},
    {.name = "global_avg_pool2d", .op = "global_avg_pool2d", .nin = 1, .ndim = {4}, .shape = {S4(2, 5, 4, 3)}, .lo = -1, .hi = 1,
     .atol = 1e-6, .rtol = 1e-4, .backward = 1, .kink = 0},
    {.name = "batch_norm_train_4d", .op = "batch_norm_train", .nin = 3, .ndim = {4, 1, 1}, .shape = {S4(4, 3, 5, 6), S1(3), S1(3)}, .lo = -2, .hi = 2,
     .atol = 1e-4, .rtol = 1e-4, .backward = 1, .kink = 0},
    {.name = "batch_norm_train_2d", .op = "batch_norm_train", .nin = 3, .ndim = {2, 1, 1}, .shape = {S2(7, 5), S1(5), S1(5)}, .lo = -2, .hi = 2,
     .atol = 1e-4, .rtol = 1e-4, .backward = 1, .kink = 0},
    {.name = "batch_norm_infer", .op = "batch_norm_infer", .nin = 3, .ndim = {4, 1, 1}, .shape = {S4(3, 4, 3, 3), S1(4), S1(4)}, .lo = 0.2f, .hi = 2,
     .atol = 1e-5, .rtol = 1e-4, .backward = 1, .kink = 0},
    {.name = "group_norm_g3", .op = "group_norm g=3", .nin = 3, .ndim = {4, 1, 1}, .shape = {S4(2, 6, 4, 5), S1(6), S1(6)}, .lo = -2, .hi = 2,
     .atol = 1e-4, .rtol = 1e-4, .backward = 1, .kink = 0},
    {.name = "group_norm_g1_3d", .op = "group_norm g=1", .nin = 3, .ndim = {3, 1, 1}, .shape = {S3(3, 4, 7), S1(4), S1(4)}, .lo = -2, .hi = 2,
     .atol = 1e-4, .rtol = 1e-4, .backward = 1, .kink = 0},
    {.name = "concat_axis1", .op = "concat axis=1", .nin = 3, .ndim = {4, 4, 4}, .shape = {S4(2, 3, 4, 5), S4(2, 1, 4, 5), S4(2, 2, 4, 5)}, .lo = -1, .hi = 1,
     .atol = 0, .rtol = 1e-4, .backward = 1, .kink = 0},
    {.name = "concat_last", .op = "concat axis=-1", .nin = 2, .ndim = {2, 2}, .shape = {S2(7, 3), S2(7, 10)}, .lo = -1, .hi = 1,
     .atol = 0, .rtol = 1e-4, .backward = 1, .kink = 0},
    {.name = "slice_steps", .op = "slice start=1,0,2 stop=5,7,9 step=2,3,1", .nin = 1, .ndim = {3}, .shape = {S3(5, 7, 9)}, .lo = -1, .hi = 1,
     .atol = 0, .rtol = 1e-4, .backward = 1, .kink = 0},
    {.name = "slice_negative", .op = "slice start=-20,1 stop=-1,10 step=3,2", .nin = 1, .ndim = {2}, .shape = {S2(33, 10)}, .lo = -1, .hi = 1,
     .atol = 0, .rtol = 1e-4, .backward = 1, .kink = 0},
    {.name = "pad_constant", .op = "pad lo=0,0,1,2 hi=0,1,2,1 value=0.5", .nin = 1, .ndim = {4}, .shape = {S4(2, 3, 4, 5)}, .lo = -1, .hi = 1,
     .atol = 0, .rtol = 1e-4, .backward = 1, .kink = 0},
    {.name = "pad_reflect", .op = "pad lo=0,0,2,1 hi=0,0,1,3 reflect", .nin = 1, .ndim = {4}, .shape = {S4(2, 3, 5, 6)}, .lo = -1, .hi = 1,
     .atol = 1e-6, .rtol = 1e-4, .backward = 1, .kink = 0},
    {.name = "flatten_4d", .op = "flatten", .nin = 1, .ndim = {4}, .shape = {S4(2, 3, 4, 5)}, .lo = -1, .hi = 1,
     .atol = 0, .rtol = 1e-4, .backward = 1, .kink = 0},
    {.name = "spatial_dropout", .op = "spatial_dropout", .nin = 1, .ndim = {4}, .shape = {S4(4, 6, 3, 3)}, .lo = -1, .hi = 1,
     .atol = 1e-6, .rtol = 1e-4, .backward = 1, .kink = 0},
    {.name = "bn_running_update", .op = "step_bn_running", .nin = 1, .ndim = {2}, .shape = {S2(2, 5)}, .lo = 0.5f,
     .hi = 1.5f, .atol = 1e-5, .rtol = 1e-4},
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
    if (!strcmp(c->op, "step_mask")) {
        int nd = loom_tensor_ndim(g, p);
        int64_t shape[4], n = 1;
        for (int i = 0; i < nd; i++)
            n *= shape[i] = loom_tensor_dim(g, p, i);
        float *mask = malloc((size_t)n * sizeof *mask);
        if (!mask)
            return LOOM_NONE;
        for (int64_t i = 0; i < n; i++)
            mask[i] = i % 3 == 0 ? 0.0f : 1.0f;
        loom_mask_update(g, p, loom_constant(g, "mask", LOOM_F32, nd, shape, mask));
        free(mask);
    }
    return p;
}


/* The attributes after a builder's name ("conv2d s=2,2 p=1,1,1,1 bias"). */
static const char *attrs_of(const op_case *c)
{
    const char *sp = strchr(c->op, ' ');
    return sp ? sp + 1 : "";
}

/* 1 if the case's builder is `name`. */
static int builder_is(const op_case *c, const char *name)
{
    size_t n = strlen(name);
    return !strncmp(c->op, name, n) && (c->op[n] == ' ' || !c->op[n]);
}

/* The values of key=a,b,c in a case's attributes (up to max); the count, 0
 * if the key is absent. A bare word is a flag: has_word. */
static int attr_ints(const op_case *c, const char *key, int64_t *out, int max)
{
    const char *attrs = attrs_of(c);
    size_t kl = strlen(key);
    for (const char *p = attrs; (p = strstr(p, key)); p += kl) {
        if ((p != attrs && p[-1] != ' ') || p[kl] != '=')
            continue;
        const char *q = p + kl + 1;
        int n = 0;
        while (n < max) {
            char *end;
            out[n++] = strtoll(q, &end, 10);
            if (*end != ',')
                break;
            q = end + 1;
        }
        return n;
    }
    return 0;
}

static int has_word(const op_case *c, const char *word)
{
    const char *attrs = attrs_of(c);
    size_t n = strlen(word);
    for (const char *p = attrs; (p = strstr(p, word)); p += n)
        if ((p == attrs || p[-1] == ' ') && (p[n] == ' ' || !p[n]))
            return 1;
    return 0;
}

static loom_conv2d_opts conv_opts(const op_case *c)
{
    loom_conv2d_opts o = loom_conv2d_opts_default();
    int64_t v[4];
    if (attr_ints(c, "s", v, 2) == 2)
        o.stride[0] = (int)v[0], o.stride[1] = (int)v[1];
    if (attr_ints(c, "d", v, 2) == 2)
        o.dilation[0] = (int)v[0], o.dilation[1] = (int)v[1];
    if (attr_ints(c, "p", v, 4) == 4)
        for (int i = 0; i < 4; i++)
            o.pad[i] = (int)v[i];
    if (attr_ints(c, "g", v, 1) == 1)
        o.groups = (int)v[0];
    o.same = has_word(c, "same");
    return o;
}

static loom_pool2d_opts pool_opts(const op_case *c)
{
    loom_pool2d_opts o;
    memset(&o, 0, sizeof o);
    int64_t v[4];
    if (attr_ints(c, "k", v, 2) == 2)
        o.kernel[0] = (int)v[0], o.kernel[1] = (int)v[1];
    if (attr_ints(c, "s", v, 2) == 2)
        o.stride[0] = (int)v[0], o.stride[1] = (int)v[1];
    if (attr_ints(c, "p", v, 4) == 4)
        for (int i = 0; i < 4; i++)
            o.pad[i] = (int)v[i];
    o.count_pad = has_word(c, "cp");
    return o;
}

/* One running-statistics update over a batch the case makes itself. */
static loom_tensor bn_running_step(loom_graph *g, loom_tensor running, loom_dtype dt)
{
    int64_t xs[4] = {4, 5, 3, 3}, cs[1] = {5};
    float x[180], ga[5], be[5];
    for (int i = 0; i < 180; i++)
        x[i] = (float)((i * 37) % 23) / 7.0f - 1.5f + (float)(i % 5);
    for (int i = 0; i < 5; i++)
        ga[i] = 1.0f + 0.1f * (float)i, be[i] = 0.05f * (float)i;
    uint16_t h[180];
    const void *xd = x;
    if (dt != LOOM_F32) {
        loom_convert(dt, h, LOOM_F32, x, 180);
        xd = h;
    }
    loom_tensor xt = loom_constant(g, "bn_x", dt, 4, xs, xd);
    loom_tensor gt = loom_cast(g, loom_constant(g, "bn_gamma", LOOM_F32, 1, cs, ga), dt);
    loom_tensor bt = loom_cast(g, loom_constant(g, "bn_beta", LOOM_F32, 1, cs, be), dt);
    loom_batch_norm(g, xt, gt, bt, running, 0.9f, 1e-3f, 1);
    return running;
}

/* The int8 cases: in[0] activations quantized per tensor (scale 1/100,
 * zero point 3), in[1] weights per output channel (axis 0), an i32 bias,
 * the multipliers in_scale * w_scale; "i8": an i8 output (scale 1/40,
 * zero point -5) dequantized back. */
static loom_tensor quant_case(loom_graph *g, const op_case *c, loom_tensor *in)
{
    int conv = builder_is(c, "qconv2d");
    int64_t n = c->shape[1][0];
    float sa = 0.01f, za = 3.0f, so = 0.025f;
    int i8 = has_word(c, "i8");
    float *wq = malloc((size_t)(2 * n) * sizeof *wq), *mult = malloc((size_t)n * sizeof *mult);
    int32_t *bias = malloc((size_t)n * sizeof *bias);
    for (int64_t j = 0; j < n; j++) {
        wq[j] = 0.006f + 0.0005f * (float)j;
        wq[n + j] = 0;
        bias[j] = (int32_t)(j * 37 % 200) - 100;
        mult[j] = sa * wq[j] / (i8 ? so : 1.0f);
    }
    int64_t s2[2] = {2, 1}, sw[2] = {2, n};
    float aq[2] = {sa, za}, oq[2] = {so, -5.0f};
    loom_tensor qa = loom_quantize(g, in[0], loom_constant(g, "qa", LOOM_F32, 2, s2, aq), -1);
    loom_tensor qw = loom_quantize(g, in[1], loom_constant(g, "qw", LOOM_F32, 2, sw, wq), 0);
    loom_tensor tb = loom_constant(g, "qbias", LOOM_I32, 1, &n, bias);
    loom_tensor tm = loom_constant(g, "qmult", LOOM_F32, 1, &n, mult);
    free(wq);
    free(mult);
    free(bias);
    loom_qgemm_opts o = loom_qgemm_opts_default();
    o.out = i8 ? LOOM_I8 : LOOM_F32;
    o.out_zero = -5;
    o.in_zero = (int)za;
    o.act = has_word(c, "relu") ? LOOM_ACT_RELU : LOOM_ACT_NONE;
    loom_tensor y;
    if (conv) {
        loom_conv2d_opts co = conv_opts(c);
        y = loom_qconv2d(g, qa, qw, tb, tm, &co, &o);
    } else {
        y = loom_qmatmul(g, qa, qw, tb, tm, &o);
    }
    return i8 ? loom_dequantize(g, y, loom_constant(g, "qo", LOOM_F32, 2, s2, oq), -1) : y;
}

static loom_tensor conv_case(loom_graph *g, const op_case *c, loom_tensor *in, loom_dtype dt)
{
    loom_tensor bias = c->nin > 2 && has_word(c, "bias") ? in[2] : LOOM_NONE;
    int64_t v[4];
    if (builder_is(c, "qmatmul") || builder_is(c, "qconv2d"))
        return quant_case(g, c, in);
    if (builder_is(c, "conv2d")) {
        loom_conv2d_opts o = conv_opts(c);
        return loom_conv2d(g, in[0], in[1], bias, &o);
    }
    if (builder_is(c, "conv1d")) {
        loom_conv2d_opts o = conv_opts(c);
        return loom_conv1d(g, in[0], in[1], bias, &o);
    }
    if (builder_is(c, "conv_transpose2d")) {
        loom_conv2d_opts o = conv_opts(c);
        int op[2] = {0, 0};
        if (attr_ints(c, "op", v, 2) == 2)
            op[0] = (int)v[0], op[1] = (int)v[1];
        return loom_conv_transpose2d(g, in[0], in[1], bias, &o, op);
    }
    if (builder_is(c, "max_pool2d") || builder_is(c, "avg_pool2d")) {
        loom_pool2d_opts o = pool_opts(c);
        return c->op[0] == 'm' ? loom_max_pool2d(g, in[0], &o) : loom_avg_pool2d(g, in[0], &o);
    }
    if (builder_is(c, "global_avg_pool2d"))
        return loom_global_avg_pool2d(g, in[0]);
    if (builder_is(c, "batch_norm_train"))
        return loom_batch_norm(g, in[0], in[1], in[2], LOOM_NONE, 0.9f, 1e-3f, 1);
    if (builder_is(c, "batch_norm_infer")) {
        /* running statistics of the case's own: constants (no gradient
         * flows into fixed statistics) */
        int64_t ch = loom_tensor_dim(g, in[1], 0), rs[2] = {2, ch};
        float r[64];
        for (int64_t i = 0; i < ch; i++) {
            r[i] = 0.3f * (float)i - 0.4f;
            r[ch + i] = 0.5f + 0.25f * (float)i;
        }
        loom_tensor running = loom_constant(g, "running", LOOM_F32, 2, rs, r);
        return loom_batch_norm(g, in[0], in[1], in[2], running, 0.9f, 1e-3f, 0);
    }
    if (builder_is(c, "group_norm"))
        return loom_group_norm(g, in[0], in[1], in[2], attr_ints(c, "g", v, 1) ? (int)v[0] : 1, 1e-5f);
    if (builder_is(c, "concat"))
        return loom_concat(g, c->nin, in, attr_ints(c, "axis", v, 1) ? (int)v[0] : 0);
    if (builder_is(c, "slice")) {
        int64_t st[4], sp[4], se[4];
        attr_ints(c, "start", st, 4);
        attr_ints(c, "stop", sp, 4);
        attr_ints(c, "step", se, 4);
        return loom_slice(g, in[0], st, sp, se);
    }
    if (builder_is(c, "pad")) {
        int64_t lo[4], hi[4];
        attr_ints(c, "lo", lo, 4);
        attr_ints(c, "hi", hi, 4);
        const char *val = strstr(attrs_of(c), "value=");
        return loom_pad(g, in[0], lo, hi, has_word(c, "reflect") ? LOOM_PAD_REFLECT : LOOM_PAD_CONSTANT,
                        val ? strtof(val + 6, NULL) : 0.0f);
    }
    if (builder_is(c, "flatten"))
        return loom_flatten(g, in[0]);
    if (builder_is(c, "spatial_dropout"))
        return loom_spatial_dropout(g, in[0], 0.4f, 99);
    if (builder_is(c, "step_bn_running"))
        return bn_running_step(g, in[0], dt);
    return LOOM_NONE;
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
    if (!strcmp(b, "mlp_relu"))
        return loom_matmul(g, loom_relu(g, loom_matmul(g, in[0], in[1], 0, 0)), in[2], 0, 0);
    if (!strcmp(b, "mlp_sigmoid"))
        return loom_matmul(g, loom_sigmoid(g, loom_matmul(g, in[0], in[1], 0, 0)), in[2], 0, 0);
    /* dense_<act>: act(op(x) op(w) + b); mlp_<act>: act(x w1) w2 */
    if (!strncmp(b, "dense_", 6) && loom_op_by_name(b + 6) != LOOM_OP_NONE)
        return loom_op_elementwise(g, loom_op_by_name(b + 6), 1,
                                   (loom_tensor[]){loom_add(g, loom_matmul(g, in[0], in[1], c->ta, c->tb), in[2])},
                                   c->p1, c->p2);
    if (!strncmp(b, "mlp_", 4) && loom_op_by_name(b + 4) != LOOM_OP_NONE)
        return loom_matmul(g,
                           loom_op_elementwise(g, loom_op_by_name(b + 4), 1,
                                               (loom_tensor[]){loom_matmul(g, in[0], in[1], 0, 0)}, c->p1, c->p2),
                           in[2], 0, 0);
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
    if (builder_is(c, "step_bn_running"))
        return bn_running_step(g, in[0], dt);
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
    return conv_case(g, c, in, dt);
}
