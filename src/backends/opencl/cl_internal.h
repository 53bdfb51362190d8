/*
 * The OpenCL backend's internals, shared by its files:
 *   cl_backend.c   platforms, devices, limits, open/close, the ops table
 *   cl_errors.c    OpenCL and CLBlast codes -> names and loom_status
 *   cl_memory.c    blocks by lifetime, sub-allocation, transfers
 *   cl_programs.c  program builds and the on-disk binary cache
 *   cl_launch.c    one node -> kernel launches with their arguments
 *   cl_record.c    prepare / run / release / timestamps
 *   cl_gemm.c      CLBlast GEMM parameter sets: check, apply, store, load
 *   cl_tune.c      the bounded search over those sets
 */
#ifndef LOOM_CL_INTERNAL_H
#define LOOM_CL_INTERNAL_H

#define CL_TARGET_OPENCL_VERSION 300
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include "../../core/backend.h"

#include <CL/cl.h>

/* ---- errors ------------------------------------------------------------- */

/* "CL_OUT_OF_RESOURCES", "CLBlastInvalidLocalMemUsage", or "unknown". */
const char *loom_cl_errname(int code);
/* OOM for allocation failures, DEVICE for the rest. */
loom_status loom_cl_status(int code);

/* ---- devices ------------------------------------------------------------ */

typedef struct cl_limits {
    uint64_t max_alloc;        /* CL_DEVICE_MAX_MEM_ALLOC_SIZE */
    uint64_t global_mem;
    uint32_t align;            /* CL_DEVICE_MEM_BASE_ADDR_ALIGN, in bytes */
    uint64_t local_mem;
    size_t max_wg;
    int fp16, fp64;
    int exact_div_sqrt;        /* CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT */
    int version;               /* platform version x 10: 12, 20, 30 */
    char name[256];
    char vendor[128];
    char driver[128];
    char platform[256];        /* platform name and version */
} cl_limits;

typedef struct cl_block cl_block;
struct cl_gemm_params;

/* Programs built from embedded sources, lazily, once per (program,
 * variant): the variant is the build options that pick a dtype
 * ("-DLOOM_F16") or a cast's pair ("-DFROM_F16 -DTO_I32"). */
typedef enum cl_progid {
    LOOM_CLP_ELEMENTWISE = 0,
    LOOM_CLP_REDUCE = 1,
    LOOM_CLP_OPTIM = 2,
    LOOM_CLP_CAST = 3,
    LOOM_CLP_SEQ = 4,          /* norms, take / gather, scatter-adds, rope */
    LOOM_CLP_ATTENTION = 5,    /* fused attention, per dtype and head size */
    LOOM_CLP_COUNT = 6
} cl_progid;

typedef struct cl_built {
    cl_progid which;
    char variant[48];
    cl_program prog;
} cl_built;

typedef struct cl_dev {
    loom_ctx *ctx;
    int index;
    char label[320];           /* "opencl:0 (device name)" for messages */
    cl_platform_id platform;
    cl_device_id id;
    cl_context context;
    cl_command_queue queue;    /* in order, profiling always on */
    cl_limits lim;
    cl_block **blocks;
    int nblocks, capblocks;
    cl_built *progs;           /* built so far */
    int nprogs, capprogs;
    uint32_t ew_wg, red_wg;    /* work-group sizes, passed to the builds */
    /* GEMM parameters: generation counts applications, so programs can
     * re-size CLBlast's temporary buffer when the set changed. */
    struct cl_gemm_params *gemm;  /* NULL: CLBlast's own choice */
    uint64_t gemm_generation;
    char gemm_source[1100];     /* where the set in use came from */
} cl_dev;

/* Fills lim from the device (used by enumeration and by open). */
void loom_cl_read_limits(cl_platform_id p, cl_device_id id, cl_limits *lim);

/* Records "LABEL: CALL failed: NAME (code)" plus the context given, returns
 * the mapped status. */
loom_status loom_cl_fail(cl_dev *d, int code, const char *call, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* ---- memory ------------------------------------------------------------- */

/* A range of a block: what buffer_alloc hands to core. */
typedef struct cl_buf {
    cl_block *block;
    uint64_t offset;           /* bytes from the block's start, aligned */
    uint64_t bytes;            /* as asked */
    uint64_t span;             /* as reserved: bytes rounded to the alignment */
} cl_buf;

cl_mem loom_cl_block_mem(const cl_block *b);
loom_status loom_cl_buffer_alloc(void *bdev, uint64_t bytes, loom_lifetime life, void **out);
void loom_cl_buffer_free(void *bdev, void *buf);
loom_status loom_cl_buffer_write(void *bdev, void *buf, uint64_t off, const void *src, uint64_t bytes);
loom_status loom_cl_buffer_read(void *bdev, void *buf, uint64_t off, void *dst, uint64_t bytes);
void loom_cl_blocks_release(cl_dev *d);
/* The largest block a request may get: min(max_alloc, 8 GiB), since kernels
 * index with 32-bit element offsets. */
uint64_t loom_cl_max_block(const cl_dev *d);

/* ---- programs ----------------------------------------------------------- */

/* The program `which` in `variant` (build options, "" for f32), built (or
 * loaded from the disk cache) on first use. */
loom_status loom_cl_program(cl_dev *d, cl_progid which, const char *variant, cl_program *out);
/* 1 if the embedded sources of the program hold text (a kernel's body
 * line): the kernel tables ask it without a device. */
int loom_cl_source_has(cl_progid which, const char *text);
/* Builds sources (concatenated in order) with options, through the binary
 * cache under ctx->cache_dir/opencl. what names it in messages; a build
 * failure returns LOOM_E_DEVICE with the build log. *from_cache says
 * whether a cached binary served (may be NULL). */
loom_status loom_cl_build(cl_dev *d, const char *const *srcs, const size_t *lens, int n, const char *options,
                          const char *what, cl_program *out, int *from_cache);
/* The build options of loom's own programs on this device. */
void loom_cl_options(const cl_dev *d, char *buf, size_t n);
/* Where the binary for (sources, options) lives: cache_dir/opencl/HASH.bin. */
void loom_cl_cache_path(const cl_dev *d, const char *const *srcs, const size_t *lens, int n, const char *options,
                        char *path, size_t pn);
void loom_cl_programs_release(cl_dev *d);
/* mkdir -p of the directory part of path; 0 on failure. */
int loom_cl_make_dirs(const char *path);

/* ---- launches ----------------------------------------------------------- */

typedef enum cl_launch_kind {
    LOOM_CLL_NONE = 0,         /* nothing to do (a reshape in place) */
    LOOM_CLL_KERNEL,
    LOOM_CLL_GEMM,
    LOOM_CLL_COPY,
    LOOM_CLL_GEMM_BATCHED      /* CLBlast's batched GEMM (cl_seq.c) */
} cl_launch_kind;

typedef struct cl_gemm_call {
    int ta, tb;
    int half;                  /* f16 operands (CLBlastHgemm), else f32 */
    size_t m, n, k;
    cl_mem a, b, c;
    size_t ao, bo, co;         /* elements */
    size_t lda, ldb, ldc;
} cl_gemm_call;

typedef struct cl_launch {
    int node;                  /* index into prog->nodes */
    cl_launch_kind kind;
    cl_kernel kernel;
    cl_uint dims;               /* 1, or 2 for (column chunks, rows) kernels */
    size_t gws[2], lws[2];
    int run_arg;               /* the argument that takes the node's run
                                  slot, set before each run; -1 if none */
    cl_gemm_call gemm;
    cl_mem copy_src, copy_dst;
    size_t copy_so, copy_do, copy_bytes;
    void *scratch;             /* a buffer the launch owns (f32 views of a
                                  half GEMM's operands), freed at release */
    /* LOOM_CLL_GEMM_BATCHED: the batches, and either one stride per
     * operand (host NULL) or each batch's offsets of A, B, C and its
     * alpha and beta (host memory the launch owns, freed at release) */
    size_t nbatch;
    size_t stride[3];
    void *host;
    size_t host_bytes;
} cl_launch;

/* Appends the launches of node x; *n counts them, cap is the room in out.
 * Returns LOOM_E_INVALID when out is too small (never: the caller sizes it
 * by loom_cl_launch_count). */
loom_status loom_cl_plan_node(cl_dev *d, const loom_exec_node *x, int node, cl_launch *out, int cap, int *n);
int loom_cl_launch_count(const cl_dev *d, const loom_exec_node *x);
/* Sets the run slot argument of l (the node's slot of args). */
loom_status loom_cl_set_run_slot(cl_dev *d, const loom_exec_node *x, const cl_launch *l, const loom_run_args *args);
/* 1 if the backend can run this node on this device / has a kernel for op
 * in dtype at all (cl_launch.c). */
int loom_cl_supports(void *bdev, const loom_exec_node *x);
int loom_cl_has_kernel(loom_op op, loom_dtype dt);

/* ---- the sequence ops (cl_seq.c) ----------------------------------------- */

loom_status loom_cl_plan_norm(cl_dev *d, const loom_exec_node *x, cl_launch *l);
loom_status loom_cl_plan_index(cl_dev *d, const loom_exec_node *x, cl_launch *l);
loom_status loom_cl_plan_rope(cl_dev *d, const loom_exec_node *x, cl_launch *l);
loom_status loom_cl_plan_attention(cl_dev *d, const loom_exec_node *x, cl_launch *l);
/* Batched matmul: one CLBlast batched GEMM, or (half precision CLBlast
 * cannot run) the operands widened to f32 around it: 1 or 4 launches. */
int loom_cl_bmm_launches(const cl_dev *d, const loom_exec_node *x);
loom_status loom_cl_plan_bmm(cl_dev *d, const loom_exec_node *x, cl_launch *l, int *n);
/* Enqueues a LOOM_CLL_GEMM_BATCHED launch. */
loom_status loom_cl_gemm_batched(cl_dev *d, const cl_launch *l, cl_event *ev, const char *what);

/* ---- GEMM through CLBlast ----------------------------------------------- */

#define LOOM_CL_XGEMM_NPARAMS 16
#define LOOM_CL_DIRECT_NPARAMS 10

typedef struct cl_gemm_params {
    int has_xgemm, has_direct, has_routine;
    size_t xgemm[LOOM_CL_XGEMM_NPARAMS];   /* in the order of loom_cl_xgemm_names */
    size_t direct[LOOM_CL_DIRECT_NPARAMS]; /* loom_cl_direct_names */
    size_t min_indirect;                   /* GemmRoutine XGEMM_MIN_INDIRECT_SIZE */
} cl_gemm_params;

extern const char *const loom_cl_xgemm_names[LOOM_CL_XGEMM_NPARAMS];
extern const char *const loom_cl_direct_names[LOOM_CL_DIRECT_NPARAMS];

/* Enqueues C = op(A) op(B) (row major), tmp sized by loom_cl_gemm_tmp_size. */
loom_status loom_cl_gemm(cl_dev *d, const cl_gemm_call *g, cl_mem tmp, cl_event *ev, const char *what);
/* Bytes of CLBlast's temporary buffer for g under the parameters in use;
 * the first call for a parameter set builds CLBlast's program. */
loom_status loom_cl_gemm_tmp_size(cl_dev *d, const cl_gemm_call *g, size_t *bytes, const char *what);

/* LOOM_OK, or LOOM_E_INVALID naming the first broken constraint. */
loom_status loom_cl_gemm_check(cl_dev *d, const cl_gemm_params *p);
/* Overrides CLBlast's parameters for this device (process-wide in CLBlast). */
loom_status loom_cl_gemm_apply(cl_dev *d, const cl_gemm_params *p);
/* JSON text <-> parameter set. parse: LOOM_E_FORMAT for malformed text,
 * LOOM_E_INVALID for a set for another device or driver. */
loom_status loom_cl_gemm_parse(cl_dev *d, const char *json, cl_gemm_params *p, int *use_default);
loom_status loom_cl_gemm_json(cl_dev *d, const cl_gemm_params *p, double gflops, double baseline, int size,
                              char **out);
/* cache_dir/opencl/clblast-HASH.json for this device and driver. */
void loom_cl_gemm_store_path(const cl_dev *d, char *path, size_t n);
/* At open: applies the stored set if there is a valid one. Never fails
 * the open: a corrupt or foreign file is logged and ignored. */
void loom_cl_gemm_load_stored(cl_dev *d);
/* Runs a GEMM of m x n x k (ta, tb) and checks sampled entries against the
 * host in double; LOOM_E_DEVICE when they differ. */
loom_status loom_cl_gemm_verify(cl_dev *d, size_t m, size_t n, size_t k, int ta, int tb, const char *what);
/* A set every device can run (small tiles, no local memory). */
void loom_cl_gemm_safe(const cl_dev *d, cl_gemm_params *p);

/* The backend slots of tuning (src/core/tune.c dispatches to them). */
loom_status loom_cl_tune(void *bdev, const loom_tune_opts *opts, loom_tune_report *out);
loom_status loom_cl_set_tuning(void *bdev, const char *json);
loom_status loom_cl_get_tuning(void *bdev, char *buf, size_t n);

#endif
