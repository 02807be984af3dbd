/*
 * hostspace.c — host space for a sparse image file. Every block of a
 * sparse image that mmapfs will write is allocated on the host
 * (fallocate) before anything depends on it, so that a full host
 * filesystem is an ENOSPC at allocation time, never a failed checkpoint
 * (which would stop every commit, deletes included) nor a SIGBUS on a
 * store into a hole of the mapping. docs/ROBUSTNESS.md.
 *
 *  - mkfs --sparse reserves the metadata region (superblock, MMP block,
 *    journal, bitmaps, inode table) and the root leaf;
 *  - mmapfs-resize reserves a new inode table extent and the inode
 *    bitmap's room in the data area (resize.c);
 *  - a read-write mount of an image file with holes reserves the metadata
 *    region (and those) again (images made before mkfs did it) and from then on every
 *    run the block allocator hands out (file data and metadata blocks).
 * An image without holes (mkfs without --sparse) and a block device skip
 * all of it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "fs/fs_i.h"

/* FALLOC_FL_KEEP_SIZE: the image already has its size (mkfs and resize
 * set it), and an image truncated under the mount must stay short, so
 * that reads past the cut fault (EIO) instead of reading zeros that
 * fallocate would have put there by extending the file (an empty root
 * directory, ENOENT for every name). */
int fs_host_reserve(int fd, uint64_t off, uint64_t len)
{
    if (len == 0)
        return 0;
    int r;
    do
        r = fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len);
    while (r && errno == EINTR);
    if (r == 0)
        return 0;
    if (errno == EOPNOTSUPP || errno == ENOSYS)
        return 1;      /* the host cannot reserve: nothing to do */
    return -errno;
}

void fs_host_space_init(struct fs *fs)
{
    struct stat st;
    fs->host_sparse = 0;
    if (fs->read_only || fs->lock_fd < 0 || fstat(fs->lock_fd, &st) || !S_ISREG(st.st_mode))
        return;
    if ((uint64_t)st.st_blocks * 512u >= (uint64_t)st.st_size)
        return;        /* fully allocated: nothing can run out */
    /* What the driver writes outside the data area: the blocks up to the
     * end of the block bitmap (superblock, MMP and backup blocks, journal,
     * bitmap) and the inode bitmap. Not the block bitmap's room for growth
     * (only mmapfs-resize writes there), and not the inode table: that is
     * reserved a block at a time as inodes are allocated (fs_alloc_inode);
     * blocks of inodes in use were reserved then (or by an older mkfs,
     * which reserved the whole table). */
    const uint64_t bits = MMAPFS_BLOCK_SIZE * 8u;
    uint64_t bbm_blocks = (fs->block_count + bits - 1) / bits;
    uint64_t ibm_blocks = (fs->inode_count + bits - 1) / bits;
    int r = fs_host_reserve(fs->lock_fd, 0,
                            (fs->block_bitmap_start + bbm_blocks) * MMAPFS_BLOCK_SIZE);
    if (!r)
        r = fs_host_reserve(fs->lock_fd, fs->inode_bitmap_start * MMAPFS_BLOCK_SIZE,
                            ibm_blocks * MMAPFS_BLOCK_SIZE);
    /* a grown inode table's moved bitmap room (FORMAT.md §4b) */
    if (!r && fs->itab.inode_bitmap_room)
        r = fs_host_reserve(fs->lock_fd, fs->inode_bitmap_start * MMAPFS_BLOCK_SIZE,
                            fs->itab.inode_bitmap_room * MMAPFS_BLOCK_SIZE);
    if (r > 0)
        return;
    if (r < 0)
        fprintf(stderr, "mmapfs: %s: warning: cannot reserve host space for the journal and "
                "metadata of this sparse image: %s\n", fs->path, strerror(-r));
    fs->host_sparse = 1;
}

/* One line when the host refuses space, at most one a minute: the mount's
 * df still shows the image's free space, and without it nothing told the
 * ENOSPC of a full host from that of a full filesystem. */
static void say_host_full(struct fs *fs, int err)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (fs->host_full_said && now.tv_sec - fs->host_full_said < 60)
        return;
    fs->host_full_said = now.tv_sec > 0 ? now.tv_sec : 1;
    fprintf(stderr, "mmapfs: %s: the host filesystem is full (%s): writes that need new "
            "blocks of this sparse image get ENOSPC until it has room, whatever df of the "
            "mount shows\n", fs->path ? fs->path : "image", strerror(-err));
}

int fs_host_reserve_blocks(struct fs *fs, uint64_t start, uint64_t n)
{
    if (!fs->host_sparse)
        return 0;
    int r = fs_host_reserve(fs->lock_fd, start * MMAPFS_BLOCK_SIZE, n * MMAPFS_BLOCK_SIZE);
    if (r > 0) {
        fs->host_sparse = 0;    /* not supported here after all */
        return 0;
    }
    if (r == -ENOSPC || r == -EDQUOT)
        say_host_full(fs, r);
    return r == -EDQUOT ? -ENOSPC : r;
}

uint64_t fs_host_free_bytes(struct fs *fs)
{
    struct statvfs st;
    /* read without a lock: fs_host_reserve_blocks may clear it */
    if (!__atomic_load_n(&fs->host_sparse, __ATOMIC_RELAXED) || fstatvfs(fs->lock_fd, &st))
        return UINT64_MAX;
    return (uint64_t)st.f_bavail * st.f_frsize;
}
