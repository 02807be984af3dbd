/*
 * ops_names.c — requests on names and attributes: lookup, forget, getattr,
 * setattr, readlink, create, mknod, mkdir, symlink, link, unlink, rmdir,
 * rename. Each handler calls fs and replies exactly once; errors go through
 * one out_err path.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <linux/capability.h>

#include "fs/acl.h"
#include "fuse/ops_i.h"

/* ---- credentials of new inodes ------------------------------------------------ */

int mfs_caller_in_group(fuse_req_t req, const struct fuse_ctx *ctx, uint32_t gid)
{
    gid_t small[64], *list = small;
    int n, i, found = 0;

    if (ctx->gid == gid)
        return 1;
    n = fuse_req_getgroups(req, 64, small);
    if (n > 64) {
        list = malloc((size_t)n * sizeof(*list));
        if (!list)
            return 0;
        n = fuse_req_getgroups(req, n, list);
    }
    for (i = 0; i < n; i++)
        if (list[i] == gid)
            found = 1;
    if (list != small)
        free(list);
    return found;
}

/* Does the caller hold capability cap (CAP_FSETID, CAP_SYS_ADMIN) in its
 * effective set? The CapEff line of its /proc status, for uid 0 too: a
 * root without the capability (a container's root, a service with a
 * reduced bounding set) is treated as the kernel treats it. A caller the
 * daemon cannot see (pid 0: outside the daemon's pid namespace, or gone)
 * counts as capable if it is uid 0. Callers ask only when the answer
 * changes the outcome. */
int mfs_caller_capable(fuse_req_t req, int cap)
{
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    char path[64], line[256];
    unsigned long long eff;
    int yes = 0;

    snprintf(path, sizeof(path), "/proc/%ld/status", (long)ctx->pid);
    FILE *f = ctx->pid > 0 ? fopen(path, "re") : NULL;
    if (!f)
        return ctx->uid == 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "CapEff: %llx", &eff) == 1) {
            yes = (eff >> cap) & 1;
            break;
        }
    fclose(f);
    return yes;
}

/* The mode a new inode gets: as inode_init_owner(), a non-directory created
 * with S_ISGID|S_IXGRP in a setgid directory (so it takes the directory's
 * group) loses S_ISGID unless the caller is in that group or has
 * CAP_FSETID. */
static uint32_t new_inode_mode(fuse_req_t req, fuse_ino_t parent, uint32_t mode)
{
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    struct fs_stat dir;

    if (S_ISDIR(mode) || (mode & (S_ISGID | S_IXGRP)) != (S_ISGID | S_IXGRP))
        return mode;
    if (fs_getattr(mfs_fs(req), parent, &dir) != 0 || !(dir.mode & S_ISGID))
        return mode;
    if (mfs_caller_in_group(req, ctx, dir.gid) || mfs_caller_capable(req, CAP_FSETID))
        return mode;
    return mode & ~(uint32_t)S_ISGID;
}

/* Identity for a new inode (fs replaces gid in setgid directories). */
static void caller_cred(fuse_req_t req, struct fs_cred *cred)
{
    const struct fuse_ctx *ctx = fuse_req_ctx(req);

    cred->uid = ctx->uid;
    cred->gid = ctx->gid;
}

/* ---- lookup, forget, attributes ------------------------------------------------ */

void mfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    const struct mmapfs_config *cfg = mfs_data(req)->cfg;
    struct fs_stat st;
    int err;
    mfs_count(req, MFS_OP_LOOKUP);

    err = fs_lookup(mfs_fs(req), parent, name, &st);
    if (err == -ENOENT && cfg->entry_timeout > 0) {
        /* negative entry: the kernel may cache the absence, since every
         * change of this namespace goes through this mount */
        struct fuse_entry_param e;
        memset(&e, 0, sizeof(e));
        e.entry_timeout = cfg->entry_timeout;
        fuse_reply_entry(req, &e);
        return;
    }
    if (err)
        goto out_err;
    mfs_reply_entry(req, &st);
    return;
out_err:
    mfs_reply_err(req, err);
}

void mfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    mfs_count(req, MFS_OP_FORGET);
    fs_forget(mfs_fs(req), ino, nlookup);
    fuse_reply_none(req);
}

void mfs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
    struct fs *fs = mfs_fs(req);
    size_t i;
    mfs_count(req, MFS_OP_BATCH_FORGET);

    for (i = 0; i < count; i++)
        fs_forget(fs, forgets[i].ino, forgets[i].nlookup);
    fuse_reply_none(req);
}

/* Replies with the attributes in st. */
static void reply_attr(fuse_req_t req, const struct fs_stat *st)
{
    struct stat kst;

    mfs_stat_to_kernel(st, &kst);
    fuse_reply_attr(req, &kst, mfs_attr_timeout(req, st->ino));
}

/* An answer sent from inside the operation, under the filesystem's lock,
 * once its outcome is decided (fs.h, "early answers"): the kernel wakes the
 * caller while the daemon writes the changes. */
struct early {
    struct fs_early e;          /* first: the fs layer hands back &e */
    fuse_req_t req;
    fuse_ino_t dir, dir2;       /* directories whose entries change, or 0 */
};

static void early_answer(struct fs_early *e, const struct fs_stat *st)
{
    struct early *a = (struct early *)e;

    if (a->dir)
        mfs_attr_changed(a->req, a->dir);
    if (a->dir2 && a->dir2 != a->dir)
        mfs_attr_changed(a->req, a->dir2);
    if (st)
        reply_attr(a->req, st);
    else
        mfs_reply_err(a->req, 0);
}

void mfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fs_stat st;
    int err;
    mfs_count(req, MFS_OP_GETATTR);

    /* asked with a file handle: maybe a write(2) that must see a failed
     * write-back (mfs_wb_error_set) */
    err = fi ? mfs_wb_error_take(req, ino) : 0;
    if (!err)
        err = fs_getattr(mfs_fs(req), ino, &st);
    if (err)
        goto out_err;
    reply_attr(req, &st);
    return;
out_err:
    mfs_reply_err(req, err);
}

/* A mode sent by the kernel keeps set-group-ID only for a caller in the
 * file's group or with CAP_FSETID: chmod(2) by another caller never asks
 * for it, and the kernel's set-user-ID clearing at write(2) time comes as
 * a mode that still has it (kernel 6.18). */
static uint32_t mode_keep_sgid(fuse_req_t req, const struct fs_stat *st, uint32_t mode)
{
    const struct fuse_ctx *ctx = fuse_req_ctx(req);

    if (!mfs_caller_in_group(req, ctx, st->gid) && !mfs_caller_capable(req, CAP_FSETID))
        mode &= ~(uint32_t)S_ISGID;
    return mode;
}

/* A SETATTR of times only, at least one of them atime or mtime: it never
 * clears set-user-ID or set-group-ID (mode_after_kill), so the mode need
 * not be read first. The writeback cache's time flushes are such. */
static int times_only(int to_set)
{
    int times = FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |
                FUSE_SET_ATTR_MTIME_NOW;
    return (to_set & times) && !(to_set & ~(times | FUSE_SET_ATTR_CTIME));
}

/*
 * Set-user-ID and set-group-ID clearing with HANDLE_KILLPRIV (ops.c), as
 * the kernel's setattr_should_drop_suidgid() does on a local filesystem.
 * SETATTRs that carry the clearing:
 *  - nothing to set: the kernel's file_remove_privs() at write(2) or
 *    fallocate(2) time, in the writer's context, sent only when the writer
 *    lacks CAP_FSETID and the kernel found a bit to clear (set-group-ID
 *    only; when set-user-ID goes too, the kernel sends the mode without it
 *    instead, handled by mode_keep_sgid); or chown(f, -1, -1) without the
 *    writeback cache. From a caller other than root both clear the same
 *    bits; root has CAP_FSETID, so from root it is the chown;
 *  - ctime alone: chown(f, -1, -1) under the writeback cache (the kernel
 *    sends the time only when it trusts its own; its time flushes always
 *    carry mtime);
 *  - a size (truncate, O_TRUNC): cleared unless the caller has
 *    CAP_FSETID. With HANDLE_KILLPRIV_V2 the kernel says so itself: it
 *    adds FATTR_KILL_SUIDGID (libfuse passes it on as
 *    FUSE_SET_ATTR_KILL_SUID) to a truncation by a caller without it;
 *  - an owner or group (chown) of a non-directory: set-user-ID always,
 *    set-group-ID by the group rule, even for root. Not when the kernel
 *    itself changes the owner of a regular file without a ctime under the
 *    writeback cache: chown(2) always sends the kernel's ctime then, while
 *    overlayfs's copy-up (ovl_set_attr: mode first, then owner and group,
 *    as notify_change without ATTR_CTIME or ATTR_KILL_*) sends none, and
 *    means to keep the bits, as ext4 does. The kernel marks both
 *    FATTR_KILL_SUIDGID; without the writeback cache they look alike.
 * Group rule: set-group-ID goes if group-execute is set, or if the caller
 * is neither in the file's group nor has CAP_FSETID (its /proc status:
 * the kernel asks a writer without it to clear, and a root without it is
 * no exception). Returns the permission bits to keep (07777).
 */
static uint32_t mode_after_kill(fuse_req_t req, const struct fs_stat *st, int to_set)
{
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    uint32_t mode = st->mode & 07777;
    int owner_change = (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) ||
                       to_set == FUSE_SET_ATTR_CTIME || to_set == 0;

    if (!(mode & (S_ISUID | S_ISGID)))
        return mode;                /* nothing to clear */
    if ((to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) && S_ISREG(st->mode) &&
        !(to_set & FUSE_SET_ATTR_CTIME) && mfs_data(req)->writeback_cache) {
        return mode;              /* not chown(2): overlayfs copy-up */
    } else if (owner_change && !S_ISDIR(st->mode)) {
        /* set-user-ID even for root */
    } else if (!S_ISREG(st->mode)) {
        return mode;
    } else if (to_set & FUSE_SET_ATTR_SIZE) {
        if (mfs_data(req)->killpriv_v2 ? !(to_set & FUSE_SET_ATTR_KILL_SUID)
                                       : mfs_caller_capable(req, CAP_FSETID))
            return mode;
    } else {
        return mode;              /* times only */
    }
    mode &= ~(uint32_t)S_ISUID;
    if ((mode & S_ISGID) &&
        ((mode & S_IXGRP) || (!mfs_caller_in_group(req, ctx, st->gid) &&
                              !mfs_caller_capable(req, CAP_FSETID))))
        mode &= ~(uint32_t)S_ISGID;
    return mode;
}

void mfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                 struct fuse_file_info *fi)
{
    struct fs *fs = mfs_fs(req);
    struct fs_setattr sa;
    struct fs_stat st;
    unsigned valid = 0;
    int err;
    mfs_count(req, MFS_OP_SETATTR);
    (void)fi;

    memset(&sa, 0, sizeof(sa));
    if (to_set & FUSE_SET_ATTR_MODE) {
        valid |= FS_SET_MODE;
        sa.mode = attr->st_mode & 07777;
        if (mfs_data(req)->killpriv && (sa.mode & S_ISGID)) {
            err = fs_getattr(fs, ino, &st);
            if (err)
                goto out_err;
            sa.mode = mode_keep_sgid(req, &st, sa.mode);
        }
    } else if (mfs_data(req)->killpriv && !times_only(to_set)) {
        err = fs_getattr(fs, ino, &st);
        if (err)
            goto out_err;
        sa.mode = mode_after_kill(req, &st, to_set);
        if (sa.mode != (st.mode & 07777))
            valid |= FS_SET_MODE;
    }
    if (to_set & FUSE_SET_ATTR_UID) {
        valid |= FS_SET_UID;
        sa.uid = attr->st_uid;
    }
    if (to_set & FUSE_SET_ATTR_GID) {
        valid |= FS_SET_GID;
        sa.gid = attr->st_gid;
    }
    if (to_set & FUSE_SET_ATTR_SIZE) {
        if (attr->st_size < 0) {
            err = -EINVAL;
            goto out_err;
        }
        valid |= FS_SET_SIZE;
        sa.size = (uint64_t)attr->st_size;
    }
    if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
        valid |= FS_SET_ATIME_NOW;
    } else if (to_set & FUSE_SET_ATTR_ATIME) {
        valid |= FS_SET_ATIME;
        sa.atime = attr->st_atim;
    }
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
        valid |= FS_SET_MTIME_NOW;
    } else if (to_set & FUSE_SET_ATTR_MTIME) {
        valid |= FS_SET_MTIME;
        sa.mtime = attr->st_mtim;
    } else if ((to_set & FUSE_SET_ATTR_SIZE) && !mfs_data(req)->writeback_cache) {
        /* open(O_TRUNC), ftruncate(2) and truncate(2) come without a time
         * for the daemon to stamp (the kernel's update_mtime()); ext4
         * stamps mtime and ctime also when the size stays, and POSIX asks
         * it of O_TRUNC. With the writeback cache the kernel keeps its own
         * times of a regular file and sends those it changes. */
        valid |= FS_SET_MTIME_NOW;
    }
    if (to_set & FUSE_SET_ATTR_CTIME) {
        valid |= FS_SET_CTIME;
        sa.ctime = attr->st_ctim;
    }
    int acl = (to_set & FUSE_SET_ATTR_MODE) && mfs_data(req)->posix_acl;
    if (!acl && !(valid & FS_SET_SIZE)) {
        struct early a = { .e.answer = early_answer, .req = req };
        err = fs_setattr_early(fs, ino, &sa, valid, &st, &a.e);
        if (a.e.answered)
            return;
        goto out_err;           /* failed before its answer */
    }
    err = fs_setattr(fs, ino, &sa, valid, &st);
    if (!err && acl)
        err = fs_acl_chmod_inode(fs, ino, st.mode);
    if (err)
        goto out_err;
    reply_attr(req, &st);
    return;
out_err:
    mfs_reply_err(req, err);
}

void mfs_readlink(fuse_req_t req, fuse_ino_t ino)
{
    char buf[FS_SYMLINK_MAX + 1];
    int len;
    mfs_count(req, MFS_OP_READLINK);

    len = fs_readlink(mfs_fs(req), ino, buf, sizeof(buf) - 1);
    if (len < 0)
        goto out_err;
    if ((size_t)len > sizeof(buf) - 1) {
        len = -EIO;       /* longer than the format allows */
        goto out_err;
    }
    buf[len] = '\0';
    fuse_reply_readlink(req, buf);
    return;
out_err:
    mfs_reply_err(req, len);
}

/* ---- creating names ------------------------------------------------------------ */

void mfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
               dev_t rdev)
{
    struct fs_cred cred;
    struct fs_stat st;
    int err;
    mfs_count(req, MFS_OP_MKNOD);
    mfs_attr_changing(req, parent);

    caller_cred(req, &cred);
    mode = new_inode_mode(req, parent, mode);
    err = mfs_acl_new_mode(req, parent, &mode);
    if (!err)
        err = fs_mknod(mfs_fs(req), parent, name, mode, rdev, &cred, &st);
    if (err)
        goto out_err;
    mfs_attr_changed(req, parent);
    mfs_reply_entry(req, &st);
    return;
out_err:
    mfs_reply_err(req, err);
}

/* O_TMPFILE, which devio.c hands over as a CREATE of the name "/": a
 * regular file with no name and no link (fs_tmpfile), opened like a
 * CREATE's file; its link count 0 is what the kernel expects of it, and
 * linkat(2) may give it a name (mfs_link). Made whether or not files need
 * an open (no_open): the kernel has no other request for it. The
 * directory does not change, so the kernel's copy of it stays. */
static void mfs_tmpfile(fuse_req_t req, fuse_ino_t parent, mode_t mode,
                        struct fuse_file_info *fi)
{
    struct fuse_entry_param e;
    struct fs_cred cred;
    struct fs_stat st;
    mfs_count(req, MFS_OP_TMPFILE);
    caller_cred(req, &cred);
    mode = new_inode_mode(req, parent, S_IFREG | (mode & 07777));
    int err = mfs_acl_new_mode(req, parent, &mode);
    if (!err)
        err = fs_tmpfile(mfs_fs(req), parent, mode, &cred, &st);
    if (err) {
        mfs_reply_err(req, err);
        return;
    }
    mfs_fill_entry(req, &st, &e);
    fi->keep_cache = 1;
    if (fuse_reply_create(req, &e, fi) != 0)
        fs_forget(mfs_fs(req), st.ino, 1);
}

void mfs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                struct fuse_file_info *fi)
{
    struct fuse_entry_param e;
    struct fs_cred cred;
    struct fs_stat st;
    int err;
    if (strcmp(name, "/") == 0) {
        mfs_tmpfile(req, parent, mode, fi);
        return;
    }
    mfs_count(req, MFS_OP_CREATE);
    if (mfs_data(req)->no_open) {
        /* Files need no open (mfs_open): the kernel then stops sending
         * CREATE and makes new files with MKNOD, opened without a request,
         * and closed without a RELEASE; the CREATE-opened file would cost
         * one RELEASE each (docs/MOUNT.md, "Round trips per operation"). */
        mfs_reply_err(req, -ENOSYS);
        return;
    }
    mfs_attr_changing(req, parent);

    caller_cred(req, &cred);
    mode = new_inode_mode(req, parent, S_IFREG | (mode & 07777));
    err = mfs_acl_new_mode(req, parent, &mode);
    if (!err)
        err = fs_mknod(mfs_fs(req), parent, name, mode, 0, &cred, &st);
    if (err)
        goto out_err;
    mfs_attr_changed(req, parent);
    mfs_fill_entry(req, &st, &e);
    fi->keep_cache = 1;
    if (fuse_reply_create(req, &e, fi) != 0)
        fs_forget(mfs_fs(req), st.ino, 1);
    return;
out_err:
    mfs_reply_err(req, err);
}

void mfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    struct fs_cred cred;
    struct fs_stat st;
    int err;
    mfs_count(req, MFS_OP_MKDIR);
    mfs_attr_changing(req, parent);

    caller_cred(req, &cred);
    mode = S_IFDIR | (mode & 07777);
    err = mfs_acl_new_mode(req, parent, &mode);
    if (!err)
        err = fs_mkdir(mfs_fs(req), parent, name, mode, &cred, &st);
    if (err)
        goto out_err;
    mfs_attr_changed(req, parent);
    mfs_reply_entry(req, &st);
    return;
out_err:
    mfs_reply_err(req, err);
}

void mfs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    struct fs_cred cred;
    struct fs_stat st;
    int err;
    mfs_count(req, MFS_OP_SYMLINK);
    mfs_attr_changing(req, parent);

    caller_cred(req, &cred);
    err = fs_symlink(mfs_fs(req), parent, name, link, &cred, &st);
    if (err)
        goto out_err;
    mfs_attr_changed(req, parent);
    mfs_reply_entry(req, &st);
    return;
out_err:
    mfs_reply_err(req, err);
}

void mfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    struct fs_stat st;
    int err;
    mfs_count(req, MFS_OP_LINK);
    mfs_attr_changing(req, newparent);

    err = fs_link(mfs_fs(req), ino, newparent, newname, &st);
    if (err)
        goto out_err;
    mfs_attr_changed(req, newparent);
    mfs_reply_entry(req, &st);
    return;
out_err:
    mfs_reply_err(req, err);
}

/* ---- removing and moving names ---------------------------------------------------- */

void mfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct early a = { .e.answer = early_answer, .req = req, .dir = parent };
    mfs_count(req, MFS_OP_UNLINK);
    mfs_attr_changing(req, parent);
    int err = fs_unlink_early(mfs_fs(req), parent, name, &a.e);
    if (!a.e.answered)
        mfs_reply_err(req, err);        /* failed before its answer */
}

void mfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct early a = { .e.answer = early_answer, .req = req, .dir = parent };
    mfs_count(req, MFS_OP_RMDIR);
    mfs_attr_changing(req, parent);
    int err = fs_rmdir_early(mfs_fs(req), parent, name, &a.e);
    if (!a.e.answered)
        mfs_reply_err(req, err);
}

/* The rename itself, and the reply. */
static void rename_finish(fuse_req_t req, fuse_ino_t parent, const char *name,
                          fuse_ino_t newparent, const char *newname, unsigned fs_flags,
                          const struct fs_cred *cred)
{
    struct early a = { .e.answer = early_answer, .req = req, .dir = parent,
                       .dir2 = newparent };
    mfs_attr_changing(req, parent);
    mfs_attr_changing(req, newparent);
    int err = fs_rename_early(mfs_fs(req), parent, name, newparent, newname, fs_flags, cred,
                              &a.e);
    if (a.e.answered)
        return;
    if (!err)
        early_answer(&a.e, NULL);      /* a new name: answered once done */
    else
        mfs_reply_err(req, err);
}

/* A replacing rename finished on the deferral thread (defer.c). */
struct rename_job {
    struct mfs_deferred d;       /* first */
    fuse_ino_t parent, newparent, src;
    unsigned fs_flags;
    struct fs_cred cred;
    const char *newname;         /* in names, after name */
    char names[];
};

static void rename_deferred(struct mfs_deferred *d)
{
    struct rename_job *j = (struct rename_job *)d;

    mfs_flush_kernel_pages(j->d.req, j->src);
    rename_finish(j->d.req, j->parent, j->names, j->newparent, j->newname, j->fs_flags, &j->cred);
    free(j);
}

/* Replace via rename (write a new file, rename it over the old one, no
 * fsync): with the writeback cache, or when it was stored through a shared
 * mapping, the new file's data may still be only
 * in the kernel when the rename reaches fs, and a commit of the rename
 * before the data arrives leaves, after a crash, an empty file where the
 * old one was. As ext4 does (auto_da_alloc), the data of a regular file
 * renamed over an existing regular file is fetched first: it then rides
 * the rename's transaction or an earlier one (ordered data), so a crash
 * shows the old file or the new one with its data.
 * The fetch waits for the kernel: in place, or on the deferral thread when
 * waiting here would take the last request thread (defer.c). */
static void rename_replacing(fuse_req_t req, fuse_ino_t src, fuse_ino_t parent,
                             const char *name, fuse_ino_t newparent, const char *newname,
                             unsigned fs_flags, const struct fs_cred *cred)
{
    struct mmapfs_fuse *m = mfs_data(req);

    if (mfs_wait_slot_take(m)) {
        mfs_flush_kernel_pages(req, src);
        mfs_wait_slot_give(m);
        rename_finish(req, parent, name, newparent, newname, fs_flags, cred);
        return;
    }
    size_t n1 = strlen(name) + 1, n2 = strlen(newname) + 1;
    struct rename_job *j = malloc(sizeof(*j) + n1 + n2);
    if (j) {
        *j = (struct rename_job){ .d.run = rename_deferred, .parent = parent,
                                  .newparent = newparent, .src = src, .fs_flags = fs_flags,
                                  .cred = *cred };
        memcpy(j->names, name, n1);
        memcpy(j->names + n1, newname, n2);
        j->newname = j->names + n1;
    }
    mfs_defer(m, req, j ? &j->d : NULL);
}

void mfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
                fuse_ino_t newparent, const char *newname, unsigned int flags)
{
    unsigned fs_flags = 0;
    struct fs_cred cred;
    uint64_t src = 0;
    mfs_count(req, MFS_OP_RENAME);

    if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT)) {
        mfs_reply_err(req, -EINVAL);
        return;
    }
    if (flags & RENAME_NOREPLACE)
        fs_flags |= FS_RENAME_NOREPLACE;
    if (flags & RENAME_EXCHANGE)
        fs_flags |= FS_RENAME_EXCHANGE;
    if (flags & RENAME_WHITEOUT)
        fs_flags |= FS_RENAME_WHITEOUT;     /* the kernel checked CAP_MKNOD */
    caller_cred(req, &cred);
    /* also without the writeback cache: stores through a shared mapping
     * stay in the kernel's pages on every mount */
    if (!(flags & (RENAME_NOREPLACE | RENAME_EXCHANGE)))
        src = fs_rename_replaces_file(mfs_fs(req), parent, name, newparent, newname);
    if (src)
        rename_replacing(req, src, parent, name, newparent, newname, fs_flags, &cred);
    else
        rename_finish(req, parent, name, newparent, newname, fs_flags, &cred);
}
