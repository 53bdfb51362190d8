/*
 * The OpenCL backend's internals, shared by its files:
 *   cl_backend.c   platforms, devices, limits, open/close, the ops table
 *   cl_errors.c    OpenCL and CLBlast codes -> names and loom_status
 *   cl_memory.c    blocks by lifetime, sub-allocation, transfers
 *   cl_programs.c  program builds and the on-disk binary cache
 *   cl_launch.c    one node -> kernel launches with their arguments
 *   cl_record.c    prepare / run / release / timestamps
 *   cl_gemm.c      CLBlast GEMM parameter sets: check, apply, store, load
 *   cl_ogemm.c     loom's own GEMM (gemm.cl, with epilogues): parameters,
 *                  launches, and which GEMMs go to it rather than CLBlast
 *   cl_gemm_db.c   the shipped database of GEMM parameters per device
 *                  (gemm_db.json), applied at the first use of a device
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

/* The shape classes GEMM parameters are chosen by (cl_ogemm.c): the
 * backward pass's C = A B^T (dH W^T) and C = A^T B (x^T dH), square-ish
 * products, and the rest (tall-skinny, small). */
typedef enum cl_gemm_class {
    LOOM_CLG_SQUARE = 0,
    LOOM_CLG_SKINNY = 1,
    LOOM_CLG_NT = 2,
    LOOM_CLG_TN = 3,
    LOOM_CLG_COUNT = 4
} cl_gemm_class;

/* The parameters of loom's own GEMM kernel (shaders/opencl/gemm.cl). */
typedef struct cl_own_params {
    int wx, wy;                /* work group */
    int tm, nv, vw;            /* per item: tm rows x nv vectors of vw columns */
    int kb;                    /* k staged per block */
} cl_own_params;

/* What a shape class runs: the own kernel's parameters, and from which
 * size (m n k) an unfused f32 GEMM goes to CLBlast instead (0: never). */
typedef struct cl_gemm_choice {
    cl_own_params own;
    uint64_t clblast_from;
} cl_gemm_choice;

/* Which GEMMs take which path: chosen by class (auto), or forced (tests,
 * LOOM_OPENCL_GEMM=own|clblast|clblast-default). */
typedef enum cl_gemm_route {
    LOOM_CLR_AUTO = 0,
    LOOM_CLR_OWN = 1,
    LOOM_CLR_CLBLAST = 2
} cl_gemm_route;

/* Programs built from embedded sources, lazily, once per (program,
 * variant): the variant is the build options that pick a dtype
 * ("-DLOOM_F16") or a cast's pair ("-DFROM_F16 -DTO_I32"). */
typedef enum cl_progid {
    LOOM_CLP_ELEMENTWISE = 0,
    LOOM_CLP_REDUCE = 1,
    LOOM_CLP_OPTIM = 2,
    LOOM_CLP_CAST = 3,
    LOOM_CLP_GEMM = 4,
    LOOM_CLP_CONV = 5,
    LOOM_CLP_SEQ = 6,          /* norms, take / gather, scatter-adds, rope */
    LOOM_CLP_ATTENTION = 7,    /* fused attention, per dtype and head size */
    LOOM_CLP_QUANT = 8,        /* int8 inference, per output dtype */
    LOOM_CLP_COUNT = 9
} cl_progid;

typedef struct cl_built {
    cl_progid which;
    char variant[160];
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
    /* loom's own GEMM per shape class, and what routes to it */
    cl_gemm_choice choice[LOOM_CLG_COUNT];
    cl_gemm_route route;
    int gemm_defaults;          /* CLBlast's own parameters only (no database, no stored set) */
    char db_entry[64];          /* the database entry that matched, "" if none */
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
loom_status loom_cl_buffer_read_async(void *bdev, void *buf, uint64_t off, void *dst, uint64_t bytes);
void loom_cl_blocks_release(cl_dev *d);
/* The largest block a request may get: min(max_alloc, 8 GiB), since kernels
 * index with 32-bit element offsets. */
uint64_t loom_cl_max_block(const cl_dev *d);

/* ---- programs ----------------------------------------------------------- */

/* The program `which` in `variant` (build options, "" for f32), built (or
 * loaded from the disk cache) on first use. */
loom_status loom_cl_program(cl_dev *d, cl_progid which, const char *variant, cl_program *out);
/* Several variants of one program at once: those neither built nor cached
 * are built in parallel threads (one per CPU); ok[i] says which are ready
 * (a failed build is logged, not an error). */
loom_status loom_cl_program_many(cl_dev *d, cl_progid which, const char *const *variants, int n, int *ok);
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
/* Launches per replay (cl_record.c). */
int loom_cl_dispatches(void *bprog);

/* ---- kernel arguments (cl_args.c), set once at prepare ------------------- */

typedef struct cl_args {
    cl_dev *d;
    cl_kernel k;
    cl_uint i;
    cl_int err;
    cl_uint bad;               /* index of the first argument that failed */
} cl_args;

void loom_cl_arg(cl_args *a, size_t n, const void *v);
void loom_cl_arg_u32(cl_args *a, cl_uint v);
void loom_cl_arg_f32(cl_args *a, cl_float v);
/* A tensor as two arguments: its block's memory and its offset there in
 * elements of its dtype. */
void loom_cl_arg_tensor(cl_args *a, const loom_exec_tensor *t);
cl_mem loom_cl_tensor_mem(const loom_exec_tensor *t);
cl_uint loom_cl_elem_off(const loom_exec_tensor *t);
/* LOOM_OK, or the first failed argument named with the kernel and op. */
loom_status loom_cl_args_done(const cl_args *a, const loom_exec_node *x, const char *kname);
/* v rounded up to a multiple of m (a global size of whole work groups). */
size_t loom_cl_round_up(size_t v, size_t m);
/* The build options of a program's dtype variant ("-DLOOM_F16"). */
const char *loom_cl_dtype_variant(loom_dtype dt);
/* Kernel `name` of program p's variant into l, and a fresh argument list. */
loom_status loom_cl_make_kernel(cl_dev *d, cl_progid p, const char *variant, const char *name,
                                const loom_exec_node *x, cl_launch *l, cl_args *a);

/* Convolutional networks' launches (cl_conv.c): one each, concat one per
 * input. */
loom_status loom_cl_plan_conv(cl_dev *d, const loom_exec_node *x, cl_launch *l);
/* int8 inference (cl_quant.c): one launch each, but the int8 GEMM past
 * LOOM_CL_QGEMM_F32_WORK multiply-adds: its operands widened to f32, one
 * exact f32 GEMM per 1024 of K, and the epilogue summing them as integers
 * (loom_cl_qmatmul_launches: 1 or 3 + chunks). */
loom_status loom_cl_plan_quant(cl_dev *d, const loom_exec_node *x, cl_launch *l);
int loom_cl_qmatmul_launches(const cl_dev *d, const loom_exec_node *x);
loom_status loom_cl_plan_qmatmul(cl_dev *d, const loom_exec_node *x, cl_launch *l, int *n);
/* A cast from one buffer range to another (a tensor, or a scratch's f32
 * view) as launch l. */
loom_status loom_cl_cast_launch(cl_dev *d, const loom_exec_node *x, cl_launch *l, loom_dtype from, cl_mem src,
                                cl_uint so, loom_dtype to, cl_mem dst, cl_uint dof, int64_t n);
/* A product's operands (x's in[0] and in[1]) widened to f32 in a scratch
 * buffer that l[0] owns, `extra` floats after them: launches l[0] and
 * l[1]; *s is the scratch, off[] the element offsets of the two operands
 * and of the extra (the half GEMMs, the batched ones, the int8 GEMM). */
loom_status loom_cl_widen_operands(cl_dev *d, const loom_exec_node *x, cl_launch *l, uint64_t extra, cl_mem *s,
                                   cl_uint off[3]);
loom_status loom_cl_plan_qconv(cl_dev *d, const loom_exec_node *x, cl_launch *l);
loom_status loom_cl_plan_pool(cl_dev *d, const loom_exec_node *x, cl_launch *l);
loom_status loom_cl_plan_norm(cl_dev *d, const loom_exec_node *x, cl_launch *l);
loom_status loom_cl_plan_norm_update(cl_dev *d, const loom_exec_node *x, cl_launch *l);
loom_status loom_cl_plan_mask_update(cl_dev *d, const loom_exec_node *x, cl_launch *l);
loom_status loom_cl_plan_window(cl_dev *d, const loom_exec_node *x, cl_launch *l);
loom_status loom_cl_plan_concat(cl_dev *d, const loom_exec_node *x, cl_launch *out, int *n);

/* ---- the sequence ops (cl_seq.c) ----------------------------------------- */

loom_status loom_cl_plan_lnorm(cl_dev *d, const loom_exec_node *x, cl_launch *l);
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
 * LOOM_E_INVALID for a set for another device or driver. choice (may be
 * NULL) receives the own kernel's classes where the text has "own". */
loom_status loom_cl_gemm_parse(cl_dev *d, const char *json, cl_gemm_params *p, int *use_default,
                              cl_gemm_choice *choice, int *has_own);
loom_status loom_cl_gemm_json(cl_dev *d, const cl_gemm_params *p, const cl_gemm_choice *choice, double gflops,
                              double baseline, int size, char **out);
/* A text file of at most 1 MiB, NUL-terminated, in *n bytes (free with
 * loom_free(ctx, text, *n)); NULL if it cannot be read. */
char *loom_cl_read_text(cl_dev *d, const char *path, size_t *n);
/* cache_dir/opencl/clblast-HASH.json for this device and driver. */
void loom_cl_gemm_store_path(const cl_dev *d, char *path, size_t n);
/* At open: applies the stored set if there is a valid one. Never fails
 * the open: a corrupt or foreign file is logged and ignored. */
void loom_cl_gemm_load_stored(cl_dev *d);
/* Runs a GEMM of m x n x k (ta, tb) through CLBlast (own NULL) or the own
 * kernel with own, and checks sampled entries against the host in double;
 * LOOM_E_DEVICE when they differ. */
loom_status loom_cl_gemm_verify(cl_dev *d, const cl_own_params *own, size_t m, size_t n, size_t k, int ta, int tb,
                                const char *what);
/* A set every device can run (small tiles, no local memory). */
void loom_cl_gemm_safe(const cl_dev *d, cl_gemm_params *p);

/* ---- loom's own GEMM (cl_ogemm.c) -------------------------------------- */

cl_gemm_class loom_cl_gemm_class_of(size_t m, size_t n, size_t k, int ta, int tb);
const char *loom_cl_gemm_class_name(cl_gemm_class c);
/* 1 if the node (a matmul) runs on the own kernel on this device. */
int loom_cl_gemm_own(const cl_dev *d, const loom_exec_node *x);
/* The same for an unfused f32 GEMM of those dims. */
int loom_cl_gemm_own_dims(const cl_dev *d, size_t m, size_t n, size_t k, int ta, int tb);
/* An unfused f32 GEMM over buffer ranges (element offsets, leading dims)
 * as launch l on the own kernel with its class's parameters; C's leading
 * dim is n. name says whose it is in messages. */
loom_status loom_cl_own_launch(cl_dev *d, cl_launch *l, size_t m, size_t n, size_t k, int ta, int tb, cl_mem a,
                               cl_uint ao, size_t lda, cl_mem b, cl_uint bo, size_t ldb, cl_mem c, cl_uint co,
                               const char *name);
/* The one launch of the node on the own kernel with the class's parameters. */
loom_status loom_cl_gemm_own_plan(cl_dev *d, const loom_exec_node *x, cl_launch *l);
/* LOOM_OK, or LOOM_E_INVALID naming the broken constraint ("what" names
 * where the set came from). */
loom_status loom_cl_own_check(cl_dev *d, const cl_own_params *p, const char *what);
/* Parameters that suit the device's kind when nothing better is known. */
void loom_cl_own_default(const cl_dev *d, cl_gemm_choice choice[LOOM_CLG_COUNT]);
/* The build options of a parameter set in dtype dt (for loom_cl_program). */
void loom_cl_own_variant(const cl_own_params *p, loom_dtype dt, char *buf, size_t n);
/* Builds the program of each set (in parallel threads, each build through
 * the binary cache); ok[i] says which built (a failure is not an error). */
loom_status loom_cl_own_build_all(cl_dev *d, const cl_own_params *p, int n, loom_dtype dt, int *ok);
/* Runs a raw m x n x k GEMM (ta, tb) on the own kernel with p over
 * buffers; ev may be NULL. */
loom_status loom_cl_own_run(cl_dev *d, const cl_own_params *p, size_t m, size_t n, size_t k, int ta, int tb, cl_mem a,
                            cl_mem b, cl_mem c, cl_event *ev);
/* JSON <-> choices ({"square": {"WX": .., "clblast_from": ..}, ...}). */
struct cJSON;
loom_status loom_cl_choice_parse(cl_dev *d, const struct cJSON *json, cl_gemm_choice out[LOOM_CLG_COUNT],
                                 const char *what);
/* Adds "own": {...} to obj. */
void loom_cl_choice_json(const cl_gemm_choice c[LOOM_CLG_COUNT], struct cJSON *obj);

/* ---- the shipped database (cl_gemm_db.c) -------------------------------- */

/* At open: the own kernel's choices from the entry that matches the device
 * (else defaults by device kind), and CLBlast's parameters from it where
 * it has them. Never fails the open: a broken entry is logged and
 * skipped. */
void loom_cl_gemm_db_apply(cl_dev *d);
/* The built-in database's text (NULL if the build has none). */
const char *loom_cl_gemm_db_text(void);
/* Finds the entry of text (the database) for the device: *found says
 * whether one matched; LOOM_E_FORMAT / LOOM_E_INVALID for a database that
 * is not valid JSON or whose matching entry is invalid (the message names
 * the entry and the field). */
loom_status loom_cl_gemm_db_lookup(cl_dev *d, const char *text, int *found, char *entry, size_t entry_n,
                                   cl_gemm_choice choice[LOOM_CLG_COUNT], cl_gemm_params *clblast);

/* The backend slots of tuning (src/core/tune.c dispatches to them). */
loom_status loom_cl_tune(void *bdev, const loom_tune_opts *opts, loom_tune_report *out);
loom_status loom_cl_set_tuning(void *bdev, const char *json);
loom_status loom_cl_get_tuning(void *bdev, char *buf, size_t n);

#endif
