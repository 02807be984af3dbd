/*
 * slowsync.c — LD_PRELOAD shim for the mount daemon: while the file named
 * by $SLOWSYNC_FLAG exists, every fdatasync(2) first sleeps
 * $SLOWSYNC_MS milliseconds (default 1500), as on a slow device. Used by
 * 71_term_fsync.sh to keep an fsync(2) in flight while the daemon stops.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int fdatasync(int fd)
{
    static int (*real)(int);
    const char *flag = getenv("SLOWSYNC_FLAG"), *ms = getenv("SLOWSYNC_MS");

    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    if (flag && access(flag, F_OK) == 0) {
        long n = ms ? atol(ms) : 1500;
        struct timespec t = { n / 1000, (n % 1000) * 1000000L };
        nanosleep(&t, NULL);
    }
    return real(fd);
}
