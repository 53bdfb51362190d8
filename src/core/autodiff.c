/* Reverse-mode autodiff: gradient nodes appended to the graph, planned and
 * recorded like every other node. Which rule differentiates an op is the op
 * table's entry; the rules are here. */
#include "autodiff.h"
#include "op_table.h"

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

/* A copy: adding nodes may move g->nodes. */
static loom_node node(const loom_graph *g, int32_t id)
{
    return g->nodes[id - 1];
}

static loom_tensor add_node(loom_graph *g, loom_op op, const loom_node *like, int nin, const int32_t *in,
                            const loom_attr *at)
{
    return loom_graph_add(g, op, like->dtype, like->ndim, like->shape, nin, in, NULL, at);
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
    return loom_graph_add(g, LOOM_OP_REDUCE_SUM, nt->dtype, target->ndim, target->shape, 1, in, NULL, &at);
}

void loom_grad_accumulate(loom_graph *g, int32_t id, loom_tensor t)
{
    if (!t.id || !grow_grads(g)) {
        if (t.id)
            loom_graph_fail(g, LOOM_E_OOM, "loom_backward: out of memory");
        return;
    }
    /* Integer tensors (labels, indices) take no gradient. */
    if (!loom_dtype_is_float(g->nodes[id - 1].dtype))
        return;
    int32_t *slot = &g->grad[id - 1];
    *slot = *slot ? loom_add(g, T(*slot), t).id : t.id;
}

/* ---- element-wise ------------------------------------------------------------ */

void loom_grad_unary(loom_graph *g, int32_t self, loom_tensor dy)
{
    loom_node nd = node(g, self), nx = node(g, nd.in[0]);
    const loom_op_def *def = loom_op_def_of(nd.op);
    loom_attr at = {0};
    at.fwd = nd.op;
    at.p1 = nd.attr.p1;
    at.p2 = nd.attr.p2;
    int32_t in[2] = {dy.id, (def->flags & LOOM_OPF_FROM_Y) ? self : nd.in[0]};
    loom_grad_accumulate(g, nd.in[0], add_node(g, LOOM_OP_UNARY_GRAD, &nx, 2, in, &at));
}

void loom_grad_scale(loom_graph *g, int32_t self, loom_tensor dy)
{
    loom_node nd = node(g, self);
    loom_grad_accumulate(g, nd.in[0], loom_scale(g, dy, nd.attr.p1));
}

void loom_grad_add(loom_graph *g, int32_t self, loom_tensor dy)
{
    loom_node nd = node(g, self), na = node(g, nd.in[0]), nb = node(g, nd.in[1]);
    loom_grad_accumulate(g, nd.in[0], unbroadcast(g, dy, &na));
    loom_grad_accumulate(g, nd.in[1], unbroadcast(g, dy, &nb));
}

void loom_grad_sub(loom_graph *g, int32_t self, loom_tensor dy)
{
    loom_node nd = node(g, self), na = node(g, nd.in[0]), nb = node(g, nd.in[1]);
    loom_grad_accumulate(g, nd.in[0], unbroadcast(g, dy, &na));
    loom_grad_accumulate(g, nd.in[1], unbroadcast(g, loom_neg(g, dy), &nb));
}

void loom_grad_mul(loom_graph *g, int32_t self, loom_tensor dy)
{
    loom_node nd = node(g, self), na = node(g, nd.in[0]), nb = node(g, nd.in[1]);
    loom_grad_accumulate(g, nd.in[0], unbroadcast(g, loom_mul(g, dy, T(nd.in[1])), &na));
    loom_grad_accumulate(g, nd.in[1], unbroadcast(g, loom_mul(g, dy, T(nd.in[0])), &nb));
}

void loom_grad_div(loom_graph *g, int32_t self, loom_tensor dy)
{
    loom_node nd = node(g, self), na = node(g, nd.in[0]), nb = node(g, nd.in[1]);
    loom_tensor b = T(nd.in[1]);
    loom_grad_accumulate(g, nd.in[0], unbroadcast(g, loom_div(g, dy, b), &na));
    loom_grad_accumulate(g, nd.in[1], unbroadcast(g, loom_neg(g, loom_div(g, loom_mul(g, dy, T(self)), b)), &nb));
}

/* A derivative kernel per operand, at the output's shape, then reduced
 * onto the operand's shape. */
void loom_grad_binary(loom_graph *g, int32_t self, loom_tensor dy)
{
    loom_node nd = node(g, self);
    for (int side = 0; side < 2; side++) {
        loom_node operand = node(g, nd.in[side]);
        loom_attr at = {0};
        at.fwd = nd.op;
        at.side = side;
        int32_t in[3] = {dy.id, nd.in[0], nd.in[1]};
        loom_tensor d = add_node(g, LOOM_OP_BINARY_GRAD, &nd, 3, in, &at);
        loom_grad_accumulate(g, nd.in[side], unbroadcast(g, d, &operand));
    }
}

/* A zero of t's dtype: all bits zero in every float format. */
static loom_tensor zero_like(loom_graph *g, const loom_node *t)
{
    static const uint32_t zero = 0;
    return loom_constant(g, NULL, t->dtype, 0, NULL, &zero);
}

void loom_grad_where(loom_graph *g, int32_t self, loom_tensor dy)
{
    loom_node nd = node(g, self), na = node(g, nd.in[1]), nb = node(g, nd.in[2]);
    loom_tensor cond = T(nd.in[0]), z = zero_like(g, &nd);
    loom_grad_accumulate(g, nd.in[1], unbroadcast(g, loom_where(g, cond, dy, z), &na));
    loom_grad_accumulate(g, nd.in[2], unbroadcast(g, loom_where(g, cond, z, dy), &nb));
}

void loom_grad_cast(loom_graph *g, int32_t self, loom_tensor dy)
{
    loom_node nd = node(g, self), nx = node(g, nd.in[0]);
    if (loom_dtype_is_float(nx.dtype) && loom_dtype_is_float(nd.dtype))
        loom_grad_accumulate(g, nd.in[0], loom_cast(g, dy, nx.dtype));
}

/* ---- linear algebra and layout --------------------------------------------------- */

void loom_grad_matmul(loom_graph *g, int32_t self, loom_tensor dy)
{
    loom_node nd = node(g, self);
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
    loom_grad_accumulate(g, nd.in[0], da);
    loom_grad_accumulate(g, nd.in[1], db);
}

void loom_grad_reshape(loom_graph *g, int32_t self, loom_tensor dy)
{
    loom_node nd = node(g, self), na = node(g, nd.in[0]);
    loom_grad_accumulate(g, nd.in[0], loom_reshape(g, dy, na.ndim, na.shape));
}

void loom_grad_expand(loom_graph *g, int32_t self, loom_tensor dy)
{
    loom_node nd = node(g, self), na = node(g, nd.in[0]);
    loom_attr at = {0};
    at.rdim = nd.attr.rdim;
    at.alpha = 1.0f;
    memcpy(at.rshape, nd.attr.rshape, sizeof at.rshape);
    int32_t in[1] = {dy.id};
    loom_grad_accumulate(g, nd.in[0], add_node(g, LOOM_OP_REDUCE_SUM, &na, 1, in, &at));
}

void loom_grad_transpose(loom_graph *g, int32_t self, loom_tensor dy)
{
    loom_node nd = node(g, self);
    int inv[LOOM_MAX_DIMS];
    for (int k = 0; k < nd.ndim; k++)
        inv[nd.attr.perm[k]] = k;
    loom_grad_accumulate(g, nd.in[0], loom_transpose(g, dy, inv));
}

/* ---- rows and reductions ---------------------------------------------------------- */

void loom_grad_softmax(loom_graph *g, int32_t self, loom_tensor dy)
{
    loom_node nd = node(g, self), nx = node(g, nd.in[0]);
    loom_attr at = {0};
    at.axis = nd.attr.axis;
    int32_t in[2] = {dy.id, self};
    loom_op op = loom_op_def_of(nd.op)->code == LOOM_SOFTMAX_LOG ? LOOM_OP_LOG_SOFTMAX_GRAD : LOOM_OP_SOFTMAX_GRAD;
    loom_grad_accumulate(g, nd.in[0], add_node(g, op, &nx, 2, in, &at));
}

void loom_grad_reduce_sum(loom_graph *g, int32_t self, loom_tensor dy)
{
    loom_node nd = node(g, self), na = node(g, nd.in[0]);
    loom_tensor s = nd.attr.alpha != 1.0f ? loom_scale(g, dy, nd.attr.alpha) : dy;
    loom_attr at = {0};
    at.rdim = nd.attr.rdim;
    memcpy(at.rshape, nd.attr.rshape, sizeof at.rshape);
    int32_t in[1] = {s.id};
    loom_grad_accumulate(g, nd.in[0], s.id ? add_node(g, LOOM_OP_EXPAND, &na, 1, in, &at) : LOOM_NONE);
}

void loom_grad_reduce_arg(loom_graph *g, int32_t self, loom_tensor dy)
{
    loom_node nd = node(g, self), nx = node(g, nd.in[0]);
    loom_attr at = {0};
    at.axis = nd.attr.axis;
    int32_t in[2] = {dy.id, nd.in[0]};
    loom_op op = loom_op_def_of(nd.op)->code == LOOM_REDUCE_MIN ? LOOM_OP_REDUCE_MIN_GRAD : LOOM_OP_REDUCE_MAX_GRAD;
    loom_grad_accumulate(g, nd.in[0], add_node(g, op, &nx, 2, in, &at));
}

void loom_grad_xent(loom_graph *g, int32_t self, loom_tensor dy)
{
    loom_node nd = node(g, self), nz = node(g, nd.in[0]);
    int32_t in[3] = {dy.id, nd.in[0], nd.in[1]};
    loom_grad_accumulate(g, nd.in[0], add_node(g, LOOM_OP_SPARSE_XENT_GRAD, &nz, 3, in, NULL));
}

void loom_grad_dropout(loom_graph *g, int32_t self, loom_tensor dy)
{
    loom_node nd = node(g, self), nx = node(g, nd.in[0]);
    int32_t in[1] = {dy.id};
    loom_grad_accumulate(g, nd.in[0], add_node(g, LOOM_OP_DROPOUT, &nx, 1, in, &nd.attr));
}

loom_tensor loom_grad_unbroadcast(loom_graph *g, loom_tensor t, const loom_node *target)
{
    return unbroadcast(g, t, target);
}

/* ---- the pass ------------------------------------------------------------------------- */

static void rule(loom_graph *g, int i, loom_tensor dy)
{
    const loom_node *nd = &g->nodes[i];
    const loom_op_def *def = loom_op_def_of(nd->op);
    if (def->grad)
        def->grad(g, i + 1, dy);
    else if (!(def->flags & LOOM_OPF_NONDIFF))
        loom_graph_fail(g, LOOM_E_UNSUPPORTED, "loom_backward: op %s (\"%s\") has no gradient rule", def->name,
                        nd->name);
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
    if (nl->numel != 1 || !loom_dtype_is_float(nl->dtype)) {
        char s[96];
        loom_graph_fail(g, LOOM_E_SHAPE, "loom_backward: the loss \"%s\" must be a float scalar, it is %s %s",
                        nl->name, loom_dtype_name(nl->dtype), loom_shape_str(s, sizeof s, nl->ndim, nl->shape));
        return LOOM_E_SHAPE;
    }
    if (g->grad) {
        loom_graph_fail(g, LOOM_E_STATE, "loom_backward: the graph already has gradients");
        return LOOM_E_STATE;
    }
    int n = g->n, L = loss.id - 1;
    loom_dtype loss_dt = nl->dtype;
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
            if (want[nd->in[k] - 1] && loom_dtype_is_float(nd->dtype))
                want[i] = 1;
    }
    /* The seed: d loss / d loss = 1, or the run's loss scale. */
    loom_tensor seed;
    if (g->loss_scaling) {
        seed = loom_graph_add(g, LOOM_OP_LOSS_SCALE, LOOM_F32, 0, NULL, 0, NULL, "loss_scale", NULL);
        if (seed.id && loss_dt != LOOM_F32)
            seed = loom_cast(g, seed, loss_dt);
    } else {
        static const float one = 1.0f;
        uint16_t h = loss_dt == LOOM_F16 ? loom_f32_to_f16(1) : loom_f32_to_bf16(1);
        seed = loom_constant(g, NULL, loss_dt, 0, NULL, loss_dt == LOOM_F32 ? (const void *)&one : (const void *)&h);
    }
    if (seed.id)
        g->grad[L] = seed.id;
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

loom_status loom_set_grad(loom_graph *g, loom_tensor param, loom_tensor grad)
{
    if (!g)
        return LOOM_E_INVALID;
    if (g->err != LOOM_OK)
        return g->err;
    loom_node *np = loom_node_of(g, param), *ng = loom_node_of(g, grad);
    if (!np || !ng) {
        loom_graph_fail(g, LOOM_E_INVALID, "loom_set_grad: the %s is not a tensor of this graph",
                        np ? "gradient" : "parameter");
        return LOOM_E_INVALID;
    }
    if (np->op != LOOM_OP_PARAM || !np->trainable) {
        loom_graph_fail(g, LOOM_E_INVALID, "loom_set_grad: \"%s\" is not a trainable parameter", np->name);
        return LOOM_E_INVALID;
    }
    if (ng->numel != np->numel || ng->ndim != np->ndim || memcmp(ng->shape, np->shape, sizeof np->shape[0] * (size_t)np->ndim) ||
        !loom_dtype_is_float(ng->dtype)) {
        char a[96], b[96];
        loom_graph_fail(g, LOOM_E_SHAPE, "loom_set_grad: the gradient \"%s\" (%s %s) does not fit \"%s\" (%s %s)",
                        ng->name, loom_dtype_name(ng->dtype), loom_shape_str(a, sizeof a, ng->ndim, ng->shape),
                        np->name, loom_dtype_name(np->dtype), loom_shape_str(b, sizeof b, np->ndim, np->shape));
        return LOOM_E_SHAPE;
    }
    if (g->has_opt) {
        loom_graph_fail(g, LOOM_E_STATE, "loom_set_grad: the graph already has an optimizer");
        return LOOM_E_STATE;
    }
    if (!grow_grads(g)) {
        loom_graph_fail(g, LOOM_E_OOM, "loom_set_grad: out of memory");
        return LOOM_E_OOM;
    }
    if (g->grad[param.id - 1]) {
        loom_graph_fail(g, LOOM_E_STATE, "loom_set_grad: \"%s\" has a gradient already", np->name);
        return LOOM_E_STATE;
    }
    g->grad[param.id - 1] = grad.id;
    return LOOM_OK;
}

loom_loss_scaling loom_loss_scaling_default(void)
{
    loom_loss_scaling ls = {65536.0f, 2.0f, 0.5f, 2000};
    return ls;
}

loom_status loom_backward_scaled(loom_graph *g, loom_tensor loss, const loom_tensor *wrt, int nwrt,
                                 const loom_loss_scaling *ls)
{
    if (!g)
        return LOOM_E_INVALID;
    loom_loss_scaling p = ls ? *ls : loom_loss_scaling_default();
    if (!(p.init > 0 && p.growth >= 1 && p.backoff > 0 && p.backoff < 1 && p.interval > 0)) {
        loom_graph_fail(g, LOOM_E_INVALID,
                        "loom_backward_scaled: bad policy (init %g, growth %g, backoff %g, interval %lld)",
                        (double)p.init, (double)p.growth, (double)p.backoff, (long long)p.interval);
        return LOOM_E_INVALID;
    }
    g->loss_scaling = 1;
    g->scaling = p;
    return loom_backward(g, loss, wrt, nwrt);
}
