/* tools/device_check.sh end to end on this machine, as the dry run of the
 * prepared GPU check: it packs the built binaries, libraries and a
 * Fashion-MNIST slice into a temporary folder, runs the quick check there
 * against every device but the CPU (lavapipe and PoCL here), and the
 * summary, the device list and bench.json (opened by loom-dash --bench)
 * say what ran. With no time left every step is reported, not run, and
 * the summary is still written. */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmp[64];

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) == (size_t)n)
        b[n] = 0;
    fclose(f);
    return b;
}

/* Runs argv with extra "NAME=value" settings, output into log; returns the
 * exit status. */
static int run(const char *const *argv, const char *const *env, const char *log)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        for (int i = 0; env && env[i]; i++) {
            const char *eq = strchr(env[i], '=');
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)(eq - env[i]), env[i]);
            setenv(name, eq + 1, 1);
        }
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            _exit(120);
        dup2(fd, 1);
        dup2(fd, 2);
        execvp(argv[0], (char *const *)argv);
        _exit(121);
    }
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) < 120, "%s did not run (status %d)", argv[0], st);
    return WEXITSTATUS(st);
}

static int exists(const char *dir, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static cJSON *load_json(const char *path)
{
    char *s = slurp(path);
    ck_assert_msg(s != NULL, "%s was not written", path);
    cJSON *o = cJSON_Parse(s);
    ck_assert_msg(o != NULL, "%s is not JSON: %.300s", path, s);
    free(s);
    return o;
}

static const char *sval(const cJSON *o, const char *k)
{
    const char *v = cJSON_GetStringValue(cJSON_GetObjectItem(o, k));
    return v ? v : "";
}

/* The step of that name on that device, or NULL. */
static const cJSON *step(const cJSON *summary, const char *name, const char *dev)
{
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(summary, "steps"))
    {
        if (!strcmp(sval(s, "name"), name) && !strcmp(sval(s, "device"), dev))
            return s;
    }
    return NULL;
}

static void rm_tree(const char *dir)
{
    const char *argv[] = {"rm", "-rf", dir, NULL};
    ck_assert_int_eq(run(argv, NULL, "/dev/null"), 0);
}

static int has_data(void)
{
    return access(LOOM_DEFAULT_DATA_DIR "/train-images-idx3-ubyte.gz", R_OK) == 0 &&
           access(LOOM_DEFAULT_DATA_DIR "/t10k-images-idx3-ubyte.gz", R_OK) == 0;
}

START_TEST(pack_and_run_quick)
{
    const char *src = getenv("LOOM_SOURCE_DIR"), *build = getenv("LOOM_BUILD_DIR");
    ck_assert_ptr_nonnull(src);
    ck_assert_ptr_nonnull(build);
    /* what it should check: every device but the CPU */
    loom_ctx *ctx = tu_ctx();
    char specs[16][32], want[16][32];
    int nd = tu_devices(ctx, specs, 16), nw = 0;
    for (int d = 0; d < nd; d++)
        if (strcmp(specs[d], "cpu"))
            memcpy(want[nw++], specs[d], 32);
    if (nw == 0) {
        fprintf(stderr, "device_check: skipped, no device besides the CPU to check\n");
        loom_ctx_destroy(ctx);
        return;
    }
    snprintf(tmp, sizeof tmp, "/tmp/loom-devcheck-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    char script[512], pack[128], out[128], log[128];
    snprintf(script, sizeof script, "%s/tools/device_check.sh", src);
    snprintf(pack, sizeof pack, "%s/pack", tmp);
    snprintf(out, sizeof out, "%s/out", tmp);
    snprintf(log, sizeof log, "%s/pack.log", tmp);

    const char *pa[] = {"bash", script, "--pack", pack, "--build", build, "--no-compress", NULL};
    int rc = run(pa, NULL, log);
    char *text = slurp(log);
    ck_assert_msg(rc == 0, "--pack: status %d: %s", rc, text);
    ck_assert_ptr_nonnull(strstr(text, "bash "));
    free(text);
    const char *must[] = {"run.sh", "manifest.txt", "bin/loom", "bin/test_op_matrix", "bin/test_train",
                          "lib/libopenblas.so.0", "lib/libcjson.so.1"};
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
        ck_assert_msg(exists(pack, must[i]), "the pack has no %s", must[i]);
    /* the C library and the loader stay on the machine */
    const char *never[] = {"lib/libc.so.6", "lib/libm.so.6", "lib/ld-linux-x86-64.so.2", "lib/libpthread.so.0"};
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
        ck_assert_msg(!exists(pack, never[i]), "the pack holds %s", never[i]);
    for (int i = 0; i < nw; i++) {
        if (!strncmp(want[i], "vulkan:", 7))
            ck_assert_msg(exists(pack, "lib/libvulkan.so.1"), "a Vulkan device, and no Vulkan loader in the pack");
        if (!strncmp(want[i], "opencl:", 7))
            ck_assert_msg(exists(pack, "lib/libOpenCL.so.1"), "an OpenCL device, and no ICD loader in the pack");
    }
    if (has_data()) {
        /* the slice reads as a data set: 6,000 training images, the same
         * first image as the whole set, the whole test set */
        char dir[160];
        snprintf(dir, sizeof dir, "%s/data", pack);
        loom_dataset *a = NULL, *b = NULL, *t = NULL;
        ck_assert_msg(loom_dataset_load_mnist(ctx, dir, 1, &a) == LOOM_OK, "%s", loom_last_error(ctx));
        ck_assert_int_eq(loom_dataset_load_mnist(ctx, NULL, 1, &b), LOOM_OK);
        ck_assert_int_eq(loom_dataset_load_mnist(ctx, dir, 0, &t), LOOM_OK);
        ck_assert_int_eq(loom_dataset_count(a), 6000);
        ck_assert_int_eq(loom_dataset_count(t), 10000);
        ck_assert(!memcmp(loom_dataset_images(a), loom_dataset_images(b), 784 * sizeof(float)));
        ck_assert(!memcmp(loom_dataset_labels(a) + 5999, loom_dataset_labels(b) + 5999, sizeof(int32_t)));
        loom_dataset_destroy(a);
        loom_dataset_destroy(b);
        loom_dataset_destroy(t);
    }
    loom_ctx_destroy(ctx);

    /* the run, as on the GPU machine: bash DIR/run.sh OUT */
    char runsh[160];
    snprintf(runsh, sizeof runsh, "%s/run.sh", pack);
    snprintf(log, sizeof log, "%s/run.log", tmp);
    const char *ra[] = {"bash", runsh, out, NULL};
    const char *env[] = {"DEVICE_CHECK_QUICK=1", NULL};
    rc = run(ra, env, log);
    char summary[160];
    snprintf(summary, sizeof summary, "%s/summary.json", out);
    cJSON *s = load_json(summary);
    text = slurp(summary);
    ck_assert_msg(rc == 0, "run.sh: status %d: %s", rc, text);
    free(text);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(s, "ok")));
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(s, "quick")));
    const cJSON *targets = cJSON_GetObjectItem(s, "targets");
    ck_assert_int_eq(cJSON_GetArraySize(targets), nw);
    for (int i = 0; i < nw; i++) {
        ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetArrayItem(targets, i)), want[i]);
        const cJSON *m = step(s, "op_matrix", want[i]), *t = step(s, "train", want[i]);
        ck_assert_msg(m && !strcmp(sval(m, "status"), "pass"), "op_matrix on %s did not pass", want[i]);
        ck_assert_msg(t && !strcmp(sval(t, "status"), has_data() ? "pass" : "skipped"), "train on %s: %s", want[i],
                      t ? sval(t, "status") : "missing");
        ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(m, "seconds")));
    }
    const cJSON *b = step(s, "bench_quick", "");
    ck_assert_msg(b && !strcmp(sval(b, "status"), "pass"), "the bench did not pass");
    /* every device of the machine, named */
    const cJSON *devs = cJSON_GetObjectItem(s, "devices");
    ck_assert_int_eq(cJSON_GetArraySize(devs), nd);
    const cJSON *d;
    cJSON_ArrayForEach(d, devs) ck_assert(sval(d, "name")[0] != 0);
    /* at most 8 files: what the GPU machine sends back */
    DIR *dd = opendir(out);
    ck_assert_ptr_nonnull(dd);
    int files = 0;
    for (struct dirent *e; (e = readdir(dd));)
        files += e->d_name[0] != '.';
    closedir(dd);
    ck_assert_int_le(files, 8);
    const cJSON *f;
    cJSON_ArrayForEach(f, cJSON_GetObjectItem(s, "files"))
        ck_assert_msg(exists(out, cJSON_GetStringValue(f)), "%s is listed but not written", cJSON_GetStringValue(f));
    cJSON_Delete(s);

    /* bench.json: every checked device is a column, and loom-dash shows it */
    char bench[160], err[512];
    snprintf(bench, sizeof bench, "%s/bench.json", out);
    dash_bench db;
    dash_bench_init(&db);
    ck_assert_msg(dash_bench_load(&db, bench, err, sizeof err) == 0, "%s", err);
    for (int i = 0; i < nw; i++) {
        int found = 0;
        for (int c = 0; c < db.ncols; c++)
            found |= !strcmp(db.cols[c].spec, want[i]);
        ck_assert_msg(found, "bench.json has no column %s", want[i]);
    }
    dash_bench_free(&db);
    const char *xvfb = getenv("XVFB_RUN"), *dash = getenv("LOOM_DASH");
    if (xvfb && dash && *xvfb && *dash) {
        char png[160];
        snprintf(png, sizeof png, "%s/bench.png", tmp);
        snprintf(log, sizeof log, "%s/dash.log", tmp);
        const char *da[] = {xvfb, "-a", dash, "--bench", bench, "--screenshot", png, NULL};
        rc = run(da, NULL, log);
        text = slurp(log);
        ck_assert_msg(rc == 0, "loom-dash --bench %s: status %d: %s", bench, rc, text);
        free(text);
        ck_assert_int_eq(access(png, F_OK), 0);
    }

    /* no time left: every step is reported as not run, the summary is
     * still written, and the check fails */
    rm_tree(out);
    const char *env2[] = {"DEVICE_CHECK_QUICK=1", "DEVICE_CHECK_BUDGET=1", NULL};
    rc = run(ra, env2, log);
    ck_assert_int_eq(rc, 1);
    s = load_json(summary);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(s, "ok")));
    const cJSON *x;
    int n = 0;
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(s, "steps"))
    {
        ck_assert_msg(!strcmp(sval(x, "status"), "no_time"), "%s: %s with no time left", sval(x, "name"),
                      sval(x, "status"));
        n++;
    }
    ck_assert_msg(step(s, "devices", "") && step(s, "bench_quick", ""), "the steps not run are not listed");
    ck_assert_int_ge(n, 2);
    cJSON_Delete(s);
    rm_tree(tmp);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("device_check");
    TCase *tc = tcase_create("dry_run");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, pack_and_run_quick);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
