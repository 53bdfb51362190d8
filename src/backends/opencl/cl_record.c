/* The recording: a program is the list of launches cl_launch.c prepared,
 * with every argument set. A run enqueues them all on the in-order queue
 * and waits once (one clFinish); only per-run values are set in between.
 * With profiling, each launch returns an event and the device times are
 * mapped onto the host's CLOCK_MONOTONIC timeline. */
#include "cl_internal.h"

#include <string.h>

typedef struct cl_prog {
    cl_dev *d;
    const loom_exec_program *prog;
    cl_launch *l;
    int nl;
    cl_mem tmp;                /* CLBlast's temporary buffer, NULL if none */
    size_t tmp_bytes;
    uint64_t tmp_generation;   /* the GEMM parameter set it was sized for */
    cl_event *ev;              /* per launch, when profiling */
    cl_event *mark;            /* a marker before each GEMM, when profiling */
    double *t0, *t1;           /* per node, host ns of the last run */
    int have_times;
} cl_prog;

static void release_events(cl_prog *p)
{
    if (!p->ev)
        return;
    for (int i = 0; i < p->nl; i++) {
        if (p->ev[i])
            clReleaseEvent(p->ev[i]);
        if (p->mark[i])
            clReleaseEvent(p->mark[i]);
        p->ev[i] = p->mark[i] = NULL;
    }
}

void loom_cl_release(void *bp)
{
    cl_prog *p = bp;
    if (!p)
        return;
    loom_ctx *ctx = p->d->ctx;
    release_events(p);
    for (int i = 0; i < p->nl; i++) {
        if (p->l[i].kernel)
            clReleaseKernel(p->l[i].kernel);
        if (p->l[i].scratch)
            loom_cl_buffer_free(p->d, p->l[i].scratch);
        loom_free(ctx, p->l[i].host, p->l[i].host_bytes);
    }
    if (p->tmp)
        clReleaseMemObject(p->tmp);
    int nn = p->prog->nnodes ? p->prog->nnodes : 1, nl = p->nl ? p->nl : 1;
    loom_free(ctx, p->l, (size_t)nl * sizeof *p->l);
    loom_free(ctx, p->ev, (size_t)nl * sizeof *p->ev);
    loom_free(ctx, p->mark, (size_t)nl * sizeof *p->mark);
    loom_free(ctx, p->t0, (size_t)nn * sizeof *p->t0);
    loom_free(ctx, p->t1, (size_t)nn * sizeof *p->t1);
    loom_free(ctx, p, sizeof *p);
}

static const char *node_name(const cl_prog *p, int node)
{
    return p->prog->nodes[node].node->name;
}

/* One temporary buffer per program, as large as its largest GEMM needs
 * under the parameter set in use. */
static loom_status size_tmp(cl_prog *p)
{
    cl_dev *d = p->d;
    size_t need = 0;
    for (int i = 0; i < p->nl; i++) {
        if (p->l[i].kind != LOOM_CLL_GEMM)
            continue;
        size_t b = 0;
        LOOM_TRY(loom_cl_gemm_tmp_size(d, &p->l[i].gemm, &b, node_name(p, p->l[i].node)));
        need = b > need ? b : need;
    }
    p->tmp_generation = d->gemm_generation;
    if (need <= p->tmp_bytes)
        return LOOM_OK;
    if (p->tmp)
        clReleaseMemObject(p->tmp);
    p->tmp = NULL;
    p->tmp_bytes = 0;
    cl_int e = CL_SUCCESS;
    p->tmp = clCreateBuffer(d->context, CL_MEM_READ_WRITE, need, NULL, &e);
    if (e != CL_SUCCESS)
        return loom_cl_fail(d, e, "clCreateBuffer", "CLBlast's %zu-byte temporary buffer for %s", need,
                            p->prog->name);
    p->tmp_bytes = need;
    return LOOM_OK;
}

loom_status loom_cl_prepare(void *bdev, const loom_exec_program *prog, void **out)
{
    cl_dev *d = bdev;
    *out = NULL;
    cl_prog *p = loom_calloc(d->ctx, 1, sizeof *p);
    if (!p)
        return loom_fail(d->ctx, LOOM_E_OOM, "%s: out of memory preparing %s", d->label, prog->name);
    p->d = d;
    p->prog = prog;
    int total = 0;
    for (int i = 0; i < prog->nnodes; i++)
        total += loom_cl_launch_count(d, &prog->nodes[i]);
    int nn = prog->nnodes ? prog->nnodes : 1, nl = total ? total : 1;
    p->l = loom_calloc(d->ctx, (size_t)nl, sizeof *p->l);
    p->t0 = loom_calloc(d->ctx, (size_t)nn, sizeof *p->t0);
    p->t1 = loom_calloc(d->ctx, (size_t)nn, sizeof *p->t1);
    if (prog->profile) {
        p->ev = loom_calloc(d->ctx, (size_t)nl, sizeof *p->ev);
        p->mark = loom_calloc(d->ctx, (size_t)nl, sizeof *p->mark);
    }
    if (!p->l || !p->t0 || !p->t1 || (prog->profile && (!p->ev || !p->mark))) {
        loom_cl_release(p);
        return loom_fail(d->ctx, LOOM_E_OOM, "%s: out of memory preparing %s (%d launches)", d->label, prog->name,
                         total);
    }
    loom_status s = LOOM_OK;
    for (int i = 0; i < prog->nnodes && s == LOOM_OK; i++) {
        int n = 0;
        s = loom_cl_plan_node(d, &prog->nodes[i], i, p->l + p->nl, total - p->nl, &n);
        /* Launches planned before a failure are counted, so release frees
         * their kernels. */
        p->nl += s == LOOM_OK ? n : 0;
        if (s != LOOM_OK)
            for (int k = 0; k < n; k++) {
                if (p->l[p->nl + k].kernel)
                    clReleaseKernel(p->l[p->nl + k].kernel);
                if (p->l[p->nl + k].scratch)
                    loom_cl_buffer_free(d, p->l[p->nl + k].scratch);
                loom_free(d->ctx, p->l[p->nl + k].host, p->l[p->nl + k].host_bytes);
            }
    }
    if (s == LOOM_OK)
        s = size_tmp(p);
    if (s != LOOM_OK) {
        loom_cl_release(p);
        return s;
    }
    *out = p;
    return LOOM_OK;
}

static loom_status launch_failed(cl_prog *p, const cl_launch *l, cl_int e, const char *call)
{
    const loom_node *nd = p->prog->nodes[l->node].node;
    char sb[96];
    loom_status s = loom_cl_fail(p->d, e, call, "op %s (\"%s\" %s) in %s", loom_op_name(nd->op), nd->name,
                                 loom_shape_str(sb, sizeof sb, nd->ndim, nd->shape), p->prog->name);
    clFinish(p->d->queue); /* nothing of this run may still be running */
    return s;
}

static cl_ulong prof(cl_event ev, cl_profiling_info what)
{
    cl_ulong t = 0;
    if (ev)
        clGetEventProfilingInfo(ev, what, sizeof t, &t, NULL);
    return t;
}

/* Device time -> host CLOCK_MONOTONIC: a marker on the idle queue ends
 * between two host readings; their midpoint is taken as its end. The error
 * is half the round trip (microseconds). */
static loom_status host_offset(cl_prog *p, double *offset)
{
    cl_dev *d = p->d;
    cl_event ev = NULL;
    double a = loom_now_ns();
    cl_int e = clEnqueueMarkerWithWaitList(d->queue, 0, NULL, &ev);
    if (e == CL_SUCCESS)
        e = clFinish(d->queue);
    double b = loom_now_ns();
    if (e != CL_SUCCESS) {
        if (ev)
            clReleaseEvent(ev);
        return loom_cl_fail(d, e, "clEnqueueMarkerWithWaitList", "timing %s", p->prog->name);
    }
    *offset = (a + b) / 2 - (double)prof(ev, CL_PROFILING_COMMAND_END);
    clReleaseEvent(ev);
    return LOOM_OK;
}

static loom_status collect_times(cl_prog *p)
{
    double off = 0;
    LOOM_TRY(host_offset(p, &off));
    int nn = p->prog->nnodes;
    for (int i = 0; i < nn; i++)
        p->t0[i] = p->t1[i] = -1;
    for (int i = 0; i < p->nl; i++) {
        const cl_launch *l = &p->l[i];
        if (!p->ev[i])
            continue;
        int gemm = l->kind == LOOM_CLL_GEMM || l->kind == LOOM_CLL_GEMM_BATCHED;
        cl_event first = gemm && p->mark[i] ? p->mark[i] : p->ev[i];
        double s = (double)prof(first, gemm ? CL_PROFILING_COMMAND_END : CL_PROFILING_COMMAND_START) + off;
        double t = (double)prof(p->ev[i], CL_PROFILING_COMMAND_END) + off;
        if (p->t0[l->node] < 0 || s < p->t0[l->node])
            p->t0[l->node] = s;
        if (t > p->t1[l->node])
            p->t1[l->node] = t;
    }
    /* Nodes with nothing to run (a reshape in place) take no time. */
    double last = 0;
    for (int i = 0; i < nn; i++) {
        if (p->t0[i] < 0)
            p->t0[i] = p->t1[i] = last;
        last = p->t1[i];
    }
    release_events(p);
    p->have_times = 1;
    return LOOM_OK;
}

/* Queues every launch of the program; the in-order queue runs them, and
 * later reads and writes of the queue wait for them. */
loom_status loom_cl_submit(void *bp, const loom_run_args *args, void **fence)
{
    cl_prog *p = bp;
    cl_dev *d = p->d;
    if (p->tmp_generation != d->gemm_generation)
        LOOM_TRY(size_tmp(p));
    int profile = p->prog->profile;
    if (profile)
        release_events(p);
    p->have_times = 0;
    for (int i = 0; i < p->nl; i++) {
        const cl_launch *l = &p->l[i];
        const loom_exec_node *x = &p->prog->nodes[l->node];
        cl_event *ev = profile ? &p->ev[i] : NULL;
        cl_int e = CL_SUCCESS;
        switch (l->kind) {
        case LOOM_CLL_KERNEL:
            if (l->run_arg >= 0) {
                loom_status s = loom_cl_set_run_slot(d, x, l, args);
                if (s != LOOM_OK) {
                    clFinish(d->queue);
                    return s;
                }
            }
            e = clEnqueueNDRangeKernel(d->queue, l->kernel, l->dims, NULL, l->gws, l->lws, 0, NULL, ev);
            if (e != CL_SUCCESS)
                return launch_failed(p, l, e, "clEnqueueNDRangeKernel");
            break;
        case LOOM_CLL_GEMM: {
            if (profile && (e = clEnqueueMarkerWithWaitList(d->queue, 0, NULL, &p->mark[i])) != CL_SUCCESS)
                return launch_failed(p, l, e, "clEnqueueMarkerWithWaitList");
            loom_status s = loom_cl_gemm(d, &l->gemm, p->tmp, ev, x->node->name);
            if (s != LOOM_OK) {
                clFinish(d->queue);
                return s;
            }
            break;
        }
        case LOOM_CLL_GEMM_BATCHED: {
            if (profile && (e = clEnqueueMarkerWithWaitList(d->queue, 0, NULL, &p->mark[i])) != CL_SUCCESS)
                return launch_failed(p, l, e, "clEnqueueMarkerWithWaitList");
            loom_status s = loom_cl_gemm_batched(d, l, ev, x->node->name);
            if (s != LOOM_OK) {
                clFinish(d->queue);
                return s;
            }
            break;
        }
        case LOOM_CLL_COPY:
            e = clEnqueueCopyBuffer(d->queue, l->copy_src, l->copy_dst, l->copy_so, l->copy_do, l->copy_bytes, 0, NULL,
                                    ev);
            if (e != CL_SUCCESS)
                return launch_failed(p, l, e, "clEnqueueCopyBuffer");
            break;
        default:
            break;
        }
    }
    *fence = NULL;
    cl_int e = clFlush(d->queue);
    if (e != CL_SUCCESS)
        return loom_cl_fail(d, e, "clFlush", "submitting %s (%d launches)", p->prog->name, p->nl);
    return LOOM_OK;
}

loom_status loom_cl_wait(void *bp, void *fence)
{
    cl_prog *p = bp;
    cl_dev *d = p->d;
    (void)fence; /* the queue is in order: finishing it finishes the program */
    cl_int e = clFinish(d->queue);
    if (e != CL_SUCCESS)
        return loom_cl_fail(d, e, "clFinish", "running %s (%d launches)", p->prog->name, p->nl);
    return p->prog->profile ? collect_times(p) : LOOM_OK;
}

loom_status loom_cl_run(void *bp, const loom_run_args *args)
{
    void *fence;
    LOOM_TRY(loom_cl_submit(bp, args, &fence));
    return loom_cl_wait(bp, fence);
}

loom_status loom_cl_timestamps(void *bp, double *t0, double *t1, int n)
{
    cl_prog *p = bp;
    if (!p->prog->profile || !p->have_times || n != p->prog->nnodes)
        return LOOM_E_STATE;
    memcpy(t0, p->t0, (size_t)n * sizeof *t0);
    memcpy(t1, p->t1, (size_t)n * sizeof *t1);
    return LOOM_OK;
}

int loom_cl_dispatches(void *bp)
{
    const cl_prog *p = bp;
    int n = 0;
    for (int i = 0; i < p->nl; i++)
        n += p->l[i].kind != LOOM_CLL_NONE;
    return n;
}
