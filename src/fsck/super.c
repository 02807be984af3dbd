/*
 * fsck/super.c — loading the superblock, mending one whose checksum is
 * wrong, restoring one from the backup superblock, checking the backup.
 *
 * A superblock that fails its
 * checksum or a rule on a field that locates nothing (root inode, orphan
 * head, state) is mended when everything that locates data checks out: fs_super_validate passes with the checksum recomputed, and the layout
 * is the one mkfs writes (regions back to back from block 1, room to grow
 * the block bitmap after it, an inode count that is a multiple of 16). The fields that carry no layout
 * are then reset to safe values: the root inode number, an orphan head out
 * of range (the orphan list is rebuilt), unknown state bits, the feature
 * flags other than incompat 0x1 (the only one defined; a checksum failure
 * makes the others suspect, and dropping 0x1 would lose inline content;
 * compat 0x1, the backup, is kept when its block checks out), the
 * reserved bytes. Free counts are recomputed by pass 3 anyway. With -n the
 * mended copy is only used to check the rest of the image.
 *
 * When block 0 cannot be mended (or is no superblock at all), or its
 * mended layout disagrees with a usable backup superblock (block 1 or 2,
 * docs/FORMAT.md §4c), the backup takes its place: its layout fields are
 * exact, its counters and state are made safe (fs_super_backup_to_primary)
 * and the passes recompute the rest. With -y it is written to block 0;
 * -n and -p only report it and check the image through it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fsck/fsck_i.h"
#include "fs/inode.h"
#include "fs/mkfs.h"
#include "fs/super.h"
#include "fs/super_backup.h"
#include "journal/journal.h"

/* Incompatible features this checker understands. */
#define CHECK_INCOMPAT_KNOWN (MMAPFS_FEATURE_INCOMPAT_INODE_DATA | \
                              MMAPFS_FEATURE_INCOMPAT_XATTR_CHAIN | MMAPFS_FEATURE_INCOMPAT_MMP | \
                              MMAPFS_FEATURE_INCOMPAT_INODE_XATTR | MMAPFS_FEATURE_INCOMPAT_ITAB)

#define PROG CHECK_PROG

/* Is the layout what mkfs writes (or mmapfs-resize leaves)? The block
 * bitmap may be followed by room to grow it, at most what mkfs leaves for
 * the current size (docs/FORMAT.md, "Growing"). */
static int mkfs_layout(const struct mmapfs_disk_superblock *sb)
{
    uint64_t mmp = sb->feature_incompat & MMAPFS_FEATURE_INCOMPAT_MMP ? 1 : 0;
    uint64_t backup = sb->feature_compat & MMAPFS_FEATURE_COMPAT_BACKUP_SB ? 1 : 0;
    /* a grown inode table's bitmap may have moved into the data area: its
     * old blocks joined the room (§13a) */
    int moved = mmapfs_inode_bitmap_moved(sb);
    uint64_t bitmap_room = mmapfs_block_bitmap_room_end(sb) - sb->block_bitmap_start;
    return sb->journal_start == 1 + mmp + backup && (!mmp || sb->mmp_block == 1) &&
           (!backup || sb->backup_block == 1 + mmp) &&
           sb->block_bitmap_start == sb->journal_start + sb->journal_blocks &&
           mmapfs_block_bitmap_room_end(sb) > sb->block_bitmap_start &&
           bitmap_room >= sb->block_bitmap_blocks &&
           (moved || bitmap_room <= fs_mkfs_bitmap_room(sb->block_count)) &&
           (moved || sb->inode_table_start == sb->inode_bitmap_start + sb->inode_bitmap_blocks) &&
           sb->data_start == sb->inode_table_start + sb->inode_table_blocks &&
           sb->inode_count % MMAPFS_INODES_PER_BLOCK == 0;
}

/* Mends *sb (which failed validation) in place. Returns the number of
 * fields reset, or -1 if the superblock cannot be trusted. */
static int super_mend(struct mmapfs_disk_superblock *sb, uint64_t image_bytes)
{
    int n = 0;
    if (sb->root_ino != MMAPFS_ROOT_INO) {
        sb->root_ino = MMAPFS_ROOT_INO;
        n++;
    }
    if (sb->orphan_head > sb->inode_count) {
        sb->orphan_head = 0;
        n++;
    }
    uint32_t st = sb->state & (MMAPFS_STATE_CLEAN | MMAPFS_STATE_MOUNTED | MMAPFS_STATE_ERROR);
    if ((st & MMAPFS_STATE_CLEAN) && (st & MMAPFS_STATE_MOUNTED))
        st &= ~(uint32_t)MMAPFS_STATE_CLEAN;
    if (st != sb->state) {
        sb->state = st;
        n++;
    }
    uint32_t known_incompat = sb->feature_incompat & CHECK_INCOMPAT_KNOWN;
    uint32_t known_compat = sb->feature_compat & MMAPFS_FEATURE_COMPAT_BACKUP_SB;
    if (sb->feature_compat != known_compat || sb->feature_ro_compat ||
        sb->feature_incompat != known_incompat) {
        sb->feature_compat = known_compat;
        sb->feature_ro_compat = 0;
        sb->feature_incompat = known_incompat;
        n++;
    }
    if (sb->reserved0) {
        sb->reserved0 = 0;
        n++;
    }
    for (size_t i = 0; i < sizeof(sb->reserved); i++)
        if (sb->reserved[i]) {
            memset(sb->reserved, 0, sizeof(sb->reserved));
            n++;
            break;
        }
    sb->state |= MMAPFS_STATE_ERROR;
    fs_super_checksum(sb);
    if (fs_super_validate(sb, image_bytes, NULL, 0) || !mkfs_layout(sb))
        return -1;
    return n;
}

/* Takes *sb (mended, or restored from the backup) in place of block 0,
 * and writes it there with -y (after claiming the MMP block, if any);
 * 'repaired' says what was done. 0 or FSCK_EXIT_OPERATIONAL. */
static int take_superblock(struct check *c, const struct mmapfs_disk_superblock *sb,
                           const char *repaired)
{
    c->sb_mended = 1;
    int was_error = (c->sb.state & MMAPFS_STATE_ERROR) != 0;
    c->sb = *sb;
    if (c->opt.mode == FS_CHECK_YES && !c->repair_started) {
        /* with MMP, no write before the image is ours (a live holder is
         * refused here, not overwritten) */
        int r = fsck_mmp(c);
        if (r)
            return r;
        int err = fsck_io_write(c, 0, sb, sizeof(*sb));
        if (!err)
            err = fsck_io_sync(c);
        if (err)
            return FSCK_EXIT_OPERATIONAL;
        fsck_repaired(c, "superblock: %s", repaired);
        c->repair_started = 1;
        c->error_set = !was_error;
        c->repairs++;
    } else if (c->opt.mode == FS_CHECK_PREEN) {
        c->stop_preen = 1;
    }
    return 0;
}

/* fsck_read as a super_backup_read_fn. */
static int read_image(void *ctx, uint64_t off, void *buf, size_t len)
{
    return fsck_read(ctx, off, buf, len);
}

/* Block 0 failed validation with err (msg says why): mends it, or takes
 * the backup superblock. 0 if c->sb is now usable, else FSCK_EXIT_*. */
static int replace_superblock(struct check *c, int err, const char *msg, FILE *out)
{
    struct mmapfs_disk_superblock backup, mended = c->sb;
    uint64_t backup_blk = 0;
    uint64_t image_bytes = mmio_size(c->io);
    int have_backup = fs_super_backup_find(read_image, c, image_bytes, &backup,
                                        &backup_blk) == 1;
    char what[96], cut[512];

    if (!have_backup && fs_super_image_short(&c->sb, image_bytes, cut, sizeof(cut))) {
        /* nothing to repair in place: the image must get its size back */
        if (out)
            fprintf(out, PROG ": %s: %s\n", c->path, cut);
        return FSCK_EXIT_OPERATIONAL;
    }
    int n = err == -EUCLEAN ? super_mend(&mended, image_bytes) : -1;

    if (n >= 0 && (!have_backup || fs_super_backup_same_layout(&mended, &backup))) {
        if (!c->sb_mended)
            fsck_error(c, "superblock: %s; the layout checks out%s", msg,
                        n ? " (damaged fields reset)" : "");
        snprintf(what, sizeof(what), "%d damaged field%s reset, checksum recomputed", n,
                 n == 1 ? "" : "s");
        return take_superblock(c, &mended, what);
    }
    if (have_backup) {
        if (!c->sb_mended)
            fsck_error(c, "superblock: %s; the backup superblock at block %" PRIu64
                        " is usable%s", msg, backup_blk,
                        c->opt.mode == FS_CHECK_YES ? "" : " (fsck.mmapfs -y restores it)");
        fs_super_backup_to_primary(&backup);
        snprintf(what, sizeof(what), "restored from the backup superblock at block %" PRIu64,
                 backup_blk);
        return take_superblock(c, &backup, what);
    }
    if (err == -EUCLEAN) {
        fsck_error(c, "superblock: %s (cannot check further)", msg);
        return FSCK_EXIT_UNCORRECTED;
    }
    if (out)
        fprintf(out, PROG ": %s: %s\n", c->path, msg);
    return FSCK_EXIT_OPERATIONAL;
}

/* Is block b one that other (the other copy) places in the data area for
 * its grown inode table: a table extent or a moved inode bitmap's room? */
static int other_itab_block(const struct mmapfs_disk_superblock *other, uint64_t b)
{
    const struct mmapfs_disk_itab *t = &other->itab;
    if (!(other->feature_incompat & MMAPFS_FEATURE_INCOMPAT_ITAB))
        return 0;
    for (uint32_t i = 0; i < t->count && i < MMAPFS_ITAB_EXTENTS_MAX; i++)
        if (b >= t->ext[i].start && b - t->ext[i].start < t->ext[i].blocks)
            return 1;
    return mmapfs_inode_bitmap_moved(other) && b >= other->inode_bitmap_start &&
           b - other->inode_bitmap_start < t->inode_bitmap_room;
}

/* How many signs say that sb's layout is not the one the image was written
 * with: no valid journal header where it puts the journal, a root inode
 * record that does not check out (or a directory tree outside its data
 * area) where it puts the inode table, a metadata region not marked in use
 * in its block bitmap or blocks past its end marked in use there (but for
 * what other, the other copy, places in the data area for a grown inode
 * table: an interrupted mmapfs-resize sets those bits before block 0
 * changes), the root's bit clear in its inode bitmap. sb passed
 * fs_super_validate. */
static int layout_misfits(struct check *c, const struct mmapfs_disk_superblock *sb,
                          const struct mmapfs_disk_superblock *other)
{
    struct jnl_geometry g = { .journal_start = sb->journal_start,
                              .journal_blocks = sb->journal_blocks,
                              .block_count = sb->block_count };
    int err = jnl_recover(c->io, &g, 1, NULL);
    int n = err == -EUCLEAN || err == -EINVAL;

    struct mmapfs_disk_inode root;
    uint64_t blk = mmapfs_inode_block(sb->inode_table_start, sb->inode_table_blocks, &sb->itab,
                                      MMAPFS_ROOT_INO);
    if (!blk || fsck_read(c, blk * MMAPFS_BLOCK_SIZE, &root, sizeof(root)) ||
        root.checksum != fs_inode_checksum(MMAPFS_ROOT_INO, &root) || !S_ISDIR(root.mode) ||
        (root.tree_root && (root.tree_root < sb->data_start ||
                            root.tree_root >= sb->block_count)))
        n++;

    uint8_t bits[MMAPFS_BLOCK_SIZE];
    uint64_t per_block = MMAPFS_BLOCK_SIZE * 8;
    for (uint64_t b = 0; b < sb->data_start; b += per_block) {
        uint64_t end = sb->data_start - b < per_block ? sb->data_start - b : per_block;
        if (fsck_read(c, (sb->block_bitmap_start + b / per_block) * MMAPFS_BLOCK_SIZE, bits,
                      sizeof(bits))) {
            n++;
            break;
        }
        uint64_t i = 0;
        while (i < end && (bits[i / 8] >> (i % 8) & 1))
            i++;
        if (i < end) {
            n++;
            break;
        }
    }
    /* the padding of its last bitmap block: written 0 */
    uint64_t last = (sb->block_count - 1) / per_block;
    if (fsck_read(c, (sb->block_bitmap_start + last) * MMAPFS_BLOCK_SIZE, bits, sizeof(bits))) {
        n++;
    } else {
        for (uint64_t b = sb->block_count; b < (last + 1) * per_block; b++) {
            uint64_t i = b - last * per_block;
            if ((bits[i / 8] >> (i % 8) & 1) && !other_itab_block(other, b)) {
                n++;
                break;
            }
        }
    }
    if (fsck_read(c, sb->inode_bitmap_start * MMAPFS_BLOCK_SIZE, bits, 1) || !(bits[0] & 1))
        n++;
    return n;
}

/*
 * Block 0 passed validation but the backup superblock, also usable and of
 * the same filesystem, locates the regions differently: a layout field of
 * block 0 may have been overwritten with a valid checksum (a stray write of
 * a whole superblock). Only mkfs and mmapfs-resize change the layout, and
 * resize writes the backup first, so either copy may be the right one
 * (an interrupted grow leaves the old layout in block 0, which still fits
 * the image). The backup is taken when block 0's layout does not fit what
 * the image holds and the backup's does; else block 0 stays (and
 * fsck_backup_superblock rewrites the backup). Before this, fsck trusted
 * block 0 and rewrote the backup from it: a data_start one block too far
 * put the root directory's index outside the data area, and -y moved every
 * name of the root into lost+found. 0 or FSCK_EXIT_*.
 */
static int layout_from_backup(struct check *c)
{
    struct mmapfs_disk_superblock backup;
    uint64_t blk = c->sb.backup_block;
    if (!(c->sb.feature_compat & MMAPFS_FEATURE_COMPAT_BACKUP_SB) ||
        fsck_read(c, blk * MMAPFS_BLOCK_SIZE, &backup, sizeof(backup)) ||
        !fs_super_backup_usable(&backup, blk, mmio_size(c->io)) ||
        memcmp(backup.uuid, c->sb.uuid, sizeof(backup.uuid)) ||
        fs_super_backup_same_layout(&backup, &c->sb))
        return 0;
    int mine = layout_misfits(c, &c->sb, &backup);
    if (!mine || layout_misfits(c, &backup, &c->sb))
        return 0;
    if (!c->sb_mended)
        fsck_error(c, "superblock: its layout does not fit the image (%d sign%s: journal "
                    "header, root inode, bitmaps); the backup superblock at block %" PRIu64
                    " does%s", mine, mine == 1 ? "" : "s", blk,
                    c->opt.mode == FS_CHECK_YES ? "" : " (fsck.mmapfs -y restores it)");
    fs_super_backup_to_primary(&backup);
    char what[96];
    snprintf(what, sizeof(what), "restored from the backup superblock at block %" PRIu64, blk);
    return take_superblock(c, &backup, what);
}

/* See fsck_i.h. */
int fsck_load_superblock(struct check *c, FILE *out)
{
    int err = fsck_read(c, 0, &c->sb, sizeof(c->sb));
    if (err) {
        if (out)
            fprintf(out, PROG ": %s: cannot read the superblock: %s\n", c->path, strerror(-err));
        return FSCK_EXIT_OPERATIONAL;
    }
    char msg[256] = "";
    err = fs_super_validate(&c->sb, mmio_size(c->io), msg, sizeof(msg));
    /* a superblock of another format version is not damage */
    if (err == -EINVAL && memcmp(c->sb.magic, MMAPFS_MAGIC, sizeof(c->sb.magic)) == 0) {
        if (out)
            fprintf(out, PROG ": %s: %s\n", c->path, msg);
        return FSCK_EXIT_OPERATIONAL;
    }
    int r = err ? replace_superblock(c, err, msg, out) : layout_from_backup(c);
    if (r)
        return r;
    if (c->sb.feature_incompat & ~CHECK_INCOMPAT_KNOWN) {
        if (out)
            fprintf(out, PROG ": %s: unsupported incompatible features %#x\n", c->path,
                    c->sb.feature_incompat & ~CHECK_INCOMPAT_KNOWN);
        return FSCK_EXIT_OPERATIONAL;
    }
    if (c->sb.inode_count > UINT32_MAX) {
        if (out)
            fprintf(out, PROG ": %s: %" PRIu64 " inodes: more than this fsck supports\n",
                    c->path, c->sb.inode_count);
        return FSCK_EXIT_OPERATIONAL;
    }
    c->block_count = c->sb.block_count;
    c->inode_count = c->sb.inode_count;
    c->data_start = c->sb.data_start;
    return 0;
}

/* Is block b a valid tree node or xattr block (its magic, and its
 * checksum, which covers its block number)? Such a block belongs to a
 * file; an inode table cannot be there. */
static int file_metadata(struct check *c, uint64_t b)
{
    const uint8_t *p = fsck_block(c, b);
    struct mmapfs_disk_btree_header bh;
    struct mmapfs_disk_xattr_header xh;
    if (!p)
        return 0;
    memcpy(&bh, p, sizeof(bh));
    memcpy(&xh, p, sizeof(xh));
    return (bh.magic == MMAPFS_BTREE_MAGIC && bh.checksum == bt_block_checksum(b, p)) ||
           (xh.magic == MMAPFS_XATTR_MAGIC && xh.checksum == bt_block_checksum(b, p));
}

/* Blocks of sb's grown inode table extents (validated) that are files'
 * tree nodes or xattr blocks. */
static uint64_t itab_over_files(struct check *c, const struct mmapfs_disk_superblock *sb)
{
    const struct mmapfs_disk_itab *t = &sb->itab;
    uint64_t n = 0;
    if (!(sb->feature_incompat & MMAPFS_FEATURE_INCOMPAT_ITAB))
        return 0;
    for (uint32_t i = 0; i < t->count && i < MMAPFS_ITAB_EXTENTS_MAX; i++)
        for (uint64_t b = t->ext[i].start; b < t->ext[i].start + t->ext[i].blocks; b++)
            n += (uint64_t)file_metadata(c, b);
    return n;
}

/* Superblock edit: the backup's grown inode table description. */
static void edit_itab(struct mmapfs_disk_superblock *sb, void *arg)
{
    const struct mmapfs_disk_superblock *backup = arg;
    sb->itab = backup->itab;
}

/*
 * The superblock and a usable backup differ only in the grown inode
 * table's description (both pass validation, so each could be right).
 * The copy whose extents lie over files' tree nodes or xattr blocks is
 * the damaged one: when only the superblock's do, the backup's is taken
 * (written to block 0 with -y, used in memory otherwise). 1 if taken, 0
 * if the superblock stays (the caller rewrites the backup), or
 * FSCK_EXIT_OPERATIONAL.
 */
static int itab_from_backup(struct check *c, const struct mmapfs_disk_superblock *backup,
                            uint64_t blk)
{
    struct mmapfs_disk_superblock sb = c->sb;
    sb.itab = backup->itab;
    if (!fs_super_backup_same_layout(&sb, backup))
        return 0;                       /* more than the inode table differs */
    uint64_t mine = itab_over_files(c, &c->sb);
    if (!mine || itab_over_files(c, backup))
        return 0;
    fsck_error(c, "superblock: its inode table extents lie over %" PRIu64 " tree node%s or "
                "xattr block%s of files; those of the backup superblock at block %" PRIu64
                " do not", mine, mine == 1 ? "" : "s", mine == 1 ? "" : "s", blk);
    if (!c->may_repair) {
        c->sb.itab = backup->itab;      /* check what the repair would keep */
        return 1;
    }
    int err = fsck_begin_repair(c);
    if (!err)
        err = fsck_write_super(c, edit_itab, (void *)backup);
    if (err)
        return FSCK_EXIT_OPERATIONAL;
    fsck_repaired(c, "superblock: inode table extents restored from the backup superblock");
    c->repairs++;
    return 1;
}

/* See fsck_i.h. */
int fsck_backup_superblock(struct check *c)
{
    if (!(c->sb.feature_compat & MMAPFS_FEATURE_COMPAT_BACKUP_SB))
        return 0;
    uint64_t blk = c->sb.backup_block;
    struct mmapfs_disk_superblock backup;
    int err = fsck_read(c, blk * MMAPFS_BLOCK_SIZE, &backup, sizeof(backup));
    if (err)
        return FSCK_EXIT_OPERATIONAL;
    int usable = fs_super_backup_usable(&backup, blk, mmio_size(c->io));
    if (usable && fs_super_backup_same_layout(&backup, &c->sb))
        return 0;
    int taken = usable ? itab_from_backup(c, &backup, blk) : 0;
    if (taken)
        return taken == 1 ? 0 : taken;
    /* mmapfs-resize writes the grown superblock to the backup, syncs, then
     * writes block 0 (docs/FORMAT.md §13a): a crash between the two leaves
     * a backup of the same filesystem with more blocks. The old size is in
     * force and the filesystem is sound, so this is not an error; the
     * backup is brought back in line where repairs are allowed. */
    int interrupted_grow = usable && backup.block_count > c->sb.block_count &&
                           memcmp(backup.uuid, c->sb.uuid, sizeof(backup.uuid)) == 0;
    if (interrupted_grow)
        fsck_info(c, "backup superblock at block %" PRIu64 ": %" PRIu64 " blocks, the "
                   "superblock %" PRIu64 ": an mmapfs-resize was interrupted before its "
                   "last write; the filesystem keeps its size (run mmapfs-resize again "
                   "to grow it)", blk, backup.block_count, c->sb.block_count);
    else
        fsck_error(c, "backup superblock at block %" PRIu64 ": %s", blk,
                    usable ? "its layout differs from the superblock's" : "damaged");
    if (!c->may_repair)
        return 0;
    err = fsck_begin_repair(c);
    if (!err)
        err = fsck_io_write(c, blk * MMAPFS_BLOCK_SIZE, &c->sb, sizeof(c->sb));
    if (!err)
        err = fsck_io_sync(c);
    if (err)
        return FSCK_EXIT_OPERATIONAL;
    fsck_repaired(c, "backup superblock at block %" PRIu64 ": rewritten from the superblock",
                   blk);
    c->repairs++;
    return 0;
}
