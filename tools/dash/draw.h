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
} dash_view;

void dash_draw(const dash_model *m, dash_view *v);

/* The bench view (draw_bench.c): one plot per suite. */
struct dash_bench;
void dash_draw_bench(const struct dash_bench *b, dash_view *v);

/* draw.c's primitives, pixel coordinates from the top left */
void dash_fill(float x, float y, float w, float h, unsigned c);
void dash_outline(dash_rect r, unsigned c);
float dash_text(float x, float y, float scale, unsigned c, const char *s);
float dash_text_width(float scale, const char *s);
void dash_fmt_num(char *b, size_t n, double v);

#endif
