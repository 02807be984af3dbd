/*
 * xattr_inode.c — extended attributes kept in the inode record (xattr_area,
 * MMAPFS_FEATURE_INCOMPAT_INODE_XATTR; docs/FORMAT.md §6), as ext4 keeps
 * small attributes in the spare bytes of its large inodes.
 *
 * The area is 60 bytes of packed entries {u8 index, u8 name_len, u8
 * value_len, name, value}. The index stands for a common prefix ("user.",
 * "security.", ...; the two POSIX ACL names are whole), so a one-entry ACL
 * ("system.posix_acl_access", 44 bytes of value) takes 47 bytes instead of
 * 71. Every function here works on the bytes alone and never reads past
 * them: fsck runs fs_ixattr_check on crafted records, the filesystem runs it
 * on each record before it trusts any entry.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fs/xattr_i.h"

static const struct {
    const char *prefix;
    size_t len;
    int whole;                 /* the prefix is the whole name: no stored name */
} prefixes[MMAPFS_IXATTR_INDEX_MAX + 1] = {
    [MMAPFS_IXATTR_USER]        = { "user.", 5, 0 },
    [MMAPFS_IXATTR_ACL_ACCESS]  = { "system.posix_acl_access", 23, 1 },
    [MMAPFS_IXATTR_ACL_DEFAULT] = { "system.posix_acl_default", 24, 1 },
    [MMAPFS_IXATTR_TRUSTED]     = { "trusted.", 8, 0 },
    [MMAPFS_IXATTR_SECURITY]    = { "security.", 9, 0 },
    [MMAPFS_IXATTR_SYSTEM]      = { "system.", 7, 0 },
    [MMAPFS_IXATTR_FULL]        = { "", 0, 0 },
};

/* Entry at off, checked against the area's bounds only: 1 and *e, 0 at the
 * end, -1 when it does not fit or its index is unknown. */
static int decode(const uint8_t *area, size_t off, struct ixattr_entry *e)
{
    if (off >= MMAPFS_IXATTR_BYTES || area[off] == MMAPFS_IXATTR_END)
        return 0;
    if (area[off] > MMAPFS_IXATTR_INDEX_MAX ||
        off + MMAPFS_IXATTR_ENTRY_HDR > MMAPFS_IXATTR_BYTES)
        return -1;
    e->off = off;
    e->index = area[off];
    e->name_len = area[off + 1];
    e->value_len = area[off + 2];
    e->size = MMAPFS_IXATTR_ENTRY_HDR + e->name_len + e->value_len;
    if (e->size > MMAPFS_IXATTR_BYTES - off)
        return -1;
    e->name = area + off + MMAPFS_IXATTR_ENTRY_HDR;
    e->value = e->name + e->name_len;
    return 1;
}

int fs_ixattr_next(const uint8_t *area, size_t *off, struct ixattr_entry *e)
{
    int r = decode(area, *off, e);
    if (r <= 0)
        return 0;
    *off += e->size;
    return 1;
}

int fs_ixattr_name_is(const struct ixattr_entry *e, const char *name, size_t len)
{
    size_t plen = prefixes[e->index].len;
    return len == plen + e->name_len && memcmp(name, prefixes[e->index].prefix, plen) == 0 &&
           memcmp(name + plen, e->name, e->name_len) == 0;
}

size_t fs_ixattr_full_name(const struct ixattr_entry *e, char *buf)
{
    size_t plen = prefixes[e->index].len;
    memcpy(buf, prefixes[e->index].prefix, plen);
    memcpy(buf + plen, e->name, e->name_len);
    return plen + e->name_len;
}

int fs_ixattr_check(const uint8_t *area, char *msg, size_t msg_len)
{
#define BAD(...) do { snprintf(msg, msg_len, __VA_ARGS__); return -1; } while (0)
    struct ixattr_entry e, prev;
    size_t off = 0;
    int n = 0, r;
    while ((r = decode(area, off, &e)) == 1) {
        size_t full = prefixes[e.index].len + e.name_len;
        if (prefixes[e.index].whole ? e.name_len != 0 : (full == 0 || full > MMAPFS_NAME_MAX))
            BAD("in-inode xattr %d at byte %zu: bad name length %zu", n, off, e.name_len);
        if (memchr(e.name, '\0', e.name_len))
            BAD("in-inode xattr %d at byte %zu: a NUL byte in the name", n, off);
        char name[MMAPFS_NAME_MAX + 1];
        size_t len = fs_ixattr_full_name(&e, name);
        for (size_t p = 0; decode(area, p, &prev) == 1 && p < off; p += prev.size)
            if (fs_ixattr_name_is(&prev, name, len))
                BAD("in-inode xattr %d at byte %zu repeats the name at byte %zu", n, off, p);
        off += e.size;
        n++;
    }
    if (r < 0)
        BAD("in-inode xattr %d at byte %zu: index %u or lengths run past the area", n, off,
            area[off]);
    for (size_t i = off; i < MMAPFS_IXATTR_BYTES; i++)
        if (area[i])
            BAD("in-inode xattr area: byte %zu after the last entry is not zero", i);
    return n;
#undef BAD
}

int fs_ixattr_find(const uint8_t *area, const char *name, size_t len, struct ixattr_entry *e)
{
    size_t off = 0;
    while (fs_ixattr_next(area, &off, e))
        if (fs_ixattr_name_is(e, name, len))
            return 1;
    return 0;
}

void fs_ixattr_remove(uint8_t *area, const struct ixattr_entry *e)
{
    size_t end = e->off + e->size;
    memmove(area + e->off, area + end, MMAPFS_IXATTR_BYTES - end);
    memset(area + MMAPFS_IXATTR_BYTES - e->size, 0, e->size);
}

/* The index whose prefix (name, len) takes, and the stored name's start. */
static unsigned encode_index(const char *name, size_t len, size_t *skip)
{
    for (unsigned i = 1; i <= MMAPFS_IXATTR_INDEX_MAX; i++) {
        size_t plen = prefixes[i].len;
        if ((prefixes[i].whole ? len == plen : len > plen) &&
            memcmp(name, prefixes[i].prefix, plen) == 0) {
            *skip = plen;
            return i;
        }
    }
    *skip = 0;
    return MMAPFS_IXATTR_FULL;
}

int fs_ixattr_add(uint8_t *area, const char *name, size_t len, const void *value, size_t size)
{
    struct ixattr_entry e;
    size_t used = 0, skip;
    while (fs_ixattr_next(area, &used, &e))
        ;
    unsigned index = encode_index(name, len, &skip);
    size_t stored = len - skip;
    if (stored > 255 || size > 255 ||
        MMAPFS_IXATTR_ENTRY_HDR + stored + size > MMAPFS_IXATTR_BYTES - used)
        return -ENOSPC;
    uint8_t *p = area + used;
    p[0] = (uint8_t)index;
    p[1] = (uint8_t)stored;
    p[2] = (uint8_t)size;
    memcpy(p + MMAPFS_IXATTR_ENTRY_HDR, name + skip, stored);
    if (size)
        memcpy(p + MMAPFS_IXATTR_ENTRY_HDR + stored, value, size);
    return 0;
}
