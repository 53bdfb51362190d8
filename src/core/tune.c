/* Per-device tuning: the public entry points, dispatched to the backend's
 * optional slots (only OpenCL has one so far: CLBlast's GEMM parameters). */
#include "backend.h"
#include "device_registry.h"

#include <string.h>

void loom_tune_opts_default(loom_tune_opts *opts)
{
    if (!opts)
        return;
    memset(opts, 0, sizeof *opts);
    opts->size = 1024;
    opts->max_candidates = 24;
    opts->reps = 3;
}

static loom_status no_slot(loom_device *dev, const char *what)
{
    return loom_fail(dev->ctx, LOOM_E_UNSUPPORTED, "%s: the %s backend of %s (%s) has nothing to tune", what,
                     dev->ops->name, dev->info.spec, dev->info.name);
}

loom_status loom_device_tune(loom_device *dev, const loom_tune_opts *opts, loom_tune_report *out)
{
    if (!loom_device_valid(dev))
        return LOOM_E_INVALID;
    loom_tune_opts o;
    loom_tune_opts_default(&o);
    if (opts) {
        o = *opts;
        if (o.size <= 0)
            o.size = 1024;
        if (o.max_candidates <= 0)
            o.max_candidates = 24;
        if (o.reps <= 0)
            o.reps = 3;
    }
    loom_tune_report r;
    memset(&r, 0, sizeof r);
    if (!dev->ops->tune)
        return no_slot(dev, "loom_device_tune");
    loom_status s = dev->ops->tune(dev->bdev, &o, &r);
    if (out)
        *out = r;
    return s;
}

loom_status loom_device_set_tuning(loom_device *dev, const char *json)
{
    if (!loom_device_valid(dev))
        return LOOM_E_INVALID;
    if (!dev->ops->set_tuning)
        return no_slot(dev, "loom_device_set_tuning");
    return dev->ops->set_tuning(dev->bdev, json);
}

loom_status loom_device_get_tuning(loom_device *dev, char *buf, size_t n)
{
    if (!loom_device_valid(dev))
        return LOOM_E_INVALID;
    if (!buf || n == 0)
        return loom_fail(dev->ctx, LOOM_E_INVALID, "loom_device_get_tuning: no buffer");
    if (!dev->ops->get_tuning)
        return no_slot(dev, "loom_device_get_tuning");
    return dev->ops->get_tuning(dev->bdev, buf, n);
}
