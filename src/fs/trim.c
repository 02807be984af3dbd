/*
 * trim.c — offline discard of every free block (mmapfs-trim): for images
 * written before the discard mount option existed, mounted with nodiscard,
 * or copied with a tool that filled the holes.
 *
 * Reads the block bitmap a block at a time, collects runs of zero bits
 * from data_start on (across bitmap blocks) and discards each run with one
 * mmio_discard call. The image is clean and locked (fs_offline_open), so
 * no block changes state meanwhile.
 */
#include <errno.h>
#include <stdlib.h>

#include "fs/offline.h"

#define BITS_PER_BLOCK (MMAPFS_BLOCK_SIZE * 8ull)

/* Discards [start, end) if not empty; counts it. */
static int flush_run(struct fs_offline *o, uint64_t start, uint64_t end,
                     uint64_t *runs, uint64_t *blocks)
{
    if (end <= start)
        return 0;
    int err = mmio_discard(o->io, start * MMAPFS_BLOCK_SIZE,
                           (end - start) * MMAPFS_BLOCK_SIZE);
    if (err)
        return err;
    (*runs)++;
    *blocks += end - start;
    return 0;
}

/* One pass over the block bitmap: counts its free blocks (zero bits of
 * [0, block_count), as the mount's allocator counts them) into *free and,
 * with discard, gives every run of free blocks from data_start on back. */
static int scan(struct fs_offline *o, int discard, uint64_t *free_out, uint64_t *runs,
                uint64_t *blocks)
{
    const struct mmapfs_disk_superblock *sb = &o->sb;
    uint64_t run_start = 0, free_bits = 0;
    int in_run = 0, err = 0;
    unsigned char *bm = malloc(MMAPFS_BLOCK_SIZE);

    if (!bm)
        return -ENOMEM;
    for (uint64_t g = 0; g < sb->block_bitmap_blocks && !err; g++) {
        uint64_t base = g * BITS_PER_BLOCK;
        err = mmio_read_at(o->io, (sb->block_bitmap_start + g) * MMAPFS_BLOCK_SIZE,
                           bm, MMAPFS_BLOCK_SIZE);
        for (uint64_t i = 0; i < BITS_PER_BLOCK && !err; i++) {
            uint64_t blk = base + i;
            if (blk >= sb->block_count)
                break;
            int bit = (bm[i / 8] >> (i % 8)) & 1;
            free_bits += !bit;
            int used = blk < sb->data_start || bit;
            if (!discard)
                continue;
            if (!used && !in_run) {
                run_start = blk;
                in_run = 1;
            } else if (used && in_run) {
                err = flush_run(o, run_start, blk, runs, blocks);
                in_run = 0;
            }
        }
    }
    if (!err && in_run)
        err = flush_run(o, run_start, sb->block_count, runs, blocks);
    free(bm);
    *free_out = free_bits;
    return err;
}

int fs_trim(struct fs_offline *o, uint64_t *runs_out, uint64_t *blocks_out)
{
    uint64_t runs = 0, blocks = 0, free_bits = 0;
    /* The bitmaps carry no checksum, but the cleanly unmounted superblock's
     * free count is exact (docs/FORMAT.md §14): a bitmap that counts
     * otherwise is damaged, and its clear bits may be blocks in use. */
    int err = scan(o, 0, &free_bits, &runs, &blocks);
    if (!err && free_bits != o->sb.free_blocks) {
        blocks = free_bits;
        err = -EUCLEAN;
    }
    if (!err)
        err = scan(o, 1, &free_bits, &runs, &blocks);
    if (runs_out)
        *runs_out = runs;
    if (blocks_out)
        *blocks_out = blocks;
    return err;
}
