/*
 * test_shift.c — FALLOC_FL_COLLAPSE_RANGE and FALLOC_FL_INSERT_RANGE in the
 * fs core (src/fs/file_shift.c): at the start, middle and end of a file,
 * over holes and unwritten extents, over many extents (many tree leaves,
 * several journal steps), and a random sequence; the file content and
 * size are compared against an in-memory model after each operation.
 * Errno cases as ext4 on Linux 6.x. Every test ends with a remount and an fsck.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "fsck/fsck.h"
#include "fs/fs.h"
#include "fs/fs_i.h"

#include "fs_fixture.h"

#define BLK 4096ull

static int img_setup(void **state)
{
    static const struct img_config c = { .name = "shift", .bytes = 512 * MiB, .mount = 1,
                                         .fsck_on_remount = 1, .check_at_teardown = 1 };
    return img_setup_config(state, &c);
}

/* ==== the model =============================================================== */

/* What the file must read as. */
struct model {
    uint8_t *data;
    uint64_t size, cap;
};

static void model_init(struct model *md, uint64_t cap)
{
    md->data = calloc(1, cap);
    assert_non_null(md->data);
    md->size = 0;
    md->cap = cap;
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Writes len pattern bytes at off to the file and the model. */
static void put(struct fs *fs, uint64_t ino, struct model *md, uint64_t off, uint64_t len,
                uint64_t seed)
{
    assert_true(off + len <= md->cap);
    for (uint64_t i = 0; i < len; i++)
        md->data[off + i] = (uint8_t)(rng_next(&seed) >> 56) | 1;    /* never 0 */
    ssize_t n = fs_write(fs, ino, off, md->data + off, len);
    assert_int_equal(n, (ssize_t)len);
    if (off + len > md->size)
        md->size = off + len;
}

static void model_punch(struct model *md, uint64_t off, uint64_t len)
{
    memset(md->data + off, 0, len);
}

static void model_collapse(struct model *md, uint64_t off, uint64_t len)
{
    memmove(md->data + off, md->data + off + len, md->size - off - len);
    memset(md->data + md->size - len, 0, len);
    md->size -= len;
}

static void model_insert(struct model *md, uint64_t off, uint64_t len)
{
    assert_true(md->size + len <= md->cap);
    memmove(md->data + off + len, md->data + off, md->size - off);
    memset(md->data + off, 0, len);
    md->size += len;
}

/* The file must read as the model: size, then every byte. */
static void check_file(struct fs *fs, uint64_t ino, const struct model *md)
{
    assert_int_equal(attr(fs, ino).size, md->size);
    uint8_t *buf = malloc(md->size + 1);
    assert_non_null(buf);
    ssize_t n = fs_read(fs, ino, 0, buf, md->size + 1);
    assert_int_equal(n, (ssize_t)md->size);
    for (uint64_t i = 0; i < md->size; i++)
        if (buf[i] != md->data[i])
            fail_msg("byte %llu: %#x, expected %#x", (unsigned long long)i, buf[i],
                     md->data[i]);
    free(buf);
}

static void do_collapse(struct fs *fs, uint64_t ino, struct model *md, uint64_t off,
                        uint64_t len)
{
    assert_int_equal(fs_fallocate(fs, ino, FALLOC_FL_COLLAPSE_RANGE, off, len), 0);
    model_collapse(md, off, len);
    check_file(fs, ino, md);
}

static void do_insert(struct fs *fs, uint64_t ino, struct model *md, uint64_t off,
                      uint64_t len)
{
    assert_int_equal(fs_fallocate(fs, ino, FALLOC_FL_INSERT_RANGE, off, len), 0);
    model_insert(md, off, len);
    check_file(fs, ino, md);
}

static uint64_t free_blocks_now(struct fs *fs)
{
    struct statvfs sv;
    assert_int_equal(fs_statfs(fs, &sv), 0);
    return sv.f_bfree;
}

/* ==== tests =================================================================== */

/* Collapse at the start, middle and end; the removed blocks are freed. */
static void test_collapse_positions(void **state)
{
    struct img *m = *state;
    struct model md;
    uint64_t ino = mkfile(m->fs, ROOT, "c");
    model_init(&md, 4 * MiB);
    put(m->fs, ino, &md, 0, 64 * BLK + 123, 1);       /* partial last block */
    check_file(m->fs, ino, &md);

    uint64_t free0 = free_blocks_now(m->fs);
    do_collapse(m->fs, ino, &md, 0, 2 * BLK);         /* start */
    do_collapse(m->fs, ino, &md, 10 * BLK, 5 * BLK);  /* middle */
    /* end: the last full block before the partial one */
    do_collapse(m->fs, ino, &md, (md.size / BLK - 1) * BLK, BLK);
    uint64_t blocks = attr(m->fs, ino).blocks512 / 8;
    assert_true(blocks >= 65 - 8);
    assert_true(free_blocks_now(m->fs) >= free0 + 8);  /* 2 + 5 + 1 blocks freed */
    /* the partial last block moved with its tail */
    assert_int_equal(md.size, 56 * BLK + 123);

    img_remount(m);
    check_file(m->fs, ino, &md);
    free(md.data);
}

/* Insert at the start, middle and last block; the new range reads zeros
 * and is a hole. */
static void test_insert_positions(void **state)
{
    struct img *m = *state;
    struct model md;
    uint64_t ino = mkfile(m->fs, ROOT, "i");
    model_init(&md, 4 * MiB);
    put(m->fs, ino, &md, 0, 40 * BLK + 7, 2);

    do_insert(m->fs, ino, &md, 0, 3 * BLK);
    do_insert(m->fs, ino, &md, 20 * BLK, BLK);
    do_insert(m->fs, ino, &md, (md.size / BLK) * BLK, 2 * BLK);   /* in the last block */
    /* inside one extent: the extent is split, the new range is a hole */
    assert_int_equal(fs_lseek(m->fs, ino, 20 * BLK, SEEK_HOLE), 20 * BLK);
    assert_int_equal(fs_lseek(m->fs, ino, 20 * BLK, SEEK_DATA), 21 * BLK);
    assert_int_equal(fs_lseek(m->fs, ino, 0, SEEK_DATA), 3 * BLK);

    img_remount(m);
    check_file(m->fs, ino, &md);
    free(md.data);
}

/* Holes and unwritten extents move with the rest and stay what they were. */
static void test_holes_unwritten(void **state)
{
    struct img *m = *state;
    struct model md;
    uint64_t ino = mkfile(m->fs, ROOT, "h");
    model_init(&md, 8 * MiB);
    put(m->fs, ino, &md, 0, 100 * BLK, 3);
    /* holes at 10..19 and 50..51, unwritten at 30..39 */
    assert_int_equal(fs_fallocate(m->fs, ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                  10 * BLK, 10 * BLK), 0);
    model_punch(&md, 10 * BLK, 10 * BLK);
    assert_int_equal(fs_fallocate(m->fs, ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                  50 * BLK, 2 * BLK), 0);
    model_punch(&md, 50 * BLK, 2 * BLK);
    assert_int_equal(fs_fallocate(m->fs, ino, FALLOC_FL_ZERO_RANGE, 30 * BLK, 10 * BLK), 0);
    model_punch(&md, 30 * BLK, 10 * BLK);
    check_file(m->fs, ino, &md);

    /* a collapse over part of a hole and part of data */
    do_collapse(m->fs, ino, &md, 15 * BLK, 10 * BLK);
    /* the unwritten range is now at 20..29: still unwritten (SEEK_DATA skips it) */
    assert_int_equal(fs_lseek(m->fs, ino, 20 * BLK, SEEK_DATA), 30 * BLK);
    /* an insert splitting the unwritten extent */
    do_insert(m->fs, ino, &md, 25 * BLK, 4 * BLK);
    assert_int_equal(fs_lseek(m->fs, ino, 20 * BLK, SEEK_DATA), 34 * BLK);
    /* collapse a range that is all hole */
    do_collapse(m->fs, ino, &md, 10 * BLK, 5 * BLK);
    /* writing into the inserted hole and an unwritten part works */
    put(m->fs, ino, &md, 20 * BLK + 100, 2 * BLK, 4);
    check_file(m->fs, ino, &md);

    /* a sparse file whose every block is a hole */
    uint64_t sp = mkfile(m->fs, ROOT, "sparse");
    struct model ms;
    model_init(&ms, MiB);
    struct fs_stat st;
    assert_int_equal(fs_setattr(m->fs, sp, &(struct fs_setattr){ .size = 64 * BLK },
                                FS_SET_SIZE, &st), 0);
    ms.size = 64 * BLK;
    do_collapse(m->fs, sp, &ms, 0, 8 * BLK);
    do_insert(m->fs, sp, &ms, 0, 8 * BLK);

    img_remount(m);
    check_file(m->fs, ino, &md);
    check_file(m->fs, sp, &ms);
    free(md.data);
    free(ms.data);
}

/* Many single-block extents: far beyond one tree leaf, and beyond the
 * journal step budget (the shift then runs in several steps). */
static void test_many_extents(void **state)
{
    struct img *m = *state;
    struct model md;
    const uint64_t nblocks = 40000;            /* 20000 extents */
    uint64_t ino = mkfile(m->fs, ROOT, "many");
    model_init(&md, (nblocks + 64) * BLK);
    for (uint64_t b = 0; b < nblocks; b += 2)
        put(m->fs, ino, &md, b * BLK, BLK, b + 1);
    check_file(m->fs, ino, &md);

    do_collapse(m->fs, ino, &md, 0, BLK);                  /* every extent moves */
    do_insert(m->fs, ino, &md, BLK, BLK);                  /* and back, almost */
    do_collapse(m->fs, ino, &md, 20000 * BLK, 3 * BLK);    /* middle, odd length */
    do_insert(m->fs, ino, &md, 7 * BLK, 30 * BLK);
    img_remount(m);
    check_file(m->fs, ino, &md);
    free(md.data);
}

/* A random sequence of writes, punches, preallocations, collapses and
 * inserts against the model. */
static void test_random(void **state)
{
    struct img *m = *state;
    struct model md;
    uint64_t seed = (uint64_t)time(NULL);
    const char *env = getenv("TEST_SEED");
    if (env)
        seed = strtoull(env, NULL, 0);
    printf("test_random: TEST_SEED=%llu\n", (unsigned long long)seed);
    uint64_t s = seed | 1;
    uint64_t ino = mkfile(m->fs, ROOT, "rand");
    const uint64_t cap_blocks = 512;
    model_init(&md, (cap_blocks + 64) * BLK);
    put(m->fs, ino, &md, 0, 64 * BLK, 9);
    for (int i = 0; i < 300; i++) {
        uint64_t r = rng_next(&s) % 5;
        uint64_t sb = md.size / BLK;
        uint64_t off = sb ? (rng_next(&s) % sb) * BLK : 0;
        uint64_t len = (1 + rng_next(&s) % 16) * BLK;
        if (r == 0 && md.size < cap_blocks * BLK / 2) {
            uint64_t o = rng_next(&s) % (cap_blocks * BLK / 2);
            put(m->fs, ino, &md, o, 1 + rng_next(&s) % (3 * BLK), i);
        } else if (r == 1 && off + len <= md.size) {
            assert_int_equal(fs_fallocate(m->fs, ino, FALLOC_FL_PUNCH_HOLE |
                                          FALLOC_FL_KEEP_SIZE, off, len), 0);
            model_punch(&md, off, len);
        } else if (r == 2 && off + len <= md.size) {
            assert_int_equal(fs_fallocate(m->fs, ino, FALLOC_FL_ZERO_RANGE |
                                          FALLOC_FL_KEEP_SIZE, off, len), 0);
            model_punch(&md, off, len);
        } else if (r == 3 && off + len < md.size) {
            do_collapse(m->fs, ino, &md, off, len);
        } else if (r == 4 && off < md.size && md.size + len <= cap_blocks * BLK) {
            do_insert(m->fs, ino, &md, off, len);
        }
    }
    check_file(m->fs, ino, &md);
    img_remount(m);
    check_file(m->fs, ino, &md);
    free(md.data);
}

/* The errors of ext4 (and of the VFS before it). */
static void test_errors(void **state)
{
    struct img *m = *state;
    struct model md;
    uint64_t ino = mkfile(m->fs, ROOT, "e");
    model_init(&md, MiB);
    put(m->fs, ino, &md, 0, 16 * BLK, 5);
    const int C = FALLOC_FL_COLLAPSE_RANGE, I = FALLOC_FL_INSERT_RANGE;

    /* only alone (Linux 6.x: EOPNOTSUPP, as ext4 there) */
    assert_int_equal(fs_fallocate(m->fs, ino, C | FALLOC_FL_KEEP_SIZE, 0, BLK), -EOPNOTSUPP);
    assert_int_equal(fs_fallocate(m->fs, ino, I | FALLOC_FL_KEEP_SIZE, 0, BLK), -EOPNOTSUPP);
    assert_int_equal(fs_fallocate(m->fs, ino, C | I, 0, BLK), -EOPNOTSUPP);
    assert_int_equal(fs_fallocate(m->fs, ino, C | FALLOC_FL_PUNCH_HOLE, 0, BLK), -EOPNOTSUPP);
    /* length 0, unaligned offset or length */
    assert_int_equal(fs_fallocate(m->fs, ino, C, 0, 0), -EINVAL);
    assert_int_equal(fs_fallocate(m->fs, ino, C, 1, BLK), -EINVAL);
    assert_int_equal(fs_fallocate(m->fs, ino, C, 0, BLK + 1), -EINVAL);
    assert_int_equal(fs_fallocate(m->fs, ino, I, 512, BLK), -EINVAL);
    assert_int_equal(fs_fallocate(m->fs, ino, I, 0, 100), -EINVAL);
    /* collapse reaching or passing the end */
    assert_int_equal(fs_fallocate(m->fs, ino, C, 0, 16 * BLK), -EINVAL);
    assert_int_equal(fs_fallocate(m->fs, ino, C, 15 * BLK, BLK), -EINVAL);
    assert_int_equal(fs_fallocate(m->fs, ino, C, 8 * BLK, 9 * BLK), -EINVAL);
    assert_int_equal(fs_fallocate(m->fs, ino, C, 32 * BLK, BLK), -EINVAL);
    /* insert at or past the end */
    assert_int_equal(fs_fallocate(m->fs, ino, I, 16 * BLK, BLK), -EINVAL);
    assert_int_equal(fs_fallocate(m->fs, ino, I, 20 * BLK, BLK), -EINVAL);
    /* past the maximum file size */
    assert_int_equal(fs_fallocate(m->fs, ino, I, 0, MMAPFS_MAX_FILE_SIZE), -EFBIG);
    assert_int_equal(fs_fallocate(m->fs, ino, I, 0, MMAPFS_MAX_FILE_SIZE - 8 * BLK), -EFBIG);
    assert_int_equal(fs_fallocate(m->fs, ino, C, MMAPFS_MAX_FILE_SIZE, BLK), -EFBIG);
    /* an unwritten extent near the maximum (past EOF): insert would push it out */
    assert_int_equal(fs_fallocate(m->fs, ino, FALLOC_FL_KEEP_SIZE,
                                  MMAPFS_MAX_FILE_SIZE - 2 * BLK, BLK), 0);
    assert_int_equal(fs_fallocate(m->fs, ino, I, 0, 2 * BLK), -EFBIG);
    assert_int_equal(fs_fallocate(m->fs, ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                  MMAPFS_MAX_FILE_SIZE - 2 * BLK, BLK), 0);
    /* other file types */
    uint64_t dir = mkdirectory(m->fs, ROOT, "d");
    assert_int_equal(fs_fallocate(m->fs, dir, C, 0, BLK), -EISDIR);
    assert_int_equal(fs_fallocate(m->fs, dir, I, 0, BLK), -EISDIR);
    struct fs_stat st;
    assert_int_equal(fs_mknod(m->fs, ROOT, "fifo", S_IFIFO | 0644, 0, &cred, &st), 0);
    fs_forget(m->fs, st.ino, 1);
    assert_int_equal(fs_fallocate(m->fs, st.ino, C, 0, BLK), -ENODEV);
    /* nothing changed by the refusals */
    check_file(m->fs, ino, &md);
    img_remount(m);
    check_file(m->fs, ino, &md);
    free(md.data);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, img_setup, img_teardown)
    const struct CMUnitTest tests[] = {
        T(test_collapse_positions),
        T(test_insert_positions),
        T(test_holes_unwritten),
        T(test_many_extents),
        T(test_random),
        T(test_errors),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
