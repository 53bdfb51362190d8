/* loom train / eval / predict: the seed's Keras workflow on any device. */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *class_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                      "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

typedef struct progress {
    int tty;
    int quiet;
    int64_t steps_per_epoch;
    int64_t batch;
    double epoch_s[64];         /* each epoch's training seconds, for --json */
    int nepochs;
} progress;

static int on_progress(void *user, const loom_fit_stats *s)
{
    progress *p = user;
    if (s->end_of_epoch && p->nepochs < (int)(sizeof p->epoch_s / sizeof p->epoch_s[0]))
        p->epoch_s[p->nepochs++] = s->seconds;
    if (p->quiet)
        return 0;
    char val[64] = "";
    if (!isnan(s->val_accuracy))
        snprintf(val, sizeof val, "  val_loss %.4f  val_acc %.4f", s->val_loss, s->val_accuracy);
    if (p->tty) {
        int width = 28, done = s->total ? (int)(width * s->seen / s->total) : width;
        char bar[64];
        for (int i = 0; i < width; i++)
            bar[i] = i < done ? '=' : i == done ? '>' : '.';
        bar[width] = 0;
        printf("\repoch %d/%d [%s] %6lld/%lld  loss %.4f  acc %.4f  %8.0f samples/s%s", s->epoch, s->epochs, bar,
               (long long)s->seen, (long long)s->total, s->loss, s->accuracy, s->samples_per_s, val);
        if (s->end_of_epoch)
            printf("\n");
        fflush(stdout);
    } else if (s->end_of_epoch) {
        printf("epoch %d/%d  loss %.4f  acc %.4f  %.0f samples/s  %.1f s%s\n", s->epoch, s->epochs, s->loss,
               s->accuracy, s->samples_per_s, s->seconds, val);
        fflush(stdout);
    }
    return 0;
}

static int parse_hidden(const char *s, int64_t *h, int max)
{
    int n = 0;
    while (*s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v <= 0)
            return -1;
        h[n++] = v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return n;
}

static loom_status load_data(loom_ctx *ctx, const char *dir, int train, int64_t limit, loom_dataset **out)
{
    loom_dataset *ds = NULL;
    loom_status s = loom_dataset_load_mnist(ctx, dir, train, &ds);
    if (s == LOOM_OK)
        s = loom_dataset_scale(ds, LOOM_SCALE_UNIT, NULL, NULL);
    if (s == LOOM_OK && limit > 0 && limit < loom_dataset_count(ds)) {
        loom_dataset *sub = NULL;
        s = loom_dataset_subset(ds, 0, limit, &sub);
        loom_dataset_destroy(ds);
        ds = sub;
    }
    if (s != LOOM_OK) {
        loom_dataset_destroy(ds);
        return s;
    }
    *out = ds;
    return LOOM_OK;
}

/* loom train --dash: loom-dash follows the run's metrics when a display
 * is there; otherwise says why not. */
static void cli_start_dash(const char *metrics, int quiet)
{
    const char *display = getenv("DISPLAY"), *wayland = getenv("WAYLAND_DISPLAY");
    if ((!display || !*display) && (!wayland || !*wayland)) {
        fprintf(stderr, "loom train: --dash: no display (DISPLAY is not set); follow the run elsewhere with\n"
                        "  loom-dash --follow %s\n", metrics);
        return;
    }
    char exe[1024], cmd[2600];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    char *slash = strrchr(exe, '/');
    /* the build tree keeps loom-dash in tools/dash beside tools/loom; an
     * install puts both in one bin folder */
    if (slash) {
        *slash = 0;
        snprintf(cmd, sizeof cmd, "d=\"%s\"; b=\"$d/dash/loom-dash\"; [ -x \"$b\" ] || b=\"$d/loom-dash\"; "
                 "[ -x \"$b\" ] || b=loom-dash; \"$b\" --follow \"%s\" >/dev/null 2>&1 &", exe, metrics);
    } else {
        snprintf(cmd, sizeof cmd, "loom-dash --follow \"%s\" >/dev/null 2>&1 &", metrics);
    }
    if (system(cmd) != 0)
        fprintf(stderr, "loom train: --dash: could not start loom-dash\n");
    else if (!quiet)
        printf("dashboard     loom-dash --follow %s\n", metrics);
}

int cmd_train(int argc, char **argv)
{
    const char *data = cli_opt(argc, argv, "--data", LOOM_DEFAULT_DATA_DIR);
    const char *hidden_s = cli_opt(argc, argv, "--hidden", "64,64");
    int epochs = atoi(cli_opt(argc, argv, "--epochs", "5"));
    int64_t batch = atoll(cli_opt(argc, argv, "--batch", "32"));
    const char *opt_s = cli_opt(argc, argv, "--optimizer", "adam");
    const char *spec = cli_opt(argc, argv, "--device", "auto");
    const char *save = cli_opt(argc, argv, "--save", NULL);
    const char *resume = cli_opt(argc, argv, "--resume", NULL);
    const char *ckpt = cli_opt(argc, argv, "--checkpoint", NULL);
    int64_t ckpt_every = atoll(cli_opt(argc, argv, "--checkpoint-every", "0"));
    int64_t limit = atoll(cli_opt(argc, argv, "--limit", "0"));
    int64_t test_limit = atoll(cli_opt(argc, argv, "--test-limit", "0"));
    float vsplit = (float)atof(cli_opt(argc, argv, "--validation-split", "0"));
    float dropout = (float)atof(cli_opt(argc, argv, "--dropout", "0"));
    int patience = atoi(cli_opt(argc, argv, "--early-stopping", "0"));
    int json = cli_flag(argc, argv, "--json");
    const char *metrics_path = cli_opt(argc, argv, "--metrics", NULL);
    const char *trace_path = cli_opt(argc, argv, "--profile", NULL);
    int64_t trace_steps = atoll(cli_opt(argc, argv, "--profile-steps", "200"));
    int dash = cli_flag(argc, argv, "--dash");
    loom_optimizer_kind kind = !strcmp(opt_s, "sgd") ? LOOM_OPT_SGD : !strcmp(opt_s, "adamw") ? LOOM_OPT_ADAMW
                                                                                               : LOOM_OPT_ADAM;
    if (strcmp(opt_s, "sgd") && strcmp(opt_s, "adam") && strcmp(opt_s, "adamw")) {
        fprintf(stderr, "loom train: --optimizer must be adam, adamw or sgd, not \"%s\"\n", opt_s);
        return 2;
    }
    int64_t hidden[16];
    int nh = parse_hidden(hidden_s, hidden, 16);
    if (nh < 0 || epochs <= 0 || batch <= 0) {
        fprintf(stderr, "loom train: bad --hidden, --epochs or --batch\n");
        return 2;
    }
    loom_model_config mc = loom_model_config_default();
    mc.optimizer = loom_optimizer_default(kind);
    mc.optimizer.lr = (float)atof(cli_opt(argc, argv, "--lr", kind == LOOM_OPT_SGD ? "0.01" : "0.001"));
    mc.optimizer.momentum = (float)atof(cli_opt(argc, argv, "--momentum", "0"));
    mc.optimizer.clip_norm = (float)atof(cli_opt(argc, argv, "--clip-norm", "0"));
    mc.optimizer.ema_decay = (float)atof(cli_opt(argc, argv, "--ema", "0"));
    mc.batch = batch;
    mc.seed = (uint64_t)atoll(cli_opt(argc, argv, "--seed", "42"));
    mc.profile = trace_path != NULL || metrics_path != NULL || dash;
    char dash_metrics[256];
    if (dash && !metrics_path) {
        snprintf(dash_metrics, sizeof dash_metrics, "/tmp/loom-train-%ld.jsonl", (long)getpid());
        metrics_path = dash_metrics;
    }

    loom_ctx *ctx = cli_ctx();
    if (!ctx)
        return 1;
    loom_device *dev = NULL;
    loom_dataset *train = NULL, *test = NULL;
    loom_sequential *m = NULL;
    loom_eval_result ev;
    memset(&ev, 0, sizeof ev);
    loom_metrics *metrics = NULL;
    loom_trace *trace = NULL;
    int rc = 1;
    if (loom_device_open(ctx, spec, &dev) || load_data(ctx, data, 1, limit, &train) ||
        load_data(ctx, data, 0, test_limit, &test))
        goto fail;
    if (resume) {
        if (loom_sequential_load(ctx, resume, dev, NULL, &m))
            goto fail;
    } else {
        if (loom_sequential_create(ctx, loom_dataset_features(train), &m))
            goto fail;
        for (int i = 0; i < nh; i++) {
            if (loom_sequential_add_dense(m, hidden[i], LOOM_ACT_RELU, LOOM_INIT_GLOROT_UNIFORM))
                goto fail;
            if (dropout > 0 && loom_sequential_add_dropout(m, dropout))
                goto fail;
        }
        if (loom_sequential_add_dense(m, loom_dataset_classes(train), LOOM_ACT_SOFTMAX, LOOM_INIT_GLOROT_UNIFORM) ||
            loom_sequential_compile(m, dev, &mc))
            goto fail;
    }
    const loom_device_info *di = loom_device_get(dev);
    progress pr = {isatty(1) && !json, json, 0, batch, {0}, 0};
    if (!json)
        printf("training %s on %s (%s): %lld images, batch %lld, %d epochs, %s\n", loom_sequential_describe(m),
               di->spec, di->name, (long long)loom_dataset_count(train), (long long)batch, epochs, opt_s);
    if (metrics_path && loom_metrics_open(ctx, metrics_path, dev, &metrics))
        goto fail;
    if (trace_path && loom_trace_create(ctx, &trace))
        goto fail;
    if (dash)
        cli_start_dash(metrics_path, json);
    loom_fit_config fc = loom_fit_config_default();
    fc.epochs = epochs;
    fc.metrics = metrics;
    fc.metrics_every = atoll(cli_opt(argc, argv, "--metrics-every", "50"));
    fc.trace = trace;
    fc.trace_steps = trace_steps;
    fc.validation_split = vsplit;
    fc.progress = on_progress;
    fc.user = &pr;
    fc.progress_every = pr.tty ? 50 : 0;
    fc.early_stopping_patience = patience;
    fc.checkpoint_every = ckpt_every;
    fc.checkpoint_path = ckpt;
    loom_fit_stats last;
    /* The whole fit, first epoch included, as the peers in
     * tools/bench_peers.sh time theirs. */
    struct timespec f0, f1;
    clock_gettime(CLOCK_MONOTONIC, &f0);
    if (loom_sequential_fit(m, train, &fc, &last))
        goto fail;
    clock_gettime(CLOCK_MONOTONIC, &f1);
    double fit_s = (double)(f1.tv_sec - f0.tv_sec) + (double)(f1.tv_nsec - f0.tv_nsec) * 1e-9;
    if (save && loom_sequential_save(m, save))
        goto fail;
    if (loom_sequential_evaluate(m, test, 0, &ev))
        goto fail;
    if (trace && loom_trace_write(trace, trace_path))
        goto fail;
    if (trace && !json)
        printf("trace         %s (the first %lld steps; open in ui.perfetto.dev)\n", trace_path,
               (long long)trace_steps);
    if (metrics && !json)
        printf("metrics       %s\n", metrics_path);
    double sps = last.samples_per_s;
    if (json) {
        printf("{\"device\":\"%s\",\"device_name\":\"%s\",\"epochs\":%d,\"batch\":%lld,\"optimizer\":\"%s\","
               "\"train_images\":%lld,\"test_images\":%lld,\"test_accuracy\":%.6f,\"test_loss\":%.6f,"
               "\"train_loss\":%.6f,\"train_accuracy\":%.6f,\"train_seconds\":%.3f,\"samples_per_s\":%.1f,"
               "\"fit_seconds\":%.3f,\"fit_samples_per_s\":%.1f,\"steps\":%lld,\"saved\":%s%s%s,\"epoch_seconds\":[",
               di->spec, di->name, epochs, (long long)batch, opt_s, (long long)loom_dataset_count(train),
               (long long)ev.count, ev.accuracy, ev.loss, last.loss, last.accuracy, last.seconds * epochs, sps, fit_s,
               fit_s > 0 ? (double)last.epoch * (double)loom_dataset_count(train) / fit_s : 0.0,
               (long long)last.step, save ? "\"" : "", save ? save : "null", save ? "\"" : "");
        for (int i = 0; i < pr.nepochs; i++)
            printf("%s%.3f", i ? "," : "", pr.epoch_s[i]);
        printf("]}\n");
    } else {
        printf("test accuracy %.4f  test loss %.4f  (%lld images)\n", ev.accuracy, ev.loss, (long long)ev.count);
        printf("throughput    %.0f samples/s training on %s (last epoch)\n", sps, di->spec);
        if (save)
            printf("model saved   %s\n", save);
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "loom train: %s\n", loom_last_error(ctx));
done:
    loom_metrics_close(metrics);
    loom_trace_destroy(trace);
    loom_eval_result_free(&ev);
    loom_sequential_destroy(m);
    loom_dataset_destroy(train);
    loom_dataset_destroy(test);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    const char *model = cli_opt(argc, argv, "--model", NULL);
    const char *data = cli_opt(argc, argv, "--data", LOOM_DEFAULT_DATA_DIR);
    const char *spec = cli_opt(argc, argv, "--device", "auto");
    int json = cli_flag(argc, argv, "--json");
    int ema = cli_flag(argc, argv, "--ema");
    const char *metrics_path = cli_opt(argc, argv, "--metrics", NULL);
    const char *trace_path = cli_opt(argc, argv, "--profile", NULL);
    loom_metrics *metrics = NULL;
    loom_trace *trace = NULL;
    if (!model) {
        fprintf(stderr, "loom eval: --model FILE is required\n");
        return 2;
    }
    loom_ctx *ctx = cli_ctx();
    if (!ctx)
        return 1;
    loom_device *dev = NULL;
    loom_dataset *test = NULL;
    loom_sequential *m = NULL;
    loom_eval_result ev;
    memset(&ev, 0, sizeof ev);
    int rc = 1;
    if (loom_device_open(ctx, spec, &dev) || load_data(ctx, data, 0, 0, &test))
        goto fail;
    loom_model_config mc;
    if (loom_model_config_read(ctx, model, &mc))
        goto fail;
    mc.profile = metrics_path || trace_path;
    if (loom_sequential_load(ctx, model, dev, &mc, &m))
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
        printf("{\"device\":\"%s\",\"model\":\"%s\",\"test_images\":%lld,\"test_accuracy\":%.6f,\"test_loss\":%.6f,"
               "\"seconds\":%.3f,\"precision\":[",
               loom_device_get(dev)->spec, model, (long long)ev.count, ev.accuracy, ev.loss, ev.seconds);
        for (int c = 0; c < ev.classes; c++)
            printf("%s%.4f", c ? "," : "", ev.precision[c]);
        printf("],\"recall\":[");
        for (int c = 0; c < ev.classes; c++)
            printf("%s%.4f", c ? "," : "", ev.recall[c]);
        printf("],\"confusion\":[");
        for (int c = 0; c < ev.classes * ev.classes; c++)
            printf("%s%lld", c ? "," : "", (long long)ev.confusion[c]);
        printf("]}\n");
    } else {
        printf("model %s on %s: %lld test images\n", model, loom_device_get(dev)->spec, (long long)ev.count);
        printf("accuracy %.4f  loss %.4f\n\n%-12s %9s %9s\n", ev.accuracy, ev.loss, "class", "precision", "recall");
        for (int c = 0; c < ev.classes; c++)
            printf("%-12s %9.4f %9.4f\n", ev.classes == 10 ? class_names[c] : "", ev.precision[c], ev.recall[c]);
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
    loom_ctx_destroy(ctx);
    return rc;
}

int cmd_predict(int argc, char **argv)
{
    const char *model = cli_opt(argc, argv, "--model", NULL);
    const char *data = cli_opt(argc, argv, "--data", LOOM_DEFAULT_DATA_DIR);
    const char *spec = cli_opt(argc, argv, "--device", "auto");
    long image = atol(cli_opt(argc, argv, "--image", "0"));
    if (!model) {
        fprintf(stderr, "loom predict: --model FILE is required\n");
        return 2;
    }
    loom_ctx *ctx = cli_ctx();
    if (!ctx)
        return 1;
    loom_device *dev = NULL;
    loom_dataset *test = NULL;
    loom_sequential *m = NULL;
    float *x = NULL, *probs = NULL;
    int rc = 1;
    if (loom_device_open(ctx, spec, &dev) || load_data(ctx, data, 0, 0, &test) ||
        loom_sequential_load(ctx, model, dev, NULL, &m))
        goto fail;
    if (image < 0 || image >= loom_dataset_count(test)) {
        fprintf(stderr, "loom predict: --image %ld is outside [0, %lld)\n", image,
                (long long)loom_dataset_count(test));
        goto done;
    }
    int64_t k = loom_sequential_outputs(m);
    x = malloc((size_t)loom_dataset_features(test) * sizeof *x);
    probs = malloc((size_t)k * sizeof *probs);
    int32_t label;
    int64_t idx = image;
    if (!x || !probs || loom_dataset_gather(test, &idx, 1, x, &label) || loom_sequential_predict(m, x, 1, probs))
        goto fail;
    int best = 0;
    for (int c = 1; c < k; c++)
        best = probs[c] > probs[best] ? c : best;
    printf("test image %ld: predicted %d (%s, p=%.3f), true label %d (%s)\n", image, best,
           k == 10 ? class_names[best] : "", (double)probs[best], label, k == 10 ? class_names[label] : "");
    for (int c = 0; c < k; c++)
        printf("  %d %-12s %.4f\n", c, k == 10 ? class_names[c] : "", (double)probs[c]);
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
    loom_ctx_destroy(ctx);
    return rc;
}
