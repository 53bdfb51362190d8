/*
 * loom-dash: a small window over a loom run.
 *
 *   loom-dash --follow metrics.jsonl     follow a metrics file live
 *   loom-dash metrics.jsonl | trace.json show a file (a trace is detected)
 *   loom-dash --screenshot out.png [--size WxH] [--panel N] FILE
 *                                        render one frame to a PNG and exit
 *   loom-dash --bench results.json [more.json ...]
 *                                        loom bench results, devices side by side
 *   --print-layout                       with --screenshot: print the plot areas,
 *                                        texts and marks
 *   --version
 *
 * Keys: space pauses, q or Esc quits, 1-4 switch panels.
 */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"
#include "draw.h"
#include "loom_commit.h"

#include <GLFW/glfw3.h>
#include <GL/glext.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <stb/stb_image_write.h>

typedef struct app {
    const char *file;
    int follow;                 /* metrics, read as it grows */
    int trace;
    int bench;                  /* loom bench results files, drawn side by side */
    const char *files[DASH_BENCH_MAX_FILES];
    int nfiles;
    dash_bench b;
    const char *shot;
    int print_layout;           /* the screenshot's plot areas and texts on stdout, for tests */
    int width, height, panel;
    int paused;
    dash_follow f;
    dash_model m;
} app;

static void usage(FILE *o)
{
    fprintf(o, "usage: loom-dash [--follow] FILE [--screenshot OUT.png [--print-layout]] [--size WxH] [--panel 1-4]\n"
               "       loom-dash --bench RESULTS.json [MORE.json ...] [--screenshot OUT.png [--print-layout]] [--size WxH]\n"
               "       loom-dash --version\n"
               "  FILE is a metrics file (JSON lines from loom train --metrics) or a Chrome\n"
               "  trace (from --profile). Keys: space pause, q/Esc quit, 1-4 panels:\n"
               "  overview, ops, device, training. --bench shows files from loom bench --json.\n"
               "  --screenshot renders one frame to a PNG and exits; --print-layout then prints\n"
               "  each plot area (\"plot NAME X Y W H data|empty BGCOLOR\"), each text\n"
               "  (\"text X Y W H STRING\") and each mark a text must not cross (\"mark X Y W H\").\n");
}

static int parse_args(app *a, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            usage(stdout);
            return -1;
        } else if (!strcmp(s, "--version")) {
            printf("loom-dash %s (commit %s)\n", LOOM_DASH_VERSION, LOOM_COMMIT);
            return -1;
        } else if (!strcmp(s, "--print-layout")) {
            a->print_layout = 1;
        } else if (!strcmp(s, "--follow") && i + 1 < argc && a->nfiles < DASH_BENCH_MAX_FILES) {
            a->follow = 1;
            a->file = argv[++i];
            a->files[a->nfiles++] = a->file;
        } else if (!strcmp(s, "--bench")) {
            a->bench = 1;
        } else if (!strcmp(s, "--screenshot") && i + 1 < argc) {
            a->shot = argv[++i];
        } else if (!strcmp(s, "--size") && i + 1 < argc) {
            if (sscanf(argv[++i], "%dx%d", &a->width, &a->height) != 2 || a->width < 64 || a->height < 64 ||
                a->width > 8192 || a->height > 8192) {
                fprintf(stderr, "loom-dash: --size wants WxH between 64x64 and 8192x8192, not \"%s\"\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(s, "--panel") && i + 1 < argc) {
            a->panel = atoi(argv[++i]);
            if (a->panel < 1 || a->panel > DASH_PANELS) {
                fprintf(stderr, "loom-dash: --panel wants 1 to %d\n", DASH_PANELS);
                return 2;
            }
        } else if (s[0] == '-' && s[1]) {
            fprintf(stderr, "loom-dash: unknown option %s\n", s);
            usage(stderr);
            return 2;
        } else if (a->nfiles < DASH_BENCH_MAX_FILES) {
            a->files[a->nfiles++] = s;
            if (!a->file)
                a->file = s;
        } else {
            fprintf(stderr, "loom-dash: at most %d files\n", DASH_BENCH_MAX_FILES);
            return 2;
        }
    }
    if (a->bench && a->follow) {
        fprintf(stderr, "loom-dash: --bench shows saved results; it does not --follow\n");
        return 2;
    }
    if (!a->bench && a->nfiles > 1) {
        fprintf(stderr, "loom-dash: one file at a time (%s and %s); several are for --bench\n", a->files[0],
                a->files[1]);
        return 2;
    }
    if (!a->file) {
        usage(stderr);
        return 2;
    }
    if (a->print_layout && !a->shot) {
        fprintf(stderr, "loom-dash: --print-layout goes with --screenshot\n");
        return 2;
    }
    return 0;
}

/* Reads what the file has now; after a restart, from the start. */
static int pump(app *a)
{
    for (int tries = 0; tries < 4; tries++) {
        int n = dash_follow_poll(&a->f, dash_model_line_cb, &a->m);
        if (n != DASH_RESTART)
            return n;
        dash_model_free(&a->m);
    }
    return 0;
}

static int load(app *a, char *err, size_t errlen)
{
    dash_model_init(&a->m);
    dash_bench_init(&a->b);
    if (a->bench) {
        for (int i = 0; i < a->nfiles; i++)
            if (dash_bench_load(&a->b, a->files[i], err, errlen) < 0)
                return -1;
        dash_bench_label(&a->b);
        if (a->b.skipped)
            fprintf(stderr, "loom-dash: skipped %d results without a device, suite, name or figure\n", a->b.skipped);
        return 0;
    }
    if (!a->follow && dash_is_trace(a->file)) {
        a->trace = 1;
        return dash_load_trace(&a->m, a->file, err, errlen);
    }
    if (dash_follow_open(&a->f, a->file) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (pump(a) < 0) {
        snprintf(err, errlen, "%s: out of memory", a->file);
        return -1;
    }
    return 0;
}

/* ---- the headless frame ---- */

typedef struct fbo_api {
    PFNGLGENFRAMEBUFFERSPROC gen_fb;
    PFNGLBINDFRAMEBUFFERPROC bind_fb;
    PFNGLDELETEFRAMEBUFFERSPROC del_fb;
    PFNGLGENRENDERBUFFERSPROC gen_rb;
    PFNGLBINDRENDERBUFFERPROC bind_rb;
    PFNGLDELETERENDERBUFFERSPROC del_rb;
    PFNGLRENDERBUFFERSTORAGEPROC storage;
    PFNGLFRAMEBUFFERRENDERBUFFERPROC attach;
    PFNGLCHECKFRAMEBUFFERSTATUSPROC check;
} fbo_api;

static int fbo_load(fbo_api *f)
{
    f->gen_fb = (PFNGLGENFRAMEBUFFERSPROC)glfwGetProcAddress("glGenFramebuffers");
    f->bind_fb = (PFNGLBINDFRAMEBUFFERPROC)glfwGetProcAddress("glBindFramebuffer");
    f->del_fb = (PFNGLDELETEFRAMEBUFFERSPROC)glfwGetProcAddress("glDeleteFramebuffers");
    f->gen_rb = (PFNGLGENRENDERBUFFERSPROC)glfwGetProcAddress("glGenRenderbuffers");
    f->bind_rb = (PFNGLBINDRENDERBUFFERPROC)glfwGetProcAddress("glBindRenderbuffer");
    f->del_rb = (PFNGLDELETERENDERBUFFERSPROC)glfwGetProcAddress("glDeleteRenderbuffers");
    f->storage = (PFNGLRENDERBUFFERSTORAGEPROC)glfwGetProcAddress("glRenderbufferStorage");
    f->attach = (PFNGLFRAMEBUFFERRENDERBUFFERPROC)glfwGetProcAddress("glFramebufferRenderbuffer");
    f->check = (PFNGLCHECKFRAMEBUFFERSTATUSPROC)glfwGetProcAddress("glCheckFramebufferStatus");
    return f->gen_fb && f->bind_fb && f->del_fb && f->gen_rb && f->bind_rb && f->del_rb && f->storage &&
           f->attach && f->check;
}

/* Renders into an offscreen framebuffer of the asked size (the X screen of
 * xvfb-run is only 640x480), reads it back and writes the PNG. Prints the
 * plot areas so a test can look inside them. */
static int screenshot(app *a, const char *status)
{
    glfwWindowHint(GLFW_VISIBLE, GLFW_FALSE);
    GLFWwindow *w = glfwCreateWindow(64, 64, "loom-dash", NULL, NULL);
    if (!w) {
        const char *d = NULL;
        glfwGetError(&d);
        fprintf(stderr, "loom-dash: cannot create an OpenGL context: %s\n", d ? d : "unknown error");
        return 1;
    }
    glfwMakeContextCurrent(w);
    fbo_api fb;
    GLint maxrb = 0;
    glGetIntegerv(GL_MAX_RENDERBUFFER_SIZE, &maxrb);
    if (!fbo_load(&fb) || maxrb < a->width || maxrb < a->height) {
        fprintf(stderr, "loom-dash: this OpenGL has no framebuffer objects of %dx%d\n", a->width, a->height);
        glfwDestroyWindow(w);
        return 1;
    }
    GLuint fbo, rb;
    fb.gen_fb(1, &fbo);
    fb.bind_fb(GL_FRAMEBUFFER, fbo);
    fb.gen_rb(1, &rb);
    fb.bind_rb(GL_RENDERBUFFER, rb);
    fb.storage(GL_RENDERBUFFER, GL_RGBA8, a->width, a->height);
    fb.attach(GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_RENDERBUFFER, rb);
    int rc = 0;
    unsigned char *px = NULL;
    dash_box *boxes = NULL;
    if (fb.check(GL_FRAMEBUFFER) != GL_FRAMEBUFFER_COMPLETE) {
        fprintf(stderr, "loom-dash: the offscreen framebuffer is incomplete\n");
        rc = 1;
        goto out;
    }
    dash_view v = {0};
    v.width = a->width;
    v.height = a->height;
    v.panel = a->panel;
    v.status = status;
    v.source = a->file;
    if (a->print_layout) {
        boxes = calloc(4096, sizeof *boxes);
        if (!boxes) {
            fprintf(stderr, "loom-dash: out of memory for the layout\n");
            rc = 1;
            goto out;
        }
        v.boxes = boxes;
        v.boxes_cap = 4096;
    }
    if (a->bench)
        dash_draw_bench(&a->b, &v);
    else
        dash_draw(&a->m, &v);
    glFinish();
    size_t stride = (size_t)a->width * 4;
    px = malloc(stride * (size_t)a->height);
    unsigned char *row = malloc(stride);
    if (!px || !row) {
        free(row);
        fprintf(stderr, "loom-dash: out of memory for a %dx%d frame\n", a->width, a->height);
        rc = 1;
        goto out;
    }
    glPixelStorei(GL_PACK_ALIGNMENT, 1);
    glReadPixels(0, 0, a->width, a->height, GL_RGBA, GL_UNSIGNED_BYTE, px);
    for (int y = 0; y < a->height / 2; y++) { /* GL rows go bottom up */
        memcpy(row, px + (size_t)y * stride, stride);
        memcpy(px + (size_t)y * stride, px + (size_t)(a->height - 1 - y) * stride, stride);
        memcpy(px + (size_t)(a->height - 1 - y) * stride, row, stride);
    }
    free(row);
    if (!stbi_write_png(a->shot, a->width, a->height, 4, px, (int)stride)) {
        fprintf(stderr, "loom-dash: cannot write %s\n", a->shot);
        rc = 1;
        goto out;
    }
    for (int i = 0; a->print_layout && i < v.nplots; i++)
        printf("plot %s %d %d %d %d %s %06x\n", v.plots[i].name, (int)ceilf(v.plots[i].r.x),
               (int)ceilf(v.plots[i].r.y), (int)floorf(v.plots[i].r.w), (int)floorf(v.plots[i].r.h),
               v.plots[i].has_data ? "data" : "empty", DASH_PLOT_BG);
    for (int i = 0; i < v.nboxes; i++) {
        const dash_box *b = &v.boxes[i];
        if (b->kind == 't')
            printf("text %.1f %.1f %.1f %.1f %s\n", b->r.x, b->r.y, b->r.w, b->r.h, b->text);
        else
            printf("mark %.1f %.1f %.1f %.1f\n", b->r.x, b->r.y, b->r.w, b->r.h);
    }
    if (v.nboxes == v.boxes_cap && boxes)
        fprintf(stderr, "loom-dash: the layout holds only the first %d texts and marks\n", v.boxes_cap);
out:
    dash_record_into(NULL);
    free(boxes);
    free(px);
    fb.bind_fb(GL_FRAMEBUFFER, 0);
    fb.del_rb(1, &rb);
    fb.del_fb(1, &fbo);
    glfwDestroyWindow(w);
    return rc;
}

/* ---- the window ---- */

static void on_key(GLFWwindow *w, int key, int scancode, int action, int mods)
{
    (void)scancode;
    (void)mods;
    app *a = glfwGetWindowUserPointer(w);
    if (action != GLFW_PRESS)
        return;
    if (key == GLFW_KEY_Q || key == GLFW_KEY_ESCAPE)
        glfwSetWindowShouldClose(w, GLFW_TRUE);
    else if (key == GLFW_KEY_SPACE)
        a->paused = !a->paused;
    else if (key >= GLFW_KEY_1 && key < GLFW_KEY_1 + DASH_PANELS)
        a->panel = key - GLFW_KEY_1 + 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void live_status(app *a, char *b, size_t n)
{
    if (a->paused)
        snprintf(b, n, "paused");
    else if (a->trace)
        snprintf(b, n, "trace");
    else if (a->bench)
        snprintf(b, n, "results");
    else if (!dash_follow_exists(&a->f))
        snprintf(b, n, "waiting for %s", a->file);
    else if (a->m.ended)
        snprintf(b, n, "run ended");
    else {
        double idle = now_s() - a->f.last_growth;
        if (idle > 5)
            snprintf(b, n, "following (no new lines for %.0f s)", idle);
        else
            snprintf(b, n, "following");
    }
}

static int window_loop(app *a)
{
    GLFWwindow *w = glfwCreateWindow(a->width, a->height, "loom-dash", NULL, NULL);
    if (!w) {
        const char *d = NULL;
        glfwGetError(&d);
        fprintf(stderr, "loom-dash: cannot open a window: %s\n", d ? d : "unknown error");
        return 1;
    }
    glfwSetWindowUserPointer(w, a);
    glfwSetKeyCallback(w, on_key);
    glfwMakeContextCurrent(w);
    glfwSwapInterval(1);
    double next_poll = 0;
    while (!glfwWindowShouldClose(w)) {
        double t = now_s();
        if (!a->trace && !a->bench && !a->paused && t >= next_poll) {
            if (pump(a) < 0) {
                fprintf(stderr, "loom-dash: out of memory reading %s\n", a->file);
                break;
            }
            next_poll = t + 0.25;
        }
        dash_view v = {0};
        glfwGetFramebufferSize(w, &v.width, &v.height);
        char st[600];
        live_status(a, st, sizeof st);
        v.panel = a->panel;
        v.status = st;
        v.source = a->file;
        if (v.width > 0 && v.height > 0 && a->bench)
            dash_draw_bench(&a->b, &v);
        else if (v.width > 0 && v.height > 0)
            dash_draw(&a->m, &v);
        glfwSwapBuffers(w);
        glfwWaitEventsTimeout(0.1);
    }
    glfwDestroyWindow(w);
    return 0;
}

static void glfw_error(int code, const char *msg)
{
    (void)code;
    (void)msg; /* reported where the failing call is checked */
}

int main(int argc, char **argv)
{
    app a = {0};
    a.width = 1280;
    a.height = 800;
    a.panel = 1;
    int rc = parse_args(&a, argc, argv);
    if (rc)
        return rc < 0 ? 0 : rc; /* -1: --help or --version, done */
    char err[512] = "";
    if (load(&a, err, sizeof err) < 0) {
        fprintf(stderr, "loom-dash: %s\n", err);
        dash_model_free(&a.m);
        dash_bench_free(&a.b);
        return 1;
    }
    if (a.shot) {
        /* A picture needs something to show: a file with no metrics line is
         * an error, not a blank PNG. */
        if (!a.trace && !a.bench) {
            if (!dash_follow_exists(&a.f)) {
                fprintf(stderr, "loom-dash: cannot open %s\n", a.file);
                rc = 1;
            } else if (a.m.lines - a.m.bad_lines == 0) {
                fprintf(stderr, "loom-dash: %s: no metrics lines (%lld lines were not metrics JSON)\n", a.file,
                        (long long)a.m.bad_lines);
                rc = 1;
            } else {
                if (a.m.bad_lines)
                    fprintf(stderr, "loom-dash: %s: skipped %lld lines that are not metrics JSON\n", a.file,
                            (long long)a.m.bad_lines);
                if (a.f.flen)
                    fprintf(stderr, "loom-dash: %s: ignored an incomplete last line (%zu bytes)\n", a.file,
                            a.f.flen);
            }
        }
    }
    if (rc == 0) {
        glfwSetErrorCallback(glfw_error);
        if (!glfwInit()) {
            const char *d = NULL;
            glfwGetError(&d);
            fprintf(stderr, "loom-dash: no display (%s); for a headless frame run under xvfb-run -a\n",
                    d ? d : "glfwInit failed");
            rc = 1;
        } else {
            rc = a.shot ? screenshot(&a, a.bench ? "results" : a.trace ? "trace" : a.m.ended ? "run ended" : "snapshot")
                        : window_loop(&a);
            glfwTerminate();
        }
    }
    if (!a.trace && !a.bench)
        dash_follow_close(&a.f);
    dash_model_free(&a.m);
    dash_bench_free(&a.b);
    return rc;
}
