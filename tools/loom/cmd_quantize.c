/* loom optimize --quantize int8: post-training quantization of a saved
 * model, calibrated on the first rows of the training set, then the f32
 * and the int8 model on the test set, the file sizes and the per-layer
 * int8 / f32 choice. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { O_MODEL = CLI_OPT_BASE, O_QUANTIZE, O_CALIBRATE, O_SAMPLES, O_DEVICE, O_DATA, O_SAVE, O_JSON, O_MAX_DROP,
       O_PERCENTILE, O_LIMIT };

static const struct option opts[] = {
    {"model", required_argument, 0, O_MODEL},
    {"quantize", required_argument, 0, O_QUANTIZE},
    {"calibrate", required_argument, 0, O_CALIBRATE},
    {"calib-samples", required_argument, 0, O_SAMPLES},
    {"percentile", required_argument, 0, O_PERCENTILE},
    {"max-drop", required_argument, 0, O_MAX_DROP},
    {"device", required_argument, 0, O_DEVICE},
    {"data", required_argument, 0, O_DATA},
    {"limit", required_argument, 0, O_LIMIT},
    {"save", required_argument, 0, O_SAVE},
    {"json", no_argument, 0, O_JSON},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

static long long file_size(const char *path)
{
    struct stat st;
    return path && stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

int cmd_optimize_quantize(int argc, char **argv)
{
    static const char *const types[] = {"int8", NULL};
    static const char *const methods[] = {"minmax", "percentile", "kl", NULL};
    const char *model = NULL, *data = LOOM_DEFAULT_DATA_DIR, *spec = "auto", *save = NULL;
    int json = 0, quantize = -1;
    int64_t limit = 0;
    loom_quant_opts qo = loom_quant_opts_default();
    cli_args a = cli_args_init("optimize", argc, argv, opts);
    for (int c; (c = cli_next(&a)) != -1;) {
        switch (c) {
        case O_MODEL: model = optarg; break;
        case O_QUANTIZE:
            if ((quantize = cli_choice(&a, types)) < 0)
                return CLI_EXIT_USAGE;
            break;
        case O_CALIBRATE: {
            int k = cli_choice(&a, methods);
            if (k < 0)
                return CLI_EXIT_USAGE;
            qo.method = (loom_calib_method)k;
            break;
        }
        case O_SAMPLES:
            if (cli_int(&a, 1, 60000, &qo.samples))
                return CLI_EXIT_USAGE;
            break;
        case O_PERCENTILE:
            if (cli_double(&a, 1e-6, 100, &qo.percentile))
                return CLI_EXIT_USAGE;
            break;
        case O_MAX_DROP:
            if (cli_double(&a, -1, 100, &qo.max_drop))
                return CLI_EXIT_USAGE;
            break;
        case O_LIMIT:
            if (cli_int(&a, 0, INT64_MAX, &limit))
                return CLI_EXIT_USAGE;
            break;
        case O_DEVICE: spec = optarg; break;
        case O_DATA: data = optarg; break;
        case O_SAVE: save = optarg; break;
        case O_JSON: json = 1; break;
        default: return a.rc;
        }
    }
    if (!model)
        return cli_usage_error("optimize", "--model FILE is required");
    if (quantize < 0)
        return cli_usage_error("optimize", "--quantize int8 is required (the other modes are loom optimize's)");
    loom_ctx *ctx = cli_ctx();
    if (!ctx)
        return 1;
    loom_device *dev = NULL;
    loom_dataset *train = NULL, *test = NULL;
    loom_sequential *m = NULL, *q = NULL;
    loom_eval_result ef, eq;
    memset(&ef, 0, sizeof ef);
    memset(&eq, 0, sizeof eq);
    loom_quant_report rep;
    memset(&rep, 0, sizeof rep);
    int rc = 1;
    loom_model_config mc;
    loom_scaling how;
    float stats[2];
    if (loom_device_open(ctx, spec, &dev) || loom_model_config_read(ctx, model, &mc) ||
        loom_sequential_load(ctx, model, dev, &mc, &m))
        goto fail;
    if (loom_sequential_is_quantized(m)) {
        loom_fail(ctx, LOOM_E_INVALID, "%s is quantized already", model);
        goto fail;
    }
    if (loom_sequential_get_preprocess(m, &how, stats) != LOOM_OK) {
        fprintf(stderr, "loom optimize: %s records no input preprocessing; assuming x/255\n", model);
        how = LOOM_SCALE_UNIT;
        stats[0] = 0.0f;
        stats[1] = 255.0f;
        loom_sequential_set_preprocess(m, how, stats);
    }
    if (cli_load_data(ctx, data, 1, qo.samples, &train) || loom_dataset_scale(train, how, stats, NULL) ||
        cli_load_data(ctx, data, 0, limit, &test) || loom_dataset_scale(test, how, stats, NULL))
        goto fail;
    if (loom_sequential_quantize(m, train, dev, &qo, &q, &rep))
        goto fail;
    if (loom_sequential_evaluate(m, test, 0, &ef) || loom_sequential_evaluate(q, test, 0, &eq))
        goto fail;
    if (save && loom_sequential_save(q, save))
        goto fail;
    long long fsize = file_size(model), qsize = save ? file_size(save) : -1;
    const char *dspec = loom_device_get(dev)->spec;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "device", dspec);
        cJSON_AddStringToObject(o, "model", model);
        cJSON_AddStringToObject(o, "quantize", "int8");
        cJSON_AddStringToObject(o, "calibrate", loom_calib_method_name(qo.method));
        cJSON_AddNumberToObject(o, "calib_samples", (double)qo.samples);
        cJSON_AddNumberToObject(o, "test_images", (double)eq.count);
        cJSON_AddItemToObject(o, "f32_accuracy", cli_json_number(ef.accuracy));
        cJSON_AddItemToObject(o, "int8_accuracy", cli_json_number(eq.accuracy));
        cJSON_AddItemToObject(o, "drop_points", cli_json_number(100.0 * (ef.accuracy - eq.accuracy)));
        cJSON_AddItemToObject(o, "f32_bytes", fsize >= 0 ? cJSON_CreateNumber((double)fsize) : cJSON_CreateNull());
        cJSON_AddItemToObject(o, "int8_bytes", qsize >= 0 ? cJSON_CreateNumber((double)qsize) : cJSON_CreateNull());
        if (save)
            cJSON_AddStringToObject(o, "saved", save);
        cJSON *ls = cJSON_AddArrayToObject(o, "layers");
        for (int i = 0; i < rep.nlayers; i++) {
            const loom_quant_layer *l = &rep.layers[i];
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "layer", l->layer);
            cJSON_AddStringToObject(e, "name", l->scope);
            cJSON_AddStringToObject(e, "mode", l->int8 ? "int8" : "f32");
            cJSON_AddItemToObject(e, "drop_alone", cli_json_number(l->drop));
            cJSON_AddItemToObject(e, "in_scale", cli_json_number(l->in_scale));
            cJSON_AddNumberToObject(e, "in_zero", l->in_zero);
            cJSON_AddItemToArray(ls, e);
        }
        if (cli_print_json(o))
            goto done;
    } else {
        printf("quantize %s to int8 on %s: %s calibration over %lld training rows\n\n", model, dspec,
               loom_calib_method_name(qo.method), (long long)qo.samples);
        printf("%-10s %-5s %14s %12s %8s\n", "layer", "mode", "drop alone", "in scale", "in zero");
        for (int i = 0; i < rep.nlayers; i++) {
            const loom_quant_layer *l = &rep.layers[i];
            printf("%-10s %-5s %12.2f pt %12.6g %8d\n", l->scope, l->int8 ? "int8" : "f32", l->drop,
                   (double)l->in_scale, l->in_zero);
        }
        printf("\n%-6s %10s %12s\n", "model", "test acc", "file bytes");
        printf("%-6s %10.4f %12lld\n", "f32", ef.accuracy, fsize);
        if (qsize >= 0)
            printf("%-6s %10.4f %12lld  (%.3fx)\n", "int8", eq.accuracy, qsize, (double)qsize / (double)fsize);
        else
            printf("%-6s %10.4f %12s\n", "int8", eq.accuracy, "(not saved)");
        printf("drop %.2f points over %lld test images\n", 100.0 * (ef.accuracy - eq.accuracy), (long long)eq.count);
        if (save)
            printf("saved %s\n", save);
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "loom optimize: %s\n", loom_last_error(ctx));
done:
    loom_eval_result_free(&ef);
    loom_eval_result_free(&eq);
    loom_sequential_destroy(q);
    loom_sequential_destroy(m);
    loom_dataset_destroy(train);
    loom_dataset_destroy(test);
    loom_device_close(dev);
    return cli_finish(ctx, "optimize", rc);
}
