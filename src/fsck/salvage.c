/*
 * fsck/salvage.c — repair phase B: trees that could not be walked (a
 * corrupt node) or that hold bad extents are salvaged and rebuilt.
 *
 * A tolerant walk starts at the inode's root and follows every child
 * pointer of every node that carries the tree's magic, owner and type
 * (even when the node's checksum or its keys are wrong: each child must
 * prove itself the same way, and levels must go down, so the walk ends).
 * Items are taken from leaves whose checksum is right; from a leaf whose
 * checksum is wrong only items that are consistent in every respect:
 * directory entries whose key is the hash of the name and whose target is
 * in use with that type, extents whose blocks are all marked in use and
 * owned by no readable tree. Extents are then cleaned (length, range, flags, overlaps trimmed)
 * and a fresh tree is built in free blocks; the old nodes are left to the
 * block bitmap rebuild of a later round. Lost extents become holes; lost
 * directory entries leave their inodes unreachable, and the next round
 * reconnects them into lost+found.
 *
 * All trees to salvage are first walked once only to reserve their blocks
 * (nodes and extent data), so that no new tree is written over an old
 * block still to be read.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsck/fsck_i.h"

#define HDR_SIZE ((unsigned)sizeof(struct mmapfs_disk_btree_header))
#define ITEM_SIZE ((unsigned)sizeof(struct mmapfs_disk_btree_item))
#define PTR_SIZE ((unsigned)sizeof(struct mmapfs_disk_btree_ptr))
#define MAX_FILE_BLOCKS (MMAPFS_MAX_FILE_SIZE / MMAPFS_BLOCK_SIZE)

/* One tolerant walk. */
struct salvage {
    struct check *c;
    uint64_t ino;
    uint16_t type;
    uint32_t mode;
    int collect;                 /* 0: reserve blocks only; 1: collect items */
    struct check_items items;
    uint8_t *visit;              /* 1 bit per block, cleared after the walk */
    uint64_t *visited;
    size_t nvisited, cap;
    uint64_t nodes_ok, nodes_bad, dropped;
    int oom;
};

/* Reserves [start, start+len) of an extent value (if in range). */
static void reserve_extent(struct salvage *s, const void *val, size_t len)
{
    struct check *c = s->c;
    struct mmapfs_disk_extent e;
    if (len != sizeof(e))
        return;
    memcpy(&e, val, sizeof(e));
    if (e.start < c->data_start || e.start >= c->block_count || e.len == 0 ||
        e.len > c->block_count - e.start)
        return;
    for (uint64_t b = e.start; b < e.start + e.len; b++)
        fsck_bits_set(&c->taken, b);
}

/* Marks blk visited; 0 if it already was. */
static int visit(struct salvage *s, uint64_t blk)
{
    if (check_bit(s->visit, blk))
        return 0;
    if (s->nvisited == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        uint64_t *v = realloc(s->visited, cap * sizeof(*v));
        if (!v) {
            s->oom = 1;
            return 0;
        }
        s->visited = v;
        s->cap = cap;
    }
    s->visited[s->nvisited++] = blk;
    check_set_bit(s->visit, blk);
    return 1;
}

/* Strict check of an extent found in a leaf whose checksum is wrong: true
 * only if it is valid and every block it maps is marked in use in the
 * bitmap and claimed by no readable tree (a damaged start or length almost
 * always breaks one of these). */
static int extent_trustworthy(struct salvage *s, uint64_t key, const void *val, size_t len)
{
    struct check *c = s->c;
    struct mmapfs_disk_extent e;
    if (len != sizeof(e))
        return 0;
    memcpy(&e, val, sizeof(e));
    if (e.len == 0 || (e.flags & ~MMAPFS_EXTENT_UNWRITTEN) || key >= MAX_FILE_BLOCKS ||
        e.len > MAX_FILE_BLOCKS - key || e.start < c->data_start ||
        e.start >= c->block_count || e.len > c->block_count - e.start ||
        fsck_in_itab(c, e.start, e.len))
        return 0;
    if ((e.flags & MMAPFS_EXTENT_UNWRITTEN) && !S_ISREG(s->mode))
        return 0;
    for (uint64_t b = e.start; b < e.start + e.len; b++)
        if (check_bits_get(&c->claimed, b) || !fsck_block_bit(c, b))
            return 0;
    return 1;
}

/* Takes the items of a leaf. */
static void salvage_leaf(struct salvage *s, const uint8_t *p, int sum_ok)
{
    struct mmapfs_disk_btree_header h;
    memcpy(&h, p, sizeof(h));
    unsigned n = h.nitems;
    if (HDR_SIZE + (uint64_t)n * ITEM_SIZE > MMAPFS_BLOCK_SIZE)
        n = (MMAPFS_BLOCK_SIZE - HDR_SIZE) / ITEM_SIZE;
    for (unsigned i = 0; i < n; i++) {
        struct mmapfs_disk_btree_item it;
        memcpy(&it, p + HDR_SIZE + i * ITEM_SIZE, sizeof(it));
        if (it.value_len < 1 || it.value_len > MMAPFS_BTREE_MAX_VALUE ||
            it.value_off < HDR_SIZE + n * ITEM_SIZE ||
            (unsigned)it.value_off + it.value_len > MMAPFS_BLOCK_SIZE) {
            s->dropped++;
            continue;
        }
        const uint8_t *val = p + it.value_off;
        if (!sum_ok && !(s->type == MMAPFS_TREE_DIR
                             ? fsck_dent_trustworthy(s->c, it.key, val, it.value_len)
                             : extent_trustworthy(s, it.key, val, it.value_len))) {
            s->dropped++;
            continue;
        }
        if (!s->collect) {
            if (s->type == MMAPFS_TREE_EXTENTS)
                reserve_extent(s, val, it.value_len);
        } else if (fsck_items_add(&s->items, it.key, val, it.value_len)) {
            s->oom = 1;
            return;
        }
    }
}

/* Visits node blk, which must be below level max_level + 1. */
static void salvage_node(struct salvage *s, uint64_t blk, unsigned max_level)
{
    struct check *c = s->c;
    if (blk < c->data_start || blk >= c->block_count) {
        s->nodes_bad++;
        return;
    }
    if (s->oom || !visit(s, blk))
        return;
    if (!s->collect)
        fsck_bits_set(&c->taken, blk);
    const uint8_t *p = fsck_block(c, blk);
    struct mmapfs_disk_btree_header h;
    if (!p) {
        s->nodes_bad++;
        return;
    }
    memcpy(&h, p, sizeof(h));
    if (h.magic != MMAPFS_BTREE_MAGIC || h.owner != s->ino || h.type != s->type ||
        h.level > max_level) {
        s->nodes_bad++;
        return;
    }
    int sum_ok = h.checksum == bt_block_checksum(blk, p);
    if (sum_ok)
        s->nodes_ok++;
    else
        s->nodes_bad++;
    if (h.level == 0) {
        salvage_leaf(s, p, sum_ok);
        return;
    }
    unsigned n = h.nitems;
    if (n > (MMAPFS_BLOCK_SIZE - HDR_SIZE) / PTR_SIZE)
        n = (MMAPFS_BLOCK_SIZE - HDR_SIZE) / PTR_SIZE;
    for (unsigned i = 0; i < n; i++) {
        struct mmapfs_disk_btree_ptr e;
        memcpy(&e, p + HDR_SIZE + i * PTR_SIZE, sizeof(e));
        salvage_node(s, e.child, h.level - 1u);
    }
}

/* fsck_inline_extents callback: an inline extent as a leaf item of a
 * leaf with a right checksum (the record's checksum is right). */
static int salvage_inline_item(void *ctx, uint64_t key, const void *val, size_t len)
{
    struct salvage *s = ctx;
    if (!s->collect)
        reserve_extent(s, val, len);
    else if (fsck_items_add(&s->items, key, val, len))
        s->oom = 1;
    return 0;
}

/* Takes the inline extents of di (an unpacked area: those before the gap). */
static void salvage_inline(struct salvage *s, const struct mmapfs_disk_inode *di)
{
    if (fsck_inline_extents(di, salvage_inline_item, s))
        s->dropped++;
}

/* Walks the tree of s->ino from root; clears the visit bits afterwards. */
static void salvage_walk(struct salvage *s, uint64_t root)
{
    if (root)
        salvage_node(s, root, MMAPFS_BTREE_MAX_LEVEL);
    for (size_t i = 0; i < s->nvisited; i++)
        check_clear_bit(s->visit, s->visited[i]);
    s->nvisited = 0;
}

/* Does [start, start+len) hold a block pass 1 found claimed twice that no
 * salvaged extent of the inode but item skip maps (a block of another
 * owner, or a tree node)? */
static int claims_foreign(struct salvage *s, uint64_t start, uint64_t len, size_t skip)
{
    struct check *c = s->c;
    for (uint64_t b = fsck_bits_next(&c->dup, start, start + len); b < start + len;
         b = fsck_bits_next(&c->dup, b + 1, start + len)) {
        int own = 0;
        for (size_t i = 0; i < s->items.n && !own; i++) {
            struct mmapfs_disk_extent e;
            if (i == skip || s->items.v[i].len != sizeof(e))
                continue;
            memcpy(&e, s->items.v[i].val, sizeof(e));
            own = b >= e.start && b - e.start < e.len;
        }
        if (!own)
            return 1;
    }
    return 0;
}

/* Cleans salvaged extents (sorted by key) into out: drops bad ones, trims
 * overlaps. Of two extents that overlap, the later one loses the shared
 * range, unless the earlier one's overlapping tail runs over blocks of
 * other owners and the later one does not: then the earlier one grew
 * (a damaged length) and is cut where the later one starts, which keeps
 * the good extents after it. Sets *data to the blocks kept. 0 or -ENOMEM. */
static int clean_extents(struct salvage *s, uint32_t mode, struct check_items *out,
                         uint64_t *data)
{
    struct check *c = s->c;
    struct mmapfs_disk_extent prev;    /* the last extent kept, not yet in out */
    uint64_t prev_key = 0;
    size_t prev_i = 0;
    int have = 0;
    *data = 0;
    for (size_t i = 0; i < s->items.n; i++) {
        const struct check_item *it = &s->items.v[i];
        struct mmapfs_disk_extent e;
        uint64_t key = it->key;
        if (i > 0 && it->key == s->items.v[i - 1].key)
            continue;                       /* a duplicate key: the first one stays */
        if (it->len != sizeof(e)) {
            s->dropped++;
            continue;
        }
        memcpy(&e, it->val, sizeof(e));
        e.flags &= MMAPFS_EXTENT_UNWRITTEN;
        if (e.len == 0 || key >= MAX_FILE_BLOCKS || ((e.flags & MMAPFS_EXTENT_UNWRITTEN) &&
                                                    !S_ISREG(mode))) {
            s->dropped++;
            continue;
        }
        if (e.len > MAX_FILE_BLOCKS - key)
            e.len = (uint32_t)(MAX_FILE_BLOCKS - key);
        if (e.start < c->data_start || e.start >= c->block_count ||
            e.len > c->block_count - e.start || fsck_in_itab(c, e.start, e.len)) {
            s->dropped++;
            continue;
        }
        if (have && key < prev_key + prev.len) {
            uint64_t skip = key - prev_key;
            if (key > prev_key &&
                claims_foreign(s, prev.start + skip, prev.len - skip, prev_i) &&
                !claims_foreign(s, e.start, e.len, i)) {
                prev.len = (uint32_t)skip;
            } else {
                uint64_t d = prev_key + prev.len - key;
                if (d >= e.len) {
                    s->dropped++;
                    continue;
                }
                key += d;
                e.start += d;
                e.len -= (uint32_t)d;
            }
        }
        if (have && fsck_items_add(out, prev_key, &prev, sizeof(prev)))
            return -ENOMEM;
        *data += have ? prev.len : 0;
        prev = e;
        prev_key = key;
        prev_i = i;
        have = 1;
    }
    if (have && fsck_items_add(out, prev_key, &prev, sizeof(prev)))
        return -ENOMEM;
    *data += have ? prev.len : 0;
    return 0;
}

/* Drops directory items with a repeated key (the first one stays). */
static int clean_dirents(struct salvage *s, struct check_items *out)
{
    for (size_t i = 0; i < s->items.n; i++) {
        const struct check_item *it = &s->items.v[i];
        if (i > 0 && it->key == s->items.v[i - 1].key) {
            s->dropped++;
            continue;
        }
        if (fsck_items_add(out, it->key, it->val, it->len))
            return -ENOMEM;
    }
    return 0;
}

/* A rebuilt tree waiting for its inode to point at it. */
struct rebuilt {
    uint64_t ino, root, nodes, data, count;
};

/* Salvages and rebuilds the tree of ino. 1 built (*r filled), 0 not
 * possible (reported), -errno. */
static int salvage_one(struct salvage *s, uint64_t ino, struct rebuilt *r)
{
    struct check *c = s->c;
    struct mmapfs_disk_inode di;
    struct check_items clean = { 0 };
    int err = fsck_read_inode(c, ino, &di);
    if (err)
        return err;
    int dir = S_ISDIR(di.mode);
    s->ino = ino;
    s->type = dir ? MMAPFS_TREE_DIR : MMAPFS_TREE_EXTENTS;
    s->mode = di.mode;
    s->collect = 1;
    s->nodes_ok = s->nodes_bad = s->dropped = 0;
    salvage_walk(s, di.tree_root);
    salvage_inline(s, &di);
    if (s->oom) {
        err = -ENOMEM;
        goto out;
    }
    fsck_items_sort(&s->items);
    uint64_t data = 0;
    err = dir ? clean_dirents(s, &clean) : clean_extents(s, di.mode, &clean, &data);
    if (err)
        goto out;
    *r = (struct rebuilt){ .ino = ino, .data = data, .count = clean.n };
    err = fsck_build_tree(c, ino, s->type, &clean, &r->root, &r->nodes);
    if (err == -ENOSPC || err == -EFBIG) {
        fsck_error(c, "inode %" PRIu64 ": cannot rebuild its %s: no free space", ino,
                    dir ? "directory index" : "extent tree");
        err = 0;
        goto out;
    }
    if (err)
        goto out;
    if (dir)
        fsck_repaired(c, "directory %" PRIu64 ": index rebuilt from what was readable: %"
                       PRIu64 " entries kept, %" PRIu64 " dropped, %" PRIu64 " damaged "
                       "node%s; inodes left without a name go to /lost+found", ino,
                       (uint64_t)clean.n, s->dropped, s->nodes_bad,
                       s->nodes_bad == 1 ? "" : "s");
    else
        fsck_repaired(c, "inode %" PRIu64 ": extent tree rebuilt from what was readable: %"
                       PRIu64 " extents (%" PRIu64 " blocks) kept, %" PRIu64 " dropped, %"
                       PRIu64 " damaged node%s; dropped ranges read as holes", ino,
                       (uint64_t)clean.n, data, s->dropped, s->nodes_bad,
                       s->nodes_bad == 1 ? "" : "s");
    err = 1;
out:
    fsck_items_free(&clean);
    fsck_items_free(&s->items);
    return err;
}

/* Points inode r->ino at its rebuilt tree. */
static int switch_tree(struct check *c, const struct rebuilt *r)
{
    struct mmapfs_disk_inode di;
    int err = fsck_read_inode(c, r->ino, &di);
    if (err)
        return err;
    fsck_inline_to_tree(&di, r->root);
    di.blocks = r->nodes + r->data + (di.xattr_block ? 1 : 0);
    if (S_ISDIR(di.mode))
        di.size = r->count;
    return fsck_write_inode(c, r->ino, &di);
}

/* See fsck_i.h. */
int fsck_repair_salvage(struct check *c)
{
    struct salvage s = { .c = c };
    struct rebuilt *done = calloc(c->nsalvage, sizeof(*done));
    size_t ndone = 0;
    int err = fsck_begin_repair(c);
    s.visit = calloc(1, (size_t)((c->block_count + 7) / 8));
    if (!err && (!done || !s.visit))
        err = -ENOMEM;
    /* reserve every block the salvaged trees may still need */
    for (uint64_t ino = fsck_ci_next(c, 1); !err && ino <= c->inode_count;
         ino = fsck_ci_next(c, ino + 1)) {
        if (!(fsck_ci(c, ino)->rflags & RF_SALVAGE))
            continue;
        struct mmapfs_disk_inode di;
        err = fsck_read_inode(c, ino, &di);
        if (err)
            break;
        s.ino = ino;
        s.type = S_ISDIR(di.mode) ? MMAPFS_TREE_DIR : MMAPFS_TREE_EXTENTS;
        s.mode = di.mode;
        s.collect = 0;
        salvage_walk(&s, di.tree_root);
        salvage_inline(&s, &di);
        if (s.oom)
            err = -ENOMEM;
    }
    for (uint64_t ino = fsck_ci_next(c, 1); !err && ino <= c->inode_count && ndone < c->nsalvage;
         ino = fsck_ci_next(c, ino + 1)) {
        if (!(fsck_ci(c, ino)->rflags & RF_SALVAGE))
            continue;
        int r = salvage_one(&s, ino, &done[ndone]);
        if (r < 0)
            err = r;
        else
            ndone += (size_t)r;
    }
    /* the new trees are durable before any inode points at them */
    if (!err && ndone)
        err = fsck_io_sync(c);
    for (size_t i = 0; !err && i < ndone; i++) {
        err = switch_tree(c, &done[i]);
        c->repairs++;
    }
    if (!err && ndone)
        err = fsck_io_sync(c);
    fsck_items_free(&s.items);
    free(s.visited);
    free(s.visit);
    free(done);
    return err ? err : ndone > 0;
}
