/* loom eval / predict: a saved model on the test set, on one test image
 * or on image files, with the inputs scaled as the model records. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char *class_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                      "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

/* The name of class c of a k-class model ("" when there is none). */
static const char *class_name(int64_t k, int64_t c)
{
    return k == 10 && c >= 0 && c < 10 ? class_names[c] : "";
}

/* The model's preprocessing, or x/255 (said on stderr) for files that
 * record none: every loom train before the record scaled so. */
static void preprocess_of(loom_sequential *m, const char *cmd, const char *path, loom_scaling *how, float stats[2])
{
    if (loom_sequential_get_preprocess(m, how, stats) == LOOM_OK)
        return;
    fprintf(stderr, "loom %s: %s records no input preprocessing; assuming x/255\n", cmd, path);
    *how = LOOM_SCALE_UNIT;
    stats[0] = 0.0f;
    stats[1] = 255.0f;
    loom_sequential_set_preprocess(m, *how, stats);
}

enum { O_MODEL = CLI_OPT_BASE, O_DATA, O_DEVICE, O_JSON, O_EMA, O_METRICS, O_PROFILE, O_LIMIT, O_IMAGE, O_INPUT,
       O_NO_PRE };

static const struct option eval_opts[] = {
    {"model", required_argument, 0, O_MODEL},
    {"data", required_argument, 0, O_DATA},
    {"device", required_argument, 0, O_DEVICE},
    {"json", no_argument, 0, O_JSON},
    {"ema", no_argument, 0, O_EMA},
    {"metrics", required_argument, 0, O_METRICS},
    {"profile", required_argument, 0, O_PROFILE},
    {"limit", required_argument, 0, O_LIMIT},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

int cmd_eval(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--compare"))
            return cmd_eval_compare(argc, argv);
    const char *model = NULL, *data = LOOM_DEFAULT_DATA_DIR, *spec = "auto", *metrics_path = NULL, *trace_path = NULL;
    int json = 0, ema = 0;
    int64_t limit = 0;
    cli_args a = cli_args_init("eval", argc, argv, eval_opts);
    for (int c; (c = cli_next(&a)) != -1;) {
        switch (c) {
        case O_MODEL: model = optarg; break;
        case O_DATA: data = optarg; break;
        case O_DEVICE: spec = optarg; break;
        case O_JSON: json = 1; break;
        case O_EMA: ema = 1; break;
        case O_METRICS: metrics_path = optarg; break;
        case O_PROFILE: trace_path = optarg; break;
        case O_LIMIT:
            if (cli_int(&a, 0, INT64_MAX, &limit))
                return CLI_EXIT_USAGE;
            break;
        default: return a.rc;
        }
    }
    if (!model)
        return cli_usage_error("eval", "--model FILE is required");
    loom_ctx *ctx = cli_ctx();
    if (!ctx)
        return 1;
    loom_metrics *metrics = NULL;
    loom_trace *trace = NULL;
    loom_device *dev = NULL;
    loom_dataset *test = NULL;
    loom_sequential *m = NULL;
    loom_eval_result ev;
    memset(&ev, 0, sizeof ev);
    int rc = 1;
    loom_model_config mc;
    if (loom_device_open(ctx, spec, &dev) || loom_model_config_read(ctx, model, &mc))
        goto fail;
    mc.profile = metrics_path || trace_path;
    if (loom_sequential_load(ctx, model, dev, &mc, &m) || cli_load_data(ctx, data, 0, limit, &test))
        goto fail;
    loom_scaling how;
    float stats[2];
    preprocess_of(m, "eval", model, &how, stats);
    if (loom_dataset_scale(test, how, stats, NULL))
        goto fail;
    if (metrics_path && loom_metrics_open(ctx, metrics_path, dev, &metrics))
        goto fail;
    if (trace_path && loom_trace_create(ctx, &trace))
        goto fail;
    if (loom_sequential_monitor(m, metrics, trace, 200) || loom_sequential_evaluate(m, test, ema, &ev))
        goto fail;
    if (trace && loom_trace_write(trace, trace_path))
        goto fail;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "device", loom_device_get(dev)->spec);
        cJSON_AddStringToObject(o, "model", model);
        cJSON_AddBoolToObject(o, "ema", ema);
        cJSON_AddNumberToObject(o, "test_images", (double)ev.count);
        cJSON_AddItemToObject(o, "test_accuracy", cli_json_number(ev.accuracy));
        cJSON_AddItemToObject(o, "test_loss", cli_json_number(ev.loss));
        cJSON_AddItemToObject(o, "seconds", cli_json_number(ev.seconds));
        cJSON *p = cJSON_AddArrayToObject(o, "precision"), *r = cJSON_AddArrayToObject(o, "recall");
        cJSON *cm = cJSON_AddArrayToObject(o, "confusion");
        for (int c = 0; c < ev.classes; c++) {
            cJSON_AddItemToArray(p, cli_json_number(ev.precision[c]));
            cJSON_AddItemToArray(r, cli_json_number(ev.recall[c]));
            cJSON *row = cJSON_CreateArray();
            for (int j = 0; j < ev.classes; j++)
                cJSON_AddItemToArray(row, cJSON_CreateNumber((double)ev.confusion[c * ev.classes + j]));
            cJSON_AddItemToArray(cm, row);
        }
        if (cli_print_json(o))
            goto done;
    } else {
        printf("model %s on %s: %lld test images%s\n", model, loom_device_get(dev)->spec, (long long)ev.count,
               ema ? " (EMA weights)" : "");
        printf("accuracy %.4f  loss %.4f\n\n%-12s %9s %9s\n", ev.accuracy, ev.loss, "class", "precision", "recall");
        for (int c = 0; c < ev.classes; c++)
            printf("%-12s %9.4f %9.4f\n", class_name(ev.classes, c), ev.precision[c], ev.recall[c]);
        printf("\nconfusion (rows: true, columns: predicted)\n");
        for (int r = 0; r < ev.classes; r++) {
            for (int c = 0; c < ev.classes; c++)
                printf("%5lld", (long long)ev.confusion[r * ev.classes + c]);
            printf("\n");
        }
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "loom eval: %s\n", loom_last_error(ctx));
done:
    loom_metrics_close(metrics);
    loom_trace_destroy(trace);
    loom_eval_result_free(&ev);
    loom_sequential_destroy(m);
    loom_dataset_destroy(test);
    loom_device_close(dev);
    return cli_finish(ctx, "eval", rc);
}

static const struct option predict_opts[] = {
    {"model", required_argument, 0, O_MODEL},
    {"data", required_argument, 0, O_DATA},
    {"device", required_argument, 0, O_DEVICE},
    {"image", required_argument, 0, O_IMAGE},
    {"input", required_argument, 0, O_INPUT},
    {"no-preprocess", no_argument, 0, O_NO_PRE},
    {"json", no_argument, 0, O_JSON},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

int cmd_predict(int argc, char **argv)
{
    const char *model = NULL, *data = LOOM_DEFAULT_DATA_DIR, *spec = "auto", *input = NULL;
    int json = 0, no_pre = 0, have_image = 0;
    int64_t image = 0;
    cli_args a = cli_args_init("predict", argc, argv, predict_opts);
    for (int c; (c = cli_next(&a)) != -1;) {
        switch (c) {
        case O_MODEL: model = optarg; break;
        case O_DATA: data = optarg; break;
        case O_DEVICE: spec = optarg; break;
        case O_IMAGE:
            if (cli_int(&a, 0, INT64_MAX, &image))
                return CLI_EXIT_USAGE;
            have_image = 1;
            break;
        case O_INPUT: input = optarg; break;
        case O_NO_PRE: no_pre = 1; break;
        case O_JSON: json = 1; break;
        default: return a.rc;
        }
    }
    if (!model)
        return cli_usage_error("predict", "--model FILE is required");
    if (have_image && input)
        return cli_usage_error("predict", "--image N and --input FILE exclude each other");
    if (no_pre && !input)
        return cli_usage_error("predict", "--no-preprocess applies to --input FILE");
    loom_ctx *ctx = cli_ctx();
    if (!ctx)
        return 1;
    loom_device *dev = NULL;
    loom_dataset *test = NULL;
    loom_sequential *m = NULL;
    float *x = NULL, *probs = NULL;
    int32_t label = -1;
    int64_t rows = 1;
    int rc = 1;
    if (loom_device_open(ctx, spec, &dev) || loom_sequential_load(ctx, model, dev, NULL, &m))
        goto fail;
    int64_t k = loom_sequential_outputs(m), features = loom_sequential_inputs(m);
    loom_scaling how;
    float stats[2];
    preprocess_of(m, "predict", model, &how, stats);
    if (input) {
        if (cli_read_inputs("predict", input, features, &x, &rows))
            goto done;
        if (!no_pre && loom_sequential_preprocess(m, x, rows))
            goto fail;
    } else {
        if (cli_load_data(ctx, data, 0, 0, &test))
            goto fail;
        if (loom_dataset_features(test) != features) {
            fprintf(stderr, "loom predict: the test images have %lld inputs each, the model %s takes %lld\n",
                    (long long)loom_dataset_features(test), model, (long long)features);
            goto done;
        }
        if (image >= loom_dataset_count(test)) {
            fprintf(stderr, "loom predict: --image %lld is outside the test set's [0, %lld)\n", (long long)image,
                    (long long)loom_dataset_count(test));
            rc = CLI_EXIT_USAGE;
            goto done;
        }
        if (loom_dataset_scale(test, how, stats, NULL))
            goto fail;
        x = malloc((size_t)features * sizeof *x);
        if (!x) {
            fprintf(stderr, "loom predict: out of memory\n");
            goto done;
        }
        if (loom_dataset_gather(test, &image, 1, x, &label))
            goto fail;
    }
    probs = calloc((size_t)rows * (size_t)k, sizeof *probs);
    if (!probs) {
        fprintf(stderr, "loom predict: out of memory\n");
        goto done;
    }
    if (loom_sequential_predict(m, x, rows, probs))
        goto fail;
    cJSON *o = json ? cJSON_CreateObject() : NULL, *preds = NULL;
    if (o) {
        cJSON_AddStringToObject(o, "model", model);
        cJSON_AddStringToObject(o, "device", loom_device_get(dev)->spec);
        if (input)
            cJSON_AddStringToObject(o, "input", input);
        else
            cJSON_AddNumberToObject(o, "image", (double)image);
        preds = cJSON_AddArrayToObject(o, "predictions");
    }
    for (int64_t r = 0; r < rows; r++) {
        const float *p = probs + r * k;
        int64_t best = 0;
        for (int64_t c = 1; c < k; c++)
            best = p[c] > p[best] ? c : best;
        if (o) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "row", (double)r);
            cJSON_AddNumberToObject(e, "predicted", (double)best);
            cJSON_AddStringToObject(e, "class", class_name(k, best));
            cJSON_AddItemToObject(e, "probability", cli_json_number(p[best]));
            if (!input) {
                cJSON_AddNumberToObject(e, "label", label);
                cJSON_AddBoolToObject(e, "label_in_range", label >= 0 && label < k);
            }
            cJSON *ps = cJSON_AddArrayToObject(e, "probabilities");
            for (int64_t c = 0; c < k; c++)
                cJSON_AddItemToArray(ps, cli_json_number(p[c]));
            cJSON_AddItemToArray(preds, e);
            continue;
        }
        if (input)
            printf("%s row %lld: predicted %lld (%s, p=%.3f)\n", input, (long long)r,
                   (long long)best, class_name(k, best), (double)p[best]);
        else if (label >= 0 && label < k)
            printf("test image %lld: predicted %lld (%s, p=%.3f), true label %d (%s)\n", (long long)image,
                   (long long)best, class_name(k, best), (double)p[best], label, class_name(k, label));
        else
            printf("test image %lld: predicted %lld (%s, p=%.3f), true label %d (outside the model's %lld "
                   "classes)\n", (long long)image, (long long)best, class_name(k, best), (double)p[best], label,
                   (long long)k);
        for (int64_t c = 0; c < k; c++)
            printf("  %lld %-12s %.4f\n", (long long)c, class_name(k, c), (double)p[c]);
    }
    if (o && cli_print_json(o))
        goto done;
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "loom predict: %s\n", loom_last_error(ctx));
done:
    free(x);
    free(probs);
    loom_sequential_destroy(m);
    loom_dataset_destroy(test);
    loom_device_close(dev);
    return cli_finish(ctx, "predict", rc);
}
