/* The Sequential model's sequence layers (seq_layers.c): patches and
 * reshapes, token embeddings, learned positions, normalization, multi-head
 * attention, pre-norm Transformer encoder and decoder blocks, pooling over
 * the sequence, LSTM and GRU. Each kind is its JSON fields, the per-sample
 * shape it maps, its weights (names, shapes, initialization) and its graph;
 * sequential.c calls these at each of those points for layers of kind
 * LAYER_SEQ. Built on include/loom.h alone. */
#ifndef LOOM_NN_SEQ_LAYERS_H
#define LOOM_NN_SEQ_LAYERS_H

#include "loom.h"

#include <cjson/cJSON.h>
#include <stddef.h>

/* A sample's shape (the batch dim left out): rank 1 to 3. */
#define NN_SHAPE_MAX 3
typedef struct nn_shape {
    int ndim;
    int64_t d[NN_SHAPE_MAX];
} nn_shape;

typedef enum seq_kind {
    SEQ_RESHAPE = 0,       /* {"shape": [..]} */
    SEQ_PATCHES,           /* {"size", "rows", "cols"}: an image's size x size patches, row-major */
    SEQ_EMBEDDING,         /* {"vocab", "dim", "tokens"}: token ids (the inputs' values) to rows */
    SEQ_POSITION,          /* a learned embedding per position, added */
    SEQ_LAYER_NORM,        /* {"eps"} */
    SEQ_RMS_NORM,          /* {"eps"} */
    SEQ_ATTENTION,         /* {"heads", "kv_heads", "causal", "rope"}: multi-head self-attention */
    SEQ_ENCODER,           /* {"heads", "kv_heads", "ffn", "activation", "norm", "rope", "dropout"} */
    SEQ_DECODER,           /* the same with causal self-attention (decoder-only blocks) */
    SEQ_POOL,              /* {"mode": "mean" | "first" | "last"}: [T, D] -> [D] */
    SEQ_LSTM,              /* {"units", "return_sequences"} */
    SEQ_GRU,               /* {"units", "return_sequences"} */
    SEQ_COUNT
} seq_kind;

typedef enum seq_act { SEQ_ACT_GELU = 0, SEQ_ACT_RELU = 1, SEQ_ACT_SWIGLU = 2 } seq_act;
typedef enum seq_pool { SEQ_POOL_MEAN = 0, SEQ_POOL_FIRST = 1, SEQ_POOL_LAST = 2 } seq_pool;

typedef struct nn_seq_layer {
    seq_kind kind;
    nn_shape shape;            /* RESHAPE */
    int64_t size, rows, cols;  /* PATCHES */
    int64_t vocab, dim;        /* EMBEDDING */
    int ntokens;               /* EMBEDDING: the byte each id stands for (text), 0 if none */
    unsigned char tokens[256];
    int64_t heads, kv_heads, ffn; /* ATTENTION, ENCODER, DECODER */
    int causal, rope;
    seq_act act;
    int rms;                   /* blocks: RMS norm instead of layer norm */
    float dropout;
    float eps;                 /* norms */
    seq_pool pool;
    int64_t units;             /* LSTM, GRU */
    int return_sequences;
} nn_seq_layer;

/* The kind of a JSON "type", or -1 if it is none of these. */
int loom_seq_kind(const char *type);
const char *loom_seq_type(seq_kind k);
/* Reads layer li's fields (o is its JSON object): unknown fields and
 * values out of range are LOOM_E_FORMAT naming the file (what), the layer
 * and the field. */
loom_status loom_seq_parse(loom_ctx *ctx, const cJSON *o, int li, const char *what, nn_seq_layer *out);
/* Adds the layer's fields to its JSON object. */
void loom_seq_describe(const nn_seq_layer *l, cJSON *o);
/* The sample shape out of the layer, or LOOM_E_SHAPE naming layer li and
 * why it cannot take `in`. */
loom_status loom_seq_shape(loom_ctx *ctx, const nn_seq_layer *l, int li, const nn_shape *in, nn_shape *out);

typedef enum nn_init_kind {
    NN_INIT_GLOROT = 0,        /* uniform, limit sqrt(6 / (fan_in + fan_out)) */
    NN_INIT_NORMAL,            /* N(0, 0.02^2) (embeddings) */
    NN_INIT_ZERO,
    NN_INIT_ONE
} nn_init_kind;

/* The layer's weights: how many, and weight k's name (under the layer's
 * scope, e.g. "encoder1"), shape and initialization. */
int loom_seq_nparams(const nn_seq_layer *l);
void loom_seq_param(const nn_seq_layer *l, const char *scope, const nn_shape *in, int k, char *name, size_t n,
                    int *ndim, int64_t shape[LOOM_MAX_DIMS], nn_init_kind *init);
/* The layer's graph over h [batch, in...] (dtype dt: the weights are cast
 * to it); seed salts its dropout. LOOM_NONE with the graph's error on
 * failure. */
loom_tensor loom_seq_build(loom_graph *g, const nn_seq_layer *l, const char *scope, const nn_shape *in, loom_tensor h,
                           int64_t batch, int train, loom_dtype dt, uint32_t seed);
/* Checks a batch of raw inputs (n rows of features values) that an
 * embedding layer reads as token ids: integers in [0, vocab). LOOM_E_RANGE
 * naming the row, the position and the value. */
loom_status loom_seq_check_tokens(loom_ctx *ctx, const nn_seq_layer *l, const char *scope, const float *x, int64_t n,
                                  int64_t features);

#endif
