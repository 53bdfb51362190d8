/*
 * The geometry of a convolution or a pooling node, read from its tensors
 * and attributes: one definition that the op table's costs and every
 * backend's kernels use, so they all walk a convolution alike.
 *
 * For the conv family the convolution is X [N, C, H, W] * W [OC, C / G, KH,
 * KW] -> Y [N, OC, OH, OW]; which tensor of a node is X, W and Y depends on
 * its code (LOOM_CONV_FWD: in x, w -> y; BWD_DATA: in y, w -> x;
 * BWD_FILTER: in dy, x -> w). A pooling node has X its input (or for a
 * gradient, the node itself) and Y its output (or dy).
 */
#ifndef LOOM_CONV_GEOM_H
#define LOOM_CONV_GEOM_H

#include "ir.h"
#include "codes.h"

typedef struct loom_conv_geom {
    int64_t n, c, h, w;        /* X */
    int64_t oc, oh, ow;        /* Y */
    int64_t kh, kw;
    int64_t groups, cg, ocg;   /* C / groups, OC / groups */
    int64_t sh, sw, dh, dw;    /* stride, dilation */
    int64_t pt, pl;            /* padding at the top and the left */
} loom_conv_geom;

static inline void loom_conv_geom_fill(loom_conv_geom *g, const loom_node *x, const loom_node *y, int64_t kh,
                                       int64_t kw, const loom_attr *at)
{
    g->n = x->shape[0];
    g->c = x->shape[1];
    g->h = x->shape[2];
    g->w = x->shape[3];
    g->oc = y->shape[1];
    g->oh = y->shape[2];
    g->ow = y->shape[3];
    g->kh = kh;
    g->kw = kw;
    g->groups = at->cgroups > 0 ? at->cgroups : 1;
    g->cg = g->c / g->groups;
    g->ocg = g->oc / g->groups;
    g->sh = at->stride[0] > 0 ? at->stride[0] : 1;
    g->sw = at->stride[1] > 0 ? at->stride[1] : 1;
    g->dh = at->dil[0] > 0 ? at->dil[0] : 1;
    g->dw = at->dil[1] > 0 ? at->dil[1] : 1;
    g->pt = at->pad[0];
    g->pl = at->pad[1];
}

/* A conv-family node: out is its output node, in[k] its inputs. */
static inline loom_conv_geom loom_conv_geom_of(int code, const loom_node *out, const loom_node *const *in)
{
    loom_conv_geom g;
    const loom_node *x, *y, *w;
    if (code == LOOM_CONV_FWD) {
        x = in[0], w = in[1], y = out;
    } else if (code == LOOM_CONV_BWD_DATA) {
        y = in[0], w = in[1], x = out;
    } else {
        y = in[0], x = in[1], w = out;
    }
    loom_conv_geom_fill(&g, x, y, w->shape[2], w->shape[3], &out->attr);
    return g;
}

/* A pooling node (forward: in x -> y; gradient: in dy [, x] -> dx). */
static inline loom_conv_geom loom_pool_geom_of(int grad, const loom_node *out, const loom_node *in0)
{
    loom_conv_geom g;
    const loom_node *x = grad ? out : in0, *y = grad ? in0 : out;
    loom_conv_geom_fill(&g, x, y, out->attr.kernel[0], out->attr.kernel[1], &out->attr);
    g.groups = 1;
    g.cg = g.ocg = 1;
    return g;
}

/* Multiply-adds of a convolution: every output of Y takes C / G KH KW. */
static inline double loom_conv_macs(const loom_conv_geom *g)
{
    return (double)g->n * (double)g->oc * (double)g->oh * (double)g->ow * (double)g->cg * (double)g->kh *
           (double)g->kw;
}

/* The normalization of x [N, C, S...] by statistics q: the view of the
 * family's kernels. Statistic q covers `blocks` runs of `len` contiguous
 * elements, `stride` apart, from q * len; element i of x belongs to
 * statistic ((i / s) / cpg) % q and channel (i / s) % c. */
typedef struct loom_norm_geom {
    int64_t n, c, s;           /* x as [N, C, S] */
    int64_t q;                 /* statistics */
    int64_t cpg;               /* channels per statistic within a sample (1: batch norm) */
    int64_t blocks, len, stride;
    int64_t m;                 /* elements per statistic: blocks * len */
} loom_norm_geom;

static inline loom_norm_geom loom_norm_geom_of(const loom_node *x, int groups)
{
    loom_norm_geom g;
    g.n = x->shape[0];
    g.c = x->ndim > 1 ? x->shape[1] : 1;
    g.s = 1;
    for (int i = 2; i < x->ndim; i++)
        g.s *= x->shape[i];
    if (groups <= 0) {
        g.q = g.c;
        g.cpg = 1;
        g.blocks = g.n;
        g.len = g.s;
        g.stride = g.c * g.s;
    } else {
        g.q = g.n * groups;
        g.cpg = g.c / groups;
        g.blocks = 1;
        g.len = g.cpg * g.s;
        g.stride = 0;
    }
    g.m = g.blocks * g.len;
    return g;
}

#endif
