/* A parallel for of the CPU backend's own loops (im2col, pooling,
 * normalization): one worker per further core, started on first use and
 * kept for the process. Workers wait on a condition variable, never
 * spinning, so that they take nothing from OpenBLAS's threads between
 * GEMMs (OpenMP's default spin-wait made the convolutions 20x slower on a
 * busy 2-core machine). A loop that finds the workers busy (another thread
 * of the process is in one) runs on its own thread. */
#define _POSIX_C_SOURCE 200809L
#include "cpu_kernels.h"

#include <pthread.h>
#include <unistd.h>

#define MAX_WORKERS 63

static struct {
    pthread_once_t once;
    pthread_mutex_t busy;      /* held by the thread whose loop runs */
    pthread_mutex_t lock;
    pthread_cond_t go, done;
    int nworkers;
    uint64_t generation;       /* a new loop */
    int pending;               /* workers still in the loop */
    cpu_range_fn fn;
    void *arg;
    int64_t n;
} pool = {PTHREAD_ONCE_INIT, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
          PTHREAD_COND_INITIALIZER, 0, 0, 0, NULL, NULL, 0};

/* Chunk k of [0, n) in `parts` parts. */
static void chunk(int64_t n, int parts, int k, int64_t *b, int64_t *e)
{
    *b = n * k / parts;
    *e = n * (k + 1) / parts;
}

static void *worker(void *p)
{
    int id = (int)(intptr_t)p; /* 1 .. nworkers; the caller is part 0 */
    uint64_t seen = 0;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (pool.generation == seen)
            pthread_cond_wait(&pool.go, &pool.lock);
        seen = pool.generation;
        cpu_range_fn fn = pool.fn;
        void *arg = pool.arg;
        int64_t n = pool.n, b, e;
        pthread_mutex_unlock(&pool.lock);
        chunk(n, pool.nworkers + 1, id, &b, &e);
        if (b < e)
            fn(arg, b, e);
        pthread_mutex_lock(&pool.lock);
        if (--pool.pending == 0)
            pthread_cond_signal(&pool.done);
    }
    return NULL;
}

static void start(void)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int want = ncpu > 1 ? (int)(ncpu - 1 < MAX_WORKERS ? ncpu - 1 : MAX_WORKERS) : 0;
    for (int i = 0; i < want; i++) {
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        int ok = pthread_create(&t, &at, worker, (void *)(intptr_t)(i + 1)) == 0;
        pthread_attr_destroy(&at);
        if (!ok)
            break;
        /* counted as it starts: a worker that failed to start takes no part */
        pthread_mutex_lock(&pool.lock);
        pool.nworkers++;
        pthread_mutex_unlock(&pool.lock);
    }
}

void cpu_parallel_for(int64_t n, int64_t work, cpu_range_fn fn, void *arg)
{
    if (n <= 0)
        return;
    /* below this many elements of work, waking workers costs more */
    if (work < 65536 || n == 1) {
        fn(arg, 0, n);
        return;
    }
    pthread_once(&pool.once, start);
    if (pool.nworkers == 0 || pthread_mutex_trylock(&pool.busy) != 0) {
        fn(arg, 0, n);
        return;
    }
    pthread_mutex_lock(&pool.lock);
    int parts = pool.nworkers + 1;
    pool.fn = fn;
    pool.arg = arg;
    pool.n = n;
    pool.pending = pool.nworkers;
    pool.generation++;
    pthread_cond_broadcast(&pool.go);
    pthread_mutex_unlock(&pool.lock);
    int64_t b, e;
    chunk(n, parts, 0, &b, &e);
    if (b < e)
        fn(arg, b, e);
    pthread_mutex_lock(&pool.lock);
    while (pool.pending > 0)
        pthread_cond_wait(&pool.done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.busy);
}
