/* The loom CLI: one file per subcommand. */
#ifndef LOOM_CLI_H
#define LOOM_CLI_H

#include "loom.h"

int cmd_devices(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_tune(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);

/* Creates a context; prints the error and returns NULL on failure. */
loom_ctx *cli_ctx(void);
/* Value of "--name V" or "--name=V" in argv, or def. */
const char *cli_opt(int argc, char **argv, const char *name, const char *def);
int cli_flag(int argc, char **argv, const char *name);

/* The seed's MLP forward pass: x [batch,784] -> 64 -> 64 -> 10 softmax,
 * params named dense{0,1,2}/{kernel,bias}. Output "probs". */
loom_tensor cli_mlp_forward(loom_graph *g, int64_t batch, const int *hidden, int nhidden);
/* Glorot-uniform kernels, zero biases, seeded. */
loom_status cli_mlp_init(loom_state *st, const int *hidden, int nhidden, uint32_t seed);

#endif
