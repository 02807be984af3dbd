/*
 * test_xattr_inode.c — extended attributes kept in the inode record
 * (src/fs/xattr_inode.c, incompat feature 0x8, docs/FORMAT.md §6): a small
 * set lives in the inode and owns no block; the exact bytes of the area;
 * set/get/list/remove and the flags; overflow into an xattr block and back
 * (a value that fits again moves into the inode, an emptied block is
 * freed); ACLs and security labels of common sizes fit; persistence across
 * remounts; the area cleared with the inode; a failed set leaves no trace;
 * a corrupt area is detected by the filesystem and repaired by fsck; a
 * name in both the area and the chain is repaired; an image formatted
 * without the feature keeps its attributes in blocks. Images are sparse
 * mkstemp files in /tmp.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fs/acl.h"
#include "fsck/fsck.h"
#include "fs/fs.h"
#include "fs/fs_i.h"
#include "fs/xattr_i.h"

#include "fs_fixture.h"

/* ==== helpers ================================================================= */

static int img_setup(void **state)
{
    static const struct img_config c = { .name = "xattr-inode", .bytes = 64 * MiB,
                                         .mount = 1, .fsck_on_remount = 1,
                                         .check_at_teardown = 1 };
    return img_setup_config(state, &c);
}

static int img_setup_old(void **state)
{
    static const struct img_config c = { .name = "xattr-inode-old", .bytes = 64 * MiB,
                                         .mount = 1, .fsck_on_remount = 1,
                                         .check_at_teardown = 1, .no_inode_xattr = 1 };
    return img_setup_config(state, &c);
}

static struct mmapfs_disk_inode raw_inode(struct fs *fs, uint64_t ino)
{
    struct mmapfs_disk_inode di;
    jnl_lock(fs->jnl);
    assert_int_equal(fs_inode_get(fs, ino, &di), 0);
    jnl_unlock(fs->jnl);
    return di;
}

/* Replaces ino's in-inode area with area (the record's checksum stays right). */
static void put_area(struct fs *fs, uint64_t ino, const uint8_t *area)
{
    struct mmapfs_disk_inode di;
    assert_int_equal(jnl_begin(fs->jnl), 0);
    assert_int_equal(fs_inode_get(fs, ino, &di), 0);
    memcpy(di.xattr_area, area, sizeof(di.xattr_area));
    assert_int_equal(fs_end(fs, fs_inode_put(fs, ino, &di)), 0);
}

static void assert_value(struct fs *fs, uint64_t ino, const char *name, const void *v, size_t n)
{
    char buf[512];
    assert_int_equal(fs_getxattr(fs, ino, name, NULL, 0), (int)n);
    assert_int_equal(fs_getxattr(fs, ino, name, buf, sizeof(buf)), (int)n);
    assert_memory_equal(buf, v, n);
}

/* The names listed, sorted into one string "a,b,c" for comparison. */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void assert_names(struct fs *fs, uint64_t ino, const char *want)
{
    char buf[4096], joined[4096] = "";
    char *names[64];
    int n = fs_listxattr(fs, ino, NULL, 0);
    assert_true(n >= 0);
    assert_int_equal(fs_listxattr(fs, ino, buf, sizeof(buf)), n);
    if (n > 0)
        assert_int_equal(fs_listxattr(fs, ino, buf, (size_t)n - 1), -ERANGE);
    unsigned k = 0;
    for (int off = 0; off < n; off += (int)strlen(buf + off) + 1)
        names[k++] = buf + off;
    qsort(names, k, sizeof(names[0]), cmp_str);
    for (unsigned i = 0; i < k; i++) {
        if (i)
            strcat(joined, ",");
        strcat(joined, names[i]);
    }
    assert_string_equal(joined, want);
}

/* A POSIX ACL xattr value with 'named' named user entries (4 + 8 per entry). */
static size_t acl_value(uint8_t *v, unsigned named)
{
    static const uint16_t tags[] = { 0x01, 0x04, 0x10, 0x20 };  /* USER_OBJ GROUP_OBJ MASK OTHER */
    size_t n = 0;
    uint32_t version = 2;
    memcpy(v, &version, 4);
    n = 4;
    for (unsigned i = 0; i < 4; i++) {
        if (tags[i] == 0x10 && !named)
            continue;
        uint16_t tag = tags[i], perm = 6;
        uint32_t id = 0xffffffffu;
        memcpy(v + n, &tag, 2);
        memcpy(v + n + 2, &perm, 2);
        memcpy(v + n + 4, &id, 4);
        n += 8;
        if (tags[i] == 0x01)
            for (unsigned u = 0; u < named; u++) {
                uint16_t t = 0x02;
                uint32_t uid = 1000 + u;
                memcpy(v + n, &t, 2);
                memcpy(v + n + 2, &perm, 2);
                memcpy(v + n + 4, &uid, 4);
                n += 8;
            }
    }
    return n;
}

static uint64_t bfree(struct fs *fs)
{
    struct statvfs sv;
    assert_int_equal(fs_statfs(fs, &sv), 0);
    return sv.f_bfree;
}

/* ino owns no block and the free count is 'before' again. */
static void assert_no_block(struct fs *fs, uint64_t ino, uint64_t before)
{
    struct mmapfs_disk_inode di = raw_inode(fs, ino);
    assert_int_equal(di.xattr_block, 0);
    assert_int_equal(di.blocks, 0);
    assert_int_equal(attr(fs, ino).blocks512, 0);
    assert_int_equal(bfree(fs), before);
}

/* ==== tests ===================================================================== */

/* One small attribute: in the inode, exactly as FORMAT.md says; no block. */
static void test_small_in_inode(void **state)
{
    struct img *m = *state;
    uint64_t ino = mkfile(m->fs, ROOT, "f");
    uint64_t before = bfree(m->fs);
    assert_int_equal(fs_setxattr(m->fs, ino, "user.foo", "bar", 3, 0), 0);
    struct mmapfs_disk_inode di = raw_inode(m->fs, ino);
    static const uint8_t want[] = { MMAPFS_IXATTR_USER, 3, 3, 'f', 'o', 'o', 'b', 'a', 'r' };
    assert_memory_equal(di.xattr_area, want, sizeof(want));
    for (size_t i = sizeof(want); i < sizeof(di.xattr_area); i++)
        assert_int_equal(di.xattr_area[i], 0);
    assert_no_block(m->fs, ino, before);
    assert_value(m->fs, ino, "user.foo", "bar", 3);
    assert_names(m->fs, ino, "user.foo");
    char small[2];
    assert_int_equal(fs_getxattr(m->fs, ino, "user.foo", small, sizeof(small)), -ERANGE);
    assert_int_equal(fs_getxattr(m->fs, ino, "user.fo", small, sizeof(small)), -ENODATA);
    assert_int_equal(fs_getxattr(m->fs, ino, "user.fooo", small, sizeof(small)), -ENODATA);
    img_remount(m);
    assert_value(m->fs, ino, "user.foo", "bar", 3);
    /* the value it already has: nothing written, ctime kept (as ext4) */
    struct fs_stat st0 = attr(m->fs, ino);
    tick();
    assert_int_equal(fs_setxattr(m->fs, ino, "user.foo", "bar", 3, XATTR_REPLACE), 0);
    assert_int_equal(attr(m->fs, ino).ctime.tv_sec, st0.ctime.tv_sec);
    assert_int_equal(attr(m->fs, ino).ctime.tv_nsec, st0.ctime.tv_nsec);
    assert_int_equal(fs_setxattr(m->fs, ino, "user.foo", "baz", 3, XATTR_REPLACE), 0);
    assert_true(ts_after(attr(m->fs, ino).ctime, st0.ctime));
    assert_value(m->fs, ino, "user.foo", "baz", 3);
    assert_int_equal(fs_removexattr(m->fs, ino, "user.foo"), 0);
    di = raw_inode(m->fs, ino);
    for (size_t i = 0; i < sizeof(di.xattr_area); i++)
        assert_int_equal(di.xattr_area[i], 0);
    assert_names(m->fs, ino, "");
    assert_int_equal(fs_removexattr(m->fs, ino, "user.foo"), -ENODATA);
}

/* XATTR_CREATE / XATTR_REPLACE, replacing a value, other namespaces, empty
 * values, names without a known prefix. */
static void test_flags_and_names(void **state)
{
    struct img *m = *state;
    uint64_t ino = mkfile(m->fs, ROOT, "f");
    assert_int_equal(fs_setxattr(m->fs, ino, "user.a", "1", 1, XATTR_REPLACE), -ENODATA);
    assert_int_equal(fs_setxattr(m->fs, ino, "user.a", "1", 1, XATTR_CREATE), 0);
    assert_int_equal(fs_setxattr(m->fs, ino, "user.a", "2", 1, XATTR_CREATE), -EEXIST);
    assert_int_equal(fs_setxattr(m->fs, ino, "user.a", "22", 2, XATTR_REPLACE), 0);
    assert_value(m->fs, ino, "user.a", "22", 2);
    assert_int_equal(fs_setxattr(m->fs, ino, "trusted.t", "", 0, 0), 0);
    assert_int_equal(fs_setxattr(m->fs, ino, "weird", "w", 1, 0), 0);
    assert_value(m->fs, ino, "trusted.t", "", 0);
    assert_value(m->fs, ino, "weird", "w", 1);
    assert_names(m->fs, ino, "trusted.t,user.a,weird");
    struct mmapfs_disk_inode di = raw_inode(m->fs, ino);
    assert_int_equal(di.xattr_block, 0);
    char msg[128];
    assert_int_equal(fs_ixattr_check(di.xattr_area, msg, sizeof(msg)), 3);
    img_remount(m);
    assert_names(m->fs, ino, "trusted.t,user.a,weird");
}

/* ACLs with one and two named entries and a 30-byte security label fit
 * (each alone); ACLs set through fs_acl_inherit land in the inode too. */
static void test_acl_and_label_fit(void **state)
{
    struct img *m = *state;
    uint8_t v[128], v2[128];
    uint64_t a = mkfile(m->fs, ROOT, "a"), b = mkfile(m->fs, ROOT, "b");
    uint64_t c = mkfile(m->fs, ROOT, "c");
    size_t n1 = acl_value(v, 1);
    assert_int_equal(n1, 44);
    assert_int_equal(fs_setxattr(m->fs, a, "system.posix_acl_access", v, n1, 0), 0);
    assert_value(m->fs, a, "system.posix_acl_access", v, n1);
    assert_int_equal(raw_inode(m->fs, a).xattr_block, 0);
    assert_int_equal(raw_inode(m->fs, a).xattr_area[0], MMAPFS_IXATTR_ACL_ACCESS);
    size_t n2 = acl_value(v2, 2);
    assert_int_equal(n2, 52);
    assert_int_equal(fs_setxattr(m->fs, b, "system.posix_acl_access", v2, n2, 0), 0);
    assert_int_equal(raw_inode(m->fs, b).xattr_block, 0);
    assert_value(m->fs, b, "system.posix_acl_access", v2, n2);
    const char *label = "unconfined_u:object_r:user_t:s0";      /* 31 bytes */
    assert_int_equal(fs_setxattr(m->fs, c, "security.selinux", label, strlen(label), 0), 0);
    assert_int_equal(raw_inode(m->fs, c).xattr_block, 0);
    assert_value(m->fs, c, "security.selinux", label, strlen(label));
    /* a default ACL on a directory is inherited by a new file: in its inode */
    uint64_t d = mkdirectory(m->fs, ROOT, "d");
    size_t n0 = acl_value(v, 1);
    assert_int_equal(fs_setxattr(m->fs, d, "system.posix_acl_default", v, n0, 0), 0);
    assert_int_equal(raw_inode(m->fs, d).xattr_area[0], MMAPFS_IXATTR_ACL_DEFAULT);
    uint64_t f = mkfile(m->fs, d, "f");
    assert_int_equal(fs_acl_inherit(m->fs, d, f, S_IFREG | 0644), 0);
    assert_int_equal(fs_getxattr(m->fs, f, "system.posix_acl_access", NULL, 0), (int)n0);
    assert_int_equal(raw_inode(m->fs, f).xattr_area[0], MMAPFS_IXATTR_ACL_ACCESS);
    assert_int_equal(raw_inode(m->fs, f).xattr_block, 0);
    assert_int_equal(attr(m->fs, f).blocks512, 0);
    img_remount(m);
    assert_value(m->fs, b, "system.posix_acl_access", v2, n2);
    assert_int_equal(fs_getxattr(m->fs, f, "system.posix_acl_access", NULL, 0), (int)n0);
}

/* More than fits: the rest goes to a block, the names are unique over
 * both; a value that fits again moves back and frees the block. */
static void test_overflow_and_back(void **state)
{
    struct img *m = *state;
    uint64_t ino = mkfile(m->fs, ROOT, "f");
    uint64_t before = bfree(m->fs);
    char name[32], val[16];
    /* each user.aN=vvvvvvvvvv: 3 + 2 + 10 = 15 bytes: 4 fit in 60 */
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof(name), "user.a%d", i);
        memset(val, 'a' + i, 10);
        assert_int_equal(fs_setxattr(m->fs, ino, name, val, 10, 0), 0);
    }
    struct mmapfs_disk_inode di = raw_inode(m->fs, ino);
    char msg[128];
    assert_int_equal(fs_ixattr_check(di.xattr_area, msg, sizeof(msg)), 4);
    assert_int_not_equal(di.xattr_block, 0);
    assert_int_equal(di.blocks, 1);
    assert_int_equal(attr(m->fs, ino).blocks512, 8);
    assert_int_equal(bfree(m->fs), before - 1);
    assert_names(m->fs, ino, "user.a0,user.a1,user.a2,user.a3,user.a4,user.a5");
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof(name), "user.a%d", i);
        memset(val, 'a' + i, 10);
        assert_value(m->fs, ino, name, val, 10);
    }
    /* a bigger value for an in-inode name goes to the block */
    char big[100];
    memset(big, 'B', sizeof(big));
    assert_int_equal(fs_setxattr(m->fs, ino, "user.a0", big, sizeof(big), 0), 0);
    assert_int_equal(fs_ixattr_check(raw_inode(m->fs, ino).xattr_area, msg, sizeof(msg)), 3);
    assert_value(m->fs, ino, "user.a0", big, sizeof(big));
    assert_names(m->fs, ino, "user.a0,user.a1,user.a2,user.a3,user.a4,user.a5");
    img_remount(m);
    /* remove the block's names but one; shrink that one: it moves in */
    assert_int_equal(fs_removexattr(m->fs, ino, "user.a4"), 0);
    assert_int_equal(fs_removexattr(m->fs, ino, "user.a5"), 0);
    assert_int_not_equal(raw_inode(m->fs, ino).xattr_block, 0);
    assert_int_equal(fs_setxattr(m->fs, ino, "user.a0", "s", 1, XATTR_REPLACE), 0);
    assert_no_block(m->fs, ino, before);
    assert_value(m->fs, ino, "user.a0", "s", 1);
    assert_names(m->fs, ino, "user.a0,user.a1,user.a2,user.a3");
    /* a value too big for a block is refused as before */
    static char huge[MMAPFS_BLOCK_SIZE];
    assert_int_equal(fs_setxattr(m->fs, ino, "user.h", huge, sizeof(huge), 0), -ENOSPC);
    assert_names(m->fs, ino, "user.a0,user.a1,user.a2,user.a3");
}

/* Freeing the inode frees its block and clears the area: a new file on
 * the same inode number has no attribute. */
static void test_freed_with_inode(void **state)
{
    struct img *m = *state;
    uint64_t ino = mkfile(m->fs, ROOT, "f");
    uint64_t before = bfree(m->fs);
    char big[200];
    memset(big, 'x', sizeof(big));
    assert_int_equal(fs_setxattr(m->fs, ino, "user.s", "1", 1, 0), 0);
    assert_int_equal(fs_setxattr(m->fs, ino, "user.b", big, sizeof(big), 0), 0);
    assert_int_equal(bfree(m->fs), before - 1);
    /* rename does not touch them */
    assert_int_equal(fs_rename(m->fs, ROOT, "f", ROOT, "g", 0), 0);
    assert_value(m->fs, ino, "user.s", "1", 1);
    assert_int_equal(fs_unlink(m->fs, ROOT, "g"), 0);
    assert_int_equal(bfree(m->fs), before);
    uint64_t again = mkfile(m->fs, ROOT, "h");
    assert_int_equal(again, ino);
    assert_names(m->fs, again, "");
    struct mmapfs_disk_inode di = raw_inode(m->fs, again);
    for (size_t i = 0; i < sizeof(di.xattr_area); i++)
        assert_int_equal(di.xattr_area[i], 0);
}

/* A set that fails (no block for the value that does not fit) leaves the
 * old in-inode value in place. */
static void test_failed_set_no_trace(void **state)
{
    struct img *m = *state;
    uint64_t ino = mkfile(m->fs, ROOT, "f");
    assert_int_equal(fs_setxattr(m->fs, ino, "user.k", "old", 3, 0), 0);
    /* fill the filesystem */
    uint64_t filler = mkfile(m->fs, ROOT, "filler");
    uint64_t off = 0;
    int err;
    while ((err = fs_fallocate(m->fs, filler, 0, off, 1 * MiB)) == 0)
        off += 1 * MiB;
    assert_int_equal(err, -ENOSPC);
    while (fs_fallocate(m->fs, filler, 0, off, MMAPFS_BLOCK_SIZE) == 0)
        off += MMAPFS_BLOCK_SIZE;
    char big[300];
    memset(big, 'z', sizeof(big));
    struct mmapfs_disk_inode b4 = raw_inode(m->fs, ino);
    assert_int_equal(fs_setxattr(m->fs, ino, "user.k", big, sizeof(big), 0), -ENOSPC);
    struct mmapfs_disk_inode after = raw_inode(m->fs, ino);
    assert_memory_equal(after.xattr_area, b4.xattr_area, sizeof(b4.xattr_area));
    assert_int_equal(after.xattr_block, 0);
    assert_value(m->fs, ino, "user.k", "old", 3);
    /* a value that fits in the inode needs no block: it still works */
    assert_int_equal(fs_setxattr(m->fs, ino, "user.k", "new", 3, 0), 0);
    assert_value(m->fs, ino, "user.k", "new", 3);
    assert_int_equal(fs_unlink(m->fs, ROOT, "filler"), 0);
}

static int run_fsck(const char *path, enum fs_check_mode mode, char **out)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    struct fs_check_options o = { .mode = mode, .verbose = 1, .force = 1 };
    int r = fs_check(path, &o, f);
    fclose(f);
    if (getenv("TEST_FSCK_VERBOSE"))
        fprintf(stderr, "--- fsck -> %d\n%s", r, buf);
    *out = buf;
    return r;
}

/* fsck -n finds want, -y repairs it (naming fixed), a second -n is clean. */
static void expect_fsck(struct img *m, const char *want, const char *fixed)
{
    char *rep;
    assert_int_equal(run_fsck(m->path, FS_CHECK_NO, &rep), FSCK_EXIT_UNCORRECTED);
    if (!strstr(rep, want))
        fail_msg("fsck -n does not say \"%s\":\n%s", want, rep);
    free(rep);
    assert_int_equal(run_fsck(m->path, FS_CHECK_YES, &rep), FSCK_EXIT_CORRECTED);
    if (!strstr(rep, fixed))
        fail_msg("fsck -y does not say \"%s\":\n%s", fixed, rep);
    free(rep);
    assert_int_equal(run_fsck(m->path, FS_CHECK_NO, &rep), FSCK_EXIT_OK);
    free(rep);
}

/* Crafted areas: the filesystem reports corruption and reads nothing out
 * of bounds; fsck drops the area. */
static void test_corrupt_area(void **state)
{
    struct img *m = *state;
    static const struct {
        uint8_t area[MMAPFS_IXATTR_BYTES];
        const char *why;
    } bad[] = {
        { { 1, 3, 60, 'a', 'b', 'c' }, "run past the area" },               /* value too long */
        { { 9, 1, 1, 'a', 'b' }, "run past the area" },                     /* unknown index */
        { { 7, 0, 1, 'x' }, "bad name length" },                            /* empty name */
        { { 2, 1, 1, 'a', 'b' }, "bad name length" },                       /* ACL with a name */
        { { 1, 1, 1, 'a', 'b', 1, 1, 1, 'a', 'c' }, "repeats the name" },   /* duplicate */
        { { 7, 6, 0, 'u', 's', 'e', 'r', '.', 'a', 1, 1, 0, 'a' }, "repeats the name" },
        { { 1, 3, 1, 'a', 0, 'b', 'v' }, "NUL byte in the name" },          /* "user.a\0b" */
        { { 1, 1, 1, 'a', 'b', 0, 0, 5 }, "not zero" },                     /* junk after end */
    };
    uint64_t ino = mkfile(m->fs, ROOT, "f");
    m->skip_fsck = 1;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        put_area(m->fs, ino, bad[i].area);
        char buf[64];
        assert_int_equal(fs_getxattr(m->fs, ino, "user.a", buf, sizeof(buf)), -EUCLEAN);
        assert_int_equal(fs_listxattr(m->fs, ino, buf, sizeof(buf)), -EUCLEAN);
        assert_int_equal(fs_setxattr(m->fs, ino, "user.z", "1", 1, 0), -EUCLEAN);
        char msg[128];
        assert_int_equal(fs_ixattr_check(bad[i].area, msg, sizeof(msg)), -1);
        if (!strstr(msg, bad[i].why))
            fail_msg("case %zu: \"%s\" does not say \"%s\"", i, msg, bad[i].why);
    }
    /* an entry header cut by the end of the area */
    uint8_t cut[MMAPFS_IXATTR_BYTES] = { 1, 1, 54, 'a' };
    cut[58] = 1;
    cut[59] = 1;
    char msg[128];
    assert_int_equal(fs_ixattr_check(cut, msg, sizeof(msg)), -1);
    /* an entry that ends exactly at the end of the area is fine */
    uint8_t full[MMAPFS_IXATTR_BYTES] = { 1, 1, 55, 'a' };
    assert_int_equal(fs_ixattr_check(full, msg, sizeof(msg)), 1);
    img_unmount(m);
    expect_fsck(m, "in-inode xattr area: byte", "damaged in-inode xattr area dropped");
    img_mount(m);
    assert_names(m->fs, ino, "");
    m->skip_fsck = 0;
}

/* The same name in the area and in the chain: fsck drops the inode's copy. */
static void test_name_in_both(void **state)
{
    struct img *m = *state;
    uint64_t ino = mkfile(m->fs, ROOT, "f");
    char big[100];
    memset(big, 'q', sizeof(big));
    assert_int_equal(fs_setxattr(m->fs, ino, "user.dup", big, sizeof(big), 0), 0);
    assert_int_not_equal(raw_inode(m->fs, ino).xattr_block, 0);
    static const uint8_t area[MMAPFS_IXATTR_BYTES] = { 1, 3, 1, 'd', 'u', 'p', 'x',
                                                       1, 1, 1, 'k', 'v' };
    m->skip_fsck = 1;
    put_area(m->fs, ino, area);
    img_unmount(m);
    expect_fsck(m, "holds a name the inode holds too", "in-inode copy of an xattr");
    img_mount(m);
    assert_value(m->fs, ino, "user.dup", big, sizeof(big));
    assert_value(m->fs, ino, "user.k", "v", 1);
    assert_names(m->fs, ino, "user.dup,user.k");
    m->skip_fsck = 0;
}

/* Without the feature (mkfs -O ^inode_xattr): attributes in blocks, the
 * area stays zero, a non-zero area byte is an fsck error. */
static void test_old_format(void **state)
{
    struct img *m = *state;
    assert_int_equal(m->fs->feature_incompat & MMAPFS_FEATURE_INCOMPAT_INODE_XATTR, 0);
    uint64_t ino = mkfile(m->fs, ROOT, "f");
    assert_int_equal(fs_setxattr(m->fs, ino, "user.foo", "bar", 3, 0), 0);
    struct mmapfs_disk_inode di = raw_inode(m->fs, ino);
    assert_int_not_equal(di.xattr_block, 0);
    assert_int_equal(attr(m->fs, ino).blocks512, 8);
    for (size_t i = 0; i < sizeof(di.xattr_area); i++)
        assert_int_equal(di.xattr_area[i], 0);
    assert_value(m->fs, ino, "user.foo", "bar", 3);
    img_remount(m);
    assert_value(m->fs, ino, "user.foo", "bar", 3);
    assert_int_equal(fs_removexattr(m->fs, ino, "user.foo"), 0);
    assert_int_equal(raw_inode(m->fs, ino).xattr_block, 0);
    /* a valid-looking area is still an error on such an image */
    static const uint8_t area[MMAPFS_IXATTR_BYTES] = { 1, 1, 1, 'a', 'b' };
    m->skip_fsck = 1;
    put_area(m->fs, ino, area);
    assert_names(m->fs, ino, "");           /* not read without the feature */
    img_unmount(m);
    expect_fsck(m, "image without in-inode xattrs", "damaged in-inode xattr area dropped");
    img_mount(m);
    m->skip_fsck = 0;
}

#define T(f) cmocka_unit_test_setup_teardown(f, img_setup, img_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_small_in_inode),
        T(test_flags_and_names),
        T(test_acl_and_label_fit),
        T(test_overflow_and_back),
        T(test_freed_with_inode),
        T(test_failed_set_no_trace),
        T(test_corrupt_area),
        T(test_name_in_both),
        cmocka_unit_test_setup_teardown(test_old_format, img_setup_old, img_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
