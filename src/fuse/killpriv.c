/*
 * killpriv.c — FUSE_HANDLE_KILLPRIV_V2 with a libfuse that cannot ask for it.
 *
 * With HANDLE_KILLPRIV_V2 the kernel marks the mount SB_NOSEC: once it has
 * seen that a file carries no SUID/SGID bit and no security.capability, it
 * stops asking the daemon for security.capability (a GETXATTR round trip)
 * on every write(2) to it, and leaves the clearing of SUID/SGID on write,
 * truncate and chown to the filesystem (FUSE_WRITE_KILL_SUIDGID,
 * FATTR_KILL_SUIDGID; ops_data.c and ops_names.c do it). libfuse 3.14
 * knows neither the flag nor a capability bit for it, so where the library
 * lacks FUSE_CAP_HANDLE_KILLPRIV_V2 the daemon installs its own device I/O
 * (fuse_session_custom_io, same descriptor): read(2) notes whether the
 * kernel's INIT request offers the flag, and writev(2) adds the flag to the
 * INIT reply when mfs_init asked for it. Every other message passes through
 * untouched; the cost is one compare per message.
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
    int offered;            /* the kernel's INIT offered the flag */
    int wanted;             /* mfs_init asked for it; cleared once sent */
    uint64_t init_unique;
} kp;

/* Requests arrive on several threads, but INIT comes alone, before any
 * other request, and its reply is written by the thread that read it:
 * the fields need no lock. */
static ssize_t kp_read(int fd, void *buf, size_t len, void *userdata)
{
    ssize_t r = read(fd, buf, len);
    const size_t need = sizeof(struct fuse_in_header) +
                        offsetof(struct fuse_init_in, flags) + sizeof(uint32_t);
    struct fuse_in_header h;
    uint32_t flags;

    (void)userdata;
    if (r < (ssize_t)need)
        return r;
    memcpy(&h, buf, sizeof(h));
    if (h.opcode != FUSE_INIT)
        return r;
    memcpy(&flags, (char *)buf + sizeof(h) + offsetof(struct fuse_init_in, flags),
           sizeof(flags));
    kp.init_unique = h.unique;
    kp.offered = (flags & FUSE_HANDLE_KILLPRIV_V2) != 0;
    return r;
}

static ssize_t kp_writev(int fd, struct iovec *iov, int count, void *userdata)
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

int mmapfs_killpriv_install(struct fuse_session *se)
{
#ifdef FUSE_CAP_HANDLE_KILLPRIV_V2
    (void)se;
    return 0;               /* libfuse negotiates it itself (ops.c) */
#else
    static const struct fuse_custom_io io = { .writev = kp_writev, .read = kp_read };
    int err = fuse_session_custom_io(se, &io, fuse_session_fd(se));

    kp.installed = err == 0;
    return err;
#endif
}

int mmapfs_killpriv_negotiate(void)
{
    if (!kp.installed || !kp.offered)
        return 0;
    kp.wanted = 1;
    return 1;
}
