/* The constructors of the sequence-model ops: batched matmul, layer and
 * RMS norm, take (embedding), gather and scatter-add, rotary embeddings,
 * fused attention and the unfused composition it is checked against.
 * Shape and dtype inference; a bad shape sets the graph's sticky error
 * naming the op and the shapes. */
#include "graph.h"
#include "op_table.h"
#include "../common/checked.h"

#include <math.h>
#include <string.h>

#define SHAPE(buf, nd) loom_shape_str(buf, sizeof buf, (nd)->ndim, (nd)->shape)

/* Every tensor of one op is a float of one dtype. */
static int floats_alike(loom_graph *g, const char *op, int n, const loom_tensor *ts)
{
    const loom_node *n0 = loom_node_of(g, ts[0]);
    for (int i = 0; i < n; i++) {
        const loom_node *nd = loom_node_of(g, ts[i]);
        if (!loom_dtype_is_float(nd->dtype)) {
            loom_graph_fail(g, LOOM_E_DTYPE, "%s: input \"%s\" is %s, a float dtype is needed", op, nd->name,
                            loom_dtype_name(nd->dtype));
            return 0;
        }
        if (nd->dtype != n0->dtype) {
            loom_graph_fail(g, LOOM_E_DTYPE, "%s: inputs \"%s\" (%s) and \"%s\" (%s) differ in dtype (loom_cast one)",
                            op, n0->name, loom_dtype_name(n0->dtype), nd->name, loom_dtype_name(nd->dtype));
            return 0;
        }
    }
    return 1;
}

static int axis_of(loom_graph *g, const char *op, const loom_node *nx, int axis)
{
    int a = axis < 0 ? axis + nx->ndim : axis;
    if (a < 0 || a >= nx->ndim) {
        char s[96];
        loom_graph_fail(g, LOOM_E_SHAPE, "%s: axis %d out of range for \"%s\" %s", op, axis, nx->name, SHAPE(s, nx));
        return -1;
    }
    return a;
}

static int want_indices(loom_graph *g, const char *op, const loom_node *ni)
{
    if (ni->dtype != LOOM_I32) {
        loom_graph_fail(g, LOOM_E_DTYPE, "%s: indices \"%s\" are %s, expected i32", op, ni->name,
                        loom_dtype_name(ni->dtype));
        return 0;
    }
    return 1;
}

/* ---- batched matmul ------------------------------------------------------------ */

loom_tensor loom_matmul_nd(loom_graph *g, loom_tensor a, loom_tensor b, int ta, int tb)
{
    loom_tensor ins[2] = {a, b};
    if (!loom_graph_check_inputs(g, "matmul", 2, ins) || !floats_alike(g, "matmul", 2, ins))
        return LOOM_NONE;
    const loom_node *na = loom_node_of(g, a), *nb = loom_node_of(g, b);
    char sa[96], sb[96];
    if (na->ndim < 2 || nb->ndim < 2)
        return loom_graph_fail(g, LOOM_E_SHAPE, "matmul: operands must be 2-D to 4-D, got %s and %s", SHAPE(sa, na),
                               SHAPE(sb, nb));
    int ra = na->ndim, rb = nb->ndim;
    int64_t m = ta ? na->shape[ra - 1] : na->shape[ra - 2], ka = ta ? na->shape[ra - 2] : na->shape[ra - 1];
    int64_t kb = tb ? nb->shape[rb - 1] : nb->shape[rb - 2], n = tb ? nb->shape[rb - 2] : nb->shape[rb - 1];
    if (ka != kb)
        return loom_graph_fail(g, LOOM_E_SHAPE, "matmul: inner dims differ: %s%s x %s%s (K %lld vs %lld)",
                               SHAPE(sa, na), ta ? "^T" : "", SHAPE(sb, nb), tb ? "^T" : "", (long long)ka,
                               (long long)kb);
    /* [..., M, K] x [K, N]: one GEMM over the rows of every batch (which
     * the fusion pass can give a bias), not a batch of small ones. */
    if (rb == 2 && !ta) {
        int64_t rows = na->numel / ka, s2[2] = {rows, ka}, out[LOOM_MAX_DIMS];
        for (int i = 0; i < ra - 1; i++)
            out[i] = na->shape[i];
        out[ra - 1] = n;
        loom_tensor y = loom_matmul(g, loom_reshape(g, a, 2, s2), b, 0, tb);
        return loom_reshape(g, y, ra, out);
    }
    int64_t ba[LOOM_MAX_DIMS], bb[LOOM_MAX_DIMS], bo[LOOM_MAX_DIMS];
    int nbo = 0;
    memcpy(ba, na->shape, sizeof(int64_t) * (size_t)(ra - 2));
    memcpy(bb, nb->shape, sizeof(int64_t) * (size_t)(rb - 2));
    if (!loom_broadcast_shape(ra - 2, ba, rb - 2, bb, &nbo, bo))
        return loom_graph_fail(g, LOOM_E_SHAPE, "matmul: the batch dims of %s and %s do not broadcast", SHAPE(sa, na),
                               SHAPE(sb, nb));
    int64_t shape[LOOM_MAX_DIMS];
    memcpy(shape, bo, sizeof(int64_t) * (size_t)nbo);
    shape[nbo] = m;
    shape[nbo + 1] = n;
    if ((uint64_t)m > UINT32_MAX || (uint64_t)n > UINT32_MAX || (uint64_t)ka > UINT32_MAX)
        return loom_graph_fail(g, LOOM_E_SHAPE, "matmul: %s x %s has a dim above 2^32", SHAPE(sa, na), SHAPE(sb, nb));
    loom_attr at = {0};
    at.ta = !!ta;
    at.tb = !!tb;
    at.act = LOOM_OP_NONE;
    int32_t in[2] = {a.id, b.id};
    return loom_graph_add(g, LOOM_OP_BATCH_MATMUL, na->dtype, nbo + 2, shape, 2, in, NULL, &at);
}

/* ---- normalization --------------------------------------------------------------- */

static loom_tensor norm(loom_graph *g, loom_op op, loom_tensor x, loom_tensor gamma, loom_tensor beta, float eps)
{
    const char *name = loom_op_name(op);
    loom_tensor ins[3] = {x};
    int n = 1, affine = 0;
    if (gamma.id) {
        ins[n++] = gamma;
        affine |= 1;
    }
    if (beta.id) {
        ins[n++] = beta;
        affine |= 2;
    }
    if (!loom_graph_check_inputs(g, name, n, ins) || !floats_alike(g, name, n, ins))
        return LOOM_NONE;
    const loom_node *nx = loom_node_of(g, x);
    char s[96], s2[96];
    if (nx->ndim < 1)
        return loom_graph_fail(g, LOOM_E_SHAPE, "%s: input \"%s\" is a scalar; it normalizes the last axis", name,
                               nx->name);
    int64_t c = nx->shape[nx->ndim - 1];
    for (int i = 1; i < n; i++) {
        const loom_node *np = loom_node_of(g, ins[i]);
        if (np->ndim != 1 || np->shape[0] != c)
            return loom_graph_fail(g, LOOM_E_SHAPE, "%s: %s \"%s\" is %s, the last axis of \"%s\" %s needs [%lld]",
                                   name, (affine & 1) && i == 1 ? "scale" : "shift", np->name, SHAPE(s, np),
                                   nx->name, SHAPE(s2, nx), (long long)c);
    }
    if (!(eps >= 0.0f) || !isfinite(eps))
        return loom_graph_fail(g, LOOM_E_INVALID, "%s: eps %g is not a finite number >= 0", name, (double)eps);
    loom_attr at = {0};
    at.norm_eps = eps;
    at.affine = affine;
    int32_t in[3] = {ins[0].id, ins[1].id, ins[2].id};
    return loom_graph_add(g, op, nx->dtype, nx->ndim, nx->shape, n, in, NULL, &at);
}

loom_tensor loom_layer_norm(loom_graph *g, loom_tensor x, loom_tensor gamma, loom_tensor beta, float eps)
{
    return norm(g, LOOM_OP_LAYER_NORM, x, gamma, beta, eps);
}

loom_tensor loom_rms_norm(loom_graph *g, loom_tensor x, loom_tensor gamma, float eps)
{
    return norm(g, LOOM_OP_RMS_NORM, x, gamma, LOOM_NONE, eps);
}

/* ---- indexing -------------------------------------------------------------------- */

loom_tensor loom_take(loom_graph *g, loom_tensor x, loom_tensor idx, int axis)
{
    loom_tensor ins[2] = {x, idx};
    if (!loom_graph_check_inputs(g, "take", 2, ins) || !floats_alike(g, "take", 1, &x))
        return LOOM_NONE;
    const loom_node *nx = loom_node_of(g, x), *ni = loom_node_of(g, idx);
    if (!want_indices(g, "take", ni))
        return LOOM_NONE;
    int a = axis_of(g, "take", nx, axis);
    if (a < 0)
        return LOOM_NONE;
    char s[96], s2[96];
    int nd = nx->ndim - 1 + ni->ndim;
    if (nd > LOOM_MAX_DIMS)
        return loom_graph_fail(g, LOOM_E_SHAPE, "take: \"%s\" %s by indices %s along axis %d would have %d dims (%d "
                               "allowed)", nx->name, SHAPE(s, nx), SHAPE(s2, ni), a, nd, LOOM_MAX_DIMS);
    if (nx->shape[a] > INT32_MAX)
        return loom_graph_fail(g, LOOM_E_SHAPE, "take: axis %d of \"%s\" %s has more rows than i32 indices reach", a,
                               nx->name, SHAPE(s, nx));
    int64_t shape[LOOM_MAX_DIMS];
    int k = 0;
    for (int i = 0; i < a; i++)
        shape[k++] = nx->shape[i];
    for (int i = 0; i < ni->ndim; i++)
        shape[k++] = ni->shape[i];
    for (int i = a + 1; i < nx->ndim; i++)
        shape[k++] = nx->shape[i];
    loom_attr at = {0};
    at.axis = a;
    int32_t in[2] = {x.id, idx.id};
    return loom_graph_add(g, LOOM_OP_TAKE, nx->dtype, nd, shape, 2, in, NULL, &at);
}

loom_tensor loom_embedding(loom_graph *g, loom_tensor table, loom_tensor ids)
{
    const loom_node *nt = loom_node_of(g, table);
    if (g && g->err == LOOM_OK && nt && nt->ndim != 2) {
        char s[96];
        return loom_graph_fail(g, LOOM_E_SHAPE, "embedding: the table \"%s\" is %s, expected [rows, dim]", nt->name,
                               SHAPE(s, nt));
    }
    return loom_take(g, table, ids, 0);
}

/* idx has x's rank and no dim larger than x's off the axis. */
static int index_fits(loom_graph *g, const char *op, const loom_node *nx, const loom_node *ni, int a)
{
    char s[96], s2[96];
    int ok = ni->ndim == nx->ndim;
    for (int i = 0; ok && i < nx->ndim; i++)
        ok = i == a || ni->shape[i] <= nx->shape[i];
    if (!ok)
        loom_graph_fail(g, LOOM_E_SHAPE, "%s: indices \"%s\" %s do not fit \"%s\" %s along axis %d (same rank, no "
                        "larger dim off the axis)", op, ni->name, SHAPE(s, ni), nx->name, SHAPE(s2, nx), a);
    else if (nx->shape[a] > INT32_MAX)
        loom_graph_fail(g, LOOM_E_SHAPE, "%s: axis %d of \"%s\" %s is longer than i32 indices reach", op, a,
                        nx->name, SHAPE(s, nx));
    return ok && nx->shape[a] <= INT32_MAX;
}

loom_tensor loom_gather(loom_graph *g, loom_tensor x, int axis, loom_tensor idx)
{
    loom_tensor ins[2] = {x, idx};
    if (!loom_graph_check_inputs(g, "gather", 2, ins) || !floats_alike(g, "gather", 1, &x))
        return LOOM_NONE;
    const loom_node *nx = loom_node_of(g, x), *ni = loom_node_of(g, idx);
    if (!want_indices(g, "gather", ni))
        return LOOM_NONE;
    int a = axis_of(g, "gather", nx, axis);
    if (a < 0 || !index_fits(g, "gather", nx, ni, a))
        return LOOM_NONE;
    loom_attr at = {0};
    at.axis = a;
    int32_t in[2] = {x.id, idx.id};
    return loom_graph_add(g, LOOM_OP_GATHER, nx->dtype, ni->ndim, ni->shape, 2, in, NULL, &at);
}

loom_tensor loom_scatter_add(loom_graph *g, loom_tensor base, int axis, loom_tensor idx, loom_tensor src)
{
    loom_tensor ins[3] = {base, idx, src};
    loom_tensor fl[2] = {base, src};
    if (!loom_graph_check_inputs(g, "scatter_add", 3, ins) || !floats_alike(g, "scatter_add", 2, fl))
        return LOOM_NONE;
    const loom_node *nb = loom_node_of(g, base), *ni = loom_node_of(g, idx), *ns = loom_node_of(g, src);
    if (!want_indices(g, "scatter_add", ni))
        return LOOM_NONE;
    int a = axis_of(g, "scatter_add", nb, axis);
    if (a < 0 || !index_fits(g, "scatter_add", nb, ni, a))
        return LOOM_NONE;
    char s[96], s2[96];
    if (ns->ndim != ni->ndim || memcmp(ns->shape, ni->shape, sizeof(int64_t) * (size_t)ni->ndim) != 0)
        return loom_graph_fail(g, LOOM_E_SHAPE, "scatter_add: values \"%s\" %s and indices \"%s\" %s differ in shape",
                               ns->name, SHAPE(s, ns), ni->name, SHAPE(s2, ni));
    loom_attr at = {0};
    at.axis = a;
    int32_t in[2] = {src.id, idx.id};
    loom_tensor sc = loom_graph_add(g, LOOM_OP_SCATTER_ADD, nb->dtype, nb->ndim, nb->shape, 2, in, NULL, &at);
    return loom_add(g, base, sc);
}

/* ---- rotary position embedding ------------------------------------------------------ */

loom_tensor loom_rope(loom_graph *g, loom_tensor x, int axis, float base)
{
    if (!loom_graph_check_inputs(g, "rope", 1, &x) || !floats_alike(g, "rope", 1, &x))
        return LOOM_NONE;
    const loom_node *nx = loom_node_of(g, x);
    char s[96];
    if (nx->ndim < 2 || nx->shape[nx->ndim - 1] % 2)
        return loom_graph_fail(g, LOOM_E_SHAPE, "rope: \"%s\" %s needs 2 dims or more and an even last dim",
                               nx->name, SHAPE(s, nx));
    int a = axis_of(g, "rope", nx, axis);
    if (a < 0)
        return LOOM_NONE;
    if (a == nx->ndim - 1)
        return loom_graph_fail(g, LOOM_E_SHAPE, "rope: the position axis of \"%s\" %s is its last, the rotated one",
                               nx->name, SHAPE(s, nx));
    if (!(base > 1.0f) || !isfinite(base))
        return loom_graph_fail(g, LOOM_E_INVALID, "rope: base %g is not a finite number > 1", (double)base);
    loom_attr at = {0};
    at.axis = a;
    at.rope_base = base;
    int32_t in[1] = {x.id};
    return loom_graph_add(g, LOOM_OP_ROPE, nx->dtype, nx->ndim, nx->shape, 1, in, NULL, &at);
}

loom_tensor loom_swiglu(loom_graph *g, loom_tensor gate, loom_tensor up)
{
    return loom_mul(g, loom_silu(g, gate), up);
}

/* ---- attention ------------------------------------------------------------------------ */

loom_attention_opts loom_attention_opts_default(void)
{
    loom_attention_opts o = {0, 0.0f, LOOM_LAYOUT_BHND};
    return o;
}

/* The dims of q, k, v in either layout, checked. */
typedef struct attn_dims {
    int64_t b, hq, hkv, nq, nk, d;
} attn_dims;

static int attn_check(loom_graph *g, const char *op, loom_tensor q, loom_tensor k, loom_tensor v, loom_tensor mask,
                      const loom_attention_opts *o, attn_dims *ad)
{
    loom_tensor ins[4] = {q, k, v, mask};
    int n = mask.id ? 4 : 3;
    if (!loom_graph_check_inputs(g, op, n, ins) || !floats_alike(g, op, n, ins))
        return 0;
    const loom_node *nq = loom_node_of(g, q), *nk = loom_node_of(g, k), *nv = loom_node_of(g, v);
    char s1[96], s2[96], s3[96];
    if ((unsigned)o->layout > LOOM_LAYOUT_BNHD) {
        loom_graph_fail(g, LOOM_E_INVALID, "%s: unknown layout %d", op, (int)o->layout);
        return 0;
    }
    int bnhd = o->layout == LOOM_LAYOUT_BNHD, hd = bnhd ? 2 : 1, nd = bnhd ? 1 : 2;
    const char *want = bnhd ? "[B, N, H, D]" : "[B, H, N, D]";
    if (nq->ndim != 4 || nk->ndim != 4 || nv->ndim != 4 || nk->shape[0] != nq->shape[0] ||
        memcmp(nk->shape, nv->shape, sizeof nk->shape) != 0 || nk->shape[3] != nq->shape[3] ||
        nk->shape[hd] == 0 || nq->shape[hd] % nk->shape[hd] != 0) {
        loom_graph_fail(g, LOOM_E_SHAPE, "%s: q %s, k %s, v %s: want q %s, k and v alike with the same B and D and a "
                        "head count that divides q's", op, SHAPE(s1, nq), SHAPE(s2, nk), SHAPE(s3, nv), want);
        return 0;
    }
    ad->b = nq->shape[0];
    ad->hq = nq->shape[hd];
    ad->hkv = nk->shape[hd];
    ad->nq = nq->shape[nd];
    ad->nk = nk->shape[nd];
    ad->d = nq->shape[3];
    if (ad->d > 256) {
        loom_graph_fail(g, LOOM_E_SHAPE, "%s: head size %lld above 256 (q %s)", op, (long long)ad->d, SHAPE(s1, nq));
        return 0;
    }
    if (mask.id) {
        const loom_node *nm = loom_node_of(g, mask);
        int64_t full[4] = {ad->b, ad->hq, ad->nq, ad->nk}, out[LOOM_MAX_DIMS];
        int no = 0;
        if (!loom_broadcast_shape(nm->ndim, nm->shape, 4, full, &no, out) || no != 4 ||
            memcmp(out, full, sizeof full) != 0) {
            loom_graph_fail(g, LOOM_E_SHAPE, "%s: mask \"%s\" %s does not broadcast to the scores [%lld,%lld,%lld,%lld]",
                            op, nm->name, SHAPE(s1, nm), (long long)ad->b, (long long)ad->hq, (long long)ad->nq,
                            (long long)ad->nk);
            return 0;
        }
    }
    if (!isfinite(o->scale)) {
        loom_graph_fail(g, LOOM_E_INVALID, "%s: scale %g is not finite", op, (double)o->scale);
        return 0;
    }
    return 1;
}

static float attn_scale(const loom_attention_opts *o, int64_t d)
{
    return o->scale != 0.0f ? o->scale : (float)(1.0 / sqrt((double)d));
}

loom_tensor loom_attention(loom_graph *g, loom_tensor q, loom_tensor k, loom_tensor v, loom_tensor mask,
                           const loom_attention_opts *opts)
{
    loom_attention_opts o = opts ? *opts : loom_attention_opts_default();
    attn_dims ad;
    if (!attn_check(g, "attention", q, k, v, mask, &o, &ad))
        return LOOM_NONE;
    const loom_node *nq = loom_node_of(g, q);
    loom_attr at = {0};
    at.causal = !!o.causal;
    at.has_mask = mask.id != 0;
    at.layout = o.layout;
    at.attn_scale = attn_scale(&o, ad.d);
    int32_t in[4] = {q.id, k.id, v.id, mask.id};
    return loom_graph_add(g, LOOM_OP_ATTENTION, nq->dtype, 4, nq->shape, mask.id ? 4 : 3, in, NULL, &at);
}

/* A constant in dtype dt from f32 values. */
static loom_tensor const_as(loom_graph *g, loom_dtype dt, int ndim, const int64_t *shape, float *v, int64_t n)
{
    if (dt != LOOM_F32 && loom_convert(dt, v, LOOM_F32, v, (size_t)n) != LOOM_OK)
        return loom_graph_fail(g, LOOM_E_DTYPE, "attention: no constants of %s", loom_dtype_name(dt));
    return loom_constant(g, NULL, dt, ndim, shape, v);
}

/* softmax(scale q k^T + mask + causal) v from the primitive ops: the N x N
 * scores are a tensor of the graph. */
loom_tensor loom_attention_reference(loom_graph *g, loom_tensor q, loom_tensor k, loom_tensor v, loom_tensor mask,
                                     const loom_attention_opts *opts)
{
    loom_attention_opts o = opts ? *opts : loom_attention_opts_default();
    attn_dims ad;
    if (!attn_check(g, "attention_reference", q, k, v, mask, &o, &ad))
        return LOOM_NONE;
    loom_dtype dt = loom_node_of(g, q)->dtype;
    static const int swap[4] = {0, 2, 1, 3};
    int bnhd = o.layout == LOOM_LAYOUT_BNHD;
    if (bnhd) {
        q = loom_transpose(g, q, swap);
        k = loom_transpose(g, k, swap);
        v = loom_transpose(g, v, swap);
    }
    if (ad.hq != ad.hkv) {
        /* each query head reads the key-value head of its group */
        int32_t heads[256];
        int64_t hn = ad.hq > 256 ? 256 : ad.hq;
        for (int64_t h = 0; h < hn; h++)
            heads[h] = (int32_t)(h / (ad.hq / ad.hkv));
        loom_tensor idx = ad.hq <= 256 ? loom_constant(g, NULL, LOOM_I32, 1, &hn, heads)
                                       : loom_graph_fail(g, LOOM_E_SHAPE, "attention_reference: %lld heads above 256",
                                                         (long long)ad.hq);
        k = loom_take(g, k, idx, 1);
        v = loom_take(g, v, idx, 1);
    }
    loom_tensor s = loom_scale(g, loom_matmul(g, q, k, 0, 1), attn_scale(&o, ad.d));
    if (mask.id)
        s = loom_add(g, s, mask);
    if (o.causal) {
        uint64_t cells;
        if (loom_mul_u64((uint64_t)ad.nq, (uint64_t)ad.nk, &cells) || cells > ((uint64_t)1 << 31))
            return loom_graph_fail(g, LOOM_E_SHAPE, "attention_reference: a causal mask of %lld x %lld", (long long)ad.nq,
                                   (long long)ad.nk);
        float *cm = loom_malloc(g->ctx, (size_t)cells * sizeof *cm);
        if (!cm)
            return loom_graph_fail(g, LOOM_E_OOM, "attention_reference: out of memory for the causal mask");
        for (int64_t i = 0; i < ad.nq; i++)
            for (int64_t j = 0; j < ad.nk; j++)
                cm[i * ad.nk + j] = j <= i + ad.nk - ad.nq ? 0.0f : -INFINITY;
        int64_t cs[2] = {ad.nq, ad.nk};
        s = loom_add(g, s, const_as(g, dt, 2, cs, cm, (int64_t)cells));
        loom_free(g->ctx, cm, (size_t)cells * sizeof *cm);
    }
    loom_tensor out = loom_matmul(g, loom_softmax(g, s), v, 0, 0);
    return bnhd ? loom_transpose(g, out, swap) : out;
}
