/* safetensors model files: bit-exact round trips through a CPU state, the
 * layout the Python library writes and reads, every corruption case (with
 * the state left as it was), and the atomic write. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[64];

static void setup(void)
{
    strcpy(tmpdir, "/tmp/loom_st_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
    DIR *d = opendir(tmpdir);
    if (!d)
        return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
            if (remove(p) != 0)
                rmdir(p);
        }
    closedir(d);
    rmdir(tmpdir);
}

static const char *tpath(const char *name)
{
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

/* Entries of the temp folder whose name holds ".tmp.": what a failed
 * atomic write would leave behind. */
static int temp_files(void)
{
    DIR *d = opendir(tmpdir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

static void write_raw(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

static unsigned char *read_raw(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 1);
    ck_assert_uint_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static loom_ctx *cpu_ctx(loom_alloc_fn alloc, void *user)
{
    loom_ctx_opts o;
    loom_ctx_opts_default(&o);
    o.alloc = alloc;
    o.alloc_user = user;
    o.log_level = LOOM_LOG_ERROR;
    o.backends = 1 << LOOM_BACKEND_CPU;
    loom_ctx *ctx = NULL;
    ck_assert_int_eq(loom_ctx_create(&o, &ctx), LOOM_OK);
    return ctx;
}

/* ---- the model: tensors with awkward bit patterns ------------------------ */

#define NT 5
static const char *const names[NT] = {"dense0/w", "dense0/b", "dense1/w", "counts", "scalar"};
static const loom_dtype dts[NT] = {LOOM_F32, LOOM_F32, LOOM_F32, LOOM_I32, LOOM_F32};
static const int ndims[NT] = {2, 1, 2, 2, 0};
static const int64_t shapes[NT][LOOM_MAX_DIMS] = {{3, 4}, {4}, {4, 2}, {2, 3}, {0}};
static const size_t sizes[NT] = {48, 16, 32, 24, 4};

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float float_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Tensor t's contents, varied by salt so two models differ. */
static void model_data(int t, uint32_t salt, void *out)
{
    if (dts[t] == LOOM_I32) {
        int32_t v[6] = {INT32_MIN, -1, 0, 7, INT32_MAX, 123456};
        v[2] = (int32_t)salt;
        memcpy(out, v, sizeof v);
        return;
    }
    size_t n = sizes[t] / 4;
    float *x = out;
    tu_fill(x, n, salt * 31 + (uint32_t)t, -2.0f, 2.0f);
    if (t == 0) {
        /* A NaN with a payload, -0, infinities, a denormal, the extremes:
         * only a bit-exact path keeps all of them. */
        x[0] = float_of(0x7fc12345u ^ salt);
        x[1] = -0.0f;
        x[2] = INFINITY;
        x[3] = -INFINITY;
        x[4] = float_of(0x00000001u + salt);
        x[5] = FLT_MAX;
        x[6] = -FLT_MIN;
    }
}

static loom_state *make_model(loom_device *dev, uint32_t salt)
{
    loom_state *st = NULL;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    unsigned char buf[64];
    for (int t = 0; t < NT; t++) {
        model_data(t, salt, buf);
        ck_assert_int_eq(loom_state_write(st, names[t], dts[t], ndims[t], shapes[t], buf), LOOM_OK);
    }
    return st;
}

/* Every tensor of st holds model_data(salt), bit for bit. */
static void check_model(loom_state *st, uint32_t salt)
{
    unsigned char want[64], got[64];
    for (int t = 0; t < NT; t++) {
        model_data(t, salt, want);
        ck_assert_msg(loom_state_read(st, names[t], got, sizes[t]) == LOOM_OK, "tensor %s missing", names[t]);
        ck_assert_msg(!memcmp(want, got, sizes[t]), "tensor %s differs", names[t]);
    }
}

/* A copy of everything in a state, to prove a failed load changed nothing. */
typedef struct snapshot {
    int n;
    const char *name[16];
    loom_dtype dt[16];
    int ndim[16];
    int64_t shape[16][LOOM_MAX_DIMS];
    unsigned char *data[16];
    size_t bytes[16];
} snapshot;

static size_t entry_bytes(loom_dtype dt, int ndim, const int64_t *shape)
{
    size_t n = loom_dtype_size(dt);
    for (int k = 0; k < ndim; k++)
        n *= (size_t)shape[k];
    return n;
}

static void snap(loom_state *st, snapshot *s)
{
    s->n = loom_state_count(st);
    ck_assert_int_le(s->n, 16);
    for (int i = 0; i < s->n; i++) {
        ck_assert_int_eq(loom_state_entry(st, i, &s->name[i], &s->dt[i], &s->ndim[i], s->shape[i]), LOOM_OK);
        s->bytes[i] = entry_bytes(s->dt[i], s->ndim[i], s->shape[i]);
        s->data[i] = malloc(s->bytes[i]);
        ck_assert_int_eq(loom_state_read(st, s->name[i], s->data[i], s->bytes[i]), LOOM_OK);
    }
}

static void check_snap(loom_state *st, snapshot *s)
{
    ck_assert_int_eq(loom_state_count(st), s->n);
    for (int i = 0; i < s->n; i++) {
        const char *name;
        loom_dtype dt;
        int ndim;
        int64_t shape[LOOM_MAX_DIMS];
        ck_assert_int_eq(loom_state_entry(st, i, &name, &dt, &ndim, shape), LOOM_OK);
        ck_assert_str_eq(name, s->name[i]);
        ck_assert_int_eq(dt, s->dt[i]);
        ck_assert_int_eq(ndim, s->ndim[i]);
        ck_assert_int_eq(memcmp(shape, s->shape[i], sizeof shape), 0);
        unsigned char *now = malloc(s->bytes[i]);
        ck_assert_int_eq(loom_state_read(st, name, now, s->bytes[i]), LOOM_OK);
        ck_assert_msg(!memcmp(now, s->data[i], s->bytes[i]), "tensor %s changed", name);
        free(now);
    }
}

static void free_snap(snapshot *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->data[i]);
}

/* ---- round trips ------------------------------------------------------- */

START_TEST(round_trip_bit_exact)
{
    loom_ctx *ctx = cpu_ctx(NULL, NULL);
    loom_device *dev = tu_open(ctx, "cpu");
    loom_state *st = make_model(dev, 1);
    const char *meta[] = {"architecture", "{\"hidden\":[64,64],\"classes\":10}", "format", "pt", NULL};
    loom_status s = loom_safetensors_save(st, tpath("m.safetensors"), meta, NULL);
    ck_assert_msg(s == LOOM_OK, "%s", loom_last_error(ctx));

    loom_tensor_file *f = NULL;
    s = loom_safetensors_open(ctx, tpath("m.safetensors"), &f);
    ck_assert_msg(s == LOOM_OK, "%s", loom_last_error(ctx));
    ck_assert_int_eq(loom_safetensors_count(f), NT);
    ck_assert_str_eq(loom_safetensors_metadata(f, "architecture"), meta[1]);
    ck_assert_str_eq(loom_safetensors_metadata(f, "format"), "pt");
    ck_assert_ptr_null(loom_safetensors_metadata(f, "absent"));
    unsigned char want[64];
    for (int t = 0; t < NT; t++) {
        const char *name;
        loom_dtype dt;
        int nd;
        int64_t shape[LOOM_MAX_DIMS];
        const void *data;
        ck_assert_int_eq(loom_safetensors_tensor(f, t, &name, &dt, &nd, shape, &data), LOOM_OK);
        ck_assert_str_eq(name, names[t]);
        ck_assert_int_eq(dt, dts[t]);
        ck_assert_int_eq(nd, ndims[t]);
        for (int k = 0; k < nd; k++)
            ck_assert_int_eq(shape[k], shapes[t][k]);
        ck_assert_uint_eq((uintptr_t)data % 4, 0);
        model_data(t, 1, want);
        ck_assert_int_eq(memcmp(data, want, sizes[t]), 0);
    }
    ck_assert_int_eq(loom_safetensors_tensor(f, NT, NULL, NULL, NULL, NULL, NULL), LOOM_E_RANGE);

    /* Into a fresh state, and over a state with other values. */
    loom_state *fresh = NULL;
    ck_assert_int_eq(loom_state_create(dev, &fresh), LOOM_OK);
    ck_assert_int_eq(loom_safetensors_to_state(f, fresh), LOOM_OK);
    check_model(fresh, 1);
    loom_state *other = make_model(dev, 2);
    check_model(other, 2);
    ck_assert_int_eq(loom_safetensors_to_state(f, other), LOOM_OK);
    check_model(other, 1);
    ck_assert_int_eq(loom_state_count(other), NT);
    loom_safetensors_close(f);

    /* Saved again from the loaded state: the same bytes. */
    s = loom_safetensors_save(fresh, tpath("again.safetensors"), meta, NULL);
    ck_assert_int_eq(s, LOOM_OK);
    size_t n1, n2;
    unsigned char *b1 = read_raw(tpath("m.safetensors"), &n1), *b2 = read_raw(tpath("again.safetensors"), &n2);
    ck_assert_uint_eq(n1, n2);
    ck_assert_int_eq(memcmp(b1, b2, n1), 0);
    free(b1);
    free(b2);
    ck_assert_int_eq(temp_files(), 0);
    loom_state_destroy(st);
    loom_state_destroy(fresh);
    loom_state_destroy(other);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

START_TEST(names_prefix_and_escapes)
{
    loom_ctx *ctx = cpu_ctx(NULL, NULL);
    loom_device *dev = tu_open(ctx, "cpu");
    loom_state *st = make_model(dev, 3);
    /* A name JSON must escape, and UTF-8 text. */
    const char *odd = "odd \"q\" \\ \n\t caf\xc3\xa9";
    const float v[2] = {1.5f, -2.25f};
    const int64_t two[1] = {2};
    ck_assert_int_eq(loom_state_write(st, odd, LOOM_F32, 1, two, v), LOOM_OK);
    const char *meta[] = {"note \"quoted\"", "line1\nline2 \xe2\x82\xac", NULL};
    ck_assert_int_eq(loom_safetensors_save(st, tpath("all.st"), meta, NULL), LOOM_OK);
    ck_assert_int_eq(loom_safetensors_save(st, tpath("d0.st"), NULL, "dense0/"), LOOM_OK);

    loom_tensor_file *f = NULL;
    ck_assert_int_eq(loom_safetensors_open(ctx, tpath("all.st"), &f), LOOM_OK);
    ck_assert_int_eq(loom_safetensors_count(f), NT + 1);
    const char *name;
    const void *data;
    ck_assert_int_eq(loom_safetensors_tensor(f, NT, &name, NULL, NULL, NULL, &data), LOOM_OK);
    ck_assert_str_eq(name, odd);
    ck_assert_int_eq(memcmp(data, v, sizeof v), 0);
    ck_assert_str_eq(loom_safetensors_metadata(f, meta[0]), meta[1]);
    loom_safetensors_close(f);

    ck_assert_int_eq(loom_safetensors_open(ctx, tpath("d0.st"), &f), LOOM_OK);
    ck_assert_int_eq(loom_safetensors_count(f), 2);
    ck_assert_int_eq(loom_safetensors_tensor(f, 0, &name, NULL, NULL, NULL, NULL), LOOM_OK);
    ck_assert_str_eq(name, "dense0/w");
    ck_assert_int_eq(loom_safetensors_tensor(f, 1, &name, NULL, NULL, NULL, NULL), LOOM_OK);
    ck_assert_str_eq(name, "dense0/b");
    ck_assert_ptr_null(loom_safetensors_metadata(f, "format"));
    loom_safetensors_close(f);

    /* What save refuses, before touching the file. */
    write_raw(tpath("keep.st"), "old", 3);
    const char *novalue[] = {"key", NULL, NULL};
    ck_assert_int_eq(loom_safetensors_save(st, tpath("keep.st"), novalue, NULL), LOOM_E_INVALID);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "\"key\" has no value"));
    const char *twice[] = {"k", "1", "k", "2", NULL};
    ck_assert_int_eq(loom_safetensors_save(st, tpath("keep.st"), twice, NULL), LOOM_E_INVALID);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "given twice"));
    const char *badutf[] = {"k", "\xff\xfe", NULL};
    ck_assert_int_eq(loom_safetensors_save(st, tpath("keep.st"), badutf, NULL), LOOM_E_INVALID);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "not valid UTF-8"));
    ck_assert_int_eq(loom_state_write(st, "__metadata__", LOOM_F32, 1, two, v), LOOM_OK);
    ck_assert_int_eq(loom_safetensors_save(st, tpath("keep.st"), NULL, NULL), LOOM_E_INVALID);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "may not be named"));
    size_t n;
    unsigned char *b = read_raw(tpath("keep.st"), &n);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(memcmp(b, "old", 3), 0);
    free(b);
    ck_assert_int_eq(temp_files(), 0);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- the format itself --------------------------------------------------- */

/* What the Python library expects, checked on a file loom wrote: an 8-byte
 * little-endian length, a header padded with spaces to a multiple of 8,
 * "F32"/"I32", shape lists, offsets from the end of the header laid end to
 * end, little-endian data. */
START_TEST(layout_matches_python)
{
    loom_ctx *ctx = cpu_ctx(NULL, NULL);
    loom_device *dev = tu_open(ctx, "cpu");
    loom_state *st = make_model(dev, 4);
    const char *meta[] = {"format", "pt", NULL};
    ck_assert_int_eq(loom_safetensors_save(st, tpath("m.st"), meta, NULL), LOOM_OK);
    size_t size;
    unsigned char *b = read_raw(tpath("m.st"), &size);
    uint64_t hlen = le64(b);
    ck_assert_uint_eq(hlen % 8, 0);
    ck_assert_uint_le(8 + hlen, size);
    char *json = malloc(hlen + 1);
    memcpy(json, b + 8, hlen);
    json[hlen] = 0;
    ck_assert_int_eq(json[0], '{');
    size_t close = hlen;
    while (close > 0 && json[close - 1] == ' ')
        close--;
    ck_assert_int_eq(json[close - 1], '}');
    ck_assert_uint_lt(hlen - close, 8);
    cJSON *root = cJSON_Parse(json);
    ck_assert_ptr_nonnull(root);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
    ck_assert(cJSON_IsObject(m));
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(m, "format")->valuestring, "pt");
    uint64_t next = 0;
    for (int t = 0; t < NT; t++) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, names[t]);
        ck_assert_msg(cJSON_IsObject(e), "no entry %s", names[t]);
        ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(e, "dtype")->valuestring,
                         dts[t] == LOOM_F32 ? "F32" : "I32");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
        ck_assert(cJSON_IsArray(sh));
        ck_assert_int_eq(cJSON_GetArraySize(sh), ndims[t]);
        for (int k = 0; k < ndims[t]; k++)
            ck_assert_int_eq((int64_t)cJSON_GetArrayItem(sh, k)->valuedouble, shapes[t][k]);
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        ck_assert_int_eq(cJSON_GetArraySize(off), 2);
        uint64_t begin = (uint64_t)cJSON_GetArrayItem(off, 0)->valuedouble;
        uint64_t end = (uint64_t)cJSON_GetArrayItem(off, 1)->valuedouble;
        ck_assert_uint_eq(begin, next);
        ck_assert_uint_eq(end - begin, sizes[t]);
        next = end;
        /* Each element little-endian, whatever this host is. */
        uint32_t vals[16];
        model_data(t, 4, vals);
        const unsigned char *d = b + 8 + hlen + begin;
        for (size_t i = 0; i < sizes[t] / 4; i++) {
            uint32_t u = (uint32_t)d[4 * i] | (uint32_t)d[4 * i + 1] << 8 | (uint32_t)d[4 * i + 2] << 16 |
                         (uint32_t)d[4 * i + 3] << 24;
            ck_assert_uint_eq(u, vals[i]);
        }
    }
    ck_assert_int_eq(cJSON_GetArraySize(root), NT + 1);
    ck_assert_uint_eq(8 + hlen + next, size);
    cJSON_Delete(root);
    free(json);
    free(b);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* A file as another writer lays it out: header bytes, optional space
 * padding to a multiple of 8, then data. */
static size_t build_file(unsigned char *out, const char *header, int pad, const void *data, size_t ndata)
{
    size_t h = strlen(header);
    size_t hp = pad ? (h + 7) / 8 * 8 : h;
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)((uint64_t)hp >> (8 * i));
    memcpy(out + 8, header, h);
    memset(out + 8 + h, ' ', hp - h);
    if (ndata)
        memcpy(out + 8 + hp, data, ndata);
    return 8 + hp + ndata;
}

/* Little-endian bytes of 32-bit values. */
static void le32s(unsigned char *out, const uint32_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++)
            out[4 * i + k] = (unsigned char)(v[i] >> (8 * k));
}

/* Files built by hand the way torch/numpy safetensors writes them (keys
 * sorted, metadata first), padded or not. */
START_TEST(reads_foreign_files)
{
    loom_ctx *ctx = cpu_ctx(NULL, NULL);
    loom_device *dev = tu_open(ctx, "cpu");
    const float a[4] = {1.0f, -2.5f, 3.25f, 1e-3f};
    const int32_t c[3] = {-7, 0, 65537};
    uint32_t words[7];
    for (int i = 0; i < 4; i++)
        words[i] = bits_of(a[i]);
    for (int i = 0; i < 3; i++)
        words[4 + i] = (uint32_t)c[i];
    unsigned char data[28], file[512];
    le32s(data, words, 7);
    const char *header = "{\"__metadata__\":{\"format\":\"pt\"},"
                         "\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                         "\"c\":{\"dtype\":\"I32\",\"shape\":[3],\"data_offsets\":[16,28]}}";
    for (int pad = 0; pad < 2; pad++) {
        size_t n = build_file(file, header, pad, data, sizeof data);
        write_raw(tpath("foreign.st"), file, n);
        loom_tensor_file *f = NULL;
        loom_status s = loom_safetensors_open(ctx, tpath("foreign.st"), &f);
        ck_assert_msg(s == LOOM_OK, "pad %d: %s", pad, loom_last_error(ctx));
        ck_assert_str_eq(loom_safetensors_metadata(f, "format"), "pt");
        loom_state *st = NULL;
        ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
        ck_assert_int_eq(loom_safetensors_to_state(f, st), LOOM_OK);
        float ra[4];
        int32_t rc[3];
        ck_assert_int_eq(loom_state_read(st, "a", ra, sizeof ra), LOOM_OK);
        ck_assert_int_eq(loom_state_read(st, "c", rc, sizeof rc), LOOM_OK);
        ck_assert_int_eq(memcmp(ra, a, sizeof a), 0);
        ck_assert_int_eq(memcmp(rc, c, sizeof c), 0);
        loom_dtype dt;
        int nd;
        int64_t shape[LOOM_MAX_DIMS];
        ck_assert_int_eq(loom_safetensors_tensor(f, 1, NULL, &dt, &nd, shape, NULL), LOOM_OK);
        ck_assert_int_eq(dt, LOOM_I32);
        ck_assert_int_eq(nd, 1);
        ck_assert_int_eq(shape[0], 3);
        loom_state_destroy(st);
        loom_safetensors_close(f);
    }
    /* No tensors at all, and a zero-element tensor: valid files. */
    size_t n = build_file(file, "{}", 1, NULL, 0);
    write_raw(tpath("empty.st"), file, n);
    loom_tensor_file *f = NULL;
    ck_assert_int_eq(loom_safetensors_open(ctx, tpath("empty.st"), &f), LOOM_OK);
    ck_assert_int_eq(loom_safetensors_count(f), 0);
    loom_safetensors_close(f);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- corruption ------------------------------------------------------------ */

/* Loading bytes as a file into st must fail with want, name the file and
 * the problem, and leave st exactly as it was. */
static void expect_bad(loom_ctx *ctx, loom_state *st, const void *bytes, size_t n, loom_status want,
                       const char *what)
{
    const char *path = tpath("bad.safetensors");
    write_raw(path, bytes, n);
    snapshot before;
    snap(st, &before);
    loom_tensor_file *f = (loom_tensor_file *)&f;
    loom_status s = loom_safetensors_open(ctx, path, &f);
    if (s == LOOM_OK) {
        s = loom_safetensors_to_state(f, st);
        loom_safetensors_close(f);
    } else {
        ck_assert_ptr_null(f);
    }
    const char *msg = loom_last_error(ctx);
    ck_assert_msg(s == want, "want %s for \"%s\", got %s: %s", loom_status_str(want), what, loom_status_str(s), msg);
    ck_assert_msg(strstr(msg, path), "message \"%s\" does not name the file", msg);
    ck_assert_msg(strstr(msg, what), "message \"%s\" does not say \"%s\"", msg, what);
    check_snap(st, &before);
    free_snap(&before);
}

START_TEST(truncated_files)
{
    loom_ctx *ctx = cpu_ctx(NULL, NULL);
    loom_device *dev = tu_open(ctx, "cpu");
    loom_state *st = make_model(dev, 5);
    ck_assert_int_eq(loom_safetensors_save(st, tpath("good.st"), NULL, NULL), LOOM_OK);
    loom_state *target = make_model(dev, 6);
    size_t size;
    unsigned char *b = read_raw(tpath("good.st"), &size);
    size_t hlen = (size_t)le64(b);
    const struct {
        size_t cut;
        const char *what;
    } cuts[] = {
        {0, "shorter than the 8-byte header length"},
        {3, "shorter than the 8-byte header length"},
        {7, "shorter than the 8-byte header length"},
        {8, "runs past the end of the file"},
        {8 + hlen / 2, "runs past the end of the file"},
        {8 + hlen - 1, "runs past the end of the file"},
        {8 + hlen, "run past the end of the data (0 bytes)"},
        {8 + hlen + 50, "run past the end of the data (50 bytes)"},
        {size - 1, "run past the end of the data"},
    };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        expect_bad(ctx, target, b, cuts[i].cut, LOOM_E_FORMAT, cuts[i].what);
    check_model(target, 6);
    free(b);
    loom_state_destroy(st);
    loom_state_destroy(target);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

START_TEST(bad_headers)
{
    loom_ctx *ctx = cpu_ctx(NULL, NULL);
    loom_device *dev = tu_open(ctx, "cpu");
    loom_state *st = make_model(dev, 7);
    unsigned char d16[16] = {0}, file[1024];
    size_t n;
    const struct {
        const char *header;
        size_t ndata;
        const char *what;
    } cases[] = {
        {"{\"a\": ", 16, "not valid JSON"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}} x", 16, "not valid JSON"},
        {"[1,2]", 0, "does not start with '{'"},
        {"{\"a\":1}", 0, "entry \"a\" is not an object"},
        {"{\"a\":{\"dtype\":\"F33\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16, "unknown dtype \"F33\""},
        {"{\"a\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16, "dtype F64, which loom cannot hold"},
        {"{\"a\":{\"shape\":[4],\"data_offsets\":[0,16]}}", 16, "has no dtype string"},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,16]}}", 16, "has no shape list"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", 16,
         "shape [3] of F32 needs 12 bytes, data_offsets [0, 16] hold 16"},
        {"{\"a\":{\"dtype\":\"I32\",\"shape\":[2,3],\"data_offsets\":[0,16]}}", 16, "needs 24 bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]}}", 16,
         "data_offsets [0, 32] run past the end of the data (16 bytes)"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", 16, "run past the end of the data"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         16, "tensors \"a\" [0, 8] and \"b\" [4, 12] overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
         16, "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 16, "run backwards"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 16, "not a list of two"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,-8]}}", 16, "not a list of two"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 16, "shape entry 0 is not"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", 16, "shape entry 0 is not"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,4],\"data_offsets\":[0,16]}}", 16, "5 dimensions"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
         16, "tensor \"a\" appears twice"},
        {"{\"__metadata__\":{\"k\":1}}", 0, "metadata \"k\" is not a string"},
        {"{\"__metadata__\":[]}", 0, "\"__metadata__\" is not an object"},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, "\"__metadata__\" appears twice"},
        {"{\"caf\xc3\x28\":{}}", 0, "not valid UTF-8"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0, "with no elements"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        n = build_file(file, cases[i].header, 1, d16, cases[i].ndata);
        expect_bad(ctx, st, file, n, LOOM_E_FORMAT, cases[i].what);
    }
    /* A NUL inside the header. */
    n = build_file(file, "{\"a\":{}}", 1, NULL, 0);
    file[10] = 0;
    expect_bad(ctx, st, file, n, LOOM_E_FORMAT, "NUL byte");
    /* Header lengths: past the end, absurd, too small for "{}". */
    n = build_file(file, "{}", 1, d16, 16);
    for (int i = 0; i < 8; i++)
        file[i] = (unsigned char)((uint64_t)n >> (8 * i));
    expect_bad(ctx, st, file, n, LOOM_E_FORMAT, "runs past the end of the file");
    memset(file, 0xff, 8);
    expect_bad(ctx, st, file, n, LOOM_E_FORMAT, "over the 104857600-byte limit");
    memset(file, 0, 8);
    file[0] = 1;
    expect_bad(ctx, st, file, n, LOOM_E_FORMAT, "cannot hold a JSON object");
    check_model(st, 7);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

START_TEST(missing_and_not_files)
{
    loom_ctx *ctx = cpu_ctx(NULL, NULL);
    loom_tensor_file *f = (loom_tensor_file *)&f;
    ck_assert_int_eq(loom_safetensors_open(ctx, tpath("absent.st"), &f), LOOM_E_IO);
    ck_assert_ptr_null(f);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), tpath("absent.st")));
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "No such file"));
    ck_assert_int_eq(mkdir(tpath("adir"), 0700), 0);
    ck_assert_int_eq(loom_safetensors_open(ctx, tpath("adir"), &f), LOOM_E_IO);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "not a regular file"));
    loom_ctx_destroy(ctx);
}
END_TEST

/* A file that disagrees with the model in memory: nothing is written, not
 * even the tensors that would fit. */
START_TEST(shape_against_state)
{
    loom_ctx *ctx = cpu_ctx(NULL, NULL);
    loom_device *dev = tu_open(ctx, "cpu");
    loom_state *st = make_model(dev, 8);
    unsigned char data[96] = {0}, file[1024];
    /* "extra" comes first, so a writer that did not check everything first
     * would already have created it. */
    const char *transposed = "{\"extra\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                             "\"dense0/b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]},"
                             "\"dense0/w\":{\"dtype\":\"F32\",\"shape\":[4,3],\"data_offsets\":[24,72]}}";
    size_t n = build_file(file, transposed, 1, data, 72);
    expect_bad(ctx, st, file, n, LOOM_E_FORMAT,
               "tensor \"dense0/w\" is F32 [4,3] in the file but F32 [3,4] in the model");
    const char *retyped = "{\"dense0/b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                          "\"counts\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[16,40]}}";
    n = build_file(file, retyped, 1, data, 40);
    expect_bad(ctx, st, file, n, LOOM_E_FORMAT, "tensor \"counts\" is F32 [2,3] in the file but I32 [2,3]");
    const char *rank = "{\"dense0/b\":{\"dtype\":\"F32\",\"shape\":[1,4],\"data_offsets\":[0,16]}}";
    n = build_file(file, rank, 1, data, 16);
    expect_bad(ctx, st, file, n, LOOM_E_FORMAT, "F32 [1,4] in the file but F32 [4] in the model");
    ck_assert_int_eq(loom_state_count(st), NT);
    check_model(st, 8);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- many tensors -------------------------------------------------------- */

/* A file of `count` one-element F32 tensors "t000000".., the i-th holding
 * i; dup >= 0 names tensor dup twice (the last entry repeats it). */
static void write_many(const char *path, int count, int dup)
{
    size_t cap = (size_t)count * 80 + 64;
    char *h = malloc(cap);
    size_t n = 0;
    n += (size_t)snprintf(h + n, cap - n, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < count; i++) {
        int id = dup >= 0 && i == count - 1 ? dup : i;
        n += (size_t)snprintf(h + n, cap - n, ",\"t%06d\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[%d,%d]}", id,
                              4 * i, 4 * i + 4);
    }
    n += (size_t)snprintf(h + n, cap - n, "}");
    float *data = malloc((size_t)count * 4);
    for (int i = 0; i < count; i++)
        data[i] = (float)i;
    unsigned char *file = malloc(8 + n + 8 + (size_t)count * 4);
    size_t size = build_file(file, h, 1, data, (size_t)count * 4);
    write_raw(path, file, size);
    free(file);
    free(data);
    free(h);
}

/* 200,000 tensors (a 13 MB file): the duplicate-name scan must not be
 * quadratic (it took minutes); a duplicate among them is still found. */
START_TEST(many_tensors)
{
    loom_ctx *ctx = cpu_ctx(NULL, NULL);
    enum { COUNT = 200000 };
    write_many(tpath("many.st"), COUNT, -1);
    loom_tensor_file *f = NULL;
    ck_assert_msg(loom_safetensors_open(ctx, tpath("many.st"), &f) == LOOM_OK, "%s", loom_last_error(ctx));
    ck_assert_int_eq(loom_safetensors_count(f), COUNT);
    for (int i = 0; i < COUNT; i += 19997) {
        const char *name;
        const void *data;
        char want[16];
        snprintf(want, sizeof want, "t%06d", i);
        ck_assert_int_eq(loom_safetensors_tensor(f, i, &name, NULL, NULL, NULL, &data), LOOM_OK);
        ck_assert_str_eq(name, want);
        float v;
        memcpy(&v, data, 4);
        ck_assert_float_eq(v, (float)i);
    }
    ck_assert_str_eq(loom_safetensors_metadata(f, "format"), "pt");
    loom_safetensors_close(f);
    write_many(tpath("dup.st"), COUNT, 123456);
    f = (loom_tensor_file *)&f;
    ck_assert_int_eq(loom_safetensors_open(ctx, tpath("dup.st"), &f), LOOM_E_FORMAT);
    ck_assert_ptr_null(f);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "tensor \"t123456\" appears twice"));
    loom_ctx_destroy(ctx);
}
END_TEST

/* ---- the atomic write ---------------------------------------------------- */

START_TEST(atomic_write)
{
    loom_ctx *ctx = cpu_ctx(NULL, NULL);
    loom_device *dev = tu_open(ctx, "cpu");
    loom_state *st = make_model(dev, 9);
    /* Over an existing file: replaced whole. */
    write_raw(tpath("m.st"), "old contents", 12);
    ck_assert_int_eq(loom_safetensors_save(st, tpath("m.st"), NULL, NULL), LOOM_OK);
    loom_tensor_file *f = NULL;
    ck_assert_int_eq(loom_safetensors_open(ctx, tpath("m.st"), &f), LOOM_OK);
    ck_assert_int_eq(loom_safetensors_count(f), NT);
    loom_safetensors_close(f);
    /* The path is a directory: the rename fails, the directory stays and
     * the temporary file is removed. */
    ck_assert_int_eq(mkdir(tpath("dir.st"), 0700), 0);
    write_raw(tpath("dir.st/inside"), "x", 1);
    ck_assert_int_eq(loom_safetensors_save(st, tpath("dir.st"), NULL, NULL), LOOM_E_IO);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), tpath("dir.st")));
    struct stat sb;
    ck_assert_int_eq(stat(tpath("dir.st"), &sb), 0);
    ck_assert(S_ISDIR(sb.st_mode));
    ck_assert_int_eq(stat(tpath("dir.st/inside"), &sb), 0);
    ck_assert_int_eq(temp_files(), 0);
    remove(tpath("dir.st/inside"));
    /* A folder that does not exist. */
    ck_assert_int_eq(loom_safetensors_save(st, tpath("nodir/m.st"), NULL, NULL), LOOM_E_IO);
    ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "nodir/m.st"));
    ck_assert_int_eq(temp_files(), 0);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

/* An allocator that fails the Nth allocation and counts live blocks. */
typedef struct failing {
    long countdown;             /* < 0: never fail */
    long live;
} failing;

static void *failing_alloc(void *user, void *ptr, size_t osize, size_t nsize)
{
    failing *fa = user;
    (void)osize;
    if (nsize == 0) {
        if (ptr)
            fa->live--;
        free(ptr);
        return NULL;
    }
    if (fa->countdown == 0)
        return NULL;
    if (fa->countdown > 0)
        fa->countdown--;
    void *p = realloc(ptr, nsize);
    if (p && !ptr)
        fa->live++;
    return p;
}

/* Every allocation of save and open failing in turn: LOOM_E_OOM each time,
 * the existing file intact, no temporary file, nothing leaked. */
START_TEST(out_of_memory)
{
    failing fa = {-1, 0};
    loom_ctx *ctx = cpu_ctx(failing_alloc, &fa);
    loom_device *dev = tu_open(ctx, "cpu");
    loom_state *st = make_model(dev, 10);
    const char *meta[] = {"format", "pt", NULL};
    ck_assert_int_eq(loom_safetensors_save(st, tpath("old.st"), meta, NULL), LOOM_OK);
    loom_state *other = make_model(dev, 11);
    size_t n0;
    unsigned char *before = read_raw(tpath("old.st"), &n0);
    long base = fa.live;
    int failures = 0;
    for (long k = 0;; k++) {
        fa.countdown = k;
        loom_status s = loom_safetensors_save(other, tpath("old.st"), meta, NULL);
        fa.countdown = -1;
        if (s == LOOM_OK)
            break;
        ck_assert_msg(s == LOOM_E_OOM, "allocation %ld: %s (%s)", k, loom_status_str(s), loom_last_error(ctx));
        ck_assert_ptr_nonnull(strstr(loom_last_error(ctx), "out of memory"));
        size_t n;
        unsigned char *now = read_raw(tpath("old.st"), &n);
        ck_assert_uint_eq(n, n0);
        ck_assert_int_eq(memcmp(now, before, n), 0);
        free(now);
        ck_assert_int_eq(temp_files(), 0);
        ck_assert_msg(fa.live == base, "allocation %ld failed: %ld blocks leaked", k, fa.live - base);
        failures++;
    }
    ck_assert_int_ge(failures, 2);
    ck_assert_int_eq(fa.live, base);
    failures = 0;
    for (long k = 0;; k++) {
        fa.countdown = k;
        loom_tensor_file *f = NULL;
        loom_status s = loom_safetensors_open(ctx, tpath("old.st"), &f);
        fa.countdown = -1;
        if (s == LOOM_OK) {
            ck_assert_int_eq(loom_safetensors_to_state(f, st), LOOM_OK);
            check_model(st, 11);
            loom_safetensors_close(f);
            break;
        }
        ck_assert_msg(s == LOOM_E_OOM, "allocation %ld: %s (%s)", k, loom_status_str(s), loom_last_error(ctx));
        ck_assert_ptr_null(f);
        ck_assert_msg(fa.live == base, "allocation %ld failed: %ld blocks leaked", k, fa.live - base);
        failures++;
    }
    ck_assert_int_ge(failures, 5);
    free(before);
    loom_state_destroy(st);
    loom_state_destroy(other);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("safetensors");
    TCase *t = tcase_create("round_trip");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, round_trip_bit_exact);
    tcase_add_test(t, names_prefix_and_escapes);
    tcase_add_test(t, layout_matches_python);
    tcase_add_test(t, reads_foreign_files);
    suite_add_tcase(s, t);
    t = tcase_create("corruption");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, truncated_files);
    tcase_add_test(t, bad_headers);
    tcase_add_test(t, missing_and_not_files);
    tcase_add_test(t, shape_against_state);
    tcase_add_test(t, many_tensors);
    suite_add_tcase(s, t);
    t = tcase_create("writing");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, atomic_write);
    tcase_add_test(t, out_of_memory);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
