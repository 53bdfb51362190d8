/* Each op as dispatches: which shader variant, which tensors at which
 * bindings, the push constants and the grid. Semantics follow
 * src/backends/cpu/cpu_kernels.c exactly. */
#include "vk_internal.h"
#include "../common/layout.h"
#include "loom_spv.h"

#include <string.h>

/* name, code, words, bindings (S storage, T texel), push size, workgroup */
const vk_shader vk_sh_gemm_tiled = {"gemm_tiled", loom_gemm_tiled_spv, &loom_gemm_tiled_spv_words, "SSSS",
                                    sizeof(loom_pc_gemm), {16, 16}};
/* The texel GEMM by read path of A (k-vec4, m-vec4, scalar) and of B
 * (n-vec4, k-vec4, scalar): see gemm_texel.comp. */
const vk_shader vk_sh_gemm_texel[3][3] = {
    {{"gemm_texel_kn", loom_gemm_texel_kn_spv, &loom_gemm_texel_kn_spv_words, "TTSS", sizeof(loom_pc_gemm), {8, 8}},
     {"gemm_texel_kk", loom_gemm_texel_kk_spv, &loom_gemm_texel_kk_spv_words, "TTSS", sizeof(loom_pc_gemm), {8, 8}},
     {"gemm_texel_ks", loom_gemm_texel_ks_spv, &loom_gemm_texel_ks_spv_words, "TTSS", sizeof(loom_pc_gemm), {8, 8}}},
    {{"gemm_texel_mn", loom_gemm_texel_mn_spv, &loom_gemm_texel_mn_spv_words, "TTSS", sizeof(loom_pc_gemm), {8, 8}},
     {"gemm_texel_mk", loom_gemm_texel_mk_spv, &loom_gemm_texel_mk_spv_words, "TTSS", sizeof(loom_pc_gemm), {8, 8}},
     {"gemm_texel_ms", loom_gemm_texel_ms_spv, &loom_gemm_texel_ms_spv_words, "TTSS", sizeof(loom_pc_gemm), {8, 8}}},
    {{"gemm_texel_sn", loom_gemm_texel_sn_spv, &loom_gemm_texel_sn_spv_words, "TTSS", sizeof(loom_pc_gemm), {8, 8}},
     {"gemm_texel_sk", loom_gemm_texel_sk_spv, &loom_gemm_texel_sk_spv_words, "TTSS", sizeof(loom_pc_gemm), {8, 8}},
     {"gemm_texel_ss", loom_gemm_texel_ss_spv, &loom_gemm_texel_ss_spv_words, "TTSS", sizeof(loom_pc_gemm), {8, 8}}},
};
/* C per invocation of gemm_texel (its TM and 4 TN4), and the largest
 * workgroup side; gemm_tiled's tile (BM = BN). */
#define TEXEL_ROWS 16
#define TEXEL_COLS 8
#define TEXEL_WG 8
#define TILED_TILE 64

static const vk_shader sh_binary = {"binary", loom_binary_spv, &loom_binary_spv_words, "SSS", sizeof(loom_pc_bcast),
                                    {256, 1}};
static const vk_shader sh_gather = {"gather", loom_gather_spv, &loom_gather_spv_words, "SS", sizeof(loom_pc_bcast),
                                    {256, 1}};
static const vk_shader sh_unary = {"unary", loom_unary_spv, &loom_unary_spv_words, "SS", sizeof(loom_pc_unary),
                                   {256, 1}};
static const vk_shader sh_unary_grad = {"unary_grad", loom_unary_grad_spv, &loom_unary_grad_spv_words, "SSS",
                                        sizeof(loom_pc_unary), {256, 1}};
static const vk_shader sh_softmax = {"softmax", loom_softmax_spv, &loom_softmax_spv_words, "SS", sizeof(loom_pc_rows),
                                     {64, 1}};
static const vk_shader sh_softmax_grad = {"softmax_grad", loom_softmax_grad_spv, &loom_softmax_grad_spv_words, "SSS",
                                          sizeof(loom_pc_rows), {64, 1}};
static const vk_shader sh_xent = {"xent", loom_xent_spv, &loom_xent_spv_words, "SSS", sizeof(loom_pc_rows), {256, 1}};
static const vk_shader sh_xent_grad = {"xent_grad", loom_xent_grad_spv, &loom_xent_grad_spv_words, "SSSS",
                                       sizeof(loom_pc_rows), {64, 1}};
static const vk_shader sh_reduce = {"reduce", loom_reduce_spv, &loom_reduce_spv_words, "SS", sizeof(loom_pc_reduce),
                                    {64, 1}};
static const vk_shader sh_argmax = {"argmax", loom_argmax_spv, &loom_argmax_spv_words, "SS", sizeof(loom_pc_argmax),
                                    {256, 1}};
static const vk_shader sh_dropout = {"dropout", loom_dropout_spv, &loom_dropout_spv_words, "SSS",
                                     sizeof(loom_pc_dropout), {256, 1}};
static const vk_shader sh_sumsq = {"sumsq", loom_sumsq_spv, &loom_sumsq_spv_words, "SSSSSSSSS", sizeof(loom_pc_sumsq),
                                   {256, 1}};
static const vk_shader sh_sgd = {"sgd", loom_sgd_spv, &loom_sgd_spv_words, "SSSSS", sizeof(loom_pc_update), {256, 1}};
static const vk_shader sh_adam = {"adam", loom_adam_spv, &loom_adam_spv_words, "SSSSSS", sizeof(loom_pc_update),
                                  {256, 1}};
static const vk_shader sh_ema = {"ema", loom_ema_spv, &loom_ema_spv_words, "SSS", sizeof(loom_pc_update), {256, 1}};

int vk_supports(void *bdev, const loom_exec_node *x)
{
    (void)bdev;
    const loom_node *nd = x->node;
    for (int i = 0; i < x->nin; i++)
        if (loom_dtype_size(x->in[i]->node->dtype) != 4)
            return 0;
    switch (nd->op) {
    case LOOM_OP_COPY: case LOOM_OP_TRANSPOSE: case LOOM_OP_EXPAND: case LOOM_OP_CUSTOM:
        return loom_dtype_size(nd->dtype) == 4;
    case LOOM_OP_ARGMAX:
        return nd->dtype == LOOM_I32 && x->in[0]->node->dtype == LOOM_F32;
    case LOOM_OP_SPARSE_XENT: case LOOM_OP_SPARSE_XENT_GRAD:
        return x->in[x->nin - 1]->node->dtype == LOOM_I32;
    case LOOM_OP_MATMUL: case LOOM_OP_ADD: case LOOM_OP_SUB: case LOOM_OP_MUL: case LOOM_OP_DIV:
    case LOOM_OP_SCALE: case LOOM_OP_RELU: case LOOM_OP_SIGMOID: case LOOM_OP_TANH: case LOOM_OP_GELU:
    case LOOM_OP_EXP: case LOOM_OP_LOG: case LOOM_OP_SQUARE: case LOOM_OP_RELU_GRAD: case LOOM_OP_SIGMOID_GRAD:
    case LOOM_OP_TANH_GRAD: case LOOM_OP_GELU_GRAD: case LOOM_OP_SOFTMAX: case LOOM_OP_LOG_SOFTMAX:
    case LOOM_OP_SOFTMAX_GRAD: case LOOM_OP_LOG_SOFTMAX_GRAD: case LOOM_OP_REDUCE_SUM: case LOOM_OP_DROPOUT:
    case LOOM_OP_SUMSQ: case LOOM_OP_SGD_UPDATE: case LOOM_OP_ADAM_UPDATE: case LOOM_OP_EMA_UPDATE:
        return nd->side_effect || nd->dtype == LOOM_F32;
    default:
        return 0;
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

static vk_bind tensor(const loom_exec_tensor *t, int access)
{
    const vk_buf *vb = t->mem.buf;
    vk_bind b = {vb->block->buf, vb->offset + t->mem.offset, t->mem.bytes, 0, access};
    return b;
}

/* A binding the kernel does not touch in this variant: it repeats one the
 * dispatch already has, so it adds no hazard to track. */
static vk_bind alias(vk_bind b)
{
    b.access = 0;
    return b;
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

static loom_status use_spec(vk_prog *p, vk_dispatch *x, const vk_shader *sh, const uint32_t spec[VK_MAX_SPEC],
                            const void *push)
{
    x->push_size = sh->push_size;
    memcpy(x->push, push, sh->push_size);
    return vk_pipe_get(p->d, sh, spec, &x->pipe);
}

static loom_status use(vk_prog *p, vk_dispatch *x, const vk_shader *sh, uint32_t spec0, const void *push)
{
    uint32_t spec[VK_MAX_SPEC] = {spec0, 0, 0};
    return use_spec(p, x, sh, spec, push);
}

/* The shared index arithmetic, narrowed to the 32-bit push constants. */
static void bstrides32(int nd, const int64_t *shape, const int64_t out4[4], uint32_t st[4])
{
    int64_t s[4];
    loom_bstrides(nd, shape, out4, s);
    for (int i = 0; i < 4; i++)
        st[i] = (uint32_t)s[i];
}

static int slot(vk_prog *p, const loom_exec_node *x)
{
    p->slot_of[x->index] = p->nslots;
    return p->nslots++;
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

/* How many inputs of the program's nodes are t. */
static int consumers(const loom_exec_program *prog, const loom_exec_tensor *t)
{
    int n = 0;
    for (int i = 0; i < prog->nnodes; i++)
        for (int k = 0; k < prog->nodes[i].nin; k++)
            n += prog->nodes[i].in[k] == t;
    return n;
}

/* The node right after a GEMM, if it only adds a row bias to the GEMM's
 * result and nothing else reads that result: the GEMM then writes the sum
 * itself (one dispatch fewer). Returns the bias input's index, or -1. */
static int bias_after(const vk_prog *p, const loom_exec_node *x)
{
    const loom_exec_program *prog = p->prog;
    if (x->index + 1 >= prog->nnodes || x->out->node->is_output)
        return -1;
    const loom_exec_node *a = &prog->nodes[x->index + 1];
    if (a->node->op != LOOM_OP_ADD || !a->out || a->out->node->numel != x->out->node->numel)
        return -1;
    int k = a->in[0] == x->out ? 1 : a->in[1] == x->out ? 0 : -1;
    if (k < 0 || a->in[k] == x->out || consumers(prog, x->out) != 1)
        return -1;
    const loom_node *b = a->in[k]->node;
    int64_t n = x->out->node->shape[1];
    int row = (b->ndim == 1 && b->shape[0] == n) || (b->ndim == 2 && b->shape[0] == 1 && b->shape[1] == n);
    return row && b->dtype == LOOM_F32 ? k : -1;
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
    int kb = bias_after(p, x);
    if (kb >= 0) {
        const loom_exec_node *a = &p->prog->nodes[x->index + 1];
        dx->bind[2] = tensor(a->out, VK_WRITE);
        dx->bind[3] = tensor(a->in[kb], VK_READ);
        pc.has_bias = 1;
        p->fused[x->index + 1] = 1;
    } else {
        dx->bind[2] = tensor(x->out, VK_WRITE);
        dx->bind[3] = alias(dx->bind[2]);
    }
    const vk_shader *sh = &vk_sh_gemm_tiled;
    uint32_t tile_m = TILED_TILE, tile_n = TILED_TILE;
    uint32_t spec[VK_MAX_SPEC] = {0, 0, 0};
    if (d->quirks & VK_QUIRK_TEXEL_READS) {
        int va = operand_vec(d, x->in[0], nd->attr.ta ? pc.m : pc.k);
        int vb = operand_vec(d, x->in[1], nd->attr.tb ? pc.k : pc.n);
        if (va && vb) {
            int ia = va == 4 ? (nd->attr.ta ? 1 : 0) : 2, ib = vb == 4 ? (nd->attr.tb ? 1 : 0) : 2;
            sh = &vk_sh_gemm_texel[ia][ib];
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
        }
    }
    dx->groups[0] = (pc.n + tile_n - 1) / tile_n;
    dx->groups[1] = (pc.m + tile_m - 1) / tile_m;
    dx->groups[2] = 1;
    if (dx->groups[0] > d->lim->max_groups[0] || dx->groups[1] > d->lim->max_groups[1])
        return loom_fail(d->ctx, LOOM_E_UNSUPPORTED, "%s: matmul \"%s\" [%u,%u] needs more workgroups than the device has",
                         d->info->spec, nd->name, pc.m, pc.n);
    return use_spec(p, dx, sh, spec, &pc);
}

/* ---- element-wise --------------------------------------------------------- */

static loom_status plan_binary(vk_prog *p, const loom_exec_node *x)
{
    const loom_node *o = x->out->node, *na = x->in[0]->node, *nb = x->in[1]->node;
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
    dx->nbind = 3;
    dx->bind[0] = tensor(x->in[0], VK_READ);
    dx->bind[1] = tensor(x->in[1], VK_READ);
    dx->bind[2] = tensor(x->out, VK_WRITE);
    LOOM_TRY(grid(p, dx, pc.n, 256, o));
    return use(p, dx, &sh_binary, (uint32_t)(x->node->op - LOOM_OP_ADD), &pc);
}

/* out[i] = in[strided index]: copy, expand, transpose. */
static loom_status plan_gather(vk_prog *p, const loom_exec_node *x, const loom_pc_bcast *pc)
{
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    dx->nbind = 2;
    dx->bind[0] = tensor(x->in[0], VK_READ);
    dx->bind[1] = tensor(x->out, VK_WRITE);
    LOOM_TRY(grid(p, dx, pc->n, 256, x->node));
    return use(p, dx, &sh_gather, 0, pc);
}

static loom_status plan_copy(vk_prog *p, const loom_exec_node *x)
{
    if (same_memory(x->in[0], x->out))
        return LOOM_OK; /* reshaped in place: nothing to move */
    loom_pc_bcast pc = {0};
    pc.n = (uint32_t)x->node->numel;
    pc.dense = 1;
    return plan_gather(p, x, &pc);
}

static loom_status plan_expand(vk_prog *p, const loom_exec_node *x)
{
    const loom_node *o = x->node;
    loom_pc_bcast pc = {0};
    pc.n = (uint32_t)o->numel;
    int64_t d4[4];
    loom_shape4(o->ndim, o->shape, d4);
    for (int i = 0; i < 4; i++)
        pc.d[i] = (uint32_t)d4[i];
    bstrides32(o->attr.rdim, o->attr.rshape, d4, pc.sa);
    return plan_gather(p, x, &pc);
}

static loom_status plan_transpose(vk_prog *p, const loom_exec_node *x)
{
    int64_t d[4], st[4];
    loom_transpose_strides(x->in[0]->node, x->node, d, st);
    loom_pc_bcast pc = {0};
    pc.n = (uint32_t)x->node->numel;
    for (int i = 0; i < 4; i++) {
        pc.d[i] = (uint32_t)d[i];
        pc.sa[i] = (uint32_t)st[i];
    }
    return plan_gather(p, x, &pc);
}

static loom_status plan_unary(vk_prog *p, const loom_exec_node *x)
{
    loom_pc_unary pc = {(uint32_t)x->node->numel, x->node->attr.alpha};
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    int grad = x->node->op >= LOOM_OP_RELU_GRAD && x->node->op <= LOOM_OP_GELU_GRAD;
    dx->nbind = grad ? 3 : 2;
    dx->bind[0] = tensor(x->in[0], VK_READ);
    if (grad)
        dx->bind[1] = tensor(x->in[1], VK_READ);
    dx->bind[dx->nbind - 1] = tensor(x->out, VK_WRITE);
    LOOM_TRY(grid(p, dx, pc.n, 256, x->node));
    if (grad)
        return use(p, dx, &sh_unary_grad, (uint32_t)(x->node->op - LOOM_OP_RELU_GRAD), &pc);
    return use(p, dx, &sh_unary, (uint32_t)(x->node->op - LOOM_OP_SCALE), &pc);
}

static loom_status plan_dropout(vk_prog *p, const loom_exec_node *x)
{
    const loom_attr *at = &x->node->attr;
    loom_pc_dropout pc = {0};
    pc.n = (uint32_t)x->node->numel;
    pc.seed = at->seed;
    pc.salt = at->salt;
    pc.slot = (uint32_t)slot(p, x);
    pc.rate = at->alpha;
    pc.keep = 1.0f / (1.0f - at->alpha);
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    dx->nbind = 3;
    dx->bind[0] = tensor(x->in[0], VK_READ);
    dx->bind[1] = tensor(x->out, VK_WRITE);
    dx->bind[2] = (vk_bind){VK_NULL_HANDLE, 0, 0, 0, VK_READ}; /* the run slots: filled at prepare */
    LOOM_TRY(grid(p, dx, pc.n, 256, x->node));
    return use(p, dx, &sh_dropout, 0, &pc);
}

/* ---- rows and reductions ---------------------------------------------------- */

static loom_status plan_rows(vk_prog *p, const loom_exec_node *x)
{
    const loom_node *nd = x->node;
    loom_op op = nd->op;
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    loom_pc_rows pc = {0};
    const vk_shader *sh;
    uint32_t spec = 0;
    if (op == LOOM_OP_SOFTMAX || op == LOOM_OP_LOG_SOFTMAX) {
        pc.cols = (uint32_t)nd->shape[nd->ndim - 1];
        sh = &sh_softmax;
        spec = op == LOOM_OP_LOG_SOFTMAX;
        dx->nbind = 2;
        dx->bind[0] = tensor(x->in[0], VK_READ);
    } else if (op == LOOM_OP_SOFTMAX_GRAD || op == LOOM_OP_LOG_SOFTMAX_GRAD) {
        pc.cols = (uint32_t)nd->shape[nd->ndim - 1];
        sh = &sh_softmax_grad;
        spec = op == LOOM_OP_LOG_SOFTMAX_GRAD;
        dx->nbind = 3;
        dx->bind[0] = tensor(x->in[0], VK_READ);
        dx->bind[1] = tensor(x->in[1], VK_READ);
    } else {
        /* SPARSE_XENT_GRAD: dloss, logits, labels */
        pc.cols = (uint32_t)x->in[1]->node->shape[1];
        sh = &sh_xent_grad;
        dx->nbind = 4;
        for (int i = 0; i < 3; i++)
            dx->bind[i] = tensor(x->in[i], VK_READ);
    }
    pc.rows = pc.cols ? (uint32_t)(nd->numel / pc.cols) : 0;
    dx->bind[dx->nbind - 1] = tensor(x->out, VK_WRITE);
    /* Short rows, or a driver where barriers are dear and there are rows
     * enough to keep it busy: one invocation per row. */
    uint32_t per_thread = pc.cols <= 32 || ((p->d->quirks & VK_QUIRK_SLOW_BARRIERS) && pc.rows >= 16);
    LOOM_TRY(grid(p, dx, per_thread ? pc.rows : (uint64_t)pc.rows * 64, 64, nd));
    uint32_t specs[VK_MAX_SPEC] = {spec, per_thread, 0};
    return use_spec(p, dx, sh, specs, &pc);
}

static loom_status plan_xent(vk_prog *p, const loom_exec_node *x)
{
    const loom_node *nz = x->in[0]->node;
    loom_pc_rows pc = {(uint32_t)nz->shape[0], (uint32_t)nz->shape[1]};
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    dx->nbind = 3;
    dx->bind[0] = tensor(x->in[0], VK_READ);
    dx->bind[1] = tensor(x->in[1], VK_READ);
    dx->bind[2] = tensor(x->out, VK_WRITE);
    dx->groups[0] = dx->groups[1] = dx->groups[2] = 1;
    return use(p, dx, &sh_xent, 0, &pc);
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
     * are dear: one invocation each; else a workgroup each. */
    uint32_t per_thread = pc.rn < 64 || ((p->d->quirks & VK_QUIRK_SLOW_BARRIERS) && pc.on >= 16);
    LOOM_TRY(grid(p, dx, per_thread ? pc.on : (uint64_t)pc.on * 64, 64, nd));
    return use(p, dx, &sh_reduce, per_thread, &pc);
}

static loom_status plan_argmax(vk_prog *p, const loom_exec_node *x)
{
    const loom_node *ni = x->in[0]->node;
    int ax = x->node->attr.axis;
    loom_pc_argmax pc = {1, (uint32_t)ni->shape[ax], 1};
    for (int i = 0; i < ax; i++)
        pc.outer *= (uint32_t)ni->shape[i];
    for (int i = ax + 1; i < ni->ndim; i++)
        pc.inner *= (uint32_t)ni->shape[i];
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    dx->nbind = 2;
    dx->bind[0] = tensor(x->in[0], VK_READ);
    dx->bind[1] = tensor(x->out, VK_WRITE);
    LOOM_TRY(grid(p, dx, (uint64_t)pc.outer * pc.inner, 256, x->node));
    return use(p, dx, &sh_argmax, 0, &pc);
}

static loom_status plan_sumsq(vk_prog *p, const loom_exec_node *x)
{
    for (int base = 0; base < x->nin; base += LOOM_SUMSQ_MAX_IN) {
        loom_pc_sumsq pc = {{0}, (uint32_t)(base > 0)};
        vk_dispatch *dx;
        LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
        dx->nbind = LOOM_SUMSQ_MAX_IN + 1;
        for (int k = 0; k < LOOM_SUMSQ_MAX_IN; k++) {
            if (base + k < x->nin) {
                dx->bind[k] = tensor(x->in[base + k], VK_READ);
                pc.n[k] = (uint32_t)x->in[base + k]->node->numel;
            } else {
                dx->bind[k] = alias(dx->bind[0]);
            }
        }
        dx->bind[LOOM_SUMSQ_MAX_IN] = tensor(x->out, base > 0 ? VK_READ | VK_WRITE : VK_WRITE);
        dx->groups[0] = dx->groups[1] = dx->groups[2] = 1;
        LOOM_TRY(use(p, dx, &sh_sumsq, 0, &pc));
    }
    return LOOM_OK;
}

/* ---- optimizer updates ---------------------------------------------------- */

static loom_status plan_update(vk_prog *p, const loom_exec_node *x)
{
    const loom_attr *at = &x->node->attr;
    loom_op op = x->node->op;
    loom_pc_update pc = {0};
    pc.n = (uint32_t)x->in[0]->node->numel;
    pc.slot = (uint32_t)slot(p, x);
    pc.clip = (uint32_t)at->clip;
    pc.nesterov = (uint32_t)at->nesterov;
    pc.clip_norm = at->clip_norm;
    pc.beta1 = at->beta1;
    pc.beta2 = at->beta2;
    pc.eps = at->eps;
    pc.momentum = at->momentum;
    pc.weight_decay = at->weight_decay;
    pc.l1 = at->l1;
    pc.l2 = at->l2;
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    const vk_shader *sh;
    uint32_t spec = 0;
    dx->bind[0] = tensor(x->in[0], VK_READ | VK_WRITE);
    if (op == LOOM_OP_EMA_UPDATE) {
        sh = &sh_ema;
        dx->nbind = 3;
        dx->bind[1] = tensor(x->in[1], VK_READ);
    } else {
        int nmom = op == LOOM_OP_ADAM_UPDATE ? 2 : at->momentum != 0.0f;
        sh = op == LOOM_OP_ADAM_UPDATE ? &sh_adam : &sh_sgd;
        spec = op == LOOM_OP_SGD_UPDATE && nmom;
        int nslot = op == LOOM_OP_ADAM_UPDATE ? 2 : 1;
        dx->nbind = 2 + nslot + 2;
        dx->bind[1] = tensor(x->in[1], VK_READ);
        for (int k = 0; k < nslot; k++)
            dx->bind[2 + k] = k < nmom ? tensor(x->in[2 + k], VK_READ | VK_WRITE) : alias(dx->bind[0]);
        dx->bind[2 + nslot] = at->clip ? tensor(x->in[x->nin - 1], VK_READ) : alias(dx->bind[1]);
    }
    dx->bind[dx->nbind - 1] = (vk_bind){VK_NULL_HANDLE, 0, 0, 0, VK_READ}; /* the run slots */
    LOOM_TRY(grid(p, dx, pc.n, 256, x->node));
    return use(p, dx, sh, spec, &pc);
}

loom_status vk_plan_node(vk_prog *p, const loom_exec_node *x)
{
    if ((x->out && x->out->node->numel == 0) || p->fused[x->index])
        return LOOM_OK;
    switch (x->node->op) {
    case LOOM_OP_MATMUL: return plan_matmul(p, x);
    case LOOM_OP_ADD: case LOOM_OP_SUB: case LOOM_OP_MUL: case LOOM_OP_DIV: return plan_binary(p, x);
    case LOOM_OP_SCALE: case LOOM_OP_RELU: case LOOM_OP_SIGMOID: case LOOM_OP_TANH: case LOOM_OP_GELU:
    case LOOM_OP_EXP: case LOOM_OP_LOG: case LOOM_OP_SQUARE: case LOOM_OP_RELU_GRAD: case LOOM_OP_SIGMOID_GRAD:
    case LOOM_OP_TANH_GRAD: case LOOM_OP_GELU_GRAD:
        return plan_unary(p, x);
    case LOOM_OP_COPY: return plan_copy(p, x);
    case LOOM_OP_EXPAND: return plan_expand(p, x);
    case LOOM_OP_TRANSPOSE: return plan_transpose(p, x);
    case LOOM_OP_SOFTMAX: case LOOM_OP_LOG_SOFTMAX: case LOOM_OP_SOFTMAX_GRAD: case LOOM_OP_LOG_SOFTMAX_GRAD:
    case LOOM_OP_SPARSE_XENT_GRAD:
        return plan_rows(p, x);
    case LOOM_OP_SPARSE_XENT: return plan_xent(p, x);
    case LOOM_OP_REDUCE_SUM: return plan_reduce(p, x);
    case LOOM_OP_ARGMAX: return plan_argmax(p, x);
    case LOOM_OP_DROPOUT: return plan_dropout(p, x);
    case LOOM_OP_SUMSQ: return plan_sumsq(p, x);
    case LOOM_OP_SGD_UPDATE: case LOOM_OP_ADAM_UPDATE: case LOOM_OP_EMA_UPDATE: return plan_update(p, x);
    case LOOM_OP_CUSTOM: return vk_plan_custom(p, x);
    default: {
        char sb[96];
        const loom_node *nd = x->node;
        return loom_fail(p->d->ctx, LOOM_E_UNSUPPORTED, "%s: no Vulkan kernel for op %s (\"%s\" %s)", p->d->info->spec,
                         loom_op_name(nd->op), nd->name, loom_shape_str(sb, sizeof sb, nd->ndim, nd->shape));
    }
    }
}
