/* Op constructors: shape and dtype inference. A bad shape sets the graph's
 * sticky error (naming the op and the shapes) and returns LOOM_NONE. */
#include "graph.h"
#include "../common/checked.h"

#include <string.h>

#define SHAPE(buf, nd) loom_shape_str(buf, sizeof buf, (nd)->ndim, (nd)->shape)

static int valid_shape(loom_graph *g, const char *op, const char *name, int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > LOOM_MAX_DIMS || (ndim && !shape)) {
        loom_graph_fail(g, LOOM_E_SHAPE, "%s \"%s\": %d dims (0 to %d allowed)", op, name ? name : "?", ndim,
                        LOOM_MAX_DIMS);
        return 0;
    }
    char b[96];
    for (int i = 0; i < ndim; i++)
        if (shape[i] <= 0) {
            loom_graph_fail(g, LOOM_E_SHAPE, "%s \"%s\": shape %s has a dim <= 0", op, name ? name : "?",
                            loom_shape_str(b, sizeof b, ndim, shape));
            return 0;
        }
    /* Every later size is numel * element size: it must fit. */
    if (loom_shape_bytes(ndim, shape, 8, NULL, NULL)) {
        loom_graph_fail(g, LOOM_E_SHAPE, "%s \"%s\": shape %s has more elements than a tensor can hold", op,
                        name ? name : "?", loom_shape_str(b, sizeof b, ndim, shape));
        return 0;
    }
    return 1;
}

static loom_tensor leaf(loom_graph *g, loom_op op, loom_role role, const char *what, const char *name,
                        loom_dtype dt, int ndim, const int64_t *shape)
{
    if (!g || g->err != LOOM_OK)
        return LOOM_NONE;
    if (!name || !*name)
        return loom_graph_fail(g, LOOM_E_INVALID, "%s: a name is required", what);
    if (dt != LOOM_F32 && dt != LOOM_I32)
        return loom_graph_fail(g, LOOM_E_DTYPE, "%s \"%s\": dtype %s is not supported yet (f32, i32)", what, name,
                               loom_dtype_name(dt));
    if (!valid_shape(g, what, name, ndim, shape))
        return LOOM_NONE;
    if (loom_graph_find(g, name).id)
        return loom_graph_fail(g, LOOM_E_INVALID, "%s: the name \"%s\" is already used in this graph", what, name);
    loom_tensor t = loom_graph_add(g, op, dt, ndim, shape, 0, NULL, name, NULL);
    loom_node *nd = loom_node_of(g, t);
    if (nd)
        nd->role = role;
    return t;
}

loom_tensor loom_input(loom_graph *g, const char *name, loom_dtype dt, int ndim, const int64_t *shape)
{
    return leaf(g, LOOM_OP_INPUT, LOOM_ROLE_INPUT, "loom_input", name, dt, ndim, shape);
}

loom_tensor loom_param(loom_graph *g, const char *name, loom_dtype dt, int ndim, const int64_t *shape,
                       int trainable)
{
    loom_tensor t = leaf(g, LOOM_OP_PARAM, LOOM_ROLE_PARAM, "loom_param", name, dt, ndim, shape);
    loom_node *nd = loom_node_of(g, t);
    if (nd)
        nd->trainable = trainable && dt == LOOM_F32;
    return t;
}

loom_tensor loom_constant(loom_graph *g, const char *name, loom_dtype dt, int ndim, const int64_t *shape,
                          const void *data)
{
    char gen[48];
    if (g && !name) {
        snprintf(gen, sizeof gen, "const_%d", g->n + 1);
        name = gen;
    }
    if (g && g->err == LOOM_OK && !data)
        return loom_graph_fail(g, LOOM_E_INVALID, "loom_constant \"%s\": NULL data", name);
    loom_tensor t = leaf(g, LOOM_OP_CONST, LOOM_ROLE_CONST, "loom_constant", name, dt, ndim, shape);
    loom_node *nd = loom_node_of(g, t);
    if (!nd)
        return t;
    size_t bytes = (size_t)nd->numel * loom_dtype_size(dt);
    nd->data = loom_malloc(g->ctx, bytes);
    if (!nd->data)
        return loom_graph_fail(g, LOOM_E_OOM, "loom_constant \"%s\": out of memory for %zu bytes", name, bytes);
    memcpy(nd->data, data, bytes);
    return t;
}

loom_tensor loom_scalar(loom_graph *g, float value)
{
    return loom_constant(g, NULL, LOOM_F32, 0, NULL, &value);
}

static int want_f32(loom_graph *g, const char *op, loom_tensor t)
{
    loom_node *nd = loom_node_of(g, t);
    if (nd->dtype != LOOM_F32) {
        loom_graph_fail(g, LOOM_E_DTYPE, "%s: input \"%s\" is %s, expected f32", op, nd->name,
                        loom_dtype_name(nd->dtype));
        return 0;
    }
    return 1;
}

loom_tensor loom_matmul(loom_graph *g, loom_tensor a, loom_tensor b, int ta, int tb)
{
    loom_tensor ins[2] = {a, b};
    if (!loom_graph_check_inputs(g, "matmul", 2, ins) || !want_f32(g, "matmul", a) || !want_f32(g, "matmul", b))
        return LOOM_NONE;
    loom_node *na = loom_node_of(g, a), *nb = loom_node_of(g, b);
    char sa[96], sb[96];
    if (na->ndim != 2 || nb->ndim != 2)
        return loom_graph_fail(g, LOOM_E_SHAPE, "matmul: operands must be 2-D, got %s and %s", SHAPE(sa, na),
                               SHAPE(sb, nb));
    int64_t m = ta ? na->shape[1] : na->shape[0], ka = ta ? na->shape[0] : na->shape[1];
    int64_t kb = tb ? nb->shape[1] : nb->shape[0], n = tb ? nb->shape[0] : nb->shape[1];
    if (ka != kb)
        return loom_graph_fail(g, LOOM_E_SHAPE,
                               "matmul: inner dims differ: %s%s x %s%s (K %lld vs %lld)", SHAPE(sa, na),
                               ta ? "^T" : "", SHAPE(sb, nb), tb ? "^T" : "", (long long)ka, (long long)kb);
    loom_attr at = {0};
    at.ta = !!ta;
    at.tb = !!tb;
    int64_t shape[2] = {m, n};
    int32_t in[2] = {a.id, b.id};
    return loom_graph_add(g, LOOM_OP_MATMUL, LOOM_F32, 2, shape, 2, in, NULL, &at);
}

static loom_tensor binary(loom_graph *g, loom_op op, loom_tensor a, loom_tensor b)
{
    const char *name = loom_op_name(op);
    loom_tensor ins[2] = {a, b};
    if (!loom_graph_check_inputs(g, name, 2, ins) || !want_f32(g, name, a) || !want_f32(g, name, b))
        return LOOM_NONE;
    loom_node *na = loom_node_of(g, a), *nb = loom_node_of(g, b);
    int64_t shape[LOOM_MAX_DIMS];
    int nd;
    char sa[96], sb[96];
    if (!loom_broadcast_shape(na->ndim, na->shape, nb->ndim, nb->shape, &nd, shape))
        return loom_graph_fail(g, LOOM_E_SHAPE, "%s: shapes %s and %s do not broadcast", name, SHAPE(sa, na),
                               SHAPE(sb, nb));
    int32_t in[2] = {a.id, b.id};
    return loom_graph_add(g, op, LOOM_F32, nd, shape, 2, in, NULL, NULL);
}

loom_tensor loom_add(loom_graph *g, loom_tensor a, loom_tensor b) { return binary(g, LOOM_OP_ADD, a, b); }
loom_tensor loom_sub(loom_graph *g, loom_tensor a, loom_tensor b) { return binary(g, LOOM_OP_SUB, a, b); }
loom_tensor loom_mul(loom_graph *g, loom_tensor a, loom_tensor b) { return binary(g, LOOM_OP_MUL, a, b); }
loom_tensor loom_div(loom_graph *g, loom_tensor a, loom_tensor b) { return binary(g, LOOM_OP_DIV, a, b); }

static loom_tensor unary(loom_graph *g, loom_op op, loom_tensor x, float alpha)
{
    const char *name = loom_op_name(op);
    if (!loom_graph_check_inputs(g, name, 1, &x) || !want_f32(g, name, x))
        return LOOM_NONE;
    loom_node *nx = loom_node_of(g, x);
    loom_attr at = {0};
    at.alpha = alpha;
    int32_t in[1] = {x.id};
    return loom_graph_add(g, op, LOOM_F32, nx->ndim, nx->shape, 1, in, NULL, &at);
}

loom_tensor loom_scale(loom_graph *g, loom_tensor x, float alpha) { return unary(g, LOOM_OP_SCALE, x, alpha); }
loom_tensor loom_relu(loom_graph *g, loom_tensor x) { return unary(g, LOOM_OP_RELU, x, 0); }
loom_tensor loom_sigmoid(loom_graph *g, loom_tensor x) { return unary(g, LOOM_OP_SIGMOID, x, 0); }
loom_tensor loom_tanh(loom_graph *g, loom_tensor x) { return unary(g, LOOM_OP_TANH, x, 0); }
loom_tensor loom_gelu(loom_graph *g, loom_tensor x) { return unary(g, LOOM_OP_GELU, x, 0); }
loom_tensor loom_exp(loom_graph *g, loom_tensor x) { return unary(g, LOOM_OP_EXP, x, 0); }
loom_tensor loom_log(loom_graph *g, loom_tensor x) { return unary(g, LOOM_OP_LOG, x, 0); }
loom_tensor loom_square(loom_graph *g, loom_tensor x) { return unary(g, LOOM_OP_SQUARE, x, 0); }

static loom_tensor last_axis(loom_graph *g, loom_op op, loom_tensor x)
{
    const char *name = loom_op_name(op);
    if (!loom_graph_check_inputs(g, name, 1, &x) || !want_f32(g, name, x))
        return LOOM_NONE;
    if (loom_node_of(g, x)->ndim < 1)
        return loom_graph_fail(g, LOOM_E_SHAPE, "%s: input \"%s\" is a scalar; it needs a last axis", name,
                               loom_node_of(g, x)->name);
    return unary(g, op, x, 0);
}

loom_tensor loom_softmax(loom_graph *g, loom_tensor x) { return last_axis(g, LOOM_OP_SOFTMAX, x); }
loom_tensor loom_log_softmax(loom_graph *g, loom_tensor x) { return last_axis(g, LOOM_OP_LOG_SOFTMAX, x); }

static int norm_axis(loom_graph *g, const char *op, const loom_node *nx, int axis)
{
    int a = axis < 0 ? axis + nx->ndim : axis;
    if (a < 0 || a >= nx->ndim) {
        char s[96];
        loom_graph_fail(g, LOOM_E_SHAPE, "%s: axis %d out of range for \"%s\" %s", op, axis, nx->name,
                        SHAPE(s, nx));
        return -1;
    }
    return a;
}

static loom_tensor reduce(loom_graph *g, const char *op, loom_tensor x, int axis, int keepdim, int mean)
{
    if (!loom_graph_check_inputs(g, op, 1, &x) || !want_f32(g, op, x))
        return LOOM_NONE;
    loom_node *nx = loom_node_of(g, x);
    int a = norm_axis(g, op, nx, axis);
    if (a < 0)
        return LOOM_NONE;
    loom_attr at = {0};
    at.rdim = nx->ndim;
    for (int i = 0; i < nx->ndim; i++)
        at.rshape[i] = i == a ? 1 : nx->shape[i];
    at.alpha = mean ? 1.0f / (float)nx->shape[a] : 1.0f;
    int64_t shape[LOOM_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < nx->ndim; i++)
        if (i != a || keepdim)
            shape[nd++] = at.rshape[i];
    int32_t in[1] = {x.id};
    return loom_graph_add(g, LOOM_OP_REDUCE_SUM, LOOM_F32, nd, shape, 1, in, NULL, &at);
}

loom_tensor loom_sum(loom_graph *g, loom_tensor x, int axis, int keepdim) { return reduce(g, "sum", x, axis, keepdim, 0); }
loom_tensor loom_mean(loom_graph *g, loom_tensor x, int axis, int keepdim) { return reduce(g, "mean", x, axis, keepdim, 1); }

loom_tensor loom_sum_all(loom_graph *g, loom_tensor x)
{
    if (!loom_graph_check_inputs(g, "sum_all", 1, &x) || !want_f32(g, "sum_all", x))
        return LOOM_NONE;
    loom_node *nx = loom_node_of(g, x);
    loom_attr at = {0};
    at.rdim = nx->ndim;
    for (int i = 0; i < nx->ndim; i++)
        at.rshape[i] = 1;
    at.alpha = 1.0f;
    int32_t in[1] = {x.id};
    return loom_graph_add(g, LOOM_OP_REDUCE_SUM, LOOM_F32, 0, NULL, 1, in, NULL, &at);
}

loom_tensor loom_argmax(loom_graph *g, loom_tensor x, int axis)
{
    if (!loom_graph_check_inputs(g, "argmax", 1, &x) || !want_f32(g, "argmax", x))
        return LOOM_NONE;
    loom_node *nx = loom_node_of(g, x);
    int a = norm_axis(g, "argmax", nx, axis);
    if (a < 0)
        return LOOM_NONE;
    loom_attr at = {0};
    at.axis = a;
    int64_t shape[LOOM_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < nx->ndim; i++)
        if (i != a)
            shape[nd++] = nx->shape[i];
    int32_t in[1] = {x.id};
    return loom_graph_add(g, LOOM_OP_ARGMAX, LOOM_I32, nd, shape, 1, in, NULL, &at);
}

loom_tensor loom_reshape(loom_graph *g, loom_tensor x, int ndim, const int64_t *shape)
{
    if (!loom_graph_check_inputs(g, "reshape", 1, &x))
        return LOOM_NONE;
    loom_node *nx = loom_node_of(g, x);
    if (ndim < 0 || ndim > LOOM_MAX_DIMS || (ndim && !shape))
        return loom_graph_fail(g, LOOM_E_SHAPE, "reshape \"%s\": %d dims (0 to %d allowed)", nx->name, ndim,
                               LOOM_MAX_DIMS);
    int64_t s[LOOM_MAX_DIMS];
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < ndim; i++) {
        s[i] = shape[i];
        if (s[i] == -1 && infer < 0) {
            infer = i;
        } else if (s[i] <= 0) {
            char b[96];
            return loom_graph_fail(g, LOOM_E_SHAPE, "reshape \"%s\": bad target shape %s", nx->name,
                                   loom_shape_str(b, sizeof b, ndim, shape));
        } else {
            known *= s[i];
        }
    }
    if (infer >= 0 && known > 0 && nx->numel % known == 0)
        s[infer] = nx->numel / known;
    if (loom_numel(ndim, s) != nx->numel || (infer >= 0 && nx->numel % known)) {
        char a[96], b[96];
        return loom_graph_fail(g, LOOM_E_SHAPE, "reshape \"%s\": %s (%lld elements) cannot become %s", nx->name,
                               SHAPE(a, nx), (long long)nx->numel, loom_shape_str(b, sizeof b, ndim, shape));
    }
    int32_t in[1] = {x.id};
    return loom_graph_add(g, LOOM_OP_COPY, nx->dtype, ndim, s, 1, in, NULL, NULL);
}

loom_tensor loom_transpose(loom_graph *g, loom_tensor x, const int *perm)
{
    if (!loom_graph_check_inputs(g, "transpose", 1, &x))
        return LOOM_NONE;
    loom_node *nx = loom_node_of(g, x);
    loom_attr at = {0};
    int seen[LOOM_MAX_DIMS] = {0};
    int64_t shape[LOOM_MAX_DIMS];
    for (int i = 0; i < nx->ndim; i++) {
        int p = perm ? perm[i] : nx->ndim - 1 - i;
        if (p < 0 || p >= nx->ndim || seen[p]) {
            char s[96];
            return loom_graph_fail(g, LOOM_E_SHAPE, "transpose \"%s\" %s: perm is not a permutation of 0..%d",
                                   nx->name, SHAPE(s, nx), nx->ndim - 1);
        }
        seen[p] = 1;
        at.perm[i] = p;
        shape[i] = nx->shape[p];
    }
    int32_t in[1] = {x.id};
    return loom_graph_add(g, LOOM_OP_TRANSPOSE, nx->dtype, nx->ndim, shape, 1, in, NULL, &at);
}

loom_tensor loom_sparse_cross_entropy(loom_graph *g, loom_tensor logits, loom_tensor labels)
{
    loom_tensor ins[2] = {logits, labels};
    if (!loom_graph_check_inputs(g, "sparse_cross_entropy", 2, ins) || !want_f32(g, "sparse_cross_entropy", logits))
        return LOOM_NONE;
    loom_node *nl = loom_node_of(g, logits), *ny = loom_node_of(g, labels);
    char a[96], b[96];
    if (ny->dtype != LOOM_I32)
        return loom_graph_fail(g, LOOM_E_DTYPE, "sparse_cross_entropy: labels \"%s\" are %s, expected i32",
                               ny->name, loom_dtype_name(ny->dtype));
    if (nl->ndim != 2 || ny->ndim != 1 || ny->shape[0] != nl->shape[0])
        return loom_graph_fail(g, LOOM_E_SHAPE,
                               "sparse_cross_entropy: logits %s and labels %s (want [N,C] and [N])", SHAPE(a, nl),
                               SHAPE(b, ny));
    int32_t in[2] = {logits.id, labels.id};
    return loom_graph_add(g, LOOM_OP_SPARSE_XENT, LOOM_F32, 0, NULL, 2, in, NULL, NULL);
}

loom_tensor loom_cross_entropy(loom_graph *g, loom_tensor logits, loom_tensor targets)
{
    loom_tensor ins[2] = {logits, targets};
    if (!loom_graph_check_inputs(g, "cross_entropy", 2, ins))
        return LOOM_NONE;
    loom_node *nl = loom_node_of(g, logits), *nt = loom_node_of(g, targets);
    char a[96], b[96];
    if (nl->ndim != 2 || nt->ndim != 2 || nl->shape[0] != nt->shape[0] || nl->shape[1] != nt->shape[1])
        return loom_graph_fail(g, LOOM_E_SHAPE, "cross_entropy: logits %s and targets %s (want both [N,C])",
                               SHAPE(a, nl), SHAPE(b, nt));
    /* -mean_n sum_c t log_softmax(z): built from primitives, so its
     * gradient comes from theirs. */
    loom_tensor ls = loom_log_softmax(g, logits);
    loom_tensor per = loom_sum(g, loom_mul(g, targets, ls), -1, 0);
    return loom_scale(g, loom_sum_all(g, per), -1.0f / (float)nl->shape[0]);
}

loom_tensor loom_mse(loom_graph *g, loom_tensor a, loom_tensor b)
{
    loom_tensor d = loom_sub(g, a, b);
    loom_node *nd = loom_node_of(g, d);
    if (!nd)
        return LOOM_NONE;
    return loom_scale(g, loom_sum_all(g, loom_square(g, d)), 1.0f / (float)nd->numel);
}

loom_tensor loom_dropout(loom_graph *g, loom_tensor x, float rate, uint32_t seed)
{
    if (!loom_graph_check_inputs(g, "dropout", 1, &x) || !want_f32(g, "dropout", x))
        return LOOM_NONE;
    if (!(rate >= 0.0f && rate < 1.0f))
        return loom_graph_fail(g, LOOM_E_INVALID, "dropout: rate %g outside [0, 1)", (double)rate);
    loom_node *nx = loom_node_of(g, x);
    loom_attr at = {0};
    at.alpha = rate;
    at.seed = seed;
    at.salt = ++g->dropout_count;
    int32_t in[1] = {x.id};
    return loom_graph_add(g, LOOM_OP_DROPOUT, LOOM_F32, nx->ndim, nx->shape, 1, in, NULL, &at);
}
