/*
 * file_inline.c — the bytes of a tiny regular file or symlink target kept
 * in the inode record (MMAPFS_INODE_INLINE_DATA, docs/FORMAT.md §6), as
 * ext4's inline_data and fast symlinks do: such a file owns no data block.
 *
 * A file keeps its bytes in the inode while every write ends within
 * MMAPFS_INLINE_BYTES; the first write, truncate or fallocate that does
 * not fit moves them to a data block (fs_file_uninline) in the same
 * transaction as the change that needed it. Bytes of the area past the
 * size are always zero, so a file that grows inside the area reads zeros.
 */
#include <string.h>
#include <sys/stat.h>

#include "fs/file_i.h"

void fs_file_inline_read(const struct mmapfs_disk_inode *di, uint64_t off, void *buf, size_t len)
{
    memcpy(buf, di->inline_area + off, len);
}

ssize_t fs_file_inline_write(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di,
                          uint64_t off, const void *buf, size_t len)
{
    int held = (di->flags & MMAPFS_INODE_INLINE_DATA) != 0;
    int empty = !held && !(di->flags & MMAPFS_INODE_EXTENTS) && di->tree_root == 0;
    if (!fs_inode_data(fs) || (!S_ISREG(di->mode) && !S_ISLNK(di->mode)) || (!held && !empty))
        return 0;
    if (len <= MMAPFS_INLINE_BYTES && off <= MMAPFS_INLINE_BYTES - len &&
        di->size <= MMAPFS_INLINE_BYTES) {
        if (!held) {
            memset(di->inline_area, 0, sizeof(di->inline_area));
            di->flags |= MMAPFS_INODE_INLINE_DATA;
        }
        memcpy(di->inline_area + off, buf, len);
        return (ssize_t)len;
    }
    int err = fs_file_uninline(fs, ino, di);
    return err ? err : 0;
}

void fs_file_inline_truncate(struct mmapfs_disk_inode *di, uint64_t size)
{
    if (size < di->size)
        memset(di->inline_area + size, 0, (size_t)(di->size - size));
    di->size = size;
    if (size == 0)
        di->flags &= ~MMAPFS_INODE_INLINE_DATA;    /* an empty file: no map at all */
}
