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

typedef enum layer_kind {
    LAYER_DENSE = 0,
    LAYER_DROPOUT = 1,
    /* convolutional networks (conv_layers.c) */
    LAYER_CONV2D,
    LAYER_MAX_POOL2D,
    LAYER_AVG_POOL2D,
    LAYER_GLOBAL_AVG_POOL2D,
    LAYER_BATCH_NORM,
    LAYER_FLATTEN,
    LAYER_ACTIVATION,
    LAYER_SPATIAL_DROPOUT,
    /* sequence models: every kind of seq_layers.c (layer.seq.kind) */
    LAYER_SEQ
} layer_kind;

typedef struct layer {
    layer_kind kind;
    int64_t units;             /* dense: units; conv2d: filters */
    loom_activation act;
    loom_init init;
    float rate;
    /* convolutional layers: the window, and batch norm's parameters */
    int kernel[2], stride[2], dilation[2];
    int same, groups, use_bias;
    float momentum, eps;
    nn_seq_layer seq;          /* LAYER_SEQ: the sequence layers of seq_layers.c */
    /* what the layer takes and gives per sample (set as it is added):
     * [features], a sequence [T, D], or [C, H, W] (images) */
    int in_ndim, out_ndim;
    int64_t in_shape[NN_SHAPE_MAX], out_shape[NN_SHAPE_MAX];
} layer;

/* A parameter of a layer: its state name, shape and how it starts.
 * PINIT_KERNEL: the layer's init (Glorot uniform or He normal) over
 * fan_in / fan_out; PINIT_NORMAL: N(0, 0.02^2) (embeddings). */
typedef enum param_init { PINIT_KERNEL, PINIT_ZEROS, PINIT_ONES, PINIT_RUNNING, PINIT_NORMAL } param_init;

typedef struct model_param {
    char name[128];
    int ndim;
    int64_t shape[4];
    int trainable;             /* 0: running statistics, updated by the forward pass */
    param_init init;
    int64_t fan_in, fan_out;   /* kernels' initialisation */
} model_param;

/* The int8 plan of a quantized model (quantize.c): which dense and conv2d
 * layers run as int8 ops, and how their inputs were calibrated. */
typedef struct nn_quant {
    loom_calib_method method;
    double percentile;
    unsigned char int8[LOOM_MAX_LAYERS];
    float in_scale[LOOM_MAX_LAYERS]; /* each int8 layer's input: r = (q - zero) scale */
    int in_zero[LOOM_MAX_LAYERS];
} nn_quant;

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
    int in_ndim;               /* 1: [features]; 3: images [C, H, W] */
    int64_t in_shape[3];
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
    uint32_t drop_salt;        /* added to dropout seeds: each replica draws its own masks */
    struct nn_replicas *rep;   /* data-parallel training (replicas.c); NULL: one device */
    nn_quant *quant;           /* NULL: a float model; else inference only */
    int probe;                 /* evaluation graphs also output each dense and
                                  conv2d layer's input as "probe<i>" (calibration) */
    struct loom_metrics *mon_metrics; /* evaluation's monitors */
    struct loom_trace *mon_trace;
    int64_t mon_trace_runs, mon_traced;
    /* pruning (prune.c): the schedule while armed; the training program
     * then ends in a mask update per kernel */
    int prune_on;
    loom_prune_schedule prune;
    /* distillation (distill.c): the teacher's architecture (uncompiled,
     * owned), its weights in st as "teacher/<name>" */
    loom_sequential *teacher;
    float temperature, alpha;
    /* while a teacher's forward pass is built into a student's graph: the
     * prefix of its scopes and parameters, and its parameters frozen */
    const char *name_prefix;
    int frozen;
};

/* What loom_model_build builds: evaluation; a whole training step; or one
 * half of a step split at the gradient boundary (replicas.c): GRADS is
 * forward, loss and backward with each trainable parameter's gradient an
 * output "grad:<name>" (running statistics update in its forward), UPDATE
 * the optimizer's updates from inputs "grad:<name>". */
enum { LOOM_MODEL_EVAL = 0, LOOM_MODEL_TRAIN = 1, LOOM_MODEL_GRADS = 2, LOOM_MODEL_UPDATE = 3 };
loom_status loom_model_build(loom_sequential *m, loom_graph *g, int mode, int64_t batch);

/* ---- replicas.c: data-parallel training ---- */

/* One data-parallel training step over the nb rows in m->xbuf / m->ybuf
 * (this process's share of a step of `global` rows over every process):
 * adds the summed loss and the correct predictions (m->pbuf filled). */
loom_status loom_replicas_step(loom_sequential *m, int64_t nb, int64_t global, double *loss_sum, int64_t *correct,
                               model_prog **ran);
/* The last step into a trace: every device's gradients run and the
 * updates (one step slice), and the host's reduce, allreduce and update
 * times as counters on the first device's track. */
loom_status loom_replicas_trace(loom_sequential *m, struct loom_trace *trace, int64_t step);
/* The processes of the run (1 and 0 without a collective). */
int loom_replicas_size(const loom_sequential *m);
int loom_replicas_rank(const loom_sequential *m);
/* Sums n doubles over the processes (no-op in one process). */
loom_status loom_replicas_sum(loom_sequential *m, double *v, int n);
/* Fit ends: the replicas' last check. */
loom_status loom_replicas_end(loom_sequential *m);
void loom_replicas_free(loom_sequential *m);
/* Destroys the compiled training programs (the next step builds them
 * again: pruning or a teacher was armed). */
void loom_model_drop_train_progs(loom_sequential *m);
/* Compiles the replicas' update halves again (the optimizer changed). */
loom_status loom_replicas_rebuild_updates(loom_sequential *m);

/* ---- prune.c ---- */

/* 1 if parameter p (of layer li) is a kernel pruning covers. */
int loom_model_prunable(const loom_sequential *m, const model_param *p, int li);
/* The mask's state name of a kernel. */
void loom_model_mask_name(const char *param, char *buf, size_t n);
/* Before each training step: recomputes the masks when the schedule says. */
loom_status loom_model_prune_step(loom_sequential *m);
/* Appends the mask updates of every prunable kernel (after loom_optimize). */
loom_status loom_model_build_masks(loom_sequential *m, loom_graph *g);

/* ---- distill.c ---- */

/* The distillation loss of the student's logits [N, C] against the
 * teacher's forward pass over x, built into g. */
loom_status loom_model_build_teacher(loom_sequential *m, loom_graph *g, loom_tensor x, int64_t batch,
                                     loom_tensor *teacher_logits);

/* The forward pass of m over x ([batch, inputs] f32) into g: the output
 * h (f32), the logits before a final softmax (LOOM_NONE when none), and
 * whether the output is that softmax. */
typedef struct model_forward {
    loom_tensor h, logits;
    int softmax_out;
} model_forward;
loom_status loom_model_forward(loom_sequential *m, loom_graph *g, int train, int64_t batch, loom_tensor x,
                               model_forward *out);

/* h through a layer's activation (LOOM_ACT_NONE: h itself). */
loom_tensor loom_model_activate(loom_graph *g, loom_tensor h, loom_activation a);
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
 * shapes[nlayers] (the model's input when it has no layers). */
void loom_model_shapes(const loom_sequential *m, nn_shape *shapes);
/* Layer i's scope, the prefix of its parameters and ops: "<prefix><k>",
 * the k-th layer of its kind: "dense1", "conv0", "bn2", "max_pool2d0",
 * "transformer_encoder1" (sequence layers count per sequence kind). */
void loom_model_scope(const loom_sequential *m, int i, char *buf, size_t n);
/* The predictions per sample: the outputs over the classes (the last
 * output dim): 1, or a sequence's length. */
int64_t loom_model_positions(const loom_sequential *m);
/* Checks n rows of raw inputs the model reads as token ids (an embedding
 * first): LOOM_E_RANGE naming the row, position and value. */
loom_status loom_model_check_inputs(const loom_sequential *m, const float *x, int64_t n);
/* The one enumeration of parameters (initialization, model files,
 * validation): layer i's count and its k-th; the model's count and its
 * k-th in layer order (0 when k is out of range; *layer_index: its layer
 * when not NULL). */
int loom_model_layer_nparams(const loom_sequential *m, int i);
void loom_model_layer_param(const loom_sequential *m, int i, int k, model_param *p);
int loom_model_param_count(const loom_sequential *m);
int loom_model_param(const loom_sequential *m, int k, model_param *p, int *layer_index);

/* ---- conv_layers.c: the layers of convolutional networks ---- */

/* The output shape of a convolutional layer l over its input (l->in_*),
 * into l->out_*; 0, or LOOM_E_SHAPE naming the layer (what) and the
 * shapes. */
loom_status loom_model_conv_shape(loom_ctx *ctx, layer *l, const char *what);
/* The prefix of a convolutional layer's scope: "conv", "bn", its type. */
const char *loom_model_conv_prefix(layer_kind k);
/* The JSON of a convolutional layer into o (cJSON *). */
void loom_model_describe_conv(const layer *l, void *o);
/* 1 if type names a convolutional layer; then its fields from o into l
 * (LOOM_E_FORMAT naming the field in *s). */
int loom_model_parse_conv(loom_ctx *ctx, const char *type, const void *o, const char *what, int index, layer *l,
                          loom_status *s);
/* The parameters of a convolutional layer (index: its number among the
 * layers of its kind). */
int loom_model_conv_params(const layer *l, int index, model_param out[3]);
/* Appends layer i (a convolutional layer) to the graph over h. */
loom_tensor loom_model_build_conv(loom_sequential *m, loom_graph *g, int i, int train, loom_tensor h);
/* Training augmentation of nb image rows in x (shift, flip). */
loom_status loom_model_augment(loom_sequential *m, const loom_fit_config *cfg, float *x, int64_t nb, int64_t step);

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

/* ---- quantize.c: int8 layers ---- */

/* 1 if layer i of m runs as int8 ops. */
int loom_model_qlayer(const loom_sequential *m, int i);
/* Layer i (int8 dense) over rows h [rows, K] (f32): the dequantized
 * output [rows, units], before any activation but relu, which is fused
 * (*fused = 1). */
loom_tensor loom_model_build_qdense(loom_sequential *m, loom_graph *g, int i, loom_tensor h, int *fused);
/* Layer i (int8 conv2d) over images h: its output, activated. */
loom_tensor loom_model_build_qconv(loom_sequential *m, loom_graph *g, int i, loom_tensor h);
/* Writes the int8 layers' tensors (zeros; scales 1) into the new state. */
loom_status loom_model_quant_init(loom_sequential *m);
/* 1 if name is a tensor of an int8 layer: its dtype and shape, and
 * whether it is derived (computed at load, not stored in files). */
int loom_model_quant_tensor(const loom_sequential *m, const char *name, loom_dtype *dt, int *ndim, int64_t *shape,
                            int *derived);
/* 1 if name is the f32 kernel of a layer that runs int8 (not in its state). */
int loom_model_quant_replaced(const loom_sequential *m, const char *name);
/* The derived tensors (the i32 bias with the zero point folded in, the
 * f32 multipliers) from the stored ones, into the state. */
loom_status loom_model_quant_derive(loom_sequential *m);
/* Checks the stored quantization values of a file before anything is
 * loaded: scales finite and > 0, zero points whole and in [-128, 127]. */
loom_status loom_model_quant_check(const loom_sequential *m, const char *path, const loom_tensor_file *f);
/* The plan as the loom.quant record (loom_strfree), NULL when out of memory. */
char *loom_model_quant_json(const loom_sequential *m);
/* Parses a loom.quant record into m->quant (m not compiled yet). */
loom_status loom_model_quant_parse(loom_sequential *m, const char *path, const char *json);

#endif
