/* The ONNX importer's internals (src/nn/onnx_*.c), built on include/loom.h
 * and the parser protoc-c generates from onnx.proto at build time.
 *
 * A value of the model (an ox_val) is either known at load (an ox_const:
 * initializers, Constant nodes, and whatever the folder computes from
 * them and from static shapes) or a loom tensor computed at run time, or
 * both once a constant is used as data. Builders (onnx_ops*.c) turn one
 * node into loom ops; the table (onnx_table.c) picks the builder by op
 * type and opset. */
#ifndef LOOM_ONNX_INTERNAL_H
#define LOOM_ONNX_INTERNAL_H

#include "nn_internal.h"
#include "name_map.h"
#include "onnx.pb-c.h"

#include <stdarg.h>

#define OX_MAX_RANK LOOM_ONNX_MAX_RANK
/* Values folded at load beyond this many elements are left to run time. */
#define OX_FOLD_MAX ((int64_t)1 << 22)

/* A value known at load: floats as f32, integers and bools as i64. */
typedef struct ox_const {
    int type;                  /* loom_onnx_type */
    int ndim;
    int64_t shape[OX_MAX_RANK];
    int64_t n;
    float *f;                  /* float types */
    int64_t *i;                /* integer and bool types */
} ox_const;

typedef struct ox_val {
    const char *name;          /* points into the parsed model */
    int type;                  /* loom_onnx_type, once known */
    int defined;               /* a graph input, an initializer or a node output */
    int producer;              /* node index, -1 for inputs and initializers */
    int is_input;
    const Onnx__TensorProto *init; /* an initializer, decoded on first use */
    ox_const *k;               /* known at load */
    loom_tensor t;             /* at run time (id 0: not yet) */
    int param;                 /* t is a loom_param whose data k holds */
    int probe_input;           /* node_only: made a graph input */
    int live;                  /* a computed graph output depends on it */
    struct ox_val *same;       /* Identity of an initializer: that value
                                  (one parameter, not a copy) */
    int ndim;                  /* shape of a run-time value without k */
    int64_t shape[OX_MAX_RANK];
    int wide;                  /* more dims than loom holds: t is the value
                                  with its size-1 dims left out; only
                                  reshapes and transposes take it */
} ox_val;

/* protobuf-c allocations through the context's allocator; failed says
 * whether one of them failed (protobuf-c answers NULL either way). */
typedef struct ox_pb_alloc {
    ProtobufCAllocator al;
    loom_ctx *ctx;
    int failed;
} ox_pb_alloc;

typedef struct ox ox;
typedef loom_status (*ox_build_fn)(ox *b);

/* One row of the op table: an ONNX op type over an opset range of the
 * model, and the builder that makes it out of loom ops. */
typedef struct ox_op {
    const char *op_type;
    int since, until;          /* the model's opset, inclusive */
    ox_build_fn build;
    ox_build_fn fold;          /* when every input is known at load (NULL:
                                  build runs, constants become tensors) */
    unsigned types;            /* element types of its data inputs it takes,
                                  bits 1 << loom_onnx_type (0: any loom holds) */
} ox_op;

extern const ox_op ox_ops[];
extern const int ox_nops;

/* The row for op_type at opset, or NULL; *known set when the op type has
 * rows for other opsets. */
const ox_op *ox_find_op(const char *op_type, int64_t opset, int *known);

struct ox {
    loom_ctx *ctx;
    loom_graph *g;
    loom_onnx_opts opts;
    const char *what;          /* the file, for messages */
    const char *base_dir;      /* external data (NULL: refused) */
    Onnx__ModelProto *model;
    ox_pb_alloc pb;
    const Onnx__GraphProto *graph;
    int64_t opset;
    ox_val *vals;
    int nvals, vals_cap;
    nn_name_map names;         /* value name -> index in vals */
    /* the node being built */
    const Onnx__NodeProto *node;
    int node_index;
    const ox_op *row;
    char node_desc[200];       /* node "name" (OpType) */
    unsigned char *attr_used;
    size_t attr_cap;
    uint64_t *fetched;         /* per node: the inputs its builder took as
                                  tensors (bit i), for the inputs' liveness */
    int nfetched;
};

/* ---- messages ---- */

/* Records "<file>: node "<name>" (<op>): <message>" and returns s. */
loom_status ox_fail(ox *b, loom_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* The graph's sticky error (if any) as the node's failure. */
loom_status ox_check_graph(ox *b);

/* ---- the node being built (onnx_load.c) ---- */

int ox_nin(const ox *b);
int ox_nout(const ox *b);
/* Input i, NULL when absent or the empty name (an optional input left out). */
ox_val *ox_in(ox *b, int i);
/* Input i that must be there (LOOM_E_FORMAT naming it when not). */
loom_status ox_need(ox *b, int i, ox_val **out);
/* Output i, NULL when absent or unnamed (an optional output not wanted). */
ox_val *ox_out(ox *b, int i);
/* Sets output i (if wanted) to a run-time tensor of ONNX type `type`. */
loom_status ox_set(ox *b, int i, loom_tensor t, int type);
/* Sets output i (if wanted) to a value known at load; takes k (freed on
 * failure too). */
loom_status ox_set_const(ox *b, int i, ox_const *k);

/* Attributes: each marks the attribute used; one the builder never asks
 * for makes the node LOOM_E_UNSUPPORTED naming it. A wrong type is
 * LOOM_E_FORMAT. *present (may be NULL) says whether the node has it. */
loom_status ox_attr_int(ox *b, const char *name, int64_t def, int64_t *out, int *present);
loom_status ox_attr_float(ox *b, const char *name, float def, float *out, int *present);
loom_status ox_attr_ints(ox *b, const char *name, const int64_t **out, size_t *n, int *present);
loom_status ox_attr_floats(ox *b, const char *name, const float **out, size_t *n, int *present);
/* A string attribute; def when absent. Points into the model. */
loom_status ox_attr_string(ox *b, const char *name, const char *def, const char **out);
loom_status ox_attr_tensor(ox *b, const char *name, const Onnx__TensorProto **out);
/* An attribute the builder accepts only at this value (or absent). */
loom_status ox_attr_only_int(ox *b, const char *name, int64_t allowed);
/* Marks an attribute as used whatever its value (documented as ignored). */
void ox_attr_ignore(ox *b, const char *name);

/* ---- values (onnx_load.c) ---- */

/* v's known value, decoding an initializer on first use; NULL when v is
 * computed at run time (then *s is LOOM_OK) or on failure (*s set). */
ox_const *ox_known(ox *b, ox_val *v, loom_status *s);
/* 1 when v is known at load (an initializer, a constant, a fold). */
int ox_is_known(const ox_val *v);
/* v as a loom tensor: constants become loom_param (initializers) or
 * loom_constant; dt LOOM_DTYPE_COUNT keeps the dtype loom holds v's type
 * in, else the value is cast (or made) in dt. */
loom_status ox_tensor(ox *b, ox_val *v, loom_dtype dt, loom_tensor *out);
/* A run-time v as its loom tensor even when it is wide (the size-1 dims
 * left out), for the ops that only move dims. */
loom_status ox_phys(ox *b, ox_val *v, loom_tensor *out);
/* Sets output i to a value of shape (nd, shape), nd up to OX_MAX_RANK,
 * whose data is t (of that shape, or of it without its size-1 dims). */
loom_status ox_set_wide(ox *b, int i, loom_tensor t, int nd, const int64_t *shape, int type);
/* The shape of v (known or at run time). */
int ox_rank(ox *b, const ox_val *v);
int64_t ox_dim(ox *b, const ox_val *v, int axis);
void ox_shape(ox *b, const ox_val *v, int *ndim, int64_t shape[OX_MAX_RANK]);
/* The dtype v's tensor has (or will have). */
loom_dtype ox_dtype(ox *b, const ox_val *v);

/* ---- constants (onnx_tensor.c) ---- */

ox_const *ox_const_new(loom_ctx *ctx, int type, int ndim, const int64_t *shape);
void ox_const_free(loom_ctx *ctx, ox_const *k);
ox_const *ox_const_copy(loom_ctx *ctx, const ox_const *k);
/* 1 for float types (floats kept as f32), 0 for integers and bool. */
int ox_type_is_float(int type);
int ox_type_is_int(int type);
/* Element i as a double / an int64 (floats truncated toward zero). */
double ox_const_get(const ox_const *k, int64_t i);
int64_t ox_const_geti(const ox_const *k, int64_t i);
/* Stores v into element i, converted to k's type (ints wrap as C casts do,
 * bools become 0 / 1). */
void ox_const_put(ox_const *k, int64_t i, double v);
void ox_const_puti(ox_const *k, int64_t i, int64_t v);

/* Decodes a TensorProto (raw_data or the typed fields, external data from
 * base_dir) into a new constant; what names it for messages. */
loom_status ox_decode_tensor(loom_ctx *ctx, const Onnx__TensorProto *t, const char *base_dir, const char *what,
                             ox_const **out);
/* A caller's host tensor (loom_onnx_opts.values) as a constant. */
loom_status ox_const_from_host(loom_ctx *ctx, const loom_onnx_tensor *t, const char *what, ox_const **out);
/* The loom data of k in dtype dt (a new host buffer, *bytes long), ints
 * range-checked into i32. */
loom_status ox_const_to_dtype(loom_ctx *ctx, const ox_const *k, loom_dtype dt, const char *what, void **data,
                              size_t *bytes);
/* The ONNX element type's bit in ox_op.types. */
#define OX_T(t) (1u << (t))
#define OX_FLOATS (OX_T(LOOM_ONNX_FLOAT) | OX_T(LOOM_ONNX_FLOAT16) | OX_T(LOOM_ONNX_BFLOAT16) | OX_T(LOOM_ONNX_DOUBLE))
#define OX_INTS                                                                                           \
    (OX_T(LOOM_ONNX_INT8) | OX_T(LOOM_ONNX_UINT8) | OX_T(LOOM_ONNX_INT16) | OX_T(LOOM_ONNX_UINT16) |       \
     OX_T(LOOM_ONNX_INT32) | OX_T(LOOM_ONNX_UINT32) | OX_T(LOOM_ONNX_INT64) | OX_T(LOOM_ONNX_UINT64))
#define OX_NUMS (OX_FLOATS | OX_INTS)
#define OX_ALL (OX_NUMS | OX_T(LOOM_ONNX_BOOL))

/* ---- wire-format check (onnx_wire.c) ---- */

/* Walks a serialized message against its descriptor before protobuf-c
 * unpacks it: a field that runs past its end, a bad wire type for a
 * known field or nesting deeper than protobuf-c should recurse gives
 * LOOM_E_FORMAT naming the field path and byte offset. */
loom_status ox_wire_check(loom_ctx *ctx, const char *what, const uint8_t *data, size_t n,
                          const ProtobufCMessageDescriptor *desc);
void ox_pb_allocator(loom_ctx *ctx, ox_pb_alloc *a);

/* ---- folding at load (onnx_fold.c) ---- */

/* What a folder returns to say "build it at run time instead". */
#define OX_DECLINE ((loom_status)-1)

typedef enum ox_fold_op {
    OXF_ADD, OXF_SUB, OXF_MUL, OXF_DIV, OXF_MOD, OXF_FMOD, OXF_POW, OXF_MAX, OXF_MIN,
    OXF_EQ, OXF_LT, OXF_LE, OXF_GT, OXF_GE, OXF_AND, OXF_OR, OXF_XOR
} ox_fold_op;

typedef enum ox_fold_op1 {
    OXF_NEG, OXF_ABS, OXF_NOT, OXF_SIGN, OXF_IDENT, OXF_FLOOR, OXF_CEIL, OXF_ROUND, OXF_SQRT, OXF_RECIP, OXF_RELU
} ox_fold_op1;

int ox_broadcast(int na, const int64_t *a, int nb, const int64_t *b, int *nout, int64_t *out);
/* Inputs 0 and 1 known: output 0 = op of them (out_type 0: input 0's
 * type; comparisons pass LOOM_ONNX_BOOL). OX_DECLINE when not folded. */
loom_status ox_fold_binary(ox *b, ox_fold_op op, int out_type);
loom_status ox_fold_unary(ox *b, ox_fold_op1 op);
loom_status ox_fold_cast_to(ox *b, int to);
loom_status ox_fold_where(ox *b);
loom_status ox_fold_variadic(ox *b, ox_fold_op op, int mean);

/* ---- helpers the builders share (onnx_ops.c) ---- */

/* Both inputs as tensors of one dtype: the float dtype of a run-time
 * input (f32 when neither is a float run-time value). */
loom_status ox_pair(ox *b, ox_val *x, ox_val *y, loom_tensor *tx, loom_tensor *ty, loom_dtype *dt);
/* A scalar constant of dtype dt. */
loom_tensor ox_scalar(ox *b, double v, loom_dtype dt);
/* A result computed in a float dtype, stored as ONNX type `type` wants
 * (cast to i32 for integer types). */
loom_status ox_set_num(ox *b, int i, loom_tensor t, int type);
/* A positive axis for rank r (negative counts from the end). */
loom_status ox_axis(ox *b, int64_t axis, int r, const char *attr, int *out);

#endif
