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
 *
 * Errors are atomic: a modifying function reads and validates every node
 * it needs, gets every writable copy and allocates every new block before
 * its first change, so on any error the tree is exactly as before (blocks
 * it allocated are freed again, writable copies obtained are unchanged).
 *
 * Separator keys: entry i of an internal node is exactly the smallest key
 * of child i's subtree (so key_0 is the smallest key of the node's subtree,
 * as format.h says); reads check it (a child's first key must equal its
 * separator, its last key must be below the next one). Nodes never have 0
 * items on disk: the empty tree is root 0.
 *
 * Block pointers from the store must be 8-byte aligned and stay valid
 * until the caller drops its lock; after write(blk) the tree no longer
 * uses an earlier read(blk) pointer (a shadow may live elsewhere).
 * Implementation: src/fs/btree.c, btree_node.c, btree_walk.c.
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
    /* Optional (may be NULL): 1 if blk's current content needs no checksum
     * verification on read: produced by this process through this store
     * (an in-memory copy written by the tree code, e.g. a journal shadow),
     * or verified before and unchanged since. Every other check still
     * runs. */
    int (*trusted)(void *ctx, uint64_t blk);
    /* Optional (may be NULL): blk's checksum has just been verified. */
    void (*verified)(void *ctx, uint64_t blk);
};

/* Most blocks one insert/update/delete changes: each path node (height <=
 * MMAPFS_BTREE_MAX_LEVEL + 1) plus one new node per split and a new root.
 * bt_destroy only frees. */
#define BT_MAX_OP_BLOCKS (2 * (MMAPFS_BTREE_MAX_LEVEL + 1) + 1)

struct bt_tree {
    const struct bt_store *store;
    uint64_t root;      /* root block, 0 = empty tree; updated by the
                           functions below: the caller persists it (inode
                           tree_root) when it changes */
    uint64_t owner;     /* inode number written in / checked against nodes */
    uint16_t type;      /* enum mmapfs_tree_type */
};

/* Exact lookup. Copies up to *len bytes of the value into val (val may be
 * NULL) and sets *len to the value's real length (len may be NULL: nothing
 * is copied). O(height) node reads, binary search inside each node. */
int bt_lookup(struct bt_tree *t, uint64_t key, void *val, size_t *len);

/* Greatest key <= key (extent covering a block). *found = that key. */
int bt_lookup_le(struct bt_tree *t, uint64_t key, uint64_t *found, void *val, size_t *len);

/* Smallest key >= key (iteration: call again with *found + 1). -ENOENT at end.
 * Both cross leaf boundaries (up the path, down the neighbouring subtree). */
int bt_lookup_ge(struct bt_tree *t, uint64_t key, uint64_t *found, void *val, size_t *len);

/* Calls fn for every item with a key >= key, in key order, with a pointer
 * to its value (valid during the call only); one descent for the whole
 * scan. Stops at fn's first non-zero return, which it returns; 0 at the
 * end. The tree must not change during the scan. */
int bt_scan_ge(struct bt_tree *t, uint64_t key,
               int (*fn)(void *ctx, uint64_t key, const void *val, size_t len), void *ctx);

/* Inserts a new key. -EEXIST if present. -EINVAL if len is 0 or above
 * MMAPFS_BTREE_MAX_VALUE or val is NULL. Appends after the largest key
 * split so that the left node stays full (dense sequential trees). */
int bt_insert(struct bt_tree *t, uint64_t key, const void *val, size_t len);

/* Replaces the value of an existing key (length may change). -ENOENT. */
int bt_update(struct bt_tree *t, uint64_t key, const void *val, size_t len);

/* Removes a key; empty nodes are freed and a root with one child collapses. */
int bt_delete(struct bt_tree *t, uint64_t key);

/* Frees every node; t->root becomes 0. The whole tree is validated first
 * (as bt_walk): a corrupt tree gives -EUCLEAN/-EIO and nothing is freed. */
int bt_destroy(struct bt_tree *t);

/* Number of nodes of the tree (for inode block counts / statistics). Reads
 * the internal nodes only (leaves are counted from their parents). */
int bt_count_nodes(struct bt_tree *t, uint64_t *nodes);

/* fsck: walks the whole tree, validating every node and the key order across
 * nodes; calls node_fn for every node block and item_fn for every item (either
 * may be NULL). A callback's non-zero return stops the walk and is returned.
 * Returns -EUCLEAN on the first structural error (describing it in
 * err_msg[err_len] when err_msg is not NULL; err_msg is "" on success), or
 * -EIO (also described) when the store cannot read a node. Nodes are
 * visited parent first, items in strictly increasing key order. w may be
 * NULL (validation only). */
struct bt_walk {
    int (*node_fn)(void *ctx, uint64_t blk, unsigned level);
    int (*item_fn)(void *ctx, uint64_t key, const void *val, size_t len);
    void *ctx;
    char *err_msg;
    size_t err_len;
};
int bt_walk(struct bt_tree *t, struct bt_walk *w);

/* Checksum helper shared with fsck/xattr: mfs_crc32c(le64 blk ‖ block[8..4096)). */
uint32_t bt_block_checksum(uint64_t blk, const void *block);

#endif
