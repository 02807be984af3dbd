/*
 * fsck/mmp.c — fsck and multi-mount protection (mmp.c): -n only looks at
 * the MMP block and warns about a holder (as it warns about a local lock);
 * repairs claim the block like a mount (waiting out a heartbeat that may
 * be dead) and mark it FSCK while they run, so that no mount anywhere
 * starts meanwhile; the block is released CLEAN at the end.
 */
#include <errno.h>
#include <string.h>

#include "fsck/fsck_i.h"
#include "fs/mmp.h"

#define PROG CHECK_PROG

int fsck_mmp(struct check *c)
{
    if (!(c->sb.feature_incompat & MMAPFS_FEATURE_INCOMPAT_MMP) || c->mmp)
        return 0;       /* no MMP, or claimed already (before a superblock repair) */
    if (c->opt.mode == FS_CHECK_NO) {
        struct mmapfs_disk_mmp b;
        char who[256];
        int err = fs_mmp_peek(c->path, c->sb.mmp_block, &b);
        if (err) {
            fsck_info(c, "cannot read the MMP block: %s", strerror(-err));
            return 0;
        }
        if (fs_mmp_block_valid(&b) && b.seq == MMAPFS_MMP_SEQ_CLEAN)
            return 0;
        fs_mmp_describe(&b, who, sizeof(who));
        if (c->out)
            fprintf(c->out, PROG ": %s: warning: the MMP block is not released (%s%s): "
                    "checking it read-only anyway; a filesystem in use can show errors it "
                    "does not have\n", c->path,
                    fs_mmp_block_valid(&b) && b.seq == MMAPFS_MMP_SEQ_FSCK ? "fsck: " : "", who);
        return 0;
    }
    int err = fs_mmp_claim(&c->mmp, c->path, &c->sb, MMP_FSCK, PROG, c->out);
    if (err == -EBUSY) {
        if (c->out)
            fprintf(c->out, PROG ": %s: refusing to repair an image in use; unmount it "
                    "first (fsck.mmapfs -n checks it read-only)\n", c->path);
        return FSCK_EXIT_OPERATIONAL;
    }
    if (err) {
        if (c->out)
            fprintf(c->out, PROG ": %s: multi-mount protection: %s\n", c->path,
                    strerror(-err));
        return FSCK_EXIT_OPERATIONAL;
    }
    return 0;
}

void fsck_mmp_release(struct check *c)
{
    fs_mmp_release(c->mmp, 1);
    c->mmp = NULL;
}
