/* The gradient rules of convolutional networks' ops (the op table names
 * them): convolutions, pooling, normalization and the windows. */
#include "autodiff.h"
#include "op_table.h"

#include <string.h>

/* A copy: adding nodes may move g->nodes. */
static loom_node node_at(const loom_graph *g, int32_t id)
{
    return g->nodes[id - 1];
}

/* A node of `like`'s dtype and shape. */
static loom_tensor like(loom_graph *g, loom_op op, const loom_node *shape_of, int nin, const int32_t *in,
                        const loom_attr *at)
{
    return loom_graph_add(g, op, shape_of->dtype, shape_of->ndim, shape_of->shape, nin, in, NULL, at);
}

/* The sum of dy [N, C, ...] over every axis but the channels: [C]. */
static loom_tensor channel_sum(loom_graph *g, loom_tensor dy)
{
    const loom_node *nd = loom_node_of(g, dy);
    if (!nd)
        return LOOM_NONE;
    loom_attr at = {0};
    at.rdim = nd->ndim;
    at.alpha = 1.0f;
    for (int i = 0; i < nd->ndim; i++)
        at.rshape[i] = i == 1 ? nd->shape[1] : 1;
    int64_t shape[1] = {nd->shape[1]};
    int32_t in[1] = {dy.id};
    return loom_graph_add(g, LOOM_OP_REDUCE_SUM, nd->dtype, 1, shape, 1, in, NULL, &at);
}

/* conv2d(x, w) + b: dx is the transpose over dy, dw the filter gradient,
 * db the sum of dy over all but the channels. */
void loom_grad_conv2d(loom_graph *g, int32_t self, loom_tensor dy)
{
    loom_node nd = node_at(g, self), nx = node_at(g, nd.in[0]), nw = node_at(g, nd.in[1]);
    int32_t in_x[2] = {dy.id, nd.in[1]}, in_w[2] = {dy.id, nd.in[0]};
    loom_grad_accumulate(g, nd.in[0], like(g, LOOM_OP_CONV_TRANSPOSE2D, &nx, 2, in_x, &nd.attr));
    loom_grad_accumulate(g, nd.in[1], like(g, LOOM_OP_CONV2D_GRAD_WEIGHT, &nw, 2, in_w, &nd.attr));
    if (nd.nin > 2)
        loom_grad_accumulate(g, nd.in[2], channel_sum(g, dy));
}

/* x = T(y, w) + b: dy is conv2d(dx, w), dw the filter gradient with the
 * roles of the two swapped (T's input is the convolution's output). */
void loom_grad_conv_transpose2d(loom_graph *g, int32_t self, loom_tensor dx)
{
    loom_node nd = node_at(g, self), ny = node_at(g, nd.in[0]), nw = node_at(g, nd.in[1]);
    int32_t in_y[2] = {dx.id, nd.in[1]}, in_w[2] = {nd.in[0], dx.id};
    loom_grad_accumulate(g, nd.in[0], like(g, LOOM_OP_CONV2D, &ny, 2, in_y, &nd.attr));
    loom_grad_accumulate(g, nd.in[1], like(g, LOOM_OP_CONV2D_GRAD_WEIGHT, &nw, 2, in_w, &nd.attr));
    if (nd.nin > 2)
        loom_grad_accumulate(g, nd.in[2], channel_sum(g, dx));
}

void loom_grad_pool(loom_graph *g, int32_t self, loom_tensor dy)
{
    loom_node nd = node_at(g, self), nx = node_at(g, nd.in[0]);
    if (loom_op_def_of(nd.op)->code == LOOM_POOL_MAX) {
        int32_t in[2] = {dy.id, nd.in[0]};
        loom_grad_accumulate(g, nd.in[0], like(g, LOOM_OP_MAX_POOL2D_GRAD, &nx, 2, in, &nd.attr));
    } else {
        int32_t in[1] = {dy.id};
        loom_grad_accumulate(g, nd.in[0], like(g, LOOM_OP_AVG_POOL2D_GRAD, &nx, 1, in, &nd.attr));
    }
}

/* y = xhat gamma + beta with xhat = (x - mean) rstd. With batch statistics
 * the mean and the variance depend on x: NORM_GRAD takes the per-statistic
 * sums of NORM_GRAD_STATS; fixed statistics give dx = gamma rstd dy. */
void loom_grad_norm_apply(loom_graph *g, int32_t self, loom_tensor dy)
{
    loom_node nd = node_at(g, self), nx = node_at(g, nd.in[0]), ns = node_at(g, nd.in[1]);
    int32_t x = nd.in[0], stats = nd.in[1], gamma = nd.in[2], beta = nd.in[3];
    int32_t gs = stats;
    if (!nd.attr.side) {
        int32_t in[4] = {dy.id, x, stats, gamma};
        gs = like(g, LOOM_OP_NORM_GRAD_STATS, &ns, 4, in, &nd.attr).id;
    }
    int32_t in_x[5] = {dy.id, x, stats, gamma, gs};
    loom_grad_accumulate(g, x, gs ? like(g, LOOM_OP_NORM_GRAD, &nx, 5, in_x, &nd.attr) : LOOM_NONE);
    /* both parameters' gradients from one pass over dy and x: [2, C] */
    loom_node ng = node_at(g, gamma);
    int64_t c = ng.shape[0], shape[2] = {2, c};
    int32_t in_g[3] = {dy.id, x, stats};
    loom_tensor both = loom_graph_add(g, LOOM_OP_NORM_DGAMMA, ng.dtype, 2, shape, 3, in_g, NULL, &nd.attr);
    int64_t s0[2] = {0, 0}, e0[2] = {1, c}, s1[2] = {1, 0}, e1[2] = {2, c}, cs[1] = {c};
    loom_grad_accumulate(g, gamma, loom_reshape(g, loom_slice(g, both, s0, e0, NULL), 1, cs));
    loom_grad_accumulate(g, beta, loom_reshape(g, loom_slice(g, both, s1, e1, NULL), 1, cs));
}

void loom_grad_slice(loom_graph *g, int32_t self, loom_tensor dy)
{
    loom_node nd = node_at(g, self), nx = node_at(g, nd.in[0]);
    int32_t in[1] = {dy.id};
    loom_grad_accumulate(g, nd.in[0], like(g, LOOM_OP_SLICE_GRAD, &nx, 1, in, &nd.attr));
}

/* A constant pad's gradient is the slice of dy where x was; a reflecting
 * pad's adds the mirrored positions too. */
void loom_grad_pad(loom_graph *g, int32_t self, loom_tensor dy)
{
    loom_node nd = node_at(g, self), nx = node_at(g, nd.in[0]);
    int32_t in[1] = {dy.id};
    if (nd.attr.wmode == LOOM_PAD_REFLECT) {
        loom_grad_accumulate(g, nd.in[0], like(g, LOOM_OP_PAD_GRAD, &nx, 1, in, &nd.attr));
        return;
    }
    loom_attr at = {0};
    for (int i = 0; i < 4; i++) {
        at.wstart[i] = -nd.attr.wstart[i];
        at.wstep[i] = 1;
    }
    loom_grad_accumulate(g, nd.in[0], like(g, LOOM_OP_SLICE, &nx, 1, in, &at));
}

void loom_grad_concat(loom_graph *g, int32_t self, loom_tensor dy)
{
    loom_node nd = node_at(g, self);
    int64_t off = 0;
    int a4 = nd.attr.axis + (4 - nd.ndim);
    for (int k = 0; k < nd.nin && g->err == LOOM_OK; k++) {
        loom_node nk = node_at(g, nd.in[k]);
        loom_attr at = {0};
        for (int i = 0; i < 4; i++)
            at.wstep[i] = 1;
        at.wstart[a4] = off;
        off += nk.shape[nd.attr.axis];
        int32_t in[1] = {dy.id};
        loom_grad_accumulate(g, nd.in[k], like(g, LOOM_OP_SLICE, &nk, 1, in, &at));
    }
}
