/*
 * B+tree node level: checksum, validation of a node read from the image,
 * and the node-local primitives (leaf item insert/replace/remove with value
 * heap compaction, internal entry insert/remove, splits). Nothing here
 * touches the store. Layout: src/fs/format.h, "B+tree nodes".
 */
#include "fs/btree_i.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#include "util/crc32c.h"

/* ==== checksum ================================================================ */

/* mfs_crc32c(le64 blk ‖ block[8..4096)). */
uint32_t bt_block_checksum(uint64_t blk, const void *block)
{
    uint64_t le = htole64(blk);
    uint32_t c = mfs_crc32c(0, &le, sizeof(le));
    return mfs_crc32c(c, (const uint8_t *)block + 8, MMAPFS_BLOCK_SIZE - 8);
}

/* ==== validation ================================================================ */

/* Marks bytes [a, b) in a 4096-bit map; false if one was already marked. */
static bool range_mark(uint64_t *map, unsigned a, unsigned b)
{
    while (a < b) {
        unsigned w = a >> 6, s = a & 63;
        unsigned cnt = 64 - s < b - a ? 64 - s : b - a;
        uint64_t m = (cnt == 64 ? ~0ull : ((1ull << cnt) - 1)) << s;
        if (map[w] & m)
            return false;
        map[w] |= m;
        a += cnt;
    }
    return true;
}

/* Leaf body: item array and value heap inside the block, values within
 * [value_start, 4096), not overlapping each other, value_start == lowest
 * value offset, lengths 1..MMAPFS_BTREE_MAX_VALUE, keys increasing. */
static int leaf_check(const uint8_t *p, const char **why)
{
    const struct mmapfs_disk_btree_header *h = bt_chdr(p);
    const struct mmapfs_disk_btree_item *it = bt_citems(p);
    unsigned n = h->nitems;
    uint64_t map[MMAPFS_BLOCK_SIZE / 64] = {0};

    if (n > BT_LEAF_MAX) {
        *why = "leaf: too many items";
        return -EUCLEAN;
    }
    unsigned vs = h->value_start;
    if (vs < BT_HDR_SIZE + n * BT_ITEM_SIZE || vs > MMAPFS_BLOCK_SIZE) {
        *why = "leaf: value_start overlaps the item array or is past the block";
        return -EUCLEAN;
    }
    unsigned min_off = MMAPFS_BLOCK_SIZE;
    for (unsigned i = 0; i < n; i++) {
        unsigned off = it[i].value_off, len = it[i].value_len;
        if (i > 0 && it[i].key <= it[i - 1].key) {
            *why = "leaf: keys not strictly increasing";
            return -EUCLEAN;
        }
        if (len < 1 || len > MMAPFS_BTREE_MAX_VALUE) {
            *why = "leaf: bad value length";
            return -EUCLEAN;
        }
        if (off < vs || off + len > MMAPFS_BLOCK_SIZE) {
            *why = "leaf: value outside [value_start, 4096)";
            return -EUCLEAN;
        }
        if (!range_mark(map, off, off + len)) {
            *why = "leaf: values overlap";
            return -EUCLEAN;
        }
        if (off < min_off)
            min_off = off;
    }
    if (min_off != vs) {
        *why = "leaf: value_start is not the lowest value offset";
        return -EUCLEAN;
    }
    return 0;
}

/* Internal body: 1..254 entries, keys increasing, no null or self child. */
static int int_check(const uint8_t *p, uint64_t blk, const char **why)
{
    const struct mmapfs_disk_btree_ptr *e = bt_cptrs(p);
    unsigned n = bt_nitems(p);

    if (n > BT_INT_MAX) {
        *why = "internal: too many entries";
        return -EUCLEAN;
    }
    for (unsigned i = 0; i < n; i++) {
        if (i > 0 && e[i].key <= e[i - 1].key) {
            *why = "internal: keys not strictly increasing";
            return -EUCLEAN;
        }
        if (e[i].child == 0 || e[i].child == blk) {
            *why = "internal: null or self child pointer";
            return -EUCLEAN;
        }
    }
    return 0;
}

/* bt_node_check, with the checksum and the body (items, entries: a scan
 * of the whole node) verified only if 'full'. A node read again needs
 * neither: the store trusts it once it was checked whole and kept its
 * bytes since, or when it holds what the tree code wrote (store_trusted).
 * The header, and the keys against the parent's bounds, which depend on
 * the path the node was reached by, are checked on every read. */
static int node_check(const struct bt_tree *t, uint64_t blk, const void *node, int level,
                      const struct bt_bounds *b, const char **why, int full)
{
    const uint8_t *p = node;
    const struct mmapfs_disk_btree_header *h = bt_chdr(p);
    const char *dummy;
    int err;

    if (!why)
        why = &dummy;
    if (h->magic != MMAPFS_BTREE_MAGIC) {
        *why = "bad magic";
        return -EUCLEAN;
    }
    if (full && h->checksum != bt_block_checksum(blk, p)) {
        *why = "bad checksum";
        return -EUCLEAN;
    }
    if (h->owner != t->owner) {
        *why = "wrong owner";
        return -EUCLEAN;
    }
    if (h->type != t->type) {
        *why = "wrong tree type";
        return -EUCLEAN;
    }
    if (h->level > MMAPFS_BTREE_MAX_LEVEL) {
        *why = "level above MMAPFS_BTREE_MAX_LEVEL";
        return -EUCLEAN;
    }
    if (level >= 0 && h->level != (unsigned)level) {
        *why = "level is not the parent's level - 1";
        return -EUCLEAN;
    }
    if (h->nitems == 0) {
        *why = "empty node";
        return -EUCLEAN;
    }
    if (full) {
        err = h->level ? int_check(p, blk, why) : leaf_check(p, why);
        if (err)
            return err;
    }
    if (b && b->lo_set && bt_key(p, 0) != b->lo) {
        *why = "first key differs from the parent's separator";
        return -EUCLEAN;
    }
    if (b && b->hi_set && bt_key(p, h->nitems - 1) >= b->hi) {
        *why = "key not below the parent's next separator";
        return -EUCLEAN;
    }
    return 0;
}

/* See btree_i.h. */
int bt_node_check(const struct bt_tree *t, uint64_t blk, const void *node, int level,
                  const struct bt_bounds *b, const char **why)
{
    return node_check(t, blk, node, level, b, why, 1);
}

/* See btree_i.h. */
int bt_node_read(const struct bt_tree *t, uint64_t blk, int level,
                 const struct bt_bounds *b, const uint8_t **out, const char **why)
{
    const char *dummy;

    if (!why)
        why = &dummy;
    if (blk == 0) {
        *why = "null block pointer";
        return -EUCLEAN;
    }
    errno = EIO;             /* a store that says nothing: unreadable */
    const uint8_t *p = t->store->read(t->store->ctx, blk);
    if (!p) {
        int e = errno;
        *why = e == ENOMEM ? "out of memory" : "block unreadable";
        return e == ENOMEM ? -ENOMEM : -EIO;
    }
    int trusted = t->store->trusted && t->store->trusted(t->store->ctx, blk);
    int err = node_check(t, blk, p, level, b, why, !trusted);
    if (err)
        return err;
    if (!trusted && t->store->verified)
        t->store->verified(t->store->ctx, blk);
    *out = p;
    return 0;
}

/* See btree_i.h. */
void bt_child_bounds(const void *p, unsigned i, const struct bt_bounds *pb,
                     struct bt_bounds *out)
{
    const struct mmapfs_disk_btree_ptr *e = bt_cptrs(p);

    out->lo = e[i].key;
    out->lo_set = true;
    if (i + 1 < bt_nitems(p)) {
        out->hi = e[i + 1].key;
        out->hi_set = true;
    } else {
        out->hi = pb ? pb->hi : 0;
        out->hi_set = pb ? pb->hi_set : false;
    }
}

/* ==== common ======================================================================== */

/* See btree_i.h. */
void bt_node_init(const struct bt_tree *t, void *p, unsigned level)
{
    struct mmapfs_disk_btree_header *h = bt_hdr(p);

    memset(h, 0, sizeof(*h));
    h->magic = MMAPFS_BTREE_MAGIC;
    h->owner = t->owner;
    h->type = t->type;
    h->level = (uint16_t)level;
    h->nitems = 0;
    h->value_start = level ? 0 : MMAPFS_BLOCK_SIZE;
}

/* ==== leaves =========================================================================== */

/* One item of a leaf being rebuilt. */
struct bt_vitem {
    uint64_t key;
    const uint8_t *val;
    unsigned len;
};

/* See btree_i.h. */
unsigned bt_leaf_used(const void *p)
{
    const struct mmapfs_disk_btree_item *it = bt_citems(p);
    unsigned n = bt_nitems(p), used = n * BT_ITEM_SIZE;

    for (unsigned i = 0; i < n; i++)
        used += it[i].value_len;
    return used;
}

/* Lowest value offset of the leaf's items (4096 if none). */
static unsigned leaf_min_off(const void *p)
{
    const struct mmapfs_disk_btree_item *it = bt_citems(p);
    unsigned n = bt_nitems(p), min = MMAPFS_BLOCK_SIZE;

    for (unsigned i = 0; i < n; i++)
        if (it[i].value_off < min)
            min = it[i].value_off;
    return min;
}

/* Repacks the values of every item but 'skip' (-1: none) against the end
 * of the block, in item order, and zeroes the gap. The skipped item's
 * value_off is left stale: the caller gives it a new value. */
static void leaf_compact(uint8_t *p, int skip)
{
    uint8_t tmp[MMAPFS_BLOCK_SIZE];
    struct mmapfs_disk_btree_item *it = bt_items(p);
    unsigned n = bt_nitems(p), vs = MMAPFS_BLOCK_SIZE;

    memcpy(tmp, p, MMAPFS_BLOCK_SIZE);
    for (unsigned i = 0; i < n; i++) {
        if ((int)i == skip)
            continue;
        vs -= it[i].value_len;
        memcpy(p + vs, tmp + it[i].value_off, it[i].value_len);
        it[i].value_off = (uint16_t)vs;
    }
    unsigned items_end = BT_HDR_SIZE + n * BT_ITEM_SIZE;
    memset(p + items_end, 0, vs - items_end);
    bt_hdr(p)->value_start = (uint16_t)vs;
}

/* See btree_i.h. */
void bt_leaf_put(void *node, unsigned pos, bool insert, uint64_t key,
                 const void *val, unsigned len)
{
    uint8_t *p = node;
    struct mmapfs_disk_btree_header *h = bt_hdr(p);
    struct mmapfs_disk_btree_item *it = bt_items(p);
    unsigned n = h->nitems;

    if (!insert) {
        struct mmapfs_disk_btree_item *x = &it[pos];
        if (len <= x->value_len) {
            /* In place; the tail of the old value becomes a hole. */
            memcpy(p + x->value_off, val, len);
            memset(p + x->value_off + len, 0, x->value_len - len);
            x->value_len = (uint16_t)len;
            return;
        }
        /* Grows: the old value becomes a hole, the new one goes below the
         * heap (after compacting the heap without it if needed). */
        memset(p + x->value_off, 0, x->value_len);
        if (h->value_start - (BT_HDR_SIZE + n * BT_ITEM_SIZE) < len)
            leaf_compact(p, (int)pos);
        unsigned vs = h->value_start - len;
        memcpy(p + vs, val, len);
        x->value_off = (uint16_t)vs;
        x->value_len = (uint16_t)len;
        h->value_start = (uint16_t)vs;
        return;
    }
    if (h->value_start - (BT_HDR_SIZE + n * BT_ITEM_SIZE) < BT_ITEM_SIZE + len)
        leaf_compact(p, -1);
    memmove(&it[pos + 1], &it[pos], (n - pos) * BT_ITEM_SIZE);
    unsigned vs = h->value_start - len;
    memcpy(p + vs, val, len);
    it[pos].key = key;
    it[pos].value_off = (uint16_t)vs;
    it[pos].value_len = (uint16_t)len;
    h->value_start = (uint16_t)vs;
    h->nitems = (uint16_t)(n + 1);
}

/* See btree_i.h. */
void bt_leaf_remove(void *node, unsigned pos)
{
    uint8_t *p = node;
    struct mmapfs_disk_btree_header *h = bt_hdr(p);
    struct mmapfs_disk_btree_item *it = bt_items(p);
    unsigned n = h->nitems, off = it[pos].value_off;

    memset(p + off, 0, it[pos].value_len);
    memmove(&it[pos], &it[pos + 1], (n - pos - 1) * BT_ITEM_SIZE);
    memset(&it[n - 1], 0, BT_ITEM_SIZE);
    h->nitems = (uint16_t)(n - 1);
    if (off == h->value_start)
        h->value_start = (uint16_t)leaf_min_off(p);
}

/* Fills an initialised, empty leaf with items v[0..n), values packed
 * downward from the end in item order. */
static void leaf_fill(uint8_t *p, const struct bt_vitem *v, unsigned n)
{
    struct mmapfs_disk_btree_item *it = bt_items(p);
    unsigned vs = MMAPFS_BLOCK_SIZE;

    for (unsigned i = 0; i < n; i++) {
        vs -= v[i].len;
        memcpy(p + vs, v[i].val, v[i].len);
        it[i].key = v[i].key;
        it[i].value_off = (uint16_t)vs;
        it[i].value_len = (uint16_t)v[i].len;
    }
    bt_hdr(p)->nitems = (uint16_t)n;
    bt_hdr(p)->value_start = (uint16_t)vs;
}

/* Split point m (left = v[0..m), right = v[m..n)), 1 <= m < n, both halves
 * fitting in BT_SPACE: the last item alone on the right for an append,
 * else the most balanced by bytes. */
static unsigned leaf_split_point(const struct bt_vitem *v, unsigned n, bool append)
{
    if (append)
        return n - 1;
    unsigned total = 0;
    for (unsigned i = 0; i < n; i++)
        total += BT_ITEM_SIZE + v[i].len;
    unsigned best = 1, best_diff = ~0u, left = 0;
    for (unsigned m = 1; m < n; m++) {
        left += BT_ITEM_SIZE + v[m - 1].len;
        unsigned right = total - left;
        if (left > BT_SPACE || right > BT_SPACE)
            continue;
        unsigned diff = left > right ? left - right : right - left;
        if (diff < best_diff) {
            best_diff = diff;
            best = m;
        }
    }
    return best;
}

/* See btree_i.h. Every item is at most 312 bytes and the total at most
 * 4064 + 312, so a split point with both halves fitting always exists. */
uint64_t bt_leaf_split(const struct bt_tree *t, void *left, void *right, unsigned pos,
                       bool insert, uint64_t key, const void *val, unsigned len,
                       bool append)
{
    uint8_t tmp[MMAPFS_BLOCK_SIZE];
    struct bt_vitem v[BT_LEAF_MAX + 1];
    unsigned n = bt_nitems(left), total = 0;

    memcpy(tmp, left, MMAPFS_BLOCK_SIZE);
    const struct mmapfs_disk_btree_item *it = bt_citems(tmp);
    for (unsigned i = 0; i < n; i++) {
        if (i == pos) {
            v[total++] = (struct bt_vitem){ key, val, len };
            if (!insert)
                continue;
        }
        v[total++] = (struct bt_vitem){ it[i].key, tmp + it[i].value_off, it[i].value_len };
    }
    if (pos == n)
        v[total++] = (struct bt_vitem){ key, val, len };

    unsigned m = leaf_split_point(v, total, append);
    memset(left, 0, MMAPFS_BLOCK_SIZE);
    bt_node_init(t, left, 0);
    leaf_fill(left, v, m);
    memset(right, 0, MMAPFS_BLOCK_SIZE);
    bt_node_init(t, right, 0);
    leaf_fill(right, v + m, total - m);
    return v[m].key;
}

/* ==== internal nodes ================================================================ */

/* See btree_i.h. */
void bt_int_insert(void *p, unsigned pos, uint64_t key, uint64_t child)
{
    struct mmapfs_disk_btree_ptr *e = bt_ptrs(p);
    unsigned n = bt_nitems(p);

    memmove(&e[pos + 1], &e[pos], (n - pos) * BT_PTR_SIZE);
    e[pos].key = key;
    e[pos].child = child;
    bt_hdr(p)->nitems = (uint16_t)(n + 1);
}

/* See btree_i.h. */
void bt_int_remove(void *p, unsigned pos)
{
    struct mmapfs_disk_btree_ptr *e = bt_ptrs(p);
    unsigned n = bt_nitems(p);

    memmove(&e[pos], &e[pos + 1], (n - pos - 1) * BT_PTR_SIZE);
    memset(&e[n - 1], 0, BT_PTR_SIZE);
    bt_hdr(p)->nitems = (uint16_t)(n - 1);
}

/* See btree_i.h. */
uint64_t bt_int_split(const struct bt_tree *t, void *left, void *right, unsigned pos,
                      uint64_t key, uint64_t child, bool append)
{
    struct mmapfs_disk_btree_ptr e[BT_INT_MAX + 1];
    const struct mmapfs_disk_btree_ptr *old = bt_cptrs(left);
    unsigned n = bt_nitems(left), level = bt_level(left);

    memcpy(e, old, pos * BT_PTR_SIZE);
    e[pos].key = key;
    e[pos].child = child;
    memcpy(e + pos + 1, old + pos, (n - pos) * BT_PTR_SIZE);

    unsigned total = n + 1, m = append ? n : total / 2;
    memset(left, 0, MMAPFS_BLOCK_SIZE);
    bt_node_init(t, left, level);
    memcpy(bt_ptrs(left), e, m * BT_PTR_SIZE);
    bt_hdr(left)->nitems = (uint16_t)m;
    memset(right, 0, MMAPFS_BLOCK_SIZE);
    bt_node_init(t, right, level);
    memcpy(bt_ptrs(right), e + m, (total - m) * BT_PTR_SIZE);
    bt_hdr(right)->nitems = (uint16_t)(total - m);
    return e[m].key;
}
