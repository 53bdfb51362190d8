/* The sequence ops as OpenCL launches: batched matmul through CLBlast's
 * batched GEMM, and the kernels of shaders/opencl/seq.cl (norms,
 * take / gather and their scatter-adds, rope) and attention.cl (fused
 * attention, built per dtype and head size). Every argument is set here,
 * at prepare; the index arithmetic mirrors src/backends/cpu/. */
#include "cl_internal.h"
#include "../common/layout.h"

#include <assert.h>
#include <clblast_c.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static void a_u4(cl_args *a, const uint32_t v[4])
{
    cl_uint4 u;
    for (int i = 0; i < 4; i++)
        u.s[i] = v[i];
    loom_cl_arg(a, sizeof u, &u);
}

static void items(cl_dev *d, cl_launch *l, uint64_t n)
{
    l->lws[0] = d->ew_wg;
    l->gws[0] = loom_cl_round_up((size_t)(n ? n : 1), l->lws[0]);
}

/* ---- normalization --------------------------------------------------------------- */

/* in: x, [gamma], [beta] -> y; the gradient: dy, x, [gamma] -> dx. A row
 * per item; unbound affine tensors alias x. */
loom_status loom_cl_plan_lnorm(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    const loom_node *nd = x->node;
    int grad = x->def->family == LOOM_FAM_LNORM_GRAD, aff = nd->attr.affine;
    uint32_t cols = (uint32_t)nd->shape[nd->ndim - 1], rows = (uint32_t)(nd->numel / cols);
    const char *kname = grad ? "norm_grad_rows" : "norm_rows";
    cl_args a;
    LOOM_TRY(loom_cl_make_kernel(d, LOOM_CLP_SEQ, loom_cl_dtype_variant(nd->dtype), kname, x, l, &a));
    loom_cl_arg_tensor(&a, x->out);
    int base = grad ? 2 : 1;
    for (int k = 0; k < base; k++)
        loom_cl_arg_tensor(&a, x->in[k]);
    loom_cl_arg_tensor(&a, (aff & 1) ? x->in[base] : x->in[0]);
    if (!grad)
        loom_cl_arg_tensor(&a, (aff & 2) ? x->in[1 + (aff & 1)] : x->in[0]);
    loom_cl_arg_u32(&a, rows);
    loom_cl_arg_u32(&a, cols);
    loom_cl_arg_f32(&a, nd->attr.norm_eps);
    loom_cl_arg_u32(&a, (cl_uint)aff);
    loom_cl_arg_u32(&a, x->def->code == LOOM_LNORM_RMS);
    items(d, l, rows);
    return loom_cl_args_done(&a, x, kname);
}

/* ---- indexing --------------------------------------------------------------------- */

static void dense4(const loom_node *t, uint32_t dd[4], uint32_t st[4])
{
    int64_t d4[4];
    loom_shape4(t->ndim, t->shape, d4);
    uint32_t s = 1;
    for (int i = 3; i >= 0; i--) {
        dd[i] = (uint32_t)d4[i];
        st[i] = s;
        s *= (uint32_t)d4[i];
    }
}

/* take / gather (in: x, idx) and their scatter-adds (in: src, idx). */
loom_status loom_cl_plan_index(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    const loom_node *nd = x->node, *ni = x->in[1]->node;
    int scatter = x->def->family == LOOM_FAM_SCATTER, take = x->def->code == LOOM_INDEX_TAKE;
    const loom_node *full = scatter ? nd : x->in[0]->node;
    int axis = nd->attr.axis;
    uint32_t bound = (uint32_t)full->shape[axis], inner = 1, nj = 1, ax4 = (uint32_t)(axis + 4 - full->ndim);
    uint32_t id[4] = {1, 1, 1, 1}, is[4] = {0}, od[4] = {1, 1, 1, 1}, os[4] = {0};
    uint64_t n = (uint64_t)nd->numel;
    if (take) {
        loom_axis_split sp = loom_axis_split_of(full, axis);
        inner = (uint32_t)sp.inner;
        nj = (uint32_t)ni->numel;
        if (scatter)
            n = (uint64_t)sp.outer * sp.n * ((sp.inner + 7) / 8);
    } else {
        dense4(ni, id, is);
        dense4(full, od, os);
    }
    const char *kname = scatter ? "scatter_items" : "take_items";
    cl_args a;
    LOOM_TRY(loom_cl_make_kernel(d, LOOM_CLP_SEQ, loom_cl_dtype_variant(nd->dtype), kname, x, l, &a));
    loom_cl_arg_tensor(&a, x->out);
    loom_cl_arg_tensor(&a, x->in[0]);
    loom_cl_arg_tensor(&a, x->in[1]);
    loom_cl_arg_u32(&a, (cl_uint)n);
    loom_cl_arg_u32(&a, bound);
    loom_cl_arg_u32(&a, inner);
    loom_cl_arg_u32(&a, nj);
    loom_cl_arg_u32(&a, ax4);
    a_u4(&a, id);
    if (scatter) {
        a_u4(&a, is);
        a_u4(&a, od);
    } else {
        a_u4(&a, os);
    }
    loom_cl_arg_u32(&a, (cl_uint)x->def->code);
    items(d, l, n);
    return loom_cl_args_done(&a, x, kname);
}

/* ---- rotary embedding ---------------------------------------------------------------- */

loom_status loom_cl_plan_rope(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    const loom_node *nd = x->node;
    int axis = nd->attr.axis;
    int64_t mid = 1;
    for (int i = axis + 1; i < nd->ndim - 1; i++)
        mid *= nd->shape[i];
    uint64_t n = (uint64_t)nd->numel / 2;
    cl_args a;
    LOOM_TRY(loom_cl_make_kernel(d, LOOM_CLP_SEQ, loom_cl_dtype_variant(nd->dtype), "rope_pairs", x, l, &a));
    loom_cl_arg_tensor(&a, x->out);
    loom_cl_arg_tensor(&a, x->in[0]);
    loom_cl_arg_u32(&a, (cl_uint)n);
    loom_cl_arg_u32(&a, (cl_uint)(nd->shape[nd->ndim - 1] / 2));
    loom_cl_arg_u32(&a, (cl_uint)nd->shape[axis]);
    loom_cl_arg_u32(&a, (cl_uint)mid);
    loom_cl_arg_f32(&a, log2f(nd->attr.rope_base));
    loom_cl_arg_f32(&a, nd->attr.rope_inverse ? -1.0f : 1.0f);
    items(d, l, n);
    return loom_cl_args_done(&a, x, "rope_pairs");
}

/* ---- fused attention -------------------------------------------------------------------- */

#define ATTN_WG 64

/* Rows staged per tile: as the Vulkan kernels, within 16 KiB of local
 * memory. */
static int attn_tile(int64_t dh)
{
    int64_t tb = 2048 / (dh + 1);
    return (int)(tb < 32 ? tb : 32);
}

loom_status loom_cl_plan_attention(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    static const char *const kernels[5] = {"attn_fwd", "attn_stats", "attn_dq", "attn_dk", "attn_dv"};
    const loom_node *nd = x->node;
    int code = x->def->code, qi = code == LOOM_ATTN_FWD || code == LOOM_ATTN_STATS ? 0 : 1;
    int has_mask = nd->attr.has_mask;
    const loom_exec_tensor *tq = x->in[qi];
    loom_attn_dims ad = loom_attn_dims_of(nd, tq->node, x->in[qi + 1]->node, has_mask ? x->in[x->nin - 1]->node : NULL);
    loom_pc_attn pc = {0};
    pc.b = (uint32_t)ad.b;
    pc.hq = (uint32_t)ad.hq;
    pc.hkv = (uint32_t)ad.hkv;
    pc.nq = (uint32_t)ad.nq;
    pc.nk = (uint32_t)ad.nk;
    for (int i = 0; i < 3; i++) {
        pc.qs[i] = (uint32_t)ad.qs[i];
        pc.ks[i] = (uint32_t)ad.ks[i];
    }
    for (int i = 0; i < 4; i++)
        pc.ms[i] = (uint32_t)ad.ms[i];
    pc.causal = (uint32_t)ad.causal;
    pc.has_mask = (uint32_t)has_mask;
    pc.scale = ad.scale;
    char variant[48];
    snprintf(variant, sizeof variant, "%s -DHEAD_D=%d -DTB=%d", loom_cl_dtype_variant(tq->node->dtype), (int)ad.d,
             attn_tile(ad.d));
    const char *kname = kernels[code];
    cl_args a;
    LOOM_TRY(loom_cl_make_kernel(d, LOOM_CLP_ATTENTION, variant, kname, x, l, &a));
    loom_cl_arg_tensor(&a, x->out);
    for (int k = 0; k < x->nin - has_mask; k++)
        loom_cl_arg_tensor(&a, x->in[k]);
    loom_cl_arg_tensor(&a, has_mask ? x->in[x->nin - 1] : x->in[0]);
    loom_cl_arg(&a, sizeof pc, &pc);
    int per_key = code == LOOM_ATTN_DK || code == LOOM_ATTN_DV;
    size_t rows = (size_t)(per_key ? ad.nk : ad.nq), heads = (size_t)(ad.b * (per_key ? ad.hkv : ad.hq));
    l->dims = 2;
    l->lws[0] = ATTN_WG;
    l->lws[1] = 1;
    l->gws[0] = loom_cl_round_up(rows, ATTN_WG);
    l->gws[1] = heads;
    return loom_cl_args_done(&a, x, kname);
}

/* ---- batched matmul ------------------------------------------------------------------------ */

/* Half-precision operands on a device CLBlast cannot run them on. */
static int widens(const cl_dev *d, const loom_exec_node *x)
{
    loom_dtype dt = x->node->dtype;
    return dt == LOOM_BF16 || (dt == LOOM_F16 && !d->lim.fp16);
}

int loom_cl_bmm_launches(const cl_dev *d, const loom_exec_node *x)
{
    return widens(d, x) ? 4 : 1;
}

/* The GEMM launch of one batched matmul over buffers a, b, c at element
 * offsets ao, bo, co: strided when each operand's batches are one stride
 * apart, else with every batch's offsets. */
static loom_status batched(cl_dev *d, const loom_exec_node *x, cl_launch *l, int half, cl_mem a, size_t ao, cl_mem b,
                           size_t bo, cl_mem c, size_t co)
{
    const loom_node *nd = x->node;
    loom_bmm_dims bd = loom_bmm_dims_of(nd, x->in[0]->node, x->in[1]->node);
    cl_gemm_call *g = &l->gemm;
    *g = (cl_gemm_call){nd->attr.ta, nd->attr.tb, half, (size_t)bd.m, (size_t)bd.n, (size_t)bd.k, a, b, c, ao, bo, co,
                        (size_t)bd.lda, (size_t)bd.ldb, (size_t)bd.n};
    l->kind = LOOM_CLL_GEMM_BATCHED;
    size_t nb = (size_t)(bd.nb[0] * bd.nb[1]), mn = (size_t)(bd.m * bd.n);
    l->nbatch = nb;
    /* one linear batch index: either dim alone, or the outer stride the
     * inner's times its count for both operands */
    if (bd.nb[0] == 1 || (bd.sa[0] == bd.sa[1] * bd.nb[1] && bd.sb[0] == bd.sb[1] * bd.nb[1])) {
        l->stride[0] = (size_t)bd.sa[1];
        l->stride[1] = (size_t)bd.sb[1];
        l->stride[2] = mn;
        return LOOM_OK;
    }
    if (bd.nb[1] == 1) {
        l->stride[0] = (size_t)bd.sa[0];
        l->stride[1] = (size_t)bd.sb[0];
        l->stride[2] = mn;
        return LOOM_OK;
    }
    size_t bytes = nb * (3 * sizeof(size_t) + 2 * sizeof(float));
    size_t *offs = loom_malloc(d->ctx, bytes);
    if (!offs)
        return loom_fail(d->ctx, LOOM_E_OOM, "%s: out of memory for the %zu batches of \"%s\"", d->label, nb, nd->name);
    l->host = offs;
    l->host_bytes = bytes;
    float *scal = (float *)(offs + 3 * nb);
    size_t z = 0;
    for (int64_t i0 = 0; i0 < bd.nb[0]; i0++)
        for (int64_t i1 = 0; i1 < bd.nb[1]; i1++, z++) {
            offs[z] = ao + (size_t)(i0 * bd.sa[0] + i1 * bd.sa[1]);
            offs[nb + z] = bo + (size_t)(i0 * bd.sb[0] + i1 * bd.sb[1]);
            offs[2 * nb + z] = co + z * mn;
            /* alpha 1, beta 0 (as halves for CLBlastHgemmBatched) */
            if (half) {
                cl_half *h = (cl_half *)scal;
                h[z] = 0x3c00;
                h[nb + z] = 0;
            } else {
                scal[z] = 1.0f;
                scal[nb + z] = 0.0f;
            }
        }
    return LOOM_OK;
}

loom_status loom_cl_plan_bmm(cl_dev *d, const loom_exec_node *x, cl_launch *l, int *n)
{
    loom_dtype dt = x->node->dtype;
    if (!widens(d, x)) {
        *n = 1;
        return batched(d, x, l, dt == LOOM_F16, loom_cl_tensor_mem(x->in[0]), loom_cl_elem_off(x->in[0]), loom_cl_tensor_mem(x->in[1]),
                       loom_cl_elem_off(x->in[1]), loom_cl_tensor_mem(x->out), loom_cl_elem_off(x->out));
    }
    cl_mem s;
    cl_uint off[3];
    *n = 4;
    LOOM_TRY(loom_cl_widen_operands(d, x, l, (uint64_t)x->node->numel, &s, off));
    LOOM_TRY(batched(d, x, &l[2], 0, s, off[0], s, off[1], s, off[2]));
    return loom_cl_cast_launch(d, x, &l[3], LOOM_F32, s, off[2], dt, loom_cl_tensor_mem(x->out),
                               loom_cl_elem_off(x->out), x->node->numel);
}

static CLBlastTranspose tr(int t)
{
    return t ? CLBlastTransposeYes : CLBlastTransposeNo;
}

loom_status loom_cl_gemm_batched(cl_dev *d, const cl_launch *l, cl_event *ev, const char *what)
{
    const cl_gemm_call *g = &l->gemm;
    size_t nb = l->nbatch;
    CLBlastStatusCode s;
    if (!l->host) {
        if (g->half)
            s = CLBlastHgemmStridedBatched(CLBlastLayoutRowMajor, tr(g->ta), tr(g->tb), g->m, g->n, g->k, 0x3c00, g->a,
                                           g->ao, g->lda, l->stride[0], g->b, g->bo, g->ldb, l->stride[1], 0, g->c,
                                           g->co, g->ldc, l->stride[2], nb, &d->queue, ev);
        else
            s = CLBlastSgemmStridedBatched(CLBlastLayoutRowMajor, tr(g->ta), tr(g->tb), g->m, g->n, g->k, 1.0f, g->a,
                                           g->ao, g->lda, l->stride[0], g->b, g->bo, g->ldb, l->stride[1], 0.0f, g->c,
                                           g->co, g->ldc, l->stride[2], nb, &d->queue, ev);
    } else {
        const size_t *offs = l->host;
        const void *scal = offs + 3 * nb;
        if (g->half) {
            const cl_half *h = scal;
            s = CLBlastHgemmBatched(CLBlastLayoutRowMajor, tr(g->ta), tr(g->tb), g->m, g->n, g->k, h, g->a, offs,
                                    g->lda, g->b, offs + nb, g->ldb, h + nb, g->c, offs + 2 * nb, g->ldc, nb,
                                    &d->queue, ev);
        } else {
            const float *f = scal;
            s = CLBlastSgemmBatched(CLBlastLayoutRowMajor, tr(g->ta), tr(g->tb), g->m, g->n, g->k, f, g->a, offs,
                                    g->lda, g->b, offs + nb, g->ldb, f + nb, g->c, offs + 2 * nb, g->ldc, nb,
                                    &d->queue, ev);
        }
    }
    if (s != CLBlastSuccess)
        return loom_cl_fail(d, s, g->half ? "CLBlastHgemmBatched" : "CLBlastSgemmBatched",
                            "matmul \"%s\": %zu batches of [%zu,%zu], k=%zu%s", what, nb, g->m, g->n, g->k,
                            l->host ? "" : " (strided)");
    return LOOM_OK;
}
