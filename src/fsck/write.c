/*
 * fsck/write.c — the primitives fsck repairs are made of: an allocator
 * over blocks known to be free, inode allocation, writes of inode records,
 * bitmap bits and the superblock (all through fsck_io_write), and a bulk
 * builder that writes a fresh B+tree into newly allocated blocks.
 *
 * Crash safety: a repair writes new blocks first, marks them in the block
 * bitmap, syncs, and only then points an inode at them; so a crash in the
 * middle leaves at worst blocks marked in use that nobody owns (reported
 * and reclaimed by the next fsck), never a pointer to unwritten or free
 * blocks.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "fsck/fsck_i.h"
#include "fs/inode.h"
#include "fs/super.h"

#define BITS_PER_BLOCK (MMAPFS_BLOCK_SIZE * 8ull)
#define ARENA_CHUNK (64u * 1024u)
#define HDR_SIZE ((unsigned)sizeof(struct mmapfs_disk_btree_header))
#define ITEM_SIZE ((unsigned)sizeof(struct mmapfs_disk_btree_item))
#define PTR_SIZE ((unsigned)sizeof(struct mmapfs_disk_btree_ptr))
#define INT_MAX_ENTRIES ((MMAPFS_BLOCK_SIZE - HDR_SIZE) / PTR_SIZE)
#define LEAF_MAX_ITEMS ((MMAPFS_BLOCK_SIZE - HDR_SIZE) / (ITEM_SIZE + 1))

/* ---- item arrays ------------------------------------------------------------------ */

int fsck_items_add(struct check_items *it, uint64_t key, const void *val, size_t len)
{
    if (len == 0 || len > MMAPFS_BTREE_MAX_VALUE)
        return -EINVAL;
    if (it->n == it->cap) {
        size_t cap = it->cap ? it->cap * 2 : 256;
        struct check_item *v = realloc(it->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        it->v = v;
        it->cap = cap;
    }
    if (!it->nchunks || it->used + len > ARENA_CHUNK) {
        uint8_t **ch = realloc(it->chunks, (it->nchunks + 1) * sizeof(*ch));
        if (!ch)
            return -ENOMEM;
        it->chunks = ch;
        ch[it->nchunks] = malloc(ARENA_CHUNK);
        if (!ch[it->nchunks])
            return -ENOMEM;
        it->nchunks++;
        it->used = 0;
    }
    uint8_t *dst = it->chunks[it->nchunks - 1] + it->used;
    memcpy(dst, val, len);
    it->used += len;
    it->v[it->n] = (struct check_item){ .key = key, .val = dst, .seq = it->n,
                                        .len = (uint16_t)len };
    it->n++;
    return 0;
}

/* qsort order: key, then insertion order. */
static int item_cmp(const void *a, const void *b)
{
    const struct check_item *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* See fsck_i.h. */
void fsck_items_sort(struct check_items *it)
{
    if (it->n > 1)
        qsort(it->v, it->n, sizeof(*it->v), item_cmp);
}

/* See fsck_i.h. */
void fsck_items_free(struct check_items *it)
{
    for (size_t i = 0; i < it->nchunks; i++)
        free(it->chunks[i]);
    free(it->chunks);
    free(it->v);
    memset(it, 0, sizeof(*it));
}

/* ---- writes ----------------------------------------------------------------------- */

int fsck_write_inode(struct check *c, uint64_t ino, struct mmapfs_disk_inode *di)
{
    uint64_t off = fsck_inode_offset(c, ino);
    if (!off)
        return -EINVAL;
    di->checksum = fs_inode_checksum(ino, di);
    return fsck_io_write(c, off, di, sizeof(*di));
}

/* Sets or clears bit i of the bitmap that starts at block 'start'. */
static int write_bit(struct check *c, uint64_t start, uint64_t i, int on)
{
    uint64_t off = (start + i / BITS_PER_BLOCK) * MMAPFS_BLOCK_SIZE + (i % BITS_PER_BLOCK) / 8;
    uint8_t byte;
    int err = mmio_read_at(c->io, off, &byte, 1);
    if (err)
        return err;
    uint8_t mask = (uint8_t)(1u << (i % 8));
    uint8_t nb = on ? (uint8_t)(byte | mask) : (uint8_t)(byte & ~mask);
    return nb == byte ? 0 : fsck_io_write(c, off, &nb, 1);
}

/* See fsck_i.h. */
int fsck_write_block_bits(struct check *c, uint64_t start, uint64_t len, int on)
{
    for (uint64_t b = start; b < start + len; b++) {
        if (b < c->data_start || b >= c->block_count)
            return -EINVAL;
        int err = write_bit(c, c->sb.block_bitmap_start, b, on);
        if (err)
            return err;
    }
    return 0;
}

/* See fsck_i.h. */
int fsck_xattr_set_next(struct check *c, uint64_t blk, uint64_t next)
{
    uint8_t buf[MMAPFS_BLOCK_SIZE];
    const uint8_t *p = fsck_block(c, blk);
    if (!p)
        return -EIO;
    memcpy(buf, p, sizeof(buf));
    struct mmapfs_disk_xattr_header *h = (void *)buf;
    h->next = next;
    h->checksum = bt_block_checksum(blk, buf);
    return fsck_io_write(c, blk * MMAPFS_BLOCK_SIZE, buf, sizeof(buf));
}

/* See fsck_i.h. */
int fsck_write_inode_bit(struct check *c, uint64_t ino, int on)
{
    if (ino < 1 || ino > c->inode_count)
        return -EINVAL;
    return write_bit(c, c->sb.inode_bitmap_start, ino - 1, on);
}

/* See fsck_i.h. */
int fsck_write_super(struct check *c, void (*edit)(struct mmapfs_disk_superblock *, void *),
                      void *arg)
{
    struct mmapfs_disk_superblock sb;
    int err = mmio_read_at(c->io, 0, &sb, sizeof(sb));
    if (err)
        return err;
    edit(&sb, arg);
    fs_super_checksum(&sb);
    err = fsck_io_write(c, 0, &sb, sizeof(sb));
    if (!err)
        err = fsck_io_sync(c);
    if (err)
        return err;
    /* keep the counts this round computed; take the rest as written */
    uint64_t fb = c->sb.free_blocks, fi = c->sb.free_inodes;
    c->sb = sb;
    c->sb.free_blocks = fb;
    c->sb.free_inodes = fi;
    return 0;
}

/* Superblock edit: the ERROR state bit. */
static void edit_set_error(struct mmapfs_disk_superblock *sb, void *arg)
{
    (void)arg;
    sb->state |= MMAPFS_STATE_ERROR;
}

/* See fsck_i.h. */
int fsck_begin_repair(struct check *c)
{
    if (c->repair_started)
        return 0;
    c->repair_started = 1;
    struct mmapfs_disk_superblock sb;
    int err = mmio_read_at(c->io, 0, &sb, sizeof(sb));
    if (err || (sb.state & MMAPFS_STATE_ERROR))
        return err;
    c->error_set = 1;
    return fsck_write_super(c, edit_set_error, NULL);
}

/* ---- allocation --------------------------------------------------------------------- */

/* Can block b be given to a repair? With by_bitmap, only if the on-disk
 * bitmap marks it free too. */
static int block_free(struct check *c, uint64_t b, int by_bitmap)
{
    return !check_bits_get(&c->claimed, b) && !check_bits_get(&c->taken, b) &&
           (!by_bitmap || !fsck_block_bit(c, b));
}

/* See fsck_i.h. */
void fsck_unalloc(struct check *c, uint64_t start, uint64_t len)
{
    for (uint64_t b = start; b < start + len && b < c->block_count; b++)
        fsck_bits_clear(&c->taken, b);
}

/* See fsck_i.h. */
uint64_t fsck_tree_blocks(uint64_t n, size_t vlen)
{
    uint64_t per_leaf = (MMAPFS_BLOCK_SIZE - HDR_SIZE) / (ITEM_SIZE + vlen);
    uint64_t x = n ? (n + per_leaf - 1) / per_leaf : 0, total = x;
    while (x > 1) {
        x = (x + INT_MAX_ENTRIES - 1) / INT_MAX_ENTRIES;
        total += x;
    }
    return total;
}

/* fsck_alloc_run's scan, from goal (in the data area) round the data area. */
static int alloc_scan(struct check *c, uint64_t goal, uint64_t want, int by_bitmap,
                      uint64_t *start, uint64_t *got)
{
    uint64_t total = c->block_count - c->data_start;
    for (uint64_t i = 0; i < total; i++) {
        uint64_t b = goal + i;
        if (b >= c->block_count)
            b -= total;
        if (!block_free(c, b, by_bitmap))
            continue;
        uint64_t n = 1;
        while (n < want && b + n < c->block_count && block_free(c, b + n, by_bitmap))
            n++;
        for (uint64_t j = 0; j < n; j++)
            fsck_bits_set(&c->taken, b + j);
        *start = b;
        *got = n;
        c->alloc_next = b + n;
        return 0;
    }
    return -ENOSPC;
}

/* See fsck_i.h. Until the trees are whole (trust_claims), a block must be
 * free in the on-disk bitmap too, as a second guard for blocks of the
 * damaged trees. When the bitmap marks no such block free while blocks
 * that nothing claims or reserves remain, the bitmap is what is damaged
 * (set bits, a block of ones): those blocks are handed out then. Before,
 * the damaged tree was left unrepaired, and with it the bitmap (rebuilt
 * only once no structural problem is left): every later fsck -y stopped
 * at "no free space" again. */
int fsck_alloc_run(struct check *c, uint64_t goal, uint64_t want, uint64_t *start,
                    uint64_t *got)
{
    if (want == 0)
        want = 1;
    if (goal < c->data_start || goal >= c->block_count)
        goal = c->alloc_next;
    if (goal < c->data_start || goal >= c->block_count)
        goal = c->data_start;
    int err = alloc_scan(c, goal, want, !c->trust_claims, start, got);
    if (err == -ENOSPC && !c->trust_claims)
        err = alloc_scan(c, goal, want, 0, start, got);
    return err;
}

/* See fsck_i.h. */
int fsck_alloc_inode(struct check *c, uint64_t *ino)
{
    for (uint64_t i = 2; i <= c->inode_count; i++) {
        if (fsck_inode_bit(c, i) || (fsck_ci_peek(c, i)->state & CI_USED))
            continue;
        int err = fsck_write_inode_bit(c, i, 1);
        if (err)
            return err;
        *ino = i;
        return 0;
    }
    return -ENOSPC;
}

/* ---- building a tree ------------------------------------------------------------------ */

/* Child pointers of the level being built. */
struct level_list {
    struct mmapfs_disk_btree_ptr *v;
    size_t n, cap;
};

static int level_push(struct level_list *l, uint64_t key, uint64_t blk)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct mmapfs_disk_btree_ptr *v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (struct mmapfs_disk_btree_ptr){ .key = key, .child = blk };
    return 0;
}

/* Allocates one block for a node (next to the previous one), recorded in
 * 'all' so that the caller can mark them. */
static int node_alloc(struct check *c, struct level_list *all, uint64_t *blk)
{
    uint64_t got, goal = all->n ? all->v[all->n - 1].child + 1 : 0;
    int err = fsck_alloc_run(c, goal, 1, blk, &got);
    return err ? err : level_push(all, 0, *blk);
}

/* Seals node buf (block blk) and writes it. */
static int node_write(struct check *c, uint64_t blk, uint8_t *buf)
{
    struct mmapfs_disk_btree_header *h = (void *)buf;
    h->checksum = bt_block_checksum(blk, buf);
    return fsck_io_write(c, blk * MMAPFS_BLOCK_SIZE, buf, MMAPFS_BLOCK_SIZE);
}

/* Writes the leaves: packs items in order, each leaf as full as it goes. */
static int build_leaves(struct check *c, uint64_t owner, uint16_t type,
                        const struct check_items *items, uint8_t *buf,
                        struct level_list *out, struct level_list *all)
{
    size_t i = 0;
    while (i < items->n) {
        memset(buf, 0, MMAPFS_BLOCK_SIZE);
        struct mmapfs_disk_btree_header *h = (void *)buf;
        h->magic = MMAPFS_BTREE_MAGIC;
        h->owner = owner;
        h->type = type;
        unsigned k = 0, vs = MMAPFS_BLOCK_SIZE;
        while (i < items->n && k < LEAF_MAX_ITEMS &&
               HDR_SIZE + (k + 1) * ITEM_SIZE + items->v[i].len <= vs) {
            const struct check_item *it = &items->v[i];
            vs -= it->len;
            memcpy(buf + vs, it->val, it->len);
            struct mmapfs_disk_btree_item di = { .key = it->key, .value_off = (uint16_t)vs,
                                                 .value_len = it->len };
            memcpy(buf + HDR_SIZE + k * ITEM_SIZE, &di, ITEM_SIZE);
            k++;
            i++;
        }
        if (k == 0)
            return -EINVAL;
        h->nitems = (uint16_t)k;
        h->value_start = (uint16_t)vs;
        uint64_t blk;
        int err = node_alloc(c, all, &blk);
        if (!err)
            err = node_write(c, blk, buf);
        if (!err)
            err = level_push(out, ((struct mmapfs_disk_btree_item *)(buf + HDR_SIZE))->key, blk);
        if (err)
            return err;
    }
    return 0;
}

/* Writes one level of internal nodes over the children in 'in'. */
static int build_level(struct check *c, uint64_t owner, uint16_t type, unsigned level,
                       const struct level_list *in, uint8_t *buf, struct level_list *out,
                       struct level_list *all)
{
    for (size_t i = 0; i < in->n; i += INT_MAX_ENTRIES) {
        size_t k = in->n - i < INT_MAX_ENTRIES ? in->n - i : INT_MAX_ENTRIES;
        memset(buf, 0, MMAPFS_BLOCK_SIZE);
        struct mmapfs_disk_btree_header *h = (void *)buf;
        h->magic = MMAPFS_BTREE_MAGIC;
        h->owner = owner;
        h->type = type;
        h->level = (uint16_t)level;
        h->nitems = (uint16_t)k;
        memcpy(buf + HDR_SIZE, in->v + i, k * PTR_SIZE);
        uint64_t blk;
        int err = node_alloc(c, all, &blk);
        if (!err)
            err = node_write(c, blk, buf);
        if (!err)
            err = level_push(out, in->v[i].key, blk);
        if (err)
            return err;
    }
    return 0;
}

/* See fsck_i.h. */
int fsck_build_tree(struct check *c, uint64_t owner, uint16_t type,
                     const struct check_items *items, uint64_t *root, uint64_t *nodes)
{
    struct level_list cur = { 0 }, next = { 0 }, all = { 0 };
    uint8_t *buf = NULL;
    int err = 0;

    *root = 0;
    *nodes = 0;
    if (!items->n)
        return 0;
    buf = malloc(MMAPFS_BLOCK_SIZE);
    if (!buf) {
        err = -ENOMEM;
        goto out;
    }
    err = build_leaves(c, owner, type, items, buf, &cur, &all);
    for (unsigned level = 1; !err && cur.n > 1; level++) {
        if (level > MMAPFS_BTREE_MAX_LEVEL) {
            err = -EFBIG;
            break;
        }
        next.n = 0;
        err = build_level(c, owner, type, level, &cur, buf, &next, &all);
        struct level_list t = cur;
        cur = next;
        next = t;
    }
    for (size_t i = 0; !err && i < all.n; i++)
        err = fsck_write_block_bits(c, all.v[i].child, 1, 1);
    if (!err) {
        *root = cur.v[0].child;
        *nodes = all.n;
    }
out:
    free(buf);
    free(cur.v);
    free(next.v);
    free(all.v);
    return err;
}
