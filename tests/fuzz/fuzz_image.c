/*
 * fuzz_image.c — base images, patch lists and the walk shared by the fuzz
 * targets (fuzz_image.h has the input format; docs/FUZZ.md the reasons).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <linux/limits.h>
#include <unistd.h>
#include <linux/falloc.h>

#include "fs/btree.h"
#include "fs/fs.h"
#include "fs/fs_i.h"
#include "fs/format.h"
#include "tests/fuzz/fuzz_image.h"
#include "util/crc32c.h"
#include "util/hash64.h"

#define BS MMAPFS_BLOCK_SIZE
#define BASE_BYTES (16ull << 20)   /* the smallest image mkfs allows */

void fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

/* ==== base images ============================================================== */

/* One base image: its bytes and the blocks that are not all zero. */
struct base {
    uint8_t *bytes;
    uint64_t *used;          /* non-zero block numbers, ascending */
    uint64_t nused;
    uint64_t *journal;       /* the non-zero ones inside the journal */
    uint64_t njournal;
};

static struct base bases[2];            /* [0] clean, [1] crashed */
static struct mmapfs_disk_superblock geometry;
static int initialised;

static int new_memfd(char *path, size_t path_size)
{
    int fd = memfd_create("mmapfs-fuzz", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, (off_t)BASE_BYTES) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    snprintf(path, path_size, "/proc/self/fd/%d", fd);
    return fd;
}

static int is_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* Reads the image in fd into b. */
static void snapshot(int fd, struct base *b)
{
    b->bytes = malloc(BASE_BYTES);
    b->used = calloc(BASE_BYTES / BS, sizeof(*b->used));
    b->journal = calloc(BASE_BYTES / BS, sizeof(*b->journal));
    if (!b->bytes || !b->used || !b->journal)
        fuzz_fail("out of memory");
    if (pread(fd, b->bytes, BASE_BYTES, 0) != (ssize_t)BASE_BYTES)
        fuzz_fail("cannot read the base image");
    memcpy(&geometry, b->bytes, sizeof(geometry));
    for (uint64_t blk = 0; blk < BASE_BYTES / BS; blk++) {
        if (is_zero(b->bytes + blk * BS, BS))
            continue;
        b->used[b->nused++] = blk;
        if (blk >= geometry.journal_start &&
            blk < geometry.journal_start + geometry.journal_blocks)
            b->journal[b->njournal++] = blk;
    }
}

static const struct fs_cred root_cred = { 0, 0 };

#define CHECK(expr) do { long long r_ = (long long)(expr); \
    if (r_ < 0) fuzz_fail("base image: %s: %s", #expr, strerror((int)-r_)); } while (0)

/* Creates name in parent with mode; returns its inode (reference dropped
 * unless keep). */
static uint64_t make(struct fs *fs, uint64_t parent, const char *name, uint32_t mode, int keep)
{
    struct fs_stat st;
    if (S_ISDIR(mode))
        CHECK(fs_mkdir(fs, parent, name, mode & 07777, &root_cred, &st));
    else
        CHECK(fs_mknod(fs, parent, name, mode, S_ISCHR(mode) ? makedev(1, 3) : 0, &root_cred,
                       &st));
    if (!keep)
        fs_forget(fs, st.ino, 1);
    return st.ino;
}

/* The short workload of the clean base: every kind of metadata at least
 * once, trees of more than one level. Data blocks are written with zeros
 * where size does not matter, so that they stay out of the used-block list. */
static void workload_clean(struct fs *fs)
{
    static uint8_t zeros[BS];
    char name[64];
    uint64_t d = make(fs, MMAPFS_ROOT_INO, "dir", S_IFDIR | 0755, 0);
    for (int i = 0; i < 120; i++) {   /* a directory index of several leaves */
        snprintf(name, sizeof(name), "entry-with-a-name-long-enough-to-fill-leaves-soon-%03d", i);
        make(fs, d, name, S_IFREG | 0644, 0);
    }
    uint64_t sub = make(fs, d, "sub", S_IFDIR | 0700, 0);
    uint64_t f = make(fs, sub, "text", S_IFREG | 0600, 0);
    CHECK(fs_write(fs, f, 0, "hello, fuzzer\n", 14));
    CHECK(fs_write(fs, f, 3 * BS + 100, "tail", 4));     /* a hole */
    uint64_t big = make(fs, MMAPFS_ROOT_INO, "fragmented", S_IFREG | 0644, 0);
    for (int i = 0; i < 400; i++)      /* every other block: an extent tree */
        CHECK(fs_write(fs, big, (uint64_t)i * 2 * BS, zeros, BS));
    CHECK(fs_write(fs, big, 1, "x", 1));
    uint64_t pre = make(fs, MMAPFS_ROOT_INO, "prealloc", S_IFREG | 0644, 0);
    CHECK(fs_fallocate(fs, pre, 0, 0, 8 * BS));
    CHECK(fs_write(fs, pre, BS, "written", 7));
    struct fs_stat st;
    CHECK(fs_symlink(fs, MMAPFS_ROOT_INO, "link", "dir/sub/text", &root_cred, &st));
    fs_forget(fs, st.ino, 1);
    char target[1000];
    memset(target, 'a', sizeof(target) - 1);
    target[sizeof(target) - 1] = 0;
    CHECK(fs_symlink(fs, d, "longlink", target, &root_cred, &st));
    fs_forget(fs, st.ino, 1);
    CHECK(fs_link(fs, f, MMAPFS_ROOT_INO, "hardlink", &st));
    fs_forget(fs, st.ino, 1);
    make(fs, MMAPFS_ROOT_INO, "fifo", S_IFIFO | 0644, 0);
    make(fs, MMAPFS_ROOT_INO, "null", S_IFCHR | 0666, 0);
    for (int i = 0; i < 12; i++) {
        snprintf(name, sizeof(name), "user.attribute-%d", i);
        CHECK(fs_setxattr(fs, f, name, "value-of-some-length", 5 + (size_t)i, 0));
    }
    CHECK(fs_setxattr(fs, d, "trusted.dir", "x", 1, 0));
}

/* The crashed base: more changes committed (fsync) but never checkpointed,
 * and an unlinked file still referenced, so on the orphan list. */
static void workload_crash(struct fs *fs)
{
    uint64_t o = make(fs, MMAPFS_ROOT_INO, "orphan", S_IFREG | 0644, 1);
    CHECK(fs_write(fs, o, 0, "orphaned data", 13));
    CHECK(fs_unlink(fs, MMAPFS_ROOT_INO, "orphan"));
    uint64_t d = make(fs, MMAPFS_ROOT_INO, "after", S_IFDIR | 0755, 0);
    for (int i = 0; i < 40; i++) {
        char name[32];
        snprintf(name, sizeof(name), "late-%d", i);
        uint64_t f = make(fs, d, name, S_IFREG | 0644, 0);
        CHECK(fs_write(fs, f, 0, name, strlen(name)));
    }
    CHECK(fs_rename(fs, MMAPFS_ROOT_INO, "fifo", d, "fifo-moved", 0));
    CHECK(fs_unlink(fs, MMAPFS_ROOT_INO, "hardlink"));
    CHECK(fs_setxattr(fs, MMAPFS_ROOT_INO, "user.root", "r", 1, 0));
    CHECK(fs_fsync(fs, MMAPFS_ROOT_INO, 0));
}

/* FUZZ_DUMP_BASE=PREFIX: the base images go to PREFIX0.img (clean) and
 * PREFIX1.img (crashed), to craft regression inputs against. */
static void dump_bases(const char *prefix)
{
    for (int i = 0; prefix && i < 2; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s%d.img", prefix, i);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(bases[i].bytes, 1, BASE_BYTES, f) != BASE_BYTES)
            fuzz_fail("cannot write %s", path);
        fclose(f);
    }
}

void fuzz_init(void)
{
    if (initialised)
        return;
    char path[48];
    int fd = new_memfd(path, sizeof(path));
    CHECK(fd);
    struct mmio *io;
    CHECK(mmio_open(&io, path, 0, 0, NULL));
    CHECK(fs_format(io, NULL));
    mmio_close(io);
    struct fs *fs;
    struct fs_options o = { .path = path };
    CHECK(fs_mount(&fs, &o));
    workload_clean(fs);
    CHECK(fs_unmount(fs));
    snapshot(fd, &bases[0]);
    CHECK(fs_mount(&fs, &o));
    workload_crash(fs);
    fs_abandon(fs);
    snapshot(fd, &bases[1]);
    close(fd);
    initialised = 1;
    dump_bases(getenv("FUZZ_DUMP_BASE"));
}

/* ==== patches ================================================================== */

/* Inode table block blk (first inode first_ino; the first table or a
 * grown table's extent): every record's checksum. */
static void crc_inode_block(uint64_t first_ino, uint8_t *p)
{
    for (unsigned i = 0; i < MMAPFS_INODES_PER_BLOCK; i++) {
        uint64_t ino = first_ino + i;
        uint8_t *rec = p + i * MMAPFS_INODE_SIZE;
        uint64_t le = htole64(ino);
        uint32_t c = mfs_crc32c(0, &le, sizeof(le));
        c = mfs_crc32c(c, rec, offsetof(struct mmapfs_disk_inode, checksum));
        memcpy(rec + offsetof(struct mmapfs_disk_inode, checksum), &c, sizeof(c));
    }
}

/* A commit block at log index idx: data checksum (and hash, if flagged)
 * over the nblocks log blocks before it (when they do not wrap), then its
 * own checksum. */
static void crc_commit_block(int fd, uint64_t idx, uint8_t *p)
{
    struct mmapfs_disk_jnl_commit *c = (struct mmapfs_disk_jnl_commit *)p;
    if (c->nblocks && c->nblocks <= idx) {
        uint8_t buf[BS];
        uint32_t crc = 0;
        uint64_t hash = 0;
        uint64_t log0 = geometry.journal_start + 2;
        for (uint64_t i = idx - c->nblocks; i < idx; i++) {
            if (pread(fd, buf, BS, (off_t)((log0 + i) * BS)) != BS)
                return;
            crc = mfs_crc32c(crc, buf, BS);
            hash = mfs_hash64(hash, buf, BS);
        }
        c->data_checksum = crc;
        if (c->flags & MMAPFS_JNL_COMMIT_HASH)
            c->data_hash = hash;
    }
    c->checksum = mfs_crc32c(0, p, offsetof(struct mmapfs_disk_jnl_commit, checksum));
}

/* Recomputes whatever checksum block blk (content p) carries. */
static void fix_checksums(int fd, uint64_t blk, uint8_t *p)
{
    const struct mmapfs_disk_superblock *g = &geometry;
    uint64_t first_ino;
    uint32_t magic;
    memcpy(&magic, p, sizeof(magic));
    if (blk == 0) {
        fs_super_checksum((struct mmapfs_disk_superblock *)p);
    } else if ((first_ino = mmapfs_inode_block_first(
                    g->inode_table_start, g->inode_table_blocks,
                    (g->feature_incompat & MMAPFS_FEATURE_INCOMPAT_ITAB) ? &g->itab : NULL,
                    blk)) != 0) {
        crc_inode_block(first_ino, p);
    } else if (blk >= g->journal_start && blk < g->journal_start + 2) {
        struct mmapfs_disk_jnl_header *h = (struct mmapfs_disk_jnl_header *)p;
        h->checksum = mfs_crc32c(0, h, offsetof(struct mmapfs_disk_jnl_header, checksum));
    } else if (blk >= g->journal_start && blk < g->journal_start + g->journal_blocks) {
        if (magic == MMAPFS_JNL_COMMIT_MAGIC)
            crc_commit_block(fd, blk - g->journal_start - 2, p);
    } else if (magic == MMAPFS_BTREE_MAGIC || magic == MMAPFS_XATTR_MAGIC) {
        uint32_t c = bt_block_checksum(blk, p);
        memcpy(p + 4, &c, sizeof(c));
    }
}

/* Writes base b into fd, only its non-zero blocks (runs merged). */
static int write_base(int fd, const struct base *b)
{
    for (uint64_t i = 0; i < b->nused;) {
        uint64_t j = i + 1;
        while (j < b->nused && b->used[j] == b->used[j - 1] + 1)
            j++;
        size_t len = (size_t)(j - i) * BS;
        off_t off = (off_t)(b->used[i] * BS);
        if (pwrite(fd, b->bytes + off, len, off) != (ssize_t)len)
            return -EIO;
        i = j;
    }
    return 0;
}

int fuzz_image_make(struct fuzz_image *img, const uint8_t *data, size_t size,
                    enum fuzz_region region)
{
    fuzz_init();
    memset(img, 0, sizeof(*img));
    img->fd = new_memfd(img->path, sizeof(img->path));
    if (img->fd < 0)
        return img->fd;
    const struct base *b = &bases[size && (data[0] & 1)];
    img->block_count = geometry.block_count;
    img->journal_start = geometry.journal_start;
    img->journal_blocks = geometry.journal_blocks;
    int err = write_base(img->fd, b);
    const uint64_t *list = region == FUZZ_REGION_JOURNAL ? b->journal : b->used;
    uint64_t nlist = region == FUZZ_REGION_JOURNAL ? b->njournal : b->nused;
    size_t pos = 1;
    static uint8_t block[BS];
    while (!err && pos + 6 <= size) {
        uint8_t op = data[pos];
        uint16_t sel = (uint16_t)(data[pos + 1] | data[pos + 2] << 8);
        uint16_t off = (uint16_t)((data[pos + 3] | data[pos + 4] << 8) % BS);
        size_t len = data[pos + 5];
        pos += 6;
        if (pos + len > size)
            break;
        uint64_t blk = (op & 4) || !nlist ? sel % img->block_count : list[sel % nlist];
        if (pread(img->fd, block, BS, (off_t)(blk * BS)) != BS) {
            err = -EIO;
            break;
        }
        if (op & 2)
            memset(block, 0, BS);
        memcpy(block + off, data + pos, off + len > BS ? BS - off : len);
        pos += len;
        if (op & 1)
            fix_checksums(img->fd, blk, block);
        if (pwrite(img->fd, block, BS, (off_t)(blk * BS)) != BS)
            err = -EIO;
    }
    if (err)
        fuzz_image_drop(img);
    return err;
}

void fuzz_image_drop(struct fuzz_image *img)
{
    if (img->fd >= 0)
        close(img->fd);
    img->fd = -1;
}

/* ==== the walk ================================================================= */

#define WALK_MAX_INODES  4096
#define WALK_MAX_DEPTH   64
#define WALK_MAX_ENTRIES 20000      /* per directory */
#define WALK_READ_BYTES  (256u << 10)

struct walk {
    struct fs *fs;
    uint64_t seen[WALK_MAX_INODES];
    unsigned nseen;
};

/* 1 if ino was visited before (or the budget is spent); marks it. */
static int seen_before(struct walk *w, uint64_t ino)
{
    for (unsigned i = 0; i < w->nseen; i++)
        if (w->seen[i] == ino)
            return 1;
    if (w->nseen == WALK_MAX_INODES)
        return 1;
    w->seen[w->nseen++] = ino;
    return 0;
}

struct names {
    char (*name)[MMAPFS_NAME_MAX + 1];
    unsigned n, cap;
    uint64_t next_off;       /* offset after the last name taken */
};

/* Takes names until the batch is full. Offsets must grow: a listing that
 * hands out an offset it already passed never ends (getdents loops). */
static int collect(void *ctx, const char *name, const struct fs_stat *st, uint64_t next_off)
{
    (void)st;
    struct names *nm = ctx;
    if (nm->n == nm->cap)
        return 1;
    if (next_off <= nm->next_off)
        fuzz_fail("readdir: entry '%s' gives offset %llu after %llu: the listing never ends",
                  name, (unsigned long long)next_off, (unsigned long long)nm->next_off);
    if (!name[0] || strchr(name, '/') || (!strcmp(name, ".") && next_off != 1) ||
        (!strcmp(name, "..") && next_off != 2))
        fuzz_fail("readdir: a name the kernel cannot take: '%s' (offset %llu)", name,
                  (unsigned long long)next_off);
    snprintf(nm->name[nm->n++], sizeof(nm->name[0]), "%s", name);
    nm->next_off = next_off;
    return 0;
}

/* readdirplus: the references it takes, dropped after the call (a fill
 * function must not call into fs). */
struct refs {
    uint64_t ino[WALK_MAX_ENTRIES];
    unsigned n;
};

static int collect_plus(void *ctx, const char *name, const struct fs_stat *st,
                        uint64_t next_off)
{
    (void)next_off;
    struct refs *r = ctx;
    if (r->n == WALK_MAX_ENTRIES)
        return 1;
    if (strcmp(name, ".") && strcmp(name, ".."))
        r->ino[r->n++] = st->ino;
    return 0;
}

static void readdir_plus(struct fs *fs, uint64_t dir)
{
    static struct refs r;   /* the walk is single-threaded and readdir_plus not recursive */
    r.n = 0;
    fs_readdir(fs, dir, 0, 1, collect_plus, &r);
    for (unsigned i = 0; i < r.n; i++)
        fs_forget(fs, r.ino[i], 1);
}

static void walk_xattrs(struct fs *fs, uint64_t ino)
{
    int len = fs_listxattr(fs, ino, NULL, 0);
    if (len <= 0)
        return;
    char *list = malloc((size_t)len);
    char *value = malloc(XATTR_SIZE_MAX);
    if (list && value) {
        int got = fs_listxattr(fs, ino, list, (size_t)len);
        for (int i = 0; i < got; i += (int)strnlen(list + i, (size_t)(got - i)) + 1) {
            if (strnlen(list + i, (size_t)(got - i)) == (size_t)(got - i))
                fuzz_fail("listxattr: name without NUL");
            fs_getxattr(fs, ino, list + i, NULL, 0);
            fs_getxattr(fs, ino, list + i, value, XATTR_SIZE_MAX);
        }
    }
    free(list);
    free(value);
}

static void walk_file(struct fs *fs, const struct fs_stat *st)
{
    static uint8_t buf[64 << 10];
    uint64_t end = st->size < WALK_READ_BYTES ? st->size : WALK_READ_BYTES;
    for (uint64_t off = 0; off < end + 1;) {
        ssize_t n = fs_read(fs, st->ino, off, buf, sizeof(buf));
        if (n <= 0)
            break;
        if ((size_t)n > sizeof(buf))
            fuzz_fail("fs_read returned %zd for %zu bytes", n, sizeof(buf));
        off += (uint64_t)n;
    }
    if (st->size > BS)
        fs_read(fs, st->ino, st->size - BS, buf, sizeof(buf));
    struct fs_read_pin pin;
    struct iovec iov[16];
    int niov = 0;
    fs_read_pin(fs, &pin);
    ssize_t n = fs_read_iov(fs, st->ino, 0, sizeof(buf), iov, 16, &niov, &pin);
    volatile uint8_t sum = 0;
    for (int i = 0; n > 0 && i < niov; i++)   /* touch what a reply would send */
        for (size_t k = 0; k < iov[i].iov_len; k += 512)
            sum ^= ((const uint8_t *)iov[i].iov_base)[k];
    (void)sum;
    fs_read_unpin(fs, &pin);
    fs_lseek(fs, st->ino, 0, SEEK_DATA);
    fs_lseek(fs, st->ino, 0, SEEK_HOLE);
}

static void walk_dir(struct walk *w, uint64_t dir, unsigned depth);

/* Looks name up in dir and visits what it names. */
static void walk_entry(struct walk *w, uint64_t dir, const char *name, unsigned depth)
{
    struct fs_stat st;
    if (fs_lookup(w->fs, dir, name, &st) != 0)
        return;
    struct fs_stat again;
    fs_getattr(w->fs, st.ino, &again);
    if (!seen_before(w, st.ino)) {
        walk_xattrs(w->fs, st.ino);
        if (S_ISREG(st.mode)) {
            walk_file(w->fs, &st);
        } else if (S_ISLNK(st.mode)) {
            char target[MMAPFS_SYMLINK_MAX + 1];
            int n = fs_readlink(w->fs, st.ino, target, sizeof(target));
            if (n > (int)MMAPFS_SYMLINK_MAX)
                fuzz_fail("readlink length %d", n);
        } else if (S_ISDIR(st.mode) && depth < WALK_MAX_DEPTH) {
            walk_dir(w, st.ino, depth + 1);
        }
    }
    fs_forget(w->fs, st.ino, 1);
}

static void walk_dir(struct walk *w, uint64_t dir, unsigned depth)
{
    struct names nm = { .cap = 256 };
    nm.name = malloc(nm.cap * sizeof(*nm.name));
    if (!nm.name)
        return;
    readdir_plus(w->fs, dir);
    /* batches of names as the kernel asks for them, each resuming at the
     * offset the previous one ended with */
    uint64_t off = 0;
    for (unsigned total = 0; total < WALK_MAX_ENTRIES;) {
        nm.n = 0;
        nm.next_off = off;
        if (fs_readdir(w->fs, dir, off, 0, collect, &nm) < 0 || nm.n == 0)
            break;
        total += nm.n;
        off = nm.next_off;
        for (unsigned i = 0; i < nm.n; i++)
            if (strcmp(nm.name[i], ".") && strcmp(nm.name[i], ".."))
                walk_entry(w, dir, nm.name[i], depth);
    }
    free(nm.name);
}

void fuzz_walk(struct fs *fs)
{
    struct walk *w = calloc(1, sizeof(*w));
    if (!w)
        return;
    w->fs = fs;
    struct statvfs sv;
    fs_statfs(fs, &sv);
    struct fs_stat st;
    fs_getattr(fs, MMAPFS_ROOT_INO, &st);
    seen_before(w, MMAPFS_ROOT_INO);
    walk_xattrs(fs, MMAPFS_ROOT_INO);
    walk_dir(w, MMAPFS_ROOT_INO, 0);
    free(w);
}

void fuzz_change(struct fs *fs)
{
    static uint8_t data[40000];
    struct fs_stat st;
    const struct fs_cred cred = { 0, 0 };
    memset(data, 'z', sizeof(data));
    if (fs_mkdir(fs, MMAPFS_ROOT_INO, "fuzz-dir", 0755, &cred, &st) == 0)
        fs_forget(fs, st.ino, 1);
    if (fs_mknod(fs, MMAPFS_ROOT_INO, "fuzz-file", S_IFREG | 0644, 0, &cred, &st) == 0) {
        fs_write(fs, st.ino, 0, data, sizeof(data));
        fs_write(fs, st.ino, 1 << 20, data, 100);
        fs_setxattr(fs, st.ino, "user.fuzz", data, 300, 0);
        struct fs_setattr sa = { .size = 5000 };
        fs_setattr(fs, st.ino, &sa, FS_SET_SIZE, NULL);
        fs_forget(fs, st.ino, 1);
    }
    fs_rename(fs, MMAPFS_ROOT_INO, "fuzz-file", MMAPFS_ROOT_INO, "dir", FS_RENAME_EXCHANGE);
    fs_setxattr(fs, MMAPFS_ROOT_INO, "user.fuzz", "x", 1, 0);
    fs_unlink(fs, MMAPFS_ROOT_INO, "fragmented");
    fs_unlink(fs, MMAPFS_ROOT_INO, "link");
    fs_rmdir(fs, MMAPFS_ROOT_INO, "after");
    fs_fsync(fs, MMAPFS_ROOT_INO, 0);
}

int fuzz_mount_walk(const struct fuzz_image *img, int read_only, int walk)
{
    struct fs *fs;
    struct fs_options o = { .path = img->path, .read_only = read_only };
    int err = fs_mount(&fs, &o);
    if (err)
        return err;
    if (walk)
        fuzz_walk(fs);
    if (walk && !read_only)
        fuzz_change(fs);
    fs_unmount(fs);
    return 0;
}
