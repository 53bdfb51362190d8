/* The executable reference of every op's semantics (see src/core/ir.h). */
#include "cpu_kernels.h"
#include "../common/layout.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

static float binop(loom_op op, float a, float b)
{
    switch (op) {
    case LOOM_OP_ADD: return a + b;
    case LOOM_OP_SUB: return a - b;
    case LOOM_OP_MUL: return a * b;
    default: return a / b;
    }
}

static void binary(const loom_exec_node *x, float *y, const float *a, const float *b)
{
    const loom_node *o = x->out->node, *na = x->in[0]->node, *nb = x->in[1]->node;
    loom_op op = x->node->op;
    if (na->numel == o->numel && nb->numel == o->numel) {
        for (int64_t i = 0; i < o->numel; i++)
            y[i] = binop(op, a[i], b[i]);
        return;
    }
    int64_t d[4], sa[4], sb[4];
    loom_shape4(o->ndim, o->shape, d);
    loom_bstrides(na->ndim, na->shape, d, sa);
    loom_bstrides(nb->ndim, nb->shape, d, sb);
    int64_t k = 0;
    for (int64_t i0 = 0; i0 < d[0]; i0++)
        for (int64_t i1 = 0; i1 < d[1]; i1++)
            for (int64_t i2 = 0; i2 < d[2]; i2++) {
                const float *pa = a + i0 * sa[0] + i1 * sa[1] + i2 * sa[2];
                const float *pb = b + i0 * sb[0] + i1 * sb[1] + i2 * sb[2];
                for (int64_t i3 = 0; i3 < d[3]; i3++)
                    y[k++] = binop(op, pa[i3 * sa[3]], pb[i3 * sb[3]]);
            }
}

static float gelu(float x)
{
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

static float gelu_grad(float x)
{
    float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
    float pdf = expf(-0.5f * x * x) * 0.39894228040143268f;
    return cdf + x * pdf;
}

static void unary(loom_op op, float alpha, int64_t n, float *y, const float *a)
{
    switch (op) {
    case LOOM_OP_SCALE: for (int64_t i = 0; i < n; i++) y[i] = alpha * a[i]; break;
    case LOOM_OP_RELU: for (int64_t i = 0; i < n; i++) y[i] = a[i] > 0.0f ? a[i] : 0.0f; break;
    case LOOM_OP_SIGMOID: for (int64_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + expf(-a[i])); break;
    case LOOM_OP_TANH: for (int64_t i = 0; i < n; i++) y[i] = tanhf(a[i]); break;
    case LOOM_OP_GELU: for (int64_t i = 0; i < n; i++) y[i] = gelu(a[i]); break;
    case LOOM_OP_EXP: for (int64_t i = 0; i < n; i++) y[i] = expf(a[i]); break;
    case LOOM_OP_LOG: for (int64_t i = 0; i < n; i++) y[i] = logf(a[i]); break;
    case LOOM_OP_SQUARE: for (int64_t i = 0; i < n; i++) y[i] = a[i] * a[i]; break;
    default: break;
    }
}

static void unary_grad(loom_op op, int64_t n, float *y, const float *dy, const float *v)
{
    switch (op) {
    case LOOM_OP_RELU_GRAD: for (int64_t i = 0; i < n; i++) y[i] = v[i] > 0.0f ? dy[i] : 0.0f; break;
    case LOOM_OP_SIGMOID_GRAD: for (int64_t i = 0; i < n; i++) y[i] = dy[i] * v[i] * (1.0f - v[i]); break;
    case LOOM_OP_TANH_GRAD: for (int64_t i = 0; i < n; i++) y[i] = dy[i] * (1.0f - v[i] * v[i]); break;
    case LOOM_OP_GELU_GRAD: for (int64_t i = 0; i < n; i++) y[i] = dy[i] * gelu_grad(v[i]); break;
    default: break;
    }
}

static void softmax_rows(loom_op op, int64_t rows, int64_t c, float *y, const float *a)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *x = a + r * c;
        float *o = y + r * c;
        float m = x[0];
        for (int64_t j = 1; j < c; j++)
            m = x[j] > m ? x[j] : m;
        double s = 0;
        for (int64_t j = 0; j < c; j++)
            s += exp((double)(x[j] - m));
        if (op == LOOM_OP_SOFTMAX) {
            for (int64_t j = 0; j < c; j++)
                o[j] = (float)(exp((double)(x[j] - m)) / s);
        } else {
            float lse = m + (float)log(s);
            for (int64_t j = 0; j < c; j++)
                o[j] = x[j] - lse;
        }
    }
}

static void softmax_grad_rows(loom_op op, int64_t rows, int64_t c, float *y, const float *dy, const float *v)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *d = dy + r * c, *s = v + r * c;
        float *o = y + r * c;
        double acc = 0;
        if (op == LOOM_OP_SOFTMAX_GRAD) {
            for (int64_t j = 0; j < c; j++)
                acc += (double)d[j] * s[j];
            for (int64_t j = 0; j < c; j++)
                o[j] = s[j] * (d[j] - (float)acc);
        } else {
            for (int64_t j = 0; j < c; j++)
                acc += d[j];
            for (int64_t j = 0; j < c; j++)
                o[j] = d[j] - expf(s[j]) * (float)acc;
        }
    }
}

/* out (rshape, in the input's rank) = alpha * sum of the input over the
 * dims where rshape is 1 and the input is not. */
static void reduce_sum(const loom_exec_node *x, float *y, const float *a)
{
    const loom_node *ni = x->in[0]->node, *nd = x->node;
    int64_t d[4], so[4];
    loom_shape4(ni->ndim, ni->shape, d);
    loom_bstrides(nd->attr.rdim, nd->attr.rshape, d, so);
    int64_t on = loom_numel(nd->attr.rdim, nd->attr.rshape);
    memset(y, 0, (size_t)on * sizeof *y);
    int64_t k = 0;
    for (int64_t i0 = 0; i0 < d[0]; i0++)
        for (int64_t i1 = 0; i1 < d[1]; i1++)
            for (int64_t i2 = 0; i2 < d[2]; i2++) {
                float *po = y + i0 * so[0] + i1 * so[1] + i2 * so[2];
                for (int64_t i3 = 0; i3 < d[3]; i3++)
                    po[i3 * so[3]] += a[k++];
            }
    for (int64_t i = 0; i < on; i++)
        y[i] *= nd->attr.alpha;
}

static void expand(const loom_exec_node *x, float *y, const float *a)
{
    const loom_node *o = x->node;
    int64_t d[4], sa[4];
    loom_shape4(o->ndim, o->shape, d);
    loom_bstrides(o->attr.rdim, o->attr.rshape, d, sa);
    int64_t k = 0;
    for (int64_t i0 = 0; i0 < d[0]; i0++)
        for (int64_t i1 = 0; i1 < d[1]; i1++)
            for (int64_t i2 = 0; i2 < d[2]; i2++) {
                const float *pa = a + i0 * sa[0] + i1 * sa[1] + i2 * sa[2];
                for (int64_t i3 = 0; i3 < d[3]; i3++)
                    y[k++] = pa[i3 * sa[3]];
            }
}

static void transpose(const loom_exec_node *x, uint32_t *y, const uint32_t *a)
{
    int64_t d[4], st[4];
    loom_transpose_strides(x->in[0]->node, x->node, d, st);
    int64_t k = 0;
    for (int64_t i0 = 0; i0 < d[0]; i0++)
        for (int64_t i1 = 0; i1 < d[1]; i1++)
            for (int64_t i2 = 0; i2 < d[2]; i2++)
                for (int64_t i3 = 0; i3 < d[3]; i3++)
                    y[k++] = a[i0 * st[0] + i1 * st[1] + i2 * st[2] + i3 * st[3]];
}

static void argmax(const loom_exec_node *x, int32_t *y, const float *a)
{
    const loom_node *ni = x->in[0]->node;
    int ax = x->node->attr.axis;
    int64_t outer = 1, inner = 1, n = ni->shape[ax];
    for (int i = 0; i < ax; i++)
        outer *= ni->shape[i];
    for (int i = ax + 1; i < ni->ndim; i++)
        inner *= ni->shape[i];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t in = 0; in < inner; in++) {
            const float *p = a + o * n * inner + in;
            int32_t best = 0;
            for (int64_t j = 1; j < n; j++)
                if (p[j * inner] > p[best * inner])
                    best = (int32_t)j;
            y[o * inner + in] = best;
        }
}

static void sparse_xent(const loom_exec_node *x, float *y, const float *z, const int32_t *lab)
{
    int64_t n = x->in[0]->node->shape[0], c = x->in[0]->node->shape[1];
    double total = 0;
    for (int64_t r = 0; r < n; r++) {
        const float *row = z + r * c;
        float m = row[0];
        for (int64_t j = 1; j < c; j++)
            m = row[j] > m ? row[j] : m;
        double s = 0;
        for (int64_t j = 0; j < c; j++)
            s += exp((double)(row[j] - m));
        total += (double)m + log(s) - (double)row[lab[r]];
    }
    y[0] = (float)(total / (double)n);
}

static void sparse_xent_grad(const loom_exec_node *x, float *y, const float *dl, const float *z, const int32_t *lab)
{
    int64_t n = x->in[1]->node->shape[0], c = x->in[1]->node->shape[1];
    float scale = dl[0] / (float)n;
    softmax_rows(LOOM_OP_SOFTMAX, n, c, y, z);
    for (int64_t r = 0; r < n; r++) {
        y[r * c + lab[r]] -= 1.0f;
        for (int64_t j = 0; j < c; j++)
            y[r * c + j] *= scale;
    }
}

static void dropout(const loom_exec_node *x, float *y, const float *a, const loom_run_args *args)
{
    const loom_attr *at = &x->node->attr;
    float keep = 1.0f / (1.0f - at->alpha);
    for (int64_t i = 0; i < x->node->numel; i++) {
        float u = loom_rng_uniform(at->seed, at->salt, (uint32_t)args->step, (uint32_t)i);
        y[i] = u >= at->alpha ? a[i] * keep : 0.0f;
    }
}

static float clip_scale(const loom_exec_node *x, void *const *in)
{
    const loom_attr *at = &x->node->attr;
    if (!at->clip)
        return 1.0f;
    float norm = sqrtf(((const float *)in[x->nin - 1])[0]);
    return norm > at->clip_norm ? at->clip_norm / norm : 1.0f;
}

static float penalized(const loom_attr *at, float g, float p, float clip)
{
    float s = p > 0.0f ? 1.0f : p < 0.0f ? -1.0f : 0.0f;
    return g * clip + 2.0f * at->l2 * p + at->l1 * s;
}

static void sgd_update(const loom_exec_node *x, void *const *in, const loom_run_args *args)
{
    const loom_attr *at = &x->node->attr;
    float *p = in[0];
    const float *g = in[1];
    float *v = at->momentum != 0.0f ? in[2] : NULL;
    float clip = clip_scale(x, in), lr = args->lr, mu = at->momentum;
    for (int64_t i = 0; i < x->in[0]->node->numel; i++) {
        float gi = penalized(at, g[i], p[i], clip);
        if (!v) {
            p[i] -= lr * gi;
        } else {
            v[i] = mu * v[i] - lr * gi;
            p[i] += at->nesterov ? mu * v[i] - lr * gi : v[i];
        }
    }
}

static void adam_update(const loom_exec_node *x, void *const *in, const loom_run_args *args)
{
    const loom_attr *at = &x->node->attr;
    float *p = in[0], *m = in[2], *v = in[3];
    const float *g = in[1];
    float clip = clip_scale(x, in), lr = args->lr;
    float alpha = loom_adam_step_size(at, lr, args->step);
    for (int64_t i = 0; i < x->in[0]->node->numel; i++) {
        float gi = penalized(at, g[i], p[i], clip);
        if (at->weight_decay != 0.0f)
            p[i] -= lr * at->weight_decay * p[i];
        m[i] += (gi - m[i]) * (1.0f - at->beta1);
        v[i] += (gi * gi - v[i]) * (1.0f - at->beta2);
        p[i] -= alpha * m[i] / (sqrtf(v[i]) + at->eps);
    }
}

void loom_cpu_exec(const loom_exec_node *x, void *out, void *const *in, const loom_run_args *args)
{
    const loom_node *nd = x->node;
    float *y = out;
    switch (nd->op) {
    case LOOM_OP_MATMUL: {
        const loom_node *na = x->in[0]->node, *nb = x->in[1]->node;
        int m = (int)nd->shape[0], n = (int)nd->shape[1];
        int k = (int)(nd->attr.ta ? na->shape[0] : na->shape[1]);
        cblas_sgemm(CblasRowMajor, nd->attr.ta ? CblasTrans : CblasNoTrans, nd->attr.tb ? CblasTrans : CblasNoTrans,
                    m, n, k, 1.0f, in[0], (int)na->shape[1], in[1], (int)nb->shape[1], 0.0f, y, n);
        break;
    }
    case LOOM_OP_ADD: case LOOM_OP_SUB: case LOOM_OP_MUL: case LOOM_OP_DIV:
        binary(x, y, in[0], in[1]);
        break;
    case LOOM_OP_SCALE: case LOOM_OP_RELU: case LOOM_OP_SIGMOID: case LOOM_OP_TANH:
    case LOOM_OP_GELU: case LOOM_OP_EXP: case LOOM_OP_LOG: case LOOM_OP_SQUARE:
        unary(nd->op, nd->attr.alpha, nd->numel, y, in[0]);
        break;
    case LOOM_OP_COPY:
        if (out != in[0])
            memmove(out, in[0], (size_t)nd->numel * loom_dtype_size(nd->dtype));
        break;
    case LOOM_OP_RELU_GRAD: case LOOM_OP_SIGMOID_GRAD: case LOOM_OP_TANH_GRAD: case LOOM_OP_GELU_GRAD:
        unary_grad(nd->op, nd->numel, y, in[0], in[1]);
        break;
    case LOOM_OP_SOFTMAX: case LOOM_OP_LOG_SOFTMAX: {
        int64_t c = nd->shape[nd->ndim - 1];
        softmax_rows(nd->op, nd->numel / c, c, y, in[0]);
        break;
    }
    case LOOM_OP_SOFTMAX_GRAD: case LOOM_OP_LOG_SOFTMAX_GRAD: {
        int64_t c = nd->shape[nd->ndim - 1];
        softmax_grad_rows(nd->op, nd->numel / c, c, y, in[0], in[1]);
        break;
    }
    case LOOM_OP_REDUCE_SUM: reduce_sum(x, y, in[0]); break;
    case LOOM_OP_EXPAND: expand(x, y, in[0]); break;
    case LOOM_OP_TRANSPOSE: transpose(x, out, in[0]); break;
    case LOOM_OP_ARGMAX: argmax(x, out, in[0]); break;
    case LOOM_OP_SPARSE_XENT: sparse_xent(x, y, in[0], in[1]); break;
    case LOOM_OP_SPARSE_XENT_GRAD: sparse_xent_grad(x, y, in[0], in[1], in[2]); break;
    case LOOM_OP_DROPOUT: dropout(x, y, in[0], args); break;
    case LOOM_OP_SUMSQ: {
        double s = 0;
        for (int k = 0; k < x->nin; k++) {
            const float *a = in[k];
            for (int64_t i = 0; i < x->in[k]->node->numel; i++)
                s += (double)a[i] * a[i];
        }
        y[0] = (float)s;
        break;
    }
    case LOOM_OP_SGD_UPDATE: sgd_update(x, in, args); break;
    case LOOM_OP_ADAM_UPDATE: adam_update(x, in, args); break;
    case LOOM_OP_EMA_UPDATE: {
        float *e = in[0];
        const float *p = in[1];
        float d = loom_ema_decay(&nd->attr, args->step);
        for (int64_t i = 0; i < x->in[0]->node->numel; i++)
            e[i] = d * e[i] + (1.0f - d) * p[i];
        break;
    }
    default:
        break;
    }
}
