/*
 * mmio_i.h — private definitions of libmmio, shared by the src/io sources and by
 * the unit tests (tests/unit/test_mmio.c). Not part of the public API.
 *
 * Layout of the engine:
 *   mmio.c        open/close, bounds, read/write/pointers, metrics
 *   mmio_pio.c    PREAD backend: full pread/pwrite loops, O_DIRECT bounce
 *   mmio_sync.c   flush, sticky failure, delayed-sync loop, group commit
 *   mmio_company.c evidence for the loop's wait for company (adaptive batching)
 *   mmio_sigbus.c SIGBUS guard turning faults in engine copies into -EIO
 *   mmio_merge.c  merging of overlapping/adjacent writes (later wins)
 *   mmio_observe.c the process-wide observer (observe.h)
 */
#ifndef MMAPFS_IO_MMIO_I_H
#define MMAPFS_IO_MMIO_I_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "io/observe.h"
#include "mmapfs/mmio.h"

/* sync_delay_us used when mmio_open gets cfg == NULL. 0: no batching
 * window; callers still share syncs by riding the next one while a sync
 * is in flight (docs/ENGINE.md, "Delayed syncs"). */
#define MMIO_DEFAULT_SYNC_DELAY_US 0

/* Alignment of the bounce buffer used for O_DIRECT with the PREAD
 * backend: a page, which satisfies every logical block size <= 4096. */
#define MMIO_DIRECT_ALIGN 4096

/* Adaptive batching (docs/ENGINE.md, "Waiting for company"): how many
 * distinct recent caller threads, and how many past loop syncs' caller
 * counts, the loop remembers. */
#define MMIO_COMPANY_CALLERS 16
#define MMIO_COMPANY_BATCHES 8
/* A caller counts as recent for the window, but at least this many
 * average sync times. */
#define MMIO_COMPANY_HORIZON_SYNCS 4

/* What the delayed-sync loop knows about its callers; guarded by mu. */
struct mmio_company {
    struct {
        pthread_t tid;
        uint64_t last_ns;       /* its latest mmio_sync_delayed call */
    } callers[MMIO_COMPANY_CALLERS];
    unsigned n_callers;         /* entries in use */
    uint64_t batch_callers[MMIO_COMPANY_BATCHES]; /* callers served by recent loop syncs */
    unsigned batch_pos;         /* next slot of batch_callers to overwrite */
    uint64_t avg_sync_ns;       /* moving average of a loop sync's duration */
};

struct mmio {
    int fd;
    uint64_t size;              /* usable bytes: [0, size) */
    unsigned char *map;         /* shared mapping of [0, size); NULL for PREAD */
    enum mmio_backend backend;
    int direct;                 /* opened with O_DIRECT */
    int regular;                /* a regular file (not a block device) */
    int read_only;              /* mmio_config.read_only: never writes */
    int discard_unsupported;    /* mmio_discard got EOPNOTSUPP (atomic, sticky) */
    uint64_t sync_delay_us;

    /* Sticky sync failure (0 or 1), accessed with __atomic builtins. Once
     * set, every sync/sync_delayed/write returns -EIO until close. */
    int failed;

    /* Serialises flushes (msync/fdatasync) so that a failure is recorded
     * before any later flush may start. */
    pthread_mutex_t flush_mu;

    /* Is anything unsynced? (__atomic builtins) changes counts the writes
     * and discards that may have changed the file, each bumped once its
     * bytes are in the page cache (or its attempt failed); synced is the
     * value of changes read at the start of the latest successful flush.
     * changes == synced: every change that completed before the test is
     * durable (mmio_unsynced returns 0). raw_writer: a
     * writable pointer was handed out (mmio_mut_ptr), whose stores the
     * engine cannot count: always unsynced from then on. */
    uint64_t changes, synced;
    int raw_writer;

    /* Delayed-sync (group commit) state, guarded by mu. Generations count
     * the loop's syncs: gen_started is the number of syncs begun,
     * gen_done the number completed (in order), gen_wanted the highest
     * generation any caller waits for. gen_failed is the first
     * generation whose sync failed (0: none). */
    pthread_mutex_t mu;
    pthread_cond_t loop_cv;     /* wakes the loop: new request or stop */
    pthread_cond_t done_cv;     /* wakes callers: a generation completed */
    uint64_t gen_started, gen_done, gen_wanted, gen_failed;
    uint64_t batch_first_ns;    /* arrival of the first request of the forming batch */
    uint64_t batch_last_ns;     /* arrival of the latest one */
    uint64_t batch_n;           /* requests in the forming batch */
    int company_wait;           /* the loop waits for more callers: wake it on each */
    struct mmio_company company;
    int stop;                   /* mmio_close asks the loop to exit */
    int loop_running;
    pthread_t loop;

    /* Totals since open, updated and read with relaxed __atomic builtins. */
    struct mmio_metrics m;
};

/* ---- mmio.c ----------------------------------------------------------- */

/* Monotonic clock in nanoseconds. */
uint64_t mmio_now_ns(void);

/* Counts a change of the file (a write or a discard, even one that
 * failed part way) once its bytes are in the page cache: mmio_unsynced
 * is 1 until a flush that began after it has succeeded. */
void mmio_note_change(struct mmio *io);

/* Nonzero if [off, off+len) lies within [0, io->size); overflow-safe. */
int mmio_range_ok(const struct mmio *io, uint64_t off, size_t len);

/* Relaxed atomic add to one metrics counter. */
void mmio_metric_add(uint64_t *counter, uint64_t v);

/* ---- mmio_pio.c (PREAD backend) ---------------------------------------- */

/* Reads exactly len bytes at off with pread, looping on short reads and
 * EINTR. End of file before len bytes (file truncated under the engine)
 * is -EIO; other failures are -errno. With O_DIRECT an unaligned buf is
 * read through an aligned bounce buffer (-ENOMEM if that fails). */
int mmio_pio_read(struct mmio *io, uint64_t off, void *buf, size_t len);

/* Writes exactly len bytes at off with pwrite; same rules as above. */
int mmio_pio_write(struct mmio *io, uint64_t off, const void *buf, size_t len);

/* ---- mmio_sync.c ------------------------------------------------------ */

/* Initialises the delayed-sync state and starts the loop thread (with all
 * signals blocked in it). 0 or -errno; on error nothing is left to undo. */
int mmio_loop_start(struct mmio *io);

/* Serves every pending request, stops and joins the loop thread and
 * destroys the delayed-sync state. Safe if mmio_loop_start failed. */
void mmio_loop_stop(struct mmio *io);

/* One flush of everything written so far (see mmio_sync). Marks the
 * engine failed on error. 0, the failing call's -errno, or -EIO once
 * failed. */
int mmio_flush(struct mmio *io);

/* ---- mmio_company.c (all with mu held) -------------------------------- */

/* Records that the calling thread requests a delayed sync at now_ns. */
void mmio_company_note_caller(struct mmio *io, uint64_t now_ns);

/* How many callers a batch forming at now_ns, with pending callers so
 * far, may expect. Company needs evidence that callers overlap: pending
 * >= 2, or one of the last MMIO_COMPANY_BATCHES loop syncs served >= 2
 * callers (threads that take turns, never overlapping, are no company).
 * With that evidence: the number of distinct threads that called within
 * the last window, or the last MMIO_COMPANY_HORIZON_SYNCS average syncs
 * if that is longer (at most MMIO_COMPANY_CALLERS). Without it: 0 or 1. */
uint64_t mmio_company_expected(const struct mmio *io, uint64_t now_ns,
                               uint64_t pending);

/* The longest the loop may wait for company, in ns: the smaller of the
 * window and the average loop sync duration (0 before the first sync). */
uint64_t mmio_company_wait_ns(const struct mmio *io);

/* Records a loop sync that served callers requests and took sync_ns. */
void mmio_company_note_sync(struct mmio *io, uint64_t callers, uint64_t sync_ns);

/* ---- mmio_sigbus.c ---------------------------------------------------- */

/* Installs the process-wide SIGBUS handler unless it is already the
 * current one; the handler found is remembered and chained to for faults
 * that are not the engine's. Called by every mmio_open of the MMAP
 * backend, so a handler replaced in between (e.g. by a test framework
 * that saves and restores handlers) is put back. 0 or -errno. */
int mmio_sigbus_install(void);

/* memcpy(dst, src, len) that returns -EIO instead of dying if it takes a
 * SIGBUS at an address inside [range, range + range_len) (the mapping).
 * Faults elsewhere are passed to the previous handler. 0 or -EIO. */
int mmio_guarded_copy(void *dst, const void *src, size_t len,
                      const void *range, size_t range_len);

/* ---- mmio_merge.c ----------------------------------------------------- */

/* Result of mmio_merge_writes. w[i].data points either into one of the
 * caller's input buffers (a write that overlaps nothing) or into arena. */
struct mmio_merged {
    struct mmio_write *w;       /* sorted by off; no two overlap or touch */
    size_t n;
    unsigned char *arena;       /* owned; freed by mmio_merged_free */
};

/* Merges n writes, meant to be applied in order (later ones win where
 * they overlap), into the minimal equivalent set: sorted by offset, no two
 * overlapping or adjacent, zero-length writes dropped. Input buffers must
 * stay valid while *out is used. 0, -EINVAL (NULL data with len > 0),
 * -ERANGE (off + len overflows) or -ENOMEM. */
int mmio_merge_writes(const struct mmio_write *in, size_t n,
                      struct mmio_merged *out);

/* Frees what mmio_merge_writes allocated; safe on a zeroed struct. */
void mmio_merged_free(struct mmio_merged *m);

/* ---- mmio_sync.c: the delayed-sync loop's progress --------------------- */

/* Number of delayed-loop syncs started / completed so far. */
uint64_t mmio_loop_gen_started(struct mmio *io);
uint64_t mmio_loop_gen_done(struct mmio *io);

#endif
