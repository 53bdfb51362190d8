/* loom bench: the JSON record, WRONG marking against the CPU reference
 * (also when the CPU device is not measured), --compare and its noise,
 * options, and temporary folders whose names a shell would run. Runs the
 * built CLI (LOOM_CLI) with an argument vector, never through a shell. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* Runs `loom bench ARGS...` (NULL-terminated) with stdout and stderr into
 * files, in folder cwd when given; returns the exit status. */
static int run_in(const char *cwd, const char *out, const char *err, const char *const *args)
{
    const char *cli = getenv("LOOM_CLI");
    ck_assert_ptr_nonnull(cli);
    const char *argv[32] = {cli, "bench"};
    int n = 2;
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err ? err : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0 || (cwd && chdir(cwd) != 0))
            _exit(120);
        dup2(fo, 1);
        dup2(fe, 2);
        execv(cli, (char *const *)argv);
        _exit(121);
    }
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) < 120, "loom bench did not run (status %d)", st);
    return WEXITSTATUS(st);
}

static int run(const char *out, const char *const *args)
{
    return run_in(NULL, out, NULL, args);
}

static cJSON *load_json(const char *path)
{
    char *s = slurp(path);
    ck_assert_msg(s != NULL, "%s was not written", path);
    cJSON *o = cJSON_Parse(s);
    free(s);
    ck_assert_msg(o != NULL, "%s is not JSON", path);
    return o;
}

static const char *sval(const cJSON *o, const char *k)
{
    const char *v = cJSON_GetStringValue(cJSON_GetObjectItem(o, k));
    return v ? v : "";
}

static const char *suites[] = {"gemm", "bandwidth", "dispatch", "train", "infer", "startup"};

START_TEST(quick_json_every_device)
{
    const char *a[] = {"--quick", "--json", "/tmp/loom-bench-test.json", NULL};
    ck_assert_int_eq(run("/tmp/loom-bench-test.txt", a), 0);
    cJSON *o = load_json("/tmp/loom-bench-test.json");
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(o, "commit")));
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(o, "cpu_model")));
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(o, "date")));
    const cJSON *devs = cJSON_GetObjectItem(o, "devices"), *res = cJSON_GetObjectItem(o, "results");
    loom_ctx *ctx = tu_ctx();
    char specs[16][32];
    int nd = tu_devices(ctx, specs, 16);
    loom_ctx_destroy(ctx);
    ck_assert_int_eq(cJSON_GetArraySize(devs), nd);
    for (int d = 0; d < nd; d++)
        for (size_t k = 0; k < sizeof suites / sizeof suites[0]; k++) {
            int found = 0;
            const cJSON *r;
            cJSON_ArrayForEach(r, res)
            {
                if (strcmp(sval(r, "device"), specs[d]) || strcmp(sval(r, "suite"), suites[k]))
                    continue;
                found++;
                ck_assert_msg(cJSON_IsTrue(cJSON_GetObjectItem(r, "correct")), "%s %s %s is WRONG", specs[d],
                              suites[k], sval(r, "name"));
                ck_assert(cJSON_GetObjectItem(r, "median")->valuedouble > 0);
            }
            ck_assert_msg(found > 0, "no %s figure for %s", suites[k], specs[d]);
        }
    /* the OpenBLAS reference sits beside the GEMM figures */
    int refs = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, res) refs += !strcmp(sval(r, "device"), "openblas");
    ck_assert_int_gt(refs, 0);
    cJSON_Delete(o);
}
END_TEST

START_TEST(corrupted_device_is_wrong)
{
    setenv("LOOM_BENCH_CORRUPT", "cpu", 1);
    const char *a[] = {"--quick", "--device", "cpu", "--suite", "gemm,infer", "--json", "/tmp/loom-bench-wrong.json",
                       NULL};
    ck_assert_int_eq(run("/tmp/loom-bench-wrong.txt", a), 0);
    unsetenv("LOOM_BENCH_CORRUPT");
    char *table = slurp("/tmp/loom-bench-wrong.txt");
    ck_assert_ptr_nonnull(strstr(table, "WRONG"));
    free(table);
    cJSON *o = load_json("/tmp/loom-bench-wrong.json");
    int wrong = 0, infer_wrong = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(o, "results"))
    {
        int w = cJSON_IsFalse(cJSON_GetObjectItem(r, "correct"));
        wrong += w;
        infer_wrong += w && !strcmp(sval(r, "suite"), "infer");
    }
    ck_assert_int_gt(wrong, 0);
    /* the reference is computed apart from the measured (corrupted) CPU
     * device, so its own inference is caught too */
    ck_assert_int_eq(infer_wrong, 3);
    cJSON_Delete(o);
}
END_TEST

/* The first device that is not the CPU, or 0 when there is none. */
static int gpu_spec(char spec[32])
{
    loom_ctx *ctx = tu_ctx();
    char specs[16][32];
    int nd = tu_devices(ctx, specs, 16), found = 0;
    loom_ctx_destroy(ctx);
    for (int d = 0; d < nd && !found; d++)
        if (strcmp(specs[d], "cpu")) {
            memcpy(spec, specs[d], sizeof specs[d]);
            found = 1;
        }
    return found;
}

/* --device vulkan:0 alone: the CPU device still computes every reference,
 * so right results are not WRONG, and wrong ones are. */
START_TEST(reference_without_the_cpu_device)
{
    char spec[32];
    if (!gpu_spec(spec)) {
        fprintf(stderr, "reference_without_the_cpu_device: skipped, no device besides the CPU\n");
        return;
    }
    for (int corrupt = 0; corrupt < 2; corrupt++) {
        if (corrupt)
            setenv("LOOM_BENCH_CORRUPT", spec, 1);
        const char *a[] = {"--quick", "--device", spec, "--suite", "train,infer,startup", "--json",
                           "/tmp/loom-bench-gpu.json", NULL};
        ck_assert_int_eq(run("/tmp/loom-bench-gpu.txt", a), 0);
        unsetenv("LOOM_BENCH_CORRUPT");
        cJSON *o = load_json("/tmp/loom-bench-gpu.json");
        const cJSON *devs = cJSON_GetObjectItem(o, "devices");
        ck_assert_int_eq(cJSON_GetArraySize(devs), 1);
        ck_assert_str_eq(sval(cJSON_GetArrayItem(devs, 0), "spec"), spec);
        int rows = 0, right = 0;
        const cJSON *r;
        cJSON_ArrayForEach(r, cJSON_GetObjectItem(o, "results"))
        {
            ck_assert_str_eq(sval(r, "device"), spec);
            rows++;
            right += cJSON_IsTrue(cJSON_GetObjectItem(r, "correct"));
        }
        ck_assert_int_eq(rows, 7); /* train 2, infer 3, startup 2 */
        ck_assert_msg(right == (corrupt ? 0 : 7), "%s%s: %d of 7 right", spec, corrupt ? " corrupted" : "", right);
        cJSON_Delete(o);
    }
}
END_TEST

/* A saved run: each row {device, suite, name, median, spread, ratio (NAN:
 * none), higher_is_better}. The devices list names the measured ones. */
typedef struct row {
    const char *device, *suite, *name;
    double median, spread, ratio;
    int hib;
} row;

static void write_rows(const char *path, const row *rows, int n)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "schema", 1);
    cJSON_AddStringToObject(o, "commit", "abc");
    cJSON_AddStringToObject(o, "date", "2026-11-29T00:00:00Z");
    cJSON_AddStringToObject(o, "hostname", "h");
    cJSON *devs = cJSON_AddArrayToObject(o, "devices"), *res = cJSON_AddArrayToObject(o, "results");
    cJSON *cpu = cJSON_CreateObject();
    cJSON_AddStringToObject(cpu, "spec", "cpu");
    cJSON_AddItemToArray(devs, cpu);
    for (int i = 0; i < n; i++) {
        const row *x = &rows[i];
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "device", x->device);
        cJSON_AddStringToObject(r, "suite", x->suite);
        cJSON_AddStringToObject(r, "name", x->name);
        cJSON_AddStringToObject(r, "unit", x->hib ? "GFLOP/s" : "us");
        cJSON_AddBoolToObject(r, "higher_is_better", x->hib);
        cJSON_AddNumberToObject(r, "median", x->median);
        cJSON_AddNumberToObject(r, "min", x->median * (1 - x->spread));
        cJSON_AddNumberToObject(r, "max", x->median * (1 + x->spread));
        cJSON_AddNumberToObject(r, "runs", 5);
        cJSON_AddBoolToObject(r, "correct", 1);
        if (x->ratio == x->ratio) {
            cJSON_AddStringToObject(r, "ref_name", "OpenBLAS");
            cJSON_AddNumberToObject(r, "ref_median", x->median / x->ratio);
            cJSON_AddNumberToObject(r, "ratio", x->ratio);
        }
        cJSON_AddItemToArray(res, r);
    }
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(s, f);
    fclose(f);
    free(s);
}

static void write_run(const char *path, double gemm, double gemm_spread, double lat)
{
    row r[] = {
        {"cpu", "gemm", "sgemm 512", gemm, gemm_spread, NAN, 1},
        {"cpu", "infer", "batch 1 latency (median)", lat, 0.02, NAN, 0},
        {"cpu", "dispatch", "one", 10, 0.1, NAN, 0},
    };
    write_rows(path, r, 3);
}

static int compare(char **table)
{
    const char *a[] = {"--results", "/tmp/loom-bench-cur.json", "--compare", "/tmp/loom-bench-base.json", NULL};
    int rc = run("/tmp/loom-bench-cmp.txt", a);
    *table = slurp("/tmp/loom-bench-cmp.txt");
    ck_assert_ptr_nonnull(*table);
    return rc;
}

static int count(const char *t, const char *what)
{
    int n = 0;
    for (const char *p = t; (p = strstr(p, what)); p++)
        n++;
    return n;
}

/* The line of the table that starts with device and holds name. */
static const char *line_of(const char *t, const char *device, const char *name)
{
    for (const char *p = t; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char buf[512];
        snprintf(buf, sizeof buf, "%.*s", (int)(n < sizeof buf ? n : sizeof buf - 1), p);
        if (!strncmp(buf, device, strlen(device)) && buf[strlen(device)] == ' ' && strstr(buf, name) &&
            strstr(buf, "%"))
            return p;
    }
    return NULL;
}

/* 1 if the line starting at p holds what. */
static int line_has(const char *p, const char *what)
{
    const char *e = strchr(p, '\n'), *w = strstr(p, what);
    return w && (!e || w < e);
}

START_TEST(compare_flags_only_the_regression)
{
    char *t;
    /* GEMM drops 30% (spread 2%): a regression. Latency improves 10%: not. */
    write_run("/tmp/loom-bench-base.json", 100, 0.02, 50);
    write_run("/tmp/loom-bench-cur.json", 70, 0.02, 45);
    ck_assert_int_eq(compare(&t), 3);
    ck_assert_int_eq(count(t, "REGRESSION"), 1);
    const char *line = line_of(t, "cpu", "sgemm 512");
    ck_assert_ptr_nonnull(line);
    ck_assert(line_has(line, "REGRESSION"));
    ck_assert_ptr_nonnull(strstr(t, "1 regression beyond"));
    free(t);
    /* a drop inside the measured noise (spread 40%) is not flagged */
    write_run("/tmp/loom-bench-base.json", 100, 0.4, 50);
    write_run("/tmp/loom-bench-cur.json", 80, 0.4, 50);
    ck_assert_int_eq(compare(&t), 0);
    free(t);
}
END_TEST

/* The machine was 30% slower in the second run: OpenBLAS, measured in the
 * same run, drops as much as loom's GEMM does. Neither is a regression
 * (OpenBLAS's change is noise, loom's ratio to it is unchanged), and a
 * figure without a reference is judged against that drift. */
START_TEST(compare_reference_noise_is_not_a_regression)
{
    row base[] = {
        {"openblas", "gemm", "sgemm 512", 100, 0.02, NAN, 1},
        {"cpu", "gemm", "sgemm 512", 90, 0.02, 0.9, 1},
        {"cpu", "dispatch", "one", 10, 0.02, NAN, 0},
    };
    row cur[] = {
        {"openblas", "gemm", "sgemm 512", 70, 0.02, NAN, 1},
        {"cpu", "gemm", "sgemm 512", 63, 0.02, 0.9, 1},
        {"cpu", "dispatch", "one", 12, 0.02, NAN, 0}, /* 20% slower: inside the 30% drift */
    };
    write_rows("/tmp/loom-bench-base.json", base, 3);
    write_rows("/tmp/loom-bench-cur.json", cur, 3);
    char *t;
    ck_assert_int_eq(compare(&t), 0);
    ck_assert_int_eq(count(t, "REGRESSION"), 0);
    const char *line = line_of(t, "openblas", "sgemm 512");
    ck_assert_ptr_nonnull(line);
    ck_assert(line_has(line, "(reference)"));
    ck_assert_ptr_nonnull(strstr(t, "0 regressions beyond"));
    free(t);

    /* OpenBLAS holds still and loom's GEMM drops 30%: its ratio falls from
     * 0.9 to 0.63, a regression; the dispatch's 20% is one too now. */
    cur[0].median = 100;
    cur[1].ratio = 0.63;
    write_rows("/tmp/loom-bench-cur.json", cur, 3);
    ck_assert_int_eq(compare(&t), 3);
    ck_assert_int_eq(count(t, "REGRESSION"), 2);
    line = line_of(t, "cpu", "sgemm 512");
    ck_assert(line && line_has(line, "REGRESSION"));
    line = line_of(t, "cpu", "dispatch: one");
    ck_assert(line && line_has(line, "REGRESSION"));
    line = line_of(t, "openblas", "sgemm 512");
    ck_assert(line && line_has(line, "(reference)") && !line_has(line, "REGRESSION"));
    free(t);
}
END_TEST

START_TEST(bad_options_exit_2)
{
    const char *err = "/tmp/loom-bench-err.txt";
    struct {
        const char *args[4], *msg;
    } cases[] = {
        {{"--bogus", NULL}, "unknown option --bogus"},
        {{"--json", NULL}, "--json needs a value"},
        {{"--suite", "nosuch", NULL}, "unknown suite \"nosuch\""},
        {{"--suite", "gemm,,train", NULL}, "unknown suite \"\""},
        {{"--quick", "extra", NULL}, "unexpected argument \"extra\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_int_eq(run_in(NULL, "/tmp/loom-bench-out.txt", err, cases[i].args), 2);
        char *e = slurp(err), *o = slurp("/tmp/loom-bench-out.txt");
        ck_assert_msg(strstr(e, cases[i].msg), "stderr \"%s\", want \"%s\"", e, cases[i].msg);
        /* it says what there is, and measures nothing */
        if (strstr(cases[i].msg, "suite"))
            ck_assert_ptr_nonnull(strstr(e, "the suites are gemm, bandwidth, dispatch, train, infer, startup"));
        else
            ck_assert_ptr_nonnull(strstr(e, "usage: loom bench"));
        ck_assert_str_eq(o, "");
        free(e);
        free(o);
    }
    /* the usage names the exit status of a regression */
    const char *h[] = {"--help", NULL};
    ck_assert_int_eq(run_in(NULL, "/tmp/loom-bench-out.txt", err, h), 0);
    char *o = slurp("/tmp/loom-bench-out.txt");
    ck_assert_msg(strstr(o, "3 --compare found a regression"), "%s", o);
    free(o);
}
END_TEST

static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

/* The temporary folders live under TMPDIR, whatever its name says: a
 * quote, $(...) and ; are characters of a path, not commands. */
START_TEST(temp_folders_are_not_run_by_a_shell)
{
    char work[] = "/tmp/loom-bench-cwd-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(work));
    char tmp[] = "/tmp/loom-bench-'$(touch injected1)';touch injected2;'-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    setenv("TMPDIR", tmp, 1);
    const char *a[] = {"--quick", "--device", "cpu", "--suite", "gemm,startup", NULL};
    int rc = run_in(work, "/tmp/loom-bench-out.txt", "/tmp/loom-bench-err.txt", a);
    unsetenv("TMPDIR");
    char *e = slurp("/tmp/loom-bench-err.txt");
    ck_assert_msg(rc == 0, "status %d: %s", rc, e);
    char want[256];
    snprintf(want, sizeof want, "startup with fresh caches in %s/loom-bench-cache-", tmp);
    ck_assert_msg(strstr(e, want), "stderr \"%s\" does not name the folder under TMPDIR", e);
    ck_assert_msg(!strstr(e, "cannot remove"), "%s", e);
    free(e);
    /* nothing ran in the working folder, and nothing was left in TMPDIR */
    ck_assert_int_eq(entries(work), 0);
    ck_assert_int_eq(entries(tmp), 0);
    ck_assert_int_ne(access("/tmp/injected1", F_OK), 0);
    ck_assert_int_eq(rmdir(tmp), 0);
    ck_assert_int_eq(rmdir(work), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("bench");
    TCase *tc = tcase_create("bench");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, compare_flags_only_the_regression);
    tcase_add_test(tc, compare_reference_noise_is_not_a_regression);
    tcase_add_test(tc, bad_options_exit_2);
    tcase_add_test(tc, temp_folders_are_not_run_by_a_shell);
    tcase_add_test(tc, corrupted_device_is_wrong);
    tcase_add_test(tc, reference_without_the_cpu_device);
    tcase_add_test(tc, quick_json_every_device);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
