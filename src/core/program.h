/* A compiled program: the nodes it runs (copied from the graph), where each
 * tensor lives, and the backend's recording. */
#ifndef LOOM_PROGRAM_H
#define LOOM_PROGRAM_H

#include "backend.h"
#include "device_registry.h"
#include "planner.h"
#include "state.h"

#define LOOM_PROGRAM_MAGIC 0x6c6f6f6d50524f47ULL

struct loom_program {
    uint64_t magic;
    loom_ctx *ctx;
    loom_device *dev;
    loom_state *st;             /* NULL once the state is destroyed */
    int n;                      /* graph nodes kept (copied) */
    loom_node *nodes;
    int nalloc;                 /* capacity of nodes and gidx */
    int32_t *gidx;              /* graph index of each kept node */
    loom_exec_tensor *tensors;  /* one per kept node */
    loom_exec_node *exec;       /* the nodes that run, in order */
    const loom_exec_tensor **exec_in; /* storage for exec[i].in */
    int nexec, nexec_in;
    loom_exec_program eprog;
    void *arena;                /* backend buffer, NULL if nothing planned */
    void *bprog;
    loom_plan_result plan;
    int has_updates;
    int has_opt;
    loom_optimizer opt;
    int loss_scaling;           /* loom_backward_scaled */
    loom_loss_scaling scaling;
    loom_run_slot *slots;       /* eprog.nslots, filled before each run */
    int fused;                  /* fusions the core pass made */
    int no_fusion;              /* loom_compile_opts.no_fusion: no groups either */
    int profile;
    int guard;                  /* bytes of guard before and after outputs */
    double last_run_ns;
    int inflight;               /* loom_program_submit without its wait yet */
    void *fence;                /* the backend's, from submit */
    double submit_ns;
    /* loom_program_read_async's reads the backend did not queue: done at
     * the wait, in order */
    struct loom_pending_read {
        int tensor;
        void *dst;
    } *pending;
    int npending, cappending;
    int64_t runs;
    struct loom_profile_data *prof; /* profile.c; NULL until first used */
};

#endif
