/*
 * Extended attributes: a chain of metadata blocks per inode (format.h,
 * docs/FORMAT.md "Extended attributes").
 *
 * Block = header (magic, checksum, owner, count, used, next) then 'count' packed
 * entries {u8 name_len, u8 reserved, le16 value_len, name, value}, each
 * padded to 4 bytes. Names are stored as the kernel gives them, namespace
 * prefix included ("user.x", "trusted.x", "security.x",
 * "system.posix_acl_access"). A change rebuilds the affected block in
 * memory and writes it into the running transaction. A new entry goes into
 * its old block if it fits there, else into the first block with room,
 * else into a new block pushed at the head of the chain; a block whose last
 * entry goes is unlinked and freed. Every change walks the whole chain
 * (validating each block before any entry is trusted), so an operation
 * costs one read per block of the chain; the chain is bounded by
 * MMAPFS_XATTR_CHAIN_MAX, which also stops a loop.
 *
 * With MMAPFS_FEATURE_INCOMPAT_INODE_XATTR, small attributes live in the
 * inode record's xattr_area (xattr_inode.c) and the chain holds only those
 * that do not fit there: get and list look at the inode first, a set puts
 * the value in the inode when it fits (change_locked), so a file with a
 * few small attributes or a short ACL owns no xattr block.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <sys/xattr.h>

#include "fs/fs_i.h"
#include "fs/xattr_i.h"

#define XATTR_HDR     sizeof(struct mmapfs_disk_xattr_header)
#define XATTR_ROOM    (MMAPFS_BLOCK_SIZE - XATTR_HDR)   /* bytes for entries */
#define XATTR_VALUE_MAX 65536u                          /* Linux XATTR_SIZE_MAX */


/* Checks a caller's attribute name: 1..255 bytes, else -ERANGE. */
static int check_name(const char *name, size_t *len)
{
    *len = strnlen(name, 256);
    return (*len == 0 || *len > 255) ? -ERANGE : 0;
}

/*
 * Reads and validates xattr block b of inode ino (magic, checksum, owner,
 * every entry within 'used'). -EUCLEAN (recorded) when the block is
 * corrupt. The pointer is valid until the block is written or the lock
 * is released.
 */
static int block_load(struct fs *fs, uint64_t ino, uint64_t b, const uint8_t **blk)
{
    *blk = NULL;
    if (b < fs->data_start || b >= fs->block_count)
        return fs_corrupt(fs, "inode %llu: xattr block %llu out of range",
                          (unsigned long long)ino, (unsigned long long)b);
    const uint8_t *p = jnl_read(fs->jnl, b);
    if (!p)
        return jnl_read_error();
    const struct mmapfs_disk_xattr_header *h = (const void *)p;
    if (h->magic != MMAPFS_XATTR_MAGIC || h->checksum != bt_block_checksum(b, p) ||
        h->owner != ino || h->used > XATTR_ROOM)
        goto bad;
    size_t off = XATTR_HDR, end = XATTR_HDR + h->used;
    for (unsigned i = 0; i < h->count; i++) {
        if (off + sizeof(struct mmapfs_disk_xattr_entry) > end)
            goto bad;
        const struct mmapfs_disk_xattr_entry *e = (const void *)(p + off);
        size_t sz = mmapfs_xattr_entry_size(e->name_len, e->value_len);
        if (e->name_len == 0 || off + sz > end || memchr(e->data, '\0', e->name_len))
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

static uint64_t block_next(const uint8_t *blk)
{
    return ((const struct mmapfs_disk_xattr_header *)blk)->next;
}

/* ---- walking the chain ---- */

struct chain_pos {
    uint64_t blk;              /* current block, 0 past the end */
    const uint8_t *p;          /* its validated content, NULL past the end */
    unsigned n;                /* blocks visited */
};

/* Loads block b (0: the end) as the next position of the walk; a chain
 * longer than MMAPFS_XATTR_CHAIN_MAX (a loop) is corruption. */
static int chain_load(struct fs *fs, uint64_t ino, struct chain_pos *c, uint64_t b)
{
    c->blk = b;
    c->p = NULL;
    if (!b)
        return 0;
    if (++c->n > MMAPFS_XATTR_CHAIN_MAX)
        return fs_corrupt(fs, "inode %llu: xattr chain longer than %u blocks (a loop?)",
                          (unsigned long long)ino, MMAPFS_XATTR_CHAIN_MAX);
    return block_load(fs, ino, b, &c->p);
}

static int chain_first(struct fs *fs, uint64_t ino, const struct mmapfs_disk_inode *di,
                       struct chain_pos *c)
{
    c->n = 0;
    return chain_load(fs, ino, c, di->xattr_block);
}

static int chain_next(struct fs *fs, uint64_t ino, struct chain_pos *c)
{
    return chain_load(fs, ino, c, block_next(c->p));
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
    it->off += mmapfs_xattr_entry_size(e->name_len, e->value_len);
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
        size_t sz = mmapfs_xattr_entry_size(e->name_len, e->value_len);
        memcpy(out + off, e, sz);
        off += sz;
        h->count++;
    }
    if (name) {
        size_t sz = mmapfs_xattr_entry_size(len, size);
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

/* ---- changing the chain ---- */

/* Writes image (entries built by rebuild) as xattr block blk of inode ino,
 * with the given next pointer. */
static int write_block(struct fs *fs, uint64_t ino, uint64_t blk, uint8_t *image,
                       uint64_t next)
{
    struct mmapfs_disk_xattr_header *h = (void *)image;
    void *dst = jnl_write(fs->jnl, blk);
    if (!dst)
        return fs_write_error(fs, errno);
    h->magic = MMAPFS_XATTR_MAGIC;
    h->owner = ino;
    h->reserved0 = 0;
    h->next = next;
    memcpy(dst, image, MMAPFS_BLOCK_SIZE);
    ((struct mmapfs_disk_xattr_header *)dst)->checksum = bt_block_checksum(blk, dst);
    return 0;
}

/* Puts a new empty block at the head of inode ino's chain (*blk). The
 * first chain of two blocks sets the incompat feature bit. Updates di. */
static int chain_push(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di, uint64_t *blk)
{
    uint8_t image[MMAPFS_BLOCK_SIZE];
    void *dst;
    int err = fs_alloc_meta(fs, di->tree_root, blk, &dst);
    if (err)
        return err;
    if (di->xattr_block &&
        !(fs_super_read(fs)->feature_incompat & MMAPFS_FEATURE_INCOMPAT_XATTR_CHAIN)) {
        struct mmapfs_disk_superblock *sb = fs_super_write(fs);
        if (!sb) {
            fs_free_meta(fs, *blk);
            return jnl_error(fs->jnl) ? jnl_error(fs->jnl) : -ENOMEM;
        }
        sb->feature_incompat |= MMAPFS_FEATURE_INCOMPAT_XATTR_CHAIN;
        fs_super_put(fs, sb);
    }
    rebuild(image, NULL, NULL, NULL, 0, NULL, 0);
    err = write_block(fs, ino, *blk, image, di->xattr_block);
    if (err)
        return err;
    di->xattr_block = *blk;
    di->blocks++;
    return 0;
}

/* Takes block blk (now empty) out of inode ino's chain and frees it. */
static int chain_unlink(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di,
                        uint64_t blk, uint64_t next)
{
    if (di->xattr_block == blk) {
        di->xattr_block = next;
    } else {
        struct chain_pos c;
        int err = chain_first(fs, ino, di, &c);
        while (!err && c.blk && block_next(c.p) != blk)
            err = chain_next(fs, ino, &c);
        if (err)
            return err;
        if (!c.blk)
            return fs_corrupt(fs, "inode %llu: xattr block %llu not in its chain",
                              (unsigned long long)ino, (unsigned long long)blk);
        uint64_t prev = c.blk;
        uint8_t *dst = jnl_write(fs->jnl, prev);
        if (!dst)
            return jnl_error(fs->jnl) ? jnl_error(fs->jnl) : -ENOMEM;
        ((struct mmapfs_disk_xattr_header *)dst)->next = next;
        ((struct mmapfs_disk_xattr_header *)dst)->checksum = bt_block_checksum(prev, dst);
    }
    fs_free_meta(fs, blk);
    if (di->blocks)
        di->blocks--;
    return 0;
}

/* Where a name is, and where a new entry of 'need' bytes fits. */
struct xattr_place {
    uint64_t blk;              /* block holding the name, 0 if none */
    const struct mmapfs_disk_xattr_entry *e;
    const uint8_t *p;          /* that block */
    uint64_t room;             /* block to put the new entry in, 0 if none has room */
    unsigned nblocks;          /* blocks in the chain */
};

/* Walks inode ino's whole chain (validating it) for name and for room. The
 * block holding the name is preferred if the new entry fits once the old
 * one is gone. */
static int chain_scan(struct fs *fs, uint64_t ino, const struct mmapfs_disk_inode *di,
                      const char *name, size_t len, size_t need, struct xattr_place *pl)
{
    struct chain_pos c;
    uint64_t first_room = 0;
    memset(pl, 0, sizeof(*pl));
    int err = chain_first(fs, ino, di, &c);
    for (; !err && c.blk; err = chain_next(fs, ino, &c)) {
        size_t free_bytes = XATTR_ROOM - ((const struct mmapfs_disk_xattr_header *)c.p)->used;
        const struct mmapfs_disk_xattr_entry *e = pl->blk ? NULL : find_entry(c.p, name, len);
        if (e) {
            pl->blk = c.blk;
            pl->e = e;
            pl->p = c.p;
            if (free_bytes + mmapfs_xattr_entry_size(e->name_len, e->value_len) >= need)
                pl->room = c.blk;
        }
        if (!first_room && free_bytes >= need)
            first_room = c.blk;
    }
    if (!pl->room)
        pl->room = first_room;
    pl->nblocks = c.n;
    return err;
}

/* Changes the chain for name: value NULL removes it (pl->blk holds it),
 * else sets it there (replacing the entry of pl->blk if any). Updates di. */
static int chain_change(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di,
                        struct xattr_place *pl, const char *name, size_t len,
                        const void *value, size_t size)
{
    uint8_t image[MMAPFS_BLOCK_SIZE];
    int err;

    if (value && !pl->room) {
        if (pl->nblocks >= MMAPFS_XATTR_CHAIN_MAX)
            return -ENOSPC;
        /* the only change that may fail comes first: a new block */
        err = chain_push(fs, ino, di, &pl->room);
        if (err)
            return err;
    }
    if (value && pl->room != pl->blk) {
        const uint8_t *p;
        err = block_load(fs, ino, pl->room, &p);
        if (!err)
            err = rebuild(image, p, NULL, name, len, value, size);
        if (!err)
            err = write_block(fs, ino, pl->room, image, block_next(p));
        if (err)
            return err;
        value = NULL;                   /* added; the old entry still goes */
    }
    if (pl->blk) {
        /* the old entry goes from its block, replaced there if value */
        const uint8_t *p;
        err = block_load(fs, ino, pl->blk, &p);
        if (err)
            return err;
        const struct mmapfs_disk_xattr_entry *old = find_entry(p, name, len);
        uint64_t next = block_next(p);
        err = rebuild(image, p, old, value ? name : NULL, len, value, size);
        if (!err)
            err = ((struct mmapfs_disk_xattr_header *)image)->count
                      ? write_block(fs, ino, pl->blk, image, next)
                      : chain_unlink(fs, ino, di, pl->blk, next);
        if (err)
            return err;
    }
    return 0;
}

/* ---- the in-inode area ---- */

static int inode_xattr(const struct fs *fs)
{
    return (fs->feature_incompat & MMAPFS_FEATURE_INCOMPAT_INODE_XATTR) != 0;
}

/* Validates inode ino's in-inode area before any entry is trusted: 1 if
 * the image has the feature, 0 if not (the area is not read), -EUCLEAN
 * (recorded) when it is corrupt. */
static int area_load(struct fs *fs, uint64_t ino, const struct mmapfs_disk_inode *di)
{
    char msg[128];
    if (!inode_xattr(fs))
        return 0;
    if (fs_ixattr_check(di->xattr_area, msg, sizeof(msg)) < 0)
        return fs_corrupt(fs, "inode %llu: %s", (unsigned long long)ino, msg);
    return 1;
}

/* 1 if the attribute already holds value: found in the inode area (ie),
 * else in the chain (pl->e, NULL if nowhere). */
static int value_same(int found, const struct ixattr_entry *ie, const struct xattr_place *pl,
                      const void *value, size_t size)
{
    if (found)
        return ie->value_len == size && !memcmp(ie->value, value, size);
    return pl->e && pl->e->value_len == size &&
           !memcmp(pl->e->data + pl->e->name_len, value, size);
}

/* ==== public functions ======================================================== */

/*
 * fs_setxattr body (value NULL: remove), journal operation held. Names are
 * unique over the inode area and the chain together. A value equal to
 * the stored one is not written again and leaves ctime alone. A value goes into
 * the inode area whenever it fits there once the old entry (wherever it
 * was) is gone, else into the chain; attributes already in the chain do
 * not move when room appears in the inode.
 */
static int change_locked(struct fs *fs, uint64_t ino, const char *name, size_t len,
                         const void *value, size_t size, int flags)
{
    struct mmapfs_disk_inode di;
    struct xattr_place pl;
    struct ixattr_entry ie;

    int err = fs_inode_get(fs, ino, &di);
    if (err)
        return err;
    int in_inode = area_load(fs, ino, &di);
    if (in_inode < 0)
        return in_inode;
    int found = in_inode && fs_ixattr_find(di.xattr_area, name, len, &ie);
    err = chain_scan(fs, ino, &di, name, len,
                     value ? mmapfs_xattr_entry_size(len, size) : 0, &pl);
    if (err)
        return err;
    if (!value) {
        if (!pl.blk && !found)
            return -ENODATA;
    } else {
        if ((pl.blk || found) && (flags & XATTR_CREATE))
            return -EEXIST;
        if (!pl.blk && !found && (flags & XATTR_REPLACE))
            return -ENODATA;
        /* as ext4 (ext4_xattr_value_same): storing the value the
         * attribute already has changes nothing, not even ctime */
        if (value_same(found, &ie, &pl, value, size))
            return 0;
    }
    if (found)
        fs_ixattr_remove(di.xattr_area, &ie);
    if (value && in_inode && fs_ixattr_add(di.xattr_area, name, len, value, size) == 0)
        value = NULL;                   /* in the inode; a chain copy goes */
    else if (!value && found)
        pl.blk = 0;                     /* removed from the inode: the chain has none */
    if (value || pl.blk) {
        err = chain_change(fs, ino, &di, &pl, name, len, value, size);
        if (err)
            return err;
    }
    fs_inode_touch(fs, ino, &di, TOUCH_CTIME);
    return fs_inode_put(fs, ino, &di);
}

/* The checks of fs_setxattr that need no inode: 0 and *len, or -errno. */
static int set_check(const char *name, size_t size, int flags, size_t *len)
{
    if (flags & ~(XATTR_CREATE | XATTR_REPLACE))
        return -EINVAL;
    int err = check_name(name, len);
    if (err)
        return err;
    if (size > XATTR_VALUE_MAX)
        return -E2BIG;
    if (mmapfs_xattr_entry_size(*len, size) > XATTR_ROOM)
        return -ENOSPC;
    return 0;
}

int fs_xattr_set_locked(struct fs *fs, uint64_t ino, const char *name, const void *value,
                        size_t size, int flags)
{
    static const char empty;
    size_t len;
    int err = set_check(name, size, flags, &len);
    if (err)
        return err;
    return change_locked(fs, ino, name, len, value ? value : &empty, size, flags);
}

int fs_setxattr(struct fs *fs, uint64_t ino, const char *name, const void *value,
                size_t size, int flags)
{
    size_t len;

    int err = set_check(name, size, flags, &len);   /* before the journal's state */
    if (err)
        return err;
    int tries = 0;
    do {
        err = jnl_begin(fs->jnl);
        if (err)
            return err;
        err = fs_xattr_set_locked(fs, ino, name, value, size, flags);
        err = fs_end(fs, err);
        /* -ENOSPC: a full xattr block, or no free block; in the latter
         * case blocks freed by an uncommitted transaction may help */
    } while (fs_alloc_retry(fs, err, &tries));
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
    jnl_lock(fs->jnl);
    int err = fs_xattr_get_locked(fs, ino, name, buf, size);
    jnl_unlock(fs->jnl);
    return err;
}

int fs_xattr_get_locked(struct fs *fs, uint64_t ino, const char *name, void *buf,
                        size_t size)
{
    struct mmapfs_disk_inode di;
    struct xattr_place pl;
    size_t len;

    int err = check_name(name, &len);
    if (err)
        return err;
    err = fs_inode_get(fs, ino, &di);
    const void *value = NULL;
    size_t value_len = 0;
    struct ixattr_entry ie;
    int in_inode = err ? 0 : area_load(fs, ino, &di);
    if (in_inode < 0)
        err = in_inode;
    if (!err && in_inode > 0 && fs_ixattr_find(di.xattr_area, name, len, &ie)) {
        value = ie.value;
        value_len = ie.value_len;
    } else if (!err) {
        err = chain_scan(fs, ino, &di, name, len, SIZE_MAX, &pl);
        if (!err && pl.e) {
            value = pl.e->data + pl.e->name_len;
            value_len = pl.e->value_len;
        }
    }
    if (err)
        goto out;
    if (!value) {
        err = -ENODATA;
        goto out;
    }
    err = (int)value_len;
    if (size == 0)
        goto out;
    if (size < value_len) {
        err = -ERANGE;
        goto out;
    }
    memcpy(buf, value, value_len);
out:
    return err;
}

/* Copies the names of the inode area, then of the chain, into buf (NULL:
 * only counts); the total length of the list, or -errno. */
static ssize_t list_names(struct fs *fs, uint64_t ino, const struct mmapfs_disk_inode *di,
                          char *buf)
{
    const struct mmapfs_disk_xattr_entry *e;
    struct ixattr_entry ie;
    struct xattr_iter it;
    struct chain_pos c;
    size_t total = 0, off = 0;
    char name[MMAPFS_NAME_MAX + 1];

    int err = area_load(fs, ino, di);
    if (err < 0)
        return err;
    while (err > 0 && fs_ixattr_next(di->xattr_area, &off, &ie)) {
        size_t n = fs_ixattr_full_name(&ie, name);
        if (buf) {
            memcpy(buf + total, name, n);
            buf[total + n] = '\0';
        }
        total += n + 1;
    }
    err = chain_first(fs, ino, di, &c);
    for (; !err && c.blk; err = chain_next(fs, ino, &c)) {
        iter_init(&it, c.p);
        while ((e = iter_next(&it))) {
            if (buf) {
                memcpy(buf + total, e->data, e->name_len);
                buf[total + e->name_len] = '\0';
            }
            total += (size_t)e->name_len + 1;
        }
    }
    return err ? err : (ssize_t)total;
}

int fs_listxattr(struct fs *fs, uint64_t ino, char *buf, size_t size)
{
    struct mmapfs_disk_inode di;

    jnl_lock(fs->jnl);
    ssize_t total = fs_inode_get(fs, ino, &di);
    if (!total)
        total = list_names(fs, ino, &di, NULL);
    if (total > 0 && size) {
        if (size < (size_t)total)
            total = -ERANGE;
        else
            total = list_names(fs, ino, &di, buf);
    }
    jnl_unlock(fs->jnl);
    return total > INT_MAX ? -E2BIG : (int)total;
}

int fs_xattr_free_all(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di)
{
    struct chain_pos c;

    /* the whole chain is validated first: never free a block that may be
     * someone else's */
    int err = chain_first(fs, ino, di, &c);
    while (!err && c.blk)
        err = chain_next(fs, ino, &c);
    if (err)
        return err;
    while (di->xattr_block) {
        uint64_t b = di->xattr_block;
        const uint8_t *p;
        err = block_load(fs, ino, b, &p);
        if (err)
            return err;
        di->xattr_block = block_next(p);
        fs_free_meta(fs, b);
        if (di->blocks)
            di->blocks--;
    }
    memset(di->xattr_area, 0, sizeof(di->xattr_area));
    return 0;
}
