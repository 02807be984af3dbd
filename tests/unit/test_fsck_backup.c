/*
 * test_fsck_backup.c — the backup superblock (feature compat 0x1,
 * src/fs/super_backup.c, docs/FORMAT.md §4c): fsck.mmapfs restores a
 * damaged block 0 from it and the filesystem mounts with its files.
 *
 * Each test formats a 32 MiB image, writes a few files and a directory
 * through the fs core, unmounts, damages the image (layout fields of
 * block 0 zeroed with a valid checksum; one layout field changed without
 * one; the whole of block 0 zeroed; the backup itself zeroed), then
 * expects: mount refused without a crash, fsck -n exit 4 naming the
 * backup, fsck -y exit 1, a second fsck -n clean, and a mount that finds
 * every file with its content. Also: MMP images (backup at block 2), a
 * grown image (mmapfs-resize writes the backup before the superblock).
 */
#include "fs_fixture.h"

#include <errno.h>
#include <fcntl.h>

#include "fsck/fsck.h"
#include "fsck_report.h"
#include "fs/fs_i.h"
#include "fs/mkfs.h"
#include "fs/offline.h"
#include "fs/super.h"
#include "fs/super_backup.h"
#include "util/crc32c.h"

#define IMG_BYTES (32 * MiB)
#define NFILES 20

static int img_setup(void **state)
{
    static const struct img_config c = { .name = "backup" };
    return img_setup_config(state, &c);
}

/* Formats the image (with MMP if asked) and fills it: NFILES files in
 * directory "d", file i holding 1000 + 100 i bytes of a pattern. */
static void make_image(struct img *m, int mmp)
{
    snprintf(m->path, sizeof(m->path), "/tmp/mmapfs-test-backup-XXXXXX");
    int fd = mkstemp(m->path);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)IMG_BYTES), 0);
    close(fd);
    struct mmio *io;
    assert_int_equal(mmio_open(&io, m->path, 0, 0, NULL), 0);
    struct fs_format_options opt = { .mmp = mmp, .mmp_interval = 1 };
    assert_int_equal(fs_format(io, &opt), 0);
    mmio_close(io);

    img_mount(m);
    uint64_t d = mkdirectory(m->fs, ROOT, "d");
    for (int i = 0; i < NFILES; i++) {
        char name[32];
        snprintf(name, sizeof(name), "f%d", i);
        uint64_t ino = mkfile(m->fs, d, name);
        size_t n = 1000 + 100 * (size_t)i;
        unsigned char buf[4000];
        for (size_t k = 0; k < n; k++)
            buf[k] = (unsigned char)(k * 13 + (size_t)i);
        assert_int_equal(fs_write(m->fs, ino, 0, buf, n), (ssize_t)n);
    }
    img_unmount(m);
}

/* Mounts the image and checks every file of make_image. */
static void expect_files(struct img *m)
{
    img_mount(m);
    int64_t d = lookup(m->fs, ROOT, "d");
    assert_true(d > 0);
    for (int i = 0; i < NFILES; i++) {
        char name[32];
        snprintf(name, sizeof(name), "f%d", i);
        int64_t ino = lookup(m->fs, (uint64_t)d, name);
        assert_true(ino > 0);
        size_t n = 1000 + 100 * (size_t)i;
        unsigned char buf[4000];
        assert_int_equal(fs_read(m->fs, (uint64_t)ino, 0, buf, sizeof(buf)), (ssize_t)n);
        for (size_t k = 0; k < n; k++)
            assert_int_equal(buf[k], (unsigned char)(k * 13 + (size_t)i));
    }
    /* and it is writable */
    mkfile(m->fs, (uint64_t)d, "after");
    img_unmount(m);
}

static void read_block(struct img *m, uint64_t b, void *buf)
{
    int fd = open(m->path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, 4096, (off_t)(b * 4096)), 4096);
    close(fd);
}

static void write_block(struct img *m, uint64_t b, const void *buf)
{
    int fd = open(m->path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, buf, 4096, (off_t)(b * 4096)), 4096);
    close(fd);
}

static int fsck(struct img *m, enum fs_check_mode mode, char **report)
{
    return fsck_report(m->path, mode, report);
}

/* fsck -n finds the problem (want in its report), -y fixes it, -n is then
 * clean. */
static void expect_fix(struct img *m, const char *want)
{
    char *rep;
    assert_int_equal(fsck(m, FS_CHECK_NO, &rep), FSCK_EXIT_UNCORRECTED);
    assert_non_null(strstr(rep, want));
    free(rep);
    assert_int_equal(fsck(m, FS_CHECK_YES, NULL), FSCK_EXIT_CORRECTED);
    assert_int_equal(fsck(m, FS_CHECK_NO, NULL), FSCK_EXIT_OK);
}

/* The common end of every damage to block 0: mount refused, -n finds the
 * backup at backup_blk usable, -y restores it, -n is then clean, the files
 * are there; next_generation moved past the old one. */
static void expect_restore(struct img *m, uint64_t backup_blk,
                           const struct mmapfs_disk_superblock *before)
{
    struct fs *fs = NULL;
    struct fs_options o = { .path = m->path };
    assert_int_not_equal(fs_mount(&fs, &o), 0);
    assert_null(fs);

    char *rep;
    assert_int_equal(fsck(m, FS_CHECK_NO, &rep), FSCK_EXIT_UNCORRECTED);
    char want[96];
    snprintf(want, sizeof(want), "backup superblock at block %llu is usable",
             (unsigned long long)backup_blk);
    assert_non_null(strstr(rep, want));
    assert_non_null(strstr(rep, "fsck.mmapfs -y"));
    free(rep);
    /* -p does not restore it */
    assert_int_equal(fsck(m, FS_CHECK_PREEN, NULL) & FSCK_EXIT_CORRECTED, 0);

    assert_int_equal(fsck(m, FS_CHECK_YES, &rep), FSCK_EXIT_CORRECTED);
    assert_non_null(strstr(rep, "restored from the backup superblock"));
    free(rep);
    assert_int_equal(fsck(m, FS_CHECK_NO, NULL), FSCK_EXIT_OK);

    struct mmapfs_disk_superblock sb;
    read_block(m, 0, &sb);
    char msg[200];
    assert_int_equal(fs_super_validate(&sb, IMG_BYTES, msg, sizeof(msg)), 0);
    assert_int_equal(sb.block_count, before->block_count);
    assert_int_equal(sb.data_start, before->data_start);
    /* the backup's counts are stale: hints until the next mount recounts */
    assert_true(sb.state & MMAPFS_STATE_MOUNTED);
    assert_false(sb.state & MMAPFS_STATE_CLEAN);
    assert_true(sb.next_generation > before->next_generation);
    assert_memory_equal(sb.uuid, before->uuid, sizeof(sb.uuid));
    expect_files(m);
    /* the mount recounted: clean, with exact counts */
    read_block(m, 0, &sb);
    assert_int_equal(sb.state, MMAPFS_STATE_CLEAN);
    assert_int_equal(fsck(m, FS_CHECK_NO, NULL), FSCK_EXIT_OK);
}

/* ==== tests =================================================================== */

static void test_layout_fields_zeroed(void **state)
{
    struct img *m = *state;
    make_image(m, 0);
    struct mmapfs_disk_superblock sb, before;
    read_block(m, 0, &before);
    assert_true(before.feature_compat & MMAPFS_FEATURE_COMPAT_BACKUP_SB);
    assert_int_equal(before.backup_block, 1);
    sb = before;
    /* every layout field 0, with a checksum that matches */
    size_t from = offsetof(struct mmapfs_disk_superblock, block_count);
    memset((char *)&sb + from, 0, offsetof(struct mmapfs_disk_superblock, root_ino) - from);
    fs_super_checksum(&sb);
    write_block(m, 0, &sb);
    expect_restore(m, 1, &before);
}

static void test_layout_field_bad_checksum(void **state)
{
    struct img *m = *state;
    make_image(m, 0);
    struct mmapfs_disk_superblock sb, before;
    read_block(m, 0, &before);
    sb = before;
    sb.inode_table_start += 3;          /* checksum now wrong, layout not mkfs's */
    write_block(m, 0, &sb);
    expect_restore(m, 1, &before);
}

static void test_primary_zeroed(void **state)
{
    struct img *m = *state;
    make_image(m, 0);
    struct mmapfs_disk_superblock before;
    read_block(m, 0, &before);
    static const uint8_t zero[4096];
    write_block(m, 0, zero);
    expect_restore(m, 1, &before);
}

static void test_primary_garbage_mmp(void **state)
{
    struct img *m = *state;
    make_image(m, 1);
    struct mmapfs_disk_superblock before;
    read_block(m, 0, &before);
    assert_int_equal(before.mmp_block, 1);
    assert_int_equal(before.backup_block, 2);
    uint8_t junk[4096];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 131 + 7);
    write_block(m, 0, junk);
    expect_restore(m, 2, &before);
}

/* Only the checksum is wrong: mending block 0 in place wins over the
 * backup (it keeps the current counters and generation). */
static void test_checksum_only_mends(void **state)
{
    struct img *m = *state;
    make_image(m, 0);
    struct mmapfs_disk_superblock sb;
    read_block(m, 0, &sb);
    uint64_t gen = sb.next_generation;
    sb.checksum ^= 1;
    write_block(m, 0, &sb);
    char *rep;
    assert_int_equal(fsck(m, FS_CHECK_YES, &rep), FSCK_EXIT_CORRECTED);
    assert_non_null(strstr(rep, "the layout checks out"));
    assert_null(strstr(rep, "restored from the backup"));
    free(rep);
    read_block(m, 0, &sb);
    assert_int_equal(sb.next_generation, gen);
    assert_int_equal(fsck(m, FS_CHECK_NO, NULL), FSCK_EXIT_OK);
    expect_files(m);
}

/* The primary is fine, the backup is damaged or stale: an error, -y
 * rewrites it from the primary. */
static void test_backup_damaged(void **state)
{
    struct img *m = *state;
    make_image(m, 0);
    struct mmapfs_disk_superblock sb, backup;
    read_block(m, 0, &sb);
    static const uint8_t zero[4096];
    write_block(m, 1, zero);
    expect_fix(m, "backup superblock at block 1: damaged");
    read_block(m, 1, &backup);
    assert_int_equal(fs_super_validate(&backup, IMG_BYTES, NULL, 0), 0);
    assert_int_equal(backup.block_count, sb.block_count);

    /* stale: a valid backup with another layout */
    backup.inode_bitmap_start -= 1;     /* still a valid layout */
    fs_super_checksum(&backup);
    assert_int_equal(fs_super_validate(&backup, IMG_BYTES, NULL, 0), 0);
    write_block(m, 1, &backup);
    expect_fix(m, "layout differs");
    expect_files(m);
}

/* Neither block 0 nor the backup: fsck gives up (operational error). */
static void test_both_gone(void **state)
{
    struct img *m = *state;
    make_image(m, 0);
    static const uint8_t zero[4096];
    write_block(m, 0, zero);
    write_block(m, 1, zero);
    char *rep;
    assert_int_equal(fsck(m, FS_CHECK_YES, &rep), FSCK_EXIT_OPERATIONAL);
    assert_non_null(strstr(rep, "not an mmapfs filesystem"));
    free(rep);
}

/* mmapfs-resize writes the new superblock to the backup too: a primary
 * lost after growing comes back with the grown size. */
/* make_image, then grown offline (mmapfs-resize) to twice its size. */
static void make_grown_image(struct img *m)
{
    make_image(m, 0);
    struct fs_offline o;
    char msg[256];
    assert_int_equal(fs_offline_open(&o, m->path, msg, sizeof(msg)), 0);
    struct fs_grow_plan plan;
    assert_int_equal(fs_grow(&o, 2 * IMG_BYTES, &plan, NULL, NULL), 0);
    fs_offline_close(&o);
}

static void test_after_grow(void **state)
{
    struct img *m = *state;
    make_grown_image(m);
    struct mmapfs_disk_superblock sb, backup;
    read_block(m, 0, &sb);
    read_block(m, 1, &backup);
    assert_int_equal(sb.block_count, 2 * IMG_BYTES / 4096);
    assert_memory_equal(&sb, &backup, sizeof(sb));

    static const uint8_t zero[4096];
    write_block(m, 0, zero);
    assert_int_equal(fsck(m, FS_CHECK_YES, NULL), FSCK_EXIT_CORRECTED);
    assert_int_equal(fsck(m, FS_CHECK_NO, NULL), FSCK_EXIT_OK);
    read_block(m, 0, &sb);
    assert_int_equal(sb.block_count, 2 * IMG_BYTES / 4096);
    expect_files(m);
}

/* After a grow, block 0's grown inode table extent moved onto the start
 * of the data area (the root directory's index: a valid superblock all
 * the same). The backup's description differs and its extent lies over no
 * file's tree node: fsck takes the backup's, instead of trusting block 0,
 * claiming the files' blocks for the inode table and rewriting the good
 * backup from it. */
static void test_itab_extent_moved(void **state)
{
    struct img *m = *state;
    make_grown_image(m);
    struct mmapfs_disk_superblock sb, backup;
    read_block(m, 0, &sb);
    assert_true(sb.feature_incompat & MMAPFS_FEATURE_INCOMPAT_ITAB);
    assert_true(sb.itab.count >= 1);
    sb.itab.ext[0].start = sb.data_start;
    fs_super_checksum(&sb);
    write_block(m, 0, &sb);

    expect_fix(m, "superblock: its inode table extents lie over");
    read_block(m, 0, &sb);
    read_block(m, 1, &backup);
    assert_memory_equal(&sb.itab, &backup.itab, sizeof(sb.itab));
    assert_true(sb.itab.ext[0].start != sb.data_start);
    expect_files(m);
}

/* A crash of mmapfs-resize between its backup write and its superblock
 * write: block 0 still holds the old (valid) superblock, the backup the
 * grown one. The old filesystem is the one in force and sound: fsck -n
 * says the resize was interrupted and exits 0 (a crash in the middle of a
 * resize leaves the old size, not a damaged image); -y rewrites the backup
 * from block 0, and the image mounts with its old size. */
static void test_grow_crash_before_primary(void **state)
{
    struct img *m = *state;
    make_image(m, 0);
    struct mmapfs_disk_superblock old, sb;
    read_block(m, 0, &old);
    struct fs_offline o;
    char msg[256];
    assert_int_equal(fs_offline_open(&o, m->path, msg, sizeof(msg)), 0);
    struct fs_grow_plan plan;
    assert_int_equal(fs_grow(&o, 2 * IMG_BYTES, &plan, NULL, NULL), 0);
    fs_offline_close(&o);
    write_block(m, 0, &old);            /* the superblock write never happened */

    char *rep;
    assert_int_equal(fsck(m, FS_CHECK_NO, &rep), FSCK_EXIT_OK);
    assert_non_null(strstr(rep, "an mmapfs-resize was interrupted"));
    free(rep);
    read_block(m, 1, &sb);
    assert_true(sb.block_count > old.block_count);     /* -n wrote nothing */
    assert_int_equal(fsck(m, FS_CHECK_YES, NULL), FSCK_EXIT_CORRECTED);
    assert_int_equal(fsck(m, FS_CHECK_NO, NULL), FSCK_EXIT_OK);
    read_block(m, 1, &sb);
    assert_int_equal(sb.block_count, old.block_count);
    expect_files(m);
}

/* A layout field of block 0 overwritten with a value that still passes
 * every rule and a checksum that matches (a stray write of a whole
 * superblock): fsck finds that block 0's layout does not fit the image
 * (the root directory's index outside its data area, a block bitmap
 * without the metadata region) while the backup's does, and restores the
 * backup. It used to trust block 0, rewrite the good backup from it and,
 * with data_start one block too far, move every name of the root into
 * lost+found; with a block count that cuts the files off (blocks in use
 * past it in the bitmap), drop their extents. */
static void expect_layout_restored(struct img *m, void (*damage)(struct mmapfs_disk_superblock *),
                                   int ro_refused)
{
    make_image(m, 0);
    struct mmapfs_disk_superblock sb, before;
    read_block(m, 0, &before);
    sb = before;
    damage(&sb);
    fs_super_checksum(&sb);
    char msg[200];
    assert_int_equal(fs_super_validate(&sb, IMG_BYTES, msg, sizeof(msg)), 0);
    write_block(m, 0, &sb);

    /* the mount refuses it (and writes nothing fsck would need) */
    struct fs *fs = NULL;
    struct fs_options o = { .path = m->path };
    assert_int_equal(fs_mount(&fs, &o), -EUCLEAN);
    o.read_only = 1;
    int err = fs_mount(&fs, &o);
    if (!err)
        assert_int_equal(fs_unmount(fs), 0);
    if (ro_refused)
        assert_int_equal(err, -EUCLEAN);

    char *rep;
    assert_int_equal(fsck(m, FS_CHECK_NO, &rep), FSCK_EXIT_UNCORRECTED);
    assert_non_null(strstr(rep, "its layout does not fit the image"));
    assert_non_null(strstr(rep, "the backup superblock at block 1 does"));
    free(rep);
    read_block(m, 1, &sb);
    assert_true(fs_super_backup_same_layout(&sb, &before));    /* -n wrote nothing */
    assert_int_equal(fsck(m, FS_CHECK_YES, &rep), FSCK_EXIT_CORRECTED);
    assert_non_null(strstr(rep, "restored from the backup superblock at block 1"));
    assert_null(strstr(rep, "lost+found"));
    free(rep);
    assert_int_equal(fsck(m, FS_CHECK_NO, NULL), FSCK_EXIT_OK);
    read_block(m, 0, &sb);
    assert_true(fs_super_backup_same_layout(&sb, &before));
    read_block(m, 1, &sb);
    assert_true(fs_super_backup_same_layout(&sb, &before));
    expect_files(m);
}

/* data_start one block too far: the root directory's index lies before
 * it. The mount used to succeed, read-write too, and answer every access
 * to the root with EIO; it now refuses, naming the backup's layout. */
static void data_start_on(struct mmapfs_disk_superblock *sb)
{
    sb->data_start++;
}

static void block_bitmap_on(struct mmapfs_disk_superblock *sb)
{
    sb->block_bitmap_start++;
}

/* the files' blocks follow the root's index at data_start: a filesystem
 * that ends 4 blocks after it cuts them off */
static void block_count_cut(struct mmapfs_disk_superblock *sb)
{
    sb->block_count = sb->data_start + 4;
}

static void test_layout_data_start_valid_checksum(void **state)
{
    expect_layout_restored(*state, data_start_on, 1);
}

static void test_layout_bitmap_valid_checksum(void **state)
{
    expect_layout_restored(*state, block_bitmap_on, 0);
}

static void test_layout_block_count_valid_checksum(void **state)
{
    expect_layout_restored(*state, block_count_cut, 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, img_setup, img_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_layout_fields_zeroed),
        T(test_layout_field_bad_checksum),
        T(test_primary_zeroed),
        T(test_primary_garbage_mmp),
        T(test_checksum_only_mends),
        T(test_backup_damaged),
        T(test_both_gone),
        T(test_after_grow),
        T(test_itab_extent_moved),
        T(test_grow_crash_before_primary),
        T(test_layout_data_start_valid_checksum),
        T(test_layout_bitmap_valid_checksum),
        T(test_layout_block_count_valid_checksum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
