/* loom's own GEMM (shaders/opencl/gemm.cl): the kernel that runs fused
 * matmuls (bias, activation, activation gradient) in one launch, in every
 * float dtype, and the small and skinny products of training where
 * CLBlast's launch-sized kernels lose (measured on PoCL: see
 * gemm_db.json). Its parameters are chosen per shape class; which GEMMs go
 * to it rather than CLBlast is a size per class (clblast_from), from the
 * database (cl_gemm_db.c) or `loom tune`. */
#include "cl_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

cl_gemm_class loom_cl_gemm_class_of(size_t m, size_t n, size_t k, int ta, int tb)
{
    if (tb)
        return LOOM_CLG_NT;
    if (ta)
        return LOOM_CLG_TN;
    size_t lo = m < n ? m : n, hi = m < n ? n : m;
    lo = k < lo ? k : lo;
    hi = k > hi ? k : hi;
    /* square-ish: every side large, none more than 4x another */
    return lo >= 256 && hi <= 4 * lo ? LOOM_CLG_SQUARE : LOOM_CLG_SKINNY;
}

const char *loom_cl_gemm_class_name(cl_gemm_class c)
{
    static const char *const names[LOOM_CLG_COUNT] = {"square", "skinny", "nt", "tn"};
    return (unsigned)c < LOOM_CLG_COUNT ? names[c] : "?";
}

static void dims_of(const loom_exec_node *x, size_t *m, size_t *n, size_t *k)
{
    const loom_node *nd = x->node, *na = x->in[0]->node;
    *m = (size_t)nd->shape[0];
    *n = (size_t)nd->shape[1];
    *k = (size_t)(nd->attr.ta ? na->shape[0] : na->shape[1]);
}

static int fused(const loom_node *nd)
{
    return nd->attr.bias || nd->attr.act != LOOM_OP_NONE || nd->attr.dact != LOOM_OP_NONE;
}

int loom_cl_gemm_own(const cl_dev *d, const loom_exec_node *x)
{
    const loom_node *nd = x->node;
    if (fused(nd) || d->route == LOOM_CLR_OWN)
        return 1;
    /* CLBlast runs half precision only as f16 with cl_khr_fp16: else it
     * would take 4 launches (widen, SGEMM, narrow) */
    if (nd->dtype == LOOM_BF16 || (nd->dtype == LOOM_F16 && !d->lim.fp16))
        return d->route != LOOM_CLR_CLBLAST;
    size_t m, n, k;
    dims_of(x, &m, &n, &k);
    return loom_cl_gemm_own_dims(d, m, n, k, nd->attr.ta, nd->attr.tb);
}

int loom_cl_gemm_own_dims(const cl_dev *d, size_t m, size_t n, size_t k, int ta, int tb)
{
    if (d->route == LOOM_CLR_OWN)
        return 1;
    if (d->route == LOOM_CLR_CLBLAST)
        return 0;
    const cl_gemm_choice *c = &d->choice[loom_cl_gemm_class_of(m, n, k, ta, tb)];
    return !(c->clblast_from && (uint64_t)m * n * k >= c->clblast_from);
}

/* ---- parameters ----------------------------------------------------------- */

void loom_cl_own_variant(const cl_own_params *p, loom_dtype dt, char *buf, size_t n)
{
    snprintf(buf, n, "-DGEMM_WX=%d -DGEMM_WY=%d -DGEMM_TM=%d -DGEMM_NV=%d -DGEMM_VW=%d -DGEMM_KB=%d%s", p->wx, p->wy,
             p->tm, p->nv, p->vw, p->kb, dt == LOOM_F16 ? " -DLOOM_F16" : dt == LOOM_BF16 ? " -DLOOM_BF16" : "");
}

#define NEED(cond, ...)                                                                                 \
    do {                                                                                                \
        if (!(cond))                                                                                    \
            return loom_fail(d->ctx, LOOM_E_INVALID, "%s: own GEMM parameters (%s): " __VA_ARGS__);    \
    } while (0)

loom_status loom_cl_own_check(cl_dev *d, const cl_own_params *p, const char *what)
{
    NEED(p->vw == 2 || p->vw == 4 || p->vw == 8 || p->vw == 16, "VW=%d must be 2, 4, 8 or 16", d->label, what, p->vw);
    NEED(p->wx >= 1 && p->wy >= 1 && p->wx <= 256 && p->wy <= 256, "WX=%d and WY=%d must be in [1, 256]", d->label,
         what, p->wx, p->wy);
    NEED((size_t)p->wx * (size_t)p->wy <= d->lim.max_wg, "WX*WY=%d items exceed the device's work-group limit of %zu",
         d->label, what, p->wx * p->wy, d->lim.max_wg);
    NEED(p->tm >= 1 && p->tm <= 16 && p->nv >= 1 && p->nv <= 8, "TM=%d must be in [1, 16] and NV=%d in [1, 8]",
         d->label, what, p->tm, p->nv);
    NEED(p->tm * p->nv * p->vw <= 512, "TM*NV*VW=%d accumulators per item exceed 512", d->label, what,
         p->tm * p->nv * p->vw);
    NEED(p->kb >= 1 && p->kb <= 1024, "KB=%d must be in [1, 1024]", d->label, what, p->kb);
    uint64_t local = (uint64_t)p->kb * (uint64_t)(p->wx * p->nv * p->vw) * 4;
    NEED(local <= d->lim.local_mem, "KB*WX*NV*VW floats need %llu bytes of local memory, the device has %llu",
         d->label, what, (unsigned long long)local, (unsigned long long)d->lim.local_mem);
    return LOOM_OK;
}

void loom_cl_own_default(const cl_dev *d, cl_gemm_choice choice[LOOM_CLG_COUNT])
{
    cl_device_type type = 0;
    clGetDeviceInfo(d->id, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    cl_gemm_choice c;
    memset(&c, 0, sizeof c);
    if (type & CL_DEVICE_TYPE_CPU) {
        /* A CPU driver (PoCL): a group is a loop in one thread; an item's
         * accumulators are registers of the native vector width. */
        cl_uint w = 0;
        clGetDeviceInfo(d->id, CL_DEVICE_NATIVE_VECTOR_WIDTH_FLOAT, sizeof w, &w, NULL);
        int vw = w >= 16 ? 16 : w >= 8 ? 8 : 4;
        c.own = (cl_own_params){1, 8, vw >= 16 ? 8 : 6, 2, vw, 128};
        c.clblast_from = 0;
    } else {
        /* GPUs: 16 x 16 items of 4 x 4; unfused GEMMs go to CLBlast, whose
         * own database covers the vendor GPUs */
        c.own = (cl_own_params){16, 16, 4, 1, 4, 16};
        c.clblast_from = 1;
    }
    while ((size_t)c.own.wx * (size_t)c.own.wy > d->lim.max_wg && c.own.wy > 1)
        c.own.wy /= 2;
    while ((size_t)c.own.wx * (size_t)c.own.wy > d->lim.max_wg && c.own.wx > 1)
        c.own.wx /= 2;
    while ((uint64_t)c.own.kb * (uint64_t)(c.own.wx * c.own.nv * c.own.vw) * 4 > d->lim.local_mem && c.own.kb > 1)
        c.own.kb /= 2;
    for (int i = 0; i < LOOM_CLG_COUNT; i++)
        choice[i] = c;
}

/* ---- JSON ------------------------------------------------------------------ */

static const char *const own_keys[6] = {"WX", "WY", "TM", "NV", "VW", "KB"};

static int *own_field(cl_own_params *p, int i)
{
    int *f[6] = {&p->wx, &p->wy, &p->tm, &p->nv, &p->vw, &p->kb};
    return f[i];
}

static loom_status parse_class(cl_dev *d, const cJSON *o, cl_gemm_choice *c, const char *what, const char *cls)
{
    if (!cJSON_IsObject(o))
        return loom_fail(d->ctx, LOOM_E_INVALID, "%s: own GEMM parameters (%s): \"%s\" is not an object", d->label,
                         what, cls);
    for (int i = 0; i < 6; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, own_keys[i]);
        if (!v)
            return loom_fail(d->ctx, LOOM_E_INVALID, "%s: own GEMM parameters (%s): \"%s\" lacks %s", d->label, what,
                             cls, own_keys[i]);
        if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 4096 || v->valuedouble != (int)v->valuedouble)
            return loom_fail(d->ctx, LOOM_E_INVALID,
                             "%s: own GEMM parameters (%s): \"%s\" %s is not an integer in [1, 4096]", d->label, what,
                             cls, own_keys[i]);
        *own_field(&c->own, i) = (int)v->valuedouble;
    }
    const cJSON *from = cJSON_GetObjectItemCaseSensitive(o, "clblast_from");
    c->clblast_from = 0;
    if (from && !cJSON_IsNull(from)) {
        if (!cJSON_IsNumber(from) || from->valuedouble < 0 || from->valuedouble > 1e18)
            return loom_fail(d->ctx, LOOM_E_INVALID,
                             "%s: own GEMM parameters (%s): \"%s\" clblast_from is not a size m*n*k (or 0: never)",
                             d->label, what, cls);
        c->clblast_from = (uint64_t)from->valuedouble;
    }
    char where[128];
    snprintf(where, sizeof where, "%s, %s", what, cls);
    return loom_cl_own_check(d, &c->own, where);
}

loom_status loom_cl_choice_parse(cl_dev *d, const cJSON *json, cl_gemm_choice out[LOOM_CLG_COUNT], const char *what)
{
    if (!cJSON_IsObject(json))
        return loom_fail(d->ctx, LOOM_E_INVALID, "%s: own GEMM parameters (%s): not an object of shape classes",
                         d->label, what);
    const cJSON *sq = cJSON_GetObjectItemCaseSensitive(json, "square");
    if (!sq)
        return loom_fail(d->ctx, LOOM_E_INVALID, "%s: own GEMM parameters (%s): no \"square\" class", d->label,
                         what);
    cl_gemm_choice c[LOOM_CLG_COUNT];
    LOOM_TRY(parse_class(d, sq, &c[LOOM_CLG_SQUARE], what, "square"));
    /* a class not given runs as square */
    for (int i = 1; i < LOOM_CLG_COUNT; i++) {
        const char *name = loom_cl_gemm_class_name((cl_gemm_class)i);
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(json, name);
        c[i] = c[LOOM_CLG_SQUARE];
        if (o)
            LOOM_TRY(parse_class(d, o, &c[i], what, name));
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, json)
    {
        int known = !strncmp(it->string, "_", 1);
        for (int i = 0; i < LOOM_CLG_COUNT; i++)
            known |= !strcmp(it->string, loom_cl_gemm_class_name((cl_gemm_class)i));
        if (!known)
            return loom_fail(d->ctx, LOOM_E_INVALID,
                             "%s: own GEMM parameters (%s): unknown shape class \"%s\" (square, skinny, nt, tn)",
                             d->label, what, it->string);
    }
    memcpy(out, c, sizeof c);
    return LOOM_OK;
}

void loom_cl_choice_json(const cl_gemm_choice c[LOOM_CLG_COUNT], cJSON *obj)
{
    cJSON *own = cJSON_AddObjectToObject(obj, "own");
    if (!own)
        return;
    for (int i = 0; i < LOOM_CLG_COUNT; i++) {
        cJSON *o = cJSON_AddObjectToObject(own, loom_cl_gemm_class_name((cl_gemm_class)i));
        if (!o)
            return;
        cl_own_params p = c[i].own;
        for (int f = 0; f < 6; f++)
            cJSON_AddNumberToObject(o, own_keys[f], *own_field(&p, f));
        cJSON_AddNumberToObject(o, "clblast_from", (double)c[i].clblast_from);
    }
}

/* ---- launches --------------------------------------------------------------- */

static cl_mem mem_of(const loom_exec_tensor *t)
{
    return loom_cl_block_mem(((const cl_buf *)t->mem.buf)->block);
}

static cl_uint elem_off(const loom_exec_tensor *t)
{
    uint64_t es = loom_dtype_size(t->node->dtype);
    uint64_t bytes = ((const cl_buf *)t->mem.buf)->offset + t->mem.offset;
    return (cl_uint)(bytes / es);
}

static loom_pc_gemm pc_of(size_t m, size_t n, size_t k, int ta, int tb, size_t lda, size_t ldb)
{
    loom_pc_gemm g;
    memset(&g, 0, sizeof g);
    g.m = (uint32_t)m;
    g.n = (uint32_t)n;
    g.k = (uint32_t)k;
    g.sam = ta ? 1u : (uint32_t)lda;
    g.sak = ta ? (uint32_t)lda : 1u;
    g.sbk = tb ? 1u : (uint32_t)ldb;
    g.sbn = tb ? (uint32_t)ldb : 1u;
    return g;
}

static void grid(const cl_own_params *p, size_t m, size_t n, size_t gws[2], size_t lws[2])
{
    size_t bm = (size_t)p->wy * p->tm, bn = (size_t)p->wx * p->nv * p->vw;
    lws[0] = (size_t)p->wx;
    lws[1] = (size_t)p->wy;
    gws[0] = (n + bn - 1) / bn * lws[0];
    gws[1] = (m + bm - 1) / bm * lws[1];
}

static loom_status kernel_for(cl_dev *d, const cl_own_params *p, loom_dtype dt, cl_kernel *out, const char *what)
{
    char variant[160];
    loom_cl_own_variant(p, dt, variant, sizeof variant);
    cl_program prog;
    LOOM_TRY(loom_cl_program(d, LOOM_CLP_GEMM, variant, &prog));
    cl_int e = CL_SUCCESS;
    *out = clCreateKernel(prog, "gemm", &e);
    if (e != CL_SUCCESS)
        return loom_cl_fail(d, e, "clCreateKernel", "kernel gemm (%s) for %s", variant, what);
    return LOOM_OK;
}

static cl_int set_args(cl_kernel k, cl_mem c, cl_uint co, cl_mem a, cl_uint ao, cl_mem b, cl_uint bo, cl_mem t,
                       cl_uint to, const loom_pc_gemm *g, cl_uint *bad)
{
    const void *v[9] = {&c, &co, &a, &ao, &b, &bo, &t, &to, g};
    size_t n[9] = {sizeof c, sizeof co, sizeof a, sizeof ao, sizeof b, sizeof bo, sizeof t, sizeof to, sizeof *g};
    for (cl_uint i = 0; i < 9; i++) {
        cl_int e = clSetKernelArg(k, i, n[i], v[i]);
        if (e != CL_SUCCESS) {
            *bad = i;
            return e;
        }
    }
    return CL_SUCCESS;
}

loom_status loom_cl_gemm_own_plan(cl_dev *d, const loom_exec_node *x, cl_launch *l)
{
    const loom_node *nd = x->node;
    size_t m, n, k;
    dims_of(x, &m, &n, &k);
    cl_gemm_class cls = loom_cl_gemm_class_of(m, n, k, nd->attr.ta, nd->attr.tb);
    const cl_own_params *p = &d->choice[cls].own;
    char what[160];
    snprintf(what, sizeof what, "matmul \"%s\" [%zu,%zu], k=%zu (%s)", nd->name, m, n, k,
             loom_cl_gemm_class_name(cls));
    LOOM_TRY(kernel_for(d, p, nd->dtype, &l->kernel, what));
    l->kind = LOOM_CLL_KERNEL;
    loom_pc_gemm g = pc_of(m, n, k, nd->attr.ta, nd->attr.tb, (size_t)x->in[0]->node->shape[1],
                           (size_t)x->in[1]->node->shape[1]);
    g.has_bias = (uint32_t)nd->attr.bias;
    g.epi = (uint32_t)loom_op_epilogue((loom_op)nd->attr.act);
    g.depi = (uint32_t)loom_op_epilogue((loom_op)nd->attr.dact);
    g.p1 = nd->attr.p1;
    g.p2 = nd->attr.p2;
    /* the third operand: the bias, or the activation's output; else C
     * itself, never read */
    const loom_exec_tensor *third = (nd->attr.bias || nd->attr.dact != LOOM_OP_NONE) ? x->in[2] : x->out;
    cl_uint bad = 0;
    cl_int e = set_args(l->kernel, mem_of(x->out), elem_off(x->out), mem_of(x->in[0]), elem_off(x->in[0]),
                        mem_of(x->in[1]), elem_off(x->in[1]), mem_of(third), elem_off(third), &g, &bad);
    if (e != CL_SUCCESS)
        return loom_cl_fail(d, e, "clSetKernelArg", "argument %u of kernel gemm for %s", bad, what);
    l->dims = 2;
    grid(p, m, n, l->gws, l->lws);
    return LOOM_OK;
}

loom_status loom_cl_own_launch(cl_dev *d, cl_launch *l, size_t m, size_t n, size_t k, int ta, int tb, cl_mem a,
                               cl_uint ao, size_t lda, cl_mem b, cl_uint bo, size_t ldb, cl_mem c, cl_uint co,
                               const char *name)
{
    cl_gemm_class cls = loom_cl_gemm_class_of(m, n, k, ta, tb);
    const cl_own_params *p = &d->choice[cls].own;
    char what[160];
    snprintf(what, sizeof what, "%s [%zu,%zu], k=%zu (%s)", name, m, n, k, loom_cl_gemm_class_name(cls));
    LOOM_TRY(kernel_for(d, p, LOOM_F32, &l->kernel, what));
    l->kind = LOOM_CLL_KERNEL;
    loom_pc_gemm g = pc_of(m, n, k, ta, tb, lda, ldb);
    cl_uint bad = 0;
    cl_int e = set_args(l->kernel, c, co, a, ao, b, bo, c, co, &g, &bad);
    if (e != CL_SUCCESS)
        return loom_cl_fail(d, e, "clSetKernelArg", "argument %u of kernel gemm for %s", bad, what);
    l->dims = 2;
    grid(p, m, n, l->gws, l->lws);
    return LOOM_OK;
}

loom_status loom_cl_own_run(cl_dev *d, const cl_own_params *p, size_t m, size_t n, size_t k, int ta, int tb, cl_mem a,
                            cl_mem b, cl_mem c, cl_event *ev)
{
    char what[96];
    snprintf(what, sizeof what, "a %zux%zux%zu GEMM%s%s", m, n, k, ta ? " A^T" : "", tb ? " B^T" : "");
    cl_kernel kr = NULL;
    LOOM_TRY(kernel_for(d, p, LOOM_F32, &kr, what));
    loom_pc_gemm g = pc_of(m, n, k, ta, tb, ta ? m : k, tb ? k : n);
    cl_uint bad = 0;
    cl_int e = set_args(kr, c, 0, a, 0, b, 0, c, 0, &g, &bad);
    if (e != CL_SUCCESS) {
        clReleaseKernel(kr);
        return loom_cl_fail(d, e, "clSetKernelArg", "argument %u of the own GEMM on %s", bad, what);
    }
    size_t gws[2], lws[2];
    grid(p, m, n, gws, lws);
    e = clEnqueueNDRangeKernel(d->queue, kr, 2, NULL, gws, lws, 0, NULL, ev);
    clReleaseKernel(kr);
    if (e != CL_SUCCESS)
        return loom_cl_fail(d, e, "clEnqueueNDRangeKernel", "own GEMM on %s", what);
    return LOOM_OK;
}

loom_status loom_cl_own_build_all(cl_dev *d, const cl_own_params *p, int n, loom_dtype dt, int *ok)
{
    char(*v)[160] = loom_calloc(d->ctx, (size_t)(n > 0 ? n : 1), sizeof *v);
    const char **vp = loom_calloc(d->ctx, (size_t)(n > 0 ? n : 1), sizeof *vp);
    loom_status s = LOOM_OK;
    if (!v || !vp) {
        s = loom_fail(d->ctx, LOOM_E_OOM, "%s: out of memory for %d GEMM builds", d->label, n);
    } else {
        for (int i = 0; i < n; i++) {
            loom_cl_own_variant(&p[i], dt, v[i], sizeof v[i]);
            vp[i] = v[i];
        }
        s = loom_cl_program_many(d, LOOM_CLP_GEMM, vp, n, ok);
    }
    loom_free(d->ctx, v, (size_t)(n > 0 ? n : 1) * sizeof *v);
    loom_free(d->ctx, vp, (size_t)(n > 0 ? n : 1) * sizeof *vp);
    return s;
}
