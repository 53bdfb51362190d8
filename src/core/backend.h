/*
 * The internal backend interface: the one thing core/ knows of a backend.
 * Each backend fills one const struct loom_backend_ops; optional slots may
 * be NULL and core supplies the default. A new backend is a new folder and
 * one line in src/backends/registry.c.
 */
#ifndef LOOM_BACKEND_H
#define LOOM_BACKEND_H

#include "internal.h"
#include "ir.h"
#include "op_table.h"
#include "push.h"

#define LOOM_BACKEND_ABI 4

typedef enum loom_lifetime {
    LOOM_LIFE_STATE = 0,    /* weights, moments: live as long as the state */
    LOOM_LIFE_ARENA = 1,    /* a program's planned intermediates */
    LOOM_LIFE_STAGING = 2   /* host-visible transfer space */
} loom_lifetime;

/* Where a tensor lives: a backend buffer (from buffer_alloc) and a range. */
typedef struct loom_bref {
    void *buf;
    uint64_t offset;
    uint64_t bytes;
} loom_bref;

typedef struct loom_exec_tensor {
    const loom_node *node;     /* dtype, shape, name */
    loom_bref mem;
} loom_exec_tensor;

typedef struct loom_exec_node {
    const loom_node *node;     /* op and attributes */
    const loom_op_def *def;    /* the op table's entry for node->op */
    int index;                 /* position in the program (profiling slot) */
    int nin;
    const loom_exec_tensor *const *in;
    const loom_exec_tensor *out; /* NULL for updates (side effects only) */
    int run_slot;              /* index into loom_run_args.slots, -1 if none */
    /* Other nodes' values this one writes too (node->also): for
     * SPARSE_XENT_GRAD the loss and the prediction; NULL if not fused. */
    const loom_exec_tensor *also[2];
    /* Updates: how many exec nodes from this one on form one multi-tensor
     * update (same op and hyper-parameters, consecutive); 0 in its other
     * members, 1 alone. A backend may run a group as one dispatch from its
     * first node, or each member on its own. */
    int group;
} loom_exec_node;

typedef struct loom_exec_program {
    int nnodes;
    const loom_exec_node *nodes; /* in execution order; leaves excluded */
    int profile;               /* collect per-node timestamps */
    int nslots;                /* run slots the nodes use */
    const char *name;          /* for messages */
} loom_exec_program;

/* Arguments of one run: the per-run values of every node that consumes
 * some (loom_run_slot, shaders/push.h), computed once in core. */
typedef struct loom_run_args {
    int nslots;
    const loom_run_slot *slots;
} loom_run_args;

typedef struct loom_backend_ops {
    uint32_t abi;              /* LOOM_BACKEND_ABI */
    const char *name;          /* "cpu", "vulkan", "opencl" */
    loom_backend_kind kind;

    /* Finds the API's devices. A missing loader or driver is not an error:
     * init succeeds with zero devices and says why in the log. */
    loom_status (*init)(loom_ctx *ctx, void **bstate);
    void (*shutdown)(void *bstate);
    int (*device_count)(void *bstate);
    loom_status (*device_info)(void *bstate, int index, loom_device_info *info);
    loom_status (*device_open)(void *bstate, int index, void **bdev);
    void (*device_close)(void *bdev);

    /* Memory. Backends sub-allocate from a few large blocks by lifetime. */
    loom_status (*buffer_alloc)(void *bdev, uint64_t bytes, loom_lifetime life, void **buf);
    void (*buffer_free)(void *bdev, void *buf);
    /* A write may be deferred until the next run (staged into its submit);
     * a read waits for everything before it. */
    loom_status (*buffer_write)(void *bdev, void *buf, uint64_t offset, const void *src, uint64_t bytes);
    loom_status (*buffer_read)(void *bdev, void *buf, uint64_t offset, void *dst, uint64_t bytes);

    /* 0 if the backend cannot run this node on this device (core refuses
     * the compile with LOOM_E_UNSUPPORTED naming the op, before it touches
     * the state). Core also asks it about fused nodes it proposes (a
     * matmul with attr.bias / attr.act) and keeps them apart when told 0. */
    int (*supports)(void *bdev, const loom_exec_node *node);
    /* 1 if the backend carries a kernel for op in dtype at all (whatever
     * the device): the op table's coverage test reads it. */
    int (*has_kernel)(loom_op op, loom_dtype dt);
    /* Pipelines, kernels, descriptor sets and the recording, all at once. */
    loom_status (*prepare)(void *bdev, const loom_exec_program *prog, void **bprog);
    /* Replays the recording and waits for it. */
    loom_status (*run)(void *bprog, const loom_run_args *args);
    void (*release)(void *bprog);
    /* Optional (ABI 4), both or neither: submit queues one replay and
     * returns without waiting (*fence: what wait takes, may be NULL), so
     * that several devices compute at once and the host reduces one
     * device's gradients while another still computes; wait blocks until
     * that replay is done (and collects its timestamps). A backend that
     * has a replay in flight waits for it itself before any other work on
     * the same device (a write, a read, another submit). NULL: core runs
     * `run` in submit (the CPU backend computes on the caller's thread). */
    loom_status (*submit)(void *bprog, const loom_run_args *args, void **fence);
    loom_status (*wait)(void *bprog, void *fence);
    /* Optional (ABI 4): a read queued behind the work in flight on the
     * device (a device-to-host copy that overlaps nothing of the host's:
     * no round trip of its own); dst is filled once the `wait` of that
     * work returns. LOOM_E_UNSUPPORTED (or NULL): core reads after the
     * wait instead. */
    loom_status (*buffer_read_async)(void *bdev, void *buf, uint64_t offset, void *dst, uint64_t bytes);
    /* Optional: how many kernel launches (dispatches, GEMM calls, copies)
     * one replay makes. NULL: one per node. */
    int (*dispatches)(void *bprog);
    /* Optional: per-node device start/end of the last run, in ns on the
     * host's CLOCK_MONOTONIC timeline. n = prog->nnodes. */
    loom_status (*timestamps)(void *bprog, double *start_ns, double *end_ns, int n);
    /* Optional: per-device tuning (loom_device_tune and friends in
     * include/loom.h). NULL: nothing to tune. */
    loom_status (*tune)(void *bdev, const loom_tune_opts *opts, loom_tune_report *out);
    loom_status (*set_tuning)(void *bdev, const char *json);
    loom_status (*get_tuning)(void *bdev, char *buf, size_t n);
} loom_backend_ops;

/* The registry (src/backends/registry.c): every backend compiled in. */
extern const loom_backend_ops *const loom_backends[];
extern const int loom_backend_count;

#endif
