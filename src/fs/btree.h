/*
 * bt — copy-free B+tree over 4 KiB metadata blocks, keyed by uint64_t with
 * variable-length values (1..MMAPFS_BTREE_MAX_VALUE bytes). Used for file
 * extent maps and directory indexes. Node layout: src/fs/format.h.
 *
 * The tree knows nothing of journals: it reaches blocks through a
 * struct bt_store supplied by the caller (the fs binds it to the journal;
 * tests bind it to memory). Every node read is validated (magic, checksum,
 * owner, type, level, item bounds); a bad node gives -EUCLEAN and is never
 * trusted further. Nodes that a function modifies get their checksum
 * recomputed before it returns.
 *
 * All functions return 0 or a negative errno: -ENOENT (no such key),
 * -EEXIST, -ENOSPC (allocation failed), -EUCLEAN (corrupt node),
 * -EINVAL (value too long), -EIO (store could not read a block).
 * Not thread safe: the caller serialises (the journal lock).
 */
#ifndef MMAPFS_BTREE_H
#define MMAPFS_BTREE_H

#include <stddef.h>
#include <stdint.h>

#include "fs/format.h"

struct bt_store {
    void *ctx;
    /* Current content of blk, or NULL (-EIO). */
    const void *(*read)(void *ctx, uint64_t blk);
    /* Writable content of blk (same bytes as read), or NULL (-EIO/-ENOMEM). */
    void *(*write)(void *ctx, uint64_t blk);
    /* A new block near 'goal' (0 = anywhere), returned writable and zeroed
     * through *out. 0 or -ENOSPC. */
    int (*alloc)(void *ctx, uint64_t goal, uint64_t *blk, void **out);
    /* blk is no longer part of the tree. */
    void (*free)(void *ctx, uint64_t blk);
};

struct bt_tree {
    const struct bt_store *store;
    uint64_t root;      /* root block, 0 = empty tree; updated by the
                           functions below: the caller persists it (inode
                           tree_root) when it changes */
    uint64_t owner;     /* inode number written in / checked against nodes */
    uint16_t type;      /* enum mmapfs_tree_type */
};

/* Exact lookup. Copies up to *len bytes of the value into val (val may be
 * NULL) and sets *len to the value's real length. */
int bt_lookup(struct bt_tree *t, uint64_t key, void *val, size_t *len);

/* Greatest key <= key (extent covering a block). *found = that key. */
int bt_lookup_le(struct bt_tree *t, uint64_t key, uint64_t *found, void *val, size_t *len);

/* Smallest key >= key (iteration: call again with *found + 1). -ENOENT at end. */
int bt_lookup_ge(struct bt_tree *t, uint64_t key, uint64_t *found, void *val, size_t *len);

/* Inserts a new key. -EEXIST if present. */
int bt_insert(struct bt_tree *t, uint64_t key, const void *val, size_t len);

/* Replaces the value of an existing key (length may change). -ENOENT. */
int bt_update(struct bt_tree *t, uint64_t key, const void *val, size_t len);

/* Removes a key; empty nodes are freed and a root with one child collapses. */
int bt_delete(struct bt_tree *t, uint64_t key);

/* Frees every node; t->root becomes 0. */
int bt_destroy(struct bt_tree *t);

/* Number of nodes of the tree (for inode block counts / statistics). */
int bt_count_nodes(struct bt_tree *t, uint64_t *nodes);

/* fsck: walks the whole tree, validating every node and the key order across
 * nodes; calls node_fn for every node block and item_fn for every item (either
 * may be NULL). A callback's non-zero return stops the walk and is returned.
 * Returns -EUCLEAN on the first structural error (describing it in
 * err_msg[err_len] when err_msg is not NULL). */
struct bt_walk {
    int (*node_fn)(void *ctx, uint64_t blk, unsigned level);
    int (*item_fn)(void *ctx, uint64_t key, const void *val, size_t len);
    void *ctx;
    char *err_msg;
    size_t err_len;
};
int bt_walk(struct bt_tree *t, struct bt_walk *w);

/* Checksum helper shared with fsck/xattr: crc32c(le64 blk ‖ block[8..4096)). */
uint32_t bt_block_checksum(uint64_t blk, const void *block);

#endif
