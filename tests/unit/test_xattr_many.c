/*
 * test_xattr_many.c — many extended attributes per inode (src/fs/xattr.c,
 * chained xattr blocks): 2000 attributes set, listed (ERANGE rules), read
 * back, removed, across a remount, with fsck clean after; the incompat
 * feature bit; fsck on broken chains (a bad checksum in the middle, a
 * loop): detected by the mounted fs without hanging, detected by fsck -n,
 * cut by fsck -y after the last good block, clean afterwards.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "fsck/fsck.h"
#include "fs/fs.h"
#include "fs/fs_i.h"

#include "fs_fixture.h"

#define NATTR 2000u

static int img_setup(void **state)
{
    /* without in-inode xattrs: every attribute goes to the chain */
    static const struct img_config c = { .name = "xattr-many", .bytes = 64 * MiB, .mount = 1,
                                         .no_inode_xattr = 1,
                                         .fsck_on_remount = 1, .check_at_teardown = 1 };
    return img_setup_config(state, &c);
}

/* Name and value of attribute i: values of 1..64 bytes. */
static void attr_name(char *name, size_t len, unsigned i)
{
    snprintf(name, len, "user.attribute.%05u", i);
}

static size_t attr_value(char *val, unsigned i)
{
    size_t n = 1 + i % 64;
    for (size_t k = 0; k < n; k++)
        val[k] = (char)('A' + (i + k) % 26);
    return n;
}

static void set_range(struct fs *fs, uint64_t ino, unsigned from, unsigned to, unsigned step)
{
    char name[64], val[64];
    for (unsigned i = from; i < to; i += step) {
        attr_name(name, sizeof(name), i);
        size_t n = attr_value(val, i);
        int err = fs_setxattr(fs, ino, name, val, n, XATTR_CREATE);
        if (err)
            fail_msg("set %s: %s", name, strerror(-err));
    }
}

/* Every attribute i (from, to, step) reads back, every other one is absent. */
static void check_present(struct fs *fs, uint64_t ino, unsigned n, unsigned step, unsigned rem)
{
    char name[64], val[64], buf[128];
    for (unsigned i = 0; i < n; i++) {
        attr_name(name, sizeof(name), i);
        int r = fs_getxattr(fs, ino, name, buf, sizeof(buf));
        if (i % step == rem) {
            size_t len = attr_value(val, i);
            assert_int_equal(r, (int)len);
            assert_memory_equal(buf, val, len);
        } else {
            assert_int_equal(r, -ENODATA);
        }
    }
}

/* The list holds exactly the expected names, each once. */
static void check_list(struct fs *fs, uint64_t ino, unsigned n, unsigned step, unsigned rem)
{
    int total = fs_listxattr(fs, ino, NULL, 0);
    assert_true(total >= 0);
    char *buf = malloc((size_t)total + 1);
    assert_non_null(buf);
    if (total > 0)
        assert_int_equal(fs_listxattr(fs, ino, buf, (size_t)total - 1), -ERANGE);
    assert_int_equal(fs_listxattr(fs, ino, buf, (size_t)total), total);
    uint8_t *seen = calloc(n, 1);
    assert_non_null(seen);
    unsigned count = 0;
    for (char *p = buf; p < buf + total; p += strlen(p) + 1) {
        unsigned i;
        assert_int_equal(sscanf(p, "user.attribute.%05u", &i), 1);
        assert_true(i < n && i % step == rem);
        assert_int_equal(seen[i], 0);
        seen[i] = 1;
        count++;
    }
    unsigned want = 0;
    for (unsigned i = 0; i < n; i++)
        want += i % step == rem;
    assert_int_equal(count, want);
    free(seen);
    free(buf);
}

/* The blocks of inode ino's xattr chain (internal view); returns how many. */
static unsigned chain_blocks(struct fs *fs, uint64_t ino, uint64_t *out, unsigned max)
{
    struct mmapfs_disk_inode di;
    unsigned n = 0;
    jnl_lock(fs->jnl);
    assert_int_equal(fs_inode_get(fs, ino, &di), 0);
    for (uint64_t b = di.xattr_block; b && n < max; n++) {
        out[n] = b;
        const struct mmapfs_disk_xattr_header *h = jnl_read(fs->jnl, b);
        assert_non_null(h);
        b = h->next;
    }
    jnl_unlock(fs->jnl);
    return n;
}

static uint32_t incompat_of(struct fs *fs)
{
    jnl_lock(fs->jnl);
    uint32_t f = fs_super_read(fs)->feature_incompat;
    jnl_unlock(fs->jnl);
    return f;
}

/* Rewrites block blk of the (unmounted) image with edit applied and the
 * xattr checksum recomputed unless keep_sum. */
static void edit_block(struct img *m, uint64_t blk, uint64_t next, int bad_sum)
{
    uint8_t b[MMAPFS_BLOCK_SIZE];
    int fd = open(m->path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, b, sizeof(b), (off_t)(blk * MMAPFS_BLOCK_SIZE)), sizeof(b));
    struct mmapfs_disk_xattr_header *h = (void *)b;
    if (next != UINT64_MAX)
        h->next = next;
    h->checksum = bt_block_checksum(blk, b) ^ (bad_sum ? 1u : 0u);
    assert_int_equal(pwrite(fd, b, sizeof(b), (off_t)(blk * MMAPFS_BLOCK_SIZE)), sizeof(b));
    close(fd);
}

static int fsck_mode(struct img *m, int mode)
{
    struct fs_check_options co = { .mode = mode, .force = 1 };
    return fs_check(m->path, &co, stderr);
}

/* fsck -n finds errors, -y corrects them all, a second -n finds none. */
static void fsck_finds_and_repairs(struct img *m)
{
    assert_int_equal(fsck_mode(m, FS_CHECK_NO), FSCK_EXIT_UNCORRECTED);
    assert_int_equal(fsck_mode(m, FS_CHECK_YES) & ~FSCK_EXIT_CORRECTED, 0);
    assert_int_equal(fsck_mode(m, FS_CHECK_NO), FSCK_EXIT_OK);
}

/* ==== tests =================================================================== */

/* 2000 attributes: set, listed, read, half removed, remount, all removed. */
static void test_two_thousand(void **state)
{
    struct img *m = *state;
    uint64_t ino = mkfile(m->fs, ROOT, "many");
    struct timespec t0, t1;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    set_range(m->fs, ino, 0, NATTR, 1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    uint64_t chain[64];
    unsigned nblocks = chain_blocks(m->fs, ino, chain, 64);
    printf("test_two_thousand: %u attributes in %u xattr blocks, set in %.1f ms\n", NATTR,
           nblocks, (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    assert_true(nblocks > 10);
    assert_int_equal(attr(m->fs, ino).blocks512, nblocks * 8ull);
    assert_int_equal(incompat_of(m->fs) & MMAPFS_FEATURE_INCOMPAT_XATTR_CHAIN,
                     MMAPFS_FEATURE_INCOMPAT_XATTR_CHAIN);
    check_present(m->fs, ino, NATTR, 1, 0);
    check_list(m->fs, ino, NATTR, 1, 0);
    /* a second set of an existing name: -EEXIST with XATTR_CREATE */
    assert_int_equal(fs_setxattr(m->fs, ino, "user.attribute.00007", "x", 1, XATTR_CREATE),
                     -EEXIST);

    img_remount(m);                           /* with an fsck in between */
    check_present(m->fs, ino, NATTR, 1, 0);
    /* remove the odd ones, replace a few even ones by longer values */
    char name[64];
    for (unsigned i = 1; i < NATTR; i += 2) {
        attr_name(name, sizeof(name), i);
        assert_int_equal(fs_removexattr(m->fs, ino, name), 0);
    }
    check_present(m->fs, ino, NATTR, 2, 0);
    check_list(m->fs, ino, NATTR, 2, 0);
    img_remount(m);
    check_list(m->fs, ino, NATTR, 2, 0);
    for (unsigned i = 0; i < NATTR; i += 2) {
        attr_name(name, sizeof(name), i);
        assert_int_equal(fs_removexattr(m->fs, ino, name), 0);
    }
    assert_int_equal(fs_listxattr(m->fs, ino, NULL, 0), 0);
    assert_int_equal(chain_blocks(m->fs, ino, chain, 64), 0);
    assert_int_equal(attr(m->fs, ino).blocks512, 0);
    /* and the inode's chain is freed with the inode */
    set_range(m->fs, ino, 0, 500, 1);
    assert_int_equal(fs_unlink(m->fs, ROOT, "many"), 0);
    img_remount(m);
}

/* A bad checksum in the middle of a chain: the mounted fs reports
 * corruption; fsck -n finds it, -y cuts the chain after the last good
 * block, and the attributes there stay. */
static void test_broken_chain(void **state)
{
    struct img *m = *state;
    m->skip_fsck = 1;
    uint64_t ino = mkfile(m->fs, ROOT, "b");
    set_range(m->fs, ino, 0, 400, 1);
    uint64_t chain[16];
    unsigned n = chain_blocks(m->fs, ino, chain, 16);
    assert_true(n >= 3);
    img_unmount(m);
    assert_int_equal(fsck_mode(m, FS_CHECK_NO), FSCK_EXIT_OK);
    edit_block(m, chain[1], UINT64_MAX, 1);

    img_mount(m);
    assert_int_equal(fs_listxattr(m->fs, ino, NULL, 0), -EUCLEAN);
    img_unmount(m);
    fsck_finds_and_repairs(m);
    img_mount(m);
    uint64_t after[16];
    assert_int_equal(chain_blocks(m->fs, ino, after, 16), 1);
    assert_int_equal(after[0], chain[0]);
    int total = fs_listxattr(m->fs, ino, NULL, 0);
    assert_true(total > 0);
    assert_int_equal(attr(m->fs, ino).blocks512, 8);
    /* the attributes of the head block are intact, new ones can be set */
    set_range(m->fs, ino, 1000, 1400, 1);
    check_present(m->fs, ino, 0, 1, 0);
    img_unmount(m);
    assert_int_equal(fsck_mode(m, FS_CHECK_NO), FSCK_EXIT_OK);
    m->skip_fsck = 0;
}

/* A loop in the chain: the mounted fs stops with corruption instead of
 * walking forever; fsck finds it and cuts the loop. */
static void test_chain_loop(void **state)
{
    struct img *m = *state;
    m->skip_fsck = 1;
    uint64_t ino = mkfile(m->fs, ROOT, "l");
    set_range(m->fs, ino, 0, 400, 1);
    uint64_t chain[16];
    unsigned n = chain_blocks(m->fs, ino, chain, 16);
    assert_true(n >= 3);
    img_unmount(m);
    edit_block(m, chain[n - 1], chain[0], 0);           /* last -> first */

    img_mount(m);
    assert_int_equal(fs_getxattr(m->fs, ino, "user.nothere", NULL, 0), -EUCLEAN);
    img_unmount(m);
    fsck_finds_and_repairs(m);
    img_mount(m);
    /* all the blocks were good: the loop is cut, nothing is lost */
    uint64_t after[16];
    assert_int_equal(chain_blocks(m->fs, ino, after, 16), n);
    check_present(m->fs, ino, 400, 1, 0);
    check_list(m->fs, ino, 400, 1, 0);
    img_unmount(m);
    m->skip_fsck = 0;
}

/* A next pointer in an image without the chain feature is corruption. */
static void test_next_without_feature(void **state)
{
    struct img *m = *state;
    m->skip_fsck = 1;
    uint64_t a = mkfile(m->fs, ROOT, "a");
    uint64_t b = mkfile(m->fs, ROOT, "b");
    assert_int_equal(fs_setxattr(m->fs, a, "user.a", "1", 1, 0), 0);
    assert_int_equal(fs_setxattr(m->fs, b, "user.b", "2", 1, 0), 0);
    uint64_t ba, bb;
    assert_int_equal(chain_blocks(m->fs, a, &ba, 1), 1);
    assert_int_equal(chain_blocks(m->fs, b, &bb, 1), 1);
    assert_int_equal(incompat_of(m->fs) & MMAPFS_FEATURE_INCOMPAT_XATTR_CHAIN, 0);
    img_unmount(m);
    edit_block(m, ba, bb, 0);
    fsck_finds_and_repairs(m);
    img_mount(m);
    char buf[8];
    assert_int_equal(fs_getxattr(m->fs, b, "user.b", buf, sizeof(buf)), 1);
    img_unmount(m);
    m->skip_fsck = 0;
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, img_setup, img_teardown)
    const struct CMUnitTest tests[] = {
        T(test_two_thousand),
        T(test_broken_chain),
        T(test_chain_loop),
        T(test_next_without_feature),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
