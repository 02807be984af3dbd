/*
 * Private interfaces between the files of the fs core (src/fs/). Not for
 * src/fuse, src/fsck or the tools: they use fs.h and the core's other
 * public headers (tests/layering.sh lists them).
 *
 * Locking: every function here is called with the journal lock held
 * (between jnl_begin/jnl_end for operations that modify, jnl_lock/
 * jnl_unlock for read-only ones). Metadata blocks are reached only through
 * jnl_read/jnl_write (never through the mapping directly), so that a
 * change is invisible in the mapping until its transaction is durable.
 * File data blocks are read and written through the engine (mmio_*_at,
 * mmio_ptr) directly: they are not journaled (ordered mode: the commit's
 * first sync makes them durable before the metadata that points at them).
 *
 * Errors: 0 or -errno. Corruption found in an on-disk structure goes
 * through fs_corrupt(), which records it and returns -EUCLEAN.
 */
#ifndef MMAPFS_FS_I_H
#define MMAPFS_FS_I_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "fs/btree.h"
#include "fs/format.h"
#include "fs/fs.h"
#include "fs/super.h"
#include "journal/journal.h"
#include "mmapfs/mmio.h"

_Static_assert(FS_ROOT_INO == MMAPFS_ROOT_INO && FS_BLOCK_SIZE == MMAPFS_BLOCK_SIZE &&
               FS_SYMLINK_MAX == MMAPFS_SYMLINK_MAX, "fs.h's numbers are the format's");

/* ---- the mounted filesystem ------------------------------------------------ */

struct fs_icache;      /* in-memory per-inode state, icache.c */
struct fs_pending;     /* blocks freed but not yet durable, alloc.c */

struct fs {
    struct mmio *io;
    struct jnl *jnl;
    int lock_fd;                      /* flock'ed descriptor of the image */
    int read_only;
    /* geometry, copied from the superblock at mount (never changes) */
    uint64_t block_count, inode_count;
    uint64_t block_bitmap_start, inode_bitmap_start, inode_table_start;
    uint64_t data_start, journal_start, journal_blocks;
    uint32_t feature_incompat;        /* superblock bits (MMAPFS_FEATURE_INCOMPAT_*) */
    uint64_t inode_table_blocks;      /* the first table; then itab's extents */
    struct mmapfs_disk_itab itab;     /* grown inode table (zero if not grown) */
    /* allocator state (journal lock) */
    uint64_t free_blocks, free_inodes;
    uint64_t free_blocks_seen;        /* free_blocks, atomic, for fs_free_bytes */
    uint64_t block_goal, inode_goal;
    struct fs_pending *pending;
    int discard;                      /* punch released runs (discard.c; journal lock) */
    /* per-inode memory state (journal lock) */
    struct fs_icache *icache;
    /* first corruption seen (journal lock for writes) */
    int corrupt;
    char corrupt_msg[256];
    int corrupt_quiet;                /* fs_corrupt records, the caller tells */
    const void *zero_block;           /* FS_ZERO_BYTES (>= MMAPFS_BLOCK_SIZE) zero bytes */
    /* ---- added by fs core A (private to its files) ---- */
    const char *path;                 /* image path (messages), owned */
    struct mmp *mmp;                  /* multi-mount protection, NULL if off (mmp.c) */
    int host_sparse;                  /* image file with holes: reserve what is
                                       * allocated (hostspace.c) */
    int64_t host_full_said;           /* CLOCK_MONOTONIC seconds of the last
                                         "host is full" line (0: none; journal
                                         lock) */
    uint64_t host_itab_block;         /* inode table block last reserved on the
                                         host by fs_alloc_inode (0: none; journal
                                         lock): inodes are handed out in order, so
                                         15 of 16 need no fallocate */
    uint64_t meta_goal;               /* next-fit goal for metadata blocks */
    /* inodes the operation in progress (jnl_op_gen stamp_gen) has already
     * stamped (fs_now_changed); journal lock */
    uint64_t stamp_gen;
    uint64_t stamp_ino[4];
    struct timespec stamp_ts[4];
    unsigned stamp_n;
    uint32_t *group_free;             /* free bits per block bitmap block (alloc.c) */
    uint64_t groups;                  /* number of block bitmap blocks */
    uint32_t *igroup_free;            /* free bits per inode bitmap block (alloc.c) */
    uint64_t igroups;                 /* number of inode bitmap blocks */
    /* read pins and the grace period of freed blocks (readpin.c); fields
     * other than cur/active under the journal lock */
    struct fs_pins {
        _Atomic unsigned cur;             /* slot new pins count in */
        _Atomic uint64_t active[2];       /* pins held, per slot */
        uint64_t durable_seq;             /* newest durable transaction */
        uint64_t grace_seq;               /* frees up to it wait for slot grace_idx (0: none) */
        unsigned grace_idx;
        uint64_t released_seq;            /* frees up to it are reusable */
    } pins;
    uint64_t **verified;              /* checksum-verified blocks (verified.c) */
    uint64_t verified_chunks;
    int kernel_times;                 /* fs_set_kernel_times (atomic access) */
    int acl_inherit;                  /* fs_set_acl_inherit (atomic access) */
    struct fs_counters {              /* observability, updated atomically */
        uint64_t reads, read_bytes, writes, write_bytes, fsyncs, fsync_commits,
                 fsync_data_syncs, blocks_allocated, blocks_freed,
                 inodes_allocated, inodes_freed, orphans_released, enospc_retries,
                 node_checksums;
        uint64_t unmap_step_max;      /* most extents one journal step of a
                                       * truncate, punch or release unmapped
                                       * (written under the lock) */
    } ctr;
    fs_link_drop_fn link_drop_fn;     /* fs_set_link_drop_fn (may be NULL) */
    void *link_drop_ctx;
};

/* Size of the shared zero region fs->zero_block (holes in fs_read_iov). */
#define FS_ZERO_BYTES (256u * 1024u)

/* Relaxed atomic counter increment (fs->ctr fields). */
#define FS_COUNT(fs, field, n) __atomic_fetch_add(&(fs)->ctr.field, (n), __ATOMIC_RELAXED)

/* Records corruption (first message kept, logged to stderr), sets the
 * superblock ERROR state when possible; returns -EUCLEAN. */
int fs_corrupt(struct fs *fs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The error of a jnl_write / jnl_write_new that just returned NULL: the
 * journal's sticky error, else what it set errno to (ENOMEM, EIO when the
 * home block could not be read, ENOSPC, EROFS). */
static inline int fs_write_error(struct fs *fs, int saved_errno)
{
    int err = jnl_error(fs->jnl);
    return err ? err : saved_errno ? -saved_errno : -ENOMEM;
}

/* Current time, from the kernel's coarse clock (CLOCK_REALTIME_COARSE). */
void fs_now(struct timespec *ts);
/* The time to stamp a change of inode ino (record di) with: fs_now, or the
 * fine-grained clock when that is not later than di's ctime (the coarse
 * clock can stand still for more than a tick); the same time again if
 * this operation stamped ino already. Journal lock held. */
void fs_now_changed(struct fs *fs, uint64_t ino, const struct mmapfs_disk_inode *di,
                    struct timespec *ts);

/* ---- superblock (super.c) -------------------------------------------------- */

/* fs_super_validate and fs_super_checksum: fs/super.h. */
/* Writable superblock in the running transaction (checksum is refreshed by
 * fs_super_put). */
struct mmapfs_disk_superblock *fs_super_write(struct fs *fs);
void fs_super_put(struct fs *fs, struct mmapfs_disk_superblock *sb);
const struct mmapfs_disk_superblock *fs_super_read(struct fs *fs);

/* ---- host space of a sparse image (hostspace.c) ------------------------------ */

/* fallocate(fd, 0, off, len), EINTR retried: 0, 1 if the host cannot do it
 * (EOPNOTSUPP: a block device, some filesystems), or -errno (-ENOSPC). */
int fs_host_reserve(int fd, uint64_t off, uint64_t len);
/* At a read-write mount: decides whether the image is a sparse file, and
 * if so reserves its metadata region (a warning if the host is full). */
void fs_host_space_init(struct fs *fs);
/* Reserves host space for blocks [start, start+n) of a sparse image before
 * the allocator hands them out. 0, -ENOSPC (the host is full), -errno. */
int fs_host_reserve_blocks(struct fs *fs, uint64_t start, uint64_t n);

/* ---- allocation (alloc.c) -------------------------------------------------- */

/* Allocates a contiguous run of 1..want data blocks, preferring 'goal'
 * (0 = the allocator's own goal). *start and *got receive the run. Blocks freed
 * by a transaction that is not yet durable are never returned (invariant 4).
 * -ENOSPC when none is free. */
int fs_alloc_blocks(struct fs *fs, uint64_t goal, uint64_t want, uint64_t *start, uint64_t *got);
/* Frees a run of blocks (bitmap cleared in the running transaction; reusable
 * once that transaction is durable). */
int fs_free_blocks(struct fs *fs, uint64_t start, uint64_t len);
/* One metadata block, zeroed shadow in *ptr (jnl_write_new). */
int fs_alloc_meta(struct fs *fs, uint64_t goal, uint64_t *blk, void **ptr);
/* Frees a metadata block (jnl_forget + free_blocks). */
void fs_free_meta(struct fs *fs, uint64_t blk);
int fs_alloc_inode(struct fs *fs, uint64_t goal, uint64_t *ino);
int fs_free_inode(struct fs *fs, uint64_t ino);
/* Is the record of ino live although its bitmap bit may be clear
 * (fs_inode_record_looks_live, fs/inode.h)? 1, 0, or -errno. Lock held. */
int fs_inode_record_live(struct fs *fs, uint64_t ino);
/* Is inode ino marked in use in the bitmap? */
int fs_inode_in_use(struct fs *fs, uint64_t ino);
/* Loads free counts from the bitmaps (mount) and sets up pending lists. */
int fs_alloc_init(struct fs *fs);
void fs_alloc_fini(struct fs *fs);
/* After fs_alloc_init: the first block that must be marked in use in the
 * block bitmap but is not (the metadata region; with ITAB the inode table
 * extents and the inode bitmap's room), or block_count. 0 or -EIO. */
int fs_alloc_check_reserved(struct fs *fs, uint64_t *blk);
/* Does the run [start, start+len) of the data area overlap a grown inode
 * table's extents or the inode bitmap's room (ITAB)? An extent that does is
 * corrupt: its reads and writes would go to inodes. */
int fs_blocks_reserved(struct fs *fs, uint64_t start, uint64_t len);
/* Journal durable callback: releases blocks freed up to seq. */
void fs_alloc_durable(void *ctx, uint64_t seq);
/* Makes blocks freed by transactions up to seq reusable (readpin.c calls
 * it once no read pin can see them). Lock held. */
void fs_alloc_release(struct fs *fs, uint64_t seq);
/* discard.c: gives the freed run [start, end) back to the storage (hole
 * in an image file, BLKDISCARD on a device) before fs_alloc_release makes it
 * reusable, when fs->discard is on and the run is at least 64 KiB. A target that cannot discard turns
 * fs->discard off (one log line). Lock held. */
void fs_discard_released(struct fs *fs, uint64_t start, uint64_t end);
/* Blocks freed but not yet reusable (waiting for their transaction). */
uint64_t fs_alloc_pending_blocks(struct fs *fs);
/* jnl_undo restored blk: if it is a bitmap block, its free count (and
 * the totals) are counted again, and blocks the failed operation had
 * allocated lose their log images. Lock held. */
void fs_alloc_undo_block(struct fs *fs, uint64_t blk, const void *before, const void *after);
/* Before jnl_undo: blocks the failed operation freed leave the pending
 * list (they are its blocks again, or were never anybody's). Lock held. */
void fs_alloc_undo_pending(struct fs *fs);
/* Called WITHOUT the lock after an operation failed with -ENOSPC: if freed
 * blocks are waiting for a commit, commits and waits for it and returns 1
 * (retry the operation once); 0 if retrying cannot help; -EIO. */
int fs_alloc_wait_pending(struct fs *fs);
/* The one ENOSPC retry rule of the modifying operations (write, namei,
 * xattr, fallocate/truncate), called WITHOUT the lock after the operation
 * ended with err: 1 if err is one of the first FS_ENOSPC_RETRIES -ENOSPC
 * (*tries counts them) and blocks freed by a not yet durable transaction
 * became reusable, so a retry can succeed; 0 otherwise. More than one
 * retry, as ext4's ext4_should_retry_alloc allows 3: while this caller
 * waited for the commit, other writers may have taken the blocks it
 * released and freed others that wait for the next commit.
 * Loop: do { ... } while (fs_alloc_retry(...)). */
#define FS_ENOSPC_RETRIES 3
int fs_alloc_retry(struct fs *fs, int err, int *tries);

/* ---- verified metadata blocks (verified.c) -------------------------------- */

int  fs_verified_init(struct fs *fs);
void fs_verified_fini(struct fs *fs);
/* 1 if blk's checksum was verified since mount and it was not freed since. */
int  fs_verified_has(struct fs *fs, uint64_t blk);
void fs_verified_set(struct fs *fs, uint64_t blk);
/* Blocks [start, start+len) were freed: verify them again next time. */
void fs_verified_clear(struct fs *fs, uint64_t start, uint64_t len);

/* ---- read pins (readpin.c) ------------------------------------------------ */

/* Journal durable callback's part: transaction seq is durable; starts or
 * ends grace periods. Lock held. */
void fs_pins_durable(struct fs *fs, uint64_t seq);
/* Ends the grace period in progress if its pins are gone, starts the next
 * one. Lock held. */
void fs_pins_advance(struct fs *fs);
/* Lock NOT held: waits (bounded, about a second) until blocks freed by
 * transactions up to seq (already durable) are reusable. 0 or -EBUSY. */
int fs_pins_wait(struct fs *fs, uint64_t seq);

/* ---- B+tree binding (tree.c) ---------------------------------------------- */

/* A tree of inode ino bound to the journal; 'delta' counts nodes allocated
 * minus freed while it is used, so the caller can adjust the inode's block
 * count: di->blocks += ctx.delta; di->tree_root = tree.root. */
struct fs_tree_ctx {
    struct fs *fs;
    int64_t delta;
    struct bt_store store;   /* fs_tree_store with .ctx = this context; the
                                tree points here, so ctx must outlive tree */
};
void fs_tree_open(struct fs_tree_ctx *ctx, struct bt_tree *tree, struct fs *fs,
                  uint64_t ino, uint64_t root, uint16_t type);
/* The bt_store callbacks used by fs trees (ctx = struct fs_tree_ctx);
 * fs_tree_open copies it into ctx->store with ctx->store.ctx = ctx. */
extern const struct bt_store fs_tree_store;

/* ---- inodes (inode.c) ------------------------------------------------------ */

/* Copies inode ino out of the (journaled) inode table, validating range,
 * bitmap, checksum and mode. -ENOENT if not in use, -EUCLEAN if corrupt. */
int fs_inode_get(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di);
/* Writes inode ino back into the running transaction (checksum computed)
 * and records the transaction in the inode's memory state (for fsync). */
int fs_inode_put(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di);
/* fs_inode_put for a change of timestamps only: fdatasync does not wait for
 * it (fs_inode_put records the change for both fsync and fdatasync). */
int fs_inode_put_times(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di);
/* Allocates and initialises a new inode (times now, nlink 1 — 2 for
 * directories, generation from the superblock counter); not yet put. */
int fs_inode_new(struct fs *fs, uint64_t goal, uint32_t mode, uint32_t uid, uint32_t gid,
              uint64_t *ino, struct mmapfs_disk_inode *di);
/* Drops one link (directories: all, nlink = 0), ctime = now; when nlink
 * reaches 0 the inode goes on the orphan list if it still has lookup
 * references, else it is released. Puts the inode. Like fs_inode_release it
 * may span several journal steps: call it last in an operation, after
 * every other fs_inode_put (copies of other inodes may be stale after it). */
int fs_inode_drop_link(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di);
/* Frees everything the inode owns and the inode itself (removing it from the
 * orphan list if it is on it). May span several journal steps for large
 * files: it may call jnl_end/jnl_begin internally (lock held on return). */
int fs_inode_release(struct fs *fs, uint64_t ino);
void fs_inode_to_stat(uint64_t ino, const struct mmapfs_disk_inode *di, struct fs_stat *st);
enum { TOUCH_ATIME = 1, TOUCH_MTIME = 2, TOUCH_CTIME = 4 };
void fs_inode_touch(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di, unsigned what);

/* ---- in-memory inode state (icache.c) -------------------------------------- */

int fs_icache_init(struct fs *fs);
void fs_icache_fini(struct fs *fs);
void fs_icache_ref(struct fs *fs, uint64_t ino);                 /* lookup count + 1 */
uint64_t fs_icache_unref(struct fs *fs, uint64_t ino, uint64_t n); /* returns what is left */
uint64_t fs_icache_refs(struct fs *fs, uint64_t ino);
void fs_icache_set_dirty_seq(struct fs *fs, uint64_t ino, uint64_t seq);
uint64_t fs_icache_dirty_seq(struct fs *fs, uint64_t ino);      /* 0 if unknown */
/* Transaction that last changed what fdatasync needs (anything but
 * timestamps); fs_inode_put records both seqs, fs_inode_put_times only dirty_seq. */
void fs_icache_set_data_seq(struct fs *fs, uint64_t ino, uint64_t seq);
uint64_t fs_icache_data_seq(struct fs *fs, uint64_t ino);       /* 0 if unknown */
/* Number of inodes tracked (metrics). */
uint64_t fs_icache_count(struct fs *fs);
/* In-memory mirror of the orphan list (orphan.c only): which inodes are on
 * it and their predecessors (0 = the list head), so that membership tests
 * and removals are O(1). Entries of listed inodes are never dropped. */
int fs_icache_orphan_set(struct fs *fs, uint64_t ino, uint64_t prev);   /* 0 / -ENOMEM */
int fs_icache_orphan_get(struct fs *fs, uint64_t ino, uint64_t *prev);  /* 1 if listed */
void fs_icache_orphan_clear(struct fs *fs, uint64_t ino);
/* 1 if the mirror changed since the last call (which clears the mark). */
int fs_icache_orphan_changed(struct fs *fs);
/* Forgets the whole mirror (fs_orphan_reload rebuilds it). */
void fs_icache_orphan_reset(struct fs *fs);
/* An O_TMPFILE inode not linked yet (fs_tmpfile): set (0 / -ENOMEM) or
 * cleared (on 0), and asked. */
int fs_icache_set_linkable(struct fs *fs, uint64_t ino, int on);
int fs_icache_linkable(struct fs *fs, uint64_t ino);

/* ---- orphans (orphan.c) ---------------------------------------------------- */

/* Puts ino at the head of the orphan list (no-op if listed); puts di. */
int fs_orphan_add(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di);
/* Takes ino off the list (no-op if not listed); puts di. */
int fs_orphan_remove(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di);
/* Is ino on the orphan list? 1 / 0. */
int fs_orphan_listed(struct fs *fs, uint64_t ino);
/* Mount: releases every inode on the orphan list (left by a crash). */
int fs_orphan_recover(struct fs *fs);
/* Rebuilds the in-memory mirror from the list (after jnl_undo). 0 or
 * -errno. */
int fs_orphan_reload(struct fs *fs);

/* ---- failed operations (undo.c; docs/JOURNAL.md, "Failed operations") ------- */

/* Ends a modifying operation (instead of jnl_end) that returns err, and
 * returns what the operation must return: err, or the error of a change
 * that failed in a path that could not return it (jnl_op_failed). A failed
 * operation's changes are undone (jnl_undo) and the memory state that
 * mirrors them (free counts, orphan mirror) follows; if that is
 * impossible the journal is aborted. Unlocks. */
int fs_end(struct fs *fs, int err);
/* fs_end without the jnl_end: the operation goes on (or ends) with what
 * was there before the failed part. */
int fs_undo_failed(struct fs *fs, int err);
/* Aborts the journal (read-only from now on), logging why. Lock held. */
void fs_abort(struct fs *fs, int err, const char *why);

/* Early answers (fs.h): e->answer once, if e is given. */
void fs_early_answer(struct fs_early *e, const struct fs_stat *st);
/* After an attempt of an operation that may have answered early: 1 if it
 * is to run again (answered, out of memory, undone; *tries counts), else
 * 0 and err is what fs_end_early gets. */
int fs_early_retry(struct fs *fs, int err, const struct fs_early *e, unsigned *tries);
/* fs_end that aborts the journal when an operation that answered early
 * fails after all. */
int fs_end_early(struct fs *fs, int err, const struct fs_early *e);

/* ---- file data (file.c) ---------------------------------------------------- */

/* Locked variants used by symlink/readlink and truncation.
 * fs_file_write_locked updates di (size, block map, blocks, mtime/ctime) and
 * puts it; it runs in the caller's journal step (meant for small writes). */
ssize_t fs_file_write_locked(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di,
                          uint64_t off, const void *buf, size_t len);
ssize_t fs_file_read_locked(struct fs *fs, uint64_t ino, const struct mmapfs_disk_inode *di,
                         uint64_t off, void *buf, size_t len);
/* Sets the size; frees blocks wholly past the new end (zeroes the tail of a
 * partial last block). Does not put the inode: the caller does. May span
 * several journal steps (like fs_inode_release). */
int fs_file_truncate(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di, uint64_t size);
/* Frees every extent and the tree (release path). */
int fs_file_free_all(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di);

/* ---- abandoning a mount (mount.c) ------------------------------------------- */

/* Drops a mounted fs as a power cut would: the journal is abandoned
 * without commit or checkpoint (jnl_abandon), nothing else is written.
 * For the crash tests and the fuzzers. */
void fs_abandon(struct fs *fs);

/* ---- directories (dir.c) --------------------------------------------------- */

/* Reads the inode ino that an entry of directory dir names. An entry that
 * names a free inode, or an inode without links (an unlinked inode has no
 * name: its link count is damaged), is corruption (-EUCLEAN). */
int fs_dir_target(struct fs *fs, uint64_t dir, uint64_t ino, struct mmapfs_disk_inode *di);
/* Finds name in directory dir. -ENOENT. */
int fs_dir_find(struct fs *fs, uint64_t dir, const struct mmapfs_disk_inode *ddi,
             const char *name, size_t len, uint64_t *ino, uint8_t *type);
/* Adds an entry (-EEXIST); updates ddi's tree_root, size, blocks (caller puts
 * ddi and sets times). */
int fs_dir_add(struct fs *fs, uint64_t dir, struct mmapfs_disk_inode *ddi,
            const char *name, size_t len, uint64_t ino, uint8_t type);
/* Removes an entry (-ENOENT); updates ddi like fs_dir_add. */
int fs_dir_remove(struct fs *fs, uint64_t dir, struct mmapfs_disk_inode *ddi,
               const char *name, size_t len);
/* Points an existing entry at another inode. */
int fs_dir_replace(struct fs *fs, uint64_t dir, struct mmapfs_disk_inode *ddi,
                const char *name, size_t len, uint64_t ino, uint8_t type);
/* 1 if the directory has no entries. */
int fs_dir_is_empty(const struct mmapfs_disk_inode *ddi);

/* ---- xattrs (xattr.c) ------------------------------------------------------ */

/* Frees the inode's xattr block (release path). */
int fs_xattr_free_all(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di);
/* fs_acl_inherit (acl.c) inside a journal operation the caller holds. */
int fs_acl_inherit_locked(struct fs *fs, uint64_t parent, uint64_t ino, uint32_t mode);
/* fs_getxattr with the journal lock (or operation) held. */
int fs_xattr_get_locked(struct fs *fs, uint64_t ino, const char *name, void *buf,
                        size_t size);
/* fs_setxattr inside a journal operation the caller holds (and ends: an
 * error leaves the operation for fs_end to undo); no retry on ENOSPC. */
int fs_xattr_set_locked(struct fs *fs, uint64_t ino, const char *name, const void *value,
                        size_t size, int flags);

#endif
