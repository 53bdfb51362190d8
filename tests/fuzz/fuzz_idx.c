/* libFuzzer harness: the IDX reader (loom_dataset_load_idx), plain and
 * gzipped, then the data set operations on what it accepted.
 *
 * Input: byte 0 flags (bit 0: gzip the images file, bit 1: gzip the labels
 * file, here, so the fuzzer's structure survives compression; a part that
 * already is a gzip stream is also read as one), bytes 1-2 the labels
 * file's length (little-endian, clamped), then the labels file, then the
 * images file. */
#include "fuzz_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

/* A gzip stream of p[0..n), in buf (caller frees). */
static unsigned char *gzip(const unsigned char *p, size_t n, size_t *out)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        abort();
    size_t cap = deflateBound(&z, (uLong)n) + 64;
    unsigned char *buf = malloc(cap);
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)n;
    z.next_out = buf;
    z.avail_out = (uInt)cap;
    if (!buf || deflate(&z, Z_FINISH) != Z_STREAM_END)
        abort();
    *out = cap - z.avail_out;
    deflateEnd(&z);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    loom_ctx *ctx = fz_ctx();
    unsigned flags = data[0];
    size_t llen = (size_t)data[1] | (size_t)data[2] << 8;
    data += 3, size -= 3;
    if (llen > size)
        llen = size;
    const unsigned char *lab = data, *img = data + llen;
    size_t ilen = size - llen;
    unsigned char *zl = NULL, *zi = NULL;
    if (flags & 2)
        lab = zl = gzip(lab, llen, &llen);
    if (flags & 1)
        img = zi = gzip(img, ilen, &ilen);
    char lpath[64];
    snprintf(lpath, sizeof lpath, "%s", fz_file(1, lab, llen));
    const char *ipath = fz_file(0, img, ilen);
    loom_dataset *ds = NULL;
    loom_status s = loom_dataset_load_idx(ctx, ipath, lpath, &ds);
    free(zl);
    free(zi);
    if (s != LOOM_OK)
        return 0;
    int64_t n = loom_dataset_count(ds), feat = loom_dataset_features(ds);
    int classes = loom_dataset_classes(ds);
    uint64_t h = (uint64_t)classes;
    h += fz_touch(loom_dataset_images(ds), (size_t)(n * feat) * sizeof(float));
    h += fz_touch(loom_dataset_labels(ds), (size_t)n * sizeof(int32_t));
    float stats[2];
    (void)loom_dataset_scale(ds, (flags & 4) ? LOOM_SCALE_STANDARD : LOOM_SCALE_UNIT, NULL, stats);
    loom_dataset *tr = NULL, *val = NULL, *sub = NULL;
    if (loom_dataset_split(ds, 0.25f, &tr, &val) == LOOM_OK) {
        int64_t tn = loom_dataset_count(tr);
        int64_t *order = malloc((size_t)(tn ? tn : 1) * sizeof *order);
        float *x = malloc((size_t)(feat ? feat : 1) * 2 * sizeof *x);
        int32_t y[2];
        if (order && x && loom_dataset_shuffle(tr, 7, 1, order) == LOOM_OK)
            (void)loom_dataset_gather(tr, order, tn < 2 ? tn : 2, x, y);
        free(order);
        free(x);
    }
    if (loom_dataset_subset(ds, n / 2, n - n / 2, &sub) == LOOM_OK)
        h += (uint64_t)loom_dataset_classes(sub);
    loom_dataset_destroy(sub);
    loom_dataset_destroy(tr);
    loom_dataset_destroy(val);
    loom_dataset_destroy(ds);
    sink = h;
    return 0;
}
