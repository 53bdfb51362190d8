/* loom_custom_op: a user's GLSL compute shader as a graph node. The source
 * is kept in the node; a backend that supports LOOM_OP_CUSTOM compiles it
 * when the graph is compiled for its device. */
#include "graph.h"

#include <string.h>

loom_tensor loom_custom_op(loom_graph *g, const char *name, const char *glsl, int nin, const loom_tensor *inputs,
                           loom_dtype dtype, int ndim, const int64_t *shape, const uint32_t groups[3])
{
    if (!g || g->err != LOOM_OK)
        return LOOM_NONE;
    const char *what = name ? name : "custom";
    if (!glsl || !*glsl)
        return loom_graph_fail(g, LOOM_E_INVALID, "loom_custom_op \"%s\": no GLSL source", what);
    if (nin < 0 || nin > LOOM_CUSTOM_MAX_INPUTS || (nin && !inputs))
        return loom_graph_fail(g, LOOM_E_INVALID, "loom_custom_op \"%s\": %d inputs (0 to %d)", what, nin,
                               LOOM_CUSTOM_MAX_INPUTS);
    if (nin && !loom_graph_check_inputs(g, "loom_custom_op", nin, inputs))
        return LOOM_NONE;
    if (loom_dtype_size(dtype) != 4)
        return loom_graph_fail(g, LOOM_E_DTYPE, "loom_custom_op \"%s\": output dtype %s is not 32-bit", what,
                               loom_dtype_name(dtype));
    if (ndim < 0 || ndim > LOOM_MAX_DIMS || (ndim && !shape))
        return loom_graph_fail(g, LOOM_E_SHAPE, "loom_custom_op \"%s\": rank %d (0 to %d)", what, ndim,
                               LOOM_MAX_DIMS);
    for (int i = 0; i < ndim; i++)
        if (shape[i] <= 0 || shape[i] > UINT32_MAX)
            return loom_graph_fail(g, LOOM_E_SHAPE, "loom_custom_op \"%s\": dim %d is %lld", what, i,
                                   (long long)shape[i]);
    if (!groups || !groups[0] || !groups[1] || !groups[2])
        return loom_graph_fail(g, LOOM_E_INVALID, "loom_custom_op \"%s\": a workgroup count is 0", what);
    int32_t in[LOOM_CUSTOM_MAX_INPUTS];
    for (int i = 0; i < nin; i++) {
        const loom_node *ni = loom_node_of(g, inputs[i]);
        if (loom_dtype_size(ni->dtype) != 4)
            return loom_graph_fail(g, LOOM_E_DTYPE, "loom_custom_op \"%s\": input \"%s\" is %s, not 32-bit", what,
                                   ni->name, loom_dtype_name(ni->dtype));
        in[i] = inputs[i].id;
    }
    if (name && loom_graph_find(g, name).id)
        return loom_graph_fail(g, LOOM_E_INVALID, "loom_custom_op: the name \"%s\" is already used", name);
    char *src = loom_strdup(g->ctx, glsl);
    if (!src)
        return loom_graph_fail(g, LOOM_E_OOM, "loom_custom_op \"%s\": out of memory", what);
    loom_attr at = {0};
    memcpy(at.groups, groups, sizeof at.groups);
    loom_tensor t = loom_graph_add(g, LOOM_OP_CUSTOM, dtype, ndim, shape, nin, in, name, &at);
    loom_node *nd = loom_node_of(g, t);
    if (!nd) {
        loom_strfree(g->ctx, src);
        return t;
    }
    nd->data = src;
    nd->data_bytes = strlen(src) + 1;
    return t;
}
