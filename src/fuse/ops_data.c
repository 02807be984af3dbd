/*
 * ops_data.c — file data requests: open, read, write, flush, release,
 * fsync, fallocate, lseek, and statfs.
 *
 * Nothing is buffered in the daemon: open/flush/release have nothing to do
 * and no file handle is kept (fh = 0). Reads with the mmap backend are
 * zero-copy: fs_read_iov describes the data as pointers into the mapping
 * and fuse_reply_iov writes them straight to /dev/fuse. A read pin is held
 * from before the lookup until the reply has been written, so the blocks
 * cannot be given to another file in between (fs_read_pin).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuse/ops_i.h"

/* Largest iovec count handed to fuse_reply_iov (libfuse adds one header
 * entry; writev allows IOV_MAX = 1024). */
#define MFS_MAX_IOV 1000

void mfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    mfs_count(req, MFS_OP_OPEN);
    (void)ino;
    if (mfs_data(req)->no_open) {
        mfs_reply_err(req, -ENOSYS);   /* the kernel stops asking (init) */
        return;
    }
    /* O_TRUNC arrives as a separate setattr (atomic_o_trunc is off); all
     * changes go through this mount, so cached pages stay valid */
    fi->keep_cache = 1;
    fi->fh = 0;
    fuse_reply_open(req, fi);
}

/* Read into a buffer (pread backend, or when the data is too fragmented to
 * describe in MFS_MAX_IOV pieces). Loops until size bytes or EOF: a short
 * reply would be taken by the kernel as end of file. */
static void read_copy(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off)
{
    struct fs *fs = mfs_fs(req);
    size_t done = 0;
    ssize_t n = 0;
    char *buf;

    buf = malloc(size ? size : 1);
    if (!buf) {
        mfs_reply_err(req, -ENOMEM);
        return;
    }
    while (done < size) {
        n = fs_read(fs, ino, (uint64_t)off + done, buf + done, size - done);
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    if (n < 0)
        mfs_reply_err(req, (int)n);     /* not a short reply: see mfs_read */
    else
        fuse_reply_buf(req, buf, done);
    free(buf);
}

void mfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
              struct fuse_file_info *fi)
{
    struct fs *fs = mfs_fs(req);      /* req is gone once replied to */
    struct iovec small[64], *iov = small;
    struct fs_read_pin pin;
    size_t done = 0, max;
    ssize_t n = 0;
    int used = 0, got;
    mfs_count(req, MFS_OP_READ);
    (void)fi;

    if (off < 0) {
        mfs_reply_err(req, -EINVAL);
        return;
    }
    max = size / 4096 + 3;
    if (max > MFS_MAX_IOV)
        max = MFS_MAX_IOV;
    if (max > sizeof(small) / sizeof(small[0])) {
        iov = malloc(max * sizeof(*iov));
        if (!iov) {
            read_copy(req, ino, size, off);
            return;
        }
    }
    fs_read_pin(fs, &pin);
    while (done < size && (size_t)used < max) {
        got = 0;
        n = fs_read_iov(fs, ino, (uint64_t)off + done, size - done,
                        iov + used, (int)(max - (size_t)used), &got, &pin);
        if (n <= 0)
            break;
        used += got;
        done += (size_t)n;
    }
    if (n == -ENOTSUP || (done < size && n > 0)) {
        /* pread backend, or the iovec ran out before EOF */
        fs_read_unpin(fs, &pin);
        read_copy(req, ino, size, off);
    } else if (n < 0) {
        /* The error even after some data: the kernel takes a short reply
         * for the end of the file, and with the writeback cache fills the
         * rest of the request's pages with zeros and keeps them (without
         * it, it shrinks its idea of the size). A caller would read zeros
         * where the image could not be read. After the error the kernel
         * reads page by page and returns the data before it. */
        fs_read_unpin(fs, &pin);
        mfs_reply_err(req, (int)n);
    } else {
        fuse_reply_iov(req, iov, used);
        fs_read_unpin(fs, &pin);
    }
    if (iov != small)
        free(iov);
}

void mfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
               off_t off, struct fuse_file_info *fi)
{
    struct mmapfs_fuse *m = mfs_data(req);   /* req is gone once replied to */
    struct fs *fs = m->fs;
    size_t done = 0;
    ssize_t n = 0;
    int blocks_changed = 0, changed;

    mfs_count(req, MFS_OP_WRITE);

    if (off < 0) {
        mfs_reply_err(req, -EINVAL);
        return;
    }
    /* Under the writeback cache fs_write leaves mtime/ctime alone: the
     * kernel owns them and sends them with setattr (fs_set_kernel_times). */
    while (done < size) {
        n = fs_write_blocks(fs, ino, (uint64_t)off + done, buf + done, size - done,
                            &changed);
        blocks_changed |= changed;
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    int err = done < size ? (n < 0 ? (int)n : -EIO) : 0;
    mfs_dirty_follow_space(m);   /* before the kernel dirties more */
    if (fi && fi->writepage) {
        /* A write-back of cached pages (writeback cache, or pages stored
         * through a shared mapping): the kernel does not refresh its
         * attributes after it, not even at fsync (mfs_blocks_changed).
         * Before the reply, so that an fsync, which waits for the reply,
         * sees it. */
        if (blocks_changed)
            mfs_blocks_changed(m, ino);
        mfs_wb_error_set(req, ino, err);
        /* A write-back of cached pages: the kernel reads only the error
         * of the reply, never its count, and takes a short count for
         * success: the pages would be clean, fsync would return 0 and
         * the bytes past the count would be lost. The error fails the
         * write-back (fsync, close) instead; what was written stays. */
        if (err) {
            mfs_reply_err(req, err);
            return;
        }
    }
    if (done == 0 && size > 0) {
        mfs_reply_err(req, err);
        return;
    }
    fuse_reply_write(req, done);   /* write(2) returns the short count */
}

void mfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    mfs_count(req, MFS_OP_FLUSH);
    (void)ino;
    (void)fi;
    /* Nothing is buffered in the daemon. ENOSYS makes the kernel stop
     * sending FLUSH (one round trip fewer per close); it still writes the
     * file's cached pages back and reports their errors (ENOSPC, EIO) from
     * close(2) before it would have sent FLUSH. */
    mfs_reply_err(req, -ENOSYS);
}

void mfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    mfs_count(req, MFS_OP_RELEASE);
    (void)ino;
    (void)fi;
    mfs_reply_err(req, 0);
}

/* Replies to a FSYNC / FSYNCDIR once fs says it is durable; runs on the
 * journal's commit thread (or in the worker when nothing has to wait). */
static void mfs_fsync_done(void *req, int err)
{
    struct mmapfs_fuse *m = mfs_data(req);   /* req is freed by the reply */

    mfs_reply_err((fuse_req_t)req, err);
    mfs_reply_paid(m);
}

void mfs_fsync_start(fuse_req_t req, fuse_ino_t ino, int datasync)
{
    mfs_reply_owed(mfs_data(req));
    fs_fsync_async(mfs_fs(req), ino, datasync, mfs_fsync_done, req);
}

void mfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    mfs_count(req, MFS_OP_FSYNC);
    (void)fi;
    /* answered from the commit thread when the group commit that carries
     * this inode is durable: the worker goes back to other requests */
    mfs_fsync_start(req, ino, datasync);
}

void mfs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
                   off_t length, struct fuse_file_info *fi)
{
    mfs_count(req, MFS_OP_FALLOCATE);
    (void)fi;
    if (offset < 0 || length <= 0) {
        mfs_reply_err(req, -EINVAL);
        return;
    }
    mfs_reply_err(req, fs_fallocate(mfs_fs(req), ino, mode, (uint64_t)offset,
                                    (uint64_t)length));
}

/* See ops_i.h. */
void mfs_flush_kernel_pages(fuse_req_t req, fuse_ino_t ino)
{
    struct mmapfs_fuse *m = mfs_data(req);

    /* Also without the writeback cache: stores through a shared mapping
     * dirty the kernel's pages on every mount, and SEEK_DATA must see them
     * as ext4 does (a mapped store into a hole was reported as a hole). */
    if (m->se && !m->cfg->read_only && mfs_flush_begin(m)) {
        fuse_lowlevel_notify_inval_inode(m->se, ino, 0, 0);
        mfs_flush_end(m);
    }
}

/* SEEK_DATA/SEEK_HOLE once the kernel's cached pages were fetched; replies. */
static void seek_data_finish(fuse_req_t req, fuse_ino_t ino, off_t off, int whence)
{
    int64_t pos = fs_lseek(mfs_fs(req), ino, (uint64_t)off, whence);
    if (pos < 0)
        mfs_reply_err(req, (int)pos);
    else
        fuse_reply_lseek(req, (off_t)pos);
}

struct seek_job {
    struct mfs_deferred d;       /* first */
    fuse_ino_t ino;
    off_t off;
    int whence;
};

static void seek_deferred(struct mfs_deferred *d)
{
    struct seek_job *j = (struct seek_job *)d;

    mfs_flush_kernel_pages(j->d.req, j->ino);
    seek_data_finish(j->d.req, j->ino, j->off, j->whence);
    free(j);
}

/* The fetch waits for the kernel: in place, or on the deferral thread when
 * waiting here would take the last request thread (defer.c). */
static void seek_data(fuse_req_t req, fuse_ino_t ino, off_t off, int whence)
{
    struct mmapfs_fuse *m = mfs_data(req);

    if (mfs_wait_slot_take(m)) {
        mfs_flush_kernel_pages(req, ino);
        mfs_wait_slot_give(m);
        seek_data_finish(req, ino, off, whence);
        return;
    }
    struct seek_job *j = malloc(sizeof(*j));
    if (j)
        *j = (struct seek_job){ .d.run = seek_deferred, .ino = ino, .off = off,
                                .whence = whence };
    mfs_defer(m, req, j ? &j->d : NULL);
}

void mfs_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
               struct fuse_file_info *fi)
{
    struct fs_stat st;
    int err;
    mfs_count(req, MFS_OP_LSEEK);
    (void)fi;

    switch (whence) {
    case SEEK_DATA:
    case SEEK_HOLE:
        if (off < 0) {
            err = -ENXIO;
            goto out_err;
        }
        seek_data(req, ino, off, whence);
        return;
    case SEEK_SET:
    case SEEK_CUR:
        /* the kernel resolves these itself; answered for completeness */
        fuse_reply_lseek(req, off);
        return;
    case SEEK_END:
        err = fs_getattr(mfs_fs(req), ino, &st);
        if (err)
            goto out_err;
        fuse_reply_lseek(req, (off_t)st.size + off);
        return;
    default:
        err = -EINVAL;
        goto out_err;
    }
out_err:
    mfs_reply_err(req, err);
}

void mfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct statvfs st;
    int err;
    mfs_count(req, MFS_OP_STATFS);
    (void)ino;

    memset(&st, 0, sizeof(st));
    err = fs_statfs(mfs_fs(req), &st);
    if (err)
        goto out_err;
    fuse_reply_statfs(req, &st);
    return;
out_err:
    mfs_reply_err(req, err);
}
