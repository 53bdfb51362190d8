/* Reverse-mode autodiff: gradient nodes appended to the graph, planned and
 * recorded like every other node. */
#include "graph.h"

#include <string.h>

static int grow_grads(loom_graph *g)
{
    if (g->grad_cap >= g->n)
        return 1;
    int ncap = g->n * 2 + 16;
    int32_t *ng = loom_realloc(g->ctx, g->grad, (size_t)g->grad_cap * sizeof *ng, (size_t)ncap * sizeof *ng);
    if (!ng)
        return 0;
    memset(ng + g->grad_cap, 0, (size_t)(ncap - g->grad_cap) * sizeof *ng);
    g->grad = ng;
    g->grad_cap = ncap;
    return 1;
}

static loom_tensor T(int32_t id)
{
    return (loom_tensor){id};
}

static loom_tensor add_node(loom_graph *g, loom_op op, const loom_node *like, int nin, const int32_t *in,
                            const loom_attr *at)
{
    return loom_graph_add(g, op, LOOM_F32, like->ndim, like->shape, nin, in, NULL, at);
}

/* Sums t over the axes along which `target` was broadcast to t's shape. */
static loom_tensor unbroadcast(loom_graph *g, loom_tensor t, const loom_node *target)
{
    loom_node *nt = loom_node_of(g, t);
    if (!nt)
        return LOOM_NONE;
    if (nt->numel == target->numel)
        return nt->ndim == target->ndim ? t : loom_reshape(g, t, target->ndim, target->shape);
    loom_attr at = {0};
    at.rdim = nt->ndim;
    at.alpha = 1.0f;
    for (int i = 0; i < nt->ndim; i++) {
        int k = i - (nt->ndim - target->ndim);
        at.rshape[i] = k >= 0 ? target->shape[k] : 1;
    }
    int32_t in[1] = {t.id};
    return loom_graph_add(g, LOOM_OP_REDUCE_SUM, LOOM_F32, target->ndim, target->shape, 1, in, NULL, &at);
}

static void accumulate(loom_graph *g, int32_t id, loom_tensor t)
{
    if (!t.id || !grow_grads(g)) {
        if (t.id)
            loom_graph_fail(g, LOOM_E_OOM, "loom_backward: out of memory");
        return;
    }
    int32_t *slot = &g->grad[id - 1];
    *slot = *slot ? loom_add(g, T(*slot), t).id : t.id;
}

static loom_tensor unary_grad(loom_graph *g, loom_op op, loom_tensor dy, int32_t v, const loom_node *like)
{
    int32_t in[2] = {dy.id, v};
    return add_node(g, op, like, 2, in, NULL);
}

/* Appends the gradient of node i's inputs, given dy = d loss / d node i. */
static void rule(loom_graph *g, int i, loom_tensor dy)
{
    loom_node nd = g->nodes[i]; /* a copy: adding nodes may move g->nodes */
    int32_t a = nd.nin > 0 ? nd.in[0] : 0, b = nd.nin > 1 ? nd.in[1] : 0;
    int32_t y = i + 1;
    loom_node na = a ? g->nodes[a - 1] : nd, nb = b ? g->nodes[b - 1] : nd;
    switch (nd.op) {
    case LOOM_OP_MATMUL: {
        int ta = nd.attr.ta, tb = nd.attr.tb;
        loom_tensor da, db;
        if (!ta && !tb) {
            da = loom_matmul(g, dy, T(b), 0, 1);
            db = loom_matmul(g, T(a), dy, 1, 0);
        } else if (ta && !tb) {
            da = loom_matmul(g, T(b), dy, 0, 1);
            db = loom_matmul(g, T(a), dy, 0, 0);
        } else if (!ta && tb) {
            da = loom_matmul(g, dy, T(b), 0, 0);
            db = loom_matmul(g, dy, T(a), 1, 0);
        } else {
            da = loom_matmul(g, T(b), dy, 1, 1);
            db = loom_matmul(g, dy, T(a), 1, 1);
        }
        accumulate(g, a, da);
        accumulate(g, b, db);
        break;
    }
    case LOOM_OP_ADD:
        accumulate(g, a, unbroadcast(g, dy, &na));
        accumulate(g, b, unbroadcast(g, dy, &nb));
        break;
    case LOOM_OP_SUB:
        accumulate(g, a, unbroadcast(g, dy, &na));
        accumulate(g, b, unbroadcast(g, loom_scale(g, dy, -1.0f), &nb));
        break;
    case LOOM_OP_MUL:
        accumulate(g, a, unbroadcast(g, loom_mul(g, dy, T(b)), &na));
        accumulate(g, b, unbroadcast(g, loom_mul(g, dy, T(a)), &nb));
        break;
    case LOOM_OP_DIV:
        accumulate(g, a, unbroadcast(g, loom_div(g, dy, T(b)), &na));
        accumulate(g, b, unbroadcast(g, loom_scale(g, loom_div(g, loom_mul(g, dy, T(y)), T(b)), -1.0f), &nb));
        break;
    case LOOM_OP_SCALE: accumulate(g, a, loom_scale(g, dy, nd.attr.alpha)); break;
    case LOOM_OP_RELU: accumulate(g, a, unary_grad(g, LOOM_OP_RELU_GRAD, dy, a, &na)); break;
    case LOOM_OP_SIGMOID: accumulate(g, a, unary_grad(g, LOOM_OP_SIGMOID_GRAD, dy, y, &na)); break;
    case LOOM_OP_TANH: accumulate(g, a, unary_grad(g, LOOM_OP_TANH_GRAD, dy, y, &na)); break;
    case LOOM_OP_GELU: accumulate(g, a, unary_grad(g, LOOM_OP_GELU_GRAD, dy, a, &na)); break;
    case LOOM_OP_EXP: accumulate(g, a, loom_mul(g, dy, T(y))); break;
    case LOOM_OP_LOG: accumulate(g, a, loom_div(g, dy, T(a))); break;
    case LOOM_OP_SQUARE: accumulate(g, a, loom_scale(g, loom_mul(g, dy, T(a)), 2.0f)); break;
    case LOOM_OP_COPY: accumulate(g, a, loom_reshape(g, dy, na.ndim, na.shape)); break;
    case LOOM_OP_SOFTMAX: accumulate(g, a, unary_grad(g, LOOM_OP_SOFTMAX_GRAD, dy, y, &na)); break;
    case LOOM_OP_LOG_SOFTMAX: accumulate(g, a, unary_grad(g, LOOM_OP_LOG_SOFTMAX_GRAD, dy, y, &na)); break;
    case LOOM_OP_REDUCE_SUM: {
        loom_tensor s = nd.attr.alpha != 1.0f ? loom_scale(g, dy, nd.attr.alpha) : dy;
        loom_attr at = {0};
        at.rdim = nd.attr.rdim;
        memcpy(at.rshape, nd.attr.rshape, sizeof at.rshape);
        int32_t in[1] = {s.id};
        accumulate(g, a, s.id ? add_node(g, LOOM_OP_EXPAND, &na, 1, in, &at) : LOOM_NONE);
        break;
    }
    case LOOM_OP_EXPAND: {
        loom_attr at = {0};
        at.rdim = nd.attr.rdim;
        at.alpha = 1.0f;
        memcpy(at.rshape, nd.attr.rshape, sizeof at.rshape);
        int32_t in[1] = {dy.id};
        accumulate(g, a, add_node(g, LOOM_OP_REDUCE_SUM, &na, 1, in, &at));
        break;
    }
    case LOOM_OP_TRANSPOSE: {
        int inv[LOOM_MAX_DIMS];
        for (int k = 0; k < nd.ndim; k++)
            inv[nd.attr.perm[k]] = k;
        accumulate(g, a, loom_transpose(g, dy, inv));
        break;
    }
    case LOOM_OP_SPARSE_XENT: {
        int32_t in[3] = {dy.id, a, b};
        accumulate(g, a, add_node(g, LOOM_OP_SPARSE_XENT_GRAD, &na, 3, in, NULL));
        break;
    }
    case LOOM_OP_DROPOUT: {
        int32_t in[1] = {dy.id};
        accumulate(g, a, add_node(g, LOOM_OP_DROPOUT, &na, 1, in, &nd.attr));
        break;
    }
    case LOOM_OP_ARGMAX:
        break;
    default:
        loom_graph_fail(g, LOOM_E_UNSUPPORTED, "loom_backward: op %s (\"%s\") has no gradient rule",
                        loom_op_name(nd.op), nd.name);
        break;
    }
}

loom_status loom_backward(loom_graph *g, loom_tensor loss, const loom_tensor *wrt, int nwrt)
{
    if (!g)
        return LOOM_E_INVALID;
    if (g->err != LOOM_OK)
        return g->err;
    loom_node *nl = loom_node_of(g, loss);
    if (!nl) {
        loom_graph_fail(g, LOOM_E_INVALID, "loom_backward: the loss is not a tensor of this graph");
        return LOOM_E_INVALID;
    }
    if (nl->numel != 1 || nl->dtype != LOOM_F32) {
        char s[96];
        loom_graph_fail(g, LOOM_E_SHAPE, "loom_backward: the loss \"%s\" must be an f32 scalar, it is %s %s",
                        nl->name, loom_dtype_name(nl->dtype), loom_shape_str(s, sizeof s, nl->ndim, nl->shape));
        return LOOM_E_SHAPE;
    }
    if (g->grad) {
        loom_graph_fail(g, LOOM_E_STATE, "loom_backward: the graph already has gradients");
        return LOOM_E_STATE;
    }
    int n = g->n, L = loss.id - 1;
    unsigned char *want = loom_calloc(g->ctx, (size_t)n, 1);
    if (!want || !grow_grads(g)) {
        loom_free(g->ctx, want, (size_t)n);
        loom_graph_fail(g, LOOM_E_OOM, "loom_backward: out of memory");
        return LOOM_E_OOM;
    }
    /* want[i]: node i depends on a trainable parameter or a wrt tensor, so
     * its gradient is needed. */
    for (int k = 0; k < nwrt; k++)
        if (loom_node_of(g, wrt[k]))
            want[wrt[k].id - 1] = 1;
    for (int i = 0; i < n; i++) {
        const loom_node *nd = &g->nodes[i];
        if (nd->op == LOOM_OP_PARAM && nd->trainable)
            want[i] = 1;
        for (int k = 0; k < nd->nin; k++)
            if (want[nd->in[k] - 1] && nd->dtype == LOOM_F32)
                want[i] = 1;
    }
    loom_tensor one = loom_scalar(g, 1.0f);
    if (one.id)
        g->grad[L] = one.id;
    for (int i = L; i >= 0 && g->err == LOOM_OK; i--) {
        if (!want[i] || !g->grad[i] || g->nodes[i].nin == 0)
            continue;
        rule(g, i, T(g->grad[i]));
    }
    loom_free(g->ctx, want, (size_t)n);
    return g->err;
}

loom_tensor loom_grad(const loom_graph *g, loom_tensor x)
{
    if (!g || !g->grad || x.id <= 0 || x.id > g->grad_cap)
        return LOOM_NONE;
    return T(g->grad[x.id - 1]);
}
