/*
 * test_fs_rename.c — fs_rename (src/fs/namei.c): plain moves within and
 * across directories, replacement of files and empty directories, every
 * error case (ENOENT, EEXIST with NOREPLACE, ENOTDIR, EISDIR, ENOTEMPTY,
 * EINVAL for loops and bad flags, ENAMETOOLONG), the same-inode no-op,
 * RENAME_EXCHANGE of files and directories across directories,
 * RENAME_WHITEOUT (the whiteout left behind, its owner, its flag
 * combinations, nothing left by a failed rename), link-count
 * bookkeeping checked with fs_getattr, timestamps, and persistence across
 * fs_unmount/fs_mount. Images are sparse mkstemp files in /tmp.
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
    static const struct img_config c = { .name = "rename", .bytes = 64 * MiB, .mount = 1,
                                         .check_at_teardown = 1 };
    return img_setup_config(state, &c);
}

#define NOREPLACE FS_RENAME_NOREPLACE
#define EXCHANGE FS_RENAME_EXCHANGE
#define WHITEOUT FS_RENAME_WHITEOUT

static uint32_t nlink(struct fs *fs, uint64_t ino)
{
    return attr(fs, ino).nlink;
}

static uint64_t entries(struct fs *fs, uint64_t dir)
{
    return attr(fs, dir).size;
}

/* ==== moves ===================================================================== */

static void test_rename_file_same_dir(void **state)
{
    struct img *m = *state;
    uint64_t d = mkdirectory(m->fs, ROOT, "d");
    uint64_t f = mkfile(m->fs, d, "a");

    assert_int_equal(fs_rename(m->fs, d, "a", d, "b", 0), 0);
    assert_int_equal(lookup(m->fs, d, "a"), -ENOENT);
    assert_int_equal(lookup(m->fs, d, "b"), (int64_t)f);
    assert_int_equal(entries(m->fs, d), 1);
    assert_int_equal(nlink(m->fs, f), 1);
    /* same name in the same directory: nothing to do */
    assert_int_equal(fs_rename(m->fs, d, "b", d, "b", 0), 0);
    assert_int_equal(lookup(m->fs, d, "b"), (int64_t)f);
    assert_int_equal(fs_rename(m->fs, d, "zz", d, "zz", 0), -ENOENT);
    img_remount(m);
    assert_int_equal(lookup(m->fs, d, "b"), (int64_t)f);
    assert_int_equal(lookup(m->fs, d, "a"), -ENOENT);
}

static void test_rename_across_dirs(void **state)
{
    struct img *m = *state;
    uint64_t d1 = mkdirectory(m->fs, ROOT, "d1");
    uint64_t d2 = mkdirectory(m->fs, ROOT, "d2");
    uint64_t f = mkfile(m->fs, d1, "f");
    uint64_t sub = mkdirectory(m->fs, d1, "sub");
    mkfile(m->fs, sub, "inner");
    uint32_t root_links = nlink(m->fs, ROOT);

    /* a file: no link count changes */
    assert_int_equal(fs_rename(m->fs, d1, "f", d2, "g", 0), 0);
    assert_int_equal(lookup(m->fs, d2, "g"), (int64_t)f);
    assert_int_equal(lookup(m->fs, d1, "f"), -ENOENT);
    assert_int_equal(nlink(m->fs, f), 1);
    assert_int_equal(nlink(m->fs, d1), 3);
    assert_int_equal(nlink(m->fs, d2), 2);
    assert_int_equal(entries(m->fs, d1), 1);
    assert_int_equal(entries(m->fs, d2), 1);

    /* a directory: parents' link counts move, ".." follows */
    assert_int_equal(fs_rename(m->fs, d1, "sub", d2, "sub2", 0), 0);
    assert_int_equal(nlink(m->fs, d1), 2);
    assert_int_equal(nlink(m->fs, d2), 3);
    assert_int_equal(nlink(m->fs, sub), 2);
    assert_int_equal(lookup(m->fs, sub, ".."), (int64_t)d2);
    assert_true(lookup(m->fs, sub, "inner") > 0);
    assert_int_equal(nlink(m->fs, ROOT), root_links);

    /* up to the root and back down */
    assert_int_equal(fs_rename(m->fs, d2, "sub2", ROOT, "top", 0), 0);
    assert_int_equal(nlink(m->fs, ROOT), root_links + 1);
    assert_int_equal(nlink(m->fs, d2), 2);
    assert_int_equal(lookup(m->fs, sub, ".."), ROOT);

    img_remount(m);
    assert_int_equal(lookup(m->fs, ROOT, "top"), (int64_t)sub);
    assert_int_equal(lookup(m->fs, sub, ".."), ROOT);
    assert_int_equal(nlink(m->fs, ROOT), root_links + 1);
    assert_int_equal(lookup(m->fs, d2, "g"), (int64_t)f);
}

/* ==== replacement ================================================================ */

static void test_rename_replace_file(void **state)
{
    struct img *m = *state;
    struct fs_stat st;
    uint64_t d = mkdirectory(m->fs, ROOT, "d");
    uint64_t a = mkfile(m->fs, d, "a");
    uint64_t b = mkfile(m->fs, d, "b");
    uint64_t c = mkfile(m->fs, d, "c");
    assert_int_equal(fs_link(m->fs, c, ROOT, "c-link", &st), 0);
    fs_forget(m->fs, c, 1);

    /* over a file with one link: the old file is freed */
    assert_int_equal(fs_rename(m->fs, d, "a", d, "b", 0), 0);
    assert_int_equal(lookup(m->fs, d, "b"), (int64_t)a);
    assert_int_equal(fs_getattr(m->fs, b, &st), -ENOENT);
    assert_int_equal(entries(m->fs, d), 2);
    /* over a file with another link: it loses one link */
    assert_int_equal(fs_rename(m->fs, d, "b", d, "c", 0), 0);
    assert_int_equal(lookup(m->fs, d, "c"), (int64_t)a);
    assert_int_equal(nlink(m->fs, c), 1);
    assert_int_equal(lookup(m->fs, ROOT, "c-link"), (int64_t)c);
    assert_int_equal(entries(m->fs, d), 1);

    /* two links of the same inode: rename does nothing (POSIX) */
    assert_int_equal(fs_link(m->fs, a, d, "a2", &st), 0);
    fs_forget(m->fs, a, 1);
    assert_int_equal(fs_rename(m->fs, d, "c", d, "a2", 0), 0);
    assert_int_equal(lookup(m->fs, d, "c"), (int64_t)a);
    assert_int_equal(lookup(m->fs, d, "a2"), (int64_t)a);
    assert_int_equal(nlink(m->fs, a), 2);

    /* a replaced file still referenced stays until forgotten */
    assert_int_equal(fs_mknod(m->fs, d, "open", S_IFREG | 0644, 0, &cred, &st), 0);
    uint64_t open_ino = st.ino;
    assert_int_equal(fs_rename(m->fs, d, "a2", d, "open", 0), 0);
    assert_int_equal(fs_getattr(m->fs, open_ino, &st), 0);
    assert_int_equal(st.nlink, 0);
    fs_forget(m->fs, open_ino, 1);
    assert_int_equal(fs_getattr(m->fs, open_ino, &st), -ENOENT);
    assert_int_equal(nlink(m->fs, a), 2);
}

static void test_rename_replace_dir(void **state)
{
    struct img *m = *state;
    struct fs_stat st;
    uint64_t p1 = mkdirectory(m->fs, ROOT, "p1");
    uint64_t p2 = mkdirectory(m->fs, ROOT, "p2");
    uint64_t x = mkdirectory(m->fs, p1, "x");
    uint64_t y = mkdirectory(m->fs, p1, "y");
    uint64_t z = mkdirectory(m->fs, p2, "z");
    assert_int_equal(nlink(m->fs, p1), 4);
    assert_int_equal(nlink(m->fs, p2), 3);

    /* same parent, over an empty directory: parent loses a subdirectory */
    assert_int_equal(fs_rename(m->fs, p1, "x", p1, "y", 0), 0);
    assert_int_equal(lookup(m->fs, p1, "y"), (int64_t)x);
    assert_int_equal(fs_getattr(m->fs, y, &st), -ENOENT);
    assert_int_equal(nlink(m->fs, p1), 3);
    assert_int_equal(entries(m->fs, p1), 1);

    /* across parents, over an empty directory */
    assert_int_equal(fs_rename(m->fs, p1, "y", p2, "z", 0), 0);
    assert_int_equal(lookup(m->fs, p2, "z"), (int64_t)x);
    assert_int_equal(fs_getattr(m->fs, z, &st), -ENOENT);
    assert_int_equal(nlink(m->fs, p1), 2);
    assert_int_equal(nlink(m->fs, p2), 3);
    assert_int_equal(lookup(m->fs, x, ".."), (int64_t)p2);

    /* over a non-empty directory */
    uint64_t w = mkdirectory(m->fs, p1, "w");
    mkfile(m->fs, x, "content");
    assert_int_equal(fs_rename(m->fs, p1, "w", p2, "z", 0), -ENOTEMPTY);
    assert_int_equal(lookup(m->fs, p1, "w"), (int64_t)w);
    assert_int_equal(lookup(m->fs, p2, "z"), (int64_t)x);

    img_remount(m);
    assert_int_equal(nlink(m->fs, p1), 3);
    assert_int_equal(nlink(m->fs, p2), 3);
    assert_int_equal(lookup(m->fs, x, ".."), (int64_t)p2);
}

/* ==== errors ===================================================================== */

static void test_rename_errors(void **state)
{
    struct img *m = *state;
    char *n256 = malloc(257);
    memset(n256, 'q', 256);
    n256[256] = 0;

    uint64_t d = mkdirectory(m->fs, ROOT, "d");
    uint64_t f = mkfile(m->fs, d, "f");
    uint64_t g = mkfile(m->fs, d, "g");
    uint64_t e = mkdirectory(m->fs, d, "empty");
    uint64_t full = mkdirectory(m->fs, d, "full");
    mkfile(m->fs, full, "x");

    assert_int_equal(fs_rename(m->fs, d, "missing", d, "new", 0), -ENOENT);
    assert_int_equal(fs_rename(m->fs, d, "f", d, "g", NOREPLACE), -EEXIST);
    assert_int_equal(fs_rename(m->fs, d, "f", d, "f", NOREPLACE), -EEXIST);
    assert_int_equal(fs_rename(m->fs, d, "f", d, "g", NOREPLACE | EXCHANGE), -EINVAL);
    assert_int_equal(fs_rename(m->fs, d, "f", d, "g", 1u << 7), -EINVAL);
    assert_int_equal(fs_rename(m->fs, d, "empty", d, "f", 0), -ENOTDIR);
    assert_int_equal(fs_rename(m->fs, d, "f", d, "empty", 0), -EISDIR);
    assert_int_equal(fs_rename(m->fs, d, "empty", d, "full", 0), -ENOTEMPTY);
    assert_int_equal(fs_rename(m->fs, d, "f", d, n256, 0), -ENAMETOOLONG);
    assert_int_equal(fs_rename(m->fs, d, "f", d, "a/b", 0), -EINVAL);
    assert_int_equal(fs_rename(m->fs, d, "f", d, "", 0), -EINVAL);
    assert_int_equal(fs_rename(m->fs, d, "f", d, ".", 0), -EINVAL);
    assert_int_equal(fs_rename(m->fs, d, "f", f, "x", 0), -ENOTDIR);    /* newparent a file */
    assert_int_equal(fs_rename(m->fs, f, "x", d, "y", 0), -ENOTDIR);    /* parent a file */
    assert_int_equal(fs_rename(m->fs, d, "f", d, "nothere", EXCHANGE), -ENOENT);
    assert_int_equal(fs_rename(m->fs, d, "nothere", d, "f", EXCHANGE), -ENOENT);

    /* a directory into itself or its own subtree */
    uint64_t a = mkdirectory(m->fs, ROOT, "a");
    uint64_t b = mkdirectory(m->fs, a, "b");
    uint64_t c = mkdirectory(m->fs, b, "c");
    assert_int_equal(fs_rename(m->fs, ROOT, "a", a, "self", 0), -EINVAL);
    assert_int_equal(fs_rename(m->fs, ROOT, "a", c, "deep", 0), -EINVAL);
    assert_int_equal(fs_rename(m->fs, a, "b", c, "deeper", 0), -EINVAL);
    assert_int_equal(fs_rename(m->fs, ROOT, "a", c, "deep", NOREPLACE), -EINVAL);
    /* but a sibling subtree is fine, and so is moving up */
    assert_int_equal(fs_rename(m->fs, b, "c", ROOT, "c-top", 0), 0);
    assert_int_equal(fs_rename(m->fs, ROOT, "c-top", b, "c", 0), 0);
    assert_int_equal(lookup(m->fs, c, ".."), (int64_t)b);

    /* nothing changed through all the failures */
    assert_int_equal(lookup(m->fs, d, "f"), (int64_t)f);
    assert_int_equal(lookup(m->fs, d, "g"), (int64_t)g);
    assert_int_equal(lookup(m->fs, d, "empty"), (int64_t)e);
    assert_int_equal(lookup(m->fs, d, "full"), (int64_t)full);
    assert_int_equal(entries(m->fs, d), 4);
    assert_int_equal(nlink(m->fs, d), 4);
    assert_int_equal(lookup(m->fs, ROOT, "a"), (int64_t)a);
    assert_int_equal(nlink(m->fs, a), 3);
    assert_int_equal(nlink(m->fs, b), 3);
    /* NOREPLACE to a free name works */
    assert_int_equal(fs_rename(m->fs, d, "f", d, "f2", NOREPLACE), 0);
    assert_int_equal(lookup(m->fs, d, "f2"), (int64_t)f);
    free(n256);
}

/* ==== exchange =================================================================== */

static void test_exchange(void **state)
{
    struct img *m = *state;
    uint64_t d1 = mkdirectory(m->fs, ROOT, "d1");
    uint64_t d2 = mkdirectory(m->fs, ROOT, "d2");
    uint64_t f = mkfile(m->fs, d1, "f");
    uint64_t g = mkfile(m->fs, d1, "g");
    uint64_t dir = mkdirectory(m->fs, d2, "dir");
    mkfile(m->fs, dir, "content");

    /* two files in one directory */
    assert_int_equal(fs_rename(m->fs, d1, "f", d1, "g", EXCHANGE), 0);
    assert_int_equal(lookup(m->fs, d1, "f"), (int64_t)g);
    assert_int_equal(lookup(m->fs, d1, "g"), (int64_t)f);
    assert_int_equal(entries(m->fs, d1), 2);

    /* a file and a (non-empty) directory across directories */
    assert_int_equal(nlink(m->fs, d1), 2);
    assert_int_equal(nlink(m->fs, d2), 3);
    assert_int_equal(fs_rename(m->fs, d1, "f", d2, "dir", EXCHANGE), 0);
    assert_int_equal(lookup(m->fs, d1, "f"), (int64_t)dir);
    assert_int_equal(lookup(m->fs, d2, "dir"), (int64_t)g);
    assert_int_equal(nlink(m->fs, d1), 3);
    assert_int_equal(nlink(m->fs, d2), 2);
    assert_int_equal(lookup(m->fs, dir, ".."), (int64_t)d1);
    assert_true(lookup(m->fs, dir, "content") > 0);
    assert_int_equal(nlink(m->fs, g), 1);

    /* and back, the other way round (directory is the target) */
    assert_int_equal(fs_rename(m->fs, d2, "dir", d1, "f", EXCHANGE), 0);
    assert_int_equal(lookup(m->fs, d2, "dir"), (int64_t)dir);
    assert_int_equal(lookup(m->fs, d1, "f"), (int64_t)g);
    assert_int_equal(nlink(m->fs, d1), 2);
    assert_int_equal(nlink(m->fs, d2), 3);
    assert_int_equal(lookup(m->fs, dir, ".."), (int64_t)d2);

    /* two directories across directories: parents swap, counts stay */
    uint64_t other = mkdirectory(m->fs, d1, "other");
    assert_int_equal(fs_rename(m->fs, d1, "other", d2, "dir", EXCHANGE), 0);
    assert_int_equal(lookup(m->fs, other, ".."), (int64_t)d2);
    assert_int_equal(lookup(m->fs, dir, ".."), (int64_t)d1);
    assert_int_equal(nlink(m->fs, d1), 3);
    assert_int_equal(nlink(m->fs, d2), 3);

    /* a directory with its own ancestor: a loop either way */
    uint64_t inner = mkdirectory(m->fs, dir, "inner");
    assert_int_equal(fs_rename(m->fs, d1, "other", dir, "inner", EXCHANGE), -EINVAL);
    assert_int_equal(fs_rename(m->fs, dir, "inner", d1, "other", EXCHANGE), -EINVAL);
    assert_int_equal(fs_rename(m->fs, ROOT, "d1", dir, "inner", EXCHANGE), -EINVAL);
    assert_int_equal(lookup(m->fs, dir, "inner"), (int64_t)inner);
    /* exchanging an entry with itself or another link of it: no change */
    assert_int_equal(fs_rename(m->fs, d1, "g", d1, "g", EXCHANGE), 0);
    assert_int_equal(lookup(m->fs, d1, "g"), (int64_t)f);

    img_remount(m);
    assert_int_equal(lookup(m->fs, d1, "other"), (int64_t)dir);
    assert_int_equal(lookup(m->fs, d2, "dir"), (int64_t)other);
    assert_int_equal(lookup(m->fs, dir, ".."), (int64_t)d1);
    assert_int_equal(lookup(m->fs, other, ".."), (int64_t)d2);
    assert_int_equal(nlink(m->fs, d1), 3);
    assert_int_equal(nlink(m->fs, d2), 3);
}

/* ==== whiteout =================================================================== */

/* Asserts that name in dir is a whiteout (character device 0/0, mode 0,
 * one link) owned by uid:gid; returns its ino. */
static uint64_t assert_whiteout(struct fs *fs, uint64_t dir, const char *name,
                                uint32_t uid, uint32_t gid)
{
    int64_t w = lookup(fs, dir, name);
    assert_true(w > 0);
    struct fs_stat st = attr(fs, (uint64_t)w);
    assert_int_equal(st.mode, S_IFCHR);
    assert_int_equal(st.rdev, 0);
    assert_int_equal(st.nlink, 1);
    assert_int_equal(st.uid, uid);
    assert_int_equal(st.gid, gid);
    return (uint64_t)w;
}

static void test_whiteout(void **state)
{
    struct img *m = *state;
    const struct fs_cred user = { 1234, 5678 };
    uint64_t d1 = mkdirectory(m->fs, ROOT, "d1");
    uint64_t d2 = mkdirectory(m->fs, ROOT, "d2");
    uint64_t f = mkfile(m->fs, d1, "f");
    uint64_t sub = mkdirectory(m->fs, d1, "sub");
    mkfile(m->fs, sub, "inside");
    uint64_t old = mkfile(m->fs, d2, "old");
    uint64_t gen_f = attr(m->fs, f).generation;

    /* a file within one directory: the source name becomes a whiteout */
    assert_int_equal(fs_rename_as(m->fs, d1, "f", d1, "g", WHITEOUT, &user), 0);
    assert_int_equal(lookup(m->fs, d1, "g"), (int64_t)f);
    uint64_t w1 = assert_whiteout(m->fs, d1, "f", 1234, 5678);
    assert_true(w1 != f);
    assert_true(attr(m->fs, w1).generation > gen_f);
    assert_int_equal(entries(m->fs, d1), 3);
    assert_int_equal(nlink(m->fs, f), 1);

    /* a non-empty directory across directories, replacing nothing */
    assert_int_equal(nlink(m->fs, d1), 3);
    assert_int_equal(fs_rename(m->fs, d1, "sub", d2, "sub", WHITEOUT | NOREPLACE), 0);
    assert_whiteout(m->fs, d1, "sub", 0, 0);
    assert_int_equal(lookup(m->fs, d2, "sub"), (int64_t)sub);
    assert_int_equal(lookup(m->fs, sub, ".."), (int64_t)d2);
    assert_true(lookup(m->fs, sub, "inside") > 0);
    assert_int_equal(nlink(m->fs, d1), 2);
    assert_int_equal(nlink(m->fs, d2), 3);

    /* replacing a file: the replaced inode goes, the whiteout stays */
    assert_int_equal(fs_rename(m->fs, d1, "g", d2, "old", WHITEOUT), 0);
    assert_int_equal(lookup(m->fs, d2, "old"), (int64_t)f);
    assert_whiteout(m->fs, d1, "g", 0, 0);
    assert_int_equal(fs_getattr(m->fs, old, &(struct fs_stat){0}), -ENOENT);

    /* a whiteout can itself be renamed over, with a whiteout again */
    assert_int_equal(fs_rename(m->fs, d2, "old", d1, "f", WHITEOUT), 0);
    assert_int_equal(lookup(m->fs, d1, "f"), (int64_t)f);
    assert_int_equal(fs_getattr(m->fs, w1, &(struct fs_stat){0}), -ENOENT);
    assert_whiteout(m->fs, d2, "old", 0, 0);

    /* setgid directory: the whiteout takes the directory's group */
    struct fs_setattr sa = { .mode = 02775, .gid = 77 };
    assert_int_equal(fs_setattr(m->fs, d1, &sa, FS_SET_MODE | FS_SET_GID, NULL), 0);
    assert_int_equal(fs_rename_as(m->fs, d1, "f", d1, "h", WHITEOUT, &user), 0);
    assert_whiteout(m->fs, d1, "f", 1234, 77);

    /* flag combinations and failures: nothing changes, no whiteout left */
    struct statvfs before, after;
    assert_int_equal(fs_statfs(m->fs, &before), 0);
    assert_int_equal(fs_rename(m->fs, d1, "h", d1, "g", WHITEOUT | EXCHANGE), -EINVAL);
    assert_int_equal(fs_rename(m->fs, d1, "h", d2, "old", WHITEOUT | NOREPLACE), -EEXIST);
    assert_int_equal(fs_rename(m->fs, d1, "nothere", d1, "x", WHITEOUT), -ENOENT);
    uint64_t full = mkdirectory(m->fs, d2, "full");
    mkfile(m->fs, full, "x");
    uint64_t e = mkdirectory(m->fs, d1, "e");
    assert_int_equal(fs_rename(m->fs, d1, "e", d2, "full", WHITEOUT), -ENOTEMPTY);
    assert_int_equal(fs_rename(m->fs, d1, "h", d1, "e", WHITEOUT), -EISDIR);
    assert_int_equal(lookup(m->fs, d1, "h"), (int64_t)f);
    assert_int_equal(lookup(m->fs, d1, "e"), (int64_t)e);
    assert_int_equal(lookup(m->fs, d1, "x"), -ENOENT);
    assert_int_equal(fs_statfs(m->fs, &after), 0);
    assert_int_equal(after.f_ffree + 3, before.f_ffree);  /* full, x, e only */

    /* all of it survives a remount (and the teardown's fsck) */
    img_remount(m);
    assert_whiteout(m->fs, d1, "f", 1234, 77);
    assert_whiteout(m->fs, d1, "g", 0, 0);
    assert_whiteout(m->fs, d1, "sub", 0, 0);
    assert_whiteout(m->fs, d2, "old", 0, 0);
    assert_int_equal(lookup(m->fs, d1, "h"), (int64_t)f);
    assert_int_equal(lookup(m->fs, d2, "sub"), (int64_t)sub);
}

/* No free inode for the whiteout: -ENOSPC and the rename leaves nothing of
 * itself; a plain rename still works. */
static void test_whiteout_no_inodes(void **state)
{
    struct img *m = *state;
    struct fs_stat st;
    char name[32];
    int err;

    uint64_t d = mkdirectory(m->fs, ROOT, "d");
    uint64_t f = mkfile(m->fs, d, "f");
    uint64_t fill = mkdirectory(m->fs, ROOT, "fill");
    for (unsigned i = 0;; i++) {
        snprintf(name, sizeof(name), "n%u", i);
        err = fs_mknod(m->fs, fill, name, S_IFREG | 0644, 0, &cred, &st);
        if (err)
            break;
        fs_forget(m->fs, st.ino, 1);
    }
    assert_int_equal(err, -ENOSPC);
    struct statvfs sv;
    assert_int_equal(fs_statfs(m->fs, &sv), 0);
    assert_int_equal(sv.f_ffree, 0);                    /* out of inodes, not blocks */
    assert_true(entries(m->fs, fill) > 1000);
    uint64_t size = entries(m->fs, d);
    assert_int_equal(fs_rename(m->fs, d, "f", d, "g", WHITEOUT), -ENOSPC);
    assert_int_equal(lookup(m->fs, d, "f"), (int64_t)f);
    assert_int_equal(lookup(m->fs, d, "g"), -ENOENT);
    assert_int_equal(entries(m->fs, d), size);
    assert_int_equal(fs_rename(m->fs, d, "f", ROOT, "g", WHITEOUT), -ENOSPC);
    assert_int_equal(lookup(m->fs, ROOT, "g"), -ENOENT);
    assert_int_equal(fs_rename(m->fs, d, "f", d, "g", 0), 0);
    /* one inode freed: the whiteout takes it */
    assert_int_equal(fs_unlink(m->fs, fill, "n0"), 0);
    assert_int_equal(fs_rename(m->fs, d, "g", d, "h", WHITEOUT), 0);
    assert_whiteout(m->fs, d, "g", 0, 0);
    img_remount(m);
    assert_int_equal(lookup(m->fs, d, "h"), (int64_t)f);
}

/* ==== times ====================================================================== */

static void test_rename_times(void **state)
{
    struct img *m = *state;
    uint64_t d1 = mkdirectory(m->fs, ROOT, "d1");
    uint64_t d2 = mkdirectory(m->fs, ROOT, "d2");
    uint64_t f = mkfile(m->fs, d1, "f");
    uint64_t g = mkfile(m->fs, d2, "g");
    struct fs_stat p1 = attr(m->fs, d1), p2 = attr(m->fs, d2), s = attr(m->fs, f);

    tick();
    assert_int_equal(fs_rename(m->fs, d1, "f", d2, "f", 0), 0);
    struct fs_stat q1 = attr(m->fs, d1), q2 = attr(m->fs, d2), t = attr(m->fs, f);
    assert_true(ts_after(q1.mtime, p1.mtime));
    assert_true(ts_after(q1.ctime, p1.ctime));
    assert_true(ts_after(q2.mtime, p2.mtime));
    assert_true(ts_after(q2.ctime, p2.ctime));
    assert_true(ts_after(t.ctime, s.ctime));
    assert_int_equal(t.mtime.tv_sec, s.mtime.tv_sec);     /* data untouched */
    assert_int_equal(t.mtime.tv_nsec, s.mtime.tv_nsec);

    tick();
    struct fs_stat gs = attr(m->fs, g);
    assert_int_equal(fs_rename(m->fs, d2, "f", d2, "g", EXCHANGE), 0);
    assert_true(ts_after(attr(m->fs, f).ctime, t.ctime));
    assert_true(ts_after(attr(m->fs, g).ctime, gs.ctime));
    assert_true(ts_after(attr(m->fs, d2).mtime, q2.mtime));
    /* a failed rename changes no time */
    struct fs_stat before = attr(m->fs, d2);
    tick();
    assert_int_equal(fs_rename(m->fs, d2, "f", d2, "g", NOREPLACE), -EEXIST);
    struct fs_stat after = attr(m->fs, d2);
    assert_int_equal(after.mtime.tv_sec, before.mtime.tv_sec);
    assert_int_equal(after.mtime.tv_nsec, before.mtime.tv_nsec);
}

/* Many renames in a row (a shuffle), checked after a remount. */
static void test_rename_shuffle(void **state)
{
    struct img *m = *state;
    char a[32], b[32];
    enum { N = 300 };
    uint64_t inos[N];
    uint64_t d1 = mkdirectory(m->fs, ROOT, "s1");
    uint64_t d2 = mkdirectory(m->fs, ROOT, "s2");

    for (unsigned i = 0; i < N; i++) {
        snprintf(a, sizeof(a), "n%u", i);
        inos[i] = mkfile(m->fs, d1, a);
    }
    /* move every file to d2 under a new name, then rotate names in d2 */
    for (unsigned i = 0; i < N; i++) {
        snprintf(a, sizeof(a), "n%u", i);
        snprintf(b, sizeof(b), "m%u", i);
        assert_int_equal(fs_rename(m->fs, d1, a, d2, b, NOREPLACE), 0);
    }
    assert_int_equal(entries(m->fs, d1), 0);
    assert_int_equal(entries(m->fs, d2), N);
    for (unsigned i = 0; i + 1 < N; i++) {
        snprintf(a, sizeof(a), "m%u", i);
        snprintf(b, sizeof(b), "m%u", i + 1);
        assert_int_equal(fs_rename(m->fs, d2, a, d2, b, EXCHANGE), 0);
    }
    /* the inode that started at 0 moved to the last name; others shift down */
    img_remount(m);
    snprintf(b, sizeof(b), "m%u", N - 1);
    assert_int_equal(lookup(m->fs, d2, b), (int64_t)inos[0]);
    for (unsigned i = 0; i + 1 < N; i++) {
        snprintf(a, sizeof(a), "m%u", i);
        assert_int_equal(lookup(m->fs, d2, a), (int64_t)inos[i + 1]);
    }
    assert_int_equal(fs_rmdir(m->fs, ROOT, "s1"), 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, img_setup, img_teardown)
    const struct CMUnitTest tests[] = {
        T(test_rename_file_same_dir),
        T(test_rename_across_dirs),
        T(test_rename_replace_file),
        T(test_rename_replace_dir),
        T(test_rename_errors),
        T(test_exchange),
        T(test_whiteout),
        T(test_whiteout_no_inodes),
        T(test_rename_times),
        T(test_rename_shuffle),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
