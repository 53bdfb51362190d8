/* One node of a program -> the kernel launches that compute it, with every
 * argument set here, once, at prepare. Only the per-run values (learning
 * rate, Adam's step size, the EMA's decay, the dropout hash of the step)
 * are set again at each run. Index math mirrors src/backends/cpu/cpu_kernels.c. */
#include "cl_internal.h"
#include "../common/layout.h"
#include "cl_codes.h"

#include <assert.h>
#include <math.h>
#include <string.h>

typedef struct argset {
    cl_dev *d;
    cl_kernel k;
    cl_uint i;
    cl_int err;
    cl_uint bad;               /* index of the first argument that failed */
} argset;

static void a_raw(argset *a, size_t n, const void *v)
{
    cl_int e = clSetKernelArg(a->k, a->i, n, v);
    if (e != CL_SUCCESS && a->err == CL_SUCCESS) {
        a->err = e;
        a->bad = a->i;
    }
    a->i++;
}

static void a_mem(argset *a, cl_mem m) { a_raw(a, sizeof m, &m); }
static void a_u32(argset *a, cl_uint v) { a_raw(a, sizeof v, &v); }
static void a_i32(argset *a, cl_int v) { a_raw(a, sizeof v, &v); }
static void a_f32(argset *a, cl_float v) { a_raw(a, sizeof v, &v); }

static void a_u4(argset *a, const int64_t v[4])
{
    cl_uint4 u;
    for (int i = 0; i < 4; i++)
        u.s[i] = (cl_uint)v[i];
    a_raw(a, sizeof u, &u);
}

static cl_mem mem_of(const loom_bref *m)
{
    return loom_cl_block_mem(((const cl_buf *)m->buf)->block);
}

/* Offset in 4-byte elements from the block's start. */
static cl_uint elem_off(const loom_bref *m)
{
    uint64_t bytes = ((const cl_buf *)m->buf)->offset + m->offset;
    assert(bytes % 4 == 0 && bytes / 4 <= 0xffffffffu);
    return (cl_uint)(bytes / 4);
}

static void a_tensor(argset *a, const loom_exec_tensor *t)
{
    a_mem(a, mem_of(&t->mem));
    a_u32(a, elem_off(&t->mem));
}

static loom_status args_done(argset *a, const loom_exec_node *x, const char *kname)
{
    if (a->err == CL_SUCCESS)
        return LOOM_OK;
    return loom_cl_fail(a->d, a->err, "clSetKernelArg", "argument %u of kernel %s for op %s (\"%s\")", a->bad, kname,
                        loom_op_name(x->node->op), x->node->name);
}

static loom_status make_kernel(cl_dev *d, cl_progid p, const char *name, const loom_exec_node *x, cl_launch *l,
                               argset *a)
{
    cl_program prog;
    LOOM_TRY(loom_cl_program(d, p, &prog));
    cl_int e = CL_SUCCESS;
    l->kernel = clCreateKernel(prog, name, &e);
    if (e != CL_SUCCESS)
        return loom_cl_fail(d, e, "clCreateKernel", "kernel %s for op %s (\"%s\")", name, loom_op_name(x->node->op),
                            x->node->name);
    l->kind = LOOM_CLL_KERNEL;
    *a = (argset){d, l->kernel, 0, CL_SUCCESS, 0};
    return LOOM_OK;
}

static size_t round_up(size_t v, size_t m)
{
    return (v + m - 1) / m * m;
}

/* Element-wise kernels: one item per 8 values. */
static void ew_size(cl_dev *d, cl_launch *l, int64_t n)
{
    l->lws[0] = d->ew_wg;
    l->gws[0] = round_up((size_t)((n + 7) / 8), l->lws[0]);
}

/* (column chunks of 8, rows): as many chunks per group as a row has, up
 * to the group size, the rest of the group along the rows. */
static void rows_size(cl_dev *d, cl_launch *l, int64_t rows, int64_t c)
{
    size_t chunks = (size_t)((c + 7) / 8), wx = 1;
    while (wx < chunks && wx < d->ew_wg)
        wx *= 2;
    size_t wy = d->ew_wg / wx;
    l->dims = 2;
    l->lws[0] = wx;
    l->lws[1] = wy;
    l->gws[0] = round_up(chunks, wx);
    l->gws[1] = round_up((size_t)rows, wy);
}

static cl_uint unary_code(loom_op op)
{
    switch (op) {
    case LOOM_OP_SCALE: return LOOM_CL_U_SCALE;
    case LOOM_OP_RELU: return LOOM_CL_U_RELU;
    case LOOM_OP_SIGMOID: return LOOM_CL_U_SIGMOID;
    case LOOM_OP_TANH: return LOOM_CL_U_TANH;
    case LOOM_OP_GELU: return LOOM_CL_U_GELU;
    case LOOM_OP_EXP: return LOOM_CL_U_EXP;
    case LOOM_OP_LOG: return LOOM_CL_U_LOG;
    default: return LOOM_CL_U_SQUARE;
    }
}

static cl_uint grad_code(loom_op op)
{
    switch (op) {
    case LOOM_OP_RELU_GRAD: return LOOM_CL_G_RELU;
    case LOOM_OP_SIGMOID_GRAD: return LOOM_CL_G_SIGMOID;
    case LOOM_OP_TANH_GRAD: return LOOM_CL_G_TANH;
    default: return LOOM_CL_G_GELU;
    }
}

static cl_uint binary_code(loom_op op)
{
    switch (op) {
    case LOOM_OP_ADD: return LOOM_CL_B_ADD;
    case LOOM_OP_SUB: return LOOM_CL_B_SUB;
    case LOOM_OP_MUL: return LOOM_CL_B_MUL;
    default: return LOOM_CL_B_DIV;
    }
}

static loom_status plan_binary(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    const loom_node *o = x->node, *na = x->in[0]->node, *nb = x->in[1]->node;
    int64_t dd[4], sa[4], sb[4];
    loom_shape4(o->ndim, o->shape, dd);
    loom_bstrides(na->ndim, na->shape, dd, sa);
    loom_bstrides(nb->ndim, nb->shape, dd, sb);
    argset a;
    const char *kname;
    if (na->numel == o->numel && nb->numel == o->numel) {
        kname = "ew_binary";
    } else if (na->numel == o->numel && nb->numel == dd[3] && (sb[0] == 0 || dd[0] == 1) &&
               (sb[1] == 0 || dd[1] == 1) && (sb[2] == 0 || dd[2] == 1)) {
        kname = "ew_binary_row"; /* a bias over the last axis */
    } else {
        kname = "ew_binary_bcast";
    }
    LOOM_TRY(make_kernel(d, LOOM_CLP_ELEMENTWISE, kname, x, l, &a));
    a_tensor(&a, x->out);
    a_tensor(&a, x->in[0]);
    a_tensor(&a, x->in[1]);
    if (!strcmp(kname, "ew_binary_row")) {
        a_u32(&a, (cl_uint)(o->numel / dd[3]));
        a_u32(&a, (cl_uint)dd[3]);
        a_u32(&a, binary_code(o->op));
        rows_size(d, l, o->numel / dd[3], dd[3]);
        return args_done(&a, x, kname);
    }
    if (!strcmp(kname, "ew_binary_bcast")) {
        a_u32(&a, (cl_uint)(o->numel / dd[3]));
        a_u32(&a, binary_code(o->op));
        a_u4(&a, dd);
        a_u4(&a, sa);
        a_u4(&a, sb);
        rows_size(d, l, o->numel / dd[3], dd[3]);
        return args_done(&a, x, kname);
    }
    a_u32(&a, (cl_uint)o->numel);
    a_u32(&a, binary_code(o->op));
    ew_size(d, l, o->numel);
    return args_done(&a, x, kname);
}

/* y[i] = a[offset of i in (dims, strides)]: EXPAND and TRANSPOSE. */
static loom_status plan_gather(cl_dev *d, const loom_exec_node *x, cl_launch *l, const int64_t dd[4],
                               const int64_t st[4])
{
    argset a;
    LOOM_TRY(make_kernel(d, LOOM_CLP_ELEMENTWISE, "ew_gather", x, l, &a));
    a_tensor(&a, x->out);
    a_tensor(&a, x->in[0]);
    a_u32(&a, (cl_uint)(x->node->numel / dd[3]));
    a_u4(&a, dd);
    a_u4(&a, st);
    rows_size(d, l, x->node->numel / dd[3], dd[3]);
    return args_done(&a, x, "ew_gather");
}

static loom_status plan_expand(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    const loom_node *o = x->node;
    int64_t dd[4], sa[4];
    loom_shape4(o->ndim, o->shape, dd);
    loom_bstrides(o->attr.rdim, o->attr.rshape, dd, sa);
    return plan_gather(d, x, l, dd, sa);
}

static loom_status plan_transpose(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    int64_t dd[4], st[4];
    loom_transpose_strides(x->in[0]->node, x->node, dd, st);
    return plan_gather(d, x, l, dd, st);
}

/* REDUCE_SUM: the kept dims and the reduced dims, each packed to the right
 * of a rank-4 index space with the input's strides. */
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
    argset a;
    /* Leading dims reduced, trailing ones kept: [R, C] -> [C], a column
     * sum with vector loads (worth it from 8 columns). */
    int split = 4;
    while (split > 0 && r4[split - 1] == dd[split - 1])
        split--;
    int cols = nout >= 8;
    for (int i = 0; i < split; i++)
        cols &= r4[i] == 1;
    if (cols) {
        LOOM_TRY(make_kernel(d, LOOM_CLP_REDUCE, "red_sum_cols", x, l, &a));
        a_tensor(&a, x->out);
        a_tensor(&a, x->in[0]);
        a_u32(&a, (cl_uint)R);
        a_u32(&a, (cl_uint)nout);
        a_f32(&a, nd->attr.alpha);
        l->lws[0] = d->red_wg;
        l->gws[0] = round_up((size_t)((nout + 7) / 8), l->lws[0]);
        return args_done(&a, x, "red_sum_cols");
    }
    /* Few long reductions: a work group each; else an item each. */
    int wg = R >= 128 && nout <= 256;
    const char *kname = wg ? "red_sum_wg" : "red_sum_item";
    LOOM_TRY(make_kernel(d, LOOM_CLP_REDUCE, kname, x, l, &a));
    a_tensor(&a, x->out);
    a_tensor(&a, x->in[0]);
    a_u32(&a, (cl_uint)nout);
    a_u4(&a, kd);
    a_u4(&a, ks);
    a_u4(&a, rd);
    a_u4(&a, rs);
    a_u32(&a, (cl_uint)R);
    a_f32(&a, nd->attr.alpha);
    l->lws[0] = d->red_wg;
    l->gws[0] = wg ? (size_t)nout * l->lws[0] : round_up((size_t)nout, l->lws[0]);
    return args_done(&a, x, kname);
}

/* Softmax family and the sparse cross-entropy gradient, rows of c. */
static loom_status plan_rows(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    const loom_node *nd = x->node;
    const loom_exec_tensor *ta = x->in[0], *tb = x->out, *tl = x->out;
    cl_uint mode;
    switch (nd->op) {
    case LOOM_OP_SOFTMAX: mode = LOOM_CL_R_SOFTMAX; break;
    case LOOM_OP_LOG_SOFTMAX: mode = LOOM_CL_R_LOG_SOFTMAX; break;
    case LOOM_OP_SOFTMAX_GRAD: mode = LOOM_CL_R_SOFTMAX_GRAD, tb = x->in[1]; break;
    case LOOM_OP_LOG_SOFTMAX_GRAD: mode = LOOM_CL_R_LOG_SOFTMAX_GRAD, tb = x->in[1]; break;
    default: /* SPARSE_XENT_GRAD: in = dloss, logits, labels */
        mode = LOOM_CL_R_XENT_GRAD, ta = x->in[1], tb = x->in[0], tl = x->in[2];
        break;
    }
    int64_t c = nd->shape[nd->ndim - 1], rows = nd->numel / c;
    int wg = c > 128;
    const char *kname = wg ? "rows_wg" : "rows_item";
    argset a;
    LOOM_TRY(make_kernel(d, LOOM_CLP_REDUCE, kname, x, l, &a));
    a_tensor(&a, x->out);
    a_tensor(&a, ta);
    a_tensor(&a, tb);
    a_tensor(&a, tl);
    a_u32(&a, (cl_uint)rows);
    a_u32(&a, (cl_uint)c);
    a_u32(&a, mode);
    l->lws[0] = d->red_wg;
    l->gws[0] = wg ? (size_t)rows * l->lws[0] : round_up((size_t)rows, l->lws[0]);
    return args_done(&a, x, kname);
}

static loom_status plan_update(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    const loom_node *nd = x->node;
    const loom_attr *at = &nd->attr;
    int64_t n = x->in[0]->node->numel;
    const loom_exec_tensor *p = x->in[0];
    const loom_exec_tensor *ss = at->clip ? x->in[x->nin - 1] : p;
    argset a;
    const char *kname;
    if (nd->op == LOOM_OP_EMA_UPDATE) {
        kname = "opt_ema";
        LOOM_TRY(make_kernel(d, LOOM_CLP_OPTIM, kname, x, l, &a));
        a_tensor(&a, x->in[0]);
        a_tensor(&a, x->in[1]);
        a_u32(&a, (cl_uint)n);
        l->runarg = LOOM_CLR_EMA;
    } else if (nd->op == LOOM_OP_SGD_UPDATE) {
        kname = "opt_sgd";
        LOOM_TRY(make_kernel(d, LOOM_CLP_OPTIM, kname, x, l, &a));
        a_tensor(&a, p);
        a_tensor(&a, x->in[1]);
        a_tensor(&a, at->momentum != 0.0f ? x->in[2] : p);
        a_u32(&a, (cl_uint)n);
        a_tensor(&a, ss);
        a_f32(&a, at->clip_norm);
        a_i32(&a, at->clip);
        a_f32(&a, at->l1);
        a_f32(&a, at->l2);
        a_f32(&a, at->momentum);
        a_i32(&a, at->nesterov);
        l->runarg = LOOM_CLR_SGD;
    } else {
        kname = "opt_adam";
        LOOM_TRY(make_kernel(d, LOOM_CLP_OPTIM, kname, x, l, &a));
        a_tensor(&a, p);
        a_tensor(&a, x->in[1]);
        a_tensor(&a, x->in[2]);
        a_tensor(&a, x->in[3]);
        a_u32(&a, (cl_uint)n);
        a_tensor(&a, ss);
        a_f32(&a, at->clip_norm);
        a_i32(&a, at->clip);
        a_f32(&a, at->l1);
        a_f32(&a, at->l2);
        a_f32(&a, at->beta1);
        a_f32(&a, at->beta2);
        a_f32(&a, at->eps);
        a_f32(&a, at->weight_decay);
        l->runarg = LOOM_CLR_ADAM;
    }
    l->runarg_index = a.i;
    ew_size(d, l, n);
    return args_done(&a, x, kname);
}

int loom_cl_launch_count(const loom_exec_node *x)
{
    return x->node->op == LOOM_OP_SUMSQ ? (x->nin > 0 ? x->nin : 1) : 1;
}

uint32_t loom_cl_dropout_h0(uint32_t seed, uint32_t salt, uint32_t step)
{
    return loom_rng_hash(seed ^ loom_rng_hash(salt * 0x9e3779b9U + loom_rng_hash(step)));
}

loom_status loom_cl_plan_node(cl_dev *d, const loom_exec_node *x, int node, cl_launch *out, int cap, int *n)
{
    const loom_node *nd = x->node;
    int need = loom_cl_launch_count(x);
    if (need > cap)
        return loom_fail(d->ctx, LOOM_E_INVALID, "%s: internal: %d launches for op %s, room for %d", d->label, need,
                         loom_op_name(nd->op), cap);
    *n = need;
    for (int i = 0; i < need; i++) {
        memset(&out[i], 0, sizeof out[i]);
        out[i].node = node;
        out[i].dims = 1;
        out[i].gws[1] = out[i].lws[1] = 1;
    }
    cl_launch *l = out;
    argset a;
    switch (nd->op) {
    case LOOM_OP_MATMUL: {
        const loom_node *na = x->in[0]->node, *nb = x->in[1]->node;
        cl_gemm_call *g = &l->gemm;
        l->kind = LOOM_CLL_GEMM;
        g->ta = nd->attr.ta;
        g->tb = nd->attr.tb;
        g->m = (size_t)nd->shape[0];
        g->n = (size_t)nd->shape[1];
        g->k = (size_t)(nd->attr.ta ? na->shape[0] : na->shape[1]);
        g->a = mem_of(&x->in[0]->mem);
        g->b = mem_of(&x->in[1]->mem);
        g->c = mem_of(&x->out->mem);
        g->ao = elem_off(&x->in[0]->mem);
        g->bo = elem_off(&x->in[1]->mem);
        g->co = elem_off(&x->out->mem);
        g->lda = (size_t)na->shape[1];
        g->ldb = (size_t)nb->shape[1];
        g->ldc = g->n;
        return LOOM_OK;
    }
    case LOOM_OP_ADD: case LOOM_OP_SUB: case LOOM_OP_MUL: case LOOM_OP_DIV:
        return plan_binary(d, x, l);
    case LOOM_OP_SCALE: case LOOM_OP_RELU: case LOOM_OP_SIGMOID: case LOOM_OP_TANH:
    case LOOM_OP_GELU: case LOOM_OP_EXP: case LOOM_OP_LOG: case LOOM_OP_SQUARE:
        LOOM_TRY(make_kernel(d, LOOM_CLP_ELEMENTWISE, "ew_unary", x, l, &a));
        a_tensor(&a, x->out);
        a_tensor(&a, x->in[0]);
        a_u32(&a, (cl_uint)nd->numel);
        a_u32(&a, unary_code(nd->op));
        a_f32(&a, nd->attr.alpha);
        ew_size(d, l, nd->numel);
        return args_done(&a, x, "ew_unary");
    case LOOM_OP_COPY: {
        const loom_bref *src = &x->in[0]->mem, *dst = &x->out->mem;
        if (mem_of(src) == mem_of(dst) && elem_off(src) == elem_off(dst))
            return LOOM_OK; /* a reshape in place: nothing moves */
        l->kind = LOOM_CLL_COPY;
        l->copy_src = mem_of(src);
        l->copy_dst = mem_of(dst);
        l->copy_so = (size_t)elem_off(src) * 4;
        l->copy_do = (size_t)elem_off(dst) * 4;
        l->copy_bytes = (size_t)dst->bytes;
        return LOOM_OK;
    }
    case LOOM_OP_RELU_GRAD: case LOOM_OP_SIGMOID_GRAD: case LOOM_OP_TANH_GRAD: case LOOM_OP_GELU_GRAD:
        LOOM_TRY(make_kernel(d, LOOM_CLP_ELEMENTWISE, "ew_unary_grad", x, l, &a));
        a_tensor(&a, x->out);
        a_tensor(&a, x->in[0]);
        a_tensor(&a, x->in[1]);
        a_u32(&a, (cl_uint)nd->numel);
        a_u32(&a, grad_code(nd->op));
        ew_size(d, l, nd->numel);
        return args_done(&a, x, "ew_unary_grad");
    case LOOM_OP_SOFTMAX: case LOOM_OP_LOG_SOFTMAX: case LOOM_OP_SOFTMAX_GRAD: case LOOM_OP_LOG_SOFTMAX_GRAD:
    case LOOM_OP_SPARSE_XENT_GRAD:
        return plan_rows(d, x, l);
    case LOOM_OP_REDUCE_SUM:
        return plan_reduce(d, x, l);
    case LOOM_OP_EXPAND:
        return plan_expand(d, x, l);
    case LOOM_OP_TRANSPOSE:
        return plan_transpose(d, x, l);
    case LOOM_OP_ARGMAX: {
        const loom_node *ni = x->in[0]->node;
        int ax = nd->attr.axis;
        int64_t outer = 1, inner = 1;
        for (int i = 0; i < ax; i++)
            outer *= ni->shape[i];
        for (int i = ax + 1; i < ni->ndim; i++)
            inner *= ni->shape[i];
        LOOM_TRY(make_kernel(d, LOOM_CLP_REDUCE, "red_argmax", x, l, &a));
        a_tensor(&a, x->out);
        a_tensor(&a, x->in[0]);
        a_u32(&a, (cl_uint)outer);
        a_u32(&a, (cl_uint)ni->shape[ax]);
        a_u32(&a, (cl_uint)inner);
        l->lws[0] = d->red_wg;
        l->gws[0] = round_up((size_t)(outer * inner), l->lws[0]);
        return args_done(&a, x, "red_argmax");
    }
    case LOOM_OP_SPARSE_XENT: {
        const loom_node *nz = x->in[0]->node;
        LOOM_TRY(make_kernel(d, LOOM_CLP_REDUCE, "xent", x, l, &a));
        a_tensor(&a, x->out);
        a_tensor(&a, x->in[0]);
        a_tensor(&a, x->in[1]);
        a_u32(&a, (cl_uint)nz->shape[0]);
        a_u32(&a, (cl_uint)nz->shape[1]);
        l->lws[0] = l->gws[0] = d->red_wg;
        return args_done(&a, x, "xent");
    }
    case LOOM_OP_DROPOUT: {
        const loom_attr *at = &nd->attr;
        LOOM_TRY(make_kernel(d, LOOM_CLP_ELEMENTWISE, "ew_dropout", x, l, &a));
        a_tensor(&a, x->out);
        a_tensor(&a, x->in[0]);
        a_u32(&a, (cl_uint)nd->numel);
        l->runarg = LOOM_CLR_DROPOUT;
        l->runarg_index = a.i;
        a_u32(&a, 0); /* h0, per run */
        a_f32(&a, at->alpha);
        a_f32(&a, 1.0f / (1.0f - at->alpha));
        ew_size(d, l, nd->numel);
        return args_done(&a, x, "ew_dropout");
    }
    case LOOM_OP_SUMSQ:
        for (int k = 0; k < x->nin; k++) {
            LOOM_TRY(make_kernel(d, LOOM_CLP_REDUCE, "red_sumsq", x, &out[k], &a));
            a_tensor(&a, x->out);
            a_tensor(&a, x->in[k]);
            a_u32(&a, (cl_uint)x->in[k]->node->numel);
            a_i32(&a, k > 0);
            out[k].lws[0] = out[k].gws[0] = d->red_wg;
            LOOM_TRY(args_done(&a, x, "red_sumsq"));
        }
        return LOOM_OK;
    case LOOM_OP_SGD_UPDATE: case LOOM_OP_ADAM_UPDATE: case LOOM_OP_EMA_UPDATE:
        return plan_update(d, x, l);
    default:
        return loom_fail(d->ctx, LOOM_E_UNSUPPORTED, "%s: no kernel for op %s (\"%s\")", d->label,
                         loom_op_name(nd->op), nd->name);
    }
}

loom_status loom_cl_set_runargs(cl_dev *d, const loom_exec_node *x, const cl_launch *l, const loom_run_args *args)
{
    const loom_attr *at = &x->node->attr;
    argset a = {d, l->kernel, l->runarg_index, CL_SUCCESS, 0};
    switch (l->runarg) {
    case LOOM_CLR_DROPOUT:
        a_u32(&a, loom_cl_dropout_h0(at->seed, at->salt, (uint32_t)args->step));
        break;
    case LOOM_CLR_SGD:
        a_f32(&a, args->lr);
        break;
    case LOOM_CLR_ADAM: {
        a_f32(&a, args->lr);
        a_f32(&a, loom_adam_step_size(at, args->lr, args->step));
        break;
    }
    case LOOM_CLR_EMA:
        a_f32(&a, loom_ema_decay(at, args->step));
        break;
    default:
        return LOOM_OK;
    }
    return args_done(&a, x, "per-run arguments");
}
