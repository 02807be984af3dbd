/*
 * super.c — the superblock: validation (mount, mkfs, fsck), checksum,
 * journaled access, and the corruption reporter fs_corrupt().
 *
 * Mounting and unmounting live in mount.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fs/fs_i.h"
#include "util/crc32c.h"

/* ==== helpers ============================================================== */

/* The kernel's own timestamp clock (current_time(): the coarse real-time
 * clock, one tick resolution). With the writeback cache the kernel stamps
 * mtime/ctime of regular files itself (write, link, unlink, rename), and
 * the daemon stamps the rest; both must come from the same clock, or a
 * time the kernel sets can be older than one the daemon set just before
 * (a fine-grained daemon stamp is up to a tick ahead of the coarse one). */
void fs_now(struct timespec *ts)
{
    clock_gettime(CLOCK_REALTIME_COARSE, ts);
}

/* The coarse clock moves only with the timer tick, and here it was seen to
 * stand still across a 12 ms sleep (about 1 in 3000): two changes of one
 * directory a few calls apart then carried the same ctime, and stat(2)
 * could not tell that the second had happened. As the kernel's multigrain
 * timestamps do (ext4, Linux 6.13 on), a change whose coarse time is not
 * past the inode's ctime takes the fine-grained clock; but not a second
 * stamp of one inode in one operation (a new symlink's target, a new
 * file's inherited ACL), whose times stay equal as on ext4. For regular
 * files under the writeback cache the kernel keeps mtime and ctime itself,
 * so a fine stamp there is not compared with its coarse ones. */
void fs_now_changed(struct fs *fs, uint64_t ino, const struct mmapfs_disk_inode *di,
                    struct timespec *ts)
{
    fs_now(ts);
    uint64_t gen = jnl_op_gen(fs->jnl);
    if (gen != fs->stamp_gen) {
        fs->stamp_gen = gen;
        fs->stamp_n = 0;
    }
    for (unsigned i = 0; gen && i < fs->stamp_n; i++)
        if (fs->stamp_ino[i] == ino) {
            *ts = fs->stamp_ts[i];      /* the same stamp, even past a tick */
            return;
        }
    if ((uint64_t)ts->tv_sec < di->ctime_sec ||
        ((uint64_t)ts->tv_sec == di->ctime_sec && (uint64_t)ts->tv_nsec <= di->ctime_nsec))
        clock_gettime(CLOCK_REALTIME, ts);
    if (gen && fs->stamp_n < sizeof(fs->stamp_ino) / sizeof(fs->stamp_ino[0])) {
        fs->stamp_ino[fs->stamp_n] = ino;
        fs->stamp_ts[fs->stamp_n++] = *ts;
    }
}

/* Records the first corruption message, logs every one to stderr (unless
 * corrupt_quiet: the caller says it in its own words) and marks the
 * superblock ERROR in the running transaction (best effort: not on a
 * read-only mount or after an I/O error). Lock held (or no journal yet). */
int fs_corrupt(struct fs *fs, const char *fmt, ...)
{
    char msg[sizeof(fs->corrupt_msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    if (!fs->corrupt_quiet)
        fprintf(stderr, "mmapfs: corruption: %s%s%s\n", msg,
                fs->path ? " on " : "", fs->path ? fs->path : "");
    if (!fs->corrupt) {
        fs->corrupt = 1;
        snprintf(fs->corrupt_msg, sizeof(fs->corrupt_msg), "%s", msg);
        if (fs->jnl && !fs->read_only && !jnl_error(fs->jnl)) {
            struct mmapfs_disk_superblock *sb = fs_super_write(fs);
            if (sb) {
                sb->state |= MMAPFS_STATE_ERROR;
                fs_super_put(fs, sb);
            }
        }
    }
    return -EUCLEAN;
}

/* ==== validation ============================================================ */

static uint64_t div_round_up(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

/* Formats a reason into msg and returns err. */
static int reject(char *msg, size_t msg_len, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int reject(char *msg, size_t msg_len, int err, const char *fmt, ...)
{
    if (msg && msg_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, msg_len, fmt, ap);
        va_end(ap);
    }
    return err;
}

/* Checks that region [start, start+len) starts at or after *next and ends
 * inside the filesystem; advances *next past it. 0 or -EUCLEAN. */
static int check_region(const struct mmapfs_disk_superblock *sb, const char *name,
                        uint64_t start, uint64_t len, uint64_t *next,
                        char *msg, size_t msg_len)
{
    if (len == 0 || start < *next || start >= sb->block_count ||
        len > sb->block_count - start)
        return reject(msg, msg_len, -EUCLEAN,
                      "%s (blocks %llu+%llu) overlaps another region or lies outside "
                      "the filesystem (%llu blocks)", name, (unsigned long long)start,
                      (unsigned long long)len, (unsigned long long)sb->block_count);
    *next = start + len;
    return 0;
}

/* A grown inode table (MMAPFS_FEATURE_INCOMPAT_ITAB): extent count and
 * sizes, inode_count = 16 x all table blocks, the reserved bytes zero. */
static int itab_validate(const struct mmapfs_disk_superblock *sb, char *msg, size_t msg_len)
{
    const struct mmapfs_disk_itab *t = &sb->itab;
    uint64_t blocks = sb->inode_table_blocks;
    int bad = t->count < 1 || t->count > MMAPFS_ITAB_EXTENTS_MAX || t->reserved0 ||
              blocks < 1 || blocks >= sb->block_count;
    for (size_t i = 0; i < sizeof(t->reserved); i++)
        bad |= t->reserved[i] != 0;
    for (uint32_t i = 0; !bad && i < MMAPFS_ITAB_EXTENTS_MAX; i++) {
        const struct mmapfs_disk_itab_extent *e = &t->ext[i];
        if (i >= t->count) {
            bad = e->start || e->blocks;
            continue;
        }
        bad = e->blocks < 1 || e->blocks >= sb->block_count;
        blocks += e->blocks;        /* < 63 x 2^52: no overflow */
    }
    if (bad || sb->inode_count != blocks * MMAPFS_INODES_PER_BLOCK)
        return reject(msg, msg_len, -EUCLEAN, "bad inode table extents (%u, %llu inodes)",
                      t->count, (unsigned long long)sb->inode_count);
    if (t->inode_bitmap_room && t->inode_bitmap_room < sb->inode_bitmap_blocks)
        return reject(msg, msg_len, -EUCLEAN, "inode bitmap room %llu < %llu blocks",
                      (unsigned long long)t->inode_bitmap_room,
                      (unsigned long long)sb->inode_bitmap_blocks);
    return 0;
}

/* Range i of a grown table's data-area ranges: extent i, and the inode
 * bitmap room as the last one. */
static void itab_range(const struct mmapfs_disk_superblock *sb, uint32_t i,
                       uint64_t *start, uint64_t *len)
{
    if (i < sb->itab.count) {
        *start = sb->itab.ext[i].start;
        *len = sb->itab.ext[i].blocks;
    } else {
        *start = sb->inode_bitmap_start;
        *len = sb->itab.inode_bitmap_room;
    }
}

/* The extents and the inode bitmap room lie in [data_start, block_count)
 * and do not overlap each other. */
static int itab_check_places(const struct mmapfs_disk_superblock *sb, char *msg,
                             size_t msg_len)
{
    uint32_t n = sb->itab.count + (sb->itab.inode_bitmap_room ? 1 : 0);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t s, l;
        itab_range(sb, i, &s, &l);
        int bad = s < sb->data_start || s >= sb->block_count || l > sb->block_count - s;
        for (uint32_t j = 0; !bad && j < i; j++) {
            uint64_t s2, l2;
            itab_range(sb, j, &s2, &l2);
            bad = s < s2 + l2 && s2 < s + l;
        }
        if (bad)
            return reject(msg, msg_len, -EUCLEAN,
                          "%s (blocks %llu+%llu) overlaps another region or lies outside "
                          "the data area", i < sb->itab.count ? "inode table extent"
                                                              : "inode bitmap",
                          (unsigned long long)s, (unsigned long long)l);
    }
    return 0;
}

int fs_super_image_short(const struct mmapfs_disk_superblock *sb, uint64_t image_bytes,
                         char *msg, size_t msg_len)
{
    /* sound: it would validate on an image of its own size */
    if (sb->block_count <= image_bytes / MMAPFS_BLOCK_SIZE ||
        sb->block_count > UINT64_MAX / MMAPFS_BLOCK_SIZE ||
        fs_super_validate(sb, sb->block_count * MMAPFS_BLOCK_SIZE, msg, msg_len))
        return 0;
    unsigned long long want = (unsigned long long)sb->block_count * MMAPFS_BLOCK_SIZE;
    snprintf(msg, msg_len, "the image is %llu bytes, its filesystem %llu: the image file "
             "was cut short or the device is too small; give it its size back (truncate -s "
             "%llu: the cut part reads as zeros; then fsck.mmapfs -y) or use a device of at "
             "least that size", (unsigned long long)image_bytes, want, want);
    return 1;
}

int fs_super_validate(const struct mmapfs_disk_superblock *sb, uint64_t image_bytes,
                   char *msg, size_t msg_len)
{
    if (memcmp(sb->magic, MMAPFS_MAGIC, sizeof(sb->magic)) != 0)
        return reject(msg, msg_len, -EINVAL, "not an mmapfs filesystem (no magic)");
    uint32_t sum = mfs_crc32c(0, sb, offsetof(struct mmapfs_disk_superblock, checksum));
    if (sum != sb->checksum)
        return reject(msg, msg_len, -EUCLEAN,
                      "superblock checksum mismatch (stored %08x, computed %08x)",
                      sb->checksum, sum);
    if (sb->format_version != MMAPFS_FORMAT_VERSION)
        return reject(msg, msg_len, -EINVAL, "unsupported format version %u (this is %u)",
                      sb->format_version, MMAPFS_FORMAT_VERSION);
    if (sb->block_size != MMAPFS_BLOCK_SIZE)
        return reject(msg, msg_len, -EUCLEAN, "unsupported block size %u", sb->block_size);
    if (sb->block_count < 16 || sb->block_count > image_bytes / MMAPFS_BLOCK_SIZE)
        return reject(msg, msg_len, -EUCLEAN,
                      "filesystem size %llu blocks does not fit the image (%llu bytes): "
                      "truncated image?", (unsigned long long)sb->block_count,
                      (unsigned long long)image_bytes);
    if (sb->inode_count < 1 || sb->inode_count > UINT32_MAX ||
        sb->inode_count > sb->block_count * MMAPFS_INODES_PER_BLOCK)
        return reject(msg, msg_len, -EUCLEAN, "bad inode count %llu",
                      (unsigned long long)sb->inode_count);
    if (sb->root_ino != MMAPFS_ROOT_INO)
        return reject(msg, msg_len, -EUCLEAN, "bad root inode %llu",
                      (unsigned long long)sb->root_ino);
    if (sb->journal_blocks < 1026)
        return reject(msg, msg_len, -EUCLEAN, "journal too small (%llu blocks)",
                      (unsigned long long)sb->journal_blocks);

    const uint64_t bits = MMAPFS_BLOCK_SIZE * 8ull;
    if (sb->block_bitmap_blocks != div_round_up(sb->block_count, bits))
        return reject(msg, msg_len, -EUCLEAN, "block bitmap size %llu, expected %llu",
                      (unsigned long long)sb->block_bitmap_blocks,
                      (unsigned long long)div_round_up(sb->block_count, bits));
    if (sb->inode_bitmap_blocks != div_round_up(sb->inode_count, bits))
        return reject(msg, msg_len, -EUCLEAN, "inode bitmap size %llu, expected %llu",
                      (unsigned long long)sb->inode_bitmap_blocks,
                      (unsigned long long)div_round_up(sb->inode_count, bits));
    int grown = (sb->feature_incompat & MMAPFS_FEATURE_INCOMPAT_ITAB) != 0;
    if (grown) {
        int err = itab_validate(sb, msg, msg_len);
        if (err)
            return err;
    } else if (sb->itab.count || sb->itab.inode_bitmap_room) {
        return reject(msg, msg_len, -EUCLEAN, "inode table extents without the feature");
    } else if (sb->inode_table_blocks != div_round_up(sb->inode_count,
                                                      MMAPFS_INODES_PER_BLOCK)) {
        return reject(msg, msg_len, -EUCLEAN, "inode table size %llu, expected %llu",
                      (unsigned long long)sb->inode_table_blocks,
                      (unsigned long long)div_round_up(sb->inode_count,
                                                       MMAPFS_INODES_PER_BLOCK));
    }

    uint64_t next = 1;      /* block 0 is the superblock */
    if (sb->feature_incompat & MMAPFS_FEATURE_INCOMPAT_MMP) {
        /* the MMP block lies between the superblock and the journal */
        if (sb->mmp_block < 1 || sb->mmp_block >= sb->journal_start)
            return reject(msg, msg_len, -EUCLEAN, "bad MMP block %llu",
                          (unsigned long long)sb->mmp_block);
        if (sb->mmp_interval < 1 || sb->mmp_interval > MMAPFS_MMP_INTERVAL_MAX)
            return reject(msg, msg_len, -EUCLEAN, "bad MMP interval %u s", sb->mmp_interval);
        next = sb->mmp_block + 1;
    }
    if (sb->feature_compat & MMAPFS_FEATURE_COMPAT_BACKUP_SB) {
        /* the backup superblock too (docs/FORMAT.md §4c) */
        if (sb->backup_block < next || sb->backup_block >= sb->journal_start)
            return reject(msg, msg_len, -EUCLEAN, "bad backup superblock block %llu",
                          (unsigned long long)sb->backup_block);
        next = sb->backup_block + 1;
    }
    int err = check_region(sb, "journal", sb->journal_start, sb->journal_blocks, &next,
                           msg, msg_len);
    if (!err)
        err = check_region(sb, "block bitmap", sb->block_bitmap_start,
                           sb->block_bitmap_blocks, &next, msg, msg_len);
    /* a grown table's inode bitmap may have moved into the data area */
    int bitmap_in_data = grown && sb->itab.inode_bitmap_room != 0;
    if (!err && !bitmap_in_data)
        err = check_region(sb, "inode bitmap", sb->inode_bitmap_start,
                           sb->inode_bitmap_blocks, &next, msg, msg_len);
    if (!err)
        err = check_region(sb, "inode table", sb->inode_table_start,
                           sb->inode_table_blocks, &next, msg, msg_len);
    if (err)
        return err;
    if (sb->data_start < next || sb->data_start >= sb->block_count)
        return reject(msg, msg_len, -EUCLEAN, "bad data start %llu",
                      (unsigned long long)sb->data_start);
    if (grown) {
        err = itab_check_places(sb, msg, msg_len);
        if (err)
            return err;
    }
    if (sb->orphan_head > sb->inode_count)
        return reject(msg, msg_len, -EUCLEAN, "bad orphan list head %llu",
                      (unsigned long long)sb->orphan_head);
    if (sb->state & ~(uint32_t)(MMAPFS_STATE_CLEAN | MMAPFS_STATE_MOUNTED |
                                MMAPFS_STATE_ERROR))
        return reject(msg, msg_len, -EUCLEAN, "bad state %#x", sb->state);
    return 0;
}

int fs_super_same_geometry(const struct mmapfs_disk_superblock *a,
                           const struct mmapfs_disk_superblock *b)
{
    return a->block_count == b->block_count && a->inode_count == b->inode_count &&
           a->block_bitmap_start == b->block_bitmap_start &&
           a->inode_bitmap_start == b->inode_bitmap_start &&
           a->inode_table_start == b->inode_table_start &&
           a->inode_table_blocks == b->inode_table_blocks &&
           memcmp(&a->itab, &b->itab, sizeof(a->itab)) == 0 &&
           a->data_start == b->data_start && a->journal_start == b->journal_start &&
           a->journal_blocks == b->journal_blocks;
}

int fs_super_same_features(const struct mmapfs_disk_superblock *a,
                           const struct mmapfs_disk_superblock *b)
{
    const uint32_t chain = MMAPFS_FEATURE_INCOMPAT_XATTR_CHAIN;
    return a->feature_compat == b->feature_compat &&
           a->feature_ro_compat == b->feature_ro_compat &&
           (a->feature_incompat & ~chain) == (b->feature_incompat & ~chain);
}

void fs_super_take_features(struct mmapfs_disk_superblock *sb,
                            const struct mmapfs_disk_superblock *before)
{
    const uint32_t chain = MMAPFS_FEATURE_INCOMPAT_XATTR_CHAIN;
    sb->feature_compat = before->feature_compat;
    sb->feature_ro_compat = before->feature_ro_compat;
    sb->feature_incompat = (before->feature_incompat & ~chain) | (sb->feature_incompat & chain);
}

/* See super.h. */
void fs_super_checksum(struct mmapfs_disk_superblock *sb)
{
    sb->checksum = mfs_crc32c(0, sb, offsetof(struct mmapfs_disk_superblock, checksum));
}

/* ==== journaled access ====================================================== */

struct mmapfs_disk_superblock *fs_super_write(struct fs *fs)
{
    return jnl_write(fs->jnl, 0);
}

void fs_super_put(struct fs *fs, struct mmapfs_disk_superblock *sb)
{
    (void)fs;
    fs_super_checksum(sb);
}

const struct mmapfs_disk_superblock *fs_super_read(struct fs *fs)
{
    return jnl_read(fs->jnl, 0);
}
