/*
 * ops_xattr.c — extended attributes, and the virtual metrics xattr.
 *
 * "trusted.mmapfs.metrics" on the root directory is not stored: reading it
 * returns the text of fs_format_metrics ("name value" lines), which is how
 * mmapfs-stat reads the counters of a running mount. It is read-only
 * (set/remove: EPERM) and not listed by listxattr.
 *
 * POSIX ACLs (system.posix_acl_access / _default): with FUSE_POSIX_ACL
 * negotiated (option acl, the default) the kernel enforces and caches
 * them; setting or removing one goes through fs_acl_set, which validates
 * it and keeps the mode in sync (src/fs/acl.c); reading is a plain xattr
 * read. New inodes inherit their directory's default ACL (mfs_acl_new_mode,
 * then the create itself: fs_set_acl_inherit). With noacl the names are refused (EOPNOTSUPP), as
 * ACLs would be stored but never enforced, and not listed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <linux/capability.h>

#include "fs/acl.h"
#include "fuse/ops_i.h"

/* Extra length announced for a size query of the metrics, so that counters
 * growing between the size query and the read do not cause ERANGE. */
#define METRICS_SLACK 1024

static int is_metrics_xattr(fuse_ino_t ino, const char *name)
{
    return ino == FS_ROOT_INO && strcmp(name, MMAPFS_METRICS_XATTR) == 0;
}

static int is_posix_acl(const char *name)
{
    return strncmp(name, "system.posix_acl_", 17) == 0;
}

/* The namespaces an attribute name may be in, as on ext4: "user.",
 * "trusted." and "security." followed by at least one byte, and the two
 * ACL names. The kernel hands a FUSE daemon every name unchecked (its
 * own namespace handlers are not used for FUSE), so this is where an
 * unknown namespace gets EOPNOTSUPP and an empty name within a known one
 * EINVAL. The kernel has already refused trusted.* to callers without
 * CAP_SYS_ADMIN and user.* on files other than regular files and
 * directories. */
static int check_namespace(const char *name)
{
    static const char *const prefixes[] = { "user.", "trusted.", "security." };

    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        size_t n = strlen(prefixes[i]);
        if (strncmp(name, prefixes[i], n) == 0)
            return name[n] ? 0 : -EINVAL;
    }
    if (strcmp(name, "system.posix_acl_access") == 0 ||
        strcmp(name, "system.posix_acl_default") == 0)
        return 0;
    return -EOPNOTSUPP;
}

/* setxattr (value) or removexattr (NULL) of an ACL name. The mode change
 * that goes with an access ACL keeps S_ISGID only for a caller in the
 * file's group or with CAP_FSETID, as the kernel's posix_acl_update_mode(). */
static int set_acl(fuse_req_t req, fuse_ino_t ino, const char *name,
                   const char *value, size_t size)
{
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    struct fs *fs = mfs_fs(req);
    struct fs_stat st;
    int keep_sgid = 1, err;

    if (!mfs_data(req)->posix_acl)
        return -EOPNOTSUPP;
    if (value) {
        err = fs_getattr(fs, ino, &st);
        if (err)
            return err;
        keep_sgid = !(st.mode & S_ISGID) || mfs_caller_in_group(req, ctx, st.gid) ||
                    mfs_caller_capable(req, CAP_FSETID);
    }
    return fs_acl_set(fs, ino, name, value, size, keep_sgid);
}

int mfs_acl_new_mode(fuse_req_t req, fuse_ino_t parent, mode_t *mode)
{
    const struct mmapfs_fuse *m = mfs_data(req);
    uint32_t mode32 = *mode;
    int err;

    if (!m->posix_acl)
        return 0;
    err = fs_acl_create_mode(m->fs, parent, &mode32,
                             m->dont_mask ? (uint32_t)fuse_req_ctx(req)->umask : 0);
    if (err < 0)
        return err;
    *mode = mode32;
    return 0;
}

/* Formats the metrics (fs counters, then the FUSE request counters) into
 * a new buffer; returns its length or -errno. */
int mfs_format_metrics(const struct mmapfs_fuse *m, char **out)
{
    struct fs *fs = m->fs;
    size_t cap = 16384;
    char *buf = NULL, *grown;
    int len, more;

    for (;;) {
        grown = realloc(buf, cap);
        if (!grown) {
            free(buf);
            return -ENOMEM;
        }
        buf = grown;
        len = fs_format_metrics(fs, buf, cap);
        if (len >= 0 && (size_t)len < cap) {
            more = mfs_format_requests(m, buf + len, cap - (size_t)len);
            len = more < 0 ? more : len + more;
        }
        uint64_t holds, held_us;
        mfs_cpu_latency_counters(&m->cpu_latency, &holds, &held_us);
        if (len >= 0 && (size_t)len < cap) {
            more = snprintf(buf + len, cap - (size_t)len, "fuse_cpu_latency_holds %llu\n"
                            "fuse_cpu_latency_held_us %llu\n"
                            "fuse_attr_notifications %llu\n"
                            "fuse_attr_notifications_skipped %llu\n",
                            (unsigned long long)holds, (unsigned long long)held_us,
                            (unsigned long long)__atomic_load_n(&m->attr_notified,
                                                                __ATOMIC_RELAXED),
                            (unsigned long long)__atomic_load_n(&m->attr_notify_skipped,
                                                                __ATOMIC_RELAXED));
            len = more < 0 ? more : len + more;
        }
        uint64_t dirty_cap = mfs_dirty_cap(m);
        if (len >= 0 && (size_t)len < cap && dirty_cap) {
            more = snprintf(buf + len, cap - (size_t)len, "fuse_dirty_cap_bytes %llu\n",
                            (unsigned long long)dirty_cap);
            len = more < 0 ? more : len + more;
        }
        if (len < 0) {
            free(buf);
            return len;
        }
        if ((size_t)len < cap)
            break;
        cap = (size_t)len + 1;
    }
    *out = buf;
    return len;
}

/* Answers a getxattr of the metrics xattr (size 0 = length query). */
static void get_metrics(fuse_req_t req, size_t size)
{
    char *buf = NULL;
    int len, err;

    len = mfs_format_metrics(mfs_data(req), &buf);
    if (len < 0) {
        err = len;
        goto out_err;
    }
    if (size == 0) {
        fuse_reply_xattr(req, (size_t)len + METRICS_SLACK);
    } else if ((size_t)len > size) {
        err = -ERANGE;
        goto out_err;
    } else {
        fuse_reply_buf(req, buf, (size_t)len);
    }
    free(buf);
    return;
out_err:
    free(buf);
    mfs_reply_err(req, err);
}

void mfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                  const char *value, size_t size, int flags)
{
    int err;
    mfs_count(req, MFS_OP_SETXATTR);

    err = check_namespace(name);
    if (!err && is_metrics_xattr(ino, name))
        err = -EPERM;
    else if (!err && is_posix_acl(name))
        err = set_acl(req, ino, name, value, size);
    else if (!err)
        err = fs_setxattr(mfs_fs(req), ino, name, value, size, flags);
    if (!err)
        /* ctime; with an ACL, maybe the mode; an xattr block more or
         * less changes st_blocks, which the kernel does not mark stale
         * (only ctime): always told, not only against a late answer */
        mfs_attr_drop(req, ino);
    mfs_reply_err(req, err);
}

/* getxattr/listxattr reply: the length for size 0, else the data. */
static void reply_sized(fuse_req_t req, int len, const char *buf, size_t size)
{
    if (len < 0)
        mfs_reply_err(req, len);
    else if (size == 0)
        fuse_reply_xattr(req, (size_t)len);
    else
        fuse_reply_buf(req, buf, (size_t)len);
}

void mfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    char *buf = NULL;
    int len;
    mfs_count(req, MFS_OP_GETXATTR);

    /* A name outside the namespaces, or a namespace with nothing after it
     * ("trusted."), stored by a version that did not check them or found
     * on a damaged image, is listed, so it can be read too, as it can be
     * removed: cp -a, rsync -X and getfattr -d read every listed name.
     * Setting one stays refused. */
    int bad_ns = check_namespace(name);
    if (is_metrics_xattr(ino, name)) {
        get_metrics(req, size);
        return;
    }
    if (is_posix_acl(name) && !mfs_data(req)->posix_acl) {
        mfs_reply_err(req, -EOPNOTSUPP);
        return;
    }
    if (size) {
        buf = malloc(size);
        if (!buf) {
            mfs_reply_err(req, -ENOMEM);
            return;
        }
    }
    len = fs_getxattr(mfs_fs(req), ino, name, buf, size);
    if (bad_ns && len == -ENODATA)
        len = bad_ns;               /* no such legacy name: the namespace's answer */
    reply_sized(req, len, buf, size);
    free(buf);
}

/* Drops names from a NUL-separated list of len bytes: the ACL names when
 * ACLs are off (noacl: as ext4, they are not listed), the trusted.* names
 * for a caller without CAP_SYS_ADMIN (asked only when the list has one);
 * returns the new length. */
static size_t drop_names(fuse_req_t req, char *list, size_t len, int acl)
{
    size_t in = 0, out = 0, n;
    int admin = -1;                 /* not asked yet */

    while (in < len) {
        n = strnlen(list + in, len - in) + 1;
        int trusted = strncmp(list + in, "trusted.", 8) == 0;
        if (trusted && admin < 0)
            admin = mfs_caller_capable(req, CAP_SYS_ADMIN);
        if (!(acl && is_posix_acl(list + in)) && !(trusted && !admin)) {
            memmove(list + out, list + in, n);
            out += n;
        }
        in += n;
    }
    return out;
}

void mfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    struct fs *fs = mfs_fs(req);
    char *buf = NULL;
    int len;
    mfs_count(req, MFS_OP_LISTXATTR);
    int drop_acl = !mfs_data(req)->posix_acl;

    /* the whole list, filtered, so that the size query is exact; a list
     * that grew between the two calls (a setxattr in between) is read
     * again rather than answering a size query with ERANGE */
    do {
        free(buf);
        buf = NULL;
        len = fs_listxattr(fs, ino, NULL, 0);
        if (len > 0 && !(buf = malloc((size_t)len)))
            len = -ENOMEM;
        if (len > 0)
            len = fs_listxattr(fs, ino, buf, (size_t)len);
    } while (len == -ERANGE);
    if (len > 0)
        len = (int)drop_names(req, buf, (size_t)len, drop_acl);
    if (len > 0 && size && (size_t)len > size)
        len = -ERANGE;
    reply_sized(req, len, buf, size);
    free(buf);
}

void mfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    int err;
    mfs_count(req, MFS_OP_REMOVEXATTR);

    int bad_ns = check_namespace(name);

    if (is_metrics_xattr(ino, name))
        err = -EPERM;
    else if (is_posix_acl(name) && !bad_ns)
        err = set_acl(req, ino, name, NULL, 0);
    else {
        /* A name outside the namespaces, or an empty one within one
         * (stored by a version that did not check them, or damage), can
         * still be removed. */
        err = fs_removexattr(mfs_fs(req), ino, name);
        if (bad_ns && err == -ENODATA)
            err = bad_ns;
    }
    if (!err)
        mfs_attr_drop(req, ino);        /* as in setxattr */
    mfs_reply_err(req, err);
}
