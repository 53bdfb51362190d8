/* Inputs of the loom commands: the Fashion-MNIST files, image files
 * (stb_image) and raw float32 arrays. */
#include "cli.h"

#include "../../src/common/checked.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef LOOM_HAVE_STB_IMAGE
/* The one translation unit holding stb_image's implementation: only the
 * decoders a grey-level image may come in. Its own code is not ours to
 * warn about. */
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_PNM
#define STBI_ONLY_BMP
#define STBI_ONLY_JPEG
#define STBI_NO_STDIO_WARNINGS
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#pragma GCC diagnostic ignored "-Wshadow"
#endif
#include <stb/stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
#endif

loom_status cli_load_data(loom_ctx *ctx, const char *dir, int train, int64_t limit, loom_dataset **out)
{
    loom_dataset *ds = NULL;
    *out = NULL;
    loom_status s = loom_dataset_load_mnist(ctx, dir, train, &ds);
    if (s == LOOM_OK && limit > 0 && limit < loom_dataset_count(ds)) {
        loom_dataset *sub = NULL;
        s = loom_dataset_subset(ds, 0, limit, &sub);
        loom_dataset_destroy(ds);
        ds = sub;
    }
    if (s != LOOM_OK) {
        loom_dataset_destroy(ds);
        return s;
    }
    *out = ds;
    return LOOM_OK;
}

/* The whole file into memory. */
static unsigned char *slurp(const char *cmd, const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "loom %s: %s: %s\n", cmd, path, strerror(errno));
        return NULL;
    }
    unsigned char *b = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 1 << 16;
            unsigned char *nb = ncap > cap ? realloc(b, ncap) : NULL;
            if (!nb) {
                fprintf(stderr, "loom %s: %s: out of memory\n", cmd, path);
                free(b);
                fclose(f);
                return NULL;
            }
            b = nb;
            cap = ncap;
        }
        size_t r = fread(b + len, 1, cap - len, f);
        len += r;
        if (r == 0)
            break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        fprintf(stderr, "loom %s: %s: read error\n", cmd, path);
        free(b);
        return NULL;
    }
    *n = len;
    return b;
}

int cli_read_inputs(const char *cmd, const char *path, int64_t features, float **x, int64_t *n)
{
    *x = NULL;
    *n = 0;
    size_t size = 0;
    unsigned char *b = slurp(cmd, path, &size);
    if (!b)
        return 1;
#ifdef LOOM_HAVE_STB_IMAGE
    int w = 0, h = 0, comp = 0;
    if (size <= (size_t)INT32_MAX && stbi_info_from_memory(b, (int)size, &w, &h, &comp)) {
        unsigned char *px = stbi_load_from_memory(b, (int)size, &w, &h, &comp, 1);
        free(b);
        if (!px) {
            fprintf(stderr, "loom %s: %s: cannot decode the image: %s\n", cmd, path, stbi_failure_reason());
            return 1;
        }
        if ((int64_t)w * h != features) {
            fprintf(stderr, "loom %s: %s is a %dx%d image (%lld pixels); the model takes %lld inputs\n", cmd, path, w,
                    h, (long long)w * h, (long long)features);
            stbi_image_free(px);
            return 1;
        }
        float *v = malloc((size_t)features * sizeof *v);
        if (!v) {
            stbi_image_free(px);
            fprintf(stderr, "loom %s: out of memory\n", cmd);
            return 1;
        }
        for (int64_t i = 0; i < features; i++)
            v[i] = (float)px[i];
        stbi_image_free(px);
        *x = v;
        *n = 1;
        return 0;
    }
#endif
    /* Not an image: float32 values, little-endian, whole rows. */
    size_t row;
    if (loom_mul_size((size_t)features, sizeof(float), &row) || size == 0 || size % row) {
        fprintf(stderr, "loom %s: %s is neither an image%s nor raw float32 inputs (%zu bytes is not a multiple of "
                        "%lld inputs x 4 bytes)\n", cmd, path,
#ifdef LOOM_HAVE_STB_IMAGE
                "",
#else
                " (this build reads no image formats: stb_image was missing)",
#endif
                size, (long long)features);
        free(b);
        return 1;
    }
    size_t count = size / sizeof(float);
    float *v = malloc(size);
    if (!v) {
        free(b);
        fprintf(stderr, "loom %s: out of memory\n", cmd);
        return 1;
    }
    for (size_t i = 0; i < count; i++) {
        const unsigned char *p = b + 4 * i;
        uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        memcpy(&v[i], &u, sizeof u);
        if (!isfinite(v[i])) {
            fprintf(stderr, "loom %s: %s: value %zu (row %zu) is not a finite number\n", cmd, path, i,
                    i / (size_t)features);
            free(v);
            free(b);
            return 1;
        }
    }
    free(b);
    *x = v;
    *n = (int64_t)(size / row);
    return 0;
}
