/*
 * loom-dash's bench view, data side (no GL): results files written by
 * `loom bench --json FILE`, one or more, read into columns (one per device
 * of each file) and results. The tests link this part directly.
 */
#ifndef LOOM_DASH_BENCH_H
#define LOOM_DASH_BENCH_H

#include <stddef.h>

#define DASH_BENCH_MAX_FILES 8
#define DASH_BENCH_MAX_COLUMNS 24

typedef struct dash_bench_file {
    char path[256];
    char hostname[64], cpu_model[128], version[32], commit[48], date[32];
    int quick;                  /* -1 when the file does not say */
} dash_bench_file;

/* One device of one file: a colour in the view. */
typedef struct dash_bench_column {
    int file;
    char spec[32], name[128], backend[16], driver[128];
    char label[96];             /* spec, or "host spec" when files are several */
} dash_bench_column;

typedef struct dash_bench_result {
    int column;
    char suite[16], name[64], unit[24], ref_name[48];
    int higher_is_better;
    int correct;                /* 0: the device computed a wrong answer */
    int runs;
    double median, min, max;    /* NAN when absent */
    double ref_median, ratio;   /* NAN when there is no reference */
} dash_bench_result;

typedef struct dash_bench {
    dash_bench_file files[DASH_BENCH_MAX_FILES];
    int nfiles;
    dash_bench_column cols[DASH_BENCH_MAX_COLUMNS];
    int ncols;
    dash_bench_result *res;
    int nres, cap;
    int skipped;                /* results without a usable figure */
} dash_bench;

void dash_bench_init(dash_bench *b);
void dash_bench_free(dash_bench *b);
/* Adds one results file. 0 on success; otherwise -1 and a message in err
 * (the file cannot be read, is not JSON, is not a results file, has no
 * results). On failure b is as it was. */
int dash_bench_load(dash_bench *b, const char *path, char *err, size_t errlen);
/* Gives every column its label once all files are loaded: the spec alone
 * for one file; with several, the host name (or the file's name when two
 * files share a host) before it. */
void dash_bench_label(dash_bench *b);

/* The suites present, in the order gemm, bandwidth, dispatch, train,
 * infer, startup, then others in order of appearance. Returns the count
 * (at most max). */
int dash_bench_suites(const dash_bench *b, const char **out, int max);
/* The bar groups (result names) of one suite in order of appearance. */
int dash_bench_groups(const dash_bench *b, const char *suite, const char **out, int max);
/* The result of one column in one group, or NULL. */
const dash_bench_result *dash_bench_find(const dash_bench *b, int column, const char *suite, const char *name);
/* The best correct result of a group (highest, or lowest when lower is
 * better), or -1 when fewer than two columns have a correct figure. */
int dash_bench_best(const dash_bench *b, const char *suite, const char *name);

#endif
