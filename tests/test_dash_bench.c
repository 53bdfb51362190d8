/* loom-dash --bench: the results reader (columns, WRONG flags, references,
 * ranking that skips a wrong answer, refusals that leave the model as it
 * was) and, under Xvfb, the view: a PNG of the asked size with bars in
 * every suite's plot, white reference marks only where a suite has a
 * reference, the WRONG red only where a result is wrong, and bad files
 * ending with a message. */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"

#include <check.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>

/* draw_bench.c's colours, which the test looks for */
#define WRONG_RGB 0xff2d2d
#define REF_RGB 0xffffff

static char dir[64];

static void data_path(char *buf, size_t n, const char *name)
{
    const char *d = getenv("LOOM_TEST_DATA");
    ck_assert_ptr_nonnull(d);
    snprintf(buf, n, "%s/%s", d, name);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fwrite(text, 1, strlen(text), f), strlen(text));
    fclose(f);
}

static int column(const dash_bench *b, int file, const char *spec)
{
    for (int i = 0; i < b->ncols; i++)
        if (b->cols[i].file == file && !strcmp(b->cols[i].spec, spec))
            return i;
    return -1;
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/loom_dash_bench_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    const char *names[] = {"stdout", "stderr", "out.png", "bad.json"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char p[128];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        remove(p);
    }
    rmdir(dir);
}

/* ---- the reader ---- */

START_TEST(test_load_fixture)
{
    char f[512], err[512] = "";
    data_path(f, sizeof f, "bench_fixture.json");
    dash_bench b;
    dash_bench_init(&b);
    ck_assert_msg(dash_bench_load(&b, f, err, sizeof err) == 0, "%s", err);
    dash_bench_label(&b);
    ck_assert_int_eq(b.nfiles, 1);
    ck_assert_str_eq(b.files[0].hostname, "loom-ci-2core");
    ck_assert_int_eq(b.files[0].quick, 1);
    /* three devices, and the references measured in the same run, which
     * the devices list does not name */
    ck_assert_int_eq(b.ncols, 6);
    ck_assert_int_eq(b.nres, 65);
    ck_assert_int_eq(b.skipped, 0);
    int cpu = column(&b, 0, "cpu"), vk = column(&b, 0, "vulkan:0"), cl = column(&b, 0, "opencl:0");
    int blas = column(&b, 0, "openblas"), clb = column(&b, 0, "clblast:0"), mc = column(&b, 0, "memcpy");
    ck_assert(cpu >= 0 && vk >= 0 && cl >= 0 && blas >= 0 && clb >= 0 && mc >= 0);
    ck_assert(!b.cols[cpu].reference && !b.cols[vk].reference && !b.cols[cl].reference);
    ck_assert(b.cols[blas].reference && b.cols[clb].reference && b.cols[mc].reference);
    ck_assert_str_eq(b.cols[vk].label, "vulkan:0");
    ck_assert_str_eq(b.cols[vk].name, "llvmpipe (LLVM 15.0.6, 256 bits)");

    const char *suites[8];
    ck_assert_int_eq(dash_bench_suites(&b, suites, 8), 6);
    const char *want[] = {"gemm", "bandwidth", "dispatch", "train", "infer", "startup"};
    for (int i = 0; i < 6; i++)
        ck_assert_str_eq(suites[i], want[i]);
    const char *groups[32];
    ck_assert_int_eq(dash_bench_groups(&b, "gemm", groups, 32), 7);
    ck_assert_str_eq(groups[0], "sgemm 256");
    ck_assert_str_eq(groups[6], "hgemm 1024");

    /* the reference and its ratio as written; null reference is NaN */
    const dash_bench_result *r = dash_bench_find(&b, cpu, "gemm", "sgemm 1024");
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(r->ref_name, "OpenBLAS");
    ck_assert(fabs(r->median - 118.0) < 1e-9 && fabs(r->ref_median - 121.0) < 1e-9);
    ck_assert(fabs(r->ratio - 0.9752) < 1e-9);
    r = dash_bench_find(&b, vk, "gemm", "sgemm 1024");
    ck_assert(r && isnan(r->ref_median) && isnan(r->ratio) && r->correct);
    ck_assert_ptr_null(dash_bench_find(&b, cpu, "gemm", "hgemm 1024"));

    /* sgemm 2048 on OpenCL is wrong; the best of the two correct ones is
     * the cpu's 124 (test_wrong_not_ranked has a wrong one that is fastest) */
    r = dash_bench_find(&b, cl, "gemm", "sgemm 2048");
    ck_assert(r && !r->correct);
    ck_assert_int_eq(dash_bench_best(&b, "gemm", "sgemm 2048"), cpu);
    /* OpenBLAS's 121 beats the cpu's 118, but a reference is not ranked */
    r = dash_bench_find(&b, blas, "gemm", "sgemm 1024");
    ck_assert(r && r->median > dash_bench_find(&b, cpu, "gemm", "sgemm 1024")->median);
    ck_assert_int_eq(dash_bench_best(&b, "gemm", "sgemm 1024"), cpu);
    /* and memcpy's 10.2 GB/s beats the cpu's 8.9 */
    ck_assert_int_eq(dash_bench_best(&b, "bandwidth", "copy 64 MiB"), cpu);
    /* lower is better: the cpu's 1.8 us dispatch */
    ck_assert_int_eq(dash_bench_best(&b, "dispatch", "one dispatch, waited"), cpu);
    /* one device alone is not ranked */
    ck_assert_int_eq(dash_bench_best(&b, "gemm", "hgemm 1024"), -1);
    dash_bench_free(&b);
}
END_TEST

/* A wrong answer is never the best, even when its figure is the best. */
START_TEST(test_wrong_not_ranked)
{
    char p[128], err[256];
    snprintf(p, sizeof p, "%s/bad.json", dir);
    write_file(p, "{\"schema\":1,\"devices\":[{\"spec\":\"cpu\"},{\"spec\":\"vulkan:0\"},{\"spec\":\"opencl:0\"}],"
                  "\"results\":["
                  "{\"device\":\"cpu\",\"suite\":\"gemm\",\"name\":\"g\",\"unit\":\"GFLOP/s\",\"median\":10,"
                  "\"correct\":true,\"ref_name\":\"OpenBLAS\",\"ref_median\":20},"
                  "{\"device\":\"vulkan:0\",\"suite\":\"gemm\",\"name\":\"g\",\"unit\":\"GFLOP/s\",\"median\":90,"
                  "\"correct\":false},"
                  "{\"device\":\"opencl:0\",\"suite\":\"gemm\",\"name\":\"g\",\"unit\":\"GFLOP/s\",\"median\":30},"
                  "{\"device\":\"cpu\",\"suite\":\"dispatch\",\"name\":\"d\",\"unit\":\"us\",\"median\":null},"
                  "{\"device\":\"cpu\",\"suite\":\"dispatch\",\"name\":\"d\",\"unit\":\"us\",\"median\":5,"
                  "\"higher_is_better\":false,\"ref_median\":4}]}");
    dash_bench b;
    dash_bench_init(&b);
    ck_assert_msg(dash_bench_load(&b, p, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(b.nres, 4);
    ck_assert_int_eq(b.skipped, 1); /* a correct result without a figure */
    ck_assert_int_eq(dash_bench_best(&b, "gemm", "g"), column(&b, 0, "opencl:0"));
    /* a ratio the file leaves out is worked out, the right way up */
    const dash_bench_result *r = dash_bench_find(&b, column(&b, 0, "cpu"), "gemm", "g");
    ck_assert(r && fabs(r->ratio - 0.5) < 1e-12);
    r = dash_bench_find(&b, column(&b, 0, "cpu"), "dispatch", "d");
    ck_assert(r && !r->higher_is_better && fabs(r->ratio - 0.8) < 1e-12);
    dash_bench_free(&b);
}
END_TEST

static void expect_load_error(dash_bench *b, const char *path, const char *msg)
{
    char err[512] = "";
    int nres = b->nres, nfiles = b->nfiles, ncols = b->ncols;
    ck_assert_int_eq(dash_bench_load(b, path, err, sizeof err), -1);
    ck_assert_msg(strstr(err, msg) != NULL, "%s: \"%s\", want \"%s\"", path, err, msg);
    ck_assert_msg(strstr(err, path) != NULL, "the message names the file: %s", err);
    ck_assert_int_eq(b->nres, nres);
    ck_assert_int_eq(b->nfiles, nfiles);
    ck_assert_int_eq(b->ncols, ncols);
}

START_TEST(test_load_refusals)
{
    char f[512], p[128], err[512];
    data_path(f, sizeof f, "bench_fixture.json");
    snprintf(p, sizeof p, "%s/bad.json", dir);
    dash_bench b;
    dash_bench_init(&b);
    ck_assert(dash_bench_load(&b, f, err, sizeof err) == 0);
    write_file(p, "this is not JSON {");
    expect_load_error(&b, p, "not JSON");
    write_file(p, "{\"schema\":1,\"traceEvents\":[]}");
    expect_load_error(&b, p, "not a loom bench results file");
    write_file(p, "[1,2,3]");
    expect_load_error(&b, p, "not a loom bench results file");
    write_file(p, "{\"schema\":1,\"devices\":[],\"results\":[]}");
    expect_load_error(&b, p, "no results");
    write_file(p, "{\"schema\":2,\"results\":[{\"device\":\"cpu\"}]}");
    expect_load_error(&b, p, "schema 2");
    /* devices, suites and names missing: nothing usable */
    write_file(p, "{\"results\":[{\"median\":1},{\"device\":\"cpu\",\"median\":2}]}");
    expect_load_error(&b, p, "no usable results");
    char missing[160];
    snprintf(missing, sizeof missing, "%s/nonexistent.json", dir);
    expect_load_error(&b, missing, "cannot open");
    dash_bench_free(&b);
}
END_TEST

/* Two machines: columns per file, labelled by host. */
START_TEST(test_two_files)
{
    char f1[512], f2[512], err[512];
    data_path(f1, sizeof f1, "bench_fixture.json");
    data_path(f2, sizeof f2, "bench_fixture_b.json");
    dash_bench b;
    dash_bench_init(&b);
    ck_assert(dash_bench_load(&b, f1, err, sizeof err) == 0);
    ck_assert_msg(dash_bench_load(&b, f2, err, sizeof err) == 0, "%s", err);
    dash_bench_label(&b);
    ck_assert_int_eq(b.nfiles, 2);
    ck_assert_int_eq(b.ncols, 9);
    ck_assert_int_eq(b.nres, 117);
    int a = column(&b, 0, "cpu"), z = column(&b, 1, "cpu");
    ck_assert(a >= 0 && z >= 0 && a != z);
    ck_assert_str_eq(b.cols[a].label, "loom-ci-2core cpu");
    ck_assert_str_eq(b.cols[z].label, "ws-ryzen16 cpu");
    ck_assert_str_eq(b.cols[column(&b, 0, "openblas")].label, "loom-ci-2core openblas");
    ck_assert_int_eq(column(&b, 1, "openblas"), -1); /* the second file has its references inline only */
    /* the second machine's cpu is the best sgemm 1024 of all */
    ck_assert_int_eq(dash_bench_best(&b, "gemm", "sgemm 1024"), z);
    /* its vulkan batch-256 inference is wrong: the best is another column */
    int zvk = column(&b, 1, "vulkan:0");
    const dash_bench_result *r = dash_bench_find(&b, zvk, "infer", "batch 256 throughput");
    ck_assert(r && !r->correct);
    ck_assert_int_eq(dash_bench_best(&b, "infer", "batch 256 throughput"), z);
    dash_bench_free(&b);
}
END_TEST

/* ---- the view, under Xvfb ---- */

typedef struct result {
    int status;
    char out[8192], err[8192];
} result;

static void read_all(const char *path, char *buf, size_t n)
{
    buf[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    size_t k = fread(buf, 1, n - 1, f);
    buf[k] = 0;
    fclose(f);
}

static result dash(const char *const *args)
{
    const char *xvfb = getenv("XVFB_RUN"), *exe = getenv("LOOM_DASH");
    ck_assert_ptr_nonnull(xvfb);
    ck_assert_ptr_nonnull(exe);
    char out[128], err[128];
    snprintf(out, sizeof out, "%s/stdout", dir);
    snprintf(err, sizeof err, "%s/stderr", dir);
    const char *argv[24] = {xvfb, "-a", exe};
    int n = 3;
    for (int i = 0; args[i] && n < 23; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644), fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0)
            _exit(120);
        dup2(fo, 1);
        dup2(fe, 2);
        execv(xvfb, (char *const *)argv);
        _exit(121);
    }
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    result r;
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    read_all(out, r.out, sizeof r.out);
    read_all(err, r.err, sizeof r.err);
    ck_assert_msg(r.status >= 0 && r.status < 120, "loom-dash died (status %d): %s", r.status, r.err);
    return r;
}

typedef struct plot {
    char name[32], state[8];
    int x, y, w, h;
    unsigned bg;
} plot;

static int parse_plots(const char *out, plot *p, int max)
{
    int n = 0;
    const char *s = out;
    while (n < max && (s = strstr(s, "plot ")) != NULL) {
        plot *q = &p[n];
        if (sscanf(s, "plot %31s %d %d %d %d %7s %x", q->name, &q->x, &q->y, &q->w, &q->h, q->state, &q->bg) == 7)
            n++;
        s += 5;
    }
    return n;
}

/* Pixels inside a plot (less its 1-pixel frame): not the background when
 * rgb < 0, else exactly rgb. */
static long count(const unsigned char *img, int w, int h, const plot *p, long rgb)
{
    long n = 0;
    unsigned want = rgb < 0 ? p->bg : (unsigned)rgb;
    int r0 = (int)(want >> 16) & 255, g0 = (int)(want >> 8) & 255, b0 = (int)want & 255;
    for (int y = p->y + 1; y < p->y + p->h - 1 && y < h; y++)
        for (int x = p->x + 1; x < p->x + p->w - 1 && x < w; x++) {
            const unsigned char *c = img + ((size_t)y * (size_t)w + (size_t)x) * 3;
            int d = abs(c[0] - r0) + abs(c[1] - g0) + abs(c[2] - b0);
            n += rgb < 0 ? d > 24 : d == 0;
        }
    return n;
}

static const plot *find_plot(const plot *p, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(p[i].name, name))
            return &p[i];
    ck_abort_msg("no plot %s", name);
    return NULL;
}

/* Renders the files at w x h; every suite has bars, white reference marks
 * only in the suites listed in refs, red only in those listed in wrong. */
static void check_view(const char *const *files, int w, int h, const char *refs, const char *wrong)
{
    char png[128], size[32];
    snprintf(png, sizeof png, "%s/out.png", dir);
    snprintf(size, sizeof size, "%dx%d", w, h);
    remove(png);
    const char *args[16] = {"--bench"};
    int n = 1;
    for (int i = 0; files[i]; i++)
        args[n++] = files[i];
    args[n++] = "--print-layout";
    args[n++] = "--screenshot";
    args[n++] = png;
    args[n++] = "--size";
    args[n++] = size;
    args[n] = NULL;
    result r = dash(args);
    ck_assert_msg(r.status == 0, "status %d: %s", r.status, r.err);
    int iw = 0, ih = 0, comp = 0;
    unsigned char *img = stbi_load(png, &iw, &ih, &comp, 3);
    ck_assert_msg(img != NULL, "%s is not a PNG: %s", png, stbi_failure_reason());
    ck_assert_int_eq(iw, w);
    ck_assert_int_eq(ih, h);
    plot p[8];
    int np = parse_plots(r.out, p, 8);
    ck_assert_msg(np == 6, "%d plots: %s", np, r.out);
    const char *want[] = {"gemm", "bandwidth", "dispatch", "train", "infer", "startup"};
    for (int i = 0; i < 6; i++) {
        const plot *q = find_plot(p, np, want[i]);
        ck_assert(q->x >= 0 && q->y >= 0 && q->x + q->w <= w && q->y + q->h <= h);
        ck_assert_msg(!strcmp(q->state, "data"), "plot %s reports no data", q->name);
        /* bars: at least a tenth of the area is drawn */
        long ink = count(img, w, h, q, -1), area = (long)(q->w - 2) * (q->h - 2);
        ck_assert_msg(ink * 10 >= area, "plot %s: %ld of %ld pixels drawn", q->name, ink, area);
        long white = count(img, w, h, q, REF_RGB), red = count(img, w, h, q, WRONG_RGB);
        if (strstr(refs, want[i]))
            ck_assert_msg(white > 0, "plot %s has a reference but no white mark", q->name);
        else
            ck_assert_msg(white == 0, "plot %s has no reference but %ld white pixels", q->name, white);
        if (strstr(wrong, want[i]))
            ck_assert_msg(red >= 20, "plot %s has a WRONG result but %ld red pixels", q->name, red);
        else
            ck_assert_msg(red == 0, "plot %s: %ld red pixels and nothing wrong", q->name, red);
    }
    stbi_image_free(img);
}

START_TEST(test_view_one_file)
{
    char f[512];
    data_path(f, sizeof f, "bench_fixture.json");
    const char *files[] = {f, NULL};
    check_view(files, 1280, 800, "gemm bandwidth train", "gemm");
    check_view(files, 800, 600, "gemm bandwidth train", "gemm");
}
END_TEST

START_TEST(test_view_two_files)
{
    char f1[512], f2[512];
    data_path(f1, sizeof f1, "bench_fixture.json");
    data_path(f2, sizeof f2, "bench_fixture_b.json");
    const char *files[] = {f1, f2, NULL};
    check_view(files, 1600, 900, "gemm bandwidth train", "gemm infer");
}
END_TEST

/* A run recorded here (loom bench --quick, lavapipe and PoCL): its names
 * are the long real ones ("sgemm 784x64x256 (x^T dH)", "per dispatch,
 * 100-dispatch program"). */
START_TEST(test_view_recorded_run)
{
    char f[512];
    data_path(f, sizeof f, "bench_quick_recorded.json");
    const char *files[] = {f, NULL};
    check_view(files, 800, 600, "gemm bandwidth", "");
    check_view(files, 1280, 800, "gemm bandwidth", "");
    check_view(files, 1920, 1080, "gemm bandwidth", "");
}
END_TEST

static void expect_refusal(const char *const *args, int status, const char *msg)
{
    char png[128];
    snprintf(png, sizeof png, "%s/out.png", dir);
    remove(png);
    result r = dash(args);
    ck_assert_msg(r.status == status, "status %d, want %d: %s", r.status, status, r.err);
    ck_assert_msg(strstr(r.err, "loom-dash: ") && strstr(r.err, msg), "stderr \"%s\", want \"%s\"", r.err, msg);
    ck_assert_int_ne(access(png, F_OK), 0);
}

START_TEST(test_view_bad_files)
{
    char png[128], bad[128], missing[128], good[512];
    snprintf(png, sizeof png, "%s/out.png", dir);
    snprintf(bad, sizeof bad, "%s/bad.json", dir);
    snprintf(missing, sizeof missing, "%s/nonexistent.json", dir);
    data_path(good, sizeof good, "bench_fixture.json");
    const char *a1[] = {"--bench", missing, "--screenshot", png, NULL};
    expect_refusal(a1, 1, "cannot open");
    unsigned char junk[2000];
    for (size_t i = 0; i < sizeof junk - 1; i++)
        junk[i] = (unsigned char)(1 + ((i * 2654435761u) >> 13) % 255);
    junk[sizeof junk - 1] = 0;
    write_file(bad, (const char *)junk);
    const char *a2[] = {"--bench", good, bad, "--screenshot", png, NULL};
    expect_refusal(a2, 1, "not JSON");
    write_file(bad, "{\"type\":\"header\",\"time\":0}");
    const char *a3[] = {"--bench", bad, "--screenshot", png, NULL};
    expect_refusal(a3, 1, "not a loom bench results file");
    const char *a4[] = {"--bench", "--follow", good, "--screenshot", png, NULL};
    expect_refusal(a4, 2, "--follow");
    /* several files are for --bench only */
    const char *a5[] = {good, good, "--screenshot", png, NULL};
    expect_refusal(a5, 2, "one file at a time");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dash_bench");
    TCase *t = tcase_create("reader");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_load_fixture);
    tcase_add_test(t, test_wrong_not_ranked);
    tcase_add_test(t, test_load_refusals);
    tcase_add_test(t, test_two_files);
    suite_add_tcase(s, t);
    TCase *v = tcase_create("view");
    tcase_add_checked_fixture(v, setup, teardown);
    tcase_set_timeout(v, 240);
    tcase_add_test(v, test_view_one_file);
    tcase_add_test(v, test_view_two_files);
    tcase_add_test(v, test_view_recorded_run);
    tcase_add_test(v, test_view_bad_files);
    suite_add_tcase(s, v);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
