/* loom train: the seed's Keras workflow (fit, then test accuracy and
 * samples/s) on any device. */
#include "cli.h"
#include "dist.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* One finished epoch, for --json's history. */
typedef struct epoch_record {
    int epoch;
    double loss, accuracy, val_loss, val_accuracy, seconds;
} epoch_record;

typedef struct progress {
    int tty;
    int quiet;
    epoch_record *hist;
    int nhist, cap;
    int64_t trained;            /* rows fit trains on (after the split) */
} progress;

static int on_progress(void *user, const loom_fit_stats *s)
{
    progress *p = user;
    p->trained = s->total;
    if (s->end_of_epoch && p->nhist < p->cap) {
        epoch_record *e = &p->hist[p->nhist++];
        e->epoch = s->epoch;
        e->loss = s->loss;
        e->accuracy = s->accuracy;
        e->val_loss = s->val_loss;
        e->val_accuracy = s->val_accuracy;
        e->seconds = s->seconds;
    }
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

/* "64,64" -> {64, 64}; the count, or -1. */
static int parse_hidden(const char *s, int64_t *h, int max)
{
    int n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v <= 0 || v > (1 << 20) || n == max || (*end && *end != ','))
            return -1;
        h[n++] = v;
        s = *end == ',' ? end + 1 : end;
        if (end[0] == ',' && !*s)
            return -1;
    }
    return n ? n : -1;
}

/* loom train --dash: starts loom-dash following the run's metrics when a
 * display is there, otherwise says why not. The binary is LOOM_DASH, else
 * the one beside this loom (the build tree keeps it in tools/dash beside
 * tools/loom, an install in the same bin folder), else loom-dash on PATH.
 * Started with an argument vector, never through a shell: the metrics
 * path is passed as it is, whatever characters it holds. */
static void start_dash(const char *metrics, int quiet)
{
    const char *display = getenv("DISPLAY"), *wayland = getenv("WAYLAND_DISPLAY");
    if ((!display || !*display) && (!wayland || !*wayland)) {
        fprintf(stderr, "loom train: --dash: no display (DISPLAY is not set); follow the run elsewhere with\n"
                        "  loom-dash --follow %s\n", metrics);
        return;
    }
    char exe[1024], bin[1100];
    const char *prog = getenv("LOOM_DASH");
    if (!prog || !*prog) {
        prog = "loom-dash";
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        exe[n > 0 ? n : 0] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(bin, sizeof bin, "%s/dash/loom-dash", exe);
            if (access(bin, X_OK) != 0)
                snprintf(bin, sizeof bin, "%s/loom-dash", exe);
            if (access(bin, X_OK) == 0)
                prog = bin;
        }
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    char *argv[] = {(char *)prog, "--follow", (char *)metrics, NULL};
    pid_t pid;
    /* posix_spawnp searches PATH only for a name without a slash */
    int err = posix_spawnp(&pid, prog, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (err)
        fprintf(stderr, "loom train: --dash: could not start %s: %s\n", prog, strerror(err));
    else if (!quiet)
        printf("dashboard     %s --follow %s\n", prog, metrics);
}

enum {
    O_DATA = CLI_OPT_BASE, O_HIDDEN, O_EPOCHS, O_BATCH, O_OPTIMIZER, O_DEVICE, O_SAVE, O_RESUME, O_CHECKPOINT,
    O_CHECKPOINT_EVERY, O_LIMIT, O_TEST_LIMIT, O_VSPLIT, O_DROPOUT, O_EARLY, O_JSON, O_METRICS, O_METRICS_EVERY,
    O_PROFILE, O_PROFILE_STEPS, O_DASH, O_LR, O_MOMENTUM, O_CLIP, O_EMA, O_SEED, O_SCALING, O_PRECISION,
    O_MODEL, O_SHIFT, O_FLIP, O_DISTRIBUTED, O_MPI_TIMEOUT, O_CHECK_EVERY, O_REPLICA_UPDATE, O_LR_SCHEDULE, O_WARMUP
};

static const struct option train_opts[] = {
    {"data", required_argument, 0, O_DATA},
    {"hidden", required_argument, 0, O_HIDDEN},
    {"epochs", required_argument, 0, O_EPOCHS},
    {"batch", required_argument, 0, O_BATCH},
    {"optimizer", required_argument, 0, O_OPTIMIZER},
    {"device", required_argument, 0, O_DEVICE},
    {"save", required_argument, 0, O_SAVE},
    {"resume", required_argument, 0, O_RESUME},
    {"checkpoint", required_argument, 0, O_CHECKPOINT},
    {"checkpoint-every", required_argument, 0, O_CHECKPOINT_EVERY},
    {"limit", required_argument, 0, O_LIMIT},
    {"test-limit", required_argument, 0, O_TEST_LIMIT},
    {"validation-split", required_argument, 0, O_VSPLIT},
    {"dropout", required_argument, 0, O_DROPOUT},
    {"early-stopping", required_argument, 0, O_EARLY},
    {"json", no_argument, 0, O_JSON},
    {"metrics", required_argument, 0, O_METRICS},
    {"metrics-every", required_argument, 0, O_METRICS_EVERY},
    {"profile", required_argument, 0, O_PROFILE},
    {"profile-steps", required_argument, 0, O_PROFILE_STEPS},
    {"dash", no_argument, 0, O_DASH},
    {"lr", required_argument, 0, O_LR},
    {"lr-schedule", required_argument, 0, O_LR_SCHEDULE},
    {"warmup", required_argument, 0, O_WARMUP},
    {"momentum", required_argument, 0, O_MOMENTUM},
    {"clip-norm", required_argument, 0, O_CLIP},
    {"ema", required_argument, 0, O_EMA},
    {"seed", required_argument, 0, O_SEED},
    {"scaling", required_argument, 0, O_SCALING},
    {"precision", required_argument, 0, O_PRECISION},
    {"model", required_argument, 0, O_MODEL},
    {"augment-shift", required_argument, 0, O_SHIFT},
    {"augment-flip", no_argument, 0, O_FLIP},
    {"distributed", required_argument, 0, O_DISTRIBUTED},
    {"mpi-timeout", required_argument, 0, O_MPI_TIMEOUT},
    {"check-every", required_argument, 0, O_CHECK_EVERY},
    {"replica-update", required_argument, 0, O_REPLICA_UPDATE},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

static const char *const optimizer_names[] = {"sgd", "adam", "adamw", NULL};
static const char *const scaling_names[] = {"unit", "standard", NULL};
static const char *const precision_names[] = {"f32", "f16", "bf16", NULL};
static const char *const distributed_names[] = {"none", "mpi", NULL};
static const char *const update_names[] = {"auto", "each", "broadcast", NULL};
static const loom_dtype precision_dtypes[] = {LOOM_F32, LOOM_F16, LOOM_BF16};

typedef struct train_args {
    const char *data, *device, *save, *resume, *ckpt, *metrics, *trace, *model;
    int64_t shift;
    int flip;
    int64_t hidden[16];
    int nhidden;
    int64_t epochs, batch, ckpt_every, limit, test_limit, patience, metrics_every, trace_steps, seed, warmup;
    int cosine;                /* --lr-schedule cosine */
    double vsplit, dropout, lr, momentum, clip, ema;
    int kind, scaling, json, dash, precision;
    int distributed, update;   /* --distributed: 1 = mpi; --replica-update */
    double mpi_timeout;
    int64_t check_every;
    char devices[LOOM_MAX_REPLICAS][32]; /* --device A,B,C */
    int ndevices;
} train_args;

/* --device A,B,C: the list (one device is a list of one); -1 when bad. */
static int parse_devices(const char *list, train_args *t)
{
    t->ndevices = 0;
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0 || len >= sizeof t->devices[0] || t->ndevices == LOOM_MAX_REPLICAS)
            return -1;
        memcpy(t->devices[t->ndevices], p, len);
        t->devices[t->ndevices++][len] = 0;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

/* Parses the command line; -1 to go on, or the exit status to stop with. */
static int parse(int argc, char **argv, train_args *t, cli_args *a)
{
    memset(t, 0, sizeof *t);
    t->data = LOOM_DEFAULT_DATA_DIR;
    t->device = "auto";
    t->hidden[0] = t->hidden[1] = 64;
    t->nhidden = 2;
    t->epochs = 5;
    t->batch = 32;
    t->kind = LOOM_OPT_ADAM;
    t->metrics_every = 50;
    t->trace_steps = 200;
    t->seed = 42;
    t->lr = -1;
    t->scaling = LOOM_SCALE_UNIT;
    t->mpi_timeout = 30;
    t->check_every = 100;
    *a = cli_args_init("train", argc, argv, train_opts);
    for (int c; (c = cli_next(a)) != -1;) {
        int bad = 0;
        switch (c) {
        case O_DATA: t->data = optarg; break;
        case O_HIDDEN:
            if ((t->nhidden = parse_hidden(optarg, t->hidden, 16)) < 0)
                return cli_usage_error("train", "--hidden: \"%s\" is not a list of 1 to 16 layer widths in [1, "
                                       "1048576] (e.g. 64,64)", optarg);
            break;
        case O_EPOCHS: bad = cli_int(a, 1, 100000, &t->epochs); break;
        case O_BATCH: bad = cli_int(a, 1, 1 << 20, &t->batch); break;
        case O_OPTIMIZER:
            if ((t->kind = cli_choice(a, optimizer_names)) < 0)
                return CLI_EXIT_USAGE;
            break;
        case O_DEVICE: t->device = optarg; break;
        case O_SAVE: t->save = optarg; break;
        case O_RESUME: t->resume = optarg; break;
        case O_CHECKPOINT: t->ckpt = optarg; break;
        case O_CHECKPOINT_EVERY: bad = cli_int(a, 1, INT64_MAX, &t->ckpt_every); break;
        case O_LIMIT: bad = cli_int(a, 0, INT64_MAX, &t->limit); break;
        case O_TEST_LIMIT: bad = cli_int(a, 0, INT64_MAX, &t->test_limit); break;
        case O_VSPLIT: bad = cli_double(a, 0, 0.99, &t->vsplit); break;
        case O_DROPOUT: bad = cli_double(a, 0, 0.99, &t->dropout); break;
        case O_EARLY: bad = cli_int(a, 0, 100000, &t->patience); break;
        case O_JSON: t->json = 1; break;
        case O_METRICS: t->metrics = optarg; break;
        case O_METRICS_EVERY: bad = cli_int(a, 1, INT64_MAX, &t->metrics_every); break;
        case O_PROFILE: t->trace = optarg; break;
        case O_PROFILE_STEPS: bad = cli_int(a, 0, 1000000000, &t->trace_steps); break;
        case O_DASH: t->dash = 1; break;
        case O_LR: bad = cli_double(a, 1e-12, 1e6, &t->lr); break;
        case O_LR_SCHEDULE:
            if ((t->cosine = cli_choice(a, cli_lr_schedules)) < 0)
                return CLI_EXIT_USAGE;
            break;
        case O_WARMUP: bad = cli_int(a, 0, INT64_MAX, &t->warmup); break;
        case O_MOMENTUM: bad = cli_double(a, 0, 1, &t->momentum); break;
        case O_CLIP: bad = cli_double(a, 0, 1e30, &t->clip); break;
        case O_EMA: bad = cli_double(a, 0, 0.999999, &t->ema); break;
        case O_SEED: bad = cli_int(a, 0, INT64_MAX, &t->seed); break;
        case O_SCALING:
            if ((t->scaling = cli_choice(a, scaling_names)) < 0)
                return CLI_EXIT_USAGE;
            break;
        case O_PRECISION:
            if ((t->precision = cli_choice(a, precision_names)) < 0)
                return CLI_EXIT_USAGE;
            break;
        case O_MODEL: t->model = optarg; break;
        case O_SHIFT: bad = cli_int(a, 0, 8, &t->shift); break;
        case O_FLIP: t->flip = 1; break;
        case O_DISTRIBUTED:
            if ((t->distributed = cli_choice(a, distributed_names)) < 0)
                return CLI_EXIT_USAGE;
            break;
        case O_MPI_TIMEOUT: bad = cli_double(a, 1, 86400, &t->mpi_timeout); break;
        case O_CHECK_EVERY: bad = cli_int(a, 0, INT64_MAX, &t->check_every); break;
        case O_REPLICA_UPDATE:
            if ((t->update = cli_choice(a, update_names)) < 0)
                return CLI_EXIT_USAGE;
            break;
        default: return a->rc;
        }
        if (bad)
            return bad;
    }

    if (cli_given(a, "warmup") && !t->cosine)
        return cli_usage_error("train", "--warmup %lld (steps) goes with --lr-schedule cosine", (long long)t->warmup);
    if (t->patience > 0 && !(t->vsplit > 0))
        return cli_usage_error("train", "--early-stopping %lld watches the validation loss: it needs "
                               "--validation-split F", (long long)t->patience);
    if (t->ckpt_every > 0 && !t->ckpt)
        return cli_usage_error("train", "--checkpoint-every %lld needs --checkpoint FILE", (long long)t->ckpt_every);
    if (t->ckpt && !t->ckpt_every)
        return cli_usage_error("train", "--checkpoint %s needs --checkpoint-every N (steps)", t->ckpt);
    if (t->lr < 0)
        t->lr = t->kind == LOOM_OPT_SGD ? 0.01 : 0.001;
    if (parse_devices(t->device, t))
        return cli_usage_error("train", "--device \"%s\": give one device or a list of 1 to %d (e.g. "
                               "vulkan:0,opencl:0,cpu), each shorter than 32 characters", t->device,
                               LOOM_MAX_REPLICAS);
    if (t->distributed && t->dash)
        return cli_usage_error("train", "--dash does not go with --distributed (rank 0 writes --metrics; follow "
                               "that with loom-dash --follow)");
    if (t->model && (cli_given(a, "hidden") || cli_given(a, "dropout")))
        return cli_usage_error("train", "--model %s describes the layers: --hidden and --dropout do not go with it",
                               t->model);
    return -1;
}

/* The model description file of --model: its text (malloc'd), or NULL
 * after saying why. */
static char *read_description(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "loom train: --model %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *text = malloc(cap);
    for (size_t got; text && (got = fread(text + n, 1, cap - n - 1, f)) > 0;) {
        n += got;
        if (n + 1 == cap) {
            char *bigger = cap < ((size_t)1 << 24) ? realloc(text, cap * 2) : NULL;
            if (!bigger) {
                free(text);
                text = NULL;
                break;
            }
            text = bigger;
            cap *= 2;
        }
    }
    int err = ferror(f);
    fclose(f);
    if (!text || err) {
        fprintf(stderr, "loom train: --model %s: %s\n", path, text ? "read error" : "too large or out of memory");
        free(text);
        return NULL;
    }
    text[n] = 0;
    return text;
}

/* A fresh model of the command line's architecture. */
static loom_status build_model(loom_ctx *ctx, const train_args *t, int64_t features, int classes,
                               loom_sequential **out)
{
    loom_sequential *m = NULL;
    if (t->model) {
        /* the layers of a description file; they must fit the data */
        char *text = read_description(t->model);
        loom_status s = text ? loom_sequential_from_json(ctx, text, t->model, &m)
                             : loom_fail(ctx, LOOM_E_IO, "--model %s cannot be read", t->model);
        free(text);
        if (s == LOOM_OK && loom_sequential_inputs(m) != features)
            s = loom_fail(ctx, LOOM_E_SHAPE, "--model %s takes %lld inputs, the data has %lld features per image",
                          t->model, (long long)loom_sequential_inputs(m), (long long)features);
        if (s == LOOM_OK && loom_sequential_outputs(m) < classes)
            s = loom_fail(ctx, LOOM_E_SHAPE, "--model %s gives %lld outputs, the data has %d classes", t->model,
                          (long long)loom_sequential_outputs(m), classes);
        if (s != LOOM_OK) {
            loom_sequential_destroy(m);
            m = NULL;
        }
        *out = m;
        return s;
    }
    loom_status s = loom_sequential_create(ctx, features, &m);
    for (int i = 0; i < t->nhidden && s == LOOM_OK; i++) {
        s = loom_sequential_add_dense(m, t->hidden[i], LOOM_ACT_RELU, LOOM_INIT_GLOROT_UNIFORM);
        if (s == LOOM_OK && t->dropout > 0)
            s = loom_sequential_add_dropout(m, (float)t->dropout);
    }
    if (s == LOOM_OK)
        s = loom_sequential_add_dense(m, classes, LOOM_ACT_SOFTMAX, LOOM_INIT_GLOROT_UNIFORM);
    if (s != LOOM_OK) {
        loom_sequential_destroy(m);
        m = NULL;
    }
    *out = m;
    return s;
}

/* A resumed run keeps the file's model, optimizer and batch: an option
 * that asks for another is an error, not silently ignored. 0, or the exit
 * status. */
static int check_resume(loom_ctx *ctx, const train_args *t, const cli_args *a, loom_sequential *m, int64_t features,
                        int classes)
{
    if (cli_given(a, "hidden") || cli_given(a, "dropout") || cli_given(a, "model")) {
        loom_sequential *want = NULL;
        if (build_model(ctx, t, features, classes, &want) != LOOM_OK) {
            fprintf(stderr, "loom train: %s\n", loom_last_error(ctx));
            return 1;
        }
        int same = !strcmp(loom_sequential_describe(want), loom_sequential_describe(m));
        if (!same)
            fprintf(stderr, "loom train: --hidden/--dropout/--model ask for %s, but %s holds %s: a resumed run keeps the "
                            "checkpoint's model\n", loom_sequential_describe(want), t->resume,
                    loom_sequential_describe(m));
        loom_sequential_destroy(want);
        if (!same)
            return CLI_EXIT_USAGE;
    }
    loom_model_config c = loom_sequential_config(m);
    const loom_optimizer *o = &c.optimizer;
    struct {
        const char *name;
        int differs;
        double want, have;
    } checks[] = {
        {"optimizer", o->kind != (loom_optimizer_kind)t->kind, t->kind, o->kind},
        {"lr", o->lr != (float)t->lr, t->lr, o->lr},
        {"batch", c.batch != t->batch, (double)t->batch, (double)c.batch},
        {"momentum", o->momentum != (float)t->momentum, t->momentum, o->momentum},
        {"clip-norm", o->clip_norm != (float)t->clip, t->clip, o->clip_norm},
        {"ema", o->ema_decay != (float)t->ema, t->ema, o->ema_decay},
        {"lr-schedule", (o->schedule == LOOM_LR_COSINE) != (t->cosine == 1), t->cosine, o->schedule == LOOM_LR_COSINE},
        {"seed", c.seed != (uint64_t)t->seed, (double)t->seed, (double)c.seed},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
        if (cli_given(a, checks[i].name) && checks[i].differs) {
            fprintf(stderr, "loom train: --%s %g differs from %s's %g: a resumed run keeps the checkpoint's "
                            "optimizer, batch and seed\n", checks[i].name, checks[i].want, t->resume,
                    checks[i].have);
            return CLI_EXIT_USAGE;
        }
    return 0;
}

/* What the file is and how far it got: "checkpoint"/"model", its epoch. */
static loom_status file_progress(loom_ctx *ctx, const char *path, int *checkpoint, int64_t *epoch)
{
    loom_tensor_file *f = NULL;
    LOOM_TRY(loom_safetensors_open(ctx, path, &f));
    const char *kind = loom_safetensors_metadata(f, "loom.kind");
    const char *e = loom_safetensors_metadata(f, "loom.epoch");
    *checkpoint = kind && !strcmp(kind, "checkpoint");
    *epoch = *checkpoint && e ? atoll(e) : 0; /* validated by the load */
    loom_safetensors_close(f);
    return LOOM_OK;
}

static void add_history(cJSON *o, const progress *pr)
{
    cJSON *h = cJSON_AddArrayToObject(o, "history");
    cJSON *es = cJSON_AddArrayToObject(o, "epoch_seconds");
    for (int i = 0; i < pr->nhist; i++) {
        const epoch_record *e = &pr->hist[i];
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "epoch", e->epoch);
        cJSON_AddItemToObject(r, "loss", cli_json_number(e->loss));
        cJSON_AddItemToObject(r, "accuracy", cli_json_number(e->accuracy));
        cJSON_AddItemToObject(r, "val_loss", cli_json_number(e->val_loss));
        cJSON_AddItemToObject(r, "val_accuracy", cli_json_number(e->val_accuracy));
        cJSON_AddItemToObject(r, "seconds", cli_json_number(e->seconds));
        cJSON_AddItemToArray(h, r);
        cJSON_AddItemToArray(es, cli_json_number(e->seconds));
    }
}

static const char *replica_spec(int i, loom_device *dev, loom_device *const *more)
{
    return loom_device_get(i ? more[i - 1] : dev)->spec;
}

static void add_replicas(cJSON *o, const loom_replica_stats *rs, loom_device *dev, loom_device *const *more,
                         int nmore, const loom_collective *coll)
{
    cJSON *r = cJSON_AddObjectToObject(o, "replicas");
    cJSON *devs = cJSON_AddArrayToObject(r, "devices");
    for (int i = 0; i <= nmore; i++) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "device", replica_spec(i, dev, more));
        cJSON_AddNumberToObject(d, "rows", (double)rs->rows[i]);
        cJSON_AddItemToObject(d, "rows_per_s", cli_json_number(rs->rows_per_s[i]));
        cJSON_AddItemToArray(devs, d);
    }
    cJSON_AddNumberToObject(r, "processes", coll ? coll->size : 1);
    cJSON_AddStringToObject(r, "update", update_names[rs->update]);
    cJSON_AddNumberToObject(r, "grad_bytes_per_step", (double)rs->grad_bytes);
    cJSON_AddNumberToObject(r, "buckets", rs->buckets);
    cJSON_AddNumberToObject(r, "steps", (double)rs->steps);
    double n = rs->steps > 0 ? (double)rs->steps : 1.0;
    cJSON_AddItemToObject(r, "compute_ms_per_step", cli_json_number(1e3 * rs->compute_s / n));
    cJSON_AddItemToObject(r, "reduce_ms_per_step", cli_json_number(1e3 * rs->reduce_s / n));
    cJSON_AddItemToObject(r, "allreduce_ms_per_step", cli_json_number(1e3 * rs->allreduce_s / n));
    cJSON_AddItemToObject(r, "update_ms_per_step", cli_json_number(1e3 * rs->update_s / n));
    cJSON_AddNumberToObject(r, "checks", (double)rs->checks);
    char h[24];
    snprintf(h, sizeof h, "%016llx", (unsigned long long)rs->hash);
    cJSON_AddStringToObject(r, "weights_hash", h);
}

static void print_replicas(const loom_replica_stats *rs, loom_device *dev, loom_device *const *more, int nmore,
                           const loom_collective *coll)
{
    printf("replicas     ");
    for (int i = 0; i <= nmore; i++)
        printf(" %s %lld rows%s", replica_spec(i, dev, more), (long long)rs->rows[i], i < nmore ? "," : "");
    if (coll)
        printf(" per process, %d processes", coll->size);
    double n = rs->steps > 0 ? (double)rs->steps : 1.0;
    printf("; update %s\n", update_names[rs->update]);
    printf("per step      %.2f ms computing, %.2f ms reducing on the host, %.2f ms in allreduce, %.2f ms updating; "
           "%lld gradient bytes in %d buckets\n", 1e3 * rs->compute_s / n, 1e3 * rs->reduce_s / n,
           1e3 * rs->allreduce_s / n, 1e3 * rs->update_s / n, (long long)rs->grad_bytes, rs->buckets);
    printf("weights       identical on every replica%s (%lld checks, hash %016llx)\n", coll ? " and process" : "",
           (long long)rs->checks, (unsigned long long)rs->hash);
}

int cmd_train(int argc, char **argv)
{
    train_args t;
    cli_args a;
    int rc = parse(argc, argv, &t, &a);
    if (rc >= 0)
        return rc;
    char dash_metrics[256];
    if (t.dash && !t.metrics) {
        snprintf(dash_metrics, sizeof dash_metrics, "/tmp/loom-train-%ld.jsonl", (long)getpid());
        t.metrics = dash_metrics;
    }
    loom_ctx *ctx = cli_ctx();
    if (!ctx)
        return 1;
    cli_dist *dist = NULL;
    if (t.distributed && cli_dist_start(ctx, t.mpi_timeout, &dist))
        return cli_finish(ctx, "train", 1);
    const loom_collective *coll = cli_dist_collective(dist);
    int rank = coll ? coll->rank : 0;
    if (rank != 0) {
        /* rank 0 logs, writes the model, the metrics and the trace */
        t.save = NULL;
        t.metrics = NULL;
        t.trace = NULL;
    }
    loom_device *dev = NULL, *more[LOOM_MAX_REPLICAS];
    int nmore = 0;
    loom_dataset *train = NULL, *test = NULL;
    loom_sequential *m = NULL;
    loom_eval_result ev, ev_ema;
    memset(&ev, 0, sizeof ev);
    memset(&ev_ema, 0, sizeof ev_ema);
    loom_metrics *metrics = NULL;
    loom_trace *trace = NULL;
    progress pr = {isatty(1) && !t.json && rank == 0, t.json || rank != 0, NULL, 0, 0, 0};
    rc = 1;
    int lead = rank == 0;
    for (int i = 1; i < t.ndevices; i++) {
        if (loom_device_open(ctx, t.devices[i], &more[nmore]))
            goto fail;
        nmore++;
    }
    if (loom_device_open(ctx, t.devices[0], &dev) || cli_load_data(ctx, t.data, 1, t.limit, &train) ||
        cli_load_data(ctx, t.data, 0, t.test_limit, &test))
        goto fail;
    int64_t features = loom_dataset_features(train);
    int classes = loom_dataset_classes(train);
    loom_scaling how = (loom_scaling)t.scaling;
    float stats[2] = {0, 255};
    int recorded = 0;           /* stats from the resumed model's record */
    int checkpoint = 0;
    int64_t done_epochs = 0;
    if (t.resume) {
        if (file_progress(ctx, t.resume, &checkpoint, &done_epochs) ||
            loom_sequential_load(ctx, t.resume, dev, NULL, &m))
            goto fail;
        if ((rc = check_resume(ctx, &t, &a, m, features, classes)) != 0)
            goto done;
        rc = 1;
        loom_model_config c = loom_sequential_config(m);
        t.batch = c.batch;
        t.kind = c.optimizer.kind;
        t.ema = c.optimizer.ema_decay;
        if (done_epochs >= t.epochs) {
            fprintf(stderr, "loom train: %s has finished %lld epochs already; ask for more with --epochs N\n",
                    t.resume, (long long)done_epochs);
            rc = CLI_EXIT_USAGE;
            goto done;
        }
        if (!checkpoint && !t.json)
            printf("%s is a model file, not a checkpoint: its weights train on with a fresh optimizer from epoch 1\n",
                   t.resume);
        loom_scaling fh;
        float fs[2];
        if (loom_sequential_get_preprocess(m, &fh, fs) == LOOM_OK) {
            if (cli_given(&a, "scaling") && fh != how) {
                fprintf(stderr, "loom train: --scaling %s differs from %s's %s\n", scaling_names[how], t.resume,
                        scaling_names[fh]);
                rc = CLI_EXIT_USAGE;
                goto done;
            }
            how = fh;
            stats[0] = fs[0];
            stats[1] = fs[1];
            recorded = 1;
        }
    }
    /* Standardisation takes its statistics from the training rows; the
     * test rows (and the model file) get the same. */
    if (loom_dataset_scale(train, how, recorded ? stats : NULL, stats) ||
        loom_dataset_scale(test, how, stats, NULL))
        goto fail;
    if (!t.resume) {
        loom_model_config mc = loom_model_config_default();
        mc.optimizer = loom_optimizer_default((loom_optimizer_kind)t.kind);
        mc.optimizer.lr = (float)t.lr;
        mc.optimizer.momentum = (float)t.momentum;
        mc.optimizer.clip_norm = (float)t.clip;
        mc.optimizer.ema_decay = (float)t.ema;
        cli_set_lr_schedule(&mc.optimizer, t.cosine == 1, t.warmup);
        mc.batch = t.batch;
        mc.seed = (uint64_t)t.seed;
        mc.precision = precision_dtypes[t.precision];
        mc.profile = t.trace || t.metrics || t.dash;
        if (build_model(ctx, &t, features, classes, &m) || loom_sequential_compile(m, dev, &mc))
            goto fail;
    }
    if (nmore > 0 || dist) {
        loom_replica_opts ro = loom_replica_opts_default();
        ro.check_every = t.check_every;
        ro.update = (loom_replica_update)t.update;
        ro.collective = coll;
        if (loom_sequential_replicate(m, more, nmore, &ro))
            goto fail;
    }
    const loom_device_info *di = loom_device_get(dev);
    char where[LOOM_MAX_REPLICAS * 34 + 64];
    snprintf(where, sizeof where, "%s", di->spec);
    for (int i = 0; i < nmore; i++)
        snprintf(where + strlen(where), sizeof where - strlen(where), ",%s", loom_device_get(more[i])->spec);
    if (coll)
        snprintf(where + strlen(where), sizeof where - strlen(where), " x %d MPI processes", coll->size);
    pr.cap = (int)t.epochs;
    pr.hist = calloc((size_t)pr.cap, sizeof *pr.hist);
    if (!pr.hist) {
        fprintf(stderr, "loom train: out of memory\n");
        goto done;
    }
    if (!t.json && lead)
        printf("training %s on %s (%s): %lld images, batch %lld%s, %lld epochs, %s, inputs %s\n",
               loom_sequential_describe(m), where, nmore ? "data parallel" : di->name,
               (long long)loom_dataset_count(train), (long long)t.batch, coll ? " per process" : "",
               (long long)t.epochs, optimizer_names[t.kind], how == LOOM_SCALE_UNIT ? "x/255" : "standardised");
    if (t.metrics && loom_metrics_open(ctx, t.metrics, dev, &metrics))
        goto fail;
    if (t.trace && loom_trace_create(ctx, &trace))
        goto fail;
    if (t.dash)
        start_dash(t.metrics, t.json);
    loom_fit_config fc = loom_fit_config_default();
    fc.epochs = (int)t.epochs;
    fc.metrics = metrics;
    fc.metrics_every = t.metrics_every;
    fc.trace = trace;
    fc.trace_steps = t.trace_steps;
    fc.validation_split = (float)t.vsplit;
    fc.progress = on_progress;
    fc.user = &pr;
    fc.progress_every = pr.tty ? 50 : 0;
    fc.early_stopping_patience = (int)t.patience;
    fc.checkpoint_every = t.ckpt_every;
    fc.checkpoint_path = t.ckpt;
    fc.augment_shift = (int)t.shift;
    fc.augment_flip = t.flip;
    loom_fit_stats last;
    memset(&last, 0, sizeof last);
    /* The whole fit, first epoch included, as the peers in
     * tools/bench_peers.sh time theirs. */
    struct timespec f0, f1;
    clock_gettime(CLOCK_MONOTONIC, &f0);
    if (loom_sequential_fit(m, train, &fc, &last))
        goto fail;
    clock_gettime(CLOCK_MONOTONIC, &f1);
    double fit_s = (double)(f1.tv_sec - f0.tv_sec) + (double)(f1.tv_nsec - f0.tv_nsec) * 1e-9;
    if (last.early_stopped && !t.json)
        printf("early stopping: val_loss did not improve for %lld epochs; stopped after epoch %d of %lld\n",
               (long long)t.patience, last.epoch, (long long)t.epochs);
    if (t.save && loom_sequential_save(m, t.save))
        goto fail;
    if (loom_sequential_evaluate(m, test, 0, &ev))
        goto fail;
    if (t.ema > 0 && loom_sequential_evaluate(m, test, 1, &ev_ema))
        goto fail;
    if (trace && loom_trace_write(trace, t.trace))
        goto fail;
    int64_t trained = pr.trained ? pr.trained : loom_dataset_count(train);
    double train_s = 0;
    for (int i = 0; i < pr.nhist; i++)
        train_s += pr.hist[i].seconds;
    loom_replica_stats rs;
    int have_rs = loom_sequential_replica_stats(m, &rs) == LOOM_OK;
    if (!lead) {
        /* the others stay quiet */
    } else if (t.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "device", di->spec);
        if (have_rs)
            add_replicas(o, &rs, dev, more, nmore, coll);
        cJSON_AddStringToObject(o, "device_name", di->name);
        cJSON_AddNumberToObject(o, "epochs", (double)t.epochs);
        cJSON_AddNumberToObject(o, "epochs_run", pr.nhist);
        cJSON_AddNumberToObject(o, "batch", (double)t.batch);
        cJSON_AddStringToObject(o, "optimizer", optimizer_names[t.kind]);
        cJSON_AddStringToObject(o, "scaling", scaling_names[how]);
        cJSON_AddNumberToObject(o, "scaling_mean", stats[0]);
        cJSON_AddNumberToObject(o, "scaling_std", stats[1]);
        cJSON_AddNumberToObject(o, "train_images", (double)trained);
        cJSON_AddNumberToObject(o, "validation_images", (double)(loom_dataset_count(train) - trained));
        cJSON_AddNumberToObject(o, "test_images", (double)ev.count);
        cJSON_AddItemToObject(o, "test_accuracy", cli_json_number(ev.accuracy));
        cJSON_AddItemToObject(o, "test_loss", cli_json_number(ev.loss));
        if (t.ema > 0) {
            cJSON_AddItemToObject(o, "test_accuracy_ema", cli_json_number(ev_ema.accuracy));
            cJSON_AddItemToObject(o, "test_loss_ema", cli_json_number(ev_ema.loss));
        }
        cJSON_AddItemToObject(o, "train_loss", cli_json_number(last.loss));
        cJSON_AddItemToObject(o, "train_accuracy", cli_json_number(last.accuracy));
        cJSON_AddItemToObject(o, "val_loss", cli_json_number(last.val_loss));
        cJSON_AddItemToObject(o, "val_accuracy", cli_json_number(last.val_accuracy));
        cJSON_AddItemToObject(o, "train_seconds", cli_json_number(train_s));
        cJSON_AddItemToObject(o, "samples_per_s", cli_json_number(last.samples_per_s));
        cJSON_AddItemToObject(o, "fit_seconds", cli_json_number(fit_s));
        cJSON_AddItemToObject(o, "fit_samples_per_s",
                              cli_json_number(fit_s > 0 ? (double)pr.nhist * (double)trained / fit_s : 0.0));
        cJSON_AddNumberToObject(o, "steps", (double)last.step);
        cJSON_AddBoolToObject(o, "early_stopped", last.early_stopped);
        cJSON_AddStringToObject(o, "precision", loom_dtype_name(loom_sequential_config(m).precision));
        if (last.loss_scale > 0) {
            cJSON_AddItemToObject(o, "loss_scale", cli_json_number(last.loss_scale));
            cJSON_AddItemToObject(o, "skipped_steps", cli_json_number((double)last.skipped_steps));
        }
        if (last.early_stopped)
            cJSON_AddNumberToObject(o, "stopped_epoch", last.epoch);
        if (t.save)
            cJSON_AddStringToObject(o, "saved", t.save);
        else
            cJSON_AddNullToObject(o, "saved");
        if (t.metrics)
            cJSON_AddStringToObject(o, "metrics", t.metrics);
        if (t.trace)
            cJSON_AddStringToObject(o, "trace", t.trace);
        add_history(o, &pr);
        if (cli_print_json(o))
            goto done;
    } else {
        if (trace)
            printf("trace         %s (the first %lld steps; open in ui.perfetto.dev)\n", t.trace,
                   (long long)t.trace_steps);
        if (metrics)
            printf("metrics       %s\n", t.metrics);
        printf("test accuracy %.4f  test loss %.4f  (%lld images)\n", ev.accuracy, ev.loss, (long long)ev.count);
        if (t.ema > 0)
            printf("EMA weights   test accuracy %.4f  test loss %.4f  (decay %g)\n", ev_ema.accuracy, ev_ema.loss,
                   t.ema);
        printf("throughput    %.0f samples/s training on %s (last epoch)\n", last.samples_per_s, where);
        if (have_rs)
            print_replicas(&rs, dev, more, nmore, coll);
        if (t.save)
            printf("model saved   %s\n", t.save);
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "loom train: %s\n", loom_last_error(ctx));
done:
    free(pr.hist);
    loom_metrics_close(metrics);
    loom_trace_destroy(trace);
    loom_eval_result_free(&ev);
    loom_eval_result_free(&ev_ema);
    loom_sequential_destroy(m);
    loom_dataset_destroy(train);
    loom_dataset_destroy(test);
    loom_device_close(dev);
    for (int i = 0; i < nmore; i++)
        loom_device_close(more[i]);
    cli_dist_stop(dist, rc != 0);
    return cli_finish(ctx, "train", rc);
}
