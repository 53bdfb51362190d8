/* The streaming JSON writer (jsonw.h). */
#include "jsonw.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

void loom_jw_init(loom_jw *w, loom_ctx *ctx, FILE *sink)
{
    memset(w, 0, sizeof *w);
    w->ctx = ctx;
    w->sink = sink;
}

void loom_jw_free(loom_jw *w)
{
    loom_free(w->ctx, w->buf, w->cap);
    w->buf = NULL;
    w->len = w->cap = 0;
}

int loom_jw_flush(loom_jw *w)
{
    if (w->sink && w->len) {
        if (fwrite(w->buf, 1, w->len, w->sink) != w->len)
            w->io_error = 1;
        w->len = 0;
    }
    return !w->io_error;
}

static void put(loom_jw *w, const char *s, size_t n)
{
    if (w->oom)
        return;
    if (w->sink && w->len + n > 65536)
        loom_jw_flush(w);
    if (w->len + n + 1 > w->cap) {
        size_t nc = w->cap ? w->cap : 1024;
        while (nc < w->len + n + 1)
            nc *= 2;
        char *nb = loom_realloc(w->ctx, w->buf, w->cap, nc);
        if (!nb) {
            w->oom = 1;
            return;
        }
        w->buf = nb;
        w->cap = nc;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = 0;
}

static void puts_(loom_jw *w, const char *s)
{
    put(w, s, strlen(s));
}

/* The comma before a value (or a key) that is not the first of its
 * container. */
static void sep(loom_jw *w)
{
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    if (w->count[w->depth]++ > 0)
        put(w, ",", 1);
}

static void open_(loom_jw *w, const char *c)
{
    sep(w);
    puts_(w, c);
    if (w->depth + 1 < LOOM_JW_DEPTH)
        w->depth++;
    w->count[w->depth] = 0;
}

static void close_(loom_jw *w, const char *c)
{
    puts_(w, c);
    if (w->depth > 0)
        w->depth--;
}

void loom_jw_begin_obj(loom_jw *w) { open_(w, "{"); }
void loom_jw_end_obj(loom_jw *w) { close_(w, "}"); }
void loom_jw_begin_arr(loom_jw *w) { open_(w, "["); }
void loom_jw_end_arr(loom_jw *w) { close_(w, "]"); }

static void escaped(loom_jw *w, const char *s)
{
    put(w, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        put(w, run, (size_t)(s - run));
        char e[8];
        if (c == '"' || c == '\\')
            snprintf(e, sizeof e, "\\%c", c);
        else if (c == '\n')
            snprintf(e, sizeof e, "\\n");
        else if (c == '\t')
            snprintf(e, sizeof e, "\\t");
        else
            snprintf(e, sizeof e, "\\u%04x", c);
        puts_(w, e);
        run = s + 1;
    }
    put(w, run, (size_t)(s - run));
    put(w, "\"", 1);
}

void loom_jw_key(loom_jw *w, const char *key)
{
    sep(w);
    escaped(w, key);
    put(w, ":", 1);
    w->after_key = 1;
}

void loom_jw_str(loom_jw *w, const char *s)
{
    sep(w);
    escaped(w, s ? s : "");
}

void loom_jw_num(loom_jw *w, double v)
{
    sep(w);
    if (!isfinite(v)) {
        puts_(w, "null");
        return;
    }
    char b[40];
    if (v == floor(v) && fabs(v) < 9e15)
        snprintf(b, sizeof b, "%.0f", v);
    else
        snprintf(b, sizeof b, "%.15g", v);
    puts_(w, b);
}

void loom_jw_fixed3(loom_jw *w, double v)
{
    sep(w);
    char b[40];
    snprintf(b, sizeof b, "%.3f", isfinite(v) ? v : 0.0);
    puts_(w, b);
}

void loom_jw_int(loom_jw *w, int64_t v)
{
    sep(w);
    char b[32];
    snprintf(b, sizeof b, "%" PRId64, v);
    puts_(w, b);
}

void loom_jw_null(loom_jw *w)
{
    sep(w);
    puts_(w, "null");
}

void loom_jw_raw(loom_jw *w, const char *s)
{
    puts_(w, s);
}

void loom_jw_kstr(loom_jw *w, const char *key, const char *s)
{
    loom_jw_key(w, key);
    loom_jw_str(w, s);
}

void loom_jw_knum(loom_jw *w, const char *key, double v)
{
    loom_jw_key(w, key);
    loom_jw_num(w, v);
}

void loom_jw_kint(loom_jw *w, const char *key, int64_t v)
{
    loom_jw_key(w, key);
    loom_jw_int(w, v);
}
