/*
 * fsck/io.c — every write and sync of a repair goes through here
 * (mmio_write_at, mmio_sync). Each first passes an observation point
 * (io/observe.h: MMIO_AT_FSCK_WRITE, MMIO_AT_FSCK_SYNC), where the unit
 * tests simulate a crash in the middle of fsck -y; an observer's error
 * fails the write or sync, so fs_check ends with an operational error, as
 * a killed process would.
 */
#include "fsck/fsck_i.h"
#include "io/observe.h"

/* See fsck_i.h. */
int fsck_io_write(struct check *c, uint64_t off, const void *buf, size_t len)
{
    int err = mmio_observe_at(c->io, MMIO_AT_FSCK_WRITE, off, len);
    return err ? err : mmio_write_at(c->io, off, buf, len);
}

/* See fsck_i.h. */
int fsck_io_sync(struct check *c)
{
    int err = mmio_observe_at(c->io, MMIO_AT_FSCK_SYNC, 0, 0);
    return err ? err : mmio_sync(c->io);
}
