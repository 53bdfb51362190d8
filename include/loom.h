/*
 * loom — a cross-vendor GPU compute backend (Vulkan, OpenCL, CPU).
 *
 * The whole public C API. Every object is an opaque handle; every fallible
 * call returns a loom_status and leaves a message in loom_last_error(ctx)
 * that names the op, the shapes and the device.
 *
 * Op constructors never fail loudly: a bad shape marks the graph with a
 * sticky error and returns LOOM_NONE; loom_compile() reports it.
 */
#ifndef LOOM_H
#define LOOM_H

#include <stddef.h>
#include <stdint.h>

#include "loom_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Everything declared in this header is the library's public API and the
 * only thing libloom.so exports (it is built with -fvisibility=hidden). */
#if defined(__GNUC__) && !defined(LOOM_STATIC_ONLY)
#pragma GCC visibility push(default)
#endif

#define LOOM_VERSION_MAJOR 0
#define LOOM_VERSION_MINOR 1
#define LOOM_VERSION_PATCH 0
#define LOOM_MAX_DIMS 4

/* ---- status ------------------------------------------------------------ */

/* Grouped by origin: the caller's input, resources, the device, files. */
typedef enum loom_status {
    LOOM_OK = 0,
    /* the caller's input */
    LOOM_E_INVALID = 1,     /* bad argument, NULL handle, unknown name/spec */
    LOOM_E_SHAPE = 2,       /* shapes that do not fit the op */
    LOOM_E_DTYPE = 3,       /* wrong element type */
    LOOM_E_RANGE = 4,       /* a value out of range (a label >= classes) */
    LOOM_E_STATE = 5,       /* wrong order of calls, use after destroy */
    /* resources */
    LOOM_E_OOM = 10,        /* host or device memory exhausted */
    /* the device */
    LOOM_E_DEVICE = 20,     /* driver error, device lost */
    LOOM_E_UNSUPPORTED = 21,/* the device or backend cannot do this */
    /* files */
    LOOM_E_IO = 30,         /* missing file, read/write failure */
    LOOM_E_FORMAT = 31      /* malformed, truncated or foreign file */
} loom_status;

const char *loom_status_str(loom_status s);

/* Returns the status of call from the enclosing function if it is not
 * LOOM_OK. */
#define LOOM_TRY(call)                        \
    do {                                      \
        loom_status loom_try_s_ = (call);     \
        if (loom_try_s_ != LOOM_OK)           \
            return loom_try_s_;               \
    } while (0)

/* ---- context ------------------------------------------------------------ */

typedef struct loom_ctx loom_ctx;
typedef struct loom_device loom_device;
typedef struct loom_graph loom_graph;
typedef struct loom_state loom_state;
typedef struct loom_program loom_program;

typedef enum loom_log_level {
    LOOM_LOG_ERROR = 0,
    LOOM_LOG_WARN = 1,
    LOOM_LOG_INFO = 2,
    LOOM_LOG_DEBUG = 3
} loom_log_level;

typedef void (*loom_log_fn)(void *user, loom_log_level level, const char *msg);

/* One allocation function for every host allocation the library makes, in
 * the manner of lua_Alloc: nsize == 0 frees ptr and returns NULL; otherwise
 * behaves as realloc (ptr may be NULL). Returning NULL for nsize > 0 is an
 * allocation failure, which every call turns into LOOM_E_OOM. */
typedef void *(*loom_alloc_fn)(void *user, void *ptr, size_t osize, size_t nsize);

typedef struct loom_ctx_opts {
    loom_alloc_fn alloc;      /* NULL: the C library's allocator */
    void *alloc_user;
    loom_log_fn log;          /* NULL: messages at or above log_level to stderr */
    void *log_user;
    int log_level;            /* -1: LOOM_LOG env var, default WARN */
    const char *cache_dir;    /* NULL: LOOM_CACHE_DIR, else $XDG_CACHE_HOME/loom */
    int validation;           /* -1: LOOM_VK_VALIDATION env var; 0 off; 1 on */
    int backends;             /* bit mask of 1 << loom_backend_kind; 0 = all */
} loom_ctx_opts;

/* Fills opts with defaults (everything from the environment). */
void loom_ctx_opts_default(loom_ctx_opts *opts);
/* opts may be NULL. On failure *out is NULL; a message goes to the log. */
loom_status loom_ctx_create(const loom_ctx_opts *opts, loom_ctx **out);
void loom_ctx_destroy(loom_ctx *ctx);
/* The message of the last failed call on this context ("" if none). */
const char *loom_last_error(const loom_ctx *ctx);
void loom_set_log(loom_ctx *ctx, loom_log_fn fn, void *user, loom_log_level level);
/* Number of error-level messages logged by device drivers' validation
 * layers since the context was created (0 when validation is off). */
uint64_t loom_validation_errors(const loom_ctx *ctx);
const char *loom_version_string(void);

/* ---- for code built on loom (src/nn, tools, applications) --------------- */

/* Host memory through the context's allocator (loom_ctx_opts.alloc): the
 * library's own layers allocate nothing else. Sizes are passed back on
 * free, as lua_Alloc does. NULL on failure (no message is recorded). */
void *loom_malloc(loom_ctx *ctx, size_t n);
/* NULL also when count * size overflows. */
void *loom_calloc(loom_ctx *ctx, size_t count, size_t size);
void *loom_realloc(loom_ctx *ctx, void *p, size_t osize, size_t nsize);
void loom_free(loom_ctx *ctx, void *p, size_t n);
char *loom_strdup(loom_ctx *ctx, const char *s);
void loom_strfree(loom_ctx *ctx, char *s);

/* Records a message as the context's last error (loom_last_error) and
 * returns s, so a caller writes `return loom_fail(ctx, LOOM_E_FORMAT, ...)`. */
loom_status loom_fail(loom_ctx *ctx, loom_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* A message to the context's log sink, if level is at or below its level. */
void loom_logf(loom_ctx *ctx, loom_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* "[2,3]" into buf; returns buf. */
const char *loom_shape_str(char *buf, size_t n, int ndim, const int64_t *shape);
/* Writes bytes to path through a temporary name in the same folder and a
 * rename, so a reader never sees a half-written file. */
loom_status loom_write_file_atomic(loom_ctx *ctx, const char *path, const void *data, size_t bytes);

/* ---- devices ------------------------------------------------------------ */

typedef enum loom_backend_kind {
    LOOM_BACKEND_CPU = 0,
    LOOM_BACKEND_VULKAN = 1,
    LOOM_BACKEND_OPENCL = 2,
    LOOM_BACKEND_COUNT = 3
} loom_backend_kind;

typedef enum loom_device_type {
    LOOM_DEVICE_DISCRETE = 0,
    LOOM_DEVICE_INTEGRATED = 1,
    LOOM_DEVICE_VIRTUAL = 2,
    LOOM_DEVICE_CPU = 3,      /* a CPU: our own backend or lavapipe / PoCL */
    LOOM_DEVICE_OTHER = 4
} loom_device_type;

typedef struct loom_device_info {
    char spec[32];            /* "cpu", "vulkan:0", "opencl:1" */
    char name[256];
    char vendor[64];
    char driver[128];         /* driver name and version */
    char api_version[32];
    char uuid[40];            /* hex, stable across runs; "" if unknown */
    loom_backend_kind backend;
    loom_device_type type;
    uint32_t vendor_id;
    int can_run;              /* 1 if the backend can compile and run graphs */
    uint64_t memory_bytes;    /* device-local memory (host RAM for CPUs) */
    uint64_t max_binding_bytes; /* largest single tensor binding */
    uint64_t max_alloc_bytes; /* largest single allocation */
    uint32_t alignment;       /* offset alignment of a binding, bytes */
    uint32_t subgroup_size;
    uint32_t max_workgroup_size;
    uint32_t compute_units;
    uint64_t shared_memory_bytes;
    int fp16;
    int int8;
    int int8_dot;             /* the int8 GEMM uses integer dot-product
                                 instructions (Vulkan: VK_KHR_shader_integer_dot_product) */
} loom_device_info;

int loom_device_count(loom_ctx *ctx);
loom_status loom_device_get_info(loom_ctx *ctx, int index, loom_device_info *info);
/* spec: "auto", "cpu", "vulkan:N", "opencl:N", "vulkan:UUID" or NULL
 * (= "auto", which LOOM_DEVICE overrides). Order of preference for auto: a
 * discrete GPU, an integrated GPU, the CPU backend, then CPU implementations
 * of Vulkan or OpenCL. */
loom_status loom_device_open(loom_ctx *ctx, const char *spec, loom_device **out);
void loom_device_close(loom_device *dev);
const loom_device_info *loom_device_get(const loom_device *dev);

/* ---- tensors and graphs ------------------------------------------------- */

typedef enum loom_dtype {
    LOOM_F32 = 0,
    LOOM_I32 = 1,
    LOOM_F16 = 2,   /* IEEE half: stored in 16 bits, computed in f32 */
    LOOM_BF16 = 3,  /* bfloat16: stored in 16 bits, computed in f32 */
    LOOM_I8 = 4,    /* int8, quantized values (the int8 ops below) */
    LOOM_DTYPE_COUNT = 5
} loom_dtype;

/* Bytes per element (per block for block-quantized dtypes); 0 if unknown. */
size_t loom_dtype_size(loom_dtype dt);
const char *loom_dtype_name(loom_dtype dt);
/* 1 for f32, f16, bf16. */
int loom_dtype_is_float(loom_dtype dt);
/* count values from one float dtype to another (f32, f16, bf16), rounding
 * to nearest even as every backend does; LOOM_E_DTYPE for other dtypes.
 * For feeding half-precision inputs and reading half-precision outputs. */
loom_status loom_convert(loom_dtype to, void *dst, loom_dtype from, const void *src, size_t count);

/* A tensor is a node of one graph. id 0 is LOOM_NONE (a failed op). */
typedef struct loom_tensor { int32_t id; } loom_tensor;
#define LOOM_NONE ((loom_tensor){0})

loom_status loom_graph_create(loom_ctx *ctx, loom_graph **out);
void loom_graph_destroy(loom_graph *g);
/* The graph's sticky error: LOOM_OK, or the first op error (the message is
 * in loom_last_error of the graph's context and kept for loom_compile). */
loom_status loom_graph_status(const loom_graph *g);
const char *loom_graph_error(const loom_graph *g);
/* Names the nodes that follow: an op given no name is called
 * "<scope>/<op>" ("dense1/matmul"; "<scope>/<op>_<n>" when the scope
 * already has one), which profiles and traces show, until the next call.
 * NULL or "" ends the scope. Names given explicitly (inputs, params,
 * outputs) are kept as they are. LOOM_E_INVALID for a scope of more than
 * LOOM_SCOPE_MAX - 1 bytes. */
#define LOOM_SCOPE_MAX 64
loom_status loom_graph_scope(loom_graph *g, const char *scope);

/* Leaves. Shapes are row-major, 0 to 4 dims (0 dims = a scalar). */
loom_tensor loom_input(loom_graph *g, const char *name, loom_dtype dt,
                       int ndim, const int64_t *shape);
/* A persistent tensor that lives in the loom_state under its name.
 * trainable: loom_backward produces a gradient for it. */
loom_tensor loom_param(loom_graph *g, const char *name, loom_dtype dt,
                       int ndim, const int64_t *shape, int trainable);
/* Data is copied. */
loom_tensor loom_constant(loom_graph *g, const char *name, loom_dtype dt,
                          int ndim, const int64_t *shape, const void *data);
loom_tensor loom_scalar(loom_graph *g, float value);

/* Linear algebra: [M,K] x [K,N] with optional transposes of either side;
 * rank 3 and 4 operands are batched (the sequence models section). */
loom_tensor loom_matmul(loom_graph *g, loom_tensor a, loom_tensor b,
                        int transpose_a, int transpose_b);

/* Element-wise ops: one constructor per line of include/loom_ops.h,
 * loom_relu(g, x), loom_scale(g, x, alpha), loom_clamp(g, x, lo, hi),
 * loom_add(g, a, b) (numpy broadcasting), loom_lt(g, a, b) (a mask), ...
 * Every input of one op has the same dtype; the result has it too. */
#define LOOM_DECLARE_UNARY_(name, ID, flops, grad) loom_tensor loom_##name(loom_graph *g, loom_tensor x);
#define LOOM_DECLARE_UNARY1_(name, ID, flops, grad, p) loom_tensor loom_##name(loom_graph *g, loom_tensor x, float p);
#define LOOM_DECLARE_UNARY2_(name, ID, flops, grad, p, q)                                              \
    loom_tensor loom_##name(loom_graph *g, loom_tensor x, float p, float q);
#define LOOM_DECLARE_BINARY_(name, ID, flops, grad) loom_tensor loom_##name(loom_graph *g, loom_tensor a, loom_tensor b);
LOOM_UNARY_OPS(LOOM_DECLARE_UNARY_)
LOOM_UNARY1_OPS(LOOM_DECLARE_UNARY1_)
LOOM_UNARY2_OPS(LOOM_DECLARE_UNARY2_)
LOOM_BINARY_OPS(LOOM_DECLARE_BINARY_)

/* cond != 0 ? a : b, broadcasting all three (one dtype); cond is a mask as
 * the comparisons make. The gradient goes to a where cond holds, to b
 * elsewhere, never to cond. */
loom_tensor loom_where(loom_graph *g, loom_tensor cond, loom_tensor a, loom_tensor b);
/* The same values in another dtype (f32, f16, bf16; i32 to and from
 * floats rounds to nearest). The gradient casts back. */
loom_tensor loom_cast(loom_graph *g, loom_tensor x, loom_dtype dtype);

/* Over the last axis. */
loom_tensor loom_softmax(loom_graph *g, loom_tensor x);
loom_tensor loom_log_softmax(loom_graph *g, loom_tensor x);
/* Over any axis (negative counts from the end). */
loom_tensor loom_softmax_axis(loom_graph *g, loom_tensor x, int axis);
loom_tensor loom_log_softmax_axis(loom_graph *g, loom_tensor x, int axis);

/* Reductions over one axis (negative counts from the end). */
loom_tensor loom_sum(loom_graph *g, loom_tensor x, int axis, int keepdim);
loom_tensor loom_mean(loom_graph *g, loom_tensor x, int axis, int keepdim);
/* The largest / smallest value along axis; the gradient goes to the first
 * arg-max / arg-min of each slice. */
loom_tensor loom_max(loom_graph *g, loom_tensor x, int axis, int keepdim);
loom_tensor loom_min(loom_graph *g, loom_tensor x, int axis, int keepdim);
/* Sum of every element: a scalar. */
loom_tensor loom_sum_all(loom_graph *g, loom_tensor x);
/* Index of the largest / smallest value along axis (first on ties), i32,
 * axis removed. */
loom_tensor loom_argmax(loom_graph *g, loom_tensor x, int axis);
loom_tensor loom_argmin(loom_graph *g, loom_tensor x, int axis);

loom_tensor loom_reshape(loom_graph *g, loom_tensor x, int ndim, const int64_t *shape);
loom_tensor loom_transpose(loom_graph *g, loom_tensor x, const int *perm);

/* Training: losses reduce by the mean over the batch (first axis). */
/* logits [N,C] f32, labels [N] i32 in [0,C): a scalar. */
loom_tensor loom_sparse_cross_entropy(loom_graph *g, loom_tensor logits, loom_tensor labels);
/* logits [N,C], targets [N,C] (probabilities): a scalar. */
loom_tensor loom_cross_entropy(loom_graph *g, loom_tensor logits, loom_tensor targets);
/* Mean over every element of (a - b)^2: a scalar. */
loom_tensor loom_mse(loom_graph *g, loom_tensor a, loom_tensor b);
/* Inverted dropout: zero with probability rate, scale the rest by
 * 1/(1-rate). The mask is a counter-based hash of (seed, node, step,
 * element), the same on every backend. */
loom_tensor loom_dropout(loom_graph *g, loom_tensor x, float rate, uint32_t seed);

/* Marks t as an output readable by name after a run; outputs are never
 * overwritten by the planner. */
loom_status loom_output(loom_graph *g, loom_tensor t, const char *name);

/* Shape queries (0 on LOOM_NONE). */
int loom_tensor_ndim(const loom_graph *g, loom_tensor t);
int64_t loom_tensor_dim(const loom_graph *g, loom_tensor t, int axis);
loom_dtype loom_tensor_dtype(const loom_graph *g, loom_tensor t);
const char *loom_tensor_name(const loom_graph *g, loom_tensor t);
int loom_graph_node_count(const loom_graph *g);
/* The context the graph was created in (NULL for NULL). */
loom_ctx *loom_graph_ctx(const loom_graph *g);
loom_tensor loom_graph_find(const loom_graph *g, const char *name);

/* ---- convolutional networks (NCHW; src/core/ops_conv.c) ----------------- */

/* The geometry of a convolution (or of a pooling window). Zeros mean the
 * defaults: stride 1, dilation 1, no padding, one group. pad is explicit
 * (top, left, bottom, right) unless same = 1: then the output has
 * ceil(H / stride) rows (ceil(W / stride) columns), the padding split as
 * evenly as it goes, the odd row or column at the bottom or right (as
 * TensorFlow's "same"). */
typedef struct loom_conv2d_opts {
    int stride[2];
    int dilation[2];
    int pad[4];
    int same;
    int groups;               /* C and OC divisible by it; C: depthwise */
} loom_conv2d_opts;

loom_conv2d_opts loom_conv2d_opts_default(void);
/* The padding "same" gives one dim of n inputs under a window of k,
 * stride and dilation: ceil(n / stride) outputs, the total split with the
 * odd one after (lo before, hi after), as conv2d and pooling resolve it. */
void loom_same_padding(int64_t n, int64_t k, int64_t stride, int64_t dilation, int64_t *lo, int64_t *hi);
/* x [N, C, H, W] * w [OC, C / groups, KH, KW] (+ bias [OC], or LOOM_NONE)
 * -> [N, OC, OH, OW], OH = (H + pad_top + pad_bottom - dilation (KH - 1) -
 * 1) / stride + 1. o may be NULL (the defaults). */
loom_tensor loom_conv2d(loom_graph *g, loom_tensor x, loom_tensor w, loom_tensor bias, const loom_conv2d_opts *o);
/* x [N, C, L] * w [OC, C / groups, K] -> [N, OC, OL]: conv2d over one row
 * (the second of stride, dilation, and pad[1] / pad[3] apply). */
loom_tensor loom_conv1d(loom_graph *g, loom_tensor x, loom_tensor w, loom_tensor bias, const loom_conv2d_opts *o);
/* The transpose of conv2d(., w): x [N, IC, H, W] with w [IC, OC / groups,
 * KH, KW] (PyTorch's ConvTranspose2d layout) -> [N, OC, (H - 1) stride -
 * pad_top - pad_bottom + dilation (KH - 1) + 1 + output_padding[0], ...];
 * same = 1 gives H stride rows. output_padding may be NULL (0, 0). */
loom_tensor loom_conv_transpose2d(loom_graph *g, loom_tensor x, loom_tensor w, loom_tensor bias,
                                  const loom_conv2d_opts *o, const int output_padding[2]);

/* Pooling windows of kernel[0] x kernel[1] over [N, C, H, W]; a stride of
 * 0 is the kernel's. Padding (explicit or same) must be smaller than the
 * window. Max ignores the padding, and its gradient goes to the first
 * arg-max of each window. Average divides by the window's elements inside
 * the input, or by the whole window with count_pad = 1 (PyTorch's
 * count_include_pad). */
typedef struct loom_pool2d_opts {
    int kernel[2];
    int stride[2];
    int pad[4];
    int same;
    int count_pad;
} loom_pool2d_opts;

loom_tensor loom_max_pool2d(loom_graph *g, loom_tensor x, const loom_pool2d_opts *o);
loom_tensor loom_avg_pool2d(loom_graph *g, loom_tensor x, const loom_pool2d_opts *o);
/* [N, C, H, W] -> [N, C]: the mean of each channel. */
loom_tensor loom_global_avg_pool2d(loom_graph *g, loom_tensor x);

/* Batch normalization of x [N, C] or [N, C, ...] per channel, scaled by
 * gamma [C] and shifted by beta [C] (x's dtype). running is a [2, C] f32
 * parameter (the running mean, then the running variance; keep it
 * untrainable). training = 1: the batch's statistics (mean and biased
 * variance over N and the spatial dims), and when running is given an
 * update node that writes running = momentum running + (1 - momentum)
 * batch (Keras: momentum 0.99, eps 1e-3); the gradient accounts for the
 * statistics. training = 0: the running statistics, fixed. */
loom_tensor loom_batch_norm(loom_graph *g, loom_tensor x, loom_tensor gamma, loom_tensor beta, loom_tensor running,
                            float momentum, float eps, int training);
/* Group normalization: statistics per sample over groups of C / groups
 * channels (C divisible by groups), then gamma [C] and beta [C]. */
loom_tensor loom_group_norm(loom_graph *g, loom_tensor x, loom_tensor gamma, loom_tensor beta, int groups, float eps);

/* Tensors joined along axis (negative counts from the end); every other
 * dim equal, one dtype. */
loom_tensor loom_concat(loom_graph *g, int n, const loom_tensor *xs, int axis);
/* x[start:stop:step] along every axis (arrays of x's rank; NULL start: 0,
 * NULL stop: the end, NULL step: 1). Negative start and stop count from
 * the end and are clipped to the dim, as Python's slices; step >= 1; an
 * empty result is LOOM_E_SHAPE. */
loom_tensor loom_slice(loom_graph *g, loom_tensor x, const int64_t *start, const int64_t *stop, const int64_t *step);
typedef enum loom_pad_mode {
    LOOM_PAD_CONSTANT = 0,    /* value outside */
    LOOM_PAD_REFLECT = 1      /* mirrored without the edge: lo, hi < dim */
} loom_pad_mode;
/* lo[i] before and hi[i] after axis i (arrays of x's rank). */
loom_tensor loom_pad(loom_graph *g, loom_tensor x, const int64_t *lo, const int64_t *hi, loom_pad_mode mode,
                     float value);
/* [N, ...] -> [N, the rest]: a reshape, which moves nothing. */
loom_tensor loom_flatten(loom_graph *g, loom_tensor x);
/* Dropout of whole channels of x [N, C, ...] (the same mask over each
 * channel's elements), scaled by 1 / (1 - rate). */
loom_tensor loom_spatial_dropout(loom_graph *g, loom_tensor x, float rate, uint32_t seed);

/* ---- autodiff and optimizers -------------------------------------------- */

/* Appends gradient nodes of the scalar `loss` with respect to every
 * trainable parameter reachable from it (and the extra tensors in `wrt`).
 * The gradient of x is found with loom_grad(g, x). */
loom_status loom_backward(loom_graph *g, loom_tensor loss,
                          const loom_tensor *wrt, int nwrt);
loom_tensor loom_grad(const loom_graph *g, loom_tensor x);
/* Declares grad (an input, say) the gradient of the trainable parameter
 * param, for loom_optimize in a graph without loom_backward: the update
 * half of a training step split at the gradient boundary, whose gradients
 * were computed elsewhere (and averaged over replicas). LOOM_E_SHAPE when
 * the shapes differ; LOOM_E_STATE when param has a gradient already. */
loom_status loom_set_grad(loom_graph *g, loom_tensor param, loom_tensor grad);

typedef enum loom_optimizer_kind {
    LOOM_OPT_SGD = 0,
    LOOM_OPT_ADAM = 1,
    LOOM_OPT_ADAMW = 2
} loom_optimizer_kind;

typedef enum loom_lr_schedule {
    LOOM_LR_CONSTANT = 0,
    LOOM_LR_STEP = 1,          /* lr * gamma^(floor(step / step_size)) */
    LOOM_LR_COSINE = 2         /* linear warm-up, then cosine to lr_min */
} loom_lr_schedule;

typedef struct loom_optimizer {
    loom_optimizer_kind kind;
    float lr;                  /* Keras defaults: 0.001 (Adam), 0.01 (SGD) */
    float beta1, beta2, eps;   /* Adam: 0.9, 0.999, 1e-7 */
    float momentum;            /* SGD */
    int nesterov;
    float weight_decay;        /* AdamW decoupled decay (default 0.004) */
    float l1, l2;              /* penalties added to the gradient */
    float clip_norm;           /* > 0: clip gradients by global norm */
    loom_lr_schedule schedule;
    int64_t step_size;         /* STEP */
    float gamma;               /* STEP */
    int64_t warmup_steps;      /* COSINE */
    int64_t total_steps;       /* COSINE */
    float lr_min;              /* COSINE */
    float ema_decay;           /* > 0: keep an exponential moving average */
} loom_optimizer;

/* Keras defaults for the kind. */
loom_optimizer loom_optimizer_default(loom_optimizer_kind kind);
/* Appends update nodes for every trainable parameter that has a gradient
 * (call after loom_backward). Moments live in the state, named
 * "<param>/m", "<param>/v"; the EMA in "<param>/ema". */
loom_status loom_optimize(loom_graph *g, const loom_optimizer *opt);
/* The learning rate of update number `step` (1-based) under opt's schedule. */
float loom_optimizer_lr(const loom_optimizer *opt, int64_t step);

/* Pruning: an update node that sets param = param * mask on the device
 * (param an f32 parameter, mask of its shape, f32 0 / 1, e.g. a parameter
 * "<param>/mask" in the state). Call after loom_optimize: nodes run in
 * graph order, so the optimizer's step comes first and pruned weights
 * stay zero through every step. */
loom_status loom_mask_update(loom_graph *g, loom_tensor param, loom_tensor mask);

/* Mixed precision, as PyTorch's GradScaler and Keras's LossScaleOptimizer
 * do it: the backward pass starts from the run's loss scale instead of 1
 * (so half-precision gradients do not underflow), the updates divide it
 * out, and a step whose gradients hold an inf or NaN is skipped: the
 * parameters and moments stay, the step count does not advance, the scale
 * is multiplied by backoff. After `interval` good steps in a row the scale
 * grows by `growth`. The scale lives in the state (checkpoints keep it). */
typedef struct loom_loss_scaling {
    float init;                /* 65536 */
    float growth;              /* 2 */
    float backoff;             /* 0.5 */
    int64_t interval;          /* 2000 */
} loom_loss_scaling;

loom_loss_scaling loom_loss_scaling_default(void);
/* loom_backward with dynamic loss scaling (ls NULL: the defaults). */
loom_status loom_backward_scaled(loom_graph *g, loom_tensor loss, const loom_tensor *wrt, int nwrt,
                                 const loom_loss_scaling *ls);

/* ---- models: the Sequential API (src/nn/sequential.c) ---- */

typedef struct loom_dataset loom_dataset;
typedef struct loom_sequential loom_sequential;

/* How inputs are scaled (loom_dataset_scale, a model's preprocessing). */
typedef enum {
    LOOM_SCALE_UNIT = 0,       /* x/255 -> [0,1] */
    LOOM_SCALE_STANDARD = 1    /* (x-mean)/std */
} loom_scaling;

typedef enum loom_activation {
    LOOM_ACT_NONE = 0,
    LOOM_ACT_RELU,
    LOOM_ACT_SIGMOID,
    LOOM_ACT_TANH,
    LOOM_ACT_GELU,
    LOOM_ACT_SOFTMAX
} loom_activation;

typedef enum loom_init {
    LOOM_INIT_GLOROT_UNIFORM = 0, /* the Keras default for Dense */
    LOOM_INIT_HE_NORMAL = 1       /* std sqrt(2 / fan_in), for ReLU stacks */
} loom_init;

typedef enum loom_loss {
    LOOM_LOSS_SPARSE_CE = 0,   /* integer labels; on softmax outputs computed from the logits */
    LOOM_LOSS_CE = 1,          /* one-hot targets */
    LOOM_LOSS_MSE = 2
} loom_loss;

/* A stack of layers over inputs of `input_features` f32 values. */
loom_status loom_sequential_create(loom_ctx *ctx, int64_t input_features, loom_sequential **out);
void loom_sequential_destroy(loom_sequential *m);
loom_status loom_sequential_add_dense(loom_sequential *m, int64_t units, loom_activation act, loom_init init);
loom_status loom_sequential_add_dropout(loom_sequential *m, float rate);
/* Any layer from its JSON description, as loom.architecture holds it:
 * {"type": "dense", "units": 64, "activation": "relu"}, or one of the
 * sequence layers (README "Sequence layers"): reshape, patches,
 * embedding, position, layer_norm, rms_norm, attention,
 * transformer_encoder, transformer_decoder, pool, lstm, gru. The layer
 * must take the samples the layers before it give (LOOM_E_SHAPE naming it);
 * unknown types or fields are LOOM_E_FORMAT. */
loom_status loom_sequential_add_json(loom_sequential *m, const char *layer_json);
/* The architecture as JSON (stored in model files); valid while m lives. */
const char *loom_sequential_describe(loom_sequential *m);

/* Convolutional networks. A model over images takes rows of channels x
 * height x width values (Fashion-MNIST: 1 x 28 x 28), seen as NCHW. Each
 * layer checks its input's shape when it is added (LOOM_E_SHAPE naming
 * the layer and the shapes): dense needs features (add a flatten), the
 * convolutions and pooling need images. */
loom_status loom_sequential_create_image(loom_ctx *ctx, int64_t channels, int64_t height, int64_t width,
                                         loom_sequential **out);

typedef struct loom_conv2d_layer {
    int64_t filters;
    int kernel[2];
    int stride[2];            /* 0: 1 */
    int dilation[2];          /* 0: 1 */
    int same;                 /* 1: "same" padding (ceil(H / stride) rows), 0: "valid" */
    int groups;               /* 0: 1; the input's channels for depthwise */
    int no_bias;
    loom_activation act;
    loom_init init;           /* LOOM_INIT_HE_NORMAL for ReLU stacks */
} loom_conv2d_layer;

/* filters of kh x kw, stride 1, valid padding, a bias, no activation, He
 * initialisation. */
loom_conv2d_layer loom_conv2d_layer_default(int64_t filters, int kh, int kw);
loom_status loom_sequential_add_conv2d(loom_sequential *m, const loom_conv2d_layer *l);
/* Windows of kh x kw; stride 0 is the window's (Keras's default). */
loom_status loom_sequential_add_max_pool2d(loom_sequential *m, int kh, int kw, int stride, int same);
loom_status loom_sequential_add_avg_pool2d(loom_sequential *m, int kh, int kw, int stride, int same);
/* [C, H, W] -> [C] */
loom_status loom_sequential_add_global_avg_pool2d(loom_sequential *m);
/* Batch normalization per channel (or per feature); 0, 0 give Keras's
 * momentum 0.99 and eps 1e-3. Its parameters are "bn<i>/gamma",
 * "bn<i>/beta" and the running statistics "bn<i>/running" [2, C] (mean,
 * variance), which training updates and evaluation uses. */
loom_status loom_sequential_add_batch_norm(loom_sequential *m, float momentum, float eps);
/* [C, H, W] -> [C H W] */
loom_status loom_sequential_add_flatten(loom_sequential *m);
loom_status loom_sequential_add_activation(loom_sequential *m, loom_activation act);
/* Dropout of whole channels (training only). */
loom_status loom_sequential_add_spatial_dropout(loom_sequential *m, float rate);
/* A model from its description: the JSON loom_sequential_describe gives
 * and model files carry ({"input": 784 or [C, H, W], "layers": [{"type":
 * "conv2d", "filters": 32, "kernel": [3, 3], "padding": "same", ...}]});
 * fields a layer leaves out take their defaults. LOOM_E_FORMAT naming
 * what (a file name) and the field when it is not one. */
loom_status loom_sequential_from_json(loom_ctx *ctx, const char *json, const char *what, loom_sequential **out);

typedef struct loom_model_config {
    loom_optimizer optimizer;  /* default: Adam with Keras defaults */
    loom_loss loss;            /* default: sparse categorical cross-entropy */
    int64_t batch;             /* default 32 */
    uint64_t seed;             /* weights, shuffling and dropout; default 42 */
    int profile;               /* compile programs with profiling */
    /* The dtype of activations and gradients: LOOM_F32 (default), or mixed
     * precision as PyTorch AMP and Keras mixed_float16 do it: LOOM_F16
     * (with dynamic loss scaling, loom_backward_scaled) or LOOM_BF16. The
     * weights and optimizer moments stay f32 in the state either way. */
    loom_dtype precision;
} loom_model_config;

loom_model_config loom_model_config_default(void);
/* Creates the state on dev, initializes the weights and compiles the
 * training and evaluation programs. */
loom_status loom_sequential_compile(loom_sequential *m, loom_device *dev, const loom_model_config *cfg);
loom_state *loom_sequential_state(loom_sequential *m);
/* The configuration the model was compiled (or loaded) with. */
loom_model_config loom_sequential_config(const loom_sequential *m);

typedef struct loom_fit_stats {
    int epoch, epochs;         /* 1-based epoch */
    int64_t step;              /* optimizer updates so far */
    int64_t seen, total;       /* samples of this epoch so far, and in all */
    double loss, accuracy;     /* running means over this epoch */
    double val_loss, val_accuracy; /* NaN until measured */
    double seconds;            /* of training in this epoch */
    double samples_per_s;
    int end_of_epoch;
    int early_stopped;         /* set in the last stats when early stopping
                                  ended the fit (patience ran out) */
    double loss_scale;         /* mixed precision in f16: the dynamic loss
                                  scale now (0 without loss scaling) */
    int64_t skipped_steps;     /* steps skipped for a non-finite gradient */
} loom_fit_stats;

/* Return non-zero to stop training. */
typedef int (*loom_progress_fn)(void *user, const loom_fit_stats *s);

typedef struct loom_fit_config {
    int epochs;                /* default 5 */
    float validation_split;    /* the last fraction of the training rows */
    loom_dataset *validation;  /* or an explicit validation set */
    int shuffle;               /* default 1: seeded per epoch */
    loom_progress_fn progress;
    void *user;
    int64_t progress_every;    /* call progress every N steps (0: epoch ends) */
    int early_stopping_patience; /* > 0: stop after N epochs without a better
                                  val_loss (needs validation data:
                                  LOOM_E_INVALID otherwise) */
    int64_t checkpoint_every;  /* > 0: save a checkpoint every N steps
                                  (needs checkpoint_path) */
    const char *checkpoint_path;
    struct loom_metrics *metrics; /* a step line every metrics_every steps
                                  (default: each progress report) and at
                                  each epoch's end, with ops and plan lines */
    int64_t metrics_every;
    struct loom_trace *trace;  /* the first trace_steps steps, when the model
                                  was compiled with profile = 1 */
    int64_t trace_steps;
    /* Training augmentation of image models, drawn from the model's seed:
     * each image shifted by up to augment_shift pixels either way (the
     * uncovered pixels are 0 before scaling), and with augment_flip
     * mirrored left to right half of the time. */
    int augment_shift;
    int augment_flip;
} loom_fit_config;

loom_fit_config loom_fit_config_default(void);
/* The first fit of a model on data scaled by loom_dataset_scale records
 * that scaling as the model's preprocessing (unless one is set); fit and
 * evaluate refuse data scaled otherwise than the model records
 * (LOOM_E_INVALID). A model loaded from a checkpoint resumes at its epoch
 * and step: a position outside this data set's epoch is LOOM_E_FORMAT. */
loom_status loom_sequential_fit(loom_sequential *m, loom_dataset *train, const loom_fit_config *cfg,
                                loom_fit_stats *last);

typedef struct loom_eval_result {
    double loss, accuracy;
    int classes;
    double *precision, *recall; /* per class */
    int64_t *confusion;        /* [true][predicted], classes x classes */
    int64_t count;
    double seconds;
    loom_ctx *ctx;             /* whose allocator holds the arrays */
} loom_eval_result;

/* use_ema: evaluate with the exponential moving average of the weights
 * (the optimizer must keep one). */
loom_status loom_sequential_evaluate(loom_sequential *m, loom_dataset *ds, int use_ema, loom_eval_result *out);
void loom_eval_result_free(loom_eval_result *r);
/* Evaluation writes into these (NULL: off): one metrics "step" line (loss,
 * accuracy, samples/s, busy %) and an "ops" line per evaluate, and the first
 * trace_runs batches into the trace (the model compiled with profile = 1). */
loom_status loom_sequential_monitor(loom_sequential *m, struct loom_metrics *metrics, struct loom_trace *trace,
                                    int64_t trace_runs);
/* x [n, input_features] -> out [n, outputs] (probabilities for softmax);
 * x is already preprocessed (loom_sequential_preprocess). */
loom_status loom_sequential_predict(loom_sequential *m, const float *x, int64_t n, float *out);
int64_t loom_sequential_outputs(const loom_sequential *m);
int64_t loom_sequential_inputs(const loom_sequential *m);
/* The shape of one sample, the batch dim left out: [features], or
 * [C, H, W] for image models; returns its rank (0 for NULL). */
int loom_sequential_input_shape(const loom_sequential *m, int64_t shape[3]);

/* The inputs' preprocessing, recorded in model files so that whoever
 * loads a model scales its inputs as the training data was: x/255
 * (LOOM_SCALE_UNIT; stats ignored, reported as {0, 255}) or (x - mean) /
 * std (LOOM_SCALE_STANDARD, stats = {mean, std} of the training set).
 * Fit sets it from its training data when it is not set. */
loom_status loom_sequential_set_preprocess(loom_sequential *m, loom_scaling how, const float stats[2]);
/* LOOM_E_STATE when the model records none (a file from before). */
loom_status loom_sequential_get_preprocess(const loom_sequential *m, loom_scaling *how, float stats[2]);
/* Applies the recorded preprocessing in place to n rows of raw inputs
 * (the same arithmetic as loom_dataset_scale); LOOM_E_STATE when none. */
loom_status loom_sequential_preprocess(const loom_sequential *m, float *x, int64_t n);

/* Model files (safetensors, the architecture, configuration, preprocessing
 * and step in __metadata__). save writes the weights (and their moving
 * average when the optimizer keeps one), not the optimizer's moments;
 * checkpoint writes weights, moments and the progress (epoch, step). */
loom_status loom_sequential_save(loom_sequential *m, const char *path);
/* A model file whose weights are stored in dtype (LOOM_F16 or LOOM_BF16:
 * half the size; LOOM_F32 is loom_sequential_save). Loading it widens the
 * weights back into the model's f32 weights. */
loom_status loom_sequential_save_as(loom_sequential *m, const char *path, loom_dtype dtype);
loom_status loom_sequential_checkpoint(loom_sequential *m, const char *path);
/* Rebuilds a model from a file and compiles it on dev with cfg (NULL: the
 * file's configuration); a checkpoint also restores the optimizer and the
 * progress, so fit continues where it stopped; a model file's optimizer
 * starts afresh (step 0, zero moments).
 * Every file is validated first, and refused with LOOM_E_FORMAT naming the
 * file and the record or tensor: metadata records of loom's ("loom.*")
 * that are unknown; a loom.config that is not JSON, or a field unknown,
 * not a number or out of range (loss, optimizer kind, schedule, batch in
 * [1, 2^31), ...); loom.step, loom.epoch, loom.epoch_step that are not
 * whole numbers >= 0; a weight the architecture needs that is missing;
 * a tensor the architecture does not know; a dtype or shape other than
 * the architecture's; a NaN or an infinity; a checkpoint without a moment
 * its optimizer keeps. */
loom_status loom_sequential_load(loom_ctx *ctx, const char *path, loom_device *dev, const loom_model_config *cfg,
                                 loom_sequential **out);
/* The training configuration saved in a model file (to change a field,
 * e.g. profile, before loom_sequential_load), validated as load does. */
loom_status loom_model_config_read(loom_ctx *ctx, const char *path, loom_model_config *out);
/* Loads weights (and moments) from a file into a compiled model of the same
 * architecture, validated as load does; on any error the model is
 * unchanged. */
loom_status loom_sequential_restore(loom_sequential *m, const char *path);

/* ---- data-parallel training (src/nn/replicas.c) ---- */

/* How several processes (machines) reduce their gradients. loom carries
 * no transport of its own: the caller hands these in (the loom CLI's
 * tools/loom/dist_mpi.c does it over MPI). Each call returns LOOM_OK, or
 * an error with its message set (loom_fail on ctx) that names the rank
 * which failed or did not answer in time; the run then stops with it. */
typedef struct loom_collective {
    int rank, size;            /* this process and how many there are */
    void *user;
    /* Starts the in-place sum of n floats over every process; *req is
     * handed to wait. Several may be in flight at once, waited in order. */
    loom_status (*sum_start)(void *user, float *data, int64_t n, void **req);
    loom_status (*wait)(void *user, void *req);
    /* Blocking: rank 0's bytes into every process, and an in-place sum
     * of n doubles over every process. */
    loom_status (*broadcast)(void *user, void *data, size_t bytes);
    loom_status (*sum_doubles)(void *user, double *data, int n);
} loom_collective;

#define LOOM_MAX_REPLICAS 8

typedef enum loom_replica_update {
    LOOM_UPDATE_AUTO = 0,      /* EACH when every replica is on the same kind
                                  of device (one backend, one driver),
                                  BROADCAST otherwise */
    LOOM_UPDATE_EACH = 1,      /* every replica runs the optimizer on the
                                  same reduced gradient bytes */
    LOOM_UPDATE_BROADCAST = 2  /* the first replica runs it; its new weights
                                  are copied into the others */
} loom_replica_update;

typedef struct loom_replica_opts {
    int64_t check_every;       /* compare a hash of every replica's weights
                                  (and every process's) every N steps and
                                  at the end of each fit; default 100;
                                  0: at the end only */
    int64_t bucket_bytes;      /* gradients are reduced in buckets of about
                                  this size (tensor fusion); default 1 MiB */
    int64_t balance_steps;     /* the devices' speeds are measured over the
                                  first N steps, each device alone, and
                                  the shares of the batch set from them
                                  (twice); default 8; 0: keep `shares` */
    const double *shares;      /* the devices' starting shares (NULL: equal) */
    loom_replica_update update;
    const loom_collective *collective; /* NULL: this process alone */
} loom_replica_opts;

loom_replica_opts loom_replica_opts_default(void);
/* Makes a compiled (or loaded) model data-parallel: a replica of its state
 * (weights, moments, step) on each of the `nmore` devices beside its own,
 * and with opts->collective, over several processes (rank 0's state is
 * broadcast to every process first, and rank 0 alone writes
 * checkpoints). Each training step of fit then splits its batch among
 * the devices by their measured speed (each process takes its `batch`
 * rows of a step of batch x size rows, so N processes at batch B train as
 * one at N x B), computes the gradients on every device at once, averages
 * them through host memory bucket by bucket (and sums them over the
 * processes, a bucket's sum overlapping the next one's download), and
 * applies the same update bytes to every replica. Batch norm takes each
 * device's share's statistics in training (as PyTorch DDP does) and its
 * running statistics are averaged over the devices after every step;
 * dropout draws different masks on each device. The replicas are checked
 * bit-identical by a hash of their weights (loom_sequential_check_replicas);
 * a mismatch stops the fit with LOOM_E_STATE naming the devices. Refused:
 * a batch smaller than the devices (LOOM_E_INVALID), f16 precision (its
 * loss scaling; LOOM_E_UNSUPPORTED), more than LOOM_MAX_REPLICAS devices. */
loom_status loom_sequential_replicate(loom_sequential *m, loom_device *const *more, int nmore,
                                      const loom_replica_opts *opts);

typedef struct loom_replica_stats {
    int replicas;              /* devices in this process */
    loom_replica_update update;/* the mode in force */
    int64_t rows[LOOM_MAX_REPLICAS];      /* each device's rows of a full batch now */
    double rows_per_s[LOOM_MAX_REPLICAS]; /* each device's measured speed (0: not yet) */
    int64_t grad_bytes;        /* gradient (and running statistics) bytes
                                  reduced per step: the traffic per device and
                                  per process */
    int buckets;               /* per step */
    int64_t steps;             /* data-parallel steps taken */
    double compute_s;          /* totals over the steps: the gradients
                                  programs, from submit to the last wait */
    double reduce_s;           /* downloads and the host average */
    double allreduce_s;        /* waiting for the processes' sums */
    double update_s;           /* uploads and the updates (and broadcasts) */
    int64_t checks;            /* hash checks passed */
    uint64_t hash;             /* the weights' hash at the last check */
} loom_replica_stats;

loom_status loom_sequential_replica_stats(const loom_sequential *m, loom_replica_stats *out);
/* Hashes every replica's weights and running statistics (FNV-1a over the
 * bytes) and compares them over the devices and the processes:
 * LOOM_E_STATE naming the devices (ranks) that differ. *hash may be NULL. */
loom_status loom_sequential_check_replicas(loom_sequential *m, uint64_t *hash);
/* ---- model optimization: pruning and distillation (src/nn/prune*.c, distill.c) ---- */

typedef enum loom_prune_scope {
    LOOM_PRUNE_LAYER = 0,      /* each kernel to the target on its own (TF-MOT) */
    LOOM_PRUNE_GLOBAL = 1      /* one magnitude threshold over every kernel */
} loom_prune_scope;

typedef enum loom_prune_pattern {
    LOOM_PRUNE_UNSTRUCTURED = 0,
    LOOM_PRUNE_2_4 = 1         /* in every 4 consecutive weights along the
                                  input dimension the 2 smallest are zero (a
                                  tail of fewer than 4 stays); sparsity 0.5 */
} loom_prune_pattern;

/* Magnitude pruning during fine-tuning, as TF-MOT's prune_low_magnitude
 * with PolynomialDecay: at step t (updates done so far) in [begin_step,
 * end_step] with (t - begin_step) % frequency == 0 the masks are
 * recomputed (on the host) to sparsity final + (initial - final) (1 -
 * (t - begin) / (end - begin))^power; every training step applies them
 * on the device after the optimizer's update (loom_mask_update), so the
 * pruned weights stay zero. Kernels are pruned (dense, conv2d and the
 * sequence layers' matrices), not biases or normalization parameters. */
typedef struct loom_prune_schedule {
    float initial_sparsity;    /* 0 */
    float final_sparsity;      /* 0.8 */
    int64_t begin_step;        /* 0 */
    int64_t end_step;          /* 1000; >= begin_step */
    int64_t frequency;         /* 100; >= 1 */
    float power;               /* 3 */
    loom_prune_scope scope;
    loom_prune_pattern pattern;
} loom_prune_schedule;

loom_prune_schedule loom_prune_schedule_default(void);
/* The schedule's target sparsity at step (clamped to [begin, end]). */
float loom_prune_sparsity_at(const loom_prune_schedule *s, int64_t step);
/* 1 if the masks are recomputed before the update that follows step. */
int loom_prune_due(const loom_prune_schedule *s, int64_t step);
/* Arms pruning on a compiled model: masks "<kernel>/mask" (ones) in its
 * state and, from the next step on, mask updates in its training program.
 * NULL disarms it (the masks are removed). Model files hold the pruned
 * weights, not the masks. LOOM_E_INVALID for a schedule out of range. */
loom_status loom_sequential_set_pruning(loom_sequential *m, const loom_prune_schedule *s);
/* Prunes now to sparsity under the scope and pattern given (the masks too,
 * when pruning is armed). */
loom_status loom_sequential_prune(loom_sequential *m, float sparsity, loom_prune_scope scope,
                                  loom_prune_pattern pattern);
/* Zero weights over all kernels the pruning covers, and their count. */
loom_status loom_sequential_sparsity(loom_sequential *m, double *sparsity, int64_t *weights);
/* 1 if every group of 4 consecutive weights along each kernel's input
 * dimension holds at least 2 zeros (the tails of fewer than 4 excepted). */
int loom_sequential_is_2_4(loom_sequential *m);

/* Structured pruning: a new model (compiled on m's device with m's
 * configuration) whose conv2d filters and dense units are fewer by
 * fraction in each layer (the last dense layer, the classes, is kept):
 * those of the smallest L1 (norm 1) or L2 (norm 2) kernel norm go, with
 * their bias, the batch-norm channels that follow and the next layer's
 * input channels or columns. The result has smaller tensors and runs
 * faster; fine-tune it after. A layer whose outputs meet anything but
 * batch norm, pooling, activation, dropout, flatten and the next
 * conv2d / dense (groups > 1, sequence layers) keeps its width. */
loom_status loom_sequential_prune_structured(loom_sequential *m, float fraction, int norm, loom_sequential **out);

/* Knowledge distillation (Hinton et al.): loss = alpha T^2
 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) sparse
 * cross-entropy, over logits [N, C] (teacher's: no gradient) and labels
 * [N]; a scalar, mean over N. Built from log_softmax, softmax and
 * cross-entropy (see src/core/ops.c for why). */
loom_tensor loom_distillation_loss(loom_graph *g, loom_tensor student_logits, loom_tensor teacher_logits,
                                   loom_tensor labels, float temperature, float alpha);
/* From the next training step on, m trains against teacher (a compiled
 * model of the same inputs and classes, whose weights are copied into m's
 * state as "teacher/..." and frozen): the teacher's forward pass
 * (inference mode) is part of m's training program, on m's device, and
 * the loss is loom_distillation_loss. teacher may be destroyed after the
 * call. NULL ends it. Sequence layers in the teacher: LOOM_E_UNSUPPORTED. */
loom_status loom_sequential_set_teacher(loom_sequential *m, loom_sequential *teacher, float temperature, float alpha);

/* ---- custom GLSL kernels (Vulkan: src/backends/vulkan/vk_custom.c) ---- */

/* A compute shader of your own as a node. `glsl` is a complete GLSL 450
 * compute shader: binding i of set 0 is inputs[i] (a storage buffer),
 * binding nin the output, of the given dtype and shape (32-bit dtypes); its
 * push constants may declare `uint n[9]`: the output's element count, then
 * each input's. It runs as groups[0] x groups[1] x groups[2] workgroups.
 * The source is compiled (libshaderc) when the graph is compiled for a
 * Vulkan device: a GLSL error makes loom_compile return LOOM_E_INVALID with
 * the compiler's messages; other backends refuse the node with
 * LOOM_E_UNSUPPORTED. It has no gradient. Mesa's llvmpipe ends every loop
 * of an invocation, silently, after 65535 loop passes in all: a kernel
 * meant for it must stay within that per invocation. */
#define LOOM_CUSTOM_MAX_INPUTS 8
loom_tensor loom_custom_op(loom_graph *g, const char *name, const char *glsl, int nin, const loom_tensor *inputs,
                           loom_dtype dtype, int ndim, const int64_t *shape, const uint32_t groups[3]);

/* ---- state and programs ------------------------------------------------- */

/* The persistent tensors of a model on one device. */
loom_status loom_state_create(loom_device *dev, loom_state **out);
void loom_state_destroy(loom_state *st);
/* Creates (or overwrites, when the shape matches) a named tensor. */
loom_status loom_state_write(loom_state *st, const char *name, loom_dtype dt,
                             int ndim, const int64_t *shape, const void *data);
/* Removes a named tensor (LOOM_E_INVALID if absent); LOOM_E_STATE while a
 * program compiled against st binds it. */
loom_status loom_state_remove(loom_state *st, const char *name);
/* Copies a named tensor out; bytes must equal its size. */
loom_status loom_state_read(loom_state *st, const char *name, void *data, size_t bytes);
/* Number of tensors and the i-th name / shape (for saving). */
int loom_state_count(const loom_state *st);
loom_status loom_state_entry(const loom_state *st, int i, const char **name,
                             loom_dtype *dt, int *ndim, int64_t shape[LOOM_MAX_DIMS]);
/* The context the state was created in (NULL for NULL): code built on
 * loom that is handed only a state reports its errors there. */
loom_ctx *loom_state_ctx(const loom_state *st);
/* Optimizer updates taken so far (saved in checkpoints). */
int64_t loom_state_step(const loom_state *st);
void loom_state_set_step(loom_state *st, int64_t step);
/* Dynamic loss scaling (loom_backward_scaled): the scale the next step
 * uses, and the steps skipped so far because a gradient was not finite. */
float loom_state_loss_scale(const loom_state *st);
int64_t loom_state_skipped_steps(const loom_state *st);
/* Restores both (checkpoints); a scale <= 0 is LOOM_E_INVALID. */
loom_status loom_state_set_loss_scale(loom_state *st, float scale, int64_t skipped);

typedef struct loom_compile_opts {
    int profile;               /* record per-node timestamps */
    int guard;                 /* debugging: fence every output with guard
                                  bytes that loom_program_check_guards checks */
    int no_fusion;             /* keep every node apart (no matmul + bias
                                  + activation fusion) */
} loom_compile_opts;

loom_status loom_compile(loom_graph *g, loom_device *dev, loom_state *st,
                         const loom_compile_opts *opts, loom_program **out);
void loom_program_destroy(loom_program *p);
/* bytes must equal the input's size. i32 inputs that feed a
 * sparse cross-entropy are checked against the class count here. */
loom_status loom_program_set_input(loom_program *p, const char *name,
                                   const void *data, size_t bytes);
/* One replay of the recorded program. If the program updates parameters,
 * the state's step advances by one and the schedule's rate is used. */
loom_status loom_program_run(loom_program *p);
loom_status loom_program_read(loom_program *p, const char *name, void *data, size_t bytes);
/* loom_program_run in two halves: submit queues the replay and returns
 * (Vulkan and OpenCL return at once, so that several devices compute
 * together while the host works; the CPU computes here), wait blocks
 * until it is done and then counts the step as run does. set_input, read
 * and run wait first themselves; a second submit before the wait is
 * LOOM_E_STATE. */
loom_status loom_program_submit(loom_program *p);
loom_status loom_program_wait(loom_program *p);
/* Queues a copy of an output into data behind the replay in flight (after
 * loom_program_submit; without one it is loom_program_read): data holds it
 * once loom_program_wait returns, and must stay valid until then. OpenCL
 * queues a non-blocking read behind the kernels, Vulkan copies mapped
 * memory as the fence signals, the CPU (and unmapped Vulkan memory) reads
 * at the wait. */
loom_status loom_program_read_async(loom_program *p, const char *name, void *data, size_t bytes);
/* With opts.guard: LOOM_E_DEVICE naming the op and tensor if a kernel wrote
 * outside an output's range; LOOM_OK otherwise. */
loom_status loom_program_check_guards(loom_program *p);

typedef struct loom_plan_report {
    uint64_t arena_bytes;      /* what the planner allocated */
    uint64_t lower_bound;      /* largest sum of bytes live at one step */
    uint64_t naive_bytes;      /* every intermediate in its own block */
    uint64_t state_bytes;
    int steps;
    const uint64_t *live_bytes;/* per step; valid while the program lives */
    int inplace;               /* ops that wrote over a dying input */
    int dispatches;            /* kernel launches per replay (after fusion;
                                  GEMM calls and copies count) */
    int fused;                 /* fusions made (matmul + bias [+ activation]) */
} loom_plan_report;

loom_status loom_program_plan(const loom_program *p, loom_plan_report *out);
/* The planner's report of the model's training (train = 1) or evaluation
 * program at its batch: arena, lower bound, dispatches per step. */
loom_status loom_sequential_plan(loom_sequential *m, int train, loom_plan_report *out);

/* ---- per-device tuning (OpenCL: CLBlast's GEMM parameters) -------------- */

/* A backend with choices worth measuring searches them once per device and
 * driver and keeps the best set under the cache directory; every later
 * open of that device applies it. Backends with nothing to tune answer
 * LOOM_E_UNSUPPORTED. */
typedef void (*loom_tune_progress_fn)(void *user, int done, int total, const char *what);

typedef struct loom_tune_opts {
    int size;                  /* square GEMM timed per candidate; 0: 1024 */
    int max_candidates;        /* the bound of the search; 0: 24 */
    int reps;                  /* timed runs per candidate, the best kept; 0: 3 */
    loom_tune_progress_fn progress; /* may be NULL */
    void *progress_user;
} loom_tune_opts;

typedef struct loom_tune_report {
    double baseline_gflops;    /* the parameters in use before the search */
    double best_gflops;        /* the parameters kept */
    int measured;              /* candidates timed */
    int rejected;              /* candidates that failed to build, run or verify */
    int improved;              /* 1 if the kept set beat the baseline */
    double seconds;
    char path[512];            /* where the result is stored */
} loom_tune_report;

void loom_tune_opts_default(loom_tune_opts *opts);
/* Searches, verifies each candidate against the host, applies and stores
 * the fastest set. out may be NULL. */
loom_status loom_device_tune(loom_device *dev, const loom_tune_opts *opts, loom_tune_report *out);
/* Applies a parameter set in the stored JSON form (NULL: the stored file)
 * and checks it with a GEMM against the host. An impossible set gives
 * LOOM_E_INVALID naming the broken constraint; a set that fails on the
 * device gives LOOM_E_DEVICE; either way the previous set stays in use. */
loom_status loom_device_set_tuning(loom_device *dev, const char *json);
/* The set in use as JSON ({"use_default": true, ...} when none is). */
loom_status loom_device_get_tuning(loom_device *dev, char *buf, size_t n);

/* ---- data sets and model files (src/nn) ---- */

typedef struct loom_dataset loom_dataset;
/* MNIST-format IDX files (gzip or not: zlib's gzopen reads both). Images
 * become f32 [n, rows*cols] (raw 0..255 values until loom_dataset_scale),
 * labels i32 [n]. Labels must number the classes 0..C-1 with every class
 * used at least once (C = the largest label + 1): a stray label byte (one
 * 255 in a 10-class set) is LOOM_E_FORMAT naming the label and its row,
 * never a silent 256-way softmax. A gzip stream cut short, its CRC and
 * length trailer included, is LOOM_E_FORMAT. */
loom_status loom_dataset_load_idx(loom_ctx *ctx, const char *images_path, const char *labels_path,
                                  loom_dataset **out);
/* dir holds train-images-idx3-ubyte(.gz) etc. (the layout of Debian's
 * dataset-fashion-mnist: /usr/share/datasets/fashion-mnist); train=1 the 60k
 * training set, 0 the 10k test set (t10k-*). */
loom_status loom_dataset_load_mnist(loom_ctx *ctx, const char *dir, int train, loom_dataset **out);
#define LOOM_DEFAULT_DATA_DIR "/usr/share/datasets/fashion-mnist"
void loom_dataset_destroy(loom_dataset *ds);
int64_t loom_dataset_count(const loom_dataset *ds);
int64_t loom_dataset_features(const loom_dataset *ds);
/* max label + 1 (a subset or split keeps its parent's count) */
int loom_dataset_classes(const loom_dataset *ds);
const float *loom_dataset_images(const loom_dataset *ds);
const int32_t *loom_dataset_labels(const loom_dataset *ds);
/* Labels per row: 1, or the length of the sequence a model predicts one
 * label per position of (a language model's next tokens). */
int64_t loom_dataset_label_len(const loom_dataset *ds);
/* A data set of n rows from host arrays (copied): x [n, features] and y
 * [n, label_len] (labels >= 0; the class count is the largest + 1). */
loom_status loom_dataset_create(loom_ctx *ctx, int64_t n, int64_t features, const float *x, int64_t label_len,
                                const int32_t *y, loom_dataset **out);
/* STANDARD computes mean/std over ds unless stats (mean, std) are given (to
 * apply training stats to test data); returns them in stats_out if
 * non-NULL. A data set is scaled once: a second call is LOOM_E_STATE. */
loom_status loom_dataset_scale(loom_dataset *ds, loom_scaling how, const float *stats_in, float *stats_out);
/* New datasets sharing nothing with ds: rows [start, start+count). */
loom_status loom_dataset_subset(const loom_dataset *ds, int64_t start, int64_t count, loom_dataset **out);
/* Keras validation_split: the LAST `fraction` of rows become validation
 * (before any shuffling); train keeps int(n * (1 - fraction)) rows, the
 * float's rounding (0.1f) never moving the boundary. 0 <= fraction < 1. */
loom_status loom_dataset_split(const loom_dataset *ds, float fraction, loom_dataset **train, loom_dataset **val);
/* Seeded permutation of [0, n) for an epoch: the same (seed, epoch) gives
 * the same order on every machine. */
loom_status loom_dataset_shuffle(const loom_dataset *ds, uint64_t seed, int64_t epoch, int64_t *order);
/* Copies rows order[0..n) into x [n, features] and y [n, label_len]
 * (either may be NULL); the caller handles the last partial batch by
 * passing a smaller n. */
loom_status loom_dataset_gather(const loom_dataset *ds, const int64_t *order, int64_t n, float *x, int32_t *y);

/* safetensors: an 8-byte little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets}, "__metadata__": {string: string}},
 * then raw little-endian data. */
typedef struct loom_tensor_file loom_tensor_file;
/* Reads and validates the whole file into memory (truncated file, bad or
 * oversized header, unknown dtype, shape/byte-count mismatch, offsets past
 * the end or overlapping -> LOOM_E_FORMAT naming the file and what is wrong;
 * missing file -> LOOM_E_IO). */
loom_status loom_safetensors_open(loom_ctx *ctx, const char *path, loom_tensor_file **out);
void loom_safetensors_close(loom_tensor_file *f);
const char *loom_safetensors_metadata(const loom_tensor_file *f, const char *key); /* NULL if absent */
int loom_safetensors_count(const loom_tensor_file *f);
/* The i-th tensor in file order; data points into the file's memory (valid
 * until close) and is aligned to the element size when the file's offsets
 * are (always so for files loom writes). */
loom_status loom_safetensors_tensor(const loom_tensor_file *f, int i, const char **name, loom_dtype *dt, int *ndim,
                                    int64_t shape[LOOM_MAX_DIMS], const void **data);
/* Writes every tensor of the file into st. All-or-nothing: first checks
 * that every tensor that already exists in st has the same dtype and shape
 * (else LOOM_E_FORMAT naming tensor and both shapes, and st is unchanged),
 * then writes. */
loom_status loom_safetensors_to_state(const loom_tensor_file *f, loom_state *st);
/* Saves every tensor of st plus metadata pairs meta[0]=key0,
 * meta[1]=value0, ... NULL-terminated (meta may be NULL), through a
 * temporary name and a rename. prefix != NULL: only names that start with it. */
loom_status loom_safetensors_save(loom_state *st, const char *path, const char *const *meta, const char *prefix);

/* ---- ONNX models (src/nn/onnx*.c) ---- */

/*
 * An ONNX model becomes a loom graph: every graph input a loom_input of
 * its name (static shapes; symbolic dimensions get their values from the
 * options), every graph output a loom_output of its name, every
 * initializer that is used as data a loom_param in the state (named
 * prefix + its name). Nodes map through one table (ONNX op type and
 * opset range -> a builder on this API); shape arithmetic (Shape, Gather,
 * Concat, Unsqueeze, Constant, ConstantOfShape, ... of values known at
 * load) is folded. Opsets 13 to LOOM_ONNX_MAX_OPSET of the default domain.
 * Built when protobuf-c was found; otherwise every call answers
 * LOOM_E_UNSUPPORTED.
 */
#define LOOM_ONNX_MIN_OPSET 13
#define LOOM_ONNX_MAX_OPSET 27
/* The rank of an ONNX tensor this API reads (loom's graphs hold 4). */
#define LOOM_ONNX_MAX_RANK 8

/* ONNX element types, numbered as TensorProto.DataType numbers them. */
typedef enum loom_onnx_type {
    LOOM_ONNX_UNDEFINED = 0,
    LOOM_ONNX_FLOAT = 1,
    LOOM_ONNX_UINT8 = 2,
    LOOM_ONNX_INT8 = 3,
    LOOM_ONNX_UINT16 = 4,
    LOOM_ONNX_INT16 = 5,
    LOOM_ONNX_INT32 = 6,
    LOOM_ONNX_INT64 = 7,
    LOOM_ONNX_STRING = 8,
    LOOM_ONNX_BOOL = 9,
    LOOM_ONNX_FLOAT16 = 10,
    LOOM_ONNX_DOUBLE = 11,
    LOOM_ONNX_UINT32 = 12,
    LOOM_ONNX_UINT64 = 13,
    LOOM_ONNX_BFLOAT16 = 16
} loom_onnx_type;

/* 1 when loom's ONNX op table maps op_type (of the default domain) at
 * that opset; whether a given node imports also depends on its
 * attributes, element types and shapes. */
int loom_onnx_supports(const char *op_type, int64_t opset);
/* "float", "int64", ...; "unknown" for a number loom does not know. */
const char *loom_onnx_type_name(int type);
/* The dtype loom holds values of an ONNX type in: f32 for float and
 * double (computed in f32), f16, bf16, i32 for every integer type (values
 * outside i32 are refused when they are read), f32 masks (0 / 1) for
 * bool; LOOM_DTYPE_COUNT when loom holds none (strings, float8, ...). */
loom_dtype loom_onnx_dtype(int type);
/* count values of ONNX type `type` (host order, bool one byte each) into
 * loom dtype dt, or back. Integers outside i32 and non-integral values
 * into an integer type are LOOM_E_RANGE naming the index. */
loom_status loom_onnx_to_dtype(loom_ctx *ctx, int type, const void *src, size_t count, loom_dtype dt, void *dst);
loom_status loom_onnx_from_dtype(loom_ctx *ctx, loom_dtype dt, const void *src, size_t count, int type, void *dst);

typedef struct loom_onnx_dim {
    const char *name;          /* a symbolic dimension (dim_param), "batch" */
    int64_t value;             /* >= 1 */
} loom_onnx_dim;

/* A graph input's shape chosen by the caller (over the model's). */
typedef struct loom_onnx_shape {
    const char *name;
    int ndim;
    int64_t shape[LOOM_MAX_DIMS];
} loom_onnx_shape;

typedef struct loom_onnx_tensor loom_onnx_tensor;

typedef struct loom_onnx_opts {
    int64_t batch;             /* every symbolic or unknown dimension not
                                  named in dims (default 1) */
    const loom_onnx_dim *dims; /* values of named symbolic dimensions */
    int ndims;
    const loom_onnx_shape *shapes; /* whole input shapes (may be NULL) */
    int nshapes;
    const char *prefix;        /* of the state tensors' names ("" default) */
    const char *base_dir;      /* where external data files are: default
                                  the model's folder; from memory, NULL
                                  refuses external data */
    int trainable;             /* f32 initializers become trainable params */
    const loom_onnx_tensor *values; /* graph inputs given their values at
                                  load: they become constants (the axes,
                                  shapes, pads, k an op needs at load), not
                                  inputs of the graph */
    int nvalues;
    int node_only;             /* >= 0: the graph of that node alone (in
                                  the model's topological order), its
                                  computed inputs turned into graph inputs
                                  of the shapes the whole model gives them
                                  (to ask which device runs it); -1 all */
} loom_onnx_opts;

void loom_onnx_opts_default(loom_onnx_opts *opts);

/* A graph input or output as loom holds it. */
typedef struct loom_onnx_value {
    const char *name;
    int type;                  /* the model's loom_onnx_type */
    loom_dtype dtype;          /* what loom_program_set_input takes and
                                  loom_program_read gives */
    int ndim;
    int64_t shape[LOOM_MAX_DIMS];
    int used;                  /* inputs: 0 when no computed output depends
                                  on it (only its shape is used, or
                                  nothing): a program compiled from the
                                  graph has no such input then */
} loom_onnx_value;

typedef struct loom_onnx_node {
    const char *name;          /* the node's name, or "<op_type>_<index>" */
    const char *op_type;
    const char *domain;        /* "" for the default domain */
    int first, count;          /* the loom nodes it became: ids first ..
                                  first + count - 1; 0 when folded at load */
} loom_onnx_node;

typedef struct loom_onnx_info {
    int64_t ir_version;
    int64_t opset;             /* of the default domain */
    const char *producer;      /* producer_name producer_version */
    int ninputs, noutputs, nnodes;
    loom_onnx_value *inputs, *outputs;
    loom_onnx_node *nodes;     /* in topological order */
    int nparams;               /* initializers that became state tensors */
    uint64_t param_bytes;
    loom_ctx *ctx;             /* whose allocator holds the arrays */
} loom_onnx_info;

/*
 * Reads the model at path and builds *graph from it, writing its
 * initializers into st (st may be NULL: they are read and checked, not
 * written; a later compile creates them zero-filled). opts may be NULL
 * (defaults); info may be NULL, else it is filled (loom_onnx_info_free).
 * All-or-nothing: on failure *graph is NULL and st is as it was.
 *   LOOM_E_UNSUPPORTED  an op type, opset, attribute (value), element type
 *                       or rank loom cannot run, naming the node, its op
 *                       type and the attribute or input;
 *   LOOM_E_FORMAT       a truncated or corrupt file (naming the field and
 *                       byte offset), an initializer shorter than its shape,
 *                       a cycle, an input no node, initializer or graph
 *                       input defines, a name defined twice;
 *   LOOM_E_SHAPE        shapes a node cannot take (as the op says);
 *   LOOM_E_IO           the file (or an external data file) cannot be read.
 */
loom_status loom_onnx_load(loom_ctx *ctx, const char *path, loom_graph **graph, loom_state *st,
                           const loom_onnx_opts *opts, loom_onnx_info *info);
/* The same from bytes in memory (not kept after the call). */
loom_status loom_onnx_load_memory(loom_ctx *ctx, const void *data, size_t bytes, loom_graph **graph,
                                  loom_state *st, const loom_onnx_opts *opts, loom_onnx_info *info);
void loom_onnx_info_free(loom_onnx_info *info);

/* One serialized TensorProto (the .pb files of ONNX's test data), its
 * values in a host array of its own type (bool: one byte each; float16,
 * bfloat16: 16-bit words; double: 8 bytes). */
struct loom_onnx_tensor {
    char *name;
    int type;                  /* loom_onnx_type */
    int ndim;
    int64_t shape[LOOM_ONNX_MAX_RANK];
    uint64_t count;            /* elements (0 for an empty tensor) */
    void *data;                /* count * element size bytes */
    size_t bytes;
    loom_ctx *ctx;
};

/* LOOM_E_FORMAT for corrupt bytes or data shorter than the shape,
 * LOOM_E_UNSUPPORTED for strings and element types loom cannot hold.
 * base_dir: for external data (NULL refuses it). */
loom_status loom_onnx_tensor_read(loom_ctx *ctx, const void *data, size_t bytes, const char *base_dir,
                                  loom_onnx_tensor *out);
void loom_onnx_tensor_free(loom_onnx_tensor *t);
/* The element size of an ONNX type in host arrays (0 for none). */
size_t loom_onnx_type_size(int type);

/* Writes m (compiled or loaded) as an ONNX model of opset 17: input "x"
 * [batch, input_features] f32 with a symbolic batch dimension "batch",
 * output "y" (probabilities when the last layer is a softmax), the dense
 * layers as MatMul + Add (+ activation), weights as f32 initializers named
 * as the state names them. Through a temporary name and a rename. */
loom_status loom_onnx_save(loom_sequential *m, const char *path);

/* ---- profiling and metrics (src/core/profile.c) ---- */

/*
 * Profiling is chosen when a program is compiled: loom_compile_opts.profile
 * = 1 makes the backend record a device start/end timestamp per node (the
 * CPU clock, Vulkan timestamp queries, OpenCL event profiling), mapped onto
 * the host's CLOCK_MONOTONIC timeline. Each successful loom_program_run then
 * folds the run into per-node statistics. With profile = 0 (the default)
 * nothing is recorded and a run pays one branch.
 *
 * FLOPs and bytes come from shapes, not from counters: GEMM [M,K]x[K,N] is
 * 2*M*N*K FLOPs; element-wise ops count their arithmetic per output element
 * (a transcendental counts as one); bytes are every input read once plus the
 * output written once (updates: the parameter and moments written back).
 */

/* One executed node, aggregated over the profiled runs. */
typedef struct loom_profile_node {
    const char *name;          /* the node's tensor name */
    const char *op;            /* op name: "matmul", "add", "adam_update", ... */
    const char *shape;         /* output shape, "[64,10]" ("-" for updates) */
    int64_t count;             /* runs timed */
    double total_ns;           /* device time over those runs */
    double mean_ns, min_ns, max_ns;
    double last_start_ns;      /* last run, host CLOCK_MONOTONIC ns */
    double last_end_ns;
    double flops;              /* per run, from shapes */
    double bytes;              /* per run: read + written */
    double gflops;             /* achieved: flops * count / total_ns (0 if untimed) */
    double gbps;               /* achieved: bytes * count / total_ns */
} loom_profile_node;

typedef struct loom_profile_report {
    int enabled;               /* compiled with loom_compile_opts.profile = 1 */
    int timed;                 /* the backend supplied per-node timestamps */
    int64_t runs;              /* runs folded in since compile or reset */
    double wall_total_ns;      /* host time of loom_program_run's replay + wait */
    double wall_mean_ns, wall_min_ns, wall_max_ns, wall_last_ns;
    double last_start_ns;      /* start of the last run (CLOCK_MONOTONIC ns) */
    double device_total_ns;    /* sum of every node's device time */
    double busy_total_ns;      /* per run, the union of node intervals */
    double busy_pct;           /* 100 * busy_total / wall_total, in [0,100];
                                  -1 when untimed or no runs */
    double busy_last_pct;      /* the same for the last run */
    double flops_per_run, bytes_per_run;
    double gflops;             /* flops_per_run * runs / busy_total_ns */
    uint64_t state_bytes;      /* the state's tensors (weights, moments) */
    uint64_t arena_bytes;      /* the program's planned intermediates */
    uint64_t mem_bytes;        /* state + arena */
    int nnodes;                /* one entry per executed node */
    int dispatches;            /* kernel launches per run (a fused node is
                                  one; a node may take several) */
    const loom_profile_node *nodes; /* execution order; owned by the program,
                                  valid until it is destroyed; each run and
                                  reset update the values in place */
} loom_profile_report;

/* Works on any program; without opts.profile, enabled = 0, runs = 0 and
 * only the static figures (flops, bytes, memory) are filled. */
loom_status loom_profile_get(loom_program *p, loom_profile_report *out);
/* Forgets every run folded in so far. */
loom_status loom_profile_reset(loom_program *p);

/* Counters the vendor's own tools read, found at run time (dlopen of
 * libnvidia-ml.so.1, amdgpu sysfs files, /proc/self/fdinfo DRM clients);
 * never a build dependency. A counter the machine does not offer has its
 * *_present flag 0 and value 0: show it as absent, never as zero. */
typedef struct loom_vendor_counters {
    char source[96];           /* what answered, e.g. "nvml", "amdgpu sysfs
                                  card0 + fdinfo"; "" when nothing did */
    double sample_ns;          /* CLOCK_MONOTONIC when sampled */
    int util_present;          /* whole device, every process */
    double util_pct;
    int mem_used_present;      /* device memory in use, every process */
    uint64_t mem_used_bytes;
    int mem_total_present;
    uint64_t mem_total_bytes;
    int clock_present;         /* graphics / SM clock */
    double clock_mhz;
    int mem_clock_present;
    double mem_clock_mhz;
    int temp_present;
    double temp_c;
    int power_present;
    double power_w;
    int engine_present;        /* this process's engine busy time, summed
                                  over its DRM clients and engines (fdinfo) */
    double engine_busy_ns;     /* cumulative: rate = loom_vendor_engine_pct */
    int client_mem_present;    /* this process's device memory (fdinfo) */
    uint64_t client_mem_bytes;
} loom_vendor_counters;

/* LOOM_OK with every flag 0 on a device no vendor counter covers (the CPU
 * backend, lavapipe, PoCL); LOOM_E_INVALID on a bad handle. */
loom_status loom_vendor_counters_read(loom_device *dev, loom_vendor_counters *out);
/* Percent of the time between two samples this process kept the device's
 * engines busy, clamped to [0,100]; -1 when either sample lacks it. */
double loom_vendor_engine_pct(const loom_vendor_counters *prev, const loom_vendor_counters *cur);

/* Chrome-trace recorder (open the file in ui.perfetto.dev or
 * chrome://tracing). Each device is a process with one track for its
 * queue; on it, a slice per step encloses a slice per run, which encloses a
 * slice per node. Counters per device: busy %, memory, vendor utilization
 * (sampled at most ten times a second) and whatever loom_trace_counter adds.
 * Holds at most 1,000,000 node slices; later runs are counted as dropped. */
typedef struct loom_trace loom_trace;

loom_status loom_trace_create(loom_ctx *ctx, loom_trace **out);
void loom_trace_destroy(loom_trace *t);
/* Records the last run of p, which must be compiled with profile = 1
 * (LOOM_E_STATE otherwise). Runs given the same step >= 0 on one device
 * share an enclosing step slice; step < 0 gives none. label names the run
 * slice (NULL: "run"). */
loom_status loom_trace_add_run(loom_trace *t, loom_program *p, int64_t step, const char *label);
/* A counter sample ("loss", "samples/s") on dev's track, at the current
 * time. */
loom_status loom_trace_counter(loom_trace *t, loom_device *dev, const char *name, double value);
/* Writes everything recorded so far, through a temporary file and a rename
 * (a reader never sees half a trace); may be called again later. */
loom_status loom_trace_write(loom_trace *t, const char *path);

/* A metrics stream: one JSON object per line, appended as training goes,
 * which another process (loom-dash --follow) reads while it grows. The
 * schema is documented in src/core/profile.c and tools/dash/README.md:
 * a "header" line (device), then "step", "ops", "plan" lines, and "end". */
typedef struct loom_metrics loom_metrics;

/* One "step" line. Fields left at their loom_metrics_line_init value are
 * written as null (absent), never as zero. */
typedef struct loom_metrics_line {
    int64_t step;              /* -1: absent */
    int64_t epoch;             /* -1: absent */
    double loss, accuracy;     /* NAN: absent (accuracy in [0,1]) */
    double val_loss, val_accuracy;
    double lr;
    double samples_per_s;
    double step_ms;            /* wall time of one step */
    double busy_pct;           /* ours: union of node intervals / wall */
    double vendor_util_pct;    /* the vendor's whole-device utilization */
    double engine_pct;         /* fdinfo: this process's engine busy % */
    double mem_bytes;          /* state + arena (+ staging when reported) */
    double state_bytes, arena_bytes;
    double vendor_mem_used_bytes;
    double loss_scale;         /* dynamic loss scaling: the scale now */
    double skipped_steps;      /* steps skipped for a non-finite gradient */
} loom_metrics_line;

/* Every field absent. */
void loom_metrics_line_init(loom_metrics_line *line);
/* Creates (truncates) path and writes the header line describing dev (dev
 * may be NULL: no device in the header). */
loom_status loom_metrics_open(loom_ctx *ctx, const char *path, loom_device *dev, loom_metrics **out);
/* Fills the device fields of line from p (which may be NULL) and the
 * vendor counters: busy_pct and step_ms over the profiled runs since the
 * previous sample of this stream, memory, vendor utilization and memory,
 * per-process engine %. Fields the caller owns (step, loss, ...) are kept. */
loom_status loom_metrics_sample(loom_metrics *m, loom_program *p, loom_metrics_line *line);
/* Appends a "step" line (one write(2), so a follower sees whole lines). */
loom_status loom_metrics_write(loom_metrics *m, const loom_metrics_line *line);
/* Appends an "ops" line: p's per-node profile, the 32 largest by device
 * time. LOOM_E_STATE if p is not profiled. */
loom_status loom_metrics_write_ops(loom_metrics *m, loom_program *p, int64_t step);
/* Appends a "plan" line: p's planner report with its live-bytes timeline. */
loom_status loom_metrics_write_plan(loom_metrics *m, loom_program *p, const char *label);
/* Appends an "end" line and closes; m may be NULL. */
loom_status loom_metrics_close(loom_metrics *m);

/* ---- sequence models (src/core/ops_seq.c) ------------------------------- */

/* loom_matmul over batches: operands of rank 2 to 4, [..., M, K] x
 * [..., K, N], whose batch dims (all but the last two) broadcast as numpy
 * does, the transposes acting on the last two dims. [..., M, K] x [K, N]
 * (no transpose of the left side) runs as one GEMM over every row. */

/* Normalization over the last axis C (statistics in f32): layer norm
 * (x - mean) / sqrt(var + eps) * gamma + beta and RMS norm
 * x / sqrt(mean(x^2) + eps) * gamma. gamma and beta are [C], or LOOM_NONE
 * for none. */
loom_tensor loom_layer_norm(loom_graph *g, loom_tensor x, loom_tensor gamma, loom_tensor beta, float eps);
loom_tensor loom_rms_norm(loom_graph *g, loom_tensor x, loom_tensor gamma, float eps);

/* numpy's take: the slices of x along axis picked by i32 indices of any
 * shape, which replace that axis (x [V, D] and ids [B, T] give [B, T, D]).
 * Indices from an input or a constant are checked on the host: one outside
 * [0, V) is LOOM_E_RANGE from loom_program_set_input (loom_compile for a
 * constant) naming it; from anywhere else a kernel gives NaN. The
 * gradient sums the rows of every index (a deterministic scatter-add). */
loom_tensor loom_take(loom_graph *g, loom_tensor x, loom_tensor idx, int axis);
/* Rows of table [rows, dim] by ids: loom_take(g, table, ids, 0). */
loom_tensor loom_embedding(loom_graph *g, loom_tensor table, loom_tensor ids);
/* torch.gather: idx (i32, x's rank, no dim larger than x's off the axis);
 * out (idx's shape) at p = x at p with its axis coordinate set to idx[p]. */
loom_tensor loom_gather(loom_graph *g, loom_tensor x, int axis, loom_tensor idx);
/* torch.scatter_add: base plus src (idx's shape) added at the positions
 * gather would read, summed in a fixed order (no atomics). Indices are
 * checked as take's. */
loom_tensor loom_scatter_add(loom_graph *g, loom_tensor base, int axis, loom_tensor idx, loom_tensor src);

/* Rotary position embedding: the last axis D (even) rotated in half-split
 * pairs (x[i], x[i + D/2]) by pos * base^(-2i/D), pos the coordinate along
 * axis (2 for [B, H, N, D]). base: 10000 in most models. */
loom_tensor loom_rope(loom_graph *g, loom_tensor x, int axis, float base);
/* silu(gate) * up: the gated unit of a SwiGLU feed-forward block. */
loom_tensor loom_swiglu(loom_graph *g, loom_tensor gate, loom_tensor up);

typedef enum loom_layout {
    LOOM_LAYOUT_BHND = 0,      /* [batch, heads, sequence, head size] */
    LOOM_LAYOUT_BNHD = 1       /* [batch, sequence, heads, head size]: a
                                  projection's [B, N, H*D] reshaped, no transpose */
} loom_layout;

typedef struct loom_attention_opts {
    int causal;                /* query i sees keys j <= i + Nk - Nq */
    float scale;               /* of the scores; 0: 1 / sqrt(head size) */
    loom_layout layout;        /* of q, k, v and the result */
} loom_attention_opts;

loom_attention_opts loom_attention_opts_default(void);
/* softmax(scale q k^T + mask) v, fused: q [B, Hq, Nq, D], k and v
 * [B, Hkv, Nk, D] with Hq a multiple of Hkv (multi-head, grouped-query,
 * multi-query), D <= 256, mask an additive float tensor that broadcasts to
 * [B, Hq, Nq, Nk] (0 where a key is seen, -inf where not: padding masks are
 * [B, 1, 1, Nk]) or LOOM_NONE. The scores are computed in tiles with a
 * running max and sum (flash attention): never stored whole, forward or
 * backward (which recomputes them). A query that sees no key gives 0. The
 * mask takes no gradient. opts NULL: the defaults. */
loom_tensor loom_attention(loom_graph *g, loom_tensor q, loom_tensor k, loom_tensor v, loom_tensor mask,
                           const loom_attention_opts *opts);
/* The same from batched matmuls, a softmax and the masks as tensors (the
 * scores [B, Hq, Nq, Nk] are a tensor of the graph): the reference the
 * fused op is tested against. A query that sees no key gives NaN. */
loom_tensor loom_attention_reference(loom_graph *g, loom_tensor q, loom_tensor k, loom_tensor v, loom_tensor mask,
                                     const loom_attention_opts *opts);

/* ---- int8 quantized inference (src/core/ops_quant.c, src/nn/quantize.c) --
 * Real values r and int8 values q relate by r = (q - zero) scale. The
 * quantization parameters of a tensor are a tensor qp, f32 [2, C]: row 0
 * the scales (> 0), row 1 the zero points (whole numbers in [-128, 127]);
 * one pair per channel along axis (C = that dim of the tensor: weights,
 * per output channel), or one for the whole tensor (axis -1, C = 1:
 * activations). Inference only: these ops have no gradient. */

/* x (f32) -> i8: saturate(round_half_even(x / scale) + zero) to [-128, 127]. */
loom_tensor loom_quantize(loom_graph *g, loom_tensor x, loom_tensor qp, int axis);
/* q (i8) -> f32: (q - zero) scale. */
loom_tensor loom_dequantize(loom_graph *g, loom_tensor q, loom_tensor qp, int axis);

/* The epilogue of the int8 GEMM and convolution: acc (i32) = the integer
 * dot product + bias[n]; t = (float)acc * mult[n] (one f32 multiply, so
 * every backend gives the same bits); then
 *   out LOOM_F32: act(t) (a dequantized output: mult = in_scale w_scale[n]
 *                 and bias = round(real bias / mult) - in_zero sum_k w[n, k]);
 *   out LOOM_I8:  saturate(round_half_even(t) + out_zero), with act relu at
 *                 least out_zero (mult = in_scale w_scale[n] / out_scale).
 * act: LOOM_ACT_NONE or LOOM_ACT_RELU (other activations follow as ops). */
typedef struct loom_qgemm_opts {
    loom_dtype out;           /* LOOM_F32 or LOOM_I8 */
    int out_zero;             /* i8 out: the output's zero point */
    int in_zero;              /* qconv2d: the input's zero point, the padding's value */
    int act;                  /* a loom_activation */
} loom_qgemm_opts;

/* Defaults: f32 out, zero points 0, no activation. */
loom_qgemm_opts loom_qgemm_opts_default(void);
/* a i8 [M, K] x w i8 [N, K] (one row per output channel; the transpose
 * of loom_matmul's [K, N]), bias i32 [N], mult f32 [N] -> [M, N]. */
loom_tensor loom_qmatmul(loom_graph *g, loom_tensor a, loom_tensor w, loom_tensor bias, loom_tensor mult,
                         const loom_qgemm_opts *o);
/* x i8 [N, C, H, W] * w i8 [OC, C / groups, KH, KW], bias i32 [OC], mult
 * f32 [OC] -> [N, OC, OH, OW] (conv2d's geometry; co NULL: its defaults). */
loom_tensor loom_qconv2d(loom_graph *g, loom_tensor x, loom_tensor w, loom_tensor bias, loom_tensor mult,
                         const loom_conv2d_opts *co, const loom_qgemm_opts *o);

/* The host's rounding, the kernels' bit for bit: round_half_even(x / scale)
 * + zero, saturated to [-128, 127]. */
int8_t loom_quantize_value(float x, float scale, int zero);

/* Calibration: how the range of an activation is chosen from a histogram
 * of its absolute values over LOOM_CALIB_BINS bins of [0, absmax]. */
#define LOOM_CALIB_BINS 2048
typedef enum loom_calib_method {
    LOOM_CALIB_MINMAX = 0,    /* the largest value seen */
    LOOM_CALIB_PERCENTILE = 1,/* the percentile of |x| (99.99 by default) */
    LOOM_CALIB_KL = 2         /* the threshold whose 128-level quantized
                                 distribution is nearest (KL divergence) to the
                                 clipped one (TensorRT's scheme) */
} loom_calib_method;

typedef struct loom_calib_hist {
    double absmax;            /* the range of the bins */
    double min, max;          /* the values seen */
    uint64_t count;
    uint64_t bins[LOOM_CALIB_BINS];
} loom_calib_hist;

/* The method's name ("minmax", "percentile", "kl") and back (-1: unknown). */
const char *loom_calib_method_name(loom_calib_method m);
int loom_calib_method_by_name(const char *name);
/* Adds n values to h, whose absmax is set (> 0) before the first call;
 * values beyond it count in the last bin. */
void loom_calib_hist_add(loom_calib_hist *h, const float *x, size_t n);
/* The clipping threshold (> 0) of h by method m; percentile in (0, 100]
 * (0: 99.99) for LOOM_CALIB_PERCENTILE. LOOM_E_INVALID for an empty
 * histogram or a bad method. */
loom_status loom_calib_threshold(loom_ctx *ctx, const loom_calib_hist *h, loom_calib_method m, double percentile,
                                 double *threshold);
/* The KL step alone over any histogram: the number of bins i in
 * [levels, nbins] whose clipped distribution (the tail folded into bin
 * i - 1) is nearest to its quantization into levels levels; 0 if the
 * histogram is empty. */
int loom_calib_kl_bins(const uint64_t *bins, int nbins, int levels);

/* Post-training quantization of a trained f32 Sequential model. */
typedef struct loom_quant_opts {
    loom_calib_method method;
    double percentile;        /* LOOM_CALIB_PERCENTILE: 0 is 99.99 */
    int64_t samples;          /* calibration rows from the start of the data (0: 1000) */
    /* A layer whose quantization alone loses more than this many points
     * of accuracy on the calibration sample stays f32 (negative: every
     * dense and conv2d layer is quantized). */
    double max_drop;
} loom_quant_opts;

loom_quant_opts loom_quant_opts_default(void);

typedef struct loom_quant_layer {
    int layer;                /* index among the model's layers */
    char scope[32];           /* "conv0", "dense1" */
    int int8;                 /* 1: quantized; 0: kept f32 */
    double drop;              /* accuracy points lost by quantizing it alone */
    float in_scale;           /* its input's quantization */
    int in_zero;
} loom_quant_layer;

typedef struct loom_quant_report {
    int nlayers;
    loom_quant_layer layers[64];
    double calib_acc_f32;     /* on the calibration sample */
    double calib_acc_int8;
} loom_quant_report;

/* A new model (*out, compiled on dev) whose dense and conv2d layers run as
 * int8 ops, calibrated on calib (scaled as m's training data), with the
 * choices in *report (may be NULL). The quantized model is inference only
 * (loom_sequential_fit refuses it); loom_sequential_save writes it with
 * i8 weights and f32 scales, loom_sequential_load reads it back. */
loom_status loom_sequential_quantize(loom_sequential *m, loom_dataset *calib, loom_device *dev,
                                     const loom_quant_opts *opts, loom_sequential **out, loom_quant_report *report);
/* 1 if m runs int8 layers. */
int loom_sequential_is_quantized(const loom_sequential *m);

#if defined(__GNUC__) && !defined(LOOM_STATIC_ONLY)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif /* LOOM_H */
