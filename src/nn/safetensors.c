/* safetensors model files: reading, validating, loading into a state and
 * saving a state.
 *
 * Layout: u64 little-endian header length N, N bytes of JSON
 * {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
 * {string: string}}, then the data section; offsets count from the start
 * of the data section. Files written here pad the header with spaces to a
 * multiple of 8 and lay tensors end to end, as the Python library does. */
#include "nn_internal.h"
#include "name_map.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The Python library's limit; anything larger is corrupt or hostile. */
#define ST_MAX_HEADER ((uint64_t)100 << 20)
#define ST_META "__metadata__"

typedef struct st_entry {
    char *name;
    loom_dtype dtype;
    int ndim;
    int64_t shape[LOOM_MAX_DIMS];
    uint64_t begin, end;        /* in the data section */
} st_entry;

typedef struct st_meta {
    char *key, *value;
} st_meta;

struct loom_tensor_file {
    loom_ctx *ctx;
    char *path;
    st_entry *t;
    int n, cap;
    st_meta *meta;
    int nmeta, meta_cap;
    unsigned char *data;
    size_t data_bytes;
    nn_name_map names;          /* while the header is parsed: duplicates */
};

static const struct {
    const char *name;
    loom_dtype dt;
} dtypes[] = {
    {"F32", LOOM_F32}, {"I32", LOOM_I32}, {"F16", LOOM_F16}, {"BF16", LOOM_BF16}, {"I8", LOOM_I8},
};

/* Valid safetensors dtypes that no loom tensor can hold. */
static const char *const foreign_dtypes[] = {
    "F64", "I64", "U64", "U32", "I16", "U16", "U8", "BOOL", "F8_E4M3", "F8_E5M2",
};

static const char *dtype_str(loom_dtype dt)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (dtypes[i].dt == dt)
            return dtypes[i].name;
    return NULL;
}

/* Well-formed UTF-8 (no overlongs, surrogates or values past U+10FFFF):
 * the Python library rejects a header that is not. */
static int utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned min, cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, min = 0x80, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, min = 0x800, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, min = 0x10000, cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += len;
    }
    return 1;
}

/* ---- reading ------------------------------------------------------------- */

void loom_safetensors_close(loom_tensor_file *f)
{
    if (!f)
        return;
    loom_ctx *ctx = f->ctx;
    for (int i = 0; i < f->n; i++)
        loom_strfree(ctx, f->t[i].name);
    for (int i = 0; i < f->nmeta; i++) {
        loom_strfree(ctx, f->meta[i].key);
        loom_strfree(ctx, f->meta[i].value);
    }
    loom_free(ctx, f->t, (size_t)f->cap * sizeof *f->t);
    loom_free(ctx, f->meta, (size_t)f->meta_cap * sizeof *f->meta);
    loom_free(ctx, f->data, f->data_bytes);
    loom_strfree(ctx, f->path);
    loom_free(ctx, f, sizeof *f);
}

/* A non-negative integer JSON number that a double holds exactly. */
static int json_uint(const cJSON *j, uint64_t *v)
{
    if (!cJSON_IsNumber(j))
        return 0;
    double d = j->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || d != floor(d))
        return 0;
    *v = (uint64_t)d;
    return 1;
}

#define BAD(...) loom_fail(ctx, LOOM_E_FORMAT, __VA_ARGS__)
#define OOM() loom_fail(ctx, LOOM_E_OOM, "safetensors file %s: out of memory", f->path)

static loom_status parse_metadata(loom_tensor_file *f, const cJSON *m)
{
    loom_ctx *ctx = f->ctx;
    if (!cJSON_IsObject(m))
        return BAD("safetensors file %s: \"__metadata__\" is not an object", f->path);
    int n = cJSON_GetArraySize(m);
    f->meta = loom_calloc(ctx, (size_t)n, sizeof *f->meta);
    if (!f->meta)
        return OOM();
    f->meta_cap = n;
    for (const cJSON *kv = m->child; kv; kv = kv->next) {
        if (!cJSON_IsString(kv))
            return BAD("safetensors file %s: metadata \"%s\" is not a string", f->path, kv->string);
        st_meta *e = &f->meta[f->nmeta];
        e->key = loom_strdup(ctx, kv->string);
        e->value = e->key ? loom_strdup(ctx, kv->valuestring) : NULL;
        if (!e->key || !e->value) {
            loom_strfree(ctx, e->key);
            e->key = NULL;
            return OOM();
        }
        f->nmeta++;
    }
    return LOOM_OK;
}

static loom_status parse_tensor(loom_tensor_file *f, const cJSON *j)
{
    loom_ctx *ctx = f->ctx;
    const char *name = j->string;
    char sb[96];
    if (!cJSON_IsObject(j))
        return BAD("safetensors file %s: entry \"%s\" is not an object", f->path, name);
    if (nn_name_map_get(&f->names, name) >= 0)
        return BAD("safetensors file %s: tensor \"%s\" appears twice", f->path, name);
    st_entry e = {0};
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(j, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(j, "data_offsets");
    if (!cJSON_IsString(dt))
        return BAD("safetensors file %s: tensor \"%s\" has no dtype string", f->path, name);
    size_t k = 0;
    while (k < sizeof dtypes / sizeof dtypes[0] && strcmp(dtypes[k].name, dt->valuestring))
        k++;
    if (k == sizeof dtypes / sizeof dtypes[0]) {
        for (size_t i = 0; i < sizeof foreign_dtypes / sizeof foreign_dtypes[0]; i++)
            if (!strcmp(foreign_dtypes[i], dt->valuestring))
                return BAD("safetensors file %s: tensor \"%s\" has dtype %s, which loom cannot hold "
                           "(F32, I32, F16, BF16, I8)", f->path, name, dt->valuestring);
        return BAD("safetensors file %s: tensor \"%s\" has unknown dtype \"%s\"", f->path, name, dt->valuestring);
    }
    e.dtype = dtypes[k].dt;
    if (!cJSON_IsArray(shape))
        return BAD("safetensors file %s: tensor \"%s\" has no shape list", f->path, name);
    e.ndim = cJSON_GetArraySize(shape);
    if (e.ndim > LOOM_MAX_DIMS)
        return BAD("safetensors file %s: tensor \"%s\" has %d dimensions, loom holds at most %d", f->path, name,
                   e.ndim, LOOM_MAX_DIMS);
    uint64_t numel = 1;
    int overflow = 0;
    for (int i = 0; i < e.ndim; i++) {
        uint64_t d;
        if (!json_uint(cJSON_GetArrayItem(shape, i), &d))
            return BAD("safetensors file %s: tensor \"%s\": shape entry %d is not a non-negative integer", f->path,
                       name, i);
        e.shape[i] = (int64_t)d;
        if (d && numel > UINT64_MAX / d)
            overflow = 1;
        numel *= d;
    }
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !json_uint(cJSON_GetArrayItem(offs, 0), &e.begin) ||
        !json_uint(cJSON_GetArrayItem(offs, 1), &e.end))
        return BAD("safetensors file %s: tensor \"%s\": data_offsets is not a list of two non-negative integers",
                   f->path, name);
    if (e.begin > e.end)
        return BAD("safetensors file %s: tensor \"%s\": data_offsets [%llu, %llu] run backwards", f->path, name,
                   (unsigned long long)e.begin, (unsigned long long)e.end);
    uint64_t esize = loom_dtype_size(e.dtype);
    if (overflow || numel > UINT64_MAX / esize || numel * esize != e.end - e.begin)
        return BAD("safetensors file %s: tensor \"%s\": shape %s of %s needs %llu bytes, data_offsets [%llu, %llu] "
                   "hold %llu", f->path, name, loom_shape_str(sb, sizeof sb, e.ndim, e.shape), dt->valuestring,
                   overflow ? 0ULL : (unsigned long long)(numel * esize), (unsigned long long)e.begin,
                   (unsigned long long)e.end, (unsigned long long)(e.end - e.begin));
    if (e.end > f->data_bytes)
        return BAD("safetensors file %s: tensor \"%s\": data_offsets [%llu, %llu] run past the end of the data "
                   "(%zu bytes)", f->path, name, (unsigned long long)e.begin, (unsigned long long)e.end,
                   f->data_bytes);
    e.name = loom_strdup(ctx, name);
    if (!e.name)
        return OOM();
    /* f->t never moves (its capacity is the header's entry count), so the
     * map may keep pointing at the names. */
    f->t[f->n] = e;
    nn_name_map_put(&f->names, f->t[f->n].name, f->n);
    f->n++;
    return LOOM_OK;
}

static int by_offset(const void *a, const void *b)
{
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

static loom_status check_overlap(loom_tensor_file *f)
{
    loom_ctx *ctx = f->ctx;
    if (f->n < 2)
        return LOOM_OK;
    const st_entry **v = loom_malloc(ctx, (size_t)f->n * sizeof *v);
    if (!v)
        return OOM();
    int m = 0;
    for (int i = 0; i < f->n; i++)
        if (f->t[i].end > f->t[i].begin)     /* empty tensors occupy nothing */
            v[m++] = &f->t[i];
    qsort(v, (size_t)m, sizeof *v, by_offset);
    loom_status s = LOOM_OK;
    for (int i = 1; i < m && s == LOOM_OK; i++)
        if (v[i]->begin < v[i - 1]->end)
            s = BAD("safetensors file %s: tensors \"%s\" [%llu, %llu] and \"%s\" [%llu, %llu] overlap", f->path,
                    v[i - 1]->name, (unsigned long long)v[i - 1]->begin, (unsigned long long)v[i - 1]->end,
                    v[i]->name, (unsigned long long)v[i]->begin, (unsigned long long)v[i]->end);
    loom_free(ctx, v, (size_t)f->n * sizeof *v);
    return s;
}

static loom_status parse_header(loom_tensor_file *f, const char *json, size_t len)
{
    loom_ctx *ctx = f->ctx;
    if (memchr(json, 0, len))
        return BAD("safetensors file %s: the header holds a NUL byte", f->path);
    if (!utf8_ok((const unsigned char *)json, len))
        return BAD("safetensors file %s: the header is not valid UTF-8", f->path);
    if (json[0] != '{')
        return BAD("safetensors file %s: the header does not start with '{'", f->path);
    const char *end = NULL;
    /* json[len] is a NUL, so requiring termination rejects trailing junk
     * but allows the padding spaces. */
    cJSON *root = cJSON_ParseWithLengthOpts(json, len + 1, &end, 1);
    if (!root)
        return BAD("safetensors file %s: the header is not valid JSON (error near byte %td of %zu)", f->path,
                   end ? end - json : (ptrdiff_t)0, len);
    loom_status s = LOOM_OK;
    if (!cJSON_IsObject(root)) {
        s = BAD("safetensors file %s: the header is not a JSON object", f->path);
    } else {
        int n = cJSON_GetArraySize(root);
        f->t = loom_calloc(ctx, (size_t)n, sizeof *f->t);
        if (!f->t)
            s = OOM();
        else
            f->cap = n;
        if (s == LOOM_OK && nn_name_map_init(&f->names, ctx, (size_t)n, f->path) != LOOM_OK)
            s = OOM();
        for (const cJSON *j = root->child; j && s == LOOM_OK; j = j->next) {
            if (!strcmp(j->string, ST_META))
                s = f->meta ? BAD("safetensors file %s: \"__metadata__\" appears twice", f->path)
                            : parse_metadata(f, j);
            else
                s = parse_tensor(f, j);
        }
    }
    cJSON_Delete(root);
    nn_name_map_free(&f->names);
    if (s == LOOM_OK)
        s = check_overlap(f);
    return s;
}

/* Reads the file's bytes: the header (NUL-terminated) and the data. */
static loom_status read_file(loom_tensor_file *f, char **header, uint64_t *hlen)
{
    loom_ctx *ctx = f->ctx;
    const char *path = f->path;
    *header = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return loom_fail(ctx, LOOM_E_IO, "safetensors file %s: %s", path, strerror(errno));
    struct stat sb;
    loom_status s = LOOM_OK;
    unsigned char len8[8];
    if (fstat(fileno(fp), &sb) != 0) {
        s = loom_fail(ctx, LOOM_E_IO, "safetensors file %s: %s", path, strerror(errno));
    } else if (!S_ISREG(sb.st_mode)) {
        s = loom_fail(ctx, LOOM_E_IO, "safetensors file %s: not a regular file", path);
    } else if (sb.st_size < 8) {
        s = BAD("safetensors file %s: truncated: %lld bytes, shorter than the 8-byte header length", path,
                (long long)sb.st_size);
    } else if (fread(len8, 1, 8, fp) != 8) {
        s = loom_fail(ctx, LOOM_E_IO, "safetensors file %s: read error", path);
    } else {
        uint64_t size = (uint64_t)sb.st_size;
        *hlen = loom_load_le64(len8);
        if (*hlen > ST_MAX_HEADER)
            s = BAD("safetensors file %s: header length %llu is over the %llu-byte limit (corrupt or not a "
                    "safetensors file)", path, (unsigned long long)*hlen, (unsigned long long)ST_MAX_HEADER);
        else if (*hlen > size - 8)
            s = BAD("safetensors file %s: truncated: header length %llu runs past the end of the file (%llu bytes)",
                    path, (unsigned long long)*hlen, (unsigned long long)size);
        else if (*hlen < 2)
            s = BAD("safetensors file %s: a header of %llu bytes cannot hold a JSON object", path,
                    (unsigned long long)*hlen);
        if (s == LOOM_OK && size - 8 - *hlen > SIZE_MAX)
            s = loom_fail(ctx, LOOM_E_OOM, "safetensors file %s: too large for this machine", path);
        if (s == LOOM_OK) {
            f->data_bytes = (size_t)(size - 8 - *hlen);
            *header = loom_malloc(ctx, (size_t)*hlen + 1);
            f->data = loom_malloc(ctx, f->data_bytes);
            if (!*header || !f->data)
                s = loom_fail(ctx, LOOM_E_OOM, "safetensors file %s: out of memory for %llu bytes", path,
                              (unsigned long long)size);
        }
        if (s == LOOM_OK && (fread(*header, 1, (size_t)*hlen, fp) != *hlen ||
                             fread(f->data, 1, f->data_bytes, fp) != f->data_bytes))
            s = loom_fail(ctx, LOOM_E_IO, "safetensors file %s: read error (did it change while read?)", path);
        if (s == LOOM_OK)
            (*header)[*hlen] = '\0';
    }
    fclose(fp);
    return s;
}

loom_status loom_safetensors_open(loom_ctx *ctx, const char *path, loom_tensor_file **out)
{
    if (!ctx)
        return LOOM_E_INVALID;
    if (!out || !path)
        return loom_fail(ctx, LOOM_E_INVALID, "loom_safetensors_open: NULL %s", out ? "path" : "out");
    *out = NULL;
    loom_tensor_file *f = loom_calloc(ctx, 1, sizeof *f);
    if (!f)
        return loom_fail(ctx, LOOM_E_OOM, "safetensors file %s: out of memory", path);
    f->ctx = ctx;
    f->path = loom_strdup(ctx, path);
    if (!f->path) {
        loom_free(ctx, f, sizeof *f);
        return loom_fail(ctx, LOOM_E_OOM, "safetensors file %s: out of memory", path);
    }
    char *header = NULL;
    uint64_t hlen = 0;
    loom_status s = read_file(f, &header, &hlen);
    if (s == LOOM_OK)
        s = parse_header(f, header, (size_t)hlen);
    if (header)
        loom_free(ctx, header, (size_t)hlen + 1);
    if (s == LOOM_OK && !loom_host_is_le())
        for (int i = 0; i < f->n; i++)
            loom_swap_elems(f->data + f->t[i].begin, (size_t)(f->t[i].end - f->t[i].begin) /
                            loom_dtype_size(f->t[i].dtype), loom_dtype_size(f->t[i].dtype));
    if (s != LOOM_OK) {
        loom_safetensors_close(f);
        return s;
    }
    *out = f;
    return LOOM_OK;
}

const char *loom_safetensors_metadata(const loom_tensor_file *f, const char *key)
{
    if (!f || !key)
        return NULL;
    for (int i = 0; i < f->nmeta; i++)
        if (!strcmp(f->meta[i].key, key))
            return f->meta[i].value;
    return NULL;
}

int loom_safetensors_meta_count(const loom_tensor_file *f)
{
    return f ? f->nmeta : 0;
}

const char *loom_safetensors_meta_key(const loom_tensor_file *f, int i)
{
    return f && i >= 0 && i < f->nmeta ? f->meta[i].key : NULL;
}

int loom_safetensors_count(const loom_tensor_file *f)
{
    return f ? f->n : 0;
}

loom_status loom_safetensors_tensor(const loom_tensor_file *f, int i, const char **name, loom_dtype *dt, int *ndim,
                                    int64_t shape[LOOM_MAX_DIMS], const void **data)
{
    if (!f)
        return LOOM_E_INVALID;
    if (i < 0 || i >= f->n)
        return loom_fail(f->ctx, LOOM_E_RANGE, "safetensors file %s: tensor %d of %d asked for", f->path, i, f->n);
    const st_entry *e = &f->t[i];
    if (name)
        *name = e->name;
    if (dt)
        *dt = e->dtype;
    if (ndim)
        *ndim = e->ndim;
    if (shape)
        for (int k = 0; k < LOOM_MAX_DIMS; k++)
            shape[k] = k < e->ndim ? e->shape[k] : 1;
    if (data)
        *data = f->data + e->begin;
    return LOOM_OK;
}

/* The state's entry of a name: its index, dtype and shape (-1 if none). */
typedef struct state_index {
    nn_name_map map;
    int n;
} state_index;

static loom_status index_state(loom_ctx *ctx, loom_state *st, state_index *ix, const char *what)
{
    ix->n = loom_state_count(st);
    LOOM_TRY(nn_name_map_init(&ix->map, ctx, (size_t)ix->n, what));
    for (int i = 0; i < ix->n; i++) {
        const char *name;
        loom_state_entry(st, i, &name, NULL, NULL, NULL);
        nn_name_map_put(&ix->map, name, i);
    }
    return LOOM_OK;
}

loom_status loom_safetensors_to_state(const loom_tensor_file *f, loom_state *st)
{
    if (!f || !st)
        return LOOM_E_INVALID;
    loom_ctx *ctx = f->ctx;
    char a[96], b[96];
    state_index ix;
    LOOM_TRY(index_state(ctx, st, &ix, f->path));
    loom_status s = LOOM_OK;
    /* Every check first, so a bad file leaves the model as it was. */
    for (int i = 0; i < f->n && s == LOOM_OK; i++) {
        const st_entry *e = &f->t[i];
        for (int k = 0; k < e->ndim && s == LOOM_OK; k++)
            if (e->shape[k] == 0)
                s = BAD("safetensors file %s: tensor \"%s\" has shape %s with no elements, which a state "
                        "cannot hold", f->path, e->name, loom_shape_str(a, sizeof a, e->ndim, e->shape));
        int at = s == LOOM_OK ? nn_name_map_get(&ix.map, e->name) : -1;
        if (at < 0)
            continue;
        loom_dtype hdt;
        int hnd;
        int64_t hshape[LOOM_MAX_DIMS];
        loom_state_entry(st, at, NULL, &hdt, &hnd, hshape);
        int same = hdt == e->dtype && hnd == e->ndim;
        for (int k = 0; same && k < e->ndim; k++)
            same = hshape[k] == e->shape[k];
        if (!same)
            s = BAD("safetensors file %s: tensor \"%s\" is %s %s in the file but %s %s in the model", f->path,
                    e->name, dtype_str(e->dtype), loom_shape_str(a, sizeof a, e->ndim, e->shape), dtype_str(hdt),
                    loom_shape_str(b, sizeof b, hnd, hshape));
    }
    nn_name_map_free(&ix.map);
    for (int i = 0; i < f->n && s == LOOM_OK; i++) {
        const st_entry *e = &f->t[i];
        s = loom_state_write(st, e->name, e->dtype, e->ndim, e->shape, f->data + e->begin);
    }
    return s;
}

/* ---- writing ------------------------------------------------------------- */

typedef struct sbuf {
    loom_ctx *ctx;
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t len)
{
    if (b->oom)
        return;
    if (b->n + len > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < b->n + len)
            ncap *= 2;
        char *np = loom_realloc(b->ctx, b->p, b->cap, ncap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
}

static void sb_str(sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_u64(sbuf *b, uint64_t v)
{
    char t[24];
    int k = snprintf(t, sizeof t, "%llu", (unsigned long long)v);
    sb_put(b, t, (size_t)k);
}

/* A JSON string literal; the text is known to be valid UTF-8. */
static void sb_json(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char t[2] = {'\\', (char)c};
            sb_put(b, t, 2);
        } else if (c < 0x20) {
            char t[8];
            snprintf(t, sizeof t, "\\u%04x", c);
            sb_put(b, t, 6);
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_put(b, "\"", 1);
}

/* One state entry as the writer needs it. */
typedef struct save_entry {
    const char *name;
    loom_dtype dtype;
    int ndim;
    int64_t shape[LOOM_MAX_DIMS];
    uint64_t bytes;
} save_entry;

static void get_entry(loom_state *st, int i, save_entry *e)
{
    loom_state_entry(st, i, &e->name, &e->dtype, &e->ndim, e->shape);
    /* a state only holds tensors whose byte count fits */
    if (loom_shape_bytes(e->ndim, e->shape, loom_dtype_size(e->dtype), NULL, &e->bytes))
        e->bytes = 0;
}

typedef struct save_filter {
    int (*keep)(const char *name, void *user);
    void *user;
    loom_dtype as;             /* f32 tensors stored in this dtype */
} save_filter;

/* The dtype and byte count an entry has in the file. */
static void as_stored(const save_filter *f, save_entry *e)
{
    if (e->dtype == LOOM_F32 && f->as != LOOM_F32) {
        e->dtype = f->as;
        e->bytes = e->bytes / 4 * loom_dtype_size(f->as);
    }
}

static int kept(const save_filter *f, const char *name)
{
    return !f->keep || f->keep(name, f->user);
}

static loom_status check_text(loom_ctx *ctx, const char *path, const char *what, const char *s)
{
    if (!utf8_ok((const unsigned char *)s, strlen(s)))
        return loom_fail(ctx, LOOM_E_INVALID, "safetensors save %s: %s \"%s\" is not valid UTF-8", path, what, s);
    return LOOM_OK;
}

/* The header: metadata first, then the selected tensors end to end in
 * state order, padded with spaces to a multiple of 8 so the data section
 * starts 8-aligned. */
static loom_status build_header(loom_ctx *ctx, loom_state *st, const char *path, const char *const *meta,
                                const save_filter *flt, sbuf *b, uint64_t *data_bytes)
{
    sb_str(b, "{");
    int first = 1;
    if (meta && meta[0]) {
        sb_json(b, ST_META);
        sb_str(b, ":{");
        for (int k = 0; meta[2 * k]; k++) {
            LOOM_TRY(check_text(ctx, path, "metadata key", meta[2 * k]));
            LOOM_TRY(check_text(ctx, path, "metadata value", meta[2 * k + 1]));
            for (int j = 0; j < k; j++)
                if (!strcmp(meta[2 * j], meta[2 * k]))
                    return loom_fail(ctx, LOOM_E_INVALID, "safetensors save %s: metadata key \"%s\" given twice",
                                     path, meta[2 * k]);
            if (k)
                sb_str(b, ",");
            sb_json(b, meta[2 * k]);
            sb_str(b, ":");
            sb_json(b, meta[2 * k + 1]);
        }
        sb_str(b, "}");
        first = 0;
    }
    uint64_t off = 0;
    for (int i = 0; i < loom_state_count(st); i++) {
        save_entry ent, *e = &ent;
        get_entry(st, i, e);
        if (!kept(flt, e->name))
            continue;
        as_stored(flt, e);
        if (!strcmp(e->name, ST_META))
            return loom_fail(ctx, LOOM_E_INVALID, "safetensors save %s: a tensor may not be named \"%s\"", path,
                             ST_META);
        LOOM_TRY(check_text(ctx, path, "tensor name", e->name));
        const char *dts = dtype_str(e->dtype);
        if (!dts)
            return loom_fail(ctx, LOOM_E_DTYPE, "safetensors save %s: tensor \"%s\" has dtype %s", path, e->name,
                             loom_dtype_name(e->dtype));
        if (!first)
            sb_str(b, ",");
        first = 0;
        sb_json(b, e->name);
        sb_str(b, ":{\"dtype\":");
        sb_json(b, dts);
        sb_str(b, ",\"shape\":[");
        for (int k = 0; k < e->ndim; k++) {
            if (k)
                sb_str(b, ",");
            sb_u64(b, (uint64_t)e->shape[k]);
        }
        sb_str(b, "],\"data_offsets\":[");
        sb_u64(b, off);
        sb_str(b, ",");
        uint64_t end;
        if (loom_add_u64(off, e->bytes, &end))
            return loom_fail(ctx, LOOM_E_OOM, "safetensors save %s: too large for this machine", path);
        sb_u64(b, end);
        sb_str(b, "]}");
        off = end;
    }
    sb_str(b, "}");
    while (b->n % 8)
        sb_str(b, " ");
    if (b->oom)
        return loom_fail(ctx, LOOM_E_OOM, "safetensors save %s: out of memory for the header", path);
    *data_bytes = off;
    return LOOM_OK;
}

static int prefix_keep(const char *name, void *user)
{
    const char *prefix = user;
    return !strncmp(name, prefix, strlen(prefix));
}

loom_status loom_safetensors_save(loom_state *st, const char *path, const char *const *meta, const char *prefix)
{
    return loom_safetensors_save_filtered(st, path, meta, prefix ? prefix_keep : NULL, (void *)prefix, LOOM_F32);
}

loom_status loom_safetensors_save_filtered(loom_state *st, const char *path, const char *const *meta,
                                           int (*keep)(const char *name, void *user), void *user, loom_dtype as)
{
    if (!st)
        return LOOM_E_INVALID;
    loom_ctx *ctx = loom_state_ctx(st);
    save_filter flt = {keep, user, as};
    if (!path)
        return loom_fail(ctx, LOOM_E_INVALID, "loom_safetensors_save: NULL path");
    for (int k = 0; meta && meta[2 * k]; k++)
        if (!meta[2 * k + 1])
            return loom_fail(ctx, LOOM_E_INVALID, "safetensors save %s: metadata key \"%s\" has no value", path,
                             meta[2 * k]);
    sbuf b = {ctx, NULL, 0, 0, 0};
    uint64_t data_bytes = 0;
    loom_status s = build_header(ctx, st, path, meta, &flt, &b, &data_bytes);
    unsigned char *file = NULL;
    size_t size = 0;
    if (s == LOOM_OK) {
        if (data_bytes > SIZE_MAX - 8 - b.n) {
            s = loom_fail(ctx, LOOM_E_OOM, "safetensors save %s: too large for this machine", path);
        } else {
            size = 8 + b.n + (size_t)data_bytes;
            file = loom_malloc(ctx, size);
            if (!file)
                s = loom_fail(ctx, LOOM_E_OOM, "safetensors save %s: out of memory for %zu bytes", path, size);
        }
    }
    if (s == LOOM_OK) {
        loom_store_le64(file, b.n);
        memcpy(file + 8, b.p, b.n);
        unsigned char *d = file + 8 + b.n;
        for (int i = 0; i < loom_state_count(st) && s == LOOM_OK; i++) {
            save_entry ent, *e = &ent;
            get_entry(st, i, e);
            if (!kept(&flt, e->name))
                continue;
            if (e->dtype == LOOM_F32 && as != LOOM_F32) {
                /* read as f32, stored narrowed */
                float *w = loom_malloc(ctx, (size_t)e->bytes);
                s = w ? loom_state_read(st, e->name, w, (size_t)e->bytes)
                      : loom_fail(ctx, LOOM_E_OOM, "safetensors save %s: out of memory", path);
                if (s == LOOM_OK)
                    s = loom_convert(as, d, LOOM_F32, w, (size_t)e->bytes / 4);
                loom_free(ctx, w, (size_t)e->bytes);
                as_stored(&flt, e);
                if (s == LOOM_OK && !loom_host_is_le())
                    loom_swap_elems(d, (size_t)e->bytes / loom_dtype_size(e->dtype), loom_dtype_size(e->dtype));
                d += e->bytes;
                continue;
            }
            s = loom_state_read(st, e->name, d, (size_t)e->bytes);
            if (s == LOOM_OK && !loom_host_is_le())
                loom_swap_elems(d, (size_t)e->bytes / loom_dtype_size(e->dtype), loom_dtype_size(e->dtype));
            d += e->bytes;
        }
    }
    if (s == LOOM_OK)
        s = loom_write_file_atomic(ctx, path, file, size);
    loom_free(ctx, file, size);
    loom_free(ctx, b.p, b.cap);
    return s;
}
