/* The gradient rules the op table names (autodiff.c). Each appends the
 * gradient nodes of node `self` given dy = d loss / d self and accumulates
 * them into its inputs' gradients. */
#ifndef LOOM_AUTODIFF_H
#define LOOM_AUTODIFF_H

#include "graph.h"

/* Adds t to the gradient of node id (the sum of every path's). */
void loom_grad_accumulate(loom_graph *g, int32_t id, loom_tensor t);

void loom_grad_unary(loom_graph *g, int32_t self, loom_tensor dy);
void loom_grad_scale(loom_graph *g, int32_t self, loom_tensor dy);
void loom_grad_add(loom_graph *g, int32_t self, loom_tensor dy);
void loom_grad_sub(loom_graph *g, int32_t self, loom_tensor dy);
void loom_grad_mul(loom_graph *g, int32_t self, loom_tensor dy);
void loom_grad_div(loom_graph *g, int32_t self, loom_tensor dy);
void loom_grad_binary(loom_graph *g, int32_t self, loom_tensor dy);
void loom_grad_where(loom_graph *g, int32_t self, loom_tensor dy);
void loom_grad_cast(loom_graph *g, int32_t self, loom_tensor dy);
void loom_grad_matmul(loom_graph *g, int32_t self, loom_tensor dy);
void loom_grad_reshape(loom_graph *g, int32_t self, loom_tensor dy);
void loom_grad_expand(loom_graph *g, int32_t self, loom_tensor dy);
void loom_grad_transpose(loom_graph *g, int32_t self, loom_tensor dy);
void loom_grad_softmax(loom_graph *g, int32_t self, loom_tensor dy);
void loom_grad_reduce_sum(loom_graph *g, int32_t self, loom_tensor dy);
void loom_grad_reduce_arg(loom_graph *g, int32_t self, loom_tensor dy);
void loom_grad_xent(loom_graph *g, int32_t self, loom_tensor dy);
void loom_grad_dropout(loom_graph *g, int32_t self, loom_tensor dy);

/* convolutional networks (autodiff_conv.c) */
void loom_grad_conv2d(loom_graph *g, int32_t self, loom_tensor dy);
void loom_grad_conv_transpose2d(loom_graph *g, int32_t self, loom_tensor dy);
void loom_grad_pool(loom_graph *g, int32_t self, loom_tensor dy);
void loom_grad_norm_apply(loom_graph *g, int32_t self, loom_tensor dy);
void loom_grad_slice(loom_graph *g, int32_t self, loom_tensor dy);
void loom_grad_pad(loom_graph *g, int32_t self, loom_tensor dy);
void loom_grad_concat(loom_graph *g, int32_t self, loom_tensor dy);

/* t summed over the axes along which target was broadcast to t's shape. */
loom_tensor loom_grad_unbroadcast(loom_graph *g, loom_tensor t, const loom_node *target);

/* the sequence ops' rules (autodiff_seq.c) */
void loom_grad_batch_matmul(loom_graph *g, int32_t self, loom_tensor dy);
void loom_grad_norm(loom_graph *g, int32_t self, loom_tensor dy);
void loom_grad_take(loom_graph *g, int32_t self, loom_tensor dy);
void loom_grad_gather(loom_graph *g, int32_t self, loom_tensor dy);
void loom_grad_scatter_add(loom_graph *g, int32_t self, loom_tensor dy);
void loom_grad_rope(loom_graph *g, int32_t self, loom_tensor dy);
void loom_grad_attention(loom_graph *g, int32_t self, loom_tensor dy);

#endif
