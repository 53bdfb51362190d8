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

int cmd_forward(int argc, char **argv)
{
    int64_t batch = atoll(cli_opt(argc, argv, "--batch", "256"));
    int runs = atoi(cli_opt(argc, argv, "--runs", "20"));
    const char *spec = cli_opt(argc, argv, "--device", "auto");
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
    if (batch <= 0 || runs <= 0) {
        fprintf(stderr, "loom forward: --batch and --runs must be positive\n");
        goto done;
    }
    if (loom_device_open(ctx, spec, &dev) || loom_state_create(dev, &st) || loom_graph_create(ctx, &g))
        goto fail;
    cli_mlp_forward(g, batch, hidden, 2);
    if (loom_compile(g, dev, st, NULL, &p) || cli_mlp_init(st, hidden, 2, 42))
        goto fail;
    x = malloc((size_t)batch * 784 * sizeof *x);
    probs = malloc((size_t)batch * 10 * sizeof *probs);
    if (!x || !probs)
        goto fail;
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
    printf("device       %s (%s)\n", loom_device_get(dev)->spec, loom_device_get(dev)->name);
    printf("graph        MLP 784-64-64-10 forward, batch %lld, random weights and inputs\n", (long long)batch);
    printf("probs[0]    ");
    for (int j = 0; j < 10; j++)
        printf(" %.4f", (double)probs[j]);
    printf("\ntime         %.3f ms per batch (mean of %d runs), %.0f samples/s\n", dt * 1e3, runs,
           (double)batch / dt);
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
    loom_ctx_destroy(ctx);
    return rc;
}
