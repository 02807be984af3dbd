/*
 * crash_points.h — the unit tests' observer of the journal's commit
 * protocol (src/io/observe.h, docs/CRASH.md "Observing the layers"): cut
 * the power at one point of one transaction's commit, or hold the commit
 * thread after a transaction closed. Process-wide, one setting at a time.
 */
#ifndef MMAPFS_TESTS_CRASH_POINTS_H
#define MMAPFS_TESTS_CRASH_POINTS_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>

#include "io/observe.h"

/* The points a commit can stop at, in protocol order. */
enum jnl_crash_point {
    JNL_CRASH_NONE = 0,
    JNL_CRASH_AFTER_LOG = MMIO_AT_JNL_AFTER_LOG,
    JNL_CRASH_AFTER_COMMIT_BLOCK = MMIO_AT_JNL_AFTER_COMMIT_BLOCK,
    JNL_CRASH_AFTER_SYNC = MMIO_AT_JNL_AFTER_SYNC,
    JNL_CRASH_MID_CHECKPOINT = MMIO_AT_JNL_MID_CHECKPOINT,
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    enum jnl_crash_point point;     /* cut here ... */
    uint64_t seq;                   /* ... in the commit of this transaction */
    uint64_t pause_seq;             /* hold the commit of this one */
    int paused;
} cp = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0 };

static int cp_at(void *ctx, struct mmio *io, enum mmio_point point, uint64_t a, uint64_t b)
{
    int cut = 0;
    (void)ctx, (void)io, (void)b;
    pthread_mutex_lock(&cp.mu);
    if (point == MMIO_AT_JNL_CLOSED && a && a == cp.pause_seq) {
        cp.paused = 1;
        pthread_cond_broadcast(&cp.cv);
        while (cp.paused)
            pthread_cond_wait(&cp.cv, &cp.mu);
    }
    if (cp.point && (int)point == (int)cp.point && a == cp.seq) {
        cut = 1;
        cp.point = JNL_CRASH_NONE;  /* once: a later journal may reuse seq */
    }
    pthread_mutex_unlock(&cp.mu);
    return cut ? -EIO : 0;
}

static const struct mmio_observer cp_observer = { .at = cp_at };

/* When the commit of transaction seq reaches point, it stops there as if
 * the power had been cut: nothing more is written, the journal fails -EIO
 * (the test then drops it with jnl_abandon or fs_abandon and recovers). */
static inline void crash_at(uint64_t seq, enum jnl_crash_point point)
{
    mmio_set_observer(&cp_observer);
    pthread_mutex_lock(&cp.mu);
    cp.seq = seq;
    cp.point = point;
    pthread_mutex_unlock(&cp.mu);
}

/* When transaction seq has been closed and written to the log, the commit
 * thread waits (journal lock released) until resume_commit. */
static inline void pause_after_close(uint64_t seq)
{
    mmio_set_observer(&cp_observer);
    pthread_mutex_lock(&cp.mu);
    cp.pause_seq = seq;
    pthread_mutex_unlock(&cp.mu);
}

/* Waits until the commit thread is held there. */
static inline void wait_paused(void)
{
    pthread_mutex_lock(&cp.mu);
    while (!cp.paused)
        pthread_cond_wait(&cp.cv, &cp.mu);
    pthread_mutex_unlock(&cp.mu);
}

static inline void resume_commit(void)
{
    pthread_mutex_lock(&cp.mu);
    cp.paused = 0;
    cp.pause_seq = 0;
    pthread_cond_broadcast(&cp.cv);
    pthread_mutex_unlock(&cp.mu);
}

#endif
