/*
 * test_fs_inline.c — inode-resident data (src/fs/file_map.c,
 * file_inline.c, inode.c; docs/FORMAT.md §6): tiny files and symlink
 * targets inside the inode, moved to a block when they outgrow it; the
 * first extents inside the inode, moved into a tree when they overflow and
 * back when a truncate or punch makes them fit; block counts at each step;
 * the old format (no feature bit) unchanged; fsck finding and repairing
 * damaged inline structures. Every test ends with an fsck of the image.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fsck/fsck.h"
#include "fsck/fsck_i.h"
#include "fs/fs.h"
#include "fs/fs_i.h"
#include "fs/inode.h"
#include "fs/mkfs.h"

#include "fs_fixture.h"
#include "fsck_report.h"

#define BS 4096u

static int img_setup(void **state)
{
    static const struct img_config c = { .name = "inline", .bytes = 64 * MiB, .mount = 1,
                                         .fsck_on_remount = 1, .check_at_teardown = 1 };
    return img_setup_config(state, &c);
}

static void write_all(struct fs *fs, uint64_t ino, uint64_t off, const void *buf, size_t len)
{
    ssize_t n = fs_write(fs, ino, off, buf, len);
    if (n < 0 || (size_t)n != len)
        fail_msg("write %zu at %llu: %zd", len, (unsigned long long)off, n);
}

static void read_expect(struct fs *fs, uint64_t ino, uint64_t off, const void *want, size_t len)
{
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    ssize_t n = fs_read(fs, ino, off, buf, len);
    if (n < 0 || (size_t)n != len)
        fail_msg("read %zu at %llu: %zd", len, (unsigned long long)off, n);
    assert_memory_equal(buf, want, len);
    free(buf);
}

/* The inode record as the fs core has it. */
static struct mmapfs_disk_inode record(struct fs *fs, uint64_t ino)
{
    struct mmapfs_disk_inode di;
    jnl_lock(fs->jnl);
    int err = fs_inode_get(fs, ino, &di);
    jnl_unlock(fs->jnl);
    assert_int_equal(err, 0);
    return di;
}

static uint64_t blocks512(struct fs *fs, uint64_t ino)
{
    return attr(fs, ino).blocks512;
}

static void set_size(struct fs *fs, uint64_t ino, uint64_t size)
{
    struct fs_setattr sa = { .size = size };
    assert_int_equal(fs_setattr(fs, ino, &sa, FS_SET_SIZE, NULL), 0);
}

/* ==== inline data ============================================================== */

/* A file of a few bytes owns no block; it survives a remount (with fsck). */
static void test_tiny_file(void **state)
{
    struct img *m = *state;
    uint64_t ino = mkfile(m->fs, ROOT, "tiny");
    write_all(m->fs, ino, 0, "hi\n", 3);
    assert_int_equal(blocks512(m->fs, ino), 0);
    assert_int_equal(record(m->fs, ino).flags, MMAPFS_INODE_INLINE_DATA);
    read_expect(m->fs, ino, 0, "hi\n", 3);
    img_remount(m);
    read_expect(m->fs, ino, 0, "hi\n", 3);
    assert_int_equal(attr(m->fs, ino).size, 3);
    /* an append still inside the inode; a write at a gap reads zeros */
    write_all(m->fs, ino, 10, "xyz", 3);
    read_expect(m->fs, ino, 0, "hi\n\0\0\0\0\0\0\0xyz", 13);
    assert_int_equal(blocks512(m->fs, ino), 0);
    int64_t pos = fs_lseek(m->fs, ino, 0, SEEK_HOLE);
    assert_int_equal(pos, 13);
    img_unmount_check(m);
}

/* The first write past MMAPFS_INLINE_BYTES moves the bytes to a block (one
 * block, its extent in the inode); a 4 KiB file is exactly one block. */
static void test_inline_to_block(void **state)
{
    struct img *m = *state;
    uint8_t buf[BS];
    for (unsigned i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 7 + 1);
    uint64_t ino = mkfile(m->fs, ROOT, "grow");
    write_all(m->fs, ino, 0, buf, MMAPFS_INLINE_BYTES);
    assert_int_equal(blocks512(m->fs, ino), 0);
    write_all(m->fs, ino, MMAPFS_INLINE_BYTES, buf + MMAPFS_INLINE_BYTES, 1);
    assert_int_equal(blocks512(m->fs, ino), 8);
    struct mmapfs_disk_inode di = record(m->fs, ino);
    assert_int_equal(di.flags, MMAPFS_INODE_EXTENTS);
    assert_int_equal(di.tree_root, 0);
    read_expect(m->fs, ino, 0, buf, MMAPFS_INLINE_BYTES + 1);

    uint64_t f4k = mkfile(m->fs, ROOT, "4k");
    write_all(m->fs, f4k, 0, buf, BS);
    assert_int_equal(blocks512(m->fs, f4k), 8);
    img_remount(m);
    read_expect(m->fs, ino, 0, buf, MMAPFS_INLINE_BYTES + 1);
    read_expect(m->fs, f4k, 0, buf, BS);
    img_unmount_check(m);
}

/* Truncates inside the area zero what they cut; a truncate past it moves
 * the bytes to a block; truncate to 0 leaves no flags. */
static void test_inline_truncate(void **state)
{
    struct img *m = *state;
    uint64_t ino = mkfile(m->fs, ROOT, "t");
    write_all(m->fs, ino, 0, "hello world", 11);
    set_size(m->fs, ino, 5);
    set_size(m->fs, ino, 20);
    read_expect(m->fs, ino, 0, "hello\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 20);
    assert_int_equal(blocks512(m->fs, ino), 0);
    set_size(m->fs, ino, 100000);
    assert_int_equal(blocks512(m->fs, ino), 8);
    read_expect(m->fs, ino, 0, "hello\0\0\0", 8);
    assert_int_equal(attr(m->fs, ino).size, 100000);

    uint64_t z = mkfile(m->fs, ROOT, "z");
    write_all(m->fs, z, 0, "abc", 3);
    set_size(m->fs, z, 0);
    assert_int_equal(record(m->fs, z).flags, 0);
    /* fallocate moves inline bytes to a block first */
    write_all(m->fs, z, 0, "abc", 3);
    assert_int_equal(fs_fallocate(m->fs, z, FALLOC_FL_KEEP_SIZE, 0, 3 * BS), 0);
    read_expect(m->fs, z, 0, "abc", 3);
    assert_int_equal(blocks512(m->fs, z), 3 * 8);
    img_unmount_check(m);
}

/* Symlinks "short" -> "../a/b" (in the inode) and "long" -> target, 199
 * 't's (in a block); *s and *l are their inodes. */
static void make_symlinks(struct img *m, char target[200], uint64_t *s, uint64_t *l)
{
    struct fs_stat st;
    assert_int_equal(fs_symlink(m->fs, ROOT, "short", "../a/b", &cred, &st), 0);
    fs_forget(m->fs, st.ino, 1);
    assert_int_equal(st.blocks512, 0);
    *s = st.ino;
    memset(target, 't', 199);
    target[199] = 0;
    assert_int_equal(fs_symlink(m->fs, ROOT, "long", target, &cred, &st), 0);
    fs_forget(m->fs, st.ino, 1);
    assert_int_equal(st.blocks512, 8);
    *l = st.ino;
}

/* A short symlink target lives in the inode, a long one in a block. */
static void test_symlinks(void **state)
{
    struct img *m = *state;
    char target[200], got[256];
    uint64_t si, li;
    make_symlinks(m, target, &si, &li);
    img_remount(m);
    int64_t s = lookup(m->fs, ROOT, "short"), l = lookup(m->fs, ROOT, "long");
    assert_int_equal(s, si);
    assert_int_equal(l, li);
    assert_int_equal(fs_readlink(m->fs, (uint64_t)s, got, sizeof(got)), 6);
    assert_memory_equal(got, "../a/b", 6);
    assert_int_equal(fs_readlink(m->fs, (uint64_t)l, got, sizeof(got)), 199);
    assert_memory_equal(got, target, 199);
    assert_int_equal(fs_unlink(m->fs, ROOT, "short"), 0);
    assert_int_equal(fs_unlink(m->fs, ROOT, "long"), 0);
    img_unmount_check(m);
}

/* ==== extents in the inode ====================================================== */

/* inline -> 4 inode extents -> tree (5th) -> back into the inode on
 * truncate -> empty; block counts at every step. */
static void test_extents_inode_tree_inode(void **state)
{
    struct img *m = *state;
    uint8_t buf[BS];
    uint64_t ino = mkfile(m->fs, ROOT, "ext");
    for (unsigned i = 0; i < 6; i++) {
        memset(buf, 'a' + i, sizeof(buf));
        write_all(m->fs, ino, (uint64_t)i * 2 * BS, buf, BS);     /* every other block */
        struct mmapfs_disk_inode di = record(m->fs, ino);
        if (i < MMAPFS_INLINE_EXTENTS) {
            assert_int_equal(di.flags, MMAPFS_INODE_EXTENTS);
            assert_int_equal(di.tree_root, 0);
            assert_int_equal(di.blocks, i + 1);
        } else {
            assert_int_equal(di.flags, 0);
            assert_true(di.tree_root != 0);
            assert_int_equal(di.blocks, i + 1 + 1);                /* + the root leaf */
        }
    }
    img_remount(m);
    for (unsigned i = 0; i < 6; i++) {
        memset(buf, 'a' + i, sizeof(buf));
        read_expect(m->fs, ino, (uint64_t)i * 2 * BS, buf, BS);
    }
    /* 6 extents -> 4: the tree goes, the extents move back into the inode */
    set_size(m->fs, ino, 7 * BS);
    struct mmapfs_disk_inode di = record(m->fs, ino);
    assert_int_equal(di.tree_root, 0);
    assert_int_equal(di.flags, MMAPFS_INODE_EXTENTS);
    assert_int_equal(di.blocks, 4);
    memset(buf, 'd', sizeof(buf));
    read_expect(m->fs, ino, 6 * BS, buf, BS);
    img_remount(m);
    /* a punch that leaves 4 extents out of 5 also moves them back */
    memset(buf, 'x', sizeof(buf));
    write_all(m->fs, ino, 20 * BS, buf, BS);
    assert_true(record(m->fs, ino).tree_root != 0);
    assert_int_equal(fs_fallocate(m->fs, ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                  2 * BS, BS), 0);
    di = record(m->fs, ino);
    assert_int_equal(di.tree_root, 0);
    assert_int_equal(di.blocks, 4);
    set_size(m->fs, ino, 0);
    di = record(m->fs, ino);
    assert_int_equal(di.flags, 0);
    assert_int_equal(di.blocks, 0);
    img_unmount_check(m);
}

/* 8 MiB file, 2 MiB punched in the middle: 6 MiB of blocks, no tree node
 * (ext4: 6144 KiB). */
static void test_punch_hole_space(void **state)
{
    struct img *m = *state;
    size_t len = 8 * MiB;
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    memset(buf, 0x5a, len);
    uint64_t ino = mkfile(m->fs, ROOT, "p");
    write_all(m->fs, ino, 0, buf, len);
    assert_int_equal(fs_fallocate(m->fs, ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                  3 * MiB, 2 * MiB), 0);
    assert_int_equal(blocks512(m->fs, ino) / 2, 6144);     /* KiB, as du -k */
    free(buf);
    img_unmount_check(m);
}

/* Unlinking files of each representation frees everything (fsck). */
static void test_release(void **state)
{
    struct img *m = *state;
    uint8_t buf[BS] = { 1 };
    const char *names[] = { "a", "b", "c" };
    for (unsigned k = 0; k < 3; k++) {
        uint64_t ino = mkfile(m->fs, ROOT, names[k]);
        unsigned n = k == 0 ? 0 : k == 1 ? 2 : 9;
        write_all(m->fs, ino, 0, "x", 1);
        for (unsigned i = 1; i < n; i++)
            write_all(m->fs, ino, (uint64_t)i * 2 * BS, buf, BS);
    }
    uint64_t free0 = 0;
    struct statvfs sf;
    for (unsigned k = 0; k < 3; k++)
        assert_int_equal(fs_unlink(m->fs, ROOT, names[k]), 0);
    assert_int_equal(fs_statfs(m->fs, &sf), 0);
    free0 = sf.f_bfree;
    img_remount(m);
    assert_int_equal(fs_statfs(m->fs, &sf), 0);
    assert_int_equal(sf.f_bfree, free0);
    img_unmount_check(m);
}

/* ==== the old format ============================================================ */

/* An image without the feature bit: tiny files take a block and a tree
 * root as before, no inode flags; fsck clean. */
static void test_old_format(void **state)
{
    struct img *m = *state;
    img_unmount(m);
    struct mmio *io;
    assert_int_equal(mmio_open(&io, m->path, 0, 0, NULL), 0);
    struct fs_format_options opt = { .no_inode_data = 1, .no_inode_xattr = 1 };
    assert_int_equal(fs_format(io, &opt), 0);
    mmio_close(io);
    img_mount(m);
    assert_int_equal(m->fs->feature_incompat, 0);
    uint64_t ino = mkfile(m->fs, ROOT, "old");
    write_all(m->fs, ino, 0, "hi\n", 3);
    assert_int_equal(blocks512(m->fs, ino), 16);
    struct mmapfs_disk_inode di = record(m->fs, ino);
    assert_int_equal(di.flags, 0);
    assert_true(di.tree_root != 0);
    set_size(m->fs, ino, 0);
    assert_int_equal(blocks512(m->fs, ino), 0);
    write_all(m->fs, ino, 0, "hi\n", 3);
    img_remount(m);
    read_expect(m->fs, ino, 0, "hi\n", 3);
    img_unmount_check(m);
}

/* ==== fsck ====================================================================== */

static void swap_extents(struct mmapfs_disk_inode *di)
{
    uint8_t tmp[MMAPFS_INLINE_EXTENT_BYTES];
    memcpy(tmp, di->inline_area, sizeof(tmp));
    memcpy(di->inline_area, di->inline_area + sizeof(tmp), sizeof(tmp));
    memcpy(di->inline_area + sizeof(tmp), tmp, sizeof(tmp));
}

static void both_flags(struct mmapfs_disk_inode *di)
{
    di->flags = MMAPFS_INODE_FLAGS_KNOWN;
}

static void inline_size_too_big(struct mmapfs_disk_inode *di)
{
    di->size = 100;
}

static int check(const char *path, enum fs_check_mode mode)
{
    struct fs_check_options o = { .mode = mode, .force = 1 };
    FILE *null = fopen("/dev/null", "w");
    int rc = fs_check(path, &o, null);
    fclose(null);
    return rc;
}

/* Damaged inline extents, flags and inline data sizes are found by fsck
 * -n and repaired by -y (then clean); the mount refuses the damaged
 * record (-EUCLEAN) rather than using it. */
static void test_fsck_inline(void **state)
{
    struct img *m = *state;
    uint8_t buf[BS];
    memset(buf, 'q', sizeof(buf));
    uint64_t e = mkfile(m->fs, ROOT, "e"), d = mkfile(m->fs, ROOT, "d");
    write_all(m->fs, e, 0, buf, BS);
    write_all(m->fs, e, 2 * BS, buf, BS);
    write_all(m->fs, d, 0, "data", 4);
    img_unmount(m);
    assert_int_equal(check(m->path, FS_CHECK_NO), FSCK_EXIT_OK);

    void (*edits[])(struct mmapfs_disk_inode *) = { swap_extents, both_flags };
    uint64_t targets[] = { e, d };
    for (unsigned k = 0; k < 2; k++) {
        img_poke_inode(m->path, targets[k], edits[k]);
        assert_int_equal(check(m->path, FS_CHECK_NO), FSCK_EXIT_UNCORRECTED);
        img_mount(m);
        uint8_t b[8];
        assert_int_equal(fs_read(m->fs, targets[k], 0, b, sizeof(b)), -EUCLEAN);
        img_unmount(m);
        int rc = check(m->path, FS_CHECK_YES);
        assert_true(rc == FSCK_EXIT_CORRECTED || rc == (FSCK_EXIT_CORRECTED | FSCK_EXIT_REBOOT));
        assert_int_equal(check(m->path, FS_CHECK_NO), FSCK_EXIT_OK);
    }
    /* the swapped extents were salvaged (sorted, into a tree) */
    img_mount(m);
    read_expect(m->fs, e, 2 * BS, buf, BS);
    img_unmount(m);

    img_mount(m);
    uint64_t s = mkfile(m->fs, ROOT, "s");
    write_all(m->fs, s, 0, "0123456789", 10);
    img_unmount(m);
    img_poke_inode(m->path, s, inline_size_too_big);
    assert_int_equal(check(m->path, FS_CHECK_NO), FSCK_EXIT_UNCORRECTED);
    int rc = check(m->path, FS_CHECK_YES);
    assert_true(rc & FSCK_EXIT_CORRECTED);
    assert_int_equal(check(m->path, FS_CHECK_NO), FSCK_EXIT_OK);
    img_mount(m);
    assert_int_equal(attr(m->fs, s).size, MMAPFS_INLINE_BYTES);
    read_expect(m->fs, s, 0, "0123456789", 10);
    img_unmount_check(m);
}

static void flags_unknown_bit(struct mmapfs_disk_inode *di)
{
    di->flags ^= 0x4;
}

static void flags_cleared(struct mmapfs_disk_inode *di)
{
    di->flags = 0;
}

/* One bit of the flags of a record flipped and its checksum left wrong:
 * an unknown bit beside inline extents, the inline-data bit cleared. The
 * area still holds the file's extents or bytes, so the flags are the one
 * damaged field: -y sets them from the area and keeps the data (it used
 * to clear the area, the file reading as zeros). */
static void test_fsck_inline_flags_flipped(void **state)
{
    struct img *m = *state;
    uint8_t buf[BS];
    memset(buf, 'k', sizeof(buf));
    uint64_t e = mkfile(m->fs, ROOT, "e"), d = mkfile(m->fs, ROOT, "d");
    write_all(m->fs, e, BS, buf, BS);
    write_all(m->fs, d, 0, "bytes", 5);
    struct mmapfs_disk_inode before_e = record(m->fs, e), before_d = record(m->fs, d);
    assert_int_equal(before_e.flags, MMAPFS_INODE_EXTENTS);
    assert_int_equal(before_d.flags, MMAPFS_INODE_INLINE_DATA);
    img_unmount(m);
    img_poke_inode_sealed(m->path, e, flags_unknown_bit, 0);
    img_poke_inode_sealed(m->path, d, flags_cleared, 0);
    char *rep, want[64];
    assert_int_equal(fsck_report(m->path, FS_CHECK_NO, &rep), FSCK_EXIT_UNCORRECTED);
    snprintf(want, sizeof(want), "inode %" PRIu64 ": bad checksum", e);
    assert_non_null(strstr(rep, want));
    free(rep);
    assert_int_equal(fsck_report(m->path, FS_CHECK_YES, &rep), FSCK_EXIT_CORRECTED);
    snprintf(want, sizeof(want), "inode %" PRIu64 ": 1 damaged field reset", d);
    assert_non_null(strstr(rep, want));
    free(rep);
    assert_int_equal(fsck_report(m->path, FS_CHECK_NO, NULL), FSCK_EXIT_OK);
    img_mount(m);
    struct mmapfs_disk_inode after_e = record(m->fs, e), after_d = record(m->fs, d);
    assert_int_equal(after_e.flags, MMAPFS_INODE_EXTENTS);
    assert_int_equal(after_d.flags, MMAPFS_INODE_INLINE_DATA);
    assert_memory_equal(after_e.inline_area, before_e.inline_area, sizeof(after_e.inline_area));
    assert_memory_equal(after_d.inline_area, before_d.inline_area, sizeof(after_d.inline_area));
    read_expect(m->fs, e, BS, buf, BS);
    read_expect(m->fs, d, 0, "bytes", 5);
    img_unmount_check(m);
}

static void inline_tail_garbage(struct mmapfs_disk_inode *di)
{
    memcpy(di->inline_area + 20, "stale", 5);
}

/* Bytes of the inline area past the size must be zero (docs/FORMAT.md
 * §6): fsck -n reports them, -y zeroes them and keeps the data, so a file
 * that grows within the area reads zeros there, not the stale bytes. */
static void test_fsck_inline_tail(void **state)
{
    struct img *m = *state;
    uint64_t t = mkfile(m->fs, ROOT, "t");
    write_all(m->fs, t, 0, "tiny", 4);
    img_unmount(m);
    img_poke_inode(m->path, t, inline_tail_garbage);
    img_mount(m);           /* the mount refuses the record rather than show them */
    uint8_t b[8];
    assert_int_equal(fs_read(m->fs, t, 0, b, sizeof(b)), -EUCLEAN);
    img_unmount(m);
    char *rep, want[96];
    snprintf(want, sizeof(want), "inode %" PRIu64 ": inline data past its size 4 not zero", t);
    assert_int_equal(fsck_report(m->path, FS_CHECK_NO, &rep), FSCK_EXIT_UNCORRECTED);
    assert_non_null(strstr(rep, want));
    free(rep);
    assert_int_equal(fsck_report(m->path, FS_CHECK_YES, &rep), FSCK_EXIT_CORRECTED);
    assert_non_null(strstr(rep, "1 inline data tails zeroed"));
    free(rep);
    assert_int_equal(fsck_report(m->path, FS_CHECK_NO, NULL), FSCK_EXIT_OK);
    img_mount(m);
    set_size(m->fs, t, 30);
    uint8_t want_data[30] = "tiny";
    read_expect(m->fs, t, 0, want_data, sizeof(want_data));
    img_unmount_check(m);
}

static void size_plus_4(struct mmapfs_disk_inode *di)
{
    di->size += 4;
}

/* A symlink target with a NUL byte inside its size (docs/FORMAT.md §6:
 * no NUL), in the inode and in a block: readlink(2) would end it at the
 * NUL, so st_size would not be the target's length. fsck -n reports it,
 * -y cuts the size at the NUL (then clean) and the target stays. */
static void test_fsck_symlink_nul(void **state)
{
    struct img *m = *state;
    char target[200], got[256];
    uint64_t s, l;
    make_symlinks(m, target, &s, &l);
    img_unmount(m);
    img_poke_inode(m->path, s, size_plus_4);      /* the 4 bytes past it are 0 */
    img_poke_inode(m->path, l, size_plus_4);
    char *rep, want[96];
    assert_int_equal(fsck_report(m->path, FS_CHECK_NO, &rep), FSCK_EXIT_UNCORRECTED);
    snprintf(want, sizeof(want), "inode %" PRIu64 ": symlink target of 10 bytes has a NUL "
             "byte at 6", s);
    assert_non_null(strstr(rep, want));
    snprintf(want, sizeof(want), "inode %" PRIu64 ": symlink target of 203 bytes has a NUL "
             "byte at 199", l);
    assert_non_null(strstr(rep, want));
    free(rep);
    assert_true(fsck_report(m->path, FS_CHECK_YES, NULL) & FSCK_EXIT_CORRECTED);
    assert_int_equal(fsck_report(m->path, FS_CHECK_NO, NULL), FSCK_EXIT_OK);
    img_mount(m);
    assert_int_equal(attr(m->fs, s).size, 6);
    assert_int_equal(fs_readlink(m->fs, s, got, sizeof(got)), 6);
    assert_memory_equal(got, "../a/b", 6);
    assert_int_equal(attr(m->fs, l).size, 199);
    assert_int_equal(fs_readlink(m->fs, l, got, sizeof(got)), 199);
    assert_memory_equal(got, target, 199);
    img_unmount_check(m);
}

/* The two files of the damaged-record tests: "extents" (3 blocks, inline
 * extents) and "inline" (inline data), and what they hold. */
struct two_files {
    uint64_t ext, inl;
    char big[3 * 4096];
    char small[13];
};

static void two_files_make(struct fs *fs, struct two_files *t)
{
    for (size_t i = 0; i < sizeof(t->big); i++)
        t->big[i] = (char)(i % 251 + 1);
    memcpy(t->small, "inline bytes", sizeof(t->small));
    t->ext = mkfile(fs, ROOT, "extents");
    t->inl = mkfile(fs, ROOT, "inline");
    write_all(fs, t->ext, 0, t->big, sizeof(t->big));
    write_all(fs, t->inl, 0, t->small, sizeof(t->small));
}

/* The unmounted image: fsck -y corrects it, -n then finds it clean; it is
 * mounted and both files read back whole. */
static void two_files_repaired(struct img *m, const struct two_files *t)
{
    char buf[sizeof(t->big)];
    struct fs_check_options co = { .mode = FS_CHECK_YES, .force = 1 };
    assert_int_equal(fs_check(m->path, &co, stderr), FSCK_EXIT_CORRECTED);
    img_check(m);
    img_mount(m);
    assert_int_equal(lookup(m->fs, ROOT, "extents"), (int64_t)t->ext);
    assert_int_equal(lookup(m->fs, ROOT, "inline"), (int64_t)t->inl);
    assert_int_equal(fs_read(m->fs, t->ext, 0, buf, sizeof(t->big)), (ssize_t)sizeof(t->big));
    assert_memory_equal(buf, t->big, sizeof(t->big));
    assert_int_equal(fs_read(m->fs, t->inl, 0, buf, sizeof(t->small)),
                     (ssize_t)sizeof(t->small));
    assert_memory_equal(buf, t->small, sizeof(t->small));
}

/* Damages both files' records with edit (checksums recomputed), then
 * two_files_repaired. */
static void two_files_damaged(struct img *m, const struct two_files *t,
                              void (*edit)(struct mmapfs_disk_inode *))
{
    img_poke_inode(m->path, t->ext, edit);
    img_poke_inode(m->path, t->inl, edit);
    two_files_repaired(m, t);
}

static uint32_t poke_mode;

static void edit_mode(struct mmapfs_disk_inode *di)
{
    di->mode = poke_mode | (di->mode & 07777);
}

/* A file whose mode's type was damaged (checksum valid) into a type that
 * has no data, or into no type at all: its inline extents or inline data
 * say it is a regular file, and fsck -y makes it one again, content and
 * all. It used to drop the inline area as flags not valid for the type
 * (the data lost), or clear the inode (an invalid type). */
static void test_mode_damaged(void **state)
{
    struct img *m = *state;
    static const uint32_t modes[] = { S_IFDIR, S_IFCHR, S_IFIFO, S_IFSOCK, 0170000, 0 };
    struct two_files t;
    two_files_make(m->fs, &t);
    img_unmount_check(m);
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        poke_mode = modes[i];
        two_files_damaged(m, &t, edit_mode);
        assert_int_equal(attr(m->fs, t.ext).mode, S_IFREG | 0644);
        img_unmount(m);
    }
    /* a symlink of 12 KiB over three blocks: a file (a 13-byte file made
     * a symlink is one, as far as anyone can tell) */
    poke_mode = S_IFLNK;
    img_poke_inode(m->path, t.ext, edit_mode);
    two_files_repaired(m, &t);
    assert_int_equal(attr(m->fs, t.ext).mode, S_IFREG | 0644);
}

static uint64_t poke_root;

static void edit_tree_root(struct mmapfs_disk_inode *di)
{
    di->tree_root = poke_root;
}

/* A file with inline extents or inline data whose tree root field was
 * damaged (checksum valid): fsck -y drops the stray pointer and keeps the
 * inline content. It used to drop the flags and the inline area instead
 * ("flags not valid here ... tree root"), and the file's data with them. */
static void test_tree_root_damaged(void **state)
{
    struct img *m = *state;
    struct two_files t;
    two_files_make(m->fs, &t);
    uint64_t dir = mkdirectory(m->fs, ROOT, "dir");
    mkfile(m->fs, dir, "x");                    /* dir gets an index: another's node */
    struct mmapfs_disk_inode ddi;
    jnl_lock(m->fs->jnl);
    assert_int_equal(fs_inode_get(m->fs, dir, &ddi), 0);
    jnl_unlock(m->fs->jnl);
    assert_true(ddi.tree_root != 0);
    uint64_t roots[] = { 1, ddi.tree_root, m->fs->data_start - 1, m->fs->block_count + 7 };
    img_unmount_check(m);
    for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
        poke_root = roots[i];
        two_files_damaged(m, &t, edit_tree_root);
        assert_int_equal(lookup(m->fs, ROOT, "dir"), (int64_t)dir);
        img_unmount(m);
    }
    img_mount(m);
}

static uint32_t poke_flags;

static void edit_flags(struct mmapfs_disk_inode *di)
{
    di->flags = poke_flags == UINT32_MAX ? di->flags ^ MMAPFS_INODE_FLAGS_KNOWN : poke_flags;
}

/* Inline extents and inline data whose flags field was damaged (checksum
 * valid): none, both kinds, the other kind (UINT32_MAX), an unknown bit.
 * fsck -y takes the flags the inline area says and keeps the content. It
 * used to drop the area with unusable flags, to read no flags as an empty
 * file (its blocks then freed as owned by nobody), and to cut the size of
 * an extents file to 60 under INLINE_DATA. */
static void test_flags_damaged(void **state)
{
    struct img *m = *state;
    static const uint32_t flags[] = { 0, MMAPFS_INODE_FLAGS_KNOWN, UINT32_MAX, 0x4 };
    struct two_files t;
    two_files_make(m->fs, &t);
    img_unmount_check(m);
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        poke_flags = flags[i];
        two_files_damaged(m, &t, edit_flags);
        assert_int_equal(attr(m->fs, t.ext).size, sizeof(t.big));
        img_unmount(m);
    }
    img_mount(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tiny_file, img_setup, img_teardown),
        cmocka_unit_test_setup_teardown(test_inline_to_block, img_setup, img_teardown),
        cmocka_unit_test_setup_teardown(test_inline_truncate, img_setup, img_teardown),
        cmocka_unit_test_setup_teardown(test_symlinks, img_setup, img_teardown),
        cmocka_unit_test_setup_teardown(test_extents_inode_tree_inode, img_setup,
                                        img_teardown),
        cmocka_unit_test_setup_teardown(test_punch_hole_space, img_setup, img_teardown),
        cmocka_unit_test_setup_teardown(test_release, img_setup, img_teardown),
        cmocka_unit_test_setup_teardown(test_old_format, img_setup, img_teardown),
        cmocka_unit_test_setup_teardown(test_mode_damaged, img_setup, img_teardown),
        cmocka_unit_test_setup_teardown(test_tree_root_damaged, img_setup, img_teardown),
        cmocka_unit_test_setup_teardown(test_flags_damaged, img_setup, img_teardown),
        cmocka_unit_test_setup_teardown(test_fsck_inline, img_setup, img_teardown),
        cmocka_unit_test_setup_teardown(test_fsck_inline_flags_flipped, img_setup, img_teardown),
        cmocka_unit_test_setup_teardown(test_fsck_inline_tail, img_setup, img_teardown),
        cmocka_unit_test_setup_teardown(test_fsck_symlink_nul, img_setup, img_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
