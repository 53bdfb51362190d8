/* The loom CLI: one file per subcommand, and the helpers they share
 * (tools/loom/cli.c): option parsing with getopt_long, JSON output with
 * cJSON, the exit status. Exit codes: 0 done, 1 the run failed, 2 a bad
 * command line (the command's usage is printed), 4 the Vulkan validation
 * layer reported errors (LOOM_VK_VALIDATION=1). */
#ifndef LOOM_CLI_H
#define LOOM_CLI_H

#include "loom.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>

int cmd_devices(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_tune(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_export(int argc, char **argv);
/* loom bench --model (cmd_bench.c hands it over) */
int cmd_bench_model(int argc, char **argv);
int cmd_generate(int argc, char **argv);
/* loom optimize --quantize int8 (cmd_quantize.c) */
int cmd_optimize_quantize(int argc, char **argv);
int cmd_optimize(int argc, char **argv);
/* loom eval --compare A B ... (cmd_compare.c; cmd_eval hands it over) */
int cmd_eval_compare(int argc, char **argv);

#define CLI_EXIT_USAGE 2
#define CLI_EXIT_VALIDATION 4

/* Creates a context; prints the error and returns NULL on failure. */
loom_ctx *cli_ctx(void);
/* The exit status of a command: rc, or CLI_EXIT_VALIDATION (said on
 * stderr) when the context's validation layer reported errors. Destroys
 * ctx (NULL is fine), after everything else on it is closed, so errors
 * raised while devices shut down count too. */
int cli_finish(loom_ctx *ctx, const char *cmd, int rc);

/* The help text of a command (main.c's table), "" if unknown. */
const char *cli_help(const char *cmd);
/* "usage: loom CMD  HELP" on f. */
void cli_usage(FILE *f, const char *cmd);
/* "loom CMD: MESSAGE", then the command's usage, on stderr; returns
 * CLI_EXIT_USAGE for `return cli_usage_error(...)`. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/*
 * Option parsing, the same for every command (cmd_bench.c may use it too):
 *
 *   static const struct option opts[] = {{"epochs", required_argument, 0, O_EPOCHS}, ..., {0, 0, 0, 0}};
 *   cli_args a = cli_args_init("train", argc, argv, opts);
 *   for (int c; (c = cli_next(&a)) != -1;)
 *       switch (c) {
 *       case O_EPOCHS: if (cli_int(&a, 1, 1000, &epochs)) return CLI_EXIT_USAGE; break;
 *       default: return a.rc;          // CLI_STOP: --help (0) or an error (2)
 *       }
 *
 * --help and -h are understood by every command (they print the usage to
 * stdout and stop with 0); an unknown option, a missing value, a value
 * given to a flag or a stray argument print what is wrong and the usage to
 * stderr and stop with 2. Option values must be long options' val codes
 * >= 256 (CLI_OPT_BASE) so that they never collide with the stop code.
 */
#define CLI_STOP (-2)
#define CLI_OPT_BASE 256

typedef struct cli_args {
    const char *cmd;
    int argc;
    char **argv;
    const struct option *opts;
    const char *name;          /* "--epochs": the option being handled */
    int rc;                    /* after CLI_STOP: the command's exit status */
} cli_args;

cli_args cli_args_init(const char *cmd, int argc, char **argv, const struct option *opts);
/* The next option's val, -1 when all are read, CLI_STOP to return a.rc. */
int cli_next(cli_args *a);
/* The current option's value as an integer in [lo, hi] / a finite number
 * in [lo, hi]; 0, or CLI_EXIT_USAGE after saying what is wrong. */
int cli_int(cli_args *a, int64_t lo, int64_t hi, int64_t *out);
int cli_double(cli_args *a, double lo, double hi, double *out);
/* The value as one of the NULL-terminated words; its index, or -1 after
 * saying what is wrong. */
int cli_choice(cli_args *a, const char *const *words);
/* --lr-schedule's words, in loom_lr_schedule's order where they meet:
 * "constant" (LOOM_LR_CONSTANT), "cosine" (LOOM_LR_COSINE, index 1). */
extern const char *const cli_lr_schedules[];
/* The optimizer's schedule from --lr-schedule (0 constant, 1 cosine) and
 * --warmup: a cosine over the whole fit (total_steps 0: loom_sequential_fit
 * sets it to the fit's updates). */
void cli_set_lr_schedule(loom_optimizer *o, int cosine, int64_t warmup);
/* The option was given on the command line (by its long name). */
int cli_given(const cli_args *a, const char *name);

/* Value of "--name V" or "--name=V" in argv, or def (the older scanner,
 * kept for cmd_bench.c until it moves to cli_next). */
const char *cli_opt(int argc, char **argv, const char *name, const char *def);
int cli_flag(int argc, char **argv, const char *name);

/* Prints root as one line of JSON on stdout and deletes it; 1 if cJSON
 * ran out of memory (nothing printed). */
int cli_print_json(cJSON *root);
/* A number, or null when it is NaN or infinite. */
cJSON *cli_json_number(double v);

/* ---- data (cli_data.c) ---- */

/* The Fashion-MNIST set from dir, its first `limit` rows (0: all), not
 * scaled. */
loom_status cli_load_data(loom_ctx *ctx, const char *dir, int train, int64_t limit, loom_dataset **out);
/* Reads inputs for a model of `features` inputs from path: an image (PNG,
 * PGM/PPM, BMP, JPEG; grey levels 0..255, width x height = features) or
 * a raw little-endian float32 array of n x features values. *x is
 * malloc'd, *n rows. Returns 0, or 1 after printing what is wrong. */
int cli_read_inputs(const char *cmd, const char *path, int64_t features, float **x, int64_t *n);

/* The seed's MLP forward pass: x [batch,784] -> 64 -> 64 -> 10 softmax,
 * params named dense{0,1,2}/{kernel,bias}. Output "probs". */
loom_tensor cli_mlp_forward(loom_graph *g, int64_t batch, const int *hidden, int nhidden);
/* Glorot-uniform kernels, zero biases, seeded. */
loom_status cli_mlp_init(loom_state *st, const int *hidden, int nhidden, uint32_t seed);

#endif
