/* .npy reading and writing: a magic string, a version, a header length, a
 * Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape':
 * (2, 3), } padded to 64 bytes, then the raw values. */
#include "npy.h"
#include "../../src/common/checked.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const struct {
    const char *descr;
    int type;
} descrs[] = {
    {"<f4", LOOM_ONNX_FLOAT},  {"<f8", LOOM_ONNX_DOUBLE}, {"<f2", LOOM_ONNX_FLOAT16}, {"<i8", LOOM_ONNX_INT64},
    {"<i4", LOOM_ONNX_INT32},  {"<i2", LOOM_ONNX_INT16},  {"|i1", LOOM_ONNX_INT8},    {"|u1", LOOM_ONNX_UINT8},
    {"<u2", LOOM_ONNX_UINT16}, {"<u4", LOOM_ONNX_UINT32}, {"<u8", LOOM_ONNX_UINT64},  {"|b1", LOOM_ONNX_BOOL},
    {"<i1", LOOM_ONNX_INT8},   {"<u1", LOOM_ONNX_UINT8},  {"<b1", LOOM_ONNX_BOOL},
};

static int fail(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return -1;
}

/* The value of 'key' in the header dict: a pointer just past "'key':". */
static const char *field(const char *h, const char *key)
{
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(h, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    if (*p != ':')
        return NULL;
    p++;
    while (*p == ' ')
        p++;
    return p;
}

int npy_parse(const unsigned char *d, size_t n, npy_array *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (n < 10 || memcmp(d, "\x93NUMPY", 6))
        return fail(err, errlen, "not an .npy file (no \\x93NUMPY magic)");
    unsigned major = d[6];
    size_t hlen, off;
    if (major == 1) {
        hlen = (size_t)d[8] | (size_t)d[9] << 8;
        off = 10;
    } else if (major == 2 || major == 3) {
        if (n < 12)
            return fail(err, errlen, "truncated .npy header");
        hlen = (size_t)d[8] | (size_t)d[9] << 8 | (size_t)d[10] << 16 | (size_t)d[11] << 24;
        off = 12;
    } else {
        return fail(err, errlen, ".npy format version %u is not one loom reads (1 to 3)", major);
    }
    if (hlen > n - off || hlen > 65536)
        return fail(err, errlen, "the .npy header claims %zu bytes, the file has %zu", hlen, n - off);
    char *h = malloc(hlen + 1);
    if (!h)
        return fail(err, errlen, "out of memory");
    memcpy(h, d + off, hlen);
    h[hlen] = 0;
    int rc = -1;
    const char *ds = field(h, "descr"), *fo = field(h, "fortran_order"), *sh = field(h, "shape");
    if (!ds || !fo || !sh) {
        fail(err, errlen, "the .npy header lacks descr, fortran_order or shape: %s", h);
        goto out;
    }
    if (strncmp(fo, "False", 5)) {
        fail(err, errlen, "Fortran-order arrays are not supported (save with np.ascontiguousarray)");
        goto out;
    }
    if (*ds != '\'' || !strchr(ds + 1, '\'')) {
        fail(err, errlen, "a structured .npy descr is not supported");
        goto out;
    }
    char dsc[16] = {0};
    size_t dl = (size_t)(strchr(ds + 1, '\'') - ds - 1);
    if (dl >= sizeof dsc) {
        fail(err, errlen, "unknown .npy element type");
        goto out;
    }
    memcpy(dsc, ds + 1, dl);
    out->type = 0;
    for (size_t i = 0; i < sizeof descrs / sizeof descrs[0]; i++)
        if (!strcmp(descrs[i].descr, dsc))
            out->type = descrs[i].type;
    if (!out->type) {
        fail(err, errlen, ".npy element type '%s' is not one loom reads (little-endian numbers and bools)", dsc);
        goto out;
    }
    if (*sh != '(') {
        fail(err, errlen, "bad .npy shape");
        goto out;
    }
    const char *p = sh + 1;
    while (*p && *p != ')') {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == ')')
            break;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < 0 || out->ndim >= LOOM_ONNX_MAX_RANK) {
            fail(err, errlen, "bad .npy shape (at most %d dims of sizes >= 0)", LOOM_ONNX_MAX_RANK);
            goto out;
        }
        out->shape[out->ndim++] = v;
        p = end;
    }
    size_t es = loom_onnx_type_size(out->type);
    uint64_t count = 0, bytes = 0;
    if (loom_shape_bytes(out->ndim, out->shape, es, &count, &bytes) || bytes != n - off - hlen) {
        fail(err, errlen, "the .npy data is %zu bytes, its shape and type need %llu", n - off - hlen,
             (unsigned long long)bytes);
        goto out;
    }
    out->count = count;
    out->data = malloc(bytes ? (size_t)bytes : 1);
    if (!out->data) {
        fail(err, errlen, "out of memory");
        goto out;
    }
    memcpy(out->data, d + off + hlen, (size_t)bytes);
    rc = 0;
out:
    free(h);
    return rc;
}

int npy_read(const char *path, npy_array *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(err, errlen, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return fail(err, errlen, "%s: not a regular file", path);
    }
    size_t n = (size_t)sb.st_size;
    unsigned char *d = malloc(n ? n : 1);
    if (!d || (n && fread(d, 1, n, f) != n)) {
        free(d);
        fclose(f);
        return fail(err, errlen, "%s: cannot read %zu bytes", path, n);
    }
    fclose(f);
    char inner[256];
    int rc = npy_parse(d, n, out, inner, sizeof inner);
    free(d);
    if (rc)
        fail(err, errlen, "%s: %s", path, inner);
    return rc;
}

unsigned char *npy_encode(int type, int ndim, const int64_t *shape, const void *data, size_t *n)
{
    const char *descr = NULL;
    for (size_t i = 0; i < sizeof descrs / sizeof descrs[0] && !descr; i++)
        if (descrs[i].type == type)
            descr = descrs[i].descr;
    if (!descr)
        return NULL;
    char h[512];
    int l = snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < ndim; i++)
        l += snprintf(h + l, sizeof h - (size_t)l, "%lld,%s", (long long)shape[i], i + 1 < ndim ? " " : "");
    l += snprintf(h + l, sizeof h - (size_t)l, "), }");
    /* pad with spaces and a newline to a multiple of 64 (with the 10-byte preamble) */
    size_t total = 10 + (size_t)l + 1;
    size_t pad = (64 - total % 64) % 64;
    size_t hlen = (size_t)l + pad + 1;
    uint64_t count = 1;
    for (int i = 0; i < ndim; i++)
        count *= (uint64_t)shape[i];
    size_t bytes = (size_t)count * loom_onnx_type_size(type);
    unsigned char *d = malloc(10 + hlen + bytes);
    if (!d)
        return NULL;
    memcpy(d, "\x93NUMPY\x01\x00", 8);
    d[8] = (unsigned char)(hlen & 0xff);
    d[9] = (unsigned char)(hlen >> 8);
    memcpy(d + 10, h, (size_t)l);
    memset(d + 10 + l, ' ', pad);
    d[10 + hlen - 1] = '\n';
    if (bytes)
        memcpy(d + 10 + hlen, data, bytes);
    *n = 10 + hlen + bytes;
    return d;
}

void npy_free(npy_array *a)
{
    if (!a)
        return;
    free(a->data);
    memset(a, 0, sizeof *a);
}
