/*
 * test_resize — the offline tools' core: fs_offline_open (refusals),
 * fs_grow_plan / fs_grow (in place and relocated into the journal tail,
 * a stop after each step leaves the old or the new size, the grown image
 * mounts, holds its files, takes new ones and checks clean), fs_trim, and
 * the discard mount option (fs_options.discard) on a real image file.
 */
#include "fs_fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <sys/stat.h>

#include "fs/offline.h"

static int img_setup(void **state)
{
    static const struct img_config c = { .name = "resize", .bytes = 32 * MiB,
                                         .check_at_teardown = 1 };
    return img_setup_config(state, &c);
}

static void read_super(const char *path, struct mmapfs_disk_superblock *sb)
{
    struct mmio *io;
    assert_int_equal(mmio_open(&io, path, 0, 0, NULL), 0);
    assert_int_equal(mmio_read_at(io, 0, sb, sizeof(*sb)), 0);
    mmio_close(io);
}

static uint64_t allocated(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_blocks * 512u;
}

/* Writes a file of n bytes of a pattern into the mounted image. */
static uint64_t put_file(struct fs *fs, const char *name, size_t n, int seed)
{
    uint64_t ino = mkfile(fs, ROOT, name);
    unsigned char *buf = malloc(n);
    assert_non_null(buf);
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)(i * 7 + (size_t)seed);
    assert_int_equal(fs_write(fs, ino, 0, buf, n), (ssize_t)n);
    free(buf);
    return ino;
}

static void check_file(struct fs *fs, const char *name, size_t n, int seed)
{
    int64_t ino = lookup(fs, ROOT, name);
    assert_true(ino > 0);
    unsigned char *buf = malloc(n);
    assert_non_null(buf);
    assert_int_equal(fs_read(fs, (uint64_t)ino, 0, buf, n), (ssize_t)n);
    for (size_t i = 0; i < n; i++)
        if (buf[i] != (unsigned char)(i * 7 + (size_t)seed))
            fail_msg("%s: byte %zu differs", name, i);
    free(buf);
}

/* Replaces the test's image by a new 64 MiB one with a journal of
 * journal_blocks (larger than the default, so that the bitmap can move). */
static void remake_image(struct img *m, uint64_t journal_blocks)
{
    struct mmio *io;
    struct fs_format_options fo = { .size = 64 * MiB, .journal_blocks = journal_blocks };

    unlink(m->path);
    m->path[0] = 0;
    assert_int_equal(img_format(m, 64 * MiB, 0), 0);
    assert_int_equal(mmio_open(&io, m->path, 0, 0, NULL), 0);
    assert_int_equal(fs_format(io, &fo), 0);
    mmio_close(io);
}

static void test_offline_refusals(void **state)
{
    struct img *m = *state;
    struct fs_offline o;
    char msg[256];

    /* mounted (locked by this process's mount) */
    img_mount(m);
    assert_int_equal(fs_offline_open(&o, m->path, msg, sizeof(msg)), -EBUSY);
    img_unmount(m);
    /* clean: fine */
    assert_int_equal(fs_offline_open(&o, m->path, msg, sizeof(msg)), 0);
    fs_offline_close(&o);
    /* not cleanly unmounted */
    struct mmapfs_disk_superblock sb;
    read_super(m->path, &sb);
    sb.state = MMAPFS_STATE_MOUNTED;
    super_checksum(&sb);
    int fd = open(m->path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, &sb, sizeof(sb), 0), (ssize_t)sizeof(sb));
    assert_int_equal(fs_offline_open(&o, m->path, msg, sizeof(msg)), -EUCLEAN);
    assert_non_null(strstr(msg, "fsck"));
    /* an unknown feature */
    sb.state = MMAPFS_STATE_CLEAN;
    uint32_t incompat = sb.feature_incompat;
    sb.feature_incompat = 0x80;
    super_checksum(&sb);
    assert_int_equal(pwrite(fd, &sb, sizeof(sb), 0), (ssize_t)sizeof(sb));
    assert_int_equal(fs_offline_open(&o, m->path, msg, sizeof(msg)), -EOPNOTSUPP);
    sb.feature_incompat = incompat;
    super_checksum(&sb);
    assert_int_equal(pwrite(fd, &sb, sizeof(sb), 0), (ssize_t)sizeof(sb));
    close(fd);
    /* not mmapfs */
    char other[128];
    snprintf(other, sizeof(other), "%s.other", m->path);
    fd = open(other, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 1 << 20), 0);
    close(fd);
    assert_int_equal(fs_offline_open(&o, other, msg, sizeof(msg)), -EINVAL);
    unlink(other);
}

static void test_grow_plan(void **state)
{
    struct img *m = *state;
    struct fs_offline o;
    struct fs_grow_plan p;
    char msg[256];

    assert_int_equal(fs_offline_open(&o, m->path, msg, sizeof(msg)), 0);
    assert_int_equal(fs_grow_plan(&o, 16 * MiB, &p), -EINVAL);        /* shrink */
    assert_int_equal(fs_grow_plan(&o, 32 * MiB, &p), 0);
    assert_int_equal(p.new_blocks, p.old_blocks);
    assert_int_equal(fs_grow_plan(&o, 128 * MiB, &p), 0);             /* 1 bitmap block */
    assert_false(p.relocated);
    assert_int_equal(p.bitmap_blocks, 1);
    /* mkfs left room for 64 x 32 MiB = 2 GiB (16 bitmap blocks) */
    assert_int_equal(fs_grow_plan(&o, 2 * GiB, &p), 0);
    assert_false(p.relocated);
    assert_int_equal(p.bitmap_blocks, 16);
    /* journal 1026 blocks (the minimum): nothing to give beyond that room */
    assert_int_equal(o.sb.journal_blocks, 1026);
    assert_int_equal(fs_grow_plan(&o, 2 * GiB + 4096, &p), -EFBIG);
    assert_int_equal(p.max_blocks, 2 * GiB / 4096);
    fs_offline_close(&o);
}

/* in place (mkfs's room), then relocated (an image whose journal can
 * spare blocks), then in place again (the room the relocation left) */
static void test_grow_and_use(void **state)
{
    struct img *m = *state;
    struct fs_offline o;
    struct fs_grow_plan p;
    struct mmapfs_disk_superblock sb;
    char msg[256];

    remake_image(m, 4096);
    img_mount(m);
    put_file(m->fs, "a", 3 * MiB, 1);
    img_unmount(m);

    assert_int_equal(fs_offline_open(&o, m->path, msg, sizeof(msg)), 0);
    assert_int_equal(fs_grow(&o, 100 * MiB, &p, NULL, NULL), 0);      /* in place */
    assert_false(p.relocated);
    assert_int_equal(fs_grow(&o, 1 * GiB, &p, NULL, NULL), 0);        /* mkfs's room */
    assert_false(p.relocated);
    assert_int_equal(fs_grow(&o, 8 * GiB, &p, NULL, NULL), 0);        /* 64 bitmap blocks */
    assert_true(p.relocated);
    assert_int_equal(p.bitmap_blocks, 64);
    assert_int_equal(p.journal_blocks, 4096 - 128);                   /* twice the need */
    fs_offline_close(&o);

    read_super(m->path, &sb);
    assert_int_equal(sb.block_count, 8 * GiB / 4096);
    assert_int_equal(sb.block_bitmap_blocks, 64);
    assert_int_equal(sb.journal_blocks, 3968);
    assert_int_equal(sb.block_bitmap_start, sb.journal_start + 3968);
    img_check(m);

    img_mount(m);
    struct statvfs sv;
    assert_int_equal(fs_statfs(m->fs, &sv), 0);
    assert_true((uint64_t)sv.f_blocks * sv.f_frsize > 8000 * MiB);
    check_file(m->fs, "a", 3 * MiB, 1);
    put_file(m->fs, "b", 200 * MiB, 2);    /* beyond the old end */
    check_file(m->fs, "b", 200 * MiB, 2);
    img_remount(m);
    check_file(m->fs, "a", 3 * MiB, 1);
    check_file(m->fs, "b", 200 * MiB, 2);
    img_unmount(m);
    img_check(m);

    /* and again in place, into the room the relocation left */
    assert_int_equal(fs_offline_open(&o, m->path, msg, sizeof(msg)), 0);
    assert_int_equal(fs_grow(&o, 12 * GiB, &p, NULL, NULL), 0);
    assert_false(p.relocated);
    fs_offline_close(&o);
    img_check(m);
}

/* A stop right after each step (the tool exits there: a crash); 64 MiB
 * to 8 GiB is past mkfs's room (4 GiB), so the bitmap moves: every step. */
static jmp_buf stop_jump;
static enum fs_grow_step stop_at;
static void stop_hook(enum fs_grow_step step, void *ctx)
{
    (void)ctx;
    if (step == stop_at)
        longjmp(stop_jump, 1);
}

static void test_grow_stop_at_each_step(void **state)
{
    struct img *m = *state;
    char msg[256];

    for (volatile int step = FS_GROW_EXTENDED; step <= FS_GROW_SUPER; step++) {
        struct fs_offline o;
        struct fs_grow_plan p;
        struct mmapfs_disk_superblock sb;

        remake_image(m, 2048);
        img_mount(m);
        put_file(m->fs, "a", MiB, step);
        img_unmount(m);

        assert_int_equal(fs_offline_open(&o, m->path, msg, sizeof(msg)), 0);
        stop_at = (enum fs_grow_step)step;
        if (setjmp(stop_jump) == 0) {
            fs_grow(&o, 8 * GiB, &p, stop_hook, NULL);
            fail_msg("step %d never reached", step);
        }
        fs_offline_close(&o);        /* closes without a sync of its own */
        read_super(m->path, &sb);
        if (step == FS_GROW_SUPER)
            assert_int_equal(sb.block_count, 8 * GiB / 4096);
        else
            assert_int_equal(sb.block_count, 64 * MiB / 4096);
        img_check(m);
        img_mount(m);
        check_file(m->fs, "a", MiB, step);
        img_unmount(m);
        /* a second run finishes */
        assert_int_equal(fs_offline_open(&o, m->path, msg, sizeof(msg)), 0);
        assert_int_equal(fs_grow(&o, 8 * GiB, &p, NULL, NULL), 0);
        fs_offline_close(&o);
        read_super(m->path, &sb);
        assert_int_equal(sb.block_count, 8 * GiB / 4096);
        img_check(m);
    }
}

static void test_trim_and_discard_option(void **state)
{
    struct img *m = *state;
    struct fs_offline o;
    char msg[256];
    uint64_t runs, blocks;

    /* nodiscard: unlinking leaves the image's allocation */
    struct fs_options opt = { .discard = 0 };
    assert_int_equal(img_try_mount(m, opt), 0);
    put_file(m->fs, "keep", MiB, 3);
    put_file(m->fs, "gone", 8 * MiB, 4);
    assert_int_equal(fs_fsync(m->fs, ROOT, 0), 0);
    uint64_t full = allocated(m->path);
    assert_int_equal(fs_unlink(m->fs, ROOT, "gone"), 0);
    img_unmount(m);
    assert_true(allocated(m->path) + MiB > full);

    /* offline trim gives the 8 MiB back */
    assert_int_equal(fs_offline_open(&o, m->path, msg, sizeof(msg)), 0);
    assert_int_equal(fs_trim(&o, &runs, &blocks), 0);
    fs_offline_close(&o);
    assert_true(runs >= 1);
    assert_true(blocks * 4096 >= 8 * MiB);
    assert_true(allocated(m->path) + 7 * MiB < full);
    img_check(m);

    /* discard: the unlink's blocks go back at the commit */
    opt.discard = 1;
    assert_int_equal(img_try_mount(m, opt), 0);
    check_file(m->fs, "keep", MiB, 3);
    put_file(m->fs, "gone2", 8 * MiB, 5);
    assert_int_equal(fs_fsync(m->fs, ROOT, 0), 0);
    full = allocated(m->path);
    assert_int_equal(fs_unlink(m->fs, ROOT, "gone2"), 0);
    assert_int_equal(fs_fsync(m->fs, ROOT, 0), 0);
    assert_int_equal(fs_fsync(m->fs, ROOT, 0), 0);      /* durable, then released */
    assert_true(allocated(m->path) + 7 * MiB < full);
    check_file(m->fs, "keep", MiB, 3);
    struct mmio_metrics mm;
    mmio_get_metrics(m->fs->io, &mm);
    assert_true(mm.discard_bytes >= 8 * MiB);
    img_unmount(m);
    img_check(m);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, img_setup, img_teardown)
    const struct CMUnitTest tests[] = {
        T(test_offline_refusals),
        T(test_grow_plan),
        T(test_grow_and_use),
        T(test_grow_stop_at_each_step),
        T(test_trim_and_discard_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
