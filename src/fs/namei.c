/*
 * Name operations: lookup, create (mknod, mkdir, symlink), readlink, link,
 * unlink, rmdir and rename (with RENAME_NOREPLACE / RENAME_EXCHANGE /
 * RENAME_WHITEOUT).
 *
 * Each public function is one journal operation (jnl_begin .. jnl_end, or
 * jnl_lock .. jnl_unlock when it only reads), so every change of a name,
 * its inodes and their link counts lands in one transaction.
 *
 * Link counts: a file has one link per entry; a directory has 2 + its
 * number of subdirectories ("." and each child's ".."). A directory's
 * parent field is its "..".
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/dir_i.h"
#include "fs/fs_i.h"

#define FS_LINK_MAX      65000u        /* hard links of a non-directory */
#define FS_DIR_NLINK_MAX 0xfffffff0u   /* subdirectories + 2 of a directory */

/* ==== helpers =============================================================== */

/* 1 for ".", 2 for "..", else 0. */
static int dot_name(const char *name, size_t len)
{
    if (len == 1 && name[0] == '.')
        return 1;
    if (len == 2 && name[0] == '.' && name[1] == '.')
        return 2;
    return 0;
}

/* Reads inode ino and checks it is a directory (-ENOTDIR). */
static int get_dir(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di)
{
    int err = fs_inode_get(fs, ino, di);
    if (err)
        return err;
    return S_ISDIR(di->mode) ? 0 : -ENOTDIR;
}

/* Reads the inode a directory's parent field names ("..", which is no
 * entry: a parent removed while a descendant stays open may have no
 * links); a free one is corruption. */
static int get_parent(struct fs *fs, uint64_t dir, uint64_t ino, struct mmapfs_disk_inode *di)
{
    int err = fs_inode_get(fs, ino, di);
    if (err == -ENOENT)
        return fs_corrupt(fs, "directory %llu: parent is free inode %llu",
                          (unsigned long long)dir, (unsigned long long)ino);
    return err;
}

/* Validates a directory's parent field (its ".."). */
static int get_parent_ino(struct fs *fs, uint64_t dir, const struct mmapfs_disk_inode *ddi,
                          uint64_t *parent)
{
    if (dir == MMAPFS_ROOT_INO) {
        *parent = dir;
        return 0;
    }
    if (ddi->parent == 0 || ddi->parent > fs->inode_count)
        return fs_corrupt(fs, "directory %llu: parent %llu out of range",
                          (unsigned long long)dir, (unsigned long long)ddi->parent);
    *parent = ddi->parent;
    return 0;
}

/* Takes a lookup reference and fills st. */
static void found_inode(struct fs *fs, uint64_t ino, const struct mmapfs_disk_inode *di,
                        struct fs_stat *st)
{
    fs_icache_ref(fs, ino);
    if (st)
        fs_inode_to_stat(ino, di, st);
}

/* ==== lookup ================================================================ */

/*
 * "." of any inode, directory or not: the kernel decodes a file handle
 * (open_by_handle_at, NFS export) of an inode it no longer caches by
 * LOOKUP(ino, "."). An inode number not in use, or an inode without links
 * (deleted; the kernel would still cache it if it were open), is -ENOENT,
 * which the kernel reports as ESTALE. Journal lock held.
 */
static int lookup_self(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di)
{
    int err = fs_inode_get(fs, ino, di);
    if (err)
        return err;
    return di->nlink == 0 ? -ENOENT : 0;
}

int fs_lookup(struct fs *fs, uint64_t parent, const char *name, struct fs_stat *st)
{
    struct mmapfs_disk_inode pdi, di;
    uint64_t ino;
    size_t len;

    int err = fs_dir_check_name(name, &len);
    if (err)
        return len == 0 && err == -EINVAL ? -ENOENT : err;
    jnl_lock(fs->jnl);
    if (dot_name(name, len) == 1) {
        err = lookup_self(fs, parent, &di);
        if (!err)
            found_inode(fs, parent, &di, st);
        goto out;
    }
    err = get_dir(fs, parent, &pdi);
    if (err)
        goto out;
    if (dot_name(name, len) == 2) {
        err = get_parent_ino(fs, parent, &pdi, &ino);
        if (!err)
            err = get_parent(fs, parent, ino, &di);
    } else {
        err = fs_dir_find(fs, parent, &pdi, name, len, &ino, NULL);
        if (!err)
            err = fs_dir_target(fs, parent, ino, &di);
    }
    if (err)
        goto out;
    found_inode(fs, ino, &di, st);
out:
    jnl_unlock(fs->jnl);
    return err;
}

/* The inode of an ordinary name (not "." or "..") in directory dir, and
 * its record, without a lookup reference. Journal lock held. */
static int find_named(struct fs *fs, uint64_t dir, const char *name, uint64_t *ino,
                      struct mmapfs_disk_inode *di)
{
    struct mmapfs_disk_inode pdi;
    size_t len;
    int err = fs_dir_check_name(name, &len);
    if (err || dot_name(name, len))
        return err ? err : -EINVAL;
    err = get_dir(fs, dir, &pdi);
    if (!err)
        err = fs_dir_find(fs, dir, &pdi, name, len, ino, NULL);
    return err ? err : fs_inode_get(fs, *ino, di);
}

uint64_t fs_rename_replaces_file(struct fs *fs, uint64_t parent, const char *name,
                                 uint64_t newparent, const char *newname)
{
    struct mmapfs_disk_inode sdi, ddi;
    uint64_t src = 0, dst = 0;
    jnl_lock(fs->jnl);
    int replaces = find_named(fs, parent, name, &src, &sdi) == 0 &&
                   find_named(fs, newparent, newname, &dst, &ddi) == 0 &&
                   S_ISREG(sdi.mode) && S_ISREG(ddi.mode) && src != dst;
    jnl_unlock(fs->jnl);
    return replaces ? src : 0;
}

/* ==== creation ============================================================== */

struct create_args {
    uint64_t parent;
    const char *name;
    size_t len;
    uint32_t mode;          /* type and permission bits */
    uint64_t rdev;
    const char *target;     /* symlinks */
    size_t target_len;
    const struct fs_cred *cred;
    int unnamed;            /* O_TMPFILE: no entry, no link (fs_tmpfile) */
};

/* Undoes a new inode that never got its entry: frees it and what it owns. */
static void discard_new_inode(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di)
{
    di->nlink = 0;
    if (di->tree_root == 0 && di->xattr_block == 0 && di->blocks == 0) {
        fs_free_inode(fs, ino);
        return;
    }
    if (fs_inode_put(fs, ino, di) == 0)
        fs_inode_release(fs, ino);
}

/* Creates an inode and its entry; journal operation held by the caller. */
static int create_locked(struct fs *fs, const struct create_args *a, struct fs_stat *st)
{
    struct mmapfs_disk_inode pdi, di;
    uint32_t mode = a->mode, gid = a->cred ? a->cred->gid : 0;
    uint64_t ino;
    int is_dir = S_ISDIR(mode);

    int err = get_dir(fs, a->parent, &pdi);
    if (err)
        return err;
    if (pdi.nlink == 0)                 /* directory was removed (the kernel checks */
        return a->unnamed ? -EPERM : -ENOENT;  /* names itself; O_TMPFILE: as ext4) */
    if (!a->unnamed && dot_name(a->name, a->len))
        return -EEXIST;
    if (S_ISLNK(mode)) {
        /* check first rather than write the target for nothing; for the
         * other types fs_dir_add finds an existing name (the kernel looks
         * names up before it creates them, so that is rare) */
        err = fs_dir_find(fs, a->parent, &pdi, a->name, a->len, NULL, NULL);
        if (err != -ENOENT)
            return err ? err : -EEXIST;
    }
    if (is_dir && pdi.nlink >= FS_DIR_NLINK_MAX)
        return -EMLINK;
    if (pdi.mode & S_ISGID) {
        gid = pdi.gid;
        if (is_dir)
            mode |= S_ISGID;
    }
    err = fs_inode_new(fs, a->parent, mode, a->cred ? a->cred->uid : 0, gid, &ino, &di);
    if (err)
        return err;
    if (S_ISCHR(mode) || S_ISBLK(mode))
        di.rdev = a->rdev;
    if (is_dir)
        di.parent = a->parent;
    if (S_ISLNK(mode)) {
        ssize_t n = fs_file_write_locked(fs, ino, &di, 0, a->target, a->target_len);
        if (n >= 0 && (size_t)n != a->target_len)
            n = -EIO;
        if (n < 0) {
            discard_new_inode(fs, ino, &di);
            return (int)n;
        }
    }
    if (a->unnamed) {
        /* no entry and no link: on the orphan list until link() names it
         * or its last reference goes (fs_forget); the directory itself
         * does not change, as on ext4 */
        di.nlink = 0;
        err = fs_icache_set_linkable(fs, ino, 1);
        if (!err)
            err = fs_orphan_add(fs, ino, &di);
        if (err) {
            fs_icache_set_linkable(fs, ino, 0);
            discard_new_inode(fs, ino, &di);
            return err;
        }
    } else {
        err = fs_dir_add(fs, a->parent, &pdi, a->name, a->len, ino, fs_inode_dtype(mode));
        if (err) {
            if (err != -EEXIST)          /* the tree may have changed shape */
                fs_inode_put(fs, a->parent, &pdi);
            discard_new_inode(fs, ino, &di);
            return err;
        }
        err = fs_inode_put(fs, ino, &di);
        if (err)
            return err;
        if (is_dir)
            pdi.nlink++;
        fs_inode_touch(fs, a->parent, &pdi, TOUCH_MTIME | TOUCH_CTIME);
        err = fs_inode_put(fs, a->parent, &pdi);
        if (err)
            return err;
    }
    if (!S_ISLNK(mode) && __atomic_load_n(&fs->acl_inherit, __ATOMIC_RELAXED)) {
        /* in this operation: an error undoes the whole create */
        err = fs_acl_inherit_locked(fs, a->parent, ino, di.mode);
        if (!err)
            err = fs_inode_get(fs, ino, &di);    /* ctime, xattr block */
        if (err)
            return err;
    }
    found_inode(fs, ino, &di, st);
    return 0;
}

/* Checks the name, runs create_locked in one journal operation. */
static int create(struct fs *fs, struct create_args *a, struct fs_stat *st)
{
    int err = a->unnamed ? 0 : fs_dir_check_name(a->name, &a->len);
    if (err)
        return err;
    int tries = 0;
    do {
        err = jnl_begin(fs->jnl);
        if (err)
            return err;
        err = create_locked(fs, a, st);
        err = fs_end(fs, err);
    } while (fs_alloc_retry(fs, err, &tries));
    return err;
}

void fs_set_acl_inherit(struct fs *fs, int on)
{
    __atomic_store_n(&fs->acl_inherit, on != 0, __ATOMIC_RELAXED);
}

int fs_mknod(struct fs *fs, uint64_t parent, const char *name, uint32_t mode,
             uint64_t rdev, const struct fs_cred *cred, struct fs_stat *st)
{
    uint32_t type = mode & S_IFMT;
    if (type == 0)
        type = S_IFREG;
    switch (type) {
    case S_IFREG: case S_IFIFO: case S_IFSOCK: case S_IFCHR: case S_IFBLK:
        break;
    case S_IFDIR:
        return -EPERM;                  /* as mknod(2) */
    default:
        return -EINVAL;
    }
    struct create_args a = {
        .parent = parent, .name = name, .mode = type | (mode & 07777),
        .rdev = rdev, .cred = cred,
    };
    return create(fs, &a, st);
}

int fs_tmpfile(struct fs *fs, uint64_t parent, uint32_t mode, const struct fs_cred *cred,
               struct fs_stat *st)
{
    struct create_args a = {
        .parent = parent, .name = "", .mode = S_IFREG | (mode & 07777), .cred = cred,
        .unnamed = 1,
    };
    return create(fs, &a, st);
}

int fs_mkdir(struct fs *fs, uint64_t parent, const char *name, uint32_t mode,
             const struct fs_cred *cred, struct fs_stat *st)
{
    struct create_args a = {
        .parent = parent, .name = name, .mode = S_IFDIR | (mode & 07777), .cred = cred,
    };
    return create(fs, &a, st);
}

int fs_symlink(struct fs *fs, uint64_t parent, const char *name, const char *target,
               const struct fs_cred *cred, struct fs_stat *st)
{
    size_t tlen = strnlen(target, MMAPFS_SYMLINK_MAX + 1);
    if (tlen == 0)
        return -ENOENT;                 /* as symlink(2) with an empty target */
    if (tlen > MMAPFS_SYMLINK_MAX)
        return -ENAMETOOLONG;
    struct create_args a = {
        .parent = parent, .name = name, .mode = S_IFLNK | 0777,
        .target = target, .target_len = tlen, .cred = cred,
    };
    return create(fs, &a, st);
}

int fs_readlink(struct fs *fs, uint64_t ino, char *buf, size_t size)
{
    struct mmapfs_disk_inode di;

    jnl_lock(fs->jnl);
    int err = fs_inode_get(fs, ino, &di);
    if (err)
        goto out;
    if (!S_ISLNK(di.mode)) {
        err = -EINVAL;
        goto out;
    }
    if (di.size == 0 || di.size > MMAPFS_SYMLINK_MAX) {
        err = fs_corrupt(fs, "symlink %llu: target length %llu",
                         (unsigned long long)ino, (unsigned long long)di.size);
        goto out;
    }
    size_t want = size < di.size ? size : (size_t)di.size;
    if (want) {
        ssize_t n = fs_file_read_locked(fs, ino, &di, 0, buf, want);
        if (n < 0) {
            err = (int)n;
            goto out;
        }
        if ((size_t)n != want) {
            err = fs_corrupt(fs, "symlink %llu: short target", (unsigned long long)ino);
            goto out;
        }
    }
    err = (int)di.size;
out:
    jnl_unlock(fs->jnl);
    return err;
}

/* ==== link, unlink, rmdir =================================================== */

/* fs_link body, journal operation held. */
static int link_locked(struct fs *fs, uint64_t ino, uint64_t newparent, const char *name,
                       size_t len, struct fs_stat *st)
{
    struct mmapfs_disk_inode pdi, di;

    int err = get_dir(fs, newparent, &pdi);
    if (err)
        return err;
    if (pdi.nlink == 0)
        return -ENOENT;
    if (dot_name(name, len))
        return -EEXIST;
    err = fs_inode_get(fs, ino, &di);
    if (err)
        return err;
    err = fs_dir_find(fs, newparent, &pdi, name, len, NULL, NULL);
    if (err != -ENOENT)
        return err ? err : -EEXIST;
    if (S_ISDIR(di.mode))
        return -EPERM;
    /* an O_TMPFILE not linked yet gets its first name (and leaves the
     * orphan list); any other inode without links was unlinked while open */
    int first = di.nlink == 0;
    if (first && !fs_icache_linkable(fs, ino))
        return -ENOENT;
    if (di.nlink >= FS_LINK_MAX)
        return -EMLINK;
    err = fs_dir_add(fs, newparent, &pdi, name, len, ino, fs_inode_dtype(di.mode));
    if (err) {
        fs_inode_put(fs, newparent, &pdi);
        return err;
    }
    di.nlink++;
    fs_inode_touch(fs, ino, &di, TOUCH_CTIME);
    err = first ? fs_orphan_remove(fs, ino, &di) : fs_inode_put(fs, ino, &di);
    if (err)
        return err;
    fs_inode_touch(fs, newparent, &pdi, TOUCH_MTIME | TOUCH_CTIME);
    err = fs_inode_put(fs, newparent, &pdi);
    if (err)
        return err;
    if (first)
        fs_icache_set_linkable(fs, ino, 0);
    found_inode(fs, ino, &di, st);
    return 0;
}

int fs_link(struct fs *fs, uint64_t ino, uint64_t newparent, const char *newname,
            struct fs_stat *st)
{
    size_t len;
    int err = fs_dir_check_name(newname, &len);
    if (err)
        return err;
    int tries = 0;
    do {
        err = jnl_begin(fs->jnl);
        if (err)
            return err;
        err = link_locked(fs, ino, newparent, newname, len, st);
        err = fs_end(fs, err);
    } while (fs_alloc_retry(fs, err, &tries));
    return err;
}

/* Removes name from parent; want_dir selects rmdir semantics. Journal held.
 * Answers e (may be NULL) once every check has passed: removing a B+tree
 * item allocates no block, so what follows fails only for want of memory,
 * an I/O error or corruption found on the way. */
static int remove_locked(struct fs *fs, uint64_t parent, const char *name, size_t len,
                         int want_dir, struct fs_early *e)
{
    struct mmapfs_disk_inode pdi, di;
    uint64_t ino, key;

    int err = get_dir(fs, parent, &pdi);
    if (err)
        return err;
    err = fs_dir_find_key(fs, parent, &pdi, name, len, &key, &ino, NULL);
    if (err)
        return err;
    err = fs_dir_target(fs, parent, ino, &di);
    if (err)
        return err;
    if (want_dir) {
        if (!S_ISDIR(di.mode))
            return -ENOTDIR;
        if (!fs_dir_is_empty(&di))
            return -ENOTEMPTY;
        /* a directory has one name, in its parent: another entry for it
         * (a corrupt image) must not free it while that name stays */
        if (di.parent != parent)
            return fs_corrupt(fs, "directory %llu: named in directory %llu, its parent is %llu",
                              (unsigned long long)ino, (unsigned long long)parent,
                              (unsigned long long)di.parent);
    } else if (S_ISDIR(di.mode)) {
        return -EISDIR;
    }
    fs_early_answer(e, NULL);
    err = fs_dir_remove_key(fs, parent, &pdi, key);
    if (err) {
        fs_inode_put(fs, parent, &pdi);
        return err;
    }
    if (want_dir && pdi.nlink > 2)
        pdi.nlink--;
    fs_inode_touch(fs, parent, &pdi, TOUCH_MTIME | TOUCH_CTIME);
    err = fs_inode_put(fs, parent, &pdi);
    if (err)
        return err;
    return fs_inode_drop_link(fs, ino, &di);
}

/* Shared entry of fs_unlink / fs_rmdir. */
static int remove_name(struct fs *fs, uint64_t parent, const char *name, int want_dir,
                       struct fs_early *e)
{
    size_t len;
    int err = fs_dir_check_name(name, &len);
    if (err)
        return err;
    switch (dot_name(name, len)) {
    case 1:
        return want_dir ? -EINVAL : -EISDIR;
    case 2:
        return want_dir ? -ENOTEMPTY : -EISDIR;
    }
    err = jnl_begin(fs->jnl);
    if (err)
        return err;
    unsigned tries = 0;
    do
        err = remove_locked(fs, parent, name, len, want_dir, e);
    while (fs_early_retry(fs, err, e, &tries));
    return fs_end_early(fs, err, e);
}

int fs_unlink(struct fs *fs, uint64_t parent, const char *name)
{
    return remove_name(fs, parent, name, 0, NULL);
}

int fs_rmdir(struct fs *fs, uint64_t parent, const char *name)
{
    return remove_name(fs, parent, name, 1, NULL);
}

int fs_unlink_early(struct fs *fs, uint64_t parent, const char *name, struct fs_early *e)
{
    return remove_name(fs, parent, name, 0, e);
}

int fs_rmdir_early(struct fs *fs, uint64_t parent, const char *name, struct fs_early *e)
{
    return remove_name(fs, parent, name, 1, e);
}

/* ==== rename ================================================================ */

/*
 * -EINVAL if directory 'moved' is 'dir' or one of its ancestors (moving it
 * under dir would detach a loop). Walks parent fields up to the root.
 */
static int check_not_ancestor(struct fs *fs, uint64_t moved, uint64_t dir)
{
    struct mmapfs_disk_inode di;
    uint64_t x = dir;

    for (uint64_t steps = 0; ; steps++) {
        if (x == moved)
            return -EINVAL;
        if (x == MMAPFS_ROOT_INO)
            return 0;
        if (steps > fs->inode_count)
            return fs_corrupt(fs, "directory %llu: parent chain loops",
                              (unsigned long long)dir);
        int err = fs_inode_get(fs, x, &di);
        if (err == -ENOENT)
            return fs_corrupt(fs, "directory %llu: parent %llu is free",
                              (unsigned long long)dir, (unsigned long long)x);
        if (err)
            return err;
        if (!S_ISDIR(di.mode))
            return fs_corrupt(fs, "inode %llu: in a parent chain but not a directory",
                              (unsigned long long)x);
        err = get_parent_ino(fs, x, &di, &x);
        if (err)
            return err;
    }
}

/* The state of one rename: two parents (possibly the same) and two entries. */
struct rename_op {
    uint64_t parent, newparent;
    const char *name, *newname;
    size_t len, newlen;
    unsigned flags;
    const struct fs_cred *cred;                     /* owner of a whiteout */
    struct mmapfs_disk_inode pdi, npdi_own, *npdi;  /* npdi = &pdi if same dir */
    uint64_t sino, tino;                            /* tino 0: no target */
    uint64_t skey;                                  /* key of the source entry */
    uint8_t stype, ttype;
    struct mmapfs_disk_inode sdi, tdi;
};

/* Checks everything; on 0 the rename can proceed. *noop set when nothing is
 * to be done (same entry, or both names link the same inode). */
static int rename_check(struct fs *fs, struct rename_op *r, int *noop)
{
    int exchange = r->flags & FS_RENAME_EXCHANGE;

    *noop = 0;
    int err = get_dir(fs, r->parent, &r->pdi);
    if (err)
        return err;
    r->npdi = &r->pdi;
    if (r->newparent != r->parent) {
        r->npdi = &r->npdi_own;
        err = get_dir(fs, r->newparent, r->npdi);
        if (err)
            return err;
    }
    err = fs_dir_find_key(fs, r->parent, &r->pdi, r->name, r->len, &r->skey, &r->sino, &r->stype);
    if (err)
        return err;
    err = fs_dir_find(fs, r->newparent, r->npdi, r->newname, r->newlen, &r->tino, &r->ttype);
    if (err == -ENOENT) {
        r->tino = 0;
        if (exchange)
            return -ENOENT;
        if (r->npdi->nlink == 0)
            return -ENOENT;
    } else if (err) {
        return err;
    }
    if (r->tino && (r->flags & FS_RENAME_NOREPLACE))
        return -EEXIST;                 /* even for the same entry, as Linux */
    if (r->tino == r->sino) {           /* same entry, or links of one inode */
        *noop = 1;
        return 0;
    }
    err = fs_dir_target(fs, r->parent, r->sino, &r->sdi);
    if (err)
        return err;
    if (r->tino) {
        err = fs_dir_target(fs, r->newparent, r->tino, &r->tdi);
        if (err)
            return err;
    }
    int sdir = S_ISDIR(r->sdi.mode), tdir = r->tino && S_ISDIR(r->tdi.mode);
    if (!exchange && r->tino) {
        if (sdir && !tdir)
            return -ENOTDIR;
        if (!sdir && tdir)
            return -EISDIR;
        if (tdir && !fs_dir_is_empty(&r->tdi))
            return -ENOTEMPTY;
    }
    if (r->parent != r->newparent) {
        if (sdir) {
            err = check_not_ancestor(fs, r->sino, r->newparent);
            if (err)
                return err;
        }
        if (exchange && tdir) {
            err = check_not_ancestor(fs, r->tino, r->parent);
            if (err)
                return err;
        }
    }
    /* no entry may be one of the parents (that would alias the copies) */
    if (r->sino == r->parent || r->sino == r->newparent ||
        r->tino == r->parent || r->tino == r->newparent)
        return -EINVAL;
    if (!exchange && sdir && !tdir && r->newparent != r->parent &&
        r->npdi->nlink >= FS_DIR_NLINK_MAX)
        return -EMLINK;
    return 0;
}

/* The inode of a whiteout: a character device 0/0 with mode 0 (as
 * overlayfs and ext4 make them), owned by the caller (root without cred).
 * Not yet put. */
static int whiteout_new(struct fs *fs, const struct rename_op *r, uint64_t *ino,
                        struct mmapfs_disk_inode *di)
{
    uint32_t uid = r->cred ? r->cred->uid : 0, gid = r->cred ? r->cred->gid : 0;

    if (r->pdi.mode & S_ISGID)
        gid = r->pdi.gid;
    int err = fs_inode_new(fs, r->parent, S_IFCHR, uid, gid, ino, di);
    if (err)
        return err;
    di->rdev = 0;
    return 0;
}

/* Leaves at the source name what a moved entry leaves behind: nothing, or
 * with RENAME_WHITEOUT a new whiteout inode, in the same transaction as
 * the move, so that a crash shows the old state or the new one. */
static int rename_vacate(struct fs *fs, struct rename_op *r)
{
    struct mmapfs_disk_inode wdi;
    uint64_t wino;

    if (!(r->flags & FS_RENAME_WHITEOUT))
        return fs_dir_remove_key(fs, r->parent, &r->pdi, r->skey);
    int err = whiteout_new(fs, r, &wino, &wdi);
    if (err)
        return err;
    /* the inode first: a failure after the entry points to it would leave
     * the entry pointing at a freed inode */
    err = fs_inode_put(fs, wino, &wdi);
    if (!err)
        err = fs_dir_replace(fs, r->parent, &r->pdi, r->name, r->len, wino, fs_inode_dtype(wdi.mode));
    if (err) {
        discard_new_inode(fs, wino, &wdi);
        return err;
    }
    /* like any new inode, the directory's default ACL (ext4 does the
     * same: mode 0 masks every entry); an error undoes the rename */
    if (__atomic_load_n(&fs->acl_inherit, __ATOMIC_RELAXED))
        err = fs_acl_inherit_locked(fs, r->parent, wino, wdi.mode);
    return err;
}

/* Moves (or replaces with) the source entry; everything checked. */
static int rename_move(struct fs *fs, struct rename_op *r)
{
    int sdir = S_ISDIR(r->sdi.mode), tdir = r->tino && S_ISDIR(r->tdi.mode);
    int err;

    if (r->tino)
        err = fs_dir_replace(fs, r->newparent, r->npdi, r->newname, r->newlen, r->sino, r->stype);
    else
        err = fs_dir_add(fs, r->newparent, r->npdi, r->newname, r->newlen, r->sino, r->stype);
    if (err) {
        fs_inode_put(fs, r->newparent, r->npdi);
        return err;
    }
    err = rename_vacate(fs, r);
    if (err) {
        /* undo the new entry so the inode is not linked twice */
        if (r->tino)
            fs_dir_replace(fs, r->newparent, r->npdi, r->newname, r->newlen, r->tino, r->ttype);
        else
            fs_dir_remove(fs, r->newparent, r->npdi, r->newname, r->newlen);
        fs_inode_put(fs, r->parent, &r->pdi);
        if (r->npdi != &r->pdi)
            fs_inode_put(fs, r->newparent, r->npdi);
        return err;
    }
    if (tdir && r->npdi->nlink > 2)
        r->npdi->nlink--;               /* the replaced directory's ".." */
    if (sdir && r->parent != r->newparent) {
        if (r->pdi.nlink > 2)
            r->pdi.nlink--;
        r->npdi->nlink++;
        r->sdi.parent = r->newparent;
    }
    fs_inode_touch(fs, r->sino, &r->sdi, TOUCH_CTIME);
    err = fs_inode_put(fs, r->sino, &r->sdi);
    if (err)
        return err;
    fs_inode_touch(fs, r->parent, &r->pdi, TOUCH_MTIME | TOUCH_CTIME);
    err = fs_inode_put(fs, r->parent, &r->pdi);
    if (err)
        return err;
    if (r->npdi != &r->pdi) {
        fs_inode_touch(fs, r->newparent, r->npdi, TOUCH_MTIME | TOUCH_CTIME);
        err = fs_inode_put(fs, r->newparent, r->npdi);
        if (err)
            return err;
    }
    if (r->tino)
        return fs_inode_drop_link(fs, r->tino, &r->tdi);
    return 0;
}

/* Swaps the two entries (RENAME_EXCHANGE); everything checked. */
static int rename_exchange(struct fs *fs, struct rename_op *r)
{
    int sdir = S_ISDIR(r->sdi.mode), tdir = S_ISDIR(r->tdi.mode);

    int err = fs_dir_replace(fs, r->parent, &r->pdi, r->name, r->len, r->tino, r->ttype);
    if (err)
        return err;
    err = fs_dir_replace(fs, r->newparent, r->npdi, r->newname, r->newlen, r->sino, r->stype);
    if (err) {
        fs_dir_replace(fs, r->parent, &r->pdi, r->name, r->len, r->sino, r->stype);
        return err;
    }
    if (r->parent != r->newparent) {
        if (sdir) {
            r->sdi.parent = r->newparent;
            if (!tdir) {
                if (r->pdi.nlink > 2)
                    r->pdi.nlink--;
                r->npdi->nlink++;
            }
        }
        if (tdir) {
            r->tdi.parent = r->parent;
            if (!sdir) {
                if (r->npdi->nlink > 2)
                    r->npdi->nlink--;
                r->pdi.nlink++;
            }
        }
    }
    fs_inode_touch(fs, r->sino, &r->sdi, TOUCH_CTIME);
    fs_inode_touch(fs, r->tino, &r->tdi, TOUCH_CTIME);
    fs_inode_touch(fs, r->parent, &r->pdi, TOUCH_MTIME | TOUCH_CTIME);
    if (r->npdi != &r->pdi)
        fs_inode_touch(fs, r->newparent, r->npdi, TOUCH_MTIME | TOUCH_CTIME);
    err = fs_inode_put(fs, r->sino, &r->sdi);
    if (!err)
        err = fs_inode_put(fs, r->tino, &r->tdi);
    if (!err)
        err = fs_inode_put(fs, r->parent, &r->pdi);
    if (!err && r->npdi != &r->pdi)
        err = fs_inode_put(fs, r->newparent, r->npdi);
    return err;
}

/* Whether what follows rename_check allocates nothing, so that the rename
 * may answer early (fs.h): nothing to do, an exchange (two entries
 * rewritten in place), or a move onto an existing name without a whiteout
 * (the target's entry rewritten in place, the source's removed, the
 * replaced inode unlinked). A move to a new name inserts an entry, which
 * may split a B+tree leaf, and a whiteout is a new inode. */
static int rename_allocates_nothing(const struct rename_op *r, int noop)
{
    return noop || (r->flags & FS_RENAME_EXCHANGE) ||
           (r->tino && !(r->flags & FS_RENAME_WHITEOUT));
}

static int rename_run(struct fs *fs, uint64_t parent, const char *name,
                      uint64_t newparent, const char *newname, unsigned flags,
                      const struct fs_cred *cred, struct fs_early *e)
{
    struct rename_op r;
    int noop;

    if (flags & ~(FS_RENAME_NOREPLACE | FS_RENAME_EXCHANGE | FS_RENAME_WHITEOUT))
        return -EINVAL;
    if ((flags & FS_RENAME_EXCHANGE) && (flags & (FS_RENAME_NOREPLACE | FS_RENAME_WHITEOUT)))
        return -EINVAL;
    memset(&r, 0, sizeof(r));
    r.parent = parent;
    r.newparent = newparent;
    r.name = name;
    r.newname = newname;
    r.flags = flags;
    r.cred = cred;
    int err = fs_dir_check_name(name, &r.len);
    if (err)
        return r.len == 0 && err == -EINVAL ? -ENOENT : err;
    err = fs_dir_check_name(newname, &r.newlen);
    if (err)
        return err;
    if (dot_name(name, r.len) || dot_name(newname, r.newlen))
        return -EINVAL;
    int tries = 0;
    do {
        err = jnl_begin(fs->jnl);
        if (err)
            return err;
        unsigned early_tries = 0;
        do {
            err = rename_check(fs, &r, &noop);
            if (!err && rename_allocates_nothing(&r, noop))
                fs_early_answer(e, NULL);
            if (!err && !noop)
                err = (flags & FS_RENAME_EXCHANGE) ? rename_exchange(fs, &r)
                                                   : rename_move(fs, &r);
        } while (fs_early_retry(fs, err, e, &early_tries));
        err = fs_end_early(fs, err, e);
    } while (!(e && e->answered) && fs_alloc_retry(fs, err, &tries));
    return err;
}

int fs_rename_as(struct fs *fs, uint64_t parent, const char *name,
                 uint64_t newparent, const char *newname, unsigned flags,
                 const struct fs_cred *cred)
{
    return rename_run(fs, parent, name, newparent, newname, flags, cred, NULL);
}

int fs_rename_early(struct fs *fs, uint64_t parent, const char *name,
                    uint64_t newparent, const char *newname, unsigned flags,
                    const struct fs_cred *cred, struct fs_early *e)
{
    return rename_run(fs, parent, name, newparent, newname, flags, cred, e);
}

int fs_rename(struct fs *fs, uint64_t parent, const char *name,
              uint64_t newparent, const char *newname, unsigned flags)
{
    return fs_rename_as(fs, parent, name, newparent, newname, flags, NULL);
}
