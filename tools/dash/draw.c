/* One dashboard frame: a header, then charts in a grid, in immediate-mode
 * OpenGL with pixel coordinates (origin top left). Inside a plot area only
 * data is drawn, so an empty plot stays the background colour (the
 * screenshot test counts on it); titles, legends and ticks sit outside. */
#include "draw.h"

#include <GLFW/glfw3.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <stb/stb_easy_font.h>

static void color(unsigned c)
{
    glColor3ub((GLubyte)(c >> 16), (GLubyte)(c >> 8), (GLubyte)c);
}

static void rect(float x, float y, float w, float h, unsigned c)
{
    color(c);
    glBegin(GL_QUADS);
    glVertex2f(x, y);
    glVertex2f(x + w, y);
    glVertex2f(x + w, y + h);
    glVertex2f(x, y + h);
    glEnd();
}

static void frame(dash_rect r, unsigned c)
{
    color(c);
    glBegin(GL_LINE_LOOP);
    glVertex2f(r.x - 0.5f, r.y - 0.5f);
    glVertex2f(r.x + r.w + 0.5f, r.y - 0.5f);
    glVertex2f(r.x + r.w + 0.5f, r.y + r.h + 0.5f);
    glVertex2f(r.x - 0.5f, r.y + r.h + 0.5f);
    glEnd();
}

/* stb_easy_font wants a mutable string. */
static void copy_text(char *dst, size_t n, const char *s)
{
    size_t k = strlen(s);
    if (k >= n)
        k = n - 1;
    memcpy(dst, s, k);
    dst[k] = 0;
}

static dash_view *recording; /* the frame being drawn, when it keeps a layout */

static void record(char kind, dash_rect r, const char *s)
{
    dash_view *v = recording;
    if (!v || !v->boxes || v->nboxes >= v->boxes_cap)
        return;
    dash_box *b = &v->boxes[v->nboxes++];
    b->kind = kind;
    b->r = r;
    copy_text(b->text, sizeof b->text, s ? s : "");
}

void dash_record_into(dash_view *v)
{
    recording = v;
    if (v)
        v->nboxes = 0;
}

void dash_mark(dash_rect r)
{
    record('m', r, "");
}

/* Text at a whole-number scale keeps stb_easy_font's strokes even. Its ink
 * spans 9 pixels down (descenders included) and its advance less the
 * trailing pixel across, at scale 1. */
static float text(float x, float y, float scale, unsigned c, const char *s)
{
    static char vbuf[160000];
    char tmp[512];
    copy_text(tmp, sizeof tmp, s);
    if (tmp[0])
        record('t', (dash_rect){x, y, ((float)stb_easy_font_width(tmp) - 1) * scale, 9 * scale}, tmp);
    int quads = stb_easy_font_print(0, 0, tmp, NULL, vbuf, (int)sizeof vbuf);
    color(c);
    glPushMatrix();
    glTranslatef(x, y, 0);
    glScalef(scale, scale, 1);
    glEnableClientState(GL_VERTEX_ARRAY);
    glVertexPointer(2, GL_FLOAT, 16, vbuf);
    glDrawArrays(GL_QUADS, 0, quads * 4);
    glDisableClientState(GL_VERTEX_ARRAY);
    glPopMatrix();
    return (float)stb_easy_font_width(tmp) * scale;
}

static float text_width(float scale, const char *s)
{
    char tmp[512];
    copy_text(tmp, sizeof tmp, s);
    return (float)stb_easy_font_width(tmp) * scale;
}

/* ---- number formatting ---- */

static void fmt_bytes(char *b, size_t n, double v)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int k = 0;
    while (fabs(v) >= 1024 && k < 4)
        v /= 1024, k++;
    snprintf(b, n, k && fabs(v) < 100 ? "%.1f %s" : "%.0f %s", v, u[k]);
}

static void fmt_num(char *b, size_t n, double v)
{
    double a = fabs(v);
    if (a >= 1e9)
        snprintf(b, n, "%.1fG", v / 1e9);
    else if (a >= 1e6)
        snprintf(b, n, "%.1fM", v / 1e6);
    else if (a >= 1e4)
        snprintf(b, n, "%.1fk", v / 1e3);
    else if (a >= 100)
        snprintf(b, n, "%.0f", v);
    else if (a >= 1)
        snprintf(b, n, "%.2f", v);
    else if (a == 0)
        snprintf(b, n, "0");
    else
        snprintf(b, n, "%.3f", v);
}

enum unit { U_NUM, U_PCT, U_BYTES, U_MS };

static void fmt_unit(char *b, size_t n, double v, enum unit u)
{
    if (u == U_BYTES)
        fmt_bytes(b, n, v);
    else if (u == U_PCT)
        snprintf(b, n, "%.1f%%", v);
    else if (u == U_MS) {
        char t[32];
        fmt_num(t, sizeof t, v);
        snprintf(b, n, "%s ms", t);
    } else
        fmt_num(b, n, v);
}

/* ---- layout ---- */

typedef struct ctx {
    const dash_model *m;
    dash_view *v;
    float s;                    /* text scale */
} ctx;

#define TITLE_H(c) (14.0f * (c)->s + 8)
#define GUTTER_L(c) (56.0f * (c)->s)
#define GUTTER_B(c) (12.0f * (c)->s + 4)
#define LINE1 11.0f             /* a line of text at scale 1 */

static void add_plot(ctx *c, const char *name, dash_rect r)
{
    dash_view *v = c->v;
    if (v->nplots >= DASH_MAX_PLOTS)
        return;
    snprintf(v->plots[v->nplots].name, sizeof v->plots[0].name, "%s", name);
    v->plots[v->nplots].r = r;
    v->plots[v->nplots].has_data = 0;
    v->nplots++;
}

/* A title at the frame's scale, or at 1 when the box is too narrow. */
static float title_scale(const ctx *c, dash_rect box, const char *title)
{
    return text_width(c->s, title) <= box.w - 16 ? c->s : 1;
}

/* The panel's box, its title, and the plot rectangle it leaves below
 * `extra` pixels of legend lines and column headers. */
static dash_rect panel(ctx *c, dash_rect box, const char *name, const char *title, int axes, float extra)
{
    rect(box.x, box.y, box.w, box.h, C_PANEL);
    float ts = title_scale(c, box, title);
    text(box.x + 8, box.y + 5 + (c->s - ts) * 3, ts, C_TEXT, title);
    dash_rect r = {box.x + 8, box.y + TITLE_H(c) + 4 + extra, box.w - 16, box.h - TITLE_H(c) - 12 - extra};
    if (axes) {
        r.x += GUTTER_L(c);
        r.w -= GUTTER_L(c);
        r.h -= GUTTER_B(c);
    }
    add_plot(c, name, r);
    return r;
}

static void mark_data(ctx *c)
{
    c->v->plots[c->v->nplots - 1].has_data = 1;
}

/* ---- line charts ---- */

typedef struct line {
    const dash_series *s;
    unsigned color;
    const char *label;
} line;

static double nice_max(double v)
{
    if (!(v > 0))
        return 1;
    double p = pow(10, floor(log10(v)));
    double m = v / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

/* A round top for a bytes axis: 1, 2 or 5 times a power of ten of KiB,
 * MiB, ... so the ticks read "512 KiB", "1 MiB". */
static double nice_bytes(double v)
{
    double unit = 1;
    while (v / unit >= 1024)
        unit *= 1024;
    return nice_max(v / unit) * unit;
}

/* Legend entries after the title: a swatch and "label value" each, at the
 * title's scale, else at scale 1, and what does not fit on the title's
 * line continues on lines below it: every entry is shown. Returns the
 * height those lines take (0 when all sit beside the title); draws only
 * when draw is set, so a caller can make room first. */
typedef struct legend_item {
    unsigned color;
    int absent;
    char text[96];
} legend_item;

static float legend(ctx *c, dash_rect box, const char *title, const legend_item *it, int n, int draw)
{
    float start = box.x + 8 + text_width(title_scale(c, box, title), title) + 14 * c->s, end = box.x + box.w - 8;
    float s = c->s, need = 0;
    for (int i = 0; i < n; i++)
        need += 10 * s + text_width(s, it[i].text) + 12 * s;
    if (start + need - 12 * s > end && s > 1)
        s = 1;
    float lx = start, ly = box.y + 5 + (c->s - s) * 3, below = box.y + TITLE_H(c) - 2, extra = 0;
    for (int i = 0; i < n; i++) {
        float w = 10 * s + text_width(s, it[i].text);
        if (lx + w > end && lx > box.x + 8) {
            lx = box.x + 8;
            ly = extra > 0 ? ly + LINE1 * s : below;
            extra = ly + LINE1 * s - below;
        }
        if (draw) {
            rect(lx, ly + 2, 7 * s, 7 * s, it[i].absent ? C_FRAME : it[i].color);
            text(lx + 10 * s, ly, s, it[i].absent ? C_DIM : C_TEXT, it[i].text);
        }
        lx += w + 12 * s;
    }
    return extra;
}

/* Seconds on a time axis with enough digits to tell the ends apart. */
static void fmt_secs(char *b, size_t n, double v, double span)
{
    snprintf(b, n, span >= 10 ? "%.0f s" : span >= 1 ? "%.1f s" : span >= 0.01 ? "%.3f s" : "%.6f s", v);
}

static void line_chart(ctx *c, dash_rect box, const char *name, const char *title, const line *ls, int n,
                       enum unit u)
{
    double x0 = INFINITY, x1 = -INFINITY, ymax = 0;
    int any = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < ls[i].s->n; k++) {
            x0 = fmin(x0, ls[i].s->x[k]);
            x1 = fmax(x1, ls[i].s->x[k]);
            ymax = fmax(ymax, ls[i].s->y[k]);
            any = 1;
        }
    /* The legend: each series with its last value, or "absent". */
    legend_item it[8];
    n = n < 8 ? n : 8;
    for (int i = 0; i < n; i++) {
        char v[48];
        double last = dash_series_last(ls[i].s);
        it[i].absent = isnan(last);
        if (it[i].absent)
            snprintf(v, sizeof v, "absent");
        else
            fmt_unit(v, sizeof v, last, u);
        it[i].color = ls[i].color;
        snprintf(it[i].text, sizeof it[i].text, "%s %s", ls[i].label, v);
    }
    dash_rect r = panel(c, box, name, title, 1, legend(c, box, title, it, n, 0));
    legend(c, box, title, it, n, 1);
    frame(r, C_FRAME);
    if (!any)
        return;
    mark_data(c);
    double ytop = u == U_PCT ? 100 : u == U_BYTES ? nice_bytes(ymax * 1.05) : nice_max(ymax * 1.05);
    if (x1 <= x0)
        x1 = x0 + 1;
    /* ticks, outside the plot */
    for (int k = 0; k <= 2; k++) {
        char b[32];
        fmt_unit(b, sizeof b, ytop * k / 2, u);
        float y = r.y + r.h - (float)k / 2 * r.h;
        float w = text_width(c->s, b);
        text(r.x - w - 6, y - 3 * c->s, c->s, C_DIM, b);
    }
    char b0[32], b1[48];
    fmt_secs(b0, sizeof b0, x0, x1 - x0);
    fmt_secs(b1, sizeof b1, x1, x1 - x0);
    float ts = text_width(c->s, b0) + text_width(c->s, b1) + 12 < r.w ? c->s : 1;
    text(r.x, r.y + r.h + 4, ts, C_DIM, b0);
    text(r.x + r.w - text_width(ts, b1), r.y + r.h + 4, ts, C_DIM, b1);
    glLineWidth(c->s > 1 ? 2.0f : 1.0f);
    for (int i = 0; i < n; i++) {
        const dash_series *s = ls[i].s;
        color(ls[i].color);
        if (s->n == 1) {
            float px = r.x + r.w / 2, py = (float)(r.y + r.h - s->y[0] / ytop * r.h);
            rect(px - 2, fminf(py, r.y + r.h - 3) - 1, 4, 4, ls[i].color);
            continue;
        }
        glBegin(GL_LINE_STRIP);
        for (int k = 0; k < s->n; k++) {
            double fx = (s->x[k] - x0) / (x1 - x0), fy = fmin(1.0, fmax(0.0, s->y[k] / ytop));
            /* 3 pixels in from the frame, so a line at 0 or 100% shows */
            glVertex2f((float)(r.x + 3 + fx * (r.w - 6)), (float)(r.y + r.h - 3 - fy * (r.h - 6)));
        }
        glEnd();
    }
    glLineWidth(1.0f);
}

/* ---- the ops bar chart ---- */

/* Bars take their colour from the op's kind, in order of first appearance
 * among the rows shown; kinds past the palette share grey ("other"). */
static const unsigned op_palette[] = {C_BLUE, C_ORANGE, C_GREEN, C_PURPLE, C_CYAN, C_YELLOW, C_PINK};
#define OP_COLORS ((int)(sizeof op_palette / sizeof op_palette[0]))

static int op_kinds(const dash_model *m, int rows, const char *kinds[DASH_MAX_OPS])
{
    int n = 0;
    for (int i = 0; i < rows; i++) {
        int k = 0;
        while (k < n && strcmp(kinds[k], m->ops[i].op))
            k++;
        if (k == n)
            kinds[n++] = m->ops[i].op;
    }
    return n;
}

static unsigned op_color(const char *const *kinds, int nk, const char *op)
{
    for (int k = 0; k < nk && k < OP_COLORS; k++)
        if (!strcmp(kinds[k], op))
            return op_palette[k];
    return C_DIM;
}

static int kinds_legend(const char *const *kinds, int nk, legend_item *it)
{
    int n = 0;
    for (int k = 0; k < nk && k < OP_COLORS; k++) {
        it[n].color = op_palette[k];
        it[n].absent = 0;
        copy_text(it[n].text, sizeof it[n].text, kinds[k]);
        n++;
    }
    if (nk > OP_COLORS) {
        it[n].color = C_DIM;
        it[n].absent = 0;
        snprintf(it[n].text, sizeof it[n].text, "%d other kinds", nk - OP_COLORS);
        n++;
    }
    return n;
}

/* The columns right of the bar: header and each row's value. */
enum { COL_SHARE, COL_TOTAL, COL_MEAN, COL_GFLOPS, COL_GBPS, NCOLS };

static void op_values(const dash_op *o, double total, char v[NCOLS][32])
{
    snprintf(v[COL_SHARE], 32, "%.1f%%", total > 0 ? 100 * o->total_ms / total : 0);
    snprintf(v[COL_TOTAL], 32, "%.3f", o->total_ms);
    snprintf(v[COL_MEAN], 32, "%.1f", o->mean_us);
    fmt_num(v[COL_GFLOPS], 32, o->gflops);
    fmt_num(v[COL_GBPS], 32, o->gbps);
}

/* Shortens s to w pixels by taking out its middle ("dense0/..update"):
 * only when a panel is too narrow for the name at scale 1. */
static void squeeze(char *s, size_t n, float scale, float w)
{
    size_t len = strlen(s);
    if (text_width(scale, s) <= w || len < 6)
        return;
    char orig[128];
    copy_text(orig, sizeof orig, s);
    for (size_t keep = len - 1; keep >= 4; keep--) {
        size_t head = (keep + 1) / 2, tail = keep - head;
        snprintf(s, n, "%.*s..%s", (int)head, orig, orig + len - tail);
        if (text_width(scale, s) <= w)
            return;
    }
}

static void ops_chart(ctx *c, dash_rect box, int rows_max, int detail)
{
    const dash_model *m = c->m;
    char title[128];
    if (m->nops)
        snprintf(title, sizeof title, "Top ops by device time (%lld runs)", (long long)m->ops_runs);
    else
        snprintf(title, sizeof title, "Top ops by device time");
    static const char *heads[NCOLS] = {"share", "total ms", "mean us", "GFLOP/s", "GB/s"};
    int first = detail ? COL_SHARE : COL_GFLOPS, last = detail ? COL_GBPS : COL_GFLOPS;
    double total = 0;
    for (int i = 0; i < m->nops; i++)
        total += m->ops[i].total_ms;
    /* At most as many rows as the box could hold; the scale that fits the
     * widest name, kind and figures beside a bar of at least 40 pixels. */
    float s = c->s;
    int est = 0;
    float name_w = 0, kind_w = 0, col_w[NCOLS] = {0}, avail = box.w - 16;
    for (;;) {
        est = (int)((box.h - TITLE_H(c) - 16 - 14 * s) / (12 * s + 6));
        est = est < rows_max ? est : rows_max;
        est = est < m->nops ? est : m->nops;
        est = est > 0 ? est : 0;
        name_w = text_width(s, "op");
        kind_w = detail ? text_width(s, "kind") : 0;
        for (int k = first; k <= last; k++)
            col_w[k] = text_width(s, heads[k]);
        for (int i = 0; i < est; i++) {
            char v[NCOLS][32];
            op_values(&m->ops[i], total, v);
            name_w = fmaxf(name_w, text_width(s, m->ops[i].name));
            if (detail)
                kind_w = fmaxf(kind_w, text_width(s, m->ops[i].op));
            for (int k = first; k <= last; k++)
                col_w[k] = fmaxf(col_w[k], text_width(s, v[k]));
        }
        float need = name_w + 10 * s + (detail ? kind_w + 10 * s : 0) + 40 * s;
        for (int k = first; k <= last; k++)
            need += col_w[k] + 12 * s;
        if (need <= avail || s <= 1)
            break;
        s = 1;
    }
    float vals_w = 0;
    for (int k = first; k <= last; k++)
        vals_w += col_w[k] + 12 * s;
    float bar_w = avail - name_w - 10 * s - (detail ? kind_w + 10 * s : 0) - vals_w - 8;
    if (bar_w < 12) { /* names give way, with a visible "..", never silently */
        name_w = fmaxf(text_width(s, "op"), name_w - (12 - bar_w));
        bar_w = 12;
    }
    /* The legend of the kinds shown, then one line of column headers. */
    const char *kinds[DASH_MAX_OPS];
    legend_item it[OP_COLORS + 1];
    float row = 12 * s + 6, head_h = 12 * s + 4;
    int rows = est, nk = 0, nit = 0;
    for (int pass = 0; pass < 3; pass++) {
        nk = op_kinds(m, rows, kinds);
        nit = kinds_legend(kinds, nk, it);
        float room = box.h - TITLE_H(c) - 12 - legend(c, box, title, it, nit, 0) - head_h - 4;
        int fit = (int)(room / row);
        int want = fit < est ? fit : est;
        if (want == rows)
            break;
        rows = want > 0 ? want : 0;
    }
    float extra = legend(c, box, title, it, nit, 0);
    dash_rect r = panel(c, box, "ops", title, 0, extra + head_h);
    legend(c, box, title, it, nit, 1);
    /* headers, above the plot: name and kind left, figures right-aligned */
    float hy = r.y - head_h, x = r.x + 4;
    text(x, hy, s, C_DIM, "op");
    x += name_w + 10 * s;
    if (detail) {
        text(x, hy, s, C_DIM, "kind");
        x += kind_w + 10 * s;
    }
    /* the bar's header as long as the bar has room for it (the title says
     * what the bars are) */
    const char *bar_head = text_width(s, "device time") <= bar_w ? "device time" : text_width(s, "time") <= bar_w ? "time" : "";
    text(x, hy, s, C_DIM, bar_head);
    float cx = r.x + r.w - 4;
    for (int k = last; k >= first; k--) {
        text(cx - text_width(s, heads[k]), hy, s, C_DIM, heads[k]);
        cx -= col_w[k] + 12 * s;
    }
    frame(r, C_FRAME);
    if (!m->nops || rows <= 0)
        return;
    mark_data(c);
    double top = 0;
    for (int i = 0; i < m->nops; i++)
        top = fmax(top, m->ops[i].total_ms);
    for (int i = 0; i < rows; i++) {
        const dash_op *o = &m->ops[i];
        float y = r.y + 4 + row * (float)i;
        char lab[128], v[NCOLS][32];
        copy_text(lab, sizeof lab, o->name);
        squeeze(lab, sizeof lab, s, name_w);
        x = r.x + 4;
        text(x, y + 2, s, C_TEXT, lab);
        x += name_w + 10 * s;
        if (detail) {
            text(x, y + 2, s, C_DIM, o->op);
            x += kind_w + 10 * s;
        }
        float w = top > 0 ? (float)(o->total_ms / top) * bar_w : 0;
        rect(x, y + 1, w > 1 ? w : 1, row - 4, op_color(kinds, nk, o->op));
        op_values(o, total, v);
        cx = r.x + r.w - 4;
        for (int k = last; k >= first; k--) {
            text(cx - text_width(s, v[k]), y + 2, s, C_DIM, v[k]);
            cx -= col_w[k] + 12 * s;
        }
    }
}

/* ---- the planner's live bytes ---- */

static void plan_chart(ctx *c, dash_rect box)
{
    const dash_model *m = c->m;
    const dash_plan *p = m->nplans ? &m->plans[0] : NULL;
    char title[160];
    snprintf(title, sizeof title, p ? "Planner (%s)" : "Planner live bytes", p ? p->label : "");
    legend_item it[3] = {{C_PURPLE, 0, ""}, {C_YELLOW, 0, ""}, {C_DIM, 0, ""}};
    if (p) {
        char b[32];
        double peak = 0;
        for (int i = 0; i < p->nlive; i++)
            peak = fmax(peak, p->live[i]);
        fmt_bytes(b, sizeof b, peak);
        snprintf(it[0].text, sizeof it[0].text, "live peak %s", b);
        fmt_bytes(b, sizeof b, p->arena);
        snprintf(it[1].text, sizeof it[1].text, "arena %s", b);
        fmt_bytes(b, sizeof b, p->naive);
        snprintf(it[2].text, sizeof it[2].text, "naive %s", b);
    }
    dash_rect r = panel(c, box, "plan", title, 1, p ? legend(c, box, title, it, 3, 0) : 0);
    if (p)
        legend(c, box, title, it, 3, 1);
    frame(r, C_FRAME);
    if (!p || p->nlive == 0)
        return;
    mark_data(c);
    double ymax = fmax(p->arena, 1);
    for (int i = 0; i < p->nlive; i++)
        ymax = fmax(ymax, p->live[i]);
    ymax = nice_bytes(ymax * 1.05);
    for (int k = 0; k <= 2; k++) {
        char b[32];
        fmt_bytes(b, sizeof b, ymax * k / 2);
        float y = r.y + r.h - (float)k / 2 * r.h;
        text(r.x - text_width(c->s, b) - 6, y - 3 * c->s, c->s, C_DIM, b);
    }
    char nb[48];
    snprintf(nb, sizeof nb, "%d steps", p->nlive);
    text(r.x + r.w - text_width(c->s, nb), r.y + r.h + 4, c->s, C_DIM, nb);
    text(r.x, r.y + r.h + 4, c->s, C_DIM, "0");
    float bw = (r.w - 2) / (float)p->nlive;
    color(0x3a2f5c);
    glBegin(GL_QUADS);
    for (int i = 0; i < p->nlive; i++) {
        float h = (float)(p->live[i] / ymax) * (r.h - 2);
        float x = r.x + 1 + bw * (float)i;
        glVertex2f(x, r.y + r.h - 1 - h);
        glVertex2f(x + bw, r.y + r.h - 1 - h);
        glVertex2f(x + bw, r.y + r.h - 1);
        glVertex2f(x, r.y + r.h - 1);
    }
    glEnd();
    color(C_PURPLE);
    glBegin(GL_LINE_STRIP);
    for (int i = 0; i < p->nlive; i++) {
        float h = (float)(p->live[i] / ymax) * (r.h - 2);
        glVertex2f(r.x + 1 + bw * (float)i, r.y + r.h - 1 - h);
        glVertex2f(r.x + 1 + bw * (float)(i + 1), r.y + r.h - 1 - h);
    }
    glEnd();
    float ya = r.y + r.h - 1 - (float)(p->arena / ymax) * (r.h - 2);
    color(C_YELLOW);
    glBegin(GL_LINES);
    for (float x = r.x + 1; x < r.x + r.w - 1; x += 8) {
        glVertex2f(x, ya);
        glVertex2f(fminf(x + 4, r.x + r.w - 1), ya);
    }
    glEnd();
}

/* ---- the frame ---- */

static void header(ctx *c)
{
    const dash_model *m = c->m;
    dash_view *v = c->v;
    float h = 40 * c->s / 2 + 18;
    rect(0, 0, (float)v->width, h, C_PANEL);
    float x = 10;
    x += text(x, 8, c->s + 1, C_TEXT, "loom-dash") + 16;
    char b[512];
    if (m->have_header)
        snprintf(b, sizeof b, "%s  |  %s  |  %s", m->device[0] ? m->device : "(unnamed device)",
                 m->vendor[0] ? m->vendor : "?", m->driver[0] ? m->driver : "?");
    else
        snprintf(b, sizeof b, "no device yet");
    text(x, 8, c->s, C_TEXT, b);
    char st[256], vc[128];
    snprintf(vc, sizeof vc, "vendor counters: %s", m->vendor_source[0] ? m->vendor_source : "none");
    if (m->last_step >= 0)
        snprintf(st, sizeof st, "%s  |  %s  |  step %lld%s  |  t %.1f s", m->spec[0] ? m->spec : "-", vc,
                 (long long)m->last_step, m->last_epoch >= 0 ? "" : "", m->last_time);
    else
        snprintf(st, sizeof st, "%s  |  %s", m->spec[0] ? m->spec : "-", vc);
    text(x, 8 + 12 * c->s, c->s, C_DIM, st);
    if (v->status) {
        float w = text_width(c->s, v->status);
        text((float)v->width - w - 12, 8, c->s, v->status[0] == 'p' ? C_YELLOW : C_GREEN, v->status);
    }
}

static void footer(ctx *c)
{
    dash_view *v = c->v;
    static const char *names[] = {"1 overview", "2 ops", "3 device", "4 training"};
    float x = 10, y = (float)v->height - 12 * c->s - 2;
    for (int i = 0; i < DASH_PANELS; i++)
        x += text(x, y, c->s, i + 1 == v->panel ? C_TEXT : C_DIM, names[i]) + 14 * c->s;
    text(x + 10, y, c->s, C_DIM, "space pause   q quit");
}

static dash_rect cell(dash_rect area, int cols, int rows, int col, int row, float gap)
{
    float w = (area.w - gap * (float)(cols - 1)) / (float)cols;
    float h = (area.h - gap * (float)(rows - 1)) / (float)rows;
    return (dash_rect){area.x + (w + gap) * (float)col, area.y + (h + gap) * (float)row, w, h};
}

void dash_draw(const dash_model *m, dash_view *v)
{
    ctx c = {m, v, v->width >= 1000 && v->height >= 640 ? 2.0f : 1.0f};
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
    header(&c);
    float top = 40 * c.s / 2 + 18 + 8, bottom = 12 * c.s + 8;
    dash_rect area = {8, top, (float)v->width - 16, (float)v->height - top - bottom};
    const dash_series *s = m->s;
    const char *rate = m->from_trace ? "runs/s" : "samples/s";
    line thr[] = {{&s[DS_THROUGHPUT], C_BLUE, rate}};
    line util[] = {{&s[DS_BUSY], C_GREEN, "busy"},
                   {&s[DS_VENDOR_UTIL], C_ORANGE, "vendor"},
                   {&s[DS_ENGINE], C_PURPLE, "engine"}};
    line mem[] = {{&s[DS_MEM], C_CYAN, "loom"}, {&s[DS_VENDOR_MEM], C_ORANGE, "vendor"}};
    line loss[] = {{&s[DS_LOSS], C_RED, "loss"}, {&s[DS_VAL_LOSS], C_PINK, "val"}};
    line acc[] = {{&s[DS_ACCURACY], C_GREEN, "acc"}, {&s[DS_VAL_ACCURACY], C_YELLOW, "val"}};
    line step[] = {{&s[DS_STEP_MS], C_YELLOW, "step"}};
    float g = 8;
    switch (v->panel) {
    case 2:
        ops_chart(&c, area, 40, 1);
        break;
    case 3:
        line_chart(&c, cell(area, 1, 3, 0, 0, g), "util", "Utilization %", util, 3, U_PCT);
        line_chart(&c, cell(area, 1, 3, 0, 1, g), "memory", "Memory", mem, 2, U_BYTES);
        line_chart(&c, cell(area, 1, 3, 0, 2, g), "step", "Step time", step, 1, U_MS);
        break;
    case 4:
        line_chart(&c, cell(area, 1, 3, 0, 0, g), "loss", "Loss", loss, 2, U_NUM);
        line_chart(&c, cell(area, 1, 3, 0, 1, g), "accuracy", "Accuracy", acc, 2, U_NUM);
        line_chart(&c, cell(area, 1, 3, 0, 2, g), "throughput", "Throughput", thr, 1, U_NUM);
        break;
    default:
        line_chart(&c, cell(area, 3, 2, 0, 0, g), "throughput", "Throughput", thr, 1, U_NUM);
        line_chart(&c, cell(area, 3, 2, 1, 0, g), "util", "Utilization %", util, 3, U_PCT);
        line_chart(&c, cell(area, 3, 2, 2, 0, g), "memory", "Memory", mem, 2, U_BYTES);
        line_chart(&c, cell(area, 3, 2, 0, 1, g), "loss", "Loss", loss, 2, U_NUM);
        ops_chart(&c, cell(area, 3, 2, 1, 1, g), 12, 0);
        plan_chart(&c, cell(area, 3, 2, 2, 1, g));
        break;
    }
    footer(&c);
}

/* ---- the primitives, for the bench view (draw_bench.c) ---- */

void dash_fill(float x, float y, float w, float h, unsigned c)
{
    rect(x, y, w, h, c);
}

void dash_outline(dash_rect r, unsigned c)
{
    frame(r, c);
}

float dash_text(float x, float y, float scale, unsigned c, const char *s)
{
    return text(x, y, scale, c, s);
}

float dash_text_up(float x, float y, unsigned c, const char *s)
{
    char tmp[512];
    copy_text(tmp, sizeof tmp, s);
    float w = text_width(1, tmp);
    dash_view *keep = recording;
    recording = NULL; /* its box in the turned frame would be wrong */
    glPushMatrix();
    glTranslatef(x, y, 0);
    glRotatef(-90, 0, 0, 1);
    text(0, 0, 1, c, tmp);
    glPopMatrix();
    recording = keep;
    if (tmp[0])
        record('t', (dash_rect){x, y - (w - 1), 9, w - 1}, tmp);
    return w;
}

/* Where a word too long for a line may break: after a separator, or after
 * the 'x' of "784x64x256". */
static int breaks_after(const char *p, size_t j)
{
    char c = p[j - 1];
    return strchr("/-_,.:;)", c) || (c == 'x' && j >= 2 && p[j - 2] >= '0' && p[j - 2] <= '9');
}

int dash_wrap(const char *s, float scale, float w, char (*lines)[DASH_LINE], int max)
{
    const int cap = DASH_LINE - 1;
    int n = 0;
    const char *p = s;
    while (*p == ' ')
        p++;
    while (*p && n < max) {
        char *l = lines[n];
        size_t best = 0;
        const char *next = p;
        /* whole words while they fit */
        for (const char *q = p;;) {
            const char *e = q;
            while (*e && *e != ' ')
                e++;
            size_t cand = (size_t)(e - p);
            if (cand > (size_t)cap)
                break;
            snprintf(l, DASH_LINE, "%.*s", (int)cand, p);
            if (text_width(scale, l) > w)
                break;
            best = cand;
            next = e;
            if (!*e)
                break;
            q = e + 1;
        }
        if (!best) {
            /* one word wider than the line: as many characters as fit,
             * back to a place where it reads well when there is one */
            size_t k = 1;
            while (p[k] && p[k] != ' ' && k < (size_t)cap) {
                snprintf(l, DASH_LINE, "%.*s", (int)(k + 1), p);
                if (text_width(scale, l) > w)
                    break;
                k++;
            }
            size_t j = k;
            while (j > 1 && !breaks_after(p, j))
                j--;
            if (p[k] && p[k] != ' ' && j > 1)
                k = j;
            best = k;
            next = p + k;
        }
        snprintf(l, DASH_LINE, "%.*s", (int)best, p);
        n++;
        p = next;
        while (*p == ' ')
            p++;
    }
    if (*p && n > 0) {
        char *l = lines[n - 1];
        size_t k = strlen(l);
        while (k > 0 && (k > (size_t)cap - 2 || text_width(scale, l) + text_width(scale, "..") > w))
            l[--k] = 0;
        memcpy(l + k, "..", 3);
    }
    return n;
}

float dash_text_width(float scale, const char *s)
{
    return text_width(scale, s);
}

void dash_fmt_num(char *b, size_t n, double v)
{
    fmt_num(b, n, v);
}
