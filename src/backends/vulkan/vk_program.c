/* A program on Vulkan: every node's dispatches with their descriptor sets,
 * recorded once into one command buffer with a barrier only where a
 * dispatch touches memory an earlier one wrote (or writes what an earlier
 * one read); a run is one submit and one fence wait. */
#include "vk_internal.h"
#include "../common/layout.h"

#include <math.h>
#include <string.h>

/* ---- hazards ---------------------------------------------------------------- */

typedef struct vk_access {
    VkBuffer buf;
    uint64_t lo, hi;
} vk_access;

typedef struct vk_hazards {
    vk_access *reads, *writes;
    int nreads, nwrites, cap;
} vk_hazards;

static int overlaps(const vk_access *list, int n, const vk_bind *b)
{
    for (int i = 0; i < n; i++)
        if (list[i].buf == b->buf && list[i].lo < b->offset + b->range && b->offset < list[i].hi)
            return 1;
    return 0;
}

/* 1 if the dispatch must wait for the dispatches since the last barrier. */
static int needs_barrier(const vk_hazards *h, const vk_dispatch *x)
{
    for (int i = 0; i < x->nbind; i++) {
        const vk_bind *b = &x->bind[i];
        if ((b->access & VK_READ) && overlaps(h->writes, h->nwrites, b))
            return 1;
        if ((b->access & VK_WRITE) && (overlaps(h->writes, h->nwrites, b) || overlaps(h->reads, h->nreads, b)))
            return 1;
    }
    return 0;
}

static void note_accesses(vk_hazards *h, const vk_dispatch *x)
{
    for (int i = 0; i < x->nbind; i++) {
        const vk_bind *b = &x->bind[i];
        vk_access a = {b->buf, b->offset, b->offset + b->range};
        if ((b->access & VK_READ) && h->nreads < h->cap)
            h->reads[h->nreads++] = a;
        if ((b->access & VK_WRITE) && h->nwrites < h->cap)
            h->writes[h->nwrites++] = a;
    }
}

static void barrier(VkCommandBuffer cb, VkPipelineStageFlags src, VkAccessFlags sa, VkPipelineStageFlags dst,
                    VkAccessFlags da)
{
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = sa, .dstAccessMask = da};
    vkCmdPipelineBarrier(cb, src, dst, 0, 1, &mb, 0, NULL, 0, NULL);
}

/* ---- prepare ------------------------------------------------------------------ */

void vk_release(void *bp)
{
    vk_prog *p = bp;
    if (!p)
        return;
    vk_dev *d = p->d;
    loom_ctx *ctx = d->ctx;
    int n = p->prog->nnodes ? p->prog->nnodes : 1;
    if (p->cb)
        vkFreeCommandBuffers(d->dev, d->cmd_pool, 1, &p->cb);
    if (p->qpool)
        vkDestroyQueryPool(d->dev, p->qpool, NULL);
    if (p->pool)
        vkDestroyDescriptorPool(d->dev, p->pool, NULL);
    for (int i = 0; i < p->nviews; i++)
        vkDestroyBufferView(d->dev, p->views[i], NULL);
    if (p->runbuf)
        vk_buffer_free(d, p->runbuf);
    loom_free(ctx, p->views, (size_t)p->capviews * sizeof *p->views);
    loom_free(ctx, p->disp, (size_t)p->capdisp * sizeof *p->disp);
    loom_free(ctx, p->table, (size_t)p->captable * sizeof *p->table);
    loom_free(ctx, p->t0, (size_t)n * sizeof *p->t0);
    loom_free(ctx, p->t1, (size_t)n * sizeof *p->t1);
    loom_free(ctx, p, sizeof *p);
}

static loom_status make_view(vk_prog *p, const vk_bind *b, VkBufferView *out)
{
    vk_dev *d = p->d;
    if (p->nviews == p->capviews) {
        int ncap = p->capviews ? 2 * p->capviews : 16;
        VkBufferView *nv = loom_realloc(d->ctx, p->views, (size_t)p->capviews * sizeof *nv, (size_t)ncap * sizeof *nv);
        if (!nv)
            return loom_fail(d->ctx, LOOM_E_OOM, "%s: out of memory for buffer views", d->info->spec);
        p->views = nv;
        p->capviews = ncap;
    }
    VkBufferViewCreateInfo vi = {.sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO,
                                 .buffer = b->buf,
                                 .format = b->texel == 4 ? VK_FORMAT_R32G32B32A32_SFLOAT : VK_FORMAT_R32_SFLOAT,
                                 .offset = b->offset,
                                 .range = b->range};
    VkResult r = vkCreateBufferView(d->dev, &vi, NULL, &p->views[p->nviews]);
    if (r != VK_SUCCESS)
        return vk_fail(d, r, "vkCreateBufferView", "for a %llu-byte texel binding", (unsigned long long)b->range);
    *out = p->views[p->nviews++];
    return LOOM_OK;
}

static const char *node_name(const vk_prog *p, int node)
{
    return p->prog->nodes[node].node->name;
}

static loom_status make_sets(vk_prog *p)
{
    vk_dev *d = p->d;
    static const char kinds[3] = {'S', 'T', 'I'};
    uint32_t count[3] = {0, 0, 0};
    for (int i = 0; i < p->ndisp; i++)
        for (int k = 0; k < p->disp[i].nbind; k++) {
            char kind = p->disp[i].pipe->sh.kinds[k];
            count[kind == 'T' ? 1 : kind == 'I' ? 2 : 0]++;
        }
    VkDescriptorPoolSize ps[3];
    uint32_t nps = 0;
    for (int t = 0; t < 3; t++)
        if (count[t])
            ps[nps++] = (VkDescriptorPoolSize){vk_kind_type(kinds[t]), count[t]};
    VkDescriptorPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                      .maxSets = (uint32_t)p->ndisp,
                                      .poolSizeCount = nps,
                                      .pPoolSizes = ps};
    VkResult r = vkCreateDescriptorPool(d->dev, &pci, NULL, &p->pool);
    if (r != VK_SUCCESS)
        return vk_fail(d, r, "vkCreateDescriptorPool", "for %d dispatches", p->ndisp);
    for (int i = 0; i < p->ndisp; i++) {
        vk_dispatch *x = &p->disp[i];
        VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                          .descriptorPool = p->pool,
                                          .descriptorSetCount = 1,
                                          .pSetLayouts = &x->pipe->dsl};
        r = vkAllocateDescriptorSets(d->dev, &ai, &x->set);
        if (r != VK_SUCCESS)
            return vk_fail(d, r, "vkAllocateDescriptorSets", "for op %s (\"%s\")",
                           loom_op_name(p->prog->nodes[x->node].node->op), node_name(p, x->node));
        VkWriteDescriptorSet w[VK_MAX_BINDINGS];
        VkDescriptorBufferInfo bi[VK_MAX_BINDINGS];
        VkBufferView views[VK_MAX_BINDINGS];
        for (int k = 0; k < x->nbind; k++) {
            const vk_bind *b = &x->bind[k];
            w[k] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                          .dstSet = x->set,
                                          .dstBinding = (uint32_t)k,
                                          .descriptorCount = 1};
            char kind = x->pipe->sh.kinds[k];
            w[k].descriptorType = vk_kind_type(kind);
            if (kind != 'S') {
                LOOM_TRY(make_view(p, b, &views[k]));
                w[k].pTexelBufferView = &views[k];
            } else {
                bi[k] = (VkDescriptorBufferInfo){b->buf, b->offset, b->range};
                w[k].pBufferInfo = &bi[k];
            }
        }
        vkUpdateDescriptorSets(d->dev, (uint32_t)x->nbind, w, 0, NULL);
    }
    return LOOM_OK;
}

static loom_status record(vk_prog *p)
{
    vk_dev *d = p->d;
    const loom_exec_program *prog = p->prog;
    VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                      .commandPool = d->cmd_pool,
                                      .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                      .commandBufferCount = 1};
    VkResult r = vkAllocateCommandBuffers(d->dev, &ai, &p->cb);
    if (r != VK_SUCCESS) {
        p->cb = VK_NULL_HANDLE;
        return vk_fail(d, r, "vkAllocateCommandBuffers", "recording a program of %d nodes", prog->nnodes);
    }
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    if ((r = vkBeginCommandBuffer(p->cb, &bi)) != VK_SUCCESS)
        return vk_fail(d, r, "vkBeginCommandBuffer", "recording a program of %d nodes", prog->nnodes);
    vk_hazards h = {0};
    int nbind = 0;
    for (int i = 0; i < p->ndisp; i++)
        nbind += p->disp[i].nbind;
    h.cap = nbind ? nbind : 1;
    h.reads = loom_calloc(d->ctx, (size_t)h.cap, sizeof *h.reads);
    h.writes = loom_calloc(d->ctx, (size_t)h.cap, sizeof *h.writes);
    if (!h.reads || !h.writes) {
        loom_free(d->ctx, h.reads, (size_t)h.cap * sizeof *h.reads);
        loom_free(d->ctx, h.writes, (size_t)h.cap * sizeof *h.writes);
        return loom_fail(d->ctx, LOOM_E_OOM, "%s: out of memory recording a program", d->info->spec);
    }
    if (p->qpool)
        vkCmdResetQueryPool(p->cb, p->qpool, 0, 2u * (uint32_t)prog->nnodes);
    /* What the host, a copy or the previous run wrote is visible to this one. */
    barrier(p->cb, VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
            VK_ACCESS_HOST_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT | VK_ACCESS_SHADER_WRITE_BIT,
            VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
    VkPipeline bound = VK_NULL_HANDLE;
    int di = 0;
    for (int n = 0; n < prog->nnodes; n++) {
        if (p->qpool)
            vkCmdWriteTimestamp(p->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, p->qpool, 2u * (uint32_t)n);
        for (; di < p->ndisp && p->disp[di].node == n; di++) {
            vk_dispatch *x = &p->disp[di];
            if (needs_barrier(&h, x)) {
                barrier(p->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT,
                        VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
                h.nreads = h.nwrites = 0;
                p->nbarriers++;
            }
            note_accesses(&h, x);
            if (x->pipe->pipe != bound) {
                vkCmdBindPipeline(p->cb, VK_PIPELINE_BIND_POINT_COMPUTE, x->pipe->pipe);
                bound = x->pipe->pipe;
            }
            vkCmdBindDescriptorSets(p->cb, VK_PIPELINE_BIND_POINT_COMPUTE, x->pipe->layout, 0, 1, &x->set, 0, NULL);
            vkCmdPushConstants(p->cb, x->pipe->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, x->push_size, x->push);
            vkCmdDispatch(p->cb, x->groups[0], x->groups[1], x->groups[2]);
        }
        if (p->qpool)
            vkCmdWriteTimestamp(p->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, p->qpool, 2u * (uint32_t)n + 1);
    }
    loom_free(d->ctx, h.reads, (size_t)h.cap * sizeof *h.reads);
    loom_free(d->ctx, h.writes, (size_t)h.cap * sizeof *h.writes);
    /* The results are visible to the host (mapped reads) and to copies. */
    barrier(p->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT,
            VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
            VK_ACCESS_HOST_READ_BIT | VK_ACCESS_TRANSFER_READ_BIT);
    if ((r = vkEndCommandBuffer(p->cb)) != VK_SUCCESS)
        return vk_fail(d, r, "vkEndCommandBuffer", "recording a program of %d nodes", prog->nnodes);
    return LOOM_OK;
}

loom_status vk_prepare(void *bdev, const loom_exec_program *prog, void **out)
{
    vk_dev *d = bdev;
    loom_ctx *ctx = d->ctx;
    *out = NULL;
    if (d->lost)
        return loom_fail(ctx, LOOM_E_DEVICE, "%s (%s): the device was lost; cannot prepare %s", d->info->spec,
                         d->info->name, prog->name);
    vk_prog *p = loom_calloc(ctx, 1, sizeof *p);
    if (!p)
        return loom_fail(ctx, LOOM_E_OOM, "%s: out of memory preparing %s", d->info->spec, prog->name);
    p->d = d;
    p->prog = prog;
    int n = prog->nnodes ? prog->nnodes : 1;
    p->t0 = loom_calloc(ctx, (size_t)n, sizeof *p->t0);
    p->t1 = loom_calloc(ctx, (size_t)n, sizeof *p->t1);
    loom_status s = LOOM_OK;
    if (!p->t0 || !p->t1) {
        s = loom_fail(ctx, LOOM_E_OOM, "%s: out of memory preparing %s", d->info->spec, prog->name);
        goto fail;
    }
    for (int i = 0; i < prog->nnodes && s == LOOM_OK; i++)
        s = vk_plan_node(p, &prog->nodes[i]);
    if (s != LOOM_OK)
        goto fail;
    if (prog->nslots || p->ntable) {
        /* the run slots, then (at a binding's alignment) the table */
        uint64_t slots = (uint64_t)prog->nslots * sizeof(loom_run_slot), align = d->lim->storage_align ? d->lim->storage_align : 16;
        uint64_t tab = (slots + align - 1) / align * align, bytes = tab + (uint64_t)p->ntable * 4;
        void *rb = NULL;
        if ((s = vk_buffer_alloc(d, bytes ? bytes : 4, LOOM_LIFE_STAGING, &rb)) != LOOM_OK)
            goto fail;
        p->runbuf = rb;
        if (p->ntable)
            memcpy((unsigned char *)vk_buffer_map(p->runbuf) + tab, p->table, (size_t)p->ntable * 4);
        for (int i = 0; i < p->ndisp; i++)
            for (int k = 0; k < p->disp[i].nbind; k++) {
                vk_bind *b = &p->disp[i].bind[k];
                if (b->buf != VK_NULL_HANDLE)
                    continue;
                int t = b->table;
                *b = (vk_bind){p->runbuf->block->buf, p->runbuf->offset + (t ? tab : 0), t ? (uint64_t)p->ntable * 4 : slots,
                               0, VK_READ, 0};
            }
    }
    if ((s = vk_pipes_warm(d)) != LOOM_OK)
        goto fail;
    if (p->ndisp && (s = make_sets(p)) != LOOM_OK)
        goto fail;
    if (prog->profile && prog->nnodes && d->lim->timestamp_bits) {
        VkQueryPoolCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                    .queryType = VK_QUERY_TYPE_TIMESTAMP,
                                    .queryCount = 2u * (uint32_t)prog->nnodes};
        VkResult r = vkCreateQueryPool(d->dev, &qi, NULL, &p->qpool);
        if (r != VK_SUCCESS) {
            p->qpool = VK_NULL_HANDLE;
            s = vk_fail(d, r, "vkCreateQueryPool", "for %d profiled nodes", prog->nnodes);
            goto fail;
        }
    }
    if ((s = record(p)) != LOOM_OK)
        goto fail;
    loom_logf(ctx, LOOM_LOG_DEBUG, "%s: %s recorded: %d nodes, %d dispatches, %d barriers", d->info->spec, prog->name,
              prog->nnodes, p->ndisp, p->nbarriers);
    *out = p;
    return LOOM_OK;
fail:
    vk_release(p);
    return s;
}

/* ---- run ----------------------------------------------------------------------- */

/* The run's values, computed in core, go up as they are. */
static void write_slots(vk_prog *p, const loom_run_args *args)
{
    memcpy(vk_buffer_map(p->runbuf), args->slots, (size_t)args->nslots * sizeof(loom_run_slot));
}

/* Device ticks to host CLOCK_MONOTONIC ns. */
static void map_times(vk_prog *p, const uint64_t *ticks, double host_done)
{
    vk_dev *d = p->d;
    int n = p->prog->nnodes;
    double period = d->lim->timestamp_period;
    uint64_t mask = d->lim->timestamp_bits >= 64 ? ~0ull : (1ull << d->lim->timestamp_bits) - 1;
    double offset;
    uint64_t stamps[2], dev_max;
    VkCalibratedTimestampInfoEXT ci[2] = {
        {.sType = VK_STRUCTURE_TYPE_CALIBRATED_TIMESTAMP_INFO_EXT, .timeDomain = VK_TIME_DOMAIN_DEVICE_EXT},
        {.sType = VK_STRUCTURE_TYPE_CALIBRATED_TIMESTAMP_INFO_EXT, .timeDomain = VK_TIME_DOMAIN_CLOCK_MONOTONIC_EXT}};
    if (d->get_calibrated && d->get_calibrated(d->dev, 2, ci, stamps, &dev_max) == VK_SUCCESS) {
        offset = (double)stamps[1] - (double)(stamps[0] & mask) * period;
    } else {
        /* No calibration: the last node is taken to end when the fence
         * wait returned (an upper bound, late by the wake-up time). */
        offset = host_done - (double)(ticks[2 * n - 1] & mask) * period;
    }
    for (int i = 0; i < n; i++) {
        p->t0[i] = offset + (double)(ticks[2 * i] & mask) * period;
        p->t1[i] = offset + (double)(ticks[2 * i + 1] & mask) * period;
    }
}

loom_status vk_submit(void *bp, const loom_run_args *args, void **fence)
{
    vk_prog *p = bp;
    vk_dev *d = p->d;
    *fence = NULL;
    LOOM_TRY(vk_drain(d)); /* the run buffer may still be read */
    if (p->runbuf)
        write_slots(p, args);
    p->have_times = 0;
    char what[160];
    snprintf(what, sizeof what, "%s (%d nodes, %d dispatches)", p->prog->name, p->prog->nnodes, p->ndisp);
    return vk_submit_nowait(d, p->cb, what);
}

loom_status vk_wait(void *bp, void *fence)
{
    vk_prog *p = bp;
    vk_dev *d = p->d;
    (void)fence; /* the device's one fence */
    LOOM_TRY(vk_drain(d));
    if (p->qpool) {
        double done = loom_now_ns();
        int n = p->prog->nnodes;
        uint64_t *ticks = loom_malloc(d->ctx, (size_t)n * 2 * sizeof *ticks);
        if (!ticks)
            return loom_fail(d->ctx, LOOM_E_OOM, "%s: out of memory reading timestamps", d->info->spec);
        VkResult r = vkGetQueryPoolResults(d->dev, p->qpool, 0, 2u * (uint32_t)n, (size_t)n * 2 * sizeof *ticks,
                                           ticks, sizeof *ticks, VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT);
        if (r == VK_SUCCESS) {
            map_times(p, ticks, done);
            p->have_times = 1;
        }
        loom_free(d->ctx, ticks, (size_t)n * 2 * sizeof *ticks);
        if (r != VK_SUCCESS)
            return vk_fail(d, r, "vkGetQueryPoolResults", "reading the timestamps of %s (%d nodes)", p->prog->name,
                           n);
    }
    return LOOM_OK;
}

loom_status vk_run(void *bp, const loom_run_args *args)
{
    void *fence;
    LOOM_TRY(vk_submit(bp, args, &fence));
    return vk_wait(bp, fence);
}

loom_status vk_timestamps(void *bp, double *start_ns, double *end_ns, int n)
{
    vk_prog *p = bp;
    if (!p->prog->profile || n != p->prog->nnodes)
        return loom_fail(p->d->ctx, LOOM_E_STATE, "%s: no timestamps: the program was not compiled with profiling",
                         p->d->info->spec);
    if (!p->qpool)
        return loom_fail(p->d->ctx, LOOM_E_UNSUPPORTED, "%s (%s): the compute queue has no timestamps",
                         p->d->info->spec, p->d->info->name);
    if (!p->have_times)
        return loom_fail(p->d->ctx, LOOM_E_STATE, "%s: no timestamps yet: run the program first", p->d->info->spec);
    memcpy(start_ns, p->t0, (size_t)n * sizeof *start_ns);
    memcpy(end_ns, p->t1, (size_t)n * sizeof *end_ns);
    return LOOM_OK;
}

int vk_dispatches(void *bprog)
{
    return ((const vk_prog *)bprog)->ndisp;
}
