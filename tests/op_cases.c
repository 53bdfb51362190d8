#include "op_cases.h"

#define S1(a) {a}
#define S2(a, b) {a, b}
#define S3(a, b, c) {a, b, c}
#define S4(a, b, c, d) {a, b, c, d}

/* Shapes include 1, 7, 33, 127, 1000 and 1023 and sizes that are not a
 * multiple of any tile. */
const op_case op_cases[] = {
    /* name                kind        nin ndim   shapes                          lo  hi  ta tb ax kd alpha perm atol rtol bwd */
    {"matmul_nn_1x1x1", K_MATMUL, 2, {2, 2}, {S2(1, 1), S2(1, 1)}, -1, 1, 0, 0, 0, 0, 0, {0}, 1e-5, 1e-4, 1},
    {"matmul_nn_7x33x127", K_MATMUL, 2, {2, 2}, {S2(7, 33), S2(33, 127)}, -1, 1, 0, 0, 0, 0, 0, {0}, 1e-4, 1e-4, 1},
    {"matmul_nt_33x7x65", K_MATMUL, 2, {2, 2}, {S2(33, 7), S2(65, 7)}, -1, 1, 0, 1, 0, 0, 0, {0}, 1e-4, 1e-4, 1},
    {"matmul_tn_64x100x10", K_MATMUL, 2, {2, 2}, {S2(100, 64), S2(100, 10)}, -1, 1, 1, 0, 0, 0, 0, {0}, 1e-4, 1e-4, 1},
    {"matmul_tt_17x31x23", K_MATMUL, 2, {2, 2}, {S2(31, 17), S2(23, 31)}, -1, 1, 1, 1, 0, 0, 0, {0}, 1e-4, 1e-4, 1},
    {"matmul_k1", K_MATMUL, 2, {2, 2}, {S2(127, 1), S2(1, 33)}, -1, 1, 0, 0, 0, 0, 0, {0}, 1e-5, 1e-4, 1},
    {"matmul_mlp_256x784x64", K_MATMUL, 2, {2, 2}, {S2(256, 784), S2(784, 64)}, 0, 1, 0, 0, 0, 0, 0, {0}, 1e-3, 1e-4, 1},
    {"matmul_k4097", K_MATMUL, 2, {2, 2}, {S2(3, 4097), S2(4097, 5)}, -1, 1, 0, 0, 0, 0, 0, {0}, 1e-3, 1e-3, 0},
    {"matmul_1000x1023x7", K_MATMUL, 2, {2, 2}, {S2(1000, 7), S2(7, 1023)}, -1, 1, 0, 0, 0, 0, 0, {0}, 1e-4, 1e-4, 0},

    {"add_same_1023", K_ADD, 2, {1, 1}, {S1(1023), S1(1023)}, -2, 2, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-6, 1},
    {"add_row_bias", K_ADD, 2, {2, 1}, {S2(33, 127), S1(127)}, -2, 2, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1},
    {"add_col", K_ADD, 2, {2, 2}, {S2(7, 1), S2(7, 33)}, -2, 2, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1},
    {"add_outer", K_ADD, 2, {2, 2}, {S2(7, 1), S2(1, 33)}, -2, 2, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1},
    {"add_4d", K_ADD, 2, {4, 3}, {S4(2, 3, 5, 7), S3(3, 1, 7)}, -2, 2, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1},
    {"add_scalar", K_ADD, 2, {2, 0}, {S2(7, 33), {0}}, -2, 2, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1},
    {"sub_bcast", K_SUB, 2, {2, 1}, {S2(127, 33), S1(33)}, -2, 2, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1},
    {"mul_bcast", K_MUL, 2, {3, 2}, {S3(5, 7, 33), S2(7, 1)}, -2, 2, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1},
    {"div_same", K_DIV, 2, {2, 2}, {S2(33, 31), S2(33, 31)}, 0.5f, 2, 0, 0, 0, 0, 0, {0}, 1e-5, 1e-5, 1},
    {"div_bcast", K_DIV, 2, {2, 1}, {S2(7, 1000), S1(1000)}, 0.5f, 2, 0, 0, 0, 0, 0, {0}, 1e-5, 1e-5, 1},

    {"scale_1000", K_SCALE, 1, {1}, {S1(1000)}, -2, 2, 0, 0, 0, 0, -0.75f, {0}, 1e-6, 1e-6, 1},
    {"relu_127x33", K_RELU, 1, {2}, {S2(127, 33)}, -2, 2, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-6, 1},
    {"sigmoid_1023", K_SIGMOID, 1, {1}, {S1(1023)}, -6, 6, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1},
    {"tanh_1023", K_TANH, 1, {1}, {S1(1023)}, -4, 4, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1},
    {"gelu_1023", K_GELU, 1, {1}, {S1(1023)}, -4, 4, 0, 0, 0, 0, 0, {0}, 1e-5, 1e-4, 1},
    {"exp_7x7", K_EXP, 1, {2}, {S2(7, 7)}, -3, 3, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1},
    {"log_33", K_LOG, 1, {1}, {S1(33)}, 0.1f, 5, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1},
    {"square_1", K_SQUARE, 1, {1}, {S1(1)}, -2, 2, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-6, 1},

    {"softmax_7x10", K_SOFTMAX, 1, {2}, {S2(7, 10)}, -5, 5, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1},
    {"softmax_1x1023", K_SOFTMAX, 1, {2}, {S2(1, 1023)}, -5, 5, 0, 0, 0, 0, 0, {0}, 1e-7, 1e-4, 1},
    {"softmax_3d", K_SOFTMAX, 1, {3}, {S3(3, 5, 33)}, -5, 5, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-5, 1},
    {"log_softmax_33x127", K_LOG_SOFTMAX, 1, {2}, {S2(33, 127)}, -5, 5, 0, 0, 0, 0, 0, {0}, 1e-5, 1e-5, 1},

    {"sum_axis0", K_SUM, 1, {2}, {S2(1000, 7)}, -1, 1, 0, 0, 0, 0, 0, {0}, 1e-4, 1e-4, 1},
    {"sum_axis1_keep", K_SUM, 1, {2}, {S2(7, 1023)}, -1, 1, 0, 0, 1, 1, 0, {0}, 1e-4, 1e-4, 1},
    {"sum_axis1_4d", K_SUM, 1, {4}, {S4(2, 3, 5, 7)}, -1, 1, 0, 0, 1, 0, 0, {0}, 1e-5, 1e-4, 1},
    {"mean_last", K_MEAN, 1, {3}, {S3(3, 7, 33)}, -1, 1, 0, 0, -1, 0, 0, {0}, 1e-6, 1e-4, 1},
    {"sum_all_1023x7", K_SUM_ALL, 1, {2}, {S2(1023, 7)}, -1, 1, 0, 0, 0, 0, 0, {0}, 1e-3, 1e-4, 1},
    {"argmax_last", K_ARGMAX, 1, {2}, {S2(127, 10)}, -1, 1, 0, 0, 1, 0, 0, {0}, 0, 0, 0},
    {"argmax_axis0", K_ARGMAX, 1, {3}, {S3(7, 5, 3)}, -1, 1, 0, 0, 0, 0, 0, {0}, 0, 0, 0},

    {"reshape_2d_3d", K_RESHAPE, 1, {2}, {S2(6, 35)}, -1, 1, 0, 0, 0, 0, 0, {0}, 0, 0, 1},
    {"transpose_2d", K_TRANSPOSE, 1, {2}, {S2(33, 127)}, -1, 1, 0, 0, 0, 0, 0, {1, 0}, 0, 0, 1},
    {"transpose_4d", K_TRANSPOSE, 1, {4}, {S4(2, 3, 5, 7)}, -1, 1, 0, 0, 0, 0, 0, {2, 0, 3, 1}, 0, 0, 1},

    {"sparse_xent_32x10", K_SPARSE_XENT, 2, {2, 1}, {S2(32, 10), S1(32)}, -4, 4, 0, 0, 0, 0, 0, {0}, 1e-5, 1e-4, 1},
    {"sparse_xent_1x1023", K_SPARSE_XENT, 2, {2, 1}, {S2(1, 1023), S1(1)}, -4, 4, 0, 0, 0, 0, 0, {0}, 1e-5, 1e-4, 1},
    {"xent_7x33", K_XENT, 2, {2, 2}, {S2(7, 33), S2(7, 33)}, 0, 1, 0, 0, 0, 0, 0, {0}, 1e-5, 1e-4, 1},
    {"mse_127x3", K_MSE, 2, {2, 2}, {S2(127, 3), S2(127, 3)}, -1, 1, 0, 0, 0, 0, 0, {0}, 1e-6, 1e-4, 1},
    {"dropout_1000", K_DROPOUT, 1, {2}, {S2(1000, 7)}, -1, 1, 0, 0, 0, 0, 0.3f, {0}, 1e-6, 1e-6, 1},
};

const int op_case_count = (int)(sizeof op_cases / sizeof op_cases[0]);

loom_tensor op_case_build(loom_graph *g, const op_case *c, loom_tensor *in)
{
    switch (c->kind) {
    case K_MATMUL: return loom_matmul(g, in[0], in[1], c->ta, c->tb);
    case K_ADD: return loom_add(g, in[0], in[1]);
    case K_SUB: return loom_sub(g, in[0], in[1]);
    case K_MUL: return loom_mul(g, in[0], in[1]);
    case K_DIV: return loom_div(g, in[0], in[1]);
    case K_SCALE: return loom_scale(g, in[0], c->alpha);
    case K_RELU: return loom_relu(g, in[0]);
    case K_SIGMOID: return loom_sigmoid(g, in[0]);
    case K_TANH: return loom_tanh(g, in[0]);
    case K_GELU: return loom_gelu(g, in[0]);
    case K_EXP: return loom_exp(g, in[0]);
    case K_LOG: return loom_log(g, in[0]);
    case K_SQUARE: return loom_square(g, in[0]);
    case K_SOFTMAX: return loom_softmax(g, in[0]);
    case K_LOG_SOFTMAX: return loom_log_softmax(g, in[0]);
    case K_SUM: return loom_sum(g, in[0], c->axis, c->keepdim);
    case K_MEAN: return loom_mean(g, in[0], c->axis, c->keepdim);
    case K_SUM_ALL: return loom_sum_all(g, in[0]);
    case K_ARGMAX: return loom_argmax(g, in[0], c->axis);
    case K_RESHAPE: {
        int64_t s[3] = {5, -1, 6};
        return loom_reshape(g, in[0], 3, s);
    }
    case K_TRANSPOSE: return loom_transpose(g, in[0], c->perm);
    case K_SPARSE_XENT: return loom_sparse_cross_entropy(g, in[0], in[1]);
    case K_XENT: return loom_cross_entropy(g, in[0], in[1]);
    case K_MSE: return loom_mse(g, in[0], in[1]);
    case K_DROPOUT: return loom_dropout(g, in[0], c->alpha, 1234);
    }
    return LOOM_NONE;
}
