/*
 * fsck/acl.c — POSIX ACL values (system.posix_acl_access and
 * system.posix_acl_default) in the in-inode xattr area and the xattr
 * chain. The filesystem parses them with fs_acl_from_xattr (src/fs/acl.c)
 * and answers EUCLEAN (EIO) for an invalid one: for a directory's default
 * ACL, on every create in it. fsck checks them with the same parser and
 * repairs by removing the invalid ACL xattr: an access ACL's permission
 * bits stay in the inode's mode (fs_acl_set keeps them in sync), so the
 * file keeps the owner/group/other permissions it had; a default ACL's
 * loss only means new inodes take the umask.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "fsck/fsck_i.h"
#include "fs/acl.h"
#include "fs/xattr.h"

static const char *const acl_names[] = { FS_ACL_XATTR_ACCESS, FS_ACL_XATTR_DEFAULT };
#define ACL_NAMES (sizeof(acl_names) / sizeof(acl_names[0]))

/* The ACL name (name, name_len) is, or NULL. */
static const char *acl_name(const char *name, size_t name_len)
{
    for (size_t i = 0; i < ACL_NAMES; i++)
        if (name_len == strlen(acl_names[i]) && !memcmp(name, acl_names[i], name_len))
            return acl_names[i];
    return NULL;
}

/* Is (name, name_len) an ACL name whose value does not parse? */
static int bad_acl(const char *name, size_t name_len, const void *value, size_t value_len)
{
    struct fs_acl acl;
    return acl_name(name, name_len) && fs_acl_from_xattr(value, value_len, &acl) != 0;
}

/* Offset of the first entry of a validated xattr block holding an invalid
 * ACL, or 0. */
static size_t bad_acl_entry(const uint8_t *p)
{
    struct mmapfs_disk_xattr_header h;
    memcpy(&h, p, sizeof(h));
    size_t off = sizeof(h);
    for (unsigned i = 0; i < h.count; i++) {
        struct mmapfs_disk_xattr_entry e;
        memcpy(&e, p + off, sizeof(e));
        const char *name = (const char *)p + off + sizeof(e);
        if (bad_acl(name, e.name_len, name + e.name_len, e.value_len))
            return off;
        off += mmapfs_xattr_entry_size(e.name_len, e.value_len);
    }
    return 0;
}

/* The name of the first invalid ACL of a validated in-inode area, or NULL;
 * *e is its entry. */
static const char *bad_acl_in_area(const uint8_t *area, struct ixattr_entry *e)
{
    for (size_t i = 0; i < ACL_NAMES; i++)
        if (fs_ixattr_find(area, acl_names[i], strlen(acl_names[i]), e) &&
            bad_acl(acl_names[i], strlen(acl_names[i]), e->value, e->value_len))
            return acl_names[i];
    return NULL;
}

/* See fsck_i.h. */
const char *fsck_bad_acl_in_area(const uint8_t *area)
{
    struct ixattr_entry e;
    return bad_acl_in_area(area, &e);
}

/* See fsck_i.h. */
const char *fsck_bad_acl_in_block(struct check *c, uint64_t blk)
{
    const uint8_t *p = fsck_block(c, blk);
    size_t off = p ? bad_acl_entry(p) : 0;
    struct mmapfs_disk_xattr_entry e;
    if (!off)
        return NULL;
    memcpy(&e, p + off, sizeof(e));
    return acl_name((const char *)p + off + sizeof(e), e.name_len);
}

/* Removes the invalid ACL entries of the chain's blocks (validated by
 * pass 1); a block left empty is unlinked (docs/FORMAT.md §10: no empty
 * block in a chain) and freed by the bitmap rebuild of the next round.
 * di's xattr_block and blocks follow. 0 or -errno. */
static int drop_from_chain(struct check *c, uint64_t ino, struct mmapfs_disk_inode *di)
{
    uint8_t buf[MMAPFS_BLOCK_SIZE];
    struct mmapfs_disk_xattr_header *h = (void *)buf;
    uint64_t prev = 0, blk = di->xattr_block;
    for (unsigned n = 0; blk && n < MMAPFS_XATTR_CHAIN_MAX; n++) {
        const uint8_t *p = fsck_block(c, blk);
        if (!p)
            return -EIO;
        memcpy(buf, p, sizeof(buf));
        uint64_t next = h->next;
        size_t off;
        int changed = 0;
        while ((off = bad_acl_entry(buf))) {
            struct mmapfs_disk_xattr_entry e;
            memcpy(&e, buf + off, sizeof(e));
            size_t sz = mmapfs_xattr_entry_size(e.name_len, e.value_len);
            size_t end = sizeof(*h) + h->used;
            fsck_repaired(c, "inode %" PRIu64 ": invalid ACL %.*s removed from xattr block %"
                           PRIu64, ino, (int)e.name_len, (const char *)buf + off + sizeof(e),
                           blk);
            memmove(buf + off, buf + off + sz, end - off - sz);
            memset(buf + end - sz, 0, sz);
            h->used = (uint16_t)(h->used - sz);
            h->count--;
            changed = 1;
        }
        int err = 0;
        if (changed && h->count == 0) {
            if (prev)
                err = fsck_xattr_set_next(c, prev, next);
            else
                di->xattr_block = next;
            if (di->blocks)
                di->blocks--;
        } else if (changed) {
            h->checksum = bt_block_checksum(blk, buf);
            err = fsck_io_write(c, blk * MMAPFS_BLOCK_SIZE, buf, sizeof(buf));
        }
        if (err)
            return err;
        if (!changed || h->count)
            prev = blk;
        blk = next;
    }
    return 0;
}

/* See fsck_i.h. */
int fsck_drop_bad_acls(struct check *c, uint64_t ino, struct mmapfs_disk_inode *di)
{
    struct ixattr_entry e;
    const char *name;
    if (fsck_ixattr_ok(c, di, NULL, 0) &&
        (c->sb.feature_incompat & MMAPFS_FEATURE_INCOMPAT_INODE_XATTR)) {
        while ((name = bad_acl_in_area(di->xattr_area, &e))) {
            fsck_repaired(c, "inode %" PRIu64 ": invalid ACL %s removed from the inode", ino,
                           name);
            fs_ixattr_remove(di->xattr_area, &e);
        }
    }
    return drop_from_chain(c, ino, di);
}
