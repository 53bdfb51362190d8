/* Per-device choices: which read path the GEMM takes. */
#include "vk_internal.h"

loom_status vk_tune(vk_dev *d)
{
    if (d->lim->cpu_type && d->lim->texel_r32f)
        d->quirks |= VK_QUIRK_TEXEL_READS;
    return LOOM_OK;
}
