/*
 * test_fs_file.c — file data of the fs core (src/fs/file*.c, fsops.c):
 * write/read round trips at random offsets and sizes (against an in-memory
 * model), offsets past 4 GiB, holes, contiguity of sequential writes,
 * truncate, fallocate modes, SEEK_DATA/SEEK_HOLE, zero-copy reads,
 * setattr, set-id bits kept by writes, EFBIG, block-count changes reported
 * by fs_write_blocks, fsync and metrics. Every test ends with an
 * unmount and an fsck of the image. Images are sparse mkstemp files in /tmp.
 * TEST_SEED=<n> replays the random test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsck/fsck.h"
#include "fs/fs.h"
#include "fs/fs_i.h"
#include "fs/file_i.h"

#include "fs_fixture.h"

/* ==== helpers ================================================================= */

/* Mounts the image with the given mmio backend. */
static void img_mount_opts(struct img *m, enum mmio_backend backend)
{
    assert_int_equal(img_try_mount(m, (struct fs_options){ .backend = backend }), 0);
}

/* A formatted, mounted 256 MiB image; the tests end with img_unmount_check() and
 * img_remount() checks it too. */
static int img_setup(void **state)
{
    static const struct img_config c = { .name = "file", .bytes = 256 * MiB, .mount = 1,
                                         .fsck_on_remount = 1 };
    return img_setup_config(state, &c);
}

static void write_all(struct fs *fs, uint64_t ino, uint64_t off, const void *buf, size_t len)
{
    ssize_t n = fs_write(fs, ino, off, buf, len);
    if (n < 0 || (size_t)n != len)
        fail_msg("write %zu at %llu: %zd (%s)", len, (unsigned long long)off, n,
                 n < 0 ? strerror((int)-n) : "short");
}

static void read_all(struct fs *fs, uint64_t ino, uint64_t off, void *buf, size_t len)
{
    ssize_t n = fs_read(fs, ino, off, buf, len);
    if (n < 0 || (size_t)n != len)
        fail_msg("read %zu at %llu: %zd", len, (unsigned long long)off, n);
}

/* Are len bytes of buf all equal to c? */
static int all_bytes(const void *buf, size_t len, uint8_t c)
{
    const uint8_t *p = buf;
    for (size_t i = 0; i < len; i++)
        if (p[i] != c)
            return 0;
    return 1;
}

static void fill_pattern(uint8_t *buf, size_t len, uint64_t seed)
{
    for (size_t i = 0; i < len; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        buf[i] = (uint8_t)(seed >> 56);
    }
}

struct extent_count {
    uint64_t written, unwritten, blocks;
    uint64_t nodes;      /* 1 if the map is a tree (these tests' trees are one leaf) */
};

static int count_item(void *ctx, uint64_t key, const void *val, size_t len)
{
    struct extent_count *c = ctx;
    const struct mmapfs_disk_extent *e = val;
    (void)key;
    assert_int_equal(len, sizeof(*e));
    if (e->flags & MMAPFS_EXTENT_UNWRITTEN)
        c->unwritten++;
    else
        c->written++;
    c->blocks += e->len;
    return 0;
}

/* Walks (and thereby validates) the extent tree of ino, or its extents
 * kept in the inode. */
static struct extent_count count_extents(struct fs *fs, uint64_t ino)
{
    struct extent_count c = { 0, 0, 0, 0 };
    struct mmapfs_disk_inode di;
    struct fs_tree_ctx ctx;
    struct bt_tree tree;
    jnl_lock(fs->jnl);
    assert_int_equal(fs_inode_get(fs, ino, &di), 0);
    fs_tree_open(&ctx, &tree, fs, ino, di.tree_root, MMAPFS_TREE_EXTENTS);
    struct bt_walk w = { .item_fn = count_item, .ctx = &c };
    int err = di.tree_root ? bt_walk(&tree, &w) : 0;
    jnl_unlock(fs->jnl);
    c.nodes = di.tree_root != 0;
    for (unsigned i = 0; (di.flags & MMAPFS_INODE_EXTENTS) && i < MMAPFS_INLINE_EXTENTS; i++) {
        struct mmapfs_disk_extent e;
        uint64_t lblk;
        mmapfs_inline_extent_get(di.inline_area, i, &lblk, &e);
        if (e.len)
            count_item(&c, lblk, &e, sizeof(e));
    }
    assert_int_equal(err, 0);
    return c;
}

static uint64_t free_blocks_now(struct fs *fs)
{
    struct statvfs sv;
    assert_int_equal(fs_statfs(fs, &sv), 0);
    return sv.f_bfree;
}

/* ==== round trips ================================================================ */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Random writes and reads inside a 24 MiB window against a memory model,
 * checked again after a remount. */
static void test_random_roundtrip(void **state)
{
    struct img *m = *state;
    const size_t window = 24 * MiB;
    uint64_t seed = getenv("TEST_SEED") ? strtoull(getenv("TEST_SEED"), NULL, 0)
                                        : (uint64_t)time(NULL) | 1;
    fprintf(stderr, "    seed %llu (TEST_SEED to replay)\n", (unsigned long long)seed);
    uint8_t *model = calloc(1, window), *buf = malloc(2 * MiB), *got = malloc(2 * MiB);
    assert_non_null(model);
    assert_non_null(buf);
    assert_non_null(got);
    uint64_t ino = mkfile(m->fs, ROOT, "random"), size = 0;

    for (int round = 0; round < 400; round++) {
        uint64_t r = rng_next(&seed);
        size_t len = (r & 3) == 0 ? 1 + rng_next(&seed) % (2 * MiB)
                                  : 1 + rng_next(&seed) % (40 * KiB);
        uint64_t off = rng_next(&seed) % (window - len);
        if ((r & 12) == 0)
            off &= ~(uint64_t)4095;           /* some block-aligned writes */
        fill_pattern(buf, len, rng_next(&seed));
        write_all(m->fs, ino, off, buf, len);
        memcpy(model + off, buf, len);
        if (off + len > size)
            size = off + len;

        uint64_t roff = rng_next(&seed) % window;
        size_t rlen = 1 + rng_next(&seed) % (2 * MiB);
        ssize_t n = fs_read(m->fs, ino, roff, got, rlen);
        size_t expect = roff >= size ? 0 : (size - roff < rlen ? size - roff : rlen);
        assert_int_equal(n, (ssize_t)expect);
        if (expect && memcmp(got, model + roff, expect) != 0)
            fail_msg("round %d: read %zu at %llu differs", round, expect,
                     (unsigned long long)roff);
    }
    assert_int_equal(attr(m->fs, ino).size, size);

    img_remount(m);
    assert_int_equal(attr(m->fs, ino).size, size);
    for (uint64_t off = 0; off < size; off += 2 * MiB) {
        size_t len = size - off < 2 * MiB ? size - off : 2 * MiB;
        read_all(m->fs, ino, off, got, len);
        assert_memory_equal(got, model + off, len);
    }
    free(model);
    free(buf);
    free(got);
    img_unmount_check(m);
}

/* Holes read as zeros; only written blocks are allocated. */
static void test_holes(void **state)
{
    struct img *m = *state;
    uint64_t ino = mkfile(m->fs, ROOT, "holes");
    uint8_t *buf = malloc(MiB);
    assert_non_null(buf);
    memset(buf, 0xab, 4096);
    write_all(m->fs, ino, 1 * MiB, buf, 4096);
    write_all(m->fs, ino, 10 * MiB + 100, buf, 10);

    struct fs_stat st = attr(m->fs, ino);
    assert_int_equal(st.size, 10 * MiB + 110);
    assert_true(st.blocks512 >= 2 * 8 && st.blocks512 <= 3 * 8);   /* 2 data + the tree */

    read_all(m->fs, ino, 0, buf, MiB);
    assert_true(all_bytes(buf, MiB, 0));
    read_all(m->fs, ino, 1 * MiB + 4096, buf, MiB);
    assert_true(all_bytes(buf, MiB, 0));
    read_all(m->fs, ino, 10 * MiB, buf, 110);
    assert_true(all_bytes(buf, 100, 0));
    assert_true(all_bytes(buf + 100, 10, 0xab));
    assert_int_equal(fs_read(m->fs, ino, 10 * MiB + 110, buf, 10), 0);   /* EOF */
    assert_int_equal(fs_read(m->fs, ino, 20 * MiB, buf, 10), 0);
    free(buf);
    img_unmount_check(m);
}

/* Offsets far past 4 GiB (sparse) work and persist. */
static void test_large_offsets(void **state)
{
    struct img *m = *state;
    uint64_t ino = mkfile(m->fs, ROOT, "big");
    const uint64_t offs[] = { 5 * GiB - 7, 100 * GiB + 12345, 4 * 1024 * GiB };
    char buf[64], got[64];
    for (size_t i = 0; i < 3; i++) {
        memset(buf, 0, sizeof(buf));
        snprintf(buf, sizeof(buf), "data at offset %llu", (unsigned long long)offs[i]);
        write_all(m->fs, ino, offs[i], buf, sizeof(buf));
    }
    img_remount(m);
    for (size_t i = 0; i < 3; i++) {
        memset(buf, 0, sizeof(buf));
        snprintf(buf, sizeof(buf), "data at offset %llu", (unsigned long long)offs[i]);
        read_all(m->fs, ino, offs[i], got, sizeof(got));
        assert_memory_equal(got, buf, sizeof(buf));
    }
    assert_int_equal(attr(m->fs, ino).size, offs[2] + 64);
    read_all(m->fs, ino, 5 * GiB + 4096, got, sizeof(got));
    assert_true(all_bytes(got, sizeof(got), 0));
    assert_int_equal(fs_lseek(m->fs, ino, 0, SEEK_DATA), (int64_t)((5 * GiB - 7) & ~4095ull));
    img_unmount_check(m);
}

/* 64 MiB written sequentially in 128 KiB requests lands in few extents. */
static void test_sequential_contiguity(void **state)
{
    struct img *m = *state;
    uint64_t ino = mkfile(m->fs, ROOT, "seq");
    const size_t chunk = 128 * KiB;
    uint8_t *buf = malloc(chunk), *got = malloc(chunk);
    assert_non_null(buf);
    assert_non_null(got);
    for (uint64_t off = 0; off < 64 * MiB; off += chunk) {
        fill_pattern(buf, chunk, off);
        write_all(m->fs, ino, off, buf, chunk);
    }
    struct extent_count c = count_extents(m->fs, ino);
    assert_true(c.written >= 1 && c.written <= 4);
    assert_int_equal(c.unwritten, 0);
    assert_int_equal(c.blocks, 64 * MiB / 4096);
    struct fs_stat st = attr(m->fs, ino);
    assert_int_equal(st.size, 64 * MiB);
    assert_int_equal(st.blocks512 / 8, 64 * MiB / 4096 + c.nodes);    /* data + a leaf if
                                                                         * not in the inode */

    img_remount(m);
    for (uint64_t off = 0; off < 64 * MiB; off += 4 * MiB) {
        fill_pattern(buf, chunk, off);
        read_all(m->fs, ino, off, got, chunk);
        assert_memory_equal(got, buf, chunk);
    }
    free(buf);
    free(got);
    img_unmount_check(m);
}

/* The kernel's write-back runs on several daemon threads, so a file's
 * chunks can arrive out of order: the second before the first, or the
 * third before the second. They must still end up in one run of blocks
 * (a punched 8 MiB file then takes 6144 KiB, as on ext4). Another file
 * written just before takes the blocks in front of the allocator's goal. */
static void test_reordered_contiguity(void **state)
{
    struct img *m = *state;
    const size_t chunk = 256 * KiB;
    static const unsigned order[] = { 1, 0, 3, 2, 4, 7, 6, 5, 8, 9, 11, 10 };
    const size_t n = sizeof(order) / sizeof(order[0]);
    uint8_t *buf = malloc(chunk), *got = malloc(chunk);
    assert_non_null(buf);
    assert_non_null(got);
    uint64_t other = mkfile(m->fs, ROOT, "other");
    fill_pattern(buf, 64 * KiB, 1);
    write_all(m->fs, other, 0, buf, 64 * KiB);
    uint64_t ino = mkfile(m->fs, ROOT, "reordered");
    for (size_t i = 0; i < n; i++) {
        uint64_t off = order[i] * chunk;
        fill_pattern(buf, chunk, off);
        write_all(m->fs, ino, off, buf, chunk);
    }
    struct extent_count c = count_extents(m->fs, ino);
    assert_int_equal(c.written, 1);
    assert_int_equal(c.blocks, n * chunk / 4096);
    for (size_t i = 0; i < n; i++) {
        fill_pattern(buf, chunk, i * chunk);
        read_all(m->fs, ino, i * chunk, got, chunk);
        assert_memory_equal(got, buf, chunk);
    }
    free(buf);
    free(got);
    img_unmount_check(m);
}

/* ==== truncate ================================================================== */

static void test_truncate(void **state)
{
    struct img *m = *state;
    uint64_t ino = mkfile(m->fs, ROOT, "trunc");
    uint8_t *buf = malloc(3 * MiB);
    assert_non_null(buf);
    memset(buf, 0xaa, 3 * MiB);
    uint64_t free0 = free_blocks_now(m->fs);
    write_all(m->fs, ino, 0, buf, 3 * MiB);
    assert_true(free_blocks_now(m->fs) <= free0 - 768);

    struct fs_setattr sa = { .size = 5000 };
    struct fs_stat st;
    assert_int_equal(fs_setattr(m->fs, ino, &sa, FS_SET_SIZE, &st), 0);
    assert_int_equal(st.size, 5000);
    assert_int_equal(st.blocks512 / 8, 2 + count_extents(m->fs, ino).nodes);  /* 2 data
                                                                               * blocks */
    /* grow again: the old tail must read as zeros */
    sa.size = 3 * MiB;
    assert_int_equal(fs_setattr(m->fs, ino, &sa, FS_SET_SIZE, &st), 0);
    assert_int_equal(st.size, 3 * MiB);
    read_all(m->fs, ino, 0, buf, 3 * MiB);
    assert_true(all_bytes(buf, 5000, 0xaa));
    assert_true(all_bytes(buf + 5000, 3 * MiB - 5000, 0));
    /* a write past the end after a shrink shows zeros in between */
    sa.size = 100;
    assert_int_equal(fs_setattr(m->fs, ino, &sa, FS_SET_SIZE, &st), 0);
    write_all(m->fs, ino, 200, "xyz", 3);
    read_all(m->fs, ino, 0, buf, 203);
    assert_true(all_bytes(buf, 100, 0xaa));
    assert_true(all_bytes(buf + 100, 100, 0));
    assert_memory_equal(buf + 200, "xyz", 3);

    sa.size = 0;
    assert_int_equal(fs_setattr(m->fs, ino, &sa, FS_SET_SIZE, &st), 0);
    assert_int_equal(st.blocks512, 0);
    assert_int_equal(count_extents(m->fs, ino).written, 0);
    assert_int_equal(free_blocks_now(m->fs), free0);

    /* directories and others */
    sa.size = 0;
    assert_int_equal(fs_setattr(m->fs, ROOT, &sa, FS_SET_SIZE, NULL), -EISDIR);
    struct fs_stat fifo;
    assert_int_equal(fs_mknod(m->fs, ROOT, "fifo", S_IFIFO | 0644, 0, &cred, &fifo), 0);
    fs_forget(m->fs, fifo.ino, 1);
    assert_int_equal(fs_setattr(m->fs, fifo.ino, &sa, FS_SET_SIZE, NULL), -EINVAL);
    sa.size = MMAPFS_MAX_FILE_SIZE + 1;
    assert_int_equal(fs_setattr(m->fs, ino, &sa, FS_SET_SIZE, NULL), -EFBIG);
    free(buf);
    img_unmount_check(m);
}

/* Physical block of logical block lblk of ino, from its extent map. */
static uint64_t phys_block(struct fs *fs, uint64_t ino, uint64_t lblk)
{
    struct mmapfs_disk_inode di;
    struct fmap m;
    struct fextent e;
    uint64_t next;
    jnl_lock(fs->jnl);
    assert_int_equal(fs_inode_get(fs, ino, &di), 0);
    fmap_open(&m, fs, ino, di.tree_root);
    assert_int_equal(fs_fmap_find(&m, lblk, &e, &next), 0);
    jnl_unlock(fs->jnl);
    return e.pblk + (lblk - e.lblk);
}

/* A truncate to a size inside a block must not change that block's bytes
 * on the image before it commits: durable metadata still shows them, and
 * a crash in between brought back the old size with zeros inside
 * (docs/CRASH.md). The kept bytes go to a new block; the old one is
 * untouched until it is reused after the commit. */
static void test_truncate_edge_untouched(void **state)
{
    struct img *m = *state;
    const size_t len = 1000000, cut = 997000;
    uint64_t ino = mkfile(m->fs, ROOT, "edge");
    uint8_t *buf = malloc(len), blk[MMAPFS_BLOCK_SIZE];
    assert_non_null(buf);
    memset(buf, 'a', len);
    write_all(m->fs, ino, 0, buf, len);
    assert_int_equal(fs_fsync(m->fs, ino, 1), 0);
    uint64_t lblk = cut / MMAPFS_BLOCK_SIZE, old = phys_block(m->fs, ino, lblk);

    struct fs_setattr sa = { .size = cut };
    assert_int_equal(fs_setattr(m->fs, ino, &sa, FS_SET_SIZE, NULL), 0);
    assert_int_equal(mmio_read_at(m->fs->io, old * MMAPFS_BLOCK_SIZE, blk, sizeof(blk)), 0);
    assert_true(all_bytes(blk, sizeof(blk), 'a'));       /* before: zeros from 997000 */
    assert_int_not_equal(phys_block(m->fs, ino, lblk), old);
    /* the file: its bytes up to the cut, zeros after it when it grows */
    sa.size = len;
    assert_int_equal(fs_setattr(m->fs, ino, &sa, FS_SET_SIZE, NULL), 0);
    read_all(m->fs, ino, 0, buf, len);
    assert_true(all_bytes(buf, cut, 'a'));
    assert_true(all_bytes(buf + cut, len - cut, 0));
    img_remount(m);
    read_all(m->fs, ino, 0, buf, len);
    assert_true(all_bytes(buf, cut, 'a'));
    assert_true(all_bytes(buf + cut, len - cut, 0));
    free(buf);
    img_unmount_check(m);
}

/* A file of many extents truncated in the middle of one: split, and the
 * shrink spans several journal steps. */
static void test_truncate_fragmented(void **state)
{
    struct img *m = *state;
    uint64_t ino = mkfile(m->fs, ROOT, "frag");
    uint8_t blk[4096];
    uint64_t free0 = free_blocks_now(m->fs);
    for (uint64_t i = 0; i < 6000; i++) {      /* every other block: 6000 extents */
        memset(blk, (int)(i & 0xff), sizeof(blk));
        write_all(m->fs, ino, i * 8192, blk, sizeof(blk));
    }
    assert_int_equal(count_extents(m->fs, ino).written, 6000);
    struct fs_setattr sa = { .size = 1000 * 8192 + 100 };
    assert_int_equal(fs_setattr(m->fs, ino, &sa, FS_SET_SIZE, NULL), 0);
    struct extent_count c = count_extents(m->fs, ino);
    assert_int_equal(c.written, 1001);
    assert_int_equal(c.blocks, 1001);
    read_all(m->fs, ino, 999 * 8192, blk, 4096);
    assert_true(all_bytes(blk, 4096, 999 & 0xff));
    read_all(m->fs, ino, 1000 * 8192, blk, 100);
    assert_true(all_bytes(blk, 100, 1000 & 0xff));
    sa.size = 0;
    assert_int_equal(fs_setattr(m->fs, ino, &sa, FS_SET_SIZE, NULL), 0);
    assert_int_equal(attr(m->fs, ino).blocks512, 0);
    assert_int_equal(free_blocks_now(m->fs), free0);
    img_unmount_check(m);
}

/* ==== fallocate ================================================================= */

static void test_fallocate(void **state)
{
    struct img *m = *state;
    uint64_t ino = mkfile(m->fs, ROOT, "falloc");
    uint8_t *buf = malloc(MiB);
    assert_non_null(buf);

    /* mode 0: allocates, grows the size, reads zeros */
    uint64_t free0 = free_blocks_now(m->fs);
    assert_int_equal(fs_fallocate(m->fs, ino, 0, 0, MiB), 0);
    assert_int_equal(attr(m->fs, ino).size, MiB);
    assert_true(free_blocks_now(m->fs) <= free0 - 256);
    read_all(m->fs, ino, 0, buf, MiB);
    assert_true(all_bytes(buf, MiB, 0));
    struct extent_count c = count_extents(m->fs, ino);
    assert_int_equal(c.unwritten, 1);
    assert_int_equal(c.blocks, 256);

    /* a write into the middle of the unwritten extent: data + zeros around */
    memset(buf, 0x5a, 6000);
    write_all(m->fs, ino, 10000, buf, 6000);
    read_all(m->fs, ino, 0, buf, MiB);
    assert_true(all_bytes(buf, 10000, 0));
    assert_true(all_bytes(buf + 10000, 6000, 0x5a));
    assert_true(all_bytes(buf + 16000, MiB - 16000, 0));
    c = count_extents(m->fs, ino);
    assert_int_equal(c.written, 1);
    assert_int_equal(c.unwritten, 2);
    assert_int_equal(c.blocks, 256);

    /* KEEP_SIZE: beyond the end, size unchanged */
    assert_int_equal(fs_fallocate(m->fs, ino, FALLOC_FL_KEEP_SIZE, MiB, MiB), 0);
    assert_int_equal(attr(m->fs, ino).size, MiB);
    assert_int_equal(count_extents(m->fs, ino).blocks, 512);

    /* punch a hole with partial edges */
    memset(buf, 0x77, MiB);
    write_all(m->fs, ino, 0, buf, MiB);
    uint64_t free1 = free_blocks_now(m->fs), nodes1 = count_extents(m->fs, ino).nodes;
    assert_int_equal(fs_fallocate(m->fs, ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                  4096 + 100, 5 * 4096), 0);
    assert_int_equal(attr(m->fs, ino).size, MiB);
    read_all(m->fs, ino, 0, buf, MiB);
    assert_true(all_bytes(buf, 4096 + 100, 0x77));
    assert_true(all_bytes(buf + 4096 + 100, 5 * 4096, 0));
    assert_true(all_bytes(buf + 6 * 4096 + 100, MiB - 6 * 4096 - 100, 0x77));
    /* blocks 2..5; the edges 1 and 6 were copied (their own extents now:
     * the tree may have grown a node) */
    assert_int_equal(free_blocks_now(m->fs) + count_extents(m->fs, ino).nodes, free1 + 4 + nodes1);
    assert_int_equal(fs_lseek(m->fs, ino, 4096 + 100, SEEK_HOLE), 2 * 4096);

    /* zero range: zeros, blocks stay allocated (unwritten), size grows */
    assert_int_equal(fs_fallocate(m->fs, ino, FALLOC_FL_ZERO_RANGE, 100 * 4096 + 1,
                                  MiB), 0);
    assert_int_equal(attr(m->fs, ino).size, 100 * 4096 + 1 + MiB);
    read_all(m->fs, ino, 100 * 4096, buf, 4096);
    assert_int_equal(buf[0], 0x77);
    assert_true(all_bytes(buf + 1, 4095, 0));

    /* unsupported modes and types */
    assert_int_equal(fs_fallocate(m->fs, ino, FALLOC_FL_PUNCH_HOLE, 0, 4096), -EOPNOTSUPP);
    assert_int_equal(fs_fallocate(m->fs, ino, FALLOC_FL_NO_HIDE_STALE, 0, 4096), -EOPNOTSUPP);
    /* collapse and insert range: test_shift.c */
    assert_int_equal(fs_fallocate(m->fs, ino, 0, 0, 0), -EINVAL);
    assert_int_equal(fs_fallocate(m->fs, ino, 0, MMAPFS_MAX_FILE_SIZE, 1), -EFBIG);
    assert_int_equal(fs_fallocate(m->fs, ROOT, 0, 0, 4096), -EISDIR);
    free(buf);
    img_remount(m);
    img_unmount_check(m);
}

/* fallocate until the disk is full: -ENOSPC, the file stays consistent. */
static void test_fallocate_enospc(void **state)
{
    struct img *m = *state;
    uint64_t ino = mkfile(m->fs, ROOT, "huge");
    assert_int_equal(fs_fallocate(m->fs, ino, 0, 0, 1024 * MiB), -ENOSPC);
    assert_int_equal(attr(m->fs, ino).size, 0);
    struct fs_setattr sa = { .size = 0 };
    assert_int_equal(fs_setattr(m->fs, ino, &sa, FS_SET_SIZE, NULL), 0);
    img_unmount_check(m);
}

/* Engine syncs so far. */
static uint64_t engine_syncs(struct fs *fs)
{
    struct mmio_metrics mm;
    mmio_get_metrics(fs->io, &mm);
    return mm.syncs;
}

/* fsync with everything durable has nothing to sync: of a directory, and
 * of a regular file when the engine saw no write since its last sync (the
 * commit's checkpoint writes do not count: the log holds them). A small
 * append commits with one sync: its data rides in the log. */
static void test_fsync_costs(void **state)
{
    struct img *m = *state;
    uint64_t d = mkdirectory(m->fs, ROOT, "d");
    uint64_t f = mkfile(m->fs, d, "f");
    uint8_t buf[4096];
    memset(buf, 'x', sizeof(buf));
    assert_int_equal(fs_fsync(m->fs, d, 0), 0);
    assert_int_equal(mmio_unsynced(m->fs->io), 0);
    uint64_t s0 = engine_syncs(m->fs);
    assert_int_equal(fs_fsync(m->fs, d, 0), 0);
    assert_int_equal(engine_syncs(m->fs), s0);
    assert_int_equal(fs_fsync(m->fs, f, 0), 0);
    assert_int_equal(fs_fsync(m->fs, f, 1), 0);
    assert_int_equal(engine_syncs(m->fs), s0);

    write_all(m->fs, f, 0, buf, sizeof(buf));
    s0 = engine_syncs(m->fs);
    assert_int_equal(fs_fsync(m->fs, f, 1), 0);
    assert_int_equal(engine_syncs(m->fs), s0 + 1);
    /* an unaligned append overwrites the block logged just before: the
     * fdatasync must commit again (the block is logged again) */
    write_all(m->fs, f, 4096, buf, 100);
    assert_int_equal(fs_fsync(m->fs, f, 1), 0);
    struct jnl_metrics j0, j1;
    jnl_get_metrics(m->fs->jnl, &j0);
    write_all(m->fs, f, 4096 + 100, buf, 100);
    s0 = engine_syncs(m->fs);
    assert_int_equal(fs_fsync(m->fs, f, 1), 0);
    assert_int_equal(engine_syncs(m->fs), s0 + 1);
    jnl_get_metrics(m->fs->jnl, &j1);
    assert_int_equal(j1.commits, j0.commits + 1);
    assert_int_equal(j1.data_images, 3);
    assert_int_equal(j1.ordered_commits, 0);
}

/* Invariant 8: blocks a file frees are not handed to another file while a
 * zero-copy reply may still point at them (read pin held), and are once it
 * is dropped. The disk is filled so that the second file can only get
 * space by reusing the first file's blocks. */
static void test_read_iov_pin(void **state)
{
    struct img *m = *state;
    uint64_t a = mkfile(m->fs, ROOT, "a"), fill = mkfile(m->fs, ROOT, "fill");
    uint64_t b = mkfile(m->fs, ROOT, "b");
    size_t alen = 128 * KiB, blen = 64 * KiB;
    uint8_t *buf = malloc(alen);
    assert_non_null(buf);
    memset(buf, 'A', alen);
    write_all(m->fs, a, 0, buf, alen);
    assert_int_equal(fs_fsync(m->fs, a, 0), 0);
    uint64_t off = 0;
    for (uint64_t step = MiB; step >= 4096; step /= 16) {
        int err;
        while ((err = fs_fallocate(m->fs, fill, 0, off, step)) == 0)
            off += step;
        assert_int_equal(err, -ENOSPC);
    }

    struct fs_read_pin pin;
    struct iovec iov[8];
    int n = 0;
    fs_read_pin(m->fs, &pin);
    assert_int_equal(fs_read_iov(m->fs, a, 0, alen, iov, 8, &n, &pin), (ssize_t)alen);
    struct fs_setattr sa = { .size = 0 };
    assert_int_equal(fs_setattr(m->fs, a, &sa, FS_SET_SIZE, NULL), 0);
    assert_int_equal(fs_fsync(m->fs, a, 0), 0);      /* the free is durable */

    memset(buf, 'B', blen);
    ssize_t w = fs_write(m->fs, b, 0, buf, blen);
    assert_true(w == -ENOSPC || w > 0);
    for (int i = 0; i < n; i++)                        /* still a's bytes */
        assert_true(all_bytes(iov[i].iov_base, iov[i].iov_len, 'A'));

    fs_read_unpin(m->fs, &pin);
    if (w < 0) {
        /* unpinned: a's blocks are the only free space, and b gets them */
        assert_int_equal(fs_write(m->fs, b, 0, buf, blen), (ssize_t)blen);
        int reused = 0;
        for (int i = 0; i < n; i++)
            reused |= !all_bytes(iov[i].iov_base, iov[i].iov_len, 'A');
        assert_true(reused);
    }
    free(buf);
    img_unmount_check(m);
}

/* ==== lseek ===================================================================== */

static void test_seek_data_hole(void **state)
{
    struct img *m = *state;
    uint64_t ino = mkfile(m->fs, ROOT, "seek");
    char b[4096];
    memset(b, 1, sizeof(b));
    write_all(m->fs, ino, 0, b, 4096);                     /* data [0, 4K) */
    write_all(m->fs, ino, MiB, b, 4096);                   /* data [1M, 1M+4K) */
    assert_int_equal(fs_fallocate(m->fs, ino, 0, 2 * MiB, MiB), 0);   /* unwritten */
    struct fs_setattr sa = { .size = 4 * MiB };
    assert_int_equal(fs_setattr(m->fs, ino, &sa, FS_SET_SIZE, NULL), 0);

    assert_int_equal(fs_lseek(m->fs, ino, 0, SEEK_DATA), 0);
    assert_int_equal(fs_lseek(m->fs, ino, 100, SEEK_DATA), 100);
    assert_int_equal(fs_lseek(m->fs, ino, 0, SEEK_HOLE), 4096);
    assert_int_equal(fs_lseek(m->fs, ino, 4096, SEEK_DATA), (int64_t)MiB);
    assert_int_equal(fs_lseek(m->fs, ino, MiB + 5, SEEK_HOLE), (int64_t)(MiB + 4096));
    assert_int_equal(fs_lseek(m->fs, ino, MiB + 4096, SEEK_DATA), -ENXIO);  /* unwritten = hole */
    assert_int_equal(fs_lseek(m->fs, ino, 2 * MiB, SEEK_HOLE), (int64_t)(2 * MiB));
    assert_int_equal(fs_lseek(m->fs, ino, 4 * MiB - 1, SEEK_HOLE), (int64_t)(4 * MiB - 1));
    assert_int_equal(fs_lseek(m->fs, ino, 4 * MiB, SEEK_DATA), -ENXIO);
    assert_int_equal(fs_lseek(m->fs, ino, 4 * MiB, SEEK_HOLE), -ENXIO);
    assert_int_equal(fs_lseek(m->fs, ino, 0, SEEK_SET), -EINVAL);
    /* a file that is all data: the hole is at the end */
    uint64_t full = mkfile(m->fs, ROOT, "full");
    write_all(m->fs, full, 0, b, 3000);
    assert_int_equal(fs_lseek(m->fs, full, 0, SEEK_HOLE), 3000);
    assert_int_equal(fs_lseek(m->fs, full, 2999, SEEK_DATA), 2999);
    img_unmount_check(m);
}

/* ==== zero-copy reads ============================================================ */

static void test_read_iov(void **state)
{
    struct img *m = *state;
    uint64_t ino = mkfile(m->fs, ROOT, "iov");
    uint8_t *buf = malloc(256 * KiB), *got = malloc(256 * KiB);
    assert_non_null(buf);
    assert_non_null(got);
    fill_pattern(buf, 128 * KiB, 42);
    write_all(m->fs, ino, 0, buf, 128 * KiB);                /* one contiguous extent */
    write_all(m->fs, ino, 192 * KiB, buf, 64 * KiB);         /* hole [128K, 192K) */

    struct iovec iov[16];
    int n = 0;
    struct fs_read_pin pin = { 0, 0 };
    assert_int_equal(fs_read_iov(m->fs, ino, 0, 256 * KiB, iov, 16, &n, &pin), -EINVAL);
    fs_read_pin(m->fs, &pin);
    ssize_t r = fs_read_iov(m->fs, ino, 0, 256 * KiB, iov, 16, &n, &pin);
    assert_int_equal(r, 256 * KiB);
    assert_true(n >= 3 && n <= 4);
    assert_int_equal(iov[0].iov_len, 128 * KiB);             /* merged: contiguous */
    size_t pos = 0;
    for (int i = 0; i < n; i++) {
        memcpy(got + pos, iov[i].iov_base, iov[i].iov_len);
        pos += iov[i].iov_len;
    }
    assert_int_equal(pos, 256 * KiB);
    read_all(m->fs, ino, 0, buf, 256 * KiB);
    assert_memory_equal(got, buf, 256 * KiB);
    assert_true(all_bytes(got + 128 * KiB, 64 * KiB, 0));

    /* a short iovec array: partial answer */
    r = fs_read_iov(m->fs, ino, 0, 256 * KiB, iov, 1, &n, &pin);
    assert_int_equal(r, 128 * KiB);
    assert_int_equal(n, 1);
    /* EOF and directories */
    assert_int_equal(fs_read_iov(m->fs, ino, 256 * KiB, 10, iov, 16, &n, &pin), 0);
    assert_int_equal(n, 0);
    assert_int_equal(fs_read_iov(m->fs, ROOT, 0, 10, iov, 16, &n, &pin), -EISDIR);
    fs_read_unpin(m->fs, &pin);
    free(buf);
    free(got);

    /* the pread backend has no mapping to point into */
    img_unmount_check(m);
    img_mount_opts(m, MMIO_BACKEND_PREAD);
    fs_read_pin(m->fs, &pin);
    assert_int_equal(fs_read_iov(m->fs, ino, 0, 10, iov, 16, &n, &pin), -ENOTSUP);
    fs_read_unpin(m->fs, &pin);
    char small[10];
    assert_int_equal(fs_read(m->fs, ino, 0, small, 10), 10);
    write_all(m->fs, ino, 0, "pread", 5);
    assert_int_equal(fs_read(m->fs, ino, 0, small, 5), 5);
    assert_memory_equal(small, "pread", 5);
    img_unmount_check(m);
}

/* ==== attributes ================================================================= */

static void test_setattr(void **state)
{
    struct img *m = *state;
    uint64_t ino = mkfile(m->fs, ROOT, "attrs");
    struct fs_setattr sa = {
        .mode = 04751, .uid = 12, .gid = 34,
        .atime = { 1000, 1 }, .mtime = { 2000, 2 }, .ctime = { 3000, 3 },
    };
    struct fs_stat st;
    assert_int_equal(fs_setattr(m->fs, ino, &sa, FS_SET_MODE | FS_SET_UID | FS_SET_GID |
                                FS_SET_ATIME | FS_SET_MTIME | FS_SET_CTIME, &st), 0);
    assert_int_equal(st.mode, S_IFREG | 04751);
    assert_int_equal(st.uid, 12);
    assert_int_equal(st.gid, 34);
    assert_int_equal(st.atime.tv_sec, 1000);
    assert_int_equal(st.atime.tv_nsec, 1);
    assert_int_equal(st.mtime.tv_sec, 2000);
    assert_int_equal(st.mtime.tv_nsec, 2);
    assert_int_equal(st.ctime.tv_sec, 3000);

    /* NOW variants, and ctime = now when not given */
    struct timespec before;     /* the clock fs stamps with (fs_now): a
                                 * precise one may be a tick ahead of it */
    clock_gettime(CLOCK_REALTIME_COARSE, &before);
    assert_int_equal(fs_setattr(m->fs, ino, &sa, FS_SET_ATIME_NOW | FS_SET_MTIME_NOW, &st), 0);
    assert_true(st.atime.tv_sec >= before.tv_sec);
    assert_true(st.mtime.tv_sec >= before.tv_sec);
    assert_true(st.ctime.tv_sec >= before.tv_sec);

    /* fs_write leaves set-id bits alone: whether they go depends on the
     * writer, which only the front end knows (mfs_setattr) */
    write_all(m->fs, ino, 0, "x", 1);
    assert_int_equal(attr(m->fs, ino).mode & 07777, 04751);
    sa.mode = 02650;
    assert_int_equal(fs_setattr(m->fs, ino, &sa, FS_SET_MODE, NULL), 0);
    write_all(m->fs, ino, 0, "z", 1);
    assert_int_equal(attr(m->fs, ino).mode & 07777, 02650);

    /* mode keeps the type bits */
    sa.mode = S_IFDIR | 0700;
    assert_int_equal(fs_setattr(m->fs, ino, &sa, FS_SET_MODE, &st), 0);
    assert_int_equal(st.mode, S_IFREG | 0700);
    assert_int_equal(fs_getattr(m->fs, 999999, &st), -ENOENT);
    assert_int_equal(fs_setattr(m->fs, 999999, &sa, FS_SET_MODE, &st), -ENOENT);

    img_remount(m);
    st = attr(m->fs, ino);
    assert_int_equal(st.mode, S_IFREG | 0700);
    assert_int_equal(st.uid, 12);
    img_unmount_check(m);
}

/* With the kernel owning the times (FUSE writeback cache) writes and
 * fallocate leave mtime/ctime as the last setattr put them. */
static void test_kernel_times(void **state)
{
    struct img *m = *state;
    uint64_t ino = mkfile(m->fs, ROOT, "kt");
    struct fs_setattr sa = { .mtime = { 1000, 5 }, .ctime = { 2000, 6 } };
    assert_int_equal(fs_setattr(m->fs, ino, &sa, FS_SET_MTIME | FS_SET_CTIME, NULL), 0);
    fs_set_kernel_times(m->fs, 1);
    write_all(m->fs, ino, 0, "abc", 3);          /* allocates */
    write_all(m->fs, ino, 1, "x", 1);            /* overwrites */
    struct fs_stat st = attr(m->fs, ino);
    assert_int_equal(st.size, 3);
    assert_int_equal(st.mtime.tv_sec, 1000);
    assert_int_equal(st.mtime.tv_nsec, 5);
    assert_int_equal(st.ctime.tv_sec, 2000);
    /* fallocate too: the kernel stamps the times itself (file_modified)
     * and a stamp of the daemon's came out only once the kernel read the
     * inode again, a jump of mtime/ctime that no operation made */
    static const int modes[] = { 0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                 FALLOC_FL_ZERO_RANGE, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE };
    for (unsigned i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
        assert_int_equal(fs_fallocate(m->fs, ino, modes[i], 4096 * i, 8192), 0);
    st = attr(m->fs, ino);
    assert_int_equal(st.size, 4096 * 3 + 8192);  /* ZERO_RANGE at 12288 extends */
    assert_int_equal(st.mtime.tv_sec, 1000);
    assert_int_equal(st.mtime.tv_nsec, 5);
    assert_int_equal(st.ctime.tv_sec, 2000);
    assert_int_equal(st.ctime.tv_nsec, 6);
    fs_set_kernel_times(m->fs, 0);
    write_all(m->fs, ino, 1, "y", 1);
    st = attr(m->fs, ino);
    assert_true(st.mtime.tv_sec > 1000);
    assert_true(st.ctime.tv_sec > 2000);
    assert_int_equal(fs_setattr(m->fs, ino, &sa, FS_SET_MTIME | FS_SET_CTIME, NULL), 0);
    assert_int_equal(fs_fallocate(m->fs, ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096), 0);
    st = attr(m->fs, ino);
    assert_true(st.mtime.tv_sec > 1000);         /* without it the daemon stamps them */
    assert_true(st.ctime.tv_sec > 2000);
    img_unmount_check(m);
}

/* fs_write_blocks says whether st_blocks moved: the FUSE front end tells
 * the kernel to drop its attributes then (mfs_write). */
static void test_write_blocks_changed(void **state)
{
    struct img *m = *state;
    uint64_t ino = mkfile(m->fs, ROOT, "wb");
    static char buf[3 * 4096];
    int changed = -1;
    memset(buf, 'w', sizeof(buf));
    assert_int_equal(fs_write_blocks(m->fs, ino, 0, "abc", 3, &changed), 3);
    assert_int_equal(changed, attr(m->fs, ino).blocks512 != 0);   /* inline or a block */
    assert_int_equal(fs_write_blocks(m->fs, ino, 0, buf, sizeof(buf), &changed),
                     (ssize_t)sizeof(buf));
    assert_int_equal(changed, 1);                                  /* allocates */
    uint64_t blocks = attr(m->fs, ino).blocks512;
    assert_int_equal(fs_write_blocks(m->fs, ino, 100, buf, 5000, &changed), 5000);
    assert_int_equal(changed, 0);                                  /* overwrites */
    assert_int_equal(attr(m->fs, ino).blocks512, blocks);
    assert_int_equal(fs_write_blocks(m->fs, ino, 1 << 20, buf, 1, &changed), 1);
    assert_int_equal(changed, 1);                                  /* past a hole */
    assert_int_equal(fs_write_blocks(m->fs, ino, MMAPFS_MAX_FILE_SIZE, buf, 1, &changed),
                     -EFBIG);
    assert_int_equal(changed, 0);
    assert_int_equal(fs_write_blocks(m->fs, ino, 0, buf, 1, NULL), 1);
    img_unmount_check(m);
}

static void test_write_errors(void **state)
{
    struct img *m = *state;
    uint64_t ino = mkfile(m->fs, ROOT, "w");
    char b[16] = "0123456789abcdef";
    assert_int_equal(fs_write(m->fs, ino, MMAPFS_MAX_FILE_SIZE, b, 1), -EFBIG);
    /* a write crossing the limit is cut at it */
    assert_int_equal(fs_write(m->fs, ino, MMAPFS_MAX_FILE_SIZE - 4, b, 16), 4);
    assert_int_equal(attr(m->fs, ino).size, MMAPFS_MAX_FILE_SIZE);
    assert_int_equal(fs_write(m->fs, ROOT, 0, b, 1), -EISDIR);
    assert_int_equal(fs_read(m->fs, ROOT, 0, b, 1), -EISDIR);
    assert_int_equal(fs_write(m->fs, 999999, 0, b, 1), -ENOENT);
    assert_int_equal(fs_write(m->fs, ino, 0, b, 0), 0);
    img_unmount_check(m);
}

/* ==== concurrency ================================================================ */

struct writer {
    struct fs *fs;
    uint64_t ino;
    int id;
    int err;
};

/* Writes 6 MiB in odd-sized pieces (fsync now and then), truncates and
 * rewrites part of it, and checks the result. */
static void *writer_main(void *arg)
{
    struct writer *w = arg;
    const size_t total = 6 * MiB;
    uint8_t *model = malloc(total), *got = malloc(total);
    if (!model || !got) {
        w->err = -ENOMEM;
        goto out;
    }
    fill_pattern(model, total, (uint64_t)w->id * 7919);
    uint64_t seed = (uint64_t)w->id * 1000003 + 1;
    for (size_t off = 0; off < total;) {
        size_t n = 1 + (size_t)(rng_next(&seed) % (300 * KiB));
        if (n > total - off)
            n = total - off;
        ssize_t r = fs_write(w->fs, w->ino, off, model + off, n);
        if (r != (ssize_t)n) {
            w->err = r < 0 ? (int)r : -EIO;
            goto out;
        }
        off += n;
        if (rng_next(&seed) % 8 == 0 && (w->err = fs_fsync(w->fs, w->ino, (int)(seed & 1))))
            goto out;
    }
    struct fs_setattr sa = { .size = total / 3 };
    if ((w->err = fs_setattr(w->fs, w->ino, &sa, FS_SET_SIZE, NULL)))
        goto out;
    if (fs_write(w->fs, w->ino, total / 3, model + total / 3, total - total / 3) !=
        (ssize_t)(total - total / 3)) {
        w->err = -EIO;
        goto out;
    }
    if (fs_read(w->fs, w->ino, 0, got, total) != (ssize_t)total || memcmp(got, model, total))
        w->err = -EBADMSG;
out:
    free(model);
    free(got);
    return NULL;
}

/* Four writers and a creator/remover thread on one mount. */
static void test_concurrent_writers(void **state)
{
    struct img *m = *state;
    enum { N = 4 };
    struct writer w[N];
    pthread_t th[N];
    char name[16];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "w%d", i);
        w[i] = (struct writer){ m->fs, mkfile(m->fs, ROOT, name), i, 0 };
        assert_int_equal(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
    }
    /* meanwhile: files come and go in the same directory */
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof(name), "tmp%d", i % 7);
        struct fs_stat st;
        if (fs_mknod(m->fs, ROOT, name, S_IFREG | 0600, 0, &cred, &st) == 0) {
            fs_write(m->fs, st.ino, 0, name, strlen(name));
            fs_forget(m->fs, st.ino, 1);
        }
        if (i % 3 == 2)
            fs_unlink(m->fs, ROOT, name);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        if (w[i].err)
            fail_msg("writer %d: %s", i, strerror(-w[i].err));
    }
    img_unmount_check(m);
}

/* ==== fsync and metrics ========================================================== */

/* Returns the value of metric name in text, or -1. */
static long long metric(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, name, n) == 0 && p[n] == ' ')
            return atoll(p + n + 1);
    return -1;
}

/* A tree node's checksum is verified on its first read from the image,
 * not on every access; a freed block is verified again when reused. */
static void test_node_checksum_once(void **state)
{
    struct img *m = *state;
    static char text[8192];
    uint64_t ino = mkfile(m->fs, ROOT, "frag");
    uint8_t blk[4096];
    for (uint64_t i = 0; i < 2000; i++) {      /* every other block: a deep-ish tree */
        memset(blk, (int)(i & 0xff), sizeof(blk));
        write_all(m->fs, ino, i * 8192, blk, sizeof(blk));
    }
    img_remount(m);                            /* nodes now come from the image */
    uint8_t *buf = malloc(2000 * 8192);
    assert_non_null(buf);
    read_all(m->fs, ino, 0, buf, 2000 * 8192 - 4096);
    fs_format_metrics(m->fs, text, sizeof(text));
    long long first = metric(text, "fs_node_checksums");
    assert_true(first >= 2);                   /* root and leaves verified */
    read_all(m->fs, ino, 0, buf, 2000 * 8192 - 4096);
    assert_true(all_bytes(buf + 1999 * 8192 - 8192, 4096, 1998 & 0xff));
    fs_format_metrics(m->fs, text, sizeof(text));
    assert_int_equal(metric(text, "fs_node_checksums"), first);
    /* freed nodes lose their mark */
    uint64_t v0 = 0, v1 = 0;
    for (uint64_t b = m->fs->data_start; b < m->fs->block_count; b++)
        v0 += (uint64_t)fs_verified_has(m->fs, b);
    struct fs_setattr sa = { .size = 0 };
    assert_int_equal(fs_setattr(m->fs, ino, &sa, FS_SET_SIZE, NULL), 0);
    for (uint64_t b = m->fs->data_start; b < m->fs->block_count; b++)
        v1 += (uint64_t)fs_verified_has(m->fs, b);
    assert_true(v0 >= (uint64_t)first && v1 + (uint64_t)first <= v0);
    free(buf);
    img_unmount_check(m);
}

/* fsync of any directory makes every change made before it durable: the
 * metadata of other directories and files (a commit) and file data written
 * in place (a data sync); nothing when all of it is durable already. */
static void test_fsync_dir_covers_all(void **state)
{
    struct img *m = *state;
    static char text[8192];
    uint64_t quiet = mkdirectory(m->fs, ROOT, "quiet");
    uint64_t busy = mkdirectory(m->fs, ROOT, "busy");
    uint64_t f = mkfile(m->fs, busy, "f");
    size_t big = 1 << 20;               /* too large to ride in the log */
    uint8_t *buf = malloc(big);
    assert_non_null(buf);
    memset(buf, 'a', big);
    write_all(m->fs, f, 0, buf, big);
    assert_int_equal(fs_fsync(m->fs, f, 0), 0);
    assert_int_equal(fs_fsync(m->fs, quiet, 0), 0);
    assert_int_equal(mmio_unsynced(m->fs->io), 0);

    /* metadata elsewhere: a new file in another directory */
    mkfile(m->fs, busy, "g");
    jnl_lock(m->fs->jnl);
    uint64_t seq = jnl_last_seq(m->fs->jnl);
    jnl_unlock(m->fs->jnl);
    assert_true(seq > jnl_durable_seq(m->fs->jnl));
    assert_int_equal(fs_fsync(m->fs, quiet, 1), 0);
    assert_true(jnl_durable_seq(m->fs->jnl) >= seq);

    /* data overwritten in place (no new block, not in the log; the kernel
     * owns the times, as with the writeback cache: no metadata changes) */
    assert_int_equal(fs_format_metrics(m->fs, text, sizeof(text)) > 0, 1);
    long long data0 = metric(text, "fs_fsync_data_syncs");
    fs_set_kernel_times(m->fs, 1);
    memset(buf, 'b', 4096);
    write_all(m->fs, f, 8192, buf, 4096);
    assert_int_equal(mmio_unsynced(m->fs->io), 1);
    uint64_t s0 = engine_syncs(m->fs);
    assert_int_equal(fs_fsync(m->fs, quiet, 0), 0);
    assert_int_equal(engine_syncs(m->fs), s0 + 1);
    assert_int_equal(mmio_unsynced(m->fs->io), 0);
    assert_int_equal(fs_format_metrics(m->fs, text, sizeof(text)) > 0, 1);
    assert_int_equal(metric(text, "fs_fsync_data_syncs"), data0 + 1);

    /* all durable: no sync, for the directory and for the file */
    assert_int_equal(fs_fsync(m->fs, ROOT, 0), 0);
    assert_int_equal(fs_fsync(m->fs, f, 1), 0);
    assert_int_equal(engine_syncs(m->fs), s0 + 1);
    free(buf);
    img_unmount_check(m);
}

static void test_fsync_metrics(void **state)
{
    struct img *m = *state;
    static char text[8192];
    uint64_t ino = mkfile(m->fs, ROOT, "sync");
    write_all(m->fs, ino, 0, "hello", 5);
    assert_true(fs_format_metrics(m->fs, text, sizeof(text)) > 0);
    long long syncs0 = metric(text, "mmio_syncs"), commits0 = metric(text, "jnl_commits");
    assert_true(syncs0 >= 0 && commits0 >= 0);

    assert_int_equal(fs_fsync(m->fs, ino, 0), 0);             /* commits the new file */
    assert_int_equal(fs_fsync(m->fs, ino, 1), 0);             /* nothing new: nothing */
    write_all(m->fs, ino, 0, "HELLO", 5);                    /* overwrite: no new block, */
    assert_int_equal(fs_fsync(m->fs, ino, 1), 0);             /* but logged: a commit */
    assert_int_equal(fs_fsync(m->fs, ROOT, 0), 0);            /* durable: nothing to do */
    assert_int_equal(fs_fsync(m->fs, 999999, 0), -ENOENT);

    int len = fs_format_metrics(m->fs, text, sizeof(text));
    assert_true(len > 0 && (size_t)len < sizeof(text));
    assert_true(metric(text, "mmio_syncs") > syncs0);
    assert_true(metric(text, "jnl_commits") > commits0);
    assert_int_equal(metric(text, "fs_fsyncs"), 4);
    /* 2 commits (or a data sync, if the periodic commit made one of the
     * transactions durable first and data was written since its sync);
     * the fdatasync with nothing new and the directory's fsync are neither
     * (data syncs are counted in test_fsync_dir_covers_all) */
    assert_int_equal(metric(text, "fs_fsync_commits") + metric(text, "fs_fsync_data_syncs"), 2);
    assert_true(metric(text, "fs_writes") >= 2);
    assert_true(metric(text, "fs_blocks_free") > 0);
    /* too small a buffer: the full length is still returned */
    char tiny[16];
    assert_int_equal(fs_format_metrics(m->fs, tiny, sizeof(tiny)), len);
    assert_true(strlen(tiny) < sizeof(tiny));
    img_unmount_check(m);
}

/* A corrupt image whose file extent points at a directory's index leaf
 * (a cross-link fsck would find): the leaf was verified when the directory
 * was read, then a write through the file changes its item count. The
 * write must end the leaf's trust, so that the next lookup checks it whole
 * and refuses it (EUCLEAN), instead of searching 65535 items of a 4 KiB
 * block. */
static void test_write_into_verified_node(void **state)
{
    struct img *m = *state;
    struct fs *fs = m->fs;
    uint64_t d = mkdirectory(fs, ROOT, "d");
    uint64_t a = mkfile(fs, d, "a");
    uint64_t f = mkfile(fs, ROOT, "f");
    static uint8_t block[4096];
    memset(block, 'q', sizeof(block));
    write_all(fs, f, 0, block, sizeof(block));
    assert_int_equal(fs_fsync(fs, f, 0), 0);

    assert_int_equal(jnl_begin(fs->jnl), 0);
    struct mmapfs_disk_inode ddi, fdi;
    assert_int_equal(fs_inode_get(fs, d, &ddi), 0);
    assert_int_equal(fs_inode_get(fs, f, &fdi), 0);
    assert_true(ddi.tree_root != 0);
    assert_true(fdi.flags & MMAPFS_INODE_EXTENTS);
    uint64_t lblk;
    struct mmapfs_disk_extent e;
    mmapfs_inline_extent_get(fdi.inline_area, 0, &lblk, &e);
    assert_int_equal(lblk, 0);
    e.start = ddi.tree_root;                 /* the file's block is d's leaf */
    mmapfs_inline_extent_put(fdi.inline_area, 0, lblk, &e);
    assert_int_equal(fs_inode_put(fs, f, &fdi), 0);
    assert_int_equal(fs_end(fs, 0), 0);

    assert_int_equal(lookup(fs, d, "a"), (int64_t)a);     /* the leaf: verified */
    const uint8_t many[2] = { 0xff, 0xff };
    write_all(fs, f, offsetof(struct mmapfs_disk_btree_header, nitems), many, 2);
    assert_int_equal(lookup(fs, d, "a"), -EUCLEAN);
    m->skip_fsck = 1;                        /* damaged on purpose */
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, img_setup, img_teardown)
    const struct CMUnitTest tests[] = {
        T(test_random_roundtrip),
        T(test_write_into_verified_node),
        T(test_holes),
        T(test_large_offsets),
        T(test_sequential_contiguity),
        T(test_reordered_contiguity),
        T(test_truncate),
        T(test_truncate_edge_untouched),
        T(test_truncate_fragmented),
        T(test_fallocate),
        T(test_fallocate_enospc),
        T(test_seek_data_hole),
        T(test_read_iov),
        T(test_read_iov_pin),
        T(test_fsync_costs),
        T(test_fsync_dir_covers_all),
        T(test_setattr),
        T(test_kernel_times),
        T(test_write_blocks_changed),
        T(test_write_errors),
        T(test_concurrent_writers),
        T(test_fsync_metrics),
        T(test_node_checksum_once),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
