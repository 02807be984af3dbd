/*
 * xattr_i.h — the in-inode extended attribute area (xattr_area of struct
 * mmapfs_disk_inode, feature MMAPFS_FEATURE_INCOMPAT_INODE_XATTR; format.h,
 * docs/FORMAT.md §6). Pure functions over the 60 bytes, shared by the
 * filesystem (xattr.c) and fsck (check_*.c). No function reads outside
 * the area, whatever it holds.
 */
#ifndef MMAPFS_XATTR_I_H
#define MMAPFS_XATTR_I_H

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

/* Next entry of a validated area after *off (start with *off = 0): 1 and
 * *e, or 0 at the end (then *off is the bytes used). */
int fs_ixattr_next(const uint8_t *area, size_t *off, struct ixattr_entry *e);

/* Does e have the full name (name, len)? */
int fs_ixattr_name_is(const struct ixattr_entry *e, const char *name, size_t len);

/* Copies e's full name to buf (room for 255 bytes); its length. */
size_t fs_ixattr_full_name(const struct ixattr_entry *e, char *buf);

/* Entry named (name, len) of a validated area: 1 and *e, or 0. */
int fs_ixattr_find(const uint8_t *area, const char *name, size_t len, struct ixattr_entry *e);

/* Takes entry e out of a validated area, closing the gap. */
void fs_ixattr_remove(uint8_t *area, const struct ixattr_entry *e);

/* Appends (name, value) to a validated area that does not hold the name:
 * 0, or -ENOSPC when it does not fit (the area is unchanged). */
int fs_ixattr_add(uint8_t *area, const char *name, size_t len, const void *value, size_t size);

#endif
