/*
 * journal.c — the journal object: open/close, the metadata lock, shadow
 * blocks (jnl_read/jnl_write/jnl_write_new/jnl_forget), operation
 * boundaries (jnl_begin/jnl_end), accessors, metrics, abandon.
 * The commit protocol is in commit.c, recovery in recover.c; the design is
 * described in docs/JOURNAL.md.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal/journal_i.h"

#define DEFAULT_COMMIT_INTERVAL_MS 5000u

/* ---- limits ---------------------------------------------------------------- */

/* Most images one transaction may hold so that its log footprint
 * (descriptors, images, commit block) is at most a third of the log: then
 * a transaction always fits once the header has caught up with the newest
 * one, and two such transactions never collide (the old one-transaction
 * window). The lazy header keeps up to three transactions live; when they
 * leave no room the commit thread catches the header up first
 * (docs/JOURNAL.md, "Log space"). */
static uint64_t txn_capacity(uint64_t log_blocks)
{
    uint64_t budget = log_blocks / 3;
    uint64_t n = budget;
    while (n && jnl_txn_log_blocks(n) > budget)
        n--;
    if (n > UINT32_MAX - 1)
        n = UINT32_MAX - 1;
    return n;
}

/* ---- open and close ---------------------------------------------------------- */

/* Frees j and everything it owns. The commit thread must not be running. */
static void jnl_destroy(struct jnl *j)
{
    jnl_map_destroy(&j->map);
    jnl_datalog_destroy(j);
    jnl_undo_destroy(j);
    for (size_t i = 0; i < j->read_temps_alloc; i++)
        free(j->read_temps[i]);
    free(j->read_temps);
    free(j->read_blks);
    free(j->running);
    free(j->closed[0].blks);
    free(j->closed[1].blks);
    free(j->scratch);
    pthread_cond_destroy(&j->commit_cv);
    pthread_cond_destroy(&j->done_cv);
    pthread_cond_destroy(&j->space_cv);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

/* Allocates and initialises a journal object (no recovery, no thread). */
static int jnl_alloc(struct jnl **out, struct mmio *io, const struct jnl_geometry *geo,
                     const struct jnl_config *cfg)
{
    pthread_condattr_t attr;
    struct jnl *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    pthread_mutex_init(&j->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&j->commit_cv, &attr);
    pthread_condattr_destroy(&attr);
    pthread_cond_init(&j->done_cv, NULL);
    pthread_cond_init(&j->space_cv, NULL);

    j->io = io;
    j->geo = *geo;
    j->log_blocks = geo->journal_blocks - 2;
    j->max_txn_blocks = txn_capacity(j->log_blocks);
    j->read_only = cfg && cfg->read_only;
    uint64_t interval_ms = cfg && cfg->commit_interval_ms ? cfg->commit_interval_ms
                                                          : DEFAULT_COMMIT_INTERVAL_MS;
    j->commit_interval_ns = interval_ms * 1000000u;
    *out = j;
    if (j->max_txn_blocks <= JNL_MAX_OP_BLOCKS)
        return -EINVAL;      /* kept away by JNL_MIN_JOURNAL_BLOCKS */
    j->begin_limit = j->max_txn_blocks - JNL_MAX_OP_BLOCKS;
    int err = jnl_datalog_init(j);
    if (!err)
        err = jnl_undo_init(j);
    if (err)
        return err;
    j->soft_limit = j->max_txn_blocks / 4;

    j->async_tail = &j->async_head;
    j->running = calloc(j->max_txn_blocks, sizeof(*j->running));
    for (int i = 0; i < 2; i++)
        j->closed[i].blks = calloc(j->max_txn_blocks, sizeof(*j->closed[i].blks));
    if (!j->running || !j->closed[0].blks || !j->closed[1].blks ||
        posix_memalign(&j->scratch, JNL_BS, JNL_BS))
        return -ENOMEM;
    return jnl_map_init(&j->map);
}

/* jnl_apply_fn of a read-only open: replayed images become pinned
 * shadows, so readers see the recovered state while the image stays
 * untouched. */
static int apply_pinned(void *ctx, uint64_t home, const void *image)
{
    struct jnl *j = ctx;
    struct jnl_shadow *s = jnl_map_find(&j->map, home);
    if (!s) {
        s = jnl_shadow_alloc(home);
        if (!s)
            return -ENOMEM;
        if (jnl_map_insert(&j->map, s)) {
            jnl_shadow_free(s);
            return -ENOMEM;
        }
        s->pinned = 1;
        atomic_fetch_add(&j->ctr.shadow_blocks_now, 1);
    }
    memcpy(s->data, image, JNL_BS);
    return 0;
}

int jnl_open(struct jnl **out, struct mmio *io, const struct jnl_geometry *geo,
             const struct jnl_config *cfg)
{
    struct jnl_replay_result res;
    struct jnl *j = NULL;
    int err;

    if (!out)
        return -EINVAL;
    *out = NULL;
    err = jnl_geometry_check(io, geo);
    if (err)
        return err;
    err = jnl_alloc(&j, io, geo, cfg);
    if (err)
        goto fail;

    if (j->read_only) {
        err = jnl_head_read(io, geo, &j->head, j->scratch);
        if (!err)
            err = jnl_replay(io, geo, &j->head, apply_pinned, j, &res);
        if (err)
            goto fail;
        atomic_store(&j->running_seq, res.next_seq);
    } else {
        uint64_t replayed = 0;
        err = jnl_recover_head(io, geo, 0, &replayed, &j->head);
        /* Recovery synced if it replayed. Otherwise the header and home
         * blocks read may still be only in the page cache (a daemon killed
         * without a power cut): make them durable, so that the window
         * below starts from a durable header. */
        if (!err && !replayed && mmio_sync(io))
            err = -EIO;
        if (err)
            goto fail;
        atomic_store(&j->running_seq, j->head.seq);
        j->log_head = j->head.start;
    }
    atomic_store(&j->durable_seq, atomic_load(&j->running_seq) - 1);
    /* Every checkpoint before the header's transaction is durable, the
     * header too, and no transaction is live yet. */
    j->tail_seq = j->head.seq;
    j->ckpt_seq = j->ckpt_durable_seq = atomic_load(&j->durable_seq);

    if (!j->read_only) {
        err = -pthread_create(&j->thread, NULL, jnl_commit_main, j);
        if (err)
            goto fail;
        j->thread_started = 1;
    }
    *out = j;
    return 0;
fail:
    if (j)
        jnl_destroy(j);
    return err;
}

/* Stops the commit thread: after committing everything (graceful), or at
 * once as after a power cut (!graceful: the sticky error is set first). */
static void stop_thread(struct jnl *j, int graceful)
{
    if (!j->thread_started)
        return;
    pthread_mutex_lock(&j->mu);
    if (!graceful && !atomic_load(&j->error))
        atomic_store(&j->error, -EIO);
    j->shutdown = 1;
    pthread_cond_broadcast(&j->commit_cv);
    pthread_mutex_unlock(&j->mu);
    pthread_join(j->thread, NULL);
    j->thread_started = 0;
}

int jnl_close(struct jnl *j)
{
    int err;
    if (!j)
        return 0;
    stop_thread(j, 1);
    err = atomic_load(&j->error);
    if (!err && !j->read_only && j->commits_since_open) {
        /* The last checkpoint durable first, then a header past the last
         * transaction (a seq never written): the next open replays nothing. */
        err = mmio_sync(j->io);
        if (!err)
            err = jnl_head_write(j->io, &j->geo, &j->head, atomic_load(&j->running_seq),
                                 j->log_head, j->scratch);
        if (!err)
            err = mmio_sync(j->io);
        if (err)
            err = -EIO;
    }
    jnl_destroy(j);
    return err;
}

/* ---- the lock ------------------------------------------------------------------ */

void jnl_lock(struct jnl *j)
{
    pthread_mutex_lock(&j->mu);
}

void jnl_unlock(struct jnl *j)
{
    /* The copies of jnl_read stay allocated for the next holder, up to
     * JNL_READ_KEEP of them (a B+tree walk of a huge directory can read
     * more under one lock hold). */
    while (j->read_temps_alloc > JNL_READ_KEEP)
        free(j->read_temps[--j->read_temps_alloc]);
    j->read_temps_count = 0;
    pthread_mutex_unlock(&j->mu);
}

/* ---- shadows ----------------------------------------------------------------- */

int jnl_is_shadow(struct jnl *j, uint64_t blk)
{
    return jnl_map_find(&j->map, blk) != NULL;
}

int jnl_shadow_written(struct jnl *j, uint64_t blk)
{
    const struct jnl_shadow *s = jnl_map_find(&j->map, blk);
    return s && !s->pinned;
}

/* A private copy of home block blk, valid until jnl_unlock. The copy is
 * made by the engine (a guarded memcpy from the mapping, or pread), so a
 * page that cannot be read (image truncated under the mount, media error)
 * is an error here instead of a SIGBUS in whoever would have dereferenced
 * a pointer into the mapping. Such an error is sticky for the journal: an
 * operation that stopped half-way on it may have changed blocks already,
 * so nothing may commit any more (the filesystem is read-only until
 * remount; docs/ROBUSTNESS.md). */
static const void *read_copy(struct jnl *j, uint64_t blk)
{
    size_t n = j->read_temps_count;
    for (size_t i = n; i > 0 && i + JNL_READ_REUSE > n; i--)
        if (j->read_blks[i - 1] == blk)
            return j->read_temps[i - 1];    /* home blocks do not change under the lock */
    if (j->read_temps_count == j->read_temps_alloc) {
        if (j->read_temps_alloc == j->read_temps_cap) {
            size_t cap = j->read_temps_cap ? j->read_temps_cap * 2 : 16;
            void **temps = realloc(j->read_temps, cap * sizeof(*temps));
            if (!temps)
                goto nomem;
            j->read_temps = temps;
            uint64_t *blks = realloc(j->read_blks, cap * sizeof(*blks));
            if (!blks)
                goto nomem;
            j->read_blks = blks;
            j->read_temps_cap = cap;
        }
        void *buf = NULL;
        if (posix_memalign(&buf, JNL_BS, JNL_BS))
            goto nomem;
        j->read_temps[j->read_temps_alloc++] = buf;
    }
    void *buf = j->read_temps[j->read_temps_count];
    int err = mmio_read_at(j->io, blk * JNL_BS, buf, JNL_BS);
    if (err) {
        if (err == -EIO && !atomic_load(&j->error)) {
            fprintf(stderr, "mmapfs: metadata block %llu cannot be read "
                    "(image truncated or I/O error): no further commits\n",
                    (unsigned long long)blk);
            jnl_fail_locked(j);
        }
        errno = -err;
        return NULL;
    }
    j->read_blks[j->read_temps_count++] = blk;
    return buf;
nomem:
    errno = ENOMEM;
    return NULL;
}

const void *jnl_read(struct jnl *j, uint64_t blk)
{
    if (blk >= j->geo.block_count) {
        errno = ERANGE;
        return NULL;
    }
    struct jnl_shadow *s = jnl_map_find(&j->map, blk);
    if (s)
        return s->data;
    return read_copy(j, blk);
}

void jnl_shadow_drop(struct jnl *j, struct jnl_shadow *s)
{
    jnl_map_remove(&j->map, s->blk);
    jnl_shadow_free(s);
    atomic_fetch_sub(&j->ctr.shadow_blocks_now, 1);
}

/* Takes s out of the running transaction (swap with the last entry). */
void jnl_running_remove(struct jnl *j, struct jnl_shadow *s)
{
    uint32_t idx = s->running_idx;
    struct jnl_shadow *last = j->running[--j->running_count];
    j->running[idx] = last;
    last->running_idx = idx;
    s->running_idx = JNL_NOT_RUNNING;
    jnl_running_maybe_emptied(j);
}

void jnl_running_maybe_emptied(struct jnl *j)
{
    /* A waiter may be waiting for a transaction that just became empty:
     * it has nothing left to commit (see jnl_commit_wait). */
    if (jnl_running_empty(j) && j->requested_seq >= atomic_load(&j->running_seq))
        pthread_cond_broadcast(&j->done_cv);
}

void jnl_running_started(struct jnl *j)
{
    /* The commit thread may be asleep without a timeout (nothing to
     * commit): wake it to arm the periodic commit. */
    j->running_since_ns = jnl_now_ns();
    pthread_cond_signal(&j->commit_cv);
}

/* jnl_write / jnl_write_new: the writable shadow of blk in the running
 * transaction, created from the current version (zeroed if zero) on first
 * use. NULL with errno: EIO (sticky error), EROFS, ERANGE (not a legal
 * home block), ENOSPC (transaction full), ENOMEM. */
static void *dirty_block(struct jnl *j, uint64_t blk, int zero)
{
    struct jnl_shadow *s;
    int err;

    if (atomic_load(&j->error) || j->read_only) {
        errno = j->read_only ? EROFS : EIO;
        return NULL;
    }
    if (!jnl_home_ok(&j->geo, blk)) {
        errno = ERANGE;
        return NULL;
    }
    s = jnl_map_find(&j->map, blk);
    if (jnl_undo_needed(j, s) && (err = jnl_undo_note(j, blk, s)) != 0) {
        errno = -err;
        return NULL;
    }
    if (s && s->running_idx != JNL_NOT_RUNNING) {
        if (zero)
            memset(s->data, 0, JNL_BS);
        return s->data;
    }
    if (j->running_count + j->running_data_count >= j->max_txn_blocks) {
        errno = ENOSPC;
        return NULL;
    }
    if (s) {
        /* Still needed by the committing transaction, whose image is
         * already frozen in the log: the buffer can move on. */
        if (zero)
            memset(s->data, 0, JNL_BS);
    } else {
        s = jnl_shadow_alloc(blk);
        if (!s) {
            errno = ENOMEM;
            return NULL;
        }
        if (zero)
            memset(s->data, 0, JNL_BS);
        else if ((err = mmio_read_at(j->io, blk * JNL_BS, s->data, JNL_BS)) != 0) {
            jnl_shadow_free(s);
            errno = -err;
            return NULL;
        }
        if (jnl_map_insert(&j->map, s)) {
            jnl_shadow_free(s);
            errno = ENOMEM;
            return NULL;
        }
        atomic_fetch_add(&j->ctr.shadow_blocks_now, 1);
        s->undo_gen = j->undo.gen;
    }
    s->dirty_seq = atomic_load(&j->running_seq);
    jnl_running_add(j, s);
    return s->data;
}

void jnl_running_add(struct jnl *j, struct jnl_shadow *s)
{
    s->running_idx = j->running_count;
    j->running[j->running_count++] = s;
    if (j->running_count + j->running_data_count == 1)
        jnl_running_started(j);
}

void *jnl_write(struct jnl *j, uint64_t blk)
{
    return dirty_block(j, blk, 0);
}

void *jnl_write_new(struct jnl *j, uint64_t blk)
{
    return dirty_block(j, blk, 1);
}

void jnl_forget(struct jnl *j, uint64_t blk)
{
    struct jnl_shadow *s = jnl_map_find(&j->map, blk);
    if (!s || s->pinned)
        return;
    if (jnl_undo_needed(j, s)) {
        int err = jnl_undo_note(j, blk, s);
        if (err) {
            /* the shadow stays as it is: the block is not forgotten */
            jnl_op_failed(j, err);
            return;
        }
    }
    if (s->running_idx != JNL_NOT_RUNNING)
        jnl_running_remove(j, s);
    /* The committing transaction's checkpoint still writes its own image
     * (from the log if the buffer changed since); it drops the shadow. */
    if (!s->in_commit)
        jnl_shadow_drop(j, s);
}

/* ---- operations ---------------------------------------------------------------- */

int jnl_begin(struct jnl *j)
{
    pthread_mutex_lock(&j->mu);
    for (;;) {
        int err = atomic_load(&j->error);
        if (!err && j->read_only)
            err = -EROFS;
        if (err) {
            pthread_mutex_unlock(&j->mu);
            return err;
        }
        if (j->running_count + j->running_data_count <= j->begin_limit) {
            jnl_undo_start(j);
            return 0;
        }
        /* Too full to take a whole operation: have it committed. The
         * commit thread closes it (and broadcasts space_cv) first thing. */
        j->throttled++;
        pthread_cond_signal(&j->commit_cv);
        pthread_cond_wait(&j->space_cv, &j->mu);
        j->throttled--;
    }
}

void jnl_note_new_data(struct jnl *j)
{
    j->running_new_data = 1;
}

void jnl_end(struct jnl *j)
{
    jnl_undo_finish(j);
    if (j->running_count >= j->soft_limit)
        pthread_cond_signal(&j->commit_cv);
    jnl_unlock(j);
}

/* ---- accessors ------------------------------------------------------------------ */

uint64_t jnl_running_seq(struct jnl *j)
{
    return atomic_load(&j->running_seq);
}

uint64_t jnl_durable_seq(struct jnl *j)
{
    return atomic_load(&j->durable_seq);
}

uint64_t jnl_last_seq(struct jnl *j)
{
    uint64_t running = atomic_load(&j->running_seq);
    return jnl_running_empty(j) ? running - 1 : running;
}

uint64_t jnl_running_blocks(struct jnl *j)
{
    return j->running_count;
}

int jnl_error(struct jnl *j)
{
    return atomic_load(&j->error);
}

void jnl_set_durable_callback(struct jnl *j, jnl_durable_fn fn, void *ctx)
{
    j->durable_fn = fn;
    j->durable_ctx = ctx;
}

void jnl_get_metrics(struct jnl *j, struct jnl_metrics *out)
{
    out->commits = atomic_load_explicit(&j->ctr.commits, memory_order_relaxed);
    out->commit_blocks = atomic_load_explicit(&j->ctr.commit_blocks, memory_order_relaxed);
    out->commit_us = atomic_load_explicit(&j->ctr.commit_us, memory_order_relaxed);
    out->commit_waits = atomic_load_explicit(&j->ctr.commit_waits, memory_order_relaxed);
    out->wraps = atomic_load_explicit(&j->ctr.wraps, memory_order_relaxed);
    out->shadow_blocks_now = atomic_load_explicit(&j->ctr.shadow_blocks_now, memory_order_relaxed);
    out->checkpoint_blocks = atomic_load_explicit(&j->ctr.checkpoint_blocks, memory_order_relaxed);
    out->commit_syncs = atomic_load_explicit(&j->ctr.commit_syncs, memory_order_relaxed);
    out->ordered_commits = atomic_load_explicit(&j->ctr.ordered_commits, memory_order_relaxed);
    out->header_writes = atomic_load_explicit(&j->ctr.header_writes, memory_order_relaxed);
    out->log_full_syncs = atomic_load_explicit(&j->ctr.log_full_syncs, memory_order_relaxed);
    out->pipelined_commits = atomic_load_explicit(&j->ctr.pipelined_commits, memory_order_relaxed);
    out->data_images = atomic_load_explicit(&j->ctr.data_images, memory_order_relaxed);
    out->head_past_syncs = atomic_load_explicit(&j->ctr.head_past_syncs, memory_order_relaxed);
    out->batched_commits = atomic_load_explicit(&j->ctr.batched_commits, memory_order_relaxed);
}

/* ---- abandon, limits ---------------------------------------------------------- */

void jnl_abandon(struct jnl *j)
{
    if (!j)
        return;
    stop_thread(j, 0);
    jnl_destroy(j);
}

uint64_t jnl_max_txn_blocks(const struct jnl *j)
{
    return j->max_txn_blocks;
}

uint64_t jnl_begin_limit(const struct jnl *j)
{
    return j->begin_limit;
}
