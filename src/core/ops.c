/* Op constructors: shape and dtype inference. A bad shape sets the graph's
 * sticky error (naming the op and the shapes) and returns LOOM_NONE. The
 * element-wise constructors are generated from include/loom_ops.h and
 * follow the op table's shape rule. */
#include "graph.h"
#include "op_table.h"
#include "../common/checked.h"

#include <math.h>
#include <stdio.h>
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
    if ((unsigned)dt >= LOOM_DTYPE_COUNT || loom_dtypes[dt].block != 1)
        return loom_graph_fail(g, LOOM_E_DTYPE, "%s \"%s\": dtype %s is not supported (f32, f16, bf16, i32, i8)", what,
                               name, loom_dtype_name(dt));
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
    /* Updates keep f32 master weights: a half-precision parameter is
     * read-only (cast an f32 one for mixed precision). */
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
    nd->data_bytes = bytes;
    memcpy(nd->data, data, bytes);
    return t;
}

loom_tensor loom_scalar(loom_graph *g, float value)
{
    return loom_constant(g, NULL, LOOM_F32, 0, NULL, &value);
}

/* Arithmetic needs floats; every input of one op has one dtype. */
static int want_float(loom_graph *g, const char *op, int n, const loom_tensor *ts)
{
    const loom_node *n0 = loom_node_of(g, ts[0]);
    for (int i = 0; i < n; i++) {
        const loom_node *nd = loom_node_of(g, ts[i]);
        if (!loom_dtype_is_float(nd->dtype)) {
            loom_graph_fail(g, LOOM_E_DTYPE, "%s: input \"%s\" is %s, a float dtype is needed", op, nd->name,
                            loom_dtype_name(nd->dtype));
            return 0;
        }
        if (nd->dtype != n0->dtype) {
            loom_graph_fail(g, LOOM_E_DTYPE, "%s: inputs \"%s\" (%s) and \"%s\" (%s) differ in dtype (loom_cast one)",
                            op, n0->name, loom_dtype_name(n0->dtype), nd->name, loom_dtype_name(nd->dtype));
            return 0;
        }
    }
    return 1;
}

/* The generated element-wise constructors: the table's arity, shape rule
 * and parameters. */
loom_tensor loom_op_elementwise(loom_graph *g, loom_op op, int n, const loom_tensor *ins, float p1, float p2)
{
    const loom_op_def *def = loom_op_def_of(op);
    if (!loom_graph_check_inputs(g, def->name, n, ins) || !want_float(g, def->name, n, ins))
        return LOOM_NONE;
    const loom_node *n0 = loom_node_of(g, ins[0]);
    int64_t shape[LOOM_MAX_DIMS];
    int nd = n0->ndim;
    memcpy(shape, n0->shape, sizeof shape);
    if (def->shape == LOOM_SHAPE_BROADCAST)
        for (int i = 1; i < n; i++) {
            const loom_node *ni = loom_node_of(g, ins[i]);
            char sa[96], sb[96];
            int64_t prev[LOOM_MAX_DIMS];
            int pn = nd;
            memcpy(prev, shape, sizeof prev);
            if (!loom_broadcast_shape(pn, prev, ni->ndim, ni->shape, &nd, shape))
                return loom_graph_fail(g, LOOM_E_SHAPE, "%s: shapes %s and %s do not broadcast", def->name,
                                       loom_shape_str(sa, sizeof sa, pn, prev), SHAPE(sb, ni));
        }
    loom_attr at = {0};
    at.p1 = p1;
    at.p2 = p2;
    int32_t in[3];
    for (int i = 0; i < n; i++)
        in[i] = ins[i].id;
    return loom_graph_add(g, op, n0->dtype, nd, shape, n, in, NULL, &at);
}

#define DEFINE_UNARY_(nm, ID, fl, gr)                                                                        \
    loom_tensor loom_##nm(loom_graph *g, loom_tensor x) { return loom_op_elementwise(g, LOOM_OP_##ID, 1, &x, 0, 0); }
#define DEFINE_UNARY1_(nm, ID, fl, gr, p)                                                                    \
    loom_tensor loom_##nm(loom_graph *g, loom_tensor x, float p)                                             \
    {                                                                                                        \
        return loom_op_elementwise(g, LOOM_OP_##ID, 1, &x, p, 0);                                             \
    }
#define DEFINE_UNARY2_(nm, ID, fl, gr, p, q)                                                                 \
    loom_tensor loom_##nm(loom_graph *g, loom_tensor x, float p, float q)                                    \
    {                                                                                                        \
        return loom_op_elementwise(g, LOOM_OP_##ID, 1, &x, p, q);                                             \
    }
#define DEFINE_BINARY_(nm, ID, fl, gr)                                                                       \
    loom_tensor loom_##nm(loom_graph *g, loom_tensor a, loom_tensor b)                                       \
    {                                                                                                        \
        loom_tensor ab[2] = {a, b};                                                                          \
        return loom_op_elementwise(g, LOOM_OP_##ID, 2, ab, 0, 0);                                             \
    }
LOOM_UNARY_OPS(DEFINE_UNARY_)
LOOM_UNARY1_OPS(DEFINE_UNARY1_)
LOOM_UNARY2_OPS(DEFINE_UNARY2_)
LOOM_BINARY_OPS(DEFINE_BINARY_)

loom_tensor loom_where(loom_graph *g, loom_tensor cond, loom_tensor a, loom_tensor b)
{
    loom_tensor ins[3] = {cond, a, b};
    return loom_op_elementwise(g, LOOM_OP_WHERE, 3, ins, 0, 0);
}

loom_tensor loom_cast(loom_graph *g, loom_tensor x, loom_dtype dtype)
{
    if (!loom_graph_check_inputs(g, "cast", 1, &x))
        return LOOM_NONE;
    const loom_node *nx = loom_node_of(g, x);
    if ((unsigned)dtype >= LOOM_DTYPE_COUNT || loom_dtypes[dtype].block != 1 || loom_dtypes[dtype].size == 1)
        return loom_graph_fail(g, LOOM_E_DTYPE, "cast \"%s\": to %s is not supported (f32, f16, bf16, i32)",
                               nx->name, loom_dtype_name(dtype));
    if (nx->dtype == dtype)
        return x;
    int32_t in[1] = {x.id};
    return loom_graph_add(g, LOOM_OP_CAST, dtype, nx->ndim, nx->shape, 1, in, NULL, NULL);
}

loom_tensor loom_matmul(loom_graph *g, loom_tensor a, loom_tensor b, int ta, int tb)
{
    loom_tensor ins[2] = {a, b};
    if (!loom_graph_check_inputs(g, "matmul", 2, ins) || !want_float(g, "matmul", 2, ins))
        return LOOM_NONE;
    loom_node *na = loom_node_of(g, a), *nb = loom_node_of(g, b);
    char sa[96], sb[96];
    if (na->ndim != 2 || nb->ndim != 2)
        return loom_matmul_nd(g, a, b, ta, tb); /* batched (ops_seq.c) */
    int64_t m = ta ? na->shape[1] : na->shape[0], ka = ta ? na->shape[0] : na->shape[1];
    int64_t kb = tb ? nb->shape[1] : nb->shape[0], n = tb ? nb->shape[0] : nb->shape[1];
    if (ka != kb)
        return loom_graph_fail(g, LOOM_E_SHAPE,
                               "matmul: inner dims differ: %s%s x %s%s (K %lld vs %lld)", SHAPE(sa, na),
                               ta ? "^T" : "", SHAPE(sb, nb), tb ? "^T" : "", (long long)ka, (long long)kb);
    loom_attr at = {0};
    at.ta = !!ta;
    at.tb = !!tb;
    at.act = at.dact = LOOM_OP_NONE;
    int64_t shape[2] = {m, n};
    int32_t in[2] = {a.id, b.id};
    return loom_graph_add(g, LOOM_OP_MATMUL, na->dtype, 2, shape, 2, in, NULL, &at);
}

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

static loom_tensor softmax_family(loom_graph *g, loom_op op, loom_tensor x, int axis)
{
    const char *name = loom_op_name(op);
    if (!loom_graph_check_inputs(g, name, 1, &x) || !want_float(g, name, 1, &x))
        return LOOM_NONE;
    loom_node *nx = loom_node_of(g, x);
    if (nx->ndim < 1)
        return loom_graph_fail(g, LOOM_E_SHAPE, "%s: input \"%s\" is a scalar; it needs an axis", name, nx->name);
    int a = norm_axis(g, name, nx, axis);
    if (a < 0)
        return LOOM_NONE;
    loom_attr at = {0};
    at.axis = a;
    int32_t in[1] = {x.id};
    return loom_graph_add(g, op, nx->dtype, nx->ndim, nx->shape, 1, in, NULL, &at);
}

loom_tensor loom_softmax(loom_graph *g, loom_tensor x) { return softmax_family(g, LOOM_OP_SOFTMAX, x, -1); }
loom_tensor loom_log_softmax(loom_graph *g, loom_tensor x) { return softmax_family(g, LOOM_OP_LOG_SOFTMAX, x, -1); }
loom_tensor loom_softmax_axis(loom_graph *g, loom_tensor x, int axis)
{
    return softmax_family(g, LOOM_OP_SOFTMAX, x, axis);
}
loom_tensor loom_log_softmax_axis(loom_graph *g, loom_tensor x, int axis)
{
    return softmax_family(g, LOOM_OP_LOG_SOFTMAX, x, axis);
}

/* One axis reduced by op (sum with the factor alpha, max or min). */
static loom_tensor reduce(loom_graph *g, const char *what, loom_op op, loom_tensor x, int axis, int keepdim, int mean)
{
    if (!loom_graph_check_inputs(g, what, 1, &x) || !want_float(g, what, 1, &x))
        return LOOM_NONE;
    loom_node *nx = loom_node_of(g, x);
    int a = norm_axis(g, what, nx, axis);
    if (a < 0)
        return LOOM_NONE;
    loom_attr at = {0};
    at.rdim = nx->ndim;
    at.axis = a;
    for (int i = 0; i < nx->ndim; i++)
        at.rshape[i] = i == a ? 1 : nx->shape[i];
    at.alpha = mean ? 1.0f / (float)nx->shape[a] : 1.0f;
    int64_t shape[LOOM_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < nx->ndim; i++)
        if (i != a || keepdim)
            shape[nd++] = at.rshape[i];
    int32_t in[1] = {x.id};
    return loom_graph_add(g, op, nx->dtype, nd, shape, 1, in, NULL, &at);
}

loom_tensor loom_sum(loom_graph *g, loom_tensor x, int axis, int keepdim)
{
    return reduce(g, "sum", LOOM_OP_REDUCE_SUM, x, axis, keepdim, 0);
}
loom_tensor loom_mean(loom_graph *g, loom_tensor x, int axis, int keepdim)
{
    return reduce(g, "mean", LOOM_OP_REDUCE_SUM, x, axis, keepdim, 1);
}
loom_tensor loom_max(loom_graph *g, loom_tensor x, int axis, int keepdim)
{
    return reduce(g, "max", LOOM_OP_REDUCE_MAX, x, axis, keepdim, 0);
}
loom_tensor loom_min(loom_graph *g, loom_tensor x, int axis, int keepdim)
{
    return reduce(g, "min", LOOM_OP_REDUCE_MIN, x, axis, keepdim, 0);
}

loom_tensor loom_sum_all(loom_graph *g, loom_tensor x)
{
    if (!loom_graph_check_inputs(g, "sum_all", 1, &x) || !want_float(g, "sum_all", 1, &x))
        return LOOM_NONE;
    loom_node *nx = loom_node_of(g, x);
    loom_attr at = {0};
    at.rdim = nx->ndim;
    for (int i = 0; i < nx->ndim; i++)
        at.rshape[i] = 1;
    at.alpha = 1.0f;
    int32_t in[1] = {x.id};
    return loom_graph_add(g, LOOM_OP_REDUCE_SUM, nx->dtype, 0, NULL, 1, in, NULL, &at);
}

static loom_tensor arg_reduce(loom_graph *g, loom_op op, loom_tensor x, int axis)
{
    const char *name = loom_op_name(op);
    if (!loom_graph_check_inputs(g, name, 1, &x) || !want_float(g, name, 1, &x))
        return LOOM_NONE;
    loom_node *nx = loom_node_of(g, x);
    int a = norm_axis(g, name, nx, axis);
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
    return loom_graph_add(g, op, LOOM_I32, nd, shape, 1, in, NULL, &at);
}

loom_tensor loom_argmax(loom_graph *g, loom_tensor x, int axis) { return arg_reduce(g, LOOM_OP_ARGMAX, x, axis); }
loom_tensor loom_argmin(loom_graph *g, loom_tensor x, int axis) { return arg_reduce(g, LOOM_OP_ARGMIN, x, axis); }

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
    uint64_t known = 1;
    for (int i = 0; i < ndim; i++) {
        s[i] = shape[i];
        if (s[i] == -1 && infer < 0) {
            infer = i;
        } else if (s[i] <= 0 || loom_mul_u64(known, (uint64_t)s[i], &known) || known > (uint64_t)INT64_MAX) {
            char b[96];
            return loom_graph_fail(g, LOOM_E_SHAPE, "reshape \"%s\": bad target shape %s", nx->name,
                                   loom_shape_str(b, sizeof b, ndim, shape));
        }
    }
    if (infer >= 0 && (uint64_t)nx->numel % known == 0)
        s[infer] = (int64_t)((uint64_t)nx->numel / known);
    uint64_t total;
    if (loom_shape_bytes(ndim, s, 1, &total, NULL) || total != (uint64_t)nx->numel ||
        (infer >= 0 && (uint64_t)nx->numel % known)) {
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
    if (!loom_graph_check_inputs(g, "sparse_cross_entropy", 2, ins) ||
        !want_float(g, "sparse_cross_entropy", 1, &logits))
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
    if (nl->shape[1] > INT32_MAX)
        return loom_graph_fail(g, LOOM_E_SHAPE, "sparse_cross_entropy: %lld classes (labels are i32)",
                               (long long)nl->shape[1]);
    int32_t in[2] = {logits.id, labels.id};
    /* The loss is f32 whatever the logits' dtype (mixed precision). */
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
    int64_t rows = nl->shape[0]; /* nl moves as the graph grows */
    loom_tensor ls = loom_log_softmax(g, logits);
    loom_tensor per = loom_sum(g, loom_mul(g, targets, ls), -1, 0);
    return loom_scale(g, loom_sum_all(g, per), -1.0f / (float)rows);
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
    if (!loom_graph_check_inputs(g, "dropout", 1, &x) || !want_float(g, "dropout", 1, &x))
        return LOOM_NONE;
    if (!(rate >= 0.0f && rate < 1.0f))
        return loom_graph_fail(g, LOOM_E_INVALID, "dropout: rate %g outside [0, 1)", (double)rate);
    loom_node *nx = loom_node_of(g, x);
    loom_attr at = {0};
    at.alpha = rate;
    at.seed = seed;
    at.salt = ++g->dropout_count;
    int32_t in[1] = {x.id};
    return loom_graph_add(g, LOOM_OP_DROPOUT, nx->dtype, nx->ndim, nx->shape, 1, in, NULL, &at);
}

/* Pruning: p *= mask in place, after whatever updated p (the optimizer's
 * nodes come first in the graph, and nodes run in graph order). */
loom_status loom_mask_update(loom_graph *g, loom_tensor param, loom_tensor mask)
{
    if (!g)
        return LOOM_E_INVALID;
    loom_tensor in2[2] = {param, mask};
    if (!loom_graph_check_inputs(g, "mask_update", 2, in2))
        return loom_graph_status(g);
    const loom_node *np = loom_node_of(g, param), *nm = loom_node_of(g, mask);
    char a[96], b[96];
    if (np->op != LOOM_OP_PARAM || np->dtype != LOOM_F32) {
        loom_graph_fail(g, LOOM_E_INVALID, "mask_update: \"%s\" must be an f32 parameter (loom_param), not %s %s",
                        np->name, loom_op_name(np->op), loom_dtype_name(np->dtype));
        return loom_graph_status(g);
    }
    if (nm->dtype != LOOM_F32 || nm->ndim != np->ndim || memcmp(nm->shape, np->shape, sizeof(int64_t) * (size_t)np->ndim)) {
        loom_graph_fail(g, LOOM_E_SHAPE, "mask_update: mask \"%s\" %s %s does not match parameter \"%s\" %s f32",
                        nm->name, SHAPE(a, nm), loom_dtype_name(nm->dtype), np->name, SHAPE(b, np));
        return loom_graph_status(g);
    }
    char name[300];
    snprintf(name, sizeof name, "%.200s/mask_update", np->name);
    int32_t in[2] = {param.id, mask.id};
    loom_tensor u = loom_graph_add(g, LOOM_OP_MASK_UPDATE, LOOM_F32, 0, NULL, 2, in, name, NULL);
    if (u.id)
        g->nodes[u.id - 1].side_effect = 1;
    return loom_graph_status(g);
}

/* Knowledge distillation, composed of existing ops rather than an op of
 * its own: the loss lives on [N, C] logits beside a network's forward and
 * backward passes over the same batch, so a fused kernel would save a few
 * small launches of a step that runs convolutions (the CNN's step on the
 * CPU: these nodes take well under 1% of it; see the h15p report). Its
 * gradient comes from its parts' rules, checked against finite
 * differences in tests/test_prune.c. KL(pt || ps) = CE(ps; pt) - H(pt):
 * the cross-entropy carries the gradient, the teacher's entropy (a
 * constant for the student) makes the value a true KL, 0 when they
 * agree. */
loom_tensor loom_distillation_loss(loom_graph *g, loom_tensor student_logits, loom_tensor teacher_logits,
                                   loom_tensor labels, float temperature, float alpha)
{
    loom_tensor ins[3] = {student_logits, teacher_logits, labels};
    if (!loom_graph_check_inputs(g, "distillation_loss", 3, ins))
        return LOOM_NONE;
    const loom_node *ns = loom_node_of(g, student_logits), *nt = loom_node_of(g, teacher_logits);
    char a[96], b[96];
    if (ns->ndim != 2 || nt->ndim != 2 || ns->shape[0] != nt->shape[0] || ns->shape[1] != nt->shape[1])
        return loom_graph_fail(g, LOOM_E_SHAPE, "distillation_loss: student logits %s and teacher logits %s (want "
                               "both [N,C])", SHAPE(a, ns), SHAPE(b, nt));
    if (!(temperature > 0.0f) || !isfinite(temperature) || !(alpha >= 0.0f && alpha <= 1.0f))
        return loom_graph_fail(g, LOOM_E_INVALID, "distillation_loss: temperature %g (> 0) and alpha %g (in [0, 1])",
                               (double)temperature, (double)alpha);
    float inv = 1.0f / temperature;
    loom_tensor st = loom_scale(g, student_logits, inv), tt = loom_scale(g, teacher_logits, inv);
    loom_tensor pt = loom_softmax(g, tt);
    loom_tensor kl = loom_sub(g, loom_cross_entropy(g, st, pt), loom_cross_entropy(g, tt, pt));
    loom_tensor hard = loom_sparse_cross_entropy(g, student_logits, labels);
    return loom_add(g, loom_scale(g, kl, alpha * temperature * temperature), loom_scale(g, hard, 1.0f - alpha));
}
