/*
 * devio.c — the daemon's own device I/O, for what libfuse 3.14 cannot do.
 *
 * The daemon installs its own read(2) and writev(2) on the session's
 * device (fuse_session_custom_io, same descriptor). Every message passes
 * through untouched but these three, at the cost of a few compares per
 * message:
 *
 * - FUSE_HANDLE_KILLPRIV_V2. With it the kernel marks the mount SB_NOSEC:
 *   once it has seen that a file carries no SUID/SGID bit and no
 *   security.capability, it stops asking the daemon for security.capability
 *   (a GETXATTR round trip) on every write(2) to it, and leaves the clearing
 *   of SUID/SGID on write, truncate and chown to the filesystem
 *   (FUSE_WRITE_KILL_SUIDGID, FATTR_KILL_SUIDGID; ops_data.c and
 *   ops_names.c do it). libfuse 3.14 knows neither the flag nor a
 *   capability bit for it, so where the library lacks
 *   FUSE_CAP_HANDLE_KILLPRIV_V2, read(2) notes whether the kernel's INIT
 *   request offers the flag, and writev(2) adds the flag to the INIT reply
 *   when mfs_init asked for it.
 *
 * - FUSE_TMPFILE (open(2) with O_TMPFILE, kernel 6.1 and later). libfuse
 *   3.14 answers it ENOSYS, and the kernel then refuses every O_TMPFILE
 *   with EOPNOTSUPP. The request carries what a CREATE carries (struct
 *   fuse_create_in, then a name: the kernel's "/") and takes the same
 *   reply (entry and open), so read(2) turns it into a CREATE named "/",
 *   a name no CREATE can have, and mfs_create makes the unnamed file
 *   (mfs_tmpfile, ops_names.c). The reply goes back under the request's
 *   own unique number, which is all the kernel matches.
 *
 * - FUSE_STATX (protocol 7.39, Linux 6.6): the kernel asks with it when a
 *   statx(2) wants the birth time (STATX_BTIME; `stat`, `ls
 *   --time=birth`); after an ENOSYS it never asks again and reports no
 *   birth time. read(2) turns it into the GETATTR it contains (flags and
 *   file handle); the thread that read a GETATTR writes its reply
 *   (mfs_getattr answers at once), so that thread remembers it, and
 *   its writev(2) turns the GETATTR reply into a STATX reply: the same
 *   attributes and timeout plus the birth time (fs_getattr's crtime). An
 *   error reply passes as it is. The kernel keeps the birth time with
 *   the inode (it never changes).
 */
#include <errno.h>
#include <linux/fuse.h>
#include <linux/stat.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fs/fs.h"
#include "fuse/fuse_i.h"

/* FUSE_STATX as the kernel's uapi (protocol 7.39) has it; Debian 12's
 * linux/fuse.h stops at 7.38. */
#define MFS_FUSE_STATX 52
struct mfs_statx_in {
    uint32_t getattr_flags, reserved;
    uint64_t fh;
    uint32_t sx_flags, sx_mask;
};
struct mfs_sx_time {
    int64_t tv_sec;
    uint32_t tv_nsec;
    int32_t reserved;
};
struct mfs_statx {
    uint32_t mask, blksize;
    uint64_t attributes;
    uint32_t nlink, uid, gid;
    uint16_t mode, spare0;
    uint64_t ino, size, blocks, attributes_mask;
    struct mfs_sx_time atime, btime, ctime, mtime;
    uint32_t rdev_major, rdev_minor, dev_major, dev_minor;
    uint64_t spare2[14];
};
struct mfs_statx_out {
    uint64_t attr_valid;
    uint32_t attr_valid_nsec, flags;
    uint64_t spare[2];
    struct mfs_statx stat;
};
_Static_assert(sizeof(struct mfs_statx_in) == 24, "fuse_statx_in");
_Static_assert(sizeof(struct mfs_statx) == 256, "fuse_statx");
_Static_assert(sizeof(struct mfs_statx_out) == 288, "fuse_statx_out");

static struct {
    int installed;
    int killpriv;           /* the INIT patch is ours to do */
    int offered;            /* the kernel's INIT offered the flag */
    int wanted;             /* mfs_init asked for it; cleared once sent */
    uint64_t init_unique;
} kp;

/* A FUSE_TMPFILE request as the CREATE of the name "/" (see above). The
 * name is at least "/" and its NUL (the kernel's name, or longer): writing
 * those two bytes keeps the message's length. */
static void tmpfile_as_create(void *buf, size_t len)
{
    const size_t name_at = sizeof(struct fuse_in_header) + sizeof(struct fuse_create_in);
    struct fuse_in_header h;

    memcpy(&h, buf, sizeof(h));
    if (len < name_at + 2 || h.len < name_at + 2)
        return;             /* not what the kernel sends: libfuse answers ENOSYS */
    h.opcode = FUSE_CREATE;
    memcpy(buf, &h, sizeof(h));
    memcpy((char *)buf + name_at, "/", 2);
}

/* The STATX request this thread read as a GETATTR (unique 0: none). */
static __thread struct { uint64_t unique, nodeid; } statx_asked;

/* A FUSE_STATX request as the GETATTR it contains (see above). */
static void statx_as_getattr(void *buf, size_t len)
{
    struct fuse_in_header h;
    struct mfs_statx_in in;
    struct fuse_getattr_in g;

    memcpy(&h, buf, sizeof(h));
    if (len < sizeof(h) + sizeof(in) || h.len < sizeof(h) + sizeof(in))
        return;             /* not what the kernel sends: libfuse answers ENOSYS */
    memcpy(&in, (char *)buf + sizeof(h), sizeof(in));
    memset(&g, 0, sizeof(g));
    g.getattr_flags = in.getattr_flags & FUSE_GETATTR_FH;
    g.fh = in.fh;
    memcpy((char *)buf + sizeof(h), &g, sizeof(g));
    h.opcode = FUSE_GETATTR;
    memcpy(buf, &h, sizeof(h));
    statx_asked.unique = h.unique;
    statx_asked.nodeid = h.nodeid;
}

/* The GETATTR reply in iov as the STATX reply to the request this thread
 * translated (*oh and *out: what to write instead). 0, or -1 to write iov
 * as it is (an error reply, or not the shape libfuse sends). */
static int statx_reply(struct mmapfs_fuse *m, const struct iovec *iov, int count,
                       struct fuse_out_header *oh, struct mfs_statx_out *out)
{
    struct fuse_attr_out a;
    struct fs_stat st;

    if (oh->error != 0 || count != 2 || iov[1].iov_len < sizeof(a))
        return -1;
    memcpy(&a, iov[1].iov_base, sizeof(a));
    memset(out, 0, sizeof(*out));
    out->attr_valid = a.attr_valid;
    out->attr_valid_nsec = a.attr_valid_nsec;
    out->stat.mask = STATX_BASIC_STATS;
    out->stat.blksize = a.attr.blksize;
    out->stat.nlink = a.attr.nlink;
    out->stat.uid = a.attr.uid;
    out->stat.gid = a.attr.gid;
    out->stat.mode = (uint16_t)a.attr.mode;
    out->stat.ino = a.attr.ino;
    out->stat.size = a.attr.size;
    out->stat.blocks = a.attr.blocks;
    out->stat.atime = (struct mfs_sx_time){ (int64_t)a.attr.atime, a.attr.atimensec, 0 };
    out->stat.mtime = (struct mfs_sx_time){ (int64_t)a.attr.mtime, a.attr.mtimensec, 0 };
    out->stat.ctime = (struct mfs_sx_time){ (int64_t)a.attr.ctime, a.attr.ctimensec, 0 };
    out->stat.rdev_major = major(a.attr.rdev);
    out->stat.rdev_minor = minor(a.attr.rdev);
    if (m && fs_getattr(m->fs, statx_asked.nodeid, &st) == 0) {
        out->stat.btime = (struct mfs_sx_time){ st.crtime.tv_sec, (uint32_t)st.crtime.tv_nsec, 0 };
        out->stat.mask |= STATX_BTIME;
    }
    oh->len = sizeof(*oh) + sizeof(*out);
    return 0;
}

/* Requests arrive on several threads, but INIT comes alone, before any
 * other request, and its reply is written by the thread that read it:
 * the fields need no lock. */
static ssize_t dev_read(int fd, void *buf, size_t len, void *userdata)
{
    ssize_t r = read(fd, buf, len);
    const size_t need = sizeof(struct fuse_in_header) +
                        offsetof(struct fuse_init_in, flags) + sizeof(uint32_t);
    struct fuse_in_header h;
    uint32_t flags;

    (void)userdata;
    if (r < (ssize_t)sizeof(h))
        return r;
    memcpy(&h, buf, sizeof(h));
    if (h.opcode == FUSE_TMPFILE) {
        tmpfile_as_create(buf, (size_t)r);
        return r;
    }
    if (h.opcode == MFS_FUSE_STATX) {
        statx_as_getattr(buf, (size_t)r);
        return r;
    }
    if (h.opcode != FUSE_INIT || !kp.killpriv || r < (ssize_t)need)
        return r;
    memcpy(&flags, (char *)buf + sizeof(h) + offsetof(struct fuse_init_in, flags),
           sizeof(flags));
    kp.init_unique = h.unique;
    kp.offered = (flags & FUSE_HANDLE_KILLPRIV_V2) != 0;
    return r;
}

static ssize_t dev_writev(int fd, struct iovec *iov, int count, void *userdata)
{
    const size_t flags_end = offsetof(struct fuse_init_out, flags) + sizeof(uint32_t);
    struct fuse_out_header oh;
    unsigned char init_out[sizeof(struct fuse_init_out) + 64];
    uint32_t flags;

    if (count < 1 || iov[0].iov_len < sizeof(oh))
        return writev(fd, iov, count);
    memcpy(&oh, iov[0].iov_base, sizeof(oh));
    if (statx_asked.unique && oh.unique == statx_asked.unique) {
        struct mfs_statx_out out;
        int as_is = statx_reply(userdata, iov, count, &oh, &out);
        statx_asked.unique = 0;
        if (!as_is) {
            struct iovec v[2] = { { &oh, sizeof(oh) }, { &out, sizeof(out) } };
            ssize_t r = writev(fd, v, 2);
            size_t asked = 0;       /* libfuse checks that its whole reply went */
            for (int i = 0; i < count; i++)
                asked += iov[i].iov_len;
            return r == (ssize_t)oh.len ? (ssize_t)asked : r;
        }
    }
    if (!kp.wanted || count < 2)
        return writev(fd, iov, count);
    if (oh.unique != kp.init_unique || oh.error != 0 ||
        iov[1].iov_len < flags_end || iov[1].iov_len > sizeof(init_out))
        return writev(fd, iov, count);
    /* the INIT reply: the same bytes plus the flag, from our own copy */
    memcpy(init_out, iov[1].iov_base, iov[1].iov_len);
    memcpy(&flags, init_out + offsetof(struct fuse_init_out, flags), sizeof(flags));
    flags |= FUSE_HANDLE_KILLPRIV_V2;
    memcpy(init_out + offsetof(struct fuse_init_out, flags), &flags, sizeof(flags));
    struct iovec saved = iov[1];
    iov[1].iov_base = init_out;
    ssize_t r = writev(fd, iov, count);
    iov[1] = saved;
    kp.wanted = 0;
    return r;
}

int mmapfs_devio_install(struct fuse_session *se, int killpriv)
{
    static const struct fuse_custom_io io = { .writev = dev_writev, .read = dev_read };
    int err = fuse_session_custom_io(se, &io, fuse_session_fd(se));

    kp.installed = err == 0;
#ifdef FUSE_CAP_HANDLE_KILLPRIV_V2
    (void)killpriv;         /* libfuse negotiates it itself (ops.c) */
#else
    kp.killpriv = killpriv;
#endif
    return err;
}

int mmapfs_killpriv_negotiate(void)
{
    if (!kp.installed || !kp.killpriv || !kp.offered)
        return 0;
    kp.wanted = 1;
    return 1;
}
