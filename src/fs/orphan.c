/*
 * orphan.c — the on-disk orphan list (DESIGN.md invariant 6): inodes whose
 * link count is 0 but that are still in use (open files, lookup
 * references), or whose release spans several journal steps. Singly linked
 * from the superblock's orphan_head through each inode's orphan_next; the
 * list is short, so removal walks it.
 */
#include <errno.h>

#include "fs/fs_i.h"

int orphan_add(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di)
{
    struct mmapfs_disk_superblock *sb = super_write(fs);
    if (!sb)
        return jnl_error(fs->jnl) ? jnl_error(fs->jnl) : fs->read_only ? -EROFS : -ENOMEM;
    if (sb->orphan_head == ino || di->orphan_next != 0)
        return inode_put(fs, ino, di);        /* already listed */
    di->orphan_next = sb->orphan_head;
    sb->orphan_head = ino;
    super_put(fs, sb);
    return inode_put(fs, ino, di);
}

int orphan_remove(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di)
{
    const struct mmapfs_disk_superblock *rsb = super_read(fs);
    if (!rsb)
        return -EIO;
    uint64_t cur = rsb->orphan_head;
    if (cur == ino) {
        struct mmapfs_disk_superblock *sb = super_write(fs);
        if (!sb)
            return jnl_error(fs->jnl) ? jnl_error(fs->jnl) : -ENOMEM;
        sb->orphan_head = di->orphan_next;
        super_put(fs, sb);
    } else {
        /* find the predecessor */
        uint64_t steps = 0;
        while (cur != 0) {
            struct mmapfs_disk_inode pdi;
            if (++steps > fs->inode_count)
                return fs_corrupt(fs, "orphan list has a cycle");
            int err = inode_get(fs, cur, &pdi);
            if (err)
                return err == -ENOENT ? fs_corrupt(fs, "orphan list names free inode %llu",
                                                   (unsigned long long)cur)
                                      : err;
            if (pdi.orphan_next == ino) {
                pdi.orphan_next = di->orphan_next;
                err = inode_put(fs, cur, &pdi);
                if (err)
                    return err;
                break;
            }
            cur = pdi.orphan_next;
        }
        /* cur == 0: it was not listed; nothing to unlink */
    }
    di->orphan_next = 0;
    return inode_put(fs, ino, di);
}

int orphan_recover(struct fs *fs)
{
    for (uint64_t steps = 0;; steps++) {
        const struct mmapfs_disk_superblock *sb = super_read(fs);
        if (!sb)
            return -EIO;
        uint64_t ino = sb->orphan_head;
        if (ino == 0)
            return 0;
        if (steps > fs->inode_count)
            return fs_corrupt(fs, "orphan list has a cycle");
        struct mmapfs_disk_inode di;
        int err = inode_get(fs, ino, &di);
        if (err == -ENOENT)
            return fs_corrupt(fs, "orphan list names free inode %llu", (unsigned long long)ino);
        if (err)
            return err;
        if (di.nlink > 0)
            err = orphan_remove(fs, ino, &di);    /* linked again: just unlist */
        else
            err = inode_release(fs, ino);
        if (err)
            return err;
    }
}
