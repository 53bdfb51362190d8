/* Builders of the convolutional ops on loom's CNN API (loom_conv2d,
 * loom_conv1d, loom_conv_transpose2d, loom_max_pool2d, loom_avg_pool2d):
 * Conv, ConvTranspose, MaxPool, AveragePool. Built when loom.h has that API
 * (meson defines LOOM_ONNX_CNN); the table's rows are under the same
 * condition. ONNX's pads are [begin..., end...] per spatial dim, as
 * loom's pad[4] is; auto_pad is turned into explicit pads here, so that
 * SAME_LOWER and SAME_UPPER both come out as ONNX says. */
#include "onnx_ops.h"

#ifdef LOOM_ONNX_CNN

#include <string.h>

typedef struct spatial {
    int nsp;                   /* spatial dims: 1 or 2 */
    int64_t in[2], k[2];
    int stride[2], dil[2], pad[4];
    int ceil_mode;
} spatial;

/* kernel_shape, strides, dilations, pads, auto_pad of the node for input
 * spatial dims in[] and kernel k[] (from the weight, or kernel_shape). */
static loom_status geometry(ox *b, spatial *g, int kernel_from_attr)
{
    const int64_t *v;
    size_t n;
    int present;
    LOOM_TRY(ox_attr_ints(b, "kernel_shape", &v, &n, &present));
    if (present) {
        if ((int)n != g->nsp)
            return ox_fail(b, LOOM_E_FORMAT, "attribute 'kernel_shape' has %zu values for %d spatial dims", n, g->nsp);
        for (int i = 0; i < g->nsp; i++)
            if (!kernel_from_attr && v[i] != g->k[i])
                return ox_fail(b, LOOM_E_SHAPE, "attribute 'kernel_shape' differs from the weight's");
            else
                g->k[i] = v[i];
    } else if (kernel_from_attr) {
        return ox_fail(b, LOOM_E_FORMAT, "attribute 'kernel_shape' is missing");
    }
    for (int i = 0; i < 2; i++) {
        g->stride[i] = g->dil[i] = 1;
        g->pad[i] = g->pad[2 + i] = 0;
    }
    LOOM_TRY(ox_attr_ints(b, "strides", &v, &n, &present));
    for (size_t i = 0; present && i < n && i < 2; i++) {
        if (v[i] < 1 || v[i] > 65536)
            return ox_fail(b, LOOM_E_FORMAT, "strides[%zu] = %lld", i, (long long)v[i]);
        g->stride[i] = (int)v[i];
    }
    LOOM_TRY(ox_attr_ints(b, "dilations", &v, &n, &present));
    for (size_t i = 0; present && i < n && i < 2; i++) {
        if (v[i] < 1 || v[i] > 65536)
            return ox_fail(b, LOOM_E_FORMAT, "dilations[%zu] = %lld", i, (long long)v[i]);
        g->dil[i] = (int)v[i];
    }
    const char *ap;
    LOOM_TRY(ox_attr_string(b, "auto_pad", "NOTSET", &ap));
    LOOM_TRY(ox_attr_ints(b, "pads", &v, &n, &present));
    if (present && (int)n != 2 * g->nsp)
        return ox_fail(b, LOOM_E_FORMAT, "attribute 'pads' has %zu values for %d spatial dims", n, g->nsp);
    if (!strcmp(ap, "NOTSET")) {
        for (int i = 0; present && i < g->nsp; i++) {
            if (v[i] < 0 || v[g->nsp + i] < 0 || v[i] > 65536 || v[g->nsp + i] > 65536)
                return ox_fail(b, LOOM_E_FORMAT, "attribute 'pads' holds %lld, %lld", (long long)v[i],
                               (long long)v[g->nsp + i]);
            g->pad[i] = (int)v[i];
            g->pad[2 + i] = (int)v[g->nsp + i];
        }
    } else if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
        for (int i = 0; i < g->nsp; i++) {
            /* SAME_UPPER is loom's "same"; SAME_LOWER puts the odd one first */
            int64_t small, big;
            loom_same_padding(g->in[i], g->k[i], g->stride[i], g->dil[i], &small, &big);
            g->pad[i] = (int)(ap[5] == 'U' ? small : big);
            g->pad[2 + i] = (int)(ap[5] == 'U' ? big : small);
        }
    } else if (strcmp(ap, "VALID")) {
        return ox_fail(b, LOOM_E_UNSUPPORTED, "attribute 'auto_pad' = \"%s\"", ap);
    }
    if (g->nsp == 1) {
        /* loom's conv1d reads the second of each pair */
        g->stride[1] = g->stride[0];
        g->dil[1] = g->dil[0];
        g->pad[1] = g->pad[0];
        g->pad[3] = g->pad[2];
        g->stride[0] = g->dil[0] = 1;
        g->pad[0] = g->pad[2] = 0;
    }
    return LOOM_OK;
}

loom_status oxb_conv(ox *b)
{
    int64_t groups;
    LOOM_TRY(ox_attr_int(b, "group", 1, &groups, NULL));
    ox_val *x, *w, *bias = ox_in(b, 2);
    LOOM_TRY(ox_need(b, 0, &x));
    LOOM_TRY(ox_need(b, 1, &w));
    loom_tensor tx, tw, tb = LOOM_NONE;
    loom_dtype dt;
    LOOM_TRY(ox_pair(b, x, w, &tx, &tw, &dt));
    if (bias)
        LOOM_TRY(ox_tensor(b, bias, dt, &tb));
    loom_graph *g = b->g;
    int r = loom_tensor_ndim(g, tx);
    if (r != 3 && r != 4)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "a %d-D input (loom convolves 1-D and 2-D)", r - 2);
    spatial sp = {0};
    sp.nsp = r - 2;
    for (int i = 0; i < sp.nsp; i++) {
        sp.in[i] = loom_tensor_dim(g, tx, 2 + i);
        sp.k[i] = loom_tensor_dim(g, tw, 2 + i);
    }
    LOOM_TRY(geometry(b, &sp, 0));
    if (groups < 1 || groups > (1 << 30))
        return ox_fail(b, LOOM_E_FORMAT, "attribute 'group' = %lld", (long long)groups);
    loom_conv2d_opts o = loom_conv2d_opts_default();
    memcpy(o.stride, sp.stride, sizeof o.stride);
    memcpy(o.dilation, sp.dil, sizeof o.dilation);
    memcpy(o.pad, sp.pad, sizeof o.pad);
    o.same = 0;
    o.groups = (int)groups;
    loom_tensor y = r == 4 ? loom_conv2d(g, tx, tw, tb, &o) : loom_conv1d(g, tx, tw, tb, &o);
    return ox_set_num(b, 0, y, x->type);
}

loom_status oxb_conv_transpose(ox *b)
{
    int64_t groups;
    LOOM_TRY(ox_attr_int(b, "group", 1, &groups, NULL));
    const int64_t *op, *os;
    size_t nop, nos;
    int has_op, has_os;
    LOOM_TRY(ox_attr_ints(b, "output_padding", &op, &nop, &has_op));
    LOOM_TRY(ox_attr_ints(b, "output_shape", &os, &nos, &has_os));
    ox_val *x, *w, *bias = ox_in(b, 2);
    LOOM_TRY(ox_need(b, 0, &x));
    LOOM_TRY(ox_need(b, 1, &w));
    loom_tensor tx, tw, tb = LOOM_NONE;
    loom_dtype dt;
    LOOM_TRY(ox_pair(b, x, w, &tx, &tw, &dt));
    if (bias)
        LOOM_TRY(ox_tensor(b, bias, dt, &tb));
    loom_graph *g = b->g;
    if (loom_tensor_ndim(g, tx) != 4)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "a %d-D input (loom's transposed convolution is 2-D)",
                       loom_tensor_ndim(g, tx) - 2);
    spatial sp = {0};
    sp.nsp = 2;
    for (int i = 0; i < 2; i++) {
        sp.in[i] = loom_tensor_dim(g, tx, 2 + i);
        sp.k[i] = loom_tensor_dim(g, tw, 2 + i);
    }
    const char *ap;
    LOOM_TRY(geometry(b, &sp, 0));
    LOOM_TRY(ox_attr_string(b, "auto_pad", "NOTSET", &ap));
    int outpad[2] = {0, 0};
    for (size_t i = 0; has_op && i < nop && i < 2; i++)
        outpad[i] = (int)op[i];
    if (strcmp(ap, "NOTSET") || has_os) {
        /* the output's size decides the padding: total = stride (in - 1)
         * + output_padding + (k - 1) dil + 1 - out */
        for (int i = 0; i < 2; i++) {
            int64_t out = has_os ? (nos >= 2 ? os[nos - 2 + i] : 0) : sp.in[i] * sp.stride[i];
            int64_t total = sp.stride[i] * (sp.in[i] - 1) + outpad[i] + (sp.k[i] - 1) * sp.dil[i] + 1 - out;
            if (total < 0) {
                outpad[i] -= (int)total;
                total = 0;
            }
            int64_t small = total / 2, big = total - small;
            int upper = strcmp(ap, "SAME_LOWER") != 0;
            sp.pad[i] = (int)(upper ? small : big);
            sp.pad[2 + i] = (int)(upper ? big : small);
        }
    }
    loom_conv2d_opts o = loom_conv2d_opts_default();
    memcpy(o.stride, sp.stride, sizeof o.stride);
    memcpy(o.dilation, sp.dil, sizeof o.dilation);
    memcpy(o.pad, sp.pad, sizeof o.pad);
    o.same = 0;
    o.groups = (int)groups;
    return ox_set_num(b, 0, loom_conv_transpose2d(g, tx, tw, tb, &o, outpad), x->type);
}

static loom_status pool(ox *b, int max)
{
    int64_t ceil_mode, count_pad = 0, storage;
    LOOM_TRY(ox_attr_int(b, "ceil_mode", 0, &ceil_mode, NULL));
    if (!max)
        LOOM_TRY(ox_attr_int(b, "count_include_pad", 0, &count_pad, NULL));
    else
        LOOM_TRY(ox_attr_int(b, "storage_order", 0, &storage, NULL));
    if (ox_out(b, 1))
        return ox_fail(b, LOOM_E_UNSUPPORTED, "output 1 (the indices) is not supported");
    loom_tensor x;
    ox_val *v;
    LOOM_TRY(ox_in_float(b, 0, &x, NULL, &v));
    loom_graph *g = b->g;
    int r = loom_tensor_ndim(g, x);
    if (r != 4)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "a %d-D input (loom pools 2-D)", r - 2);
    spatial sp = {0};
    sp.nsp = 2;
    for (int i = 0; i < 2; i++)
        sp.in[i] = loom_tensor_dim(g, x, 2 + i);
    LOOM_TRY(geometry(b, &sp, 1));
    if (sp.dil[0] != 1 || sp.dil[1] != 1)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "attribute 'dilations' other than 1 in pooling");
    if (ceil_mode) {
        /* the last window may hang over the end: pad the end so that the
         * floor of loom's division gives ONNX's ceiling, dropping a window
         * that would start in the padding alone */
        for (int i = 0; i < 2; i++) {
            int64_t span = sp.in[i] + sp.pad[i] + sp.pad[2 + i] - sp.k[i];
            int64_t out = (span + sp.stride[i] - 1) / sp.stride[i] + 1;
            if ((out - 1) * sp.stride[i] >= sp.in[i] + sp.pad[i])
                out--;
            int64_t need = (out - 1) * sp.stride[i] + sp.k[i] - (sp.in[i] + sp.pad[i] + sp.pad[2 + i]);
            if (need > 0)
                sp.pad[2 + i] += (int)need;
        }
    }
    loom_pool2d_opts o;
    memset(&o, 0, sizeof o);
    for (int i = 0; i < 2; i++) {
        o.kernel[i] = (int)sp.k[i];
        o.stride[i] = sp.stride[i];
    }
    memcpy(o.pad, sp.pad, sizeof o.pad);
    o.count_pad = (int)count_pad;
    loom_tensor y = max ? loom_max_pool2d(g, x, &o) : loom_avg_pool2d(g, x, &o);
    if (ceil_mode && !max && count_pad) {
        /* the extra end padding must not count: ONNX counts only the pads
         * it was given */
        return ox_fail(b, LOOM_E_UNSUPPORTED, "ceil_mode with count_include_pad");
    }
    return ox_set_num(b, 0, y, v->type);
}

loom_status oxb_max_pool(ox *b) { return pool(b, 1); }
loom_status oxb_avg_pool(ox *b) { return pool(b, 0); }

#else
/* loom.h has no convolutions yet: no rows, nothing to build */
typedef int ox_no_cnn;
#endif
