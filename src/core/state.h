/* The state's internals: named persistent tensors on one device. */
#ifndef LOOM_STATE_H
#define LOOM_STATE_H

#include "internal.h"
#include "device_registry.h"

typedef struct loom_state_slot {
    char *name;
    loom_dtype dtype;
    int ndim;
    int64_t shape[LOOM_MAX_DIMS];
    uint64_t bytes;
    void *buf;                  /* the backend's buffer */
} loom_state_slot;

struct loom_program;

struct loom_state {
    loom_ctx *ctx;
    loom_device *dev;
    loom_state_slot *e;
    int n, cap;
    int32_t *index;             /* open addressing by name: entry + 1, 0 empty */
    int index_cap;              /* a power of two, at least twice n */
    int64_t step;
    float loss_scale;           /* dynamic loss scaling: the next step's scale */
    int64_t good_steps;         /* finite steps since the scale last changed */
    int64_t skipped_steps;      /* steps skipped for a non-finite gradient */
    struct loom_program **progs; /* compiled against this state */
    int nprogs, progs_cap;
};

/* The entry of that name, or NULL. */
loom_state_slot *loom_state_find(loom_state *st, const char *name);
/* Finds or creates (zero-filled) a tensor of that shape; LOOM_E_SHAPE if
 * one exists with another shape or dtype. */
loom_status loom_state_ensure(loom_state *st, const char *name, loom_dtype dt, int ndim,
                              const int64_t *shape, loom_state_slot **out);
loom_status loom_state_attach(loom_state *st, struct loom_program *p);
void loom_state_detach(loom_state *st, struct loom_program *p);

#endif
