/* The layout loom-dash --screenshot --print-layout prints, read back by the
 * dashboard's tests: each text with its box, each mark a text must not
 * cross. Included by test_dash.c and test_dash_bench.c. */
#ifndef LOOM_TEST_DASH_LAYOUT_H
#define LOOM_TEST_DASH_LAYOUT_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lbox {
    char kind;                  /* 't' or 'm' */
    double x, y, w, h;
    char text[192];
} lbox;

typedef struct layout {
    lbox *b;
    int n;
} layout;

static inline layout layout_parse(const char *out)
{
    layout L = {calloc(8192, sizeof(lbox)), 0};
    ck_assert_ptr_nonnull(L.b);
    for (const char *p = out; p && *p && L.n < 8192; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        lbox *b = &L.b[L.n];
        int used = 0;
        if (!strncmp(p, "text ", 5) && sscanf(p, "text %lf %lf %lf %lf %n", &b->x, &b->y, &b->w, &b->h, &used) == 4) {
            const char *e = strchr(p + used, '\n');
            size_t len = e ? (size_t)(e - (p + used)) : strlen(p + used);
            snprintf(b->text, sizeof b->text, "%.*s", (int)len, p + used);
            b->kind = 't';
            L.n++;
        } else if (!strncmp(p, "mark ", 5) && sscanf(p, "mark %lf %lf %lf %lf", &b->x, &b->y, &b->w, &b->h) == 4) {
            b->kind = 'm';
            L.n++;
        }
    }
    return L;
}

static inline void layout_free(layout *L)
{
    free(L->b);
    L->b = NULL;
}

/* Overlap of more than half a pixel both ways: touching is not crossing. */
static inline int boxes_cross(const lbox *a, const lbox *b)
{
    double ox = (a->x + a->w < b->x + b->w ? a->x + a->w : b->x + b->w) - (a->x > b->x ? a->x : b->x);
    double oy = (a->y + a->h < b->y + b->h ? a->y + a->h : b->y + b->h) - (a->y > b->y ? a->y : b->y);
    return ox > 0.5 && oy > 0.5;
}

/* Every text inside the w x h frame, crossing no other text and no mark. */
static inline void layout_check(const layout *L, int w, int h, const char *what)
{
    int texts = 0;
    for (int i = 0; i < L->n; i++) {
        const lbox *a = &L->b[i];
        if (a->kind != 't')
            continue;
        texts++;
        ck_assert_msg(a->x >= -0.5 && a->y >= -0.5 && a->x + a->w <= w + 0.5 && a->y + a->h <= h + 0.5,
                      "%s: text \"%s\" at %.1f,%.1f %.1fx%.1f leaves the %dx%d frame", what, a->text, a->x, a->y, a->w,
                      a->h, w, h);
        for (int k = 0; k < L->n; k++) {
            const lbox *b = &L->b[k];
            if (k == i || (b->kind == 't' && k < i))
                continue;
            ck_assert_msg(!boxes_cross(a, b), "%s: text \"%s\" (%.1f,%.1f %.1fx%.1f) crosses %s \"%s\" (%.1f,%.1f %.1fx%.1f)",
                          what, a->text, a->x, a->y, a->w, a->h, b->kind == 't' ? "text" : "mark", b->text, b->x, b->y,
                          b->w, b->h);
        }
    }
    ck_assert_msg(texts > 0, "%s: no text in the layout", what);
}

/* The text whose string is exactly s, or NULL. */
static inline const lbox *layout_find(const layout *L, const char *s)
{
    for (int i = 0; i < L->n; i++)
        if (L->b[i].kind == 't' && !strcmp(L->b[i].text, s))
            return &L->b[i];
    return NULL;
}

/* 1 if s, spaces aside, is read in the texts in the order they were laid
 * out: whole, or wrapped over consecutive lines, never cut short. */
static inline int layout_reads(const layout *L, const char *s)
{
    size_t cap = 1;
    for (int i = 0; i < L->n; i++)
        cap += strlen(L->b[i].text);
    char *all = malloc(cap), *want = malloc(strlen(s) + 1);
    ck_assert(all && want);
    size_t k = 0, j = 0;
    for (int i = 0; i < L->n; i++)
        for (const char *p = L->b[i].text; *p; p++)
            if (*p != ' ')
                all[k++] = *p;
    all[k] = 0;
    for (const char *p = s; *p; p++)
        if (*p != ' ')
            want[j++] = *p;
    want[j] = 0;
    int found = strstr(all, want) != NULL;
    free(all);
    free(want);
    return found;
}

#endif
