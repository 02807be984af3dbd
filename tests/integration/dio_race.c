/*
 * dio_race.c — stale page cache after an asynchronous O_DIRECT write.
 *
 *   dio_race FILE [ITERATIONS [SECONDS [RANGE_KIB [aio|sync]]]]
 *
 * FILE is created (or reused) with RANGE_KIB of data at offset RANGE_KIB
 * and as much again after it, so that the direct writes never extend the
 * file (an extending direct write is synchronous in FUSE). Then, for each
 * iteration i:
 *   1. buffered pwrite of pattern A(i) over the range, fsync;
 *   2. a reader thread keeps pread()ing the range buffered (its own fd);
 *   3. io_submit of one O_DIRECT write of pattern B(i) over the range
 *      (4 KiB-aligned buffer), io_getevents until it completes (mode aio,
 *      the default), or one pwrite on the O_DIRECT fd (mode sync);
 *   4. a buffered pread of the range must return B(i) in every 4 KiB block.
 * Every 8-byte word of a pattern holds (iteration, kind, offset), so that a
 * mismatch says which write's data came back.
 *
 * Raw io_setup/io_submit/io_getevents system calls (<linux/aio_abi.h>), so
 * no libaio is needed. Stops after ITERATIONS (default 200) or SECONDS
 * (default 10), whichever comes first. Prints one line per stale iteration
 * (at most 10) and a summary; exits 0 if every read after a completed
 * direct write returned the new data, 1 if any was stale, 2 on an error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 4096

static const char *path;
static size_t range;                 /* bytes, a multiple of BLOCK */
static off_t base;                   /* offset of the range */
static atomic_int stop_reader;
static atomic_long reader_reads;
static int sync_mode;                /* pwrite instead of io_submit */

static void die(const char *what)
{
    fprintf(stderr, "dio_race: %s: %s: %s\n", path, what, strerror(errno));
    exit(2);
}

/* Pattern word: iteration in the high half, kind ('A'/'B') and the block
 * index below it. */
static uint64_t word(unsigned iter, int kind, size_t off)
{
    return ((uint64_t)iter << 32) | ((uint64_t)kind << 24) | (off / BLOCK);
}

static void fill(void *buf, unsigned iter, int kind)
{
    uint64_t *w = buf;
    size_t i;

    for (i = 0; i < range / sizeof(*w); i++)
        w[i] = word(iter, kind, i * sizeof(*w));
}

static void *reader(void *arg)
{
    int fd = *(int *)arg;
    char *buf = malloc(range);

    if (!buf)
        die("malloc");
    while (!atomic_load(&stop_reader)) {
        if (pread(fd, buf, range, base) < 0)
            die("reader pread");
        atomic_fetch_add(&reader_reads, 1);
    }
    free(buf);
    return NULL;
}

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One O_DIRECT write of buf over the range through io_submit; waits for
 * its completion event. */
static void aio_write(aio_context_t ctx, int fd, void *buf)
{
    struct iocb cb, *cbs[1] = { &cb };
    struct io_event ev;
    long n;

    memset(&cb, 0, sizeof(cb));
    cb.aio_lio_opcode = IOCB_CMD_PWRITE;
    cb.aio_fildes = (uint32_t)fd;
    cb.aio_buf = (uint64_t)(uintptr_t)buf;
    cb.aio_nbytes = range;
    cb.aio_offset = base;
    if (syscall(SYS_io_submit, ctx, 1L, cbs) != 1)
        die("io_submit");
    do
        n = syscall(SYS_io_getevents, ctx, 1L, 1L, &ev, NULL);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        die("io_getevents");
    if (ev.res != (int64_t)range) {
        errno = ev.res < 0 ? (int)-ev.res : EIO;
        die("O_DIRECT write completion");
    }
}

int main(int argc, char **argv)
{
    unsigned iters = 200, i, stale = 0, done = 0;
    double secs = 10, start;
    int fd_direct, fd_buf, fd_read;
    aio_context_t ctx = 0;
    pthread_t thr;
    char *a, *b, *got;
    void *dbuf;

    if (argc < 2 || argc > 6) {
        fprintf(stderr, "usage: dio_race FILE [ITERATIONS [SECONDS [RANGE_KIB [aio|sync]]]]\n");
        return 2;
    }
    path = argv[1];
    if (argc > 2)
        iters = (unsigned)strtoul(argv[2], NULL, 10);
    if (argc > 3)
        secs = strtod(argv[3], NULL);
    range = argc > 4 ? strtoul(argv[4], NULL, 10) * 1024 : 64 * 1024;
    if (range == 0 || range % BLOCK) {
        fprintf(stderr, "dio_race: RANGE_KIB must be a positive multiple of 4\n");
        return 2;
    }
    base = (off_t)range;
    sync_mode = argc > 5 && strcmp(argv[5], "sync") == 0;

    fd_buf = open(path, O_RDWR | O_CREAT, 0644);
    if (fd_buf < 0)
        die("open");
    fd_direct = open(path, O_RDWR | O_DIRECT);
    if (fd_direct < 0)
        die("open O_DIRECT");
    fd_read = open(path, O_RDONLY);
    if (fd_read < 0)
        die("open for the reader");
    if (ftruncate(fd_buf, (off_t)(3 * range)) < 0)
        die("ftruncate");
    a = malloc(range);
    b = malloc(range);
    got = malloc(range);
    if (!a || !b || !got || posix_memalign(&dbuf, BLOCK, range))
        die("malloc");
    if (syscall(SYS_io_setup, 1L, &ctx) < 0)
        die("io_setup");

    if (pthread_create(&thr, NULL, reader, &fd_read))
        die("pthread_create");
    start = now();
    for (i = 1; i <= iters && now() - start < secs; i++) {
        size_t off;

        fill(a, i, 'A');
        if (pwrite(fd_buf, a, range, base) != (ssize_t)range)
            die("buffered pwrite");
        if (fsync(fd_buf) < 0)
            die("fsync");
        fill(dbuf, i, 'B');
        memcpy(b, dbuf, range);
        if (!sync_mode)
            aio_write(ctx, fd_direct, dbuf);
        else if (pwrite(fd_direct, dbuf, range, base) != (ssize_t)range)
            die("O_DIRECT pwrite");
        if (pread(fd_buf, got, range, base) != (ssize_t)range)
            die("buffered pread");
        done++;
        if (memcmp(got, b, range) == 0)
            continue;
        for (off = 0; off < range; off += BLOCK)
            if (memcmp(got + off, b + off, BLOCK))
                break;
        if (++stale <= 10) {
            uint64_t w;

            memcpy(&w, got + off, sizeof(w));
            printf("iteration %u: stale data at offset %lld: word %#llx "
                   "(iteration %u, kind %c), expected %#llx\n", i,
                   (long long)(base + (off_t)off), (unsigned long long)w,
                   (unsigned)(w >> 32), (int)((w >> 24) & 0xff),
                   (unsigned long long)word(i, 'B', off));
        }
    }
    atomic_store(&stop_reader, 1);
    pthread_join(thr, NULL);
    printf("%u iterations in %.1f s, %u stale after a completed O_DIRECT write, "
           "%ld concurrent buffered reads\n", done, now() - start, stale,
           atomic_load(&reader_reads));
    syscall(SYS_io_destroy, ctx);
    close(fd_direct);
    close(fd_buf);
    close(fd_read);
    free(a);
    free(b);
    free(got);
    free(dbuf);
    return stale ? 1 : 0;
}
