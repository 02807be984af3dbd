/*
 * mount.c — fs_mount / fs_unmount: exclusive lock on the image, engine,
 * superblock checks, journal replay, allocator and inode cache set-up,
 * orphan recovery, clean/mounted state, multi-mount protection (mmp.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/fs_i.h"
#include "fs/super_backup.h"
#include "fs/mmp.h"
#include "journal/journal.h"

/* Feature bits this version understands. */
#define FS_FEATURE_COMPAT_SUPP    0u
#define FS_FEATURE_RO_COMPAT_SUPP 0u
#define FS_FEATURE_INCOMPAT_SUPP  (MMAPFS_FEATURE_INCOMPAT_INODE_DATA | \
                                   MMAPFS_FEATURE_INCOMPAT_XATTR_CHAIN | \
                                   MMAPFS_FEATURE_INCOMPAT_MMP | \
                                   MMAPFS_FEATURE_INCOMPAT_INODE_XATTR | \
                                   MMAPFS_FEATURE_INCOMPAT_ITAB)

/* Frees fs and everything it holds; the journal must be closed already. */
static void fs_destroy(struct fs *fs)
{
    if (!fs)
        return;
    fs_mmp_release(fs->mmp, 1);      /* a failed mount releases it too */
    fs_alloc_fini(fs);
    fs_icache_fini(fs);
    fs_verified_fini(fs);
    if (fs->io)
        mmio_close(fs->io);
    if (fs->lock_fd >= 0)
        close(fs->lock_fd);
    if (fs->zero_block)
        munmap((void *)fs->zero_block, FS_ZERO_BYTES);
    free((void *)fs->path);
    free(fs);
}

/* Copies the geometry of a validated superblock into fs. */
static void copy_geometry(struct fs *fs, const struct mmapfs_disk_superblock *sb)
{
    fs->block_count = sb->block_count;
    fs->inode_count = sb->inode_count;
    fs->block_bitmap_start = sb->block_bitmap_start;
    fs->inode_bitmap_start = sb->inode_bitmap_start;
    fs->inode_table_start = sb->inode_table_start;
    fs->inode_table_blocks = sb->inode_table_blocks;
    fs->itab = sb->itab;
    fs->data_start = sb->data_start;
    fs->journal_start = sb->journal_start;
    fs->journal_blocks = sb->journal_blocks;
    fs->feature_incompat = sb->feature_incompat;
}

/* Takes the exclusive lock on the image through a descriptor of our own. */
static int lock_image(struct fs *fs, const char *path)
{
    fs->lock_fd = open(path, (fs->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (fs->lock_fd < 0) {
        int err = -errno;
        fprintf(stderr, "mmapfs: %s: %s\n", path, strerror(errno));
        return err;
    }
    int err = fs_lock_image(fs->lock_fd, FS_LOCK_WAIT_MS);
    if (err) {
        fprintf(stderr, "mmapfs: %s: %s\n", path,
                err == -EBUSY ? "already mounted (the image is locked by another process)"
                              : strerror(-err));
        return err;
    }
    return 0;
}

/* Reads and checks the home superblock (into *sbp) before the journal is
 * opened. */
static int check_home_superblock(struct fs *fs, const char *path,
                                 struct mmapfs_disk_superblock *sbp)
{
    struct mmapfs_disk_superblock sb;
    char msg[200];
    if (mmio_size(fs->io) < MMAPFS_BLOCK_SIZE) {
        fprintf(stderr, "mmapfs: %s: not an mmapfs filesystem (too small)\n", path);
        return -EINVAL;
    }
    int err = mmio_read_at(fs->io, 0, &sb, sizeof(sb));
    if (err) {
        fprintf(stderr, "mmapfs: %s: cannot read the superblock: %s\n", path, strerror(-err));
        return err;
    }
    err = fs_super_validate(&sb, mmio_size(fs->io), msg, sizeof(msg));
    if (err)
        return fs_super_backup_report(fs->io, path, &sb, err, msg);
    if (sb.feature_incompat & ~FS_FEATURE_INCOMPAT_SUPP) {
        fprintf(stderr, "mmapfs: %s: unsupported incompatible features %#x\n", path,
                sb.feature_incompat & ~FS_FEATURE_INCOMPAT_SUPP);
        return -EINVAL;
    }
    if ((sb.feature_ro_compat & ~FS_FEATURE_RO_COMPAT_SUPP) && !fs->read_only) {
        fprintf(stderr, "mmapfs: %s: unsupported features %#x: mount it read-only\n", path,
                sb.feature_ro_compat & ~FS_FEATURE_RO_COMPAT_SUPP);
        return -EROFS;
    }
    if (sb.state & MMAPFS_STATE_ERROR)
        fprintf(stderr, "mmapfs: %s: warning: errors were found on this filesystem, "
                "run fsck.mmapfs\n", path);
    copy_geometry(fs, &sb);
    *sbp = sb;
    return 0;
}

/* The heartbeat lost the image (another writer took it, or the MMP block
 * cannot be written): nothing may commit any more. Called by mmp.c. */
static void mmp_lost(void *ctx)
{
    struct fs *fs = ctx;
    jnl_lock(fs->jnl);
    jnl_fail_locked(fs->jnl);
    jnl_unlock(fs->jnl);
}

/* The root directory must be there: a mount whose root is free, not a
 * directory or with its index outside the data area answers nothing (not
 * even a stat of the mount point, or a listing of it). sb: block 0, for
 * the backup's word when its layout differs. */
static int check_root(struct fs *fs, const char *path, const struct mmapfs_disk_superblock *sb)
{
    struct mmapfs_disk_inode root;
    const char *why = "corrupt";
    char hint[160];
    /* one line says what is wrong with it (then fs_mount's summary): a
     * first corruption found here is recorded quietly and named below */
    int first = !fs->corrupt;
    fs->corrupt_quiet = first;
    int err = fs_inode_get(fs, MMAPFS_ROOT_INO, &root);
    fs->corrupt_quiet = 0;
    if (err == -EUCLEAN && first && fs->corrupt)
        why = fs->corrupt_msg;
    if (!err && !S_ISDIR(root.mode)) {
        why = "not a directory";
        err = -EUCLEAN;
    } else if (!err && root.tree_root &&
               (root.tree_root < fs->data_start || root.tree_root >= fs->block_count)) {
        why = "its index lies outside the data area";
        err = -EUCLEAN;
    }
    if (!err || err == -EIO)
        return err;
    fprintf(stderr, "mmapfs: %s: root directory (inode %u): %s%s\n", path, MMAPFS_ROOT_INO,
            err == -ENOENT ? "not in use" : why, fs_super_backup_hint(fs->io, sb, hint,
                                                                    sizeof(hint)));
    return -EUCLEAN;
}

/* A read-write mount's replay wrote block 0 with features the mount then
 * refuses: it puts the features of before back (XATTR_CHAIN as replayed),
 * as fsck -y does when it replays first (check_replayed_features), so
 * that fsck can read the image by its rules. Best effort: the mount fails
 * either way. */
static void restore_features(struct fs *fs, const struct mmapfs_disk_superblock *sb,
                             const struct mmapfs_disk_superblock *before)
{
    struct mmapfs_disk_superblock fix = *sb;
    fs_super_take_features(&fix, before);
    fs_super_checksum(&fix);
    if (mmio_write_at(fs->io, 0, &fix, sizeof(fix)) == 0)
        (void)mmio_sync(fs->io);
}

/* After replay: the journaled superblock must still be valid and describe
 * the same layout. Sets up the allocator and the inode cache. */
static int load_after_replay(struct fs *fs, const char *path,
                             const struct mmapfs_disk_superblock *before)
{
    char msg[200];
    int err;
    jnl_lock(fs->jnl);
    const struct mmapfs_disk_superblock *sb = fs_super_read(fs);
    if (!sb) {
        err = -EIO;
        goto out;
    }
    err = fs_super_validate(sb, mmio_size(fs->io), msg, sizeof(msg));
    if (!err && !fs_super_same_geometry(before, sb)) {
        snprintf(msg, sizeof(msg), "superblock geometry changed by journal replay");
        err = -EUCLEAN;
    }
    /* The features too were checked in block 0, before replay. A change
     * (an unknown incompat bit, INODE_DATA gone) is a damaged log, and
     * the mount would read the image by the wrong rules. */
    if (!err && !fs_super_same_features(before, sb)) {
        snprintf(msg, sizeof(msg), "superblock features changed by journal replay "
                 "(incompat %#x, was %#x)%s", sb->feature_incompat, before->feature_incompat,
                 fs->read_only ? "" : "; block 0 keeps the features it had");
        err = -EUCLEAN;
        if (!fs->read_only)
            restore_features(fs, sb, before);
    }
    if (!err)
        fs->feature_incompat = sb->feature_incompat;
    if (err) {
        fprintf(stderr, "mmapfs: %s: after journal replay: %s\n", path, msg);
        goto out;
    }
    /* the superblock as replay left it: before replay, block 0 may still
     * say CLEAN while the log holds the mount's MOUNTED and newer bitmaps */
    int clean = (sb->state & MMAPFS_STATE_CLEAN) != 0;
    uint64_t sb_free_blocks = sb->free_blocks, sb_free_inodes = sb->free_inodes;
    err = fs_alloc_init(fs);
    /* A cleanly unmounted superblock's free counts are exact (FORMAT.md §4,
     * §14.8): bitmaps that disagree are damaged (they carry no checksum),
     * and the allocator would hand out blocks and inodes in use. A
     * read-only mount allocates nothing: it may read what is intact. */
    if (!err && clean &&
        (fs->free_blocks != sb_free_blocks || fs->free_inodes != sb_free_inodes)) {
        fprintf(stderr, "mmapfs: %s: the bitmaps count %llu free blocks and %llu free inodes, "
                "the cleanly unmounted superblock %llu and %llu: a bitmap is damaged, "
                "run fsck.mmapfs -y%s\n", path,
                (unsigned long long)fs->free_blocks, (unsigned long long)fs->free_inodes,
                (unsigned long long)sb_free_blocks, (unsigned long long)sb_free_inodes,
                fs->read_only ? " (mounting read-only anyway)" : "");
        if (!fs->read_only)
            err = -EUCLEAN;
    }
    /* Whatever the state: the blocks that are always in use must be
     * marked so. A clear bit there (a zeroed bitmap block, replayed or
     * written after a crash, when the free counts are only hints) shows a
     * damaged bitmap whose clear bits of blocks in use the allocator
     * would hand out again: new files written over directory and extent
     * tree nodes, or (ITAB) over inodes. ext4 refuses such a bitmap too
     * (ext4_validate_block_bitmap). */
    uint64_t bad;
    if (!err)
        err = fs_alloc_check_reserved(fs, &bad);
    if (!err && bad < fs->block_count) {
        fprintf(stderr, "mmapfs: %s: block %llu (%s) is marked free in the block bitmap: "
                "the bitmap is damaged, run fsck.mmapfs -y%s\n", path, (unsigned long long)bad,
                bad < fs->data_start ? "metadata region" : "grown inode table",
                fs->read_only ? " (mounting read-only anyway)" : "");
        if (!fs->read_only)
            err = -EUCLEAN;
    }
    if (!err)
        err = fs_icache_init(fs);
    if (!err)
        err = fs_verified_init(fs);
    if (!err)
        err = check_root(fs, path, before);
out:
    jnl_unlock(fs->jnl);
    return err;
}

/* Frees left-over orphans and marks the superblock mounted; waits until
 * that is durable, so that a crash from now on is seen as one. */
static int mark_mounted(struct fs *fs, const char *path)
{
    int err = jnl_begin(fs->jnl);
    if (err)
        return err;
    err = fs_orphan_recover(fs);
    if (err) {
        fprintf(stderr, "mmapfs: %s: cannot free orphan inodes: %s\n", path, strerror(-err));
        err = fs_end(fs, err);
        return err;
    }
    struct mmapfs_disk_superblock *sb = fs_super_write(fs);
    if (!sb) {
        jnl_end(fs->jnl);
        return jnl_error(fs->jnl) ? jnl_error(fs->jnl) : -ENOMEM;
    }
    struct timespec now;
    fs_now(&now);
    sb->state = MMAPFS_STATE_MOUNTED | (sb->state & MMAPFS_STATE_ERROR);
    sb->mount_time = (uint64_t)now.tv_sec;
    sb->write_time = (uint64_t)now.tv_sec;
    sb->mount_count++;
    fs_super_put(fs, sb);
    uint64_t seq = jnl_running_seq(fs->jnl);
    jnl_end(fs->jnl);
    return jnl_commit_wait(fs->jnl, seq);
}

int fs_mount(struct fs **out, const struct fs_options *opt)
{
    if (!out || !opt || !opt->path)
        return -EINVAL;
    *out = NULL;
    struct fs *fs = calloc(1, sizeof(*fs));
    if (!fs)
        return -ENOMEM;
    fs->lock_fd = -1;
    fs->read_only = opt->read_only != 0;
    fs->discard = opt->discard && !fs->read_only;
    fs->path = strdup(opt->path);
    void *zero = mmap(NULL, FS_ZERO_BYTES, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (!fs->path || zero == MAP_FAILED) {
        if (zero != MAP_FAILED)
            munmap(zero, FS_ZERO_BYTES);
        fs_destroy(fs);
        return -ENOMEM;
    }
    fs->zero_block = zero;

    int err = lock_image(fs, opt->path);
    if (err)
        goto fail;
    struct mmio_config cfg = { .sync_delay_us = opt->sync_delay_us, .backend = opt->backend,
                               .read_only = fs->read_only };   /* read-only media too */
    err = mmio_open(&fs->io, opt->path, 0, 0, &cfg);
    if (err) {
        fprintf(stderr, "mmapfs: %s: cannot open: %s\n", opt->path, mmio_open_strerror(err));
        goto fail;
    }
    struct mmapfs_disk_superblock sb;
    err = check_home_superblock(fs, opt->path, &sb);
    if (err)
        goto fail;
    /* Before the journal replay writes anything: nobody else may use the
     * image, here or on another machine (a read-only mount does not
     * claim it, as with ext4). */
    if (!fs->read_only && (sb.feature_incompat & MMAPFS_FEATURE_INCOMPAT_MMP)) {
        err = fs_mmp_claim(&fs->mmp, opt->path, &sb, MMP_MOUNT, "mmapfs", stderr);
        if (err)
            goto fail;
    }
    fs_host_space_init(fs);

    struct jnl_geometry geo = {
        .journal_start = fs->journal_start,
        .journal_blocks = fs->journal_blocks,
        .block_count = fs->block_count,
    };
    struct jnl_config jcfg = {
        .commit_interval_ms = (uint64_t)(opt->commit_interval_s ? opt->commit_interval_s : 5) *
                              1000u,
        .read_only = fs->read_only,
    };
    err = jnl_open(&fs->jnl, fs->io, &geo, &jcfg);
    if (err) {
        char hint[160];
        fprintf(stderr, "mmapfs: %s: cannot open the journal: %s%s\n", opt->path,
                strerror(-err), fs_super_backup_hint(fs->io, &sb, hint, sizeof(hint)));
        goto fail;
    }
    jnl_set_durable_callback(fs->jnl, fs_alloc_durable, fs);
    fs_mmp_on_lost(fs->mmp, mmp_lost, fs);
    err = load_after_replay(fs, opt->path, &sb);
    if (!err && !fs->read_only)
        err = mark_mounted(fs, opt->path);
    if (err) {
        fs_mmp_on_lost(fs->mmp, NULL, NULL);
        jnl_close(fs->jnl);
        fs->jnl = NULL;
        goto fail;
    }
    *out = fs;
    return 0;
fail:
    fs_destroy(fs);
    return err;
}

int fs_unmount(struct fs *fs)
{
    if (!fs)
        return 0;
    int err = 0;
    if (!fs->read_only) {
        err = jnl_begin(fs->jnl);
        if (!err) {
            /* no lookup reference survives the unmount */
            err = fs_undo_failed(fs, fs_orphan_recover(fs));
            struct mmapfs_disk_superblock *sb = fs_super_write(fs);
            if (sb) {
                struct timespec now;
                fs_now(&now);
                sb->state = (err ? MMAPFS_STATE_MOUNTED : MMAPFS_STATE_CLEAN) |
                            (sb->state & MMAPFS_STATE_ERROR);
                sb->free_blocks = fs->free_blocks;
                sb->free_inodes = fs->free_inodes;
                sb->write_time = (uint64_t)now.tv_sec;
                fs_super_put(fs, sb);
            } else if (!err) {
                err = jnl_error(fs->jnl) ? jnl_error(fs->jnl) : -ENOMEM;
            }
            jnl_end(fs->jnl);
        }
    }
    fs_mmp_on_lost(fs->mmp, NULL, NULL);    /* the journal goes away */
    int cerr = jnl_close(fs->jnl);
    fs->jnl = NULL;
    if (cerr)
        err = cerr;
    /* clean: the next mount need not wait out the heartbeat */
    cerr = fs_mmp_release(fs->mmp, !err);
    fs->mmp = NULL;
    if (cerr && !err)
        err = cerr;
    fs_destroy(fs);
    return err;
}

void fs_abandon(struct fs *fs)
{
    if (!fs)
        return;
    fs_mmp_on_lost(fs->mmp, NULL, NULL);
    jnl_abandon(fs->jnl);
    fs->jnl = NULL;
    fs_mmp_release(fs->mmp, 0);      /* a crash leaves the heartbeat live */
    fs->mmp = NULL;
    fs_destroy(fs);
}
