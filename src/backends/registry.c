/* Every backend compiled in, in the order "auto" breaks ties. */
#include "../core/backend.h"

extern const loom_backend_ops loom_cpu_backend;
#ifdef LOOM_HAVE_VULKAN
extern const loom_backend_ops loom_vulkan_backend;
#endif
#ifdef LOOM_HAVE_OPENCL
extern const loom_backend_ops loom_opencl_backend;
#endif

const loom_backend_ops *const loom_backends[] = {
    &loom_cpu_backend,
#ifdef LOOM_HAVE_VULKAN
    &loom_vulkan_backend,
#endif
#ifdef LOOM_HAVE_OPENCL
    &loom_opencl_backend,
#endif
};

const int loom_backend_count = (int)(sizeof loom_backends / sizeof loom_backends[0]);
