/*
 * Directory listing with stable offsets (cookies).
 *
 * Offsets (format.h): 0 = start, 1 = after ".", 2 = after "..", and K + 3 =
 * after the entry with key K. Entries are listed in key (hash) order, so a
 * listing resumed at offset o continues with the first key >= o - 2: entries
 * added or removed between calls never make it skip or repeat a surviving
 * entry ("rm -r" of a directory that is emptied while it is being read).
 */
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/dir_i.h"
#include "fs/fs_i.h"

/* Listing state of one fs_readdir call. */
struct listing {
    struct fs *fs;
    uint64_t dir;
    int plus;
    fs_fill_fn fill;
    void *ctx;
    unsigned taken;        /* entries handed to fill and accepted */
};

/*
 * Hands one entry to fill(). Returns 0 if it was taken, 1 if the buffer is
 * full, or -errno. With attributes (fs_readdir's plus), st is the full stat
 * of the inode and an accepted entry (other than "." and "..") takes a
 * lookup reference unless fill() said FS_FILL_NOREF.
 */
static int emit(struct listing *l, const char *name, uint64_t ino, uint8_t type,
                uint64_t next_off, int is_dot)
{
    struct mmapfs_disk_inode di;
    struct fs_stat st;
    int attrs = l->plus == FS_LIST_ATTRS ||
                (l->plus == FS_LIST_NEW_ATTRS && (is_dot || fs_icache_refs(l->fs, ino) == 0));

    memset(&st, 0, sizeof(st));
    if (attrs) {
        int err = is_dot ? fs_inode_get(l->fs, ino, &di)
                         : fs_dir_target(l->fs, l->dir, ino, &di);
        if (err == -ENOENT)
            return fs_corrupt(l->fs, "directory %llu: %s is free inode %llu",
                              (unsigned long long)l->dir, name, (unsigned long long)ino);
        if (err)
            return err;
        fs_inode_to_stat(ino, &di, &st);
    } else {
        st.ino = ino;
        st.mode = DTTOIF(type);
    }
    int took = l->fill(l->ctx, name, &st, next_off);
    if (took == FS_FILL_FULL)
        return 1;
    if (attrs && !is_dot && took != FS_FILL_NOREF)
        fs_icache_ref(l->fs, ino);
    l->taken++;
    return 0;
}

/* One stored entry of list_entries' scan: key order is checked (a key
 * must be the name's (hash << 8 | k), above the one before: a listing that
 * went backwards, or a key so large that the next offset (found + 3) wraps
 * to the start, would never end). */
struct entry_scan {
    struct listing *l;
    uint64_t min_key;      /* the smallest key the next entry may have */
    int stopped;           /* list_one stopped the scan (and reported it) */
};

static int list_one(void *vctx, uint64_t found, const void *val, size_t len)
{
    struct entry_scan *sc = vctx;
    struct listing *l = sc->l;
    union dirent_buf buf;
    char name[MMAPFS_NAME_MAX + 1];

    sc->stopped = 1;
    if (len > sizeof(buf) || found < sc->min_key)
        return fs_corrupt(l->fs, "directory %llu: corrupt index", (unsigned long long)l->dir);
    memcpy(&buf, val, len);
    if (fs_dirent_validate(&buf, len, l->fs->inode_count) ||
        found >> 8 != mmapfs_name_hash(buf.de.name, buf.de.name_len))
        return fs_corrupt(l->fs, "directory %llu: corrupt index", (unsigned long long)l->dir);
    memcpy(name, buf.de.name, buf.de.name_len);
    name[buf.de.name_len] = '\0';
    sc->min_key = found + 1;
    int err = emit(l, name, buf.de.ino, buf.de.type, found + 3, 0);
    sc->stopped = err != 0;
    return err;
}

/* Lists the stored entries with key >= key, in key order. */
static int list_entries(struct listing *l, const struct mmapfs_disk_inode *ddi, uint64_t key)
{
    struct fs_tree_ctx tctx;
    struct bt_tree tree;
    struct entry_scan sc = { .l = l, .min_key = key };

    if (!ddi->tree_root)
        return 0;
    if (ddi->tree_root < l->fs->data_start || ddi->tree_root >= l->fs->block_count)
        return fs_corrupt(l->fs, "directory %llu: tree root out of range",
                          (unsigned long long)l->dir);
    fs_tree_open(&tctx, &tree, l->fs, l->dir, ddi->tree_root, MMAPFS_TREE_DIR);
    int err = bt_scan_ge(&tree, key, list_one, &sc);
    if (err == -EUCLEAN && !sc.stopped)
        return fs_corrupt(l->fs, "directory %llu: corrupt index", (unsigned long long)l->dir);
    return err < 0 ? err : 0;
}

/* fs_readdir body, journal lock held. */
static int readdir_locked(struct listing *l, uint64_t off)
{
    struct mmapfs_disk_inode ddi;
    uint64_t parent;

    int err = fs_inode_get(l->fs, l->dir, &ddi);
    if (err)
        return err;
    if (!S_ISDIR(ddi.mode))
        return -ENOTDIR;
    if (off == 0) {
        err = emit(l, ".", l->dir, DT_DIR, 1, 1);
        if (err)
            return err;
    }
    if (off <= 1) {
        parent = l->dir == MMAPFS_ROOT_INO ? l->dir : ddi.parent;
        if (parent == 0 || parent > l->fs->inode_count)
            return fs_corrupt(l->fs, "directory %llu: parent %llu out of range",
                              (unsigned long long)l->dir, (unsigned long long)parent);
        err = emit(l, "..", parent, DT_DIR, 2, 1);
        if (err)
            return err;
    }
    /* entry K reports next offset K + 3, so offset o resumes at key o - 2 */
    return list_entries(l, &ddi, off <= 2 ? 0 : off - 2);
}

int fs_readdir(struct fs *fs, uint64_t ino, uint64_t off, int plus,
               fs_fill_fn fill, void *ctx)
{
    struct listing l = {
        .fs = fs, .dir = ino, .plus = plus, .fill = fill, .ctx = ctx,
    };

    jnl_lock(fs->jnl);
    int err = readdir_locked(&l, off);
    jnl_unlock(fs->jnl);
    if (err == 1)
        return 0;               /* buffer full */
    /* entries already taken (and referenced) must reach the caller: the
     * error is reported by the next call, which starts at the bad entry */
    if (err < 0 && l.taken > 0)
        return 0;
    return err;
}
