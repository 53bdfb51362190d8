/* Compute pipelines, one per (shader, specialization constants) and
 * device, created on first use and kept until the device closes; the
 * VkPipelineCache that makes the next process's creation cheap, stored in
 * the cache folder and checked before the driver sees it. */
#include "vk_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* ---- the cache file -------------------------------------------------------
 * A loom header, then the driver's cache data verbatim:
 *   "LOOMVKPC" | u32 version | u32 vendorID | u32 deviceID | u32 driverVersion
 *   | u8 pipelineCacheUUID[16] | u64 data bytes | u64 FNV-1a of the data
 * Anything that does not match this device and driver, or whose size or
 * checksum is off, is ignored with a log line. */

#define PC_MAGIC "LOOMVKPC"
#define PC_VERSION 1u
#define PC_HEADER 56

static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

int vk_mkdirs(const char *path)
{
    char buf[600];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return -1;
            buf[i] = c;
        }
    }
    return 0;
}

/* Why the file cannot be used, or NULL if it can. */
static const char *check_file(const vk_dev *d, const unsigned char *f, size_t n)
{
    const vk_limits *lim = d->lim;
    if (n < PC_HEADER)
        return "truncated header";
    if (memcmp(f, PC_MAGIC, 8) != 0)
        return "not a loom pipeline cache";
    if (get32(f + 8) != PC_VERSION)
        return "another version of the file format";
    if (get32(f + 12) != lim->vendor_id || get32(f + 16) != lim->device_id)
        return "written for another device";
    if (get32(f + 20) != lim->driver_version || memcmp(f + 24, lim->cache_uuid, VK_UUID_SIZE) != 0)
        return "written by another driver or driver version";
    uint64_t bytes = get64(f + 40);
    if (bytes != n - PC_HEADER)
        return "truncated or padded data";
    if (fnv1a(f + PC_HEADER, (size_t)bytes) != get64(f + 48))
        return "checksum mismatch (corrupt data)";
    /* The driver's own header, as VkPipelineCacheHeaderVersionOne. */
    const unsigned char *v = f + PC_HEADER;
    if (bytes < 32 || get32(v) < 32 || get32(v + 4) != VK_PIPELINE_CACHE_HEADER_VERSION_ONE ||
        get32(v + 8) != lim->vendor_id || get32(v + 12) != lim->device_id ||
        memcmp(v + 16, lim->cache_uuid, VK_UUID_SIZE) != 0)
        return "the driver's header does not match this device";
    return NULL;
}

void vk_pcache_load(vk_dev *d)
{
    snprintf(d->pcache_path, sizeof d->pcache_path, "%s/vulkan-%s.pipelines", d->ctx->cache_dir, d->info->uuid);
    unsigned char *buf = NULL;
    size_t n = 0;
    FILE *f = fopen(d->pcache_path, "rb");
    if (f) {
        if (fseek(f, 0, SEEK_END) == 0) {
            long len = ftell(f);
            if (len > 0 && len < (1L << 30) && fseek(f, 0, SEEK_SET) == 0) {
                buf = loom_malloc(d->ctx, (size_t)len);
                if (buf && fread(buf, 1, (size_t)len, f) == (size_t)len)
                    n = (size_t)len;
            }
        }
        fclose(f);
    }
    const void *init = NULL;
    size_t init_n = 0;
    if (f && n == 0) {
        loom_logf(d->ctx, LOOM_LOG_INFO, "%s: pipeline cache %s ignored: empty or unreadable", d->info->spec,
                  d->pcache_path);
    } else if (n) {
        const char *why = check_file(d, buf, n);
        if (why) {
            loom_logf(d->ctx, LOOM_LOG_INFO, "%s: pipeline cache %s ignored: %s", d->info->spec, d->pcache_path, why);
        } else {
            init = buf + PC_HEADER;
            init_n = n - PC_HEADER;
        }
    }
    VkPipelineCacheCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO,
                                    .initialDataSize = init_n,
                                    .pInitialData = init};
    VkResult r = vkCreatePipelineCache(d->dev, &ci, NULL, &d->pcache);
    if (r != VK_SUCCESS && init) {
        loom_logf(d->ctx, LOOM_LOG_INFO, "%s: pipeline cache %s ignored: the driver refused it (%s)", d->info->spec,
                  d->pcache_path, vk_result_str(r));
        ci.initialDataSize = 0;
        ci.pInitialData = NULL;
        init = NULL;
        r = vkCreatePipelineCache(d->dev, &ci, NULL, &d->pcache);
    }
    if (r != VK_SUCCESS) {
        d->pcache = VK_NULL_HANDLE; /* pipelines are still created, uncached */
        loom_logf(d->ctx, LOOM_LOG_WARN, "%s: vkCreatePipelineCache failed (%s); running without a pipeline cache",
                  d->info->spec, vk_result_str(r));
    } else if (init) {
        loom_logf(d->ctx, LOOM_LOG_INFO, "%s: pipeline cache loaded from %s (%zu bytes)", d->info->spec,
                  d->pcache_path, init_n);
    }
    loom_free(d->ctx, buf, n ? n : 1);
}

void vk_pcache_save(vk_dev *d)
{
    if (!d->pcache || !d->pcache_dirty || d->lost)
        return;
    size_t n = 0;
    if (vkGetPipelineCacheData(d->dev, d->pcache, &n, NULL) != VK_SUCCESS || n == 0)
        return;
    unsigned char *buf = loom_malloc(d->ctx, PC_HEADER + n);
    if (!buf)
        return;
    VkResult r = vkGetPipelineCacheData(d->dev, d->pcache, &n, buf + PC_HEADER);
    if (r == VK_SUCCESS) {
        memcpy(buf, PC_MAGIC, 8);
        put32(buf + 8, PC_VERSION);
        put32(buf + 12, d->lim->vendor_id);
        put32(buf + 16, d->lim->device_id);
        put32(buf + 20, d->lim->driver_version);
        memcpy(buf + 24, d->lim->cache_uuid, VK_UUID_SIZE);
        put64(buf + 40, n);
        put64(buf + 48, fnv1a(buf + PC_HEADER, n));
        /* A cache that cannot be written costs start-up time, not results:
         * it is logged, not returned. */
        char err[LOOM_ERRMSG];
        snprintf(err, sizeof err, "%s", d->ctx->error);
        if (vk_mkdirs(d->ctx->cache_dir) != 0 ||
            loom_write_file_atomic(d->ctx, d->pcache_path, buf, PC_HEADER + n) != LOOM_OK)
            loom_logf(d->ctx, LOOM_LOG_WARN, "%s: cannot write the pipeline cache %s", d->info->spec, d->pcache_path);
        else
            loom_logf(d->ctx, LOOM_LOG_INFO, "%s: pipeline cache saved to %s (%zu bytes)", d->info->spec,
                      d->pcache_path, n);
        snprintf(d->ctx->error, sizeof d->ctx->error, "%s", err);
        d->pcache_dirty = 0;
    }
    loom_free(d->ctx, buf, PC_HEADER + n);
}

/* ---- pipelines ------------------------------------------------------------- */

VkDescriptorType vk_kind_type(char kind)
{
    return kind == 'T' ? VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER
           : kind == 'I' ? VK_DESCRIPTOR_TYPE_STORAGE_TEXEL_BUFFER
                         : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
}

static void pipe_destroy(vk_dev *d, vk_pipe *p)
{
    if (p->pipe)
        vkDestroyPipeline(d->dev, p->pipe, NULL);
    if (p->layout)
        vkDestroyPipelineLayout(d->dev, p->layout, NULL);
    if (p->dsl)
        vkDestroyDescriptorSetLayout(d->dev, p->dsl, NULL);
    loom_free(d->ctx, p, sizeof *p);
}

void vk_pipes_destroy(vk_dev *d)
{
    for (int i = 0; i < d->npipes; i++)
        pipe_destroy(d, d->pipes[i]);
    loom_free(d->ctx, d->pipes, (size_t)d->cappipes * sizeof *d->pipes);
    d->pipes = NULL;
    d->npipes = d->cappipes = 0;
}

static loom_status pipe_create(vk_dev *d, const vk_shader *sh, const uint32_t spec[VK_MAX_SPEC], vk_pipe *p)
{
    VkDescriptorSetLayoutBinding b[VK_MAX_BINDINGS];
    uint32_t nb = (uint32_t)strlen(sh->kinds);
    for (uint32_t i = 0; i < nb; i++)
        b[i] = (VkDescriptorSetLayoutBinding){.binding = i,
                                              .descriptorType = vk_kind_type(sh->kinds[i]),
                                              .descriptorCount = 1,
                                              .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    VkDescriptorSetLayoutCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                           .bindingCount = nb,
                                           .pBindings = b};
    VkResult r = vkCreateDescriptorSetLayout(d->dev, &dci, NULL, &p->dsl);
    if (r != VK_SUCCESS)
        return vk_fail(d, r, "vkCreateDescriptorSetLayout", "for shader %s", sh->name);
    VkPushConstantRange pr = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = sh->push_size};
    VkPipelineLayoutCreateInfo lci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                      .setLayoutCount = 1,
                                      .pSetLayouts = &p->dsl,
                                      .pushConstantRangeCount = 1,
                                      .pPushConstantRanges = &pr};
    r = vkCreatePipelineLayout(d->dev, &lci, NULL, &p->layout);
    if (r != VK_SUCCESS)
        return vk_fail(d, r, "vkCreatePipelineLayout", "for shader %s", sh->name);
    VkShaderModuleCreateInfo sci = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                    .codeSize = *sh->words * 4,
                                    .pCode = sh->code};
    VkShaderModule mod;
    r = vkCreateShaderModule(d->dev, &sci, NULL, &mod);
    if (r != VK_SUCCESS)
        return vk_fail(d, r, "vkCreateShaderModule", "for shader %s", sh->name);
    VkSpecializationMapEntry me[VK_MAX_SPEC];
    for (uint32_t i = 0; i < VK_MAX_SPEC; i++)
        me[i] = (VkSpecializationMapEntry){.constantID = i, .offset = 4 * i, .size = 4};
    VkSpecializationInfo si = {.mapEntryCount = VK_MAX_SPEC, .pMapEntries = me, .dataSize = sizeof p->spec, .pData = p->spec};
    VkComputePipelineCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
                                      .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                                                .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                                                .module = mod,
                                                .pName = "main",
                                                .pSpecializationInfo = &si},
                                      .layout = p->layout};
    memcpy(p->spec, spec, sizeof p->spec);
    r = vkCreateComputePipelines(d->dev, d->pcache, 1, &ci, NULL, &p->pipe);
    vkDestroyShaderModule(d->dev, mod, NULL);
    if (r != VK_SUCCESS)
        return vk_fail(d, r, "vkCreateComputePipelines", "for shader %s (variant %u)", sh->name, spec[0]);
    d->pcache_dirty = 1;
    return LOOM_OK;
}

loom_status vk_pipe_get(vk_dev *d, const vk_shader *sh, const uint32_t spec[VK_MAX_SPEC], vk_pipe **out)
{
    for (int i = 0; i < d->npipes; i++) {
        vk_pipe *p = d->pipes[i];
        if (p->sh.code == sh->code && !strcmp(p->sh.kinds, sh->kinds) && !memcmp(p->spec, spec, sizeof p->spec)) {
            *out = p;
            return LOOM_OK;
        }
    }
    if (d->npipes == d->cappipes) {
        int ncap = d->cappipes ? 2 * d->cappipes : 32;
        vk_pipe **np = loom_realloc(d->ctx, d->pipes, (size_t)d->cappipes * sizeof *np, (size_t)ncap * sizeof *np);
        if (!np)
            return loom_fail(d->ctx, LOOM_E_OOM, "%s: out of memory for pipelines", d->info->spec);
        d->pipes = np;
        d->cappipes = ncap;
    }
    vk_pipe *p = loom_calloc(d->ctx, 1, sizeof *p);
    if (!p)
        return loom_fail(d->ctx, LOOM_E_OOM, "%s: out of memory for a pipeline", d->info->spec);
    p->sh = *sh;
    loom_status s = pipe_create(d, sh, spec, p);
    if (s != LOOM_OK) {
        pipe_destroy(d, p);
        return s;
    }
    d->pipes[d->npipes++] = p;
    *out = p;
    return LOOM_OK;
}

loom_status vk_pipes_warm(vk_dev *d)
{
    int cold = 0;
    for (int i = 0; i < d->npipes; i++)
        cold += !d->pipes[i]->warm;
    if (!cold)
        return LOOM_OK;
    VkDescriptorPoolSize ps[3] = {{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, (uint32_t)cold * VK_MAX_BINDINGS},
                                  {VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, (uint32_t)cold * VK_MAX_BINDINGS},
                                  {VK_DESCRIPTOR_TYPE_STORAGE_TEXEL_BUFFER, (uint32_t)cold * VK_MAX_BINDINGS}};
    VkDescriptorPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                      .maxSets = (uint32_t)cold,
                                      .poolSizeCount = 3,
                                      .pPoolSizes = ps};
    VkDescriptorPool pool;
    VkResult r = vkCreateDescriptorPool(d->dev, &pci, NULL, &pool);
    if (r != VK_SUCCESS)
        return vk_fail(d, r, "vkCreateDescriptorPool", "warming %d pipelines", cold);
    VkCommandBuffer cb;
    loom_status s = vk_begin_oneoff(d, &cb, "pipeline warm-up");
    if (s != LOOM_OK) {
        vkDestroyDescriptorPool(d->dev, pool, NULL);
        return s;
    }
    unsigned char zeros[128] = {0};
    for (int i = 0; i < d->npipes && s == LOOM_OK; i++) {
        vk_pipe *p = d->pipes[i];
        if (p->warm)
            continue;
        VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                          .descriptorPool = pool,
                                          .descriptorSetCount = 1,
                                          .pSetLayouts = &p->dsl};
        VkDescriptorSet set;
        r = vkAllocateDescriptorSets(d->dev, &ai, &set);
        if (r != VK_SUCCESS) {
            s = vk_fail(d, r, "vkAllocateDescriptorSets", "warming shader %s", p->sh.name);
            break;
        }
        VkWriteDescriptorSet w[VK_MAX_BINDINGS];
        VkDescriptorBufferInfo bi = {.buffer = d->scratch->block->buf, .offset = d->scratch->offset, .range = 256};
        uint32_t nb = (uint32_t)strlen(p->sh.kinds);
        for (uint32_t k = 0; k < nb; k++) {
            int texel = p->sh.kinds[k] != 'S';
            w[k] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                          .dstSet = set,
                                          .dstBinding = k,
                                          .descriptorCount = 1,
                                          .descriptorType = vk_kind_type(p->sh.kinds[k]),
                                          .pBufferInfo = texel ? NULL : &bi,
                                          .pTexelBufferView = texel ? &d->scratch_view : NULL};
        }
        vkUpdateDescriptorSets(d->dev, nb, w, 0, NULL);
        /* Every warm-up binds the scratch buffer read-write: order them. */
        VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                              .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                              .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT};
        vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb, 0,
                             NULL, 0, NULL);
        vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, p->pipe);
        vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_COMPUTE, p->layout, 0, 1, &set, 0, NULL);
        vkCmdPushConstants(cb, p->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, p->sh.push_size, zeros);
        vkCmdDispatch(cb, 1, 1, 1);
    }
    if (s == LOOM_OK) {
        r = vkEndCommandBuffer(cb);
        s = r == VK_SUCCESS ? vk_submit_wait(d, cb, "pipeline warm-up")
                            : vk_fail(d, r, "vkEndCommandBuffer", "for the pipeline warm-up");
    }
    vk_end_oneoff(d, cb);
    vkDestroyDescriptorPool(d->dev, pool, NULL);
    if (s == LOOM_OK)
        for (int i = 0; i < d->npipes; i++)
            d->pipes[i]->warm = 1;
    return s;
}
