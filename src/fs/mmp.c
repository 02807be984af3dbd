/*
 * mmp.c — multi-mount protection: claiming the MMP block, the heartbeat
 * thread, the clean release. Contract in mmp.h; behaviour and its limits
 * in docs/ROBUSTNESS.md; format in docs/FORMAT.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "fs/mmp.h"
#include "util/crc32c.h"

/* After writing our sequence number over a CLEAN block (or over a holder
 * that stopped), wait this long and read it back: a mount racing with us
 * at the same moment has written its own by then. */
#define MMP_SETTLE_MS 250u

struct mmp {
    int fd;
    uint64_t off;                   /* byte offset of the block */
    uint32_t interval;              /* seconds */
    uint32_t seq;                   /* our last sequence number */
    struct mmapfs_disk_mmp *buf;    /* 4096-aligned: O_DIRECT */
    char path_tail[64];
    /* heartbeat thread */
    pthread_t thread;
    int thread_running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;                       /* mu */
    int lost;                       /* mu: the hook was (or is to be) called */
    void (*lost_fn)(void *);        /* mu */
    void *lost_ctx;
};

/* ---- the block ------------------------------------------------------------------ */

static uint32_t mmp_checksum(const struct mmapfs_disk_mmp *b)
{
    return mfs_crc32c(0, b, offsetof(struct mmapfs_disk_mmp, checksum));
}

int fs_mmp_block_valid(const struct mmapfs_disk_mmp *b)
{
    return b->magic == MMAPFS_MMP_MAGIC && b->checksum == mmp_checksum(b);
}

void fs_mmp_block_clean(struct mmapfs_disk_mmp *b, uint32_t interval)
{
    memset(b, 0, sizeof(*b));
    b->magic = MMAPFS_MMP_MAGIC;
    b->seq = MMAPFS_MMP_SEQ_CLEAN;
    b->time = (uint64_t)time(NULL);
    b->interval = interval;
    b->checksum = mmp_checksum(b);
}

void fs_mmp_describe(const struct mmapfs_disk_mmp *b, char *buf, size_t len)
{
    if (!fs_mmp_block_valid(b)) {
        snprintf(buf, len, "unknown holder (the MMP block is not valid)");
        return;
    }
    int64_t age = (int64_t)time(NULL) - (int64_t)b->time;
    snprintf(buf, len, "host %.64s, pid %" PRIu32 ", via %.64s, last update %" PRId64
             " s ago", b->nodename[0] ? b->nodename : "?", b->pid,
             b->device[0] ? b->device : "?", age);
}

/* Opens path for the MMP block: O_DIRECT where the host filesystem allows
 * it (tmpfs does not; there the page cache is the device). */
static int open_direct(const char *path, int write)
{
    int flags = (write ? O_RDWR | O_DSYNC : O_RDONLY) | O_CLOEXEC;
    int fd = open(path, flags | O_DIRECT);
    if (fd < 0 && errno == EINVAL)
        fd = open(path, flags);
    return fd < 0 ? -errno : fd;
}

static int read_block(int fd, uint64_t off, struct mmapfs_disk_mmp *b)
{
    ssize_t n = pread(fd, b, MMAPFS_BLOCK_SIZE, (off_t)off);
    if (n < 0)
        return -errno;
    return n == MMAPFS_BLOCK_SIZE ? 0 : -EIO;
}

static int write_block(struct mmp *m)
{
    m->buf->checksum = mmp_checksum(m->buf);
    ssize_t n = pwrite(m->fd, m->buf, MMAPFS_BLOCK_SIZE, (off_t)m->off);
    if (n < 0)
        return -errno;
    if (n != MMAPFS_BLOCK_SIZE)
        return -EIO;
    return fdatasync(m->fd) ? -errno : 0;   /* O_DSYNC did it; a no-op then */
}

/* Fills m->buf with our identity and seq, writes it. */
static int write_ours(struct mmp *m, uint32_t seq)
{
    struct utsname u;
    memset(m->buf, 0, sizeof(*m->buf));
    m->buf->magic = MMAPFS_MMP_MAGIC;
    m->buf->seq = seq;
    m->buf->time = (uint64_t)time(NULL);
    m->buf->pid = (uint32_t)getpid();
    m->buf->interval = m->interval;
    if (uname(&u) == 0)
        snprintf(m->buf->nodename, sizeof(m->buf->nodename), "%.63s", u.nodename);
    memcpy(m->buf->device, m->path_tail, sizeof(m->buf->device));
    m->seq = seq;
    return write_block(m);
}

static uint32_t new_seq(void)
{
    uint32_t r = 0;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
        r = (uint32_t)time(NULL) ^ ((uint32_t)getpid() << 16);
    return r % MMAPFS_MMP_SEQ_MAX + 1;
}

static uint32_t next_seq(uint32_t seq)
{
    return seq >= MMAPFS_MMP_SEQ_MAX ? 1 : seq + 1;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
}

/* Does the block name this host (its host name)? */
static int holder_on_this_host(const struct mmapfs_disk_mmp *b)
{
    struct utsname u;
    return uname(&u) == 0 && strncmp(b->nodename, u.nodename, sizeof(b->nodename)) == 0;
}

/* A live heartbeat of a process on this host that still runs. */
static int local_holder_alive(const struct mmapfs_disk_mmp *b)
{
    if (!holder_on_this_host(b))
        return 0;
    int64_t age = (int64_t)time(NULL) - (int64_t)b->time;
    if (age > 2 * (int64_t)b->interval + 2)
        return 0;           /* stale: the pid may have been reused */
    return b->pid && (kill((pid_t)b->pid, 0) == 0 || errno == EPERM);
}

/* The holder of an FSCK mark (fsck -y, mkfs, resize, trim: no heartbeat)
 * was a process on this host that has ended: a killed fsck, or a tool
 * that failed before it could write CLEAN. A pid that exists again (reused)
 * counts as alive: the safe side. */
static int local_fsck_holder_gone(const struct mmapfs_disk_mmp *b)
{
    return holder_on_this_host(b) && b->pid && kill((pid_t)b->pid, 0) != 0 &&
           errno == ESRCH;
}

/* ---- the heartbeat ------------------------------------------------------------------ */

/* The hook runs under mu, so that once fs_mmp_on_lost(m, NULL, NULL) has
 * returned it is not running and will not run. */
static void lose(struct mmp *m, const char *why)
{
    pthread_mutex_lock(&m->mu);
    if (!m->lost) {
        m->lost = 1;
        fprintf(stderr, "mmapfs: %s: multi-mount protection: %s: no further commits\n",
                m->path_tail, why);
        if (m->lost_fn)
            m->lost_fn(m->lost_ctx);
    }
    pthread_mutex_unlock(&m->mu);
}

static void *heartbeat(void *arg)
{
    struct mmp *m = arg;
    struct mmapfs_disk_mmp *seen = NULL;
    if (posix_memalign((void **)&seen, MMAPFS_BLOCK_SIZE, MMAPFS_BLOCK_SIZE)) {
        lose(m, "out of memory for the heartbeat");
        return NULL;
    }
    pthread_mutex_lock(&m->mu);
    while (!m->stop && !m->lost) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += m->interval;
        while (!m->stop && pthread_cond_timedwait(&m->cv, &m->mu, &until) != ETIMEDOUT)
            ;
        if (m->stop)
            break;
        pthread_mutex_unlock(&m->mu);
        int err = read_block(m->fd, m->off, seen);
        if (err) {
            lose(m, "cannot read the MMP block");
        } else if (!fs_mmp_block_valid(seen) || seen->seq != m->seq) {
            char who[256];
            fs_mmp_describe(seen, who, sizeof(who));
            char why[320];
            snprintf(why, sizeof(why), "the image was taken by another writer (%s)", who);
            lose(m, why);
        } else if ((err = write_ours(m, next_seq(m->seq))) != 0) {
            lose(m, "cannot write the MMP block");
        }
        pthread_mutex_lock(&m->mu);
    }
    pthread_mutex_unlock(&m->mu);
    free(seen);
    return NULL;
}

/* ---- claim and release ----------------------------------------------------------------- */

static void mmp_free(struct mmp *m)
{
    if (!m)
        return;
    if (m->fd >= 0)
        close(m->fd);
    free(m->buf);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    free(m);
}

static int refuse(const char *prog, const char *path, FILE *err, const char *what,
                  const struct mmapfs_disk_mmp *b)
{
    char who[256];
    fs_mmp_describe(b, who, sizeof(who));
    if (err)
        fprintf(err, "%s: %s: %s (multi-mount protection): %s\n", prog, path, what, who);
    return -EBUSY;
}

/* Writes seq over the block, waits MMP_SETTLE_MS and checks it is still
 * ours. 0, -EBUSY (someone else wrote meanwhile: message printed) or
 * -errno. */
static int take(struct mmp *m, uint32_t seq, const char *prog, const char *path, FILE *err)
{
    int e = write_ours(m, seq);
    if (e)
        return e;
    sleep_ms(MMP_SETTLE_MS);
    struct mmapfs_disk_mmp *b = m->buf;
    e = read_block(m->fd, m->off, b);
    if (e)
        return e;
    if (!fs_mmp_block_valid(b) || b->seq != seq)
        return refuse(prog, path, err, "another mount claimed it at the same time", b);
    return 0;
}

int fs_mmp_claim(struct mmp **out, const char *path, const struct mmapfs_disk_superblock *sb,
              enum mmp_mode mode, const char *prog, FILE *err)
{
    *out = NULL;
    struct mmp *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->fd = -1;
    pthread_mutex_init(&m->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->cv, &ca);
    pthread_condattr_destroy(&ca);
    m->off = sb->mmp_block * MMAPFS_BLOCK_SIZE;
    m->interval = sb->mmp_interval ? sb->mmp_interval : MMAPFS_MMP_INTERVAL_DEFAULT;
    size_t pl = strlen(path);
    snprintf(m->path_tail, sizeof(m->path_tail), "%s", pl > 63 ? path + pl - 63 : path);
    int e = -ENOMEM;
    if (posix_memalign((void **)&m->buf, MMAPFS_BLOCK_SIZE, MMAPFS_BLOCK_SIZE))
        goto fail;
    e = m->fd = open_direct(path, 1);
    if (e < 0)
        goto fail;
    struct mmapfs_disk_mmp *b = m->buf;
    e = read_block(m->fd, m->off, b);
    if (e)
        goto fail;
    int fsck_gone = 0;
    if (fs_mmp_block_valid(b) && b->seq == MMAPFS_MMP_SEQ_FSCK) {
        /* An fsck writes no heartbeat: only a local holder that has ended
         * can be told from one still at work (elsewhere, or here). */
        if (!local_fsck_holder_gone(b)) {
            e = refuse(prog, path, err, "being repaired by fsck.mmapfs", b);
            goto fail;
        }
        fsck_gone = 1;
        if (err)
            fprintf(err, "%s: %s: multi-mount protection: the fsck.mmapfs, mkfs.mmapfs "
                    "or resize that marked it (pid %" PRIu32 " on this host) has ended "
                    "without releasing it; taking it over\n", prog, path, b->pid);
    }
    if (!fsck_gone && (!fs_mmp_block_valid(b) || b->seq != MMAPFS_MMP_SEQ_CLEAN)) {
        if (fs_mmp_block_valid(b) && local_holder_alive(b)) {
            e = refuse(prog, path, err, "in use", b);
            goto fail;
        }
        /* Someone elsewhere, or a holder that died: watch the block. */
        uint32_t seen_seq = b->seq, seen_sum = b->checksum;
        uint32_t interval = fs_mmp_block_valid(b) && b->interval > m->interval
                                ? b->interval : m->interval;
        if (interval > MMAPFS_MMP_INTERVAL_MAX)   /* from the image: 2 * it may wrap */
            interval = MMAPFS_MMP_INTERVAL_MAX;
        uint32_t wait_s = 2 * interval + 1;
        if (err)
            fprintf(err, "%s: %s: multi-mount protection: the image was not released "
                    "cleanly; watching its heartbeat for %" PRIu32 " s\n", prog, path, wait_s);
        sleep_ms(wait_s * 1000u);
        e = read_block(m->fd, m->off, b);
        if (e)
            goto fail;
        if (b->seq != seen_seq || b->checksum != seen_sum) {
            e = refuse(prog, path, err, "in use", b);
            goto fail;
        }
    }
    e = take(m, mode == MMP_FSCK ? MMAPFS_MMP_SEQ_FSCK : new_seq(), prog, path, err);
    if (e)
        goto fail;
    if (mode == MMP_MOUNT) {
        e = -pthread_create(&m->thread, NULL, heartbeat, m);
        if (e)
            goto fail;
        m->thread_running = 1;
    }
    *out = m;
    return 0;
fail:
    mmp_free(m);
    return e;
}

void fs_mmp_on_lost(struct mmp *m, void (*fn)(void *ctx), void *ctx)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->lost_fn = fn;
    m->lost_ctx = ctx;
    if (m->lost && fn)
        fn(ctx);
    pthread_mutex_unlock(&m->mu);
}

int fs_mmp_release(struct mmp *m, int clean)
{
    if (!m)
        return 0;
    if (m->thread_running) {
        pthread_mutex_lock(&m->mu);
        m->stop = 1;
        pthread_cond_broadcast(&m->cv);
        pthread_mutex_unlock(&m->mu);
        pthread_join(m->thread, NULL);
    }
    int e = 0;
    if (clean && !m->lost) {
        e = read_block(m->fd, m->off, m->buf);
        if (!e && fs_mmp_block_valid(m->buf) && m->buf->seq == m->seq) {
            m->buf->seq = MMAPFS_MMP_SEQ_CLEAN;
            m->buf->time = (uint64_t)time(NULL);
            e = write_block(m);
        }
    }
    mmp_free(m);
    return e;
}

int fs_mmp_peek(const char *path, uint64_t blk, struct mmapfs_disk_mmp *out)
{
    struct mmapfs_disk_mmp *b = NULL;
    if (posix_memalign((void **)&b, MMAPFS_BLOCK_SIZE, MMAPFS_BLOCK_SIZE))
        return -ENOMEM;
    int fd = open_direct(path, 0);
    int e = fd < 0 ? fd : read_block(fd, blk * MMAPFS_BLOCK_SIZE, b);
    if (fd >= 0)
        close(fd);
    if (!e)
        memcpy(out, b, sizeof(*out));
    free(b);
    return e;
}
