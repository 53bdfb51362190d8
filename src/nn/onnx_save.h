/* What the ONNX export's files share (onnx_save.c: the file, the dense and
 * convolutional layers; onnx_save_seq.c: the sequence layers): the
 * allocations of the file's structs, freed together, and the builders of
 * nodes, attributes and initializers. Internal to libloom. */
#ifndef LOOM_NN_ONNX_SAVE_H
#define LOOM_NN_ONNX_SAVE_H

#include "model.h"
#include "onnx_internal.h"

typedef struct saver {
    loom_ctx *ctx;
    void **owned;
    size_t *sizes;
    size_t n, cap;
    int failed;                /* an allocation failed: the file is not written */
    int gelu;                  /* an erf-form gelu needs its constants */
} saver;

void *oxs_own(saver *s, size_t n);
char *oxs_str(saver *s, const char *v);
void oxs_push(saver *s, size_t *n, void ***arr, void *p);
/* A node of one or two inputs (in1 NULL: one) and one output. */
Onnx__NodeProto *oxs_node(saver *s, Onnx__GraphProto *g, const char *op, const char *name, const char *in0,
                          const char *in1, const char *out);
void oxs_add_input(saver *s, Onnx__NodeProto *n, const char *in);
void oxs_attr_int(saver *s, Onnx__NodeProto *n, const char *name, int64_t v);
void oxs_attr_ints(saver *s, Onnx__NodeProto *n, const char *name, int count, const int64_t *v);
void oxs_attr_float(saver *s, Onnx__NodeProto *n, const char *name, float v);
/* A float tensor of dims[0..nd) (a dim <= 0: the symbolic "batch"). */
Onnx__ValueInfoProto *oxs_value(saver *s, const char *name, int nd, const int64_t *dims);
/* The state's f32 tensor `name` as an initializer of that name. */
loom_status oxs_weight(saver *s, loom_state *st, Onnx__GraphProto *g, const char *name, int ndim,
                       const int64_t *shape);
/* An f32 initializer of host data (copied). */
void oxs_f32_init(saver *s, Onnx__GraphProto *g, const char *name, int ndim, const int64_t *shape, const float *v);
/* An int64 initializer of ndim (0: a scalar, or 1) dims. */
void oxs_ints_init(saver *s, Onnx__GraphProto *g, const char *name, int ndim, int n, const int64_t *v);
void oxs_scalar_init(saver *s, Onnx__GraphProto *g, const char *name, float v);
/* y = act(in) named under layer scope l; the output's name in out. */
void oxs_activation(saver *s, Onnx__GraphProto *g, loom_activation act, const char *l, const char *in, char *out,
                    size_t n);

/* Layer i (LAYER_SEQ, scope sc) from the value `in` named cur to the
 * value it names in out; LOOM_E_UNSUPPORTED for a kind or option with no
 * ONNX form at opset 17. */
loom_status oxs_seq_layer(saver *s, loom_sequential *m, Onnx__GraphProto *g, int i, const char *sc,
                          const nn_shape *in, const char *cur, char *out, size_t n);

#endif
