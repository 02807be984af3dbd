/*
 * resize_stop.c — mmapfs-resize-stop, the test build of mmapfs-resize
 * used by 66_resize.sh: src/tools/resize.c compiled a second time with
 * -Dmain=resize_real_main, plus this main, which installs an observer
 * (src/io/observe.h). With MMAPFS_RESIZE_STOP_AT=N (1..6, enum
 * fs_grow_step: extended, bitmap written, inode table and inode bitmap
 * written, journal header written, synced, superblock written) it exits with status 99 right after step N, without
 * syncing or closing anything: a crash at that point. The shipped
 * mmapfs-resize has no such code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "io/observe.h"
#include "resize_stop.h"

static int stop_at;

static int at(void *ctx, struct mmio *io, enum mmio_point point, uint64_t a, uint64_t b)
{
    (void)ctx, (void)io, (void)b;
    if (point == MMIO_AT_GROW_STEP && stop_at > 0 && a == (uint64_t)stop_at) {
        fprintf(stderr, "mmapfs-resize: stopping after step %d (MMAPFS_RESIZE_STOP_AT)\n",
                stop_at);
        _exit(99);
    }
    return 0;
}

static const struct mmio_observer observer = { .at = at };

int main(int argc, char **argv)
{
    const char *s = getenv("MMAPFS_RESIZE_STOP_AT");
    stop_at = s ? atoi(s) : 0;
    mmio_set_observer(&observer);
    return resize_real_main(argc, argv);
}
