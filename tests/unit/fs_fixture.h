/*
 * fs_fixture.h — the temporary-image fixture of the fs-layer unit tests
 * (test_fs_*.c) and the small helpers they share.
 *
 * An image is a sparse file from mkstemp in /tmp
 * (/tmp/mmapfs-test-<name>-XXXXXX), formatted with fs_format and, if the
 * test file asks for it, mounted by the setup. The teardown unmounts it,
 * optionally runs the fsck core over it (printing the report when it is not
 * clean) and removes it. What differs between the test files (image size,
 * name, whether the setup mounts, whether remount and teardown run fsck) is
 * a struct img_config handed to img_setup_config() by the file's own
 * img_setup().
 *
 * Every helper is static inline, so that a test file that does not use one
 * gets no unused-function warning (-Wall -Wextra -Werror).
 *
 * The credentials 'cred' used by the helpers (and by the tests) are those
 * of an ordinary user, 1000:1000, unless the file defines FS_FIXTURE_CRED
 * (an initialiser, e.g. { 0, 0 } for root) before including this header.
 */
#ifndef MMAPFS_TESTS_FS_FIXTURE_H
#define MMAPFS_TESTS_FS_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

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
#include "fs/inode.h"

#define KiB 1024ull
#define MiB (1024ull * KiB)
#define GiB (1024ull * MiB)
#define ROOT MMAPFS_ROOT_INO

#ifndef FS_FIXTURE_CRED
#define FS_FIXTURE_CRED { 1000, 1000 }
#endif

/* The caller of every fs operation the helpers (and the tests) make. */
static const struct fs_cred cred = FS_FIXTURE_CRED;

/* ==== the image =============================================================== */

/* What a test file wants of its images; given to img_setup_config(). */
struct img_config {
    const char *name;        /* in the image's name: /tmp/mmapfs-test-<name>-XXXXXX */
    uint64_t bytes;          /* size of the image the setup makes; 0: the setup
                              * makes none, the test calls img_create() */
    int mount;               /* the setup mounts the image (else only formats it) */
    int fsck_on_remount;     /* img_remount() checks the image between unmount
                              * and mount */
    int check_at_teardown;   /* the teardown fails the test if the unmount fails
                              * or the fsck core finds the image not clean */
    int no_inode_xattr;      /* format without in-inode xattrs (incompat 0x8) */
};

/* One test's image. */
struct img {
    char path[64];           /* the image file; "" until it is made */
    struct fs *fs;           /* mounted filesystem, NULL when not mounted */
    int skip_fsck;           /* the test damages the image on purpose */
    const char *name;        /* from img_config */
    int fsck_on_remount;     /* from img_config */
    int check_at_teardown;   /* from img_config */
    int no_inode_xattr;      /* from img_config */
};

/* Mounts the image with options o (its path is filled in); returns what
 * fs_mount returns. */
static inline int img_try_mount(struct img *m, struct fs_options o)
{
    o.path = m->path;
    return fs_mount(&m->fs, &o);
}

/* Mounts the image with default options; it must work. */
static inline void img_mount(struct img *m)
{
    assert_int_equal(img_try_mount(m, (struct fs_options){ 0 }), 0);
}

/* Unmounts the image; it must work. */
static inline void img_unmount(struct img *m)
{
    struct fs *fs = m->fs;
    m->fs = NULL;
    assert_int_equal(fs_unmount(fs), 0);
}

/* Runs the fsck core (no repairs) over the unmounted image, its report on
 * stderr; the image must be clean. */
static inline void img_check(struct img *m)
{
    struct fs_check_options co = { .mode = FS_CHECK_NO, .force = 1 };
    assert_int_equal(fs_check(m->path, &co, stderr), FSCK_EXIT_OK);
}

/* Unmounts and checks the image with the fsck core. */
static inline void img_unmount_check(struct img *m)
{
    img_unmount(m);
    img_check(m);
}

/* Rewrites the record of ino in the unmounted image with edit(), its
 * checksum recomputed if reseal (damage only the checks past the checksum
 * can see), else left as it was (a damaged field the checksum catches). */
static inline void img_poke_inode_sealed(const char *path, uint64_t ino,
                                         void (*edit)(struct mmapfs_disk_inode *), int reseal)
{
    struct mmapfs_disk_superblock sb;
    struct mmapfs_disk_inode di;
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &sb, sizeof(sb), 0), sizeof(sb));
    off_t off = (off_t)(sb.inode_table_start * MMAPFS_BLOCK_SIZE +
                        (ino - 1) * MMAPFS_INODE_SIZE);
    assert_int_equal(pread(fd, &di, sizeof(di), off), sizeof(di));
    edit(&di);
    if (reseal)
        di.checksum = fs_inode_checksum(ino, &di);
    assert_int_equal(pwrite(fd, &di, sizeof(di), off), sizeof(di));
    close(fd);
}

/* img_poke_inode_sealed with the checksum recomputed. */
static inline void img_poke_inode(const char *path, uint64_t ino,
                                  void (*edit)(struct mmapfs_disk_inode *))
{
    img_poke_inode_sealed(path, ino, edit, 1);
}

/* Unmounts and mounts again (with img_check() in between if the config
 * asks for fsck_on_remount). */
static inline void img_remount(struct img *m)
{
    img_unmount(m);
    if (m->fsck_on_remount)
        img_check(m);
    img_mount(m);
}

/* Makes the image file: a sparse mkstemp file of 'bytes' with 'inodes'
 * inodes (0 = the default), formatted, not mounted. 0, or -1 on failure. */
static inline int img_format(struct img *m, uint64_t bytes, uint64_t inodes)
{
    struct mmio *io;

    snprintf(m->path, sizeof(m->path), "/tmp/mmapfs-test-%s-XXXXXX", m->name);
    int fd = mkstemp(m->path);
    if (fd < 0)
        return -1;
    if (ftruncate(fd, (off_t)bytes)) {
        close(fd);
        return -1;
    }
    close(fd);
    if (mmio_open(&io, m->path, 0, 0, NULL))
        return -1;
    struct fs_format_options opt = { .inodes = inodes, .no_inode_xattr = m->no_inode_xattr };
    int err = fs_format(io, &opt);
    mmio_close(io);
    return err ? -1 : 0;
}

/* For a test whose setup made no image (bytes 0): makes a sparse image of
 * 'bytes' with 'inodes' inodes (0 = the default), formats and mounts it;
 * every step must work. */
static inline void img_create(struct img *m, uint64_t bytes, uint64_t inodes)
{
    if (img_format(m, bytes, inodes))
        fail_msg("cannot make a %llu-byte image %s", (unsigned long long)bytes, m->path);
    img_mount(m);
}

/* The setup: allocates the struct img (*state), makes the image of
 * c->bytes unless that is 0, mounts it if c->mount. A non-zero return
 * fails the test. */
static inline int img_setup_config(void **state, const struct img_config *c)
{
    struct img *m = calloc(1, sizeof(*m));
    *state = m;
    if (!m)
        return -1;
    m->name = c->name;
    m->fsck_on_remount = c->fsck_on_remount;
    m->check_at_teardown = c->check_at_teardown;
    m->no_inode_xattr = c->no_inode_xattr;
    if (c->bytes && img_format(m, c->bytes, 0))
        return -1;
    if (c->mount && img_try_mount(m, (struct fs_options){ 0 }))
        return -1;
    return 0;
}

/* The teardown: unmounts the image if it is still mounted and removes it.
 * With check_at_teardown it first runs the fsck core over the image (unless
 * skip_fsck), which must be clean: on failure its report goes to stderr and
 * the test fails, as it does when the unmount fails. */
static inline int img_teardown(void **state)
{
    struct img *m = *state;
    int ret = 0;
    if (m->fs && fs_unmount(m->fs) != 0 && m->check_at_teardown)
        ret = -1;
    if (m->path[0] && m->check_at_teardown && !m->skip_fsck && ret == 0) {
        struct fs_check_options o = { .mode = FS_CHECK_NO, .force = 1 };
        FILE *report = tmpfile();
        int rc = fs_check(m->path, &o, report);
        if (rc != FSCK_EXIT_OK) {
            fprintf(stderr, "fsck of %s after the test: exit %d\n", m->path, rc);
            if (report) {
                char line[512];
                rewind(report);
                while (fgets(line, sizeof(line), report))
                    fputs(line, stderr);
            }
            ret = -1;
        }
        if (report)
            fclose(report);
    }
    if (m->path[0])
        unlink(m->path);
    free(m);
    return ret;
}

/* ==== small helpers =========================================================== */

/* Creates a regular file (0644) in dir; drops the lookup reference; returns
 * its ino. */
static inline uint64_t mkfile(struct fs *fs, uint64_t dir, const char *name)
{
    struct fs_stat st;
    int err = fs_mknod(fs, dir, name, S_IFREG | 0644, 0, &cred, &st);
    if (err)
        fail_msg("mknod %s: %s", name, strerror(-err));
    fs_forget(fs, st.ino, 1);
    return st.ino;
}

/* Creates a directory (0755) in dir; drops the lookup reference; returns
 * its ino. */
static inline uint64_t mkdirectory(struct fs *fs, uint64_t dir, const char *name)
{
    struct fs_stat st;
    int err = fs_mkdir(fs, dir, name, 0755, &cred, &st);
    if (err)
        fail_msg("mkdir %s: %s", name, strerror(-err));
    fs_forget(fs, st.ino, 1);
    return st.ino;
}

/* ino of name in dir, or a negative errno; no reference kept. */
static inline int64_t lookup(struct fs *fs, uint64_t dir, const char *name)
{
    struct fs_stat st;
    int err = fs_lookup(fs, dir, name, &st);
    if (err)
        return err;
    fs_forget(fs, st.ino, 1);
    return (int64_t)st.ino;
}

/* The attributes of ino; fs_getattr must work. */
static inline struct fs_stat attr(struct fs *fs, uint64_t ino)
{
    struct fs_stat st;
    int err = fs_getattr(fs, ino, &st);
    if (err)
        fail_msg("getattr %llu: %s", (unsigned long long)ino, strerror(-err));
    return st;
}

/* Whether timestamp a is strictly later than b. */
static inline int ts_after(struct timespec a, struct timespec b)
{
    return a.tv_sec > b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec > b.tv_nsec);
}

/* Lets the filesystem's clock (the coarse real-time clock, one kernel
 * tick) move, so that a new timestamp is strictly later. */
static inline void tick(void)
{
    struct timespec t0, t, ms = { 0, 1000000 };
    clock_gettime(CLOCK_REALTIME_COARSE, &t0);
    do {
        nanosleep(&ms, NULL);
        clock_gettime(CLOCK_REALTIME_COARSE, &t);
    } while (t.tv_sec == t0.tv_sec && t.tv_nsec == t0.tv_nsec);
}

#endif
