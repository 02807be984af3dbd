/*
 * discard.c — freed blocks given back to the storage (mount option
 * discard): a hole in an image file, BLKDISCARD on a block device.
 *
 * fs_alloc_release calls fs_discard_released for each run it makes reusable,
 * after the transaction that freed it is durable (invariant 4: before
 * that, a crash would bring back the metadata that still points to the
 * blocks, and their content must still be there) and before the run
 * leaves the pending list (so no allocation can hand the blocks out and
 * write to them while they are being punched). Runs are the pending
 * list's: sorted, disjoint and merged, so a big rm punches few long runs;
 * runs under 64 KiB are left alone (below).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fs/fs_i.h"

/* Runs shorter than this are not punched: a hole costs the host file
 * system a transaction (about 1..2 ms measured under load), small freed
 * runs are what fsync-heavy work (create, fsync, unlink) produces on every
 * commit, and the allocator hands them out again soon anyway. Deleting
 * files of any size in bulk (rm -r) frees adjacent blocks in one commit,
 * which the pending list merges into long runs. mmapfs-trim gets the rest.
 * docs/MOUNT.md, "Discard". */
#define DISCARD_MIN_BLOCKS 16u      /* 64 KiB */

void fs_discard_released(struct fs *fs, uint64_t start, uint64_t end)
{
    if (end <= start || end - start < DISCARD_MIN_BLOCKS)
        return;
    int err = mmio_discard(fs->io, start * MMAPFS_BLOCK_SIZE,
                           (end - start) * MMAPFS_BLOCK_SIZE);
    if (err == -EOPNOTSUPP) {
        fs->discard = 0;
        fprintf(stderr, "mmapfs: %s: the image cannot discard (hole punching or "
                "BLKDISCARD not supported); discard is off for this mount\n",
                fs->path ? fs->path : "image");
    } else if (err && fs->discard == 1) {
        /* only space is lost: the blocks are free and reused normally;
         * logged once per mount (fs->discard 2: on, failure reported) */
        fs->discard = 2;
        fprintf(stderr, "mmapfs: %s: discard of blocks %llu..%llu failed: %s (further failures not reported)\n",
                fs->path ? fs->path : "image", (unsigned long long)start,
                (unsigned long long)end - 1, strerror(-err));
    }
}
