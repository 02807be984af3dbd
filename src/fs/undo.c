/*
 * undo.c — the end of a modifying operation: a failed one leaves nothing
 * of itself behind (DESIGN.md invariant 9; docs/JOURNAL.md, "Failed
 * operations").
 *
 * The journal undoes the blocks (jnl_undo); this file brings the memory
 * state that mirrors them along: the allocator's free counts (from the
 * restored bitmap blocks, fs_alloc_undo_block), the orphan mirror (rebuilt
 * from the list when the operation changed it), and the superblock's
 * error mark (set again if the operation found corruption). A change
 * that failed in a path that could not return its error (a B+tree node
 * freed, jnl_op_failed) fails the operation the same way. When the undo
 * itself is impossible, the journal is aborted: read-only, the running
 * transaction never commits.
 */
#include <errno.h>
#include <unistd.h>

#include "fs/fs_i.h"

void fs_abort(struct fs *fs, int err, const char *why)
{
    jnl_abort(fs->jnl, err, why);
}

static void undo_block(void *ctx, uint64_t blk, const void *before, const void *after)
{
    fs_alloc_undo_block(ctx, blk, before, after);
}

/* Undoes the failed operation in progress. */
static void undo(struct fs *fs)
{
    fs_alloc_undo_pending(fs);
    if (jnl_undo(fs->jnl, undo_block, fs))
        return;                         /* aborted, and said why */
    if (fs_icache_orphan_changed(fs)) {
        int err = fs_orphan_reload(fs);
        if (err)
            fs_abort(fs, err, "cannot rebuild the orphan list after a failed operation");
    }
    if (fs->corrupt) {
        /* the corruption the operation found stays marked */
        struct mmapfs_disk_superblock *sb = fs_super_write(fs);
        if (sb) {
            sb->state |= MMAPFS_STATE_ERROR;
            fs_super_put(fs, sb);
        }
    }
}

int fs_undo_failed(struct fs *fs, int err)
{
    struct jnl *j = fs->jnl;
    if (err >= 0 && jnl_op_failure(j))
        err = jnl_op_failure(j);        /* failed in a path that could not say so */
    if (err < 0 && jnl_op_changed(j))
        undo(fs);
    fs_icache_orphan_changed(fs);
    return err;
}

int fs_end(struct fs *fs, int err)
{
    err = fs_undo_failed(fs, err);
    jnl_end(fs->jnl);
    return err;
}

/* ---- early answers (fs.h) ----------------------------------------------------------- */

void fs_early_answer(struct fs_early *e, const struct fs_stat *st)
{
    if (e && !e->answered) {
        e->answered = 1;
        e->answer(e, st);
    }
}

int fs_early_retry(struct fs *fs, int err, const struct fs_early *e, unsigned *tries)
{
    if (!err)
        err = jnl_op_failure(fs->jnl);
    if (!e || !e->answered || err != -ENOMEM || *tries >= FS_EARLY_RETRIES)
        return 0;
    undo(fs);               /* also when nothing changed: clears jnl_op_failure */
    fs_icache_orphan_changed(fs);
    if (jnl_error(fs->jnl))
        return 0;                       /* the undo itself failed: aborted */
    (*tries)++;
    usleep(1000u << *tries);            /* under the lock: memory is short for all */
    return 1;
}

int fs_end_early(struct fs *fs, int err, const struct fs_early *e)
{
    err = fs_undo_failed(fs, err);
    if (err && e && e->answered)
        fs_abort(fs, err, "an operation already answered as done could not be completed");
    jnl_end(fs->jnl);
    return err;
}
