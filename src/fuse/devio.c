/*
 * devio.c — the daemon's own device I/O, for what libfuse 3.14 cannot do.
 *
 * The daemon installs its own read(2) and writev(2) on the session's
 * device (fuse_session_custom_io, same descriptor). Every message passes
 * through untouched but two, at the cost of one compare per message:
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
 */
#include <errno.h>
#include <linux/fuse.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fuse/fuse_i.h"

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

    (void)userdata;
    if (!kp.wanted || count < 2 || iov[0].iov_len < sizeof(oh))
        return writev(fd, iov, count);
    memcpy(&oh, iov[0].iov_base, sizeof(oh));
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
