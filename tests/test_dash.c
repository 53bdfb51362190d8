/* loom-dash under Xvfb: --screenshot writes a PNG of the asked size whose
 * plot areas hold data for a recorded run (metrics and trace), stay blank
 * when the file has none, and bad files end with a message, not a crash.
 * Its layout (--print-layout) has no text crossing another or leaving the
 * frame; the ops panel shows whole op names under column headers, with a
 * legend of its bar colours; stdout stays empty unless asked. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>

#include "dash.h"
#include "dash_layout.h"

typedef struct result {
    int status;                 /* exit status; -1 if it did not exit */
    char out[8192], err[8192];
} result;

static char dir[64];

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

/* xvfb-run -a loom-dash args... */
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
    /* xvfb-run passes the command's status on; a signal shows as 128+N. */
    ck_assert_msg(r.status >= 0 && r.status < 120, "loom-dash died (status %d): %s", r.status, r.err);
    return r;
}

static void data_path(char *buf, size_t n, const char *name)
{
    const char *d = getenv("LOOM_TEST_DATA");
    ck_assert_ptr_nonnull(d);
    snprintf(buf, n, "%s/%s", d, name);
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

/* Pixels of the plot area (less a 1-pixel border) that are not its
 * background. */
static long ink(const unsigned char *img, int w, int h, const plot *p)
{
    long n = 0;
    int r0 = (int)(p->bg >> 16) & 255, g0 = (int)(p->bg >> 8) & 255, b0 = (int)p->bg & 255;
    for (int y = p->y + 1; y < p->y + p->h - 1 && y < h; y++)
        for (int x = p->x + 1; x < p->x + p->w - 1 && x < w; x++) {
            const unsigned char *c = img + ((size_t)y * (size_t)w + (size_t)x) * 3;
            if (abs(c[0] - r0) + abs(c[1] - g0) + abs(c[2] - b0) > 24)
                n++;
        }
    return n;
}

/* Renders file to a PNG of w x h and checks every plot area: with data
 * when want_data, blank otherwise. */
static void check_frame(const char *file, const char *panel, int w, int h, int want_data, int want_plots)
{
    char png[128], size[32];
    snprintf(png, sizeof png, "%s/out.png", dir);
    snprintf(size, sizeof size, "%dx%d", w, h);
    remove(png);
    const char *args[] = {"--screenshot", png, "--print-layout", "--size", size, "--panel", panel, file, NULL};
    result r = dash(args);
    ck_assert_msg(r.status == 0, "status %d: %s", r.status, r.err);
    int iw = 0, ih = 0, comp = 0;
    unsigned char *img = stbi_load(png, &iw, &ih, &comp, 3);
    ck_assert_msg(img != NULL, "%s is not a PNG: %s", png, stbi_failure_reason());
    ck_assert_int_eq(iw, w);
    ck_assert_int_eq(ih, h);
    plot p[8];
    int n = parse_plots(r.out, p, 8);
    ck_assert_msg(n == want_plots, "panel %s: %d plots reported: %s", panel, n, r.out);
    for (int i = 0; i < n; i++) {
        ck_assert(p[i].x >= 0 && p[i].y >= 0 && p[i].x + p[i].w <= w && p[i].y + p[i].h <= h);
        long k = ink(img, w, h, &p[i]);
        if (want_data) {
            ck_assert_msg(!strcmp(p[i].state, "data"), "%s: plot %s reports no data", file, p[i].name);
            /* at least a line across half the plot */
            ck_assert_msg(k >= p[i].w / 2, "%s panel %s: plot %s has only %ld drawn pixels", file, panel, p[i].name, k);
        } else {
            ck_assert_msg(k == 0, "%s: plot %s shows %ld pixels of data that is not there", file, p[i].name, k);
        }
    }
    stbi_image_free(img);
    char what[600];
    snprintf(what, sizeof what, "%s panel %s at %dx%d", file, panel, w, h);
    layout L = layout_parse(r.out);
    layout_check(&L, w, h, what);
    layout_free(&L);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/loom_dash_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    const char *names[] = {"stdout", "stderr", "out.png", "in.jsonl", "in.json"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char p[128];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        remove(p);
    }
    rmdir(dir);
}

START_TEST(test_metrics_panels)
{
    char f[512];
    data_path(f, sizeof f, "metrics_mlp.jsonl");
    check_frame(f, "1", 1100, 700, 1, 6);
    check_frame(f, "2", 900, 600, 1, 1);
    check_frame(f, "3", 800, 640, 1, 3);
    check_frame(f, "4", 640, 480, 1, 3);
}
END_TEST

START_TEST(test_trace_panels)
{
    char f[512];
    data_path(f, sizeof f, "trace_mlp.json");
    check_frame(f, "1", 1280, 800, 1, 6);
    check_frame(f, "2", 1024, 640, 1, 1);
}
END_TEST

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc(*n + 1);
    ck_assert_int_eq(fread(b, 1, *n, f), *n);
    b[*n] = 0;
    fclose(f);
    return b;
}

/* A header alone: the device is known, nothing is drawn in any plot. */
START_TEST(test_header_only_is_blank)
{
    char f[512], in[128];
    data_path(f, sizeof f, "metrics_mlp.jsonl");
    size_t n;
    char *text = slurp(f, &n);
    char *nl = strchr(text, '\n');
    ck_assert_ptr_nonnull(nl);
    snprintf(in, sizeof in, "%s/in.jsonl", dir);
    write_file(in, text, (size_t)(nl - text) + 1);
    free(text);
    check_frame(in, "1", 800, 600, 0, 6);
}
END_TEST

static void expect_refusal(const char *file, const char *msg)
{
    char png[128];
    snprintf(png, sizeof png, "%s/out.png", dir);
    remove(png);
    const char *args[] = {"--screenshot", png, file, NULL};
    result r = dash(args);
    ck_assert_msg(r.status != 0, "%s: status 0", file);
    ck_assert_msg(strstr(r.err, "loom-dash: ") && strstr(r.err, msg), "%s: stderr \"%s\", want \"%s\"", file, r.err,
                  msg);
    ck_assert_int_ne(access(png, F_OK), 0);
}

START_TEST(test_bad_files)
{
    char in[128], f[512];
    snprintf(in, sizeof in, "%s/in.jsonl", dir);
    write_file(in, "", 0);
    expect_refusal(in, "no metrics lines");
    unsigned char junk[3000];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)((i * 2654435761u) >> 13);
    write_file(in, junk, sizeof junk);
    expect_refusal(in, "no metrics lines");
    write_file(in, "{\"type\": \"step\", \"time\": 1, \"loss\":", 36); /* a lone half line */
    expect_refusal(in, "no metrics lines");
    snprintf(f, sizeof f, "%s/nonexistent.jsonl", dir);
    expect_refusal(f, "cannot open");
    /* A trace cut short is not JSON any more. */
    data_path(f, sizeof f, "trace_mlp.json");
    size_t n;
    char *text = slurp(f, &n);
    snprintf(in, sizeof in, "%s/in.json", dir);
    write_file(in, text, n / 2);
    free(text);
    expect_refusal(in, "not JSON");
    const char *args[] = {"--size", "10x10", "--screenshot", "x.png", in, NULL};
    result r = dash(args);
    ck_assert_int_eq(r.status, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "--size"));
}
END_TEST

/* A metrics file cut in the middle of a line (a run still writing): what
 * is whole is drawn, the rest is reported. */
START_TEST(test_truncated_metrics)
{
    char f[512], in[128], png[128];
    data_path(f, sizeof f, "metrics_mlp.jsonl");
    size_t n;
    char *text = slurp(f, &n);
    size_t cut = n * 3 / 5;
    while (text[cut] == '\n')
        cut++;
    snprintf(in, sizeof in, "%s/in.jsonl", dir);
    write_file(in, text, cut);
    free(text);
    snprintf(png, sizeof png, "%s/out.png", dir);
    const char *args[] = {"--screenshot", png, "--print-layout", "--size", "900x600", in, NULL};
    result r = dash(args);
    ck_assert_msg(r.status == 0, "status %d: %s", r.status, r.err);
    ck_assert_ptr_nonnull(strstr(r.err, "incomplete last line"));
    int w, h, c;
    unsigned char *img = stbi_load(png, &w, &h, &c, 3);
    ck_assert_ptr_nonnull(img);
    ck_assert(w == 900 && h == 600);
    plot p[8];
    int np = parse_plots(r.out, p, 8);
    ck_assert_int_eq(np, 6);
    for (int i = 0; i < np; i++)
        if (!strcmp(p[i].name, "loss") || !strcmp(p[i].name, "plan"))
            ck_assert_int_ge(ink(img, w, h, &p[i]), p[i].w / 2);
    stbi_image_free(img);
}
END_TEST

/* The ops panel: each op's whole name (no "dense0/kernel/upda"), column
 * headers, and a legend whose swatches are the bars' colours. */
static void check_ops(const char *file, const char *panel, int w, int h, int names, const char *const *heads)
{
    char png[128], size[32], err[256];
    snprintf(png, sizeof png, "%s/out.png", dir);
    snprintf(size, sizeof size, "%dx%d", w, h);
    const char *args[] = {"--screenshot", png, "--print-layout", "--size", size, "--panel", panel, file, NULL};
    result r = dash(args);
    ck_assert_msg(r.status == 0, "status %d: %s", r.status, r.err);
    dash_model m;
    dash_model_init(&m);
    ck_assert_msg(dash_load_trace(&m, file, err, sizeof err) == 0, "%s", err);
    ck_assert_int_ge(m.nops, names);
    layout L = layout_parse(r.out);
    char what[600];
    snprintf(what, sizeof what, "%s panel %s at %s", file, panel, size);
    layout_check(&L, w, h, what);
    for (int i = 0; i < names; i++)
        ck_assert_msg(layout_find(&L, m.ops[i].name), "panel %s at %s: op %s is not shown whole", panel, size,
                      m.ops[i].name);
    for (int i = 0; heads[i]; i++) {
        /* "a|b": either */
        char alt[64];
        snprintf(alt, sizeof alt, "%s", heads[i]);
        char *bar = strchr(alt, '|');
        if (bar)
            *bar = 0;
        ck_assert_msg(layout_find(&L, alt) || (bar && layout_find(&L, bar + 1)), "panel %s at %s: no column header \"%s\"",
                      panel, size, heads[i]);
    }
    /* the legend names the first op's kind; its swatch, left of the name,
     * has the colour of that op's bar in the plot */
    plot p[8];
    int np = parse_plots(r.out, p, 8);
    ck_assert_int_ge(np, 1);
    const plot *ops = NULL;
    for (int i = 0; i < np; i++)
        if (!strcmp(p[i].name, "ops"))
            ops = &p[i];
    ck_assert_ptr_nonnull(ops);
    const lbox *kind = NULL;
    for (int i = 0; i < L.n && !kind; i++)
        if (L.b[i].kind == 't' && !strcmp(L.b[i].text, m.ops[0].op) && L.b[i].y < ops->y)
            kind = &L.b[i];
    ck_assert_msg(kind != NULL, "panel %s: no legend entry for %s above the plot", panel, m.ops[0].op);
    int iw, ih, comp;
    unsigned char *img = stbi_load(png, &iw, &ih, &comp, 3);
    ck_assert_ptr_nonnull(img);
    int sx = (int)(kind->x - kind->h * 0.6), sy = (int)(kind->y + kind->h / 2);
    const unsigned char *sw = img + ((size_t)sy * (size_t)iw + (size_t)sx) * 3;
    unsigned rgb = (unsigned)sw[0] << 16 | (unsigned)sw[1] << 8 | sw[2];
    ck_assert_msg(rgb != ops->bg && rgb != 0x1b1f27, "panel %s: no swatch left of \"%s\"", panel, kind->text);
    plot q = *ops;
    q.bg = rgb;
    long same = 0;
    for (int y = q.y + 1; y < q.y + q.h - 1; y++)
        for (int x = q.x + 1; x < q.x + q.w - 1; x++) {
            const unsigned char *c = img + ((size_t)y * (size_t)iw + (size_t)x) * 3;
            same += ((unsigned)c[0] << 16 | (unsigned)c[1] << 8 | c[2]) == rgb;
        }
    ck_assert_msg(same >= 20, "panel %s: the legend's %06x for %s is on %ld pixels of the bars", panel, rgb,
                  m.ops[0].op, same);
    stbi_image_free(img);
    layout_free(&L);
    dash_model_free(&m);
}

START_TEST(test_ops_panel_names)
{
    char f[512];
    data_path(f, sizeof f, "trace_mlp.json");
    /* the bar's header shortens to what fits over it */
    const char *detail[] = {"op", "kind", "device time|time", "share", "total ms", "mean us", "GFLOP/s", "GB/s", NULL};
    const char *brief[] = {"op", "device time|time", "GFLOP/s", NULL};
    check_ops(f, "2", 1024, 640, 15, detail);
    check_ops(f, "2", 640, 480, 10, detail);
    check_ops(f, "1", 1280, 800, 8, brief);
    check_ops(f, "1", 800, 600, 8, brief);
}
END_TEST

/* stdout is for --print-layout and --version only. */
START_TEST(test_stdout_quiet_and_version)
{
    char f[512], png[128];
    data_path(f, sizeof f, "trace_mlp.json");
    snprintf(png, sizeof png, "%s/out.png", dir);
    const char *a1[] = {"--screenshot", png, f, NULL};
    result r = dash(a1);
    ck_assert_int_eq(r.status, 0);
    ck_assert_msg(r.out[0] == 0, "stdout: \"%s\"", r.out);
    ck_assert_int_eq(access(png, F_OK), 0);
    const char *a2[] = {"--version", NULL};
    r = dash(a2);
    ck_assert_int_eq(r.status, 0);
    ck_assert_msg(!strncmp(r.out, "loom-dash 0.", 12) && strstr(r.out, "(commit "), "%s", r.out);
    const char *a3[] = {"--print-layout", f, NULL};
    r = dash(a3);
    ck_assert_int_eq(r.status, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "--print-layout goes with --screenshot"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dash");
    TCase *t = tcase_create("screenshot");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 240);
    tcase_add_test(t, test_metrics_panels);
    tcase_add_test(t, test_trace_panels);
    tcase_add_test(t, test_header_only_is_blank);
    tcase_add_test(t, test_bad_files);
    tcase_add_test(t, test_truncated_metrics);
    tcase_add_test(t, test_ops_panel_names);
    tcase_add_test(t, test_stdout_quiet_and_version);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
