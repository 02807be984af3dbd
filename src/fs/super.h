/*
 * super.h — what outside the core may use of the superblock's rules
 * (src/fs/super.c): the validation mount applies to a superblock image,
 * and its checksum. Pure functions over a struct mmapfs_disk_superblock
 * (fs/format.h, docs/FORMAT.md); no mounted filesystem needed. Used by
 * the core (mount, mkfs, mmapfs-resize, the backup superblock) and by
 * fsck. The journaled access to the superblock of a mounted filesystem
 * stays private to the core (fs_i.h).
 */
#ifndef MMAPFS_FS_SUPER_H
#define MMAPFS_FS_SUPER_H

#include <stddef.h>
#include <stdint.h>

#include "fs/format.h"

/* Validates a superblock image against the image size in bytes; fills msg
 * with the reason on failure. -EINVAL: not mmapfs; -EUCLEAN: corrupt. Used by
 * mount, mkfs (refuse to overwrite) and fsck. */
int fs_super_validate(const struct mmapfs_disk_superblock *sb, uint64_t image_bytes,
                   char *msg, size_t msg_len);
/* Is the superblock sound (it passes fs_super_validate on an image of its
 * own size) but its filesystem larger than the image (image_bytes)? Then
 * fills msg with what to do and returns 1: fsck cannot repair a cut image,
 * the mount and the tools must not send the user to it first. Else 0 (msg
 * may have been written). */
int fs_super_image_short(const struct mmapfs_disk_superblock *sb, uint64_t image_bytes,
                         char *msg, size_t msg_len);
/* Do a and b describe the same layout (sizes, bitmap, inode table and
 * journal places)? A journal replay must not change it: mmapfs never
 * journals a geometry change (mmapfs-resize writes the superblock
 * offline), so a replayed superblock with another layout is damage; the
 * mount refuses it and fsck reports it (restores the old one with -y). */
int fs_super_same_geometry(const struct mmapfs_disk_superblock *a,
                           const struct mmapfs_disk_superblock *b);
/* Do a and b have the same features, XATTR_CHAIN aside? Only mkfs and
 * mmapfs-resize (offline, journal clean) change them, but a mount sets
 * XATTR_CHAIN in a transaction; a replayed superblock with other features
 * is damage, refused by the mount and put back by fsck -y. */
int fs_super_same_features(const struct mmapfs_disk_superblock *a,
                           const struct mmapfs_disk_superblock *b);
/* Gives *sb the features of *before, keeping its own XATTR_CHAIN bit. */
void fs_super_take_features(struct mmapfs_disk_superblock *sb,
                            const struct mmapfs_disk_superblock *before);
/* Stores the checksum of *sb's bytes before its checksum field. */
void fs_super_checksum(struct mmapfs_disk_superblock *sb);

#endif
