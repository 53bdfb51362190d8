/* The gradient rules of the sequence-model ops (the op table names them).
 * Each appends the gradient nodes of node `self` given dy and accumulates
 * them into its inputs' gradients. */
#include "autodiff.h"
#include "op_table.h"

#include <string.h>

static loom_tensor T(int32_t id)
{
    return (loom_tensor){id};
}

/* A copy: adding nodes may move g->nodes. */
static loom_node node(const loom_graph *g, int32_t id)
{
    return g->nodes[id - 1];
}

static loom_tensor add_like(loom_graph *g, loom_op op, const loom_node *like, int nin, const int32_t *in,
                            const loom_attr *at)
{
    return loom_graph_add(g, op, like->dtype, like->ndim, like->shape, nin, in, NULL, at);
}

/* The 2-D rule, through loom_matmul (which batches where it must), then
 * each operand's gradient summed over the batch dims it was broadcast
 * along. */
void loom_grad_batch_matmul(loom_graph *g, int32_t self, loom_tensor dy)
{
    loom_node nd = node(g, self), na = node(g, nd.in[0]), nb = node(g, nd.in[1]);
    loom_tensor a = T(nd.in[0]), b = T(nd.in[1]), da, db;
    int ta = nd.attr.ta, tb = nd.attr.tb;
    if (!ta && !tb) {
        da = loom_matmul(g, dy, b, 0, 1);
        db = loom_matmul(g, a, dy, 1, 0);
    } else if (ta && !tb) {
        da = loom_matmul(g, b, dy, 0, 1);
        db = loom_matmul(g, a, dy, 0, 0);
    } else if (!ta && tb) {
        da = loom_matmul(g, dy, b, 0, 0);
        db = loom_matmul(g, dy, a, 1, 0);
    } else {
        da = loom_matmul(g, b, dy, 1, 1);
        db = loom_matmul(g, dy, a, 1, 1);
    }
    loom_grad_accumulate(g, nd.in[0], loom_grad_unbroadcast(g, da, &na));
    loom_grad_accumulate(g, nd.in[1], loom_grad_unbroadcast(g, db, &nb));
}

/* dx from the gradient kernel (which recomputes the row statistics);
 * dgamma = sum over rows of dy * xhat, dbeta = the sum of dy, with xhat the
 * same norm without its affine part. */
void loom_grad_norm(loom_graph *g, int32_t self, loom_tensor dy)
{
    loom_node nd = node(g, self), nx = node(g, nd.in[0]);
    int code = loom_op_def_of(nd.op)->code;
    loom_op grad_op = code == LOOM_LNORM_RMS ? LOOM_OP_RMS_NORM_GRAD : LOOM_OP_LAYER_NORM_GRAD;
    loom_attr at = {0};
    at.norm_eps = nd.attr.norm_eps;
    at.affine = nd.attr.affine & 1;
    int32_t in[3] = {dy.id, nd.in[0], (nd.attr.affine & 1) ? nd.in[1] : 0};
    loom_grad_accumulate(g, nd.in[0], add_like(g, grad_op, &nx, (nd.attr.affine & 1) ? 3 : 2, in, &at));
    if (nd.attr.affine & 1) {
        loom_attr plain = {0};
        plain.norm_eps = nd.attr.norm_eps;
        int32_t xin[1] = {nd.in[0]};
        loom_tensor xhat = add_like(g, nd.op, &nx, 1, xin, &plain);
        loom_node ng = node(g, nd.in[1]);
        loom_grad_accumulate(g, nd.in[1], loom_grad_unbroadcast(g, loom_mul(g, dy, xhat), &ng));
    }
    if (nd.attr.affine & 2) {
        loom_node nb = node(g, nd.in[2]);
        loom_grad_accumulate(g, nd.in[2], loom_grad_unbroadcast(g, dy, &nb));
    }
}

/* take and gather: the scatter-add of dy by the same indices. */
static void grad_index(loom_graph *g, int32_t self, loom_tensor dy, loom_op scatter)
{
    loom_node nd = node(g, self), nx = node(g, nd.in[0]);
    loom_attr at = {0};
    at.axis = nd.attr.axis;
    int32_t in[2] = {dy.id, nd.in[1]};
    loom_grad_accumulate(g, nd.in[0], add_like(g, scatter, &nx, 2, in, &at));
}

void loom_grad_take(loom_graph *g, int32_t self, loom_tensor dy)
{
    grad_index(g, self, dy, LOOM_OP_TAKE_GRAD);
}

void loom_grad_gather(loom_graph *g, int32_t self, loom_tensor dy)
{
    grad_index(g, self, dy, LOOM_OP_SCATTER_ADD);
}

/* d src = dy gathered where src was scattered to. */
void loom_grad_scatter_add(loom_graph *g, int32_t self, loom_tensor dy)
{
    loom_node nd = node(g, self);
    loom_grad_accumulate(g, nd.in[0], loom_gather(g, dy, nd.attr.axis, T(nd.in[1])));
}

/* A rotation's gradient is the rotation back. */
void loom_grad_rope(loom_graph *g, int32_t self, loom_tensor dy)
{
    loom_node nd = node(g, self);
    loom_attr at = nd.attr;
    at.rope_inverse = !at.rope_inverse;
    int32_t in[1] = {dy.id};
    loom_grad_accumulate(g, nd.in[0], add_like(g, LOOM_OP_ROPE, &nd, 1, in, &at));
}

/* 1 if node id depends on a trainable parameter. */
static int needs_grad(loom_graph *g, int32_t id)
{
    unsigned char *seen = loom_calloc(g->ctx, (size_t)g->n, 1);
    int32_t *stack = loom_malloc(g->ctx, (size_t)g->n * sizeof *stack);
    int found = 0, top = 0;
    if (!seen || !stack) {
        found = 1; /* refuse rather than guess */
        goto out;
    }
    stack[top++] = id;
    seen[id - 1] = 1;
    while (top && !found) {
        const loom_node *nd = &g->nodes[stack[--top] - 1];
        if (nd->op == LOOM_OP_PARAM && nd->trainable && loom_dtype_is_float(nd->dtype))
            found = 1;
        for (int k = 0; k < nd->nin; k++)
            if (!seen[nd->in[k] - 1]) {
                seen[nd->in[k] - 1] = 1;
                stack[top++] = nd->in[k];
            }
    }
out:
    loom_free(g->ctx, seen, (size_t)g->n);
    loom_free(g->ctx, stack, (size_t)g->n * sizeof *stack);
    return found;
}

/* Flash attention's backward pass: the row statistics (logsumexp, and
 * sum(do * o)) recomputed in one pass, then dq, dk and dv, each
 * recomputing the scores tile by tile. */
void loom_grad_attention(loom_graph *g, int32_t self, loom_tensor dy)
{
    loom_node nd = node(g, self), nq = node(g, nd.in[0]), nk = node(g, nd.in[1]), nv = node(g, nd.in[2]);
    int has_mask = nd.attr.has_mask;
    if (has_mask && needs_grad(g, nd.in[3])) {
        loom_graph_fail(g, LOOM_E_UNSUPPORTED, "loom_backward: attention \"%s\": its mask \"%s\" depends on a trainable "
                        "parameter, and the fused attention gives the mask no gradient (use "
                        "loom_attention_reference)", nd.name, node(g, nd.in[3]).name);
        return;
    }
    int bnhd = nd.attr.layout == LOOM_ATTN_BNHD;
    int64_t st[4] = {nq.shape[0], nq.shape[bnhd ? 2 : 1], nq.shape[bnhd ? 1 : 2], 2};
    int32_t sin[5] = {nd.in[0], nd.in[1], self, dy.id, has_mask ? nd.in[3] : 0};
    loom_tensor stats = loom_graph_add(g, LOOM_OP_ATTENTION_STATS, LOOM_F32, 4, st, has_mask ? 5 : 4, sin, NULL,
                                       &nd.attr);
    int32_t gin[6] = {dy.id, nd.in[0], nd.in[1], nd.in[2], stats.id, has_mask ? nd.in[3] : 0};
    int n = has_mask ? 6 : 5;
    if (!stats.id)
        return;
    loom_grad_accumulate(g, nd.in[0], add_like(g, LOOM_OP_ATTENTION_GRAD_Q, &nq, n, gin, &nd.attr));
    loom_grad_accumulate(g, nd.in[1], add_like(g, LOOM_OP_ATTENTION_GRAD_K, &nk, n, gin, &nd.attr));
    loom_grad_accumulate(g, nd.in[2], add_like(g, LOOM_OP_ATTENTION_GRAD_V, &nv, n, gin, &nd.attr));
}
