/*
 * mmio_discard.c — giving unused byte ranges back to the storage.
 *
 * A regular file gets a hole (fallocate PUNCH_HOLE | KEEP_SIZE: the size
 * stays, the blocks go back to the host filesystem, the range reads as
 * zeros); a block device gets BLKDISCARD (thin volumes, SSDs, loop devices
 * over sparse files give the space back). Mapped pages of the range are
 * dropped by the kernel in both cases. A target that cannot do it answers
 * -EOPNOTSUPP once and is not asked again (the flag is sticky).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <time.h>

#include "io/mmio_i.h"

int mmio_discard(struct mmio *io, uint64_t off, uint64_t len)
{
    if (!io)
        return -EINVAL;
    if (io->read_only)
        return -EROFS;
    if (off > io->size || len > io->size - off)
        return -ERANGE;
    if (len == 0)
        return 0;
    if (__atomic_load_n(&io->discard_unsupported, __ATOMIC_RELAXED))
        return -EOPNOTSUPP;

    uint64_t t0 = mmio_now_ns();
    int err = 0;
    if (io->regular) {
        if (fallocate(io->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      (off_t)off, (off_t)len))
            err = -errno;
    } else {
        uint64_t range[2] = { off, len };
        if (ioctl(io->fd, BLKDISCARD, range))
            err = -errno;
    }
    if (err == -EOPNOTSUPP || err == -ENOTTY) {
        __atomic_store_n(&io->discard_unsupported, 1, __ATOMIC_RELAXED);
        return -EOPNOTSUPP;
    }
    mmio_note_change(io);       /* a hole is a change a sync makes durable */
    if (err)
        return err;
    mmio_metric_add(&io->m.discards, 1);
    mmio_metric_add(&io->m.discard_bytes, len);
    mmio_metric_add(&io->m.discard_us, (mmio_now_ns() - t0) / 1000);
    return 0;
}

int mmio_discard_supported(const struct mmio *io)
{
    return io && !io->read_only &&
           !__atomic_load_n(&io->discard_unsupported, __ATOMIC_RELAXED);
}
