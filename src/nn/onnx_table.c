/* The ONNX op table: one row per op type and opset range of the model,
 * naming the builder that makes the op out of loom's public graph API and,
 * where one exists, the folder that computes it at load when every input
 * is known. Rows are sorted by op type; types names the element types of
 * input 0 the builder takes (0: it checks them itself).
 *
 * Rows under LOOM_ONNX_CNN / LOOM_ONNX_SEQ map ops onto loom's CNN and
 * sequence-model APIs (meson defines them when loom.h declares
 * loom_conv2d / loom_layer_norm). LSTM, GRU and RNN are unrolled over the
 * sequence (onnx_ops_rnn.c). */
#include "onnx_ops.h"

#include <string.h>

const ox_op ox_ops[] = {
    {"Abs", 13, 27, oxb_abs, oxf_abs, OX_NUMS},
    {"Add", 13, 27, oxb_add, oxf_add, OX_NUMS},
    {"And", 13, 27, oxb_and, oxf_and, OX_T(LOOM_ONNX_BOOL)},
    {"ArgMax", 13, 27, oxb_argmax, NULL, OX_NUMS},
    {"ArgMin", 13, 27, oxb_argmin, NULL, OX_NUMS},
#ifdef LOOM_ONNX_SEQ
    {"Attention", 23, 27, oxb_attention, NULL, OX_FLOATS},
#endif
#ifdef LOOM_ONNX_CNN
    {"AveragePool", 13, 27, oxb_avg_pool, NULL, OX_FLOATS},
#endif
    {"BatchNormalization", 13, 27, oxb_batch_norm, NULL, OX_FLOATS},
    {"Cast", 13, 27, oxb_cast, oxf_cast, OX_ALL},
    {"CastLike", 15, 27, oxb_cast_like, oxf_cast_like, OX_ALL},
    {"Ceil", 13, 27, oxb_ceil, oxf_ceil, OX_FLOATS},
    {"Celu", 13, 27, oxb_celu, NULL, OX_FLOATS},
    {"Clip", 13, 27, oxb_clip, NULL, OX_NUMS},
    {"Concat", 13, 27, oxb_concat, NULL, OX_ALL},
    {"Constant", 13, 27, oxb_constant, NULL, 0},
    {"ConstantOfShape", 13, 27, oxb_constant_of_shape, NULL, OX_NUMS},
#ifdef LOOM_ONNX_CNN
    {"Conv", 13, 27, oxb_conv, NULL, OX_FLOATS},
#endif
#ifdef LOOM_ONNX_CNN
    {"ConvTranspose", 13, 27, oxb_conv_transpose, NULL, OX_FLOATS},
#endif
    {"CumSum", 13, 27, oxb_cumsum, NULL, OX_NUMS},
    {"Div", 13, 27, oxb_div, oxf_div, OX_NUMS},
    {"Dropout", 13, 27, oxb_dropout, NULL, OX_FLOATS},
    {"Elu", 13, 27, oxb_elu, NULL, OX_FLOATS},
    {"Equal", 13, 27, oxb_equal, oxf_equal, OX_ALL},
    {"Erf", 13, 27, oxb_erf, NULL, OX_FLOATS},
    {"Exp", 13, 27, oxb_exp, NULL, OX_FLOATS},
    {"Expand", 13, 27, oxb_expand, NULL, OX_ALL},
    {"EyeLike", 13, 27, oxb_eye_like, NULL, OX_ALL},
    {"Flatten", 13, 27, oxb_flatten, NULL, OX_ALL},
    {"Floor", 13, 27, oxb_floor, oxf_floor, OX_FLOATS},
    {"GRU", 13, 27, oxb_gru, NULL, OX_FLOATS},
    {"Gather", 13, 27, oxb_gather, NULL, OX_ALL},
    {"Gelu", 20, 27, oxb_gelu, NULL, OX_FLOATS},
    {"Gemm", 13, 27, oxb_gemm, NULL, OX_FLOATS},
    {"GlobalAveragePool", 13, 27, oxb_global_avg_pool, NULL, OX_FLOATS},
    {"GlobalMaxPool", 13, 27, oxb_global_max_pool, NULL, OX_FLOATS},
    {"Greater", 13, 27, oxb_greater, oxf_greater, OX_ALL},
    {"GreaterOrEqual", 13, 27, oxb_greater_equal, oxf_greater_equal, OX_ALL},
    {"GroupNormalization", 18, 20, oxb_group_norm18, NULL, OX_FLOATS},
    {"GroupNormalization", 21, 27, oxb_group_norm, NULL, OX_FLOATS},
    {"HardSigmoid", 13, 27, oxb_hard_sigmoid, NULL, OX_FLOATS},
    {"HardSwish", 14, 27, oxb_hard_swish, NULL, OX_FLOATS},
    {"Hardmax", 13, 27, oxb_hardmax, NULL, OX_FLOATS},
    {"Identity", 13, 27, oxb_identity, NULL, OX_ALL},
    {"InstanceNormalization", 13, 27, oxb_instance_norm, NULL, OX_FLOATS},
    {"IsInf", 13, 27, oxb_is_inf, NULL, OX_FLOATS},
    {"IsNaN", 13, 27, oxb_is_nan, NULL, OX_FLOATS},
    {"LSTM", 13, 27, oxb_lstm, NULL, OX_FLOATS},
    {"LayerNormalization", 17, 27, oxb_layer_norm, NULL, OX_FLOATS},
    {"LeakyRelu", 13, 27, oxb_leaky_relu, NULL, OX_FLOATS},
    {"Less", 13, 27, oxb_less, oxf_less, OX_ALL},
    {"LessOrEqual", 13, 27, oxb_less_equal, oxf_less_equal, OX_ALL},
    {"Log", 13, 27, oxb_log, NULL, OX_FLOATS},
    {"LogSoftmax", 13, 27, oxb_log_softmax, NULL, OX_FLOATS},
    {"LpNormalization", 13, 27, oxb_lp_norm, NULL, OX_FLOATS},
    {"MatMul", 13, 27, oxb_matmul, NULL, OX_NUMS},
    {"Max", 13, 27, oxb_max, oxf_max, OX_NUMS},
#ifdef LOOM_ONNX_CNN
    {"MaxPool", 13, 27, oxb_max_pool, NULL, OX_FLOATS},
#endif
    {"Mean", 13, 27, oxb_mean, oxf_mean, OX_FLOATS},
    {"MeanVarianceNormalization", 13, 27, oxb_mvn, NULL, OX_FLOATS},
    {"Min", 13, 27, oxb_min, oxf_min, OX_NUMS},
    {"Mish", 18, 27, oxb_mish, NULL, OX_FLOATS},
    {"Mod", 13, 27, oxb_mod, oxf_mod, OX_NUMS},
    {"Mul", 13, 27, oxb_mul, oxf_mul, OX_NUMS},
    {"Neg", 13, 27, oxb_neg, oxf_neg, OX_NUMS},
    {"Not", 13, 27, oxb_not, oxf_not, OX_T(LOOM_ONNX_BOOL)},
    {"OneHot", 13, 27, oxb_one_hot, NULL, OX_NUMS},
    {"Or", 13, 27, oxb_or, oxf_or, OX_T(LOOM_ONNX_BOOL)},
    {"PRelu", 13, 27, oxb_prelu, NULL, OX_FLOATS},
    {"Pad", 13, 27, oxb_pad, NULL, OX_ALL},
    {"Pow", 13, 27, oxb_pow, oxf_pow, OX_NUMS},
    {"RNN", 13, 27, oxb_rnn, NULL, OX_FLOATS},
    {"Range", 13, 27, oxb_range, NULL, OX_NUMS},
    {"Reciprocal", 13, 27, oxb_reciprocal, oxf_reciprocal, OX_FLOATS},
    {"ReduceL1", 13, 17, oxb_reduce_l1_attr, NULL, OX_NUMS},
    {"ReduceL1", 18, 27, oxb_reduce_l1, NULL, OX_NUMS},
    {"ReduceL2", 13, 17, oxb_reduce_l2_attr, NULL, OX_NUMS},
    {"ReduceL2", 18, 27, oxb_reduce_l2, NULL, OX_NUMS},
    {"ReduceLogSum", 13, 17, oxb_reduce_log_sum_attr, NULL, OX_NUMS},
    {"ReduceLogSum", 18, 27, oxb_reduce_log_sum, NULL, OX_NUMS},
    {"ReduceLogSumExp", 13, 17, oxb_reduce_log_sum_exp_attr, NULL, OX_NUMS},
    {"ReduceLogSumExp", 18, 27, oxb_reduce_log_sum_exp, NULL, OX_NUMS},
    {"ReduceMax", 13, 17, oxb_reduce_max_attr, oxf_reduce_max_attr, OX_ALL},
    {"ReduceMax", 18, 27, oxb_reduce_max, oxf_reduce_max, OX_ALL},
    {"ReduceMean", 13, 17, oxb_reduce_mean_attr, NULL, OX_NUMS},
    {"ReduceMean", 18, 27, oxb_reduce_mean, NULL, OX_NUMS},
    {"ReduceMin", 13, 17, oxb_reduce_min_attr, oxf_reduce_min_attr, OX_ALL},
    {"ReduceMin", 18, 27, oxb_reduce_min, oxf_reduce_min, OX_ALL},
    {"ReduceProd", 13, 17, oxb_reduce_prod_attr, oxf_reduce_prod_attr, OX_NUMS},
    {"ReduceProd", 18, 27, oxb_reduce_prod, oxf_reduce_prod, OX_NUMS},
    {"ReduceSum", 13, 27, oxb_reduce_sum, oxf_reduce_sum, OX_NUMS},
    {"ReduceSumSquare", 13, 17, oxb_reduce_sum_square_attr, NULL, OX_NUMS},
    {"ReduceSumSquare", 18, 27, oxb_reduce_sum_square, NULL, OX_NUMS},
    {"Relu", 13, 27, oxb_relu, oxf_relu, OX_NUMS},
    {"Reshape", 13, 27, oxb_reshape, NULL, OX_ALL},
    {"Round", 13, 27, oxb_round, oxf_round, OX_FLOATS},
    {"Selu", 13, 27, oxb_selu, NULL, OX_FLOATS},
    {"Shape", 13, 27, oxb_shape, NULL, OX_ALL},
    {"Shrink", 13, 27, oxb_shrink, NULL, OX_NUMS},
    {"Sigmoid", 13, 27, oxb_sigmoid, NULL, OX_FLOATS},
    {"Sign", 13, 27, oxb_sign, oxf_sign, OX_NUMS},
    {"Size", 13, 27, oxb_size, NULL, OX_ALL},
    {"Slice", 13, 27, oxb_slice, NULL, OX_ALL},
    {"Softmax", 13, 27, oxb_softmax, NULL, OX_FLOATS},
    {"Softplus", 13, 27, oxb_softplus, NULL, OX_FLOATS},
    {"Softsign", 13, 27, oxb_softsign, NULL, OX_FLOATS},
    {"Split", 13, 17, oxb_split, NULL, OX_ALL},
    {"Split", 18, 27, oxb_split18, NULL, OX_ALL},
    {"Sqrt", 13, 27, oxb_sqrt, oxf_sqrt, OX_FLOATS},
    {"Squeeze", 13, 27, oxb_squeeze, NULL, OX_ALL},
    {"Sub", 13, 27, oxb_sub, oxf_sub, OX_NUMS},
    {"Sum", 13, 27, oxb_sum, oxf_sum, OX_NUMS},
    {"Swish", 24, 27, oxb_swish, NULL, OX_FLOATS},
    {"Tanh", 13, 27, oxb_tanh, NULL, OX_FLOATS},
    {"ThresholdedRelu", 13, 27, oxb_thresholded_relu, NULL, OX_FLOATS},
    {"Tile", 13, 27, oxb_tile, NULL, OX_ALL},
    {"Transpose", 13, 27, oxb_transpose, NULL, OX_ALL},
    {"Trilu", 14, 27, oxb_trilu, NULL, OX_NUMS},
    {"Unsqueeze", 13, 27, oxb_unsqueeze, NULL, OX_ALL},
    {"Where", 13, 27, oxb_where, oxf_where, OX_T(LOOM_ONNX_BOOL)},
    {"Xor", 13, 27, oxb_xor, oxf_xor, OX_T(LOOM_ONNX_BOOL)},
};

const int ox_nops = (int)(sizeof ox_ops / sizeof ox_ops[0]);

const ox_op *ox_find_op(const char *op_type, int64_t opset, int *known)
{
    /* binary search for the first row of op_type */
    int lo = 0, hi = ox_nops;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (strcmp(ox_ops[mid].op_type, op_type) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *known = 0;
    for (int i = lo; i < ox_nops && !strcmp(ox_ops[i].op_type, op_type); i++) {
        *known = 1;
        if (opset >= ox_ops[i].since && opset <= ox_ops[i].until)
            return &ox_ops[i];
    }
    return NULL;
}

int loom_onnx_supports(const char *op_type, int64_t opset)
{
    int known;
    return op_type && ox_find_op(op_type, opset, &known) != NULL;
}
