/* loom_onnx_save: a Sequential model as an ONNX file (written later in
 * this branch). */
#include "onnx_internal.h"

loom_status loom_onnx_save(loom_sequential *m, const char *path)
{
    (void)m;
    (void)path;
    return LOOM_E_UNSUPPORTED;
}
