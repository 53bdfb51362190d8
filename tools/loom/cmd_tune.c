/* loom tune: measures the device's GEMM parameter sets once and stores the
 * fastest, which every later open of the device applies. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void bar(void *user, int done, int total, const char *what)
{
    (void)user;
    int width = 30, fill = total > 0 ? done * width / total : width;
    fprintf(stderr, "\r[%.*s%*s] %3d/%d %-76.76s", fill, "##############################", width - fill, "", done,
            total, what);
    if (done >= total)
        fputc('\n', stderr);
    fflush(stderr);
}

enum { O_DEVICE = CLI_OPT_BASE, O_APPLY, O_SIZE, O_CANDIDATES, O_REPS, O_SHOW };

static const struct option opts[] = {
    {"device", required_argument, 0, O_DEVICE},
    {"apply", required_argument, 0, O_APPLY},
    {"size", required_argument, 0, O_SIZE},
    {"candidates", required_argument, 0, O_CANDIDATES},
    {"reps", required_argument, 0, O_REPS},
    {"show", no_argument, 0, O_SHOW},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

int cmd_tune(int argc, char **argv)
{
    const char *spec = "auto", *apply = NULL;
    loom_tune_opts o;
    loom_tune_opts_default(&o);
    int64_t size = 1024, candidates = 24, reps = 3;
    int show = 0;
    cli_args a = cli_args_init("tune", argc, argv, opts);
    for (int c; (c = cli_next(&a)) != -1;) {
        int bad = 0;
        switch (c) {
        case O_DEVICE: spec = optarg; break;
        case O_APPLY: apply = optarg; break;
        case O_SIZE: bad = cli_int(&a, 16, 8192, &size); break;
        case O_CANDIDATES: bad = cli_int(&a, 1, 100000, &candidates); break;
        case O_REPS: bad = cli_int(&a, 1, 1000, &reps); break;
        case O_SHOW: show = 1; break;
        default: return a.rc;
        }
        if (bad)
            return bad;
    }
    if (show && apply)
        return cli_usage_error("tune", "--show and --apply exclude each other");
    o.size = (int)size;
    o.max_candidates = (int)candidates;
    o.reps = (int)reps;
    loom_ctx *ctx = cli_ctx();
    if (!ctx)
        return 1;
    loom_device *dev = NULL;
    int rc = 1;
    char text[8192];
    if (loom_device_open(ctx, spec, &dev) != LOOM_OK)
        goto fail;
    const loom_device_info *info = loom_device_get(dev);
    if (show) {
        if (loom_device_get_tuning(dev, text, sizeof text) != LOOM_OK)
            goto fail;
        printf("%s\n", text);
        rc = 0;
        goto done;
    }
    if (apply) {
        /* A set from a file, checked and stored as if the search found it. */
        FILE *f = fopen(apply, "rb");
        size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
        if (f)
            fclose(f);
        if (!f) {
            fprintf(stderr, "loom tune: cannot read %s\n", apply);
            goto done;
        }
        text[n] = 0;
        if (loom_device_set_tuning(dev, text) != LOOM_OK)
            goto fail;
        printf("%s: applied and checked the GEMM parameters of %s (this process only)\n", info->spec, apply);
        rc = 0;
        goto done;
    }
    fprintf(stderr, "tuning GEMM on %s (%s): %d candidates at %d^3, best of %d runs each\n", info->spec, info->name,
            o.max_candidates, o.size, o.reps);
    o.progress = bar;
    loom_tune_report r;
    if (loom_device_tune(dev, &o, &r) != LOOM_OK)
        goto fail;
    printf("device       %s (%s)\n", info->spec, info->name);
    printf("baseline     %.1f GFLOP/s at %d^3\n", r.baseline_gflops, o.size);
    printf("tuned        %.1f GFLOP/s at %d^3 (%.1fx)%s\n", r.best_gflops, o.size,
           r.baseline_gflops > 0 ? r.best_gflops / r.baseline_gflops : 0.0, r.improved ? "" : ", baseline kept");
    printf("candidates   %d measured, %d rejected, %.0f s\n", r.measured, r.rejected, r.seconds);
    printf("stored       %s\n", r.path);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "loom tune: %s\n", loom_last_error(ctx));
done:
    loom_device_close(dev);
    return cli_finish(ctx, "tune", rc);
}
