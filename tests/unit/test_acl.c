/*
 * test_acl.c — POSIX ACLs (src/fs/acl.c): the xattr parser (valid ACLs,
 * every kind of garbage), the ACL <-> mode mapping (equivalence, chmod,
 * inheritance masking), and on an image: setting an access ACL (stored or
 * folded into the mode, S_ISGID kept or dropped), default ACLs only on
 * directories, removal, chmod of a file with an ACL, and the ACLs and modes
 * new inodes get from their directory's default ACL.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "fs/acl.h"
#include "fs/fs_i.h"

#include "fs_fixture.h"
#include "fsck_report.h"

/* ==== helpers ================================================================= */

static int img_setup(void **state)
{
    static const struct img_config c = { .name = "acl", .bytes = 64 * MiB, .mount = 1,
                                         .check_at_teardown = 1 };
    return img_setup_config(state, &c);
}

#define U FS_ACL_UNDEFINED_ID

/* An ACL from a list of {tag, perm, id} entries. */
static struct fs_acl make_acl(unsigned n, const struct fs_acl_entry *e)
{
    struct fs_acl acl;
    memset(&acl, 0, sizeof(acl));
    acl.count = n;
    memcpy(acl.e, e, n * sizeof(*e));
    return acl;
}

/* Serialises entries into buf (xattr format); returns the length. */
static size_t encode(uint8_t *buf, size_t size, unsigned n, const struct fs_acl_entry *e)
{
    struct fs_acl acl = make_acl(n, e);
    size_t len = fs_acl_to_xattr(&acl, buf, size);
    assert_true(len <= size);
    return len;
}

/* Parses entries after a round trip through the xattr format. */
static int parse(unsigned n, const struct fs_acl_entry *e)
{
    uint8_t buf[256];
    struct fs_acl acl;
    size_t len = encode(buf, sizeof(buf), n, e);
    return fs_acl_from_xattr(buf, len, &acl);
}

static const struct fs_acl_entry named[] = {
    { FS_ACL_USER_OBJ, 6, U }, { FS_ACL_USER, 4, 1001 }, { FS_ACL_USER, 6, 1002 },
    { FS_ACL_GROUP_OBJ, 4, U }, { FS_ACL_GROUP, 5, 50 }, { FS_ACL_MASK, 6, U },
    { FS_ACL_OTHER, 0, U },
};
#define NNAMED (sizeof(named) / sizeof(named[0]))

static const struct fs_acl_entry minimal[] = {
    { FS_ACL_USER_OBJ, 7, U }, { FS_ACL_GROUP_OBJ, 5, U }, { FS_ACL_OTHER, 1, U },
};

/* ==== the xattr format ========================================================= */

static void test_parse_valid(void **state)
{
    uint8_t buf[256];
    struct fs_acl acl;
    size_t len;
    (void)state;

    len = encode(buf, sizeof(buf), NNAMED, named);
    assert_int_equal(len, 4 + 8 * NNAMED);
    /* little-endian header version 2, then {tag, perm, id} */
    assert_int_equal(buf[0], 2);
    assert_int_equal(buf[1] | buf[2] | buf[3], 0);
    assert_int_equal(buf[4 + 8], FS_ACL_USER);
    assert_int_equal(buf[4 + 8 + 4], 1001 & 0xff);
    assert_int_equal(buf[4 + 8 + 5], 1001 >> 8);
    assert_int_equal(fs_acl_from_xattr(buf, len, &acl), 0);
    assert_int_equal(acl.count, NNAMED);
    assert_memory_equal(acl.e, named, sizeof(named));
    assert_int_equal(parse(3, minimal), 0);
    /* MASK without named entries is allowed; named ids in any order */
    const struct fs_acl_entry with_mask[] = {
        { FS_ACL_USER_OBJ, 7, U }, { FS_ACL_GROUP_OBJ, 5, U }, { FS_ACL_MASK, 5, U },
        { FS_ACL_OTHER, 1, U },
    };
    assert_int_equal(parse(4, with_mask), 0);
    const struct fs_acl_entry unsorted_ids[] = {
        { FS_ACL_USER_OBJ, 7, U }, { FS_ACL_USER, 4, 9 }, { FS_ACL_USER, 4, 3 },
        { FS_ACL_GROUP_OBJ, 5, U }, { FS_ACL_MASK, 5, U }, { FS_ACL_OTHER, 1, U },
    };
    assert_int_equal(parse(6, unsorted_ids), 0);
    /* the size query */
    struct fs_acl a = make_acl(3, minimal);
    assert_int_equal(fs_acl_to_xattr(&a, NULL, 0), 4 + 3 * 8);
}

static void test_parse_garbage(void **state)
{
    uint8_t buf[256];
    struct fs_acl acl;
    size_t len;
    (void)state;

    len = encode(buf, sizeof(buf), 3, minimal);
    assert_int_equal(fs_acl_from_xattr(NULL, 0, &acl), -EINVAL);
    assert_int_equal(fs_acl_from_xattr(buf, 0, &acl), -EINVAL);
    assert_int_equal(fs_acl_from_xattr(buf, 3, &acl), -EINVAL);        /* torn header */
    assert_int_equal(fs_acl_from_xattr(buf, 4, &acl), -EINVAL);        /* no entries */
    assert_int_equal(fs_acl_from_xattr(buf, len - 1, &acl), -EINVAL);  /* torn entry */
    buf[0] = 1;
    assert_int_equal(fs_acl_from_xattr(buf, len, &acl), -EINVAL);      /* version */
    buf[0] = 2;
    buf[4 + 2] = 8;                                                     /* perm 010 */
    assert_int_equal(fs_acl_from_xattr(buf, len, &acl), -EINVAL);
    buf[4 + 2] = 7;
    buf[4] = 0x40;                                                      /* unknown tag */
    assert_int_equal(fs_acl_from_xattr(buf, len, &acl), -EINVAL);
    buf[4] = FS_ACL_USER_OBJ;
    assert_int_equal(fs_acl_from_xattr(buf, len, &acl), 0);

    const struct fs_acl_entry no_other[] = { { FS_ACL_USER_OBJ, 7, U }, { FS_ACL_GROUP_OBJ, 5, U } };
    assert_int_equal(parse(2, no_other), -EINVAL);
    const struct fs_acl_entry no_owner[] = { { FS_ACL_GROUP_OBJ, 5, U }, { FS_ACL_OTHER, 1, U } };
    assert_int_equal(parse(2, no_owner), -EINVAL);
    const struct fs_acl_entry no_group[] = { { FS_ACL_USER_OBJ, 5, U }, { FS_ACL_OTHER, 1, U } };
    assert_int_equal(parse(2, no_group), -EINVAL);
    const struct fs_acl_entry twice[] = {
        { FS_ACL_USER_OBJ, 7, U }, { FS_ACL_USER_OBJ, 7, U }, { FS_ACL_GROUP_OBJ, 5, U },
        { FS_ACL_OTHER, 1, U },
    };
    assert_int_equal(parse(4, twice), -EINVAL);
    const struct fs_acl_entry out_of_order[] = {
        { FS_ACL_USER_OBJ, 7, U }, { FS_ACL_OTHER, 1, U }, { FS_ACL_GROUP_OBJ, 5, U },
    };
    assert_int_equal(parse(3, out_of_order), -EINVAL);
    const struct fs_acl_entry named_no_mask[] = {
        { FS_ACL_USER_OBJ, 7, U }, { FS_ACL_USER, 4, 1001 }, { FS_ACL_GROUP_OBJ, 5, U },
        { FS_ACL_OTHER, 1, U },
    };
    assert_int_equal(parse(4, named_no_mask), -EINVAL);
    const struct fs_acl_entry undefined_id[] = {
        { FS_ACL_USER_OBJ, 7, U }, { FS_ACL_USER, 4, U }, { FS_ACL_GROUP_OBJ, 5, U },
        { FS_ACL_MASK, 5, U }, { FS_ACL_OTHER, 1, U },
    };
    assert_int_equal(parse(5, undefined_id), -EINVAL);
    const struct fs_acl_entry two_masks[] = {
        { FS_ACL_USER_OBJ, 7, U }, { FS_ACL_GROUP_OBJ, 5, U }, { FS_ACL_MASK, 5, U },
        { FS_ACL_MASK, 5, U }, { FS_ACL_OTHER, 1, U },
    };
    assert_int_equal(parse(5, two_masks), -EINVAL);

    /* more entries than any ACL the kernel sends */
    static uint8_t big[4 + 8 * (FS_ACL_MAX_ENTRIES + 1)];
    memset(big, 0, sizeof(big));
    big[0] = 2;
    assert_int_equal(fs_acl_from_xattr(big, sizeof(big), &acl), -E2BIG);
}

/* ==== ACL <-> mode ============================================================== */

static void test_equiv_mode(void **state)
{
    (void)state;
    struct fs_acl a = make_acl(3, minimal);
    uint32_t mode = S_IFREG | 04000;

    assert_int_equal(fs_acl_equiv_mode(&a, &mode), 1);
    assert_int_equal(mode, S_IFREG | 04751);             /* type and set-id kept */
    a = make_acl(NNAMED, named);
    mode = S_IFREG | 0777;
    assert_int_equal(fs_acl_equiv_mode(&a, &mode), 0);
    assert_int_equal(mode, S_IFREG | 0660);              /* group bits = MASK */
    const struct fs_acl_entry with_mask[] = {
        { FS_ACL_USER_OBJ, 7, U }, { FS_ACL_GROUP_OBJ, 5, U }, { FS_ACL_MASK, 1, U },
        { FS_ACL_OTHER, 0, U },
    };
    a = make_acl(4, with_mask);
    assert_int_equal(fs_acl_equiv_mode(&a, &mode), 0);
    assert_int_equal(mode & 0777, 0710);
}

static void test_chmod(void **state)
{
    (void)state;
    struct fs_acl a = make_acl(NNAMED, named);
    uint32_t mode = 0;

    fs_acl_chmod(&a, 0751);
    assert_int_equal(a.e[0].perm, 7);     /* USER_OBJ */
    assert_int_equal(a.e[1].perm, 4);     /* named entries unchanged */
    assert_int_equal(a.e[3].perm, 4);     /* GROUP_OBJ unchanged: MASK takes it */
    assert_int_equal(a.e[5].perm, 5);     /* MASK */
    assert_int_equal(a.e[6].perm, 1);     /* OTHER */
    fs_acl_equiv_mode(&a, &mode);
    assert_int_equal(mode, 0751);
    a = make_acl(3, minimal);
    fs_acl_chmod(&a, 0642);
    assert_int_equal(a.e[1].perm, 4);     /* GROUP_OBJ without MASK */
    mode = 0;
    assert_int_equal(fs_acl_equiv_mode(&a, &mode), 1);
    assert_int_equal(mode, 0642);
}

static void test_create_masq(void **state)
{
    (void)state;
    /* default ACL u::rwx u:1001:r u:1002:rw g::r g:50:rx m::rw o::- */
    struct fs_acl a = make_acl(NNAMED, named);
    a.e[0].perm = 7;
    uint32_t mode = S_IFREG | 0666;

    assert_int_equal(fs_acl_create_masq(&a, &mode), 1);
    assert_int_equal(mode, S_IFREG | 0660);
    assert_int_equal(a.e[0].perm, 6);     /* rwx & rw- (requested) */
    assert_int_equal(a.e[5].perm, 6);     /* mask rw- & rw- */
    assert_int_equal(a.e[6].perm, 0);
    /* a minimal default ACL: the mode says it all */
    a = make_acl(3, minimal);             /* u::rwx g::rx o::x */
    mode = S_IFDIR | 0777;
    assert_int_equal(fs_acl_create_masq(&a, &mode), 0);
    assert_int_equal(mode, S_IFDIR | 0751);
    a = make_acl(3, minimal);
    mode = S_IFREG | 0644;
    assert_int_equal(fs_acl_create_masq(&a, &mode), 0);
    assert_int_equal(mode, S_IFREG | 0640);
}

/* ==== on an image ============================================================== */

static void test_set_access(void **state)
{
    struct img *m = *state;
    uint8_t buf[256], got[256];
    uint64_t f = mkfile(m->fs, ROOT, "f");      /* 0644 */
    struct fs_setattr sa = { .mode = 02664 };
    size_t len;

    assert_int_equal(fs_setattr(m->fs, f, &sa, FS_SET_MODE, NULL), 0);
    /* an ACL equivalent to a mode: the mode only */
    len = encode(buf, sizeof(buf), 3, minimal);
    assert_int_equal(fs_acl_set(m->fs, f, FS_ACL_XATTR_ACCESS, buf, len, 1), 0);
    assert_int_equal(attr(m->fs, f).mode, S_IFREG | 02751);
    assert_int_equal(fs_getxattr(m->fs, f, FS_ACL_XATTR_ACCESS, NULL, 0), -ENODATA);
    /* named entries: stored; mode group bits = MASK; S_ISGID dropped */
    len = encode(buf, sizeof(buf), NNAMED, named);
    assert_int_equal(fs_acl_set(m->fs, f, FS_ACL_XATTR_ACCESS, buf, len, 0), 0);
    assert_int_equal(attr(m->fs, f).mode, S_IFREG | 0660);
    assert_int_equal(fs_getxattr(m->fs, f, FS_ACL_XATTR_ACCESS, got, sizeof(got)), (int)len);
    assert_memory_equal(got, buf, len);
    /* chmod keeps the ACL in step */
    assert_int_equal(fs_acl_chmod_inode(m->fs, f, 0705), 0);
    struct fs_acl acl;
    uint32_t mode = 0;
    assert_int_equal(fs_acl_get(m->fs, f, FS_ACL_XATTR_ACCESS, &acl), 0);
    fs_acl_equiv_mode(&acl, &mode);
    assert_int_equal(mode, 0705);
    /* garbage, a default ACL on a file, removal (twice: not an error) */
    assert_int_equal(fs_acl_set(m->fs, f, FS_ACL_XATTR_ACCESS, "junk", 4, 1), -EINVAL);
    len = encode(buf, sizeof(buf), 3, minimal);
    assert_int_equal(fs_acl_set(m->fs, f, FS_ACL_XATTR_DEFAULT, buf, len, 1), -EACCES);
    assert_int_equal(fs_acl_set(m->fs, f, FS_ACL_XATTR_DEFAULT, NULL, 0, 1), 0);
    assert_int_equal(fs_acl_set(m->fs, f, FS_ACL_XATTR_ACCESS, NULL, 0, 1), 0);
    assert_int_equal(fs_acl_set(m->fs, f, FS_ACL_XATTR_ACCESS, NULL, 0, 1), 0);
    assert_int_equal(fs_getxattr(m->fs, f, FS_ACL_XATTR_ACCESS, NULL, 0), -ENODATA);
    assert_int_equal(fs_acl_chmod_inode(m->fs, f, 0600), 0);   /* no ACL: nothing */
    /* a stored value that is not an ACL is corruption */
    assert_int_equal(fs_setxattr(m->fs, f, FS_ACL_XATTR_ACCESS, "junk", 4, 0), 0);
    assert_int_equal(fs_acl_get(m->fs, f, FS_ACL_XATTR_ACCESS, &acl), -EUCLEAN);
    assert_int_equal(fs_removexattr(m->fs, f, FS_ACL_XATTR_ACCESS), 0);
}

static void test_inherit(void **state)
{
    struct img *m = *state;
    uint8_t buf[256];
    uint64_t d = mkdirectory(m->fs, ROOT, "d");
    struct fs_acl acl;
    struct fs_stat st;
    uint32_t mode;
    size_t len;

    /* no default ACL: the umask */
    mode = S_IFREG | 0666;
    assert_int_equal(fs_acl_create_mode(m->fs, d, &mode, 022), 0);
    assert_int_equal(mode, S_IFREG | 0644);
    /* default ACL u::rwx u:1001:r u:1002:rw g::r g:50:rx m::rw o::- */
    struct fs_acl_entry def[NNAMED];
    memcpy(def, named, sizeof(def));
    def[0].perm = 7;
    len = encode(buf, sizeof(buf), NNAMED, def);
    assert_int_equal(fs_acl_set(m->fs, d, FS_ACL_XATTR_DEFAULT, buf, len, 1), 0);
    assert_int_equal(attr(m->fs, d).mode, S_IFDIR | 0755);     /* mode untouched */
    /* a file: the umask is not applied, the ACL masks the mode */
    mode = S_IFREG | 0666;
    assert_int_equal(fs_acl_create_mode(m->fs, d, &mode, 077), 1);
    assert_int_equal(mode, S_IFREG | 0660);
    assert_int_equal(fs_mknod(m->fs, d, "f", mode, 0, &cred, &st), 0);
    fs_forget(m->fs, st.ino, 1);
    assert_int_equal(fs_acl_inherit(m->fs, d, st.ino, st.mode), 0);
    assert_int_equal(fs_acl_get(m->fs, st.ino, FS_ACL_XATTR_ACCESS, &acl), 0);
    assert_int_equal(acl.count, NNAMED);
    assert_int_equal(acl.e[0].perm, 6);
    assert_int_equal(fs_getxattr(m->fs, st.ino, FS_ACL_XATTR_DEFAULT, NULL, 0), -ENODATA);
    /* a directory: the default ACL too */
    mode = S_IFDIR | 0777;
    assert_int_equal(fs_acl_create_mode(m->fs, d, &mode, 022), 1);
    assert_int_equal(mode, S_IFDIR | 0760);
    assert_int_equal(fs_mkdir(m->fs, d, "sub", mode, &cred, &st), 0);
    fs_forget(m->fs, st.ino, 1);
    assert_int_equal(fs_acl_inherit(m->fs, d, st.ino, st.mode), 0);
    assert_int_equal(fs_acl_get(m->fs, st.ino, FS_ACL_XATTR_DEFAULT, &acl), 0);
    assert_memory_equal(acl.e, def, sizeof(def));
    assert_int_equal(fs_acl_get(m->fs, st.ino, FS_ACL_XATTR_ACCESS, &acl), 0);
    /* a symlink: nothing */
    assert_int_equal(fs_symlink(m->fs, d, "l", "f", &cred, &st), 0);
    fs_forget(m->fs, st.ino, 1);
    assert_int_equal(fs_acl_inherit(m->fs, d, st.ino, st.mode), 0);
    assert_int_equal(fs_listxattr(m->fs, st.ino, NULL, 0), 0);
    /* a default ACL equivalent to a mode still gives no access ACL */
    len = encode(buf, sizeof(buf), 3, minimal);
    assert_int_equal(fs_acl_set(m->fs, d, FS_ACL_XATTR_DEFAULT, buf, len, 1), 0);
    assert_int_equal(fs_mknod(m->fs, d, "g", S_IFREG | 0640, 0, &cred, &st), 0);
    fs_forget(m->fs, st.ino, 1);
    assert_int_equal(fs_acl_inherit(m->fs, d, st.ino, st.mode), 0);
    assert_int_equal(fs_getxattr(m->fs, st.ino, FS_ACL_XATTR_ACCESS, NULL, 0), -ENODATA);
}

/* Under fs_set_acl_inherit (the FUSE front end with ACLs) fs_mknod and
 * fs_mkdir store the inherited ACLs in the create's own journal operation.
 * Before, the front end stored them after the create, in a transaction of
 * their own: a crash between the two left the file with the mask as its
 * group bits and no ACL (the owning group got what only named entries
 * had), and a failure to store them was undone by an unlink. */
static void test_inherit_in_create(void **state)
{
    struct img *m = *state;
    uint8_t buf[256], chunk[65536];
    struct fs_acl acl;
    struct fs_stat st;
    struct statvfs sv0, sv1;
    uint64_t d = mkdirectory(m->fs, ROOT, "d");
    size_t len = encode(buf, sizeof(buf), NNAMED, named);
    assert_int_equal(fs_acl_set(m->fs, d, FS_ACL_XATTR_DEFAULT, buf, len, 1), 0);

    /* off (the default, noacl): created without an ACL */
    assert_int_equal(fs_mknod(m->fs, d, "plain", S_IFREG | 0660, 0, &cred, &st), 0);
    fs_forget(m->fs, st.ino, 1);
    assert_int_equal(fs_getxattr(m->fs, st.ino, FS_ACL_XATTR_ACCESS, NULL, 0), -ENODATA);

    fs_set_acl_inherit(m->fs, 1);
    /* a file: the access ACL (60 bytes of value: an xattr block), and the
     * attributes returned count that block */
    assert_int_equal(fs_mknod(m->fs, d, "f", S_IFREG | 0660, 0, &cred, &st), 0);
    fs_forget(m->fs, st.ino, 1);
    assert_int_equal(st.mode, S_IFREG | 0660);
    assert_int_equal(st.blocks512, 8);
    assert_int_equal(fs_acl_get(m->fs, st.ino, FS_ACL_XATTR_ACCESS, &acl), 0);
    assert_int_equal(acl.count, NNAMED);
    /* a directory: its default ACL too; a symlink: nothing */
    assert_int_equal(fs_mkdir(m->fs, d, "sub", S_IFDIR | 0760, &cred, &st), 0);
    fs_forget(m->fs, st.ino, 1);
    assert_int_equal(fs_acl_get(m->fs, st.ino, FS_ACL_XATTR_DEFAULT, &acl), 0);
    assert_memory_equal(acl.e, named, sizeof(named));
    assert_int_equal(fs_acl_get(m->fs, st.ino, FS_ACL_XATTR_ACCESS, &acl), 0);
    assert_int_equal(fs_symlink(m->fs, d, "l", "f", &cred, &st), 0);
    fs_forget(m->fs, st.ino, 1);
    assert_int_equal(fs_listxattr(m->fs, st.ino, NULL, 0), 0);
    /* a whiteout left by a rename: an access ACL, every entry masked by
     * its mode 0 (as on ext4) */
    assert_int_equal(fs_mknod(m->fs, d, "moved", S_IFREG | 0660, 0, &cred, &st), 0);
    fs_forget(m->fs, st.ino, 1);
    assert_int_equal(fs_rename(m->fs, d, "moved", d, "moved2", FS_RENAME_WHITEOUT), 0);
    int64_t w = lookup(m->fs, d, "moved");
    assert_true(w > 0);
    assert_int_equal(fs_getattr(m->fs, (uint64_t)w, &st), 0);
    assert_int_equal(st.mode, S_IFCHR);
    assert_int_equal(fs_acl_get(m->fs, (uint64_t)w, FS_ACL_XATTR_ACCESS, &acl), 0);
    assert_int_equal(acl.count, NNAMED);
    for (size_t i = 0; i < acl.count; i++)      /* the owning group: under the mask */
        if (acl.e[i].tag == FS_ACL_USER_OBJ || acl.e[i].tag == FS_ACL_MASK ||
            acl.e[i].tag == FS_ACL_OTHER)
            assert_int_equal(acl.e[i].perm, 0);

    /* durable together: once the create is committed, so is the ACL */
    assert_int_equal(fs_mknod(m->fs, d, "g", S_IFREG | 0660, 0, &cred, &st), 0);
    fs_forget(m->fs, st.ino, 1);
    assert_int_equal(fs_fsync(m->fs, d, 0), 0);
    fs_abandon(m->fs);                  /* power cut */
    m->fs = NULL;
    img_mount(m);
    fs_set_acl_inherit(m->fs, 1);
    int64_t g = lookup(m->fs, d, "g");
    assert_true(g > 0);
    assert_int_equal(fs_acl_get(m->fs, (uint64_t)g, FS_ACL_XATTR_ACCESS, &acl), 0);
    assert_int_equal(acl.count, NNAMED);

    /* no block for the ACL: ENOSPC, and nothing was created */
    uint64_t filler = mkfile(m->fs, ROOT, "filler");
    memset(chunk, 'x', sizeof(chunk));
    for (uint64_t off = 0;; off += sizeof(chunk)) {
        ssize_t n = fs_write(m->fs, filler, off, chunk, sizeof(chunk));
        if (n < (ssize_t)sizeof(chunk))
            break;
    }
    assert_int_equal(fs_statfs(m->fs, &sv0), 0);
    assert_int_equal(fs_mknod(m->fs, d, "h", S_IFREG | 0660, 0, &cred, &st), -ENOSPC);
    assert_int_equal(fs_mkdir(m->fs, d, "hd", S_IFDIR | 0760, &cred, &st), -ENOSPC);
    assert_int_equal(lookup(m->fs, d, "h"), -ENOENT);
    assert_int_equal(lookup(m->fs, d, "hd"), -ENOENT);
    assert_int_equal(fs_statfs(m->fs, &sv1), 0);
    assert_int_equal(sv1.f_ffree, sv0.f_ffree);
    assert_int_equal(sv1.f_bfree, sv0.f_bfree);
    assert_int_equal(attr(m->fs, d).nlink, 3);    /* ".", its entry, "sub" */
    fs_set_acl_inherit(m->fs, 0);       /* it was the ACL's block that failed */
    assert_int_equal(fs_mknod(m->fs, d, "h", S_IFREG | 0660, 0, &cred, &st), 0);
    fs_forget(m->fs, st.ino, 1);
    assert_int_equal(fs_unlink(m->fs, ROOT, "filler"), 0);
    img_unmount_check(m);
}

/* fsck checks ACL values with the filesystem's parser: an invalid one, in
 * the inode or in an xattr block, is reported by -n and removed by -y; the
 * file keeps its mode, and the directory whose default ACL was bad takes
 * new inodes again. */
static void test_fsck_bad_acl(void **state)
{
    struct img *m = *state;
    uint8_t buf[256];
    uint64_t d = mkdirectory(m->fs, ROOT, "d"), f = mkfile(m->fs, ROOT, "f");
    size_t len = encode(buf, sizeof(buf), NNAMED, named);
    assert_int_equal(fs_acl_set(m->fs, f, FS_ACL_XATTR_ACCESS, buf, len, 1), 0);
    uint32_t fmode = attr(m->fs, f).mode;
    memcpy(buf + 4 + 8, buf + 4, 8);            /* two USER_OBJ entries */
    assert_int_equal(fs_setxattr(m->fs, f, FS_ACL_XATTR_ACCESS, buf, len, 0), 0);
    len = encode(buf, sizeof(buf), 3, minimal);
    buf[4 + 8] = 0x77;                          /* a tag no ACL entry has */
    assert_int_equal(fs_setxattr(m->fs, d, FS_ACL_XATTR_DEFAULT, buf, len, 0), 0);
    uint32_t mode = S_IFREG | 0666;
    assert_int_equal(fs_acl_create_mode(m->fs, d, &mode, 022), -EUCLEAN);
    img_unmount(m);

    char *rep;
    assert_int_equal(fsck_report(m->path, FS_CHECK_NO, &rep), FSCK_EXIT_UNCORRECTED);
    assert_non_null(strstr(rep, "invalid ACL in " FS_ACL_XATTR_ACCESS " (xattr block"));
    assert_non_null(strstr(rep, "invalid ACL in " FS_ACL_XATTR_DEFAULT " (in the inode)"));
    free(rep);
    /* preen leaves them: dropping an ACL changes who may access the file */
    assert_int_equal(fsck_report(m->path, FS_CHECK_PREEN, &rep) & FSCK_EXIT_UNCORRECTED,
                     FSCK_EXIT_UNCORRECTED);
    assert_non_null(strstr(rep, "invalid ACL: not repaired in preen mode"));
    free(rep);
    assert_int_equal(fsck_report(m->path, FS_CHECK_NO, NULL), FSCK_EXIT_UNCORRECTED);
    assert_int_equal(fsck_report(m->path, FS_CHECK_YES, &rep), FSCK_EXIT_CORRECTED);
    assert_non_null(strstr(rep, "invalid ACL " FS_ACL_XATTR_ACCESS " removed from xattr block"));
    assert_non_null(strstr(rep, "invalid ACL " FS_ACL_XATTR_DEFAULT " removed from the inode"));
    free(rep);
    assert_int_equal(fsck_report(m->path, FS_CHECK_NO, NULL), FSCK_EXIT_OK);

    img_mount(m);
    assert_int_equal(fs_getxattr(m->fs, f, FS_ACL_XATTR_ACCESS, NULL, 0), -ENODATA);
    assert_int_equal(fs_getxattr(m->fs, d, FS_ACL_XATTR_DEFAULT, NULL, 0), -ENODATA);
    assert_int_equal(attr(m->fs, f).mode, fmode);
    mode = S_IFREG | 0666;
    assert_int_equal(fs_acl_create_mode(m->fs, d, &mode, 022), 0);
    assert_int_equal(mode, S_IFREG | 0644);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, img_setup, img_teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_garbage),
        cmocka_unit_test(test_equiv_mode),
        cmocka_unit_test(test_chmod),
        cmocka_unit_test(test_create_masq),
        T(test_set_access),
        T(test_inherit),
        T(test_inherit_in_create),
        T(test_fsck_bad_acl),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
