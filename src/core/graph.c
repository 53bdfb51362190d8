/* The graph: nodes, names, sticky errors, queries. */
#include "graph.h"
#include "op_table.h"
#include "../common/checked.h"

#include <stdio.h>
#include <string.h>

int64_t loom_numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    return n;
}

int loom_broadcast_shape(int na, const int64_t *a, int nb, const int64_t *b, int *nout, int64_t *out)
{
    int n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        int ia = i - (n - na), ib = i - (n - nb);
        int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return 0;
        out[i] = da == 1 ? db : da;
    }
    *nout = n;
    return 1;
}

loom_status loom_graph_create(loom_ctx *ctx, loom_graph **out)
{
    if (!out)
        return loom_fail(ctx, LOOM_E_INVALID, "loom_graph_create: NULL out");
    *out = NULL;
    if (!ctx)
        return LOOM_E_INVALID;
    loom_graph *g = loom_calloc(ctx, 1, sizeof *g);
    if (!g)
        return loom_fail(ctx, LOOM_E_OOM, "loom_graph_create: out of memory");
    g->ctx = ctx;
    *out = g;
    return LOOM_OK;
}

void loom_graph_destroy(loom_graph *g)
{
    if (!g)
        return;
    loom_ctx *ctx = g->ctx;
    for (int i = 0; i < g->n; i++) {
        loom_node *nd = &g->nodes[i];
        loom_free(ctx, nd->in, (size_t)nd->nin * sizeof *nd->in);
        loom_strfree(ctx, nd->name);
        loom_free(ctx, nd->data, nd->data_bytes);
    }
    loom_free(ctx, g->nodes, (size_t)g->cap * sizeof *g->nodes);
    loom_free(ctx, g->grad, (size_t)g->grad_cap * sizeof *g->grad);
    loom_free(ctx, g, sizeof *g);
}

loom_status loom_graph_status(const loom_graph *g)
{
    return g ? g->err : LOOM_E_INVALID;
}

const char *loom_graph_error(const loom_graph *g)
{
    return g ? g->errmsg : "no graph";
}

loom_tensor loom_graph_fail(loom_graph *g, loom_status s, const char *fmt, ...)
{
    if (!g)
        return LOOM_NONE;
    if (g->err == LOOM_OK) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g->errmsg, sizeof g->errmsg, fmt, ap);
        va_end(ap);
        g->err = s;
        loom_fail(g->ctx, s, "%s", g->errmsg);
    }
    return LOOM_NONE;
}

int loom_graph_check_inputs(loom_graph *g, const char *op, int n, const loom_tensor *ts)
{
    if (!g)
        return 0;
    if (g->err != LOOM_OK)
        return 0;
    for (int i = 0; i < n; i++) {
        if (!loom_node_of(g, ts[i])) {
            loom_graph_fail(g, LOOM_E_INVALID, "%s: input %d is not a tensor of this graph (id %d)", op, i,
                            ts[i].id);
            return 0;
        }
    }
    return 1;
}

loom_status loom_graph_scope(loom_graph *g, const char *scope)
{
    if (!g)
        return LOOM_E_INVALID;
    if (!scope)
        scope = "";
    size_t n = strlen(scope);
    if (n >= sizeof g->scope)
        return loom_fail(g->ctx, LOOM_E_INVALID, "loom_graph_scope: \"%.32s...\" is %zu bytes, at most %d", scope, n,
                         LOOM_SCOPE_MAX - 1);
    memcpy(g->scope, scope, n + 1);
    g->scope_start = g->n;
    return LOOM_OK;
}

/* "<op>_<n>", or in a scope "<scope>/<op>", numbered only when the scope
 * already has that name (only the scope's own nodes are looked at). */
static const char *generated_name(const loom_graph *g, loom_op op, char *buf, size_t n)
{
    if (!g->scope[0]) {
        snprintf(buf, n, "%s_%d", loom_op_name(op), g->n + 1);
        return buf;
    }
    snprintf(buf, n, "%s/%s", g->scope, loom_op_name(op));
    for (int i = g->scope_start; i < g->n; i++)
        if (!strcmp(g->nodes[i].name, buf)) {
            snprintf(buf, n, "%s/%s_%d", g->scope, loom_op_name(op), g->n + 1);
            break;
        }
    return buf;
}

loom_tensor loom_graph_add(loom_graph *g, loom_op op, loom_dtype dt, int ndim, const int64_t *shape, int nin,
                           const int32_t *in, const char *name, const loom_attr *attr)
{
    loom_ctx *ctx = g->ctx;
    /* Broadcasting can multiply dims: every node's byte count must fit,
     * so that sizes computed from it later cannot wrap. */
    if (loom_shape_bytes(ndim, shape, 8, NULL, NULL)) {
        char sb[96];
        return loom_graph_fail(g, LOOM_E_SHAPE, "%s: result shape %s has more elements than a tensor can hold",
                               loom_op_name(op), loom_shape_str(sb, sizeof sb, ndim, shape));
    }
    /* shape and attr may point into g->nodes, which the growth below may
     * move: take copies first. */
    int64_t shp[LOOM_MAX_DIMS];
    for (int i = 0; i < ndim; i++)
        shp[i] = shape[i];
    shape = shp;
    loom_attr at_copy;
    if (attr) {
        at_copy = *attr;
        attr = &at_copy;
    }
    if (g->n == g->cap) {
        int ncap = g->cap ? g->cap * 2 : 32;
        loom_node *nn = loom_realloc(ctx, g->nodes, (size_t)g->cap * sizeof *nn, (size_t)ncap * sizeof *nn);
        if (!nn)
            return loom_graph_fail(g, LOOM_E_OOM, "%s: out of memory growing the graph to %d nodes",
                                   loom_op_name(op), ncap);
        g->nodes = nn;
        g->cap = ncap;
    }
    loom_node *nd = &g->nodes[g->n];
    memset(nd, 0, sizeof *nd);
    nd->op = op;
    nd->dtype = dt;
    nd->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        nd->shape[i] = shape[i];
    nd->numel = loom_numel(ndim, shape);
    if (attr)
        nd->attr = *attr;
    if (nin) {
        nd->in = loom_malloc(ctx, (size_t)nin * sizeof *nd->in);
        if (!nd->in)
            return loom_graph_fail(g, LOOM_E_OOM, "%s: out of memory", loom_op_name(op));
        memcpy(nd->in, in, (size_t)nin * sizeof *in);
        nd->nin = nin;
    }
    char gen[LOOM_SCOPE_MAX + 48];
    if (!name)
        name = generated_name(g, op, gen, sizeof gen);
    nd->name = loom_strdup(ctx, name);
    if (!nd->name) {
        loom_free(ctx, nd->in, (size_t)nin * sizeof *nd->in);
        return loom_graph_fail(g, LOOM_E_OOM, "%s: out of memory", loom_op_name(op));
    }
    g->n++;
    return (loom_tensor){g->n};
}

int loom_tensor_ndim(const loom_graph *g, loom_tensor t)
{
    const loom_node *nd = loom_node_of(g, t);
    return nd ? nd->ndim : 0;
}

int64_t loom_tensor_dim(const loom_graph *g, loom_tensor t, int axis)
{
    const loom_node *nd = loom_node_of(g, t);
    if (!nd)
        return 0;
    if (axis < 0)
        axis += nd->ndim;
    return axis >= 0 && axis < nd->ndim ? nd->shape[axis] : 0;
}

loom_dtype loom_tensor_dtype(const loom_graph *g, loom_tensor t)
{
    const loom_node *nd = loom_node_of(g, t);
    return nd ? nd->dtype : LOOM_F32;
}

const char *loom_tensor_name(const loom_graph *g, loom_tensor t)
{
    const loom_node *nd = loom_node_of(g, t);
    return nd ? nd->name : NULL;
}

int loom_graph_node_count(const loom_graph *g)
{
    return g ? g->n : 0;
}

loom_ctx *loom_graph_ctx(const loom_graph *g)
{
    return g ? g->ctx : NULL;
}

loom_tensor loom_graph_find(const loom_graph *g, const char *name)
{
    if (!g || !name)
        return LOOM_NONE;
    for (int i = g->n - 1; i >= 0; i--)
        if (!strcmp(g->nodes[i].name, name))
            return (loom_tensor){i + 1};
    return LOOM_NONE;
}

loom_status loom_output(loom_graph *g, loom_tensor t, const char *name)
{
    if (!g)
        return LOOM_E_INVALID;
    loom_node *nd = loom_node_of(g, t);
    if (!nd) {
        if (g->err != LOOM_OK)
            return g->err;
        loom_graph_fail(g, LOOM_E_INVALID, "loom_output: not a tensor of this graph (id %d)", t.id);
        return LOOM_E_INVALID;
    }
    if (name && nd->is_output && strcmp(name, nd->name) != 0) {
        /* Already an output under another name: a copy carries the second. */
        int32_t in[1] = {t.id};
        loom_tensor c = loom_graph_add(g, LOOM_OP_COPY, nd->dtype, nd->ndim, nd->shape, 1, in, NULL, NULL);
        if (!c.id)
            return g->err;
        return loom_output(g, c, name);
    }
    if (name && strcmp(name, nd->name) != 0) {
        loom_tensor other = loom_graph_find(g, name);
        if (other.id && other.id != t.id) {
            loom_graph_fail(g, LOOM_E_INVALID, "loom_output: the name \"%s\" is taken by another tensor", name);
            return LOOM_E_INVALID;
        }
        char *copy = loom_strdup(g->ctx, name);
        if (!copy) {
            loom_graph_fail(g, LOOM_E_OOM, "loom_output %s: out of memory", name);
            return LOOM_E_OOM;
        }
        loom_strfree(g->ctx, nd->name);
        nd->name = copy;
    }
    nd->is_output = 1;
    return LOOM_OK;
}
