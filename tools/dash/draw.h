/* Drawing one dashboard frame with legacy OpenGL into the current
 * framebuffer (a window or the screenshot's offscreen one). */
#ifndef LOOM_DASH_DRAW_H
#define LOOM_DASH_DRAW_H

#include "dash.h"

#define DASH_PANELS 4
/* The colour of an empty plot area (0xRRGGBB); the screenshot reports it. */
#define DASH_PLOT_BG 0x1b1f27
#define DASH_MAX_PLOTS 8

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

#endif
