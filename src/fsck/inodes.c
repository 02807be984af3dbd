/*
 * fsck/inodes.c — fsck pass 1 (every in-use inode: record, extent tree,
 * directory tree nodes, xattr block; marks the blocks each one owns) and
 * pass 1b (for blocks claimed twice, names both owners).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsck/fsck_i.h"
#include "fs/inode.h"
#include "fs/xattr.h"

#define MAX_FILE_BLOCKS (MMAPFS_MAX_FILE_SIZE / MMAPFS_BLOCK_SIZE)
#define DUP_LIST_MAX    4096u    /* duplicate blocks whose owners pass 1b names */

enum owner_kind { KIND_EXTENT = 1, KIND_NODE = 2, KIND_XATTR = 3 };

static const char *kind_name(int kind)
{
    switch (kind) {
    case KIND_EXTENT: return "file data";
    case KIND_NODE:   return "tree node";
    case KIND_XATTR:  return "xattr block";
    default:          return "?";
    }
}

/* Pass 1b state: the duplicate blocks (sorted) and their first owner. */
struct dup_owners {
    uint64_t *blocks;
    uint64_t *owner;
    uint8_t *kind;
    size_t n;
};

/* One inode being walked. */
struct walk_ctx {
    struct check *c;
    uint64_t ino;
    uint32_t mode;
    uint64_t nodes, data_blocks, xattr_blocks;
    uint64_t prev_end;
    uint64_t first_data;       /* physical block of logical block 0, 0 = none */
    int have_prev;
    int bad;                   /* a problem inside this inode's structures */
    int ext_bad;               /* an extent to drop or trim: salvage the tree */
    int xattr_bad;             /* the xattr block is unusable */
    uint8_t ixattr[MMAPFS_IXATTR_BYTES]; /* copy of the in-inode xattr area */
    int ixattr_ok;             /* it is valid (and the image has the feature) */
    int ixattr_dup;            /* a name of the area is in the chain too */
    int acl_bad;               /* an ACL xattr's value does not parse */
    struct dup_owners *dups;   /* NULL in pass 1; set in pass 1b (quiet) */
};

/* ---- block ownership ------------------------------------------------------------ */

/* Reports a run of duplicate blocks found in pass 1b. */
static void report_dup_run(struct walk_ctx *w, uint64_t first, uint64_t last,
                           uint64_t owner, int okind, int kind)
{
    if (first == last)
        fsck_error(w->c, "block %" PRIu64 ": claimed twice: %s of inode %" PRIu64
                    " and %s of inode %" PRIu64, first, kind_name(okind), owner,
                    kind_name(kind), w->ino);
    else
        fsck_error(w->c, "blocks %" PRIu64 "-%" PRIu64 ": claimed twice: %s of inode %"
                    PRIu64 " and %s of inode %" PRIu64, first, last, kind_name(okind), owner,
                    kind_name(kind), w->ino);
}

/* Pass 1b: blocks [start, start+len) of inode w->ino; records the first
 * owner of each listed duplicate block and reports later ones, merging
 * consecutive blocks with the same first owner into one line. */
static void find_owners(struct walk_ctx *w, uint64_t start, uint64_t len, int kind)
{
    struct check *c = w->c;
    struct dup_owners *d = w->dups;
    uint64_t run_first = 0, run_last = 0, run_owner = 0;
    int run_kind = 0, in_run = 0;

    for (uint64_t b = start; b < start + len; b++) {
        if (!check_bits_get(&c->dup, b))
            continue;
        size_t lo = 0, hi = d->n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (d->blocks[mid] < b)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo == d->n || d->blocks[lo] != b)
            continue;               /* past the listed ones: counted by the caller */
        if (!d->owner[lo]) {
            d->owner[lo] = w->ino;
            d->kind[lo] = (uint8_t)kind;
            continue;
        }
        if (in_run && b == run_last + 1 && d->owner[lo] == run_owner && d->kind[lo] == run_kind) {
            run_last = b;
            continue;
        }
        if (in_run)
            report_dup_run(w, run_first, run_last, run_owner, run_kind, kind);
        in_run = 1;
        run_first = run_last = b;
        run_owner = d->owner[lo];
        run_kind = d->kind[lo];
    }
    if (in_run)
        report_dup_run(w, run_first, run_last, run_owner, run_kind, kind);
}

/* Marks [start, start+len) (already range checked) as owned by w->ino. */
static void claim(struct walk_ctx *w, uint64_t start, uint64_t len, int kind)
{
    struct check *c = w->c;
    if (w->dups) {
        find_owners(w, start, len, kind);
        return;
    }
    for (uint64_t b = start; b < start + len; b++) {
        if (!check_bits_get(&c->claimed, b)) {
            fsck_bits_set(&c->claimed, b);
        } else if (!check_bits_get(&c->dup, b)) {
            fsck_bits_set(&c->dup, b);
            c->ndup++;
        }
    }
}

/* ---- trees ------------------------------------------------------------------------ */

/* bt_walk node callback: every node of the tree is owned by the inode. */
static int node_visit(void *ctx, uint64_t blk, unsigned level)
{
    struct walk_ctx *w = ctx;
    (void)level;
    claim(w, blk, 1, KIND_NODE);
    w->nodes++;
    return 0;
}

/* Reports a problem of the inode being walked (silent in pass 1b). */
#define WALK_ERROR(w, fmt, ...)                                                        \
    do {                                                                               \
        (w)->bad = 1;                                                                  \
        if (!(w)->dups)                                                                \
            fsck_error((w)->c, "inode %" PRIu64 ": " fmt, (w)->ino, __VA_ARGS__);     \
    } while (0)
/* An extent problem: the tree is salvaged (the extent dropped or trimmed). */
#define EXT_ERROR(w, fmt, ...)                                                         \
    do {                                                                               \
        (w)->ext_bad = 1;                                                              \
        WALK_ERROR(w, fmt, __VA_ARGS__);                                               \
    } while (0)
/* An xattr block problem: the block is dropped. */
#define XATTR_ERROR(w, fmt, ...)                                                       \
    do {                                                                               \
        (w)->xattr_bad = 1;                                                            \
        WALK_ERROR(w, fmt, __VA_ARGS__);                                               \
    } while (0)

/* bt_walk item callback for extent trees. */
static int extent_item(void *ctx, uint64_t key, const void *val, size_t len)
{
    struct walk_ctx *w = ctx;
    struct check *c = w->c;
    struct mmapfs_disk_extent e;

    if (len != sizeof(e)) {
        EXT_ERROR(w, "extent at logical block %" PRIu64 ": value of %zu bytes, expected %zu",
                   key, len, sizeof(e));
        return 0;
    }
    memcpy(&e, val, sizeof(e));
    if (e.len == 0) {
        EXT_ERROR(w, "extent at logical block %" PRIu64 ": length 0", key);
        return 0;
    }
    if (key >= MAX_FILE_BLOCKS || e.len > MAX_FILE_BLOCKS - key)
        EXT_ERROR(w, "extent at logical block %" PRIu64 " (%u blocks) goes past the "
                   "maximum file size", key, e.len);
    if (w->have_prev && key < w->prev_end)
        EXT_ERROR(w, "extent at logical block %" PRIu64 " overlaps the previous extent "
                   "(which ends at logical block %" PRIu64 ")", key, w->prev_end);
    if (!w->have_prev || key + e.len > w->prev_end)
        w->prev_end = key + e.len;
    w->have_prev = 1;
    if (e.flags & ~MMAPFS_EXTENT_UNWRITTEN)
        EXT_ERROR(w, "extent at logical block %" PRIu64 ": unknown flags %#x", key, e.flags);
    if ((e.flags & MMAPFS_EXTENT_UNWRITTEN) && !S_ISREG(w->mode))
        EXT_ERROR(w, "extent at logical block %" PRIu64 ": unwritten extent in a %s",
                   key, "non-regular file");
    if (e.start < c->data_start || e.start >= c->block_count ||
        e.len > c->block_count - e.start) {
        EXT_ERROR(w, "extent at logical block %" PRIu64 ": physical blocks %" PRIu64
                   "..%" PRIu64 " outside the data area [%" PRIu64 ", %" PRIu64 ")",
                   key, e.start, e.start + e.len - 1, c->data_start, c->block_count);
        return 0;
    }
    if (fsck_in_itab(c, e.start, e.len)) {
        EXT_ERROR(w, "extent at logical block %" PRIu64 ": physical blocks %" PRIu64
                   "..%" PRIu64 " inside the inode table", key, e.start, e.start + e.len - 1);
        return 0;
    }
    claim(w, e.start, e.len, KIND_EXTENT);
    w->data_blocks += e.len;
    if (key == 0)
        w->first_data = e.start;
    return 0;
}

/* Walks the inode's tree (extent tree or directory index: for
 * directories only the nodes are claimed here, entries are pass 2's).
 * Returns 0 when the walk completed. */
static int walk_tree(struct walk_ctx *w, uint64_t root, uint16_t type)
{
    struct check *c = w->c;
    if (!root)
        return 0;
    if (root < c->data_start || root >= c->block_count) {
        WALK_ERROR(w, "tree root block %" PRIu64 " outside the data area", root);
        return -EUCLEAN;
    }
    struct bt_tree t = { .store = c->store, .root = root, .owner = w->ino, .type = type };
    char msg[256];
    struct bt_walk bw = {
        .node_fn = node_visit,
        .item_fn = type == MMAPFS_TREE_EXTENTS ? extent_item : NULL,
        .ctx = w,
        .err_msg = msg,
        .err_len = sizeof(msg),
    };
    int err = bt_walk(&t, &bw);
    if (err) {
        if (!msg[0])
            snprintf(msg, sizeof(msg), "error %d", err);
        WALK_ERROR(w, "%s tree corrupt: %s%s", type == MMAPFS_TREE_DIR ? "directory" : "extent",
                   msg, err == -EIO ? " (node pointer outside the data area)" : "");
        return err;
    }
    return 0;
}

/* ---- xattr block ------------------------------------------------------------------ */

/* See fsck_i.h. */
int fsck_xattr_block(struct check *c, uint64_t ino, uint64_t blk, uint64_t *next, char *msg,
                      size_t len)
{
#define BAD(...) do { snprintf(msg, len, __VA_ARGS__); return -1; } while (0)
    if (blk < c->data_start || blk >= c->block_count)
        BAD("xattr block %" PRIu64 " outside the data area", blk);
    const uint8_t *p = fsck_block(c, blk);
    if (!p)
        BAD("xattr block %" PRIu64 " unreadable", blk);
    struct mmapfs_disk_xattr_header h;
    memcpy(&h, p, sizeof(h));
    if (h.magic != MMAPFS_XATTR_MAGIC)
        BAD("xattr block %" PRIu64 ": bad magic %#x", blk, h.magic);
    uint32_t sum = bt_block_checksum(blk, p);
    if (h.checksum != sum)
        BAD("xattr block %" PRIu64 ": bad checksum (stored %08x, computed %08x)", blk,
            h.checksum, sum);
    if (h.owner != ino)
        BAD("xattr block %" PRIu64 ": owner is inode %" PRIu64, blk, h.owner);
    const size_t hdr = sizeof(h), end = hdr + h.used;
    if (end > MMAPFS_BLOCK_SIZE)
        BAD("xattr block %" PRIu64 ": %u bytes of entries do not fit", blk, h.used);
    size_t off = hdr;
    for (unsigned i = 0; i < h.count; i++) {
        struct mmapfs_disk_xattr_entry e;
        if (off + sizeof(e) > end)
            BAD("xattr block %" PRIu64 ": entry %u past the used bytes", blk, i);
        memcpy(&e, p + off, sizeof(e));
        size_t sz = sizeof(e) + e.name_len + (size_t)e.value_len;
        if (e.name_len == 0 || off + sz > end)
            BAD("xattr block %" PRIu64 ": entry %u: bad name or value length", blk, i);
        if (memchr(p + off + sizeof(e), '\0', e.name_len))
            BAD("xattr block %" PRIu64 ": entry %u: a NUL byte in the name", blk, i);
        /* names unique within the block */
        size_t off2 = hdr;
        for (unsigned j = 0; j < i; j++) {
            struct mmapfs_disk_xattr_entry e2;
            memcpy(&e2, p + off2, sizeof(e2));
            if (e2.name_len == e.name_len &&
                !memcmp(p + off2 + sizeof(e2), p + off + sizeof(e), e.name_len))
                BAD("xattr block %" PRIu64 ": entry %u repeats the name of entry %u", blk, i,
                    j);
            off2 += mmapfs_xattr_entry_size(e2.name_len, e2.value_len);
        }
        off += mmapfs_xattr_entry_size(e.name_len, e.value_len);
    }
    if (off != end)
        BAD("xattr block %" PRIu64 ": entries take %zu bytes, header says %u", blk, off - hdr,
            h.used);
    if (h.next && !(c->sb.feature_incompat & MMAPFS_FEATURE_INCOMPAT_XATTR_CHAIN))
        BAD("xattr block %" PRIu64 ": chained to block %" PRIu64 " without the xattr chain "
            "feature", blk, h.next);
    *next = h.next;
    return 0;
#undef BAD
}

/* See fsck_i.h. */
int fsck_xattr_block_in_inode(struct check *c, uint64_t blk, uint8_t *area, int drop)
{
    const uint8_t *p = fsck_block(c, blk);
    struct mmapfs_disk_xattr_header h;
    struct ixattr_entry ie;
    int found = 0;
    if (!p)
        return 0;
    memcpy(&h, p, sizeof(h));
    size_t off = sizeof(h);
    for (unsigned i = 0; i < h.count; i++) {
        struct mmapfs_disk_xattr_entry e;
        memcpy(&e, p + off, sizeof(e));
        if (fs_ixattr_find(area, (const char *)p + off + sizeof(e), e.name_len, &ie)) {
            found = 1;
            if (drop)
                fs_ixattr_remove(area, &ie);
        }
        off += mmapfs_xattr_entry_size(e.name_len, e.value_len);
    }
    return found;
}

/* Is blk one of the first n blocks of the chain from head (validated)? */
static int in_chain(struct check *c, uint64_t head, unsigned n, uint64_t blk)
{
    struct mmapfs_disk_xattr_header h;
    for (uint64_t b = head; n--; b = h.next) {
        const uint8_t *p = fsck_block(c, b);
        if (b == blk)
            return 1;
        if (!p)
            return 0;
        memcpy(&h, p, sizeof(h));
    }
    return 0;
}

/* Validates the xattr chain of the inode and claims its blocks. The walk
 * stops at the first bad block, a block seen before in the chain (a loop)
 * or past MMAPFS_XATTR_CHAIN_MAX blocks; the repair cuts the chain there
 * (fsck/repair.c). A block claimed already by another inode (an extent
 * grown over it: the block names this inode as its owner) is a block
 * claimed twice like any other, sorted out by pass 1b and phase C (the
 * xattr block keeps it): cutting the chain there would change nothing. */
static void walk_xattr(struct walk_ctx *w, uint64_t blk)
{
    struct check *c = w->c;
    char msg[160];
    const uint64_t head = blk;
    for (unsigned n = 0; blk; n++) {
        if (n == MMAPFS_XATTR_CHAIN_MAX) {
            XATTR_ERROR(w, "xattr chain longer than %u blocks", MMAPFS_XATTR_CHAIN_MAX);
            return;
        }
        if (n && !w->dups && blk < c->block_count && check_bits_get(&c->claimed, blk) &&
            in_chain(c, head, n, blk)) {
            XATTR_ERROR(w, "xattr chain: block %" PRIu64 " comes back (a loop)", blk);
            return;
        }
        if (blk >= c->data_start && blk < c->block_count) {
            claim(w, blk, 1, KIND_XATTR);
            w->xattr_blocks++;
        }
        uint64_t next;
        if (fsck_xattr_block(c, w->ino, blk, &next, msg, sizeof(msg))) {
            XATTR_ERROR(w, "%s", msg);
            return;
        }
        const char *acl = w->dups ? NULL : fsck_bad_acl_in_block(c, blk);
        if (acl) {
            WALK_ERROR(w, "invalid ACL in %s (xattr block %" PRIu64 ")", acl, blk);
            w->acl_bad = 1;
        }
        if (w->ixattr_ok && fsck_xattr_block_in_inode(c, blk, w->ixattr, 0)) {
            WALK_ERROR(w, "xattr block %" PRIu64 " holds a name the inode holds too", blk);
            w->ixattr_dup = 1;
        }
        if (n && !w->dups)
            c->xattr_chained++;      /* counted once: pass 1b walks the chain again */
        blk = next;
    }
}

/* ---- pass 1 ---------------------------------------------------------------------- */

/* Length of a symlink target read from its first data block (the bytes
 * before the first NUL, at most MMAPFS_SYMLINK_MAX); 0 if none. */
static uint64_t symlink_len_from_data(struct check *c, uint64_t blk)
{
    const uint8_t *p = blk ? fsck_block(c, blk) : NULL;
    if (!p)
        return 0;
    const uint8_t *z = memchr(p, 0, MMAPFS_SYMLINK_MAX);
    return z ? (uint64_t)(z - p) : MMAPFS_SYMLINK_MAX;
}

/* Checks one in-use inode with a good checksum and type. */
static void check_one(struct check *c, uint64_t ino, const struct mmapfs_disk_inode *di,
                      struct dup_owners *dups)
{
    struct walk_ctx w = { .c = c, .ino = ino, .mode = di->mode, .dups = dups };
    uint32_t type = di->mode & S_IFMT;
    int tree_ok = 0, bad_size = 0;

    if (!dups) {
        if (type == S_IFDIR) {
            c->dirs++;
            if (di->parent < 1 || di->parent > c->inode_count)
                WALK_ERROR(&w, "directory's parent %" PRIu64 " out of range", di->parent);
        } else {
            c->files++;
        }
        if (type == S_IFREG && di->size > MMAPFS_MAX_FILE_SIZE) {
            WALK_ERROR(&w, "size %" PRIu64 " beyond the maximum file size", di->size);
            bad_size = 1;
        }
        if (type == S_IFLNK && (di->size < 1 || di->size > MMAPFS_SYMLINK_MAX)) {
            WALK_ERROR(&w, "symlink target length %" PRIu64 " not in 1..%u", di->size,
                       MMAPFS_SYMLINK_MAX);
            bad_size = 1;
        }
        if (di->orphan_next > c->inode_count) {
            WALK_ERROR(&w, "orphan_next %" PRIu64 " out of range", di->orphan_next);
            fsck_plan(c, ino, RF_ORPHAN_NEXT);
        }
    }
    int flags_ok = fsck_inline_flags_ok(c, di);
    /* flags that do not fit an inline area holding what the other flag
     * (or a missing one) says: the flags are the damaged field */
    uint32_t guess = fsck_inline_flags_guess(c, di);
    int wrong_flags = guess && guess != di->flags &&
                      (!flags_ok || !fsck_inline_holds_file(c, di));
    if (wrong_flags) {
        WALK_ERROR(&w, "flags %#x, but its inline area holds inline %s", di->flags,
                   guess == MMAPFS_INODE_EXTENTS ? "extents" : "data");
        if (!dups) {
            fsck_plan(c, ino, RF_NO_INLINE);
            c->structural = 1;
        }
        flags_ok = 0;
    }
    /* A tree root beside inline content that is no node of this inode:
     * the pointer is the damaged field, not the flags and their data. */
    int stray_root = !flags_ok && di->tree_root && (type == S_IFREG || type == S_IFLNK) &&
                     fsck_inline_holds_file(c, di) &&
                     fsck_node_type(c, ino, di->tree_root) == 0;
    if (stray_root) {
        WALK_ERROR(&w, "tree root %" PRIu64 " is no node of this inode, beside inline %s",
                   di->tree_root, di->flags == MMAPFS_INODE_EXTENTS ? "extents" : "data");
        if (!dups) {
            fsck_plan(c, ino, RF_NO_TREE);
            c->structural = 1;
        }
    } else if (!flags_ok && !wrong_flags) {
        WALK_ERROR(&w, "flags %#x not valid here (mode %#o, tree root %" PRIu64 "%s)",
                   di->flags, di->mode, di->tree_root,
                   c->sb.feature_incompat & MMAPFS_FEATURE_INCOMPAT_INODE_DATA
                       ? "" : ", image without inode-resident data");
        if (!dups) {
            fsck_plan(c, ino, RF_NO_INLINE);
            c->structural = 1;
        }
    }
    if (flags_ok && (di->flags & MMAPFS_INODE_EXTENTS) &&
        fsck_inline_extents(di, extent_item, &w) == -EUCLEAN)
        EXT_ERROR(&w, "inline extents not packed at the start of the area%s", "");
    if (flags_ok && (di->flags & MMAPFS_INODE_INLINE_DATA) && !dups &&
        di->size > MMAPFS_INLINE_BYTES) {
        WALK_ERROR(&w, "size %" PRIu64 " with inline data (at most %u bytes)", di->size,
                   MMAPFS_INLINE_BYTES);
        bad_size = 1;
    } else if (flags_ok && (di->flags & MMAPFS_INODE_INLINE_DATA) && !dups) {
        /* the rest of the area is zero (docs/FORMAT.md §6): a file that
         * grows within it would read the stale bytes as its content */
        static const uint8_t zero[MMAPFS_INLINE_BYTES];
        size_t tail = MMAPFS_INLINE_BYTES - (size_t)di->size;
        if (memcmp(di->inline_area + di->size, zero, tail)) {
            WALK_ERROR(&w, "inline data past its size %" PRIu64 " not zero", di->size);
            fsck_add_fix(c, ino, FIX_INLINE_TAIL, di->size);
        }
    }
    if (stray_root) {
        tree_ok = 1;        /* not walked: the pointer goes */
    } else if (type == S_IFREG || type == S_IFLNK) {
        tree_ok = walk_tree(&w, di->tree_root, MMAPFS_TREE_EXTENTS) == 0;
    } else if (type == S_IFDIR) {
        tree_ok = walk_tree(&w, di->tree_root, MMAPFS_TREE_DIR) == 0;
    } else if (di->tree_root) {
        WALK_ERROR(&w, "a %s has a tree (root block %" PRIu64 ")",
                   type == S_IFIFO ? "FIFO" : type == S_IFSOCK ? "socket" : "device node",
                   di->tree_root);
        if (!dups) {
            fsck_plan(c, ino, RF_NO_TREE);
            c->structural = 1;
        }
        tree_ok = 1;        /* nothing walked, nothing claimed */
    } else {
        tree_ok = 1;
    }
    char msg[160];
    if (!fsck_ixattr_ok(c, di, msg, sizeof(msg))) {
        WALK_ERROR(&w, "%s", msg);
        if (!dups)
            fsck_plan(c, ino, RF_NO_IXATTR);
    } else if (c->sb.feature_incompat & MMAPFS_FEATURE_INCOMPAT_INODE_XATTR) {
        memcpy(w.ixattr, di->xattr_area, sizeof(w.ixattr));
        w.ixattr_ok = 1;
        if (!dups)
            c->xattr_in_inode += (uint64_t)fs_ixattr_check(di->xattr_area, msg, sizeof(msg));
        const char *acl = dups ? NULL : fsck_bad_acl_in_area(di->xattr_area);
        if (acl) {
            WALK_ERROR(&w, "invalid ACL in %s (in the inode)", acl);
            w.acl_bad = 1;
        }
    }
    if (di->xattr_block)
        walk_xattr(&w, di->xattr_block);
    if (dups)
        return;
    if (w.ixattr_dup)
        fsck_plan(c, ino, RF_IXATTR_DUP);
    if (w.acl_bad)
        fsck_add_fix(c, ino, FIX_BAD_ACL, 0);

    c->tree_nodes += w.nodes;
    c->data_blocks += w.data_blocks;
    if (w.xattr_bad)
        fsck_plan(c, ino, RF_NO_XATTR);
    if (!tree_ok || w.ext_bad || w.xattr_bad)
        c->structural = 1;
    if (!tree_ok || w.ext_bad) {
        if (!tree_ok)
            fsck_ci(c, ino)->state |= CI_TREE_BAD;
        fsck_plan(c, ino, RF_SALVAGE);
        return;
    }
    int inline_data = flags_ok && (di->flags & MMAPFS_INODE_INLINE_DATA);
    if (type == S_IFLNK && !bad_size) {
        /* a NUL inside the target: readlink(2) would end the target there */
        uint64_t len = inline_data ? strnlen((const char *)di->inline_area, di->size)
                                   : symlink_len_from_data(c, w.first_data);
        if (len < di->size) {
            WALK_ERROR(&w, "symlink target of %" PRIu64 " bytes has a NUL byte at %" PRIu64,
                       di->size, len);
            bad_size = 1;
        }
    }
    if (bad_size && inline_data) {
        uint64_t len = type == S_IFREG ? MMAPFS_INLINE_BYTES
                                       : strnlen((const char *)di->inline_area,
                                                 MMAPFS_INLINE_BYTES);
        if (len)
            fsck_add_fix(c, ino, FIX_SIZE, len);
        else
            fsck_plan(c, ino, RF_REC_CLEAR);       /* no target left */
    } else if (bad_size && type == S_IFREG) {
        uint64_t end = w.prev_end * MMAPFS_BLOCK_SIZE;
        fsck_add_fix(c, ino, FIX_SIZE, end < MMAPFS_MAX_FILE_SIZE ? end : MMAPFS_MAX_FILE_SIZE);
    } else if (bad_size) {
        uint64_t len = symlink_len_from_data(c, w.first_data);
        if (len)
            fsck_add_fix(c, ino, FIX_SIZE, len);
        else
            fsck_plan(c, ino, RF_REC_CLEAR);       /* no target left */
    }
    uint64_t owned = w.nodes + w.data_blocks + (w.xattr_bad ? 0 : w.xattr_blocks);
    if (owned != di->blocks) {
        fsck_error(c, "inode %" PRIu64 ": block count %" PRIu64 ", but it owns %" PRIu64
                    " (%" PRIu64 " data, %" PRIu64 " tree, %" PRIu64 " xattr)", ino,
                    di->blocks, owned, w.data_blocks, w.nodes, w.xattr_blocks);
        fsck_add_fix(c, ino, FIX_BLOCKS, owned);
    }
}

/* Is the record of inode ino live although its bitmap bit is clear? The
 * bitmaps carry no checksum: one flipped bit must not lose a file whose
 * record is intact (the same test as the allocator's, fs/inode.h). */
static int record_live(struct check *c, uint64_t ino)
{
    struct mmapfs_disk_inode di;
    return !fsck_read_inode(c, ino, &di) &&
           fs_inode_record_looks_live(ino, &di, c->sb.mkfs_time);
}

/* See fsck_i.h. */
int fsck_pass_inodes(struct check *c)
{
    if (!fsck_inode_bit(c, MMAPFS_ROOT_INO) && !record_live(c, MMAPFS_ROOT_INO))
        fsck_plan(c, MMAPFS_ROOT_INO, RF_REC_ROOT);    /* reported in pass 2 */
    uint64_t next_bit = fsck_next_inode_bit(c, 1);
    for (uint64_t ino = 1; ino <= c->inode_count; ino++) {
        if (ino == next_bit) {
            next_bit = fsck_next_inode_bit(c, ino + 1);
        } else if (fsck_block_hole(c, fsck_inode_offset(c, ino) / MMAPFS_BLOCK_SIZE)) {
            /* a table block never written holds no live record; reading it
             * would fault in zeros (a sparse image's table is mostly holes) */
            uint64_t block_last = ((ino - 1) | (MMAPFS_INODES_PER_BLOCK - 1)) + 1;
            ino = block_last < next_bit ? block_last : next_bit - 1;
            continue;
        } else if (record_live(c, ino)) {
            fsck_error(c, "inode %" PRIu64 " in use but free in the inode bitmap", ino);
            fsck_add_fix(c, ino, FIX_INODE_BIT, 1);
            c->ibits_lost++;
        } else {
            continue;
        }
        mfs_progress_update(&c->progress, "pass 1, inodes:", ino, c->inode_count);
        struct check_inode *ci = fsck_ci(c, ino);
        ci->state |= CI_USED;
        c->used_inodes++;
        struct mmapfs_disk_inode di;
        int err = fsck_read_inode(c, ino, &di);
        if (err)
            return err;
        uint32_t sum = fs_inode_checksum(ino, &di);
        if (sum != di.checksum) {
            struct mmapfs_disk_inode mended = di;
            int sane = fsck_record_mend(c, ino, &mended, 0) >= 0;
            fsck_error(c, "inode %" PRIu64 ": bad checksum (stored %08x, computed %08x)%s",
                        ino, di.checksum, sum, sane ? "" : "; the record is not usable");
            c->structural = 1;
            fsck_plan(c, ino, sane ? RF_REC_SUM :
                               ino == MMAPFS_ROOT_INO ? RF_REC_ROOT : RF_REC_CLEAR);
            continue;
        }
        uint8_t dt = fs_inode_dtype(di.mode);
        struct mmapfs_disk_inode typed = di;
        int retype = fsck_record_type_from_tree(c, ino, &typed) &&
                     (ino != MMAPFS_ROOT_INO || (dt && S_ISDIR(typed.mode)));
        if (!dt && !retype) {
            fsck_error(c, "inode %" PRIu64 ": invalid mode %#o", ino, di.mode);
            c->structural = 1;
            fsck_plan(c, ino, ino == MMAPFS_ROOT_INO ? RF_REC_ROOT : RF_REC_CLEAR);
            continue;
        }
        if (retype) {
            fsck_error(c, "inode %" PRIu64 ": mode %#o, but its %s", ino, di.mode,
                        S_ISDIR(typed.mode) ? "tree is a directory index" :
                        typed.tree_root ? "tree is a file's extent tree" :
                        "inline area holds a file's extents or data");
            c->structural = 1;
            fsck_plan(c, ino, RF_REC_TYPE);
            continue;
        }
        if (ino == MMAPFS_ROOT_INO && dt != DT_DIR)
            fsck_plan(c, ino, RF_REC_ROOT);            /* reported in pass 2 */
        ci->state |= CI_VALID;
        ci->dtype = dt;
        check_one(c, ino, &di, NULL);
    }
    return 0;
}

/* ---- pass 1b ---------------------------------------------------------------------- */

int fsck_pass_duplicates(struct check *c)
{
    if (!c->ndup)
        return 0;
    c->structural = 1;
    struct dup_owners d = { 0 };
    size_t cap = c->ndup < DUP_LIST_MAX ? (size_t)c->ndup : DUP_LIST_MAX;
    d.blocks = calloc(cap, sizeof(*d.blocks));
    d.owner = calloc(cap, sizeof(*d.owner));
    d.kind = calloc(cap, 1);
    int err = 0;
    if (!d.blocks || !d.owner || !d.kind) {
        err = -ENOMEM;
        goto out;
    }
    for (uint64_t b = fsck_bits_next(&c->dup, 0, c->block_count); b < c->block_count &&
         d.n < cap; b = fsck_bits_next(&c->dup, b + 1, c->block_count))
        d.blocks[d.n++] = b;

    for (uint64_t ino = fsck_ci_next(c, 1); ino <= c->inode_count;
         ino = fsck_ci_next(c, ino + 1)) {
        if (!(fsck_ci(c, ino)->state & CI_VALID))
            continue;
        struct mmapfs_disk_inode di;
        err = fsck_read_inode(c, ino, &di);
        if (err)
            goto out;
        check_one(c, ino, &di, &d);
    }
    if (c->ndup > d.n)
        fsck_error(c, "%" PRIu64 " more blocks are claimed more than once (not listed)",
                    c->ndup - d.n);
out:
    free(d.blocks);
    free(d.owner);
    free(d.kind);
    return err;
}
