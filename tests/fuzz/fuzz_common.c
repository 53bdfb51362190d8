/* Shared set-up of the libFuzzer harnesses; see fuzz_common.h. */
#define _GNU_SOURCE
#include "fuzz_common.h"

#include <cjson/cJSON.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CAP_ONE ((size_t)256 << 20)
#define CAP_ALL ((size_t)1 << 30)
#define HDR 16 /* keeps the caller's pointer 16-byte aligned, as malloc's */
#define FZ_MAX_EXERCISED ((uint64_t)1 << 20) /* state elements */

static size_t live;

/* The allocator of fz_ctx: lua_Alloc semantics, with the size stored in
 * front of each block so a free or realloc that passes another size than
 * was allocated aborts (the fuzzer reports it with its stack). */
static void *fz_alloc(void *user, void *ptr, size_t osize, size_t nsize)
{
    (void)user;
    unsigned char *b = ptr ? (unsigned char *)ptr - HDR : NULL;
    size_t real = 0;
    if (b) {
        memcpy(&real, b, sizeof real);
        /* loom_malloc(ctx, 0) allocates 1 byte, which is freed as 0 */
        if ((osize ? osize : 1) != real) {
            fprintf(stderr, "fuzz allocator: a block of %zu bytes was %s as %zu bytes\n", real,
                    nsize ? "reallocated" : "freed", osize);
            abort();
        }
    }
    if (nsize == 0) {
        if (b) {
            live -= real;
            free(b);
        }
        return NULL;
    }
    if (nsize > CAP_ONE || live - real + nsize > CAP_ALL)
        return NULL;
    unsigned char *nb = realloc(b, nsize + HDR);
    if (!nb)
        return NULL;
    live = live - real + nsize;
    memcpy(nb, &nsize, sizeof nsize);
    return nb + HDR;
}

static void quiet(void *user, loom_log_level level, const char *msg)
{
    (void)user, (void)level, (void)msg;
}

static char tmpdir[64];

const char *fz_tmp_path(const char *name)
{
    static char path[256];
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/loom-fuzz-XXXXXX");
        if (!mkdtemp(tmpdir)) {
            perror("fuzz: mkdtemp");
            abort();
        }
    }
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    return path;
}

static loom_ctx *ctx;
static loom_device *cpu;

loom_ctx *fz_ctx(void)
{
    if (ctx)
        return ctx;
    loom_ctx_opts o;
    loom_ctx_opts_default(&o);
    o.alloc = fz_alloc;
    o.log = quiet;
    o.log_level = LOOM_LOG_ERROR;
    o.backends = 1 << LOOM_BACKEND_CPU;
    o.validation = 0;
    char cache[256];
    snprintf(cache, sizeof cache, "%s", fz_tmp_path("cache"));
    o.cache_dir = cache;
    if (loom_ctx_create(&o, &ctx) != LOOM_OK) {
        fprintf(stderr, "fuzz: loom_ctx_create failed\n");
        abort();
    }
    return ctx;
}

loom_device *fz_cpu(void)
{
    if (!cpu && loom_device_open(fz_ctx(), "cpu", &cpu) != LOOM_OK) {
        fprintf(stderr, "fuzz: cannot open the cpu device: %s\n", loom_last_error(fz_ctx()));
        abort();
    }
    return cpu;
}

static int fds[4] = {-1, -1, -1, -1};

const char *fz_file(int slot, const void *data, size_t n)
{
    static char paths[4][64];
    if (fds[slot] < 0) {
        fds[slot] = memfd_create("loom-fuzz", MFD_CLOEXEC);
        if (fds[slot] < 0) {
            perror("fuzz: memfd_create");
            abort();
        }
        snprintf(paths[slot], sizeof paths[slot], "/proc/self/fd/%d", fds[slot]);
    }
    if (ftruncate(fds[slot], 0) != 0) {
        perror("fuzz: ftruncate");
        abort();
    }
    const unsigned char *p = data;
    size_t done = 0;
    while (done < n) {
        ssize_t w = pwrite(fds[slot], p + done, n - done, (off_t)done);
        if (w <= 0) {
            perror("fuzz: pwrite");
            abort();
        }
        done += (size_t)w;
    }
    return paths[slot];
}

uint64_t fz_touch(const void *p, size_t n)
{
    const unsigned char *c = p;
    uint64_t h = 0;
    for (size_t i = 0; i < n; i++)
        h = h * 31 + c[i];
    return h;
}

unsigned char *fz_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            unsigned char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0)
            break;
    }
    fclose(f);
    *n = len;
    return buf;
}

loom_sequential *fz_model(void)
{
    loom_sequential *m = NULL;
    loom_model_config cfg = loom_model_config_default();
    cfg.batch = 2;
    if (loom_sequential_create(fz_ctx(), 4, &m) != LOOM_OK ||
        loom_sequential_add_dense(m, 3, LOOM_ACT_RELU, LOOM_INIT_HE_NORMAL) != LOOM_OK ||
        loom_sequential_add_dropout(m, 0.25f) != LOOM_OK ||
        loom_sequential_add_dense(m, 2, LOOM_ACT_SOFTMAX, LOOM_INIT_GLOROT_UNIFORM) != LOOM_OK ||
        loom_sequential_compile(m, fz_cpu(), &cfg) != LOOM_OK) {
        fprintf(stderr, "fuzz: the shared model does not build: %s\n", loom_last_error(fz_ctx()));
        abort();
    }
    return m;
}

static void be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

loom_dataset *fz_data(void)
{
    static loom_dataset *ds;
    if (ds)
        return ds;
    unsigned char img[16 + 24], lab[8 + 6];
    be32(img, 0x803), be32(img + 4, 6), be32(img + 8, 2), be32(img + 12, 2);
    be32(lab, 0x801), be32(lab + 4, 6);
    for (int i = 0; i < 6; i++) {
        lab[8 + i] = (unsigned char)(i & 1);
        for (int k = 0; k < 4; k++)
            img[16 + 4 * i + k] = (unsigned char)((i & 1) ? 200 - 30 * k : 20 + 25 * k);
    }
    /* slots 2 and 3: the harnesses' own inputs use 0 and 1 */
    const char *ip = fz_file(2, img, sizeof img);
    char ipath[64];
    snprintf(ipath, sizeof ipath, "%s", ip);
    const char *lp = fz_file(3, lab, sizeof lab);
    if (loom_dataset_load_idx(fz_ctx(), ipath, lp, &ds) != LOOM_OK ||
        loom_dataset_scale(ds, LOOM_SCALE_UNIT, NULL, NULL) != LOOM_OK) {
        fprintf(stderr, "fuzz: the shared data set does not load: %s\n", loom_last_error(fz_ctx()));
        abort();
    }
    return ds;
}

static int stop_after_8(void *user, const loom_fit_stats *s)
{
    (void)s;
    return ++*(int *)user >= 8;
}

/* Elements in the model's state (weights, moments): training a model of
 * millions of them under ASan and coverage takes minutes a step, which the
 * fuzzer would report as a timeout, not a defect. */
static uint64_t state_elems(loom_sequential *m)
{
    loom_state *st = loom_sequential_state(m);
    uint64_t total = 0;
    for (int i = 0; i < loom_state_count(st); i++) {
        const char *name;
        loom_dtype dt;
        int ndim;
        int64_t shape[LOOM_MAX_DIMS];
        if (loom_state_entry(st, i, &name, &dt, &ndim, shape) != LOOM_OK)
            continue;
        uint64_t n = 1;
        for (int d = 0; d < ndim; d++)
            n *= (uint64_t)shape[d];
        total += n;
    }
    return total;
}

void fz_exercise(loom_sequential *m)
{
    if (state_elems(m) > FZ_MAX_EXERCISED)
        return;
    loom_dataset *ds = fz_data();
    loom_fit_config fc = loom_fit_config_default();
    int calls = 0;
    fc.epochs = INT_MAX;          /* the progress callback ends it */
    fc.progress = stop_after_8;
    fc.user = &calls;
    fc.progress_every = 1;
    (void)loom_sequential_fit(m, ds, &fc, NULL);
    for (int ema = 0; ema < 2; ema++) {
        loom_eval_result r;
        memset(&r, 0, sizeof r);
        if (loom_sequential_evaluate(m, ds, ema, &r) == LOOM_OK)
            loom_eval_result_free(&r);
    }
    int64_t outs = loom_sequential_outputs(m);
    if (outs > 0 && outs <= (1 << 20) && loom_dataset_features(ds) == 4) {
        /* the model's input width may differ from the data's: predict on
         * rows of the width it says it takes (its description) */
        const char *arch = loom_sequential_describe(m);
        const char *in = arch ? strstr(arch, "\"input\":") : NULL;
        long width = in ? strtol(in + 8, NULL, 10) : 0;
        if (width > 0 && width <= (1 << 20)) {
            float *x = calloc((size_t)width * 2, sizeof *x), *y = malloc((size_t)outs * 2 * sizeof *y);
            if (x && y)
                (void)loom_sequential_predict(m, x, 2, y);
            free(x);
            free(y);
        }
    }
}

/* The shared model's header (parsed) and data section, per kind. */
static cJSON *base_head[2];
static unsigned char *base_data[2];
static size_t base_bytes[2];

static void load_base(int checkpoint)
{
    loom_sequential *m = fz_model();
    const char *path = fz_tmp_path(checkpoint ? "base-checkpoint.safetensors" : "base-model.safetensors");
    if (checkpoint)
        fz_exercise(m);
    loom_status s = checkpoint ? loom_sequential_checkpoint(m, path) : loom_sequential_save(m, path);
    loom_sequential_destroy(m);
    size_t n = 0;
    unsigned char *f = s == LOOM_OK ? fz_read_file(path, &n) : NULL;
    if (!f || n < 8) {
        fprintf(stderr, "fuzz: cannot write the shared model's file %s: %s\n", path, loom_last_error(fz_ctx()));
        abort();
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | f[i];
    base_head[checkpoint] = cJSON_ParseWithLength((const char *)f + 8, (size_t)hlen);
    base_bytes[checkpoint] = n - 8 - (size_t)hlen;
    base_data[checkpoint] = malloc(base_bytes[checkpoint] + 1);
    if (!base_head[checkpoint] || !base_data[checkpoint])
        abort();
    memcpy(base_data[checkpoint], f + 8 + hlen, base_bytes[checkpoint]);
    free(f);
}

size_t fz_model_file(int checkpoint, const char *key, const char *value, unsigned char **out)
{
    checkpoint = !!checkpoint;
    if (!base_head[checkpoint])
        load_base(checkpoint);
    cJSON *h = cJSON_Duplicate(base_head[checkpoint], 1);
    cJSON *meta = cJSON_GetObjectItemCaseSensitive(h, "__metadata__");
    if (!meta)
        abort();
    cJSON_DeleteItemFromObjectCaseSensitive(meta, key);
    cJSON_AddStringToObject(meta, key, value);
    char *text = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    if (!text)
        abort();
    size_t hl = strlen(text), n = 8 + hl + base_bytes[checkpoint];
    unsigned char *f = malloc(n);
    if (!f)
        abort();
    for (int i = 0; i < 8; i++)
        f[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(f + 8, text, hl);
    memcpy(f + 8 + hl, base_data[checkpoint], base_bytes[checkpoint]);
    free(text);
    *out = f;
    return n;
}

char *fz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    size_t k = 0;
    for (; k < size && data[k]; k++)
        s[k] = data[k] < 0x80 ? (char)data[k] : '?';
    s[k] = 0;
    return s;
}
