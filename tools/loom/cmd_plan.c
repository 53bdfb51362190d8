/* loom plan: the memory planner's report for the MLP graph. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>

enum { O_BATCH = CLI_OPT_BASE, O_DEVICE, O_JSON, O_TIMELINE };

static const struct option opts[] = {
    {"batch", required_argument, 0, O_BATCH},
    {"device", required_argument, 0, O_DEVICE},
    {"json", no_argument, 0, O_JSON},
    {"timeline", no_argument, 0, O_TIMELINE},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

int cmd_plan(int argc, char **argv)
{
    int64_t batch = 256;
    const char *spec = "cpu";
    int json = 0, timeline = 0;
    cli_args a = cli_args_init("plan", argc, argv, opts);
    for (int c; (c = cli_next(&a)) != -1;) {
        switch (c) {
        case O_BATCH:
            if (cli_int(&a, 1, 1 << 24, &batch))
                return CLI_EXIT_USAGE;
            break;
        case O_DEVICE: spec = optarg; break;
        case O_JSON: json = 1; break;
        case O_TIMELINE: timeline = 1; break;
        default: return a.rc;
        }
    }
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
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "graph", "mlp 784-64-64-10 forward");
        cJSON_AddNumberToObject(o, "batch", (double)batch);
        cJSON_AddStringToObject(o, "device", loom_device_get(dev)->spec);
        cJSON_AddNumberToObject(o, "arena_bytes", (double)r.arena_bytes);
        cJSON_AddNumberToObject(o, "lower_bound", (double)r.lower_bound);
        cJSON_AddNumberToObject(o, "naive_bytes", (double)r.naive_bytes);
        cJSON_AddNumberToObject(o, "state_bytes", (double)r.state_bytes);
        cJSON_AddNumberToObject(o, "steps", r.steps);
        cJSON_AddNumberToObject(o, "inplace", r.inplace);
        cJSON_AddItemToObject(o, "arena_over_lower_bound", cli_json_number(ratio));
        cJSON *lb = cJSON_AddArrayToObject(o, "live_bytes");
        for (int i = 0; i < r.steps; i++)
            cJSON_AddItemToArray(lb, cJSON_CreateNumber((double)r.live_bytes[i]));
        if (cli_print_json(o))
            goto fail;
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
    return cli_finish(ctx, "plan", rc);
}
