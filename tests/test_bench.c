/* loom bench: the JSON record, WRONG marking, and --compare. Runs the
 * built CLI (LOOM_CLI). */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

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

static int run(const char *args, const char *out)
{
    char cmd[2048];
    const char *cli = getenv("LOOM_CLI");
    ck_assert_ptr_nonnull(cli);
    snprintf(cmd, sizeof cmd, "%s bench %s > %s 2>/dev/null", cli, args, out);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *suites[] = {"gemm", "bandwidth", "dispatch", "train", "infer", "startup"};

START_TEST(quick_json_every_device)
{
    ck_assert_int_eq(run("--quick --json /tmp/loom-bench-test.json", "/tmp/loom-bench-test.txt"), 0);
    char *s = slurp("/tmp/loom-bench-test.json");
    ck_assert_ptr_nonnull(s);
    cJSON *o = cJSON_Parse(s);
    free(s);
    ck_assert_ptr_nonnull(o);
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
                if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(r, "device")), specs[d]) ||
                    strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(r, "suite")), suites[k]))
                    continue;
                found++;
                ck_assert_msg(cJSON_IsTrue(cJSON_GetObjectItem(r, "correct")), "%s %s %s is WRONG", specs[d],
                              suites[k], cJSON_GetStringValue(cJSON_GetObjectItem(r, "name")));
                ck_assert(cJSON_GetObjectItem(r, "median")->valuedouble > 0);
            }
            ck_assert_msg(found > 0, "no %s figure for %s", suites[k], specs[d]);
        }
    /* the OpenBLAS reference sits beside the GEMM figures */
    int refs = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, res) refs += !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(r, "device")), "openblas");
    ck_assert_int_gt(refs, 0);
    cJSON_Delete(o);
}
END_TEST

START_TEST(corrupted_device_is_wrong)
{
    setenv("LOOM_BENCH_CORRUPT", "cpu", 1);
    ck_assert_int_eq(run("--quick --device cpu --suite gemm,infer --json /tmp/loom-bench-wrong.json",
                         "/tmp/loom-bench-wrong.txt"),
                     0);
    unsetenv("LOOM_BENCH_CORRUPT");
    char *table = slurp("/tmp/loom-bench-wrong.txt");
    ck_assert_ptr_nonnull(strstr(table, "WRONG"));
    free(table);
    char *s = slurp("/tmp/loom-bench-wrong.json");
    cJSON *o = cJSON_Parse(s);
    free(s);
    int wrong = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(o, "results")) wrong += cJSON_IsFalse(cJSON_GetObjectItem(r, "correct"));
    ck_assert_int_gt(wrong, 0);
    cJSON_Delete(o);
}
END_TEST

static void write_run(const char *path, double gemm, double gemm_spread, double lat)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "{\"schema\":1,\"loom_version\":\"0.1.0\",\"commit\":\"abc\",\"date\":\"2026-11-29T00:00:00Z\","
            "\"cpu_model\":\"x\",\"hostname\":\"h\",\"quick\":true,\"devices\":[],\"results\":["
            "{\"device\":\"cpu\",\"suite\":\"gemm\",\"name\":\"sgemm 512\",\"unit\":\"GFLOP/s\","
            "\"higher_is_better\":true,\"median\":%g,\"min\":%g,\"max\":%g,\"runs\":5,\"correct\":true},"
            "{\"device\":\"cpu\",\"suite\":\"infer\",\"name\":\"batch 1 latency (median)\",\"unit\":\"us\","
            "\"higher_is_better\":false,\"median\":%g,\"min\":%g,\"max\":%g,\"runs\":5,\"correct\":true},"
            "{\"device\":\"cpu\",\"suite\":\"dispatch\",\"name\":\"one\",\"unit\":\"us\","
            "\"higher_is_better\":false,\"median\":10,\"min\":9,\"max\":11,\"runs\":5,\"correct\":true}]}\n",
            gemm, gemm * (1 - gemm_spread), gemm * (1 + gemm_spread), lat, lat * 0.98, lat * 1.02);
    fclose(f);
}

START_TEST(compare_flags_only_the_regression)
{
    /* GEMM drops 30% (spread 2%): a regression. Latency improves 10%: not. */
    write_run("/tmp/loom-bench-base.json", 100, 0.02, 50);
    write_run("/tmp/loom-bench-cur.json", 70, 0.02, 45);
    int rc = run("--results /tmp/loom-bench-cur.json --compare /tmp/loom-bench-base.json", "/tmp/loom-bench-cmp.txt");
    ck_assert_int_eq(rc, 3);
    char *t = slurp("/tmp/loom-bench-cmp.txt");
    int n = 0;
    for (char *p = t; (p = strstr(p, "REGRESSION")); p++)
        n++;
    ck_assert_int_eq(n, 1);
    char *line = strstr(t, "sgemm 512");
    ck_assert_ptr_nonnull(line);
    ck_assert_ptr_nonnull(strstr(line, "REGRESSION"));
    ck_assert_ptr_nonnull(strstr(t, "1 regression beyond"));
    free(t);
    /* a drop inside the measured noise (spread 40%) is not flagged */
    write_run("/tmp/loom-bench-base.json", 100, 0.4, 50);
    write_run("/tmp/loom-bench-cur.json", 80, 0.4, 50);
    ck_assert_int_eq(run("--results /tmp/loom-bench-cur.json --compare /tmp/loom-bench-base.json",
                         "/tmp/loom-bench-cmp.txt"),
                     0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("bench");
    TCase *tc = tcase_create("bench");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, compare_flags_only_the_regression);
    tcase_add_test(tc, corrupted_device_is_wrong);
    tcase_add_test(tc, quick_json_every_device);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
