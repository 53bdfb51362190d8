/* A small streaming JSON writer for the profiler's files. The library's
 * allocations go through the context's allocator (cJSON's go to malloc),
 * and a trace of a million slices is streamed to its file rather than
 * built as a tree. */
#ifndef LOOM_JSONW_H
#define LOOM_JSONW_H

#include "internal.h"

#define LOOM_JW_DEPTH 16

typedef struct loom_jw {
    loom_ctx *ctx;
    char *buf;
    size_t len, cap;
    FILE *sink;                 /* NULL: everything stays in buf */
    int oom, io_error;
    int depth;
    int count[LOOM_JW_DEPTH];   /* values written at each depth */
    int after_key;
} loom_jw;

void loom_jw_init(loom_jw *w, loom_ctx *ctx, FILE *sink);
void loom_jw_free(loom_jw *w);
/* Writes what is buffered to the sink (if any); 0 on an I/O error. */
int loom_jw_flush(loom_jw *w);

void loom_jw_begin_obj(loom_jw *w);
void loom_jw_end_obj(loom_jw *w);
void loom_jw_begin_arr(loom_jw *w);
void loom_jw_end_arr(loom_jw *w);
void loom_jw_key(loom_jw *w, const char *key);
void loom_jw_str(loom_jw *w, const char *s);
/* Non-finite numbers are written as null. */
void loom_jw_num(loom_jw *w, double v);
/* v with exactly three decimals (microseconds from nanoseconds). */
void loom_jw_fixed3(loom_jw *w, double v);
void loom_jw_int(loom_jw *w, int64_t v);
void loom_jw_null(loom_jw *w);
/* Raw text (a newline between records). */
void loom_jw_raw(loom_jw *w, const char *s);

/* key + value shorthands */
void loom_jw_kstr(loom_jw *w, const char *key, const char *s);
void loom_jw_knum(loom_jw *w, const char *key, double v);
void loom_jw_kint(loom_jw *w, const char *key, int64_t v);

#endif
