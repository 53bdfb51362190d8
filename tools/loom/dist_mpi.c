/* loom train --distributed mpi over Open MPI: the gradient buckets' sums
 * are MPI_Iallreduce requests the library starts while it downloads the
 * next bucket; each wait polls its request against a watchdog, so that a
 * rank that died makes the others stop with an error naming it instead
 * of hanging. MPI_COMM_WORLD returns errors (MPI_ERRORS_RETURN) rather
 * than aborting, and a signal from the launcher (mpirun ends the job when
 * a rank dies) is turned into that error too. */
#define _POSIX_C_SOURCE 200809L
#include "dist.h"

#include <mpi.h>

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct peer {
    int pid;
    char host[64];
} peer;

struct cli_dist {
    loom_ctx *ctx;
    loom_collective coll;
    double timeout_s;
    peer *peers;
    char host[64];
    MPI_Request reqs[64];      /* in flight, by slot */
    int used[64];
    int finalize;
};

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    got_signal = sig;
}

int cli_dist_available(void)
{
    return 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A process of this machine that is gone (or a zombie its parent has not
 * reaped yet). */
static int pid_dead(int pid)
{
    if (kill(pid, 0) == -1 && errno == ESRCH)
        return 1;
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *close = strrchr(buf, ')');
    return close && close[1] == ' ' && (close[2] == 'Z' || close[2] == 'X');
}

/* "rank 1 (pid 4242 on host) has died" for each local rank that is gone;
 * the number found. */
static int dead_ranks(const cli_dist *d, char *out, size_t n)
{
    int found = 0;
    size_t len = 0;
    out[0] = 0;
    for (int r = 0; r < d->coll.size; r++) {
        if (r == d->coll.rank || strcmp(d->peers[r].host, d->host) || !pid_dead(d->peers[r].pid))
            continue;
        if (len < n)
            len += (size_t)snprintf(out + len, n - len, "%srank %d (pid %d on %s)", found ? ", " : "", r,
                                    d->peers[r].pid, d->peers[r].host);
        found++;
    }
    return found;
}

static loom_status mpi_failed(cli_dist *d, int rc, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    char dead[512];
    if (dead_ranks(d, dead, sizeof dead))
        return loom_fail(d->ctx, LOOM_E_DEVICE, "rank %d: %s failed (%s): %s died", d->coll.rank, what, msg, dead);
    return loom_fail(d->ctx, LOOM_E_DEVICE, "rank %d: %s failed: %s", d->coll.rank, what, msg);
}

/* Polls one request until it completes, a local peer dies, the launcher
 * signals this process, or timeout_s pass. */
static loom_status poll_request(cli_dist *d, MPI_Request *req, const char *what)
{
    double t0 = now_s(), next_check = t0 + 0.25;
    struct timespec nap = {0, 20000};
    for (;;) {
        int done = 0;
        int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS)
            return mpi_failed(d, rc, what);
        if (done)
            return LOOM_OK;
        double t = now_s();
        if (got_signal || t >= next_check) {
            next_check = t + 0.25;
            char dead[512];
            if (dead_ranks(d, dead, sizeof dead))
                return loom_fail(d->ctx, LOOM_E_DEVICE, "rank %d: %s died; stopping (%s waited %.1f s for it)",
                                 d->coll.rank, dead, what, t - t0);
            if (got_signal)
                return loom_fail(d->ctx, LOOM_E_DEVICE, "rank %d: the launcher ended the job (signal %d) during %s: "
                                 "another rank failed or was killed (mpirun names it)", d->coll.rank,
                                 (int)got_signal, what);
        }
        if (t - t0 > d->timeout_s)
            return loom_fail(d->ctx, LOOM_E_DEVICE, "rank %d: no answer from the other ranks for %.0f s during %s: "
                             "a rank on another machine died or hangs (every rank on %s is alive)",
                             d->coll.rank, d->timeout_s, what, d->host);
        /* spin while the sum is likely near (shared memory needs both
         * sides polling), then let the other ranks have the cores */
        if (t - t0 > 0.002)
            nanosleep(&nap, NULL);
        else
            sched_yield();
    }
}

static int free_slot(cli_dist *d)
{
    for (int i = 0; i < 64; i++)
        if (!d->used[i])
            return i;
    return -1;
}

static loom_status sum_start(void *user, float *data, int64_t n, void **req)
{
    cli_dist *d = user;
    int slot = free_slot(d);
    if (slot < 0 || n > INT_MAX)
        return loom_fail(d->ctx, LOOM_E_INVALID, "rank %d: %s", d->coll.rank,
                         slot < 0 ? "more than 64 gradient buckets in flight" : "a gradient bucket over 2^31 values");
    int rc = MPI_Iallreduce(MPI_IN_PLACE, data, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &d->reqs[slot]);
    if (rc != MPI_SUCCESS)
        return mpi_failed(d, rc, "MPI_Iallreduce of a gradient bucket");
    d->used[slot] = 1;
    *req = &d->reqs[slot];
    return LOOM_OK;
}

static loom_status wait_req(void *user, void *req)
{
    cli_dist *d = user;
    MPI_Request *r = req;
    loom_status s = poll_request(d, r, "the allreduce of a gradient bucket");
    d->used[r - d->reqs] = 0;
    return s;
}

static loom_status broadcast(void *user, void *data, size_t bytes)
{
    cli_dist *d = user;
    for (size_t off = 0; off < bytes;) {
        int chunk = bytes - off > (size_t)INT_MAX ? INT_MAX : (int)(bytes - off);
        MPI_Request r;
        int rc = MPI_Ibcast((char *)data + off, chunk, MPI_BYTE, 0, MPI_COMM_WORLD, &r);
        if (rc != MPI_SUCCESS)
            return mpi_failed(d, rc, "MPI_Ibcast from rank 0");
        LOOM_TRY(poll_request(d, &r, "a broadcast from rank 0"));
        off += (size_t)chunk;
    }
    return LOOM_OK;
}

static loom_status sum_doubles(void *user, double *data, int n)
{
    cli_dist *d = user;
    MPI_Request r;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, data, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &r);
    if (rc != MPI_SUCCESS)
        return mpi_failed(d, rc, "MPI_Iallreduce of statistics");
    return poll_request(d, &r, "the sum of the ranks' statistics");
}

int cli_dist_start(loom_ctx *ctx, double timeout_s, cli_dist **out)
{
    *out = NULL;
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited && MPI_Init(NULL, NULL) != MPI_SUCCESS) {
        fprintf(stderr, "loom train: --distributed mpi: MPI_Init failed\n");
        return 1;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    cli_dist *d = calloc(1, sizeof *d);
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (d)
        d->peers = calloc((size_t)size, sizeof *d->peers);
    if (!d || !d->peers) {
        fprintf(stderr, "loom train: rank %d: out of memory\n", rank);
        if (d)
            free(d);
        MPI_Abort(MPI_COMM_WORLD, 1);
        return 1;
    }
    d->ctx = ctx;
    d->timeout_s = timeout_s;
    d->finalize = !inited;
    gethostname(d->host, sizeof d->host - 1);
    peer me;
    memset(&me, 0, sizeof me);
    me.pid = (int)getpid();
    memcpy(me.host, d->host, sizeof me.host);
    /* who is where: the watchdog looks for dead peers on this machine */
    if (MPI_Allgather(&me, (int)sizeof me, MPI_BYTE, d->peers, (int)sizeof me, MPI_BYTE, MPI_COMM_WORLD) !=
        MPI_SUCCESS) {
        fprintf(stderr, "loom train: rank %d: MPI_Allgather of the ranks' hosts failed\n", rank);
        free(d->peers);
        free(d);
        MPI_Abort(MPI_COMM_WORLD, 1);
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    d->coll.rank = rank;
    d->coll.size = size;
    d->coll.user = d;
    d->coll.sum_start = sum_start;
    d->coll.wait = wait_req;
    d->coll.broadcast = broadcast;
    d->coll.sum_doubles = sum_doubles;
    *out = d;
    return 0;
}

const loom_collective *cli_dist_collective(cli_dist *d)
{
    return d ? &d->coll : NULL;
}

void cli_dist_stop(cli_dist *d, int failed)
{
    if (!d)
        return;
    if (failed) {
        fflush(stdout);
        fflush(stderr);
        /* the others may wait in a collective for this rank: end them all */
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    if (d->finalize)
        MPI_Finalize();
    free(d->peers);
    free(d);
}
