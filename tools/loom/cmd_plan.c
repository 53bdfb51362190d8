/* loom plan: the memory planner's report for the MLP graph: its forward
 * pass, or (--train) the seed's whole training step as loom train compiles
 * it (forward, loss, backward, Adam), with the launches one step makes. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>

enum { O_BATCH = CLI_OPT_BASE, O_DEVICE, O_JSON, O_TIMELINE, O_TRAIN };

static const struct option opts[] = {
    {"batch", required_argument, 0, O_BATCH},
    {"device", required_argument, 0, O_DEVICE},
    {"json", no_argument, 0, O_JSON},
    {"timeline", no_argument, 0, O_TIMELINE},
    {"train", no_argument, 0, O_TRAIN},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

int cmd_plan(int argc, char **argv)
{
    int64_t batch = 256;
    const char *spec = "cpu";
    int json = 0, timeline = 0, train = 0;
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
        case O_TRAIN: train = 1; break;
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
    loom_sequential *m = NULL;
    loom_plan_report r;
    int rc = 1;
    if (loom_device_open(ctx, spec, &dev))
        goto fail;
    if (train) {
        /* the seed's model as loom train builds it */
        loom_model_config mc = loom_model_config_default();
        mc.batch = batch;
        if (loom_sequential_create(ctx, 784, &m) ||
            loom_sequential_add_dense(m, hidden[0], LOOM_ACT_RELU, LOOM_INIT_GLOROT_UNIFORM) ||
            loom_sequential_add_dense(m, hidden[1], LOOM_ACT_RELU, LOOM_INIT_GLOROT_UNIFORM) ||
            loom_sequential_add_dense(m, 10, LOOM_ACT_SOFTMAX, LOOM_INIT_GLOROT_UNIFORM) ||
            loom_sequential_compile(m, dev, &mc) || loom_sequential_plan(m, 1, &r))
            goto fail;
    } else {
        if (loom_state_create(dev, &st) || loom_graph_create(ctx, &g))
            goto fail;
        cli_mlp_forward(g, batch, hidden, 2);
        if (loom_compile(g, dev, st, NULL, &p) || loom_program_plan(p, &r))
            goto fail;
    }
    const char *what = train ? "mlp 784-64-64-10 training step (Adam)" : "mlp 784-64-64-10 forward";
    double ratio = r.lower_bound ? (double)r.arena_bytes / (double)r.lower_bound : 1.0;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "graph", what);
        cJSON_AddNumberToObject(o, "batch", (double)batch);
        cJSON_AddStringToObject(o, "device", loom_device_get(dev)->spec);
        cJSON_AddNumberToObject(o, "arena_bytes", (double)r.arena_bytes);
        cJSON_AddNumberToObject(o, "lower_bound", (double)r.lower_bound);
        cJSON_AddNumberToObject(o, "naive_bytes", (double)r.naive_bytes);
        cJSON_AddNumberToObject(o, "state_bytes", (double)r.state_bytes);
        cJSON_AddNumberToObject(o, "steps", r.steps);
        cJSON_AddNumberToObject(o, "inplace", r.inplace);
        cJSON_AddNumberToObject(o, "dispatches", r.dispatches);
        cJSON_AddNumberToObject(o, "fused", r.fused);
        cJSON_AddItemToObject(o, "arena_over_lower_bound", cli_json_number(ratio));
        cJSON *lb = cJSON_AddArrayToObject(o, "live_bytes");
        for (int i = 0; i < r.steps; i++)
            cJSON_AddItemToArray(lb, cJSON_CreateNumber((double)r.live_bytes[i]));
        if (cli_print_json(o))
            goto fail;
    } else {
        printf("graph        %s, batch %lld, on %s\n", what, (long long)batch, loom_device_get(dev)->spec);
        printf("arena        %10llu bytes\n", (unsigned long long)r.arena_bytes);
        printf("lower bound  %10llu bytes  (arena / lower bound = %.3f)\n", (unsigned long long)r.lower_bound, ratio);
        printf("naive        %10llu bytes  (every tensor its own block)\n", (unsigned long long)r.naive_bytes);
        printf("state        %10llu bytes  (parameters, not in the arena)\n", (unsigned long long)r.state_bytes);
        printf("steps        %10d  (%d written in place)\n", r.steps, r.inplace);
        printf("dispatches   %10d  per run (%d fusions)\n", r.dispatches, r.fused);
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
    loom_sequential_destroy(m);
    loom_device_close(dev);
    return cli_finish(ctx, "plan", rc);
}
