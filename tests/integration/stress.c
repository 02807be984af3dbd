/*
 * stress.c — a multi-process file-system exerciser in the manner of
 * xfstests' fsstress, with every result checked against in-memory models.
 *
 *   stress [-w workers] [-t seconds] [-n ops] [-S seed] [-d dirs]
 *          [-l maxlen] [-x DUMPDIR] [-v] DIR
 *   stress -c DUMPDIR DIR
 *
 *   -w workers  worker processes (default 4)
 *   -t seconds  each worker stops after this long (default 20)
 *   -n ops      ... or after this many operations (default: no limit)
 *   -S seed     the seed (default: from the clock), printed at the start;
 *               worker w draws from seed + w. A worker's choices depend
 *               only on its seed and its own model, except where it races
 *               other workers on purpose (the claims below) and on the
 *               time bound: use -n for a replay
 *   -d dirs     shared directories DIR/tree/d0.. (default 3)
 *   -l maxlen   largest file (default 1 MiB; most files are far smaller)
 *   -x DUMPDIR  where the workers save their models at the end (an
 *               absolute path, not on the filesystem under test; default:
 *               a temporary directory under /tmp, removed at the end)
 *   -v          print every operation
 *   -c DUMPDIR  check DIR/tree against saved models and exit (after a
 *               remount)
 *
 * The workers run at the same time in DIR/tree, whose shared directories
 * d0..d{dirs-1} every worker creates entries in. Each worker owns the
 * objects it creates (regular files, directories, symlinks) and keeps a
 * model of them: names (every hard link: parent and name), type, inode
 * number, mode, size and bytes, symlink target, user.* xattrs, mtime
 * after utimensat. Its names start with "wNN." (NN its number), so it
 * knows which entries of a shared directory are its own. Operations,
 * chosen with weights: create, mkdir, rmdir (also of a non-empty directory:
 * ENOTEMPTY), rename (to a new name or over an existing one, across
 * directories, of directories too, into its own subtree: EINVAL, file over
 * directory: EISDIR, ...), renameat2 RENAME_NOREPLACE and RENAME_EXCHANGE,
 * link, unlink (also of open files, which are then written, read,
 * truncated and mapped until their last descriptor is closed), symlink and
 * readlink, pwrite, K_APPEND writes, pread, O_DIRECT reads, truncate and
 * ftruncate, fallocate (mode 0, KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE with and
 * without KEEP_SIZE), mmap writes and reads, fsync, fdatasync, fsync of a
 * directory, dropping a file's page cache (fdatasync, POSIX_FADV_DONTNEED),
 * setxattr (XATTR_CREATE, XATTR_REPLACE), getxattr, listxattr, removexattr,
 * chmod (also to set-id modes), utimensat, lchown (as root: a regular file
 * loses S_ISUID, and S_ISGID when group-executable), copy_file_range
 * between its files (short copies allowed), lseek SEEK_DATA/SEEK_HOLE (a
 * reported hole reads as zeros, data never starts before the offset, ENXIO
 * past the end), stat of every name of an object (one inode number,
 * type, mode, size, link count), readdir (getdents64 with a small random
 * buffer) of shared directories while the others change them — each of
 * its own entries exactly once, with the right d_type, and none it
 * removed — and of its own directories (exactly its entries), statfs,
 * reads of other workers' files (only errors are checked: their content
 * changes under the reader), and claims: every worker races the others to
 * create d0/claim.K with O_EXCL or to rename one of its files there with
 * RENAME_NOREPLACE; the winner owns it, the claim holds its number, and a
 * claim read by anyone must hold the number of a worker that could own it.
 *
 * Every byte a write puts at file offset p is a function of the worker,
 * the object, the write's number and p, never zero: a byte of another
 * file, an older write or a freed block is seen as different. A mismatch
 * reports whether the bytes found are zeros or those of one of the
 * object's last writes.
 *
 * At the end each worker closes its descriptors, checks every object
 * fully (every name, content, xattrs) and saves its model in DUMPDIR; the
 * parent then checks the whole tree against all models together: every
 * entry under DIR/tree is one of a model (none left over, none missing,
 * each claim owned by one worker), directory link counts. -c repeats
 * that (with contents) after a remount.
 *
 * One failure is a known race of the FUSE kernel, not of the filesystem:
 * link(2) refused with ENOENT because the kernel lowered its cached link
 * count to 0 over an answer that already had the lower count. A link that
 * fails so (source present with the model's count when the filesystem is
 * asked, a name of it taken away within the last second) is reported,
 * retried once and counted in the summary line (docs/MOUNT.md, "Link
 * counts the kernel lowers itself").
 *
 * Exit status: 0 passed (a summary line), 1 a mismatch or an unexpected
 * error (worker, seed, operation number, its last operations and the
 * difference are printed), 2 usage.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/falloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define MAXOBJ     64     /* objects one worker keeps at most */
#define MAXLINK    4      /* names of one object at most */
#define MAXFD      6      /* open descriptors of one worker at most */
#define MAXDIRS    8      /* own directories of one worker at most */
#define NXATTR     4      /* user.s0 .. user.s3 */
#define XATTR_MAX  600    /* a value's length at most (4 fit in a block) */
#define NCLAIM     16     /* d0/claim.0 .. claim.15 */
#define HIST       8      /* writes remembered per object, for reports */
#define RING       48     /* operations kept for a failure report */
#define MAXWORKERS 64
#define ALIGN      4096
#define MAXOP      (128 * 1024)
#define NAMEBUF    256
#define SHARED(j)  (-1 - (j))   /* parent of a link in shared dir j */

enum otype { T_FREE, T_REG, T_DIR, T_LNK };
static const char *tname[] = { "free", "file", "dir", "symlink" };

struct link {
    int parent;                 /* SHARED(j) or the index of an own directory */
    char name[NAMEBUF];
};

struct obj {
    enum otype type;
    unsigned id;
    struct link links[MAXLINK];
    int nlinks;
    int nfds;                   /* open descriptors (a REG without links lives on) */
    uint8_t *data;              /* REG: the bytes; LNK: the target */
    size_t size, cap, maxlen;
    mode_t mode;
    uid_t uid;                  /* owner, group: the creator's until a chown */
    gid_t gid;
    ino_t ino;
    int mtime_known;
    struct timespec mtime;
    int xlen[NXATTR];           /* -1: absent */
    uint8_t xval[NXATTR][XATTR_MAX];
    uint64_t hist[HIST];        /* tags of the last writes */
    unsigned nhist;
    int mmap_dirty;             /* mapped writes not yet synced */
    int claim;                  /* >= 0: the claim it was made for (content) */
    unsigned long lost_name_op; /* the operation that last took a name away (0: none) */
    double lost_name_at;        /* ... and when (now()) */
};

struct fdent {
    int fd, obj;
};

/* ==== global state (one copy per worker process) ========================== */

static const char *root;        /* DIR */
static const char *dumpdir;
static int nworkers = 4, ndirs = 3, verbose, me = -1;
static unsigned long max_ops;   /* 0: no limit */
static double seconds = 20;
static uint64_t seed, rng_state;
static size_t maxlen = 1 << 20;
static unsigned long opnum;
static unsigned serial;         /* names and object ids */
static struct obj objs[MAXOBJ];
static struct fdent fds[MAXFD];
static int nfd;
static int use_direct = 1;
static uint8_t *buf, *buf2, *dbuf;
static long page;
static char ring[RING][232];
static unsigned long logged;
static char cur[200];
static unsigned long opcount[64];
static unsigned long link_races;   /* link(2) refused for a stale cached count, retried */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ==== random numbers ======================================================= */

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rn(uint64_t n)
{
    return n ? rnd() % n : 0;
}

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 33)) * 0xff51afd7ed558ccdull;
    z = (z ^ (z >> 33)) * 0xc4ceb9fe1a85ec53ull;
    return z ^ (z >> 33);
}

/* ==== reporting ============================================================= */

static void logop(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logop(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cur, sizeof cur, fmt, ap);
    va_end(ap);
    snprintf(ring[logged++ % RING], sizeof ring[0], "%lu %s", opnum, cur);
    if (verbose)
        printf("w%02d %lu %s\n", me, opnum, cur);
}

static void __attribute__((noreturn, format(printf, 1, 2))) failure(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    if (me >= 0) {
        unsigned long first = logged > RING ? logged - RING : 0;
        fprintf(stderr, "stress: worker %d: last %lu operations:\n", me, logged - first);
        for (unsigned long i = first; i < logged; i++)
            fprintf(stderr, "  w%02d %s\n", me, ring[i % RING]);
        fprintf(stderr, "stress: FAILED: worker %d (seed %" PRIu64 "), operation %lu (%s): ",
                me, seed, opnum, cur);
    } else {
        fprintf(stderr, "stress: FAILED: ");
    }
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (me >= 0)
        fprintf(stderr, "stress: replay with -S %" PRIu64 " -w %d -n %lu\n", seed, nworkers,
                opnum + 1);
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p)
        failure("out of memory (%zu bytes)", n);
    return p;
}

/* ==== names and paths ======================================================= */

static void obj_path(int o, char *out, size_t n);

/* The path (relative to DIR) of the directory PARENT. */
static void dir_path(int parent, char *out, size_t n)
{
    if (parent < 0)
        snprintf(out, n, "tree/d%d", -1 - parent);
    else
        obj_path(parent, out, n);
}

static void link_path(const struct link *l, char *out, size_t n)
{
    char d[PATH_MAX];
    dir_path(l->parent, d, sizeof d);
    if (snprintf(out, n, "%s/%s", d, l->name) >= (int)n)
        failure("path %s/%s too long", d, l->name);
}

/* The path of an object's first name. */
static void obj_path(int o, char *out, size_t n)
{
    link_path(&objs[o].links[0], out, n);
}

/* A new name of this worker, of random length. */
static void new_name(char *out)
{
    int len = snprintf(out, NAMEBUF, "w%02d.%u", me, serial++);
    int pad = rn(4) == 0 ? (int)rn(100) : 0;
    if (pad) {
        out[len++] = '-';
        for (int i = 0; i < pad; i++)
            out[len++] = (char)('a' + (i + me) % 26);
        out[len] = 0;
    }
}

/* Is directory object D the object A or below it? */
static int under(int d, int a)
{
    while (d >= 0) {
        if (d == a)
            return 1;
        d = objs[d].links[0].parent;
    }
    return 0;
}

static int dir_entries(int d)
{
    int n = 0;
    for (int o = 0; o < MAXOBJ; o++)
        for (int l = 0; l < objs[o].nlinks; l++)
            n += objs[o].links[l].parent == d;
    return n;
}

static int subdirs_of(int parent)
{
    int n = 0;
    for (int o = 0; o < MAXOBJ; o++)
        if (objs[o].type == T_DIR && objs[o].links[0].parent == parent)
            n++;
    return n;
}

/* A random parent directory: a shared one or one of ours. */
static int pick_parent(void)
{
    int cand[MAXOBJ], n = 0;
    for (int o = 0; o < MAXOBJ; o++)
        if (objs[o].type == T_DIR)
            cand[n++] = o;
    if (n && rn(2))
        return cand[rn(n)];
    return SHARED((int)rn(ndirs));
}

static int count_type(enum otype t)
{
    int n = 0;
    for (int o = 0; o < MAXOBJ; o++)
        n += objs[o].type == t;
    return n;
}

/* A random object satisfying the filter, -1 if none. */
/* Claims (claim >= 0) keep their record: never written, renamed or
 * replaced, only linked, unlinked, checked and given attributes. */
enum pick { P_RENAME, P_REG, P_NONDIR, P_DIR, P_XATTR, P_TIMES, P_CHECK };
static int pick_obj(enum pick how)
{
    int cand[MAXOBJ], n = 0;
    for (int o = 0; o < MAXOBJ; o++) {
        struct obj *ob = &objs[o];
        if (ob->type == T_FREE)
            continue;
        int ok = 0;
        switch (how) {
        case P_RENAME: ok = ob->nlinks > 0 && ob->claim < 0; break;
        case P_CHECK: ok = ob->nlinks > 0; break;
        case P_REG: ok = ob->type == T_REG && ob->claim < 0; break;
        case P_NONDIR: ok = ob->type != T_DIR && ob->nlinks > 0; break;
        case P_DIR: ok = ob->type == T_DIR; break;
        case P_XATTR: ok = ob->type != T_LNK && ob->nlinks > 0; break;
        case P_TIMES: ok = ob->type != T_DIR && ob->nlinks > 0; break;
        }
        if (ok)
            cand[n++] = o;
    }
    return n ? cand[rn(n)] : -1;
}

static int new_obj(enum otype t)
{
    for (int o = 0; o < MAXOBJ; o++) {
        if (objs[o].type == T_FREE) {
            struct obj *ob = &objs[o];
            memset(ob, 0, sizeof *ob);
            ob->type = t;
            ob->id = serial++;
            ob->claim = -1;
            ob->uid = geteuid();
            ob->gid = getegid();
            for (int k = 0; k < NXATTR; k++)
                ob->xlen[k] = -1;
            return o;
        }
    }
    return -1;
}

static void free_obj(int o)
{
    free(objs[o].data);
    memset(&objs[o], 0, sizeof objs[o]);
}

/* Removes link L of object O; frees it when nothing refers to it. */
static void drop_link(int o, int l)
{
    struct obj *ob = &objs[o];
    ob->links[l] = ob->links[--ob->nlinks];
    ob->lost_name_op = opnum;
    ob->lost_name_at = now();
    if (ob->nlinks == 0 && ob->nfds == 0)
        free_obj(o);
}

/* ==== content =============================================================== */

static uint64_t new_tag(int o)
{
    uint64_t t = mix(((uint64_t)me << 48) ^ ((uint64_t)objs[o].id << 24) ^ opnum ^ seed);
    struct obj *ob = &objs[o];
    ob->hist[ob->nhist++ % HIST] = t;
    return t;
}

static uint8_t tag_byte(uint64_t tag, uint64_t p)
{
    uint32_t x = (uint32_t)tag + (uint32_t)p * 2654435761u + (uint32_t)(tag >> 32) * (uint32_t)(p >> 8);
    return (uint8_t)(1 + (x >> 24) % 255);
}

static void fill(uint8_t *dst, uint64_t tag, uint64_t off, size_t len)
{
    for (size_t i = 0; i < len; i++)
        dst[i] = tag_byte(tag, off + i);
}

static void reserve(struct obj *ob, size_t size)
{
    if (size <= ob->cap)
        return;
    size_t cap = ob->cap ? ob->cap : 4096;
    while (cap < size)
        cap *= 2;
    ob->data = realloc(ob->data, cap);
    if (!ob->data)
        failure("out of memory");
    memset(ob->data + ob->cap, 0, cap - ob->cap);
    ob->cap = cap;
}

static void model_resize(struct obj *ob, size_t size)
{
    reserve(ob, size);
    if (size < ob->size)
        memset(ob->data + size, 0, ob->size - size);
    ob->size = size;
}

static void model_write(struct obj *ob, uint64_t tag, uint64_t off, size_t len)
{
    reserve(ob, off + len);
    fill(ob->data + off, tag, off, len);
    if (off + len > ob->size)
        ob->size = off + len;
    ob->mtime_known = 0;
}

static void compare(int o, const char *how, uint64_t off, const uint8_t *got, size_t len)
{
    struct obj *ob = &objs[o];
    const uint8_t *exp = ob->data + off;
    if (len == 0 || memcmp(got, exp, len) == 0)
        return;
    size_t i = 0, bad = 0, zero = 0;
    while (got[i] == exp[i])
        i++;
    size_t j = i;
    for (size_t k = i; k < len; k++) {
        if (got[k] != exp[k]) {
            bad++;
            zero += got[k] == 0;
            j = k;
        }
    }
    char p[PATH_MAX] = "(unlinked)";
    if (ob->nlinks)
        obj_path(o, p, sizeof p);
    fprintf(stderr, "stress: %s of object %u (%s, size %zu) at %" PRIu64 " +%zu: "
            "%zu bytes differ from %" PRIu64 " to %" PRIu64 " (%zu of them zero)\n",
            how, ob->id, p, ob->size, off, len, bad, off + i, off + j, zero);
    fprintf(stderr, "  expected");
    for (size_t k = i; k < len && k < i + 16; k++)
        fprintf(stderr, " %02x", exp[k]);
    fprintf(stderr, "\n  actual  ");
    for (size_t k = i; k < len && k < i + 16; k++)
        fprintf(stderr, " %02x", got[k]);
    fputc('\n', stderr);
    for (unsigned h = 0; h < HIST && h < ob->nhist; h++) {
        uint64_t t = ob->hist[(ob->nhist - 1 - h) % HIST];
        int match = 1;
        for (size_t k = i; k <= j && k < i + 64; k++)
            if (got[k] != exp[k] && got[k] != tag_byte(t, off + k))
                match = 0;
        if (match) {
            fprintf(stderr, "  the differing bytes are those of this object's write %u before the last\n", h);
            break;
        }
    }
    failure("%s returned wrong data at offset %" PRIu64, how, off + i);
}

/* ==== checked system calls ================================================== */

#define CHK(what, r) do { if ((r) < 0) failure("%s: %s", (what), strerror(errno)); } while (0)

/* Runs a call whose expected errno (0: success) the model knows. */
static void expect(const char *what, long r, int want)
{
    int got = r < 0 ? errno : 0;
    if (got != want)
        failure("%s: expected %s, got %s", what, want ? strerror(want) : "success",
                got ? strerror(got) : "success");
}

static void ts_cmp(int o, const struct stat *st, const char *p)
{
    struct obj *ob = &objs[o];
    if (!ob->mtime_known || ob->mmap_dirty)
        return;
    if (st->st_mtim.tv_sec != ob->mtime.tv_sec || st->st_mtim.tv_nsec != ob->mtime.tv_nsec)
        failure("%s: mtime %lld.%09ld, expected %lld.%09ld (set by utimensat)", p,
                (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec,
                (long long)ob->mtime.tv_sec, ob->mtime.tv_nsec);
}

static mode_t type_bits(enum otype t)
{
    return t == T_REG ? S_IFREG : t == T_DIR ? S_IFDIR : S_IFLNK;
}

/* Checks what stat says of object O against the model. */
static void check_stat(int o, const struct stat *st, const char *p)
{
    struct obj *ob = &objs[o];
    if ((st->st_mode & S_IFMT) != type_bits(ob->type))
        failure("%s: mode %o, expected a %s", p, st->st_mode, tname[ob->type]);
    if (ob->ino && st->st_ino != ob->ino)
        failure("%s: inode %llu, expected %llu", p, (unsigned long long)st->st_ino,
                (unsigned long long)ob->ino);
    if (ob->type != T_LNK && (st->st_mode & 07777) != ob->mode)
        failure("%s: permissions %o, expected %o", p, st->st_mode & 07777, ob->mode);
    if (st->st_uid != ob->uid || st->st_gid != ob->gid)
        failure("%s: owner %u:%u, expected %u:%u", p, (unsigned)st->st_uid,
                (unsigned)st->st_gid, (unsigned)ob->uid, (unsigned)ob->gid);
    if (ob->type == T_DIR) {
        nlink_t want = 2 + (nlink_t)subdirs_of(o);
        if (st->st_nlink != want)
            failure("%s: directory link count %lu, expected %lu", p, (unsigned long)st->st_nlink,
                    (unsigned long)want);
        return;
    }
    if ((size_t)st->st_size != ob->size)
        failure("%s: size %lld, expected %zu", p, (long long)st->st_size, ob->size);
    if (st->st_nlink != (nlink_t)ob->nlinks)
        failure("%s: link count %lu, expected %d", p, (unsigned long)st->st_nlink, ob->nlinks);
    ts_cmp(o, st, p);
}

static void check_xattrs(int o, const char *p)
{
    struct obj *ob = &objs[o];
    char list[1024];
    ssize_t n = llistxattr(p, list, sizeof list);
    CHK("llistxattr", n);
    int seen[NXATTR] = { 0 };
    for (ssize_t i = 0; i < n; i += (ssize_t)strlen(list + i) + 1) {
        int k;
        if (strncmp(list + i, "user.", 5) != 0)
            continue;
        if (sscanf(list + i, "user.s%d", &k) != 1 || k < 0 || k >= NXATTR)
            failure("%s: unknown xattr %s", p, list + i);
        if (seen[k]++ || ob->xlen[k] < 0)
            failure("%s: listxattr shows %s %s", p, list + i,
                    seen[k] > 1 ? "twice" : "which was removed or never set");
    }
    for (int k = 0; k < NXATTR; k++) {
        char key[16];
        snprintf(key, sizeof key, "user.s%d", k);
        ssize_t r = lgetxattr(p, key, buf2, XATTR_MAX + 16);
        if (ob->xlen[k] < 0) {
            expect("lgetxattr of a removed key", r, ENODATA);
            continue;
        }
        CHK("lgetxattr", r);
        if (!seen[k])
            failure("%s: listxattr misses %s", p, key);
        if (r != ob->xlen[k] || memcmp(buf2, ob->xval[k], (size_t)r) != 0)
            failure("%s: %s has %zd bytes (expected %d) or wrong content", p, key, r, ob->xlen[k]);
    }
}

/* Reads the whole of object O through descriptor FD and compares it. */
static void check_content_fd(int o, int fd, const char *how)
{
    struct obj *ob = &objs[o];
    struct stat st;
    CHK("fstat", fstat(fd, &st));
    if ((size_t)st.st_size != ob->size)
        failure("%s: fstat size %lld, expected %zu", how, (long long)st.st_size, ob->size);
    if (st.st_nlink != (nlink_t)ob->nlinks)
        failure("%s: fstat link count %lu, expected %d", how, (unsigned long)st.st_nlink,
                ob->nlinks);
    for (size_t off = 0;; off += MAXOP) {
        ssize_t r = pread(fd, buf, MAXOP, (off_t)off);
        CHK("pread (whole file)", r);
        size_t want = off < ob->size ? ob->size - off : 0;
        if (want > MAXOP)
            want = MAXOP;
        if ((size_t)r != want)
            failure("%s: pread at %zu returned %zd bytes, expected %zu", how, off, r, want);
        compare(o, how, off, buf, want);
        if (want < MAXOP)
            break;
    }
}

/* Checks everything about object O through all its names. */
static void check_obj(int o, int content)
{
    struct obj *ob = &objs[o];
    char p[PATH_MAX];
    for (int l = 0; l < ob->nlinks; l++) {
        struct stat st;
        link_path(&ob->links[l], p, sizeof p);
        CHK(p, lstat(p, &st));
        check_stat(o, &st, p);
        if (ob->type == T_LNK) {
            ssize_t r = readlink(p, (char *)buf, MAXOP);
            CHK("readlink", r);
            if ((size_t)r != ob->size || memcmp(buf, ob->data, ob->size) != 0)
                failure("%s: readlink gives %zd bytes, expected %zu (or other bytes)", p, r,
                        ob->size);
        }
    }
    if (!ob->nlinks)
        return;
    link_path(&ob->links[0], p, sizeof p);
    if (ob->type != T_LNK)
        check_xattrs(o, p);
    if (ob->type == T_REG && content) {
        int fd = open(p, O_RDONLY);
        CHK("open for a check", fd);
        check_content_fd(o, fd, "whole-file check");
        close(fd);
    }
}

/* ==== descriptors =========================================================== */

static int fd_of(int o)
{
    int c[MAXFD], n = 0;
    for (int i = 0; i < nfd; i++)
        if (fds[i].obj == o)
            c[n++] = i;
    return n ? fds[c[rn(n)]].fd : -1;
}

/* A descriptor of regular file O: one it keeps open or a new one (*tmp). */
static int get_fd(int o, int *tmp)
{
    int fd = fd_of(o);
    *tmp = 0;
    if (fd >= 0 && (objs[o].nlinks == 0 || rn(3)))
        return fd;
    if (objs[o].nlinks == 0)
        failure("internal: object %u has neither names nor descriptors", objs[o].id);
    char p[PATH_MAX];
    link_path(&objs[o].links[rn(objs[o].nlinks)], p, sizeof p);
    fd = open(p, O_RDWR);
    CHK("open", fd);
    *tmp = 1;
    return fd;
}

static void put_fd(int fd, int tmp)
{
    if (tmp)
        CHK("close", close(fd));
}

static void close_fd(int i)
{
    int o = fds[i].obj;
    CHK("close", close(fds[i].fd));
    fds[i] = fds[--nfd];
    if (--objs[o].nfds == 0 && objs[o].nlinks == 0)
        free_obj(o);
}

/* ==== operations ============================================================ */

static size_t pick_off(const struct obj *ob)
{
    switch (rn(6)) {
    case 0: return rn(128);
    case 1: return 4096 - 64 + rn(128);
    case 2: return ob->size > 64 ? ob->size - rn(64) : 0;
    default: return rn(ob->maxlen);
    }
}

static size_t pick_len(const struct obj *ob, size_t off)
{
    size_t lim = ob->maxlen > off ? ob->maxlen - off : 0;
    size_t len = rn(3) ? rn(4096) + 1 : rn(MAXOP) + 1;
    if (rn(4) == 0)
        len = rn(64) + 1;
    return len < lim ? len : lim;
}

static void op_create(void)
{
    if (count_type(T_REG) >= MAXOBJ / 2)
        return;
    int o = new_obj(T_REG);
    if (o < 0)
        return;
    struct obj *ob = &objs[o];
    struct link *l = &ob->links[0];
    l->parent = pick_parent();
    new_name(l->name);
    ob->nlinks = 1;
    ob->mode = rn(2) ? 0644 : 0600;
    ob->maxlen = rn(3) ? 8192 : rn(8) ? 256 * 1024 : maxlen;
    char p[PATH_MAX];
    link_path(l, p, sizeof p);
    logop("create %s (object %u)", p, ob->id);
    int fd = open(p, O_CREAT | O_EXCL | O_RDWR, ob->mode);
    CHK("create", fd);
    struct stat st;
    CHK("fstat", fstat(fd, &st));
    ob->ino = st.st_ino;
    check_stat(o, &st, p);
    if (rn(2)) {
        size_t len = pick_len(ob, 0);
        uint64_t t = new_tag(o);
        fill(buf, t, 0, len);
        ssize_t r = pwrite(fd, buf, len, 0);
        CHK("write after create", r);
        if ((size_t)r != len)
            failure("short write after create: %zd of %zu", r, len);
        model_write(ob, t, 0, len);
    }
    if (nfd < MAXFD && rn(3) == 0) {
        fds[nfd++] = (struct fdent){ fd, o };
        ob->nfds++;
    } else {
        CHK("close", close(fd));
    }
}

static void op_mkdir(void)
{
    if (count_type(T_DIR) >= MAXDIRS)
        return;
    int parent = pick_parent(), o = new_obj(T_DIR);
    if (o < 0)
        return;
    struct obj *ob = &objs[o];
    ob->links[0].parent = parent;
    new_name(ob->links[0].name);
    ob->nlinks = 1;
    ob->mode = rn(2) ? 0755 : 0700;
    char p[PATH_MAX];
    obj_path(o, p, sizeof p);
    logop("mkdir %s (object %u)", p, ob->id);
    CHK("mkdir", mkdir(p, ob->mode));
    struct stat st;
    CHK("lstat", lstat(p, &st));
    ob->ino = st.st_ino;
    check_stat(o, &st, p);
}

static void op_rmdir(void)
{
    int o = pick_obj(P_DIR);
    if (o < 0)
        return;
    char p[PATH_MAX];
    obj_path(o, p, sizeof p);
    int n = dir_entries(o);
    logop("rmdir %s (%d entries)", p, n);
    if (n) {
        expect("rmdir of a non-empty directory", rmdir(p), ENOTEMPTY);
        return;
    }
    CHK("rmdir", rmdir(p));
    free_obj(o);
    expect("lstat after rmdir", lstat(p, &(struct stat){ 0 }), ENOENT);
}

static void op_symlink(void)
{
    if (count_type(T_LNK) >= MAXOBJ / 4)
        return;
    int o = new_obj(T_LNK);
    if (o < 0)
        return;
    struct obj *ob = &objs[o];
    ob->links[0].parent = pick_parent();
    new_name(ob->links[0].name);
    ob->nlinks = 1;
    size_t len = rn(4) ? rn(80) + 1 : rn(8) ? rn(400) + 1 : rn(3000) + 1;
    reserve(ob, len + 1);
    for (size_t i = 0; i < len; i++)
        ob->data[i] = (uint8_t)('a' + (ob->id + i * 7 + (size_t)me) % 26);
    if (len > 1)
        ob->data[len / 2] = '/';
    ob->data[len] = 0;
    ob->size = len;
    char p[PATH_MAX];
    obj_path(o, p, sizeof p);
    logop("symlink %s (object %u, target of %zu bytes)", p, ob->id, len);
    CHK("symlink", symlink((char *)ob->data, p));
    struct stat st;
    CHK("lstat", lstat(p, &st));
    ob->ino = st.st_ino;
    check_stat(o, &st, p);
}

/* link(from, to) of object o failed with errno e: prints which of the
 * names the kernel did not find and what it and the daemon think of the
 * source. A FUSE kernel lowers a file's cached link count itself after an
 * unlink or rename over one of its names, also on top of an answer that
 * already had the lower count, and link(2) refuses a cached count of 0
 * with ENOENT without asking (docs/MOUNT.md, "Link counts the kernel
 * lowers itself"). That case, and only that (the source there with the
 * model's count by a statx that asks the filesystem, a name taken away
 * within the last second), is counted and the link retried after the
 * lstat below refreshed the count. Returns 1 if the retry linked. */
static int link_refused_stale(int o, const char *from, const char *to, int e)
{
    struct obj *ob = &objs[o];
    struct stat st;
    struct statx sx;
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", to);
    *strrchr(dir, '/') = '\0';
    int lr = lstat(from, &st), le = errno;
    fprintf(stderr, "stress: worker %d: link failed: model: %d names, one last taken away "
            "by operation %lu (%.3f s ago); lstat(source): %s, link count %ld\n", me,
            ob->nlinks, ob->lost_name_op, ob->lost_name_op ? now() - ob->lost_name_at : 0,
            lr ? strerror(le) : "exists", lr ? -1L : (long)st.st_nlink);
    int sr = statx(AT_FDCWD, from, AT_SYMLINK_NOFOLLOW | AT_STATX_FORCE_SYNC, STATX_NLINK,
                   &sx), se = errno;
    int dr = lstat(dir, &st);
    fprintf(stderr, "stress: worker %d: statx(source, FORCE_SYNC): %s, link count %ld; "
            "lstat(target directory): %s\n", me, sr ? strerror(se) : "exists",
            sr ? -1L : (long)sx.stx_nlink, dr ? strerror(errno) : "exists");
    if (e != ENOENT || lr || sr || dr || sx.stx_nlink != (unsigned)ob->nlinks ||
        !ob->lost_name_op || now() - ob->lost_name_at >= 1.0 || link(from, to) < 0)
        return 0;
    link_races++;
    fprintf(stderr, "stress: worker %d: the stale cached link count (a kernel race): "
            "link retried, done\n", me);
    return 1;
}

static void op_link(void)
{
    int o = pick_obj(P_NONDIR);
    if (o < 0 || objs[o].nlinks >= MAXLINK)
        return;
    struct obj *ob = &objs[o];
    struct link *nl = &ob->links[ob->nlinks];
    char from[PATH_MAX], to[PATH_MAX];
    link_path(&ob->links[rn(ob->nlinks)], from, sizeof from);
    nl->parent = pick_parent();
    new_name(nl->name);
    link_path(nl, to, sizeof to);
    logop("link %s -> %s", from, to);
    if (link(from, to) < 0) {
        int e = errno;
        if (!link_refused_stale(o, from, to, e)) {
            errno = e;
            CHK("link", -1);
        }
    }
    ob->nlinks++;
    struct stat st;
    CHK("lstat", lstat(to, &st));
    check_stat(o, &st, to);
}

static void op_unlink(void)
{
    int o = pick_obj(P_NONDIR);
    if (o < 0)
        return;
    int l = (int)rn(objs[o].nlinks);
    char p[PATH_MAX];
    link_path(&objs[o].links[l], p, sizeof p);
    logop("unlink %s (object %u, %d names, %d open)", p, objs[o].id, objs[o].nlinks,
          objs[o].nfds);
    int own = objs[o].links[l].name[0] == 'w';    /* a claim may be taken at once */
    CHK("unlink", unlink(p));
    drop_link(o, l);
    if (own)
        expect("lstat after unlink", lstat(p, &(struct stat){ 0 }), ENOENT);
}

/* Finds the object and link named by (parent, name); -1 if none. */
static int find_link(int parent, const char *name, int *lp)
{
    for (int o = 0; o < MAXOBJ; o++)
        for (int l = 0; l < objs[o].nlinks; l++)
            if (objs[o].links[l].parent == parent && strcmp(objs[o].links[l].name, name) == 0) {
                *lp = l;
                return o;
            }
    return -1;
}

static void op_rename(void)
{
    int so = pick_obj(P_RENAME);
    if (so < 0)
        return;
    int sl = (int)rn(objs[so].nlinks);
    struct link src = objs[so].links[sl], dst;
    int to = -1, tl = -1;
    unsigned flags = 0;
    if (rn(2)) {                    /* over an existing own name */
        to = pick_obj(P_RENAME);
        tl = (int)rn(objs[to].nlinks);
        dst = objs[to].links[tl];
        if (to == so && tl == sl)
            return;
        flags = rn(3) == 0 ? RENAME_EXCHANGE : rn(4) == 0 ? RENAME_NOREPLACE : 0;
    } else {
        dst.parent = pick_parent();
        new_name(dst.name);
        flags = rn(4) == 0 ? RENAME_NOREPLACE : 0;
    }
    char sp[PATH_MAX], dp[PATH_MAX];
    link_path(&src, sp, sizeof sp);
    link_path(&dst, dp, sizeof dp);
    int sdir = objs[so].type == T_DIR, tdir = to >= 0 && objs[to].type == T_DIR;
    /* the errno the model expects, in the order the kernel checks */
    int want = 0;
    if (to >= 0 && (flags & RENAME_NOREPLACE))
        want = EEXIST;
    else if (dst.parent >= 0 && under(dst.parent, so))
        want = EINVAL;              /* into its own subtree */
    else if (to >= 0 && src.parent >= 0 && under(src.parent, to))
        want = flags & RENAME_EXCHANGE ? EINVAL : ENOTEMPTY;    /* over its ancestor */
    else if (to == so || (flags & RENAME_EXCHANGE))
        want = 0;                   /* two names of one file: nothing happens */
    else if (to >= 0 && sdir && !tdir)
        want = ENOTDIR;
    else if (to >= 0 && !sdir && tdir)
        want = EISDIR;
    else if (to >= 0 && tdir && dir_entries(to))
        want = ENOTEMPTY;
    logop("rename%s %s -> %s (object %u, over %d)",
          flags == RENAME_EXCHANGE ? " EXCHANGE" : flags == RENAME_NOREPLACE ? " NOREPLACE" : "",
          sp, dp, objs[so].id, to >= 0 ? (int)objs[to].id : -1);
    long r = flags ? syscall(SYS_renameat2, AT_FDCWD, sp, AT_FDCWD, dp, flags) : rename(sp, dp);
    expect("rename", r, want);
    if (want)
        return;
    if (to == so)
        ;                           /* nothing changes */
    else if (flags & RENAME_EXCHANGE) {
        objs[so].links[sl] = dst;
        objs[to].links[tl] = src;
    } else {
        objs[so].links[sl] = dst;
        if (to >= 0) {
            if (objs[to].type == T_DIR)
                free_obj(to);
            else
                drop_link(to, tl);
        }
    }
    if (to != so && !(flags & RENAME_EXCHANGE))
        expect("lstat of the old name after rename", lstat(sp, &(struct stat){ 0 }), ENOENT);
    struct stat st;
    CHK("lstat after rename", lstat(dp, &st));
    check_stat(so, &st, dp);
}

/* Claims d0/claim.K: O_EXCL create or RENAME_NOREPLACE of an own file. */
static void op_claim(void)
{
    int k = (int)rn(NCLAIM), l;
    char name[NAMEBUF], p[PATH_MAX];
    snprintf(name, sizeof name, "claim.%d", k);
    if (find_link(SHARED(0), name, &l) >= 0)
        return;                     /* ours already */
    snprintf(p, sizeof p, "tree/d0/%s", name);
    int byrename = rn(2);
    int o = new_obj(T_REG);
    if (o < 0)
        return;
    struct obj *ob = &objs[o];
    ob->mode = 0644;
    ob->maxlen = 8192;
    ob->claim = k;
    char rec[32], tmp[PATH_MAX];
    int len = snprintf(rec, sizeof rec, "claim %2d worker %02d\n", k, me);
    ob->nlinks = 1;
    ob->links[0].parent = SHARED(0);
    logop("claim %s by %s", p, byrename ? "rename NOREPLACE" : "O_EXCL");
    if (byrename) {
        new_name(ob->links[0].name);
        link_path(&ob->links[0], tmp, sizeof tmp);
        int fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY, ob->mode);
        CHK("create for a claim", fd);
        CHK("write a claim", write(fd, rec, (size_t)len));
        CHK("close", close(fd));
        long r = syscall(SYS_renameat2, AT_FDCWD, tmp, AT_FDCWD, p, RENAME_NOREPLACE);
        if (r < 0 && errno != EEXIST)
            failure("rename NOREPLACE of a claim: %s", strerror(errno));
        if (r == 0)
            strcpy(ob->links[0].name, name);
    } else {
        int fd = open(p, O_CREAT | O_EXCL | O_WRONLY, ob->mode);
        if (fd < 0 && errno != EEXIST)
            failure("O_EXCL create of a claim: %s", strerror(errno));
        if (fd < 0) {
            free_obj(o);
            return;
        }
        strcpy(ob->links[0].name, name);
        CHK("write a claim", write(fd, rec, (size_t)len));
        CHK("close", close(fd));
    }
    memcpy(ob->data = xmalloc(4096), rec, (size_t)len);
    ob->cap = 4096;
    ob->size = (size_t)len;
    ob->hist[ob->nhist++] = 0;
    link_path(&ob->links[0], tmp, sizeof tmp);
    struct stat st;
    CHK("lstat of a claim", lstat(tmp, &st));
    ob->ino = st.st_ino;
    check_stat(o, &st, tmp);
}

/* Reads a claim that may be anybody's: empty (being written) or one record
 * of a worker that does not think it is ours unless it is. */
static void op_read_claim(void)
{
    int k = (int)rn(NCLAIM), l;
    char p[PATH_MAX], name[NAMEBUF];
    snprintf(name, sizeof name, "claim.%d", k);
    snprintf(p, sizeof p, "tree/d0/%s", name);
    int o = find_link(SHARED(0), name, &l);
    logop("read claim %s (%s)", p, o >= 0 ? "ours" : "not ours");
    int fd = open(p, O_RDONLY | O_NOFOLLOW);
    if (fd < 0) {
        if (errno != ENOENT || o >= 0)
            failure("open %s: %s", p, strerror(errno));
        return;
    }
    ssize_t r = read(fd, buf, 64);
    CHK("read a claim", r);
    close(fd);
    if (o >= 0)
        return;                     /* its content is checked as an own file */
    int ck, w;
    buf[r] = 0;
    if (r == 0)
        return;
    if (sscanf((char *)buf, "claim %d worker %d\n", &ck, &w) != 2 || ck != k || w < 0 ||
        w >= nworkers || w == me)
        failure("%s holds %zd bytes \"%.40s\": not a claim record of another worker", p, r,
                (char *)buf);
}

static void op_write(int append)
{
    int o = pick_obj(P_REG);
    if (o < 0)
        return;
    struct obj *ob = &objs[o];
    size_t off = append ? ob->size : pick_off(ob);
    size_t len = pick_len(ob, off);
    if (len == 0)
        return;
    uint64_t t = new_tag(o);
    fill(buf, t, off, len);
    int tmp = 0, fd;
    if (append) {
        if (!ob->nlinks)
            return;
        char p[PATH_MAX];
        link_path(&ob->links[rn(ob->nlinks)], p, sizeof p);
        logop("append %s +%zu at %zu", p, len, off);
        fd = open(p, O_RDWR | O_APPEND);
        CHK("open K_APPEND", fd);
        tmp = 1;
    } else {
        fd = get_fd(o, &tmp);
        logop("pwrite object %u %zu +%zu (size %zu)", ob->id, off, len, ob->size);
    }
    ssize_t r = append ? write(fd, buf, len) : pwrite(fd, buf, len, (off_t)off);
    CHK("write", r);
    if ((size_t)r != len)
        failure("short write: %zd of %zu", r, len);
    model_write(ob, t, off, len);
    if (rn(8) == 0) {
        logop("read back object %u %zu +%zu", ob->id, off, len);
        r = pread(fd, buf2, len, (off_t)off);
        CHK("pread after write", r);
        if ((size_t)r != len)
            failure("short read after write: %zd of %zu", r, len);
        compare(o, "read after write", off, buf2, len);
    }
    put_fd(fd, tmp);
}

static void op_read(void)
{
    int o = pick_obj(P_REG);
    if (o < 0)
        return;
    struct obj *ob = &objs[o];
    size_t off = rn(8) ? rn(ob->size + 1) : pick_off(ob);
    size_t len = rn(2) ? rn(4096) + 1 : rn(MAXOP) + 1;
    int tmp, fd = get_fd(o, &tmp);
    logop("pread object %u %zu +%zu (size %zu)", ob->id, off, len, ob->size);
    ssize_t r = pread(fd, buf, len, (off_t)off);
    CHK("pread", r);
    size_t want = off < ob->size ? ob->size - off : 0;
    if (want > len)
        want = len;
    if ((size_t)r != want)
        failure("pread returned %zd bytes, expected %zu", r, want);
    compare(o, "pread", off, buf, want);
    put_fd(fd, tmp);
}

static void op_dio_read(void)
{
    int o = pick_obj(P_REG);
    if (o < 0 || !use_direct || !objs[o].nlinks)
        return;
    struct obj *ob = &objs[o];
    char p[PATH_MAX];
    link_path(&ob->links[rn(ob->nlinks)], p, sizeof p);
    size_t off = rn(ob->size / ALIGN + 1) * ALIGN, len = (rn(8) + 1) * ALIGN;
    logop("O_DIRECT read %s %zu +%zu (size %zu)", p, off, len, ob->size);
    int fd = open(p, O_RDONLY | O_DIRECT);
    if (fd < 0 && errno == EINVAL) {
        use_direct = 0;
        return;
    }
    CHK("open O_DIRECT", fd);
    ssize_t r = pread(fd, dbuf, len, (off_t)off);
    CHK("O_DIRECT pread", r);
    size_t want = off < ob->size ? ob->size - off : 0;
    if (want > len)
        want = len;
    if ((size_t)r != want)
        failure("O_DIRECT pread returned %zd bytes, expected %zu", r, want);
    compare(o, "O_DIRECT pread", off, dbuf, want);
    CHK("close", close(fd));
}

static void op_truncate(void)
{
    int o = pick_obj(P_REG);
    if (o < 0)
        return;
    struct obj *ob = &objs[o];
    size_t size = rn(3) == 0 ? 0 : rn(2) ? rn(ob->size + 1) : rn(ob->maxlen + 1);
    if (rn(4) == 0)
        size = rn(200);
    if (ob->nlinks && rn(3) == 0) {
        char p[PATH_MAX];
        link_path(&ob->links[rn(ob->nlinks)], p, sizeof p);
        logop("truncate %s %zu -> %zu", p, ob->size, size);
        CHK("truncate", truncate(p, (off_t)size));
    } else {
        int tmp, fd = get_fd(o, &tmp);
        logop("ftruncate object %u %zu -> %zu", ob->id, ob->size, size);
        CHK("ftruncate", ftruncate(fd, (off_t)size));
        put_fd(fd, tmp);
    }
    model_resize(ob, size);
    ob->mtime_known = 0;
}

static void op_fallocate(void)
{
    static const struct { int mode; const char *name; } modes[] = {
        { 0, "0" }, { FALLOC_FL_KEEP_SIZE, "KEEP_SIZE" },
        { FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, "PUNCH_HOLE" },
        { FALLOC_FL_ZERO_RANGE, "ZERO_RANGE" },
        { FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, "ZERO_RANGE|KEEP_SIZE" },
    };
    int o = pick_obj(P_REG);
    if (o < 0)
        return;
    struct obj *ob = &objs[o];
    int m = (int)rn(5);
    size_t off = m == 2 || rn(2) ? rn(ob->size + 1) : pick_off(ob);
    size_t len = pick_len(ob, off);
    if (len == 0)
        return;
    int tmp, fd = get_fd(o, &tmp);
    logop("fallocate %s object %u %zu +%zu (size %zu)", modes[m].name, ob->id, off, len, ob->size);
    CHK("fallocate", fallocate(fd, modes[m].mode, (off_t)off, (off_t)len));
    size_t end = off + len;
    if (m == 2 || m == 3 || m == 4) {   /* the range reads as zeros */
        size_t zend = end < ob->size ? end : ob->size;
        if (off < zend)
            memset(ob->data + off, 0, zend - off);
    }
    if (!(modes[m].mode & FALLOC_FL_KEEP_SIZE) && end > ob->size)
        model_resize(ob, end);
    ob->mtime_known = 0;
    put_fd(fd, tmp);
}

static void op_mmap(int write)
{
    int o = pick_obj(P_REG);
    if (o < 0 || objs[o].size == 0)
        return;
    struct obj *ob = &objs[o];
    size_t pgoff = rn((ob->size + (size_t)page - 1) / (size_t)page) * (size_t)page;
    size_t maplen = ob->size - pgoff;
    if (maplen > 256 * 1024)
        maplen = rn(256 * 1024) + 1;
    size_t off = pgoff + rn(maplen), len = rn(maplen - (off - pgoff)) + 1;
    int tmp, fd = get_fd(o, &tmp);
    logop("mmap %s object %u %zu +%zu (size %zu)", write ? "write" : "read", ob->id, off, len,
          ob->size);
    uint8_t *m = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)pgoff);
    if (m == MAP_FAILED)
        failure("mmap: %s", strerror(errno));
    if (write) {
        uint64_t t = new_tag(o);
        fill(m + (off - pgoff), t, off, len);
        model_write(ob, t, off, len);
        if (rn(2))
            CHK("msync", msync(m, maplen, MS_SYNC));
        else
            ob->mmap_dirty = 1;
    } else {
        compare(o, "mmap read", off, m + (off - pgoff), len);
    }
    CHK("munmap", munmap(m, maplen));
    put_fd(fd, tmp);
}

static void op_sync(void)
{
    int o = pick_obj(P_REG);
    if (o < 0)
        return;
    int tmp, fd = get_fd(o, &tmp), kind = (int)rn(3);
    logop("%s object %u", kind == 0 ? "fsync" : kind == 1 ? "fdatasync" : "drop cache of",
          objs[o].id);
    if (kind == 0)
        CHK("fsync", fsync(fd));
    else
        CHK("fdatasync", fdatasync(fd));
    if (kind == 2) {
        CHK("posix_fadvise DONTNEED", -posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED));
        check_content_fd(o, fd, "read after dropping the cache");
    }
    objs[o].mmap_dirty = 0;
    put_fd(fd, tmp);
}

static void op_fsync_dir(void)
{
    int d = rn(2) ? pick_obj(P_DIR) : -1;
    char p[PATH_MAX];
    dir_path(d >= 0 ? d : SHARED((int)rn(ndirs)), p, sizeof p);
    logop("fsync directory %s", p);
    int fd = open(p, O_RDONLY | O_DIRECTORY);
    CHK("open directory", fd);
    CHK("fsync directory", fsync(fd));
    CHK("close", close(fd));
}

static void op_open_close(void)
{
    if (nfd && (nfd >= MAXFD || rn(2))) {
        int i = (int)rn(nfd);
        logop("close object %u (%d names)", objs[fds[i].obj].id, objs[fds[i].obj].nlinks);
        close_fd(i);
        return;
    }
    int o = pick_obj(P_REG);
    if (o < 0 || !objs[o].nlinks)
        return;
    char p[PATH_MAX];
    link_path(&objs[o].links[rn(objs[o].nlinks)], p, sizeof p);
    logop("open %s (object %u)", p, objs[o].id);
    int fd = open(p, O_RDWR);
    CHK("open", fd);
    fds[nfd++] = (struct fdent){ fd, o };
    objs[o].nfds++;
}

static void op_xattr(void)
{
    int o = pick_obj(P_XATTR);
    if (o < 0)
        return;
    struct obj *ob = &objs[o];
    char p[PATH_MAX], key[16];
    link_path(&ob->links[rn(ob->nlinks)], p, sizeof p);
    int k = (int)rn(NXATTR);
    snprintf(key, sizeof key, "user.s%d", k);
    int present = ob->xlen[k] >= 0;
    if (rn(3) == 0) {
        logop("removexattr %s %s (%s)", p, key, present ? "present" : "absent");
        expect("lremovexattr", lremovexattr(p, key), present ? 0 : ENODATA);
        ob->xlen[k] = -1;
        return;
    }
    int flags = rn(3) == 0 ? XATTR_CREATE : rn(2) ? XATTR_REPLACE : 0;
    int len = rn(4) ? (int)rn(64) : (int)rn(XATTR_MAX + 1);
    for (int i = 0; i < len; i++)
        buf2[i] = (uint8_t)mix(opnum * 1000 + (uint64_t)i);
    int want = flags == XATTR_CREATE && present ? EEXIST
             : flags == XATTR_REPLACE && !present ? ENODATA : 0;
    logop("setxattr %s %s %d bytes flags %d (%s)", p, key, len, flags,
          present ? "present" : "absent");
    expect("lsetxattr", lsetxattr(p, key, buf2, (size_t)len, flags), want);
    if (!want) {
        ob->xlen[k] = len;
        memcpy(ob->xval[k], buf2, (size_t)len);
    }
}

static void op_chmod_utimes(void)
{
    int o = pick_obj(rn(2) ? P_XATTR : P_TIMES);
    if (o < 0)
        return;
    struct obj *ob = &objs[o];
    char p[PATH_MAX];
    link_path(&ob->links[rn(ob->nlinks)], p, sizeof p);
    if (ob->type != T_LNK && rn(2)) {
        static const mode_t fm[] = { 0600, 0644, 0664, 0700, 0755, 0640, 04755, 02755, 06755, 02644 };
        static const mode_t dm[] = { 0755, 0700, 0775, 0711 };
        mode_t m = ob->type == T_DIR ? dm[rn(4)] : fm[rn(10)];
        logop("chmod %s %o", p, m);
        CHK("chmod", chmod(p, m));
        ob->mode = m;
    } else if (ob->type != T_DIR) {
        struct timespec ts[2];
        ts[0].tv_sec = 1000000000 + (time_t)rn(600000000);
        ts[0].tv_nsec = (long)rn(1000000000);
        ts[1].tv_sec = 1000000000 + (time_t)rn(600000000);
        ts[1].tv_nsec = (long)rn(1000000000);
        logop("utimensat %s mtime %lld.%09ld", p, (long long)ts[1].tv_sec, ts[1].tv_nsec);
        CHK("utimensat", utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW));
        ob->mtime = ts[1];
        ob->mtime_known = !ob->mmap_dirty;  /* a late writeback may stamp it */
    } else {
        return;
    }
    struct stat st;
    CHK("lstat", lstat(p, &st));
    check_stat(o, &st, p);
}

/* copy_file_range from one of our files to another (or to a range of the
 * same file that does not overlap): a short copy is legal, a copy of
 * nothing is not when the source has bytes at the offset. */
static void op_copy_range(void)
{
    int so = pick_obj(P_REG), dso = pick_obj(P_REG);
    if (so < 0 || dso < 0)
        return;
    struct obj *src = &objs[so], *dst = &objs[dso];
    size_t soff = rn(4) ? pick_off(src) : rn(src->size + 1);
    size_t len = pick_len(src, soff), doff = rn(2) ? pick_off(dst) : dst->size;
    if (len == 0 || (so == dso && soff < doff + len && doff < soff + len))
        return;
    int stmp, dtmp, sfd = get_fd(so, &stmp);
    int dfd = so == dso ? sfd : get_fd(dso, &dtmp);
    logop("copy_file_range object %u %zu +%zu (size %zu) -> object %u %zu (size %zu)",
          src->id, soff, len, src->size, dst->id, doff, dst->size);
    loff_t in = (loff_t)soff, out = (loff_t)doff;
    ssize_t r = copy_file_range(sfd, &in, dfd, &out, len, 0);
    CHK("copy_file_range", r);
    size_t want = soff < src->size ? src->size - soff : 0;
    if (want > len)
        want = len;
    if ((size_t)r > want || (want > 0 && r == 0))
        failure("copy_file_range copied %zd bytes, expected 1..%zu", r, want);
    if (in != (loff_t)(soff + (size_t)r) || out != (loff_t)(doff + (size_t)r))
        failure("copy_file_range left the offsets at %lld and %lld, expected %zu and %zu",
                (long long)in, (long long)out, soff + (size_t)r, doff + (size_t)r);
    if (r > 0) {
        reserve(dst, doff + (size_t)r);
        memmove(dst->data + doff, src->data + soff, (size_t)r);  /* src may move in reserve */
        if (doff + (size_t)r > dst->size)
            dst->size = doff + (size_t)r;
        dst->mtime_known = 0;
    }
    if (so != dso)
        put_fd(dfd, dtmp);
    put_fd(sfd, stmp);
}

/* lseek SEEK_DATA and SEEK_HOLE: a hole reads as zeros, data starts at or
 * after the offset, the end of the file is a hole, and past it both give
 * ENXIO. Where the file system puts holes is its choice. */
static void op_seek(void)
{
    int o = pick_obj(P_REG);
    if (o < 0)
        return;
    struct obj *ob = &objs[o];
    size_t off = rn(8) ? rn(ob->size + 1) : ob->size + rn(8192);
    int tmp, fd = get_fd(o, &tmp);
    logop("lseek SEEK_DATA/SEEK_HOLE object %u %zu (size %zu)", ob->id, off, ob->size);
    off_t d = lseek(fd, (off_t)off, SEEK_DATA);
    int derr = d < 0 ? errno : 0;
    off_t h = lseek(fd, (off_t)off, SEEK_HOLE);
    int herr = h < 0 ? errno : 0;
    if (off >= ob->size) {
        if (derr != ENXIO || herr != ENXIO)
            failure("lseek at %zu of %zu bytes: SEEK_DATA %lld (%s), SEEK_HOLE %lld (%s), "
                    "expected ENXIO", off, ob->size, (long long)d, strerror(derr), (long long)h,
                    strerror(herr));
        put_fd(fd, tmp);
        return;
    }
    if (herr || h < (off_t)off || h > (off_t)ob->size)
        failure("SEEK_HOLE at %zu returned %lld (%s), expected %zu..%zu", off, (long long)h,
                strerror(herr), off, ob->size);
    size_t zend = ob->size;     /* the model's bytes from off up to here must be zero */
    if (derr == 0) {
        if (d < (off_t)off || d >= (off_t)ob->size)
            failure("SEEK_DATA at %zu returned %lld, expected %zu..%zu", off, (long long)d,
                    off, ob->size - 1);
        zend = (size_t)d;
    } else if (derr != ENXIO) {
        failure("SEEK_DATA at %zu: %s", off, strerror(derr));
    }
    for (size_t i = off; i < zend; i++)
        if (ob->data[i])
            failure("SEEK_DATA at %zu skipped to %zu, but byte %zu is data (%02x)", off, zend,
                    i, ob->data[i]);
    if ((size_t)h < ob->size) {
        /* the hole reported at h reads as zeros up to the next data */
        off_t nd = lseek(fd, h, SEEK_DATA);
        size_t hend = nd < 0 ? ob->size : (size_t)nd;
        if (nd < 0 && errno != ENXIO)
            failure("SEEK_DATA at %lld: %s", (long long)h, strerror(errno));
        for (size_t i = (size_t)h; i < hend; i++)
            if (ob->data[i])
                failure("SEEK_HOLE at %zu found a hole at %lld, but byte %zu is data (%02x)",
                        off, (long long)h, i, ob->data[i]);
    }
    put_fd(fd, tmp);
}

/* lchown to one of a few owners (as root only): a regular file loses
 * S_ISUID, and S_ISGID when group-executable, even for root (ext4). */
static void op_chown(void)
{
    static const uid_t ids[] = { 0, 1000, 1001, 65534 };
    int o = pick_obj(P_CHECK);
    if (o < 0 || geteuid() != 0)
        return;
    struct obj *ob = &objs[o];
    char p[PATH_MAX];
    link_path(&ob->links[rn(ob->nlinks)], p, sizeof p);
    uid_t u = ids[rn(4)];
    gid_t g = (gid_t)ids[rn(4)];
    logop("lchown %s %u:%u", p, (unsigned)u, (unsigned)g);
    CHK("lchown", lchown(p, u, g));
    ob->uid = u;
    ob->gid = g;
    if (ob->type == T_REG) {
        ob->mode &= ~(mode_t)S_ISUID;
        if (ob->mode & S_IXGRP)
            ob->mode &= ~(mode_t)S_ISGID;
    }
    struct stat st;
    CHK("lstat", lstat(p, &st));
    check_stat(o, &st, p);
}

/* Lists directory PARENT with getdents64 through a buffer of random size;
 * in a shared directory checks our own entries, in an own one all. */
static void op_readdir(int parent)
{
    char p[PATH_MAX];
    dir_path(parent, p, sizeof p);
    size_t bufsz = rn(2) ? 512 + rn(4096) : 32768;
    logop("readdir %s (buffer %zu)", p, bufsz);
    int fd = open(p, O_RDONLY | O_DIRECTORY);
    CHK("open directory", fd);
    int seen[MAXOBJ][MAXLINK];
    memset(seen, 0, sizeof seen);
    char prefix[8];
    int plen = snprintf(prefix, sizeof prefix, "w%02d.", me), dots = 0;
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buf, bufsz);
        CHK("getdents64", n);
        if (n == 0)
            break;
        for (long i = 0; i < n;) {
            struct dirent64 *de = (struct dirent64 *)(buf + i);
            i += de->d_reclen;
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) {
                dots++;
                continue;
            }
            int l, o = find_link(parent, de->d_name, &l);
            if (o < 0) {
                if (parent >= 0 || !strncmp(de->d_name, prefix, (size_t)plen))
                    failure("readdir %s: entry %s is not ours (removed, or never made)", p,
                            de->d_name);
                continue;
            }
            if (seen[o][l]++)
                failure("readdir %s: entry %s listed twice", p, de->d_name);
            unsigned char dt = objs[o].type == T_REG ? DT_REG : objs[o].type == T_DIR ? DT_DIR
                                                                                     : DT_LNK;
            if (de->d_type != DT_UNKNOWN && de->d_type != dt)
                failure("readdir %s: entry %s has d_type %d, expected %d", p, de->d_name,
                        de->d_type, dt);
        }
    }
    CHK("close", close(fd));
    if (dots != 2)
        failure("readdir %s: %d entries . and ..", p, dots);
    for (int o = 0; o < MAXOBJ; o++)
        for (int l = 0; l < objs[o].nlinks; l++)
            if (objs[o].links[l].parent == parent && !seen[o][l])
                failure("readdir %s: own entry %s missing", p, objs[o].links[l].name);
}

/* Stats and reads entries of other workers: only errors are checked. */
static void op_foreign(void)
{
    char p[PATH_MAX];
    int j = (int)rn(ndirs);
    dir_path(SHARED(j), p, sizeof p);
    logop("read other workers' entries in %s", p);
    DIR *d = opendir(p);
    if (!d)
        failure("opendir %s: %s", p, strerror(errno));
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d)) && n < 4) {
        if (de->d_name[0] != 'w' || rn(4))
            continue;
        char q[PATH_MAX + NAMEBUF];
        snprintf(q, sizeof q, "%s/%s", p, de->d_name);
        struct stat st;
        if (lstat(q, &st) < 0) {
            if (errno != ENOENT)
                failure("lstat %s: %s", q, strerror(errno));
            continue;
        }
        n++;
        if (!S_ISREG(st.st_mode))
            continue;
        int fd = open(q, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0) {
            if (errno != ENOENT && errno != ELOOP)
                failure("open %s: %s", q, strerror(errno));
            continue;
        }
        ssize_t r = pread(fd, buf, MAXOP, (off_t)rn((uint64_t)st.st_size + 1));
        if (r < 0 && errno != EISDIR)
            failure("pread %s: %s", q, strerror(errno));
        close(fd);
    }
    closedir(d);
}

static void op_statfs(void)
{
    struct statfs sf;
    logop("statfs");
    CHK("statfs", statfs("tree", &sf));
    if (sf.f_bfree > sf.f_blocks || sf.f_bavail > sf.f_bfree || sf.f_ffree > sf.f_files)
        failure("statfs: blocks %llu free %llu avail %llu, files %llu free %llu",
                (unsigned long long)sf.f_blocks, (unsigned long long)sf.f_bfree,
                (unsigned long long)sf.f_bavail, (unsigned long long)sf.f_files,
                (unsigned long long)sf.f_ffree);
}

static void op_check_obj(void)
{
    int o = pick_obj(P_CHECK);
    if (o < 0)
        return;
    char p[PATH_MAX];
    obj_path(o, p, sizeof p);
    logop("check object %u %s", objs[o].id, p);
    check_obj(o, rn(4) == 0);
}

/* ==== the worker ============================================================ */

enum {
    K_CREATE, K_MKDIR, K_RMDIR, K_SYMLINK, K_LINK, K_UNLINK, K_RENAME, K_CLAIM, K_RCLAIM,
    K_WRITE, K_APPEND, K_READ, K_DIO, K_TRUNC, K_FALLOC, K_MAPW, K_MAPR, K_SYNC, K_FSYNCDIR,
    K_OPEN, K_XATTR, K_ATTR, K_READDIR, K_FOREIGN, K_STATFS, K_CHECK, K_COPY, K_SEEK, K_CHOWN,
    K_NOPS
};
static const struct { const char *name; int weight; } optab[K_NOPS] = {
    [K_CREATE] = { "create", 8 },   [K_MKDIR] = { "mkdir", 2 },     [K_RMDIR] = { "rmdir", 2 },
    [K_SYMLINK] = { "symlink", 2 }, [K_LINK] = { "link", 3 },       [K_UNLINK] = { "unlink", 6 },
    [K_RENAME] = { "rename", 9 },   [K_CLAIM] = { "claim", 2 },     [K_RCLAIM] = { "readclaim", 2 },
    [K_WRITE] = { "write", 16 },    [K_APPEND] = { "append", 2 },   [K_READ] = { "read", 10 },
    [K_DIO] = { "directread", 2 },  [K_TRUNC] = { "truncate", 4 },  [K_FALLOC] = { "fallocate", 5 },
    [K_MAPW] = { "mapwrite", 3 },   [K_MAPR] = { "mapread", 2 },    [K_SYNC] = { "sync", 4 },
    [K_FSYNCDIR] = { "fsyncdir", 1 }, [K_OPEN] = { "openclose", 4 }, [K_XATTR] = { "xattr", 4 },
    [K_ATTR] = { "chmod/utimes", 3 }, [K_READDIR] = { "readdir", 4 }, [K_FOREIGN] = { "foreign", 3 },
    [K_STATFS] = { "statfs", 1 },   [K_CHECK] = { "check", 5 },     [K_COPY] = { "copyrange", 3 },
    [K_SEEK] = { "seek", 3 },       [K_CHOWN] = { "chown", 2 },
};

static void one_op(void)
{
    int total = 0;
    for (int i = 0; i < K_NOPS; i++)
        total += optab[i].weight;
    int r = (int)rn((uint64_t)total), op = 0;
    while (r >= optab[op].weight)
        r -= optab[op++].weight;
    opcount[op]++;
    switch (op) {
    case K_CREATE: op_create(); break;
    case K_MKDIR: op_mkdir(); break;
    case K_RMDIR: op_rmdir(); break;
    case K_SYMLINK: op_symlink(); break;
    case K_LINK: op_link(); break;
    case K_UNLINK: op_unlink(); break;
    case K_RENAME: op_rename(); break;
    case K_CLAIM: op_claim(); break;
    case K_RCLAIM: op_read_claim(); break;
    case K_WRITE: op_write(0); break;
    case K_APPEND: op_write(1); break;
    case K_READ: op_read(); break;
    case K_DIO: op_dio_read(); break;
    case K_TRUNC: op_truncate(); break;
    case K_FALLOC: op_fallocate(); break;
    case K_MAPW: op_mmap(1); break;
    case K_MAPR: op_mmap(0); break;
    case K_SYNC: op_sync(); break;
    case K_FSYNCDIR: op_fsync_dir(); break;
    case K_OPEN: op_open_close(); break;
    case K_XATTR: op_xattr(); break;
    case K_ATTR: op_chmod_utimes(); break;
    case K_READDIR: {
        int d = rn(3) ? -1 : pick_obj(P_DIR);
        op_readdir(d >= 0 ? d : SHARED((int)rn(ndirs)));
        break;
    }
    case K_FOREIGN: op_foreign(); break;
    case K_STATFS: op_statfs(); break;
    case K_CHECK: op_check_obj(); break;
    case K_COPY: op_copy_range(); break;
    case K_SEEK: op_seek(); break;
    case K_CHOWN: op_chown(); break;
    }
}

/* Writes the model of worker ME to DUMPDIR/wNN (text) and wNN.ID (bytes). */
static void save_model(void)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/w%02d", dumpdir, me);
    FILE *f = fopen(p, "w");
    if (!f)
        failure("create %s: %s", p, strerror(errno));
    for (int o = 0; o < MAXOBJ; o++) {
        struct obj *ob = &objs[o];
        if (ob->type == T_FREE)
            continue;
        fprintf(f, "obj %u %d %o %zu %llu %d %lld %ld %d %u %u\n", ob->id, ob->type, ob->mode,
                ob->size, (unsigned long long)ob->ino, ob->mtime_known && !ob->mmap_dirty,
                (long long)ob->mtime.tv_sec, ob->mtime.tv_nsec, ob->nlinks, (unsigned)ob->uid,
                (unsigned)ob->gid);
        for (int l = 0; l < ob->nlinks; l++) {
            char lp[PATH_MAX];
            link_path(&ob->links[l], lp, sizeof lp);
            fprintf(f, "link %s\n", lp);
        }
        for (int k = 0; k < NXATTR; k++) {
            if (ob->xlen[k] < 0)
                continue;
            fprintf(f, "xattr %d %d ", k, ob->xlen[k]);
            for (int i = 0; i < ob->xlen[k]; i++)
                fprintf(f, "%02x", ob->xval[k][i]);
            fputc('\n', f);
        }
        if (ob->type != T_DIR) {
            char dp[PATH_MAX];
            snprintf(dp, sizeof dp, "%s/w%02d.%u", dumpdir, me, ob->id);
            FILE *d = fopen(dp, "w");
            if (!d || (ob->size && fwrite(ob->data, 1, ob->size, d) != ob->size) ||
                fclose(d) != 0)
                failure("write %s: %s", dp, strerror(errno));
        }
        fprintf(f, "end\n");
    }
    if (fclose(f) != 0)
        failure("write %s: %s", p, strerror(errno));
}

static int worker(void)
{
    rng_state = seed + (uint64_t)me;
    double end = now() + seconds;
    while ((!max_ops || opnum < max_ops) && (opnum & 15 || now() < end)) {
        one_op();
        opnum++;
    }
    logop("end: close every descriptor, check every object");
    while (nfd)
        close_fd(nfd - 1);
    for (int o = 0; o < MAXOBJ; o++)
        if (objs[o].type != T_FREE)
            check_obj(o, 1);
    op_readdir(SHARED(0));
    save_model();
    char line[2048];
    int len = snprintf(line, sizeof line, "stress: worker %d: %lu operations:", me, opnum);
    for (int i = 0; i < K_NOPS; i++)
        len += snprintf(line + len, sizeof line - (size_t)len, " %s %lu", optab[i].name,
                        opcount[i]);
    if (link_races)
        snprintf(line + len, sizeof line - (size_t)len, " (link retried after a stale cached "
                 "link count: %lu)", link_races);
    printf("%s\n", line);
    return 0;
}

/* ==== checking the whole tree against all saved models ====================== */

/* Loads the models of all workers from DUMPDIR into objs[] (worker numbers
 * are kept in the global me only for messages). Returns the object count. */
struct entry {
    char *path;
    int obj, seen;
};
static struct entry *entries;
static int nentries, centries;

static int nobjs_all;
static struct obj *all;

static void load_models(void)
{
    for (int w = 0; w < nworkers; w++) {
        char p[PATH_MAX], line[8192];
        snprintf(p, sizeof p, "%s/w%02d", dumpdir, w);
        FILE *f = fopen(p, "r");
        if (!f)
            failure("open %s: %s", p, strerror(errno));
        struct obj *ob = NULL;
        while (fgets(line, sizeof line, f)) {
            line[strcspn(line, "\n")] = 0;
            if (!strncmp(line, "obj ", 4)) {
                all = realloc(all, sizeof *all * (size_t)(nobjs_all + 1));
                if (!all)
                    failure("out of memory");
                ob = &all[nobjs_all++];
                memset(ob, 0, sizeof *ob);
                unsigned long long ino;
                long long sec;
                int type, nl;
                unsigned uid, gid;
                if (sscanf(line, "obj %u %d %o %zu %llu %d %lld %ld %d %u %u", &ob->id, &type,
                           &ob->mode, &ob->size, &ino, &ob->mtime_known, &sec,
                           &ob->mtime.tv_nsec, &nl, &uid, &gid) != 11)
                    failure("%s: bad line %s", p, line);
                ob->uid = (uid_t)uid;
                ob->gid = (gid_t)gid;
                ob->type = (enum otype)type;
                ob->ino = (ino_t)ino;
                ob->mtime.tv_sec = (time_t)sec;
                ob->claim = w;          /* here: the owner */
                for (int k = 0; k < NXATTR; k++)
                    ob->xlen[k] = -1;
                if (ob->type != T_DIR) {
                    char dp[PATH_MAX];
                    snprintf(dp, sizeof dp, "%s/w%02d.%u", dumpdir, w, ob->id);
                    ob->data = xmalloc(ob->size + 1);
                    ob->cap = ob->size + 1;
                    FILE *d = fopen(dp, "r");
                    if (!d || fread(ob->data, 1, ob->size, d) != ob->size)
                        failure("read %s", dp);
                    fclose(d);
                }
            } else if (!strncmp(line, "link ", 5) && ob) {
                if (nentries == centries) {
                    centries = centries ? 2 * centries : 256;
                    entries = realloc(entries, sizeof *entries * (size_t)centries);
                    if (!entries)
                        failure("out of memory");
                }
                entries[nentries++] = (struct entry){ strdup(line + 5), nobjs_all - 1, 0 };
                ob->nlinks++;
            } else if (!strncmp(line, "xattr ", 6) && ob) {
                int k, len, pos;
                if (sscanf(line, "xattr %d %d %n", &k, &len, &pos) != 2 || k < 0 ||
                    k >= NXATTR || len > XATTR_MAX)
                    failure("%s: bad line %s", p, line);
                ob->xlen[k] = len;
                for (int i = 0; i < len; i++) {
                    unsigned v;
                    sscanf(line + pos + 2 * i, "%2x", &v);
                    ob->xval[k][i] = (uint8_t)v;
                }
            } else if (strcmp(line, "end") != 0) {
                failure("%s: bad line %s", p, line);
            }
        }
        fclose(f);
    }
}

static int find_entry(const char *path)
{
    for (int i = 0; i < nentries; i++)
        if (!strcmp(entries[i].path, path))
            return i;
    return -1;
}

/* Walks DIR/tree: every entry must be exactly one of the models' names. */
static void walk(const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (!d)
        failure("opendir %s: %s", dir, strerror(errno));
    struct dirent *de;
    int subdirs = 0;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(p, &st) < 0)
            failure("lstat %s: %s", p, strerror(errno));
        subdirs += S_ISDIR(st.st_mode);
        if (depth == 0) {
            int j;
            if (sscanf(de->d_name, "d%d", &j) != 1 || j < 0 || j >= ndirs || !S_ISDIR(st.st_mode))
                failure("unexpected entry %s", p);
            walk(p, 1);
            continue;
        }
        int e = find_entry(p);
        if (e < 0)
            failure("%s is in no worker's model (a leftover or a name that should be gone)", p);
        if (entries[e].seen++)
            failure("%s listed twice", p);
        if (S_ISDIR(st.st_mode))
            walk(p, depth + 1);
    }
    closedir(d);
    struct stat st;
    if (lstat(dir, &st) < 0)
        failure("lstat %s: %s", dir, strerror(errno));
    if (st.st_nlink != (nlink_t)(2 + subdirs))
        failure("%s: link count %lu, expected %d (2 + %d subdirectories)", dir,
                (unsigned long)st.st_nlink, 2 + subdirs, subdirs);
}

static int check_tree(int content)
{
    load_models();
    walk("tree", 0);
    for (int i = 0; i < nentries; i++)
        if (!entries[i].seen)
            failure("%s (worker %d's) is missing", entries[i].path, all[entries[i].obj].claim);
    /* every object through all its names: the saved models become objs[] */
    unsigned long bytes = 0;
    for (int i = 0; i < nobjs_all; i++) {
        struct obj *ob = &all[i];
        memset(&objs[0], 0, sizeof objs[0]);
        objs[0] = *ob;
        objs[0].nlinks = 0;
        struct stat st0 = { 0 };
        for (int e = 0; e < nentries; e++) {
            if (entries[e].obj != i)
                continue;
            struct stat st;
            if (lstat(entries[e].path, &st) < 0)
                failure("lstat %s: %s", entries[e].path, strerror(errno));
            if (objs[0].nlinks++ == 0)
                st0 = st;
            else if (st.st_ino != st0.st_ino)
                failure("%s: inode %llu, but another name of the same file has %llu",
                        entries[e].path, (unsigned long long)st.st_ino,
                        (unsigned long long)st0.st_ino);
            /* directories: the link count was checked by walk() */
            if ((st.st_mode & S_IFMT) != type_bits(ob->type))
                failure("%s: mode %o, expected a %s", entries[e].path, st.st_mode, tname[ob->type]);
            if (ob->ino && st.st_ino != ob->ino)
                failure("%s: inode %llu, expected %llu", entries[e].path,
                        (unsigned long long)st.st_ino, (unsigned long long)ob->ino);
            if (ob->type != T_LNK && (st.st_mode & 07777) != ob->mode)
                failure("%s: permissions %o, expected %o", entries[e].path, st.st_mode & 07777,
                        ob->mode);
            if (st.st_uid != ob->uid || st.st_gid != ob->gid)
                failure("%s: owner %u:%u, expected %u:%u", entries[e].path,
                        (unsigned)st.st_uid, (unsigned)st.st_gid, (unsigned)ob->uid,
                        (unsigned)ob->gid);
            if (ob->type != T_DIR && (size_t)st.st_size != ob->size)
                failure("%s: size %lld, expected %zu", entries[e].path, (long long)st.st_size,
                        ob->size);
            if (ob->type != T_DIR && st.st_nlink != (nlink_t)ob->nlinks)
                failure("%s: link count %lu, expected %d", entries[e].path,
                        (unsigned long)st.st_nlink, ob->nlinks);
            if (ob->mtime_known && (st.st_mtim.tv_sec != ob->mtime.tv_sec ||
                                    st.st_mtim.tv_nsec != ob->mtime.tv_nsec))
                failure("%s: mtime %lld.%09ld, expected %lld.%09ld", entries[e].path,
                        (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
                        (long long)ob->mtime.tv_sec, ob->mtime.tv_nsec);
            if (ob->type == T_LNK) {
                ssize_t r = readlink(entries[e].path, (char *)buf, MAXOP);
                if (r < 0 || (size_t)r != ob->size || memcmp(buf, ob->data, ob->size) != 0)
                    failure("%s: wrong symlink target", entries[e].path);
            }
            if (ob->type != T_LNK && objs[0].nlinks == 1)
                check_xattrs(0, entries[e].path);
            if (ob->type == T_REG && content && objs[0].nlinks == 1) {
                int fd = open(entries[e].path, O_RDONLY);
                if (fd < 0)
                    failure("open %s: %s", entries[e].path, strerror(errno));
                objs[0].nlinks = ob->nlinks;
                check_content_fd(0, fd, entries[e].path);
                objs[0].nlinks = 1;
                bytes += ob->size;
                close(fd);
            }
        }
    }
    printf("stress: the tree matches the models of %d workers: %d objects, %d names",
           nworkers, nobjs_all, nentries);
    if (content)
        printf(", %lu bytes compared\n", bytes);
    else
        printf(" (contents: checked by each worker)\n");
    return 0;
}

/* ==== main ================================================================== */

static void usage(void)
{
    fprintf(stderr, "usage: stress [-w workers] [-t seconds] [-n ops] [-S seed] [-d dirs] "
            "[-l maxlen] [-x DUMPDIR] [-v] DIR\n       stress -c DUMPDIR DIR\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int c, checking = 0;
    char tmpdump[] = "/tmp/stress-dump.XXXXXX";
    seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
    while ((c = getopt(argc, argv, "w:t:n:S:d:l:x:c:v")) != -1) {
        switch (c) {
        case 'w': nworkers = atoi(optarg); break;
        case 't': seconds = atof(optarg); break;
        case 'n': max_ops = strtoul(optarg, NULL, 0); break;
        case 'S': seed = strtoull(optarg, NULL, 0); break;
        case 'd': ndirs = atoi(optarg); break;
        case 'l': maxlen = strtoul(optarg, NULL, 0); break;
        case 'x': dumpdir = optarg; break;
        case 'c': dumpdir = optarg; checking = 1; break;
        case 'v': verbose = 1; break;
        default: usage();
        }
    }
    if (optind != argc - 1 || nworkers < 1 || nworkers > MAXWORKERS || ndirs < 1 ||
        ndirs > 100 || maxlen < 8192 || seconds <= 0)
        usage();
    root = argv[optind];
    page = sysconf(_SC_PAGESIZE);
    buf = xmalloc(MAXOP + 64);
    buf2 = xmalloc(MAXOP + 64);
    if (posix_memalign((void **)&dbuf, ALIGN, 8 * ALIGN) != 0)
        failure("out of memory");
    if (chdir(root) < 0)
        failure("chdir %s: %s", root, strerror(errno));
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (checking) {
        char mp[PATH_MAX];
        snprintf(mp, sizeof mp, "%s/meta", dumpdir);
        FILE *f = fopen(mp, "r");
        if (!f || fscanf(f, "workers %d dirs %d", &nworkers, &ndirs) != 2)
            failure("read %s", mp);
        fclose(f);
        return check_tree(1);
    }

    int own_dump = !dumpdir;
    if (own_dump) {
        if (!mkdtemp(tmpdump))
            failure("mkdtemp: %s", strerror(errno));
        dumpdir = tmpdump;
    }
    if (dumpdir[0] != '/')
        failure("-x needs an absolute path");
    char mp[PATH_MAX];
    snprintf(mp, sizeof mp, "%s/meta", dumpdir);
    FILE *mf = fopen(mp, "w");
    if (!mf || fprintf(mf, "workers %d dirs %d\n", nworkers, ndirs) < 0 || fclose(mf) != 0)
        failure("write %s", mp);
    printf("stress: seed %" PRIu64 ", %d workers, %g s%s, %d shared directories in %s/tree\n",
           seed, nworkers, seconds, max_ops ? " or the operation limit" : "", ndirs, root);
    if (mkdir("tree", 0755) < 0)
        failure("mkdir %s/tree: %s (must not exist yet)", root, strerror(errno));
    for (int j = 0; j < ndirs; j++) {
        char p[64];
        snprintf(p, sizeof p, "tree/d%d", j);
        if (mkdir(p, 0755) < 0)
            failure("mkdir %s: %s", p, strerror(errno));
    }
    pid_t pids[MAXWORKERS];
    for (int w = 0; w < nworkers; w++) {
        pids[w] = fork();
        if (pids[w] < 0)
            failure("fork: %s", strerror(errno));
        if (pids[w] == 0) {
            me = w;
            exit(worker());
        }
    }
    int failed = 0;
    for (int left = nworkers; left > 0; left--) {
        int status;
        pid_t pid = wait(&status);
        if (pid < 0)
            failure("wait: %s", strerror(errno));
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            continue;
        if (!failed++) {
            for (int w = 0; w < nworkers; w++)
                if (pids[w] != pid)
                    kill(pids[w], SIGTERM);
        }
        int w = 0;
        while (w < nworkers && pids[w] != pid)
            w++;
        if (WIFSIGNALED(status) && WTERMSIG(status) != SIGTERM)
            fprintf(stderr, "stress: worker %d killed by signal %d\n", w, WTERMSIG(status));
    }
    if (failed) {
        fprintf(stderr, "stress: FAILED (seed %" PRIu64 ")\n", seed);
        return 1;
    }
    int r = check_tree(0);
    if (own_dump) {
        char cmd[PATH_MAX];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dumpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "stress: could not remove %s\n", dumpdir);
    }
    return r;
}
