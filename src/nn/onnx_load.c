/* The ONNX importer: the file, its checks (wire format, names defined once,
 * inputs that exist, no cycle), the nodes in topological order through the
 * op table, the graph outputs, the state written last. All-or-nothing:
 * any failure destroys the graph and leaves the state as it was. */
#include "onnx_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The largest file a protobuf may be (2 GiB, protobuf's own limit). */
#define OX_MAX_FILE ((size_t)INT32_MAX)

/* ---- messages ---- */

loom_status ox_fail(ox *b, loom_status s, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (b->node)
        return loom_fail(b->ctx, s, "%s: %s: %s", b->what, b->node_desc, msg);
    return loom_fail(b->ctx, s, "%s: %s", b->what, msg);
}

loom_status ox_check_graph(ox *b)
{
    loom_status s = loom_graph_status(b->g);
    if (s == LOOM_OK)
        return LOOM_OK;
    return ox_fail(b, s, "%s", loom_graph_error(b->g));
}

/* ---- the node being built ---- */

int ox_nin(const ox *b)
{
    return (int)b->node->n_input;
}

int ox_nout(const ox *b)
{
    return (int)b->node->n_output;
}

static ox_val *val_of(ox *b, const char *name)
{
    if (!name || !*name)
        return NULL;
    int i = nn_name_map_get(&b->names, name);
    return i < 0 ? NULL : &b->vals[i];
}

ox_val *ox_in(ox *b, int i)
{
    if (i < 0 || (size_t)i >= b->node->n_input)
        return NULL;
    return val_of(b, b->node->input[i]);
}

loom_status ox_need(ox *b, int i, ox_val **out)
{
    *out = ox_in(b, i);
    if (!*out)
        return ox_fail(b, LOOM_E_FORMAT, "input %d is required and missing", i);
    return LOOM_OK;
}

ox_val *ox_out(ox *b, int i)
{
    if (i < 0 || (size_t)i >= b->node->n_output)
        return NULL;
    return val_of(b, b->node->output[i]);
}

loom_status ox_set(ox *b, int i, loom_tensor t, int type)
{
    ox_val *v = ox_out(b, i);
    if (!v)
        return LOOM_OK;
    if (!t.id) {
        loom_status s = ox_check_graph(b);
        return s != LOOM_OK ? s : ox_fail(b, LOOM_E_UNSUPPORTED, "output %d was not made", i);
    }
    int nd = loom_tensor_ndim(b->g, t);
    v->t = t;
    v->type = type;
    v->wide = 0;
    v->ndim = nd;
    for (int k = 0; k < nd; k++)
        v->shape[k] = loom_tensor_dim(b->g, t, k);
    return LOOM_OK;
}

loom_status ox_set_const(ox *b, int i, ox_const *k)
{
    ox_val *v = ox_out(b, i);
    if (!k)
        return ox_fail(b, LOOM_E_OOM, "out of memory for output %d", i);
    if (!v) {
        ox_const_free(b->ctx, k);
        return LOOM_OK;
    }
    ox_const_free(b->ctx, v->k);
    v->k = k;
    v->type = k->type;
    v->ndim = k->ndim;
    memcpy(v->shape, k->shape, sizeof v->shape);
    return LOOM_OK;
}

/* ---- attributes ---- */

static const Onnx__AttributeProto *attr_find(ox *b, const char *name, int *index)
{
    for (size_t i = 0; i < b->node->n_attribute; i++) {
        const Onnx__AttributeProto *a = b->node->attribute[i];
        if (a->name && !strcmp(a->name, name)) {
            if (index)
                *index = (int)i;
            b->attr_used[i] = 1;
            return a;
        }
    }
    return NULL;
}

static const char *attr_type_name(int t)
{
    static const char *const names[] = {"UNDEFINED", "FLOAT", "INT",   "STRING", "TENSOR",        "GRAPH",  "FLOATS",
                                        "INTS",      "STRINGS", "TENSORS", "GRAPHS", "SPARSE_TENSOR", "SPARSE_TENSORS",
                                        "TYPE_PROTO", "TYPE_PROTOS"};
    return t >= 0 && t < (int)(sizeof names / sizeof names[0]) ? names[t] : "?";
}

/* The attribute's type: its type field, or (files before IR 2) the field
 * that is set. */
static int attr_type(const Onnx__AttributeProto *a)
{
    if (a->has_type)
        return (int)a->type;
    if (a->has_f)
        return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    if (a->has_i)
        return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    if (a->has_s)
        return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
    if (a->t)
        return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
    if (a->g)
        return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH;
    if (a->n_floats)
        return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
    if (a->n_ints)
        return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    return 0;
}

static loom_status attr_want(ox *b, const Onnx__AttributeProto *a, int type)
{
    if (a->ref_attr_name && *a->ref_attr_name)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "attribute '%s' refers to a function's attribute '%s'", a->name,
                       a->ref_attr_name);
    int t = attr_type(a);
    if (t != type)
        return ox_fail(b, LOOM_E_FORMAT, "attribute '%s' is %s, %s expected", a->name, attr_type_name(t),
                       attr_type_name(type));
    return LOOM_OK;
}

loom_status ox_attr_int(ox *b, const char *name, int64_t def, int64_t *out, int *present)
{
    const Onnx__AttributeProto *a = attr_find(b, name, NULL);
    if (present)
        *present = a != NULL;
    *out = def;
    if (!a)
        return LOOM_OK;
    LOOM_TRY(attr_want(b, a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT));
    *out = a->i;
    return LOOM_OK;
}

loom_status ox_attr_float(ox *b, const char *name, float def, float *out, int *present)
{
    const Onnx__AttributeProto *a = attr_find(b, name, NULL);
    if (present)
        *present = a != NULL;
    *out = def;
    if (!a)
        return LOOM_OK;
    LOOM_TRY(attr_want(b, a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT));
    *out = a->f;
    return LOOM_OK;
}

loom_status ox_attr_ints(ox *b, const char *name, const int64_t **out, size_t *n, int *present)
{
    const Onnx__AttributeProto *a = attr_find(b, name, NULL);
    if (present)
        *present = a != NULL;
    *out = NULL;
    *n = 0;
    if (!a)
        return LOOM_OK;
    LOOM_TRY(attr_want(b, a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS));
    *out = a->ints;
    *n = a->n_ints;
    return LOOM_OK;
}

loom_status ox_attr_floats(ox *b, const char *name, const float **out, size_t *n, int *present)
{
    const Onnx__AttributeProto *a = attr_find(b, name, NULL);
    if (present)
        *present = a != NULL;
    *out = NULL;
    *n = 0;
    if (!a)
        return LOOM_OK;
    LOOM_TRY(attr_want(b, a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS));
    *out = a->floats;
    *n = a->n_floats;
    return LOOM_OK;
}

loom_status ox_attr_string(ox *b, const char *name, const char *def, const char **out)
{
    const Onnx__AttributeProto *a = attr_find(b, name, NULL);
    *out = def;
    if (!a)
        return LOOM_OK;
    LOOM_TRY(attr_want(b, a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING));
    /* protobuf-c's bytes are not NUL-terminated: keep a copy in the node's
     * scratch (names and modes are short) */
    static _Thread_local char buf[4][128];
    static _Thread_local int next;
    char *o = buf[next++ & 3];
    size_t len = a->s.len < 127 ? a->s.len : 127;
    if (len)
        memcpy(o, a->s.data, len);
    o[len] = 0;
    if (memchr(o, 0, len) || a->s.len > 127)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "attribute '%s': a string of %zu bytes is not one loom knows", name,
                       a->s.len);
    *out = o;
    return LOOM_OK;
}

loom_status ox_attr_tensor(ox *b, const char *name, const Onnx__TensorProto **out)
{
    const Onnx__AttributeProto *a = attr_find(b, name, NULL);
    *out = NULL;
    if (!a)
        return LOOM_OK;
    LOOM_TRY(attr_want(b, a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR));
    if (!a->t)
        return ox_fail(b, LOOM_E_FORMAT, "attribute '%s' holds no tensor", name);
    *out = a->t;
    return LOOM_OK;
}

loom_status ox_attr_only_int(ox *b, const char *name, int64_t allowed)
{
    int64_t v;
    int present;
    LOOM_TRY(ox_attr_int(b, name, allowed, &v, &present));
    if (present && v != allowed)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "attribute '%s' = %lld is not supported (only %lld)", name,
                       (long long)v, (long long)allowed);
    return LOOM_OK;
}

void ox_attr_ignore(ox *b, const char *name)
{
    attr_find(b, name, NULL);
}

/* ---- values ---- */

int ox_is_known(const ox_val *v)
{
    return v && (v->k || v->init);
}

ox_const *ox_known(ox *b, ox_val *v, loom_status *s)
{
    *s = LOOM_OK;
    if (!v)
        return NULL;
    if (v->k)
        return v->k;
    if (!v->init)
        return NULL;
    char what[200];
    snprintf(what, sizeof what, "%s: initializer \"%.120s\"", b->what, v->name);
    *s = ox_decode_tensor(b->ctx, v->init, b->base_dir, what, &v->k);
    return v->k;
}

void ox_shape(ox *b, const ox_val *v, int *ndim, int64_t shape[OX_MAX_RANK])
{
    (void)b;
    if (v->k) {
        *ndim = v->k->ndim;
        memcpy(shape, v->k->shape, sizeof v->k->shape);
    } else if (v->init) {
        *ndim = (int)v->init->n_dims;
        for (int i = 0; i < *ndim; i++)
            shape[i] = v->init->dims[i];
    } else {
        *ndim = v->ndim;
        memcpy(shape, v->shape, sizeof v->shape);
    }
}

int ox_rank(ox *b, const ox_val *v)
{
    int nd;
    int64_t s[OX_MAX_RANK];
    ox_shape(b, v, &nd, s);
    return nd;
}

int64_t ox_dim(ox *b, const ox_val *v, int axis)
{
    int nd;
    int64_t s[OX_MAX_RANK];
    ox_shape(b, v, &nd, s);
    return axis >= 0 && axis < nd ? s[axis] : 1;
}

loom_dtype ox_dtype(ox *b, const ox_val *v)
{
    if (v->t.id)
        return loom_tensor_dtype(b->g, v->t);
    return loom_onnx_dtype(v->type);
}

static loom_status materialize(ox *b, ox_val *v, loom_dtype want, loom_tensor *out)
{
    if (v->same) {
        LOOM_TRY(ox_tensor(b, v->same, LOOM_DTYPE_COUNT, &v->t));
        *out = v->t;
        return LOOM_OK;
    }
    loom_status s;
    ox_const *k = ox_known(b, v, &s);
    if (s != LOOM_OK)
        return s;
    if (!k)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "input \"%s\" has no value here (an unsupported producer?)", v->name);
    char sb[160];
    if (k->ndim > LOOM_MAX_DIMS)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "\"%s\" has %d dims; loom's tensors hold at most %d", v->name, k->ndim,
                       LOOM_MAX_DIMS);
    if (k->n == 0)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "\"%s\" is empty (shape %s): loom's tensors have no zero-size dims",
                       v->name, loom_shape_str(sb, sizeof sb, k->ndim, k->shape));
    loom_dtype dt = loom_onnx_dtype(k->type);
    if (dt == LOOM_DTYPE_COUNT)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "\"%s\" is %s, which loom holds in no dtype", v->name,
                       loom_onnx_type_name(k->type));
    if (v->init) {
        /* an initializer is a parameter of the state, in its own dtype */
        size_t pl = strlen(b->opts.prefix) + strlen(v->name) + 1;
        char *pname = loom_malloc(b->ctx, pl);
        if (!pname)
            return ox_fail(b, LOOM_E_OOM, "out of memory");
        snprintf(pname, pl, "%s%s", b->opts.prefix, v->name);
        loom_tensor t = loom_param(b->g, pname, dt, k->ndim, k->shape, b->opts.trainable && dt == LOOM_F32);
        loom_free(b->ctx, pname, pl);
        if (!t.id)
            return ox_check_graph(b);
        v->t = t;
        v->param = 1;
        *out = t;
        return LOOM_OK;
    }
    if (want != LOOM_DTYPE_COUNT)
        dt = want;
    void *data;
    size_t bytes;
    char what[512];
    snprintf(what, sizeof what, "%s: %s: \"%.100s\"", b->what, b->node_desc, v->name);
    LOOM_TRY(ox_const_to_dtype(b->ctx, k, dt, what, &data, &bytes));
    loom_tensor t = loom_constant(b->g, NULL, dt, k->ndim, k->shape, data);
    loom_free(b->ctx, data, bytes);
    if (!t.id)
        return ox_check_graph(b);
    if (dt == loom_onnx_dtype(k->type))
        v->t = t;
    *out = t;
    return LOOM_OK;
}

static void mark_fetched(ox *b, const ox_val *v)
{
    if (b->node && b->fetched)
        for (size_t i = 0; i < b->node->n_input && i < 64; i++)
            if (val_of(b, b->node->input[i]) == v)
                b->fetched[b->node_index] |= (uint64_t)1 << i;
}

loom_status ox_phys(ox *b, ox_val *v, loom_tensor *out)
{
    if (!v->wide)
        return ox_tensor(b, v, LOOM_DTYPE_COUNT, out);
    mark_fetched(b, v);
    *out = v->t;
    return LOOM_OK;
}

loom_status ox_set_wide(ox *b, int i, loom_tensor t, int nd, const int64_t *shape, int type)
{
    if (nd <= LOOM_MAX_DIMS) {
        int same = loom_tensor_ndim(b->g, t) == nd;
        for (int k = 0; same && k < nd; k++)
            same = loom_tensor_dim(b->g, t, k) == shape[k];
        return ox_set(b, i, same ? t : loom_reshape(b->g, t, nd, shape), type);
    }
    /* the dims that are not 1 must fit loom */
    int64_t sq[OX_MAX_RANK];
    int ns = 0;
    for (int k = 0; k < nd; k++)
        if (shape[k] != 1)
            sq[ns++] = shape[k];
    char sb[160];
    if (ns > LOOM_MAX_DIMS) {
        /* t may hold the elements in their order under a shape of merged
         * neighbouring dims (expand_wide); anything else does not fit */
        uint64_t want = 1, have = 1;
        loom_shape_bytes(ns, sq, 1, &want, NULL);
        for (int k = 0; k < loom_tensor_ndim(b->g, t); k++)
            have *= (uint64_t)loom_tensor_dim(b->g, t, k);
        if (want != have)
            return ox_fail(b, LOOM_E_UNSUPPORTED, "the result has %d dims of more than 1 (%s...); loom's tensors hold %d",
                           ns, loom_shape_str(sb, sizeof sb, LOOM_MAX_DIMS, sq), LOOM_MAX_DIMS);
    } else {
        int same = loom_tensor_ndim(b->g, t) == ns;
        for (int k = 0; same && k < ns; k++)
            same = loom_tensor_dim(b->g, t, k) == sq[k];
        if (!same)
            t = loom_reshape(b->g, t, ns, sq);
    }
    LOOM_TRY(ox_set(b, i, t, type));
    ox_val *v = ox_out(b, i);
    if (v) {
        v->wide = 1;
        v->ndim = nd;
        memcpy(v->shape, shape, (size_t)nd * sizeof *shape);
    }
    return LOOM_OK;
}

loom_status ox_tensor(ox *b, ox_val *v, loom_dtype dt, loom_tensor *out)
{
    if (v->wide)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "\"%s\" has %d dims: loom's tensors hold at most %d (only reshapes and "
                       "transposes take wider values)", v->name, v->ndim, LOOM_MAX_DIMS);
    mark_fetched(b, v);
    loom_tensor t = v->t;
    if (!t.id)
        LOOM_TRY(materialize(b, v, dt, &t));
    if (dt != LOOM_DTYPE_COUNT && loom_tensor_dtype(b->g, t) != dt) {
        t = loom_cast(b->g, t, dt);
        if (!t.id)
            return ox_check_graph(b);
    }
    *out = t;
    return LOOM_OK;
}

/* ---- the model's values ---- */

static loom_status add_val(ox *b, const char *name, int producer, ox_val **out)
{
    if (b->nvals == b->vals_cap)
        return ox_fail(b, LOOM_E_FORMAT, "more values than counted");
    int prev = nn_name_map_put(&b->names, name, b->nvals);
    if (prev >= 0) {
        const ox_val *p = &b->vals[prev];
        const char *by1 = p->producer >= 0 ? "a node output" : p->is_input ? "a graph input" : "an initializer";
        const char *pn = producer >= 0 && b->graph->node[producer]->name ? b->graph->node[producer]->name : "";
        return ox_fail(b, LOOM_E_FORMAT, "value \"%s\" is defined twice (%s, then %s%s%s)", name, by1,
                       producer >= 0 ? "the output of node " : "an initializer or input", pn,
                       producer >= 0 && !*pn ? b->graph->node[producer]->op_type : "");
    }
    ox_val *v = &b->vals[b->nvals++];
    memset(v, 0, sizeof *v);
    v->name = name;
    v->producer = producer;
    v->defined = 1;
    *out = v;
    return LOOM_OK;
}

static int64_t dim_value(ox *b, const Onnx__TensorShapeProto__Dimension *d)
{
    if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
        return d->dim_value;
    if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && d->dim_param)
        for (int i = 0; i < b->opts.ndims; i++)
            if (b->opts.dims[i].name && !strcmp(b->opts.dims[i].name, d->dim_param))
                return b->opts.dims[i].value;
    return b->opts.batch;
}

/* A graph input: a loom_input of its static shape. */
static loom_status make_input(ox *b, const Onnx__ValueInfoProto *vi, ox_val *v)
{
    const Onnx__TypeProto *tp = vi->type;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "graph input \"%s\" is not a tensor (sequences, maps and optionals are "
                       "not supported)", v->name);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    int type = tt->has_elem_type ? tt->elem_type : 0;
    loom_dtype dt = loom_onnx_dtype(type);
    if (dt == LOOM_DTYPE_COUNT)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "graph input \"%s\" is %s, which loom holds in no dtype", v->name,
                       loom_onnx_type_name(type));
    int nd = 0;
    int64_t shape[OX_MAX_RANK];
    const loom_onnx_shape *over = NULL;
    for (int i = 0; i < b->opts.nshapes; i++)
        if (b->opts.shapes[i].name && !strcmp(b->opts.shapes[i].name, v->name))
            over = &b->opts.shapes[i];
    if (over) {
        nd = over->ndim;
        if (nd < 0 || nd > LOOM_MAX_DIMS)
            return ox_fail(b, LOOM_E_INVALID, "loom_onnx_opts.shapes: \"%s\" has %d dims", v->name, nd);
        for (int i = 0; i < nd; i++)
            shape[i] = over->shape[i];
    } else {
        if (!tt->shape)
            return ox_fail(b, LOOM_E_UNSUPPORTED, "graph input \"%s\" has no shape; loom needs static shapes (give it "
                           "in loom_onnx_opts.shapes)", v->name);
        if (tt->shape->n_dim > LOOM_MAX_DIMS)
            return ox_fail(b, LOOM_E_UNSUPPORTED, "graph input \"%s\" has %zu dims; loom's tensors hold at most %d",
                           v->name, tt->shape->n_dim, LOOM_MAX_DIMS);
        nd = (int)tt->shape->n_dim;
        for (int i = 0; i < nd; i++)
            shape[i] = dim_value(b, tt->shape->dim[i]);
    }
    char sb[160];
    int empty = 0;
    for (int i = 0; i < nd; i++)
        empty |= shape[i] == 0;
    for (int i = 0; i < nd && empty; i++)
        if (shape[i] < 0)
            empty = 0;
    if (empty) {
        /* no elements: the value is known without its data (the empty
         * axes of a Reduce, the type-only input of CastLike); an op that
         * needs it as a tensor refuses it there */
        v->k = ox_const_new(b->ctx, type, nd, shape);
        if (!v->k)
            return ox_fail(b, LOOM_E_OOM, "out of memory");
        v->type = type;
        return LOOM_OK;
    }
    for (int i = 0; i < nd; i++)
        if (shape[i] <= 0)
            return ox_fail(b, shape[i] == 0 ? LOOM_E_UNSUPPORTED : LOOM_E_FORMAT,
                           "graph input \"%s\" has shape %s: loom needs every dim >= 1", v->name,
                           loom_shape_str(sb, sizeof sb, nd, shape));
    v->is_input = 1;
    v->type = type;
    v->t = loom_input(b->g, v->name, dt, nd, shape);
    if (!v->t.id)
        return ox_check_graph(b);
    v->ndim = nd;
    memcpy(v->shape, shape, (size_t)nd * sizeof *shape);
    return LOOM_OK;
}

static loom_status collect(ox *b)
{
    const Onnx__GraphProto *gp = b->graph;
    size_t count = gp->n_input + gp->n_initializer;
    for (size_t i = 0; i < gp->n_node; i++)
        if (loom_add_size(count, gp->node[i]->n_output, &count))
            return ox_fail(b, LOOM_E_FORMAT, "too many values");
    if (count > (size_t)INT32_MAX / 2)
        return ox_fail(b, LOOM_E_FORMAT, "%zu values are more than loom reads", count);
    b->vals = loom_calloc(b->ctx, count ? count : 1, sizeof *b->vals);
    if (!b->vals)
        return ox_fail(b, LOOM_E_OOM, "out of memory for %zu values", count);
    b->vals_cap = (int)count;
    LOOM_TRY(nn_name_map_init(&b->names, b->ctx, count ? count : 1, "ONNX value names"));
    if (gp->n_sparse_initializer)
        return ox_fail(b, LOOM_E_UNSUPPORTED, "sparse initializers are not supported");
    for (size_t i = 0; i < gp->n_initializer; i++) {
        const Onnx__TensorProto *t = gp->initializer[i];
        if (!t->name || !*t->name)
            return ox_fail(b, LOOM_E_FORMAT, "initializer %zu has no name", i);
        ox_val *v;
        LOOM_TRY(add_val(b, t->name, -1, &v));
        v->init = t;
        v->type = t->has_data_type ? t->data_type : 0;
    }
    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        if (!vi->name || !*vi->name)
            return ox_fail(b, LOOM_E_FORMAT, "graph input %zu has no name", i);
        /* IR < 4 lists initializers among the inputs: the initializer is it */
        if (val_of(b, vi->name) && val_of(b, vi->name)->init)
            continue;
        ox_val *v;
        LOOM_TRY(add_val(b, vi->name, -1, &v));
        const loom_onnx_tensor *given = NULL;
        for (int k = 0; k < b->opts.nvalues; k++)
            if (b->opts.values[k].name && !strcmp(b->opts.values[k].name, vi->name))
                given = &b->opts.values[k];
        if (given) {
            /* a value fixed at load: a constant, not an input */
            char what[200];
            snprintf(what, sizeof what, "%s: loom_onnx_opts.values \"%.120s\"", b->what, vi->name);
            LOOM_TRY(ox_const_from_host(b->ctx, given, what, &v->k));
            v->type = given->type;
            continue;
        }
        v->is_input = 1;
    }
    for (size_t n = 0; n < gp->n_node; n++) {
        const Onnx__NodeProto *nd = gp->node[n];
        if (!nd->op_type || !*nd->op_type)
            return ox_fail(b, LOOM_E_FORMAT, "node %zu (\"%s\") has no op_type", n, nd->name ? nd->name : "");
        for (size_t o = 0; o < nd->n_output; o++) {
            if (!*nd->output[o])
                continue;
            ox_val *v;
            LOOM_TRY(add_val(b, nd->output[o], (int)n, &v));
        }
    }
    return LOOM_OK;
}

static void describe_node(ox *b, int n)
{
    const Onnx__NodeProto *nd = b->graph->node[n];
    if (nd->name && *nd->name)
        snprintf(b->node_desc, sizeof b->node_desc, "node \"%.120s\" (%.60s)", nd->name, nd->op_type);
    else
        snprintf(b->node_desc, sizeof b->node_desc, "node %d (%.60s)", n, nd->op_type);
}

/* Kahn's order over the nodes, every input checked to exist. */
static loom_status topo_order(ox *b, int *order)
{
    const Onnx__GraphProto *gp = b->graph;
    int n = (int)gp->n_node;
    loom_status s = LOOM_OK;
    int *indeg = loom_calloc(b->ctx, (size_t)n + 1, sizeof *indeg);
    int *start = loom_calloc(b->ctx, (size_t)n + 2, sizeof *start);
    size_t edges = 0;
    for (int i = 0; i < n; i++)
        edges += gp->node[i]->n_input;
    int *adj = loom_calloc(b->ctx, edges + 1, sizeof *adj);
    int *fill = loom_calloc(b->ctx, (size_t)n + 1, sizeof *fill);
    if (!indeg || !start || !adj || !fill) {
        s = ox_fail(b, LOOM_E_OOM, "out of memory ordering %d nodes", n);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        const Onnx__NodeProto *nd = gp->node[i];
        for (size_t k = 0; k < nd->n_input; k++) {
            if (!*nd->input[k])
                continue;
            const ox_val *v = val_of(b, nd->input[k]);
            if (!v) {
                describe_node(b, i);
                s = loom_fail(b->ctx, LOOM_E_FORMAT,
                              "%s: %s: input %zu \"%s\" is defined by no node, initializer or graph input", b->what,
                              b->node_desc, k, nd->input[k]);
                goto out;
            }
            if (v->producer >= 0) {
                indeg[i]++;
                start[v->producer + 1]++;
            }
        }
    }
    for (int i = 0; i < n; i++)
        start[i + 1] += start[i];
    for (int i = 0; i < n; i++) {
        const Onnx__NodeProto *nd = gp->node[i];
        for (size_t k = 0; k < nd->n_input; k++) {
            const ox_val *v = *nd->input[k] ? val_of(b, nd->input[k]) : NULL;
            if (v && v->producer >= 0)
                adj[start[v->producer] + fill[v->producer]++] = i;
        }
    }
    int head = 0, tail = 0;
    for (int i = 0; i < n; i++)
        if (!indeg[i])
            order[tail++] = i;
    while (head < tail) {
        int u = order[head++];
        for (int e = start[u]; e < start[u + 1]; e++)
            if (--indeg[adj[e]] == 0)
                order[tail++] = adj[e];
    }
    if (tail < n) {
        int bad = 0;
        while (bad < n && !indeg[bad])
            bad++;
        describe_node(b, bad);
        s = loom_fail(b->ctx, LOOM_E_FORMAT, "%s: the graph has a cycle through %s (%d of %d nodes are on or after "
                      "it)", b->what, b->node_desc, n - tail, n);
    }
out:
    loom_free(b->ctx, indeg, ((size_t)n + 1) * sizeof *indeg);
    loom_free(b->ctx, start, ((size_t)n + 2) * sizeof *start);
    loom_free(b->ctx, adj, (edges + 1) * sizeof *adj);
    loom_free(b->ctx, fill, ((size_t)n + 1) * sizeof *fill);
    return s;
}

static loom_status build_node(ox *b, int n)
{
    const Onnx__NodeProto *nd = b->graph->node[n];
    b->node = nd;
    b->node_index = n;
    describe_node(b, n);
    if (nd->domain && *nd->domain && strcmp(nd->domain, "ai.onnx"))
        return ox_fail(b, LOOM_E_UNSUPPORTED, "op domain \"%s\" is not supported (only the default domain)",
                       nd->domain);
    int known = 0;
    const ox_op *row = ox_find_op(nd->op_type, b->opset, &known);
    if (!row) {
        if (known)
            return ox_fail(b, LOOM_E_UNSUPPORTED, "op %s is not supported at opset %lld", nd->op_type,
                           (long long)b->opset);
        return ox_fail(b, LOOM_E_UNSUPPORTED, "op type %s is not supported", nd->op_type);
    }
    b->row = row;
    int all_known = 1;
    for (int i = 0; i < ox_nin(b); i++) {
        ox_val *v = ox_in(b, i);
        if (!v)
            continue;
        if (!v->init && !v->k && !v->t.id)
            return ox_fail(b, LOOM_E_UNSUPPORTED, "input %d \"%s\" was not computed", i, v->name);
        if (!loom_onnx_type_size(v->type))
            return ox_fail(b, LOOM_E_UNSUPPORTED, "input %d \"%s\" is %s, which loom holds in no dtype", i, v->name,
                           loom_onnx_type_name(v->type));
        if (!ox_is_known(v))
            all_known = 0;
    }
    if (b->attr_cap < nd->n_attribute + 1) {
        unsigned char *u = loom_realloc(b->ctx, b->attr_used, b->attr_cap, nd->n_attribute + 1);
        if (!u)
            return ox_fail(b, LOOM_E_OOM, "out of memory");
        b->attr_used = u;
        b->attr_cap = nd->n_attribute + 1;
    }
    memset(b->attr_used, 0, nd->n_attribute + 1);
    char scope[LOOM_SCOPE_MAX];
    if (nd->name && *nd->name)
        snprintf(scope, sizeof scope, "%s", nd->name);
    else
        snprintf(scope, sizeof scope, "%.40s_%d", nd->op_type, n);
    loom_graph_scope(b->g, scope);
    loom_status s = OX_DECLINE;
    if (row->fold && all_known)
        s = row->fold(b);
    if (s == OX_DECLINE) {
        memset(b->attr_used, 0, nd->n_attribute + 1);
        ox_val *x = ox_in(b, 0);
        if (x && row->types && !(x->type < 32 && (row->types & OX_T((unsigned)x->type))))
            s = ox_fail(b, LOOM_E_UNSUPPORTED, "input \"%s\" is %s: loom maps %s for other element types", x->name,
                        loom_onnx_type_name(x->type), nd->op_type);
        else
            s = row->build(b);
    }
    loom_graph_scope(b->g, NULL);
    if (s == LOOM_OK)
        s = ox_check_graph(b);
    if (s != LOOM_OK)
        return s;
    for (size_t i = 0; i < nd->n_attribute; i++)
        if (!b->attr_used[i])
            return ox_fail(b, LOOM_E_UNSUPPORTED, "attribute '%s' is not supported",
                           nd->attribute[i]->name ? nd->attribute[i]->name : "");
    for (int i = 0; i < ox_nout(b); i++) {
        ox_val *v = ox_out(b, i);
        if (v && !v->k && !v->t.id && !v->init)
            return ox_fail(b, LOOM_E_UNSUPPORTED, "output %d \"%s\" is not produced by loom's %s", i, v->name,
                           nd->op_type);
    }
    return LOOM_OK;
}

/* Which values a computed output depends on, back from the outputs over
 * the inputs each builder took as tensors. */
static void liveness(ox *b, const int *order, int count)
{
    const Onnx__GraphProto *gp = b->graph;
    if (b->opts.node_only >= 0) {
        const Onnx__NodeProto *nd = gp->node[order[count - 1]];
        for (size_t k = 0; k < nd->n_output; k++) {
            ox_val *v = val_of(b, nd->output[k]);
            if (v)
                v->live = 1;
        }
    } else {
        for (size_t i = 0; i < gp->n_output; i++) {
            ox_val *v = val_of(b, gp->output[i]->name);
            if (v && !v->k)
                v->live = 1;
        }
    }
    for (int i = count - 1; i >= 0; i--) {
        int n = order[i];
        const Onnx__NodeProto *nd = gp->node[n];
        int any = 0;
        for (size_t k = 0; k < nd->n_output && !any; k++) {
            ox_val *v = val_of(b, nd->output[k]);
            any = v && v->live;
        }
        if (!any)
            continue;
        for (size_t k = 0; k < nd->n_input && k < 64; k++)
            if (b->fetched[n] & ((uint64_t)1 << k)) {
                ox_val *v = val_of(b, nd->input[k]);
                if (v)
                    v->live = 1;
            }
    }
}

/* ---- the graph's outputs ---- */

static loom_status make_output(ox *b, const char *name)
{
    ox_val *v = val_of(b, name);
    if (!v)
        return ox_fail(b, LOOM_E_FORMAT, "graph output \"%s\" is defined by no node, initializer or input", name);
    loom_tensor t;
    LOOM_TRY(ox_tensor(b, v, LOOM_DTYPE_COUNT, &t));
    /* A leaf (an input, a parameter, a constant) keeps its own name: a
     * copy carries the output. */
    int leaf = 0;
    for (int i = 0; i < b->nvals && !leaf; i++) {
        const ox_val *x = &b->vals[i];
        leaf = x->t.id == t.id && (x->is_input || x->probe_input || x->param || x->k);
    }
    if (leaf) {
        int nd = loom_tensor_ndim(b->g, t);
        int64_t shape[LOOM_MAX_DIMS];
        for (int i = 0; i < nd; i++)
            shape[i] = loom_tensor_dim(b->g, t, i);
        t = loom_reshape(b->g, t, nd, shape);
        LOOM_TRY(ox_check_graph(b));
    }
    loom_status s = loom_output(b->g, t, name);
    if (s != LOOM_OK)
        return ox_fail(b, s, "graph output \"%s\": %s", name, loom_last_error(b->ctx));
    return LOOM_OK;
}

/* ---- the state, written last ---- */

static loom_status commit_state(ox *b, loom_state *st, loom_onnx_info *info)
{
    loom_ctx *ctx = b->ctx;
    int np = 0;
    uint64_t pbytes = 0;
    for (int i = 0; i < b->nvals; i++)
        if (b->vals[i].param && b->vals[i].k) {
            np++;
            pbytes += (uint64_t)b->vals[i].k->n * loom_dtype_size(loom_onnx_dtype(b->vals[i].k->type));
        }
    if (info) {
        info->nparams = np;
        info->param_bytes = pbytes;
    }
    if (!st || !np)
        return LOOM_OK;
    /* First every conflict, then the new tensors (removed again if one
     * fails), then those that exist with the same shape. */
    nn_name_map have;
    int ns = loom_state_count(st);
    LOOM_TRY(nn_name_map_init(&have, ctx, (size_t)ns + 1, "state names"));
    for (int i = 0; i < ns; i++) {
        const char *nm;
        if (loom_state_entry(st, i, &nm, NULL, NULL, NULL) == LOOM_OK)
            nn_name_map_put(&have, nm, i);
    }
    loom_status s = LOOM_OK;
    char **names = loom_calloc(ctx, (size_t)np, sizeof *names);
    int *exists = loom_calloc(ctx, (size_t)np, sizeof *exists);
    int *created = loom_calloc(ctx, (size_t)np, sizeof *created);
    if (!names || !exists || !created) {
        s = ox_fail(b, LOOM_E_OOM, "out of memory");
        goto out;
    }
    int k = 0;
    for (int i = 0; i < b->nvals && s == LOOM_OK; i++) {
        ox_val *v = &b->vals[i];
        if (!v->param || !v->k)
            continue;
        size_t pl = strlen(b->opts.prefix) + strlen(v->name) + 1;
        names[k] = loom_malloc(ctx, pl);
        if (!names[k]) {
            s = ox_fail(b, LOOM_E_OOM, "out of memory");
            break;
        }
        snprintf(names[k], pl, "%s%s", b->opts.prefix, v->name);
        int e = nn_name_map_get(&have, names[k]);
        exists[k] = e >= 0;
        if (e >= 0) {
            loom_dtype dt;
            int nd;
            int64_t shape[LOOM_MAX_DIMS];
            loom_state_entry(st, e, NULL, &dt, &nd, shape);
            int same = dt == loom_onnx_dtype(v->k->type) && nd == v->k->ndim;
            for (int d = 0; same && d < nd; d++)
                same = shape[d] == v->k->shape[d];
            if (!same) {
                char a[96], c[96];
                s = ox_fail(b, LOOM_E_SHAPE, "initializer \"%s\" is %s %s, the state already holds \"%s\" as %s %s",
                            v->name, loom_dtype_name(loom_onnx_dtype(v->k->type)),
                            loom_shape_str(a, sizeof a, v->k->ndim, v->k->shape), names[k], loom_dtype_name(dt),
                            loom_shape_str(c, sizeof c, nd, shape));
            }
        }
        k++;
    }
    for (int pass = 0; pass < 2 && s == LOOM_OK; pass++) {
        k = 0;
        for (int i = 0; i < b->nvals && s == LOOM_OK; i++) {
            ox_val *v = &b->vals[i];
            if (!v->param || !v->k)
                continue;
            if (exists[k] == pass) {
                loom_dtype dt = loom_onnx_dtype(v->k->type);
                char what[200];
                snprintf(what, sizeof what, "%s: initializer \"%.120s\"", b->what, v->name);
                void *data;
                size_t bytes;
                s = ox_const_to_dtype(ctx, v->k, dt, what, &data, &bytes);
                if (s == LOOM_OK) {
                    s = loom_state_write(st, names[k], dt, v->k->ndim, v->k->shape, data);
                    loom_free(ctx, data, bytes);
                }
                if (s == LOOM_OK && !pass)
                    created[k] = 1;
            }
            k++;
        }
    }
    if (s != LOOM_OK) {
        char keep[512];
        snprintf(keep, sizeof keep, "%s", loom_last_error(ctx));
        for (int i = 0; i < np; i++)
            if (created[i])
                loom_state_remove(st, names[i]);
        loom_fail(ctx, s, "%s", keep);
    }
out:
    if (names)
        for (int i = 0; i < np; i++)
            loom_strfree(ctx, names[i]);
    loom_free(ctx, names, (size_t)np * sizeof *names);
    loom_free(ctx, exists, (size_t)np * sizeof *exists);
    loom_free(ctx, created, (size_t)np * sizeof *created);
    nn_name_map_free(&have);
    return s;
}

/* ---- info ---- */

void loom_onnx_info_free(loom_onnx_info *info)
{
    if (!info || !info->ctx)
        return;
    loom_ctx *ctx = info->ctx;
    for (int i = 0; i < info->ninputs; i++)
        loom_strfree(ctx, (char *)info->inputs[i].name);
    for (int i = 0; i < info->noutputs; i++)
        loom_strfree(ctx, (char *)info->outputs[i].name);
    for (int i = 0; i < info->nnodes; i++) {
        loom_strfree(ctx, (char *)info->nodes[i].name);
        loom_strfree(ctx, (char *)info->nodes[i].op_type);
        loom_strfree(ctx, (char *)info->nodes[i].domain);
    }
    /* arrays are allocated for max(count, 1) entries */
    loom_free(ctx, info->inputs, (size_t)(info->ninputs ? info->ninputs : 1) * sizeof *info->inputs);
    loom_free(ctx, info->outputs, (size_t)(info->noutputs ? info->noutputs : 1) * sizeof *info->outputs);
    loom_free(ctx, info->nodes, (size_t)(info->nnodes ? info->nnodes : 1) * sizeof *info->nodes);
    loom_strfree(ctx, (char *)info->producer);
    memset(info, 0, sizeof *info);
}

static int fill_value(ox *b, loom_onnx_value *o, const char *name, int type, loom_tensor t)
{
    const ox_val *v = val_of(b, name);
    o->used = v && v->live;
    o->name = loom_strdup(b->ctx, name);
    o->type = type;
    o->dtype = loom_tensor_dtype(b->g, t);
    o->ndim = loom_tensor_ndim(b->g, t);
    for (int i = 0; i < o->ndim; i++)
        o->shape[i] = loom_tensor_dim(b->g, t, i);
    return o->name != NULL;
}

/* ---- the whole load ---- */

void loom_onnx_opts_default(loom_onnx_opts *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->batch = 1;
    o->prefix = "";
    o->node_only = -1;
}

static loom_status run_load(ox *b, const uint8_t *data, size_t n, loom_state *st, loom_onnx_info *info)
{
    loom_ctx *ctx = b->ctx;
    LOOM_TRY(ox_wire_check(ctx, b->what, data, n, &onnx__model_proto__descriptor));
    ox_pb_allocator(ctx, &b->pb);
    b->model = onnx__model_proto__unpack(&b->pb.al, n, data);
    if (!b->model && b->pb.failed)
        return ox_fail(b, LOOM_E_OOM, "out of memory parsing %zu bytes", n);
    if (!b->model)
        return ox_fail(b, LOOM_E_FORMAT, "not an ONNX model: %zu bytes that protobuf-c cannot parse as ModelProto",
                       n);
    const Onnx__ModelProto *m = b->model;
    if (!m->graph)
        return ox_fail(b, LOOM_E_FORMAT, "no graph (%zu bytes%s)", n, n ? "" : ": an empty file");
    b->graph = m->graph;
    b->opset = -1;
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[i];
        if (!o->domain || !*o->domain || !strcmp(o->domain, "ai.onnx"))
            b->opset = o->has_version ? o->version : 0;
    }
    int default_domain = 0;
    for (size_t i = 0; i < b->graph->n_node; i++) {
        const char *d = b->graph->node[i]->domain;
        default_domain |= !d || !*d || !strcmp(d, "ai.onnx");
    }
    if (b->opset < 0 && default_domain)
        return ox_fail(b, LOOM_E_FORMAT, "no opset_import for the default domain, which its nodes use");
    if (default_domain && (b->opset < LOOM_ONNX_MIN_OPSET || b->opset > LOOM_ONNX_MAX_OPSET))
        return ox_fail(b, LOOM_E_UNSUPPORTED, "opset %lld of the default domain: loom reads opsets %d to %d",
                       (long long)b->opset, LOOM_ONNX_MIN_OPSET, LOOM_ONNX_MAX_OPSET);
    if (m->n_functions)
        for (size_t i = 0; i < b->graph->n_node; i++)
            for (size_t f = 0; f < m->n_functions; f++)
                if (m->functions[f]->name && b->graph->node[i]->op_type &&
                    !strcmp(m->functions[f]->name, b->graph->node[i]->op_type))
                    return ox_fail(b, LOOM_E_UNSUPPORTED, "node %zu calls the model-local function %s (not supported)",
                                   i, m->functions[f]->name);
    LOOM_TRY(loom_graph_create(ctx, &b->g));
    LOOM_TRY(collect(b));
    int nn = (int)b->graph->n_node;
    if (b->opts.node_only >= nn)
        return ox_fail(b, LOOM_E_INVALID, "loom_onnx_opts.node_only %d: the model has %d nodes", b->opts.node_only, nn);
    int *order = loom_calloc(ctx, (size_t)nn + 1, sizeof *order);
    b->fetched = loom_calloc(ctx, (size_t)nn + 1, sizeof *b->fetched);
    b->nfetched = nn + 1;
    if (!order || !b->fetched) {
        loom_free(ctx, order, ((size_t)nn + 1) * sizeof *order);
        return ox_fail(b, LOOM_E_OOM, "out of memory");
    }
    int done = 0;
    loom_status s = topo_order(b, order);
    for (size_t i = 0; i < b->graph->n_output && s == LOOM_OK; i++)
        if (!b->graph->output[i]->name || !val_of(b, b->graph->output[i]->name))
            s = ox_fail(b, LOOM_E_FORMAT, "graph output %zu \"%s\" is defined by no node, initializer or input", i,
                        b->graph->output[i]->name ? b->graph->output[i]->name : "");
    for (size_t i = 0; i < b->graph->n_input && s == LOOM_OK; i++) {
        ox_val *v = val_of(b, b->graph->input[i]->name);
        if (v && v->is_input)
            s = make_input(b, b->graph->input[i], v);
    }
    if (s == LOOM_OK && info) {
        info->nodes = loom_calloc(ctx, (size_t)(nn ? nn : 1), sizeof *info->nodes);
        if (!info->nodes)
            s = ox_fail(b, LOOM_E_OOM, "out of memory");
    }
    for (int i = 0; i < nn && s == LOOM_OK; i++) {
        int n = order[i];
        int only = i == b->opts.node_only;
        if (only) {
            /* the node alone: its computed inputs become graph inputs */
            if (info) {
                for (int k = 0; k < info->nnodes; k++) {
                    loom_strfree(ctx, (char *)info->nodes[k].name);
                    loom_strfree(ctx, (char *)info->nodes[k].op_type);
                    loom_strfree(ctx, (char *)info->nodes[k].domain);
                }
                memset(info->nodes, 0, (size_t)info->nnodes * sizeof *info->nodes);
                info->nnodes = 0;
            }
            loom_graph_destroy(b->g);
            b->g = NULL;
            if ((s = loom_graph_create(ctx, &b->g)) != LOOM_OK)
                break;
            for (int v = 0; v < b->nvals; v++) {
                b->vals[v].param = 0;
                b->vals[v].t = LOOM_NONE;
            }
            const Onnx__NodeProto *nd = b->graph->node[n];
            for (size_t k = 0; k < nd->n_input && s == LOOM_OK; k++) {
                ox_val *x = val_of(b, nd->input[k]);
                if (!x || x->k || x->init || x->t.id)
                    continue;
                x->t = loom_input(b->g, x->name, loom_onnx_dtype(x->type), x->ndim, x->shape);
                x->probe_input = 1;
                s = ox_check_graph(b);
            }
            if (s != LOOM_OK)
                break;
        }
        int first = loom_graph_node_count(b->g) + 1;
        s = build_node(b, n);
        done = i + 1;
        if (s == LOOM_OK && info) {
            const Onnx__NodeProto *nd = b->graph->node[n];
            loom_onnx_node *o = &info->nodes[info->nnodes++];
            char nm[64];
            snprintf(nm, sizeof nm, "%.40s_%d", nd->op_type, n);
            o->name = loom_strdup(ctx, nd->name && *nd->name ? nd->name : nm);
            o->op_type = loom_strdup(ctx, nd->op_type);
            o->domain = loom_strdup(ctx, nd->domain ? nd->domain : "");
            o->first = first;
            o->count = loom_graph_node_count(b->g) - first + 1;
            if (!o->count)
                o->first = 0;
            if (!o->name || !o->op_type || !o->domain)
                s = ox_fail(b, LOOM_E_OOM, "out of memory");
        }
        if (only) {
            const Onnx__NodeProto *nd = b->graph->node[n];
            for (size_t k = 0; k < nd->n_output && s == LOOM_OK; k++)
                if (*nd->output[k])
                    s = make_output(b, nd->output[k]);
            break;
        }
    }
    b->node = NULL;
    if (s == LOOM_OK && done)
        liveness(b, order + (b->opts.node_only >= 0 ? b->opts.node_only : 0), b->opts.node_only >= 0 ? 1 : done);
    loom_free(ctx, order, ((size_t)nn + 1) * sizeof *order);
    if (info && info->nodes && info->nnodes < (nn ? nn : 1)) {
        /* node_only stops early: the array is kept at its count */
        loom_onnx_node *sh = loom_realloc(ctx, info->nodes, (size_t)(nn ? nn : 1) * sizeof *sh,
                                          (size_t)(info->nnodes ? info->nnodes : 1) * sizeof *sh);
        if (sh)
            info->nodes = sh;
        else if (s == LOOM_OK)
            s = ox_fail(b, LOOM_E_OOM, "out of memory");
    }
    if (s != LOOM_OK)
        return s;
    if (b->opts.node_only < 0)
        for (size_t i = 0; i < b->graph->n_output; i++)
            LOOM_TRY(make_output(b, b->graph->output[i]->name));
    LOOM_TRY(ox_check_graph(b));
    if (info) {
        const Onnx__GraphProto *gp = b->graph;
        info->ir_version = m->has_ir_version ? m->ir_version : 0;
        info->opset = b->opset;
        char prod[256];
        snprintf(prod, sizeof prod, "%s%s%s", m->producer_name ? m->producer_name : "",
                 m->producer_version && *m->producer_version ? " " : "", m->producer_version ? m->producer_version : "");
        info->producer = loom_strdup(ctx, prod);
        const Onnx__NodeProto *only = b->opts.node_only >= 0 ? b->graph->node[b->node_index] : NULL;
        int nin = 0, nout = 0;
        for (int v = 0; v < b->nvals; v++)
            nin += (only ? b->vals[v].probe_input : b->vals[v].is_input) && b->vals[v].t.id;
        size_t cand = only ? only->n_output : gp->n_output;
        for (size_t i = 0; i < cand; i++)
            nout += *(only ? only->output[i] : gp->output[i]->name) != 0;
        info->inputs = loom_calloc(ctx, (size_t)(nin ? nin : 1), sizeof *info->inputs);
        info->outputs = loom_calloc(ctx, (size_t)(nout ? nout : 1), sizeof *info->outputs);
        if (!info->inputs || !info->outputs) {
            loom_free(ctx, info->inputs, (size_t)(nin ? nin : 1) * sizeof *info->inputs);
            loom_free(ctx, info->outputs, (size_t)(nout ? nout : 1) * sizeof *info->outputs);
            info->inputs = NULL;
            info->outputs = NULL;
            return ox_fail(b, LOOM_E_OOM, "out of memory");
        }
        info->ninputs = nin;
        info->noutputs = nout;
        if (!info->producer)
            return ox_fail(b, LOOM_E_OOM, "out of memory");
        int ki = 0, ko = 0;
        for (int v = 0; v < b->nvals; v++) {
            ox_val *x = &b->vals[v];
            int want = only ? x->probe_input : x->is_input;
            if (want && x->t.id && !fill_value(b, &info->inputs[ki++], x->name, x->type, x->t))
                return ox_fail(b, LOOM_E_OOM, "out of memory");
        }
        for (size_t i = 0; i < cand; i++) {
            const char *nm = only ? only->output[i] : gp->output[i]->name;
            if (!*nm)
                continue;
            ox_val *v = val_of(b, nm);
            loom_tensor t = loom_graph_find(b->g, nm);
            if (!fill_value(b, &info->outputs[ko++], nm, v->type, t))
                return ox_fail(b, LOOM_E_OOM, "out of memory");
        }
    }
    return commit_state(b, st, info);
}

static char *dir_of(loom_ctx *ctx, const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return loom_strdup(ctx, ".");
    size_t n = (size_t)(slash - path);
    char *d = loom_malloc(ctx, n + 2);
    if (!d)
        return NULL;
    memcpy(d, path, n ? n : 1);
    d[n ? n : 1] = 0;
    return d;
}

static loom_status load(loom_ctx *ctx, const char *what, const uint8_t *data, size_t n, const char *base_dir,
                        loom_graph **graph, loom_state *st, const loom_onnx_opts *opts, loom_onnx_info *info)
{
    ox b;
    memset(&b, 0, sizeof b);
    b.ctx = ctx;
    b.what = what;
    b.base_dir = base_dir;
    loom_onnx_opts_default(&b.opts);
    if (opts)
        b.opts = *opts;
    if (!b.opts.prefix)
        b.opts.prefix = "";
    if (b.opts.batch < 1 || (b.opts.ndims && !b.opts.dims) || (b.opts.nshapes && !b.opts.shapes) ||
        (b.opts.nvalues && !b.opts.values))
        return loom_fail(ctx, LOOM_E_INVALID, "%s: loom_onnx_opts: batch %lld, %d dims, %d shapes", what,
                         (long long)b.opts.batch, b.opts.ndims, b.opts.nshapes);
    for (int i = 0; i < b.opts.ndims; i++)
        if (b.opts.dims[i].value < 1)
            return loom_fail(ctx, LOOM_E_INVALID, "%s: loom_onnx_opts.dims: \"%s\" = %lld (>= 1 needed)", what,
                             b.opts.dims[i].name ? b.opts.dims[i].name : "?", (long long)b.opts.dims[i].value);
    if (info) {
        memset(info, 0, sizeof *info);
        info->ctx = ctx;
    }
    loom_status s = run_load(&b, data, n, st, info);
    for (int i = 0; i < b.nvals; i++)
        ox_const_free(ctx, b.vals[i].k);
    loom_free(ctx, b.vals, (size_t)b.vals_cap * sizeof *b.vals);
    nn_name_map_free(&b.names);
    loom_free(ctx, b.attr_used, b.attr_cap);
    loom_free(ctx, b.fetched, (size_t)b.nfetched * sizeof *b.fetched);
    if (b.model)
        onnx__model_proto__free_unpacked(b.model, &b.pb.al);
    if (s != LOOM_OK) {
        loom_graph_destroy(b.g);
        loom_onnx_info_free(info);
        if (info)
            memset(info, 0, sizeof *info);
        return s;
    }
    *graph = b.g;
    return LOOM_OK;
}

loom_status loom_onnx_load_memory(loom_ctx *ctx, const void *data, size_t bytes, loom_graph **graph,
                                  loom_state *st, const loom_onnx_opts *opts, loom_onnx_info *info)
{
    if (!ctx)
        return LOOM_E_INVALID;
    if (!graph || (!data && bytes))
        return loom_fail(ctx, LOOM_E_INVALID, "loom_onnx_load_memory: NULL %s", graph ? "data" : "graph");
    *graph = NULL;
    if (bytes > OX_MAX_FILE)
        return loom_fail(ctx, LOOM_E_FORMAT, "ONNX model of %zu bytes: protobuf files end at 2 GiB", bytes);
    return load(ctx, "ONNX model", data, bytes, opts ? opts->base_dir : NULL, graph, st, opts, info);
}

loom_status loom_onnx_load(loom_ctx *ctx, const char *path, loom_graph **graph, loom_state *st,
                           const loom_onnx_opts *opts, loom_onnx_info *info)
{
    if (!ctx)
        return LOOM_E_INVALID;
    if (!graph || !path)
        return loom_fail(ctx, LOOM_E_INVALID, "loom_onnx_load: NULL %s", graph ? "path" : "graph");
    *graph = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return loom_fail(ctx, LOOM_E_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return loom_fail(ctx, LOOM_E_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > OX_MAX_FILE) {
        fclose(f);
        return loom_fail(ctx, LOOM_E_FORMAT, "%s: %lld bytes: protobuf files end at 2 GiB", path,
                         (long long)sb.st_size);
    }
    size_t n = (size_t)sb.st_size;
    uint8_t *data = loom_malloc(ctx, n ? n : 1);
    if (!data) {
        fclose(f);
        return loom_fail(ctx, LOOM_E_OOM, "%s: out of memory for %zu bytes", path, n);
    }
    size_t got = n ? fread(data, 1, n, f) : 0;
    fclose(f);
    if (got != n) {
        loom_free(ctx, data, n ? n : 1);
        return loom_fail(ctx, LOOM_E_IO, "%s: read %zu of %zu bytes", path, got, n);
    }
    char *dir = NULL;
    const char *base = opts && opts->base_dir ? opts->base_dir : NULL;
    if (!base) {
        dir = dir_of(ctx, path);
        if (!dir) {
            loom_free(ctx, data, n ? n : 1);
            return loom_fail(ctx, LOOM_E_OOM, "%s: out of memory", path);
        }
        base = dir;
    }
    loom_status s = load(ctx, path, data, n, base, graph, st, opts, info);
    loom_free(ctx, data, n ? n : 1);
    loom_strfree(ctx, dir);
    return s;
}
