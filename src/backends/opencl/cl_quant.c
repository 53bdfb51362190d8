/* int8 inference as OpenCL launches (kernels in shaders/opencl/quant.cl):
 * quantize, dequantize and the int8 GEMM (char4 dot products), one output
 * per work item, and the direct int8 convolution, four output channels of
 * one pixel per work item; the program is built per output dtype
 * (-DQOUT_I8 for an i8 output). */
#include "cl_internal.h"
#include "../../core/conv_geom.h"

static void size1(cl_dev *d, cl_launch *l, uint64_t items)
{
    l->dims = 1;
    l->lws[0] = d->ew_wg;
    l->gws[0] = loom_cl_round_up((size_t)items, d->ew_wg);
}

loom_status loom_cl_plan_quant(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    const char *name = x->def->code == LOOM_QUANT_Q ? "quantize" : "dequantize";
    const loom_node *src = x->in[0]->node;
    int axis = x->node->attr.axis;
    uint64_t inner = 1, dim = 1;
    if (axis >= 0) {
        dim = (uint64_t)src->shape[axis];
        for (int k = axis + 1; k < src->ndim; k++)
            inner *= (uint64_t)src->shape[k];
    }
    cl_args a;
    LOOM_TRY(loom_cl_make_kernel(d, LOOM_CLP_QUANT, "", name, x, l, &a));
    loom_cl_arg_tensor(&a, x->out);
    loom_cl_arg_tensor(&a, x->in[0]);
    loom_cl_arg_tensor(&a, x->in[1]);
    loom_cl_arg_u32(&a, (cl_uint)src->numel);
    loom_cl_arg_u32(&a, (cl_uint)inner);
    loom_cl_arg_u32(&a, (cl_uint)dim);
    size1(d, l, (uint64_t)src->numel);
    return loom_cl_args_done(&a, x, name);
}

/* out, a / x, w, bias, mult: the arguments both int8 products begin with */
static loom_status product_kernel(cl_dev *d, const loom_exec_node *x, const char *name, cl_launch *l, cl_args *a)
{
    LOOM_TRY(loom_cl_make_kernel(d, LOOM_CLP_QUANT, x->node->dtype == LOOM_I8 ? "-DQOUT_I8" : "", name, x, l, a));
    loom_cl_arg_tensor(a, x->out);
    for (int k = 0; k < 4; k++)
        loom_cl_arg_tensor(a, x->in[k]);
    return LOOM_OK;
}

loom_status loom_cl_plan_qmatmul(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    const loom_node *na = x->in[0]->node, *nw = x->in[1]->node;
    cl_args a;
    LOOM_TRY(product_kernel(d, x, "qmatmul", l, &a));
    loom_cl_arg_u32(&a, (cl_uint)na->shape[0]);
    loom_cl_arg_u32(&a, (cl_uint)nw->shape[0]);
    loom_cl_arg_u32(&a, (cl_uint)na->shape[1]);
    loom_cl_arg_f32(&a, (cl_float)x->node->attr.qzero);
    loom_cl_arg_u32(&a, x->node->attr.act == LOOM_OP_RELU);
    size1(d, l, (uint64_t)x->node->numel);
    return loom_cl_args_done(&a, x, "qmatmul");
}

loom_status loom_cl_plan_qconv(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    const loom_node *in[3] = {x->in[0]->node, x->in[1]->node, NULL};
    loom_conv_geom g = loom_conv_geom_of(LOOM_CONV_FWD, x->node, in);
    loom_pc_conv pc = {(uint32_t)g.n, (uint32_t)g.c, (uint32_t)g.h, (uint32_t)g.w, (uint32_t)g.oc, (uint32_t)g.oh,
                       (uint32_t)g.ow, (uint32_t)g.kh, (uint32_t)g.kw, (uint32_t)g.cg, (uint32_t)g.ocg,
                       (uint32_t)g.sh, (uint32_t)g.sw, (uint32_t)g.dh, (uint32_t)g.dw, (uint32_t)g.pt,
                       (uint32_t)g.pl, 1u, 0, 0, 0};
    cl_args a;
    LOOM_TRY(product_kernel(d, x, "qconv", l, &a));
    loom_cl_arg(&a, sizeof pc, &pc);
    cl_int pad = x->node->attr.qzero_in;
    loom_cl_arg(&a, sizeof pad, &pad);
    loom_cl_arg_f32(&a, (cl_float)x->node->attr.qzero);
    loom_cl_arg_u32(&a, x->node->attr.act == LOOM_OP_RELU);
    uint64_t blocks = (uint64_t)(g.oc / g.ocg) * (((uint64_t)g.ocg + LOOM_QCONV_CHANNELS - 1) / LOOM_QCONV_CHANNELS);
    size1(d, l, (uint64_t)g.n * blocks * (uint64_t)g.oh * (uint64_t)g.ow);
    return loom_cl_args_done(&a, x, "qconv");
}
