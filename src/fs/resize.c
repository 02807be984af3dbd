/*
 * resize.c — offline growth of a filesystem (mmapfs-resize).
 *
 * Growing adds blocks [old, new) to the data area: their block bitmap bits
 * must exist and be 0, the superblock gets the new block_count, block
 * bitmap geometry and free count. Nothing else moves: the inode count,
 * the inode table and data_start stay.
 *
 * Where the bits go (docs/FORMAT.md, "Growing"):
 *  - in place, when the block bitmap region (with any gap after it, before
 *    the inode bitmap) has room for ceil(new / 32768) blocks: the extra
 *    bitmap blocks are gap blocks nothing reads;
 *  - else relocated into the tail of the journal: the journal gets
 *    shorter by twice the new bitmap's length (once if it cannot spare
 *    that: it must keep at least JNL_MIN_JOURNAL_BLOCKS), the new bitmap
 *    (old bits copied, new bits 0) is written at the start of the blocks
 *    taken, and the rest of them and the old bitmap blocks become a gap of
 *    the metadata region: room for the next growth in place. A clean
 *    journal holds nothing in its tail.
 *
 * Crash safety: every write before the superblock goes where the current
 * (old) superblock does not look: file space past block_count, gap blocks,
 * padding bits of the last bitmap block (ignored, written 0), the unused
 * journal tail, the journal header slot that is not current (with a log
 * size only the new superblock accepts, jnl_reshape). Then a sync, then one
 * superblock write (4096 bytes, CRC-32C), then a sync. A crash before the
 * superblock write leaves the old filesystem, after it the new one. With a
 * backup superblock, the new superblock goes to the backup first, then a
 * sync: the old primary still wins until it is replaced, and a primary
 * torn by a crash is restored from the backup by fsck.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fs/fs_i.h"
#include "fs/offline.h"

#define BITS_PER_BLOCK (MMAPFS_BLOCK_SIZE * 8ull)

static uint64_t div_up(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

int fs_grow_plan(const struct fs_offline *o, uint64_t new_bytes, struct fs_grow_plan *p)
{
    const struct mmapfs_disk_superblock *sb = &o->sb;
    uint64_t in_place = sb->inode_bitmap_start - sb->block_bitmap_start;
    uint64_t journal_end = sb->journal_start + sb->journal_blocks;
    uint64_t spare = sb->journal_blocks - JNL_MIN_JOURNAL_BLOCKS;

    memset(p, 0, sizeof(*p));
    p->old_blocks = sb->block_count;
    p->new_blocks = new_bytes / MMAPFS_BLOCK_SIZE;
    p->bitmap_start = sb->block_bitmap_start;
    p->bitmap_blocks = sb->block_bitmap_blocks;
    p->journal_blocks = sb->journal_blocks;
    /* the most: the larger of the in-place room and the journal's spare
     * blocks (relocation takes the whole new bitmap from the journal) */
    uint64_t most_bitmap = in_place > spare ? in_place : spare;
    p->max_blocks = most_bitmap * BITS_PER_BLOCK;
    if (p->max_blocks > (1ull << 52))
        p->max_blocks = 1ull << 52;           /* 2^64 bytes */
    if (p->new_blocks < p->old_blocks)
        return -EINVAL;
    if (p->new_blocks == p->old_blocks)
        return 0;
    uint64_t need = div_up(p->new_blocks, BITS_PER_BLOCK);
    if (p->new_blocks > p->max_blocks)
        return -EFBIG;
    p->bitmap_blocks = need;
    if (need <= in_place)
        return 0;
    /* relocate into the journal tail, right before the journal's end;
     * twice the room needed when the journal can spare it, so that the
     * next growth up to twice the size happens in place */
    uint64_t take = need * 2 <= spare ? need * 2 : need;
    p->relocated = 1;
    p->journal_blocks = sb->journal_blocks - take;
    p->bitmap_start = journal_end - take;
    return 0;
}

/* Reads bitmap block g of the old bitmap with the bits of blocks >= old
 * cleared (padding, ignored by the old filesystem), into buf. */
static int old_bitmap_block(struct fs_offline *o, uint64_t g, unsigned char *buf)
{
    const struct mmapfs_disk_superblock *sb = &o->sb;
    int err = mmio_read_at(o->io, (sb->block_bitmap_start + g) * MMAPFS_BLOCK_SIZE,
                           buf, MMAPFS_BLOCK_SIZE);
    if (err)
        return err;
    uint64_t base = g * BITS_PER_BLOCK;
    for (uint64_t i = sb->block_count > base ? sb->block_count - base : 0;
         i < BITS_PER_BLOCK; i++)
        buf[i / 8] &= (unsigned char)~(1u << (i % 8));
    return 0;
}

/* Writes the new block bitmap where the old superblock does not look. */
static int write_bitmap(struct fs_offline *o, const struct fs_grow_plan *p)
{
    const struct mmapfs_disk_superblock *sb = &o->sb;
    unsigned char *buf = malloc(MMAPFS_BLOCK_SIZE);
    int err = 0;

    if (!buf)
        return -ENOMEM;
    for (uint64_t g = 0; g < p->bitmap_blocks && !err; g++) {
        int old = g < sb->block_bitmap_blocks;
        if (!p->relocated && old && g + 1 < sb->block_bitmap_blocks)
            continue;               /* in place: full old blocks stay as they are */
        if (old)
            err = old_bitmap_block(o, g, buf);
        else
            memset(buf, 0, MMAPFS_BLOCK_SIZE);
        if (!err)
            err = mmio_write_at(o->io, (p->bitmap_start + g) * MMAPFS_BLOCK_SIZE,
                                buf, MMAPFS_BLOCK_SIZE);
    }
    free(buf);
    return err;
}

/* Makes an image file at least bytes long (sparse) and reopens the engine
 * over it; a device must already be large enough. */
static int extend_image(struct fs_offline *o, uint64_t bytes)
{
    if (bytes <= o->image_bytes)
        return 0;
    if (!o->regular)
        return -ENOSPC;
    if (ftruncate(o->lock_fd, (off_t)bytes) != 0)
        return -errno;
    mmio_close(o->io);
    o->io = NULL;
    int err = mmio_open(&o->io, o->path, 0, 0, NULL);
    if (!err)
        o->image_bytes = mmio_size(o->io);
    return err;
}

int fs_grow(struct fs_offline *o, uint64_t new_bytes, struct fs_grow_plan *p,
            fs_grow_hook hook, void *ctx)
{
    struct mmapfs_disk_superblock sb = o->sb;
    int err = fs_grow_plan(o, new_bytes, p);

    if (err || p->new_blocks == p->old_blocks)
        return err;
    err = extend_image(o, p->new_blocks * MMAPFS_BLOCK_SIZE);
    if (err)
        return err;
    if (hook)
        hook(FS_GROW_EXTENDED, ctx);
    err = write_bitmap(o, p);
    if (err)
        return err;
    if (hook)
        hook(FS_GROW_BITMAP, ctx);
    if (p->relocated) {
        struct jnl_geometry geo = { sb.journal_start, sb.journal_blocks, sb.block_count };
        err = jnl_reshape(o->io, &geo, p->journal_blocks);
        if (err)
            return err;
        if (hook)
            hook(FS_GROW_JOURNAL, ctx);
    }
    err = mmio_sync(o->io);
    if (err)
        return err;
    if (hook)
        hook(FS_GROW_SYNCED, ctx);

    sb.free_blocks += p->new_blocks - p->old_blocks;
    sb.block_count = p->new_blocks;
    sb.block_bitmap_start = p->bitmap_start;
    sb.block_bitmap_blocks = p->bitmap_blocks;
    sb.journal_blocks = p->journal_blocks;
    sb.write_time = (uint64_t)time(NULL);
    super_checksum(&sb);
    char why[200];
    if (super_validate(&sb, o->image_bytes, why, sizeof(why)) != 0)
        return -EUCLEAN;            /* a bug: never write a superblock we would reject */
    if (sb.feature_compat & MMAPFS_FEATURE_COMPAT_BACKUP_SB) {
        /* the backup first: a primary torn by a crash is restored from it */
        err = mmio_write_at(o->io, sb.backup_block * MMAPFS_BLOCK_SIZE, &sb, sizeof(sb));
        if (!err)
            err = mmio_sync(o->io);
        if (err)
            return err;
    }
    err = mmio_write_at(o->io, 0, &sb, sizeof(sb));
    if (err)
        return err;
    if (hook)
        hook(FS_GROW_SUPER, ctx);
    err = mmio_sync(o->io);
    if (!err)
        o->sb = sb;
    return err;
}
