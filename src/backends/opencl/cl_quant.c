/* int8 inference as OpenCL launches (kernels in shaders/opencl/quant.cl):
 * quantize, dequantize, the int8 GEMM (char4 dot products, one output per
 * work item, or for large products exact f32 GEMMs) and the direct int8
 * convolution, four output channels of one pixel per work item; the
 * program is built per output dtype (-DQOUT_I8 for an i8 output). */
#include "cl_internal.h"
#include "../../core/conv_geom.h"

#include <stdlib.h>
#include <string.h>

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

/* The int8 GEMM as f32 GEMMs: every product of two int8 values and every
 * partial sum of up to 1024 of them is an integer of at most 2^24 in
 * magnitude, which f32 holds exactly, so the tuned SGEMM gives the integer
 * result bit for bit, K in chunks of 1024 and the chunks summed as
 * integers. It costs widening both operands ((M + N) K values) and three
 * more launches, so it is taken past LOOM_CL_QGEMM_F32_WORK multiply-adds
 * with M N / (M + N) >= 6 products per widened value. Measured on PoCL
 * (own kernel / f32 GEMMs, us): 1x128x3136 391 / 1963, 4x128x3136 1630 /
 * 1665, 8x128x3136 3193 / 2078, 64x64x128 545 / 117, 32x64x784 1621 / 325,
 * 128^3 1484 / 189. LOOM_OPENCL_QGEMM=f32 or =own (read at each plan)
 * forces one way. */
#define LOOM_CL_QGEMM_F32_WORK (1u << 18)
#define QGEMM_CHUNK 1024

static int qgemm_f32(const loom_exec_node *x)
{
    uint64_t m = (uint64_t)x->in[0]->node->shape[0], k = (uint64_t)x->in[0]->node->shape[1];
    uint64_t n = (uint64_t)x->in[1]->node->shape[0];
    const char *env = getenv("LOOM_OPENCL_QGEMM");
    if (k == 0 || m == 0 || n == 0)
        return 0;
    /* the f32 views must fit the 32-bit element offsets */
    uint64_t chunks = (k + QGEMM_CHUNK - 1) / QGEMM_CHUNK;
    if ((m + n) * k + chunks * m * n > UINT32_MAX)
        return 0;
    if (env && !strcmp(env, "own"))
        return 0;
    if (env && !strcmp(env, "f32"))
        return 1;
    return m * n * k >= LOOM_CL_QGEMM_F32_WORK && m * n >= 6 * (m + n);
}

/* The arguments both int8 GEMM kernels end with: M, N, [K,] the output's
 * zero point and relu; one item per output. */
static loom_status qgemm_tail(cl_dev *d, const loom_exec_node *x, cl_launch *l, cl_args *a, cl_uint m, cl_uint n,
                              const cl_uint *k, const char *kname)
{
    loom_cl_arg_u32(a, m);
    loom_cl_arg_u32(a, n);
    if (k)
        loom_cl_arg_u32(a, *k);
    loom_cl_arg_f32(a, (cl_float)x->node->attr.qzero);
    loom_cl_arg_u32(a, x->node->attr.act == LOOM_OP_RELU);
    size1(d, l, (uint64_t)x->node->numel);
    return loom_cl_args_done(a, x, kname);
}

int loom_cl_qmatmul_launches(const cl_dev *d, const loom_exec_node *x)
{
    (void)d;
    if (!qgemm_f32(x))
        return 1;
    return 3 + (int)((x->in[0]->node->shape[1] + QGEMM_CHUNK - 1) / QGEMM_CHUNK);
}

loom_status loom_cl_plan_qmatmul(cl_dev *d, const loom_exec_node *x, cl_launch *l, int *n)
{
    const loom_node *na = x->in[0]->node, *nw = x->in[1]->node;
    cl_uint m = (cl_uint)na->shape[0], k = (cl_uint)na->shape[1], nn = (cl_uint)nw->shape[0];
    cl_args a;
    if (!qgemm_f32(x)) {
        LOOM_TRY(product_kernel(d, x, "qmatmul", l, &a));
        *n = 1;
        return qgemm_tail(d, x, l, &a, m, nn, &k, "qmatmul");
    }
    cl_uint chunks = (k + QGEMM_CHUNK - 1) / QGEMM_CHUNK;
    cl_mem s;
    cl_uint off[3];
    LOOM_TRY(loom_cl_widen_operands(d, x, l, (uint64_t)chunks * m * nn, &s, off));
    cl_uint sa = off[0], sw = off[1], sc = off[2];
    char what[96];
    snprintf(what, sizeof what, "qmatmul \"%s\"'s f32 GEMM", x->node->name);
    for (cl_uint c = 0; c < chunks; c++) {
        cl_launch *gl = &l[2 + c];
        cl_uint k0 = c * QGEMM_CHUNK, kc = k - k0 < QGEMM_CHUNK ? k - k0 : QGEMM_CHUNK, co = sc + c * m * nn;
        if (loom_cl_gemm_own_dims(d, m, nn, kc, 0, 1)) {
            LOOM_TRY(loom_cl_own_launch(d, gl, m, nn, kc, 0, 1, s, sa + k0, k, s, sw + k0, k, s, co, what));
            continue;
        }
        gl->kind = LOOM_CLL_GEMM;
        gl->gemm = (cl_gemm_call){.ta = 0, .tb = 1, .m = m, .n = nn, .k = kc, .a = s, .b = s, .c = s,
                                  .ao = sa + k0, .bo = sw + k0, .co = co, .lda = k, .ldb = k, .ldc = nn};
    }
    cl_launch *el = &l[2 + chunks];
    LOOM_TRY(loom_cl_make_kernel(d, LOOM_CLP_QUANT, x->node->dtype == LOOM_I8 ? "-DQOUT_I8" : "", "qgemm_epilogue", x,
                                 el, &a));
    loom_cl_arg_tensor(&a, x->out);
    loom_cl_arg(&a, sizeof s, &s);
    loom_cl_arg_u32(&a, sc);
    loom_cl_arg_u32(&a, chunks);
    loom_cl_arg_tensor(&a, x->in[2]);
    loom_cl_arg_tensor(&a, x->in[3]);
    *n = 3 + (int)chunks;
    return qgemm_tail(d, x, el, &a, m, nn, NULL, "qgemm_epilogue");
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
