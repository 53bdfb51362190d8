/* Convolutional networks' ops as dispatches: convolutions (an implicit
 * GEMM: tiled through shared memory on GPUs, register-blocked without
 * shared memory where barriers are slow), pooling, normalization, windows
 * and concat. Semantics follow the CPU reference (src/backends/cpu/
 * cpu_conv.c); the geometry comes from src/core/conv_geom.h. */
#include "vk_internal.h"
#include "../common/layout.h"
#include "../../core/conv_geom.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* ---- helpers ---------------------------------------------------------------- */

/* `items` invocations in workgroups of wg, over x and y within the
 * device's limits, z workgroups deep. */
static loom_status spread(vk_prog *p, vk_dispatch *x, uint64_t items, uint32_t wg, uint32_t z, const loom_node *nd)
{
    const vk_limits *lim = p->d->lim;
    uint64_t groups = (items + wg - 1) / wg;
    uint64_t gx = groups < lim->max_groups[0] ? groups : lim->max_groups[0];
    gx = gx ? gx : 1;
    uint64_t gy = (groups + gx - 1) / gx;
    gy = gy ? gy : 1;
    if (gy > lim->max_groups[1] || z > lim->max_groups[2]) {
        char sb[96];
        return loom_fail(p->d->ctx, LOOM_E_UNSUPPORTED, "%s: op %s \"%s\" %s needs %llu x %u workgroups, above the "
                         "device's limit", p->d->info->spec, loom_op_name(nd->op), nd->name,
                         loom_shape_str(sb, sizeof sb, nd->ndim, nd->shape), (unsigned long long)groups, z);
    }
    x->groups[0] = (uint32_t)gx;
    x->groups[1] = (uint32_t)gy;
    x->groups[2] = z;
    return LOOM_OK;
}

static const char *dt_suffix(char *buf, size_t n, const char *base, loom_dtype dt)
{
    snprintf(buf, n, "%s_%s", base, loom_dtype_name(dt));
    return buf;
}

/* 1 if t can be read as an R32F texel buffer. */
static int texel_ok(const vk_dev *d, const loom_exec_tensor *t)
{
    const vk_buf *vb = t->mem.buf;
    uint64_t off = vb->offset + t->mem.offset;
    return d->lim->texel_r32f && off % d->lim->texel_align == 0 && off % 4 == 0 && t->mem.bytes % 4 == 0 &&
           t->mem.bytes / 4 <= d->lim->max_texel_elements;
}

/* ---- convolutions --------------------------------------------------------------- */

#define TILE 64                /* conv_tiled's block of C */
#define DIRECT_TN 8            /* conv_direct's columns per invocation (its rows: spec constant 1) */

loom_status vk_plan_conv(vk_prog *p, const loom_exec_node *x)
{
    const loom_node *nd = x->node, *in[3] = {x->in[0]->node, x->in[1]->node, NULL};
    int code = x->def->code;
    loom_conv_geom g = loom_conv_geom_of(code, nd, in);
    loom_pc_conv pc = {(uint32_t)g.n, (uint32_t)g.c, (uint32_t)g.h, (uint32_t)g.w, (uint32_t)g.oc, (uint32_t)g.oh,
                       (uint32_t)g.ow, (uint32_t)g.kh, (uint32_t)g.kw, (uint32_t)g.cg, (uint32_t)g.ocg,
                       (uint32_t)g.sh, (uint32_t)g.sw, (uint32_t)g.dh, (uint32_t)g.dw, (uint32_t)g.pt,
                       (uint32_t)g.pl, (uint32_t)(x->nin > 2), 0, (uint32_t)(g.n * g.oh), 0};
    uint64_t m = code == LOOM_CONV_BWD_DATA ? g.cg : g.ocg;
    uint64_t n = code == LOOM_CONV_FWD ? g.n * g.oh * g.ow : code == LOOM_CONV_BWD_DATA ? g.n * g.h * g.w
                                                                                         : g.cg * g.kh * g.kw;
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    dx->nbind = 4;
    dx->bind[0] = vk_bind_tensor(x->in[0], VK_READ);
    dx->bind[1] = vk_bind_tensor(x->in[1], VK_READ);
    dx->bind[2] = vk_bind_tensor(x->out, VK_WRITE);
    dx->bind[3] = x->nin > 2 ? vk_bind_tensor(x->in[2], VK_READ) : vk_bind_alias(dx->bind[2]);
    uint32_t spec[VK_MAX_SPEC] = {(uint32_t)code, 0, 0};
    char name[48];
    if (!(p->d->quirks & VK_QUIRK_SLOW_BARRIERS)) {
        /* a 1x1 convolution at stride 1 without padding is a batched GEMM */
        spec[1] = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 && g.pl == 0 && g.oh == g.h &&
                  g.ow == g.w;
        dx->groups[0] = (uint32_t)((n + TILE - 1) / TILE);
        dx->groups[1] = (uint32_t)((m + TILE - 1) / TILE);
        dx->groups[2] = (uint32_t)g.groups;
        const vk_limits *lim = p->d->lim;
        if (dx->groups[0] > lim->max_groups[0] || dx->groups[1] > lim->max_groups[1] ||
            dx->groups[2] > lim->max_groups[2])
            return loom_fail(p->d->ctx, LOOM_E_UNSUPPORTED, "%s: %s \"%s\" needs %u x %u x %u workgroups, above the "
                             "device's limit", p->d->info->spec, loom_op_name(nd->op), nd->name, dx->groups[0],
                             dx->groups[1], dx->groups[2]);
        return vk_use_variant(p, dx, dt_suffix(name, sizeof name, "conv_tiled", nd->dtype), "SSSS", sizeof pc, 16, 16, spec, &pc);
    }
    uint32_t tm = m >= 16 ? 16 : 4;
    spec[1] = tm;
    uint64_t items = ((m + tm - 1) / tm) * ((n + DIRECT_TN - 1) / DIRECT_TN);
    LOOM_TRY(spread(p, dx, items, 64, (uint32_t)g.groups, nd));
    const char *kinds = "SSSS";
    if (nd->dtype == LOOM_F32 && (p->d->quirks & VK_QUIRK_TEXEL_READS) && texel_ok(p->d, x->in[0]) &&
        texel_ok(p->d, x->in[1])) {
        snprintf(name, sizeof name, "conv_direct_texel");
        kinds = "TTSS";
        dx->bind[0].texel = dx->bind[1].texel = 1;
    } else {
        dt_suffix(name, sizeof name, "conv_direct", nd->dtype);
    }
    /* An invocation walks its whole sum: the kernel taps (forward, to the
     * input: reach x (kh kw + 2 kh + 3) loop passes, the exits of the
     * triple nest counted) or every output pixel (to the weights: ow + 2
     * per row of output, one more for the walk over rows). Where the
     * driver cuts loops short, the weights' sum is split over dispatches
     * by rows of output, each adding onto the last; the other two refuse. */
    if (p->d->lim->loop_budget) {
        if (code != LOOM_CONV_BWD_FILTER) {
            uint64_t reach = code == LOOM_CONV_FWD ? (uint64_t)g.cg : (uint64_t)g.ocg;
            LOOM_TRY(vk_check_loops(p, nd, reach * ((uint64_t)g.kh * g.kw + 2 * (uint64_t)g.kh + 3)));
        } else {
            uint64_t per_row = (uint64_t)g.ow + 2;
            LOOM_TRY(vk_check_loops(p, nd, per_row + 1));
            uint64_t fit = (vk_loop_room(p->d) - 1) / per_row;
            LOOM_TRY(vk_use_variant(p, dx, name, kinds, sizeof pc, 64, 1, spec, &pc));
            return vk_split_dispatch(p, dx, 2, offsetof(loom_pc_conv, r0), pc.r1, fit);
        }
    }
    return vk_use_variant(p, dx, name, kinds, sizeof pc, 64, 1, spec, &pc);
}

/* ---- pooling ------------------------------------------------------------------- */

loom_status vk_plan_pool(vk_prog *p, const loom_exec_node *x)
{
    int grad = x->def->family == LOOM_FAM_POOL_GRAD;
    const loom_node *nd = x->node;
    loom_conv_geom g = loom_pool_geom_of(grad, nd, x->in[0]->node);
    loom_pc_pool pc = {(uint32_t)(g.n * g.c), (uint32_t)g.h, (uint32_t)g.w, (uint32_t)g.oh, (uint32_t)g.ow,
                       (uint32_t)g.kh, (uint32_t)g.kw, (uint32_t)g.sh, (uint32_t)g.sw, (uint32_t)g.pt,
                       (uint32_t)g.pl, (uint32_t)nd->attr.side};
    /* An invocation walks its window, kh (kw + 2) + 1 passes; the gradient
     * walks the windows over its input pixel, and for max pooling each
     * window again to find its arg-max. */
    uint64_t window = (uint64_t)g.kh * (g.kw + 2) + 1;
    if (grad) {
        uint64_t wh = ((uint64_t)g.kh + g.sh - 1) / g.sh, ww = ((uint64_t)g.kw + g.sw - 1) / g.sw;
        wh = wh < (uint64_t)g.oh ? wh : (uint64_t)g.oh;
        ww = ww < (uint64_t)g.ow ? ww : (uint64_t)g.ow;
        window = wh * (ww * ((x->def->code == LOOM_POOL_MAX ? window : 0) + 1) + 2) + 1;
    }
    LOOM_TRY(vk_check_loops(p, nd, window));
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    dx->nbind = grad ? 3 : 2;
    dx->bind[0] = vk_bind_tensor(x->in[0], VK_READ);
    if (grad)
        dx->bind[1] = x->nin > 1 ? vk_bind_tensor(x->in[1], VK_READ) : vk_bind_alias(dx->bind[0]);
    dx->bind[dx->nbind - 1] = vk_bind_tensor(x->out, VK_WRITE);
    LOOM_TRY(spread(p, dx, (uint64_t)nd->numel, 256, 1, nd));
    uint32_t spec[VK_MAX_SPEC] = {(uint32_t)x->def->code, 0, 0};
    char name[48];
    return vk_use_variant(p, dx, dt_suffix(name, sizeof name, grad ? "pool_grad" : "pool", nd->dtype), grad ? "SSS" : "SS",
               sizeof pc, 256, 1, spec, &pc);
}

/* ---- normalization ---------------------------------------------------------------- */

loom_status vk_plan_norm(vk_prog *p, const loom_exec_node *x)
{
    const loom_node *nd = x->node;
    int code = x->def->code;
    const loom_node *nx = code == LOOM_NORM_STATS || code == LOOM_NORM_APPLY ? x->in[0]->node : x->in[1]->node;
    loom_norm_geom g = loom_norm_geom_of(nx, nd->attr.cgroups);
    loom_pc_norm pc = {(uint32_t)nx->numel, (uint32_t)g.n, (uint32_t)g.c, (uint32_t)g.s, (uint32_t)g.q,
                       (uint32_t)g.cpg, (uint32_t)g.blocks, (uint32_t)g.len, (uint32_t)g.stride, nd->attr.eps,
                       (uint32_t)nd->attr.side};
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    uint32_t spec[VK_MAX_SPEC] = {(uint32_t)code, 0, 0};
    char name[48];
    if (code == LOOM_NORM_APPLY || code == LOOM_NORM_GRAD) {
        dx->nbind = 6;
        for (int k = 0; k < x->nin; k++)
            dx->bind[k] = vk_bind_tensor(x->in[k], VK_READ);
        if (x->nin < 5)
            dx->bind[4] = vk_bind_alias(dx->bind[0]);
        dx->bind[5] = vk_bind_tensor(x->out, VK_WRITE);
        LOOM_TRY(spread(p, dx, (uint64_t)nx->numel, 256, 1, nd));
        return vk_use_variant(p, dx, dt_suffix(name, sizeof name, "norm_apply", nd->dtype), "SSSSSS", sizeof pc, 256, 1, spec,
                   &pc);
    }
    /* bindings: a (x or dy), x, stats, gamma, out */
    dx->nbind = 5;
    dx->bind[0] = vk_bind_tensor(x->in[0], VK_READ);
    dx->bind[1] = x->nin > 1 ? vk_bind_tensor(x->in[1], VK_READ) : vk_bind_alias(dx->bind[0]);
    dx->bind[2] = x->nin > 2 ? vk_bind_tensor(x->in[2], VK_READ) : vk_bind_alias(dx->bind[0]);
    dx->bind[3] = x->nin > 3 ? vk_bind_tensor(x->in[3], VK_READ) : vk_bind_alias(dx->bind[0]);
    dx->bind[4] = vk_bind_tensor(x->out, VK_WRITE);
    /* a workgroup per statistic (or channel); an invocation takes a 64th
     * of its elements, 8 a loop pass (two walks for the statistics), and
     * two workgroup sums of 7 passes */
    uint64_t m = code == LOOM_NORM_DGAMMA ? (uint64_t)g.n * g.s : (uint64_t)g.blocks * g.len;
    LOOM_TRY(vk_check_loops(p, nd, (code == LOOM_NORM_STATS ? 2 : 1) * ((m + 511) / 512 + 1) + 16));
    LOOM_TRY(spread(p, dx, (uint64_t)(code == LOOM_NORM_DGAMMA ? g.c : g.q) * 64, 64, 1, nd));
    return vk_use_variant(p, dx, dt_suffix(name, sizeof name, "norm_reduce", nx->dtype), "SSSSS", sizeof pc, 64, 1, spec, &pc);
}

loom_status vk_plan_norm_update(vk_prog *p, const loom_exec_node *x)
{
    loom_pc_unary pc = {(uint32_t)x->in[0]->node->numel, x->node->attr.momentum, 0};
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    dx->nbind = 2;
    dx->bind[0] = vk_bind_tensor(x->in[0], VK_READ | VK_WRITE);
    dx->bind[1] = vk_bind_tensor(x->in[1], VK_READ);
    LOOM_TRY(spread(p, dx, pc.n, 64, 1, x->in[0]->node));
    uint32_t spec[VK_MAX_SPEC] = {0, 0, 0};
    return vk_use_variant(p, dx, "norm_update", "SS", sizeof pc, 64, 1, spec, &pc);
}

/* Pruning: p *= mask in place. */
loom_status vk_plan_mask_update(vk_prog *p, const loom_exec_node *x)
{
    loom_pc_unary pc = {(uint32_t)x->in[0]->node->numel, 0, 0};
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    dx->nbind = 2;
    dx->bind[0] = vk_bind_tensor(x->in[0], VK_READ | VK_WRITE);
    dx->bind[1] = vk_bind_tensor(x->in[1], VK_READ);
    LOOM_TRY(spread(p, dx, pc.n, 64, 1, x->in[0]->node));
    uint32_t spec[VK_MAX_SPEC] = {0, 0, 0};
    return vk_use_variant(p, dx, "mask_update", "SS", sizeof pc, 64, 1, spec, &pc);
}

/* ---- windows and concat ------------------------------------------------------------ */

/* The fill value's bits in the dtype, as the float the push constant
 * carries (window.comp reads its bits). */
static float fill_bits(loom_dtype dt, float v)
{
    uint32_t bits = 0;
    if (dt == LOOM_F16)
        bits = loom_f32_to_f16(v);
    else if (dt == LOOM_BF16)
        bits = loom_f32_to_bf16(v);
    else if (dt == LOOM_F32)
        memcpy(&bits, &v, sizeof bits);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

loom_status vk_plan_window(vk_prog *p, const loom_exec_node *x)
{
    const loom_node *nd = x->node, *ni = x->in[0]->node;
    const loom_attr *at = &nd->attr;
    int code = x->def->code;
    loom_pc_window pc = {0};
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
    pc.value = fill_bits(nd->dtype, code == LOOM_WINDOW_PAD ? at->wvalue : 0.0f);
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    dx->nbind = 2;
    dx->bind[0] = vk_bind_tensor(x->in[0], VK_READ);
    dx->bind[1] = vk_bind_tensor(x->out, VK_WRITE);
    LOOM_TRY(spread(p, dx, pc.n, 256, 1, nd));
    uint32_t spec[VK_MAX_SPEC] = {(uint32_t)code, 0, 0};
    char name[48];
    if (code == LOOM_WINDOW_PAD_GRAD)
        dt_suffix(name, sizeof name, "pad_grad", nd->dtype);
    else
        snprintf(name, sizeof name, "%s", loom_dtype_size(nd->dtype) == 2 ? "window_16" : "window_32");
    return vk_use_variant(p, dx, name, "SS", sizeof pc, 256, 1, spec, &pc);
}

/* One dispatch per input, each into its columns of the output. */
loom_status vk_plan_concat(vk_prog *p, const loom_exec_node *x)
{
    const loom_node *nd = x->node;
    loom_axis_split sp = loom_axis_split_of(nd, nd->attr.axis);
    uint32_t off = 0, spec[VK_MAX_SPEC] = {0, 0, 0};
    const char *name = loom_dtype_size(nd->dtype) == 2 ? "concat_16" : "concat_32";
    for (int k = 0; k < x->nin; k++) {
        const loom_node *nk = x->in[k]->node;
        loom_pc_concat pc = {(uint32_t)nk->numel, (uint32_t)(nk->shape[nd->attr.axis] * sp.inner),
                             (uint32_t)(sp.n * sp.inner), off};
        off += pc.len;
        vk_dispatch *dx;
        LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
        dx->nbind = 2;
        dx->bind[0] = vk_bind_tensor(x->in[k], VK_READ);
        /* the inputs write apart: no barrier between them is needed, but
         * the hazard tracker sees one range; it is correct either way */
        dx->bind[1] = vk_bind_tensor(x->out, VK_WRITE);
        LOOM_TRY(spread(p, dx, pc.n, 256, 1, nd));
        LOOM_TRY(vk_use_variant(p, dx, name, "SS", sizeof pc, 256, 1, spec, &pc));
    }
    return LOOM_OK;
}
