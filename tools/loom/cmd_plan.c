/* loom plan: the memory planner's report for the MLP graph: its forward
 * pass, or (--train) the seed's whole training step as loom train compiles
 * it (forward, loss, backward, Adam), with the launches one step makes; or
 * for an attention graph, fused beside unfused. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { O_BATCH = CLI_OPT_BASE, O_DEVICE, O_JSON, O_TIMELINE, O_TRAIN, O_GRAPH, O_SEQ, O_HEADS, O_HEAD_SIZE, O_FORWARD };

static const struct option opts[] = {
    {"batch", required_argument, 0, O_BATCH},
    {"device", required_argument, 0, O_DEVICE},
    {"json", no_argument, 0, O_JSON},
    {"timeline", no_argument, 0, O_TIMELINE},
    {"train", no_argument, 0, O_TRAIN},
    {"graph", required_argument, 0, O_GRAPH},
    {"seq", required_argument, 0, O_SEQ},
    {"heads", required_argument, 0, O_HEADS},
    {"head-size", required_argument, 0, O_HEAD_SIZE},
    {"forward", no_argument, 0, O_FORWARD},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

/* The plan of attention over [batch, heads, seq, head size] (fused or the
 * unfused composition), with the backward pass unless forward_only. */
static loom_status plan_attention(loom_ctx *ctx, loom_device *dev, int fused, int64_t b, int64_t h, int64_t n,
                                  int64_t d, int forward_only, loom_plan_report *r, uint64_t *arena)
{
    loom_graph *g = NULL;
    loom_state *st = NULL;
    loom_program *p = NULL;
    int64_t s[4] = {b, h, n, d};
    loom_status e = loom_graph_create(ctx, &g);
    if (e == LOOM_OK)
        e = loom_state_create(dev, &st);
    if (e == LOOM_OK) {
        loom_tensor q = loom_input(g, "q", LOOM_F32, 4, s), k = loom_input(g, "k", LOOM_F32, 4, s),
                    v = loom_input(g, "v", LOOM_F32, 4, s);
        loom_tensor o = fused ? loom_attention(g, q, k, v, LOOM_NONE, NULL)
                              : loom_attention_reference(g, q, k, v, LOOM_NONE, NULL);
        loom_output(g, o, "o");
        if (!forward_only) {
            loom_tensor wrt[3] = {q, k, v};
            e = loom_backward(g, loom_sum_all(g, loom_mul(g, o, loom_input(g, "w", LOOM_F32, 4, s))), wrt, 3);
            for (int i = 0; i < 3 && e == LOOM_OK; i++)
                e = loom_output(g, loom_grad(g, wrt[i]), (const char *const[]){"dq", "dk", "dv"}[i]);
        }
    }
    if (e == LOOM_OK)
        e = loom_compile(g, dev, st, NULL, &p);
    if (e == LOOM_OK)
        e = loom_program_plan(p, r);
    if (e == LOOM_OK)
        *arena = r->arena_bytes;
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    return e;
}

static int cmd_plan_attention(const char *spec, int64_t b, int64_t h, int64_t n, int64_t d, int forward_only, int json)
{
    loom_ctx *ctx = cli_ctx();
    if (!ctx)
        return 1;
    loom_device *dev = NULL;
    loom_plan_report rf, ru;
    uint64_t af = 0, au = 0;
    int rc = 1;
    if (loom_device_open(ctx, spec, &dev) || plan_attention(ctx, dev, 1, b, h, n, d, forward_only, &rf, &af) ||
        plan_attention(ctx, dev, 0, b, h, n, d, forward_only, &ru, &au)) {
        fprintf(stderr, "loom plan: %s\n", loom_last_error(ctx));
        goto out;
    }
    uint64_t scores = (uint64_t)(b * h * n) * (uint64_t)n * 4;
    int64_t saved = (int64_t)au - (int64_t)af;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "graph", forward_only ? "attention forward" : "attention forward + backward");
        cJSON_AddNumberToObject(o, "batch", (double)b);
        cJSON_AddNumberToObject(o, "heads", (double)h);
        cJSON_AddNumberToObject(o, "seq", (double)n);
        cJSON_AddNumberToObject(o, "head_size", (double)d);
        cJSON_AddStringToObject(o, "device", loom_device_get(dev)->spec);
        cJSON_AddNumberToObject(o, "fused_arena_bytes", (double)af);
        cJSON_AddNumberToObject(o, "unfused_arena_bytes", (double)au);
        cJSON_AddNumberToObject(o, "fused_lower_bound", (double)rf.lower_bound);
        cJSON_AddNumberToObject(o, "unfused_lower_bound", (double)ru.lower_bound);
        cJSON_AddNumberToObject(o, "score_matrix_bytes", (double)scores);
        cJSON_AddNumberToObject(o, "saved_bytes", (double)saved);
        cJSON_AddItemToObject(o, "saved_over_score_matrix", cli_json_number((double)saved / (double)scores));
        if (cli_print_json(o))
            goto out;
    } else {
        printf("graph          attention %s, [%lld, %lld, %lld, %lld] f32, on %s\n",
               forward_only ? "forward" : "forward + backward", (long long)b, (long long)h, (long long)n, (long long)d,
               loom_device_get(dev)->spec);
        printf("fused arena    %12llu bytes  (lower bound %llu, %d dispatches)\n", (unsigned long long)af,
               (unsigned long long)rf.lower_bound, rf.dispatches);
        printf("unfused arena  %12llu bytes  (lower bound %llu, %d dispatches)\n", (unsigned long long)au,
               (unsigned long long)ru.lower_bound, ru.dispatches);
        printf("scores         %12llu bytes  (one [%lld, %lld, %lld, %lld] f32 matrix)\n", (unsigned long long)scores,
               (long long)b, (long long)h, (long long)n, (long long)n);
        printf("saved          %12lld bytes  (%.2f score matrices)\n", (long long)saved, (double)saved / (double)scores);
    }
    rc = 0;
out:
    loom_device_close(dev);
    return cli_finish(ctx, "plan", rc);
}

int cmd_plan(int argc, char **argv)
{
    int64_t batch = 256, seq = 2048, heads = 4, head_size = 64;
    const char *spec = "cpu";
    int json = 0, timeline = 0, train = 0, graph = 0, forward_only = 0;
    static const char *const graphs[] = {"mlp", "attention", NULL};
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
        case O_GRAPH:
            if ((graph = cli_choice(&a, graphs)) < 0)
                return CLI_EXIT_USAGE;
            break;
        case O_SEQ:
            if (cli_int(&a, 1, 1 << 20, &seq))
                return CLI_EXIT_USAGE;
            break;
        case O_HEADS:
            if (cli_int(&a, 1, 4096, &heads))
                return CLI_EXIT_USAGE;
            break;
        case O_HEAD_SIZE:
            if (cli_int(&a, 1, 256, &head_size))
                return CLI_EXIT_USAGE;
            break;
        case O_FORWARD: forward_only = 1; break;
        default: return a.rc;
        }
    }
    if (graph == 1 && train) {
        fprintf(stderr, "loom plan: --train plans the MLP's training step; --graph attention plans its backward "
                        "pass unless --forward\n");
        return CLI_EXIT_USAGE;
    }
    if (graph == 1)
        return cmd_plan_attention(spec, cli_given(&a, "batch") ? batch : 1, heads, seq, head_size, forward_only, json);
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
