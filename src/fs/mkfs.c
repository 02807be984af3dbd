/*
 * mkfs.c — fs_format(): writes a new, empty mmapfs (format version 1) onto
 * an opened engine: superblock, journal headers, bitmaps, the root
 * directory (one entry, "lost+found") and lost+found itself.
 *
 * Layout (docs/FORMAT.md, src/fs/format.h):
 *   block 0                  superblock
 *   [block 1                 MMP block, with MMP]
 *   block 1 (2 with MMP)     backup superblock
 *   journal_start ..         journal (jnl_format writes its headers)
 *   block bitmap (+ room to grow it: mmapfs-resize), inode bitmap, inode table
 *   data_start               the root directory's single B+tree leaf
 *   data_start + 1 ..        free
 *
 * Order of writes, so that a half-made image is never recognised: block 0
 * and the blocks a backup superblock may occupy are zeroed and synced
 * first, then everything else (the backup last) is written and synced,
 * then the superblock, then a last sync. Data blocks and the inode table
 * are not zeroed (unused inode records are undefined), so formatting a
 * large device is fast.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include "fs/format.h"
#include "fs/fs_i.h"
#include "fs/inode.h"
#include "fs/mkfs.h"
#include "fs/mmp.h"
#include "fs/super_backup.h"
#include "journal/journal.h"
#include "util/crc32c.h"

#define LOST_FOUND_NAME "lost+found"
#define LOST_FOUND_INO  2u

/* ---- geometry -------------------------------------------------------------- */

static uint64_t div_round_up(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

/* Works out the layout for a filesystem of 'bytes' bytes with the given
 * options (0 = defaults). Pure computation, shared with the tests and the
 * mkfs tool's summary. -EINVAL if the options cannot be satisfied. */
int fs_mkfs_geometry(uint64_t bytes, const struct fs_format_options *opt,
                  struct mkfs_geometry *g)
{
    memset(g, 0, sizeof(*g));
    bytes &= ~(uint64_t)(MMAPFS_BLOCK_SIZE - 1);
    if (bytes < MKFS_MIN_BYTES)
        return -EINVAL;
    g->block_count = bytes / MMAPFS_BLOCK_SIZE;

    uint64_t jb = opt ? opt->journal_blocks : 0;
    if (jb == 0) {
        jb = g->block_count / 64;
        if (jb < MKFS_MIN_JOURNAL_BLOCKS)
            jb = MKFS_MIN_JOURNAL_BLOCKS;
        if (jb > MKFS_DEFAULT_MAX_JOURNAL_BLOCKS)
            jb = MKFS_DEFAULT_MAX_JOURNAL_BLOCKS;
    }
    if (jb < MKFS_MIN_JOURNAL_BLOCKS || jb > g->block_count / 2)
        return -EINVAL;
    if (opt && opt->mmp && opt->mmp_interval > MMAPFS_MMP_INTERVAL_MAX)
        return -EINVAL;
    /* with MMP, block 1 is the MMP block; the backup superblock follows,
     * then the journal */
    g->mmp_block = opt && opt->mmp ? 1 : 0;
    g->backup_block = g->mmp_block + 1;
    g->journal_start = g->backup_block + 1;
    g->journal_blocks = jb;

    uint64_t inodes = opt ? opt->inodes : 0;
    if (inodes == 0) {
        inodes = bytes / MKFS_BYTES_PER_INODE;
        if (inodes < MKFS_MIN_INODES)
            inodes = MKFS_MIN_INODES;
        /* past 64 TiB one per 16 KiB is more than inode numbers allow: the
         * default is the most there can be (as fs_grow caps it), not a
         * refusal of a size the user may give */
        if (inodes > MKFS_MAX_INODES)
            inodes = MKFS_MAX_INODES;
    }
    if (inodes > MKFS_MAX_INODES)
        return -EINVAL;
    /* fill the last inode table block: its records cost nothing more (so
     * at least 16: any count from 1 is enough for the root and lost+found;
     * -N 1 used to be refused as not fitting the image) */
    inodes = div_round_up(inodes, MMAPFS_INODES_PER_BLOCK) * MMAPFS_INODES_PER_BLOCK;
    if (inodes > MKFS_MAX_INODES)
        inodes = MKFS_MAX_INODES;
    g->inode_count = inodes;

    const uint64_t bits_per_block = MMAPFS_BLOCK_SIZE * 8ull;
    g->block_bitmap_start = g->journal_start + g->journal_blocks;
    g->block_bitmap_blocks = div_round_up(g->block_count, bits_per_block);
    g->inode_bitmap_start = g->block_bitmap_start + fs_mkfs_bitmap_room(g->block_count);
    g->inode_bitmap_blocks = div_round_up(g->inode_count, bits_per_block);
    g->inode_table_start = g->inode_bitmap_start + g->inode_bitmap_blocks;
    g->inode_table_blocks = div_round_up(g->inode_count, MMAPFS_INODES_PER_BLOCK);
    g->data_start = g->inode_table_start + g->inode_table_blocks;
    if (g->data_start >= g->block_count ||
        g->block_count - g->data_start < MKFS_MIN_DATA_BLOCKS)
        return -EINVAL;

    g->used_blocks = g->data_start + 1;       /* + root directory leaf */
    g->root_dir_block = g->data_start;
    return 0;
}

uint64_t fs_mkfs_bitmap_room(uint64_t block_count)
{
    /* room after the bitmap for growing the filesystem in place
     * (mmapfs-resize) to MKFS_GROW_FACTOR times its size, at most 16 TiB:
     * 1 block per 128 MiB of the grown size, 0.2 % of the image */
    const uint64_t bits_per_block = MMAPFS_BLOCK_SIZE * 8ull;
    uint64_t grown = block_count * MKFS_GROW_FACTOR;
    if (grown > MKFS_GROW_MAX_BLOCKS)
        grown = MKFS_GROW_MAX_BLOCKS;
    uint64_t room = div_round_up(grown, bits_per_block);
    uint64_t need = div_round_up(block_count, bits_per_block);
    return room > need ? room : need;
}

/* ---- building blocks ---------------------------------------------------------- */

/* Fills a directory inode record. */
static void make_dir_inode(struct mmapfs_disk_inode *di, uint64_t ino, uint32_t perm,
                           uint32_t nlink, uint64_t parent, uint64_t entries,
                           uint64_t tree_root, uint64_t generation,
                           const struct timespec *now)
{
    memset(di, 0, sizeof(*di));
    di->mode = S_IFDIR | perm;
    di->nlink = nlink;
    di->size = entries;
    di->blocks = tree_root ? 1 : 0;
    di->atime_sec = di->mtime_sec = di->ctime_sec = di->crtime_sec = (uint64_t)now->tv_sec;
    di->atime_nsec = di->mtime_nsec = di->ctime_nsec = di->crtime_nsec = (uint32_t)now->tv_nsec;
    di->generation = generation;
    di->tree_root = tree_root;
    di->parent = parent;
    di->checksum = fs_inode_checksum(ino, di);
}

/* Builds the root directory's only B+tree node: a leaf with one item,
 * "lost+found" -> inode 2. */
static void make_root_leaf(uint8_t *block, uint64_t blk)
{
    memset(block, 0, MMAPFS_BLOCK_SIZE);
    size_t name_len = strlen(LOST_FOUND_NAME);
    size_t value_len = sizeof(struct mmapfs_disk_dirent) + name_len;
    size_t value_off = MMAPFS_BLOCK_SIZE - value_len;

    struct mmapfs_disk_btree_header *h = (void *)block;
    h->magic = MMAPFS_BTREE_MAGIC;
    h->owner = MMAPFS_ROOT_INO;
    h->level = 0;
    h->nitems = 1;
    h->type = MMAPFS_TREE_DIR;
    h->value_start = (uint16_t)value_off;

    struct mmapfs_disk_btree_item item = {
        .key = mmapfs_name_hash(LOST_FOUND_NAME, name_len) << 8,
        .value_off = (uint16_t)value_off,
        .value_len = (uint16_t)value_len,
    };
    memcpy(block + sizeof(*h), &item, sizeof(item));

    struct mmapfs_disk_dirent de = {
        .ino = LOST_FOUND_INO, .type = DT_DIR, .name_len = (uint8_t)name_len,
    };
    memcpy(block + value_off, &de, sizeof(de));
    memcpy(block + value_off + sizeof(de), LOST_FOUND_NAME, name_len);

    h->checksum = bt_block_checksum(blk, block);
}

/* Writes 'count' bitmap blocks starting at block 'start' with the first
 * 'set' bits set and every other bit (including padding past the end of
 * the bitmap) cleared. */
static int write_bitmap(struct mmio *io, uint64_t start, uint64_t count, uint64_t set)
{
    enum { CHUNK_BLOCKS = 64 };
    uint8_t *buf = malloc((size_t)CHUNK_BLOCKS * MMAPFS_BLOCK_SIZE);
    if (!buf)
        return -ENOMEM;
    const uint64_t bits_per_block = MMAPFS_BLOCK_SIZE * 8ull;
    int err = 0;
    for (uint64_t done = 0; done < count && !err;) {
        uint64_t n = count - done < CHUNK_BLOCKS ? count - done : CHUNK_BLOCKS;
        memset(buf, 0, (size_t)n * MMAPFS_BLOCK_SIZE);
        uint64_t first_bit = done * bits_per_block;
        uint64_t end_bit = first_bit + n * bits_per_block;
        for (uint64_t b = first_bit; b < set && b < end_bit; b++)
            buf[(b - first_bit) / 8] |= (uint8_t)(1u << (b % 8));
        err = mmio_write_at(io, (start + done) * MMAPFS_BLOCK_SIZE, buf,
                            (size_t)n * MMAPFS_BLOCK_SIZE);
        done += n;
    }
    free(buf);
    return err;
}

/* Fills the superblock for geometry g (checksum included). */
static int make_superblock(struct mmapfs_disk_superblock *sb, const struct mkfs_geometry *g,
                           const struct fs_format_options *opt, const struct timespec *now)
{
    memset(sb, 0, sizeof(*sb));
    memcpy(sb->magic, MMAPFS_MAGIC, sizeof(sb->magic));
    sb->format_version = MMAPFS_FORMAT_VERSION;
    sb->block_size = MMAPFS_BLOCK_SIZE;
    sb->block_count = g->block_count;
    sb->inode_count = g->inode_count;
    sb->journal_start = g->journal_start;
    sb->journal_blocks = g->journal_blocks;
    sb->block_bitmap_start = g->block_bitmap_start;
    sb->block_bitmap_blocks = g->block_bitmap_blocks;
    sb->inode_bitmap_start = g->inode_bitmap_start;
    sb->inode_bitmap_blocks = g->inode_bitmap_blocks;
    sb->inode_table_start = g->inode_table_start;
    sb->inode_table_blocks = g->inode_table_blocks;
    sb->data_start = g->data_start;
    sb->root_ino = MMAPFS_ROOT_INO;
    sb->orphan_head = 0;
    sb->feature_compat = MMAPFS_FEATURE_COMPAT_BACKUP_SB;
    sb->backup_block = g->backup_block;
    sb->next_generation = 3;          /* root has 1, lost+found 2 */
    sb->free_blocks = g->block_count - g->used_blocks;
    sb->free_inodes = g->inode_count - 2;
    sb->state = MMAPFS_STATE_CLEAN;
    if (!opt || !opt->no_inode_data)
        sb->feature_incompat |= MMAPFS_FEATURE_INCOMPAT_INODE_DATA;
    if (!opt || !opt->no_inode_xattr)
        sb->feature_incompat |= MMAPFS_FEATURE_INCOMPAT_INODE_XATTR;
    if (g->mmp_block) {
        sb->feature_incompat |= MMAPFS_FEATURE_INCOMPAT_MMP;
        sb->mmp_block = g->mmp_block;
        sb->mmp_interval = opt->mmp_interval ? opt->mmp_interval
                                             : MMAPFS_MMP_INTERVAL_DEFAULT;
    }
    size_t got = 0;
    while (got < sizeof(sb->uuid)) {
        ssize_t r = getrandom(sb->uuid + got, sizeof(sb->uuid) - got, 0);
        if (r < 0 && errno != EINTR)
            return -errno;
        if (r > 0)
            got += (size_t)r;
    }
    sb->uuid[6] = (uint8_t)((sb->uuid[6] & 0x0f) | 0x40);   /* RFC 4122 version 4 */
    sb->uuid[8] = (uint8_t)((sb->uuid[8] & 0x3f) | 0x80);   /* variant 1 */
    if (opt && opt->label)
        memcpy(sb->label, opt->label, strlen(opt->label));
    sb->mkfs_time = (uint64_t)now->tv_sec;
    sb->write_time = (uint64_t)now->tv_sec;
    fs_super_checksum(sb);
    return 0;
}

/* ---- fs_format ------------------------------------------------------------------ */

int fs_format(struct mmio *io, const struct fs_format_options *opt)
{
    uint64_t bytes = mmio_size(io);
    if (opt && opt->size) {
        if (opt->size > bytes)
            return -EINVAL;
        bytes = opt->size;
    }
    if (opt && opt->label && strlen(opt->label) > MKFS_LABEL_MAX)
        return -EINVAL;

    struct mkfs_geometry g;
    int err = fs_mkfs_geometry(bytes, opt, &g);
    if (err)
        return err;

    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);

    uint8_t *block = calloc(1, MMAPFS_BLOCK_SIZE);
    if (!block)
        return -ENOMEM;

    /* 1. the old superblock and its backup (if any) go away first */
    for (uint64_t b = 0; b <= MMAPFS_BACKUP_SB_LAST && !err; b++)
        err = mmio_write_at(io, b * MMAPFS_BLOCK_SIZE, block, MMAPFS_BLOCK_SIZE);
    if (!err)
        err = mmio_sync(io);
    if (err)
        goto out;

    /* 2. journal headers */
    struct jnl_geometry jg = {
        .journal_start = g.journal_start,
        .journal_blocks = g.journal_blocks,
        .block_count = g.block_count,
    };
    err = jnl_format(io, &jg);
    if (err)
        goto out;

    /* 3. bitmaps: metadata region + root leaf; inodes 1 and 2 */
    err = write_bitmap(io, g.block_bitmap_start, g.block_bitmap_blocks, g.used_blocks);
    if (!err)
        err = write_bitmap(io, g.inode_bitmap_start, g.inode_bitmap_blocks, 2);
    if (err)
        goto out;

    /* 4. root (1) and lost+found (2): the first two records of the table */
    struct mmapfs_disk_inode inodes[2];
    make_dir_inode(&inodes[0], MMAPFS_ROOT_INO, 0755, 3, MMAPFS_ROOT_INO, 1,
                   g.root_dir_block, 1, &now);
    make_dir_inode(&inodes[1], LOST_FOUND_INO, 0700, 2, MMAPFS_ROOT_INO, 0, 0, 2, &now);
    err = mmio_write_at(io, g.inode_table_start * MMAPFS_BLOCK_SIZE, inodes, sizeof(inodes));
    if (err)
        goto out;

    /* 5. root directory leaf */
    make_root_leaf(block, g.root_dir_block);
    err = mmio_write_at(io, g.root_dir_block * MMAPFS_BLOCK_SIZE, block, MMAPFS_BLOCK_SIZE);
    if (err)
        goto out;

    /* 6. the backup superblock, a copy of the one written last */
    struct mmapfs_disk_superblock *sb = (void *)block;
    err = make_superblock(sb, &g, opt, &now);
    if (!err)
        err = mmio_write_at(io, g.backup_block * MMAPFS_BLOCK_SIZE, sb, sizeof(*sb));
    if (!err)
        err = mmio_sync(io);
    if (err)
        goto out;

    /* 7. the MMP block, released (CLEAN) */
    if (g.mmp_block) {
        struct mmapfs_disk_mmp mmp;
        fs_mmp_block_clean(&mmp, opt->mmp_interval ? opt->mmp_interval
                                                : MMAPFS_MMP_INTERVAL_DEFAULT);
        err = mmio_write_at(io, g.mmp_block * MMAPFS_BLOCK_SIZE, &mmp, sizeof(mmp));
        if (err)
            goto out;
    }

    /* 8. superblock last (the same bytes as the backup) */
    err = mmio_write_at(io, 0, sb, sizeof(*sb));
    if (!err)
        err = mmio_sync(io);
out:
    free(block);
    return err;
}

/* ---- an MMP image already on the target ------------------------------------------- */

/* pread of the descriptor in ctx as a super_backup_read_fn. */
static int read_fd(void *ctx, uint64_t off, void *buf, size_t len)
{
    ssize_t r = pread(*(int *)ctx, buf, len, (off_t)off);
    if (r < 0)
        return -errno;
    return (size_t)r == len ? 0 : -EIO;
}

void fs_mkfs_release_mmp(struct mmp *m, int formatted)
{
    fs_mmp_release(m, !formatted);
}

/* The superblock of the mmapfs on the target (fd, bytes long): block 0,
 * or the backup when block 0 is damaged (*valid_home then 0). 1 if
 * found, 0 if the target holds no mmapfs, -errno if it cannot be read. */
static int old_super(int fd, uint64_t bytes, struct mmapfs_disk_superblock *sb,
                     int *valid_home)
{
    uint64_t blk;

    if (bytes < MMAPFS_BLOCK_SIZE)
        return 0;
    int e = read_fd(&fd, 0, sb, sizeof(*sb));
    if (e)
        return e;
    *valid_home = fs_super_validate(sb, bytes, NULL, 0) == 0;
    return *valid_home || fs_super_backup_find(read_fd, &fd, bytes, sb, &blk) == 1;
}

/* See mkfs.h. */
uint64_t fs_mkfs_old_records_until(int fd, uint64_t bytes, uint64_t now)
{
    struct mmapfs_disk_superblock sb;
    int valid;

    if (old_super(fd, bytes, &sb, &valid) != 1)
        return 0;                   /* no mmapfs here */
    /* Every record was created by the time block 0 says it was unmounted
     * cleanly; else (crashed, damaged, only the backup left) by now. */
    uint64_t last = valid && sb.state == MMAPFS_STATE_CLEAN && sb.write_time <= now
                        ? sb.write_time : now;
    return last + 2;
}

int fs_mkfs_claim_mmp(int fd, const char *path, uint64_t bytes, const char *prog, FILE *err,
                   struct mmp **out)
{
    struct mmapfs_disk_superblock sb;
    int valid;

    *out = NULL;
    int e = old_super(fd, bytes, &sb, &valid);
    if (e <= 0)
        return e;                   /* 0: no mmapfs here, nothing holds it */
    if (!(sb.feature_incompat & MMAPFS_FEATURE_INCOMPAT_MMP))
        return 0;
    return fs_mmp_claim(out, path, &sb, MMP_FSCK, prog, err);
}
