/* loom plan: the memory planner's report for the MLP graph. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>

int cmd_plan(int argc, char **argv)
{
    int64_t batch = atoll(cli_opt(argc, argv, "--batch", "256"));
    const char *spec = cli_opt(argc, argv, "--device", "cpu");
    int json = cli_flag(argc, argv, "--json");
    int timeline = cli_flag(argc, argv, "--timeline");
    loom_ctx *ctx = cli_ctx();
    if (!ctx)
        return 1;
    int hidden[2] = {64, 64};
    loom_device *dev = NULL;
    loom_state *st = NULL;
    loom_graph *g = NULL;
    loom_program *p = NULL;
    loom_plan_report r;
    int rc = 1;
    if (loom_device_open(ctx, spec, &dev) || loom_state_create(dev, &st) || loom_graph_create(ctx, &g))
        goto fail;
    cli_mlp_forward(g, batch, hidden, 2);
    if (loom_compile(g, dev, st, NULL, &p) || loom_program_plan(p, &r))
        goto fail;
    double ratio = r.lower_bound ? (double)r.arena_bytes / (double)r.lower_bound : 1.0;
    if (json) {
        printf("{\"graph\":\"mlp 784-64-64-10 forward\",\"batch\":%lld,\"device\":\"%s\",\"arena_bytes\":%llu,"
               "\"lower_bound\":%llu,\"naive_bytes\":%llu,\"state_bytes\":%llu,\"steps\":%d,\"inplace\":%d,"
               "\"arena_over_lower_bound\":%.4f,\"live_bytes\":[",
               (long long)batch, loom_device_get(dev)->spec, (unsigned long long)r.arena_bytes,
               (unsigned long long)r.lower_bound, (unsigned long long)r.naive_bytes,
               (unsigned long long)r.state_bytes, r.steps, r.inplace, ratio);
        for (int i = 0; i < r.steps; i++)
            printf("%s%llu", i ? "," : "", (unsigned long long)r.live_bytes[i]);
        printf("]}\n");
    } else {
        printf("graph        MLP 784-64-64-10 forward, batch %lld, on %s\n", (long long)batch,
               loom_device_get(dev)->spec);
        printf("arena        %10llu bytes\n", (unsigned long long)r.arena_bytes);
        printf("lower bound  %10llu bytes  (arena / lower bound = %.3f)\n", (unsigned long long)r.lower_bound, ratio);
        printf("naive        %10llu bytes  (every tensor its own block)\n", (unsigned long long)r.naive_bytes);
        printf("state        %10llu bytes  (parameters, not in the arena)\n", (unsigned long long)r.state_bytes);
        printf("steps        %10d  (%d written in place)\n", r.steps, r.inplace);
        if (timeline)
            for (int i = 0; i < r.steps; i++)
                printf("  step %3d  live %10llu\n", i, (unsigned long long)r.live_bytes[i]);
    }
    rc = 0;
fail:
    if (rc)
        fprintf(stderr, "loom plan: %s\n", loom_last_error(ctx));
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
    return rc;
}
