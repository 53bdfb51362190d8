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
    {"plan", cmd_plan, "memory plan of the MLP graph (--train: the training step, with its dispatches)\n"
     "             [--batch N] [--device SPEC] [--train] [--json] [--timeline]\n"
     "             | --graph attention [--seq 2048] [--heads 4] [--head-size 64] [--batch 1] [--forward]:\n"
     "             fused beside unfused attention (forward + backward unless --forward)"},
    {"forward", cmd_forward, "run the MLP forward pass [--batch N] [--device SPEC] [--runs N] [--json]"},
    {"train", cmd_train,
     "train the Fashion-MNIST MLP, or any model [--model FILE.json] [--data DIR] [--hidden 64,64]\n"
     "             [--epochs 5] [--batch 32] [--lr 0.001] [--lr-schedule constant|cosine [--warmup STEPS]]\n"
     "             [--augment-shift N] [--augment-flip]\n"
     "             [--optimizer adam|adamw|sgd] [--momentum M] [--device SPEC] [--seed N] [--scaling unit|standard]\n"
     "             [--precision f32|f16|bf16]\n"
     "             [--save FILE] [--resume FILE] [--checkpoint FILE --checkpoint-every N] [--validation-split F]\n"
     "             [--dropout R] [--early-stopping N] [--ema D] [--clip-norm C] [--limit N] [--test-limit N]\n"
     "             [--json] [--metrics FILE] [--metrics-every N] [--profile TRACE.json] [--profile-steps N] [--dash]\n"
     "             data parallel: [--device SPEC,SPEC,...] [--distributed mpi (under mpirun)] [--mpi-timeout 30]\n"
     "             [--check-every 100] [--replica-update auto|each|broadcast]"},
    {"bench", cmd_bench,
     "benchmark every device beside OpenBLAS / memcpy [--device SPEC|all]\n"
     "             [--suite gemm,bandwidth,dispatch,train,infer,startup,conv,attention] [--json FILE] [--compare BASELINE.json]\n"
     "             [--results FILE] [--quick] [--data DIR]\n"
     "             | --model MODEL.onnx [--runs 20] [--warmup 3] [--batch N] [--dim NAME=N] [--input NAME=FILE]\n"
     "               [--json FILE]: an ONNX model timed on each device\n"
     "             exit status: 2 a bad option or suite; 3 --compare found a regression beyond the noise"},
    {"eval", cmd_eval, "evaluate a saved model on the test set --model FILE [--data DIR] [--device SPEC] [--ema]\n"
     "             [--limit N] [--json] [--metrics FILE] [--profile TRACE.json]\n"
     "             | --compare A B ... [--device SPEC[,SPEC...]|all] [--limit N] [--runs 20] [--json]: test accuracy, file\n"
     "               size and latency at batch 1 and 256 of each model on each device, one table"},
    {"optimize", cmd_optimize,
     "prune, distill or halve a saved model, then save it --model FILE --save OUT\n"
     "             (--prune S [--structured [--norm l1|l2]] [--pattern 2:4] [--schedule poly|oneshot]\n"
     "               [--scope layer|global] [--frequency 100] [--end-fraction 0.7]\n"
     "             | --distill --student SPEC.json [--temperature 4] [--alpha 0.9]\n"
     "             | --half f16|bf16\n"
     "             | --quantize int8 [--calibrate minmax|percentile|kl] [--calib-samples 1000] [--max-drop 0.5])\n"
     "             [--epochs N (fine-tuning; prune 2, distill 5)] [--lr LR] [--lr-schedule constant|cosine]\n"
     "             [--augment-shift N] [--augment-flip] [--seed N] [--device SPEC] [--data DIR]\n"
     "             [--limit N] [--test-limit N] [--json]"},
    {"predict", cmd_predict,
     "classify one test image or an image file --model FILE [--image N | --input FILE [--no-preprocess]]\n"
     "             [--data DIR] [--device SPEC] [--json]   (FILE: PNG/PGM/BMP/JPEG, or raw float32 inputs)"},
    {"run", cmd_run,
     "run an ONNX model once, outputs as .npy: MODEL.onnx [--input NAME=FILE.npy|.pb ...] [--random]\n"
     "             [--device SPEC] [--output DIR] [--profile TRACE.json] [--batch N] [--dim NAME=N] [--json]"},
    {"info", cmd_info,
     "an ONNX model's inputs, outputs, ops and the devices that run each: MODEL.onnx [--device SPEC|all]\n"
     "             [--batch N] [--dim NAME=N] [--nodes] [--no-probe] [--json]"},
    {"export", cmd_export,
     "a saved model as ONNX: --model FILE --output OUT.onnx [--sample N: OUT.x.npy and the model's OUT.y.npy]\n"
     "             [--device SPEC]"},
    {"generate", cmd_generate,
     "sample text from a character-level language model --model FILE [--prompt TEXT] [--length 200]\n"
     "             [--temperature 1.0] [--top-k K] [--seed N] [--device SPEC] [--json]   (examples/char_lm.c)"},
    {"tune", cmd_tune,
     "search the device's GEMM parameters and store the best [--device SPEC] [--size 1024]\n"
     "             [--candidates 24] [--reps 3] | --show | --apply FILE"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: loom <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nexit status: 0 done, 1 the run failed, 2 a bad command line, 4 Vulkan validation errors\n");
}

const char *cli_help(const char *cmd)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(cmd, commands[i].name))
            return commands[i].help;
    return "";
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
