/*
 * fsck/record.c — an inode record whose checksum is wrong: is it still an
 * inode mmapfs wrote, with a few damaged bytes (then those fields are set
 * to safe values and the checksum recomputed), or garbage (then the inode
 * is cleared)?
 *
 * The type comes first, taken from the inode's own evidence where the
 * mode contradicts it: when the record's tree root is a node of this inode
 * whose tree type contradicts the mode (a directory index under a file
 * mode or the reverse), the type is taken from the node (the node is
 * checksummed with its block number and names its owner, the mode is one
 * field of the record); likewise a file's inline extents or inline data
 * under the mode of a type that has none (a directory, a device, an
 * invalid type) make it a regular file, and a valid node of this inode at
 * the tree root of a device, FIFO or socket gives the type too. The same
 * holds for a record whose checksum is right (fsck_record_type_from_tree).
 * When its own tree gives no type, the type every directory entry naming
 * the inode gives (noted by pass 2) is taken if the record fits it: a
 * symlink needs a target, a device, FIFO or socket has no data (a regular
 * file that one flipped bit made a symlink would otherwise be one, its
 * content a target cut at its first NUL; a FIFO with no valid type would
 * be cleared). Directories are left to their own index.
 * Only then are the other fields checked against the type: checked
 * against a damaged type, the tree root and the inline area would look
 * like the damage and go, with the file's data. Without a valid type
 * after that the record is garbage.
 *
 * Other fields that break a rule of docs/FORMAT.md §6 each count as one
 * damaged field; pointer fields are dropped (an out-of-range tree root or
 * xattr block, orphan_next), rule fields are reset (a damaged in-inode
 * xattr area, nanoseconds, rdev of a non-device). Flags that do not fit
 * the inline area, or none beside a used area, are set from what the
 * area holds when it holds a file's extents or bytes (the flags are the
 * damaged field), else cleared with the area. Fields the later passes
 * repair by themselves (size, blocks, parent) still count. More than
 * RECORD_MAX_DAMAGE damaged fields: garbage.
 */
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fsck/fsck_i.h"
#include "fs/xattr.h"

#define RECORD_MAX_DAMAGE 2

/* See fsck_i.h. */
uint16_t fsck_node_type(struct check *c, uint64_t ino, uint64_t blk)
{
    const uint8_t *p = blk >= c->data_start ? fsck_block(c, blk) : NULL;
    struct mmapfs_disk_btree_header h;
    if (!p)
        return 0;
    memcpy(&h, p, sizeof(h));
    if (h.magic != MMAPFS_BTREE_MAGIC || h.owner != ino ||
        h.checksum != bt_block_checksum(blk, p))
        return 0;
    return h.type;
}

/* Entry types noted for a corrupt inode: DT_* when all agree, this value
 * once two differ. */
#define ENTRIES_DISAGREE 0xff

/* See fsck_i.h. */
void fsck_note_entry_type(struct check_inode *ci, uint8_t type)
{
    if (ci->dtype == 0)
        ci->dtype = type;
    else if (ci->dtype != type)
        ci->dtype = ENTRIES_DISAGREE;
}

/* See fsck_i.h. */
uint8_t fsck_entries_type(const struct check_inode *ci)
{
    /* a valid inode's dtype is its own type, not its entries' */
    return (ci->state & CI_VALID) || ci->dtype == ENTRIES_DISAGREE ? 0 : ci->dtype;
}

/* Can the record be of the type t its directory entries give? Its data
 * decides: a symlink needs a target (a map or inline bytes, a size from 1
 * to MMAPFS_SYMLINK_MAX), a device, FIFO or socket has none, a regular
 * file may have either. A directory with entries has an index that says
 * so (fsck_record_type_from_tree); an empty one has none, but only a
 * directory has a parent, and an empty one has no size, no data and two
 * links ("." and its entry). Never a directory made something else. */
static int entries_type_fits(const struct mmapfs_disk_inode *di, uint8_t t)
{
    int data = di->tree_root || (di->flags & (MMAPFS_INODE_EXTENTS | MMAPFS_INODE_INLINE_DATA));
    uint8_t dt = fs_inode_dtype(di->mode);
    if (t == dt || dt == DT_DIR)
        return 0;
    switch (t) {
    case DT_REG:
        return 1;
    case DT_LNK:
        return data && di->size >= 1 && di->size <= MMAPFS_SYMLINK_MAX;
    case DT_FIFO: case DT_SOCK: case DT_CHR: case DT_BLK:
        return !data && di->size == 0;
    case DT_DIR:
        return !data && di->size == 0 && di->nlink == 2 && di->parent != 0 && !di->rdev;
    default:
        return 0;
    }
}

/* See fsck_i.h. */
int fsck_record_mend(struct check *c, uint64_t ino, struct mmapfs_disk_inode *di,
                     uint8_t entries)
{
    int damage = 0;
    if (di->mode & ~(uint32_t)(S_IFMT | 07777)) {
        di->mode &= (uint32_t)(S_IFMT | 07777);
        damage++;
    }
    /* The type first, while the tree root and the inline area are as they
     * were written: checked against a damaged type, they would look like
     * the damage and be dropped, and the file's data with them. The root
     * directory takes only a directory's type from its tree. */
    uint32_t type0 = di->mode & S_IFMT;
    struct mmapfs_disk_inode typed = *di;
    int from_tree = fsck_record_type_from_tree(c, ino, &typed) &&
                    (ino != MMAPFS_ROOT_INO || S_ISDIR(typed.mode));
    if (from_tree)
        *di = typed;
    /* where the inode's own data leaves a choice (no node of its own, or a
     * file's map, which a symlink has too), the type its entries give
     * (checksummed directory blocks) if the record fits it */
    if (ino != MMAPFS_ROOT_INO && (!from_tree || (S_ISREG(di->mode) && entries == DT_LNK)) &&
        entries_type_fits(di, entries))
        di->mode = DTTOIF(entries) | (di->mode & 07777);
    damage += (di->mode & S_IFMT) != type0;
    uint8_t dt = fs_inode_dtype(di->mode);
    if (!dt)
        return -1;
    int has_tree = dt == DT_REG || dt == DT_LNK || dt == DT_DIR;
    if (di->tree_root && (!has_tree || di->tree_root < c->data_start ||
                          di->tree_root >= c->block_count)) {
        di->tree_root = 0;
        damage++;
    }
    if (di->xattr_block && (di->xattr_block < c->data_start ||
                            di->xattr_block >= c->block_count)) {
        di->xattr_block = 0;
        damage++;
    }
    if (di->orphan_next > c->inode_count) {
        di->orphan_next = 0;
        damage++;
    }
    int area_used = 0;
    for (size_t i = 0; i < sizeof(di->inline_area); i++)
        area_used |= di->inline_area[i];
    if (!fsck_inline_flags_ok(c, di) || (!di->flags && area_used)) {
        /* flags that do not fit the area, or none beside a used one: the
         * flags are the damaged field when the area holds what a file's
         * does (as in pass 1 for a sound record), else the area goes */
        uint32_t guess = fsck_inline_flags_guess(c, di);
        di->flags = guess;
        if (!guess)
            memset(di->inline_area, 0, sizeof(di->inline_area));
        damage++;
    }
    if (di->rdev && dt != DT_CHR && dt != DT_BLK) {
        di->rdev = 0;
        damage++;
    }
    uint32_t *ns[] = { &di->atime_nsec, &di->mtime_nsec, &di->ctime_nsec, &di->crtime_nsec };
    for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++)
        if (*ns[i] > 999999999u) {
            *ns[i] = 0;
            damage++;
        }
    if (!fsck_ixattr_ok(c, di, NULL, 0)) {
        memset(di->xattr_area, 0, sizeof(di->xattr_area));
        damage++;
    }
    damage += di->blocks > c->block_count;
    damage += dt == DT_DIR && (di->parent < 1 || di->parent > c->inode_count);
    damage += dt == DT_REG && di->size > MMAPFS_MAX_FILE_SIZE;
    damage += dt == DT_LNK && (di->size < 1 || di->size > MMAPFS_SYMLINK_MAX);
    damage += (di->flags & MMAPFS_INODE_INLINE_DATA) && di->size > MMAPFS_INLINE_BYTES;
    return damage > RECORD_MAX_DAMAGE ? -1 : damage;
}

/* Does the inline area hold what only a regular file or symlink has,
 * with no tree root beside it
 * (docs/FORMAT.md §6): a first inline extent inside the data area, or
 * inline data of 1..60 bytes with zeros after its size? A flags field
 * damaged on an inode of another type finds its area zero. */
static int inline_holds_file(const struct check *c, const struct mmapfs_disk_inode *di)
{
    return !di->tree_root && fsck_inline_holds_file(c, di);
}

/* See fsck_i.h. */
int fsck_inline_holds_file(const struct check *c, const struct mmapfs_disk_inode *di)
{
    if (!(c->sb.feature_incompat & MMAPFS_FEATURE_INCOMPAT_INODE_DATA))
        return 0;
    if (di->flags == MMAPFS_INODE_EXTENTS) {
        struct mmapfs_disk_extent e;
        uint64_t lblk;
        mmapfs_inline_extent_get(di->inline_area, 0, &lblk, &e);
        return e.len >= 1 && e.start >= c->data_start && e.start < c->block_count &&
               e.len <= c->block_count - e.start;
    }
    if (di->flags != MMAPFS_INODE_INLINE_DATA || di->size < 1 || di->size > MMAPFS_INLINE_BYTES)
        return 0;
    int any = 0;
    for (size_t i = 0; i < MMAPFS_INLINE_BYTES; i++) {
        if (i >= di->size && di->inline_area[i])
            return 0;
        any |= di->inline_area[i];
    }
    return any;
}

/* See fsck_i.h. */
uint32_t fsck_inline_flags_guess(const struct check *c, const struct mmapfs_disk_inode *di)
{
    /* the kind the flags name first: a short file's extent can look like
     * inline data (zeros after its size) */
    int ext_first = (di->flags & MMAPFS_INODE_EXTENTS) != 0;
    const uint32_t kinds[] = { ext_first ? MMAPFS_INODE_EXTENTS : MMAPFS_INODE_INLINE_DATA,
                               ext_first ? MMAPFS_INODE_INLINE_DATA : MMAPFS_INODE_EXTENTS };
    struct mmapfs_disk_inode t = *di;
    if (di->tree_root || (!S_ISREG(di->mode) && !S_ISLNK(di->mode)))
        return 0;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        t.flags = kinds[i];
        if (fsck_inline_holds_file(c, &t))
            return kinds[i];
    }
    return 0;
}

static int add_extent_len(void *ctx, uint64_t key, const void *val, size_t len)
{
    struct mmapfs_disk_extent e;
    (void)key;
    (void)len;
    memcpy(&e, val, sizeof(e));
    *(uint64_t *)ctx += e.len;
    return 0;
}

/* Blocks the inline extents of di cover (0 without inline extents, or
 * when they are not in order). */
static uint64_t inline_extent_blocks(const struct mmapfs_disk_inode *di)
{
    uint64_t n = 0;
    return fsck_inline_extents(di, add_extent_len, &n) == 0 ? n : 0;
}

/* See fsck_i.h. */
int fsck_record_type_from_tree(struct check *c, uint64_t ino, struct mmapfs_disk_inode *di)
{
    uint8_t dt = fs_inode_dtype(di->mode);
    if (dt != DT_REG && dt != DT_LNK && inline_holds_file(c, di)) {
        di->mode = S_IFREG | (di->mode & 07777);
        return 1;
    }
    uint16_t tt = di->tree_root ? fsck_node_type(c, ino, di->tree_root) : 0;
    /* a symlink's target fits in one block (at most MMAPFS_SYMLINK_MAX
     * bytes): a longer "symlink" whose extents cover more than one block
     * is a regular file whose mode was damaged */
    if (dt == DT_LNK && di->size > MMAPFS_SYMLINK_MAX &&
        (tt == MMAPFS_TREE_EXTENTS || inline_extent_blocks(di) > 1)) {
        di->mode = S_IFREG | (di->mode & 07777);
        return 1;
    }
    if (tt == MMAPFS_TREE_DIR && dt != DT_DIR) {
        di->mode = S_IFDIR | (di->mode & 07777);
        return 1;
    }
    if (tt == MMAPFS_TREE_EXTENTS && dt != DT_REG && dt != DT_LNK) {
        di->mode = S_IFREG | (di->mode & 07777);
        return 1;
    }
    return 0;
}

/* ---- inode-resident data --------------------------------------------------------- */

/* See fsck_i.h. */
int fsck_inline_flags_ok(const struct check *c, const struct mmapfs_disk_inode *di)
{
    uint32_t f = di->flags;
    if (!f)
        return 1;
    return !(f & ~MMAPFS_INODE_FLAGS_KNOWN) && f != MMAPFS_INODE_FLAGS_KNOWN &&
           (c->sb.feature_incompat & MMAPFS_FEATURE_INCOMPAT_INODE_DATA) && !di->tree_root &&
           (S_ISREG(di->mode) || S_ISLNK(di->mode));
}

/* See fsck_i.h. */
int fsck_inline_extents(const struct mmapfs_disk_inode *di,
                         int (*fn)(void *ctx, uint64_t key, const void *val, size_t len),
                         void *ctx)
{
    static const uint8_t zero[MMAPFS_INLINE_EXTENT_BYTES];
    int unused = 0;
    if (!(di->flags & MMAPFS_INODE_EXTENTS))
        return 0;
    for (unsigned i = 0; i < MMAPFS_INLINE_EXTENTS; i++) {
        if (!memcmp(di->inline_area + i * MMAPFS_INLINE_EXTENT_BYTES, zero, sizeof(zero))) {
            unused = 1;
            continue;
        }
        if (unused)
            return -EUCLEAN;
        struct mmapfs_disk_extent e;
        uint64_t lblk;
        mmapfs_inline_extent_get(di->inline_area, i, &lblk, &e);
        int r = fn(ctx, lblk, &e, sizeof(e));
        if (r)
            return r;
    }
    return 0;
}

/* See fsck_i.h. */
int fsck_ixattr_ok(const struct check *c, const struct mmapfs_disk_inode *di, char *msg,
                    size_t len)
{
    char buf[128];
    if (!(c->sb.feature_incompat & MMAPFS_FEATURE_INCOMPAT_INODE_XATTR)) {
        for (size_t i = 0; i < sizeof(di->xattr_area); i++)
            if (di->xattr_area[i]) {
                if (msg)
                    snprintf(msg, len, "reserved byte %zu not zero (image without "
                             "in-inode xattrs)", 192 + i);
                return 0;
            }
        return 1;
    }
    if (fs_ixattr_check(di->xattr_area, msg ? msg : buf, msg ? len : sizeof(buf)) < 0)
        return 0;
    return 1;
}

/* See fsck_i.h. */
void fsck_inline_to_tree(struct mmapfs_disk_inode *di, uint64_t root)
{
    di->tree_root = root;
    if (di->flags & MMAPFS_INODE_EXTENTS) {
        di->flags &= ~MMAPFS_INODE_EXTENTS;
        memset(di->inline_area, 0, sizeof(di->inline_area));
    }
}
