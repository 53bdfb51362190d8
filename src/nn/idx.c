/* MNIST-format IDX files (plain or gzipped) into a data set.
 *
 * An IDX file is a big-endian magic (two zero bytes, an element type, the
 * number of dimensions), one big-endian u32 per dimension, then the
 * elements. Only unsigned bytes are read: images [n, rows, cols], labels [n]. */
#include "nn_internal.h"

#include <errno.h>
#include <stdio.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define IDX_UBYTE 0x08
/* Beyond any MNIST-like set; stops a corrupt header from asking for
 * terabytes before the short read would be noticed. */
#define IDX_MAX_BYTES ((uint64_t)1 << 36)
#define IDX_CHUNK ((size_t)1 << 22)

typedef struct idx_file {
    gzFile gz;
    const char *path;
    int ndim;
    int64_t dims[3];
    uint64_t total;             /* elements = bytes, the product of dims */
} idx_file;

/* The status of a read that came back short: the stream's own error if it
 * has one, else the file simply ended. */
static loom_status short_read(loom_ctx *ctx, idx_file *f, const char *what, uint64_t got, uint64_t want)
{
    int zerr = Z_OK;
    const char *msg = gzerror(f->gz, &zerr);
    if (zerr == Z_ERRNO)
        return loom_fail(ctx, LOOM_E_IO, "IDX file %s: read error in the %s: %s", f->path, what, strerror(errno));
    if (zerr == Z_MEM_ERROR)
        return loom_fail(ctx, LOOM_E_OOM, "IDX file %s: zlib out of memory", f->path);
    if (zerr != Z_OK && zerr != Z_BUF_ERROR)
        return loom_fail(ctx, LOOM_E_FORMAT, "IDX file %s: corrupt gzip data in the %s (%s)", f->path, what, msg);
    return loom_fail(ctx, LOOM_E_FORMAT, "IDX file %s: truncated: the %s has %llu of %llu bytes", f->path, what,
                     (unsigned long long)got, (unsigned long long)want);
}

/* Reads exactly n bytes or reports what went wrong. */
static loom_status read_exact(loom_ctx *ctx, idx_file *f, const char *what, void *buf, size_t n, uint64_t done,
                              uint64_t want)
{
    size_t got = 0;
    while (got < n) {
        size_t step = n - got < IDX_CHUNK ? n - got : IDX_CHUNK;
        int r = gzread(f->gz, (unsigned char *)buf + got, (unsigned)step);
        if (r <= 0)
            return short_read(ctx, f, what, done + got, want);
        got += (size_t)r;
    }
    return LOOM_OK;
}

/* Opens path and reads its header; want_ndim is 3 (images) or 1 (labels). */
static loom_status idx_open(loom_ctx *ctx, const char *path, int want_ndim, idx_file *f)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return loom_fail(ctx, LOOM_E_IO, "IDX file %s: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return loom_fail(ctx, LOOM_E_IO, "IDX file %s: not a regular file", path);
    errno = 0;
    f->gz = gzopen(path, "rb");
    if (!f->gz) {
        if (errno == 0)
            return loom_fail(ctx, LOOM_E_OOM, "IDX file %s: zlib out of memory", path);
        return loom_fail(ctx, LOOM_E_IO, "IDX file %s: %s", path, strerror(errno));
    }
    unsigned char head[4 + 4 * 3];
    loom_status s = read_exact(ctx, f, "header", head, 4, 0, 4);
    if (s != LOOM_OK)
        return s;
    uint32_t magic = loom_load_be32(head);
    if (head[0] != 0 || head[1] != 0)
        return loom_fail(ctx, LOOM_E_FORMAT, "IDX file %s: bad magic 0x%08x (not an IDX file)", path,
                         (unsigned)magic);
    if (head[2] != IDX_UBYTE)
        return loom_fail(ctx, LOOM_E_FORMAT,
                         "IDX file %s: magic 0x%08x has element type 0x%02x, expected 0x08 (unsigned byte)", path,
                         (unsigned)magic, head[2]);
    if (head[3] != want_ndim)
        return loom_fail(ctx, LOOM_E_FORMAT,
                         "IDX file %s: magic 0x%08x says %d dimensions, expected %d (%s)", path, (unsigned)magic,
                         head[3], want_ndim, want_ndim == 3 ? "images [n, rows, cols]" : "labels [n]");
    f->ndim = want_ndim;
    s = read_exact(ctx, f, "header", head + 4, 4 * (size_t)want_ndim, 4, 4 + 4 * (uint64_t)want_ndim);
    if (s != LOOM_OK)
        return s;
    f->total = 1;
    for (int i = 0; i < want_ndim; i++) {
        f->dims[i] = loom_load_be32(head + 4 + 4 * i);
        if (f->dims[i] == 0)
            return loom_fail(ctx, LOOM_E_FORMAT, "IDX file %s: dimension %d is 0", path, i);
        f->total *= (uint64_t)f->dims[i]; /* three u32s cannot overflow past the check below */
        if (f->total > IDX_MAX_BYTES)
            return loom_fail(ctx, LOOM_E_FORMAT, "IDX file %s: header claims more than %llu bytes of data", path,
                             (unsigned long long)IDX_MAX_BYTES);
    }
    return LOOM_OK;
}

/* Closes the stream; with check, a stream that ended inside a gzip member
 * (its CRC and length trailer missing) is LOOM_E_FORMAT: zlib's reads
 * return every byte of such a file without an error. */
static loom_status idx_close(loom_ctx *ctx, idx_file *f, int check)
{
    if (!f->gz)
        return LOOM_OK;
    int r = gzclose_r(f->gz);
    f->gz = NULL;
    if (!check || r == Z_OK)
        return LOOM_OK;
    if (r == Z_BUF_ERROR)
        return loom_fail(ctx, LOOM_E_FORMAT, "IDX file %s: truncated gzip stream: it ends without its CRC and "
                         "length trailer", f->path);
    if (r == Z_ERRNO)
        return loom_fail(ctx, LOOM_E_IO, "IDX file %s: read error: %s", f->path, strerror(errno));
    return loom_fail(ctx, LOOM_E_FORMAT, "IDX file %s: corrupt gzip data (zlib status %d)", f->path, r);
}

/* Reads the f->total data bytes and checks nothing follows. The buffer
 * grows as data arrives, so a header that overstates the size fails as a
 * truncation rather than as a huge allocation. */
static loom_status idx_body(loom_ctx *ctx, idx_file *f, unsigned char **out)
{
    *out = NULL;
    size_t cap = 0, have = 0, total = (size_t)f->total;
    unsigned char *buf = NULL;
    loom_status s = LOOM_OK;
    while (have < total) {
        if (have == cap) {
            size_t ncap = cap ? cap * 2 : IDX_CHUNK;
            if (ncap > total)
                ncap = total;
            unsigned char *nb = loom_realloc(ctx, buf, cap, ncap);
            if (!nb) {
                s = loom_fail(ctx, LOOM_E_OOM, "IDX file %s: out of memory for %zu bytes", f->path, ncap);
                break;
            }
            buf = nb;
            cap = ncap;
        }
        size_t n = cap - have;
        s = read_exact(ctx, f, "data", buf + have, n, have, total);
        if (s != LOOM_OK)
            break;
        have += n;
    }
    if (s == LOOM_OK) {
        unsigned char extra[64];
        int r = gzread(f->gz, extra, sizeof extra);
        int zerr = Z_OK;
        if (r > 0)
            s = loom_fail(ctx, LOOM_E_FORMAT,
                          "IDX file %s: wrong size: data continues past the %llu bytes its header gives", f->path,
                          (unsigned long long)total);
        else if (r < 0)
            s = short_read(ctx, f, "data", total, total);
        else if ((gzerror(f->gz, &zerr), zerr) == Z_BUF_ERROR)
            s = loom_fail(ctx, LOOM_E_FORMAT, "IDX file %s: truncated gzip stream: it ends without its CRC and "
                          "length trailer", f->path);
    }
    if (s != LOOM_OK) {
        loom_free(ctx, buf, cap);
        return s;
    }
    *out = buf;
    return LOOM_OK;
}

/* The rule for labels: they number the classes 0..C-1 and every class has
 * at least one example, C being the largest label + 1. A stray byte (one
 * 255 in a 10-class set) would otherwise silently make a 256-way softmax;
 * here it leaves classes without examples and the file is refused. */
static loom_status check_labels(loom_ctx *ctx, const char *path, const unsigned char *labels, size_t n)
{
    size_t count[256] = {0}, first[256] = {0};
    int top = -1;
    for (size_t i = 0; i < n; i++) {
        if (!count[labels[i]]++)
            first[labels[i]] = i;
        top = labels[i] > top ? labels[i] : top;
    }
    for (int c = 0; c < top; c++) {
        if (count[c])
            continue;
        int last = c;
        while (last + 1 < top && !count[last + 1])
            last++;
        char gap[32];
        if (last == c)
            snprintf(gap, sizeof gap, "class %d has", c);
        else
            snprintf(gap, sizeof gap, "classes %d..%d have", c, last);
        return loom_fail(ctx, LOOM_E_FORMAT,
                         "IDX file %s: label %d (first at row %zu) is out of range: %s no example. Labels must "
                         "number the classes 0..C-1, each used at least once (a corrupt label byte?)", path, top,
                         first[top], gap);
    }
    return LOOM_OK;
}

loom_status loom_dataset_load_idx(loom_ctx *ctx, const char *images_path, const char *labels_path,
                                  loom_dataset **out)
{
    if (!ctx)
        return LOOM_E_INVALID;
    if (!out || !images_path || !labels_path)
        return loom_fail(ctx, LOOM_E_INVALID, "loom_dataset_load_idx: NULL %s",
                         !out ? "out" : !images_path ? "images path" : "labels path");
    *out = NULL;
    idx_file lf, imf;
    unsigned char *labels = NULL, *pixels = NULL;
    loom_dataset *ds = NULL;
    loom_status s = idx_open(ctx, labels_path, 1, &lf);
    if (s == LOOM_OK)
        s = idx_body(ctx, &lf, &labels);
    loom_status cs = idx_close(ctx, &lf, s == LOOM_OK);
    if (s == LOOM_OK)
        s = cs;
    if (s == LOOM_OK)
        s = check_labels(ctx, labels_path, labels, (size_t)lf.total);
    if (s != LOOM_OK) {
        loom_free(ctx, labels, (size_t)lf.total);
        return s;
    }
    s = idx_open(ctx, images_path, 3, &imf);
    if (s == LOOM_OK && imf.dims[0] != lf.dims[0])
        s = loom_fail(ctx, LOOM_E_FORMAT, "IDX files %s and %s: %lld images but %lld labels", images_path,
                      labels_path, (long long)imf.dims[0], (long long)lf.dims[0]);
    if (s == LOOM_OK)
        s = idx_body(ctx, &imf, &pixels);
    cs = idx_close(ctx, &imf, s == LOOM_OK);
    if (s == LOOM_OK)
        s = cs;
    if (s == LOOM_OK) {
        ds = loom_dataset_alloc(ctx, imf.dims[0], imf.dims[1] * imf.dims[2]);
        if (!ds)
            s = loom_fail(ctx, LOOM_E_OOM, "IDX file %s: out of memory for %lld x %lld floats", images_path,
                          (long long)imf.dims[0], (long long)(imf.dims[1] * imf.dims[2]));
    }
    if (s == LOOM_OK) {
        ds->rows = imf.dims[1];
        ds->cols = imf.dims[2];
        for (uint64_t i = 0; i < imf.total; i++)
            ds->x[i] = (float)pixels[i];
        for (int64_t i = 0; i < ds->n; i++)
            ds->y[i] = labels[i];
        loom_dataset_count_classes(ds);
        *out = ds;
    }
    loom_free(ctx, labels, (size_t)lf.total);
    loom_free(ctx, pixels, (size_t)imf.total);
    return s;
}

/* dir/name.gz if it exists, else dir/name; 0 if neither does. */
static int find_file(char *buf, size_t n, const char *dir, const char *name)
{
    struct stat sb;
    if ((size_t)snprintf(buf, n, "%s/%s.gz", dir, name) < n && stat(buf, &sb) == 0)
        return 1;
    if ((size_t)snprintf(buf, n, "%s/%s", dir, name) < n && stat(buf, &sb) == 0)
        return 1;
    return 0;
}

loom_status loom_dataset_load_mnist(loom_ctx *ctx, const char *dir, int train, loom_dataset **out)
{
    if (!ctx)
        return LOOM_E_INVALID;
    if (!out)
        return loom_fail(ctx, LOOM_E_INVALID, "loom_dataset_load_mnist: NULL out");
    *out = NULL;
    if (!dir)
        dir = LOOM_DEFAULT_DATA_DIR;
    const char *img = train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte";
    const char *lab = train ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte";
    char ip[PATH_MAX], lp[PATH_MAX];
    if (!find_file(ip, sizeof ip, dir, img))
        return loom_fail(ctx, LOOM_E_IO, "data folder %s: no %s(.gz) (install dataset-fashion-mnist or pass --data DIR)",
                         dir, img);
    if (!find_file(lp, sizeof lp, dir, lab))
        return loom_fail(ctx, LOOM_E_IO, "data folder %s: no %s(.gz)", dir, lab);
    return loom_dataset_load_idx(ctx, ip, lp, out);
}
