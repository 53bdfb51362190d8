/* The CPU's int8 products through oneDNN's matmul (s8 x s8 -> s32), used
 * by cpu_quant.c where the library was built with it (meson option
 * onednn): C[r, c] = sum_k A[r, k] B[c, k], both operands row-major with
 * k contiguous. oneDNN's primitives are costly to make, so the last few
 * shapes keep theirs (a small cache under a mutex). */
#include "cpu_dnnl.h"
#include "cpu_kernels.h"

#include <pthread.h>
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
static dnnl_entry dnnl_cache[DNNL_CACHE];
static uint64_t dnnl_clock;

static void entry_free(dnnl_entry *e)
{
    if (e->prim)
        dnnl_primitive_destroy(e->prim);
    if (e->a)
        dnnl_memory_destroy(e->a);
    if (e->b)
        dnnl_memory_destroy(e->b);
    if (e->c)
        dnnl_memory_destroy(e->c);
    memset(e, 0, sizeof *e);
}

static int entry_make(dnnl_entry *e, int64_t rows, int64_t cols, int64_t k)
{
    dnnl_memory_desc_t am, bm, cm;
    dnnl_dims_t ad = {rows, k}, bd = {k, cols}, cd = {rows, cols};
    dnnl_matmul_desc_t md;
    dnnl_primitive_desc_t pd = NULL;
    int ok = dnnl_memory_desc_init_by_tag(&am, 2, ad, dnnl_s8, dnnl_ab) == dnnl_success &&
             /* B [cols, k] row-major is the [k, cols] operand in "ba" order */
             dnnl_memory_desc_init_by_tag(&bm, 2, bd, dnnl_s8, dnnl_ba) == dnnl_success &&
             dnnl_memory_desc_init_by_tag(&cm, 2, cd, dnnl_s32, dnnl_ab) == dnnl_success &&
             dnnl_matmul_desc_init(&md, &am, &bm, NULL, &cm) == dnnl_success &&
             dnnl_primitive_desc_create(&pd, &md, NULL, dnnl_eng, NULL) == dnnl_success &&
             dnnl_primitive_create(&e->prim, pd) == dnnl_success &&
             dnnl_memory_create(&e->a, &am, dnnl_eng, DNNL_MEMORY_NONE) == dnnl_success &&
             dnnl_memory_create(&e->b, &bm, dnnl_eng, DNNL_MEMORY_NONE) == dnnl_success &&
             dnnl_memory_create(&e->c, &cm, dnnl_eng, DNNL_MEMORY_NONE) == dnnl_success;
    if (pd)
        dnnl_primitive_desc_destroy(pd);
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
        dnnl_broken = dnnl_engine_create(&dnnl_eng, dnnl_cpu, 0) != dnnl_success ||
                      dnnl_stream_create(&dnnl_str, dnnl_eng, dnnl_stream_default_flags) != dnnl_success;
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

int loom_cpu_dnnl_qgemm(const int8_t *a, const int8_t *b, int64_t rows, int64_t cols, int64_t k, int32_t *c)
{
    dnnl_engine_t eng;
    dnnl_stream_t str;
    if (!loom_cpu_dnnl_enter(&eng, &str))
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
            ok = dnnl_memory_set_data_handle(e->a, (void *)(uintptr_t)a) == dnnl_success &&
                 dnnl_memory_set_data_handle(e->b, (void *)(uintptr_t)b) == dnnl_success &&
                 dnnl_memory_set_data_handle(e->c, c) == dnnl_success &&
                 dnnl_primitive_execute(e->prim, dnnl_str, 3, args) == dnnl_success &&
                 dnnl_stream_wait(dnnl_str) == dnnl_success;
        }
    }
    loom_cpu_dnnl_leave();
    return ok;
}
