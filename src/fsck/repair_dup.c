/*
 * fsck/repair_dup.c — repair phase C: blocks claimed by more than one
 * owner (two files, a file and a tree node, two extents of one file).
 *
 * Each shared block keeps one owner: a tree node or xattr block if one of
 * the claims is one (its content names its owner and is checksummed with
 * its block number, so it proves where it belongs), otherwise the first
 * claim in inode order. Every other owner's extent gets a copy of the
 * block's data in a newly allocated block (as e2fsck clones), or, when the
 * filesystem has no free block left, loses that range: it becomes a hole.
 * The losing file's extent tree is rebuilt with the new extents (new tree
 * synced before the inode points at it).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsck/fsck_i.h"

enum { K_EXTENT = 1, K_NODE = 2, K_XATTR = 3 };

/* The owner that keeps a shared block. */
struct keeper {
    uint64_t blk;
    uint64_t ino;
    uint64_t lblk;     /* extents: logical block that maps blk */
    uint8_t kind;
};

struct dups {
    struct check *c;
    struct keeper *k;  /* sorted by blk */
    size_t n;
    uint64_t ino;      /* inode being walked */
    int pick;          /* 1: choosing keepers; 0: collecting extents */
    struct check_items ext;
    int loses_meta;    /* the inode's node or xattr block is kept by another */
};

/* The keeper record of block b, NULL if b is not shared. */
static struct keeper *find_keeper(struct dups *d, uint64_t b)
{
    if (!check_bits_get(&d->c->dup, b))
        return NULL;
    size_t lo = 0, hi = d->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->k[mid].blk < b)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < d->n && d->k[lo].blk == b ? &d->k[lo] : NULL;
}

/* A claim of block b: picks the keeper (pick), or notes a lost metadata
 * block. */
static void claim(struct dups *d, uint64_t b, uint64_t lblk, uint8_t kind)
{
    struct keeper *k = find_keeper(d, b);
    if (!k)
        return;
    if (d->pick) {
        if (!k->ino || (k->kind == K_EXTENT && kind != K_EXTENT))
            *k = (struct keeper){ .blk = b, .ino = d->ino, .lblk = lblk, .kind = kind };
        return;
    }
    if (kind != K_EXTENT && (k->ino != d->ino || k->kind != kind))
        d->loses_meta = 1;
}

/* bt_walk node callback. */
static int dup_node(void *ctx, uint64_t blk, unsigned level)
{
    (void)level;
    claim(ctx, blk, 0, K_NODE);
    return 0;
}

/* bt_walk item callback for extents (valid: pass 1 found no problem). */
static int dup_extent(void *ctx, uint64_t key, const void *val, size_t len)
{
    struct dups *d = ctx;
    struct mmapfs_disk_extent e;
    if (len != sizeof(e))
        return -EUCLEAN;
    memcpy(&e, val, sizeof(e));
    if (e.start < d->c->data_start || e.start >= d->c->block_count ||
        e.len > d->c->block_count - e.start)
        return -EUCLEAN;
    if (d->pick) {
        for (uint64_t i = 0; i < e.len; i++)
            claim(d, e.start + i, key + i, K_EXTENT);
        return 0;
    }
    return fsck_items_add(&d->ext, key, &e, sizeof(e));
}

/* Walks inode ino's tree and xattr chain. */
static int walk_inode(struct dups *d, uint64_t ino, const struct mmapfs_disk_inode *di)
{
    int dir = S_ISDIR(di->mode), file = S_ISREG(di->mode) || S_ISLNK(di->mode);
    d->ino = ino;
    d->loses_meta = 0;
    if ((dir || file) && di->tree_root) {
        struct bt_tree t = { .store = d->c->store, .root = di->tree_root, .owner = ino,
                             .type = dir ? MMAPFS_TREE_DIR : MMAPFS_TREE_EXTENTS };
        struct bt_walk w = { .node_fn = dup_node, .item_fn = file ? dup_extent : NULL,
                             .ctx = d };
        int err = bt_walk(&t, &w);
        if (err)
            return err;
    }
    if (file) {
        int err = fsck_inline_extents(di, dup_extent, d);
        if (err)
            return err;
    }
    /* every block of the xattr chain (valid by now: phase A cut it) */
    char msg[160];
    uint64_t blk = di->xattr_block, next;
    for (unsigned n = 0; blk && blk < d->c->block_count && n < MMAPFS_XATTR_CHAIN_MAX; n++) {
        claim(d, blk, 0, K_XATTR);
        if (fsck_xattr_block(d->c, ino, blk, &next, msg, sizeof(msg)))
            break;
        blk = next;
    }
    return 0;
}

/* Copies n blocks from src to dst. */
static int copy_blocks(struct check *c, uint64_t src, uint64_t dst, uint64_t n)
{
    uint8_t buf[MMAPFS_BLOCK_SIZE];
    for (uint64_t i = 0; i < n; i++) {
        int err = mmio_read_at(c->io, (src + i) * MMAPFS_BLOCK_SIZE, buf, sizeof(buf));
        if (!err)
            err = fsck_io_write(c, (dst + i) * MMAPFS_BLOCK_SIZE, buf, sizeof(buf));
        if (err)
            return err;
    }
    return 0;
}

/* Gives the losing run [lblk, lblk+n) -> [pblk, ...) of inode d->ino new
 * blocks (appended to out as extents), or punches it when space runs out. */
static int clone_run(struct dups *d, uint64_t lblk, uint64_t pblk, uint64_t n, uint32_t flags,
                     uint64_t other, struct check_items *out, uint64_t *data)
{
    struct check *c = d->c;
    uint64_t done = 0, first = 0, last = 0;
    while (done < n) {
        uint64_t start, got;
        int err = fsck_alloc_run(c, last ? last + 1 : pblk, n - done, &start, &got);
        if (err == -ENOSPC)
            break;
        if (!err && !(flags & MMAPFS_EXTENT_UNWRITTEN))
            err = copy_blocks(c, pblk + done, start, got);
        if (!err)
            err = fsck_write_block_bits(c, start, got, 1);
        struct mmapfs_disk_extent e = { .start = start, .len = (uint32_t)got, .flags = flags };
        if (!err)
            err = fsck_items_add(out, lblk + done, &e, sizeof(e));
        if (err)
            return err;
        if (!done)
            first = start;
        last = start + got - 1;
        done += got;
        *data += got;
    }
    if (done)
        fsck_repaired(c, "inode %" PRIu64 ": blocks %" PRIu64 "-%" PRIu64 " (file blocks %"
                       PRIu64 "-%" PRIu64 ") shared with inode %" PRIu64 ": cloned to block%s %"
                       PRIu64 "-%" PRIu64 "%s", d->ino, pblk, pblk + done - 1, lblk,
                       lblk + done - 1, other, done == 1 ? "" : "s", first, last,
                       last - first + 1 == done ? "" : " (in pieces)");
    if (done < n)
        fsck_repaired(c, "inode %" PRIu64 ": blocks %" PRIu64 "-%" PRIu64 " (file blocks %"
                       PRIu64 "-%" PRIu64 ") shared with inode %" PRIu64 ": punched out (no "
                       "free space to clone them): the range is now a hole", d->ino,
                       pblk + done, pblk + n - 1, lblk + done, lblk + n - 1, other);
    return 0;
}

/* Does inode d->ino lose block b of extent (lblk)? Sets *other. */
static int loses(struct dups *d, uint64_t b, uint64_t lblk, uint64_t *other)
{
    struct keeper *k = find_keeper(d, b);
    if (!k || (k->ino == d->ino && k->kind == K_EXTENT && k->lblk == lblk))
        return 0;
    *other = k->ino;
    return 1;
}

/* Splits the extents of d->ext into kept and cloned runs. *changed = 1 if
 * any block was lost. dry: only counts the extents it would produce in
 * *count (at least; clones in pieces add more). */
static int split_extents(struct dups *d, struct check_items *out, uint64_t *data, int *changed,
                         int dry, uint64_t *count)
{
    for (size_t i = 0; i < d->ext.n; i++) {
        struct mmapfs_disk_extent e;
        memcpy(&e, d->ext.v[i].val, sizeof(e));
        uint64_t key = d->ext.v[i].key, run = 0, other = 0;
        int run_lost = 0;
        for (uint64_t j = 0; j <= e.len; j++) {
            uint64_t o = 0;
            int lost = j < e.len && loses(d, e.start + j, key + j, &o);
            if (j < e.len && j > run && lost == run_lost && (!lost || o == other))
                continue;
            if (j > run) {              /* close the run [run, j) */
                int err = 0;
                *changed |= run_lost;
                (*count)++;
                if (dry) {
                    /* counting only */
                } else if (run_lost) {
                    err = clone_run(d, key + run, e.start + run, j - run, e.flags, other,
                                    out, data);
                } else {
                    struct mmapfs_disk_extent k = { .start = e.start + run,
                                                    .len = (uint32_t)(j - run),
                                                    .flags = e.flags };
                    *data += k.len;
                    err = fsck_items_add(out, key + run, &k, sizeof(k));
                }
                if (err)
                    return err;
            }
            run = j;
            run_lost = lost;
            other = o;
        }
    }
    return 0;
}

/* Reserves n blocks (for a new tree) so that clones cannot take them;
 * the runs are recorded in r[0..*nr). 0 or -ENOSPC (nothing reserved). */
static int reserve(struct check *c, uint64_t n, uint64_t r[][2], size_t max, size_t *nr)
{
    uint64_t got = 0;
    *nr = 0;
    while (got < n && *nr < max) {
        uint64_t start, len;
        if (fsck_alloc_run(c, 0, n - got, &start, &len))
            break;
        r[*nr][0] = start;
        r[(*nr)++][1] = len;
        got += len;
    }
    if (got == n)
        return 0;
    for (size_t i = 0; i < *nr; i++)
        fsck_unalloc(c, r[i][0], r[i][1]);
    *nr = 0;
    return -ENOSPC;
}

/* A file whose tree was rebuilt. */
struct moved {
    uint64_t ino, root, nodes, data;
};

/* Rebuilds inode ino's extent tree if it loses shared blocks. 1 rebuilt
 * (*m filled), 0 nothing to do / not possible, -errno. The blocks of the
 * new tree are reserved before any clone, so that a full filesystem
 * punches rather than ends up with clones and no tree to hold them. */
static int fix_inode(struct dups *d, uint64_t ino, const struct mmapfs_disk_inode *di,
                     struct moved *m)
{
    struct check *c = d->c;
    struct check_items out = { 0 };
    uint64_t res[16][2];
    size_t nres = 0;
    int changed = 0;
    uint64_t data = 0, count = 0;
    fsck_items_free(&d->ext);
    int err = walk_inode(d, ino, di);
    if (err == -ENOMEM)
        return err;
    if (err) {
        fsck_error(c, "inode %" PRIu64 ": tree unreadable while sorting out shared blocks", ino);
        return 0;
    }
    if (d->loses_meta)
        fsck_error(c, "inode %" PRIu64 ": a tree node or xattr block of it is owned by "
                    "another inode: not repaired", ino);
    err = split_extents(d, &out, &data, &changed, 1, &count);
    if (err || !changed)
        goto out;
    if (reserve(c, fsck_tree_blocks(count + 8, sizeof(struct mmapfs_disk_extent)), res, 16,
                &nres)) {
        fsck_error(c, "inode %" PRIu64 ": no free space for its new extent tree", ino);
        changed = 0;
        goto out;
    }
    count = 0;
    err = split_extents(d, &out, &data, &changed, 0, &count);
    for (size_t i = 0; i < nres; i++)
        fsck_unalloc(c, res[i][0], res[i][1]);
    if (err)
        goto out;
    *m = (struct moved){ .ino = ino, .data = data };
    err = fsck_build_tree(c, ino, MMAPFS_TREE_EXTENTS, &out, &m->root, &m->nodes);
    if (err == -ENOSPC) {
        fsck_error(c, "inode %" PRIu64 ": no free space for its new extent tree", ino);
        err = 0;
        changed = 0;
    }
out:
    fsck_items_free(&out);
    return err ? err : changed;
}

/* Picks the keepers: every claim of every shared block, in inode order. */
static int pick_keepers(struct dups *d)
{
    struct check *c = d->c;
    d->pick = 1;
    for (uint64_t ino = fsck_ci_next(c, 1); ino <= c->inode_count;
         ino = fsck_ci_next(c, ino + 1)) {
        if (!(fsck_ci(c, ino)->state & CI_VALID))
            continue;
        struct mmapfs_disk_inode di;
        int err = fsck_read_inode(c, ino, &di);
        if (!err)
            err = walk_inode(d, ino, &di);
        if (err == -ENOMEM || err == -EIO)
            return err;
    }
    d->pick = 0;
    return 0;
}

/* See fsck_i.h. */
int fsck_repair_dups(struct check *c)
{
    struct dups d = { .c = c };
    struct moved *mv = NULL;
    size_t nmv = 0, cap = 0;
    int err = fsck_begin_repair(c);
    d.k = calloc(c->ndup ? c->ndup : 1, sizeof(*d.k));
    if (!err && !d.k)
        err = -ENOMEM;
    for (uint64_t b = fsck_bits_next(&c->dup, 0, c->block_count);
         !err && b < c->block_count && d.n < c->ndup;
         b = fsck_bits_next(&c->dup, b + 1, c->block_count))
        d.k[d.n++].blk = b;
    if (!err)
        err = pick_keepers(&d);
    for (uint64_t ino = fsck_ci_next(c, 1); !err && ino <= c->inode_count;
         ino = fsck_ci_next(c, ino + 1)) {
        if (!(fsck_ci(c, ino)->state & CI_VALID))
            continue;
        struct mmapfs_disk_inode di;
        err = fsck_read_inode(c, ino, &di);
        if (err)
            break;
        if (nmv == cap) {
            cap = cap ? cap * 2 : 16;
            struct moved *n = realloc(mv, cap * sizeof(*n));
            if (!n) {
                err = -ENOMEM;
                break;
            }
            mv = n;
        }
        int r = fix_inode(&d, ino, &di, &mv[nmv]);
        if (r < 0)
            err = r;
        else
            nmv += (size_t)r;
    }
    if (!err && nmv)
        err = fsck_io_sync(c);     /* clones and new trees first */
    for (size_t i = 0; !err && i < nmv; i++) {
        struct mmapfs_disk_inode di;
        err = fsck_read_inode(c, mv[i].ino, &di);
        if (err)
            break;
        fsck_inline_to_tree(&di, mv[i].root);
        di.blocks = mv[i].nodes + mv[i].data + (di.xattr_block ? 1 : 0);
        err = fsck_write_inode(c, mv[i].ino, &di);
        c->repairs++;
    }
    if (!err && nmv)
        err = fsck_io_sync(c);
    fsck_items_free(&d.ext);
    free(d.k);
    free(mv);
    return err ? err : nmv > 0;
}
