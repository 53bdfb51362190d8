/* loom bench: results, their table, their JSON and comparisons. */
#ifndef LOOM_BENCH_H
#define LOOM_BENCH_H

#include "cli.h"

#include <stdio.h>

#define BENCH_MAX_FIGS 512
#define BENCH_MAX_DEVS 16

typedef struct bench_fig {
    char device[32];          /* a device spec, or a reference ("openblas", "memcpy") */
    char suite[16];
    char name[64];
    char unit[16];
    int hib;                  /* higher is better */
    double median, min, max;
    int runs;
    int correct;              /* 0: WRONG */
    char ref_name[32];
    double ref_median, ratio; /* NAN when no reference */
    char extra_name[32];      /* e.g. test_accuracy of a training run */
    double extra;
} bench_fig;

typedef struct bench_dev {
    char spec[32], name[256], backend[16], vendor[64], driver[128], api[32], uuid[40], type[16];
} bench_dev;

typedef struct bench_run {
    int quick;
    char version[32], commit[48], date[40], cpu[128], host[64];
    bench_dev devs[BENCH_MAX_DEVS];
    int ndevs;
    bench_fig figs[BENCH_MAX_FIGS];
    int nfigs;
} bench_run;

/* A device being measured (cmd_bench.c opens them). */
typedef struct bench_device {
    loom_ctx *ctx;
    loom_device *dev;
    const char *spec;
    int corrupt;              /* test hook: this device's results are made wrong */
} bench_device;

int cmd_bench(int argc, char **argv);
/* A new figure (NULL when the run is full) and its value from timed
 * samples: rates work / time (times scaled) when work > 0, else times. */
bench_fig *bench_add_fig(bench_run *r, const char *dev, const char *suite, const char *name, const char *unit, int hib);
void bench_set_fig(bench_fig *f, double *times, int n, double work, double scale);
double bench_now_s(void);
/* The attention suite (bench_attention.c): fused and unfused attention,
 * forward and forward + backward, and their arenas, on every device. */
void bench_suite_attention(const bench_device *devs, int ndev, int quick, bench_run *r);
/* --suite conv (bench_conv.c): conv2d forward and backward on every
 * device beside im2col + OpenBLAS, checked against ref (the CPU device). */
void bench_suite_conv(const bench_device *devs, int ndev, int quick, const bench_device *ref, bench_run *r);
void bench_add_device(bench_run *r, const loom_device_info *d);
void bench_print(const bench_run *r, FILE *f);
int bench_save(bench_run *r, const char *path);
int bench_load(const char *path, bench_run *r);
/* Prints each figure's change against base; returns the regressions: a
 * change for the worse beyond both runs' measured spread (and 5%). */
int bench_compare(const bench_run *base, const bench_run *cur, FILE *f);

#endif
