/* The Vulkan backend: instance, physical devices and their limits. */
#include "../backend.h"

#include <stdio.h>
#include <string.h>
#include <vulkan/vulkan.h>

typedef struct vk_state {
    loom_ctx *ctx;
    VkInstance instance;
    uint32_t ndev;
    VkPhysicalDevice *phys;
    loom_device_info *info;
} vk_state;

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

static void fill_info(VkPhysicalDevice pd, loom_device_info *d)
{
    VkPhysicalDeviceSubgroupProperties sub = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceDriverProperties drv = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES, .pNext = &sub};
    VkPhysicalDeviceIDProperties idp = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ID_PROPERTIES, .pNext = &drv};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &idp};
    vkGetPhysicalDeviceProperties2(pd, &p2);
    const VkPhysicalDeviceProperties *p = &p2.properties;
    VkPhysicalDeviceShaderFloat16Int8Features f16 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f16};
    vkGetPhysicalDeviceFeatures2(pd, &f2);
    VkPhysicalDeviceMemoryProperties mem;
    vkGetPhysicalDeviceMemoryProperties(pd, &mem);

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
    d->max_binding_bytes = p->limits.maxStorageBufferRange;
    d->max_alloc_bytes = 0;
    d->alignment = (uint32_t)p->limits.minStorageBufferOffsetAlignment;
    d->subgroup_size = sub.subgroupSize;
    d->max_workgroup_size = p->limits.maxComputeWorkGroupInvocations;
    d->shared_memory_bytes = p->limits.maxComputeSharedMemorySize;
    d->fp16 = f16.shaderFloat16 != 0;
    d->int8 = f16.shaderInt8 != 0;
    d->can_run = 0;
}

static loom_status vk_init(loom_ctx *ctx, void **bstate)
{
    *bstate = NULL;
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                             .pApplicationName = "loom",
                             .pEngineName = "loom",
                             .apiVersion = VK_API_VERSION_1_2};
    VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app};
    VkInstance inst;
    VkResult r = vkCreateInstance(&ci, NULL, &inst);
    if (r != VK_SUCCESS)
        return loom_fail(ctx, LOOM_E_DEVICE, "vkCreateInstance failed (VkResult %d): no Vulkan driver?", (int)r);
    vk_state *s = loom_calloc(ctx, 1, sizeof *s);
    if (!s) {
        vkDestroyInstance(inst, NULL);
        return loom_fail(ctx, LOOM_E_OOM, "vulkan: out of memory");
    }
    s->ctx = ctx;
    s->instance = inst;
    vkEnumeratePhysicalDevices(inst, &s->ndev, NULL);
    if (s->ndev) {
        s->phys = loom_calloc(ctx, s->ndev, sizeof *s->phys);
        s->info = loom_calloc(ctx, s->ndev, sizeof *s->info);
        if (!s->phys || !s->info) {
            loom_free(ctx, s->phys, s->ndev * sizeof *s->phys);
            loom_free(ctx, s->info, s->ndev * sizeof *s->info);
            vkDestroyInstance(inst, NULL);
            loom_free(ctx, s, sizeof *s);
            return loom_fail(ctx, LOOM_E_OOM, "vulkan: out of memory");
        }
        vkEnumeratePhysicalDevices(inst, &s->ndev, s->phys);
        for (uint32_t i = 0; i < s->ndev; i++)
            fill_info(s->phys[i], &s->info[i]);
    }
    *bstate = s;
    return LOOM_OK;
}

static void vk_shutdown(void *bs)
{
    vk_state *s = bs;
    vkDestroyInstance(s->instance, NULL);
    loom_free(s->ctx, s->phys, s->ndev * sizeof *s->phys);
    loom_free(s->ctx, s->info, s->ndev * sizeof *s->info);
    loom_free(s->ctx, s, sizeof *s);
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

static loom_status vk_device_open(void *bs, int i, void **bdev)
{
    vk_state *s = bs;
    (void)bdev;
    return loom_fail(s->ctx, LOOM_E_UNSUPPORTED, "vulkan:%d (%s): the Vulkan backend cannot run graphs yet", i,
                     s->info[i].name);
}

static void vk_device_close(void *bdev)
{
    (void)bdev;
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
};
