/*
 * xattr.h — what outside the core may use of the in-inode extended
 * attribute area (xattr_area of struct mmapfs_disk_inode, feature
 * MMAPFS_FEATURE_INCOMPAT_INODE_XATTR; fs/format.h, docs/FORMAT.md §6):
 * validating an area, finding an entry by name, taking one out. fsck uses
 * them on the records it reads. Pure functions over the 60 bytes
 * (src/fs/xattr_inode.c); no function reads outside the area, whatever it
 * holds. The rest of the area's functions (walking the entries, adding
 * one) are private to the core's xattr files (fs/xattr_i.h).
 */
#ifndef MMAPFS_XATTR_H
#define MMAPFS_XATTR_H

#include <stddef.h>
#include <stdint.h>

#include "fs/format.h"

/* One entry of a validated area. */
struct ixattr_entry {
    size_t off;                /* first byte of the entry in the area */
    size_t size;               /* bytes it takes (header, name, value) */
    unsigned index;            /* enum mmapfs_ixattr_index */
    const uint8_t *name;       /* stored name (after the prefix), name_len bytes */
    size_t name_len;
    const uint8_t *value;
    size_t value_len;
};

/* Validates area (MMAPFS_IXATTR_BYTES bytes): indexes, lengths within the
 * area, full names 1..255 bytes, no repeated name, zeros after the end.
 * The number of entries (>= 0), or -1 with a message in msg. */
int fs_ixattr_check(const uint8_t *area, char *msg, size_t msg_len);

/* Entry named (name, len) of a validated area: 1 and *e, or 0. */
int fs_ixattr_find(const uint8_t *area, const char *name, size_t len, struct ixattr_entry *e);

/* Takes entry e out of a validated area, closing the gap. */
void fs_ixattr_remove(uint8_t *area, const struct ixattr_entry *e);

#endif
