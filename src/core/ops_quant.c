/* Op constructors of int8 inference: quantize, dequantize, the int8 GEMM
 * and convolution with their fused requantize (include/loom.h). Shapes and
 * dtypes are checked here, once; a bad one sets the graph's sticky error
 * naming the op and the shapes. */
#include "graph.h"
#include "op_table.h"

#include <math.h>
#include <string.h>

#define SHAPE(buf, nd) loom_shape_str(buf, sizeof buf, (nd)->ndim, (nd)->shape)

static int want_dtype(loom_graph *g, const char *op, const loom_node *nd, const char *what, loom_dtype dt)
{
    if (nd->dtype != dt) {
        loom_graph_fail(g, LOOM_E_DTYPE, "%s: %s \"%s\" is %s, %s is needed", op, what, nd->name,
                        loom_dtype_name(nd->dtype), loom_dtype_name(dt));
        return 0;
    }
    return 1;
}

/* qp f32 [2, C], C the dim of x along axis (1 when axis is -1). */
static int check_qp(loom_graph *g, const char *op, const loom_node *nx, const loom_node *nq, int *axis)
{
    char a[96], b[96];
    if (!want_dtype(g, op, nq, "quantization parameters", LOOM_F32))
        return 0;
    if (*axis < -1 || *axis >= nx->ndim) {
        loom_graph_fail(g, LOOM_E_INVALID, "%s: axis %d of input %s (-1: one scale for the tensor)", op, *axis,
                        SHAPE(a, nx));
        return 0;
    }
    int64_t c = *axis < 0 ? 1 : nx->shape[*axis];
    if (nq->ndim != 2 || nq->shape[0] != 2 || nq->shape[1] != c) {
        loom_graph_fail(g, LOOM_E_SHAPE, "%s: quantization parameters \"%s\" are %s, [2, %lld] (scales, zero "
                        "points) is needed for input %s along axis %d", op, nq->name, SHAPE(b, nq), (long long)c,
                        SHAPE(a, nx), *axis);
        return 0;
    }
    return 1;
}

static loom_tensor quant_op(loom_graph *g, loom_op op, loom_tensor x, loom_tensor qp, int axis)
{
    const char *name = loom_op_name(op);
    loom_tensor ins[2] = {x, qp};
    if (!loom_graph_check_inputs(g, name, 2, ins))
        return LOOM_NONE;
    const loom_node *nx = loom_node_of(g, x), *nq = loom_node_of(g, qp);
    int q = op == LOOM_OP_QUANTIZE;
    if (!want_dtype(g, name, nx, "input", q ? LOOM_F32 : LOOM_I8))
        return LOOM_NONE;
    if (!check_qp(g, name, nx, nq, &axis))
        return LOOM_NONE;
    loom_attr at = {0};
    at.axis = axis;
    int32_t in[2] = {x.id, qp.id};
    return loom_graph_add(g, op, q ? LOOM_I8 : LOOM_F32, nx->ndim, nx->shape, 2, in, NULL, &at);
}

loom_tensor loom_quantize(loom_graph *g, loom_tensor x, loom_tensor qp, int axis)
{
    return quant_op(g, LOOM_OP_QUANTIZE, x, qp, axis);
}

loom_tensor loom_dequantize(loom_graph *g, loom_tensor q, loom_tensor qp, int axis)
{
    return quant_op(g, LOOM_OP_DEQUANTIZE, q, qp, axis);
}

loom_qgemm_opts loom_qgemm_opts_default(void)
{
    loom_qgemm_opts o;
    memset(&o, 0, sizeof o);
    o.out = LOOM_F32;
    o.act = LOOM_ACT_NONE;
    return o;
}

/* The epilogue's attributes from the options; 0 (and the sticky error) if
 * they are out of range. */
static int epilogue(loom_graph *g, const char *op, const loom_qgemm_opts *o, loom_attr *at)
{
    /* relu is the one activation an int8 output can carry (a floor at the
     * zero point); the others follow as ops of their own */
    static const loom_op acts[] = {[LOOM_ACT_NONE] = LOOM_OP_NONE, [LOOM_ACT_RELU] = LOOM_OP_RELU};
    if (o->out != LOOM_F32 && o->out != LOOM_I8) {
        loom_graph_fail(g, LOOM_E_DTYPE, "%s: output dtype %s (f32 or i8)", op, loom_dtype_name(o->out));
        return 0;
    }
    if (o->act != LOOM_ACT_NONE && o->act != LOOM_ACT_RELU) {
        loom_graph_fail(g, LOOM_E_INVALID, "%s: activation %d is not one the epilogue applies (none or relu)", op,
                        o->act);
        return 0;
    }
    if (o->out_zero < -128 || o->out_zero > 127 || o->in_zero < -128 || o->in_zero > 127) {
        loom_graph_fail(g, LOOM_E_RANGE, "%s: zero points %d (input) and %d (output) must lie in [-128, 127]", op,
                        o->in_zero, o->out_zero);
        return 0;
    }
    at->act = acts[o->act];
    at->dact = LOOM_OP_NONE;
    at->qzero = o->out_zero;
    at->qzero_in = o->in_zero;
    return 1;
}

/* bias i32 [n], mult f32 [n]. */
static int check_channel_params(loom_graph *g, const char *op, const loom_node *nb, const loom_node *nm, int64_t n)
{
    char a[96];
    if (!want_dtype(g, op, nb, "bias", LOOM_I32) || !want_dtype(g, op, nm, "multiplier", LOOM_F32))
        return 0;
    const loom_node *ps[2] = {nb, nm};
    for (int i = 0; i < 2; i++)
        if (ps[i]->ndim != 1 || ps[i]->shape[0] != n) {
            loom_graph_fail(g, LOOM_E_SHAPE, "%s: %s \"%s\" is %s, [%lld] (one per output channel) is needed", op,
                            i ? "multiplier" : "bias", ps[i]->name, SHAPE(a, ps[i]), (long long)n);
            return 0;
        }
    return 1;
}

loom_tensor loom_qmatmul(loom_graph *g, loom_tensor a, loom_tensor w, loom_tensor bias, loom_tensor mult,
                         const loom_qgemm_opts *o)
{
    loom_tensor ins[4] = {a, w, bias, mult};
    if (!loom_graph_check_inputs(g, "qmatmul", 4, ins))
        return LOOM_NONE;
    const loom_node *na = loom_node_of(g, a), *nw = loom_node_of(g, w);
    loom_qgemm_opts d = o ? *o : loom_qgemm_opts_default();
    char sa[96], sw[96];
    if (!want_dtype(g, "qmatmul", na, "input", LOOM_I8) || !want_dtype(g, "qmatmul", nw, "weights", LOOM_I8))
        return LOOM_NONE;
    if (na->ndim != 2 || nw->ndim != 2 || na->shape[1] != nw->shape[1])
        return loom_graph_fail(g, LOOM_E_SHAPE, "qmatmul: input %s and weights %s do not fit ([M, K] and [N, K])",
                               SHAPE(sa, na), SHAPE(sw, nw));
    if (!check_channel_params(g, "qmatmul", loom_node_of(g, bias), loom_node_of(g, mult), nw->shape[0]))
        return LOOM_NONE;
    loom_attr at = {0};
    if (!epilogue(g, "qmatmul", &d, &at))
        return LOOM_NONE;
    int64_t shape[2] = {na->shape[0], nw->shape[0]};
    int32_t in[4] = {a.id, w.id, bias.id, mult.id};
    return loom_graph_add(g, LOOM_OP_QMATMUL, d.out, 2, shape, 4, in, NULL, &at);
}

loom_tensor loom_qconv2d(loom_graph *g, loom_tensor x, loom_tensor w, loom_tensor bias, loom_tensor mult,
                         const loom_conv2d_opts *co, const loom_qgemm_opts *o)
{
    loom_tensor ins[4] = {x, w, bias, mult};
    if (!loom_graph_check_inputs(g, "qconv2d", 4, ins))
        return LOOM_NONE;
    const loom_node *nx = loom_node_of(g, x), *nw = loom_node_of(g, w);
    if (!want_dtype(g, "qconv2d", nx, "input", LOOM_I8) || !want_dtype(g, "qconv2d", nw, "weights", LOOM_I8))
        return LOOM_NONE;
    loom_qgemm_opts d = o ? *o : loom_qgemm_opts_default();
    loom_attr at = {0};
    if (!epilogue(g, "qconv2d", &d, &at))
        return LOOM_NONE;
    /* the geometry is conv2d's: its constructor checks it on a float
     * stand-in of the same shapes, in a scratch graph */
    loom_graph *s = NULL;
    if (loom_graph_create(g->ctx, &s) != LOOM_OK)
        return loom_graph_fail(g, LOOM_E_OOM, "qconv2d: out of memory");
    loom_tensor sx = loom_input(s, "x", LOOM_F32, nx->ndim, nx->shape);
    loom_tensor sw = loom_input(s, "w", LOOM_F32, nw->ndim, nw->shape);
    loom_tensor sy = loom_conv2d(s, sx, sw, LOOM_NONE, co);
    const loom_node *ny = loom_node_of(s, sy);
    if (!ny) {
        loom_tensor r = loom_graph_fail(g, loom_graph_status(s), "q%s", loom_graph_error(s));
        loom_graph_destroy(s);
        return r;
    }
    int64_t shape[4];
    memcpy(shape, ny->shape, sizeof shape);
    loom_attr geo = ny->attr;
    loom_graph_destroy(s);
    memcpy(at.stride, geo.stride, sizeof at.stride);
    memcpy(at.dil, geo.dil, sizeof at.dil);
    memcpy(at.pad, geo.pad, sizeof at.pad);
    at.cgroups = geo.cgroups;
    if (!check_channel_params(g, "qconv2d", loom_node_of(g, bias), loom_node_of(g, mult), nw->shape[0]))
        return LOOM_NONE;
    int32_t in[4] = {x.id, w.id, bias.id, mult.id};
    return loom_graph_add(g, LOOM_OP_QCONV2D, d.out, 4, shape, 4, in, NULL, &at);
}

int8_t loom_quantize_value(float x, float scale, int zero)
{
    /* x / scale, one correctly rounded division, then round half to even
     * (the default rounding mode: nearbyintf), as every kernel does */
    const loom_dtype_traits *tr = loom_dtype_traits_of(LOOM_I8);
    float lo = (float)tr->qmin, hi = (float)tr->qmax;
    float t = nearbyintf(x / scale) + (float)zero;
    if (!(t > lo))
        return isnan(t) ? (int8_t)zero : (int8_t)tr->qmin;
    return (int8_t)(t < hi ? t : hi);
}
