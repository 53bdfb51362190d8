/* ONNX models assembled from protobuf-c's structs: every allocation is
 * remembered by the model and freed with it. */
#include "onnx_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ob_model {
    Onnx__ModelProto model;
    Onnx__GraphProto graph;
    void **owned;
    size_t nowned, cap;
};

static void *own(ob_model *m, void *p)
{
    if (!p)
        abort(); /* tests only: out of memory ends the test */
    if (m->nowned == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 64;
        m->owned = realloc(m->owned, m->cap * sizeof *m->owned);
        if (!m->owned)
            abort();
    }
    m->owned[m->nowned++] = p;
    return p;
}

static void *zalloc(ob_model *m, size_t n)
{
    return own(m, calloc(1, n ? n : 1));
}

static char *dup(ob_model *m, const char *s)
{
    return own(m, strdup(s));
}

/* Appends p to a protobuf-c repeated field (n, array). */
#define PUSH(m, n, arr, p)                                                                                        \
    do {                                                                                                         \
        void *grown_ = zalloc((m), ((n) + 1) * sizeof *(arr));                                                    \
        if (n)                                                                                                   \
            memcpy(grown_, (arr), (n) * sizeof *(arr));                                                          \
        (arr) = grown_;                                                                                          \
        (arr)[(n)++] = (p);                                                                                      \
    } while (0)

ob_model *ob_new(int64_t opset)
{
    ob_model *m = calloc(1, sizeof *m);
    if (!m)
        abort();
    Onnx__ModelProto mi = ONNX__MODEL_PROTO__INIT;
    Onnx__GraphProto gi = ONNX__GRAPH_PROTO__INIT;
    m->model = mi;
    m->graph = gi;
    m->model.has_ir_version = 1;
    m->model.ir_version = 8;
    m->model.producer_name = dup(m, "loom-tests");
    m->model.graph = &m->graph;
    m->graph.name = dup(m, "g");
    if (opset > 0) {
        Onnx__OperatorSetIdProto *o = zalloc(m, sizeof *o);
        Onnx__OperatorSetIdProto oi = ONNX__OPERATOR_SET_ID_PROTO__INIT;
        *o = oi;
        o->domain = dup(m, "");
        o->has_version = 1;
        o->version = opset;
        PUSH(m, m->model.n_opset_import, m->model.opset_import, o);
    }
    return m;
}

void ob_free(ob_model *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nowned; i++)
        free(m->owned[i]);
    free(m->owned);
    free(m);
}

Onnx__ModelProto *ob_proto(ob_model *m)
{
    return &m->model;
}

Onnx__GraphProto *ob_graph(ob_model *m)
{
    return &m->graph;
}

static Onnx__ValueInfoProto *value_info(ob_model *m, const char *name, int type, int ndim, const int64_t *shape)
{
    Onnx__ValueInfoProto *v = zalloc(m, sizeof *v);
    Onnx__ValueInfoProto vi = ONNX__VALUE_INFO_PROTO__INIT;
    *v = vi;
    v->name = dup(m, name);
    Onnx__TypeProto *tp = zalloc(m, sizeof *tp);
    Onnx__TypeProto ti = ONNX__TYPE_PROTO__INIT;
    *tp = ti;
    Onnx__TypeProto__Tensor *tt = zalloc(m, sizeof *tt);
    Onnx__TypeProto__Tensor tti = ONNX__TYPE_PROTO__TENSOR__INIT;
    *tt = tti;
    tt->has_elem_type = 1;
    tt->elem_type = type;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    v->type = tp;
    if (ndim < 0)
        return v;
    Onnx__TensorShapeProto *sp = zalloc(m, sizeof *sp);
    Onnx__TensorShapeProto si = ONNX__TENSOR_SHAPE_PROTO__INIT;
    *sp = si;
    for (int i = 0; i < ndim; i++) {
        Onnx__TensorShapeProto__Dimension *d = zalloc(m, sizeof *d);
        Onnx__TensorShapeProto__Dimension di = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
        *d = di;
        if (shape[i] >= 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = shape[i];
        } else if (shape[i] >= -2) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = dup(m, shape[i] == -1 ? "N" : "S");
        }
        PUSH(m, sp->n_dim, sp->dim, d);
    }
    tt->shape = sp;
    return v;
}

void ob_input(ob_model *m, const char *name, int type, int ndim, const int64_t *shape)
{
    Onnx__ValueInfoProto *v = value_info(m, name, type, ndim, shape);
    PUSH(m, m->graph.n_input, m->graph.input, v);
}

void ob_output(ob_model *m, const char *name, int type, int ndim, const int64_t *shape)
{
    Onnx__ValueInfoProto *v = value_info(m, name, type, ndim, shape);
    PUSH(m, m->graph.n_output, m->graph.output, v);
}

static void split_names(ob_model *m, const char *list, size_t *n, char ***arr)
{
    if (!list || !*list)
        return;
    const char *p = list;
    for (;;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        char *s = zalloc(m, len + 1);
        memcpy(s, p, len);
        PUSH(m, *n, *arr, s);
        if (!c)
            break;
        p = c + 1;
    }
}

Onnx__NodeProto *ob_node(ob_model *m, const char *op, const char *name, const char *ins, const char *outs)
{
    Onnx__NodeProto *n = zalloc(m, sizeof *n);
    Onnx__NodeProto ni = ONNX__NODE_PROTO__INIT;
    *n = ni;
    n->op_type = dup(m, op);
    n->name = name ? dup(m, name) : NULL; /* NULL: the field left out */
    n->domain = dup(m, "");
    split_names(m, ins, &n->n_input, &n->input);
    split_names(m, outs, &n->n_output, &n->output);
    PUSH(m, m->graph.n_node, m->graph.node, n);
    return n;
}

static Onnx__AttributeProto *attr(ob_model *m, Onnx__NodeProto *n, const char *name,
                                  Onnx__AttributeProto__AttributeType type)
{
    Onnx__AttributeProto *a = zalloc(m, sizeof *a);
    Onnx__AttributeProto ai = ONNX__ATTRIBUTE_PROTO__INIT;
    *a = ai;
    a->name = dup(m, name);
    a->has_type = 1;
    a->type = type;
    PUSH(m, n->n_attribute, n->attribute, a);
    return a;
}

void ob_attr_int(ob_model *m, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = attr(m, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    a->has_i = 1;
    a->i = v;
}

void ob_attr_float(ob_model *m, Onnx__NodeProto *n, const char *name, float v)
{
    Onnx__AttributeProto *a = attr(m, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    a->has_f = 1;
    a->f = v;
}

void ob_attr_ints(ob_model *m, Onnx__NodeProto *n, const char *name, int count, const int64_t *v)
{
    Onnx__AttributeProto *a = attr(m, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    a->ints = zalloc(m, (size_t)count * sizeof *a->ints);
    memcpy(a->ints, v, (size_t)count * sizeof *v);
    a->n_ints = (size_t)count;
}

void ob_attr_string(ob_model *m, Onnx__NodeProto *n, const char *name, const char *v)
{
    Onnx__AttributeProto *a = attr(m, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    a->has_s = 1;
    a->s.len = strlen(v);
    a->s.data = (uint8_t *)dup(m, v);
}

void ob_attr_tensor(ob_model *m, Onnx__NodeProto *n, const char *name, Onnx__TensorProto *t)
{
    Onnx__AttributeProto *a = attr(m, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
    a->t = t;
}

Onnx__TensorProto *ob_tensor(ob_model *m, const char *name, int type, int ndim, const int64_t *shape,
                             const void *raw, size_t raw_bytes)
{
    Onnx__TensorProto *t = zalloc(m, sizeof *t);
    Onnx__TensorProto ti = ONNX__TENSOR_PROTO__INIT;
    *t = ti;
    t->name = dup(m, name);
    t->has_data_type = 1;
    t->data_type = type;
    t->n_dims = (size_t)ndim;
    t->dims = zalloc(m, (size_t)ndim * sizeof *t->dims);
    if (ndim)
        memcpy(t->dims, shape, (size_t)ndim * sizeof *shape);
    if (raw) {
        t->has_raw_data = 1;
        t->raw_data.len = raw_bytes;
        t->raw_data.data = zalloc(m, raw_bytes);
        memcpy(t->raw_data.data, raw, raw_bytes);
    }
    return t;
}

static size_t count_of(int ndim, const int64_t *shape)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    return n;
}

Onnx__TensorProto *ob_tensor_f32(ob_model *m, const char *name, int ndim, const int64_t *shape, const float *v,
                                 int typed)
{
    size_t n = count_of(ndim, shape);
    if (!typed)
        return ob_tensor(m, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, ndim, shape, v, n * sizeof *v);
    Onnx__TensorProto *t = ob_tensor(m, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, ndim, shape, NULL, 0);
    t->float_data = zalloc(m, n * sizeof *v);
    memcpy(t->float_data, v, n * sizeof *v);
    t->n_float_data = n;
    return t;
}

Onnx__TensorProto *ob_tensor_i64(ob_model *m, const char *name, int ndim, const int64_t *shape, const int64_t *v,
                                 int typed)
{
    size_t n = count_of(ndim, shape);
    if (!typed)
        return ob_tensor(m, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, ndim, shape, v, n * sizeof *v);
    Onnx__TensorProto *t = ob_tensor(m, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, ndim, shape, NULL, 0);
    t->int64_data = zalloc(m, n * sizeof *v);
    memcpy(t->int64_data, v, n * sizeof *v);
    t->n_int64_data = n;
    return t;
}

void ob_init(ob_model *m, Onnx__TensorProto *t)
{
    PUSH(m, m->graph.n_initializer, m->graph.initializer, t);
}

static void ext_entry(ob_model *m, Onnx__TensorProto *t, const char *k, const char *v)
{
    Onnx__StringStringEntryProto *e = zalloc(m, sizeof *e);
    Onnx__StringStringEntryProto ei = ONNX__STRING_STRING_ENTRY_PROTO__INIT;
    *e = ei;
    e->key = dup(m, k);
    e->value = dup(m, v);
    PUSH(m, t->n_external_data, t->external_data, e);
}

Onnx__TensorProto *ob_tensor_external(ob_model *m, const char *name, int type, int ndim, const int64_t *shape,
                                      const char *location, long offset, long length)
{
    Onnx__TensorProto *t = ob_tensor(m, name, type, ndim, shape, NULL, 0);
    t->has_data_location = 1;
    t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    char b[32];
    ext_entry(m, t, "location", location);
    if (offset >= 0) {
        snprintf(b, sizeof b, "%ld", offset);
        ext_entry(m, t, "offset", b);
    }
    if (length >= 0) {
        snprintf(b, sizeof b, "%ld", length);
        ext_entry(m, t, "length", b);
    }
    return t;
}

uint8_t *ob_pack(ob_model *m, size_t *n)
{
    *n = onnx__model_proto__get_packed_size(&m->model);
    uint8_t *d = malloc(*n ? *n : 1);
    if (!d)
        abort();
    onnx__model_proto__pack(&m->model, d);
    return d;
}

uint8_t *ob_pack_tensor(const Onnx__TensorProto *t, size_t *n)
{
    *n = onnx__tensor_proto__get_packed_size(t);
    uint8_t *d = malloc(*n ? *n : 1);
    if (!d)
        abort();
    onnx__tensor_proto__pack(t, d);
    return d;
}
