/* A fixed-size open-addressing map from names to indices, for the lookups
 * that would be quadratic over files of many tensors. The keys are not
 * copied: they must outlive the map. */
#ifndef LOOM_NN_NAME_MAP_H
#define LOOM_NN_NAME_MAP_H

#include "loom.h"

typedef struct nn_name_map {
    loom_ctx *ctx;
    const char **key;
    int *val;
    size_t cap;                 /* a power of two, at least twice the keys */
} nn_name_map;

/* Room for up to `count` keys; LOOM_E_OOM (with a message naming what)
 * when the table cannot be allocated. */
loom_status nn_name_map_init(nn_name_map *m, loom_ctx *ctx, size_t count, const char *what);
void nn_name_map_free(nn_name_map *m);
/* Inserts key -> val and returns -1, or returns the value already stored
 * under key (leaving it). At most `count` distinct keys fit. */
int nn_name_map_put(nn_name_map *m, const char *key, int val);
/* The value stored under key, or -1. */
int nn_name_map_get(const nn_name_map *m, const char *key);

#endif
