/*
 * fsck/io.c — every write and sync of a repair goes through here
 * (mmio_write_at, mmio_sync), which gives the unit tests one place to
 * simulate a crash in the middle of fsck -y.
 *
 * Crash simulation (fsck_crash_sim, set by tests only): at the crash_at-th
 * write, the writes made since the last sync are each undone or kept at
 * random (the kernel may have written back any subset of the dirty pages),
 * newest first, and from then on every write and sync fails with -EIO, so
 * fs_check ends with an operational error, as a killed process would.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fsck/fsck_i.h"

struct fsck_crash_sim fsck_crash_sim;

/* Old content of one write since the last sync. */
struct undo {
    uint64_t off;
    size_t len;
    uint8_t *old;
};

static struct undo *undo_log;
static size_t undo_n, undo_cap;

/* Forgets the undo log (a sync made everything before it durable). */
static void undo_clear(void)
{
    for (size_t i = 0; i < undo_n; i++)
        free(undo_log[i].old);
    undo_n = 0;
}

/* Records the bytes a write is about to replace. 0 or -ENOMEM. */
static int undo_record(struct check *c, uint64_t off, size_t len)
{
    if (undo_n == undo_cap) {
        size_t cap = undo_cap ? undo_cap * 2 : 64;
        struct undo *n = realloc(undo_log, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        undo_log = n;
        undo_cap = cap;
    }
    uint8_t *old = malloc(len);
    if (!old)
        return -ENOMEM;
    int err = mmio_read_at(c->io, off, old, len);
    if (err) {
        free(old);
        return err;
    }
    undo_log[undo_n++] = (struct undo){ .off = off, .len = len, .old = old };
    return 0;
}

/* The crash: a random subset of the unsynced writes is lost. */
static void crash(struct check *c)
{
    struct fsck_crash_sim *s = &fsck_crash_sim;
    s->crashed = 1;
    for (size_t i = undo_n; i-- > 0;) {
        s->rng = s->rng * 6364136223846793005ull + 1442695040888963407ull;
        if ((s->rng >> 33) & 1)
            mmio_write_at(c->io, undo_log[i].off, undo_log[i].old, undo_log[i].len);
    }
    undo_clear();
    mmio_sync(c->io);
}

/* See fsck_i.h. */
int fsck_io_write(struct check *c, uint64_t off, const void *buf, size_t len)
{
    struct fsck_crash_sim *s = &fsck_crash_sim;
    if (s->crash_at) {
        if (s->crashed)
            return -EIO;
        if (++s->writes >= s->crash_at) {
            crash(c);
            return -EIO;
        }
        int err = undo_record(c, off, len);
        if (err)
            return err;
    }
    return mmio_write_at(c->io, off, buf, len);
}

/* See fsck_i.h. */
int fsck_io_sync(struct check *c)
{
    if (fsck_crash_sim.crash_at) {
        if (fsck_crash_sim.crashed)
            return -EIO;
        undo_clear();
    }
    return mmio_sync(c->io);
}
