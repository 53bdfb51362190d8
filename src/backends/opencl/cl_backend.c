/* The OpenCL backend: platforms, devices and their limits, one context and
 * one in-order queue per opened device, and the ops table. */
#include "cl_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The recording (cl_record.c). */
loom_status loom_cl_prepare(void *bdev, const loom_exec_program *prog, void **out);
loom_status loom_cl_run(void *bprog, const loom_run_args *args);
loom_status loom_cl_submit(void *bprog, const loom_run_args *args, void **fence);
loom_status loom_cl_wait(void *bprog, void *fence);
void loom_cl_release(void *bprog);
loom_status loom_cl_timestamps(void *bprog, double *t0, double *t1, int n);

#define MAX_DEVICES 64

typedef struct cl_state {
    loom_ctx *ctx;
    int ndev;
    cl_platform_id *plats;     /* per device */
    cl_device_id *ids;
    loom_device_info *info;
} cl_state;

static void str_info(cl_device_id d, cl_device_info what, char *buf, size_t n)
{
    if (clGetDeviceInfo(d, what, n, buf, NULL) != CL_SUCCESS)
        buf[0] = 0;
    buf[n - 1] = 0;
}

void loom_cl_read_limits(cl_platform_id p, cl_device_id id, cl_limits *lim)
{
    memset(lim, 0, sizeof *lim);
    char pname[128] = "", pver[128] = "";
    clGetPlatformInfo(p, CL_PLATFORM_NAME, sizeof pname, pname, NULL);
    clGetPlatformInfo(p, CL_PLATFORM_VERSION, sizeof pver, pver, NULL);
    pname[sizeof pname - 1] = pver[sizeof pver - 1] = 0;
    snprintf(lim->platform, sizeof lim->platform, "%s / %s", pname, pver);
    int major = 1, minor = 2;
    if (sscanf(pver, "OpenCL %d.%d", &major, &minor) != 2)
        major = 1, minor = 2;
    lim->version = major * 10 + minor;
    str_info(id, CL_DEVICE_NAME, lim->name, sizeof lim->name);
    str_info(id, CL_DEVICE_VENDOR, lim->vendor, sizeof lim->vendor);
    str_info(id, CL_DRIVER_VERSION, lim->driver, sizeof lim->driver);
    cl_ulong maxalloc = 0, local = 0, mem = 0;
    cl_uint align_bits = 0;
    size_t wg = 0;
    clGetDeviceInfo(id, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof maxalloc, &maxalloc, NULL);
    clGetDeviceInfo(id, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof mem, &mem, NULL);
    clGetDeviceInfo(id, CL_DEVICE_LOCAL_MEM_SIZE, sizeof local, &local, NULL);
    clGetDeviceInfo(id, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof align_bits, &align_bits, NULL);
    clGetDeviceInfo(id, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
    lim->max_alloc = maxalloc;
    lim->global_mem = mem;
    lim->local_mem = local;
    /* At least 16 bytes: float4 loads never straddle a tensor's start. */
    lim->align = align_bits / 8 > 16 ? align_bits / 8 : 16;
    lim->max_wg = wg ? wg : 1;
    cl_device_fp_config fp = 0;
    clGetDeviceInfo(id, CL_DEVICE_SINGLE_FP_CONFIG, sizeof fp, &fp, NULL);
    lim->exact_div_sqrt = (fp & CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT) != 0;
    cl_device_fp_config fp64 = 0;
    clGetDeviceInfo(id, CL_DEVICE_DOUBLE_FP_CONFIG, sizeof fp64, &fp64, NULL);
    lim->fp64 = fp64 != 0;
    size_t n = 0;
    if (clGetDeviceInfo(id, CL_DEVICE_EXTENSIONS, 0, NULL, &n) == CL_SUCCESS && n) {
        char *ext = malloc(n + 1);
        if (ext && clGetDeviceInfo(id, CL_DEVICE_EXTENSIONS, n, ext, NULL) == CL_SUCCESS) {
            ext[n] = 0;
            lim->fp16 = strstr(ext, "cl_khr_fp16") != NULL;
        }
        free(ext);
    }
}

static void fill_info(cl_platform_id p, cl_device_id id, loom_device_info *d)
{
    cl_limits lim;
    loom_cl_read_limits(p, id, &lim);
    char ver[128];
    cl_device_type type = 0;
    cl_uint cus = 0, vendor = 0;
    str_info(id, CL_DEVICE_VERSION, ver, sizeof ver);
    clGetDeviceInfo(id, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    clGetDeviceInfo(id, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cus, &cus, NULL);
    clGetDeviceInfo(id, CL_DEVICE_VENDOR_ID, sizeof vendor, &vendor, NULL);
    snprintf(d->name, sizeof d->name, "%s", lim.name);
    snprintf(d->vendor, sizeof d->vendor, "%.63s", lim.vendor);
    snprintf(d->driver, sizeof d->driver, "%s", lim.driver);
    snprintf(d->api_version, sizeof d->api_version, "%s", ver);
    d->vendor_id = vendor;
    d->type = (type & CL_DEVICE_TYPE_GPU) ? LOOM_DEVICE_DISCRETE
              : (type & CL_DEVICE_TYPE_CPU) ? LOOM_DEVICE_CPU : LOOM_DEVICE_OTHER;
    cl_bool unified = CL_FALSE;
    clGetDeviceInfo(id, CL_DEVICE_HOST_UNIFIED_MEMORY, sizeof unified, &unified, NULL);
    if ((type & CL_DEVICE_TYPE_GPU) && unified)
        d->type = LOOM_DEVICE_INTEGRATED;
    d->memory_bytes = lim.global_mem;
    /* Kernels index with 32-bit element offsets (and 8 per item): 8 GiB
     * per block at most. */
    uint64_t cap = (uint64_t)1 << 33;
    d->max_alloc_bytes = lim.max_alloc < cap ? lim.max_alloc : cap;
    d->max_binding_bytes = d->max_alloc_bytes;
    d->alignment = lim.align;
    d->subgroup_size = 1;
    d->max_workgroup_size = (uint32_t)lim.max_wg;
    d->compute_units = cus;
    d->shared_memory_bytes = lim.local_mem;
    d->fp16 = lim.fp16;
    d->int8 = 1;
    /* A stable identity: cl_khr_device_uuid where offered; otherwise the
     * spec (opencl:N) and the name serve. */
#ifdef CL_DEVICE_UUID_KHR
    unsigned char uuid[16];
    if (clGetDeviceInfo(id, CL_DEVICE_UUID_KHR, sizeof uuid, uuid, NULL) == CL_SUCCESS)
        for (int i = 0; i < 16; i++)
            snprintf(d->uuid + 2 * i, 3, "%02x", uuid[i]);
#endif
    d->can_run = 1;
}

static loom_status cl_init(loom_ctx *ctx, void **bstate)
{
    *bstate = NULL;
    cl_uint np = 0;
    cl_int e = clGetPlatformIDs(0, NULL, &np);
    if (e != CL_SUCCESS || np == 0)
        return loom_fail(ctx, LOOM_E_DEVICE, "clGetPlatformIDs: no OpenCL platform (%s)", loom_cl_errname(e));
    cl_platform_id plats[16];
    if (np > 16)
        np = 16;
    clGetPlatformIDs(np, plats, NULL);
    cl_state *s = loom_calloc(ctx, 1, sizeof *s);
    if (!s)
        return loom_fail(ctx, LOOM_E_OOM, "opencl: out of memory");
    s->ctx = ctx;
    cl_device_id ids[MAX_DEVICES];
    cl_platform_id owner[MAX_DEVICES];
    int n = 0;
    for (cl_uint p = 0; p < np && n < MAX_DEVICES; p++) {
        cl_uint nd = 0;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, (cl_uint)(MAX_DEVICES - n), ids + n, &nd) != CL_SUCCESS)
            continue;
        int got = (int)nd > MAX_DEVICES - n ? MAX_DEVICES - n : (int)nd;
        for (int i = 0; i < got; i++)
            owner[n + i] = plats[p];
        n += got;
    }
    s->ndev = n;
    if (n) {
        s->ids = loom_calloc(ctx, (size_t)n, sizeof *s->ids);
        s->plats = loom_calloc(ctx, (size_t)n, sizeof *s->plats);
        s->info = loom_calloc(ctx, (size_t)n, sizeof *s->info);
        if (!s->ids || !s->info || !s->plats) {
            loom_free(ctx, s->ids, (size_t)n * sizeof *s->ids);
            loom_free(ctx, s->plats, (size_t)n * sizeof *s->plats);
            loom_free(ctx, s->info, (size_t)n * sizeof *s->info);
            loom_free(ctx, s, sizeof *s);
            return loom_fail(ctx, LOOM_E_OOM, "opencl: out of memory");
        }
        memcpy(s->ids, ids, (size_t)n * sizeof *ids);
        memcpy(s->plats, owner, (size_t)n * sizeof *owner);
        for (int i = 0; i < n; i++)
            fill_info(owner[i], ids[i], &s->info[i]);
    }
    *bstate = s;
    return LOOM_OK;
}

static void cl_shutdown(void *bs)
{
    cl_state *s = bs;
    loom_free(s->ctx, s->ids, (size_t)s->ndev * sizeof *s->ids);
    loom_free(s->ctx, s->plats, (size_t)s->ndev * sizeof *s->plats);
    loom_free(s->ctx, s->info, (size_t)s->ndev * sizeof *s->info);
    loom_free(s->ctx, s, sizeof *s);
}

static int cl_device_count(void *bs)
{
    return ((cl_state *)bs)->ndev;
}

static loom_status cl_device_info_get(void *bs, int i, loom_device_info *info)
{
    *info = ((cl_state *)bs)->info[i];
    return LOOM_OK;
}

static void cl_device_close(void *bdev)
{
    cl_dev *d = bdev;
    if (!d)
        return;
    if (d->queue)
        clFinish(d->queue);
    loom_cl_programs_release(d);
    loom_cl_blocks_release(d);
    if (d->queue)
        clReleaseCommandQueue(d->queue);
    if (d->context)
        clReleaseContext(d->context);
    loom_free(d->ctx, d->gemm, sizeof *d->gemm);
    loom_free(d->ctx, d, sizeof *d);
}

static loom_status cl_device_open(void *bs, int i, void **bdev)
{
    cl_state *s = bs;
    cl_dev *d = loom_calloc(s->ctx, 1, sizeof *d);
    if (!d)
        return loom_fail(s->ctx, LOOM_E_OOM, "opencl:%d: out of memory opening the device", i);
    d->ctx = s->ctx;
    d->index = i;
    d->platform = s->plats[i];
    d->id = s->ids[i];
    snprintf(d->label, sizeof d->label, "opencl:%d (%s)", i, s->info[i].name);
    loom_cl_read_limits(d->platform, d->id, &d->lim);
    /* 64 where allowed; the reductions need a power of two. */
    uint32_t wg = 64;
    while (wg > 1 && wg > d->lim.max_wg)
        wg /= 2;
    d->ew_wg = d->red_wg = wg;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)d->platform, 0};
    cl_int e = CL_SUCCESS;
    d->context = clCreateContext(props, 1, &d->id, NULL, NULL, &e);
    if (e != CL_SUCCESS) {
        loom_status st = loom_cl_fail(d, e, "clCreateContext", "opening the device");
        cl_device_close(d);
        return st;
    }
    /* Profiling stays on: a timestamp pair per command costs nothing
     * measurable next to a launch, and prepare() need not know in advance. */
    if (d->lim.version >= 20) {
        cl_queue_properties qp[] = {CL_QUEUE_PROPERTIES, CL_QUEUE_PROFILING_ENABLE, 0};
        d->queue = clCreateCommandQueueWithProperties(d->context, d->id, qp, &e);
    } else {
        d->queue = clCreateCommandQueue(d->context, d->id, CL_QUEUE_PROFILING_ENABLE, &e);
    }
    if (e != CL_SUCCESS) {
        loom_status st = loom_cl_fail(d, e, "clCreateCommandQueue", "opening the device");
        cl_device_close(d);
        return st;
    }
    /* the shipped database first; a set loom tune stored overrides it */
    loom_cl_gemm_db_apply(d);
    if (!d->gemm_defaults)
        loom_cl_gemm_load_stored(d);
    *bdev = d;
    return LOOM_OK;
}

const loom_backend_ops loom_opencl_backend = {
    .abi = LOOM_BACKEND_ABI,
    .name = "opencl",
    .kind = LOOM_BACKEND_OPENCL,
    .init = cl_init,
    .shutdown = cl_shutdown,
    .device_count = cl_device_count,
    .device_info = cl_device_info_get,
    .device_open = cl_device_open,
    .device_close = cl_device_close,
    .buffer_alloc = loom_cl_buffer_alloc,
    .buffer_free = loom_cl_buffer_free,
    .buffer_write = loom_cl_buffer_write,
    .buffer_read = loom_cl_buffer_read,
    .supports = loom_cl_supports,
    .has_kernel = loom_cl_has_kernel,
    .dispatches = loom_cl_dispatches,
    .prepare = loom_cl_prepare,
    .run = loom_cl_run,
    .submit = loom_cl_submit,
    .wait = loom_cl_wait,
    .buffer_read_async = loom_cl_buffer_read_async,
    .release = loom_cl_release,
    .timestamps = loom_cl_timestamps,
    .tune = loom_cl_tune,
    .set_tuning = loom_cl_set_tuning,
    .get_tuning = loom_cl_get_tuning,
};
