/*
 * mmio.c — core of libmmio: open/close, size detection, bounds checks,
 * reads, writes, raw pointers and metrics. The contract is in
 * include/mmapfs/mmio.h and docs/ENGINE.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io/mmio_i.h"

/* open(2) flags a caller may not pass: the engine owns access mode,
 * creation and truncation. */
#define MMIO_FORBIDDEN_FLAGS \
    (O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_APPEND | O_DIRECTORY | O_PATH)

/* Monotonic clock in nanoseconds. */
uint64_t mmio_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Nonzero if [off, off+len) lies within [0, io->size); overflow-safe. */
int mmio_range_ok(const struct mmio *io, uint64_t off, size_t len)
{
    return off <= io->size && (uint64_t)len <= io->size - off;
}

/* Relaxed atomic add to one metrics counter. */
void mmio_metric_add(uint64_t *counter, uint64_t v)
{
    __atomic_fetch_add(counter, v, __ATOMIC_RELAXED);
}

/* Opens path read-write without truncating, creating it (mode 0644,
 * O_EXCL so we know we did) if missing. *created tells the caller to
 * remove the file again should mmio_open fail. Returns fd or -errno. */
static int open_or_create(const char *path, int flags, int *created)
{
    *created = 0;
    for (;;) {
        int fd = open(path, O_RDWR | O_CLOEXEC | flags);
        if (fd >= 0 || errno != ENOENT)
            return fd >= 0 ? fd : -errno;
        fd = open(path, O_RDWR | O_CLOEXEC | O_CREAT | O_EXCL | flags, 0644);
        if (fd >= 0) {
            *created = 1;
            return fd;
        }
        if (errno != EEXIST)    /* EEXIST: lost a race, open the winner's */
            return -errno;
    }
}

/* Works out the usable size from the request and the file, extending a
 * regular file sparsely when asked for more than it has (*extend_to set,
 * done later by the caller). 0 or -errno. */
static int decide_size(int fd, uint64_t want, uint64_t *size,
                       uint64_t *extend_to, int *regular)
{
    struct stat st;
    *extend_to = 0;
    *regular = 0;
    if (fstat(fd, &st))
        return -errno;

    if (S_ISBLK(st.st_mode)) {
        uint64_t dev = 0;
        if (ioctl(fd, BLKGETSIZE64, &dev))
            return -errno;
        if (want > dev)
            return -ENOSPC;     /* a device cannot grow */
        *size = want ? want : dev;
    } else if (S_ISREG(st.st_mode)) {
        *regular = 1;
        uint64_t have = (uint64_t)st.st_size;
        *size = want ? want : have;
        if (want > have)
            *extend_to = want;
    } else {
        return -EINVAL;         /* no way to size a char device, fifo, dir */
    }
    if (*size == 0)
        return -EINVAL;         /* empty file and no size given */
    if (*size > (uint64_t)INT64_MAX || *size > (uint64_t)SIZE_MAX)
        return -EFBIG;
    return 0;
}

/* Frees everything an engine holds; used by mmio_close and on the error
 * path of mmio_open. Does not sync. */
static void destroy(struct mmio *io)
{
    mmio_loop_stop(io);
    if (io->map)
        munmap(io->map, (size_t)io->size);
    if (io->fd >= 0)
        close(io->fd);
    pthread_mutex_destroy(&io->flush_mu);
    free(io);
}

int mmio_open(struct mmio **out, const char *path, uint64_t size, int flags,
              const struct mmio_config *cfg)
{
    struct mmio *io = NULL;
    uint64_t extend_to = 0;
    int created = 0;
    int err = 0;

    if (!out || !path || (flags & MMIO_FORBIDDEN_FLAGS))
        return -EINVAL;
    *out = NULL;
    if (cfg && cfg->backend != MMIO_BACKEND_MMAP &&
        cfg->backend != MMIO_BACKEND_PREAD)
        return -EINVAL;

    io = calloc(1, sizeof(*io));
    if (!io)
        return -ENOMEM;
    io->fd = -1;
    io->changes = 1;    /* the page cache may hold dirty pages of an earlier
                         * writer: the first sync is never skipped */
    io->backend = cfg ? cfg->backend : MMIO_BACKEND_MMAP;
    io->sync_delay_us = cfg ? cfg->sync_delay_us : MMIO_DEFAULT_SYNC_DELAY_US;
    io->direct = (flags & O_DIRECT) != 0;
    io->read_only = cfg && cfg->read_only;
    pthread_mutex_init(&io->flush_mu, NULL);

    if (io->read_only) {
        err = open(path, O_RDONLY | O_CLOEXEC | flags);
        if (err < 0)
            err = -errno;
    } else {
        err = open_or_create(path, flags, &created);
    }
    if (err < 0)
        goto out;
    io->fd = err;
    err = decide_size(io->fd, size, &io->size, &extend_to, &io->regular);
    if (!err && extend_to && io->read_only)
        err = -EROFS;           /* a read-only engine extends nothing */
    if (err)
        goto out;

    if (io->backend == MMIO_BACKEND_MMAP) {
        err = mmio_sigbus_install();
        if (err)
            goto out;
        void *p = mmap(NULL, (size_t)io->size,
                       io->read_only ? PROT_READ : PROT_READ | PROT_WRITE,
                       MAP_SHARED, io->fd, 0);
        if (p == MAP_FAILED) {
            err = -errno;
            goto out;
        }
        io->map = p;
    }

    /* Sparse extension: ftruncate only ever grows here. Mapping beyond
     * EOF first is fine; nothing touches the pages until we return. */
    if (extend_to && ftruncate(io->fd, (off_t)extend_to)) {
        err = -errno;
        goto out;
    }

    err = mmio_loop_start(io);
    if (err)
        goto out;
    *out = io;
    const struct mmio_observer *obs = mmio_observer_get();
    if (obs && obs->opened)
        obs->opened(obs->ctx, io);
    return 0;

out:
    destroy(io);
    if (created)
        unlink(path);
    return err;
}

void mmio_close(struct mmio *io)
{
    if (!io)
        return;
    mmio_loop_stop(io);     /* serves every waiting mmio_sync_delayed first */
    (void)mmio_flush(io);   /* nobody left to tell; data is as durable as it gets */
    const struct mmio_observer *obs = mmio_observer_get();
    if (obs && obs->closing)
        obs->closing(obs->ctx, io);
    destroy(io);
}

const char *mmio_open_strerror(int err)
{
    if (err == -ENOMEM)
        return "cannot map the image: it is mapped whole, and this machine's address "
               "space or memory limits (ulimit -v) refuse its size";
    if (err == -EFBIG)
        return "the image is larger than a file may be here (the host filesystem's "
               "largest file, or ulimit -f)";
    return strerror(-err);
}

uint64_t mmio_size(const struct mmio *io)
{
    return io ? io->size : 0;
}

/* A write with the mmap backend. Stores go into the same page cache as
 * the mapping, through pwrite(2) rather than memcpy into the mapping: the
 * first store to a page of the mapping costs a page fault and a
 * page_mkwrite call into the host filesystem for every 4 KiB (measured 20x
 * slower for large sequential writes into a freshly preallocated image),
 * while pwrite copies into the page cache directly. Linux keeps the two
 * views coherent: readers of the mapping see the data at once, and
 * mmio_sync's fdatasync makes it durable. A disk-full or I/O error
 * comes back as an errno instead of a SIGBUS. A regular file truncated
 * under the engine is refused with -EIO (pwrite would silently extend it).
 * With O_DIRECT the page cache is bypassed, so the copy goes through the
 * mapping instead. */
static int mmap_backend_write(struct mmio *io, uint64_t off, const void *buf, size_t len)
{
    if (io->direct)
        return mmio_guarded_copy(io->map + off, buf, len, io->map, io->size);
    if (io->regular) {
        /* statx asking for the size only, not fstat: a stat that reports
         * ctime marks the image "ctime queried" on a multigrain host
         * filesystem (ext4, xfs, tmpfs on Linux 6.13+), so the next write
         * of the image takes a fine-grained timestamp and advances the
         * floor of the kernel's coarse clock. FUSE inode times come from
         * that clock: each write(2) on mmapfs would then see a new time,
         * dirty the inode, and cost a SETATTR round trip at the next
         * fsync (measured: 16,385 SETATTRs for 16,384 write+fsync with
         * fstat, 9,337 without, on a busy machine; docs/BENCH.md). */
        struct statx stx;
        if (statx(io->fd, "", AT_EMPTY_PATH, STATX_SIZE, &stx) != 0)
            return -errno;
        if ((uint64_t)stx.stx_size < off + len)
            return -EIO;
    }
    return mmio_pio_write(io, off, buf, len);
}

enum xfer { XFER_READ, XFER_READ_ONCE, XFER_WRITE, XFER_WRITE_LAZY };

/* The common path of mmio_read_at, mmio_read_once and mmio_write_at:
 * argument and range checks, the copy (guarded memcpy or pread/pwrite),
 * metrics. */
static int transfer(struct mmio *io, uint64_t off, void *buf, size_t len,
                    enum xfer how)
{
    const int write = how == XFER_WRITE || how == XFER_WRITE_LAZY;
    uint64_t t0;
    int err;

    if (!io || (len && !buf))
        return -EINVAL;
    if (!mmio_range_ok(io, off, len))
        return -ERANGE;
    if (write && io->read_only)
        return -EROFS;
    if (write && __atomic_load_n(&io->failed, __ATOMIC_ACQUIRE))
        return -EIO;    /* sticky sync failure */
    if (len == 0)
        return 0;

    t0 = mmio_now_ns();
    if (io->map && write)
        err = mmap_backend_write(io, off, buf, len);
    else if (io->map && (how == XFER_READ || io->direct)) {
        /* With O_DIRECT, writes went through the mapping (above), and a
         * pread would bypass the page cache that holds them. */
        err = mmio_guarded_copy(buf, io->map + off, len, io->map, io->size);
        /* A read fault on a hole of a tmpfs file allocates a page, which
         * fails on a full tmpfs; pread of a hole allocates nothing. A
         * read-only engine must read on a full disk: it tries pread. */
        if (err == -EIO && io->read_only)
            err = mmio_pio_read(io, off, buf, len);
    } else if (write)
        err = mmio_pio_write(io, off, buf, len);
    else
        err = mmio_pio_read(io, off, buf, len);
    if (how == XFER_WRITE)
        mmio_note_change(io);   /* also after a failed write: a part of it
                                 * may be in the page cache */
    if (err)
        return err;

    uint64_t us = (mmio_now_ns() - t0) / 1000;
    if (write) {
        const struct mmio_observer *obs = mmio_observer_get();
        if (obs && obs->wrote)
            obs->wrote(obs->ctx, io, off, len);
    }
    mmio_metric_add(write ? &io->m.writes : &io->m.reads, 1);
    mmio_metric_add(write ? &io->m.write_bytes : &io->m.read_bytes, len);
    mmio_metric_add(write ? &io->m.write_us : &io->m.read_us, us);
    return 0;
}

int mmio_read_at(struct mmio *io, uint64_t off, void *buf, size_t len)
{
    return transfer(io, off, buf, len, XFER_READ);
}

int mmio_read_once(struct mmio *io, uint64_t off, void *buf, size_t len)
{
    return transfer(io, off, buf, len, XFER_READ_ONCE);
}

int mmio_write_at(struct mmio *io, uint64_t off, const void *buf, size_t len)
{
    return transfer(io, off, (void *)buf, len, XFER_WRITE);   /* only read from */
}

int mmio_write_lazy(struct mmio *io, uint64_t off, const void *buf, size_t len)
{
    return transfer(io, off, (void *)buf, len, XFER_WRITE_LAZY);
}

const void *mmio_ptr(struct mmio *io, uint64_t off)
{
    if (!io || !io->map || off >= io->size)
        return NULL;
    return io->map + off;
}

void *mmio_mut_ptr(struct mmio *io, uint64_t off)
{
    if (io && io->read_only)
        return NULL;        /* the mapping is PROT_READ */
    void *p = (void *)mmio_ptr(io, off);
    if (p)
        __atomic_store_n(&io->raw_writer, 1, __ATOMIC_SEQ_CST);
    return p;
}

void mmio_note_change(struct mmio *io)
{
    __atomic_add_fetch(&io->changes, 1, __ATOMIC_SEQ_CST);
}

int mmio_unsynced(struct mmio *io)
{
    if (!io || io->read_only)
        return 0;
    return __atomic_load_n(&io->raw_writer, __ATOMIC_SEQ_CST) ||
           __atomic_load_n(&io->changes, __ATOMIC_SEQ_CST) !=
           __atomic_load_n(&io->synced, __ATOMIC_SEQ_CST);
}

void mmio_get_metrics(const struct mmio *io, struct mmio_metrics *out)
{
    const struct mmio_metrics *m;
    if (!out)
        return;
    if (!io) {
        *out = (struct mmio_metrics){0};
        return;
    }
    m = &io->m;
#define LOAD(f) out->f = __atomic_load_n(&m->f, __ATOMIC_RELAXED)
    LOAD(sync_background_loops);
    LOAD(syncs);
    LOAD(sync_delayed);
    LOAD(sync_longest_delay_us);
    LOAD(sync_shortest_delay_us);
    LOAD(sync_us);
    LOAD(write_bytes);
    LOAD(writes);
    LOAD(write_us);
    LOAD(read_bytes);
    LOAD(reads);
    LOAD(read_us);
    LOAD(sync_company_waits);
    LOAD(sync_company_wait_us);
    LOAD(sync_company_joined);
    LOAD(discards);
    LOAD(discard_bytes);
    LOAD(discard_us);
#undef LOAD
}
