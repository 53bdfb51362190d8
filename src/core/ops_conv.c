/* Op constructors of convolutional networks: convolutions, pooling,
 * normalization and the tensor plumbing (concat, slice, pad, flatten).
 * Shapes are checked here, once; a bad one sets the graph's sticky error
 * naming the op and the shapes. */
#include "graph.h"
#include "op_table.h"
#include "../common/checked.h"

#include <string.h>

#define SHAPE(buf, nd) loom_shape_str(buf, sizeof buf, (nd)->ndim, (nd)->shape)

static int float_input(loom_graph *g, const char *op, const loom_node *nd, const char *what)
{
    if (!loom_dtype_is_float(nd->dtype)) {
        loom_graph_fail(g, LOOM_E_DTYPE, "%s: %s \"%s\" is %s, a float dtype is needed", op, what, nd->name,
                        loom_dtype_name(nd->dtype));
        return 0;
    }
    return 1;
}

static int same_dtype(loom_graph *g, const char *op, const loom_node *a, const loom_node *b)
{
    if (a->dtype != b->dtype) {
        loom_graph_fail(g, LOOM_E_DTYPE, "%s: \"%s\" (%s) and \"%s\" (%s) differ in dtype (loom_cast one)", op,
                        a->name, loom_dtype_name(a->dtype), b->name, loom_dtype_name(b->dtype));
        return 0;
    }
    return 1;
}

/* ---- convolutions ----------------------------------------------------------- */

loom_conv2d_opts loom_conv2d_opts_default(void)
{
    loom_conv2d_opts o;
    memset(&o, 0, sizeof o);
    o.stride[0] = o.stride[1] = 1;
    o.dilation[0] = o.dilation[1] = 1;
    o.groups = 1;
    return o;
}

/* The attributes of a window geometry (stride, dilation, padding), with
 * the defaults filled in; 0 (and the sticky error) if one is out of range. */
static int geometry(loom_graph *g, const char *op, const int stride[2], const int dil[2], const int pad[4],
                    loom_attr *at)
{
    for (int i = 0; i < 2; i++) {
        at->stride[i] = stride[i] ? stride[i] : 1;
        at->dil[i] = dil && dil[i] ? dil[i] : 1;
        if (at->stride[i] < 1 || at->dil[i] < 1 || at->stride[i] > 65536 || at->dil[i] > 65536) {
            loom_graph_fail(g, LOOM_E_INVALID, "%s: stride %d,%d and dilation %d,%d must be in [1, 65536]", op,
                            stride[0], stride[1], dil ? dil[0] : 1, dil ? dil[1] : 1);
            return 0;
        }
    }
    for (int i = 0; i < 4; i++) {
        at->pad[i] = pad[i];
        if (pad[i] < 0 || pad[i] > 65536) {
            loom_graph_fail(g, LOOM_E_INVALID, "%s: padding %d,%d,%d,%d (top, left, bottom, right) must be in "
                            "[0, 65536]", op, pad[0], pad[1], pad[2], pad[3]);
            return 0;
        }
    }
    return 1;
}

void loom_same_padding(int64_t n, int64_t k, int64_t stride, int64_t dilation, int64_t *lo, int64_t *hi)
{
    int64_t out = (n + stride - 1) / stride;
    int64_t total = (out - 1) * stride + dilation * (k - 1) + 1 - n;
    if (total < 0)
        total = 0;
    *lo = total / 2;
    *hi = total - total / 2;
}

static void same_pad(int64_t n, int64_t k, int64_t s, int64_t d, int32_t *lo, int32_t *hi)
{
    int64_t l, h;
    loom_same_padding(n, k, s, d, &l, &h);
    *lo = (int32_t)l;
    *hi = (int32_t)h;
}

/* Outputs of one dim: (n + lo + hi - d (k - 1) - 1) / s + 1, or <= 0. */
static int64_t out_dim(int64_t n, int64_t k, int64_t s, int64_t d, int64_t lo, int64_t hi)
{
    int64_t span = n + lo + hi - d * (k - 1) - 1;
    return span < 0 ? 0 : span / s + 1;
}

static int check_bias(loom_graph *g, const char *op, const loom_node *nx, loom_tensor bias, int64_t channels)
{
    if (!bias.id)
        return 1;
    const loom_node *nb = loom_node_of(g, bias);
    char s[96];
    if (!nb) {
        loom_graph_fail(g, LOOM_E_INVALID, "%s: the bias is not a tensor of this graph (id %d)", op, bias.id);
        return 0;
    }
    if (!same_dtype(g, op, nx, nb))
        return 0;
    if (nb->ndim != 1 || nb->shape[0] != channels) {
        loom_graph_fail(g, LOOM_E_SHAPE, "%s: bias \"%s\" is %s, [%lld] is needed", op, nb->name, SHAPE(s, nb),
                        (long long)channels);
        return 0;
    }
    return 1;
}

/* The checks conv2d and conv_transpose2d share: x and w 4-D, one float
 * dtype, the groups. cin: the channels of x the weights' second dim
 * divides (conv2d), or their first (transpose). */
static int conv_operands(loom_graph *g, const char *op, loom_tensor x, loom_tensor w, int groups, int transpose)
{
    loom_tensor ins[2] = {x, w};
    if (!loom_graph_check_inputs(g, op, 2, ins))
        return 0;
    const loom_node *nx = loom_node_of(g, x), *nw = loom_node_of(g, w);
    char a[96], b[96];
    if (!float_input(g, op, nx, "input") || !same_dtype(g, op, nx, nw))
        return 0;
    if (nx->ndim != 4 || nw->ndim != 4) {
        loom_graph_fail(g, LOOM_E_SHAPE, "%s: input %s and weights %s must be 4-D (NCHW, and [%s, KH, KW])", op,
                        SHAPE(a, nx), SHAPE(b, nw), transpose ? "IC, OC / groups" : "OC, C / groups");
        return 0;
    }
    int64_t c = nx->shape[1];
    if (groups < 1 || c % groups || (transpose ? nw->shape[0] != c : nw->shape[1] * groups != c) ||
        (!transpose && nw->shape[0] % groups)) {
        loom_graph_fail(g, LOOM_E_SHAPE, "%s: input %s, weights %s and %d groups do not fit (%s)", op, SHAPE(a, nx),
                        SHAPE(b, nw), groups,
                        transpose ? "weights [IC, OC / groups, KH, KW] with IC the input's channels, IC % groups == 0"
                                  : "weights [OC, C / groups, KH, KW], C and OC divisible by groups");
        return 0;
    }
    return 1;
}

loom_tensor loom_conv2d(loom_graph *g, loom_tensor x, loom_tensor w, loom_tensor bias, const loom_conv2d_opts *o)
{
    loom_conv2d_opts d = o ? *o : loom_conv2d_opts_default();
    int groups = d.groups ? d.groups : 1;
    if (!conv_operands(g, "conv2d", x, w, groups, 0))
        return LOOM_NONE;
    const loom_node *nx = loom_node_of(g, x), *nw = loom_node_of(g, w);
    if (!check_bias(g, "conv2d", nx, bias, nw->shape[0]))
        return LOOM_NONE;
    loom_attr at = {0};
    if (!geometry(g, "conv2d", d.stride, d.dilation, d.pad, &at))
        return LOOM_NONE;
    at.cgroups = groups;
    if (d.same)
        for (int i = 0; i < 2; i++)
            same_pad(nx->shape[2 + i], nw->shape[2 + i], at.stride[i], at.dil[i], &at.pad[i], &at.pad[2 + i]);
    int64_t shape[4] = {nx->shape[0], nw->shape[0], 0, 0};
    for (int i = 0; i < 2; i++)
        shape[2 + i] = out_dim(nx->shape[2 + i], nw->shape[2 + i], at.stride[i], at.dil[i], at.pad[i], at.pad[2 + i]);
    if (shape[2] < 1 || shape[3] < 1) {
        char a[96], b[96];
        return loom_graph_fail(g, LOOM_E_SHAPE, "conv2d: kernel %s (dilation %d,%d) does not fit input %s with "
                               "padding %d,%d,%d,%d", SHAPE(b, nw), at.dil[0], at.dil[1], SHAPE(a, nx), at.pad[0],
                               at.pad[1], at.pad[2], at.pad[3]);
    }
    int32_t in[3] = {x.id, w.id, bias.id};
    return loom_graph_add(g, LOOM_OP_CONV2D, nx->dtype, 4, shape, bias.id ? 3 : 2, in, NULL, &at);
}

loom_tensor loom_conv1d(loom_graph *g, loom_tensor x, loom_tensor w, loom_tensor bias, const loom_conv2d_opts *o)
{
    loom_tensor ins[2] = {x, w};
    if (!loom_graph_check_inputs(g, "conv1d", 2, ins))
        return LOOM_NONE;
    const loom_node *nx = loom_node_of(g, x), *nw = loom_node_of(g, w);
    if (nx->ndim != 3 || nw->ndim != 3) {
        char a[96], b[96];
        return loom_graph_fail(g, LOOM_E_SHAPE, "conv1d: input %s and weights %s must be 3-D ([N, C, L] and [OC, "
                               "C / groups, K])", SHAPE(a, nx), SHAPE(b, nw));
    }
    int64_t xs[4] = {nx->shape[0], nx->shape[1], 1, nx->shape[2]};
    int64_t ws[4] = {nw->shape[0], nw->shape[1], 1, nw->shape[2]};
    loom_conv2d_opts d = o ? *o : loom_conv2d_opts_default();
    /* one row: no vertical stride, dilation or padding */
    d.stride[0] = d.dilation[0] = 1;
    d.pad[0] = d.pad[2] = 0;
    loom_tensor y = loom_conv2d(g, loom_reshape(g, x, 4, xs), loom_reshape(g, w, 4, ws), bias, &d);
    const loom_node *ny = loom_node_of(g, y);
    if (!ny)
        return LOOM_NONE;
    int64_t ys[3] = {ny->shape[0], ny->shape[1], ny->shape[3]};
    return loom_reshape(g, y, 3, ys);
}

loom_tensor loom_conv_transpose2d(loom_graph *g, loom_tensor x, loom_tensor w, loom_tensor bias,
                                  const loom_conv2d_opts *o, const int output_padding[2])
{
    loom_conv2d_opts d = o ? *o : loom_conv2d_opts_default();
    int groups = d.groups ? d.groups : 1;
    if (!conv_operands(g, "conv_transpose2d", x, w, groups, 1))
        return LOOM_NONE;
    const loom_node *nx = loom_node_of(g, x), *nw = loom_node_of(g, w);
    int64_t oc = nw->shape[1] * groups;
    if (!check_bias(g, "conv_transpose2d", nx, bias, oc))
        return LOOM_NONE;
    loom_attr at = {0};
    if (!geometry(g, "conv_transpose2d", d.stride, d.dilation, d.pad, &at))
        return LOOM_NONE;
    at.cgroups = groups;
    int64_t shape[4] = {nx->shape[0], oc, 0, 0};
    for (int i = 0; i < 2; i++) {
        int64_t h = nx->shape[2 + i], k = nw->shape[2 + i], s = at.stride[i], dl = at.dil[i];
        int op = output_padding ? output_padding[i] : 0;
        if (d.same) {
            /* the input of a "same" conv2d that gives h outputs */
            int64_t full = h * s;
            same_pad(full, k, s, dl, &at.pad[i], &at.pad[2 + i]);
            op = (int)(full - ((h - 1) * s - at.pad[i] - at.pad[2 + i] + dl * (k - 1) + 1));
        }
        /* below the stride, so that conv2d maps the output back onto h */
        if (op < 0 || op >= s)
            return loom_graph_fail(g, LOOM_E_INVALID, "conv_transpose2d: output padding %d must be in [0, stride "
                                   "%lld)", op, (long long)s);
        shape[2 + i] = (h - 1) * s - at.pad[i] - at.pad[2 + i] + dl * (k - 1) + 1 + op;
    }
    if (shape[2] < 1 || shape[3] < 1) {
        char a[96], b[96];
        return loom_graph_fail(g, LOOM_E_SHAPE, "conv_transpose2d: input %s, kernel %s and padding %d,%d,%d,%d give "
                               "no output", SHAPE(a, nx), SHAPE(b, nw), at.pad[0], at.pad[1], at.pad[2], at.pad[3]);
    }
    if (loom_shape_bytes(4, shape, 8, NULL, NULL)) {
        char a[96];
        return loom_graph_fail(g, LOOM_E_SHAPE, "conv_transpose2d: the output of %s is too large", SHAPE(a, nx));
    }
    int32_t in[3] = {x.id, w.id, bias.id};
    return loom_graph_add(g, LOOM_OP_CONV_TRANSPOSE2D, nx->dtype, 4, shape, bias.id ? 3 : 2, in, NULL, &at);
}

/* ---- pooling ------------------------------------------------------------------ */

static loom_tensor pool(loom_graph *g, loom_op op, loom_tensor x, const loom_pool2d_opts *o)
{
    const char *name = loom_op_name(op);
    if (!loom_graph_check_inputs(g, name, 1, &x))
        return LOOM_NONE;
    const loom_node *nx = loom_node_of(g, x);
    char a[96];
    if (!float_input(g, name, nx, "input"))
        return LOOM_NONE;
    if (!o)
        return loom_graph_fail(g, LOOM_E_INVALID, "%s: NULL options (the window size is needed)", name);
    if (nx->ndim != 4)
        return loom_graph_fail(g, LOOM_E_SHAPE, "%s: input \"%s\" is %s, NCHW is needed", name, nx->name,
                               SHAPE(a, nx));
    loom_attr at = {0};
    int stride[2];
    for (int i = 0; i < 2; i++) {
        at.kernel[i] = o->kernel[i];
        stride[i] = o->stride[i] ? o->stride[i] : o->kernel[i];
        if (o->kernel[i] < 1 || o->kernel[i] > 65536)
            return loom_graph_fail(g, LOOM_E_INVALID, "%s: window %d x %d (each in [1, 65536])", name, o->kernel[0],
                                   o->kernel[1]);
    }
    if (!geometry(g, name, stride, NULL, o->pad, &at))
        return LOOM_NONE;
    at.side = !!o->count_pad;
    if (o->same)
        for (int i = 0; i < 2; i++)
            same_pad(nx->shape[2 + i], at.kernel[i], at.stride[i], 1, &at.pad[i], &at.pad[2 + i]);
    for (int i = 0; i < 4; i++)
        if (at.pad[i] >= at.kernel[i % 2])
            return loom_graph_fail(g, LOOM_E_INVALID, "%s: padding %d,%d,%d,%d must be smaller than the window %d x %d",
                                   name, at.pad[0], at.pad[1], at.pad[2], at.pad[3], at.kernel[0], at.kernel[1]);
    int64_t shape[4] = {nx->shape[0], nx->shape[1], 0, 0};
    for (int i = 0; i < 2; i++)
        shape[2 + i] = out_dim(nx->shape[2 + i], at.kernel[i], at.stride[i], 1, at.pad[i], at.pad[2 + i]);
    if (shape[2] < 1 || shape[3] < 1)
        return loom_graph_fail(g, LOOM_E_SHAPE, "%s: window %d x %d does not fit input %s", name, at.kernel[0],
                               at.kernel[1], SHAPE(a, nx));
    int32_t in[1] = {x.id};
    return loom_graph_add(g, op, nx->dtype, 4, shape, 1, in, NULL, &at);
}

loom_tensor loom_max_pool2d(loom_graph *g, loom_tensor x, const loom_pool2d_opts *o)
{
    return pool(g, LOOM_OP_MAX_POOL2D, x, o);
}

loom_tensor loom_avg_pool2d(loom_graph *g, loom_tensor x, const loom_pool2d_opts *o)
{
    return pool(g, LOOM_OP_AVG_POOL2D, x, o);
}

loom_tensor loom_global_avg_pool2d(loom_graph *g, loom_tensor x)
{
    if (!loom_graph_check_inputs(g, "global_avg_pool2d", 1, &x))
        return LOOM_NONE;
    const loom_node *nx = loom_node_of(g, x);
    char a[96];
    if (!float_input(g, "global_avg_pool2d", nx, "input"))
        return LOOM_NONE;
    if (nx->ndim != 4)
        return loom_graph_fail(g, LOOM_E_SHAPE, "global_avg_pool2d: input \"%s\" is %s, NCHW is needed", nx->name,
                               SHAPE(a, nx));
    /* one reduction over both spatial dims, which the sum's gradient
     * already knows */
    loom_attr at = {0};
    at.rdim = 4;
    at.rshape[0] = nx->shape[0];
    at.rshape[1] = nx->shape[1];
    at.rshape[2] = at.rshape[3] = 1;
    at.alpha = 1.0f / (float)(nx->shape[2] * nx->shape[3]);
    int64_t shape[2] = {nx->shape[0], nx->shape[1]};
    int32_t in[1] = {x.id};
    return loom_graph_add(g, LOOM_OP_REDUCE_SUM, nx->dtype, 2, shape, 1, in, NULL, &at);
}

/* ---- normalization ------------------------------------------------------------ */

static int norm_params(loom_graph *g, const char *op, const loom_node *nx, loom_tensor gamma, loom_tensor beta)
{
    loom_tensor ps[2] = {gamma, beta};
    if (!loom_graph_check_inputs(g, op, 2, ps))
        return 0;
    char a[96], b[96];
    for (int i = 0; i < 2; i++) {
        const loom_node *np = loom_node_of(g, ps[i]);
        if (!same_dtype(g, op, nx, np))
            return 0;
        if (np->ndim != 1 || np->shape[0] != nx->shape[1]) {
            loom_graph_fail(g, LOOM_E_SHAPE, "%s: %s \"%s\" is %s, input %s needs [%lld]", op, i ? "beta" : "gamma",
                            np->name, SHAPE(a, np), SHAPE(b, nx), (long long)nx->shape[1]);
            return 0;
        }
    }
    return 1;
}

static loom_tensor norm_input(loom_graph *g, const char *op, loom_tensor x)
{
    if (!loom_graph_check_inputs(g, op, 1, &x))
        return LOOM_NONE;
    const loom_node *nx = loom_node_of(g, x);
    char a[96];
    if (!float_input(g, op, nx, "input"))
        return LOOM_NONE;
    if (nx->ndim < 2)
        return loom_graph_fail(g, LOOM_E_SHAPE, "%s: input \"%s\" is %s, [N, C, ...] is needed", op, nx->name,
                               SHAPE(a, nx));
    return x;
}

static loom_tensor norm_stats(loom_graph *g, loom_tensor x, int groups, float eps)
{
    const loom_node *nx = loom_node_of(g, x);
    loom_attr at = {0};
    at.cgroups = groups;
    at.eps = eps;
    int64_t shape[2] = {2, groups ? nx->shape[0] * groups : nx->shape[1]};
    int32_t in[1] = {x.id};
    return loom_graph_add(g, LOOM_OP_NORM_STATS, nx->dtype, 2, shape, 1, in, NULL, &at);
}

static loom_tensor norm_apply(loom_graph *g, loom_tensor x, loom_tensor stats, loom_tensor gamma, loom_tensor beta,
                              int groups, float eps, int fixed)
{
    const loom_node *nx = loom_node_of(g, x);
    if (!nx || !stats.id)
        return LOOM_NONE;
    loom_attr at = {0};
    at.cgroups = groups;
    at.eps = eps;
    at.side = fixed;
    int32_t in[4] = {x.id, stats.id, gamma.id, beta.id};
    return loom_graph_add(g, LOOM_OP_NORM_APPLY, nx->dtype, nx->ndim, nx->shape, 4, in, NULL, &at);
}

loom_tensor loom_batch_norm(loom_graph *g, loom_tensor x, loom_tensor gamma, loom_tensor beta, loom_tensor running,
                            float momentum, float eps, int training)
{
    if (!norm_input(g, "batch_norm", x).id)
        return LOOM_NONE;
    const loom_node *nx = loom_node_of(g, x);
    if (!norm_params(g, "batch_norm", nx, gamma, beta))
        return LOOM_NONE;
    if (!(eps > 0.0f) || !(momentum >= 0.0f && momentum <= 1.0f))
        return loom_graph_fail(g, LOOM_E_INVALID, "batch_norm: eps %g must be > 0 and momentum %g in [0, 1]",
                               (double)eps, (double)momentum);
    const loom_node *nr = running.id ? loom_node_of(g, running) : NULL;
    char a[96];
    if (running.id && !nr)
        return loom_graph_fail(g, LOOM_E_INVALID, "batch_norm: the running statistics are not a tensor of this "
                               "graph (id %d)", running.id);
    /* training updates them in f32; inference reads any float dtype */
    if (nr && (nr->ndim != 2 || nr->shape[0] != 2 || nr->shape[1] != nx->shape[1] ||
               (training ? nr->dtype != LOOM_F32 : !loom_dtype_is_float(nr->dtype))))
        return loom_graph_fail(g, LOOM_E_SHAPE, "batch_norm: running statistics \"%s\" are %s %s, %s [2, %lld] "
                               "(mean, variance) are needed", nr->name, loom_dtype_name(nr->dtype), SHAPE(a, nr),
                               training ? "f32" : "float", (long long)nx->shape[1]);
    if (!training) {
        if (!nr)
            return loom_graph_fail(g, LOOM_E_INVALID, "batch_norm: inference needs the running statistics");
        loom_dtype dt = nx->dtype;
        return norm_apply(g, x, loom_cast(g, running, dt), gamma, beta, 0, eps, 1);
    }
    if (nr && nr->op != LOOM_OP_PARAM)
        return loom_graph_fail(g, LOOM_E_INVALID, "batch_norm: running statistics \"%s\" must be a parameter "
                               "(loom_param) for training to update them", nr->name);
    /* the name first: new nodes may move the node array */
    char name[600];
    if (nr)
        snprintf(name, sizeof name, "%s/update", nr->name);
    loom_tensor stats = norm_stats(g, x, 0, eps);
    loom_tensor y = norm_apply(g, x, stats, gamma, beta, 0, eps, 0);
    if (nr && y.id) {
        loom_attr at = {0};
        at.momentum = momentum;
        int32_t in[2] = {running.id, loom_cast(g, stats, LOOM_F32).id};
        loom_tensor u = in[1] ? loom_graph_add(g, LOOM_OP_NORM_RUNNING_UPDATE, LOOM_F32, 0, NULL, 2, in, name, &at)
                              : LOOM_NONE;
        if (!u.id)
            return LOOM_NONE;
        g->nodes[u.id - 1].side_effect = 1;
    }
    return y;
}

loom_tensor loom_group_norm(loom_graph *g, loom_tensor x, loom_tensor gamma, loom_tensor beta, int groups, float eps)
{
    if (!norm_input(g, "group_norm", x).id)
        return LOOM_NONE;
    const loom_node *nx = loom_node_of(g, x);
    if (!norm_params(g, "group_norm", nx, gamma, beta))
        return LOOM_NONE;
    char a[96];
    if (groups < 1 || nx->shape[1] % groups)
        return loom_graph_fail(g, LOOM_E_SHAPE, "group_norm: %d groups do not divide the %lld channels of %s", groups,
                               (long long)nx->shape[1], SHAPE(a, nx));
    if (!(eps > 0.0f))
        return loom_graph_fail(g, LOOM_E_INVALID, "group_norm: eps %g must be > 0", (double)eps);
    return norm_apply(g, x, norm_stats(g, x, groups, eps), gamma, beta, groups, eps, 0);
}

/* ---- windows: slice, pad, concat ------------------------------------------------- */

/* Aligns per-axis values of a rank-nd tensor to rank 4. */
static void align4(int nd, const int64_t *v, int64_t fill, int64_t out[4])
{
    for (int i = 0; i < 4; i++) {
        int k = i - (4 - nd);
        out[i] = k >= 0 ? v[k] : fill;
    }
}

loom_tensor loom_slice(loom_graph *g, loom_tensor x, const int64_t *start, const int64_t *stop, const int64_t *step)
{
    if (!loom_graph_check_inputs(g, "slice", 1, &x))
        return LOOM_NONE;
    const loom_node *nx = loom_node_of(g, x);
    char a[96];
    if (nx->ndim < 1)
        return loom_graph_fail(g, LOOM_E_SHAPE, "slice: \"%s\" is a scalar", nx->name);
    int64_t st[LOOM_MAX_DIMS], sp[LOOM_MAX_DIMS], shape[LOOM_MAX_DIMS];
    for (int i = 0; i < nx->ndim; i++) {
        int64_t n = nx->shape[i], b = start ? start[i] : 0, e = stop ? stop[i] : n, s = step ? step[i] : 1;
        if (s < 1 || s > INT32_MAX)
            return loom_graph_fail(g, LOOM_E_INVALID, "slice \"%s\": step %lld along axis %d (>= 1)", nx->name,
                                   (long long)s, i);
        b = b < 0 ? b + n : b;
        e = e < 0 ? e + n : e;
        b = b < 0 ? 0 : b > n ? n : b;
        e = e < 0 ? 0 : e > n ? n : e;
        if (e <= b)
            return loom_graph_fail(g, LOOM_E_SHAPE, "slice \"%s\" %s: axis %d [%lld:%lld] is empty", nx->name,
                                   SHAPE(a, nx), i, (long long)(start ? start[i] : 0), (long long)(stop ? stop[i] : n));
        st[i] = b;
        sp[i] = s;
        shape[i] = (e - b + s - 1) / s;
    }
    loom_attr at = {0};
    int64_t st4[4], sp4[4];
    align4(nx->ndim, st, 0, st4);
    align4(nx->ndim, sp, 1, sp4);
    for (int i = 0; i < 4; i++) {
        at.wstart[i] = st4[i];
        at.wstep[i] = (int32_t)sp4[i];
    }
    int32_t in[1] = {x.id};
    return loom_graph_add(g, LOOM_OP_SLICE, nx->dtype, nx->ndim, shape, 1, in, NULL, &at);
}

loom_tensor loom_pad(loom_graph *g, loom_tensor x, const int64_t *lo, const int64_t *hi, loom_pad_mode mode,
                     float value)
{
    if (!loom_graph_check_inputs(g, "pad", 1, &x))
        return LOOM_NONE;
    const loom_node *nx = loom_node_of(g, x);
    char a[96];
    if (nx->ndim < 1)
        return loom_graph_fail(g, LOOM_E_SHAPE, "pad: \"%s\" is a scalar", nx->name);
    if (mode != LOOM_PAD_CONSTANT && mode != LOOM_PAD_REFLECT)
        return loom_graph_fail(g, LOOM_E_INVALID, "pad \"%s\": unknown mode %d", nx->name, (int)mode);
    if (!loom_dtype_is_float(nx->dtype) && !(mode == LOOM_PAD_CONSTANT && value == 0.0f))
        return loom_graph_fail(g, LOOM_E_DTYPE, "pad \"%s\": %s tensors pad with the constant 0 only", nx->name,
                               loom_dtype_name(nx->dtype));
    int64_t l[LOOM_MAX_DIMS], shape[LOOM_MAX_DIMS];
    for (int i = 0; i < nx->ndim; i++) {
        int64_t pl = lo ? lo[i] : 0, ph = hi ? hi[i] : 0, n = nx->shape[i];
        if (pl < 0 || ph < 0 || pl > INT32_MAX || ph > INT32_MAX ||
            (mode == LOOM_PAD_REFLECT && (pl >= n || ph >= n)))
            return loom_graph_fail(g, LOOM_E_INVALID, "pad \"%s\" %s: axis %d pads %lld before and %lld after (>= 0%s)",
                                   nx->name, SHAPE(a, nx), i, (long long)pl, (long long)ph,
                                   mode == LOOM_PAD_REFLECT ? ", and below the dim to reflect" : "");
        l[i] = -pl;
        shape[i] = n + pl + ph;
    }
    if (loom_shape_bytes(nx->ndim, shape, 8, NULL, NULL))
        return loom_graph_fail(g, LOOM_E_SHAPE, "pad \"%s\": the result of %s is too large", nx->name, SHAPE(a, nx));
    loom_attr at = {0};
    int64_t l4[4];
    align4(nx->ndim, l, 0, l4);
    for (int i = 0; i < 4; i++) {
        at.wstart[i] = l4[i];
        at.wstep[i] = 1;
    }
    at.wmode = mode;
    at.wvalue = value;
    int32_t in[1] = {x.id};
    return loom_graph_add(g, LOOM_OP_PAD, nx->dtype, nx->ndim, shape, 1, in, NULL, &at);
}

loom_tensor loom_concat(loom_graph *g, int n, const loom_tensor *xs, int axis)
{
    if (!g || g->err != LOOM_OK)
        return LOOM_NONE;
    if (n < 1 || !xs)
        return loom_graph_fail(g, LOOM_E_INVALID, "concat: %d inputs", n);
    if (!loom_graph_check_inputs(g, "concat", n, xs))
        return LOOM_NONE;
    const loom_node *n0 = loom_node_of(g, xs[0]);
    int a = axis < 0 ? axis + n0->ndim : axis;
    char s0[96], s1[96];
    if (n0->ndim < 1 || a < 0 || a >= n0->ndim)
        return loom_graph_fail(g, LOOM_E_SHAPE, "concat: axis %d out of range for %s", axis, SHAPE(s0, n0));
    int64_t shape[LOOM_MAX_DIMS];
    memcpy(shape, n0->shape, sizeof shape);
    shape[a] = 0;
    int32_t *in = loom_malloc(g->ctx, (size_t)n * sizeof *in);
    if (!in)
        return loom_graph_fail(g, LOOM_E_OOM, "concat: out of memory for %d inputs", n);
    for (int k = 0; k < n; k++) {
        const loom_node *nk = loom_node_of(g, xs[k]);
        int ok = nk->ndim == n0->ndim && nk->dtype == n0->dtype;
        for (int i = 0; i < n0->ndim && ok; i++)
            ok = i == a || nk->shape[i] == n0->shape[i];
        if (!ok) {
            loom_free(g->ctx, in, (size_t)n * sizeof *in);
            return loom_graph_fail(g, LOOM_E_SHAPE, "concat: input %d \"%s\" %s %s does not join %s %s along axis %d", k,
                                   nk->name, loom_dtype_name(nk->dtype), SHAPE(s1, nk), loom_dtype_name(n0->dtype),
                                   SHAPE(s0, n0), a);
        }
        shape[a] += nk->shape[a];
        in[k] = xs[k].id;
    }
    loom_attr at = {0};
    at.axis = a;
    loom_tensor y = loom_graph_add(g, LOOM_OP_CONCAT, n0->dtype, n0->ndim, shape, n, in, NULL, &at);
    loom_free(g->ctx, in, (size_t)n * sizeof *in);
    return y;
}

loom_tensor loom_flatten(loom_graph *g, loom_tensor x)
{
    if (!loom_graph_check_inputs(g, "flatten", 1, &x))
        return LOOM_NONE;
    const loom_node *nx = loom_node_of(g, x);
    if (nx->ndim < 1)
        return loom_graph_fail(g, LOOM_E_SHAPE, "flatten: \"%s\" is a scalar", nx->name);
    if (nx->ndim == 2)
        return x;
    int64_t shape[2] = {nx->shape[0], nx->numel / nx->shape[0]};
    return loom_reshape(g, x, 2, shape);
}

loom_tensor loom_spatial_dropout(loom_graph *g, loom_tensor x, float rate, uint32_t seed)
{
    if (!loom_graph_check_inputs(g, "spatial_dropout", 1, &x))
        return LOOM_NONE;
    const loom_node *nx = loom_node_of(g, x);
    char a[96];
    if (!float_input(g, "spatial_dropout", nx, "input"))
        return LOOM_NONE;
    if (nx->ndim < 3)
        return loom_graph_fail(g, LOOM_E_SHAPE, "spatial_dropout: input \"%s\" is %s, [N, C, spatial...] is needed",
                               nx->name, SHAPE(a, nx));
    /* one mask value per (sample, channel), broadcast over the channel by
     * the multiplication's strides: nothing is expanded */
    int64_t shape[LOOM_MAX_DIMS];
    int nd = nx->ndim;
    for (int i = 0; i < nd; i++)
        shape[i] = i < 2 ? nx->shape[i] : 1;
    size_t count = (size_t)(nx->shape[0] * nx->shape[1]), es = loom_dtype_size(nx->dtype);
    unsigned char *ones = loom_malloc(g->ctx, count * es);
    if (!ones)
        return loom_graph_fail(g, LOOM_E_OOM, "spatial_dropout: out of memory for a mask of %zu values", count);
    uint16_t h = nx->dtype == LOOM_F16 ? loom_f32_to_f16(1.0f) : loom_f32_to_bf16(1.0f);
    float one = 1.0f;
    for (size_t i = 0; i < count; i++)
        memcpy(ones + i * es, es == 4 ? (const void *)&one : (const void *)&h, es);
    loom_dtype dt = nx->dtype;
    loom_tensor mask = loom_constant(g, NULL, dt, nd, shape, ones);
    loom_free(g->ctx, ones, count * es);
    return loom_mul(g, x, loom_dropout(g, mask, rate, seed));
}
