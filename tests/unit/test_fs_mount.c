/*
 * test_fs_mount.c — mounting (src/fs/mount.c, super.c) and what survives
 * it: refusal of non-mmapfs files, corrupt or truncated images, unknown
 * features, a second mount of the same image (-EBUSY); persistence across
 * remounts (content, inode numbers, state CLEAN/MOUNTED, mount count);
 * orphans: unlinked files kept alive by a lookup reference, freed by the
 * last fs_forget, and orphans left by a crash freed at the next mount;
 * recovery of fsynced data after a crash; read-only mounts; the
 * superblock validator on its own; mmapfs-trim (fs_trim) refusing damaged
 * bitmaps. Images are sparse mkstemp files in
 * /tmp, checked with the fsck core.
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fsck/fsck.h"
#include "fs/fs.h"
#include "fs/fs_i.h"
#include "fs/offline.h"
#include "util/crc32c.h"

#define FS_FIXTURE_CRED { 0, 0 }     /* the tests act as root */
#include "fs_fixture.h"

/* ==== helpers ================================================================= */

/* Mounts the image, read-only if asked; returns what fs_mount returns. */
static int do_mount(struct img *m, int read_only)
{
    return img_try_mount(m, (struct fs_options){ .read_only = read_only });
}

static void img_crash(struct img *m)
{
    fs_abandon(m->fs);
    m->fs = NULL;
}

/* A formatted image, not mounted. */
static int img_setup(void **state)
{
    static const struct img_config c = { .name = "mount", .bytes = 64 * MiB };
    return img_setup_config(state, &c);
}

static void read_super(const char *path, struct mmapfs_disk_superblock *sb)
{
    struct mmio *io;
    assert_int_equal(mmio_open(&io, path, 0, 0, NULL), 0);
    assert_int_equal(mmio_read_at(io, 0, sb, sizeof(*sb)), 0);
    mmio_close(io);
}

static void write_super(const char *path, const struct mmapfs_disk_superblock *sb)
{
    struct mmio *io;
    assert_int_equal(mmio_open(&io, path, 0, 0, NULL), 0);
    assert_int_equal(mmio_write_at(io, 0, sb, sizeof(*sb)), 0);
    assert_int_equal(mmio_sync(io), 0);
    mmio_close(io);
}

static uint64_t bfree(struct fs *fs)
{
    struct statvfs sv;
    assert_int_equal(fs_statfs(fs, &sv), 0);
    return sv.f_bfree;
}

static uint64_t orphan_head(struct fs *fs)
{
    jnl_lock(fs->jnl);
    uint64_t h = fs_super_read(fs)->orphan_head;
    jnl_unlock(fs->jnl);
    return h;
}

static int in_use(struct fs *fs, uint64_t ino)
{
    jnl_lock(fs->jnl);
    int r = fs_inode_in_use(fs, ino);
    jnl_unlock(fs->jnl);
    return r;
}

/* ==== refusals =================================================================== */

static void test_not_mmapfs(void **state)
{
    struct img *m = *state;
    char path[] = "/tmp/mmapfs-test-notfs-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    char junk[8192];
    memset(junk, 'j', sizeof(junk));
    assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
    close(fd);
    struct fs_options o = { .path = path };
    struct fs *fs = (void *)1;
    assert_int_equal(fs_mount(&fs, &o), -EINVAL);
    assert_null(fs);
    /* too small to hold a superblock */
    assert_int_equal(truncate(path, 100), 0);
    assert_int_equal(fs_mount(&fs, &o), -EINVAL);
    unlink(path);
    /* missing file */
    o.path = "/tmp/mmapfs-test-does-not-exist";
    assert_int_equal(fs_mount(&fs, &o), -ENOENT);
    o.path = NULL;
    assert_int_equal(fs_mount(&fs, &o), -EINVAL);
    (void)m;
}

static void test_second_mount_busy(void **state)
{
    struct img *m = *state;
    img_mount(m);
    struct img other = { .fs = NULL };
    strcpy(other.path, m->path);
    assert_int_equal(do_mount(&other, 0), -EBUSY);
    assert_int_equal(do_mount(&other, 1), -EBUSY);
    /* fsck refuses to repair a mounted image too (-n checks it read-only,
     * with a warning, as e2fsck -n: test_fsck) */
    struct fs_check_options co = { .mode = FS_CHECK_YES, .force = 1 };
    assert_int_equal(fs_check(m->path, &co, NULL), FSCK_EXIT_OPERATIONAL);
    img_unmount(m);
    assert_int_equal(do_mount(&other, 0), 0);     /* free again */
    assert_int_equal(fs_unmount(other.fs), 0);
}

static void test_corrupt_superblock(void **state)
{
    struct img *m = *state;
    struct mmapfs_disk_superblock sb, bad;
    read_super(m->path, &sb);

    bad = sb;
    bad.label[0] ^= 1;                              /* checksum no longer matches */
    write_super(m->path, &bad);
    assert_int_equal(do_mount(m, 0), -EUCLEAN);
    assert_int_equal(do_mount(m, 1), -EUCLEAN);

    bad = sb;
    bad.block_count *= 2;                           /* larger than the image */
    fs_super_checksum(&bad);
    write_super(m->path, &bad);
    assert_int_equal(do_mount(m, 0), -EUCLEAN);

    bad = sb;
    bad.format_version = 99;
    fs_super_checksum(&bad);
    write_super(m->path, &bad);
    assert_int_equal(do_mount(m, 0), -EINVAL);

    bad = sb;
    bad.feature_incompat = 1u << 7;                 /* unknown: refuse */
    fs_super_checksum(&bad);
    write_super(m->path, &bad);
    assert_int_equal(do_mount(m, 0), -EINVAL);
    assert_int_equal(do_mount(m, 1), -EINVAL);

    bad = sb;
    bad.feature_ro_compat = 1u << 3;                /* unknown: read-only only */
    fs_super_checksum(&bad);
    write_super(m->path, &bad);
    assert_int_equal(do_mount(m, 0), -EROFS);
    assert_int_equal(do_mount(m, 1), 0);
    img_unmount(m);

    bad = sb;
    bad.feature_compat = 1u << 5;                   /* unknown: ignored */
    fs_super_checksum(&bad);
    write_super(m->path, &bad);
    img_mount(m);
    img_unmount(m);

    /* a truncated image: not corruption fsck could repair, its own error;
     * given its size back, it mounts again */
    write_super(m->path, &sb);
    struct stat whole;
    assert_int_equal(stat(m->path, &whole), 0);
    assert_int_equal(truncate(m->path, 32 * MiB), 0);
    assert_int_equal(do_mount(m, 0), -EFBIG);
    char why[512];
    assert_int_equal(fs_super_image_short(&sb, 32 * MiB, why, sizeof(why)), 1);
    assert_non_null(strstr(why, "cut short"));
    assert_int_equal(fs_super_image_short(&sb, (uint64_t)whole.st_size, why, sizeof(why)), 0);
    bad = sb;
    bad.checksum ^= 1;                              /* not a sound superblock */
    assert_int_equal(fs_super_image_short(&bad, 32 * MiB, why, sizeof(why)), 0);
    assert_int_equal(truncate(m->path, whole.st_size), 0);
    img_mount(m);
    img_unmount(m);
}

/* fs_super_validate on its own: each geometry rule. */
static void test_super_validate(void **state)
{
    struct img *m = *state;
    struct mmapfs_disk_superblock sb, bad;
    char msg[200];
    read_super(m->path, &sb);
    const uint64_t bytes = 64 * MiB;
    assert_int_equal(fs_super_validate(&sb, bytes, msg, sizeof(msg)), 0);
    assert_int_equal(fs_super_validate(&sb, bytes - 4096, msg, sizeof(msg)), -EUCLEAN);
    assert_non_null(strstr(msg, "image"));

#define BAD(field, value, expect)                                            \
    do {                                                                     \
        bad = sb;                                                            \
        bad.field = value;                                                   \
        fs_super_checksum(&bad);                                                \
        assert_int_equal(fs_super_validate(&bad, bytes, msg, sizeof(msg)), expect); \
    } while (0)
    BAD(block_size, 8192, -EUCLEAN);
    BAD(inode_count, 0, -EUCLEAN);
    BAD(inode_count, 1ull << 33, -EUCLEAN);
    BAD(root_ino, 2, -EUCLEAN);
    BAD(journal_blocks, 1000, -EUCLEAN);
    BAD(journal_start, 0, -EUCLEAN);
    BAD(block_bitmap_blocks, sb.block_bitmap_blocks + 1, -EUCLEAN);
    BAD(inode_bitmap_start, sb.block_bitmap_start, -EUCLEAN);       /* overlap */
    BAD(inode_table_blocks, sb.inode_table_blocks - 1, -EUCLEAN);
    BAD(inode_table_start, sb.block_count - 1, -EUCLEAN);           /* past the end */
    BAD(data_start, sb.inode_table_start, -EUCLEAN);
    BAD(data_start, sb.block_count, -EUCLEAN);
    BAD(orphan_head, sb.inode_count + 1, -EUCLEAN);
    BAD(state, 64, -EUCLEAN);
    BAD(format_version, 2, -EINVAL);
    BAD(magic[0], 'X', -EINVAL);
#undef BAD
    /* regions may have gaps between them */
    bad = sb;
    bad.data_start += 10;
    fs_super_checksum(&bad);
    assert_int_equal(fs_super_validate(&bad, bytes, msg, sizeof(msg)), 0);
}

/* ==== persistence ================================================================== */

static void test_remount_persistence(void **state)
{
    struct img *m = *state;
    img_mount(m);
    struct mmapfs_disk_superblock sb;
    read_super(m->path, &sb);
    assert_true(sb.state & MMAPFS_STATE_MOUNTED);   /* durable at mount */
    uint32_t count0 = sb.mount_count;

    char name[32], buf[5000], got[5000];
    uint64_t inos[20];
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "file%d", i);
        inos[i] = mkfile(m->fs, ROOT, name);
        memset(buf, 'a' + i, sizeof(buf));
        assert_int_equal(fs_write(m->fs, inos[i], (uint64_t)i * 10000, buf, sizeof(buf)),
                         sizeof(buf));
    }
    struct fs_setattr sa = { .mode = 0601, .mtime = { 123456, 789 } };
    assert_int_equal(fs_setattr(m->fs, inos[3], &sa, FS_SET_MODE | FS_SET_MTIME, NULL), 0);
    uint64_t free1 = bfree(m->fs);
    img_unmount(m);
    read_super(m->path, &sb);
    assert_int_equal(sb.state, MMAPFS_STATE_CLEAN);
    img_check(m);

    img_mount(m);
    assert_int_equal(bfree(m->fs), free1);
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "file%d", i);
        assert_int_equal(lookup(m->fs, ROOT, name), (int64_t)inos[i]);      /* stable numbers */
        memset(buf, 'a' + i, sizeof(buf));
        assert_int_equal(fs_read(m->fs, inos[i], (uint64_t)i * 10000, got, sizeof(got)),
                         sizeof(got));
        assert_memory_equal(got, buf, sizeof(buf));
        struct fs_stat st;
        assert_int_equal(fs_getattr(m->fs, inos[i], &st), 0);
        assert_int_equal(st.size, (uint64_t)i * 10000 + sizeof(buf));
    }
    struct fs_stat st;
    assert_int_equal(fs_getattr(m->fs, inos[3], &st), 0);
    assert_int_equal(st.mode, S_IFREG | 0601);
    assert_int_equal(st.mtime.tv_sec, 123456);
    assert_int_equal(st.mtime.tv_nsec, 789);
    img_unmount(m);
    read_super(m->path, &sb);
    assert_int_equal(sb.mount_count, count0 + 1);
    img_check(m);
}

/* Bit i of the bitmap that starts at block start. */
static int bitmap_get(const char *path, uint64_t start, uint64_t i)
{
    struct mmio *io;
    uint8_t byte;
    assert_int_equal(mmio_open(&io, path, 0, 0, NULL), 0);
    assert_int_equal(mmio_read_at(io, start * MMAPFS_BLOCK_SIZE + i / 8, &byte, 1), 0);
    mmio_close(io);
    return byte >> (i % 8) & 1;
}

/* Clears (or sets) bit i of the bitmap that starts at block start. */
static void bitmap_bit(const char *path, uint64_t start, uint64_t i, int set)
{
    struct mmio *io;
    uint8_t byte;
    uint64_t off = start * MMAPFS_BLOCK_SIZE + i / 8;
    assert_int_equal(mmio_open(&io, path, 0, 0, NULL), 0);
    assert_int_equal(mmio_read_at(io, off, &byte, 1), 0);
    byte = set ? byte | (uint8_t)(1u << (i % 8)) : byte & (uint8_t)~(1u << (i % 8));
    assert_int_equal(mmio_write_at(io, off, &byte, 1), 0);
    assert_int_equal(mmio_sync(io), 0);
    mmio_close(io);
}

/* Creates the file "live" (its inode number returned), unmounts, and reads
 * the superblock into *sb. */
static uint64_t with_live_file(struct img *m, struct mmapfs_disk_superblock *sb)
{
    img_mount(m);
    uint64_t ino = mkfile(m->fs, ROOT, "live");
    img_unmount(m);
    read_super(m->path, sb);
    return ino;
}

/* Creates the file "live" with 4 KiB of byte c (also left in buf) and
 * unmounts; its inode number. */
static uint64_t with_live_data(struct img *m, char buf[4096], char c)
{
    memset(buf, c, 4096);
    img_mount(m);
    uint64_t ino = mkfile(m->fs, ROOT, "live");
    assert_int_equal(fs_write(m->fs, ino, 0, buf, 4096), 4096);
    img_unmount(m);
    return ino;
}

/* The bitmaps carry no checksum. A cleanly unmounted image whose bitmaps
 * disagree with the superblock's exact counts is refused (one bit cleared:
 * the allocator would hand out an inode or a block in use); fsck -y is
 * the repair. */
static void test_damaged_bitmaps(void **state)
{
    struct img *m = *state;
    struct mmapfs_disk_superblock sb;
    uint64_t ino = with_live_file(m, &sb);
    bitmap_bit(m->path, sb.inode_bitmap_start, ino - 1, 0);
    assert_int_equal(do_mount(m, 0), -EUCLEAN);     /* 1 free inode more than counted */
    assert_int_equal(do_mount(m, 1), 0);            /* read-only: reads what is intact */
    assert_int_equal(lookup(m->fs, ROOT, "live"), -EUCLEAN);
    img_unmount(m);
    bitmap_bit(m->path, sb.inode_bitmap_start, ino - 1, 1);
    uint64_t used = sb.data_start;      /* the first data block in use */
    while (!bitmap_get(m->path, sb.block_bitmap_start, used))
        used++;
    bitmap_bit(m->path, sb.block_bitmap_start, used, 0);
    assert_int_equal(do_mount(m, 0), -EUCLEAN);     /* the same for blocks */
    bitmap_bit(m->path, sb.block_bitmap_start, used, 1);
    img_check(m);
    img_mount(m);
    img_unmount(m);

    /* A crash whose block 0 still says CLEAN (the checkpoint of the
     * mount's MOUNTED superblock did not reach the disk) while the log
     * holds it and newer bitmaps: replay makes them agree, the mount goes
     * on (the check reads the superblock as replay left it). */
    read_super(m->path, &sb);
    assert_int_equal(sb.state, MMAPFS_STATE_CLEAN);
    img_mount(m);
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof(name), "after%d", i);
        mkfile(m->fs, ROOT, name);
    }
    assert_int_equal(fs_fsync(m->fs, ROOT, 0), 0);
    fs_abandon(m->fs);
    m->fs = NULL;
    write_super(m->path, &sb);
    img_mount(m);
    assert_true(lookup(m->fs, ROOT, "after2") > 0);
    img_unmount(m);
    img_check(m);
}

/* A clear bit where a block is always in use (the metadata region: here
 * the superblock's and the inode table's last block) shows a damaged block
 * bitmap whatever the free counts say. After a crash they are only hints
 * and nothing else was checked: a zeroed bitmap block mounted read-write,
 * and the allocator handed its other clear bits, blocks in use, to new
 * files (directory and extent tree nodes overwritten, whole directories
 * lost). The read-write mount is refused; read-only reads what is intact. */
static void test_bitmap_reserved_clear(void **state)
{
    struct img *m = *state;
    struct mmapfs_disk_superblock sb;
    uint64_t ino = with_live_file(m, &sb);
    sb.state = MMAPFS_STATE_MOUNTED;        /* as a crash leaves it */
    fs_super_checksum(&sb);
    write_super(m->path, &sb);
    const uint64_t bits[] = { 0, sb.data_start - 1 };
    for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
        bitmap_bit(m->path, sb.block_bitmap_start, bits[i], 0);
        assert_int_equal(do_mount(m, 0), -EUCLEAN);
        assert_int_equal(do_mount(m, 1), 0);
        assert_int_equal(lookup(m->fs, ROOT, "live"), (int64_t)ino);
        img_unmount(m);
        bitmap_bit(m->path, sb.block_bitmap_start, bits[i], 1);
    }
    img_mount(m);
    assert_int_equal(lookup(m->fs, ROOT, "live"), (int64_t)ino);
    img_unmount(m);
    img_check(m);
}

/* After a crash the free counts are hints, so a cleared inode bitmap bit
 * of a live file passes the mount. The allocator must not hand that inode
 * to a new file (the live file's record and data would be overwritten):
 * it skips it and reports the damage; fsck -y marks it in use again. */
static void test_inode_bitmap_live_clear(void **state)
{
    struct img *m = *state;
    struct mmapfs_disk_superblock sb;
    char buf[4096], got[4096];
    uint64_t ino = with_live_data(m, buf, 'L');
    read_super(m->path, &sb);
    sb.state = MMAPFS_STATE_MOUNTED;        /* as a crash leaves it */
    fs_super_checksum(&sb);
    write_super(m->path, &sb);
    bitmap_bit(m->path, sb.inode_bitmap_start, ino - 1, 0);

    img_mount(m);
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof(name), "new%d", i);
        uint64_t n = mkfile(m->fs, ROOT, name);
        assert_int_not_equal(n, ino);
        assert_int_equal(fs_write(m->fs, n, 0, "new", 3), 3);
    }
    /* the allocator marked the bit in use again, as fsck -y does: "live"
     * is found and read again, and the damage is reported once */
    assert_int_equal(lookup(m->fs, ROOT, "live"), (int64_t)ino);
    assert_int_equal(fs_read(m->fs, ino, 0, got, sizeof(got)), (int)sizeof(got));
    assert_memory_equal(got, buf, sizeof(got));
    img_unmount(m);
    read_super(m->path, &sb);
    assert_true(sb.state & MMAPFS_STATE_ERROR);     /* the damage was reported */
    assert_true(bitmap_get(m->path, sb.inode_bitmap_start, ino - 1));

    struct fs_check_options co = { .mode = FS_CHECK_YES, .force = 1 };
    assert_int_equal(fs_check(m->path, &co, NULL) & ~FSCK_EXIT_CORRECTED, FSCK_EXIT_OK);
    assert_true(bitmap_get(m->path, sb.inode_bitmap_start, ino - 1));
    img_mount(m);
    assert_int_equal(fs_read(m->fs, ino, 0, got, sizeof(got)), (int)sizeof(got));
    assert_memory_equal(got, buf, sizeof(got));
    img_unmount(m);
    img_check(m);
}

/* Commits a superblock whose feature_incompat is XOR-ed with flip and
 * crashes; block 0 is then *home again (its checkpoint lost with the
 * crash): the change is in the log only, for replay to bring back. */
static void crash_with_features(struct img *m, uint32_t flip,
                                const struct mmapfs_disk_superblock *home)
{
    img_mount(m);
    assert_int_equal(jnl_begin(m->fs->jnl), 0);     /* takes the lock */
    struct mmapfs_disk_superblock *w = fs_super_write(m->fs);
    assert_non_null(w);
    w->feature_incompat ^= flip;
    fs_super_put(m->fs, w);
    uint64_t seq = jnl_running_seq(m->fs->jnl);
    jnl_end(m->fs->jnl);
    assert_int_equal(jnl_commit_wait(m->fs->jnl, seq), 0);
    img_crash(m);
    write_super(m->path, home);
}

/* The features are checked in block 0 before the journal is replayed, but
 * replay may bring another superblock. One with an unknown incompat bit
 * mounted read-write (fsck then refused the image, exit 8), one without
 * INODE_DATA mounted still reading inline data (fsck -y then dropped it):
 * the check is made again on the replayed superblock, whose features
 * other than XATTR_CHAIN (the one a mount sets) must be block 0's. */
static void test_replayed_features(void **state)
{
    struct img *m = *state;
    struct mmapfs_disk_superblock sb;
    read_super(m->path, &sb);
    const uint32_t flips[] = { 0x80000000u, MMAPFS_FEATURE_INCOMPAT_INODE_DATA };
    for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
        crash_with_features(m, flips[i], &sb);
        assert_int_equal(do_mount(m, 1), -EUCLEAN);     /* replays in memory */
        /* fsck first: -n reports it (the replayed features cannot be
         * checked by), -y writes the old features back, the image mounts */
        struct fs_check_options co = { .mode = FS_CHECK_NO, .force = 1 };
        assert_int_equal(fs_check(m->path, &co, NULL), FSCK_EXIT_UNCORRECTED);
        co.mode = FS_CHECK_YES;
        assert_int_equal(fs_check(m->path, &co, NULL), FSCK_EXIT_CORRECTED);
        co.mode = FS_CHECK_NO;
        assert_int_equal(fs_check(m->path, &co, NULL), FSCK_EXIT_OK);
        struct mmapfs_disk_superblock now;
        read_super(m->path, &now);
        assert_int_equal(now.feature_incompat, sb.feature_incompat);
        assert_int_equal(do_mount(m, 0), 0);
        img_unmount(m);
        /* a read-write mount first: its replay wrote block 0; it refuses
         * and puts the features back, and fsck can read the image */
        crash_with_features(m, flips[i], &sb);
        assert_int_equal(do_mount(m, 0), -EUCLEAN);
        read_super(m->path, &now);
        assert_int_equal(now.feature_incompat, sb.feature_incompat);
        co.mode = FS_CHECK_YES;
        assert_int_equal(fs_check(m->path, &co, NULL) & ~FSCK_EXIT_CORRECTED, FSCK_EXIT_OK);
        co.mode = FS_CHECK_NO;
        assert_int_equal(fs_check(m->path, &co, NULL), FSCK_EXIT_OK);
        assert_int_equal(do_mount(m, 0), 0);
        img_unmount(m);
        /* back to the clean image: block 0 as before (replay may have
         * written the new one), a journal that replays nothing (the
         * crashed mount changed no other block) */
        write_super(m->path, &sb);
        struct mmio *io;
        assert_int_equal(mmio_open(&io, m->path, 0, 0, NULL), 0);
        struct jnl_geometry geo = { sb.journal_start, sb.journal_blocks, sb.block_count };
        assert_int_equal(jnl_format(io, &geo), 0);
        mmio_close(io);
    }
    /* XATTR_CHAIN set in the log: the mount goes on */
    crash_with_features(m, MMAPFS_FEATURE_INCOMPAT_XATTR_CHAIN, &sb);
    img_mount(m);
    img_unmount(m);
    img_check(m);
}

/* mmapfs-trim on such an image: a clear bit of a block in use would have
 * it discarded (a hole in the file's data). fs_trim refuses with -EUCLEAN
 * and the bitmap's count, gives nothing back, and the data stays. */
static void test_trim_damaged_bitmap(void **state)
{
    struct img *m = *state;
    char buf[4096], got[4096];
    uint64_t ino = with_live_data(m, buf, 'd');

    struct mmapfs_disk_superblock sb;
    read_super(m->path, &sb);
    uint64_t cleared[16], n = 0;        /* every block in use in the data area */
    for (uint64_t b = sb.data_start; b < sb.block_count && n < 16; b++)
        if (bitmap_get(m->path, sb.block_bitmap_start, b)) {
            bitmap_bit(m->path, sb.block_bitmap_start, b, 0);
            cleared[n++] = b;
        }
    struct fs_offline o;
    char msg[256];
    uint64_t runs = 7, blocks = 0;
    assert_int_equal(fs_offline_open(&o, m->path, msg, sizeof(msg)), 0);
    assert_int_equal(fs_trim(&o, &runs, &blocks), -EUCLEAN);
    fs_offline_close(&o);
    assert_int_equal(runs, 0);
    assert_int_equal(blocks, sb.free_blocks + n);
    assert_int_equal(do_mount(m, 1), 0);
    assert_int_equal(fs_read(m->fs, ino, 0, got, sizeof(got)), (int)sizeof(got));
    assert_memory_equal(got, buf, sizeof(buf));
    img_unmount(m);
    for (uint64_t i = 0; i < n; i++)
        bitmap_bit(m->path, sb.block_bitmap_start, cleared[i], 1);
    img_check(m);
}

static void size_past_max(struct mmapfs_disk_inode *di)
{
    di->size = MMAPFS_MAX_FILE_SIZE + 1;
}

/* A record the format forbids though its checksum is right: a regular
 * file past the maximum size (it would read zeros for exabytes). The
 * mount refuses the inode, not the filesystem. */
static void test_record_limits(void **state)
{
    struct img *m = *state;
    img_mount(m);
    uint64_t big = mkfile(m->fs, ROOT, "big"), fine = mkfile(m->fs, ROOT, "fine");
    assert_int_equal(fs_write(m->fs, fine, 0, "xyz", 3), 3);
    img_unmount(m);
    img_poke_inode(m->path, big, size_past_max);
    img_mount(m);
    char buf[16];
    struct fs_stat st;
    assert_int_equal(fs_getattr(m->fs, big, &st), -EUCLEAN);
    assert_int_equal(fs_read(m->fs, fine, 0, buf, sizeof(buf)), 3);
    assert_memory_equal(buf, "xyz", 3);
    img_unmount(m);
}

static void test_read_only(void **state)
{
    struct img *m = *state;
    img_mount(m);
    uint64_t ino = mkfile(m->fs, ROOT, "ro");
    assert_int_equal(fs_write(m->fs, ino, 0, "abc", 3), 3);
    img_unmount(m);
    struct mmapfs_disk_superblock before, after;
    read_super(m->path, &before);

    assert_int_equal(do_mount(m, 1), 0);
    char got[3];
    assert_int_equal(fs_read(m->fs, ino, 0, got, 3), 3);
    assert_memory_equal(got, "abc", 3);
    assert_int_equal(fs_write(m->fs, ino, 0, "x", 1), -EROFS);
    struct fs_setattr sa = { .size = 0 };
    assert_int_equal(fs_setattr(m->fs, ino, &sa, FS_SET_SIZE, NULL), -EROFS);
    assert_int_equal(fs_fallocate(m->fs, ino, 0, 0, 4096), -EROFS);
    assert_int_equal(fs_fsync(m->fs, ino, 0), 0);
    struct statvfs sv;
    assert_int_equal(fs_statfs(m->fs, &sv), 0);
    assert_true(sv.f_flag & ST_RDONLY);
    fs_forget(m->fs, ino, 1);
    img_unmount(m);
    read_super(m->path, &after);
    assert_memory_equal(&before, &after, sizeof(before));   /* nothing written */
}

/* ==== orphans ====================================================================== */

/* An unlinked file with a lookup reference stays readable, is on the orphan
 * list, and goes with the last forget. */
static void test_orphan_reference(void **state)
{
    struct img *m = *state;
    img_mount(m);
    uint64_t free0 = bfree(m->fs);
    uint64_t ino = mkfile(m->fs, ROOT, "orphan");
    uint8_t *buf = malloc(MiB), *got = malloc(MiB);
    assert_non_null(buf);
    assert_non_null(got);
    memset(buf, 0x42, MiB);
    assert_int_equal(fs_write(m->fs, ino, 0, buf, MiB), MiB);

    struct fs_stat st;
    assert_int_equal(fs_lookup(m->fs, ROOT, "orphan", &st), 0);     /* reference */
    assert_int_equal(fs_unlink(m->fs, ROOT, "orphan"), 0);
    assert_int_equal(lookup(m->fs, ROOT, "orphan"), -ENOENT);
    assert_int_equal(orphan_head(m->fs), ino);
    assert_int_equal(fs_getattr(m->fs, ino, &st), 0);
    assert_int_equal(st.nlink, 0);
    assert_int_equal(fs_read(m->fs, ino, 0, got, MiB), MiB);
    assert_memory_equal(got, buf, MiB);
    assert_int_equal(fs_write(m->fs, ino, MiB, buf, 4096), 4096);    /* still writable */
    assert_true(bfree(m->fs) < free0 - 256);

    fs_forget(m->fs, ino, 1);
    assert_int_equal(orphan_head(m->fs), 0);
    assert_int_equal(in_use(m->fs, ino), 0);
    assert_int_equal(fs_getattr(m->fs, ino, &st), -ENOENT);
    assert_int_equal(bfree(m->fs), free0);

    /* two orphans, released in the other order (removal from the middle) */
    uint64_t a = mkfile(m->fs, ROOT, "a"), b = mkfile(m->fs, ROOT, "b"), c = mkfile(m->fs, ROOT, "c");
    assert_int_equal(fs_lookup(m->fs, ROOT, "a", &st), 0);
    assert_int_equal(fs_lookup(m->fs, ROOT, "b", &st), 0);
    assert_int_equal(fs_lookup(m->fs, ROOT, "c", &st), 0);
    assert_int_equal(fs_unlink(m->fs, ROOT, "a"), 0);
    assert_int_equal(fs_unlink(m->fs, ROOT, "b"), 0);
    assert_int_equal(fs_unlink(m->fs, ROOT, "c"), 0);
    assert_int_equal(orphan_head(m->fs), c);
    fs_forget(m->fs, b, 1);
    assert_int_equal(in_use(m->fs, b), 0);
    assert_int_equal(orphan_head(m->fs), c);
    fs_forget(m->fs, c, 1);
    assert_int_equal(orphan_head(m->fs), a);
    /* the unmount frees what is left */
    img_unmount(m);
    img_check(m);
    img_mount(m);
    assert_int_equal(in_use(m->fs, a), 0);
    assert_int_equal(orphan_head(m->fs), 0);
    assert_int_equal(bfree(m->fs), free0);
    img_unmount(m);
    free(buf);
    free(got);
}

/* The on-disk orphan list as an array (walks it). */
static size_t orphan_list(struct fs *fs, uint64_t *out, size_t max)
{
    size_t n = 0;
    jnl_lock(fs->jnl);
    uint64_t cur = fs_super_read(fs)->orphan_head;
    while (cur && n < max) {
        struct mmapfs_disk_inode di;
        assert_int_equal(fs_inode_get(fs, cur, &di), 0);
        assert_int_equal(di.nlink, 0);
        out[n++] = cur;
        cur = di.orphan_next;
    }
    jnl_unlock(fs->jnl);
    assert_int_equal(cur, 0);
    return n;
}

/* Many orphans released in random order (the tail first, the middle, the
 * head): the on-disk list stays exactly the set of live orphans. */
static void test_orphan_many_random_order(void **state)
{
    struct img *m = *state;
    enum { N = 150 };
    img_mount(m);
    uint64_t free0 = bfree(m->fs), inos[N], list[N + 1];
    int alive[N];
    char name[32];
    for (int i = 0; i < N; i++) {
        struct fs_stat st;
        snprintf(name, sizeof(name), "o%d", i);
        inos[i] = mkfile(m->fs, ROOT, name);
        assert_int_equal(fs_write(m->fs, inos[i], 0, name, strlen(name)), (ssize_t)strlen(name));
        assert_int_equal(fs_lookup(m->fs, ROOT, name, &st), 0);
        assert_int_equal(fs_unlink(m->fs, ROOT, name), 0);
        alive[i] = 1;
    }
    assert_int_equal(orphan_list(m->fs, list, N + 1), N);
    assert_int_equal(list[N - 1], inos[0]);            /* the first one is the tail */
    fs_forget(m->fs, inos[0], 1);                      /* tail first */
    alive[0] = 0;
    uint64_t seed = 12345;
    for (int left = N - 1; left > N / 2; left--) {
        seed = seed * 6364136223846793005ull + 1;
        int k = (int)((seed >> 33) % N);
        while (!alive[k])
            k = (k + 1) % N;
        fs_forget(m->fs, inos[k], 1);
        alive[k] = 0;
        assert_int_equal(in_use(m->fs, inos[k]), 0);
        size_t n = orphan_list(m->fs, list, N + 1);
        assert_int_equal(n, (size_t)left - 1);
        for (size_t j = 0; j < n; j++) {
            int found = 0;
            for (int i = 0; i < N; i++)
                found |= alive[i] && inos[i] == list[j];
            assert_true(found);
        }
    }
    /* the rest goes at unmount */
    img_unmount(m);
    img_check(m);
    img_mount(m);
    assert_int_equal(orphan_head(m->fs), 0);
    assert_int_equal(bfree(m->fs), free0);
    img_unmount(m);
}

/* Orphans left by a crash are freed by the next mount. */
static void test_orphan_crash_recovery(void **state)
{
    struct img *m = *state;
    img_mount(m);
    uint64_t free0 = bfree(m->fs);
    uint64_t ino = mkfile(m->fs, ROOT, "doomed");
    uint8_t *buf = malloc(MiB);
    assert_non_null(buf);
    memset(buf, 0x13, MiB);
    for (int i = 0; i < 8; i++)
        assert_int_equal(fs_write(m->fs, ino, (uint64_t)i * MiB, buf, MiB), MiB);
    free(buf);
    struct fs_stat st;
    assert_int_equal(fs_lookup(m->fs, ROOT, "doomed", &st), 0);
    assert_int_equal(fs_unlink(m->fs, ROOT, "doomed"), 0);
    assert_int_equal(fs_fsync(m->fs, ROOT, 0), 0);        /* the unlink is durable */
    img_crash(m);

    struct mmapfs_disk_superblock sb;
    read_super(m->path, &sb);
    assert_true(sb.state & MMAPFS_STATE_MOUNTED);
    img_mount(m);                                         /* replay + orphan recovery */
    assert_int_equal(orphan_head(m->fs), 0);
    assert_int_equal(in_use(m->fs, ino), 0);
    assert_int_equal(bfree(m->fs), free0);
    assert_int_equal(lookup(m->fs, ROOT, "doomed"), -ENOENT);
    img_unmount(m);
    img_check(m);
}

/* O_TMPFILE (fs_tmpfile): a regular file with no name and no link, on the
 * orphan list from the start, its directory unchanged. fs_link gives it
 * its first name (and takes it off the list); once linked it is an
 * ordinary file, so unlinked while referenced it cannot be linked again.
 * Never linked, the last forget frees it, and a crash leaves it to the
 * next mount. A new inode that takes the number of a freed tmpfile is not
 * linkable either. */
static void test_tmpfile(void **state)
{
    struct img *m = *state;
    img_mount(m);
    uint64_t free0 = bfree(m->fs);
    struct fs_stat dir0, dir1, st, st2;
    assert_int_equal(fs_getattr(m->fs, ROOT, &dir0), 0);
    assert_int_equal(fs_tmpfile(m->fs, ROOT, 0640, &cred, &st), 0);
    uint64_t t = st.ino;
    assert_int_equal(st.nlink, 0);
    assert_int_equal(st.mode, S_IFREG | 0640);
    assert_int_equal(st.uid, cred.uid);
    assert_int_equal(orphan_head(m->fs), t);
    assert_int_equal(fs_write(m->fs, t, 0, "tmpdata", 7), 7);
    assert_int_equal(fs_getattr(m->fs, ROOT, &dir1), 0);
    assert_int_equal(dir1.size, dir0.size);
    assert_int_equal(dir1.mtime.tv_sec, dir0.mtime.tv_sec);
    assert_int_equal(dir1.mtime.tv_nsec, dir0.mtime.tv_nsec);

    assert_int_equal(fs_link(m->fs, t, ROOT, "named", &st2), 0);
    assert_int_equal(st2.ino, t);
    assert_int_equal(st2.nlink, 1);
    assert_int_equal(orphan_head(m->fs), 0);
    assert_int_equal(lookup(m->fs, ROOT, "named"), (int64_t)t);
    char got[8];
    assert_int_equal(fs_read(m->fs, t, 0, got, sizeof(got)), 7);
    assert_memory_equal(got, "tmpdata", 7);
    assert_int_equal(fs_unlink(m->fs, ROOT, "named"), 0);
    assert_int_equal(orphan_head(m->fs), t);
    assert_int_equal(fs_link(m->fs, t, ROOT, "again", &st2), -ENOENT);
    fs_forget(m->fs, t, 2);                     /* the tmpfile's and the link's */
    assert_int_equal(in_use(m->fs, t), 0);
    assert_int_equal(orphan_head(m->fs), 0);

    /* never linked: the last forget frees it and its blocks */
    uint8_t *buf = malloc(MiB);
    assert_non_null(buf);
    memset(buf, 0x5c, MiB);
    assert_int_equal(fs_tmpfile(m->fs, ROOT, 0600, &cred, &st), 0);
    uint64_t u = st.ino;
    assert_int_equal(fs_write(m->fs, u, 0, buf, MiB), MiB);
    assert_true(bfree(m->fs) < free0 - 200);
    fs_forget(m->fs, u, 1);
    assert_int_equal(in_use(m->fs, u), 0);
    assert_int_equal(bfree(m->fs), free0);

    /* the freed number comes back (the allocator takes the first free
     * inode from the directory's on) for a file that is then unlinked
     * while referenced: not linkable */
    assert_int_equal(fs_mknod(m->fs, ROOT, "w", S_IFREG | 0644, 0, &cred, &st), 0);
    assert_int_equal(st.ino, u);
    assert_int_equal(fs_unlink(m->fs, ROOT, "w"), 0);
    assert_int_equal(fs_link(m->fs, u, ROOT, "w2", &st2), -ENOENT);
    fs_forget(m->fs, u, 1);

    /* in a removed directory: EPERM, as ext4 (the kernel does not check
     * a tmpfile's directory as it checks a name's) */
    uint64_t gone = mkdirectory(m->fs, ROOT, "gone");
    assert_int_equal(fs_lookup(m->fs, ROOT, "gone", &st), 0);    /* a cwd's reference */
    assert_int_equal(fs_rmdir(m->fs, ROOT, "gone"), 0);
    assert_int_equal(fs_tmpfile(m->fs, gone, 0600, &cred, &st), -EPERM);
    fs_forget(m->fs, gone, 1);

    /* a crash with a tmpfile holding data: the next mount frees it */
    assert_int_equal(fs_tmpfile(m->fs, ROOT, 0600, &cred, &st), 0);
    uint64_t x = st.ino;
    assert_int_equal(fs_write(m->fs, x, 0, buf, MiB), MiB);
    assert_int_equal(fs_fsync(m->fs, x, 0), 0);
    free(buf);
    img_crash(m);
    img_mount(m);
    assert_int_equal(orphan_head(m->fs), 0);
    assert_int_equal(in_use(m->fs, x), 0);
    assert_int_equal(bfree(m->fs), free0);
    img_unmount(m);
    img_check(m);
}

/* fsynced data and metadata survive a crash; the journal is replayed. */
static void test_crash_after_fsync(void **state)
{
    struct img *m = *state;
    img_mount(m);
    uint64_t ino = mkfile(m->fs, ROOT, "kept");
    char buf[10000];
    memset(buf, 'k', sizeof(buf));
    assert_int_equal(fs_write(m->fs, ino, 0, buf, sizeof(buf)), sizeof(buf));
    assert_int_equal(fs_fsync(m->fs, ino, 0), 0);
    assert_int_equal(fs_fsync(m->fs, ROOT, 0), 0);
    img_crash(m);
    /* read-only first: the journal is replayed in memory only */
    char got[10000];
    assert_int_equal(do_mount(m, 1), 0);
    assert_int_equal(lookup(m->fs, ROOT, "kept"), (int64_t)ino);
    assert_int_equal(fs_read(m->fs, ino, 0, got, sizeof(got)), sizeof(got));
    assert_memory_equal(got, buf, sizeof(buf));
    img_unmount(m);
    img_mount(m);
    assert_int_equal(lookup(m->fs, ROOT, "kept"), (int64_t)ino);
    assert_int_equal(fs_read(m->fs, ino, 0, got, sizeof(got)), sizeof(got));
    assert_memory_equal(got, buf, sizeof(buf));
    img_unmount(m);
    img_check(m);
}

/* A crash in the middle of a large release (several journal steps): the
 * inode is still an orphan and the next mount finishes the job. */
static void test_crash_mid_release(void **state)
{
    struct img *m = *state;
    img_mount(m);
    uint64_t free0 = bfree(m->fs);
    uint64_t ino = mkfile(m->fs, ROOT, "frag");
    char blk[4096];
    memset(blk, 'f', sizeof(blk));
    for (uint64_t i = 0; i < 3000; i++)       /* every other block: 3000 extents */
        assert_int_equal(fs_write(m->fs, ino, i * 8192, blk, sizeof(blk)), 4096);
    struct fs_stat st;
    assert_int_equal(fs_lookup(m->fs, ROOT, "frag", &st), 0);
    assert_int_equal(fs_unlink(m->fs, ROOT, "frag"), 0);
    assert_int_equal(fs_fsync(m->fs, ROOT, 0), 0);
    /* the release of the last reference spans several steps; crash right
     * after the first ones committed */
    fs_forget(m->fs, ino, 1);
    img_crash(m);
    img_mount(m);
    assert_int_equal(in_use(m->fs, ino), 0);
    assert_int_equal(orphan_head(m->fs), 0);
    assert_int_equal(bfree(m->fs), free0);
    img_unmount(m);
    img_check(m);
}

/* Random operations with fsyncs in between, then a crash: the image as
 * left (journal replayed by fsck) is consistent, and so is it after the
 * next mount's orphan recovery. TEST_SEED=<n> replays. */
static void test_crash_fuzz(void **state)
{
    struct img *m = *state;
    uint64_t seed = getenv("TEST_SEED") ? strtoull(getenv("TEST_SEED"), NULL, 0)
                                        : (uint64_t)time(NULL) | 1;
    fprintf(stderr, "    seed %llu (TEST_SEED to replay)\n", (unsigned long long)seed);
    uint8_t *buf = malloc(512 * 1024);
    assert_non_null(buf);
    memset(buf, 0x3c, 512 * 1024);
    for (int round = 0; round < 6; round++) {
        img_mount(m);
        for (int op = 0; op < 300; op++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            uint64_t r = seed >> 20;
            char name[16];
            snprintf(name, sizeof(name), "f%d", (int)(r % 24));
            struct fs_stat st;
            int64_t ino = lookup(m->fs, ROOT, name);
            switch ((r >> 8) % 8) {
            case 0:
            case 1:
                if (ino < 0 && fs_mknod(m->fs, ROOT, name, S_IFREG | 0644, 0, &cred, &st) == 0)
                    fs_forget(m->fs, st.ino, 1);
                break;
            case 2:
            case 3:
                if (ino > 0)
                    fs_write(m->fs, (uint64_t)ino, (r >> 12) % (8 * MiB), buf,
                             (size_t)((r >> 32) % (512 * 1024)));
                break;
            case 4:
                if (ino > 0) {
                    struct fs_setattr sa = { .size = (r >> 12) % (4 * MiB) };
                    fs_setattr(m->fs, (uint64_t)ino, &sa, FS_SET_SIZE, NULL);
                }
                break;
            case 5:
                if (ino > 0)
                    fs_fallocate(m->fs, (uint64_t)ino, (r & 1) ? 0x3 : 0,
                                 (r >> 12) % (4 * MiB), 1 + (r >> 40) % MiB);
                break;
            case 6:
                /* unlink, sometimes keeping a reference (an orphan) */
                if (ino > 0) {
                    int keep = (r >> 30) & 1;
                    if (keep)
                        fs_lookup(m->fs, ROOT, name, &st);
                    fs_unlink(m->fs, ROOT, name);
                    if (keep && (r >> 31) & 1)
                        fs_forget(m->fs, (uint64_t)ino, 1);
                }
                break;
            case 7:
                fs_fsync(m->fs, ino > 0 ? (uint64_t)ino : ROOT, (int)(r & 1));
                break;
            }
        }
        img_crash(m);
        struct fs_check_options co = { .mode = FS_CHECK_NO, .force = 1 };
        if (fs_check(m->path, &co, NULL) != FSCK_EXIT_OK)     /* again, loudly */
            assert_int_equal(fs_check(m->path, &co, stderr), FSCK_EXIT_OK);
        img_mount(m);
        assert_int_equal(orphan_head(m->fs), 0);
        img_unmount(m);
        img_check(m);
    }
    free(buf);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, img_setup, img_teardown)
    const struct CMUnitTest tests[] = {
        T(test_not_mmapfs),
        T(test_second_mount_busy),
        T(test_corrupt_superblock),
        T(test_super_validate),
        T(test_remount_persistence),
        T(test_damaged_bitmaps),
        T(test_bitmap_reserved_clear),
        T(test_inode_bitmap_live_clear),
        T(test_replayed_features),
        T(test_trim_damaged_bitmap),
        T(test_record_limits),
        T(test_read_only),
        T(test_orphan_reference),
        T(test_orphan_many_random_order),
        T(test_orphan_crash_recovery),
        T(test_tmpfile),
        T(test_crash_after_fsync),
        T(test_crash_mid_release),
        T(test_crash_fuzz),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
