/*
 * file.c — file data: reads (copying and zero-copy), writes (allocation,
 * unwritten-extent conversion, in-place overwrite).
 *
 * Data blocks live at home: they are read and written through the engine
 * directly. Ordered data (invariant 3): a newly allocated block gets its
 * data (and zeros for the bytes the write does not cover, so that no stale
 * bytes of a deleted file can ever show) copied into the mapping while the
 * journal lock is held, before the extent that points at it is added. A
 * small write's blocks are also copied into the log by the commit
 * (jnl_log_data), so one sync makes data and metadata durable together;
 * a larger one makes the commit sync the data first. An in-place
 * overwrite tells the journal (fs_file_data_overwritten), which may still
 * hold an older image of the block.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/file_i.h"

#define BS    ((uint64_t)MMAPFS_BLOCK_SIZE)
#define SHIFT MMAPFS_BLOCK_SHIFT

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static uint64_t round_up(uint64_t x)
{
    return (x + BS - 1) & ~(BS - 1);
}

/* ==== reads ================================================================= */

/* Copies n bytes of file data at physical byte phys. A read-only mount
 * whose journal was replayed in memory only takes the blocks the log holds
 * images of (small new data rides in the log) from there. */
static int read_data(struct fs *fs, uint64_t phys, uint8_t *out, size_t n)
{
    if (!jnl_has_replayed(fs->jnl))
        return mmio_read_at(fs->io, phys, out, n);
    while (n) {
        size_t in = (size_t)(phys & (BS - 1)), k = (size_t)min_u64(n, BS - in);
        const uint8_t *img = jnl_replayed_block(fs->jnl, phys >> SHIFT);
        int err = img ? 0 : mmio_read_at(fs->io, phys, out, k);
        if (err)
            return err;
        if (img)
            memcpy(out, img + in, k);
        phys += k;
        out += k;
        n -= k;
    }
    return 0;
}

ssize_t fs_file_read_locked(struct fs *fs, uint64_t ino, const struct mmapfs_disk_inode *di,
                         uint64_t off, void *buf, size_t len)
{
    if (off >= di->size || len == 0)
        return 0;
    if (len > di->size - off)
        len = (size_t)(di->size - off);
    if (di->flags & MMAPFS_INODE_INLINE_DATA) {
        fs_file_inline_read(di, off, buf, len);
        return (ssize_t)len;
    }
    struct fmap m;
    fmap_open(&m, fs, ino, di->tree_root);
    uint8_t *out = buf;
    size_t done = 0;
    while (done < len) {
        uint64_t pos = off + done, lblk = pos >> SHIFT, next;
        struct fextent e;
        int err = fs_fmap_find(&m, lblk, &e, &next);
        if (err && err != -ENOENT)
            return err;
        uint64_t end = err ? (next == UINT64_MAX ? UINT64_MAX : next << SHIFT)
                           : fext_end(&e) << SHIFT;
        size_t n = (size_t)min_u64(end - pos, len - done);
        if (err || (e.flags & MMAPFS_EXTENT_UNWRITTEN)) {
            memset(out + done, 0, n);
        } else {
            uint64_t phys = ((e.pblk + (lblk - e.lblk)) << SHIFT) + (pos & (BS - 1));
            err = read_data(fs, phys, out + done, n);
            if (err)
                return err;
        }
        done += n;
    }
    return (ssize_t)done;
}

/* Gets a regular file for reading (-EISDIR / -EINVAL otherwise). */
static int get_readable(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di)
{
    int err = fs_inode_get(fs, ino, di);
    if (err)
        return err;
    if (S_ISDIR(di->mode))
        return -EISDIR;
    if (!S_ISREG(di->mode) && !S_ISLNK(di->mode))
        return -EINVAL;
    return 0;
}

ssize_t fs_read(struct fs *fs, uint64_t ino, uint64_t off, void *buf, size_t len)
{
    struct mmapfs_disk_inode di;
    jnl_lock(fs->jnl);
    ssize_t n = get_readable(fs, ino, &di);
    if (!n)
        n = fs_file_read_locked(fs, ino, &di, off, buf, len);
    jnl_unlock(fs->jnl);
    if (n > 0) {
        FS_COUNT(fs, reads, 1);
        FS_COUNT(fs, read_bytes, (uint64_t)n);
    }
    return n;
}

/* Appends [base, base+n) to the iovec list, merging with the last entry when
 * contiguous in the mapping, or when both are zeros (up to FS_ZERO_BYTES).
 * 0, or 1 when the list is full. */
static int iov_add(struct fs *fs, struct iovec *iov, int max, int *cnt, const void *base,
                   size_t n)
{
    int zero = base == fs->zero_block;
    if (*cnt > 0) {
        struct iovec *last = &iov[*cnt - 1];
        int last_zero = last->iov_base == fs->zero_block;
        if (zero && last_zero && last->iov_len + n <= FS_ZERO_BYTES) {
            last->iov_len += n;
            return 0;
        }
        if (!zero && !last_zero &&
            (const uint8_t *)last->iov_base + last->iov_len == (const uint8_t *)base) {
            last->iov_len += n;
            return 0;
        }
    }
    if (*cnt >= max)
        return 1;
    iov[*cnt].iov_base = (void *)base;
    iov[*cnt].iov_len = n;
    (*cnt)++;
    return 0;
}

/* fs_read_iov with the lock held and di read. */
static ssize_t read_iov_locked(struct fs *fs, uint64_t ino, const struct mmapfs_disk_inode *di,
                               uint64_t off, size_t len, struct iovec *iov, int max,
                               int *niov)
{
    if (off >= di->size || len == 0)
        return 0;
    if (len > di->size - off)
        len = (size_t)(di->size - off);
    if (di->flags & MMAPFS_INODE_INLINE_DATA)
        return -ENOTSUP;          /* bytes in the inode record: copied instead */
    struct fmap m;
    fmap_open(&m, fs, ino, di->tree_root);
    size_t done = 0;
    while (done < len) {
        uint64_t pos = off + done, lblk = pos >> SHIFT, next;
        struct fextent e;
        int err = fs_fmap_find(&m, lblk, &e, &next);
        if (err && err != -ENOENT)
            return done ? (ssize_t)done : err;
        uint64_t end = err ? (next == UINT64_MAX ? UINT64_MAX : next << SHIFT)
                           : fext_end(&e) << SHIFT;
        size_t n = (size_t)min_u64(end - pos, len - done);
        if (err || (e.flags & MMAPFS_EXTENT_UNWRITTEN)) {
            if (n > FS_ZERO_BYTES)
                n = FS_ZERO_BYTES;
            if (iov_add(fs, iov, max, niov, fs->zero_block, n))
                break;
        } else {
            uint64_t phys = ((e.pblk + (lblk - e.lblk)) << SHIFT) + (pos & (BS - 1));
            const void *p = mmio_ptr(fs->io, phys);
            if (!p)
                return done ? (ssize_t)done : -EIO;
            if (iov_add(fs, iov, max, niov, p, n))
                break;
        }
        done += n;
    }
    return (ssize_t)done;
}

ssize_t fs_read_iov(struct fs *fs, uint64_t ino, uint64_t off, size_t len,
                    struct iovec *iov, int max, int *niov,
                    const struct fs_read_pin *pin)
{
    *niov = 0;
    if (!mmio_ptr(fs->io, 0) || jnl_has_replayed(fs->jnl))
        return -ENOTSUP;      /* pread backend: no mapping to point into;
                               * or file data images replayed in memory */
    if (max <= 0 || !pin || !pin->held)
        return -EINVAL;
    struct mmapfs_disk_inode di;
    jnl_lock(fs->jnl);
    ssize_t n = get_readable(fs, ino, &di);
    if (!n)
        n = read_iov_locked(fs, ino, &di, off, len, iov, max, niov);
    jnl_unlock(fs->jnl);
    if (n > 0) {
        FS_COUNT(fs, reads, 1);
        FS_COUNT(fs, read_bytes, (uint64_t)n);
    }
    return n;
}

/* ==== writes ================================================================ */

/* Writes data into new (or formerly unwritten) blocks starting at physical
 * block pblk that back file bytes [pos, wend): zeros before pos in its
 * block and after wend up to the end of its block, the data in between. */
static int fill_blocks(struct fs *fs, uint64_t pblk, uint64_t pos, uint64_t wend,
                       const uint8_t *data)
{
    uint64_t base = pblk << SHIFT;          /* physical byte of file byte pos & ~(BS-1) */
    uint64_t head = pos & (BS - 1), nblk = (round_up(wend) - (pos - head)) >> SHIFT;
    /* ordered data: in the log if small, else synced before the commit */
    jnl_log_data(fs->jnl, pblk, nblk);
    /* a block the bitmap called free may still be a tree node of a corrupt
     * image (a cross-link): what was verified in it is stale now */
    fs_verified_clear(fs, pblk, nblk);
    int err = 0;
    if (head)
        err = mmio_write_at(fs->io, base, fs->zero_block, (size_t)head);
    if (!err)
        err = mmio_write_at(fs->io, base + head, data, (size_t)(wend - pos));
    uint64_t tail = round_up(wend) - wend;
    if (!err && tail)
        err = mmio_write_at(fs->io, base + head + (wend - pos), fs->zero_block, (size_t)tail);
    return err;
}

/* Can a written run at pblk for logical lblk extend extent prev? */
static int can_merge(const struct fextent *prev, uint64_t lblk, uint64_t pblk, uint64_t len,
                     uint32_t flags)
{
    return fext_end(prev) == lblk && prev->pblk + prev->len == pblk &&
           prev->flags == flags && prev->len + len <= FILE_EXTENT_MAX;
}

/* The extent ending at or before lblk (not containing it), if any. */
static int prev_extent(struct fmap *m, uint64_t lblk, struct fextent *prev)
{
    if (lblk == 0)
        return -ENOENT;
    int err = fs_fmap_find_le(m, lblk - 1, prev);
    if (!err && fext_end(prev) > lblk)
        return -ENOENT;    /* cannot happen: lblk would be mapped */
    return err;
}

/* Where a new run for lblk should start when no extent precedes it: just
 * before the extent that follows (next, its first block), so that a chunk
 * that arrives after the one behind it still lands in front of it; with no
 * extent at all, past room for the blocks in front of lblk (FILE_GOAL_ROOM
 * at most). The kernel's write-back is handled by several threads, so the
 * second chunk of a file is sometimes written first: it leaves room, the
 * first then fills it, and the two merge (ext4 takes its goal from the
 * nearest extent on either side in the same way). 0: the allocator's own
 * goal. */
#define FILE_GOAL_ROOM 2048u      /* blocks: 8 MiB, a few write-back chunks */

static int goal_before(struct fmap *m, uint64_t lblk, uint64_t next, uint64_t *goal)
{
    struct fextent e;
    uint64_t after;
    *goal = 0;
    if (next == UINT64_MAX) {
        if (lblk <= FILE_GOAL_ROOM && m->fs->block_goal)
            *goal = m->fs->block_goal + lblk;
        return 0;
    }
    int err = fs_fmap_find(m, next, &e, &after);
    if (err)
        return err == -ENOENT ? 0 : err;
    if (e.pblk >= next - lblk)
        *goal = e.pblk - (next - lblk);
    return 0;
}

/* Maps the written run [lblk, lblk+len) at pblk, merged into prev (the
 * extent before it, or NULL) and into the extent that starts right after
 * it when the blocks run on. The extent after is taken out first: an
 * insert first could grow the inode's map into a tree for a moment, and
 * the tree would stay. */
static int map_run(struct fmap *m, const struct fextent *prev, uint64_t lblk, uint64_t pblk,
                   uint64_t len)
{
    struct fextent e = { lblk, pblk, len, 0 }, nx;
    uint64_t after;
    if (prev && can_merge(prev, lblk, pblk, len, 0)) {
        e = *prev;
        e.len += len;
    }
    int merge = fs_fmap_find(m, lblk + len, &nx, &after) == 0 && can_merge(&e, nx.lblk, nx.pblk,
                                                                         nx.len, nx.flags);
    if (merge) {
        int err = fs_fmap_delete(m, nx.lblk);
        if (err)
            return err;
        e.len += nx.len;
    }
    int err = e.lblk == lblk ? fs_fmap_insert(m, &e) : fs_fmap_update(m, &e);
    if (err && merge) {
        int back = fs_fmap_insert(m, &nx);    /* into the room it left */
        if (back)
            jnl_op_failed(m->fs->jnl, back);
    }
    return err;
}

/* Writes into the hole at pos (the next mapped block is 'next'): allocates
 * a run, fills it, maps it. Returns bytes written or -errno. */
static ssize_t write_hole(struct fmap *m, struct mmapfs_disk_inode *di, uint64_t pos,
                          uint64_t end, uint64_t next, const uint8_t *data)
{
    struct fs *fs = m->fs;
    uint64_t lblk = pos >> SHIFT;
    uint64_t last = min_u64(round_up(end) >> SHIFT, next);
    uint64_t want = min_u64(last - lblk, FILE_EXTENT_MAX);
    struct fextent prev;
    int have_prev = prev_extent(m, lblk, &prev);
    if (have_prev && have_prev != -ENOENT)
        return have_prev;
    have_prev = have_prev == 0;
    uint64_t goal = have_prev ? prev.pblk + prev.len + (lblk - fext_end(&prev)) : 0;
    if (!have_prev) {
        int gerr = goal_before(m, lblk, next, &goal);
        if (gerr)
            return gerr;
    }

    uint64_t pblk, got;
    int err = fs_alloc_blocks(fs, goal, want, &pblk, &got);
    if (err)
        return err;
    uint64_t wend = min_u64(end, (lblk + got) << SHIFT);
    err = fill_blocks(fs, pblk, pos, wend, data);
    if (!err)
        err = map_run(m, have_prev ? &prev : NULL, lblk, pblk, got);
    if (err) {
        fs_free_blocks(fs, pblk, got);
        return err;
    }
    di->blocks += got;
    return (ssize_t)(wend - pos);
}

/* Writes into unwritten extent e at pos: fills the blocks written, then
 * splits e into unwritten / written / unwritten parts. Bytes or -errno. */
static ssize_t write_unwritten(struct fmap *m, const struct fextent *e, uint64_t pos,
                               uint64_t end, const uint8_t *data)
{
    struct fs *fs = m->fs;
    uint64_t lblk = pos >> SHIFT;
    uint64_t l2 = min_u64(fext_end(e), round_up(end) >> SHIFT);
    uint64_t wend = min_u64(end, l2 << SHIFT);
    uint64_t pblk = e->pblk + (lblk - e->lblk);
    int err = fill_blocks(fs, pblk, pos, wend, data);
    if (err)
        return err;

    struct fextent mid = { lblk, pblk, l2 - lblk, 0 };
    int has_right = l2 < fext_end(e);
    struct fextent right = { l2, e->pblk + (l2 - e->lblk), fext_end(e) - l2,
                             MMAPFS_EXTENT_UNWRITTEN };
    /* insertions first: if one fails nothing has changed yet */
    if (has_right && (err = fs_fmap_insert(m, &right)))
        return err;
    if (lblk > e->lblk) {
        err = fs_fmap_insert(m, &mid);
        if (err) {
            if (has_right)
                fs_fmap_delete(m, right.lblk);
            return err;
        }
        struct fextent left = *e;
        left.len = lblk - e->lblk;
        err = fs_fmap_update(m, &left);
    } else {
        struct fextent prev;
        int perr = prev_extent(m, lblk, &prev);
        if (!perr && can_merge(&prev, lblk, pblk, mid.len, 0)) {
            prev.len += mid.len;
            err = fs_fmap_update(m, &prev);
            if (!err)
                err = fs_fmap_delete(m, e->lblk);
        } else {
            err = fs_fmap_update(m, &mid);
        }
    }
    return err ? err : (ssize_t)(wend - pos);
}

int fs_file_uninline(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di)
{
    if (!(di->flags & MMAPFS_INODE_INLINE_DATA))
        return 0;
    struct mmapfs_disk_inode before = *di;
    memset(di->inline_area, 0, sizeof(di->inline_area));
    di->flags &= ~MMAPFS_INODE_INLINE_DATA;
    if (di->size == 0)
        return 0;
    struct fmap m;
    fmap_open(&m, fs, ino, di->tree_root);
    ssize_t n = write_hole(&m, di, 0, di->size, UINT64_MAX, before.inline_area);
    fs_fmap_sync(&m, di);
    if (n >= 0 && (uint64_t)n == before.size)
        return 0;
    *di = before;               /* write_hole changed nothing */
    return n < 0 ? (int)n : -EIO;
}

/* One journal step of a write at off: as much of buf as fits in the step's
 * budget (all of it unless bounded). Updates size, times, set-id bits and
 * puts the inode. Returns bytes written, or -errno if none were. */
static ssize_t write_step(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di,
                          uint64_t off, const uint8_t *buf, size_t len, int bounded)
{
    uint64_t base = jnl_running_blocks(fs->jnl), end = off + len;
    uint64_t blocks0 = di->blocks, root0 = di->tree_root;
    uint32_t flags0 = di->flags;
    size_t done = 0;
    ssize_t err = fs_file_inline_write(fs, ino, di, off, buf, len);
    int map_changed = di->flags != flags0 || di->tree_root != root0;
    if (err > 0) {
        done = (size_t)err;
        map_changed = 1;
    }
    if (err)
        len = done;                 /* written into the inode, or failed */
    struct fmap m;
    fmap_open(&m, fs, ino, di->tree_root);
    while (done < len) {
        if (bounded && done && file_step_full(fs, base))
            break;
        uint64_t pos = off + done, lblk = pos >> SHIFT, next;
        struct fextent e;
        ssize_t n = fs_fmap_find(&m, lblk, &e, &next);
        if (n == -ENOENT) {
            map_changed = 1;
            n = write_hole(&m, di, pos, end, next, buf + done);
        } else if (n == 0 && (e.flags & MMAPFS_EXTENT_UNWRITTEN)) {
            map_changed = 1;
            n = write_unwritten(&m, &e, pos, end, buf + done);
        } else if (n == 0) {
            uint64_t stop = min_u64(end, fext_end(&e) << SHIFT);
            uint64_t phys = ((e.pblk + (lblk - e.lblk)) << SHIFT) + (pos & (BS - 1));
            uint64_t nblk = ((phys + (stop - pos) - 1) >> SHIFT) - (phys >> SHIFT) + 1;
            /* before the write: one that fails part way has changed bytes
             * too (a tree node there, on a corrupt image, is not trusted) */
            fs_verified_clear(fs, phys >> SHIFT, nblk);
            n = mmio_write_at(fs->io, phys, buf + done, (size_t)(stop - pos));
            if (!n) {
                fs_file_data_overwritten(fs, ino, phys >> SHIFT, nblk);
                n = (ssize_t)(stop - pos);
            }
        }
        fs_fmap_sync(&m, di);
        if (n < 0) {
            err = n;
            break;
        }
        done += (size_t)n;
    }
    if (done == 0 && di->blocks == blocks0 && di->tree_root == root0 && !map_changed)
        return err;
    if (off + done > di->size) {
        di->size = off + done;
        map_changed = 1;
    }
    int times = done && !__atomic_load_n(&fs->kernel_times, __ATOMIC_RELAXED);
    if (times)
        fs_inode_touch(fs, ino, di, TOUCH_MTIME | TOUCH_CTIME);
    /* set-id bits are not touched here: who may keep them depends on the
     * writer (CAP_FSETID, group), which only the caller of write(2) knows;
     * the FUSE front end clears them then (mfs_setattr) */
    if (!map_changed && !times)
        return done ? (ssize_t)done : err;          /* the inode did not change */
    /* fdatasync needs a commit only when size or block map changed */
    int perr = map_changed ? fs_inode_put(fs, ino, di) : fs_inode_put_times(fs, ino, di);
    if (perr)
        return perr;
    return done ? (ssize_t)done : err;
}

ssize_t fs_file_write_locked(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di,
                          uint64_t off, const void *buf, size_t len)
{
    if (off >= MMAPFS_MAX_FILE_SIZE || len > MMAPFS_MAX_FILE_SIZE - off)
        return -EFBIG;
    if (len == 0)
        return 0;
    return write_step(fs, ino, di, off, buf, len, 0);
}

ssize_t fs_write(struct fs *fs, uint64_t ino, uint64_t off, const void *buf, size_t len)
{
    return fs_write_blocks(fs, ino, off, buf, len, NULL);
}

ssize_t fs_write_blocks(struct fs *fs, uint64_t ino, uint64_t off, const void *buf,
                        size_t len, int *blocks_changed)
{
    if (blocks_changed)
        *blocks_changed = 0;
    if (off >= MMAPFS_MAX_FILE_SIZE)
        return len ? -EFBIG : 0;
    if (len > MMAPFS_MAX_FILE_SIZE - off)
        len = (size_t)(MMAPFS_MAX_FILE_SIZE - off);
    size_t done = 0;
    int tries = 0;
    while (done < len) {
        struct mmapfs_disk_inode di;
        int err = jnl_begin(fs->jnl);
        if (err)
            return done ? (ssize_t)done : err;
        err = fs_inode_get(fs, ino, &di);
        if (!err && !S_ISREG(di.mode))
            err = S_ISDIR(di.mode) ? -EISDIR : -EINVAL;
        uint64_t blocks0 = err ? 0 : di.blocks;
        ssize_t n = err ? err
                        : write_step(fs, ino, &di, off + done, (const uint8_t *)buf + done,
                                     len - done, 1);
        if (!err && blocks_changed && di.blocks != blocks0)
            *blocks_changed = 1;
        int end_err = fs_end(fs, n < 0 ? (int)n : 0);
        if (end_err)
            n = end_err;
        if (n < 0 && fs_alloc_retry(fs, (int)n, &tries))
            continue;
        if (n <= 0)
            return done ? (ssize_t)done : (n ? n : -EIO);
        done += (size_t)n;
    }
    FS_COUNT(fs, writes, 1);
    FS_COUNT(fs, write_bytes, done);
    return (ssize_t)done;
}

void fs_set_kernel_times(struct fs *fs, int on)
{
    __atomic_store_n(&fs->kernel_times, on != 0, __ATOMIC_RELAXED);
}
