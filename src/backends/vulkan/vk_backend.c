/* The Vulkan backend: instance, validation, physical devices and their
 * limits, the logical device and its compute queue. */
#include "vk_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *vk_result_str(VkResult r)
{
    switch (r) {
    case VK_SUCCESS: return "VK_SUCCESS";
    case VK_NOT_READY: return "VK_NOT_READY";
    case VK_TIMEOUT: return "VK_TIMEOUT";
    case VK_INCOMPLETE: return "VK_INCOMPLETE";
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
    case VK_ERROR_FORMAT_NOT_SUPPORTED: return "VK_ERROR_FORMAT_NOT_SUPPORTED";
    case VK_ERROR_FRAGMENTED_POOL: return "VK_ERROR_FRAGMENTED_POOL";
    case VK_ERROR_OUT_OF_POOL_MEMORY: return "VK_ERROR_OUT_OF_POOL_MEMORY";
    case VK_ERROR_INVALID_EXTERNAL_HANDLE: return "VK_ERROR_INVALID_EXTERNAL_HANDLE";
    case VK_ERROR_FRAGMENTATION: return "VK_ERROR_FRAGMENTATION";
    case VK_PIPELINE_COMPILE_REQUIRED: return "VK_PIPELINE_COMPILE_REQUIRED";
    default: return "VkResult (unnamed)";
    }
}

loom_status vk_fail(vk_dev *d, VkResult r, const char *call, const char *fmt, ...)
{
    char what[LOOM_ERRMSG / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    loom_status s = LOOM_E_DEVICE;
    if (r == VK_ERROR_OUT_OF_HOST_MEMORY || r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_POOL_MEMORY)
        s = LOOM_E_OOM;
    if (r == VK_ERROR_DEVICE_LOST)
        d->lost = 1;
    return loom_fail(d->ctx, s, "%s (%s): %s failed with %s (%d) %s", d->info->spec, d->info->name, call,
                     vk_result_str(r), (int)r, what);
}

/* ---- instance and validation ------------------------------------------- */

static VKAPI_ATTR VkBool32 VKAPI_CALL debug_cb(VkDebugUtilsMessageSeverityFlagBitsEXT sev,
                                               VkDebugUtilsMessageTypeFlagsEXT type,
                                               const VkDebugUtilsMessengerCallbackDataEXT *data, void *user)
{
    loom_ctx *ctx = user;
    (void)type;
    loom_log_level level = LOOM_LOG_DEBUG;
    if (sev & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) {
        level = LOOM_LOG_ERROR;
        ctx->validation_errors++;
    } else if (sev & VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) {
        level = LOOM_LOG_WARN;
    }
    loom_logf(ctx, level, "vulkan validation: %s", data && data->pMessage ? data->pMessage : "(no message)");
    return VK_FALSE;
}

static int has_layer(const char *name)
{
    uint32_t n = 0;
    if (vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0)
        return 0;
    VkLayerProperties props[64];
    if (n > 64)
        n = 64;
    VkResult r = vkEnumerateInstanceLayerProperties(&n, props);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE)
        return 0;
    for (uint32_t i = 0; i < n; i++)
        if (!strcmp(props[i].layerName, name))
            return 1;
    return 0;
}

static VkDebugUtilsMessengerCreateInfoEXT messenger_info(loom_ctx *ctx)
{
    VkDebugUtilsMessengerCreateInfoEXT mi = {.sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT};
    mi.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_VERBOSE_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_INFO_BIT_EXT |
                         VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
    mi.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                     VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
    mi.pfnUserCallback = debug_cb;
    mi.pUserData = ctx;
    return mi;
}

static VkResult create_instance(loom_ctx *ctx, int validate, VkInstance *inst)
{
    static const char *layer = "VK_LAYER_KHRONOS_validation";
    static const char *ext = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                             .pApplicationName = "loom",
                             .pEngineName = "loom",
                             .apiVersion = VK_API_VERSION_1_2};
    VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app};
    /* Synchronization validation checks that the recorded barriers cover
     * every hazard, which is what the recording's barrier tracking claims. */
    VkValidationFeatureEnableEXT enables[] = {VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT};
    VkValidationFeaturesEXT vf = {.sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT,
                                  .enabledValidationFeatureCount = 1,
                                  .pEnabledValidationFeatures = enables};
    VkDebugUtilsMessengerCreateInfoEXT mi = messenger_info(ctx);
    if (validate) {
        ci.enabledLayerCount = 1;
        ci.ppEnabledLayerNames = &layer;
        ci.enabledExtensionCount = 1;
        ci.ppEnabledExtensionNames = &ext;
        /* Chained here too so instance creation itself is reported. */
        mi.pNext = &vf;
        ci.pNext = &mi;
    }
    return vkCreateInstance(&ci, NULL, inst);
}

/* ---- physical devices ---------------------------------------------------- */

static const char *vendor_name(uint32_t id)
{
    switch (id) {
    case 0x1002: return "AMD";
    case 0x10de: return "NVIDIA";
    case 0x8086: return "Intel";
    case 0x13b5: return "ARM";
    case 0x5143: return "Qualcomm";
    case 0x1010: return "ImgTec";
    case 0x10005: return "Mesa";
    default: return "unknown";
    }
}

static loom_device_type map_type(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return LOOM_DEVICE_DISCRETE;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return LOOM_DEVICE_INTEGRATED;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return LOOM_DEVICE_VIRTUAL;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return LOOM_DEVICE_CPU;
    default: return LOOM_DEVICE_OTHER;
    }
}

static int has_device_ext(VkPhysicalDevice pd, const char *name)
{
    uint32_t n = 0;
    if (vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) != VK_SUCCESS || n == 0)
        return 0;
    VkExtensionProperties props[512];
    if (n > 512)
        n = 512;
    VkResult r = vkEnumerateDeviceExtensionProperties(pd, NULL, &n, props);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE)
        return 0;
    for (uint32_t i = 0; i < n; i++)
        if (!strcmp(props[i].extensionName, name))
            return 1;
    return 0;
}

static int monotonic_domain(VkInstance inst, VkPhysicalDevice pd)
{
    PFN_vkGetPhysicalDeviceCalibrateableTimeDomainsEXT get =
        (PFN_vkGetPhysicalDeviceCalibrateableTimeDomainsEXT)vkGetInstanceProcAddr(
            inst, "vkGetPhysicalDeviceCalibrateableTimeDomainsEXT");
    if (!get || !has_device_ext(pd, VK_EXT_CALIBRATED_TIMESTAMPS_EXTENSION_NAME))
        return 0;
    VkTimeDomainEXT dom[8];
    uint32_t n = 8;
    VkResult r = get(pd, &n, dom);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE)
        return 0;
    int dev = 0, mono = 0;
    for (uint32_t i = 0; i < n; i++) {
        dev |= dom[i] == VK_TIME_DOMAIN_DEVICE_EXT;
        mono |= dom[i] == VK_TIME_DOMAIN_CLOCK_MONOTONIC_EXT;
    }
    return dev && mono;
}

/* A compute family; one without graphics if there is one (it runs beside
 * the display's work), with timestamps if possible. */
static uint32_t pick_queue(VkPhysicalDevice pd, uint32_t *ts_bits)
{
    VkQueueFamilyProperties fam[32];
    uint32_t n = 32;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, fam);
    uint32_t best = UINT32_MAX;
    int best_score = -1;
    for (uint32_t i = 0; i < n; i++) {
        if (!(fam[i].queueFlags & VK_QUEUE_COMPUTE_BIT) || fam[i].queueCount == 0)
            continue;
        int score = (fam[i].timestampValidBits ? 2 : 0) + (fam[i].queueFlags & VK_QUEUE_GRAPHICS_BIT ? 0 : 1);
        if (score > best_score) {
            best = i;
            best_score = score;
            *ts_bits = fam[i].timestampValidBits;
        }
    }
    return best;
}

static void fill_info(VkInstance inst, VkPhysicalDevice pd, loom_device_info *d, vk_limits *lim)
{
    VkPhysicalDeviceMaintenance4Properties m4 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_4_PROPERTIES};
    VkPhysicalDeviceMaintenance3Properties m3 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
    VkPhysicalDeviceSubgroupProperties sub = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES,
                                              .pNext = &m3};
    VkPhysicalDeviceDriverProperties drv = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES, .pNext = &sub};
    VkPhysicalDeviceIDProperties idp = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ID_PROPERTIES, .pNext = &drv};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &idp};
    VkPhysicalDeviceProperties base;
    vkGetPhysicalDeviceProperties(pd, &base);
    int v13 = base.apiVersion >= VK_API_VERSION_1_3;
    if (v13)
        m3.pNext = &m4;
    vkGetPhysicalDeviceProperties2(pd, &p2);
    const VkPhysicalDeviceProperties *p = &p2.properties;
    VkPhysicalDevice16BitStorageFeatures s16 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
    VkPhysicalDevice8BitStorageFeatures s8 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES,
                                              .pNext = &s16};
    VkPhysicalDeviceShaderFloat16Int8Features f16 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES,
                                                     .pNext = &s16};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f16};
    /* 8-bit storage is core in 1.2 (the instance's version) */
    if (base.apiVersion >= VK_API_VERSION_1_2)
        f16.pNext = &s8;
    /* Integer dot products are core only from 1.3, past the instance's
     * 1.2: they are taken through the KHR extension. */
    VkPhysicalDeviceShaderIntegerDotProductFeaturesKHR dotf = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES_KHR};
    VkPhysicalDeviceShaderIntegerDotProductPropertiesKHR dotp = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_PROPERTIES_KHR};
    int has_dot = has_device_ext(pd, VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME);
    if (has_dot) {
        s16.pNext = &dotf;
        m3.pNext = v13 ? (void *)&m4 : (void *)&dotp;
        if (v13)
            m4.pNext = &dotp;
        vkGetPhysicalDeviceProperties2(pd, &p2);
    }
    vkGetPhysicalDeviceFeatures2(pd, &f2);
    VkPhysicalDeviceMemoryProperties mem;
    vkGetPhysicalDeviceMemoryProperties(pd, &mem);
    VkFormatProperties fp;
    vkGetPhysicalDeviceFormatProperties(pd, VK_FORMAT_R32_SFLOAT, &fp);

    snprintf(d->name, sizeof d->name, "%s", p->deviceName);
    snprintf(d->vendor, sizeof d->vendor, "%s", vendor_name(p->vendorID));
    snprintf(d->driver, sizeof d->driver, "%.60s %.60s", drv.driverName, drv.driverInfo);
    snprintf(d->api_version, sizeof d->api_version, "Vulkan %u.%u.%u", VK_API_VERSION_MAJOR(p->apiVersion),
             VK_API_VERSION_MINOR(p->apiVersion), VK_API_VERSION_PATCH(p->apiVersion));
    for (int i = 0; i < 16; i++)
        snprintf(d->uuid + 2 * i, 3, "%02x", idp.deviceUUID[i]);
    d->vendor_id = p->vendorID;
    d->type = map_type(p->deviceType);
    for (uint32_t i = 0; i < mem.memoryHeapCount; i++)
        if (mem.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)
            d->memory_bytes += mem.memoryHeaps[i].size;

    memset(lim, 0, sizeof *lim);
    lim->vendor_id = p->vendorID;
    lim->device_id = p->deviceID;
    lim->driver_version = p->driverVersion;
    memcpy(lim->cache_uuid, p->pipelineCacheUUID, VK_UUID_SIZE);
    lim->max_storage_range = p->limits.maxStorageBufferRange;
    lim->max_alloc_bytes = m3.maxMemoryAllocationSize;
    lim->max_buffer_bytes = v13 && m4.maxBufferSize ? m4.maxBufferSize : m3.maxMemoryAllocationSize;
    lim->max_alloc_count = p->limits.maxMemoryAllocationCount;
    lim->storage_align = p->limits.minStorageBufferOffsetAlignment;
    lim->texel_align = p->limits.minTexelBufferOffsetAlignment;
    lim->max_texel_elements = p->limits.maxTexelBufferElements;
    for (int i = 0; i < 3; i++)
        lim->max_groups[i] = p->limits.maxComputeWorkGroupCount[i];
    lim->max_push = p->limits.maxPushConstantsSize;
    lim->max_storage_per_stage = p->limits.maxPerStageDescriptorStorageBuffers;
    lim->timestamp_period = p->limits.timestampPeriod;
    /* Half-precision tensors: 16-bit storage, and 16-bit integers (the
     * bf16 conversions and 16-bit moves use them once optimized). */
    lim->storage16 = s16.storageBuffer16BitAccess && f2.features.shaderInt16;
    /* i8 tensors (the int8 ops): 8-bit storage and 8-bit arithmetic */
    lim->storage8 = base.apiVersion >= VK_API_VERSION_1_2 && s8.storageBuffer8BitAccess && f16.shaderInt8;
    lim->int8_dot = lim->storage8 && has_dot && dotf.shaderIntegerDotProduct;
    lim->int8_dot_fast = lim->int8_dot && dotp.integerDotProduct4x8BitPackedSignedAccelerated;
    lim->texel_r32f = (fp.bufferFeatures & VK_FORMAT_FEATURE_UNIFORM_TEXEL_BUFFER_BIT) != 0;
    lim->image_r32f = (fp.bufferFeatures & VK_FORMAT_FEATURE_STORAGE_TEXEL_BUFFER_BIT) != 0;
    lim->calibrated = monotonic_domain(inst, pd);
    lim->queue_family = pick_queue(pd, &lim->timestamp_bits);
    if (!p->limits.timestampComputeAndGraphics && lim->timestamp_bits == 0)
        lim->timestamp_period = 0;
    lim->cpu_type = p->deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
    /* gallivm's LP_MAX_TGSI_LOOP_ITERATIONS: one counter per invocation
     * shared by every loop; once spent, loops exit and results are wrong
     * without an error (a conv weight gradient over 6 x 112 x 112 outputs) */
    lim->loop_budget = strstr(p->deviceName, "llvmpipe") ? 65535u : 0u;

    /* A tensor may be bound as a storage buffer or a texel buffer: the
     * planner aligns to the stricter of the two. */
    uint64_t align = lim->storage_align;
    if ((lim->texel_r32f || lim->image_r32f) && lim->texel_align > align)
        align = lim->texel_align;
    d->max_binding_bytes = lim->max_storage_range;
    if (lim->max_alloc_bytes && d->max_binding_bytes > lim->max_alloc_bytes)
        d->max_binding_bytes = lim->max_alloc_bytes;
    d->max_alloc_bytes = lim->max_alloc_bytes;
    d->alignment = (uint32_t)align;
    d->subgroup_size = sub.subgroupSize;
    d->max_workgroup_size = p->limits.maxComputeWorkGroupInvocations;
    d->shared_memory_bytes = p->limits.maxComputeSharedMemorySize;
    /* The features struct is core from Vulkan 1.2 on (the instance's
     * version): older devices are taken to have neither. */
    int v12 = base.apiVersion >= VK_API_VERSION_1_2;
    d->fp16 = v12 && f16.shaderFloat16 != 0;
    d->int8 = v12 && f16.shaderInt8 != 0;
    d->int8_dot = lim->int8_dot;
    /* The kernels need a compute queue, 10 storage buffers per stage,
     * 128 bytes of push constants and workgroups of 256 invocations. */
    d->can_run = lim->queue_family != UINT32_MAX && lim->max_storage_per_stage >= VK_MAX_BINDINGS &&
                 lim->max_push >= 128 && p->limits.maxComputeWorkGroupInvocations >= 256 &&
                 p->limits.maxComputeWorkGroupSize[0] >= 256 && p->limits.maxComputeWorkGroupSize[1] >= 16 &&
                 p->limits.maxComputeSharedMemorySize >= 8192;
}

static void free_state(vk_state *s)
{
    loom_ctx *ctx = s->ctx;
    if (s->messenger) {
        PFN_vkDestroyDebugUtilsMessengerEXT destroy =
            (PFN_vkDestroyDebugUtilsMessengerEXT)vkGetInstanceProcAddr(s->instance, "vkDestroyDebugUtilsMessengerEXT");
        if (destroy)
            destroy(s->instance, s->messenger, NULL);
    }
    if (s->instance)
        vkDestroyInstance(s->instance, NULL);
    loom_free(ctx, s->phys, s->ndev * sizeof *s->phys);
    loom_free(ctx, s->info, s->ndev * sizeof *s->info);
    loom_free(ctx, s->lim, s->ndev * sizeof *s->lim);
    loom_free(ctx, s, sizeof *s);
}

static loom_status vk_init(loom_ctx *ctx, void **bstate)
{
    *bstate = NULL;
    int validate = 0;
    if (ctx->validation) {
        validate = has_layer("VK_LAYER_KHRONOS_validation");
        if (!validate)
            loom_logf(ctx, LOOM_LOG_WARN,
                      "vulkan: validation asked for but VK_LAYER_KHRONOS_validation is not installed; "
                      "running without it");
    }
    VkInstance inst;
    VkResult r = create_instance(ctx, validate, &inst);
    if (r != VK_SUCCESS && validate) {
        loom_logf(ctx, LOOM_LOG_WARN, "vulkan: instance with validation failed (%s); retrying without",
                  vk_result_str(r));
        validate = 0;
        r = create_instance(ctx, 0, &inst);
    }
    if (r != VK_SUCCESS)
        return loom_fail(ctx, LOOM_E_DEVICE, "vkCreateInstance failed with %s (%d): no Vulkan driver?",
                         vk_result_str(r), (int)r);
    vk_state *s = loom_calloc(ctx, 1, sizeof *s);
    if (!s) {
        vkDestroyInstance(inst, NULL);
        return loom_fail(ctx, LOOM_E_OOM, "vulkan: out of memory");
    }
    s->ctx = ctx;
    s->instance = inst;
    if (validate) {
        PFN_vkCreateDebugUtilsMessengerEXT create =
            (PFN_vkCreateDebugUtilsMessengerEXT)vkGetInstanceProcAddr(inst, "vkCreateDebugUtilsMessengerEXT");
        VkDebugUtilsMessengerCreateInfoEXT mi = messenger_info(ctx);
        if (!create || create(inst, &mi, NULL, &s->messenger) != VK_SUCCESS) {
            s->messenger = VK_NULL_HANDLE;
            loom_logf(ctx, LOOM_LOG_WARN, "vulkan: cannot create the debug messenger; validation messages are lost");
        } else {
            loom_logf(ctx, LOOM_LOG_INFO, "vulkan: validation on (VK_LAYER_KHRONOS_validation, synchronization checks)");
        }
    }
    r = vkEnumeratePhysicalDevices(inst, &s->ndev, NULL);
    if (r != VK_SUCCESS)
        s->ndev = 0;
    if (s->ndev) {
        s->phys = loom_calloc(ctx, s->ndev, sizeof *s->phys);
        s->info = loom_calloc(ctx, s->ndev, sizeof *s->info);
        s->lim = loom_calloc(ctx, s->ndev, sizeof *s->lim);
        if (!s->phys || !s->info || !s->lim) {
            free_state(s);
            return loom_fail(ctx, LOOM_E_OOM, "vulkan: out of memory");
        }
        r = vkEnumeratePhysicalDevices(inst, &s->ndev, s->phys);
        if (r != VK_SUCCESS && r != VK_INCOMPLETE) {
            free_state(s);
            return loom_fail(ctx, LOOM_E_DEVICE, "vkEnumeratePhysicalDevices failed with %s", vk_result_str(r));
        }
        for (uint32_t i = 0; i < s->ndev; i++) {
            fill_info(inst, s->phys[i], &s->info[i], &s->lim[i]);
            /* The registry gives core's copy the same spec. */
            snprintf(s->info[i].spec, sizeof s->info[i].spec, "vulkan:%u", i);
        }
    }
    *bstate = s;
    return LOOM_OK;
}

static void vk_shutdown(void *bs)
{
    free_state(bs);
}

static int vk_device_count(void *bs)
{
    return (int)((vk_state *)bs)->ndev;
}

static loom_status vk_device_info(void *bs, int i, loom_device_info *info)
{
    *info = ((vk_state *)bs)->info[i];
    return LOOM_OK;
}

/* ---- the logical device -------------------------------------------------- */

loom_status vk_begin_oneoff(vk_dev *d, VkCommandBuffer *cb, const char *what)
{
    VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                      .commandPool = d->cmd_pool,
                                      .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                      .commandBufferCount = 1};
    VkResult r = vkAllocateCommandBuffers(d->dev, &ai, cb);
    if (r != VK_SUCCESS)
        return vk_fail(d, r, "vkAllocateCommandBuffers", "for %s", what);
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    r = vkBeginCommandBuffer(*cb, &bi);
    if (r != VK_SUCCESS) {
        vkFreeCommandBuffers(d->dev, d->cmd_pool, 1, cb);
        return vk_fail(d, r, "vkBeginCommandBuffer", "for %s", what);
    }
    return LOOM_OK;
}

void vk_end_oneoff(vk_dev *d, VkCommandBuffer cb)
{
    vkFreeCommandBuffers(d->dev, d->cmd_pool, 1, &cb);
}

loom_status vk_drain(vk_dev *d)
{
    if (!d->inflight)
        return LOOM_OK;
    d->inflight = 0;
    VkResult r = vkWaitForFences(d->dev, 1, &d->fence, VK_TRUE, UINT64_MAX);
    if (r != VK_SUCCESS)
        return vk_fail(d, r, "vkWaitForFences", "for %s", d->inflight_what);
    vk_uploads_done(d);
    vk_reads_done(d);
    return LOOM_OK;
}

loom_status vk_submit_nowait(vk_dev *d, VkCommandBuffer cb, const char *what)
{
    LOOM_TRY(vk_drain(d));
    if (d->lost)
        return loom_fail(d->ctx, LOOM_E_DEVICE, "%s (%s): the device was lost earlier; cannot run %s", d->info->spec,
                         d->info->name, what);
    int uploads = 0;
    LOOM_TRY(vk_record_uploads(d, &uploads));
    VkCommandBuffer cbs[2];
    uint32_t n = 0;
    if (uploads)
        cbs[n++] = d->upload_cb;
    if (cb)
        cbs[n++] = cb;
    if (n == 0)
        return LOOM_OK;
    VkResult r = vkResetFences(d->dev, 1, &d->fence);
    if (r != VK_SUCCESS)
        return vk_fail(d, r, "vkResetFences", "before %s", what);
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = n, .pCommandBuffers = cbs};
    r = vkQueueSubmit(d->queue, 1, &si, d->fence);
    if (r != VK_SUCCESS)
        return vk_fail(d, r, "vkQueueSubmit", "of %s", what);
    d->inflight = 1;
    snprintf(d->inflight_what, sizeof d->inflight_what, "%s", what);
    return LOOM_OK;
}

loom_status vk_submit_wait(vk_dev *d, VkCommandBuffer cb, const char *what)
{
    LOOM_TRY(vk_submit_nowait(d, cb, what));
    return vk_drain(d);
}

static void device_free(vk_dev *d)
{
    loom_ctx *ctx = d->ctx;
    if (d->dev) {
        vkDeviceWaitIdle(d->dev);
        vk_pcache_save(d);
        vk_pipes_destroy(d);
        vk_customs_destroy(d);
        vk_memory_shutdown(d);
        if (d->pcache)
            vkDestroyPipelineCache(d->dev, d->pcache, NULL);
        if (d->fence)
            vkDestroyFence(d->dev, d->fence, NULL);
        loom_free(ctx, d->reads, (size_t)d->capreads * sizeof *d->reads);
        if (d->cmd_pool)
            vkDestroyCommandPool(d->dev, d->cmd_pool, NULL);
        vkDestroyDevice(d->dev, NULL);
    }
    loom_free(ctx, d, sizeof *d);
}

static loom_status vk_device_open(void *bs, int i, void **bdev)
{
    vk_state *s = bs;
    loom_ctx *ctx = s->ctx;
    const vk_limits *lim = &s->lim[i];
    vk_dev *d = loom_calloc(ctx, 1, sizeof *d);
    if (!d)
        return loom_fail(ctx, LOOM_E_OOM, "vulkan:%d: out of memory opening the device", i);
    d->ctx = ctx;
    d->s = s;
    d->index = i;
    d->info = &s->info[i];
    d->lim = lim;
    d->phys = s->phys[i];
    float prio = 1.0f;
    VkDeviceQueueCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                  .queueFamilyIndex = lim->queue_family,
                                  .queueCount = 1,
                                  .pQueuePriorities = &prio};
    const char *exts[2];
    uint32_t next = 0;
    if (lim->calibrated)
        exts[next++] = VK_EXT_CALIBRATED_TIMESTAMPS_EXTENSION_NAME;
    if (lim->int8_dot)
        exts[next++] = VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME;
    /* Half-precision tensors need 16-bit storage; f16 arithmetic
     * (gemm_tiled_f16a) needs shaderFloat16: enabled where present. */
    VkPhysicalDeviceShaderIntegerDotProductFeaturesKHR dotf = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES_KHR,
        .shaderIntegerDotProduct = VK_TRUE};
    VkPhysicalDevice16BitStorageFeatures s16 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES,
                                                .pNext = lim->int8_dot ? &dotf : NULL,
                                                .storageBuffer16BitAccess = lim->storage16 ? VK_TRUE : VK_FALSE};
    /* i8 tensors need 8-bit storage and shaderInt8 (the int8 ops) */
    VkPhysicalDevice8BitStorageFeatures s8 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES,
                                              .pNext = &s16,
                                              .storageBuffer8BitAccess = VK_TRUE};
    VkPhysicalDeviceShaderFloat16Int8Features f16 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES,
                                                     .pNext = lim->storage8 ? (void *)&s8 : (void *)&s16,
                                                     .shaderFloat16 = d->info->fp16 ? VK_TRUE : VK_FALSE,
                                                     .shaderInt8 = lim->storage8 ? VK_TRUE : VK_FALSE};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                    .pNext = d->info->fp16 || lim->storage8 ? (void *)&f16 : (void *)&s16};
    f2.features.shaderInt16 = lim->storage16 ? VK_TRUE : VK_FALSE;
    VkDeviceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                             .pNext = &f2,
                             .queueCreateInfoCount = 1,
                             .pQueueCreateInfos = &qi,
                             .enabledExtensionCount = next,
                             .ppEnabledExtensionNames = exts};
    VkResult r = vkCreateDevice(d->phys, &ci, NULL, &d->dev);
    if (r != VK_SUCCESS) {
        loom_status st = vk_fail(d, r, "vkCreateDevice", "opening the device (queue family %u)", lim->queue_family);
        d->dev = VK_NULL_HANDLE;
        device_free(d);
        return st;
    }
    vkGetDeviceQueue(d->dev, lim->queue_family, 0, &d->queue);
    if (lim->calibrated)
        d->get_calibrated =
            (PFN_vkGetCalibratedTimestampsEXT)vkGetDeviceProcAddr(d->dev, "vkGetCalibratedTimestampsEXT");
    VkCommandPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                  .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                  .queueFamilyIndex = lim->queue_family};
    VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    loom_status st = LOOM_OK;
    if ((r = vkCreateCommandPool(d->dev, &pi, NULL, &d->cmd_pool)) != VK_SUCCESS)
        st = vk_fail(d, r, "vkCreateCommandPool", "opening the device");
    else if ((r = vkCreateFence(d->dev, &fi, NULL, &d->fence)) != VK_SUCCESS)
        st = vk_fail(d, r, "vkCreateFence", "opening the device");
    if (st == LOOM_OK)
        st = vk_memory_init(d);
    if (st == LOOM_OK) {
        vk_pcache_load(d);
        st = vk_tune(d);
    }
    if (st != LOOM_OK) {
        device_free(d);
        return st;
    }
    loom_logf(ctx, LOOM_LOG_INFO,
              "vulkan:%d %s: queue family %u, max binding %llu, max allocation %llu (%u allocations), "
              "timestamp period %g ns%s, 16-bit storage %s, int8 dot products %s, GEMM reads through %s",
              i, d->info->name, lim->queue_family, (unsigned long long)lim->max_storage_range,
              (unsigned long long)lim->max_alloc_bytes, lim->max_alloc_count, (double)lim->timestamp_period,
              lim->calibrated ? " (calibrated)" : "", lim->storage16 ? "yes" : "no",
              lim->int8_dot_fast ? "accelerated" : lim->int8_dot ? "yes" : "no",
              d->quirks & VK_QUIRK_TEXEL_READS ? "texel buffers" : "storage buffers + shared memory");
    *bdev = d;
    return LOOM_OK;
}

static void vk_device_close(void *bdev)
{
    device_free(bdev);
}

const loom_backend_ops loom_vulkan_backend = {
    .abi = LOOM_BACKEND_ABI,
    .name = "vulkan",
    .kind = LOOM_BACKEND_VULKAN,
    .init = vk_init,
    .shutdown = vk_shutdown,
    .device_count = vk_device_count,
    .device_info = vk_device_info,
    .device_open = vk_device_open,
    .device_close = vk_device_close,
    .buffer_alloc = vk_buffer_alloc,
    .buffer_free = vk_buffer_free,
    .buffer_write = vk_buffer_write,
    .buffer_read = vk_buffer_read,
    .supports = vk_supports,
    .has_kernel = vk_has_kernel,
    .dispatches = vk_dispatches,
    .prepare = vk_prepare,
    .run = vk_run,
    .submit = vk_submit,
    .wait = vk_wait,
    .buffer_read_async = vk_buffer_read_async,
    .release = vk_release,
    .timestamps = vk_timestamps,
    .tune = vk_tune_device,
    .set_tuning = vk_set_tuning,
    .get_tuning = vk_get_tuning,
};
