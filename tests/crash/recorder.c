/*
 * recorder.c — the crash recorder (see recorder.h and docs/CRASH.md).
 *
 * It keeps a private copy of the image as of the last completed barrier.
 * Just before each flush of the recorded engine (before_sync) it compares
 * every page of the image with that copy and logs the pages that differ,
 * with their contents at that instant, as barrier k. When the flush
 * returns successfully (after_sync) barrier k is complete: the logged
 * pages become part of the copy, and the completed count is published in
 * dir/synced before the flush returns to the filesystem, so a workload that
 * reads it after its fsync returned knows a barrier count at or after the
 * one that made its data durable.
 *
 * Why these are exactly the writes the kernel could have made: the image
 * is one MAP_SHARED mapping (or pwrite into the page cache); between two
 * flushes the kernel may write any dirty page back at any moment, in any
 * order, whole. The flush then writes all that is still dirty. So at a
 * crash between flush k and flush k+1, each page holds either its content
 * as of barrier k or a later one; the pages that differ at flush k+1 are
 * precisely the pages that can have changed. (A page rewritten several
 * times between two flushes is logged in its last version only: the
 * intermediate versions are not replayed. docs/CRASH.md.)
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io/mmio_i.h"
#include "recorder.h"

/* A growable list of (page index, page content). */
struct page_list {
    uint64_t *idx;
    unsigned char *data;
    size_t n, cap;
};

struct recorder {
    pthread_mutex_t mu;
    char dir[PATH_MAX - 64];
    struct mmio *io;            /* the recorded engine; NULL before open */
    uint64_t size, npages;
    unsigned char *copy;        /* image as of the last completed barrier */
    int log_fd;
    int broken;                 /* a log write failed: the record is useless */
    uint64_t started, completed;
    uint64_t *pend_idx;         /* pages of the barrier in flight */
    unsigned char *pend_data;
    size_t pend_n, pend_cap;
    struct page_list vers;      /* page versions after each engine write
                                 * since the last barrier began */
    uint64_t *last_ver;         /* per page: 1 + its latest entry in vers, or 0 */
};

static struct recorder rec = { .mu = PTHREAD_MUTEX_INITIALIZER, .log_fd = -1 };

/* ---- small helpers ---------------------------------------------------------- */

/* Writes all of buf to fd (at the current offset); 0 or -errno. */
static int write_all(int fd, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads len bytes of the image at off into buf: from the mapping, or with
 * pread for the PREAD backend (the page cache: what writeback would see). */
static int image_read(struct mmio *io, uint64_t off, void *buf, size_t len)
{
    if (io->map) {
        memcpy(buf, io->map + off, len);
        return 0;
    }
    unsigned char *p = buf;
    while (len) {
        ssize_t n = pread(io->fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

/* Marks the record unusable: a file "broken" in the record directory
 * with the reason, which the checker refuses to go past. */
static void mark_broken(const char *what, int err)
{
    char path[PATH_MAX];
    FILE *f;

    if (rec.broken)
        return;
    rec.broken = 1;
    fprintf(stderr, "mmapfs-record: %s: %s; the record is broken\n", what, strerror(-err));
    snprintf(path, sizeof(path), "%s/broken", rec.dir);
    f = fopen(path, "w");
    if (f) {
        fprintf(f, "%s: %s\n", what, strerror(-err));
        fclose(f);
    }
}

/* Publishes the completed-barrier count in dir/synced (write + rename, so
 * a reader never sees a partial number) and appends "k monotonic-ns" to
 * dir/times (CLOCK_MONOTONIC: the workloads' time.monotonic()). */
static void publish_count(void)
{
    char tmp[PATH_MAX], path[PATH_MAX], text[64];
    struct timespec ts;
    int fd, n, err;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(path, sizeof(path), "%s/times", rec.dir);
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        mark_broken("times", -errno);
        return;
    }
    n = snprintf(text, sizeof(text), "%llu %llu\n", (unsigned long long)rec.completed,
                 (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec);
    err = write_all(fd, text, (size_t)n);
    close(fd);
    if (err) {
        mark_broken("times", err);
        return;
    }

    snprintf(tmp, sizeof(tmp), "%s/synced.tmp", rec.dir);
    snprintf(path, sizeof(path), "%s/synced", rec.dir);
    n = snprintf(text, sizeof(text), "%llu\n", (unsigned long long)rec.completed);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        mark_broken("synced.tmp", -errno);
        return;
    }
    err = write_all(fd, text, (size_t)n);
    close(fd);
    if (!err && rename(tmp, path))
        err = -errno;
    if (err)
        mark_broken("synced", err);
}

/* Appends page idx (content p) to l. 0 or -ENOMEM. */
static int list_add(struct page_list *l, uint64_t idx, const unsigned char *p)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        uint64_t *ni = realloc(l->idx, cap * sizeof(*ni));
        if (!ni)
            return -ENOMEM;
        l->idx = ni;
        unsigned char *nd = realloc(l->data, cap * CRASH_PAGE);
        if (!nd)
            return -ENOMEM;
        l->data = nd;
        l->cap = cap;
    }
    l->idx[l->n] = idx;
    memcpy(l->data + l->n * CRASH_PAGE, p, CRASH_PAGE);
    l->n++;
    return 0;
}

/* Appends a record tag/k with the pages of l (n x index, n x page). */
static int log_pages(const char *tag, uint64_t k, const struct page_list *l)
{
    unsigned char hdr[24];
    uint64_t v;
    int err;

    memcpy(hdr, tag, 4);
    memset(hdr + 4, 0, 4);
    v = htole64(k);
    memcpy(hdr + 8, &v, 8);
    v = htole64(l->n);
    memcpy(hdr + 16, &v, 8);
    err = write_all(rec.log_fd, hdr, sizeof(hdr));
    for (size_t i = 0; !err && i < l->n; i++) {
        v = htole64(l->idx[i]);
        err = write_all(rec.log_fd, &v, 8);
    }
    if (!err && l->n)
        err = write_all(rec.log_fd, l->data, l->n * CRASH_PAGE);
    return err;
}

/* ---- barrier 0: the image at open ------------------------------------------------ */

/* Copies the whole image into rec.copy and writes it, sparsely (all-zero
 * pages skipped), to dir/base.img. 0 or -errno. */
static int save_base(struct mmio *io)
{
    static const unsigned char zero[CRASH_PAGE];
    char path[PATH_MAX];
    int fd, err = 0;

    for (uint64_t off = 0; off < rec.size; off += CRASH_PAGE) {
        err = image_read(io, off, rec.copy + off, CRASH_PAGE);
        if (err)
            return err;
    }
    snprintf(path, sizeof(path), "%s/base.img", rec.dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, (off_t)rec.size))
        err = -errno;
    for (uint64_t off = 0; !err && off < rec.size; off += CRASH_PAGE) {
        if (!memcmp(rec.copy + off, zero, CRASH_PAGE))
            continue;
        if (pwrite(fd, rec.copy + off, CRASH_PAGE, (off_t)off) != CRASH_PAGE)
            err = -EIO;
    }
    if (close(fd) && !err)
        err = -errno;
    return err;
}

/* Opens dir/barriers.log and writes its header. 0 or -errno. */
static int open_log(void)
{
    char path[PATH_MAX];
    unsigned char hdr[24];
    uint64_t v;

    snprintf(path, sizeof(path), "%s/barriers.log", rec.dir);
    rec.log_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (rec.log_fd < 0)
        return -errno;
    memcpy(hdr, CRASH_LOG_MAGIC, 8);
    v = htole64(CRASH_PAGE);
    memcpy(hdr + 8, &v, 8);
    v = htole64(rec.size);
    memcpy(hdr + 16, &v, 8);
    return write_all(rec.log_fd, hdr, sizeof(hdr));
}

/* Observer: an engine was opened. The first one is recorded. */
static void on_opened(void *ctx, struct mmio *io)
{
    int err;
    (void)ctx;

    pthread_mutex_lock(&rec.mu);
    if (rec.io)
        goto out;               /* only the first engine is recorded */
    rec.io = io;
    rec.size = io->size - io->size % CRASH_PAGE;
    rec.npages = rec.size / CRASH_PAGE;
    rec.copy = malloc(rec.size ? rec.size : 1);
    rec.last_ver = calloc(rec.npages ? rec.npages : 1, sizeof(*rec.last_ver));
    if (!rec.copy || !rec.last_ver) {
        mark_broken("image copy", -ENOMEM);
        goto out;
    }
    err = save_base(io);
    if (err) {
        mark_broken("base.img", err);
        goto out;
    }
    err = open_log();
    if (err) {
        mark_broken("barriers.log", err);
        goto out;
    }
    publish_count();
out:
    pthread_mutex_unlock(&rec.mu);
}

/* ---- barriers -------------------------------------------------------------------- */

/* Appends page idx (its content at p) to the pending barrier. 0 or -ENOMEM. */
static int pend_add(uint64_t idx, const unsigned char *p)
{
    if (rec.pend_n == rec.pend_cap) {
        size_t cap = rec.pend_cap ? rec.pend_cap * 2 : 256;
        uint64_t *ni = realloc(rec.pend_idx, cap * sizeof(*ni));
        if (!ni)
            return -ENOMEM;
        rec.pend_idx = ni;
        unsigned char *nd = realloc(rec.pend_data, cap * CRASH_PAGE);
        if (!nd)
            return -ENOMEM;
        rec.pend_data = nd;
        rec.pend_cap = cap;
    }
    rec.pend_idx[rec.pend_n] = idx;
    memcpy(rec.pend_data + rec.pend_n * CRASH_PAGE, p, CRASH_PAGE);
    rec.pend_n++;
    return 0;
}

/* Writes the pending barrier k to the log. 0 or -errno. */
static int log_barrier(uint64_t k)
{
    unsigned char hdr[24];
    uint64_t v;
    int err;

    memcpy(hdr, "BARR", 4);
    memset(hdr + 4, 0, 4);
    v = htole64(k);
    memcpy(hdr + 8, &v, 8);
    v = htole64(rec.pend_n);
    memcpy(hdr + 16, &v, 8);
    err = write_all(rec.log_fd, hdr, sizeof(hdr));
    for (size_t i = 0; !err && i < rec.pend_n; i++) {
        v = htole64(rec.pend_idx[i]);
        err = write_all(rec.log_fd, &v, 8);
    }
    if (!err && rec.pend_n)
        err = write_all(rec.log_fd, rec.pend_data, rec.pend_n * CRASH_PAGE);
    return err;
}

/* Logs "VERS" k: the intermediate versions of pages written since barrier
 * k-1 began, i.e. those equal neither to the page as of barrier k-1 (the
 * copy) nor to its content now (logged in barrier k, or unchanged); then
 * forgets them. Called right after the barrier's diff (rec.pend). */
static int log_versions(uint64_t k)
{
    struct page_list keep = {0};
    int err = 0;

    /* the page's final version: from the diff, else the copy */
    for (size_t i = 0; i < rec.pend_n; i++)
        rec.last_ver[rec.pend_idx[i]] = 0;
    uint64_t *final_pos = rec.last_ver;     /* reused: 1 + index in pend, or 0 */
    for (size_t i = 0; i < rec.vers.n; i++)
        final_pos[rec.vers.idx[i]] = 0;
    for (size_t i = 0; i < rec.pend_n; i++)
        final_pos[rec.pend_idx[i]] = i + 1;
    for (size_t i = 0; !err && i < rec.vers.n; i++) {
        uint64_t pg = rec.vers.idx[i];
        const unsigned char *v = rec.vers.data + i * CRASH_PAGE;
        const unsigned char *fin = final_pos[pg] ?
            rec.pend_data + (final_pos[pg] - 1) * CRASH_PAGE : rec.copy + pg * CRASH_PAGE;
        if (!memcmp(v, fin, CRASH_PAGE) || !memcmp(v, rec.copy + pg * CRASH_PAGE, CRASH_PAGE))
            continue;
        err = list_add(&keep, pg, v);
    }
    if (!err)
        err = log_pages("VERS", k, &keep);
    for (size_t i = 0; i < rec.pend_n; i++)
        final_pos[rec.pend_idx[i]] = 0;
    free(keep.idx);
    free(keep.data);
    rec.vers.n = 0;
    return err;
}

/* Observer: flush k is about to start. Logs every page that differs from
 * the copy, as it is right now. Never refuses the flush. */
static int on_before_sync(void *ctx, struct mmio *io)
{
    unsigned char page[CRASH_PAGE];
    int err = 0;
    (void)ctx;

    pthread_mutex_lock(&rec.mu);
    if (io != rec.io || rec.broken)
        goto out;
    rec.pend_n = 0;
    for (uint64_t i = 0; !err && i < rec.npages; i++) {
        uint64_t off = i * CRASH_PAGE;
        const unsigned char *p = page;
        if (io->map)
            p = io->map + off;      /* a snapshot of a page being written may tear, as writeback can */
        else
            err = image_read(io, off, page, CRASH_PAGE);
        if (!err && memcmp(p, rec.copy + off, CRASH_PAGE))
            err = pend_add(i, p);
    }
    rec.started++;
    if (!err)
        err = log_barrier(rec.started);
    if (!err)
        err = log_versions(rec.started);
    if (err)
        mark_broken("barrier log", err);
out:
    pthread_mutex_unlock(&rec.mu);
    return 0;
}

/* Observer: an engine write of [off, off+len) completed. Remembers the
 * touched pages' contents as they are now: a page written several times
 * between two flushes can reach the disk in any of these versions. */
static void on_wrote(void *ctx, struct mmio *io, uint64_t off, size_t len)
{
    unsigned char page[CRASH_PAGE];
    int err = 0;
    (void)ctx;

    pthread_mutex_lock(&rec.mu);
    if (io != rec.io || rec.broken || !len)
        goto out;
    for (uint64_t i = off / CRASH_PAGE; !err && i <= (off + len - 1) / CRASH_PAGE &&
         i < rec.npages; i++) {
        const unsigned char *p = page;
        if (io->map)
            p = io->map + i * CRASH_PAGE;
        else
            err = image_read(io, i * CRASH_PAGE, page, CRASH_PAGE);
        if (err)
            break;
        if (rec.last_ver[i] &&
            !memcmp(rec.vers.data + (rec.last_ver[i] - 1) * CRASH_PAGE, p, CRASH_PAGE))
            continue;
        err = list_add(&rec.vers, i, p);
        if (!err)
            rec.last_ver[i] = rec.vers.n;
    }
    if (err)
        mark_broken("page versions", err);
out:
    pthread_mutex_unlock(&rec.mu);
}

/* Logs the pages that changed while flush k ran (other threads go on
 * writing the mapping during msync/fdatasync, and the kernel may write such
 * pages back before the flush completes): "DURG" k n idx... data..., like a
 * barrier record. rec.copy is the image as of barrier k (its snapshot);
 * it is not changed: these pages belong to barrier k+1 as well. */
static int log_during(struct mmio *io, uint64_t k)
{
    unsigned char page[CRASH_PAGE];
    unsigned char hdr[24];
    uint64_t v;
    int err = 0;

    rec.pend_n = 0;
    for (uint64_t i = 0; !err && i < rec.npages; i++) {
        uint64_t off = i * CRASH_PAGE;
        const unsigned char *p = page;
        if (io->map)
            p = io->map + off;
        else
            err = image_read(io, off, page, CRASH_PAGE);
        if (!err && memcmp(p, rec.copy + off, CRASH_PAGE))
            err = pend_add(i, p);
    }
    if (err)
        return err;
    memcpy(hdr, "DURG", 4);
    memset(hdr + 4, 0, 4);
    v = htole64(k);
    memcpy(hdr + 8, &v, 8);
    v = htole64(rec.pend_n);
    memcpy(hdr + 16, &v, 8);
    err = write_all(rec.log_fd, hdr, sizeof(hdr));
    for (size_t i = 0; !err && i < rec.pend_n; i++) {
        v = htole64(rec.pend_idx[i]);
        err = write_all(rec.log_fd, &v, 8);
    }
    if (!err && rec.pend_n)
        err = write_all(rec.log_fd, rec.pend_data, rec.pend_n * CRASH_PAGE);
    rec.pend_n = 0;
    return err;
}

/* Observer: flush k returned err. On success barrier k is complete. */
static void on_after_sync(void *ctx, struct mmio *io, int err)
{
    unsigned char rec_done[24];
    uint64_t v;
    int64_t e = err;
    (void)ctx;

    pthread_mutex_lock(&rec.mu);
    if (io != rec.io || rec.broken)
        goto out;
    memcpy(rec_done, "DONE", 4);
    memset(rec_done + 4, 0, 4);
    v = htole64(rec.started);
    memcpy(rec_done + 8, &v, 8);
    v = htole64((uint64_t)e);
    memcpy(rec_done + 16, &v, 8);
    int werr = write_all(rec.log_fd, rec_done, sizeof(rec_done));
    if (werr) {
        mark_broken("barrier log", werr);
        goto out;
    }
    if (err)
        goto out;   /* not durable; its pages stay different and are logged again */
    for (size_t i = 0; i < rec.pend_n; i++)
        memcpy(rec.copy + rec.pend_idx[i] * CRASH_PAGE,
               rec.pend_data + i * CRASH_PAGE, CRASH_PAGE);
    rec.pend_n = 0;
    werr = log_during(io, rec.started);
    if (werr) {
        mark_broken("barrier log", werr);
        goto out;
    }
    rec.completed = rec.started;
    publish_count();
out:
    pthread_mutex_unlock(&rec.mu);
}

/* Observer: the recorded engine is closing (after its final flush). */
static void on_closing(void *ctx, struct mmio *io)
{
    (void)ctx;
    pthread_mutex_lock(&rec.mu);
    if (io == rec.io) {
        if (rec.log_fd >= 0 && fsync(rec.log_fd))
            mark_broken("barrier log fsync", -errno);
        if (rec.log_fd >= 0)
            close(rec.log_fd);
        rec.log_fd = -1;
        rec.io = NULL;          /* nothing more is recorded */
    }
    pthread_mutex_unlock(&rec.mu);
}

static const struct mmio_observer observer = {
    .opened = on_opened,
    .before_sync = on_before_sync,
    .after_sync = on_after_sync,
    .closing = on_closing,
    .wrote = on_wrote,
};

int crash_recorder_install(const char *dir)
{
    struct stat st;

    if (strlen(dir) >= sizeof(rec.dir))
        return -ENAMETOOLONG;
    if (mkdir(dir, 0755) && errno != EEXIST)
        return -errno;
    if (stat(dir, &st))
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    strcpy(rec.dir, dir);
    mmio_set_observer(&observer);
    return 0;
}
