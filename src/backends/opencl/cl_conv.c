/* Convolutional networks' ops as OpenCL launches (kernels in
 * shaders/opencl/conv.cl): convolutions (direct, register-blocked: on PoCL
 * it measured faster than im2col + CLBlast, see the note),
 * pooling, normalization, windows and concat. Every argument is set here,
 * once, at prepare; the geometry comes from src/core/conv_geom.h. */
#include "cl_internal.h"
#include "../common/layout.h"
#include "../../core/conv_geom.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

/* ---- kernels and sizes ------------------------------------------------------------ */

static loom_status kernel_in(cl_dev *d, const char *variant, const char *name, const loom_exec_node *x, cl_launch *l,
                             cl_args *a)
{
    return loom_cl_make_kernel(d, LOOM_CLP_CONV, variant, name, x, l, a);
}

static loom_status kernel(cl_dev *d, loom_dtype dt, const char *name, const loom_exec_node *x, cl_launch *l, cl_args *a)
{
    return kernel_in(d, loom_cl_dtype_variant(dt), name, x, l, a);
}

static void size1(cl_launch *l, uint64_t items, size_t wg)
{
    l->lws[0] = wg;
    l->gws[0] = loom_cl_round_up((size_t)items, wg);
}

/* ---- convolutions ------------------------------------------------------------------ */

#define TN 8                   /* conv.cl's CONV_TN; its CONV_TM is the host's choice */

loom_status loom_cl_plan_conv(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    static const char *const names[3] = {"conv_fwd", "conv_bwd_data", "conv_bwd_filter"};
    const loom_node *nd = x->node, *in[3] = {x->in[0]->node, x->in[1]->node, NULL};
    int code = x->def->code;
    loom_conv_geom g = loom_conv_geom_of(code, nd, in);
    loom_pc_conv pc = {(uint32_t)g.n, (uint32_t)g.c, (uint32_t)g.h, (uint32_t)g.w, (uint32_t)g.oc, (uint32_t)g.oh,
                       (uint32_t)g.ow, (uint32_t)g.kh, (uint32_t)g.kw, (uint32_t)g.cg, (uint32_t)g.ocg,
                       (uint32_t)g.sh, (uint32_t)g.sw, (uint32_t)g.dh, (uint32_t)g.dw, (uint32_t)g.pt,
                       (uint32_t)g.pl, (uint32_t)(x->nin > 2), 0, 0, 0};
    uint64_t m = code == LOOM_CONV_BWD_DATA ? g.cg : g.ocg;
    uint64_t n = code == LOOM_CONV_FWD ? g.n * g.oh * g.ow : code == LOOM_CONV_BWD_DATA ? g.n * g.h * g.w
                                                                                         : g.cg * g.kh * g.kw;
    /* 16 rows per item, or 4 where the GEMM has fewer rows (depthwise) */
    uint64_t tm = m >= 16 ? 16 : 4;
    char variant[48];
    snprintf(variant, sizeof variant, "%s%s-DCONV_TM=%u", loom_cl_dtype_variant(nd->dtype), *loom_cl_dtype_variant(nd->dtype) ? " " : "",
             (unsigned)tm);
    cl_args a;
    LOOM_TRY(kernel_in(d, variant, names[code], x, l, &a));
    loom_cl_arg_tensor(&a, x->out);
    loom_cl_arg_tensor(&a, x->in[0]);
    loom_cl_arg_tensor(&a, x->in[1]);
    loom_cl_arg_tensor(&a, x->nin > 2 ? x->in[2] : x->in[0]);
    loom_cl_arg(&a, sizeof pc, &pc);
    l->dims = 2;
    size1(l, ((m + tm - 1) / tm) * ((n + TN - 1) / TN), 64);
    l->gws[1] = (size_t)g.groups;
    l->lws[1] = 1;
    return loom_cl_args_done(&a, x, names[code]);
}

/* ---- pooling ------------------------------------------------------------------------ */

loom_status loom_cl_plan_pool(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    int grad = x->def->family == LOOM_FAM_POOL_GRAD;
    const loom_node *nd = x->node;
    loom_conv_geom g = loom_pool_geom_of(grad, nd, x->in[0]->node);
    loom_pc_pool pc = {(uint32_t)(g.n * g.c), (uint32_t)g.h, (uint32_t)g.w, (uint32_t)g.oh, (uint32_t)g.ow,
                       (uint32_t)g.kh, (uint32_t)g.kw, (uint32_t)g.sh, (uint32_t)g.sw, (uint32_t)g.pt,
                       (uint32_t)g.pl, (uint32_t)nd->attr.side};
    const char *name = grad ? "pool_grad" : "pool";
    cl_args a;
    LOOM_TRY(kernel(d, nd->dtype, name, x, l, &a));
    loom_cl_arg_tensor(&a, x->out);
    loom_cl_arg_tensor(&a, x->in[0]);
    if (grad)
        loom_cl_arg_tensor(&a, x->nin > 1 ? x->in[1] : x->in[0]);
    loom_cl_arg(&a, sizeof pc, &pc);
    loom_cl_arg_u32(&a, (cl_uint)x->def->code);
    size1(l, (uint64_t)nd->numel, d->ew_wg);
    return loom_cl_args_done(&a, x, name);
}

/* ---- normalization -------------------------------------------------------------------- */

loom_status loom_cl_plan_norm(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    const loom_node *nd = x->node;
    int code = x->def->code;
    const loom_node *nx = code == LOOM_NORM_STATS || code == LOOM_NORM_APPLY ? x->in[0]->node : x->in[1]->node;
    loom_norm_geom g = loom_norm_geom_of(nx, nd->attr.cgroups);
    loom_pc_norm pc = {(uint32_t)nx->numel, (uint32_t)g.n, (uint32_t)g.c, (uint32_t)g.s, (uint32_t)g.q,
                       (uint32_t)g.cpg, (uint32_t)g.blocks, (uint32_t)g.len, (uint32_t)g.stride, nd->attr.eps,
                       (uint32_t)nd->attr.side};
    int apply = code == LOOM_NORM_APPLY || code == LOOM_NORM_GRAD;
    const char *name = apply ? "norm_apply" : "norm_reduce";
    cl_args a;
    LOOM_TRY(kernel(d, nx->dtype, name, x, l, &a));
    loom_cl_arg_tensor(&a, x->out);
    /* the inputs in order, the last repeated where the kernel has more */
    int slots = apply ? 5 : 4;
    for (int k = 0; k < slots; k++)
        loom_cl_arg_tensor(&a, x->in[k < x->nin ? k : x->nin - 1]);
    loom_cl_arg(&a, sizeof pc, &pc);
    loom_cl_arg_u32(&a, (cl_uint)code);
    if (apply) {
        size1(l, (uint64_t)nx->numel, d->ew_wg);
    } else {
        l->lws[0] = d->red_wg;
        l->gws[0] = (size_t)(code == LOOM_NORM_DGAMMA ? g.c : g.q) * d->red_wg;
    }
    return loom_cl_args_done(&a, x, name);
}

loom_status loom_cl_plan_norm_update(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    cl_args a;
    LOOM_TRY(kernel(d, LOOM_F32, "norm_update", x, l, &a));
    loom_cl_arg_tensor(&a, x->in[0]);
    loom_cl_arg_tensor(&a, x->in[1]);
    loom_cl_arg_u32(&a, (cl_uint)x->in[0]->node->numel);
    cl_float mom = x->node->attr.momentum;
    loom_cl_arg(&a, sizeof mom, &mom);
    size1(l, (uint64_t)x->in[0]->node->numel, d->ew_wg);
    return loom_cl_args_done(&a, x, "norm_update");
}

loom_status loom_cl_plan_mask_update(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    cl_args a;
    LOOM_TRY(kernel(d, LOOM_F32, "mask_update", x, l, &a));
    loom_cl_arg_tensor(&a, x->in[0]);
    loom_cl_arg_tensor(&a, x->in[1]);
    loom_cl_arg_u32(&a, (cl_uint)x->in[0]->node->numel);
    size1(l, (uint64_t)x->in[0]->node->numel, d->ew_wg);
    return loom_cl_args_done(&a, x, "mask_update");
}

/* ---- windows and concat ---------------------------------------------------------------- */

/* The program whose WORD is the dtype's size (i32 moves as the f32 one's). */
static loom_dtype word_dtype(loom_dtype dt)
{
    return loom_dtype_size(dt) == 2 ? dt : LOOM_F32;
}

loom_status loom_cl_plan_window(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    const loom_node *nd = x->node, *ni = x->in[0]->node;
    const loom_attr *at = &nd->attr;
    int code = x->def->code;
    loom_pc_window pc;
    memset(&pc, 0, sizeof pc);
    int64_t od[4], id[4];
    loom_shape4(nd->ndim, nd->shape, od);
    loom_shape4(ni->ndim, ni->shape, id);
    pc.n = (uint32_t)nd->numel;
    pc.mode = (uint32_t)at->wmode;
    for (int i = 0; i < 4; i++) {
        pc.od[i] = (uint32_t)od[i];
        pc.id[i] = (uint32_t)id[i];
        pc.start[i] = (int32_t)at->wstart[i];
        pc.step[i] = (uint32_t)at->wstep[i];
    }
    cl_args a;
    if (code == LOOM_WINDOW_PAD_GRAD) {
        LOOM_TRY(kernel(d, nd->dtype, "pad_grad", x, l, &a));
        loom_cl_arg_tensor(&a, x->out);
        loom_cl_arg_tensor(&a, x->in[0]);
        loom_cl_arg(&a, sizeof pc, &pc);
        size1(l, pc.n, d->ew_wg);
        return loom_cl_args_done(&a, x, "pad_grad");
    }
    /* the constant's bits in the dtype */
    float v = code == LOOM_WINDOW_PAD ? at->wvalue : 0.0f;
    cl_uint fill = 0;
    if (nd->dtype == LOOM_F16)
        fill = loom_f32_to_f16(v);
    else if (nd->dtype == LOOM_BF16)
        fill = loom_f32_to_bf16(v);
    else if (nd->dtype == LOOM_F32)
        memcpy(&fill, &v, sizeof fill);
    LOOM_TRY(kernel(d, word_dtype(nd->dtype), "window", x, l, &a));
    loom_cl_arg_tensor(&a, x->out);
    loom_cl_arg_tensor(&a, x->in[0]);
    loom_cl_arg(&a, sizeof pc, &pc);
    loom_cl_arg_u32(&a, (cl_uint)code);
    loom_cl_arg_u32(&a, fill);
    size1(l, pc.n, d->ew_wg);
    return loom_cl_args_done(&a, x, "window");
}

/* One launch per input, each into its columns of the output. */
loom_status loom_cl_plan_concat(cl_dev *d, const loom_exec_node *x, cl_launch *out, int *n)
{
    const loom_node *nd = x->node;
    loom_axis_split sp = loom_axis_split_of(nd, nd->attr.axis);
    uint32_t off = 0;
    for (int k = 0; k < x->nin; k++) {
        const loom_node *nk = x->in[k]->node;
        loom_pc_concat pc = {(uint32_t)nk->numel, (uint32_t)(nk->shape[nd->attr.axis] * sp.inner),
                             (uint32_t)(sp.n * sp.inner), off};
        off += pc.len;
        cl_args a;
        LOOM_TRY(kernel(d, word_dtype(nd->dtype), "concat_place", x, &out[k], &a));
        loom_cl_arg_tensor(&a, x->out);
        loom_cl_arg_tensor(&a, x->in[k]);
        loom_cl_arg(&a, sizeof pc, &pc);
        size1(&out[k], pc.n, d->ew_wg);
        LOOM_TRY(loom_cl_args_done(&a, x, "concat_place"));
    }
    *n = x->nin;
    return LOOM_OK;
}
