/* loom train --distributed mpi as a user starts it: mpirun -np N on this
 * machine (loopback and shared memory), against one process at N x the
 * batch; a rank killed with SIGKILL is reported by the others, naming it,
 * within the 30 s watchdog; --resume continues from the last checkpoint.
 * Registered when meson finds MPI and mpirun (LOOM_MPIRUN). */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static char tmpdir[64];
static char *out, *err;

static const char *data_dir(void)
{
    const char *e = getenv("LOOM_TEST_MNIST");
    if (e && *e)
        return e;
    return access(LOOM_DEFAULT_DATA_DIR "/train-labels-idx1-ubyte.gz", R_OK) == 0 ? LOOM_DEFAULT_DATA_DIR : NULL;
}

static const char *tpath(const char *name)
{
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)size + 1);
    size_t got = fread(b, 1, (size_t)size, f);
    b[got] = 0;
    fclose(f);
    return b;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Starts argv with stdout and stderr into the temporary folder; as root
 * (CI containers) mpirun must be told that this is fine. */
static pid_t start(char *const *argv)
{
    static char *extra[] = {"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1",
                            "OMPI_MCA_rmaps_base_oversubscribe=1", NULL};
    char *envp[512];
    int ne = 0;
    for (int i = 0; extra[i]; i++)
        envp[ne++] = extra[i];
    /* Under ASan the ranks leave leak checking out: Open MPI's
     * dlopen'd components leak at exit from modules LSan cannot name, so no
     * suppression reaches them; loom's own leaks are checked by every other
     * suite of the sanitizer pass. */
    static char asan[1024];
    const char *ao = getenv("ASAN_OPTIONS");
    if (ao) {
        snprintf(asan, sizeof asan, "ASAN_OPTIONS=%s:detect_leaks=0", ao);
        envp[ne++] = asan;
    }
    for (char **e = environ; *e && ne < 511; e++)
        if (!ao || strncmp(*e, "ASAN_OPTIONS=", 13))
            envp[ne++] = *e;
    envp[ne] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, tpath(".stdout"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, tpath(".stderr"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pid_t pid;
    ck_assert_int_eq(posix_spawn(&pid, argv[0], &fa, NULL, argv, envp), 0);
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

static int finish(pid_t pid)
{
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    free(out);
    free(err);
    out = slurp(tpath(".stdout"));
    err = slurp(tpath(".stderr"));
    ck_assert(out && err);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* `loom train` with the common options, through mpirun -np np (np 0:
 * alone), and extra arguments. */
static char **train_argv(int np, va_list ap)
{
    static char *argv[96];
    static char npbuf[16];
    int argc = 0;
    const char *cli = getenv("LOOM_CLI"), *mpirun = getenv("LOOM_MPIRUN");
    ck_assert_msg(cli && mpirun, "LOOM_CLI and LOOM_MPIRUN must be set");
    if (np > 0) {
        snprintf(npbuf, sizeof npbuf, "%d", np);
        argv[argc++] = (char *)mpirun;
        argv[argc++] = "--oversubscribe";
        argv[argc++] = "-np";
        argv[argc++] = npbuf;
    }
    argv[argc++] = (char *)cli;
    argv[argc++] = "train";
    if (np > 0) {
        argv[argc++] = "--distributed";
        argv[argc++] = "mpi";
    }
    argv[argc++] = "--device";
    argv[argc++] = "cpu";
    argv[argc++] = "--data";
    argv[argc++] = (char *)data_dir();
    for (const char *s; (s = va_arg(ap, const char *)) && argc < 95;)
        argv[argc++] = (char *)s;
    argv[argc] = NULL;
    return argv;
}

static int train(int np, ...)
{
    va_list ap;
    va_start(ap, np);
    char **argv = train_argv(np, ap);
    va_end(ap);
    return finish(start(argv));
}

static pid_t train_start(int np, ...)
{
    va_list ap;
    va_start(ap, np);
    char **argv = train_argv(np, ap);
    va_end(ap);
    return start(argv);
}

/* rc once: it is often a whole run */
#define expect(rc, want)                                                                                    \
    do {                                                                                                    \
        int rc_ = (rc);                                                                                     \
        ck_assert_msg(rc_ == (want), "exit status %d, expected %d\nstdout: %.3000s\nstderr: %.3000s", rc_,  \
                      (want), out, err);                                                                    \
    } while (0)

static void setup(void)
{
    strcpy(tmpdir, "/tmp/loom_mpi_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
    DIR *d = opendir(tmpdir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                remove(tpath(e->d_name));
        closedir(d);
    }
    rmdir(tmpdir);
}

/* Every tensor of two model files, to float tolerance. */
static void same_weights(loom_ctx *ctx, const char *a, const char *b, double rtol)
{
    loom_tensor_file *fa, *fb;
    ck_assert_msg(loom_safetensors_open(ctx, a, &fa) == LOOM_OK, "%s", loom_last_error(ctx));
    ck_assert_msg(loom_safetensors_open(ctx, b, &fb) == LOOM_OK, "%s", loom_last_error(ctx));
    ck_assert_int_eq(loom_safetensors_count(fa), loom_safetensors_count(fb));
    double worst = 0;
    for (int i = 0; i < loom_safetensors_count(fa); i++) {
        const char *name;
        loom_dtype dt;
        int nd;
        int64_t shape[LOOM_MAX_DIMS];
        const void *da, *db = NULL;
        ck_assert_int_eq(loom_safetensors_tensor(fa, i, &name, &dt, &nd, shape, &da), LOOM_OK);
        size_t na = 1;
        for (int k = 0; k < nd; k++)
            na *= (size_t)shape[k];
        for (int k = 0; k < loom_safetensors_count(fb) && !db; k++) {
            const char *nm;
            loom_dtype dt2;
            int nd2;
            int64_t sh2[LOOM_MAX_DIMS];
            const void *d2;
            ck_assert_int_eq(loom_safetensors_tensor(fb, k, &nm, &dt2, &nd2, sh2, &d2), LOOM_OK);
            if (!strcmp(nm, name)) {
                ck_assert_msg(dt2 == dt && nd2 == nd && !memcmp(sh2, shape, (size_t)nd * sizeof *sh2),
                              "%s: another dtype or shape", name);
                db = d2;
            }
        }
        ck_assert_msg(db != NULL, "%s is in %s but not in %s", name, a, b);
        if (dt != LOOM_F32)
            continue;
        double e = tu_err(da, db, na, 1e-5, rtol);
        if (e > worst)
            worst = e;
        ck_assert_msg(e <= 1.0, "%s: %s and %s differ (normalized error %g)", name, a, b, e);
    }
    fprintf(stderr, "mpi: %s vs %s: max normalized error %g\n", a, b, worst);
    loom_safetensors_close(fa);
    loom_safetensors_close(fb);
}

static cJSON *json_out(void)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(out, &end, 0);
    ck_assert_msg(j != NULL, "stdout is not one JSON document (rank 0 alone writes it): %.2000s", out);
    while (end && (*end == '\n' || *end == ' '))
        end++;
    ck_assert_msg(end && !*end, "stdout holds more than one JSON document: %.2000s", out);
    return j;
}

/* N ranks x batch 16 against one process at batch 16 N: the same data
 * order, so the same weights to float tolerance. */
static void ranks_match_one(int np)
{
    if (!data_dir()) {
        fprintf(stderr, "mpi: Fashion-MNIST not installed, skipped\n");
        return;
    }
    loom_ctx *ctx = tu_ctx();
    char batch[16];
    snprintf(batch, sizeof batch, "%d", 16 * np);
    expect(train(0, "--limit", "960", "--test-limit", "200", "--epochs", "2", "--batch", batch, "--save",
                 tpath("one.st"), "--json", (const char *)NULL), 0);
    double t0 = now_s();
    expect(train(np, "--limit", "960", "--test-limit", "200", "--epochs", "2", "--batch", "16", "--save",
                 tpath("many.st"), "--json", (const char *)NULL), 0);
    fprintf(stderr, "mpi: mpirun -np %d took %.1f s\n", np, now_s() - t0);
    cJSON *j = json_out();
    cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "replicas");
    ck_assert_msg(r != NULL, "no \"replicas\" in %s", out);
    ck_assert_int_eq((int)cJSON_GetObjectItemCaseSensitive(r, "processes")->valuedouble, np);
    ck_assert_int_ge((int)cJSON_GetObjectItemCaseSensitive(r, "checks")->valuedouble, 2);
    ck_assert_int_eq((int)cJSON_GetObjectItemCaseSensitive(r, "grad_bytes_per_step")->valuedouble,
                     4 * (784 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10));
    cJSON_Delete(j);
    same_weights(ctx, tpath("many.st"), tpath("one.st"), 1e-3);
    loom_ctx_destroy(ctx);
}

START_TEST(two_ranks_match_one_at_twice_the_batch)
{
    ranks_match_one(2);
}
END_TEST

START_TEST(three_ranks_match_one_at_three_times_the_batch)
{
    ranks_match_one(3);
}
END_TEST

/* The pids whose parent is ppid. */
static int children(pid_t ppid, pid_t *pids, int max)
{
    int n = 0;
    DIR *d = opendir("/proc");
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t got = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[got] = 0;
        const char *close = strrchr(buf, ')');
        int parent = 0;
        char state;
        if (close && sscanf(close + 1, " %c %d", &state, &parent) == 2 && parent == ppid && state != 'Z')
            pids[n++] = (pid_t)pid;
    }
    closedir(d);
    return n;
}

/* SIGKILL one rank in the middle of training: the others stop with an
 * error that names it, well within the 30 s watchdog; the job's exit
 * status says it failed. Then --resume continues from the checkpoint. */
START_TEST(killed_rank_is_reported_and_resume_continues)
{
    if (!data_dir()) {
        fprintf(stderr, "mpi: Fashion-MNIST not installed, skipped\n");
        return;
    }
    const char *ck = tpath("ck.st");
    pid_t job = train_start(3, "--limit", "1200", "--test-limit", "100", "--epochs", "1000", "--batch", "16",
                            "--checkpoint", ck, "--checkpoint-every", "10", (const char *)NULL);
    /* training is under way once the first checkpoint is there */
    double t0 = now_s();
    while (access(ck, R_OK) != 0 && now_s() - t0 < 120) {
        struct timespec nap = {0, 50 * 1000 * 1000};
        nanosleep(&nap, NULL);
    }
    ck_assert_msg(access(ck, R_OK) == 0, "no checkpoint after 120 s");
    struct timespec nap = {0, 300 * 1000 * 1000};
    nanosleep(&nap, NULL);
    pid_t ranks[8];
    int n = children(job, ranks, 8);
    ck_assert_msg(n == 3, "mpirun has %d children, not 3 ranks", n);
    pid_t victim = ranks[1];
    ck_assert_int_eq(kill(victim, SIGKILL), 0);
    double k0 = now_s();
    int rc = finish(job);
    double took = now_s() - k0;
    fprintf(stderr, "mpi: killed pid %d; the job ended %.1f s later (exit %d)\nmpi: its stderr: %.1500s\n",
            (int)victim, took, rc, err);
    ck_assert_msg(rc != 0, "the job exited 0 after a rank was killed");
    ck_assert_msg(took < 30, "the job took %.1f s to stop", took);
    char want[64];
    snprintf(want, sizeof want, "(pid %d on ", (int)victim);
    ck_assert_msg(strstr(err, "died") && strstr(err, want), "no rank named the dead pid %d:\n%s", (int)victim, err);
    ck_assert_msg(strstr(err, "loom train: rank "), "no rank reported it:\n%s", err);
    /* resume: the checkpoint's epoch, then one more */
    loom_ctx *ctx = tu_ctx();
    loom_tensor_file *f;
    ck_assert_int_eq(loom_safetensors_open(ctx, ck, &f), LOOM_OK);
    const char *ep = loom_safetensors_metadata(f, "loom.epoch");
    ck_assert_ptr_nonnull(ep);
    char epochs[16];
    snprintf(epochs, sizeof epochs, "%d", atoi(ep) + 1);
    loom_safetensors_close(f);
    expect(train(3, "--limit", "1200", "--test-limit", "100", "--epochs", epochs, "--resume", ck, "--json",
                 (const char *)NULL), 0);
    cJSON *j = json_out();
    double acc = cJSON_GetObjectItemCaseSensitive(j, "test_accuracy")->valuedouble;
    fprintf(stderr, "mpi: resumed to epoch %s: test accuracy %.3f\n", epochs, acc);
    ck_assert_msg(acc > 0.5, "test accuracy %.3f after resuming", acc);
    cJSON_Delete(j);
    loom_ctx_destroy(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mpi");
    TCase *tc = tcase_create("mpirun");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, two_ranks_match_one_at_twice_the_batch);
    tcase_add_test(tc, three_ranks_match_one_at_three_times_the_batch);
    tcase_add_test(tc, killed_rank_is_reported_and_resume_continues);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
