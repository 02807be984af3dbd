/*
 * test_resize — the offline tools' core: fs_offline_open (refusals),
 * fs_grow_plan / fs_grow (in place and relocated into the journal tail,
 * a stop after each step leaves the old or the new size, the grown image
 * mounts, holds its files, takes new ones and checks clean), the inode
 * table's growth (more files than before, fsck's and mount's checks of
 * the extents), fs_trim, and
 * the discard mount option (fs_options.discard) on a real image file.
 */
#include "fs_fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <sys/stat.h>
#include <time.h>

#include "fs/offline.h"
#include "io/mmio_i.h"
#include "util/crc32c.h"

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

/* Replaces the test's image by a new one of bytes with a journal of
 * journal_blocks (larger than the default, so that the bitmap can move). */
static void remake_image(struct img *m, uint64_t bytes, uint64_t journal_blocks)
{
    struct mmio *io;
    struct fs_format_options fo = { .size = bytes, .journal_blocks = journal_blocks };

    unlink(m->path);
    m->path[0] = 0;
    assert_int_equal(img_format(m, bytes, 0), 0);
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
    fs_super_checksum(&sb);
    int fd = open(m->path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, &sb, sizeof(sb), 0), (ssize_t)sizeof(sb));
    assert_int_equal(fs_offline_open(&o, m->path, msg, sizeof(msg)), -EUCLEAN);
    assert_non_null(strstr(msg, "fsck"));
    /* an unknown feature */
    sb.state = MMAPFS_STATE_CLEAN;
    uint32_t incompat = sb.feature_incompat;
    sb.feature_incompat = 0x80;
    fs_super_checksum(&sb);
    assert_int_equal(pwrite(fd, &sb, sizeof(sb), 0), (ssize_t)sizeof(sb));
    assert_int_equal(fs_offline_open(&o, m->path, msg, sizeof(msg)), -EOPNOTSUPP);
    sb.feature_incompat = incompat;
    fs_super_checksum(&sb);
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

    remake_image(m, 64 * MiB, 4096);
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
 * to 8 GiB is past mkfs's room (4 GiB), so the bitmap moves, and the
 * inodes grow (4096 -> 524288, the inode bitmap moves): every step. */
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

        remake_image(m, 64 * MiB, 2048);
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
        if (step == FS_GROW_SUPER) {
            assert_int_equal(sb.block_count, 8 * GiB / 4096);
            assert_int_equal(sb.inode_count, 8 * GiB / 16384);
        } else {
            assert_int_equal(sb.block_count, 64 * MiB / 4096);
            assert_int_equal(sb.inode_count, 64 * MiB / 16384);
            assert_int_equal(sb.feature_incompat & MMAPFS_FEATURE_INCOMPAT_ITAB, 0);
        }
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

/* ---- a cut after every write ---------------------------------------------------- */

/* The engine writes of one fs_grow, in order, with their bytes (the
 * engine's observer sees every mmio_write_at). */
struct write_log {
    size_t n;
    struct logged { uint64_t off; size_t len; void *bytes; } w[512];
};

static void log_write(void *ctx, struct mmio *io, uint64_t off, size_t len)
{
    struct write_log *l = ctx;
    assert_true(l->n < sizeof(l->w) / sizeof(l->w[0]));
    struct logged *w = &l->w[l->n++];
    w->off = off;
    w->len = len;
    w->bytes = malloc(len);
    assert_non_null(w->bytes);
    assert_int_equal(mmio_read_at(io, off, w->bytes, len), 0);
}

/* Copies file from to a new file to (sparse: only non-zero blocks). */
static void copy_image(const char *from, const char *to)
{
    int in = open(from, O_RDONLY), out = open(to, O_RDWR | O_CREAT | O_TRUNC, 0600);
    static unsigned char buf[4096];
    static const unsigned char zero[4096];
    struct stat st;
    assert_true(in >= 0 && out >= 0);
    assert_int_equal(fstat(in, &st), 0);
    for (off_t o = 0; o < st.st_size; o += 4096) {
        assert_int_equal(pread(in, buf, 4096, o), 4096);
        if (memcmp(buf, zero, 4096) != 0)
            assert_int_equal(pwrite(out, buf, 4096, o), 4096);
    }
    assert_int_equal(ftruncate(out, st.st_size), 0);
    close(in);
    close(out);
}

/* The image as a crash after the first k writes of the grow leaves it
 * (the file extension comes first): fsck clean, the old or the new size
 * and inode count, and the old file's data readable. */
static void test_grow_cut_at_every_write(void **state)
{
    struct img *m = *state;
    struct fs_offline o;
    struct fs_grow_plan p;
    struct mmapfs_disk_superblock sb;
    static struct write_log log;
    struct mmio_observer obs = { .wrote = log_write, .ctx = &log };
    char msg[256], before[80];

    remake_image(m, 64 * MiB, 2048);
    img_mount(m);
    put_file(m->fs, "a", MiB, 7);
    img_unmount(m);
    snprintf(before, sizeof(before), "%s.before", m->path);
    copy_image(m->path, before);

    assert_int_equal(fs_offline_open(&o, m->path, msg, sizeof(msg)), 0);
    mmio_set_observer(&obs);
    int err = fs_grow(&o, 8 * GiB, &p, NULL, NULL);
    mmio_set_observer(NULL);
    fs_offline_close(&o);
    assert_int_equal(err, 0);
    assert_true(p.relocated && p.ibm_moved && p.itab_blocks);
    assert_true(log.n > 10);
    print_message("%zu writes: %zu cut images checked\n", log.n, log.n + 1);

    struct img c = *m;
    char *cut = c.path;
    assert_true(strlen(m->path) + 5 <= sizeof(c.path));
    strcat(cut, ".cut");
    for (size_t k = 0; k <= log.n; k++) {
        copy_image(before, cut);
        int fd = open(cut, O_RDWR);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, (off_t)(8 * GiB)), 0);
        for (size_t i = 0; i < k; i++)
            assert_int_equal(pwrite(fd, log.w[i].bytes, log.w[i].len, (off_t)log.w[i].off),
                             (ssize_t)log.w[i].len);
        close(fd);
        img_check(&c);
        read_super(cut, &sb);
        if (k == log.n) {
            assert_int_equal(sb.block_count, 8 * GiB / 4096);
            assert_int_equal(sb.inode_count, 8 * GiB / 16384);
        } else {                    /* the superblock is the last write */
            assert_int_equal(sb.block_count, 64 * MiB / 4096);
            assert_int_equal(sb.inode_count, 64 * MiB / 16384);
        }
        img_mount(&c);
        check_file(c.fs, "a", MiB, 7);
        img_unmount(&c);
    }
    for (size_t i = 0; i < log.n; i++)
        free(log.w[i].bytes);
    log.n = 0;
    unlink(before);
    unlink(cut);
}

/* Creates empty files prefix0, prefix1, ... in the root until the inodes
 * run out (ENOSPC); returns how many were made. */
static uint64_t fill_inodes(struct fs *fs, const char *prefix)
{
    struct fs_stat st;
    char name[64];
    for (uint64_t n = 0;; n++) {
        snprintf(name, sizeof(name), "%s%llu", prefix, (unsigned long long)n);
        int err = fs_mknod(fs, ROOT, name, S_IFREG | 0644, 0, &cred, &st);
        if (err == -ENOSPC)
            return n;
        assert_int_equal(err, 0);
        fs_forget(fs, st.ino, 1);
    }
}

static void grow_to(struct img *m, uint64_t bytes, struct fs_grow_plan *p)
{
    struct fs_offline o;
    char msg[256];
    assert_int_equal(fs_offline_open(&o, m->path, msg, sizeof(msg)), 0);
    assert_int_equal(fs_grow(&o, bytes, p, NULL, NULL), 0);
    fs_offline_close(&o);
    img_check(m);
}

/* A full inode table grows with the size (10x: 2048 -> 20480 inodes),
 * the new inodes are usable and survive a remount; the inode bitmap then
 * moves into the new space (1 GiB: 2 bitmap blocks), grows in its room
 * (4 GiB), and moves again, its old room becoming table (8 GiB). */
static void test_grow_inodes(void **state)
{
    struct img *m = *state;
    struct fs_grow_plan p;
    struct mmapfs_disk_superblock sb;

    remake_image(m, 32 * MiB, 4096);        /* a journal that can give room: 8 GiB */
    read_super(m->path, &sb);
    assert_int_equal(sb.inode_count, 2048);
    assert_int_equal(sb.feature_incompat & MMAPFS_FEATURE_INCOMPAT_ITAB, 0);
    img_mount(m);
    put_file(m->fs, "data", MiB, 9);
    uint64_t first = fill_inodes(m->fs, "a");
    assert_true(first > 2000 && first < 2048);
    img_unmount(m);

    grow_to(m, 320 * MiB, &p);
    assert_int_equal(p.old_inodes, 2048);
    assert_int_equal(p.new_inodes, 20480);
    assert_int_equal(p.itab_blocks, (20480 - 2048) / 16);
    assert_int_equal(p.itab_start, 32 * MiB / 4096);
    assert_false(p.ibm_moved);
    read_super(m->path, &sb);
    assert_true(sb.feature_incompat & MMAPFS_FEATURE_INCOMPAT_ITAB);
    assert_int_equal(sb.inode_count, 20480);
    assert_int_equal(sb.itab.count, 1);
    assert_int_equal(sb.itab.ext[0].start, 8192);
    assert_int_equal(sb.itab.ext[0].blocks, 1152);
    assert_int_equal(sb.itab.inode_bitmap_room, 0);

    img_mount(m);
    struct statvfs sv;
    assert_int_equal(fs_statfs(m->fs, &sv), 0);
    assert_int_equal(sv.f_files, 20480);
    assert_int_equal(fill_inodes(m->fs, "b"), 20480 - 2048);   /* every new inode */
    check_file(m->fs, "data", MiB, 9);
    img_remount(m);
    assert_true(lookup(m->fs, ROOT, "a0") > 0);
    int64_t last = lookup(m->fs, ROOT, "b18431");
    assert_true(last > 2048);
    assert_int_equal(attr(m->fs, (uint64_t)last).mode, S_IFREG | 0644);
    /* free some, the rest of the test creates in the later extents */
    for (int i = 0; i < 100; i++) {
        char name[32];
        snprintf(name, sizeof(name), "b%d", i);
        assert_int_equal(fs_unlink(m->fs, ROOT, name), 0);
    }
    img_unmount(m);
    img_check(m);

    grow_to(m, 1 * GiB, &p);                       /* 65536 inodes: 2 bitmap blocks */
    assert_int_equal(p.new_inodes, 65536);
    assert_true(p.ibm_moved);
    assert_false(p.reuse_room);
    assert_int_equal(p.ibm_start, 320 * MiB / 4096);
    assert_int_equal(p.ibm_room, 2 * 4);
    assert_int_equal(p.itab_start, 320 * MiB / 4096 + 8);
    img_mount(m);
    assert_int_equal(fill_inodes(m->fs, "c"), 65536 - 20480 + 100);
    img_unmount(m);
    img_check(m);

    grow_to(m, 4 * GiB, &p);                       /* 262144: 8 blocks, in the room */
    assert_false(p.ibm_moved);
    read_super(m->path, &sb);
    assert_int_equal(sb.inode_bitmap_start, 320 * MiB / 4096);
    assert_int_equal(sb.inode_bitmap_blocks, 8);

    grow_to(m, 8 * GiB, &p);                       /* 16 blocks: moves, the room is table */
    assert_true(p.ibm_moved);
    assert_true(p.reuse_room);
    read_super(m->path, &sb);
    assert_int_equal(sb.itab.count, 5);
    assert_int_equal(sb.itab.ext[4].start, 320 * MiB / 4096);
    assert_int_equal(sb.itab.ext[4].blocks, 8);
    assert_int_equal(sb.inode_count, 524288 + 8 * 16);
    img_mount(m);
    check_file(m->fs, "data", MiB, 9);
    assert_true(lookup(m->fs, ROOT, "c45000") > 0);
    mkfile(m->fs, ROOT, "after");
    img_unmount(m);
    img_check(m);
}

/* The inode number -> table block mapping (format.h) over the first table
 * and the extents, and back. */
static void test_inode_block_mapping(void **state)
{
    (void)state;
    struct mmapfs_disk_itab t = { .count = 2 };
    t.ext[0] = (struct mmapfs_disk_itab_extent){ 1000, 2 };
    t.ext[1] = (struct mmapfs_disk_itab_extent){ 500, 1 };
    /* inode -> block (0: past the table) */
    static const uint64_t fwd[][2] = { { 1, 100 }, { 48, 102 }, { 49, 1000 }, { 65, 1001 },
                                       { 81, 500 }, { 96, 500 }, { 97, 0 }, { 0, 0 } };
    for (size_t i = 0; i < sizeof(fwd) / sizeof(fwd[0]); i++)
        assert_int_equal(mmapfs_inode_block(100, 3, &t, fwd[i][0]), fwd[i][1]);
    assert_int_equal(mmapfs_inode_block(100, 3, NULL, 49), 0);
    /* block -> its first inode (0: not a table block) */
    static const uint64_t back[][2] = { { 102, 33 }, { 1001, 65 }, { 500, 81 }, { 501, 0 },
                                        { 99, 0 } };
    for (size_t i = 0; i < sizeof(back) / sizeof(back[0]); i++)
        assert_int_equal(mmapfs_inode_block_first(100, 3, &t, back[i][0]), back[i][1]);
}

/* Damage to a grown table's description: fsck and mount notice. */
static void test_grown_table_damage(void **state)
{
    struct img *m = *state;
    struct fs_grow_plan p;
    struct mmapfs_disk_superblock sb, good;
    struct fs_check_options co = { .mode = FS_CHECK_NO, .force = 1 };

    grow_to(m, 320 * MiB, &p);
    read_super(m->path, &good);
    int fd = open(m->path, O_RDWR);
    assert_true(fd >= 0);
    /* the extent's first block free in the block bitmap: fsck -n finds it,
     * fsck -y sets it */
    uint64_t b = good.itab.ext[0].start;
    off_t off = (off_t)(good.block_bitmap_start * 4096 + b / 8);
    unsigned char byte;
    assert_int_equal(pread(fd, &byte, 1, off), 1);
    byte &= (unsigned char)~(1u << (b % 8));
    assert_int_equal(pwrite(fd, &byte, 1, off), 1);
    /* the mount refuses it read-write, even with the superblock's free
     * count made to agree: the allocator would hand that block, 16 inode
     * records, to a file */
    sb = good;
    sb.free_blocks++;
    fs_super_checksum(&sb);
    assert_int_equal(pwrite(fd, &sb, sizeof(sb), 0), (ssize_t)sizeof(sb));
    assert_int_equal(img_try_mount(m, (struct fs_options){ 0 }), -EUCLEAN);
    assert_int_equal(pwrite(fd, &good, sizeof(good), 0), (ssize_t)sizeof(good));
    assert_int_equal(fs_check(m->path, &co, stderr), FSCK_EXIT_UNCORRECTED);
    co.mode = FS_CHECK_YES;
    assert_int_equal(fs_check(m->path, &co, stderr), FSCK_EXIT_CORRECTED);
    img_check(m);
    /* an extent overlapping the first table, past the end, or an inode
     * count that does not match: the superblock is refused */
    for (int i = 0; i < 3; i++) {
        sb = good;
        if (i == 0)
            sb.itab.ext[0].start = sb.inode_table_start;
        else if (i == 1)
            sb.itab.ext[0].start = sb.block_count - 1;
        else
            sb.inode_count += 16;
        fs_super_checksum(&sb);
        char why[200];
        assert_int_equal(fs_super_validate(&sb, 320 * MiB, why, sizeof(why)), -EUCLEAN);
        assert_int_equal(pwrite(fd, &sb, sizeof(sb), 0), (ssize_t)sizeof(sb));
        assert_int_not_equal(img_try_mount(m, (struct fs_options){ 0 }), 0);
    }
    assert_int_equal(pwrite(fd, &good, sizeof(good), 0), (ssize_t)sizeof(good));

    /* a file's extent pointing into the table extent: fsck drops it (a
     * write to the file would have overwritten inode records) */
    img_mount(m);
    uint64_t ino = put_file(m->fs, "x", 8192, 3);
    img_unmount(m);
    struct mmapfs_disk_inode di;
    off_t at = (off_t)(mmapfs_inode_block(good.inode_table_start, good.inode_table_blocks,
                                          &good.itab, ino) * 4096 +
                       (ino - 1) % 16 * 256);
    assert_int_equal(pread(fd, &di, sizeof(di), at), (ssize_t)sizeof(di));
    assert_int_equal(di.flags, MMAPFS_INODE_EXTENTS);
    struct mmapfs_disk_extent e;
    uint64_t lblk;
    mmapfs_inline_extent_get(di.inline_area, 0, &lblk, &e);
    e.start = good.itab.ext[0].start + 5;
    mmapfs_inline_extent_put(di.inline_area, 0, lblk, &e);
    uint64_t le = htole64(ino);
    di.checksum = mfs_crc32c(mfs_crc32c(0, &le, 8), &di, offsetof(struct mmapfs_disk_inode, checksum));
    assert_int_equal(pwrite(fd, &di, sizeof(di), at), (ssize_t)sizeof(di));
    close(fd);
    /* the mount refuses it as well: reading the file read inode records,
     * writing it wrote over them */
    img_mount(m);
    unsigned char buf[4096] = { 0 };
    assert_int_equal(fs_read(m->fs, ino, 0, buf, sizeof(buf)), -EUCLEAN);
    assert_int_equal(fs_write(m->fs, ino, 0, buf, sizeof(buf)), -EUCLEAN);
    img_unmount(m);
    co.mode = FS_CHECK_NO;
    assert_int_equal(fs_check(m->path, &co, stderr), FSCK_EXIT_UNCORRECTED);
    co.mode = FS_CHECK_YES;
    assert_int_equal(fs_check(m->path, &co, stderr), FSCK_EXIT_CORRECTED);
    img_check(m);
}

/* Random values in the grown table's superblock fields (checksum made
 * valid): whatever fs_super_validate accepts, fsck -n and a mount survive
 * (no crash; a wrong table reads as damaged inodes). Seeded: replayable. */
static void test_grown_table_random_fields(void **state)
{
    struct img *m = *state;
    struct fs_grow_plan p;
    struct mmapfs_disk_superblock good, sb;
    struct fs_check_options co = { .mode = FS_CHECK_NO, .force = 1 };
    unsigned seed = (unsigned)time(NULL);
    int accepted = 0;

    print_message("seed %u\n", seed);
    srand(seed);
    grow_to(m, 320 * MiB, &p);
    grow_to(m, 1 * GiB, &p);                 /* the bitmap moves: a room too */
    read_super(m->path, &good);
    FILE *quiet = fopen("/dev/null", "w");
    assert_non_null(quiet);
    for (int i = 0; i < 300; i++) {
        sb = good;
        uint64_t *fields[] = { &sb.itab.ext[0].start, &sb.itab.ext[0].blocks,
                               &sb.itab.ext[1].start, &sb.itab.ext[1].blocks,
                               &sb.itab.inode_bitmap_room, &sb.inode_bitmap_start,
                               &sb.inode_count, &sb.inode_table_blocks };
        uint64_t *f = fields[rand() % 8];
        switch (rand() % 3) {
        case 0: *f += (uint64_t)(rand() % 64) - 32; break;
        case 1: *f = (uint64_t)rand() % good.block_count; break;
        default: sb.itab.count = (uint32_t)rand() % 70; break;
        }
        fs_super_checksum(&sb);
        int fd = open(m->path, O_RDWR);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, &sb, sizeof(sb), 0), (ssize_t)sizeof(sb));
        close(fd);
        if (fs_super_validate(&sb, 1 * GiB, NULL, 0) == 0) {
            accepted++;
            (void)fs_check(m->path, &co, quiet);
            if (img_try_mount(m, (struct fs_options){ 0 }) == 0) {
                struct statvfs sv;
                (void)fs_statfs(m->fs, &sv);
                (void)lookup(m->fs, ROOT, "lost+found");
                img_unmount(m);
            }
        }
    }
    fclose(quiet);
    print_message("%d of 300 damaged superblocks passed validation\n", accepted);
    int fd = open(m->path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, &good, sizeof(good), 0), (ssize_t)sizeof(good));
    close(fd);
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
        T(test_grow_cut_at_every_write),
        T(test_grow_inodes),
        T(test_inode_block_mapping),
        T(test_grown_table_damage),
        T(test_grown_table_random_fields),
        T(test_trim_and_discard_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
