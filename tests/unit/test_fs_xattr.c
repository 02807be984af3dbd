/*
 * test_fs_xattr.c — extended attributes (src/fs/xattr.c): set, get, list,
 * remove; XATTR_CREATE / XATTR_REPLACE; size conventions (0 asks the
 * length, -ERANGE when too small); -ENODATA; name and value limits; a full
 * block chaining a second one, reuse of room, empty blocks unlinked; the
 * block count of the inode;
 * ctime (not moved by setting the value an attribute already has);
 * persistence across fs_unmount/fs_mount; the block freed with the
 * inode or when the last attribute goes; a corrupt block detected, and a
 * name with a NUL byte behind a good checksum (the mount and fsck).
 * Images are sparse mkstemp files in /tmp, formatted without in-inode
 * xattrs (incompat 0x8), so that every attribute lives in the blocks.
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
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "fsck/fsck.h"
#include "fs/fs.h"
#include "fs/fs_i.h"

#include "fs_fixture.h"

/* ==== helpers ================================================================= */

/* A formatted, mounted 64 MiB sparse image, checked by the teardown. */
static int img_setup(void **state)
{
    /* the block format: in-inode xattrs (test_xattr_inode.c) are off */
    static const struct img_config c = { .name = "xattr", .bytes = 64 * MiB, .mount = 1,
                                         .no_inode_xattr = 1,
                                         .check_at_teardown = 1 };
    return img_setup_config(state, &c);
}

/* The inode's xattr block number (internal view). */
static uint64_t xattr_block_of(struct fs *fs, uint64_t ino)
{
    struct mmapfs_disk_inode di;
    jnl_lock(fs->jnl);
    assert_int_equal(fs_inode_get(fs, ino, &di), 0);
    jnl_unlock(fs->jnl);
    return di.xattr_block;
}

/* Checks that the list of names is exactly 'expect' (NUL-separated, any
 * order), count names. */
static void assert_list(struct fs *fs, uint64_t ino, const char *const *expect, unsigned count)
{
    char buf[4096];
    size_t total = 0;
    for (unsigned i = 0; i < count; i++)
        total += strlen(expect[i]) + 1;
    assert_int_equal(fs_listxattr(fs, ino, NULL, 0), (int)total);
    int n = fs_listxattr(fs, ino, buf, sizeof(buf));
    assert_int_equal(n, (int)total);
    unsigned found = 0;
    for (int off = 0; off < n; off += (int)strlen(buf + off) + 1) {
        unsigned i;
        for (i = 0; i < count; i++)
            if (!strcmp(buf + off, expect[i]))
                break;
        if (i == count)
            fail_msg("unexpected xattr name %s", buf + off);
        found++;
    }
    assert_int_equal(found, count);
}

/* ==== tests ===================================================================== */

static void test_set_get_list_remove(void **state)
{
    struct img *m = *state;
    char buf[256];
    uint64_t f = mkfile(m->fs, ROOT, "f");
    uint64_t blocks0 = attr(m->fs, f).blocks512;

    assert_int_equal(fs_listxattr(m->fs, f, NULL, 0), 0);
    assert_int_equal(fs_getxattr(m->fs, f, "user.a", buf, sizeof(buf)), -ENODATA);
    assert_int_equal(fs_removexattr(m->fs, f, "user.a"), -ENODATA);

    assert_int_equal(fs_setxattr(m->fs, f, "user.a", "alpha", 5, 0), 0);
    assert_int_equal(fs_setxattr(m->fs, f, "trusted.b", "\0bin\0", 5, 0), 0);
    assert_int_equal(fs_setxattr(m->fs, f, "security.selinux", "ctx", 3, 0), 0);
    assert_int_equal(fs_setxattr(m->fs, f, "user.empty", "", 0, 0), 0);
    assert_int_equal(attr(m->fs, f).blocks512, blocks0 + 8);   /* one 4 KiB block */
    assert_true(xattr_block_of(m->fs, f) != 0);

    assert_int_equal(fs_getxattr(m->fs, f, "user.a", NULL, 0), 5);   /* size query */
    assert_int_equal(fs_getxattr(m->fs, f, "user.a", buf, sizeof(buf)), 5);
    assert_memory_equal(buf, "alpha", 5);
    assert_int_equal(fs_getxattr(m->fs, f, "user.a", buf, 4), -ERANGE);
    assert_int_equal(fs_getxattr(m->fs, f, "trusted.b", buf, 5), 5);
    assert_memory_equal(buf, "\0bin\0", 5);
    assert_int_equal(fs_getxattr(m->fs, f, "user.empty", buf, sizeof(buf)), 0);
    assert_int_equal(fs_getxattr(m->fs, f, "user.A", buf, sizeof(buf)), -ENODATA);
    assert_int_equal(fs_getxattr(m->fs, f, "user.", buf, sizeof(buf)), -ENODATA);

    const char *names[] = { "user.a", "trusted.b", "security.selinux", "user.empty" };
    assert_list(m->fs, f, names, 4);
    char small[8];
    assert_int_equal(fs_listxattr(m->fs, f, small, sizeof(small)), -ERANGE);

    /* overwrite with a longer and then a shorter value */
    assert_int_equal(fs_setxattr(m->fs, f, "user.a", "a much longer value", 19, 0), 0);
    assert_int_equal(fs_getxattr(m->fs, f, "user.a", buf, sizeof(buf)), 19);
    assert_memory_equal(buf, "a much longer value", 19);
    assert_int_equal(fs_setxattr(m->fs, f, "user.a", "s", 1, 0), 0);
    assert_int_equal(fs_getxattr(m->fs, f, "user.a", buf, sizeof(buf)), 1);
    assert_list(m->fs, f, names, 4);

    assert_int_equal(fs_removexattr(m->fs, f, "trusted.b"), 0);
    assert_int_equal(fs_getxattr(m->fs, f, "trusted.b", buf, sizeof(buf)), -ENODATA);
    assert_int_equal(fs_removexattr(m->fs, f, "trusted.b"), -ENODATA);
    const char *names2[] = { "user.a", "security.selinux", "user.empty" };
    assert_list(m->fs, f, names2, 3);

    /* removing the last one frees the block */
    assert_int_equal(fs_removexattr(m->fs, f, "user.a"), 0);
    assert_int_equal(fs_removexattr(m->fs, f, "security.selinux"), 0);
    assert_int_equal(fs_removexattr(m->fs, f, "user.empty"), 0);
    assert_int_equal(fs_listxattr(m->fs, f, NULL, 0), 0);
    assert_int_equal(xattr_block_of(m->fs, f), 0);
    assert_int_equal(attr(m->fs, f).blocks512, blocks0);

    /* missing inode */
    assert_int_equal(fs_setxattr(m->fs, 999999, "user.a", "x", 1, 0), -ENOENT);
    assert_int_equal(fs_getxattr(m->fs, 999999, "user.a", buf, 1), -ENOENT);
}

static void test_flags_and_limits(void **state)
{
    struct img *m = *state;
    char buf[64];
    char name255[260], name256[260];
    uint64_t f = mkfile(m->fs, ROOT, "f");

    assert_int_equal(fs_setxattr(m->fs, f, "user.x", "1", 1, XATTR_REPLACE), -ENODATA);
    assert_int_equal(fs_setxattr(m->fs, f, "user.x", "1", 1, XATTR_CREATE), 0);
    assert_int_equal(fs_setxattr(m->fs, f, "user.x", "2", 1, XATTR_CREATE), -EEXIST);
    assert_int_equal(fs_setxattr(m->fs, f, "user.x", "3", 1, XATTR_REPLACE), 0);
    assert_int_equal(fs_getxattr(m->fs, f, "user.x", buf, sizeof(buf)), 1);
    assert_int_equal(buf[0], '3');
    assert_int_equal(fs_setxattr(m->fs, f, "user.x", "4", 1, 0x100), -EINVAL);

    /* names: 1..255 bytes */
    memcpy(name255, "user.", 5);
    memset(name255 + 5, 'n', 250);
    name255[255] = 0;
    memcpy(name256, name255, 255);
    name256[255] = 'n';
    name256[256] = 0;
    assert_int_equal(fs_setxattr(m->fs, f, name255, "v", 1, 0), 0);
    assert_int_equal(fs_getxattr(m->fs, f, name255, buf, sizeof(buf)), 1);
    assert_int_equal(fs_setxattr(m->fs, f, name256, "v", 1, 0), -ERANGE);
    assert_int_equal(fs_getxattr(m->fs, f, name256, buf, sizeof(buf)), -ERANGE);
    assert_int_equal(fs_removexattr(m->fs, f, name256), -ERANGE);
    assert_int_equal(fs_setxattr(m->fs, f, "", "v", 1, 0), -ERANGE);

    /* values: beyond 64 KiB -E2BIG, beyond the block -ENOSPC */
    char *big = calloc(1, 70000);
    assert_int_equal(fs_setxattr(m->fs, f, "user.big", big, 65537, 0), -E2BIG);
    assert_int_equal(fs_setxattr(m->fs, f, "user.big", big, 65536, 0), -ENOSPC);
    assert_int_equal(fs_setxattr(m->fs, f, "user.big", big, 4096, 0), -ENOSPC);
    free(big);
    /* failures changed nothing */
    assert_int_equal(fs_getxattr(m->fs, f, "user.x", buf, sizeof(buf)), 1);
    assert_int_equal(fs_getxattr(m->fs, f, "user.big", buf, sizeof(buf)), -ENODATA);
}

/* The superblock's incompat features. */
static uint32_t incompat_of(struct fs *fs)
{
    jnl_lock(fs->jnl);
    uint32_t f = fs_super_read(fs)->feature_incompat;
    jnl_unlock(fs->jnl);
    return f;
}

/* Filling the first block chains a second one (and sets the incompat
 * feature); nothing is lost; a value too large for any block is -ENOSPC;
 * a replacement may reuse the room of the value it replaces; the block
 * that loses its last entry is unlinked and freed. */
static void test_full_block(void **state)
{
    struct img *m = *state;
    char name[32], val[1000], buf[1000];
    uint64_t f = mkfile(m->fs, ROOT, "f");

    assert_int_equal(incompat_of(m->fs) & MMAPFS_FEATURE_INCOMPAT_XATTR_CHAIN, 0);
    for (unsigned n = 0; n < 4; n++) {   /* 4 x (4 + 8 + 1000) of 4064 bytes */
        snprintf(name, sizeof(name), "user.k%u", n);
        memset(val, 'a' + n % 26, sizeof(val));
        assert_int_equal(fs_setxattr(m->fs, f, name, val, sizeof(val), 0), 0);
    }
    uint64_t first = xattr_block_of(m->fs, f);
    assert_int_equal(attr(m->fs, f).blocks512, 8);
    assert_int_equal(incompat_of(m->fs) & MMAPFS_FEATURE_INCOMPAT_XATTR_CHAIN, 0);
    /* the fifth goes into a new block at the head of the chain */
    memset(val, 'e', sizeof(val));
    assert_int_equal(fs_setxattr(m->fs, f, "user.k4", val, sizeof(val), 0), 0);
    assert_int_not_equal(xattr_block_of(m->fs, f), first);
    assert_int_equal(attr(m->fs, f).blocks512, 16);
    assert_int_equal(incompat_of(m->fs) & MMAPFS_FEATURE_INCOMPAT_XATTR_CHAIN,
                     MMAPFS_FEATURE_INCOMPAT_XATTR_CHAIN);
    /* small ones fill the room of the new block first */
    for (unsigned i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "user.s%u", i);
        assert_int_equal(fs_setxattr(m->fs, f, name, "xy", 2, 0), 0);
    }
    assert_int_equal(attr(m->fs, f).blocks512, 16);
    for (unsigned i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "user.k%u", i);
        assert_int_equal(fs_getxattr(m->fs, f, name, buf, sizeof(buf)), (int)sizeof(val));
        assert_int_equal(buf[999], 'a' + i % 26);
    }
    /* a value no block can hold */
    static char huge[4100];
    assert_int_equal(fs_setxattr(m->fs, f, "user.huge", huge, sizeof(huge), 0), -ENOSPC);
    /* replacing a value by one of the same size stays in its block; a
     * larger one moves to a block with room */
    memset(val, 'Z', sizeof(val));
    assert_int_equal(fs_setxattr(m->fs, f, "user.k1", val, sizeof(val), XATTR_REPLACE), 0);
    assert_int_equal(attr(m->fs, f).blocks512, 16);
    char bigger[1100];
    memset(bigger, 'B', sizeof(bigger));
    assert_int_equal(fs_setxattr(m->fs, f, "user.k2", bigger, sizeof(bigger), 0), 0);
    assert_int_equal(fs_getxattr(m->fs, f, "user.k2", bigger, sizeof(bigger)), 1100);
    assert_int_equal(fs_getxattr(m->fs, f, "user.k1", buf, sizeof(buf)), (int)sizeof(val));
    assert_int_equal(buf[0], 'Z');
    /* removing every entry of a block frees it, the rest stays */
    uint64_t blocks = attr(m->fs, f).blocks512;
    for (unsigned i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "user.s%u", i);
        assert_int_equal(fs_removexattr(m->fs, f, name), 0);
    }
    assert_int_equal(fs_removexattr(m->fs, f, "user.k4"), 0);
    assert_int_equal(fs_removexattr(m->fs, f, "user.k2"), 0);
    assert_true(attr(m->fs, f).blocks512 < blocks);

    img_remount(m);
    assert_int_equal(fs_getxattr(m->fs, f, "user.k1", buf, sizeof(buf)), 1000);
    assert_int_equal(buf[500], 'Z');
    assert_int_equal(fs_getxattr(m->fs, f, "user.k3", buf, sizeof(buf)), 1000);
    assert_int_equal(fs_getxattr(m->fs, f, "user.k2", buf, sizeof(buf)), -ENODATA);
    assert_int_equal(fs_getxattr(m->fs, f, "user.s99", buf, sizeof(buf)), -ENODATA);
}

/* Attributes on directories and symlinks; persistence; ctime. */
static void test_other_types_persist_ctime(void **state)
{
    struct img *m = *state;
    struct fs_stat st;
    char buf[64];

    assert_int_equal(fs_mkdir(m->fs, ROOT, "d", 0755, &cred, &st), 0);
    uint64_t d = st.ino;
    fs_forget(m->fs, d, 1);
    assert_int_equal(fs_symlink(m->fs, ROOT, "l", "target", &cred, &st), 0);
    uint64_t l = st.ino;
    fs_forget(m->fs, l, 1);

    struct fs_stat d0 = attr(m->fs, d);
    tick();
    assert_int_equal(fs_setxattr(m->fs, d, "system.posix_acl_default", "acl", 3, 0), 0);
    struct fs_stat d1 = attr(m->fs, d);
    assert_true(ts_after(d1.ctime, d0.ctime));
    assert_int_equal(d1.mtime.tv_sec, d0.mtime.tv_sec);
    assert_int_equal(d1.mtime.tv_nsec, d0.mtime.tv_nsec);
    tick();
    assert_int_equal(fs_removexattr(m->fs, d, "system.posix_acl_default"), 0);
    assert_true(ts_after(attr(m->fs, d).ctime, d1.ctime));
    /* a failed change does not touch ctime */
    struct fs_stat d2 = attr(m->fs, d);
    tick();
    assert_int_equal(fs_removexattr(m->fs, d, "user.none"), -ENODATA);
    assert_int_equal(attr(m->fs, d).ctime.tv_nsec, d2.ctime.tv_nsec);

    /* as ext4: the value it already has changes nothing, not even ctime
     * (any flags that allow it); another value, also a shorter one, does */
    assert_int_equal(fs_setxattr(m->fs, d, "user.dir", "D", 1, 0), 0);
    struct fs_stat d3 = attr(m->fs, d);
    tick();
    assert_int_equal(fs_setxattr(m->fs, d, "user.dir", "D", 1, 0), 0);
    assert_int_equal(fs_setxattr(m->fs, d, "user.dir", "D", 1, XATTR_REPLACE), 0);
    assert_int_equal(fs_setxattr(m->fs, d, "user.dir", "D", 1, XATTR_CREATE), -EEXIST);
    assert_int_equal(attr(m->fs, d).ctime.tv_sec, d3.ctime.tv_sec);
    assert_int_equal(attr(m->fs, d).ctime.tv_nsec, d3.ctime.tv_nsec);
    assert_int_equal(fs_setxattr(m->fs, d, "user.dir", "", 0, 0), 0);
    struct fs_stat d4 = attr(m->fs, d);
    assert_true(ts_after(d4.ctime, d3.ctime));
    tick();
    assert_int_equal(fs_setxattr(m->fs, d, "user.dir", "", 0, XATTR_REPLACE), 0);
    assert_int_equal(attr(m->fs, d).ctime.tv_nsec, d4.ctime.tv_nsec);
    tick();
    assert_int_equal(fs_setxattr(m->fs, d, "user.dir", "D", 1, 0), 0);
    assert_true(ts_after(attr(m->fs, d).ctime, d4.ctime));
    assert_int_equal(fs_setxattr(m->fs, l, "trusted.link", "L", 1, 0), 0);
    assert_int_equal(fs_setxattr(m->fs, ROOT, "user.root", "R", 1, 0), 0);

    img_remount(m);
    assert_int_equal(fs_getxattr(m->fs, d, "user.dir", buf, sizeof(buf)), 1);
    assert_int_equal(buf[0], 'D');
    assert_int_equal(fs_getxattr(m->fs, l, "trusted.link", buf, sizeof(buf)), 1);
    assert_int_equal(buf[0], 'L');
    assert_int_equal(fs_getxattr(m->fs, ROOT, "user.root", buf, sizeof(buf)), 1);
    assert_int_equal(buf[0], 'R');
    /* the directory still works as a directory, the symlink as a symlink */
    assert_int_equal(fs_readlink(m->fs, l, buf, sizeof(buf)), 6);
    assert_int_equal(fs_mknod(m->fs, d, "x", S_IFREG | 0644, 0, &cred, &st), 0);
    fs_forget(m->fs, st.ino, 1);
}

/* The xattr block goes with the inode: free blocks return to where they
 * were once the file and its attributes are gone. */
static void test_freed_with_inode(void **state)
{
    struct img *m = *state;
    struct statvfs sv0, sv1, sv2;

    mkfile(m->fs, ROOT, "warmup");     /* the root index exists before the baseline */
    img_remount(m);
    assert_int_equal(fs_statfs(m->fs, &sv0), 0);
    uint64_t f = mkfile(m->fs, ROOT, "f");
    uint64_t d;
    struct fs_stat st;
    assert_int_equal(fs_mkdir(m->fs, ROOT, "d", 0755, &cred, &st), 0);
    d = st.ino;
    fs_forget(m->fs, d, 1);
    assert_int_equal(fs_setxattr(m->fs, f, "user.a", "value", 5, 0), 0);
    assert_int_equal(fs_setxattr(m->fs, d, "user.a", "value", 5, 0), 0);
    uint64_t fb = xattr_block_of(m->fs, f), db = xattr_block_of(m->fs, d);
    assert_true(fb != 0 && db != 0 && fb != db);
    img_remount(m);
    assert_int_equal(fs_statfs(m->fs, &sv1), 0);
    assert_int_equal(sv1.f_bfree, sv0.f_bfree - 2);
    assert_int_equal(fs_unlink(m->fs, ROOT, "f"), 0);
    assert_int_equal(fs_rmdir(m->fs, ROOT, "d"), 0);
    img_remount(m);
    assert_int_equal(fs_statfs(m->fs, &sv2), 0);
    assert_int_equal(sv2.f_bfree, sv0.f_bfree);
    assert_int_equal(sv2.f_ffree, sv0.f_ffree);

    /* a new file reusing the inode number starts without attributes */
    uint64_t g = mkfile(m->fs, ROOT, "g");
    assert_int_equal(fs_listxattr(m->fs, g, NULL, 0), 0);
}

/* Creates file "f" with the attribute user.a=value (the image is not
 * checked at teardown: the caller damages it) and opens a transaction on
 * its xattr block: *blk and a writable pointer; jnl_end closes it. */
static uint8_t *damage_block(struct img *m, uint64_t *f, uint64_t *blk)
{
    *f = mkfile(m->fs, ROOT, "f");
    m->skip_fsck = 1;
    assert_int_equal(fs_setxattr(m->fs, *f, "user.a", "value", 5, 0), 0);
    *blk = xattr_block_of(m->fs, *f);
    assert_int_equal(jnl_begin(m->fs->jnl), 0);
    uint8_t *p = jnl_write(m->fs->jnl, *blk);
    assert_non_null(p);
    return p;
}

/* A damaged block is reported as corruption, never trusted. */
static void test_corrupt_block(void **state)
{
    struct img *m = *state;
    char buf[64];
    uint64_t f, b;

    uint8_t *p = damage_block(m, &f, &b);
    p[40] ^= 0xff;                     /* an entry byte: checksum mismatch */
    jnl_end(m->fs->jnl);
    assert_int_equal(fs_getxattr(m->fs, f, "user.a", buf, sizeof(buf)), -EUCLEAN);
    assert_int_equal(fs_listxattr(m->fs, f, buf, sizeof(buf)), -EUCLEAN);
    assert_int_equal(fs_setxattr(m->fs, f, "user.b", "v", 1, 0), -EUCLEAN);
}

/* A name with a NUL byte in a block whose checksum is right ("user\0a",
 * which listxattr would hand out as two names, "user" and "a"): the
 * filesystem reports corruption and fsck finds and repairs it. */
static void test_nul_in_name(void **state)
{
    struct img *m = *state;
    char buf[64];
    uint64_t f, b;

    uint8_t *p = damage_block(m, &f, &b);
    const size_t name = sizeof(struct mmapfs_disk_xattr_header) +
                        sizeof(struct mmapfs_disk_xattr_entry);
    assert_memory_equal(p + name, "user.a", 6);
    p[name + 4] = '\0';
    ((struct mmapfs_disk_xattr_header *)p)->checksum = bt_block_checksum(b, p);
    jnl_end(m->fs->jnl);
    assert_int_equal(fs_listxattr(m->fs, f, buf, sizeof(buf)), -EUCLEAN);
    assert_int_equal(fs_getxattr(m->fs, f, "user.a", buf, sizeof(buf)), -EUCLEAN);
    img_unmount(m);
    FILE *quiet = fopen("/dev/null", "w");
    assert_non_null(quiet);
    struct fs_check_options o = { .mode = FS_CHECK_NO, .force = 1 };
    assert_int_equal(fs_check(m->path, &o, quiet), FSCK_EXIT_UNCORRECTED);
    o.mode = FS_CHECK_YES;
    assert_int_equal(fs_check(m->path, &o, quiet), FSCK_EXIT_CORRECTED);
    fclose(quiet);
    m->skip_fsck = 0;                  /* the teardown's fsck -n: clean */
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, img_setup, img_teardown)
    const struct CMUnitTest tests[] = {
        T(test_set_get_list_remove),
        T(test_flags_and_limits),
        T(test_full_block),
        T(test_other_types_persist_ctime),
        T(test_freed_with_inode),
        T(test_corrupt_block),
        T(test_nul_in_name),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
