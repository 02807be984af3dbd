/*
 * file_map.c — the extent map of a file: validated lookups, changes, and
 * unmapping of block ranges in bounded journal steps (truncate, punch,
 * release).
 *
 * The map is either the inode's extent tree or, on images with
 * inode-resident data, up to MMAPFS_INLINE_EXTENTS extents inside the
 * inode record (docs/FORMAT.md §6). The inline extents are worked on in a
 * copy (struct fmap) that fs_fmap_sync writes back into the caller's record;
 * the caller puts the record in the same transaction, so a move between
 * the two forms is atomic.
 */
#include <errno.h>
#include <string.h>

#include "fs/file_i.h"

/* Converts and checks a tree item into *e. 0 or -EUCLEAN. */
static int decode(struct fmap *m, uint64_t key, const struct mmapfs_disk_extent *v,
                  size_t len, struct fextent *e)
{
    struct fs *fs = m->fs;
    if (len != sizeof(*v) || v->len == 0 || (v->flags & ~MMAPFS_EXTENT_UNWRITTEN) ||
        key >= FILE_MAX_BLOCKS || v->len > FILE_MAX_BLOCKS - key ||
        v->start < fs->data_start || v->start >= fs->block_count ||
        v->len > fs->block_count - v->start || fs_blocks_reserved(fs, v->start, v->len))
        return fs_corrupt(fs, "inode %llu: bad extent at block %llu (start %llu, len %u, "
                          "flags %#x, value %zu bytes)", (unsigned long long)m->ino,
                          (unsigned long long)key, (unsigned long long)v->start, v->len,
                          v->flags, len);
    e->lblk = key;
    e->pblk = v->start;
    e->len = v->len;
    e->flags = v->flags;
    return 0;
}


/* ==== the map in the inode ================================================= */

void fs_fmap_open_inode(struct fmap *m, struct fs *fs, uint64_t ino,
                     const struct mmapfs_disk_inode *di)
{
    m->fs = fs;
    m->ino = ino;
    fs_tree_open(&m->ctx, &m->tree, fs, ino, di->tree_root, MMAPFS_TREE_EXTENTS);
    m->dirty = 0;
    m->count = 0;
    m->data_inline = (di->flags & MMAPFS_INODE_INLINE_DATA) != 0;
    m->in_inode = di->tree_root == 0 && (fs_inode_data(fs) || m->data_inline ||
                                         (di->flags & MMAPFS_INODE_EXTENTS));
    if (!m->in_inode || !(di->flags & MMAPFS_INODE_EXTENTS))
        return;
    /* fs_inode_get validated the slots */
    for (unsigned i = 0; i < MMAPFS_INLINE_EXTENTS; i++) {
        struct mmapfs_disk_extent v;
        uint64_t lblk;
        mmapfs_inline_extent_get(di->inline_area, i, &lblk, &v);
        if (v.len == 0)
            break;
        m->ext[m->count++] = (struct fextent){ lblk, v.start, v.len, v.flags };
    }
}

void fs_fmap_sync(struct fmap *m, struct mmapfs_disk_inode *di)
{
    di->tree_root = m->tree.root;
    di->blocks += (uint64_t)m->ctx.delta;
    m->ctx.delta = 0;
    if (m->in_inode && m->dirty) {
        memset(di->inline_area, 0, sizeof(di->inline_area));
        for (unsigned i = 0; i < m->count; i++) {
            struct mmapfs_disk_extent v = { m->ext[i].pblk, (uint32_t)m->ext[i].len,
                                            m->ext[i].flags };
            mmapfs_inline_extent_put(di->inline_area, i, m->ext[i].lblk, &v);
        }
        di->flags &= ~MMAPFS_INODE_EXTENTS;
        if (m->count)
            di->flags |= MMAPFS_INODE_EXTENTS;
        m->dirty = 0;
    } else if (!m->in_inode && (di->flags & MMAPFS_INODE_EXTENTS)) {
        memset(di->inline_area, 0, sizeof(di->inline_area));
        di->flags &= ~MMAPFS_INODE_EXTENTS;
    }
}

/* Index of the first inline extent with lblk >= key (count if none). */
static unsigned inline_ge(const struct fmap *m, uint64_t key)
{
    unsigned i = 0;
    while (i < m->count && m->ext[i].lblk < key)
        i++;
    return i;
}

/* Can e be stored in an inline slot? */
static int inline_fits(const struct fextent *e)
{
    return e->lblk < MMAPFS_INLINE_LBLK_LIMIT && e->pblk < MMAPFS_INLINE_PBLK_LIMIT &&
           e->len < MMAPFS_INLINE_EXTENT_UNWRITTEN;
}

/* The on-disk value of e. */
static struct mmapfs_disk_extent encode(const struct fextent *e)
{
    return (struct mmapfs_disk_extent){ .start = e->pblk, .len = (uint32_t)e->len,
                                        .flags = e->flags };
}

/* The inline extents no longer fit: they move into a new tree, in the
 * same transaction. On error nothing has changed. */
static int inline_to_tree(struct fmap *m)
{
    for (unsigned i = 0; i < m->count; i++) {
        struct mmapfs_disk_extent v = encode(&m->ext[i]);
        int err = bt_insert(&m->tree, m->ext[i].lblk, &v, sizeof(v));
        if (err) {
            if (m->tree.root)
                bt_destroy(&m->tree);       /* nodes of this step only */
            return err;
        }
    }
    m->in_inode = 0;
    m->count = 0;
    return 0;
}

/* A tree of at most MMAPFS_INLINE_EXTENTS extents moves back into the
 * inode (its nodes are freed). 0 (also when it stays a tree) or -errno. */
static int tree_to_inline(struct fmap *m)
{
    struct fextent e[MMAPFS_INLINE_EXTENTS];
    unsigned n = 0;
    if (m->in_inode || !m->tree.root || !fs_inode_data(m->fs))
        return 0;
    for (uint64_t key = 0;;) {
        struct mmapfs_disk_extent v;
        size_t len = sizeof(v);
        uint64_t found;
        int err = bt_lookup_ge(&m->tree, key, &found, &v, &len);
        if (err == -ENOENT)
            break;
        if (err)
            return err;
        if (n == MMAPFS_INLINE_EXTENTS)
            return 0;
        err = decode(m, found, &v, len, &e[n]);
        if (err)
            return err;
        if (!inline_fits(&e[n]))
            return 0;
        n++;
        if (found == UINT64_MAX)
            break;
        key = found + 1;
    }
    int err = bt_destroy(&m->tree);
    if (err)
        return err;
    m->in_inode = 1;
    m->dirty = 1;
    m->count = n;
    memcpy(m->ext, e, n * sizeof(e[0]));
    return 0;
}

/* ==== lookups and changes =================================================== */

int fs_fmap_find_le(struct fmap *m, uint64_t lblk, struct fextent *e)
{
    if (m->in_inode) {
        unsigned i = lblk == UINT64_MAX ? m->count : inline_ge(m, lblk + 1);
        if (i == 0)
            return -ENOENT;
        *e = m->ext[i - 1];
        return 0;
    }
    struct mmapfs_disk_extent v;
    size_t len = sizeof(v);
    uint64_t key;
    int err = bt_lookup_le(&m->tree, lblk, &key, &v, &len);
    if (err)
        return err;
    return decode(m, key, &v, len, e);
}

int fs_fmap_find(struct fmap *m, uint64_t lblk, struct fextent *e, uint64_t *next)
{
    int err = fs_fmap_find_le(m, lblk, e);
    if (err && err != -ENOENT)
        return err;
    if (!err && fext_end(e) > lblk)
        return 0;
    /* a hole: where does the next extent start? */
    struct mmapfs_disk_extent v;
    size_t len = sizeof(v);
    uint64_t key;
    *next = UINT64_MAX;
    if (lblk == UINT64_MAX)
        return -ENOENT;
    if (m->in_inode) {
        unsigned i = inline_ge(m, lblk + 1);
        if (i < m->count)
            *next = m->ext[i].lblk;
        return -ENOENT;
    }
    err = bt_lookup_ge(&m->tree, lblk + 1, &key, &v, &len);
    if (err == -ENOENT)
        return -ENOENT;
    if (err)
        return err;
    struct fextent ne;
    err = decode(m, key, &v, len, &ne);
    if (err)
        return err;
    *next = key;
    return -ENOENT;
}

/* The map of an inode holding its data bytes must not change. */
static int data_inline_error(struct fmap *m)
{
    return fs_corrupt(m->fs, "inode %llu: block map change of an inode holding its data",
                      (unsigned long long)m->ino);
}

int fs_fmap_insert(struct fmap *m, const struct fextent *e)
{
    if (m->data_inline)
        return data_inline_error(m);
    if (m->in_inode) {
        unsigned i = inline_ge(m, e->lblk);
        if (i < m->count && m->ext[i].lblk == e->lblk)
            return -EEXIST;
        if (m->count < MMAPFS_INLINE_EXTENTS && inline_fits(e)) {
            memmove(&m->ext[i + 1], &m->ext[i], (m->count - i) * sizeof(m->ext[0]));
            m->ext[i] = *e;
            m->count++;
            m->dirty = 1;
            return 0;
        }
        int err = inline_to_tree(m);
        if (err)
            return err;
    }
    struct mmapfs_disk_extent v = encode(e);
    return bt_insert(&m->tree, e->lblk, &v, sizeof(v));
}

int fs_fmap_update(struct fmap *m, const struct fextent *e)
{
    if (m->data_inline)
        return data_inline_error(m);
    if (m->in_inode) {
        unsigned i = inline_ge(m, e->lblk);
        if (i == m->count || m->ext[i].lblk != e->lblk)
            return -ENOENT;
        if (inline_fits(e)) {
            m->ext[i] = *e;
            m->dirty = 1;
            return 0;
        }
        int err = inline_to_tree(m);
        if (err)
            return err;
    }
    struct mmapfs_disk_extent v = encode(e);
    return bt_update(&m->tree, e->lblk, &v, sizeof(v));
}

int fs_fmap_delete(struct fmap *m, uint64_t lblk)
{
    if (m->in_inode) {
        unsigned i = inline_ge(m, lblk);
        if (i == m->count || m->ext[i].lblk != lblk)
            return -ENOENT;
        memmove(&m->ext[i], &m->ext[i + 1], (m->count - i - 1) * sizeof(m->ext[0]));
        m->count--;
        m->dirty = 1;
        return 0;
    }
    return bt_delete(&m->tree, lblk);
}

void fs_file_data_overwritten(struct fs *fs, uint64_t ino, uint64_t pblk, uint64_t n)
{
    if (jnl_data_overwrite(fs->jnl, pblk, n)) {
        uint64_t seq = jnl_running_seq(fs->jnl);
        fs_icache_set_dirty_seq(fs, ino, seq);
        fs_icache_set_data_seq(fs, ino, seq);
    }
}

int fs_fmap_zero_bytes(struct fmap *m, uint64_t from, uint64_t to)
{
    struct fs *fs = m->fs;
    while (from < to) {
        uint64_t lblk = from >> MMAPFS_BLOCK_SHIFT, next;
        struct fextent e;
        int err = fs_fmap_find(m, lblk, &e, &next);
        if (err == -ENOENT) {
            if (next == UINT64_MAX || next << MMAPFS_BLOCK_SHIFT >= to)
                return 0;
            from = next << MMAPFS_BLOCK_SHIFT;
            continue;
        }
        if (err)
            return err;
        uint64_t end = fext_end(&e) << MMAPFS_BLOCK_SHIFT;
        if (end > to)
            end = to;
        if (!(e.flags & MMAPFS_EXTENT_UNWRITTEN)) {
            uint64_t phys = ((e.pblk + (lblk - e.lblk)) << MMAPFS_BLOCK_SHIFT) +
                            (from & (MMAPFS_BLOCK_SIZE - 1));
            /* the zeros are what a later size or extent change makes
             * readable: ordered like new data, or a crash could show the
             * bytes a truncate or punch removed */
            jnl_note_new_data(fs->jnl);
            uint64_t pblk = phys >> MMAPFS_BLOCK_SHIFT;
            uint64_t nblk = ((phys + (end - from) - 1) >> MMAPFS_BLOCK_SHIFT) - pblk + 1;
            /* on a corrupt image a block may also be a tree node (a
             * cross-link): what was verified in it is stale now */
            fs_verified_clear(fs, pblk, nblk);
            fs_file_data_overwritten(fs, m->ino, pblk, nblk);
            for (uint64_t done = 0; done < end - from;) {
                size_t n = end - from - done < FS_ZERO_BYTES ? (size_t)(end - from - done)
                                                             : FS_ZERO_BYTES;
                err = mmio_write_at(fs->io, phys + done, fs->zero_block, n);
                if (err)
                    return err;
                done += n;
            }
        }
        from = end;
    }
    return 0;
}

/* The fs_unmap_step_max metric (lock held: the only writer). */
static void note_step(struct fs *fs, unsigned cuts)
{
    if (cuts > __atomic_load_n(&fs->ctr.unmap_step_max, __ATOMIC_RELAXED))
        __atomic_store_n(&fs->ctr.unmap_step_max, cuts, __ATOMIC_RELAXED);
}

int fs_fmap_unmap_step(struct fmap *m, struct mmapfs_disk_inode *di, uint64_t from,
                    uint64_t to, uint64_t base, uint64_t *low, int *done)
{
    struct fs *fs = m->fs;
    unsigned cuts = 0;
    *done = 0;
    for (; to > from; cuts++) {
        if (file_step_full(fs, base) || cuts == FILE_STEP_EXTENTS) {
            note_step(fs, cuts);
            return 0;
        }
        struct fextent e;
        int err = fs_fmap_find_le(m, to - 1, &e);
        if (err == -ENOENT || (!err && fext_end(&e) <= from))
            break;
        if (err)
            return err;
        uint64_t cut_lo = e.lblk > from ? e.lblk : from;
        uint64_t cut_hi = fext_end(&e) < to ? fext_end(&e) : to;
        if (cut_hi - cut_lo > FILE_EXTENT_MAX)
            cut_lo = cut_hi - FILE_EXTENT_MAX;
        /* insertions first (they may fail), then changes that cannot */
        if (cut_hi < fext_end(&e)) {
            struct fextent right = { cut_hi, e.pblk + (cut_hi - e.lblk),
                                     fext_end(&e) - cut_hi, e.flags };
            err = fs_fmap_insert(m, &right);
            if (err)
                return err;
        }
        if (cut_lo == e.lblk) {
            err = fs_fmap_delete(m, e.lblk);
        } else {
            struct fextent left = e;
            left.len = cut_lo - e.lblk;
            err = fs_fmap_update(m, &left);
        }
        if (err)
            return err;
        uint64_t n = cut_hi - cut_lo;
        err = fs_free_blocks(fs, e.pblk + (cut_lo - e.lblk), n);
        di->blocks = di->blocks >= n ? di->blocks - n : 0;
        fs_fmap_sync(m, di);
        if (err)
            return err;
        *low = cut_lo;
        to = cut_lo;
    }
    note_step(fs, cuts);
    int err = tree_to_inline(m);
    fs_fmap_sync(m, di);
    if (err)
        return err;
    *done = 1;
    return 0;
}

int fs_file_next_step(struct fs *fs, uint64_t ino, struct mmapfs_disk_inode *di)
{
    int err = fs_inode_put(fs, ino, di);
    if (err)
        return err;
    /* a change that failed where it could not be reported fails (and
     * undoes) this step rather than committing with it */
    int step_err = fs_end(fs, 0);
    err = jnl_begin(fs->jnl);
    if (err) {
        jnl_lock(fs->jnl);
        return err;
    }
    return step_err ? step_err : fs_inode_get(fs, ino, di);
}
