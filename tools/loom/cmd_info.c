/* loom info MODEL.onnx: the model's inputs, outputs and ops, and which
 * device can run each op: every node is imported alone (its computed
 * inputs made graph inputs of the shapes the model gives them) and
 * compiled on every device. */
#include "onnx_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { O_DEVICE = CLI_OPT_BASE, O_BATCH, O_DIM, O_JSON, O_NODES, O_NO_PROBE };

static const struct option opts[] = {
    {"device", required_argument, 0, O_DEVICE}, {"batch", required_argument, 0, O_BATCH},
    {"dim", required_argument, 0, O_DIM},       {"json", no_argument, 0, O_JSON},
    {"nodes", no_argument, 0, O_NODES},         {"no-probe", no_argument, 0, O_NO_PROBE},
    {"help", no_argument, 0, 'h'},              {0, 0, 0, 0},
};

#define MAX_DEVS 8
#define MAX_PROBED 2000

static void quiet(void *u, loom_log_level l, const char *m)
{
    (void)u, (void)l, (void)m;
}

static cJSON *value_json(const loom_onnx_value *v)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", v->name);
    cJSON_AddStringToObject(o, "type", cli_numpy_name(v->type));
    cJSON_AddStringToObject(o, "loom_dtype", loom_dtype_name(v->dtype));
    cJSON *sh = cJSON_AddArrayToObject(o, "shape");
    for (int k = 0; k < v->ndim; k++)
        cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)v->shape[k]));
    return o;
}

static void print_value(const char *what, const loom_onnx_value *v)
{
    printf("  %-7s %-32s %-8s [", what, v->name, cli_numpy_name(v->type));
    for (int k = 0; k < v->ndim; k++)
        printf("%s%lld", k ? "," : "", (long long)v->shape[k]);
    printf("]%s\n", !strcmp(what, "input") && !v->used ? "  (only its shape is read)" : "");
}

typedef struct probe {
    int ok[MAX_DEVS];          /* 1 runs, 0 refused, -1 the import refused it */
    char why[MAX_DEVS][200];
} probe;

int cmd_info(int argc, char **argv)
{
    static cli_model_opts mo;
    memset(&mo, 0, sizeof mo);
    int rc = cli_model_args("info", argc, argv, &mo.path);
    if (rc)
        return rc < 0 ? 0 : rc;
    const char *spec = "all";
    int json = 0, nodes = 0, probe_on = 1;
    cli_args a = cli_args_init("info", argc - 1, argv + 1, opts);
    for (int c; (c = cli_next(&a)) != -1;) {
        int bad = 0;
        switch (c) {
        case O_DEVICE: spec = optarg; break;
        case O_BATCH: bad = cli_int(&a, 1, 1 << 30, &mo.batch); break;
        case O_DIM: bad = cli_model_dim("info", &mo, optarg); break;
        case O_JSON: json = 1; break;
        case O_NODES: nodes = 1; break;
        case O_NO_PROBE: probe_on = 0; break;
        default: return a.rc;
        }
        if (bad)
            return bad;
    }
    loom_ctx *ctx = cli_ctx();
    if (!ctx)
        return 1;
    loom_onnx_opts lo;
    loom_onnx_opts_default(&lo);
    if (mo.batch)
        lo.batch = mo.batch;
    lo.dims = mo.dims;
    lo.ndims = mo.ndims;
    loom_graph *g = NULL;
    loom_onnx_info info;
    if (loom_onnx_load(ctx, mo.path, &g, NULL, &lo, &info) != LOOM_OK) {
        fprintf(stderr, "loom info: %s\n", loom_last_error(ctx));
        return cli_finish(ctx, "info", 1);
    }
    loom_graph_destroy(g);
    /* the devices asked for */
    loom_device *devs[MAX_DEVS];
    loom_state *sts[MAX_DEVS];
    char specs[MAX_DEVS][32];
    int nd = 0;
    for (int i = 0; i < loom_device_count(ctx) && nd < MAX_DEVS; i++) {
        loom_device_info di;
        if (loom_device_get_info(ctx, i, &di) != LOOM_OK || !di.can_run)
            continue;
        if (strcmp(spec, "all") && strcmp(spec, di.spec))
            continue;
        if (loom_device_open(ctx, di.spec, &devs[nd]) != LOOM_OK || loom_state_create(devs[nd], &sts[nd]) != LOOM_OK) {
            fprintf(stderr, "loom info: %s: %s\n", di.spec, loom_last_error(ctx));
            continue;
        }
        snprintf(specs[nd], sizeof specs[nd], "%s", di.spec);
        nd++;
    }
    if (!nd && strcmp(spec, "all")) {
        fprintf(stderr, "loom info: no device \"%s\" that runs graphs\n", spec);
        loom_onnx_info_free(&info);
        return cli_finish(ctx, "info", CLI_EXIT_USAGE);
    }
    int nprobe = probe_on ? (info.nnodes < MAX_PROBED ? info.nnodes : MAX_PROBED) : 0;
    probe *pr = calloc((size_t)(nprobe ? nprobe : 1), sizeof *pr);
    if (!pr) {
        loom_onnx_info_free(&info);
        return cli_finish(ctx, "info", 1);
    }
    /* the probes' refusals are the answer, not errors to log */
    loom_set_log(ctx, quiet, NULL, LOOM_LOG_ERROR);
    for (int k = 0; k < nprobe; k++) {
        if (!info.nodes[k].count) {
            for (int d = 0; d < nd; d++)
                pr[k].ok[d] = 1; /* folded at load: nothing runs */
            continue;
        }
        lo.node_only = k;
        loom_graph *ng = NULL;
        if (loom_onnx_load(ctx, mo.path, &ng, NULL, &lo, NULL) != LOOM_OK) {
            for (int d = 0; d < nd; d++) {
                pr[k].ok[d] = -1;
                snprintf(pr[k].why[d], sizeof pr[k].why[d], "%s", loom_last_error(ctx));
            }
            continue;
        }
        for (int d = 0; d < nd; d++) {
            loom_program *p = NULL;
            pr[k].ok[d] = loom_compile(ng, devs[d], sts[d], NULL, &p) == LOOM_OK;
            if (!pr[k].ok[d])
                snprintf(pr[k].why[d], sizeof pr[k].why[d], "%s", loom_last_error(ctx));
            loom_program_destroy(p);
        }
        loom_graph_destroy(ng);
    }
    /* per op type: nodes, loom ops, nodes each device runs */
    typedef struct opsum {
        const char *op;
        int nodes, loom_ops, folded, runs[MAX_DEVS];
    } opsum;
    opsum *ops = calloc((size_t)(info.nnodes ? info.nnodes : 1), sizeof *ops);
    int nops = 0;
    for (int k = 0; ops && k < info.nnodes; k++) {
        int j = 0;
        while (j < nops && strcmp(ops[j].op, info.nodes[k].op_type))
            j++;
        if (j == nops)
            ops[nops++].op = info.nodes[k].op_type;
        ops[j].nodes++;
        ops[j].loom_ops += info.nodes[k].count;
        ops[j].folded += !info.nodes[k].count;
        for (int d = 0; d < nd; d++)
            ops[j].runs[d] += k < nprobe && pr[k].ok[d] == 1;
    }
    rc = 0;
    if (json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "model", mo.path);
        cJSON_AddStringToObject(root, "producer", info.producer);
        cJSON_AddNumberToObject(root, "ir_version", (double)info.ir_version);
        cJSON_AddNumberToObject(root, "opset", (double)info.opset);
        cJSON_AddNumberToObject(root, "params", info.nparams);
        cJSON_AddNumberToObject(root, "param_bytes", (double)info.param_bytes);
        cJSON *ins = cJSON_AddArrayToObject(root, "inputs");
        for (int i = 0; i < info.ninputs; i++) {
            cJSON *v = value_json(&info.inputs[i]);
            cJSON_AddBoolToObject(v, "used", info.inputs[i].used);
            cJSON_AddItemToArray(ins, v);
        }
        cJSON *outs = cJSON_AddArrayToObject(root, "outputs");
        for (int i = 0; i < info.noutputs; i++)
            cJSON_AddItemToArray(outs, value_json(&info.outputs[i]));
        cJSON *jd = cJSON_AddArrayToObject(root, "devices");
        for (int d = 0; d < nd; d++)
            cJSON_AddItemToArray(jd, cJSON_CreateString(specs[d]));
        cJSON *jo = cJSON_AddArrayToObject(root, "ops");
        for (int j = 0; j < nops; j++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "op_type", ops[j].op);
            cJSON_AddNumberToObject(o, "nodes", ops[j].nodes);
            cJSON_AddNumberToObject(o, "loom_ops", ops[j].loom_ops);
            cJSON_AddNumberToObject(o, "folded", ops[j].folded);
            if (probe_on) {
                cJSON *r = cJSON_AddObjectToObject(o, "nodes_run_by");
                for (int d = 0; d < nd; d++)
                    cJSON_AddNumberToObject(r, specs[d], ops[j].runs[d]);
            }
            cJSON_AddItemToArray(jo, o);
        }
        cJSON *jn = cJSON_AddArrayToObject(root, "nodes");
        for (int k = 0; k < info.nnodes; k++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", info.nodes[k].name);
            cJSON_AddStringToObject(o, "op_type", info.nodes[k].op_type);
            cJSON_AddNumberToObject(o, "loom_ops", info.nodes[k].count);
            if (k < nprobe) {
                cJSON *r = cJSON_AddObjectToObject(o, "runs_on");
                for (int d = 0; d < nd; d++) {
                    if (pr[k].ok[d] == 1)
                        cJSON_AddTrueToObject(r, specs[d]);
                    else
                        cJSON_AddStringToObject(r, specs[d], pr[k].why[d]);
                }
            }
            cJSON_AddItemToArray(jn, o);
        }
        rc = cli_print_json(root);
    } else {
        printf("%s: %s, IR %lld, opset %lld, %d nodes, %d parameters (%.1f MB)\n", mo.path,
               info.producer[0] ? info.producer : "no producer", (long long)info.ir_version, (long long)info.opset,
               info.nnodes, info.nparams, (double)info.param_bytes / 1e6);
        for (int i = 0; i < info.ninputs; i++)
            print_value("input", &info.inputs[i]);
        for (int i = 0; i < info.noutputs; i++)
            print_value("output", &info.outputs[i]);
        printf("\n  %-24s %6s %9s", "op type", "nodes", "loom ops");
        for (int d = 0; d < nd && probe_on; d++)
            printf(" %10s", specs[d]);
        printf("\n");
        for (int j = 0; j < nops; j++) {
            printf("  %-24s %6d %9d", ops[j].op, ops[j].nodes, ops[j].loom_ops);
            for (int d = 0; d < nd && probe_on; d++) {
                char cell[32];
                if (ops[j].runs[d] == ops[j].nodes)
                    snprintf(cell, sizeof cell, "yes");
                else
                    snprintf(cell, sizeof cell, "%d/%d", ops[j].runs[d], ops[j].nodes);
                printf(" %10s", cell);
            }
            printf("%s\n", ops[j].folded == ops[j].nodes ? "  (folded at load)" : "");
        }
        for (int k = 0; k < nprobe; k++)
            for (int d = 0; d < nd; d++)
                if (pr[k].ok[d] != 1 && (nodes || d == 0 || pr[k].ok[d] != pr[k].ok[0]))
                    printf("  %s (%s) on %s: %s\n", info.nodes[k].name, info.nodes[k].op_type, specs[d], pr[k].why[d]);
        if (nodes)
            for (int k = 0; k < info.nnodes; k++)
                printf("  node %-40s %-20s %d loom op%s\n", info.nodes[k].name, info.nodes[k].op_type,
                       info.nodes[k].count, info.nodes[k].count == 1 ? "" : "s");
    }
    free(ops);
    free(pr);
    for (int d = 0; d < nd; d++) {
        loom_state_destroy(sts[d]);
        loom_device_close(devs[d]);
    }
    loom_onnx_info_free(&info);
    return cli_finish(ctx, "info", rc);
}
