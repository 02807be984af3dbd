/*
 * undo.c — the undo log of the operation in progress: a failed operation
 * leaves nothing of itself in the running transaction (DESIGN.md
 * invariant 9; docs/JOURNAL.md, "Failed operations").
 *
 * An operation holds the metadata lock from jnl_begin to jnl_end, so the
 * commit thread cannot close the running transaction in the middle of it.
 * The first time the operation changes a block (jnl_write, jnl_write_new,
 * jnl_forget), the block's state is recorded: whether it had a shadow,
 * whether that shadow was in the running transaction, its dirty_seq, and
 * its bytes (a 4 KiB copy from a pool kept across operations). A block
 * that had no shadow needs no copy: undoing it drops the shadow, and
 * readers see the mapping (or the committing transaction's shadow) again.
 * jnl_undo restores the recorded states, newest entry first; jnl_end
 * forgets them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal/journal_i.h"

int jnl_undo_init(struct jnl *j)
{
    j->undo.gen = 1;
    return posix_memalign(&j->undo.before, JNL_BS, JNL_BS) ? -ENOMEM : 0;
}

/* Gives the buffers of the entries back to the pool (it has room: it was
 * sized when they were taken). */
static void entries_clear(struct jnl *j)
{
    struct jnl_undo *u = &j->undo;
    for (uint32_t i = 0; i < u->count; i++)
        if (u->entries[i].saved)
            u->pool[u->pool_count++] = u->entries[i].saved;
    u->count = 0;
    u->buffers = 0;
    u->forgot_data = 0;
    u->failed = 0;
    u->forget_count = 0;
}

void jnl_undo_destroy(struct jnl *j)
{
    struct jnl_undo *u = &j->undo;
    if (u->pool)
        entries_clear(j);
    for (uint32_t i = 0; i < u->pool_count; i++)
        free(u->pool[i]);
    free(u->pool);
    free(u->entries);
    free(u->forgets);
    free(u->before);
}

void jnl_undo_start(struct jnl *j)
{
    j->undo.active = 1;
    j->undo.gen++;
}

/* Forgets the log images held back (jnl_forget_data during the
 * operation). */
static void forgets_apply(struct jnl *j)
{
    struct jnl_undo *u = &j->undo;
    for (uint32_t i = 0; i < u->forget_count; i++)
        jnl_datalog_forget(j, u->forgets[i][0], u->forgets[i][1]);
    u->forget_count = 0;
}

void jnl_undo_finish(struct jnl *j)
{
    forgets_apply(j);       /* the operation stands: images of blocks it freed go */
    entries_clear(j);
    j->undo.active = 0;
}

/* A JNL_BS buffer for an entry. NULL when out of memory. */
static void *buffer_take(struct jnl *j)
{
    struct jnl_undo *u = &j->undo;
    if (u->pool_count)
        return u->pool[--u->pool_count];
    /* the pool must be able to take every buffer back */
    if (u->buffers + 1 > u->pool_cap) {
        uint32_t cap = u->pool_cap ? u->pool_cap * 2 : 16;
        void **pool = realloc(u->pool, cap * sizeof(*pool));
        if (!pool)
            return NULL;
        u->pool = pool;
        u->pool_cap = cap;
    }
    void *buf = NULL;
    return posix_memalign(&buf, JNL_BS, JNL_BS) ? NULL : buf;
}

int jnl_undo_note(struct jnl *j, uint64_t blk, struct jnl_shadow *s)
{
    struct jnl_undo *u = &j->undo;
    if (u->count == u->cap) {
        uint32_t cap = u->cap ? u->cap * 2 : 64;
        struct jnl_undo_entry *e = realloc(u->entries, cap * sizeof(*e));
        if (!e)
            return -ENOMEM;
        u->entries = e;
        u->cap = cap;
    }
    struct jnl_undo_entry *e = &u->entries[u->count];
    *e = (struct jnl_undo_entry){ .blk = blk };
    if (s) {
        e->saved = buffer_take(j);
        if (!e->saved)
            return -ENOMEM;
        u->buffers++;
        memcpy(e->saved, s->data, JNL_BS);
        e->had_shadow = 1;
        e->was_running = s->running_idx != JNL_NOT_RUNNING;
        e->dirty_seq = s->dirty_seq;
        s->undo_gen = u->gen;
    }
    u->count++;
    return 0;
}

void jnl_op_failed(struct jnl *j, int err)
{
    if (j->undo.active && !j->undo.failed)
        j->undo.failed = err ? err : -EIO;
}

int jnl_op_failure(struct jnl *j)
{
    return j->undo.active ? j->undo.failed : 0;
}

uint64_t jnl_op_gen(struct jnl *j)
{
    return j->undo.active ? j->undo.gen : 0;
}

int jnl_op_changed(struct jnl *j)
{
    return j->undo.active && (j->undo.count || j->undo.forgot_data);
}

/* Restores one entry; copies the block as the operation left it into
 * u->before first (*had_before). 0 or -ENOMEM. */
static int restore(struct jnl *j, const struct jnl_undo_entry *e, int *had_before)
{
    struct jnl_shadow *s = jnl_map_find(&j->map, e->blk);
    *had_before = s != NULL;
    if (s)
        memcpy(j->undo.before, s->data, JNL_BS);
    if (!e->had_shadow) {
        /* created by the operation: nothing closed can hold it (closing
         * needs the lock the operation holds) */
        if (s && !s->pinned) {
            if (s->running_idx != JNL_NOT_RUNNING)
                jnl_running_remove(j, s);
            if (!s->in_commit)
                jnl_shadow_drop(j, s);
        }
        return 0;
    }
    if (!s) {
        /* forgotten (and dropped) by the operation: bring it back */
        s = jnl_shadow_alloc(e->blk);
        if (!s)
            return -ENOMEM;
        if (jnl_map_insert(&j->map, s)) {
            jnl_shadow_free(s);
            return -ENOMEM;
        }
        atomic_fetch_add(&j->ctr.shadow_blocks_now, 1);
    }
    memcpy(s->data, e->saved, JNL_BS);
    s->dirty_seq = e->dirty_seq;
    if (e->was_running && s->running_idx == JNL_NOT_RUNNING)
        jnl_running_add(j, s);
    else if (!e->was_running && s->running_idx != JNL_NOT_RUNNING)
        jnl_running_remove(j, s);
    return 0;
}

int jnl_undo(struct jnl *j, jnl_undo_fn fn, void *ctx)
{
    struct jnl_undo *u = &j->undo;
    static const uint8_t zeros[MMAPFS_JNL_BLOCK_SIZE];
    int err = 0;
    if (!u->active)
        return 0;
    /* The blocks the operation freed are file data again: their log
     * images stay (forget_later). fn may forget images of blocks the
     * operation allocated: those need nothing more. */
    int forgot_data = u->forgot_data;
    u->forget_count = 0;
    for (uint32_t i = u->count; i-- > 0 && !err;) {
        const struct jnl_undo_entry *e = &u->entries[i];
        int had_before;
        err = restore(j, e, &had_before);
        if (err || !fn)
            continue;
        const void *after = jnl_read(j, e->blk);
        if (!after) {
            err = -ENOMEM;
            continue;
        }
        fn(ctx, e->blk, had_before ? u->before : zeros, after);
    }
    if (!err && forgot_data) {
        /* Freeing blocks forgot their log images at once (no memory to
         * hold them back), and the blocks are file data again: an in-place
         * overwrite of one of them would not be logged again, so replay
         * must not reach any older transaction once the running one is
         * durable. */
        uint64_t before_running = atomic_load(&j->running_seq) - 1;
        if (j->running_head_past < before_running)
            j->running_head_past = before_running;
    }
    forgets_apply(j);       /* fn's: images of blocks the operation allocated */
    entries_clear(j);
    j->undo.gen++;
    if (err)
        jnl_abort(j, err, "a failed operation could not be undone (out of memory)");
    return err;
}

void jnl_abort(struct jnl *j, int err, const char *why)
{
    if (atomic_load(&j->error))
        return;
    fprintf(stderr, "mmapfs: journal aborted, the filesystem is read-only from now on: %s (%s)\n",
            why, strerror(err < 0 ? -err : err));
    atomic_store(&j->error, -EROFS);
    pthread_cond_broadcast(&j->done_cv);
    pthread_cond_broadcast(&j->space_cv);
    pthread_cond_broadcast(&j->commit_cv);
}
