/*
 * test_fs_shrink.c — an image file truncated under a mounted fs core.
 *
 * Every metadata read goes through the engine's guarded copy (jnl_read),
 * so a page that vanished under the mapping must come back as an error
 * (-EIO, or -EUCLEAN for what a short read made look corrupt), never as a
 * SIGBUS that kills the process; the journal then refuses to commit, and
 * the unmount still returns. Iovecs of the zero-copy read path that
 * point at vanished pages make the kernel's copy fail with EFAULT (seen
 * here through writev into a pipe), not a SIGBUS. docs/ROBUSTNESS.md.
 */
#include "fs_fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/uio.h>

#define FILES 600

static int img_setup(void **state)
{
    static const struct img_config c = { .name = "shrink", .bytes = 64 * MiB };
    return img_setup_config(state, &c);
}

/* Fills the image: a directory with FILES entries (several B+tree nodes)
 * and a file with data, then remounts so that nothing is in memory. */
static void populate(struct img *m, uint64_t *dir, uint64_t *file)
{
    img_mount(m);
    *dir = mkdirectory(m->fs, ROOT, "d");
    char name[48];
    for (int i = 0; i < FILES; i++) {
        snprintf(name, sizeof(name), "entry-with-a-long-name-%04d", i);
        mkfile(m->fs, *dir, name);
    }
    *file = mkfile(m->fs, ROOT, "data");
    static char buf[64 * 1024];
    memset(buf, 'x', sizeof(buf));
    assert_int_equal(fs_write(m->fs, *file, 0, buf, sizeof(buf)), (ssize_t)sizeof(buf));
    img_remount(m);
}

static int count_fill(void *ctx, const char *name, const struct fs_stat *st, uint64_t next)
{
    (void)name; (void)st; (void)next;
    (*(int *)ctx)++;
    return 0;
}

static void shrink_to(struct img *m, off_t bytes)
{
    int fd = open(m->path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, bytes), 0);
    close(fd);
}

/* The image keeps its first blocks (superblock, bitmaps, the start of the
 * inode table) and loses everything from the data area on: directory
 * nodes, file data. */
static void test_shrink_under_mount(void **state)
{
    struct img *m = *state;
    uint64_t dir, file;
    populate(m, &dir, &file);
    m->skip_fsck = 1;                       /* damaged on purpose */

    /* The zero-copy read path hands out iovecs into the mapping; the
     * kernel copies from them for the FUSE reply, maybe after the image
     * shrank. A writev into a pipe makes the same kernel copy: it fails
     * with EFAULT, no SIGBUS. */
    struct fs_read_pin pin;
    struct iovec iov[8];
    int niov = 0;
    fs_read_pin(m->fs, &pin);
    assert_true(fs_read_iov(m->fs, file, 0, 16384, iov, 8, &niov, &pin) > 0);

    shrink_to(m, (off_t)(m->fs->data_start * MMAPFS_BLOCK_SIZE));

    int p[2];
    assert_int_equal(pipe(p), 0);
    errno = 0;
    assert_int_equal(writev(p[1], iov, niov), -1);
    assert_int_equal(errno, EFAULT);
    close(p[0]);
    close(p[1]);
    fs_read_unpin(m->fs, &pin);

    struct fs_stat st;
    int n = 0;
    int err = fs_readdir(m->fs, dir, 3, 1, count_fill, &n);   /* past . and .. */
    assert_true(err < 0);
    assert_true(err == -EIO || err == -EUCLEAN);
    err = fs_lookup(m->fs, dir, "entry-with-a-long-name-0123", &st);
    assert_true(err == -EIO || err == -EUCLEAN);
    char buf[4096];
    assert_int_equal(fs_read(m->fs, file, 0, buf, sizeof(buf)), -EIO);
    /* the journal saw the fault: nothing commits any more */
    assert_int_equal(jnl_error(m->fs->jnl), -EIO);
    err = fs_mknod(m->fs, ROOT, "new", S_IFREG | 0644, 0, &cred, &st);
    assert_true(err < 0);

    struct fs *fs = m->fs;
    m->fs = NULL;
    assert_int_equal(fs_unmount(fs), -EIO);
}

/* A write after the cut allocates blocks in the lost data area. Host
 * space for them is reserved (the fixture's image is sparse) with
 * FALLOC_FL_KEEP_SIZE: a plain fallocate would extend the file again, and
 * what was cut would read back as zeros (an empty directory: ENOENT for
 * every name) instead of failing with EIO. */
static void test_shrink_then_allocate(void **state)
{
    struct img *m = *state;
    uint64_t dir, file;
    populate(m, &dir, &file);
    m->skip_fsck = 1;
    off_t cut = (off_t)(m->fs->data_start * MMAPFS_BLOCK_SIZE);
    assert_true(m->fs->host_sparse);

    shrink_to(m, cut);

    static char buf[256 * 1024];
    memset(buf, 'y', sizeof(buf));
    ssize_t w = fs_write(m->fs, file, 1 << 20, buf, sizeof(buf));
    assert_true(w < 0);
    struct stat hst;
    assert_int_equal(stat(m->path, &hst), 0);
    assert_int_equal(hst.st_size, cut);
    struct fs_stat st;
    int err = fs_lookup(m->fs, dir, "entry-with-a-long-name-0123", &st);
    assert_true(err == -EIO || err == -EUCLEAN);
    struct fs *fs = m->fs;
    m->fs = NULL;
    assert_true(fs_unmount(fs) < 0);
}

/* Only the superblock survives: inode table and bitmaps are gone too. */
static void test_shrink_to_superblock(void **state)
{
    struct img *m = *state;
    uint64_t dir, file;
    populate(m, &dir, &file);
    m->skip_fsck = 1;

    shrink_to(m, MMAPFS_BLOCK_SIZE);

    struct fs_stat st;
    int err = fs_getattr(m->fs, file, &st);
    assert_true(err == -EIO || err == -EUCLEAN);
    err = fs_lookup(m->fs, ROOT, "d", &st);
    assert_true(err == -EIO || err == -EUCLEAN);
    struct fs *fs = m->fs;
    m->fs = NULL;
    assert_true(fs_unmount(fs) < 0);
    /* A mount of the shrunken image is refused cleanly. */
    assert_true(img_try_mount(m, (struct fs_options){ 0 }) < 0);
    assert_null(m->fs);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, img_setup, img_teardown)
    const struct CMUnitTest tests[] = {
        T(test_shrink_under_mount),
        T(test_shrink_to_superblock),
        T(test_shrink_then_allocate),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
