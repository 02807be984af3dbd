/*
 * file_trunc.c — changing a file's block map other than by writing:
 * truncate, release of all blocks, fallocate (preallocation, punch hole,
 * zero range; collapse and insert range are in file_shift.c) and
 * SEEK_DATA / SEEK_HOLE.
 *
 * Long operations run in journal steps (fs_file_next_step). A truncate that
 * spans several steps frees blocks from the end backwards and lowers the
 * size as it goes, so a crash between steps leaves a shorter file whose
 * remaining content is intact, never blocks past the end of the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/file_i.h"

#define BS    ((uint64_t)MMAPFS_BLOCK_SIZE)
#define SHIFT MMAPFS_BLOCK_SHIFT

static uint64_t round_up_blocks(uint64_t bytes)
{
    return (bytes >> SHIFT) + ((bytes & (BS - 1)) != 0);
}

/* ==== unmapping ============================================================= */

/* Unmaps [from, to) in as many journal steps as needed. keep_size: the size
 * the operation ends with (truncate) or UINT64_MAX (the size is not
 * lowered: punch, release). */
static int unmap_range(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di,
                       uint64_t from, uint64_t to, uint64_t keep_size)
{
    for (;;) {
        struct fmap m;
        uint64_t low = UINT64_MAX;
        int done;
        fmap_open(&m, fs, ino, di->tree_root);
        int err = fs_fmap_unmap_step(&m, di, from, to, jnl_running_blocks(fs->jnl), &low, &done);
        fs_fmap_sync(&m, di);
        if (err || done)
            return err;
        if (keep_size != UINT64_MAX && low != UINT64_MAX) {
            uint64_t s = low << SHIFT;
            if (s < keep_size)
                s = keep_size;
            if (s < di->size)
                di->size = s;
        }
        err = fs_file_next_step(fs, ino, di);
        if (err)
            return err;
    }
}

/* Zeroes bytes [from, to) of the file in place, as the last change of an
 * operation that can still fail: data is not journaled, so nothing undoes
 * it (docs/JOURNAL.md, "Failed operations"). The inode is put first: its
 * block is then in the running transaction, and the caller's final
 * fs_inode_put cannot fail for lack of memory after the zeros are written. */
static int zero_bytes_last(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di,
                           uint64_t from, uint64_t to)
{
    struct fmap m;
    int err = fs_inode_put(fs, ino, di);
    if (err)
        return err;
    fmap_open(&m, fs, ino, di->tree_root);
    return fs_fmap_zero_bytes(&m, from, to);
}

/* Free blocks, beyond those pending, below which an edge block is zeroed
 * in place instead of copied (room for the copy and the tree nodes its
 * extent may need). */
#define EDGE_COPY_SPARE 64

/* Zeroes bytes [from, to) of logical block lblk (offsets within it) for a
 * truncate or punch whose range ends inside that block. Zeroing them in
 * place would put zeros into a block whose old bytes durable metadata
 * still shows until the operation commits (a crash in between: a lost
 * truncate's old size with zeros inside, docs/CRASH.md). So the block's
 * bytes up to the end of the file, zeros in [from, to), are copied into a
 * new block in the same step: zeros after them, ordered like any new data
 * (fill_blocks), the old block freed with the transaction. A hole or an
 * unwritten extent reads as zeros already; a range past the end of the
 * file, a file small enough for the inode, or a nearly full filesystem is
 * zeroed in place as before. */
static int zero_edge(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di, uint64_t lblk,
                     uint64_t from, uint64_t to)
{
    uint64_t base = lblk << SHIFT, next;
    uint64_t keep = di->size <= base ? 0 : di->size - base < BS ? di->size - base : BS;
    struct fextent e;
    struct fmap m;
    fmap_open(&m, fs, ino, di->tree_root);
    int err = fs_fmap_find(&m, lblk, &e, &next);
    if (err == -ENOENT || (!err && (e.flags & MMAPFS_EXTENT_UNWRITTEN)))
        return 0;
    if (err)
        return err;
    /* in place also for a file of at most MMAPFS_INLINE_BYTES: the copy
     * would move it into the inode, under a caller that maps blocks */
    if (keep <= from || di->size <= MMAPFS_INLINE_BYTES ||
        fs->free_blocks <= fs_alloc_pending_blocks(fs) + EDGE_COPY_SPARE)
        return zero_bytes_last(fs, ino, di, base + from, base + to);
    uint8_t *copy = malloc(BS);
    if (!copy)
        return -ENOMEM;
    err = mmio_read_at(fs->io, (e.pblk + (lblk - e.lblk)) << SHIFT, copy, (size_t)keep);
    memset(copy + from, 0, (size_t)((to < keep ? to : keep) - from));
    if (!err)
        err = unmap_range(fs, ino, di, lblk, lblk + 1, UINT64_MAX);
    if (!err) {
        ssize_t n = fs_file_write_locked(fs, ino, di, base, copy, (size_t)keep);
        err = n < 0 ? (int)n : n == (ssize_t)keep ? 0 : -EIO;
    }
    free(copy);
    return err;
}

int fs_file_truncate(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di, uint64_t size)
{
    if (size > MMAPFS_MAX_FILE_SIZE)
        return -EFBIG;
    if ((di->flags & MMAPFS_INODE_INLINE_DATA) && size <= MMAPFS_INLINE_BYTES) {
        fs_file_inline_truncate(di, size);
        fs_icache_set_data_seq(fs, ino, jnl_running_seq(fs->jnl));
        return 0;
    }
    int uerr = fs_file_uninline(fs, ino, di);
    if (uerr)
        return uerr;
    if (size < di->size) {
        /* blocks past the new end go, including preallocated ones */
        int err = unmap_range(fs, ino, di, round_up_blocks(size), FILE_MAX_BLOCKS, size);
        if (err)
            return err;
        if (size < di->size && (size & (BS - 1))) {
            /* the rest of the last block must read as zeros if the file grows again */
            err = zero_edge(fs, ino, di, size >> SHIFT, size & (BS - 1), BS);
            if (err)
                return err;
        }
    }
    di->size = size;
    fs_icache_set_data_seq(fs, ino, jnl_running_seq(fs->jnl));
    return 0;
}

int fs_file_free_all(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di)
{
    if (di->flags & MMAPFS_INODE_INLINE_DATA) {
        memset(di->inline_area, 0, sizeof(di->inline_area));
        di->flags &= ~MMAPFS_INODE_INLINE_DATA;
    }
    if (!di->tree_root && !(di->flags & MMAPFS_INODE_EXTENTS))
        return 0;
    if (S_ISDIR(di->mode)) {
        struct fs_tree_ctx ctx;
        struct bt_tree tree;
        fs_tree_open(&ctx, &tree, fs, ino, di->tree_root, MMAPFS_TREE_DIR);
        int err = bt_destroy(&tree);
        di->tree_root = tree.root;
        di->blocks += (uint64_t)ctx.delta;
        return err;
    }
    int err = unmap_range(fs, ino, di, 0, FILE_MAX_BLOCKS, UINT64_MAX);
    if (err || !di->tree_root)
        return err;
    /* an empty root leaf may remain */
    struct fmap m;
    fmap_open(&m, fs, ino, di->tree_root);
    err = bt_destroy(&m.tree);
    fs_fmap_sync(&m, di);
    return err;
}

/* ==== fallocate ============================================================= */

/* Maps every hole of blocks [from, to) with unwritten extents, in journal
 * steps. -ENOSPC leaves what was allocated so far (a consistent file). */
static int preallocate(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di,
                       uint64_t from, uint64_t to)
{
    struct fmap m;
    uint64_t base = jnl_running_blocks(fs->jnl);
    fmap_open(&m, fs, ino, di->tree_root);
    while (from < to) {
        if (file_step_full(fs, base)) {
            fs_fmap_sync(&m, di);
            int err = fs_file_next_step(fs, ino, di);
            if (err)
                return err;
            base = jnl_running_blocks(fs->jnl);
            fmap_open(&m, fs, ino, di->tree_root);
        }
        struct fextent e, prev;
        uint64_t next;
        int err = fs_fmap_find(&m, from, &e, &next);
        if (!err) {
            from = fext_end(&e);
            continue;
        }
        if (err != -ENOENT)
            goto fail;
        uint64_t hole_end = next < to ? next : to;
        uint64_t want = hole_end - from, pblk, got;
        if (want > FILE_EXTENT_MAX)
            want = FILE_EXTENT_MAX;
        int have_prev = from > 0 && fs_fmap_find_le(&m, from - 1, &prev) == 0;
        uint64_t goal = have_prev ? prev.pblk + prev.len + (from - fext_end(&prev)) : 0;
        err = fs_alloc_blocks(fs, goal, want, &pblk, &got);
        if (err)
            goto fail;
        if (have_prev && fext_end(&prev) == from && prev.pblk + prev.len == pblk &&
            prev.flags == MMAPFS_EXTENT_UNWRITTEN && prev.len + got <= FILE_EXTENT_MAX) {
            prev.len += got;
            err = fs_fmap_update(&m, &prev);
        } else {
            struct fextent ne = { from, pblk, got, MMAPFS_EXTENT_UNWRITTEN };
            err = fs_fmap_insert(&m, &ne);
        }
        if (err) {
            fs_free_blocks(fs, pblk, got);
            goto fail;
        }
        di->blocks += got;
        from += got;
        continue;
fail:
        fs_fmap_sync(&m, di);
        return err;
    }
    fs_fmap_sync(&m, di);
    return 0;
}

/* Punches bytes [off, end): whole blocks are unmapped, partial ones zeroed
 * (zero_edge: copied, or last: zeros written in place cannot be undone). */
static int punch(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di, uint64_t off,
                 uint64_t end)
{
    uint64_t first = round_up_blocks(off), last = end >> SHIFT;
    if (first > last)                 /* inside one block */
        return zero_edge(fs, ino, di, last, off & (BS - 1), end & (BS - 1));
    int err = 0;
    if (first < last)
        err = unmap_range(fs, ino, di, first, last, UINT64_MAX);
    if (!err && (off & (BS - 1)))
        err = zero_edge(fs, ino, di, off >> SHIFT, off & (BS - 1), BS);
    if (!err && (end & (BS - 1)))
        err = zero_edge(fs, ino, di, last, 0, end & (BS - 1));
    return err;
}

/* One attempt of fs_fallocate (journal operation held). */
static int fallocate_locked(struct fs *fs, uint64_t ino, int mode, uint64_t off, uint64_t end)
{
    struct mmapfs_disk_inode di;
    int err = fs_inode_get(fs, ino, &di);
    if (err)
        return err;
    if (S_ISDIR(di.mode))
        return -EISDIR;
    if (!S_ISREG(di.mode))
        return -ENODEV;
    unsigned touch = TOUCH_CTIME | TOUCH_MTIME;     /* as ext4 (file_modified) */
    err = fs_file_uninline(fs, ino, &di);      /* the range works on blocks */
    if (err)
        return err;
    if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
        err = punch(fs, ino, &di, off, end);
        touch |= TOUCH_MTIME;
    }
    if (!err && !(mode & FALLOC_FL_PUNCH_HOLE))
        err = preallocate(fs, ino, &di, off >> SHIFT, round_up_blocks(end));
    if (!err && !(mode & FALLOC_FL_KEEP_SIZE) && end > di.size) {
        di.size = end;
        touch |= TOUCH_MTIME;
    }
    /* Under the writeback cache the kernel stamps mtime/ctime itself
     * (fuse_file_fallocate calls file_modified) and sends them with
     * setattr; a stamp of ours is another value (the fine clock within a
     * tick, fs_now_changed) that the kernel never sees, and it came out
     * only when the inode was read again (after eviction, a remount) */
    if (!__atomic_load_n(&fs->kernel_times, __ATOMIC_RELAXED))
        fs_inode_touch(fs, ino, &di, touch);
    int perr = fs_inode_put(fs, ino, &di);
    fs_icache_set_data_seq(fs, ino, jnl_running_seq(fs->jnl));
    return err ? err : perr;
}

int fs_fallocate(struct fs *fs, uint64_t ino, int mode, uint64_t off, uint64_t len)
{
    int shift = mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE);
    switch (shift ? 0 : mode) {
    case 0:
    case FALLOC_FL_KEEP_SIZE:
    case FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE:
    case FALLOC_FL_ZERO_RANGE:
    case FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE:
        break;
    default:
        return -EOPNOTSUPP;
    }
    if (len == 0)
        return -EINVAL;
    if (shift && mode != FALLOC_FL_COLLAPSE_RANGE && mode != FALLOC_FL_INSERT_RANGE)
        return -EOPNOTSUPP;         /* only alone (vfs_fallocate of Linux 6.x) */
    if (off >= MMAPFS_MAX_FILE_SIZE || len > MMAPFS_MAX_FILE_SIZE - off)
        return -EFBIG;
    for (int tries = 0;;) {
        int err = jnl_begin(fs->jnl);
        if (err)
            return err;
        int retry_ok = 1;
        err = shift ? fs_file_shift_locked(fs, ino, mode, off, len, &retry_ok)
                    : fallocate_locked(fs, ino, mode, off, off + len);
        err = fs_end(fs, err);
        if (retry_ok && fs_alloc_retry(fs, err, &tries))
            continue;
        return err;
    }
}

/* ==== SEEK_DATA / SEEK_HOLE ================================================= */

/* Unwritten extents count as holes (they read as zeros). */
static int64_t seek_locked(struct fs *fs, uint64_t ino, const struct mmapfs_disk_inode *di,
                           uint64_t off, int whence)
{
    uint64_t size = di->size;
    if (off >= size)
        return -ENXIO;
    if (di->flags & MMAPFS_INODE_INLINE_DATA)       /* all data, no hole */
        return whence == SEEK_DATA ? (int64_t)off : (int64_t)size;
    struct fmap m;
    fmap_open(&m, fs, ino, di->tree_root);
    uint64_t pos = off;
    while (pos < size) {
        uint64_t lblk = pos >> SHIFT, next;
        struct fextent e;
        int err = fs_fmap_find(&m, lblk, &e, &next);
        if (err && err != -ENOENT)
            return err;
        int data = !err && !(e.flags & MMAPFS_EXTENT_UNWRITTEN);
        if ((whence == SEEK_DATA) == data)
            return (int64_t)pos;
        if (err)
            pos = next == UINT64_MAX ? size : next << SHIFT;
        else
            pos = fext_end(&e) << SHIFT;
    }
    return whence == SEEK_DATA ? -ENXIO : (int64_t)size;
}

int64_t fs_lseek(struct fs *fs, uint64_t ino, uint64_t off, int whence)
{
    if (whence != SEEK_DATA && whence != SEEK_HOLE)
        return -EINVAL;
    if (off > INT64_MAX)
        return -ENXIO;
    struct mmapfs_disk_inode di;
    jnl_lock(fs->jnl);
    int64_t r = fs_inode_get(fs, ino, &di);
    if (!r && S_ISDIR(di.mode))
        r = -EISDIR;
    if (!r)
        r = seek_locked(fs, ino, &di, off, whence);
    jnl_unlock(fs->jnl);
    return r;
}
