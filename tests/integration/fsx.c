/*
 * fsx.c — a file-system exerciser in the manner of xfstests' fsx: random
 * operations on ONE file, every read checked against an in-memory model
 * of the file's bytes and size.
 *
 *   fsx [-N ops] [-S seed] [-l maxlen] [-o maxop] [-s] [-W] [-R] [-Z]
 *       [-x MODEL] [-v] FILE
 *   fsx -c MODEL FILE
 *
 *   -N ops     operations to run (default 10000)
 *   -S seed    the random seed (default: from the clock); printed at the
 *              start, the same seed (and options) replays the same run
 *   -l maxlen  the file never grows past maxlen bytes (default 256 KiB)
 *   -o maxop   at most maxop bytes per read or write (default 64 KiB)
 *   -s         small-file mode: offsets, lengths and sizes biased to
 *              0..600 bytes and across the 4 KiB boundary (inline data in
 *              the inode and its move to a block); maxlen default 16 KiB
 *   -W / -R    no mmap writes / no mmap reads
 *   -Z         some reads and writes go through a second descriptor
 *              opened with O_DIRECT (4 KiB-aligned offsets, lengths, buffers)
 *   -x MODEL   at the end write the model's bytes to MODEL (to check the
 *              file again after a remount with -c)
 *   -v         print every operation as it runs
 *   -c MODEL   compare FILE with MODEL (size and bytes) and exit
 *
 * The file is created (truncated to 0) at the start. Operations, each
 * chosen with a weight: pwrite, pread (compared), truncate (shrink and
 * grow: the grown range reads as zeros), fallocate mode 0 (extends the
 * size), FALLOC_FL_KEEP_SIZE, PUNCH_HOLE|KEEP_SIZE, ZERO_RANGE with and
 * without KEEP_SIZE, COLLAPSE_RANGE and INSERT_RANGE (4 KiB-aligned;
 * collapse never reaches the end of the file, insert starts below it), mmap
 * write (MAP_SHARED, msync), mmap write past the end of the file in its
 * last page (those bytes must never become file data: a later truncate up
 * or write past the end shows zeros), mmap read (compared, also the zeros
 * after the end of the file in its last page; no page past that page is
 * ever touched), fsync, fdatasync, close and reopen, invalidate (fdatasync,
 * then POSIX_FADV_DONTNEED: the following reads come from the filesystem,
 * not from the kernel's page cache), lseek SEEK_DATA and SEEK_HOLE (a hole
 * may be reported as data, never a nonzero byte as a hole). Every 64
 * operations and at the end the whole file is read and compared and fstat's
 * size checked. A fallocate mode the filesystem refuses with EOPNOTSUPP (or
 * EINVAL for collapse and insert, whose alignment is the filesystem's block
 * size), mmap refused with ENODEV and O_DIRECT refused with EINVAL are
 * disabled for the rest of the run and listed in the summary.
 *
 * Every byte written by operation n at file offset p is
 * 1 + (n * 13 + p % 251) % 255: never zero, and a byte shifted by a
 * collapse or insert differs from the one it replaced.
 *
 * Exit status: 0 all passed (one summary line: operations per type),
 * 1 a mismatch or an unexpected error (the seed, the operation number, the
 * last 100 operations and the first differing offset with the expected
 * and actual bytes are printed), 2 a usage error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define ALIGN       4096u   /* collapse, insert and O_DIRECT alignment */
#define RING        100     /* operations kept for a failure report */
#define CHECK_EVERY 64      /* operations between full-file compares */

enum op {
    OP_WRITE, OP_READ, OP_TRUNCATE, OP_FALLOC, OP_FALLOC_KEEP, OP_PUNCH,
    OP_ZERO, OP_ZERO_KEEP, OP_COLLAPSE, OP_INSERT, OP_MAPWRITE, OP_MAPEOF, OP_MAPREAD,
    OP_FSYNC, OP_FDATASYNC, OP_REOPEN, OP_INVALIDATE, OP_SEEK_DATA, OP_SEEK_HOLE,
    OP_DWRITE, OP_DREAD, OP_COUNT
};

static const struct {
    const char *name;
    int weight;                 /* how often it is chosen (0: derived) */
} ops[OP_COUNT] = {
    [OP_WRITE] = { "pwrite", 20 },          [OP_READ] = { "pread", 18 },
    [OP_TRUNCATE] = { "truncate", 7 },      [OP_FALLOC] = { "falloc", 3 },
    [OP_FALLOC_KEEP] = { "falloc_keep", 3 }, [OP_PUNCH] = { "punch", 4 },
    [OP_ZERO] = { "zero", 3 },              [OP_ZERO_KEEP] = { "zero_keep", 3 },
    [OP_COLLAPSE] = { "collapse", 3 },      [OP_INSERT] = { "insert", 3 },
    [OP_MAPWRITE] = { "mapwrite", 8 },      [OP_MAPREAD] = { "mapread", 8 },
    [OP_MAPEOF] = { "mapwrite_eof", 2 },
    [OP_FSYNC] = { "fsync", 2 },            [OP_FDATASYNC] = { "fdatasync", 2 },
    [OP_REOPEN] = { "reopen", 2 },          [OP_INVALIDATE] = { "invalidate", 2 },
    [OP_SEEK_DATA] = { "seek_data", 3 },    [OP_SEEK_HOLE] = { "seek_hole", 3 },
    /* -Z turns a quarter of the pwrites and preads into these */
    [OP_DWRITE] = { "dio_write", 0 },       [OP_DREAD] = { "dio_read", 0 },
};

struct logent {
    unsigned long n;
    enum op op;
    uint64_t off, len;
    uint64_t size_before, size_after;
    int completed;
};

static const char *fname;
static int fd = -1, dfd = -1;
static uint8_t *model;          /* maxlen bytes; zero past model_size */
static uint64_t model_size;
static uint64_t maxlen = 256 * 1024, maxop = 64 * 1024;
static unsigned long num_ops = 10000, opnum;
static uint64_t seed;
static int comparing;              /* -c: no operations, no log */
static int small_mode, no_mapwrite, no_mapread, use_direct, verbose;
static int disabled[OP_COUNT];
static unsigned long done[OP_COUNT];
static struct logent ring[RING];
static unsigned long logged;
static uint8_t *buf, *dbuf;     /* dbuf: ALIGN-aligned, for O_DIRECT */
static long page;

/* ==== random numbers (splitmix64: the same seed gives the same run) ======== */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A number in [lo, hi] (hi >= lo). */
static uint64_t rnd_range(uint64_t lo, uint64_t hi)
{
    return lo + rnd() % (hi - lo + 1);
}

/* ==== reporting ============================================================= */

/* Records operation OP on [off, off+len) in the ring before it runs. */
static void begin_op(enum op op, uint64_t off, uint64_t len)
{
    struct logent *e = &ring[logged++ % RING];
    *e = (struct logent){ opnum, op, off, len, model_size, 0, 0 };
}

/* The operation begun last completed: records the size after it. */
static void end_op(void)
{
    struct logent *e = &ring[(logged - 1) % RING];
    e->size_after = model_size;
    e->completed = 1;
    done[e->op]++;
    if (verbose)
        printf("%lu %s 0x%" PRIx64 " +0x%" PRIx64 " size 0x%" PRIx64 " -> 0x%" PRIx64 "\n",
               e->n, ops[e->op].name, e->off, e->len, e->size_before, e->size_after);
}

/* The operation begun last was refused and disabled: forgets it. */
static void drop_op(void)
{
    logged--;
}

static void dump_log(void)
{
    unsigned long first = logged > RING ? logged - RING : 0;
    fprintf(stderr, "last %lu operations (number op offset +length size before -> after):\n",
            logged - first);
    for (unsigned long i = first; i < logged; i++) {
        const struct logent *e = &ring[i % RING];
        fprintf(stderr, "  %6lu %-11s 0x%06" PRIx64 " +0x%06" PRIx64 "  0x%06" PRIx64, e->n,
                ops[e->op].name, e->off, e->len, e->size_before);
        if (e->completed)
            fprintf(stderr, " -> 0x%06" PRIx64 "\n", e->size_after);
        else
            fprintf(stderr, " -> (failed here)\n");
    }
}

/* Begins a failure report with the operation log (once), so that the
 * difference and the seed are its last lines. */
static void report_start(void)
{
    static int started;
    fflush(stdout);
    if (!started++ && !comparing)
        dump_log();
}

/* Ends the run with exit 1 after printing what is needed to replay it. */
static void __attribute__((noreturn, format(printf, 1, 2))) failure(const char *fmt, ...)
{
    va_list ap;
    report_start();
    if (comparing)
        fprintf(stderr, "fsx: FAILED: ");
    else
        fprintf(stderr, "fsx: FAILED: seed %" PRIu64 ", operation %lu: ", seed, opnum);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (!comparing)
        fprintf(stderr, "fsx: replay with -S %" PRIu64 " and the same options\n", seed);
    exit(1);
}

/* Prints the bytes of EXPECTED and ACTUAL around index i (file offset base+i). */
static void show_bytes(const char *what, const uint8_t *p, size_t len, size_t i)
{
    size_t from = i > 8 ? i - 8 : 0, to = i + 16 < len ? i + 16 : len;
    fprintf(stderr, "  %-8s", what);
    for (size_t k = from; k < to; k++)
        fprintf(stderr, k == i ? "[%02x]" : " %02x", p[k]);
    fputc('\n', stderr);
}

/* Compares LEN bytes read at file offset OFF with EXPECT; fails on a difference. */
static void compare(const char *how, uint64_t off, const uint8_t *got, const uint8_t *expect,
                    size_t len)
{
    if (memcmp(got, expect, len) == 0)
        return;
    size_t i = 0;
    while (got[i] == expect[i])
        i++;
    size_t bad = 0;
    for (size_t k = i; k < len; k++)
        bad += got[k] != expect[k];
    report_start();
    fprintf(stderr, "fsx: %s at 0x%" PRIx64 " +0x%zx: first difference at offset 0x%" PRIx64
            " (%zu bytes differ), expected 0x%02x, got 0x%02x; from offset 0x%" PRIx64 ":\n",
            how, off, len, off + i, bad, expect[i], got[i], off + (i > 8 ? i - 8 : 0));
    show_bytes("expected", expect, len, i);
    show_bytes("actual", got, len, i);
    failure("%s returned wrong data at offset 0x%" PRIx64, how, off + i);
}

static void check_errno(const char *what, long r)
{
    if (r < 0)
        failure("%s: %s", what, strerror(errno));
}

/* ==== the file and the model ============================================== */

static void open_file(int flags)
{
    fd = open(fname, O_RDWR | flags, 0644);
    check_errno("open", fd);
    if (use_direct && !disabled[OP_DWRITE]) {
        dfd = open(fname, O_RDWR | O_DIRECT);
        if (dfd < 0 && errno == EINVAL) {
            disabled[OP_DWRITE] = disabled[OP_DREAD] = 1;
        } else {
            check_errno("open O_DIRECT", dfd);
        }
    }
}

static void close_file(void)
{
    check_errno("close", close(fd));
    fd = -1;
    if (dfd >= 0)
        check_errno("close O_DIRECT", close(dfd));
    dfd = -1;
}

/* The byte operation opnum writes at file offset p. */
static uint8_t pattern(uint64_t p)
{
    return (uint8_t)(1 + (opnum * 13 + p % 251) % 255);
}

static void fill(uint8_t *dst, uint64_t off, uint64_t len)
{
    for (uint64_t i = 0; i < len; i++)
        dst[i] = pattern(off + i);
}

/* The model's size becomes SIZE; bytes past it are kept zero. */
static void model_resize(uint64_t size)
{
    if (size < model_size)
        memset(model + size, 0, model_size - size);
    model_size = size;
}

static void check_size(const char *when)
{
    struct stat st;
    check_errno("fstat", fstat(fd, &st));
    if ((uint64_t)st.st_size != model_size)
        failure("%s: fstat size 0x%" PRIx64 ", expected 0x%" PRIx64, when,
                (uint64_t)st.st_size, model_size);
}

/* Reads the whole file (and a little past its end) and compares it. */
static void check_all(const char *when)
{
    check_size(when);
    uint64_t off = 0;
    for (;;) {
        uint64_t want = maxop;
        ssize_t r = pread(fd, buf, want, (off_t)off);
        check_errno("pread (full compare)", r);
        uint64_t expect = off < model_size ? model_size - off : 0;
        if (expect > want)
            expect = want;
        if ((uint64_t)r != expect)
            failure("%s: full compare: pread at 0x%" PRIx64 " returned 0x%zx bytes, "
                    "expected 0x%" PRIx64, when, off, r, expect);
        compare("full compare", off, buf, model + off, expect);
        if (expect < want)
            return;
        off += expect;
    }
}

/* ==== choosing offsets and lengths ========================================= */

/* A length in [1, limit] (limit >= 1), biased to small ones in small mode. */
static uint64_t pick_len(uint64_t limit)
{
    uint64_t len;
    if (small_mode) {
        unsigned k = rnd() % 10;
        len = k < 4 ? rnd_range(1, 80) : k < 8 ? rnd_range(1, 600) : rnd_range(1, maxop);
    } else {
        len = rnd_range(1, maxop);
    }
    return len < limit ? len : limit;
}

/* An offset in [0, limit) (limit >= 1); in small mode biased to the
 * inline range, below 600 and around 4 KiB. */
static uint64_t pick_off(uint64_t limit)
{
    uint64_t off;
    if (small_mode) {
        unsigned k = rnd() % 10;
        off = k < 3 ? rnd_range(0, 70) : k < 6 ? rnd_range(0, 600)
            : k < 8 ? rnd_range(ALIGN - 300, ALIGN + 300) : rnd() % maxlen;
    } else {
        off = rnd() % maxlen;
    }
    return off < limit ? off : rnd() % limit;
}

/* A new file size for truncate and the like: in [0, maxlen]. */
static uint64_t pick_size(void)
{
    if (!small_mode)
        return rnd_range(0, maxlen);
    unsigned k = rnd() % 10;
    uint64_t s = k < 3 ? rnd_range(0, 80) : k < 6 ? rnd_range(0, 600)
               : k < 9 ? rnd_range(ALIGN - 300, ALIGN + 300) : rnd_range(0, maxlen);
    return s < maxlen ? s : maxlen;
}

/* ==== operations ============================================================ */

/* pwrite of LEN bytes at OFF through descriptor D from DATA (filled here). */
static void do_write(enum op op, int d, uint8_t *data, uint64_t off, uint64_t len)
{
    begin_op(op, off, len);
    fill(data, off, len);
    ssize_t r = pwrite(d, data, len, (off_t)off);
    check_errno(ops[op].name, r);
    if ((uint64_t)r != len)
        failure("%s at 0x%" PRIx64 " +0x%" PRIx64 ": short write 0x%zx", ops[op].name, off,
                len, r);
    memcpy(model + off, data, len);
    if (off + len > model_size)
        model_size = off + len;
    end_op();
}

/* pread of LEN bytes at OFF through descriptor D into DATA, compared. */
static void do_read(enum op op, int d, uint8_t *data, uint64_t off, uint64_t len)
{
    begin_op(op, off, len);
    ssize_t r = pread(d, data, len, (off_t)off);
    check_errno(ops[op].name, r);
    uint64_t expect = 0;
    if (off < model_size)
        expect = model_size - off < len ? model_size - off : len;
    if ((uint64_t)r != expect)
        failure("%s at 0x%" PRIx64 " +0x%" PRIx64 " returned 0x%zx bytes, expected 0x%"
                PRIx64, ops[op].name, off, len, r, expect);
    compare(ops[op].name, off, data, model + off, expect);
    end_op();
}

static void do_truncate(uint64_t size)
{
    begin_op(OP_TRUNCATE, 0, size);
    check_errno("ftruncate", ftruncate(fd, (off_t)size));
    model_resize(size);
    end_op();
}

/* Prints that OP is disabled for the rest of the run. */
static void disable(enum op op)
{
    disabled[op] = 1;
    printf("fsx: %s refused (%s): disabled\n", ops[op].name, strerror(errno));
    drop_op();
}

/* fallocate of the operation begun last; returns 1 if the filesystem
 * refused it in a way that disables it (EOPNOTSUPP; EINVAL for collapse
 * and insert, whose alignment is the filesystem's block size). */
static int refused(enum op op, uint64_t off, uint64_t len)
{
    static const int mode[OP_COUNT] = {
        [OP_FALLOC] = 0,
        [OP_FALLOC_KEEP] = FALLOC_FL_KEEP_SIZE,
        [OP_PUNCH] = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
        [OP_ZERO] = FALLOC_FL_ZERO_RANGE,
        [OP_ZERO_KEEP] = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
        [OP_COLLAPSE] = FALLOC_FL_COLLAPSE_RANGE,
        [OP_INSERT] = FALLOC_FL_INSERT_RANGE,
    };
    if (fallocate(fd, mode[op], (off_t)off, (off_t)len) == 0)
        return 0;
    int allowed = errno == EOPNOTSUPP ||
                  (errno == EINVAL && (op == OP_COLLAPSE || op == OP_INSERT));
    if (!allowed)
        failure("%s: %s", ops[op].name, strerror(errno));
    disable(op);
    return 1;
}

/* fallocate modes 0, KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE on [off, off+len). */
static void do_fallocate(enum op op, uint64_t off, uint64_t len)
{
    uint64_t end = off + len;
    begin_op(op, off, len);
    if (refused(op, off, len))
        return;
    uint64_t in_file = end < model_size ? end : model_size;
    if ((op == OP_PUNCH || op == OP_ZERO || op == OP_ZERO_KEEP) && off < in_file)
        memset(model + off, 0, in_file - off);
    if ((op == OP_FALLOC || op == OP_ZERO) && end > model_size)
        model_size = end;
    end_op();
}

/* COLLAPSE_RANGE or INSERT_RANGE, 4 KiB-aligned; returns 0 if the file is
 * too small or too large for one now (another operation is chosen). */
static int do_shift(enum op op)
{
    uint64_t blocks = model_size / ALIGN, room = (maxlen - model_size) / ALIGN, off, len;
    if (op == OP_COLLAPSE) {
        /* off + len < size: at least one byte stays after the range */
        uint64_t limit = model_size ? (model_size - 1) / ALIGN : 0;
        if (limit < 1)
            return 0;
        off = rnd_range(0, limit - 1);
        len = rnd_range(1, limit - off);
        off *= ALIGN;
        len *= ALIGN;
    } else {
        if (model_size == 0 || room < 1)
            return 0;
        off = rnd_range(0, model_size % ALIGN ? blocks : blocks - 1) * ALIGN;
        len = rnd_range(1, room < 16 ? room : 16) * ALIGN;
    }
    begin_op(op, off, len);
    if (refused(op, off, len))
        return 1;
    if (op == OP_COLLAPSE) {
        memmove(model + off, model + off + len, model_size - off - len);
        model_resize(model_size - len);
    } else {
        memmove(model + off + len, model + off, model_size - off);
        memset(model + off, 0, len);
        model_size += len;
    }
    end_op();
    return 1;
}

/* Maps [off, off+len) of the file (from its page); returns the address of
 * off, or NULL if the filesystem refuses mmap (the operation is disabled). */
static uint8_t *map_range(enum op op, uint64_t off, uint64_t len, void **base, size_t *maplen)
{
    uint64_t pg = off & ~(uint64_t)(page - 1);
    *maplen = (size_t)(off + len - pg);
    int prot = op == OP_MAPREAD ? PROT_READ : PROT_READ | PROT_WRITE;
    *base = mmap(NULL, *maplen, prot, MAP_SHARED, fd, (off_t)pg);
    if (*base != MAP_FAILED)
        return (uint8_t *)*base + (off - pg);
    if (errno != ENODEV)
        failure("mmap 0x%" PRIx64 " +0x%zx: %s", pg, *maplen, strerror(errno));
    disable(op);
    return NULL;
}

/* Writes [off, off+len) through a shared mapping; the file is extended
 * first (ftruncate) if the range passes its end. */
static void do_mapwrite(uint64_t off, uint64_t len)
{
    begin_op(OP_MAPWRITE, off, len);
    if (off + len > model_size) {
        check_errno("ftruncate before mmap write", ftruncate(fd, (off_t)(off + len)));
        model_resize(off + len);
    }
    void *base;
    size_t maplen;
    uint8_t *p = map_range(OP_MAPWRITE, off, len, &base, &maplen);
    if (!p)
        return;
    fill(p, off, len);
    fill(model + off, off, len);
    check_errno("msync", msync(base, maplen, MS_SYNC));
    check_errno("munmap", munmap(base, maplen));
    end_op();
}

/* Writes nonzero bytes through a shared mapping into the last page of the
 * file past its end: they must never become part of the file (a later
 * truncate up or write past the end must show zeros there). Returns 0 if
 * the end of the file is at a page boundary. */
static int do_mapwrite_eof(void)
{
    uint64_t in_page = model_size % (uint64_t)page;
    if (in_page == 0)
        return 0;
    begin_op(OP_MAPEOF, model_size, (uint64_t)page - in_page);
    void *base;
    size_t maplen;
    uint8_t *p = map_range(OP_MAPEOF, model_size - in_page, (uint64_t)page, &base, &maplen);
    if (!p)
        return 1;
    fill(p + in_page, model_size, (uint64_t)page - in_page);
    check_errno("msync", msync(base, maplen, MS_SYNC));
    check_errno("munmap", munmap(base, maplen));
    end_op();
    return 1;
}

/* Reads [off, off+len) (inside the file) through a mapping; if the range
 * ends at the end of the file, the rest of that page must read as zeros. */
static void do_mapread(uint64_t off, uint64_t len)
{
    static const uint8_t zeros[65536];
    uint64_t tail = 0;
    if (off + len == model_size && model_size % (uint64_t)page)
        tail = (uint64_t)page - model_size % (uint64_t)page;
    begin_op(OP_MAPREAD, off, len);
    void *base;
    size_t maplen;
    uint8_t *p = map_range(OP_MAPREAD, off, len + tail, &base, &maplen);
    if (!p)
        return;
    memcpy(buf, p, len + tail);
    check_errno("munmap", munmap(base, maplen));
    compare("mmap read", off, buf, model + off, len);
    if (tail && tail <= sizeof(zeros))
        compare("mmap read past the end of the file", off + len, buf + len, zeros, tail);
    end_op();
}

/* ==== SEEK_DATA and SEEK_HOLE ============================================== */

/* Returns the index of the first nonzero byte of the model in [from, to), or to. */
static uint64_t first_nonzero(uint64_t from, uint64_t to)
{
    while (from < to && model[from] == 0)
        from++;
    return from;
}

/* lseek SEEK_DATA or SEEK_HOLE from OFF. A filesystem may report a hole
 * as data, never data as a hole: SEEK_DATA must not skip a nonzero byte,
 * SEEK_HOLE must land on a zero byte or at the end of the file; past the
 * end both fail with ENXIO. */
static void do_seek(enum op op, uint64_t off)
{
    int whence = op == OP_SEEK_DATA ? SEEK_DATA : SEEK_HOLE;
    begin_op(op, off, 0);
    off_t r = lseek(fd, (off_t)off, whence);
    if (r < 0 && errno == EINVAL) {
        disable(op);
        return;
    }
    if (off >= model_size) {
        if (r >= 0 || errno != ENXIO)
            failure("%s from 0x%" PRIx64 " at or past the end 0x%" PRIx64 " returned %jd "
                    "(%s), expected ENXIO", ops[op].name, off, model_size, (intmax_t)r,
                    r < 0 ? strerror(errno) : "no error");
        end_op();
        return;
    }
    uint64_t data = first_nonzero(off, model_size);
    if (r < 0 && !(errno == ENXIO && op == OP_SEEK_DATA))
        failure("%s from 0x%" PRIx64 ": %s", ops[op].name, off, strerror(errno));
    if (r < 0) {
        if (data < model_size)
            failure("SEEK_DATA from 0x%" PRIx64 " returned ENXIO, but the byte at 0x%" PRIx64
                    " is 0x%02x", off, data, model[data]);
    } else if ((uint64_t)r < off || (uint64_t)r > model_size ||
               ((uint64_t)r == model_size && op == OP_SEEK_DATA)) {
        failure("%s from 0x%" PRIx64 " returned 0x%jx, outside the file (size 0x%" PRIx64 ")",
                ops[op].name, off, (intmax_t)r, model_size);
    } else if (op == OP_SEEK_DATA && data < (uint64_t)r) {
        failure("SEEK_DATA from 0x%" PRIx64 " returned 0x%jx, skipping the byte 0x%02x at 0x%"
                PRIx64, off, (intmax_t)r, model[data], data);
    } else if (op == OP_SEEK_HOLE && (uint64_t)r < model_size && model[r] != 0) {
        failure("SEEK_HOLE from 0x%" PRIx64 " returned 0x%jx, where the byte is 0x%02x", off,
                (intmax_t)r, model[r]);
    }
    end_op();
}

/* Picks an aligned range for an O_DIRECT op: both multiples of 4 KiB. */
static void direct_range(uint64_t *off, uint64_t *len)
{
    uint64_t blocks = maxlen / ALIGN;
    *off = rnd() % blocks;
    uint64_t n = rnd_range(1, maxop / ALIGN ? maxop / ALIGN : 1);
    if (n > blocks - *off)
        n = blocks - *off;
    *off *= ALIGN;
    *len = n * ALIGN;
}

static enum op choose(void)
{
    int total = 0;
    for (int i = 0; i < OP_COUNT; i++)
        total += ops[i].weight;
    for (;;) {
        int r = (int)(rnd() % (uint64_t)total);
        int i = 0;
        while (r >= ops[i].weight)
            r -= ops[i++].weight;
        if (use_direct && !disabled[OP_DWRITE] && (i == OP_WRITE || i == OP_READ) &&
            rnd() % 4 == 0)
            i = i == OP_WRITE ? OP_DWRITE : OP_DREAD;
        if (disabled[i] || ((i == OP_MAPWRITE || i == OP_MAPEOF) && no_mapwrite) ||
            (i == OP_MAPREAD && no_mapread))
            continue;
        return (enum op)i;
    }
}

/* Runs one operation; returns 0 if it could not run now. */
static int run_one(enum op op)
{
    uint64_t off, len;
    switch (op) {
    case OP_WRITE:
        off = pick_off(maxlen);
        do_write(op, fd, buf, off, pick_len(maxlen - off));
        return 1;
    case OP_READ:
        off = pick_off(model_size + 1);      /* sometimes at the end */
        do_read(op, fd, buf, off, pick_len(maxop));
        return 1;
    case OP_TRUNCATE:
        do_truncate(pick_size());
        return 1;
    case OP_FALLOC: case OP_FALLOC_KEEP: case OP_PUNCH: case OP_ZERO: case OP_ZERO_KEEP:
        off = pick_off(maxlen);
        do_fallocate(op, off, pick_len(maxlen - off));
        return 1;
    case OP_COLLAPSE: case OP_INSERT:
        return do_shift(op);
    case OP_MAPWRITE:
        off = pick_off(maxlen);
        do_mapwrite(off, pick_len(maxlen - off));
        return 1;
    case OP_MAPEOF:
        return do_mapwrite_eof();
    case OP_MAPREAD:
        if (model_size == 0)
            return 0;
        off = pick_off(model_size);
        len = pick_len(model_size - off);
        if (rnd() % 4 == 0)
            len = model_size - off;          /* up to the end: the tail zeros */
        do_mapread(off, len);
        return 1;
    case OP_FSYNC:
        begin_op(op, 0, 0);
        check_errno("fsync", fsync(fd));
        end_op();
        return 1;
    case OP_FDATASYNC:
        begin_op(op, 0, 0);
        check_errno("fdatasync", fdatasync(fd));
        end_op();
        return 1;
    case OP_REOPEN:
        begin_op(op, 0, 0);
        close_file();
        open_file(0);
        end_op();
        return 1;
    case OP_SEEK_DATA: case OP_SEEK_HOLE:
        do_seek(op, pick_off(model_size + 1));
        return 1;
    case OP_INVALIDATE:
        /* written back, then dropped from the page cache: the next reads
         * come from the filesystem, not from the kernel's copy */
        begin_op(op, 0, 0);
        check_errno("fdatasync", fdatasync(fd));
        errno = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        check_errno("posix_fadvise DONTNEED", errno ? -1 : 0);
        end_op();
        return 1;
    case OP_DWRITE:
        direct_range(&off, &len);
        do_write(op, dfd, dbuf, off, len);
        return 1;
    case OP_DREAD:
        direct_range(&off, &len);
        do_read(op, dfd, dbuf, off, len);
        return 1;
    case OP_COUNT:
        break;
    }
    return 0;
}

/* ==== -x and -c ============================================================ */

static void save_model(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f || fwrite(model, 1, model_size, f) != model_size || fclose(f) != 0)
        failure("writing the model to %s: %s", path, strerror(errno));
}

/* -c: FILE must hold exactly MODEL's bytes. */
static int compare_with(const char *model_path)
{
    int mfd = open(model_path, O_RDONLY);
    struct stat ms;
    if (mfd < 0 || fstat(mfd, &ms) != 0) {
        fprintf(stderr, "fsx: %s: %s\n", model_path, strerror(errno));
        return 1;
    }
    maxlen = maxop = (uint64_t)ms.st_size + 1;
    model = calloc(1, maxlen);
    buf = malloc(maxlen);
    if (!model || !buf) {
        fprintf(stderr, "fsx: out of memory\n");
        return 1;
    }
    ssize_t r = pread(mfd, model, maxlen, 0);
    if (r != ms.st_size) {
        fprintf(stderr, "fsx: reading %s failed\n", model_path);
        return 1;
    }
    close(mfd);
    model_size = (uint64_t)ms.st_size;
    fd = open(fname, O_RDONLY);
    check_errno("open", fd);
    check_all("compare with the saved model");
    printf("fsx: %s matches %s (%" PRIu64 " bytes)\n", fname, model_path, model_size);
    return 0;
}

/* ==== main ================================================================== */

static uint64_t number(const char *s, char opt)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || *end || *s == '-') {
        fprintf(stderr, "fsx: -%c: not a number: %s\n", opt, s);
        exit(2);
    }
    return v;
}

static void usage(void)
{
    fprintf(stderr, "usage: fsx [-N ops] [-S seed] [-l maxlen] [-o maxop] [-s] [-W] [-R] [-Z]"
            " [-x MODEL] [-v] FILE\n       fsx -c MODEL FILE\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *save = NULL, *check_model = NULL;
    int have_seed = 0, have_maxlen = 0, c;
    while ((c = getopt(argc, argv, "N:S:l:o:sWRZx:c:v")) != -1) {
        switch (c) {
        case 'N': num_ops = number(optarg, c); break;
        case 'S': seed = number(optarg, c); have_seed = 1; break;
        case 'l': maxlen = number(optarg, c); have_maxlen = 1; break;
        case 'o': maxop = number(optarg, c); break;
        case 's': small_mode = 1; break;
        case 'W': no_mapwrite = 1; break;
        case 'R': no_mapread = 1; break;
        case 'Z': use_direct = 1; break;
        case 'x': save = optarg; break;
        case 'c': check_model = optarg; break;
        case 'v': verbose = 1; break;
        default: usage();
        }
    }
    if (optind != argc - 1)
        usage();
    fname = argv[optind];
    setvbuf(stdout, NULL, _IOLBF, 0);
    comparing = check_model != NULL;
    if (comparing)
        return compare_with(check_model);
    if (small_mode && !have_maxlen)
        maxlen = 16 * 1024;
    if (maxlen < 2 * ALIGN || maxlen > (1u << 30) || maxop < 1) {
        fprintf(stderr, "fsx: -l must be 8 KiB .. 1 GiB, -o at least 1\n");
        return 2;
    }
    maxlen -= maxlen % ALIGN;
    if (maxop > maxlen)
        maxop = maxlen;
    if (!have_seed) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        seed = (uint64_t)tv.tv_sec * 1000003u ^ (uint64_t)tv.tv_usec ^ (uint64_t)getpid();
    }
    rng_state = seed;
    page = sysconf(_SC_PAGESIZE);
    printf("fsx: seed %" PRIu64 ", %lu ops, maxlen %" PRIu64 ", maxop %" PRIu64 "%s%s%s%s\n",
           seed, num_ops, maxlen, maxop, small_mode ? ", small files" : "",
           no_mapwrite ? ", no mmap writes" : "", no_mapread ? ", no mmap reads" : "",
           use_direct ? ", O_DIRECT" : "");
    model = calloc(1, maxlen);
    buf = malloc(maxlen + (uint64_t)page);
    if (!model || !buf || posix_memalign((void **)&dbuf, ALIGN, maxlen) != 0) {
        fprintf(stderr, "fsx: out of memory\n");
        return 1;
    }
    open_file(O_CREAT | O_TRUNC);
    for (opnum = 1; opnum <= num_ops; opnum++) {
        while (!run_one(choose()))
            ;
        if (opnum % CHECK_EVERY == 0)
            check_all("periodic full compare");
    }
    opnum = num_ops;
    check_all("final full compare");
    if (save)
        save_model(save);
    close_file();
    printf("fsx: seed %" PRIu64 ": %lu ops passed:", seed, num_ops);
    for (int i = 0; i < OP_COUNT; i++)
        if (done[i])
            printf(" %s %lu", ops[i].name, done[i]);
    int any = 0;
    for (int i = 0; i < OP_COUNT; i++)
        if (disabled[i])
            printf("%s %s", any++ ? "," : "; disabled:", ops[i].name);
    printf("; final size %" PRIu64 "\n", model_size);
    return 0;
}
