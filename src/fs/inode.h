/*
 * inode.h — what outside the core may use of the inode record's rules
 * (src/fs/inode.c): its checksum. A pure function over a struct
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

#endif
