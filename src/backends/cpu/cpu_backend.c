/* The CPU backend: host memory, the reference kernels, OpenBLAS GEMM. */
#define _POSIX_C_SOURCE 200809L
#include "../../core/backend.h"
#include "cpu_dnnl.h"
#include "cpu_kernels.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct cpu_state {
    loom_ctx *ctx;
    loom_device_info info;
} cpu_state;

typedef struct cpu_dev {
    loom_ctx *ctx;
} cpu_dev;

typedef struct cpu_buf {
    uint64_t bytes;
    unsigned char *data;
} cpu_buf;

typedef struct cpu_prog {
    loom_ctx *ctx;
    const loom_exec_program *prog;
    void **ptrs;            /* per node: out, then each input */
    int nptrs;
    void **view;            /* one node's inputs as the kernel sees them */
    unsigned char *half;    /* per node: 1 if a tensor of it is half-precision */
    int maxin;
    float *scratch;         /* f32 views of half-precision tensors */
    size_t nscratch;        /* floats */
    double *t0, *t1;        /* per node, when profiling */
} cpu_prog;

static void cpu_model(char *buf, size_t n)
{
    snprintf(buf, n, "CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) {
                c++;
                while (*c == ' ')
                    c++;
                c[strcspn(c, "\n")] = 0;
                snprintf(buf, n, "%s", c);
            }
            break;
        }
    }
    fclose(f);
}

static loom_status cpu_init(loom_ctx *ctx, void **bstate)
{
    cpu_state *s = loom_calloc(ctx, 1, sizeof *s);
    if (!s)
        return loom_fail(ctx, LOOM_E_OOM, "cpu backend: out of memory");
    s->ctx = ctx;
    loom_device_info *d = &s->info;
    cpu_model(d->name, sizeof d->name);
    snprintf(d->vendor, sizeof d->vendor, "host");
#ifdef LOOM_HAVE_DNNL
    if (loom_cpu_dnnl_ready())
        snprintf(d->driver, sizeof d->driver, "loom cpu + OpenBLAS + oneDNN (convolution%s)",
                 loom_cpu_dnnl_int8_exact() ? ", int8" : "; int8 own kernels: no VNNI");
    else
#endif
        snprintf(d->driver, sizeof d->driver, "loom cpu + OpenBLAS");
    snprintf(d->api_version, sizeof d->api_version, "C11");
    d->type = LOOM_DEVICE_CPU;
    d->can_run = 1;
    d->int8 = 1; /* the int8 ops: oneDNN's s8 matmul with VNNI, else cpu_quant.c's kernel */
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    d->memory_bytes = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;
    d->max_binding_bytes = 0; /* no limit beyond memory */
    d->max_alloc_bytes = d->memory_bytes;
    d->alignment = 64;        /* a cache line: vector loads never split one */
    d->subgroup_size = 1;
    d->max_workgroup_size = 1;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    d->compute_units = ncpu > 0 ? (uint32_t)ncpu : 1;
    *bstate = s;
    return LOOM_OK;
}

static void cpu_shutdown(void *bs)
{
    cpu_state *s = bs;
    loom_free(s->ctx, s, sizeof *s);
}

static int cpu_device_count(void *bs)
{
    (void)bs;
    return 1;
}

static loom_status cpu_device_info(void *bs, int i, loom_device_info *info)
{
    (void)i;
    *info = ((cpu_state *)bs)->info;
    return LOOM_OK;
}

static loom_status cpu_device_open(void *bs, int i, void **bdev)
{
    (void)i;
    cpu_state *s = bs;
    cpu_dev *d = loom_calloc(s->ctx, 1, sizeof *d);
    if (!d)
        return loom_fail(s->ctx, LOOM_E_OOM, "cpu: out of memory opening the device");
    d->ctx = s->ctx;
    *bdev = d;
    return LOOM_OK;
}

static void cpu_device_close(void *bdev)
{
    cpu_dev *d = bdev;
    loom_free(d->ctx, d, sizeof *d);
}

static loom_status cpu_buffer_alloc(void *bdev, uint64_t bytes, loom_lifetime life, void **out)
{
    cpu_dev *d = bdev;
    (void)life;
    cpu_buf *b = loom_calloc(d->ctx, 1, sizeof *b);
    if (b && bytes <= SIZE_MAX)
        b->data = loom_malloc(d->ctx, (size_t)bytes);
    if (!b || !b->data) {
        loom_free(d->ctx, b, sizeof *b);
        return loom_fail(d->ctx, LOOM_E_OOM, "cpu: cannot allocate %llu bytes", (unsigned long long)bytes);
    }
    b->bytes = bytes;
    *out = b;
    return LOOM_OK;
}

static void cpu_buffer_free(void *bdev, void *buf)
{
    cpu_dev *d = bdev;
    cpu_buf *b = buf;
    if (!b)
        return;
    loom_free(d->ctx, b->data, (size_t)b->bytes);
    loom_free(d->ctx, b, sizeof *b);
}

static loom_status cpu_buffer_write(void *bdev, void *buf, uint64_t off, const void *src, uint64_t bytes)
{
    cpu_buf *b = buf;
    if (off + bytes > b->bytes)
        return loom_fail(((cpu_dev *)bdev)->ctx, LOOM_E_INVALID, "cpu: write of %llu bytes at %llu past a %llu-byte buffer",
                         (unsigned long long)bytes, (unsigned long long)off, (unsigned long long)b->bytes);
    memcpy(b->data + off, src, (size_t)bytes);
    return LOOM_OK;
}

static loom_status cpu_buffer_read(void *bdev, void *buf, uint64_t off, void *dst, uint64_t bytes)
{
    cpu_buf *b = buf;
    if (off + bytes > b->bytes)
        return loom_fail(((cpu_dev *)bdev)->ctx, LOOM_E_INVALID, "cpu: read of %llu bytes at %llu past a %llu-byte buffer",
                         (unsigned long long)bytes, (unsigned long long)off, (unsigned long long)b->bytes);
    memcpy(dst, b->data + off, (size_t)bytes);
    return LOOM_OK;
}

static void *resolve(const loom_exec_tensor *t)
{
    return ((cpu_buf *)t->mem.buf)->data + t->mem.offset;
}

void *loom_cpu_tensor_data(const loom_exec_tensor *t)
{
    return resolve(t);
}

static int is_half(const loom_exec_tensor *t)
{
    return loom_dtype_traits_of(t->node->dtype)->half;
}

static void widen(float *dst, const void *src, loom_dtype dt, int64_t n)
{
    const uint16_t *h = src;
    if (dt == LOOM_F16)
        for (int64_t i = 0; i < n; i++)
            dst[i] = loom_f16_to_f32(h[i]);
    else
        for (int64_t i = 0; i < n; i++)
            dst[i] = loom_bf16_to_f32(h[i]);
}

static void narrow(void *dst, const float *src, loom_dtype dt, int64_t n)
{
    uint16_t *h = dst;
    if (dt == LOOM_F16)
        for (int64_t i = 0; i < n; i++)
            h[i] = loom_f32_to_f16(src[i]);
    else
        for (int64_t i = 0; i < n; i++)
            h[i] = loom_f32_to_bf16(src[i]);
}

static void cpu_release(void *bp)
{
    cpu_prog *p = bp;
    int nn = p->prog->nnodes ? p->prog->nnodes : 1;
    loom_free(p->ctx, p->ptrs, (size_t)p->nptrs * sizeof *p->ptrs);
    loom_free(p->ctx, p->view, (size_t)(p->maxin ? p->maxin : 1) * sizeof *p->view);
    loom_free(p->ctx, p->half, (size_t)nn);
    loom_free(p->ctx, p->scratch, (p->nscratch ? p->nscratch : 1) * sizeof *p->scratch);
    loom_free(p->ctx, p->t0, (size_t)nn * sizeof(double));
    loom_free(p->ctx, p->t1, (size_t)nn * sizeof(double));
    loom_free(p->ctx, p, sizeof *p);
}

/* "Recording" on the CPU: every pointer is resolved once, here, and the
 * f32 room for the half-precision tensors of the largest node is made. */
static loom_status cpu_prepare(void *bdev, const loom_exec_program *prog, void **out)
{
    cpu_dev *d = bdev;
    cpu_prog *p = loom_calloc(d->ctx, 1, sizeof *p);
    if (!p)
        return loom_fail(d->ctx, LOOM_E_OOM, "cpu: out of memory preparing the program");
    p->ctx = d->ctx;
    p->prog = prog;
    int nn = prog->nnodes ? prog->nnodes : 1;
    for (int i = 0; i < prog->nnodes; i++) {
        const loom_exec_node *x = &prog->nodes[i];
        p->nptrs += 1 + x->nin;
        /* room for a workspace after the inputs */
        p->maxin = x->nin + 1 > p->maxin ? x->nin + 1 : p->maxin;
        size_t need = x->out && is_half(x->out) ? (size_t)x->out->node->numel : 0;
        for (int j = 0; j < x->nin; j++)
            need += is_half(x->in[j]) ? (size_t)x->in[j]->node->numel : 0;
        need += cpu_workspace_floats(x);
        p->nscratch = need > p->nscratch ? need : p->nscratch;
    }
    p->half = loom_calloc(d->ctx, (size_t)nn, 1);
    p->nptrs = p->nptrs ? p->nptrs : 1;
    p->ptrs = loom_calloc(d->ctx, (size_t)p->nptrs, sizeof *p->ptrs);
    p->scratch = loom_malloc(d->ctx, (p->nscratch ? p->nscratch : 1) * sizeof *p->scratch);
    p->view = loom_calloc(d->ctx, (size_t)(p->maxin ? p->maxin : 1), sizeof *p->view);
    p->t0 = loom_calloc(d->ctx, (size_t)nn, sizeof(double));
    p->t1 = loom_calloc(d->ctx, (size_t)nn, sizeof(double));
    if (!p->ptrs || !p->scratch || !p->view || !p->half || !p->t0 || !p->t1) {
        size_t nscratch = p->nscratch;
        cpu_release(p);
        return loom_fail(d->ctx, LOOM_E_OOM, "cpu: out of memory preparing the program (%zu scratch floats)",
                         nscratch);
    }
    int k = 0;
    for (int i = 0; i < prog->nnodes; i++) {
        const loom_exec_node *x = &prog->nodes[i];
        p->ptrs[k++] = x->out ? resolve(x->out) : NULL;
        /* the slow path also hands a kernel its workspace */
        p->half[i] = (x->out && is_half(x->out)) || cpu_workspace_floats(x) > 0;
        for (int j = 0; j < x->nin; j++) {
            p->ptrs[k++] = resolve(x->in[j]);
            p->half[i] |= is_half(x->in[j]);
        }
    }
    *out = p;
    return LOOM_OK;
}

/* One node: half-precision inputs widened into scratch, the f32 kernel,
 * a half-precision output narrowed back. */
static void run_half_node(cpu_prog *p, const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot)
{
    void **view = p->view;
    void *const *args = in;
    float *s = p->scratch;
    int any = 0;
    for (int j = 0; j < x->nin; j++) {
        view[j] = in[j];
        if (is_half(x->in[j])) {
            widen(s, in[j], x->in[j]->node->dtype, x->in[j]->node->numel);
            view[j] = s;
            s += x->in[j]->node->numel;
            any = 1;
        }
    }
    if (any)
        args = view;
    void *y = out;
    int narrow_out = x->out && is_half(x->out);
    if (narrow_out) {
        y = s;
        s += x->out->node->numel;
    }
    /* a kernel's workspace follows the inputs (cpu_workspace_floats) */
    if (cpu_workspace_floats(x)) {
        if (!any)
            for (int j = 0; j < x->nin; j++)
                view[j] = in[j];
        view[x->nin] = s;
        args = view;
    }
    cpu_kernels[x->def->family](x, y, args, slot);
    if (narrow_out)
        narrow(out, y, x->out->node->dtype, x->out->node->numel);
}

static loom_status cpu_run(void *bp, const loom_run_args *args)
{
    cpu_prog *p = bp;
    const loom_exec_program *prog = p->prog;
    int k = 0;
    for (int i = 0; i < prog->nnodes; i++) {
        const loom_exec_node *x = &prog->nodes[i];
        if (prog->profile)
            p->t0[i] = loom_now_ns();
        const loom_run_slot *slot = x->run_slot >= 0 ? &args->slots[x->run_slot] : NULL;
        if (p->half[i])
            run_half_node(p, x, p->ptrs[k], &p->ptrs[k + 1], slot);
        else
            cpu_kernels[x->def->family](x, p->ptrs[k], &p->ptrs[k + 1], slot);
        if (prog->profile)
            p->t1[i] = loom_now_ns();
        k += 1 + x->nin;
    }
    return LOOM_OK;
}

static loom_status cpu_timestamps(void *bp, double *t0, double *t1, int n)
{
    cpu_prog *p = bp;
    if (!p->prog->profile || n != p->prog->nnodes)
        return LOOM_E_STATE;
    memcpy(t0, p->t0, (size_t)n * sizeof *t0);
    memcpy(t1, p->t1, (size_t)n * sizeof *t1);
    return LOOM_OK;
}

static int cpu_supports(void *bdev, const loom_exec_node *x)
{
    (void)bdev;
    for (int j = 0; j < x->nin; j++)
        if (!loom_cpu_has_kernel(x->node->op, x->in[j]->node->dtype))
            return 0;
    return loom_cpu_has_kernel(x->node->op, x->node->dtype);
}

const loom_backend_ops loom_cpu_backend = {
    .abi = LOOM_BACKEND_ABI,
    .name = "cpu",
    .kind = LOOM_BACKEND_CPU,
    .init = cpu_init,
    .shutdown = cpu_shutdown,
    .device_count = cpu_device_count,
    .device_info = cpu_device_info,
    .device_open = cpu_device_open,
    .device_close = cpu_device_close,
    .buffer_alloc = cpu_buffer_alloc,
    .buffer_free = cpu_buffer_free,
    .buffer_write = cpu_buffer_write,
    .buffer_read = cpu_buffer_read,
    .supports = cpu_supports,
    .has_kernel = loom_cpu_has_kernel,
    .prepare = cpu_prepare,
    .run = cpu_run,
    .release = cpu_release,
    .timestamps = cpu_timestamps,
};
