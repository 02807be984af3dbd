/*
 * test_fsck — the fsck core (fs_check, src/fsck/).
 *
 * A small image is formatted (fs_format) and populated by hand, byte by
 * byte per docs/FORMAT.md: two regular files (one with a hard link in a
 * subdirectory), a subdirectory, extents, a symlink, an xattr block. It
 * must check clean; then each test breaks one thing and expects fsck to
 * report it (exit 4), and for the repairable problems -y to fix it (exit
 * 1) and a second -n to find the image clean (exit 0). A byte-flip fuzzer
 * over the metadata checks that fsck never crashes (exit 0, 1, 4 or 8).
 * The last tests write images through the fs API: a populated image is
 * clean; link counts, duplicate blocks and bitmap bits are broken and
 * repaired; a crash with an orphan is replayed; B+tree nodes are fuzzed.
 * TEST_FSCK_SEED=<n> replays a fuzz run, TEST_FSCK_ROUNDS=<n> sets its
 * length, TEST_FSCK_VERBOSE=1 prints every report.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fs/btree.h"
#include "fsck/fsck.h"
#include "fs/format.h"
#include "fs/fs.h"
#include "mmapfs/mmio.h"
#include "util/crc32c.h"

#define MiB (1ull << 20)
#define IMG_SIZE (32 * MiB)

/* ---- image builder ----------------------------------------------------------------- */

struct img {
    char path[64];
    struct mmio *io;
    struct mmapfs_disk_superblock sb;
    uint64_t D;                 /* data_start */
};

/* Block b of the image, writable. */
static uint8_t *blk(struct img *m, uint64_t b)
{
    uint8_t *p = mmio_mut_ptr(m->io, b * MMAPFS_BLOCK_SIZE);
    assert_non_null(p);
    return p;
}

static void set_bit(uint8_t *map, uint64_t i, int on)
{
    if (on)
        map[i / 8] |= (uint8_t)(1u << (i % 8));
    else
        map[i / 8] &= (uint8_t)~(1u << (i % 8));
}

static void block_bit(struct img *m, uint64_t b, int on)
{
    set_bit(blk(m, m->sb.block_bitmap_start + b / 32768), b % 32768, on);
}

static void inode_bit(struct img *m, uint64_t ino, int on)
{
    set_bit(blk(m, m->sb.inode_bitmap_start + (ino - 1) / 32768), (ino - 1) % 32768, on);
}

static struct mmapfs_disk_inode *inode_ptr(struct img *m, uint64_t ino)
{
    return (struct mmapfs_disk_inode *)(blk(m, m->sb.inode_table_start + (ino - 1) / 16) +
                                        ((ino - 1) % 16) * 256);
}

static void inode_seal(struct img *m, uint64_t ino)
{
    struct mmapfs_disk_inode *di = inode_ptr(m, ino);
    uint64_t le = htole64(ino);
    di->checksum = mfs_crc32c(mfs_crc32c(0, &le, 8), di, 252);
}

static void node_seal(struct img *m, uint64_t b)
{
    uint8_t *p = blk(m, b);
    ((struct mmapfs_disk_btree_header *)p)->checksum = bt_block_checksum(b, p);
}

static void sb_load(struct img *m)
{
    memcpy(&m->sb, blk(m, 0), sizeof(m->sb));
    m->D = m->sb.data_start;
}

static void sb_store(struct img *m)
{
    m->sb.checksum = mfs_crc32c(0, &m->sb, 4092);
    memcpy(blk(m, 0), &m->sb, sizeof(m->sb));
}

struct item {
    uint64_t key;
    const void *val;
    size_t len;
};

static int item_cmp(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    return x->key < y->key ? -1 : x->key > y->key;
}

/* Writes a leaf node at block b (items sorted here). */
static void leaf_write(struct img *m, uint64_t b, uint64_t owner, uint16_t type,
                       struct item *items, size_t n)
{
    uint8_t *p = blk(m, b);
    memset(p, 0, 4096);
    qsort(items, n, sizeof(*items), item_cmp);
    struct mmapfs_disk_btree_header *h = (void *)p;
    h->magic = MMAPFS_BTREE_MAGIC;
    h->owner = owner;
    h->type = type;
    h->nitems = (uint16_t)n;
    unsigned vs = 4096;
    for (size_t i = 0; i < n; i++) {
        vs -= (unsigned)items[i].len;
        memcpy(p + vs, items[i].val, items[i].len);
        struct mmapfs_disk_btree_item it = { .key = items[i].key, .value_off = (uint16_t)vs,
                                             .value_len = (uint16_t)items[i].len };
        memcpy(p + 32 + i * 12, &it, 12);
    }
    h->value_start = (uint16_t)vs;
    node_seal(m, b);
}

struct dent {
    const char *name;
    uint64_t ino;
    uint8_t type;
};

/* Writes a directory leaf holding the given entries. */
static void dir_leaf(struct img *m, uint64_t b, uint64_t owner, const struct dent *d, size_t n)
{
    uint8_t vals[16][300];
    struct item items[16];
    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(d[i].name);
        struct mmapfs_disk_dirent de = { .ino = d[i].ino, .type = d[i].type,
                                         .name_len = (uint8_t)nl };
        memcpy(vals[i], &de, 10);
        memcpy(vals[i] + 10, d[i].name, nl);
        items[i] = (struct item){ mmapfs_name_hash(d[i].name, nl) << 8, vals[i], 10 + nl };
    }
    leaf_write(m, b, owner, MMAPFS_TREE_DIR, items, n);
}

struct ext {
    uint64_t logical, start;
    uint32_t len, flags;
};

static void extent_leaf(struct img *m, uint64_t b, uint64_t owner, const struct ext *e, size_t n)
{
    struct mmapfs_disk_extent v[16];
    struct item items[16];
    for (size_t i = 0; i < n; i++) {
        v[i] = (struct mmapfs_disk_extent){ .start = e[i].start, .len = e[i].len,
                                            .flags = e[i].flags };
        items[i] = (struct item){ e[i].logical, &v[i], sizeof(v[i]) };
    }
    leaf_write(m, b, owner, MMAPFS_TREE_EXTENTS, items, n);
}

static void make_inode(struct img *m, uint64_t ino, uint32_t mode, uint32_t nlink,
                       uint64_t size, uint64_t blocks, uint64_t tree, uint64_t parent)
{
    struct mmapfs_disk_inode *di = inode_ptr(m, ino);
    memset(di, 0, sizeof(*di));
    di->mode = mode;
    di->nlink = nlink;
    di->size = size;
    di->blocks = blocks;
    di->tree_root = tree;
    di->parent = parent;
    di->generation = ino;
    di->mtime_sec = di->ctime_sec = (uint64_t)time(NULL);
    inode_seal(m, ino);
    inode_bit(m, ino, 1);
}

static void use_blocks(struct img *m, uint64_t start, uint64_t len)
{
    for (uint64_t b = start; b < start + len; b++)
        block_bit(m, b, 1);
}

/*
 * The populated image (D = data_start):
 *   /              inode 1, leaf D      lost+found, a, b, sub, link, x
 *   /lost+found    inode 2
 *   /a             inode 3, leaf D+1, extents 0->D+10 (4), 10->D+20 (2); also /sub/c
 *   /b             inode 4, leaf D+2, extent 0->D+30 (3, unwritten)
 *   /sub           inode 5, leaf D+3      c -> 3
 *   /link          inode 6, leaf D+4, extent 0->D+40 (1): symlink "a"
 *   /x             inode 7, FIFO, xattr block D+5
 */
static void build(struct img *m)
{
    strcpy(m->path, "/tmp/test_fsck.XXXXXX");
    int fd = mkstemp(m->path);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)IMG_SIZE), 0);
    close(fd);
    assert_int_equal(mmio_open(&m->io, m->path, 0, 0, NULL), 0);
    assert_int_equal(fs_format(m->io, NULL), 0);
    sb_load(m);
    uint64_t D = m->D;

    struct dent root[] = {
        { "lost+found", 2, DT_DIR }, { "a", 3, DT_REG }, { "b", 4, DT_REG },
        { "sub", 5, DT_DIR }, { "link", 6, DT_LNK }, { "x", 7, DT_FIFO },
    };
    dir_leaf(m, D, 1, root, 6);
    make_inode(m, 1, S_IFDIR | 0755, 4, 6, 1, D, 1);

    struct ext ea[] = { { 0, D + 10, 4, 0 }, { 10, D + 20, 2, 0 } };
    extent_leaf(m, D + 1, 3, ea, 2);
    make_inode(m, 3, S_IFREG | 0644, 2, 12 * 4096, 7, D + 1, 0);
    use_blocks(m, D + 1, 1);
    use_blocks(m, D + 10, 4);
    use_blocks(m, D + 20, 2);

    struct ext eb[] = { { 0, D + 30, 3, MMAPFS_EXTENT_UNWRITTEN } };
    extent_leaf(m, D + 2, 4, eb, 1);
    make_inode(m, 4, S_IFREG | 0600, 1, 100, 4, D + 2, 0);
    use_blocks(m, D + 2, 1);
    use_blocks(m, D + 30, 3);

    struct dent sub[] = { { "c", 3, DT_REG } };
    dir_leaf(m, D + 3, 5, sub, 1);
    make_inode(m, 5, S_IFDIR | 0755, 2, 1, 1, D + 3, 1);
    use_blocks(m, D + 3, 1);

    struct ext el[] = { { 0, D + 40, 1, 0 } };
    extent_leaf(m, D + 4, 6, el, 1);
    memcpy(blk(m, D + 40), "a", 1);
    make_inode(m, 6, S_IFLNK | 0777, 1, 1, 2, D + 4, 0);
    use_blocks(m, D + 4, 1);
    use_blocks(m, D + 40, 1);

    /* xattr block: user.k = "v", user.longer = "value" */
    uint8_t *xb = blk(m, D + 5);
    memset(xb, 0, 4096);
    struct mmapfs_disk_xattr_header xh = { .magic = MMAPFS_XATTR_MAGIC, .owner = 7, .count = 2 };
    size_t off = 32;
    const char *names[] = { "user.k", "user.longer" }, *values[] = { "v", "value" };
    for (int i = 0; i < 2; i++) {
        struct mmapfs_disk_xattr_entry e = { .name_len = (uint8_t)strlen(names[i]),
                                             .value_len = (uint16_t)strlen(values[i]) };
        memcpy(xb + off, &e, 4);
        memcpy(xb + off + 4, names[i], e.name_len);
        memcpy(xb + off + 4 + e.name_len, values[i], e.value_len);
        off += (4u + e.name_len + e.value_len + 3) & ~3u;
    }
    xh.used = (uint16_t)(off - 32);
    memcpy(xb, &xh, sizeof(xh));
    ((struct mmapfs_disk_xattr_header *)xb)->checksum = bt_block_checksum(D + 5, xb);
    make_inode(m, 7, S_IFIFO | 0644, 1, 0, 1, 0, 0);
    inode_ptr(m, 7)->xattr_block = D + 5;
    inode_seal(m, 7);
    use_blocks(m, D + 5, 1);

    /* superblock: exact free counts */
    m->sb.free_blocks -= 1 + 4 + 2 + 1 + 3 + 1 + 1 + 1 + 1;
    m->sb.free_inodes -= 5;
    sb_store(m);
    assert_int_equal(mmio_sync(m->io), 0);
}

static void destroy(struct img *m)
{
    mmio_close(m->io);
    unlink(m->path);
}

/* Runs fs_check; returns the exit bits and (if out) the report. */
static int run_check(struct img *m, enum fs_check_mode mode, char **out)
{
    assert_int_equal(mmio_sync(m->io), 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    struct fs_check_options o = { .mode = mode, .verbose = 1 };
    int r = fs_check(m->path, &o, f);
    fclose(f);
    if (getenv("TEST_FSCK_VERBOSE"))
        fprintf(stderr, "--- fsck %s -> %d\n%s", mode == FS_CHECK_NO ? "-n" : "-y", r, buf);
    if (out)
        *out = buf;
    else
        free(buf);
    return r;
}

/* Expects -n to report 'want' with exit 4. */
static void expect_error(struct img *m, const char *want)
{
    char *rep;
    int r = run_check(m, FS_CHECK_NO, &rep);
    if (r != FSCK_EXIT_UNCORRECTED || !strstr(rep, want))
        fprintf(stderr, "expected exit 4 and \"%s\", got %d:\n%s", want, r, rep);
    assert_int_equal(r, FSCK_EXIT_UNCORRECTED);
    assert_non_null(strstr(rep, want));
    free(rep);
}

/* -n finds 'want' (4), -y repairs it (1), -n is then clean (0). */
static void expect_repair(struct img *m, const char *want)
{
    expect_error(m, want);
    char *rep;
    int r = run_check(m, FS_CHECK_YES, &rep);
    if (r != FSCK_EXIT_CORRECTED)
        fprintf(stderr, "expected -y to correct everything, got %d:\n%s", r, rep);
    assert_int_equal(r, FSCK_EXIT_CORRECTED);
    free(rep);
    r = run_check(m, FS_CHECK_NO, &rep);
    if (r != FSCK_EXIT_OK)
        fprintf(stderr, "expected clean after -y, got %d:\n%s", r, rep);
    assert_int_equal(r, FSCK_EXIT_OK);
    free(rep);
}

/* ---- clean images ------------------------------------------------------------------ */

static void test_fresh_is_clean(void **state)
{
    (void)state;
    struct img m;
    strcpy(m.path, "/tmp/test_fsck.XXXXXX");
    int fd = mkstemp(m.path);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)IMG_SIZE), 0);
    close(fd);
    assert_int_equal(mmio_open(&m.io, m.path, 0, 0, NULL), 0);
    assert_int_equal(fs_format(m.io, NULL), 0);
    char *rep;
    assert_int_equal(run_check(&m, FS_CHECK_NO, &rep), FSCK_EXIT_OK);
    assert_non_null(strstr(rep, "clean"));
    free(rep);
    assert_int_equal(run_check(&m, FS_CHECK_YES, NULL), FSCK_EXIT_OK);
    /* preen skips a clean filesystem */
    struct fs_check_options o = { .mode = FS_CHECK_PREEN };
    assert_int_equal(fs_check(m.path, &o, NULL), FSCK_EXIT_OK);
    destroy(&m);
}

/* The checker's memory follows what an image uses, not its size: an
 * empty 1 TiB sparse image (268 million blocks, 67 million inodes) is
 * checked with far less than the 1.2 GB that one bit per block and one
 * record per inode took. The bound is loose (a quarter of that); the
 * peak RSS before the check may hide part of the growth, never all of it. */
static void test_huge_sparse_is_cheap(void **state)
{
    (void)state;
    struct img m;
    struct rusage r0, r1;
    strcpy(m.path, "/var/tmp/test_fsck.XXXXXX");
    int fd = mkstemp(m.path);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)1 << 40), 0);
    close(fd);
    assert_int_equal(mmio_open(&m.io, m.path, 0, 0, NULL), 0);
    assert_int_equal(fs_format(m.io, NULL), 0);
    assert_int_equal(getrusage(RUSAGE_SELF, &r0), 0);
    char *rep;
    assert_int_equal(run_check(&m, FS_CHECK_NO, &rep), FSCK_EXIT_OK);
    assert_non_null(strstr(rep, "/67108864 inodes"));
    free(rep);
    assert_int_equal(run_check(&m, FS_CHECK_YES, NULL), FSCK_EXIT_OK);
    assert_int_equal(getrusage(RUSAGE_SELF, &r1), 0);
    fprintf(stderr, "peak RSS %ld KiB before, %ld KiB after\n", r0.ru_maxrss, r1.ru_maxrss);
    assert_true(r1.ru_maxrss - r0.ru_maxrss < 300 * 1024);
    destroy(&m);
}

static void test_populated_is_clean(void **state)
{
    (void)state;
    struct img m;
    build(&m);
    char *rep;
    int r = run_check(&m, FS_CHECK_NO, &rep);
    if (r)
        fprintf(stderr, "%s", rep);
    assert_int_equal(r, FSCK_EXIT_OK);
    assert_non_null(strstr(rep, "3 directories"));
    free(rep);
    destroy(&m);
}

static void test_operational_errors(void **state)
{
    (void)state;
    struct fs_check_options o = { .mode = FS_CHECK_NO };
    assert_int_equal(fs_check("/nonexistent/image", &o, NULL), FSCK_EXIT_OPERATIONAL);
    struct img m;
    build(&m);
    /* not mmapfs: no magic in block 0 nor in the backup superblock (with
     * the backup's magic, fsck -n finds it usable: test_backup_*) */
    memset(blk(&m, 0), 0, 8);
    memset(blk(&m, 1), 0, 8);
    assert_int_equal(run_check(&m, FS_CHECK_NO, NULL), FSCK_EXIT_OPERATIONAL);
    memcpy(blk(&m, 0), MMAPFS_MAGIC, 8);
    memcpy(blk(&m, 1), MMAPFS_MAGIC, 8);
    assert_int_equal(run_check(&m, FS_CHECK_NO, NULL), FSCK_EXIT_OK);
    /* unknown incompatible feature */
    uint32_t incompat = m.sb.feature_incompat;
    m.sb.feature_incompat = 0x80;
    sb_store(&m);
    assert_int_equal(run_check(&m, FS_CHECK_NO, NULL), FSCK_EXIT_OPERATIONAL);
    m.sb.feature_incompat = incompat;
    sb_store(&m);
    /* in use (the mount's flock): -y refuses; -n checks anyway with a
     * warning (as e2fsck -n on a mounted filesystem) */
    int fd = open(m.path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0);
    char *rep;
    assert_int_equal(run_check(&m, FS_CHECK_YES, &rep), FSCK_EXIT_OPERATIONAL);
    assert_non_null(strstr(rep, "in use"));
    free(rep);
    assert_int_equal(run_check(&m, FS_CHECK_NO, &rep), FSCK_EXIT_OK);
    assert_non_null(strstr(rep, "warning: in use"));
    free(rep);
    close(fd);
    /* another reader (a second fsck -n) does not make -n warn */
    fd = open(m.path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_SH), 0);
    assert_int_equal(run_check(&m, FS_CHECK_NO, &rep), FSCK_EXIT_OK);
    assert_null(strstr(rep, "warning: in use"));
    free(rep);
    close(fd);
    /* corrupt superblock checksum */
    blk(&m, 0)[300] ^= 1;
    assert_int_equal(run_check(&m, FS_CHECK_NO, NULL), FSCK_EXIT_UNCORRECTED);
    destroy(&m);
}

/* ---- detected corruption -------------------------------------------------------------- */

static void test_bad_inode_checksum(void **state)
{
    (void)state;
    struct img m;
    build(&m);
    inode_ptr(&m, 4)->uid = 1000;
    /* the rest of the record is sane: -y recomputes the checksum */
    expect_repair(&m, "inode 4: bad checksum");
    assert_int_equal(inode_ptr(&m, 4)->uid, 1000);
    /* a damaged field (the in-inode xattr area) is reset with the checksum */
    inode_ptr(&m, 4)->xattr_area[5] = 0x5a;
    expect_repair(&m, "inode 4: bad checksum");
    assert_int_equal(inode_ptr(&m, 4)->xattr_area[5], 0);
    assert_int_equal(inode_ptr(&m, 4)->uid, 1000);
    /* no valid type, but the inode's own extent tree says it is a file:
     * the mode is the one damaged field (before 2026-12-06 the record was
     * taken for garbage and the file cleared) */
    inode_ptr(&m, 4)->mode = 0170600;
    expect_repair(&m, "inode 4: bad checksum");
    assert_int_equal(inode_ptr(&m, 4)->mode, S_IFREG | 0600);
    assert_int_equal(inode_ptr(&m, 4)->tree_root, m.D + 2);
    /* garbage throughout: no valid type (050000) and nothing of the
     * inode's own to give one: cleared, its entry removed */
    memset(inode_ptr(&m, 4), 0x5a, offsetof(struct mmapfs_disk_inode, checksum));
    expect_repair(&m, "inode 4: bad checksum");
    assert_int_equal(blk(&m, m.sb.inode_bitmap_start)[0] & (1u << 3), 0);
    destroy(&m);
}

static void test_bad_mode(void **state)
{
    (void)state;
    struct img m;
    build(&m);
    inode_ptr(&m, 7)->mode = 0170644;
    inode_seal(&m, 7);
    expect_error(&m, "inode 7: invalid mode");
    destroy(&m);
}

static void test_bitmap_bit_cleared(void **state)
{
    (void)state;
    struct img m;
    build(&m);
    block_bit(&m, m.D + 11, 0);
    m.sb.free_blocks++;
    sb_store(&m);
    char want[96];
    snprintf(want, sizeof(want), "block %" PRIu64 " in use but marked free", m.D + 11);
    expect_repair(&m, want);
    destroy(&m);
}

static void test_bitmap_bit_set(void **state)
{
    (void)state;
    struct img m;
    build(&m);
    block_bit(&m, m.D + 100, 1);
    block_bit(&m, m.D + 101, 1);
    char want[96];
    snprintf(want, sizeof(want), "blocks %" PRIu64 "-%" PRIu64 " marked in use in the bitmap "
             "but not owned", m.D + 100, m.D + 101);
    expect_error(&m, want);
    expect_repair(&m, "free block count");
    destroy(&m);
}

static void test_wrong_link_count(void **state)
{
    (void)state;
    struct img m;
    build(&m);
    inode_ptr(&m, 3)->nlink = 1;
    inode_seal(&m, 3);
    expect_repair(&m, "inode 3: link count 1, but 2 entries name it");
    inode_ptr(&m, 5)->nlink = 3;
    inode_seal(&m, 5);
    expect_repair(&m, "directory 5: link count 3, expected 2");
    inode_ptr(&m, 1)->nlink = 3;
    inode_seal(&m, 1);
    expect_repair(&m, "directory 1: link count 3, expected 4");
    destroy(&m);
}

static void test_dirent_to_free_inode(void **state)
{
    (void)state;
    struct img m;
    build(&m);
    struct dent sub[] = { { "c", 9, DT_REG } };
    dir_leaf(&m, m.D + 3, 5, sub, 1);
    expect_error(&m, "directory 5: entry 'c': inode 9 is free");
    /* and inode 3 lost a link */
    char *rep;
    run_check(&m, FS_CHECK_NO, &rep);
    assert_non_null(strstr(rep, "inode 3: link count 2, but 1 entries name it"));
    free(rep);
    destroy(&m);
}

static void test_dirent_problems(void **state)
{
    (void)state;
    struct img m;
    build(&m);
    /* wrong type */
    struct dent sub[] = { { "c", 3, DT_DIR } };
    dir_leaf(&m, m.D + 3, 5, sub, 1);
    expect_error(&m, "entry 'c': type 4, but inode 3 has type 8");
    /* key that does not match the name */
    struct dent ok[] = { { "c", 3, DT_REG } };
    dir_leaf(&m, m.D + 3, 5, ok, 1);
    uint8_t *p = blk(&m, m.D + 3);
    p[32] ^= 0x01;          /* low byte of the key: the suffix k, still matches */
    node_seal(&m, m.D + 3);
    assert_int_equal(run_check(&m, FS_CHECK_NO, NULL), FSCK_EXIT_OK);
    p[33] ^= 0x01;          /* a hash bit */
    node_seal(&m, m.D + 3);
    expect_error(&m, "does not match the name's hash");
    /* a name with a slash */
    struct dent bad[] = { { "c/d", 3, DT_REG } };
    dir_leaf(&m, m.D + 3, 5, bad, 1);
    expect_error(&m, "entry 'c/d': invalid name");
    /* directory size */
    dir_leaf(&m, m.D + 3, 5, ok, 1);
    inode_ptr(&m, 5)->size = 7;
    inode_seal(&m, 5);
    expect_repair(&m, "directory 5: size 7, but it has 1 entries");
    destroy(&m);
}

static void test_extent_out_of_range(void **state)
{
    (void)state;
    struct img m;
    build(&m);
    struct ext eb[] = { { 0, m.sb.block_count - 1, 3, MMAPFS_EXTENT_UNWRITTEN } };
    extent_leaf(&m, m.D + 2, 4, eb, 1);
    expect_error(&m, "outside the data area");
    struct ext meta[] = { { 0, m.D - 5, 3, 0 } };     /* in the inode table */
    extent_leaf(&m, m.D + 2, 4, meta, 1);
    expect_error(&m, "outside the data area");
    destroy(&m);
}

static void test_extent_problems(void **state)
{
    (void)state;
    struct img m;
    build(&m);
    /* logical overlap within the file */
    struct ext ea[] = { { 0, m.D + 10, 4, 0 }, { 2, m.D + 20, 2, 0 } };
    extent_leaf(&m, m.D + 1, 3, ea, 2);
    expect_error(&m, "overlaps the previous extent");
    /* unwritten in a symlink */
    struct ext ok[] = { { 0, m.D + 10, 4, 0 }, { 10, m.D + 20, 2, 0 } };
    extent_leaf(&m, m.D + 1, 3, ok, 2);
    struct ext el[] = { { 0, m.D + 40, 1, MMAPFS_EXTENT_UNWRITTEN } };
    extent_leaf(&m, m.D + 4, 6, el, 1);
    expect_error(&m, "unwritten extent in a non-regular file");
    struct ext el2[] = { { 0, m.D + 40, 1, 0 } };
    extent_leaf(&m, m.D + 4, 6, el2, 1);
    /* block count */
    inode_ptr(&m, 4)->blocks = 9;
    inode_seal(&m, 4);
    expect_repair(&m, "inode 4: block count 9, but it owns 4");
    destroy(&m);
}

static void test_block_claimed_twice(void **state)
{
    (void)state;
    struct img m;
    build(&m);
    /* b's extent now starts inside a's first extent; its old blocks leak */
    struct ext eb[] = { { 0, m.D + 12, 3, 0 } };
    extent_leaf(&m, m.D + 2, 4, eb, 1);
    char want[128];
    snprintf(want, sizeof(want), "blocks %" PRIu64 "-%" PRIu64 ": claimed twice: file data "
             "of inode 3 and file data of inode 4", m.D + 12, m.D + 13);
    expect_error(&m, want);
    /* a tree node shared with file data */
    extent_leaf(&m, m.D + 2, 4, (struct ext[]){ { 0, m.D + 30, 3, 0 } }, 1);
    assert_int_equal(run_check(&m, FS_CHECK_NO, NULL), FSCK_EXIT_OK);
    inode_ptr(&m, 4)->tree_root = m.D + 1;      /* a's leaf: wrong owner */
    inode_seal(&m, 4);
    expect_error(&m, "inode 4: extent tree corrupt");
    destroy(&m);
}

static void test_tree_corrupt(void **state)
{
    (void)state;
    struct img m;
    build(&m);
    blk(&m, m.D + 3)[100] ^= 0xff;      /* sub's leaf: checksum fails */
    expect_error(&m, "inode 5: directory tree corrupt");
    /* -y salvages the entry (consistent in every respect) into a new index */
    char *rep;
    int r = run_check(&m, FS_CHECK_YES, &rep);
    if (r != FSCK_EXIT_CORRECTED)
        fprintf(stderr, "%s", rep);
    assert_int_equal(r, FSCK_EXIT_CORRECTED);
    assert_non_null(strstr(rep, "directory 5: index rebuilt"));
    free(rep);
    assert_int_equal(run_check(&m, FS_CHECK_NO, NULL), FSCK_EXIT_OK);
    assert_int_not_equal(inode_ptr(&m, 5)->tree_root, m.D + 3);
    assert_int_equal(inode_ptr(&m, 3)->nlink, 2);
    destroy(&m);
}

static void test_xattr_problems(void **state)
{
    (void)state;
    struct img m;
    build(&m);
    uint8_t *xb = blk(&m, m.D + 5);
    xb[40] ^= 1;
    expect_error(&m, "xattr block");
    xb[40] ^= 1;
    assert_int_equal(run_check(&m, FS_CHECK_NO, NULL), FSCK_EXIT_OK);
    ((struct mmapfs_disk_xattr_header *)xb)->used = 4000;
    ((struct mmapfs_disk_xattr_header *)xb)->checksum = bt_block_checksum(m.D + 5, xb);
    expect_error(&m, "xattr block");
    destroy(&m);
}

static void test_unreachable(void **state)
{
    (void)state;
    struct img m;
    build(&m);
    /* inode 8: a valid file that no directory names */
    make_inode(&m, 8, S_IFREG | 0644, 1, 0, 0, 0, 0);
    m.sb.free_inodes--;
    sb_store(&m);
    expect_error(&m, "inode 8: in use (1 links) but not named by any entry");
    /* on the orphan list with nlink 0 it is fine (info only) */
    inode_ptr(&m, 8)->nlink = 0;
    inode_seal(&m, 8);
    m.sb.orphan_head = 8;
    sb_store(&m);
    char *rep;
    assert_int_equal(run_check(&m, FS_CHECK_NO, &rep), FSCK_EXIT_OK);
    assert_non_null(strstr(rep, "info: inode 8: unlinked while open"));
    free(rep);
    /* an orphan list with a cycle */
    make_inode(&m, 9, S_IFREG | 0644, 0, 0, 0, 0, 0);
    inode_ptr(&m, 9)->orphan_next = 8;
    inode_seal(&m, 9);
    inode_ptr(&m, 8)->orphan_next = 9;
    inode_seal(&m, 8);
    m.sb.free_inodes--;
    sb_store(&m);
    expect_error(&m, "orphan list: cycle at inode 8");
    destroy(&m);
}

static void test_directory_structure(void **state)
{
    (void)state;
    struct img m;
    build(&m);
    /* a second entry for directory 5 (a directory hard link) */
    struct dent sub[] = { { "c", 3, DT_REG }, { "again", 5, DT_DIR } };
    dir_leaf(&m, m.D + 3, 5, sub, 2);
    inode_ptr(&m, 5)->size = 2;
    inode_seal(&m, 5);
    expect_error(&m, "a second entry for directory 5");
    /* wrong parent field */
    struct dent ok[] = { { "c", 3, DT_REG } };
    dir_leaf(&m, m.D + 3, 5, ok, 1);
    inode_ptr(&m, 5)->size = 1;
    inode_ptr(&m, 5)->parent = 2;
    inode_seal(&m, 5);
    expect_repair(&m, "directory 5: parent 2, but its entry is in directory 1");
    destroy(&m);
}

static void test_error_state_and_counts(void **state)
{
    (void)state;
    struct img m;
    build(&m);
    m.sb.state |= MMAPFS_STATE_ERROR;
    sb_store(&m);
    expect_repair(&m, "marked as having errors");
    sb_load(&m);
    assert_int_equal(m.sb.state, MMAPFS_STATE_CLEAN);
    m.sb.free_inodes += 3;
    sb_store(&m);
    expect_repair(&m, "free inode count");
    /* counts are hints when not clean: no error */
    sb_load(&m);
    m.sb.state = MMAPFS_STATE_MOUNTED;
    m.sb.free_blocks = 5;
    sb_store(&m);
    assert_int_equal(run_check(&m, FS_CHECK_NO, NULL), FSCK_EXIT_OK);
    destroy(&m);
}

static void test_journal_headers(void **state)
{
    (void)state;
    struct img m;
    build(&m);
    blk(&m, m.sb.journal_start)[50] ^= 1;        /* slot A: checksum fails; B is zero */
    expect_repair(&m, "journal: both header slots are invalid");
    destroy(&m);
}

/* ---- fuzz ---------------------------------------------------------------------------- */

static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_fuzz_metadata(void **state)
{
    (void)state;
    struct img m;
    build(&m);
    const uint64_t nmeta = m.D + 41;          /* every block the builder wrote */
    uint8_t *saved = malloc(nmeta * 4096);
    assert_non_null(saved);
    memcpy(saved, blk(&m, 0), nmeta * 4096);

    uint64_t seed = (uint64_t)time(NULL);
    if (getenv("TEST_FSCK_SEED"))
        seed = strtoull(getenv("TEST_FSCK_SEED"), NULL, 0);
    rng_state = seed | 1;
    unsigned rounds = getenv("TEST_FSCK_ROUNDS") ? (unsigned)atoi(getenv("TEST_FSCK_ROUNDS")) : 200;
    printf("fuzz seed %" PRIu64 " (TEST_FSCK_SEED to replay), %u rounds\n", seed, rounds);
    /* the interesting blocks: superblock, journal headers, bitmaps, the
     * first inode table block, the nodes and the xattr block */
    unsigned yes_counts[8] = { 0 };
    uint64_t targets[] = { 0, m.sb.journal_start, m.sb.block_bitmap_start,
                           m.sb.inode_bitmap_start, m.sb.inode_table_start,
                           m.D, m.D + 1, m.D + 2, m.D + 3, m.D + 4, m.D + 5 };
    unsigned counts[64] = { 0 };
    for (unsigned round = 0; round < rounds; round++) {
        memcpy(blk(&m, 0), saved, nmeta * 4096);
        unsigned flips = 1 + (unsigned)(rnd() % 8);
        for (unsigned i = 0; i < flips; i++) {
            uint64_t b = targets[rnd() % (sizeof(targets) / sizeof(targets[0]))];
            uint64_t off = rnd() % 4096;
            if (rnd() % 4 == 0)     /* sometimes hit the header/first records */
                off %= 256;
            blk(&m, b)[off] ^= (uint8_t)(1 + rnd() % 255);
            /* sometimes make the damage look legitimate */
            if (b >= m.D && rnd() % 2)
                node_seal(&m, b);
            if (b == m.sb.inode_table_start && rnd() % 2)
                for (uint64_t ino = 1; ino <= 16; ino++)
                    if (ino <= 9)
                        inode_seal(&m, ino);
            if (b == 0 && rnd() % 2) {
                struct mmapfs_disk_superblock *sb = (void *)blk(&m, 0);
                sb->checksum = mfs_crc32c(0, sb, 4092);
            }
        }
        int r = run_check(&m, FS_CHECK_NO, NULL);
        assert_true(r == 0 || r == 4 || r == 8);
        counts[r]++;
        if (r == 4) {
            char *rep;
            int y = run_check(&m, FS_CHECK_YES, &rep);
            assert_true(y == 1 || y == 4 || y == 5 || y == 8);
            r = run_check(&m, FS_CHECK_NO, NULL);
            assert_true(r == 0 || r == 4 || r == 8);
            /* -y said "all corrected" exactly when a second check is clean */
            if ((y == 1) != (r == 0))
                fprintf(stderr, "seed %" PRIu64 " round %u: -y %d, then -n %d:\n%s", seed,
                        round, y, r, rep);
            free(rep);
            if (y != 8)
                assert_int_equal(y == 1, r == 0);
            yes_counts[y & 7]++;
        }
    }
    printf("fuzz results: %u clean, %u errors, %u operational; -y: %u all corrected, %u "
           "left errors\n", counts[0], counts[4], counts[8], yes_counts[1],
           yes_counts[4] + yes_counts[5]);
    assert_true(counts[4] > 0);
    free(saved);
    destroy(&m);
}


/* ---- images written through the fs API ------------------------------------------------- */

static const struct fs_cred cred = { 0, 0 };

/* Creates an empty sparse image file of 'size' bytes and formats it. */
static void api_format(char *path, uint64_t size)
{
    strcpy(path, "/tmp/test_fsck_api.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    close(fd);
    struct mmio *io;
    assert_int_equal(mmio_open(&io, path, 0, 0, NULL), 0);
    /* the tests edit extent tree leaves by hand: every file with data has
     * a tree only without inode-resident data (old-format images stay
     * tested; test_fs_inline checks the inline structures) */
    struct fs_format_options opt = { .no_inode_data = 1 };
    assert_int_equal(fs_format(io, &opt), 0);
    mmio_close(io);
}

static uint64_t api_mknod(struct fs *fs, uint64_t dir, const char *name, uint32_t mode)
{
    struct fs_stat st;
    assert_int_equal(fs_mknod(fs, dir, name, mode, 0, &cred, &st), 0);
    fs_forget(fs, st.ino, 1);
    return st.ino;
}

static uint64_t api_mkdir(struct fs *fs, uint64_t dir, const char *name)
{
    struct fs_stat st;
    assert_int_equal(fs_mkdir(fs, dir, name, 0755, &cred, &st), 0);
    fs_forget(fs, st.ino, 1);
    return st.ino;
}

/* Inode numbers of interesting files of the API image. */
struct api_files {
    uint64_t d1, big, f1, f2;
};

/*
 * A populated image: a directory of 1500 files (a directory tree of
 * several levels), a file of 600 separate extents (an extent tree of two
 * levels), hard links, a symlink, a FIFO, xattrs, an fallocated file,
 * unlinks, an rmdir and a rename.
 */
static void api_populate(const char *path, struct api_files *af)
{
    struct fs *fs;
    struct fs_options o = { .path = path };
    assert_int_equal(fs_mount(&fs, &o), 0);
    uint64_t d1 = api_mkdir(fs, MMAPFS_ROOT_INO, "d1");
    uint64_t d2 = api_mkdir(fs, d1, "d2");
    char name[64], data[8192];
    memset(data, 'x', sizeof(data));
    for (int i = 0; i < 1500; i++) {
        snprintf(name, sizeof(name), "file-with-a-longish-name-%04d", i);
        uint64_t ino = api_mknod(fs, d1, name, S_IFREG | 0644);
        if (i % 100 == 0)
            assert_int_equal(fs_write(fs, ino, 0, data, (size_t)(i / 100 + 1) * 500), 
                             (ssize_t)((i / 100 + 1) * 500));
    }
    uint64_t big = api_mknod(fs, MMAPFS_ROOT_INO, "big", S_IFREG | 0644);
    for (int i = 0; i < 600; i++)
        assert_int_equal(fs_write(fs, big, (uint64_t)i * 2 * 4096, data, 4096), 4096);
    assert_int_equal(fs_setxattr(fs, big, "user.a", "1", 1, 0), 0);
    assert_int_equal(fs_setxattr(fs, big, "user.bb", "22", 2, 0), 0);
    uint64_t f1 = api_mknod(fs, MMAPFS_ROOT_INO, "f1", S_IFREG | 0644);
    uint64_t f2 = api_mknod(fs, d2, "f2", S_IFREG | 0644);
    assert_int_equal(fs_write(fs, f1, 0, data, 8192), 8192);
    assert_int_equal(fs_write(fs, f2, 0, data, 8192), 8192);
    struct fs_stat st;
    assert_int_equal(fs_link(fs, f1, d2, "f1-link", &st), 0);
    fs_forget(fs, st.ino, 1);
    assert_int_equal(fs_symlink(fs, MMAPFS_ROOT_INO, "sl", "d1/d2/f2", &cred, &st), 0);
    fs_forget(fs, st.ino, 1);
    api_mknod(fs, MMAPFS_ROOT_INO, "fifo", S_IFIFO | 0600);
    uint64_t fa = api_mknod(fs, MMAPFS_ROOT_INO, "falloc", S_IFREG | 0644);
    assert_int_equal(fs_fallocate(fs, fa, 0, 0, 1 << 20), 0);
    for (int i = 0; i < 1500; i += 7) {
        snprintf(name, sizeof(name), "file-with-a-longish-name-%04d", i);
        assert_int_equal(fs_unlink(fs, d1, name), 0);
    }
    uint64_t d3 = api_mkdir(fs, MMAPFS_ROOT_INO, "d3");
    (void)d3;
    assert_int_equal(fs_rmdir(fs, MMAPFS_ROOT_INO, "d3"), 0);
    assert_int_equal(fs_rename(fs, d1, "file-with-a-longish-name-0001", d2, "moved", 0), 0);
    assert_int_equal(fs_unmount(fs), 0);
    if (af)
        *af = (struct api_files){ .d1 = d1, .big = big, .f1 = f1, .f2 = f2 };
}

/* fs_check of a path; returns the exit bits, the report in *out if asked. */
static int api_check(const char *path, enum fs_check_mode mode, char **out)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    struct fs_check_options o = { .mode = mode, .verbose = 1 };
    int r = fs_check(path, &o, f);
    fclose(f);
    if (getenv("TEST_FSCK_VERBOSE"))
        fprintf(stderr, "--- fsck %d -> %d\n%s", mode, r, buf);
    if (out)
        *out = buf;
    else
        free(buf);
    return r;
}

/* Reads inode ino's record from an unmounted image. */
static void raw_inode(struct mmio *io, uint64_t ino, struct mmapfs_disk_inode *di)
{
    const struct mmapfs_disk_superblock *sb = mmio_ptr(io, 0);
    uint64_t off = sb->inode_table_start * 4096 + (ino - 1) * 256;
    assert_int_equal(mmio_read_at(io, off, di, sizeof(*di)), 0);
}

static void raw_inode_write(struct mmio *io, uint64_t ino, struct mmapfs_disk_inode *di)
{
    const struct mmapfs_disk_superblock *sb = mmio_ptr(io, 0);
    uint64_t le = htole64(ino);
    di->checksum = mfs_crc32c(mfs_crc32c(0, &le, 8), di, 252);
    uint64_t off = sb->inode_table_start * 4096 + (ino - 1) * 256;
    assert_int_equal(mmio_write_at(io, off, di, sizeof(*di)), 0);
    assert_int_equal(mmio_sync(io), 0);
}

static void test_api_image(void **state)
{
    (void)state;
    char path[64];
    api_format(path, 64 * MiB);
    struct api_files af;
    api_populate(path, &af);
    char *rep;
    int r = api_check(path, FS_CHECK_NO, &rep);
    if (r)
        fprintf(stderr, "%s", rep);
    assert_int_equal(r, FSCK_EXIT_OK);
    free(rep);

    /* wrong link count: found, repaired, and the file system mounts and reads */
    struct mmio *io;
    assert_int_equal(mmio_open(&io, path, 0, 0, NULL), 0);
    struct mmapfs_disk_inode di;
    raw_inode(io, af.f1, &di);
    assert_int_equal(di.nlink, 2);
    di.nlink = 5;
    raw_inode_write(io, af.f1, &di);
    assert_int_equal(api_check(path, FS_CHECK_NO, NULL), FSCK_EXIT_UNCORRECTED);
    assert_int_equal(api_check(path, FS_CHECK_YES, NULL), FSCK_EXIT_CORRECTED);
    assert_int_equal(api_check(path, FS_CHECK_NO, NULL), FSCK_EXIT_OK);
    raw_inode(io, af.f1, &di);
    assert_int_equal(di.nlink, 2);

    /* two files claiming the same blocks: f2's extent moved onto f1's */
    struct mmapfs_disk_inode d1, d2;
    raw_inode(io, af.f1, &d1);
    raw_inode(io, af.f2, &d2);
    uint8_t *leaf1 = mmio_mut_ptr(io, d1.tree_root * 4096);
    uint8_t *leaf2 = mmio_mut_ptr(io, d2.tree_root * 4096);
    assert_int_equal(((struct mmapfs_disk_btree_header *)leaf2)->level, 0);
    struct mmapfs_disk_btree_item it1, it2;
    memcpy(&it1, leaf1 + 32, 12);
    memcpy(&it2, leaf2 + 32, 12);
    struct mmapfs_disk_extent e1, e2;
    memcpy(&e1, leaf1 + it1.value_off, 16);
    memcpy(&e2, leaf2 + it2.value_off, 16);
    uint64_t saved_start = e2.start;
    e2.start = e1.start;
    memcpy(leaf2 + it2.value_off, &e2, 16);
    ((struct mmapfs_disk_btree_header *)leaf2)->checksum = bt_block_checksum(d2.tree_root, leaf2);
    assert_int_equal(mmio_sync(io), 0);
    r = api_check(path, FS_CHECK_NO, &rep);
    assert_int_equal(r, FSCK_EXIT_UNCORRECTED);
    char want[160];
    snprintf(want, sizeof(want), "claimed twice: file data of inode %" PRIu64
             " and file data of inode %" PRIu64, af.f1, af.f2);
    if (!strstr(rep, want))
        fprintf(stderr, "want \"%s\" in:\n%s", want, rep);
    assert_non_null(strstr(rep, want));
    free(rep);
    e2.start = saved_start;
    memcpy(leaf2 + it2.value_off, &e2, 16);
    ((struct mmapfs_disk_btree_header *)leaf2)->checksum = bt_block_checksum(d2.tree_root, leaf2);
    assert_int_equal(mmio_sync(io), 0);
    assert_int_equal(api_check(path, FS_CHECK_NO, NULL), FSCK_EXIT_OK);

    /* a data block of f1 marked free */
    const struct mmapfs_disk_superblock *sb = mmio_ptr(io, 0);
    uint8_t *bm = mmio_mut_ptr(io, (sb->block_bitmap_start + e1.start / 32768) * 4096);
    bm[(e1.start % 32768) / 8] &= (uint8_t)~(1u << (e1.start % 8));
    assert_int_equal(mmio_sync(io), 0);
    snprintf(want, sizeof(want), "block %" PRIu64 " in use but marked free", e1.start);
    r = api_check(path, FS_CHECK_NO, &rep);
    assert_int_equal(r, FSCK_EXIT_UNCORRECTED);
    assert_non_null(strstr(rep, want));
    free(rep);
    assert_int_equal(api_check(path, FS_CHECK_YES, NULL), FSCK_EXIT_CORRECTED);
    assert_int_equal(api_check(path, FS_CHECK_NO, NULL), FSCK_EXIT_OK);
    mmio_close(io);

    /* the repaired image mounts and reads */
    struct fs *fs;
    struct fs_options o = { .path = path };
    assert_int_equal(fs_mount(&fs, &o), 0);
    char buf[8192];
    assert_int_equal(fs_read(fs, af.f1, 0, buf, sizeof(buf)), 8192);
    assert_int_equal(buf[0], 'x');
    assert_int_equal(fs_unmount(fs), 0);
    assert_int_equal(api_check(path, FS_CHECK_NO, NULL), FSCK_EXIT_OK);
    unlink(path);
}

/* A "crash" (the process dies while mounted) with an unlinked-but-open file:
 * fsck replays the journal, reports the orphan as info, exits 0. */
static void test_api_crash_orphan(void **state)
{
    (void)state;
    char path[64];
    api_format(path, 32 * MiB);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct fs *fs;
        struct fs_options o = { .path = path };
        if (fs_mount(&fs, &o))
            _exit(2);
        struct fs_stat st;
        if (fs_mknod(fs, MMAPFS_ROOT_INO, "open", S_IFREG | 0644, 0, &cred, &st))
            _exit(3);
        if (fs_write(fs, st.ino, 0, "data", 4) != 4 || fs_unlink(fs, MMAPFS_ROOT_INO, "open"))
            _exit(4);
        api_mknod(fs, MMAPFS_ROOT_INO, "kept", S_IFREG | 0644);
        if (fs_fsync(fs, MMAPFS_ROOT_INO, 0) || fs_fsync(fs, st.ino, 0))
            _exit(5);
        _exit(0);                      /* no unmount: a crash */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    char *rep;
    int r = api_check(path, FS_CHECK_NO, &rep);
    if (r)
        fprintf(stderr, "%s", rep);
    assert_int_equal(r, FSCK_EXIT_OK);
    assert_non_null(strstr(rep, "unlinked while open"));
    free(rep);
    /* the mount releases the orphan; then everything is clean */
    struct fs *fs;
    struct fs_options o = { .path = path };
    assert_int_equal(fs_mount(&fs, &o), 0);
    struct fs_stat st;
    assert_int_equal(fs_lookup(fs, MMAPFS_ROOT_INO, "kept", &st), 0);
    fs_forget(fs, st.ino, 1);
    assert_int_equal(fs_unmount(fs), 0);
    r = api_check(path, FS_CHECK_NO, &rep);
    assert_int_equal(r, FSCK_EXIT_OK);
    assert_null(strstr(rep, "unlinked while open"));
    free(rep);
    unlink(path);
}

/* Byte flips in the B+tree nodes (internal nodes included) of the API
 * image, often with a recomputed checksum so that the deeper checks run. */
static void test_api_fuzz_trees(void **state)
{
    (void)state;
    char path[64];
    api_format(path, 64 * MiB);
    api_populate(path, NULL);
    struct mmio *io;
    assert_int_equal(mmio_open(&io, path, 0, 0, NULL), 0);
    const struct mmapfs_disk_superblock *sb = mmio_ptr(io, 0);
    uint64_t *nodes = malloc(sb->block_count * sizeof(*nodes));
    assert_non_null(nodes);
    size_t n = 0, internal = 0;
    for (uint64_t b = sb->data_start; b < sb->block_count; b++) {
        const struct mmapfs_disk_btree_header *h = mmio_ptr(io, b * 4096);
        if (h->magic == MMAPFS_BTREE_MAGIC && h->checksum == bt_block_checksum(b, h)) {
            nodes[n++] = b;
            internal += h->level > 0;
        }
    }
    assert_true(n > 10);
    assert_true(internal >= 2);         /* the directory and the big file */
    uint64_t save_first = sb->data_start, save_n = sb->block_count - sb->data_start;
    uint8_t *saved = malloc(save_n * 4096);
    assert_non_null(saved);
    memcpy(saved, mmio_ptr(io, save_first * 4096), save_n * 4096);
    uint8_t *meta = malloc(save_first * 4096);
    assert_non_null(meta);
    memcpy(meta, mmio_ptr(io, 0), save_first * 4096);

    uint64_t seed = getenv("TEST_FSCK_SEED") ? strtoull(getenv("TEST_FSCK_SEED"), NULL, 0)
                                             : (uint64_t)time(NULL);
    rng_state = seed | 1;
    unsigned rounds = getenv("TEST_FSCK_ROUNDS") ? (unsigned)atoi(getenv("TEST_FSCK_ROUNDS")) : 100;
    printf("tree fuzz seed %" PRIu64 ", %u rounds over %zu nodes (%zu internal)\n", seed,
           rounds, n, internal);
    unsigned counts[64] = { 0 };
    /* blocks the last round changed: the flipped ones, or (after fsck -y)
     * possibly any, and in the first round none; restoring only those
     * keeps a round from copying and syncing the whole 64 MiB image */
    uint64_t flipped[4];
    unsigned nflipped = 0;
    int whole = 0;
    for (unsigned round = 0; round < rounds; round++) {
        if (whole) {
            memcpy(mmio_mut_ptr(io, save_first * 4096), saved, save_n * 4096);
            memcpy(mmio_mut_ptr(io, 0), meta, save_first * 4096);
        } else {
            for (unsigned i = 0; i < nflipped; i++)
                memcpy(mmio_mut_ptr(io, flipped[i] * 4096),
                       saved + (flipped[i] - save_first) * 4096, 4096);
        }
        whole = 0;
        unsigned flips = 1 + (unsigned)(rnd() % 4);
        nflipped = flips;
        for (unsigned i = 0; i < flips; i++) {
            uint64_t b = nodes[rnd() % n];
            flipped[i] = b;
            uint8_t *p = mmio_mut_ptr(io, b * 4096);
            uint64_t off = rnd() % 3 ? rnd() % 512 : rnd() % 4096;   /* mostly headers/items */
            p[off] ^= (uint8_t)(1 + rnd() % 255);
            if (rnd() % 4)
                ((struct mmapfs_disk_btree_header *)p)->checksum = bt_block_checksum(b, p);
        }
        assert_int_equal(mmio_sync(io), 0);
        int r = api_check(path, FS_CHECK_NO, NULL);
        assert_true(r == 0 || r == 4 || r == 8);
        counts[r]++;
        if (r == 4 && round % 3 == 0) {
            whole = 1;
            int y = api_check(path, FS_CHECK_YES, NULL);
            assert_true(y == 1 || y == 4 || y == 5);
            r = api_check(path, FS_CHECK_NO, NULL);
            assert_int_equal(y == 1, r == 0);
        }
    }
    printf("tree fuzz results: %u clean, %u errors, %u operational\n", counts[0], counts[4],
           counts[8]);
    assert_true(counts[4] > rounds / 2);
    free(saved);
    free(meta);
    free(nodes);
    mmio_close(io);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_is_clean),
        cmocka_unit_test(test_huge_sparse_is_cheap),
        cmocka_unit_test(test_populated_is_clean),
        cmocka_unit_test(test_operational_errors),
        cmocka_unit_test(test_bad_inode_checksum),
        cmocka_unit_test(test_bad_mode),
        cmocka_unit_test(test_bitmap_bit_cleared),
        cmocka_unit_test(test_bitmap_bit_set),
        cmocka_unit_test(test_wrong_link_count),
        cmocka_unit_test(test_dirent_to_free_inode),
        cmocka_unit_test(test_dirent_problems),
        cmocka_unit_test(test_extent_out_of_range),
        cmocka_unit_test(test_extent_problems),
        cmocka_unit_test(test_block_claimed_twice),
        cmocka_unit_test(test_tree_corrupt),
        cmocka_unit_test(test_xattr_problems),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_directory_structure),
        cmocka_unit_test(test_error_state_and_counts),
        cmocka_unit_test(test_journal_headers),
        cmocka_unit_test(test_fuzz_metadata),
        cmocka_unit_test(test_api_image),
        cmocka_unit_test(test_api_crash_orphan),
        cmocka_unit_test(test_api_fuzz_trees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
