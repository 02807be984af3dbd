/*
 * Private to src/fs/btree*.c: node accessors, validation, root-to-leaf
 * paths and the node-local primitives used by the tree operations.
 *
 *   btree_node.c  checksum, validation, leaf/internal node primitives
 *   btree.c       descent, lookups, insert/update/delete
 *   btree_walk.c  bt_walk (fsck), bt_count_nodes, bt_destroy
 *
 * Separator keys (format.h, "B+tree nodes"): entry i of an internal node
 * is EXACTLY the smallest key of child i's subtree, so key_0 of every node
 * is the smallest key of its subtree and child i holds the keys k with
 * key_i <= k < key_{i+1}. Inserting a new smallest key rewrites key_0 along
 * the (leftmost) path; deleting the first key of a node rewrites the
 * parent's separator, upward while the node was its parent's child 0. Every
 * node read below the root is checked against its parent: first key ==
 * the parent's separator, last key < the next separator (or the bound
 * inherited from further up). Two parents can therefore never share a
 * child, and a child pointer to the wrong node of the right level fails.
 */
#ifndef MMAPFS_BTREE_I_H
#define MMAPFS_BTREE_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fs/btree.h"

/* ---- layout constants ----------------------------------------------------- */

#define BT_HDR_SIZE   ((unsigned)sizeof(struct mmapfs_disk_btree_header))  /* 32 */
#define BT_ITEM_SIZE  ((unsigned)sizeof(struct mmapfs_disk_btree_item))    /* 12 */
#define BT_PTR_SIZE   ((unsigned)sizeof(struct mmapfs_disk_btree_ptr))     /* 16 */
#define BT_SPACE      (MMAPFS_BLOCK_SIZE - BT_HDR_SIZE)                     /* 4064 */
/* Values are >= 1 byte and never overlap: at most 312 items in a leaf. */
#define BT_LEAF_MAX   (BT_SPACE / (BT_ITEM_SIZE + 1))
#define BT_INT_MAX    (BT_SPACE / BT_PTR_SIZE)                              /* 254 */
#define BT_MAX_HEIGHT (MMAPFS_BTREE_MAX_LEVEL + 1)

/* ---- accessors (blocks are at least 8-byte aligned) ------------------------ */

static inline struct mmapfs_disk_btree_header *bt_hdr(void *p)
{
    return (struct mmapfs_disk_btree_header *)p;
}

static inline const struct mmapfs_disk_btree_header *bt_chdr(const void *p)
{
    return (const struct mmapfs_disk_btree_header *)p;
}

static inline struct mmapfs_disk_btree_item *bt_items(void *p)
{
    return (struct mmapfs_disk_btree_item *)((uint8_t *)p + BT_HDR_SIZE);
}

static inline const struct mmapfs_disk_btree_item *bt_citems(const void *p)
{
    return (const struct mmapfs_disk_btree_item *)((const uint8_t *)p + BT_HDR_SIZE);
}

static inline struct mmapfs_disk_btree_ptr *bt_ptrs(void *p)
{
    return (struct mmapfs_disk_btree_ptr *)((uint8_t *)p + BT_HDR_SIZE);
}

static inline const struct mmapfs_disk_btree_ptr *bt_cptrs(const void *p)
{
    return (const struct mmapfs_disk_btree_ptr *)((const uint8_t *)p + BT_HDR_SIZE);
}

static inline unsigned bt_nitems(const void *p)
{
    return bt_chdr(p)->nitems;
}

static inline unsigned bt_level(const void *p)
{
    return bt_chdr(p)->level;
}

/* Key i of a validated node (leaf item or internal entry). */
static inline uint64_t bt_key(const void *p, unsigned i)
{
    return bt_level(p) ? bt_cptrs(p)[i].key : bt_citems(p)[i].key;
}

/* ---- validation (btree_node.c) ---------------------------------------------- */

/* What the parent says about a child: its first key must equal lo, every
 * key must be < hi. Unset fields are not checked (the root). */
struct bt_bounds {
    uint64_t lo, hi;
    bool lo_set, hi_set;
};

/* Checks node 'p' read from block blk: magic, checksum, owner, type, level
 * (== level when level >= 0, else <= MMAPFS_BTREE_MAX_LEVEL), item bounds,
 * strictly increasing keys, and the bounds b (may be NULL). 0 or -EUCLEAN
 * with *why (may be NULL) set to a static description. */
int bt_node_check(const struct bt_tree *t, uint64_t blk, const void *p, int level,
                  const struct bt_bounds *b, const char **why);

/* Reads block blk through the store and checks it (bt_node_check).
 * 0, -EIO (store returned NULL) or -EUCLEAN. */
int bt_node_read(const struct bt_tree *t, uint64_t blk, int level,
                 const struct bt_bounds *b, const uint8_t **out, const char **why);

/* Bounds for child i of internal node p, whose own bounds are pb. */
void bt_child_bounds(const void *p, unsigned i, const struct bt_bounds *pb,
                     struct bt_bounds *out);

/* ---- node primitives (btree_node.c); nodes are validated, sizes checked ---- */

/* Writes a fresh header (magic, owner, type, level, no items) over p. */
void bt_node_init(const struct bt_tree *t, void *p, unsigned level);

/* Bytes of the leaf's 4064-byte area in use: item headers + live values. */
unsigned bt_leaf_used(const void *p);

/* Inserts (insert) or replaces the value of item pos; the caller checked
 * that bt_leaf_used() after the change is <= BT_SPACE. Compacts the value
 * heap when the contiguous gap is too small. */
void bt_leaf_put(void *p, unsigned pos, bool insert, uint64_t key,
                 const void *val, unsigned len);

/* Removes item pos (the leaf keeps at least one item). */
void bt_leaf_remove(void *p, unsigned pos);

/* Splits leaf 'left' with item pos inserted (insert) or replaced into
 * left and 'right' (a zeroed block): by bytes, balanced, or with 'left'
 * kept full when append. Returns right's first key (the separator). */
uint64_t bt_leaf_split(const struct bt_tree *t, void *left, void *right, unsigned pos,
                       bool insert, uint64_t key, const void *val, unsigned len,
                       bool append);

/* Inserts entry {key, child} at position pos (nitems < BT_INT_MAX). */
void bt_int_insert(void *p, unsigned pos, uint64_t key, uint64_t child);

/* Removes entry pos (the node keeps at least one entry). */
void bt_int_remove(void *p, unsigned pos);

/* Splits full internal node 'left' with {key, child} inserted at pos into
 * left and 'right' (half and half, or left kept full when append).
 * Returns right's first key. */
uint64_t bt_int_split(const struct bt_tree *t, void *left, void *right, unsigned pos,
                      uint64_t key, uint64_t child, bool append);

/* ---- paths (btree.c) ---------------------------------------------------------- */

/* One node of a root-to-leaf path. idx: internal = child followed; leaf =
 * position of the key (found) or where it would be inserted. */
struct bt_level {
    uint64_t blk;
    const uint8_t *node;   /* validated content; == w once w is set */
    uint8_t *w;            /* writable shadow, NULL until needed */
    unsigned idx;
    struct bt_bounds b;
};

struct bt_path {
    unsigned height;       /* root level + 1 */
    bool found;            /* leaf item idx has the key */
    struct bt_level lv[BT_MAX_HEIGHT];   /* indexed by level: lv[0] = leaf */
};

#endif
