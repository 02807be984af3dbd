/*
 * test_fsck_repair — fsck.mmapfs -y repairs (src/fs/check_repair*.c,
 * fsck/salvage.c), on images written through the fs API.
 *
 * Every test populates an image (a directory of 400 files whose index has
 * several leaves, a file of 600 extents whose extent tree has two levels,
 * hard links, a symlink, a FIFO, nested directories, xattrs), unmounts it,
 * corrupts one structure by patching bytes, and then expects:
 *   fsck -n  -> exit 4 with the problem named,
 *   fsck -y  -> exit 1 (everything corrected) and the repair named,
 *   fsck -n  -> exit 0,
 * and, mounted again, every file that was not corrupted still there with
 * the same content (a whole-tree walk finds each inode of the manifest),
 * the reconnected ones in /lost+found as "#<ino>".
 * Then: several problems at once with fsck -y "crashing" at each of its
 * writes (a random part of the unsynced writes lost), after which another
 * -y must give the same result. The last test damages the metadata at
 * random (byte flips, wiped or copied nodes, pointers moved): -y then -n
 * must agree (-y exit 1 exactly when -n is then 0), and a clean result
 * must mount, read back, take new files and let lost+found be emptied,
 * and still check clean.
 * TEST_FSCK_SEED / TEST_FSCK_ROUNDS replay / lengthen the fuzz,
 * TEST_FSCK_FLIPS (default 6) sets the most damage per fuzz round;
 * TEST_FSCK_VERBOSE=1 prints every fsck report.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fs/btree.h"
#include "fsck/fsck.h"
#include "fsck/fsck_i.h"
#include "fs/format.h"
#include "fs/fs.h"
#include "mmapfs/mmio.h"
#include "io/observe.h"
#include "util/crc32c.h"

/* ---- a crash in the middle of a repair (io/observe.h) --------------------------------------- */

/* With crash_at != 0, the crash_at-th repair write "crashes": the writes
 * made since the last repair sync are each undone or kept at random (rng;
 * the kernel may have written back any subset of the dirty pages), newest
 * first, and from then on every repair write and sync fails with -EIO. */
static struct {
    uint64_t crash_at, writes, rng;
    int crashed;
} sim;

/* Old content of one write since the last sync. */
struct undo {
    uint64_t off;
    size_t len;
    uint8_t *old;
};
static struct undo *undo_log;
static size_t undo_n, undo_cap;

static void undo_clear(void)
{
    for (size_t i = 0; i < undo_n; i++)
        free(undo_log[i].old);
    undo_n = 0;
}

/* Records the bytes a write is about to replace. */
static int undo_record(struct mmio *io, uint64_t off, size_t len)
{
    if (undo_n == undo_cap) {
        size_t cap = undo_cap ? undo_cap * 2 : 64;
        struct undo *n = realloc(undo_log, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        undo_log = n;
        undo_cap = cap;
    }
    uint8_t *old = malloc(len);
    if (!old)
        return -ENOMEM;
    int err = mmio_read_at(io, off, old, len);
    if (err) {
        free(old);
        return err;
    }
    undo_log[undo_n++] = (struct undo){ .off = off, .len = len, .old = old };
    return 0;
}

/* The crash: a random subset of the unsynced writes is lost. */
static void sim_crash(struct mmio *io)
{
    sim.crashed = 1;
    for (size_t i = undo_n; i-- > 0;) {
        sim.rng = sim.rng * 6364136223846793005ull + 1442695040888963407ull;
        if ((sim.rng >> 33) & 1)
            mmio_write_at(io, undo_log[i].off, undo_log[i].old, undo_log[i].len);
    }
    undo_clear();
    mmio_sync(io);
}

static int sim_at(void *ctx, struct mmio *io, enum mmio_point point, uint64_t a, uint64_t b)
{
    (void)ctx;
    if (!sim.crash_at || (point != MMIO_AT_FSCK_WRITE && point != MMIO_AT_FSCK_SYNC))
        return 0;
    if (sim.crashed)
        return -EIO;
    if (point == MMIO_AT_FSCK_SYNC) {
        undo_clear();
        return 0;
    }
    if (++sim.writes >= sim.crash_at) {
        sim_crash(io);
        return -EIO;
    }
    return undo_record(io, a, (size_t)b);
}

static const struct mmio_observer sim_observer = { .at = sim_at };

#define MiB (1ull << 20)
#define NFILES 400
#define BIG_EXTENTS 600
#define F1_SIZE (64 * 1024)
#define F2_SIZE 8192

static const struct fs_cred cred = { 0, 0 };

/* ---- expected content ---------------------------------------------------------------- */

/* Byte i of the content of the file with seed s. */
static uint8_t content_byte(uint64_t s, uint64_t i)
{
    uint64_t x = (s * 0x9e3779b97f4a7c15ull) ^ (i / 8 * 0xbf58476d1ce4e5b9ull);
    x ^= x >> 29;
    return (uint8_t)(x >> ((i % 8) * 8));
}

static void content_fill(uint64_t s, uint64_t off, uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = content_byte(s, off + i);
}

/* One file of the populated image. */
struct entry {
    uint64_t dir;            /* directory holding its (first) name */
    char name[64];
    uint64_t ino;
    uint32_t type;           /* S_IFREG, S_IFDIR, ... */
    uint64_t size;           /* regular files */
    uint64_t seed;           /* content seed */
};

struct image {
    char path[64];
    struct entry *e;
    size_t n;
    uint64_t d1, d2, d3, sub, big, f1, f2, sl, fifo, g1;
};

static struct entry *add_entry(struct image *im, uint64_t dir, const char *name, uint64_t ino,
                               uint32_t type, uint64_t size, uint64_t seed)
{
    im->e = realloc(im->e, (im->n + 1) * sizeof(*im->e));
    assert_non_null(im->e);
    struct entry *e = &im->e[im->n++];
    memset(e, 0, sizeof(*e));
    e->dir = dir;
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->ino = ino;
    e->type = type;
    e->size = size;
    e->seed = seed;
    return e;
}

static struct entry *find_entry(struct image *im, uint64_t ino)
{
    for (size_t i = 0; i < im->n; i++)
        if (im->e[i].ino == ino)
            return &im->e[i];
    return NULL;
}

/* ---- building the image ---------------------------------------------------------------- */

static uint64_t mk(struct fs *fs, uint64_t dir, const char *name, uint32_t mode)
{
    struct fs_stat st;
    if (S_ISDIR(mode))
        assert_int_equal(fs_mkdir(fs, dir, name, mode & 07777, &cred, &st), 0);
    else
        assert_int_equal(fs_mknod(fs, dir, name, mode, 0, &cred, &st), 0);
    fs_forget(fs, st.ino, 1);
    return st.ino;
}

/* Writes size bytes of content seed into ino (256 KiB per call). */
static void write_content(struct fs *fs, uint64_t ino, uint64_t seed, uint64_t size)
{
    const size_t chunk = 256 * 1024;
    uint8_t *buf = malloc(chunk);
    assert_non_null(buf);
    for (uint64_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? (size_t)(size - off) : chunk;
        content_fill(seed, off, buf, n);
        assert_int_equal(fs_write(fs, ino, off, buf, n), (ssize_t)n);
    }
    free(buf);
}

static void file_name(char *buf, size_t len, int i)
{
    snprintf(buf, len, "file-with-a-longish-name-%04d", i);
}

/* Creates and formats an image of 'size' bytes. */
static void image_format(struct image *im, uint64_t size)
{
    memset(im, 0, sizeof(*im));
    strcpy(im->path, "/tmp/test_fsck_repair.XXXXXX");
    int fd = mkstemp(im->path);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    close(fd);
    struct mmio *io;
    assert_int_equal(mmio_open(&io, im->path, 0, 0, NULL), 0);
    /* the tests edit extent tree leaves by hand: every file with data has
     * a tree only without inode-resident data (old-format images stay
     * tested; test_fs_inline checks the inline structures); xattr blocks
     * too: every attribute in a block, none in the inode */
    struct fs_format_options opt = { .no_inode_data = 1, .no_inode_xattr = 1 };
    assert_int_equal(fs_format(io, &opt), 0);
    mmio_close(io);
}

/* The populated image (see the header comment). */
static void image_build(struct image *im)
{
    image_format(im, 64 * MiB);
    struct fs *fs;
    struct fs_options o = { .path = im->path };
    assert_int_equal(fs_mount(&fs, &o), 0);
    char name[64];
    im->d1 = mk(fs, MMAPFS_ROOT_INO, "d1", S_IFDIR | 0755);
    add_entry(im, MMAPFS_ROOT_INO, "d1", im->d1, S_IFDIR, 0, 0);
    for (int i = 0; i < NFILES; i++) {
        file_name(name, sizeof(name), i);
        uint64_t ino = mk(fs, im->d1, name, S_IFREG | 0644);
        uint64_t size = 100 + (uint64_t)(i * 37 % 3000);
        write_content(fs, ino, ino, size);
        add_entry(im, im->d1, name, ino, S_IFREG, size, ino);
    }
    /* big: one block every other block: 600 extents */
    im->big = mk(fs, MMAPFS_ROOT_INO, "big", S_IFREG | 0644);
    uint8_t blockbuf[4096];
    for (int i = 0; i < BIG_EXTENTS; i++) {
        content_fill(im->big, (uint64_t)i * 2 * 4096, blockbuf, 4096);
        assert_int_equal(fs_write(fs, im->big, (uint64_t)i * 2 * 4096, blockbuf, 4096), 4096);
    }
    add_entry(im, MMAPFS_ROOT_INO, "big", im->big, S_IFREG, (BIG_EXTENTS * 2 - 1) * 4096ull,
              im->big);
    assert_int_equal(fs_setxattr(fs, im->big, "user.a", "1", 1, 0), 0);
    im->f1 = mk(fs, MMAPFS_ROOT_INO, "f1", S_IFREG | 0644);
    write_content(fs, im->f1, im->f1, F1_SIZE);
    add_entry(im, MMAPFS_ROOT_INO, "f1", im->f1, S_IFREG, F1_SIZE, im->f1);
    im->d2 = mk(fs, MMAPFS_ROOT_INO, "d2", S_IFDIR | 0755);
    add_entry(im, MMAPFS_ROOT_INO, "d2", im->d2, S_IFDIR, 0, 0);
    im->f2 = mk(fs, im->d2, "f2", S_IFREG | 0644);
    write_content(fs, im->f2, im->f2, F2_SIZE);
    add_entry(im, im->d2, "f2", im->f2, S_IFREG, F2_SIZE, im->f2);
    struct fs_stat st;
    assert_int_equal(fs_link(fs, im->f1, im->d2, "f1-link", &st), 0);
    fs_forget(fs, st.ino, 1);
    assert_int_equal(fs_symlink(fs, MMAPFS_ROOT_INO, "sl", "d2/f2", &cred, &st), 0);
    fs_forget(fs, st.ino, 1);
    im->sl = st.ino;
    add_entry(im, MMAPFS_ROOT_INO, "sl", im->sl, S_IFLNK, 5, 0);
    im->fifo = mk(fs, MMAPFS_ROOT_INO, "fifo", S_IFIFO | 0600);
    add_entry(im, MMAPFS_ROOT_INO, "fifo", im->fifo, S_IFIFO, 0, 0);
    im->d3 = mk(fs, MMAPFS_ROOT_INO, "d3", S_IFDIR | 0755);
    add_entry(im, MMAPFS_ROOT_INO, "d3", im->d3, S_IFDIR, 0, 0);
    im->sub = mk(fs, im->d3, "sub", S_IFDIR | 0755);
    add_entry(im, im->d3, "sub", im->sub, S_IFDIR, 0, 0);
    im->g1 = mk(fs, im->sub, "g1", S_IFREG | 0644);
    write_content(fs, im->g1, im->g1, 5000);
    add_entry(im, im->sub, "g1", im->g1, S_IFREG, 5000, im->g1);
    uint64_t g2 = mk(fs, im->sub, "g2", S_IFREG | 0644);
    write_content(fs, g2, g2, 300);
    add_entry(im, im->sub, "g2", g2, S_IFREG, 300, g2);
    uint64_t h = mk(fs, im->d3, "h", S_IFREG | 0644);
    write_content(fs, h, h, 12000);
    add_entry(im, im->d3, "h", h, S_IFREG, 12000, h);
    assert_int_equal(fs_unmount(fs), 0);
}

/* image_build, then mounted again for more of the same kind. */
static struct fs *image_build_mounted(struct image *im)
{
    struct fs *fs;
    image_build(im);
    struct fs_options o = { .path = im->path };
    assert_int_equal(fs_mount(&fs, &o), 0);
    return fs;
}

static void image_destroy(struct image *im)
{
    unlink(im->path);
    free(im->e);
}

/* ---- raw access to an unmounted image ------------------------------------------------------ */

struct raw {
    struct mmio *io;
    struct mmapfs_disk_superblock sb;
};

static void raw_open(struct raw *r, const char *path)
{
    assert_int_equal(mmio_open(&r->io, path, 0, 0, NULL), 0);
    memcpy(&r->sb, mmio_ptr(r->io, 0), sizeof(r->sb));
}

static void raw_close(struct raw *r)
{
    assert_int_equal(mmio_sync(r->io), 0);
    mmio_close(r->io);
}

static uint8_t *raw_blk(struct raw *r, uint64_t b)
{
    uint8_t *p = mmio_mut_ptr(r->io, b * 4096);
    assert_non_null(p);
    return p;
}

static struct mmapfs_disk_inode *raw_inode(struct raw *r, uint64_t ino)
{
    return (struct mmapfs_disk_inode *)(raw_blk(r, r->sb.inode_table_start + (ino - 1) / 16) +
                                        ((ino - 1) % 16) * 256);
}

static void raw_inode_seal(struct raw *r, uint64_t ino)
{
    struct mmapfs_disk_inode *di = raw_inode(r, ino);
    uint64_t le = htole64(ino);
    di->checksum = mfs_crc32c(mfs_crc32c(0, &le, 8), di, 252);
}

static void raw_node_seal(struct raw *r, uint64_t b)
{
    uint8_t *p = raw_blk(r, b);
    ((struct mmapfs_disk_btree_header *)p)->checksum = bt_block_checksum(b, p);
}

static void raw_bit(struct raw *r, uint64_t start, uint64_t i, int on)
{
    uint8_t *p = raw_blk(r, start + i / 32768);
    uint64_t j = i % 32768;
    if (on)
        p[j / 8] |= (uint8_t)(1u << (j % 8));
    else
        p[j / 8] &= (uint8_t)~(1u << (j % 8));
}

static void raw_sb_store(struct raw *r)
{
    r->sb.checksum = mfs_crc32c(0, &r->sb, 4092);
    memcpy(raw_blk(r, 0), &r->sb, sizeof(r->sb));
}

static struct mmapfs_disk_btree_header *hdr(uint8_t *p)
{
    return (struct mmapfs_disk_btree_header *)p;
}

static struct mmapfs_disk_btree_item *items(uint8_t *p)
{
    return (struct mmapfs_disk_btree_item *)(p + 32);
}

static struct mmapfs_disk_btree_ptr *ptrs(uint8_t *p)
{
    return (struct mmapfs_disk_btree_ptr *)(p + 32);
}

/* Descends the tree from root to the leaf that holds key; *leaf. */
static uint64_t raw_leaf_for(struct raw *r, uint64_t root, uint64_t key)
{
    uint64_t b = root;
    for (int depth = 0; depth < 10; depth++) {
        uint8_t *p = raw_blk(r, b);
        assert_int_equal(hdr(p)->magic, MMAPFS_BTREE_MAGIC);
        if (hdr(p)->level == 0)
            return b;
        unsigned i = 0;
        while (i + 1 < hdr(p)->nitems && ptrs(p)[i + 1].key <= key)
            i++;
        b = ptrs(p)[i].child;
    }
    fail();
    return 0;
}

/* Finds the entry 'name' of directory dir: its leaf and item index. */
static void raw_dirent(struct raw *r, uint64_t dir, const char *name, uint64_t *leaf,
                       unsigned *idx)
{
    size_t len = strlen(name);
    uint64_t h = mmapfs_name_hash(name, len);
    *leaf = raw_leaf_for(r, raw_inode(r, dir)->tree_root, h << 8);
    uint8_t *p = raw_blk(r, *leaf);
    for (unsigned i = 0; i < hdr(p)->nitems; i++) {
        struct mmapfs_disk_btree_item *it = &items(p)[i];
        if (it->key >> 8 == h && it->value_len == 10 + len &&
            !memcmp(p + it->value_off + 10, name, len)) {
            *idx = i;
            return;
        }
    }
    fail_msg("entry %s not found", name);
}

/* The value of an entry found by raw_dirent. */
static struct mmapfs_disk_dirent *raw_dirent_val(struct raw *r, uint64_t leaf, unsigned idx)
{
    uint8_t *p = raw_blk(r, leaf);
    return (struct mmapfs_disk_dirent *)(p + items(p)[idx].value_off);
}

/* Removes item idx from a leaf (a hole stays in the value heap). */
static void raw_leaf_remove(struct raw *r, uint64_t leaf, unsigned idx)
{
    uint8_t *p = raw_blk(r, leaf);
    unsigned n = hdr(p)->nitems;
    assert_true(n > 1);
    memmove(&items(p)[idx], &items(p)[idx + 1], (n - idx - 1) * 12);
    hdr(p)->nitems = (uint16_t)(n - 1);
    unsigned vs = 4096;
    for (unsigned i = 0; i < n - 1; i++)
        if (items(p)[i].value_off < vs)
            vs = items(p)[i].value_off;
    hdr(p)->value_start = (uint16_t)vs;
    raw_node_seal(r, leaf);
}

/* Inserts an item into a leaf (kept sorted; there must be room; the caller
 * keeps the parent's separator keys right: a root leaf, or not first). */
static void raw_leaf_insert(struct raw *r, uint64_t leaf, uint64_t key, const void *val,
                            unsigned len)
{
    uint8_t *p = raw_blk(r, leaf);
    unsigned n = hdr(p)->nitems, vs = hdr(p)->value_start - len;
    assert_true(32 + (n + 1) * 12 <= vs);
    unsigned pos = 0;
    while (pos < n && items(p)[pos].key < key)
        pos++;
    memmove(&items(p)[pos + 1], &items(p)[pos], (n - pos) * 12);
    memcpy(p + vs, val, len);
    items(p)[pos] = (struct mmapfs_disk_btree_item){ .key = key, .value_off = (uint16_t)vs,
                                                     .value_len = (uint16_t)len };
    hdr(p)->nitems = (uint16_t)(n + 1);
    hdr(p)->value_start = (uint16_t)vs;
    raw_node_seal(r, leaf);
}

/* The extent of inode ino that maps logical block lblk: leaf and index. */
static struct mmapfs_disk_extent *raw_extent(struct raw *r, uint64_t ino, uint64_t lblk,
                                             uint64_t *leaf, unsigned *idx)
{
    *leaf = raw_leaf_for(r, raw_inode(r, ino)->tree_root, lblk);
    uint8_t *p = raw_blk(r, *leaf);
    for (unsigned i = hdr(p)->nitems; i-- > 0;) {
        if (items(p)[i].key <= lblk) {
            *idx = i;
            return (struct mmapfs_disk_extent *)(p + items(p)[i].value_off);
        }
    }
    fail();
    return NULL;
}

/* ---- running fsck ------------------------------------------------------------------------- */

static int run_fsck(const char *path, enum fs_check_mode mode, char **out)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    struct fs_check_options o = { .mode = mode, .verbose = 1 };
    int r = fs_check(path, &o, f);
    fclose(f);
    if (getenv("TEST_FSCK_VERBOSE"))
        fprintf(stderr, "--- fsck %s -> %d\n%s", mode == FS_CHECK_NO ? "-n" : "-y", r, buf);
    if (out)
        *out = buf;
    else
        free(buf);
    return r;
}

/* -n reports each of want[] (exit 4); -y corrects everything (exit 1) and
 * names each of fixed[]; a second -n is clean. NULL ends the lists. */
static void expect_repair(const char *path, const char *const *want, const char *const *fixed)
{
    char *rep;
    int r = run_fsck(path, FS_CHECK_NO, &rep);
    int ok = r == FSCK_EXIT_UNCORRECTED;
    for (size_t i = 0; want && want[i]; i++)
        if (!strstr(rep, want[i])) {
            fprintf(stderr, "-n: missing \"%s\"\n", want[i]);
            ok = 0;
        }
    if (!ok)
        fprintf(stderr, "-n exit %d:\n%s", r, rep);
    free(rep);
    assert_true(ok);
    r = run_fsck(path, FS_CHECK_YES, &rep);
    ok = r == FSCK_EXIT_CORRECTED;
    for (size_t i = 0; fixed && fixed[i]; i++)
        if (!strstr(rep, fixed[i])) {
            fprintf(stderr, "-y: missing \"%s\"\n", fixed[i]);
            ok = 0;
        }
    if (!ok)
        fprintf(stderr, "-y exit %d:\n%s", r, rep);
    free(rep);
    assert_true(ok);
    r = run_fsck(path, FS_CHECK_NO, &rep);
    if (r != FSCK_EXIT_OK)
        fprintf(stderr, "second -n exit %d:\n%s", r, rep);
    free(rep);
    assert_int_equal(r, FSCK_EXIT_OK);
}

/* ---- verifying a repaired image ------------------------------------------------------------ */

/* Where the walk found each inode. */
struct seen {
    uint64_t ino, dir;
    char name[64];
};

struct walk {
    struct fs *fs;
    struct seen *v;
    size_t n, cap;
    int errors;
};

struct names {
    char (*v)[256];
    uint64_t *ino;
    uint32_t *mode;
    size_t n;
};

static int names_fill(void *ctx, const char *name, const struct fs_stat *st, uint64_t next)
{
    struct names *nm = ctx;
    (void)next;
    if (!strcmp(name, ".") || !strcmp(name, ".."))
        return 0;
    nm->v = realloc(nm->v, (nm->n + 1) * sizeof(*nm->v));
    nm->ino = realloc(nm->ino, (nm->n + 1) * sizeof(*nm->ino));
    nm->mode = realloc(nm->mode, (nm->n + 1) * sizeof(*nm->mode));
    assert_non_null(nm->v);
    snprintf(nm->v[nm->n], 256, "%s", name);
    nm->ino[nm->n] = st->ino;
    nm->mode[nm->n] = st->mode;
    nm->n++;
    return 0;
}

/* Reads every file of directory dir and below; records where each inode is. */
static void walk_dir(struct walk *w, uint64_t dir, int depth)
{
    struct names nm = { 0 };
    int rd = depth > 20 ? -ELOOP : fs_readdir(w->fs, dir, 0, 0, names_fill, &nm);
    if (rd) {
        fprintf(stderr, "readdir %" PRIu64 ": %d\n", dir, rd);
        w->errors++;
        return;
    }
    for (size_t i = 0; i < nm.n; i++) {
        struct fs_stat st;
        int err = fs_lookup(w->fs, dir, nm.v[i], &st);
        if (err) {
            fprintf(stderr, "lookup %" PRIu64 "/%s: %d\n", dir, nm.v[i], err);
            w->errors++;
            continue;
        }
        fs_forget(w->fs, st.ino, 1);
        if (w->n == w->cap) {
            w->cap = w->cap ? w->cap * 2 : 256;
            w->v = realloc(w->v, w->cap * sizeof(*w->v));
            assert_non_null(w->v);
        }
        w->v[w->n].ino = st.ino;
        w->v[w->n].dir = dir;
        snprintf(w->v[w->n].name, sizeof(w->v[w->n].name), "%s", nm.v[i]);
        w->n++;
        if (S_ISDIR(st.mode)) {
            walk_dir(w, st.ino, depth + 1);
        } else if (S_ISREG(st.mode)) {
            uint8_t buf[65536];
            uint64_t end = st.size < 16 * MiB ? st.size : 16 * MiB;  /* sizes may be fuzzed */
            for (uint64_t off = 0; off < end; off += sizeof(buf)) {
                ssize_t n = fs_read(w->fs, st.ino, off, buf, sizeof(buf));
                if (n < 0) {
                    fprintf(stderr, "read %" PRIu64 " at %" PRIu64 ": %zd\n", st.ino, off, n);
                    w->errors++;
                    break;
                }
            }
        }
    }
    free(nm.v);
    free(nm.ino);
    free(nm.mode);
}

static const struct seen *seen_ino(const struct walk *w, uint64_t ino)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->v[i].ino == ino)
            return &w->v[i];
    return NULL;
}

/* Does regular file ino hold exactly its expected content? */
static int content_ok(struct fs *fs, const struct entry *e)
{
    struct fs_stat st;
    if (fs_getattr(fs, e->ino, &st) || st.size != e->size)
        return 0;
    uint8_t *buf = malloc(e->size + 1), *want = malloc(e->size + 1);
    assert_non_null(buf);
    assert_non_null(want);
    int ok = fs_read(fs, e->ino, 0, buf, e->size) == (ssize_t)e->size;
    if (e->seed) {
        content_fill(e->seed, 0, want, e->size);
        if (!strcmp(e->name, "big")) {
            /* only every other block was written */
            for (uint64_t b = 0; b * 4096 < e->size; b++)
                if (b % 2)
                    memset(want + b * 4096, 0, e->size - b * 4096 < 4096 ? e->size - b * 4096
                                                                         : 4096);
        }
        ok = ok && !memcmp(buf, want, e->size);
    }
    free(buf);
    free(want);
    return ok;
}

/*
 * Mounts the image and checks: every inode of the manifest is reachable
 * (in its place, or in lost+found as "#<ino>" when listed in moved[]),
 * regular files have their content, except the inodes in gone[] (must
 * not be reachable) and skip[] (content not checked). Lists end with 0.
 */
static void verify(struct image *im, const uint64_t *moved, const uint64_t *gone,
                   const uint64_t *skip)
{
    struct fs *fs;
    struct fs_options o = { .path = im->path };
    assert_int_equal(fs_mount(&fs, &o), 0);
    struct walk w = { .fs = fs };
    walk_dir(&w, MMAPFS_ROOT_INO, 0);
    assert_int_equal(w.errors, 0);
    struct fs_stat lnf;
    int have_lnf = fs_lookup(fs, MMAPFS_ROOT_INO, "lost+found", &lnf) == 0;
    if (have_lnf)
        fs_forget(fs, lnf.ino, 1);
    for (size_t i = 0; i < im->n; i++) {
        const struct entry *e = &im->e[i];
        int is_gone = 0, is_moved = 0, is_skip = 0;
        for (size_t j = 0; gone && gone[j]; j++)
            is_gone |= gone[j] == e->ino;
        for (size_t j = 0; moved && moved[j]; j++)
            is_moved |= moved[j] == e->ino;
        for (size_t j = 0; skip && skip[j]; j++)
            is_skip |= skip[j] == e->ino;
        const struct seen *s = seen_ino(&w, e->ino);
        if (is_gone) {
            if (s)
                fail_msg("inode %" PRIu64 " (%s) should be gone", e->ino, e->name);
            continue;
        }
        if (!s)
            fail_msg("inode %" PRIu64 " (%s) not reachable", e->ino, e->name);
        if (is_moved) {
            char want[32];
            snprintf(want, sizeof(want), "#%" PRIu64, e->ino);
            assert_true(have_lnf);
            if (s->dir != lnf.ino || strcmp(s->name, want))
                fail_msg("inode %" PRIu64 " found as %" PRIu64 "/%s, expected in lost+found",
                         e->ino, s->dir, s->name);
        }
        if (e->type == S_IFREG && !is_skip && !content_ok(fs, e))
            fail_msg("inode %" PRIu64 " (%s): content differs", e->ino, e->name);
    }
    free(w.v);
    assert_int_equal(fs_unmount(fs), 0);
    assert_int_equal(run_fsck(im->path, FS_CHECK_NO, NULL), FSCK_EXIT_OK);
}

/* Inode number of the name in directory dir (mounting the image). */
static uint64_t lookup_ino(struct image *im, uint64_t dir, const char *name)
{
    struct fs *fs;
    struct fs_options o = { .path = im->path };
    assert_int_equal(fs_mount(&fs, &o), 0);
    struct fs_stat st;
    int err = fs_lookup(fs, dir, name, &st);
    if (!err)
        fs_forget(fs, st.ino, 1);
    assert_int_equal(fs_unmount(fs), 0);
    return err ? 0 : st.ino;
}

/* d1's file number i. */
static uint64_t d1_file(struct image *im, int i)
{
    return im->e[1 + i].ino;
}

static void test_populated_is_clean(void **state)
{
    (void)state;
    struct image im;
    image_build(&im);
    assert_int_equal(run_fsck(im.path, FS_CHECK_NO, NULL), FSCK_EXIT_OK);
    verify(&im, NULL, NULL, NULL);
    image_destroy(&im);
}

/* ---- 1. entries naming free or out-of-range inodes --------------------------------------- */

static void test_entry_to_free_inode(void **state)
{
    (void)state;
    struct image im;
    image_build(&im);
    uint64_t a = d1_file(&im, 5), b = d1_file(&im, 10);
    struct raw r;
    raw_open(&r, im.path);
    raw_bit(&r, r.sb.inode_bitmap_start, a - 1, 0);          /* file 5: freed ... */
    raw_inode(&r, a)->nlink = 0;                 /* ... as fs_inode_release leaves it */
    raw_inode_seal(&r, a);
    uint64_t leaf;
    unsigned idx;
    char name[64];
    file_name(name, sizeof(name), 10);
    raw_dirent(&r, im.d1, name, &leaf, &idx);
    raw_dirent_val(&r, leaf, idx)->ino = r.sb.inode_count + 7;   /* file 10: out of range */
    raw_node_seal(&r, leaf);
    uint64_t free_before = r.sb.free_blocks;
    raw_close(&r);

    char w1[96], w2[96];
    snprintf(w1, sizeof(w1), "inode %" PRIu64 " is free", a);
    snprintf(w2, sizeof(w2), "inode %" PRIu64 " out of range", r.sb.inode_count + 7);
    const char *want[] = { w1, w2, NULL };
    const char *fixed[] = { "index rebuilt", "reconnected as /lost+found/#", NULL };
    expect_repair(im.path, want, fixed);
    /* file 5 is gone (its blocks freed); file 10 lost its name: in lost+found */
    const uint64_t moved[] = { b, 0 }, gone[] = { a, 0 };
    verify(&im, moved, gone, NULL);
    raw_open(&r, im.path);
    assert_true(r.sb.free_blocks > free_before);
    raw_close(&r);
    image_destroy(&im);
}

/* A live inode whose inode bitmap bit is cleared (the bitmaps carry no
 * checksum): the record says it is in use, so its entries and blocks stay
 * and the bit is set again; a zeroed bitmap block loses no file either. */
static void test_inode_bit_lost(void **state)
{
    (void)state;
    struct image im;
    image_build(&im);
    struct raw r;
    raw_open(&r, im.path);
    raw_bit(&r, r.sb.inode_bitmap_start, im.f2 - 1, 0);
    uint64_t free_inodes = r.sb.free_inodes, free_blocks = r.sb.free_blocks;
    raw_close(&r);
    char w1[96];
    snprintf(w1, sizeof(w1), "inode %" PRIu64 " in use but free in the inode bitmap", im.f2);
    const char *want[] = { w1, NULL };
    const char *fixed[] = { "inode bitmap: 1 live inode marked in use again", NULL };
    expect_repair(im.path, want, fixed);
    verify(&im, NULL, NULL, NULL);
    raw_open(&r, im.path);
    assert_int_equal(r.sb.free_inodes, free_inodes);
    assert_int_equal(r.sb.free_blocks, free_blocks);
    /* the whole bitmap block, the root's bit included */
    memset(raw_blk(&r, r.sb.inode_bitmap_start), 0, 4096);
    raw_close(&r);
    char w2[96];
    snprintf(w2, sizeof(w2), "inode %" PRIu64 " in use but free in the inode bitmap",
             (uint64_t)MMAPFS_ROOT_INO);
    const char *want2[] = { w1, w2, NULL };
    expect_repair(im.path, want2, NULL);
    verify(&im, NULL, NULL, NULL);
    raw_open(&r, im.path);
    assert_int_equal(r.sb.free_inodes, free_inodes);
    assert_int_equal(r.sb.free_blocks, free_blocks);
    raw_close(&r);
    image_destroy(&im);
}

/* ---- 2. wrong type, key not matching the name, invalid name --------------------------------- */

static void test_entry_type_key_name(void **state)
{
    (void)state;
    struct image im;
    image_build(&im);
    struct raw r;
    raw_open(&r, im.path);
    uint64_t leaf;
    unsigned idx;
    char name[64];
    /* file 20: type says directory */
    file_name(name, sizeof(name), 20);
    raw_dirent(&r, im.d1, name, &leaf, &idx);
    raw_dirent_val(&r, leaf, idx)->type = DT_DIR;
    raw_node_seal(&r, leaf);
    /* a file in the middle of a leaf: its key's hash part changes, order kept */
    int rekeyed = -1;
    for (int i = 30; i < NFILES && rekeyed < 0; i++) {
        file_name(name, sizeof(name), i);
        raw_dirent(&r, im.d1, name, &leaf, &idx);
        uint8_t *p = raw_blk(&r, leaf);
        if (idx == 0 || idx + 1 >= hdr(p)->nitems)
            continue;
        uint64_t k = items(p)[idx].key;
        if (k + 0x100 < items(p)[idx + 1].key) {
            items(p)[idx].key = k + 0x100;
            raw_node_seal(&r, leaf);
            rekeyed = i;
        }
    }
    assert_true(rekeyed >= 0);
    /* file 3: a '/' in its name */
    file_name(name, sizeof(name), 3);
    raw_dirent(&r, im.d1, name, &leaf, &idx);
    raw_dirent_val(&r, leaf, idx)->name[24] = '/';
    raw_node_seal(&r, leaf);
    raw_close(&r);

    char w1[96];
    snprintf(w1, sizeof(w1), "type 4, but inode %" PRIu64 " has type 8", d1_file(&im, 20));
    const char *want[] = { w1, "does not match the name's hash", "invalid name", NULL };
    const char *fixed[] = { "index rebuilt", NULL };
    expect_repair(im.path, want, fixed);
    verify(&im, NULL, NULL, NULL);
    file_name(name, sizeof(name), rekeyed);
    assert_int_equal(lookup_ino(&im, im.d1, name), d1_file(&im, rekeyed));
    assert_int_equal(lookup_ino(&im, im.d1, "file-with-a-longish-name_0003"), d1_file(&im, 3));
    file_name(name, sizeof(name), 20);
    assert_int_equal(lookup_ino(&im, im.d1, name), d1_file(&im, 20));
    image_destroy(&im);
}

/* ---- 3. unreachable inodes, lost+found ------------------------------------------------------ */

static void remove_entry(struct raw *r, uint64_t dir, const char *name)
{
    uint64_t leaf;
    unsigned idx;
    raw_dirent(r, dir, name, &leaf, &idx);
    raw_leaf_remove(r, leaf, idx);
}

static void test_unreachable_reconnected(void **state)
{
    (void)state;
    struct image im;
    image_build(&im);
    struct raw r;
    raw_open(&r, im.path);
    remove_entry(&r, MMAPFS_ROOT_INO, "d3");        /* a directory tree */
    remove_entry(&r, MMAPFS_ROOT_INO, "fifo");
    raw_close(&r);
    char w1[96], w2[96];
    snprintf(w1, sizeof(w1), "directory %" PRIu64 ": not named by any entry", im.d3);
    snprintf(w2, sizeof(w2), "inode %" PRIu64 ": in use (1 links) but not named", im.fifo);
    const char *want[] = { w1, w2, NULL };
    const char *fixed[] = { "reconnected as /lost+found/#", NULL };
    expect_repair(im.path, want, fixed);
    const uint64_t moved[] = { im.d3, im.fifo, 0 };
    verify(&im, moved, NULL, NULL);
    raw_open(&r, im.path);
    assert_int_equal(raw_inode(&r, im.d3)->parent, 2);
    assert_int_equal(raw_inode(&r, 2)->nlink, 3);
    assert_int_equal(raw_inode(&r, im.fifo)->nlink, 1);
    raw_close(&r);
    image_destroy(&im);
}

static void test_lost_found_recreated(void **state)
{
    (void)state;
    struct image im;
    image_build(&im);
    struct raw r;
    raw_open(&r, im.path);
    remove_entry(&r, MMAPFS_ROOT_INO, "lost+found");
    remove_entry(&r, MMAPFS_ROOT_INO, "sl");
    raw_close(&r);
    const char *want[] = { "directory 2: not named by any entry", NULL };
    const char *fixed[] = { "created /lost+found", "reconnected as /lost+found/#2", NULL };
    expect_repair(im.path, want, fixed);
    uint64_t lnf = lookup_ino(&im, MMAPFS_ROOT_INO, "lost+found");
    assert_true(lnf > 2);
    assert_int_equal(lookup_ino(&im, lnf, "#2"), 2);
    const uint64_t moved[] = { im.sl, 0 };
    verify(&im, moved, NULL, NULL);
    struct raw r2;
    raw_open(&r2, im.path);
    struct mmapfs_disk_inode *di = raw_inode(&r2, lnf);
    assert_int_equal(di->mode, S_IFDIR | 0700);
    assert_int_equal(di->parent, 1);
    assert_int_equal(di->nlink, 3);                 /* the old lost+found inside */
    raw_close(&r2);
    image_destroy(&im);
}

static void test_directory_cycle_cut(void **state)
{
    (void)state;
    struct image im;
    image_build(&im);
    struct raw r;
    raw_open(&r, im.path);
    /* d3 leaves the root and becomes an entry "loop" of its own child sub */
    remove_entry(&r, MMAPFS_ROOT_INO, "d3");
    uint64_t leaf = raw_inode(&r, im.sub)->tree_root;
    uint8_t *p = raw_blk(&r, leaf);
    assert_int_equal(hdr(p)->level, 0);
    uint8_t val[16];
    struct mmapfs_disk_dirent de = { .ino = im.d3, .type = DT_DIR, .name_len = 4 };
    memcpy(val, &de, 10);
    memcpy(val + 10, "loop", 4);
    uint64_t key = mmapfs_name_hash("loop", 4) << 8;
    raw_leaf_insert(&r, leaf, key, val, 14);
    raw_inode(&r, im.sub)->size = 3;
    raw_inode_seal(&r, im.sub);
    raw_close(&r);
    const char *want[] = { "part of a cycle of directories cut off from the root", NULL };
    const char *fixed[] = { "reconnected as /lost+found/#", NULL };
    expect_repair(im.path, want, fixed);
    verify(&im, NULL, NULL, NULL);
    image_destroy(&im);
}

/* ---- 4. blocks claimed twice ------------------------------------------------------------------ */

static void test_dup_cloned(void **state)
{
    (void)state;
    struct image im;
    image_build(&im);
    struct raw r;
    raw_open(&r, im.path);
    uint64_t leaf1, leaf2;
    unsigned i1, i2;
    struct mmapfs_disk_extent *e1 = raw_extent(&r, im.f1, 0, &leaf1, &i1);
    struct mmapfs_disk_extent *e2 = raw_extent(&r, im.f2, 0, &leaf2, &i2);
    assert_true(e1->len >= 2 && e2->len == 2);
    e2->start = e1->start;                  /* f2's first two blocks are f1's */
    raw_node_seal(&r, leaf2);
    raw_close(&r);
    char w1[128];
    snprintf(w1, sizeof(w1), "claimed twice: file data of inode %" PRIu64 " and file data of "
             "inode %" PRIu64, im.f1, im.f2);
    const char *want[] = { w1, NULL };
    const char *fixed[] = { "cloned to", NULL };
    expect_repair(im.path, want, fixed);
    /* f1 keeps its data; f2 got a copy of it (its own data there was lost) */
    struct entry *f2 = find_entry(&im, im.f2);
    f2->seed = im.f1;
    verify(&im, NULL, NULL, NULL);

    /* f2's extent now points at a node of big's extent tree: the node wins */
    raw_open(&r, im.path);
    uint64_t big_root = raw_inode(&r, im.big)->tree_root;
    uint64_t big_leaf = ptrs(raw_blk(&r, big_root))[1].child;
    e2 = raw_extent(&r, im.f2, 0, &leaf2, &i2);
    e2->start = big_leaf;
    e2->len = 1;
    raw_node_seal(&r, leaf2);
    raw_close(&r);
    snprintf(w1, sizeof(w1), "tree node of inode %" PRIu64, im.big);
    const char *want2[] = { w1, NULL };
    expect_repair(im.path, want2, fixed);
    const uint64_t skip[] = { im.f2, 0 };
    verify(&im, NULL, NULL, skip);
    image_destroy(&im);
}

static void test_dup_punched_when_full(void **state)
{
    (void)state;
    struct image im;
    image_format(&im, 16 * MiB);
    struct fs *fs;
    struct fs_options o = { .path = im.path };
    assert_int_equal(fs_mount(&fs, &o), 0);
    im.f1 = mk(fs, MMAPFS_ROOT_INO, "f1", S_IFREG | 0644);
    write_content(fs, im.f1, im.f1, 256 * 1024);
    add_entry(&im, MMAPFS_ROOT_INO, "f1", im.f1, S_IFREG, 256 * 1024, im.f1);
    im.f2 = mk(fs, MMAPFS_ROOT_INO, "f2", S_IFREG | 0644);
    write_content(fs, im.f2, im.f2, 4096);
    add_entry(&im, MMAPFS_ROOT_INO, "f2", im.f2, S_IFREG, 4096, im.f2);
    /* fill the filesystem */
    uint64_t fill = mk(fs, MMAPFS_ROOT_INO, "fill", S_IFREG | 0644);
    uint8_t buf[65536];
    memset(buf, 'f', sizeof(buf));
    uint64_t off = 0;
    for (;;) {
        ssize_t n = fs_write(fs, fill, off, buf, sizeof(buf));
        if (n <= 0)
            break;
        off += (uint64_t)n;
    }
    for (;;) {
        ssize_t n = fs_write(fs, fill, off, buf, 4096);
        if (n <= 0)
            break;
        off += (uint64_t)n;
    }
    struct statvfs sv;
    assert_int_equal(fs_statfs(fs, &sv), 0);
    assert_true(sv.f_bfree < 16);
    assert_int_equal(fs_unmount(fs), 0);

    struct raw r;
    raw_open(&r, im.path);
    uint64_t leaf1, leaf2;
    unsigned i1, i2;
    struct mmapfs_disk_extent *e1 = raw_extent(&r, im.f1, 0, &leaf1, &i1);
    struct mmapfs_disk_extent *e2 = raw_extent(&r, im.f2, 0, &leaf2, &i2);
    assert_true(e1->len >= 32);
    e2->start = e1->start;                  /* f2 (1 block) now maps 32 of f1's blocks */
    e2->len = 32;
    raw_node_seal(&r, leaf2);
    raw_close(&r);
    const char *want[] = { "claimed twice", NULL };
    const char *fixed[] = { "punched out (no free space to clone them)", NULL };
    expect_repair(im.path, want, fixed);
    const uint64_t skip[] = { im.f2, 0 };
    verify(&im, NULL, NULL, skip);
    image_destroy(&im);
}

/* ---- 5. corrupt directory index --------------------------------------------------------------- */

/* Inodes named in leaf blk (a directory leaf). */
static size_t leaf_inodes(struct raw *r, uint64_t blk, uint64_t *out, size_t max)
{
    uint8_t *p = raw_blk(r, blk);
    size_t n = 0;
    for (unsigned i = 0; i < hdr(p)->nitems && n < max; i++)
        out[n++] = ((struct mmapfs_disk_dirent *)(p + items(p)[i].value_off))->ino;
    return n;
}

/* Builds the image, opens it raw, and returns the root node of d1's index
 * (an internal node over at least 4 leaves). */
static uint8_t *d1_index_root(struct image *im, struct raw *r)
{
    image_build(im);
    raw_open(r, im->path);
    uint8_t *rp = raw_blk(r, raw_inode(r, im->d1)->tree_root);
    assert_true(hdr(rp)->level == 1 && hdr(rp)->nitems >= 4);
    return rp;
}

/* Flips a byte inside the name of item 3 of leaf 1 (under rp): the leaf's
 * checksum is wrong and that entry no longer matches its key. Returns the
 * entry's inode. */
static uint64_t flip_leaf1_name(struct raw *r, uint8_t *rp)
{
    uint8_t *p1 = raw_blk(r, ptrs(rp)[1].child);
    uint64_t ino = ((struct mmapfs_disk_dirent *)(p1 + items(p1)[3].value_off))->ino;
    p1[items(p1)[3].value_off + 12] ^= 0x20;
    return ino;
}

static void test_dir_index_salvaged(void **state)
{
    (void)state;
    struct image im;
    struct raw r;
    uint8_t *rp = d1_index_root(&im, &r);
    /* (a) leaf 1: one byte of its value heap flipped, checksum now wrong;
     * (b) the root: a byte of its unused space flipped;
     * (c) leaf 2: wiped out */
    uint64_t l2 = ptrs(rp)[2].child;
    uint64_t damaged = flip_leaf1_name(&r, rp);
    rp[4000] ^= 0x01;
    uint64_t lost[400];
    size_t nlost = leaf_inodes(&r, l2, lost, 399);
    memset(raw_blk(&r, l2), 0, 4096);
    raw_close(&r);

    char w1[64];
    snprintf(w1, sizeof(w1), "inode %" PRIu64 ": directory tree corrupt", im.d1);
    const char *want[] = { w1, NULL };
    char f1[64];
    snprintf(f1, sizeof(f1), "directory %" PRIu64 ": index rebuilt", im.d1);
    const char *fixed[] = { f1, "reconnected as /lost+found/#", NULL };
    expect_repair(im.path, want, fixed);
    /* the wiped leaf's entries and the damaged entry: in lost+found; every
     * other entry of the two damaged nodes kept its name */
    lost[nlost++] = damaged;
    lost[nlost] = 0;
    verify(&im, lost, NULL, NULL);
    image_destroy(&im);
}

/* A directory leaf with a bad checksum and a block bitmap of all ones: the
 * rebuilt index needs a block, and until the trees are whole the repair
 * allocator takes only blocks the bitmap marks free. It found none, left
 * the directory, and so never reached the bitmap rebuild: every -y ended
 * "cannot rebuild its directory index: no free space", exit 4. A bitmap
 * with no free block while blocks nothing claims remain is itself the
 * damage: those blocks are used. */
static void test_dir_index_salvaged_bitmap_full(void **state)
{
    (void)state;
    struct image im;
    struct raw r;
    uint8_t *rp = d1_index_root(&im, &r);
    uint64_t damaged[2] = { flip_leaf1_name(&r, rp), 0 };
    for (uint64_t b = 0; b < r.sb.block_bitmap_blocks; b++)
        memset(raw_blk(&r, r.sb.block_bitmap_start + b), 0xff, 4096);
    raw_close(&r);

    char w1[64], f1[64];
    snprintf(w1, sizeof(w1), "inode %" PRIu64 ": directory tree corrupt", im.d1);
    snprintf(f1, sizeof(f1), "directory %" PRIu64 ": index rebuilt", im.d1);
    const char *want[] = { w1, "marked in use in the bitmap but not owned", NULL };
    const char *fixed[] = { f1, "block bitmap rebuilt", NULL };
    expect_repair(im.path, want, fixed);
    verify(&im, damaged, NULL, NULL);
    image_destroy(&im);
}

/* ---- 6. corrupt extent tree ---------------------------------------------------------------------- */

static void test_extent_tree_salvaged(void **state)
{
    (void)state;
    struct image im;
    image_build(&im);
    struct raw r;
    raw_open(&r, im.path);
    uint64_t root = raw_inode(&r, im.big)->tree_root;
    uint8_t *rp = raw_blk(&r, root);
    assert_true(hdr(rp)->level == 1 && hdr(rp)->nitems >= 3);
    /* first an extent of length 0 in leaf 2 (the tree itself is fine) */
    uint64_t l2 = ptrs(rp)[2].child;
    uint8_t *p2 = raw_blk(&r, l2);
    uint64_t zero_key = items(p2)[5].key;
    ((struct mmapfs_disk_extent *)(p2 + items(p2)[5].value_off))->len = 0;
    raw_node_seal(&r, l2);
    raw_close(&r);
    char w1[96], f1[80];
    snprintf(w1, sizeof(w1), "extent at logical block %" PRIu64 ": length 0", zero_key);
    snprintf(f1, sizeof(f1), "inode %" PRIu64 ": extent tree rebuilt", im.big);
    const char *want1[] = { w1, NULL };
    const char *fixed[] = { f1, "dropped ranges read as holes", NULL };
    expect_repair(im.path, want1, fixed);

    /* then leaf 1 of the rebuilt tree is wiped: its extents are lost */
    raw_open(&r, im.path);
    root = raw_inode(&r, im.big)->tree_root;
    rp = raw_blk(&r, root);
    assert_true(hdr(rp)->level == 1 && hdr(rp)->nitems >= 3);
    uint8_t *p1 = raw_blk(&r, ptrs(rp)[1].child);
    uint64_t first_lost = items(p1)[0].key, last_lost = items(p1)[hdr(p1)->nitems - 1].key;
    memset(p1, 0, 4096);
    raw_close(&r);
    snprintf(w1, sizeof(w1), "inode %" PRIu64 ": extent tree corrupt", im.big);
    const char *want2[] = { w1, NULL };
    expect_repair(im.path, want2, fixed);

    /* last, one byte of one extent of leaf 3 flipped: the leaf's checksum
     * fails, but its other extents are consistent and are kept */
    raw_open(&r, im.path);
    root = raw_inode(&r, im.big)->tree_root;
    rp = raw_blk(&r, root);
    uint8_t *p3 = raw_blk(&r, ptrs(rp)[3].child);
    uint64_t flipped_key = items(p3)[7].key;
    p3[items(p3)[7].value_off + 5] ^= 0x40;     /* start += 2^46: out of range */
    raw_close(&r);
    const char *want3[] = { w1, NULL };
    char f3[64];
    snprintf(f3, sizeof(f3), "kept, 1 dropped, 1 damaged node");
    const char *fixed3[] = { f1, f3, NULL };
    expect_repair(im.path, want3, fixed3);

    const uint64_t skip[] = { im.big, 0 };
    verify(&im, NULL, NULL, skip);
    /* big: exactly the lost extents read as zeros, everything else as written */
    struct fs *fs;
    struct fs_options o = { .path = im.path };
    assert_int_equal(fs_mount(&fs, &o), 0);
    uint8_t got[4096], want_blk[4096], zero[4096] = { 0 };
    for (uint64_t b = 0; b < BIG_EXTENTS * 2; b += 2) {
        assert_int_equal(fs_read(fs, im.big, b * 4096, got, 4096), 4096);
        content_fill(im.big, b * 4096, want_blk, 4096);
        if ((b >= first_lost && b <= last_lost) || b == zero_key || b == flipped_key)
            assert_memory_equal(got, zero, 4096);
        else
            assert_memory_equal(got, want_blk, 4096);
    }
    assert_int_equal(fs_unmount(fs), 0);
    image_destroy(&im);
}

/* One extent's length grows over the file's next extents, blocks of
 * another file and the second block of a third file's xattr chain: the
 * chain block is a block claimed twice (no cut that changes nothing,
 * every round), and the salvage cuts the grown extent back where the next
 * one starts instead of dropping the good extents after it. */
static void test_extent_grown_over_others(void **state)
{
    (void)state;
    struct image im;
    struct fs *fs = image_build_mounted(&im);
    /* frag and fill take turns: frag's extents are one block each, a block
     * of fill between two of them */
    uint64_t frag = mk(fs, MMAPFS_ROOT_INO, "frag", S_IFREG | 0644);
    uint64_t fill = mk(fs, MMAPFS_ROOT_INO, "fill", S_IFREG | 0644);
    uint8_t blockbuf[4096];
    for (int i = 0; i < 40; i++) {
        content_fill(frag, (uint64_t)i * 4096, blockbuf, 4096);
        assert_int_equal(fs_write(fs, frag, (uint64_t)i * 4096, blockbuf, 4096), 4096);
        assert_int_equal(fs_fsync(fs, frag, 1), 0);
        content_fill(fill, (uint64_t)i * 4096, blockbuf, 4096);
        assert_int_equal(fs_write(fs, fill, (uint64_t)i * 4096, blockbuf, 4096), 4096);
        assert_int_equal(fs_fsync(fs, fill, 1), 0);
    }
    add_entry(&im, MMAPFS_ROOT_INO, "frag", frag, S_IFREG, 40 * 4096, frag);
    add_entry(&im, MMAPFS_ROOT_INO, "fill", fill, S_IFREG, 40 * 4096, fill);
    uint64_t xc = mk(fs, MMAPFS_ROOT_INO, "xc", S_IFREG | 0644);
    add_entry(&im, MMAPFS_ROOT_INO, "xc", xc, S_IFREG, 0, 0);
    memset(blockbuf, 'v', 3000);
    assert_int_equal(fs_setxattr(fs, xc, "user.one", blockbuf, 3000, 0), 0);
    assert_int_equal(fs_setxattr(fs, xc, "user.two", blockbuf, 3000, 0), 0);
    assert_int_equal(fs_unmount(fs), 0);

    struct raw r;
    raw_open(&r, im.path);
    uint64_t x1 = raw_inode(&r, xc)->xattr_block;
    assert_true(x1 != 0);
    uint64_t x2 = ((struct mmapfs_disk_xattr_header *)raw_blk(&r, x1))->next;
    uint64_t leaf;
    unsigned idx;
    struct mmapfs_disk_extent *e = raw_extent(&r, frag, 10, &leaf, &idx);
    assert_int_equal(e->len, 1);
    assert_true(x2 > e->start + 20);
    e->len = (uint32_t)(x2 - e->start + 1);
    raw_node_seal(&r, leaf);
    raw_close(&r);

    char w1[96], w2[128], f1[96];
    snprintf(w1, sizeof(w1), "inode %" PRIu64 ": extent at logical block 11 overlaps the "
             "previous extent", frag);
    snprintf(w2, sizeof(w2), "block %" PRIu64 ": claimed twice: file data of inode %" PRIu64
             " and xattr block of inode %" PRIu64, x2, frag, xc);
    snprintf(f1, sizeof(f1), "inode %" PRIu64 ": extent tree rebuilt from what was readable: "
             "40 extents (40 blocks) kept, 0 dropped", frag);
    const char *want[] = { w1, w2, NULL };
    const char *fixed[] = { f1, NULL };
    expect_repair(im.path, want, fixed);
    verify(&im, NULL, NULL, NULL);
    struct fs_options o = { .path = im.path };
    assert_int_equal(fs_mount(&fs, &o), 0);
    char v[3000];
    assert_int_equal(fs_getxattr(fs, xc, "user.two", v, sizeof(v)), 3000);
    assert_int_equal(fs_unmount(fs), 0);
    image_destroy(&im);
}

/* ---- 7. corrupt inode records ------------------------------------------------------------------ */

static void test_inode_records(void **state)
{
    (void)state;
    struct image im;
    image_build(&im);
    struct raw r;
    raw_open(&r, im.path);
    raw_inode(&r, im.f1)->mtime_sec ^= 0x40;            /* checksum wrong, record sane */
    raw_inode(&r, im.f2)->mode = 0170644;               /* invalid type, an extent tree */
    raw_inode_seal(&r, im.f2);
    raw_inode(&r, MMAPFS_ROOT_INO)->mode = 0;           /* root: invalid type */
    raw_inode_seal(&r, MMAPFS_ROOT_INO);
    uint8_t *xb = raw_blk(&r, raw_inode(&r, im.big)->xattr_block);
    xb[40] ^= 0x01;                                     /* xattr block checksum */
    raw_inode(&r, im.g1)->mode = S_IFDIR | 0644;        /* types the trees contradict */
    raw_inode_seal(&r, im.g1);
    raw_inode(&r, im.sub)->mode = S_IFREG | 0755;
    raw_inode_seal(&r, im.sub);
    raw_inode(&r, im.d3)->mode = S_IFIFO | 0755;       /* a FIFO with a directory index */
    raw_inode_seal(&r, im.d3);
    raw_close(&r);
    char w1[96], w2[96], w3[96];
    snprintf(w1, sizeof(w1), "inode %" PRIu64 ": bad checksum", im.f1);
    snprintf(w2, sizeof(w2), "inode %" PRIu64 ": mode 0170644, but its tree is a file's",
             im.f2);
    snprintf(w3, sizeof(w3), "inode %" PRIu64 ": xattr block", im.big);
    const char *want[] = { w1, w2, "inode 1: invalid mode", w3, NULL };
    char f1[96], f2[96];
    snprintf(f1, sizeof(f1), "inode %" PRIu64 ": checksum recomputed", im.f1);
    snprintf(f2, sizeof(f2), "inode %" PRIu64 ": type set to regular file, as its tree says",
             im.f2);
    char f3[96], f4[96], f5[96];
    snprintf(f3, sizeof(f3), "inode %" PRIu64 ": type set to regular file", im.g1);
    snprintf(f4, sizeof(f4), "inode %" PRIu64 ": type set to directory", im.sub);
    snprintf(f5, sizeof(f5), "inode %" PRIu64 ": type set to directory", im.d3);
    const char *fixed[] = { f1, f2, "root directory: record rewritten as a directory",
                            "xattr block", f3, f4, f5, NULL };
    expect_repair(im.path, want, fixed);
    /* everything stays, the whole root directory included, and f2 with its
     * content: its extent tree says it is a regular file (it used to be
     * cleared, its data lost, for one damaged field) */
    verify(&im, NULL, NULL, NULL);
    raw_open(&r, im.path);
    assert_int_equal(raw_inode(&r, MMAPFS_ROOT_INO)->mode, S_IFDIR | 0755);
    assert_int_equal(raw_inode(&r, im.g1)->mode, S_IFREG | 0644);
    assert_int_equal(raw_inode(&r, im.f2)->mode, S_IFREG | 0644);
    assert_int_equal(raw_inode(&r, im.sub)->mode, S_IFDIR | 0755);
    assert_int_equal(raw_inode(&r, im.d3)->mode, S_IFDIR | 0755);
    assert_int_equal(raw_inode(&r, im.big)->xattr_block, 0);
    raw_close(&r);
    image_destroy(&im);
}

/* The root's record is wiped and freed: it is rewritten as an empty
 * directory and everything it held comes back through lost+found. */
static void test_root_wiped(void **state)
{
    (void)state;
    struct image im;
    image_build(&im);
    struct raw r;
    raw_open(&r, im.path);
    memset(raw_inode(&r, MMAPFS_ROOT_INO), 0, 256);
    raw_bit(&r, r.sb.inode_bitmap_start, 0, 0);
    raw_close(&r);
    const char *want[] = { "root directory (inode 1): free", NULL };
    const char *fixed[] = { "root directory: record rewritten as a directory",
                            "created /lost+found", "reconnected as /lost+found/#2", NULL };
    expect_repair(im.path, want, fixed);
    /* f1 keeps its other name, d2/f1-link */
    const uint64_t moved[] = { im.d1, im.big, im.d2, im.sl, im.fifo, im.d3, 0 };
    verify(&im, moved, NULL, NULL);
    image_destroy(&im);
}

/* The root node of a tree wiped out (zeros): d1's directory index and the
 * big file's extent tree. No level and no child is left to salvage: the
 * directory's entries go to lost+found with their inodes intact, the file
 * keeps its size and reads as zeros, and a second check is clean. */
static void test_tree_root_wiped(void **state)
{
    (void)state;
    struct image im;
    struct raw r;
    uint8_t *rp = d1_index_root(&im, &r);
    memset(rp, 0, 4096);
    memset(raw_blk(&r, raw_inode(&r, im.big)->tree_root), 0, 4096);
    raw_close(&r);

    char w1[64], w2[64], f1[64], f2[64];
    snprintf(w1, sizeof(w1), "inode %" PRIu64 ": directory tree corrupt", im.d1);
    snprintf(w2, sizeof(w2), "inode %" PRIu64 ": extent tree corrupt", im.big);
    snprintf(f1, sizeof(f1), "directory %" PRIu64 ": index rebuilt", im.d1);
    snprintf(f2, sizeof(f2), "inode %" PRIu64 ": extent tree rebuilt", im.big);
    const char *want[] = { w1, w2, NULL };
    const char *fixed[] = { f1, f2, "inodes reconnected", NULL };
    expect_repair(im.path, want, fixed);

    uint64_t *moved = calloc(im.n + 1, sizeof(*moved));
    assert_non_null(moved);
    size_t nmoved = 0;
    for (size_t i = 0; i < im.n; i++)
        if (im.e[i].dir == im.d1)
            moved[nmoved++] = im.e[i].ino;
    assert_int_equal(nmoved, NFILES);
    const uint64_t skip[] = { im.big, 0 };
    verify(&im, moved, NULL, skip);
    free(moved);

    struct fs *fs;
    struct fs_options o = { .path = im.path };
    assert_int_equal(fs_mount(&fs, &o), 0);
    struct fs_stat st;
    assert_int_equal(fs_lookup(fs, MMAPFS_ROOT_INO, "big", &st), 0);
    assert_int_equal(st.size, (BIG_EXTENTS * 2 - 1) * 4096ull);
    fs_forget(fs, st.ino, 1);
    uint8_t got[4096], zero[4096] = { 0 };
    for (uint64_t b = 0; b < BIG_EXTENTS * 2 - 1; b += 7) {
        assert_int_equal(fs_read(fs, im.big, b * 4096, got, 4096), 4096);
        assert_memory_equal(got, zero, 4096);
    }
    assert_int_equal(fs_unmount(fs), 0);
    image_destroy(&im);
}

/* One flipped bit in a record, its checksum left wrong: the type bits of a
 * file (now a socket), of a directory (a socket too) and of a second file
 * (no valid type at all). Each is one damaged field, and the inode's own
 * tree root node says what it is: it keeps its type, its entries and its
 * data. Before, the type was trusted first, so the tree root looked like
 * the damage and went with the file's data (the directory's entries to
 * lost+found), and a record with no valid type was cleared. Then types
 * the data leaves open, decided by the entries naming the inode: a small
 * file made a symlink (its map fits a target: it would have become one,
 * cut at its first NUL), a symlink made a character device and a FIFO
 * with no valid type (no data to tell: the FIFO was cleared). Flag bits:
 * test_fs_inline (these images have no inode-resident data). */
static void test_record_bit_flips(void **state)
{
    (void)state;
    struct image im;
    image_build(&im);
    struct raw r;
    raw_open(&r, im.path);
    raw_inode(&r, im.f2)->mode ^= 0040000;             /* 0100644: S_IFSOCK */
    raw_inode(&r, im.sub)->mode ^= 0100000;            /* 0040755: S_IFSOCK */
    raw_inode(&r, im.f1)->mode ^= 0010000;             /* 0100644: no type */
    uint64_t small = 0;
    for (size_t i = 0; i < im.n && !small; i++)
        if (im.e[i].dir == im.d1 && im.e[i].size < 1000)
            small = im.e[i].ino;
    assert_true(small != 0);
    raw_inode(&r, small)->mode ^= 0020000;             /* 0100644: S_IFLNK */
    raw_inode(&r, im.sl)->mode ^= 0100000;             /* 0120777: S_IFCHR */
    raw_inode(&r, im.fifo)->mode ^= 0010000;           /* 0010600: no type */
    raw_close(&r);
    const uint64_t hit[] = { im.f2, im.sub, im.f1, small, im.sl, im.fifo };
    char w[6][64], f[6][64];
    const char *want[7], *fixed[7];
    for (int i = 0; i < 6; i++) {
        snprintf(w[i], sizeof(w[i]), "inode %" PRIu64 ": bad checksum", hit[i]);
        snprintf(f[i], sizeof(f[i]), "inode %" PRIu64 ": 1 damaged field reset", hit[i]);
        want[i] = w[i];
        fixed[i] = f[i];
    }
    want[6] = fixed[6] = NULL;
    expect_repair(im.path, want, fixed);
    verify(&im, NULL, NULL, NULL);
    raw_open(&r, im.path);
    assert_int_equal(raw_inode(&r, im.f2)->mode, S_IFREG | 0644);
    assert_int_equal(raw_inode(&r, im.sub)->mode, S_IFDIR | 0755);
    assert_int_equal(raw_inode(&r, im.f1)->mode, S_IFREG | 0644);
    assert_int_equal(raw_inode(&r, small)->mode & S_IFMT, S_IFREG);
    assert_int_equal(raw_inode(&r, im.sl)->mode & S_IFMT, S_IFLNK);
    assert_int_equal(raw_inode(&r, im.fifo)->mode & S_IFMT, S_IFIFO);
    raw_close(&r);
    image_destroy(&im);
}

/* The type bits of an empty directory flipped (to a socket, to no type):
 * it has no index of its own to say what it is, but its entry says a
 * directory, and the record fits one (a parent, no size, no data, two
 * links). It stays a directory, with its name and mode. Before, it became
 * a socket, and a record with no type was cleared. */
static void test_empty_dir_type_flip(void **state)
{
    (void)state;
    struct image im;
    struct fs *fs = image_build_mounted(&im);
    uint64_t e1 = mk(fs, im.d2, "empty1", S_IFDIR | 0750);
    add_entry(&im, im.d2, "empty1", e1, S_IFDIR, 0, 0);
    uint64_t e2 = mk(fs, MMAPFS_ROOT_INO, "empty2", S_IFDIR | 0711);
    add_entry(&im, MMAPFS_ROOT_INO, "empty2", e2, S_IFDIR, 0, 0);
    assert_int_equal(fs_unmount(fs), 0);
    struct raw r;
    raw_open(&r, im.path);
    raw_inode(&r, e1)->mode ^= 0100000;                /* 0040750: S_IFSOCK */
    raw_inode(&r, e2)->mode ^= 0040000;                /* 0040711: no type */
    raw_close(&r);
    char w1[64], w2[64], f1[64], f2[64];
    snprintf(w1, sizeof(w1), "inode %" PRIu64 ": bad checksum", e1);
    snprintf(w2, sizeof(w2), "inode %" PRIu64 ": bad checksum", e2);
    snprintf(f1, sizeof(f1), "inode %" PRIu64 ": 1 damaged field reset", e1);
    snprintf(f2, sizeof(f2), "inode %" PRIu64 ": 1 damaged field reset", e2);
    const char *want[] = { w1, w2, NULL };
    const char *fixed[] = { f1, f2, NULL };
    expect_repair(im.path, want, fixed);
    verify(&im, NULL, NULL, NULL);
    raw_open(&r, im.path);
    assert_int_equal(raw_inode(&r, e1)->mode, S_IFDIR | 0750);
    assert_int_equal(raw_inode(&r, e2)->mode, S_IFDIR | 0711);
    raw_close(&r);
    image_destroy(&im);
}

/* ---- 8. the orphan list ------------------------------------------------------------------------ */

/* A child mounts, leaves two open unlinked files and a kept file, and dies
 * without unmounting. Returns the inode numbers (orphans in o[0..1]). */
static void crash_with_orphans(struct image *im, uint64_t o[2], uint64_t *kept)
{
    image_format(im, 32 * MiB);
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct fs *fs;
        struct fs_options opt = { .path = im->path };
        uint64_t out[3];
        if (fs_mount(&fs, &opt))
            _exit(2);
        for (int i = 0; i < 2; i++) {
            struct fs_stat st;
            char name[16];
            snprintf(name, sizeof(name), "open%d", i);
            if (fs_mknod(fs, MMAPFS_ROOT_INO, name, S_IFREG | 0644, 0, &cred, &st) ||
                fs_write(fs, st.ino, 0, "data", 4) != 4 || fs_unlink(fs, MMAPFS_ROOT_INO, name))
                _exit(3);
            out[i] = st.ino;
        }
        out[2] = mk(fs, MMAPFS_ROOT_INO, "kept", S_IFREG | 0644);
        if (fs_fsync(fs, MMAPFS_ROOT_INO, 0) || fs_fsync(fs, out[0], 0))
            _exit(5);
        if (write(pfd[1], out, sizeof(out)) != sizeof(out))
            _exit(6);
        _exit(0);
    }
    close(pfd[1]);
    uint64_t in[3];
    assert_int_equal(read(pfd[0], in, sizeof(in)), sizeof(in));
    close(pfd[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    o[0] = in[0];
    o[1] = in[1];
    *kept = in[2];
    /* replay the journal into the image (-y; -n replays in memory only) so
     * that the list is in place */
    assert_int_equal(run_fsck(im->path, FS_CHECK_YES, NULL), FSCK_EXIT_OK);
}

static void test_orphan_list_rebuilt(void **state)
{
    (void)state;
    struct image im;
    uint64_t o[2], kept;
    crash_with_orphans(&im, o, &kept);
    add_entry(&im, MMAPFS_ROOT_INO, "kept", kept, S_IFREG, 0, 0);
    struct raw r;
    raw_open(&r, im.path);
    assert_true(r.sb.orphan_head == o[0] || r.sb.orphan_head == o[1]);
    /* (a) the list runs on into a named file */
    uint64_t tail = r.sb.orphan_head == o[0] ? o[1] : o[0];
    assert_int_equal(raw_inode(&r, tail)->orphan_next, 0);
    raw_inode(&r, tail)->orphan_next = kept;
    raw_inode_seal(&r, tail);
    raw_close(&r);
    char w1[96];
    snprintf(w1, sizeof(w1), "inode %" PRIu64 ": on the orphan list but named", kept);
    const char *want[] = { w1, NULL };
    const char *fixed[] = { "orphan list rebuilt: 2 unlinked inodes", NULL };
    expect_repair(im.path, want, fixed);
    /* (b) the head points at a free inode: the orphans are found again */
    raw_open(&r, im.path);
    r.sb.orphan_head = 60;
    raw_sb_store(&r);
    raw_close(&r);
    const char *want2[] = { "orphan list: inode 60 is free", "in use (0 links) but not named",
                            NULL };
    expect_repair(im.path, want2, fixed);
    /* (c) the list is lost altogether */
    raw_open(&r, im.path);
    r.sb.orphan_head = 0;
    raw_sb_store(&r);
    raw_close(&r);
    const char *want3[] = { "in use (0 links) but not named", NULL };
    expect_repair(im.path, want3, fixed);
    char *rep;
    assert_int_equal(run_fsck(im.path, FS_CHECK_NO, &rep), FSCK_EXIT_OK);
    assert_non_null(strstr(rep, "unlinked while open"));
    free(rep);
    /* the mount releases them */
    verify(&im, NULL, NULL, NULL);
    raw_open(&r, im.path);
    assert_int_equal(r.sb.orphan_head, 0);
    assert_int_equal(raw_blk(&r, r.sb.inode_bitmap_start)[(o[0] - 1) / 8] &
                     (1u << ((o[0] - 1) % 8)), 0);
    raw_close(&r);
    image_destroy(&im);
}

/* ---- 9. link counts, bitmaps, free counts -------------------------------------------------------- */

static void test_counts_bitmaps_links(void **state)
{
    (void)state;
    struct image im;
    image_build(&im);
    struct raw r;
    raw_open(&r, im.path);
    raw_inode(&r, im.f1)->nlink = 7;
    raw_inode_seal(&r, im.f1);
    raw_inode(&r, im.d1)->nlink = 9;
    raw_inode_seal(&r, im.d1);
    uint64_t leaf;
    unsigned idx;
    struct mmapfs_disk_extent *e = raw_extent(&r, im.big, 40, &leaf, &idx);
    raw_bit(&r, r.sb.block_bitmap_start, e->start, 0);        /* in use, marked free */
    raw_bit(&r, r.sb.block_bitmap_start, r.sb.block_count - 3, 1);   /* owned by nobody */
    r.sb.free_blocks += 1000;
    r.sb.free_inodes -= 5;
    raw_sb_store(&r);
    raw_close(&r);
    char w1[96], w2[96];
    snprintf(w1, sizeof(w1), "inode %" PRIu64 ": link count 7, but 2 entries name it", im.f1);
    snprintf(w2, sizeof(w2), "directory %" PRIu64 ": link count 9, expected 2", im.d1);
    const char *want[] = { w1, w2, "in use but marked free", "not owned by any inode",
                           "free block count", "free inode count", NULL };
    const char *fixed[] = { "block bitmap rebuilt", NULL };
    expect_repair(im.path, want, fixed);
    verify(&im, NULL, NULL, NULL);
    image_destroy(&im);
}

/* ---- 10. superblock, preen ------------------------------------------------------------------- */

static void test_superblock_mended(void **state)
{
    (void)state;
    struct image im;
    image_build(&im);
    struct raw r;
    raw_open(&r, im.path);
    raw_blk(&r, 0)[1000] ^= 0x10;                    /* a reserved byte: checksum fails */
    raw_close(&r);
    const char *want[] = { "superblock checksum mismatch", NULL };
    const char *fixed[] = { "superblock: 1 damaged field reset, checksum recomputed", NULL };
    expect_repair(im.path, want, fixed);
    raw_open(&r, im.path);
    r.sb.orphan_head = r.sb.inode_count + 9;         /* valid checksum, head out of range */
    raw_sb_store(&r);
    raw_close(&r);
    const char *want2[] = { "bad orphan list head", NULL };
    expect_repair(im.path, want2, fixed);
    raw_open(&r, im.path);
    r.sb.inode_table_start += 1;                     /* layout: cannot be trusted */
    raw_sb_store(&r);
    raw_close(&r);
    /* the backup superblock (block 1) can */
    char *rep;
    assert_int_equal(run_fsck(im.path, FS_CHECK_YES, &rep), FSCK_EXIT_CORRECTED);
    assert_non_null(strstr(rep, "restored from the backup superblock at block 1"));
    free(rep);
    assert_int_equal(run_fsck(im.path, FS_CHECK_NO, NULL), FSCK_EXIT_OK);
    /* without the backup: nothing to go by */
    uint8_t saved[4096];
    raw_open(&r, im.path);
    memcpy(saved, raw_blk(&r, 1), sizeof(saved));
    memset(raw_blk(&r, 1), 0, sizeof(saved));
    r.sb.inode_table_start += 1;
    raw_sb_store(&r);
    raw_close(&r);
    assert_int_equal(run_fsck(im.path, FS_CHECK_YES, &rep), FSCK_EXIT_UNCORRECTED);
    assert_non_null(strstr(rep, "cannot check further"));
    free(rep);
    raw_open(&r, im.path);
    r.sb.inode_table_start -= 1;
    raw_sb_store(&r);
    memcpy(raw_blk(&r, 1), saved, sizeof(saved));
    raw_close(&r);
    verify(&im, NULL, NULL, NULL);
    image_destroy(&im);
}

static int run_preen(const char *path, char **out)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    struct fs_check_options o = { .mode = FS_CHECK_PREEN, .force = 1, .verbose = 1 };
    int r = fs_check(path, &o, f);
    fclose(f);
    if (getenv("TEST_FSCK_VERBOSE"))
        fprintf(stderr, "--- fsck -p -f -> %d\n%s", r, buf);
    *out = buf;
    return r;
}

static void test_preen(void **state)
{
    (void)state;
    struct image im;
    image_build(&im);
    struct raw r;
    raw_open(&r, im.path);
    raw_inode(&r, im.f1)->nlink = 1;                 /* a simple problem */
    raw_inode_seal(&r, im.f1);
    raw_close(&r);
    char *rep;
    assert_int_equal(run_preen(im.path, &rep), FSCK_EXIT_CORRECTED);
    free(rep);
    assert_int_equal(run_fsck(im.path, FS_CHECK_NO, NULL), FSCK_EXIT_OK);
    /* a structural one: preen stops and says so; -y repairs it */
    raw_open(&r, im.path);
    remove_entry(&r, MMAPFS_ROOT_INO, "fifo");
    raw_close(&r);
    assert_int_equal(run_preen(im.path, &rep) & FSCK_EXIT_UNCORRECTED, FSCK_EXIT_UNCORRECTED);
    assert_non_null(strstr(rep, "run fsck.mmapfs -y"));
    free(rep);
    const char *fixed[] = { "reconnected as /lost+found/#", NULL };
    expect_repair(im.path, NULL, fixed);
    const uint64_t moved[] = { im.fifo, 0 };
    verify(&im, moved, NULL, NULL);
    image_destroy(&im);
}

/* ---- 11. a crash in the middle of fsck -y ---------------------------------------------------- */

/* Saved metadata region and used data blocks of an image, to restore. */
struct snapshot {
    uint64_t D, nused;
    uint8_t *meta, *data;
    uint64_t *used;
};

static void snap_take(struct raw *r, struct snapshot *s)
{
    s->D = r->sb.data_start;
    s->meta = malloc(s->D * 4096);
    s->used = malloc(r->sb.block_count * sizeof(*s->used));
    assert_non_null(s->meta);
    assert_non_null(s->used);
    memcpy(s->meta, raw_blk(r, 0), s->D * 4096);
    s->nused = 0;
    for (uint64_t b = s->D; b < r->sb.block_count; b++) {
        const uint8_t *bm = raw_blk(r, r->sb.block_bitmap_start + b / 32768);
        if ((bm[(b % 32768) / 8] >> (b % 8)) & 1)
            s->used[s->nused++] = b;
    }
    s->data = malloc(s->nused * 4096);
    assert_non_null(s->data);
    for (uint64_t i = 0; i < s->nused; i++)
        memcpy(s->data + i * 4096, raw_blk(r, s->used[i]), 4096);
}

static void snap_restore(struct raw *r, const struct snapshot *s)
{
    memcpy(raw_blk(r, 0), s->meta, s->D * 4096);
    for (uint64_t i = 0; i < s->nused; i++)
        memcpy(raw_blk(r, s->used[i]), s->data + i * 4096, 4096);
    assert_int_equal(mmio_sync(r->io), 0);
}

static void snap_free(struct snapshot *s)
{
    free(s->meta);
    free(s->data);
    free(s->used);
}

/*
 * Several problems at once (a wiped directory leaf, a shared block, an
 * unnamed FIFO, an inode record with a bad checksum, a wrong link count);
 * fsck -y "crashes" at its k-th write, losing a random part of what was
 * not synced yet. A second fsck -y must still repair everything (exit 1),
 * -n must then be clean, and the files must be as after an uninterrupted
 * repair.
 */
static void test_crash_during_repair(void **state)
{
    (void)state;
    struct image im;
    image_build(&im);
    struct raw r;
    raw_open(&r, im.path);
    uint64_t root = raw_inode(&r, im.d1)->tree_root;
    uint64_t l2 = ptrs(raw_blk(&r, root))[2].child;
    uint64_t lost[400];
    size_t nlost = leaf_inodes(&r, l2, lost, 396);
    memset(raw_blk(&r, l2), 0, 4096);
    uint64_t leaf1, leaf2;
    unsigned i1, i2;
    struct mmapfs_disk_extent *e1 = raw_extent(&r, im.f1, 0, &leaf1, &i1);
    struct mmapfs_disk_extent *e2 = raw_extent(&r, im.f2, 0, &leaf2, &i2);
    e2->start = e1->start;
    raw_node_seal(&r, leaf2);
    remove_entry(&r, MMAPFS_ROOT_INO, "fifo");
    raw_inode(&r, im.g1)->mtime_sec ^= 0x100;
    raw_inode(&r, im.d2)->nlink = 5;
    raw_inode_seal(&r, im.d2);
    assert_int_equal(mmio_sync(r.io), 0);
    struct snapshot snap;
    snap_take(&r, &snap);
    lost[nlost++] = im.fifo;
    lost[nlost] = 0;
    const uint64_t skip[] = { im.f2, 0 };

    /* how many writes an uninterrupted repair makes */
    mmio_set_observer(&sim_observer);
    sim.crash_at = UINT64_MAX;
    sim.writes = 0;
    assert_int_equal(run_fsck(im.path, FS_CHECK_YES, NULL), FSCK_EXIT_CORRECTED);
    uint64_t total = sim.writes;
    sim.crash_at = 0;
    undo_clear();
    assert_true(total > 10);
    verify(&im, lost, NULL, skip);

    uint64_t seed = getenv("TEST_FSCK_SEED") ? strtoull(getenv("TEST_FSCK_SEED"), NULL, 0)
                                             : (uint64_t)time(NULL);
    unsigned points = getenv("TEST_FSCK_ROUNDS") ? (unsigned)atoi(getenv("TEST_FSCK_ROUNDS"))
                                                 : 24;
    printf("crash during repair: seed %" PRIu64 ", %" PRIu64 " writes, %u crash points\n",
           seed, total, points);
    for (unsigned i = 0; i < points; i++) {
        uint64_t k = 1 + (i * total) / points + (seed + i) % 2;
        snap_restore(&r, &snap);
        sim.crash_at = k;
        sim.writes = 0;
        sim.rng = seed * 31 + i;
        sim.crashed = 0;
        int y1 = run_fsck(im.path, FS_CHECK_YES, NULL);
        int crashed = sim.crashed;
        sim.crash_at = 0;
        undo_clear();
        assert_int_equal(y1, crashed ? FSCK_EXIT_OPERATIONAL : FSCK_EXIT_CORRECTED);
        char *rep;
        int y2 = run_fsck(im.path, FS_CHECK_YES, &rep), want = crashed ? FSCK_EXIT_CORRECTED : 0;
        if (y2 != want)
            fprintf(stderr, "crash at write %" PRIu64 " (seed %" PRIu64 "): second -y %d\n%s",
                    k, seed, y2, rep);
        free(rep);
        assert_int_equal(y2, want);
        verify(&im, lost, NULL, skip);
    }
    mmio_set_observer(NULL);
    free(undo_log);
    undo_log = NULL;
    undo_cap = 0;
    raw_close(&r);
    snap_free(&snap);
    image_destroy(&im);
}

/* ---- 12. fuzz ---------------------------------------------------------------------------------- */

static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Removes everything in directory dir (depth first). Returns the number of
 * errors. */
static int remove_all(struct fs *fs, uint64_t dir, int depth)
{
    struct names nm = { 0 };
    int errors = 0;
    int rd = depth > 20 ? -ELOOP : fs_readdir(fs, dir, 0, 0, names_fill, &nm);
    if (rd) {
        fprintf(stderr, "readdir %" PRIu64 " (removing): %d\n", dir, rd);
        return 1;
    }
    for (size_t i = 0; i < nm.n; i++) {
        int err;
        if (S_ISDIR(nm.mode[i])) {
            errors += remove_all(fs, nm.ino[i], depth + 1);
            err = fs_rmdir(fs, dir, nm.v[i]);
        } else {
            err = fs_unlink(fs, dir, nm.v[i]);
        }
        if (err) {
            fprintf(stderr, "remove %" PRIu64 "/%s: %d\n", dir, nm.v[i], err);
            errors++;
        }
    }
    free(nm.v);
    free(nm.ino);
    free(nm.mode);
    return errors;
}

/* Mounts, reads everything, then uses the repaired structures: a new file
 * in every directory of the root, new entries, and lost+found emptied
 * (rm -r); unmounts. 0 or the number of errors. */
static int mount_and_read_all(const char *path)
{
    struct fs *fs;
    struct fs_options o = { .path = path };
    int err = fs_mount(&fs, &o);
    if (err) {
        fprintf(stderr, "mount after a clean fsck: %d\n", err);
        return 1;
    }
    struct walk w = { .fs = fs };
    walk_dir(&w, MMAPFS_ROOT_INO, 0);
    int errors = w.errors;
    uint8_t buf[20000];
    memset(buf, 'n', sizeof(buf));
    for (size_t i = 0; i < w.n; i++) {
        struct fs_stat st;
        if (w.v[i].dir != MMAPFS_ROOT_INO || fs_getattr(fs, w.v[i].ino, &st) ||
            !S_ISDIR(st.mode))
            continue;
        err = fs_mknod(fs, w.v[i].ino, "fsck-new", S_IFREG | 0644, 0, &cred, &st);
        if (err) {
            fprintf(stderr, "mknod in %" PRIu64 ": %d\n", w.v[i].ino, err);
            errors++;
            continue;
        }
        fs_forget(fs, st.ino, 1);
        ssize_t n = fs_write(fs, st.ino, 0, buf, sizeof(buf));
        if (n != (ssize_t)sizeof(buf)) {
            fprintf(stderr, "write %" PRIu64 ": %zd\n", st.ino, n);
            errors++;
        }
    }
    free(w.v);
    struct fs_stat lnf;
    if (!fs_lookup(fs, MMAPFS_ROOT_INO, "lost+found", &lnf)) {
        fs_forget(fs, lnf.ino, 1);
        if (S_ISDIR(lnf.mode))          /* a damaged mode may have made it a file */
            errors += remove_all(fs, lnf.ino, 0);
    }
    err = fs_unmount(fs);
    if (err)
        fprintf(stderr, "unmount: %d\n", err);
    return errors + (err != 0);
}

/* Damage a byte flip rarely makes: a node wiped or copied over another, an
 * extent or a directory entry pointed elsewhere (sealed, so only the
 * cross-checks can tell). */
static void structural_damage(struct raw *r, unsigned kind, const uint64_t *nodes,
                              size_t nnodes, const uint64_t *used, size_t nused)
{
    uint64_t b = nodes[rnd() % nnodes];
    uint8_t *p = raw_blk(r, b);
    switch (kind) {
    case 0:                                 /* wiped */
        memset(p, 0, 4096);
        break;
    case 1: {                               /* another node's content, resealed */
        uint64_t o = nodes[rnd() % nnodes];
        memcpy(p, raw_blk(r, o), 4096);
        raw_node_seal(r, b);
        break;
    }
    default: {                              /* an item's value points elsewhere */
        if (hdr(p)->level != 0 || hdr(p)->nitems == 0)
            break;
        struct mmapfs_disk_btree_item *it = &items(p)[rnd() % hdr(p)->nitems];
        if (it->value_off + 8u > 4096)
            break;
        uint64_t v = hdr(p)->type == MMAPFS_TREE_EXTENTS ? used[rnd() % nused]
                                                         : 1 + rnd() % 420;
        memcpy(p + it->value_off, &v, 8);   /* extent start / entry inode */
        raw_node_seal(r, b);
        break;
    }
    }
}

static void test_fuzz_repair(void **state)
{
    (void)state;
    struct image im;
    image_build(&im);
    struct raw r;
    raw_open(&r, im.path);
    const uint64_t D = r.sb.data_start, N = r.sb.block_count;
    /* what to restore each round: the metadata region and the used data blocks */
    uint8_t *meta = malloc(D * 4096);
    uint64_t *used = malloc(N * sizeof(*used)), *nodes = malloc(N * sizeof(*nodes));
    assert_non_null(meta);
    assert_non_null(used);
    assert_non_null(nodes);
    memcpy(meta, raw_blk(&r, 0), D * 4096);
    size_t nused = 0, nnodes = 0;
    for (uint64_t b = D; b < N; b++) {
        const uint8_t *bm = raw_blk(&r, r.sb.block_bitmap_start + b / 32768);
        if (!((bm[(b % 32768) / 8] >> (b % 8)) & 1))
            continue;
        used[nused++] = b;
        const struct mmapfs_disk_btree_header *h = (const void *)raw_blk(&r, b);
        if (h->magic == MMAPFS_BTREE_MAGIC && h->checksum == bt_block_checksum(b, h))
            nodes[nnodes++] = b;
    }
    uint8_t *data = malloc(nused * 4096);
    assert_non_null(data);
    for (size_t i = 0; i < nused; i++)
        memcpy(data + i * 4096, raw_blk(&r, used[i]), 4096);
    uint64_t xattr = raw_inode(&r, im.big)->xattr_block;
    uint64_t inode_blocks = (im.n + 16 + 15) / 16;       /* the blocks holding used inodes */

    uint64_t seed = getenv("TEST_FSCK_SEED") ? strtoull(getenv("TEST_FSCK_SEED"), NULL, 0)
                                             : (uint64_t)time(NULL);
    rng_state = seed | 1;
    unsigned rounds = getenv("TEST_FSCK_ROUNDS") ? (unsigned)atoi(getenv("TEST_FSCK_ROUNDS"))
                                                 : 40;
    unsigned max_flips = getenv("TEST_FSCK_FLIPS") ? (unsigned)atoi(getenv("TEST_FSCK_FLIPS"))
                                                   : 6;
    if (max_flips < 1)
        max_flips = 1;
    printf("repair fuzz seed %" PRIu64 " (TEST_FSCK_SEED to replay), %u rounds, %zu nodes\n",
           seed, rounds, nnodes);
    unsigned clean = 0, repaired = 0, left = 0;
    for (unsigned round = 0; round < rounds; round++) {
        memcpy(raw_blk(&r, 0), meta, D * 4096);
        for (size_t i = 0; i < nused; i++)
            memcpy(raw_blk(&r, used[i]), data + i * 4096, 4096);
        unsigned flips = 1 + (unsigned)(rnd() % max_flips);
        for (unsigned i = 0; i < flips; i++) {
            unsigned what = (unsigned)(rnd() % 14);
            if (what >= 10) {
                structural_damage(&r, what - 10, nodes, nnodes, used, nused);
                continue;
            }
            uint64_t b;
            if (what < 5)
                b = nodes[rnd() % nnodes];
            else if (what < 8)
                b = r.sb.inode_table_start + rnd() % inode_blocks;
            else if (what < 9)
                b = rnd() % 2 ? r.sb.block_bitmap_start : r.sb.inode_bitmap_start;
            else
                b = xattr;
            uint8_t *p = raw_blk(&r, b);
            uint64_t off = rnd() % 3 ? rnd() % 512 : rnd() % 4096;
            p[off] ^= (uint8_t)(1 + rnd() % 255);
            if (rnd() % 2) {                 /* make it look legitimate */
                if (b >= D && b != xattr) {
                    raw_node_seal(&r, b);
                } else if (b >= r.sb.inode_table_start && b < D) {
                    uint64_t ino = (b - r.sb.inode_table_start) * 16 + off / 256 + 1;
                    raw_inode_seal(&r, ino);
                }
            }
        }
        assert_int_equal(mmio_sync(r.io), 0);
        int n1 = run_fsck(im.path, FS_CHECK_NO, NULL);
        assert_true(n1 == 0 || n1 == 4);
        if (n1 == 0) {
            clean++;
            continue;
        }
        char *rep;
        int y = run_fsck(im.path, FS_CHECK_YES, &rep);
        int n2 = run_fsck(im.path, FS_CHECK_NO, NULL);
        if (!(y == 1 || y == 4 || y == 5) || (y == 1) != (n2 == 0))
            fprintf(stderr, "seed %" PRIu64 " round %u: -y %d then -n %d\n%s", seed, round, y,
                    n2, rep);
        assert_true(y == 1 || y == 4 || y == 5);
        assert_int_equal(y == 1, n2 == 0);
        free(rep);
        if (n2 != 0) {
            left++;
            continue;
        }
        repaired++;
        if (mount_and_read_all(im.path))
            fail_msg("seed %" PRIu64 " round %u: repaired image does not read back", seed,
                     round);
        assert_int_equal(run_fsck(im.path, FS_CHECK_NO, NULL), FSCK_EXIT_OK);
    }
    printf("repair fuzz: %u clean, %u repaired (mounted, read back, written, lost+found emptied), %u left with errors\n",
           clean, repaired, left);
    raw_close(&r);
    free(meta);
    free(used);
    free(nodes);
    free(data);
    image_destroy(&im);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_populated_is_clean),
        cmocka_unit_test(test_entry_to_free_inode),
        cmocka_unit_test(test_inode_bit_lost),
        cmocka_unit_test(test_entry_type_key_name),
        cmocka_unit_test(test_unreachable_reconnected),
        cmocka_unit_test(test_lost_found_recreated),
        cmocka_unit_test(test_directory_cycle_cut),
        cmocka_unit_test(test_dup_cloned),
        cmocka_unit_test(test_dup_punched_when_full),
        cmocka_unit_test(test_dir_index_salvaged),
        cmocka_unit_test(test_dir_index_salvaged_bitmap_full),
        cmocka_unit_test(test_extent_tree_salvaged),
        cmocka_unit_test(test_extent_grown_over_others),
        cmocka_unit_test(test_inode_records),
        cmocka_unit_test(test_root_wiped),
        cmocka_unit_test(test_tree_root_wiped),
        cmocka_unit_test(test_record_bit_flips),
        cmocka_unit_test(test_empty_dir_type_flip),
        cmocka_unit_test(test_orphan_list_rebuilt),
        cmocka_unit_test(test_counts_bitmaps_links),
        cmocka_unit_test(test_superblock_mended),
        cmocka_unit_test(test_preen),
        cmocka_unit_test(test_crash_during_repair),
        cmocka_unit_test(test_fuzz_repair),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
