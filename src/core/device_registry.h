/* The device registry: every backend's devices in one list. */
#ifndef LOOM_DEVICE_REGISTRY_H
#define LOOM_DEVICE_REGISTRY_H

#include "internal.h"

struct loom_backend_ops;

#define LOOM_DEVICE_MAGIC 0x6c6f6f6d44455649ULL

struct loom_device {
    uint64_t magic;             /* cleared on close: catches use after close */
    loom_ctx *ctx;
    const struct loom_backend_ops *ops;
    void *bdev;
    loom_device_info info;
};

loom_status loom_registry_init(loom_ctx *ctx, int backend_mask);
void loom_registry_shutdown(loom_ctx *ctx);
/* Validates a device handle; returns NULL if it is not an open device. */
int loom_device_valid(const loom_device *dev);

#endif
