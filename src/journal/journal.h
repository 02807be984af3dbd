/*
 * jnl — physical metadata journal, shadow buffers and group commit.
 *
 * Every metadata block (superblock, bitmaps, inode table blocks, B+tree
 * nodes, xattr blocks) is read and changed through this layer:
 *
 *  - jnl_write() gives a writable in-memory "shadow" copy of a block that
 *    belongs to the running transaction. Readers (jnl_read) see the newest
 *    shadow. The mapping's copy of the block is NOT touched until the
 *    transaction that changed it is durable (DESIGN.md invariant 1).
 *  - The commit thread closes the running transaction (a new one starts at
 *    once), copies its block images into the log, writes the commit block
 *    (checksummed over the whole transaction) and syncs once, then copies
 *    the images to their home blocks in the mapping (checkpoint) and wakes
 *    the waiters. A transaction that makes new file data reachable
 *    (jnl_note_new_data) syncs once more, before its commit block, so that
 *    the data is durable first (ordered data, invariant 3), unless the
 *    data is small enough to ride in the log itself (jnl_log_data). The
 *    journal header is advanced lazily, riding those syncs.
 *  - Callers of jnl_commit_wait() that arrive while a commit is in flight
 *    ride the next one (group commit).
 *
 * Locking: one metadata lock, taken with jnl_lock()/jnl_unlock(). Every
 * jnl_read/jnl_write/jnl_write_new/jnl_forget and every multi-block change
 * that must land in one transaction is done while holding it. The commit
 * thread takes it only to close a transaction and to checkpoint, so a
 * transaction never contains half an operation.
 *
 * A failed sync is fatal and sticky: jnl_error() returns -EIO from then on,
 * jnl_write() returns NULL, and jnl_commit_wait() returns -EIO.
 *
 * A failed operation leaves nothing behind: the journal keeps an undo log
 * of the operation in progress (jnl_undo), and jnl_abort stops the
 * journal (-EROFS, the running transaction never commits) where an undo
 * is impossible. docs/JOURNAL.md, "Failed operations".
 *
 * Format of the journal: src/journal/format.h and docs/FORMAT.md.
 */
#ifndef MMAPFS_JOURNAL_H
#define MMAPFS_JOURNAL_H

#include <errno.h>
#include <stdint.h>

#include "mmapfs/mmio.h"

struct jnl;

struct jnl_geometry {
    uint64_t journal_start;   /* first journal block (header slot A), >= 1 */
    uint64_t journal_blocks;  /* including the two header slots,
                               * >= JNL_MIN_JOURNAL_BLOCKS */
    uint64_t block_count;     /* blocks in the filesystem (bounds check);
                               * the journal lies inside, and block_count *
                               * 4096 <= mmio_size(io). Otherwise -EINVAL. */
};

/* Smallest journal (2 header slots + 1024 log blocks). One transaction may
 * use at most a third of the log (docs/JOURNAL.md, "Log space"), which must
 * exceed JNL_MAX_OP_BLOCKS. */
#define JNL_MIN_JOURNAL_BLOCKS 1026u

struct jnl_config {
    uint64_t commit_interval_ms;  /* periodic commit; 0 = default 5000 */
    int read_only;                /* no commit thread, jnl_write fails; the
                                   * log is replayed into memory only (readers
                                   * see the recovered state, the image is not
                                   * written) */
};

/* Replays the log into the home blocks (then syncs and resets the header so
 * that nothing is replayed twice), unless dry_run. *replayed (may be NULL)
 * receives the number of transactions found valid. Returns 0, -EIO (or
 * another engine error), -EINVAL (bad geometry), -ENOMEM, or -EUCLEAN when
 * the journal headers are both invalid. A corrupt or torn log is not an
 * error: replay stops at the first transaction that does not check out.
 * Used by jnl_open and by fsck. Does not need a struct jnl. */
int jnl_recover(struct mmio *io, const struct jnl_geometry *geo, int dry_run,
                uint64_t *replayed);

/* Writes fresh journal headers (used by mkfs): slot A valid with seq = a
 * random start, start 0; slot B zeroed. Syncs. The log area need not be
 * zeroed. -EINVAL on bad geometry. */
int jnl_format(struct mmio *io, const struct jnl_geometry *geo);

/* Offline (mmapfs-resize): prepares the journal of old_geo to become
 * new_journal_blocks long (the same start, a shorter log): writes a header
 * with the new log size into the slot that is not current. Until the
 * caller switches the superblock to the new length, the old geometry still
 * finds its own header (the new slot does not match its log size); after,
 * only the new slot matches. Does not sync. The journal must replay
 * nothing (clean unmount): -EBUSY otherwise. -EINVAL if new_journal_blocks
 * is below JNL_MIN_JOURNAL_BLOCKS or above the old length; -EUCLEAN if no
 * header slot is valid; engine errors. */
int jnl_reshape(struct mmio *io, const struct jnl_geometry *old_geo,
                uint64_t new_journal_blocks);

/* Recovers (jnl_recover) then starts the commit thread. io stays owned by
 * the caller and must outlive the journal. Errors: those of jnl_recover,
 * -EINVAL (geometry), -ENOMEM. */
int jnl_open(struct jnl **out, struct mmio *io, const struct jnl_geometry *geo,
             const struct jnl_config *cfg);

/* Commits everything, stops the thread, checkpoints, syncs, writes a header
 * that replays nothing. Returns the sticky error, if any. Frees j. */
int jnl_close(struct jnl *j);

/* Stops the commit thread and frees j without writing anything (no commit,
 * no checkpoint, no header): the image is left as a power cut would leave
 * it. For the crash tests and the fuzzers; NULL is a no-op. */
void jnl_abandon(struct jnl *j);

void jnl_lock(struct jnl *j);
void jnl_unlock(struct jnl *j);

/* Current version of metadata block blk (newest shadow, else a private
 * copy of the home block, read through the engine so that a page that
 * cannot be read is an error, never a SIGBUS). Lock held. Valid until
 * jnl_unlock(); each call not served by a shadow costs one 4 KiB copy held
 * until then. NULL if blk is out of range (errno ERANGE; the caller
 * reports -EIO / corruption), or cannot be read (errno EIO: the journal
 * error becomes sticky, nothing commits any more; or ENOMEM). */
const void *jnl_read(struct jnl *j, uint64_t blk);
/* The -errno for a NULL from jnl_read (errno still as it left it): -ENOMEM
 * for a failed copy buffer, else -EIO. */
static inline int jnl_read_error(void)
{
    return errno == ENOMEM ? -ENOMEM : -EIO;
}

/* Writable shadow of blk in the running transaction (created from the
 * current version on first use). Lock held. Valid until jnl_unlock(). NULL
 * with errno set: ENOMEM, ERANGE (out of range or inside the journal),
 * EROFS (read-only), EIO (sticky error, jnl_error tells; or the home block
 * could not be read), ENOSPC (the running transaction is full: only when
 * an operation adds more than JNL_MAX_OP_BLOCKS or skipped jnl_begin). */
void *jnl_write(struct jnl *j, uint64_t blk);

/* Like jnl_write for a block newly allocated as metadata: the shadow starts
 * zeroed instead of being read from the mapping (also zeroed when blk was
 * already in the running transaction). */
void *jnl_write_new(struct jnl *j, uint64_t blk);

/* 1 if blk currently has an in-memory shadow (its content is what
 * jnl_read returns: written by this process, or, on a read-only open, an
 * image replayed from the log, see jnl_shadow_written). Lock held. */
int jnl_is_shadow(struct jnl *j, uint64_t blk);

/* 1 if blk has a shadow whose content this process wrote (jnl_write,
 * jnl_write_new); 0 for none and for a pinned image that a read-only open
 * replayed from the log: its bytes came from the image and are as
 * untrusted as the home block's (a tree node there is checked whole, like
 * one read from the mapping). Lock held. */
int jnl_shadow_written(struct jnl *j, uint64_t blk);

/* blk stops being metadata in the running transaction (freed): its shadow
 * is dropped from the running transaction and it is never written home by
 * this transaction. Lock held. */
void jnl_forget(struct jnl *j, uint64_t blk);

/* Sequence number of the running transaction (the one jnl_write adds to). */
uint64_t jnl_running_seq(struct jnl *j);

/* Highest sequence number that is durable: everything below the running
 * transaction's number when no commit is pending (jnl_running_seq() - 1
 * right after jnl_open). Sequence numbers start at a random value. */
uint64_t jnl_durable_seq(struct jnl *j);

/* The newest transaction that holds changes: the running one, or the one
 * before it while the running one is empty. Waiting for it (jnl_commit_wait)
 * makes every change made so far durable. Lock held. */
uint64_t jnl_last_seq(struct jnl *j);

/* Number of blocks in the running transaction. Lock held. */
uint64_t jnl_running_blocks(struct jnl *j);

/* Most blocks one operation may add between jnl_lock and jnl_unlock; larger
 * operations are split into several steps (unlock, relock). */
#define JNL_MAX_OP_BLOCKS 256u

/* Call at the start of a modifying operation, instead of jnl_lock(): takes
 * the lock, first waiting (unlocked) for a commit if the running
 * transaction is too large to take JNL_MAX_OP_BLOCKS more. Returns with the
 * lock held and 0, or without the lock and the sticky error / -EROFS. */
int jnl_begin(struct jnl *j);
/* Ordered data (invariant 3): the running transaction makes file data
 * blocks reachable that were not readable file data before (blocks newly
 * allocated and written by a write, unwritten extents converted to
 * written). Its commit then syncs the data (and the log) before writing the
 * commit block: two syncs instead of one. Data overwritten in place in
 * blocks the file already owned needs no such ordering. Lock held. */
void jnl_note_new_data(struct jnl *j);

/* Small new data rides in the log (docs/JOURNAL.md): blocks [pblk,
 * pblk+n) were just allocated (or converted from unwritten) and filled
 * with file data in the mapping. When the running transaction has room
 * for their images (a small write), the commit copies them into the log
 * beside the metadata, and replay writes them home: the commit needs one
 * sync instead of two. Otherwise this is jnl_note_new_data. Lock held. */
void jnl_log_data(struct jnl *j, uint64_t pblk, uint64_t n);

/* File data blocks [pblk, pblk+n) were just overwritten in place. If a
 * live transaction holds an image of one of them (jnl_log_data), replay
 * would write that older image over the new bytes: the block is logged
 * again in the running transaction (or, when it is full, its commit first
 * moves the durable header past that transaction). Returns 1 then: the
 * write is durable only once the running transaction is (the caller makes
 * the file's fsync wait for it); else 0. Lock held. */
int jnl_data_overwrite(struct jnl *j, uint64_t pblk, uint64_t n);

/* Blocks [start, start+len) stopped being file data (freed): they leave
 * the running transaction's data images, and older images of them need no
 * more care (docs/JOURNAL.md, invariant 4). Lock held. */
void jnl_forget_data(struct jnl *j, uint64_t start, uint64_t len);

/* Read-only journal (jnl_config.read_only) whose replay found images: 1,
 * and file data must then be read through jnl_replayed_block. Else 0. */
int jnl_has_replayed(struct jnl *j);
/* Read-only journal: the replayed image of blk, or NULL when the log has
 * none (the mapping's copy is current). Lock held. */
const void *jnl_replayed_block(struct jnl *j, uint64_t blk);

/* Ends a modifying operation: unlocks; kicks the commit thread if the
 * running transaction has grown past the commit threshold. */
void jnl_end(struct jnl *j);

/* Waits until transaction seq is durable, asking for its commit now, and
 * until file data written to the mapping before the call is durable too
 * (fsync: the fs may call it unconditionally with the inode's last seq).
 * Lock NOT held. If seq is already durable (or its transaction is empty)
 * this is one batched data sync (jnl_sync_data); otherwise the commit's own
 * syncs cover the data. 0 or -EIO. */
int jnl_commit_wait(struct jnl *j, uint64_t seq);

/* jnl_commit_wait without blocking the caller: returns at once, and
 * done(ctx, err) is called exactly once — from the commit thread, or from
 * this call when nothing needs waiting for — when transaction seq and the
 * file data written before this call are durable (err 0), or with the
 * sticky -EIO. Lock NOT held. done must not call back into the journal
 * (it runs on the commit thread). This is how fsync is answered from the
 * commit thread, so FUSE workers never sleep on a sync. */
typedef void (*jnl_done_fn)(void *ctx, int err);
void jnl_commit_async(struct jnl *j, uint64_t seq, jnl_done_fn done, void *ctx);

/* Makes file data written to the mapping so far durable without a
 * metadata commit (fsync of a file whose metadata is already durable):
 * a batched engine sync (mmio_sync_delayed). Lock NOT held. 0 or -EIO. */
int jnl_sync_data(struct jnl *j);

/* Sticky error: 0, -EIO after a failed sync, or -EROFS after jnl_abort. */
int jnl_error(struct jnl *j);

/* ---- failed operations (docs/JOURNAL.md, "Failed operations") -------------
 * Between jnl_begin and jnl_end the journal keeps an undo log of the
 * operation: the state of every block before its first change in the
 * operation. An operation that fails half-way calls jnl_undo before
 * jnl_end, and nothing of it stays in the running transaction. */

/* Called for every block jnl_undo restored: its bytes as the failed
 * operation left them (zeros if it had dropped it) and as they are again
 * (the fs recounts the free bits of a restored bitmap block). Lock held. */
typedef void (*jnl_undo_fn)(void *ctx, uint64_t blk, const void *before, const void *after);

/* Undoes every change of the operation in progress (since jnl_begin, or
 * since the last jnl_undo): shadows it created are dropped, shadows it
 * changed get their old bytes back, and the running transaction holds
 * what it held before the operation. fn (may be NULL) is called for each
 * restored block. 0, or -ENOMEM when a block could not be restored: the
 * journal is then aborted (jnl_abort). Lock held (jnl_begin). */
int jnl_undo(struct jnl *j, jnl_undo_fn fn, void *ctx);

/* Whether the operation in progress changed a block (or forgot a log
 * image): jnl_undo has something to do. Lock held. */
int jnl_op_changed(struct jnl *j);

/* A change of the operation in progress failed at a place that cannot
 * return the error (a void path): recorded (the first one), so that
 * whoever ends the operation can undo it or abort. Lock held. */
void jnl_op_failed(struct jnl *j, int err);
/* The error jnl_op_failed recorded in this operation, or 0. Lock held. */
int jnl_op_failure(struct jnl *j);
/* A number that names the operation in progress (changes at every
 * jnl_begin and jnl_undo); 0 when none is in progress. Lock held. */
uint64_t jnl_op_gen(struct jnl *j);

/* Like jbd2's journal abort: the running transaction will never commit,
 * the sticky error becomes -EROFS (every later jnl_begin, jnl_write and
 * commit wait fails), and 'why' is logged on stderr once. What is on the
 * disk stays the last durable transaction (plus a commit in flight, which
 * holds whole operations only). Lock held. */
void jnl_abort(struct jnl *j, int err, const char *why);

/* Sets the sticky error (-EIO) and wakes everybody: nothing commits any
 * more (a failed sync does the same; the fs calls it when its heartbeat
 * lost the image). Lock held. */
void jnl_fail_locked(struct jnl *j);

/* Called by the commit thread after transaction seq became durable, with
 * the lock held (the fs uses it to release blocks freed in seq for reuse:
 * safe although the lazy header may still name an older transaction, see
 * docs/JOURNAL.md, invariant 4).
 * Set it before the first modifying operation (it does not take the lock). */
typedef void (*jnl_durable_fn)(void *ctx, uint64_t seq);
void jnl_set_durable_callback(struct jnl *j, jnl_durable_fn fn, void *ctx);

/* Counters for observability (mmapfs-stat); totals since jnl_open except
 * shadow_blocks_now. Readable from any thread without the lock.
 *   commits            transactions made durable
 *   commit_blocks      metadata block images they carried
 *   commit_us          time from closing a transaction to its checkpoint
 *   commit_waits       jnl_commit_wait calls (commits/commit_waits shows
 *                      how well group commit batches)
 *   wraps              transactions placed at log index 0
 *   shadow_blocks_now  shadow buffers held now (4 KiB each)
 *   checkpoint_blocks  images written to their home blocks
 *   commit_syncs       device syncs the commits issued (1 per commit, 2
 *                      for an ordered one; commit_syncs / commits is the
 *                      syncs per commit)
 *   ordered_commits    commits with new file data (jnl_note_new_data)
 *   header_writes      lazy journal header writes (no sync of their own)
 *   log_full_syncs     extra syncs to catch the header up when the live
 *                      transactions left no room in the log
 *   pipelined_commits  transactions closed early to ride the final sync of
 *                      an ordered commit (they need no sync of their own
 *                      before their commit block)
 *   data_images        file data blocks copied into the log (jnl_log_data
 *                      and the re-logs of jnl_data_overwrite)
 *   head_past_syncs    syncs a commit spent moving the header past an
 *                      older image of a block overwritten in place
 *   batched_commits    commits held back briefly for more fsync callers
 *                      to join (several callers were seen recently) */
struct jnl_metrics {
    uint64_t commits, commit_blocks, commit_us, commit_waits, wraps,
             shadow_blocks_now, checkpoint_blocks, commit_syncs, ordered_commits,
             header_writes, log_full_syncs, pipelined_commits, data_images,
             head_past_syncs, batched_commits;
};
void jnl_get_metrics(struct jnl *j, struct jnl_metrics *out);

#endif
