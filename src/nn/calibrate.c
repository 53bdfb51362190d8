/* Calibration of int8 activations: histograms of |x| over 2048 bins and
 * the three ways of choosing a clipping threshold from one (min-max, a
 * percentile, and TensorRT's KL-divergence search, as ncnn's ncnn2table
 * also does it). Pure host code over include/loom.h. */
#include "loom.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const method_names[] = {"minmax", "percentile", "kl"};

const char *loom_calib_method_name(loom_calib_method m)
{
    return (unsigned)m < 3 ? method_names[m] : "?";
}

int loom_calib_method_by_name(const char *name)
{
    for (int i = 0; name && i < 3; i++)
        if (!strcmp(name, method_names[i]))
            return i;
    return -1;
}

void loom_calib_hist_add(loom_calib_hist *h, const float *x, size_t n)
{
    double w = h->absmax / LOOM_CALIB_BINS;
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        if (!isfinite(v))
            continue; /* a NaN tells nothing of the range */
        if (h->count == 0 || v < h->min)
            h->min = v;
        if (h->count == 0 || v > h->max)
            h->max = v;
        h->count++;
        double a = fabs((double)v);
        int64_t b = w > 0 ? (int64_t)(a / w) : 0;
        h->bins[b < LOOM_CALIB_BINS ? b : LOOM_CALIB_BINS - 1]++;
    }
}

/* KL(p || q) of two unnormalized distributions over n bins; q is zero
 * only where p is (the expansion below keeps it so). */
static double kl_div(const double *p, const double *q, int n)
{
    double sp = 0, sq = 0;
    for (int i = 0; i < n; i++) {
        sp += p[i];
        sq += q[i];
    }
    if (sp <= 0 || sq <= 0)
        return INFINITY;
    double d = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] <= 0)
            continue;
        double pi = p[i] / sp, qi = q[i] / sq;
        d += qi > 0 ? pi * log(pi / qi) : pi * log(pi / 1e-12);
    }
    return d;
}

int loom_calib_kl_bins(const uint64_t *bins, int nbins, int levels)
{
    if (!bins || levels < 1 || nbins < levels)
        return 0;
    uint64_t total = 0;
    int last = -1;
    for (int i = 0; i < nbins; i++) {
        total += bins[i];
        if (bins[i])
            last = i;
    }
    if (!total)
        return 0;
    double *p = malloc((size_t)nbins * sizeof *p), *q = malloc((size_t)nbins * sizeof *q);
    if (!p || !q) {
        free(p);
        free(q);
        return last + 1 > levels ? last + 1 : levels; /* min-max, as if without the search */
    }
    int best = nbins;
    double best_kl = INFINITY;
    /* the tail beyond bin i, for each i, from the top down */
    for (int i = levels; i <= nbins; i++) {
        double tail = 0;
        for (int k = i; k < nbins; k++)
            tail += (double)bins[k];
        /* p: the reference clipped to i bins, the outliers in the last */
        for (int k = 0; k < i; k++)
            p[k] = (double)bins[k];
        p[i - 1] += tail;
        /* q: the first i bins merged into levels groups (the last takes the
         * remainder), each group's mass spread over its nonzero bins */
        int merged = i / levels;
        for (int j = 0; j < levels; j++) {
            int s = j * merged, e = j == levels - 1 ? i : s + merged;
            double sum = 0;
            int nz = 0;
            for (int k = s; k < e; k++) {
                sum += (double)bins[k];
                nz += bins[k] != 0;
            }
            for (int k = s; k < e; k++)
                q[k] = bins[k] && nz ? sum / nz : 0.0;
        }
        /* where p is the folded tail but the bin itself was empty, q
         * would be 0: give it the smallest mass so the divergence stays
         * finite (and large) */
        double d = kl_div(p, q, i);
        if (d < best_kl - 1e-12) {
            best_kl = d;
            best = i;
        }
    }
    free(p);
    free(q);
    return best;
}

loom_status loom_calib_threshold(loom_ctx *ctx, const loom_calib_hist *h, loom_calib_method m, double percentile,
                                 double *threshold)
{
    if (!h || !threshold)
        return loom_fail(ctx, LOOM_E_INVALID, "calibration: NULL histogram or threshold");
    if (!h->count || !(h->absmax > 0))
        return loom_fail(ctx, LOOM_E_INVALID, "calibration: an empty histogram (no finite value seen, or range %g)",
                         h->absmax);
    double w = h->absmax / LOOM_CALIB_BINS, amax = fmax(fabs(h->min), fabs(h->max));
    switch (m) {
    case LOOM_CALIB_MINMAX:
        *threshold = amax;
        break;
    case LOOM_CALIB_PERCENTILE: {
        double pct = percentile > 0 ? percentile : 99.99;
        if (!(pct > 0 && pct <= 100))
            return loom_fail(ctx, LOOM_E_INVALID, "calibration: percentile %g is not in (0, 100]", pct);
        double want = pct / 100.0 * (double)h->count, cum = 0;
        int b = 0;
        for (; b < LOOM_CALIB_BINS - 1; b++) {
            cum += (double)h->bins[b];
            if (cum >= want)
                break;
        }
        *threshold = fmin((b + 1) * w, amax);
        break;
    }
    case LOOM_CALIB_KL: {
        int b = loom_calib_kl_bins(h->bins, LOOM_CALIB_BINS, 128);
        *threshold = fmin(b * w, amax);
        break;
    }
    default:
        return loom_fail(ctx, LOOM_E_INVALID, "calibration: method %d (minmax, percentile or kl)", (int)m);
    }
    if (!(*threshold > 0))
        *threshold = amax > 0 ? amax : w; /* all zeros: any scale does */
    return LOOM_OK;
}
