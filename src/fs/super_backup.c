/*
 * super_backup.c — the backup superblock (docs/FORMAT.md §4c).
 *
 * The backup is a byte copy of the superblock in a block of its own
 * between block 0 (and the MMP block) and the journal. Its layout fields
 * are exact (they change only at mkfs and mmapfs-resize, which write the
 * backup before the primary); its counters, state and times may be stale.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fs/fs_i.h"
#include "fs/super_backup.h"

int fs_super_backup_usable(const struct mmapfs_disk_superblock *sb, uint64_t blk,
                        uint64_t image_bytes)
{
    return fs_super_validate(sb, image_bytes, NULL, 0) == 0 &&
           (sb->feature_compat & MMAPFS_FEATURE_COMPAT_BACKUP_SB) &&
           sb->backup_block == blk;
}

int fs_super_backup_find(super_backup_read_fn read, void *ctx, uint64_t image_bytes,
                      struct mmapfs_disk_superblock *out, uint64_t *blk)
{
    int err = 0;
    for (uint64_t b = MMAPFS_BACKUP_SB_FIRST; b <= MMAPFS_BACKUP_SB_LAST; b++) {
        if ((b + 1) * MMAPFS_BLOCK_SIZE > image_bytes)
            break;
        int e = read(ctx, b * MMAPFS_BLOCK_SIZE, out, sizeof(*out));
        if (e) {
            err = e;
            continue;
        }
        if (fs_super_backup_usable(out, b, image_bytes)) {
            *blk = b;
            return 1;
        }
    }
    return err;
}

int fs_super_backup_same_layout(const struct mmapfs_disk_superblock *a,
                             const struct mmapfs_disk_superblock *b)
{
    const uint32_t chain = MMAPFS_FEATURE_INCOMPAT_XATTR_CHAIN;
    /* block_count .. data_start are contiguous: offsets 16..103 */
    size_t from = offsetof(struct mmapfs_disk_superblock, block_count);
    size_t to = offsetof(struct mmapfs_disk_superblock, root_ino);
    return memcmp((const char *)a + from, (const char *)b + from, to - from) == 0 &&
           (a->feature_incompat & ~chain) == (b->feature_incompat & ~chain) &&
           a->feature_compat == b->feature_compat &&
           a->mmp_block == b->mmp_block && a->mmp_interval == b->mmp_interval &&
           a->backup_block == b->backup_block &&
           memcmp(a->uuid, b->uuid, sizeof(a->uuid)) == 0 &&
           /* the grown inode table locates inodes as much as the first one
            * (unused extents and reserved bytes are zero in both) */
           memcmp(&a->itab, &b->itab, sizeof(a->itab)) == 0;
}

void fs_super_backup_to_primary(struct mmapfs_disk_superblock *sb)
{
    sb->state = MMAPFS_STATE_MOUNTED | MMAPFS_STATE_ERROR;
    sb->orphan_head = 0;
    sb->next_generation += 1ull << 32;
    sb->feature_incompat |= MMAPFS_FEATURE_INCOMPAT_XATTR_CHAIN;
    fs_super_checksum(sb);
}

/* mmio_read_at as a super_backup_read_fn. */
static int read_engine(void *ctx, uint64_t off, void *buf, size_t len)
{
    return mmio_read_at(ctx, off, buf, len);
}

int fs_super_image_cut(struct mmio *io, const struct mmapfs_disk_superblock *sb, char *msg,
                       size_t msg_len)
{
    struct mmapfs_disk_superblock backup;
    uint64_t blk = 0;

    return fs_super_image_short(sb, mmio_size(io), msg, msg_len) &&
           fs_super_backup_find(read_engine, io, mmio_size(io), &backup, &blk) != 1;
}

int fs_super_backup_report(struct mmio *io, const char *path,
                           const struct mmapfs_disk_superblock *sb, int err, const char *msg)
{
    char why[512];

    if (fs_super_image_cut(io, sb, why, sizeof(why))) {
        fprintf(stderr, "mmapfs: %s: %s\n", path, why);
        return -EFBIG;
    }
    struct mmapfs_disk_superblock backup;
    uint64_t blk = 0;
    int other_version = err == -EINVAL && memcmp(sb->magic, MMAPFS_MAGIC, sizeof(sb->magic)) == 0;

    if (!other_version &&
        fs_super_backup_find(read_engine, io, mmio_size(io), &backup, &blk) == 1)
        fprintf(stderr, "mmapfs: %s: %s; the backup superblock at block %llu is usable: "
                "run fsck.mmapfs -y to repair the superblock\n", path, msg,
                (unsigned long long)blk);
    else if (err == -EUCLEAN)
        fprintf(stderr, "mmapfs: %s: %s: damaged superblock, run fsck.mmapfs -y\n", path, msg);
    else
        fprintf(stderr, "mmapfs: %s: %s\n", path, msg);
    return err;
}

const char *fs_super_backup_hint(struct mmio *io, const struct mmapfs_disk_superblock *sb,
                                 char *buf, size_t len)
{
    struct mmapfs_disk_superblock backup;
    uint64_t blk = sb->backup_block;

    buf[0] = '\0';
    if ((sb->feature_compat & MMAPFS_FEATURE_COMPAT_BACKUP_SB) &&
        !read_engine(io, blk * MMAPFS_BLOCK_SIZE, &backup, sizeof(backup)) &&
        fs_super_backup_usable(&backup, blk, mmio_size(io)) &&
        !memcmp(backup.uuid, sb->uuid, sizeof(backup.uuid)) &&
        !fs_super_backup_same_layout(&backup, sb))
        snprintf(buf, len, "; the backup superblock at block %llu locates the regions "
                 "differently (is the superblock's layout damaged?): run fsck.mmapfs -y",
                 (unsigned long long)blk);
    return buf;
}
