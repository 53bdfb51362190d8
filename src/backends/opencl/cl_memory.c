/* Device memory: a few large cl_mem blocks per lifetime (state, arena,
 * staging), each cut into aligned ranges with a first-fit free list that
 * merges neighbours on free. Kernels receive a block and an element offset,
 * so no sub-buffer objects are needed. */
#include "cl_internal.h"
#include "../../common/suballoc.h"

#include <string.h>

/* A new block is at least this large, so that small tensors share one. */
#define BLOCK_BYTES ((uint64_t)64 << 20)

struct cl_block {
    cl_mem mem;
    uint64_t size;
    loom_lifetime life;
    loom_suballoc sa;          /* the ranges handed out as tensors */
};

static const char *life_name(loom_lifetime life)
{
    return life == LOOM_LIFE_STATE ? "state" : life == LOOM_LIFE_ARENA ? "arena" : "staging";
}

cl_mem loom_cl_block_mem(const cl_block *b)
{
    return b->mem;
}

uint64_t loom_cl_max_block(const cl_dev *d)
{
    uint64_t cap = (uint64_t)1 << 33; /* 2^31 elements: item index * 8 fits in 32 bits */
    uint64_t m = d->lim.max_alloc ? d->lim.max_alloc : cap;
    m = m < cap ? m : cap;
    return m - m % d->lim.align;
}

static uint64_t round_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}

static void block_destroy(cl_dev *d, cl_block *b)
{
    if (b->mem)
        clReleaseMemObject(b->mem);
    loom_suballoc_release(&b->sa);
    loom_free(d->ctx, b, sizeof *b);
}

static loom_status block_create(cl_dev *d, uint64_t need, loom_lifetime life, cl_block **out)
{
    uint64_t size = need > BLOCK_BYTES ? need : BLOCK_BYTES;
    uint64_t maxb = loom_cl_max_block(d);
    if (size > maxb)
        size = maxb;
    /* Host memory stands in for device memory on CPU devices: keep blocks
     * well below what the device has in all. */
    if (d->lim.global_mem && size > need && size > d->lim.global_mem / 8)
        size = need > d->lim.global_mem / 8 ? need : d->lim.global_mem / 8;
    size = round_up(size, d->lim.align);
    if (d->nblocks == d->capblocks) {
        int ncap = d->capblocks ? d->capblocks * 2 : 8;
        cl_block **nb = loom_realloc(d->ctx, d->blocks, (size_t)d->capblocks * sizeof *nb, (size_t)ncap * sizeof *nb);
        if (!nb)
            return loom_fail(d->ctx, LOOM_E_OOM, "%s: out of host memory for the block table", d->label);
        d->blocks = nb;
        d->capblocks = ncap;
    }
    cl_block *b = loom_calloc(d->ctx, 1, sizeof *b);
    if (!b || loom_suballoc_init(&b->sa, d->ctx, size) != LOOM_OK) {
        loom_free(d->ctx, b, sizeof *b);
        return loom_fail(d->ctx, LOOM_E_OOM, "%s: out of host memory for a block", d->label);
    }
    cl_mem_flags flags = CL_MEM_READ_WRITE | (life == LOOM_LIFE_STAGING ? CL_MEM_ALLOC_HOST_PTR : 0);
    cl_int e = CL_SUCCESS;
    b->mem = clCreateBuffer(d->context, flags, (size_t)size, NULL, &e);
    if (e == CL_SUCCESS) {
        /* Drivers allocate lazily; make the allocation happen now, so an
         * out-of-memory surfaces here with the sizes, not in a later run. */
        e = clEnqueueMigrateMemObjects(d->queue, 1, &b->mem, CL_MIGRATE_MEM_OBJECT_CONTENT_UNDEFINED, 0, NULL, NULL);
        if (e == CL_SUCCESS)
            e = clFinish(d->queue);
    }
    if (e != CL_SUCCESS) {
        block_destroy(d, b);
        uint64_t in_use = 0;
        for (int i = 0; i < d->nblocks; i++)
            in_use += d->blocks[i]->size;
        loom_status s = loom_cl_fail(d, e, "clCreateBuffer",
                                     "a %llu-byte %s block for a %llu-byte request (%llu bytes in %d blocks already, "
                                     "device memory %llu bytes)",
                                     (unsigned long long)size, life_name(life), (unsigned long long)need,
                                     (unsigned long long)in_use, d->nblocks, (unsigned long long)d->lim.global_mem);
        return s == LOOM_E_DEVICE ? LOOM_E_OOM : s;
    }
    b->size = size;
    b->life = life;
    d->blocks[d->nblocks++] = b;
    *out = b;
    return LOOM_OK;
}

loom_status loom_cl_buffer_alloc(void *bdev, uint64_t bytes, loom_lifetime life, void **out)
{
    cl_dev *d = bdev;
    *out = NULL;
    uint64_t span = round_up(bytes ? bytes : 1, d->lim.align);
    uint64_t maxb = loom_cl_max_block(d);
    if (span > maxb)
        return loom_fail(d->ctx, LOOM_E_UNSUPPORTED,
                         "%s: a %llu-byte %s buffer is larger than the device's largest allocation (%llu bytes, "
                         "CL_DEVICE_MAX_MEM_ALLOC_SIZE %llu)",
                         d->label, (unsigned long long)bytes, life_name(life), (unsigned long long)maxb,
                         (unsigned long long)d->lim.max_alloc);
    cl_buf *buf = loom_calloc(d->ctx, 1, sizeof *buf);
    if (!buf)
        return loom_fail(d->ctx, LOOM_E_OOM, "%s: out of host memory for a buffer handle", d->label);
    uint64_t off = 0;
    cl_block *blk = NULL;
    int got = 0;
    for (int i = 0; i < d->nblocks && !blk && got >= 0; i++)
        if (d->blocks[i]->life == life && (got = loom_suballoc_take(&d->blocks[i]->sa, span, d->lim.align, &off)) == 1)
            blk = d->blocks[i];
    if (!blk && got >= 0) {
        loom_status s = block_create(d, span, life, &blk);
        if (s != LOOM_OK) {
            loom_free(d->ctx, buf, sizeof *buf);
            return s;
        }
        got = loom_suballoc_take(&blk->sa, span, d->lim.align, &off);
    }
    if (got != 1) {
        loom_free(d->ctx, buf, sizeof *buf);
        return loom_fail(d->ctx, LOOM_E_OOM, "%s: out of host memory for a buffer", d->label);
    }
    buf->block = blk;
    buf->offset = off;
    buf->bytes = bytes;
    buf->span = span;
    *out = buf;
    return LOOM_OK;
}

void loom_cl_buffer_free(void *bdev, void *p)
{
    cl_dev *d = bdev;
    cl_buf *buf = p;
    if (!buf)
        return;
    cl_block *b = buf->block;
    loom_suballoc_give(&b->sa, buf->offset, buf->span);
    loom_free(d->ctx, buf, sizeof *buf);
    if (b->sa.used == 0) {
        for (int i = 0; i < d->nblocks; i++)
            if (d->blocks[i] == b) {
                d->blocks[i] = d->blocks[--d->nblocks];
                break;
            }
        /* Commands still queued on it keep the memory alive (OpenCL
         * reference counting), so releasing now is safe. */
        block_destroy(d, b);
    }
}

static loom_status check_range(cl_dev *d, const cl_buf *b, uint64_t off, uint64_t bytes, const char *what)
{
    if (off > b->bytes || bytes > b->bytes - off)
        return loom_fail(d->ctx, LOOM_E_INVALID, "%s: %s of %llu bytes at %llu past a %llu-byte buffer", d->label,
                         what, (unsigned long long)bytes, (unsigned long long)off, (unsigned long long)b->bytes);
    return LOOM_OK;
}

loom_status loom_cl_buffer_write(void *bdev, void *p, uint64_t off, const void *src, uint64_t bytes)
{
    cl_dev *d = bdev;
    cl_buf *b = p;
    LOOM_TRY(check_range(d, b, off, bytes, "write"));
    if (!bytes)
        return LOOM_OK;
    /* Blocking: the caller's memory may be gone once we return. */
    cl_int e = clEnqueueWriteBuffer(d->queue, b->block->mem, CL_TRUE, (size_t)(b->offset + off), (size_t)bytes, src, 0,
                                    NULL, NULL);
    if (e != CL_SUCCESS)
        return loom_cl_fail(d, e, "clEnqueueWriteBuffer", "%llu bytes at offset %llu of a %s block",
                            (unsigned long long)bytes, (unsigned long long)(b->offset + off), life_name(b->block->life));
    return LOOM_OK;
}

/* blocking, or behind whatever the in-order queue holds (the program's
 * wait, clFinish, completes it) */
static loom_status enqueue_read(void *bdev, void *p, uint64_t off, void *dst, uint64_t bytes, cl_bool blocking)
{
    cl_dev *d = bdev;
    cl_buf *b = p;
    LOOM_TRY(check_range(d, b, off, bytes, "read"));
    if (!bytes)
        return LOOM_OK;
    cl_int e = clEnqueueReadBuffer(d->queue, b->block->mem, blocking, (size_t)(b->offset + off), (size_t)bytes, dst, 0,
                                   NULL, NULL);
    if (e != CL_SUCCESS)
        return loom_cl_fail(d, e, "clEnqueueReadBuffer", "%s %llu bytes at offset %llu of a %s block",
                            blocking ? "reading" : "queuing a read of", (unsigned long long)bytes,
                            (unsigned long long)(b->offset + off), life_name(b->block->life));
    return LOOM_OK;
}

loom_status loom_cl_buffer_read_async(void *bdev, void *p, uint64_t off, void *dst, uint64_t bytes)
{
    return enqueue_read(bdev, p, off, dst, bytes, CL_FALSE);
}

loom_status loom_cl_buffer_read(void *bdev, void *p, uint64_t off, void *dst, uint64_t bytes)
{
    return enqueue_read(bdev, p, off, dst, bytes, CL_TRUE);
}

void loom_cl_blocks_release(cl_dev *d)
{
    for (int i = 0; i < d->nblocks; i++)
        block_destroy(d, d->blocks[i]);
    loom_free(d->ctx, d->blocks, (size_t)d->capblocks * sizeof *d->blocks);
    d->blocks = NULL;
    d->nblocks = d->capblocks = 0;
}
