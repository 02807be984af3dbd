/*
 * inode.c — inode records in the journaled inode table: validated reads,
 * writes, creation, link drops and release (freeing everything an inode
 * owns, in journal steps for large files, protected by the orphan list).
 */
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/file_i.h"
#include "fs/inode.h"
#include "util/crc32c.h"

/* See inode.h. */
uint32_t fs_inode_checksum(uint64_t ino, const struct mmapfs_disk_inode *di)
{
    uint64_t le = htole64(ino);
    uint32_t c = mfs_crc32c(0, &le, sizeof(le));
    return mfs_crc32c(c, di, offsetof(struct mmapfs_disk_inode, checksum));
}

/* Table block and byte offset of inode ino (1 <= ino <= inode_count): in
 * the first table or one of a grown table's extents (docs/FORMAT.md §4b).
 * The superblock's validation makes every such ino map to a block. */
static void inode_slot(const struct fs *fs, uint64_t ino, uint64_t *blk, size_t *off)
{
    *blk = mmapfs_inode_block(fs->inode_table_start, fs->inode_table_blocks, &fs->itab, ino);
    *off = (size_t)((ino - 1) % MMAPFS_INODES_PER_BLOCK) * MMAPFS_INODE_SIZE;
}

/* Is mode a file type mmapfs stores? */
static int mode_type_ok(uint32_t mode)
{
    switch (mode & S_IFMT) {
    case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFCHR:
    case S_IFBLK: case S_IFIFO: case S_IFSOCK:
        return 1;
    default:
        return 0;
    }
}

/* The inode-resident part of a record (flags != 0): flags allowed by the
 * image and the type, inline extents sorted, disjoint and inside the data
 * area, inline data within the area. 0 or -EUCLEAN. */
static int inode_data_check(struct fs *fs, uint64_t ino, const struct mmapfs_disk_inode *di)
{
    unsigned long long n = (unsigned long long)ino;
    uint32_t f = di->flags;
    if ((f & ~MMAPFS_INODE_FLAGS_KNOWN) || !fs_inode_data(fs) ||
        f == MMAPFS_INODE_FLAGS_KNOWN || di->tree_root ||
        (!S_ISREG(di->mode) && !S_ISLNK(di->mode)))
        return fs_corrupt(fs, "inode %llu: flags %#x not valid here (mode %#o, tree %llu)",
                          n, f, di->mode, (unsigned long long)di->tree_root);
    if (f & MMAPFS_INODE_INLINE_DATA) {
        if (di->size > MMAPFS_INLINE_BYTES)
            return fs_corrupt(fs, "inode %llu: %llu bytes of inline data", n,
                              (unsigned long long)di->size);
        /* the rest of the area is 0 (FORMAT.md §6): a file that grows inside
         * the area, or moves to a block, would read stale bytes */
        for (size_t i = (size_t)di->size; i < MMAPFS_INLINE_BYTES; i++)
            if (di->inline_area[i])
                return fs_corrupt(fs, "inode %llu: inline data past its size %llu is not "
                                  "zero", n, (unsigned long long)di->size);
        return 0;
    }
    uint64_t prev_end = 0;
    int empty = 0;
    for (unsigned i = 0; i < MMAPFS_INLINE_EXTENTS; i++) {
        struct mmapfs_disk_extent e;
        uint64_t lblk;
        mmapfs_inline_extent_get(di->inline_area, i, &lblk, &e);
        if (e.len == 0 && !lblk && !e.start && !e.flags) {
            empty = 1;
            continue;
        }
        if (empty || e.len == 0 || (i && lblk < prev_end) ||
            lblk >= FILE_MAX_BLOCKS || e.len > FILE_MAX_BLOCKS - lblk ||
            (e.flags && !S_ISREG(di->mode)) || e.start < fs->data_start ||
            e.start >= fs->block_count || e.len > fs->block_count - e.start ||
            fs_blocks_reserved(fs, e.start, e.len))
            return fs_corrupt(fs, "inode %llu: bad inline extent %u (block %llu: start "
                              "%llu, len %u)", n, i, (unsigned long long)lblk,
                              (unsigned long long)e.start, e.len);
        prev_end = lblk + e.len;
    }
    return 0;
}

/* Copies the record of ino (in range), whatever its bitmap bit says. */
static int read_record(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di)
{
    uint64_t blk;
    size_t off;
    inode_slot(fs, ino, &blk, &off);
    const uint8_t *p = jnl_read(fs->jnl, blk);
    if (!p)
        return jnl_read_error();
    memcpy(di, p + off, sizeof(*di));
    return 0;
}

int fs_inode_record_live(struct fs *fs, uint64_t ino)
{
    if (ino < 1 || ino > fs->inode_count)
        return 0;
    struct mmapfs_disk_inode di;
    int err = read_record(fs, ino, &di);
    if (err)
        return err;
    const struct mmapfs_disk_superblock *sb = fs_super_read(fs);
    return sb && fs_inode_record_looks_live(ino, &di, sb->mkfs_time);
}

/* See inode.h. */
int fs_inode_record_looks_live(uint64_t ino, const struct mmapfs_disk_inode *di,
                               uint64_t mkfs_time)
{
    if (!di->nlink || !mode_type_ok(di->mode))
        return 0;       /* cheap tests first: nearly every free record is zero */
    return fs_inode_checksum(ino, di) == di->checksum &&
           (int64_t)di->crtime_sec + 1 >= (int64_t)mkfs_time;
}

int fs_inode_get(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di)
{
    if (ino < 1 || ino > fs->inode_count)
        return -ENOENT;
    int used = fs_inode_in_use(fs, ino);
    if (used < 0)
        return used;
    if (!used)
        return -ENOENT;
    int err = read_record(fs, ino, di);
    if (err)
        return err;
    uint32_t sum = fs_inode_checksum(ino, di);
    if (sum != di->checksum)
        return fs_corrupt(fs, "inode %llu: checksum mismatch (stored %08x, computed %08x)",
                          (unsigned long long)ino, di->checksum, sum);
    if (di->mode == 0 || !mode_type_ok(di->mode))
        return fs_corrupt(fs, "inode %llu: bad mode %#o", (unsigned long long)ino, di->mode);
    if (S_ISREG(di->mode) && di->size > MMAPFS_MAX_FILE_SIZE)   /* FORMAT.md §6 */
        return fs_corrupt(fs, "inode %llu: size %llu beyond the maximum file size",
                          (unsigned long long)ino, (unsigned long long)di->size);
    return di->flags ? inode_data_check(fs, ino, di) : 0;
}

/* fs_inode_put / fs_inode_put_times: the record into the running transaction,
 * and which kind of change the inode's memory state records. */
static int put(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di, int times_only)
{
    if (ino < 1 || ino > fs->inode_count)
        return -EINVAL;
    uint64_t blk;
    size_t off;
    inode_slot(fs, ino, &blk, &off);
    di->checksum = fs_inode_checksum(ino, di);
    uint8_t *p = jnl_write(fs->jnl, blk);
    if (!p)
        return fs_write_error(fs, errno);
    memcpy(p + off, di, sizeof(*di));
    uint64_t seq = jnl_running_seq(fs->jnl);
    fs_icache_set_dirty_seq(fs, ino, seq);
    if (!times_only)
        fs_icache_set_data_seq(fs, ino, seq);
    return 0;
}

int fs_inode_put(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di)
{
    return put(fs, ino, di, 0);
}

int fs_inode_put_times(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di)
{
    return put(fs, ino, di, 1);
}

int fs_inode_new(struct fs *fs, uint64_t goal, uint32_t mode, uint32_t uid, uint32_t gid,
              uint64_t *ino, struct mmapfs_disk_inode *di)
{
    if (!mode_type_ok(mode))
        return -EINVAL;
    struct mmapfs_disk_superblock *sb = fs_super_write(fs);
    if (!sb)
        return fs_write_error(fs, errno);
    int err = fs_alloc_inode(fs, goal, ino);
    if (err)
        return err;
    memset(di, 0, sizeof(*di));
    di->mode = mode;
    di->uid = uid;
    di->gid = gid;
    di->nlink = S_ISDIR(mode) ? 2 : 1;
    di->generation = sb->next_generation++;
    fs_super_put(fs, sb);
    fs_inode_touch(fs, *ino, di, TOUCH_ATIME | TOUCH_MTIME | TOUCH_CTIME);
    di->crtime_sec = di->ctime_sec;
    di->crtime_nsec = di->ctime_nsec;
    return 0;
}

void fs_inode_to_stat(uint64_t ino, const struct mmapfs_disk_inode *di, struct fs_stat *st)
{
    memset(st, 0, sizeof(*st));
    st->ino = ino;
    st->generation = di->generation;
    st->mode = di->mode;
    st->nlink = di->nlink;
    st->uid = di->uid;
    st->gid = di->gid;
    st->size = di->size;
    st->blocks512 = di->blocks * (MMAPFS_BLOCK_SIZE / 512);
    st->rdev = di->rdev;
    st->atime = (struct timespec){ (time_t)di->atime_sec, di->atime_nsec };
    st->mtime = (struct timespec){ (time_t)di->mtime_sec, di->mtime_nsec };
    st->ctime = (struct timespec){ (time_t)di->ctime_sec, di->ctime_nsec };
    st->crtime = (struct timespec){ (time_t)di->crtime_sec, di->crtime_nsec };
}

void fs_inode_touch(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di, unsigned what)
{
    struct timespec now;
    if (what & (TOUCH_MTIME | TOUCH_CTIME))
        fs_now_changed(fs, ino, di, &now);
    else
        fs_now(&now);
    if (what & TOUCH_ATIME) {
        di->atime_sec = (uint64_t)now.tv_sec;
        di->atime_nsec = (uint32_t)now.tv_nsec;
    }
    if (what & TOUCH_MTIME) {
        di->mtime_sec = (uint64_t)now.tv_sec;
        di->mtime_nsec = (uint32_t)now.tv_nsec;
    }
    if (what & TOUCH_CTIME) {
        di->ctime_sec = (uint64_t)now.tv_sec;
        di->ctime_nsec = (uint32_t)now.tv_nsec;
    }
}

uint8_t fs_inode_dtype(uint32_t mode)
{
    switch (mode & S_IFMT) {
    case S_IFREG:  return DT_REG;
    case S_IFDIR:  return DT_DIR;
    case S_IFLNK:  return DT_LNK;
    case S_IFCHR:  return DT_CHR;
    case S_IFBLK:  return DT_BLK;
    case S_IFIFO:  return DT_FIFO;
    case S_IFSOCK: return DT_SOCK;
    default:       return DT_UNKNOWN;
    }
}

int fs_inode_drop_link(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di)
{
    if (di->nlink == 0)
        return fs_corrupt(fs, "inode %llu: dropping a link of an unlinked inode",
                          (unsigned long long)ino);
    if (S_ISDIR(di->mode))
        di->nlink = 0;
    else
        di->nlink--;
    fs_inode_touch(fs, ino, di, TOUCH_CTIME);
    if (di->nlink > 0) {
        if (fs->link_drop_fn)
            fs->link_drop_fn(fs->link_drop_ctx, ino);
        return fs_inode_put(fs, ino, di);
    }
    if (fs_icache_refs(fs, ino) > 0)
        return fs_orphan_add(fs, ino, di);       /* freed by the last fs_forget */
    int err = fs_inode_put(fs, ino, di);
    if (err)
        return err;
    return fs_inode_release(fs, ino);
}

int fs_inode_release(struct fs *fs, uint64_t ino)
{
    struct mmapfs_disk_inode di;
    int err = fs_inode_get(fs, ino, &di);
    if (err)
        return err;
    if (di.nlink != 0)
        return fs_corrupt(fs, "inode %llu: release of an inode with %u links",
                          (unsigned long long)ino, di.nlink);
    /* On the orphan list while its blocks go, so that a crash between
     * journal steps leaves it to be finished at the next mount. Adding and
     * removing in the same transaction costs only the superblock block. */
    int was_orphan = fs_orphan_listed(fs, ino);
    if (!was_orphan && (err = fs_orphan_add(fs, ino, &di)))
        return err;
    err = fs_file_free_all(fs, ino, &di);
    if (!err)
        err = fs_xattr_free_all(fs, ino, &di);
    if (err) {
        fs_inode_put(fs, ino, &di);    /* progress so far; stays an orphan */
        return err;
    }
    if (di.blocks != 0) {
        /* a wrong count is worth a note, not a leak of the inode */
        fs_corrupt(fs, "inode %llu: %llu blocks still counted after release",
                   (unsigned long long)ino, (unsigned long long)di.blocks);
        di.blocks = 0;
    }
    err = fs_orphan_remove(fs, ino, &di);      /* puts di */
    if (err)
        return err;
    if (was_orphan)
        FS_COUNT(fs, orphans_released, 1);
    fs_icache_set_linkable(fs, ino, 0);        /* the number may come back */
    return fs_free_inode(fs, ino);
}
