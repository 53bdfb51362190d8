/* ONNX tensors: element types, TensorProto decoding (raw_data, the typed
 * fields, external data files), the values known at load (ox_const) and
 * the conversions between ONNX element types and loom's dtypes. */
#include "onnx_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const struct {
    int type;
    const char *name;
    uint8_t size;
    loom_dtype dt;
} types[] = {
    {LOOM_ONNX_FLOAT, "float", 4, LOOM_F32},      {LOOM_ONNX_UINT8, "uint8", 1, LOOM_I32},
    {LOOM_ONNX_INT8, "int8", 1, LOOM_I32},        {LOOM_ONNX_UINT16, "uint16", 2, LOOM_I32},
    {LOOM_ONNX_INT16, "int16", 2, LOOM_I32},      {LOOM_ONNX_INT32, "int32", 4, LOOM_I32},
    {LOOM_ONNX_INT64, "int64", 8, LOOM_I32},      {LOOM_ONNX_STRING, "string", 0, LOOM_DTYPE_COUNT},
    {LOOM_ONNX_BOOL, "bool", 1, LOOM_F32},        {LOOM_ONNX_FLOAT16, "float16", 2, LOOM_F16},
    {LOOM_ONNX_DOUBLE, "double", 8, LOOM_F32},    {LOOM_ONNX_UINT32, "uint32", 4, LOOM_I32},
    {LOOM_ONNX_UINT64, "uint64", 8, LOOM_I32},    {14, "complex64", 0, LOOM_DTYPE_COUNT},
    {15, "complex128", 0, LOOM_DTYPE_COUNT},      {LOOM_ONNX_BFLOAT16, "bfloat16", 2, LOOM_BF16},
    {17, "float8e4m3fn", 0, LOOM_DTYPE_COUNT},    {18, "float8e4m3fnuz", 0, LOOM_DTYPE_COUNT},
    {19, "float8e5m2", 0, LOOM_DTYPE_COUNT},      {20, "float8e5m2fnuz", 0, LOOM_DTYPE_COUNT},
    {21, "uint4", 0, LOOM_DTYPE_COUNT},           {22, "int4", 0, LOOM_DTYPE_COUNT},
    {23, "float4e2m1", 0, LOOM_DTYPE_COUNT},      {24, "float8e8m0", 0, LOOM_DTYPE_COUNT},
    {25, "uint2", 0, LOOM_DTYPE_COUNT},           {26, "int2", 0, LOOM_DTYPE_COUNT},
};

static int type_index(int type)
{
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (types[i].type == type)
            return (int)i;
    return -1;
}

const char *loom_onnx_type_name(int type)
{
    int i = type_index(type);
    return i < 0 ? "unknown" : types[i].name;
}

loom_dtype loom_onnx_dtype(int type)
{
    int i = type_index(type);
    return i < 0 ? LOOM_DTYPE_COUNT : types[i].dt;
}

size_t loom_onnx_type_size(int type)
{
    int i = type_index(type);
    return i < 0 || types[i].dt == LOOM_DTYPE_COUNT ? 0 : types[i].size;
}

int ox_type_is_float(int type)
{
    return type == LOOM_ONNX_FLOAT || type == LOOM_ONNX_FLOAT16 || type == LOOM_ONNX_BFLOAT16 ||
           type == LOOM_ONNX_DOUBLE;
}

int ox_type_is_int(int type)
{
    return loom_onnx_dtype(type) == LOOM_I32;
}

/* ---- one element of a host array of an ONNX type ---- */

static double elem_get(int type, const void *p, uint64_t i)
{
    switch (type) {
    case LOOM_ONNX_FLOAT: return ((const float *)p)[i];
    case LOOM_ONNX_DOUBLE: return ((const double *)p)[i];
    case LOOM_ONNX_FLOAT16: {
        float f;
        loom_convert(LOOM_F32, &f, LOOM_F16, (const uint16_t *)p + i, 1);
        return f;
    }
    case LOOM_ONNX_BFLOAT16: {
        float f;
        loom_convert(LOOM_F32, &f, LOOM_BF16, (const uint16_t *)p + i, 1);
        return f;
    }
    case LOOM_ONNX_UINT8: return ((const uint8_t *)p)[i];
    case LOOM_ONNX_INT8: return ((const int8_t *)p)[i];
    case LOOM_ONNX_UINT16: return ((const uint16_t *)p)[i];
    case LOOM_ONNX_INT16: return ((const int16_t *)p)[i];
    case LOOM_ONNX_INT32: return ((const int32_t *)p)[i];
    case LOOM_ONNX_INT64: return (double)((const int64_t *)p)[i];
    case LOOM_ONNX_UINT32: return ((const uint32_t *)p)[i];
    case LOOM_ONNX_UINT64: return (double)((const uint64_t *)p)[i];
    case LOOM_ONNX_BOOL: return ((const uint8_t *)p)[i] != 0;
    default: return 0;
    }
}

static int64_t elem_geti(int type, const void *p, uint64_t i)
{
    switch (type) {
    case LOOM_ONNX_INT64: return ((const int64_t *)p)[i];
    case LOOM_ONNX_UINT64: return (int64_t)((const uint64_t *)p)[i];
    case LOOM_ONNX_UINT32: return ((const uint32_t *)p)[i];
    case LOOM_ONNX_INT32: return ((const int32_t *)p)[i];
    case LOOM_ONNX_UINT8: return ((const uint8_t *)p)[i];
    case LOOM_ONNX_INT8: return ((const int8_t *)p)[i];
    case LOOM_ONNX_UINT16: return ((const uint16_t *)p)[i];
    case LOOM_ONNX_INT16: return ((const int16_t *)p)[i];
    case LOOM_ONNX_BOOL: return ((const uint8_t *)p)[i] != 0;
    default: {
        double d = elem_get(type, p, i);
        return isfinite(d) && fabs(d) < 9.2e18 ? (int64_t)d : 0;
    }
    }
}

/* Stores a value as an element of an ONNX type (ints wrap as C does). */
static void elem_put(int type, void *p, uint64_t i, double v, int64_t iv, int is_int)
{
    switch (type) {
    case LOOM_ONNX_FLOAT: ((float *)p)[i] = is_int ? (float)iv : (float)v; break;
    case LOOM_ONNX_DOUBLE: ((double *)p)[i] = is_int ? (double)iv : v; break;
    case LOOM_ONNX_FLOAT16:
    case LOOM_ONNX_BFLOAT16: {
        float f = is_int ? (float)iv : (float)v;
        loom_convert(type == LOOM_ONNX_FLOAT16 ? LOOM_F16 : LOOM_BF16, (uint16_t *)p + i, LOOM_F32, &f, 1);
        break;
    }
    case LOOM_ONNX_BOOL: ((uint8_t *)p)[i] = is_int ? iv != 0 : v != 0; break;
    default: {
        int64_t x = iv;
        if (!is_int)
            x = isfinite(v) && fabs(v) < 9.2e18 ? (int64_t)v : 0;
        switch (type) {
        case LOOM_ONNX_INT64: ((int64_t *)p)[i] = x; break;
        case LOOM_ONNX_UINT64: ((uint64_t *)p)[i] = (uint64_t)x; break;
        case LOOM_ONNX_INT32: ((int32_t *)p)[i] = (int32_t)x; break;
        case LOOM_ONNX_UINT32: ((uint32_t *)p)[i] = (uint32_t)x; break;
        case LOOM_ONNX_INT16: ((int16_t *)p)[i] = (int16_t)x; break;
        case LOOM_ONNX_UINT16: ((uint16_t *)p)[i] = (uint16_t)x; break;
        case LOOM_ONNX_INT8: ((int8_t *)p)[i] = (int8_t)x; break;
        case LOOM_ONNX_UINT8: ((uint8_t *)p)[i] = (uint8_t)x; break;
        default: break;
        }
    }
    }
}

/* ---- conversions to and from loom's dtypes ---- */

loom_status loom_onnx_to_dtype(loom_ctx *ctx, int type, const void *src, size_t count, loom_dtype dt, void *dst)
{
    if (!ctx)
        return LOOM_E_INVALID;
    if (count && (!src || !dst))
        return loom_fail(ctx, LOOM_E_INVALID, "loom_onnx_to_dtype: NULL data");
    if (!loom_onnx_type_size(type))
        return loom_fail(ctx, LOOM_E_UNSUPPORTED, "loom_onnx_to_dtype: ONNX type %s (%d) is not one loom holds",
                         loom_onnx_type_name(type), type);
    if (dt == LOOM_I32) {
        int32_t *o = dst;
        for (size_t i = 0; i < count; i++) {
            if (ox_type_is_float(type)) {
                double d = elem_get(type, src, i);
                if (!(d >= INT32_MIN && d <= INT32_MAX) || d != floor(d))
                    return loom_fail(ctx, LOOM_E_RANGE, "loom_onnx_to_dtype: %s value %g at index %zu is not an i32",
                                     loom_onnx_type_name(type), d, i);
                o[i] = (int32_t)d;
            } else {
                int64_t v = elem_geti(type, src, i);
                if (v < INT32_MIN || v > INT32_MAX || (type == LOOM_ONNX_UINT64 && v < 0))
                    return loom_fail(ctx, LOOM_E_RANGE,
                                     "loom_onnx_to_dtype: %s value %lld at index %zu does not fit loom's i32",
                                     loom_onnx_type_name(type), (long long)v, i);
                o[i] = (int32_t)v;
            }
        }
        return LOOM_OK;
    }
    if (!loom_dtype_is_float(dt))
        return loom_fail(ctx, LOOM_E_DTYPE, "loom_onnx_to_dtype: to %s is not supported", loom_dtype_name(dt));
    if (dt == LOOM_F32) {
        float *o = dst;
        for (size_t i = 0; i < count; i++)
            o[i] = (float)elem_get(type, src, i);
        return LOOM_OK;
    }
    if ((dt == LOOM_F16 && type == LOOM_ONNX_FLOAT16) || (dt == LOOM_BF16 && type == LOOM_ONNX_BFLOAT16)) {
        memcpy(dst, src, count * 2);
        return LOOM_OK;
    }
    uint16_t *o = dst;
    for (size_t i = 0; i < count; i++) {
        float f = (float)elem_get(type, src, i);
        loom_convert(dt, o + i, LOOM_F32, &f, 1);
    }
    return LOOM_OK;
}

loom_status loom_onnx_from_dtype(loom_ctx *ctx, loom_dtype dt, const void *src, size_t count, int type, void *dst)
{
    if (!ctx)
        return LOOM_E_INVALID;
    if (count && (!src || !dst))
        return loom_fail(ctx, LOOM_E_INVALID, "loom_onnx_from_dtype: NULL data");
    if (!loom_onnx_type_size(type))
        return loom_fail(ctx, LOOM_E_UNSUPPORTED, "loom_onnx_from_dtype: ONNX type %s (%d) is not one loom holds",
                         loom_onnx_type_name(type), type);
    if (dt != LOOM_I32 && !loom_dtype_is_float(dt))
        return loom_fail(ctx, LOOM_E_DTYPE, "loom_onnx_from_dtype: from %s is not supported", loom_dtype_name(dt));
    if ((dt == LOOM_F16 && type == LOOM_ONNX_FLOAT16) || (dt == LOOM_BF16 && type == LOOM_ONNX_BFLOAT16)) {
        memcpy(dst, src, count * 2);
        return LOOM_OK;
    }
    for (size_t i = 0; i < count; i++) {
        if (dt == LOOM_I32) {
            elem_put(type, dst, i, 0, ((const int32_t *)src)[i], 1);
            continue;
        }
        float f;
        if (dt == LOOM_F32)
            f = ((const float *)src)[i];
        else
            loom_convert(LOOM_F32, &f, dt, (const uint16_t *)src + i, 1);
        if (ox_type_is_int(type)) {
            /* computed in floats: integral up to rounding */
            double r = nearbyint((double)f);
            elem_put(type, dst, i, 0, isfinite(r) && fabs(r) < 9.2e18 ? (int64_t)r : 0, 1);
        } else {
            elem_put(type, dst, i, f, 0, 0);
        }
    }
    return LOOM_OK;
}

/* ---- values known at load ---- */

ox_const *ox_const_new(loom_ctx *ctx, int type, int ndim, const int64_t *shape)
{
    uint64_t n;
    if (ndim < 0 || ndim > OX_MAX_RANK || loom_shape_bytes(ndim, shape, 8, &n, NULL))
        return NULL;
    ox_const *k = loom_calloc(ctx, 1, sizeof *k);
    if (!k)
        return NULL;
    k->type = type;
    k->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        k->shape[i] = shape[i];
    k->n = (int64_t)n;
    size_t cnt = n ? (size_t)n : 1;
    if (ox_type_is_float(type))
        k->f = loom_calloc(ctx, cnt, sizeof *k->f);
    else
        k->i = loom_calloc(ctx, cnt, sizeof *k->i);
    if (!k->f && !k->i) {
        loom_free(ctx, k, sizeof *k);
        return NULL;
    }
    return k;
}

void ox_const_free(loom_ctx *ctx, ox_const *k)
{
    if (!k)
        return;
    size_t cnt = k->n ? (size_t)k->n : 1;
    loom_free(ctx, k->f, k->f ? cnt * sizeof *k->f : 0);
    loom_free(ctx, k->i, k->i ? cnt * sizeof *k->i : 0);
    loom_free(ctx, k, sizeof *k);
}

ox_const *ox_const_copy(loom_ctx *ctx, const ox_const *k)
{
    ox_const *c = ox_const_new(ctx, k->type, k->ndim, k->shape);
    if (!c)
        return NULL;
    if (k->f)
        memcpy(c->f, k->f, (size_t)k->n * sizeof *k->f);
    else
        memcpy(c->i, k->i, (size_t)k->n * sizeof *k->i);
    return c;
}

double ox_const_get(const ox_const *k, int64_t i)
{
    return k->f ? (double)k->f[i] : (double)k->i[i];
}

int64_t ox_const_geti(const ox_const *k, int64_t i)
{
    if (k->i)
        return k->i[i];
    double d = k->f[i];
    return isfinite(d) && fabs(d) < 9.2e18 ? (int64_t)d : 0;
}

/* Integers keep the width of their ONNX type, as the reference does. */
static int64_t wrap_int(int type, int64_t v)
{
    switch (type) {
    case LOOM_ONNX_INT32: return (int32_t)v;
    case LOOM_ONNX_UINT32: return (uint32_t)v;
    case LOOM_ONNX_INT16: return (int16_t)v;
    case LOOM_ONNX_UINT16: return (uint16_t)v;
    case LOOM_ONNX_INT8: return (int8_t)v;
    case LOOM_ONNX_UINT8: return (uint8_t)v;
    case LOOM_ONNX_BOOL: return v != 0;
    default: return v;
    }
}

void ox_const_put(ox_const *k, int64_t i, double v)
{
    if (k->f) {
        k->f[i] = (float)v;
        return;
    }
    if (k->type == LOOM_ONNX_BOOL) {
        k->i[i] = v != 0;
        return;
    }
    k->i[i] = wrap_int(k->type, isfinite(v) && fabs(v) < 9.2e18 ? (int64_t)v : 0);
}

void ox_const_puti(ox_const *k, int64_t i, int64_t v)
{
    if (k->f)
        k->f[i] = (float)v;
    else
        k->i[i] = wrap_int(k->type, v);
}

loom_status ox_const_to_dtype(loom_ctx *ctx, const ox_const *k, loom_dtype dt, const char *what, void **data,
                              size_t *bytes)
{
    size_t es = loom_dtype_size(dt);
    size_t nb;
    if (!es || loom_mul_size((size_t)k->n, es, &nb))
        return loom_fail(ctx, LOOM_E_SHAPE, "%s: %lld elements of %s do not fit in memory", what, (long long)k->n,
                         loom_dtype_name(dt));
    void *d = loom_malloc(ctx, nb ? nb : 1);
    if (!d)
        return loom_fail(ctx, LOOM_E_OOM, "%s: out of memory for %zu bytes", what, nb);
    if (dt == LOOM_I32) {
        int32_t *o = d;
        for (int64_t i = 0; i < k->n; i++) {
            int64_t v = k->i ? k->i[i] : 0;
            if (k->f) {
                double f = k->f[i];
                if (!(f >= INT32_MIN && f <= INT32_MAX)) {
                    loom_free(ctx, d, nb ? nb : 1);
                    return loom_fail(ctx, LOOM_E_UNSUPPORTED, "%s: value %g at index %lld is not an i32", what, f,
                                     (long long)i);
                }
                v = (int64_t)nearbyint(f);
            }
            if (v < INT32_MIN || v > INT32_MAX) {
                loom_free(ctx, d, nb ? nb : 1);
                return loom_fail(ctx, LOOM_E_UNSUPPORTED,
                                 "%s: %s value %lld at index %lld does not fit loom's i32", what,
                                 loom_onnx_type_name(k->type), (long long)v, (long long)i);
            }
            o[i] = (int32_t)v;
        }
    } else if (dt == LOOM_F32) {
        float *o = d;
        for (int64_t i = 0; i < k->n; i++)
            o[i] = k->f ? k->f[i] : (float)k->i[i];
    } else {
        uint16_t *o = d;
        for (int64_t i = 0; i < k->n; i++) {
            float f = k->f ? k->f[i] : (float)k->i[i];
            loom_convert(dt, o + i, LOOM_F32, &f, 1);
        }
    }
    *data = d;
    *bytes = nb ? nb : 1;
    return LOOM_OK;
}

/* ---- TensorProto ---- */

static const char *ext_value(const Onnx__TensorProto *t, const char *key)
{
    for (size_t i = 0; i < t->n_external_data; i++) {
        const Onnx__StringStringEntryProto *e = t->external_data[i];
        if (e && e->key && !strcmp(e->key, key))
            return e->value ? e->value : "";
    }
    return NULL;
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return 0;
    *out = v;
    return 1;
}

/* The bytes of an external tensor: location relative to base_dir, never
 * out of it. */
static loom_status read_external(loom_ctx *ctx, const Onnx__TensorProto *t, const char *base_dir, const char *what,
                                 size_t want, void *dst)
{
    const char *loc = ext_value(t, "location");
    if (!loc || !*loc)
        return loom_fail(ctx, LOOM_E_FORMAT, "%s: external data without a location", what);
    if (!base_dir)
        return loom_fail(ctx, LOOM_E_UNSUPPORTED,
                         "%s: external data \"%s\" with no folder to find it in (load from a file, or set "
                         "loom_onnx_opts.base_dir)", what, loc);
    if (loc[0] == '/' || !strncmp(loc, "../", 3) || strstr(loc, "/../") || !strcmp(loc, ".."))
        return loom_fail(ctx, LOOM_E_FORMAT, "%s: external data location \"%s\" leaves the model's folder", what,
                         loc);
    uint64_t off = 0, len = want;
    const char *so = ext_value(t, "offset"), *sl = ext_value(t, "length");
    if ((so && !parse_u64(so, &off)) || (sl && !parse_u64(sl, &len)))
        return loom_fail(ctx, LOOM_E_FORMAT, "%s: external data offset \"%s\" / length \"%s\" are not byte counts",
                         what, so ? so : "", sl ? sl : "");
    if (len != want)
        return loom_fail(ctx, LOOM_E_FORMAT, "%s: external data length %llu, its shape needs %zu bytes", what,
                         (unsigned long long)len, want);
    size_t pl = strlen(base_dir) + strlen(loc) + 2;
    char *path = loom_malloc(ctx, pl);
    if (!path)
        return loom_fail(ctx, LOOM_E_OOM, "%s: out of memory", what);
    snprintf(path, pl, "%s/%s", base_dir, loc);
    loom_status s = LOOM_OK;
    FILE *f = fopen(path, "rb");
    struct stat sb;
    if (!f) {
        s = loom_fail(ctx, LOOM_E_IO, "%s: cannot open external data %s: %s", what, path, strerror(errno));
    } else if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        s = loom_fail(ctx, LOOM_E_IO, "%s: external data %s is not a regular file", what, path);
    } else if (off > (uint64_t)sb.st_size || want > (uint64_t)sb.st_size - off) {
        s = loom_fail(ctx, LOOM_E_FORMAT, "%s: external data %s is %lld bytes, the tensor needs %zu at offset %llu",
                      what, path, (long long)sb.st_size, want, (unsigned long long)off);
    } else if (fseeko(f, (off_t)off, SEEK_SET) != 0 || (want && fread(dst, 1, want, f) != want)) {
        s = loom_fail(ctx, LOOM_E_IO, "%s: reading external data %s failed", what, path);
    }
    if (f)
        fclose(f);
    loom_free(ctx, path, pl);
    return s;
}

/* Decodes t into a host array of its own element type. */
static loom_status decode_raw(loom_ctx *ctx, const Onnx__TensorProto *t, const char *base_dir, const char *what,
                              int *type_out, int *ndim_out, int64_t *shape, uint64_t *count_out, void **data_out,
                              size_t *bytes_out)
{
    char sb[160];
    if (t->n_dims > OX_MAX_RANK)
        return loom_fail(ctx, LOOM_E_UNSUPPORTED, "%s: %zu dims (loom reads at most %d)", what, t->n_dims,
                         OX_MAX_RANK);
    for (size_t i = 0; i < t->n_dims; i++) {
        if (t->dims[i] < 0)
            return loom_fail(ctx, LOOM_E_FORMAT, "%s: dim %zu is %lld", what, i, (long long)t->dims[i]);
        shape[i] = t->dims[i];
    }
    int ndim = (int)t->n_dims;
    int type = t->has_data_type ? t->data_type : 0;
    if (type == LOOM_ONNX_UNDEFINED)
        return loom_fail(ctx, LOOM_E_FORMAT, "%s: no data_type", what);
    size_t es = loom_onnx_type_size(type);
    if (!es)
        return loom_fail(ctx, LOOM_E_UNSUPPORTED, "%s: element type %s (%d) is not one loom holds", what,
                         loom_onnx_type_name(type), type);
    if (t->segment)
        return loom_fail(ctx, LOOM_E_UNSUPPORTED, "%s: segmented tensors are not supported", what);
    uint64_t count, bytes;
    if (loom_shape_bytes(ndim, shape, es, &count, &bytes) || bytes > ((uint64_t)1 << 40))
        return loom_fail(ctx, LOOM_E_FORMAT, "%s: shape %s of %s has more bytes than a tensor can hold", what,
                         loom_shape_str(sb, sizeof sb, ndim > LOOM_MAX_DIMS ? LOOM_MAX_DIMS : ndim, shape),
                         loom_onnx_type_name(type));
    int external = t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    /* The data must be there before anything that large is allocated. */
    if (external) {
        /* read below */
    } else if (t->has_raw_data) {
        if (t->raw_data.len != bytes)
            return loom_fail(ctx, LOOM_E_FORMAT, "%s: raw_data holds %zu bytes, its shape %s of %s needs %llu", what,
                             t->raw_data.len, loom_shape_str(sb, sizeof sb, ndim > 4 ? 4 : ndim, shape),
                             loom_onnx_type_name(type), (unsigned long long)bytes);
    } else {
        size_t have;
        const char *field;
        switch (type) {
        case LOOM_ONNX_FLOAT: field = "float_data", have = t->n_float_data; break;
        case LOOM_ONNX_DOUBLE: field = "double_data", have = t->n_double_data; break;
        case LOOM_ONNX_INT64: field = "int64_data", have = t->n_int64_data; break;
        case LOOM_ONNX_UINT32:
        case LOOM_ONNX_UINT64: field = "uint64_data", have = t->n_uint64_data; break;
        default: field = "int32_data", have = t->n_int32_data; break;
        }
        if (have != count)
            return loom_fail(ctx, LOOM_E_FORMAT, "%s: %s holds %zu values, its shape %s needs %llu", what, field,
                             have, loom_shape_str(sb, sizeof sb, ndim > 4 ? 4 : ndim, shape),
                             (unsigned long long)count);
    }
    size_t nb = (size_t)bytes;
    void *d = loom_malloc(ctx, nb ? nb : 1);
    if (!d)
        return loom_fail(ctx, LOOM_E_OOM, "%s: out of memory for %zu bytes", what, nb);
    loom_status s = LOOM_OK;
    if (external) {
        s = read_external(ctx, t, base_dir, what, nb, d);
    } else if (t->has_raw_data) {
        if (nb)
            memcpy(d, t->raw_data.data, nb);
    } else {
        for (uint64_t i = 0; i < count; i++) {
            switch (type) {
            case LOOM_ONNX_FLOAT: ((float *)d)[i] = t->float_data[i]; break;
            case LOOM_ONNX_DOUBLE: ((double *)d)[i] = t->double_data[i]; break;
            case LOOM_ONNX_INT64: ((int64_t *)d)[i] = t->int64_data[i]; break;
            case LOOM_ONNX_UINT64: ((uint64_t *)d)[i] = t->uint64_data[i]; break;
            case LOOM_ONNX_UINT32: ((uint32_t *)d)[i] = (uint32_t)t->uint64_data[i]; break;
            case LOOM_ONNX_FLOAT16:
            case LOOM_ONNX_BFLOAT16:
            case LOOM_ONNX_UINT16:
            case LOOM_ONNX_INT16: ((uint16_t *)d)[i] = (uint16_t)t->int32_data[i]; break;
            case LOOM_ONNX_INT32: ((int32_t *)d)[i] = t->int32_data[i]; break;
            case LOOM_ONNX_BOOL: ((uint8_t *)d)[i] = t->int32_data[i] != 0; break;
            default: ((uint8_t *)d)[i] = (uint8_t)t->int32_data[i]; break;
            }
        }
    }
    if (s != LOOM_OK) {
        loom_free(ctx, d, nb ? nb : 1);
        return s;
    }
    *type_out = type;
    *ndim_out = ndim;
    *count_out = count;
    *data_out = d;
    *bytes_out = nb; /* allocated: nb ? nb : 1 */
    return LOOM_OK;
}

loom_status ox_decode_tensor(loom_ctx *ctx, const Onnx__TensorProto *t, const char *base_dir, const char *what,
                             ox_const **out)
{
    int type, ndim;
    int64_t shape[OX_MAX_RANK];
    uint64_t count;
    void *d;
    size_t nb;
    LOOM_TRY(decode_raw(ctx, t, base_dir, what, &type, &ndim, shape, &count, &d, &nb));
    ox_const *k = ox_const_new(ctx, type, ndim, shape);
    if (!k) {
        loom_free(ctx, d, nb ? nb : 1);
        return loom_fail(ctx, LOOM_E_OOM, "%s: out of memory", what);
    }
    if (k->f && type == LOOM_ONNX_FLOAT)
        memcpy(k->f, d, (size_t)count * 4);
    else if (k->f && (type == LOOM_ONNX_FLOAT16 || type == LOOM_ONNX_BFLOAT16))
        loom_convert(LOOM_F32, k->f, type == LOOM_ONNX_FLOAT16 ? LOOM_F16 : LOOM_BF16, d, (size_t)count);
    else
        for (uint64_t i = 0; i < count; i++) {
            if (k->f)
                k->f[i] = (float)elem_get(type, d, i);
            else
                k->i[i] = elem_geti(type, d, i);
        }
    loom_free(ctx, d, nb ? nb : 1);
    *out = k;
    return LOOM_OK;
}

/* ---- loom_onnx_tensor_read ---- */

loom_status loom_onnx_tensor_read(loom_ctx *ctx, const void *data, size_t bytes, const char *base_dir,
                                  loom_onnx_tensor *out)
{
    if (!ctx)
        return LOOM_E_INVALID;
    if (!out || (!data && bytes))
        return loom_fail(ctx, LOOM_E_INVALID, "loom_onnx_tensor_read: NULL %s", out ? "data" : "out");
    memset(out, 0, sizeof *out);
    LOOM_TRY(ox_wire_check(ctx, "TensorProto", data, bytes, &onnx__tensor_proto__descriptor));
    ox_pb_alloc al;
    ox_pb_allocator(ctx, &al);
    Onnx__TensorProto *t = onnx__tensor_proto__unpack(&al.al, bytes, data);
    if (!t && al.failed)
        return loom_fail(ctx, LOOM_E_OOM, "TensorProto: out of memory parsing %zu bytes", bytes);
    if (!t)
        return loom_fail(ctx, LOOM_E_FORMAT, "TensorProto: %zu bytes that protobuf-c cannot parse", bytes);
    char what[160];
    snprintf(what, sizeof what, "tensor \"%.100s\"", t->name ? t->name : "");
    loom_status s = decode_raw(ctx, t, base_dir, what, &out->type, &out->ndim, out->shape, &out->count, &out->data,
                               &out->bytes);
    if (s == LOOM_OK && !(out->name = loom_strdup(ctx, t->name ? t->name : ""))) {
        loom_free(ctx, out->data, out->bytes ? out->bytes : 1);
        s = loom_fail(ctx, LOOM_E_OOM, "%s: out of memory", what);
    }
    onnx__tensor_proto__free_unpacked(t, &al.al);
    if (s != LOOM_OK) {
        memset(out, 0, sizeof *out);
        return s;
    }
    out->ctx = ctx;
    return LOOM_OK;
}

void loom_onnx_tensor_free(loom_onnx_tensor *t)
{
    if (!t || !t->ctx)
        return;
    loom_free(t->ctx, t->data, t->bytes ? t->bytes : 1);
    loom_strfree(t->ctx, t->name);
    memset(t, 0, sizeof *t);
}

loom_status ox_const_from_host(loom_ctx *ctx, const loom_onnx_tensor *t, const char *what, ox_const **out)
{
    if (!loom_onnx_type_size(t->type))
        return loom_fail(ctx, LOOM_E_UNSUPPORTED, "%s: element type %s is not one loom holds", what,
                         loom_onnx_type_name(t->type));
    if (t->ndim < 0 || t->ndim > OX_MAX_RANK || (t->count && !t->data))
        return loom_fail(ctx, LOOM_E_INVALID, "%s: %d dims, %s data", what, t->ndim, t->data ? "some" : "no");
    uint64_t n;
    if (loom_shape_bytes(t->ndim, t->shape, 8, &n, NULL) || n != t->count)
        return loom_fail(ctx, LOOM_E_INVALID, "%s: its shape does not hold %llu values", what,
                         (unsigned long long)t->count);
    ox_const *k = ox_const_new(ctx, t->type, t->ndim, t->shape);
    if (!k)
        return loom_fail(ctx, LOOM_E_OOM, "%s: out of memory", what);
    for (uint64_t i = 0; i < n; i++) {
        if (k->f)
            k->f[i] = (float)elem_get(t->type, t->data, i);
        else
            k->i[i] = elem_geti(t->type, t->data, i);
    }
    *out = k;
    return LOOM_OK;
}
