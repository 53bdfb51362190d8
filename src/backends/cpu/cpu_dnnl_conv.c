/* The CPU's f32 convolutions through oneDNN (forward, backward to the
 * data, backward to the weights), where the library was built with it and
 * LOOM_CPU_CONV is not "own". oneDNN runs its JIT kernels on blocked
 * layouts of its own choosing (format "any"): loom's NCHW / OIHW tensors
 * are reordered into them and the result back, which costs far less than
 * the plain-layout GEMM path saves (measured on the CNN's 3x3 layers:
 * 140-170 GFLOP/s blocked against 55-90 for plain im2col + GEMM, two
 * cores). Primitives and their buffers are costly to make: the last few
 * geometries keep theirs. A geometry oneDNN refuses falls back to
 * cpu_conv.c's im2col + OpenBLAS. */
#include "cpu_dnnl.h"

#include <stdlib.h>
#include <string.h>

#define CONV_CACHE 24

/* One operand: loom's plain layout (user) and, when the primitive wants
 * another, its own buffer and the reorder between the two. */
typedef struct operand {
    dnnl_memory_t user, own;
    dnnl_primitive_t reorder;  /* user -> own for inputs, own -> user for the output */
} operand;

typedef struct conv_entry {
    int code, bias;
    int refused;               /* oneDNN would not make it: the own kernel, without asking again */
    loom_conv_geom g;
    dnnl_primitive_t prim;
    operand op[4];             /* FWD: src, weights, bias, dst; BWD_DATA: diff_dst, weights, -, diff_src;
                                  BWD_FILTER: diff_dst, src, -, diff_weights */
    int arg[4];                /* their DNNL_ARG_* */
    uint64_t used;
} conv_entry;

static conv_entry cache[CONV_CACHE];
static uint64_t clock_now;

static void operand_free(operand *o)
{
    if (o->reorder)
        loom_cpu_dnnl.primitive_destroy(o->reorder);
    if (o->own)
        loom_cpu_dnnl.memory_destroy(o->own);
    if (o->user)
        loom_cpu_dnnl.memory_destroy(o->user);
    memset(o, 0, sizeof *o);
}

static void entry_free(conv_entry *e)
{
    if (e->prim)
        loom_cpu_dnnl.primitive_destroy(e->prim);
    for (int i = 0; i < 4; i++)
        operand_free(&e->op[i]);
    memset(e, 0, sizeof *e);
}

/* The user memory of plain md; the primitive's own (want) with a reorder
 * where the layouts differ. */
static int operand_make(operand *o, dnnl_engine_t eng, const dnnl_memory_desc_t *md, const dnnl_memory_desc_t *want,
                        int output)
{
    if (loom_cpu_dnnl.memory_create(&o->user, md, eng, DNNL_MEMORY_NONE) != dnnl_success)
        return 0;
    if (loom_cpu_dnnl.memory_desc_equal(md, want))
        return 1;
    dnnl_primitive_desc_t rpd = NULL;
    int ok = loom_cpu_dnnl.memory_create(&o->own, want, eng, DNNL_MEMORY_ALLOCATE) == dnnl_success &&
             (output ? loom_cpu_dnnl.reorder_primitive_desc_create(&rpd, want, eng, md, eng, NULL)
                     : loom_cpu_dnnl.reorder_primitive_desc_create(&rpd, md, eng, want, eng, NULL)) == dnnl_success &&
             loom_cpu_dnnl.primitive_create(&o->reorder, rpd) == dnnl_success;
    if (rpd)
        loom_cpu_dnnl.primitive_desc_destroy(rpd);
    return ok;
}

static int same_geom(const loom_conv_geom *a, const loom_conv_geom *b)
{
    return !memcmp(a, b, sizeof *a);
}

/* The int8 forward's entries (cache code beside codes.h's three): s8 input
 * and weights into s32 accumulators, no bias, no padding (the caller pads
 * with the input's zero point itself: oneDNN would pad with 0). */
#define CONV_QFWD 16

static int entry_make(conv_entry *e, dnnl_engine_t eng, int code, const loom_conv_geom *g, int bias)
{
    memset(e, 0, sizeof *e);
    int q = code == CONV_QFWD;
    dnnl_data_type_t tx = q ? dnnl_s8 : dnnl_f32, tw = tx, ty = q ? dnnl_s32 : dnnl_f32;
    /* oneDNN's right and bottom padding make its output size come out as
     * loom's (negative where the last window stops short of the edge) */
    int64_t pb = (g->oh - 1) * g->sh + (g->kh - 1) * g->dh + 1 - g->h - g->pt;
    int64_t pr = (g->ow - 1) * g->sw + (g->kw - 1) * g->dw + 1 - g->w - g->pl;
    dnnl_dims_t xd = {g->n, g->c, g->h, g->w}, yd = {g->n, g->oc, g->oh, g->ow}, bd = {g->oc};
    dnnl_dims_t wd = {g->groups, g->ocg, g->cg, g->kh, g->kw};
    dnnl_dims_t st = {g->sh, g->sw}, dl = {g->dh - 1, g->dw - 1}, pl = {g->pt, g->pl}, prr = {pb, pr};
    int wnd = g->groups > 1 ? 5 : 4;
    const int64_t *wdims = g->groups > 1 ? wd : wd + 1;
    dnnl_format_tag_t wtag = g->groups > 1 ? dnnl_goihw : dnnl_oihw;
    dnnl_memory_desc_t x, y, w, b, xa, ya, wa;
    if (loom_cpu_dnnl.memory_desc_init_by_tag(&x, 4, xd, tx, dnnl_nchw) != dnnl_success ||
        loom_cpu_dnnl.memory_desc_init_by_tag(&y, 4, yd, ty, dnnl_nchw) != dnnl_success ||
        loom_cpu_dnnl.memory_desc_init_by_tag(&w, wnd, wdims, tw, wtag) != dnnl_success ||
        loom_cpu_dnnl.memory_desc_init_by_tag(&b, 1, bd, dnnl_f32, dnnl_a) != dnnl_success ||
        loom_cpu_dnnl.memory_desc_init_by_tag(&xa, 4, xd, tx, dnnl_format_tag_any) != dnnl_success ||
        loom_cpu_dnnl.memory_desc_init_by_tag(&ya, 4, yd, ty, dnnl_format_tag_any) != dnnl_success ||
        loom_cpu_dnnl.memory_desc_init_by_tag(&wa, wnd, wdims, tw, dnnl_format_tag_any) != dnnl_success)
        return 0;
    /* the backward primitives take the forward one as their hint */
    dnnl_convolution_desc_t fd, cd;
    dnnl_primitive_desc_t fpd = NULL, pd = NULL;
    int fwd = code == LOOM_CONV_FWD || q;
    int ok = loom_cpu_dnnl.dilated_convolution_forward_desc_init(&fd, fwd ? dnnl_forward_inference
                                                                                   : dnnl_forward_training,
                                                        dnnl_convolution_direct, &xa, &wa, bias ? &b : NULL, &ya, st,
                                                        dl, pl, prr) == dnnl_success &&
             loom_cpu_dnnl.primitive_desc_create(&fpd, &fd, NULL, eng, NULL) == dnnl_success;
    if (ok && fwd) {
        pd = fpd;
        fpd = NULL;
    } else if (ok && code == LOOM_CONV_BWD_DATA) {
        ok = loom_cpu_dnnl.dilated_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &xa, &wa, &ya, st, dl, pl,
                                                              prr) == dnnl_success &&
             loom_cpu_dnnl.primitive_desc_create(&pd, &cd, NULL, eng, fpd) == dnnl_success;
    } else if (ok) {
        ok = loom_cpu_dnnl.dilated_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, &xa, &wa, NULL, &ya, st,
                                                                 dl, pl, prr) == dnnl_success &&
             loom_cpu_dnnl.primitive_desc_create(&pd, &cd, NULL, eng, fpd) == dnnl_success;
    }
    if (ok)
        ok = loom_cpu_dnnl.primitive_create(&e->prim, pd) == dnnl_success;
    if (ok) {
#define MD(q) loom_cpu_dnnl.primitive_desc_query_md(pd, q, 0)
        if (fwd) {
            ok = operand_make(&e->op[0], eng, &x, MD(dnnl_query_src_md), 0) &&
                 operand_make(&e->op[1], eng, &w, MD(dnnl_query_weights_md), 0) &&
                 (!bias || operand_make(&e->op[2], eng, &b, &b, 0)) &&
                 operand_make(&e->op[3], eng, &y, MD(dnnl_query_dst_md), 1);
            e->arg[0] = DNNL_ARG_SRC, e->arg[1] = DNNL_ARG_WEIGHTS, e->arg[2] = DNNL_ARG_BIAS;
            e->arg[3] = DNNL_ARG_DST;
        } else if (code == LOOM_CONV_BWD_DATA) {
            ok = operand_make(&e->op[0], eng, &y, MD(dnnl_query_diff_dst_md), 0) &&
                 operand_make(&e->op[1], eng, &w, MD(dnnl_query_weights_md), 0) &&
                 operand_make(&e->op[3], eng, &x, MD(dnnl_query_diff_src_md), 1);
            e->arg[0] = DNNL_ARG_DIFF_DST, e->arg[1] = DNNL_ARG_WEIGHTS, e->arg[3] = DNNL_ARG_DIFF_SRC;
        } else {
            ok = operand_make(&e->op[0], eng, &y, MD(dnnl_query_diff_dst_md), 0) &&
                 operand_make(&e->op[1], eng, &x, MD(dnnl_query_src_md), 0) &&
                 operand_make(&e->op[3], eng, &w, MD(dnnl_query_diff_weights_md), 1);
            e->arg[0] = DNNL_ARG_DIFF_DST, e->arg[1] = DNNL_ARG_SRC, e->arg[3] = DNNL_ARG_DIFF_WEIGHTS;
        }
#undef MD
    }
    if (fpd)
        loom_cpu_dnnl.primitive_desc_destroy(fpd);
    if (pd)
        loom_cpu_dnnl.primitive_desc_destroy(pd);
    if (!ok) {
        entry_free(e);
        return 0;
    }
    e->code = code;
    e->bias = bias;
    e->g = *g;
    return 1;
}

static int run_reorder(dnnl_stream_t str, const operand *o, int output)
{
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, output ? o->own : o->user}, {DNNL_ARG_TO, output ? o->user : o->own}};
    return loom_cpu_dnnl.primitive_execute(o->reorder, str, 2, a) == dnnl_success;
}

static int run(conv_entry *e, dnnl_stream_t str, const void *const ptr[4])
{
    dnnl_exec_arg_t args[4];
    int na = 0, ok = 1;
    for (int i = 0; i < 4 && ok; i++) {
        operand *o = &e->op[i];
        if (!o->user)
            continue;
        ok = loom_cpu_dnnl.memory_set_data_handle(o->user, (void *)(uintptr_t)ptr[i]) == dnnl_success;
        if (ok && o->reorder && i < 3)
            ok = run_reorder(str, o, 0);
        args[na++] = (dnnl_exec_arg_t){e->arg[i], o->own ? o->own : o->user};
    }
    ok = ok && loom_cpu_dnnl.primitive_execute(e->prim, str, na, args) == dnnl_success;
    if (ok && e->op[3].reorder)
        ok = run_reorder(str, &e->op[3], 1);
    return ok && loom_cpu_dnnl.stream_wait(str) == dnnl_success;
}

/* 1 where LOOM_CPU_CONV asks for the own kernels: read each time, as a
 * test compares the two paths in one process */
static int own_asked(void)
{
    const char *own = getenv("LOOM_CPU_CONV");
    return own && !strcmp(own, "own");
}

static int conv_run(int code, const loom_conv_geom *g, const void *in0, const void *in1, const float *bias,
                    void *out)
{
    dnnl_engine_t eng;
    dnnl_stream_t str;
    if (!loom_cpu_dnnl_enter(&eng, &str))
        return 0;
    int has_bias = code == LOOM_CONV_FWD && bias;
    conv_entry *e = NULL, *old = &cache[0];
    for (int i = 0; i < CONV_CACHE && !e; i++) {
        conv_entry *c = &cache[i];
        if ((c->prim || c->refused) && c->code == code && c->bias == has_bias && same_geom(&c->g, g))
            e = c;
        else if (c->used < old->used)
            old = c;
    }
    if (!e) {
        entry_free(old);
        e = old;
        if (!entry_make(e, eng, code, g, has_bias)) {
            e->refused = 1;
            e->code = code;
            e->bias = has_bias;
            e->g = *g;
        }
    }
    int ok = 0;
    e->used = ++clock_now;
    if (e->prim) {
        const void *ptr[4] = {in0, in1, has_bias ? bias : NULL, out};
        ok = run(e, str, ptr);
    }
    loom_cpu_dnnl_leave();
    return ok;
}

int loom_cpu_dnnl_conv(int code, const loom_conv_geom *g, const float *in0, const float *in1, const float *bias,
                       float *out)
{
    return !own_asked() && conv_run(code, g, in0, in1, bias, out);
}

void loom_cpu_dnnl_qconv_padded(const loom_conv_geom *g, loom_conv_geom *padded)
{
    int64_t pb = (g->oh - 1) * g->sh + (g->kh - 1) * g->dh + 1 - g->h - g->pt;
    int64_t pr = (g->ow - 1) * g->sw + (g->kw - 1) * g->dw + 1 - g->w - g->pl;
    *padded = *g;
    padded->h = g->h + g->pt + (pb > 0 ? pb : 0);
    padded->w = g->w + g->pl + (pr > 0 ? pr : 0);
    padded->pt = padded->pl = 0;
}

int loom_cpu_dnnl_qconv(const loom_conv_geom *padded, const int8_t *x, const int8_t *w, int32_t *acc)
{
    return !own_asked() && loom_cpu_dnnl_int8_exact() && conv_run(CONV_QFWD, padded, x, w, NULL, acc);
}
