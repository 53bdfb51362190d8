/*
 * The Vulkan backend's internals, shared by its files:
 *   vk_backend.c  instance, validation messenger, devices, the ops table
 *   vk_memory.c   large blocks by lifetime, sub-allocation, transfers
 *   vk_pipeline.c pipelines per (shader, variant), the on-disk cache
 *   vk_kernels.c  each op as dispatches: shader, bindings, push constants
 *   vk_program.c  prepare (descriptor sets, barriers, the recording), run
 *   vk_tune.c     per-device choices measured once and cached as JSON
 *   vk_custom.c   users' GLSL kernels, compiled with libshaderc
 */
#ifndef LOOM_VK_INTERNAL_H
#define LOOM_VK_INTERNAL_H

#include "../../core/backend.h"
#include "../../common/suballoc.h"
#include "push.h"

#include <vulkan/vulkan.h>

/* Limits and properties read once per physical device. */
typedef struct vk_limits {
    uint32_t vendor_id, device_id, driver_version;
    uint8_t cache_uuid[VK_UUID_SIZE];   /* pipelineCacheUUID */
    uint64_t max_storage_range;         /* maxStorageBufferRange */
    uint64_t max_alloc_bytes;           /* maxMemoryAllocationSize */
    uint64_t max_buffer_bytes;          /* largest VkBuffer (maintenance4) */
    uint32_t max_alloc_count;           /* maxMemoryAllocationCount */
    uint64_t storage_align;             /* minStorageBufferOffsetAlignment */
    uint64_t texel_align;               /* minTexelBufferOffsetAlignment */
    uint64_t max_texel_elements;        /* maxTexelBufferElements */
    uint32_t max_groups[3];             /* maxComputeWorkGroupCount */
    uint32_t max_push;                  /* maxPushConstantsSize */
    uint32_t max_storage_per_stage;     /* maxPerStageDescriptorStorageBuffers */
    float timestamp_period;             /* ns per tick */
    int storage16;                      /* storageBuffer16BitAccess */
    int storage8;                       /* storageBuffer8BitAccess and shaderInt8: i8 tensors */
    int int8_dot;                       /* VK_KHR_shader_integer_dot_product: OpSDot in qmatmul */
    int int8_dot_fast;                  /* ... and 4x8-bit packed signed dots are accelerated */
    int texel_r32f;                     /* R32_SFLOAT uniform texel buffers work */
    int image_r32f;                     /* R32_SFLOAT storage texel buffers work */
    int calibrated;                     /* VK_EXT_calibrated_timestamps with CLOCK_MONOTONIC */
    uint32_t queue_family;              /* the compute queue chosen */
    uint32_t timestamp_bits;            /* its timestampValidBits */
    int cpu_type;                       /* VK_PHYSICAL_DEVICE_TYPE_CPU */
    uint32_t loop_budget;               /* loop iterations an invocation runs
                                           before the driver cuts its loops
                                           short, all loops together (llvmpipe:
                                           65535, silently); 0: no limit */
} vk_limits;

typedef struct vk_state {
    loom_ctx *ctx;
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    uint32_t ndev;
    VkPhysicalDevice *phys;
    loom_device_info *info;
    vk_limits *lim;
} vk_state;

/* ---- memory ------------------------------------------------------------- */

/* One VkDeviceMemory with one VkBuffer over all of it; tensors are ranges. */
typedef struct vk_block {
    VkDeviceMemory mem;
    VkBuffer buf;
    uint64_t size;
    unsigned char *map;         /* persistent mapping, NULL if not host-visible */
    loom_lifetime life;
    loom_suballoc sa;           /* the ranges handed out as tensors */
    struct vk_block *next;
} vk_block;

/* What buffer_alloc hands to core. */
typedef struct vk_buf {
    vk_block *block;
    uint64_t offset;            /* within the block */
    uint64_t size;
} vk_buf;

#define VK_LIFETIMES 3

/* ---- pipelines ---------------------------------------------------------- */

#define VK_MAX_BINDINGS 10
#define VK_MAX_SPEC 3

/* A shader variant as the C side sees it: its code, its bindings (S: storage
 * buffer, T: uniform texel buffer, I: storage texel buffer), its
 * push-constant size, its workgroup. */
typedef struct vk_shader {
    const char *name;
    const uint32_t *code;
    const size_t *words;
    const char *kinds;
    uint32_t push_size;
    uint32_t wg[2];             /* local size x, y (for grid arithmetic) */
} vk_shader;

typedef struct vk_pipe {
    vk_shader sh;               /* a copy: built-in variants are looked up per use */
    uint32_t spec[VK_MAX_SPEC];
    VkDescriptorSetLayout dsl;
    VkPipelineLayout layout;
    VkPipeline pipe;
    int warm;                   /* one dispatch done (lavapipe JITs there) */
} vk_pipe;

/* ---- the device --------------------------------------------------------- */

enum {
    VK_QUIRK_TEXEL_READS = 1u << 0,   /* fetch GEMM operands through texel
                                         buffers: storage-buffer reads are
                                         scalarized (measured, vk_tune.c) */
    VK_QUIRK_SLOW_BARRIERS = 1u << 1, /* a workgroup barrier is a switch
                                         between emulated invocations (CPU
                                         drivers): reduce per invocation */
};

typedef struct vk_copy {
    VkBuffer dst;
    VkBufferCopy region;        /* from the upload buffer */
} vk_copy;

typedef struct vk_dev {
    loom_ctx *ctx;
    vk_state *s;
    int index;
    const loom_device_info *info;
    const vk_limits *lim;
    VkPhysicalDevice phys;
    VkDevice dev;
    VkQueue queue;
    VkCommandPool cmd_pool;
    VkFence fence;
    int inflight;               /* a submit not yet waited for (d->fence) */
    struct vk_read *reads;      /* vk_buffer_read_async: copied at the fence */
    int nreads, capreads;
    char inflight_what[160];
    int lost;                   /* VK_ERROR_DEVICE_LOST seen */
    unsigned quirks;
    PFN_vkGetCalibratedTimestampsEXT get_calibrated;

    /* memory */
    uint32_t mem_type[VK_LIFETIMES];
    int mapped[VK_LIFETIMES];   /* the lifetime's memory is host-visible */
    vk_block *blocks[VK_LIFETIMES];
    uint32_t nallocs;
    uint64_t align;
    vk_buf *staging;            /* transfer space when memory is not mapped */
    /* Writes to unmapped memory wait in `upload` until the next submit,
     * which copies them first: a training step's batch goes up in the
     * step's own submit. */
    vk_buf *upload;
    uint64_t upload_used;
    vk_copy *copies;
    int ncopies, capcopies;
    VkCommandBuffer upload_cb;
    vk_buf *scratch;            /* bound to unused bindings and warm-ups */
    VkBufferView scratch_view;

    /* pipelines */
    vk_pipe **pipes;
    int npipes, cappipes;
    VkPipelineCache pcache;
    int pcache_dirty;
    struct vk_custom **customs; /* compiled custom kernels (vk_custom.c) */
    int ncustom, capcustom;
    char pcache_path[600];
} vk_dev;

/* ---- programs ----------------------------------------------------------- */

enum { VK_READ = 1, VK_WRITE = 2 };

typedef struct vk_bind {
    VkBuffer buf;
    uint64_t offset, range;
    int texel;                  /* floats per texel of a T or I binding's view (1 or 4) */
    int access;                 /* VK_READ | VK_WRITE, 0: unused binding */
    int table;                  /* with buf VK_NULL_HANDLE: 1 the program's table,
                                   0 the run slots (both bound at prepare) */
} vk_bind;

typedef struct vk_dispatch {
    vk_pipe *pipe;
    int nbind;
    vk_bind bind[VK_MAX_BINDINGS];
    uint32_t push_size;
    unsigned char push[128];
    uint32_t groups[3];
    VkDescriptorSet set;
    int node;                   /* exec node index */
} vk_dispatch;

typedef struct vk_prog {
    vk_dev *d;
    const loom_exec_program *prog;
    vk_dispatch *disp;
    int ndisp, capdisp;
    vk_buf *runbuf;             /* prog->nslots loom_run_slot, host-visible, then
                                   the table */
    uint32_t *table;            /* words the kernels read (multi-tensor updates'
                                   entries), written once at prepare */
    uint32_t ntable, captable;
    VkDescriptorPool pool;
    VkBufferView *views;
    int nviews, capviews;
    VkCommandBuffer cb;
    VkQueryPool qpool;          /* 2 per node when profiling */
    double *t0, *t1;
    int have_times;
    int nbarriers;              /* recorded between dispatches */
} vk_prog;

/* ---- vk_backend.c ------------------------------------------------------- */

/* Turns a VkResult into a loom_status with a message naming the call, the
 * device and what was being done; DEVICE_LOST marks the device. */
loom_status vk_fail(vk_dev *d, VkResult r, const char *call, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
const char *vk_result_str(VkResult r);
/* Submits the pending uploads (vk_memory.c), then cb (may be
 * VK_NULL_HANDLE), and waits for both. */
loom_status vk_submit_wait(vk_dev *d, VkCommandBuffer cb, const char *what);
/* The same without the wait: the device's fence is in flight until
 * vk_drain, which every other use of the device calls first. */
loom_status vk_submit_nowait(vk_dev *d, VkCommandBuffer cb, const char *what);
loom_status vk_drain(vk_dev *d);
loom_status vk_begin_oneoff(vk_dev *d, VkCommandBuffer *cb, const char *what);
void vk_end_oneoff(vk_dev *d, VkCommandBuffer cb);

/* ---- vk_memory.c -------------------------------------------------------- */

loom_status vk_memory_init(vk_dev *d);
void vk_memory_shutdown(vk_dev *d);
loom_status vk_buffer_alloc(void *bdev, uint64_t bytes, loom_lifetime life, void **buf);
void vk_buffer_free(void *bdev, void *buf);
loom_status vk_buffer_write(void *bdev, void *buf, uint64_t offset, const void *src, uint64_t bytes);
loom_status vk_buffer_read(void *bdev, void *buf, uint64_t offset, void *dst, uint64_t bytes);
typedef struct vk_read {
    void *dst;
    const void *src;
    size_t bytes;
} vk_read;
loom_status vk_buffer_read_async(void *bdev, void *buf, uint64_t offset, void *dst, uint64_t bytes);
void vk_reads_done(vk_dev *d);
/* Host pointer of a mapped buffer (NULL if its memory is not mapped). */
void *vk_buffer_map(const vk_buf *b);
/* Gives the driver back every empty state and arena block. */
void vk_memory_trim(vk_dev *d);
/* Records the pending uploads into d->upload_cb; 0 if there are none. */
loom_status vk_record_uploads(vk_dev *d, int *any);
void vk_uploads_done(vk_dev *d);

/* ---- vk_pipeline.c ------------------------------------------------------ */

/* The descriptor type of a binding kind letter of vk_shader.kinds. */
VkDescriptorType vk_kind_type(char kind);

void vk_pcache_load(vk_dev *d);
void vk_pcache_save(vk_dev *d);
/* The pipeline of (shader, spec constants), created on first use. */
loom_status vk_pipe_get(vk_dev *d, const vk_shader *sh, const uint32_t spec[VK_MAX_SPEC], vk_pipe **out);
void vk_pipes_destroy(vk_dev *d);
/* One dispatch of every pipeline not yet warm, on the scratch buffer with
 * zero push constants (every kernel then does nothing). */
loom_status vk_pipes_warm(vk_dev *d);
/* mkdir -p of the cache folder; 0 on success. */
int vk_mkdirs(const char *path);

/* ---- vk_kernels.c ------------------------------------------------------- */

/* The GEMM kernels, for tuning: the storage-buffer tiled one (f32) and the
 * texel one by read path of A and of B (gemm_texel.comp). */
loom_status vk_gemm_shader(int texel_a, int texel_b, vk_shader *out);
/* 1 if the backend can run this node on this device. */
int vk_supports(void *bdev, const loom_exec_node *x);
/* 1 if the backend carries a kernel for op in dtype (vk_kernels.c). */
int vk_has_kernel(loom_op op, loom_dtype dt);
/* Appends the dispatches of one node to the program. */
loom_status vk_plan_node(vk_prog *p, const loom_exec_node *x);
/* A new dispatch slot at the end of the program (pipe and grid unset). */
loom_status vk_add_dispatch(vk_prog *p, int node, vk_dispatch **out);
/* A copy of *dx (its bindings, grid and pipeline) at the end of the
 * program, *dx then pointing at it (the list may move): the next part of
 * a sum the driver's loop budget splits over dispatches. */
loom_status vk_repeat_dispatch(vk_prog *p, vk_dispatch **dx);

/* A sum too long for one invocation (the driver's loop budget) in parts
 * of part passes over [0, total), a dispatch each: dx, planted with its
 * pipeline and push constants, is repeated for every part after the first
 * with binding out read as well as written (each part adds onto what the
 * earlier ones wrote). at is the byte offset in the push constants of
 * three consecutive u32 that every such kernel has: the part's first pass,
 * its end, and whether to add onto the output. part 0: one dispatch (an
 * empty sum, or one with no budget to split for). */
loom_status vk_split_dispatch(vk_prog *p, vk_dispatch *dx, int out, size_t at, uint64_t total, uint64_t part);

/* The driver's loop budget (vk_limits.loop_budget): the loop passes one
 * invocation may make, all its loops together, less a margin (UINT64_MAX
 * where there is no limit); whether `passes` fit; and the refusal naming
 * the op, its shape, the device and the budget where they do not. A
 * planner counts its kernel's passes and picks a variant or a split that
 * fits, refusing only where none does. */
uint64_t vk_loop_room(const vk_dev *d);
int vk_loops_fit(const vk_dev *d, uint64_t passes);
loom_status vk_check_loops(vk_prog *p, const loom_node *nd, uint64_t passes);
/* Row-wise kernels (softmax, norm.comp): *pt 1 for an invocation per row,
 * 0 for a workgroup per row, by the rows' shape and the loop budget; a
 * row's kernel walks it `walks` times with `wgcalls` workgroup sums. */
loom_status vk_rows_variant(vk_prog *p, const loom_node *nd, uint32_t rows, uint32_t cols, uint32_t walks,
                            uint32_t wgcalls, uint32_t *pt);

/* ---- vk_conv.c ---------------------------------------------------------- */

/* The dispatches of convolutional networks' op families. */
loom_status vk_plan_conv(vk_prog *p, const loom_exec_node *x);
/* int8 inference (vk_quant.c) */
loom_status vk_plan_quant(vk_prog *p, const loom_exec_node *x);
loom_status vk_plan_qgemm(vk_prog *p, const loom_exec_node *x);
loom_status vk_plan_pool(vk_prog *p, const loom_exec_node *x);
loom_status vk_plan_norm(vk_prog *p, const loom_exec_node *x);
loom_status vk_plan_norm_update(vk_prog *p, const loom_exec_node *x);
loom_status vk_plan_mask_update(vk_prog *p, const loom_exec_node *x);
loom_status vk_plan_window(vk_prog *p, const loom_exec_node *x);
loom_status vk_plan_concat(vk_prog *p, const loom_exec_node *x);

/* What the family files (vk_seq.c) share of vk_kernels.c: a tensor's
 * binding, an unused binding repeating one, a 1-D grid of items, and the
 * pipeline of a variant (by name) with its layout, spec and push constants. */
vk_bind vk_bind_tensor(const loom_exec_tensor *t, int access);
vk_bind vk_bind_alias(vk_bind b);
loom_status vk_grid(vk_prog *p, vk_dispatch *x, uint64_t items, uint32_t wg, const loom_node *nd);
loom_status vk_use_variant(vk_prog *p, vk_dispatch *x, const char *name, const char *kinds, uint32_t push_size,
                           uint32_t wgx, uint32_t wgy, const uint32_t spec[VK_MAX_SPEC], const void *push);

/* ---- vk_seq.c: the sequence ops' dispatches ------------------------------ */

loom_status vk_plan_bmm(vk_prog *p, const loom_exec_node *x);
loom_status vk_plan_lnorm(vk_prog *p, const loom_exec_node *x);
loom_status vk_plan_index(vk_prog *p, const loom_exec_node *x);
loom_status vk_plan_rope(vk_prog *p, const loom_exec_node *x);
loom_status vk_plan_attention(vk_prog *p, const loom_exec_node *x);

/* ---- vk_program.c ------------------------------------------------------- */

loom_status vk_prepare(void *bdev, const loom_exec_program *prog, void **bprog);
loom_status vk_run(void *bprog, const loom_run_args *args);
loom_status vk_submit(void *bprog, const loom_run_args *args, void **fence);
loom_status vk_wait(void *bprog, void *fence);
void vk_release(void *bprog);
loom_status vk_timestamps(void *bprog, double *start_ns, double *end_ns, int n);
int vk_dispatches(void *bprog);

/* ---- vk_custom.c -------------------------------------------------------- */

/* The dispatch of a LOOM_OP_CUSTOM node (its GLSL compiled on first use). */
loom_status vk_plan_custom(vk_prog *p, const loom_exec_node *x);
void vk_customs_destroy(vk_dev *d);

/* ---- vk_tune.c ---------------------------------------------------------- */

/* Decides the device's read path (quirks), from the cache or by measuring. */
loom_status vk_tune(vk_dev *d);
/* The backend's tuning slots (loom_device_tune and friends). */
loom_status vk_tune_device(void *bdev, const loom_tune_opts *opts, loom_tune_report *out);
loom_status vk_get_tuning(void *bdev, char *buf, size_t n);
loom_status vk_set_tuning(void *bdev, const char *json);

#endif
