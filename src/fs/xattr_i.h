/*
 * xattr_i.h — the in-inode extended attribute area (xattr_area of struct
 * mmapfs_disk_inode, feature MMAPFS_FEATURE_INCOMPAT_INODE_XATTR; format.h,
 * docs/FORMAT.md §6): the functions private to the core's xattr files
 * (xattr.c, xattr_inode.c), on top of the public ones of fs/xattr.h
 * (validate, find, remove) that fsck uses too. Pure functions over the 60
 * bytes; no function reads outside the area, whatever it holds.
 */
#ifndef MMAPFS_XATTR_I_H
#define MMAPFS_XATTR_I_H

#include <stddef.h>
#include <stdint.h>

#include "fs/format.h"
#include "fs/xattr.h"

/* Next entry of a validated area after *off (start with *off = 0): 1 and
 * *e, or 0 at the end (then *off is the bytes used). */
int fs_ixattr_next(const uint8_t *area, size_t *off, struct ixattr_entry *e);

/* Does e have the full name (name, len)? */
int fs_ixattr_name_is(const struct ixattr_entry *e, const char *name, size_t len);

/* Copies e's full name to buf (room for 255 bytes); its length. */
size_t fs_ixattr_full_name(const struct ixattr_entry *e, char *buf);

/* Appends (name, value) to a validated area that does not hold the name:
 * 0, or -ENOSPC when it does not fit (the area is unchanged). */
int fs_ixattr_add(uint8_t *area, const char *name, size_t len, const void *value, size_t size);

#endif
