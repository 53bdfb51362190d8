/* Device memory: a few large VkDeviceMemory blocks per lifetime (state,
 * arena, staging), each with one VkBuffer over the whole block; tensors are
 * aligned ranges of a block, never allocations of their own. Host-visible
 * memory is mapped once and read and written with memcpy; elsewhere
 * transfers go through a staging buffer. */
#include "vk_internal.h"

#include <string.h>

#define MIB (1024ull * 1024ull)
#define FIRST_BLOCK (16 * MIB)   /* blocks double from here ... */
#define LARGEST_BLOCK (256 * MIB) /* ... up to this, unless one tensor needs more */
#define STAGING_BYTES (4 * MIB) /* each of the staging and upload buffers */

static const char *life_name(loom_lifetime l)
{
    return l == LOOM_LIFE_STATE ? "state" : l == LOOM_LIFE_ARENA ? "arena" : "staging";
}

static VkBufferUsageFlags block_usage(const vk_dev *d)
{
    VkBufferUsageFlags u = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                           VK_BUFFER_USAGE_TRANSFER_DST_BIT;
    if (d->lim->texel_r32f)
        u |= VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT;
    if (d->lim->image_r32f)
        u |= VK_BUFFER_USAGE_STORAGE_TEXEL_BUFFER_BIT;
    return u;
}

/* The memory type among `bits` that has every `req` flag, scoring `pref`
 * flags up; -1 if none. */
static int find_type(const VkPhysicalDeviceMemoryProperties *mp, uint32_t bits, VkMemoryPropertyFlags req,
                     VkMemoryPropertyFlags pref)
{
    int best = -1, best_score = -1;
    for (uint32_t i = 0; i < mp->memoryTypeCount; i++) {
        VkMemoryPropertyFlags f = mp->memoryTypes[i].propertyFlags;
        if (!(bits & (1u << i)) || (f & req) != req)
            continue;
        int score = 0;
        for (int b = 0; b < 32; b++)
            score += ((pref >> b) & 1u) && ((f >> b) & 1u);
        if (score > best_score) {
            best = (int)i;
            best_score = score;
        }
    }
    return best;
}

static const VkMemoryPropertyFlags HOST_RW = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;

loom_status vk_memory_init(vk_dev *d)
{
    VkPhysicalDeviceMemoryProperties mp;
    vkGetPhysicalDeviceMemoryProperties(d->phys, &mp);
    VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                             .size = 4096,
                             .usage = block_usage(d),
                             .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkBuffer probe;
    VkResult r = vkCreateBuffer(d->dev, &bi, NULL, &probe);
    if (r != VK_SUCCESS)
        return vk_fail(d, r, "vkCreateBuffer", "probing memory types");
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(d->dev, probe, &req);
    vkDestroyBuffer(d->dev, probe, NULL);

    /* Integrated and CPU devices share the host's memory: device-local and
     * host-visible at once, so tensors are mapped and never staged. A
     * discrete GPU's host-visible window (often 256 MiB) is left alone. */
    int shared = d->info->type == LOOM_DEVICE_INTEGRATED || d->info->type == LOOM_DEVICE_CPU;
    int dev_type = -1;
    if (shared)
        dev_type = find_type(&mp, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT | HOST_RW, 0);
    int mapped = dev_type >= 0;
    if (dev_type < 0)
        dev_type = find_type(&mp, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0);
    if (dev_type < 0)
        dev_type = find_type(&mp, req.memoryTypeBits, 0, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT);
    int host_type = find_type(&mp, req.memoryTypeBits, HOST_RW, VK_MEMORY_PROPERTY_HOST_CACHED_BIT);
    if (dev_type < 0 || host_type < 0)
        return loom_fail(d->ctx, LOOM_E_UNSUPPORTED,
                         "%s (%s): no usable memory type for storage buffers (type bits 0x%x)", d->info->spec,
                         d->info->name, req.memoryTypeBits);
    d->mem_type[LOOM_LIFE_STATE] = d->mem_type[LOOM_LIFE_ARENA] = (uint32_t)dev_type;
    d->mapped[LOOM_LIFE_STATE] = d->mapped[LOOM_LIFE_ARENA] = mapped;
    d->mem_type[LOOM_LIFE_STAGING] = (uint32_t)host_type;
    d->mapped[LOOM_LIFE_STAGING] = 1;
    uint64_t align = d->lim->storage_align;
    if (d->lim->texel_r32f && d->lim->texel_align > align)
        align = d->lim->texel_align;
    if (req.alignment > align)
        align = req.alignment;
    d->align = align < 64 ? 64 : align;
    loom_logf(d->ctx, LOOM_LOG_DEBUG, "%s: tensors in memory type %d (%s), staging in type %d, alignment %llu",
              d->info->spec, dev_type, mapped ? "mapped" : "staged", host_type, (unsigned long long)d->align);

    /* Host-visible: the scratch buffer opens no device block of its own. */
    void *scratch = NULL;
    LOOM_TRY(vk_buffer_alloc(d, 256, LOOM_LIFE_STAGING, &scratch));
    d->scratch = scratch;
    if (d->lim->texel_r32f || d->lim->image_r32f) {
        VkBufferViewCreateInfo vi = {.sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO,
                                     .buffer = d->scratch->block->buf,
                                     .format = VK_FORMAT_R32_SFLOAT,
                                     .offset = d->scratch->offset,
                                     .range = 256};
        r = vkCreateBufferView(d->dev, &vi, NULL, &d->scratch_view);
        if (r != VK_SUCCESS)
            return vk_fail(d, r, "vkCreateBufferView", "for the scratch buffer");
    }
    return LOOM_OK;
}

static void block_destroy(vk_dev *d, vk_block *b)
{
    if (b->map)
        vkUnmapMemory(d->dev, b->mem);
    vkDestroyBuffer(d->dev, b->buf, NULL);
    vkFreeMemory(d->dev, b->mem, NULL);
    d->nallocs--;
    loom_suballoc_release(&b->sa);
    loom_free(d->ctx, b, sizeof *b);
}

void vk_memory_shutdown(vk_dev *d)
{
    loom_free(d->ctx, d->copies, (size_t)d->capcopies * sizeof *d->copies);
    if (d->upload_cb)
        vkFreeCommandBuffers(d->dev, d->cmd_pool, 1, &d->upload_cb);
    if (d->scratch_view)
        vkDestroyBufferView(d->dev, d->scratch_view, NULL);
    /* The device's own buffers: their blocks go below. */
    vk_buf *own[3] = {d->scratch, d->staging, d->upload};
    for (int i = 0; i < 3; i++)
        loom_free(d->ctx, own[i], sizeof *own[i]);
    d->scratch = d->staging = d->upload = NULL;
    for (int l = 0; l < VK_LIFETIMES; l++) {
        vk_block *b = d->blocks[l];
        while (b) {
            vk_block *next = b->next;
            block_destroy(d, b);
            b = next;
        }
        d->blocks[l] = NULL;
    }
}

static int has_pending(const vk_dev *d, const vk_buf *b);
static loom_status flush_uploads(vk_dev *d);

static uint64_t round_up(uint64_t x, uint64_t a)
{
    return (x + a - 1) / a * a;
}

static loom_status block_new(vk_dev *d, loom_lifetime life, uint64_t need, vk_block **out)
{
    uint64_t cap = d->lim->max_alloc_bytes;
    if (d->lim->max_buffer_bytes && d->lim->max_buffer_bytes < cap)
        cap = d->lim->max_buffer_bytes;
    if (need > cap)
        return loom_fail(d->ctx, LOOM_E_OOM,
                         "%s (%s): cannot allocate %llu bytes of %s memory: the device's largest allocation is "
                         "%llu bytes",
                         d->info->spec, d->info->name, (unsigned long long)need, life_name(life),
                         (unsigned long long)cap);
    if (d->nallocs >= d->lim->max_alloc_count)
        return loom_fail(d->ctx, LOOM_E_OOM, "%s (%s): %u device allocations, the most the device allows",
                         d->info->spec, d->info->name, d->nallocs);
    int nblocks = 0;
    for (vk_block *b = d->blocks[life]; b; b = b->next)
        nblocks++;
    uint64_t size = FIRST_BLOCK << (nblocks < 4 ? nblocks : 4);
    if (size > LARGEST_BLOCK)
        size = LARGEST_BLOCK;
    if (size < need)
        size = round_up(need, MIB);
    if (size > cap)
        size = cap;
    vk_block *b = loom_calloc(d->ctx, 1, sizeof *b);
    if (!b)
        return loom_fail(d->ctx, LOOM_E_OOM, "%s: out of host memory for a memory block", d->info->spec);
    b->life = life;
    VkResult r = VK_ERROR_OUT_OF_DEVICE_MEMORY;
    /* A large block the device refuses is retried at the size asked for. */
    for (int attempt = 0; attempt < 2; attempt++, size = round_up(need, d->align)) {
        VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                                 .size = size,
                                 .usage = block_usage(d),
                                 .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
        r = vkCreateBuffer(d->dev, &bi, NULL, &b->buf);
        if (r != VK_SUCCESS)
            continue;
        VkMemoryRequirements req;
        vkGetBufferMemoryRequirements(d->dev, b->buf, &req);
        VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                                   .allocationSize = req.size,
                                   .memoryTypeIndex = d->mem_type[life]};
        r = vkAllocateMemory(d->dev, &ai, NULL, &b->mem);
        if (r == VK_SUCCESS)
            break;
        vkDestroyBuffer(d->dev, b->buf, NULL);
        b->buf = VK_NULL_HANDLE;
        if (size <= round_up(need, d->align))
            break;
    }
    if (r != VK_SUCCESS) {
        loom_free(d->ctx, b, sizeof *b);
        loom_status s = vk_fail(d, r, "vkAllocateMemory", "for a %s block of %llu bytes (%llu needed)",
                                life_name(life), (unsigned long long)size, (unsigned long long)need);
        return s == LOOM_E_DEVICE && r != VK_ERROR_DEVICE_LOST ? LOOM_E_OOM : s;
    }
    d->nallocs++;
    b->size = size;
    if (loom_suballoc_init(&b->sa, d->ctx, size) != LOOM_OK) {
        block_destroy(d, b);
        return loom_fail(d->ctx, LOOM_E_OOM, "%s: out of host memory for a memory block", d->info->spec);
    }
    r = vkBindBufferMemory(d->dev, b->buf, b->mem, 0);
    if (r == VK_SUCCESS && d->mapped[life]) {
        void *m = NULL;
        r = vkMapMemory(d->dev, b->mem, 0, VK_WHOLE_SIZE, 0, &m);
        b->map = m;
    }
    if (r != VK_SUCCESS) {
        block_destroy(d, b);
        return vk_fail(d, r, d->mapped[life] ? "vkMapMemory" : "vkBindBufferMemory", "for a %s block of %llu bytes",
                       life_name(life), (unsigned long long)size);
    }
    b->next = d->blocks[life];
    d->blocks[life] = b;
    loom_logf(d->ctx, LOOM_LOG_DEBUG, "%s: new %s block of %llu bytes (%u allocations)", d->info->spec,
              life_name(life), (unsigned long long)size, d->nallocs);
    *out = b;
    return LOOM_OK;
}

loom_status vk_buffer_alloc(void *bdev, uint64_t bytes, loom_lifetime life, void **out)
{
    vk_dev *d = bdev;
    *out = NULL;
    if (bytes == 0)
        bytes = 4;
    uint64_t size = round_up(bytes, 4);
    vk_buf *vb = loom_calloc(d->ctx, 1, sizeof *vb);
    if (!vb)
        return loom_fail(d->ctx, LOOM_E_OOM, "%s: out of host memory for a buffer", d->info->spec);
    uint64_t off = 0;
    vk_block *b;
    int got = 0;
    for (b = d->blocks[life]; b; b = b->next) {
        if (b->size - b->sa.used < size)
            continue;
        if ((got = loom_suballoc_take(&b->sa, size, d->align, &off)) != 0)
            break;
    }
    if (got < 0) {
        loom_free(d->ctx, vb, sizeof *vb);
        return loom_fail(d->ctx, LOOM_E_OOM, "%s: out of host memory for a buffer", d->info->spec);
    }
    if (got == 0) {
        loom_status s = block_new(d, life, size, &b);
        if (s != LOOM_OK) {
            loom_free(d->ctx, vb, sizeof *vb);
            return s;
        }
        if (loom_suballoc_take(&b->sa, size, d->align, &off) != 1) {
            loom_free(d->ctx, vb, sizeof *vb);
            return loom_fail(d->ctx, LOOM_E_OOM, "%s: out of host memory for a buffer", d->info->spec);
        }
    }
    vb->block = b;
    vb->offset = off;
    vb->size = size;
    *out = vb;
    return LOOM_OK;
}

void vk_buffer_free(void *bdev, void *buf)
{
    vk_dev *d = bdev;
    vk_buf *vb = buf;
    if (!vb)
        return;
    /* A queued write must not land in memory handed out again. */
    if (!d->lost && has_pending(d, vb) && flush_uploads(d) != LOOM_OK)
        vk_uploads_done(d);
    vk_block *b = vb->block;
    loom_suballoc_give(&b->sa, vb->offset, vb->size);
    loom_free(d->ctx, vb, sizeof *vb);
    /* An empty block goes back to the driver unless it is the last of its
     * lifetime (kept for the next program). */
    if (b->sa.used == 0 && !(d->blocks[b->life] == b && !b->next)) {
        vk_block **pp = &d->blocks[b->life];
        while (*pp != b)
            pp = &(*pp)->next;
        *pp = b->next;
        block_destroy(d, b);
    }
}

void vk_memory_trim(vk_dev *d)
{
    for (int l = 0; l < VK_LIFETIMES; l++) {
        if (l == LOOM_LIFE_STAGING)
            continue;
        vk_block **pp = &d->blocks[l];
        while (*pp) {
            vk_block *b = *pp;
            if (b->sa.used == 0) {
                *pp = b->next;
                block_destroy(d, b);
            } else {
                pp = &b->next;
            }
        }
    }
}

void *vk_buffer_map(const vk_buf *b)
{
    return b->block->map ? b->block->map + b->offset : NULL;
}

static loom_status check_range(vk_dev *d, const vk_buf *b, uint64_t off, uint64_t bytes, const char *what)
{
    if (off > b->size || bytes > b->size - off)
        return loom_fail(d->ctx, LOOM_E_INVALID, "%s: %s of %llu bytes at %llu past a %llu-byte buffer", d->info->spec,
                         what, (unsigned long long)bytes, (unsigned long long)off, (unsigned long long)b->size);
    if (d->lost)
        return loom_fail(d->ctx, LOOM_E_DEVICE, "%s (%s): the device was lost; cannot %s", d->info->spec,
                         d->info->name, what);
    return LOOM_OK;
}

/* Copies between the host and an unmapped buffer through the staging
 * buffer, one chunk per submit. */
static loom_status staged(vk_dev *d, vk_buf *b, uint64_t off, unsigned char *host, uint64_t bytes, int to_device)
{
    if (!d->staging) {
        void *sb = NULL;
        LOOM_TRY(vk_buffer_alloc(d, STAGING_BYTES, LOOM_LIFE_STAGING, &sb));
        d->staging = sb;
    }
    unsigned char *smap = vk_buffer_map(d->staging);
    const char *what = to_device ? "an upload" : "a download";
    for (uint64_t done = 0; done < bytes;) {
        uint64_t n = bytes - done < d->staging->size ? bytes - done : d->staging->size;
        if (to_device)
            memcpy(smap, host + done, (size_t)n);
        VkCommandBuffer cb;
        LOOM_TRY(vk_begin_oneoff(d, &cb, what));
        VkBufferCopy cp = {.size = n};
        VkBuffer src, dst;
        if (to_device) {
            src = d->staging->block->buf;
            dst = b->block->buf;
            cp.srcOffset = d->staging->offset;
            cp.dstOffset = b->offset + off + done;
        } else {
            src = b->block->buf;
            dst = d->staging->block->buf;
            cp.srcOffset = b->offset + off + done;
            cp.dstOffset = d->staging->offset;
        }
        /* Earlier dispatches' writes become visible to the copy, the copy's
         * to later dispatches and to the host. */
        VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                              .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                              .dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT};
        vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                             VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
        vkCmdCopyBuffer(cb, src, dst, 1, &cp);
        mb.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
        mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_HOST_READ_BIT;
        vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT,
                             VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0,
                             NULL);
        VkResult r = vkEndCommandBuffer(cb);
        loom_status s = r == VK_SUCCESS ? vk_submit_wait(d, cb, what) : vk_fail(d, r, "vkEndCommandBuffer", "for %s", what);
        vk_end_oneoff(d, cb);
        if (s != LOOM_OK)
            return s;
        if (!to_device)
            memcpy(host + done, smap, (size_t)n);
        done += n;
    }
    return LOOM_OK;
}

/* ---- uploads deferred to the next submit ---------------------------------- */

loom_status vk_record_uploads(vk_dev *d, int *any)
{
    *any = d->ncopies > 0;
    if (!*any)
        return LOOM_OK;
    VkResult r = VK_SUCCESS;
    if (!d->upload_cb) {
        VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                          .commandPool = d->cmd_pool,
                                          .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                          .commandBufferCount = 1};
        if ((r = vkAllocateCommandBuffers(d->dev, &ai, &d->upload_cb)) != VK_SUCCESS) {
            d->upload_cb = VK_NULL_HANDLE;
            return vk_fail(d, r, "vkAllocateCommandBuffers", "for %d uploads", d->ncopies);
        }
    }
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    if ((r = vkBeginCommandBuffer(d->upload_cb, &bi)) != VK_SUCCESS)
        return vk_fail(d, r, "vkBeginCommandBuffer", "for %d uploads", d->ncopies);
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT};
    vkCmdPipelineBarrier(d->upload_cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    for (int i = 0; i < d->ncopies; i++)
        vkCmdCopyBuffer(d->upload_cb, d->upload->block->buf, d->copies[i].dst, 1, &d->copies[i].region);
    mb.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
    mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                       VK_ACCESS_TRANSFER_WRITE_BIT;
    vkCmdPipelineBarrier(d->upload_cb, VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &mb, 0, NULL, 0,
                         NULL);
    if ((r = vkEndCommandBuffer(d->upload_cb)) != VK_SUCCESS)
        return vk_fail(d, r, "vkEndCommandBuffer", "for %d uploads", d->ncopies);
    return LOOM_OK;
}

void vk_uploads_done(vk_dev *d)
{
    d->ncopies = 0;
    d->upload_used = 0;
}

static loom_status flush_uploads(vk_dev *d)
{
    return d->ncopies ? vk_submit_wait(d, VK_NULL_HANDLE, "pending uploads") : LOOM_OK;
}

/* Queues a write for the next submit; 0 if it does not fit (the caller
 * then flushes or copies at once). */
static int defer(vk_dev *d, vk_buf *b, uint64_t off, const void *src, uint64_t bytes)
{
    if (!d->upload) {
        void *ub = NULL;
        if (vk_buffer_alloc(d, STAGING_BYTES, LOOM_LIFE_STAGING, &ub) != LOOM_OK) {
            loom_clear_error(d->ctx);
            return 0;
        }
        d->upload = ub;
    }
    if (d->upload_used + bytes > d->upload->size)
        return 0;
    if (d->ncopies == d->capcopies) {
        int ncap = d->capcopies ? 2 * d->capcopies : 64;
        vk_copy *nc = loom_realloc(d->ctx, d->copies, (size_t)d->capcopies * sizeof *nc, (size_t)ncap * sizeof *nc);
        if (!nc)
            return 0;
        d->copies = nc;
        d->capcopies = ncap;
    }
    memcpy((unsigned char *)vk_buffer_map(d->upload) + d->upload_used, src, (size_t)bytes);
    d->copies[d->ncopies++] = (vk_copy){b->block->buf, {d->upload->offset + d->upload_used, b->offset + off, bytes}};
    d->upload_used = round_up(d->upload_used + bytes, 16);
    return 1;
}

static int has_pending(const vk_dev *d, const vk_buf *b)
{
    for (int i = 0; i < d->ncopies; i++) {
        const VkBufferCopy *c = &d->copies[i].region;
        if (d->copies[i].dst == b->block->buf && c->dstOffset < b->offset + b->size && b->offset < c->dstOffset + c->size)
            return 1;
    }
    return 0;
}

loom_status vk_buffer_write(void *bdev, void *buf, uint64_t off, const void *src, uint64_t bytes)
{
    vk_dev *d = bdev;
    vk_buf *b = buf;
    LOOM_TRY(check_range(d, b, off, bytes, "write"));
    LOOM_TRY(vk_drain(d));
    /* Runs wait for their fence, so no dispatch is using the memory now. */
    unsigned char *m = vk_buffer_map(b);
    if (m) {
        memcpy(m + off, src, (size_t)bytes);
        return LOOM_OK;
    }
    if (bytes == 0 || defer(d, b, off, src, bytes))
        return LOOM_OK;
    LOOM_TRY(flush_uploads(d));
    if (defer(d, b, off, src, bytes))
        return LOOM_OK;
    return staged(d, b, off, (unsigned char *)(uintptr_t)src, bytes, 1);
}

/* Mapped memory is copied as the fence in flight signals (vk_drain);
 * unmapped memory is left to core, which reads it after the wait. */
loom_status vk_buffer_read_async(void *bdev, void *buf, uint64_t off, void *dst, uint64_t bytes)
{
    vk_dev *d = bdev;
    vk_buf *b = buf;
    LOOM_TRY(check_range(d, b, off, bytes, "read"));
    unsigned char *m = vk_buffer_map(b);
    if (!m)
        return LOOM_E_UNSUPPORTED;
    if (!d->inflight) {
        memcpy(dst, m + off, (size_t)bytes);
        return LOOM_OK;
    }
    if (d->nreads == d->capreads) {
        int ncap = d->capreads ? d->capreads * 2 : 16;
        vk_read *nr = loom_realloc(d->ctx, d->reads, (size_t)d->capreads * sizeof *nr, (size_t)ncap * sizeof *nr);
        if (!nr)
            return loom_fail(d->ctx, LOOM_E_OOM, "%s: out of memory queuing a read", d->info->spec);
        d->reads = nr;
        d->capreads = ncap;
    }
    d->reads[d->nreads++] = (vk_read){dst, m + off, (size_t)bytes};
    return LOOM_OK;
}

void vk_reads_done(vk_dev *d)
{
    for (int i = 0; i < d->nreads; i++)
        memcpy(d->reads[i].dst, d->reads[i].src, d->reads[i].bytes);
    d->nreads = 0;
}

loom_status vk_buffer_read(void *bdev, void *buf, uint64_t off, void *dst, uint64_t bytes)
{
    vk_dev *d = bdev;
    vk_buf *b = buf;
    LOOM_TRY(check_range(d, b, off, bytes, "read"));
    LOOM_TRY(vk_drain(d));
    unsigned char *m = vk_buffer_map(b);
    if (m) {
        memcpy(dst, m + off, (size_t)bytes);
        return LOOM_OK;
    }
    return staged(d, b, off, dst, bytes, 0);
}
