/* The name map of src/nn (see name_map.h): FNV-1a hashing and linear
 * probing in a table kept at most half full. */
#include "name_map.h"

#include "../common/checked.h"

#include <string.h>

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

loom_status nn_name_map_init(nn_name_map *m, loom_ctx *ctx, size_t count, const char *what)
{
    memset(m, 0, sizeof *m);
    m->ctx = ctx;
    size_t cap = 16;
    while (cap / 2 < count) {
        if (loom_mul_size(cap, 2, &cap))
            return loom_fail(ctx, LOOM_E_OOM, "%s: %zu names are too many to index", what, count);
    }
    size_t kb, vb;
    if (loom_mul_size(cap, sizeof *m->key, &kb) || loom_mul_size(cap, sizeof *m->val, &vb))
        return loom_fail(ctx, LOOM_E_OOM, "%s: %zu names are too many to index", what, count);
    m->key = loom_calloc(ctx, cap, sizeof *m->key);
    m->val = loom_malloc(ctx, vb);
    if (!m->key || !m->val) {
        loom_free(ctx, m->key, kb);
        loom_free(ctx, m->val, vb);
        m->key = NULL;
        m->val = NULL;
        return loom_fail(ctx, LOOM_E_OOM, "%s: out of memory indexing %zu names", what, count);
    }
    m->cap = cap;
    return LOOM_OK;
}

void nn_name_map_free(nn_name_map *m)
{
    if (!m || !m->cap)
        return;
    loom_free(m->ctx, m->key, m->cap * sizeof *m->key);
    loom_free(m->ctx, m->val, m->cap * sizeof *m->val);
    m->key = NULL;
    m->val = NULL;
    m->cap = 0;
}

/* The slot that holds key, or the empty slot where it would go. */
static size_t probe(const nn_name_map *m, const char *key)
{
    size_t mask = m->cap - 1, i = (size_t)fnv1a(key) & mask;
    while (m->key[i] && strcmp(m->key[i], key))
        i = (i + 1) & mask;
    return i;
}

int nn_name_map_put(nn_name_map *m, const char *key, int val)
{
    size_t i = probe(m, key);
    if (m->key[i])
        return m->val[i];
    m->key[i] = key;
    m->val[i] = val;
    return -1;
}

int nn_name_map_get(const nn_name_map *m, const char *key)
{
    if (!m->cap)
        return -1;
    size_t i = probe(m, key);
    return m->key[i] ? m->val[i] : -1;
}
