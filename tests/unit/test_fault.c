/*
 * test_fault.c — no half-done operation ever commits (DESIGN.md invariant
 * 9; docs/JOURNAL.md, "Failed operations"; docs/FAULTS.md).
 *
 * The sweep: for each modifying operation (create, mkdir, mknod, symlink,
 * link, an O_TMPFILE written and linked, unlink, unlink of an open file, rmdir, rename over an existing
 * file, rename exchange, chmod/chown, a create that splits a directory
 * leaf, a write that allocates, truncate, fallocate, punch hole,
 * setxattr, removexattr; and unlink, unlink of an open file, rmdir, a
 * change of times, a rename over a file and an exchange answered early,
 * fs.h) the operation runs with a fault injected at step N = 1, 2,
 * 3 ... until it completes without reaching the fault:
 *
 *  - memory: the N-th allocation of the calling thread fails (ENOMEM);
 *  - I/O: the N-th engine system call (pread, pwrite, fdatasync) of any
 *    thread fails (EIO), counted over the operation and the unmount that
 *    commits it;
 *  - ENOSPC: the disk is full but for N - 1 blocks.
 *
 * Each time: the call returns 0 or a clean negative errno; unless the
 * journal was aborted, the filesystem still works (another create
 * succeeds); the unmount works unless an error was injected into the
 * journal; fsck -n (the check core) finds the image clean; and after
 * mounting again the operation is either wholly visible or not at all.
 * A memory failure must be undone, or abort the journal, in which case the
 * disk holds the last committed state.
 *
 * Every operation is swept twice: with the running transaction empty
 * (every block it changes gets a new shadow) and holding a change of the
 * same directory ("warm", so that undo meets blocks the transaction
 * already held).
 *
 * Images live in /dev/shm when it exists (a sync there costs nothing),
 * else in /tmp. FAULT_VERBOSE=1 prints every step, FAULT_ONLY=<name> sweeps
 * one operation ("rename over a file"), FAULT_BACKTRACE=1 prints where
 * each fault was injected.
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
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "fsck/fsck.h"
#include "fs/fs.h"
#include "fs/fs_i.h"

#include "fault_wrap.h"
#include "fs_fixture.h"

#define IMAGE_BYTES (32 * MiB)
#define MAX_STEPS   4000      /* a sweep that does not end is a failure */

/* What the set-up made, by inode number (stable across mounts). */
struct ctx {
    uint64_t d, e;            /* two directories */
    uint64_t ino;             /* the file the operation works on */
    ssize_t ret;              /* what the operation returned */
    int answered;             /* an early answer was given (fs.h) */
};

struct op {
    const char *name;
    void (*prep)(struct fs *fs, struct ctx *c);
    int (*run)(struct fs *fs, struct ctx *c);
    /* after a remount: 1 the operation is wholly visible (as its return
     * value says), 0 no trace of it, -1 something in between, 2 no trace
     * but the zeros it writes in place (data is not journaled: a crash,
     * a failed commit or a failed data write may leave them; an operation
     * failed for lack of memory may not) */
    int (*state)(struct fs *fs, struct ctx *c);
};

/* ==== helpers ================================================================= */

static char image[128];

static void image_path(void)
{
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(image, sizeof(image), "%s/mmapfs-test-fault-%d", dir, (int)getpid());
}

static void format_image(void)
{
    struct mmio *io;
    unlink(image);
    int fd = open(image, O_CREAT | O_RDWR | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)IMAGE_BYTES), 0);
    close(fd);
    assert_int_equal(mmio_open(&io, image, 0, 0, NULL), 0);
    struct fs_format_options opt = { 0 };
    assert_int_equal(fs_format(io, &opt), 0);
    mmio_close(io);
}

/* The engine backend of the mounts (the pread one reaches every metadata
 * block through pread/pwrite: more I/O to fail). */
static enum mmio_backend backend = MMIO_BACKEND_MMAP;

static struct fs *mount_image(void)
{
    struct fs *fs;
    struct fs_options o = { .path = image, .backend = backend };
    assert_int_equal(fs_mount(&fs, &o), 0);
    return fs;
}

/* fsck -n of the unmounted image must be clean; its report is printed
 * when it is not. */
static void check_image(const char *what, long step)
{
    struct fs_check_options o = { .mode = FS_CHECK_NO, .force = 1 };
    FILE *report = tmpfile();
    assert_non_null(report);
    int rc = fs_check(image, &o, report);
    if (rc != FSCK_EXIT_OK) {
        char line[512];
        rewind(report);
        while (fgets(line, sizeof(line), report))
            fputs(line, stderr);
        fclose(report);
        fail_msg("%s, step %ld: fsck exit %d", what, step, rc);
    }
    fclose(report);
}

/* Makes everything so far durable. */
static void commit(struct fs *fs)
{
    assert_int_equal(jnl_commit_wait(fs->jnl, jnl_running_seq(fs->jnl)), 0);
}

static void fill(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seed + i * 7 + i / 4096);
}

static void write_pattern(struct fs *fs, uint64_t ino, size_t len, unsigned seed)
{
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    fill(buf, len, seed);
    assert_int_equal(fs_write(fs, ino, 0, buf, len), (ssize_t)len);
    free(buf);
}

/* 1 if ino's first len bytes are the pattern of seed (and its size is
 * len). */
static int has_pattern(struct fs *fs, uint64_t ino, size_t len, unsigned seed)
{
    uint8_t *want = malloc(len + 1), *got = malloc(len + 1);
    assert_true(want && got);
    fill(want, len, seed);
    ssize_t n = fs_read(fs, ino, 0, got, len + 1);
    int same = n == (ssize_t)len && memcmp(want, got, len) == 0;
    free(want);
    free(got);
    return same;
}

static int exists(struct fs *fs, uint64_t dir, const char *name)
{
    return lookup(fs, dir, name) > 0;
}

/* Common set-up: directories d and e. */
static void prep_dirs(struct fs *fs, struct ctx *c)
{
    c->d = mkdirectory(fs, ROOT, "d");
    c->e = mkdirectory(fs, ROOT, "e");
}

/* ==== the operations ========================================================== */

static int run_create(struct fs *fs, struct ctx *c)
{
    struct fs_stat st;
    int err = fs_mknod(fs, c->d, "new", S_IFREG | 0644, 0, &cred, &st);
    if (!err)
        fs_forget(fs, st.ino, 1);
    return err;
}

static int state_create(struct fs *fs, struct ctx *c)
{
    struct fs_stat st;
    if (fs_lookup(fs, c->d, "new", &st))
        return 0;
    fs_forget(fs, st.ino, 1);
    return S_ISREG(st.mode) && st.nlink == 1 ? 1 : -1;
}

static int run_mkdir(struct fs *fs, struct ctx *c)
{
    struct fs_stat st;
    int err = fs_mkdir(fs, c->d, "sub", 0755, &cred, &st);
    if (!err)
        fs_forget(fs, st.ino, 1);
    return err;
}

static int state_mkdir(struct fs *fs, struct ctx *c)
{
    struct fs_stat st;
    uint32_t dlinks = attr(fs, c->d).nlink;
    if (fs_lookup(fs, c->d, "sub", &st))
        return dlinks == 2 ? 0 : -1;
    fs_forget(fs, st.ino, 1);
    return S_ISDIR(st.mode) && st.nlink == 2 && dlinks == 3 ? 1 : -1;
}

static int run_mknod(struct fs *fs, struct ctx *c)
{
    struct fs_stat st;
    int err = fs_mknod(fs, c->d, "dev", S_IFCHR | 0600, makedev(1, 3), &cred, &st);
    if (!err)
        fs_forget(fs, st.ino, 1);
    return err;
}

static int state_mknod(struct fs *fs, struct ctx *c)
{
    struct fs_stat st;
    if (fs_lookup(fs, c->d, "dev", &st))
        return 0;
    fs_forget(fs, st.ino, 1);
    return S_ISCHR(st.mode) && st.rdev == makedev(1, 3) ? 1 : -1;
}

/* longer than fits in the inode: a data block */
static char symlink_target[1001];

static int run_symlink(struct fs *fs, struct ctx *c)
{
    struct fs_stat st;
    memset(symlink_target, 't', sizeof(symlink_target) - 1);
    int err = fs_symlink(fs, c->d, "sl", symlink_target, &cred, &st);
    if (!err)
        fs_forget(fs, st.ino, 1);
    return err;
}

static int state_symlink(struct fs *fs, struct ctx *c)
{
    struct fs_stat st;
    char buf[2048];
    if (fs_lookup(fs, c->d, "sl", &st))
        return 0;
    fs_forget(fs, st.ino, 1);
    int n = fs_readlink(fs, st.ino, buf, sizeof(buf));
    return n == (int)strlen(symlink_target) && memcmp(buf, symlink_target, (size_t)n) == 0
               ? 1 : -1;
}

static void prep_file(struct fs *fs, struct ctx *c)
{
    prep_dirs(fs, c);
    c->ino = mkfile(fs, c->d, "f");
    write_pattern(fs, c->ino, 3 * 4096 + 100, 1);
}

static int run_link(struct fs *fs, struct ctx *c)
{
    struct fs_stat st;
    int err = fs_link(fs, c->ino, c->e, "hl", &st);
    if (!err)
        fs_forget(fs, st.ino, 1);
    return err;
}

static int state_link(struct fs *fs, struct ctx *c)
{
    uint32_t links = attr(fs, c->ino).nlink;
    int64_t ino = lookup(fs, c->e, "hl");
    if (ino < 0)
        return links == 1 ? 0 : -1;
    return (uint64_t)ino == c->ino && links == 2 ? 1 : -1;
}

/* O_TMPFILE: an unnamed file made in d, written, and linked in e as "hl",
 * then closed. However it fails, a file that got no name is an orphan
 * (freed by the close or the next mount); visible means "hl" with the
 * data. */
static int run_tmpfile(struct fs *fs, struct ctx *c)
{
    uint8_t buf[5000];
    struct fs_stat st, ls;
    int err = fs_tmpfile(fs, c->d, 0644, &cred, &st);
    if (err)
        return err;
    fill(buf, sizeof(buf), 7);
    size_t done = 0;                    /* as a caller does: on after a short write */
    while (!err && done < sizeof(buf)) {
        ssize_t n = fs_write(fs, st.ino, done, buf + done, sizeof(buf) - done);
        err = n < 0 ? (int)n : n == 0 ? -EIO : 0;
        done += n > 0 ? (size_t)n : 0;
    }
    if (!err && (err = fs_link(fs, st.ino, c->e, "hl", &ls)) == 0)
        fs_forget(fs, ls.ino, 1);
    fs_forget(fs, st.ino, 1);
    return err;
}

static int state_tmpfile(struct fs *fs, struct ctx *c)
{
    int64_t ino = lookup(fs, c->e, "hl");
    if (ino < 0)
        return 0;
    return attr(fs, (uint64_t)ino).nlink == 1 && has_pattern(fs, (uint64_t)ino, 5000, 7) ? 1 : -1;
}

static int run_unlink(struct fs *fs, struct ctx *c)
{
    return fs_unlink(fs, c->d, "f");
}

static int state_unlink(struct fs *fs, struct ctx *c)
{
    if (!exists(fs, c->d, "f"))
        return 1;
    return has_pattern(fs, c->ino, 3 * 4096 + 100, 1) ? 0 : -1;
}

/* the file keeps a lookup reference: unlink puts it on the orphan list */
static void prep_open_file(struct fs *fs, struct ctx *c)
{
    struct fs_stat st;
    prep_file(fs, c);
    assert_int_equal(fs_lookup(fs, c->d, "f", &st), 0);
}

static void prep_rmdir(struct fs *fs, struct ctx *c)
{
    prep_dirs(fs, c);
    c->ino = mkdirectory(fs, c->d, "empty");
}

static int run_rmdir(struct fs *fs, struct ctx *c)
{
    return fs_rmdir(fs, c->d, "empty");
}

static int state_rmdir(struct fs *fs, struct ctx *c)
{
    uint32_t dlinks = attr(fs, c->d).nlink;
    if (exists(fs, c->d, "empty"))
        return dlinks == 3 ? 0 : -1;
    return dlinks == 2 ? 1 : -1;
}

static void prep_rename(struct fs *fs, struct ctx *c)
{
    prep_dirs(fs, c);
    c->ino = mkfile(fs, c->d, "src");
    write_pattern(fs, c->ino, 2 * 4096, 2);
    uint64_t dst = mkfile(fs, c->e, "dst");
    write_pattern(fs, dst, 5 * 4096, 3);
}

static int run_rename(struct fs *fs, struct ctx *c)
{
    return fs_rename(fs, c->d, "src", c->e, "dst", 0);
}

static int state_rename(struct fs *fs, struct ctx *c)
{
    int64_t dst = lookup(fs, c->e, "dst");
    if (dst < 0)
        return -1;
    if (!exists(fs, c->d, "src"))
        return (uint64_t)dst == c->ino && has_pattern(fs, c->ino, 2 * 4096, 2) ? 1 : -1;
    return has_pattern(fs, (uint64_t)dst, 5 * 4096, 3) ? 0 : -1;
}

static int run_exchange(struct fs *fs, struct ctx *c)
{
    return fs_rename(fs, c->d, "src", c->e, "dst", FS_RENAME_EXCHANGE);
}

static int state_exchange(struct fs *fs, struct ctx *c)
{
    int64_t src = lookup(fs, c->d, "src"), dst = lookup(fs, c->e, "dst");
    if (src < 0 || dst < 0)
        return -1;
    if ((uint64_t)src == c->ino)
        return has_pattern(fs, (uint64_t)dst, 5 * 4096, 3) ? 0 : -1;
    return (uint64_t)dst == c->ino && has_pattern(fs, (uint64_t)src, 5 * 4096, 3) ? 1 : -1;
}

static int run_chmod(struct fs *fs, struct ctx *c)
{
    struct fs_setattr sa = { .mode = 0600, .uid = 1000, .gid = 1000 };
    struct fs_stat st;
    return fs_setattr(fs, c->ino, &sa, FS_SET_MODE | FS_SET_UID | FS_SET_GID, &st);
}

/* ---- early answers (fs.h): the same operations, told to answer ---- */

static void early_noted(struct fs_early *e, const struct fs_stat *st)
{
    (void)e;
    (void)st;
}

static int run_unlink_early(struct fs *fs, struct ctx *c)
{
    struct fs_early e = { .answer = early_noted };
    int err = fs_unlink_early(fs, c->d, "f", &e);
    c->answered = e.answered;
    return err;
}

static int run_rmdir_early(struct fs *fs, struct ctx *c)
{
    struct fs_early e = { .answer = early_noted };
    int err = fs_rmdir_early(fs, c->d, "empty", &e);
    c->answered = e.answered;
    return err;
}

static int run_times_early(struct fs *fs, struct ctx *c)
{
    struct fs_setattr sa = { .atime = { 1000, 1 }, .mtime = { 2000, 2 }, .ctime = { 3000, 3 } };
    struct fs_early e = { .answer = early_noted };
    struct fs_stat st;
    int err = fs_setattr_early(fs, c->ino, &sa, FS_SET_ATIME | FS_SET_MTIME | FS_SET_CTIME,
                               &st, &e);
    c->answered = e.answered;
    return err;
}

static int run_rename_early(struct fs *fs, struct ctx *c)
{
    struct fs_early e = { .answer = early_noted };
    int err = fs_rename_early(fs, c->d, "src", c->e, "dst", 0, NULL, &e);
    c->answered = e.answered;
    return err;
}

static int run_exchange_early(struct fs *fs, struct ctx *c)
{
    struct fs_early e = { .answer = early_noted };
    int err = fs_rename_early(fs, c->d, "src", c->e, "dst", FS_RENAME_EXCHANGE, NULL, &e);
    c->answered = e.answered;
    return err;
}

/* a new name: the insert may allocate, so no early answer; the caller
 * answers when it returns (ENOSPC is retried as usual) */
static int run_move_early(struct fs *fs, struct ctx *c)
{
    struct fs_early e = { .answer = early_noted };
    int err = fs_rename_early(fs, c->d, "f", c->e, "moved", 0, NULL, &e);
    if (e.answered)
        fail_msg("a rename to a new name answered early");
    return err;
}

static int state_move(struct fs *fs, struct ctx *c)
{
    int there = exists(fs, c->e, "moved"), here = exists(fs, c->d, "f");
    if (there == here)
        return -1;
    return there && !has_pattern(fs, c->ino, 3 * 4096 + 100, 1) ? -1 : there;
}

static int state_times(struct fs *fs, struct ctx *c)
{
    struct fs_stat st = attr(fs, c->ino);
    int all = st.atime.tv_sec == 1000 && st.mtime.tv_sec == 2000 && st.ctime.tv_sec == 3000 &&
              st.mtime.tv_nsec == 2 && st.ctime.tv_nsec == 3;
    return all ? 1 : st.mtime.tv_sec != 2000 && st.ctime.tv_sec != 3000 ? 0 : -1;
}

static int state_chmod(struct fs *fs, struct ctx *c)
{
    uint32_t mode = attr(fs, c->ino).mode & 07777;
    return mode == 0600 ? 1 : mode == 0644 ? 0 : -1;
}

/* A directory whose tree is one full leaf: the next entry of a name as
 * long as the others ("new") splits it, allocating two tree blocks.
 * How many names fill a leaf is found once, in directory e: the count
 * at which its block count grows past that of one leaf. */
static void prep_full_leaf(struct fs *fs, struct ctx *c)
{
    static int fill;
    char name[16];
    prep_dirs(fs, c);
    if (!fill) {
        mkfile(fs, c->e, "000");
        uint64_t one_leaf = attr(fs, c->e).blocks512;
        for (int i = 1; i < 1000 && !fill; i++) {
            snprintf(name, sizeof(name), "%03d", i);
            mkfile(fs, c->e, name);
            if (attr(fs, c->e).blocks512 > one_leaf)
                fill = i;               /* entries 0 .. i-1 filled the leaf */
        }
        assert_true(fill > 0);
    }
    for (int i = 0; i < fill; i++) {
        snprintf(name, sizeof(name), "%03d", i);
        mkfile(fs, c->d, name);
    }
}

#define WRITE_BYTES (24 * 4096 + 300)

static void prep_empty_file(struct fs *fs, struct ctx *c)
{
    prep_dirs(fs, c);
    c->ino = mkfile(fs, c->d, "w");
}

static int run_write(struct fs *fs, struct ctx *c)
{
    uint8_t *buf = malloc(WRITE_BYTES);
    if (!buf)
        return -ENOMEM;
    fill(buf, WRITE_BYTES, 4);
    ssize_t n = fs_write(fs, c->ino, 0, buf, WRITE_BYTES);
    free(buf);
    c->ret = n;
    return n < 0 ? (int)n : 0;
}

static int state_write(struct fs *fs, struct ctx *c)
{
    uint64_t size = attr(fs, c->ino).size;
    if (size == 0)
        return 0;
    /* a short write is whole too: the bytes it reported */
    uint64_t want = c->ret > 0 ? (uint64_t)c->ret : WRITE_BYTES;
    if (size != want)
        return -1;
    uint8_t *buf = malloc(WRITE_BYTES), *got = malloc(WRITE_BYTES);
    assert_true(buf && got);
    fill(buf, WRITE_BYTES, 4);
    int ok = fs_read(fs, c->ino, 0, got, want) == (ssize_t)want && memcmp(buf, got, want) == 0;
    free(buf);
    free(got);
    return ok ? 1 : -1;
}

#define BIG_BYTES (40 * 4096)

static void prep_big_file(struct fs *fs, struct ctx *c)
{
    prep_dirs(fs, c);
    c->ino = mkfile(fs, c->d, "big");
    write_pattern(fs, c->ino, BIG_BYTES, 5);
}

static int run_truncate(struct fs *fs, struct ctx *c)
{
    struct fs_setattr sa = { .size = 4096 + 100 };
    struct fs_stat st;
    return fs_setattr(fs, c->ino, &sa, FS_SET_SIZE, &st);
}

/* 1 if the file is the pattern of BIG_BYTES with the given ranges zeroed */
static int zeroed_pattern(struct fs *fs, uint64_t ino, const uint64_t (*zero)[2], int n)
{
    uint8_t *want = malloc(BIG_BYTES), *got = malloc(BIG_BYTES + 1);
    assert_true(want && got);
    fill(want, BIG_BYTES, 5);
    for (int i = 0; i < n; i++)
        memset(want + zero[i][0], 0, zero[i][1] - zero[i][0]);
    int ok = fs_read(fs, ino, 0, got, BIG_BYTES + 1) == BIG_BYTES &&
             memcmp(want, got, BIG_BYTES) == 0;
    free(want);
    free(got);
    return ok;
}

static int state_truncate(struct fs *fs, struct ctx *c)
{
    static const uint64_t tail[1][2] = { { 4096 + 100, 2 * 4096 } };
    if (has_pattern(fs, c->ino, BIG_BYTES, 5))
        return 0;
    if (zeroed_pattern(fs, c->ino, tail, 1))
        return 2;
    return has_pattern(fs, c->ino, 4096 + 100, 5) ? 1 : -1;
}

static int run_fallocate(struct fs *fs, struct ctx *c)
{
    return fs_fallocate(fs, c->ino, 0, 0, 32 * 4096);
}

static int state_fallocate(struct fs *fs, struct ctx *c)
{
    struct fs_stat st = attr(fs, c->ino);
    if (st.size == 0 && st.blocks512 == 0)
        return 0;
    return st.size == 32 * 4096 && st.blocks512 >= 32 * 8 ? 1 : -1;
}

static int run_punch(struct fs *fs, struct ctx *c)
{
    return fs_fallocate(fs, c->ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 3 * 4096 + 10,
                        20 * 4096);
}

static int state_punch(struct fs *fs, struct ctx *c)
{
    static const uint64_t hole[1][2] = { { 3 * 4096 + 10, 23 * 4096 + 10 } };
    static const uint64_t edges[2][2] = { { 3 * 4096 + 10, 4 * 4096 },
                                          { 23 * 4096, 23 * 4096 + 10 } };
    if (has_pattern(fs, c->ino, BIG_BYTES, 5))
        return 0;
    if (zeroed_pattern(fs, c->ino, hole, 1))
        return 1;
    return zeroed_pattern(fs, c->ino, edges, 2) || zeroed_pattern(fs, c->ino, edges, 1) ? 2 : -1;
}

static const char xattr_value[] = "a value of an extended attribute, long enough to matter";

static int run_setxattr(struct fs *fs, struct ctx *c)
{
    return fs_setxattr(fs, c->ino, "user.k", xattr_value, sizeof(xattr_value), 0);
}

/* 1 if user.k holds xattr_value, 0 if it is absent, -1 otherwise */
static int xattr_state(struct fs *fs, struct ctx *c)
{
    char buf[256];
    int n = fs_getxattr(fs, c->ino, "user.k", buf, sizeof(buf));
    if (n == -ENODATA)
        return 0;
    return n == (int)sizeof(xattr_value) && memcmp(buf, xattr_value, sizeof(xattr_value)) == 0
               ? 1 : -1;
}

static int state_setxattr(struct fs *fs, struct ctx *c)
{
    return xattr_state(fs, c);
}

static void prep_xattr(struct fs *fs, struct ctx *c)
{
    prep_file(fs, c);
    assert_int_equal(run_setxattr(fs, c), 0);
    assert_int_equal(fs_setxattr(fs, c->ino, "user.other", "x", 1, 0), 0);
}

static int run_removexattr(struct fs *fs, struct ctx *c)
{
    return fs_removexattr(fs, c->ino, "user.k");
}

static int state_removexattr(struct fs *fs, struct ctx *c)
{
    int s = xattr_state(fs, c);
    return s < 0 ? -1 : !s;
}

static const struct op ops[] = {
    { "create", prep_dirs, run_create, state_create },
    { "mkdir", prep_dirs, run_mkdir, state_mkdir },
    { "mknod", prep_dirs, run_mknod, state_mknod },
    { "symlink", prep_dirs, run_symlink, state_symlink },
    { "link", prep_file, run_link, state_link },
    { "O_TMPFILE written and linked", prep_dirs, run_tmpfile, state_tmpfile },
    { "unlink", prep_file, run_unlink, state_unlink },
    { "unlink of an open file", prep_open_file, run_unlink, state_unlink },
    { "rmdir", prep_rmdir, run_rmdir, state_rmdir },
    { "unlink answered early", prep_file, run_unlink_early, state_unlink },
    { "unlink of an open file answered early", prep_open_file, run_unlink_early,
      state_unlink },
    { "rmdir answered early", prep_rmdir, run_rmdir_early, state_rmdir },
    { "times answered early", prep_file, run_times_early, state_times },
    { "rename over a file answered early", prep_rename, run_rename_early, state_rename },
    { "rename exchange answered early", prep_rename, run_exchange_early, state_exchange },
    { "rename to a new name, early form", prep_file, run_move_early, state_move },
    { "rename over a file", prep_rename, run_rename, state_rename },
    { "rename exchange", prep_rename, run_exchange, state_exchange },
    { "chmod and chown", prep_file, run_chmod, state_chmod },
    { "create splitting a leaf", prep_full_leaf, run_create, state_create },
    { "write", prep_empty_file, run_write, state_write },
    { "truncate", prep_big_file, run_truncate, state_truncate },
    { "fallocate", prep_empty_file, run_fallocate, state_fallocate },
    { "punch hole", prep_big_file, run_punch, state_punch },
    { "setxattr", prep_file, run_setxattr, state_setxattr },
    { "removexattr", prep_xattr, run_removexattr, state_removexattr },
};

/* ==== the sweep =============================================================== */

static int verbose;

struct tally {
    long steps, failed, aborted;
};

/* Not an injected fault: the disk is full but for step - 1 blocks. */
#define FAULT_NOSPC 4

/* Errors an injected fault may surface as. */
static int clean_error(int err, int kind)
{
    if (kind == FAULT_NOSPC)
        return err == -ENOSPC;
    if (kind == FAULT_MEM)
        return err == -ENOMEM || err == -EROFS;
    return err == -EIO || err == -EROFS;
}

/* Fills the disk (a preallocated file, chunks of 1 MiB then of one block)
 * and frees 'leave' blocks of it again, committed. */
static void fill_disk(struct fs *fs, long leave)
{
    uint64_t f = mkfile(fs, ROOT, "filler"), size = 0;
    for (uint64_t chunk = MiB; chunk >= 4096; chunk = chunk == MiB ? 4096 : 0) {
        int err;
        while ((err = fs_fallocate(fs, f, 0, size, chunk)) == 0)
            size += chunk;
        assert_int_equal(err, -ENOSPC);
    }
    if (leave)
        assert_int_equal(fs_fallocate(fs, f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                                      (uint64_t)leave * 4096), 0);
    commit(fs);
}

/* One run of op with the step-th fault of kind; returns whether the fault
 * was reached. */
static int one_step(const struct op *op, int kind, int warm_up, long step, struct tally *t)
{
    struct ctx c = { 0 };
    format_image();
    struct fs *fs = mount_image();
    op->prep(fs, &c);
    commit(fs);
    if (kind == FAULT_NOSPC)
        fill_disk(fs, step - 1);
    /* the running transaction holds a change of the same blocks, or nothing */
    uint64_t warm = warm_up ? mkfile(fs, c.d, "warm") : 0;

    if (kind != FAULT_NOSPC)
        fault_arm(kind, step, kind == FAULT_IO);
    int ret = op->run(fs, &c);
    int aborted = jnl_error(fs->jnl) != 0;
    int hit = kind == FAULT_MEM ? fault_disarm() : kind == FAULT_NOSPC ? ret == -ENOSPC : 0;
    if (ret != 0 && !clean_error(ret, kind))
        fail_msg("%s, step %ld: returned %d (%s)", op->name, step, ret, strerror(-ret));
    if (kind == FAULT_MEM && !hit && ret != 0)
        fail_msg("%s, step %ld: failed (%s) without a fault", op->name, step, strerror(-ret));
    /* answered as done: it is done, or the journal stops (fs.h); one
     * failed allocation is tried again, not an abort */
    if (c.answered && ret != 0 && !aborted)
        fail_msg("%s, step %ld: answered early, then failed (%s) with the journal going on",
                 op->name, step, strerror(-ret));
    if (c.answered && kind == FAULT_MEM && ret != 0)
        fail_msg("%s, step %ld: answered early, then failed for one allocation", op->name,
                 step);
    int probe = 0;
    if (!aborted) {
        /* the filesystem goes on working (the I/O fault, still armed, may
         * hit this create, or have stopped the journal meanwhile) */
        struct fs_stat st;
        int err = fs_mknod(fs, ROOT, "probe", S_IFREG | 0600, 0, &cred, &st);
        if (err && !(kind == FAULT_IO && (jnl_error(fs->jnl) || fault.hit)) &&
            !(kind == FAULT_NOSPC && err == -ENOSPC))
            fail_msg("%s, step %ld: create after the failure: %s", op->name, step,
                     strerror(-err));
        if (!err)
            fs_forget(fs, st.ino, 1);
        probe = !err;
    }
    int unmount_err = fs_unmount(fs);
    if (kind == FAULT_IO) {
        hit = fault_disarm();
        aborted = aborted || unmount_err != 0;
    }
    if (unmount_err && !aborted)
        fail_msg("%s, step %ld: unmount: %s", op->name, step, strerror(-unmount_err));
    if (verbose)
        fprintf(stderr, "  %s %s%s step %ld: ret %d%s%s\n", op->name,
                kind == FAULT_MEM ? "mem" : kind == FAULT_IO ? "io" : "nospc",
                warm_up ? " warm" : "", step, ret,
                hit ? " (fault hit)" : "", aborted ? " (aborted)" : "");

    check_image(op->name, step);
    fs = mount_image();
    c.ret = ret < 0 ? ret : c.ret;
    int s = op->state(fs, &c);
    int warm_there = !warm_up || lookup(fs, c.d, "warm") == (int64_t)warm;
    if (s < 0 || (s == 2 && kind != FAULT_IO))
        fail_msg("%s, step %ld: half of the operation is visible", op->name, step);
    if (s == 2)
        s = 0;
    if (!aborted) {
        if (s != (ret == 0))
            fail_msg("%s, step %ld: returned %d but the operation is %s", op->name, step, ret,
                     s ? "visible" : "not visible");
        if (!warm_there || exists(fs, ROOT, "probe") != probe)
            fail_msg("%s, step %ld: earlier changes were lost", op->name, step);
    } else if (kind == FAULT_MEM) {
        /* aborted: the disk holds the last commit, before "warm" */
        if (s || (warm_up && warm_there))
            fail_msg("%s, step %ld: changes of an aborted transaction committed", op->name, step);
    } else if (s && !warm_there) {
        fail_msg("%s, step %ld: the operation committed without the change before it",
                 op->name, step);
    }
    assert_int_equal(fs_unmount(fs), 0);
    t->steps++;
    t->failed += ret != 0;
    t->aborted += aborted;
    return hit;
}

static void sweep(int kind)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const char *only = getenv("FAULT_ONLY");
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (only && *only && strcmp(only, ops[i].name) != 0)
            continue;
        struct tally t = { 0 };
        /* a full disk may not take "warm" */
        for (int warm_up = 0; warm_up < (kind == FAULT_NOSPC ? 1 : 2); warm_up++) {
            long step = 1;
            while (one_step(&ops[i], kind, warm_up, step, &t)) {
                if (++step > MAX_STEPS)
                    fail_msg("%s: still failing after %d steps", ops[i].name, MAX_STEPS);
            }
        }
        fprintf(stderr, "  %-24s %s%s: %3ld steps, %3ld failed cleanly, %ld aborted\n",
                ops[i].name,
                kind == FAULT_MEM ? "memory" : kind == FAULT_IO ? "I/O" : "ENOSPC",
                backend == MMIO_BACKEND_PREAD ? " (pread)" : "", t.steps, t.failed, t.aborted);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "  sweep: %.1f s\n",
            (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    unlink(image);
}

static void test_sweep_memory(void **state)
{
    (void)state;
    sweep(FAULT_MEM);
}

static void test_sweep_io(void **state)
{
    (void)state;
    sweep(FAULT_IO);
}

/* ENOSPC stays a clean, non-fatal error: each operation runs on a disk
 * with 0, 1, 2 ... free blocks until it succeeds; every failure must leave
 * no trace and the filesystem writable. */
static void test_sweep_nospc(void **state)
{
    (void)state;
    sweep(FAULT_NOSPC);
}

static void test_sweep_io_pread(void **state)
{
    (void)state;
    backend = MMIO_BACKEND_PREAD;
    sweep(FAULT_IO);
    backend = MMIO_BACKEND_MMAP;
}

/* An inode whose change the inode cache could not record (no memory for
 * its entry) must still make fsync wait for the running transaction:
 * before, its dirty sequence number was dropped and fsync answered after
 * a data-only sync. */
static void test_icache_lost_seq(void **state)
{
    (void)state;
    format_image();
    struct fs *fs = mount_image();
    uint64_t far = UINT64_MAX / 2;     /* never durable: every entry stays live */
    jnl_lock(fs->jnl);
    /* fill the table (1024 slots) as far as it goes without growing */
    uint64_t ino = 1000000;
    fault_arm_from(FAULT_MEM, 1, 0);
    for (int i = 0; i < 1100; i++)
        fs_icache_set_dirty_seq(fs, ino++, far);
    int hit = fault_disarm();
    /* the table is full: this one has no entry, yet it is not forgotten */
    fault_arm_from(FAULT_MEM, 1, 0);
    fs_icache_set_dirty_seq(fs, 42, far + 1);
    fs_icache_set_data_seq(fs, 42, far + 2);
    fault_disarm();
    uint64_t dirty = fs_icache_dirty_seq(fs, 42), data = fs_icache_data_seq(fs, 42);
    jnl_unlock(fs->jnl);
    assert_true(hit);
    assert_true(dirty >= far + 1);
    assert_true(data >= far + 2);
    fs_abandon(fs);              /* the fake entries must not be unmounted */
    unlink(image);
}

/* The inode cache through its rebuilds: growing from 1,024 slots to room
 * for 30,000 entries, then pruning the ones that tell nothing. Lookup
 * counts and orphan links (the head's predecessor 0 included) survive
 * every rebuild; pruned entries answer 0. */
static void test_icache_rebuilds(void **state)
{
    (void)state;
    format_image();
    struct fs *fs = mount_image();
    const uint64_t base = 1000000, n = 30000;
    uint64_t prev = 1;
    jnl_lock(fs->jnl);
    assert_int_equal(fs_icache_orphan_set(fs, base + n + 1, 0), 0);
    assert_int_equal(fs_icache_orphan_set(fs, base + n + 2, base + n + 1), 0);
    for (uint64_t i = 0; i < n; i++) {
        fs_icache_ref(fs, base + i);
        if (i % 3 == 0)
            fs_icache_ref(fs, base + i);
    }
    assert_int_equal(fs_icache_count(fs), n + 2);
    /* drop the references of the odd ones: nothing keeps them any more */
    for (uint64_t i = 1; i < n; i += 2)
        fs_icache_unref(fs, base + i, 2);
    /* new entries until a pruning rebuild has run */
    uint64_t extra = 0;
    while (fs_icache_count(fs) == n + 2 + extra && extra < 4 * n)
        fs_icache_ref(fs, base + 2 * n + extra++);
    uint64_t count = fs_icache_count(fs);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t want = i % 2 ? 0 : i % 3 == 0 ? 2 : 1;
        if (fs_icache_refs(fs, base + i) != want)
            fail_msg("inode %llu: %llu references, expected %llu", (unsigned long long)(base + i),
                     (unsigned long long)fs_icache_refs(fs, base + i), (unsigned long long)want);
    }
    for (uint64_t i = 0; i < extra; i++)
        assert_int_equal(fs_icache_refs(fs, base + 2 * n + i), 1);
    int on1 = fs_icache_orphan_get(fs, base + n + 1, &prev);
    uint64_t prev1 = prev;
    int on2 = fs_icache_orphan_get(fs, base + n + 2, &prev);
    jnl_unlock(fs->jnl);
    assert_true(count < n + 2 + extra);      /* the pruning ran and dropped entries */
    assert_int_equal(count, n / 2 + 2 + extra);
    assert_true(on1 && on2);
    assert_int_equal(prev1, 0);
    assert_int_equal(prev, base + n + 1);
    fs_abandon(fs);              /* the fake entries must not be unmounted */
    unlink(image);
}

/* jnl_abort (what fs_end falls back to when an undo is impossible): the
 * filesystem turns read-only, the running transaction never commits, and
 * the disk keeps the last durable one. */
static void test_abort(void **state)
{
    (void)state;
    format_image();
    struct fs *fs = mount_image();
    uint64_t d = mkdirectory(fs, ROOT, "d");
    commit(fs);
    mkfile(fs, d, "uncommitted");
    jnl_lock(fs->jnl);
    jnl_abort(fs->jnl, -ENOMEM, "test_abort");
    jnl_unlock(fs->jnl);
    struct fs_stat st;
    assert_int_equal(fs_mknod(fs, d, "after", S_IFREG | 0644, 0, &cred, &st), -EROFS);
    assert_int_equal(fs_fsync(fs, d, 0), -EROFS);
    struct statvfs sv;
    assert_int_equal(fs_statfs(fs, &sv), 0);
    assert_true(sv.f_flag & ST_RDONLY);
    assert_int_equal(fs_unmount(fs), -EROFS);
    check_image("abort", 0);
    fs = mount_image();
    assert_true(exists(fs, ROOT, "d"));
    assert_false(exists(fs, d, "uncommitted"));
    assert_false(exists(fs, d, "after"));
    assert_int_equal(fs_unmount(fs), 0);
    unlink(image);
}

/* Early answers (fs.h): an operation answers once, only after its checks
 * passed and before it changed a block; a failure after the answer is
 * tried again (one failed allocation) or stops the journal (memory that
 * stays short), and the disk then keeps the last commit. */
struct early_probe {
    struct fs_early e;
    struct fs *fs;
    int calls, before_changes, fail_from;  /* fail_from: allocations fail from then on */
    struct fs_stat st;
};

static void early_probe_answer(struct fs_early *e, const struct fs_stat *st)
{
    struct early_probe *p = (struct early_probe *)e;
    p->calls++;
    p->before_changes = !jnl_op_changed(p->fs->jnl);   /* the lock is held */
    if (st)
        p->st = *st;
    if (p->fail_from == 1)
        fault_arm(FAULT_MEM, 1, 0);
    else if (p->fail_from > 1)
        fault_arm_from(FAULT_MEM, 1, 0);
}

static struct early_probe early_probe(struct fs *fs, int fail_from)
{
    struct early_probe p = { .e.answer = early_probe_answer, .fs = fs, .fail_from = fail_from };
    return p;
}

static void test_early_answers(void **state)
{
    (void)state;
    format_image();
    struct fs *fs = mount_image();
    uint64_t d = mkdirectory(fs, ROOT, "d");
    uint64_t f = mkfile(fs, d, "f");
    mkfile(fs, d, "g");
    mkfile(fs, d, "h");
    uint64_t sub = mkdirectory(fs, d, "sub");
    mkfile(fs, sub, "inside");
    commit(fs);

    /* refused: no answer */
    struct early_probe p = early_probe(fs, 0);
    assert_int_equal(fs_unlink_early(fs, d, "missing", &p.e), -ENOENT);
    assert_int_equal(fs_unlink_early(fs, d, "sub", &p.e), -EISDIR);
    assert_int_equal(fs_rmdir_early(fs, d, "sub", &p.e), -ENOTEMPTY);
    assert_int_equal(fs_rmdir_early(fs, d, "f", &p.e), -ENOTDIR);
    struct fs_setattr sa = { .size = 0, .mtime = { 5, 6 } };
    struct fs_stat st;
    assert_int_equal(fs_setattr_early(fs, f, &sa, FS_SET_SIZE, &st, &p.e), -EINVAL);
    assert_int_equal(fs_setattr_early(fs, 999, &sa, FS_SET_MTIME, &st, &p.e), -ENOENT);
    assert_int_equal(fs_rename_early(fs, d, "f", d, "sub", 0, NULL, &p.e), -EISDIR);
    assert_int_equal(fs_rename_early(fs, d, "f", d, "g", FS_RENAME_NOREPLACE, NULL, &p.e),
                     -EEXIST);
    assert_int_equal(p.calls, 0);
    assert_false(p.e.answered);
    /* a new name: the insert may allocate, so the caller answers */
    assert_int_equal(fs_rename_early(fs, d, "h", d, "h2", 0, NULL, &p.e), 0);
    assert_false(p.e.answered);
    assert_int_equal(fs_rename_early(fs, d, "h2", d, "h", 0, NULL, &p.e), 0);
    assert_false(p.e.answered);

    /* done: answered once, before the first change */
    p = early_probe(fs, 0);
    assert_int_equal(fs_unlink_early(fs, d, "g", &p.e), 0);
    assert_int_equal(p.calls, 1);
    assert_true(p.before_changes);
    assert_false(exists(fs, d, "g"));
    p = early_probe(fs, 0);
    assert_int_equal(fs_setattr_early(fs, f, &sa, FS_SET_MTIME, &st, &p.e), 0);
    assert_int_equal(p.calls, 1);
    assert_true(p.before_changes);
    assert_int_equal(p.st.mtime.tv_sec, 5);
    assert_int_equal(p.st.mtime.tv_nsec, 6);
    assert_int_equal(attr(fs, f).mtime.tv_sec, 5);
    uint64_t x = mkfile(fs, d, "x");
    mkfile(fs, d, "y");
    p = early_probe(fs, 0);
    assert_int_equal(fs_rename_early(fs, d, "x", d, "y", 0, NULL, &p.e), 0);
    assert_int_equal(p.calls, 1);
    assert_true(p.before_changes);
    assert_int_equal(lookup(fs, d, "y"), (int64_t)x);
    assert_false(exists(fs, d, "x"));

    /* one allocation fails after the answer (a transaction with no
     * shadow yet: the change allocates): done all the same */
    commit(fs);
    p = early_probe(fs, 1);
    assert_int_equal(fs_unlink_early(fs, d, "h", &p.e), 0);
    assert_true(fault_disarm());
    assert_int_equal(p.calls, 1);
    assert_false(exists(fs, d, "h"));
    assert_int_equal(jnl_error(fs->jnl), 0);
    commit(fs);

    /* every allocation fails after the answer: the journal stops */
    p = early_probe(fs, 2);
    assert_int_equal(fs_unlink_early(fs, d, "f", &p.e), -ENOMEM);
    assert_true(fault_disarm());
    assert_int_equal(p.calls, 1);
    assert_int_not_equal(jnl_error(fs->jnl), 0);
    assert_int_equal(fs_unmount(fs), -EROFS);
    check_image("early answers", 0);
    fs = mount_image();
    assert_true(exists(fs, d, "f"));        /* the last commit */
    assert_false(exists(fs, d, "g"));
    assert_false(exists(fs, d, "h"));
    assert_int_equal(fs_unmount(fs), 0);
    unlink(image);
}

int main(void)
{
    const char *v = getenv("FAULT_VERBOSE");
    verbose = v && *v == '1';
    image_path();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sweep_memory),
        cmocka_unit_test(test_sweep_io),
        cmocka_unit_test(test_sweep_io_pread),
        cmocka_unit_test(test_sweep_nospc),
        cmocka_unit_test(test_icache_lost_seq),
        cmocka_unit_test(test_icache_rebuilds),
        cmocka_unit_test(test_abort),
        cmocka_unit_test(test_early_answers),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(image);
    return failed;
}
