/* Magnitude pruning of a Sequential model's kernels: TF-MOT's polynomial
 * schedule, per-layer or global thresholds, 2:4 semi-structured masks.
 *
 * The masks live in the model's state beside the kernels ("<kernel>/mask",
 * f32 0 / 1) and every training step applies them on the device after the
 * optimizer's update (loom_mask_update, an op each backend runs), so the
 * weights pruned stay zero while fine-tuning. Only the masks'
 * recomputation, at the schedule's frequency, goes through the host: it
 * needs a sort of the magnitudes. */
#include "model.h"
#include "nn_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

loom_prune_schedule loom_prune_schedule_default(void)
{
    loom_prune_schedule s;
    memset(&s, 0, sizeof s);
    s.initial_sparsity = 0.0f;
    s.final_sparsity = 0.8f;
    s.begin_step = 0;
    s.end_step = 1000;
    s.frequency = 100;
    s.power = 3.0f;
    s.scope = LOOM_PRUNE_LAYER;
    s.pattern = LOOM_PRUNE_UNSTRUCTURED;
    return s;
}

/* TF-MOT PolynomialDecay: p = clamp((step - begin) / (end - begin), 0, 1),
 * sparsity = final + (initial - final) (1 - p)^power. */
float loom_prune_sparsity_at(const loom_prune_schedule *s, int64_t step)
{
    if (!s)
        return 0.0f;
    double p = s->end_step > s->begin_step ? (double)(step - s->begin_step) / (double)(s->end_step - s->begin_step)
                                           : (step >= s->begin_step ? 1.0 : 0.0);
    p = p < 0 ? 0 : p > 1 ? 1 : p;
    return (float)(s->final_sparsity + (s->initial_sparsity - s->final_sparsity) * pow(1.0 - p, s->power));
}

int loom_prune_due(const loom_prune_schedule *s, int64_t step)
{
    if (!s || s->frequency <= 0)
        return 0;
    /* the last step of the range prunes too, so the final sparsity is reached */
    return step >= s->begin_step && step <= s->end_step &&
           ((step - s->begin_step) % s->frequency == 0 || step == s->end_step);
}

static const char *schedule_problem(const loom_prune_schedule *s, char *buf, size_t n)
{
    if (!(s->initial_sparsity >= 0 && s->initial_sparsity < 1 && s->final_sparsity >= 0 && s->final_sparsity < 1))
        snprintf(buf, n, "sparsities %g -> %g (each in [0, 1))", (double)s->initial_sparsity,
                 (double)s->final_sparsity);
    else if (s->begin_step < 0 || s->end_step < s->begin_step)
        snprintf(buf, n, "steps %lld to %lld (0 <= begin <= end)", (long long)s->begin_step, (long long)s->end_step);
    else if (s->frequency < 1)
        snprintf(buf, n, "frequency %lld (>= 1)", (long long)s->frequency);
    else if (!(s->power > 0) || !isfinite(s->power))
        snprintf(buf, n, "power %g (> 0)", (double)s->power);
    else if ((unsigned)s->scope > LOOM_PRUNE_GLOBAL || (unsigned)s->pattern > LOOM_PRUNE_2_4)
        snprintf(buf, n, "scope %d / pattern %d unknown", (int)s->scope, (int)s->pattern);
    else
        return NULL;
    return buf;
}

/* ---- which tensors --------------------------------------------------------------- */

int loom_model_prunable(const loom_sequential *m, const model_param *p, int li)
{
    (void)m, (void)li;
    return p->trainable && p->ndim >= 2 && p->init == PINIT_KERNEL;
}

void loom_model_mask_name(const char *param, char *buf, size_t n)
{
    snprintf(buf, n, "%s/mask", param);
}

/* One kernel on the host: its weights, where its input dimension runs
 * (2:4 groups), and its mask. */
typedef struct kernel_buf {
    model_param p;
    int li;
    int64_t count;
    /* groups of 4 along the input: the weights of output o, input i at
     * o * out_stride + i * in_stride; conv2d's input is C KH KW, row-major
     * per filter; a dense kernel [in, out] has its inputs a column apart */
    int64_t outs, ins, in_stride, out_stride;
    float *w, *mask;
} kernel_buf;

typedef struct kernel_set {
    kernel_buf *k;
    int n;
    loom_ctx *ctx;
} kernel_set;

static void free_set(kernel_set *ks)
{
    for (int i = 0; i < ks->n; i++) {
        loom_free(ks->ctx, ks->k[i].w, (size_t)ks->k[i].count * sizeof(float));
        loom_free(ks->ctx, ks->k[i].mask, (size_t)ks->k[i].count * sizeof(float));
    }
    loom_free(ks->ctx, ks->k, (size_t)ks->n * sizeof *ks->k);
    ks->k = NULL;
    ks->n = 0;
}

static loom_status read_set(loom_sequential *m, kernel_set *ks)
{
    memset(ks, 0, sizeof *ks);
    ks->ctx = m->ctx;
    int np = loom_model_param_count(m), cnt = 0;
    model_param p;
    int li;
    for (int k = 0; k < np; k++)
        if (loom_model_param(m, k, &p, &li) && loom_model_prunable(m, &p, li))
            cnt++;
    if (!cnt)
        return loom_fail(m->ctx, LOOM_E_INVALID, "prune: the model has no kernel to prune");
    ks->k = loom_calloc(m->ctx, (size_t)cnt, sizeof *ks->k);
    if (!ks->k)
        return loom_fail(m->ctx, LOOM_E_OOM, "prune: out of memory");
    for (int k = 0; k < np; k++) {
        if (!loom_model_param(m, k, &p, &li) || !loom_model_prunable(m, &p, li))
            continue;
        kernel_buf *kb = &ks->k[ks->n++];
        kb->p = p;
        kb->li = li;
        kb->count = 1;
        for (int d = 0; d < p.ndim; d++)
            kb->count *= p.shape[d];
        if (m->layers[li].kind == LAYER_CONV2D) {
            kb->outs = p.shape[0];
            kb->ins = kb->count / p.shape[0];
            kb->in_stride = 1;
            kb->out_stride = kb->ins;
        } else {
            kb->ins = p.shape[0];
            kb->outs = kb->count / p.shape[0];
            kb->in_stride = kb->outs;
            kb->out_stride = 1;
        }
        size_t bytes = (size_t)kb->count * sizeof(float);
        kb->w = loom_malloc(m->ctx, bytes);
        kb->mask = loom_malloc(m->ctx, bytes);
        if (!kb->w || !kb->mask) {
            free_set(ks);
            return loom_fail(m->ctx, LOOM_E_OOM, "prune: out of memory for %s", p.name);
        }
        loom_status s = loom_state_read(m->st, p.name, kb->w, bytes);
        if (s != LOOM_OK) {
            free_set(ks);
            return s;
        }
    }
    return LOOM_OK;
}

/* ---- masks -------------------------------------------------------------------------- */

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* Zeroes exactly floor(sparsity * total) of the weights of kernels
 * [first, last): the smallest magnitudes (ties in order of position). */
static loom_status mask_magnitude(loom_sequential *m, kernel_set *ks, int first, int last, float sparsity)
{
    int64_t total = 0;
    for (int i = first; i < last; i++)
        total += ks->k[i].count;
    int64_t drop = (int64_t)floor((double)sparsity * (double)total);
    for (int i = first; i < last; i++)
        for (int64_t e = 0; e < ks->k[i].count; e++)
            ks->k[i].mask[e] = 1.0f;
    if (drop <= 0)
        return LOOM_OK;
    size_t bytes = (size_t)total * sizeof(float);
    float *mag = loom_malloc(m->ctx, bytes);
    if (!mag)
        return loom_fail(m->ctx, LOOM_E_OOM, "prune: out of memory for %lld magnitudes", (long long)total);
    int64_t j = 0;
    for (int i = first; i < last; i++)
        for (int64_t e = 0; e < ks->k[i].count; e++)
            mag[j++] = fabsf(ks->k[i].w[e]);
    qsort(mag, (size_t)total, sizeof *mag, cmp_float);
    float t = mag[drop - 1];
    loom_free(m->ctx, mag, bytes);
    int64_t below = 0;
    for (int i = first; i < last; i++)
        for (int64_t e = 0; e < ks->k[i].count; e++)
            if (fabsf(ks->k[i].w[e]) < t) {
                ks->k[i].mask[e] = 0.0f;
                below++;
            }
    for (int i = first; i < last && below < drop; i++)
        for (int64_t e = 0; e < ks->k[i].count && below < drop; e++)
            if (fabsf(ks->k[i].w[e]) == t) {
                ks->k[i].mask[e] = 0.0f;
                below++;
            }
    return LOOM_OK;
}

/* 2:4: in each group of 4 consecutive inputs of each output, the 2
 * smallest magnitudes go (the first on ties); a tail of fewer stays. */
static void mask_2_4(kernel_buf *kb)
{
    for (int64_t e = 0; e < kb->count; e++)
        kb->mask[e] = 1.0f;
    for (int64_t o = 0; o < kb->outs; o++)
        for (int64_t g = 0; g + 4 <= kb->ins; g += 4) {
            int64_t at[4];
            float a[4];
            for (int q = 0; q < 4; q++) {
                at[q] = o * kb->out_stride + (g + q) * kb->in_stride;
                a[q] = fabsf(kb->w[at[q]]);
            }
            for (int drop = 0; drop < 2; drop++) {
                int best = -1;
                for (int q = 0; q < 4; q++)
                    if (kb->mask[at[q]] != 0.0f && (best < 0 || a[q] < a[best]))
                        best = q;
                kb->mask[at[best]] = 0.0f;
            }
        }
}

/* Computes the masks of every kernel, applies them to the weights and
 * writes both back (the masks only when pruning is armed). */
static loom_status prune_to(loom_sequential *m, float sparsity, loom_prune_scope scope, loom_prune_pattern pattern)
{
    kernel_set ks;
    LOOM_TRY(read_set(m, &ks));
    loom_status s = LOOM_OK;
    if (pattern == LOOM_PRUNE_2_4)
        for (int i = 0; i < ks.n; i++)
            mask_2_4(&ks.k[i]);
    else if (scope == LOOM_PRUNE_GLOBAL)
        s = mask_magnitude(m, &ks, 0, ks.n, sparsity);
    else
        for (int i = 0; i < ks.n && s == LOOM_OK; i++)
            s = mask_magnitude(m, &ks, i, i + 1, sparsity);
    for (int i = 0; i < ks.n && s == LOOM_OK; i++) {
        kernel_buf *kb = &ks.k[i];
        for (int64_t e = 0; e < kb->count; e++)
            kb->w[e] *= kb->mask[e];
        s = loom_state_write(m->st, kb->p.name, LOOM_F32, kb->p.ndim, kb->p.shape, kb->w);
        if (s == LOOM_OK && m->prune_on) {
            char mn[160];
            loom_model_mask_name(kb->p.name, mn, sizeof mn);
            s = loom_state_write(m->st, mn, LOOM_F32, kb->p.ndim, kb->p.shape, kb->mask);
        }
    }
    free_set(&ks);
    return s;
}

loom_status loom_sequential_prune(loom_sequential *m, float sparsity, loom_prune_scope scope,
                                  loom_prune_pattern pattern)
{
    if (!m)
        return LOOM_E_INVALID;
    if (!m->compiled)
        return loom_fail(m->ctx, LOOM_E_STATE, "prune: compile (or load) the model first");
    if (!(sparsity >= 0.0f && sparsity < 1.0f) || (unsigned)scope > LOOM_PRUNE_GLOBAL ||
        (unsigned)pattern > LOOM_PRUNE_2_4)
        return loom_fail(m->ctx, LOOM_E_INVALID, "prune: sparsity %g (in [0, 1)), scope %d, pattern %d",
                         (double)sparsity, (int)scope, (int)pattern);
    return prune_to(m, sparsity, scope, pattern);
}

loom_status loom_sequential_set_pruning(loom_sequential *m, const loom_prune_schedule *sch)
{
    if (!m)
        return LOOM_E_INVALID;
    if (!m->compiled)
        return loom_fail(m->ctx, LOOM_E_STATE, "loom_sequential_set_pruning: compile (or load) the model first");
    char why[160];
    if (sch && schedule_problem(sch, why, sizeof why))
        return loom_fail(m->ctx, LOOM_E_INVALID, "loom_sequential_set_pruning: %s", why);
    /* the programs that bind the masks go before the masks change */
    loom_model_drop_train_progs(m);
    int np = loom_model_param_count(m);
    model_param p;
    int li;
    for (int k = 0; k < np; k++) {
        if (!loom_model_param(m, k, &p, &li) || !loom_model_prunable(m, &p, li))
            continue;
        char mn[160];
        loom_model_mask_name(p.name, mn, sizeof mn);
        if (!sch) {
            if (m->prune_on)
                LOOM_TRY(loom_state_remove(m->st, mn));
            continue;
        }
        /* ones: nothing pruned until the schedule's first turn (existing
         * zeros, e.g. of a pruned model fine-tuned again, are kept by the
         * magnitude order, not by the mask) */
        int64_t count = 1;
        for (int d = 0; d < p.ndim; d++)
            count *= p.shape[d];
        float *ones = loom_malloc(m->ctx, (size_t)count * sizeof *ones);
        if (!ones)
            return loom_fail(m->ctx, LOOM_E_OOM, "loom_sequential_set_pruning: out of memory for %s", mn);
        for (int64_t e = 0; e < count; e++)
            ones[e] = 1.0f;
        loom_status s = loom_state_write(m->st, mn, LOOM_F32, p.ndim, p.shape, ones);
        loom_free(m->ctx, ones, (size_t)count * sizeof *ones);
        LOOM_TRY(s);
    }
    m->prune_on = sch != NULL;
    if (sch)
        m->prune = *sch;
    return LOOM_OK;
}

loom_status loom_model_prune_step(loom_sequential *m)
{
    if (!m->prune_on)
        return LOOM_OK;
    int64_t step = loom_state_step(m->st);
    if (!loom_prune_due(&m->prune, step))
        return LOOM_OK;
    return prune_to(m, loom_prune_sparsity_at(&m->prune, step), m->prune.scope, m->prune.pattern);
}

loom_status loom_model_build_masks(loom_sequential *m, loom_graph *g)
{
    int np = loom_model_param_count(m);
    model_param p;
    int li;
    for (int k = 0; k < np; k++) {
        if (!loom_model_param(m, k, &p, &li) || !loom_model_prunable(m, &p, li))
            continue;
        loom_tensor w = loom_graph_find(g, p.name);
        if (!w.id)
            continue;
        char mn[160];
        loom_model_mask_name(p.name, mn, sizeof mn);
        LOOM_TRY(loom_mask_update(g, w, loom_param(g, mn, LOOM_F32, p.ndim, p.shape, 0)));
    }
    return loom_graph_status(g);
}

/* ---- what a model holds ---------------------------------------------------------------- */

loom_status loom_sequential_sparsity(loom_sequential *m, double *sparsity, int64_t *weights)
{
    if (!m)
        return LOOM_E_INVALID;
    if (!m->compiled)
        return loom_fail(m->ctx, LOOM_E_STATE, "sparsity: compile (or load) the model first");
    kernel_set ks;
    LOOM_TRY(read_set(m, &ks));
    int64_t zeros = 0, total = 0;
    for (int i = 0; i < ks.n; i++) {
        total += ks.k[i].count;
        for (int64_t e = 0; e < ks.k[i].count; e++)
            zeros += ks.k[i].w[e] == 0.0f;
    }
    free_set(&ks);
    if (sparsity)
        *sparsity = total ? (double)zeros / (double)total : 0.0;
    if (weights)
        *weights = total;
    return LOOM_OK;
}

int loom_sequential_is_2_4(loom_sequential *m)
{
    if (!m || !m->compiled)
        return 0;
    kernel_set ks;
    if (read_set(m, &ks) != LOOM_OK)
        return 0;
    int ok = 1;
    for (int i = 0; i < ks.n && ok; i++) {
        kernel_buf *kb = &ks.k[i];
        for (int64_t o = 0; o < kb->outs && ok; o++)
            for (int64_t g = 0; g + 4 <= kb->ins && ok; g += 4) {
                int z = 0;
                for (int q = 0; q < 4; q++)
                    z += kb->w[o * kb->out_stride + (g + q) * kb->in_stride] == 0.0f;
                ok = z >= 2;
            }
    }
    free_set(&ks);
    return ok;
}
