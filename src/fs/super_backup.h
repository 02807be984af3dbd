/*
 * super_backup.h — the backup superblock (feature compat 0x1,
 * docs/FORMAT.md §4c): finding a usable copy when block 0 is damaged,
 * comparing it with the primary, turning it into a primary again.
 * Used by mkfs, mmapfs-resize, fsck and mount.
 */
#ifndef MMAPFS_SUPER_BACKUP_H
#define MMAPFS_SUPER_BACKUP_H

#include <stddef.h>
#include <stdint.h>

#include "fs/format.h"
#include "mmapfs/mmio.h"

/* Reads len bytes at byte offset off of the image into buf: 0 or -errno. */
typedef int (*super_backup_read_fn)(void *ctx, uint64_t off, void *buf, size_t len);

/* 1 if *sb, read from block blk of an image of image_bytes bytes, is a
 * backup superblock that can stand in for the primary: it passes
 * fs_super_validate, has MMAPFS_FEATURE_COMPAT_BACKUP_SB and names blk as
 * its own place. Else 0. */
int fs_super_backup_usable(const struct mmapfs_disk_superblock *sb, uint64_t blk,
                        uint64_t image_bytes);

/* Looks for a usable backup in the blocks it may occupy
 * (MMAPFS_BACKUP_SB_FIRST..LAST, whatever block 0 says), reading through
 * read(ctx, ...). 1 and *out, *blk when found; 0 when none is; -errno if
 * a read failed and nothing was found. */
int fs_super_backup_find(super_backup_read_fn read, void *ctx, uint64_t image_bytes,
                      struct mmapfs_disk_superblock *out, uint64_t *blk);

/* 1 if the two superblocks agree on every field that locates something
 * (sizes, regions, MMP, backup place, incompat features but XATTR_CHAIN,
 * uuid, the grown inode table's description), the fields only mkfs and
 * mmapfs-resize change. */
int fs_super_backup_same_layout(const struct mmapfs_disk_superblock *a,
                             const struct mmapfs_disk_superblock *b);

/* Turns a backup copy into a superblock to write at block 0: its counters
 * and state may be stale, so it is marked MOUNTED | ERROR (counts are
 * hints, fsck recounts them), the orphan list is dropped (fsck finds the
 * orphans), next_generation jumps by 2^32 (no generation number handed
 * out since the copy was made is handed out again), XATTR_CHAIN is set
 * (it may have been set after the copy), and the checksum is recomputed. */
void fs_super_backup_to_primary(struct mmapfs_disk_superblock *sb);

/* 1 if the image behind io was cut short (or the device is too small):
 * block 0 is a sound superblock of a larger filesystem
 * (fs_super_image_short) and no usable backup says otherwise (a backup
 * that fits makes it a damaged block count, which fsck repairs). Fills
 * msg with what to do. Else 0 (msg may have been written). */
int fs_super_image_cut(struct mmio *io, const struct mmapfs_disk_superblock *sb, char *msg,
                       size_t msg_len);

/* Mount's message for a superblock that fs_super_validate rejected with err
 * and msg: for a cut image what to do and -EFBIG; else names a usable
 * backup and says to run fsck.mmapfs -y, or says fsck.mmapfs -y for a
 * damaged superblock (-EUCLEAN), and returns err. One line on stderr,
 * "mmapfs: <path>: ...". */
int fs_super_backup_report(struct mmio *io, const char *path,
                           const struct mmapfs_disk_superblock *sb, int err, const char *msg);

/* For a mount that failed on a superblock that passed validation: when
 * the backup at sb's backup_block is a usable copy of the same filesystem
 * (uuid) that locates the regions differently, block 0's layout fields
 * may be damaged under a valid checksum (fsck.mmapfs -y finds which copy
 * fits the image). Fills buf with a phrase to end the mount's message
 * with ("; the backup superblock ... run fsck.mmapfs -y"), else "";
 * returns buf. */
const char *fs_super_backup_hint(struct mmio *io, const struct mmapfs_disk_superblock *sb,
                                 char *buf, size_t len);

#endif
