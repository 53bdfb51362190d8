/* Folding at load: element-wise arithmetic, comparisons and casts over
 * values known at load (the shape arithmetic exporters emit: Shape ->
 * Gather -> Add -> Concat -> Reshape), computed on the host in i64 for
 * integers (as ONNX's reference does) and in double for floats. */
#include "onnx_internal.h"

#include <math.h>
#include <string.h>

/* Numpy broadcasting of up to OX_MAX_RANK dims; 0 when they do not. */
int ox_broadcast(int na, const int64_t *a, int nb, const int64_t *b, int *nout, int64_t *out)
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

/* The flat index into an input of shape (nd, s) broadcast to (n, out). */
static int64_t bindex(int64_t flat, int n, const int64_t *out, int nd, const int64_t *s)
{
    int64_t idx = 0, stride = 1;
    for (int i = n - 1; i >= 0; i--) {
        int64_t c = flat % out[i];
        flat /= out[i];
        int j = i - (n - nd);
        if (j >= 0) {
            if (s[j] != 1)
                idx += c * stride;
            stride *= s[j];
        }
    }
    return idx;
}

static double fmod_py(double a, double b)
{
    double r = fmod(a, b);
    if (r != 0 && ((r < 0) != (b < 0)))
        r += b;
    return r;
}

static int64_t imod_py(int64_t a, int64_t b)
{
    int64_t r = a % b;
    if (r != 0 && ((r < 0) != (b < 0)))
        r += b;
    return r;
}

static double ipow(double a, double b)
{
    return pow(a, b);
}

loom_status ox_fold_binary(ox *b, ox_fold_op op, int out_type)
{
    ox_val *x = ox_in(b, 0), *y = ox_in(b, 1);
    if (!x || !y)
        return OX_DECLINE;
    loom_status s;
    ox_const *kx = ox_known(b, x, &s);
    if (s != LOOM_OK)
        return s;
    ox_const *ky = ox_known(b, y, &s);
    if (s != LOOM_OK)
        return s;
    if (!kx || !ky)
        return OX_DECLINE;
    int nd;
    int64_t shape[OX_MAX_RANK];
    if (!ox_broadcast(kx->ndim, kx->shape, ky->ndim, ky->shape, &nd, shape)) {
        char sa[160], sb[160];
        return ox_fail(b, LOOM_E_SHAPE, "shapes %s and %s do not broadcast",
                       loom_shape_str(sa, sizeof sa, kx->ndim > 4 ? 4 : kx->ndim, kx->shape),
                       loom_shape_str(sb, sizeof sb, ky->ndim > 4 ? 4 : ky->ndim, ky->shape));
    }
    uint64_t n;
    if (loom_shape_bytes(nd, shape, 8, &n, NULL) || (int64_t)n > OX_FOLD_MAX)
        return OX_DECLINE;
    int type = out_type ? out_type : kx->type;
    ox_const *k = ox_const_new(b->ctx, type, nd, shape);
    if (!k)
        return ox_fail(b, LOOM_E_OOM, "out of memory");
    int ints = !ox_type_is_float(kx->type) && !ox_type_is_float(ky->type);
    for (int64_t i = 0; i < (int64_t)n; i++) {
        int64_t ia = bindex(i, nd, shape, kx->ndim, kx->shape), ib = bindex(i, nd, shape, ky->ndim, ky->shape);
        if (ints) {
            int64_t a = ox_const_geti(kx, ia), c = ox_const_geti(ky, ib), r = 0;
            switch (op) {
            case OXF_ADD: r = (int64_t)((uint64_t)a + (uint64_t)c); break;
            case OXF_SUB: r = (int64_t)((uint64_t)a - (uint64_t)c); break;
            case OXF_MUL: r = (int64_t)((uint64_t)a * (uint64_t)c); break;
            case OXF_DIV:
                if (c == 0 || (a == INT64_MIN && c == -1)) {
                    ox_const_free(b->ctx, k);
                    return ox_fail(b, LOOM_E_RANGE, "integer division by zero at load (element %lld)",
                                   (long long)i);
                }
                r = a / c;
                break;
            case OXF_MOD:
            case OXF_FMOD:
                if (c == 0 || (a == INT64_MIN && c == -1)) {
                    ox_const_free(b->ctx, k);
                    return ox_fail(b, LOOM_E_RANGE, "integer modulo by zero at load (element %lld)", (long long)i);
                }
                r = op == OXF_MOD ? imod_py(a, c) : a % c;
                break;
            case OXF_POW: r = (int64_t)ipow((double)a, (double)c); break;
            case OXF_MAX: r = a > c ? a : c; break;
            case OXF_MIN: r = a < c ? a : c; break;
            case OXF_EQ: r = a == c; break;
            case OXF_LT: r = a < c; break;
            case OXF_LE: r = a <= c; break;
            case OXF_GT: r = a > c; break;
            case OXF_GE: r = a >= c; break;
            case OXF_AND: r = a && c; break;
            case OXF_OR: r = a || c; break;
            case OXF_XOR: r = !a != !c; break;
            }
            ox_const_puti(k, i, r);
        } else {
            double a = ox_const_get(kx, ia), c = ox_const_get(ky, ib), r = 0;
            switch (op) {
            case OXF_ADD: r = a + c; break;
            case OXF_SUB: r = a - c; break;
            case OXF_MUL: r = a * c; break;
            case OXF_DIV: r = a / c; break;
            case OXF_MOD: r = fmod_py(a, c); break;
            case OXF_FMOD: r = fmod(a, c); break;
            case OXF_POW: r = pow(a, c); break;
            case OXF_MAX: r = a > c || isnan(a) ? a : c; break;
            case OXF_MIN: r = a < c || isnan(a) ? a : c; break;
            case OXF_EQ: r = a == c; break;
            case OXF_LT: r = a < c; break;
            case OXF_LE: r = a <= c; break;
            case OXF_GT: r = a > c; break;
            case OXF_GE: r = a >= c; break;
            case OXF_AND: r = a != 0 && c != 0; break;
            case OXF_OR: r = a != 0 || c != 0; break;
            case OXF_XOR: r = (a != 0) != (c != 0); break;
            }
            /* f16 / bf16 keep their own rounding */
            if (type == LOOM_ONNX_FLOAT16 || type == LOOM_ONNX_BFLOAT16) {
                float f = (float)r;
                uint16_t h;
                loom_dtype dt = type == LOOM_ONNX_FLOAT16 ? LOOM_F16 : LOOM_BF16;
                loom_convert(dt, &h, LOOM_F32, &f, 1);
                loom_convert(LOOM_F32, &f, dt, &h, 1);
                r = f;
            }
            ox_const_put(k, i, r);
        }
    }
    return ox_set_const(b, 0, k);
}

loom_status ox_fold_unary(ox *b, ox_fold_op1 op)
{
    ox_val *x = ox_in(b, 0);
    loom_status s;
    ox_const *kx = ox_known(b, x, &s);
    if (s != LOOM_OK)
        return s;
    if (!kx || kx->n > OX_FOLD_MAX)
        return OX_DECLINE;
    ox_const *k = ox_const_new(b->ctx, op == OXF_NOT ? LOOM_ONNX_BOOL : kx->type, kx->ndim, kx->shape);
    if (!k)
        return ox_fail(b, LOOM_E_OOM, "out of memory");
    for (int64_t i = 0; i < kx->n; i++) {
        if (kx->i) {
            int64_t a = kx->i[i], r = a;
            switch (op) {
            case OXF_NEG: r = (int64_t)(0 - (uint64_t)a); break;
            case OXF_ABS: r = a < 0 ? (int64_t)(0 - (uint64_t)a) : a; break;
            case OXF_NOT: r = !a; break;
            case OXF_SIGN: r = (a > 0) - (a < 0); break;
            case OXF_IDENT:
            case OXF_FLOOR:
            case OXF_CEIL:
            case OXF_ROUND: break;
            case OXF_SQRT: r = (int64_t)sqrt((double)a); break;
            case OXF_RECIP: r = a ? 1 / a : 0; break;
            case OXF_RELU: r = a > 0 ? a : 0; break;
            }
            ox_const_puti(k, i, r);
        } else {
            double a = kx->f[i], r = a;
            switch (op) {
            case OXF_NEG: r = -a; break;
            case OXF_ABS: r = fabs(a); break;
            case OXF_NOT: r = a == 0; break;
            case OXF_SIGN: r = (a > 0) - (a < 0); break;
            case OXF_IDENT: break;
            case OXF_FLOOR: r = floor(a); break;
            case OXF_CEIL: r = ceil(a); break;
            case OXF_ROUND: r = nearbyint(a); break;
            case OXF_SQRT: r = sqrt(a); break;
            case OXF_RECIP: r = 1 / a; break;
            case OXF_RELU: r = a > 0 ? a : 0; break;
            }
            ox_const_put(k, i, r);
        }
    }
    return ox_set_const(b, 0, k);
}

/* ONNX's Cast of a known value: floats to ints truncate, ints wrap to
 * their width, anything to bool is != 0. */
loom_status ox_fold_cast_to(ox *b, int to)
{
    ox_val *x = ox_in(b, 0);
    loom_status s;
    ox_const *kx = ox_known(b, x, &s);
    if (s != LOOM_OK)
        return s;
    if (!kx || kx->n > OX_FOLD_MAX || !loom_onnx_type_size(to))
        return OX_DECLINE;
    ox_const *k = ox_const_new(b->ctx, to, kx->ndim, kx->shape);
    if (!k)
        return ox_fail(b, LOOM_E_OOM, "out of memory");
    for (int64_t i = 0; i < kx->n; i++) {
        if (to == LOOM_ONNX_BOOL)
            ox_const_puti(k, i, ox_const_get(kx, i) != 0);
        else if (kx->i)
            ox_const_puti(k, i, kx->i[i]);
        else if (k->i)
            ox_const_puti(k, i, ox_const_geti(kx, i));
        else
            ox_const_put(k, i, kx->f[i]);
        if (k->f && (to == LOOM_ONNX_FLOAT16 || to == LOOM_ONNX_BFLOAT16)) {
            uint16_t h;
            loom_dtype dt = to == LOOM_ONNX_FLOAT16 ? LOOM_F16 : LOOM_BF16;
            loom_convert(dt, &h, LOOM_F32, &k->f[i], 1);
            loom_convert(LOOM_F32, &k->f[i], dt, &h, 1);
        }
    }
    return ox_set_const(b, 0, k);
}

loom_status ox_fold_where(ox *b)
{
    ox_val *c = ox_in(b, 0), *x = ox_in(b, 1), *y = ox_in(b, 2);
    if (!c || !x || !y)
        return OX_DECLINE;
    loom_status s;
    ox_const *kc = ox_known(b, c, &s), *kx, *ky;
    if (s != LOOM_OK || !kc)
        return kc ? s : OX_DECLINE;
    kx = ox_known(b, x, &s);
    if (s != LOOM_OK || !kx)
        return kx ? s : OX_DECLINE;
    ky = ox_known(b, y, &s);
    if (s != LOOM_OK || !ky)
        return ky ? s : OX_DECLINE;
    int n1, nd;
    int64_t s1[OX_MAX_RANK], shape[OX_MAX_RANK];
    if (!ox_broadcast(kc->ndim, kc->shape, kx->ndim, kx->shape, &n1, s1) ||
        !ox_broadcast(n1, s1, ky->ndim, ky->shape, &nd, shape))
        return ox_fail(b, LOOM_E_SHAPE, "condition and values do not broadcast");
    uint64_t n;
    if (loom_shape_bytes(nd, shape, 8, &n, NULL) || (int64_t)n > OX_FOLD_MAX)
        return OX_DECLINE;
    ox_const *k = ox_const_new(b->ctx, kx->type, nd, shape);
    if (!k)
        return ox_fail(b, LOOM_E_OOM, "out of memory");
    for (int64_t i = 0; i < (int64_t)n; i++) {
        int pick = ox_const_get(kc, bindex(i, nd, shape, kc->ndim, kc->shape)) != 0;
        const ox_const *src = pick ? kx : ky;
        int64_t j = bindex(i, nd, shape, src->ndim, src->shape);
        if (k->i)
            ox_const_puti(k, i, ox_const_geti(src, j));
        else
            ox_const_put(k, i, ox_const_get(src, j));
    }
    return ox_set_const(b, 0, k);
}

/* Max, Min, Sum, Mean of any number of known inputs. */
loom_status ox_fold_variadic(ox *b, ox_fold_op op, int mean)
{
    int nin = ox_nin(b);
    if (nin < 1)
        return OX_DECLINE;
    loom_status s;
    ox_const *acc = NULL;
    for (int a = 0; a < nin; a++) {
        ox_val *v = ox_in(b, a);
        ox_const *kv = ox_known(b, v, &s);
        if (s != LOOM_OK || !kv) {
            ox_const_free(b->ctx, acc);
            return kv ? s : OX_DECLINE;
        }
        if (!acc) {
            acc = ox_const_copy(b->ctx, kv);
            if (!acc)
                return ox_fail(b, LOOM_E_OOM, "out of memory");
            continue;
        }
        int nd;
        int64_t shape[OX_MAX_RANK];
        uint64_t n;
        if (!ox_broadcast(acc->ndim, acc->shape, kv->ndim, kv->shape, &nd, shape) ||
            loom_shape_bytes(nd, shape, 8, &n, NULL) || (int64_t)n > OX_FOLD_MAX) {
            ox_const_free(b->ctx, acc);
            return OX_DECLINE;
        }
        ox_const *k = ox_const_new(b->ctx, acc->type, nd, shape);
        if (!k) {
            ox_const_free(b->ctx, acc);
            return ox_fail(b, LOOM_E_OOM, "out of memory");
        }
        for (int64_t i = 0; i < (int64_t)n; i++) {
            double p = ox_const_get(acc, bindex(i, nd, shape, acc->ndim, acc->shape));
            double q = ox_const_get(kv, bindex(i, nd, shape, kv->ndim, kv->shape));
            double r = op == OXF_MAX ? (p > q || isnan(p) ? p : q) : op == OXF_MIN ? (p < q || isnan(p) ? p : q) : p + q;
            ox_const_put(k, i, r);
        }
        ox_const_free(b->ctx, acc);
        acc = k;
    }
    if (mean)
        for (int64_t i = 0; i < acc->n; i++)
            ox_const_put(acc, i, ox_const_get(acc, i) / nin);
    return ox_set_const(b, 0, acc);
}
