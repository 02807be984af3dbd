/*
 * fsck/open.c — the front door of fs_check: the target must be an image
 * file or a block device that can be opened (read-only with -n, read-write
 * to repair) and holds at least a superblock; the image lock; the engine.
 * Each refusal is one line naming the problem and what to do.
 *
 * -n never writes: the image is opened O_RDONLY, the engine is read-only
 * (mmio_config.read_only) and the journal is replayed into memory only
 * (fsck.c), so -n works on read-only media, on an immutable file and on a
 * full disk. It takes a shared lock (nothing may write while it reads; other
 * readers may). An image a mount (or a repair) holds is checked anyway,
 * with a warning, as e2fsck -n checks a mounted filesystem: a live
 * filesystem can show problems it does not have. Repairs (-y, -p) take
 * the exclusive lock and refuse an image in use.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsck/fsck_i.h"
#include "fs/fs.h"
#include "journal/journal.h"

#define PROG CHECK_PROG
#define WHAT_TO_GIVE "give the image file or block device of an mmapfs filesystem"

/* Prints "fsck.mmapfs: PATH: <message>" if there is a report. */
static void refuse(struct check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void refuse(struct check *c, const char *fmt, ...)
{
    if (!c->out)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(c->out, PROG ": %s: ", c->path);
    vfprintf(c->out, fmt, ap);
    fputc('\n', c->out);
    va_end(ap);
}

/* Explains a failed stat or open of the target (errno e). */
static void refuse_errno(struct check *c, int e, int read_only)
{
    if (e == ENOENT || e == ENOTDIR)
        refuse(c, "no such file or device: " WHAT_TO_GIVE);
    else if (e == EISDIR)
        refuse(c, "is a directory: " WHAT_TO_GIVE " (not a mount point)");
    else if (!read_only && (e == EROFS || e == EPERM || e == EACCES || e == ETXTBSY))
        refuse(c, "cannot open it for writing (%s): to check it without repairs use -n",
               strerror(e));
    else if (e == EACCES || e == EPERM)
        refuse(c, "cannot read it (%s): run fsck.mmapfs as a user who may", strerror(e));
    else
        refuse(c, "cannot open: %s", strerror(e));
}

/* Takes the image lock: shared for -n, exclusive for repairs. 0 or
 * FSCK_EXIT_OPERATIONAL. */
static int lock_target(struct check *c, int fd, int read_only)
{
    /* waits for a daemon still finishing its unmount */
    int err = read_only ? fs_lock_image_shared(fd, FS_LOCK_WAIT_MS)
                        : fs_lock_image(fd, FS_LOCK_WAIT_MS);
    if (!err)
        return 0;
    if (err != -EBUSY) {
        refuse(c, "cannot lock it: %s", strerror(-err));
        return FSCK_EXIT_OPERATIONAL;
    }
    if (!read_only) {
        refuse(c, "in use (mounted?): refusing to repair it; unmount it first "
               "(fsck.mmapfs -n checks it read-only)");
        return FSCK_EXIT_OPERATIONAL;
    }
    c->in_use = 1;
    refuse(c, "warning: in use (mounted?): checking it read-only anyway; "
           "a filesystem in use can show errors it does not have");
    return 0;
}

/* See fsck_i.h. */
int fsck_open(struct check *c, int *fd_out)
{
    int read_only = c->opt.mode == FS_CHECK_NO;
    struct stat st;

    *fd_out = -1;
    if (stat(c->path, &st) != 0) {
        refuse_errno(c, errno, read_only);
        return FSCK_EXIT_OPERATIONAL;
    }
    if (S_ISDIR(st.st_mode)) {
        refuse_errno(c, EISDIR, read_only);
        return FSCK_EXIT_OPERATIONAL;
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        refuse(c, "not a regular file or block device: " WHAT_TO_GIVE);
        return FSCK_EXIT_OPERATIONAL;
    }
    int fd = open(c->path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (fd < 0) {
        refuse_errno(c, errno, read_only);
        return FSCK_EXIT_OPERATIONAL;
    }
    *fd_out = fd;
    int ro_device = 0;
    if (!read_only && S_ISBLK(st.st_mode) && ioctl(fd, BLKROGET, &ro_device) == 0 &&
        ro_device) {
        refuse_errno(c, EROFS, read_only);      /* the open itself may succeed */
        return FSCK_EXIT_OPERATIONAL;
    }
    int r = lock_target(c, fd, read_only);
    if (r)
        return r;
    struct mmio_config cfg = { .backend = MMIO_BACKEND_MMAP, .read_only = read_only };
    int err = S_ISREG(st.st_mode) && st.st_size < MMAPFS_BLOCK_SIZE ? -ERANGE
            : mmio_open(&c->io, c->path, 0, 0, &cfg);
    if (!err && mmio_size(c->io) < MMAPFS_BLOCK_SIZE)
        err = -ERANGE;
    if (err == -ERANGE) {
        refuse(c, "%" PRIu64 " bytes: too small to be an mmapfs filesystem (one "
               "block is %u bytes): " WHAT_TO_GIVE,
               c->io ? mmio_size(c->io) : (uint64_t)st.st_size, MMAPFS_BLOCK_SIZE);
        return FSCK_EXIT_OPERATIONAL;
    }
    if (err) {
        refuse(c, "cannot open: %s", mmio_open_strerror(err));
        return FSCK_EXIT_OPERATIONAL;
    }
    return 0;
}

/* See fsck_i.h. */
void fsck_close(struct check *c, int fd)
{
    if (c->replay) {
        jnl_unlock(c->replay);
        jnl_close(c->replay);       /* read-only: writes nothing */
        c->replay = NULL;
    }
    mmio_close(c->io);
    c->io = NULL;
    if (fd >= 0)
        close(fd);
}
