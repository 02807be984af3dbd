/*
 * offline.h — tools that change an unmounted image without mounting it:
 * mmapfs-trim (every free block given back to the storage) and
 * mmapfs-resize (grow into a larger file or device). src/fs/offline.c,
 * src/fs/trim.c, src/fs/resize.c; the tools are thin mains.
 */
#ifndef MMAPFS_FS_OFFLINE_H
#define MMAPFS_FS_OFFLINE_H

#include <stddef.h>
#include <stdint.h>

#include "fs/format.h"
#include "mmapfs/mmio.h"

struct mfs_progress;

struct mmp;

/* An image opened for an offline change. */
struct fs_offline {
    struct mmio *io;                      /* the whole file or device */
    int lock_fd;                          /* flock(LOCK_EX) held */
    int regular;                          /* an image file (not a device) */
    uint64_t image_bytes;                 /* its size now */
    struct mmapfs_disk_superblock sb;     /* as read and validated */
    char *path;
    struct mmp *mmp;                      /* MMP image: the block claimed (FSCK) */
    struct mfs_progress *progress;        /* a progress line for long steps, or NULL
                                             (util/progress.h; set by the tool) */
};

/* Opens path read-write for an offline change: not mounted (mountinfo),
 * exclusive flock (no daemon, fsck or other tool on it), superblock valid,
 * unmounted cleanly (state CLEAN, no ERROR), no feature the offline tools
 * do not know. With multi-mount protection the MMP block is claimed as
 * fsck -y claims it (a live holder elsewhere is refused, -EBUSY, after
 * watching a block that was not released for 2 x interval + 1 s; the
 * block says FSCK until fs_offline_close marks it CLEAN). On error, msg
 * says why in one line for the user.
 * Errors: -EBUSY (mounted or in use), -EUCLEAN (corrupt, or not clean:
 * run fsck.mmapfs), -EINVAL (not mmapfs), -EOPNOTSUPP (feature), -errno. */
int fs_offline_open(struct fs_offline *o, const char *path, char *msg, size_t msg_len);

/* Syncs nothing; closes the engine, releases the MMP block (CLEAN) and
 * drops the lock. */
void fs_offline_close(struct fs_offline *o);

/* Gives every free block of the filesystem (block bitmap bit 0, from
 * data_start on) back to the storage with mmio_discard, one call per run
 * of free blocks. *runs and *blocks (may be NULL) receive what was
 * discarded. -EOPNOTSUPP if the file system or device cannot discard.
 * -EUCLEAN, nothing discarded and *blocks = the free blocks the bitmap
 * counts, when that is not the superblock's free count (exact on the clean
 * image fs_offline_open requires): the bitmap is damaged, and its clear
 * bits may be blocks in use. */
int fs_trim(struct fs_offline *o, uint64_t *runs, uint64_t *blocks);

/* Steps of fs_grow, in order, reported to its hook (a crash after each
 * step must leave the old or the new size). */
enum fs_grow_step {
    FS_GROW_EXTENDED = 1,    /* image file made larger (nothing else yet) */
    FS_GROW_BITMAP,          /* new block bitmap blocks written, not synced */
    FS_GROW_INODES,          /* new inode table blocks zeroed, inode bitmap written */
    FS_GROW_JOURNAL,         /* shorter-log journal header written, not synced */
    FS_GROW_SYNCED,          /* all of the above durable; old superblock */
    FS_GROW_SUPER,           /* new superblock written, not synced */
};
typedef void (*fs_grow_hook)(enum fs_grow_step step, void *ctx);

/* What fs_grow did or would do. */
struct fs_grow_plan {
    uint64_t old_blocks, new_blocks;
    uint64_t bitmap_start, bitmap_blocks;   /* new block bitmap region */
    uint64_t journal_blocks;                /* new journal length */
    int relocated;                          /* bitmap moved into the journal tail */
    uint64_t max_blocks;                    /* the most this image can grow to */
    /* inodes (docs/FORMAT.md §13a); itab_blocks 0: the count stays */
    uint64_t old_inodes, new_inodes;
    uint64_t itab_start, itab_blocks;       /* new inode table extent (new space) */
    uint64_t ibm_start, ibm_blocks;         /* new inode bitmap region */
    uint64_t ibm_room;                      /* its room in the data area, 0 = none */
    int ibm_moved;                          /* the inode bitmap moves into the new space */
    int reuse_room;                         /* the old room becomes a table extent */
};

/* Works out how o's filesystem grows to new_bytes (rounded down to 4096).
 * -EINVAL: smaller than now (shrinking is not supported); -EFBIG: more than
 * the block bitmap can be given room for (plan->max_blocks says how much);
 * 0 also when the size does not change (new_blocks == old_blocks). */
int fs_grow_plan(const struct fs_offline *o, uint64_t new_bytes, struct fs_grow_plan *plan);

/* Grows o's filesystem to new_bytes: extends an image file if needed,
 * writes the new bitmap blocks (and, when the bitmap must move, a journal
 * header for the shorter log), zeroes a new inode table extent and writes
 * the grown inode bitmap, all where the current filesystem does not look,
 * syncs, then switches with one superblock write and syncs. hook (may be
 * NULL) is called after each step. Errors: those of fs_grow_plan, -ENOSPC
 * (a device smaller than new_bytes), engine errors. */
int fs_grow(struct fs_offline *o, uint64_t new_bytes, struct fs_grow_plan *plan,
            fs_grow_hook hook, void *ctx);

#endif
