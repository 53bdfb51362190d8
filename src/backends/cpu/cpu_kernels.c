/* The executable reference of every op family's semantics (src/core/ir.h),
 * in f32 over f32 views of the tensors. */
#include "cpu_kernels.h"
#include "cpu_gemm.h"
#include "cpu_simd.h"
#include "cpu_update.h"
#include "../common/layout.h"

#include <math.h>
#include <string.h>

/* ---- element-wise ------------------------------------------------------------ */

/* Element-wise bodies over [b, e) of their tensors, split across the
 * cores in blocks of UNARY_BLOCK elements (a multiple of every vector
 * width) when the tensor is large enough to pay for it. */
#define UNARY_BLOCK 4096

typedef struct unary_job {
    const cpu_unary_body *body;
    int grad;
    float *y;
    const float *a, *b;
    int64_t n;
    float p, q;
} unary_job;

static void unary_blocks(void *arg, int64_t b0, int64_t b1)
{
    const unary_job *j = arg;
    int64_t i = b0 * UNARY_BLOCK, e = b1 * UNARY_BLOCK < j->n ? b1 * UNARY_BLOCK : j->n;
    if (j->grad)
        j->body->d(j->y + i, j->a + i, j->b + i, e - i, j->p, j->q);
    else
        j->body->f(j->y + i, j->a + i, e - i, j->p, j->q);
}

static void unary_run(const cpu_unary_body *body, int grad, void *out, void *const *in, int64_t n,
                      const loom_attr *at)
{
    unary_job j = {body, grad, out, in[0], grad ? in[1] : NULL, n, at->p1, at->p2};
    cpu_parallel_for((n + UNARY_BLOCK - 1) / UNARY_BLOCK, n, unary_blocks, &j);
}

static void k_unary(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    unary_run(&cpu_unary[x->node->op], 0, out, in, x->node->numel, &x->node->attr);
}

static void k_unary_grad(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    unary_run(&cpu_unary[x->node->attr.fwd], 1, out, in, x->node->numel, &x->node->attr);
}

/* The rank-4 walk of an output over operands that broadcast onto it. */
typedef struct bwalk {
    int64_t d[4];
    int64_t s[3][4];
} bwalk;

static void bwalk_init(bwalk *w, const loom_node *o, int n, const loom_exec_tensor *const *ins)
{
    loom_shape4(o->ndim, o->shape, w->d);
    for (int k = 0; k < n; k++)
        loom_bstrides(ins[k]->node->ndim, ins[k]->node->shape, w->d, w->s[k]);
}

static int64_t bwalk_off(const bwalk *w, int k, int64_t i0, int64_t i1, int64_t i2, int64_t i3)
{
    return i0 * w->s[k][0] + i1 * w->s[k][1] + i2 * w->s[k][2] + i3 * w->s[k][3];
}

/* y = a op b over n elements for the four arithmetic ops, a and b read
 * at stride sa, sb (1, or 0: one value broadcast), in four-float vectors:
 * the table's scalar bodies are one indirect call per element, which made
 * a ViT step's residual adds and gates 10% of it. Same bits as the scalar
 * bodies (one IEEE operation per element either way). 0 for other ops. */
#define ARITH_ROW(OP)                                                                                     \
    do {                                                                                                  \
        int64_t i = 0;                                                                                    \
        for (; i + 4 <= n; i += 4) {                                                                      \
            cpu_v4 va = sa ? v4_load(a + i) : v4_splat(a[0]), vb = sb ? v4_load(b + i) : v4_splat(b[0]);  \
            v4_store(y + i, va OP vb);                                                                    \
        }                                                                                                 \
        for (; i < n; i++)                                                                                \
            y[i] = a[i * sa] OP b[i * sb];                                                                \
    } while (0)

static int arith_row(int op, float *y, const float *a, int64_t sa, const float *b, int64_t sb, int64_t n)
{
    switch (op) {
    case LOOM_OP_ADD: ARITH_ROW(+); return 1;
    case LOOM_OP_SUB: ARITH_ROW(-); return 1;
    case LOOM_OP_MUL: ARITH_ROW(*); return 1;
    case LOOM_OP_DIV: ARITH_ROW(/); return 1;
    default: return 0;
    }
}

typedef struct arith_job {
    int op;
    float *y;
    const float *a, *b;
    int64_t n;
} arith_job;

static void arith_blocks(void *arg, int64_t b0, int64_t b1)
{
    const arith_job *j = arg;
    int64_t i = b0 * UNARY_BLOCK, e = b1 * UNARY_BLOCK < j->n ? b1 * UNARY_BLOCK : j->n;
    arith_row(j->op, j->y + i, j->a + i, 1, j->b + i, 1, e - i);
}

static void k_binary(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    int op = x->node->op;
    float (*f)(float, float) = cpu_binary[op].f;
    float *y = out;
    const float *a = in[0], *b = in[1];
    const loom_node *o = x->node;
    int arith = op == LOOM_OP_ADD || op == LOOM_OP_SUB || op == LOOM_OP_MUL || op == LOOM_OP_DIV;
    if (x->in[0]->node->numel == o->numel && x->in[1]->node->numel == o->numel) {
        if (arith) {
            arith_job j = {op, y, a, b, o->numel};
            cpu_parallel_for((o->numel + UNARY_BLOCK - 1) / UNARY_BLOCK, o->numel, arith_blocks, &j);
            return;
        }
        for (int64_t i = 0; i < o->numel; i++)
            y[i] = f(a[i], b[i]);
        return;
    }
    bwalk w;
    bwalk_init(&w, o, 2, x->in);
    int64_t k = 0;
    /* a row at a time where the inner dim is read densely or broadcast */
    if (arith && w.s[0][3] <= 1 && w.s[1][3] <= 1) {
        for (int64_t i0 = 0; i0 < w.d[0]; i0++)
            for (int64_t i1 = 0; i1 < w.d[1]; i1++)
                for (int64_t i2 = 0; i2 < w.d[2]; i2++, k += w.d[3])
                    arith_row(op, y + k, a + bwalk_off(&w, 0, i0, i1, i2, 0), w.s[0][3],
                              b + bwalk_off(&w, 1, i0, i1, i2, 0), w.s[1][3], w.d[3]);
        return;
    }
    for (int64_t i0 = 0; i0 < w.d[0]; i0++)
        for (int64_t i1 = 0; i1 < w.d[1]; i1++)
            for (int64_t i2 = 0; i2 < w.d[2]; i2++)
                for (int64_t i3 = 0; i3 < w.d[3]; i3++, k++)
                    y[k] = f(a[bwalk_off(&w, 0, i0, i1, i2, i3)], b[bwalk_off(&w, 1, i0, i1, i2, i3)]);
}

/* dy * df/da (or df/db) at the output's shape; in: dy, a, b. */
static void k_binary_grad(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    const loom_attr *at = &x->node->attr;
    const cpu_binary_body *body = &cpu_binary[at->fwd];
    float (*df)(float, float) = at->side ? body->db : body->da;
    float *y = out;
    const float *dy = in[0], *a = in[1], *b = in[2];
    bwalk w;
    bwalk_init(&w, x->node, 2, x->in + 1);
    int64_t k = 0;
    for (int64_t i0 = 0; i0 < w.d[0]; i0++)
        for (int64_t i1 = 0; i1 < w.d[1]; i1++)
            for (int64_t i2 = 0; i2 < w.d[2]; i2++)
                for (int64_t i3 = 0; i3 < w.d[3]; i3++, k++)
                    y[k] = dy[k] * df(a[bwalk_off(&w, 0, i0, i1, i2, i3)], b[bwalk_off(&w, 1, i0, i1, i2, i3)]);
}

static void k_where(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    float *y = out;
    const float *c = in[0], *a = in[1], *b = in[2];
    bwalk w;
    bwalk_init(&w, x->node, 3, x->in);
    int64_t k = 0;
    for (int64_t i0 = 0; i0 < w.d[0]; i0++)
        for (int64_t i1 = 0; i1 < w.d[1]; i1++)
            for (int64_t i2 = 0; i2 < w.d[2]; i2++)
                for (int64_t i3 = 0; i3 < w.d[3]; i3++, k++)
                    y[k] = c[bwalk_off(&w, 0, i0, i1, i2, i3)] != 0.0f ? a[bwalk_off(&w, 1, i0, i1, i2, i3)]
                                                                        : b[bwalk_off(&w, 2, i0, i1, i2, i3)];
}

/* Between f32 views and i32: to the nearest integer, saturating, NaN to 0. */
static void k_cast(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    int from_int = x->in[0]->node->dtype == LOOM_I32, to_int = x->node->dtype == LOOM_I32;
    int64_t n = x->node->numel;
    if (from_int && !to_int) {
        const int32_t *a = in[0];
        float *y = out;
        for (int64_t i = 0; i < n; i++)
            y[i] = (float)a[i];
    } else if (!from_int && to_int) {
        const float *a = in[0];
        int32_t *y = out;
        for (int64_t i = 0; i < n; i++) {
            float v = nearbyintf(a[i]);
            y[i] = v != v ? 0 : v >= 2147483647.0f ? INT32_MAX : v <= -2147483648.0f ? INT32_MIN : (int32_t)v;
        }
    } else if (out != in[0]) {
        memmove(out, in[0], (size_t)n * 4);
    }
}

/* ---- GEMM ----------------------------------------------------------------------- */

static void k_matmul(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    loom_cpu_matmul(x, out, in);
}

/* ---- layout ---------------------------------------------------------------------- */

static void k_gather(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    const loom_node *nd = x->node;
    if (x->def->code == LOOM_GATHER_COPY) {
        if (out != in[0])
            memmove(out, in[0], (size_t)nd->numel * 4);
        return;
    }
    int64_t d[4], st[4];
    loom_gather_strides(x->def->code, x->in[0]->node, nd, d, st);
    uint32_t *y = out;
    const uint32_t *a = in[0];
    int64_t k = 0;
    for (int64_t i0 = 0; i0 < d[0]; i0++)
        for (int64_t i1 = 0; i1 < d[1]; i1++)
            for (int64_t i2 = 0; i2 < d[2]; i2++) {
                const uint32_t *pa = a + i0 * st[0] + i1 * st[1] + i2 * st[2];
                for (int64_t i3 = 0; i3 < d[3]; i3++)
                    y[k++] = pa[i3 * st[3]];
            }
}

/* ---- along an axis ------------------------------------------------------------------ */

static void k_softmax(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    loom_axis_split sp = loom_axis_split_of(x->node, x->node->attr.axis);
    int is_log = x->def->code == LOOM_SOFTMAX_LOG;
    const float *a = in[0];
    float *y = out;
    for (int64_t o = 0; o < sp.outer; o++)
        for (int64_t i = 0; i < sp.inner; i++) {
            const float *r = a + o * sp.n * sp.inner + i;
            float *w = y + o * sp.n * sp.inner + i;
            float m = r[0];
            for (int64_t j = 1; j < sp.n; j++)
                m = r[j * sp.inner] > m ? r[j * sp.inner] : m;
            double s = 0;
            for (int64_t j = 0; j < sp.n; j++)
                s += exp((double)(r[j * sp.inner] - m));
            if (!is_log) {
                for (int64_t j = 0; j < sp.n; j++)
                    w[j * sp.inner] = (float)(exp((double)(r[j * sp.inner] - m)) / s);
            } else {
                float lse = m + (float)log(s);
                for (int64_t j = 0; j < sp.n; j++)
                    w[j * sp.inner] = r[j * sp.inner] - lse;
            }
        }
}

static void k_softmax_grad(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    loom_axis_split sp = loom_axis_split_of(x->node, x->node->attr.axis);
    int is_log = x->def->code == LOOM_SOFTMAX_LOG;
    const float *dy = in[0], *v = in[1];
    float *y = out;
    for (int64_t o = 0; o < sp.outer; o++)
        for (int64_t i = 0; i < sp.inner; i++) {
            int64_t base = o * sp.n * sp.inner + i;
            const float *d = dy + base, *s = v + base;
            float *w = y + base;
            double acc = 0;
            for (int64_t j = 0; j < sp.n; j++)
                acc += is_log ? (double)d[j * sp.inner] : (double)d[j * sp.inner] * s[j * sp.inner];
            for (int64_t j = 0; j < sp.n; j++) {
                int64_t t = j * sp.inner;
                w[t] = is_log ? d[t] - expf(s[t]) * (float)acc : s[t] * (d[t] - (float)acc);
            }
        }
}

/* out (rshape, in the input's rank) = alpha * the sum, max or min of the
 * input over the dims where rshape is 1 and the input is not. */
static void k_reduce(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    const loom_node *ni = x->in[0]->node, *nd = x->node;
    int code = x->def->code;
    const float *a = in[0];
    float *y = out;
    if (code != LOOM_REDUCE_SUM) {
        loom_axis_split sp = loom_axis_split_of(ni, nd->attr.axis);
        for (int64_t o = 0; o < sp.outer; o++)
            for (int64_t i = 0; i < sp.inner; i++) {
                const float *r = a + o * sp.n * sp.inner + i;
                float m = r[0];
                for (int64_t j = 1; j < sp.n; j++) {
                    float v = r[j * sp.inner];
                    m = (code == LOOM_REDUCE_MAX ? v > m : v < m) ? v : m;
                }
                y[o * sp.inner + i] = m;
            }
        return;
    }
    int64_t d[4], so[4];
    loom_shape4(ni->ndim, ni->shape, d);
    loom_bstrides(nd->attr.rdim, nd->attr.rshape, d, so);
    int64_t on = loom_numel(nd->attr.rdim, nd->attr.rshape);
    memset(y, 0, (size_t)on * sizeof *y);
    int64_t k = 0;
    /* reduced trailing dims are one contiguous run per output (a
     * convolution's bias gradient: the H x W plane of each channel) */
    int64_t run = so[3] == 0 ? (so[2] == 0 ? d[2] * d[3] : d[3]) : 1;
    for (int64_t i0 = 0; i0 < d[0]; i0++)
        for (int64_t i1 = 0; i1 < d[1]; i1++)
            for (int64_t i2 = 0; i2 < d[2]; i2++) {
                float *po = y + i0 * so[0] + i1 * so[1] + i2 * so[2];
                if (run > 1) {
                    po[0] += cpu_sum(a + k, run);
                    k += run;
                    if (run > d[3])
                        break;
                    continue;
                }
                for (int64_t i3 = 0; i3 < d[3]; i3++)
                    po[i3 * so[3]] += a[k++];
            }
    for (int64_t i = 0; i < on; i++)
        y[i] *= nd->attr.alpha;
}

/* The first arg-max (arg-min) along the axis of one slice. */
static int64_t arg_of(const float *r, int64_t n, int64_t stride, int code)
{
    int64_t best = 0;
    for (int64_t j = 1; j < n; j++) {
        float v = r[j * stride], b = r[best * stride];
        if (code == LOOM_ARG_MAX ? v > b : v < b)
            best = j;
    }
    return best;
}

static void k_arg_reduce(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    loom_axis_split sp = loom_axis_split_of(x->in[0]->node, x->node->attr.axis);
    const float *a = in[0];
    int32_t *y = out;
    for (int64_t o = 0; o < sp.outer; o++)
        for (int64_t i = 0; i < sp.inner; i++)
            y[o * sp.inner + i] = (int32_t)arg_of(a + o * sp.n * sp.inner + i, sp.n, sp.inner, x->def->code);
}

/* in: dy (the reduced shape), x. dx = dy at each slice's arg, 0 elsewhere. */
static void k_arg_grad(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    loom_axis_split sp = loom_axis_split_of(x->node, x->node->attr.axis);
    const float *dy = in[0], *a = in[1];
    float *y = out;
    memset(y, 0, (size_t)x->node->numel * sizeof *y);
    for (int64_t o = 0; o < sp.outer; o++)
        for (int64_t i = 0; i < sp.inner; i++) {
            int64_t base = o * sp.n * sp.inner + i;
            int64_t j = arg_of(a + base, sp.n, sp.inner, x->def->code);
            y[base + j * sp.inner] = dy[o * sp.inner + i];
        }
}

/* ---- losses ------------------------------------------------------------------------ */

/* The max of a row of c logits and the sum of exp(logit - max), in double. */
static float row_max_sumexp(const float *row, int64_t c, double *sum)
{
    float m = row[0];
    for (int64_t j = 1; j < c; j++)
        m = row[j] > m ? row[j] : m;
    double s = 0;
    for (int64_t j = 0; j < c; j++)
        s += exp((double)(row[j] - m));
    *sum = s;
    return m;
}

static void k_xent(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    const float *z = in[0];
    const int32_t *lab = in[1];
    int64_t n = x->in[0]->node->shape[0], c = x->in[0]->node->shape[1];
    double total = 0;
    for (int64_t r = 0; r < n; r++) {
        if (lab[r] < 0 || lab[r] >= c) {
            total = NAN; /* a label from the state that nothing checked */
            break;
        }
        const float *row = z + r * c;
        double s;
        float m = row_max_sumexp(row, c, &s);
        total += (double)m + log(s) - (double)row[lab[r]];
    }
    ((float *)out)[0] = (float)(total / (double)n);
}

/* Fused (x->also), the loss and each row's arg-max come out of the same
 * pass, computed as k_xent and k_arg_reduce compute them. */
static void k_xent_grad(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    const float *dl = in[0], *z = in[1];
    const int32_t *lab = in[2];
    float *y = out;
    float *loss = x->also[0] ? loom_cpu_tensor_data(x->also[0]) : NULL;
    int32_t *pred = x->also[1] ? loom_cpu_tensor_data(x->also[1]) : NULL;
    int64_t n = x->in[1]->node->shape[0], c = x->in[1]->node->shape[1];
    float scale = dl[0] / (float)n;
    double total = 0;
    for (int64_t r = 0; r < n; r++) {
        const float *row = z + r * c;
        float *o = y + r * c;
        if (pred)
            pred[r] = (int32_t)arg_of(row, c, 1, LOOM_ARG_MAX);
        if (lab[r] < 0 || lab[r] >= c) {
            for (int64_t j = 0; j < c; j++)
                o[j] = NAN;
            total = NAN;
            continue;
        }
        double s;
        float m = row_max_sumexp(row, c, &s);
        total += (double)m + log(s) - (double)row[lab[r]];
        for (int64_t j = 0; j < c; j++)
            o[j] = (float)(exp((double)(row[j] - m)) / s);
        o[lab[r]] -= 1.0f;
        for (int64_t j = 0; j < c; j++)
            o[j] *= scale;
    }
    if (loss)
        loss[0] = (float)(total / (double)n);
}

static void k_dropout(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    const loom_attr *at = &x->node->attr;
    float keep = 1.0f / (1.0f - at->alpha);
    const float *a = in[0];
    float *y = out;
    for (int64_t i = 0; i < x->node->numel; i++)
        y[i] = loom_rng_element(slot->h0, (uint32_t)i) >= at->alpha ? a[i] * keep : 0.0f;
}

static void k_sumsq(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    double s = 0;
    for (int k = 0; k < x->nin; k++) {
        const float *a = in[k];
        for (int64_t i = 0; i < x->in[k]->node->numel; i++)
            s += (double)a[i] * a[i];
    }
    ((float *)out)[0] = (float)s;
}

static void k_run_value(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)x, (void)in;
    ((float *)out)[0] = slot->loss_scale;
}

/* ---- optimizer updates ------------------------------------------------------------- */

/* The factor every gradient is multiplied by (unscaling, clipping), or 0
 * when the step is skipped (a loss-scaled gradient that is not finite). */
static float grad_factor(const loom_exec_node *x, void *const *in, const loom_run_slot *slot, int *skip)
{
    const loom_attr *at = &x->node->attr;
    float u = slot->inv_scale;
    *skip = 0;
    if (!at->clip)
        return u;
    float ss = ((const float *)in[x->nin - 1])[0];
    if (at->skip_nonfinite && !isfinite(ss)) {
        *skip = 1;
        return 0;
    }
    float norm = sqrtf(ss) * u;
    return at->clip_norm > 0 && norm > at->clip_norm ? u * at->clip_norm / norm : u;
}

static float penalized(const loom_attr *at, float g, float p, float factor)
{
    float s = p > 0.0f ? 1.0f : p < 0.0f ? -1.0f : 0.0f;
    return g * factor + 2.0f * at->l2 * p + at->l1 * s;
}

static void k_sgd(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)out;
    const loom_attr *at = &x->node->attr;
    float *p = in[0];
    const float *g = in[1];
    float *v = at->momentum != 0.0f ? in[2] : NULL;
    int skip;
    float f = grad_factor(x, in, slot, &skip), lr = slot->lr, mu = at->momentum;
    if (skip)
        return;
    int64_t n = x->in[0]->node->numel;
    for (int64_t i = 0; i < n; i++) {
        float gi = penalized(at, loom_cpu_grad_at(g, at->grad_rows, n, i), p[i], f);
        if (!v) {
            p[i] -= lr * gi;
        } else {
            v[i] = mu * v[i] - lr * gi;
            p[i] += at->nesterov ? mu * v[i] - lr * gi : v[i];
        }
    }
}

static void k_adam(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)out;
    const loom_attr *at = &x->node->attr;
    float *p = in[0], *m = in[2], *v = in[3];
    const float *g = in[1];
    int skip;
    float f = grad_factor(x, in, slot, &skip), lr = slot->lr, alpha = slot->alpha;
    if (skip)
        return;
    loom_cpu_adam_span(at, p, g, at->grad_rows, m, v, x->in[0]->node->numel, f, lr, alpha);
}

static void k_ema(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)out;
    float *e = in[0];
    const float *p = in[1];
    float d = slot->decay;
    for (int64_t i = 0; i < x->in[0]->node->numel; i++)
        e[i] = d * e[i] + (1.0f - d) * p[i];
}

const cpu_kernel cpu_kernels[LOOM_FAM_COUNT] = {
    [LOOM_FAM_UNARY] = k_unary,
    [LOOM_FAM_UNARY_GRAD] = k_unary_grad,
    [LOOM_FAM_BINARY] = k_binary,
    [LOOM_FAM_BINARY_GRAD] = k_binary_grad,
    [LOOM_FAM_WHERE] = k_where,
    [LOOM_FAM_CAST] = k_cast,
    [LOOM_FAM_MATMUL] = k_matmul,
    [LOOM_FAM_GATHER] = k_gather,
    [LOOM_FAM_SOFTMAX] = k_softmax,
    [LOOM_FAM_SOFTMAX_GRAD] = k_softmax_grad,
    [LOOM_FAM_REDUCE] = k_reduce,
    [LOOM_FAM_ARG_REDUCE] = k_arg_reduce,
    [LOOM_FAM_ARG_GRAD] = k_arg_grad,
    [LOOM_FAM_XENT] = k_xent,
    [LOOM_FAM_XENT_GRAD] = k_xent_grad,
    [LOOM_FAM_DROPOUT] = k_dropout,
    [LOOM_FAM_SUMSQ] = k_sumsq,
    [LOOM_FAM_RUN_VALUE] = k_run_value,
    [LOOM_FAM_SGD] = k_sgd,
    [LOOM_FAM_ADAM] = k_adam,
    [LOOM_FAM_EMA] = k_ema,
    [LOOM_FAM_CONV] = cpu_k_conv,
    [LOOM_FAM_POOL] = cpu_k_pool,
    [LOOM_FAM_POOL_GRAD] = cpu_k_pool_grad,
    [LOOM_FAM_NORM] = cpu_k_norm,
    [LOOM_FAM_NORM_UPDATE] = cpu_k_norm_update,
    [LOOM_FAM_WINDOW] = cpu_k_window,
    [LOOM_FAM_CONCAT] = cpu_k_concat,
    [LOOM_FAM_BMM] = loom_cpu_bmm,
    [LOOM_FAM_LNORM] = loom_cpu_norm,
    [LOOM_FAM_LNORM_GRAD] = loom_cpu_norm_grad,
    [LOOM_FAM_TAKE] = loom_cpu_take,
    [LOOM_FAM_SCATTER] = loom_cpu_scatter,
    [LOOM_FAM_ROPE] = loom_cpu_rope,
    [LOOM_FAM_ATTENTION] = loom_cpu_attention,
    [LOOM_FAM_QUANT] = loom_cpu_quant,
    [LOOM_FAM_QMATMUL] = loom_cpu_qmatmul,
    [LOOM_FAM_QCONV] = loom_cpu_qconv,
    [LOOM_FAM_MASK] = cpu_k_mask_update,
};

int loom_cpu_has_kernel(loom_op op, loom_dtype dt)
{
    const loom_op_def *def = loom_op_def_of(op);
    if (!cpu_kernels[def->family])
        return 0;
    /* the int8 families read and write i8, i32 and f32 as they are */
    if (def->family == LOOM_FAM_QUANT || def->family == LOOM_FAM_QMATMUL || def->family == LOOM_FAM_QCONV)
        return dt == LOOM_F32 || dt == LOOM_I8 || dt == LOOM_I32;
    /* every float dtype is widened to f32 and i32 passes through */
    if (!loom_dtype_is_float(dt) && dt != LOOM_I32)
        return 0;
    switch (def->family) {
    case LOOM_FAM_UNARY: return cpu_unary[op].f != NULL;
    case LOOM_FAM_BINARY: return cpu_binary[op].f != NULL;
    default: return 1;
    }
}
