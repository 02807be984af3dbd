/*
 * Private interfaces between the files of the journal (src/journal/):
 * the journal object, the shadow table, header and replay helpers. Not for
 * other layers (the unit tests read it). Tests and the crash recorder
 * observe the commit protocol through io/observe.h.
 *
 *   journal.c  open/close, lock, shadows (read/write/forget), begin/end
 *   shadow.c   the shadow table: block number -> shadow (hash map)
 *   commit.c   commit thread, commit protocol, checkpoint, waits, data sync
 *   recover.c  geometry checks, journal headers, parsing and replay, format
 *
 * Design and rationale: docs/JOURNAL.md.
 */
#ifndef MMAPFS_JOURNAL_I_H
#define MMAPFS_JOURNAL_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "journal/format.h"
#include "journal/journal.h"
#include "mmapfs/mmio.h"
#include "util/crc32c.h"
#include "util/hash64.h"

#define JNL_BS           ((uint64_t)MMAPFS_JNL_BLOCK_SIZE)
/* Step 1 writes a transaction's log blocks in runs of at most this many
 * (one engine write per run instead of one per block). */
#define JNL_STAGE_BLOCKS 64

/* The two sums over a transaction's descriptor and image blocks, in log
 * order, that its commit block carries (data_checksum, data_hash;
 * format.h). Start from all zeros and add every block. */
struct jnl_sum {
    uint32_t crc;
    uint64_t hash;
};

static inline void jnl_sum_add(struct jnl_sum *s, const void *block)
{
    s->crc = mfs_crc32c(s->crc, block, JNL_BS);
    s->hash = mfs_hash64(s->hash, block, JNL_BS);
}

/* jnl_read copies kept allocated across lock holds (journal.c): freeing
 * and allocating them again on every hold made glibc trim and regrow its
 * heap (a TLB shootdown each time). */
#define JNL_READ_KEEP    1024u
/* A block read again within one hold is served from its copy if it is
 * among the last JNL_READ_REUSE copies (readdirplus reads the same inode
 * table block for many entries). */
#define JNL_READ_REUSE   32u
#define JNL_NOT_RUNNING  UINT32_MAX

/* ---- shadows and the shadow table (shadow.c) ------------------------------ */

/* In-memory copy of one metadata block. Every shadow is in the running
 * transaction (running_idx set), or still needed by the checkpoint of a
 * closed transaction (in_commit: how many, at most two), or both, or
 * pinned (read-only mount: an image replayed in memory only). */
struct jnl_shadow {
    uint64_t blk;           /* home block number */
    uint64_t dirty_seq;     /* transaction that last changed data */
    uint32_t running_idx;   /* index in jnl->running, or JNL_NOT_RUNNING */
    uint8_t  in_commit;     /* closed transactions that still checkpoint it */
    uint8_t  pinned;        /* read-only replay image, never written */
    uint64_t undo_gen;      /* operation whose undo log holds its old state */
    void    *data;          /* JNL_BS bytes, 4096-aligned */
};

/* Open-addressing hash table (linear probing, backward-shift deletion),
 * kept at most half full. */
struct jnl_shadow_map {
    struct jnl_shadow **slots;
    uint64_t mask;          /* capacity - 1, capacity a power of two */
    uint64_t count;
};

int  jnl_map_init(struct jnl_shadow_map *m);
/* Frees the table and every shadow in it. */
void jnl_map_destroy(struct jnl_shadow_map *m);
struct jnl_shadow *jnl_map_find(const struct jnl_shadow_map *m, uint64_t blk);
/* Adds s (its blk must not be present). 0 or -ENOMEM. */
int  jnl_map_insert(struct jnl_shadow_map *m, struct jnl_shadow *s);
/* Removes blk's entry (does not free the shadow). */
void jnl_map_remove(struct jnl_shadow_map *m, uint64_t blk);
/* A new shadow with uninitialised data; NULL when out of memory. */
struct jnl_shadow *jnl_shadow_alloc(uint64_t blk);
void jnl_shadow_free(struct jnl_shadow *s);

/* ---- journal headers and replay (recover.c) ------------------------------- */

/* The current journal header, as read or last written. */
struct jnl_head_state {
    int slot;               /* 0 = slot A, 1 = slot B */
    uint64_t generation;
    uint64_t seq;           /* first transaction to replay */
    uint64_t start;         /* its log index */
};

/* Where replay ended. */
struct jnl_replay_result {
    uint64_t replayed;      /* valid transactions found */
    uint64_t next_seq;      /* first sequence number not found valid */
    uint64_t next_pos;      /* log index after the last valid transaction
                             * (the header's start when none), < log_blocks */
    int torn;               /* a descriptor of next_seq was seen: a torn txn */
};

/* Receives each image of a valid transaction, in log order. 0 or -errno. */
typedef int (*jnl_apply_fn)(void *ctx, uint64_t home, const void *image);

/* Byte offset of log index idx. */
static inline uint64_t jnl_log_off(const struct jnl_geometry *geo, uint64_t idx)
{
    return (geo->journal_start + 2 + idx) * JNL_BS;
}

/* Log index of the i-th image (0-based) of a transaction starting at pos:
 * every group of MMAPFS_JNL_DESC_MAX images is preceded by a descriptor. */
static inline uint64_t jnl_image_idx(uint64_t pos, uint64_t i)
{
    return pos + 1 + i + i / MMAPFS_JNL_DESC_MAX;
}

/* Log blocks of a transaction of n images: descriptors + images + commit. */
static inline uint64_t jnl_txn_log_blocks(uint64_t n)
{
    return n + (n + MMAPFS_JNL_DESC_MAX - 1) / MMAPFS_JNL_DESC_MAX + 1;
}

/* Checks the geometry against the rules and the image size: 0 or -EINVAL. */
int jnl_geometry_check(struct mmio *io, const struct jnl_geometry *geo);
/* Is blk a legal home block (in range, not inside the journal)? */
int jnl_home_ok(const struct jnl_geometry *geo, uint64_t blk);
/* Reads both header slots and picks the current one. 0, -EUCLEAN (none
 * valid) or an engine error. buf: JNL_BS scratch bytes. */
int jnl_head_read(struct mmio *io, const struct jnl_geometry *geo,
                  struct jnl_head_state *head, void *buf);
/* Writes {generation+1, seq, start} into the slot other than head's and
 * updates *head. Does not sync. buf: JNL_BS scratch bytes. */
int jnl_head_write(struct mmio *io, const struct jnl_geometry *geo,
                   struct jnl_head_state *head, uint64_t seq, uint64_t start,
                   void *buf);
/* Walks the log from head, calling apply (may be NULL: count only) for
 * every image of every valid transaction. Writes nothing else. */
int jnl_replay(struct mmio *io, const struct jnl_geometry *geo,
               const struct jnl_head_state *head, jnl_apply_fn apply, void *ctx,
               struct jnl_replay_result *res);
/* jnl_recover, also returning the header that is current afterwards. */
int jnl_recover_head(struct mmio *io, const struct jnl_geometry *geo,
                     int dry_run, uint64_t *replayed, struct jnl_head_state *head);

/* ---- the journal object --------------------------------------------------- */

/* A caller of jnl_commit_async waiting for seq, with the number of syncs
 * begun at its call: it is done once seq is durable and a sync numbered
 * above s0 has completed (that sync covers the data it wrote before). */
struct jnl_async {
    uint64_t seq, s0;
    jnl_done_fn done;
    void *ctx;
    struct jnl_async *next;
};

/* A closed transaction: frozen in the log, waiting for its commit block,
 * its final sync and its checkpoint. */
struct jnl_closed {
    uint64_t *blks;               /* home blocks, log order; max_txn_blocks:
                                   * metadata images first, then file data */
    uint64_t count, seq, pos;
    uint64_t meta_count;          /* images to checkpoint (the metadata) */
    uint64_t head_past;           /* the durable header must name a later
                                   * transaction before the commit block is
                                   * written (0: no such need) */
    struct jnl_sum sum;           /* of its descriptors and images */
    int new_data;                 /* ordered: data synced before the commit block */
    int pre_synced;               /* a sync that began after it closed completed */
};

struct jnl_counters {
    _Atomic uint64_t commits, commit_blocks, commit_us, commit_waits, wraps,
                     shadow_blocks_now, checkpoint_blocks, commit_syncs,
                     ordered_commits, header_writes, log_full_syncs, pipelined_commits,
                     data_images, head_past_syncs, batched_commits;
};

/* A transaction whose log blocks are still needed: from the oldest one the
 * durable header may point at through the newest placed (docs/JOURNAL.md,
 * "Log space"). */
struct jnl_live_txn {
    uint64_t seq, start, end;     /* log blocks [start, end) */
};

/* One block's state before the operation changed it (undo.c). */
struct jnl_undo_entry {
    uint64_t blk;
    uint64_t dirty_seq;           /* the shadow's dirty_seq before */
    uint8_t had_shadow;           /* a shadow existed (its bytes are in saved) */
    uint8_t was_running;          /* ... and was in the running transaction */
    void *saved;                  /* JNL_BS bytes (had_shadow), from the pool */
};

/* The undo log of the operation in progress (between jnl_begin and
 * jnl_end; docs/JOURNAL.md, "Failed operations"). Lock held. */
struct jnl_undo {
    int active;                   /* jnl_begin .. jnl_end */
    uint64_t gen;                 /* operation number (shadow.undo_gen) */
    struct jnl_undo_entry *entries;
    uint32_t count, cap;
    void **pool;                  /* spare JNL_BS buffers, kept across operations */
    uint32_t pool_count, pool_cap;
    uint32_t buffers;             /* buffers in use by entries */
    int forgot_data;              /* jnl_forget_data dropped entries in it */
    uint64_t (*forgets)[2];       /* jnl_forget_data ranges held back until
                                   * jnl_end (an undo keeps the entries) */
    uint32_t forget_count, forget_cap;
    int failed;                   /* a change failed where it could not be
                                   * reported (jnl_op_failed): first error */
    void *before;                 /* JNL_BS: a block as the failed op left it */
};

/* Commits whose waiter counts decide whether a commit waits for company. */
#define JNL_BATCH_HIST 8u

/* Most live transactions: three in steady state (see "Log space"); when
 * the ring is full the commit thread catches the header up first. */
#define JNL_LIVE_MAX 8u

struct jnl {
    struct mmio *io;
    struct jnl_geometry geo;
    uint64_t log_blocks;          /* journal_blocks - 2 */
    uint64_t max_txn_blocks;      /* images one transaction may hold */
    uint64_t begin_limit;         /* jnl_begin waits above this many */
    uint64_t soft_limit;          /* jnl_end kicks a commit at this many */
    uint64_t commit_interval_ns;
    int read_only;

    pthread_mutex_t mu;           /* the metadata lock */
    pthread_cond_t commit_cv;     /* wakes the commit thread (CLOCK_MONOTONIC) */
    pthread_cond_t done_cv;       /* a commit finished / the txn emptied / error */
    pthread_cond_t space_cv;      /* the running txn was closed / error */
    pthread_t thread;
    int thread_started;

    /* shadows and the running transaction (lock) */
    struct jnl_shadow_map map;
    struct jnl_shadow **running;  /* max_txn_blocks entries */
    uint32_t running_count;
    uint64_t running_since_ns;    /* when its first block was added */
    int running_new_data;         /* jnl_note_new_data was called for it */

    /* file data images (datalog.c; docs/JOURNAL.md, "Small new data rides
     * in the log"). 'logged' maps every data block with an image in the
     * running or a live transaction to an entry (data NULL) whose
     * dirty_seq is the last transaction that logged it and whose
     * running_idx is its index in running_data. (lock) */
    struct jnl_shadow_map logged;
    struct jnl_shadow **running_data; /* data_max entries */
    uint32_t running_data_count;  /* data images in the running txn */
    uint32_t running_data_new;    /* of those, blocks of new data */
    uint32_t data_max;            /* most data images in one transaction */
    uint32_t data_new_max;        /* most new-data blocks logged in one */
    uint64_t running_head_past;   /* see jnl_closed.head_past */
    uint64_t logged_pruned_tail;  /* tail_seq at the last prune */
    void *stage;                  /* JNL_STAGE_BLOCKS * JNL_BS: step 1's
                                   * log blocks on their way out (lock) */

    /* closed transactions (commit thread; lock for the shadows): the one
     * committing, closed[cur], and the next one when it was closed early to
     * ride the final sync of an ordered commit (next_ready) */
    struct jnl_closed closed[2];
    int cur, next_ready;

    _Atomic uint64_t running_seq;
    _Atomic uint64_t durable_seq;
    _Atomic int error;            /* sticky: 0 or -EIO */
    _Atomic uint64_t sync_started;   /* commit syncs begun */
    _Atomic uint64_t sync_completed; /* number of the last one finished */

    /* commit requests (lock) */
    uint64_t requested_seq;       /* a waiter wants this seq committed */
    /* waiting for company (commit.c, batch_deadline) */
    uint32_t running_waiters;     /* fsync callers waiting for the running txn */
    uint32_t waiters_hist[JNL_BATCH_HIST]; /* waiters of the last closed txns */
    uint32_t waiters_pos;
    uint64_t avg_commit_ns;       /* moving average of a commit's duration */
    int batch_held;               /* the running txn's commit was held back */
    uint64_t commit_asleep_until; /* the commit thread sleeps until this time
                                   (monotonic ns; UINT64_MAX: untimed); 0 while
                                   it is awake and will look again (lock) */
    uint32_t throttled;           /* jnl_begin callers waiting for room */
    int shutdown;
    struct jnl_async *async_head; /* jnl_commit_async waiters, in call order (lock) */
    struct jnl_async **async_tail;

    /* log position and the lazy header (commit thread only; jnl_close
     * after the thread has stopped). A write "is durable after sync n"
     * when it was made before numbered sync n began; sync_completed >= n
     * then says it is on the disk. */
    struct jnl_head_state head;   /* the header last written */
    uint64_t head_durable_after;  /* ... durable once sync_completed >= this */
    uint64_t tail_seq;            /* oldest seq the durable header may name */
    uint64_t ckpt_seq;            /* last transaction checkpointed */
    uint64_t ckpt_durable_after;  /* its home writes durable after this sync */
    uint64_t ckpt_durable_seq;    /* checkpoints of all txns <= this durable */
    uint64_t log_head;            /* where the next transaction goes (if it fits) */
    struct jnl_live_txn live[JNL_LIVE_MAX]; /* ring of live transactions */
    uint32_t live_first, live_count;
    uint64_t commits_since_open;

    void *scratch;                /* JNL_BS, commit thread only */
    void **read_temps;            /* jnl_read copies (lock): [0, count) in
                                   * use, [count, alloc) spare */
    uint64_t *read_blks;          /* the block each copy in use holds */
    size_t read_temps_count, read_temps_alloc, read_temps_cap;

    jnl_durable_fn durable_fn;
    void *durable_ctx;

    struct jnl_undo undo;         /* the operation in progress (undo.c) */

    struct jnl_counters ctr;
};

/* Monotonic clock, nanoseconds. */
uint64_t jnl_now_ns(void);
/* Body of the commit thread (arg: struct jnl *). */
void *jnl_commit_main(void *arg);
/* Drops a shadow that neither transaction needs any more. Lock held. */
void jnl_shadow_drop(struct jnl *j, struct jnl_shadow *s);
/* Nothing in the running transaction (no metadata, no data image). */
static inline int jnl_running_empty(const struct jnl *j)
{
    return j->running_count == 0 && j->running_data_count == 0;
}
/* Notes that the running transaction just got its first block: arms the
 * periodic commit. Lock held. */
void jnl_running_started(struct jnl *j);
/* A waiter may be waiting for a transaction that just became empty. */
void jnl_running_maybe_emptied(struct jnl *j);

/* ---- file data images (datalog.c) ---------------------------------------- */

/* Sizes the data image budgets and allocates running_data. 0 or -ENOMEM. */
int jnl_datalog_init(struct jnl *j);
void jnl_datalog_destroy(struct jnl *j);
/* Step 1 (lock held): home block of the i-th image of the running
 * transaction (metadata first, then data), and a copy of its content into
 * dst (JNL_BS bytes; data images are read from their home block now).
 * 0 or an engine error. */
uint64_t jnl_running_home(const struct jnl *j, uint64_t i);
int jnl_running_image_copy(struct jnl *j, uint64_t i, void *dst);
/* Step 1 (lock held), after the images are written: the running data
 * images belong to the closed transaction now. */
void jnl_datalog_close(struct jnl *j);
/* After a commit (lock held): forgets entries of transactions that replay
 * can no longer reach (older than tail_seq). */
void jnl_datalog_prune(struct jnl *j);
/* jnl_forget_data without holding it back for the operation's undo. */
void jnl_datalog_forget(struct jnl *j, uint64_t start, uint64_t len);

/* ---- the undo log of an operation (undo.c) ------------------------------ */

int  jnl_undo_init(struct jnl *j);
void jnl_undo_destroy(struct jnl *j);
/* jnl_begin / jnl_end: starts or forgets the operation's undo log. */
void jnl_undo_start(struct jnl *j);
void jnl_undo_finish(struct jnl *j);
/* Records blk's state before the operation changes it (first change in
 * the operation only; s: its shadow or NULL). 0 or -ENOMEM. */
int  jnl_undo_note(struct jnl *j, uint64_t blk, struct jnl_shadow *s);
static inline int jnl_undo_needed(const struct jnl *j, const struct jnl_shadow *s)
{
    return j->undo.active && (!s || s->undo_gen != j->undo.gen);
}
/* Takes s out of the running transaction / puts it in. Lock held. */
void jnl_running_remove(struct jnl *j, struct jnl_shadow *s);
void jnl_running_add(struct jnl *j, struct jnl_shadow *s);

/* ---- limits (journal.c) ---------------------------------------------------- */

/* Largest number of blocks one transaction may hold. */
uint64_t jnl_max_txn_blocks(const struct jnl *j);
/* jnl_begin waits while the running transaction has more than this. */
uint64_t jnl_begin_limit(const struct jnl *j);

#endif
