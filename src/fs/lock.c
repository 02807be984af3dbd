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
 *
 * A flock belongs to one name of the image: an image file and a loop
 * device over it are two. So whoever takes the lock also looks for a mount
 * of the same storage under the other name (the file of a loop device,
 * LOOP_GET_STATUS64) and counts it as a holder: without MMP nothing else
 * kept fsck -y, mkfs -f or a second mount off a loop device over a mounted
 * image file (or the file under a mounted loop device). A loop device over
 * the file that the kernel has mounted (ext4 with -o loop) counts too, as
 * for mkfs.ext4. With MMP the MMP block refuses them already, naming the
 * holder: not looked for then.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>
#include <linux/loop.h>
#include <linux/major.h>
#include <sys/ioctl.h>

#include "fs/format.h"
#include "fs/fs.h"
#include "util/mountinfo.h"

/* Same file (or the same block device) as st? */
static int same_file(const struct stat *a, const struct stat *b)
{
    if (S_ISBLK(a->st_mode) && S_ISBLK(b->st_mode))
        return a->st_rdev == b->st_rdev;
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* One fd's image, matched against the sources of the mounts. */
struct image_id {
    struct stat st;
    dev_t dev;              /* storage_of: the file holding its blocks */
    ino_t ino;
};

struct any_mount_ctx {
    int (*match)(const char *source, const struct image_id *id);
    const struct image_id *id;
};

static int any_mount_one(const struct mfs_mount *m, void *ctx)
{
    const struct any_mount_ctx *c = ctx;
    return strcmp(m->fstype, "fuse.mmapfs") == 0 && c->match(m->source, c->id);
}

/* 1 if match(source, id) is 1 for the source of a fuse.mmapfs mount. */
static int any_mount(int (*match)(const char *source, const struct image_id *id),
                     const struct image_id *id)
{
    struct any_mount_ctx c = { match, id };
    return mfs_mountinfo_each(any_mount_one, &c) > 0;
}

static int same_name(const char *source, const struct image_id *id)
{
    struct stat other;
    return stat(source, &other) == 0 && same_file(&id->st, &other);
}

int fs_image_mounted(int fd)
{
    struct image_id id;
    return fstat(fd, &id.st) == 0 && any_mount(same_name, &id);
}

/* The file that holds the blocks of fd (stat st): a loop device's backing
 * file, else fd's own file. 0, or -1 for any other block device. */
static int storage_of(int fd, const struct stat *st, dev_t *dev, ino_t *ino)
{
    if (S_ISBLK(st->st_mode)) {
        struct loop_info64 info;
        if (major(st->st_rdev) != LOOP_MAJOR || ioctl(fd, LOOP_GET_STATUS64, &info) != 0)
            return -1;
        *dev = (dev_t)info.lo_device;
        *ino = (ino_t)info.lo_inode;
        return 0;
    }
    *dev = st->st_dev;
    *ino = st->st_ino;
    return 0;
}

/* 1 if fd holds an mmapfs superblock with the MMP feature. */
static int has_mmp(int fd)
{
    struct mmapfs_disk_superblock sb;
    return pread(fd, &sb, sizeof(sb), 0) == (ssize_t)sizeof(sb) &&
           memcmp(sb.magic, MMAPFS_MAGIC, sizeof(sb.magic)) == 0 &&
           (sb.feature_incompat & MMAPFS_FEATURE_INCOMPAT_MMP);
}

/* source is another name of id's storage (fd's own name holds fd's flock;
 * two files are never the same storage). */
static int other_name(const char *source, const struct image_id *id)
{
    struct stat other;
    dev_t dev;
    ino_t ino;
    int found = 0;

    if (stat(source, &other) != 0 || same_file(&id->st, &other) ||
        (!S_ISBLK(id->st.st_mode) && !S_ISBLK(other.st_mode)))
        return 0;
    int ofd = open(source, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (ofd < 0)
        return 0;
    if (fstat(ofd, &other) == 0 && storage_of(ofd, &other, &dev, &ino) == 0 &&
        dev == id->dev && ino == id->ino)
        found = 1;
    close(ofd);
    return found;
}

/* 1 if a loop device over id's file is mounted by the kernel (or claimed
 * otherwise): its exclusive open fails with EBUSY. A file system such as
 * ext4 mounted with -o loop is in no mountinfo line of the file. The loop
 * devices are matched by their sysfs backing_file, not opened: a close of
 * ours could be the last one of a device set up with autoclear. */
static int loop_over_file_busy(const struct image_id *id)
{
    DIR *d = opendir("/sys/block");
    struct dirent *e;
    int busy = 0;

    if (!d)
        return 0;
    while (!busy && (e = readdir(d)) != NULL) {
        char path[320], backing[4096];
        struct stat st;
        if (strncmp(e->d_name, "loop", 4) != 0)
            continue;
        snprintf(path, sizeof(path), "/sys/block/%s/loop/backing_file", e->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;       /* not attached */
        int got = fgets(backing, sizeof(backing), f) != NULL;
        fclose(f);
        backing[strcspn(backing, "\n")] = 0;
        if (!got || stat(backing, &st) != 0 || st.st_dev != id->dev || st.st_ino != id->ino)
            continue;
        snprintf(path, sizeof(path), "/dev/%s", e->d_name);
        int xfd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_EXCL);
        if (xfd >= 0)
            close(xfd);
        else
            busy = errno == EBUSY;
    }
    closedir(d);
    return busy;
}

/* 1 if a mount uses the storage of fd under another name: a fuse.mmapfs
 * mount of the loop device over fd's file, or of the file under fd's loop
 * device (another loop device over the same file too); any mount of a loop
 * device over fd's file. */
static int mounted_under_other_name(int fd)
{
    struct image_id id;
    return fstat(fd, &id.st) == 0 && storage_of(fd, &id.st, &id.dev, &id.ino) == 0 &&
           (any_mount(other_name, &id) ||
            (S_ISREG(id.st.st_mode) && loop_over_file_busy(&id)));
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
        if (flock(fd, op | LOCK_NB) == 0) {
            if (has_mmp(fd) || !mounted_under_other_name(fd))
                return 0;
            flock(fd, LOCK_UN);
            return -EBUSY;
        }
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
