/* loom bench --suite attention: scaled-dot-product attention at sequence
 * lengths 128, 512 and 2048 (head size 64, 4 heads), forward and forward +
 * backward, fused (loom_attention: tiles, the scores never stored) beside
 * the unfused composition (loom_attention_reference: batched matmuls and a
 * softmax over the [N, N] scores) on the same device, and the CPU device's
 * fused attention (OpenBLAS tiles) as the reference of every device, in the
 * same run; the planner's arena of each program (forward + backward). The
 * fused results are checked against the unfused ones of the same device. */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEADS 4
#define HEAD_SIZE 64

typedef struct attn_prog {
    loom_graph *g;
    loom_state *st;
    loom_program *p;
    uint64_t arena;
} attn_prog;

static void free_prog(attn_prog *a)
{
    loom_program_destroy(a->p);
    loom_state_destroy(a->st);
    loom_graph_destroy(a->g);
    memset(a, 0, sizeof *a);
}

/* The program of one variant: o (and with backward dq, dk, dv of
 * loss = sum(o * w)). */
static loom_status build(const bench_device *d, int64_t n, int fused, int backward, attn_prog *a)
{
    memset(a, 0, sizeof *a);
    int64_t s[4] = {1, HEADS, n, HEAD_SIZE};
    LOOM_TRY(loom_graph_create(d->ctx, &a->g));
    LOOM_TRY(loom_state_create(d->dev, &a->st));
    loom_graph *g = a->g;
    loom_tensor q = loom_input(g, "q", LOOM_F32, 4, s), k = loom_input(g, "k", LOOM_F32, 4, s),
                v = loom_input(g, "v", LOOM_F32, 4, s);
    loom_tensor o = fused ? loom_attention(g, q, k, v, LOOM_NONE, NULL)
                          : loom_attention_reference(g, q, k, v, LOOM_NONE, NULL);
    loom_output(g, o, "o");
    if (backward) {
        loom_tensor loss = loom_sum_all(g, loom_mul(g, o, loom_input(g, "w", LOOM_F32, 4, s)));
        loom_tensor wrt[3] = {q, k, v};
        LOOM_TRY(loom_backward(g, loss, wrt, 3));
        loom_output(g, loom_grad(g, q), "dq");
        loom_output(g, loom_grad(g, k), "dk");
        loom_output(g, loom_grad(g, v), "dv");
    }
    LOOM_TRY(loom_compile(g, d->dev, a->st, NULL, &a->p));
    loom_plan_report pr;
    LOOM_TRY(loom_program_plan(a->p, &pr));
    a->arena = pr.arena_bytes;
    return LOOM_OK;
}

/* Sets the inputs, runs once to warm up, then reps timed runs. */
static loom_status timed(attn_prog *a, float *const *in, size_t n, int backward, int reps, double *t)
{
    static const char *const names[4] = {"q", "k", "v", "w"};
    for (int i = 0; i < 3 + backward; i++)
        LOOM_TRY(loom_program_set_input(a->p, names[i], in[i], n * sizeof(float)));
    LOOM_TRY(loom_program_run(a->p));
    for (int i = 0; i < reps; i++) {
        double t0 = bench_now_s();
        LOOM_TRY(loom_program_run(a->p));
        t[i] = bench_now_s() - t0;
    }
    return LOOM_OK;
}

static double max_abs(const float *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

/* 1 if every output of the fused program matches the unfused one's. */
static int agree(attn_prog *f, attn_prog *u, int backward, size_t n, float *bf, float *bu, int corrupt)
{
    static const char *const outs[4] = {"o", "dq", "dk", "dv"};
    for (int i = 0; i < 1 + 3 * backward; i++) {
        if (loom_program_read(f->p, outs[i], bf, n * 4) != LOOM_OK ||
            loom_program_read(u->p, outs[i], bu, n * 4) != LOOM_OK)
            return 0;
        if (corrupt)
            bf[5] += 1.0f;
        double scale = max_abs(bu, n), worst = 0;
        for (size_t j = 0; j < n; j++)
            worst = fmax(worst, fabs((double)bf[j] - bu[j]));
        if (!(worst <= 1e-4 * (scale + 1)))
            return 0;
    }
    return 1;
}

static void fill(float *x, size_t n, uint32_t seed)
{
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)(s >> 8) / 16777216.0f * 2.0f - 1.0f;
    }
}

void bench_suite_attention(const bench_device *devs, int ndev, int quick, bench_run *r)
{
    static const int64_t lengths[3] = {128, 512, 2048};
    for (int li = 0; li < (quick ? 2 : 3); li++) {
        int64_t n = lengths[li];
        size_t ne = (size_t)(HEADS * n * HEAD_SIZE);
        int reps = quick ? 2 : (n >= 2048 ? 3 : 5);
        float *in[4], *bf = malloc(ne * 4), *bu = malloc(ne * 4);
        double *t = malloc((size_t)reps * sizeof *t);
        for (int i = 0; i < 4; i++) {
            in[i] = malloc(ne * 4);
            if (in[i])
                fill(in[i], ne, 11u + (uint32_t)i);
        }
        if (!bf || !bu || !t || !in[0] || !in[1] || !in[2] || !in[3])
            goto next;
        /* FLOPs per head: the scores and their product with v, 4 N^2 D;
         * the backward pass, twice that */
        double work[2] = {4.0 * HEADS * (double)n * (double)n * HEAD_SIZE,
                          12.0 * HEADS * (double)n * (double)n * HEAD_SIZE};
        double cpu_fused[2] = {NAN, NAN};
        for (int di = 0; di < ndev; di++) {
            const bench_device *d = &devs[di];
            for (int backward = 0; backward < 2; backward++) {
                const char *what = backward ? "fwd+bwd" : "fwd";
                attn_prog f = {0}, u = {0};
                fprintf(stderr, "bench: attention %s N=%lld on %s\n", what, (long long)n, d->spec);
                loom_status e = build(d, n, 1, backward, &f);
                if (e == LOOM_OK)
                    e = build(d, n, 0, backward, &u);
                double fused_rate = NAN;
                for (int fused = 1; fused >= 0 && e == LOOM_OK; fused--) {
                    e = timed(fused ? &f : &u, in, ne, backward, reps, t);
                    if (e != LOOM_OK)
                        break;
                    char name[64];
                    snprintf(name, sizeof name, "%s N=%lld %s", what, (long long)n, fused ? "fused" : "unfused");
                    bench_fig *fg = bench_add_fig(r, d->spec, "attention", name, "GFLOP/s", 1);
                    if (!fg)
                        continue;
                    bench_set_fig(fg, t, reps, work[backward], 1e-9);
                    if (fused) {
                        fused_rate = fg->median;
                        if (!strcmp(d->spec, "cpu"))
                            cpu_fused[backward] = fg->median;
                        /* the CPU device's fused attention (OpenBLAS tiles) */
                        snprintf(fg->ref_name, sizeof fg->ref_name, "cpu fused");
                        fg->ref_median = strcmp(d->spec, "cpu") ? cpu_fused[backward] : NAN;
                        fg->correct = 0; /* set below, once both have run */
                    } else {
                        snprintf(fg->ref_name, sizeof fg->ref_name, "fused, same device");
                        fg->ref_median = fused_rate;
                        int ok = agree(&f, &u, backward, ne, bf, bu, d->corrupt);
                        fg->correct = ok;
                        bench_fig *ff = fg - 1;
                        ff->correct = ok;
                    }
                }
                if (e == LOOM_OK && backward) {
                    /* memory: the arenas of the forward + backward programs */
                    for (int fused = 1; fused >= 0; fused--) {
                        char name[64];
                        snprintf(name, sizeof name, "arena N=%lld %s", (long long)n, fused ? "fused" : "unfused");
                        bench_fig *fg = bench_add_fig(r, d->spec, "attention", name, "MiB", 0);
                        if (!fg)
                            continue;
                        double mib = (double)(fused ? f.arena : u.arena) / 1048576.0;
                        fg->median = fg->min = fg->max = mib;
                        fg->runs = 1;
                        if (!fused) {
                            snprintf(fg->ref_name, sizeof fg->ref_name, "fused arena");
                            fg->ref_median = (double)f.arena / 1048576.0;
                        }
                        /* the unfused scores: HEADS x N x N floats */
                        snprintf(fg->extra_name, sizeof fg->extra_name, "scores_mib");
                        fg->extra = 4.0 * HEADS * (double)n * (double)n / 1048576.0;
                    }
                }
                if (e != LOOM_OK)
                    fprintf(stderr, "bench: attention %s N=%lld on %s failed: %s\n", what, (long long)n, d->spec,
                            loom_last_error(d->ctx));
                free_prog(&f);
                free_prog(&u);
            }
        }
    next:
        for (int i = 0; i < 4; i++)
            free(in[i]);
        free(bf);
        free(bu);
        free(t);
    }
}
