/*
 * tree.c — binds the B+tree (btree.h) to the journal and the allocator:
 * nodes are read and changed through jnl_read/jnl_write, allocated with
 * fs_alloc_meta and freed with fs_free_meta. ctx->delta counts nodes allocated
 * minus nodes freed, for the owning inode's block count.
 */
#include "fs/fs_i.h"

/* Is blk a block the data area may hold a node in? Records corruption if not. */
static int node_block_ok(struct fs *fs, uint64_t blk)
{
    if (blk >= fs->data_start && blk < fs->block_count)
        return 1;
    fs_corrupt(fs, "tree node pointer %llu outside the data area", (unsigned long long)blk);
    return 0;
}

static const void *store_read(void *vctx, uint64_t blk)
{
    struct fs_tree_ctx *ctx = vctx;
    if (!node_block_ok(ctx->fs, blk))
        return NULL;
    return jnl_read(ctx->fs->jnl, blk);
}

static void *store_write(void *vctx, uint64_t blk)
{
    struct fs_tree_ctx *ctx = vctx;
    if (!node_block_ok(ctx->fs, blk))
        return NULL;
    return jnl_write(ctx->fs->jnl, blk);
}

static int store_alloc(void *vctx, uint64_t goal, uint64_t *blk, void **out)
{
    struct fs_tree_ctx *ctx = vctx;
    int err = fs_alloc_meta(ctx->fs, goal, blk, out);
    if (!err)
        ctx->delta++;
    return err;
}

static void store_free(void *vctx, uint64_t blk)
{
    struct fs_tree_ctx *ctx = vctx;
    fs_free_meta(ctx->fs, blk);
    ctx->delta--;
}

/* A journal shadow this process wrote holds what the tree code wrote, and
 * a block verified once keeps its bytes until it is freed (verified.c). A
 * pinned shadow (an image a read-only mount replayed from the log) is not
 * trusted until it was checked whole once: its bytes came from the image. */
static int store_trusted(void *vctx, uint64_t blk)
{
    struct fs_tree_ctx *ctx = vctx;
    return fs_verified_has(ctx->fs, blk) || jnl_shadow_written(ctx->fs->jnl, blk);
}

static void store_verified(void *vctx, uint64_t blk)
{
    struct fs_tree_ctx *ctx = vctx;
    FS_COUNT(ctx->fs, node_checksums, 1);
    fs_verified_set(ctx->fs, blk);
}

const struct bt_store fs_tree_store = {
    .ctx = NULL,          /* set per tree: fs_tree_open copies this into ctx->store */
    .read = store_read,
    .write = store_write,
    .alloc = store_alloc,
    .free = store_free,
    .trusted = store_trusted,
    .verified = store_verified,
};

void fs_tree_open(struct fs_tree_ctx *ctx, struct bt_tree *tree, struct fs *fs,
                  uint64_t ino, uint64_t root, uint16_t type)
{
    ctx->fs = fs;
    ctx->delta = 0;
    ctx->store = fs_tree_store;
    ctx->store.ctx = ctx;
    tree->store = &ctx->store;
    tree->root = root;
    tree->owner = ino;
    tree->type = type;
}
