/* The Sequential model's internals, shared by sequential.c (layers,
 * programs), fit.c (training and evaluation), model_config.c (the
 * configuration and preprocessing records) and model_io.c (files). */
#ifndef LOOM_NN_MODEL_H
#define LOOM_NN_MODEL_H

#include "loom.h"
#include "seq_layers.h"

#include <stddef.h>

#define LOOM_MAX_LAYERS 64
#define LOOM_MAX_PROGS 8
/* The largest batch a configuration may ask for: labels and row counts
 * stay in 32 bits, and a file cannot make the batch buffers overflow. */
#define LOOM_MAX_BATCH ((int64_t)INT32_MAX)
/* The widest layer (or input) an architecture may declare. */
#define LOOM_MAX_UNITS ((int64_t)1 << 30)

typedef enum layer_kind { LAYER_DENSE = 0, LAYER_DROPOUT = 1, LAYER_SEQ = 2 } layer_kind;

typedef struct layer {
    layer_kind kind;
    int64_t units;
    loom_activation act;
    loom_init init;
    float rate;
    nn_seq_layer seq;          /* LAYER_SEQ: the sequence layers of seq_layers.c */
} layer;

/* A compiled program for one (purpose, batch size). */
typedef struct model_prog {
    int train;                 /* 1: forward + loss + backward + updates */
    int64_t batch;
    loom_graph *g;
    loom_program *p;
} model_prog;

struct loom_sequential {
    loom_ctx *ctx;
    int64_t in_features;
    layer layers[LOOM_MAX_LAYERS];
    int nlayers;
    char *describe;            /* JSON (loom_strdup) */
    /* the inputs' preprocessing, recorded in model files */
    int pre_set;
    loom_scaling pre_how;
    float pre_stats[2];
    /* after compile */
    loom_device *dev;
    loom_state *st;
    loom_model_config cfg;
    int compiled;
    model_prog progs[LOOM_MAX_PROGS];
    int nprogs;
    /* progress, saved in checkpoints */
    int64_t epoch;             /* epochs completed */
    int64_t epoch_step;        /* batches done in the current epoch */
    float *xbuf;               /* batch staging on the host */
    int32_t *ybuf, *pbuf;
    float *tbuf;               /* one-hot / regression targets */
    size_t xbuf_bytes, ybuf_bytes, tbuf_bytes;
    struct loom_metrics *mon_metrics; /* evaluation's monitors */
    struct loom_trace *mon_trace;
    int64_t mon_trace_runs, mon_traced;
};

/* The program for (train, batch), compiled on first use. */
loom_status loom_model_prog(loom_sequential *m, int train, int64_t batch, model_prog **out);
/* Builds the JSON architecture from the layers (m->describe). */
loom_status loom_model_describe(loom_sequential *m);
/* Parses an architecture JSON into a new, uncompiled model; what names the
 * file for messages (LOOM_E_FORMAT naming the bad field). */
loom_status loom_model_from_json(loom_ctx *ctx, const char *json, const char *what, loom_sequential **out);
int64_t loom_model_outputs(const loom_sequential *m);
/* Name of layer l's kernel / bias params. */
void loom_model_param_names(int l, char *kernel, char *bias, size_t n);
/* The sample shape into each layer, shapes[i], and out of the last,
 * shapes[nlayers] (LOOM_E_SHAPE naming the layer that cannot take its). */
loom_status loom_model_shapes(const loom_sequential *m, nn_shape *shapes);
/* Layer i's scope, the prefix of its weights: "dense<k>" (the k-th dense
 * layer), "<type><k>" for the sequence layers ("transformer_encoder1"). */
void loom_model_scope(const loom_sequential *m, int i, char *buf, size_t n);
/* The predictions per sample: the outputs over the classes (the last
 * output dim): 1, or a sequence's length. */
int64_t loom_model_positions(const loom_sequential *m);
/* Every weight of the model in order: the count, and weight k's name,
 * shape (up to 2 dims) and initialization. */
int loom_model_param_count(const loom_sequential *m);
/* Checks n rows of raw inputs the model reads as token ids (an embedding
 * first): LOOM_E_RANGE naming the row, position and value. */
loom_status loom_model_check_inputs(const loom_sequential *m, const float *x, int64_t n);
loom_status loom_model_param_info(const loom_sequential *m, int k, char *name, size_t n, int *ndim, int64_t shape[4]);

/* ---- model_config.c ---- */

/* NULL when every field of c is in range, else a description of the first
 * one that is not ("optimizer.kind 7 is not 0 (sgd), 1 (adam) or 2
 * (adamw)") in buf. */
const char *loom_model_config_problem(const loom_model_config *c, char *buf, size_t n);
/* The configuration as JSON (loom_strdup'd: free with loom_strfree);
 * NULL when out of memory. */
char *loom_model_config_json(loom_ctx *ctx, const loom_model_config *c);
/* Parses and checks a file's loom.config: JSON, every field known, a
 * number, in range; LOOM_E_FORMAT naming the file and the field. Fields
 * the file leaves out keep their defaults. */
loom_status loom_model_config_parse(loom_ctx *ctx, const char *path, const char *json, loom_model_config *out);
/* The preprocessing record (loom.preprocess) of m; NULL when none is set
 * or out of memory (loom_strfree). */
char *loom_model_preprocess_json(const loom_sequential *m);
/* Parses a loom.preprocess record into how / stats (LOOM_E_FORMAT naming
 * the field). */
loom_status loom_model_preprocess_parse(loom_ctx *ctx, const char *path, const char *json, loom_scaling *how,
                                        float stats[2]);
/* Checks that a data set was scaled as the model's inputs must be (when
 * the model records a preprocessing): LOOM_E_INVALID naming both. */
loom_status loom_model_check_scaling(loom_sequential *m, const loom_dataset *ds, const char *what);

#endif
