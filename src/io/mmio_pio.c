/*
 * mmio_pio.c — the PREAD backend: whole-buffer pread/pwrite loops.
 *
 * Short transfers and EINTR are retried until the whole range is done.
 * With O_DIRECT the kernel wants the buffer, offset and length aligned to
 * the logical block size. Offsets and lengths are the caller's business
 * (the kernel's -EINVAL is passed through); an unaligned buffer is copied
 * through a page-aligned bounce buffer so callers need not care.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/mmio_i.h"

/* One whole-range transfer on fd: reads into buf, or writes from it. A
 * zero-byte transfer before the end means the file ended (truncated
 * under us): -EIO. */
static int pio_loop(int fd, int write, uint64_t off, unsigned char *buf,
                    size_t len)
{
    size_t done = 0;

    while (done < len) {
        ssize_t r;
        if (write)
            r = pwrite(fd, buf + done, len - done, (off_t)(off + done));
        else
            r = pread(fd, buf + done, len - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return -EIO;
        done += (size_t)r;
    }
    return 0;
}

/* Allocates an aligned bounce buffer when O_DIRECT needs one for buf;
 * *bounce stays NULL when buf can be used as it is. 0 or -ENOMEM. */
static int need_bounce(const struct mmio *io, const void *buf, size_t len,
                       unsigned char **bounce)
{
    void *p = NULL;

    *bounce = NULL;
    if (!io->direct || ((uintptr_t)buf % MMIO_DIRECT_ALIGN) == 0)
        return 0;
    if (posix_memalign(&p, MMIO_DIRECT_ALIGN, len))
        return -ENOMEM;
    *bounce = p;
    return 0;
}

int mmio_pio_read(struct mmio *io, uint64_t off, void *buf, size_t len)
{
    unsigned char *bounce;
    int err = need_bounce(io, buf, len, &bounce);
    if (err)
        return err;

    err = pio_loop(io->fd, 0, off, bounce ? bounce : buf, len);
    if (!err && bounce)
        memcpy(buf, bounce, len);
    free(bounce);
    return err;
}

int mmio_pio_write(struct mmio *io, uint64_t off, const void *buf, size_t len)
{
    unsigned char *bounce;
    int err = need_bounce(io, buf, len, &bounce);
    if (err)
        return err;

    if (bounce)
        memcpy(bounce, buf, len);
    err = pio_loop(io->fd, 1, off, bounce ? bounce : (unsigned char *)buf, len);
    free(bounce);
    return err;
}
