/* loom: the command-line tool. */
#include "bench.h"
#include "cli.h"

#include <stdio.h>
#include <string.h>

typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} command;

static const command commands[] = {
    {"devices", cmd_devices, "list every device of every API [--json]"},
    {"plan", cmd_plan, "memory plan of the MLP graph [--batch N] [--device SPEC] [--json]"},
    {"forward", cmd_forward, "run the MLP forward pass [--batch N] [--device SPEC] [--runs N]"},
    {"train", cmd_train,
     "train the Fashion-MNIST MLP [--data DIR] [--hidden 64,64] [--epochs 5] [--batch 32] [--lr 0.001]\n"
     "             [--optimizer adam|adamw|sgd] [--device SPEC] [--seed N] [--save FILE] [--resume FILE]\n"
     "             [--checkpoint FILE --checkpoint-every N] [--validation-split F] [--dropout R]\n"
     "             [--early-stopping N] [--ema D] [--clip-norm C] [--limit N] [--test-limit N] [--json]\n"
     "             [--metrics FILE] [--metrics-every N] [--profile TRACE.json] [--profile-steps N] [--dash]"},
    {"bench", cmd_bench,
     "benchmark every device beside OpenBLAS / memcpy [--device SPEC|all]\n"
     "             [--suite gemm,bandwidth,dispatch,train,infer,startup] [--json FILE] [--compare BASELINE.json]\n"
     "             [--results FILE] [--quick] [--data DIR]\n"
     "             exit status: 2 a bad option or suite; 3 --compare found a regression beyond the noise"},
    {"eval", cmd_eval, "evaluate a saved model on the test set --model FILE [--data DIR] [--ema] [--json]\n"
     "             [--metrics FILE] [--profile TRACE.json]"},
    {"predict", cmd_predict, "classify one test image --model FILE --image N [--data DIR]"},
    {"tune", cmd_tune,
     "search the device's GEMM parameters and store the best [--device SPEC] [--size 1024]\n"
     "             [--candidates 24] [--reps 3] | --show | --apply FILE"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: loom <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
}

loom_ctx *cli_ctx(void)
{
    loom_ctx *ctx = NULL;
    loom_status s = loom_ctx_create(NULL, &ctx);
    if (s != LOOM_OK)
        fprintf(stderr, "loom: cannot create a context: %s\n", loom_status_str(s));
    return ctx;
}

const char *cli_opt(int argc, char **argv, const char *name, const char *def)
{
    size_t n = strlen(name);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], name) && i + 1 < argc)
            return argv[i + 1];
        if (!strncmp(argv[i], name, n) && argv[i][n] == '=')
            return argv[i] + n + 1;
    }
    return def;
}

int cli_flag(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], name))
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("loom %s\n", loom_version_string());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name))
            continue;
        if (argc > 2 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"))) {
            printf("usage: loom %s  %s\n", commands[i].name, commands[i].help);
            return 0;
        }
        return commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "loom: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return 2;
}
