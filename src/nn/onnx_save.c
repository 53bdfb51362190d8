/* loom_onnx_save: a Sequential model as an ONNX file (opset 17, IR 8),
 * built through protoc-c's structs: input "x" [batch, features] or
 * [batch, C, H, W] with a symbolic batch, each dense layer as MatMul + Add
 * (+ its activation), conv2d as Conv with loom's "same" padding made
 * explicit, pooling, batch norm (inference: the running statistics),
 * flatten, dropout left out (inference), output "y"; a layer with no ONNX
 * form here is refused, never left out; the weights, read from the
 * state, as f32 initializers under the state's names. The inputs'
 * preprocessing is recorded in metadata_props (loom.preprocess), as loom's
 * own model files keep it: the graph takes preprocessed inputs, as
 * loom_sequential_predict does. */
#include "onnx_save.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAVE_OPSET 17


void *oxs_own(saver *s, size_t n)
{
    if (s->failed)
        return NULL;
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        void **no = loom_realloc(s->ctx, s->owned, s->cap * sizeof *no, nc * sizeof *no);
        if (no)
            s->owned = no;
        size_t *ns = no ? loom_realloc(s->ctx, s->sizes, s->cap * sizeof *ns, nc * sizeof *ns) : NULL;
        if (!no || !ns) {
            s->failed = 1;
            return NULL;
        }
        s->sizes = ns;
        s->cap = nc;
    }
    void *p = loom_calloc(s->ctx, 1, n ? n : 1);
    if (!p) {
        s->failed = 1;
        return NULL;
    }
    s->owned[s->n] = p;
    s->sizes[s->n++] = n ? n : 1;
    return p;
}

char *oxs_str(saver *s, const char *v)
{
    size_t n = strlen(v) + 1;
    char *d = oxs_own(s, n);
    if (d)
        memcpy(d, v, n);
    return d;
}

/* Appends p to a repeated field (count, array of pointers). */
void oxs_push(saver *s, size_t *n, void ***arr, void *p)
{
    void **grown = oxs_own(s, (*n + 1) * sizeof *grown);
    if (!grown || !p) {
        s->failed = 1;
        return;
    }
    if (*n)
        memcpy(grown, *arr, *n * sizeof *grown);
    grown[(*n)++] = p;
    *arr = grown;
}

Onnx__NodeProto *oxs_node(saver *s, Onnx__GraphProto *g, const char *op, const char *name, const char *in0,
                             const char *in1, const char *out)
{
    Onnx__NodeProto *n = oxs_own(s, sizeof *n);
    if (!n)
        return NULL;
    Onnx__NodeProto init = ONNX__NODE_PROTO__INIT;
    *n = init;
    n->op_type = oxs_str(s, op);
    n->name = oxs_str(s, name);
    n->domain = oxs_str(s, "");
    oxs_push(s, &n->n_input, (void ***)&n->input, oxs_str(s, in0));
    if (in1)
        oxs_push(s, &n->n_input, (void ***)&n->input, oxs_str(s, in1));
    oxs_push(s, &n->n_output, (void ***)&n->output, oxs_str(s, out));
    oxs_push(s, &g->n_node, (void ***)&g->node, n);
    return n;
}

/* A new attribute of n, named and typed; NULL when out of memory. */
static Onnx__AttributeProto *attr_new(saver *s, Onnx__NodeProto *n, const char *name,
                                      Onnx__AttributeProto__AttributeType type)
{
    Onnx__AttributeProto *a = oxs_own(s, sizeof *a);
    if (!a || !n)
        return NULL;
    Onnx__AttributeProto init = ONNX__ATTRIBUTE_PROTO__INIT;
    *a = init;
    a->name = oxs_str(s, name);
    a->has_type = 1;
    a->type = type;
    oxs_push(s, &n->n_attribute, (void ***)&n->attribute, a);
    return a;
}

void oxs_attr_int(saver *s, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = attr_new(s, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) {
        a->has_i = 1;
        a->i = v;
    }
}

void oxs_attr_ints(saver *s, Onnx__NodeProto *n, const char *name, int count, const int64_t *v)
{
    Onnx__AttributeProto *a = attr_new(s, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *d = oxs_own(s, (size_t)count * sizeof *d);
    if (a && d) {
        memcpy(d, v, (size_t)count * sizeof *d);
        a->ints = d;
        a->n_ints = (size_t)count;
    }
}

void oxs_attr_float(saver *s, Onnx__NodeProto *n, const char *name, float v)
{
    Onnx__AttributeProto *a = attr_new(s, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) {
        a->has_f = 1;
        a->f = v;
    }
}

/* One more input of node n. */
void oxs_add_input(saver *s, Onnx__NodeProto *n, const char *in)
{
    if (n)
        oxs_push(s, &n->n_input, (void ***)&n->input, oxs_str(s, in));
}

Onnx__ValueInfoProto *oxs_value(saver *s, const char *name, int nd, const int64_t *dims)
{
    Onnx__ValueInfoProto *v = oxs_own(s, sizeof *v);
    Onnx__TypeProto *tp = oxs_own(s, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = oxs_own(s, sizeof *tt);
    Onnx__TensorShapeProto *sp = oxs_own(s, sizeof *sp);
    if (!v || !tp || !tt || !sp)
        return NULL;
    Onnx__ValueInfoProto vi = ONNX__VALUE_INFO_PROTO__INIT;
    Onnx__TypeProto ti = ONNX__TYPE_PROTO__INIT;
    Onnx__TypeProto__Tensor tti = ONNX__TYPE_PROTO__TENSOR__INIT;
    Onnx__TensorShapeProto si = ONNX__TENSOR_SHAPE_PROTO__INIT;
    *v = vi;
    *tp = ti;
    *tt = tti;
    *sp = si;
    v->name = oxs_str(s, name);
    tt->has_elem_type = 1;
    tt->elem_type = LOOM_ONNX_FLOAT;
    for (int i = 0; i < nd; i++) {
        Onnx__TensorShapeProto__Dimension *d = oxs_own(s, sizeof *d);
        if (!d)
            return NULL;
        Onnx__TensorShapeProto__Dimension di = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
        *d = di;
        if (dims[i] > 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i];
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = oxs_str(s, "batch");
        }
        oxs_push(s, &sp->n_dim, (void ***)&sp->dim, d);
    }
    tt->shape = sp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    v->type = tp;
    return v;
}

/* A new initializer of ndim dims (0: a scalar) and `type` whose raw data
 * (elem bytes a value, zeros) is returned for the caller to fill; NULL
 * when out of memory (s->failed). */
static void *init_new(saver *s, Onnx__GraphProto *g, const char *name, int type, int ndim, const int64_t *shape,
                      size_t elem)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    Onnx__TensorProto *t = oxs_own(s, sizeof *t);
    void *data = oxs_own(s, n * elem);
    int64_t *dims = oxs_own(s, (size_t)(ndim ? ndim : 1) * sizeof *dims);
    if (!t || !data || !dims)
        return NULL;
    Onnx__TensorProto ti = ONNX__TENSOR_PROTO__INIT;
    *t = ti;
    t->name = oxs_str(s, name);
    t->has_data_type = 1;
    t->data_type = type;
    if (ndim)
        memcpy(dims, shape, (size_t)ndim * sizeof *dims);
    t->dims = ndim ? dims : NULL;
    t->n_dims = (size_t)ndim;
    t->has_raw_data = 1;
    t->raw_data.data = data;
    t->raw_data.len = n * elem;
    oxs_push(s, &g->n_initializer, (void ***)&g->initializer, t);
    return data;
}

/* Part `row` of `parts` equal parts of the state's f32 tensor `name`
 * (whole: row < 0), of shape[0..ndim), as an f32 initializer `as`. */
static loom_status oxs_weight_part(saver *s, loom_state *st, Onnx__GraphProto *g, const char *name, const char *as,
                                   int row, int parts, int ndim, const int64_t *shape)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    float *data = init_new(s, g, as, LOOM_ONNX_FLOAT, ndim, shape, sizeof *data);
    if (!data)
        return loom_fail(s->ctx, LOOM_E_OOM, "loom_onnx_save: out of memory for \"%s\"", name);
    if (row < 0)
        return loom_state_read(st, name, data, n * sizeof *data);
    size_t all = (size_t)parts * n;
    float *tmp = loom_malloc(s->ctx, all * sizeof *tmp);
    if (!tmp)
        return loom_fail(s->ctx, LOOM_E_OOM, "loom_onnx_save: out of memory for \"%s\"", name);
    loom_status rs = loom_state_read(st, name, tmp, all * sizeof *tmp);
    if (rs == LOOM_OK)
        memcpy(data, tmp + (size_t)row * n, n * sizeof *data);
    loom_free(s->ctx, tmp, all * sizeof *tmp);
    return rs;
}

loom_status oxs_weight(saver *s, loom_state *st, Onnx__GraphProto *g, const char *name, int ndim,
                          const int64_t *shape)
{
    return oxs_weight_part(s, st, g, name, name, -1, 1, ndim, shape);
}

/* y = act(h) under a node name; returns the output's name in buf. */
void oxs_activation(saver *s, Onnx__GraphProto *g, loom_activation act, const char *l, const char *in, char *out,
                       size_t n)
{
    static const char *const ops[] = {NULL, "Relu", "Sigmoid", "Tanh", NULL, "Softmax"};
    char name[160];
    if (act == LOOM_ACT_NONE) {
        snprintf(out, n, "%s", in);
        return;
    }
    snprintf(out, n, "%s/act", l);
    if (act == LOOM_ACT_GELU) {
        /* 0.5 x (1 + erf(x / sqrt 2)): Gelu is an op from opset 20 */
        char a[160], b[160], c[160];
        s->gelu = 1;
        snprintf(a, sizeof a, "%s/gelu_scaled", l);
        snprintf(b, sizeof b, "%s/gelu_erf", l);
        snprintf(c, sizeof c, "%s/gelu_1p", l);
        snprintf(name, sizeof name, "%s/gelu_div", l);
        oxs_node(s, g, "Div", name, in, "loom/sqrt2", a);
        snprintf(name, sizeof name, "%s/gelu_erfop", l);
        oxs_node(s, g, "Erf", name, a, NULL, b);
        snprintf(name, sizeof name, "%s/gelu_add", l);
        oxs_node(s, g, "Add", name, b, "loom/one", c);
        char d[160];
        snprintf(d, sizeof d, "%s/gelu_mul", l);
        snprintf(name, sizeof name, "%s/gelu_mulop", l);
        oxs_node(s, g, "Mul", name, in, c, d);
        snprintf(name, sizeof name, "%s/gelu_half", l);
        oxs_node(s, g, "Mul", name, d, "loom/half", out);
        return;
    }
    snprintf(name, sizeof name, "%s/%s", l, ops[act]);
    Onnx__NodeProto *nd = oxs_node(s, g, ops[act], name, in, NULL, out);
    if (act == LOOM_ACT_SOFTMAX)
        oxs_attr_int(s, nd, "axis", -1);
}

void oxs_scalar_init(saver *s, Onnx__GraphProto *g, const char *name, float v)
{
    float *d = init_new(s, g, name, LOOM_ONNX_FLOAT, 0, NULL, sizeof *d);
    if (d)
        *d = v;
}

void oxs_ints_init(saver *s, Onnx__GraphProto *g, const char *name, int ndim, int n, const int64_t *v)
{
    int64_t shape[1] = {n};
    int64_t *d = init_new(s, g, name, LOOM_ONNX_INT64, ndim ? 1 : 0, shape, sizeof *d);
    if (d)
        memcpy(d, v, (size_t)n * sizeof *d);
}

void oxs_f32_init(saver *s, Onnx__GraphProto *g, const char *name, int ndim, const int64_t *shape, const float *v)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    float *d = init_new(s, g, name, LOOM_ONNX_FLOAT, ndim, shape, sizeof *d);
    if (d)
        memcpy(d, v, n * sizeof *d);
}

static void meta(saver *s, Onnx__ModelProto *m, const char *k, const char *v)
{
    Onnx__StringStringEntryProto *e = oxs_own(s, sizeof *e);
    if (!e)
        return;
    Onnx__StringStringEntryProto ei = ONNX__STRING_STRING_ENTRY_PROTO__INIT;
    *e = ei;
    e->key = oxs_str(s, k);
    e->value = oxs_str(s, v);
    oxs_push(s, &m->n_metadata_props, (void ***)&m->metadata_props, e);
}

static loom_status build(saver *s, loom_sequential *m, Onnx__ModelProto *model)
{
    Onnx__GraphProto *g = oxs_own(s, sizeof *g);
    Onnx__OperatorSetIdProto *op = oxs_own(s, sizeof *op);
    if (!g || !op)
        return loom_fail(s->ctx, LOOM_E_OOM, "loom_onnx_save: out of memory");
    Onnx__GraphProto gi = ONNX__GRAPH_PROTO__INIT;
    Onnx__OperatorSetIdProto oi = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    *g = gi;
    *op = oi;
    op->domain = oxs_str(s, "");
    op->has_version = 1;
    op->version = SAVE_OPSET;
    oxs_push(s, &model->n_opset_import, (void ***)&model->opset_import, op);
    model->has_ir_version = 1;
    model->ir_version = 8;
    model->producer_name = oxs_str(s, "loom");
    model->producer_version = oxs_str(s, loom_version_string());
    model->graph = g;
    g->name = oxs_str(s, "loom_sequential");
    nn_shape shapes[LOOM_MAX_LAYERS + 1];
    loom_model_shapes(m, shapes);
    int64_t dims[NN_SHAPE_MAX + 1] = {0};
    for (int k = 0; k < shapes[0].ndim; k++)
        dims[1 + k] = shapes[0].d[k];
    oxs_push(s, &g->n_input, (void ***)&g->input, oxs_value(s, "x", 1 + shapes[0].ndim, dims));
    char cur[160] = "x", next[160];
    for (int i = 0; i < m->nlayers; i++) {
        const layer *l = &m->layers[i];
        if (l->kind == LAYER_DROPOUT || l->kind == LAYER_SPATIAL_DROPOUT)
            continue; /* the identity at inference */
        char sc[64], name[160], out[160];
        loom_model_scope(m, i, sc, sizeof sc);
        model_param ps[3];
        int np = loom_model_layer_nparams(m, i);
        for (int k = 0; k < np && k < 3; k++)
            loom_model_layer_param(m, i, k, &ps[k]);
        snprintf(out, sizeof out, "%s/out", sc);
        Onnx__NodeProto *win = NULL; /* a conv or pooling node: its window's attributes */
        switch (l->kind) {
        case LAYER_DENSE: {
            char mm[160];
            LOOM_TRY(oxs_weight(s, m->st, g, ps[0].name, 2, ps[0].shape));
            LOOM_TRY(oxs_weight(s, m->st, g, ps[1].name, 1, ps[1].shape));
            snprintf(name, sizeof name, "%s/matmul", sc);
            snprintf(mm, sizeof mm, "%s/mm", sc);
            oxs_node(s, g, "MatMul", name, cur, ps[0].name, mm);
            snprintf(name, sizeof name, "%s/add", sc);
            oxs_node(s, g, "Add", name, mm, ps[1].name, out);
            break;
        }
        case LAYER_CONV2D: {
            LOOM_TRY(oxs_weight(s, m->st, g, ps[0].name, 4, ps[0].shape));
            snprintf(name, sizeof name, "%s/conv", sc);
            win = oxs_node(s, g, "Conv", name, cur, ps[0].name, out);
            if (l->use_bias) {
                LOOM_TRY(oxs_weight(s, m->st, g, ps[1].name, 1, ps[1].shape));
                oxs_add_input(s, win, ps[1].name);
            }
            oxs_attr_int(s, win, "group", l->groups);
            int64_t dl[2] = {l->dilation[0], l->dilation[1]};
            oxs_attr_ints(s, win, "dilations", 2, dl);
            break;
        }
        case LAYER_MAX_POOL2D:
        case LAYER_AVG_POOL2D:
            snprintf(name, sizeof name, "%s/pool", sc);
            win = oxs_node(s, g, l->kind == LAYER_MAX_POOL2D ? "MaxPool" : "AveragePool", name, cur, NULL, out);
            int64_t k[2] = {l->kernel[0], l->kernel[1]};
            oxs_attr_ints(s, win, "kernel_shape", 2, k);
            break;
        case LAYER_GLOBAL_AVG_POOL2D: {
            /* loom's gives [N, C]: ONNX's [N, C, 1, 1] flattened */
            char gp[160];
            snprintf(gp, sizeof gp, "%s/gap", sc);
            snprintf(name, sizeof name, "%s/pool", sc);
            oxs_node(s, g, "GlobalAveragePool", name, cur, NULL, gp);
            snprintf(name, sizeof name, "%s/flatten", sc);
            oxs_attr_int(s, oxs_node(s, g, "Flatten", name, gp, NULL, out), "axis", 1);
            break;
        }
        case LAYER_BATCH_NORM: {
            /* the running statistics are one [2, C] tensor: mean, variance */
            char mean[192], var[192];
            int64_t c[1] = {ps[0].shape[0]};
            snprintf(mean, sizeof mean, "%s/mean", ps[2].name);
            snprintf(var, sizeof var, "%s/var", ps[2].name);
            LOOM_TRY(oxs_weight(s, m->st, g, ps[0].name, 1, ps[0].shape));
            LOOM_TRY(oxs_weight(s, m->st, g, ps[1].name, 1, ps[1].shape));
            LOOM_TRY(oxs_weight_part(s, m->st, g, ps[2].name, mean, 0, 2, 1, c));
            LOOM_TRY(oxs_weight_part(s, m->st, g, ps[2].name, var, 1, 2, 1, c));
            snprintf(name, sizeof name, "%s/batch_norm", sc);
            Onnx__NodeProto *nd = oxs_node(s, g, "BatchNormalization", name, cur, ps[0].name, out);
            oxs_add_input(s, nd, ps[1].name);
            oxs_add_input(s, nd, mean);
            oxs_add_input(s, nd, var);
            oxs_attr_float(s, nd, "epsilon", l->eps);
            break;
        }
        case LAYER_FLATTEN:
            snprintf(name, sizeof name, "%s/flatten", sc);
            oxs_attr_int(s, oxs_node(s, g, "Flatten", name, cur, NULL, out), "axis", 1);
            break;
        case LAYER_ACTIVATION:
            snprintf(out, sizeof out, "%s", cur);
            break;
        case LAYER_SEQ:
            if (l->seq.kind == SEQ_RESHAPE) {
                /* 0 keeps the batch */
                char shp[160];
                int64_t to[NN_SHAPE_MAX + 1] = {0};
                const nn_shape *o = &shapes[i + 1];
                for (int k = 0; k < o->ndim; k++)
                    to[1 + k] = o->d[k];
                snprintf(shp, sizeof shp, "%s/shape", sc);
                oxs_ints_init(s, g, shp, 1, 1 + o->ndim, to);
                snprintf(name, sizeof name, "%s/reshape", sc);
                oxs_node(s, g, "Reshape", name, cur, shp, out);
                break;
            }
            LOOM_TRY(oxs_seq_layer(s, m, g, i, sc, &shapes[i], cur, out, sizeof out));
            break;
        default:
            return loom_fail(s->ctx, LOOM_E_UNSUPPORTED, "loom_onnx_save: layer %d (%s) has no ONNX form in loom's "
                             "export yet (dense, conv2d, pooling, batch norm, flatten, activation and dropout have)",
                             i, sc);
        }
        if (win) {
            /* "same" made explicit, as loom resolves it */
            const nn_shape *in = &shapes[i];
            int64_t st2[2] = {l->stride[0], l->stride[1]}, pads[4] = {0, 0, 0, 0};
            for (int k = 0; k < 2 && l->same; k++)
                loom_same_padding(in->d[1 + k], l->kernel[k], st2[k], l->kind == LAYER_CONV2D ? l->dilation[k] : 1,
                                  &pads[k], &pads[2 + k]);
            oxs_attr_ints(s, win, "strides", 2, st2);
            oxs_attr_ints(s, win, "pads", 4, pads);
        }
        oxs_activation(s, g, l->act, sc, out, next, sizeof next);
        snprintf(cur, sizeof cur, "%s", next);
    }
    if (s->gelu) {
        oxs_scalar_init(s, g, "loom/sqrt2", 1.41421356237309515f);
        oxs_scalar_init(s, g, "loom/one", 1.0f);
        oxs_scalar_init(s, g, "loom/half", 0.5f);
    }
    /* the graph's output is "y": an Identity names it */
    oxs_node(s, g, "Identity", "output", cur, NULL, "y");
    const nn_shape *last = &shapes[m->nlayers];
    int64_t od[NN_SHAPE_MAX + 1] = {0};
    for (int k = 0; k < last->ndim; k++)
        od[1 + k] = last->d[k];
    oxs_push(s, &g->n_output, (void ***)&g->output, oxs_value(s, "y", 1 + last->ndim, od));
    loom_scaling how;
    float stats[2];
    if (loom_sequential_get_preprocess(m, &how, stats) == LOOM_OK) {
        char v[96];
        if (how == LOOM_SCALE_UNIT)
            snprintf(v, sizeof v, "unit: x / 255");
        else
            snprintf(v, sizeof v, "standard: (x - %.9g) / %.9g", (double)stats[0], (double)stats[1]);
        meta(s, model, "loom.preprocess", v);
    }
    meta(s, model, "loom.architecture", m->describe ? m->describe : "");
    return s->failed ? loom_fail(s->ctx, LOOM_E_OOM, "loom_onnx_save: out of memory") : LOOM_OK;
}

loom_status loom_onnx_save(loom_sequential *m, const char *path)
{
    if (!m)
        return LOOM_E_INVALID;
    if (!path)
        return loom_fail(m->ctx, LOOM_E_INVALID, "loom_onnx_save: NULL path");
    if (!m->compiled || !m->st)
        return loom_fail(m->ctx, LOOM_E_STATE, "loom_onnx_save %s: the model has no weights yet (compile or load it)",
                         path);
    saver s = {m->ctx, NULL, NULL, 0, 0, 0, 0};
    Onnx__ModelProto model = ONNX__MODEL_PROTO__INIT;
    loom_status st = build(&s, m, &model);
    uint8_t *bytes = NULL;
    size_t n = 0;
    if (st == LOOM_OK) {
        n = onnx__model_proto__get_packed_size(&model);
        bytes = loom_malloc(m->ctx, n ? n : 1);
        if (!bytes)
            st = loom_fail(m->ctx, LOOM_E_OOM, "loom_onnx_save %s: out of memory for %zu bytes", path, n);
    }
    if (st == LOOM_OK) {
        onnx__model_proto__pack(&model, bytes);
        st = loom_write_file_atomic(m->ctx, path, bytes, n);
    }
    loom_free(m->ctx, bytes, n ? n : 1);
    for (size_t i = 0; i < s.n; i++)
        loom_free(m->ctx, s.owned[i], s.sizes[i]);
    loom_free(m->ctx, s.owned, s.cap * sizeof *s.owned);
    loom_free(m->ctx, s.sizes, s.cap * sizeof *s.sizes);
    return st;
}
