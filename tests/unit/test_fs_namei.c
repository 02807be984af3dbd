/*
 * test_fs_namei.c — name operations of the fs core (src/fs/namei.c):
 * lookup, mknod, mkdir, symlink/readlink, link, unlink, rmdir.
 *
 * Every errno case of these functions, link counts of files and
 * directories, lookup references, setgid inheritance, symlink targets up to
 * 4095 bytes, timestamps (parent mtime/ctime on create and unlink, ctime on
 * link and chmod), unlinked-but-referenced inodes, and persistence across
 * fs_unmount/fs_mount. Images are sparse mkstemp files in /tmp.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
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
    static const struct img_config c = { .name = "namei", .bytes = 64 * MiB, .mount = 1,
                                         .check_at_teardown = 1 };
    return img_setup_config(state, &c);
}

static uint64_t refs(struct fs *fs, uint64_t ino)
{
    jnl_lock(fs->jnl);
    uint64_t r = fs_icache_refs(fs, ino);
    jnl_unlock(fs->jnl);
    return r;
}

static char *long_name(size_t len)
{
    char *s = malloc(len + 1);
    assert_non_null(s);
    memset(s, 'n', len);
    s[len] = '\0';
    return s;
}

/* ==== lookup ==================================================================== */

static void test_lookup(void **state)
{
    struct img *m = *state;
    struct fs_stat st;
    char *n255 = long_name(255), *n256 = long_name(256);

    uint64_t d = mkdirectory(m->fs, ROOT, "d");
    uint64_t f = mkfile(m->fs, d, "f");
    uint64_t l = mkfile(m->fs, d, n255);

    assert_int_equal(lookup(m->fs, d, "f"), (int64_t)f);
    assert_int_equal(lookup(m->fs, d, n255), (int64_t)l);
    assert_int_equal(lookup(m->fs, d, "g"), -ENOENT);
    assert_int_equal(lookup(m->fs, d, ""), -ENOENT);
    assert_int_equal(lookup(m->fs, d, n256), -ENAMETOOLONG);
    assert_int_equal(lookup(m->fs, d, "f/x"), -EINVAL);
    assert_int_equal(lookup(m->fs, f, "x"), -ENOTDIR);
    assert_int_equal(lookup(m->fs, 999999, "x"), -ENOENT);
    assert_int_equal(lookup(m->fs, d, "."), (int64_t)d);
    assert_int_equal(lookup(m->fs, d, ".."), ROOT);
    assert_int_equal(lookup(m->fs, ROOT, ".."), ROOT);
    assert_int_equal(lookup(m->fs, ROOT, "lost+found") > 0, 1);

    /* each successful lookup takes one reference */
    assert_int_equal(refs(m->fs, f), 0);
    assert_int_equal(fs_lookup(m->fs, d, "f", &st), 0);
    assert_int_equal(fs_lookup(m->fs, d, "f", &st), 0);
    assert_int_equal(st.ino, f);
    assert_int_equal(st.mode, S_IFREG | 0644);
    assert_int_equal(st.uid, 1000);
    assert_int_equal(refs(m->fs, f), 2);
    fs_forget(m->fs, f, 2);
    assert_int_equal(refs(m->fs, f), 0);
    free(n255);
    free(n256);
}

/* "." of any inode, as the kernel asks when it decodes a file handle of an
 * inode it no longer caches: works for files and directories, takes a
 * reference; -ENOENT (the kernel's ESTALE) for a free, unlinked or
 * out-of-range inode. */
static void test_lookup_dot_any_inode(void **state)
{
    struct img *m = *state;
    struct fs_stat st;

    uint64_t d = mkdirectory(m->fs, ROOT, "d");
    uint64_t f = mkfile(m->fs, d, "f");
    uint64_t sub = mkdirectory(m->fs, d, "sub");
    assert_int_equal(fs_lookup(m->fs, f, ".", &st), 0);
    assert_int_equal(st.ino, f);
    assert_int_equal(st.mode, S_IFREG | 0644);
    assert_int_equal(st.generation, attr(m->fs, f).generation);
    assert_int_equal(refs(m->fs, f), 1);
    fs_forget(m->fs, f, 1);
    assert_int_equal(lookup(m->fs, sub, "."), (int64_t)sub);
    assert_int_equal(lookup(m->fs, sub, ".."), (int64_t)d);
    assert_int_equal(lookup(m->fs, f, ".."), -ENOTDIR);
    assert_int_equal(lookup(m->fs, 0, "."), -ENOENT);
    assert_int_equal(lookup(m->fs, UINT64_MAX, "."), -ENOENT);
    assert_int_equal(lookup(m->fs, 999999, "."), -ENOENT);

    /* deleted: the number is free, or (open) unlinked but not yet freed */
    uint64_t gen = attr(m->fs, f).generation;
    assert_int_equal(fs_unlink(m->fs, d, "f"), 0);
    assert_int_equal(lookup(m->fs, f, "."), -ENOENT);
    assert_int_equal(fs_rmdir(m->fs, d, "sub"), 0);
    assert_int_equal(lookup(m->fs, sub, "."), -ENOENT);
    assert_int_equal(fs_mknod(m->fs, d, "o", S_IFREG | 0600, 0, &cred, &st), 0);
    uint64_t o = st.ino;
    assert_int_equal(fs_unlink(m->fs, d, "o"), 0);       /* still referenced */
    assert_int_equal(lookup(m->fs, o, "."), -ENOENT);
    fs_forget(m->fs, o, 1);

    /* a reused number answers with a new generation */
    uint64_t again = 0;
    for (int i = 0; i < 64 && again != f; i++) {
        char name[16];
        snprintf(name, sizeof(name), "n%d", i);
        again = mkfile(m->fs, d, name);
    }
    assert_int_equal(again, f);
    assert_int_equal(fs_lookup(m->fs, f, ".", &st), 0);
    assert_true(st.generation > gen);
    fs_forget(m->fs, f, 1);
}

/* ==== creation ================================================================= */

static void test_create_errors(void **state)
{
    struct img *m = *state;
    struct fs_stat st;
    char *n256 = long_name(256);

    uint64_t d = mkdirectory(m->fs, ROOT, "d");
    uint64_t f = mkfile(m->fs, d, "f");
    struct statvfs sv0, sv1;
    assert_int_equal(fs_statfs(m->fs, &sv0), 0);
    assert_int_equal(fs_mknod(m->fs, d, "f", S_IFREG | 0644, 0, &cred, &st), -EEXIST);
    assert_int_equal(fs_mkdir(m->fs, d, "f", 0755, &cred, &st), -EEXIST);
    assert_int_equal(fs_symlink(m->fs, d, "f", "t", &cred, &st), -EEXIST);
    assert_int_equal(fs_mkdir(m->fs, d, ".", 0755, &cred, &st), -EEXIST);
    assert_int_equal(fs_mkdir(m->fs, d, "..", 0755, &cred, &st), -EEXIST);
    assert_int_equal(fs_mknod(m->fs, d, n256, S_IFREG | 0644, 0, &cred, &st), -ENAMETOOLONG);
    assert_int_equal(fs_mkdir(m->fs, d, n256, 0755, &cred, &st), -ENAMETOOLONG);
    assert_int_equal(fs_symlink(m->fs, d, n256, "t", &cred, &st), -ENAMETOOLONG);
    assert_int_equal(fs_mknod(m->fs, d, "", S_IFREG | 0644, 0, &cred, &st), -EINVAL);
    assert_int_equal(fs_mknod(m->fs, d, "a/b", S_IFREG | 0644, 0, &cred, &st), -EINVAL);
    assert_int_equal(fs_mknod(m->fs, f, "x", S_IFREG | 0644, 0, &cred, &st), -ENOTDIR);
    assert_int_equal(fs_mkdir(m->fs, f, "x", 0755, &cred, &st), -ENOTDIR);
    assert_int_equal(fs_symlink(m->fs, f, "x", "t", &cred, &st), -ENOTDIR);
    assert_int_equal(fs_mknod(m->fs, 999999, "x", S_IFREG | 0644, 0, &cred, &st), -ENOENT);
    assert_int_equal(fs_mknod(m->fs, d, "x", S_IFDIR | 0755, 0, &cred, &st), -EPERM);
    assert_int_equal(fs_mknod(m->fs, d, "x", S_IFLNK | 0777, 0, &cred, &st), -EINVAL);
    /* nothing was created by the failures, no inode or block leaked */
    assert_int_equal(attr(m->fs, d).size, 1);
    assert_int_equal(fs_statfs(m->fs, &sv1), 0);
    assert_int_equal(sv1.f_ffree, sv0.f_ffree);
    assert_int_equal(sv1.f_bfree, sv0.f_bfree);
    assert_int_equal(lookup(m->fs, d, "x"), -ENOENT);
    free(n256);
}

static void test_create_kinds(void **state)
{
    struct img *m = *state;
    struct fs_stat st;

    uint64_t rootsize = attr(m->fs, ROOT).size;
    assert_int_equal(fs_mknod(m->fs, ROOT, "fifo", S_IFIFO | 0600, 0, &cred, &st), 0);
    assert_int_equal(st.mode, S_IFIFO | 0600);
    assert_int_equal(st.nlink, 1);
    assert_int_equal(st.uid, 1000);
    assert_int_equal(st.gid, 1000);
    assert_int_equal(st.size, 0);
    fs_forget(m->fs, st.ino, 1);
    assert_int_equal(fs_mknod(m->fs, ROOT, "chr", S_IFCHR | 0620, makedev(4, 64), &cred, &st), 0);
    assert_int_equal(st.rdev, makedev(4, 64));
    assert_int_equal(st.mode & S_IFMT, S_IFCHR);
    fs_forget(m->fs, st.ino, 1);
    assert_int_equal(fs_mknod(m->fs, ROOT, "blk", S_IFBLK | 0660, makedev(8, 1), &cred, &st), 0);
    assert_int_equal(st.rdev, makedev(8, 1));
    fs_forget(m->fs, st.ino, 1);
    assert_int_equal(fs_mknod(m->fs, ROOT, "sock", S_IFSOCK | 0755, 0, &cred, &st), 0);
    fs_forget(m->fs, st.ino, 1);
    assert_int_equal(fs_mknod(m->fs, ROOT, "plain", 0640, 0, &cred, &st), 0);   /* type 0 */
    assert_int_equal(st.mode, S_IFREG | 0640);
    fs_forget(m->fs, st.ino, 1);
    /* the reference count of a created inode is one */
    assert_int_equal(fs_mknod(m->fs, ROOT, "ref", S_IFREG | 0644, 0, &cred, &st), 0);
    assert_int_equal(refs(m->fs, st.ino), 1);
    fs_forget(m->fs, st.ino, 1);
    assert_int_equal(attr(m->fs, ROOT).size, rootsize + 6);

    img_remount(m);
    int64_t chr = lookup(m->fs, ROOT, "chr");
    assert_true(chr > 0);
    st = attr(m->fs, (uint64_t)chr);
    assert_int_equal(st.rdev, makedev(4, 64));
    assert_int_equal(st.mode, S_IFCHR | 0620);
    st = attr(m->fs, (uint64_t)lookup(m->fs, ROOT, "fifo"));
    assert_int_equal(st.mode, S_IFIFO | 0600);
}

/* Directory link counts: 2 + subdirectories; ".." is the parent. */
static void test_mkdir_rmdir_links(void **state)
{
    struct img *m = *state;
    struct fs_stat st;

    uint32_t root_links = attr(m->fs, ROOT).nlink;
    uint64_t a = mkdirectory(m->fs, ROOT, "a");
    assert_int_equal(attr(m->fs, ROOT).nlink, root_links + 1);
    st = attr(m->fs, a);
    assert_int_equal(st.nlink, 2);
    assert_int_equal(st.mode, S_IFDIR | 0755);
    assert_int_equal(st.size, 0);
    uint64_t b = mkdirectory(m->fs, a, "b");
    uint64_t c = mkdirectory(m->fs, a, "c");
    mkfile(m->fs, a, "file");
    assert_int_equal(attr(m->fs, a).nlink, 4);   /* files do not count */
    assert_int_equal(attr(m->fs, a).size, 3);
    assert_int_equal(lookup(m->fs, b, ".."), (int64_t)a);
    assert_int_equal(lookup(m->fs, c, ".."), (int64_t)a);

    img_remount(m);
    assert_int_equal(attr(m->fs, a).nlink, 4);
    assert_int_equal(lookup(m->fs, b, ".."), (int64_t)a);

    /* rmdir errors */
    mkfile(m->fs, b, "inside");
    assert_int_equal(fs_rmdir(m->fs, a, "b"), -ENOTEMPTY);
    assert_int_equal(fs_rmdir(m->fs, a, "file"), -ENOTDIR);
    assert_int_equal(fs_rmdir(m->fs, a, "nope"), -ENOENT);
    assert_int_equal(fs_rmdir(m->fs, a, "."), -EINVAL);
    assert_int_equal(fs_rmdir(m->fs, a, ".."), -ENOTEMPTY);
    assert_int_equal(fs_rmdir(m->fs, a, ""), -EINVAL);
    assert_int_equal(fs_rmdir(m->fs, (uint64_t)lookup(m->fs, a, "file"), "x"), -ENOTDIR);
    /* unlink of a directory */
    assert_int_equal(fs_unlink(m->fs, a, "c"), -EISDIR);
    assert_int_equal(fs_unlink(m->fs, a, "."), -EISDIR);

    assert_int_equal(fs_rmdir(m->fs, a, "c"), 0);
    assert_int_equal(attr(m->fs, a).nlink, 3);
    assert_int_equal(attr(m->fs, a).size, 2);
    assert_int_equal(fs_getattr(m->fs, c, &st), -ENOENT);      /* freed */
    assert_int_equal(lookup(m->fs, a, "c"), -ENOENT);
    assert_int_equal(fs_unlink(m->fs, b, "inside"), 0);
    assert_int_equal(fs_rmdir(m->fs, a, "b"), 0);
    assert_int_equal(fs_unlink(m->fs, a, "file"), 0);
    assert_int_equal(attr(m->fs, a).nlink, 2);
    assert_int_equal(fs_rmdir(m->fs, ROOT, "a"), 0);
    assert_int_equal(attr(m->fs, ROOT).nlink, root_links);

    /* a removed directory still referenced: no new entries in it */
    assert_int_equal(fs_mkdir(m->fs, ROOT, "gone", 0755, &cred, &st), 0);
    uint64_t gone = st.ino;
    assert_int_equal(fs_rmdir(m->fs, ROOT, "gone"), 0);
    assert_int_equal(fs_mknod(m->fs, gone, "x", S_IFREG | 0644, 0, &cred, &st), -ENOENT);
    assert_int_equal(fs_mkdir(m->fs, gone, "x", 0755, &cred, &st), -ENOENT);
    fs_forget(m->fs, gone, 1);
}

/* Files and directories created in a setgid directory take its group;
 * directories also inherit S_ISGID. */
/* A corrupt image with a second entry for a directory (directory hard
 * links do not exist): rmdir through that entry is refused (EUCLEAN)
 * instead of freeing a directory its real parent still names. */
static void test_rmdir_other_name(void **state)
{
    struct img *m = *state;
    struct fs *fs = m->fs;
    uint64_t a = mkdirectory(fs, ROOT, "a"), b = mkdirectory(fs, ROOT, "b");
    uint64_t sub = mkdirectory(fs, a, "sub");
    assert_int_equal(jnl_begin(fs->jnl), 0);
    struct mmapfs_disk_inode bdi;
    assert_int_equal(fs_inode_get(fs, b, &bdi), 0);
    assert_int_equal(fs_dir_add(fs, b, &bdi, "alias", 5, sub, DT_DIR), 0);
    assert_int_equal(fs_inode_put(fs, b, &bdi), 0);
    assert_int_equal(fs_end(fs, 0), 0);

    assert_int_equal(fs_rmdir(fs, b, "alias"), -EUCLEAN);
    assert_int_equal(lookup(fs, a, "sub"), (int64_t)sub);
    assert_int_equal(fs_rmdir(fs, a, "sub"), 0);        /* through its own name: fine */
    m->skip_fsck = 1;           /* the alias is still there: the image stays corrupt */
}

static void test_setgid_inheritance(void **state)
{
    struct img *m = *state;
    struct fs_stat st;
    const struct fs_cred other = { 2000, 500 };

    assert_int_equal(fs_mkdir(m->fs, ROOT, "sg", 02775, &other, &st), 0);
    uint64_t sg = st.ino;
    fs_forget(m->fs, sg, 1);
    assert_int_equal(st.mode, S_IFDIR | 02775);
    assert_int_equal(st.gid, 500);

    assert_int_equal(fs_mknod(m->fs, sg, "f", S_IFREG | 0644, 0, &cred, &st), 0);
    fs_forget(m->fs, st.ino, 1);
    assert_int_equal(st.uid, 1000);
    assert_int_equal(st.gid, 500);
    assert_int_equal(st.mode, S_IFREG | 0644);
    assert_int_equal(fs_mkdir(m->fs, sg, "sub", 0755, &cred, &st), 0);
    fs_forget(m->fs, st.ino, 1);
    assert_int_equal(st.gid, 500);
    assert_int_equal(st.mode, S_IFDIR | 02755);
    uint64_t sub = st.ino;
    assert_int_equal(fs_symlink(m->fs, sub, "l", "target", &cred, &st), 0);
    fs_forget(m->fs, st.ino, 1);
    assert_int_equal(st.gid, 500);

    /* outside: the caller's group, no S_ISGID */
    assert_int_equal(fs_mkdir(m->fs, ROOT, "plain", 0755, &cred, &st), 0);
    fs_forget(m->fs, st.ino, 1);
    assert_int_equal(st.gid, 1000);
    assert_int_equal(st.mode, S_IFDIR | 0755);
}

static void test_symlink_readlink(void **state)
{
    struct img *m = *state;
    struct fs_stat st;
    char buf[8192];

    assert_int_equal(fs_symlink(m->fs, ROOT, "s", "hello/world", &cred, &st), 0);
    uint64_t s = st.ino;
    fs_forget(m->fs, s, 1);
    assert_int_equal(st.mode, S_IFLNK | 0777);
    assert_int_equal(st.size, 11);
    assert_int_equal(st.nlink, 1);
    assert_int_equal(fs_readlink(m->fs, s, buf, sizeof(buf)), 11);
    assert_memory_equal(buf, "hello/world", 11);
    memset(buf, 0, sizeof(buf));
    assert_int_equal(fs_readlink(m->fs, s, buf, 5), 11);      /* truncated copy */
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(buf[5], 0);

    /* 4095 bytes is the limit */
    char *t4095 = long_name(4095), *t4096 = long_name(4096);
    for (int i = 0; i < 4095; i++)
        t4095[i] = (char)('a' + i % 26);
    assert_int_equal(fs_symlink(m->fs, ROOT, "long", t4095, &cred, &st), 0);
    uint64_t lg = st.ino;
    fs_forget(m->fs, lg, 1);
    assert_int_equal(st.size, 4095);
    assert_int_equal(fs_symlink(m->fs, ROOT, "toolong", t4096, &cred, &st), -ENAMETOOLONG);
    assert_int_equal(fs_symlink(m->fs, ROOT, "empty", "", &cred, &st), -ENOENT);
    assert_int_equal(lookup(m->fs, ROOT, "toolong"), -ENOENT);

    uint64_t f = mkfile(m->fs, ROOT, "file");
    assert_int_equal(fs_readlink(m->fs, f, buf, sizeof(buf)), -EINVAL);
    assert_int_equal(fs_readlink(m->fs, ROOT, buf, sizeof(buf)), -EINVAL);

    img_remount(m);
    memset(buf, 0, sizeof(buf));
    assert_int_equal(fs_readlink(m->fs, lg, buf, sizeof(buf)), 4095);
    assert_memory_equal(buf, t4095, 4095);
    assert_int_equal(fs_readlink(m->fs, s, buf, sizeof(buf)), 11);
    assert_memory_equal(buf, "hello/world", 11);

    /* removing a symlink frees it and its data */
    assert_int_equal(fs_unlink(m->fs, ROOT, "long"), 0);
    assert_int_equal(fs_getattr(m->fs, lg, &st), -ENOENT);
    free(t4095);
    free(t4096);
}

/* ==== link / unlink ============================================================= */

static void test_link_unlink(void **state)
{
    struct img *m = *state;
    struct fs_stat st;

    uint64_t d1 = mkdirectory(m->fs, ROOT, "d1");
    uint64_t d2 = mkdirectory(m->fs, ROOT, "d2");
    uint64_t f = mkfile(m->fs, d1, "f");
    assert_int_equal(fs_link(m->fs, f, d2, "g", &st), 0);
    assert_int_equal(st.ino, f);
    assert_int_equal(st.nlink, 2);
    assert_int_equal(refs(m->fs, f), 1);
    fs_forget(m->fs, f, 1);
    assert_int_equal(fs_link(m->fs, f, d1, "h", &st), 0);
    fs_forget(m->fs, f, 1);
    assert_int_equal(attr(m->fs, f).nlink, 3);
    assert_int_equal(lookup(m->fs, d2, "g"), (int64_t)f);
    assert_int_equal(attr(m->fs, d1).size, 2);
    assert_int_equal(attr(m->fs, d2).nlink, 2);   /* file links do not count */

    /* errors */
    assert_int_equal(fs_link(m->fs, f, d2, "g", &st), -EEXIST);
    assert_int_equal(fs_link(m->fs, d1, d2, "dirlink", &st), -EPERM);
    assert_int_equal(fs_link(m->fs, f, f, "x", &st), -ENOTDIR);
    assert_int_equal(fs_link(m->fs, 999999, d2, "x", &st), -ENOENT);
    assert_int_equal(fs_link(m->fs, f, d2, "", &st), -EINVAL);
    assert_int_equal(fs_link(m->fs, f, d2, ".", &st), -EEXIST);
    assert_int_equal(fs_unlink(m->fs, d1, "nope"), -ENOENT);
    assert_int_equal(fs_unlink(m->fs, d1, "a/b"), -EINVAL);
    assert_int_equal(fs_unlink(m->fs, f, "x"), -ENOTDIR);
    assert_int_equal(attr(m->fs, f).nlink, 3);

    img_remount(m);
    assert_int_equal(attr(m->fs, f).nlink, 3);
    assert_int_equal(fs_unlink(m->fs, d1, "f"), 0);
    assert_int_equal(attr(m->fs, f).nlink, 2);
    assert_int_equal(lookup(m->fs, d1, "f"), -ENOENT);
    assert_int_equal(fs_unlink(m->fs, d1, "h"), 0);
    assert_int_equal(fs_unlink(m->fs, d2, "g"), 0);
    assert_int_equal(fs_getattr(m->fs, f, &st), -ENOENT);     /* freed */
    assert_int_equal(attr(m->fs, d1).size, 0);
}

/* The link-drop hook fires for a non-directory that keeps other names
 * (unlink, rename over it), with its inode number, and for nothing else:
 * not for the last name, a directory, a failed unlink or a plain move. */
struct drops { uint64_t n, last; };

static void count_drop(void *ctx, uint64_t ino)
{
    struct drops *d = ctx;
    d->n++;
    d->last = ino;
}

static void test_link_drop_hook(void **state)
{
    struct img *m = *state;
    struct fs_stat st;
    struct drops d = { 0, 0 };

    fs_set_link_drop_fn(m->fs, count_drop, &d);
    uint64_t dir = mkdirectory(m->fs, ROOT, "d");
    uint64_t f = mkfile(m->fs, dir, "f");
    uint64_t g = mkfile(m->fs, dir, "g");
    assert_int_equal(fs_link(m->fs, f, dir, "f2", &st), 0);
    fs_forget(m->fs, f, 1);
    assert_int_equal(fs_link(m->fs, f, ROOT, "f3", &st), 0);
    fs_forget(m->fs, f, 1);
    assert_int_equal(d.n, 0);                                   /* links add */

    assert_int_equal(fs_unlink(m->fs, dir, "f2"), 0);           /* 3 -> 2 */
    assert_int_equal(d.n, 1);
    assert_int_equal(d.last, f);
    assert_int_equal(fs_unlink(m->fs, dir, "nope"), -ENOENT);
    assert_int_equal(fs_rename(m->fs, dir, "g", dir, "g2", 0), 0);  /* a move */
    assert_int_equal(d.n, 1);

    assert_int_equal(fs_rename(m->fs, dir, "g2", ROOT, "f3", 0), 0);  /* over f: 2 -> 1 */
    assert_int_equal(d.n, 2);
    assert_int_equal(d.last, f);
    assert_int_equal(attr(m->fs, f).nlink, 1);
    assert_int_equal(fs_unlink(m->fs, dir, "f"), 0);            /* the last name */
    assert_int_equal(fs_unlink(m->fs, ROOT, "f3"), 0);          /* g's only name */
    assert_int_equal(fs_rmdir(m->fs, ROOT, "d"), 0);            /* a directory */
    assert_int_equal(d.n, 2);
    assert_int_equal(fs_getattr(m->fs, g, &st), -ENOENT);
    fs_set_link_drop_fn(m->fs, NULL, NULL);
}

/* An unlinked inode with a lookup reference lives until fs_forget; it cannot
 * be linked again. */
static void test_unlink_referenced(void **state)
{
    struct img *m = *state;
    struct fs_stat st;

    assert_int_equal(fs_mknod(m->fs, ROOT, "open", S_IFREG | 0644, 0, &cred, &st), 0);
    uint64_t f = st.ino;
    assert_int_equal(fs_write(m->fs, f, 0, "data", 4), 4);
    assert_int_equal(fs_unlink(m->fs, ROOT, "open"), 0);
    assert_int_equal(lookup(m->fs, ROOT, "open"), -ENOENT);
    assert_int_equal(fs_getattr(m->fs, f, &st), 0);
    assert_int_equal(st.nlink, 0);
    char buf[4];
    assert_int_equal(fs_read(m->fs, f, 0, buf, 4), 4);
    assert_memory_equal(buf, "data", 4);
    assert_int_equal(fs_link(m->fs, f, ROOT, "again", &st), -ENOENT);
    fs_forget(m->fs, f, 1);
    assert_int_equal(fs_getattr(m->fs, f, &st), -ENOENT);
}

/* readdirplus fill: the offset after the last entry taken, and whether
 * "keep" was among them (with the reference that took). */
struct plus_seen {
    uint64_t off;
    int keep;
};

static int seen_plus(void *ctx, const char *name, const struct fs_stat *st, uint64_t next_off)
{
    struct plus_seen *p = ctx;
    (void)st;
    p->off = next_off;
    p->keep |= strcmp(name, "keep") == 0;
    return 0;
}

static void edit_no_links(struct mmapfs_disk_inode *di)
{
    di->nlink = 0;
}

/* A named file whose link count was damaged to 0 (checksum valid): a lookup
 * and a readdirplus of its name are EUCLEAN and take no reference. Before,
 * they handed it out, and the kernel's FORGET of that reference released
 * the "unlinked" inode: a stat or cat of an intact file freed its blocks
 * while its name stayed. fsck -y then gives it its link count back. */
static void test_named_without_links(void **state)
{
    struct img *m = *state;
    struct fs_stat st;
    char data[20000], buf[sizeof(data)];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)(i * 7 + 1);
    uint64_t f = mkfile(m->fs, ROOT, "keep");
    assert_int_equal(fs_write(m->fs, f, 0, data, sizeof(data)), (ssize_t)sizeof(data));
    img_unmount_check(m);
    img_poke_inode(m->path, f, edit_no_links);

    img_mount(m);
    int err = fs_lookup(m->fs, ROOT, "keep", &st);
    if (err == 0)
        fs_forget(m->fs, f, 1);                 /* what the kernel does */
    assert_int_equal(err, -EUCLEAN);
    struct plus_seen seen = { 2, 0 };
    uint64_t off;
    do {            /* entries before the damaged one come in a batch of their own */
        off = seen.off;
        err = fs_readdir(m->fs, ROOT, off, 1, seen_plus, &seen);
    } while (err == 0 && seen.off != off);
    if (seen.keep)
        fs_forget(m->fs, f, 1);
    assert_false(seen.keep);
    assert_int_equal(err, -EUCLEAN);
    assert_int_equal(fs_rename(m->fs, ROOT, "keep", ROOT, "other", 0), -EUCLEAN);
    assert_int_equal(fs_unlink(m->fs, ROOT, "keep"), -EUCLEAN);
    img_unmount(m);

    struct fs_check_options co = { .mode = FS_CHECK_YES, .force = 1 };
    assert_int_equal(fs_check(m->path, &co, stderr), FSCK_EXIT_CORRECTED);
    img_mount(m);
    assert_int_equal(lookup(m->fs, ROOT, "keep"), (int64_t)f);
    assert_int_equal(attr(m->fs, f).nlink, 1);
    assert_int_equal(fs_read(m->fs, f, 0, buf, sizeof(buf)), (ssize_t)sizeof(buf));
    assert_memory_equal(buf, data, sizeof(data));
}

/* EMLINK after 65000 links of one file. */
static void test_link_max(void **state)
{
    struct img *m = *state;
    struct fs_stat st;
    char name[32];
    int err = 0;
    unsigned i;

    uint64_t d = mkdirectory(m->fs, ROOT, "links");
    uint64_t f = mkfile(m->fs, d, "target");
    for (i = 0; i < 70000; i++) {
        snprintf(name, sizeof(name), "l%u", i);
        err = fs_link(m->fs, f, d, name, &st);
        if (err)
            break;
        fs_forget(m->fs, f, 1);
    }
    assert_int_equal(err, -EMLINK);
    assert_int_equal(attr(m->fs, f).nlink, i + 1);
    assert_true(i + 1 >= 65000);
    assert_int_equal(attr(m->fs, d).size, i + 1);
    /* one link fewer: linking works again */
    assert_int_equal(fs_unlink(m->fs, d, "l0"), 0);
    assert_int_equal(fs_link(m->fs, f, d, "l0", &st), 0);
    fs_forget(m->fs, f, 1);
}

/* ==== timestamps ================================================================ */

static void test_times(void **state)
{
    struct img *m = *state;
    struct fs_stat st;

    uint64_t d = mkdirectory(m->fs, ROOT, "t");
    struct fs_stat d0 = attr(m->fs, d);
    tick();
    uint64_t f = mkfile(m->fs, d, "f");
    struct fs_stat d1 = attr(m->fs, d), f1 = attr(m->fs, f);
    assert_true(ts_after(d1.mtime, d0.mtime));          /* create: parent mtime, ctime */
    assert_true(ts_after(d1.ctime, d0.ctime));
    assert_true(ts_after(f1.ctime, d0.ctime));           /* the new inode: now */
    assert_true(ts_after(f1.mtime, d0.mtime));

    tick();
    uint64_t sub = mkdirectory(m->fs, d, "sub");
    struct fs_stat d2 = attr(m->fs, d);
    assert_true(ts_after(d2.mtime, d1.mtime));
    (void)sub;

    tick();
    assert_int_equal(fs_link(m->fs, f, d, "g", &st), 0);  /* link: inode ctime, parent times */
    fs_forget(m->fs, f, 1);
    struct fs_stat f2 = attr(m->fs, f), d3 = attr(m->fs, d);
    assert_true(ts_after(f2.ctime, f1.ctime));
    assert_int_equal(f2.mtime.tv_sec, f1.mtime.tv_sec);   /* mtime untouched */
    assert_int_equal(f2.mtime.tv_nsec, f1.mtime.tv_nsec);
    assert_true(ts_after(d3.mtime, d2.mtime));

    tick();
    struct fs_setattr sa = { .mode = 0600 };
    assert_int_equal(fs_setattr(m->fs, f, &sa, FS_SET_MODE, &st), 0);   /* chmod: ctime */
    struct fs_stat f3 = attr(m->fs, f);
    assert_true(ts_after(f3.ctime, f2.ctime));
    assert_int_equal(f3.mode, S_IFREG | 0600);

    tick();
    assert_int_equal(fs_unlink(m->fs, d, "g"), 0);        /* unlink: parent, inode ctime */
    struct fs_stat d4 = attr(m->fs, d), f4 = attr(m->fs, f);
    assert_true(ts_after(d4.mtime, d3.mtime));
    assert_true(ts_after(d4.ctime, d3.ctime));
    assert_true(ts_after(f4.ctime, f3.ctime));

    tick();
    assert_int_equal(fs_rmdir(m->fs, d, "sub"), 0);
    struct fs_stat d5 = attr(m->fs, d);
    assert_true(ts_after(d5.mtime, d4.mtime));

    tick();
    assert_int_equal(fs_symlink(m->fs, d, "s", "x", &cred, &st), 0);
    fs_forget(m->fs, st.ino, 1);
    assert_true(ts_after(attr(m->fs, d).mtime, d5.mtime));

    /* failed operations leave the times alone */
    struct fs_stat d6 = attr(m->fs, d);
    tick();
    assert_int_equal(fs_mknod(m->fs, d, "f", S_IFREG | 0644, 0, &cred, &st), -EEXIST);
    assert_int_equal(fs_unlink(m->fs, d, "zz"), -ENOENT);
    struct fs_stat d7 = attr(m->fs, d);
    assert_int_equal(d7.mtime.tv_sec, d6.mtime.tv_sec);
    assert_int_equal(d7.mtime.tv_nsec, d6.mtime.tv_nsec);
}

/* Changes of one inode a few calls apart, within one tick of the coarse
 * clock (or while it stands still, as it was seen to across 12 ms), each
 * move its ctime (and a directory's mtime) forward, as ext4's multigrain
 * timestamps do: otherwise stat(2) cannot tell that the later one
 * happened. */
static void test_times_same_tick(void **state)
{
    struct img *m = *state;
    struct fs_stat st;
    char name[16];

    uint64_t d = mkdirectory(m->fs, ROOT, "tick");
    uint64_t f = mkfile(m->fs, ROOT, "tickf");
    struct fs_stat d0 = attr(m->fs, d), f0 = attr(m->fs, f);
    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        assert_int_equal(fs_symlink(m->fs, d, name, "x", &cred, &st), 0);
        fs_forget(m->fs, st.ino, 1);
        /* one operation stamps a new inode once, its target included */
        struct fs_stat l = attr(m->fs, st.ino);
        assert_false(ts_after(l.mtime, l.atime) || ts_after(l.atime, l.mtime));
        assert_false(ts_after(l.ctime, l.mtime) || ts_after(l.mtime, l.ctime));
        struct fs_stat d1 = attr(m->fs, d);
        assert_true(ts_after(d1.mtime, d0.mtime));
        assert_true(ts_after(d1.ctime, d0.ctime));
        d0 = d1;

        struct fs_setattr sa = { .mode = (i & 1) ? 0600 : 0640 };
        assert_int_equal(fs_setattr(m->fs, f, &sa, FS_SET_MODE, &st), 0);
        struct fs_stat f1 = attr(m->fs, f);
        assert_true(ts_after(f1.ctime, f0.ctime));
        f0 = f1;
    }
}

/* Many files and directories survive a remount with their links. */
static void test_persistence(void **state)
{
    struct img *m = *state;
    char name[32];
    uint64_t dirs[20];

    for (unsigned i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "dir%u", i);
        dirs[i] = mkdirectory(m->fs, ROOT, name);
        for (unsigned j = 0; j < 50; j++) {
            snprintf(name, sizeof(name), "f%u", j);
            mkfile(m->fs, dirs[i], name);
        }
        mkdirectory(m->fs, dirs[i], "subdir");
    }
    img_remount(m);
    for (unsigned i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "dir%u", i);
        assert_int_equal(lookup(m->fs, ROOT, name), (int64_t)dirs[i]);
        struct fs_stat st = attr(m->fs, dirs[i]);
        assert_int_equal(st.size, 51);
        assert_int_equal(st.nlink, 3);
        for (unsigned j = 0; j < 50; j++) {
            snprintf(name, sizeof(name), "f%u", j);
            assert_true(lookup(m->fs, dirs[i], name) > 0);
        }
        int64_t sub = lookup(m->fs, dirs[i], "subdir");
        assert_true(sub > 0);
        assert_int_equal(lookup(m->fs, (uint64_t)sub, ".."), (int64_t)dirs[i]);
    }
}

/* A full filesystem: creation fails with ENOSPC (no block for the index to
 * grow), leaks no inode, leaves every earlier name intact; removing a file
 * makes room again. */
static void test_enospc(void **state)
{
    struct img *m = *state;
    struct fs_stat st;
    struct statvfs sv0, sv1;
    char name[64], *buf = calloc(1, 1 << 20);
    uint64_t off = 0;
    unsigned n = 0;
    int err;

    uint64_t d = mkdirectory(m->fs, ROOT, "d");
    uint64_t big = mkfile(m->fs, ROOT, "big");
    for (; n < 10; n++) {               /* the index has its first leaf */
        snprintf(name, sizeof(name), "some-longer-file-name-%06u", n);
        mkfile(m->fs, d, name);
    }
    unsigned first = n;
    for (;;) {
        ssize_t w = fs_write(m->fs, big, off, buf, 1 << 20);
        if (w <= 0) {
            assert_int_equal(w, -ENOSPC);
            break;
        }
        off += (uint64_t)w;
    }
    /* a few blocks may come back once pending frees are durable: use them up */
    while (fs_write(m->fs, big, off, buf, 4096) == 4096)
        off += 4096;
    assert_int_equal(fs_statfs(m->fs, &sv0), 0);
    for (;;) {
        snprintf(name, sizeof(name), "some-longer-file-name-%06u", n);
        err = fs_mknod(m->fs, d, name, S_IFREG | 0644, 0, &cred, &st);
        if (err)
            break;
        fs_forget(m->fs, st.ino, 1);
        n++;
    }
    assert_int_equal(err, -ENOSPC);
    assert_true(n > first);
    assert_int_equal(fs_statfs(m->fs, &sv1), 0);
    assert_int_equal(sv1.f_ffree, sv0.f_ffree - (n - first));
    assert_int_equal(attr(m->fs, d).size, n);
    assert_int_equal(fs_mkdir(m->fs, d, "x-dir", 0755, &cred, &st), -ENOSPC);
    assert_int_equal(attr(m->fs, d).nlink, 2);
    for (unsigned i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "some-longer-file-name-%06u", i);
        assert_true(lookup(m->fs, d, name) > 0);
    }
    /* room again */
    assert_int_equal(fs_unlink(m->fs, ROOT, "big"), 0);
    snprintf(name, sizeof(name), "some-longer-file-name-%06u", n);
    assert_int_equal(fs_mknod(m->fs, d, name, S_IFREG | 0644, 0, &cred, &st), 0);
    fs_forget(m->fs, st.ino, 1);
    img_remount(m);
    assert_int_equal(attr(m->fs, d).size, n + 1);
    assert_true(lookup(m->fs, d, name) > 0);
    free(buf);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, img_setup, img_teardown)
    const struct CMUnitTest tests[] = {
        T(test_lookup),
        T(test_lookup_dot_any_inode),
        T(test_create_errors),
        T(test_create_kinds),
        T(test_mkdir_rmdir_links),
        T(test_rmdir_other_name),
        T(test_setgid_inheritance),
        T(test_symlink_readlink),
        T(test_link_unlink),
        T(test_link_drop_hook),
        T(test_unlink_referenced),
        T(test_named_without_links),
        T(test_link_max),
        T(test_times),
        T(test_times_same_tick),
        T(test_persistence),
        T(test_enospc),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
