/*
 * B+tree operations: descent, lookups, insert/update, delete.
 * API and contract: src/fs/btree.h. Node layout and separator semantics:
 * src/fs/format.h and src/fs/btree_i.h.
 *
 * Every modifying function works in two phases so that an error leaves
 * the tree exactly as it was:
 *   1. plan: descend (every node read is validated), decide which nodes
 *      change, get their writable shadows from the store and allocate every
 *      new block; on failure, free what was allocated and return;
 *   2. apply: node-local edits that cannot fail, then one checksum per
 *      modified node (struct bt_op), then frees and the new root.
 */
#include "fs/btree_i.h"

#include <errno.h>
#include <string.h>

/* ==== descent ================================================================== */

/* Largest i with key_i <= key in internal node p, 0 if key < key_0. */
static unsigned int_search(const void *p, uint64_t key)
{
    const struct mmapfs_disk_btree_ptr *e = bt_cptrs(p);
    unsigned lo = 0, hi = bt_nitems(p);

    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (e[mid].key <= key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? lo - 1 : 0;
}

/* First item of leaf p with a key >= key (nitems if none); *found if equal. */
static unsigned leaf_search(const void *p, uint64_t key, bool *found)
{
    const struct mmapfs_disk_btree_item *it = bt_citems(p);
    unsigned lo = 0, n = bt_nitems(p), hi = n;

    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (it[mid].key < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < n && it[lo].key == key;
    return lo;
}

/* Reads child idx of path level L into level L - 1 (validated against L). */
static int path_load_child(const struct bt_tree *t, struct bt_path *p, unsigned L)
{
    struct bt_level *up = &p->lv[L], *down = &p->lv[L - 1];

    bt_child_bounds(up->node, up->idx, &up->b, &down->b);
    down->blk = bt_cptrs(up->node)[up->idx].child;
    down->w = NULL;
    down->idx = 0;
    return bt_node_read(t, down->blk, (int)L - 1, &down->b, &down->node, NULL);
}

/* Fills p with the path from the root (non-empty tree) to the leaf where
 * key is or would be. O(height) node reads, binary search in each. */
static int descend(const struct bt_tree *t, uint64_t key, struct bt_path *p)
{
    struct bt_level *root;
    int err;

    const uint8_t *node;
    err = bt_node_read(t, t->root, -1, NULL, &node, NULL);
    if (err)
        return err;
    unsigned h = bt_level(node);
    p->height = h + 1;
    root = &p->lv[h];
    root->blk = t->root;
    root->node = node;
    root->w = NULL;
    memset(&root->b, 0, sizeof(root->b));
    for (unsigned L = h; L > 0; L--) {
        p->lv[L].idx = int_search(p->lv[L].node, key);
        err = path_load_child(t, p, L);
        if (err)
            return err;
    }
    p->lv[0].idx = leaf_search(p->lv[0].node, key, &p->found);
    return 0;
}

/* Moves p to the next (dir > 0: first item) or previous (dir < 0: last
 * item) leaf: up to the deepest level that has a sibling in that direction,
 * then down its outer edge. -ENOENT at the end of the tree. */
static int path_step(const struct bt_tree *t, struct bt_path *p, int dir)
{
    unsigned L;

    for (L = 1; L < p->height; L++) {
        struct bt_level *lv = &p->lv[L];
        if (dir > 0 ? lv->idx + 1 < bt_nitems(lv->node) : lv->idx > 0)
            break;
    }
    if (L == p->height)
        return -ENOENT;
    p->lv[L].idx = dir > 0 ? p->lv[L].idx + 1 : p->lv[L].idx - 1;
    for (; L > 0; L--) {
        int err = path_load_child(t, p, L);
        if (err)
            return err;
        p->lv[L - 1].idx = dir > 0 ? 0 : bt_nitems(p->lv[L - 1].node) - 1;
    }
    p->found = true;
    return 0;
}

/* ==== lookups ====================================================================== */

/* Reports item i of leaf p: key into *found (may be NULL), up to *len
 * bytes of the value into val (may be NULL), real length into *len. */
static void leaf_get(const uint8_t *p, unsigned i, uint64_t *found, void *val, size_t *len)
{
    const struct mmapfs_disk_btree_item *it = &bt_citems(p)[i];

    if (found)
        *found = it->key;
    if (len) {
        size_t n = *len < it->value_len ? *len : it->value_len;
        if (val && n)
            memcpy(val, p + it->value_off, n);
        *len = it->value_len;
    }
}

/* Exact lookup. */
int bt_lookup(struct bt_tree *t, uint64_t key, void *val, size_t *len)
{
    struct bt_path p;

    if (!t->root)
        return -ENOENT;
    int err = descend(t, key, &p);
    if (err)
        return err;
    if (!p.found)
        return -ENOENT;
    leaf_get(p.lv[0].node, p.lv[0].idx, NULL, val, len);
    return 0;
}

/* Greatest key <= key. Since key_0 of every node is the smallest key of
 * its subtree, the leaf reached holds the answer unless key is below the
 * whole tree; path_step() covers the general case anyway. */
int bt_lookup_le(struct bt_tree *t, uint64_t key, uint64_t *found, void *val, size_t *len)
{
    struct bt_path p;

    if (!t->root)
        return -ENOENT;
    int err = descend(t, key, &p);
    if (err)
        return err;
    unsigned i = p.lv[0].idx;
    if (!p.found) {
        if (i > 0) {
            i--;
        } else {
            err = path_step(t, &p, -1);
            if (err)
                return err;
            i = p.lv[0].idx;
        }
    }
    leaf_get(p.lv[0].node, i, found, val, len);
    return 0;
}

/* Smallest key >= key: in the leaf reached, else first key of the next
 * leaf (no sibling pointers: up the path, then down again). */
int bt_lookup_ge(struct bt_tree *t, uint64_t key, uint64_t *found, void *val, size_t *len)
{
    struct bt_path p;

    if (!t->root)
        return -ENOENT;
    int err = descend(t, key, &p);
    if (err)
        return err;
    if (p.lv[0].idx == bt_nitems(p.lv[0].node)) {
        err = path_step(t, &p, +1);
        if (err)
            return err;
    }
    leaf_get(p.lv[0].node, p.lv[0].idx, found, val, len);
    return 0;
}

/* See btree.h. One descent, then leaf to leaf (path_step). */
int bt_scan_ge(struct bt_tree *t, uint64_t key,
               int (*fn)(void *ctx, uint64_t key, const void *val, size_t len), void *ctx)
{
    struct bt_path p;

    if (!t->root)
        return 0;
    int err = descend(t, key, &p);
    while (!err) {
        const uint8_t *node = p.lv[0].node;
        const struct mmapfs_disk_btree_item *it = bt_citems(node);
        for (unsigned i = p.lv[0].idx; i < bt_nitems(node); i++) {
            err = fn(ctx, it[i].key, node + it[i].value_off, it[i].value_len);
            if (err)
                return err;
        }
        err = path_step(t, &p, +1);
    }
    return err == -ENOENT ? 0 : err;
}

/* ==== modification bookkeeping ========================================================= */

#define BT_MAX_DIRTY (3 * BT_MAX_HEIGHT + 2)

/* Nodes modified by one operation: each gets its checksum once, at the end. */
struct bt_op {
    struct bt_tree *t;
    unsigned ndirty;
    struct {
        uint64_t blk;
        uint8_t *p;
    } dirty[BT_MAX_DIRTY];
};

/* Records writable block p (blk) as modified. */
static void op_dirty(struct bt_op *op, uint64_t blk, uint8_t *p)
{
    for (unsigned i = 0; i < op->ndirty; i++)
        if (op->dirty[i].blk == blk)
            return;
    op->dirty[op->ndirty].blk = blk;
    op->dirty[op->ndirty].p = p;
    op->ndirty++;
}

/* Gets the writable shadow of path level lv (once): lv->node then points
 * to it, the old read pointer is never used again. -ENOMEM if the store
 * is out of memory, -EIO if it refuses otherwise. */
static int op_write(struct bt_op *op, struct bt_level *lv)
{
    if (lv->w)
        return 0;
    errno = 0;
    uint8_t *w = op->t->store->write(op->t->store->ctx, lv->blk);
    if (!w)
        return errno == ENOMEM ? -ENOMEM : -EIO;
    lv->w = w;
    lv->node = w;
    op_dirty(op, lv->blk, w);
    return 0;
}

/* Stores the checksum of every modified node. */
static void op_finish(struct bt_op *op)
{
    for (unsigned i = 0; i < op->ndirty; i++)
        bt_hdr(op->dirty[i].p)->checksum = bt_block_checksum(op->dirty[i].blk, op->dirty[i].p);
}

/* Allocates a zeroed block near goal. */
static int op_alloc(struct bt_op *op, uint64_t goal, uint64_t *blk, uint8_t **p)
{
    void *ptr = NULL;
    int err = op->t->store->alloc(op->t->store->ctx, goal, blk, &ptr);
    if (err)
        return err < 0 ? err : -ENOSPC;
    if (!ptr || !*blk)
        return -EIO;
    *p = ptr;
    op_dirty(op, *blk, ptr);
    return 0;
}

/* ==== insert / update ==================================================================== */

/* Does the path lead to the last key of the tree (every level at its last
 * entry)? Inserts there are appends: splits keep the left node full. */
static bool path_rightmost(const struct bt_path *p)
{
    for (unsigned L = 1; L < p->height; L++)
        if (p->lv[L].idx + 1 != bt_nitems(p->lv[L].node))
            return false;
    return true;
}

/* First item of an empty tree: a root leaf. */
static int put_first(struct bt_tree *t, uint64_t key, const void *val, unsigned len)
{
    struct bt_op op = { .t = t };
    uint64_t blk;
    uint8_t *p;

    int err = op_alloc(&op, 0, &blk, &p);
    if (err)
        return err;
    bt_node_init(t, p, 0);
    bt_leaf_put(p, 0, true, key, val, len);
    op_finish(&op);
    t->root = blk;
    return 0;
}

/* Insert (insert) or update of key. Plan: which levels split (the leaf if
 * the item does not fit even after compaction, then each full parent that
 * receives a separator), whether a new root is needed, whether key_0
 * changes along the path (new smallest key). Then apply bottom-up. */
static int put(struct bt_tree *t, uint64_t key, const void *val, size_t len, bool insert)
{
    struct bt_path p;
    struct bt_op op = { .t = t };
    uint64_t nblk[BT_MAX_HEIGHT + 1];
    uint8_t *nptr[BT_MAX_HEIGHT + 1];
    unsigned nalloc = 0, L;
    int err;

    if (!val || len == 0 || len > MMAPFS_BTREE_MAX_VALUE)
        return -EINVAL;
    if (!t->root)
        return insert ? put_first(t, key, val, (unsigned)len) : -ENOENT;
    err = descend(t, key, &p);
    if (err)
        return err;
    if (insert && p.found)
        return -EEXIST;
    if (!insert && !p.found)
        return -ENOENT;

    /* ---- plan ---- */
    unsigned h = p.height - 1, pos = p.lv[0].idx, n = bt_nitems(p.lv[0].node);
    unsigned used = bt_leaf_used(p.lv[0].node);
    if (insert)
        used += BT_ITEM_SIZE + (unsigned)len;
    else
        used = used - bt_citems(p.lv[0].node)[pos].value_len + (unsigned)len;
    unsigned nsplit = 0;           /* levels 0..nsplit-1 split */
    if (used > BT_SPACE) {
        nsplit = 1;
        while (nsplit <= h && bt_nitems(p.lv[nsplit].node) >= BT_INT_MAX)
            nsplit++;
    }
    bool new_root = nsplit == h + 1;
    if (new_root && h >= MMAPFS_BTREE_MAX_LEVEL)
        return -ENOSPC;
    bool new_min = insert && pos == 0;   /* key < the smallest key of the tree */
    bool append = insert && pos == n && path_rightmost(&p);

    for (L = 0; L <= h && L <= nsplit; L++) {
        err = op_write(&op, &p.lv[L]);
        if (err)
            return err;
    }
    for (L = 1; new_min && L <= h; L++) {
        err = op_write(&op, &p.lv[L]);
        if (err)
            return err;
        if (p.lv[L].idx != 0)
            break;
    }
    for (L = 0; L < nsplit + new_root; L++) {
        err = op_alloc(&op, p.lv[L < nsplit ? L : h].blk, &nblk[L], &nptr[L]);
        if (err)
            goto undo;
        nalloc++;
    }

    /* ---- apply ---- */
    for (L = 1; new_min && L <= h; L++) {
        bt_ptrs(p.lv[L].w)[p.lv[L].idx].key = key;
        if (p.lv[L].idx != 0)
            break;
    }
    if (!nsplit) {
        bt_leaf_put(p.lv[0].w, pos, insert, key, val, (unsigned)len);
    } else {
        uint64_t sep = bt_leaf_split(t, p.lv[0].w, nptr[0], pos, insert, key, val,
                                     (unsigned)len, append);
        uint64_t child = nblk[0];
        for (L = 1; L <= h; L++) {
            struct bt_level *lv = &p.lv[L];
            if (L < nsplit) {
                sep = bt_int_split(t, lv->w, nptr[L], lv->idx + 1, sep, child, append);
                child = nblk[L];
            } else {
                bt_int_insert(lv->w, lv->idx + 1, sep, child);
                break;
            }
        }
        if (new_root) {
            uint8_t *r = nptr[nsplit];
            bt_node_init(t, r, h + 1);
            bt_int_insert(r, 0, bt_key(p.lv[h].w, 0), p.lv[h].blk);
            bt_int_insert(r, 1, sep, child);
            t->root = nblk[nsplit];
        }
    }
    op_finish(&op);
    return 0;

undo:
    for (unsigned i = 0; i < nalloc; i++)
        t->store->free(t->store->ctx, nblk[i]);
    return err;
}

/* Inserts a new key. */
int bt_insert(struct bt_tree *t, uint64_t key, const void *val, size_t len)
{
    return put(t, key, val, len, true);
}

/* Replaces the value of an existing key. */
int bt_update(struct bt_tree *t, uint64_t key, const void *val, size_t len)
{
    return put(t, key, val, len, false);
}

/* ==== delete ================================================================================= */

/* Removes key. Plan: 'top' = lowest level whose node keeps an entry (the
 * nodes below it become empty and are freed); the entry removed there may
 * have been its key_0, then the separators above change while the node
 * was child 0. Then the root collapses while it is internal with a single
 * child; that child may be off the path: it is read (validated) during the
 * plan, so nothing changes if it is corrupt. */
int bt_delete(struct bt_tree *t, uint64_t key)
{
    struct bt_path p;
    struct bt_op op = { .t = t };
    bool gone[BT_MAX_HEIGHT] = { false };   /* path level freed */
    uint64_t extra[BT_MAX_HEIGHT];          /* off-path nodes freed by the collapse */
    unsigned nextra = 0, L;
    int err;

    if (!t->root)
        return -ENOENT;
    err = descend(t, key, &p);
    if (err)
        return err;
    if (!p.found)
        return -ENOENT;

    /* ---- plan ---- */
    unsigned h = p.height - 1, top = 0;
    while (top <= h && bt_nitems(p.lv[top].node) == 1)
        top++;
    if (top > h) {
        /* The tree was this single path: it becomes empty. */
        for (L = 0; L <= h; L++)
            t->store->free(t->store->ctx, p.lv[L].blk);
        t->root = 0;
        return 0;
    }
    for (L = 0; L < top; L++)
        gone[L] = true;
    unsigned ridx = p.lv[top].idx;

    /* Root collapse: follow single children down from the root. */
    uint64_t new_root = p.lv[h].blk, cur_blk = new_root;
    const uint8_t *cur = p.lv[h].node;
    struct bt_bounds cur_b = p.lv[h].b;
    bool on_path = true;
    unsigned n_after = bt_nitems(cur) - (top == h);
    for (L = h; L > 0 && n_after == 1; L--) {
        if (on_path)
            gone[L] = true;
        else
            extra[nextra++] = cur_blk;
        if (on_path && L > top) {
            cur_blk = p.lv[L - 1].blk;
            cur = p.lv[L - 1].node;
            cur_b = p.lv[L - 1].b;
            n_after = bt_nitems(cur) - (L - 1 == top);
        } else {
            /* The surviving entry: the other one of the two at 'top', or
             * the only one of an off-path node. */
            unsigned i = on_path ? (ridx == 0 ? 1 : 0) : 0;
            struct bt_bounds b;
            bt_child_bounds(cur, i, &cur_b, &b);
            cur_blk = bt_cptrs(cur)[i].child;
            err = bt_node_read(t, cur_blk, (int)L - 1, &b, &cur, NULL);
            if (err)
                return err;
            cur_b = b;
            on_path = false;
            n_after = bt_nitems(cur);
        }
        new_root = cur_blk;
    }

    if (!gone[top]) {
        err = op_write(&op, &p.lv[top]);
        if (err)
            return err;
        for (L = top + 1; ridx == 0 && L <= h && !gone[L]; L++) {
            err = op_write(&op, &p.lv[L]);
            if (err)
                return err;
            if (p.lv[L].idx != 0)
                break;
        }
    }

    /* ---- apply ---- */
    if (!gone[top]) {
        uint8_t *w = p.lv[top].w;
        if (top == 0)
            bt_leaf_remove(w, ridx);
        else
            bt_int_remove(w, ridx);
        uint64_t new_min = bt_key(w, 0);
        for (L = top + 1; ridx == 0 && L <= h && !gone[L]; L++) {
            bt_ptrs(p.lv[L].w)[p.lv[L].idx].key = new_min;
            if (p.lv[L].idx != 0)
                break;
        }
    }
    op_finish(&op);
    for (L = 0; L <= h; L++)
        if (gone[L])
            t->store->free(t->store->ctx, p.lv[L].blk);
    for (unsigned i = 0; i < nextra; i++)
        t->store->free(t->store->ctx, extra[i]);
    t->root = new_root;
    return 0;
}
