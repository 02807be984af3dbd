/*
 * mmp.h — multi-mount protection (MMP), like ext4's: a heartbeat block on
 * the device that a read-write mount keeps changing, so that a second
 * mount on another machine (or through another path to the same device:
 * a loop device and its file, two loop devices) that cannot see the local
 * flock refuses. The format is in src/fs/format.h (struct
 * mmapfs_disk_mmp) and docs/FORMAT.md; the behaviour in
 * docs/ROBUSTNESS.md.
 *
 * The block is read and written through a descriptor of its own, opened
 * with O_DIRECT (when the host filesystem allows it) and O_DSYNC: never
 * through the engine's mapping, whose page cache another machine does not
 * see and which this machine would not refresh.
 */
#ifndef MMAPFS_MMP_H
#define MMAPFS_MMP_H

#include <stdint.h>
#include <stdio.h>

#include "fs/format.h"

struct mmp;

/* What claiming is for: a mount (heartbeat thread) or fsck repairs (the
 * block says FSCK while it runs; no heartbeat). */
enum mmp_mode { MMP_MOUNT = 0, MMP_FSCK = 1 };

/* Claims the image at path whose superblock sb has the MMP feature:
 *  - a block that says CLEAN is taken at once (our sequence number is
 *    written, read back after a short settle time);
 *  - a block that says FSCK, or a live heartbeat of a process of this
 *    host, is refused at once;
 *  - any other block (a live or dead holder elsewhere, or a damaged
 *    block) is watched for 2 x interval + 1 seconds: if it changed, the
 *    holder is alive and the claim is refused; if not, it is taken over.
 * A refusal prints one line naming the holder (host, pid, device, age of
 * the last update) to err (prefixed with prog and path) and returns
 * -EBUSY. With MMP_MOUNT a heartbeat thread then rewrites the block every
 * interval seconds, first checking that it still holds our last sequence
 * number; if it does not (another writer took the image), or the write
 * fails, the lost hook is called once (see fs_mmp_on_lost). Errors: -EBUSY,
 * -errno of open/pread/pwrite, -ENOMEM. *out is NULL on error. */
int fs_mmp_claim(struct mmp **out, const char *path, const struct mmapfs_disk_superblock *sb,
              enum mmp_mode mode, const char *prog, FILE *err);

/* Sets the function the heartbeat thread calls (once) when the image was
 * taken by another writer or the block cannot be written any more. If
 * that already happened, fn is called at once. m may be NULL (no-op). */
void fs_mmp_on_lost(struct mmp *m, void (*fn)(void *ctx), void *ctx);

/* Stops the heartbeat and, if clean and the block still holds our
 * sequence number, marks it CLEAN so that the next mount is immediate.
 * Frees m. Returns 0 or the -errno of the final write (m == NULL: 0). */
int fs_mmp_release(struct mmp *m, int clean);

/* Reads the MMP block of the image at path without claiming it (fsck -n).
 * 0 and *out, or -errno. */
int fs_mmp_peek(const char *path, uint64_t blk, struct mmapfs_disk_mmp *out);

/* 1 if b has the right magic and checksum. */
int fs_mmp_block_valid(const struct mmapfs_disk_mmp *b);

/* Fills b as a CLEAN block with a valid checksum (mkfs). */
void fs_mmp_block_clean(struct mmapfs_disk_mmp *b, uint32_t interval);

/* Prints "host H, pid P, via DEVICE, last update N s ago" of b into buf. */
void fs_mmp_describe(const struct mmapfs_disk_mmp *b, char *buf, size_t len);

#endif
