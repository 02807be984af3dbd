/*
 * recover.c — journal headers, transaction parsing, replay and format.
 *
 * Everything read from the image here is untrusted: it is copied out with
 * mmio_read_once (bounds-checked; pread, since the log is read once) into
 * a private buffer, every field is range-checked before use, and a
 * transaction that does not check out ends replay instead of failing it.
 * Format: src/journal/format.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "journal/journal_i.h"
#include "util/crc32c.h"

/* ---- geometry and headers -------------------------------------------------- */

int jnl_geometry_check(struct mmio *io, const struct jnl_geometry *geo)
{
    if (!io || !geo)
        return -EINVAL;
    if (geo->journal_blocks < JNL_MIN_JOURNAL_BLOCKS || geo->journal_start < 1)
        return -EINVAL;
    if (geo->journal_start > geo->block_count ||
        geo->journal_blocks > geo->block_count - geo->journal_start)
        return -EINVAL;
    if (geo->block_count > mmio_size(io) / JNL_BS)
        return -EINVAL;
    return 0;
}

int jnl_home_ok(const struct jnl_geometry *geo, uint64_t blk)
{
    if (blk >= geo->block_count)
        return 0;
    return blk < geo->journal_start || blk - geo->journal_start >= geo->journal_blocks;
}

/* Is buf a valid header for this geometry? */
static int head_valid(const struct mmapfs_disk_jnl_header *h,
                      const struct jnl_geometry *geo)
{
    if (h->magic != MMAPFS_JNL_HEADER_MAGIC)
        return 0;
    if (mfs_crc32c(0, h, offsetof(struct mmapfs_disk_jnl_header, checksum)) != h->checksum)
        return 0;
    /* mkfs starts seq below 2^62 and both count up by one: values from 2^63
     * on were never written (and would wrap the ordered comparisons of
     * sequence numbers in commit.c, or make the next header's generation 0) */
    return h->log_blocks == geo->journal_blocks - 2 && h->start < h->log_blocks &&
           h->generation != 0 && h->generation < (1ull << 63) && h->seq < (1ull << 63);
}

int jnl_head_read(struct mmio *io, const struct jnl_geometry *geo,
                  struct jnl_head_state *head, void *buf)
{
    const struct mmapfs_disk_jnl_header *h = buf;
    int found = 0;

    for (int slot = 0; slot < 2; slot++) {
        int err = mmio_read_once(io, (geo->journal_start + (uint64_t)slot) * JNL_BS, buf, JNL_BS);
        if (err)
            return err;
        if (!head_valid(h, geo))
            continue;
        if (found && h->generation <= head->generation)
            continue;
        head->slot = slot;
        head->generation = h->generation;
        head->seq = h->seq;
        head->start = h->start;
        found = 1;
    }
    return found ? 0 : -EUCLEAN;
}

/* Writes one header slot. Does not sync. */
static int head_write_slot(struct mmio *io, const struct jnl_geometry *geo, int slot,
                           uint64_t generation, uint64_t seq, uint64_t start, void *buf)
{
    struct mmapfs_disk_jnl_header *h = buf;

    memset(buf, 0, JNL_BS);
    h->magic = MMAPFS_JNL_HEADER_MAGIC;
    h->generation = generation;
    h->seq = seq;
    h->start = start;
    h->log_blocks = geo->journal_blocks - 2;
    h->checksum = mfs_crc32c(0, h, offsetof(struct mmapfs_disk_jnl_header, checksum));
    return mmio_write_at(io, (geo->journal_start + (uint64_t)slot) * JNL_BS, buf, JNL_BS);
}

int jnl_head_write(struct mmio *io, const struct jnl_geometry *geo,
                   struct jnl_head_state *head, uint64_t seq, uint64_t start,
                   void *buf)
{
    int slot = head->slot ^ 1;
    if (start >= geo->journal_blocks - 2)
        start = 0;      /* a transaction ending at the end of the log */
    int err = head_write_slot(io, geo, slot, head->generation + 1, seq, start, buf);
    if (err)
        return err;
    head->slot = slot;
    head->generation++;
    head->seq = seq;
    head->start = start;
    return 0;
}

/* ---- transactions -------------------------------------------------------------- */

/* Checks the transaction seq at log index pos. Returns 1 (valid; *nblocks =
 * its descriptor + image blocks), 0 (not valid; *seen set if its first
 * block is a descriptor of seq) or an engine error. buf: JNL_BS bytes. */
static int txn_check(struct mmio *io, const struct jnl_geometry *geo, uint64_t pos,
                     uint64_t seq, void *buf, uint64_t *nblocks, int *seen)
{
    const struct mmapfs_disk_jnl_desc *d = buf;
    const struct mmapfs_disk_jnl_commit *c = buf;
    uint64_t log_blocks = geo->journal_blocks - 2;
    uint64_t idx = pos;
    struct jnl_sum sum = { 0, 0 };
    int err;

    for (;;) {
        if (idx >= log_blocks)
            return 0;                       /* transactions never wrap */
        err = mmio_read_once(io, jnl_log_off(geo, idx), buf, JNL_BS);
        if (err)
            return err;
        if (idx > pos && d->magic == MMAPFS_JNL_COMMIT_MAGIC)
            break;
        if (d->magic != MMAPFS_JNL_DESC_MAGIC || d->seq != seq)
            return 0;
        if (idx == pos)
            *seen = 1;
        uint32_t count = d->count;
        if (count < 1 || count > MMAPFS_JNL_DESC_MAX || count > log_blocks - idx - 1)
            return 0;
        for (uint32_t i = 0; i < count; i++)
            if (!jnl_home_ok(geo, d->home[i]))
                return 0;
        jnl_sum_add(&sum, buf);
        for (uint32_t i = 0; i < count; i++) {
            err = mmio_read_once(io, jnl_log_off(geo, idx + 1 + i), buf, JNL_BS);
            if (err)
                return err;
            jnl_sum_add(&sum, buf);
        }
        idx += 1 + count;
    }
    if (mfs_crc32c(0, c, offsetof(struct mmapfs_disk_jnl_commit, checksum)) != c->checksum ||
        c->seq != seq || c->nblocks != idx - pos || c->data_checksum != sum.crc)
        return 0;
    /* commits written before the flag existed carry only the CRC */
    if ((c->flags & MMAPFS_JNL_COMMIT_HASH) && c->data_hash != sum.hash)
        return 0;
    *nblocks = idx - pos;
    return 1;
}

/* Hands every image of the (checked) transaction at pos to apply. The log
 * is re-validated as it is read: -EUCLEAN if it changed under us. */
static int txn_apply(struct mmio *io, const struct jnl_geometry *geo, uint64_t pos,
                     uint64_t nblocks, uint64_t seq, jnl_apply_fn apply, void *ctx,
                     struct mmapfs_disk_jnl_desc *desc, void *image)
{
    uint64_t idx = pos;
    int err;

    while (idx < pos + nblocks) {
        err = mmio_read_once(io, jnl_log_off(geo, idx), desc, JNL_BS);
        if (err)
            return err;
        if (desc->magic != MMAPFS_JNL_DESC_MAGIC || desc->seq != seq || desc->count < 1 ||
            desc->count > MMAPFS_JNL_DESC_MAX || desc->count > pos + nblocks - idx - 1)
            return -EUCLEAN;
        for (uint32_t i = 0; i < desc->count; i++) {
            if (!jnl_home_ok(geo, desc->home[i]))
                return -EUCLEAN;
            err = mmio_read_once(io, jnl_log_off(geo, idx + 1 + i), image, JNL_BS);
            if (err)
                return err;
            err = apply(ctx, desc->home[i], image);
            if (err)
                return err;
        }
        idx += 1 + desc->count;
    }
    return 0;
}

int jnl_replay(struct mmio *io, const struct jnl_geometry *geo,
               const struct jnl_head_state *head, jnl_apply_fn apply, void *ctx,
               struct jnl_replay_result *res)
{
    uint64_t log_blocks = geo->journal_blocks - 2;
    uint64_t pos = head->start, seq = head->seq;
    void *buf = NULL, *image = NULL;
    int err = 0;

    memset(res, 0, sizeof(*res));
    res->next_seq = seq;
    res->next_pos = pos;
    if (posix_memalign(&buf, JNL_BS, JNL_BS) || posix_memalign(&image, JNL_BS, JNL_BS)) {
        err = -ENOMEM;
        goto out;
    }
    /* Each log index can start a valid transaction of one seq only, so
     * the walk ends after at most log_blocks transactions. */
    while (res->replayed < log_blocks) {
        uint64_t nblocks = 0;
        int seen = 0;
        int valid = txn_check(io, geo, pos, seq, buf, &nblocks, &seen);
        if (valid == 0 && pos != 0) {
            pos = 0;        /* did not fit before the end of the log */
            valid = txn_check(io, geo, pos, seq, buf, &nblocks, &seen);
        }
        if (valid < 0) {
            err = valid;
            goto out;
        }
        if (!valid) {
            res->torn = seen;
            break;
        }
        if (apply) {
            err = txn_apply(io, geo, pos, nblocks, seq, apply, ctx, buf, image);
            if (err)
                goto out;
        }
        res->replayed++;
        seq++;
        pos += nblocks + 1;
        res->next_seq = seq;
        res->next_pos = pos < log_blocks ? pos : 0;
    }
out:
    free(buf);
    free(image);
    return err;
}

/* ---- recovery and format --------------------------------------------------- */

/* jnl_apply_fn for recovery: the image goes to its home block. */
static int apply_home(void *ctx, uint64_t home, const void *image)
{
    return mmio_write_at(ctx, home * JNL_BS, image, JNL_BS);
}

int jnl_recover_head(struct mmio *io, const struct jnl_geometry *geo,
                     int dry_run, uint64_t *replayed, struct jnl_head_state *head)
{
    struct jnl_replay_result res;
    void *buf = NULL;
    int err = jnl_geometry_check(io, geo);
    if (err)
        return err;
    if (posix_memalign(&buf, JNL_BS, JNL_BS))
        return -ENOMEM;
    err = jnl_head_read(io, geo, head, buf);
    if (err)
        goto out;
    err = jnl_replay(io, geo, head, dry_run ? NULL : apply_home, io, &res);
    if (err)
        goto out;
    if (replayed)
        *replayed = res.replayed;
    if (dry_run || (!res.replayed && !res.torn))
        goto out;
    /* Home blocks durable first, then a header past everything replayed
     * (FORMAT.md, replay step 5). next_seq + 1: the sequence number of a
     * torn transaction is never used again, so its leftovers can never
     * pass for a new one. */
    err = mmio_sync(io);
    if (!err)
        err = jnl_head_write(io, geo, head, res.next_seq + 1, res.next_pos, buf);
    if (!err)
        err = mmio_sync(io);
    if (err)
        err = -EIO;
out:
    free(buf);
    return err;
}

int jnl_recover(struct mmio *io, const struct jnl_geometry *geo, int dry_run,
                uint64_t *replayed)
{
    struct jnl_head_state head;
    if (replayed)
        *replayed = 0;
    return jnl_recover_head(io, geo, dry_run, replayed, &head);
}

/* A random first sequence number in [1, 2^62), so that log blocks left by
 * an earlier filesystem on the same image never match. */
static uint64_t random_seq(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        v = (uint64_t)ts.tv_sec * 0x9e3779b97f4a7c15ull ^ (uint64_t)ts.tv_nsec ^
            (uint64_t)getpid() << 32;
    }
    v &= (1ull << 62) - 1;
    return v ? v : 1;
}

int jnl_format(struct mmio *io, const struct jnl_geometry *geo)
{
    void *buf = NULL;
    int err = jnl_geometry_check(io, geo);
    if (err)
        return err;
    if (posix_memalign(&buf, JNL_BS, JNL_BS))
        return -ENOMEM;
    err = head_write_slot(io, geo, 0, 1, random_seq(), 0, buf);
    if (!err) {
        memset(buf, 0, JNL_BS);
        err = mmio_write_at(io, (geo->journal_start + 1) * JNL_BS, buf, JNL_BS);
    }
    if (!err)
        err = mmio_sync(io);
    free(buf);
    return err;
}
