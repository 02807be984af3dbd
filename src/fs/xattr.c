/*
 * Extended attributes: at most one metadata block per inode (format.h).
 *
 * Block = header (magic, checksum, owner, count, used) then 'count' packed
 * entries {u8 name_len, u8 reserved, le16 value_len, name, value}, each
 * padded to 4 bytes. Names are stored as the kernel gives them, namespace
 * prefix included ("user.x", "trusted.x", "security.x",
 * "system.posix_acl_access"). A change rebuilds the block in memory and
 * writes it into the running transaction; removing the last attribute frees
 * the block. Every block read is validated before any entry is trusted.
 */
#include <errno.h>
#include <string.h>
#include <sys/xattr.h>

#include "fs/fs_i.h"

#define XATTR_HDR     sizeof(struct mmapfs_disk_xattr_header)
#define XATTR_ROOM    (MMAPFS_BLOCK_SIZE - XATTR_HDR)   /* bytes for entries */
#define XATTR_VALUE_MAX 65536u                          /* Linux XATTR_SIZE_MAX */

/* Bytes an entry takes in the block, padding included. */
static size_t entry_size(size_t name_len, size_t value_len)
{
    return (sizeof(struct mmapfs_disk_xattr_entry) + name_len + value_len + 3) & ~(size_t)3;
}

/* Checks a caller's attribute name: 1..255 bytes, else -ERANGE. */
static int check_name(const char *name, size_t *len)
{
    *len = strnlen(name, 256);
    return (*len == 0 || *len > 255) ? -ERANGE : 0;
}

/*
 * Reads and validates inode ino's xattr block (magic, checksum, owner,
 * every entry within 'used'). *blk is NULL when the inode has none.
 * -EUCLEAN (recorded) when the block is corrupt.
 */
static int xattr_load(struct fs *fs, uint64_t ino, const struct mmapfs_disk_inode *di,
                      const uint8_t **blk)
{
    uint64_t b = di->xattr_block;

    *blk = NULL;
    if (!b)
        return 0;
    if (b < fs->data_start || b >= fs->block_count)
        return fs_corrupt(fs, "inode %llu: xattr block %llu out of range",
                          (unsigned long long)ino, (unsigned long long)b);
    const uint8_t *p = jnl_read(fs->jnl, b);
    if (!p)
        return -EIO;
    const struct mmapfs_disk_xattr_header *h = (const void *)p;
    if (h->magic != MMAPFS_XATTR_MAGIC || h->checksum != bt_block_checksum(b, p) ||
        h->owner != ino || h->used > XATTR_ROOM)
        goto bad;
    size_t off = XATTR_HDR, end = XATTR_HDR + h->used;
    for (unsigned i = 0; i < h->count; i++) {
        if (off + sizeof(struct mmapfs_disk_xattr_entry) > end)
            goto bad;
        const struct mmapfs_disk_xattr_entry *e = (const void *)(p + off);
        size_t sz = entry_size(e->name_len, e->value_len);
        if (e->name_len == 0 || off + sz > end)
            goto bad;
        off += sz;
    }
    if (off != end)
        goto bad;
    *blk = p;
    return 0;
bad:
    return fs_corrupt(fs, "inode %llu: corrupt xattr block %llu",
                      (unsigned long long)ino, (unsigned long long)b);
}

/* Iteration over the entries of a validated block. */
struct xattr_iter {
    const uint8_t *blk;
    size_t off;
    unsigned left;
};

static void iter_init(struct xattr_iter *it, const uint8_t *blk)
{
    const struct mmapfs_disk_xattr_header *h = (const void *)blk;
    it->blk = blk;
    it->off = XATTR_HDR;
    it->left = blk ? h->count : 0;
}

/* Next entry, or NULL at the end. */
static const struct mmapfs_disk_xattr_entry *iter_next(struct xattr_iter *it)
{
    if (it->left == 0)
        return NULL;
    const struct mmapfs_disk_xattr_entry *e = (const void *)(it->blk + it->off);
    it->off += entry_size(e->name_len, e->value_len);
    it->left--;
    return e;
}

/* Entry named name in a validated block, or NULL. */
static const struct mmapfs_disk_xattr_entry *find_entry(const uint8_t *blk, const char *name,
                                                        size_t len)
{
    struct xattr_iter it;
    const struct mmapfs_disk_xattr_entry *e;

    iter_init(&it, blk);
    while ((e = iter_next(&it)))
        if (e->name_len == len && memcmp(e->data, name, len) == 0)
            return e;
    return NULL;
}

/*
 * Builds in out (MMAPFS_BLOCK_SIZE bytes) the entries of blk except 'skip',
 * then (name, value) if name is not NULL. Header fields other than count
 * and used are left zero. -ENOSPC if the result does not fit.
 */
static int rebuild(uint8_t *out, const uint8_t *blk, const struct mmapfs_disk_xattr_entry *skip,
                   const char *name, size_t len, const void *value, size_t size)
{
    struct mmapfs_disk_xattr_header *h = (void *)out;
    struct xattr_iter it;
    const struct mmapfs_disk_xattr_entry *e;
    size_t off = XATTR_HDR;

    memset(out, 0, MMAPFS_BLOCK_SIZE);
    iter_init(&it, blk);
    while ((e = iter_next(&it))) {
        if (e == skip)
            continue;
        size_t sz = entry_size(e->name_len, e->value_len);
        memcpy(out + off, e, sz);
        off += sz;
        h->count++;
    }
    if (name) {
        size_t sz = entry_size(len, size);
        if (off + sz > MMAPFS_BLOCK_SIZE)
            return -ENOSPC;
        struct mmapfs_disk_xattr_entry *n = (void *)(out + off);
        n->name_len = (uint8_t)len;
        n->value_len = (uint16_t)size;
        memcpy(n->data, name, len);
        if (size)
            memcpy(n->data + len, value, size);
        off += sz;
        h->count++;
    }
    h->used = (uint16_t)(off - XATTR_HDR);
    return 0;
}

/*
 * Stores the rebuilt block 'image' as inode ino's xattr block: allocates one
 * if needed, frees it if image has no entries. Updates di (not put).
 */
static int store_block(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di,
                       uint8_t *image)
{
    struct mmapfs_disk_xattr_header *h = (void *)image;
    void *dst;

    if (h->count == 0) {
        if (di->xattr_block) {
            free_meta(fs, di->xattr_block);
            di->xattr_block = 0;
            if (di->blocks)
                di->blocks--;
        }
        return 0;
    }
    if (di->xattr_block) {
        dst = jnl_write(fs->jnl, di->xattr_block);
        if (!dst)
            return fs_write_error(fs, errno);
    } else {
        uint64_t blk;
        int err = alloc_meta(fs, di->tree_root, &blk, &dst);
        if (err)
            return err;
        di->xattr_block = blk;
        di->blocks++;
    }
    h->magic = MMAPFS_XATTR_MAGIC;
    h->owner = ino;
    memcpy(dst, image, MMAPFS_BLOCK_SIZE);
    ((struct mmapfs_disk_xattr_header *)dst)->checksum = bt_block_checksum(di->xattr_block, dst);
    return 0;
}

/* ==== public functions ======================================================== */

/* fs_setxattr body (value NULL: remove), journal operation held. */
static int change_locked(struct fs *fs, uint64_t ino, const char *name, size_t len,
                         const void *value, size_t size, int flags)
{
    struct mmapfs_disk_inode di;
    const uint8_t *blk;
    uint8_t image[MMAPFS_BLOCK_SIZE];

    int err = inode_get(fs, ino, &di);
    if (err)
        return err;
    err = xattr_load(fs, ino, &di, &blk);
    if (err)
        return err;
    const struct mmapfs_disk_xattr_entry *old = find_entry(blk, name, len);
    if (!value) {
        if (!old)
            return -ENODATA;
    } else {
        if (old && (flags & XATTR_CREATE))
            return -EEXIST;
        if (!old && (flags & XATTR_REPLACE))
            return -ENODATA;
    }
    err = rebuild(image, blk, old, value ? name : NULL, len, value, size);
    if (err)
        return err;
    err = store_block(fs, ino, &di, image);
    if (err)
        return err;
    inode_touch(&di, TOUCH_CTIME);
    return inode_put(fs, ino, &di);
}

int fs_setxattr(struct fs *fs, uint64_t ino, const char *name, const void *value,
                size_t size, int flags)
{
    static const char empty;
    size_t len;

    if (flags & ~(XATTR_CREATE | XATTR_REPLACE))
        return -EINVAL;
    int err = check_name(name, &len);
    if (err)
        return err;
    if (size > XATTR_VALUE_MAX)
        return -E2BIG;
    if (entry_size(len, size) > XATTR_ROOM)
        return -ENOSPC;
    if (!value)
        value = &empty;         /* size is 0 then */
    int tries = 0;
    do {
        err = jnl_begin(fs->jnl);
        if (err)
            return err;
        err = change_locked(fs, ino, name, len, value, size, flags);
        err = fs_end(fs, err);
        /* -ENOSPC: a full xattr block, or no free block; in the latter
         * case blocks freed by an uncommitted transaction may help */
    } while (err == -ENOSPC && tries++ == 0 && alloc_wait_pending(fs) == 1);
    return err;
}

int fs_removexattr(struct fs *fs, uint64_t ino, const char *name)
{
    size_t len;
    int err = check_name(name, &len);
    if (err)
        return err;
    err = jnl_begin(fs->jnl);
    if (err)
        return err;
    err = change_locked(fs, ino, name, len, NULL, 0, 0);
    err = fs_end(fs, err);
    return err;
}

int fs_getxattr(struct fs *fs, uint64_t ino, const char *name, void *buf, size_t size)
{
    struct mmapfs_disk_inode di;
    const uint8_t *blk;
    size_t len;

    int err = check_name(name, &len);
    if (err)
        return err;
    jnl_lock(fs->jnl);
    err = inode_get(fs, ino, &di);
    if (!err)
        err = xattr_load(fs, ino, &di, &blk);
    if (err)
        goto out;
    const struct mmapfs_disk_xattr_entry *e = find_entry(blk, name, len);
    if (!e) {
        err = -ENODATA;
        goto out;
    }
    err = e->value_len;
    if (size == 0)
        goto out;
    if (size < e->value_len) {
        err = -ERANGE;
        goto out;
    }
    memcpy(buf, e->data + e->name_len, e->value_len);
out:
    jnl_unlock(fs->jnl);
    return err;
}

int fs_listxattr(struct fs *fs, uint64_t ino, char *buf, size_t size)
{
    struct mmapfs_disk_inode di;
    const struct mmapfs_disk_xattr_entry *e;
    struct xattr_iter it;
    const uint8_t *blk;
    size_t total = 0;

    jnl_lock(fs->jnl);
    int err = inode_get(fs, ino, &di);
    if (!err)
        err = xattr_load(fs, ino, &di, &blk);
    if (err)
        goto out;
    iter_init(&it, blk);
    while ((e = iter_next(&it)))
        total += (size_t)e->name_len + 1;
    err = (int)total;
    if (size == 0)
        goto out;
    if (size < total) {
        err = -ERANGE;
        goto out;
    }
    iter_init(&it, blk);
    while ((e = iter_next(&it))) {
        memcpy(buf, e->data, e->name_len);
        buf[e->name_len] = '\0';
        buf += e->name_len + 1;
    }
out:
    jnl_unlock(fs->jnl);
    return err;
}

int xattr_free_all(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di)
{
    const uint8_t *blk;

    if (!di->xattr_block)
        return 0;
    int err = xattr_load(fs, ino, di, &blk);
    if (err)
        return err;            /* never free a block that may be someone else's */
    free_meta(fs, di->xattr_block);
    di->xattr_block = 0;
    if (di->blocks)
        di->blocks--;
    return 0;
}
