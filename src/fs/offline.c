/*
 * offline.c — opening an unmounted image for mmapfs-trim and
 * mmapfs-resize: the same exclusivity as a mount (not mounted, exclusive
 * flock) and a superblock that says the image was unmounted cleanly, so
 * that the journal holds nothing and the bitmaps and free counts are exact.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/fs_i.h"
#include "fs/mmp.h"
#include "fs/super_backup.h"
#include "fs/offline.h"

/* Features that change nothing the offline tools read or write (the
 * bitmaps, the journal, the superblock): inode-resident extents (0x1),
 * chained xattr blocks (0x2) and in-inode xattrs (0x8); a grown inode
 * table (0x10), which resize itself writes (its blocks are set in the block
 * bitmap); and MMP (0x4), whose block the tools claim like fsck -y. Any
 * other bit is refused. */
#define OFFLINE_INCOMPAT_OK (MMAPFS_FEATURE_INCOMPAT_INODE_DATA | \
                             MMAPFS_FEATURE_INCOMPAT_XATTR_CHAIN | \
                             MMAPFS_FEATURE_INCOMPAT_INODE_XATTR | \
                             MMAPFS_FEATURE_INCOMPAT_ITAB | \
                             MMAPFS_FEATURE_INCOMPAT_MMP)

static int say(char *msg, size_t len, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int say(char *msg, size_t len, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (msg && len)
        vsnprintf(msg, len, fmt, ap);
    va_end(ap);
    return err;
}

/* Claims the MMP block as fsck -y does; on a refusal msg names the holder. */
static int claim_mmp(struct fs_offline *o, char *msg, size_t msg_len)
{
    int err = fs_mmp_claim(&o->mmp, o->path, &o->sb, MMP_FSCK, NULL, NULL);
    if (err == -EBUSY) {
        struct mmapfs_disk_mmp b;
        char who[256] = "unknown holder";
        memset(&b, 0, sizeof(b));
        if (fs_mmp_peek(o->path, o->sb.mmp_block, &b) == 0)
            fs_mmp_describe(&b, who, sizeof(who));
        return say(msg, msg_len, err, "in use (multi-mount protection): %s%s", who,
                   fs_mmp_block_valid(&b) && b.seq == MMAPFS_MMP_SEQ_FSCK
                       ? " (being repaired by fsck.mmapfs)" : "");
    }
    if (err)
        return say(msg, msg_len, err, "multi-mount protection: %s", strerror(-err));
    return 0;
}

int fs_offline_open(struct fs_offline *o, const char *path, char *msg, size_t msg_len)
{
    struct stat st;
    int err;

    memset(o, 0, sizeof(*o));
    o->lock_fd = -1;
    o->path = strdup(path);
    if (!o->path)
        return say(msg, msg_len, -ENOMEM, "out of memory");
    o->lock_fd = open(path, O_RDWR | O_CLOEXEC);
    if (o->lock_fd < 0 || fstat(o->lock_fd, &st) != 0) {
        err = -errno;
        say(msg, msg_len, err, "cannot open it read-write: %s", strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        err = say(msg, msg_len, -EINVAL, "not a regular file or block device");
        goto fail;
    }
    /* a read-only block device (losetup -r, BLKROSET) still opens
     * read-write; its shared writable mapping then fails with EINVAL */
    int ro_device = 0;
    if (S_ISBLK(st.st_mode) && ioctl(o->lock_fd, BLKROGET, &ro_device) == 0 && ro_device) {
        err = say(msg, msg_len, -EROFS, "cannot open it read-write: %s", strerror(EROFS));
        goto fail;
    }
    o->regular = S_ISREG(st.st_mode);
    if (fs_image_mounted(o->lock_fd)) {
        err = say(msg, msg_len, -EBUSY, "it is mounted: unmount it first "
                  "(fusermount3 -u MOUNTPOINT)");
        goto fail;
    }
    err = fs_lock_image(o->lock_fd, 2000);
    if (err) {
        say(msg, msg_len, err, err == -EBUSY ? "in use by another program "
            "(a mount, fsck or another tool)" : "cannot lock it: %s", strerror(-err));
        goto fail;
    }
    err = mmio_open(&o->io, path, 0, 0, NULL);
    if (err) {
        say(msg, msg_len, err, "cannot open: %s", mmio_open_strerror(err));
        goto fail;
    }
    o->image_bytes = mmio_size(o->io);
    if (o->image_bytes < MMAPFS_BLOCK_SIZE) {
        err = say(msg, msg_len, -EINVAL, "not an mmapfs filesystem (too small)");
        goto fail;
    }
    err = mmio_read_at(o->io, 0, &o->sb, sizeof(o->sb));
    if (err) {
        say(msg, msg_len, err, "cannot read the superblock: %s", strerror(-err));
        goto fail;
    }
    char why[200];
    err = fs_super_validate(&o->sb, o->image_bytes, why, sizeof(why));
    if (err && fs_super_image_cut(o->io, &o->sb, msg, msg_len)) {
        err = -EFBIG;
        goto fail;
    }
    if (err) {
        say(msg, msg_len, err, "%s%s", why,
            err == -EUCLEAN ? " (run fsck.mmapfs)" : "");
        goto fail;
    }
    if ((o->sb.feature_incompat & ~OFFLINE_INCOMPAT_OK) || o->sb.feature_ro_compat) {
        err = say(msg, msg_len, -EOPNOTSUPP, "features this tool does not know "
                  "(incompat %#x, ro_compat %#x): use a newer version",
                  o->sb.feature_incompat, o->sb.feature_ro_compat);
        goto fail;
    }
    /* a live holder elsewhere first: its image does not look clean, but
     * "run fsck" would be the wrong advice */
    if (o->sb.feature_incompat & MMAPFS_FEATURE_INCOMPAT_MMP) {
        err = claim_mmp(o, msg, msg_len);
        if (err)
            goto fail;
    }
    if (!(o->sb.state & MMAPFS_STATE_CLEAN) || (o->sb.state & MMAPFS_STATE_ERROR)) {
        err = say(msg, msg_len, -EUCLEAN, "not cleanly unmounted%s: run fsck.mmapfs "
                  "-y (or mount and unmount it) first",
                  (o->sb.state & MMAPFS_STATE_ERROR) ? " (errors recorded)" : "");
        goto fail;
    }
    return 0;
fail:
    fs_offline_close(o);
    return err;
}

void fs_offline_close(struct fs_offline *o)
{
    mmio_close(o->io);
    fs_mmp_release(o->mmp, 1);
    if (o->lock_fd >= 0)
        close(o->lock_fd);
    free(o->path);
    memset(o, 0, sizeof(*o));
    o->lock_fd = -1;
}
