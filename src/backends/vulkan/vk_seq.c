/* The sequence ops as Vulkan dispatches: batched matmul, layer / RMS norm
 * and their gradients, take / gather and their scatter-adds, rotary
 * embeddings, fused attention (shaders/glsl/bmm.comp, norm.comp, take.comp,
 * scatter.comp, rope.comp, attention.comp). Semantics follow the CPU
 * reference exactly; nothing here switches on an op. */
#include "vk_internal.h"
#include "../common/layout.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* "<base>_<dtype>" */
static const char *named(char *buf, size_t n, const char *base, loom_dtype dt)
{
    snprintf(buf, n, "%s_%s", base, loom_dtype_name(dt));
    return buf;
}

static loom_status too_many(vk_prog *p, const loom_node *nd, const char *what)
{
    char sb[96];
    return loom_fail(p->d->ctx, LOOM_E_UNSUPPORTED, "%s: op %s \"%s\" %s needs more workgroups %s than the device has",
                     p->d->info->spec, loom_op_name(nd->op), nd->name,
                     loom_shape_str(sb, sizeof sb, nd->ndim, nd->shape), what);
}

/* ---- batched matmul ------------------------------------------------------------- */

#define BMM_TILE 64 /* C per workgroup: 16 x 16 invocations of 4 x 4 */

loom_status vk_plan_bmm(vk_prog *p, const loom_exec_node *x)
{
    const loom_node *nd = x->node;
    loom_bmm_dims d = loom_bmm_dims_of(nd, x->in[0]->node, x->in[1]->node);
    loom_pc_bmm pc = {0};
    pc.m = (uint32_t)d.m;
    pc.n = (uint32_t)d.n;
    pc.k = (uint32_t)d.k;
    pc.sam = nd->attr.ta ? 1 : (uint32_t)d.lda;
    pc.sak = nd->attr.ta ? (uint32_t)d.lda : 1;
    pc.sbk = nd->attr.tb ? 1 : (uint32_t)d.ldb;
    pc.sbn = nd->attr.tb ? (uint32_t)d.ldb : 1;
    pc.nb1 = (uint32_t)d.nb[1];
    pc.sa0 = (uint32_t)d.sa[0];
    pc.sa1 = (uint32_t)d.sa[1];
    pc.sb0 = (uint32_t)d.sb[0];
    pc.sb1 = (uint32_t)d.sb[1];
    /* an invocation walks K, one pass a step */
    LOOM_TRY(vk_check_loops(p, nd, (uint64_t)pc.k + 2));
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    dx->nbind = 3;
    dx->bind[0] = vk_bind_tensor(x->in[0], VK_READ);
    dx->bind[1] = vk_bind_tensor(x->in[1], VK_READ);
    dx->bind[2] = vk_bind_tensor(x->out, VK_WRITE);
    dx->groups[0] = (pc.n + BMM_TILE - 1) / BMM_TILE;
    dx->groups[1] = (pc.m + BMM_TILE - 1) / BMM_TILE;
    dx->groups[2] = (uint32_t)(d.nb[0] * d.nb[1]);
    const uint32_t *mg = p->d->lim->max_groups;
    if (dx->groups[0] > mg[0] || dx->groups[1] > mg[1] || dx->groups[2] > mg[2])
        return too_many(p, nd, "(tiles by batches)");
    uint32_t spec[VK_MAX_SPEC] = {0, 0, 0};
    char name[32];
    return vk_use_variant(p, dx, named(name, sizeof name, "bmm", nd->dtype), "SSS", sizeof pc, 16, 16, spec, &pc);
}

/* ---- normalization ----------------------------------------------------------------- */

/* in: x, [gamma], [beta] -> y; the gradient in: dy, x, [gamma] -> dx. */
loom_status vk_plan_lnorm(vk_prog *p, const loom_exec_node *x)
{
    const loom_node *nd = x->node;
    int grad = x->def->family == LOOM_FAM_LNORM_GRAD;
    loom_pc_lnorm pc = {0};
    pc.cols = (uint32_t)nd->shape[nd->ndim - 1];
    pc.rows = (uint32_t)(nd->numel / pc.cols);
    pc.eps = nd->attr.norm_eps;
    pc.affine = (uint32_t)nd->attr.affine;
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    dx->nbind = 4;
    int base = grad ? 2 : 1; /* where gamma sits among the inputs, if there */
    for (int k = 0; k < base; k++)
        dx->bind[k] = vk_bind_tensor(x->in[k], VK_READ);
    int aff = nd->attr.affine;
    dx->bind[base] = (aff & 1) ? vk_bind_tensor(x->in[base], VK_READ) : vk_bind_alias(dx->bind[0]);
    if (!grad)
        dx->bind[2] = (aff & 2) ? vk_bind_tensor(x->in[1 + (aff & 1)], VK_READ) : vk_bind_alias(dx->bind[0]);
    dx->bind[3] = vk_bind_tensor(x->out, VK_WRITE);
    /* one invocation per row where barriers are dear or rows are short:
     * layer norm walks a row for the mean, the variance and the output
     * (its gradient: two sums more), RMS norm skips the mean (and its
     * gradient the first sum, dead code there: counted all the same) */
    int rms = x->def->code == LOOM_LNORM_RMS;
    uint32_t sums = (rms ? 1u : 2u) + (grad ? 2u : 0u), pt;
    LOOM_TRY(vk_rows_variant(p, nd, pc.rows, pc.cols, sums + 1, sums, &pt));
    LOOM_TRY(vk_grid(p, dx, pt ? pc.rows : (uint64_t)pc.rows * 64, 64, nd));
    uint32_t spec[VK_MAX_SPEC] = {x->def->code == LOOM_LNORM_RMS, pt, 0};
    char name[32];
    return vk_use_variant(p, dx, named(name, sizeof name, grad ? "norm_grad" : "norm", nd->dtype), "SSSS", sizeof pc,
                          64, 1, spec, &pc);
}

/* ---- indexing ----------------------------------------------------------------------- */

static void dense4(const loom_node *t, uint32_t d[4], uint32_t st[4])
{
    int64_t d4[4];
    loom_shape4(t->ndim, t->shape, d4);
    uint32_t s = 1;
    for (int i = 3; i >= 0; i--) {
        d[i] = (uint32_t)d4[i];
        st[i] = s;
        s *= (uint32_t)d4[i];
    }
}

/* take / gather (in: x, idx) and their scatter-adds (in: src, idx). */
loom_status vk_plan_index(vk_prog *p, const loom_exec_node *x)
{
    const loom_node *nd = x->node, *ni = x->in[1]->node;
    int scatter = x->def->family == LOOM_FAM_SCATTER, take = x->def->code == LOOM_INDEX_TAKE;
    /* x, or the scatter's output: the tensor the axis runs through */
    const loom_node *full = scatter ? nd : x->in[0]->node;
    loom_pc_index pc = {0};
    int axis = nd->attr.axis;
    pc.bound = (uint32_t)full->shape[axis];
    pc.axis = (uint32_t)(axis + 4 - full->ndim);
    uint64_t items = (uint64_t)nd->numel;
    if (take) {
        loom_axis_split sp = loom_axis_split_of(full, axis);
        pc.inner = (uint32_t)sp.inner;
        pc.nj = (uint32_t)ni->numel;
        if (scatter) /* an invocation per (o, v) and 8 columns */
            items = (uint64_t)sp.outer * sp.n * ((sp.inner + 7) / 8);
    } else {
        uint32_t od[4], os[4];
        dense4(ni, pc.d, pc.ds);
        dense4(full, od, os);
        memcpy(pc.xs, os, sizeof os);
        memcpy(pc.od, od, sizeof od);
    }
    pc.n = (uint32_t)items;
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    dx->nbind = 3;
    dx->bind[0] = vk_bind_tensor(x->in[0], VK_READ);
    dx->bind[1] = vk_bind_tensor(x->in[1], VK_READ);
    dx->bind[2] = vk_bind_tensor(x->out, VK_WRITE);
    uint32_t wg = scatter ? 64 : 256;
    LOOM_TRY(vk_grid(p, dx, items, wg, nd));
    uint32_t spec[VK_MAX_SPEC] = {(uint32_t)x->def->code, 0, 0};
    char name[32];
    named(name, sizeof name, scatter ? "scatter" : "take", nd->dtype);
    if (!scatter)
        return vk_use_variant(p, dx, name, "SSS", sizeof pc, wg, 1, spec, &pc);
    /* An invocation of a scatter-add walks every index (take's) or the
     * axis (gather's), a pass each: where the driver's loop budget ends
     * that early the walk goes in parts, each dispatch adding onto the last. */
    uint64_t total = take ? pc.nj : pc.d[pc.axis], room = vk_loop_room(p->d);
    if (room < 3)
        return vk_check_loops(p, nd, total + 2);
    uint64_t part = room == UINT64_MAX ? total : room - 2;
    LOOM_TRY(vk_use_variant(p, dx, name, "SSS", sizeof pc, wg, 1, spec, &pc));
    return vk_split_dispatch(p, dx, 2, offsetof(loom_pc_index, j0), total, part);
}

/* ---- rotary embedding ------------------------------------------------------------------ */

loom_status vk_plan_rope(vk_prog *p, const loom_exec_node *x)
{
    const loom_node *nd = x->node;
    int axis = nd->attr.axis;
    loom_pc_rope pc = {0};
    int64_t mid = 1;
    for (int i = axis + 1; i < nd->ndim - 1; i++)
        mid *= nd->shape[i];
    pc.n = (uint32_t)(nd->numel / 2);
    pc.halfdim = (uint32_t)(nd->shape[nd->ndim - 1] / 2);
    pc.npos = (uint32_t)nd->shape[axis];
    pc.mid = (uint32_t)mid;
    pc.l2b = log2f(nd->attr.rope_base);
    pc.sign = nd->attr.rope_inverse ? -1.0f : 1.0f;
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    dx->nbind = 2;
    dx->bind[0] = vk_bind_tensor(x->in[0], VK_READ);
    dx->bind[1] = vk_bind_tensor(x->out, VK_WRITE);
    LOOM_TRY(vk_grid(p, dx, pc.n, 256, nd));
    uint32_t spec[VK_MAX_SPEC] = {0, 0, 0};
    char name[32];
    return vk_use_variant(p, dx, named(name, sizeof name, "rope", nd->dtype), "SS", sizeof pc, 256, 1, spec, &pc);
}

/* ---- fused attention --------------------------------------------------------------------- */

#define ATTN_WG 64 /* queries (or keys) per workgroup */

/* Rows of the other side staged per tile: two tiles of head-size floats
 * and two statistics per row within the 16 KiB of shared memory every
 * device has. */
static uint32_t attn_tile(int64_t d)
{
    int64_t tb = 2048 / (d + 1);
    return (uint32_t)(tb < 32 ? tb : 32);
}

loom_status vk_plan_attention(vk_prog *p, const loom_exec_node *x)
{
    static const char *const kernels[5] = {"attention_fwd", "attention_stats", "attention_dq", "attention_dk",
                                           "attention_dv"};
    const loom_node *nd = x->node;
    int code = x->def->code, qi = code == LOOM_ATTN_FWD || code == LOOM_ATTN_STATS ? 0 : 1;
    int has_mask = nd->attr.has_mask;
    const loom_exec_tensor *tq = x->in[qi];
    loom_attn_dims a = loom_attn_dims_of(nd, tq->node, x->in[qi + 1]->node, has_mask ? x->in[x->nin - 1]->node : NULL);
    loom_pc_attn pc = {0};
    pc.b = (uint32_t)a.b;
    pc.hq = (uint32_t)a.hq;
    pc.hkv = (uint32_t)a.hkv;
    pc.nq = (uint32_t)a.nq;
    pc.nk = (uint32_t)a.nk;
    for (int i = 0; i < 3; i++) {
        pc.qs[i] = (uint32_t)a.qs[i];
        pc.ks[i] = (uint32_t)a.ks[i];
    }
    for (int i = 0; i < 4; i++)
        pc.ms[i] = (uint32_t)a.ms[i];
    pc.causal = (uint32_t)a.causal;
    pc.has_mask = (uint32_t)has_mask;
    pc.scale = a.scale;
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    /* the inputs the kernel reads (the mask is the node's last), the mask
     * (or an unused alias), the output */
    int nread = x->nin - has_mask;
    dx->nbind = nread + 2;
    for (int k = 0; k < nread; k++)
        dx->bind[k] = vk_bind_tensor(x->in[k], VK_READ);
    dx->bind[nread] = has_mask ? vk_bind_tensor(x->in[x->nin - 1], VK_READ) : vk_bind_alias(dx->bind[0]);
    dx->bind[nread + 1] = vk_bind_tensor(x->out, VK_WRITE);
    int per_key = code == LOOM_ATTN_DK || code == LOOM_ATTN_DV;
    uint64_t rows = (uint64_t)(per_key ? a.nk : a.nq), heads = (uint64_t)(a.b * (per_key ? a.hkv : a.hq));
    dx->groups[0] = (uint32_t)((rows + ATTN_WG - 1) / ATTN_WG);
    dx->groups[1] = (uint32_t)heads;
    dx->groups[2] = 1;
    if (dx->groups[0] > p->d->lim->max_groups[0] || heads > p->d->lim->max_groups[1])
        return too_many(p, nd, "(rows by heads)");
    uint32_t spec[VK_MAX_SPEC] = {(uint32_t)a.d, attn_tile(a.d), !(p->d->quirks & VK_QUIRK_SLOW_BARRIERS)};
    /* An invocation walks the other side tile by tile (attention.comp): a
     * pass per row a loop (two for the forward and the statistics: the
     * scores, then the sums), three per tile, and with shared memory the
     * tile's staging; the keys' kernels do that for each query head of
     * their group. */
    uint64_t tb = spec[1], other = (uint64_t)(per_key ? a.nq : a.nk), tiles = (other + tb - 1) / tb;
    uint64_t stage = spec[2] ? (tb * (uint64_t)a.d + ATTN_WG - 1) / ATTN_WG + (per_key ? 3 : 1) : 0;
    uint64_t walk = (code == LOOM_ATTN_FWD || code == LOOM_ATTN_STATS ? 2 : 1) * other + tiles * (3 + stage) + 2;
    LOOM_TRY(vk_check_loops(p, nd, per_key ? (uint64_t)(a.hkv ? a.hq / a.hkv : 1) * (walk + 1) + 1 : walk));
    char name[48];
    return vk_use_variant(p, dx, named(name, sizeof name, kernels[code], tq->node->dtype), "SSSSSSS" + (7 - dx->nbind),
                          sizeof pc, ATTN_WG, 1, spec, &pc);
}
