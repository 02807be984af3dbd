/*
 * Exclusive use of an image: mount, fsck and mkfs hold flock(LOCK_EX) on a
 * descriptor of the image for as long as they use it; fsck -n, which only
 * reads, holds flock(LOCK_SH), so that nothing writes while it reads.
 *
 * `fusermount3 -u` returns as soon as the kernel has detached the mount;
 * the daemon then still commits and closes the image, which takes a
 * moment. A mount, fsck or mkfs started right after the unmount would see
 * the lock held and fail spuriously. So when the lock is held but the image
 * is not mounted any more (no fuse.mmapfs entry in /proc/self/mountinfo
 * names the same file), we wait a bounded time for the holder to finish.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "fs/fs.h"
#include "util/mountinfo.h"

/* Same file (or the same block device) as st? */
static int same_file(const struct stat *a, const struct stat *b)
{
    if (S_ISBLK(a->st_mode) && S_ISBLK(b->st_mode))
        return a->st_rdev == b->st_rdev;
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

int fs_image_mounted(int fd)
{
    struct stat me, other;
    char line[8192];
    int found = 0;

    if (fstat(fd, &me) != 0)
        return 0;
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return 0;
    while (!found && fgets(line, sizeof(line), f)) {
        /* "... - FSTYPE SOURCE SUPEROPTS" */
        char *sep = strstr(line, " - ");
        if (!sep)
            continue;
        char *save = NULL;
        char *type = strtok_r(sep + 3, " \n", &save);
        char *source = strtok_r(NULL, " \n", &save);
        if (!type || !source || strcmp(type, "fuse.mmapfs") != 0)
            continue;
        mfs_mountinfo_unescape(source);
        if (stat(source, &other) == 0 && same_file(&me, &other))
            found = 1;
    }
    fclose(f);
    return found;
}

/* 1 if this process itself holds a flock on the file behind fd (another
 * descriptor of ours, e.g. a second fs_mount in one process): waiting would
 * be pointless. Read from /proc/locks: "N: FLOCK ADVISORY WRITE PID MAJ:MIN:INO ...". */
static int lock_held_by_self(int fd)
{
    struct stat me;
    char line[256];
    int found = 0;

    if (fstat(fd, &me) != 0)
        return 0;
    FILE *f = fopen("/proc/locks", "re");
    if (!f)
        return 0;
    while (!found && fgets(line, sizeof(line), f)) {
        char kind[16];
        unsigned maj, min;
        unsigned long long ino;
        long pid;
        if (sscanf(line, "%*[^:]: %15s %*s %*s %ld %x:%x:%llu", kind, &pid, &maj, &min, &ino) != 5)
            continue;
        if (strcmp(kind, "FLOCK") == 0 && pid == (long)getpid() && ino == me.st_ino &&
            maj == major(me.st_dev) && min == minor(me.st_dev))
            found = 1;
    }
    fclose(f);
    return found;
}

/* fs_lock_image with op LOCK_EX or LOCK_SH. */
static int lock_image(int fd, int op, unsigned wait_ms)
{
    const struct timespec step = { 0, 20 * 1000 * 1000 };
    unsigned waited = 0;

    for (;;) {
        if (flock(fd, op | LOCK_NB) == 0)
            return 0;
        if (errno != EWOULDBLOCK)
            return -errno;
        if (waited >= wait_ms || lock_held_by_self(fd) || fs_image_mounted(fd))
            return -EBUSY;
        nanosleep(&step, NULL);
        waited += 20;
    }
}

int fs_lock_image(int fd, unsigned wait_ms)
{
    return lock_image(fd, LOCK_EX, wait_ms);
}

int fs_lock_image_shared(int fd, unsigned wait_ms)
{
    return lock_image(fd, LOCK_SH, wait_ms);
}
