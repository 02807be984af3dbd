/*
 * reshape.c — a shorter log for offline growth (mmapfs-resize).
 *
 * mmapfs-resize may take blocks from the end of the journal for a larger
 * block bitmap. The header slots stay where they are; only log_blocks
 * changes. The new header goes into the slot that is not current, with a
 * higher generation and the new log_blocks, so that each superblock finds
 * exactly one valid slot: the old superblock (old journal_blocks) rejects
 * the new slot (log_blocks mismatch) and keeps the current one; the new
 * superblock rejects the old slot and takes the new one. The switch is
 * the superblock write, made by the caller after a sync.
 */
#include <errno.h>
#include <stdlib.h>

#include "journal/journal_i.h"

int jnl_reshape(struct mmio *io, const struct jnl_geometry *old_geo,
                uint64_t new_journal_blocks)
{
    struct jnl_geometry geo = *old_geo;
    struct jnl_head_state head;
    struct jnl_replay_result res;
    int err;

    if (new_journal_blocks < JNL_MIN_JOURNAL_BLOCKS ||
        new_journal_blocks > old_geo->journal_blocks)
        return -EINVAL;
    void *buf = malloc(JNL_BS);
    if (!buf)
        return -ENOMEM;
    err = jnl_geometry_check(io, old_geo);
    if (!err)
        err = jnl_head_read(io, old_geo, &head, buf);
    if (!err)
        err = jnl_replay(io, old_geo, &head, NULL, NULL, &res);
    if (!err && (res.replayed || res.torn))
        err = -EBUSY;          /* something to replay: mount or fsck first */
    if (!err) {
        /* the first transaction of the new log is head.seq at index 0:
         * nothing with that number was ever committed (clean journal), and
         * older laps carry smaller numbers */
        geo.journal_blocks = new_journal_blocks;
        err = jnl_head_write(io, &geo, &head, head.seq, 0, buf);
    }
    free(buf);
    return err;
}
