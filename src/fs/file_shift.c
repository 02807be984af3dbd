/*
 * file_shift.c — FALLOC_FL_COLLAPSE_RANGE and FALLOC_FL_INSERT_RANGE:
 * removing or inserting whole blocks in the middle of a file, moving the
 * extents after them. Data blocks never move; only extent keys change
 * (the extent API of file_i.h: find, insert, delete, update).
 *
 * Errors follow Linux 6.x (VFS then ext4): -EOPNOTSUPP for a mode combined
 * with other flags (older kernels said -EINVAL); -EINVAL for len 0, offset
 * or length not a multiple of 4096, a collapse reaching or passing the end
 * of the file, an insert at or past it; -EFBIG past the maximum file size;
 * -EISDIR, -ENODEV for other types.
 *
 * Crash safety (docs/JOURNAL.md, "Collapse and insert range"): the whole
 * change is one journal operation, hence atomic, while it adds at most
 * FILE_STEP_BUDGET blocks to the running transaction: in practice several
 * thousand extents. Beyond that it continues in further steps, as ext4 does
 * (it restarts its handle while shifting); each step leaves an fsck-clean
 * file:
 *   collapse: the range is unmapped (size unchanged), then the extents
 *             after it move down in ascending order, then the size drops;
 *   insert:   the extent across the offset is split and the size grows
 *             first, then the extents from the offset up move up in
 *             descending order.
 * A crash between steps leaves a file with a hole of len bytes somewhere
 * between the offset and the old end: extents never overlap and every
 * extent lies below the size (except unwritten preallocation past it).
 */
#include <errno.h>
#include <linux/falloc.h>
#include <sys/stat.h>

#include "fs/file_i.h"

#define BS    ((uint64_t)MMAPFS_BLOCK_SIZE)
#define SHIFT MMAPFS_BLOCK_SHIFT

/* The running step of a multi-step shift: the tree and its budget. */
struct shift {
    struct fs *fs;
    uint64_t ino;
    struct mmapfs_disk_inode *di;
    struct fmap m;
    uint64_t base;            /* jnl_running_blocks at the start of the step */
    int changed;              /* something was changed (no retry then) */
};

static void shift_open(struct shift *s)
{
    fmap_open(&s->m, s->fs, s->ino, s->di->tree_root);
    s->base = jnl_running_blocks(s->fs->jnl);
}

/* Ends the step and begins another. */
static int shift_next(struct shift *s)
{
    fs_fmap_sync(&s->m, s->di);
    int err = fs_file_next_step(s->fs, s->ino, s->di);
    if (err)
        return err;
    shift_open(s);
    return 0;
}

/* Ends the step if its budget is spent and begins another. */
static int shift_step(struct shift *s)
{
    return file_step_full(s->fs, s->base) ? shift_next(s) : 0;
}

/* Re-keys extent e to new_lblk; the caller checked that the new position
 * is free. Insert first (it may fail), then delete. */
static int move_extent(struct fmap *m, const struct fextent *e, uint64_t new_lblk)
{
    struct fextent moved = *e;
    moved.lblk = new_lblk;
    int err = fs_fmap_insert(m, &moved);
    if (err)
        return err == -EEXIST ? -EBUSY : err;
    return fs_fmap_delete(m, e->lblk);
}

/* ==== collapse ============================================================== */

/* Unmaps [first, first + n) in steps (blocks freed, size unchanged). */
static int collapse_unmap(struct shift *s, uint64_t first, uint64_t n)
{
    for (;;) {
        uint64_t low = UINT64_MAX;
        int done;
        int err = fs_fmap_unmap_step(&s->m, s->di, first, first + n, s->base, &low, &done);
        fs_fmap_sync(&s->m, s->di);
        if (low != UINT64_MAX)
            s->changed = 1;
        if (err || done)
            return err;
        err = shift_next(s);
        if (err)
            return err;
    }
}

/* Moves every extent at or after first + n down by n blocks, lowest first. */
static int collapse_move(struct shift *s, uint64_t first, uint64_t n)
{
    uint64_t pos = first + n;
    for (;;) {
        int err = shift_step(s);
        if (err)
            return err;
        struct fextent e, prev;
        uint64_t next;
        err = fs_fmap_find(&s->m, pos, &e, &next);
        if (err == -ENOENT) {
            if (next == UINT64_MAX)
                return 0;
            err = fs_fmap_find(&s->m, next, &e, &next);
        }
        if (err)
            return err;
        if (e.lblk < pos)                  /* a write between steps mapped it */
            return -EBUSY;
        /* the blocks below must be free down to the new start */
        err = fs_fmap_find_le(&s->m, e.lblk - 1, &prev);
        if (err && err != -ENOENT)
            return err;
        if (!err && fext_end(&prev) > e.lblk - n)
            return -EBUSY;
        err = move_extent(&s->m, &e, e.lblk - n);
        fs_fmap_sync(&s->m, s->di);
        if (err)
            return err;
        s->changed = 1;
        pos = fext_end(&e);
    }
}

static int collapse(struct shift *s, uint64_t off, uint64_t len)
{
    uint64_t first = off >> SHIFT, n = len >> SHIFT;
    int err = collapse_unmap(s, first, n);
    if (!err)
        err = collapse_move(s, first, n);
    if (err)
        return err;
    s->di->size = s->di->size >= off + len ? s->di->size - len : off;
    s->changed = 1;
    return 0;
}

/* ==== insert ================================================================ */

/* Splits the extent across block first, if any, so that one starts there. */
static int insert_split(struct fmap *m, uint64_t first)
{
    struct fextent e;
    uint64_t next;
    int err = fs_fmap_find(m, first, &e, &next);
    if (err == -ENOENT || (!err && e.lblk == first))
        return 0;
    if (err)
        return err;
    struct fextent right = { first, e.pblk + (first - e.lblk), fext_end(&e) - first, e.flags };
    err = fs_fmap_insert(m, &right);
    if (err)
        return err;
    e.len = first - e.lblk;
    return fs_fmap_update(m, &e);
}

/* Moves every extent at or after first up by n blocks, highest first. */
static int insert_move(struct shift *s, uint64_t first, uint64_t n)
{
    uint64_t pos = FILE_MAX_BLOCKS - 1;
    for (;;) {
        int err = shift_step(s);
        if (err)
            return err;
        struct fextent e, above;
        uint64_t next;
        err = fs_fmap_find_le(&s->m, pos, &e);
        if (err == -ENOENT || (!err && e.lblk < first))
            return 0;
        if (err)
            return err;
        if (fext_end(&e) + n > FILE_MAX_BLOCKS)
            return -EFBIG;
        /* the blocks above must be free up to the new end */
        err = fs_fmap_find(&s->m, fext_end(&e), &above, &next);
        if (err && err != -ENOENT)
            return err;
        if (!err || next < fext_end(&e) + n)
            return -EBUSY;
        err = move_extent(&s->m, &e, e.lblk + n);
        fs_fmap_sync(&s->m, s->di);
        if (err || e.lblk == first)
            return err;
        s->changed = 1;
        pos = e.lblk - 1;
    }
}

static int insert(struct shift *s, uint64_t off, uint64_t len)
{
    uint64_t first = off >> SHIFT, n = len >> SHIFT;
    struct fextent last;
    /* refuse before changing anything if the last extent would go past
     * the maximum file size */
    int err = fs_fmap_find_le(&s->m, FILE_MAX_BLOCKS - 1, &last);
    if (err && err != -ENOENT)
        return err;
    if (!err && fext_end(&last) + n > FILE_MAX_BLOCKS)
        return -EFBIG;
    err = insert_split(&s->m, first);
    fs_fmap_sync(&s->m, s->di);
    if (err)
        return err;
    s->di->size += len;
    s->changed = 1;
    return insert_move(s, first, n);
}

/* ==== entry point =========================================================== */

/* Checks that need the inode (after those of fs_fallocate). */
static int shift_check(const struct mmapfs_disk_inode *di, int mode, uint64_t off,
                       uint64_t len)
{
    if (S_ISDIR(di->mode))
        return -EISDIR;
    if (!S_ISREG(di->mode))
        return -ENODEV;
    if ((off | len) & (BS - 1))
        return -EINVAL;
    if (mode == FALLOC_FL_COLLAPSE_RANGE)
        return off + len >= di->size ? -EINVAL : 0;
    if (di->size + len > MMAPFS_MAX_FILE_SIZE)
        return -EFBIG;
    return off >= di->size ? -EINVAL : 0;
}

int fs_file_shift_locked(struct fs *fs, uint64_t ino, int mode, uint64_t off, uint64_t len,
                      int *retry_ok)
{
    struct mmapfs_disk_inode di;
    int err = fs_inode_get(fs, ino, &di);
    if (err)
        return err;
    err = shift_check(&di, mode, off, len);
    if (err)
        return err;
    struct shift s = { .fs = fs, .ino = ino, .di = &di };
    shift_open(&s);
    err = mode == FALLOC_FL_COLLAPSE_RANGE ? collapse(&s, off, len) : insert(&s, off, len);
    fs_fmap_sync(&s.m, &di);
    *retry_ok = !s.changed;
    if (!s.changed)
        return err;
    fs_inode_touch(fs, ino, &di, TOUCH_CTIME | TOUCH_MTIME);
    int perr = fs_inode_put(fs, ino, &di);
    fs_icache_set_data_seq(fs, ino, jnl_running_seq(fs->jnl));
    return err ? err : perr;
}
