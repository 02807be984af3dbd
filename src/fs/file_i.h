/*
 * Private to the file data code of the fs core (file.c, file_map.c,
 * file_trunc.c) and inode.c: the extent map of one inode and the helpers
 * that split long operations into journal steps.
 *
 * An extent maps logical blocks [lblk, lblk+len) of a file to physical
 * blocks [pblk, pblk+len); extents never overlap. Unwritten extents
 * (fallocate) read as zeros. Every extent read from the tree is validated.
 */
#ifndef MMAPFS_FILE_I_H
#define MMAPFS_FILE_I_H

#include <stdint.h>

#include "fs/fs_i.h"

/* Logical blocks a file may have (MMAPFS_MAX_FILE_SIZE / block size). */
#define FILE_MAX_BLOCKS (MMAPFS_MAX_FILE_SIZE >> MMAPFS_BLOCK_SHIFT)
/* Extents are not grown (merged) past this length, and at most this many
 * blocks are freed per tree change, so one change touches a bounded
 * number of bitmap blocks. */
#define FILE_EXTENT_MAX (1u << 18)
/* A long operation starts a new journal step once the current one has
 * added this many blocks to the running transaction (each tree change adds
 * well under JNL_MAX_OP_BLOCKS - FILE_STEP_BUDGET). */
#define FILE_STEP_BUDGET 128u

struct fextent {
    uint64_t lblk, pblk, len;
    uint32_t flags;           /* MMAPFS_EXTENT_UNWRITTEN */
};

static inline uint64_t fext_end(const struct fextent *e)
{
    return e->lblk + e->len;
}

/* The extent tree of one inode, bound to the journal. Lock held. */
struct fmap {
    struct fs *fs;
    uint64_t ino;
    struct fs_tree_ctx ctx;
    struct bt_tree tree;
};

void fmap_open(struct fmap *m, struct fs *fs, uint64_t ino, uint64_t root);
/* Stores the tree root and the node count change into di. */
void fmap_sync(struct fmap *m, struct mmapfs_disk_inode *di);

/* The extent containing lblk: 0 and *e; or -ENOENT (a hole) with *next =
 * the first mapped block after lblk (UINT64_MAX if none). -EUCLEAN. */
int fmap_find(struct fmap *m, uint64_t lblk, struct fextent *e, uint64_t *next);
/* The extent with the greatest lblk <= lblk (it may end before lblk).
 * -ENOENT if none. */
int fmap_find_le(struct fmap *m, uint64_t lblk, struct fextent *e);
int fmap_insert(struct fmap *m, const struct fextent *e);
/* Replaces the extent stored under key e->lblk (same key). */
int fmap_update(struct fmap *m, const struct fextent *e);
int fmap_delete(struct fmap *m, uint64_t lblk);

/* Data blocks [pblk, pblk+n) of file ino were overwritten in place: if
 * the journal still holds an older image of one of them
 * (jnl_data_overwrite), the file's fsync and fdatasync must wait for the
 * running transaction. Lock held. */
void file_data_overwritten(struct fs *fs, uint64_t ino, uint64_t pblk, uint64_t n);

/* Writes zeros over bytes [from, to) of the file where it is mapped and
 * written (holes and unwritten extents already read as zeros). */
int fmap_zero_bytes(struct fmap *m, uint64_t from, uint64_t to);

/* Unmaps logical blocks [from, to), highest first, freeing their blocks,
 * until done (*done = 1) or the journal step has grown by FILE_STEP_BUDGET
 * blocks since 'base' (jnl_running_blocks). Updates di->blocks; *low
 * receives the lowest block unmapped so far (unchanged if none). */
int fmap_unmap_step(struct fmap *m, struct mmapfs_disk_inode *di, uint64_t from,
                    uint64_t to, uint64_t base, uint64_t *low, int *done);

/* Puts di, ends the journal step and begins another, re-reads di (another
 * operation may have changed it in between). The lock is held on return,
 * even on error. */
int file_next_step(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di);

/* One attempt of fs_fallocate for FALLOC_FL_COLLAPSE_RANGE or
 * FALLOC_FL_INSERT_RANGE (file_shift.c), journal operation held; the
 * caller checked len > 0 and off + len <= MMAPFS_MAX_FILE_SIZE. *retry_ok
 * = 0 once something changed (an -ENOSPC must not be retried then). */
int file_shift_locked(struct fs *fs, uint64_t ino, int mode, uint64_t off, uint64_t len,
                      int *retry_ok);

/* Has the running step grown past the budget since base? */
static inline int file_step_full(struct fs *fs, uint64_t base)
{
    return jnl_running_blocks(fs->jnl) - base > FILE_STEP_BUDGET;
}

#endif
