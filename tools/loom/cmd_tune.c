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

int cmd_tune(int argc, char **argv)
{
    const char *spec = cli_opt(argc, argv, "--device", "auto");
    const char *apply = cli_opt(argc, argv, "--apply", NULL);
    loom_tune_opts o;
    loom_tune_opts_default(&o);
    o.size = atoi(cli_opt(argc, argv, "--size", "1024"));
    o.max_candidates = atoi(cli_opt(argc, argv, "--candidates", "24"));
    o.reps = atoi(cli_opt(argc, argv, "--reps", "3"));
    int show = cli_flag(argc, argv, "--show");
    if (o.size < 16 || o.size > 8192 || o.max_candidates < 1 || o.reps < 1) {
        fprintf(stderr, "loom tune: --size 16..8192, --candidates >= 1, --reps >= 1\n");
        return 2;
    }
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
    loom_ctx_destroy(ctx);
    return rc;
}
