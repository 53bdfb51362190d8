/* Builders of the normalizations, global pools and the ops made of index
 * arithmetic (OneHot, Trilu, Hardmax, CumSum), from loom's element-wise
 * and reduction ops. Half-precision inputs normalize in f32 (stash_type
 * 1, as ONNX's reference does) and are cast back. */
#include "onnx_ops.h"

#include <math.h>
#include <string.h>

static void dims_of(ox *b, loom_tensor t, int *nd, int64_t *s)
{
    *nd = loom_tensor_ndim(b->g, t);
    for (int i = 0; i < *nd; i++)
        s[i] = loom_tensor_dim(b->g, t, i);
}

/* t with shape [c] (or broadcastable) as [c, 1, ..., 1] of rank r - 1
 * (the channel axis 1 of a rank-r input). */
static loom_status per_channel(ox *b, ox_val *v, loom_dtype dt, int r, loom_tensor *out)
{
    loom_tensor t;
    LOOM_TRY(ox_tensor(b, v, dt, &t));
    int nd = loom_tensor_ndim(b->g, t);
    if (nd != 1 || r < 2)
        return ox_fail(b, LOOM_E_SHAPE, "\"%s\" must be 1-D over the channels of a rank >= 2 input", v->name);
    int64_t s[LOOM_MAX_DIMS];
    s[0] = loom_tensor_dim(b->g, t, 0);
    for (int i = 1; i < r - 1; i++)
        s[i] = 1;
    return ox_reshape(b, t, r - 1, s, out);
}

/* (x - mean) / sqrt(var + eps) over [outer, inner] rows; mean and
 * 1/stddev as [outer, 1]. */
static void normalize_rows(ox *b, loom_tensor x2, float eps, loom_tensor *y, loom_tensor *mean, loom_tensor *inv)
{
    loom_graph *g = b->g;
    loom_tensor m = loom_mean(g, x2, 1, 1);
    loom_tensor d = loom_sub(g, x2, m);
    loom_tensor var = loom_mean(g, loom_square(g, d), 1, 1);
    loom_tensor is = loom_rsqrt(g, loom_add(g, var, ox_scalar(b, eps, loom_tensor_dtype(g, x2))));
    *y = loom_mul(g, d, is);
    if (mean)
        *mean = m;
    if (inv)
        *inv = is;
}

loom_status oxb_batch_norm(ox *b)
{
    float eps;
    int64_t training;
    LOOM_TRY(ox_attr_float(b, "epsilon", 1e-5f, &eps, NULL));
    ox_attr_ignore(b, "momentum");
    LOOM_TRY(ox_attr_int(b, "training_mode", 0, &training, NULL));
    if (training || ox_out(b, 1) || ox_out(b, 2))
        return ox_fail(b, LOOM_E_UNSUPPORTED, "training mode (running statistics as outputs) is not supported");
    ox_val *x, *sc, *bi, *mu, *va;
    LOOM_TRY(ox_need(b, 0, &x));
    LOOM_TRY(ox_need(b, 1, &sc));
    LOOM_TRY(ox_need(b, 2, &bi));
    LOOM_TRY(ox_need(b, 3, &mu));
    LOOM_TRY(ox_need(b, 4, &va));
    loom_dtype dt = ox_float_dt(b, x);
    loom_tensor tx;
    LOOM_TRY(ox_tensor(b, x, dt, &tx));
    int r = loom_tensor_ndim(b->g, tx);
    loom_graph *g = b->g;
    loom_tensor a, c;
    if (ox_is_known(sc) && ox_is_known(bi) && ox_is_known(mu) && ox_is_known(va)) {
        /* y = x a + c with a = scale / sqrt(var + eps), c = bias - mean a */
        loom_status s;
        ox_const *ks = ox_known(b, sc, &s), *kb, *km, *kv;
        if (s == LOOM_OK)
            kb = ox_known(b, bi, &s);
        if (s == LOOM_OK)
            km = ox_known(b, mu, &s);
        if (s == LOOM_OK)
            kv = ox_known(b, va, &s);
        if (s != LOOM_OK)
            return s;
        int64_t C = ks->n;
        if (kb->n != C || km->n != C || kv->n != C || r < 2 || loom_tensor_dim(g, tx, 1) != C)
            return ox_fail(b, LOOM_E_SHAPE, "scale, bias, mean and var must each hold the %lld channels",
                           (long long)(r >= 2 ? loom_tensor_dim(g, tx, 1) : 0));
        ox_const *ka = ox_const_new(b->ctx, LOOM_ONNX_FLOAT, 1, &C), *kc = ox_const_new(b->ctx, LOOM_ONNX_FLOAT, 1, &C);
        if (!ka || !kc) {
            ox_const_free(b->ctx, ka);
            ox_const_free(b->ctx, kc);
            return ox_fail(b, LOOM_E_OOM, "out of memory");
        }
        for (int64_t i = 0; i < C; i++) {
            double av = ox_const_get(ks, i) / sqrt(ox_const_get(kv, i) + eps);
            ka->f[i] = (float)av;
            kc->f[i] = (float)(ox_const_get(kb, i) - ox_const_get(km, i) * av);
        }
        ox_val va_ = {0}, vc_ = {0};
        va_.name = "batchnorm scale";
        va_.k = ka;
        va_.type = LOOM_ONNX_FLOAT;
        vc_.name = "batchnorm shift";
        vc_.k = kc;
        vc_.type = LOOM_ONNX_FLOAT;
        s = per_channel(b, &va_, dt, r, &a);
        if (s == LOOM_OK)
            s = per_channel(b, &vc_, dt, r, &c);
        ox_const_free(b->ctx, ka);
        ox_const_free(b->ctx, kc);
        LOOM_TRY(s);
        return ox_set_num(b, 0, loom_add(g, loom_mul(g, tx, a), c), x->type);
    }
    loom_tensor ts, tb, tm, tv;
    LOOM_TRY(per_channel(b, sc, dt, r, &ts));
    LOOM_TRY(per_channel(b, bi, dt, r, &tb));
    LOOM_TRY(per_channel(b, mu, dt, r, &tm));
    LOOM_TRY(per_channel(b, va, dt, r, &tv));
    a = loom_mul(g, ts, loom_rsqrt(g, loom_add(g, tv, ox_scalar(b, eps, dt))));
    return ox_set_num(b, 0, loom_add(g, loom_mul(g, loom_sub(g, tx, tm), a), tb), x->type);
}

/* Normalizes x over its trailing dims from `axis` (LayerNormalization,
 * RMSNormalization) in f32; returns y, and mean and 1/std at the shape
 * x.shape[:axis] + [1] * (r - axis). */
static loom_status trailing_norm(ox *b, int rms, loom_tensor *y, loom_dtype *dt_out, int *rank)
{
    int64_t axis, stash;
    float eps;
    LOOM_TRY(ox_attr_int(b, "axis", -1, &axis, NULL));
    LOOM_TRY(ox_attr_float(b, "epsilon", 1e-5f, &eps, NULL));
    LOOM_TRY(ox_attr_int(b, "stash_type", 1, &stash, NULL));
    ox_val *x, *sc, *bi = ox_in(b, 2);
    LOOM_TRY(ox_need(b, 0, &x));
    LOOM_TRY(ox_need(b, 1, &sc));
    loom_dtype dt = ox_float_dt(b, x);
    loom_tensor tx;
    LOOM_TRY(ox_tensor(b, x, LOOM_F32, &tx));
    int r, a;
    int64_t s[LOOM_MAX_DIMS];
    dims_of(b, tx, &r, s);
    LOOM_TRY(ox_axis(b, axis, r, "attribute 'axis'", &a));
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < r; i++)
        *(i < a ? &outer : &inner) *= s[i];
    int64_t s2[2] = {outer, inner};
    loom_graph *g = b->g;
    loom_tensor x2 = loom_reshape(g, tx, 2, s2), n2, mean = LOOM_NONE, inv;
    if (rms) {
        inv = loom_rsqrt(g, loom_add(g, loom_mean(g, loom_square(g, x2), 1, 1), ox_scalar(b, eps, LOOM_F32)));
        n2 = loom_mul(g, x2, inv);
    } else {
        normalize_rows(b, x2, eps, &n2, &mean, &inv);
    }
    loom_tensor yn = loom_reshape(g, n2, r, s), ts, tb;
    LOOM_TRY(ox_tensor(b, sc, LOOM_F32, &ts));
    yn = loom_mul(g, yn, ts);
    if (bi) {
        LOOM_TRY(ox_tensor(b, bi, LOOM_F32, &tb));
        yn = loom_add(g, yn, tb);
    }
    LOOM_TRY(ox_check_graph(b));
    int64_t ks[LOOM_MAX_DIMS];
    for (int i = 0; i < r; i++)
        ks[i] = i < a ? s[i] : 1;
    if (!rms && ox_out(b, 1))
        LOOM_TRY(ox_set(b, 1, loom_reshape(g, mean, r, ks), LOOM_ONNX_FLOAT));
    if (!rms && ox_out(b, 2))
        LOOM_TRY(ox_set(b, 2, loom_reshape(g, inv, r, ks), LOOM_ONNX_FLOAT));
    *y = dt == LOOM_F32 ? yn : loom_cast(g, yn, dt);
    *dt_out = dt;
    *rank = r;
    return ox_set(b, 0, *y, x->type);
}

#ifdef LOOM_ONNX_SEQ
/* loom's own norms over the last axis, when that is the node's: scale and
 * bias 1-D over it, no statistics asked for. 1 when done. */
static int fused_norm(ox *b, int rms, loom_status *st)
{
    int64_t axis;
    float eps;
    *st = LOOM_OK;
    ox_val *x = ox_in(b, 0), *sc = ox_in(b, 1), *bi = rms ? NULL : ox_in(b, 2);
    if (!x || !sc || ox_out(b, 1) || ox_out(b, 2))
        return 0;
    if ((*st = ox_attr_int(b, "axis", -1, &axis, NULL)) != LOOM_OK)
        return 1;
    int r = ox_rank(b, x);
    if (!(axis == -1 || axis == r - 1) || r < 1 || ox_rank(b, sc) != 1 || (bi && ox_rank(b, bi) != 1) ||
        ox_dim(b, sc, 0) != ox_dim(b, x, r - 1))
        return 0;
    int64_t stash;
    if ((*st = ox_attr_float(b, "epsilon", 1e-5f, &eps, NULL)) != LOOM_OK ||
        (*st = ox_attr_int(b, "stash_type", 1, &stash, NULL)) != LOOM_OK)
        return 1;
    loom_dtype dt = ox_float_dt(b, x);
    loom_tensor tx, ts, tb = LOOM_NONE;
    if ((*st = ox_tensor(b, x, dt, &tx)) != LOOM_OK || (*st = ox_tensor(b, sc, dt, &ts)) != LOOM_OK ||
        (bi && (*st = ox_tensor(b, bi, dt, &tb)) != LOOM_OK))
        return 1;
    loom_tensor y = rms ? loom_rms_norm(b->g, tx, ts, eps) : loom_layer_norm(b->g, tx, ts, tb, eps);
    *st = ox_set_num(b, 0, y, x->type);
    return 1;
}
#endif

loom_status oxb_layer_norm(ox *b)
{
    loom_tensor y;
    loom_dtype dt;
    int r;
#ifdef LOOM_ONNX_SEQ
    loom_status st;
    if (fused_norm(b, 0, &st))
        return st;
#endif
    return trailing_norm(b, 0, &y, &dt, &r);
}

loom_status oxb_rms_norm(ox *b)
{
    loom_tensor y;
    loom_dtype dt;
    int r;
#ifdef LOOM_ONNX_SEQ
    loom_status st;
    if (fused_norm(b, 1, &st))
        return st;
#endif
    return trailing_norm(b, 1, &y, &dt, &r);
}

loom_status oxb_instance_norm(ox *b)
{
    float eps;
    LOOM_TRY(ox_attr_float(b, "epsilon", 1e-5f, &eps, NULL));
    ox_val *x, *sc, *bi;
    LOOM_TRY(ox_need(b, 0, &x));
    LOOM_TRY(ox_need(b, 1, &sc));
    LOOM_TRY(ox_need(b, 2, &bi));
    loom_dtype dt = ox_float_dt(b, x);
    loom_tensor tx;
    LOOM_TRY(ox_tensor(b, x, LOOM_F32, &tx));
    int r;
    int64_t s[LOOM_MAX_DIMS];
    dims_of(b, tx, &r, s);
    if (r < 3)
        return ox_fail(b, LOOM_E_SHAPE, "the input has rank %d (N, C and spatial dims expected)", r);
    int64_t sp = 1;
    for (int i = 2; i < r; i++)
        sp *= s[i];
    int64_t s2[2] = {s[0] * s[1], sp};
    loom_graph *g = b->g;
    loom_tensor n2;
    normalize_rows(b, loom_reshape(g, tx, 2, s2), eps, &n2, NULL, NULL);
    loom_tensor y = loom_reshape(g, n2, r, s), ts, tb;
    LOOM_TRY(per_channel(b, sc, LOOM_F32, r, &ts));
    LOOM_TRY(per_channel(b, bi, LOOM_F32, r, &tb));
    y = loom_add(g, loom_mul(g, y, ts), tb);
    return ox_set_num(b, 0, dt == LOOM_F32 ? y : loom_cast(g, y, dt), x->type);
}

static loom_status group_norm(ox *b, int per_channel_scale)
{
    float eps;
    int64_t groups, stash;
    int present;
    LOOM_TRY(ox_attr_float(b, "epsilon", 1e-5f, &eps, NULL));
    LOOM_TRY(ox_attr_int(b, "num_groups", 0, &groups, &present));
    LOOM_TRY(ox_attr_int(b, "stash_type", 1, &stash, NULL));
    if (!present || groups < 1)
        return ox_fail(b, LOOM_E_FORMAT, "attribute 'num_groups' is missing or < 1");
    ox_val *x, *sc, *bi;
    LOOM_TRY(ox_need(b, 0, &x));
    LOOM_TRY(ox_need(b, 1, &sc));
    LOOM_TRY(ox_need(b, 2, &bi));
    loom_dtype dt = ox_float_dt(b, x);
    loom_tensor tx;
    LOOM_TRY(ox_tensor(b, x, LOOM_F32, &tx));
    int r;
    int64_t s[LOOM_MAX_DIMS];
    dims_of(b, tx, &r, s);
    if (r < 2 || s[1] % groups)
        return ox_fail(b, LOOM_E_SHAPE, "%lld channels do not split into %lld groups", (long long)(r > 1 ? s[1] : 0),
                       (long long)groups);
    int64_t rest = 1;
    for (int i = 1; i < r; i++)
        rest *= s[i];
    loom_graph *g = b->g;
    int64_t s2[2] = {s[0] * groups, rest / groups};
    loom_tensor n2, ts, tb;
    normalize_rows(b, loom_reshape(g, tx, 2, s2), eps, &n2, NULL, NULL);
    loom_tensor y;
    if (per_channel_scale) {
        y = loom_reshape(g, n2, r, s);
        LOOM_TRY(per_channel(b, sc, LOOM_F32, r, &ts));
        LOOM_TRY(per_channel(b, bi, LOOM_F32, r, &tb));
    } else {
        /* opset 18: one scale and bias per group */
        int64_t s3[3] = {s[0], groups, rest / groups}, g2[2] = {groups, 1};
        y = loom_reshape(g, n2, 3, s3);
        LOOM_TRY(ox_tensor(b, sc, LOOM_F32, &ts));
        LOOM_TRY(ox_tensor(b, bi, LOOM_F32, &tb));
        ts = loom_reshape(g, ts, 2, g2);
        tb = loom_reshape(g, tb, 2, g2);
    }
    y = loom_add(g, loom_mul(g, y, ts), tb);
    if (!per_channel_scale)
        y = loom_reshape(g, y, r, s);
    return ox_set_num(b, 0, dt == LOOM_F32 ? y : loom_cast(g, y, dt), x->type);
}

loom_status oxb_group_norm18(ox *b) { return group_norm(b, 0); }
loom_status oxb_group_norm(ox *b) { return group_norm(b, 1); }

/* ONNX's reference: (x - mean) / (sqrt(mean(x^2) - mean^2) + 1e-9). */
loom_status oxb_mvn(ox *b)
{
    const int64_t *ax;
    size_t na;
    int present;
    LOOM_TRY(ox_attr_ints(b, "axes", &ax, &na, &present));
    loom_tensor x;
    loom_dtype dt;
    ox_val *v;
    LOOM_TRY(ox_in_float(b, 0, &x, &dt, &v));
    int r = loom_tensor_ndim(b->g, x);
    int axes[OX_MAX_RANK], n = 0, mark[OX_MAX_RANK] = {0};
    int64_t def[3] = {0, 2, 3};
    if (!present) {
        ax = def;
        na = 3;
    }
    for (size_t i = 0; i < na; i++) {
        int a;
        LOOM_TRY(ox_axis(b, ax[i], r, "axes", &a));
        mark[a] = 1;
    }
    for (int i = 0; i < r; i++)
        if (mark[i])
            axes[n++] = i;
    loom_graph *g = b->g;
    loom_tensor m = ox_reduce_keep(b, x, axes, n, OX_RED_MEAN);
    loom_tensor m2 = ox_reduce_keep(b, loom_square(g, x), axes, n, OX_RED_MEAN);
    loom_tensor sd = loom_sqrt(g, loom_sub(g, m2, loom_square(g, m)));
    loom_tensor y = loom_div(g, loom_sub(g, x, m), loom_add(g, sd, ox_scalar(b, 1e-9, dt)));
    return ox_set_num(b, 0, y, v->type);
}

loom_status oxb_lp_norm(ox *b)
{
    int64_t axis, p;
    LOOM_TRY(ox_attr_int(b, "axis", -1, &axis, NULL));
    LOOM_TRY(ox_attr_int(b, "p", 2, &p, NULL));
    if (p != 1 && p != 2)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "attribute 'p' = %lld (1 or 2)", (long long)p);
    loom_tensor x;
    ox_val *v;
    LOOM_TRY(ox_in_float(b, 0, &x, NULL, &v));
    int a;
    LOOM_TRY(ox_axis(b, axis, loom_tensor_ndim(b->g, x), "attribute 'axis'", &a));
    loom_graph *g = b->g;
    loom_tensor nrm = p == 1 ? loom_sum(g, loom_abs(g, x), a, 1) : loom_sqrt(g, loom_sum(g, loom_square(g, x), a, 1));
    /* a zero norm gives zeros, as ONNX's reference does */
    loom_dtype dt = loom_tensor_dtype(g, x);
    loom_tensor zero = loom_eq(g, nrm, ox_scalar(b, 0, dt));
    loom_tensor safe = loom_add(g, nrm, zero);
    return ox_set_num(b, 0, loom_div(g, x, safe), v->type);
}

static loom_status global_pool(ox *b, int max)
{
    loom_tensor x;
    ox_val *v;
    LOOM_TRY(ox_in_float(b, 0, &x, NULL, &v));
    int r = loom_tensor_ndim(b->g, x);
    if (r < 3)
        return ox_fail(b, LOOM_E_SHAPE, "the input has rank %d (N, C and spatial dims expected)", r);
    int axes[LOOM_MAX_DIMS], n = 0;
    for (int i = 2; i < r; i++)
        axes[n++] = i;
    return ox_set_num(b, 0, ox_reduce_keep(b, x, axes, n, max ? OX_RED_MAX : OX_RED_MEAN), v->type);
}

loom_status oxb_global_avg_pool(ox *b) { return global_pool(b, 0); }
loom_status oxb_global_max_pool(ox *b) { return global_pool(b, 1); }

/* ---- index arithmetic ---- */

/* A [n] ramp 0..n-1 reshaped to rank r with n at axis. */
static loom_tensor iota(ox *b, int64_t n, int r, int axis, loom_dtype dt)
{
    float *f = loom_malloc(b->ctx, (size_t)n * sizeof *f);
    if (!f)
        return loom_graph_status(b->g) ? LOOM_NONE : LOOM_NONE;
    for (int64_t i = 0; i < n; i++)
        f[i] = (float)i;
    int64_t s[LOOM_MAX_DIMS];
    for (int i = 0; i < r; i++)
        s[i] = i == axis ? n : 1;
    loom_tensor t = loom_constant(b->g, NULL, LOOM_F32, r, s, f);
    loom_free(b->ctx, f, (size_t)n * sizeof *f);
    return dt == LOOM_F32 ? t : loom_cast(b->g, t, dt);
}

loom_status oxb_hardmax(ox *b)
{
    int64_t axis;
    LOOM_TRY(ox_attr_int(b, "axis", -1, &axis, NULL));
    loom_tensor x;
    loom_dtype dt;
    ox_val *v;
    LOOM_TRY(ox_in_float(b, 0, &x, &dt, &v));
    int r = loom_tensor_ndim(b->g, x), a;
    LOOM_TRY(ox_axis(b, axis, r, "attribute 'axis'", &a));
    int64_t s[LOOM_MAX_DIMS];
    for (int i = 0; i < r; i++)
        s[i] = i == a ? 1 : loom_tensor_dim(b->g, x, i);
    loom_graph *g = b->g;
    loom_tensor am = loom_cast(g, loom_reshape(g, loom_argmax(g, x, a), r, s), dt);
    loom_tensor y = loom_eq(g, am, iota(b, loom_tensor_dim(g, x, a), r, a, dt));
    return ox_set_num(b, 0, y, v->type);
}

loom_status oxb_one_hot(ox *b)
{
    int64_t axis;
    LOOM_TRY(ox_attr_int(b, "axis", -1, &axis, NULL));
    ox_val *ind, *vals;
    LOOM_TRY(ox_need(b, 0, &ind));
    LOOM_TRY(ox_need(b, 2, &vals));
    double depth;
    LOOM_TRY(ox_known_float(b, 1, 0, &depth, NULL));
    int64_t d = (int64_t)depth;
    if (d < 1 || d > ((int64_t)1 << 24))
        return ox_fail(b, LOOM_E_UNSUPPORTED, "depth %g", depth);
    if (ox_rank(b, vals) != 1 || ox_dim(b, vals, 0) != 2)
        return ox_fail(b, LOOM_E_SHAPE, "values must hold [off, on]");
    loom_dtype dt = ox_float_dt(b, vals);
    if (!ox_is_known(vals) && !loom_dtype_is_float(ox_dtype(b, vals)))
        dt = LOOM_F32;
    loom_tensor ti;
    LOOM_TRY(ox_tensor(b, ind, dt, &ti));
    loom_graph *g = b->g;
    int r = loom_tensor_ndim(g, ti);
    if (r + 1 > LOOM_MAX_DIMS)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "the result has %d dims", r + 1);
    int a;
    LOOM_TRY(ox_axis(b, axis, r + 1, "attribute 'axis'", &a));
    int64_t s[LOOM_MAX_DIMS];
    for (int i = 0, k = 0; i < r + 1; i++)
        s[i] = i == a ? 1 : loom_tensor_dim(g, ti, k++);
    loom_tensor idx = loom_reshape(g, ti, r + 1, s);
    /* negative indices count from the end */
    idx = loom_where(g, loom_lt(g, idx, ox_scalar(b, 0, dt)), loom_add(g, idx, ox_scalar(b, (double)d, dt)), idx);
    loom_tensor hot = loom_eq(g, idx, iota(b, d, r + 1, a, dt));
    loom_tensor off, on;
    if (ox_is_known(vals)) {
        loom_status st;
        ox_const *k = ox_known(b, vals, &st);
        if (st != LOOM_OK)
            return st;
        off = ox_scalar(b, ox_const_get(k, 0), dt);
        on = ox_scalar(b, ox_const_get(k, 1), dt);
    } else {
        loom_tensor tv;
        LOOM_TRY(ox_tensor(b, vals, dt, &tv));
        int64_t one[1] = {1};
        /* off = v[0], on = v[1] through 1 x 2 selections */
        float s0[2] = {1, 0}, s1[2] = {0, 1};
        int64_t ss[2] = {2, 1};
        loom_tensor c0 = loom_constant(g, NULL, LOOM_F32, 2, ss, s0), c1 = loom_constant(g, NULL, LOOM_F32, 2, ss, s1);
        int64_t rs[2] = {1, 2};
        loom_tensor row = loom_reshape(g, dt == LOOM_F32 ? tv : loom_cast(g, tv, LOOM_F32), 2, rs);
        off = loom_reshape(g, loom_matmul(g, row, c0, 0, 0), 1, one);
        on = loom_reshape(g, loom_matmul(g, row, c1, 0, 0), 1, one);
        if (dt != LOOM_F32) {
            off = loom_cast(g, off, dt);
            on = loom_cast(g, on, dt);
        }
    }
    return ox_set_num(b, 0, loom_where(g, hot, on, off), vals->type);
}

loom_status oxb_trilu(ox *b)
{
    int64_t upper;
    LOOM_TRY(ox_attr_int(b, "upper", 1, &upper, NULL));
    double kd;
    LOOM_TRY(ox_known_float(b, 1, 0, &kd, NULL));
    int64_t k = (int64_t)kd;
    loom_tensor x;
    loom_dtype dt;
    ox_val *v;
    LOOM_TRY(ox_in_float(b, 0, &x, &dt, &v));
    int r = loom_tensor_ndim(b->g, x);
    if (r < 2)
        return ox_fail(b, LOOM_E_SHAPE, "the input has rank %d (2 or more expected)", r);
    int64_t M = loom_tensor_dim(b->g, x, r - 2), N = loom_tensor_dim(b->g, x, r - 1);
    float *mask = loom_malloc(b->ctx, (size_t)(M * N) * sizeof *mask);
    if (!mask)
        return ox_fail(b, LOOM_E_OOM, "out of memory");
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++)
            mask[i * N + j] = upper ? j - i >= k : j - i <= k;
    int64_t ms[2] = {M, N};
    loom_tensor mk = loom_constant(b->g, NULL, LOOM_F32, 2, ms, mask);
    loom_free(b->ctx, mask, (size_t)(M * N) * sizeof *mask);
    if (dt != LOOM_F32)
        mk = loom_cast(b->g, mk, dt);
    return ox_set_num(b, 0, loom_where(b->g, mk, x, ox_scalar(b, 0, dt)), v->type);
}

/* A running sum along an axis: a product with a triangular 0/1 matrix. */
loom_status oxb_cumsum(ox *b)
{
    int64_t excl, rev;
    LOOM_TRY(ox_attr_int(b, "exclusive", 0, &excl, NULL));
    LOOM_TRY(ox_attr_int(b, "reverse", 0, &rev, NULL));
    double ad;
    LOOM_TRY(ox_known_float(b, 1, 0, &ad, NULL));
    loom_tensor x;
    ox_val *v;
    LOOM_TRY(ox_in_float(b, 0, &x, NULL, &v));
    int a;
    LOOM_TRY(ox_axis(b, (int64_t)ad, loom_tensor_ndim(b->g, x), "axis", &a));
    int64_t n = loom_tensor_dim(b->g, x, a);
    if (n > 8192)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "a running sum over %lld values", (long long)n);
    float *w = loom_calloc(b->ctx, (size_t)(n * n), sizeof *w);
    if (!w)
        return ox_fail(b, LOOM_E_OOM, "out of memory");
    /* out[j] = sum of in[i] for i <= j (reverse: i >= j; exclusive: strict) */
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            int in = rev ? (excl ? i > j : i >= j) : (excl ? i < j : i <= j);
            w[i * n + j] = in ? 1.0f : 0.0f;
        }
    loom_tensor y;
    loom_status s = ox_axis_matrix(b, x, a, w, n, NULL, &y);
    loom_free(b->ctx, w, (size_t)(n * n) * sizeof *w);
    LOOM_TRY(s);
    return ox_set_num(b, 0, y, v->type);
}
