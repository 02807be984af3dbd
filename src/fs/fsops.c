/*
 * fsops.c — attributes, fsync, forget, statfs and metrics: the public
 * operations of fs.h that are not about names or file data.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/fs_i.h"

/* ==== attributes ============================================================ */

int fs_getattr(struct fs *fs, uint64_t ino, struct fs_stat *st)
{
    struct mmapfs_disk_inode di;
    jnl_lock(fs->jnl);
    int err = fs_inode_get(fs, ino, &di);
    if (!err)
        fs_inode_to_stat(ino, &di, st);
    jnl_unlock(fs->jnl);
    return err;
}

/* Sets one timestamp from an explicit value, or now. */
static void set_time(uint64_t *sec, uint32_t *nsec, const struct timespec *ts)
{
    *sec = (uint64_t)ts->tv_sec;
    *nsec = (uint32_t)ts->tv_nsec;
}

/* fs_setattr with the journal operation held. */
static int setattr_locked(struct fs *fs, uint64_t ino, const struct fs_setattr *sa,
                          unsigned valid, struct fs_stat *st, struct fs_early *e)
{
    struct mmapfs_disk_inode di;
    struct timespec now;
    int err = fs_inode_get(fs, ino, &di);
    if (err)
        return err;
    int size_changed = 0;
    if (valid & FS_SET_SIZE) {
        if (S_ISDIR(di.mode))
            return -EISDIR;
        if (!S_ISREG(di.mode))
            return -EINVAL;
        size_changed = sa->size != di.size;
        err = fs_file_truncate(fs, ino, &di, sa->size);   /* may re-read di */
        if (err) {
            fs_inode_put(fs, ino, &di);                    /* keep what was done */
            return err;
        }
    }
    fs_now_changed(fs, ino, &di, &now);
    if (valid & FS_SET_MODE)
        di.mode = (di.mode & S_IFMT) | (sa->mode & 07777);
    if (valid & FS_SET_UID)
        di.uid = sa->uid;
    if (valid & FS_SET_GID)
        di.gid = sa->gid;
    if (valid & FS_SET_ATIME)
        set_time(&di.atime_sec, &di.atime_nsec, &sa->atime);
    else if (valid & FS_SET_ATIME_NOW)
        set_time(&di.atime_sec, &di.atime_nsec, &now);
    if (valid & FS_SET_MTIME)
        set_time(&di.mtime_sec, &di.mtime_nsec, &sa->mtime);
    else if ((valid & FS_SET_MTIME_NOW) || size_changed)
        set_time(&di.mtime_sec, &di.mtime_nsec, &now);
    set_time(&di.ctime_sec, &di.ctime_nsec, (valid & FS_SET_CTIME) ? &sa->ctime : &now);

    unsigned times = FS_SET_ATIME | FS_SET_MTIME | FS_SET_ATIME_NOW | FS_SET_MTIME_NOW |
                     FS_SET_CTIME;
    if (st)
        fs_inode_to_stat(ino, &di, st);
    fs_early_answer(e, st);     /* what is left is writing the record */
    return (valid & ~times) ? fs_inode_put(fs, ino, &di) : fs_inode_put_times(fs, ino, &di);
}

static int setattr(struct fs *fs, uint64_t ino, const struct fs_setattr *sa, unsigned valid,
                   struct fs_stat *st, struct fs_early *e)
{
    if ((valid & FS_SET_SIZE) && sa->size > MMAPFS_MAX_FILE_SIZE)
        return -EFBIG;
    int err = jnl_begin(fs->jnl);
    if (err)
        return err;
    unsigned tries = 0;
    do
        err = setattr_locked(fs, ino, sa, valid, st, e);
    while (fs_early_retry(fs, err, e, &tries));
    return fs_end_early(fs, err, e);
}

int fs_setattr(struct fs *fs, uint64_t ino, const struct fs_setattr *sa, unsigned valid,
               struct fs_stat *st)
{
    return setattr(fs, ino, sa, valid, st, NULL);
}

int fs_setattr_early(struct fs *fs, uint64_t ino, const struct fs_setattr *sa,
                     unsigned valid, struct fs_stat *st, struct fs_early *e)
{
    if (valid & FS_SET_SIZE)
        return -EINVAL;
    return setattr(fs, ino, sa, valid, st, e);
}

/* ==== references ============================================================ */

void fs_set_link_drop_fn(struct fs *fs, fs_link_drop_fn fn, void *ctx)
{
    fs->link_drop_fn = fn;
    fs->link_drop_ctx = ctx;
}

void fs_forget(struct fs *fs, uint64_t ino, uint64_t n)
{
    if (jnl_begin(fs->jnl) != 0) {
        /* read-only or failed: only the count changes */
        jnl_lock(fs->jnl);
        fs_icache_unref(fs, ino, n);
        jnl_unlock(fs->jnl);
        return;
    }
    int err = 0;
    if (fs_icache_unref(fs, ino, n) == 0) {
        struct mmapfs_disk_inode di;
        /* the last reference of an unlinked inode: free it now (on
         * failure it stays on the orphan list for the next mount) */
        if (fs_inode_get(fs, ino, &di) == 0 && di.nlink == 0)
            err = fs_inode_release(fs, ino);
    }
    err = fs_end(fs, err);
}

/* ==== durability ============================================================ */

/* The transaction fsync(ino) must wait for: the last one that changed
 * what fsync covers (fdatasync: only size and block map). *has_data: the
 * inode is a regular file, whose data lives outside the journal.
 *
 * A directory covers everything: fsync of any directory makes every change
 * made before it durable, metadata and file data (the newest transaction
 * and a data sync). Linux sends no FUSE request for sync(2) and syncfs(2)
 * (only virtiofs gets FUSE_SYNCFS), so `sync` alone leaves the last
 * changes to the periodic commit; `sync MOUNTPOINT` (fsync of the root
 * directory) after it is the daemon's half of a syncfs (docs/MOUNT.md,
 * "sync and syncfs"). It costs nothing when all is durable already: the usual fsync
 * of a directory after its entries changed waits for that transaction
 * anyway. */
static int fsync_target(struct fs *fs, uint64_t ino, int datasync, uint64_t *seq,
                        int *has_data)
{
    struct mmapfs_disk_inode di;
    jnl_lock(fs->jnl);
    int err = fs_inode_get(fs, ino, &di);
    if (!err && S_ISDIR(di.mode)) {
        *seq = jnl_last_seq(fs->jnl);
        *has_data = 1;
    } else if (!err) {
        *seq = datasync ? fs_icache_data_seq(fs, ino) : fs_icache_dirty_seq(fs, ino);
        *has_data = S_ISREG(di.mode);
    }
    jnl_unlock(fs->jnl);
    if (!err)
        FS_COUNT(fs, fsyncs, 1);
    return err;
}

/* Is there nothing to wait for? A symlink or device node is all metadata:
 * once its last transaction is durable, so is everything fsync covers (a
 * symlink's target is written with the transaction that creates it,
 * ordered or logged). File data may have been written in place since the
 * last sync: a data sync, unless the engine saw no write since the start
 * of its latest successful sync (mmio_unsynced). */
static int fsync_nothing(struct fs *fs, uint64_t seq, int has_data)
{
    if (fs->read_only)
        return 1;
    if (seq > jnl_durable_seq(fs->jnl)) {
        FS_COUNT(fs, fsync_commits, 1);
        return 0;
    }
    if (jnl_error(fs->jnl))
        return 0;               /* answered with the sticky error */
    if (!has_data || !mmio_unsynced(fs->io))
        return 1;
    FS_COUNT(fs, fsync_data_syncs, 1);
    return 0;
}

int fs_fsync(struct fs *fs, uint64_t ino, int datasync)
{
    uint64_t seq = 0;
    int has_data = 0;
    int err = fsync_target(fs, ino, datasync, &seq, &has_data);
    if (err || fsync_nothing(fs, seq, has_data))
        return err;
    if (seq > jnl_durable_seq(fs->jnl))
        return jnl_commit_wait(fs->jnl, seq);     /* data first, then metadata */
    return jnl_sync_data(fs->jnl);
}

void fs_fsync_async(struct fs *fs, uint64_t ino, int datasync, fs_done_fn done, void *ctx)
{
    uint64_t seq = 0;
    int has_data = 0;
    int err = fsync_target(fs, ino, datasync, &seq, &has_data);
    if (err || fsync_nothing(fs, seq, has_data)) {
        done(ctx, err);
        return;
    }
    /* for seq already durable the commit thread makes the data durable */
    jnl_commit_async(fs->jnl, seq, done, ctx);
}

/* ==== statfs ================================================================ */

int fs_statfs(struct fs *fs, struct statvfs *st)
{
    memset(st, 0, sizeof(*st));
    jnl_lock(fs->jnl);
    const struct mmapfs_disk_superblock *sb = fs_super_read(fs);
    if (sb) {
        uint64_t a = 0, b = 0;
        memcpy(&a, sb->uuid, 8);
        memcpy(&b, sb->uuid + 8, 8);
        st->f_fsid = (unsigned long)(a ^ b);
    }
    st->f_bsize = MMAPFS_BLOCK_SIZE;
    st->f_frsize = MMAPFS_BLOCK_SIZE;
    st->f_blocks = fs->block_count - fs->data_start;
    st->f_bfree = fs->free_blocks;
    st->f_bavail = fs->free_blocks;
    st->f_files = fs->inode_count;
    st->f_ffree = fs->free_inodes;
    st->f_favail = fs->free_inodes;
    st->f_namemax = MMAPFS_NAME_MAX;
    /* a failed or aborted journal takes no more changes */
    st->f_flag = fs->read_only || jnl_error(fs->jnl) ? ST_RDONLY : 0;
    jnl_unlock(fs->jnl);
    return sb ? 0 : -EIO;
}

/* ==== metrics =============================================================== */

struct out {
    char *buf;
    size_t size, len;
};

/* Appends one "name value\n" line (counting what does not fit). */
static void line(struct out *o, const char *name, uint64_t value)
{
    char *p = o->len < o->size ? o->buf + o->len : NULL;
    size_t room = o->len < o->size ? o->size - o->len : 0;
    int n = snprintf(p, room, "%s %llu\n", name, (unsigned long long)value);
    if (n > 0)
        o->len += (size_t)n;
}

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

int fs_format_metrics(struct fs *fs, char *buf, size_t size)
{
    struct out o = { buf, size, 0 };
    struct mmio_metrics mm;
    struct jnl_metrics jm;
    if (buf && size)
        buf[0] = '\0';
    mmio_get_metrics(fs->io, &mm);
    jnl_get_metrics(fs->jnl, &jm);

    line(&o, "mmio_sync_background_loops", mm.sync_background_loops);
    line(&o, "mmio_syncs", mm.syncs);
    line(&o, "mmio_sync_delayed", mm.sync_delayed);
    line(&o, "mmio_sync_longest_delay_us", mm.sync_longest_delay_us);
    line(&o, "mmio_sync_shortest_delay_us", mm.sync_shortest_delay_us);
    line(&o, "mmio_sync_us", mm.sync_us);
    line(&o, "mmio_sync_company_waits", mm.sync_company_waits);
    line(&o, "mmio_sync_company_wait_us", mm.sync_company_wait_us);
    line(&o, "mmio_sync_company_joined", mm.sync_company_joined);
    line(&o, "mmio_write_bytes", mm.write_bytes);
    line(&o, "mmio_writes", mm.writes);
    line(&o, "mmio_write_us", mm.write_us);
    line(&o, "mmio_read_bytes", mm.read_bytes);
    line(&o, "mmio_reads", mm.reads);
    line(&o, "mmio_read_us", mm.read_us);
    line(&o, "mmio_discards", mm.discards);
    line(&o, "mmio_discard_bytes", mm.discard_bytes);
    line(&o, "mmio_discard_us", mm.discard_us);

    line(&o, "jnl_commits", jm.commits);
    line(&o, "jnl_commit_blocks", jm.commit_blocks);
    line(&o, "jnl_commit_us", jm.commit_us);
    line(&o, "jnl_commit_waits", jm.commit_waits);
    line(&o, "jnl_wraps", jm.wraps);
    line(&o, "jnl_shadow_blocks_now", jm.shadow_blocks_now);
    line(&o, "jnl_checkpoint_blocks", jm.checkpoint_blocks);
    line(&o, "jnl_commit_syncs", jm.commit_syncs);
    line(&o, "jnl_ordered_commits", jm.ordered_commits);
    line(&o, "jnl_header_writes", jm.header_writes);
    line(&o, "jnl_log_full_syncs", jm.log_full_syncs);
    line(&o, "jnl_pipelined_commits", jm.pipelined_commits);
    line(&o, "jnl_data_images", jm.data_images);
    line(&o, "jnl_head_past_syncs", jm.head_past_syncs);
    line(&o, "jnl_batched_commits", jm.batched_commits);
    line(&o, "jnl_durable_seq", jnl_durable_seq(fs->jnl));

    jnl_lock(fs->jnl);
    uint64_t free_blocks = fs->free_blocks, free_inodes = fs->free_inodes;
    uint64_t pending = fs_alloc_pending_blocks(fs), cached = fs_icache_count(fs);
    int corrupt = fs->corrupt;
    jnl_unlock(fs->jnl);
    line(&o, "fs_blocks_total", fs->block_count - fs->data_start);
    line(&o, "fs_blocks_free", free_blocks);
    line(&o, "fs_blocks_pending_free", pending);
    line(&o, "fs_inodes_total", fs->inode_count);
    line(&o, "fs_inodes_free", free_inodes);
    line(&o, "fs_inodes_cached", cached);
    line(&o, "fs_reads", LOAD(fs->ctr.reads));
    line(&o, "fs_read_bytes", LOAD(fs->ctr.read_bytes));
    line(&o, "fs_writes", LOAD(fs->ctr.writes));
    line(&o, "fs_write_bytes", LOAD(fs->ctr.write_bytes));
    line(&o, "fs_fsyncs", LOAD(fs->ctr.fsyncs));
    line(&o, "fs_fsync_commits", LOAD(fs->ctr.fsync_commits));
    line(&o, "fs_fsync_data_syncs", LOAD(fs->ctr.fsync_data_syncs));
    line(&o, "fs_blocks_allocated", LOAD(fs->ctr.blocks_allocated));
    line(&o, "fs_blocks_freed", LOAD(fs->ctr.blocks_freed));
    line(&o, "fs_inodes_allocated", LOAD(fs->ctr.inodes_allocated));
    line(&o, "fs_inodes_freed", LOAD(fs->ctr.inodes_freed));
    line(&o, "fs_orphans_released", LOAD(fs->ctr.orphans_released));
    line(&o, "fs_enospc_retries", LOAD(fs->ctr.enospc_retries));
    line(&o, "fs_node_checksums", LOAD(fs->ctr.node_checksums));
    line(&o, "fs_unmap_step_max", LOAD(fs->ctr.unmap_step_max));
    line(&o, "fs_corrupt", (uint64_t)corrupt);
    line(&o, "fs_read_only", (uint64_t)fs->read_only);
    return o.len > INT32_MAX ? INT32_MAX : (int)o.len;
}
