/* The CPU's int8 products through oneDNN's matmul (s8 x s8 -> s32), used
 * by cpu_quant.c where the library was built with it (meson option
 * onednn): C[r, c] = sum_k A[r, k] B[c, k], both operands row-major with
 * k contiguous. oneDNN's primitives are costly to make, so the last few
 * shapes keep theirs (a small cache under a mutex). */
#define _POSIX_C_SOURCE 200809L
#include "cpu_dnnl.h"
#include "cpu_kernels.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define DNNL_CACHE 16

typedef struct dnnl_entry {
    int64_t rows, cols, k;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c;
    uint64_t used;
} dnnl_entry;

static pthread_mutex_t dnnl_lock = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t dnnl_eng;
static dnnl_stream_t dnnl_str;
static int dnnl_broken;        /* the engine could not be made: our own kernel */
static int dnnl_vnni;          /* the s8 products are exact (loom_cpu_dnnl_int8_exact) */
static dnnl_entry dnnl_cache[DNNL_CACHE];
static uint64_t dnnl_clock;

loom_cpu_dnnl_api loom_cpu_dnnl;

/* 1 when libdnnl was opened and every call of LOOM_DNNL_FUNCS found. The
 * handle stays open for the process: primitives made through it live in
 * the caches. */
static int dnnl_open(void)
{
#ifdef LOOM_DNNL_LINKED
#define LOOM_DNNL_TAKE(n) loom_cpu_dnnl.n = dnnl_##n;
    LOOM_DNNL_FUNCS(LOOM_DNNL_TAKE)
#undef LOOM_DNNL_TAKE
    return 1;
#else
    /* The policy is set only for the load and taken back after, so that
     * the process's environment is as it was; a runtime already loaded
     * (the application's own OpenMP) keeps the policy it started with. */
    int passive = getenv("OMP_WAIT_POLICY") == NULL && dlopen("libgomp.so.1", RTLD_LAZY | RTLD_NOLOAD) == NULL;
    if (passive)
        setenv("OMP_WAIT_POLICY", "passive", 0);
    /* the v2 API (the *_desc_init calls) is libdnnl.so.2's */
    void *h = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (passive)
        unsetenv("OMP_WAIT_POLICY");
    if (!h)
        return 0;
    int ok = 1;
#define LOOM_DNNL_LOAD(n)                                                                                    \
    {                                                                                                        \
        void *p = dlsym(h, "dnnl_" #n);                                                                      \
        ok &= p != NULL;                                                                                     \
        memcpy(&loom_cpu_dnnl.n, &p, sizeof p);                                                              \
    }
    LOOM_DNNL_FUNCS(LOOM_DNNL_LOAD)
#undef LOOM_DNNL_LOAD
    return ok;
#endif
}

static void entry_free(dnnl_entry *e)
{
    if (e->prim)
        loom_cpu_dnnl.primitive_destroy(e->prim);
    if (e->a)
        loom_cpu_dnnl.memory_destroy(e->a);
    if (e->b)
        loom_cpu_dnnl.memory_destroy(e->b);
    if (e->c)
        loom_cpu_dnnl.memory_destroy(e->c);
    memset(e, 0, sizeof *e);
}

static int entry_make(dnnl_entry *e, int64_t rows, int64_t cols, int64_t k)
{
    dnnl_memory_desc_t am, bm, cm;
    dnnl_dims_t ad = {rows, k}, bd = {k, cols}, cd = {rows, cols};
    dnnl_matmul_desc_t md;
    dnnl_primitive_desc_t pd = NULL;
    int ok = loom_cpu_dnnl.memory_desc_init_by_tag(&am, 2, ad, dnnl_s8, dnnl_ab) == dnnl_success &&
             /* B [cols, k] row-major is the [k, cols] operand in "ba" order */
             loom_cpu_dnnl.memory_desc_init_by_tag(&bm, 2, bd, dnnl_s8, dnnl_ba) == dnnl_success &&
             loom_cpu_dnnl.memory_desc_init_by_tag(&cm, 2, cd, dnnl_s32, dnnl_ab) == dnnl_success &&
             loom_cpu_dnnl.matmul_desc_init(&md, &am, &bm, NULL, &cm) == dnnl_success &&
             loom_cpu_dnnl.primitive_desc_create(&pd, &md, NULL, dnnl_eng, NULL) == dnnl_success &&
             loom_cpu_dnnl.primitive_create(&e->prim, pd) == dnnl_success &&
             loom_cpu_dnnl.memory_create(&e->a, &am, dnnl_eng, DNNL_MEMORY_NONE) == dnnl_success &&
             loom_cpu_dnnl.memory_create(&e->b, &bm, dnnl_eng, DNNL_MEMORY_NONE) == dnnl_success &&
             loom_cpu_dnnl.memory_create(&e->c, &cm, dnnl_eng, DNNL_MEMORY_NONE) == dnnl_success;
    if (pd)
        loom_cpu_dnnl.primitive_desc_destroy(pd);
    if (!ok) {
        entry_free(e);
        return 0;
    }
    e->rows = rows, e->cols = cols, e->k = k;
    return 1;
}

int loom_cpu_dnnl_enter(dnnl_engine_t *eng, dnnl_stream_t *str)
{
    pthread_mutex_lock(&dnnl_lock);
    if (!dnnl_eng && !dnnl_broken) {
        dnnl_broken = !dnnl_open() || loom_cpu_dnnl.engine_create(&dnnl_eng, dnnl_cpu, 0) != dnnl_success ||
                      loom_cpu_dnnl.stream_create(&dnnl_str, dnnl_eng, dnnl_stream_default_flags) != dnnl_success;
        /* the ISA values are masks of their features: 0x40 is
         * avx512_core_vnni's bit (amx's and bf16's include it), 0x400
         * avx2_vnni's */
        unsigned isa = dnnl_broken ? 0u : (unsigned)loom_cpu_dnnl.get_effective_cpu_isa();
        dnnl_vnni = (isa & 0x40u) != 0 || (isa & 0x400u) != 0;
    }
    if (dnnl_broken) {
        pthread_mutex_unlock(&dnnl_lock);
        return 0;
    }
    *eng = dnnl_eng;
    *str = dnnl_str;
    return 1;
}

void loom_cpu_dnnl_leave(void)
{
    pthread_mutex_unlock(&dnnl_lock);
}

int loom_cpu_dnnl_ready(void)
{
    dnnl_engine_t eng;
    dnnl_stream_t str;
    if (!loom_cpu_dnnl_enter(&eng, &str))
        return 0;
    loom_cpu_dnnl_leave();
    return 1;
}

int loom_cpu_dnnl_int8_exact(void)
{
    return loom_cpu_dnnl_ready() && dnnl_vnni;
}

int loom_cpu_dnnl_qgemm(const int8_t *a, const int8_t *b, int64_t rows, int64_t cols, int64_t k, int32_t *c)
{
    dnnl_engine_t eng;
    dnnl_stream_t str;
    if (!loom_cpu_dnnl_int8_exact() || !loom_cpu_dnnl_enter(&eng, &str))
        return 0;
    int ok = 0;
    {
        dnnl_entry *e = NULL, *old = &dnnl_cache[0];
        for (int i = 0; i < DNNL_CACHE && !e; i++) {
            dnnl_entry *x = &dnnl_cache[i];
            if (x->prim && x->rows == rows && x->cols == cols && x->k == k)
                e = x;
            else if (x->used < old->used)
                old = x;
        }
        if (!e) {
            entry_free(old);
            e = entry_make(old, rows, cols, k) ? old : NULL;
        }
        if (e) {
            e->used = ++dnnl_clock;
            dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, e->a}, {DNNL_ARG_WEIGHTS, e->b}, {DNNL_ARG_DST, e->c}};
            ok = loom_cpu_dnnl.memory_set_data_handle(e->a, (void *)(uintptr_t)a) == dnnl_success &&
                 loom_cpu_dnnl.memory_set_data_handle(e->b, (void *)(uintptr_t)b) == dnnl_success &&
                 loom_cpu_dnnl.memory_set_data_handle(e->c, c) == dnnl_success &&
                 loom_cpu_dnnl.primitive_execute(e->prim, dnnl_str, 3, args) == dnnl_success &&
                 loom_cpu_dnnl.stream_wait(dnnl_str) == dnnl_success;
        }
    }
    loom_cpu_dnnl_leave();
    return ok;
}
