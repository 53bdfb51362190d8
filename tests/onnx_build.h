/* Small ONNX models built in C through protobuf-c's generated structs, for
 * the importer's tests (no Python, no files from elsewhere). */
#ifndef LOOM_TEST_ONNX_BUILD_H
#define LOOM_TEST_ONNX_BUILD_H

#include "onnx.pb-c.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ob_model ob_model;

/* A model importing the default domain at opset (0: none imported). */
ob_model *ob_new(int64_t opset);
void ob_free(ob_model *m);
Onnx__ModelProto *ob_proto(ob_model *m);
Onnx__GraphProto *ob_graph(ob_model *m);

/* A tensor input / output; a dim < 0 is symbolic, named "N" for -1, "S"
 * for -2, "" (unknown) for -3. ndim < 0: no shape at all. */
void ob_input(ob_model *m, const char *name, int type, int ndim, const int64_t *shape);
void ob_output(ob_model *m, const char *name, int type, int ndim, const int64_t *shape);

/* A node; inputs and outputs comma-separated ("x,,w": the second input
 * left out); name NULL leaves the field out. */
Onnx__NodeProto *ob_node(ob_model *m, const char *op, const char *name, const char *ins, const char *outs);
void ob_attr_int(ob_model *m, Onnx__NodeProto *n, const char *name, int64_t v);
void ob_attr_float(ob_model *m, Onnx__NodeProto *n, const char *name, float v);
void ob_attr_ints(ob_model *m, Onnx__NodeProto *n, const char *name, int count, const int64_t *v);
void ob_attr_string(ob_model *m, Onnx__NodeProto *n, const char *name, const char *v);
void ob_attr_tensor(ob_model *m, Onnx__NodeProto *n, const char *name, Onnx__TensorProto *t);

/* Tensors (owned by m): values in raw_data, or in the typed field. */
Onnx__TensorProto *ob_tensor(ob_model *m, const char *name, int type, int ndim, const int64_t *shape,
                             const void *raw, size_t raw_bytes);
Onnx__TensorProto *ob_tensor_f32(ob_model *m, const char *name, int ndim, const int64_t *shape, const float *v,
                                 int typed);
Onnx__TensorProto *ob_tensor_i64(ob_model *m, const char *name, int ndim, const int64_t *shape, const int64_t *v,
                                 int typed);
/* Adds t to the graph's initializers. */
void ob_init(ob_model *m, Onnx__TensorProto *t);
/* An external-data tensor: location, offset and length entries. */
Onnx__TensorProto *ob_tensor_external(ob_model *m, const char *name, int type, int ndim, const int64_t *shape,
                                      const char *location, long offset, long length);

/* The serialized model (malloc'd) and its size. */
uint8_t *ob_pack(ob_model *m, size_t *n);
/* A serialized TensorProto (malloc'd). */
uint8_t *ob_pack_tensor(const Onnx__TensorProto *t, size_t *n);

#endif
