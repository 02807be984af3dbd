/*
 * ops_xattr.c — extended attributes, and the virtual metrics xattr.
 *
 * "trusted.mmapfs.metrics" on the root directory is not stored: reading it
 * returns the text of fs_format_metrics ("name value" lines), which is how
 * mmapfs-stat reads the counters of a running mount. It is read-only
 * (set/remove: EPERM) and not listed by listxattr. POSIX ACL names are
 * refused (EOPNOTSUPP): ACLs are not negotiated, so they would be stored
 * but never enforced.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs/format.h"
#include "fuse/ops_i.h"

/* Extra length announced for a size query of the metrics, so that counters
 * growing between the size query and the read do not cause ERANGE. */
#define METRICS_SLACK 1024

static int is_metrics_xattr(fuse_ino_t ino, const char *name)
{
    return ino == MMAPFS_ROOT_INO && strcmp(name, MMAPFS_METRICS_XATTR) == 0;
}

static int is_posix_acl(const char *name)
{
    return strncmp(name, "system.posix_acl_", 17) == 0;
}

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

    if (is_metrics_xattr(ino, name))
        err = -EPERM;
    else if (is_posix_acl(name))
        err = -EOPNOTSUPP;
    else
        err = fs_setxattr(mfs_fs(req), ino, name, value, size, flags);
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

    if (is_metrics_xattr(ino, name)) {
        get_metrics(req, size);
        return;
    }
    if (is_posix_acl(name)) {
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
    reply_sized(req, len, buf, size);
    free(buf);
}

void mfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    char *buf = NULL;
    int len;
    mfs_count(req, MFS_OP_LISTXATTR);

    if (size) {
        buf = malloc(size);
        if (!buf) {
            mfs_reply_err(req, -ENOMEM);
            return;
        }
    }
    len = fs_listxattr(mfs_fs(req), ino, buf, size);
    reply_sized(req, len, buf, size);
    free(buf);
}

void mfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    int err;
    mfs_count(req, MFS_OP_REMOVEXATTR);

    if (is_metrics_xattr(ino, name))
        err = -EPERM;
    else if (is_posix_acl(name))
        err = -EOPNOTSUPP;
    else
        err = fs_removexattr(mfs_fs(req), ino, name);
    mfs_reply_err(req, err);
}
