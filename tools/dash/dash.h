/*
 * loom-dash's data side, free of any GL: a follower that reads a growing
 * metrics file line by line, the model the lines fill, and the loader of
 * saved Chrome traces. The tests link this part directly.
 */
#ifndef LOOM_DASH_H
#define LOOM_DASH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- following a growing file ---- */

typedef void (*dash_line_fn)(void *user, const char *line, size_t len);

typedef struct dash_follow {
    char *path;
    int fd;                     /* -1 while the file does not exist */
    off_t offset;               /* bytes consumed */
    dev_t dev;
    ino_t ino;
    char *frag;                 /* the trailing bytes that have no newline yet */
    size_t flen, fcap;
    int skipping;               /* inside a line too long to keep */
    int64_t long_lines;         /* lines dropped for being too long */
    double last_growth;         /* CLOCK_MONOTONIC seconds of the last new byte */
} dash_follow;

#define DASH_RESTART (-2)

/* Never fails for a missing file (it is looked for again at each poll);
 * -1 only when out of memory. */
int dash_follow_open(dash_follow *f, const char *path);
void dash_follow_close(dash_follow *f);
/* Calls fn on each complete line appended since the last poll (without its
 * newline). Returns the number of lines, -1 when out of memory, or
 * DASH_RESTART when the file shrank or was replaced: the caller drops what
 * it has and polls again, which reads from the start. */
int dash_follow_poll(dash_follow *f, dash_line_fn fn, void *user);
/* 1 if the file exists (was opened). */
int dash_follow_exists(const dash_follow *f);

/* ---- the model ---- */

typedef struct dash_series {
    double *x, *y;
    int n, cap;
} dash_series;

typedef struct dash_op {
    char name[64];
    char op[32];
    int64_t count;
    double total_ms, mean_us, gflops, gbps;
} dash_op;

#define DASH_MAX_OPS 64
#define DASH_MAX_PLANS 4

typedef struct dash_plan {
    char label[48];
    double arena, lower_bound, naive, state_bytes;
    double *live;
    int nlive;
} dash_plan;

enum dash_series_id {
    DS_THROUGHPUT,              /* samples/s (metrics) or runs/s (trace) */
    DS_BUSY,                    /* ours */
    DS_VENDOR_UTIL,
    DS_ENGINE,
    DS_MEM,
    DS_VENDOR_MEM,
    DS_LOSS,
    DS_VAL_LOSS,
    DS_ACCURACY,
    DS_VAL_ACCURACY,
    DS_STEP_MS,
    DS_COUNT
};

typedef struct dash_model {
    char device[256], vendor[64], driver[128], spec[32], backend[16];
    char vendor_source[96];
    int have_header;
    int from_trace;             /* throughput is runs/s, not samples/s */
    dash_series s[DS_COUNT];
    dash_op ops[DASH_MAX_OPS];
    int nops;
    int64_t ops_runs;
    double ops_busy_pct, ops_wall_ms;
    dash_plan plans[DASH_MAX_PLANS];
    int nplans;
    int64_t last_step, last_epoch;
    double last_time;
    int ended;
    int64_t lines, bad_lines, other_lines;
    int ndevices;               /* traces: devices in the file */
} dash_model;

void dash_model_init(dash_model *m);
void dash_model_free(dash_model *m);
/* Applies one metrics line; 0 if it was not a JSON object with a "type". */
int dash_model_line(dash_model *m, const char *line, size_t len);
/* The callback for dash_follow_poll (user = the model). */
void dash_model_line_cb(void *user, const char *line, size_t len);
/* The last value of a series, or NAN. */
double dash_series_last(const dash_series *s);

/* Loads a Chrome trace written by loom_trace_write into m. 0 on success;
 * otherwise a message in err. */
int dash_load_trace(dash_model *m, const char *path, char *err, size_t errlen);
/* A whole file, NUL-terminated (malloc'd; *len its size if len != NULL), or
 * NULL with a message in err: missing, unreadable, or above max bytes. */
char *dash_read_file(const char *path, long max, long *len, char *err, size_t errlen);
/* 1 if the file looks like a trace (a JSON object or array whose first
 * key is traceEvents or displayTimeUnit, or an array of events). */
int dash_is_trace(const char *path);

#endif
