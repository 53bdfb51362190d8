/* The builders and folders the op table (onnx_table.c) names, and the
 * helpers they share. Builders read the node being built (ox_in, ox_attr_*)
 * and set its outputs (ox_set, ox_set_const). */
#ifndef LOOM_ONNX_OPS_H
#define LOOM_ONNX_OPS_H

#include "onnx_internal.h"

/* reductions over several axes (ox_reduce_keep) */
enum { OX_RED_SUM = 0, OX_RED_MEAN = 1, OX_RED_MAX = 2, OX_RED_MIN = 3 };

/* The float dtype v computes in (f32 for integers and f32 masks). */
loom_dtype ox_float_dt(ox *b, const ox_val *v);
/* Input i (required) as a float tensor of its compute dtype. */
loom_status ox_in_float(ox *b, int i, loom_tensor *t, loom_dtype *dt, ox_val **v);
/* Input i known at load as integers (at most max); *n = -1 when absent. */
loom_status ox_known_ints(ox *b, int i, int64_t *out, int max, int *n, const char *what);
/* Input i known at load as one number; def when absent. */
loom_status ox_known_float(ox *b, int i, double def, double *out, int *present);
/* t under another shape (itself when the shape is its own). */
loom_status ox_reshape(ox *b, loom_tensor t, int nd, const int64_t *shape, loom_tensor *out);
/* One reduction (OX_RED_*) over sorted axes, keeping them as size 1. */
loom_tensor ox_reduce_keep(ox *b, loom_tensor x, const int *axes, int n, int kind);
/* numpy's matmul of two tensors. */
loom_status ox_matmul_nd(ox *b, loom_tensor a, loom_tensor bm, int type);
/* out[..., j, ...] = sum_i x[..., i, ...] w[i * m + j] along axis (+ bias[j]). */
loom_status ox_axis_matrix(ox *b, loom_tensor x, int axis, const float *w, int64_t m, const float *bias,
                           loom_tensor *out);
/* out[..., j, ...] = x[..., idx[j], ...] along axis, fill where idx[j] is
 * outside [0, n): Slice, Gather with known indices, Concat, Pad, Tile. */
loom_status ox_axis_map(ox *b, loom_tensor x, int axis, const int64_t *idx, int64_t m, double fill,
                        loom_tensor *out);

/* The tensors joined along axis (Concat at run time). */
loom_status ox_concat(ox *b, int n, const loom_tensor *ts, int axis, loom_tensor *out);
/* [start, start + len) along axis. */
loom_status ox_slice_axis(ox *b, loom_tensor x, int axis, int64_t start, int64_t len, loom_tensor *out);

/* builders */
loom_status oxb_abs(ox *b);
loom_status oxb_add(ox *b);
loom_status oxb_and(ox *b);
loom_status oxb_argmax(ox *b);
loom_status oxb_argmin(ox *b);
loom_status oxb_batch_norm(ox *b);
loom_status oxb_cast(ox *b);
loom_status oxb_cast_like(ox *b);
loom_status oxb_ceil(ox *b);
loom_status oxb_celu(ox *b);
loom_status oxb_clip(ox *b);
loom_status oxb_concat(ox *b);
loom_status oxb_constant(ox *b);
loom_status oxb_constant_of_shape(ox *b);
loom_status oxb_cumsum(ox *b);
loom_status oxb_div(ox *b);
loom_status oxb_dropout(ox *b);
loom_status oxb_elu(ox *b);
loom_status oxb_equal(ox *b);
loom_status oxb_erf(ox *b);
loom_status oxb_exp(ox *b);
loom_status oxb_expand(ox *b);
loom_status oxb_eye_like(ox *b);
loom_status oxb_flatten(ox *b);
loom_status oxb_floor(ox *b);
loom_status oxb_gather(ox *b);
loom_status oxb_gelu(ox *b);
loom_status oxb_gemm(ox *b);
loom_status oxb_global_avg_pool(ox *b);
loom_status oxb_global_max_pool(ox *b);
loom_status oxb_greater(ox *b);
loom_status oxb_gru(ox *b);
loom_status oxb_greater_equal(ox *b);
loom_status oxb_group_norm(ox *b);
loom_status oxb_group_norm18(ox *b);
loom_status oxb_hard_sigmoid(ox *b);
loom_status oxb_hard_swish(ox *b);
loom_status oxb_hardmax(ox *b);
loom_status oxb_identity(ox *b);
loom_status oxb_instance_norm(ox *b);
loom_status oxb_is_inf(ox *b);
loom_status oxb_is_nan(ox *b);
loom_status oxb_layer_norm(ox *b);
loom_status oxb_leaky_relu(ox *b);
loom_status oxb_less(ox *b);
loom_status oxb_less_equal(ox *b);
loom_status oxb_log(ox *b);
loom_status oxb_log_softmax(ox *b);
loom_status oxb_lstm(ox *b);
loom_status oxb_lp_norm(ox *b);
loom_status oxb_matmul(ox *b);
loom_status oxb_max(ox *b);
loom_status oxb_mean(ox *b);
loom_status oxb_min(ox *b);
loom_status oxb_mish(ox *b);
loom_status oxb_mod(ox *b);
loom_status oxb_mul(ox *b);
loom_status oxb_mvn(ox *b);
loom_status oxb_neg(ox *b);
loom_status oxb_not(ox *b);
loom_status oxb_one_hot(ox *b);
loom_status oxb_or(ox *b);
loom_status oxb_pad(ox *b);
loom_status oxb_pow(ox *b);
loom_status oxb_prelu(ox *b);
loom_status oxb_range(ox *b);
loom_status oxb_reciprocal(ox *b);
loom_status oxb_reduce_l1(ox *b);
loom_status oxb_reduce_l1_attr(ox *b);
loom_status oxb_reduce_l2(ox *b);
loom_status oxb_reduce_l2_attr(ox *b);
loom_status oxb_reduce_log_sum(ox *b);
loom_status oxb_reduce_log_sum_attr(ox *b);
loom_status oxb_reduce_log_sum_exp(ox *b);
loom_status oxb_reduce_log_sum_exp_attr(ox *b);
loom_status oxb_reduce_max(ox *b);
loom_status oxb_reduce_max_attr(ox *b);
loom_status oxb_reduce_mean(ox *b);
loom_status oxb_reduce_mean_attr(ox *b);
loom_status oxb_reduce_min(ox *b);
loom_status oxb_reduce_min_attr(ox *b);
loom_status oxb_reduce_prod(ox *b);
loom_status oxb_reduce_prod_attr(ox *b);
loom_status oxb_reduce_sum(ox *b);
loom_status oxb_reduce_sum_attr(ox *b);
loom_status oxb_reduce_sum_square(ox *b);
loom_status oxb_reduce_sum_square_attr(ox *b);
loom_status oxb_relu(ox *b);
loom_status oxb_rnn(ox *b);
loom_status oxb_reshape(ox *b);
loom_status oxb_rms_norm(ox *b);
loom_status oxb_round(ox *b);
loom_status oxb_selu(ox *b);
loom_status oxb_shape(ox *b);
loom_status oxb_shrink(ox *b);
loom_status oxb_sigmoid(ox *b);
loom_status oxb_sign(ox *b);
loom_status oxb_size(ox *b);
loom_status oxb_slice(ox *b);
loom_status oxb_softmax(ox *b);
loom_status oxb_softplus(ox *b);
loom_status oxb_softsign(ox *b);
loom_status oxb_split(ox *b);
loom_status oxb_split18(ox *b);
loom_status oxb_sqrt(ox *b);
loom_status oxb_squeeze(ox *b);
loom_status oxb_sub(ox *b);
loom_status oxb_sum(ox *b);
loom_status oxb_swish(ox *b);
loom_status oxb_tanh(ox *b);
loom_status oxb_thresholded_relu(ox *b);
loom_status oxb_tile(ox *b);
loom_status oxb_transpose(ox *b);
loom_status oxb_trilu(ox *b);
loom_status oxb_unsqueeze(ox *b);
loom_status oxb_where(ox *b);
loom_status oxb_xor(ox *b);

#ifdef LOOM_ONNX_CNN
loom_status oxb_conv(ox *b);
loom_status oxb_conv_transpose(ox *b);
loom_status oxb_max_pool(ox *b);
loom_status oxb_avg_pool(ox *b);
#endif
#ifdef LOOM_ONNX_SEQ
loom_status oxb_attention(ox *b);
#endif

/* folders (every input known at load) */
loom_status oxf_abs(ox *b);
loom_status oxf_add(ox *b);
loom_status oxf_and(ox *b);
loom_status oxf_cast(ox *b);
loom_status oxf_cast_like(ox *b);
loom_status oxf_ceil(ox *b);
loom_status oxf_div(ox *b);
loom_status oxf_equal(ox *b);
loom_status oxf_floor(ox *b);
loom_status oxf_greater(ox *b);
loom_status oxf_greater_equal(ox *b);
loom_status oxf_less(ox *b);
loom_status oxf_less_equal(ox *b);
loom_status oxf_max(ox *b);
loom_status oxf_mean(ox *b);
loom_status oxf_min(ox *b);
loom_status oxf_mod(ox *b);
loom_status oxf_mul(ox *b);
loom_status oxf_neg(ox *b);
loom_status oxf_not(ox *b);
loom_status oxf_or(ox *b);
loom_status oxf_pow(ox *b);
loom_status oxf_reciprocal(ox *b);
loom_status oxf_reduce_max(ox *b);
loom_status oxf_reduce_max_attr(ox *b);
loom_status oxf_reduce_min(ox *b);
loom_status oxf_reduce_min_attr(ox *b);
loom_status oxf_reduce_prod(ox *b);
loom_status oxf_reduce_prod_attr(ox *b);
loom_status oxf_reduce_sum(ox *b);
loom_status oxf_relu(ox *b);
loom_status oxf_round(ox *b);
loom_status oxf_sign(ox *b);
loom_status oxf_sqrt(ox *b);
loom_status oxf_sub(ox *b);
loom_status oxf_sum(ox *b);
loom_status oxf_where(ox *b);
loom_status oxf_xor(ox *b);

#endif
