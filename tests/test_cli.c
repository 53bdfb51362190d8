/* The loom command line as a user meets it: options refused with the
 * command's usage, JSON that parses whatever the paths hold, --resume's
 * checks, early stopping and the EMA said out loud, loom-dash started
 * without a shell, predict's checks and its image inputs, the exit status
 * after validation errors. The CLI (env LOOM_CLI) runs on small synthetic
 * IDX data sets written here, on the CPU device. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "../tools/loom/cli.h"

extern char **environ;

static char tmpdir[64];

static void rm_tree(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        remove(path);
        return;
    }
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            rm_tree(p);
        }
    closedir(d);
    rmdir(path);
}

static void setup(void)
{
    strcpy(tmpdir, "/tmp/loom_cli_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
    rm_tree(tmpdir);
}

static const char *tpath(const char *name)
{
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    size_t size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc(size + 1);
    ck_assert_uint_eq(fread(b, 1, size, f), size);
    b[size] = 0;
    fclose(f);
    if (n)
        *n = size;
    return b;
}

static void write_file(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* ---- running the CLI ---------------------------------------------------------- */

static char *out, *err;         /* the last run's stdout and stderr */

/* Runs `loom ARGS...` (NULL-terminated) with the extra environment
 * entries env ("NAME=value", NULL-terminated, may be NULL) in front;
 * returns the exit status (128 + signal when killed). */
static int run_env(const char *const *env, ...)
{
    const char *cli = getenv("LOOM_CLI");
    ck_assert_msg(cli != NULL, "LOOM_CLI is not set");
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)cli;
    va_list ap;
    va_start(ap, env);
    for (const char *s; (s = va_arg(ap, const char *)) && argc < 63;)
        argv[argc++] = (char *)s;
    va_end(ap);
    argv[argc] = NULL;
    char *envp[512];
    int ne = 0;
    for (int i = 0; env && env[i] && ne < 256; i++)
        envp[ne++] = (char *)env[i];
    for (char **e = environ; *e && ne < 511; e++)
        envp[ne++] = *e;
    envp[ne] = NULL;
    char op[600], ep[600];
    snprintf(op, sizeof op, "%s/.stdout", tmpdir);
    snprintf(ep, sizeof ep, "%s/.stderr", tmpdir);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, op, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, ep, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pid_t pid;
    ck_assert_int_eq(posix_spawn(&pid, cli, &fa, NULL, argv, envp), 0);
    posix_spawn_file_actions_destroy(&fa);
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    free(out);
    free(err);
    out = slurp(op, NULL);
    err = slurp(ep, NULL);
    ck_assert(out && err);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#define run(...) run_env(NULL, __VA_ARGS__, (const char *)NULL)

#define expect(rc, want)                                                                                    \
    ck_assert_msg((rc) == (want), "exit status %d, expected %d\nstdout: %.2000s\nstderr: %.2000s", (rc), (want), \
                  out, err)
#define expect_in(text, what) ck_assert_msg(strstr((text), (what)), "\"%s\" not in:\n%.3000s", (what), (text))

/* stdout as one JSON document (anything else fails the test). */
static cJSON *json_out(void)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(out, &end, 0);
    ck_assert_msg(j != NULL, "stdout is not JSON: %.2000s", out);
    while (end && (*end == '\n' || *end == ' '))
        end++;
    ck_assert_msg(end && !*end, "stdout holds more than one JSON document: %.2000s", out);
    return j;
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    ck_assert_msg(cJSON_IsNumber(v), "\"%s\" is not a number", key);
    return v->valuedouble;
}

static const char *str(const cJSON *o, const char *key)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
    ck_assert_msg(s != NULL, "\"%s\" is not a string", key);
    return s;
}

/* ---- synthetic data sets ---------------------------------------------------- */

static void write_idx(const char *path, int ndim, const uint32_t *dims, const unsigned char *data, size_t n)
{
    size_t size = 4 + 4 * (size_t)ndim + n;
    unsigned char *b = malloc(size);
    b[0] = 0, b[1] = 0, b[2] = 8, b[3] = (unsigned char)ndim;
    for (int i = 0; i < ndim; i++)
        for (int k = 0; k < 4; k++)
            b[4 + 4 * i + k] = (unsigned char)(dims[i] >> (24 - 8 * k));
    memcpy(b + 4 + 4 * ndim, data, n);
    write_file(path, b, size);
    free(b);
}

/* Image i of a set whose class c lights a band of rows, with noise; a
 * fifth of the labels are noise too, so that a model can overfit. */
static void make_set(const char *dir, const char *prefix, uint32_t n, uint32_t side, int classes)
{
    unsigned char *px = malloc((size_t)n * side * side), *lb = malloc(n);
    uint32_t s = 12345u + n;
    for (uint32_t i = 0; i < n; i++) {
        int c = (int)(i % (uint32_t)classes);
        /* the first image of each class keeps its label: every class is
         * present, as the IDX reader requires */
        int noisy = i >= (uint32_t)classes && i % 5 == 4;
        lb[i] = (unsigned char)(noisy ? (i * 7 / 5) % (uint32_t)classes : (uint32_t)c);
        for (uint32_t y = 0; y < side; y++)
            for (uint32_t x = 0; x < side; x++) {
                s = s * 1103515245u + 12345u;
                int v = (int)(s >> 25);
                if (y * (uint32_t)classes / side == (uint32_t)c)
                    v += 120;
                px[((size_t)i * side + y) * side + x] = (unsigned char)(v > 255 ? 255 : v);
            }
    }
    char p[600];
    uint32_t di[3] = {n, side, side}, dl[1] = {n};
    snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte", dir, prefix);
    write_idx(p, 3, di, px, (size_t)n * side * side);
    snprintf(p, sizeof p, "%s/%s-labels-idx1-ubyte", dir, prefix);
    write_idx(p, 1, dl, lb, n);
    free(px);
    free(lb);
}

/* tmpdir/data: 300 training and 100 test images of 28x28, 10 classes. */
static const char *make_data(void)
{
    static char d[600];
    snprintf(d, sizeof d, "%s/data", tmpdir);
    mkdir(d, 0700);
    make_set(d, "train", 300, 28, 10);
    make_set(d, "t10k", 100, 28, 10);
    return d;
}

/* A small model trained on make_data() and saved to path. */
static void train_model(const char *data, const char *path)
{
    int rc = run("train", "--device", "cpu", "--data", data, "--epochs", "2", "--hidden", "16", "--save", path);
    expect(rc, 0);
}

/* ---- options ------------------------------------------------------------------ */

START_TEST(options_refused)
{
    static const char *const cmds[] = {"train", "eval", "predict", "plan", "forward", "devices", "tune", "optimize"};
    char usage[64];
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        int rc = run(cmds[i], "--bogus");
        expect(rc, 2);
        expect_in(err, "unknown option --bogus");
        snprintf(usage, sizeof usage, "usage: loom %s ", cmds[i]);
        expect_in(err, usage);
        ck_assert_str_eq(out, "");
        rc = run(cmds[i], "--help");
        expect(rc, 0);
        expect_in(out, usage);
        rc = run(cmds[i], "stray");
        expect(rc, 2);
        expect_in(err, "unexpected argument \"stray\"");
    }
    const char *data = make_data();
    /* a bad value names its option, whatever it is */
    int rc = run("train", "--data", data, "--epochs", "abc");
    expect(rc, 2);
    expect_in(err, "--epochs: \"abc\" is not a whole number");
    expect_in(err, "usage: loom train ");
    rc = run("train", "--data", data, "--epochs");
    expect(rc, 2);
    expect_in(err, "option --epochs needs a value");
    rc = run("train", "--data", data, "--batch", "0");
    expect(rc, 2);
    expect_in(err, "--batch: \"0\" is not a whole number in [1,");
    rc = run("train", "--data", data, "--lr", "fast");
    expect(rc, 2);
    expect_in(err, "--lr: \"fast\" is not a number");
    rc = run("train", "--data", data, "--validation-split", "1.5");
    expect(rc, 2);
    expect_in(err, "--validation-split");
    rc = run("train", "--data", data, "--hidden", "64,,3");
    expect(rc, 2);
    expect_in(err, "--hidden: \"64,,3\"");
    rc = run("train", "--data", data, "--optimizer", "lion");
    expect(rc, 2);
    expect_in(err, "--optimizer: \"lion\" is not one of sgd, adam, adamw");
    rc = run("train", "--data", data, "--lr-schedule", "linear");
    expect(rc, 2);
    expect_in(err, "--lr-schedule: \"linear\" is not one of constant, cosine");
    rc = run("train", "--data", data, "--warmup", "100");
    expect(rc, 2);
    expect_in(err, "--warmup 100 (steps) goes with --lr-schedule cosine");
    rc = run("optimize", "--model", "m.safetensors", "--prune", "0.5", "--lr-schedule", "step", "--save", "o");
    expect(rc, 2);
    expect_in(err, "--lr-schedule: \"step\" is not one of constant, cosine");
    rc = run("optimize", "--model", "m.safetensors", "--half", "f16", "--augment-flip", "--save", "o");
    expect(rc, 2);
    expect_in(err, "--half trains nothing (no --augment-shift, --augment-flip)");
    rc = run("optimize", "--model", "m.safetensors", "--distill", "--student", "s.json", "--augment-shift", "9",
             "--save", "o");
    expect(rc, 2);
    expect_in(err, "--augment-shift");
    rc = run("train", "--data", data, "--json=yes");
    expect(rc, 2);
    expect_in(err, "option --json takes no value");
    /* options that would be silently ignored are errors */
    rc = run("train", "--data", data, "--early-stopping", "3");
    expect(rc, 2);
    expect_in(err, "--early-stopping 3 watches the validation loss: it needs --validation-split");
    rc = run("train", "--data", data, "--checkpoint-every", "10");
    expect(rc, 2);
    expect_in(err, "--checkpoint-every 10 needs --checkpoint FILE");
    rc = run("train", "--data", data, "--checkpoint", tpath("ck.st"));
    expect(rc, 2);
    expect_in(err, "needs --checkpoint-every N");
    rc = run("forward", "--batch", "-4");
    expect(rc, 2);
    expect_in(err, "--batch: \"-4\"");
    rc = run("plan", "--batch", "2x");
    expect(rc, 2);
    rc = run("tune", "--size", "8");
    expect(rc, 2);
    expect_in(err, "--size: \"8\" is not a whole number in [16, 8192]");
    rc = run("eval", "--data", data);
    expect(rc, 2);
    expect_in(err, "--model FILE is required");
}
END_TEST

/* tools/quickstart.sh --help prints its usage and starts nothing. */
START_TEST(quickstart_help)
{
    const char *root = getenv("LOOM_SOURCE_ROOT");
    ck_assert_ptr_nonnull(root);
    char script[600], cmd[1400];
    snprintf(script, sizeof script, "%s/tools/quickstart.sh", root);
    snprintf(cmd, sizeof cmd, "LOOM_BUILD_DIR=%s/nobuild bash %s --help > %s 2>&1", tmpdir, script, tpath("qs.out"));
    int st = system(cmd);
    ck_assert(WIFEXITED(st));
    ck_assert_int_eq(WEXITSTATUS(st), 0);
    char *text = slurp(tpath("qs.out"), NULL);
    expect_in(text, "usage: tools/quickstart.sh");
    ck_assert_msg(!strstr(text, "== devices =="), "quickstart ran: %s", text);
    struct stat sb;
    ck_assert_int_ne(stat(tpath("nobuild"), &sb), 0);
    free(text);
}
END_TEST

/* ---- JSON ----------------------------------------------------------------------- */

/* Every --json output is one JSON document, with a model path holding a
 * quote and a backslash; train's counts the rows it trained on and keeps
 * the history of every epoch. */
START_TEST(json_outputs)
{
    const char *data = make_data();
    char model[600];
    snprintf(model, sizeof model, "%s/we\"ird\\name.st", tmpdir);
    int rc = run("train", "--device", "cpu", "--data", data, "--limit", "200", "--validation-split", "0.1",
                 "--epochs", "3", "--hidden", "16", "--save", model, "--json");
    expect(rc, 0);
    cJSON *j = json_out();
    ck_assert_int_eq((int)num(j, "train_images"), 180);
    ck_assert_int_eq((int)num(j, "validation_images"), 20);
    ck_assert_int_eq((int)num(j, "test_images"), 100);
    ck_assert_str_eq(str(j, "saved"), model);
    ck_assert_str_eq(str(j, "scaling"), "unit");
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "early_stopped")));
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "history");
    ck_assert_int_eq(cJSON_GetArraySize(h), 3);
    for (int e = 0; e < 3; e++) {
        const cJSON *r = cJSON_GetArrayItem(h, e);
        ck_assert_int_eq((int)num(r, "epoch"), e + 1);
        double vl = num(r, "val_loss"), va = num(r, "val_accuracy"), l = num(r, "loss");
        ck_assert(vl > 0 && isfinite(vl) && l > 0 && va >= 0 && va <= 1 && num(r, "seconds") > 0);
    }
    /* the last epoch's figures are the summary's */
    ck_assert_double_eq(num(cJSON_GetArrayItem(h, 2), "val_loss"), num(j, "val_loss"));
    ck_assert_int_eq((int)num(j, "steps"), 3 * 6);
    cJSON_Delete(j);
    rc = run("eval", "--device", "cpu", "--data", data, "--model", model, "--json");
    expect(rc, 0);
    j = json_out();
    ck_assert_str_eq(str(j, "model"), model);
    ck_assert_int_eq((int)num(j, "test_images"), 100);
    const cJSON *cm = cJSON_GetObjectItemCaseSensitive(j, "confusion");
    ck_assert_int_eq(cJSON_GetArraySize(cm), 10);
    double total = 0;
    for (int r = 0; r < 10; r++)
        for (int c = 0; c < 10; c++)
            total += cJSON_GetArrayItem(cJSON_GetArrayItem(cm, r), c)->valuedouble;
    ck_assert_double_eq(total, 100);
    cJSON_Delete(j);
    rc = run("predict", "--device", "cpu", "--data", data, "--model", model, "--image", "7", "--json");
    expect(rc, 0);
    j = json_out();
    ck_assert_str_eq(str(j, "model"), model);
    const cJSON *p = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "predictions"), 0);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(p, "probabilities")), 10);
    ck_assert_int_eq((int)num(p, "label"), 7 % 10);
    cJSON_Delete(j);
    rc = run("forward", "--device", "cpu", "--batch", "8", "--runs", "2", "--json");
    expect(rc, 0);
    j = json_out();
    ck_assert_int_eq((int)num(j, "batch"), 8);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "probs0")), 10);
    cJSON_Delete(j);
    rc = run("plan", "--batch", "8", "--json");
    expect(rc, 0);
    j = json_out();
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "live_bytes")), (int)num(j, "steps"));
    cJSON_Delete(j);
    rc = run("devices", "--json");
    expect(rc, 0);
    j = json_out();
    ck_assert(cJSON_IsArray(j) && cJSON_GetArraySize(j) >= 1);
    ck_assert_str_eq(str(cJSON_GetArrayItem(j, 0), "spec"), "cpu");
    cJSON_Delete(j);
}
END_TEST

/* The model records its inputs' scaling: eval and a resumed run apply the
 * training set's standardisation, not x/255. */
START_TEST(scaling_recorded)
{
    const char *data = make_data();
    char model[600], ck[600];
    snprintf(model, sizeof model, "%s/std.st", tmpdir);
    snprintf(ck, sizeof ck, "%s/std-ck.st", tmpdir);
    int rc = run("train", "--device", "cpu", "--data", data, "--epochs", "1", "--hidden", "16", "--scaling",
                 "standard", "--save", model, "--checkpoint", ck, "--checkpoint-every", "10", "--json");
    expect(rc, 0);
    cJSON *j = json_out();
    ck_assert_str_eq(str(j, "scaling"), "standard");
    double acc = num(j, "test_accuracy"), loss = num(j, "test_loss"), mean = num(j, "scaling_mean");
    double sd = num(j, "scaling_std");
    ck_assert(mean > 0 && sd > 0 && sd != 255);
    cJSON_Delete(j);
    rc = run("eval", "--device", "cpu", "--data", data, "--model", model, "--json");
    expect(rc, 0);
    j = json_out();
    ck_assert_double_eq(num(j, "test_accuracy"), acc);
    ck_assert_double_eq_tol(num(j, "test_loss"), loss, 1e-9);
    cJSON_Delete(j);
    rc = run("train", "--device", "cpu", "--data", data, "--epochs", "2", "--resume", ck, "--json");
    expect(rc, 0);
    j = json_out();
    ck_assert_str_eq(str(j, "scaling"), "standard");
    ck_assert_double_eq(num(j, "scaling_mean"), mean);
    ck_assert_double_eq(num(j, "scaling_std"), sd);
    cJSON_Delete(j);
    rc = run("train", "--device", "cpu", "--data", data, "--epochs", "2", "--resume", ck, "--scaling", "unit");
    expect(rc, 2);
    expect_in(err, "--scaling unit differs from");
}
END_TEST

/* ---- early stopping and the EMA --------------------------------------------- */

START_TEST(early_stopping_and_ema)
{
    const char *data = make_data();
    int rc = run("train", "--device", "cpu", "--data", data, "--epochs", "40", "--validation-split", "0.3",
                 "--early-stopping", "1", "--lr", "0.02", "--hidden", "64", "--json");
    expect(rc, 0);
    cJSON *j = json_out();
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "early_stopped")));
    int stopped = (int)num(j, "stopped_epoch");
    ck_assert_int_lt(stopped, 40);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "history")), stopped);
    ck_assert_int_eq((int)num(j, "epochs_run"), stopped);
    cJSON_Delete(j);
    rc = run("train", "--device", "cpu", "--data", data, "--epochs", "40", "--validation-split", "0.3",
             "--early-stopping", "1", "--lr", "0.02", "--hidden", "64");
    expect(rc, 0);
    char line[160];
    snprintf(line, sizeof line, "early stopping: val_loss did not improve for 1 epochs; stopped after epoch %d of 40",
             stopped);
    expect_in(out, line);
    rc = run("train", "--device", "cpu", "--data", data, "--epochs", "2", "--hidden", "16", "--ema", "0.9");
    expect(rc, 0);
    expect_in(out, "EMA weights   test accuracy ");
    rc = run("train", "--device", "cpu", "--data", data, "--epochs", "2", "--hidden", "16", "--ema", "0.9", "--json");
    expect(rc, 0);
    j = json_out();
    double ea = num(j, "test_accuracy_ema");
    ck_assert(ea >= 0 && ea <= 1 && num(j, "test_loss_ema") > 0);
    cJSON_Delete(j);
}
END_TEST

/* ---- --resume ------------------------------------------------------------------ */

/* Sets a metadata record of a safetensors file (value NULL: removes it) or
 * drops a tensor. */
static void edit_file(const char *src, const char *dst, const char *key, const char *value, const char *drop)
{
    size_t size;
    unsigned char *b = (unsigned char *)slurp(src, &size);
    ck_assert_ptr_nonnull(b);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | b[i];
    char *h = malloc(hl + 1);
    memcpy(h, b + 8, hl);
    h[hl] = 0;
    cJSON *root = cJSON_Parse(h);
    ck_assert_ptr_nonnull(root);
    cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
    if (key) {
        cJSON_DeleteItemFromObjectCaseSensitive(meta, key);
        if (value)
            cJSON_AddStringToObject(meta, key, value);
    }
    if (drop) {
        ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(root, drop));
        cJSON_DeleteItemFromObjectCaseSensitive(root, drop);
    }
    char *nh = cJSON_PrintUnformatted(root);
    size_t nl = strlen(nh);
    unsigned char *nb = malloc(8 + nl + (size - 8 - hl));
    for (int i = 0; i < 8; i++)
        nb[i] = (unsigned char)((uint64_t)nl >> (8 * i));
    memcpy(nb + 8, nh, nl);
    memcpy(nb + 8 + nl, b + 8 + hl, size - 8 - hl);
    write_file(dst, nb, 8 + nl + (size - 8 - hl));
    free(nb);
    free(nh);
    cJSON_Delete(root);
    free(h);
    free(b);
}

START_TEST(resume_checked)
{
    const char *data = make_data();
    const char *ck = tpath("ck.st"), *bad = tpath("bad.st");
    /* 300 rows in batches of 32: 10 steps an epoch, a checkpoint at each end */
    int rc = run("train", "--device", "cpu", "--data", data, "--epochs", "1", "--hidden", "16", "--checkpoint", ck,
                 "--checkpoint-every", "10");
    expect(rc, 0);
    rc = run("train", "--device", "cpu", "--data", data, "--epochs", "2", "--resume", ck, "--json");
    expect(rc, 0);
    cJSON *j = json_out();
    ck_assert_int_eq((int)num(j, "steps"), 20);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "history")), 1);
    ck_assert_int_eq((int)num(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "history"), 0), "epoch"), 2);
    cJSON_Delete(j);
    /* a negative step (the loss became NaN), a negative epoch (it ran 6
     * epochs), a position before the shuffle order */
    edit_file(ck, bad, "loom.step", "-5", NULL);
    rc = run("train", "--device", "cpu", "--data", data, "--epochs", "2", "--resume", bad);
    expect(rc, 1);
    expect_in(err, "loom.step -5 is negative");
    edit_file(ck, bad, "loom.epoch", "-1", NULL);
    rc = run("train", "--device", "cpu", "--data", data, "--epochs", "2", "--resume", bad);
    expect(rc, 1);
    expect_in(err, "loom.epoch -1 is negative");
    edit_file(ck, bad, "loom.epoch_step", "-1000", NULL);
    rc = run("train", "--device", "cpu", "--data", data, "--epochs", "2", "--resume", bad);
    expect(rc, 1);
    expect_in(err, "loom.epoch_step -1000 is negative");
    /* the moments the optimizer needs */
    edit_file(ck, bad, NULL, NULL, "dense1/kernel/v");
    rc = run("train", "--device", "cpu", "--data", data, "--epochs", "2", "--resume", bad);
    expect(rc, 1);
    expect_in(err, "the checkpoint lacks optimizer moment \"dense1/kernel/v\"");
    /* options that ask for another model or optimizer */
    rc = run("train", "--device", "cpu", "--data", data, "--epochs", "2", "--resume", ck, "--hidden", "32");
    expect(rc, 2);
    expect_in(err, "a resumed run keeps the checkpoint's model");
    rc = run("train", "--device", "cpu", "--data", data, "--epochs", "2", "--resume", ck, "--hidden", "16");
    expect(rc, 0);
    rc = run("train", "--device", "cpu", "--data", data, "--epochs", "2", "--resume", ck, "--lr", "0.5");
    expect(rc, 2);
    expect_in(err, "--lr 0.5 differs from");
    rc = run("train", "--device", "cpu", "--data", data, "--epochs", "2", "--resume", ck, "--batch", "64");
    expect(rc, 2);
    expect_in(err, "--batch 64 differs from");
    rc = run("train", "--device", "cpu", "--data", data, "--epochs", "1", "--resume", ck);
    expect(rc, 2);
    expect_in(err, "has finished 1 epochs already");
}
END_TEST

/* ---- loom-dash ------------------------------------------------------------------ */

/* The metrics path reaches loom-dash as one argument; a $(...) in it is
 * never run by a shell. */
START_TEST(dash_without_shell)
{
    const char *data = make_data();
    char fake[600], args[600], marker[600], metrics[800], dash_env[700];
    snprintf(fake, sizeof fake, "%s/fake-dash", tmpdir);
    snprintf(args, sizeof args, "%s/dash-args", tmpdir);
    snprintf(marker, sizeof marker, "%s/marker", tmpdir);
    /* a shell would run touch in the folder it started in: this one */
    ck_assert_int_eq(chdir(tmpdir), 0);
    snprintf(metrics, sizeof metrics, "%s/m$(touch marker).jsonl", tmpdir);
    char script[2000];
    snprintf(script, sizeof script, "#!/bin/sh\nfor a in \"$@\"; do printf '%%s\\n' \"$a\"; done > %s.tmp\nmv %s.tmp %s\n",
             args, args, args);
    write_file(fake, script, strlen(script));
    ck_assert_int_eq(chmod(fake, 0700), 0);
    snprintf(dash_env, sizeof dash_env, "LOOM_DASH=%s", fake);
    const char *env[] = {"DISPLAY=:99", dash_env, NULL};
    int rc = run_env(env, "train", "--device", "cpu", "--data", data, "--epochs", "1", "--hidden", "8", "--metrics",
                     metrics, "--dash", (const char *)NULL);
    expect(rc, 0);
    /* the dashboard starts in the background: give it a few seconds */
    char *got = NULL;
    for (int i = 0; i < 100 && !(got = slurp(args, NULL)); i++) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    struct stat sb;
    ck_assert_msg(stat(marker, &sb) != 0, "the metrics path went through a shell: %s exists", marker);
    ck_assert_msg(got != NULL, "loom-dash (%s) was not started: %s", fake, err);
    char want[1000];
    snprintf(want, sizeof want, "--follow\n%s\n", metrics);
    ck_assert_str_eq(got, want);
    free(got);
    ck_assert_int_eq(stat(metrics, &sb), 0);
}
END_TEST

/* ---- predict ---------------------------------------------------------------------- */

static void write_pgm(const char *path, int w, int h, const unsigned char *px)
{
    char head[64];
    int n = snprintf(head, sizeof head, "P5\n%d %d\n255\n", w, h);
    unsigned char *b = malloc((size_t)n + (size_t)w * h);
    memcpy(b, head, (size_t)n);
    memcpy(b + n, px, (size_t)w * h);
    write_file(path, b, (size_t)n + (size_t)w * h);
    free(b);
}

static void be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8),
    p[3] = (unsigned char)v;
}

/* A grey 8-bit PNG, by hand: signature, IHDR, one zlib IDAT, IEND. */
static void write_png(const char *path, int w, int h, const unsigned char *px)
{
    size_t raw_n = (size_t)h * (size_t)(w + 1);
    unsigned char *raw = malloc(raw_n);
    for (int y = 0; y < h; y++) {
        raw[(size_t)y * (size_t)(w + 1)] = 0;
        memcpy(raw + (size_t)y * (size_t)(w + 1) + 1, px + (size_t)y * (size_t)w, (size_t)w);
    }
    uLongf zn = compressBound((uLong)raw_n);
    unsigned char *z = malloc(zn);
    ck_assert_int_eq(compress(z, &zn, raw, (uLong)raw_n), Z_OK);
    size_t size = 8 + 25 + 12 + zn + 12;
    unsigned char *b = malloc(size), *p = b;
    memcpy(p, "\x89PNG\r\n\x1a\n", 8);
    p += 8;
    unsigned char ihdr[13];
    be32(ihdr, (uint32_t)w);
    be32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8, ihdr[9] = 0, ihdr[10] = 0, ihdr[11] = 0, ihdr[12] = 0;
    const struct {
        const char *type;
        const unsigned char *data;
        size_t n;
    } chunks[3] = {{"IHDR", ihdr, 13}, {"IDAT", z, zn}, {"IEND", NULL, 0}};
    for (int c = 0; c < 3; c++) {
        be32(p, (uint32_t)chunks[c].n);
        memcpy(p + 4, chunks[c].type, 4);
        if (chunks[c].n)
            memcpy(p + 8, chunks[c].data, chunks[c].n);
        be32(p + 8 + chunks[c].n, (uint32_t)crc32(0, p + 4, (uInt)(4 + chunks[c].n)));
        p += 12 + chunks[c].n;
    }
    write_file(path, b, (size_t)(p - b));
    free(b);
    free(z);
    free(raw);
}

/* The pixels of test image i of make_data()'s set. */
static void test_pixels(const char *data, int i, unsigned char *px)
{
    char p[600];
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte", data);
    char *b = slurp(p, NULL);
    ck_assert_ptr_nonnull(b);
    memcpy(px, b + 16 + 784 * i, 784);
    free(b);
}

static const cJSON *prediction(const cJSON *j, int row)
{
    return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "predictions"), row);
}

START_TEST(predict_checked)
{
    const char *data = make_data();
    char model[600], wide[600], many[600];
    snprintf(model, sizeof model, "%s/m.st", tmpdir);
    snprintf(wide, sizeof wide, "%s/wide", tmpdir);
    snprintf(many, sizeof many, "%s/many", tmpdir);
    train_model(data, model);
    /* test images of another size than the model's inputs */
    mkdir(wide, 0700);
    make_set(wide, "t10k", 20, 20, 10);
    int rc = run("predict", "--device", "cpu", "--data", wide, "--model", model, "--image", "0");
    expect(rc, 1);
    expect_in(err, "the test images have 400 inputs each, the model");
    expect_in(err, "takes 784");
    /* a label the model has no class for */
    mkdir(many, 0700);
    make_set(many, "t10k", 24, 28, 12);
    rc = run("predict", "--device", "cpu", "--data", many, "--model", model, "--image", "11");
    expect(rc, 0);
    expect_in(out, "true label 11 (outside the model's 10 classes)");
    ck_assert(!strstr(out, "(null)"));
    rc = run("predict", "--device", "cpu", "--data", data, "--model", model, "--image", "100");
    expect(rc, 2);
    expect_in(err, "--image 100 is outside the test set's [0, 100)");
    /* an image file gives what the same test image gives */
    rc = run("predict", "--device", "cpu", "--data", data, "--model", model, "--image", "3", "--json");
    expect(rc, 0);
    cJSON *ref = json_out();
    unsigned char px[784];
    test_pixels(data, 3, px);
    char pgm[600], png[600];
    snprintf(pgm, sizeof pgm, "%s/three.pgm", tmpdir);
    snprintf(png, sizeof png, "%s/three.png", tmpdir);
    write_pgm(pgm, 28, 28, px);
    write_png(png, 28, 28, px);
    const char *files[2] = {pgm, png};
    for (int f = 0; f < 2; f++) {
        rc = run("predict", "--device", "cpu", "--model", model, "--input", files[f], "--json");
        expect(rc, 0);
        cJSON *j = json_out();
        ck_assert_str_eq(str(j, "input"), files[f]);
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(prediction(ref, 0), "probabilities");
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(prediction(j, 0), "probabilities");
        for (int c = 0; c < 10; c++)
            ck_assert_double_eq(cJSON_GetArrayItem(a, c)->valuedouble, cJSON_GetArrayItem(b, c)->valuedouble);
        cJSON_Delete(j);
    }
    rc = run("predict", "--device", "cpu", "--model", model, "--input", pgm);
    expect(rc, 0);
    expect_in(out, "row 0: predicted ");
    /* raw float32 inputs: two rows of raw pixel values */
    float raw[2 * 784];
    for (int i = 0; i < 784; i++)
        raw[i] = raw[784 + i] = (float)px[i];
    write_file(tpath("two.f32"), raw, sizeof raw);
    rc = run("predict", "--device", "cpu", "--model", model, "--input", tpath("two.f32"), "--json");
    expect(rc, 0);
    cJSON *j = json_out();
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "predictions")), 2);
    ck_assert_double_eq(num(prediction(j, 1), "probability"), num(prediction(ref, 0), "probability"));
    cJSON_Delete(j);
    cJSON_Delete(ref);
    /* inputs that do not fit the model */
    write_pgm(tpath("small.pgm"), 10, 10, px);
    rc = run("predict", "--device", "cpu", "--model", model, "--input", tpath("small.pgm"));
    expect(rc, 1);
    expect_in(err, "is a 10x10 image (100 pixels); the model takes 784 inputs");
    write_file(tpath("odd.f32"), raw, 784 * 4 + 8);
    rc = run("predict", "--device", "cpu", "--model", model, "--input", tpath("odd.f32"));
    expect(rc, 1);
    expect_in(err, "is neither an image nor raw float32 inputs");
    rc = run("predict", "--device", "cpu", "--model", model, "--input", tpath("absent.png"));
    expect(rc, 1);
    expect_in(err, "No such file");
}
END_TEST

/* ---- the exit status after validation errors ------------------------------------ */

/* cli.c's cli_finish wants the command table of main.c. */
const char *cli_help(const char *cmd)
{
    (void)cmd;
    return "(test)";
}

static void quiet_log(void *u, loom_log_level l, const char *m)
{
    (void)u, (void)l, (void)m;
}

/* A custom kernel whose push constants overrun the pipeline layout's: the
 * validation layer reports it when the pipeline is created. */
static const char *overrun_glsl =
    "#version 450\n"
    "layout(local_size_x = 64) in;\n"
    "layout(set = 0, binding = 0) readonly buffer A { float a[]; };\n"
    "layout(set = 0, binding = 1) writeonly buffer Y { float y[]; };\n"
    "layout(push_constant) uniform Counts { uint n[64]; } pc;\n"
    "void main() { uint i = gl_GlobalInvocationID.x; if (i < pc.n[0]) y[i] = a[i] + float(pc.n[63]); }\n";

START_TEST(validation_errors_exit)
{
    /* a clean context passes the status through */
    loom_ctx *ctx = tu_ctx();
    ck_assert_int_eq(cli_finish(ctx, "test", 0), 0);
    ctx = tu_ctx();
    ck_assert_int_eq(cli_finish(ctx, "test", 1), 1);
    loom_ctx_opts o;
    loom_ctx_opts_default(&o);
    o.validation = 1;
    o.log = quiet_log;
    ck_assert_int_eq(loom_ctx_create(&o, &ctx), LOOM_OK);
    loom_device *dev = NULL;
    if (loom_device_open(ctx, "vulkan:0", &dev) != LOOM_OK) {
        fprintf(stderr, "cli: no Vulkan device, the validation exit status is not tested\n");
        loom_ctx_destroy(ctx);
        return;
    }
    loom_state *st;
    loom_graph *g;
    ck_assert_int_eq(loom_state_create(dev, &st), LOOM_OK);
    ck_assert_int_eq(loom_graph_create(ctx, &g), LOOM_OK);
    int64_t xs[1] = {64};
    float x[64] = {0};
    loom_tensor in[1] = {loom_constant(g, "x", LOOM_F32, 1, xs, x)};
    uint32_t groups[3] = {1, 1, 1};
    loom_output(g, loom_custom_op(g, "overrun", overrun_glsl, 1, in, LOOM_F32, 1, xs, groups), "y");
    loom_program *p = NULL;
    loom_compile(g, dev, st, NULL, &p); /* compiled, never run */
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_state_destroy(st);
    loom_device_close(dev);
    if (loom_validation_errors(ctx) == 0) {
        fprintf(stderr, "cli: no validation layer reported the overrun, the exit status is not tested\n");
        loom_ctx_destroy(ctx);
        return;
    }
    fflush(stderr);
    int saved = dup(2);
    int fd = open(tpath("stderr"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    close(fd);
    int rc = cli_finish(ctx, "test", 0);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ck_assert_int_eq(rc, CLI_EXIT_VALIDATION);
    char *text = slurp(tpath("stderr"), NULL);
    expect_in(text, "loom test: the Vulkan validation layer reported 1 error");
    expect_in(text, "exit status 4");
    free(text);
}
END_TEST

/* A tiny character model of "abcd abcd ...", trained until it knows the
 * cycle, saved for loom generate. */
static void cycle_model(const char *path)
{
    loom_ctx *ctx = tu_ctx();
    loom_device *dev = tu_open(ctx, "cpu");
    loom_sequential *m;
    ck_assert_int_eq(loom_sequential_create(ctx, 8, &m), LOOM_OK);
    const char *layers[] = {
        "{\"type\": \"embedding\", \"vocab\": 5, \"dim\": 16, \"tokens\": [32, 97, 98, 99, 100]}",
        "{\"type\": \"position\"}",
        "{\"type\": \"transformer_decoder\", \"heads\": 2, \"ffn\": 32}",
        "{\"type\": \"layer_norm\"}",
        "{\"type\": \"dense\", \"units\": 5}",
    };
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++)
        ck_assert_msg(loom_sequential_add_json(m, layers[i]) == LOOM_OK, "%s", loom_last_error(ctx));
    loom_model_config c = loom_model_config_default();
    c.batch = 10;
    c.optimizer.lr = 0.01f;
    ck_assert_int_eq(loom_sequential_compile(m, dev, &c), LOOM_OK);
    float x[40 * 8];
    int32_t y[40 * 8];
    for (int w = 0; w < 40; w++)
        for (int j = 0; j < 8; j++) {
            x[w * 8 + j] = (float)((w + j) % 5);
            y[w * 8 + j] = (w + j + 1) % 5;
        }
    loom_dataset *ds;
    ck_assert_int_eq(loom_dataset_create(ctx, 40, 8, x, 8, y, &ds), LOOM_OK);
    loom_fit_config fc = loom_fit_config_default();
    fc.epochs = 30;
    ck_assert_int_eq(loom_sequential_fit(m, ds, &fc, NULL), LOOM_OK);
    ck_assert_int_eq(loom_sequential_save(m, path), LOOM_OK);
    loom_dataset_destroy(ds);
    loom_sequential_destroy(m);
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
}

START_TEST(generate_text)
{
    const char *model = tpath("cycle.safetensors");
    cycle_model(model);
    /* the most likely continuation is the cycle, past the window too */
    int rc = run("generate", "--model", model, "--device", "cpu", "--prompt", "ab", "--length", "20",
                 "--temperature", "0", "--json");
    expect(rc, 0);
    cJSON *j = json_out();
    ck_assert_str_eq(str(j, "text"), "abcd abcd abcd abcd ab");
    ck_assert_int_eq((int)num(j, "generated"), 20);
    cJSON_Delete(j);
    /* top-k 1 at any temperature is the same; sampling repeats with its seed */
    rc = run("generate", "--model", model, "--device", "cpu", "--prompt", "ab", "--length", "20", "--top-k", "1",
             "--temperature", "2");
    expect(rc, 0);
    ck_assert_str_eq(out, "abcd abcd abcd abcd ab\n");
    rc = run("generate", "--model", model, "--device", "cpu", "--length", "30", "--seed", "7", "--temperature", "5");
    expect(rc, 0);
    char first[64];
    snprintf(first, sizeof first, "%s", out);
    ck_assert_uint_eq(strlen(first), 31);
    for (int i = 0; i < 30; i++)
        ck_assert_msg(strchr(" abcd", first[i]) != NULL, "byte %d of \"%s\" is not a token", i, first);
    rc = run("generate", "--model", model, "--device", "cpu", "--length", "30", "--seed", "7", "--temperature", "5");
    expect(rc, 0);
    ck_assert_str_eq(out, first);
    /* refused: a byte the model does not know, no model, a model of classes */
    rc = run("generate", "--model", model, "--device", "cpu", "--prompt", "abz");
    expect(rc, 1);
    expect_in(err, "the prompt's byte 0x7a at index 2 is not one of the model's 5 tokens");
    rc = run("generate", "--prompt", "ab");
    expect(rc, 2);
    expect_in(err, "--model FILE is required");
    rc = run("generate", "--model", model, "--top-k", "300");
    expect(rc, 2);
}
END_TEST

/* loom train --model FILE trains the description's layers (a CNN here,
 * the repository's examples/models/cnn.json); eval and predict rebuild it
 * from the model file alone. A description that does not fit the data,
 * or goes with --hidden, is refused. */
START_TEST(model_description)
{
    const char *data = make_data(), *root = getenv("LOOM_SOURCE_ROOT");
    ck_assert_ptr_nonnull(root);
    char desc[600], model[600];
    snprintf(desc, sizeof desc, "%s/examples/models/cnn.json", root);
    snprintf(model, sizeof model, "%s/cnn.st", tmpdir);
    int rc = run("train", "--device", "cpu", "--data", data, "--model", desc, "--epochs", "1", "--batch", "50",
                 "--augment-shift", "2", "--augment-flip", "--save", model, "--json");
    expect(rc, 0);
    cJSON *j = json_out();
    ck_assert_int_eq((int)num(j, "steps"), 6);
    ck_assert(num(j, "test_accuracy") >= 0 && num(j, "test_accuracy") <= 1);
    cJSON_Delete(j);
    rc = run("eval", "--device", "cpu", "--data", data, "--model", model, "--json");
    expect(rc, 0);
    j = json_out();
    ck_assert_int_eq((int)num(j, "test_images"), 100);
    cJSON_Delete(j);
    rc = run("predict", "--device", "cpu", "--data", data, "--model", model, "--image", "3", "--json");
    expect(rc, 0);
    j = json_out();
    const cJSON *p = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "predictions"), 0);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(p, "probabilities")), 10);
    cJSON_Delete(j);
    /* images of 14 x 14 do not fit a model of 28 x 28 */
    char small[600], bad[600];
    snprintf(small, sizeof small, "%s/small", tmpdir);
    mkdir(small, 0700);
    make_set(small, "train", 60, 14, 10);
    make_set(small, "t10k", 20, 14, 10);
    rc = run("train", "--device", "cpu", "--data", small, "--model", desc, "--epochs", "1");
    expect(rc, 1);
    expect_in(err, "takes 784 inputs, the data has 196");
    /* a description that is not one names the file and the field */
    snprintf(bad, sizeof bad, "%s/bad.json", tmpdir);
    const char *text = "{\"input\": [1, 28, 28], \"layers\": [{\"type\": \"conv2d\", \"filters\": 4}]}";
    write_file(bad, text, strlen(text));
    rc = run("train", "--device", "cpu", "--data", data, "--model", bad);
    expect(rc, 1);
    expect_in(err, "bad.json");
    expect_in(err, "\"kernel\"");
    rc = run("train", "--device", "cpu", "--data", data, "--model", desc, "--hidden", "16");
    expect(rc, 2);
    expect_in(err, "--hidden and --dropout do not go with it");
}
END_TEST

/* loom optimize --quantize int8 end to end: the report, the file, and
 * loom eval reading the file back with the accuracy the report gave. */
START_TEST(optimize_quantize)
{
    const char *data = make_data();
    const char *model = tpath("m.st"), *q = tpath("q.st");
    train_model(data, model);
    int rc = run("optimize", "--model", model, "--quantize", "int8", "--calibrate", "kl", "--calib-samples", "100",
                 "--device", "cpu", "--data", data, "--save", q, "--json");
    expect(rc, 0);
    cJSON *j = json_out();
    ck_assert_str_eq(str(j, "quantize"), "int8");
    ck_assert_str_eq(str(j, "calibrate"), "kl");
    double fa = num(j, "f32_accuracy"), qa = num(j, "int8_accuracy");
    ck_assert_msg(fabs(fa - qa) <= 0.05, "f32 %g, int8 %g", fa, qa);
    ck_assert(num(j, "int8_bytes") > 0 && num(j, "int8_bytes") < 0.5 * num(j, "f32_bytes"));
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(j, "layers");
    ck_assert_int_eq(cJSON_GetArraySize(ls), 2); /* 784 -> 16 -> 10 */
    const cJSON *l;
    cJSON_ArrayForEach(l, ls)
    {
        const char *mode = str(l, "mode");
        ck_assert(!strcmp(mode, "int8") || !strcmp(mode, "f32"));
        ck_assert(num(l, "in_scale") > 0);
    }
    cJSON_Delete(j);
    rc = run("eval", "--model", q, "--device", "cpu", "--data", data, "--json");
    expect(rc, 0);
    j = json_out();
    ck_assert_msg(num(j, "test_accuracy") == qa, "eval of the int8 file: %g, optimize said %g",
                  num(j, "test_accuracy"), qa);
    cJSON_Delete(j);
    /* the table form names every layer and the sizes */
    rc = run("optimize", "--model", model, "--quantize", "int8", "--calib-samples", "50", "--device", "cpu",
             "--data", data, "--max-drop", "-1");
    expect(rc, 0);
    expect_in(out, "dense0     int8");
    expect_in(out, "(not saved)");
    /* bad command lines */
    rc = run("optimize", "--model", model, "--quantize", "int4");
    expect(rc, 2);
    expect_in(err, "int4");
    rc = run("optimize", "--model", model, "--quantize", "int8", "--calibrate", "entropy");
    expect(rc, 2);
    rc = run("optimize", "--model", model);
    expect(rc, 2);
    expect_in(err, "--quantize int8");
    /* a quantized model is not quantized again, and nothing is written */
    rc = run("optimize", "--model", q, "--quantize", "int8", "--device", "cpu", "--data", data, "--save",
             tpath("qq.st"));
    expect(rc, 1);
    expect_in(err, "quantized already");
    ck_assert_int_eq(access(tpath("qq.st"), F_OK), -1);
}
END_TEST

/* loom optimize (prune, half) and loom eval --compare over their files */
START_TEST(optimize_and_compare)
{
    const char *data = make_data();
    char a[600], b[600], h[600];
    snprintf(a, sizeof a, "%s/opt_a.safetensors", tmpdir);
    snprintf(b, sizeof b, "%s/opt_b.safetensors", tmpdir);
    snprintf(h, sizeof h, "%s/opt_h.safetensors", tmpdir);
    train_model(data, a);
    int rc = run("optimize", "--model", a, "--save", b, "--prune", "0.5", "--epochs", "1", "--frequency", "2",
                 "--data", data, "--device", "cpu", "--json");
    expect(rc, 0);
    cJSON *j = json_out();
    ck_assert_str_eq(str(j, "mode"), "prune");
    ck_assert_msg(fabs(num(j, "sparsity") - 0.5) < 0.01, "sparsity %g", num(j, "sparsity"));
    double acc = num(j, "test_accuracy_after");
    ck_assert(acc >= 0 && acc <= 1);
    cJSON_Delete(j);
    rc = run("optimize", "--model", a, "--save", h, "--half", "bf16", "--data", data, "--device", "cpu", "--json");
    expect(rc, 0);
    j = json_out();
    ck_assert(num(j, "file_bytes_after") < 0.6 * num(j, "file_bytes_before"));
    cJSON_Delete(j);
    rc = run("eval", "--compare", a, b, h, "--data", data, "--device", "cpu", "--runs", "3", "--json");
    expect(rc, 0);
    j = json_out();
    cJSON *rows = cJSON_GetObjectItemCaseSensitive(j, "rows");
    ck_assert_int_eq(cJSON_GetArraySize(rows), 3);
    const char *paths[3] = {a, b, h};
    for (int i = 0; i < 3; i++) {
        cJSON *r = cJSON_GetArrayItem(rows, i);
        ck_assert_str_eq(str(r, "model"), paths[i]);
        ck_assert_str_eq(str(r, "device"), "cpu");
        struct stat st;
        ck_assert(stat(paths[i], &st) == 0);
        ck_assert(num(r, "file_bytes") == (double)st.st_size);
        ck_assert(num(r, "test_images") == 100);
        ck_assert(num(r, "test_accuracy") >= 0 && num(r, "test_accuracy") <= 1);
        ck_assert(num(r, "latency_ms_batch1") > 0 && num(r, "latency_ms_batch256") > 0);
    }
    cJSON_Delete(j);
    /* a list of devices: a row per model on each (the CPU twice here,
     * the one device every machine has) */
    rc = run("eval", "--compare", a, h, "--data", data, "--device", "cpu,cpu", "--runs", "2", "--json");
    expect(rc, 0);
    j = json_out();
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "rows")), 4);
    cJSON_Delete(j);
    rc = run("eval", "--compare", a, h, "--data", data, "--device", "cpu,,cpu");
    expect(rc, 2);
    expect_in(err, "--device \"cpu,,cpu\": give a device, a list of devices");
    rc = run("eval", "--compare", a, h, "--data", data, "--device", "cpu", "--runs", "2");
    expect(rc, 0);
    expect_in(out, "batch 256 ms");
    expect_in(out, h);
    /* what is wrong is said */
    rc = run("optimize", "--model", a, "--save", b);
    expect(rc, 2);
    expect_in(err, "give one of --prune");
    rc = run("optimize", "--model", a, "--save", b, "--prune", "0.5", "--half", "f16");
    expect(rc, 2);
    rc = run("optimize", "--model", a, "--save", b, "--prune", "0.5", "--temperature", "3");
    expect(rc, 2);
    expect_in(err, "go with --distill");
    rc = run("eval", "--compare", "--device", "cpu");
    expect(rc, 2);
    expect_in(err, "--compare needs model files");
    write_file(b, "not a model", 11);
    rc = run("eval", "--compare", a, b, "--data", data, "--device", "cpu", "--runs", "2");
    expect(rc, 1);
    expect_in(err, b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cli");
    TCase *t = tcase_create("options");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 300);
    tcase_add_test(t, options_refused);
    suite_add_tcase(s, t);
    t = tcase_create("scripts");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, quickstart_help);
    suite_add_tcase(s, t);
    t = tcase_create("exit");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, validation_errors_exit);
    suite_add_tcase(s, t);
    t = tcase_create("runs");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 600);
    tcase_add_test(t, json_outputs);
    tcase_add_test(t, scaling_recorded);
    tcase_add_test(t, early_stopping_and_ema);
    tcase_add_test(t, resume_checked);
    tcase_add_test(t, dash_without_shell);
    tcase_add_test(t, predict_checked);
    tcase_add_test(t, generate_text);
    tcase_add_test(t, model_description);
    tcase_add_test(t, optimize_quantize);
    suite_add_tcase(s, t);
    t = tcase_create("optimize");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 600);
    tcase_add_test(t, optimize_and_compare);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    free(out);
    free(err);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
