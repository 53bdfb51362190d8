/* loom optimize: a saved model made smaller or faster, then saved.
 *
 *   --prune S [--schedule poly|oneshot] [--scope layer|global]
 *             [--pattern 2:4] [--structured [--norm l1|l2]]
 *   --distill --student SPEC.json [--temperature T] [--alpha A]
 *   --half f16|bf16
 *
 * and the options they share (--model, --save, --device, --data, --epochs,
 * --limit, --test-limit, --json). The mode is found by a first scan of the
 * command line, so each mode's parser stands alone: --quantize is handed
 * to cmd_quantize.c (cmd_optimize_quantize). Every mode reports the test
 * accuracy and the file size before and after. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

enum {
    O_MODEL = CLI_OPT_BASE, O_SAVE, O_DEVICE, O_DATA, O_JSON, O_EPOCHS, O_LIMIT, O_TEST_LIMIT, O_SEED,
    O_PRUNE, O_STRUCTURED, O_PATTERN, O_SCHEDULE, O_SCOPE, O_NORM, O_FREQUENCY, O_END,
    O_DISTILL, O_STUDENT, O_TEMPERATURE, O_ALPHA, O_HALF, O_LR, O_LR_SCHEDULE, O_SHIFT, O_FLIP
};

static const struct option opts[] = {
    {"model", required_argument, 0, O_MODEL},
    {"save", required_argument, 0, O_SAVE},
    {"device", required_argument, 0, O_DEVICE},
    {"data", required_argument, 0, O_DATA},
    {"json", no_argument, 0, O_JSON},
    {"epochs", required_argument, 0, O_EPOCHS},
    {"limit", required_argument, 0, O_LIMIT},
    {"test-limit", required_argument, 0, O_TEST_LIMIT},
    {"seed", required_argument, 0, O_SEED},
    {"lr", required_argument, 0, O_LR},
    {"lr-schedule", required_argument, 0, O_LR_SCHEDULE},
    {"augment-shift", required_argument, 0, O_SHIFT},
    {"augment-flip", no_argument, 0, O_FLIP},
    {"prune", required_argument, 0, O_PRUNE},
    {"structured", no_argument, 0, O_STRUCTURED},
    {"pattern", required_argument, 0, O_PATTERN},
    {"schedule", required_argument, 0, O_SCHEDULE},
    {"scope", required_argument, 0, O_SCOPE},
    {"norm", required_argument, 0, O_NORM},
    {"frequency", required_argument, 0, O_FREQUENCY},
    {"end-fraction", required_argument, 0, O_END},
    {"distill", no_argument, 0, O_DISTILL},
    {"student", required_argument, 0, O_STUDENT},
    {"temperature", required_argument, 0, O_TEMPERATURE},
    {"alpha", required_argument, 0, O_ALPHA},
    {"half", required_argument, 0, O_HALF},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

typedef enum { MODE_NONE, MODE_PRUNE, MODE_DISTILL, MODE_HALF } opt_mode;

typedef struct optimize_args {
    opt_mode mode;
    const char *model, *save, *device, *data, *student;
    int json, structured, pattern, oneshot, norm, half;
    loom_prune_scope scope;
    int64_t epochs, limit, test_limit, seed, frequency, shift;
    int flip;                   /* fine-tuning's augmentation, as loom train's */
    double sparsity, temperature, alpha, end_fraction, lr;
    int seed_given, lr_given;
    int cosine;                 /* --lr-schedule cosine */
} optimize_args;

/* The first scan: which mode (each parser stands alone); --quantize is
 * another file's. */
static int find_mode(int argc, char **argv, opt_mode *mode)
{
    int found = 0;
    *mode = MODE_NONE;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        opt_mode m = !strncmp(a, "--prune", 7) && (!a[7] || a[7] == '=') ? MODE_PRUNE
                     : !strcmp(a, "--distill")                           ? MODE_DISTILL
                     : !strncmp(a, "--half", 6) && (!a[6] || a[6] == '=') ? MODE_HALF
                                                                          : MODE_NONE;
        if (!strncmp(a, "--quantize", 10))
            return cli_usage_error("optimize", "give one of --prune, --distill, --half, --quantize");
        if (m == MODE_NONE)
            continue;
        if (found && m != *mode)
            return cli_usage_error("optimize", "give one of --prune, --distill, --half");
        *mode = m;
        found = 1;
    }
    return 0;
}

static int parse(int argc, char **argv, optimize_args *o)
{
    memset(o, 0, sizeof *o);
    o->device = "auto";
    o->data = LOOM_DEFAULT_DATA_DIR;
    o->epochs = -1;
    o->temperature = 4.0;
    o->alpha = 0.9;
    o->norm = 1;
    o->frequency = 100;
    o->end_fraction = 0.7;
    o->scope = LOOM_PRUNE_LAYER;
    int rc = find_mode(argc, argv, &o->mode);
    if (rc)
        return rc;
    static const char *const half_words[] = {"f16", "bf16", NULL};
    static const char *const pattern_words[] = {"none", "2:4", NULL};
    static const char *const schedule_words[] = {"poly", "oneshot", NULL};
    static const char *const scope_words[] = {"layer", "global", NULL};
    static const char *const norm_words[] = {"l1", "l2", NULL};
    cli_args a = cli_args_init("optimize", argc, argv, opts);
    int k;
    for (int c; (c = cli_next(&a)) != -1;) {
        switch (c) {
        case O_MODEL: o->model = optarg; break;
        case O_SAVE: o->save = optarg; break;
        case O_DEVICE: o->device = optarg; break;
        case O_DATA: o->data = optarg; break;
        case O_JSON: o->json = 1; break;
        case O_STUDENT: o->student = optarg; break;
        case O_STRUCTURED: o->structured = 1; break;
        case O_DISTILL: break;
        case O_EPOCHS:
            if (cli_int(&a, 0, 1000, &o->epochs))
                return CLI_EXIT_USAGE;
            break;
        case O_LIMIT:
            if (cli_int(&a, 0, INT64_MAX, &o->limit))
                return CLI_EXIT_USAGE;
            break;
        case O_TEST_LIMIT:
            if (cli_int(&a, 0, INT64_MAX, &o->test_limit))
                return CLI_EXIT_USAGE;
            break;
        case O_SEED:
            if (cli_int(&a, 0, INT64_MAX, &o->seed))
                return CLI_EXIT_USAGE;
            o->seed_given = 1;
            break;
        case O_LR:
            if (cli_double(&a, 1e-9, 10, &o->lr))
                return CLI_EXIT_USAGE;
            o->lr_given = 1;
            break;
        case O_LR_SCHEDULE:
            if ((o->cosine = cli_choice(&a, cli_lr_schedules)) < 0)
                return CLI_EXIT_USAGE;
            break;
        case O_FREQUENCY:
            if (cli_int(&a, 1, INT64_MAX, &o->frequency))
                return CLI_EXIT_USAGE;
            break;
        case O_PRUNE:
            if (cli_double(&a, 0, 0.999, &o->sparsity))
                return CLI_EXIT_USAGE;
            break;
        case O_END:
            if (cli_double(&a, 0, 1, &o->end_fraction))
                return CLI_EXIT_USAGE;
            break;
        case O_SHIFT:
            if (cli_int(&a, 0, 8, &o->shift))
                return CLI_EXIT_USAGE;
            break;
        case O_FLIP: o->flip = 1; break;
        case O_TEMPERATURE:
            if (cli_double(&a, 1e-3, 1000, &o->temperature))
                return CLI_EXIT_USAGE;
            break;
        case O_ALPHA:
            if (cli_double(&a, 0, 1, &o->alpha))
                return CLI_EXIT_USAGE;
            break;
        case O_HALF:
            if ((k = cli_choice(&a, half_words)) < 0)
                return CLI_EXIT_USAGE;
            o->half = k == 0 ? LOOM_F16 : LOOM_BF16;
            break;
        case O_PATTERN:
            if ((k = cli_choice(&a, pattern_words)) < 0)
                return CLI_EXIT_USAGE;
            o->pattern = k;
            break;
        case O_SCHEDULE:
            if ((k = cli_choice(&a, schedule_words)) < 0)
                return CLI_EXIT_USAGE;
            o->oneshot = k == 1;
            break;
        case O_SCOPE:
            if ((k = cli_choice(&a, scope_words)) < 0)
                return CLI_EXIT_USAGE;
            o->scope = k ? LOOM_PRUNE_GLOBAL : LOOM_PRUNE_LAYER;
            break;
        case O_NORM:
            if ((k = cli_choice(&a, norm_words)) < 0)
                return CLI_EXIT_USAGE;
            o->norm = k + 1;
            break;
        default: return a.rc ? a.rc : -1; /* -1: --help was printed */
        }
    }
    /* after the options: an unknown one is said first */
    if (o->mode == MODE_NONE)
        return cli_usage_error("optimize", "give one of --prune S, --distill --student SPEC.json, --half f16|bf16, "
                               "--quantize int8");
    if (!o->model || !o->save)
        return cli_usage_error("optimize", "--model FILE and --save OUT are required");
    if (o->mode != MODE_PRUNE && (o->structured || o->pattern || cli_given(&a, "schedule") || cli_given(&a, "scope") ||
                                  cli_given(&a, "norm") || cli_given(&a, "frequency")))
        return cli_usage_error("optimize", "--structured, --pattern, --schedule, --scope, --norm and --frequency go "
                               "with --prune");
    if (o->mode != MODE_DISTILL && (o->student || cli_given(&a, "temperature") || cli_given(&a, "alpha")))
        return cli_usage_error("optimize", "--student, --temperature and --alpha go with --distill");
    if (o->mode == MODE_DISTILL && !o->student)
        return cli_usage_error("optimize", "--distill needs --student SPEC.json");
    if (o->mode == MODE_PRUNE && o->structured && o->pattern)
        return cli_usage_error("optimize", "--structured and --pattern 2:4 exclude each other");
    if (o->mode == MODE_HALF && o->epochs > 0)
        return cli_usage_error("optimize", "--half trains nothing (no --epochs)");
    if (o->mode == MODE_HALF && (o->shift || o->flip))
        return cli_usage_error("optimize", "--half trains nothing (no --augment-shift, --augment-flip)");
    if (o->epochs < 0)
        o->epochs = o->mode == MODE_HALF ? 0 : o->mode == MODE_DISTILL ? 5 : 2;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double file_bytes(const char *path)
{
    struct stat st;
    return stat(path, &st) ? NAN : (double)st.st_size;
}

/* The whole file as a string (malloc'd), NULL after saying why. */
static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "loom optimize: cannot open %s\n", path);
        return NULL;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            size_t nc = cap ? cap * 2 : 8192;
            char *nb = nc < (64u << 20) ? realloc(buf, nc) : NULL;
            if (!nb) {
                fprintf(stderr, "loom optimize: %s is too large\n", path);
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
            cap = nc;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    buf[n] = 0;
    return buf;
}

static int quiet_progress(void *user, const loom_fit_stats *s)
{
    const optimize_args *o = user;
    if (s->end_of_epoch && !o->json) {
        printf("  epoch %d/%d  loss %.4f  acc %.4f  %.0f samples/s  %.1f s\n", s->epoch, s->epochs, s->loss,
               s->accuracy, s->samples_per_s, s->seconds);
        fflush(stdout);
    }
    return 0;
}

/* The model's test accuracy; NAN after an error (in loom_last_error). */
static double accuracy(loom_sequential *m, loom_dataset *test)
{
    loom_eval_result r;
    memset(&r, 0, sizeof r);
    if (loom_sequential_evaluate(m, test, 0, &r))
        return NAN;
    double acc = r.accuracy;
    loom_eval_result_free(&r);
    return acc;
}

/* A data set scaled as m records (x/255 for files that record none). */
static loom_status load_scaled(loom_ctx *ctx, loom_sequential *m, const char *dir, int train, int64_t limit,
                               loom_dataset **out)
{
    loom_scaling how = LOOM_SCALE_UNIT;
    float stats[2] = {0.0f, 255.0f};
    if (loom_sequential_get_preprocess(m, &how, stats) != LOOM_OK)
        LOOM_TRY(loom_sequential_set_preprocess(m, how, stats));
    LOOM_TRY(cli_load_data(ctx, dir, train, limit, out));
    return loom_dataset_scale(*out, how, stats, NULL);
}

static loom_status fine_tune(loom_sequential *m, loom_dataset *train, optimize_args *o)
{
    if (o->epochs <= 0)
        return LOOM_OK;
    loom_fit_config fc = loom_fit_config_default();
    fc.epochs = (int)o->epochs;
    fc.augment_shift = (int)o->shift;
    fc.augment_flip = o->flip;
    fc.progress = quiet_progress;
    fc.user = o;
    return loom_sequential_fit(m, train, &fc, NULL);
}

int cmd_optimize(int argc, char **argv)
{
    /* --quantize alone: the int8 mode's own parser (cmd_quantize.c) */
    int quant = 0, other = 0;
    for (int i = 1; i < argc; i++) {
        quant |= !strncmp(argv[i], "--quantize", 10);
        other |= !strncmp(argv[i], "--prune", 7) || !strcmp(argv[i], "--distill") || !strncmp(argv[i], "--half", 6);
    }
    if (quant && !other)
        return cmd_optimize_quantize(argc, argv);
    optimize_args o;
    int prc = parse(argc, argv, &o);
    if (prc)
        return prc < 0 ? 0 : prc;
    loom_ctx *ctx = cli_ctx();
    if (!ctx)
        return 1;
    loom_device *dev = NULL;
    loom_sequential *m = NULL, *out = NULL, *check = NULL;
    loom_dataset *train = NULL, *test = NULL;
    int rc = 1;
    double t0 = now_s(), acc_before = NAN, acc_after = NAN, sparsity = NAN, bytes_before = file_bytes(o.model);
    int64_t weights = 0;
    const char *mode_name = o.mode == MODE_PRUNE ? (o.structured ? "prune_structured" : o.pattern ? "prune_2:4"
                                                                                                  : "prune")
                            : o.mode == MODE_DISTILL ? "distill"
                                                     : "half";
    loom_model_config mc;
    if (loom_device_open(ctx, o.device, &dev) || loom_model_config_read(ctx, o.model, &mc))
        goto fail;
    if (o.lr_given)
        mc.optimizer.lr = (float)o.lr;
    /* the fine-tuning's own schedule, not the one the model trained under */
    cli_set_lr_schedule(&mc.optimizer, o.cosine == 1, 0);
    if (o.seed_given)
        mc.seed = (uint64_t)o.seed;
    if (loom_sequential_load(ctx, o.model, dev, &mc, &m))
        goto fail;
    if (load_scaled(ctx, m, o.data, 0, o.test_limit, &test))
        goto fail;
    if (o.epochs > 0 && load_scaled(ctx, m, o.data, 1, o.limit, &train))
        goto fail;
    acc_before = accuracy(m, test);
    if (isnan(acc_before))
        goto fail;
    loom_sequential *result = m;
    if (o.mode == MODE_PRUNE && o.structured) {
        if (loom_sequential_prune_structured(m, (float)o.sparsity, o.norm, &out))
            goto fail;
        if (!o.json)
            printf("structured: %s -> %s\n", loom_sequential_describe(m), loom_sequential_describe(out));
        if (fine_tune(out, train, &o))
            goto fail;
        result = out;
    } else if (o.mode == MODE_PRUNE) {
        /* the polynomial schedule over the first end_fraction of the
         * fine-tuning; the rest trains at the final sparsity */
        int64_t steps = 0;
        if (train) {
            int64_t b = loom_sequential_config(m).batch;
            steps = (loom_dataset_count(train) + b - 1) / b * o.epochs;
        }
        loom_prune_schedule sch = loom_prune_schedule_default();
        sch.final_sparsity = (float)o.sparsity;
        sch.scope = o.scope;
        sch.pattern = o.pattern ? LOOM_PRUNE_2_4 : LOOM_PRUNE_UNSTRUCTURED;
        sch.frequency = o.frequency;
        sch.end_step = o.oneshot || o.pattern ? 0 : (int64_t)(o.end_fraction * (double)steps);
        if (steps == 0) {
            /* no fine-tuning: prune once */
            if (loom_sequential_prune(m, sch.final_sparsity, sch.scope, sch.pattern))
                goto fail;
        } else if (loom_sequential_set_pruning(m, &sch) || fine_tune(m, train, &o) ||
                   loom_sequential_set_pruning(m, NULL)) {
            goto fail;
        }
    } else if (o.mode == MODE_DISTILL) {
        char *json = read_text(o.student);
        if (!json)
            goto done;
        loom_status s = loom_sequential_from_json(ctx, json, o.student, &out);
        free(json);
        loom_model_config sc = mc;
        if (!o.seed_given)
            sc.seed = loom_model_config_default().seed;
        loom_scaling how;
        float stats[2];
        if (s || loom_sequential_compile(out, dev, &sc) || loom_sequential_get_preprocess(m, &how, stats) ||
            loom_sequential_set_preprocess(out, how, stats) ||
            loom_sequential_set_teacher(out, m, (float)o.temperature, (float)o.alpha) || fine_tune(out, train, &o))
            goto fail;
        result = out;
    }
    if (o.mode == MODE_PRUNE && loom_sequential_sparsity(result, &sparsity, &weights))
        goto fail;
    if ((o.mode == MODE_HALF ? loom_sequential_save_as(result, o.save, (loom_dtype)o.half)
                             : loom_sequential_save(result, o.save)))
        goto fail;
    /* what was written, read back: the numbers below are the file's */
    if (loom_sequential_load(ctx, o.save, dev, NULL, &check))
        goto fail;
    acc_after = accuracy(check, test);
    if (isnan(acc_after))
        goto fail;
    double bytes_after = file_bytes(o.save), secs = now_s() - t0;
    if (o.json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "mode", mode_name);
        cJSON_AddStringToObject(j, "model", o.model);
        cJSON_AddStringToObject(j, "save", o.save);
        cJSON_AddStringToObject(j, "device", loom_device_get(dev)->spec);
        cJSON_AddNumberToObject(j, "epochs", (double)o.epochs);
        cJSON_AddNumberToObject(j, "test_images", (double)loom_dataset_count(test));
        cJSON_AddItemToObject(j, "test_accuracy_before", cli_json_number(acc_before));
        cJSON_AddItemToObject(j, "test_accuracy_after", cli_json_number(acc_after));
        cJSON_AddItemToObject(j, "file_bytes_before", cli_json_number(bytes_before));
        cJSON_AddItemToObject(j, "file_bytes_after", cli_json_number(bytes_after));
        if (o.mode == MODE_PRUNE) {
            cJSON_AddItemToObject(j, "sparsity", cli_json_number(sparsity));
            cJSON_AddNumberToObject(j, "kernel_weights", (double)weights);
        }
        if (o.mode == MODE_DISTILL) {
            cJSON_AddStringToObject(j, "student", o.student);
            cJSON_AddNumberToObject(j, "temperature", o.temperature);
            cJSON_AddNumberToObject(j, "alpha", o.alpha);
        }
        cJSON_AddStringToObject(j, "architecture", loom_sequential_describe(check));
        cJSON_AddItemToObject(j, "seconds", cli_json_number(secs));
        if (cli_print_json(j))
            goto done;
    } else {
        printf("%s on %s: test accuracy %.4f -> %.4f (%lld images), file %.0f -> %.0f bytes", mode_name,
               loom_device_get(dev)->spec, acc_before, acc_after, (long long)loom_dataset_count(test), bytes_before,
               bytes_after);
        if (o.mode == MODE_PRUNE)
            printf(", sparsity %.4f of %lld kernel weights", sparsity, (long long)weights);
        printf(", %.1f s\nsaved %s\n", secs, o.save);
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "loom optimize: %s\n", loom_last_error(ctx));
done:
    loom_sequential_destroy(check);
    loom_sequential_destroy(out);
    loom_sequential_destroy(m);
    loom_dataset_destroy(train);
    loom_dataset_destroy(test);
    loom_device_close(dev);
    return cli_finish(ctx, "optimize", rc);
}
