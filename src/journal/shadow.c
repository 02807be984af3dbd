/*
 * shadow.c — the shadow table: block number -> shadow buffer.
 *
 * Open addressing with linear probing, at most half full, grown by
 * doubling; deletion shifts the following entries back, so there are no
 * tombstones and lookups stay short however many blocks come and go.
 * Not thread safe: the journal lock serialises every call.
 */
#include <errno.h>
#include <stdlib.h>

#include "journal/journal_i.h"

#define MAP_MIN_CAPACITY 64u

/* 64-bit finaliser (MurmurHash3 fmix64): block numbers are sequential,
 * so they need mixing before masking. */
static uint64_t hash_block(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

int jnl_map_init(struct jnl_shadow_map *m)
{
    m->slots = calloc(MAP_MIN_CAPACITY, sizeof(*m->slots));
    if (!m->slots)
        return -ENOMEM;
    m->mask = MAP_MIN_CAPACITY - 1;
    m->count = 0;
    return 0;
}

void jnl_map_destroy(struct jnl_shadow_map *m)
{
    if (!m->slots)
        return;
    for (uint64_t i = 0; i <= m->mask; i++)
        jnl_shadow_free(m->slots[i]);
    free(m->slots);
    m->slots = NULL;
    m->count = 0;
}

struct jnl_shadow *jnl_map_find(const struct jnl_shadow_map *m, uint64_t blk)
{
    uint64_t i = hash_block(blk) & m->mask;
    while (m->slots[i]) {
        if (m->slots[i]->blk == blk)
            return m->slots[i];
        i = (i + 1) & m->mask;
    }
    return NULL;
}

/* Puts s into the first free slot of its probe sequence (no growth). */
static void place(struct jnl_shadow **slots, uint64_t mask, struct jnl_shadow *s)
{
    uint64_t i = hash_block(s->blk) & mask;
    while (slots[i])
        i = (i + 1) & mask;
    slots[i] = s;
}

/* Doubles the capacity. 0 or -ENOMEM (the table is unchanged then). */
static int grow(struct jnl_shadow_map *m)
{
    uint64_t cap = (m->mask + 1) * 2;
    struct jnl_shadow **slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    for (uint64_t i = 0; i <= m->mask; i++)
        if (m->slots[i])
            place(slots, cap - 1, m->slots[i]);
    free(m->slots);
    m->slots = slots;
    m->mask = cap - 1;
    return 0;
}

int jnl_map_insert(struct jnl_shadow_map *m, struct jnl_shadow *s)
{
    if ((m->count + 1) * 2 > m->mask + 1) {
        int err = grow(m);
        if (err)
            return err;
    }
    place(m->slots, m->mask, s);
    m->count++;
    return 0;
}

void jnl_map_remove(struct jnl_shadow_map *m, uint64_t blk)
{
    uint64_t i = hash_block(blk) & m->mask;
    while (m->slots[i] && m->slots[i]->blk != blk)
        i = (i + 1) & m->mask;
    if (!m->slots[i])
        return;
    m->slots[i] = NULL;
    m->count--;
    /* Backward shift: move up every following entry of the cluster whose
     * home slot is not cyclically within (i, k], so probes still find it. */
    for (uint64_t k = (i + 1) & m->mask; m->slots[k]; k = (k + 1) & m->mask) {
        uint64_t home = hash_block(m->slots[k]->blk) & m->mask;
        int stays = (i <= k) ? (i < home && home <= k) : (i < home || home <= k);
        if (stays)
            continue;
        m->slots[i] = m->slots[k];
        m->slots[k] = NULL;
        i = k;
    }
}

struct jnl_shadow *jnl_shadow_alloc(uint64_t blk)
{
    struct jnl_shadow *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    if (posix_memalign(&s->data, JNL_BS, JNL_BS)) {
        free(s);
        return NULL;
    }
    s->blk = blk;
    s->running_idx = JNL_NOT_RUNNING;
    return s;
}

void jnl_shadow_free(struct jnl_shadow *s)
{
    if (!s)
        return;
    free(s->data);
    free(s);
}
