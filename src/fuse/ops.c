/*
 * ops.c — connection setup (init/destroy), the operation table, and the
 * reply helpers shared by the handlers in ops_*.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "fuse/fuse_i.h"
#include "fuse/ops_i.h"
#include "util/ino_slot.h"

/* ---- logging ------------------------------------------------------------------ */

static int log_to_syslog;

void mfs_log_use_syslog(int on)
{
    if (on && !log_to_syslog)
        openlog("mmapfs", LOG_PID, LOG_DAEMON);
    log_to_syslog = on;
}

void mfs_log(int priority, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    if (log_to_syslog) {
        vsyslog(priority, fmt, ap);
    } else {
        fputs("mmapfs: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
    }
    va_end(ap);
}

/* ---- replies ------------------------------------------------------------------ */

int mfs_reply_err(fuse_req_t req, int err)
{
    if (err > 0)                /* a count where 0 was meant: success */
        err = 0;
    if (err == -EUCLEAN) {
        struct mmapfs_fuse *m = mfs_data(req);
        if (!__atomic_exchange_n(&m->corrupt_logged, 1, __ATOMIC_RELAXED))
            mfs_log(LOG_ERR, "%s: filesystem corruption detected; requests "
                    "fail with EIO; unmount and run fsck.mmapfs",
                    m->cfg && m->cfg->target ? m->cfg->target : "image");
        err = -EIO;
    }
    return fuse_reply_err(req, -err);
}

void mfs_stat_to_kernel(const struct fs_stat *in, struct stat *out)
{
    memset(out, 0, sizeof(*out));
    out->st_ino = in->ino;
    out->st_mode = in->mode;
    out->st_nlink = in->nlink;
    out->st_uid = in->uid;
    out->st_gid = in->gid;
    out->st_rdev = in->rdev;
    out->st_size = (off_t)in->size;
    out->st_blocks = (blkcnt_t)in->blocks512;
    out->st_blksize = 4096;
    out->st_atim = in->atime;
    out->st_mtim = in->mtime;
    out->st_ctim = in->ctime;
}

void mfs_fill_entry(fuse_req_t req, const struct fs_stat *st,
                    struct fuse_entry_param *e)
{
    const struct mmapfs_config *cfg = mfs_data(req)->cfg;

    memset(e, 0, sizeof(*e));
    e->ino = st->ino;
    e->generation = st->generation;
    mfs_stat_to_kernel(st, &e->attr);
    e->attr_timeout = mfs_attr_timeout(req, st->ino);
    e->entry_timeout = cfg->entry_timeout;
}

void mfs_reply_entry(fuse_req_t req, const struct fs_stat *st)
{
    struct fuse_entry_param e;

    mfs_fill_entry(req, st, &e);
    if (fuse_reply_entry(req, &e) != 0)
        fs_forget(mfs_fs(req), st->ino, 1);   /* the kernel never saw it */
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Marks ino in a table of nslots for window_ns. until is stored before
 * ino, so a reader that sees the new ino sees a current until; one that
 * sees the old ino with the new until keeps the old inode marked a while
 * longer, which is harmless. Two inodes in one slot within the window:
 * the older loses its mark. */
static void ino_window_mark(struct mfs_ino_window *tab, size_t nslots, uint64_t ino,
                            uint64_t window_ns)
{
    size_t i = mfs_ino_slot(ino, nslots);

    __atomic_store_n(&tab[i].until_ns, mono_ns() + window_ns, __ATOMIC_RELEASE);
    __atomic_store_n(&tab[i].ino, ino, __ATOMIC_RELEASE);
}

static int ino_window_has(const struct mfs_ino_window *tab, size_t nslots, uint64_t ino)
{
    size_t i = mfs_ino_slot(ino, nslots);

    return __atomic_load_n(&tab[i].ino, __ATOMIC_ACQUIRE) == ino &&
           mono_ns() < __atomic_load_n(&tab[i].until_ns, __ATOMIC_ACQUIRE);
}

__thread uint64_t mfs_req_epoch;

void mfs_attr_drop(fuse_req_t req, fuse_ino_t ino)
{
    struct mmapfs_fuse *m = mfs_data(req);

    mfs_attr_changing(req, ino);
    /* offset -1: attributes only, no page cache, nothing to wait for. An
     * inode the kernel does not cache gives -ENOENT: nothing to do. */
    if (m->se) {
        (void)fuse_lowlevel_notify_inval_inode(m->se, ino, -1, 0);
        __atomic_fetch_add(&m->attr_notified, 1, __ATOMIC_RELAXED);
    }
}

void mfs_attr_changed(fuse_req_t req, fuse_ino_t ino)
{
    struct mmapfs_fuse *m = mfs_data(req);

    if (mfs_attr_owner_change(&m->attr_owner, ino, fuse_req_ctx(req)->pid)) {
        mfs_attr_changing(req, ino);
        __atomic_fetch_add(&m->attr_notify_skipped, 1, __ATOMIC_RELAXED);
        return;
    }
    mfs_attr_drop(req, ino);
}

void mfs_attr_changing(fuse_req_t req, fuse_ino_t ino)
{
    ino_window_mark(mfs_data(req)->changed, MFS_CHANGED_SLOTS, ino, MFS_CHANGED_WINDOW_NS);
}

int mfs_attr_recent(fuse_req_t req, uint64_t ino)
{
    struct mmapfs_fuse *m = mfs_data(req);

    return ino_window_has(m->changed, MFS_CHANGED_SLOTS, ino) ||
           ino_window_has(m->link_drops, MFS_LINK_DROP_SLOTS, ino);
}

/* ---- link counts the kernel lowers itself ------------------------------------------- */

/* Runs under the filesystem's lock, before the unlink or rename lets go of
 * it (an early answer, fs.h, may already be out: the kernel's decrement
 * comes after it either way); an answer computed after the change takes
 * the lock after this and so reads the slot after it. */
void mfs_link_dropped(void *ctx, uint64_t ino)
{
    struct mmapfs_fuse *m = ctx;

    ino_window_mark(m->link_drops, MFS_LINK_DROP_SLOTS, ino, MFS_LINK_DROP_WINDOW_NS);
}

double mfs_attr_timeout(fuse_req_t req, uint64_t ino)
{
    struct mmapfs_fuse *m = mfs_data(req);

    if (mfs_attr_owner_answer(&m->attr_owner, ino, fuse_req_ctx(req)->pid, mfs_req_epoch))
        return 0;       /* changed since the request began (util/attr_owner.h) */
    if (ino_window_has(m->link_drops, MFS_LINK_DROP_SLOTS, ino))
        return 0;
    if (m->cfg->attr_timeout > MFS_GROW_ATTR_TIMEOUT &&
        ino_window_has(m->growing, MFS_GROW_SLOTS, ino))
        return MFS_GROW_ATTR_TIMEOUT;
    return m->cfg->attr_timeout;
}

/* The mark comes before the notification: an answer computed after the
 * notification is sent with the short timeout, and one computed before it
 * is either invalidated by it or, if it arrives later, discarded by the
 * kernel (the notification raises the inode's attribute version). A slot
 * taken over by another inode only costs one more notification. */
void mfs_blocks_changed(struct mmapfs_fuse *m, uint64_t ino)
{
    int marked = ino_window_has(m->growing, MFS_GROW_SLOTS, ino);

    ino_window_mark(m->growing, MFS_GROW_SLOTS, ino, MFS_GROW_WINDOW_NS);
    if (!marked && m->se)
        (void)fuse_lowlevel_notify_inval_inode(m->se, ino, -1, 0);
}

/* ---- errors of the kernel's write-back -------------------------------------------------
 *
 * With the writeback cache, write(2) only fills the kernel's page cache;
 * the data reaches the daemon later as WRITE requests, and an error there
 * (a full filesystem) is recorded in the file's mapping, reported by
 * fsync(2) and close(2) only. A writer that never calls either (dd, cat,
 * yes > file) would then go on forever: every write(2) succeeds and the
 * size grows past the filesystem's (1.6 TB on a 128 MiB image in a few
 * minutes, measured). ext4 fails the write(2) itself. The kernel's write
 * path asks for the file's attributes first when its copy is invalid
 * (fuse_cache_write_iter -> fuse_update_attributes, a GETATTR naming the
 * open file); so a failed write-back drops that copy, and the GETATTR that
 * comes with a file handle answers the error once: the writer's write(2)
 * fails with ENOSPC. A stat(2) by path carries no handle and is answered
 * normally. A read or lseek through an open file of that inode may take
 * the error instead (once), as with a pending error on ext4. */

void mfs_wb_error_set(fuse_req_t req, uint64_t ino, int err)
{
    struct mmapfs_fuse *m = mfs_data(req);
    size_t i = mfs_ino_slot(ino, MFS_WB_ERROR_SLOTS);

    if (!err) {
        uint64_t expect = ino;
        if (__atomic_load_n(&m->wb_errors[i].ino, __ATOMIC_ACQUIRE) == ino)
            __atomic_compare_exchange_n(&m->wb_errors[i].ino, &expect, 0, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
        return;
    }
    __atomic_store_n(&m->wb_errors[i].err, err, __ATOMIC_RELEASE);
    __atomic_store_n(&m->wb_errors[i].ino, ino, __ATOMIC_RELEASE);
    mfs_attr_drop(req, ino);
}

int mfs_wb_error_take(fuse_req_t req, uint64_t ino)
{
    struct mmapfs_fuse *m = mfs_data(req);
    size_t i = mfs_ino_slot(ino, MFS_WB_ERROR_SLOTS);
    uint64_t expect = ino;

    if (__atomic_load_n(&m->wb_errors[i].ino, __ATOMIC_ACQUIRE) != ino)
        return 0;
    int err = __atomic_load_n(&m->wb_errors[i].err, __ATOMIC_ACQUIRE);
    if (!__atomic_compare_exchange_n(&m->wb_errors[i].ino, &expect, 0, 0,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return 0;           /* another request took it */
    return err;
}

/* ---- request counters ------------------------------------------------------------ */

static const char *const op_names[MFS_OP_COUNT] = {
    [MFS_OP_LOOKUP] = "lookup", [MFS_OP_FORGET] = "forget",
    [MFS_OP_BATCH_FORGET] = "batch_forget", [MFS_OP_GETATTR] = "getattr",
    [MFS_OP_SETATTR] = "setattr", [MFS_OP_READLINK] = "readlink",
    [MFS_OP_MKNOD] = "mknod", [MFS_OP_MKDIR] = "mkdir",
    [MFS_OP_UNLINK] = "unlink", [MFS_OP_RMDIR] = "rmdir",
    [MFS_OP_SYMLINK] = "symlink", [MFS_OP_RENAME] = "rename",
    [MFS_OP_LINK] = "link", [MFS_OP_OPEN] = "open", [MFS_OP_READ] = "read",
    [MFS_OP_WRITE] = "write", [MFS_OP_FLUSH] = "flush",
    [MFS_OP_RELEASE] = "release", [MFS_OP_FSYNC] = "fsync",
    [MFS_OP_OPENDIR] = "opendir", [MFS_OP_READDIR] = "readdir",
    [MFS_OP_READDIRPLUS] = "readdirplus", [MFS_OP_RELEASEDIR] = "releasedir",
    [MFS_OP_FSYNCDIR] = "fsyncdir", [MFS_OP_STATFS] = "statfs",
    [MFS_OP_SETXATTR] = "setxattr", [MFS_OP_GETXATTR] = "getxattr",
    [MFS_OP_LISTXATTR] = "listxattr", [MFS_OP_REMOVEXATTR] = "removexattr",
    [MFS_OP_CREATE] = "create", [MFS_OP_FALLOCATE] = "fallocate",
    [MFS_OP_LSEEK] = "lseek", [MFS_OP_TMPFILE] = "tmpfile",
};

int mfs_format_requests(const struct mmapfs_fuse *m, char *buf, size_t size)
{
    size_t len = 0;
    int op, n;

    for (op = 0; op < MFS_OP_COUNT; op++) {
        uint64_t v = __atomic_load_n(&m->requests[op], __ATOMIC_RELAXED);
        if (v == 0)
            continue;
        n = snprintf(buf + (len < size ? len : size), len < size ? size - len : 0,
                     "fuse_req_%s %llu\n", op_names[op], (unsigned long long)v);
        if (n < 0)
            return n;
        len += (size_t)n;
    }
    return (int)len;
}

/* ---- init / destroy ------------------------------------------------------------ */

/* Turns capability 'cap' on in conn->want if the kernel offers it. */
static void want_cap(struct fuse_conn_info *conn, unsigned cap, int on)
{
    if (on && (conn->capable & cap))
        conn->want |= cap;
    else
        conn->want &= ~cap;
}

/* Negotiates capabilities. libfuse pre-sets some defaults in conn->want;
 * every capability is decided here explicitly, each only if offered. */
static void mfs_init(void *userdata, struct fuse_conn_info *conn)
{
    struct mmapfs_fuse *m = userdata;
    const struct mmapfs_config *cfg = m->cfg;

    /* Not with the single-threaded loop (-s, max_threads=1): a replace via
     * rename must first fetch the new file's cached pages (rename_replacing
     * in ops_names.c, ext4's auto_da_alloc), and the one request thread
     * cannot wait for writes it has to serve itself (the wait goes to the
     * deferral thread, defer.c); without the cache only stores through a
     * shared mapping are left to fetch. docs/MOUNT.md, "Replace via rename
     * without fsync". */
    want_cap(conn, FUSE_CAP_WRITEBACK_CACHE,
             !cfg->no_writeback_cache && !cfg->read_only && !cfg->single_thread);
    /* No per-open state: an OPEN answered with ENOSYS makes the kernel
     * stop sending OPEN (and RELEASE), with FOPEN_KEEP_CACHE as the
     * default: two round trips fewer per open. Not for OPENDIR: there the
     * kernel's default is FOPEN_CACHE_DIR as well, and its listing cache
     * served names unlinked before the listing began (and missed new
     * ones) while other processes changed the directory and listed it
     * through small getdents buffers (83_stress.sh, readdir_race.c). */
    want_cap(conn, FUSE_CAP_NO_OPEN_SUPPORT, 1);
    want_cap(conn, FUSE_CAP_NO_OPENDIR_SUPPORT, 0);
    want_cap(conn, FUSE_CAP_ASYNC_READ, 1);
    want_cap(conn, FUSE_CAP_READDIRPLUS, 1);
    want_cap(conn, FUSE_CAP_READDIRPLUS_AUTO, cfg->readdirplus_auto);
    want_cap(conn, FUSE_CAP_PARALLEL_DIROPS, 1);
    /* Off: the kernel does not invalidate the page cache when an
     * asynchronous direct write completes (only a synchronous one, after
     * the WRITE reply), so a buffered read racing with an io_submit
     * O_DIRECT write could cache the old data for good. docs/MOUNT.md */
    want_cap(conn, FUSE_CAP_ASYNC_DIO, 0);
    want_cap(conn, FUSE_CAP_CACHE_SYMLINKS, 1);      /* we are the only writer */
    /* file handles (open_by_handle_at, NFS): the kernel decodes a handle
     * of an inode it does not cache with LOOKUP(ino, ".") and a parent with
     * LOOKUP(ino, ".."); fs answers both from the inode table, and the
     * generation in every entry makes a handle of a reused inode ESTALE */
    want_cap(conn, FUSE_CAP_EXPORT_SUPPORT, 1);
    want_cap(conn, FUSE_CAP_AUTO_INVAL_DATA, 0);     /* only writer: keep the cache */
    /* v1: the kernel leaves clearing SUID/SGID to the daemon (it would
     * clear SGID only with group-execute); mfs_setattr clears them as
     * setattr_should_drop_suidgid() does. */
    want_cap(conn, FUSE_CAP_HANDLE_KILLPRIV, 1);
    /* v2 as well: the kernel then marks the mount SB_NOSEC and caches "no
     * security.capability" per inode instead of a GETXATTR per write(2);
     * the clearing stays mfs_setattr's. libfuse 3.14 cannot ask for it:
     * devio.c adds the flag to the INIT reply. */
#ifdef FUSE_CAP_HANDLE_KILLPRIV_V2
    want_cap(conn, FUSE_CAP_HANDLE_KILLPRIV_V2, !cfg->no_killpriv_v2);
    m->killpriv_v2 = (conn->want & FUSE_CAP_HANDLE_KILLPRIV_V2) != 0;
#else
    m->killpriv_v2 = !cfg->no_killpriv_v2 && mmapfs_killpriv_negotiate();
#endif
    want_cap(conn, FUSE_CAP_ATOMIC_O_TRUNC, 0);      /* truncation via setattr */
    want_cap(conn, FUSE_CAP_SPLICE_WRITE, 0);
    want_cap(conn, FUSE_CAP_SPLICE_MOVE, 0);
    want_cap(conn, FUSE_CAP_SPLICE_READ, 0);
    /* ACLs: the kernel enforces and caches them; the daemon stores them,
     * keeps the mode in sync and applies the umask itself (ops_xattr.c) */
    want_cap(conn, FUSE_CAP_POSIX_ACL, !cfg->no_acl);
    want_cap(conn, FUSE_CAP_DONT_MASK, (conn->want & FUSE_CAP_POSIX_ACL) != 0);

    conn->max_write = 1u << 20;
    if (conn->max_background < 64)
        conn->max_background = 64;
    if (conn->congestion_threshold < 48)
        conn->congestion_threshold = 48;
    conn->time_gran = 1;
    m->writeback_cache = (conn->want & FUSE_CAP_WRITEBACK_CACHE) != 0;
    m->no_open = (conn->want & FUSE_CAP_NO_OPEN_SUPPORT) != 0;
    m->no_opendir = (conn->want & FUSE_CAP_NO_OPENDIR_SUPPORT) != 0;
    m->killpriv = (conn->want & FUSE_CAP_HANDLE_KILLPRIV) != 0;
    m->posix_acl = (conn->want & FUSE_CAP_POSIX_ACL) != 0;
    m->dont_mask = (conn->want & FUSE_CAP_DONT_MASK) != 0;
    /* the kernel owns mtime/ctime of written files under the writeback cache */
    fs_set_kernel_times(m->fs, m->writeback_cache);
    /* new inodes take their inherited ACLs in the create's transaction */
    fs_set_acl_inherit(m->fs, m->posix_acl);

    mfs_log(LOG_INFO, "%s mounted on %s (protocol %u.%u, writeback cache %s)",
            cfg->target, cfg->mountpoint, conn->proto_major, conn->proto_minor,
            (conn->want & FUSE_CAP_WRITEBACK_CACHE) ? "on" : "off");
}

/* The kernel ended the connection; the daemon's main unmounts fs after the
 * loop returns, so nothing to do here. */
static void mfs_destroy(void *userdata)
{
    (void)userdata;
}

const struct fuse_lowlevel_ops mmapfs_ll_ops = {
    .init         = mfs_init,
    .destroy      = mfs_destroy,
    .lookup       = mfs_lookup,
    .forget       = mfs_forget,
    .forget_multi = mfs_forget_multi,
    .getattr      = mfs_getattr,
    .setattr      = mfs_setattr,
    .readlink     = mfs_readlink,
    .mknod        = mfs_mknod,
    .mkdir        = mfs_mkdir,
    .unlink       = mfs_unlink,
    .rmdir        = mfs_rmdir,
    .symlink      = mfs_symlink,
    .rename       = mfs_rename,
    .link         = mfs_link,
    .open         = mfs_open,
    .read         = mfs_read,
    .write        = mfs_write,
    .flush        = mfs_flush,
    .release      = mfs_release,
    .fsync        = mfs_fsync,
    .opendir      = mfs_opendir,
    .readdir      = mfs_readdir,
    .readdirplus  = mfs_readdirplus,
    .releasedir   = mfs_releasedir,
    .fsyncdir     = mfs_fsyncdir,
    .statfs       = mfs_statfs,
    .setxattr     = mfs_setxattr,
    .getxattr     = mfs_getxattr,
    .listxattr    = mfs_listxattr,
    .removexattr  = mfs_removexattr,
    .create       = mfs_create,
    .fallocate    = mfs_fallocate,
    .lseek        = mfs_lseek,
};
