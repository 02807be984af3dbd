/*
 * fs — the mmapfs filesystem core: inodes, directories, file block maps,
 * allocation, xattrs, orphans. No FUSE code: the FUSE front end
 * (src/fuse/), mkfs, fsck and the unit tests call this API directly.
 *
 * Inode numbers are the FUSE inode numbers (root = 1). Every function
 * returns 0 (or a non-negative count where stated) or a negative errno;
 * errors are precise (ENOSPC stays ENOSPC, corruption gives EUCLEAN which
 * the front end reports as EIO). All functions are thread safe.
 *
 * Lookup counts (FUSE semantics): every function that fills a struct
 * fs_stat for an entry it found or created (fs_lookup, fs_mknod, fs_mkdir,
 * fs_symlink, fs_link, fs_readdir with plus) takes one reference on that
 * inode; fs_forget drops them. An inode whose link count is 0 is freed when
 * its last reference goes; until then it is on the on-disk orphan list.
 * Callers that never take references (tools, tests) get the inode freed as
 * soon as its last link goes.
 */
#ifndef MMAPFS_FS_H
#define MMAPFS_FS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include "mmapfs/mmio.h"

struct fs;

/* ---- formatting (mkfs) ---------------------------------------------------- */

struct fs_format_options {
    uint64_t size;            /* bytes to use; 0 = the whole file/device */
    uint64_t inodes;          /* 0 = one per 16 KiB */
    uint64_t journal_blocks;  /* 0 = size/64 clamped to [1026, 32768] */
    const char *label;        /* NULL = empty */
    int mmp;                  /* nonzero: multi-mount protection (MMP block at
                               * block 1, the journal moves to block 2) */
    uint32_t mmp_interval;    /* MMP heartbeat, seconds; 0 = 5 (max 300) */
    int no_inode_data;        /* 1: without incompat feature 0x1 (extents and
                               * tiny data inside inodes): the format older
                               * versions mount */
    int no_inode_xattr;       /* 1: without incompat feature 0x8 (extended
                               * attributes inside inodes) */
};

/* Writes a new empty filesystem (root directory, lost+found) onto io. Does
 * not zero data blocks or the inode table. -EINVAL if too small. */
int fs_format(struct mmio *io, const struct fs_format_options *opt);

/* ---- exclusive use of an image ------------------------------------------- */

/* 1 if a fuse.mmapfs mount of the file behind fd is listed in
 * /proc/self/mountinfo. */
int fs_image_mounted(int fd);

/* Takes flock(LOCK_EX) on fd, a descriptor of the image. If another process
 * holds it while the image is not mounted (a daemon finishing its unmount
 * after fusermount3 -u), waits up to wait_ms for it. 0, -EBUSY (in use),
 * or -errno. */
int fs_lock_image(int fd, unsigned wait_ms);
/* The same with a shared lock (flock(LOCK_SH)), for readers that only need
 * to keep writers out (fsck -n): another reader does not make it fail. */
int fs_lock_image_shared(int fd, unsigned wait_ms);
#define FS_LOCK_WAIT_MS 30000u

/* ---- mounting ------------------------------------------------------------ */

struct fs_options {
    const char *path;           /* image file or block device */
    int read_only;
    uint64_t sync_delay_us;     /* engine batching window; 0 = engine default */
    enum mmio_backend backend;  /* io=mmap|pread */
    unsigned commit_interval_s; /* periodic commit, 0 = 5 */
    int discard;                /* give freed blocks back to the storage
                                 * once their transaction is durable
                                 * (mmio_discard; ignored read-only) */
};

/* Opens the image, checks the superblock (magic, version, checksum,
 * features, geometry against the image size), replays the journal, frees
 * orphans left by a crash, marks the superblock mounted. Errors: -EINVAL
 * (not mmapfs: the message is printed to stderr), -EUCLEAN (corrupt),
 * -EBUSY (image in use by another mount: exclusive flock on the image),
 * -EROFS (unknown ro_compat feature and not read_only), engine errors. */
int fs_mount(struct fs **out, const struct fs_options *opt);

/* Commits everything, frees orphans no longer referenced, marks the
 * superblock clean (exact free counts), closes. Returns the sticky I/O
 * error if there was one. Frees fs. */
int fs_unmount(struct fs *fs);

/* ---- attributes ------------------------------------------------------------ */

struct fs_stat {
    uint64_t ino;
    uint64_t generation;
    uint32_t mode, nlink, uid, gid;
    uint64_t size;
    uint64_t blocks512;         /* st_blocks: 512-byte units */
    uint64_t rdev;
    struct timespec atime, mtime, ctime, crtime;
};

int fs_getattr(struct fs *fs, uint64_t ino, struct fs_stat *st);

enum {
    FS_SET_MODE      = 1 << 0,
    FS_SET_UID       = 1 << 1,
    FS_SET_GID       = 1 << 2,
    FS_SET_SIZE      = 1 << 3,
    FS_SET_ATIME     = 1 << 4,
    FS_SET_MTIME     = 1 << 5,
    FS_SET_ATIME_NOW = 1 << 6,
    FS_SET_MTIME_NOW = 1 << 7,
    FS_SET_CTIME     = 1 << 8,
};
struct fs_setattr {
    uint32_t mode;              /* permission bits (07777) */
    uint32_t uid, gid;
    uint64_t size;              /* -EFBIG beyond MMAPFS_MAX_FILE_SIZE; -EISDIR on dirs */
    struct timespec atime, mtime, ctime;
};
/* Applies the FS_SET_* fields in 'valid'; ctime becomes now unless
 * FS_SET_CTIME gives it. Permission checks are the kernel's
 * (default_permissions). Fills *st (may be NULL) with the result. */
int fs_setattr(struct fs *fs, uint64_t ino, const struct fs_setattr *sa,
               unsigned valid, struct fs_stat *st);

/* ---- names ----------------------------------------------------------------- */

/* Caller identity for new inodes. gid is replaced by the parent's gid when
 * the parent directory has S_ISGID (and new directories inherit S_ISGID). */
struct fs_cred { uint32_t uid, gid; };

int fs_lookup(struct fs *fs, uint64_t parent, const char *name, struct fs_stat *st);

/* Creates a regular file with no name and no link, as O_TMPFILE does: it is
 * on the orphan list, freed by the last fs_forget unless fs_link gives it a
 * name first (its only way out: an inode unlinked while open cannot be
 * linked). parent is the directory it was opened in (permissions, default
 * ACL, set-group-ID); that directory does not change. */
int fs_tmpfile(struct fs *fs, uint64_t parent, uint32_t mode, const struct fs_cred *cred,
               struct fs_stat *st);

/* Creates a regular file, FIFO, socket or device node (mode has the type). */
int fs_mknod(struct fs *fs, uint64_t parent, const char *name, uint32_t mode,
             uint64_t rdev, const struct fs_cred *cred, struct fs_stat *st);
int fs_mkdir(struct fs *fs, uint64_t parent, const char *name, uint32_t mode,
             const struct fs_cred *cred, struct fs_stat *st);
int fs_symlink(struct fs *fs, uint64_t parent, const char *name, const char *target,
               const struct fs_cred *cred, struct fs_stat *st);
/* Copies min(length, size) bytes of the target (not NUL-terminated) into
 * buf and returns the target's full length. -EINVAL if not a symlink. */
int fs_readlink(struct fs *fs, uint64_t ino, char *buf, size_t size);
int fs_link(struct fs *fs, uint64_t ino, uint64_t newparent, const char *newname,
            struct fs_stat *st);
int fs_unlink(struct fs *fs, uint64_t parent, const char *name);
int fs_rmdir(struct fs *fs, uint64_t parent, const char *name);

/* ---- early answers ---------------------------------------------------------- */

/*
 * An operation given a struct fs_early calls e->answer(e, st) once, under
 * the metadata lock, as soon as its outcome is decided: everything it
 * checks has passed (the name exists, the type fits, the directory is
 * empty) and what is left is writing its changes into the running
 * transaction. The FUSE layer answers the kernel there, so that those
 * writes overlap the caller's next system call; a request that reads the
 * metadata they change takes the lock and so sees the result. st: the
 * attributes to answer with (setattr), else NULL.
 *
 * The operation still returns 0 or an error. If writing the changes
 * fails after the answer, the undo log has brought every block back and
 * the lock is still held: out of memory is tried again (up to
 * FS_EARLY_RETRIES times); any other error, or memory that stays short,
 * aborts the journal (read-only until remount, like ext4 with
 * errors=remount-ro), because the caller was told that the operation
 * succeeded. e->answered says whether answer ran.
 */
struct fs_early {
    void (*answer)(struct fs_early *e, const struct fs_stat *st);
    int answered;
};
#define FS_EARLY_RETRIES 3

int fs_unlink_early(struct fs *fs, uint64_t parent, const char *name, struct fs_early *e);
int fs_rmdir_early(struct fs *fs, uint64_t parent, const char *name, struct fs_early *e);
/* fs_rename_as's early form. It answers only where nothing is allocated
 * after the checks (an exchange, a move onto an existing name without a
 * whiteout, nothing to do); a move to a new name, or with a whiteout,
 * leaves e unanswered for the caller to answer when it returns. */
int fs_rename_early(struct fs *fs, uint64_t parent, const char *name,
                    uint64_t newparent, const char *newname, unsigned flags,
                    const struct fs_cred *cred, struct fs_early *e);
/* fs_setattr's early form: no size change (truncation allocates and can
 * fail with ENOSPC late; -EINVAL if FS_SET_SIZE is given). */
int fs_setattr_early(struct fs *fs, uint64_t ino, const struct fs_setattr *sa,
                     unsigned valid, struct fs_stat *st, struct fs_early *e);

#define FS_RENAME_NOREPLACE (1u << 0)   /* = RENAME_NOREPLACE */
#define FS_RENAME_EXCHANGE  (1u << 1)   /* = RENAME_EXCHANGE */
#define FS_RENAME_WHITEOUT  (1u << 2)   /* = RENAME_WHITEOUT */
/* POSIX rename plus the flags; -EINVAL for a directory moved into its
 * own subtree, -ENOTEMPTY, -EISDIR, -ENOTDIR, -EEXIST (NOREPLACE), -EINVAL
 * for EXCHANGE with NOREPLACE or WHITEOUT (as ext4). WHITEOUT leaves at the
 * source name a whiteout (character device 0/0, mode 0) made in the same
 * transaction as the move; fs_rename_as gives it the caller's uid and gid
 * (the directory's gid if it is setgid), fs_rename root's. */
int fs_rename(struct fs *fs, uint64_t parent, const char *name,
              uint64_t newparent, const char *newname, unsigned flags);
int fs_rename_as(struct fs *fs, uint64_t parent, const char *name,
                 uint64_t newparent, const char *newname, unsigned flags,
                 const struct fs_cred *cred);

/* The regular file that renaming parent/name to newparent/newname would
 * put in place of another regular file, or 0 (no such names, other kinds,
 * the same inode). Takes no lookup reference. */
uint64_t fs_rename_replaces_file(struct fs *fs, uint64_t parent, const char *name,
                                 uint64_t newparent, const char *newname);

/* Called when a name of a non-directory that keeps other names goes
 * away (unlink, or a rename over it), under the filesystem's lock: fn must
 * not call back into fs. Set once, before requests are served. The FUSE
 * layer uses it because the kernel lowers the link count itself after such
 * an unlink (docs/MOUNT.md, "Link counts the kernel lowers itself"). */
typedef void (*fs_link_drop_fn)(void *ctx, uint64_t ino);
void fs_set_link_drop_fn(struct fs *fs, fs_link_drop_fn fn, void *ctx);

/* Drops n lookup references (FUSE forget). */
void fs_forget(struct fs *fs, uint64_t ino, uint64_t n);

/* Directory listing from offset 'off' (0 = start; offsets are stable
 * cookies: "." = 1, ".." = 2, then hash-ordered entries). For each entry
 * fill() is called with the offset of the NEXT entry; it returns 0 if it
 * took the entry, FS_FILL_FULL if its buffer is full (the entry is then
 * not counted and the listing stops), FS_FILL_NOREF if it took the entry
 * but hands out no lookup reference for it.
 *
 * plus says what st holds:
 *   FS_LIST_NAMES      only st->ino and st->mode's type bits (nlink 0);
 *   FS_LIST_ATTRS      the complete stat, and a lookup reference is taken
 *                      for each entry taken with 0 except "." and "..";
 *   FS_LIST_NEW_ATTRS  as FS_LIST_ATTRS for an entry whose inode holds no
 *                      lookup reference; one that holds some (the kernel
 *                      caches it) comes as with FS_LIST_NAMES, and takes
 *                      no reference whatever fill() returns.
 * So st->nlink is 0 exactly when the attributes were left out (a listed
 * inode has a link). */
#define FS_FILL_FULL  1
#define FS_FILL_NOREF 2
enum { FS_LIST_NAMES, FS_LIST_ATTRS, FS_LIST_NEW_ATTRS };
typedef int (*fs_fill_fn)(void *ctx, const char *name, const struct fs_stat *st,
                          uint64_t next_off);
int fs_readdir(struct fs *fs, uint64_t ino, uint64_t off, int plus,
               fs_fill_fn fill, void *ctx);

/* ---- file data ------------------------------------------------------------- */

/* Copies up to len bytes at off into buf; returns bytes read (0 at EOF). */
ssize_t fs_read(struct fs *fs, uint64_t ino, uint64_t off, void *buf, size_t len);

/* A zero-copy reader's hold on the blocks its pointers lead to: blocks a
 * file frees are not handed to another file while a pin that could have
 * seen them is held (DESIGN.md invariant 8). Take it before fs_read_iov,
 * drop it once the reply that carries the pointers has been sent. Holding
 * one is cheap (two atomic operations) but must be short: freed blocks wait
 * for it. */
struct fs_read_pin { unsigned idx; int held; };
void fs_read_pin(struct fs *fs, struct fs_read_pin *pin);
void fs_read_unpin(struct fs *fs, struct fs_read_pin *pin);

/* Zero-copy read: fills iov[0..max) with pointers into the mapping (holes
 * and unwritten extents point at a shared zero page), sets *niov; returns
 * bytes described (0 at EOF). -ENOTSUP with the pread backend (then use
 * fs_read); -EINVAL without a held pin. The pointers show this file's data
 * for as long as the pin is held; the data may change under a concurrent
 * writer of the same file, as with any read racing a write. */
ssize_t fs_read_iov(struct fs *fs, uint64_t ino, uint64_t off, size_t len,
                    struct iovec *iov, int max, int *niov,
                    const struct fs_read_pin *pin);

/* Writes len bytes at off (allocating, extending size, updating
 * mtime/ctime); returns bytes written. -ENOSPC when full, -EFBIG past the
 * maximum file size. */
ssize_t fs_write(struct fs *fs, uint64_t ino, uint64_t off, const void *buf, size_t len);
/* fs_write that also tells whether the file's block count (st_blocks)
 * changed: *blocks_changed = 1 if any step allocated or freed a block
 * (data, tree node), else 0; blocks_changed may be NULL. */
ssize_t fs_write_blocks(struct fs *fs, uint64_t ino, uint64_t off, const void *buf,
                        size_t len, int *blocks_changed);

/* With the FUSE writeback cache the kernel owns mtime/ctime of regular
 * files and sends them later with setattr; a write arriving after that
 * setattr must not move them again. on = 1: fs_write and fs_fallocate
 * leave mtime/ctime alone (size and blocks still change; the kernel
 * stamps both itself). Default 0: they set mtime = ctime = now. */
void fs_set_kernel_times(struct fs *fs, int on);

/* With POSIX ACLs (the FUSE front end's `acl`): on = 1 makes fs_mknod and
 * fs_mkdir give the new inode the ACLs it inherits from its directory's
 * default ACL (fs_acl_inherit) in the create's own journal operation, so
 * that neither a crash nor a failure to store them leaves the inode, whose
 * permission bits the caller computed from them (fs_acl_create_mode),
 * without them; an error creates nothing. Default 0: no ACL is inherited. */
void fs_set_acl_inherit(struct fs *fs, int on);

/* mode: 0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE,
 * FALLOC_FL_ZERO_RANGE (±KEEP_SIZE), FALLOC_FL_COLLAPSE_RANGE and
 * FALLOC_FL_INSERT_RANGE alone (block-aligned; errors as ext4, see
 * file_shift.c); others -EOPNOTSUPP. */
int fs_fallocate(struct fs *fs, uint64_t ino, int mode, uint64_t off, uint64_t len);

/* SEEK_DATA / SEEK_HOLE (others -EINVAL); -ENXIO as lseek(2). */
int64_t fs_lseek(struct fs *fs, uint64_t ino, uint64_t off, int whence);

/* Returns when the inode's data and the metadata needed to reach it are
 * durable (directories: their entries). Group-committed. */
int fs_fsync(struct fs *fs, uint64_t ino, int datasync);

/* fs_fsync without blocking the caller: done(ctx, err) is called exactly
 * once, from the journal's commit thread or from this call, when the same
 * guarantee holds (or with the error). done must not call into fs. The
 * FUSE front end replies to FSYNC from it, so no worker sleeps on a sync. */
typedef void (*fs_done_fn)(void *ctx, int err);
void fs_fsync_async(struct fs *fs, uint64_t ino, int datasync, fs_done_fn done, void *ctx);

/* ---- extended attributes ---------------------------------------------------- */

/* flags: XATTR_CREATE / XATTR_REPLACE. On images with in-inode xattrs
 * (incompat 0x8) an attribute that fits in the inode's area needs no block
 * (docs/FORMAT.md §6). -ENOSPC when the entry does not fit one xattr block
 * (value over about 4 KiB), no block is free, or the inode's xattr chain
 * has MMAPFS_XATTR_CHAIN_MAX blocks; -E2BIG value over 64 KiB; -ERANGE
 * name too long; -EEXIST / -ENODATA per flags; -EUCLEAN when the inode's
 * area or a block of its chain is corrupt (also for get, list, remove).
 * Setting the value an attribute already has writes nothing and leaves
 * ctime as it was, as on ext4. */
int fs_setxattr(struct fs *fs, uint64_t ino, const char *name, const void *value,
                size_t size, int flags);
/* Returns the value length; copies it if size >= length; size 0 asks only
 * the length; -ERANGE if size is too small; -ENODATA if absent. */
int fs_getxattr(struct fs *fs, uint64_t ino, const char *name, void *buf, size_t size);
/* NUL-separated names; same size conventions as fs_getxattr. */
int fs_listxattr(struct fs *fs, uint64_t ino, char *buf, size_t size);
int fs_removexattr(struct fs *fs, uint64_t ino, const char *name);

/* ---- filesystem ------------------------------------------------------------- */

int fs_statfs(struct fs *fs, struct statvfs *st);

/* Free space in bytes as the allocator last counted it, read without a
 * lock (a moment old under concurrent allocation): for heuristics such as
 * the FUSE front end's dirty-page cap, not for decisions that need it exact. */
uint64_t fs_free_bytes(struct fs *fs);
/* For a sparse image file (src/fs/hostspace.c): the free space of the
 * host filesystem that holds it, which new blocks of the image take as
 * they are allocated; UINT64_MAX for an image that does not need host
 * space (preallocated, a block device, read-only). Also a heuristic: freed
 * blocks of the image that the host had allocated take none. */
uint64_t fs_host_free_bytes(struct fs *fs);

/* Counters for mmapfs-stat: engine metrics plus fs/journal counters,
 * written as "name value\n" lines into buf; returns length (like snprintf). */
int fs_format_metrics(struct fs *fs, char *buf, size_t size);

/* The few numbers of the on-disk format that callers of this API need, so
 * that they need not know the byte layout (src/fs/fs_i.h asserts that they
 * are those of fs/format.h). */
#define FS_ROOT_INO     1u      /* the root directory (FUSE_ROOT_ID) */
#define FS_BLOCK_SIZE   4096u   /* also the smallest image */
#define FS_SYMLINK_MAX  4095u   /* longest symlink target, bytes, no NUL */

/* The DT_* type (dirent.h) of a mode; DT_UNKNOWN (0) when the mode's type
 * is not a valid one. */
uint8_t fs_inode_dtype(uint32_t mode);

#endif
