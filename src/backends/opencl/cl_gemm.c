/* GEMM through CLBlast, and the parameter sets loom gives it: checked
 * against the constraints of CLBlast's kernels, applied with
 * CLBlastOverrideParameters, stored as JSON per device and driver under
 * cache_dir/opencl and applied again at every open.
 *
 * CLBlast keeps parameters per process and cl_device_id: a set applied
 * through one loom device holds for every context of the process that uses
 * the same OpenCL device, and cannot be taken back (CLBlast's C API cannot
 * read its own defaults). */
#include "cl_internal.h"

#include <clblast_c.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FORMAT_TAG "loom opencl gemm parameters"

const char *const loom_cl_xgemm_names[LOOM_CL_XGEMM_NPARAMS] = {
    "GEMMK", "KREG", "KWG", "KWI", "MDIMA", "MDIMC", "MWG", "NDIMB",
    "NDIMC", "NWG", "SA", "SB", "STRM", "STRN", "VWM", "VWN"};
const char *const loom_cl_direct_names[LOOM_CL_DIRECT_NPARAMS] = {
    "KWID", "MDIMAD", "MDIMCD", "NDIMBD", "NDIMCD", "PADA", "PADB", "VWMD", "VWND", "WGD"};

enum { X_GEMMK, X_KREG, X_KWG, X_KWI, X_MDIMA, X_MDIMC, X_MWG, X_NDIMB, X_NDIMC, X_NWG, X_SA, X_SB, X_STRM, X_STRN,
       X_VWM, X_VWN };
enum { D_KWID, D_MDIMAD, D_MDIMCD, D_NDIMBD, D_NDIMCD, D_PADA, D_PADB, D_VWMD, D_VWND, D_WGD };

static CLBlastTranspose tr(int t)
{
    return t ? CLBlastTransposeYes : CLBlastTransposeNo;
}

loom_status loom_cl_gemm(cl_dev *d, const cl_gemm_call *g, cl_mem tmp, cl_event *ev, const char *what)
{
    CLBlastStatusCode s;
    if (g->half) {
        /* f16 operands on a device with cl_khr_fp16 (1.0 and 0.0 as halves) */
        const cl_half one = 0x3c00, zero = 0;
        s = tmp ? CLBlastHgemmWithTempBuffer(CLBlastLayoutRowMajor, tr(g->ta), tr(g->tb), g->m, g->n, g->k, one, g->a,
                                             g->ao, g->lda, g->b, g->bo, g->ldb, zero, g->c, g->co, g->ldc, &d->queue,
                                             ev, tmp)
                : CLBlastHgemm(CLBlastLayoutRowMajor, tr(g->ta), tr(g->tb), g->m, g->n, g->k, one, g->a, g->ao, g->lda,
                               g->b, g->bo, g->ldb, zero, g->c, g->co, g->ldc, &d->queue, ev);
        if (s != CLBlastSuccess)
            return loom_cl_fail(d, s, "CLBlastHgemm", "matmul \"%s\" [%zu,%zu], k=%zu", what, g->m, g->n, g->k);
        return LOOM_OK;
    }
    if (tmp)
        s = CLBlastSgemmWithTempBuffer(CLBlastLayoutRowMajor, tr(g->ta), tr(g->tb), g->m, g->n, g->k, 1.0f, g->a, g->ao,
                                       g->lda, g->b, g->bo, g->ldb, 0.0f, g->c, g->co, g->ldc, &d->queue, ev, tmp);
    else
        s = CLBlastSgemm(CLBlastLayoutRowMajor, tr(g->ta), tr(g->tb), g->m, g->n, g->k, 1.0f, g->a, g->ao, g->lda,
                         g->b, g->bo, g->ldb, 0.0f, g->c, g->co, g->ldc, &d->queue, ev);
    if (s != CLBlastSuccess)
        return loom_cl_fail(d, s, "CLBlastSgemm", "matmul \"%s\" [%zu,%zu] = %s[..] x %s[..], k=%zu, offsets %zu %zu %zu",
                            what, g->m, g->n, g->ta ? "A^T" : "A", g->tb ? "B^T" : "B", g->k, g->ao, g->bo, g->co);
    return LOOM_OK;
}

loom_status loom_cl_gemm_tmp_size(cl_dev *d, const cl_gemm_call *g, size_t *bytes, const char *what)
{
    size_t n = 0;
    CLBlastStatusCode s =
        g->half ? CLBlastHGemmTempBufferSize(CLBlastLayoutRowMajor, tr(g->ta), tr(g->tb), g->m, g->n, g->k, g->ao, g->lda,
                                             g->bo, g->ldb, g->co, g->ldc, &d->queue, &n)
                : CLBlastSGemmTempBufferSize(CLBlastLayoutRowMajor, tr(g->ta), tr(g->tb), g->m, g->n, g->k, g->ao, g->lda,
                                             g->bo, g->ldb, g->co, g->ldc, &d->queue, &n);
    if (s != CLBlastSuccess)
        return loom_cl_fail(d, s, "CLBlastSGemmTempBufferSize", "matmul \"%s\" [%zu,%zu], k=%zu", what, g->m, g->n,
                            g->k);
    *bytes = n;
    return LOOM_OK;
}

/* ---- constraints -------------------------------------------------------- */

static int pow2_vec(size_t v)
{
    return v == 1 || v == 2 || v == 4 || v == 8 || v == 16;
}

#define NEED(cond, ...)                                                                  \
    do {                                                                                 \
        if (!(cond))                                                                     \
            return loom_fail(d->ctx, LOOM_E_INVALID, "%s: GEMM parameters: " __VA_ARGS__); \
    } while (0)

static loom_status check_xgemm(cl_dev *d, const size_t *x)
{
    static const int positive[] = {X_KREG, X_KWG, X_KWI, X_MDIMA, X_MDIMC, X_MWG, X_NDIMB, X_NDIMC, X_NWG, X_VWM, X_VWN};
    for (size_t i = 0; i < sizeof positive / sizeof positive[0]; i++)
        NEED(x[positive[i]] > 0, "Xgemm %s must be positive", d->label, loom_cl_xgemm_names[positive[i]]);
    NEED(x[X_GEMMK] <= 1 && x[X_SA] <= 1 && x[X_SB] <= 1 && x[X_STRM] <= 1 && x[X_STRN] <= 1,
         "Xgemm GEMMK, SA, SB, STRM and STRN are 0 or 1", d->label);
    NEED(pow2_vec(x[X_VWM]) && pow2_vec(x[X_VWN]), "Xgemm VWM=%zu and VWN=%zu must be 1, 2, 4, 8 or 16", d->label,
         x[X_VWM], x[X_VWN]);
    NEED(x[X_KWG] % x[X_KWI] == 0, "Xgemm KWG=%zu is not a multiple of KWI=%zu", d->label, x[X_KWG], x[X_KWI]);
    NEED(x[X_MWG] % (x[X_MDIMC] * x[X_VWM]) == 0, "Xgemm MWG=%zu is not a multiple of MDIMC*VWM=%zu", d->label,
         x[X_MWG], x[X_MDIMC] * x[X_VWM]);
    NEED(x[X_NWG] % (x[X_NDIMC] * x[X_VWN]) == 0, "Xgemm NWG=%zu is not a multiple of NDIMC*VWN=%zu", d->label,
         x[X_NWG], x[X_NDIMC] * x[X_VWN]);
    NEED(x[X_MWG] % (x[X_MDIMA] * x[X_VWM]) == 0, "Xgemm MWG=%zu is not a multiple of MDIMA*VWM=%zu", d->label,
         x[X_MWG], x[X_MDIMA] * x[X_VWM]);
    NEED(x[X_NWG] % (x[X_NDIMB] * x[X_VWN]) == 0, "Xgemm NWG=%zu is not a multiple of NDIMB*VWN=%zu", d->label,
         x[X_NWG], x[X_NDIMB] * x[X_VWN]);
    size_t threads = x[X_MDIMC] * x[X_NDIMC];
    NEED(threads % x[X_MDIMA] == 0 && threads % x[X_NDIMB] == 0,
         "Xgemm MDIMC*NDIMC=%zu is not a multiple of MDIMA=%zu and NDIMB=%zu", d->label, threads, x[X_MDIMA],
         x[X_NDIMB]);
    NEED(x[X_KWG] % (threads / x[X_MDIMA]) == 0 && x[X_KWG] % (threads / x[X_NDIMB]) == 0,
         "Xgemm KWG=%zu is not a multiple of MDIMC*NDIMC/MDIMA=%zu and MDIMC*NDIMC/NDIMB=%zu", d->label, x[X_KWG],
         threads / x[X_MDIMA], threads / x[X_NDIMB]);
    NEED(x[X_GEMMK] == 0 || x[X_KREG] % x[X_VWN] == 0, "Xgemm KREG=%zu is not a multiple of VWN=%zu", d->label,
         x[X_KREG], x[X_VWN]);
    NEED(threads <= d->lim.max_wg, "Xgemm MDIMC*NDIMC=%zu threads exceed the device's work-group limit of %zu",
         d->label, threads, d->lim.max_wg);
    uint64_t local = (uint64_t)(x[X_SA] * x[X_KWG] * x[X_MWG] + x[X_SB] * x[X_KWG] * x[X_NWG]) * 4;
    NEED(local <= d->lim.local_mem, "Xgemm needs %llu bytes of local memory, the device has %llu", d->label,
         (unsigned long long)local, (unsigned long long)d->lim.local_mem);
    return LOOM_OK;
}

static loom_status check_direct(cl_dev *d, const size_t *x)
{
    static const int positive[] = {D_KWID, D_MDIMAD, D_MDIMCD, D_NDIMBD, D_NDIMCD, D_VWMD, D_VWND, D_WGD};
    for (size_t i = 0; i < sizeof positive / sizeof positive[0]; i++)
        NEED(x[positive[i]] > 0, "XgemmDirect %s must be positive", d->label, loom_cl_direct_names[positive[i]]);
    NEED(x[D_PADA] <= 1 && x[D_PADB] <= 1, "XgemmDirect PADA and PADB are 0 or 1", d->label);
    NEED(pow2_vec(x[D_VWMD]) && pow2_vec(x[D_VWND]), "XgemmDirect VWMD=%zu and VWND=%zu must be 1, 2, 4, 8 or 16",
         d->label, x[D_VWMD], x[D_VWND]);
    size_t w = x[D_WGD];
    NEED(w % x[D_KWID] == 0, "XgemmDirect WGD=%zu is not a multiple of KWID=%zu", d->label, w, x[D_KWID]);
    NEED(w % (x[D_MDIMCD] * x[D_VWMD]) == 0 && w % (x[D_NDIMCD] * x[D_VWND]) == 0,
         "XgemmDirect WGD=%zu is not a multiple of MDIMCD*VWMD=%zu and NDIMCD*VWND=%zu", d->label, w,
         x[D_MDIMCD] * x[D_VWMD], x[D_NDIMCD] * x[D_VWND]);
    NEED(w % (x[D_MDIMAD] * x[D_VWMD]) == 0 && w % (x[D_NDIMBD] * x[D_VWND]) == 0,
         "XgemmDirect WGD=%zu is not a multiple of MDIMAD*VWMD=%zu and NDIMBD*VWND=%zu", d->label, w,
         x[D_MDIMAD] * x[D_VWMD], x[D_NDIMBD] * x[D_VWND]);
    size_t threads = x[D_MDIMCD] * x[D_NDIMCD];
    NEED(threads % x[D_MDIMAD] == 0 && threads % x[D_NDIMBD] == 0 && w % (threads / x[D_MDIMAD]) == 0 &&
             w % (threads / x[D_NDIMBD]) == 0,
         "XgemmDirect WGD=%zu is not a multiple of MDIMCD*NDIMCD/MDIMAD and MDIMCD*NDIMCD/NDIMBD", d->label, w);
    NEED(threads <= d->lim.max_wg, "XgemmDirect MDIMCD*NDIMCD=%zu threads exceed the device's work-group limit of %zu",
         d->label, threads, d->lim.max_wg);
    uint64_t local = (uint64_t)(w * (w + x[D_PADA]) + w * (w + x[D_PADB])) * 4;
    NEED(local <= d->lim.local_mem, "XgemmDirect needs %llu bytes of local memory, the device has %llu", d->label,
         (unsigned long long)local, (unsigned long long)d->lim.local_mem);
    return LOOM_OK;
}

loom_status loom_cl_gemm_check(cl_dev *d, const cl_gemm_params *p)
{
    if (p->has_xgemm)
        LOOM_TRY(check_xgemm(d, p->xgemm));
    if (p->has_direct)
        LOOM_TRY(check_direct(d, p->direct));
    return LOOM_OK;
}

void loom_cl_gemm_safe(const cl_dev *d, cl_gemm_params *p)
{
    static const size_t x[LOOM_CL_XGEMM_NPARAMS] = {0, 1, 16, 2, 8, 8, 8, 8, 8, 8, 0, 0, 0, 0, 1, 1};
    static const size_t dr[LOOM_CL_DIRECT_NPARAMS] = {2, 8, 8, 8, 8, 0, 0, 1, 1, 8};
    memset(p, 0, sizeof *p);
    p->has_xgemm = p->has_direct = 1;
    memcpy(p->xgemm, x, sizeof x);
    memcpy(p->direct, dr, sizeof dr);
    /* 64 threads fit every device loom runs on; smaller limits get 1x1. */
    if (d->lim.max_wg < 64) {
        p->xgemm[X_MDIMA] = p->xgemm[X_MDIMC] = p->xgemm[X_NDIMB] = p->xgemm[X_NDIMC] = 1;
        p->direct[D_MDIMAD] = p->direct[D_MDIMCD] = p->direct[D_NDIMBD] = p->direct[D_NDIMCD] = 1;
    }
}

/* ---- applying ----------------------------------------------------------- */

static loom_status override(cl_dev *d, const char *kernel, size_t n, const char *const *names, const size_t *values)
{
    CLBlastStatusCode s = CLBlastOverrideParameters(d->id, kernel, CLBlastPrecisionSingle, n, (const char **)names,
                                                    values);
    if (s != CLBlastSuccess)
        return loom_cl_fail(d, s, "CLBlastOverrideParameters", "kernel %s", kernel);
    return LOOM_OK;
}

loom_status loom_cl_gemm_apply(cl_dev *d, const cl_gemm_params *p)
{
    LOOM_TRY(loom_cl_gemm_check(d, p));
    if (!d->gemm) {
        d->gemm = loom_calloc(d->ctx, 1, sizeof *d->gemm);
        if (!d->gemm)
            return loom_fail(d->ctx, LOOM_E_OOM, "%s: out of memory", d->label);
    }
    if (p->has_xgemm) {
        LOOM_TRY(override(d, "Xgemm", LOOM_CL_XGEMM_NPARAMS, loom_cl_xgemm_names, p->xgemm));
        d->gemm->has_xgemm = 1;
        memcpy(d->gemm->xgemm, p->xgemm, sizeof p->xgemm);
    }
    if (p->has_direct) {
        LOOM_TRY(override(d, "XgemmDirect", LOOM_CL_DIRECT_NPARAMS, loom_cl_direct_names, p->direct));
        d->gemm->has_direct = 1;
        memcpy(d->gemm->direct, p->direct, sizeof p->direct);
    }
    if (p->has_routine) {
        const char *name = "XGEMM_MIN_INDIRECT_SIZE";
        LOOM_TRY(override(d, "GemmRoutine", 1, &name, &p->min_indirect));
        d->gemm->has_routine = 1;
        d->gemm->min_indirect = p->min_indirect;
    }
    d->gemm_generation++;
    return LOOM_OK;
}

/* ---- JSON --------------------------------------------------------------- */

static loom_status parse_section(cl_dev *d, const cJSON *root, const char *key, size_t n, const char *const *names,
                                 size_t *values, int *has)
{
    const cJSON *sec = cJSON_GetObjectItemCaseSensitive(root, key);
    *has = 0;
    if (!sec || cJSON_IsNull(sec))
        return LOOM_OK;
    if (!cJSON_IsObject(sec))
        return loom_fail(d->ctx, LOOM_E_FORMAT, "%s: GEMM parameters: \"%s\" is not an object", d->label, key);
    for (size_t i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(sec, names[i]);
        if (!v)
            return loom_fail(d->ctx, LOOM_E_INVALID, "%s: GEMM parameters: %s lacks %s", d->label, key, names[i]);
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 65536 ||
            v->valuedouble != floor(v->valuedouble))
            return loom_fail(d->ctx, LOOM_E_INVALID, "%s: GEMM parameters: %s %s is not an integer in [0, 65536]",
                             d->label, key, names[i]);
        values[i] = (size_t)v->valuedouble;
    }
    *has = 1;
    return LOOM_OK;
}

loom_status loom_cl_gemm_parse(cl_dev *d, const char *json, cl_gemm_params *p, int *use_default,
                              cl_gemm_choice *choice, int *has_own)
{
    memset(p, 0, sizeof *p);
    *use_default = 0;
    if (has_own)
        *has_own = 0;
    cJSON *root = cJSON_Parse(json);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return loom_fail(d->ctx, LOOM_E_FORMAT, "%s: GEMM parameters: not a JSON object", d->label);
    }
    loom_status s = LOOM_OK;
    const cJSON *tag = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *dev = cJSON_GetObjectItemCaseSensitive(root, "device");
    const cJSON *drv = cJSON_GetObjectItemCaseSensitive(root, "driver");
    if (tag && (!cJSON_IsString(tag) || strcmp(tag->valuestring, FORMAT_TAG) != 0)) {
        s = loom_fail(d->ctx, LOOM_E_FORMAT, "%s: GEMM parameters: format is not \"%s\"", d->label, FORMAT_TAG);
        goto out;
    }
    if ((dev && (!cJSON_IsString(dev) || strcmp(dev->valuestring, d->lim.name) != 0)) ||
        (drv && (!cJSON_IsString(drv) || strcmp(drv->valuestring, d->lim.driver) != 0))) {
        s = loom_fail(d->ctx, LOOM_E_INVALID, "%s: GEMM parameters were tuned for \"%s\" (driver %s), not this "
                      "device (driver %s)", d->label, cJSON_IsString(dev) ? dev->valuestring : "?",
                      cJSON_IsString(drv) ? drv->valuestring : "?", d->lim.driver);
        goto out;
    }
    /* loom's own kernel, per shape class (the stored form of loom tune) */
    const cJSON *own = cJSON_GetObjectItemCaseSensitive(root, "own");
    int got_own = 0;
    if (own && choice) {
        if ((s = loom_cl_choice_parse(d, own, choice, "stored")) != LOOM_OK)
            goto out;
        got_own = 1;
        if (has_own)
            *has_own = 1;
    }
    const cJSON *def = cJSON_GetObjectItemCaseSensitive(root, "use_default");
    if (cJSON_IsTrue(def)) {
        *use_default = 1;
        goto out;
    }
    if ((s = parse_section(d, root, "Xgemm", LOOM_CL_XGEMM_NPARAMS, loom_cl_xgemm_names, p->xgemm, &p->has_xgemm)) !=
            LOOM_OK ||
        (s = parse_section(d, root, "XgemmDirect", LOOM_CL_DIRECT_NPARAMS, loom_cl_direct_names, p->direct,
                           &p->has_direct)) != LOOM_OK)
        goto out;
    static const char *const routine_names[1] = {"XGEMM_MIN_INDIRECT_SIZE"};
    if ((s = parse_section(d, root, "GemmRoutine", 1, routine_names, &p->min_indirect, &p->has_routine)) != LOOM_OK)
        goto out;
    if (!p->has_xgemm && !p->has_direct && !p->has_routine && !got_own)
        s = loom_fail(d->ctx, LOOM_E_INVALID,
                      "%s: GEMM parameters: none of Xgemm, XgemmDirect, GemmRoutine, own (or use_default) given", d->label);
out:
    cJSON_Delete(root);
    return s;
}

static void add_section(cJSON *root, const char *key, size_t n, const char *const *names, const size_t *values)
{
    cJSON *sec = cJSON_AddObjectToObject(root, key);
    if (sec)
        for (size_t i = 0; i < n; i++)
            cJSON_AddNumberToObject(sec, names[i], (double)values[i]);
}

loom_status loom_cl_gemm_json(cl_dev *d, const cl_gemm_params *p, const cl_gemm_choice *choice, double gflops,
                              double baseline, int size, char **out)
{
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return loom_fail(d->ctx, LOOM_E_OOM, "%s: out of memory", d->label);
    cJSON_AddStringToObject(root, "format", FORMAT_TAG);
    cJSON_AddStringToObject(root, "device", d->lim.name);
    cJSON_AddStringToObject(root, "driver", d->lim.driver);
    cJSON_AddStringToObject(root, "platform", d->lim.platform);
    if (!p || (!p->has_xgemm && !p->has_direct && !p->has_routine)) {
        cJSON_AddTrueToObject(root, "use_default");
    } else {
        if (p->has_xgemm)
            add_section(root, "Xgemm", LOOM_CL_XGEMM_NPARAMS, loom_cl_xgemm_names, p->xgemm);
        if (p->has_direct)
            add_section(root, "XgemmDirect", LOOM_CL_DIRECT_NPARAMS, loom_cl_direct_names, p->direct);
        if (p->has_routine) {
            const char *name = "XGEMM_MIN_INDIRECT_SIZE";
            add_section(root, "GemmRoutine", 1, &name, &p->min_indirect);
        }
    }
    if (choice)
        loom_cl_choice_json(choice, root);
    if (size > 0) {
        cJSON_AddNumberToObject(root, "size", size);
        cJSON_AddNumberToObject(root, "gflops", round(gflops * 100) / 100);
        cJSON_AddNumberToObject(root, "baseline_gflops", round(baseline * 100) / 100);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return loom_fail(d->ctx, LOOM_E_OOM, "%s: out of memory", d->label);
    *out = text; /* freed with cJSON_free */
    return LOOM_OK;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

void loom_cl_gemm_store_path(const cl_dev *d, char *path, size_t n)
{
    char key[800];
    snprintf(key, sizeof key, "%s\n%s\n%s", d->lim.platform, d->lim.name, d->lim.driver);
    snprintf(path, n, "%s/opencl/clblast-%016llx.json", d->ctx->cache_dir, (unsigned long long)fnv1a(key));
}

static char *read_text(cl_dev *d, const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        len = ftell(f);
    if (len >= 0 && len < (1 << 20) && fseek(f, 0, SEEK_SET) == 0) {
        buf = loom_malloc(d->ctx, (size_t)len + 1);
        if (buf && fread(buf, 1, (size_t)len, f) == (size_t)len) {
            buf[len] = 0;
        } else {
            loom_free(d->ctx, buf, (size_t)len + 1);
            buf = NULL;
        }
    }
    fclose(f);
    if (buf)
        *n = (size_t)len + 1;
    return buf;
}

void loom_cl_gemm_load_stored(cl_dev *d)
{
    char path[1100];
    loom_cl_gemm_store_path(d, path, sizeof path);
    size_t n = 0;
    char *text = read_text(d, path, &n);
    if (!text)
        return;
    cl_gemm_params p;
    cl_gemm_choice choice[LOOM_CLG_COUNT];
    int use_default = 0, has_own = 0;
    loom_status s = loom_cl_gemm_parse(d, text, &p, &use_default, choice, &has_own);
    loom_free(d->ctx, text, n);
    if (s == LOOM_OK && !use_default && (p.has_xgemm || p.has_direct || p.has_routine))
        s = loom_cl_gemm_apply(d, &p);
    if (s == LOOM_OK && has_own)
        memcpy(d->choice, choice, sizeof choice);
    if (s != LOOM_OK) {
        loom_logf(d->ctx, LOOM_LOG_WARN, "%s: ignoring the stored GEMM parameters %s: %s", d->label, path,
                  loom_last_error(d->ctx));
        loom_clear_error(d->ctx);
        return;
    }
    snprintf(d->gemm_source, sizeof d->gemm_source, "%s", path);
    loom_logf(d->ctx, LOOM_LOG_INFO, "%s: GEMM parameters from %s%s", d->label, path,
              use_default ? " (CLBlast's own measured faster)" : "");
}

/* ---- verification ------------------------------------------------------- */

static float det(uint64_t i, uint32_t salt)
{
    uint32_t h = loom_rng_hash((uint32_t)i * 0x9e3779b9U ^ loom_rng_hash(salt));
    return (float)(h >> 8) * (2.0f / 16777216.0f) - 1.0f;
}

loom_status loom_cl_gemm_verify(cl_dev *d, const cl_own_params *own, size_t m, size_t n, size_t k, int ta, int tb,
                                const char *what)
{
    /* Non-zero offsets, as loom's sub-allocated tensors have (CLBlast:
     * the own kernel is given them by the arena). */
    size_t ao = own ? 0 : 5, bo = own ? 0 : 7, co = own ? 0 : 3;
    size_t na = m * k + ao, nb = k * n + bo, nc = m * n + co;
    float *a = loom_malloc(d->ctx, na * sizeof *a), *b = loom_malloc(d->ctx, nb * sizeof *b);
    float *c = loom_malloc(d->ctx, nc * sizeof *c);
    cl_mem ma = NULL, mb = NULL, mc = NULL;
    loom_status s = LOOM_OK;
    if (!a || !b || !c) {
        s = loom_fail(d->ctx, LOOM_E_OOM, "%s: out of memory verifying GEMM parameters", d->label);
        goto out;
    }
    for (size_t i = 0; i < na; i++)
        a[i] = det(i, 1);
    for (size_t i = 0; i < nb; i++)
        b[i] = det(i, 2);
    cl_int e = CL_SUCCESS;
    ma = clCreateBuffer(d->context, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, na * 4, a, &e);
    if (e == CL_SUCCESS)
        mb = clCreateBuffer(d->context, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, nb * 4, b, &e);
    if (e == CL_SUCCESS)
        mc = clCreateBuffer(d->context, CL_MEM_READ_WRITE, nc * 4, NULL, &e);
    if (e != CL_SUCCESS) {
        s = loom_cl_fail(d, e, "clCreateBuffer", "verifying GEMM parameters (%s)", what);
        goto out;
    }
    cl_gemm_call g = {ta, tb, 0, m, n, k, ma, mb, mc, ao, bo, co, ta ? m : k, tb ? k : n, n};
    if ((s = own ? loom_cl_own_run(d, own, m, n, k, ta, tb, ma, mb, mc, NULL) : loom_cl_gemm(d, &g, NULL, NULL, what)) !=
        LOOM_OK)
        goto out;
    e = clEnqueueReadBuffer(d->queue, mc, CL_TRUE, 0, nc * 4, c, 0, NULL, NULL);
    if (e != CL_SUCCESS) {
        s = loom_cl_fail(d, e, "clEnqueueReadBuffer", "verifying GEMM parameters (%s)", what);
        goto out;
    }
    /* Every entry of small results; else the corners and a spread. */
    size_t checks = m * n <= 4096 ? m * n : 600;
    for (size_t t = 0; t < checks; t++) {
        size_t i, j;
        if (m * n <= 4096) {
            i = t / n, j = t % n;
        } else if (t < 4) {
            i = (t & 1) ? m - 1 : 0, j = (t & 2) ? n - 1 : 0;
        } else {
            uint32_t h = loom_rng_hash((uint32_t)t);
            i = h % m, j = loom_rng_hash(h) % n;
        }
        double ref = 0, mag = 0;
        for (size_t p = 0; p < k; p++) {
            double x = a[ao + (ta ? p * m + i : i * k + p)], y = b[bo + (tb ? j * k + p : p * n + j)];
            ref += x * y;
            mag += fabs(x * y);
        }
        double got = c[co + i * n + j];
        if (!(fabs(got - ref) <= 1e-5 * mag + 1e-6)) {
            s = loom_fail(d->ctx, LOOM_E_DEVICE,
                          "%s: %s GEMM parameters give wrong results (%s, %zux%zux%zu%s%s): C[%zu,%zu] = %g, "
                          "expected %g",
                          d->label, own ? "own" : "CLBlast", what, m, n, k, ta ? " A^T" : "", tb ? " B^T" : "", i, j, got, ref);
            goto out;
        }
    }
out:
    if (ma)
        clReleaseMemObject(ma);
    if (mb)
        clReleaseMemObject(mb);
    if (mc)
        clReleaseMemObject(mc);
    loom_free(d->ctx, a, na * sizeof *a);
    loom_free(d->ctx, b, nb * sizeof *b);
    loom_free(d->ctx, c, nc * sizeof *c);
    return s;
}

/* ---- the backend's tuning slots ----------------------------------------- */

loom_status loom_cl_get_tuning(void *bdev, char *buf, size_t n)
{
    cl_dev *d = bdev;
    char *text = NULL;
    LOOM_TRY(loom_cl_gemm_json(d, d->gemm, d->choice, 0, 0, 0, &text));
    size_t len = strlen(text);
    loom_status s = LOOM_OK;
    if (len + 1 > n)
        s = loom_fail(d->ctx, LOOM_E_RANGE, "%s: the GEMM parameters need %zu bytes, the buffer has %zu", d->label,
                      len + 1, n);
    else
        memcpy(buf, text, len + 1);
    cJSON_free(text);
    return s;
}

loom_status loom_cl_set_tuning(void *bdev, const char *json)
{
    cl_dev *d = bdev;
    char path[1100];
    size_t n = 0;
    char *text = NULL;
    int from_file = !json;
    if (from_file) {
        loom_cl_gemm_store_path(d, path, sizeof path);
        text = read_text(d, path, &n);
        if (!text)
            return loom_fail(d->ctx, LOOM_E_IO, "%s: no stored GEMM parameters at %s (run loom tune)", d->label, path);
        json = text;
    }
    cl_gemm_params p;
    cl_gemm_choice choice[LOOM_CLG_COUNT];
    int use_default = 0, has_own = 0;
    loom_status s = loom_cl_gemm_parse(d, json, &p, &use_default, choice, &has_own);
    loom_free(d->ctx, text, n);
    LOOM_TRY(s);
    if (has_own) {
        /* each class's kernel against the host before any is used */
        for (int c = 0; c < LOOM_CLG_COUNT; c++) {
            int ta = c == LOOM_CLG_TN, tb = c == LOOM_CLG_NT;
            LOOM_TRY(loom_cl_gemm_verify(d, &choice[c].own, 37, 29, 41, ta, tb, loom_cl_gemm_class_name((cl_gemm_class)c)));
        }
        memcpy(d->choice, choice, sizeof choice);
        snprintf(d->gemm_source, sizeof d->gemm_source, "%s", from_file ? path : "loom_device_set_tuning");
    }
    if (use_default || !(p.has_xgemm || p.has_direct || p.has_routine))
        return LOOM_OK; /* CLBlast's own set is what runs unless overridden */
    LOOM_TRY(loom_cl_gemm_check(d, &p));
    cl_gemm_params before;
    int had = d->gemm != NULL;
    if (had)
        before = *d->gemm;
    s = loom_cl_gemm_apply(d, &p);
    /* Both of CLBlast's paths: small sizes go to XgemmDirect, large ones to
     * Xgemm (unless the set moves the boundary). */
    size_t big = p.has_routine ? (p.min_indirect > 16 ? p.min_indirect : 16) + 3 : 899;
    if (s == LOOM_OK)
        s = loom_cl_gemm_verify(d, NULL, 29, 33, 17, 0, 1, "direct-size check");
    if (s == LOOM_OK)
        s = loom_cl_gemm_verify(d, NULL, big, big - 2, big + 1, 1, 0, "indirect-size check");
    if (s == LOOM_OK) {
        snprintf(d->gemm_source, sizeof d->gemm_source, "%s", from_file ? path : "loom_device_set_tuning");
        return LOOM_OK;
    }
    /* Back to a set known to work: the previous one, else the safe one. */
    char msg[LOOM_ERRMSG];
    snprintf(msg, sizeof msg, "%s", loom_last_error(d->ctx));
    cl_gemm_params back;
    if (had)
        back = before;
    else
        loom_cl_gemm_safe(d, &back);
    loom_status r = loom_cl_gemm_apply(d, &back);
    return loom_fail(d->ctx, s, "%s (%s the %s parameters)", msg, r == LOOM_OK ? "restored" : "could not restore",
                     had ? "previous" : "safe default");
}
