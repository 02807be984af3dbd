/*
 * fsck/repair.c — the repair driver and the two small repair phases.
 *
 * fsck_repair() runs at the end of a round with -y/-p: the earliest phase
 * that has work, because each later phase needs the picture the earlier
 * ones repair (an entry to a corrupt inode must not be removed before the
 * inode's checksum is repaired; shared blocks are sorted out on readable
 * trees; link counts are computed on repaired directories):
 *   A  inode records: checksum recomputed, inode cleared, root rewritten,
 *      tree/xattr/orphan pointers dropped                  (this file)
 *   B  corrupt trees salvaged and rebuilt                  (fsck/salvage.c)
 *   C  blocks claimed twice: cloned or punched             (fsck/repair_dup.c)
 *   D  directories rebuilt, lost+found, reconnection       (fsck/repair_dir.c)
 *      and the orphan list                                 (this file)
 *   E  link counts, sizes, parents, block bitmap, counts   (fsck/bitmaps.c)
 * -p (preen) repairs only the orphan list and phase E; anything else stops
 * it with "run fsck.mmapfs -y".
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsck/fsck_i.h"

/* Preen met a problem that needs -y. Returns 0 (nothing repaired). */
static int stop_preen(struct check *c, const char *what)
{
    c->stop_preen = 1;
    fsck_info(c, "%s: not repaired in preen mode: run fsck.mmapfs -y", what);
    return 0;
}

/* ---- phase A: inode records --------------------------------------------------------- */

/* Rewrites the root's record as a directory, keeping what can be kept. */
static void root_record(struct check *c, struct mmapfs_disk_inode *di)
{
    struct mmapfs_disk_inode old = *di;
    int was_dir = (old.mode & S_IFMT) == S_IFDIR;
    memset(di, 0, sizeof(*di));
    di->mode = S_IFDIR | (was_dir ? (old.mode & 07777) : 0755);
    di->uid = old.uid;
    di->gid = old.gid;
    di->nlink = 2;
    di->parent = MMAPFS_ROOT_INO;
    di->generation = old.generation;
    di->atime_sec = old.atime_sec;
    di->mtime_sec = old.mtime_sec;
    di->ctime_sec = old.ctime_sec;
    di->crtime_sec = old.crtime_sec;
    /* keep the index if the root block still says it is the root's index */
    const uint8_t *p = old.tree_root >= c->data_start ? fsck_block(c, old.tree_root) : NULL;
    struct mmapfs_disk_btree_header h;
    if (p) {
        memcpy(&h, p, sizeof(h));
        if (h.magic == MMAPFS_BTREE_MAGIC && h.owner == MMAPFS_ROOT_INO &&
            h.type == MMAPFS_TREE_DIR)
            di->tree_root = old.tree_root;
    }
}

/* Names of inode ino's in-inode area that its (valid) xattr chain holds
 * too lose their in-inode copy; the chain's wins. 0 or -errno. */
static int drop_ixattr_dups(struct check *c, uint64_t ino, struct mmapfs_disk_inode *di)
{
    char msg[160];
    uint64_t blk = di->xattr_block, next;
    unsigned n = 0;
    if (!fsck_ixattr_ok(c, di, NULL, 0) ||
        !(c->sb.feature_incompat & MMAPFS_FEATURE_INCOMPAT_INODE_XATTR))
        return 0;
    while (blk && n++ < MMAPFS_XATTR_CHAIN_MAX &&
           !fsck_xattr_block(c, ino, blk, &next, msg, sizeof(msg))) {
        if (fsck_xattr_block_in_inode(c, blk, di->xattr_area, 1))
            fsck_repaired(c, "inode %" PRIu64 ": in-inode copy of an xattr that block %"
                           PRIu64 " holds too dropped", ino, blk);
        blk = next;
    }
    return 0;
}

/* The xattr chain of inode ino is broken: cut it after its last good
 * block (the repair rewrites that block's next pointer), or drop it if
 * its first block is bad. The blocks cut off become free when the bitmap
 * is rebuilt. 0 or -errno. */
static int cut_xattr_chain(struct check *c, uint64_t ino, struct mmapfs_disk_inode *di)
{
    uint8_t *seen = calloc((size_t)(c->block_count + 7) / 8, 1);
    if (!seen)
        return -ENOMEM;
    char msg[160];
    uint64_t blk = di->xattr_block, last = 0, next = 0;
    unsigned kept = 0;
    while (blk && kept < MMAPFS_XATTR_CHAIN_MAX && blk < c->block_count &&
           !check_bit(seen, blk) && !fsck_xattr_block(c, ino, blk, &next, msg, sizeof(msg))) {
        check_set_bit(seen, blk);
        last = blk;
        kept++;
        blk = next;
    }
    free(seen);
    if (!last) {
        fsck_repaired(c, "inode %" PRIu64 ": unusable xattr block %" PRIu64 " dropped "
                       "(its extended attributes are lost)", ino, di->xattr_block);
        di->xattr_block = 0;
        return 0;
    }
    fsck_repaired(c, "inode %" PRIu64 ": xattr chain cut after block %" PRIu64 " (%u block%s "
                   "kept; the extended attributes of the rest are lost)", ino, last, kept,
                   kept == 1 ? "" : "s");
    return fsck_xattr_set_next(c, last, 0);
}

/* fsck_record_mend with the type the inode's directory entries give (pass
 * 2 noted them), else without: *di mended, or -1 (garbage). */
static int mend_record(struct check *c, uint64_t ino, struct mmapfs_disk_inode *di)
{
    struct mmapfs_disk_inode m = *di;
    int fixed = fsck_record_mend(c, ino, &m, fsck_entries_type(fsck_ci(c, ino)));
    if (fixed < 0) {
        m = *di;
        fixed = fsck_record_mend(c, ino, &m, 0);
    }
    if (fixed >= 0)
        *di = m;
    return fixed;
}

/* Applies the record repairs of one inode. 0 or -errno. */
static int repair_record(struct check *c, uint64_t ino, uint16_t rf)
{
    struct mmapfs_disk_inode di;
    int err = fsck_read_inode(c, ino, &di);
    if (err)
        return err;
    if (rf & RF_REC_CLEAR) {
        /* a record pass 1 found corrupt, with no valid type of its own,
         * but its entries give one it fits: a FIFO whose type bits were
         * damaged is kept (checked again by the next round, as every
         * repair of this phase). A valid record planned for clearing (a
         * symlink with no target left) has no entry type noted. */
        struct mmapfs_disk_inode m = di;
        if (ino != MMAPFS_ROOT_INO && fsck_entries_type(fsck_ci(c, ino)) &&
            mend_record(c, ino, &m) >= 0)
            rf = (rf & ~RF_REC_CLEAR) | RF_REC_SUM;
    }
    if (rf & RF_REC_CLEAR) {
        fsck_repaired(c, "inode %" PRIu64 ": cleared (freed in the inode bitmap); entries "
                       "naming it are removed", ino);
        /* a record left live would make the next check (fsck_pass_inodes)
         * take the inode for one whose bitmap bit was lost */
        di.nlink = 0;
        err = fsck_write_inode(c, ino, &di);
        return err ? err : fsck_write_inode_bit(c, ino, 0);
    }
    if (rf & RF_REC_ROOT) {
        root_record(c, &di);
        fsck_repaired(c, "root directory: record rewritten as a directory (mode %#o)%s",
                       di.mode, di.tree_root ? "" : ", empty");
        err = fsck_write_inode(c, ino, &di);
        return err ? err : fsck_write_inode_bit(c, ino, 1);
    }
    if (rf & RF_REC_SUM) {
        int fixed = mend_record(c, ino, &di);
        if (fixed < 0)
            return 0;       /* changed under us? leave it to the next round */
        if (fixed)
            fsck_repaired(c, "inode %" PRIu64 ": %d damaged field%s reset, checksum recomputed",
                           ino, fixed, fixed == 1 ? "" : "s");
        else
            fsck_repaired(c, "inode %" PRIu64 ": checksum recomputed (the record looks sane)",
                           ino);
    }
    if ((rf & RF_REC_TYPE) && fsck_record_type_from_tree(c, ino, &di))
        fsck_repaired(c, "inode %" PRIu64 ": type set to %s, as its %s says", ino,
                       S_ISDIR(di.mode) ? "directory" : "regular file",
                       di.tree_root ? "tree" : "inline area");
    if (rf & RF_NO_TREE) {
        fsck_repaired(c, "inode %" PRIu64 ": tree pointer %s dropped", ino,
                       di.flags ? "beside inline content" : "of a file without data");
        di.tree_root = 0;
    }
    if (rf & RF_NO_XATTR) {
        err = cut_xattr_chain(c, ino, &di);
        if (err)
            return err;
    }
    if (rf & RF_NO_IXATTR) {
        char msg[160] = "";
        fsck_ixattr_ok(c, &di, msg, sizeof(msg));
        fsck_repaired(c, "inode %" PRIu64 ": damaged in-inode xattr area dropped (%s; its "
                       "in-inode extended attributes are lost)", ino, msg);
        memset(di.xattr_area, 0, sizeof(di.xattr_area));
    }
    if (rf & RF_IXATTR_DUP) {
        err = drop_ixattr_dups(c, ino, &di);
        if (err)
            return err;
    }
    uint32_t guess = (rf & RF_NO_INLINE) ? fsck_inline_flags_guess(c, &di) : 0;
    if (guess) {
        fsck_repaired(c, "inode %" PRIu64 ": flags %#x set to %#x, as its inline area says",
                       ino, di.flags, guess);
        di.flags = guess;
    } else if (rf & RF_NO_INLINE) {
        fsck_repaired(c, "inode %" PRIu64 ": unusable flags %#x dropped with the inline "
                       "area (its inline extents or data are lost)", ino, di.flags);
        di.flags = 0;
        memset(di.inline_area, 0, sizeof(di.inline_area));
    }
    if (rf & RF_ORPHAN_NEXT) {
        fsck_repaired(c, "inode %" PRIu64 ": orphan_next cleared", ino);
        di.orphan_next = 0;
    }
    return fsck_write_inode(c, ino, &di);
}

/* Phase A. 1 (written) or -errno. */
static int repair_records(struct check *c)
{
    int err = fsck_begin_repair(c);
    for (uint64_t ino = fsck_ci_next(c, 1); !err && ino <= c->inode_count;
         ino = fsck_ci_next(c, ino + 1)) {
        uint16_t rf = fsck_ci(c, ino)->rflags & RF_RECORD;
        if (!rf)
            continue;
        err = repair_record(c, ino, rf);
        c->repairs++;
    }
    if (!err)
        err = fsck_io_sync(c);
    return err ? err : 1;
}

/* ---- the orphan list ------------------------------------------------------------------ */

/* Superblock edit: a new orphan list head. */
static void edit_orphan_head(struct mmapfs_disk_superblock *sb, void *arg)
{
    sb->orphan_head = *(uint64_t *)arg;
}

/* Rewrites the orphan list: exactly the in-use inodes no entry names that
 * have link count 0 (the next mount releases them, as after a crash). The
 * members' links are written first, then the head. 1 or -errno. */
static int rebuild_orphans(struct check *c)
{
    int err = fsck_begin_repair(c);
    uint64_t head = 0, prev = 0, n = 0;
    struct mmapfs_disk_inode di;
    for (uint64_t ino = fsck_ci_next(c, 1); !err && ino <= c->inode_count;
         ino = fsck_ci_next(c, ino + 1)) {
        if (!(fsck_ci(c, ino)->rflags & RF_ORPHAN_OK) || ino == MMAPFS_ROOT_INO)
            continue;
        if (!head)
            head = ino;
        if (prev) {
            err = fsck_read_inode(c, prev, &di);
            if (!err && di.orphan_next != ino) {
                di.orphan_next = ino;
                err = fsck_write_inode(c, prev, &di);
            }
        }
        prev = ino;
        n++;
    }
    if (!err && prev) {
        err = fsck_read_inode(c, prev, &di);
        if (!err && di.orphan_next) {
            di.orphan_next = 0;
            err = fsck_write_inode(c, prev, &di);
        }
    }
    if (!err)
        err = fsck_io_sync(c);
    if (!err)
        err = fsck_write_super(c, edit_orphan_head, &head);
    /* former members that left the list: unlink them */
    for (uint64_t ino = fsck_ci_next(c, 1); !err && ino <= c->inode_count;
         ino = fsck_ci_next(c, ino + 1)) {
        if (!(fsck_ci(c, ino)->state & CI_ORPHAN) || (fsck_ci(c, ino)->rflags & RF_ORPHAN_OK))
            continue;
        err = fsck_read_inode(c, ino, &di);
        if (!err && di.orphan_next) {
            di.orphan_next = 0;
            err = fsck_write_inode(c, ino, &di);
        }
    }
    if (!err)
        err = fsck_io_sync(c);
    if (err)
        return err;
    fsck_repaired(c, "orphan list rebuilt: %" PRIu64 " unlinked inode%s, released at the "
                   "next mount", n, n == 1 ? "" : "s");
    c->repairs++;
    return 1;
}

/* ---- driver ----------------------------------------------------------------------------- */

int fsck_repair(struct check *c)
{
    int preen = c->opt.mode == FS_CHECK_PREEN;
    if (c->nrecord)
        return preen ? stop_preen(c, "corrupt inode records") : repair_records(c);
    if (c->nsalvage)
        return preen ? stop_preen(c, "corrupt trees") : fsck_repair_salvage(c);
    /* every in-use inode and tree is readable from here on */
    c->trust_claims = 1;
    if (c->ndup)
        return preen ? stop_preen(c, "blocks claimed twice") : fsck_repair_dups(c);
    if (c->ndirfix || c->nreconnect || c->orphan_bad) {
        int r = 0;
        if (c->ndirfix || c->nreconnect) {
            if (preen)
                return stop_preen(c, "directory entries or unreachable inodes");
            r = fsck_repair_dirs(c);
            if (r < 0)
                return r;
        }
        if (c->orphan_bad) {
            int r2 = rebuild_orphans(c);
            if (r2 < 0)
                return r2;
            r |= r2;
        }
        return r;
    }
    return fsck_apply_fixes(c);
}
