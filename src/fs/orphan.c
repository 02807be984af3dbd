/*
 * orphan.c — the on-disk orphan list (DESIGN.md invariant 6): inodes whose
 * link count is 0 but that are still in use (open files, lookup
 * references), or whose release spans several journal steps. Singly linked
 * from the superblock's orphan_head through each inode's orphan_next.
 *
 * After `rm -r` under FUSE the kernel may hold lookup references on every
 * removed inode, so the list can be long. Membership and predecessors are
 * mirrored in the inode cache (icache_orphan_*), which makes adding and
 * removing O(1). The mirror starts empty: a read-write mount empties the
 * list first (fs_orphan_recover, which always removes the head, needing no
 * predecessor). Anything the mirror does not know is found by walking the
 * list, as a fallback.
 */
#include <errno.h>

#include "fs/fs_i.h"

/* Error for a NULL jnl_write. */
static int write_error(struct fs *fs)
{
    return fs_write_error(fs, errno);
}

int fs_orphan_listed(struct fs *fs, uint64_t ino)
{
    uint64_t prev;
    const struct mmapfs_disk_superblock *sb = fs_super_read(fs);
    return (sb && sb->orphan_head == ino) || fs_icache_orphan_get(fs, ino, &prev);
}

int fs_orphan_add(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di)
{
    if (fs_orphan_listed(fs, ino))
        return fs_inode_put(fs, ino, di);
    struct mmapfs_disk_superblock *sb = fs_super_write(fs);
    if (!sb)
        return write_error(fs);
    uint64_t old = sb->orphan_head;
    int err = fs_icache_orphan_set(fs, ino, 0);
    if (!err && old) {
        err = fs_icache_orphan_set(fs, old, ino);
        if (err)
            fs_icache_orphan_clear(fs, ino);
    }
    if (err)
        return err;
    di->orphan_next = old;
    sb->orphan_head = ino;
    fs_super_put(fs, sb);
    return fs_inode_put(fs, ino, di);
}

/* Walks the list from its head: fn(ctx, ino, prev, &di) for each inode on
 * it (prev 0 for the head) until fn returns non-zero (returned). 0 at the
 * end of the list, -EUCLEAN (a cycle, a free inode), or an error. */
static int walk(struct fs *fs, int (*fn)(struct fs *, void *, uint64_t, uint64_t), void *ctx)
{
    const struct mmapfs_disk_superblock *sb = fs_super_read(fs);
    if (!sb)
        return -EIO;
    uint64_t cur = sb->orphan_head, before = 0;
    for (uint64_t steps = 0; cur != 0; steps++) {
        struct mmapfs_disk_inode cdi;
        int err = fn(fs, ctx, cur, before);
        if (err)
            return err;
        if (steps > fs->inode_count)
            return fs_corrupt(fs, "orphan list has a cycle");
        err = fs_inode_get(fs, cur, &cdi);
        if (err == -ENOENT)
            return fs_corrupt(fs, "orphan list names free inode %llu",
                              (unsigned long long)cur);
        if (err)
            return err;
        before = cur;
        cur = cdi.orphan_next;
    }
    return 0;
}

/* walk() callback of find_prev: ctx = { ino, prev }; 1 when found. */
static int prev_of(struct fs *fs, void *ctx, uint64_t ino, uint64_t prev)
{
    uint64_t *want = ctx;
    (void)fs;
    if (ino != want[0])
        return 0;
    want[1] = prev;
    return 1;
}

/* Walks the list for ino's predecessor (fallback). 0 with *prev (0 = ino
 * is the head), -ENOENT if ino is not listed, -EUCLEAN. */
static int find_prev(struct fs *fs, uint64_t ino, uint64_t *prev)
{
    uint64_t want[2] = { ino, 0 };
    int err = walk(fs, prev_of, want);
    if (err == 1)
        *prev = want[1];
    return err == 1 ? 0 : err ? err : -ENOENT;
}

int fs_orphan_remove(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di)
{
    const struct mmapfs_disk_superblock *rsb = fs_super_read(fs);
    if (!rsb)
        return -EIO;
    uint64_t prev = 0;
    int err = 0;
    if (rsb->orphan_head != ino && !fs_icache_orphan_get(fs, ino, &prev))
        err = find_prev(fs, ino, &prev);
    if (err == -ENOENT) {                /* not listed: nothing to unlink */
        di->orphan_next = 0;
        fs_icache_orphan_clear(fs, ino);
        return fs_inode_put(fs, ino, di);
    }
    if (err)
        return err;

    uint64_t next = di->orphan_next;
    if (prev == 0) {
        struct mmapfs_disk_superblock *sb = fs_super_write(fs);
        if (!sb)
            return write_error(fs);
        if (sb->orphan_head != ino)
            return fs_corrupt(fs, "orphan list: inode %llu is not the head",
                              (unsigned long long)ino);
        sb->orphan_head = next;
        fs_super_put(fs, sb);
    } else {
        struct mmapfs_disk_inode pdi;
        err = fs_inode_get(fs, prev, &pdi);
        if (err)
            return err;
        if (pdi.orphan_next != ino)
            return fs_corrupt(fs, "orphan list: inode %llu does not point to %llu",
                              (unsigned long long)prev, (unsigned long long)ino);
        pdi.orphan_next = next;
        err = fs_inode_put(fs, prev, &pdi);
        if (err)
            return err;
    }
    uint64_t next_prev;
    if (next && fs_icache_orphan_get(fs, next, &next_prev))
        fs_icache_orphan_set(fs, next, prev);          /* the entry exists: cannot fail */
    fs_icache_orphan_clear(fs, ino);
    di->orphan_next = 0;
    return fs_inode_put(fs, ino, di);
}

int fs_orphan_recover(struct fs *fs)
{
    for (uint64_t steps = 0;; steps++) {
        const struct mmapfs_disk_superblock *sb = fs_super_read(fs);
        if (!sb)
            return -EIO;
        uint64_t ino = sb->orphan_head;
        if (ino == 0)
            return 0;
        if (steps > fs->inode_count)
            return fs_corrupt(fs, "orphan list has a cycle");
        struct mmapfs_disk_inode di;
        int err = fs_inode_get(fs, ino, &di);
        if (err == -ENOENT)
            return fs_corrupt(fs, "orphan list names free inode %llu", (unsigned long long)ino);
        if (err)
            return err;
        if (di.nlink > 0)
            err = fs_orphan_remove(fs, ino, &di);    /* linked again: just unlist */
        else
            err = fs_inode_release(fs, ino);
        if (err)
            return err;
    }
}

/* walk() callback of fs_orphan_reload: mirrors one listed inode. */
static int mirror(struct fs *fs, void *ctx, uint64_t ino, uint64_t prev)
{
    (void)ctx;
    return fs_icache_orphan_set(fs, ino, prev);
}

int fs_orphan_reload(struct fs *fs)
{
    fs_icache_orphan_reset(fs);
    return walk(fs, mirror, NULL);
}
