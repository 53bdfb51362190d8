/* The bench view: `loom bench` results of one or more files, the devices
 * side by side. One plot per suite; in it one group of bars per figure
 * ("sgemm 1024"), one bar per device, each group on its own scale (units
 * differ inside a suite). A reference is a white outline to its height
 * with a tick on top and the ratio printed; a WRONG result is a red,
 * striped bar that is never marked best. As in the run view, only data is
 * drawn inside a plot area; titles and group labels sit outside. No text
 * crosses another text, a reference's outline or a best mark, and no name
 * is cut: long ones wrap (the layout a test can read records both). */
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
#define C_REF_FILL 0x3a4150

/* The devices' colours: no red, which says WRONG. */
static const unsigned palette[] = {C_BLUE, C_ORANGE, C_PURPLE, C_CYAN, C_GREEN, C_PINK, C_YELLOW, 0x9aa4b5};
#define NPAL ((int)(sizeof palette / sizeof palette[0]))
#define MAX_GROUPS 32
#define LINE1 11.0f             /* a line of text at scale 1 */
#define MAX_LINES 8             /* of a group's name and unit under the plot */

typedef struct bctx {
    const dash_bench *b;
    dash_view *v;
    float s;
} bctx;

/* Devices take the palette in turn; references (drawn hollow) skip it. */
static unsigned col_color(const dash_bench *b, int c)
{
    int k = 0;
    for (int i = 0; i < c; i++)
        k += !b->cols[i].reference;
    return palette[k % NPAL];
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

/* A bar's label: its figure, and the ratio to the reference (full = 0:
 * the figure alone). */
static void bar_label(char *out, size_t n, const dash_bench_result *r, int full)
{
    char v[32];
    if (!r->correct) {
        snprintf(out, n, "WRONG");
        return;
    }
    dash_fmt_num(v, sizeof v, r->median);
    if (full && !isnan(r->ratio))
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

/* An outline to height h over [x, x+w) from base, recorded so that no text
 * is laid over its lines. */
static void ref_outline(float x, float w, float base, float h)
{
    dash_outline((dash_rect){x + 0.5f, base - h, w - 1, h}, C_REF);
    dash_mark((dash_rect){x - 0.5f, base - h - 1, w + 1, 2});
    dash_mark((dash_rect){x - 0.5f, base - h - 1, 2, h + 1});
    dash_mark((dash_rect){x + w - 1.5f, base - h - 1, 2, h + 1});
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
    float base = r.y + r.h - 1, full = r.h - 10; /* 10: room for the tick and the best mark */
    for (int k = 0; k < ncols; k++) {
        const dash_bench_result *q = dash_bench_find(b, cols[k], suite, name);
        if (!q)
            continue;
        /* bars a pixel or two apart, so neighbours and outlines stay apart */
        float bx = x + pad + bw * (float)k, inner = bw >= 6 ? bw - 2 : bw > 3 ? bw - 1 : bw;
        float h = isnan(q->median) ? full : (float)(q->median / top) * full;
        if (h < 1)
            h = 1;
        int is_ref = b->cols[cols[k]].reference;
        if (!q->correct)
            stripes(bx, base - h, inner, h);
        else if (is_ref) {
            /* a reference measured as a column of its own: hollow */
            dash_fill(bx, base - h, inner, h, C_REF_FILL);
            ref_outline(bx, inner, base, h);
        } else
            dash_fill(bx, base - h, inner, h, col_color(b, cols[k]));
        drew = 1;
        /* what sits on the bar: its top, a reference's tick, the best mark */
        float occupied = base - h, below_ref = base; /* a text inside stays under a tick that crosses the bar */
        float rh = -1;
        if (q->correct && !isnan(q->ref_median)) {
            rh = (float)(q->ref_median / top) * full;
            ref_outline(bx, inner, base, rh);
            dash_fill(bx - 1, base - rh - 1, inner + 2, 2, C_REF);
            dash_mark((dash_rect){bx - 1, base - rh - 1, inner + 2, 2});
            occupied = fminf(occupied, base - rh - 1);
            if (rh < h)
                below_ref = base - rh + 2;
        }
        if (cols[k] == best) {
            /* a small triangle over the bar, pointing at it */
            float cx = bx + inner / 2, ty = occupied - 7;
            glColor3ub(C_BEST >> 16, (C_BEST >> 8) & 255, C_BEST & 255);
            glBegin(GL_TRIANGLES);
            glVertex2f(cx - 3, ty);
            glVertex2f(cx + 3, ty);
            glVertex2f(cx, ty + 5);
            glEnd();
            dash_mark((dash_rect){cx - 3, ty, 6, 5});
            occupied = ty;
        }
        /* The label, up the bar: above everything on it when there is
         * room, else in a taller reference's outline, else inside (under a
         * reference's tick), else the figure alone; a bar too narrow for text has none (the legend's colour
         * and the group say what it is). */
        if (inner < 12)
            continue;
        float lx = bx + (inner - 9) / 2;
        for (int pass = 0; pass < 2; pass++) {
            char lab[64];
            bar_label(lab, sizeof lab, q, pass == 0);
            float tw = dash_text_width(1, lab);
            float inside_top = below_ref < base ? below_ref : base - h + 3;
            if (occupied - 3 - tw >= r.y + 2) {
                dash_text_up(lx, occupied - 3, q->correct ? C_TEXT : C_WRONG, lab);
                break;
            }
            if (rh > h && base - h - 3 - tw >= base - rh + 2) {
                /* inside the reference's outline, over the bar */
                dash_text_up(lx, base - h - 3, C_TEXT, lab);
                break;
            }
            if (base - 3 - tw >= inside_top) {
                dash_text_up(lx, base - 3, is_ref ? C_TEXT : 0x0b0d10, lab);
                break;
            }
        }
    }
    return drew;
}

/* The unit of a group and which way is better, from its first result. */
static const dash_bench_result *group_any(const dash_bench *b, const char *suite, const char *name, const int *cols,
                                          int nc)
{
    const dash_bench_result *any = NULL;
    for (int k = 0; k < nc && !any; k++)
        any = dash_bench_find(b, cols[k], suite, name);
    return any;
}

static void unit_text(char *out, size_t n, const dash_bench_result *any)
{
    snprintf(out, n, "%s (%s)", any ? any->unit : "?", any && !any->higher_is_better ? "lower" : "higher");
}

/* Under the plot: each group's name (and its unit, when the suite's
 * groups differ in units) in its slot, wrapped; or, when the slots are too
 * narrow for a name in 3 lines, each group's number in its slot and a key
 * of "N name" entries across the plot. A unit all groups share is one line
 * under them. Measures (draw = 0, filling L) or draws; returns the height. */
typedef struct glabels {
    int keyed;                  /* numbered groups and a key */
    int shared;                 /* one unit for every group */
    char unit[80];
    int slot_lines;             /* lines in the slots */
} glabels;

static float group_labels(const dash_bench *b, const char *suite, const char **groups, int ng, const int *cols, int nc,
                          dash_rect r, float gw, glabels *L, int draw)
{
    char lines[MAX_LINES][DASH_LINE];
    if (!draw) {
        memset(L, 0, sizeof *L);
        L->shared = 1;
        const dash_bench_result *a0 = ng ? group_any(b, suite, groups[0], cols, nc) : NULL;
        for (int g = 1; g < ng; g++) {
            const dash_bench_result *a = group_any(b, suite, groups[g], cols, nc);
            if (!a0 || !a || strcmp(a->unit, a0->unit) || a->higher_is_better != a0->higher_is_better)
                L->shared = 0;
        }
        unit_text(L->unit, sizeof L->unit, a0);
        L->slot_lines = 1;
        for (int g = 0; g < ng; g++) {
            int n = dash_wrap(groups[g], 1, gw - 6, lines, MAX_LINES);
            L->keyed |= n > 3;
            if (!L->shared) {
                char u[80];
                unit_text(u, sizeof u, group_any(b, suite, groups[g], cols, nc));
                n += dash_wrap(u, 1, gw - 6, lines, MAX_LINES);
            }
            L->slot_lines = n > L->slot_lines ? n : L->slot_lines;
        }
        if (L->keyed)
            L->slot_lines = 1;
    }
    float y0 = r.y + r.h + 4, y = y0 + LINE1 * (float)L->slot_lines;
    for (int g = 0; draw && g < ng; g++) {
        float gx = r.x + gw * (float)g;
        if (g)
            dash_fill(gx, r.y + r.h + 2, 1, LINE1 * (float)L->slot_lines, C_FRAME);
        if (L->keyed) {
            char num[16];
            snprintf(num, sizeof num, "%d", g + 1);
            dash_text(gx + (gw - dash_text_width(1, num)) / 2, y0, 1, C_TEXT, num);
            continue;
        }
        int n = dash_wrap(groups[g], 1, gw - 6, lines, MAX_LINES);
        for (int i = 0; i < n; i++)
            dash_text(gx + 4, y0 + LINE1 * (float)i, 1, C_TEXT, lines[i]);
        if (!L->shared) {
            char u[80], ul[MAX_LINES][DASH_LINE];
            unit_text(u, sizeof u, group_any(b, suite, groups[g], cols, nc));
            int m = dash_wrap(u, 1, gw - 6, ul, MAX_LINES - n > 0 ? MAX_LINES - n : 1);
            for (int i = 0; i < m; i++)
                dash_text(gx + 4, y0 + LINE1 * (float)(n + i), 1, C_DIM, ul[i]);
        }
    }
    if (L->keyed) {
        /* the key: "N name[, unit]" entries, each kept whole, across the plot */
        float x = r.x + 4, end = r.x + r.w - 4;
        for (int g = 0; g < ng; g++) {
            char e[DASH_LINE], u[80] = "";
            if (!L->shared)
                unit_text(u, sizeof u, group_any(b, suite, groups[g], cols, nc));
            snprintf(e, sizeof e, "%d %s%s%s", g + 1, groups[g], u[0] ? ", " : "", u);
            int n = dash_wrap(e, 1, end - (r.x + 4), lines, MAX_LINES);
            float w = n == 1 ? dash_text_width(1, e) : end - (r.x + 4);
            if (x + w > end && x > r.x + 4) {
                x = r.x + 4;
                y += LINE1;
            }
            for (int i = 0; draw && i < n; i++)
                dash_text(x, y + LINE1 * (float)i, 1, C_TEXT, lines[i]);
            y += LINE1 * (float)(n - 1);
            x += w + 14;
        }
        y += LINE1;
    }
    if (L->shared) {
        if (draw)
            dash_text(r.x + 4, y, 1, C_DIM, L->unit);
        y += LINE1;
    }
    return y - y0 + 4;
}

static void suite_plot(bctx *c, dash_rect box, const char *suite)
{
    const dash_bench *b = c->b;
    dash_fill(box.x, box.y, box.w, box.h, C_PANEL);
    /* the title, and the references this suite compares with: beside it
     * when they fit, else on lines of their own under it */
    float tx = box.x + 8 + dash_text(box.x + 8, box.y + 5, c->s, C_TEXT, suite) + 14;
    char refs[160] = "";
    for (int i = 0; i < b->nres; i++) {
        const dash_bench_result *q = &b->res[i];
        if (strcmp(q->suite, suite) || !q->ref_name[0] || isnan(q->ref_median) || strstr(refs, q->ref_name))
            continue;
        size_t k = strlen(refs);
        snprintf(refs + k, sizeof refs - k, "%s%s", k ? ", " : "reference: ", q->ref_name);
    }
    float title_h = 14 * c->s + 12;
    if (refs[0]) {
        char lines[4][DASH_LINE];
        float ry = box.y + 5 + (c->s - 1) * 3, rx = tx;
        if (tx + 12 + dash_text_width(1, refs) > box.x + box.w - 8) {
            rx = box.x + 8;
            ry = box.y + 5 + 14 * c->s;
        }
        int n = dash_wrap(refs, 1, box.x + box.w - 8 - rx - 12, lines, 4);
        dash_outline((dash_rect){rx, ry + 1, 7, 8}, C_REF);
        for (int i = 0; i < n; i++)
            dash_text(rx + 12, ry + LINE1 * (float)i, 1, C_DIM, lines[i]);
        title_h = fmaxf(title_h, ry + LINE1 * (float)n + 4 - box.y);
    }
    const char *groups[MAX_GROUPS];
    int ng = dash_bench_groups(b, suite, groups, MAX_GROUPS);
    int cols[DASH_BENCH_MAX_COLUMNS], nc = 0;
    for (int k = 0; k < b->ncols; k++)
        if (suite_has_column(b, suite, k))
            cols[nc++] = k;
    /* the room under the plot: what the group labels need */
    float gw = ng ? (box.w - 16) / (float)ng : box.w - 16;
    glabels L;
    dash_rect r = {box.x + 8, box.y + title_h, box.w - 16, 0};
    float label_h = group_labels(b, suite, groups, ng, cols, nc, r, gw, &L, 0);
    r.h = box.y + box.h - 6 - label_h - r.y;
    add_plot(c, suite, r);
    dash_outline(r, C_FRAME);
    if (ng == 0 || nc == 0 || r.h < 16)
        return;
    int drew = 0;
    for (int g = 0; g < ng; g++)
        drew |= bar_group(c, r, r.x + gw * (float)g, gw, suite, groups[g], cols, nc);
    group_labels(b, suite, groups, ng, cols, nc, r, gw, &L, 1);
    if (drew)
        c->v->plots[c->v->nplots - 1].has_data = 1;
}

/* The files and the devices' colours: measured (draw = 0), then drawn.
 * Returns the height used. Every file line and every device is shown,
 * wrapped onto more lines when the window is narrow. */
static float header(bctx *c, int draw, float h_bg)
{
    const dash_bench *b = c->b;
    dash_view *v = c->v;
    float W = (float)v->width;
    if (draw)
        dash_fill(0, 0, W, h_bg, C_PANEL);
    float x = 10 + (draw ? dash_text(10, 8, c->s + 1, C_TEXT, "loom bench") : dash_text_width(c->s + 1, "loom bench")) + 16;
    char t[256];
    int nref = 0;
    for (int k = 0; k < b->ncols; k++)
        nref += b->cols[k].reference;
    snprintf(t, sizeof t, "%d file%s, %d devices, %d references, %d results", b->nfiles, b->nfiles == 1 ? "" : "s",
             b->ncols - nref, nref, b->nres);
    float sw = v->status ? dash_text_width(c->s, v->status) + 24 : 0;
    float ts = x + dash_text_width(c->s, t) + sw <= W ? c->s : 1;
    if (draw) {
        dash_text(x, 8 + 3 * c->s, ts, C_DIM, t);
        if (v->status)
            dash_text(W - dash_text_width(c->s, v->status) - 12, 8, c->s, C_GREEN, v->status);
    }
    float y = 8 + 14 * (c->s + 1);
    int shown = b->nfiles < 4 ? b->nfiles : 4;
    for (int i = 0; i < shown; i++) {
        const dash_bench_file *f = &b->files[i];
        char line[640], lines[6][DASH_LINE];
        snprintf(line, sizeof line, "%s  |  %s  |  %s  |  loom %s (%.12s)  |  %s%s", f->path,
                 f->hostname[0] ? f->hostname : "?", f->cpu_model[0] ? f->cpu_model : "?",
                 f->version[0] ? f->version : "?", f->commit[0] ? f->commit : "?", f->date[0] ? f->date : "?",
                 f->quick == 1 ? "  |  quick" : "");
        int n = dash_wrap(line, 1, W - 20, lines, 6);
        for (int k = 0; k < n; k++, y += LINE1)
            if (draw)
                dash_text(10, y, 1, C_DIM, lines[k]);
    }
    if (b->nfiles > shown) {
        snprintf(t, sizeof t, "and %d more files", b->nfiles - shown);
        if (draw)
            dash_text(10, y, 1, C_DIM, t);
        y += LINE1;
    }
    /* a swatch per device; at scale 1 when the names do not fit one line,
     * then on as many lines as they need */
    y += 6;
    float s = c->s, need = 0;
    for (int k = 0; k < b->ncols; k++)
        need += 10 * s + dash_text_width(s, b->cols[k].label) + 14 * s;
    if (need > W - 20)
        s = 1;
    x = 10;
    for (int k = 0; k < b->ncols; k++) {
        const char *lab = b->cols[k].label;
        float w = 10 * s + dash_text_width(s, lab);
        if (x + w > W - 10 && x > 10) {
            x = 10;
            y += 12 * s + 2;
        }
        if (draw) {
            if (b->cols[k].reference)
                dash_outline((dash_rect){x + 0.5f, y + 2.5f, 7 * s - 1, 7 * s - 1}, C_REF);
            else
                dash_fill(x, y + 2, 7 * s, 7 * s, col_color(b, k));
            dash_text(x + 10 * s, y, s, C_TEXT, lab);
        }
        x += w + 14 * s;
    }
    return y + 12 * s + 6;
}

/* The key to the marks, at the bottom: on one line or, narrow, on more.
 * Returns the height it takes (draw = 0 only measures). */
static float footer(bctx *c, int draw)
{
    dash_view *v = c->v;
    static const char *items[] = {"median of each device, one scale per group;", "reference, ratio after the figure;",
                                  "WRONG (not ranked);", "triangle: best;", "q quit"};
    float W = (float)v->width, lines = 1, x = 10;
    for (int pass = 0; pass < 2; pass++) {
        float y = (float)v->height - LINE1 * lines - 2;
        x = 10;
        int nl = 1;
        for (int i = 0; i < 5; i++) {
            float sw = i == 1 || i == 2 || i == 3 ? 12 : 0, w = sw + dash_text_width(1, items[i]);
            if (x + w > W - 10 && x > 10) {
                x = 10;
                y += LINE1;
                nl++;
            }
            if (draw && pass == 1) {
                if (i == 1)
                    dash_outline((dash_rect){x, y + 1, 7, 8}, C_REF);
                else if (i == 2)
                    stripes(x, y, 8, 9);
                else if (i == 3) {
                    glColor3ub(C_BEST >> 16, (C_BEST >> 8) & 255, C_BEST & 255);
                    glBegin(GL_TRIANGLES);
                    glVertex2f(x + 1, y + 2);
                    glVertex2f(x + 7, y + 2);
                    glVertex2f(x + 4, y + 7);
                    glEnd();
                }
                dash_text(x + sw, y, 1, C_DIM, items[i]);
            }
            x += w + 10;
        }
        lines = (float)nl;
    }
    return LINE1 * lines + 2;
}

void dash_draw_bench(const dash_bench *b, dash_view *v)
{
    bctx c = {b, v, v->width >= 1000 && v->height >= 640 ? 2.0f : 1.0f};
    v->nplots = 0;
    dash_record_into(v);
    glViewport(0, 0, v->width, v->height);
    glMatrixMode(GL_PROJECTION);
    glLoadIdentity();
    glOrtho(0, v->width, v->height, 0, -1, 1);
    glMatrixMode(GL_MODELVIEW);
    glLoadIdentity();
    glDisable(GL_DEPTH_TEST);
    glClearColor((C_BG >> 16) / 255.0f, ((C_BG >> 8) & 255) / 255.0f, (C_BG & 255) / 255.0f, 1);
    glClear(GL_COLOR_BUFFER_BIT);
    float hh = header(&c, 0, 0);
    header(&c, 1, hh);
    float top = hh + 8, bottom = footer(&c, 0) + 8;
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
    footer(&c, 1);
}
