/* The Sequential model's internals, shared by sequential.c (layers,
 * programs), fit.c (training and evaluation) and model_io.c (files). */
#ifndef LOOM_NN_MODEL_H
#define LOOM_NN_MODEL_H

#include "loom.h"

#define LOOM_MAX_LAYERS 64
#define LOOM_MAX_PROGS 8

typedef enum layer_kind { LAYER_DENSE = 0, LAYER_DROPOUT = 1 } layer_kind;

typedef struct layer {
    layer_kind kind;
    int64_t units;
    loom_activation act;
    loom_init init;
    float rate;
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
    char *describe;            /* JSON, malloc'd */
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
    size_t xbuf_bytes, ybuf_bytes, tbuf_bytes; /* pbuf: ybuf_bytes */
    struct loom_metrics *mon_metrics; /* evaluation's monitors */
    struct loom_trace *mon_trace;
    int64_t mon_trace_runs, mon_traced;
};

/* The program for (train, batch), compiled on first use. */
loom_status loom_model_prog(loom_sequential *m, int train, int64_t batch, model_prog **out);
/* Builds the JSON architecture from the layers (m->describe). */
loom_status loom_model_describe(loom_sequential *m);
/* Parses an architecture JSON into a new, uncompiled model. */
loom_status loom_model_from_json(loom_ctx *ctx, const char *json, loom_sequential **out);
int64_t loom_model_outputs(const loom_sequential *m);
/* Name of layer l's kernel / bias params. */
void loom_model_param_names(int l, char *kernel, char *bias, size_t n);

#endif
