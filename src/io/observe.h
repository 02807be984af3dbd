/*
 * observe.h — the one observation interface of mmapfs (docs/CRASH.md,
 * "Observing the layers").
 *
 * A process-wide observer sees the engine's opens, writes, flushes and
 * closes, and the named points of the layers above it (the journal's
 * commit protocol, the checker's repair writes). At a flush or a named
 * point it may answer with an error, which the caller then treats as a
 * power cut or a failed device at that point. The crash recorder
 * (tests/crash/recorder.c) and the unit tests install observers; the
 * shipped programs never do, so every hook costs one pointer load.
 *
 * The engine owns this interface and knows nothing of the layers above:
 * it passes their points through (mmio_observe_at) without reading them.
 */
#ifndef MMAPFS_IO_OBSERVE_H
#define MMAPFS_IO_OBSERVE_H

#include <stddef.h>
#include <stdint.h>

#include "mmapfs/mmio.h"

/* Named points of the layers above the engine, with their arguments a, b. */
enum mmio_point {
    /* journal (src/journal/commit.c), a = the transaction's seq; the
     * four points where a commit can be cut come first, in protocol order */
    MMIO_AT_JNL_AFTER_LOG = 1,    /* descriptors + images written (and a
                                   * lazy header), no commit block, no sync */
    MMIO_AT_JNL_AFTER_COMMIT_BLOCK, /* commit block written, no final sync */
    MMIO_AT_JNL_AFTER_SYNC,       /* durable, nothing checkpointed */
    MMIO_AT_JNL_MID_CHECKPOINT,   /* durable, half of the home blocks written */
    MMIO_AT_JNL_CLOSED,           /* closed and written to the log, before
                                   * the points above; the journal lock is
                                   * not held: the observer may block here
                                   * (the commit waits); its answer is
                                   * ignored */
    /* checker (src/fsck/io.c) */
    MMIO_AT_FSCK_WRITE,           /* before a repair write: a = offset,
                                   * b = length */
    MMIO_AT_FSCK_SYNC,            /* before a repair sync */
    /* offline grow (mmapfs-resize, src/tools/resize.c) */
    MMIO_AT_GROW_STEP,            /* a = the enum fs_grow_step just done */
};

/*
 * The callbacks; any may be NULL. ctx is passed back to each.
 *
 * opened: at the end of a successful mmio_open. closing: at the start of
 * mmio_close, after the delayed-sync loop stopped and the final flush was
 * done. wrote: after every successful mmio_write_at (also those of
 * mmio_write_delayed_sync) of len > 0 bytes at off, in the writing thread,
 * concurrently with other calls; stores through mmio_mut_ptr are not seen.
 *
 * before_sync / after_sync: around every flush that actually syncs
 * (mmio_sync, the delayed-sync loop, mmio_close; not one refused because
 * of a sticky failure), both under the engine's flush lock, so calls for
 * one engine never overlap. before_sync runs inside the timed part of the
 * flush (time spent there counts as sync time: a slow disk); returning a
 * negative errno makes the flush fail with it without syncing, as a failed
 * writeback would (the failure is sticky). after_sync gets the flush's
 * result. Writes through the mapping may go on in other threads meanwhile
 * (as they do while the kernel writes the pages back).
 *
 * at: a named point of a layer above (enum mmio_point), in the thread that
 * reaches it. 0 lets the caller go on; a negative errno makes it stop
 * there as after a power cut (the journal fails with -EIO and writes
 * nothing more; the checker's write or sync fails with the error).
 */
struct mmio_observer {
    void (*opened)(void *ctx, struct mmio *io);
    int  (*before_sync)(void *ctx, struct mmio *io);
    void (*after_sync)(void *ctx, struct mmio *io, int err);
    void (*closing)(void *ctx, struct mmio *io);
    void (*wrote)(void *ctx, struct mmio *io, uint64_t off, size_t len);
    int  (*at)(void *ctx, struct mmio *io, enum mmio_point point,
               uint64_t a, uint64_t b);
    void *ctx;
};

/* Installs o (NULL removes it); o must stay valid while installed. A
 * program installs it before it opens engines; a test may swap it between
 * cases while no engine is in use. */
void mmio_set_observer(const struct mmio_observer *o);

/* The installed observer, or NULL (an acquire load). */
const struct mmio_observer *mmio_observer_get(void);

/* Calls the observer's at for point (0 without one). */
int mmio_observe_at(struct mmio *io, enum mmio_point point, uint64_t a, uint64_t b);

#endif
