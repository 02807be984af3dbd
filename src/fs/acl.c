/*
 * acl.c — POSIX ACLs: the xattr format, the ACL <-> mode mapping, and
 * keeping both in sync on inodes (see acl.h). Setting an ACL uses the
 * public fs API (attributes and xattrs), so each step is its own
 * transaction: a crash between storing an ACL and changing the mode leaves
 * the ACL stored and the old permission bits, which fsck does not treat as
 * damage. The ACLs a new inode inherits are stored in one journal
 * operation, the create's own under fs_set_acl_inherit
 * (fs_acl_inherit_locked).
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/acl.h"
#include "fs/fs_i.h"

/* ---- format ----------------------------------------------------------------- */

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint16_t get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* Checks the order and the required entries of a parsed ACL. */
static int acl_valid(const struct fs_acl *acl)
{
    unsigned i, seen = 0, named = 0;
    uint16_t last_tag = 0;

    for (i = 0; i < acl->count; i++) {
        const struct fs_acl_entry *e = &acl->e[i];

        if (e->perm & ~7u)
            return -EINVAL;
        switch (e->tag) {
        case FS_ACL_USER_OBJ:
        case FS_ACL_GROUP_OBJ:
        case FS_ACL_MASK:
        case FS_ACL_OTHER:
            if (seen & e->tag)
                return -EINVAL;             /* twice */
            break;
        case FS_ACL_USER:
        case FS_ACL_GROUP:
            /* ids in any order, as the kernel's posix_acl_valid() and
             * ext4 accept them (libacl sends them sorted) */
            if (e->id == FS_ACL_UNDEFINED_ID)
                return -EINVAL;
            named = 1;
            break;
        default:
            return -EINVAL;
        }
        if (e->tag < last_tag)
            return -EINVAL;                 /* tags out of order */
        seen |= e->tag;
        last_tag = e->tag;
    }
    if (!(seen & FS_ACL_USER_OBJ) || !(seen & FS_ACL_GROUP_OBJ) || !(seen & FS_ACL_OTHER))
        return -EINVAL;
    if (named && !(seen & FS_ACL_MASK))
        return -EINVAL;
    return 0;
}

int fs_acl_from_xattr(const void *value, size_t size, struct fs_acl *acl)
{
    const uint8_t *p = value;
    size_t n, i;

    acl->count = 0;
    if (!value || size < FS_ACL_HEADER_SIZE ||
        (size - FS_ACL_HEADER_SIZE) % FS_ACL_ENTRY_SIZE != 0)
        return -EINVAL;
    if (get_le32(p) != FS_ACL_XATTR_VERSION)
        return -EINVAL;
    n = (size - FS_ACL_HEADER_SIZE) / FS_ACL_ENTRY_SIZE;
    if (n > FS_ACL_MAX_ENTRIES)
        return -E2BIG;
    for (i = 0; i < n; i++) {
        const uint8_t *q = p + FS_ACL_HEADER_SIZE + i * FS_ACL_ENTRY_SIZE;
        acl->e[i].tag = get_le16(q);
        acl->e[i].perm = get_le16(q + 2);
        acl->e[i].id = get_le32(q + 4);
    }
    acl->count = (unsigned)n;
    return acl_valid(acl);
}

size_t fs_acl_to_xattr(const struct fs_acl *acl, void *buf, size_t size)
{
    size_t need = FS_ACL_HEADER_SIZE + (size_t)acl->count * FS_ACL_ENTRY_SIZE;
    uint8_t *p = buf;
    unsigned i;

    if (!buf || size < need)
        return need;
    put_le32(p, FS_ACL_XATTR_VERSION);
    for (i = 0; i < acl->count; i++) {
        uint8_t *q = p + FS_ACL_HEADER_SIZE + (size_t)i * FS_ACL_ENTRY_SIZE;
        const struct fs_acl_entry *e = &acl->e[i];
        int has_id = e->tag == FS_ACL_USER || e->tag == FS_ACL_GROUP;
        put_le16(q, e->tag);
        put_le16(q + 2, e->perm);
        put_le32(q + 4, has_id ? e->id : FS_ACL_UNDEFINED_ID);
    }
    return need;
}

/* ---- ACL <-> mode ------------------------------------------------------------- */

/* The entry that stands for the group class: MASK, else GROUP_OBJ. */
static struct fs_acl_entry *group_class(struct fs_acl *acl)
{
    struct fs_acl_entry *group_obj = NULL;
    unsigned i;

    for (i = 0; i < acl->count; i++) {
        if (acl->e[i].tag == FS_ACL_MASK)
            return &acl->e[i];
        if (acl->e[i].tag == FS_ACL_GROUP_OBJ)
            group_obj = &acl->e[i];
    }
    return group_obj;
}

int fs_acl_equiv_mode(const struct fs_acl *acl, uint32_t *mode)
{
    uint32_t owner = 0, group = 0, mask = 0, other = 0;
    int has_mask = 0, named = 0;
    unsigned i;

    for (i = 0; i < acl->count; i++) {
        const struct fs_acl_entry *e = &acl->e[i];
        switch (e->tag) {
        case FS_ACL_USER_OBJ:
            owner = e->perm & 7u;
            break;
        case FS_ACL_GROUP_OBJ:
            group = e->perm & 7u;
            break;
        case FS_ACL_MASK:
            mask = e->perm & 7u;
            has_mask = 1;
            break;
        case FS_ACL_OTHER:
            other = e->perm & 7u;
            break;
        default:
            named = 1;
            break;
        }
    }
    *mode = (*mode & ~(uint32_t)0777) | owner << 6 | (has_mask ? mask : group) << 3 | other;
    return !has_mask && !named;
}

void fs_acl_chmod(struct fs_acl *acl, uint32_t mode)
{
    struct fs_acl_entry *group = group_class(acl);
    unsigned i;

    for (i = 0; i < acl->count; i++) {
        if (acl->e[i].tag == FS_ACL_USER_OBJ)
            acl->e[i].perm = (uint16_t)((mode >> 6) & 7);
        else if (acl->e[i].tag == FS_ACL_OTHER)
            acl->e[i].perm = (uint16_t)(mode & 7);
    }
    if (group)
        group->perm = (uint16_t)((mode >> 3) & 7);
}

int fs_acl_create_masq(struct fs_acl *acl, uint32_t *mode)
{
    struct fs_acl_entry *group = group_class(acl);
    uint32_t m = *mode & 0777;
    int needed = 0;
    unsigned i;

    for (i = 0; i < acl->count; i++) {
        struct fs_acl_entry *e = &acl->e[i];
        switch (e->tag) {
        case FS_ACL_USER_OBJ:
            e->perm &= (uint16_t)((m >> 6) & 7);
            m = (m & ~(uint32_t)0700) | (uint32_t)e->perm << 6;
            break;
        case FS_ACL_OTHER:
            e->perm &= (uint16_t)(m & 7);
            m = (m & ~(uint32_t)07) | e->perm;
            break;
        case FS_ACL_GROUP_OBJ:
            break;
        default:                /* named entries and MASK */
            needed = 1;
            break;
        }
    }
    if (group) {
        group->perm &= (uint16_t)((m >> 3) & 7);
        m = (m & ~(uint32_t)070) | (uint32_t)group->perm << 3;
    }
    *mode = (*mode & ~(uint32_t)0777) | m;
    return needed;
}

/* ---- on an inode ------------------------------------------------------------- */

/* fs_acl_get with the journal lock or operation held. */
static int acl_get_locked(struct fs *fs, uint64_t ino, const char *name, struct fs_acl *acl)
{
    uint8_t buf[FS_ACL_HEADER_SIZE + FS_ACL_MAX_ENTRIES * FS_ACL_ENTRY_SIZE];
    int len = fs_xattr_get_locked(fs, ino, name, buf, sizeof(buf));

    if (len == -ERANGE)
        return -EUCLEAN;        /* longer than any ACL mmapfs stores */
    if (len < 0)
        return len;
    return fs_acl_from_xattr(buf, (size_t)len, acl) ? -EUCLEAN : 0;
}

int fs_acl_get(struct fs *fs, uint64_t ino, const char *name, struct fs_acl *acl)
{
    jnl_lock(fs->jnl);
    int err = acl_get_locked(fs, ino, name, acl);
    jnl_unlock(fs->jnl);
    return err;
}

/* Stores acl under name (replacing what was there). */
static int acl_store(struct fs *fs, uint64_t ino, const char *name, const struct fs_acl *acl)
{
    uint8_t buf[FS_ACL_HEADER_SIZE + FS_ACL_MAX_ENTRIES * FS_ACL_ENTRY_SIZE];
    size_t len = fs_acl_to_xattr(acl, buf, sizeof(buf));

    return fs_setxattr(fs, ino, name, buf, len, 0);
}

/* Removes the xattr name; a missing one is fine. */
static int acl_remove(struct fs *fs, uint64_t ino, const char *name)
{
    int err = fs_removexattr(fs, ino, name);
    return err == -ENODATA ? 0 : err;
}

/* Sets the permission bits (and S_ISGID unless keep_sgid) of ino to mode's,
 * if they differ. */
static int acl_set_mode(struct fs *fs, uint64_t ino, const struct fs_stat *st,
                        uint32_t mode, int keep_sgid)
{
    struct fs_setattr sa;

    memset(&sa, 0, sizeof(sa));
    sa.mode = (st->mode & 07000) | (mode & 0777);
    if (!keep_sgid)
        sa.mode &= ~(uint32_t)S_ISGID;
    if (sa.mode == (st->mode & 07777))
        return 0;
    return fs_setattr(fs, ino, &sa, FS_SET_MODE, NULL);
}

int fs_acl_set(struct fs *fs, uint64_t ino, const char *name, const void *value,
               size_t size, int keep_sgid)
{
    int is_default = strcmp(name, FS_ACL_XATTR_DEFAULT) == 0;
    struct fs_acl acl;
    struct fs_stat st;
    uint32_t mode;
    int err;

    if (!is_default && strcmp(name, FS_ACL_XATTR_ACCESS) != 0)
        return -EOPNOTSUPP;
    err = fs_getattr(fs, ino, &st);
    if (err)
        return err;
    if (S_ISLNK(st.mode))
        return -EOPNOTSUPP;
    if (is_default && !S_ISDIR(st.mode))
        return value ? -EACCES : 0;
    if (!value)
        return acl_remove(fs, ino, name);
    err = fs_acl_from_xattr(value, size, &acl);
    if (err)
        return err;
    if (is_default)
        return acl_store(fs, ino, name, &acl);
    mode = st.mode;
    if (fs_acl_equiv_mode(&acl, &mode))
        err = acl_remove(fs, ino, name);
    else
        err = acl_store(fs, ino, name, &acl);
    if (err)
        return err;
    return acl_set_mode(fs, ino, &st, mode, keep_sgid);
}

int fs_acl_chmod_inode(struct fs *fs, uint64_t ino, uint32_t mode)
{
    struct fs_acl acl;
    int err = fs_acl_get(fs, ino, FS_ACL_XATTR_ACCESS, &acl);

    if (err == -ENODATA)
        return 0;
    if (err)
        return err;
    fs_acl_chmod(&acl, mode);
    return acl_store(fs, ino, FS_ACL_XATTR_ACCESS, &acl);
}

int fs_acl_create_mode(struct fs *fs, uint64_t parent, uint32_t *mode, uint32_t umask)
{
    struct fs_acl acl;
    int err = fs_acl_get(fs, parent, FS_ACL_XATTR_DEFAULT, &acl);

    if (err == -ENODATA) {
        *mode &= ~(umask & 0777);
        return 0;
    }
    if (err)
        return err;
    fs_acl_create_masq(&acl, mode);
    return 1;
}

/* acl_store inside the caller's journal operation. */
static int acl_store_locked(struct fs *fs, uint64_t ino, const char *name,
                            const struct fs_acl *acl)
{
    uint8_t buf[FS_ACL_HEADER_SIZE + FS_ACL_MAX_ENTRIES * FS_ACL_ENTRY_SIZE];
    size_t len = fs_acl_to_xattr(acl, buf, sizeof(buf));

    return fs_xattr_set_locked(fs, ino, name, buf, len, 0);
}

int fs_acl_inherit_locked(struct fs *fs, uint64_t parent, uint64_t ino, uint32_t mode)
{
    struct fs_acl acl;
    int err;

    if (S_ISLNK(mode))
        return 0;
    err = acl_get_locked(fs, parent, FS_ACL_XATTR_DEFAULT, &acl);
    if (err == -ENODATA)
        return 0;
    if (err)
        return err;
    if (S_ISDIR(mode)) {
        err = acl_store_locked(fs, ino, FS_ACL_XATTR_DEFAULT, &acl);
        if (err)
            return err;
    }
    if (!fs_acl_create_masq(&acl, &mode))
        return 0;
    return acl_store_locked(fs, ino, FS_ACL_XATTR_ACCESS, &acl);
}

int fs_acl_inherit(struct fs *fs, uint64_t parent, uint64_t ino, uint32_t mode)
{
    int err, tries = 0;

    do {
        err = jnl_begin(fs->jnl);
        if (err)
            return err;
        err = fs_acl_inherit_locked(fs, parent, ino, mode);
        err = fs_end(fs, err);
    } while (fs_alloc_retry(fs, err, &tries));
    return err;
}
