/*
 * resize.c — offline growth of a filesystem (mmapfs-resize).
 *
 * Growing adds blocks [old, new) to the data area: their block bitmap bits
 * must exist and be 0, the superblock gets the new block_count, block
 * bitmap geometry and free count. The inode count grows with the size, at
 * the image's own ratio of blocks per inode (mkfs's 16 KiB per inode
 * unless it was given -N): the added inodes' table is one new extent at
 * the start of the new space, listed in the superblock (feature ITAB). The
 * first inode table, data_start and the journal's start stay.
 *
 * Where the block bitmap's bits go (docs/FORMAT.md, "Growing"):
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
 * The inode bitmap grows in place when its blocks (or its room in the
 * data area) suffice; else it moves to the start of the new space, with
 * room for INODE_BITMAP_ROOM times its size, and the blocks it leaves
 * become a gap (metadata region) or an inode table extent (a room in the
 * data area: its blocks stay in use, unused records need no content).
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
#include "util/progress.h"
#include "fs/mkfs.h"
#include "fs/offline.h"

#define BITS_PER_BLOCK (MMAPFS_BLOCK_SIZE * 8ull)
#define INODE_BITMAP_ROOM 4        /* a moved inode bitmap: room for 4x its size */
#define ZERO_CHUNK_BLOCKS 256      /* inode table zeroing: 1 MiB per write */

static uint64_t div_up(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

/* Blocks of the whole inode table now: the first table and the extents. */
static uint64_t table_blocks_now(const struct mmapfs_disk_superblock *sb)
{
    uint64_t n = sb->inode_table_blocks;
    if (sb->feature_incompat & MMAPFS_FEATURE_INCOMPAT_ITAB)
        for (uint32_t i = 0; i < sb->itab.count && i < MMAPFS_ITAB_EXTENTS_MAX; i++)
            n += sb->itab.ext[i].blocks;
    return n;
}

/* The inode part of the plan (p's block part is done): inode_count x
 * new / old inodes, in whole table blocks, at most MKFS_MAX_INODES, and
 * only when the new space can give the table and a moved bitmap at most
 * half of itself and the superblock has two extent slots free. Else the
 * inodes stay (itab_blocks 0). */
static void plan_inodes(const struct mmapfs_disk_superblock *sb, struct fs_grow_plan *p)
{
    int grown = (sb->feature_incompat & MMAPFS_FEATURE_INCOMPAT_ITAB) != 0;
    uint64_t room_now = grown ? sb->itab.inode_bitmap_room : 0;
    uint64_t now = table_blocks_now(sb);
    uint64_t space = p->new_blocks - p->old_blocks;

    p->old_inodes = p->new_inodes = sb->inode_count;
    p->ibm_start = sb->inode_bitmap_start;
    p->ibm_blocks = sb->inode_bitmap_blocks;
    p->ibm_room = room_now;
    unsigned __int128 want = (unsigned __int128)sb->inode_count * p->new_blocks / p->old_blocks;
    uint64_t most = MKFS_MAX_INODES / MMAPFS_INODES_PER_BLOCK;      /* table blocks */
    uint64_t total = want / MMAPFS_INODES_PER_BLOCK > most ? most
                   : (uint64_t)(want / MMAPFS_INODES_PER_BLOCK);
    if (total <= now || (grown && sb->itab.count + 2 > MMAPFS_ITAB_EXTENTS_MAX))
        return;
    uint64_t ext = total - now;
    uint64_t need = div_up(total * MMAPFS_INODES_PER_BLOCK, BITS_PER_BLOCK);
    uint64_t take = 0;
    int reuse = 0;
    if (need > (room_now ? room_now : sb->inode_bitmap_blocks)) {
        /* moves; a room it leaves in the data area becomes table too */
        reuse = room_now != 0;
        if (reuse) {
            if (total + room_now > most) {
                if (ext <= room_now)
                    return;
                ext -= room_now;
            }
            total = now + ext + room_now;
            need = div_up(total * MMAPFS_INODES_PER_BLOCK, BITS_PER_BLOCK);
        }
        take = need * INODE_BITMAP_ROOM;
        if (take + ext > space / 2)
            take = need;
    }
    if (take + ext > space / 2)
        return;                     /* too little new space: the inodes stay */
    p->itab_blocks = ext;
    p->itab_start = p->old_blocks + take;
    p->new_inodes = total * MMAPFS_INODES_PER_BLOCK;
    p->ibm_blocks = need;
    if (take) {
        p->ibm_moved = 1;
        p->reuse_room = reuse;
        p->ibm_start = p->old_blocks;
        p->ibm_room = take;
    }
}

/* The block part of the plan (fs_grow_plan). */
static int plan_blocks(const struct fs_offline *o, uint64_t new_bytes, struct fs_grow_plan *p)
{
    const struct mmapfs_disk_superblock *sb = &o->sb;
    uint64_t in_place = mmapfs_block_bitmap_room_end(sb) - sb->block_bitmap_start;
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

int fs_grow_plan(const struct fs_offline *o, uint64_t new_bytes, struct fs_grow_plan *p)
{
    int err = plan_blocks(o, new_bytes, p);
    if (!err && p->new_blocks > p->old_blocks)
        plan_inodes(&o->sb, p);
    return err;
}

/* A bitmap as it grows: the old one (old_bits valid bits in old_blocks
 * blocks at old_start), the new one (new_blocks blocks at new_start; the
 * same start: in place), and the new bits [set_lo, set_hi) to set (bits
 * past old_bits are otherwise 0). */
struct bitmap_grow {
    uint64_t old_start, old_blocks, old_bits;
    uint64_t new_start, new_blocks;
    uint64_t set_lo, set_hi;
};

/* Bitmap block g of the new bitmap into buf: the old block with its bits
 * >= old_bits cleared (padding, ignored by the old filesystem), or zeros,
 * then the bits of [set_lo, set_hi) in it set. */
static int new_bitmap_block(struct fs_offline *o, const struct bitmap_grow *m, uint64_t g,
                            unsigned char *buf)
{
    uint64_t base = g * BITS_PER_BLOCK;
    memset(buf, 0, MMAPFS_BLOCK_SIZE);
    if (g < m->old_blocks) {
        int err = mmio_read_at(o->io, (m->old_start + g) * MMAPFS_BLOCK_SIZE, buf,
                               MMAPFS_BLOCK_SIZE);
        if (err)
            return err;
        for (uint64_t i = m->old_bits > base ? m->old_bits - base : 0; i < BITS_PER_BLOCK; i++)
            buf[i / 8] &= (unsigned char)~(1u << (i % 8));
    }
    for (uint64_t b = m->set_lo > base ? m->set_lo : base;
         b < m->set_hi && b < base + BITS_PER_BLOCK; b++)
        buf[(b - base) / 8] |= (unsigned char)(1u << ((b - base) % 8));
    return 0;
}

/* Writes the new bitmap where the old superblock does not look: in place,
 * the full old blocks stay as they are (only the last one's padding and
 * the blocks after it are written). */
static int write_bitmap(struct fs_offline *o, const struct bitmap_grow *m)
{
    unsigned char *buf = malloc(MMAPFS_BLOCK_SIZE);
    int in_place = m->new_start == m->old_start;
    int err = 0;

    if (!buf)
        return -ENOMEM;
    for (uint64_t g = in_place && m->old_blocks ? m->old_blocks - 1 : 0;
         g < m->new_blocks && !err; g++) {
        err = new_bitmap_block(o, m, g, buf);
        if (!err)
            err = mmio_write_at(o->io, (m->new_start + g) * MMAPFS_BLOCK_SIZE,
                                buf, MMAPFS_BLOCK_SIZE);
    }
    free(buf);
    return err;
}

/* Zeroes the new inode table extent; blocks past old_image_bytes of an
 * image file read as zeros already (the file was just extended) and are
 * not written. In an image file, a moved inode bitmap's room gets host
 * space (fallocate), as mkfs gives the bitmaps; the table extent does
 * not: the mount reserves each of its blocks when it first allocates an
 * inode there (fs_alloc_inode, hostspace.c), so a sparse image grown by
 * terabytes does not take gigabytes of table from the host. */
static int zero_table(struct fs_offline *o, const struct fs_grow_plan *p,
                      uint64_t old_image_bytes)
{
    uint64_t end = p->itab_start + p->itab_blocks;
    uint64_t zeros_from = o->regular ? old_image_bytes / MMAPFS_BLOCK_SIZE : end;
    uint64_t stop = zeros_from < end ? zeros_from : end;
    int err = 0;
    if (o->regular && p->ibm_moved) {
        int r = fs_host_reserve(o->lock_fd, p->ibm_start * MMAPFS_BLOCK_SIZE,
                                p->ibm_room * MMAPFS_BLOCK_SIZE);
        if (r < 0)
            return r == -EDQUOT ? -ENOSPC : r;
    }
    if (stop <= p->itab_start)
        return 0;
    void *zeros = calloc(ZERO_CHUNK_BLOCKS, MMAPFS_BLOCK_SIZE);
    err = zeros ? 0 : -ENOMEM;
    for (uint64_t b = p->itab_start; b < stop && !err; b += ZERO_CHUNK_BLOCKS) {
        uint64_t n = stop - b < ZERO_CHUNK_BLOCKS ? stop - b : ZERO_CHUNK_BLOCKS;
        err = mmio_write_at(o->io, b * MMAPFS_BLOCK_SIZE, zeros, n * MMAPFS_BLOCK_SIZE);
        mfs_progress_update(o->progress, "zeroing the new inode table:",
                            b + n - p->itab_start, stop - p->itab_start);
    }
    mfs_progress_clear(o->progress);
    free(zeros);
    return err;
}

/* The new inode table extent (zeroed) and the grown inode bitmap. */
static int write_inodes(struct fs_offline *o, const struct fs_grow_plan *p,
                        uint64_t old_image_bytes)
{
    const struct mmapfs_disk_superblock *sb = &o->sb;
    struct bitmap_grow m = { sb->inode_bitmap_start, sb->inode_bitmap_blocks,
                             sb->inode_count, p->ibm_start, p->ibm_blocks, 0, 0 };
    int err = zero_table(o, p, old_image_bytes);
    return err ? err : write_bitmap(o, &m);
}

/* The superblock's inode fields after the growth p (itab_blocks != 0). */
static void grow_inode_fields(struct mmapfs_disk_superblock *sb, const struct fs_grow_plan *p)
{
    struct mmapfs_disk_itab *t = &sb->itab;
    uint64_t old_room = t->inode_bitmap_room, old_start = sb->inode_bitmap_start;

    if (!(sb->feature_incompat & MMAPFS_FEATURE_INCOMPAT_ITAB))
        memset(t, 0, sizeof(*t));
    sb->feature_incompat |= MMAPFS_FEATURE_INCOMPAT_ITAB;
    t->ext[t->count++] = (struct mmapfs_disk_itab_extent){ p->itab_start, p->itab_blocks };
    if (p->reuse_room)
        t->ext[t->count++] = (struct mmapfs_disk_itab_extent){ old_start, old_room };
    t->inode_bitmap_room = p->ibm_room;
    sb->inode_bitmap_start = p->ibm_start;
    sb->inode_bitmap_blocks = p->ibm_blocks;
    sb->free_inodes += p->new_inodes - p->old_inodes;
    sb->inode_count = p->new_inodes;
    sb->free_blocks -= p->itab_blocks + (p->ibm_moved ? p->ibm_room : 0);
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
    uint64_t old_image_bytes = o->image_bytes;
    int err = fs_grow_plan(o, new_bytes, p);

    if (err || p->new_blocks == p->old_blocks)
        return err;
    err = extend_image(o, p->new_blocks * MMAPFS_BLOCK_SIZE);
    if (err)
        return err;
    if (hook)
        hook(FS_GROW_EXTENDED, ctx);
    /* the new table extent and a moved inode bitmap: the first new blocks */
    struct bitmap_grow bm = { sb.block_bitmap_start, sb.block_bitmap_blocks, sb.block_count,
                              p->bitmap_start, p->bitmap_blocks, p->old_blocks,
                              p->itab_blocks ? p->itab_start + p->itab_blocks : 0 };
    err = write_bitmap(o, &bm);
    if (err)
        return err;
    if (hook)
        hook(FS_GROW_BITMAP, ctx);
    if (p->itab_blocks) {
        err = write_inodes(o, p, old_image_bytes);
        if (err)
            return err;
        if (hook)
            hook(FS_GROW_INODES, ctx);
    }
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
    if (p->itab_blocks)
        grow_inode_fields(&sb, p);
    sb.write_time = (uint64_t)time(NULL);
    fs_super_checksum(&sb);
    char why[200];
    if (fs_super_validate(&sb, o->image_bytes, why, sizeof(why)) != 0)
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
