/* Data sets in host memory: scaling, subsets, the validation split,
 * seeded shuffling and gathering mini-batches. */
#include "nn_internal.h"

#include <math.h>
#include <string.h>

loom_dataset *loom_dataset_alloc(loom_ctx *ctx, int64_t n, int64_t features)
{
    return loom_dataset_alloc_seq(ctx, n, features, 1);
}

loom_dataset *loom_dataset_alloc_seq(loom_ctx *ctx, int64_t n, int64_t features, int64_t ylen)
{
    if (n < 0 || features < 0 || ylen < 1 || (features && (uint64_t)n > SIZE_MAX / sizeof(float) / (uint64_t)features) ||
        (uint64_t)n > SIZE_MAX / sizeof(int32_t) / (uint64_t)ylen)
        return NULL;
    loom_dataset *ds = loom_calloc(ctx, 1, sizeof *ds);
    if (!ds)
        return NULL;
    ds->ctx = ctx;
    ds->n = n;
    ds->features = features;
    ds->rows = 1;
    ds->cols = features;
    ds->ylen = ylen;
    ds->x = loom_malloc(ctx, (size_t)n * (size_t)features * sizeof(float));
    ds->y = loom_malloc(ctx, (size_t)n * (size_t)ylen * sizeof(int32_t));
    if (!ds->x || !ds->y) {
        loom_dataset_destroy(ds);
        return NULL;
    }
    return ds;
}

void loom_dataset_count_classes(loom_dataset *ds)
{
    int32_t top = -1;
    for (int64_t i = 0; i < ds->n * ds->ylen; i++)
        if (ds->y[i] > top)
            top = ds->y[i];
    ds->classes = (int)top + 1;
}

void loom_dataset_destroy(loom_dataset *ds)
{
    if (!ds)
        return;
    loom_ctx *ctx = ds->ctx;
    loom_free(ctx, ds->x, (size_t)ds->n * (size_t)ds->features * sizeof(float));
    loom_free(ctx, ds->y, (size_t)ds->n * (size_t)ds->ylen * sizeof(int32_t));
    loom_free(ctx, ds, sizeof *ds);
}

int64_t loom_dataset_count(const loom_dataset *ds)
{
    return ds ? ds->n : 0;
}

int64_t loom_dataset_features(const loom_dataset *ds)
{
    return ds ? ds->features : 0;
}

int loom_dataset_classes(const loom_dataset *ds)
{
    return ds ? ds->classes : 0;
}

const float *loom_dataset_images(const loom_dataset *ds)
{
    return ds ? ds->x : NULL;
}

const int32_t *loom_dataset_labels(const loom_dataset *ds)
{
    return ds ? ds->y : NULL;
}

int64_t loom_dataset_label_len(const loom_dataset *ds)
{
    return ds ? ds->ylen : 0;
}

loom_status loom_dataset_create(loom_ctx *ctx, int64_t n, int64_t features, const float *x, int64_t label_len,
                                const int32_t *y, loom_dataset **out)
{
    if (!out)
        return LOOM_E_INVALID;
    *out = NULL;
    if (!ctx)
        return LOOM_E_INVALID;
    if (n < 1 || features < 1 || label_len < 1 || !x || !y)
        return loom_fail(ctx, LOOM_E_INVALID, "loom_dataset_create: %lld rows of %lld features and %lld labels (all "
                         "at least 1, data and labels given)", (long long)n, (long long)features, (long long)label_len);
    for (int64_t i = 0; i < n * label_len; i++)
        if (y[i] < 0)
            return loom_fail(ctx, LOOM_E_RANGE, "loom_dataset_create: label %d at index %lld is negative", y[i],
                             (long long)i);
    loom_dataset *ds = loom_dataset_alloc_seq(ctx, n, features, label_len);
    if (!ds)
        return loom_fail(ctx, LOOM_E_OOM, "loom_dataset_create: out of memory for %lld rows of %lld features",
                         (long long)n, (long long)features);
    memcpy(ds->x, x, (size_t)(n * features) * sizeof(float));
    memcpy(ds->y, y, (size_t)(n * label_len) * sizeof(int32_t));
    loom_dataset_count_classes(ds);
    *out = ds;
    return LOOM_OK;
}

void loom_scale_values(loom_scaling how, const float stats[2], float *x, size_t n)
{
    if (how == LOOM_SCALE_UNIT) {
        for (size_t i = 0; i < n; i++)
            x[i] /= 255.0f;
        return;
    }
    float m = stats[0], inv = (float)(1.0 / (double)stats[1]);
    for (size_t i = 0; i < n; i++)
        x[i] = (x[i] - m) * inv;
}

loom_status loom_dataset_scale(loom_dataset *ds, loom_scaling how, const float *stats_in, float *stats_out)
{
    if (!ds)
        return LOOM_E_INVALID;
    loom_ctx *ctx = ds->ctx;
    if (ds->scaled)
        return loom_fail(ctx, LOOM_E_STATE, "loom_dataset_scale: the data set (%lld rows) is already scaled",
                         (long long)ds->n);
    if (how != LOOM_SCALE_UNIT && how != LOOM_SCALE_STANDARD)
        return loom_fail(ctx, LOOM_E_INVALID, "loom_dataset_scale: unknown scaling %d", (int)how);
    size_t total = (size_t)ds->n * (size_t)ds->features;
    float stats[2] = {0.0f, 255.0f};
    if (how == LOOM_SCALE_STANDARD && stats_in) {
        stats[0] = stats_in[0];
        stats[1] = stats_in[1];
        if (!isfinite(stats[0]) || !isfinite(stats[1]) || !(stats[1] > 0))
            return loom_fail(ctx, LOOM_E_INVALID, "loom_dataset_scale: stats (mean %g, std %g) need a finite mean "
                             "and a std > 0", (double)stats[0], (double)stats[1]);
    } else if (how == LOOM_SCALE_STANDARD) {
        if (total == 0)
            return loom_fail(ctx, LOOM_E_INVALID, "loom_dataset_scale: no data to compute mean and std over");
        /* Two passes in double: the one-pass formula loses digits on
         * 47 million pixels of similar size. */
        double sum = 0;
        for (size_t i = 0; i < total; i++)
            sum += ds->x[i];
        double mean = sum / (double)total;
        double ss = 0;
        for (size_t i = 0; i < total; i++) {
            double d = ds->x[i] - mean;
            ss += d * d;
        }
        double sd = sqrt(ss / (double)total);
        /* Constant data is only centred rather than turned into NaN. */
        if (!(sd > 0))
            sd = 1.0;
        /* Rounded to float before use, so the same stats handed back in
         * (test data, a model file's record) scale bit for bit alike. */
        stats[0] = (float)mean;
        stats[1] = (float)sd;
        if (!(stats[1] > 0))
            stats[1] = 1.0f;
    }
    loom_scale_values(how, stats, ds->x, total);
    if (stats_out) {
        stats_out[0] = stats[0];
        stats_out[1] = stats[1];
    }
    ds->scaled = 1;
    ds->scaling = how;
    ds->stats[0] = stats[0];
    ds->stats[1] = stats[1];
    return LOOM_OK;
}

loom_status loom_dataset_subset(const loom_dataset *ds, int64_t start, int64_t count, loom_dataset **out)
{
    if (!ds || !out)
        return LOOM_E_INVALID;
    *out = NULL;
    loom_ctx *ctx = ds->ctx;
    if (start < 0 || count < 0 || start > ds->n || count > ds->n - start)
        return loom_fail(ctx, LOOM_E_RANGE, "loom_dataset_subset: rows [%lld, %lld) outside the data set's %lld",
                         (long long)start, (long long)start + (long long)count, (long long)ds->n);
    loom_dataset *d = loom_dataset_alloc_seq(ctx, count, ds->features, ds->ylen);
    if (!d)
        return loom_fail(ctx, LOOM_E_OOM, "loom_dataset_subset: out of memory for %lld rows of %lld features",
                         (long long)count, (long long)ds->features);
    d->rows = ds->rows;
    d->cols = ds->cols;
    d->scaled = ds->scaled;
    d->scaling = ds->scaling;
    d->stats[0] = ds->stats[0];
    d->stats[1] = ds->stats[1];
    memcpy(d->x, ds->x + (size_t)start * (size_t)ds->features, (size_t)count * (size_t)ds->features * sizeof(float));
    memcpy(d->y, ds->y + start * ds->ylen, (size_t)(count * ds->ylen) * sizeof(int32_t));
    /* A subset keeps the class count of its parent: a small slice that
     * happens to miss the last class must not shrink the model's output. */
    d->classes = ds->classes;
    *out = d;
    return LOOM_OK;
}

/* Rows that stay for training under Keras' rule int(n * (1 - fraction)),
 * computed as Python does it in double. fraction arrives as a float, whose
 * rounding (0.1f = 0.100000001...) must not move the boundary by a row, so
 * a product within that rounding of an integer is taken as the integer. */
static int64_t split_at(int64_t n, float fraction)
{
    double x = (double)n * (1.0 - (double)fraction);
    double r = floor(x + 0.5);
    double tol = (double)n * 1e-7;
    if (fabs(x - r) <= tol)
        return (int64_t)r;
    return (int64_t)floor(x);
}

loom_status loom_dataset_split(const loom_dataset *ds, float fraction, loom_dataset **train, loom_dataset **val)
{
    if (!ds || !train || !val)
        return LOOM_E_INVALID;
    *train = *val = NULL;
    loom_ctx *ctx = ds->ctx;
    if (!(fraction >= 0.0f && fraction < 1.0f))
        return loom_fail(ctx, LOOM_E_RANGE, "loom_dataset_split: fraction %g is outside [0, 1)", (double)fraction);
    int64_t at = split_at(ds->n, fraction);
    if (at <= 0)
        return loom_fail(ctx, LOOM_E_RANGE, "loom_dataset_split: fraction %g of %lld rows leaves none to train on",
                         (double)fraction, (long long)ds->n);
    LOOM_TRY(loom_dataset_subset(ds, 0, at, train));
    loom_status s = loom_dataset_subset(ds, at, ds->n - at, val);
    if (s != LOOM_OK) {
        loom_dataset_destroy(*train);
        *train = NULL;
    }
    return s;
}

/* splitmix64: a tiny generator with a fixed definition, so the order is the
 * same on every machine and C library. */
static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, bound) without modulo bias. */
static uint64_t below(uint64_t *s, uint64_t bound)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t r;
    do
        r = splitmix64(s);
    while (r >= limit);
    return r % bound;
}

loom_status loom_dataset_shuffle(const loom_dataset *ds, uint64_t seed, int64_t epoch, int64_t *order)
{
    if (!ds)
        return LOOM_E_INVALID;
    if (!order)
        return loom_fail(ds->ctx, LOOM_E_INVALID, "loom_dataset_shuffle: NULL order");
    /* Seed and epoch are mixed through the generator so neighbouring seeds
     * or epochs give unrelated orders. */
    uint64_t st = seed;
    uint64_t k = splitmix64(&st) ^ (uint64_t)epoch;
    st = k;
    splitmix64(&st);
    for (int64_t i = 0; i < ds->n; i++)
        order[i] = i;
    for (int64_t i = ds->n - 1; i > 0; i--) {
        int64_t j = (int64_t)below(&st, (uint64_t)i + 1);
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    return LOOM_OK;
}

loom_status loom_dataset_gather(const loom_dataset *ds, const int64_t *order, int64_t n, float *x, int32_t *y)
{
    if (!ds)
        return LOOM_E_INVALID;
    if (n < 0 || (n > 0 && !order))
        return loom_fail(ds->ctx, LOOM_E_INVALID, "loom_dataset_gather: %s", n < 0 ? "n < 0" : "NULL order");
    for (int64_t i = 0; i < n; i++)
        if (order[i] < 0 || order[i] >= ds->n)
            return loom_fail(ds->ctx, LOOM_E_RANGE, "loom_dataset_gather: order[%lld] = %lld is outside [0, %lld)",
                             (long long)i, (long long)order[i], (long long)ds->n);
    size_t f = (size_t)ds->features;
    for (int64_t i = 0; i < n; i++) {
        if (x)
            memcpy(x + (size_t)i * f, ds->x + (size_t)order[i] * f, f * sizeof(float));
        if (y)
            memcpy(y + (size_t)i * (size_t)ds->ylen, ds->y + (size_t)order[i] * (size_t)ds->ylen,
                   (size_t)ds->ylen * sizeof(int32_t));
    }
    return LOOM_OK;
}
