/* Each op family as dispatches: which shader variant (looked up by name in
 * the build's registry: <family>[_<op>]_<dtype>), which tensors at which
 * bindings, the push constants and the grid. Semantics follow the CPU
 * reference (src/backends/cpu/) exactly; nothing here switches on an op. */
#include "vk_internal.h"
#include "../common/layout.h"
#include "../../core/autodiff.h"
#include "loom_spv.h"

#include <assert.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* ---- variants ------------------------------------------------------------- */

static const loom_spv_entry *spv_find(const char *name)
{
    for (int i = 0; i < loom_spv_count; i++)
        if (!strcmp(loom_spv_registry[i].name, name))
            return &loom_spv_registry[i];
    return NULL;
}

/* A family's shader layout: its bindings (S storage, T texel), its push
 * constants and its workgroup. */
typedef struct vk_layout {
    const char *kinds;
    uint32_t push_size;
    uint32_t wg[2];
} vk_layout;

static int shader_of(const char *name, const vk_layout *l, vk_shader *out)
{
    const loom_spv_entry *e = spv_find(name);
    if (!e)
        return 0;
    *out = (vk_shader){e->name, e->code, &e->words, l->kinds, l->push_size, {l->wg[0], l->wg[1]}};
    return 1;
}

static const char *dt_name(loom_dtype dt)
{
    return loom_dtype_name(dt);
}

/* The variant an exec node needs, by the family's naming rule. */
static void variant_name(const loom_exec_node *x, char *buf, size_t n)
{
    const loom_op_def *def = x->def;
    const loom_node *nd = x->node;
    loom_dtype dt = nd->dtype;
    switch (def->family) {
    case LOOM_FAM_UNARY:
    case LOOM_FAM_BINARY:
        snprintf(buf, n, "%s_%s_%s", def->family == LOOM_FAM_UNARY ? "unary" : "binary", def->name, dt_name(dt));
        break;
    case LOOM_FAM_UNARY_GRAD:
    case LOOM_FAM_BINARY_GRAD:
        snprintf(buf, n, "%s_%s_%s", def->family == LOOM_FAM_UNARY_GRAD ? "unary_grad" : "binary_grad",
                 loom_op_name((loom_op)nd->attr.fwd), dt_name(dt));
        break;
    case LOOM_FAM_CAST:
        snprintf(buf, n, "cast_%s_%s", dt_name(x->in[0]->node->dtype), dt_name(dt));
        break;
    case LOOM_FAM_ARG_REDUCE:
    case LOOM_FAM_XENT:
        /* named after the input (the output is an index or an f32 loss) */
        snprintf(buf, n, "%s_%s", def->family == LOOM_FAM_XENT ? "xent" : "argmax",
                 dt_name(x->in[0]->node->dtype));
        break;
    default:
        buf[0] = 0;
        break;
    }
}

/* ---- helpers ------------------------------------------------------------ */

loom_status vk_add_dispatch(vk_prog *p, int node, vk_dispatch **out)
{
    if (p->ndisp == p->capdisp) {
        int ncap = p->capdisp ? 2 * p->capdisp : 64;
        vk_dispatch *nd = loom_realloc(p->d->ctx, p->disp, (size_t)p->capdisp * sizeof *nd, (size_t)ncap * sizeof *nd);
        if (!nd)
            return loom_fail(p->d->ctx, LOOM_E_OOM, "%s: out of memory recording %d dispatches", p->d->info->spec,
                             p->ndisp);
        p->disp = nd;
        p->capdisp = ncap;
    }
    vk_dispatch *x = &p->disp[p->ndisp++];
    memset(x, 0, sizeof *x);
    x->node = node;
    *out = x;
    return LOOM_OK;
}

/* ---- the driver's loop budget ----------------------------------------------- */

/* The passes a planner counts are the kernel's loops as measured on
 * lavapipe (one per iteration, one per normal exit, the rolled
 * workgroup-reduction tree of wgreduce.glsl included); the margin covers
 * the few short loops a count leaves out. */
#define VK_LOOP_MARGIN 1024u

uint64_t vk_loop_room(const vk_dev *d)
{
    uint64_t b = d->lim->loop_budget;
    return b == 0 ? UINT64_MAX : b > VK_LOOP_MARGIN ? b - VK_LOOP_MARGIN : 0;
}

int vk_loops_fit(const vk_dev *d, uint64_t passes)
{
    return passes <= vk_loop_room(d);
}

loom_status vk_check_loops(vk_prog *p, const loom_node *nd, uint64_t passes)
{
    if (vk_loops_fit(p->d, passes))
        return LOOM_OK;
    char sb[96];
    return loom_fail(p->d->ctx, LOOM_E_UNSUPPORTED,
                     "%s: op %s \"%s\" %s: one invocation would loop %llu times, past the driver's loop budget of %u "
                     "iterations per invocation (llvmpipe ends every loop there without an error)",
                     p->d->info->spec, loom_op_name(nd->op), nd->name, loom_shape_str(sb, sizeof sb, nd->ndim, nd->shape),
                     (unsigned long long)passes, p->d->lim->loop_budget);
}

loom_status vk_repeat_dispatch(vk_prog *p, vk_dispatch **dx)
{
    vk_dispatch prev = **dx;
    LOOM_TRY(vk_add_dispatch(p, prev.node, dx));
    **dx = prev;
    return LOOM_OK;
}

loom_status vk_split_dispatch(vk_prog *p, vk_dispatch *dx, int out, size_t at, uint64_t total, uint64_t part)
{
    assert(at + 3 * sizeof(uint32_t) <= dx->push_size);
    if (part == 0)
        part = total ? total : 1;
    for (uint64_t lo = 0;; lo += part) {
        if (lo > 0) {
            LOOM_TRY(vk_repeat_dispatch(p, &dx));
            dx->bind[out].access = VK_READ | VK_WRITE;
        }
        uint32_t range[3] = {(uint32_t)lo, (uint32_t)(total - lo <= part ? total : lo + part), lo > 0};
        memcpy(dx->push + at, range, sizeof range);
        if (total - lo <= part)
            return LOOM_OK;
    }
}

static vk_bind tensor(const loom_exec_tensor *t, int access)
{
    const vk_buf *vb = t->mem.buf;
    vk_bind b = {vb->block->buf, vb->offset + t->mem.offset, t->mem.bytes, 0, access, 0};
    return b;
}

/* A binding the kernel does not touch in this variant: it repeats one the
 * dispatch already has, so it adds no hazard to track. */
static vk_bind alias(vk_bind b)
{
    b.access = 0;
    return b;
}

/* The run slots' binding, filled in at prepare. */
static vk_bind run_slots(void)
{
    return (vk_bind){VK_NULL_HANDLE, 0, 0, 0, VK_READ, 0};
}

/* The program's table (vk_prog.table), bound whole at prepare. */
static vk_bind table_binding(void)
{
    return (vk_bind){VK_NULL_HANDLE, 0, 0, 0, VK_READ, 1};
}

/* Appends n words to the program's table; *first: where they start. */
static loom_status table_add(vk_prog *p, const uint32_t *w, uint32_t n, uint32_t *first)
{
    if (p->ntable + n > p->captable) {
        uint32_t ncap = p->captable ? p->captable : 256;
        while (ncap < p->ntable + n)
            ncap *= 2;
        uint32_t *t = loom_realloc(p->d->ctx, p->table, (size_t)p->captable * sizeof *t, (size_t)ncap * sizeof *t);
        if (!t)
            return loom_fail(p->d->ctx, LOOM_E_OOM, "%s: out of memory for a %u-word kernel table", p->d->info->spec,
                             ncap);
        p->table = t;
        p->captable = ncap;
    }
    *first = p->ntable;
    memcpy(p->table + p->ntable, w, (size_t)n * sizeof *w);
    p->ntable += n;
    return LOOM_OK;
}

static int same_memory(const loom_exec_tensor *a, const loom_exec_tensor *b)
{
    return a->mem.buf == b->mem.buf && a->mem.offset == b->mem.offset;
}

/* A 1-D grid of `items` invocations in workgroups of `wg`, spread over x and
 * y within the device's limits. */
static loom_status grid(vk_prog *p, vk_dispatch *x, uint64_t items, uint32_t wg, const loom_node *nd)
{
    uint64_t groups = (items + wg - 1) / wg;
    uint64_t gx = groups < p->d->lim->max_groups[0] ? groups : p->d->lim->max_groups[0];
    if (gx == 0)
        gx = 1;
    uint64_t gy = (groups + gx - 1) / gx;
    if (gy == 0)
        gy = 1;
    if (gy > p->d->lim->max_groups[1]) {
        char sb[96];
        return loom_fail(p->d->ctx, LOOM_E_UNSUPPORTED, "%s: op %s \"%s\" %s needs %llu workgroups, above the device's limit",
                         p->d->info->spec, loom_op_name(nd->op), nd->name, loom_shape_str(sb, sizeof sb, nd->ndim, nd->shape),
                         (unsigned long long)groups);
    }
    x->groups[0] = (uint32_t)gx;
    x->groups[1] = (uint32_t)gy;
    x->groups[2] = 1;
    return LOOM_OK;
}

/* Binds the dispatch to variant `name` of layout l with the spec constants
 * and push constants given. */
static loom_status use_variant(vk_prog *p, vk_dispatch *x, const char *name, const vk_layout *l,
                               const uint32_t spec[VK_MAX_SPEC], const void *push)
{
    vk_shader sh;
    if (!shader_of(name, l, &sh))
        return loom_fail(p->d->ctx, LOOM_E_UNSUPPORTED, "%s: no Vulkan kernel variant %s (op %s)", p->d->info->spec,
                         name, loom_op_name(p->prog->nodes[x->node].node->op));
    x->push_size = l->push_size;
    memcpy(x->push, push, l->push_size);
    return vk_pipe_get(p->d, &sh, spec, &x->pipe);
}

static loom_status use1(vk_prog *p, vk_dispatch *x, const char *name, const vk_layout *l, uint32_t spec0,
                        const void *push)
{
    uint32_t spec[VK_MAX_SPEC] = {spec0, 0, 0};
    return use_variant(p, x, name, l, spec, push);
}

/* "<base>_<dtype of t>" into buf. */
static const char *with_dt(char *buf, size_t n, const char *base, const loom_node *t)
{
    snprintf(buf, n, "%s_%s", base, dt_name(t->dtype));
    return buf;
}

/* The shared index arithmetic, narrowed to the 32-bit push constants. */
static void bstrides32(int nd, const int64_t *shape, const int64_t out4[4], uint32_t st[4])
{
    int64_t s[4];
    loom_bstrides(nd, shape, out4, s);
    for (int i = 0; i < 4; i++)
        st[i] = (uint32_t)s[i];
}

static const vk_layout L_UNARY = {"SS", sizeof(loom_pc_unary), {256, 1}};
static const vk_layout L_UNARY_GRAD = {"SSS", sizeof(loom_pc_unary), {256, 1}};
static const vk_layout L_BINARY = {"SSS", sizeof(loom_pc_bcast), {256, 1}};
static const vk_layout L_BINARY_GRAD = {"SSSS", sizeof(loom_pc_bcast), {256, 1}};
static const vk_layout L_WHERE = {"SSSS", sizeof(loom_pc_where), {256, 1}};
static const vk_layout L_GATHER = {"SS", sizeof(loom_pc_bcast), {256, 1}};
static const vk_layout L_ROWS = {"SS", sizeof(loom_pc_rows), {64, 1}};
static const vk_layout L_ROWS_GRAD = {"SSS", sizeof(loom_pc_rows), {64, 1}};
static const vk_layout L_XENT = {"SSS", sizeof(loom_pc_rows), {256, 1}};
static const vk_layout L_XENT_GRAD = {"SSSS", sizeof(loom_pc_rows), {64, 1}};
static const vk_layout L_XENT_FUSED = {"SSSSSS", sizeof(loom_pc_rows), {256, 1}};
static const vk_layout L_REDUCE = {"SS", sizeof(loom_pc_reduce), {64, 1}};
static const vk_layout L_ARG = {"SS", sizeof(loom_pc_argmax), {256, 1}};
static const vk_layout L_ARG_GRAD = {"SSS", sizeof(loom_pc_argmax), {256, 1}};
static const vk_layout L_DROPOUT = {"SSS", sizeof(loom_pc_dropout), {256, 1}};
static const vk_layout L_SUMSQ = {"SSSSSSSSS", sizeof(loom_pc_sumsq), {256, 1}};
static const vk_layout L_SLOT = {"SS", sizeof(loom_pc_slot), {1, 1}};
static const vk_layout L_SGD = {"SSSSS", sizeof(loom_pc_update), {256, 1}};
static const vk_layout L_ADAM = {"SSSSSS", sizeof(loom_pc_update), {256, 1}};
static const vk_layout L_EMA = {"SSS", sizeof(loom_pc_update), {256, 1}};
/* multi-tensor: the state window, [the gradients' window, the sumsq,] the
 * run slots, the table */
static const vk_layout L_SGD_MULTI = {"SSSSS", sizeof(loom_pc_update), {256, 1}};
static const vk_layout L_ADAM_MULTI = {"SSSSS", sizeof(loom_pc_update), {256, 1}};
static const vk_layout L_EMA_MULTI = {"SSS", sizeof(loom_pc_update), {256, 1}};
/* Adam's with the two windows again as rgba32f texel buffers (adam.comp's
 * LOOM_TEXEL) */
static const vk_layout L_ADAM_MULTI_TEXEL = {"SSSSSTT", sizeof(loom_pc_update), {256, 1}};
static const vk_layout L_GEMM = {"SSSS", sizeof(loom_pc_gemm), {16, 16}};
static const vk_layout L_GEMM_TEXEL = {"TTST", sizeof(loom_pc_gemm), {8, 8}};
/* the same with C an rgba32f storage texel buffer (gemm_texel_*v) */
static const vk_layout L_GEMM_TEXEL_CV = {"TTIT", sizeof(loom_pc_gemm), {8, 8}};

/* C per invocation of gemm_texel (its TM and 4 TN4), and the largest
 * workgroup side; gemm_tiled's tile (BM = BN). */
#define TEXEL_ROWS 16
#define TEXEL_COLS 8
#define TEXEL_WG 8
#define TILED_TILE 64

loom_status vk_gemm_shader(int texel_a, int texel_b, vk_shader *out)
{
    static const char *const a_paths[3] = {"k", "m", "s"}, *const b_paths[3] = {"n", "k", "s"};
    char name[32];
    if (texel_a < 0 || texel_b < 0) {
        snprintf(name, sizeof name, "gemm_tiled_f32");
        return shader_of(name, &L_GEMM, out) ? LOOM_OK : LOOM_E_UNSUPPORTED;
    }
    snprintf(name, sizeof name, "gemm_texel_%s%s", a_paths[texel_a], b_paths[texel_b]);
    return shader_of(name, &L_GEMM_TEXEL, out) ? LOOM_OK : LOOM_E_UNSUPPORTED;
}

/* ---- GEMM ----------------------------------------------------------------- */

/* 1 if t can be bound as a texel buffer of vec (1 or 4) floats. */
static int texel_ok(const vk_dev *d, const loom_exec_tensor *t, int vec)
{
    const vk_buf *vb = t->mem.buf;
    uint64_t off = vb->offset + t->mem.offset;
    return d->lim->texel_r32f && off % d->lim->texel_align == 0 && off % (4u * (unsigned)vec) == 0 &&
           t->mem.bytes % (4u * (unsigned)vec) == 0 && t->mem.bytes / (4u * (unsigned)vec) <= d->lim->max_texel_elements;
}

/* The texel read path of a GEMM operand: 4 if it is read as vec4 along a
 * contiguous dim whose size is a multiple of 4, 1 for scalars, 0 if it
 * cannot be a texel buffer at all. */
static int operand_vec(const vk_dev *d, const loom_exec_tensor *t, uint32_t contiguous_dim)
{
    if (contiguous_dim % 4 == 0 && texel_ok(d, t, 4))
        return 4;
    return texel_ok(d, t, 1) ? 1 : 0;
}

static loom_status plan_matmul(vk_prog *p, const loom_exec_node *x)
{
    const loom_node *nd = x->node, *na = x->in[0]->node, *nb = x->in[1]->node;
    const vk_dev *d = p->d;
    loom_pc_gemm pc = {0};
    pc.m = (uint32_t)nd->shape[0];
    pc.n = (uint32_t)nd->shape[1];
    pc.k = (uint32_t)(nd->attr.ta ? na->shape[0] : na->shape[1]);
    if (nd->attr.ta) {
        pc.sam = 1;
        pc.sak = (uint32_t)na->shape[1];
    } else {
        pc.sam = (uint32_t)na->shape[1];
        pc.sak = 1;
    }
    if (nd->attr.tb) {
        pc.sbk = 1;
        pc.sbn = (uint32_t)nb->shape[1];
    } else {
        pc.sbk = (uint32_t)nb->shape[1];
        pc.sbn = 1;
    }
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    dx->nbind = 4;
    dx->bind[0] = tensor(x->in[0], VK_READ);
    dx->bind[1] = tensor(x->in[1], VK_READ);
    dx->bind[2] = tensor(x->out, VK_WRITE);
    pc.epi = (uint32_t)loom_op_epilogue((loom_op)nd->attr.act);
    pc.depi = (uint32_t)loom_op_epilogue((loom_op)nd->attr.dact);
    pc.p1 = nd->attr.p1;
    pc.p2 = nd->attr.p2;
    if (nd->attr.bias || nd->attr.dact != LOOM_OP_NONE) {
        dx->bind[3] = tensor(x->in[2], VK_READ);
        pc.has_bias = (uint32_t)nd->attr.bias;
    } else {
        dx->bind[3] = alias(dx->bind[2]);
    }
    char name[32];
    const vk_layout *l = &L_GEMM;
    uint32_t tile_m = TILED_TILE, tile_n = TILED_TILE;
    uint32_t spec[VK_MAX_SPEC] = {0, 0, 0};
    if (nd->dtype == LOOM_F16 && d->info->fp16)
        snprintf(name, sizeof name, "gemm_tiled_f16a");
    else
        with_dt(name, sizeof name, "gemm_tiled", nd);
    /* An invocation walks K: gemm_texel four at a time, gemm_tiled sixteen
     * (its shared tile's depth); past the driver's loop budget for the
     * first the second takes over, and past that the product is refused. */
    if (nd->dtype == LOOM_F32 && (d->quirks & VK_QUIRK_TEXEL_READS) && vk_loops_fit(d, (uint64_t)pc.k / 4 + 3)) {
        int va = operand_vec(d, x->in[0], nd->attr.ta ? pc.m : pc.k);
        int vb = operand_vec(d, x->in[1], nd->attr.tb ? pc.k : pc.n);
        /* C as vec4 texels (a quarter of the per-lane store loops) where N
         * and C's and the bias's or y's bindings allow; the bias / y is
         * read as a texel buffer either way */
        int third = nd->attr.bias || nd->attr.dact != LOOM_OP_NONE;
        int cv = pc.n % 4 == 0 && texel_ok(d, x->out, 4) && (!third || texel_ok(d, x->in[2], 4));
        if (va && vb && (cv || !third || texel_ok(d, x->in[2], 1))) {
            static const char *const a_paths[3] = {"k", "m", "s"}, *const b_paths[3] = {"n", "k", "s"};
            int ia = va == 4 ? (nd->attr.ta ? 1 : 0) : 2, ib = vb == 4 ? (nd->attr.tb ? 1 : 0) : 2;
            snprintf(name, sizeof name, "gemm_texel_%s%s%s", a_paths[ia], b_paths[ib], cv ? "v" : "");
            l = cv ? &L_GEMM_TEXEL_CV : &L_GEMM_TEXEL;
            /* the epilogue is compiled per pipeline: the driver would run
             * every activation's arithmetic under a mask for a run-time one */
            spec[0] = pc.has_bias | pc.epi << 1 | pc.depi << 5;
            /* The smallest power-of-two workgroup (up to 8 x 8) whose
             * invocations all have rows and columns to compute. */
            uint32_t wx = 1, wy = 1;
            while (wx < TEXEL_WG && wx * TEXEL_COLS < pc.n)
                wx *= 2;
            while (wy < TEXEL_WG && wy * TEXEL_ROWS < pc.m)
                wy *= 2;
            spec[1] = wx;
            spec[2] = wy;
            tile_m = wy * TEXEL_ROWS;
            tile_n = wx * TEXEL_COLS;
            dx->bind[0].texel = va;
            dx->bind[1].texel = vb;
            if (cv)
                dx->bind[2].texel = 4;
            if (third)
                dx->bind[3].texel = cv ? 4 : 1;
            else
                dx->bind[3] = alias(dx->bind[0]);
        }
    }
    if (l == &L_GEMM)
        LOOM_TRY(vk_check_loops(p, nd, ((uint64_t)pc.k + 15) / 16 + 2));
    dx->groups[0] = (pc.n + tile_n - 1) / tile_n;
    dx->groups[1] = (pc.m + tile_m - 1) / tile_m;
    dx->groups[2] = 1;
    if (dx->groups[0] > d->lim->max_groups[0] || dx->groups[1] > d->lim->max_groups[1])
        return loom_fail(d->ctx, LOOM_E_UNSUPPORTED, "%s: matmul \"%s\" [%u,%u] needs more workgroups than the device has",
                         d->info->spec, nd->name, pc.m, pc.n);
    return use_variant(p, dx, name, l, spec, &pc);
}

/* ---- element-wise ---------------------------------------------------------- */

static loom_status plan_unary(vk_prog *p, const loom_exec_node *x)
{
    loom_pc_unary pc = {(uint32_t)x->node->numel, x->node->attr.p1, x->node->attr.p2};
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    int grad = x->def->family == LOOM_FAM_UNARY_GRAD;
    dx->nbind = grad ? 3 : 2;
    dx->bind[0] = tensor(x->in[0], VK_READ);
    if (grad)
        dx->bind[1] = tensor(x->in[1], VK_READ);
    dx->bind[dx->nbind - 1] = tensor(x->out, VK_WRITE);
    LOOM_TRY(grid(p, dx, pc.n, 256, x->node));
    char name[64];
    variant_name(x, name, sizeof name);
    return use1(p, dx, name, grad ? &L_UNARY_GRAD : &L_UNARY, 0, &pc);
}

static loom_status plan_cast(vk_prog *p, const loom_exec_node *x)
{
    loom_pc_unary pc = {(uint32_t)x->node->numel, 0, 0};
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    dx->nbind = 2;
    dx->bind[0] = tensor(x->in[0], VK_READ);
    dx->bind[1] = tensor(x->out, VK_WRITE);
    LOOM_TRY(grid(p, dx, pc.n, 256, x->node));
    char name[64];
    variant_name(x, name, sizeof name);
    return use1(p, dx, name, &L_UNARY, 0, &pc);
}

/* Binary ops and their gradients: the output as a rank-4 index, a and b
 * at their broadcast strides; the gradient reads dy densely at binding 0. */
static loom_status plan_binary(vk_prog *p, const loom_exec_node *x)
{
    int grad = x->def->family == LOOM_FAM_BINARY_GRAD;
    const loom_exec_tensor *ta = x->in[grad], *tb = x->in[grad + 1];
    const loom_node *o = x->out->node, *na = ta->node, *nb = tb->node;
    loom_pc_bcast pc = {0};
    pc.n = (uint32_t)o->numel;
    pc.dense = na->numel == o->numel && nb->numel == o->numel;
    int64_t d4[4];
    loom_shape4(o->ndim, o->shape, d4);
    for (int i = 0; i < 4; i++)
        pc.d[i] = (uint32_t)d4[i];
    bstrides32(na->ndim, na->shape, d4, pc.sa);
    bstrides32(nb->ndim, nb->shape, d4, pc.sb);
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    dx->nbind = 3 + grad;
    for (int k = 0; k < x->nin; k++)
        dx->bind[k] = tensor(x->in[k], VK_READ);
    dx->bind[x->nin] = tensor(x->out, VK_WRITE);
    LOOM_TRY(grid(p, dx, pc.n, 256, o));
    char name[64];
    variant_name(x, name, sizeof name);
    return use1(p, dx, name, grad ? &L_BINARY_GRAD : &L_BINARY, (uint32_t)x->node->attr.side, &pc);
}

static loom_status plan_where(vk_prog *p, const loom_exec_node *x)
{
    const loom_node *o = x->node;
    loom_pc_where pc = {0};
    pc.n = (uint32_t)o->numel;
    int64_t d4[4];
    loom_shape4(o->ndim, o->shape, d4);
    for (int i = 0; i < 4; i++)
        pc.d[i] = (uint32_t)d4[i];
    bstrides32(x->in[0]->node->ndim, x->in[0]->node->shape, d4, pc.sc);
    bstrides32(x->in[1]->node->ndim, x->in[1]->node->shape, d4, pc.sa);
    bstrides32(x->in[2]->node->ndim, x->in[2]->node->shape, d4, pc.sb);
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    dx->nbind = 4;
    for (int k = 0; k < 3; k++)
        dx->bind[k] = tensor(x->in[k], VK_READ);
    dx->bind[3] = tensor(x->out, VK_WRITE);
    LOOM_TRY(grid(p, dx, pc.n, 256, o));
    char name[32];
    return use1(p, dx, with_dt(name, sizeof name, "where", o), &L_WHERE, 0, &pc);
}

/* out[i] = in[strided i]: copy, expand, transpose, by element size. */
static loom_status plan_gather(vk_prog *p, const loom_exec_node *x)
{
    const loom_node *nd = x->node;
    int code = x->def->code;
    if (code == LOOM_GATHER_COPY && same_memory(x->in[0], x->out))
        return LOOM_OK; /* reshaped in place: nothing to move */
    loom_pc_bcast pc = {0};
    pc.n = (uint32_t)nd->numel;
    pc.dense = code == LOOM_GATHER_COPY;
    if (!pc.dense) {
        int64_t d4[4], st[4];
        loom_gather_strides(code, x->in[0]->node, nd, d4, st);
        for (int i = 0; i < 4; i++) {
            pc.d[i] = (uint32_t)d4[i];
            pc.sa[i] = (uint32_t)st[i];
        }
    }
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    dx->nbind = 2;
    dx->bind[0] = tensor(x->in[0], VK_READ);
    dx->bind[1] = tensor(x->out, VK_WRITE);
    LOOM_TRY(grid(p, dx, pc.n, 256, nd));
    return use1(p, dx, loom_dtype_size(nd->dtype) == 2 ? "gather_16" : "gather_32", &L_GATHER, 0, &pc);
}

static loom_status plan_dropout(vk_prog *p, const loom_exec_node *x)
{
    const loom_attr *at = &x->node->attr;
    loom_pc_dropout pc = {(uint32_t)x->node->numel, (uint32_t)x->run_slot, at->alpha, 1.0f / (1.0f - at->alpha)};
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    dx->nbind = 3;
    dx->bind[0] = tensor(x->in[0], VK_READ);
    dx->bind[1] = tensor(x->out, VK_WRITE);
    dx->bind[2] = run_slots();
    LOOM_TRY(grid(p, dx, pc.n, 256, x->node));
    char name[32];
    return use1(p, dx, with_dt(name, sizeof name, "dropout", x->node), &L_DROPOUT, 0, &pc);
}

/* ---- rows and reductions ---------------------------------------------------- */

/* Short rows, or a driver where barriers are dear and there are rows
 * enough to keep it busy: one invocation per row; else a workgroup. A
 * row's kernel makes `walks` passes over it and `wgcalls` workgroup
 * reductions (wgreduce.glsl, 7 passes at 64): an invocation walking whole
 * rows that would pass the driver's loop budget leaves them to the
 * workgroups, and a row too long even for those is refused. */
loom_status vk_rows_variant(vk_prog *p, const loom_node *nd, uint32_t rows, uint32_t cols, uint32_t walks,
                            uint32_t wgcalls, uint32_t *pt)
{
    *pt = (cols <= 32 || ((p->d->quirks & VK_QUIRK_SLOW_BARRIERS) && rows >= 16)) &&
          vk_loops_fit(p->d, (uint64_t)walks * ((uint64_t)cols + 1));
    return *pt ? LOOM_OK : vk_check_loops(p, nd, (uint64_t)walks * (((uint64_t)cols + 63) / 64 + 1) + 7u * wgcalls);
}

static loom_status plan_softmax(vk_prog *p, const loom_exec_node *x)
{
    const loom_node *nd = x->node;
    loom_axis_split sp = loom_axis_split_of(nd, nd->attr.axis);
    loom_pc_rows pc = {(uint32_t)(sp.outer * sp.inner), (uint32_t)sp.n, (uint32_t)sp.inner, 0, 0, 0};
    int grad = x->def->family == LOOM_FAM_SOFTMAX_GRAD;
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    dx->nbind = grad ? 3 : 2;
    for (int k = 0; k < x->nin; k++)
        dx->bind[k] = tensor(x->in[k], VK_READ);
    dx->bind[x->nin] = tensor(x->out, VK_WRITE);
    /* softmax: the max, the sum, the output; its gradient: the sum, the output */
    uint32_t pt;
    LOOM_TRY(vk_rows_variant(p, nd, pc.rows, pc.cols, grad ? 2 : 3, grad ? 1 : 2, &pt));
    LOOM_TRY(grid(p, dx, pt ? pc.rows : (uint64_t)pc.rows * 64, 64, nd));
    uint32_t spec[VK_MAX_SPEC] = {x->def->code == LOOM_SOFTMAX_LOG, pt, 0};
    char name[32];
    return use_variant(p, dx, with_dt(name, sizeof name, grad ? "softmax_grad" : "softmax", nd),
                       grad ? &L_ROWS_GRAD : &L_ROWS, spec, &pc);
}

static loom_status plan_xent(vk_prog *p, const loom_exec_node *x)
{
    const loom_node *nz = x->in[0]->node, *nd = x->node;
    uint32_t rows = (uint32_t)nz->shape[0], cols = (uint32_t)nz->shape[1];
    loom_pc_rows pc = {rows, cols, 1, 0, rows, 0};
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    dx->nbind = 3;
    dx->bind[0] = tensor(x->in[0], VK_READ);
    dx->bind[1] = tensor(x->in[1], VK_READ);
    dx->bind[2] = tensor(x->out, VK_WRITE);
    dx->groups[0] = dx->groups[1] = dx->groups[2] = 1;
    char name[32];
    variant_name(x, name, sizeof name);
    /* One workgroup of 256: each invocation walks its rows (one in 256)
     * twice, 2 cols + 3 passes a row, then the workgroup sums (10). Where
     * the driver's loop budget ends that early the rows go in parts, a
     * dispatch each; a row too long for one invocation is walked by the
     * whole workgroup (two walks of a 256th of it and two workgroup
     * reductions of 9). */
    uint64_t room = vk_loop_room(p->d), part = rows;
    uint32_t row_wg = 0;
    if (room != UINT64_MAX) {
        uint64_t one = 2 * (uint64_t)cols + 3, wg = 2 * (((uint64_t)cols + 255) / 256 + 1) + 19;
        uint64_t left = room > 10 ? room - 10 : 0;
        part = 256 * (left / one);
        if (part == 0) {
            row_wg = 1;
            part = left / wg;
            if (part == 0)
                return vk_check_loops(p, nd, wg + 10);
        }
    }
    uint32_t spec[VK_MAX_SPEC] = {row_wg, 0, 0};
    LOOM_TRY(use_variant(p, dx, name, &L_XENT, spec, &pc));
    return vk_split_dispatch(p, dx, 2, offsetof(loom_pc_rows, r0), rows, part);
}

/* xent_fused.comp: an invocation's rows (one in 256), each walked three
 * times (the arg-max, the sum, the gradient), then the workgroup's sum */
static uint64_t xent_fused_passes(int64_t rows, int64_t cols)
{
    return (uint64_t)((rows + 255) / 256) * (3 * (uint64_t)cols + 3) + 10;
}

/* in: dloss, logits, labels */
static loom_status plan_xent_grad(vk_prog *p, const loom_exec_node *x)
{
    const loom_node *nd = x->node;
    loom_pc_rows pc = {(uint32_t)nd->shape[0], (uint32_t)nd->shape[1], 1, 0, 0, 0};
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    dx->nbind = 4;
    for (int i = 0; i < 3; i++)
        dx->bind[i] = tensor(x->in[i], VK_READ);
    dx->bind[3] = tensor(x->out, VK_WRITE);
    char name[32];
    if (x->also[0] || x->also[1]) {
        /* with the loss and the prediction: one workgroup over every row */
        dx->nbind = 6;
        dx->bind[4] = x->also[0] ? tensor(x->also[0], VK_WRITE) : alias(dx->bind[3]);
        dx->bind[5] = x->also[1] ? tensor(x->also[1], VK_WRITE) : alias(dx->bind[3]);
        dx->groups[0] = dx->groups[1] = dx->groups[2] = 1;
        LOOM_TRY(vk_check_loops(p, nd, xent_fused_passes(pc.rows, pc.cols)));
        uint32_t spec[VK_MAX_SPEC] = {x->also[0] != NULL, x->also[1] != NULL, 0};
        return use_variant(p, dx, with_dt(name, sizeof name, "xent_fused", nd), &L_XENT_FUSED, spec, &pc);
    }
    uint32_t pt; /* the max, the sum, the output */
    LOOM_TRY(vk_rows_variant(p, nd, pc.rows, pc.cols, 3, 2, &pt));
    LOOM_TRY(grid(p, dx, pt ? pc.rows : (uint64_t)pc.rows * 64, 64, nd));
    uint32_t spec[VK_MAX_SPEC] = {0, pt, 0};
    return use_variant(p, dx, with_dt(name, sizeof name, "xent_grad", nd), &L_XENT_GRAD, spec, &pc);
}

static loom_status plan_reduce(vk_prog *p, const loom_exec_node *x)
{
    const loom_node *ni = x->in[0]->node, *nd = x->node;
    int64_t d4[4], r4[4];
    loom_shape4(ni->ndim, ni->shape, d4);
    loom_shape4(nd->attr.rdim, nd->attr.rshape, r4);
    loom_pc_reduce pc = {0};
    int64_t s = 1;
    for (int i = 3; i >= 0; i--) {
        pc.d[i] = (uint32_t)d4[i];
        pc.r[i] = (uint32_t)r4[i];
        pc.st[i] = (uint32_t)s;
        s *= d4[i];
    }
    int64_t on = loom_numel(nd->attr.rdim, nd->attr.rshape);
    pc.on = (uint32_t)on;
    pc.rn = on ? (uint32_t)(ni->numel / on) : 0;
    pc.alpha = nd->attr.alpha;
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    dx->nbind = 2;
    dx->bind[0] = tensor(x->in[0], VK_READ);
    dx->bind[1] = tensor(x->out, VK_WRITE);
    /* Few elements per output, or outputs enough on a driver where barriers
     * are dear: one invocation each (rn + 1 loop passes); else a workgroup
     * each (a 64th of them, its tree's 7, the exit). Past the driver's
     * loop budget the workgroups take over, and past theirs the sum runs
     * in parts, each dispatch combining its range onto the last. */
    uint64_t rn = pc.rn, room = vk_loop_room(p->d);
    uint32_t pt = (rn < 64 || ((p->d->quirks & VK_QUIRK_SLOW_BARRIERS) && pc.on >= 16)) && vk_loops_fit(p->d, rn + 1);
    uint64_t part = pt || room == UINT64_MAX ? rn : 64 * (room > 9 ? room - 9 : 0);
    if (part == 0 && rn > 0)
        return vk_check_loops(p, nd, (rn + 63) / 64 + 9);
    LOOM_TRY(grid(p, dx, pt ? pc.on : (uint64_t)pc.on * 64, 64, nd));
    uint32_t spec[VK_MAX_SPEC] = {pt, x->def->code, 0};
    char name[32];
    with_dt(name, sizeof name, "reduce", nd);
    LOOM_TRY(use_variant(p, dx, name, &L_REDUCE, spec, &pc));
    return vk_split_dispatch(p, dx, 1, offsetof(loom_pc_reduce, t0), rn, part);
}

/* argmax / argmin (in: x), and the gradients of max / min (in: dy, x). */
static loom_status plan_arg(vk_prog *p, const loom_exec_node *x)
{
    int grad = x->def->family == LOOM_FAM_ARG_GRAD;
    const loom_node *ni = x->in[grad]->node;
    loom_axis_split sp = loom_axis_split_of(ni, x->node->attr.axis);
    loom_pc_argmax pc = {(uint32_t)sp.outer, (uint32_t)sp.n, (uint32_t)sp.inner};
    /* an invocation walks its slice: to find the arg-max, and for the
     * gradient once more to write it */
    LOOM_TRY(vk_check_loops(p, x->node, (grad ? 2 : 1) * ((uint64_t)pc.n + 1)));
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    dx->nbind = x->nin + 1;
    for (int k = 0; k < x->nin; k++)
        dx->bind[k] = tensor(x->in[k], VK_READ);
    dx->bind[x->nin] = tensor(x->out, VK_WRITE);
    LOOM_TRY(grid(p, dx, (uint64_t)pc.outer * pc.inner, 256, x->node));
    char name[32];
    if (grad)
        with_dt(name, sizeof name, "arg_grad", x->node);
    else
        variant_name(x, name, sizeof name);
    return use1(p, dx, name, grad ? &L_ARG_GRAD : &L_ARG, x->def->code, &pc);
}

/* One workgroup of 256 sums the squares of 8 bound ranges a dispatch,
 * each dispatch adding onto the last: an invocation makes a 256th of the
 * elements' passes, 8 loop exits and its tree's 9. On a driver with a
 * loop budget the gradients are cut into pieces (sub-ranges of their
 * bindings, 2^16 elements aligned) and a dispatch takes as many as its
 * budget holds. */
static loom_status plan_sumsq(vk_prog *p, const loom_exec_node *x)
{
    uint64_t room = vk_loop_room(p->d), fixed = LOOM_SUMSQ_MAX_IN + 9;
    LOOM_TRY(vk_check_loops(p, x->node, fixed + 256));
    uint64_t piece = room == UINT64_MAX ? UINT64_MAX : (room - fixed) * 256 / 65536 * 65536;
    int i = 0; /* the next piece: input i from element at */
    uint64_t at = 0;
    for (int part = 0;; part++) {
        loom_pc_sumsq pc = {{0}, (uint32_t)(part > 0)};
        vk_dispatch *dx;
        LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
        dx->nbind = LOOM_SUMSQ_MAX_IN + 1;
        int k = 0;
        uint64_t cost = 0;
        while (i < x->nin && k < LOOM_SUMSQ_MAX_IN) {
            uint64_t n = (uint64_t)x->in[i]->node->numel;
            if (at >= n) {
                i++;
                at = 0;
                continue;
            }
            uint64_t len = n - at < piece ? n - at : piece, c = (len + 255) / 256;
            if (k > 0 && cost + c > room - fixed)
                break;
            vk_bind b = tensor(x->in[i], VK_READ);
            b.offset += at * 4;
            b.range = len * 4;
            dx->bind[k] = b;
            pc.n[k++] = (uint32_t)len;
            cost += c;
            at += len;
        }
        if (k == 0)
            dx->bind[k++] = alias(tensor(x->out, 0)); /* nothing to sum (pc.n[0] = 0) */
        for (int j = k; j < LOOM_SUMSQ_MAX_IN; j++)
            dx->bind[j] = alias(dx->bind[0]);
        dx->bind[LOOM_SUMSQ_MAX_IN] = tensor(x->out, part > 0 ? VK_READ | VK_WRITE : VK_WRITE);
        dx->groups[0] = dx->groups[1] = dx->groups[2] = 1;
        LOOM_TRY(use1(p, dx, "sumsq", &L_SUMSQ, 0, &pc));
        while (i < x->nin && at >= (uint64_t)x->in[i]->node->numel) {
            i++;
            at = 0;
        }
        if (i >= x->nin)
            return LOOM_OK;
    }
}

static loom_status plan_run_value(vk_prog *p, const loom_exec_node *x)
{
    loom_pc_slot pc = {1, (uint32_t)x->run_slot};
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    dx->nbind = 2;
    dx->bind[0] = tensor(x->out, VK_WRITE);
    dx->bind[1] = run_slots();
    dx->groups[0] = dx->groups[1] = dx->groups[2] = 1;
    return use1(p, dx, "loss_scale", &L_SLOT, 0, &pc);
}

/* ---- optimizer updates ---------------------------------------------------- */

/* in[0] = param, in[1] = grad, then the moments the kernel has slots for
 * (aliases where the variant does not use them), the sumsq scalar, the run
 * slots. Inputs the op writes (the table's writes mask) are read-write. */
static void update_push(const loom_exec_node *x, loom_pc_update *pc)
{
    const loom_attr *at = &x->node->attr;
    memset(pc, 0, sizeof *pc);
    pc->n = (uint32_t)x->in[0]->node->numel;
    pc->slot = (uint32_t)x->run_slot;
    pc->clip = (uint32_t)at->clip;
    pc->skip_nonfinite = (uint32_t)at->skip_nonfinite;
    pc->nesterov = (uint32_t)at->nesterov;
    pc->clip_norm = at->clip_norm;
    pc->beta1 = at->beta1;
    pc->beta2 = at->beta2;
    pc->eps = at->eps;
    pc->momentum = at->momentum;
    pc->weight_decay = at->weight_decay;
    pc->l1 = at->l1;
    pc->l2 = at->l2;
    pc->grad_rows = (uint32_t)at->grad_rows;
}

static const char *update_kernel(int family)
{
    return family == LOOM_FAM_ADAM ? "adam" : family == LOOM_FAM_SGD ? "sgd" : "ema";
}

/* Elements per invocation of an update kernel (update.glsl's PER): where
 * invocations are emulated, each workgroup is a call of its own (measured
 * on lavapipe: the seed's Adam update at one element per invocation was
 * most of a batch-32 step). */
static uint32_t update_per(const vk_dev *d)
{
    return (d->quirks & VK_QUIRK_SLOW_BARRIERS) ? 16u : 1u;
}

/* The loop passes of an update's invocation (update.glsl): its elements
 * (per, a workgroup apart; fewer in a small tensor), each summing `rows`
 * rows of a folded bias gradient, and the bisection of a multi-tensor
 * update's table. */
static uint64_t update_passes(uint64_t n, uint64_t rows, uint32_t per, uint32_t lanes)
{
    uint64_t k = (n + 256u * lanes - 1) / (256u * lanes);
    k = k < per ? k : per;
    return k * (rows + 2) + 40;
}

/* Workgroups of 256 for n elements, per of them to an invocation. */
static uint32_t update_groups(uint32_t n, uint32_t per)
{
    return (uint32_t)(((uint64_t)n + 256u * per - 1u) / (256u * per));
}

static loom_status plan_update_one(vk_prog *p, const loom_exec_node *x)
{
    const loom_attr *at = &x->node->attr;
    loom_pc_update pc;
    update_push(x, &pc);
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    int family = x->def->family;
    const vk_layout *l = family == LOOM_FAM_ADAM ? &L_ADAM : family == LOOM_FAM_SGD ? &L_SGD : &L_EMA;
    int nmoments = (int)strlen(l->kinds) - (family == LOOM_FAM_EMA ? 3 : 4);
    int have = x->nin - 2 - at->clip; /* moments the node has */
    dx->nbind = (int)strlen(l->kinds);
    for (int k = 0; k < 2; k++)
        dx->bind[k] = tensor(x->in[k], (x->def->writes >> k) & 1 ? VK_READ | VK_WRITE : VK_READ);
    for (int k = 0; k < nmoments; k++)
        dx->bind[2 + k] = k < have ? tensor(x->in[2 + k], (x->def->writes >> (2 + k)) & 1 ? VK_READ | VK_WRITE : VK_READ)
                                   : alias(dx->bind[0]);
    if (family != LOOM_FAM_EMA)
        dx->bind[2 + nmoments] = at->clip ? tensor(x->in[x->nin - 1], VK_READ) : alias(dx->bind[1]);
    dx->bind[dx->nbind - 1] = run_slots();
    uint32_t per = update_per(p->d);
    LOOM_TRY(vk_check_loops(p, x->node, update_passes(pc.n, pc.grad_rows, per, 1)));
    LOOM_TRY(grid(p, dx, (uint64_t)update_groups(pc.n, per) * 256u, 256, x->node));
    uint32_t spec[VK_MAX_SPEC] = {family == LOOM_FAM_SGD && have > 0, per, 0};
    return use_variant(p, dx, update_kernel(family), l, spec, &pc);
}

/* A window of one buffer that a multi-tensor update binds: every tensor of
 * the group that lives there, within one binding's reach. */
typedef struct vk_window {
    VkBuffer buf;
    uint64_t lo, hi;            /* lo aligned to the device's storage offsets */
} vk_window;

static int window_take(const vk_dev *d, vk_window *w, vk_bind b)
{
    if (w->buf && w->buf != b.buf)
        return 0;
    uint64_t lo = w->buf && w->lo < b.offset ? w->lo : b.offset, hi = w->buf && w->hi > b.offset + b.range ? w->hi : b.offset + b.range;
    uint64_t align = d->lim->storage_align ? d->lim->storage_align : 4;
    lo -= lo % align;
    if (hi - lo > d->lim->max_storage_range || (b.offset - lo) % 4)
        return 0;
    *w = (vk_window){b.buf, lo, hi};
    return 1;
}

/* The whole rgba32f texels of window w as a binding the kernel reads but the
 * hazard tracking skips (the window's storage binding already names the
 * range); 0 if the device cannot view it so. */
static int window_texels(const vk_dev *d, const vk_window *w, vk_bind *out)
{
    uint64_t range = (w->hi - w->lo) / 16u * 16u;
    if (!d->lim->texel_r32f || w->lo % (d->lim->texel_align ? d->lim->texel_align : 16u) || w->lo % 16u ||
        range == 0 || range / 16u > d->lim->max_texel_elements)
        return 0;
    *out = (vk_bind){w->buf, w->lo, range, 4, 0, 0};
    return 1;
}

static uint32_t window_word(const vk_window *w, const loom_exec_tensor *t)
{
    return (uint32_t)((tensor(t, 0).offset - w->lo) / 4);
}

/* The tensors of update x in the state window (the parameter, its moments;
 * for an EMA the parameter too) and, for SGD and Adam, its gradient. */
static int update_fits(const vk_prog *p, const loom_exec_node *x, vk_window *sw, vk_window *gw)
{
    int family = x->def->family, have = x->nin - 2 - x->node->attr.clip;
    vk_window s = *sw, g = *gw;
    int ok = window_take(p->d, &s, tensor(x->in[0], 0));
    if (family == LOOM_FAM_EMA)
        ok = ok && window_take(p->d, &s, tensor(x->in[1], 0));
    else
        ok = ok && window_take(p->d, &g, tensor(x->in[1], 0));
    for (int k = 0; k < have && family != LOOM_FAM_EMA; k++)
        ok = ok && window_take(p->d, &s, tensor(x->in[2 + k], 0));
    if (ok) {
        *sw = s;
        *gw = g;
    }
    return ok;
}

/* One dispatch for updates x[0..n): a table entry each (push: the first
 * entry and their count). */
static loom_status plan_update_multi(vk_prog *p, const loom_exec_node *x, int n, const vk_window *sw,
                                     const vk_window *gw)
{
    int family = x->def->family, have = x->nin - 2 - x->node->attr.clip;
    uint32_t first = 0, wgs = 0, per = update_per(p->d), vec4s = 0;
    for (int k = 0; k < n; k++) {
        const loom_exec_node *y = &x[k];
        uint32_t e[LOOM_UPDATE_ENTRY] = {0};
        e[0] = window_word(sw, y->in[0]);
        e[1] = window_word(family == LOOM_FAM_EMA ? sw : gw, y->in[1]);
        if (family != LOOM_FAM_EMA && have > 0)
            e[2] = window_word(sw, y->in[2]);
        if (family == LOOM_FAM_ADAM)
            e[3] = window_word(sw, y->in[3]);
        e[4] = (uint32_t)y->in[0]->node->numel;
        e[5] = (uint32_t)y->node->attr.grad_rows;
        e[6] = wgs;
        /* Adam takes whole vec4s four to an invocation (update.glsl's lanes) */
        e[7] = family == LOOM_FAM_ADAM && e[4] % 4 == 0 && e[0] % 4 == 0 && e[1] % 4 == 0 && e[2] % 4 == 0 &&
                       e[3] % 4 == 0
                   ? 4
                   : 1;
        vec4s += e[7] == 4;
        LOOM_TRY(vk_check_loops(p, y->node, update_passes(e[4], e[5], per, e[7])));
        uint32_t at;
        LOOM_TRY(table_add(p, e, LOOM_UPDATE_ENTRY, &at));
        if (k == 0)
            first = at;
        wgs += update_groups(e[4], per * e[7]);
    }
    loom_pc_update pc;
    update_push(x, &pc);
    pc.n = (uint32_t)n;
    pc.first = first;
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    const vk_layout *l = family == LOOM_FAM_ADAM ? &L_ADAM_MULTI : family == LOOM_FAM_SGD ? &L_SGD_MULTI : &L_EMA_MULTI;
    dx->nbind = (int)strlen(l->kinds);
    dx->bind[0] = (vk_bind){sw->buf, sw->lo, sw->hi - sw->lo, 0, VK_READ | VK_WRITE, 0};
    int b = 1;
    if (family != LOOM_FAM_EMA) {
        dx->bind[b++] = (vk_bind){gw->buf, gw->lo, gw->hi - gw->lo, 0, VK_READ, 0};
        dx->bind[b] = x->node->attr.clip ? tensor(x->in[x->nin - 1], VK_READ) : alias(dx->bind[1]);
        b++;
    }
    dx->bind[b++] = run_slots();
    dx->bind[b++] = table_binding();
    /* where storage-buffer reads are lane by lane, Adam's vec4 entries read
     * through texel buffers (lavapipe on an AVX2 host: the seed's update
     * from 3.7 to 1.4 ms of a batch-32 step, whose whole fit went from
     * 7.3k to 9.8k samples/s) */
    int texel = family == LOOM_FAM_ADAM && vec4s > 0 && (p->d->quirks & VK_QUIRK_TEXEL_READS) &&
                window_texels(p->d, sw, &dx->bind[b]) && window_texels(p->d, gw, &dx->bind[b + 1]);
    if (texel) {
        l = &L_ADAM_MULTI_TEXEL;
        dx->nbind = (int)strlen(l->kinds);
    }
    LOOM_TRY(grid(p, dx, (uint64_t)wgs * 256, 256, x->node));
    char name[32];
    snprintf(name, sizeof name, "%s_multi%s", update_kernel(family), texel ? "_texel" : "");
    uint32_t spec[VK_MAX_SPEC] = {family == LOOM_FAM_SGD && have > 0, per, 0};
    return use_variant(p, dx, name, l, spec, &pc);
}

/* A group of updates (exec node.group, the core's multi-tensor update)
 * runs as one dispatch per run of members whose tensors share a window;
 * a member that shares with none runs alone. */
static loom_status plan_update(vk_prog *p, const loom_exec_node *x)
{
    if (x->group == 0)
        return LOOM_OK; /* planned with its group's first node */
    for (int i = 0; i < x->group;) {
        vk_window sw = {0}, gw = {0};
        uint64_t wgs = 0;
        int j = i;
        while (j < x->group && wgs + (uint64_t)(x[j].in[0]->node->numel + 255) / 256 <= UINT32_MAX &&
               update_fits(p, &x[j], &sw, &gw))
            wgs += (uint64_t)(x[j++].in[0]->node->numel + 255) / 256;
        if (j - i < 2) {
            LOOM_TRY(plan_update_one(p, &x[i]));
            i++;
            continue;
        }
        LOOM_TRY(plan_update_multi(p, x + i, j - i, &sw, &gw));
        i = j;
    }
    return LOOM_OK;
}

/* ---- the family table ------------------------------------------------------- */

typedef loom_status (*vk_planner)(vk_prog *p, const loom_exec_node *x);

typedef struct vk_family {
    vk_planner plan;
    unsigned dtypes;           /* the output dtypes it is built for */
} vk_family;

#define F_ALL (LOOM_DT_FLOATS | LOOM_DT_BIT(LOOM_I32))
static const vk_family vk_families[LOOM_FAM_COUNT] = {
    [LOOM_FAM_UNARY] = {plan_unary, LOOM_DT_FLOATS},
    [LOOM_FAM_UNARY_GRAD] = {plan_unary, LOOM_DT_FLOATS},
    [LOOM_FAM_BINARY] = {plan_binary, LOOM_DT_FLOATS},
    [LOOM_FAM_BINARY_GRAD] = {plan_binary, LOOM_DT_FLOATS},
    [LOOM_FAM_WHERE] = {plan_where, LOOM_DT_FLOATS},
    [LOOM_FAM_CAST] = {plan_cast, F_ALL},
    [LOOM_FAM_MATMUL] = {plan_matmul, LOOM_DT_FLOATS},
    [LOOM_FAM_GATHER] = {plan_gather, F_ALL},
    [LOOM_FAM_SOFTMAX] = {plan_softmax, LOOM_DT_FLOATS},
    [LOOM_FAM_SOFTMAX_GRAD] = {plan_softmax, LOOM_DT_FLOATS},
    [LOOM_FAM_REDUCE] = {plan_reduce, LOOM_DT_FLOATS},
    [LOOM_FAM_ARG_REDUCE] = {plan_arg, LOOM_DT_BIT(LOOM_I32)},
    [LOOM_FAM_ARG_GRAD] = {plan_arg, LOOM_DT_FLOATS},
    [LOOM_FAM_XENT] = {plan_xent, LOOM_DT_BIT(LOOM_F32)},
    [LOOM_FAM_XENT_GRAD] = {plan_xent_grad, LOOM_DT_FLOATS},
    [LOOM_FAM_DROPOUT] = {plan_dropout, LOOM_DT_FLOATS},
    [LOOM_FAM_SUMSQ] = {plan_sumsq, LOOM_DT_BIT(LOOM_F32)},
    [LOOM_FAM_RUN_VALUE] = {plan_run_value, LOOM_DT_BIT(LOOM_F32)},
    [LOOM_FAM_SGD] = {plan_update, LOOM_DT_BIT(LOOM_F32)},
    [LOOM_FAM_ADAM] = {plan_update, LOOM_DT_BIT(LOOM_F32)},
    [LOOM_FAM_EMA] = {plan_update, LOOM_DT_BIT(LOOM_F32)},
    [LOOM_FAM_CUSTOM] = {vk_plan_custom, LOOM_DT_BIT(LOOM_F32) | LOOM_DT_BIT(LOOM_I32)},
    [LOOM_FAM_CONV] = {vk_plan_conv, LOOM_DT_FLOATS},
    [LOOM_FAM_POOL] = {vk_plan_pool, LOOM_DT_FLOATS},
    [LOOM_FAM_POOL_GRAD] = {vk_plan_pool, LOOM_DT_FLOATS},
    [LOOM_FAM_NORM] = {vk_plan_norm, LOOM_DT_FLOATS},
    [LOOM_FAM_NORM_UPDATE] = {vk_plan_norm_update, LOOM_DT_BIT(LOOM_F32)},
    [LOOM_FAM_WINDOW] = {vk_plan_window, F_ALL},
    [LOOM_FAM_CONCAT] = {vk_plan_concat, F_ALL},
    [LOOM_FAM_BMM] = {vk_plan_bmm, LOOM_DT_FLOATS},
    [LOOM_FAM_LNORM] = {vk_plan_lnorm, LOOM_DT_FLOATS},
    [LOOM_FAM_LNORM_GRAD] = {vk_plan_lnorm, LOOM_DT_FLOATS},
    [LOOM_FAM_TAKE] = {vk_plan_index, LOOM_DT_FLOATS},
    [LOOM_FAM_SCATTER] = {vk_plan_index, LOOM_DT_FLOATS},
    [LOOM_FAM_ROPE] = {vk_plan_rope, LOOM_DT_FLOATS},
    [LOOM_FAM_ATTENTION] = {vk_plan_attention, LOOM_DT_FLOATS},
    [LOOM_FAM_QUANT] = {vk_plan_quant, LOOM_DT_BIT(LOOM_F32) | LOOM_DT_BIT(LOOM_I8)},
    [LOOM_FAM_QMATMUL] = {vk_plan_qgemm, LOOM_DT_BIT(LOOM_F32) | LOOM_DT_BIT(LOOM_I8)},
    [LOOM_FAM_QCONV] = {vk_plan_qgemm, LOOM_DT_BIT(LOOM_F32) | LOOM_DT_BIT(LOOM_I8)},
    [LOOM_FAM_MASK] = {vk_plan_mask_update, LOOM_DT_BIT(LOOM_F32)},
};

/* The variant a family uses for an op in dtype dt, whatever the device;
 * "" when the family has no per-op or per-dtype variants to find. */
static int variant_exists(loom_op op, loom_dtype dt, loom_dtype in_dt)
{
    const loom_op_def *def = loom_op_def_of(op);
    loom_node nd = {.op = op, .dtype = dt};
    loom_node ni = {.dtype = in_dt};
    loom_exec_tensor ti = {&ni, {0}};
    const loom_exec_tensor *ins[1] = {&ti};
    loom_exec_node x = {.node = &nd, .def = def, .nin = 1, .in = ins};
    char name[64];
    switch (def->family) {
    case LOOM_FAM_UNARY:
    case LOOM_FAM_BINARY:
    case LOOM_FAM_CAST:
    case LOOM_FAM_ARG_REDUCE:
    case LOOM_FAM_XENT:
        variant_name(&x, name, sizeof name);
        return spv_find(name) != NULL;
    default:
        return 1;
    }
}

int vk_has_kernel(loom_op op, loom_dtype dt)
{
    const loom_op_def *def = loom_op_def_of(op);
    const vk_family *f = &vk_families[def->family];
    if (!f->plan)
        return 0;
    if (def->family == LOOM_FAM_ARG_REDUCE || def->family == LOOM_FAM_XENT)
        return variant_exists(op, def->family == LOOM_FAM_XENT ? LOOM_F32 : LOOM_I32, dt);
    if (!(f->dtypes & LOOM_DT_BIT(dt)))
        return 0;
    /* a cast is asked about from another dtype into dt */
    loom_dtype from = def->family == LOOM_FAM_CAST ? (dt == LOOM_F32 ? LOOM_F16 : LOOM_F32) : dt;
    if (!variant_exists(op, dt, dt == LOOM_I32 && def->family != LOOM_FAM_CAST ? LOOM_F32 : from))
        return 0;
    /* an element-wise op's derivative is a variant of its own */
    char name[64];
    if (def->grad == loom_grad_unary)
        snprintf(name, sizeof name, "unary_grad_%s_%s", def->name, dt_name(dt));
    else if (def->grad == loom_grad_binary)
        snprintf(name, sizeof name, "binary_grad_%s_%s", def->name, dt_name(dt));
    else
        return 1;
    return spv_find(name) != NULL;
}

int vk_supports(void *bdev, const loom_exec_node *x)
{
    const vk_dev *d = bdev;
    const loom_node *nd = x->node;
    const vk_family *f = &vk_families[x->def->family];
    if (!f->plan)
        return 0;
    /* the kernels index with 32-bit invocations and element offsets */
    if ((uint64_t)nd->numel > UINT32_MAX)
        return 0;
    for (int i = 0; i < x->nin; i++) {
        const loom_node *ni = x->in[i]->node;
        if ((uint64_t)ni->numel > UINT32_MAX)
            return 0;
        if (loom_dtype_traits_of(ni->dtype)->half && !d->lim->storage16)
            return 0;
        if (ni->dtype == LOOM_I8 && !d->lim->storage8)
            return 0; /* i8 tensors live in 8-bit storage */
    }
    if (nd->dtype == LOOM_I8 && !d->lim->storage8)
        return 0;
    if (loom_dtype_traits_of(nd->dtype)->half && !d->lim->storage16)
        return 0;
    if (x->def->family == LOOM_FAM_CUSTOM)
        return 1;
    /* a bias's gradient folded into its update (attr.grad_rows) is summed
     * by each invocation, up to 16 elements of it: past the driver's loop
     * budget the core keeps the reduction, which splits */
    if ((x->def->flags & LOOM_OPF_UPDATE) && nd->attr.grad_rows &&
        !vk_loops_fit(d, update_passes((uint64_t)x->in[0]->node->numel, (uint64_t)nd->attr.grad_rows, update_per(d), 1)))
        return 0;
    if (x->def->family == LOOM_FAM_MATMUL && ((nd->attr.act != LOOM_OP_NONE && !loom_op_epilogue(nd->attr.act)) ||
                                              (nd->attr.dact != LOOM_OP_NONE && !loom_op_epilogue(nd->attr.dact))))
        return 0; /* the epilogue applies only the activations of shaders/glsl/epilogue.glsl */
    /* the loss and prediction fused in: one workgroup walks every row, so
     * only where that is a small pass (a classifier's batch of logits) */
    if ((x->also[0] || x->also[1]) &&
        ((uint64_t)nd->numel > (1u << 20) || !vk_loops_fit(d, xent_fused_passes(nd->shape[0], nd->shape[1]))))
        return 0;
    loom_dtype in_dt = x->nin ? x->in[0]->node->dtype : nd->dtype;
    if (x->def->family == LOOM_FAM_ARG_REDUCE || x->def->family == LOOM_FAM_XENT)
        return variant_exists(nd->op, nd->dtype, in_dt);
    if (!(f->dtypes & LOOM_DT_BIT(nd->dtype)) && !(x->def->flags & LOOM_OPF_UPDATE))
        return 0;
    if (x->def->family == LOOM_FAM_UNARY_GRAD || x->def->family == LOOM_FAM_BINARY_GRAD) {
        char name[64];
        variant_name(x, name, sizeof name);
        return spv_find(name) != NULL;
    }
    return variant_exists(nd->op, nd->dtype, in_dt);
}

loom_status vk_plan_node(vk_prog *p, const loom_exec_node *x)
{
    if (x->out && x->out->node->numel == 0)
        return LOOM_OK;
    const vk_family *f = &vk_families[x->def->family];
    if (!f->plan) {
        char sb[96];
        const loom_node *nd = x->node;
        return loom_fail(p->d->ctx, LOOM_E_UNSUPPORTED, "%s: no Vulkan kernel for op %s (\"%s\" %s)", p->d->info->spec,
                         loom_op_name(nd->op), nd->name, loom_shape_str(sb, sizeof sb, nd->ndim, nd->shape));
    }
    return f->plan(p, x);
}

/* ---- for the family files (vk_seq.c) ----------------------------------------------- */

vk_bind vk_bind_tensor(const loom_exec_tensor *t, int access)
{
    return tensor(t, access);
}

vk_bind vk_bind_alias(vk_bind b)
{
    return alias(b);
}

loom_status vk_grid(vk_prog *p, vk_dispatch *x, uint64_t items, uint32_t wg, const loom_node *nd)
{
    return grid(p, x, items, wg, nd);
}

loom_status vk_use_variant(vk_prog *p, vk_dispatch *x, const char *name, const char *kinds, uint32_t push_size,
                           uint32_t wgx, uint32_t wgy, const uint32_t spec[VK_MAX_SPEC], const void *push)
{
    vk_layout l = {kinds, push_size, {wgx, wgy}};
    return use_variant(p, x, name, &l, spec, push);
}
