/* Writes the fuzzers' seed corpora (tests/fuzz/corpus/<harness>/) with loom
 * itself: small valid files of each kind, a few hundred bytes to a few KB.
 * Run by tools/fuzz.sh --make-corpus; the output is committed.
 *
 *   fuzz_make_corpus DIR */
#include "fuzz_common.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

static const char *root;

static void put(const char *harness, const char *name, const void *data, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, harness);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/%s/%s", root, harness, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    printf("%s (%zu bytes)\n", path, n);
}

static void put_str(const char *harness, const char *name, const char *s)
{
    put(harness, name, s, strlen(s));
}

/* A metadata record of a model file written by loom. */
static char *meta_of(const unsigned char *f, size_t n, const char *key)
{
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | f[i];
    if (n < 8 + hlen)
        exit(1);
    cJSON *h = cJSON_ParseWithLength((const char *)f + 8, (size_t)hlen);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(h, "__metadata__"), key);
    char *s = cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
    cJSON_Delete(h);
    if (!s)
        exit(1);
    return s;
}

static void copy_file(const char *harness, const char *name, const char *path)
{
    size_t n = 0;
    unsigned char *f = fz_read_file(path, &n);
    if (!f)
        exit(1);
    put(harness, name, f, n);
    free(f);
}

/* fuzz_checkpoint's framing: the header, a NUL, the data. */
static void put_unframed(const char *name, const char *path)
{
    size_t n = 0;
    unsigned char *f = fz_read_file(path, &n);
    uint64_t hlen = 0;
    for (int i = 7; f && n >= 8 && i >= 0; i--)
        hlen = hlen << 8 | f[i];
    if (!f || n < 8 + hlen)
        exit(1);
    unsigned char *u = malloc(n);
    memcpy(u, f + 8, (size_t)hlen);
    u[hlen] = 0;
    memcpy(u + hlen + 1, f + 8 + hlen, n - 8 - (size_t)hlen);
    put("checkpoint", name, u, n - 7);
    free(u);
    free(f);
}

static void be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* fuzz_idx's framing: flags, the labels' length, labels, images. */
static void put_idx(const char *name, unsigned flags, const unsigned char *lab, size_t ln, const unsigned char *img,
                    size_t in)
{
    unsigned char buf[4096];
    buf[0] = (unsigned char)flags;
    buf[1] = (unsigned char)ln, buf[2] = (unsigned char)(ln >> 8);
    memcpy(buf + 3, lab, ln);
    memcpy(buf + 3 + ln, img, in);
    put("idx", name, buf, 3 + ln + in);
}

static size_t gz(const unsigned char *p, size_t n, unsigned char *out, size_t cap)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    z.next_in = (Bytef *)p, z.avail_in = (uInt)n, z.next_out = out, z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        exit(1);
    deflateEnd(&z);
    return cap - z.avail_out;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_make_corpus DIR\n");
        return 2;
    }
    root = argv[1];
    if (mkdir(root, 0755) != 0 && errno != EEXIST) {
        perror(root);
        return 1;
    }
    loom_ctx *ctx = fz_ctx();

    /* model files and checkpoints of the shared model */
    loom_sequential *m = fz_model();
    char *mp = strdup(fz_tmp_path("model.safetensors"));
    if (loom_sequential_save(m, mp) != LOOM_OK)
        return 1;
    fz_exercise(m);
    char *cp = strdup(fz_tmp_path("checkpoint.safetensors"));
    if (loom_sequential_checkpoint(m, cp) != LOOM_OK)
        return 1;
    loom_sequential_destroy(m);
    put_unframed("model", mp);
    put_unframed("checkpoint", cp);
    copy_file("safetensors", "model.safetensors", mp);
    copy_file("safetensors", "checkpoint.safetensors", cp);

    /* every dtype, a scalar, metadata */
    loom_state *st = NULL;
    if (loom_state_create(fz_cpu(), &st) != LOOM_OK)
        return 1;
    int64_t s2[2] = {2, 3}, s1[1] = {4}, s4[4] = {1, 2, 1, 2};
    float f32[6] = {1, -2, 3.5f, 0, 1e-3f, -7};
    int32_t i32[4] = {0, -1, 7, 1 << 30};
    uint16_t h16[4] = {0x3c00, 0xc000, 0x7bff, 0x0001};
    int8_t i8[4] = {-128, 0, 1, 127};
    if (loom_state_write(st, "a/f32", LOOM_F32, 2, s2, f32) || loom_state_write(st, "b/i32", LOOM_I32, 1, s1, i32) ||
        loom_state_write(st, "c/f16", LOOM_F16, 1, s1, h16) || loom_state_write(st, "d/bf16", LOOM_BF16, 4, s4, h16) ||
        loom_state_write(st, "e/i8", LOOM_I8, 1, s1, i8) || loom_state_write(st, "g/scalar", LOOM_F32, 0, NULL, f32)) {
        fprintf(stderr, "%s\n", loom_last_error(ctx));
        return 1;
    }
    const char *meta[] = {"format", "pt", "note", "\xc3\xa9t\xc3\xa9 \\ \"quoted\"", NULL};
    char *dp = strdup(fz_tmp_path("dtypes.safetensors"));
    if (loom_safetensors_save(st, dp, meta, NULL) != LOOM_OK) {
        fprintf(stderr, "%s\n", loom_last_error(ctx));
        return 1;
    }
    copy_file("safetensors", "dtypes.safetensors", dp);
    loom_state_destroy(st);

    /* the records on their own */
    size_t n = 0;
    unsigned char *f = fz_read_file(mp, &n);
    char *cfg = meta_of(f, n, "loom.config"), *arch = meta_of(f, n, "loom.architecture");
    free(f);
    put_str("model_config", "default.json", cfg);
    put_str("model_config", "sgd_step.json",
            "{\"loss\":0,\"batch\":3,\"seed\":7,\"optimizer\":{\"kind\":2,\"lr\":0.1,\"momentum\":0.9,\"nesterov\":1,"
            "\"schedule\":1,\"step_size\":2,\"gamma\":0.5,\"clip_norm\":1}}");
    put_str("model_config", "adamw_cosine.json",
            "{\"loss\":0,\"batch\":2,\"seed\":1,\"optimizer\":{\"kind\":1,\"lr\":0.01,\"weight_decay\":0.01,"
            "\"schedule\":3,\"warmup_steps\":2,\"total_steps\":10,\"lr_min\":0.0001,\"ema_decay\":0.9}}");
    put_str("model_config", "mse.json", "{\"loss\":2,\"batch\":1}");
    put_str("architecture", "shared.json", arch);
    put_str("architecture", "acts.json",
            "{\"layers\":[{\"type\":\"dense\",\"units\":3,\"activation\":\"tanh\",\"init\":\"glorot_uniform\"},"
            "{\"type\":\"dropout\",\"rate\":0.5},{\"type\":\"dense\",\"units\":2,\"activation\":\"linear\","
            "\"init\":\"he_normal\"}],\"input\":4}");
    put_str("architecture", "gelu_sigmoid.json",
            "{\"layers\":[{\"type\":\"dense\",\"units\":5,\"activation\":\"gelu\",\"init\":\"he_normal\"},"
            "{\"type\":\"dense\",\"units\":2,\"activation\":\"sigmoid\",\"init\":\"glorot_uniform\"}],\"input\":4}");
    free(cfg);
    free(arch);

    /* IDX: 3 images of 2x3 and their labels, plain, gzipped here, and
     * already gzipped */
    unsigned char img[16 + 18], lab[8 + 3];
    be32(img, 0x803), be32(img + 4, 3), be32(img + 8, 2), be32(img + 12, 3);
    be32(lab, 0x801), be32(lab + 4, 3);
    for (int i = 0; i < 18; i++)
        img[16 + i] = (unsigned char)(i * 14);
    lab[8] = 0, lab[9] = 2, lab[10] = 1;
    put_idx("plain", 0, lab, sizeof lab, img, sizeof img);
    put_idx("gzip_both", 3, lab, sizeof lab, img, sizeof img);
    put_idx("standardize", 4, lab, sizeof lab, img, sizeof img);
    unsigned char zl[256], zi[256];
    size_t zln = gz(lab, sizeof lab, zl, sizeof zl), zin = gz(img, sizeof img, zi, sizeof zi);
    put_idx("gzip_streams", 0, zl, zln, zi, zin);
    free(mp), free(cp), free(dp);
    return 0;
}
