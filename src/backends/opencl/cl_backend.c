/* The OpenCL backend: platforms, devices and their limits. */
#define CL_TARGET_OPENCL_VERSION 300
#include "../backend.h"

#include <CL/cl.h>
#include <stdio.h>
#include <string.h>

typedef struct cl_state {
    loom_ctx *ctx;
    int ndev;
    cl_device_id *ids;
    loom_device_info *info;
} cl_state;

static void str_info(cl_device_id d, cl_device_info what, char *buf, size_t n)
{
    buf[0] = 0;
    if (clGetDeviceInfo(d, what, n, buf, NULL) != CL_SUCCESS)
        buf[0] = 0;
    buf[n - 1] = 0;
}

static void fill_info(cl_device_id id, loom_device_info *d)
{
    char ver[128], drv[64], ext[8192];
    cl_device_type type = 0;
    cl_ulong mem = 0, maxalloc = 0, local = 0;
    cl_uint align_bits = 0, cus = 0, vendor = 0;
    size_t wg = 0;
    str_info(id, CL_DEVICE_NAME, d->name, sizeof d->name);
    str_info(id, CL_DEVICE_VENDOR, d->vendor, sizeof d->vendor);
    str_info(id, CL_DEVICE_VERSION, ver, sizeof ver);
    str_info(id, CL_DRIVER_VERSION, drv, sizeof drv);
    str_info(id, CL_DEVICE_EXTENSIONS, ext, sizeof ext);
    clGetDeviceInfo(id, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    clGetDeviceInfo(id, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof mem, &mem, NULL);
    clGetDeviceInfo(id, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof maxalloc, &maxalloc, NULL);
    clGetDeviceInfo(id, CL_DEVICE_LOCAL_MEM_SIZE, sizeof local, &local, NULL);
    clGetDeviceInfo(id, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof align_bits, &align_bits, NULL);
    clGetDeviceInfo(id, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cus, &cus, NULL);
    clGetDeviceInfo(id, CL_DEVICE_VENDOR_ID, sizeof vendor, &vendor, NULL);
    clGetDeviceInfo(id, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
    snprintf(d->driver, sizeof d->driver, "%s", drv);
    snprintf(d->api_version, sizeof d->api_version, "%s", ver);
    d->vendor_id = vendor;
    d->type = (type & CL_DEVICE_TYPE_GPU) ? LOOM_DEVICE_DISCRETE
              : (type & CL_DEVICE_TYPE_CPU) ? LOOM_DEVICE_CPU : LOOM_DEVICE_OTHER;
    cl_bool unified = CL_FALSE;
    clGetDeviceInfo(id, CL_DEVICE_HOST_UNIFIED_MEMORY, sizeof unified, &unified, NULL);
    if ((type & CL_DEVICE_TYPE_GPU) && unified)
        d->type = LOOM_DEVICE_INTEGRATED;
    d->memory_bytes = mem;
    d->max_binding_bytes = maxalloc;
    d->max_alloc_bytes = maxalloc;
    d->alignment = align_bits / 8 ? align_bits / 8 : 4;
    d->subgroup_size = 1;
    d->max_workgroup_size = (uint32_t)wg;
    d->compute_units = cus;
    d->shared_memory_bytes = local;
    d->fp16 = strstr(ext, "cl_khr_fp16") != NULL;
    d->int8 = 1;
    /* A stable identity: cl_khr_device_uuid where offered. */
#ifdef CL_DEVICE_UUID_KHR
    if (strstr(ext, "cl_khr_device_uuid")) {
        unsigned char uuid[16];
        if (clGetDeviceInfo(id, CL_DEVICE_UUID_KHR, sizeof uuid, uuid, NULL) == CL_SUCCESS)
            for (int i = 0; i < 16; i++)
                snprintf(d->uuid + 2 * i, 3, "%02x", uuid[i]);
    }
#endif
    d->can_run = 0;
}

static loom_status cl_init(loom_ctx *ctx, void **bstate)
{
    *bstate = NULL;
    cl_uint np = 0;
    cl_int e = clGetPlatformIDs(0, NULL, &np);
    if (e != CL_SUCCESS || np == 0)
        return loom_fail(ctx, LOOM_E_DEVICE, "clGetPlatformIDs: no OpenCL platform (error %d)", (int)e);
    cl_platform_id plats[16];
    if (np > 16)
        np = 16;
    clGetPlatformIDs(np, plats, NULL);
    cl_state *s = loom_calloc(ctx, 1, sizeof *s);
    if (!s)
        return loom_fail(ctx, LOOM_E_OOM, "opencl: out of memory");
    s->ctx = ctx;
    cl_device_id ids[64];
    int n = 0;
    for (cl_uint p = 0; p < np && n < 64; p++) {
        cl_uint nd = 0;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, (cl_uint)(64 - n), ids + n, &nd) == CL_SUCCESS)
            n += (int)nd > 64 - n ? 64 - n : (int)nd;
    }
    s->ndev = n;
    if (n) {
        s->ids = loom_calloc(ctx, (size_t)n, sizeof *s->ids);
        s->info = loom_calloc(ctx, (size_t)n, sizeof *s->info);
        if (!s->ids || !s->info) {
            loom_free(ctx, s->ids, (size_t)n * sizeof *s->ids);
            loom_free(ctx, s->info, (size_t)n * sizeof *s->info);
            loom_free(ctx, s, sizeof *s);
            return loom_fail(ctx, LOOM_E_OOM, "opencl: out of memory");
        }
        memcpy(s->ids, ids, (size_t)n * sizeof *ids);
        for (int i = 0; i < n; i++)
            fill_info(ids[i], &s->info[i]);
    }
    *bstate = s;
    return LOOM_OK;
}

static void cl_shutdown(void *bs)
{
    cl_state *s = bs;
    loom_free(s->ctx, s->ids, (size_t)s->ndev * sizeof *s->ids);
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

static loom_status cl_device_open(void *bs, int i, void **bdev)
{
    cl_state *s = bs;
    (void)bdev;
    return loom_fail(s->ctx, LOOM_E_UNSUPPORTED, "opencl:%d (%s): the OpenCL backend cannot run graphs yet", i,
                     s->info[i].name);
}

static void cl_device_close(void *bdev)
{
    (void)bdev;
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
};
