/*
 * dirty.c — the mount's share of the kernel's dirty pages (sysfs bdi).
 *
 * At mount the daemon raises the share the kernel gives a FUSE mount
 * (max_ratio, min_ratio; docs/MOUNT.md "Dirty pages"), so that random
 * writes are merged in the page cache before they are written back, and
 * its read-ahead (read_ahead_kb), so that a sequential read takes READs
 * of 1 MiB instead of 128 KiB.
 *
 * With the writeback cache, write(2) only fills that cache: the daemon
 * sees the data when the kernel writes it back, and a write-back refused
 * for lack of space can only fail a later write(2) (mfs_wb_error_set).
 * Everything the kernel accepted before then is lost past the full point:
 * at max_ratio 10 that was about 400 MB on a 64 MiB image. So the cap
 * follows the free space (the host's, if a sparse image's host has less:
 * free_space): the kernel may hold at most a quarter of it
 * (never less than MFS_DIRTY_FLOOR), checked after every WRITE the daemon
 * serves. Lowered at once when the cap exceeds half the free space,
 * raised again (with hysteresis) when it grows past eight times the cap,
 * back to the mount's own value when there is room. The kernel throttles
 * writers that reach the cap, so near the full point write(2) fails
 * within about MFS_DIRTY_FLOOR of it (docs/MOUNT.md, "Dirty pages").
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "fuse/fuse_i.h"
#include "util/mountinfo.h"

/* Finds the device number ("MAJ:MIN") of the fuse.mmapfs mount on top of
 * mountpoint in /proc/self/mountinfo, without touching the mount itself
 * (the request loop is not running yet: a stat would wait forever). */
static int find_mount_dev(const char *mountpoint, char *dev, size_t size)
{
    struct mfs_mount_top top;
    int err = mfs_mountinfo_top(mountpoint, &top);

    if (err)
        return err;
    if (strcmp(top.fstype, "fuse.mmapfs") != 0 || strlen(top.devid) >= size)
        return -ENOENT;
    strcpy(dev, top.devid);
    return 0;
}

/* Writes value to the attribute file DIR/name of the mount's bdi; logs one
 * line and returns -errno if that is not possible. */
static int set_bdi_attr(const char *dir, const char *name, uint64_t value)
{
    char path[160], val[32];
    int fd, len, err = 0;
    ssize_t w;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    len = snprintf(val, sizeof(val), "%" PRIu64 "\n", value);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        err = -errno;
        mfs_log(LOG_INFO, "%s: %s; kernel value kept", path, strerror(-err));
        return err;
    }
    w = write(fd, val, (size_t)len);
    if (w != len) {
        err = w < 0 ? -errno : -EIO;
        mfs_log(LOG_INFO, "writing %" PRIu64 " to %s: %s; kernel value kept", value,
                path, strerror(-err));
    }
    close(fd);
    return err;
}

/* Reads the number in DIR/name; -errno if there is none. */
static int get_bdi_attr(const char *dir, const char *name, uint64_t *value)
{
    char path[160], val[32];
    ssize_t n;
    int fd, err = 0;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    n = read(fd, val, sizeof(val) - 1);
    if (n <= 0)
        err = n < 0 ? -errno : -EIO;
    else {
        val[n] = '\0';
        char *end;
        errno = 0;
        *value = strtoull(val, &end, 10);
        if (errno || end == val)
            err = -EIO;
    }
    close(fd);
    return err;
}

/* Sets up the cap that follows free space (d->on) from what the kernel
 * now has for the mount: its max_bytes becomes the cap when there is
 * room. Off without the max_bytes attribute (kernels before 6.2) or the
 * right to write it. */
static void follow_setup(struct mfs_dirty *d)
{
    uint64_t max_ratio, min_ratio, full;
    char path[160];

    if (get_bdi_attr(d->dir, "max_ratio", &max_ratio) ||
        get_bdi_attr(d->dir, "min_ratio", &min_ratio) ||
        get_bdi_attr(d->dir, "max_bytes", &full) || full == 0) {
        mfs_log(LOG_INFO, "%s: no max_bytes; the dirty-page cap does not follow "
                "free space", d->dir);
        return;
    }
    snprintf(path, sizeof(path), "%s/max_bytes", d->dir);
    if (access(path, W_OK) != 0)
        return;
    d->max_ratio = max_ratio;
    d->min_ratio = min_ratio;
    d->full_bytes = full;
    d->floor = full < MFS_DIRTY_FLOOR ? full : MFS_DIRTY_FLOOR;
    d->cap = full;
    pthread_mutex_init(&d->mu, NULL);
    __atomic_store_n(&d->on, 1, __ATOMIC_RELEASE);
}

/* A FUSE mount reads ahead 128 KiB: a sequential read is one READ round
 * trip per 128 KiB; at 1 MiB (the largest READ: max_write) the kernel
 * sends an eighth of them (docs/MOUNT.md "Read-ahead"). The kernel sets
 * the mount's read-ahead again when it applies the INIT reply (to at most
 * what it offered, 128 KiB), so the value is written after that: by a
 * thread whose stat(2) of the mount point returns only once INIT is done
 * and the loop serves. It holds its own copy of what it needs. */
struct read_ahead_job {
    char mountpoint[4096], dir[96];
    unsigned kb;
};

static void *read_ahead_thread(void *arg)
{
    struct read_ahead_job *j = arg;
    struct stat st;

    if (stat(j->mountpoint, &st) == 0)
        (void)set_bdi_attr(j->dir, "read_ahead_kb", j->kb);
    free(j);
    return NULL;
}

static void read_ahead_later(const char *mountpoint, const char *dir, unsigned kb)
{
    struct read_ahead_job *j = calloc(1, sizeof(*j));
    pthread_attr_t attr;
    pthread_t t;

    if (!j || strlen(mountpoint) >= sizeof(j->mountpoint)) {
        free(j);
        return;
    }
    strcpy(j->mountpoint, mountpoint);
    snprintf(j->dir, sizeof(j->dir), "%s", dir);
    j->kb = kb;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, read_ahead_thread, j) != 0) {
        mfs_log(LOG_INFO, "read_ahead_kb: no thread; the kernel's read-ahead kept");
        free(j);
    }
    pthread_attr_destroy(&attr);
}

/* The cap for free bytes of free space. */
static uint64_t cap_for(const struct mfs_dirty *d, uint64_t free)
{
    uint64_t want = free / 4;
    if (want >= d->full_bytes)
        return d->full_bytes;
    if (want < d->floor)
        want = d->floor;
    return want & ~(uint64_t)(MMAPFS_BLOCK_SIZE - 1);
}

/* Gives the kernel the cap want (d->mu held). Back at full_bytes, the
 * mount's ratios are restored as they were set (max first); below it,
 * min_ratio goes to 0 first, since the kernel refuses a max below the min. */
static void set_cap(struct mfs_dirty *d, uint64_t want)
{
    int err;

    if (want >= d->full_bytes) {
        err = set_bdi_attr(d->dir, "max_ratio", d->max_ratio);
        if (!err && d->min_ratio)
            err = set_bdi_attr(d->dir, "min_ratio", d->min_ratio);
    } else {
        err = d->min_ratio ? set_bdi_attr(d->dir, "min_ratio", 0) : 0;
        if (!err)
            err = set_bdi_attr(d->dir, "max_bytes", want);
    }
    if (err) {
        /* logged; nothing better to do than to stop trying */
        __atomic_store_n(&d->on, 0, __ATOMIC_RELAXED);
        return;
    }
    __atomic_store_n(&d->cap, want, __ATOMIC_RELAXED);
}

/* The space the kernel's dirty pages may fill: the image's free space, or
 * for a sparse image the host's when that is less. The host fills long
 * before the image then, and a cap that followed the image alone let the
 * kernel take 39 MB past the host's full point on a 40 MiB tmpfs (all of
 * it lost at write-back: 62_host_full.sh). Freed blocks the host already
 * holds are not counted, so on a full host the cap may sit at its floor
 * while such blocks are reused: slower write-back, nothing lost. */
static uint64_t free_space(struct fs *fs)
{
    uint64_t img = fs_free_bytes(fs), host = fs_host_free_bytes(fs);
    return host < img ? host : img;
}

/* Moves the cap if free space asks for it (see the top of the file). */
static void follow(struct mfs_dirty *d, struct fs *fs)
{
    if (!__atomic_load_n(&d->on, __ATOMIC_ACQUIRE))
        return;
    uint64_t free = free_space(fs);
    uint64_t cap = __atomic_load_n(&d->cap, __ATOMIC_RELAXED);
    int lower = cap > d->floor && free / 2 < cap;
    int raise = cap < d->full_bytes && free / 8 >= cap;
    if (!lower && !raise)
        return;
    pthread_mutex_lock(&d->mu);
    if (__atomic_load_n(&d->on, __ATOMIC_RELAXED)) {
        uint64_t want = cap_for(d, free_space(fs));
        if (want != d->cap)
            set_cap(d, want);
    }
    pthread_mutex_unlock(&d->mu);
}

void mfs_dirty_follow_space(struct mmapfs_fuse *m)
{
    if (m->writeback_cache)
        follow(&m->dirty, m->fs);
}

void mmapfs_set_dirty_share(struct mmapfs_fuse *m)
{
    const struct mmapfs_config *cfg = m->cfg;
    struct mfs_dirty *d = &m->dirty;
    char dev[64];
    int err;

    if (cfg->read_only && cfg->max_ratio < 0 && cfg->min_ratio < 0 && !cfg->read_ahead_kb)
        return;
    err = find_mount_dev(cfg->mountpoint, dev, sizeof(dev));
    if (err) {
        mfs_log(LOG_INFO, "mount of %s not found in mountinfo: %s; dirty-page "
                "limits of the kernel kept", cfg->mountpoint, strerror(-err));
        return;
    }
    snprintf(d->dir, sizeof(d->dir), "/sys/class/bdi/%s", dev);
    /* max first: the kernel refuses a min_ratio above max_ratio */
    if (cfg->max_ratio >= 0)
        (void)set_bdi_attr(d->dir, "max_ratio", (uint64_t)cfg->max_ratio);
    if (cfg->min_ratio >= 0)
        (void)set_bdi_attr(d->dir, "min_ratio", (uint64_t)cfg->min_ratio);
    if (cfg->read_ahead_kb)
        read_ahead_later(cfg->mountpoint, d->dir, cfg->read_ahead_kb);
    if (!cfg->read_only) {
        follow_setup(d);
        /* an image mounted nearly full starts low; without the writeback
         * cache the cap never moves (mfs_dirty_follow_space) and stays as
         * set */
        if (!cfg->no_writeback_cache)
            follow(d, m->fs);
    }
}

uint64_t mfs_dirty_cap(const struct mmapfs_fuse *m)
{
    if (!__atomic_load_n(&m->dirty.on, __ATOMIC_ACQUIRE))
        return 0;
    return __atomic_load_n(&m->dirty.cap, __ATOMIC_RELAXED);
}
