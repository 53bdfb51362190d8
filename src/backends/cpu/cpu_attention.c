/* Fused attention on the CPU, the flash-attention scheme: the scores of a
 * tile of BR queries against BC keys at a time (OpenBLAS GEMMs), a running
 * max and sum per query row, never the whole N x N matrix. The backward
 * pass recomputes the tiles from the row statistics (logsumexp, and
 * D = sum(do * o)) that LOOM_OP_ATTENTION_STATS computes again too. */
#include "cpu_kernels.h"
#include "../common/layout.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#define BR 64
#define BC 64
#define DMAX 256

/* One (batch, query head) pair's tensors. */
typedef struct head {
    const loom_attn_dims *a;
    const float *q, *k, *v, *mask;  /* q rows at a->qs[2], k and v at a->ks[2] */
    int64_t b, h;
} head;

static head head_of(const loom_attn_dims *a, const float *q, const float *k, const float *v, const float *mask,
                    int64_t b, int64_t h)
{
    int64_t hk = h / (a->hq / a->hkv);
    head t = {a, q + b * a->qs[0] + h * a->qs[1], k + b * a->ks[0] + hk * a->ks[1],
              v ? v + b * a->ks[0] + hk * a->ks[1] : NULL,
              mask ? mask + b * a->ms[0] + h * a->ms[1] : NULL, b, h};
    return t;
}

/* S[r][c] = scale q[i0 + r] . k[j0 + c] + mask, -inf where the key is
 * not seen (causal). */
static void scores(const head *t, int64_t i0, int nr, int64_t j0, int nc, float *s)
{
    const loom_attn_dims *a = t->a;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, nc, (int)a->d, a->scale, t->q + i0 * a->qs[2],
                (int)a->qs[2], t->k + j0 * a->ks[2], (int)a->ks[2], 0.0f, s, BC);
    for (int r = 0; r < nr; r++) {
        int64_t last = loom_attn_last_key(a, i0 + r);
        for (int c = 0; c < nc; c++) {
            float *e = &s[r * BC + c];
            if (j0 + c > last)
                *e = -INFINITY;
            else if (t->mask)
                *e += t->mask[(i0 + r) * a->ms[2] + (j0 + c) * a->ms[3]];
        }
    }
}

/* The key tiles a query tile may see. */
static int64_t key_end(const loom_attn_dims *a, int64_t i0, int nr)
{
    return loom_attn_last_key(a, i0 + nr - 1) + 1;
}

/* o (q's layout) of one head, or with stats set only the log-sum-exp of
 * each row (+inf for a row that sees no key) into stats[2 i]. */
static void forward_head(const head *t, float *o, float *lse)
{
    const loom_attn_dims *a = t->a;
    float s[BR * BC], acc[BR * DMAX], m[BR], l[BR];
    int64_t d = a->d;
    for (int64_t i0 = 0; i0 < a->nq; i0 += BR) {
        int nr = (int)(a->nq - i0 < BR ? a->nq - i0 : BR);
        for (int r = 0; r < nr; r++) {
            m[r] = -INFINITY;
            l[r] = 0;
        }
        memset(acc, 0, sizeof(float) * (size_t)(nr * d));
        int64_t kend = key_end(a, i0, nr);
        for (int64_t j0 = 0; j0 < kend; j0 += BC) {
            int nc = (int)(kend - j0 < BC ? kend - j0 : BC);
            scores(t, i0, nr, j0, nc, s);
            for (int r = 0; r < nr; r++) {
                float mt = m[r];
                for (int c = 0; c < nc; c++)
                    mt = s[r * BC + c] > mt ? s[r * BC + c] : mt;
                if (mt == -INFINITY) {
                    for (int c = 0; c < nc; c++)
                        s[r * BC + c] = 0;
                    continue;
                }
                float corr = expf(m[r] - mt), sum = 0;
                for (int c = 0; c < nc; c++) {
                    float p = expf(s[r * BC + c] - mt);
                    s[r * BC + c] = p;
                    sum += p;
                }
                l[r] = l[r] * corr + sum;
                m[r] = mt;
                if (!lse)
                    for (int64_t e = 0; e < d; e++)
                        acc[r * d + e] *= corr;
            }
            if (!lse)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, (int)d, nc, 1.0f, s, BC,
                            t->v + j0 * a->ks[2], (int)a->ks[2], 1.0f, acc, (int)d);
        }
        for (int r = 0; r < nr; r++) {
            if (lse) {
                lse[(i0 + r) * 2] = m[r] == -INFINITY ? INFINITY : m[r] + logf(l[r]);
                continue;
            }
            float inv = l[r] > 0 ? 1.0f / l[r] : 0.0f;
            float *row = o + (i0 + r) * a->qs[2];
            for (int64_t e = 0; e < d; e++)
                row[e] = acc[r * d + e] * inv;
        }
    }
}

/* P = exp(S - L), 0 where masked or for a row that sees nothing (L +inf). */
static void probs(float *s, int nr, int nc, const float *stats, int64_t i0)
{
    for (int r = 0; r < nr; r++) {
        float L = stats[(i0 + r) * 2];
        for (int c = 0; c < nc; c++)
            s[r * BC + c] = expf(s[r * BC + c] - L);
    }
}

/* dS = P (dP - D) in place of dP. */
static void dscores(const float *p, float *dp, int nr, int nc, const float *stats, int64_t i0)
{
    for (int r = 0; r < nr; r++) {
        float dd = stats[(i0 + r) * 2 + 1];
        for (int c = 0; c < nc; c++)
            dp[r * BC + c] = p[r * BC + c] * (dp[r * BC + c] - dd);
    }
}

/* dq of one head: scale sum_j dS_ij k_j. */
static void grad_q_head(const head *t, const float *dout, const float *stats, float *dq)
{
    const loom_attn_dims *a = t->a;
    float s[BR * BC], dp[BR * BC], acc[BR * DMAX];
    int64_t d = a->d;
    for (int64_t i0 = 0; i0 < a->nq; i0 += BR) {
        int nr = (int)(a->nq - i0 < BR ? a->nq - i0 : BR);
        memset(acc, 0, sizeof(float) * (size_t)(nr * d));
        int64_t kend = key_end(a, i0, nr);
        for (int64_t j0 = 0; j0 < kend; j0 += BC) {
            int nc = (int)(kend - j0 < BC ? kend - j0 : BC);
            scores(t, i0, nr, j0, nc, s);
            probs(s, nr, nc, stats, i0);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, nc, (int)d, 1.0f, dout + i0 * a->qs[2],
                        (int)a->qs[2], t->v + j0 * a->ks[2], (int)a->ks[2], 0.0f, dp, BC);
            dscores(s, dp, nr, nc, stats, i0);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, (int)d, nc, a->scale, dp, BC,
                        t->k + j0 * a->ks[2], (int)a->ks[2], 1.0f, acc, (int)d);
        }
        for (int r = 0; r < nr; r++)
            memcpy(dq + (i0 + r) * a->qs[2], acc + r * d, sizeof(float) * (size_t)d);
    }
}

/* dk (want_k) or dv of one key-value head: the sums over every query head
 * of its group. dv_j = sum_i P_ij do_i, dk_j = scale sum_i dS_ij q_i. */
static void grad_kv_head(const loom_attn_dims *a, const float *q, const float *k, const float *v, const float *mask,
                         const float *dout, const float *stats, int64_t b, int64_t hk, int want_k, float *dst)
{
    float s[BR * BC], dp[BR * BC], acc[BC * DMAX];
    int64_t d = a->d, group = a->hq / a->hkv;
    for (int64_t j0 = 0; j0 < a->nk; j0 += BC) {
        int nc = (int)(a->nk - j0 < BC ? a->nk - j0 : BC);
        memset(acc, 0, sizeof(float) * (size_t)(nc * d));
        for (int64_t h = hk * group; h < (hk + 1) * group; h++) {
            head t = head_of(a, q, k, v, mask, b, h);
            const float *hdo = dout + b * a->qs[0] + h * a->qs[1], *hst = stats + (b * a->hq + h) * a->nq * 2;
            for (int64_t i0 = 0; i0 < a->nq; i0 += BR) {
                int nr = (int)(a->nq - i0 < BR ? a->nq - i0 : BR);
                if (key_end(a, i0, nr) <= j0)
                    continue; /* the tile's queries see none of these keys */
                scores(&t, i0, nr, j0, nc, s);
                probs(s, nr, nc, hst, i0);
                if (!want_k) {
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nc, (int)d, nr, 1.0f, s, BC,
                                hdo + i0 * a->qs[2], (int)a->qs[2], 1.0f, acc, (int)d);
                    continue;
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, nc, (int)d, 1.0f, hdo + i0 * a->qs[2],
                            (int)a->qs[2], t.v + j0 * a->ks[2], (int)a->ks[2], 0.0f, dp, BC);
                dscores(s, dp, nr, nc, hst, i0);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nc, (int)d, nr, a->scale, dp, BC,
                            t.q + i0 * a->qs[2], (int)a->qs[2], 1.0f, acc, (int)d);
            }
        }
        float *base = dst + b * a->ks[0] + hk * a->ks[1];
        for (int c = 0; c < nc; c++)
            memcpy(base + (j0 + c) * a->ks[2], acc + c * d, sizeof(float) * (size_t)d);
    }
}

void loom_cpu_attention(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    const loom_node *nd = x->node;
    int code = x->def->code, has_mask = nd->attr.has_mask;
    /* the inputs by kernel: fwd q k v [m]; stats q k o do [m]; grads do q k v stats [m] */
    int qi = code == LOOM_ATTN_FWD || code == LOOM_ATTN_STATS ? 0 : 1;
    const float *q = in[qi], *k = in[qi + 1];
    const float *mask = has_mask ? in[x->nin - 1] : NULL;
    loom_attn_dims a = loom_attn_dims_of(nd, x->in[qi]->node, x->in[qi + 1]->node,
                                         has_mask ? x->in[x->nin - 1]->node : NULL);
    float *y = out;
    if (code == LOOM_ATTN_FWD) {
        for (int64_t b = 0; b < a.b; b++)
            for (int64_t h = 0; h < a.hq; h++) {
                head t = head_of(&a, q, k, in[2], mask, b, h);
                forward_head(&t, y + b * a.qs[0] + h * a.qs[1], NULL);
            }
        return;
    }
    if (code == LOOM_ATTN_STATS) {
        const float *o = in[2], *dout = in[3];
        for (int64_t b = 0; b < a.b; b++)
            for (int64_t h = 0; h < a.hq; h++) {
                head t = head_of(&a, q, k, NULL, mask, b, h);
                float *st = y + (b * a.hq + h) * a.nq * 2;
                forward_head(&t, NULL, st);
                const float *ho = o + b * a.qs[0] + h * a.qs[1], *hd = dout + b * a.qs[0] + h * a.qs[1];
                for (int64_t i = 0; i < a.nq; i++) {
                    double dd = 0;
                    for (int64_t e = 0; e < a.d; e++)
                        dd += (double)ho[i * a.qs[2] + e] * hd[i * a.qs[2] + e];
                    st[i * 2 + 1] = (float)dd;
                }
            }
        return;
    }
    const float *dout = in[0], *v = in[3], *stats = in[4];
    if (code == LOOM_ATTN_DQ) {
        for (int64_t b = 0; b < a.b; b++)
            for (int64_t h = 0; h < a.hq; h++) {
                head t = head_of(&a, q, k, v, mask, b, h);
                grad_q_head(&t, dout + b * a.qs[0] + h * a.qs[1], stats + (b * a.hq + h) * a.nq * 2,
                            y + b * a.qs[0] + h * a.qs[1]);
            }
        return;
    }
    for (int64_t b = 0; b < a.b; b++)
        for (int64_t hk = 0; hk < a.hkv; hk++)
            grad_kv_head(&a, q, k, v, mask, dout, stats, b, hk, code == LOOM_ATTN_DK, y);
}
