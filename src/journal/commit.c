/*
 * commit.c — the commit thread and the commit protocol, checkpoint, the
 * lazy journal header, group commit waits and the data-only sync.
 *
 * One commit at a time (docs/JOURNAL.md has the why):
 *  1. lock: close the running transaction T, place it in the log (never
 *     over a transaction the durable header may still need), write its
 *     descriptors and images (this freezes T), start T+1; unlock
 *  2. only if T makes new file data reachable (jnl_note_new_data): sync,
 *     so that the data is durable before T's commit block can be
 *  3. write T's commit block (its CRC covers every log block of T)
 *  4. sync: T is durable. One sync per commit unless step 2 ran. Before
 *     this sync of an ordered T, a due T+1 is closed (step 1) too, so its
 *     data and log ride it and T+1 skips its step 2 (pipelining).
 *  5. lock: checkpoint T's images to their home blocks, durable_seq = T,
 *     durable callback, wake the waiters; unlock
 * The journal header is never written with a sync of its own: right before
 * each sync it is moved (lazily) to the newest transaction all of whose
 * predecessors have durable checkpoints, and rides that sync.
 * A failed write or sync is fatal and sticky (-EIO).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/observe.h"
#include "journal/journal_i.h"
#include "util/crc32c.h"

uint64_t jnl_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void jnl_fail_locked(struct jnl *j)
{
    if (!atomic_load(&j->error))
        atomic_store(&j->error, -EIO);
    pthread_cond_broadcast(&j->done_cv);
    pthread_cond_broadcast(&j->space_cv);
    pthread_cond_broadcast(&j->commit_cv);
}

/* ---- the log window and the lazy header ---------------------------------------- */

static struct jnl_live_txn *live_at(struct jnl *j, uint32_t i)
{
    return &j->live[(j->live_first + i) % JNL_LIVE_MAX];
}

/* Log index where transaction seq starts: a live transaction's own start,
 * else log_head (seq is the next one to be placed). */
static uint64_t live_start_of(struct jnl *j, uint64_t seq)
{
    for (uint32_t i = 0; i < j->live_count; i++)
        if (live_at(j, i)->seq == seq)
            return live_at(j, i)->start;
    return j->log_head;
}

/* After a numbered sync: the checkpoint and the header written before it
 * are durable; transactions before the durable header leave the window. */
static void window_update(struct jnl *j)
{
    uint64_t done = atomic_load(&j->sync_completed);
    if (done >= j->ckpt_durable_after)
        j->ckpt_durable_seq = j->ckpt_seq;
    if (done >= j->head_durable_after)
        j->tail_seq = j->head.seq;
    while (j->live_count && j->live[j->live_first].seq < j->tail_seq) {
        j->live_first = (j->live_first + 1) % JNL_LIVE_MAX;
        j->live_count--;
    }
}

/* The lazy header, written right before a numbered sync (and by the crash
 * hooks): it may name transaction S once the checkpoints of every
 * transaction before S are durable, since a header the kernel writes back
 * early must already be true. At most one header write is not yet durable,
 * so the durable header names either head.seq or tail_seq. */
static int head_advance(struct jnl *j)
{
    uint64_t target = j->ckpt_durable_seq + 1;
    if (target <= j->head.seq || atomic_load(&j->sync_completed) < j->head_durable_after)
        return 0;
    int err = jnl_head_write(j->io, &j->geo, &j->head, target, live_start_of(j, target),
                             j->scratch);
    if (err)
        return err;
    j->head_durable_after = atomic_load(&j->sync_started) + 1;
    atomic_fetch_add(&j->ctr.header_writes, 1);
    return 0;
}

/* A full engine sync, numbered so that jnl_commit_wait can tell whether a
 * sync began after it was called, with the lazy header riding it. It goes
 * through the engine's delayed sync, which returns once a sync that began
 * after this call completed: so the number is taken before it, and the
 * engine's batching window (mount option sync_delay=) lets commits and
 * data-only syncs from other callers share device syncs. With the default
 * window of 0 a lone commit pays one sync (two when ordered), no added
 * delay. */
static int commit_sync(struct jnl *j)
{
    int err = head_advance(j);
    if (err)
        return err;
    uint64_t n = atomic_fetch_add(&j->sync_started, 1) + 1;
    err = mmio_sync_delayed(j->io);
    if (!err) {
        atomic_store(&j->sync_completed, n);
        window_update(j);
    }
    return err;
}

/* Where a transaction of size log blocks goes: right after the previous
 * one if it fits before the end of the log, else at index 0. -EAGAIN if
 * that would overwrite a live transaction (the window [first live start,
 * log_head), circular) or the ring is full. */
static int log_place(struct jnl *j, uint64_t size, uint64_t *out)
{
    uint64_t pos = j->log_head;
    if (pos > j->log_blocks || size > j->log_blocks - pos)
        pos = 0;
    if (j->live_count == JNL_LIVE_MAX)
        return -EAGAIN;
    if (j->live_count) {
        uint64_t lo = live_at(j, 0)->start, hi = j->log_head;
        int overlap = lo < hi ? pos < hi && lo < pos + size
                              : pos < hi || lo < pos + size;
        if (overlap)
            return -EAGAIN;
    }
    *out = pos;
    return 0;
}

/* ---- the commit steps ---------------------------------------------------------- */

/* Step 1's log blocks, in log order, gathered in j->stage and written a
 * run at a time: a transaction's descriptors and images are contiguous in
 * the log, so one engine write (one pwrite and one size check) carries up
 * to JNL_STAGE_BLOCKS of them instead of one each (about 5 us per block
 * saved on the commit path). */
struct stage {
    struct jnl *j;
    uint64_t first;         /* log index of stage block 0 */
    uint64_t count;         /* blocks staged */
};

/* Writes the staged blocks out and empties the stage. */
static int stage_flush(struct stage *st)
{
    if (!st->count)
        return 0;
    int err = mmio_write_at(st->j->io, jnl_log_off(&st->j->geo, st->first),
                            st->j->stage, st->count * JNL_BS);
    if (!err) {
        st->first += st->count;
        st->count = 0;
    }
    return err;
}

/* The next free block of the stage (written out first if full). */
static int stage_next(struct stage *st, uint8_t **blk)
{
    int err = st->count == JNL_STAGE_BLOCKS ? stage_flush(st) : 0;
    if (!err)
        *blk = (uint8_t *)st->j->stage + st->count++ * JNL_BS;
    return err;
}

/* Step 1 (lock held): places the running transaction in the log, writes
 * its descriptors and images, and makes it the closed transaction t (with
 * the CRC-32C over the written blocks). Nothing changes on -EAGAIN (no
 * room in the log). */
static int close_txn(struct jnl *j, struct jnl_closed *t)
{
    struct jnl_sum sum = { 0, 0 };
    uint64_t n = j->running_count + j->running_data_count;
    uint64_t size = jnl_txn_log_blocks(n);
    uint64_t seq = atomic_load(&j->running_seq);
    uint64_t pos;
    int err = log_place(j, size, &pos);
    if (err)
        return err;
    if (pos != j->log_head)
        atomic_fetch_add(&j->ctr.wraps, 1);

    struct stage st = { .j = j, .first = pos, .count = 0 };
    uint8_t *blk;
    for (uint64_t i = 0; i < n && !err; i++) {
        if (i % MMAPFS_JNL_DESC_MAX == 0) {
            uint64_t count = n - i < MMAPFS_JNL_DESC_MAX ? n - i : MMAPFS_JNL_DESC_MAX;
            err = stage_next(&st, &blk);
            if (err)
                break;
            struct mmapfs_disk_jnl_desc *d = (struct mmapfs_disk_jnl_desc *)blk;
            memset(d, 0, JNL_BS);
            d->magic = MMAPFS_JNL_DESC_MAGIC;
            d->count = (uint32_t)count;
            d->seq = seq;
            for (uint64_t k = 0; k < count; k++)
                d->home[k] = jnl_running_home(j, i + k);
            jnl_sum_add(&sum, d);
        }
        err = stage_next(&st, &blk);
        if (!err)
            err = jnl_running_image_copy(j, i, blk);
        if (!err)
            jnl_sum_add(&sum, blk);
    }
    if (!err)
        err = stage_flush(&st);
    if (err)
        return err;

    for (uint64_t i = 0; i < n; i++)
        t->blks[i] = jnl_running_home(j, i);
    for (uint64_t i = 0; i < j->running_count; i++) {
        struct jnl_shadow *s = j->running[i];
        s->in_commit++;
        s->running_idx = JNL_NOT_RUNNING;
    }
    t->count = n;
    t->meta_count = j->running_count;
    t->head_past = j->running_head_past;
    jnl_datalog_close(j);
    j->waiters_hist[j->waiters_pos++ % JNL_BATCH_HIST] = j->running_waiters;
    j->running_waiters = 0;
    if (j->batch_held)
        atomic_fetch_add(&j->ctr.batched_commits, 1);
    j->batch_held = 0;
    t->seq = seq;
    t->pos = pos;
    t->sum = sum;
    t->new_data = j->running_new_data;
    t->pre_synced = 0;
    j->running_new_data = 0;
    j->running_count = 0;
    *live_at(j, j->live_count++) = (struct jnl_live_txn){ seq, pos, pos + size };
    j->log_head = pos + size;
    atomic_store(&j->running_seq, seq + 1);
    pthread_cond_broadcast(&j->space_cv);
    return 0;
}

/* Step 3: the commit block of closed transaction t. */
static int write_commit_block(struct jnl *j, const struct jnl_closed *t)
{
    struct mmapfs_disk_jnl_commit *c = j->scratch;
    uint64_t nblocks = jnl_txn_log_blocks(t->count) - 1;
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    memset(c, 0, JNL_BS);
    c->magic = MMAPFS_JNL_COMMIT_MAGIC;
    c->data_checksum = t->sum.crc;
    c->flags = MMAPFS_JNL_COMMIT_HASH;
    c->data_hash = t->sum.hash;
    c->seq = t->seq;
    c->nblocks = nblocks;
    c->commit_sec = (uint64_t)now.tv_sec;
    c->commit_nsec = (uint32_t)now.tv_nsec;
    c->checksum = mfs_crc32c(0, c, offsetof(struct mmapfs_disk_jnl_commit, checksum));
    return mmio_write_at(j->io, jnl_log_off(&j->geo, t->pos + nblocks), c, JNL_BS);
}

/* Step 5 (lock held): writes the first 'limit' metadata images of t home
 * (limit < meta_count only for the crash hook; data images are home
 * already), from the shadow when it still holds t's
 * image, else from the log, and drops shadows that neither the running
 * transaction nor another closed one uses. */
static int checkpoint(struct jnl *j, const struct jnl_closed *t, uint64_t limit)
{
    uint64_t i;
    int err = 0;

    for (i = 0; i < t->meta_count && i < limit; i++) {
        uint64_t blk = t->blks[i];
        struct jnl_shadow *s = jnl_map_find(&j->map, blk);
        const void *src = j->scratch;

        if (s && s->dirty_seq == t->seq)
            src = s->data;
        else
            err = mmio_read_once(j->io, jnl_log_off(&j->geo, jnl_image_idx(t->pos, i)),
                                 j->scratch, JNL_BS);
        if (!err)   /* durable in the log: nobody's fsync waits for it */
            err = mmio_write_lazy(j->io, blk * JNL_BS, src, JNL_BS);
        if (err)
            break;
        if (s) {
            s->in_commit--;
            if (!s->in_commit && s->running_idx == JNL_NOT_RUNNING)
                jnl_shadow_drop(j, s);
        }
    }
    atomic_fetch_add(&j->ctr.checkpoint_blocks, i);
    if (!err && i < t->meta_count)
        err = -EIO;     /* stopped by the crash hook */
    return err;
}

/* Closes the running transaction into t (step 1). When the live window
 * leaves no room for it, first catches the header up with syncs of its own
 * (at most three: checkpoint durable, header past the newest, a spare). */
static int close_with_room(struct jnl *j, struct jnl_closed *t)
{
    int err = close_txn(j, t);
    for (int tries = 0; err == -EAGAIN && tries < 3; tries++) {
        pthread_mutex_unlock(&j->mu);
        err = commit_sync(j);
        pthread_mutex_lock(&j->mu);
        atomic_fetch_add(&j->ctr.log_full_syncs, 1);
        if (!err)
            err = close_txn(j, t);
    }
    return err == -EAGAIN ? -EIO : err;
}

static int commit_due(struct jnl *j);

/* Pipelining, before the final sync of an ordered commit: if the running
 * transaction is due, close it now (lock taken here), so that its file
 * data and log blocks ride that sync and it needs no sync of its own
 * before its commit block. Never waits for anybody: only a transaction
 * that is due anyway. Returns 1 if closed, 0 if not, or an error. */
static int close_next_early(struct jnl *j)
{
    struct jnl_closed *next = &j->closed[j->cur ^ 1];
    int err = 0, closed = 0;

    pthread_mutex_lock(&j->mu);
    if (commit_due(j)) {
        err = close_txn(j, next);       /* -EAGAIN: no room, close it later */
        closed = !err;
    }
    pthread_mutex_unlock(&j->mu);
    return err == -EAGAIN ? 0 : err ? err : closed;
}

/* An observer (io/observe.h) cuts the power at point of transaction seq:
 * the commit stops there and the journal fails with -EIO. */
static int cut_at(struct jnl *j, enum mmio_point point, uint64_t seq)
{
    return mmio_observe_at(j->io, point, seq, 0) != 0;
}

/* One whole commit: of the transaction closed early by the previous commit
 * (next_ready), else of the running transaction (not empty). Called and
 * returns with the lock held; drops it for steps 2-4. */
static int commit_one(struct jnl *j)
{
    uint64_t t0 = jnl_now_ns();
    struct jnl_closed *t = &j->closed[j->cur];
    int err = 0, early = 0;

    if (j->next_ready)
        j->next_ready = 0;
    else if ((err = close_with_room(j, t)) != 0)
        return err;
    uint64_t seq = t->seq, count = t->count;
    int ordered = t->new_data;
    pthread_mutex_unlock(&j->mu);
    (void)mmio_observe_at(j->io, MMIO_AT_JNL_CLOSED, seq, 0);

    uint64_t syncs = 0;
    if (cut_at(j, MMIO_AT_JNL_AFTER_LOG, seq)) {
        head_advance(j);
        err = -EIO;
    } else if (ordered && !t->pre_synced) {
        /* new file data durable (with the log) before the commit block */
        err = commit_sync(j);
        syncs++;
    }
    if (!err && t->head_past) {
        /* a block overwritten in place still has an image in transaction
         * head_past, which replay must not reach once T is durable */
        uint64_t n0 = syncs;
        for (int tries = 0; !err && j->tail_seq <= t->head_past && tries < 3; tries++) {
            err = commit_sync(j);
            syncs++;
        }
        if (!err && j->tail_seq <= t->head_past)
            err = -EIO;
        atomic_fetch_add(&j->ctr.head_past_syncs, syncs - n0);
    }
    if (!err)
        err = write_commit_block(j, t);
    if (!err && cut_at(j, MMIO_AT_JNL_AFTER_COMMIT_BLOCK, seq)) {
        head_advance(j);
        err = -EIO;
    }
    if (!err && ordered) {
        early = close_next_early(j);
        if (early < 0)
            err = early;
    }
    if (!err) {
        err = commit_sync(j);
        syncs++;
    }
    /* An ordered commit leaves the header at itself, or at the transaction
     * before it when pipelined (the freed-block reuse argument of
     * docs/JOURNAL.md, invariant 4, relies on it). */
    if (!err && ordered && j->head.seq + 1 < seq)
        err = -EIO;
    int cut_sync = !err && cut_at(j, MMIO_AT_JNL_AFTER_SYNC, seq);
    int cut_ckpt = !err && !cut_sync && cut_at(j, MMIO_AT_JNL_MID_CHECKPOINT, seq);

    pthread_mutex_lock(&j->mu);
    atomic_fetch_add(&j->ctr.commit_syncs, syncs);
    if (early > 0 && !err) {
        /* the next transaction closed before this sync began */
        j->closed[j->cur ^ 1].pre_synced = 1;
        atomic_fetch_add(&j->ctr.pipelined_commits, 1);
    }
    if (err || cut_sync)
        return -EIO;
    atomic_store(&j->durable_seq, seq);
    j->commits_since_open++;
    err = checkpoint(j, t, cut_ckpt ? t->meta_count / 2 : UINT64_MAX);
    if (err)
        return -EIO;
    /* the home writes become durable with the next numbered sync */
    j->ckpt_seq = seq;
    j->ckpt_durable_after = atomic_load(&j->sync_started) + 1;
    jnl_datalog_prune(j);
    if (early > 0) {
        j->cur ^= 1;
        j->next_ready = 1;
    }
    if (j->durable_fn)
        j->durable_fn(j->durable_ctx, seq);
    atomic_fetch_add(&j->ctr.commits, 1);
    atomic_fetch_add(&j->ctr.ordered_commits, ordered != 0);
    atomic_fetch_add(&j->ctr.commit_blocks, count);
    uint64_t took = jnl_now_ns() - t0;
    atomic_fetch_add(&j->ctr.commit_us, took / 1000);
    j->avg_commit_ns = j->avg_commit_ns ? (j->avg_commit_ns * 7 + took) / 8 : took;
    pthread_cond_broadcast(&j->done_cv);
    return 0;
}

/* ---- asynchronous waiters --------------------------------------------------------- */

static uint64_t commit_when(const struct jnl *j, int *held);

/* Is waiter w satisfied (0), still waiting for a commit (1), or only for a
 * data sync that began after its call (2)? Lock held. */
static int async_state(const struct jnl *j, const struct jnl_async *w)
{
    if (w->seq > atomic_load(&j->durable_seq))
        return 1;
    return atomic_load(&j->sync_completed) > w->s0 ? 0 : 2;
}

/* Does some waiter need a data-only sync? Lock held. */
static int async_need_sync(const struct jnl *j)
{
    for (const struct jnl_async *w = j->async_head; w; w = w->next)
        if (async_state(j, w) == 2)
            return 1;
    return 0;
}

/* Calls done() for every satisfied waiter (all of them, with the error,
 * after a failure), dropping the lock around the calls. Lock held. */
static void async_complete(struct jnl *j)
{
    int err = atomic_load(&j->error);
    struct jnl_async *ready = NULL, **ready_tail = &ready, **pp = &j->async_head;

    while (*pp) {
        struct jnl_async *w = *pp;
        if (err || async_state(j, w) == 0) {
            *pp = w->next;
            w->next = NULL;
            *ready_tail = w;
            ready_tail = &w->next;
        } else {
            pp = &w->next;
        }
    }
    j->async_tail = pp;
    if (!ready)
        return;
    pthread_mutex_unlock(&j->mu);
    while (ready) {
        struct jnl_async *w = ready;
        ready = w->next;
        w->done(w->ctx, err);
        free(w);
    }
    pthread_mutex_lock(&j->mu);
}

void jnl_commit_async(struct jnl *j, uint64_t seq, jnl_done_fn done, void *ctx)
{
    if (j->read_only) {
        done(ctx, 0);
        return;
    }
    struct jnl_async *w = malloc(sizeof(*w));
    atomic_fetch_add(&j->ctr.commit_waits, 1);
    pthread_mutex_lock(&j->mu);
    int err = atomic_load(&j->error);
    if (!w || err || !j->thread_started || j->shutdown) {
        pthread_mutex_unlock(&j->mu);
        free(w);
        done(ctx, err ? err : jnl_commit_wait(j, seq));   /* no commit thread: wait here */
        return;
    }
    uint64_t running = atomic_load(&j->running_seq);
    if (seq >= running)
        seq = jnl_last_seq(j);      /* running empty: nothing to commit, data only */
    *w = (struct jnl_async){ .seq = seq, .s0 = atomic_load(&j->sync_started),
                             .done = done, .ctx = ctx };
    if (seq == running)
        j->running_waiters++;
    *j->async_tail = w;
    j->async_tail = &w->next;
    if (seq > atomic_load(&j->durable_seq) && j->requested_seq < seq)
        j->requested_seq = seq;
    /* Wake the commit thread only if this caller brings its next look
     * forward: a data sync it must start, the first request for the
     * running transaction, or the caller that completes the company a
     * held commit waits for. Most of a group's callers change nothing
     * the sleeping thread would act on, and each wake-up is two context
     * switches. An awake thread (0) looks again before it sleeps. */
    int held = 0;
    uint64_t at = async_state(j, w) == 2 ? 0 : commit_when(j, &held);
    if (at < j->commit_asleep_until)
        pthread_cond_signal(&j->commit_cv);
    pthread_mutex_unlock(&j->mu);
}

/* ---- the commit thread ---------------------------------------------------------- */

/* Longest a commit waits for company. */
#define BATCH_MAX_NS 10000000u

/* Waiting for company, as jbd2 does for synchronous handles: when recent
 * commits each had several fsync callers, a commit asked for by fewer
 * callers than that waits until they are all back, or until the running
 * transaction is as old as an average commit (at most BATCH_MAX_NS). The
 * callers woken by the previous commit then join this one instead of
 * forming a group of their own: fewer, fuller commits. A lone caller (no
 * recent commit had two) never waits. Returns when the wait ends, or 0
 * for no wait. Lock held. */
static uint64_t batch_deadline(const struct jnl *j)
{
    uint32_t peak = 0;
    for (uint32_t i = 0; i < JNL_BATCH_HIST; i++)
        if (j->waiters_hist[i] > peak)
            peak = j->waiters_hist[i];
    if (peak < 2 || j->running_waiters >= peak || j->running_waiters == 0)
        return 0;
    uint64_t wait = j->avg_commit_ns < BATCH_MAX_NS ? j->avg_commit_ns : BATCH_MAX_NS;
    return j->running_since_ns + wait;
}

/* When the running transaction's commit is due: now (0), or a time
 * (monotonic ns), or UINT64_MAX when nothing is to commit. *held is set
 * when the time is a wait for company. Lock held. */
static uint64_t commit_when(const struct jnl *j, int *held)
{
    if (jnl_running_empty(j))
        return UINT64_MAX;
    if (j->shutdown || j->throttled || j->running_count >= j->soft_limit)
        return 0;
    if (j->requested_seq >= atomic_load(&j->running_seq)) {
        uint64_t at = batch_deadline(j);
        if (at > jnl_now_ns()) {
            *held = 1;
            return at;
        }
        return 0;
    }
    return j->running_since_ns + j->commit_interval_ns;
}

/* Should the running transaction be committed now? Lock held. */
static int commit_due(struct jnl *j)
{
    uint64_t at = commit_when(j, &j->batch_held);
    return at == 0 || (at != UINT64_MAX && at <= jnl_now_ns());
}

/* Sleeps until signalled, or until the running transaction's periodic
 * commit is due. While it sleeps, commit_asleep_until tells callers when
 * it will look again, so that they wake it only when they bring that time
 * forward (jnl_commit_async). Lock held. */
static void wait_for_work(struct jnl *j)
{
    uint64_t deadline = commit_when(j, &j->batch_held);
    j->commit_asleep_until = deadline;
    if (deadline == UINT64_MAX) {
        pthread_cond_wait(&j->commit_cv, &j->mu);
    } else {
        struct timespec ts = { .tv_sec = (time_t)(deadline / 1000000000u),
                               .tv_nsec = (long)(deadline % 1000000000u) };
        pthread_cond_timedwait(&j->commit_cv, &j->mu, &ts);
    }
    j->commit_asleep_until = 0;
}

void *jnl_commit_main(void *arg)
{
    struct jnl *j = arg;

    pthread_mutex_lock(&j->mu);
    while (!atomic_load(&j->error)) {
        if (j->next_ready || commit_due(j)) {
            if (commit_one(j))
                jnl_fail_locked(j);
            async_complete(j);
            continue;
        }
        if (async_need_sync(j)) {
            /* fsync callers whose metadata is durable: one data sync for all */
            pthread_mutex_unlock(&j->mu);
            int err = commit_sync(j);
            pthread_mutex_lock(&j->mu);
            if (err)
                jnl_fail_locked(j);
            async_complete(j);
            continue;
        }
        /* Waiters for a transaction that jnl_forget emptied: nothing to
         * commit, they sync data only. */
        if (jnl_running_empty(j) && j->requested_seq >= atomic_load(&j->running_seq))
            pthread_cond_broadcast(&j->done_cv);
        if (j->shutdown && jnl_running_empty(j) && !j->async_head && !j->next_ready)
            break;
        wait_for_work(j);
    }
    async_complete(j);      /* after a failure: every waiter gets the error */
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* ---- waiting ---------------------------------------------------------------------- */

int jnl_commit_wait(struct jnl *j, uint64_t seq)
{
    int need_data_sync = 0, err;
    uint64_t counted = 0;           /* the running seq this call was counted in */

    if (j->read_only)
        return 0;
    atomic_fetch_add(&j->ctr.commit_waits, 1);
    pthread_mutex_lock(&j->mu);
    /* A sync numbered above s0 began after this call, so it also covers
     * file data the caller wrote before calling. */
    uint64_t s0 = atomic_load(&j->sync_started);
    for (;;) {
        err = atomic_load(&j->error);
        if (err)
            break;
        uint64_t running = atomic_load(&j->running_seq);
        if (seq > running)
            seq = running;
        if (seq <= atomic_load(&j->durable_seq)) {
            need_data_sync = atomic_load(&j->sync_completed) <= s0;
            break;
        }
        if (seq == running && jnl_running_empty(j)) {
            need_data_sync = 1;     /* nothing to commit */
            break;
        }
        if (j->requested_seq < seq)
            j->requested_seq = seq;
        if (seq == running && counted != running) {
            j->running_waiters++;
            counted = running;
        }
        pthread_cond_signal(&j->commit_cv);
        pthread_cond_wait(&j->done_cv, &j->mu);
    }
    pthread_mutex_unlock(&j->mu);
    if (!err && need_data_sync)
        err = jnl_sync_data(j);
    return err;
}

int jnl_sync_data(struct jnl *j)
{
    if (j->read_only)
        return 0;
    int err = atomic_load(&j->error);
    if (err)
        return err;
    if (mmio_sync_delayed(j->io)) {
        pthread_mutex_lock(&j->mu);
        jnl_fail_locked(j);
        pthread_mutex_unlock(&j->mu);
        return -EIO;
    }
    return 0;
}
