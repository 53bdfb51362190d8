/* Builders of the element-wise, comparison, reduction and linear-algebra
 * ops: each turns the node being built into loom ops (onnx_table.c says
 * which one runs for which op type and opset). Integer tensors compute in
 * f32 and are cast back to i32 (exact while the values stay below 2^24);
 * bools are 0 / 1 masks in the dtype of the values they came from. */
#include "onnx_ops.h"

#include <math.h>
#include <string.h>

/* ---- helpers ---- */

loom_dtype ox_float_dt(ox *b, const ox_val *v)
{
    loom_dtype d = ox_dtype(b, v);
    return loom_dtype_is_float(d) ? d : LOOM_F32;
}

loom_status ox_pair(ox *b, ox_val *x, ox_val *y, loom_tensor *tx, loom_tensor *ty, loom_dtype *dt)
{
    const ox_val *r = !ox_is_known(x) ? x : !ox_is_known(y) ? y : x;
    loom_dtype d = ox_float_dt(b, r);
    LOOM_TRY(ox_tensor(b, x, d, tx));
    LOOM_TRY(ox_tensor(b, y, d, ty));
    if (dt)
        *dt = d;
    return LOOM_OK;
}

loom_tensor ox_scalar(ox *b, double v, loom_dtype dt)
{
    float f = (float)v;
    if (dt == LOOM_F32 || !loom_dtype_is_float(dt))
        return loom_constant(b->g, NULL, LOOM_F32, 0, NULL, &f);
    uint16_t h;
    loom_convert(dt, &h, LOOM_F32, &f, 1);
    return loom_constant(b->g, NULL, dt, 0, NULL, &h);
}

loom_status ox_set_num(ox *b, int i, loom_tensor t, int type)
{
    if (!t.id)
        return ox_check_graph(b) != LOOM_OK ? loom_graph_status(b->g) : ox_fail(b, LOOM_E_UNSUPPORTED, "no result");
    loom_dtype want = loom_onnx_dtype(type);
    if (type != LOOM_ONNX_BOOL && want != LOOM_DTYPE_COUNT && loom_tensor_dtype(b->g, t) != want)
        t = loom_cast(b->g, t, want);
    LOOM_TRY(ox_check_graph(b));
    return ox_set(b, i, t, type);
}

loom_status ox_axis(ox *b, int64_t axis, int r, const char *attr, int *out)
{
    *out = 0;
    if (axis < -r || axis >= (r ? r : 1))
        return ox_fail(b, LOOM_E_FORMAT, "%s %lld is out of range for rank %d", attr, (long long)axis, r);
    *out = (int)(axis < 0 ? axis + r : axis);
    return LOOM_OK;
}

loom_status ox_in_float(ox *b, int i, loom_tensor *t, loom_dtype *dt, ox_val **v)
{
    ox_val *x;
    LOOM_TRY(ox_need(b, i, &x));
    loom_dtype d = ox_float_dt(b, x);
    LOOM_TRY(ox_tensor(b, x, d, t));
    if (dt)
        *dt = d;
    if (v)
        *v = x;
    return LOOM_OK;
}

loom_status ox_known_ints(ox *b, int i, int64_t *out, int max, int *n, const char *what)
{
    ox_val *v = ox_in(b, i);
    *n = -1;
    if (!v)
        return LOOM_OK;
    loom_status s;
    ox_const *k = ox_known(b, v, &s);
    if (s != LOOM_OK)
        return s;
    if (!k)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "%s (input %d \"%s\") is computed at run time; loom needs it at load",
                       what, i, v->name);
    if (k->n > max)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "%s has %lld values (at most %d)", what, (long long)k->n, max);
    for (int64_t j = 0; j < k->n; j++)
        out[j] = ox_const_geti(k, j);
    *n = (int)k->n;
    return LOOM_OK;
}

loom_status ox_known_float(ox *b, int i, double def, double *out, int *present)
{
    ox_val *v = ox_in(b, i);
    *out = def;
    if (present)
        *present = v != NULL;
    if (!v)
        return LOOM_OK;
    loom_status s;
    ox_const *k = ox_known(b, v, &s);
    if (s != LOOM_OK)
        return s;
    if (!k || k->n != 1)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "input %d \"%s\" must be one value known at load", i, v->name);
    *out = ox_const_get(k, 0);
    return LOOM_OK;
}

loom_status ox_reshape(ox *b, loom_tensor t, int nd, const int64_t *shape, loom_tensor *out)
{
    char sb[160];
    if (nd > LOOM_MAX_DIMS)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "the result has shape %s of %d dims; loom's tensors hold at most %d",
                       loom_shape_str(sb, sizeof sb, LOOM_MAX_DIMS, shape), nd, LOOM_MAX_DIMS);
    int same = loom_tensor_ndim(b->g, t) == nd;
    for (int i = 0; same && i < nd; i++)
        same = loom_tensor_dim(b->g, t, i) == shape[i];
    *out = same ? t : loom_reshape(b->g, t, nd, shape);
    return ox_check_graph(b);
}

/* ---- element-wise unary ---- */

typedef loom_tensor (*un_fn)(loom_graph *g, loom_tensor x);

static loom_status unary(ox *b, un_fn f)
{
    loom_tensor x;
    ox_val *v;
    LOOM_TRY(ox_in_float(b, 0, &x, NULL, &v));
    return ox_set_num(b, 0, f(b->g, x), v->type);
}

#define UNARY_BUILDER(name, fn)                                                                                   \
    loom_status name(ox *b) { return unary(b, fn); }
UNARY_BUILDER(oxb_relu, loom_relu)
UNARY_BUILDER(oxb_sigmoid, loom_sigmoid)
UNARY_BUILDER(oxb_tanh, loom_tanh)
UNARY_BUILDER(oxb_exp, loom_exp)
UNARY_BUILDER(oxb_log, loom_log)
UNARY_BUILDER(oxb_abs, loom_abs)
UNARY_BUILDER(oxb_neg, loom_neg)
UNARY_BUILDER(oxb_sqrt, loom_sqrt)
UNARY_BUILDER(oxb_softplus, loom_softplus)
UNARY_BUILDER(oxb_softsign, loom_softsign)

loom_status oxb_reciprocal(ox *b)
{
    loom_tensor x;
    loom_dtype dt;
    ox_val *v;
    LOOM_TRY(ox_in_float(b, 0, &x, &dt, &v));
    return ox_set_num(b, 0, loom_div(b->g, ox_scalar(b, 1, dt), x), v->type);
}

loom_status oxb_identity(ox *b)
{
    ox_val *x;
    LOOM_TRY(ox_need(b, 0, &x));
    ox_val *o = ox_out(b, 0);
    if (o && x->init) {
        /* the same parameter under a second name (shared weights), still
         * known at load for the shape arithmetic */
        o->init = x->init;
        o->same = x->same ? x->same : x;
        o->type = x->type;
        return LOOM_OK;
    }
    if (ox_is_known(x)) {
        loom_status s;
        ox_const *k = ox_known(b, x, &s);
        if (s != LOOM_OK)
            return s;
        return ox_set_const(b, 0, ox_const_copy(b->ctx, k));
    }
    loom_tensor t;
    LOOM_TRY(ox_tensor(b, x, LOOM_DTYPE_COUNT, &t));
    return ox_set(b, 0, t, x->type);
}

/* erf by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7):
 * 1 - (a1 t + ... + a5 t^5) exp(-x^2), t = 1 / (1 + p |x|), odd in x. */
loom_status oxb_erf(ox *b)
{
    loom_tensor x;
    loom_dtype dt;
    ox_val *v;
    LOOM_TRY(ox_in_float(b, 0, &x, &dt, &v));
    loom_graph *g = b->g;
    static const double a[5] = {0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429};
    loom_tensor ax = loom_abs(g, x);
    loom_tensor t = loom_div(g, ox_scalar(b, 1, dt), loom_add(g, loom_scale(g, ax, 0.3275911f), ox_scalar(b, 1, dt)));
    loom_tensor poly = loom_scale(g, t, (float)a[4]);
    for (int i = 3; i >= 0; i--)
        poly = loom_mul(g, loom_add(g, poly, ox_scalar(b, a[i], dt)), t);
    loom_tensor e = loom_sub(g, ox_scalar(b, 1, dt), loom_mul(g, poly, loom_exp(g, loom_neg(g, loom_square(g, x)))));
    loom_tensor zero = ox_scalar(b, 0, dt);
    loom_tensor y = loom_where(g, loom_lt(g, x, zero), loom_neg(g, e), e);
    return ox_set_num(b, 0, y, v->type);
}

/* sign(x) = (x > 0) - (x < 0) */
loom_status oxb_sign(ox *b)
{
    loom_tensor x;
    loom_dtype dt;
    ox_val *v;
    LOOM_TRY(ox_in_float(b, 0, &x, &dt, &v));
    loom_tensor z = ox_scalar(b, 0, dt);
    return ox_set_num(b, 0, loom_sub(b->g, loom_gt(b->g, x, z), loom_lt(b->g, x, z)), v->type);
}

/* Rounding through loom's cast to i32 (nearest even), for |x| < 2^23;
 * larger floats are integers already and NaN stays. */
static loom_tensor round_even(ox *b, loom_tensor x, loom_dtype dt)
{
    loom_tensor r = loom_cast(b->g, loom_cast(b->g, x, LOOM_I32), dt);
    loom_tensor small = loom_lt(b->g, loom_abs(b->g, x), ox_scalar(b, 8388608.0, dt));
    return loom_where(b->g, small, r, x);
}

static loom_status rounding(ox *b, int mode)
{
    loom_tensor x;
    loom_dtype dt;
    ox_val *v;
    LOOM_TRY(ox_in_float(b, 0, &x, &dt, &v));
    if (ox_type_is_int(v->type))
        return ox_set_num(b, 0, x, v->type);
    loom_tensor r = round_even(b, x, dt);
    if (mode < 0)
        r = loom_sub(b->g, r, loom_gt(b->g, r, x));
    else if (mode > 0)
        r = loom_add(b->g, r, loom_lt(b->g, r, x));
    return ox_set_num(b, 0, r, v->type);
}

loom_status oxb_floor(ox *b) { return rounding(b, -1); }
loom_status oxb_ceil(ox *b) { return rounding(b, 1); }
loom_status oxb_round(ox *b) { return rounding(b, 0); }

/* ---- parametric activations ---- */

loom_status oxb_leaky_relu(ox *b)
{
    float alpha;
    LOOM_TRY(ox_attr_float(b, "alpha", 0.01f, &alpha, NULL));
    loom_tensor x;
    ox_val *v;
    LOOM_TRY(ox_in_float(b, 0, &x, NULL, &v));
    return ox_set_num(b, 0, loom_leaky_relu(b->g, x, alpha), v->type);
}

loom_status oxb_elu(ox *b)
{
    float alpha;
    LOOM_TRY(ox_attr_float(b, "alpha", 1.0f, &alpha, NULL));
    loom_tensor x;
    ox_val *v;
    LOOM_TRY(ox_in_float(b, 0, &x, NULL, &v));
    return ox_set_num(b, 0, loom_elu(b->g, x, alpha), v->type);
}

loom_status oxb_selu(ox *b)
{
    float alpha, gamma;
    LOOM_TRY(ox_attr_float(b, "alpha", 1.67326319217681884765625f, &alpha, NULL));
    LOOM_TRY(ox_attr_float(b, "gamma", 1.05070102214813232421875f, &gamma, NULL));
    loom_tensor x;
    ox_val *v;
    LOOM_TRY(ox_in_float(b, 0, &x, NULL, &v));
    return ox_set_num(b, 0, loom_scale(b->g, loom_elu(b->g, x, alpha), gamma), v->type);
}

/* celu(x) = alpha elu(x / alpha, 1) */
loom_status oxb_celu(ox *b)
{
    float alpha;
    LOOM_TRY(ox_attr_float(b, "alpha", 1.0f, &alpha, NULL));
    if (alpha == 0)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "attribute 'alpha' = 0");
    loom_tensor x;
    ox_val *v;
    LOOM_TRY(ox_in_float(b, 0, &x, NULL, &v));
    loom_tensor y = loom_scale(b->g, loom_elu(b->g, loom_scale(b->g, x, 1.0f / alpha), 1.0f), alpha);
    return ox_set_num(b, 0, y, v->type);
}

static loom_tensor hard_sigmoid(ox *b, loom_tensor x, float alpha, float beta, loom_dtype dt)
{
    return loom_clamp(b->g, loom_add(b->g, loom_scale(b->g, x, alpha), ox_scalar(b, beta, dt)), 0.0f, 1.0f);
}

loom_status oxb_hard_sigmoid(ox *b)
{
    float alpha, beta;
    LOOM_TRY(ox_attr_float(b, "alpha", 0.2f, &alpha, NULL));
    LOOM_TRY(ox_attr_float(b, "beta", 0.5f, &beta, NULL));
    loom_tensor x;
    loom_dtype dt;
    ox_val *v;
    LOOM_TRY(ox_in_float(b, 0, &x, &dt, &v));
    return ox_set_num(b, 0, hard_sigmoid(b, x, alpha, beta, dt), v->type);
}

loom_status oxb_hard_swish(ox *b)
{
    loom_tensor x;
    loom_dtype dt;
    ox_val *v;
    LOOM_TRY(ox_in_float(b, 0, &x, &dt, &v));
    return ox_set_num(b, 0, loom_mul(b->g, x, hard_sigmoid(b, x, 1.0f / 6.0f, 0.5f, dt)), v->type);
}

loom_status oxb_mish(ox *b)
{
    loom_tensor x;
    loom_dtype dt;
    ox_val *v;
    LOOM_TRY(ox_in_float(b, 0, &x, &dt, &v));
    /* tanh(softplus(x)) = n (n + 2) / (n (n + 2) + 2) with n = e^x: no
     * cancellation for negative x (e^x clamped where the ratio is 1) */
    loom_graph *g = b->g;
    loom_tensor n = loom_exp(g, loom_clamp(g, x, -INFINITY, 20.0f));
    loom_tensor t = loom_mul(g, n, loom_add(g, n, ox_scalar(b, 2, dt)));
    loom_tensor y = loom_mul(g, x, loom_div(g, t, loom_add(g, t, ox_scalar(b, 2, dt))));
    return ox_set_num(b, 0, y, v->type);
}

loom_status oxb_swish(ox *b)
{
    float alpha;
    LOOM_TRY(ox_attr_float(b, "alpha", 1.0f, &alpha, NULL));
    loom_tensor x;
    ox_val *v;
    LOOM_TRY(ox_in_float(b, 0, &x, NULL, &v));
    loom_tensor s = alpha == 1.0f ? loom_silu(b->g, x) : loom_mul(b->g, x, loom_sigmoid(b->g, loom_scale(b->g, x, alpha)));
    return ox_set_num(b, 0, s, v->type);
}

loom_status oxb_thresholded_relu(ox *b)
{
    float alpha;
    LOOM_TRY(ox_attr_float(b, "alpha", 1.0f, &alpha, NULL));
    loom_tensor x;
    loom_dtype dt;
    ox_val *v;
    LOOM_TRY(ox_in_float(b, 0, &x, &dt, &v));
    loom_tensor y = loom_where(b->g, loom_gt(b->g, x, ox_scalar(b, alpha, dt)), x, ox_scalar(b, 0, dt));
    return ox_set_num(b, 0, y, v->type);
}

loom_status oxb_shrink(ox *b)
{
    float bias, lambd;
    LOOM_TRY(ox_attr_float(b, "bias", 0.0f, &bias, NULL));
    LOOM_TRY(ox_attr_float(b, "lambd", 0.5f, &lambd, NULL));
    loom_tensor x;
    loom_dtype dt;
    ox_val *v;
    LOOM_TRY(ox_in_float(b, 0, &x, &dt, &v));
    loom_graph *g = b->g;
    loom_tensor hi = loom_where(g, loom_gt(g, x, ox_scalar(b, lambd, dt)), loom_sub(g, x, ox_scalar(b, bias, dt)),
                                ox_scalar(b, 0, dt));
    loom_tensor y = loom_where(g, loom_lt(g, x, ox_scalar(b, -lambd, dt)), loom_add(g, x, ox_scalar(b, bias, dt)), hi);
    return ox_set_num(b, 0, y, v->type);
}

loom_status oxb_gelu(ox *b)
{
    const char *approx;
    LOOM_TRY(ox_attr_string(b, "approximate", "none", &approx));
    loom_tensor x;
    loom_dtype dt;
    ox_val *v;
    LOOM_TRY(ox_in_float(b, 0, &x, &dt, &v));
    if (!strcmp(approx, "none"))
        return ox_set_num(b, 0, loom_gelu(b->g, x), v->type);
    if (strcmp(approx, "tanh"))
        return ox_fail(b, LOOM_E_UNSUPPORTED, "attribute 'approximate' = \"%s\" (none or tanh)", approx);
    /* 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) */
    loom_graph *g = b->g;
    loom_tensor x3 = loom_mul(g, loom_square(g, x), x);
    loom_tensor in = loom_scale(g, loom_add(g, x, loom_scale(g, x3, 0.044715f)), 0.7978845608028654f);
    loom_tensor y = loom_mul(g, loom_scale(g, x, 0.5f), loom_add(g, loom_tanh(g, in), ox_scalar(b, 1, dt)));
    return ox_set_num(b, 0, y, v->type);
}

loom_status oxb_prelu(ox *b)
{
    ox_val *x, *s;
    LOOM_TRY(ox_need(b, 0, &x));
    LOOM_TRY(ox_need(b, 1, &s));
    loom_tensor tx, ts;
    loom_dtype dt;
    LOOM_TRY(ox_pair(b, x, s, &tx, &ts, &dt));
    loom_graph *g = b->g;
    loom_tensor y = loom_where(g, loom_lt(g, tx, ox_scalar(b, 0, dt)), loom_mul(g, tx, ts), tx);
    return ox_set_num(b, 0, y, x->type);
}

loom_status oxb_clip(ox *b)
{
    ox_val *x, *lo = ox_in(b, 1), *hi = ox_in(b, 2);
    LOOM_TRY(ox_need(b, 0, &x));
    loom_dtype dt = ox_float_dt(b, x);
    loom_tensor t;
    LOOM_TRY(ox_tensor(b, x, dt, &t));
    if ((!lo || ox_is_known(lo)) && (!hi || ox_is_known(hi))) {
        double l, h;
        LOOM_TRY(ox_known_float(b, 1, -INFINITY, &l, NULL));
        LOOM_TRY(ox_known_float(b, 2, INFINITY, &h, NULL));
        return ox_set_num(b, 0, loom_clamp(b->g, t, (float)l, (float)h), x->type);
    }
    loom_tensor y = t, lt, ht;
    if (lo) {
        LOOM_TRY(ox_tensor(b, lo, dt, &lt));
        y = loom_maximum(b->g, y, lt);
    }
    if (hi) {
        LOOM_TRY(ox_tensor(b, hi, dt, &ht));
        y = loom_minimum(b->g, y, ht);
    }
    return ox_set_num(b, 0, y, x->type);
}

/* ---- binary and variadic ---- */

typedef loom_tensor (*bin_fn)(loom_graph *g, loom_tensor a, loom_tensor b);

static loom_status binary(ox *b, bin_fn f, int cmp)
{
    ox_val *x, *y;
    LOOM_TRY(ox_need(b, 0, &x));
    LOOM_TRY(ox_need(b, 1, &y));
    loom_tensor tx, ty;
    LOOM_TRY(ox_pair(b, x, y, &tx, &ty, NULL));
    return ox_set_num(b, 0, f(b->g, tx, ty), cmp ? LOOM_ONNX_BOOL : x->type);
}

loom_status oxb_add(ox *b) { return binary(b, loom_add, 0); }
loom_status oxb_sub(ox *b) { return binary(b, loom_sub, 0); }
loom_status oxb_mul(ox *b) { return binary(b, loom_mul, 0); }
/* toward zero, as C and ONNX's integer division and casts do */
static loom_tensor trunc_(ox *b, loom_tensor t, loom_dtype dt)
{
    loom_graph *g = b->g;
    loom_tensor a = loom_abs(g, t);
    loom_tensor r = round_even(b, a, dt);
    loom_tensor fl = loom_sub(g, r, loom_gt(g, r, a));
    return loom_where(g, loom_lt(g, t, ox_scalar(b, 0, dt)), loom_neg(g, fl), fl);
}

loom_status oxb_div(ox *b)
{
    ox_val *x, *y;
    LOOM_TRY(ox_need(b, 0, &x));
    LOOM_TRY(ox_need(b, 1, &y));
    loom_tensor tx, ty;
    loom_dtype dt;
    LOOM_TRY(ox_pair(b, x, y, &tx, &ty, &dt));
    loom_tensor q = loom_div(b->g, tx, ty);
    if (ox_type_is_int(x->type))
        q = trunc_(b, q, dt);
    return ox_set_num(b, 0, q, x->type);
}
loom_status oxb_pow(ox *b) { return binary(b, loom_pow, 0); }
loom_status oxb_equal(ox *b) { return binary(b, loom_eq, 1); }
loom_status oxb_less(ox *b) { return binary(b, loom_lt, 1); }
loom_status oxb_less_equal(ox *b) { return binary(b, loom_le, 1); }
loom_status oxb_greater(ox *b) { return binary(b, loom_gt, 1); }
loom_status oxb_greater_equal(ox *b) { return binary(b, loom_ge, 1); }
loom_status oxb_and(ox *b) { return binary(b, loom_mul, 1); }
loom_status oxb_or(ox *b) { return binary(b, loom_maximum, 1); }

loom_status oxb_xor(ox *b)
{
    ox_val *x, *y;
    LOOM_TRY(ox_need(b, 0, &x));
    LOOM_TRY(ox_need(b, 1, &y));
    loom_tensor tx, ty;
    LOOM_TRY(ox_pair(b, x, y, &tx, &ty, NULL));
    return ox_set(b, 0, loom_abs(b->g, loom_sub(b->g, tx, ty)), LOOM_ONNX_BOOL);
}

loom_status oxb_not(ox *b)
{
    loom_tensor x;
    loom_dtype dt;
    LOOM_TRY(ox_in_float(b, 0, &x, &dt, NULL));
    return ox_set(b, 0, loom_sub(b->g, ox_scalar(b, 1, dt), x), LOOM_ONNX_BOOL);
}

loom_status oxb_is_nan(ox *b)
{
    loom_tensor x;
    loom_dtype dt;
    LOOM_TRY(ox_in_float(b, 0, &x, &dt, NULL));
    return ox_set(b, 0, loom_sub(b->g, ox_scalar(b, 1, dt), loom_eq(b->g, x, x)), LOOM_ONNX_BOOL);
}

loom_status oxb_is_inf(ox *b)
{
    int64_t neg, pos;
    LOOM_TRY(ox_attr_int(b, "detect_negative", 1, &neg, NULL));
    LOOM_TRY(ox_attr_int(b, "detect_positive", 1, &pos, NULL));
    loom_tensor x;
    loom_dtype dt;
    LOOM_TRY(ox_in_float(b, 0, &x, &dt, NULL));
    loom_graph *g = b->g;
    loom_tensor y;
    if (neg && pos)
        y = loom_eq(g, loom_abs(g, x), ox_scalar(b, INFINITY, dt));
    else if (pos)
        y = loom_eq(g, x, ox_scalar(b, INFINITY, dt));
    else if (neg)
        y = loom_eq(g, x, ox_scalar(b, -INFINITY, dt));
    else
        y = loom_mul(g, loom_eq(g, x, x), ox_scalar(b, 0, dt));
    return ox_set(b, 0, y, LOOM_ONNX_BOOL);
}

loom_status oxb_where(ox *b)
{
    ox_val *c, *x, *y;
    LOOM_TRY(ox_need(b, 0, &c));
    LOOM_TRY(ox_need(b, 1, &x));
    LOOM_TRY(ox_need(b, 2, &y));
    loom_tensor tx, ty, tc;
    loom_dtype dt;
    LOOM_TRY(ox_pair(b, x, y, &tx, &ty, &dt));
    LOOM_TRY(ox_tensor(b, c, dt, &tc));
    return ox_set_num(b, 0, loom_where(b->g, tc, tx, ty), x->type);
}

static loom_status variadic(ox *b, bin_fn f, int mean)
{
    int n = ox_nin(b);
    if (n < 1)
        return ox_fail(b, LOOM_E_FORMAT, "no inputs");
    ox_val *x0;
    LOOM_TRY(ox_need(b, 0, &x0));
    /* one dtype for all: the first run-time input's */
    loom_dtype dt = LOOM_F32;
    for (int i = 0; i < n; i++) {
        ox_val *v = ox_in(b, i);
        if (v && !ox_is_known(v)) {
            dt = ox_float_dt(b, v);
            break;
        }
    }
    loom_tensor acc = LOOM_NONE;
    for (int i = 0; i < n; i++) {
        ox_val *v;
        loom_tensor t;
        LOOM_TRY(ox_need(b, i, &v));
        LOOM_TRY(ox_tensor(b, v, dt, &t));
        acc = acc.id ? f(b->g, acc, t) : t;
    }
    if (mean && n > 1)
        acc = loom_scale(b->g, acc, 1.0f / (float)n);
    if (n == 1) {
        /* the input itself, as a node of its own */
        int nd = loom_tensor_ndim(b->g, acc);
        int64_t shape[LOOM_MAX_DIMS];
        for (int i = 0; i < nd; i++)
            shape[i] = loom_tensor_dim(b->g, acc, i);
        acc = loom_reshape(b->g, acc, nd, shape);
    }
    return ox_set_num(b, 0, acc, x0->type);
}

loom_status oxb_max(ox *b) { return variadic(b, loom_maximum, 0); }
loom_status oxb_min(ox *b) { return variadic(b, loom_minimum, 0); }
loom_status oxb_sum(ox *b) { return variadic(b, loom_add, 0); }
loom_status oxb_mean(ox *b) { return variadic(b, loom_add, 1); }

/* ---- folds of these ---- */

loom_status oxf_add(ox *b) { return ox_fold_binary(b, OXF_ADD, 0); }
loom_status oxf_sub(ox *b) { return ox_fold_binary(b, OXF_SUB, 0); }
loom_status oxf_mul(ox *b) { return ox_fold_binary(b, OXF_MUL, 0); }
loom_status oxf_div(ox *b) { return ox_fold_binary(b, OXF_DIV, 0); }
loom_status oxf_pow(ox *b) { return ox_fold_binary(b, OXF_POW, 0); }
loom_status oxf_equal(ox *b) { return ox_fold_binary(b, OXF_EQ, LOOM_ONNX_BOOL); }
loom_status oxf_less(ox *b) { return ox_fold_binary(b, OXF_LT, LOOM_ONNX_BOOL); }
loom_status oxf_less_equal(ox *b) { return ox_fold_binary(b, OXF_LE, LOOM_ONNX_BOOL); }
loom_status oxf_greater(ox *b) { return ox_fold_binary(b, OXF_GT, LOOM_ONNX_BOOL); }
loom_status oxf_greater_equal(ox *b) { return ox_fold_binary(b, OXF_GE, LOOM_ONNX_BOOL); }
loom_status oxf_and(ox *b) { return ox_fold_binary(b, OXF_AND, LOOM_ONNX_BOOL); }
loom_status oxf_or(ox *b) { return ox_fold_binary(b, OXF_OR, LOOM_ONNX_BOOL); }
loom_status oxf_xor(ox *b) { return ox_fold_binary(b, OXF_XOR, LOOM_ONNX_BOOL); }
loom_status oxf_not(ox *b) { return ox_fold_unary(b, OXF_NOT); }
loom_status oxf_neg(ox *b) { return ox_fold_unary(b, OXF_NEG); }
loom_status oxf_abs(ox *b) { return ox_fold_unary(b, OXF_ABS); }
loom_status oxf_sign(ox *b) { return ox_fold_unary(b, OXF_SIGN); }
loom_status oxf_floor(ox *b) { return ox_fold_unary(b, OXF_FLOOR); }
loom_status oxf_ceil(ox *b) { return ox_fold_unary(b, OXF_CEIL); }
loom_status oxf_round(ox *b) { return ox_fold_unary(b, OXF_ROUND); }
loom_status oxf_sqrt(ox *b) { return ox_fold_unary(b, OXF_SQRT); }
loom_status oxf_reciprocal(ox *b) { return ox_fold_unary(b, OXF_RECIP); }
loom_status oxf_relu(ox *b) { return ox_fold_unary(b, OXF_RELU); }
loom_status oxf_where(ox *b) { return ox_fold_where(b); }
loom_status oxf_max(ox *b) { return ox_fold_variadic(b, OXF_MAX, 0); }
loom_status oxf_min(ox *b) { return ox_fold_variadic(b, OXF_MIN, 0); }
loom_status oxf_sum(ox *b) { return ox_fold_variadic(b, OXF_ADD, 0); }
loom_status oxf_mean(ox *b) { return ox_fold_variadic(b, OXF_ADD, 1); }

loom_status oxf_mod(ox *b)
{
    int64_t fmod_attr;
    LOOM_TRY(ox_attr_int(b, "fmod", 0, &fmod_attr, NULL));
    return ox_fold_binary(b, fmod_attr ? OXF_FMOD : OXF_MOD, 0);
}

/* Mod at run time: floats only with fmod = 1 would need trunc; loom has
 * a - b floor(a / b) for fmod = 0 on floats. */
loom_status oxb_mod(ox *b)
{
    int64_t fm;
    LOOM_TRY(ox_attr_int(b, "fmod", 0, &fm, NULL));
    ox_val *x, *y;
    LOOM_TRY(ox_need(b, 0, &x));
    LOOM_TRY(ox_need(b, 1, &y));
    loom_tensor tx, ty;
    loom_dtype dt;
    LOOM_TRY(ox_pair(b, x, y, &tx, &ty, &dt));
    loom_graph *g = b->g;
    loom_tensor q = loom_div(g, tx, ty);
    loom_tensor r = round_even(b, q, dt);
    loom_tensor fl = loom_sub(g, r, loom_gt(g, r, q));
    if (fm) {
        /* trunc: floor for q >= 0, ceil below */
        loom_tensor ce = loom_add(g, r, loom_lt(g, r, q));
        fl = loom_where(g, loom_lt(g, q, ox_scalar(b, 0, dt)), ce, fl);
    }
    return ox_set_num(b, 0, loom_sub(g, tx, loom_mul(g, ty, fl)), x->type);
}

/* ---- casts ---- */

static loom_status cast_to(ox *b, int to)
{
    ox_val *x;
    LOOM_TRY(ox_need(b, 0, &x));
    loom_dtype dt = loom_onnx_dtype(to);
    if (dt == LOOM_DTYPE_COUNT)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "cast to %s (%d): loom holds it in no dtype", loom_onnx_type_name(to), to);
    loom_tensor t;
    loom_graph *g = b->g;
    if (to == LOOM_ONNX_BOOL) {
        loom_dtype fd = ox_float_dt(b, x);
        LOOM_TRY(ox_tensor(b, x, fd, &t));
        return ox_set(b, 0, loom_sub(g, ox_scalar(b, 1, fd), loom_eq(g, t, ox_scalar(b, 0, fd))), to);
    }
    if (ox_type_is_int(to) && ox_type_is_float(x->type)) {
        /* ONNX truncates toward zero; loom's cast rounds to nearest */
        loom_dtype fd = ox_float_dt(b, x);
        LOOM_TRY(ox_tensor(b, x, fd, &t));
        return ox_set(b, 0, loom_cast(g, trunc_(b, t, fd), LOOM_I32), to);
    }
    LOOM_TRY(ox_tensor(b, x, dt, &t));
    return ox_set(b, 0, t, to);
}

static loom_status cast_attrs(ox *b)
{
    int64_t sat;
    LOOM_TRY(ox_attr_int(b, "saturate", 1, &sat, NULL));
    const char *mode;
    return ox_attr_string(b, "round_mode", "up", &mode);
}

loom_status oxb_cast(ox *b)
{
    int64_t to;
    int present;
    LOOM_TRY(ox_attr_int(b, "to", 0, &to, &present));
    if (!present)
        return ox_fail(b, LOOM_E_FORMAT, "attribute 'to' is missing");
    LOOM_TRY(cast_attrs(b));
    return cast_to(b, (int)to);
}

loom_status oxf_cast(ox *b)
{
    int64_t to;
    int present;
    LOOM_TRY(ox_attr_int(b, "to", 0, &to, &present));
    if (!present)
        return ox_fail(b, LOOM_E_FORMAT, "attribute 'to' is missing");
    LOOM_TRY(cast_attrs(b));
    return ox_fold_cast_to(b, (int)to);
}

loom_status oxb_cast_like(ox *b)
{
    ox_val *like;
    LOOM_TRY(ox_need(b, 1, &like));
    LOOM_TRY(cast_attrs(b));
    return cast_to(b, like->type);
}

loom_status oxf_cast_like(ox *b)
{
    ox_val *like;
    LOOM_TRY(ox_need(b, 1, &like));
    LOOM_TRY(cast_attrs(b));
    return ox_fold_cast_to(b, like->type);
}

/* ---- softmax ---- */

static loom_status softmax(ox *b, int log)
{
    int64_t axis;
    LOOM_TRY(ox_attr_int(b, "axis", -1, &axis, NULL));
    loom_tensor x;
    ox_val *v;
    LOOM_TRY(ox_in_float(b, 0, &x, NULL, &v));
    int r = loom_tensor_ndim(b->g, x), a;
    if (r == 0) {
        /* a scalar: softmax 1, log-softmax 0 */
        loom_dtype dt = loom_tensor_dtype(b->g, x);
        loom_tensor one = loom_add(b->g, loom_mul(b->g, x, ox_scalar(b, 0, dt)), ox_scalar(b, log ? 0 : 1, dt));
        return ox_set_num(b, 0, one, v->type);
    }
    LOOM_TRY(ox_axis(b, axis, r, "attribute 'axis'", &a));
    return ox_set_num(b, 0, log ? loom_log_softmax_axis(b->g, x, a) : loom_softmax_axis(b->g, x, a), v->type);
}

loom_status oxb_softmax(ox *b) { return softmax(b, 0); }
loom_status oxb_log_softmax(ox *b) { return softmax(b, 1); }

/* ---- reductions ---- */

/* The axes of a reduction, sorted, deduplicated, positive: from input 1
 * (opset >= 18, ReduceSum >= 13) or attribute 'axes'. *all when none. */
static loom_status reduce_axes(ox *b, int from_input, int r, int *axes, int *n, int *noop)
{
    int64_t raw[OX_MAX_RANK * 2];
    int cnt = -1;
    int64_t noop_empty;
    LOOM_TRY(ox_attr_int(b, "noop_with_empty_axes", 0, &noop_empty, NULL));
    if (from_input) {
        LOOM_TRY(ox_known_ints(b, 1, raw, OX_MAX_RANK * 2, &cnt, "axes"));
    } else {
        const int64_t *ax;
        size_t na;
        int present;
        LOOM_TRY(ox_attr_ints(b, "axes", &ax, &na, &present));
        if (present) {
            if (na > OX_MAX_RANK * 2)
                return ox_fail(b, LOOM_E_FORMAT, "attribute 'axes' has %zu values", na);
            for (size_t i = 0; i < na; i++)
                raw[i] = ax[i];
            cnt = (int)na;
        }
    }
    *noop = 0;
    if (cnt <= 0) {
        if (noop_empty) {
            *noop = 1;
            *n = 0;
            return LOOM_OK;
        }
        for (int i = 0; i < r; i++)
            axes[i] = i;
        *n = r;
        return LOOM_OK;
    }
    int mark[OX_MAX_RANK] = {0};
    for (int i = 0; i < cnt; i++) {
        int a;
        LOOM_TRY(ox_axis(b, raw[i], r, "axes", &a));
        mark[a] = 1;
    }
    *n = 0;
    for (int i = 0; i < r; i++)
        if (mark[i])
            axes[(*n)++] = i;
    return LOOM_OK;
}


/* One reduction over a set of axes, keeping every dim (size 1). Adjacent
 * axes are merged by a reshape into one. */
loom_tensor ox_reduce_keep(ox *b, loom_tensor x, const int *axes, int n, int kind)
{
    loom_graph *g = b->g;
    int r = loom_tensor_ndim(g, x);
    if (n == 0)
        return x;
    int64_t shape[LOOM_MAX_DIMS], kept[LOOM_MAX_DIMS];
    for (int i = 0; i < r; i++)
        shape[i] = kept[i] = loom_tensor_dim(g, x, i);
    for (int i = 0; i < n; i++)
        kept[axes[i]] = 1;
    int contiguous = axes[n - 1] - axes[0] == n - 1;
    loom_tensor y = x;
    if (contiguous && n > 1) {
        int64_t pre = 1, mid = 1, post = 1;
        for (int i = 0; i < axes[0]; i++)
            pre *= shape[i];
        for (int i = axes[0]; i <= axes[n - 1]; i++)
            mid *= shape[i];
        for (int i = axes[n - 1] + 1; i < r; i++)
            post *= shape[i];
        int64_t s3[3] = {pre, mid, post};
        y = loom_reshape(g, y, 3, s3);
        int ax = 1;
        if (kind == OX_RED_SUM || kind == OX_RED_MEAN)
            y = kind == OX_RED_SUM ? loom_sum(g, y, ax, 1) : loom_mean(g, y, ax, 1);
        else
            y = kind == OX_RED_MAX ? loom_max(g, y, ax, 1) : loom_min(g, y, ax, 1);
        return loom_reshape(g, y, r, kept);
    }
    for (int i = n - 1; i >= 0; i--) {
        int ax = axes[i];
        if (kind == OX_RED_SUM || kind == OX_RED_MEAN)
            y = kind == OX_RED_SUM ? loom_sum(g, y, ax, 1) : loom_mean(g, y, ax, 1);
        else
            y = kind == OX_RED_MAX ? loom_max(g, y, ax, 1) : loom_min(g, y, ax, 1);
    }
    return y;
}

typedef enum { R_SUM, R_MEAN, R_MAX, R_MIN, R_L1, R_L2, R_SUMSQ, R_LOGSUM, R_LOGSUMEXP } onnx_reduce;

static loom_status reduce(ox *b, onnx_reduce op, int from_input)
{
    int64_t keep;
    LOOM_TRY(ox_attr_int(b, "keepdims", 1, &keep, NULL));
    loom_tensor x;
    loom_dtype dt;
    ox_val *v;
    LOOM_TRY(ox_in_float(b, 0, &x, &dt, &v));
    loom_graph *g = b->g;
    int r = loom_tensor_ndim(g, x);
    int axes[OX_MAX_RANK], n, noop;
    LOOM_TRY(reduce_axes(b, from_input, r, axes, &n, &noop));
    loom_tensor y = x;
    if (noop || r == 0) {
        /* nothing reduced: the element-wise part alone */
        switch (op) {
        case R_L1:
        case R_L2: y = loom_abs(g, x); break;
        case R_SUMSQ: y = loom_square(g, x); break;
        case R_LOGSUM: y = loom_log(g, x); break;
        default: {
            int64_t shape[LOOM_MAX_DIMS];
            for (int i = 0; i < r; i++)
                shape[i] = loom_tensor_dim(g, x, i);
            y = loom_reshape(g, x, r, shape);
        }
        }
        return ox_set_num(b, 0, y, v->type);
    }
    switch (op) {
    case R_SUM: y = ox_reduce_keep(b, x, axes, n, OX_RED_SUM); break;
    case R_MEAN: y = ox_reduce_keep(b, x, axes, n, OX_RED_MEAN); break;
    case R_MAX: y = ox_reduce_keep(b, x, axes, n, OX_RED_MAX); break;
    case R_MIN: y = ox_reduce_keep(b, x, axes, n, OX_RED_MIN); break;
    case R_L1: y = ox_reduce_keep(b, loom_abs(g, x), axes, n, OX_RED_SUM); break;
    case R_L2: y = loom_sqrt(g, ox_reduce_keep(b, loom_square(g, x), axes, n, OX_RED_SUM)); break;
    case R_SUMSQ: y = ox_reduce_keep(b, loom_square(g, x), axes, n, OX_RED_SUM); break;
    case R_LOGSUM: y = loom_log(g, ox_reduce_keep(b, x, axes, n, OX_RED_SUM)); break;
    case R_LOGSUMEXP: {
        loom_tensor m = ox_reduce_keep(b, x, axes, n, OX_RED_MAX);
        /* a max of -inf would make x - m NaN */
        m = loom_where(g, loom_eq(g, loom_abs(g, m), ox_scalar(b, INFINITY, dt)), ox_scalar(b, 0, dt), m);
        y = loom_add(g, loom_log(g, ox_reduce_keep(b, loom_exp(g, loom_sub(g, x, m)), axes, n, OX_RED_SUM)), m);
        break;
    }
    }
    LOOM_TRY(ox_check_graph(b));
    if (!keep) {
        int64_t shape[LOOM_MAX_DIMS];
        int nd = 0, k = 0;
        for (int i = 0; i < r; i++) {
            if (k < n && axes[k] == i) {
                k++;
                continue;
            }
            shape[nd++] = loom_tensor_dim(g, x, i);
        }
        y = loom_reshape(g, y, nd, shape);
    }
    return ox_set_num(b, 0, y, v->type);
}

loom_status oxb_reduce_sum(ox *b) { return reduce(b, R_SUM, 1); }
loom_status oxb_reduce_sum_attr(ox *b) { return reduce(b, R_SUM, 0); }
#define REDUCE_BUILDERS(name, op)                                                                                 \
    loom_status oxb_##name##_attr(ox *b) { return reduce(b, op, 0); }                                             \
    loom_status oxb_##name(ox *b) { return reduce(b, op, 1); }
REDUCE_BUILDERS(reduce_mean, R_MEAN)
REDUCE_BUILDERS(reduce_max, R_MAX)
REDUCE_BUILDERS(reduce_min, R_MIN)
REDUCE_BUILDERS(reduce_l1, R_L1)
REDUCE_BUILDERS(reduce_l2, R_L2)
REDUCE_BUILDERS(reduce_sum_square, R_SUMSQ)
REDUCE_BUILDERS(reduce_log_sum, R_LOGSUM)
REDUCE_BUILDERS(reduce_log_sum_exp, R_LOGSUMEXP)

/* Folding ReduceProd / ReduceSum / ReduceMax / ReduceMin of known
 * values (Shape -> ReduceProd chains). */
static loom_status fold_reduce(ox *b, int kind, int from_input)
{
    ox_val *x = ox_in(b, 0);
    loom_status s;
    ox_const *k = ox_known(b, x, &s);
    if (s != LOOM_OK)
        return s;
    if (!k || k->n > OX_FOLD_MAX)
        return OX_DECLINE;
    int64_t keep;
    LOOM_TRY(ox_attr_int(b, "keepdims", 1, &keep, NULL));
    int axes[OX_MAX_RANK], n, noop;
    LOOM_TRY(reduce_axes(b, from_input, k->ndim, axes, &n, &noop));
    if (noop)
        return ox_set_const(b, 0, ox_const_copy(b->ctx, k));
    int red[OX_MAX_RANK] = {0};
    for (int i = 0; i < n; i++)
        red[axes[i]] = 1;
    int64_t oshape[OX_MAX_RANK], kshape[OX_MAX_RANK];
    int ond = 0;
    for (int i = 0; i < k->ndim; i++) {
        kshape[i] = red[i] ? 1 : k->shape[i];
        if (!red[i] || keep)
            oshape[ond++] = kshape[i];
    }
    ox_const *o = ox_const_new(b->ctx, k->type, ond, oshape);
    if (!o)
        return ox_fail(b, LOOM_E_OOM, "out of memory");
    double *acc = loom_calloc(b->ctx, (size_t)(o->n ? o->n : 1), sizeof *acc);
    int64_t *cnt = loom_calloc(b->ctx, (size_t)(o->n ? o->n : 1), sizeof *cnt);
    if (!acc || !cnt) {
        loom_free(b->ctx, acc, (size_t)(o->n ? o->n : 1) * sizeof *acc);
        loom_free(b->ctx, cnt, (size_t)(o->n ? o->n : 1) * sizeof *cnt);
        ox_const_free(b->ctx, o);
        return ox_fail(b, LOOM_E_OOM, "out of memory");
    }
    for (int64_t i = 0; i < k->n; i++) {
        int64_t rem = i, oi = 0, stride = 1;
        for (int d = k->ndim - 1; d >= 0; d--) {
            int64_t c = rem % k->shape[d];
            rem /= k->shape[d];
            if (!red[d])
                oi += c * stride;
            stride *= kshape[d];
        }
        double v = ox_const_get(k, i);
        if (!cnt[oi])
            acc[oi] = v;
        else if (kind == 0)
            acc[oi] *= v;
        else if (kind == 1)
            acc[oi] += v;
        else if (kind == 2)
            acc[oi] = v > acc[oi] ? v : acc[oi];
        else
            acc[oi] = v < acc[oi] ? v : acc[oi];
        cnt[oi]++;
    }
    for (int64_t i = 0; i < o->n; i++)
        ox_const_put(o, i, cnt[i] ? acc[i] : kind == 0 ? 1 : 0);
    loom_free(b->ctx, acc, (size_t)(o->n ? o->n : 1) * sizeof *acc);
    loom_free(b->ctx, cnt, (size_t)(o->n ? o->n : 1) * sizeof *cnt);
    return ox_set_const(b, 0, o);
}

loom_status oxf_reduce_prod_attr(ox *b) { return fold_reduce(b, 0, 0); }
loom_status oxf_reduce_prod(ox *b) { return fold_reduce(b, 0, 1); }
loom_status oxf_reduce_sum(ox *b) { return fold_reduce(b, 1, 1); }
loom_status oxf_reduce_max_attr(ox *b) { return fold_reduce(b, 2, 0); }
loom_status oxf_reduce_max(ox *b) { return fold_reduce(b, 2, 1); }
loom_status oxf_reduce_min_attr(ox *b) { return fold_reduce(b, 3, 0); }
loom_status oxf_reduce_min(ox *b) { return fold_reduce(b, 3, 1); }

/* prod x = sign * exp(sum log |x|), the sign from the parity of the
 * negative count, 0 where any factor is 0. */
static loom_status reduce_prod(ox *b, int from_input)
{
    int64_t keep;
    LOOM_TRY(ox_attr_int(b, "keepdims", 1, &keep, NULL));
    loom_tensor x;
    loom_dtype dt;
    ox_val *v;
    LOOM_TRY(ox_in_float(b, 0, &x, &dt, &v));
    loom_graph *g = b->g;
    int r = loom_tensor_ndim(g, x);
    int axes[OX_MAX_RANK], n, noop;
    LOOM_TRY(reduce_axes(b, from_input, r, axes, &n, &noop));
    if (noop || r == 0 || n == 0)
        return ox_set_num(b, 0, x, v->type);
    loom_tensor zero = ox_scalar(b, 0, dt);
    loom_tensor mag = loom_exp(g, ox_reduce_keep(b, loom_log(g, loom_abs(g, x)), axes, n, OX_RED_SUM));
    loom_tensor negs = ox_reduce_keep(b, loom_lt(g, x, zero), axes, n, OX_RED_SUM);
    loom_tensor half = loom_scale(g, negs, 0.5f);
    loom_tensor odd = loom_sub(g, half, round_even(b, half, dt));
    /* odd is +-0.5 for an odd count, 0 for an even one */
    loom_tensor sign = loom_sub(g, ox_scalar(b, 1, dt), loom_scale(g, loom_abs(g, odd), 4.0f));
    loom_tensor any0 = ox_reduce_keep(b, loom_eq(g, x, zero), axes, n, OX_RED_MAX);
    loom_tensor y = loom_where(g, any0, zero, loom_mul(g, sign, mag));
    if (!keep) {
        int64_t shape[LOOM_MAX_DIMS];
        int nd = 0, k = 0;
        for (int i = 0; i < r; i++) {
            if (k < n && axes[k] == i) {
                k++;
                continue;
            }
            shape[nd++] = loom_tensor_dim(g, x, i);
        }
        y = loom_reshape(g, y, nd, shape);
    }
    return ox_set_num(b, 0, y, v->type);
}

loom_status oxb_reduce_prod(ox *b) { return reduce_prod(b, 1); }
loom_status oxb_reduce_prod_attr(ox *b) { return reduce_prod(b, 0); }

static loom_status arg_reduce(ox *b, int is_max)
{
    int64_t axis, keep, last;
    LOOM_TRY(ox_attr_int(b, "axis", 0, &axis, NULL));
    LOOM_TRY(ox_attr_int(b, "keepdims", 1, &keep, NULL));
    LOOM_TRY(ox_attr_int(b, "select_last_index", 0, &last, NULL));
    loom_tensor x;
    ox_val *v;
    LOOM_TRY(ox_in_float(b, 0, &x, NULL, &v));
    int r = loom_tensor_ndim(b->g, x), a;
    LOOM_TRY(ox_axis(b, axis, r, "attribute 'axis'", &a));
    int64_t n = loom_tensor_dim(b->g, x, a);
    if (last && n > 1) {
        /* the first index of the reversed axis, counted from the end */
        int64_t *rev = loom_malloc(b->ctx, (size_t)n * sizeof *rev);
        if (!rev)
            return ox_fail(b, LOOM_E_OOM, "out of memory");
        for (int64_t i = 0; i < n; i++)
            rev[i] = n - 1 - i;
        loom_status s = ox_axis_map(b, x, a, rev, n, 0, &x);
        loom_free(b->ctx, rev, (size_t)n * sizeof *rev);
        LOOM_TRY(s);
    }
    loom_tensor y = is_max ? loom_argmax(b->g, x, a) : loom_argmin(b->g, x, a);
    if (last && n > 1) {
        loom_tensor f = loom_cast(b->g, y, LOOM_F32);
        y = loom_cast(b->g, loom_sub(b->g, ox_scalar(b, (double)(n - 1), LOOM_F32), f), LOOM_I32);
    }
    if (keep) {
        int64_t shape[LOOM_MAX_DIMS];
        for (int i = 0; i < r; i++)
            shape[i] = i == a ? 1 : loom_tensor_dim(b->g, x, i);
        y = loom_reshape(b->g, y, r, shape);
    }
    return ox_set(b, 0, y, LOOM_ONNX_INT64);
}

loom_status oxb_argmax(ox *b) { return arg_reduce(b, 1); }
loom_status oxb_argmin(ox *b) { return arg_reduce(b, 0); }

/* ---- matrix products ---- */

loom_status oxb_gemm(ox *b)
{
    float alpha, beta;
    int64_t ta, tb;
    LOOM_TRY(ox_attr_float(b, "alpha", 1.0f, &alpha, NULL));
    LOOM_TRY(ox_attr_float(b, "beta", 1.0f, &beta, NULL));
    LOOM_TRY(ox_attr_int(b, "transA", 0, &ta, NULL));
    LOOM_TRY(ox_attr_int(b, "transB", 0, &tb, NULL));
    ox_val *a, *bm, *c = ox_in(b, 2);
    LOOM_TRY(ox_need(b, 0, &a));
    LOOM_TRY(ox_need(b, 1, &bm));
    loom_tensor tA, tB, tC;
    loom_dtype dt;
    LOOM_TRY(ox_pair(b, a, bm, &tA, &tB, &dt));
    loom_graph *g = b->g;
    loom_tensor y = loom_matmul(g, tA, tB, (int)ta, (int)tb);
    if (alpha != 1.0f)
        y = loom_scale(g, y, alpha);
    if (c && beta != 0.0f) {
        LOOM_TRY(ox_tensor(b, c, dt, &tC));
        if (beta != 1.0f)
            tC = loom_scale(g, tC, beta);
        y = loom_add(g, y, tC);
    }
    return ox_set_num(b, 0, y, a->type);
}

/* numpy matmul: 1-D operands get a dim, batch dims of the left operand
 * fold into its rows; a batched right operand needs loom_matmul_batched
 * where that op exists. */
loom_status oxb_matmul(ox *b)
{
    ox_val *a, *bm;
    LOOM_TRY(ox_need(b, 0, &a));
    LOOM_TRY(ox_need(b, 1, &bm));
    loom_tensor tA, tB;
    LOOM_TRY(ox_pair(b, a, bm, &tA, &tB, NULL));
    return ox_matmul_nd(b, tA, tB, a->type);
}

/* Both operands batched: one 2-D product per batch element (numpy's
 * broadcasting of the batch dims), joined along the batch, until loom has
 * a batched matmul. */
#define MATMUL_MAX_UNROLL 256

static loom_status batched(ox *b, loom_tensor tA, loom_tensor tB, int rA, int rB, int type, int a_vector)
{
    loom_graph *g = b->g;
    int64_t as[LOOM_MAX_DIMS], bs[LOOM_MAX_DIMS];
    for (int i = 0; i < rA; i++)
        as[i] = loom_tensor_dim(g, tA, i);
    for (int i = 0; i < rB; i++)
        bs[i] = loom_tensor_dim(g, tB, i);
    int na = rA - 2, nbd = rB - 2, nbat;
    int64_t bat[LOOM_MAX_DIMS];
    char sa[96], sb[96];
    if (!ox_broadcast(na, as, nbd, bs, &nbat, bat))
        return ox_fail(b, LOOM_E_SHAPE, "MatMul %s x %s: the batch dims do not broadcast",
                       loom_shape_str(sa, sizeof sa, rA, as), loom_shape_str(sb, sizeof sb, rB, bs));
    int64_t total = 1, ta = 1, tb = 1;
    for (int i = 0; i < nbat; i++)
        total *= bat[i];
    for (int i = 0; i < na; i++)
        ta *= as[i];
    for (int i = 0; i < nbd; i++)
        tb *= bs[i];
    if (total > MATMUL_MAX_UNROLL)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "MatMul %s x %s: %lld products (loom unrolls at most %d)",
                       loom_shape_str(sa, sizeof sa, rA, as), loom_shape_str(sb, sizeof sb, rB, bs), (long long)total,
                       MATMUL_MAX_UNROLL);
    int64_t M = as[rA - 2], K = as[rA - 1], N = bs[rB - 1];
    int64_t a3[3] = {ta, M, K}, b3[3] = {tb, K, N}, a2[2] = {M, K}, b2[2] = {K, N}, y3[3] = {1, M, N};
    loom_tensor A3 = loom_reshape(g, tA, 3, a3), B3 = loom_reshape(g, tB, 3, b3);
    loom_tensor *ys = loom_calloc(b->ctx, (size_t)total, sizeof *ys);
    if (!ys)
        return ox_fail(b, LOOM_E_OOM, "out of memory");
    loom_status s = LOOM_OK;
    for (int64_t j = 0; j < total && s == LOOM_OK; j++) {
        /* the flat batch index of each operand under broadcasting */
        int64_t rem = j, ia = 0, ib = 0, sta = 1, stb = 1;
        for (int d = nbat - 1; d >= 0; d--) {
            int64_t c = rem % bat[d];
            rem /= bat[d];
            int ea = d - (nbat - na), eb = d - (nbat - nbd);
            if (ea >= 0) {
                if (as[ea] != 1)
                    ia += c * sta;
                sta *= as[ea];
            }
            if (eb >= 0) {
                if (bs[eb] != 1)
                    ib += c * stb;
                stb *= bs[eb];
            }
        }
        loom_tensor aj = A3, bj = B3;
        if (ta > 1)
            s = ox_slice_axis(b, A3, 0, ia, 1, &aj);
        if (s == LOOM_OK && tb > 1)
            s = ox_slice_axis(b, B3, 0, ib, 1, &bj);
        if (s != LOOM_OK)
            break;
        loom_tensor y = loom_matmul(g, loom_reshape(g, aj, 2, a2), loom_reshape(g, bj, 2, b2), 0, 0);
        ys[j] = loom_reshape(g, y, 3, y3);
        s = ox_check_graph(b);
    }
    loom_tensor y = LOOM_NONE;
    if (s == LOOM_OK)
        s = ox_concat(b, (int)total, ys, 0, &y);
    loom_free(b->ctx, ys, (size_t)total * sizeof *ys);
    LOOM_TRY(s);
    int64_t out[LOOM_MAX_DIMS];
    for (int i = 0; i < nbat; i++)
        out[i] = bat[i];
    int no = nbat;
    if (!a_vector)
        out[no++] = M; /* a 1-D left operand loses its row dim */
    out[no++] = N;
    LOOM_TRY(ox_reshape(b, y, no, out, &y));
    return ox_set_num(b, 0, y, type);
}

loom_status ox_matmul_nd(ox *b, loom_tensor tA, loom_tensor tB, int type)
{
    loom_graph *g = b->g;
    int ra = loom_tensor_ndim(g, tA), rb = loom_tensor_ndim(g, tB);
    char sa[96], sb[96];
    int64_t as[LOOM_MAX_DIMS], bs[LOOM_MAX_DIMS];
    for (int i = 0; i < ra; i++)
        as[i] = loom_tensor_dim(g, tA, i);
    for (int i = 0; i < rb; i++)
        bs[i] = loom_tensor_dim(g, tB, i);
    if (ra == 0 || rb == 0)
        return ox_fail(b, LOOM_E_SHAPE, "MatMul of a scalar");
    int64_t out[LOOM_MAX_DIMS + 1];
    int no = 0;
    if (ra == 1) {
        int64_t s2[2] = {1, as[0]};
        tA = loom_reshape(g, tA, 2, s2);
    }
    if (rb == 1) {
        int64_t s2[2] = {bs[0], 1};
        tB = loom_reshape(g, tB, 2, s2);
    }
    int rA = ra == 1 ? 2 : ra, rB = rb == 1 ? 2 : rb;
    int64_t M = ra == 1 ? 1 : as[ra - 2], K = as[ra - 1];
    int64_t N = rb == 1 ? 1 : bs[rb - 1], KB = rb == 1 ? bs[0] : bs[rb - 2];
    if (K != KB)
        return ox_fail(b, LOOM_E_SHAPE, "MatMul %s x %s: inner dims %lld and %lld differ",
                       loom_shape_str(sa, sizeof sa, ra, as), loom_shape_str(sb, sizeof sb, rb, bs), (long long)K,
                       (long long)KB);
    /* a right operand whose batch dims are all 1 is a matrix */
    int64_t bbatch = 1;
    for (int i = 0; i < rB - 2; i++)
        bbatch *= bs[i];
    if (rB > 2 && bbatch == 1) {
        int64_t s2[2] = {KB, N};
        tB = loom_reshape(g, tB, 2, s2);
        rB = 2;
    }
    if (rB > 2) {
#ifdef LOOM_ONNX_SEQ
        /* loom's matmul broadcasts batch dims of ranks up to 4 */
        (void)batched;
        loom_tensor y = loom_matmul(g, tA, tB, 0, 0);
        LOOM_TRY(ox_check_graph(b));
        int ny = loom_tensor_ndim(g, y);
        int64_t ys[LOOM_MAX_DIMS];
        for (int i = 0; i < ny; i++)
            ys[i] = loom_tensor_dim(g, y, i);
        if (ra == 1) {
            /* a 1-D left operand loses its row dim */
            ys[ny - 2] = ys[ny - 1];
            ny--;
        }
        LOOM_TRY(ox_reshape(b, y, ny, ys, &y));
        return ox_set_num(b, 0, y, type);
#else
        return batched(b, tA, tB, rA, rB, type, ra == 1);
#endif
    }
    /* batch dims: the left operand's, broadcast with the right's 1s */
    int nb = rA - 2;
    int64_t rows = M;
    for (int i = 0; i < nb; i++) {
        out[no++] = as[i];
        rows *= as[i];
    }
    int extra = (rb > 2 ? rb - 2 : 0) - nb;
    if (extra > 0) {
        /* B's leading 1s lengthen the result's rank */
        for (int i = 0; i < extra; i++) {
            memmove(out + 1, out, (size_t)no * sizeof *out);
            out[0] = 1;
            no++;
        }
    }
    loom_tensor a2 = tA;
    if (rA > 2) {
        int64_t s2[2] = {rows, K};
        a2 = loom_reshape(g, tA, 2, s2);
    }
    loom_tensor y = loom_matmul(g, a2, tB, 0, 0);
    if (ra != 1)
        out[no++] = M;
    if (rb != 1)
        out[no++] = N;
    LOOM_TRY(ox_check_graph(b));
    LOOM_TRY(ox_reshape(b, y, no, out, &y));
    return ox_set_num(b, 0, y, type);
}
