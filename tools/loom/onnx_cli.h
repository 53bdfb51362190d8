/* What `loom run`, `loom info` and `loom bench --model` share: an ONNX
 * model loaded and compiled on one device with its inputs fed. */
#ifndef LOOM_CLI_ONNX_H
#define LOOM_CLI_ONNX_H

#include "cli.h"
#include "npy.h"

#define CLI_MAX_INPUTS 32
#define CLI_MAX_DIMS 16

/* The model's options as the command line gives them. */
typedef struct cli_model_opts {
    const char *path;
    int64_t batch;             /* 0: the loader's default (1) */
    loom_onnx_dim dims[CLI_MAX_DIMS];
    char dim_names[CLI_MAX_DIMS][64];
    int ndims;
    const char *input_names[CLI_MAX_INPUTS];
    npy_array inputs[CLI_MAX_INPUTS]; /* read from --input files */
    int ninputs;
    int random;                /* inputs not given: seeded random values */
    int profile;
} cli_model_opts;

/* "name=FILE" (.npy, or a serialized TensorProto .pb): read into o;
 * "name=V" for --dim. 0, or CLI_EXIT_USAGE after saying what is wrong. */
int cli_model_input(const char *cmd, cli_model_opts *o, const char *arg);
int cli_model_dim(const char *cmd, cli_model_opts *o, const char *arg);
void cli_model_opts_free(cli_model_opts *o);

typedef struct cli_model {
    loom_device *dev;
    loom_state *st;
    loom_graph *g;
    loom_program *p;
    loom_onnx_info info;
    double load_s, compile_s;
} cli_model;

/* Loads (input shapes from the given arrays), compiles on dev and feeds
 * every input the model uses. 0, or 1 after printing what went wrong. */
int cli_model_open(const char *cmd, loom_ctx *ctx, loom_device *dev, cli_model_opts *o, cli_model *m);
void cli_model_close(cli_model *m);

/* The model file as the first argument (loom run MODEL.onnx ...): 0, -1
 * after --help was answered, or CLI_EXIT_USAGE. */
int cli_model_args(const char *cmd, int argc, char **argv, const char **model);

/* The ONNX type's name as NumPy spells it ("float32", "int64"). */
const char *cli_numpy_name(int type);

#endif
