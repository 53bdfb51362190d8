/* int8 inference on the CPU: quantize, dequantize, the int8 GEMM and the
 * int8 convolution, with i32 accumulation and the fused requantize of
 * src/core/ir.h's LOOM_OP_QMATMUL. The convolution goes to oneDNN's s8
 * convolution where it takes it (the input padded here with its zero
 * point; CNN int8 inference at batch 256: 25.9 -> 9.7 ms a batch), else
 * im2col to i8 patches and the GEMM below (LOOM_CPU_CONV=own forces it).
 *
 * The dot products: oneDNN's s8 matmul where the library is built with it
 * (meson option onednn, cpu_dnnl.c), into an i32 workspace that the
 * epilogue then reads; else (or when oneDNN refuses a shape) our own: an
 * AVX2 kernel (sign-extend 16 i8 to i16, vpmaddwd into 8 i32 lanes, a
 * 4 x 2 block of rows and columns per pass) chosen at run time where the
 * CPU has AVX2, and a plain C loop otherwise. All give the same integers. */
#include "cpu_dnnl.h"
#include "cpu_kernels.h"
#include "../../core/conv_geom.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define CPU_Q_AVX2 1
#endif

/* ---- quantize, dequantize -------------------------------------------------- */

/* The channel of element i of a tensor quantized along axis (-1: none). */
typedef struct qaxis {
    int64_t inner, dim;        /* elements after the axis, the axis's length */
} qaxis;

static qaxis qaxis_of(const loom_node *nd, int axis)
{
    qaxis q = {1, 1};
    if (axis < 0)
        return q;
    q.dim = nd->shape[axis];
    for (int d = axis + 1; d < nd->ndim; d++)
        q.inner *= nd->shape[d];
    return q;
}

static int8_t quantize_one(float x, float s, float z)
{
    float t = nearbyintf(x / s) + z;
    if (isnan(t))
        return (int8_t)z;
    return (int8_t)(t < -128.0f ? -128.0f : t > 127.0f ? 127.0f : t);
}

static void k_quant(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    const loom_node *src = x->in[0]->node;
    const float *qp = in[1];
    qaxis q = qaxis_of(src, x->node->attr.axis);
    int64_t n = src->numel, c = q.dim;
    if (x->def->code == LOOM_QUANT_Q) {
        const float *v = in[0];
        int8_t *y = out;
        for (int64_t i = 0; i < n; i++) {
            int64_t ch = (i / q.inner) % q.dim;
            y[i] = quantize_one(v[i], qp[ch], qp[c + ch]);
        }
    } else {
        const int8_t *v = in[0];
        float *y = out;
        for (int64_t i = 0; i < n; i++) {
            int64_t ch = (i / q.inner) % q.dim;
            y[i] = ((float)v[i] - qp[c + ch]) * qp[ch];
        }
    }
}

/* ---- the int8 dot products ------------------------------------------------- */

static int32_t dot_c(const int8_t *a, const int8_t *b, int64_t k)
{
    int32_t s = 0;
    for (int64_t i = 0; i < k; i++)
        s += (int32_t)a[i] * (int32_t)b[i];
    return s;
}

#ifdef CPU_Q_AVX2
__attribute__((target("avx2"))) static inline int32_t hsum8(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

__attribute__((target("avx2"))) static inline __m256i load16(const int8_t *p)
{
    return _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)p));
}

/* acc[r][c] = dot(a rows r0..r0+ra, b rows c0..c0+cb) for ra <= 4, cb <= 2 */
__attribute__((target("avx2"))) static void dot_block(const int8_t *const *ar, int ra, const int8_t *const *br,
                                                      int cb, int64_t k, int32_t acc[4][2])
{
    __m256i s[4][2];
    for (int r = 0; r < 4; r++)
        s[r][0] = s[r][1] = _mm256_setzero_si256();
    int64_t i = 0;
    for (; i + 16 <= k; i += 16) {
        __m256i b0 = load16(br[0] + i), b1 = cb > 1 ? load16(br[1] + i) : b0;
        for (int r = 0; r < ra; r++) {
            __m256i a = load16(ar[r] + i);
            s[r][0] = _mm256_add_epi32(s[r][0], _mm256_madd_epi16(a, b0));
            s[r][1] = _mm256_add_epi32(s[r][1], _mm256_madd_epi16(a, b1));
        }
    }
    for (int r = 0; r < ra; r++)
        for (int c = 0; c < cb; c++)
            acc[r][c] = hsum8(s[r][c]) + dot_c(ar[r] + i, br[c] + i, k - i);
}
#endif

static int have_avx2(void)
{
#ifdef CPU_Q_AVX2
    static int cached = -1;
    if (cached < 0)
        cached = __builtin_cpu_supports("avx2") ? 1 : 0;
    return cached;
#else
    return 0;
#endif
}

/* ---- the epilogue ---------------------------------------------------------- */

typedef struct qepi {
    const int32_t *bias;
    const float *mult;
    int i8;                    /* the output's dtype is i8 */
    float zero, lo;            /* i8: the output's zero point, its floor */
    loom_op act;               /* f32: the activation (NONE) */
} qepi;

static qepi qepi_of(const loom_exec_node *x, void *const *in)
{
    qepi e;
    const loom_attr *at = &x->node->attr;
    e.bias = in[2];
    e.mult = in[3];
    e.i8 = x->node->dtype == LOOM_I8;
    e.zero = (float)at->qzero;
    e.lo = at->act == LOOM_OP_RELU ? (float)at->qzero : -128.0f;
    e.act = (loom_op)at->act;
    return e;
}

/* Output element at index o of channel ch from its accumulator. */
static inline void qepi_store(const qepi *e, void *out, int64_t o, int64_t ch, int32_t acc)
{
    float t = (float)(acc + e->bias[ch]) * e->mult[ch];
    if (e->i8) {
        float q = nearbyintf(t) + e->zero;
        q = q < e->lo ? e->lo : q > 127.0f ? 127.0f : q;
        ((int8_t *)out)[o] = (int8_t)q;
    } else {
        ((float *)out)[o] = t;
    }
}

/* The activation (relu) over an f32 output, in place, once its values
 * are in: relu's own body, bit for bit. */
static void qepi_finish(const qepi *e, void *out, int64_t n)
{
    if (!e->i8 && e->act != LOOM_OP_NONE)
        cpu_unary[e->act].f(out, out, n, 0.0f, 0.0f);
}

/* ---- the GEMM: C[r, c] = dot(A[r, :], B[c, :]) ------------------------------- */

typedef struct qgemm_job {
    const int8_t *a, *b;
    int64_t rows, cols, k;
    const qepi *e;
    void *out;
    int64_t out_base;          /* element offset of row 0 in out */
    int chan_rows;             /* 1: the channel is the row (conv), 0: the column (matmul) */
} qgemm_job;

static void qgemm_rows(void *arg, int64_t r0, int64_t r1)
{
    const qgemm_job *j = arg;
    int avx = have_avx2();
    for (int64_t r = r0; r < r1; r += 4) {
        int ra = (int)(r1 - r < 4 ? r1 - r : 4);
        const int8_t *ar[4];
        for (int i = 0; i < 4; i++)
            ar[i] = j->a + (r + (i < ra ? i : 0)) * j->k;
        for (int64_t c = 0; c < j->cols; c += 2) {
            int cb = j->cols - c < 2 ? 1 : 2;
            const int8_t *br[2] = {j->b + c * j->k, j->b + (c + cb - 1) * j->k};
            int32_t acc[4][2];
#ifdef CPU_Q_AVX2
            if (avx) {
                dot_block(ar, ra, br, cb, j->k, acc);
            } else
#endif
            {
                (void)avx;
                for (int i = 0; i < ra; i++)
                    for (int q = 0; q < cb; q++)
                        acc[i][q] = dot_c(ar[i], br[q], j->k);
            }
            for (int i = 0; i < ra; i++)
                for (int q = 0; q < cb; q++) {
                    int64_t o = j->out_base + (r + i) * j->cols + c + q;
                    qepi_store(j->e, j->out, o, j->chan_rows ? r + i : c + q, acc[i][q]);
                }
        }
    }
}

static void qgemm_block_range(void *arg, int64_t b0, int64_t b1)
{
    qgemm_job *j = arg;
    int64_t r1 = b1 * 4 < j->rows ? b1 * 4 : j->rows;
    qgemm_rows(j, b0 * 4, r1);
}

#ifdef LOOM_HAVE_DNNL

typedef struct epi_job {
    const qgemm_job *j;
    const int32_t *acc;
} epi_job;

static void epi_rows(void *arg, int64_t r0, int64_t r1)
{
    const epi_job *e = arg;
    const qgemm_job *j = e->j;
    for (int64_t r = r0; r < r1; r++)
        for (int64_t c = 0; c < j->cols; c++)
            qepi_store(j->e, j->out, j->out_base + r * j->cols + c, j->chan_rows ? r : c, e->acc[r * j->cols + c]);
}
#endif

/* acc: room for rows x cols i32 (the oneDNN path's), or NULL */
static void run_qgemm(qgemm_job *j, int32_t *acc)
{
#ifdef LOOM_HAVE_DNNL
    if (acc && loom_cpu_dnnl_qgemm(j->a, j->b, j->rows, j->cols, j->k, acc)) {
        epi_job e = {j, acc};
        cpu_parallel_for(j->rows, j->rows * j->cols, epi_rows, &e);
        return;
    }
#else
    (void)acc;
#endif
    int64_t blocks = (j->rows + 3) / 4;
    cpu_parallel_for(blocks, blocks * 4 * j->cols * j->k, qgemm_block_range, j);
}

/* The i32 accumulators the oneDNN path needs, in floats: 0 without it. */
static size_t acc_floats(int64_t rows, int64_t cols)
{
#ifdef LOOM_HAVE_DNNL
    return loom_cpu_dnnl_int8_exact() ? (size_t)(rows * cols) : 0;
#else
    (void)rows, (void)cols;
    return 0;
#endif
}

static void k_qmatmul(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    qepi e = qepi_of(x, in);
    const loom_node *a = x->in[0]->node, *w = x->in[1]->node;
    qgemm_job j = {in[0], in[1], a->shape[0], w->shape[0], a->shape[1], &e, out, 0, 0};
    run_qgemm(&j, acc_floats(j.rows, j.cols) ? in[x->nin] : NULL);
    qepi_finish(&e, out, x->node->numel);
}

/* ---- the convolution -------------------------------------------------------- */

static loom_conv_geom qgeom_of(const loom_exec_node *x)
{
    const loom_node *ins[2] = {x->in[0]->node, x->in[1]->node};
    return loom_conv_geom_of(LOOM_CONV_FWD, x->node, ins);
}

#ifdef LOOM_HAVE_DNNL
/* oneDNN's convolution wants the padded input (bytes, rounded up to
 * floats) and every output's accumulator. */
static size_t dnnl_qconv_floats(const loom_conv_geom *g)
{
    loom_conv_geom p;
    loom_cpu_dnnl_qconv_padded(g, &p);
    return ((size_t)(p.n * p.c * p.h * p.w) + 3) / 4 + (size_t)(g->n * g->oc * g->oh * g->ow);
}
#endif

size_t loom_cpu_quant_workspace_floats(const loom_exec_node *x)
{
    if (x->def->family == LOOM_FAM_QMATMUL)
        return acc_floats(x->in[0]->node->shape[0], x->in[1]->node->shape[0]);
    if (x->def->family != LOOM_FAM_QCONV)
        return 0;
    loom_conv_geom g = qgeom_of(x);
    /* the i8 patches of every sample of one group, as floats, then one
     * sample's accumulators */
    size_t bytes = (size_t)(g.n * g.oh * g.ow * g.cg * g.kh * g.kw);
    size_t own = (bytes + 3) / 4 + acc_floats(g.ocg, g.oh * g.ow);
#ifdef LOOM_HAVE_DNNL
    size_t lib = loom_cpu_dnnl_int8_exact() ? dnnl_qconv_floats(&g) : 0;
    return lib > own ? lib : own;
#else
    return own;
#endif
}

typedef struct patch_job {
    const loom_conv_geom *g;
    const int8_t *x;
    int8_t *p;
    int64_t gi;
    int8_t pad;
} patch_job;

/* patches [N * OH * OW, CG * KH * KW] of group gi: one row per output
 * pixel, the window's values where it lies in the input, the input's zero
 * point in the padding. Pixels [p0, p1). */
static void patch_rows(void *arg, int64_t p0, int64_t p1)
{
    const patch_job *j = arg;
    const loom_conv_geom *g = j->g;
    int64_t ohw = g->oh * g->ow, kk = g->cg * g->kh * g->kw;
    for (int64_t p = p0; p < p1; p++) {
        int64_t n = p / ohw, oh = (p % ohw) / g->ow, ow = p % g->ow;
        int8_t *row = j->p + p * kk;
        for (int64_t c = 0; c < g->cg; c++) {
            const int8_t *plane = j->x + (n * g->c + j->gi * g->cg + c) * g->h * g->w;
            for (int64_t i = 0; i < g->kh; i++) {
                int64_t ih = oh * g->sh - g->pt + i * g->dh;
                for (int64_t q = 0; q < g->kw; q++) {
                    int64_t iw = ow * g->sw - g->pl + q * g->dw;
                    *row++ = ih >= 0 && ih < g->h && iw >= 0 && iw < g->w ? plane[ih * g->w + iw] : j->pad;
                }
            }
        }
    }
}

#ifdef LOOM_HAVE_DNNL
typedef struct qpad_job {
    const loom_conv_geom *g, *p;
    const int8_t *x;
    int8_t *y;
    int8_t zero;
    const int32_t *acc;
    const qepi *e;
    void *out;
} qpad_job;

/* planes [p0, p1) of the input into the padded one, the zero point around */
static void qpad_planes(void *arg, int64_t p0, int64_t p1)
{
    const qpad_job *j = arg;
    const loom_conv_geom *g = j->g, *p = j->p;
    for (int64_t q = p0; q < p1; q++) {
        int8_t *o = j->y + q * p->h * p->w;
        memset(o, (unsigned char)j->zero, (size_t)(p->h * p->w));
        for (int64_t h = 0; h < g->h; h++)
            memcpy(o + (h + g->pt) * p->w + g->pl, j->x + (q * g->h + h) * g->w, (size_t)g->w);
    }
}

/* output planes [p0, p1) from their accumulators */
static void qacc_planes(void *arg, int64_t p0, int64_t p1)
{
    const qpad_job *j = arg;
    int64_t ohw = j->g->oh * j->g->ow;
    for (int64_t q = p0; q < p1; q++)
        for (int64_t i = 0; i < ohw; i++)
            qepi_store(j->e, j->out, q * ohw + i, q % j->g->oc, j->acc[q * ohw + i]);
}

/* The convolution through oneDNN's s8 kernels (VNNI where the CPU has it);
 * 0 when it will not take it. */
static int qconv_dnnl(const loom_exec_node *x, const loom_conv_geom *g, const qepi *e, void *out, void *const *in)
{
    /* without VNNI no workspace was sized for it (and the padding below
     * would be wasted) */
    if (!loom_cpu_dnnl_int8_exact())
        return 0;
    loom_conv_geom p;
    loom_cpu_dnnl_qconv_padded(g, &p);
    int8_t *pad = in[x->nin];
    int32_t *acc = (int32_t *)in[x->nin] + ((size_t)(p.n * p.c * p.h * p.w) + 3) / 4;
    qpad_job j = {g, &p, in[0], pad, (int8_t)x->node->attr.qzero_in, acc, e, out};
    int same = p.h == g->h && p.w == g->w;
    if (!same)
        cpu_parallel_for(g->n * g->c, g->n * g->c * p.h * p.w, qpad_planes, &j);
    if (!loom_cpu_dnnl_qconv(&p, same ? (const int8_t *)in[0] : pad, in[1], acc))
        return 0;
    cpu_parallel_for(g->n * g->oc, x->node->numel, qacc_planes, &j);
    return 1;
}
#endif

static void k_qconv(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    (void)slot;
    loom_conv_geom g = qgeom_of(x);
    qepi e = qepi_of(x, in);
#ifdef LOOM_HAVE_DNNL
    if (qconv_dnnl(x, &g, &e, out, in)) {
        qepi_finish(&e, out, x->node->numel);
        return;
    }
#endif
    int8_t *patches = in[x->nin];
    int64_t ohw = g.oh * g.ow, kk = g.cg * g.kh * g.kw;
    int32_t *acc = acc_floats(g.ocg, ohw) ? (int32_t *)in[x->nin] + ((size_t)(g.n * ohw * kk) + 3) / 4 : NULL;
    const int8_t *w = in[1];
    for (int64_t gi = 0; gi < g.groups; gi++) {
        patch_job pj = {&g, in[0], patches, gi, (int8_t)x->node->attr.qzero_in};
        cpu_parallel_for(g.n * ohw, g.n * ohw * kk, patch_rows, &pj);
        for (int64_t n = 0; n < g.n; n++) {
            /* rows: this group's output channels; columns: the pixels */
            qgemm_job j = {w + gi * g.ocg * kk, patches + n * ohw * kk, g.ocg, ohw, kk, &e, out,
                           (n * g.oc + gi * g.ocg) * ohw, 1};
            /* the channel of row r is gi * OCG + r: offset the epilogue's */
            qepi eg = e;
            eg.bias = e.bias + gi * g.ocg;
            eg.mult = e.mult + gi * g.ocg;
            j.e = &eg;
            run_qgemm(&j, acc);
        }
    }
    qepi_finish(&e, out, x->node->numel);
}

/* The kernels of the int8 families (cpu_kernels.c's table points here). */
void loom_cpu_quant(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    k_quant(x, out, in, slot);
}

void loom_cpu_qmatmul(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    k_qmatmul(x, out, in, slot);
}

void loom_cpu_qconv(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    k_qconv(x, out, in, slot);
}
