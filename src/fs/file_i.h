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

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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
/* ... or once it has unmapped this many extents: emptied leaves are freed
 * and leave the transaction again, so a file of many small extents,
 * unmapped from its end, never filled the budget and was released in one
 * step (0.56 s for 131072 extents, every other operation waiting). */
#define FILE_STEP_EXTENTS 4096u

struct fextent {
    uint64_t lblk, pblk, len;
    uint32_t flags;           /* MMAPFS_EXTENT_UNWRITTEN */
};

static inline uint64_t fext_end(const struct fextent *e)
{
    return e->lblk + e->len;
}

/* The extent map of one inode, bound to the journal. Lock held. On an
 * image with inode-resident data (fs_inode_data) the first
 * MMAPFS_INLINE_EXTENTS extents live in the inode (ext[], copied from and
 * back to inline_area); an insert that does not fit moves them into a
 * tree, and fs_fmap_unmap_step moves a tree that has become small enough back
 * into the inode. Callers see one map either way. */
struct fmap {
    struct fs *fs;
    uint64_t ino;
    struct fs_tree_ctx ctx;
    struct bt_tree tree;
    int in_inode;            /* the map is ext[0..count) (tree.root is 0) */
    int dirty;               /* ext[] changed: fs_fmap_sync writes inline_area */
    int data_inline;         /* the inode holds data bytes: the map is empty
                              * and may not change (fs_file_uninline first) */
    unsigned count;
    struct fextent ext[MMAPFS_INLINE_EXTENTS];
};

/* Does the image keep extents and small data in inodes? */
static inline int fs_inode_data(const struct fs *fs)
{
    return (fs->feature_incompat & MMAPFS_FEATURE_INCOMPAT_INODE_DATA) != 0;
}

/* Opens the map of inode ino from its record di (validated by fs_inode_get). */
void fs_fmap_open_inode(struct fmap *m, struct fs *fs, uint64_t ino,
                     const struct mmapfs_disk_inode *di);
/* The same, in the form the callers have always used: root must be the
 * tree_root field of the record (fmap_open(&m, fs, ino, di->tree_root)). */
#define fmap_open(m, fs, ino, root)                                                    \
    fs_fmap_open_inode((m), (fs), (ino),                                                   \
                    (const struct mmapfs_disk_inode *)(const void *)(                  \
                        (const char *)&(root) - offsetof(struct mmapfs_disk_inode, tree_root)))
/* Stores the map (tree root or inline extents, inode flags) and the node
 * count change into di. */
void fs_fmap_sync(struct fmap *m, struct mmapfs_disk_inode *di);

/* The extent containing lblk: 0 and *e; or -ENOENT (a hole) with *next =
 * the first mapped block after lblk (UINT64_MAX if none). -EUCLEAN. */
int fs_fmap_find(struct fmap *m, uint64_t lblk, struct fextent *e, uint64_t *next);
/* The extent with the greatest lblk <= lblk (it may end before lblk).
 * -ENOENT if none. */
int fs_fmap_find_le(struct fmap *m, uint64_t lblk, struct fextent *e);
int fs_fmap_insert(struct fmap *m, const struct fextent *e);
/* Replaces the extent stored under key e->lblk (same key). */
int fs_fmap_update(struct fmap *m, const struct fextent *e);
int fs_fmap_delete(struct fmap *m, uint64_t lblk);

/* Data blocks [pblk, pblk+n) of file ino were overwritten in place: if
 * the journal still holds an older image of one of them
 * (jnl_data_overwrite), the file's fsync and fdatasync must wait for the
 * running transaction. (The writers clear the blocks' verified bits
 * themselves, before writing: verified.c.) Lock held. */
void fs_file_data_overwritten(struct fs *fs, uint64_t ino, uint64_t pblk, uint64_t n);

/* Writes zeros over bytes [from, to) of the file where it is mapped and
 * written (holes and unwritten extents already read as zeros). */
int fs_fmap_zero_bytes(struct fmap *m, uint64_t from, uint64_t to);

/* Unmaps logical blocks [from, to), highest first, freeing their blocks,
 * until done (*done = 1), the journal step has grown by FILE_STEP_BUDGET
 * blocks since 'base' (jnl_running_blocks) or FILE_STEP_EXTENTS extents
 * were unmapped. Updates di->blocks; *low
 * receives the lowest block unmapped so far (unchanged if none). */
int fs_fmap_unmap_step(struct fmap *m, struct mmapfs_disk_inode *di, uint64_t from,
                    uint64_t to, uint64_t base, uint64_t *low, int *done);

/* ---- inode-resident data (file_inline.c, file.c) ---- */

/* Copies bytes [off, off+len) (within size) of an inline-data inode. */
void fs_file_inline_read(const struct mmapfs_disk_inode *di, uint64_t off, void *buf, size_t len);
/* Writes [off, off+len) into the inode when the file keeps (or may start
 * keeping) its bytes there and the result fits: returns len (di changed,
 * not put; size not updated). Returns 0 when the write is for the block
 * path: di is then not inline (fs_file_uninline moved its bytes to a block
 * if it was). -errno. */
ssize_t fs_file_inline_write(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di,
                          uint64_t off, const void *buf, size_t len);
/* Truncate of an inline-data inode to size <= MMAPFS_INLINE_BYTES. */
void fs_file_inline_truncate(struct mmapfs_disk_inode *di, uint64_t size);
/* Moves the bytes of an inline-data inode into a new data block (mapped
 * at logical block 0) in the running transaction; no-op for another
 * inode. On error di is unchanged. */
int fs_file_uninline(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di);

/* Puts di, ends the journal step and begins another, re-reads di (another
 * operation may have changed it in between). The lock is held on return,
 * even on error. */
int fs_file_next_step(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di);

/* One attempt of fs_fallocate for FALLOC_FL_COLLAPSE_RANGE or
 * FALLOC_FL_INSERT_RANGE (file_shift.c), journal operation held; the
 * caller checked len > 0 and off + len <= MMAPFS_MAX_FILE_SIZE. *retry_ok
 * = 0 once something changed (an -ENOSPC must not be retried then). */
int fs_file_shift_locked(struct fs *fs, uint64_t ino, int mode, uint64_t off, uint64_t len,
                      int *retry_ok);

/* Has the running step grown past the budget since base? */
static inline int file_step_full(struct fs *fs, uint64_t base)
{
    return jnl_running_blocks(fs->jnl) - base > FILE_STEP_BUDGET;
}

#endif
