/*
 * test_mkfs — fs_format (src/fs/mkfs.c), fs_mkfs_geometry and the signature
 * probe (src/fs/probe.c): layout, bitmaps, root and lost+found, journal
 * headers, size limits, refusal to overwrite known signatures.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/btree.h"
#include "fs/format.h"
#include "fs/fs.h"
#include "fs/fs_i.h"
#include "fs/mkfs.h"
#include "journal/journal.h"
#include "mmapfs/mmio.h"
#include "util/crc32c.h"

#define MiB (1ull << 20)

/* A temporary image file of 'size' bytes (sparse), opened through the engine. */
struct img {
    char path[64];
    struct mmio *io;
};

static void img_open(struct img *m, uint64_t size)
{
    strcpy(m->path, "/tmp/test_mkfs.XXXXXX");
    int fd = mkstemp(m->path);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    close(fd);
    assert_int_equal(mmio_open(&m->io, m->path, 0, 0, NULL), 0);
}

static void img_close(struct img *m)
{
    if (m->io)
        mmio_close(m->io);
    m->io = NULL;
    unlink(m->path);
}

static const uint8_t *blk_ptr(struct img *m, uint64_t blk)
{
    const uint8_t *p = mmio_ptr(m->io, blk * MMAPFS_BLOCK_SIZE);
    assert_non_null(p);
    return p;
}

static int bit(const uint8_t *map, uint64_t i)
{
    return (map[i / 8] >> (i % 8)) & 1;
}

static uint32_t inode_sum(uint64_t ino, const struct mmapfs_disk_inode *di)
{
    uint64_t le = htole64(ino);
    return mfs_crc32c(mfs_crc32c(0, &le, 8), di, offsetof(struct mmapfs_disk_inode, checksum));
}

/* Read-only store over the image, for bt_lookup on the root directory. */
static const void *ro_read(void *ctx, uint64_t blk)
{
    struct img *m = ctx;
    return mmio_ptr(m->io, blk * MMAPFS_BLOCK_SIZE);
}

static void *ro_write(void *ctx, uint64_t blk)
{
    (void)ctx;
    (void)blk;
    return NULL;
}

static int ro_alloc(void *ctx, uint64_t goal, uint64_t *blk, void **out)
{
    (void)ctx;
    (void)goal;
    (void)blk;
    (void)out;
    return -ENOSPC;
}

static void ro_free(void *ctx, uint64_t blk)
{
    (void)ctx;
    (void)blk;
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_format_layout(void **state)
{
    (void)state;
    struct img m;
    img_open(&m, 64 * MiB + 1000);          /* not a multiple of 4096 */
    struct fs_format_options opt = { .label = "testvol" };
    assert_int_equal(fs_format(m.io, &opt), 0);

    struct mmapfs_disk_superblock sb;
    memcpy(&sb, blk_ptr(&m, 0), sizeof(sb));
    char msg[256];
    assert_int_equal(fs_super_validate(&sb, mmio_size(m.io), msg, sizeof(msg)), 0);
    assert_memory_equal(sb.magic, MMAPFS_MAGIC, 8);
    assert_int_equal(sb.checksum, mfs_crc32c(0, &sb, 4092));
    assert_int_equal(sb.block_count, 64 * MiB / 4096);
    assert_int_equal(sb.inode_count, 64 * MiB / 16384);
    assert_int_equal(sb.backup_block, 1);           /* backup superblock */
    assert_int_equal(sb.journal_start, 2);
    assert_int_equal(sb.journal_blocks, 1026);      /* 16384/64 = 256, clamped up */
    assert_int_equal(sb.block_bitmap_start, 1028);
    assert_int_equal(sb.block_bitmap_blocks, 1);
    /* room to grow the bitmap to 64 x 64 MiB = 4 GiB: 32 blocks */
    assert_int_equal(sb.inode_bitmap_start, 1028 + 32);
    assert_int_equal(sb.inode_bitmap_blocks, 1);
    assert_int_equal(sb.inode_table_start, 1061);
    assert_int_equal(sb.inode_table_blocks, 4096 / 16);
    assert_int_equal(sb.data_start, 1061 + 256);
    /* the backup is a byte copy of the superblock */
    assert_memory_equal(blk_ptr(&m, 1), &sb, sizeof(sb));
    assert_int_equal(sb.root_ino, 1);
    assert_int_equal(sb.orphan_head, 0);
    assert_int_equal(sb.state, MMAPFS_STATE_CLEAN);
    assert_int_equal(sb.free_blocks, sb.block_count - sb.data_start - 1);
    assert_int_equal(sb.free_inodes, sb.inode_count - 2);
    assert_int_equal(sb.next_generation, 3);
    assert_int_equal(sb.feature_compat, MMAPFS_FEATURE_COMPAT_BACKUP_SB);
    assert_int_equal(sb.feature_ro_compat, 0);
    assert_int_equal(sb.feature_incompat,
                     MMAPFS_FEATURE_INCOMPAT_INODE_DATA | MMAPFS_FEATURE_INCOMPAT_INODE_XATTR);
    assert_string_equal(sb.label, "testvol");
    assert_true(sb.mkfs_time > 0);
    static const uint8_t zero_uuid[16];
    assert_memory_not_equal(sb.uuid, zero_uuid, 16);

    struct mkfs_geometry g;
    assert_int_equal(fs_mkfs_geometry(mmio_size(m.io), &opt, &g), 0);
    assert_int_equal(g.data_start, sb.data_start);
    assert_int_equal(g.used_blocks, sb.data_start + 1);

    /* block bitmap: metadata + root leaf used, the rest free */
    const uint8_t *bb = blk_ptr(&m, sb.block_bitmap_start);
    for (uint64_t b = 0; b < sb.block_count; b++)
        assert_int_equal(bit(bb, b), b <= sb.data_start);
    for (uint64_t b = sb.block_count; b < 32768; b++)
        assert_int_equal(bit(bb, b), 0);
    /* inode bitmap: 1 and 2 */
    const uint8_t *ib = blk_ptr(&m, sb.inode_bitmap_start);
    for (uint64_t i = 0; i < 32768; i++)
        assert_int_equal(bit(ib, i), i < 2);

    /* root and lost+found */
    struct mmapfs_disk_inode root, lf;
    memcpy(&root, blk_ptr(&m, sb.inode_table_start), sizeof(root));
    memcpy(&lf, blk_ptr(&m, sb.inode_table_start) + 256, sizeof(lf));
    assert_int_equal(root.checksum, inode_sum(1, &root));
    assert_int_equal(lf.checksum, inode_sum(2, &lf));
    assert_int_equal(root.mode, S_IFDIR | 0755);
    assert_int_equal(root.nlink, 3);
    assert_int_equal(root.size, 1);
    assert_int_equal(root.blocks, 1);
    assert_int_equal(root.parent, 1);
    assert_int_equal(root.tree_root, sb.data_start);
    assert_int_equal(root.generation, 1);
    assert_int_equal(lf.mode, S_IFDIR | 0700);
    assert_int_equal(lf.nlink, 2);
    assert_int_equal(lf.size, 0);
    assert_int_equal(lf.blocks, 0);
    assert_int_equal(lf.parent, 1);
    assert_int_equal(lf.tree_root, 0);
    assert_int_equal(lf.generation, 2);

    /* the root's tree holds exactly lost+found -> 2 */
    const uint8_t *leaf = blk_ptr(&m, root.tree_root);
    const struct mmapfs_disk_btree_header *h = (const void *)leaf;
    assert_int_equal(h->checksum, bt_block_checksum(root.tree_root, leaf));
    struct bt_store st = { .ctx = &m, .read = ro_read, .write = ro_write,
                           .alloc = ro_alloc, .free = ro_free };
    struct bt_tree t = { .store = &st, .root = root.tree_root, .owner = 1,
                         .type = MMAPFS_TREE_DIR };
    uint8_t val[300];
    size_t len = sizeof(val);
    uint64_t key = mmapfs_name_hash("lost+found", 10) << 8;
    assert_int_equal(bt_lookup(&t, key, val, &len), 0);
    assert_int_equal(len, 20);
    struct mmapfs_disk_dirent de;
    memcpy(&de, val, sizeof(de));
    assert_int_equal(de.ino, 2);
    assert_int_equal(de.type, DT_DIR);
    assert_int_equal(de.name_len, 10);
    assert_memory_equal(val + 10, "lost+found", 10);
    uint64_t nodes = 0;
    assert_int_equal(bt_count_nodes(&t, &nodes), 0);
    assert_int_equal(nodes, 1);

    /* the journal is valid and empty */
    struct jnl_geometry jg = { sb.journal_start, sb.journal_blocks, sb.block_count };
    uint64_t replayed = 99;
    assert_int_equal(jnl_recover(m.io, &jg, 1, &replayed), 0);
    assert_int_equal(replayed, 0);
    img_close(&m);
}

static void test_format_options(void **state)
{
    (void)state;
    struct img m;
    img_open(&m, 256 * MiB);
    /* use only a prefix, explicit inode count (rounded up to 16) and journal */
    struct fs_format_options opt = { .size = 100 * MiB + 123, .inodes = 1000,
                                     .journal_blocks = 2048 };
    assert_int_equal(fs_format(m.io, &opt), 0);
    const struct mmapfs_disk_superblock *sb = (const void *)blk_ptr(&m, 0);
    char msg[256];
    assert_int_equal(fs_super_validate(sb, mmio_size(m.io), msg, sizeof(msg)), 0);
    assert_int_equal(sb->block_count, 100 * MiB / 4096);
    assert_int_equal(sb->inode_count, 1008);
    assert_int_equal(sb->journal_blocks, 2048);
    assert_int_equal(sb->label[0], 0);
    uint8_t uuid1[16];
    memcpy(uuid1, sb->uuid, 16);

    /* default journal for a large filesystem: size/64 clamped at 32768 */
    struct mkfs_geometry g;
    /* -N 1 (mkfs.mmapfs accepts 1 or more): one full inode table block */
    struct fs_format_options one = { .inodes = 1 };
    assert_int_equal(fs_mkfs_geometry(64 * MiB, &one, &g), 0);
    assert_int_equal(g.inode_count, 16);
    assert_int_equal(fs_mkfs_geometry(1ull << 40, NULL, &g), 0);
    assert_int_equal(g.journal_blocks, 32768);
    assert_int_equal(g.block_bitmap_blocks, (1ull << 28) / 32768);
    assert_int_equal(fs_mkfs_geometry(1ull << 30, NULL, &g), 0);
    assert_int_equal(g.journal_blocks, (1ull << 18) / 64);
    /* the default inode count (one per 16 KiB) is capped at the most
     * there can be, as mmapfs-resize caps it: a filesystem larger than
     * 64 TiB was refused with "-N and -J do not fit", neither given */
    assert_int_equal(fs_mkfs_geometry(100ull << 40, NULL, &g), 0);
    assert_int_equal(g.inode_count, MKFS_MAX_INODES);
    /* an explicit -N larger than that is still refused */
    struct fs_format_options many = { .inodes = MKFS_MAX_INODES + 1 };
    assert_int_equal(fs_mkfs_geometry(100ull << 40, &many, &g), -EINVAL);

    /* a second format replaces the first (new uuid) */
    assert_int_equal(fs_format(m.io, NULL), 0);
    assert_int_equal(sb->block_count, 256 * MiB / 4096);
    assert_memory_not_equal(sb->uuid, uuid1, 16);
    img_close(&m);
}

static void test_format_too_small(void **state)
{
    (void)state;
    struct img m;
    img_open(&m, 32 * MiB);
    struct fs_format_options opt = { 0 };

    opt.size = 16 * MiB - 4096;
    assert_int_equal(fs_format(m.io, &opt), -EINVAL);
    opt.size = 64 * MiB;                    /* more than the image */
    assert_int_equal(fs_format(m.io, &opt), -EINVAL);
    opt.size = 0;
    opt.journal_blocks = 1025;              /* below the journal's minimum */
    assert_int_equal(fs_format(m.io, &opt), -EINVAL);
    opt.journal_blocks = 32 * MiB / 4096;   /* more than half */
    assert_int_equal(fs_format(m.io, &opt), -EINVAL);
    opt.journal_blocks = 0;
    opt.inodes = 1ull << 20;                /* 64 MiB of inode table */
    assert_int_equal(fs_format(m.io, &opt), -EINVAL);
    opt.inodes = 0;
    opt.label = "0123456789012345678901234567890123456789012345678901234567890123"; /* 64 */
    assert_int_equal(fs_format(m.io, &opt), -EINVAL);
    /* nothing was written: block 0 is still zero */
    static const uint8_t zero[4096];
    assert_memory_equal(blk_ptr(&m, 0), zero, 4096);

    opt.label = NULL;
    opt.size = 16 * MiB;                    /* the minimum works */
    assert_int_equal(fs_format(m.io, &opt), 0);
    img_close(&m);

    img_open(&m, 8 * MiB);
    assert_int_equal(fs_format(m.io, NULL), -EINVAL);
    img_close(&m);
}

/* ---- signature probe ------------------------------------------------------------------ */

static void put(uint8_t *buf, size_t off, const void *magic, size_t len)
{
    memcpy(buf + off, magic, len);
}

static void expect_probe(const uint8_t *buf, size_t len, const char *want)
{
    char what[128] = "";
    int r = fs_mkfs_probe_buffer(buf, len, what, sizeof(what));
    if (!want) {
        assert_int_equal(r, 0);
        return;
    }
    assert_int_equal(r, 1);
    assert_non_null(strstr(what, want));
}

static void test_probe_signatures(void **state)
{
    (void)state;
    uint8_t *buf = calloc(1, MKFS_PROBE_BYTES);
    assert_non_null(buf);
    struct { size_t off; const char *magic; size_t len; const char *want; } cases[] = {
        { 0, MMAPFS_MAGIC, 8, "mmapfs" },
        { 1080, "\x53\xef", 2, "ext2/ext3/ext4" },
        { 0, "XFSB", 4, "XFS" },
        { 65600, "_BHRfS_M", 8, "btrfs" },
        { 4086, "SWAPSPACE2", 10, "swap" },
        { 4086, "SWAP-SPACE", 10, "swap" },
        { 32769, "CD001", 5, "ISO 9660" },
        { 0, "LUKS\xba\xbe", 6, "LUKS" },
        { 0, "hsqs", 4, "squashfs" },
        { 512, "EFI PART", 8, "GPT" },
        { 3, "NTFS    ", 8, "NTFS" },
        { 536, "LVM2 001", 8, "LVM2" },
    };
    expect_probe(buf, MKFS_PROBE_BYTES, NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(buf, 0, MKFS_PROBE_BYTES);
        put(buf, cases[i].off, cases[i].magic, cases[i].len);
        expect_probe(buf, MKFS_PROBE_BYTES, cases[i].want);
        /* a head too short to hold the signature does not match */
        expect_probe(buf, cases[i].off + cases[i].len - 1, NULL);
    }
    /* FAT12/16 and FAT32 boot sectors; a bare MBR */
    memset(buf, 0, MKFS_PROBE_BYTES);
    put(buf, 54, "FAT16   ", 8);
    expect_probe(buf, MKFS_PROBE_BYTES, NULL);      /* no 0x55AA: nothing */
    put(buf, 510, "\x55\xaa", 2);
    expect_probe(buf, MKFS_PROBE_BYTES, "FAT");
    memset(buf, 0, MKFS_PROBE_BYTES);
    put(buf, 82, "FAT32   ", 8);
    put(buf, 510, "\x55\xaa", 2);
    expect_probe(buf, MKFS_PROBE_BYTES, "FAT");
    memset(buf, 0, MKFS_PROBE_BYTES);
    put(buf, 510, "\x55\xaa", 2);
    expect_probe(buf, MKFS_PROBE_BYTES, "MBR");
    /* random-looking data is not a signature */
    for (size_t i = 0; i < MKFS_PROBE_BYTES; i++)
        buf[i] = (uint8_t)(i * 2654435761u >> 13);
    buf[510] = 0;
    buf[1080] = 0;
    expect_probe(buf, MKFS_PROBE_BYTES, NULL);
    expect_probe(buf, 0, NULL);
    free(buf);
}

static void test_probe_image(void **state)
{
    (void)state;
    struct img m;
    img_open(&m, 32 * MiB);
    char what[128];
    assert_int_equal(fs_mkfs_probe(m.io, what, sizeof(what)), 0);
    assert_int_equal(fs_format(m.io, NULL), 0);
    assert_int_equal(fs_mkfs_probe(m.io, what, sizeof(what)), 1);
    assert_non_null(strstr(what, "mmapfs"));
    img_close(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_layout),
        cmocka_unit_test(test_format_options),
        cmocka_unit_test(test_format_too_small),
        cmocka_unit_test(test_probe_signatures),
        cmocka_unit_test(test_probe_image),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
