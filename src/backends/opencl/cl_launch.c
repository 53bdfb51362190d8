/* One node of a program -> the kernel launches that compute it, by op
 * family, with every argument set here, once, at prepare. Only the node's
 * run slot (the values core computes per run) is set again at each run.
 * Kernels are found by name in the programs built per dtype
 * (unary_<op>, binary_<op>, ...); nothing here switches on an op. Index
 * math mirrors src/backends/cpu/. */
#include "cl_internal.h"
#include "../common/layout.h"
#include "../../core/autodiff.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

static void a_mem(cl_args *a, cl_mem m) { loom_cl_arg(a, sizeof m, &m); }
static void a_i32(cl_args *a, cl_int v) { loom_cl_arg(a, sizeof v, &v); }

static void a_u4(cl_args *a, const int64_t v[4])
{
    cl_uint4 u;
    for (int i = 0; i < 4; i++)
        u.s[i] = (cl_uint)v[i];
    loom_cl_arg(a, sizeof u, &u);
}

/* The run slot: a placeholder now, the node's values before each run. */
static void a_slot(cl_args *a, cl_launch *l)
{
    loom_run_slot zero = {0};
    l->run_arg = (int)a->i;
    loom_cl_arg(a, sizeof zero, &zero);
}

static cl_mem mem_of(const loom_bref *m)
{
    return loom_cl_block_mem(((const cl_buf *)m->buf)->block);
}

/* Element-wise kernels: one item per 8 values. */
static void ew_size(cl_dev *d, cl_launch *l, int64_t n)
{
    l->lws[0] = d->ew_wg;
    l->gws[0] = loom_cl_round_up((size_t)((n + 7) / 8), l->lws[0]);
}

/* (column chunks of `chunk`, rows): as many chunks per group as a row has,
 * up to the group size, the rest of the group along the rows. */
static void rows_size(cl_dev *d, cl_launch *l, int64_t rows, int64_t c, int64_t chunk)
{
    size_t chunks = (size_t)((c + chunk - 1) / chunk), wx = 1;
    while (wx < chunks && wx < d->ew_wg)
        wx *= 2;
    size_t wy = d->ew_wg / wx;
    l->dims = 2;
    l->lws[0] = wx;
    l->lws[1] = wy;
    l->gws[0] = loom_cl_round_up(chunks, wx);
    l->gws[1] = loom_cl_round_up((size_t)rows, wy);
}

/* ---- element-wise ---------------------------------------------------------- */

static loom_status plan_unary(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    const loom_node *nd = x->node;
    int grad = x->def->family == LOOM_FAM_UNARY_GRAD;
    char kname[64];
    snprintf(kname, sizeof kname, "%s_%s", grad ? "unary_grad" : "unary",
             grad ? loom_op_name((loom_op)nd->attr.fwd) : x->def->name);
    cl_args a;
    LOOM_TRY(loom_cl_make_kernel(d, LOOM_CLP_ELEMENTWISE, loom_cl_dtype_variant(nd->dtype), kname, x, l, &a));
    loom_cl_arg_tensor(&a, x->out);
    for (int k = 0; k < x->nin; k++)
        loom_cl_arg_tensor(&a, x->in[k]);
    loom_cl_arg_u32(&a, (cl_uint)nd->numel);
    loom_cl_arg_f32(&a, nd->attr.p1);
    loom_cl_arg_f32(&a, nd->attr.p2);
    ew_size(d, l, nd->numel);
    return loom_cl_args_done(&a, x, kname);
}

static loom_status plan_binary(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    const loom_node *o = x->node;
    int grad = x->def->family == LOOM_FAM_BINARY_GRAD;
    const loom_exec_tensor *ta = x->in[grad], *tb = x->in[grad + 1];
    const loom_node *na = ta->node, *nb = tb->node;
    int64_t dd[4], sa[4], sb[4];
    loom_shape4(o->ndim, o->shape, dd);
    loom_bstrides(na->ndim, na->shape, dd, sa);
    loom_bstrides(nb->ndim, nb->shape, dd, sb);
    const char *shape, *name = grad ? loom_op_name((loom_op)o->attr.fwd) : x->def->name;
    if (grad)
        shape = "binary_grad";
    else if (na->numel == o->numel && nb->numel == o->numel)
        shape = "binary";
    else if (na->numel == o->numel && nb->numel == dd[3] && (sb[0] == 0 || dd[0] == 1) &&
             (sb[1] == 0 || dd[1] == 1) && (sb[2] == 0 || dd[2] == 1))
        shape = "binary_row"; /* a bias over the last axis */
    else
        shape = "binary_bcast";
    char kname[64];
    snprintf(kname, sizeof kname, "%s_%s", shape, name);
    cl_args a;
    LOOM_TRY(loom_cl_make_kernel(d, LOOM_CLP_ELEMENTWISE, loom_cl_dtype_variant(o->dtype), kname, x, l, &a));
    loom_cl_arg_tensor(&a, x->out);
    for (int k = 0; k < x->nin; k++)
        loom_cl_arg_tensor(&a, x->in[k]);
    if (!strcmp(shape, "binary")) {
        loom_cl_arg_u32(&a, (cl_uint)o->numel);
        ew_size(d, l, o->numel);
    } else if (!strcmp(shape, "binary_row")) {
        loom_cl_arg_u32(&a, (cl_uint)(o->numel / dd[3]));
        loom_cl_arg_u32(&a, (cl_uint)dd[3]);
        rows_size(d, l, o->numel / dd[3], dd[3], 8);
    } else {
        loom_cl_arg_u32(&a, (cl_uint)(o->numel / dd[3]));
        a_u4(&a, dd);
        a_u4(&a, sa);
        a_u4(&a, sb);
        if (grad)
            loom_cl_arg_u32(&a, (cl_uint)o->attr.side);
        rows_size(d, l, o->numel / dd[3], dd[3], grad ? 1 : 8);
    }
    return loom_cl_args_done(&a, x, kname);
}

static loom_status plan_where(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    const loom_node *o = x->node;
    int64_t dd[4], s[3][4];
    loom_shape4(o->ndim, o->shape, dd);
    for (int k = 0; k < 3; k++)
        loom_bstrides(x->in[k]->node->ndim, x->in[k]->node->shape, dd, s[k]);
    cl_args a;
    LOOM_TRY(loom_cl_make_kernel(d, LOOM_CLP_ELEMENTWISE, loom_cl_dtype_variant(o->dtype), "where_bcast", x, l, &a));
    loom_cl_arg_tensor(&a, x->out);
    for (int k = 0; k < 3; k++)
        loom_cl_arg_tensor(&a, x->in[k]);
    loom_cl_arg_u32(&a, (cl_uint)o->numel);
    a_u4(&a, dd);
    for (int k = 0; k < 3; k++)
        a_u4(&a, s[k]);
    l->lws[0] = d->ew_wg;
    l->gws[0] = loom_cl_round_up((size_t)o->numel, l->lws[0]);
    return loom_cl_args_done(&a, x, "where_bcast");
}

static const char *cast_option(loom_dtype dt)
{
    return dt == LOOM_F16 ? "F16" : dt == LOOM_BF16 ? "BF16" : dt == LOOM_I32 ? "I32" : dt == LOOM_I8 ? "I8" : "F32";
}

loom_status loom_cl_cast_launch(cl_dev *d, const loom_exec_node *x, cl_launch *l, loom_dtype from, cl_mem src,
                                cl_uint so, loom_dtype to, cl_mem dst, cl_uint dof, int64_t n)
{
    char variant[48];
    snprintf(variant, sizeof variant, "-DFROM_%s -DTO_%s", cast_option(from), cast_option(to));
    cl_args a;
    LOOM_TRY(loom_cl_make_kernel(d, LOOM_CLP_CAST, variant, "cast", x, l, &a));
    a_mem(&a, dst);
    loom_cl_arg_u32(&a, dof);
    a_mem(&a, src);
    loom_cl_arg_u32(&a, so);
    loom_cl_arg_u32(&a, (cl_uint)n);
    l->lws[0] = d->ew_wg;
    l->gws[0] = loom_cl_round_up((size_t)(n ? n : 1), l->lws[0]);
    return loom_cl_args_done(&a, x, "cast");
}

loom_status loom_cl_widen_operands(cl_dev *d, const loom_exec_node *x, cl_launch *l, uint64_t extra, cl_mem *s,
                                   cl_uint off[3])
{
    uint64_t na = (uint64_t)x->in[0]->node->numel, nb = (uint64_t)x->in[1]->node->numel;
    void *buf = NULL;
    LOOM_TRY(loom_cl_buffer_alloc(d, (na + nb + extra) * 4, LOOM_LIFE_ARENA, &buf));
    const cl_buf *sb = buf;
    *s = loom_cl_block_mem(sb->block);
    off[0] = (cl_uint)(sb->offset / 4);
    off[1] = off[0] + (cl_uint)na;
    off[2] = off[1] + (cl_uint)nb;
    l[0].scratch = buf; /* before anything can fail: the release frees it */
    for (int i = 0; i < 2; i++)
        LOOM_TRY(loom_cl_cast_launch(d, x, &l[i], x->in[i]->node->dtype, loom_cl_tensor_mem(x->in[i]),
                                     loom_cl_elem_off(x->in[i]), LOOM_F32, *s, off[i], x->in[i]->node->numel));
    return LOOM_OK;
}

static loom_status plan_cast(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    return loom_cl_cast_launch(d, x, l, x->in[0]->node->dtype, mem_of(&x->in[0]->mem), loom_cl_elem_off(x->in[0]),
                               x->node->dtype, mem_of(&x->out->mem), loom_cl_elem_off(x->out), x->node->numel);
}

/* y[i] = a[offset of i in (dims, strides)]: copy, expand, transpose. */
static loom_status plan_gather(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    const loom_node *nd = x->node;
    if (x->def->code == LOOM_GATHER_COPY) {
        const loom_bref *src = &x->in[0]->mem, *dst = &x->out->mem;
        if (mem_of(src) == mem_of(dst) && loom_cl_elem_off(x->in[0]) == loom_cl_elem_off(x->out))
            return LOOM_OK; /* a reshape in place: nothing moves */
        size_t es = loom_dtype_size(nd->dtype);
        l->kind = LOOM_CLL_COPY;
        l->copy_src = mem_of(src);
        l->copy_dst = mem_of(dst);
        l->copy_so = (size_t)loom_cl_elem_off(x->in[0]) * es;
        l->copy_do = (size_t)loom_cl_elem_off(x->out) * es;
        l->copy_bytes = (size_t)dst->bytes;
        return LOOM_OK;
    }
    int64_t dd[4], st[4];
    loom_gather_strides(x->def->code, x->in[0]->node, nd, dd, st);
    const char *kname = loom_dtype_size(nd->dtype) == 2 ? "gather_16" : "gather_32";
    cl_args a;
    LOOM_TRY(loom_cl_make_kernel(d, LOOM_CLP_ELEMENTWISE, "", kname, x, l, &a));
    loom_cl_arg_tensor(&a, x->out);
    loom_cl_arg_tensor(&a, x->in[0]);
    loom_cl_arg_u32(&a, (cl_uint)(nd->numel / dd[3]));
    a_u4(&a, dd);
    a_u4(&a, st);
    rows_size(d, l, nd->numel / dd[3], dd[3], 8);
    return loom_cl_args_done(&a, x, kname);
}

static loom_status plan_dropout(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    const loom_node *nd = x->node;
    cl_args a;
    LOOM_TRY(loom_cl_make_kernel(d, LOOM_CLP_ELEMENTWISE, loom_cl_dtype_variant(nd->dtype), "ew_dropout", x, l, &a));
    loom_cl_arg_tensor(&a, x->out);
    loom_cl_arg_tensor(&a, x->in[0]);
    loom_cl_arg_u32(&a, (cl_uint)nd->numel);
    loom_cl_arg_f32(&a, nd->attr.alpha);
    loom_cl_arg_f32(&a, 1.0f / (1.0f - nd->attr.alpha));
    a_slot(&a, l);
    ew_size(d, l, nd->numel);
    return loom_cl_args_done(&a, x, "ew_dropout");
}

/* ---- GEMM -------------------------------------------------------------------- */

static void gemm_call(const loom_exec_node *x, cl_gemm_call *g)
{
    const loom_node *nd = x->node, *na = x->in[0]->node, *nb = x->in[1]->node;
    g->ta = nd->attr.ta;
    g->tb = nd->attr.tb;
    g->m = (size_t)nd->shape[0];
    g->n = (size_t)nd->shape[1];
    g->k = (size_t)(nd->attr.ta ? na->shape[0] : na->shape[1]);
    g->lda = (size_t)na->shape[1];
    g->ldb = (size_t)nb->shape[1];
    g->ldc = g->n;
}

/* Half-precision GEMM on a device CLBlast cannot run it on: the operands
 * widened into an f32 scratch the launch owns, SGEMM, the result narrowed
 * back (4 launches). */
static int converts(const cl_dev *d, const loom_exec_node *x)
{
    loom_dtype dt = x->node->dtype;
    return dt == LOOM_BF16 || (dt == LOOM_F16 && !d->lim.fp16);
}

static loom_status plan_matmul(cl_dev *d, const loom_exec_node *x, cl_launch *l, int *n)
{
    loom_dtype dt = x->node->dtype;
    if (loom_cl_gemm_own(d, x)) {
        *n = 1;
        return loom_cl_gemm_own_plan(d, x, l); /* cl_ogemm.c */
    }
    cl_gemm_call *g = &l->gemm;
    gemm_call(x, g);
    if (!converts(d, x)) {
        l->kind = LOOM_CLL_GEMM;
        g->half = dt == LOOM_F16;
        g->a = mem_of(&x->in[0]->mem);
        g->b = mem_of(&x->in[1]->mem);
        g->c = mem_of(&x->out->mem);
        g->ao = loom_cl_elem_off(x->in[0]);
        g->bo = loom_cl_elem_off(x->in[1]);
        g->co = loom_cl_elem_off(x->out);
        *n = 1;
        return LOOM_OK;
    }
    cl_mem s;
    cl_uint off[3];
    LOOM_TRY(loom_cl_widen_operands(d, x, l, (uint64_t)x->node->numel, &s, off));
    cl_launch *gl = &l[2];
    gl->kind = LOOM_CLL_GEMM;
    gl->gemm = *g;
    gl->gemm.a = gl->gemm.b = gl->gemm.c = s;
    gl->gemm.ao = off[0];
    gl->gemm.bo = off[1];
    gl->gemm.co = off[2];
    LOOM_TRY(loom_cl_cast_launch(d, x, &l[3], LOOM_F32, s, off[2], dt, mem_of(&x->out->mem), loom_cl_elem_off(x->out),
                                 x->node->numel));
    *n = 4;
    return LOOM_OK;
}

/* ---- reductions and rows -------------------------------------------------------- */

/* The kept dims and the reduced dims, each packed to the right of a rank-4
 * index space with the input's strides. */
static loom_status plan_reduce(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    const loom_node *ni = x->in[0]->node, *nd = x->node;
    int64_t dd[4], r4[4], ist[4];
    loom_shape4(ni->ndim, ni->shape, dd);
    loom_shape4(nd->attr.rdim, nd->attr.rshape, r4);
    int64_t s = 1;
    for (int i = 3; i >= 0; i--) {
        ist[i] = s;
        s *= dd[i];
    }
    int64_t kd[4] = {1, 1, 1, 1}, ks[4] = {0, 0, 0, 0}, rd[4] = {1, 1, 1, 1}, rs[4] = {0, 0, 0, 0};
    int nk = 0, nr = 0;
    int64_t kept[4][2], red[4][2];
    for (int i = 0; i < 4; i++) {
        if (r4[i] == 1 && dd[i] != 1) {
            red[nr][0] = dd[i];
            red[nr++][1] = ist[i];
        } else {
            kept[nk][0] = dd[i];
            kept[nk++][1] = ist[i];
        }
    }
    for (int i = 0; i < nk; i++) {
        kd[4 - nk + i] = kept[i][0];
        ks[4 - nk + i] = kept[i][1];
    }
    for (int i = 0; i < nr; i++) {
        rd[4 - nr + i] = red[i][0];
        rs[4 - nr + i] = red[i][1];
    }
    int64_t R = rd[0] * rd[1] * rd[2] * rd[3], nout = kd[0] * kd[1] * kd[2] * kd[3];
    const char *var = loom_cl_dtype_variant(nd->dtype);
    cl_args a;
    /* A sum with the leading dims reduced and the trailing ones kept:
     * [R, C] -> [C], a column sum with vector loads (worth it from 8). */
    int split = 4;
    while (split > 0 && r4[split - 1] == dd[split - 1])
        split--;
    int cols = nout >= 8 && x->def->code == LOOM_REDUCE_SUM;
    for (int i = 0; i < split; i++)
        cols &= r4[i] == 1;
    if (cols) {
        LOOM_TRY(loom_cl_make_kernel(d, LOOM_CLP_REDUCE, var, "red_sum_cols", x, l, &a));
        loom_cl_arg_tensor(&a, x->out);
        loom_cl_arg_tensor(&a, x->in[0]);
        loom_cl_arg_u32(&a, (cl_uint)R);
        loom_cl_arg_u32(&a, (cl_uint)nout);
        loom_cl_arg_f32(&a, nd->attr.alpha);
        l->lws[0] = d->red_wg;
        l->gws[0] = loom_cl_round_up((size_t)((nout + 7) / 8), l->lws[0]);
        return loom_cl_args_done(&a, x, "red_sum_cols");
    }
    /* Few long reductions: a work group each; else an item each. */
    int wg = R >= 128 && nout <= 256;
    const char *kname = wg ? "red_wg" : "red_item";
    LOOM_TRY(loom_cl_make_kernel(d, LOOM_CLP_REDUCE, var, kname, x, l, &a));
    loom_cl_arg_tensor(&a, x->out);
    loom_cl_arg_tensor(&a, x->in[0]);
    loom_cl_arg_u32(&a, (cl_uint)nout);
    a_u4(&a, kd);
    a_u4(&a, ks);
    a_u4(&a, rd);
    a_u4(&a, rs);
    loom_cl_arg_u32(&a, (cl_uint)R);
    loom_cl_arg_f32(&a, nd->attr.alpha);
    loom_cl_arg_u32(&a, x->def->code);
    l->lws[0] = d->red_wg;
    l->gws[0] = wg ? (size_t)nout * l->lws[0] : loom_cl_round_up((size_t)nout, l->lws[0]);
    return loom_cl_args_done(&a, x, kname);
}

/* The softmax family along an axis (in: x, or dy and y). */
static loom_status plan_softmax(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    const loom_node *nd = x->node;
    loom_axis_split sp = loom_axis_split_of(nd, nd->attr.axis);
    int grad = x->def->family == LOOM_FAM_SOFTMAX_GRAD;
    int64_t rows = sp.outer * sp.inner;
    int wg = sp.n > 128;
    const char *kname = wg ? "rows_wg" : "rows_item";
    cl_args a;
    LOOM_TRY(loom_cl_make_kernel(d, LOOM_CLP_REDUCE, loom_cl_dtype_variant(nd->dtype), kname, x, l, &a));
    loom_cl_arg_tensor(&a, x->out);
    loom_cl_arg_tensor(&a, x->in[0]);
    loom_cl_arg_tensor(&a, grad ? x->in[1] : x->in[0]);
    loom_cl_arg_u32(&a, (cl_uint)rows);
    loom_cl_arg_u32(&a, (cl_uint)sp.n);
    loom_cl_arg_u32(&a, (cl_uint)sp.inner);
    loom_cl_arg_u32(&a, x->def->code);
    loom_cl_arg_u32(&a, (cl_uint)grad);
    l->lws[0] = d->red_wg;
    l->gws[0] = wg ? (size_t)rows * l->lws[0] : loom_cl_round_up((size_t)rows, l->lws[0]);
    return loom_cl_args_done(&a, x, kname);
}

/* argmax / argmin (in: x) and the gradients of max / min (in: dy, x). */
static loom_status plan_arg(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    int grad = x->def->family == LOOM_FAM_ARG_GRAD;
    const loom_exec_tensor *tx = x->in[grad];
    loom_axis_split sp = loom_axis_split_of(tx->node, x->node->attr.axis);
    const char *kname = grad ? "red_arg_grad" : "red_arg";
    cl_args a;
    LOOM_TRY(loom_cl_make_kernel(d, LOOM_CLP_REDUCE, loom_cl_dtype_variant(tx->node->dtype), kname, x, l, &a));
    loom_cl_arg_tensor(&a, x->out);
    for (int k = 0; k < x->nin; k++)
        loom_cl_arg_tensor(&a, x->in[k]);
    loom_cl_arg_u32(&a, (cl_uint)sp.outer);
    loom_cl_arg_u32(&a, (cl_uint)sp.n);
    loom_cl_arg_u32(&a, (cl_uint)sp.inner);
    loom_cl_arg_u32(&a, x->def->code);
    l->lws[0] = d->red_wg;
    l->gws[0] = loom_cl_round_up((size_t)(sp.outer * sp.inner), l->lws[0]);
    return loom_cl_args_done(&a, x, kname);
}

static loom_status plan_xent(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    const loom_node *nz = x->in[0]->node;
    cl_args a;
    LOOM_TRY(loom_cl_make_kernel(d, LOOM_CLP_REDUCE, loom_cl_dtype_variant(nz->dtype), "xent", x, l, &a));
    loom_cl_arg_tensor(&a, x->out);
    loom_cl_arg_tensor(&a, x->in[0]);
    loom_cl_arg_tensor(&a, x->in[1]);
    loom_cl_arg_u32(&a, (cl_uint)nz->shape[0]);
    loom_cl_arg_u32(&a, (cl_uint)nz->shape[1]);
    l->lws[0] = l->gws[0] = d->red_wg;
    return loom_cl_args_done(&a, x, "xent");
}

/* in: dloss, logits, labels */
static loom_status plan_xent_grad(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    const loom_node *nd = x->node;
    cl_args a;
    if (x->also[0] || x->also[1]) {
        /* with the loss and the prediction: one work group over every row */
        LOOM_TRY(loom_cl_make_kernel(d, LOOM_CLP_REDUCE, loom_cl_dtype_variant(nd->dtype), "xent_fused", x, l, &a));
        loom_cl_arg_tensor(&a, x->out);
        loom_cl_arg_tensor(&a, x->also[0] ? x->also[0] : x->out);
        loom_cl_arg_tensor(&a, x->also[1] ? x->also[1] : x->out);
        a_i32(&a, x->also[0] != NULL);
        a_i32(&a, x->also[1] != NULL);
        for (int k = 0; k < 3; k++)
            loom_cl_arg_tensor(&a, x->in[k]);
        loom_cl_arg_u32(&a, (cl_uint)nd->shape[0]);
        loom_cl_arg_u32(&a, (cl_uint)nd->shape[1]);
        l->lws[0] = l->gws[0] = d->red_wg;
        return loom_cl_args_done(&a, x, "xent_fused");
    }
    LOOM_TRY(loom_cl_make_kernel(d, LOOM_CLP_REDUCE, loom_cl_dtype_variant(nd->dtype), "xent_grad", x, l, &a));
    loom_cl_arg_tensor(&a, x->out);
    for (int k = 0; k < 3; k++)
        loom_cl_arg_tensor(&a, x->in[k]);
    loom_cl_arg_u32(&a, (cl_uint)nd->shape[0]);
    loom_cl_arg_u32(&a, (cl_uint)nd->shape[1]);
    l->lws[0] = d->red_wg;
    l->gws[0] = loom_cl_round_up((size_t)nd->shape[0], l->lws[0]);
    return loom_cl_args_done(&a, x, "xent_grad");
}

/* One launch per input: the first writes, the others add. */
static loom_status plan_sumsq(cl_dev *d, const loom_exec_node *x, cl_launch *out, int *n)
{
    cl_args a;
    for (int k = 0; k < x->nin; k++) {
        LOOM_TRY(loom_cl_make_kernel(d, LOOM_CLP_REDUCE, "", "red_sumsq", x, &out[k], &a));
        loom_cl_arg_tensor(&a, x->out);
        loom_cl_arg_tensor(&a, x->in[k]);
        loom_cl_arg_u32(&a, (cl_uint)x->in[k]->node->numel);
        a_i32(&a, k > 0);
        out[k].lws[0] = out[k].gws[0] = d->red_wg;
        LOOM_TRY(loom_cl_args_done(&a, x, "red_sumsq"));
    }
    *n = x->nin;
    return LOOM_OK;
}

static loom_status plan_run_value(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    cl_args a;
    LOOM_TRY(loom_cl_make_kernel(d, LOOM_CLP_REDUCE, "", "run_loss_scale", x, l, &a));
    loom_cl_arg_tensor(&a, x->out);
    a_slot(&a, l);
    l->lws[0] = l->gws[0] = 1;
    return loom_cl_args_done(&a, x, "run_loss_scale");
}

/* ---- optimizer updates ---------------------------------------------------------- */

static const char *update_kernel(int family)
{
    return family == LOOM_FAM_EMA ? "opt_ema" : family == LOOM_FAM_SGD ? "opt_sgd" : "opt_adam";
}

/* The hyper-parameters after the tensors, as opt_sgd / opt_adam take them. */
static void update_params(cl_args *a, const loom_exec_node *x)
{
    const loom_attr *at = &x->node->attr;
    loom_cl_arg_tensor(a, at->clip ? x->in[x->nin - 1] : x->in[0]);
    loom_cl_arg_f32(a, at->clip_norm);
    a_i32(a, at->clip);
    a_i32(a, at->skip_nonfinite);
    loom_cl_arg_f32(a, at->l1);
    loom_cl_arg_f32(a, at->l2);
    if (x->def->family == LOOM_FAM_SGD) {
        loom_cl_arg_f32(a, at->momentum);
        a_i32(a, at->nesterov);
    } else {
        loom_cl_arg_f32(a, at->beta1);
        loom_cl_arg_f32(a, at->beta2);
        loom_cl_arg_f32(a, at->eps);
        loom_cl_arg_f32(a, at->weight_decay);
    }
}

static loom_status plan_update_one(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    const loom_attr *at = &x->node->attr;
    int64_t n = x->in[0]->node->numel;
    int family = x->def->family;
    const char *kname = update_kernel(family);
    cl_args a;
    LOOM_TRY(loom_cl_make_kernel(d, LOOM_CLP_OPTIM, "", kname, x, l, &a));
    loom_cl_arg_tensor(&a, x->in[0]);
    loom_cl_arg_tensor(&a, x->in[1]);
    if (family == LOOM_FAM_EMA) {
        loom_cl_arg_u32(&a, (cl_uint)n);
    } else {
        if (family == LOOM_FAM_SGD) {
            loom_cl_arg_tensor(&a, at->momentum != 0.0f ? x->in[2] : x->in[0]);
        } else {
            loom_cl_arg_tensor(&a, x->in[2]);
            loom_cl_arg_tensor(&a, x->in[3]);
        }
        loom_cl_arg_u32(&a, (cl_uint)n);
        loom_cl_arg_u32(&a, (cl_uint)at->grad_rows);
        update_params(&a, x);
    }
    a_slot(&a, l);
    ew_size(d, l, n);
    return loom_cl_args_done(&a, x, kname);
}

/* The block a tensor lives in. */
static const cl_block *block_of(const loom_exec_tensor *t)
{
    return ((const cl_buf *)t->mem.buf)->block;
}

/* Can update y join a multi-tensor launch whose state tensors are in
 * block s and gradients in block g (NULL: not chosen yet)? */
static int update_joins(const loom_exec_node *y, const cl_block **s, const cl_block **g)
{
    int family = y->def->family, have = y->nin - 2 - y->node->attr.clip;
    const cl_block *sb = *s ? *s : block_of(y->in[0]);
    const cl_block *gb = family == LOOM_FAM_EMA ? sb : *g ? *g : block_of(y->in[1]);
    if (block_of(y->in[0]) != sb || block_of(y->in[1]) != (family == LOOM_FAM_EMA ? sb : gb))
        return 0;
    for (int k = 0; k < have && family != LOOM_FAM_EMA; k++)
        if (block_of(y->in[2 + k]) != sb)
            return 0;
    *s = sb;
    *g = gb;
    return 1;
}

/* The run of a group's members (exec node.group) from member i on that
 * share blocks: one launch (one member alone: its own kernel). */
static int run_len(const loom_exec_node *x, int i)
{
    const cl_block *s = NULL, *g = NULL;
    int j = i;
    while (j < x->group && update_joins(&x[j], &s, &g))
        j++;
    return j > i ? j - i : 1;
}

static int update_runs(const loom_exec_node *x)
{
    int nr = 0;
    for (int i = 0; i < x->group; i += run_len(x, i))
        nr++;
    return nr;
}

static loom_status plan_update_multi(cl_dev *d, const loom_exec_node *x, int n, cl_launch *l)
{
    int family = x->def->family, have = x->nin - 2 - x->node->attr.clip;
    size_t bytes = (size_t)n * LOOM_UPDATE_ENTRY * 4;
    uint32_t *tab = loom_calloc(d->ctx, (size_t)n * LOOM_UPDATE_ENTRY, 4);
    if (!tab)
        return loom_fail(d->ctx, LOOM_E_OOM, "%s: out of memory for a %d-tensor update table", d->label, n);
    uint32_t wgs = 0;
    size_t per_group = (size_t)d->ew_wg * 8;
    for (int k = 0; k < n; k++) {
        const loom_exec_node *y = &x[k];
        uint32_t *e = tab + (size_t)k * LOOM_UPDATE_ENTRY;
        e[0] = loom_cl_elem_off(y->in[0]);
        e[1] = loom_cl_elem_off(y->in[1]);
        if (family != LOOM_FAM_EMA && have > 0)
            e[2] = loom_cl_elem_off(y->in[2]);
        if (family == LOOM_FAM_ADAM)
            e[3] = loom_cl_elem_off(y->in[3]);
        e[4] = (uint32_t)y->in[0]->node->numel;
        e[5] = (uint32_t)y->node->attr.grad_rows;
        e[6] = wgs;
        wgs += (uint32_t)((e[4] + per_group - 1) / per_group);
    }
    void *buf = NULL;
    loom_status s = loom_cl_buffer_alloc(d, bytes, LOOM_LIFE_ARENA, &buf);
    if (s == LOOM_OK) {
        l->scratch = buf;
        s = loom_cl_buffer_write(d, buf, 0, tab, bytes);
    }
    loom_free(d->ctx, tab, (size_t)n * LOOM_UPDATE_ENTRY * 4);
    LOOM_TRY(s);
    char kname[32];
    snprintf(kname, sizeof kname, "%s_multi", update_kernel(family));
    cl_args a;
    LOOM_TRY(loom_cl_make_kernel(d, LOOM_CLP_OPTIM, "", kname, x, l, &a));
    a_mem(&a, mem_of(&x->in[0]->mem));
    if (family != LOOM_FAM_EMA)
        a_mem(&a, mem_of(&x->in[1]->mem));
    const cl_buf *tb = buf;
    a_mem(&a, loom_cl_block_mem(tb->block));
    loom_cl_arg_u32(&a, (cl_uint)(tb->offset / 4));
    loom_cl_arg_u32(&a, (cl_uint)n);
    if (family != LOOM_FAM_EMA)
        update_params(&a, x);
    a_slot(&a, l);
    l->lws[0] = d->ew_wg;
    l->gws[0] = (size_t)wgs * d->ew_wg;
    return loom_cl_args_done(&a, x, kname);
}

/* One launch per run of a group's members that share blocks; the members
 * after the first are planned with it. */
static loom_status plan_update(cl_dev *d, const loom_exec_node *x, cl_launch *l, int *nl)
{
    *nl = 0;
    if (x->group == 0)
        return LOOM_OK;
    for (int at = 0, r = 0; at < x->group; r++) {
        int len = run_len(x, at);
        l[r].node = l[0].node + at;
        if (len == 1)
            LOOM_TRY(plan_update_one(d, &x[at], &l[r]));
        else
            LOOM_TRY(plan_update_multi(d, &x[at], len, &l[r]));
        (*nl)++;
        at += len;
    }
    return LOOM_OK;
}

/* ---- the family table ------------------------------------------------------------- */

typedef loom_status (*cl_planner)(cl_dev *d, const loom_exec_node *x, cl_launch *l);

typedef struct cl_family {
    cl_planner plan;            /* one launch (NULL where a family plans several) */
    cl_progid prog;             /* where its kernels are */
    unsigned dtypes;            /* the output dtypes it serves */
} cl_family;

#define F_ALL (LOOM_DT_FLOATS | LOOM_DT_BIT(LOOM_I32))
static const cl_family cl_families[LOOM_FAM_COUNT] = {
    [LOOM_FAM_UNARY] = {plan_unary, LOOM_CLP_ELEMENTWISE, LOOM_DT_FLOATS},
    [LOOM_FAM_UNARY_GRAD] = {plan_unary, LOOM_CLP_ELEMENTWISE, LOOM_DT_FLOATS},
    [LOOM_FAM_BINARY] = {plan_binary, LOOM_CLP_ELEMENTWISE, LOOM_DT_FLOATS},
    [LOOM_FAM_BINARY_GRAD] = {plan_binary, LOOM_CLP_ELEMENTWISE, LOOM_DT_FLOATS},
    [LOOM_FAM_WHERE] = {plan_where, LOOM_CLP_ELEMENTWISE, LOOM_DT_FLOATS},
    [LOOM_FAM_CAST] = {plan_cast, LOOM_CLP_CAST, F_ALL},
    [LOOM_FAM_MATMUL] = {NULL, LOOM_CLP_COUNT, LOOM_DT_FLOATS}, /* plan_matmul: 1 or 4 launches */
    [LOOM_FAM_GATHER] = {plan_gather, LOOM_CLP_ELEMENTWISE, F_ALL},
    [LOOM_FAM_SOFTMAX] = {plan_softmax, LOOM_CLP_REDUCE, LOOM_DT_FLOATS},
    [LOOM_FAM_SOFTMAX_GRAD] = {plan_softmax, LOOM_CLP_REDUCE, LOOM_DT_FLOATS},
    [LOOM_FAM_REDUCE] = {plan_reduce, LOOM_CLP_REDUCE, LOOM_DT_FLOATS},
    [LOOM_FAM_ARG_REDUCE] = {plan_arg, LOOM_CLP_REDUCE, LOOM_DT_BIT(LOOM_I32)},
    [LOOM_FAM_ARG_GRAD] = {plan_arg, LOOM_CLP_REDUCE, LOOM_DT_FLOATS},
    [LOOM_FAM_XENT] = {plan_xent, LOOM_CLP_REDUCE, LOOM_DT_BIT(LOOM_F32)},
    [LOOM_FAM_XENT_GRAD] = {plan_xent_grad, LOOM_CLP_REDUCE, LOOM_DT_FLOATS},
    [LOOM_FAM_DROPOUT] = {plan_dropout, LOOM_CLP_ELEMENTWISE, LOOM_DT_FLOATS},
    [LOOM_FAM_SUMSQ] = {NULL, LOOM_CLP_REDUCE, LOOM_DT_BIT(LOOM_F32)}, /* plan_sumsq: one launch per input */
    [LOOM_FAM_RUN_VALUE] = {plan_run_value, LOOM_CLP_REDUCE, LOOM_DT_BIT(LOOM_F32)},
    /* plan_update: a launch per run of a group's members */
    [LOOM_FAM_SGD] = {NULL, LOOM_CLP_OPTIM, LOOM_DT_BIT(LOOM_F32)},
    [LOOM_FAM_ADAM] = {NULL, LOOM_CLP_OPTIM, LOOM_DT_BIT(LOOM_F32)},
    [LOOM_FAM_EMA] = {NULL, LOOM_CLP_OPTIM, LOOM_DT_BIT(LOOM_F32)},
    [LOOM_FAM_CONV] = {loom_cl_plan_conv, LOOM_CLP_CONV, LOOM_DT_FLOATS},
    [LOOM_FAM_POOL] = {loom_cl_plan_pool, LOOM_CLP_CONV, LOOM_DT_FLOATS},
    [LOOM_FAM_POOL_GRAD] = {loom_cl_plan_pool, LOOM_CLP_CONV, LOOM_DT_FLOATS},
    [LOOM_FAM_NORM] = {loom_cl_plan_norm, LOOM_CLP_CONV, LOOM_DT_FLOATS},
    [LOOM_FAM_NORM_UPDATE] = {loom_cl_plan_norm_update, LOOM_CLP_CONV, LOOM_DT_BIT(LOOM_F32)},
    [LOOM_FAM_WINDOW] = {loom_cl_plan_window, LOOM_CLP_CONV, F_ALL},
    [LOOM_FAM_CONCAT] = {NULL, LOOM_CLP_CONV, F_ALL}, /* loom_cl_plan_concat: one launch per input */
    [LOOM_FAM_BMM] = {NULL, LOOM_CLP_COUNT, LOOM_DT_FLOATS}, /* loom_cl_plan_bmm: 1 or 4 launches */
    [LOOM_FAM_LNORM] = {loom_cl_plan_lnorm, LOOM_CLP_SEQ, LOOM_DT_FLOATS},
    [LOOM_FAM_LNORM_GRAD] = {loom_cl_plan_lnorm, LOOM_CLP_SEQ, LOOM_DT_FLOATS},
    [LOOM_FAM_TAKE] = {loom_cl_plan_index, LOOM_CLP_SEQ, LOOM_DT_FLOATS},
    [LOOM_FAM_SCATTER] = {loom_cl_plan_index, LOOM_CLP_SEQ, LOOM_DT_FLOATS},
    [LOOM_FAM_ROPE] = {loom_cl_plan_rope, LOOM_CLP_SEQ, LOOM_DT_FLOATS},
    [LOOM_FAM_ATTENTION] = {loom_cl_plan_attention, LOOM_CLP_ATTENTION, LOOM_DT_FLOATS},
    /* int8: i8 or f32 out (the dtype of each input is the constructor's) */
    [LOOM_FAM_QUANT] = {loom_cl_plan_quant, LOOM_CLP_QUANT, LOOM_DT_BIT(LOOM_F32) | LOOM_DT_BIT(LOOM_I8)},
    /* loom_cl_plan_qmatmul: 1 launch, or 3 + one f32 GEMM per 1024 of K */
    [LOOM_FAM_QMATMUL] = {NULL, LOOM_CLP_QUANT, LOOM_DT_BIT(LOOM_F32) | LOOM_DT_BIT(LOOM_I8)},
    [LOOM_FAM_QCONV] = {loom_cl_plan_qconv, LOOM_CLP_QUANT, LOOM_DT_BIT(LOOM_F32) | LOOM_DT_BIT(LOOM_I8)},
    [LOOM_FAM_MASK] = {loom_cl_plan_mask_update, LOOM_CLP_CONV, LOOM_DT_BIT(LOOM_F32)},
};

static int family_present(loom_op_family f)
{
    return cl_families[f].plan || f == LOOM_FAM_MATMUL || f == LOOM_FAM_SUMSQ || f == LOOM_FAM_SGD ||
           f == LOOM_FAM_ADAM || f == LOOM_FAM_EMA || f == LOOM_FAM_CONCAT ||
           f == LOOM_FAM_BMM || f == LOOM_FAM_QMATMUL;
}

/* The body line an element-wise op's kernels are made from. */
static int has_body(const char *macro, loom_op op)
{
    char text[64];
    snprintf(text, sizeof text, "%s(%s,", macro, loom_op_name(op));
    return loom_cl_source_has(LOOM_CLP_ELEMENTWISE, text);
}

int loom_cl_has_kernel(loom_op op, loom_dtype dt)
{
    const loom_op_def *def = loom_op_def_of(op);
    if (!family_present(def->family))
        return 0;
    if (def->family == LOOM_FAM_ARG_REDUCE || def->family == LOOM_FAM_XENT)
        return loom_dtype_is_float(dt);
    if (!(cl_families[def->family].dtypes & LOOM_DT_BIT(dt)))
        return 0;
    if (def->family == LOOM_FAM_UNARY)
        return has_body("LOOM_UNARY", op);
    if (def->family == LOOM_FAM_BINARY)
        return has_body("LOOM_BINARY", op) && (def->grad != loom_grad_binary || has_body("LOOM_BINARY_GRAD", op));
    return 1;
}

int loom_cl_supports(void *bdev, const loom_exec_node *x)
{
    const loom_node *nd = x->node;
    loom_op_family f = x->def->family;
    if (!family_present(f))
        return 0;
    /* kernels index with 32-bit element offsets (loom_cl_max_block) */
    if ((uint64_t)nd->numel > UINT32_MAX)
        return 0;
    if (f == LOOM_FAM_MATMUL && (nd->attr.bias || nd->attr.act != LOOM_OP_NONE || nd->attr.dact != LOOM_OP_NONE) &&
        (((const cl_dev *)bdev)->route == LOOM_CLR_CLBLAST || (nd->attr.act != LOOM_OP_NONE && !loom_op_epilogue(nd->attr.act)) ||
         (nd->attr.dact != LOOM_OP_NONE && !loom_op_epilogue(nd->attr.dact))))
        return 0; /* the own GEMM's epilogues (gemm.cl); CLBlast takes none */
    if (x->def->flags & LOOM_OPF_MULTI)
        return 1;
    /* the loss and prediction fused in: one work group over every row */
    if ((x->also[0] || x->also[1]) && (uint64_t)nd->numel > (1u << 20))
        return 0;
    if (f == LOOM_FAM_ARG_REDUCE || f == LOOM_FAM_XENT)
        return loom_dtype_is_float(x->in[0]->node->dtype);
    if (!(cl_families[f].dtypes & LOOM_DT_BIT(nd->dtype)))
        return 0;
    if (f == LOOM_FAM_UNARY_GRAD)
        return has_body("LOOM_UNARY", (loom_op)nd->attr.fwd);
    if (f == LOOM_FAM_BINARY_GRAD)
        return has_body("LOOM_BINARY_GRAD", (loom_op)nd->attr.fwd);
    return loom_cl_has_kernel(nd->op, nd->dtype);
}

int loom_cl_launch_count(const cl_dev *d, const loom_exec_node *x)
{
    if (x->def->family == LOOM_FAM_SUMSQ)
        return x->nin > 0 ? x->nin : 1;
    if (x->def->family == LOOM_FAM_MATMUL && converts(d, x) && !loom_cl_gemm_own(d, x))
        return 4;
    if (x->def->flags & LOOM_OPF_MULTI) {
        if (x->group == 0)
            return 0; /* launched with its group's first node */
        return update_runs(x);
    }
    if (x->def->family == LOOM_FAM_CONCAT)
        return x->nin > 0 ? x->nin : 1;
    if (x->def->family == LOOM_FAM_BMM)
        return loom_cl_bmm_launches(d, x);
    if (x->def->family == LOOM_FAM_QMATMUL)
        return loom_cl_qmatmul_launches(d, x);
    return 1;
}

loom_status loom_cl_plan_node(cl_dev *d, const loom_exec_node *x, int node, cl_launch *out, int cap, int *n)
{
    const loom_node *nd = x->node;
    int need = loom_cl_launch_count(d, x);
    if (need > cap)
        return loom_fail(d->ctx, LOOM_E_INVALID, "%s: internal: %d launches for op %s, room for %d", d->label, need,
                         loom_op_name(nd->op), cap);
    *n = need;
    for (int i = 0; i < need; i++) {
        memset(&out[i], 0, sizeof out[i]);
        out[i].node = node;
        out[i].dims = 1;
        out[i].gws[1] = out[i].lws[1] = 1;
        out[i].run_arg = -1;
    }
    const cl_family *f = &cl_families[x->def->family];
    if (x->def->family == LOOM_FAM_MATMUL)
        return plan_matmul(d, x, out, n);
    if (x->def->family == LOOM_FAM_SUMSQ)
        return plan_sumsq(d, x, out, n);
    if (x->def->flags & LOOM_OPF_MULTI)
        return plan_update(d, x, out, n);
    if (x->def->family == LOOM_FAM_CONCAT)
        return loom_cl_plan_concat(d, x, out, n);
    if (x->def->family == LOOM_FAM_BMM)
        return loom_cl_plan_bmm(d, x, out, n);
    if (x->def->family == LOOM_FAM_QMATMUL)
        return loom_cl_plan_qmatmul(d, x, out, n);
    if (!f->plan)
        return loom_fail(d->ctx, LOOM_E_UNSUPPORTED, "%s: no kernel for op %s (\"%s\")", d->label,
                         loom_op_name(nd->op), nd->name);
    return f->plan(d, x, out);
}

loom_status loom_cl_set_run_slot(cl_dev *d, const loom_exec_node *x, const cl_launch *l, const loom_run_args *args)
{
    cl_args a = {d, l->kernel, (cl_uint)l->run_arg, CL_SUCCESS, 0};
    loom_cl_arg(&a, sizeof(loom_run_slot), &args->slots[x->run_slot]);
    return loom_cl_args_done(&a, x, "the run slot");
}
