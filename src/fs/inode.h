/*
 * inode.h — what outside the core may use of the inode record's rules
 * (src/fs/inode.c): its checksum and liveness. Pure functions over a struct
 * mmapfs_disk_inode (fs/format.h, docs/FORMAT.md); no mounted filesystem
 * needed. Used by the core (inode writes, mkfs) and by fsck. Journaled
 * access to the inodes of a mounted filesystem stays private to the core
 * (fs_i.h).
 */
#ifndef MMAPFS_FS_INODE_H
#define MMAPFS_FS_INODE_H

#include <stdint.h>

#include "fs/format.h"

/* mfs_crc32c(le64 ino ‖ the record's bytes before its checksum field). */
uint32_t fs_inode_checksum(uint64_t ino, const struct mmapfs_disk_inode *di);

/* Does the record of ino belong to a live inode, whatever the inode bitmap
 * says (the bitmap carries no checksum)? As e2fsck decides: links, a file
 * type mmapfs stores and a good checksum (a released inode keeps its
 * record with nlink 0, a never-used one is zero), and created since mkfs
 * (mkfs_time of the superblock; a second of slack, as the inode clock is
 * the coarse one): an older record is a leftover of an earlier filesystem
 * in a table mkfs did not zero. */
int fs_inode_record_looks_live(uint64_t ino, const struct mmapfs_disk_inode *di,
                               uint64_t mkfs_time);

#endif
