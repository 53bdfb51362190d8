/* OpenCL programs: built once per (sources, options, device) and kept on
 * disk as binaries under cache_dir/opencl, keyed by a hash of the sources,
 * the options, the device's name, its driver version and the platform's,
 * so a second start builds nothing. The key is stored in the file and
 * compared in full, and the binary carries an FNV-1a checksum: a colliding,
 * foreign or corrupt file is rebuilt over, never handed to the driver.
 *
 * File: "LOOMCLB2" | u32 key bytes | key | u64 binary bytes | u64 FNV-1a of
 * the binary | binary (integers in host order: the file is per machine). */
#include "cl_internal.h"
#include "cl_kernels.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "LOOMCLB2"
#define FNV_BASIS 0xcbf29ce484222325ULL

/* The files of each program, after the shared head (push.h, codes.h,
 * common.cl). The element-wise program's kernels are made from the body
 * lines of ew_unary.cl and ew_binary.cl. */
static const char *const prog_files[LOOM_CLP_COUNT][3] = {
    [LOOM_CLP_ELEMENTWISE] = {"elementwise.cl", "ew_unary.cl", "ew_binary.cl"},
    [LOOM_CLP_REDUCE] = {"reduce.cl"},
    [LOOM_CLP_OPTIM] = {"optim.cl"},
    [LOOM_CLP_CAST] = {"cast.cl"},
    /* the epilogues are made from the unary ops' body lines */
    [LOOM_CLP_GEMM] = {"epilogue.cl", "ew_unary.cl", "gemm.cl"},
    [LOOM_CLP_CONV] = {"conv.cl"},
    [LOOM_CLP_SEQ] = {"seq.cl"},
    [LOOM_CLP_ATTENTION] = {"attention.cl"},
    [LOOM_CLP_QUANT] = {"quant.cl"},
};
static const char *const head_files[3] = {"push.h", "codes.h", "common.cl"};

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

void loom_cl_options(const cl_dev *d, char *buf, size_t n)
{
    /* Correctly rounded division and sqrt where the device offers them:
     * the CPU reference divides in IEEE arithmetic. */
    snprintf(buf, n, "-cl-std=CL1.2 -DLOOM_EW_WG=%u -DLOOM_RED_WG=%u%s", d->ew_wg, d->red_wg,
             d->lim.exact_div_sqrt ? " -cl-fp32-correctly-rounded-divide-sqrt" : "");
}

static void make_key(const cl_dev *d, const char *const *srcs, const size_t *lens, int n, const char *options, char *key,
                     size_t kn)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        h = fnv1a(h, srcs[i], lens[i]);
        total += lens[i];
    }
    snprintf(key, kn, "loom opencl binary 1\nplatform: %s\ndevice: %s\ndriver: %s\noptions: %s\nsource: %016llx %zu\n",
             d->lim.platform, d->lim.name, d->lim.driver, options, (unsigned long long)h, total);
}

void loom_cl_cache_path(const cl_dev *d, const char *const *srcs, const size_t *lens, int n, const char *options,
                        char *path, size_t pn)
{
    char key[1400];
    make_key(d, srcs, lens, n, options, key, sizeof key);
    uint64_t h = fnv1a(0xcbf29ce484222325ULL, key, strlen(key));
    snprintf(path, pn, "%s/opencl/%016llx.bin", d->ctx->cache_dir, (unsigned long long)h);
}

/* mkdir -p of the directory part of path. */
int loom_cl_make_dirs(const char *path)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    char *slash = strrchr(buf, '/');
    if (!slash)
        return 1;
    *slash = 0;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return 0;
        *p = '/';
    }
    return mkdir(buf, 0755) == 0 || errno == EEXIST;
}

static unsigned char *read_all(cl_dev *d, const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = NULL;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        len = ftell(f);
    if (len > 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = loom_malloc(d->ctx, (size_t)len);
        if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
            loom_free(d->ctx, buf, (size_t)len);
            buf = NULL;
        }
    }
    fclose(f);
    if (buf)
        *n = (size_t)len;
    return buf;
}

/* The cached binary for key, built for the device; NULL if absent or bad. */
static cl_program load_cached(cl_dev *d, const char *path, const char *key, const char *options)
{
    size_t n = 0;
    unsigned char *data = read_all(d, path, &n);
    if (!data)
        return NULL;
    size_t klen = strlen(key), mlen = strlen(MAGIC), head = mlen + 4 + klen + 16;
    cl_program prog = NULL;
    uint64_t blen = 0, sum = 0;
    if (n < head || memcmp(data, MAGIC, mlen) != 0) {
        loom_logf(d->ctx, LOOM_LOG_WARN, "%s: ignoring %s: not a loom program binary", d->label, path);
        goto out;
    }
    uint32_t stored_klen;
    memcpy(&stored_klen, data + mlen, 4);
    if (stored_klen != klen || memcmp(data + mlen + 4, key, klen) != 0) {
        loom_logf(d->ctx, LOOM_LOG_INFO, "%s: ignoring %s: built for another source, device or driver", d->label,
                  path);
        goto out;
    }
    memcpy(&blen, data + mlen + 4 + klen, 8);
    memcpy(&sum, data + mlen + 4 + klen + 8, 8);
    if (blen != n - head || blen == 0) {
        loom_logf(d->ctx, LOOM_LOG_WARN, "%s: ignoring %s: truncated (%llu binary bytes announced, %zu present)",
                  d->label, path, (unsigned long long)blen, n - head);
        goto out;
    }
    const unsigned char *bin = data + head;
    if (fnv1a(FNV_BASIS, bin, (size_t)blen) != sum) {
        loom_logf(d->ctx, LOOM_LOG_WARN, "%s: ignoring %s: checksum mismatch (corrupt binary)", d->label, path);
        goto out;
    }
    size_t bl = (size_t)blen;
    cl_int bstatus = CL_SUCCESS, e = CL_SUCCESS;
    prog = clCreateProgramWithBinary(d->context, 1, &d->id, &bl, &bin, &bstatus, &e);
    if (e == CL_SUCCESS && bstatus == CL_SUCCESS)
        e = clBuildProgram(prog, 1, &d->id, options, NULL, NULL);
    if (e != CL_SUCCESS || bstatus != CL_SUCCESS) {
        loom_logf(d->ctx, LOOM_LOG_WARN, "%s: ignoring %s: the driver refused the binary (%s)", d->label, path,
                  loom_cl_errname(e != CL_SUCCESS ? e : bstatus));
        if (prog)
            clReleaseProgram(prog);
        prog = NULL;
    }
out:
    loom_free(d->ctx, data, n);
    return prog;
}

static void store_binary(cl_dev *d, cl_program prog, const char *path, const char *key)
{
    size_t blen = 0;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof blen, &blen, NULL) != CL_SUCCESS || blen == 0)
        return;
    size_t klen = strlen(key), mlen = strlen(MAGIC), total = mlen + 4 + klen + 16 + blen;
    unsigned char *buf = loom_malloc(d->ctx, total);
    if (!buf)
        return;
    unsigned char *bin = buf + mlen + 4 + klen + 16;
    uint32_t k32 = (uint32_t)klen;
    uint64_t b64 = blen;
    memcpy(buf, MAGIC, mlen);
    memcpy(buf + mlen, &k32, 4);
    memcpy(buf + mlen + 4, key, klen);
    memcpy(buf + mlen + 4 + klen, &b64, 8);
    cl_int e = clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL);
    if (e == CL_SUCCESS) {
        uint64_t sum = fnv1a(FNV_BASIS, bin, blen);
        memcpy(buf + mlen + 4 + klen + 8, &sum, 8);
    }
    if (e == CL_SUCCESS && loom_cl_make_dirs(path)) {
        if (loom_write_file_atomic(d->ctx, path, buf, total) != LOOM_OK) {
            loom_logf(d->ctx, LOOM_LOG_WARN, "%s: cannot cache a program binary: %s", d->label,
                      loom_last_error(d->ctx));
            loom_clear_error(d->ctx);
        }
    } else {
        loom_logf(d->ctx, LOOM_LOG_WARN, "%s: cannot cache a program binary at %s (%s)", d->label, path,
                  e != CL_SUCCESS ? loom_cl_errname(e) : "cannot create the directory");
    }
    loom_free(d->ctx, buf, total);
}

static loom_status build_failure(cl_dev *d, cl_program prog, cl_int e, const char *what)
{
    size_t n = 0;
    char *log = NULL;
    if (clGetProgramBuildInfo(prog, d->id, CL_PROGRAM_BUILD_LOG, 0, NULL, &n) == CL_SUCCESS && n > 1) {
        log = loom_malloc(d->ctx, n + 1);
        if (log && clGetProgramBuildInfo(prog, d->id, CL_PROGRAM_BUILD_LOG, n, log, NULL) == CL_SUCCESS)
            log[n] = 0;
        else if (log)
            log[0] = 0;
    }
    const char *text = log && log[0] ? log : "(the driver gave no build log)";
    /* The whole log goes to the log sink; the error message keeps what fits. */
    loom_logf(d->ctx, LOOM_LOG_ERROR, "%s: build log of %s:\n%s", d->label, what, text);
    loom_status s = loom_cl_fail(d, e, "clBuildProgram", "building %s; build log:\n%.700s", what, text);
    loom_free(d->ctx, log, n + 1);
    return s;
}

loom_status loom_cl_build(cl_dev *d, const char *const *srcs, const size_t *lens, int n, const char *options,
                          const char *what, cl_program *out, int *from_cache)
{
    char key[1400], path[1100];
    make_key(d, srcs, lens, n, options, key, sizeof key);
    loom_cl_cache_path(d, srcs, lens, n, options, path, sizeof path);
    if (from_cache)
        *from_cache = 0;
    cl_program prog = load_cached(d, path, key, options);
    if (prog) {
        if (from_cache)
            *from_cache = 1;
        loom_logf(d->ctx, LOOM_LOG_DEBUG, "%s: %s from the binary cache %s", d->label, what, path);
        *out = prog;
        return LOOM_OK;
    }
    cl_int e = CL_SUCCESS;
    prog = clCreateProgramWithSource(d->context, (cl_uint)n, (const char **)srcs, lens, &e);
    if (e != CL_SUCCESS)
        return loom_cl_fail(d, e, "clCreateProgramWithSource", "%s", what);
    double t0 = loom_now_ns();
    e = clBuildProgram(prog, 1, &d->id, options, NULL, NULL);
    if (e != CL_SUCCESS) {
        loom_status s = build_failure(d, prog, e, what);
        clReleaseProgram(prog);
        return s;
    }
    loom_logf(d->ctx, LOOM_LOG_INFO, "%s: built %s in %.2f s", d->label, what, (loom_now_ns() - t0) * 1e-9);
    store_binary(d, prog, path, key);
    *out = prog;
    return LOOM_OK;
}

static const loom_cl_source *find_source(const char *name)
{
    for (int i = 0; i < loom_cl_source_count; i++)
        if (!strcmp(loom_cl_sources[i].name, name))
            return &loom_cl_sources[i];
    return NULL;
}

int loom_cl_source_has(cl_progid which, const char *text)
{
    for (int i = 0; i < 3 && prog_files[which][i]; i++) {
        const loom_cl_source *s = find_source(prog_files[which][i]);
        if (s && strstr(s->text, text))
            return 1;
    }
    return 0;
}

/* The sources of program `which` and its build options in variant. */
typedef struct prog_src {
    const char *srcs[6];
    size_t lens[6];
    int n;
    char options[512], what[200];
} prog_src;

static void compose(const cl_dev *d, cl_progid which, const char *variant, prog_src *ps)
{
    ps->n = 0;
    for (int i = 0; i < 3; i++) {
        const loom_cl_source *s = find_source(head_files[i]);
        assert(s && "the shared head is embedded by shaders/opencl/meson.build");
        ps->srcs[ps->n] = s->text;
        ps->lens[ps->n++] = s->len;
    }
    for (int i = 0; i < 3 && prog_files[which][i]; i++) {
        const loom_cl_source *s = find_source(prog_files[which][i]);
        assert(s && "every program file is embedded by shaders/opencl/meson.build");
        ps->srcs[ps->n] = s->text;
        ps->lens[ps->n++] = s->len;
    }
    loom_cl_options(d, ps->options, sizeof ps->options);
    size_t used = strlen(ps->options);
    snprintf(ps->options + used, sizeof ps->options - used, "%s%s", *variant ? " " : "", variant);
    snprintf(ps->what, sizeof ps->what, "%s%s%s", prog_files[which][0], *variant ? " " : "", variant);
}

static cl_built *find_built(cl_dev *d, cl_progid which, const char *variant)
{
    for (int i = 0; i < d->nprogs; i++)
        if (d->progs[i].which == which && !strcmp(d->progs[i].variant, variant))
            return &d->progs[i];
    return NULL;
}

static loom_status room_for_one(cl_dev *d)
{
    if (d->nprogs < d->capprogs)
        return LOOM_OK;
    int ncap = d->capprogs ? 2 * d->capprogs : 8;
    cl_built *np = loom_realloc(d->ctx, d->progs, (size_t)d->capprogs * sizeof *np, (size_t)ncap * sizeof *np);
    if (!np)
        return loom_fail(d->ctx, LOOM_E_OOM, "%s: out of memory for programs", d->label);
    d->progs = np;
    d->capprogs = ncap;
    return LOOM_OK;
}

static loom_status keep(cl_dev *d, cl_progid which, const char *variant, cl_program prog)
{
    loom_status s = room_for_one(d);
    if (s != LOOM_OK) {
        clReleaseProgram(prog);
        return s;
    }
    cl_built *b = &d->progs[d->nprogs++];
    memset(b, 0, sizeof *b);
    snprintf(b->variant, sizeof b->variant, "%s", variant);
    b->which = which;
    b->prog = prog;
    return LOOM_OK;
}

loom_status loom_cl_program(cl_dev *d, cl_progid which, const char *variant, cl_program *out)
{
    const cl_built *have = find_built(d, which, variant);
    if (have) {
        *out = have->prog;
        return LOOM_OK;
    }
    if (strlen(variant) >= sizeof have->variant)
        return loom_fail(d->ctx, LOOM_E_INVALID, "%s: internal: build options \"%s\" too long", d->label, variant);
    prog_src ps;
    compose(d, which, variant, &ps);
    cl_program prog;
    LOOM_TRY(loom_cl_build(d, ps.srcs, ps.lens, ps.n, ps.options, ps.what, &prog, NULL));
    LOOM_TRY(keep(d, which, variant, prog));
    *out = prog;
    return LOOM_OK;
}

/* ---- several builds at once ---------------------------------------------------- */

typedef struct build_job {
    cl_dev *d;                 /* read only in the threads */
    prog_src ps;
    cl_program prog;
    cl_int err;
    double seconds;
} build_job;

typedef struct build_pool {
    build_job *jobs;
    int n;
    int next;                  /* the next job to take, under lock */
    pthread_mutex_t lock;
} build_pool;

/* Only OpenCL calls in the threads: the context's log and error state are
 * touched by the calling thread alone. */
static void *build_worker(void *arg)
{
    build_pool *pool = arg;
    for (;;) {
        pthread_mutex_lock(&pool->lock);
        int i = pool->next < pool->n ? pool->next++ : -1;
        pthread_mutex_unlock(&pool->lock);
        if (i < 0)
            return NULL;
        build_job *j = &pool->jobs[i];
        double t0 = loom_now_ns();
        j->prog = clCreateProgramWithSource(j->d->context, (cl_uint)j->ps.n, (const char **)j->ps.srcs, j->ps.lens,
                                            &j->err);
        if (j->err == CL_SUCCESS)
            j->err = clBuildProgram(j->prog, 1, &j->d->id, j->ps.options, NULL, NULL);
        j->seconds = (loom_now_ns() - t0) * 1e-9;
    }
}

loom_status loom_cl_program_many(cl_dev *d, cl_progid which, const char *const *variants, int n, int *ok)
{
    build_job *jobs = loom_calloc(d->ctx, (size_t)(n > 0 ? n : 1), sizeof *jobs);
    if (!jobs)
        return loom_fail(d->ctx, LOOM_E_OOM, "%s: out of memory for %d builds", d->label, n);
    int nj = 0;
    int *job_of = loom_calloc(d->ctx, (size_t)(n > 0 ? n : 1), sizeof *job_of);
    if (!job_of) {
        loom_free(d->ctx, jobs, (size_t)(n > 0 ? n : 1) * sizeof *jobs);
        return loom_fail(d->ctx, LOOM_E_OOM, "%s: out of memory for %d builds", d->label, n);
    }
    /* what is built or cached already, then the rest */
    for (int i = 0; i < n; i++) {
        job_of[i] = -1;
        ok[i] = find_built(d, which, variants[i]) != NULL;
        if (ok[i] || strlen(variants[i]) >= sizeof d->progs[0].variant)
            continue;
        int dup = -1;
        for (int k = 0; k < i; k++)
            if (job_of[k] >= 0 && !strcmp(variants[k], variants[i]))
                dup = job_of[k];
        if (dup >= 0) {
            job_of[i] = dup;
            continue;
        }
        build_job *j = &jobs[nj];
        j->d = d;
        compose(d, which, variants[i], &j->ps);
        char key[1400], path[1100];
        make_key(d, j->ps.srcs, j->ps.lens, j->ps.n, j->ps.options, key, sizeof key);
        loom_cl_cache_path(d, j->ps.srcs, j->ps.lens, j->ps.n, j->ps.options, path, sizeof path);
        cl_program prog = load_cached(d, path, key, j->ps.options);
        if (prog) {
            ok[i] = keep(d, which, variants[i], prog) == LOOM_OK;
            if (!ok[i])
                loom_clear_error(d->ctx);
            continue;
        }
        job_of[i] = nj++;
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int nt = nj < (cpus > 1 ? (int)cpus : 1) ? nj : (cpus > 1 ? (int)cpus : 1);
    nt = nt > 16 ? 16 : nt;
    build_pool pool = {jobs, nj, 0, PTHREAD_MUTEX_INITIALIZER};
    pthread_t th[16];
    int started = 0;
    for (int t = 1; t < nt; t++)
        if (pthread_create(&th[started], NULL, build_worker, &pool) == 0)
            started++;
    build_worker(&pool); /* the calling thread builds too */
    for (int t = 0; t < started; t++)
        pthread_join(th[t], NULL);
    pthread_mutex_destroy(&pool.lock);
    loom_status s = LOOM_OK;
    for (int i = 0; i < n; i++) {
        if (job_of[i] < 0)
            continue;
        build_job *j = &jobs[job_of[i]];
        if (!j->prog)
            continue;
        if (j->err != CL_SUCCESS) {
            /* logged, not an error: the caller skips what did not build */
            loom_logf(d->ctx, LOOM_LOG_INFO, "%s: %s did not build (%s)", d->label, j->ps.what,
                      loom_cl_errname(j->err));
            clReleaseProgram(j->prog);
            j->prog = NULL;
            continue;
        }
        char key[1400], path[1100];
        make_key(d, j->ps.srcs, j->ps.lens, j->ps.n, j->ps.options, key, sizeof key);
        loom_cl_cache_path(d, j->ps.srcs, j->ps.lens, j->ps.n, j->ps.options, path, sizeof path);
        loom_logf(d->ctx, LOOM_LOG_INFO, "%s: built %s in %.2f s (%d at once)", d->label, j->ps.what, j->seconds, nt);
        store_binary(d, j->prog, path, key);
        if ((s = keep(d, which, variants[i], j->prog)) != LOOM_OK)
            break;
        j->prog = NULL;
        ok[i] = 1;
        for (int k = i + 1; k < n; k++)
            if (job_of[k] == job_of[i])
                ok[k] = 1, job_of[k] = -1;
    }
    for (int i = 0; i < nj; i++)
        if (jobs[i].prog)
            clReleaseProgram(jobs[i].prog);
    loom_free(d->ctx, jobs, (size_t)(n > 0 ? n : 1) * sizeof *jobs);
    loom_free(d->ctx, job_of, (size_t)(n > 0 ? n : 1) * sizeof *job_of);
    return s;
}

void loom_cl_programs_release(cl_dev *d)
{
    for (int i = 0; i < d->nprogs; i++)
        clReleaseProgram(d->progs[i].prog);
    loom_free(d->ctx, d->progs, (size_t)d->capprogs * sizeof *d->progs);
    d->progs = NULL;
    d->nprogs = d->capprogs = 0;
}
