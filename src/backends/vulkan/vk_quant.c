/* int8 inference on Vulkan (shaders/glsl/quant.comp): quantize,
 * dequantize, the int8 GEMM and the direct int8 convolution, one output
 * per invocation, over 8-bit storage buffers (vk_supports refuses i8
 * tensors on a device without storageBuffer8BitAccess and shaderInt8). */
#include "vk_internal.h"
#include "../../core/conv_geom.h"

#include <stdlib.h>
#include <string.h>

loom_status vk_plan_quant(vk_prog *p, const loom_exec_node *x)
{
    const loom_node *src = x->in[0]->node;
    int axis = x->node->attr.axis;
    loom_pc_quant pc = {(uint32_t)src->numel, 1, 1};
    if (axis >= 0) {
        pc.dim = (uint32_t)src->shape[axis];
        for (int k = axis + 1; k < src->ndim; k++)
            pc.inner *= (uint32_t)src->shape[k];
    }
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    dx->nbind = 3;
    dx->bind[0] = vk_bind_tensor(x->out, VK_WRITE);
    dx->bind[1] = vk_bind_tensor(x->in[0], VK_READ);
    dx->bind[2] = vk_bind_tensor(x->in[1], VK_READ);
    LOOM_TRY(vk_grid(p, dx, pc.n, 256, x->node));
    uint32_t spec[VK_MAX_SPEC] = {0, 0, 0};
    return vk_use_variant(p, dx, x->def->code == LOOM_QUANT_Q ? "quantize" : "dequantize", "SSS", sizeof pc, 256, 1,
                          spec, &pc);
}

/* qmatmul and qconv2d: out, x (or a), w, bias, mult */
loom_status vk_plan_qgemm(vk_prog *p, const loom_exec_node *x)
{
    const loom_node *nd = x->node;
    loom_pc_qgemm pc = {0};
    pc.relu = nd->attr.act == LOOM_OP_RELU;
    pc.zero = (float)nd->attr.qzero;
    pc.pad = nd->attr.qzero_in;
    int conv = x->def->family == LOOM_FAM_QCONV;
    if (conv) {
        const loom_node *in[3] = {x->in[0]->node, x->in[1]->node, NULL};
        loom_conv_geom g = loom_conv_geom_of(LOOM_CONV_FWD, nd, in);
        pc.cn = (uint32_t)g.n, pc.c = (uint32_t)g.c, pc.h = (uint32_t)g.h, pc.w = (uint32_t)g.w;
        pc.oc = (uint32_t)g.oc, pc.oh = (uint32_t)g.oh, pc.ow = (uint32_t)g.ow, pc.kh = (uint32_t)g.kh;
        pc.kw = (uint32_t)g.kw, pc.cg = (uint32_t)g.cg, pc.ocg = (uint32_t)g.ocg, pc.sh = (uint32_t)g.sh;
        pc.sw = (uint32_t)g.sw, pc.dh = (uint32_t)g.dh, pc.dw = (uint32_t)g.dw, pc.pt = (uint32_t)g.pt;
        pc.pl = (uint32_t)g.pl;
    } else {
        pc.m = (uint32_t)x->in[0]->node->shape[0];
        pc.n = (uint32_t)x->in[1]->node->shape[0];
        pc.k = (uint32_t)x->in[0]->node->shape[1];
    }
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    dx->nbind = 5;
    dx->bind[0] = vk_bind_tensor(x->out, VK_WRITE);
    for (int k = 0; k < 4; k++)
        dx->bind[1 + k] = vk_bind_tensor(x->in[k], VK_READ);
    /* Rows of whole words go to the tiled GEMM (words of four packed
     * int8), through OpSDot where the device has it; LOOM_VULKAN_INT8_DOT=0
     * unpacks the bytes instead (the test compares the two). */
    const char *env = getenv("LOOM_VULKAN_INT8_DOT");
    int tiled = !conv && pc.k % 4 == 0;
    int dot = tiled && p->d->lim->int8_dot && !(env && strcmp(env, "0") == 0);
    const char *odt = nd->dtype == LOOM_I8 ? "i8" : "f32";
    char name[32];
    if (tiled) {
        snprintf(name, sizeof name, "qgemm_tiled%s_%s", dot ? "_dot" : "", odt);
        dx->groups[0] = (pc.n + 63) / 64;
        dx->groups[1] = (pc.m + 63) / 64;
        dx->groups[2] = 1;
        if (dx->groups[0] > p->d->lim->max_groups[0] || dx->groups[1] > p->d->lim->max_groups[1])
            return loom_fail(p->d->ctx, LOOM_E_UNSUPPORTED,
                             "%s: op %s \"%s\" [%u, %u] x [%u, %u]^T needs %u x %u workgroups, above the device's limit",
                             p->d->info->spec, loom_op_name(nd->op), nd->name, pc.m, pc.k, pc.n, pc.k, dx->groups[0],
                             dx->groups[1]);
    } else {
        LOOM_TRY(vk_grid(p, dx, (uint64_t)nd->numel, 256, nd));
        snprintf(name, sizeof name, "%s_%s", conv ? "qconv" : "qmatmul", odt);
    }
    /* the loop passes of an invocation (quant.comp): the triple nest over
     * the taps, the K loop four (tiled: 32) at a time and its tail */
    uint64_t passes = conv ? (uint64_t)pc.cg * ((uint64_t)pc.kh * pc.kw + 2 * (uint64_t)pc.kh + 3)
                      : tiled ? (uint64_t)pc.k / 32 + 2
                              : (uint64_t)pc.k / 4 + pc.k % 4 + 2;
    LOOM_TRY(vk_check_loops(p, nd, passes));
    loom_logf(p->d->ctx, LOOM_LOG_DEBUG, "%s: %s %s through %s", p->d->info->spec, loom_op_name(nd->op), nd->name,
              name);
    uint32_t spec[VK_MAX_SPEC] = {0, 0, 0};
    return vk_use_variant(p, dx, name, "SSSSS", sizeof pc, tiled ? 16 : 256, tiled ? 16 : 1, spec, &pc);
}
