/* loom forward: the MLP forward pass with random weights on a device. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

enum { O_BATCH = CLI_OPT_BASE, O_RUNS, O_DEVICE, O_JSON };

static const struct option opts[] = {
    {"batch", required_argument, 0, O_BATCH},
    {"runs", required_argument, 0, O_RUNS},
    {"device", required_argument, 0, O_DEVICE},
    {"json", no_argument, 0, O_JSON},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

int cmd_forward(int argc, char **argv)
{
    int64_t batch = 256, runs = 20;
    const char *spec = "auto";
    int json = 0;
    cli_args a = cli_args_init("forward", argc, argv, opts);
    for (int c; (c = cli_next(&a)) != -1;) {
        int bad = 0;
        switch (c) {
        case O_BATCH: bad = cli_int(&a, 1, 1 << 20, &batch); break;
        case O_RUNS: bad = cli_int(&a, 1, 1000000, &runs); break;
        case O_DEVICE: spec = optarg; break;
        case O_JSON: json = 1; break;
        default: return a.rc;
        }
        if (bad)
            return bad;
    }
    loom_ctx *ctx = cli_ctx();
    if (!ctx)
        return 1;
    int hidden[2] = {64, 64};
    loom_device *dev = NULL;
    loom_state *st = NULL;
    loom_graph *g = NULL;
    loom_program *p = NULL;
    float *x = NULL, *probs = NULL;
    int rc = 1;
    if (loom_device_open(ctx, spec, &dev) || loom_state_create(dev, &st) || loom_graph_create(ctx, &g))
        goto fail;
    cli_mlp_forward(g, batch, hidden, 2);
    if (loom_compile(g, dev, st, NULL, &p) || cli_mlp_init(st, hidden, 2, 42))
        goto fail;
    x = malloc((size_t)batch * 784 * sizeof *x);
    probs = malloc((size_t)batch * 10 * sizeof *probs);
    if (!x || !probs) {
        fprintf(stderr, "loom forward: out of memory for batch %lld\n", (long long)batch);
        goto done;
    }
    uint32_t r = 1;
    for (int64_t i = 0; i < batch * 784; i++) {
        r = r * 1664525u + 1013904223u;
        x[i] = (float)(r >> 8) / 16777216.0f;
    }
    if (loom_program_set_input(p, "x", x, (size_t)batch * 784 * sizeof *x) || loom_program_run(p))
        goto fail;
    double t0 = now_s();
    for (int i = 0; i < runs; i++)
        if (loom_program_run(p))
            goto fail;
    double dt = (now_s() - t0) / runs;
    if (loom_program_read(p, "probs", probs, (size_t)batch * 10 * sizeof *probs))
        goto fail;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "device", loom_device_get(dev)->spec);
        cJSON_AddStringToObject(o, "device_name", loom_device_get(dev)->name);
        cJSON_AddStringToObject(o, "graph", "mlp 784-64-64-10 forward");
        cJSON_AddNumberToObject(o, "batch", (double)batch);
        cJSON_AddNumberToObject(o, "runs", (double)runs);
        cJSON_AddItemToObject(o, "ms_per_batch", cli_json_number(dt * 1e3));
        cJSON_AddItemToObject(o, "samples_per_s", cli_json_number((double)batch / dt));
        cJSON *p0 = cJSON_AddArrayToObject(o, "probs0");
        for (int j = 0; j < 10; j++)
            cJSON_AddItemToArray(p0, cli_json_number(probs[j]));
        if (cli_print_json(o))
            goto done;
    } else {
        printf("device       %s (%s)\n", loom_device_get(dev)->spec, loom_device_get(dev)->name);
        printf("graph        MLP 784-64-64-10 forward, batch %lld, random weights and inputs\n", (long long)batch);
        printf("probs[0]    ");
        for (int j = 0; j < 10; j++)
            printf(" %.4f", (double)probs[j]);
        printf("\ntime         %.3f ms per batch (mean of %lld runs), %.0f samples/s\n", dt * 1e3, (long long)runs,
               (double)batch / dt);
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "loom forward: %s\n", loom_last_error(ctx));
done:
    free(x);
    free(probs);
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
    return cli_finish(ctx, "forward", rc);
}
