/*
 * Directory index: name -> (inode, type) entries in the directory's B+tree.
 *
 * Key = (mmapfs_name_hash(name) << 8) | k, with k the smallest suffix not
 * used by another name of the same hash; value = struct mmapfs_disk_dirent.
 * Lookups and inserts scan the (normally one-item) key range of a hash, so
 * every operation costs O(log n) node reads. "." and ".." are not stored.
 * The directory inode's size is its number of entries.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/dir_i.h"
#include "fs/fs_i.h"

/* ==== hash-level operations on a bare tree (also used by the tests) ======= */

int fs_dirent_validate(const union dirent_buf *buf, size_t len, uint64_t inode_count)
{
    if (len < sizeof(struct mmapfs_disk_dirent) || len > DIRENT_MAX_VALUE)
        return -EUCLEAN;
    if (buf->de.name_len == 0 || sizeof(struct mmapfs_disk_dirent) + buf->de.name_len != len)
        return -EUCLEAN;
    if (buf->de.ino == 0 || (inode_count && buf->de.ino > inode_count))
        return -EUCLEAN;
    /* a name the kernel cannot take: '/' fails the whole readdir batch, a
     * NUL cuts it short (to "" or to a second "." or "..") */
    const char *name = buf->de.name;
    size_t n = buf->de.name_len;
    if (memchr(name, '/', n) || memchr(name, '\0', n) || (n == 1 && name[0] == '.') ||
        (n == 2 && name[0] == '.' && name[1] == '.'))
        return -EUCLEAN;
    return 0;
}

/* Callback of scan_hash: called for each valid entry of the hash range;
 * a non-zero return stops the scan and is returned by it. */
typedef int (*scan_fn)(void *ctx, uint64_t key, const union dirent_buf *buf);

/*
 * Visits every entry whose key lies in [hash << 8, hash << 8 | 255], in key
 * order. Returns the callback's first non-zero value, 0 at the end of the
 * range, or an error (-EUCLEAN for an invalid entry).
 */
static int scan_hash(struct bt_tree *t, uint64_t hash, uint64_t inode_count,
                     scan_fn fn, void *ctx)
{
    uint64_t first = hash << 8, last = first | 0xff, key = first;
    union dirent_buf buf;

    while (key <= last) {
        uint64_t found;
        size_t len = sizeof(buf);
        int err = bt_lookup_ge(t, key, &found, &buf, &len);
        if (err == -ENOENT || (!err && found > last))
            return 0;
        if (err)
            return err;
        if (found < key)
            return -EUCLEAN;
        err = fs_dirent_validate(&buf, len, inode_count);
        if (err)
            return err;
        err = fn(ctx, found, &buf);
        if (err)
            return err;
        key = found + 1;
    }
    return 0;
}

struct match_ctx {
    const char *name;
    size_t len;
    uint64_t key;
    uint64_t ino;
    uint8_t type;
    uint8_t used[32];      /* suffixes k in use (bitmap), filled by match_cb */
};

/* scan_fn: records the suffix and stops (returns 1) when the name matches. */
static int match_cb(void *ctx, uint64_t key, const union dirent_buf *buf)
{
    struct match_ctx *m = ctx;
    unsigned k = key & 0xff;

    m->used[k / 8] |= (uint8_t)(1u << (k % 8));
    if (buf->de.name_len == m->len && memcmp(buf->de.name, m->name, m->len) == 0) {
        m->key = key;
        m->ino = buf->de.ino;
        m->type = buf->de.type;
        return 1;
    }
    return 0;
}

/* Scans the hash range for name: 1 if found (m filled), 0 if not, or -errno. */
static int match_name(struct bt_tree *t, uint64_t hash, const char *name, size_t len,
                      uint64_t inode_count, struct match_ctx *m)
{
    memset(m, 0, sizeof(*m));
    m->name = name;
    m->len = len;
    return scan_hash(t, hash, inode_count, match_cb, m);
}

int fs_dirent_lookup_hashed(struct bt_tree *t, uint64_t hash, const char *name, size_t len,
                         uint64_t inode_count, uint64_t *key, uint64_t *ino, uint8_t *type)
{
    struct match_ctx m;
    int r = match_name(t, hash, name, len, inode_count, &m);
    if (r < 0)
        return r;
    if (r == 0)
        return -ENOENT;
    if (key)
        *key = m.key;
    if (ino)
        *ino = m.ino;
    if (type)
        *type = m.type;
    return 0;
}

/* Encodes an entry into buf; returns the value length. */
static size_t dirent_encode(union dirent_buf *buf, const char *name, size_t len,
                            uint64_t ino, uint8_t type)
{
    buf->de.ino = ino;
    buf->de.type = type;
    buf->de.name_len = (uint8_t)len;
    memcpy(buf->de.name, name, len);
    return sizeof(struct mmapfs_disk_dirent) + len;
}

int fs_dirent_insert_hashed(struct bt_tree *t, uint64_t hash, const char *name, size_t len,
                         uint64_t inode_count, uint64_t ino, uint8_t type, uint64_t *key)
{
    struct match_ctx m;
    union dirent_buf buf;
    unsigned k;

    if (len == 0 || len > MMAPFS_NAME_MAX)
        return -EINVAL;
    int r = match_name(t, hash, name, len, inode_count, &m);
    if (r < 0)
        return r;
    if (r > 0)
        return -EEXIST;
    for (k = 0; k < 256; k++)
        if (!(m.used[k / 8] & (1u << (k % 8))))
            break;
    if (k == 256)
        return -ENOSPC;
    uint64_t new_key = (hash << 8) | k;
    size_t vlen = dirent_encode(&buf, name, len, ino, type);
    int err = bt_insert(t, new_key, &buf, vlen);
    if (err == -EEXIST)        /* the scan said the key was free */
        return -EUCLEAN;
    if (err)
        return err;
    if (key)
        *key = new_key;
    return 0;
}

int fs_dirent_delete_hashed(struct bt_tree *t, uint64_t hash, const char *name, size_t len,
                         uint64_t inode_count)
{
    uint64_t key;
    int err = fs_dirent_lookup_hashed(t, hash, name, len, inode_count, &key, NULL, NULL);
    if (err)
        return err;
    err = bt_delete(t, key);
    return err == -ENOENT ? -EUCLEAN : err;
}

int fs_dirent_update_hashed(struct bt_tree *t, uint64_t hash, const char *name, size_t len,
                         uint64_t inode_count, uint64_t ino, uint8_t type)
{
    union dirent_buf buf;
    uint64_t key;
    int err = fs_dirent_lookup_hashed(t, hash, name, len, inode_count, &key, NULL, NULL);
    if (err)
        return err;
    size_t vlen = dirent_encode(&buf, name, len, ino, type);
    err = bt_update(t, key, &buf, vlen);
    return err == -ENOENT ? -EUCLEAN : err;
}

int fs_dir_check_name(const char *name, size_t *len)
{
    size_t n = strnlen(name, MMAPFS_NAME_MAX + 1);
    if (n > MMAPFS_NAME_MAX)
        return -ENAMETOOLONG;
    *len = n;
    if (n == 0 || memchr(name, '/', n))
        return -EINVAL;
    return 0;
}

/* ==== directory inodes (fs_i.h) ============================================ */

/* Maps -EUCLEAN from the tree or an entry to a recorded corruption. */
static int dir_error(struct fs *fs, uint64_t dir, int err)
{
    if (err == -EUCLEAN)
        return fs_corrupt(fs, "directory %llu: corrupt index", (unsigned long long)dir);
    return err;
}

/* Basic sanity of a directory inode's fields before using its tree. */
static int dir_check_inode(struct fs *fs, uint64_t dir, const struct mmapfs_disk_inode *ddi)
{
    if ((ddi->mode & S_IFMT) != S_IFDIR)
        return -ENOTDIR;
    if (ddi->tree_root && (ddi->tree_root < fs->data_start || ddi->tree_root >= fs->block_count))
        return fs_corrupt(fs, "directory %llu: tree root %llu out of range",
                          (unsigned long long)dir, (unsigned long long)ddi->tree_root);
    return 0;
}

/* An inode with link count 0 named by an entry must not be handed out: a
 * lookup reference would let the last FORGET release it (fs_forget frees
 * an unlinked inode) and free its blocks while the name stays. ext4
 * refuses the same ("deleted inode referenced"). */
int fs_dir_target(struct fs *fs, uint64_t dir, uint64_t ino, struct mmapfs_disk_inode *di)
{
    int err = fs_inode_get(fs, ino, di);
    if (err == -ENOENT)
        return fs_corrupt(fs, "directory %llu: entry points to free inode %llu",
                          (unsigned long long)dir, (unsigned long long)ino);
    if (!err && di->nlink == 0)
        return fs_corrupt(fs, "directory %llu: entry points to inode %llu, which has no links",
                          (unsigned long long)dir, (unsigned long long)ino);
    return err;
}

int fs_dir_find(struct fs *fs, uint64_t dir, const struct mmapfs_disk_inode *ddi,
             const char *name, size_t len, uint64_t *ino, uint8_t *type)
{
    return fs_dir_find_key(fs, dir, ddi, name, len, NULL, ino, type);
}

int fs_dir_find_key(struct fs *fs, uint64_t dir, const struct mmapfs_disk_inode *ddi,
                 const char *name, size_t len, uint64_t *key, uint64_t *ino, uint8_t *type)
{
    struct fs_tree_ctx ctx;
    struct bt_tree tree;

    int err = dir_check_inode(fs, dir, ddi);
    if (err)
        return err;
    if (len == 0 || len > MMAPFS_NAME_MAX)
        return -ENOENT;
    if (!ddi->tree_root)
        return -ENOENT;
    fs_tree_open(&ctx, &tree, fs, dir, ddi->tree_root, MMAPFS_TREE_DIR);
    err = fs_dirent_lookup_hashed(&tree, mmapfs_name_hash(name, len), name, len,
                               fs->inode_count, key, ino, type);
    return dir_error(fs, dir, err);
}

/* Stores the tree's new root and node count change in the inode. */
static void dir_tree_done(struct mmapfs_disk_inode *ddi, const struct fs_tree_ctx *ctx,
                          const struct bt_tree *tree)
{
    ddi->tree_root = tree->root;
    ddi->blocks += (uint64_t)ctx->delta;
}

int fs_dir_add(struct fs *fs, uint64_t dir, struct mmapfs_disk_inode *ddi,
            const char *name, size_t len, uint64_t ino, uint8_t type)
{
    struct fs_tree_ctx ctx;
    struct bt_tree tree;

    int err = dir_check_inode(fs, dir, ddi);
    if (err)
        return err;
    if (len == 0)
        return -EINVAL;
    if (len > MMAPFS_NAME_MAX)
        return -ENAMETOOLONG;
    fs_tree_open(&ctx, &tree, fs, dir, ddi->tree_root, MMAPFS_TREE_DIR);
    err = fs_dirent_insert_hashed(&tree, mmapfs_name_hash(name, len), name, len,
                               fs->inode_count, ino, type, NULL);
    dir_tree_done(ddi, &ctx, &tree);
    if (err)
        return dir_error(fs, dir, err);
    ddi->size++;
    return 0;
}

/* One entry left the directory: its entry count goes down by one. */
static int dir_count_removed(struct fs *fs, uint64_t dir, struct mmapfs_disk_inode *ddi)
{
    if (ddi->size == 0)
        return fs_corrupt(fs, "directory %llu: entry count underflow",
                          (unsigned long long)dir);
    ddi->size--;
    return 0;
}

int fs_dir_remove(struct fs *fs, uint64_t dir, struct mmapfs_disk_inode *ddi,
               const char *name, size_t len)
{
    struct fs_tree_ctx ctx;
    struct bt_tree tree;

    int err = dir_check_inode(fs, dir, ddi);
    if (err)
        return err;
    if (len == 0 || len > MMAPFS_NAME_MAX || !ddi->tree_root)
        return -ENOENT;
    fs_tree_open(&ctx, &tree, fs, dir, ddi->tree_root, MMAPFS_TREE_DIR);
    err = fs_dirent_delete_hashed(&tree, mmapfs_name_hash(name, len), name, len,
                               fs->inode_count);
    dir_tree_done(ddi, &ctx, &tree);
    if (err)
        return dir_error(fs, dir, err);
    return dir_count_removed(fs, dir, ddi);
}

int fs_dir_remove_key(struct fs *fs, uint64_t dir, struct mmapfs_disk_inode *ddi, uint64_t key)
{
    struct fs_tree_ctx ctx;
    struct bt_tree tree;

    int err = dir_check_inode(fs, dir, ddi);
    if (err)
        return err;
    if (!ddi->tree_root)
        return -ENOENT;
    fs_tree_open(&ctx, &tree, fs, dir, ddi->tree_root, MMAPFS_TREE_DIR);
    err = bt_delete(&tree, key);
    dir_tree_done(ddi, &ctx, &tree);
    if (err)
        return dir_error(fs, dir, err);
    return dir_count_removed(fs, dir, ddi);
}

int fs_dir_replace(struct fs *fs, uint64_t dir, struct mmapfs_disk_inode *ddi,
                const char *name, size_t len, uint64_t ino, uint8_t type)
{
    struct fs_tree_ctx ctx;
    struct bt_tree tree;

    int err = dir_check_inode(fs, dir, ddi);
    if (err)
        return err;
    if (len == 0 || len > MMAPFS_NAME_MAX || !ddi->tree_root)
        return -ENOENT;
    fs_tree_open(&ctx, &tree, fs, dir, ddi->tree_root, MMAPFS_TREE_DIR);
    err = fs_dirent_update_hashed(&tree, mmapfs_name_hash(name, len), name, len,
                               fs->inode_count, ino, type);
    dir_tree_done(ddi, &ctx, &tree);
    return dir_error(fs, dir, err);
}

int fs_dir_is_empty(const struct mmapfs_disk_inode *ddi)
{
    return ddi->size == 0;
}
