/* Builders and folders of the shape and data-movement ops: Shape, Size,
 * Reshape, Flatten, (Un)Squeeze, Transpose, Expand, Concat, Slice, Split,
 * Gather, Tile, Pad, Constant, ConstantOfShape, Range, EyeLike, Dropout.
 * Values known at load are moved on the host; at run time, what loom has
 * no op for yet is an index map along one axis (ox_axis_map: a product
 * with a 0/1 selection matrix, exact for finite values). */
#include "onnx_ops.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- the index map along an axis ---- */

loom_status ox_axis_matrix(ox *b, loom_tensor x, int axis, const float *w, int64_t m, const float *bias,
                           loom_tensor *out)
{
    loom_graph *g = b->g;
    int r = loom_tensor_ndim(g, x);
    loom_dtype xdt = loom_tensor_dtype(g, x);
    loom_dtype dt = loom_dtype_is_float(xdt) ? xdt : LOOM_F32;
    int64_t shape[LOOM_MAX_DIMS] = {0};
    if (axis < 0 || axis >= r)
        return ox_fail(b, LOOM_E_SHAPE, "axis %d of a rank-%d tensor", axis, r);
    for (int i = 0; i < r; i++)
        shape[i] = loom_tensor_dim(g, x, i);
    int64_t n = shape[axis];
    loom_tensor t = dt == xdt ? x : loom_cast(g, x, dt);
    int perm[LOOM_MAX_DIMS], inv[LOOM_MAX_DIMS], k = 0;
    for (int i = 0; i < r; i++)
        if (i != axis)
            perm[k++] = i;
    perm[k] = axis;
    for (int i = 0; i < r; i++)
        inv[perm[i]] = i;
    int moved = axis != r - 1;
    if (moved)
        t = loom_transpose(g, t, perm);
    int64_t rows = 1;
    for (int i = 0; i < r; i++)
        if (i != axis)
            rows *= shape[i];
    int64_t s2[2] = {rows, n};
    t = loom_reshape(g, t, 2, s2);
    size_t cells = (size_t)n * (size_t)m;
    int64_t ss[2] = {n, m};
    loom_tensor W;
    if (dt == LOOM_F32) {
        W = loom_constant(g, NULL, LOOM_F32, 2, ss, w);
    } else {
        uint16_t *h = loom_malloc(b->ctx, cells * sizeof *h);
        if (!h)
            return ox_fail(b, LOOM_E_OOM, "out of memory");
        loom_convert(dt, h, LOOM_F32, w, cells);
        W = loom_constant(g, NULL, dt, 2, ss, h);
        loom_free(b->ctx, h, cells * sizeof *h);
    }
    t = loom_matmul(g, t, W, 0, 0);
    if (bias) {
        int64_t fs[1] = {m};
        loom_tensor F;
        if (dt == LOOM_F32) {
            F = loom_constant(g, NULL, LOOM_F32, 1, fs, bias);
        } else {
            uint16_t *h = loom_malloc(b->ctx, (size_t)m * sizeof *h);
            if (!h)
                return ox_fail(b, LOOM_E_OOM, "out of memory");
            loom_convert(dt, h, LOOM_F32, bias, (size_t)m);
            F = loom_constant(g, NULL, dt, 1, fs, h);
            loom_free(b->ctx, h, (size_t)m * sizeof *h);
        }
        t = loom_add(g, t, F);
    }
    int64_t ms[LOOM_MAX_DIMS];
    for (int i = 0; i < r; i++)
        ms[i] = i < r - 1 ? shape[perm[i]] : m;
    t = loom_reshape(g, t, r, ms);
    if (moved)
        t = loom_transpose(g, t, inv);
    if (dt != xdt)
        t = loom_cast(g, t, xdt);
    *out = t;
    return ox_check_graph(b);
}

loom_status ox_axis_map(ox *b, loom_tensor x, int axis, const int64_t *idx, int64_t m, double fill,
                        loom_tensor *out)
{
    int64_t n = loom_tensor_dim(b->g, x, axis);
    /* the identity map is the input */
    int ident = m == n;
    for (int64_t j = 0; ident && j < m; j++)
        ident = idx[j] == j;
    if (ident) {
        *out = x;
        return LOOM_OK;
    }
#if defined(LOOM_ONNX_CNN) || defined(LOOM_ONNX_SEQ)
    {
        int r = loom_tensor_ndim(b->g, x), in_range = 1;
        int64_t step = m > 1 ? idx[1] - idx[0] : 1;
        int regular = m >= 1 && step >= 1;
        for (int64_t j = 0; j < m; j++) {
            in_range &= idx[j] >= 0 && idx[j] < n;
            regular &= idx[j] == idx[0] + j * step;
        }
#ifdef LOOM_ONNX_CNN
        /* an ascending slice */
        if (in_range && regular) {
            int64_t st[LOOM_MAX_DIMS] = {0}, en[LOOM_MAX_DIMS], sp[LOOM_MAX_DIMS];
            for (int i = 0; i < r; i++) {
                en[i] = loom_tensor_dim(b->g, x, i);
                sp[i] = 1;
            }
            st[axis] = idx[0];
            en[axis] = idx[m - 1] + 1;
            sp[axis] = step;
            *out = loom_slice(b->g, x, st, en, sp);
            return ox_check_graph(b);
        }
#endif
#ifdef LOOM_ONNX_SEQ
        /* any picks: a take by constant indices */
        if (in_range) {
            int32_t *ii = loom_malloc(b->ctx, (size_t)m * sizeof *ii);
            if (!ii)
                return ox_fail(b, LOOM_E_OOM, "out of memory");
            for (int64_t j = 0; j < m; j++)
                ii[j] = (int32_t)idx[j];
            int64_t ms[1] = {m};
            loom_tensor it = loom_constant(b->g, NULL, LOOM_I32, 1, ms, ii);
            loom_free(b->ctx, ii, (size_t)m * sizeof *ii);
            *out = loom_take(b->g, x, it, axis);
            return ox_check_graph(b);
        }
#endif
        (void)r;
    }
#endif
    uint64_t cells;
    if (loom_mul_u64((uint64_t)n, (uint64_t)m, &cells) || cells > ((uint64_t)1 << 26))
        return ox_fail(b, LOOM_E_UNSUPPORTED, "an index map of %lld x %lld along axis %d is too large",
                       (long long)n, (long long)m, axis);
    float *sel = loom_calloc(b->ctx, (size_t)cells, sizeof *sel);
    float *f = loom_calloc(b->ctx, (size_t)m, sizeof *f);
    if (!sel || !f) {
        loom_free(b->ctx, sel, (size_t)cells * sizeof *sel);
        loom_free(b->ctx, f, (size_t)m * sizeof *f);
        return ox_fail(b, LOOM_E_OOM, "out of memory for a %lld x %lld selection", (long long)n, (long long)m);
    }
    int holes = 0;
    for (int64_t j = 0; j < m; j++) {
        if (idx[j] < 0 || idx[j] >= n) {
            holes = 1;
            f[j] = (float)fill;
        } else {
            sel[idx[j] * m + j] = 1.0f;
        }
    }
    loom_status s = ox_axis_matrix(b, x, axis, sel, m, holes && fill != 0 ? f : NULL, out);
    loom_free(b->ctx, sel, (size_t)cells * sizeof *sel);
    loom_free(b->ctx, f, (size_t)m * sizeof *f);
    return s;
}

/* ---- host moves ---- */

/* A copy of k under another shape of the same element count. */
static ox_const *reshaped(ox *b, const ox_const *k, int nd, const int64_t *shape)
{
    ox_const *o = ox_const_new(b->ctx, k->type, nd, shape);
    if (!o)
        return NULL;
    if (o->n != k->n) {
        ox_const_free(b->ctx, o);
        return NULL;
    }
    if (k->f)
        memcpy(o->f, k->f, (size_t)k->n * sizeof *k->f);
    else
        memcpy(o->i, k->i, (size_t)k->n * sizeof *k->i);
    return o;
}

static void copy_elem(ox_const *o, int64_t oi, const ox_const *k, int64_t ki)
{
    if (o->f)
        o->f[oi] = k->f ? k->f[ki] : (float)k->i[ki];
    else
        o->i[oi] = k->i ? k->i[ki] : ox_const_geti(k, ki);
}

/* The new shape of a value: known or run time, reshaped. */
static loom_status set_reshaped(ox *b, ox_val *x, int nd, const int64_t *shape)
{
    char sb[160];
    uint64_t n;
    if (loom_shape_bytes(nd, shape, 8, &n, NULL))
        return ox_fail(b, LOOM_E_SHAPE, "shape %s is too large",
                       loom_shape_str(sb, sizeof sb, nd > 4 ? 4 : nd, shape));
    if (ox_is_known(x)) {
        loom_status s;
        ox_const *k = ox_known(b, x, &s);
        if (s != LOOM_OK)
            return s;
        if ((int64_t)n != k->n)
            return ox_fail(b, LOOM_E_SHAPE, "%lld elements cannot take shape %s", (long long)k->n,
                           loom_shape_str(sb, sizeof sb, nd > 4 ? 4 : nd, shape));
        ox_const *o = reshaped(b, k, nd, shape);
        return ox_set_const(b, 0, o);
    }
    loom_tensor t;
    LOOM_TRY(ox_phys(b, x, &t));
    return ox_set_wide(b, 0, t, nd, shape, x->type);
}

/* ---- Shape, Size ---- */

loom_status oxb_shape(ox *b)
{
    ox_val *x;
    LOOM_TRY(ox_need(b, 0, &x));
    int64_t start, end;
    int has_end;
    LOOM_TRY(ox_attr_int(b, "start", 0, &start, NULL));
    LOOM_TRY(ox_attr_int(b, "end", 0, &end, &has_end));
    int nd;
    int64_t shape[OX_MAX_RANK];
    ox_shape(b, x, &nd, shape);
    if (!has_end)
        end = nd;
    if (start < 0)
        start += nd;
    if (end < 0)
        end += nd;
    start = start < 0 ? 0 : start > nd ? nd : start;
    end = end < 0 ? 0 : end > nd ? nd : end;
    int64_t len = end > start ? end - start : 0;
    ox_const *k = ox_const_new(b->ctx, LOOM_ONNX_INT64, 1, &len);
    if (k)
        for (int64_t i = 0; i < len; i++)
            k->i[i] = shape[start + i];
    return ox_set_const(b, 0, k);
}

loom_status oxb_size(ox *b)
{
    ox_val *x;
    LOOM_TRY(ox_need(b, 0, &x));
    int nd;
    int64_t shape[OX_MAX_RANK];
    ox_shape(b, x, &nd, shape);
    int64_t n = 1;
    for (int i = 0; i < nd; i++)
        n *= shape[i];
    ox_const *k = ox_const_new(b->ctx, LOOM_ONNX_INT64, 0, NULL);
    if (k)
        k->i[0] = n;
    return ox_set_const(b, 0, k);
}

/* ---- Reshape, Flatten, Squeeze, Unsqueeze ---- */

loom_status oxb_reshape(ox *b)
{
    int64_t allowzero;
    LOOM_TRY(ox_attr_int(b, "allowzero", 0, &allowzero, NULL));
    ox_val *x;
    LOOM_TRY(ox_need(b, 0, &x));
    int64_t want[OX_MAX_RANK];
    int n;
    LOOM_TRY(ox_known_ints(b, 1, want, OX_MAX_RANK, &n, "the shape"));
    if (n < 0)
        return ox_fail(b, LOOM_E_FORMAT, "input 1 (the shape) is missing");
    int nd;
    int64_t in[OX_MAX_RANK];
    ox_shape(b, x, &nd, in);
    uint64_t total = 0;
    loom_shape_bytes(nd, in, 1, &total, NULL);
    int infer = -1;
    uint64_t known = 1;
    char sb[160];
    for (int i = 0; i < n; i++) {
        if (want[i] == 0 && !allowzero) {
            if (i >= nd)
                return ox_fail(b, LOOM_E_SHAPE, "shape[%d] = 0 copies a dim the %d-D input lacks", i, nd);
            want[i] = in[i];
        }
        if (want[i] == -1) {
            if (infer >= 0)
                return ox_fail(b, LOOM_E_SHAPE, "the shape has two -1 dims");
            infer = i;
            continue;
        }
        if (want[i] < 0 || loom_mul_u64(known, (uint64_t)want[i], &known))
            return ox_fail(b, LOOM_E_SHAPE, "shape[%d] = %lld", i, (long long)want[i]);
    }
    if (infer >= 0) {
        if (known == 0 || total % known)
            return ox_fail(b, LOOM_E_SHAPE, "%llu elements cannot take shape %s", (unsigned long long)total,
                           loom_shape_str(sb, sizeof sb, n > 4 ? 4 : n, want));
        want[infer] = (int64_t)(total / known);
    } else if (known != total) {
        return ox_fail(b, LOOM_E_SHAPE, "%llu elements cannot take shape %s", (unsigned long long)total,
                       loom_shape_str(sb, sizeof sb, n > 4 ? 4 : n, want));
    }
    return set_reshaped(b, x, n, want);
}

loom_status oxb_flatten(ox *b)
{
    int64_t axis;
    LOOM_TRY(ox_attr_int(b, "axis", 1, &axis, NULL));
    ox_val *x;
    LOOM_TRY(ox_need(b, 0, &x));
    int nd;
    int64_t in[OX_MAX_RANK];
    ox_shape(b, x, &nd, in);
    if (axis < -nd || axis > nd)
        return ox_fail(b, LOOM_E_FORMAT, "attribute 'axis' %lld is out of range for rank %d", (long long)axis, nd);
    if (axis < 0)
        axis += nd;
    int64_t s[2] = {1, 1};
    for (int i = 0; i < nd; i++)
        s[i < axis ? 0 : 1] *= in[i];
    return set_reshaped(b, x, 2, s);
}

static loom_status squeeze(ox *b, int from_input)
{
    ox_val *x;
    LOOM_TRY(ox_need(b, 0, &x));
    int nd;
    int64_t in[OX_MAX_RANK];
    ox_shape(b, x, &nd, in);
    int64_t axes[OX_MAX_RANK * 2];
    int n = -1;
    if (from_input) {
        LOOM_TRY(ox_known_ints(b, 1, axes, OX_MAX_RANK * 2, &n, "axes"));
    } else {
        const int64_t *a;
        size_t na;
        int present;
        LOOM_TRY(ox_attr_ints(b, "axes", &a, &na, &present));
        if (present) {
            if (na > OX_MAX_RANK * 2)
                return ox_fail(b, LOOM_E_FORMAT, "attribute 'axes' has %zu values", na);
            memcpy(axes, a, na * sizeof *a);
            n = (int)na;
        }
    }
    int drop[OX_MAX_RANK] = {0};
    if (n < 0) {
        for (int i = 0; i < nd; i++)
            drop[i] = in[i] == 1;
    } else {
        for (int i = 0; i < n; i++) {
            int a;
            LOOM_TRY(ox_axis(b, axes[i], nd, "axes", &a));
            if (in[a] != 1)
                return ox_fail(b, LOOM_E_SHAPE, "axis %d has size %lld, not 1", a, (long long)in[a]);
            drop[a] = 1;
        }
    }
    int64_t out[OX_MAX_RANK];
    int no = 0;
    for (int i = 0; i < nd; i++)
        if (!drop[i])
            out[no++] = in[i];
    return set_reshaped(b, x, no, out);
}

loom_status oxb_squeeze(ox *b) { return squeeze(b, 1); }

static loom_status unsqueeze(ox *b, int from_input)
{
    ox_val *x;
    LOOM_TRY(ox_need(b, 0, &x));
    int nd;
    int64_t in[OX_MAX_RANK];
    ox_shape(b, x, &nd, in);
    int64_t axes[OX_MAX_RANK];
    int n = -1;
    if (from_input) {
        LOOM_TRY(ox_known_ints(b, 1, axes, OX_MAX_RANK, &n, "axes"));
    } else {
        const int64_t *a;
        size_t na;
        LOOM_TRY(ox_attr_ints(b, "axes", &a, &na, NULL));
        if (na > OX_MAX_RANK)
            return ox_fail(b, LOOM_E_FORMAT, "attribute 'axes' has %zu values", na);
        memcpy(axes, a, na * sizeof *a);
        n = (int)na;
    }
    if (n < 0)
        return ox_fail(b, LOOM_E_FORMAT, "no axes");
    int no = nd + n;
    if (no > OX_MAX_RANK)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "the result has %d dims (at most %d)", no, OX_MAX_RANK);
    int ins[OX_MAX_RANK] = {0};
    for (int i = 0; i < n; i++) {
        int a;
        LOOM_TRY(ox_axis(b, axes[i], no, "axes", &a));
        if (ins[a])
            return ox_fail(b, LOOM_E_FORMAT, "axis %d is given twice", a);
        ins[a] = 1;
    }
    int64_t out[OX_MAX_RANK];
    for (int i = 0, k = 0; i < no; i++)
        out[i] = ins[i] ? 1 : in[k++];
    return set_reshaped(b, x, no, out);
}

loom_status oxb_unsqueeze(ox *b) { return unsqueeze(b, 1); }

/* ---- Transpose ---- */

loom_status oxb_transpose(ox *b)
{
    ox_val *x;
    LOOM_TRY(ox_need(b, 0, &x));
    int nd;
    int64_t in[OX_MAX_RANK];
    ox_shape(b, x, &nd, in);
    const int64_t *p;
    size_t np;
    int present;
    LOOM_TRY(ox_attr_ints(b, "perm", &p, &np, &present));
    int perm[OX_MAX_RANK], seen[OX_MAX_RANK] = {0};
    if (present && (int)np != nd)
        return ox_fail(b, LOOM_E_FORMAT, "attribute 'perm' has %zu values for rank %d", np, nd);
    for (int i = 0; i < nd; i++) {
        int64_t v = present ? p[i] : nd - 1 - i;
        if (v < 0 || v >= nd || seen[v])
            return ox_fail(b, LOOM_E_FORMAT, "attribute 'perm' is not a permutation of 0..%d", nd - 1);
        seen[v] = 1;
        perm[i] = (int)v;
    }
    if (ox_is_known(x)) {
        loom_status s;
        ox_const *k = ox_known(b, x, &s);
        if (s != LOOM_OK)
            return s;
        if (k->n <= OX_FOLD_MAX) {
            int64_t out[OX_MAX_RANK];
            for (int i = 0; i < nd; i++)
                out[i] = in[perm[i]];
            ox_const *o = ox_const_new(b->ctx, k->type, nd, out);
            if (!o)
                return ox_fail(b, LOOM_E_OOM, "out of memory");
            int64_t istride[OX_MAX_RANK];
            int64_t st = 1;
            for (int i = nd - 1; i >= 0; i--) {
                istride[i] = st;
                st *= in[i];
            }
            for (int64_t j = 0; j < o->n; j++) {
                int64_t rem = j, src = 0;
                for (int d = nd - 1; d >= 0; d--) {
                    int64_t c = rem % out[d];
                    rem /= out[d];
                    src += c * istride[perm[d]];
                }
                copy_elem(o, j, k, src);
            }
            return ox_set_const(b, 0, o);
        }
    }
    loom_tensor t;
    LOOM_TRY(ox_phys(b, x, &t));
    int64_t out[OX_MAX_RANK];
    for (int i = 0; i < nd; i++)
        out[i] = in[perm[i]];
    if (nd <= LOOM_MAX_DIMS && !x->wide) {
        int ident = 1;
        for (int i = 0; i < nd; i++)
            ident &= perm[i] == i;
        return ox_set(b, 0, ident ? t : loom_transpose(b->g, t, perm), x->type);
    }
    /* a wide value: the dims of more than 1 keep their order among
     * themselves but move, the 1s go wherever perm puts them */
    int phys_of[OX_MAX_RANK], nphys = 0;
    for (int i = 0; i < nd; i++)
        phys_of[i] = in[i] != 1 ? nphys++ : -1;
    int pp[LOOM_MAX_DIMS], k = 0;
    if (nphys > LOOM_MAX_DIMS)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "%d dims of more than 1 (loom's tensors hold at most %d)", nphys,
                       LOOM_MAX_DIMS);
    for (int i = 0; i < nd; i++)
        if (phys_of[perm[i]] >= 0)
            pp[k++] = phys_of[perm[i]];
    /* t holds the dims of more than 1 in order (its own rank may differ
     * when it is not wide: reshaped to them first) */
    int64_t sq[LOOM_MAX_DIMS];
    for (int i = 0, j = 0; i < nd; i++)
        if (in[i] != 1)
            sq[j++] = in[i];
    int same = loom_tensor_ndim(b->g, t) == nphys;
    for (int i = 0; same && i < nphys; i++)
        same = loom_tensor_dim(b->g, t, i) == sq[i];
    if (!same)
        t = loom_reshape(b->g, t, nphys, sq);
    int ident = 1;
    for (int i = 0; i < nphys; i++)
        ident &= pp[i] == i;
    if (!ident)
        t = loom_transpose(b->g, t, pp);
    return ox_set_wide(b, 0, t, nd, out, x->type);
}

/* ---- Expand ---- */

/* t + zeros of shape zs: broadcasting grows t over the dims where zs is
 * more than 1 (Expand). */
static loom_status plus_zeros(ox *b, loom_tensor t, loom_dtype dt, int nd, const int64_t *zs, loom_tensor *out)
{
    uint64_t zn = 1;
    loom_shape_bytes(nd, zs, 1, &zn, NULL);
    void *zero = loom_calloc(b->ctx, (size_t)zn, loom_dtype_size(dt));
    if (!zero)
        return ox_fail(b, LOOM_E_OOM, "out of memory");
    loom_tensor z = loom_constant(b->g, NULL, dt, nd, zs, zero);
    loom_free(b->ctx, zero, (size_t)zn * loom_dtype_size(dt));
    *out = loom_add(b->g, t, z);
    return LOOM_OK;
}

/* Expand to more dims than loom holds, or of a wide value: neighbouring
 * dims that all grow (from 1) or all keep their size merge into one, and
 * the result is the wide value of those groups (its elements in the same
 * order), which a reshape takes on -- the grouped-query heads of ONNX's
 * expanded attention, [B, Hkv, 1, N, D] -> [B, Hkv, G, N, D] -> [B, H, N, D]. */
static loom_status expand_wide(ox *b, ox_val *x, int nd, const int64_t *in, int no, const int64_t *out)
{
    int64_t gin[OX_MAX_RANK], gout[OX_MAX_RANK];
    int ng = 0, last = -1;     /* last: the class of the open group, 1 grows */
    for (int d = 0; d < no; d++) {
        int e = d - (no - nd);
        int64_t din = e >= 0 ? in[e] : 1;
        if (out[d] == 1)
            continue;
        int grows = din != out[d];
        if (grows && din != 1)
            return ox_fail(b, LOOM_E_SHAPE, "dim %d of %lld does not broadcast to %lld", d, (long long)din,
                           (long long)out[d]);
        if (grows != last) {
            gin[ng] = 1;
            gout[ng] = 1;
            ng++;
            last = grows;
        }
        gin[ng - 1] *= din;
        gout[ng - 1] *= out[d];
    }
    if (ng > LOOM_MAX_DIMS)
        return ox_fail(b, LOOM_E_UNSUPPORTED,
                       "the result has %d dims (loom's tensors hold at most %d, and its dims form %d groups that "
                       "broadcast alike)", no, LOOM_MAX_DIMS, ng);
    if (ng == 0) {
        gin[0] = gout[0] = 1;
        ng = 1;
    }
    loom_dtype dt = ox_float_dt(b, x);
    loom_tensor t;
    LOOM_TRY(ox_phys(b, x, &t));
    if (loom_tensor_dtype(b->g, t) != dt)
        t = loom_cast(b->g, t, dt);
    t = loom_reshape(b->g, t, ng, gin);
    int64_t zs[LOOM_MAX_DIMS];
    int grow = 0;
    for (int i = 0; i < ng; i++) {
        zs[i] = gin[i] == gout[i] ? 1 : gout[i];
        grow |= gin[i] != gout[i];
    }
    if (grow)
        LOOM_TRY(plus_zeros(b, t, dt, ng, zs, &t));
    return ox_set_wide(b, 0, t, no, out, x->type);
}

loom_status oxb_expand(ox *b)
{
    ox_val *x;
    LOOM_TRY(ox_need(b, 0, &x));
    int64_t want[OX_MAX_RANK];
    int n;
    LOOM_TRY(ox_known_ints(b, 1, want, OX_MAX_RANK, &n, "the shape"));
    if (n < 0)
        return ox_fail(b, LOOM_E_FORMAT, "input 1 (the shape) is missing");
    int nd, no;
    int64_t in[OX_MAX_RANK], out[OX_MAX_RANK];
    ox_shape(b, x, &nd, in);
    char sa[160], sb[160];
    if (!ox_broadcast(nd, in, n, want, &no, out))
        return ox_fail(b, LOOM_E_SHAPE, "shape %s does not broadcast to %s",
                       loom_shape_str(sa, sizeof sa, nd > 4 ? 4 : nd, in),
                       loom_shape_str(sb, sizeof sb, n > 4 ? 4 : n, want));
    if (ox_is_known(x)) {
        loom_status s;
        ox_const *k = ox_known(b, x, &s);
        if (s != LOOM_OK)
            return s;
        uint64_t total;
        if (!loom_shape_bytes(no, out, 8, &total, NULL) && (int64_t)total <= OX_FOLD_MAX) {
            ox_const *o = ox_const_new(b->ctx, k->type, no, out);
            if (!o)
                return ox_fail(b, LOOM_E_OOM, "out of memory");
            for (int64_t j = 0; j < o->n; j++) {
                int64_t rem = j, src = 0, st = 1;
                for (int d = no - 1; d >= 0; d--) {
                    int64_t c = rem % out[d];
                    rem /= out[d];
                    int e = d - (no - nd);
                    if (e >= 0) {
                        if (in[e] != 1)
                            src += c * st;
                        st *= in[e];
                    }
                }
                copy_elem(o, j, k, src);
            }
            return ox_set_const(b, 0, o);
        }
    }
    if (no > LOOM_MAX_DIMS || x->wide)
        return expand_wide(b, x, nd, in, no, out);
    loom_dtype dt = ox_float_dt(b, x);
    loom_tensor t;
    LOOM_TRY(ox_tensor(b, x, dt, &t));
    /* x + zeros over the dims that grow: broadcasting does the rest */
    int64_t zs[LOOM_MAX_DIMS];
    int grow = 0;
    for (int d = 0; d < no; d++) {
        int e = d - (no - nd);
        int64_t din = e >= 0 ? in[e] : 1;
        zs[d] = din == out[d] ? 1 : out[d];
        grow |= din != out[d];
    }
    if (!grow && no == nd)
        return ox_set_num(b, 0, t, x->type);
    LOOM_TRY(plus_zeros(b, t, dt, no, zs, &t));
    return ox_set_num(b, 0, t, x->type);
}

/* ---- Concat ---- */

loom_status oxb_concat(ox *b)
{
    int64_t axis;
    int present;
    LOOM_TRY(ox_attr_int(b, "axis", 0, &axis, &present));
    if (!present)
        return ox_fail(b, LOOM_E_FORMAT, "attribute 'axis' is missing");
    int nin = ox_nin(b);
    ox_val *x0;
    LOOM_TRY(ox_need(b, 0, &x0));
    int nd;
    int64_t s0[OX_MAX_RANK];
    ox_shape(b, x0, &nd, s0);
    int a;
    LOOM_TRY(ox_axis(b, axis, nd, "attribute 'axis'", &a));
    int64_t total = 0;
    int all_known = 1;
    for (int i = 0; i < nin; i++) {
        ox_val *v;
        LOOM_TRY(ox_need(b, i, &v));
        int ndi;
        int64_t si[OX_MAX_RANK];
        ox_shape(b, v, &ndi, si);
        if (ndi != nd)
            return ox_fail(b, LOOM_E_SHAPE, "input %d has rank %d, input 0 rank %d", i, ndi, nd);
        for (int d = 0; d < nd; d++)
            if (d != a && si[d] != s0[d])
                return ox_fail(b, LOOM_E_SHAPE, "input %d differs from input 0 in dim %d (%lld vs %lld)", i, d,
                               (long long)si[d], (long long)s0[d]);
        total += si[a];
        all_known &= ox_is_known(v);
    }
    int64_t out[OX_MAX_RANK];
    memcpy(out, s0, sizeof out);
    out[a] = total;
    uint64_t on;
    if (loom_shape_bytes(nd, out, 8, &on, NULL))
        return ox_fail(b, LOOM_E_SHAPE, "the result is too large");
    if (all_known && (int64_t)on <= OX_FOLD_MAX) {
        ox_const *o = ox_const_new(b->ctx, x0->type, nd, out);
        if (!o)
            return ox_fail(b, LOOM_E_OOM, "out of memory");
        int64_t inner = 1, outer = 1;
        for (int d = a + 1; d < nd; d++)
            inner *= out[d];
        for (int d = 0; d < a; d++)
            outer *= out[d];
        int64_t off = 0;
        for (int i = 0; i < nin; i++) {
            loom_status s;
            ox_const *k = ox_known(b, ox_in(b, i), &s);
            if (s != LOOM_OK) {
                ox_const_free(b->ctx, o);
                return s;
            }
            int64_t len = k->ndim ? k->shape[a] : 1;
            for (int64_t p = 0; p < outer; p++)
                for (int64_t q = 0; q < len * inner; q++)
                    copy_elem(o, (p * total + off) * inner + q, k, p * len * inner + q);
            off += len;
        }
        return ox_set_const(b, 0, o);
    }
    if (nd > LOOM_MAX_DIMS)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "%d dims (loom's tensors hold at most %d)", nd, LOOM_MAX_DIMS);
    loom_dtype dt = LOOM_F32;
    for (int i = 0; i < nin; i++)
        if (!ox_is_known(ox_in(b, i))) {
            dt = ox_float_dt(b, ox_in(b, i));
            break;
        }
    loom_tensor ts[64], y;
    int nt = 0;
    if (nin > 64)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "%d inputs (at most 64)", nin);
    for (int i = 0; i < nin; i++) {
        ox_val *v = ox_in(b, i);
        if (ox_dim(b, v, a) == 0)
            continue;
        LOOM_TRY(ox_tensor(b, v, dt, &ts[nt]));
        nt++;
    }
    LOOM_TRY(ox_concat(b, nt, ts, a, &y));
    return ox_set_num(b, 0, y, x0->type);
}

loom_status ox_concat(ox *b, int n, const loom_tensor *ts, int axis, loom_tensor *out)
{
#ifdef LOOM_ONNX_CNN
    if (n == 1) {
        *out = ts[0];
        return LOOM_OK;
    }
    *out = loom_concat(b->g, n, ts, axis);
    return ox_check_graph(b);
#endif
    /* each input placed by an index map into its slot, summed */
    int64_t total = 0;
    for (int i = 0; i < n; i++)
        total += loom_tensor_dim(b->g, ts[i], axis);
    if (n == 1) {
        *out = ts[0];
        return LOOM_OK;
    }
    loom_tensor acc = LOOM_NONE;
    int64_t *idx = loom_calloc(b->ctx, (size_t)(total ? total : 1), sizeof *idx);
    if (!idx)
        return ox_fail(b, LOOM_E_OOM, "out of memory");
    int64_t off = 0;
    loom_status s = LOOM_OK;
    for (int i = 0; i < n && s == LOOM_OK; i++) {
        int64_t len = loom_tensor_dim(b->g, ts[i], axis);
        loom_tensor p;
        for (int64_t j = 0; j < total; j++)
            idx[j] = j >= off && j < off + len ? j - off : -1;
        if ((s = ox_axis_map(b, ts[i], axis, idx, total, 0, &p)) != LOOM_OK)
            break;
        acc = acc.id ? loom_add(b->g, acc, p) : p;
        off += len;
    }
    loom_free(b->ctx, idx, (size_t)(total ? total : 1) * sizeof *idx);
    *out = acc;
    return s != LOOM_OK ? s : ox_check_graph(b);
}

/* Rows [start, start + len) of x along axis. */
loom_status ox_slice_axis(ox *b, loom_tensor x, int axis, int64_t start, int64_t len, loom_tensor *out)
{
    int64_t *idx = loom_malloc(b->ctx, (size_t)(len ? len : 1) * sizeof *idx);
    if (!idx)
        return ox_fail(b, LOOM_E_OOM, "out of memory");
    for (int64_t j = 0; j < len; j++)
        idx[j] = start + j;
    loom_status s = ox_axis_map(b, x, axis, idx, len, 0, out);
    loom_free(b->ctx, idx, (size_t)(len ? len : 1) * sizeof *idx);
    return s;
}

/* ---- Slice, Split, Gather ---- */

/* The indices an ONNX slice (start, end, step) picks from a dim of n. */
static int64_t slice_indices(int64_t n, int64_t start, int64_t end, int64_t step, int64_t *idx)
{
    if (start < 0)
        start += n;
    if (end < 0)
        end += n;
    int64_t m = 0;
    if (step > 0) {
        start = start < 0 ? 0 : start > n ? n : start;
        end = end < 0 ? 0 : end > n ? n : end;
        for (int64_t i = start; i < end; i += step)
            idx[m++] = i;
    } else {
        start = start < 0 ? -1 : start > n - 1 ? n - 1 : start;
        end = end < -1 ? -1 : end > n - 1 ? n - 1 : end;
        for (int64_t i = start; i > end; i += step)
            idx[m++] = i;
    }
    return m;
}

/* Picks idx[0..m) along axis a of a known value (fill where idx < 0). */
static ox_const *take(ox *b, const ox_const *k, int a, const int64_t *idx, int64_t m, double fill)
{
    int64_t out[OX_MAX_RANK];
    memcpy(out, k->shape, sizeof out);
    out[a] = m;
    ox_const *o = ox_const_new(b->ctx, k->type, k->ndim, out);
    if (!o)
        return NULL;
    int64_t inner = 1, outer = 1;
    for (int d = a + 1; d < k->ndim; d++)
        inner *= k->shape[d];
    for (int d = 0; d < a; d++)
        outer *= k->shape[d];
    int64_t n = k->shape[a];
    for (int64_t p = 0; p < outer; p++)
        for (int64_t j = 0; j < m; j++)
            for (int64_t q = 0; q < inner; q++) {
                if (idx[j] < 0 || idx[j] >= n)
                    ox_const_put(o, (p * m + j) * inner + q, fill);
                else
                    copy_elem(o, (p * m + j) * inner + q, k, (p * n + idx[j]) * inner + q);
            }
    return o;
}

/* Applies per-axis index maps (NULL: keep) to x, into output `out`. */
static loom_status pick_axes(ox *b, ox_val *x, int out, int64_t **maps, const int64_t *lens, double fill)
{
    int nd;
    int64_t in[OX_MAX_RANK];
    ox_shape(b, x, &nd, in);
    uint64_t bigger = 1;
    for (int d = 0; d < nd; d++)
        if (maps[d] && loom_mul_u64(bigger, (uint64_t)(lens[d] > in[d] ? lens[d] : in[d]), &bigger))
            return ox_fail(b, LOOM_E_SHAPE, "the result is too large");
    if (ox_is_known(x)) {
        loom_status s;
        ox_const *k = ox_known(b, x, &s);
        if (s != LOOM_OK)
            return s;
        if (k->n <= OX_FOLD_MAX) {
            ox_const *cur = ox_const_copy(b->ctx, k);
            for (int d = 0; d < nd && cur; d++) {
                if (!maps[d])
                    continue;
                ox_const *nx = take(b, cur, d, maps[d], lens[d], fill);
                ox_const_free(b->ctx, cur);
                cur = nx;
            }
            if (!cur)
                return ox_fail(b, LOOM_E_OOM, "out of memory");
            if (cur->n > OX_FOLD_MAX) {
                ox_const_free(b->ctx, cur);
                return ox_fail(b, LOOM_E_UNSUPPORTED, "the result is too large to fold");
            }
            return ox_set_const(b, out, cur);
        }
    }
    if (nd > LOOM_MAX_DIMS)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "%d dims (loom's tensors hold at most %d)", nd, LOOM_MAX_DIMS);
    for (int d = 0; d < nd; d++)
        if (maps[d] && lens[d] == 0)
            return ox_fail(b, LOOM_E_UNSUPPORTED, "the result is empty along axis %d (no zero-size dims in loom)", d);
    loom_tensor t;
    LOOM_TRY(ox_tensor(b, x, LOOM_DTYPE_COUNT, &t));
    for (int d = 0; d < nd; d++)
        if (maps[d])
            LOOM_TRY(ox_axis_map(b, t, d, maps[d], lens[d], fill, &t));
    /* a slice that keeps everything is still a node of its own */
    return ox_set(b, out, t, x->type);
}

loom_status oxb_slice(ox *b)
{
    ox_val *x;
    LOOM_TRY(ox_need(b, 0, &x));
    int nd;
    int64_t in[OX_MAX_RANK];
    ox_shape(b, x, &nd, in);
    int64_t starts[OX_MAX_RANK], ends[OX_MAX_RANK], axes[OX_MAX_RANK], steps[OX_MAX_RANK];
    int ns, ne, na, nst;
    LOOM_TRY(ox_known_ints(b, 1, starts, OX_MAX_RANK, &ns, "starts"));
    LOOM_TRY(ox_known_ints(b, 2, ends, OX_MAX_RANK, &ne, "ends"));
    LOOM_TRY(ox_known_ints(b, 3, axes, OX_MAX_RANK, &na, "axes"));
    LOOM_TRY(ox_known_ints(b, 4, steps, OX_MAX_RANK, &nst, "steps"));
    if (ns < 0 || ne < 0 || ns != ne || (na >= 0 && na != ns) || (nst >= 0 && nst != ns))
        return ox_fail(b, LOOM_E_FORMAT, "starts, ends, axes and steps differ in length (%d, %d, %d, %d)", ns, ne, na,
                       nst);
    int64_t *maps[OX_MAX_RANK] = {0}, lens[OX_MAX_RANK] = {0};
    loom_status s = LOOM_OK;
    for (int i = 0; i < ns && s == LOOM_OK; i++) {
        int a;
        if ((s = ox_axis(b, na >= 0 ? axes[i] : i, nd, "axes", &a)) != LOOM_OK)
            break;
        int64_t step = nst >= 0 ? steps[i] : 1;
        if (step == 0) {
            s = ox_fail(b, LOOM_E_FORMAT, "steps[%d] is 0", i);
            break;
        }
        if (maps[a]) {
            s = ox_fail(b, LOOM_E_FORMAT, "axis %d is sliced twice", a);
            break;
        }
        maps[a] = loom_calloc(b->ctx, (size_t)(in[a] ? in[a] : 1), sizeof *maps[a]);
        if (!maps[a]) {
            s = ox_fail(b, LOOM_E_OOM, "out of memory");
            break;
        }
        lens[a] = slice_indices(in[a], starts[i], ends[i], step, maps[a]);
    }
    if (s == LOOM_OK)
        s = pick_axes(b, x, 0, maps, lens, 0);
    for (int d = 0; d < OX_MAX_RANK; d++)
        if (maps[d])
            loom_free(b->ctx, maps[d], (size_t)(in[d] ? in[d] : 1) * sizeof *maps[d]);
    return s;
}

static loom_status split(ox *b, int opset18)
{
    int64_t axis, num = 0;
    LOOM_TRY(ox_attr_int(b, "axis", 0, &axis, NULL));
    if (opset18)
        LOOM_TRY(ox_attr_int(b, "num_outputs", 0, &num, NULL));
    ox_val *x;
    LOOM_TRY(ox_need(b, 0, &x));
    int nd;
    int64_t in[OX_MAX_RANK];
    ox_shape(b, x, &nd, in);
    int a;
    LOOM_TRY(ox_axis(b, axis, nd, "attribute 'axis'", &a));
    int nout = ox_nout(b);
    int64_t parts[64];
    int np;
    LOOM_TRY(ox_known_ints(b, 1, parts, 64, &np, "split"));
    if (np < 0) {
        int64_t k = num ? num : nout;
        if (k <= 0 || k > 64)
            return ox_fail(b, LOOM_E_FORMAT, "%lld outputs", (long long)k);
        int64_t each = (in[a] + k - 1) / k;
        np = (int)k;
        for (int i = 0; i < np; i++) {
            int64_t left = in[a] - each * i;
            parts[i] = left < 0 ? 0 : left < each ? left : each;
        }
    }
    if (np != nout)
        return ox_fail(b, LOOM_E_FORMAT, "%d parts for %d outputs", np, nout);
    int64_t sum = 0;
    for (int i = 0; i < np; i++) {
        if (parts[i] < 0)
            return ox_fail(b, LOOM_E_FORMAT, "split[%d] = %lld", i, (long long)parts[i]);
        sum += parts[i];
    }
    if (sum != in[a])
        return ox_fail(b, LOOM_E_SHAPE, "the parts sum to %lld, axis %d has %lld", (long long)sum, a,
                       (long long)in[a]);
    int64_t off = 0;
    for (int i = 0; i < np; i++) {
        int64_t *maps[OX_MAX_RANK] = {0}, lens[OX_MAX_RANK] = {0};
        int64_t *idx = loom_calloc(b->ctx, (size_t)(parts[i] ? parts[i] : 1), sizeof *idx);
        if (!idx)
            return ox_fail(b, LOOM_E_OOM, "out of memory");
        for (int64_t j = 0; j < parts[i]; j++)
            idx[j] = off + j;
        maps[a] = idx;
        lens[a] = parts[i];
        loom_status s = ox_out(b, i) ? pick_axes(b, x, i, maps, lens, 0) : LOOM_OK;
        loom_free(b->ctx, idx, (size_t)(parts[i] ? parts[i] : 1) * sizeof *idx);
        if (s != LOOM_OK)
            return s;
        off += parts[i];
    }
    return LOOM_OK;
}

loom_status oxb_split(ox *b) { return split(b, 0); }
loom_status oxb_split18(ox *b) { return split(b, 1); }

loom_status oxb_gather(ox *b)
{
    int64_t axis;
    LOOM_TRY(ox_attr_int(b, "axis", 0, &axis, NULL));
    ox_val *x, *iv;
    LOOM_TRY(ox_need(b, 0, &x));
    LOOM_TRY(ox_need(b, 1, &iv));
    int nd;
    int64_t in[OX_MAX_RANK];
    ox_shape(b, x, &nd, in);
    int a;
    LOOM_TRY(ox_axis(b, axis, nd, "attribute 'axis'", &a));
    loom_status s;
    ox_const *ki = ox_known(b, iv, &s);
    if (s != LOOM_OK)
        return s;
    if (!ki) {
#ifdef LOOM_ONNX_SEQ
        /* a take by indices computed at run time; negative ones count
         * from the end */
        loom_tensor tx, ti;
        LOOM_TRY(ox_tensor(b, x, LOOM_DTYPE_COUNT, &tx));
        LOOM_TRY(ox_tensor(b, iv, LOOM_F32, &ti));
        loom_graph *g = b->g;
        ti = loom_where(g, loom_lt(g, ti, ox_scalar(b, 0, LOOM_F32)), loom_add(g, ti, ox_scalar(b, (double)in[a], LOOM_F32)),
                        ti);
        return ox_set(b, 0, loom_take(g, tx, loom_cast(g, ti, LOOM_I32), a), x->type);
#else
        return ox_fail(b, LOOM_E_UNSUPPORTED, "indices computed at run time need a gather op");
#endif
    }
    int64_t n = in[a];
    int64_t *idx = loom_calloc(b->ctx, (size_t)(ki->n ? ki->n : 1), sizeof *idx);
    if (!idx)
        return ox_fail(b, LOOM_E_OOM, "out of memory");
    for (int64_t j = 0; j < ki->n; j++) {
        int64_t v = ox_const_geti(ki, j);
        if (v < -n || v >= n) {
            loom_free(b->ctx, idx, (size_t)(ki->n ? ki->n : 1) * sizeof *idx);
            return ox_fail(b, LOOM_E_RANGE, "index %lld at %lld is outside [%lld, %lld)", (long long)v, (long long)j,
                           (long long)-n, (long long)n);
        }
        idx[j] = v < 0 ? v + n : v;
    }
    /* out shape: x[:a] + indices' shape + x[a+1:] */
    int64_t out[OX_MAX_RANK * 2];
    int no = 0;
    for (int d = 0; d < a; d++)
        out[no++] = in[d];
    for (int d = 0; d < ki->ndim; d++)
        out[no++] = ki->shape[d];
    for (int d = a + 1; d < nd; d++)
        out[no++] = in[d];
    if (no > OX_MAX_RANK) {
        loom_free(b->ctx, idx, (size_t)(ki->n ? ki->n : 1) * sizeof *idx);
        return ox_fail(b, LOOM_E_UNSUPPORTED, "the result has %d dims", no);
    }
    int64_t *maps[OX_MAX_RANK] = {0}, lens[OX_MAX_RANK] = {0};
    maps[a] = idx;
    lens[a] = ki->n;
    s = pick_axes(b, x, 0, maps, lens, 0);
    loom_free(b->ctx, idx, (size_t)(ki->n ? ki->n : 1) * sizeof *idx);
    if (s != LOOM_OK)
        return s;
    /* then the indices' own shape in place of the axis */
    ox_val *o = ox_out(b, 0);
    if (!o)
        return LOOM_OK;
    if (o->k) {
        ox_const *r = reshaped(b, o->k, no, out);
        if (!r)
            return ox_fail(b, LOOM_E_OOM, "out of memory");
        ox_const_free(b->ctx, o->k);
        o->k = NULL;
        return ox_set_const(b, 0, r);
    }
    loom_tensor t;
    LOOM_TRY(ox_reshape(b, o->t, no, out, &t));
    return ox_set(b, 0, t, x->type);
}

/* ---- Tile, Pad ---- */

loom_status oxb_tile(ox *b)
{
    ox_val *x;
    LOOM_TRY(ox_need(b, 0, &x));
    int nd;
    int64_t in[OX_MAX_RANK];
    ox_shape(b, x, &nd, in);
    int64_t rep[OX_MAX_RANK];
    int n;
    LOOM_TRY(ox_known_ints(b, 1, rep, OX_MAX_RANK, &n, "repeats"));
    if (n != nd)
        return ox_fail(b, LOOM_E_FORMAT, "repeats has %d values for rank %d", n, nd);
    int64_t *maps[OX_MAX_RANK] = {0}, lens[OX_MAX_RANK] = {0};
    loom_status s = LOOM_OK;
    for (int d = 0; d < nd && s == LOOM_OK; d++) {
        uint64_t m;
        if (rep[d] < 0 || loom_mul_u64((uint64_t)in[d], (uint64_t)rep[d], &m) || m > ((uint64_t)1 << 24)) {
            s = ox_fail(b, LOOM_E_SHAPE, "repeats[%d] = %lld", d, (long long)rep[d]);
            break;
        }
        if (rep[d] == 1)
            continue;
        maps[d] = loom_calloc(b->ctx, (size_t)(m ? m : 1), sizeof *maps[d]);
        if (!maps[d]) {
            s = ox_fail(b, LOOM_E_OOM, "out of memory");
            break;
        }
        for (uint64_t j = 0; j < m; j++)
            maps[d][j] = (int64_t)(j % (uint64_t)in[d]);
        lens[d] = (int64_t)m;
    }
    if (s == LOOM_OK)
        s = pick_axes(b, x, 0, maps, lens, 0);
    for (int d = 0; d < nd; d++)
        if (maps[d])
            loom_free(b->ctx, maps[d], (size_t)(lens[d] ? lens[d] : 1) * sizeof *maps[d]);
    return s;
}

loom_status oxb_pad(ox *b)
{
    const char *mode;
    LOOM_TRY(ox_attr_string(b, "mode", "constant", &mode));
    int m = !strcmp(mode, "constant") ? 0 : !strcmp(mode, "reflect") ? 1 : !strcmp(mode, "edge") ? 2
                                                                             : !strcmp(mode, "wrap") ? 3 : -1;
    if (m < 0)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "attribute 'mode' = \"%s\"", mode);
    ox_val *x;
    LOOM_TRY(ox_need(b, 0, &x));
    int nd;
    int64_t in[OX_MAX_RANK];
    ox_shape(b, x, &nd, in);
    int64_t pads[OX_MAX_RANK * 2], axes[OX_MAX_RANK];
    int np, na;
    LOOM_TRY(ox_known_ints(b, 1, pads, OX_MAX_RANK * 2, &np, "pads"));
    LOOM_TRY(ox_known_ints(b, 3, axes, OX_MAX_RANK, &na, "axes"));
    double cval;
    LOOM_TRY(ox_known_float(b, 2, 0, &cval, NULL));
    int nax = na >= 0 ? na : nd;
    if (np != 2 * nax)
        return ox_fail(b, LOOM_E_FORMAT, "pads has %d values for %d axes", np, nax);
    int64_t *maps[OX_MAX_RANK] = {0}, lens[OX_MAX_RANK] = {0};
    int64_t los[OX_MAX_RANK] = {0}, his[OX_MAX_RANK] = {0};
    loom_status s = LOOM_OK;
    for (int i = 0; i < nax && s == LOOM_OK; i++) {
        int a;
        if ((s = ox_axis(b, na >= 0 ? axes[i] : i, nd, "axes", &a)) != LOOM_OK)
            break;
        int64_t lo = pads[i], hi = pads[i + nax], n = in[a];
        los[a] = lo;
        his[a] = hi;
        if (!lo && !hi)
            continue;
        int64_t len = n + lo + hi;
        if (len < 0 || len > ((int64_t)1 << 24) || maps[a]) {
            s = ox_fail(b, LOOM_E_SHAPE, "pads %lld, %lld on axis %d of %lld", (long long)lo, (long long)hi, a,
                        (long long)n);
            break;
        }
        maps[a] = loom_calloc(b->ctx, (size_t)(len ? len : 1), sizeof *maps[a]);
        if (!maps[a]) {
            s = ox_fail(b, LOOM_E_OOM, "out of memory");
            break;
        }
        lens[a] = len;
        for (int64_t j = 0; j < len; j++) {
            int64_t src = j - lo;
            if (src < 0 || src >= n) {
                if (m == 0)
                    src = -1;
                else if (m == 2)
                    src = src < 0 ? 0 : n - 1;
                else if (m == 3)
                    src = ((src % n) + n) % n;
                else if (n == 1)
                    src = 0;
                else {
                    int64_t period = 2 * (n - 1);
                    src = ((src % period) + period) % period;
                    if (src >= n)
                        src = period - src;
                }
            }
            maps[a][j] = src;
        }
    }
    (void)los, (void)his;
#ifdef LOOM_ONNX_CNN
    /* loom's pad: constant, or reflect within the dims, growing only */
    int grows = 1, fits = 1;
    for (int d = 0; d < nd; d++) {
        grows &= los[d] >= 0 && his[d] >= 0;
        fits &= los[d] < in[d] && his[d] < in[d];
    }
    if (s == LOOM_OK && !ox_is_known(x) && nd <= LOOM_MAX_DIMS && grows && (m == 0 || (m == 1 && fits))) {
        loom_tensor t;
        s = ox_tensor(b, x, LOOM_DTYPE_COUNT, &t);
        if (s == LOOM_OK)
            s = ox_set(b, 0, loom_pad(b->g, t, los, his, m ? LOOM_PAD_REFLECT : LOOM_PAD_CONSTANT, (float)cval),
                       x->type);
        for (int d = 0; d < nd; d++)
            if (maps[d])
                loom_free(b->ctx, maps[d], (size_t)(lens[d] ? lens[d] : 1) * sizeof *maps[d]);
        return s;
    }
#endif
    if (s == LOOM_OK)
        s = pick_axes(b, x, 0, maps, lens, cval);
    for (int d = 0; d < nd; d++)
        if (maps[d])
            loom_free(b->ctx, maps[d], (size_t)(lens[d] ? lens[d] : 1) * sizeof *maps[d]);
    return s;
}

/* ---- constants ---- */

loom_status oxb_constant(ox *b)
{
    const Onnx__TensorProto *t;
    LOOM_TRY(ox_attr_tensor(b, "value", &t));
    float f;
    int64_t i;
    const float *fs;
    const int64_t *is;
    size_t nf, ni;
    int pf, pi, pfs, pis;
    LOOM_TRY(ox_attr_float(b, "value_float", 0, &f, &pf));
    LOOM_TRY(ox_attr_int(b, "value_int", 0, &i, &pi));
    LOOM_TRY(ox_attr_floats(b, "value_floats", &fs, &nf, &pfs));
    LOOM_TRY(ox_attr_ints(b, "value_ints", &is, &ni, &pis));
    ox_const *k = NULL;
    if (t) {
        char what[256];
        snprintf(what, sizeof what, "%s: %s: attribute 'value'", b->what, b->node_desc);
        LOOM_TRY(ox_decode_tensor(b->ctx, t, b->base_dir, what, &k));
    } else if (pf) {
        k = ox_const_new(b->ctx, LOOM_ONNX_FLOAT, 0, NULL);
        if (k)
            k->f[0] = f;
    } else if (pi) {
        k = ox_const_new(b->ctx, LOOM_ONNX_INT64, 0, NULL);
        if (k)
            k->i[0] = i;
    } else if (pfs) {
        int64_t n = (int64_t)nf;
        k = ox_const_new(b->ctx, LOOM_ONNX_FLOAT, 1, &n);
        if (k)
            memcpy(k->f, fs, nf * sizeof *fs);
    } else if (pis) {
        int64_t n = (int64_t)ni;
        k = ox_const_new(b->ctx, LOOM_ONNX_INT64, 1, &n);
        if (k)
            memcpy(k->i, is, ni * sizeof *is);
    } else {
        return ox_fail(b, LOOM_E_UNSUPPORTED, "no value loom reads (value, value_float(s), value_int(s))");
    }
    return ox_set_const(b, 0, k);
}

loom_status oxb_constant_of_shape(ox *b)
{
    const Onnx__TensorProto *t;
    LOOM_TRY(ox_attr_tensor(b, "value", &t));
    ox_const *v = NULL;
    if (t) {
        char what[256];
        snprintf(what, sizeof what, "%s: %s: attribute 'value'", b->what, b->node_desc);
        LOOM_TRY(ox_decode_tensor(b->ctx, t, b->base_dir, what, &v));
        if (v->n != 1) {
            long long n = (long long)v->n;
            ox_const_free(b->ctx, v);
            return ox_fail(b, LOOM_E_FORMAT, "attribute 'value' holds %lld values, one expected", n);
        }
    }
    int64_t shape[OX_MAX_RANK];
    int n;
    loom_status st = ox_known_ints(b, 0, shape, OX_MAX_RANK, &n, "the shape");
    if (st != LOOM_OK || n < 0) {
        ox_const_free(b->ctx, v);
        return st != LOOM_OK ? st : ox_fail(b, LOOM_E_FORMAT, "input 0 (the shape) is missing");
    }
    uint64_t total;
    for (int i = 0; i < n; i++)
        if (shape[i] < 0) {
            ox_const_free(b->ctx, v);
            return ox_fail(b, LOOM_E_SHAPE, "shape[%d] = %lld", i, (long long)shape[i]);
        }
    if (loom_shape_bytes(n, shape, 8, &total, NULL) || (int64_t)total > ((int64_t)1 << 28)) {
        ox_const_free(b->ctx, v);
        return ox_fail(b, LOOM_E_UNSUPPORTED, "a constant of that many elements");
    }
    ox_const *k = ox_const_new(b->ctx, v ? v->type : LOOM_ONNX_FLOAT, n, shape);
    if (k)
        for (int64_t i = 0; i < k->n; i++)
            copy_elem(k, i, v ? v : k, 0);
    if (k && !v)
        for (int64_t i = 0; i < k->n; i++)
            k->f[i] = 0;
    ox_const_free(b->ctx, v);
    return ox_set_const(b, 0, k);
}

loom_status oxb_range(ox *b)
{
    ox_val *vs, *vl, *vd;
    LOOM_TRY(ox_need(b, 0, &vs));
    LOOM_TRY(ox_need(b, 1, &vl));
    LOOM_TRY(ox_need(b, 2, &vd));
    double start, limit, delta;
    LOOM_TRY(ox_known_float(b, 0, 0, &start, NULL));
    LOOM_TRY(ox_known_float(b, 1, 0, &limit, NULL));
    LOOM_TRY(ox_known_float(b, 2, 0, &delta, NULL));
    if (delta == 0)
        return ox_fail(b, LOOM_E_FORMAT, "delta is 0");
    double cnt = ceil((limit - start) / delta);
    if (!(cnt < (double)((int64_t)1 << 26)))
        return ox_fail(b, LOOM_E_UNSUPPORTED, "a range of %g elements", cnt);
    int64_t n = cnt > 0 ? (int64_t)cnt : 0;
    ox_const *k = ox_const_new(b->ctx, vs->type, 1, &n);
    if (!k)
        return ox_fail(b, LOOM_E_OOM, "out of memory");
    for (int64_t i = 0; i < n; i++)
        ox_const_put(k, i, start + (double)i * delta);
    return ox_set_const(b, 0, k);
}

loom_status oxb_eye_like(ox *b)
{
    int64_t dtype, kk;
    int has_dt;
    LOOM_TRY(ox_attr_int(b, "dtype", 0, &dtype, &has_dt));
    LOOM_TRY(ox_attr_int(b, "k", 0, &kk, NULL));
    ox_val *x;
    LOOM_TRY(ox_need(b, 0, &x));
    int nd;
    int64_t in[OX_MAX_RANK];
    ox_shape(b, x, &nd, in);
    if (nd != 2)
        return ox_fail(b, LOOM_E_SHAPE, "the input has rank %d, 2 expected", nd);
    int type = has_dt ? (int)dtype : x->type;
    if (!loom_onnx_type_size(type))
        return ox_fail(b, LOOM_E_UNSUPPORTED, "attribute 'dtype' = %s", loom_onnx_type_name(type));
    uint64_t total;
    if (loom_shape_bytes(2, in, 8, &total, NULL) || (int64_t)total > OX_FOLD_MAX)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "an identity of %lld x %lld", (long long)in[0], (long long)in[1]);
    ox_const *k = ox_const_new(b->ctx, type, 2, in);
    if (k)
        for (int64_t r = 0; r < in[0]; r++) {
            int64_t c = r + kk;
            if (c >= 0 && c < in[1])
                ox_const_puti(k, r * in[1] + c, 1);
        }
    return ox_set_const(b, 0, k);
}

loom_status oxb_dropout(ox *b)
{
    ox_attr_ignore(b, "seed");
    ox_val *x;
    LOOM_TRY(ox_need(b, 0, &x));
    ox_val *tm = ox_in(b, 2);
    if (tm) {
        loom_status s;
        ox_const *k = ox_known(b, tm, &s);
        if (s != LOOM_OK)
            return s;
        if (!k)
            return ox_fail(b, LOOM_E_UNSUPPORTED, "training_mode computed at run time");
        if (k->n && ox_const_get(k, 0) != 0) {
            double ratio;
            LOOM_TRY(ox_known_float(b, 1, 0.5, &ratio, NULL));
            if (ratio != 0)
                return ox_fail(b, LOOM_E_UNSUPPORTED, "training_mode = true (random dropout at inference)");
        }
    }
    if (ox_is_known(x)) {
        loom_status s;
        ox_const *k = ox_known(b, x, &s);
        if (s != LOOM_OK)
            return s;
        LOOM_TRY(ox_set_const(b, 0, ox_const_copy(b->ctx, k)));
    } else {
        loom_tensor t;
        LOOM_TRY(ox_tensor(b, x, LOOM_DTYPE_COUNT, &t));
        LOOM_TRY(ox_set(b, 0, t, x->type));
    }
    if (ox_out(b, 1)) {
        int nd;
        int64_t in[OX_MAX_RANK];
        ox_shape(b, x, &nd, in);
        ox_const *m = ox_const_new(b->ctx, LOOM_ONNX_BOOL, nd, in);
        if (m)
            for (int64_t i = 0; i < m->n; i++)
                m->i[i] = 1;
        return ox_set_const(b, 1, m);
    }
    return LOOM_OK;
}
