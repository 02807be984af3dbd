/*
 * ops_dir.c — directory requests: opendir, readdir, readdirplus,
 * releasedir, fsyncdir.
 *
 * Directory offsets are fs cookies, stable while entries are removed, so
 * no per-open state is needed (fh = 0). readdir/readdirplus fill a buffer
 * of the size the kernel asked for; the fill callback returns 1 when an
 * entry does not fit, and fs then neither counts it nor takes a lookup
 * reference for it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuse/ops_i.h"

struct dir_fill {
    fuse_req_t req;
    char *buf;
    size_t size, pos;
    int plus;
    /* readdirplus: inodes whose lookup reference fs took for this reply,
     * dropped again if the reply cannot be delivered */
    uint64_t *inos;
    size_t ninos, cap;
    int err;
};

static int is_dot_or_dotdot(const char *name)
{
    return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

/* fs_fill_fn: appends one entry; FS_FILL_FULL if it does not fit.
 *
 * READDIRPLUS lists some entries bare: name, inode number and type, no
 * attributes, no lookup reference (nodeid 0; the kernel then leaves what
 * it caches of the inode and its dentry as it is):
 *   - an inode the kernel holds already (fs left its attributes out:
 *     nlink 0). Its cached attributes are current, or marked stale by the
 *     kernel or by a notification, and the kernel would drop its cached
 *     POSIX ACLs on applying an entry: one GETXATTR per file at the next
 *     `ls -l` (docs/MOUNT.md, "Listings and inodes the kernel holds");
 *   - "." and "..";
 *   - an inode whose attributes changed within the last second
 *     (mfs_attr_recent: a directory that gained or lost an entry, a file
 *     that lost one of several names). The kernel applies an entry's
 *     attributes by clearing the inode's "stale" mark before it writes
 *     the values, and a stat(2) that reads the inode in between takes the
 *     old values as current; and it lowers a file's link count after an
 *     unlink on top of whatever count it holds, one applied from a
 *     listing just before included (docs/MOUNT.md). */
static int dir_fill_entry(void *ctx, const char *name, const struct fs_stat *st,
                          uint64_t next_off)
{
    struct dir_fill *d = ctx;
    size_t room = d->size - d->pos, len;
    int bare = 0;

    if (!d->plus) {
        struct stat kst;
        memset(&kst, 0, sizeof(kst));
        kst.st_ino = st->ino;
        kst.st_mode = st->mode & S_IFMT;
        len = fuse_add_direntry(d->req, d->buf + d->pos, room, name, &kst,
                                (off_t)next_off);
    } else {
        struct fuse_entry_param e;
        bare = st->nlink == 0 || is_dot_or_dotdot(name) || mfs_attr_recent(d->req, st->ino);

        if (!bare && d->ninos == d->cap) {
            size_t cap = d->cap ? d->cap * 2 : 64;
            uint64_t *inos = realloc(d->inos, cap * sizeof(*inos));
            if (!inos) {
                d->err = -ENOMEM;
                return FS_FILL_FULL;
            }
            d->inos = inos;
            d->cap = cap;
        }
        if (bare) {
            /* name, inode number and type only (nodeid 0): no attributes
             * go out, so none are recorded as answered (mfs_attr_timeout) */
            memset(&e, 0, sizeof(e));
            e.attr.st_ino = st->ino;
            e.attr.st_mode = st->mode & S_IFMT;
        } else {
            mfs_fill_entry(d->req, st, &e);
        }
        len = fuse_add_direntry_plus(d->req, d->buf + d->pos, room, name, &e,
                                     (off_t)next_off);
        if (len <= room && !bare)
            d->inos[d->ninos++] = st->ino;
    }
    if (len > room)
        return FS_FILL_FULL;
    d->pos += len;
    return bare ? FS_FILL_NOREF : 0;
}

/* Shared body of readdir and readdirplus. */
static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, int plus)
{
    struct fs *fs = mfs_fs(req);
    struct dir_fill d;
    size_t i;
    int err;

    memset(&d, 0, sizeof(d));
    d.req = req;
    d.size = size;
    d.plus = plus;
    d.buf = malloc(size ? size : 1);
    if (!d.buf) {
        err = -ENOMEM;
        goto out_err;
    }
    if (off < 0) {
        err = -EINVAL;
        goto out_err;
    }
    err = fs_readdir(fs, ino, (uint64_t)off, plus ? FS_LIST_NEW_ATTRS : FS_LIST_NAMES,
                     dir_fill_entry, &d);
    if (err == 0 && d.err && d.pos == 0)
        err = d.err;
    if (err < 0 && d.pos == 0)
        goto out_err;
    /* entries already filled are delivered; an error repeats next call */
    if (fuse_reply_buf(req, d.buf, d.pos) != 0)
        for (i = 0; i < d.ninos; i++)
            fs_forget(fs, d.inos[i], 1);
    free(d.buf);
    free(d.inos);
    return;
out_err:
    for (i = 0; i < d.ninos; i++)
        fs_forget(fs, d.inos[i], 1);
    free(d.buf);
    free(d.inos);
    mfs_reply_err(req, err);
}

void mfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    mfs_count(req, MFS_OP_OPENDIR);
    (void)ino;
    if (mfs_data(req)->no_opendir) {
        mfs_reply_err(req, -ENOSYS);   /* the kernel stops asking (init) */
        return;
    }
    fi->fh = 0;
    fuse_reply_open(req, fi);
}

void mfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                 struct fuse_file_info *fi)
{
    mfs_count(req, MFS_OP_READDIR);
    (void)fi;
    do_readdir(req, ino, size, off, 0);
}

void mfs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    mfs_count(req, MFS_OP_READDIRPLUS);
    (void)fi;
    do_readdir(req, ino, size, off, 1);
}

void mfs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    mfs_count(req, MFS_OP_RELEASEDIR);
    (void)ino;
    (void)fi;
    mfs_reply_err(req, 0);
}

void mfs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
                  struct fuse_file_info *fi)
{
    mfs_count(req, MFS_OP_FSYNCDIR);
    (void)fi;
    mfs_fsync_start(req, ino, datasync);
}
