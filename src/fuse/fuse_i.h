/*
 * fuse_i.h — private interfaces of the FUSE front end (src/fuse/).
 *
 * The front end decodes libfuse low-level requests, calls the fs API
 * (src/fs/fs.h) and replies exactly once. It has no on-disk knowledge and
 * no global lock: the fs core is thread safe.
 *
 *   opts.c       option table, help text, command-line parsing
 *   ops.c        init/destroy, the operation table, shared reply helpers
 *   ops_names.c  lookup, forget, getattr, setattr, create, mknod, mkdir,
 *                symlink, link, unlink, rmdir, rename, readlink
 *   ops_data.c   open, read, write, flush, release, fsync, fallocate,
 *                lseek, statfs
 *   ops_dir.c    opendir, readdir, readdirplus, releasedir, fsyncdir
 *   ops_xattr.c  xattrs and the virtual metrics xattr
 *   session.c    session creation, signal handling, mount, loop
 *   dirty.c      the mount's share of the kernel's dirty pages, and its
 *                cap that follows free space
 */
#ifndef MMAPFS_FUSE_I_H
#define MMAPFS_FUSE_I_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <pthread.h>
#include <stdint.h>

#include "fs/fs.h"
#include "util/attr_owner.h"
#include "util/cpu_latency.h"
#include "fuse/version_i.h"

/* ---- configuration (opts.c) ------------------------------------------------ */

/* Defaults (docs/MOUNT.md says why). */
#define MMAPFS_DEFAULT_TIMEOUT       3600   /* entry_timeout, attr_timeout (s) */
#define MMAPFS_DEFAULT_MAX_RATIO     10     /* bdi max_ratio (%) */
#define MMAPFS_DEFAULT_MIN_RATIO     5      /* bdi min_ratio (%) */
#define MMAPFS_DEFAULT_READ_AHEAD_KB 1024  /* bdi read_ahead_kb: 1 MiB READs */
#define MMAPFS_DEFAULT_IDLE_THREADS  16
/* hot loop: poll for the next request this long before sleeping in
 * read(2): a request that comes within it skips a wake-up (docs/MOUNT.md) */
#define MMAPFS_DEFAULT_SPIN_US       20
/* hot loop: keep idle CPUs polling while requests come and this long after
 * the last one (docs/MOUNT.md, "Waking the caller"); 0 = off */
#define MMAPFS_DEFAULT_LATENCY_HOLD_MS 10
#define MMAPFS_LATENCY_HOLD_MAX_CPUS   8    /* default 0 on larger machines */
#define MMAPFS_DEFAULT_METRICS_INTERVAL 15   /* metrics=PATH updates (s) */
#define MMAPFS_STR_(x) #x
#define MMAPFS_STR(x) MMAPFS_STR_(x)

struct mmapfs_config {
    /* positionals, as given and resolved (absolute) */
    const char *target_arg, *mountpoint_arg;
    char *target, *mountpoint;
    /* daemon flags */
    int foreground, debug, single_thread, show_help, show_version;
    /* filesystem options; *_str are raw option values validated after
     * parsing (fuse_opt stores strings; numbers are checked strictly) */
    int read_only;
    int no_writeback_cache;
    int no_acl;              /* noacl: no POSIX ACLs (default: acl) */
    int no_killpriv_v2;      /* nokillpriv_v2: no HANDLE_KILLPRIV_V2 */
    int no_clone_fd;         /* workers share one /dev/fuse descriptor */
    int no_hot_loop;         /* libfuse's multi-threaded loop instead */
    char *sync_delay_str, *io_str, *commit_str;
    char *entry_timeout_str, *attr_timeout_str, *max_threads_str;
    char *readdirplus_str, *max_ratio_str, *min_ratio_str, *idle_threads_str;
    char *spin_str, *read_ahead_str, *latency_hold_str;
    int discard_opt;         /* 0 not given, 1 discard, 2 nodiscard */
    char *metrics_arg, *metrics_interval_str;
    /* validated values */
    uint64_t sync_delay_us;
    enum mmio_backend backend;
    unsigned commit_s;
    double entry_timeout, attr_timeout;
    unsigned max_threads;
    unsigned idle_threads;   /* workers kept waiting at most */
    unsigned spin_us;        /* hot loop: poll this long for the next request */
    unsigned latency_hold_ms; /* hot loop: CPU latency hold after the last request */
    int readdirplus_auto;    /* 1: kernel chooses READDIRPLUS or READDIR */
    int max_ratio, min_ratio; /* bdi max_ratio/min_ratio to set, -1 = leave */
    unsigned read_ahead_kb;  /* bdi read_ahead_kb to set, 0 = leave */
    int discard;             /* give freed blocks back (-o discard) */
    char *metrics_path;      /* metrics=PATH, absolute; NULL = none */
    unsigned metrics_interval_s;
    int bad;                 /* an error was already reported */
};

/* Parses argv into cfg and the argument vector handed to fuse_session_new
 * (argv[0], the FUSE options to pass through, and the options mmapfs always
 * adds: subtype=mmapfs, fsname=TARGET, default_permissions).
 * Returns 0 to go on, 1 when -h/-V was handled (exit 0), or minus a
 * TOOL_EXIT_* code (src/tools/exit_i.h) after printing one line that says
 * what is wrong with an option, TARGET or MOUNTPOINT (exit with it). */
int mmapfs_parse_args(int argc, char **argv, struct mmapfs_config *cfg,
                      struct fuse_args *fuse_args);

/* Frees what mmapfs_parse_args allocated in cfg. */
void mmapfs_config_free(struct mmapfs_config *cfg);

/* Prints the usage and option help to stdout. */
void mmapfs_print_help(const char *prog);

/* ---- per-mount state (ops.c) ----------------------------------------------- */

/* Requests counted per kind (mfs_count), reported with the fs metrics as
 * "fuse_req_<name> N" (names in ops.c). INIT and DESTROY are not counted. */
enum mfs_op {
    MFS_OP_LOOKUP, MFS_OP_FORGET, MFS_OP_BATCH_FORGET, MFS_OP_GETATTR,
    MFS_OP_SETATTR, MFS_OP_READLINK, MFS_OP_MKNOD, MFS_OP_MKDIR,
    MFS_OP_UNLINK, MFS_OP_RMDIR, MFS_OP_SYMLINK, MFS_OP_RENAME, MFS_OP_LINK,
    MFS_OP_OPEN, MFS_OP_READ, MFS_OP_WRITE, MFS_OP_FLUSH, MFS_OP_RELEASE,
    MFS_OP_FSYNC, MFS_OP_OPENDIR, MFS_OP_READDIR, MFS_OP_READDIRPLUS,
    MFS_OP_RELEASEDIR, MFS_OP_FSYNCDIR, MFS_OP_STATFS, MFS_OP_SETXATTR,
    MFS_OP_GETXATTR, MFS_OP_LISTXATTR, MFS_OP_REMOVEXATTR, MFS_OP_CREATE,
    MFS_OP_FALLOCATE, MFS_OP_LSEEK, MFS_OP_TMPFILE,
    MFS_OP_COUNT
};

/* glibc: blocks up to this size come from its heaps, and up to this much
 * free memory stays at a heap's top (src/tools/mmapfs.c, keep_freed_memory;
 * 32 MiB is glibc's largest heap threshold). */
#define MFS_MALLOC_MMAP_THRESHOLD (32 << 20)
#define MFS_MALLOC_TRIM_THRESHOLD (256 << 20)

#define MFS_LINK_DROP_SLOTS 1024         /* powers of two (ops.c, ino_slot) */
#define MFS_CHANGED_SLOTS   4096
#define MFS_GROW_SLOTS      1024
#define MFS_WB_ERROR_SLOTS  64

/* A slot of a table of inodes marked for a while: a slot per hash of the
 * inode number, both fields atomic (ops.c, ino_window_mark / _has). */
struct mfs_ino_window { uint64_t ino, until_ns; };

/* The mount's cap on dirty pages in the kernel (dirty.c). */
#define MFS_DIRTY_FLOOR (1ull << 20)   /* lowest cap near the full point */
struct mfs_dirty {
    char dir[96];            /* /sys/class/bdi/MAJ:MIN of the mount */
    int on;                  /* the cap follows free space (atomic) */
    uint64_t max_ratio, min_ratio;  /* the mount's ratios as set at mount */
    uint64_t full_bytes;     /* max_bytes at those ratios: the cap with room */
    uint64_t floor;          /* MFS_DIRTY_FLOOR, or full_bytes if lower */
    uint64_t cap;            /* max_bytes now (atomic; written under mu) */
    pthread_mutex_t mu;      /* one change of the cap at a time */
};

/* A request handed to the deferral thread (defer.c): run() finishes req,
 * replies and frees the record. Embedded first in the handler's own
 * record. */
struct mfs_deferred {
    struct mfs_deferred *next;
    void (*run)(struct mfs_deferred *d);
    fuse_req_t req;
};

struct mfs_defer {
    unsigned waiting;            /* request threads waiting for write-back (atomic) */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct mfs_deferred *head, *tail;   /* (lock) */
    int started, stop;                  /* (lock) */
    pthread_t thread;
    unsigned owed;               /* replies the commit thread still owes (lock) */
    unsigned flushing;           /* handlers in mfs_flush_kernel_pages (atomic) */
    int no_flush;                /* shutting down: no more of them (atomic) */
};

struct mmapfs_fuse {
    struct fs *fs;                    /* set once fs_mount succeeded */
    const struct mmapfs_config *cfg;
    struct fuse_session *se;          /* for notifications to the kernel */
    int writeback_cache;              /* negotiated in init */
    int no_open, no_opendir;          /* kernel skips OPEN / OPENDIR (init) */
    int killpriv;                     /* daemon clears SUID/SGID (init) */
    int killpriv_v2;                  /* ... and the mount is SB_NOSEC (init) */
    int posix_acl, dont_mask;         /* ACLs negotiated; umask is ours (init) */
    int corrupt_logged;               /* first EUCLEAN logged (atomic) */
    uint64_t requests[MFS_OP_COUNT];  /* per kind (atomic, relaxed) */
    /* Inodes that lost one of several names lately, and until when their
     * attributes go out with timeout 0 (ops.c, mfs_link_dropped). A slot
     * per hash of the inode number; both fields atomic. */
    struct mfs_ino_window link_drops[MFS_LINK_DROP_SLOTS];
    /* Inodes mfs_attr_changed told the kernel about lately: READDIRPLUS
     * leaves their attributes out for a while (ops_dir.c). */
    struct mfs_ino_window changed[MFS_CHANGED_SLOTS];
    /* Who was answered with an inode's attributes since the kernel was
     * last told they changed (mfs_attr_changed, mfs_attr_timeout). */
    struct mfs_attr_owner attr_owner;
    uint64_t attr_notified, attr_notify_skipped;  /* (atomic, relaxed) */
    /* Regular files whose block count a write-back changed lately: their
     * attributes go out with a short timeout (mfs_blocks_changed). */
    struct mfs_ino_window growing[MFS_GROW_SLOTS];
    /* Inodes whose written-back data the filesystem refused lately, and
     * the error, until a writer's next write(2) takes it (ops.c,
     * mfs_wb_error_set). A slot per hash of the inode number; atomic. */
    struct { uint64_t ino; int err; } wb_errors[MFS_WB_ERROR_SLOTS];
    struct mfs_dirty dirty;           /* dirty-page cap (dirty.c) */
    struct mfs_defer defer;           /* waits for write-back (defer.c) */
    struct mfs_cpu_latency cpu_latency; /* the hot loop's hold (session.c) */
};

/* The deferral thread of requests that wait for the kernel's write-back
 * (defer.c): mfs_defer_init before the session, mfs_defer_stop after its
 * loop (runs what is queued, joins the thread, waits for the replies
 * still owed: mfs_reply_owed). */
void mfs_defer_init(struct mmapfs_fuse *m);
void mfs_defer_stop(struct mmapfs_fuse *m);

/* Before the loop is told to end (SIGTERM): from now on no request waits
 * for the kernel's write-back, and those that wait have been served. The
 * WRITEs they wait for need the loop: once it has ended they would wait
 * for ever, and so would the loop's end (defer.c). */
void mfs_defer_no_flush(struct mmapfs_fuse *m);

/* The low-level operation table; userdata is a struct mmapfs_fuse. */
extern const struct fuse_lowlevel_ops mmapfs_ll_ops;

/* Per-request accessors. */
static inline struct mmapfs_fuse *mfs_data(fuse_req_t req)
{
    return (struct mmapfs_fuse *)fuse_req_userdata(req);
}
static inline struct fs *mfs_fs(fuse_req_t req)
{
    return mfs_data(req)->fs;
}

/* The attribute epoch the request being served on this thread began in
 * (mfs_count sets it; mfs_attr_timeout reads it). */
extern __thread uint64_t mfs_req_epoch;

/* Counts one request of kind op; every handler calls it first. It also
 * notes the attribute epoch the request begins in, for the answers that
 * carry attributes (mfs_attr_timeout). */
static inline void mfs_count(fuse_req_t req, enum mfs_op op)
{
    struct mmapfs_fuse *m = mfs_data(req);

    __atomic_fetch_add(&m->requests[op], 1, __ATOMIC_RELAXED);
    mfs_req_epoch = mfs_attr_owner_epoch(&m->attr_owner);
}

/* Appends the request counters to buf ("fuse_req_<name> N\n" lines, only
 * kinds seen at least once); returns the length it needs, as snprintf. */
int mfs_format_requests(const struct mmapfs_fuse *m, char *buf, size_t size);

/* Formats the metrics text (fs_format_metrics, then the FUSE request
 * counters, the CPU latency hold's "fuse_cpu_latency_holds N" and
 * "fuse_cpu_latency_held_us N", and the dirty-page cap, "fuse_dirty_cap_bytes N" when it
 * follows free space) into a new NUL-terminated buffer (*out, freed by the caller);
 * returns its length or -errno. (ops_xattr.c) */
int mfs_format_metrics(const struct mmapfs_fuse *m, char **out);

/* ---- metrics=PATH (metrics_file.c) ------------------------------------------ */

/* Starts a thread that writes the metrics in the Prometheus text format
 * (the same text as mmapfs-stat --prometheus, label mountpoint=
 * cfg->mountpoint) to cfg->metrics_path every cfg->metrics_interval_s
 * seconds, atomically (PATH.tmp, then rename). The first file is written
 * before it returns. No-op if metrics_path is NULL. 0 or -errno. */
int mfs_metrics_file_start(struct mmapfs_fuse *m);

/* Stops the thread and writes the file one last time (the counters at
 * unmount). Call before fs_unmount. No-op if not started. */
void mfs_metrics_file_stop(void);

/* Replies with the error of an fs call (negative errno). -EUCLEAN becomes
 * EIO (and is logged once); 0 replies success. Returns fuse_reply_err's
 * result. */
int mfs_reply_err(fuse_req_t req, int err);

/* struct stat from struct fs_stat (st_blksize 4096, nanosecond times). */
void mfs_stat_to_kernel(const struct fs_stat *in, struct stat *out);

/* Fills a fuse_entry_param for an inode found or created by fs (one lookup
 * reference held) with the configured timeouts. */
void mfs_fill_entry(fuse_req_t req, const struct fs_stat *st,
                    struct fuse_entry_param *e);

/* Replies with an entry for which fs took a lookup reference; if the reply
 * cannot be delivered (request interrupted), the reference is dropped. */
void mfs_reply_entry(fuse_req_t req, const struct fs_stat *st);

/* Tells the kernel, before the reply, that ino's attributes changed in a
 * way no reply of this request carries: the directory whose entries an
 * operation changed (mtime, ctime, link count). The kernel only marks
 * such a directory stale; a GETATTR, LOOKUP or READDIRPLUS answered just
 * before the change and delivered just after it would then be taken as
 * current and kept for the whole attribute timeout. The notification also raises the inode's attribute
 * version, so such a late answer is discarded (docs/MOUNT.md).
 *
 * It is left out when every answer that carried ino's attributes since
 * the last notification went to the thread that asks for this change: a
 * thread sends its next request only after the kernel applied the answer
 * to its last one, so no such answer can arrive late (a rm -rf, a create
 * loop or an untar: one write to /dev/fuse fewer per file). An answer
 * computed while a change was under way goes out with timeout 0
 * (mfs_attr_timeout). util/attr_owner.h; docs/MOUNT.md, "Why 1-hour
 * timeouts".
 *
 * ino is also remembered for MFS_CHANGED_WINDOW_NS (mfs_attr_recent):
 * READDIRPLUS lists it without attributes meanwhile. The kernel applies
 * an answer by first clearing the inode's "stale" mark and then writing
 * the new values, while stat(2) reads both without a lock; a stat(2)
 * right after the change, beside a listing of the parent whose answer
 * (already current) is being applied, could take the old values as
 * valid in between (docs/MOUNT.md). */
#define MFS_CHANGED_WINDOW_NS 1000000000ull
void mfs_attr_changed(fuse_req_t req, fuse_ino_t ino);

/* The mark of mfs_attr_changed alone, for an operation to take before it
 * changes ino: a listing answered after the change then sees the mark. */
void mfs_attr_changing(fuse_req_t req, fuse_ino_t ino);

/* Drops the kernel's copy of ino's attributes now, always (the next stat
 * or write(2) asks for them): mfs_attr_changed without its exception. For
 * an inode whose xattrs or ACL changed: beside the race above, an xattr
 * block more or less changes st_blocks, which the kernel does not mark
 * stale (only ctime). */
void mfs_attr_drop(fuse_req_t req, fuse_ino_t ino);

/* Did mfs_attr_changed name ino within MFS_CHANGED_WINDOW_NS, or did ino
 * lose one of several names within MFS_LINK_DROP_WINDOW_NS? */
int mfs_attr_recent(fuse_req_t req, uint64_t ino);

/* The fs_link_drop_fn of the mount (ctx: the struct mmapfs_fuse): ino lost
 * one of several names. After the reply to that unlink or rename the
 * kernel lowers ino's cached link count itself, also on top of an answer
 * computed after the change that it applied just before (one too low for
 * the whole attribute timeout). For MFS_LINK_DROP_WINDOW_NS the
 * attributes of ino therefore go out with timeout 0, so that any answer
 * the kernel's decrement may land on expires at once, and READDIRPLUS
 * lists ino without attributes (mfs_attr_recent), so that no listing
 * gives the decrement a count to land on: link(2) refuses a file whose
 * cached count is 0 without asking the daemon (docs/MOUNT.md). */
#define MFS_LINK_DROP_WINDOW_NS 1000000000ull
void mfs_link_dropped(void *ctx, uint64_t ino);

/* The attribute timeout of a reply carrying ino's attributes, called
 * after they were read and before the reply: it also records who gets
 * them (mfs_attr_changed), and gives 0 if a change may have happened
 * since the request began. */
double mfs_attr_timeout(fuse_req_t req, uint64_t ino);

/* A write-back of ino's cached pages changed its block count. The kernel
 * keeps its copy of the attributes over write-back and fsync (it drops
 * st_blocks only at close), so `du` or stat(2) of a file still open
 * would show the count from before the data arrived for the whole
 * attribute timeout. Dropping the kernel's copy at every such write-back
 * would cost an appending writer two round trips per write(2) (GETATTR,
 * and GETXATTR security.capability, since a refresh clears S_NOSEC).
 * Instead: the first one in MFS_GROW_WINDOW_NS drops the copy
 * (notification), and for MFS_GROW_WINDOW_NS after the last one the
 * file's attributes go out with timeout MFS_GROW_ATTR_TIMEOUT, so the
 * kernel's st_blocks lags a growing file by at most that long
 * (docs/MOUNT.md). */
#define MFS_GROW_WINDOW_NS    1000000000ull
#define MFS_GROW_ATTR_TIMEOUT 0.1
void mfs_blocks_changed(struct mmapfs_fuse *m, uint64_t ino);

/* A write-back of ino's cached pages failed with err (ENOSPC, EFBIG,
 * EDQUOT, EIO): remembered, and the kernel's attributes of ino dropped, so
 * that the writer's next write(2) asks for them and gets err
 * (mfs_wb_error_take). err 0: a later write-back succeeded, forget it. */
void mfs_wb_error_set(fuse_req_t req, uint64_t ino, int err);
/* The error remembered for ino, once (0 if none). */
int mfs_wb_error_take(fuse_req_t req, uint64_t ino);

/* Message to the daemon's log (stderr in the foreground, syslog when
 * daemonised). */
void mfs_log(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Chooses the log destination: 0 = stderr, 1 = syslog. */
void mfs_log_use_syslog(int on);

/* ---- session (session.c) ----------------------------------------------------- */

/* Creates the FUSE session (validates the FUSE options; nothing mounted).
 * NULL on error (libfuse printed why). */
struct fuse_session *mmapfs_session_new(struct fuse_args *args,
                                        struct mmapfs_fuse *data);

/* ---- the daemon's device I/O: HANDLE_KILLPRIV_V2 and O_TMPFILE on libfuse 3.14 (devio.c) */

/* Puts the daemon's own read/writev on the session's device (call after
 * fuse_session_mount, before the loop): O_TMPFILE requests become CREATEs
 * of the name "/" (mfs_create), STATX requests GETATTRs whose replies get
 * the birth time, and with killpriv, where libfuse does not negotiate it
 * itself, the INIT reply can carry FUSE_HANDLE_KILLPRIV_V2. 0 or -errno
 * (then the mount works without the flag, O_TMPFILE and birth times). */
int mmapfs_devio_install(struct fuse_session *se, int killpriv);

/* From mfs_init: 1 if the INIT reply will carry the flag (the kernel
 * offered it and the I/O is installed), else 0. */
int mmapfs_killpriv_negotiate(void);

/* Blocks SIGTERM/SIGINT/SIGHUP/SIGUSR1 in the calling thread, so that
 * threads started afterwards (fs_mount's) inherit the mask. Call before
 * fs_mount. */
void mmapfs_signals_block(void);

/* Installs the shutdown machinery for a mounted session: SIGTERM, SIGINT
 * and SIGHUP make the daemon flush the kernel's dirty pages (syncfs on the
 * mount point), stop the waits for write-back (mfs_defer_no_flush), leave
 * the loop, and then unmount cleanly. m->se is the session. 0 or -errno. */
int mmapfs_signals_start(struct mmapfs_fuse *m, const char *mountpoint);

/* Stops the shutdown thread and restores the default handlers. */
void mmapfs_signals_stop(void);

/* ---- the mount's dirty pages (dirty.c) ------------------------------------- */

/* Sets the mount's share of the system's dirty-page limit (sysfs bdi
 * max_ratio = cfg->max_ratio, min_ratio = cfg->min_ratio; FUSE mounts start
 * at max 1, min 0, strict_limit) and its read-ahead (read_ahead_kb =
 * cfg->read_ahead_kb; 128 otherwise) and, on a read-write mount, prepares
 * the cap that follows free space. Call after mounting, before the loop; logs
 * one line and goes on where not allowed (not root) or not found. */
void mmapfs_set_dirty_share(struct mmapfs_fuse *m);

/* After a WRITE: lowers the mount's cap on the kernel's dirty pages when
 * free space is short (at most a quarter of it, at least MFS_DIRTY_FLOOR),
 * raises it again when space came back. A few atomic loads unless the cap
 * changes. No-op without the writeback cache or the right to set it. */
void mfs_dirty_follow_space(struct mmapfs_fuse *m);

/* The cap now in bytes (0: the cap does not follow free space). */
uint64_t mfs_dirty_cap(const struct mmapfs_fuse *m);

/* Runs the request loop until unmount or a signal: libfuse's single-threaded
 * loop if cfg->single_thread; else the hot-thread loop (session.c: one
 * thread, backups up to cfg->max_threads when requests queue) unless
 * cfg->no_hot_loop; else libfuse's multi-threaded loop (clone_fd unless
 * cfg->no_clone_fd, up to cfg->max_threads workers, at most
 * cfg->idle_threads idle). Returns 0 or -errno (a signal-terminated loop
 * returns 0). */
int mmapfs_session_loop(struct mmapfs_fuse *m);

#endif
