/* Drawing one dashboard frame with legacy OpenGL into the current
 * framebuffer (a window or the screenshot's offscreen one). */
#ifndef LOOM_DASH_DRAW_H
#define LOOM_DASH_DRAW_H

#include "dash.h"

#define DASH_PANELS 4
/* The colour of an empty plot area (0xRRGGBB); the screenshot reports it. */
#define DASH_PLOT_BG 0x1b1f27
#define DASH_MAX_PLOTS 8

/* The palette (0xRRGGBB) */
#define C_BG 0x12151a
#define C_PANEL DASH_PLOT_BG
#define C_FRAME 0x2c323d
#define C_TEXT 0xdde3ec
#define C_DIM 0x8b94a5
#define C_BLUE 0x58a6ff
#define C_GREEN 0x56d364
#define C_ORANGE 0xf0883e
#define C_PURPLE 0xbc8cff
#define C_RED 0xff7b72
#define C_PINK 0xf778ba
#define C_CYAN 0x39c5cf
#define C_YELLOW 0xe3b341

typedef struct dash_rect {
    float x, y, w, h;
} dash_rect;

/* The longest line of text a frame lays out (dash_wrap, the layout). */
#define DASH_LINE 192

/* What a frame put where, for --print-layout: texts with their strings
 * and the marks a text must not cross (reference ticks, best marks). */
typedef struct dash_box {
    char kind;                  /* 't' text, 'm' mark */
    dash_rect r;
    char text[DASH_LINE];
} dash_box;

typedef struct dash_view {
    int width, height;          /* pixels */
    int panel;                  /* 1 overview, 2 ops, 3 device, 4 training */
    const char *status;         /* right of the header: following, paused, ... */
    const char *source;         /* the file shown */
    /* filled by dash_draw: the plot areas, where only data is drawn */
    int nplots;
    struct {
        char name[24];
        dash_rect r;
        int has_data;
    } plots[DASH_MAX_PLOTS];
    /* NULL: not recorded; else filled up to boxes_cap */
    dash_box *boxes;
    int nboxes, boxes_cap;
} dash_view;

void dash_draw(const dash_model *m, dash_view *v);

/* The bench view (draw_bench.c): one plot per suite. */
struct dash_bench;
void dash_draw_bench(const struct dash_bench *b, dash_view *v);

/* draw.c's primitives, pixel coordinates from the top left; dash_draw and
 * dash_draw_bench make their view the one dash_text and dash_mark record
 * into. */
void dash_record_into(dash_view *v);
void dash_mark(dash_rect r);
void dash_fill(float x, float y, float w, float h, unsigned c);
void dash_outline(dash_rect r, unsigned c);
float dash_text(float x, float y, float scale, unsigned c, const char *s);
float dash_text_width(float scale, const char *s);
/* Text at scale 1 turned a quarter left, read bottom to top from (x, y):
 * its glyphs lie in [x, x + 9] across and above y. Returns its length. */
float dash_text_up(float x, float y, unsigned c, const char *s);
/* Word-wraps s into lines of at most w pixels at the scale (a word longer
 * than a line is cut between characters); returns the line count, at most
 * max, the last line ending in ".." when more were needed. */
int dash_wrap(const char *s, float scale, float w, char (*lines)[DASH_LINE], int max);
void dash_fmt_num(char *b, size_t n, double v);

#endif
