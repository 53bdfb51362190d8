/* libFuzzer harness: the ONNX importer (loom_onnx_load_memory) on arbitrary
 * bytes, then what a caller does with a graph it accepted: its info, a
 * compile and one run on the CPU device with zero inputs; the same bytes
 * as a TensorProto (loom_onnx_tensor_read). Everything through
 * include/loom.h, as an application's code would.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude tests/fuzz/fuzz_onnx.c build/libloom.a ...
 *
 * Built with -DLOOM_FUZZ_REPLAY it is a plain program that replays the
 * files named on its command line (a corpus, or a crash to reproduce).
 * Seeds: any small .onnx file (tests/test_onnx.c builds them; ONNX's node
 * tests are models of one op each). */
#include "loom.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Refuses any one allocation over 256 MiB and more than 1 GiB in all: a
 * crafted size must end as LOOM_E_OOM, never as the fuzzer's own OOM. */
static size_t total;

static void *bounded(void *user, void *ptr, size_t osize, size_t nsize)
{
    (void)user;
    if (nsize == 0) {
        total -= ptr ? osize : 0;
        free(ptr);
        return NULL;
    }
    if (nsize > ((size_t)256 << 20) || total - (ptr ? osize : 0) + nsize > ((size_t)1 << 30))
        return NULL;
    void *p = realloc(ptr, nsize);
    if (p)
        total += nsize - (ptr ? osize : 0);
    return p;
}

static void silent(void *u, loom_log_level l, const char *m)
{
    (void)u, (void)l, (void)m;
}

static loom_ctx *ctx;
static loom_device *cpu;

static void setup(void)
{
    if (ctx)
        return;
    loom_ctx_opts o;
    loom_ctx_opts_default(&o);
    o.alloc = bounded;
    o.log = silent;
    o.backends = 1 << LOOM_BACKEND_CPU;
    if (loom_ctx_create(&o, &ctx) != LOOM_OK || loom_device_open(ctx, "cpu", &cpu) != LOOM_OK)
        abort(); /* the harness itself is broken */
}

static volatile uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    loom_onnx_tensor t;
    if (loom_onnx_tensor_read(ctx, data, size, NULL, &t) == LOOM_OK) {
        const unsigned char *p = t.data;
        for (size_t i = 0; i < t.bytes; i++)
            sink += p[i];
        loom_onnx_tensor_free(&t);
    }
    loom_onnx_opts opts;
    loom_onnx_opts_default(&opts);
    loom_graph *g = NULL;
    loom_onnx_info info;
    loom_state *st = NULL;
    if (loom_state_create(cpu, &st) != LOOM_OK)
        return 0;
    if (loom_onnx_load_memory(ctx, data, size, &g, st, &opts, &info) != LOOM_OK) {
        if (g || loom_state_count(st))
            abort(); /* a refused model left something behind */
        loom_state_destroy(st);
        return 0;
    }
    loom_program *p = NULL;
    if (loom_compile(g, cpu, st, NULL, &p) == LOOM_OK) {
        for (int i = 0; i < info.ninputs; i++) {
            const loom_onnx_value *in = &info.inputs[i];
            uint64_t n = loom_dtype_size(in->dtype);
            for (int k = 0; k < in->ndim; k++)
                n *= (uint64_t)in->shape[k];
            /* inputs of fuzzed shapes stay small, or are skipped */
            void *zero = in->used && n <= ((uint64_t)1 << 24) ? calloc(1, (size_t)n ? (size_t)n : 1) : NULL;
            if (zero)
                (void)loom_program_set_input(p, in->name, zero, (size_t)n);
            free(zero);
        }
        (void)loom_program_run(p);
        loom_program_destroy(p);
    }
    for (int i = 0; i < info.nnodes; i++)
        sink += strlen(info.nodes[i].op_type) + (uint64_t)info.nodes[i].count;
    loom_onnx_info_free(&info);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    return 0;
}

#ifdef LOOM_FUZZ_REPLAY
int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            perror(argv[i]);
            return 1;
        }
        static uint8_t buf[1 << 24];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        LLVMFuzzerTestOneInput(buf, n);
    }
    printf("replayed %d inputs\n", argc - 1);
    return 0;
}
#endif
