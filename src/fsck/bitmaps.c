/*
 * fsck/bitmaps.c — fsck pass 3 (the block bitmap against the blocks the
 * inodes own, the superblock's free counts) and the repair writer.
 *
 * The simple repairs (phase E, fsck_apply_fixes) run in a round that found
 * no structural work (fsck/repair.c); link counts, parent fields and the
 * bitmap rebuild still require c->structural == 0 (every tree readable):
 *   inode size, block count                      always
 *   inode bitmap bit of a live inode             always
 *   inline data bytes past the size (zeroed)     always
 *   invalid POSIX ACL xattrs (removed)           always
 *   link count, directory parent                 no structural problem
 *   block bitmap rebuild                         no structural problem
 *   superblock free counts                       last
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "fsck/fsck_i.h"

#define BITS_PER_BLOCK (MMAPFS_BLOCK_SIZE * 8ull)

/* A run of blocks whose bitmap bit is wrong the same way. */
struct run {
    int kind;               /* 0 none, 1 in use but marked free, 2 marked used but not owned */
    uint64_t first, last;
};

static void flush_run(struct check *c, struct run *r)
{
    if (!r->kind)
        return;
    const char *what = r->kind == 1 ? "in use but marked free in the bitmap"
                                    : "marked in use in the bitmap but not owned by any inode";
    if (r->first == r->last)
        fsck_error(c, "block bitmap: block %" PRIu64 " %s", r->first, what);
    else
        fsck_error(c, "block bitmap: blocks %" PRIu64 "-%" PRIu64 " %s", r->first, r->last,
                    what);
    c->bitmap_bad++;
    r->kind = 0;
}

static void note_bit(struct check *c, struct run *r, uint64_t b, int kind)
{
    if (r->kind == kind && b == r->last + 1) {
        r->last = b;
        return;
    }
    flush_run(c, r);
    r->kind = kind;
    r->first = r->last = b;
}

/* Should block b be marked in use? */
static int want_bit(const struct check *c, uint64_t b)
{
    return b < c->data_start || check_bits_get(&c->claimed, b);
}

/* Counts set bits [0, n) of an on-disk bitmap starting at block start.
 * -EIO if a bitmap block is unreadable. */
static int64_t count_disk_bits(struct check *c, uint64_t start, uint64_t n)
{
    uint64_t set = 0;
    for (uint64_t i = 0; i < n; i += BITS_PER_BLOCK) {
        const uint8_t *p = fsck_block(c, start + i / BITS_PER_BLOCK);
        if (!p)
            return -EIO;
        uint64_t bits = n - i < BITS_PER_BLOCK ? n - i : BITS_PER_BLOCK;
        uint64_t j = 0;
        for (; j + 64 <= bits; j += 64) {
            uint64_t w;
            memcpy(&w, p + j / 8, 8);
            set += (uint64_t)__builtin_popcountll(w);
        }
        for (; j < bits; j++)
            set += check_bit(p, j);
    }
    return (int64_t)set;
}

/* See fsck_i.h. */
int fsck_pass_bitmaps(struct check *c)
{
    struct run r = { 0 };
    const uint8_t *p = NULL;
    /* 64 blocks at a time: only words where the bitmap and the owners
     * differ are looked at bit by bit */
    for (uint64_t b = 0; b < c->block_count; b += 64) {
        if (b % BITS_PER_BLOCK == 0 &&
            !(p = fsck_block(c, c->sb.block_bitmap_start + b / BITS_PER_BLOCK)))
            return -EIO;
        uint64_t disk, want = fsck_bits_word(&c->claimed, b);
        memcpy(&disk, p + (b % BITS_PER_BLOCK) / 8, 8);
        if (b < c->data_start)
            want |= c->data_start - b >= 64 ? ~0ull : (1ull << (c->data_start - b)) - 1;
        if (c->block_count - b < 64) {
            uint64_t valid = (1ull << (c->block_count - b)) - 1;
            disk &= valid;
            want &= valid;
        }
        for (uint64_t diff = disk ^ want; diff; diff &= diff - 1) {
            uint64_t i = b + (uint64_t)__builtin_ctzll(diff);
            note_bit(c, &r, i, want_bit(c, i) ? 1 : 2);
        }
    }
    flush_run(c, &r);

    int64_t used_blocks = count_disk_bits(c, c->sb.block_bitmap_start, c->block_count);
    int64_t used_inodes = count_disk_bits(c, c->sb.inode_bitmap_start, c->inode_count);
    if (used_blocks < 0 || used_inodes < 0)
        return -EIO;
    used_inodes += (int64_t)c->ibits_lost;      /* the count once their bits are set */
    if (c->bitmap_bad && c->may_repair && !c->structural) {
        uint64_t claimed = fsck_bits_count(&c->claimed, c->data_start, c->block_count);
        used_blocks = (int64_t)(c->data_start + claimed);
    }
    uint64_t free_blocks = c->block_count - (uint64_t)used_blocks;
    uint64_t free_inodes = c->inode_count - (uint64_t)used_inodes;
    if (c->sb.state & MMAPFS_STATE_CLEAN) {
        if (c->sb.free_blocks != free_blocks) {
            fsck_error(c, "superblock: free block count %" PRIu64 ", bitmap has %" PRIu64,
                        c->sb.free_blocks, free_blocks);
            c->counts_bad++;
        }
        if (c->sb.free_inodes != free_inodes) {
            fsck_error(c, "superblock: free inode count %" PRIu64 ", bitmap has %" PRIu64,
                        c->sb.free_inodes, free_inodes);
            c->counts_bad++;
        }
    }
    c->sb.free_blocks = free_blocks;    /* the values a repaired superblock gets */
    c->sb.free_inodes = free_inodes;
    return 0;
}

/* ---- repairs ------------------------------------------------------------------------ */

/* Writes the block bitmap the inodes imply. */
static int rebuild_block_bitmap(struct check *c)
{
    uint8_t *buf = malloc(MMAPFS_BLOCK_SIZE);
    if (!buf)
        return -ENOMEM;
    int err = 0;
    for (uint64_t i = 0; i < c->sb.block_bitmap_blocks && !err; i++) {
        memset(buf, 0, MMAPFS_BLOCK_SIZE);
        uint64_t first = i * BITS_PER_BLOCK;
        for (uint64_t j = 0; j < BITS_PER_BLOCK && first + j < c->block_count; j++)
            if (want_bit(c, first + j))
                check_set_bit(buf, j);
        err = fsck_io_write(c, (c->sb.block_bitmap_start + i) * MMAPFS_BLOCK_SIZE, buf,
                            MMAPFS_BLOCK_SIZE);
    }
    free(buf);
    return err;
}

/* Applies one per-inode repair. 1 applied, 0 skipped, -errno. */
static int apply_inode_fix(struct check *c, const struct check_fix *f)
{
    if ((f->field == FIX_NLINK || f->field == FIX_PARENT) && c->structural)
        return 0;
    if (f->field == FIX_INODE_BIT) {
        int err = fsck_write_inode_bit(c, f->ino, 1);
        return err ? err : 1;
    }
    if (f->field == FIX_BAD_ACL && c->opt.mode == FS_CHECK_PREEN) {
        /* dropping an ACL changes who may access the file: not unattended */
        c->stop_preen = 1;
        fsck_info(c, "inode %" PRIu64 ": invalid ACL: not repaired in preen mode: run "
                  "fsck.mmapfs -y", f->ino);
        return 0;
    }
    struct mmapfs_disk_inode di;
    int err = fsck_read_inode(c, f->ino, &di);
    if (err)
        return err;
    switch (f->field) {
    case FIX_NLINK:  di.nlink = (uint32_t)f->value; break;
    case FIX_SIZE:   di.size = f->value; break;
    case FIX_BLOCKS: di.blocks = f->value; break;
    case FIX_PARENT: di.parent = f->value; break;
    case FIX_INLINE_TAIL:
        memset(di.inline_area + f->value, 0, MMAPFS_INLINE_BYTES - (size_t)f->value);
        break;
    case FIX_BAD_ACL:
        err = fsck_drop_bad_acls(c, f->ino, &di);
        break;
    default:         break;
    }
    if (!err)
        err = fsck_write_inode(c, f->ino, &di);
    return err ? err : 1;
}

/* Superblock edit: the free counts pass 3 computed. */
static void edit_counts(struct mmapfs_disk_superblock *sb, void *arg)
{
    const struct check *c = arg;
    sb->free_blocks = c->sb.free_blocks;
    sb->free_inodes = c->sb.free_inodes;
}

/* See fsck_i.h. */
int fsck_apply_fixes(struct check *c)
{
    uint64_t fixed = 0, per[FIX_FIELDS] = { 0 };
    int err = fsck_begin_repair(c);
    if (err)
        return err;
    for (size_t i = 0; i < c->nfixes; i++) {
        int r = apply_inode_fix(c, &c->fixes[i]);
        if (r < 0)
            return r;
        fixed += (uint64_t)r;
        per[c->fixes[i].field] += (uint64_t)r;
    }
    if (per[FIX_INODE_BIT])
        fsck_repaired(c, "inode bitmap: %" PRIu64 " live inode%s marked in use again",
                       per[FIX_INODE_BIT], per[FIX_INODE_BIT] == 1 ? "" : "s");
    if (fixed > per[FIX_INODE_BIT] + per[FIX_BAD_ACL])    /* those have lines of their own */
        fsck_repaired(c, "inode fields corrected: %" PRIu64 " link counts, %" PRIu64 " sizes, %"
                       PRIu64 " block counts, %" PRIu64 " parents, %" PRIu64 " inline data "
                       "tails zeroed", per[FIX_NLINK], per[FIX_SIZE], per[FIX_BLOCKS],
                       per[FIX_PARENT], per[FIX_INLINE_TAIL]);
    if (c->bitmap_bad && !c->structural) {
        err = rebuild_block_bitmap(c);
        if (err)
            return err;
        fsck_repaired(c, "block bitmap rebuilt from the blocks the inodes own");
        fixed++;
    }
    err = fsck_io_sync(c);
    if (err)
        return err;
    /* the superblock last: exact counts */
    if (fixed || c->counts_bad) {
        struct check *cc = c;
        uint64_t fb = c->sb.free_blocks, fi = c->sb.free_inodes;
        err = fsck_write_super(c, edit_counts, cc);
        if (err)
            return err;
        c->sb.free_blocks = fb;
        c->sb.free_inodes = fi;
        if (c->counts_bad)
            fsck_repaired(c, "superblock free counts set to %" PRIu64 " blocks, %" PRIu64
                           " inodes", fb, fi);
        fixed += (uint64_t)c->counts_bad;
    }
    c->repairs += fixed;
    return fixed ? 1 : 0;
}
