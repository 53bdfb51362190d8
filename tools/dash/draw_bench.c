/* The bench view: `loom bench` results of one or more files, the devices
 * side by side. One plot per suite; in it one group of bars per figure
 * ("sgemm 1024"), one bar per device, each group on its own scale (units
 * differ inside a suite). A reference is a white outline to its height
 * with a tick on top and the ratio printed; a WRONG result is a red,
 * striped bar that is never marked best. As in the run view, only data is
 * drawn inside a plot area; titles and group labels sit outside. */
#include "bench.h"
#include "draw.h"

#include <GLFW/glfw3.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define C_WRONG 0xff2d2d
#define C_WRONG_STRIPE 0x6e1212
#define C_REF 0xffffff
#define C_BEST 0xffe27a

/* The devices' colours: no red, which says WRONG. */
static const unsigned palette[] = {C_BLUE, C_ORANGE, C_PURPLE, C_CYAN, C_GREEN, C_PINK, C_YELLOW, 0x9aa4b5};
#define NPAL ((int)(sizeof palette / sizeof palette[0]))
#define MAX_GROUPS 32
#define LINE1 11.0f             /* a line of text at scale 1 */

typedef struct bctx {
    const dash_bench *b;
    dash_view *v;
    float s;
} bctx;

static unsigned col_color(int c)
{
    return palette[c % NPAL];
}

/* Text turned a quarter left, read bottom to top, starting at (x, y); its
 * glyphs lie right of x. */
static void text_up(float x, float y, unsigned c, const char *s)
{
    glPushMatrix();
    glTranslatef(x, y, 0);
    glRotatef(-90, 0, 0, 1);
    dash_text(0, 0, 1, c, s);
    glPopMatrix();
}

/* The longest prefix of s that fits w pixels at scale 1, into out. */
static void fit(char *out, size_t n, const char *s, float w)
{
    snprintf(out, n, "%s", s);
    while (strlen(out) > 1 && dash_text_width(1, out) > w)
        out[strlen(out) - 1] = 0;
}

static int suite_has_column(const dash_bench *b, const char *suite, int c)
{
    for (int i = 0; i < b->nres; i++)
        if (b->res[i].column == c && !strcmp(b->res[i].suite, suite))
            return 1;
    return 0;
}

/* A plot area like the run view's: registered for the screenshot. */
static void add_plot(bctx *c, const char *name, dash_rect r)
{
    dash_view *v = c->v;
    if (v->nplots >= DASH_MAX_PLOTS)
        return;
    snprintf(v->plots[v->nplots].name, sizeof v->plots[0].name, "%s", name);
    v->plots[v->nplots].r = r;
    v->plots[v->nplots].has_data = 0;
    v->nplots++;
}

/* A bar's label: its figure, and the ratio to the reference. */
static void bar_label(char *out, size_t n, const dash_bench_result *r)
{
    char v[32];
    if (!r->correct) {
        snprintf(out, n, "WRONG");
        return;
    }
    dash_fmt_num(v, sizeof v, r->median);
    if (!isnan(r->ratio))
        snprintf(out, n, "%s %.2fx", v, r->ratio);
    else
        snprintf(out, n, "%s", v);
}

static void stripes(float x, float y, float w, float h)
{
    dash_fill(x, y, w, h, C_WRONG);
    for (float k = y + 3; k + 2 < y + h; k += 6)
        dash_fill(x, k, w, 2, C_WRONG_STRIPE);
}

/* One group of bars in slot [x, x+w) of plot r; returns 1 if it drew. */
static int bar_group(bctx *c, dash_rect r, float x, float w, const char *suite, const char *name, const int *cols,
                     int ncols)
{
    const dash_bench *b = c->b;
    double top = 0;
    for (int k = 0; k < ncols; k++) {
        const dash_bench_result *q = dash_bench_find(b, cols[k], suite, name);
        if (!q)
            continue;
        if (!isnan(q->median))
            top = fmax(top, q->median);
        if (!isnan(q->ref_median))
            top = fmax(top, q->ref_median);
    }
    if (!(top > 0))
        top = 1;
    int best = dash_bench_best(b, suite, name), drew = 0;
    float pad = fmaxf(1, w * 0.1f), bw = (w - 2 * pad) / (float)ncols;
    float base = r.y + r.h - 1, full = r.h - 8; /* 8: room for the tick and the best mark */
    for (int k = 0; k < ncols; k++) {
        const dash_bench_result *q = dash_bench_find(b, cols[k], suite, name);
        if (!q)
            continue;
        float bx = x + pad + bw * (float)k, inner = bw > 3 ? bw - 1 : bw;
        float h = isnan(q->median) ? full : (float)(q->median / top) * full;
        if (h < 1)
            h = 1;
        if (!q->correct)
            stripes(bx, base - h, inner, h);
        else
            dash_fill(bx, base - h, inner, h, col_color(cols[k]));
        drew = 1;
        if (q->correct && !isnan(q->ref_median)) {
            float rh = (float)(q->ref_median / top) * full;
            dash_outline((dash_rect){bx + 0.5f, base - rh, inner - 1, rh}, C_REF);
            dash_fill(bx - 1, base - rh - 1, inner + 2, 2, C_REF);
        }
        if (cols[k] == best) {
            /* a small triangle over the bar, pointing at it */
            float cx = bx + inner / 2, ty = base - h - 7;
            glColor3ub(C_BEST >> 16, (C_BEST >> 8) & 255, C_BEST & 255);
            glBegin(GL_TRIANGLES);
            glVertex2f(cx - 3, ty);
            glVertex2f(cx + 3, ty);
            glVertex2f(cx, ty + 5);
            glEnd();
        }
        /* The label, up the bar: above it when there is room, else inside. */
        char lab[64];
        bar_label(lab, sizeof lab, q);
        float tw = dash_text_width(1, lab);
        if (bw < 11)
            continue;
        float lx = bx + (inner - 8) / 2, above = cols[k] == best ? 12 : 4;
        if (base - h - above - tw >= r.y + 2)
            text_up(lx, base - h - above, q->correct ? C_TEXT : C_WRONG, lab);
        else if (h - 4 >= tw)
            text_up(lx, base - 3, 0x0b0d10, lab);
    }
    return drew;
}

static void suite_plot(bctx *c, dash_rect box, const char *suite)
{
    const dash_bench *b = c->b;
    dash_fill(box.x, box.y, box.w, box.h, C_PANEL);
    /* the title, and the references this suite compares with */
    float tx = box.x + 8 + dash_text(box.x + 8, box.y + 5, c->s, C_TEXT, suite) + 14;
    char refs[160] = "";
    for (int i = 0; i < b->nres; i++) {
        const dash_bench_result *q = &b->res[i];
        if (strcmp(q->suite, suite) || !q->ref_name[0] || isnan(q->ref_median) || strstr(refs, q->ref_name))
            continue;
        size_t k = strlen(refs);
        snprintf(refs + k, sizeof refs - k, "%s%s", k ? ", " : "reference: ", q->ref_name);
    }
    if (refs[0]) {
        float ry = box.y + 5 + (c->s - 1) * 3;
        dash_outline((dash_rect){tx, ry + 1, 7, 8}, C_REF);
        char fitted[160];
        fit(fitted, sizeof fitted, refs, box.x + box.w - tx - 22);
        dash_text(tx + 12, ry, 1, C_DIM, fitted);
    }
    const char *groups[MAX_GROUPS];
    int ng = dash_bench_groups(b, suite, groups, MAX_GROUPS);
    float label_h = 3 * LINE1 + 4;
    dash_rect r = {box.x + 8, box.y + 14 * c->s + 12, box.w - 16, 0};
    r.h = box.y + box.h - 6 - label_h - r.y;
    add_plot(c, suite, r);
    dash_outline(r, C_FRAME);
    int cols[DASH_BENCH_MAX_COLUMNS], nc = 0;
    for (int k = 0; k < b->ncols; k++)
        if (suite_has_column(b, suite, k))
            cols[nc++] = k;
    if (ng == 0 || nc == 0 || r.h < 16)
        return;
    float gw = r.w / (float)ng;
    int drew = 0;
    for (int g = 0; g < ng; g++) {
        float gx = r.x + gw * (float)g;
        drew |= bar_group(c, r, gx, gw, suite, groups[g], cols, nc);
        if (g)
            dash_fill(gx, r.y + r.h + 2, 1, label_h - 4, C_FRAME);
        /* under the plot: the name over two lines, then the unit and which
         * way is better */
        char line[96], rest[96];
        fit(line, sizeof line, groups[g], gw - 6);
        size_t used = strlen(line);
        if (used < strlen(groups[g])) {
            const char *sp = strrchr(line, ' ');
            if (sp && sp > line) {
                used = (size_t)(sp - line) + 1;
                line[used - 1] = 0;
            }
        }
        fit(rest, sizeof rest, groups[g] + used, gw - 6);
        const dash_bench_result *any = NULL;
        for (int k = 0; k < nc && !any; k++)
            any = dash_bench_find(b, cols[k], suite, groups[g]);
        char unit[64] = "";
        if (any)
            snprintf(unit, sizeof unit, "%s %s", any->unit, any->higher_is_better ? "(higher)" : "(lower)");
        char ufit[64];
        if (any && dash_text_width(1, unit) > gw - 6)
            snprintf(unit, sizeof unit, "%s", any->unit);
        fit(ufit, sizeof ufit, unit, gw - 6);
        float ly = r.y + r.h + 4;
        dash_text(gx + 4, ly, 1, C_TEXT, line);
        if (rest[0])
            dash_text(gx + 4, ly + LINE1, 1, C_TEXT, rest);
        dash_text(gx + 4, ly + 2 * LINE1, 1, C_DIM, ufit);
    }
    if (drew)
        c->v->plots[c->v->nplots - 1].has_data = 1;
}

/* The files, the devices' colours; returns the height used. */
static float header(bctx *c)
{
    const dash_bench *b = c->b;
    dash_view *v = c->v;
    int shown = b->nfiles < 4 ? b->nfiles : 4;
    float h = 8 + 14 * (c->s + 1) + LINE1 * (float)(shown + (b->nfiles > shown)) + 6 + 14 * c->s + 6;
    dash_fill(0, 0, (float)v->width, h, C_PANEL);
    float x = 10 + dash_text(10, 8, c->s + 1, C_TEXT, "loom bench") + 16;
    char t[256];
    snprintf(t, sizeof t, "%d file%s, %d devices, %d results", b->nfiles, b->nfiles == 1 ? "" : "s", b->ncols,
             b->nres);
    dash_text(x, 8 + 3 * c->s, c->s, C_DIM, t);
    if (v->status)
        dash_text((float)v->width - dash_text_width(c->s, v->status) - 12, 8, c->s, C_GREEN, v->status);
    float y = 8 + 14 * (c->s + 1);
    for (int i = 0; i < shown; i++, y += LINE1) {
        const dash_bench_file *f = &b->files[i];
        char line[640], fitted[640];
        snprintf(line, sizeof line, "%s  |  %s  |  %s  |  loom %s (%.12s)  |  %s%s", f->path,
                 f->hostname[0] ? f->hostname : "?", f->cpu_model[0] ? f->cpu_model : "?",
                 f->version[0] ? f->version : "?", f->commit[0] ? f->commit : "?", f->date[0] ? f->date : "?",
                 f->quick == 1 ? "  |  quick" : "");
        fit(fitted, sizeof fitted, line, (float)v->width - 20);
        dash_text(10, y, 1, C_DIM, fitted);
    }
    if (b->nfiles > shown) {
        snprintf(t, sizeof t, "and %d more files", b->nfiles - shown);
        dash_text(10, y, 1, C_DIM, t);
        y += LINE1;
    }
    /* a swatch per device; at scale 1 when the names do not fit */
    y += 6;
    float s = c->s;
    for (;;) {
        float need = 0;
        for (int k = 0; k < b->ncols; k++)
            need += 10 * s + dash_text_width(s, b->cols[k].label) + 14 * s;
        if (need <= (float)v->width - 20 || s <= 1)
            break;
        s = 1;
    }
    x = 10;
    for (int k = 0; k < b->ncols; k++) {
        const char *lab = b->cols[k].label;
        float w = 10 * s + dash_text_width(s, lab) + 14 * s;
        if (x + w > (float)v->width - 10)
            break;
        dash_fill(x, y + 2, 7 * s, 7 * s, col_color(k));
        x += 10 * s;
        x += dash_text(x, y, s, C_TEXT, lab) + 14 * s;
    }
    return h;
}

static void footer(bctx *c)
{
    dash_view *v = c->v;
    float y = (float)v->height - LINE1 - 2, x = 10;
    x += dash_text(x, y, 1, C_DIM, "median of each device, one scale per group;") + 8;
    dash_outline((dash_rect){x, y + 1, 7, 8}, C_REF);
    x += 12;
    x += dash_text(x, y, 1, C_DIM, "reference, ratio after the figure;") + 8;
    stripes(x, y, 8, 9);
    x += 12;
    x += dash_text(x, y, 1, C_DIM, "WRONG (not ranked);") + 8;
    x += dash_text(x, y, 1, C_DIM, "triangle: best") + 20;
    dash_text(x, y, 1, C_DIM, "q quit");
}

void dash_draw_bench(const dash_bench *b, dash_view *v)
{
    bctx c = {b, v, v->width >= 1000 && v->height >= 640 ? 2.0f : 1.0f};
    v->nplots = 0;
    glViewport(0, 0, v->width, v->height);
    glMatrixMode(GL_PROJECTION);
    glLoadIdentity();
    glOrtho(0, v->width, v->height, 0, -1, 1);
    glMatrixMode(GL_MODELVIEW);
    glLoadIdentity();
    glDisable(GL_DEPTH_TEST);
    glClearColor((C_BG >> 16) / 255.0f, ((C_BG >> 8) & 255) / 255.0f, (C_BG & 255) / 255.0f, 1);
    glClear(GL_COLOR_BUFFER_BIT);
    float top = header(&c) + 8, bottom = LINE1 + 8;
    dash_rect area = {8, top, (float)v->width - 16, (float)v->height - top - bottom};
    const char *suites[DASH_MAX_PLOTS];
    int n = dash_bench_suites(b, suites, DASH_MAX_PLOTS);
    if (n > 0 && area.h > 40) {
        int cols = n <= 3 ? n : (n + 1) / 2, rows = (n + cols - 1) / cols;
        float g = 8, w = (area.w - g * (float)(cols - 1)) / (float)cols, h = (area.h - g * (float)(rows - 1)) / (float)rows;
        for (int i = 0; i < n; i++) {
            dash_rect box = {area.x + (w + g) * (float)(i % cols), area.y + (h + g) * (float)(i / cols), w, h};
            suite_plot(&c, box, suites[i]);
        }
    }
    footer(&c);
}
