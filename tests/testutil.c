#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void quiet(void *u, loom_log_level l, const char *m)
{
    (void)u;
    if (l == LOOM_LOG_ERROR || getenv("LOOM_LOG"))
        fprintf(stderr, "loom: %s\n", m);
}

loom_ctx *tu_ctx(void)
{
    loom_ctx_opts o;
    loom_ctx_opts_default(&o);
    o.log = quiet;
    loom_ctx *ctx = NULL;
    ck_assert_int_eq(loom_ctx_create(&o, &ctx), LOOM_OK);
    ck_assert_ptr_nonnull(ctx);
    return ctx;
}

loom_device *tu_open(loom_ctx *ctx, const char *spec)
{
    loom_device *d = NULL;
    loom_status s = loom_device_open(ctx, spec, &d);
    ck_assert_msg(s == LOOM_OK, "open %s: %s", spec, loom_last_error(ctx));
    return d;
}

void tu_fill(float *x, size_t n, uint32_t seed, float lo, float hi)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        x[i] = lo + (hi - lo) * (float)((s >> 40) & 0xffffff) / 16777216.0f;
    }
}

double tu_err(const float *a, const float *b, size_t n, double atol, double rtol)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (isnan(a[i]) != isnan(b[i]))
            return INFINITY;
        double e = d / (atol + rtol * fabs((double)b[i]));
        if (e > worst)
            worst = e;
    }
    return worst;
}

loom_program *tu_compile_run(loom_graph *g, loom_device *dev, loom_state *st, int n, const char *const *names,
                             const void *const *data, const size_t *bytes)
{
    loom_program *p = NULL;
    loom_ctx *ctx = NULL;
    (void)ctx;
    loom_status s = loom_compile(g, dev, st, NULL, &p);
    ck_assert_msg(s == LOOM_OK, "compile: %s (%s)", loom_status_str(s), loom_graph_error(g));
    for (int i = 0; i < n; i++) {
        s = loom_program_set_input(p, names[i], data[i], bytes[i]);
        ck_assert_msg(s == LOOM_OK, "set_input %s: %s", names[i], loom_status_str(s));
    }
    s = loom_program_run(p);
    ck_assert_msg(s == LOOM_OK, "run: %s", loom_status_str(s));
    return p;
}

int tu_listed(const char *env, const char *name)
{
    const char *list = getenv(env);
    if (!list || !*list)
        return 1;
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if (n && !strncmp(name, p, n))
            return 1;
        p += n + (p[n] == ',');
    }
    return 0;
}

int tu_devices(loom_ctx *ctx, char specs[][32], int max)
{
    int k = 0;
    const char *only = getenv("LOOM_TEST_DEVICES");
    for (int i = 0; i < loom_device_count(ctx) && k < max; i++) {
        loom_device_info d;
        if (loom_device_get_info(ctx, i, &d) != LOOM_OK || !d.can_run)
            continue;
        /* whole specs only: "vulkan:1" is not "vulkan:10" */
        int keep = !only || !*only;
        for (const char *p = only; !keep && p && *p;) {
            size_t n = strcspn(p, ",");
            keep = n == strlen(d.spec) && !strncmp(p, d.spec, n);
            p += n + (p[n] == ',');
        }
        if (keep)
            snprintf(specs[k++], 32, "%s", d.spec);
    }
    /* a run aimed at a device must not pass without it */
    char present[512] = "";
    for (int i = 0; only && i < loom_device_count(ctx); i++) {
        loom_device_info d;
        size_t len = strlen(present);
        if (loom_device_get_info(ctx, i, &d) == LOOM_OK && d.can_run)
            snprintf(present + len, sizeof present - len, "%s%s", len ? ", " : "", d.spec);
    }
    for (const char *p = only; p && *p;) {
        size_t n = strcspn(p, ",");
        int found = 0;
        for (int i = 0; i < k && !found; i++)
            found = n == strlen(specs[i]) && !strncmp(p, specs[i], n);
        ck_assert_msg(found || !n, "LOOM_TEST_DEVICES=%s: %.*s is not present or cannot run graphs (present: %s)",
                      only, (int)n, p, present[0] ? present : "none");
        p += n + (p[n] == ',');
    }
    return k;
}
