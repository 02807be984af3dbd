/*
 * alloc.c — block and inode allocation over the journaled bitmaps.
 *
 * Blocks: next-fit from a goal, scanning the bitmap 64 bits at a time and
 * skipping bitmap blocks with no free bit (per-bitmap-block free counts kept
 * in memory). A large request prefers a run of at least ALLOC_LONG_RUN
 * blocks found within a bounded scan, so that sequential writes stay
 * contiguous. The scan is bounded in blocks and in free runs looked at:
 * in free space fragmented into single blocks, a bound in blocks alone let
 * every call walk up to 2^19 blocks (about 2^18 runs) for a long run that
 * was not there, and a 500 MiB write into such space took minutes (ext4's
 * mballoc likewise stops after a number of free extents, mb_max_to_scan).
 *
 * Invariant 4: a block freed in transaction T is not handed out again until
 * T is durable. Freed runs wait in the pending list (sorted, disjoint,
 * adjacent runs merged, each tagged with the newest transaction that freed
 * part of it); the allocator skips them. Once the transaction is durable
 * and no zero-copy read that could have seen the blocks is still being
 * answered (readpin.c), fs_alloc_release drops the runs (with the discard
 * mount option, discard.c punches each run first, while the allocator
 * still skips it).
 *
 * Free counts (statfs, the superblock at unmount) are counted from the
 * bitmaps at mount and kept up to date in memory; blocks waiting in the
 * pending list count as free, like ext4.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/fs_i.h"

#define BITS_PER_BMAP    (MMAPFS_BLOCK_SIZE * 8ull)   /* bits per bitmap block */
#define ALLOC_MAX_WANT   (BITS_PER_BMAP * 4)          /* blocks per call */
#define ALLOC_LONG_RUN   256u                         /* preferred run for big wants */
#define ALLOC_SCAN_LIMIT (BITS_PER_BMAP * 16)         /* blocks looked at for a long run */
#define ALLOC_SCAN_RUNS  1024u                        /* free runs looked at for a long run */

struct pending_run {
    uint64_t start, end, seq;   /* blocks [start, end) freed by transaction <= seq */
};

struct fs_pending {
    struct pending_run *runs;   /* [0, count): sorted by start, disjoint */
    size_t count, cap;
    /* runs[count, count + added): freed since the last pending_sort, in
     * any order. Inserting each into the sorted runs moved their tail: a
     * release frees a file from its end, so the tail was every run freed
     * before, and a file of 131072 one-block extents took 3.8 s of
     * memmove under the metadata lock, every other operation waiting. */
    size_t added;
    uint64_t blocks;            /* total blocks in runs */
    /* runs added by the operation in progress (jnl_op_gen op_gen): an
     * undo takes them out again (fs_alloc_undo_pending) */
    uint64_t (*op_runs)[2];
    size_t op_count, op_cap;
    uint64_t op_gen;
};

/* One of the two bitmaps. Bits [lo, hi) are the allocatable ones and the
 * ones counted in group_free. */
struct bmap {
    uint64_t start;             /* first bitmap block */
    uint64_t lo, hi;
    uint32_t *group_free;
};

static struct bmap block_map(struct fs *fs)
{
    return (struct bmap){ fs->block_bitmap_start, fs->data_start, fs->block_count,
                          fs->group_free };
}

static struct bmap inode_map(struct fs *fs)
{
    return (struct bmap){ fs->inode_bitmap_start, 0, fs->inode_count, fs->igroup_free };
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* Bits of the 64-bit word holding bits [base, base+64) that lie in [lo, hi). */
static uint64_t word_mask(uint64_t base, uint64_t lo, uint64_t hi)
{
    if (hi <= base || lo >= base + 64)
        return 0;
    uint64_t from = lo > base ? lo - base : 0;
    uint64_t to = hi < base + 64 ? hi - base : 64;
    if (from >= to)
        return 0;
    uint64_t m = to == 64 ? ~0ull : (1ull << to) - 1;
    return m & (~0ull << from);
}

/* ==== bitmap primitives ===================================================== */

/* First bit in [pos, hi) equal to 'set', or hi. Skips bitmap blocks without
 * a free bit when looking for a clear one (unless m has no group_free:
 * bits outside [lo, hi) are not counted there). 0 or -EIO. */
static int bmap_find(struct fs *fs, const struct bmap *m, uint64_t pos, uint64_t hi,
                     int set, uint64_t *out)
{
    while (pos < hi) {
        uint64_t g = pos / BITS_PER_BMAP;
        uint64_t gend = min_u64((g + 1) * BITS_PER_BMAP, hi);
        if (!set && m->group_free && m->group_free[g] == 0) {
            pos = gend;
            continue;
        }
        const uint64_t *w = jnl_read(fs->jnl, m->start + g);
        if (!w)
            return jnl_read_error();
        while (pos < gend) {
            uint64_t idx = (pos % BITS_PER_BMAP) / 64;
            uint64_t x = set ? w[idx] : ~w[idx];
            x &= ~0ull << (pos % 64);
            if (x) {
                uint64_t p = (pos & ~63ull) + (uint64_t)__builtin_ctzll(x);
                *out = p < hi ? p : hi;
                return 0;
            }
            pos = (pos & ~63ull) + 64;
        }
        pos = gend;
    }
    *out = hi;
    return 0;
}

/* Sets or clears bits [start, start+len) (inside [m->lo, m->hi)); *changed
 * receives how many bits actually flipped. 0 or -EIO/-ENOMEM. */
static int bmap_change(struct fs *fs, const struct bmap *m, uint64_t start, uint64_t len,
                       int set, uint64_t *changed)
{
    uint64_t end = start + len, pos = start;
    *changed = 0;
    while (pos < end) {
        uint64_t g = pos / BITS_PER_BMAP;
        uint64_t gend = min_u64((g + 1) * BITS_PER_BMAP, end);
        uint64_t *w = jnl_write(fs->jnl, m->start + g);
        if (!w)
            return fs_write_error(fs, errno);
        uint64_t n = 0;
        for (uint64_t base = pos & ~63ull; base < gend; base += 64) {
            uint64_t idx = (base % BITS_PER_BMAP) / 64;
            uint64_t mask = word_mask(base, pos, gend);
            if (set) {
                n += (uint64_t)__builtin_popcountll(mask & ~w[idx]);
                w[idx] |= mask;
            } else {
                n += (uint64_t)__builtin_popcountll(mask & w[idx]);
                w[idx] &= ~mask;
            }
        }
        if (set)
            m->group_free[g] -= (uint32_t)n;
        else
            m->group_free[g] += (uint32_t)n;
        *changed += n;
        pos = gend;
    }
    return 0;
}

/* Free bits over [m->lo, m->hi) of bitmap block g, whose words are w. */
static uint32_t group_count(const struct bmap *m, uint64_t g, const uint64_t *w)
{
    uint64_t base0 = g * BITS_PER_BMAP, n = 0;
    for (uint64_t i = 0; i < BITS_PER_BMAP / 64; i++) {
        uint64_t mask = word_mask(base0 + i * 64, m->lo, m->hi);
        n += (uint64_t)__builtin_popcountll(~w[i] & mask);
    }
    return (uint32_t)n;
}

/* Counts the free bits of every bitmap block over [m->lo, m->hi). */
static int bmap_count(struct fs *fs, struct bmap *m, uint64_t groups, uint64_t *free_total)
{
    *free_total = 0;
    for (uint64_t g = 0; g < groups; g++) {
        const uint64_t *w = jnl_read(fs->jnl, m->start + g);
        if (!w)
            return jnl_read_error();
        m->group_free[g] = group_count(m, g, w);
        *free_total += m->group_free[g];
    }
    return 0;
}

/* Sum of the free counts of all groups. */
static uint64_t groups_total(const uint32_t *group_free, uint64_t groups)
{
    uint64_t total = 0;
    for (uint64_t g = 0; g < groups; g++)
        total += group_free[g];
    return total;
}

/* Publishes free_blocks for fs_free_bytes, which reads it without the
 * journal lock; called after every change of free_blocks. */
static void free_published(struct fs *fs)
{
    __atomic_store_n(&fs->free_blocks_seen, fs->free_blocks, __ATOMIC_RELAXED);
}

/* free_blocks counted again from the groups' counts, and published. */
static void free_recount(struct fs *fs)
{
    fs->free_blocks = groups_total(fs->group_free, fs->groups);
    free_published(fs);
}

uint64_t fs_free_bytes(struct fs *fs)
{
    return __atomic_load_n(&fs->free_blocks_seen, __ATOMIC_RELAXED) * MMAPFS_BLOCK_SIZE;
}

void fs_alloc_undo_block(struct fs *fs, uint64_t blk, const void *before, const void *after)
{
    const uint64_t *was = before, *now = after;
    if (blk >= fs->inode_bitmap_start && blk - fs->inode_bitmap_start < fs->igroups) {
        struct bmap m = inode_map(fs);
        uint64_t g = blk - m.start;
        m.group_free[g] = group_count(&m, g, now);
        fs->free_inodes = groups_total(fs->igroup_free, fs->igroups);
        return;
    }
    if (blk < fs->block_bitmap_start || blk - fs->block_bitmap_start >= fs->groups)
        return;
    struct bmap m = block_map(fs);
    uint64_t g = blk - m.start, base0 = g * BITS_PER_BMAP;
    m.group_free[g] = group_count(&m, g, now);
    free_recount(fs);
    /* Blocks the failed operation allocated are free again: images of
     * them logged as new data must not be replayed over what they hold
     * next, and what was verified in them is stale. */
    for (uint64_t i = 0; i < BITS_PER_BMAP / 64; i++) {
        uint64_t gone = was[i] & ~now[i] & word_mask(base0 + i * 64, m.lo, m.hi);
        while (gone) {
            uint64_t b = base0 + i * 64 + (uint64_t)__builtin_ctzll(gone);
            jnl_forget_data(fs->jnl, b, 1);
            fs_verified_clear(fs, b, 1);
            gone &= gone - 1;
        }
    }
}

/* ==== pending list ========================================================== */

/* Index of the first run whose end is > blk (count if none). */
static size_t pending_first_after(const struct fs_pending *p, uint64_t blk)
{
    size_t lo = 0, hi = p->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->runs[mid].end > blk)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static int run_cmp(const void *a, const void *b)
{
    const struct pending_run *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* r grows to cover o as well (they touch or overlap); the later seq wins. */
static void run_absorb(struct pending_run *r, const struct pending_run *o)
{
    r->start = min_u64(r->start, o->start);
    r->end = o->end > r->end ? o->end : r->end;
    r->seq = o->seq > r->seq ? o->seq : r->seq;
}

/* Puts the one run added since the last pending_sort into the sorted
 * runs, merged with those it touches or (after a double free) overlaps:
 * they are next to where it goes, so only they are looked at, and the
 * tail moves once. */
static void pending_insert_one(struct fs_pending *p)
{
    struct pending_run r = p->runs[p->count];
    uint64_t merged = 0;                /* blocks of the runs r absorbs */
    size_t i = pending_first_after(p, r.start), j = i;
    for (; j < p->count && p->runs[j].start <= r.end; j++) {
        merged += p->runs[j].end - p->runs[j].start;
        run_absorb(&r, &p->runs[j]);
    }
    if (i > 0 && p->runs[i - 1].end == r.start) {   /* touches the run before */
        i--;
        merged += p->runs[i].end - p->runs[i].start;
        run_absorb(&r, &p->runs[i]);
    }
    /* pending_add counted the run as added; count the union instead */
    p->blocks = p->blocks - (p->runs[p->count].end - p->runs[p->count].start) - merged +
                (r.end - r.start);
    memmove(&p->runs[i + 1], &p->runs[j], (p->count - j) * sizeof(*p->runs));
    p->runs[i] = r;
    p->count = p->count - (j - i) + 1;
    p->added = 0;
}

/* Sorts the runs added since the last call in, merging touching (and,
 * after a double free, overlapping) runs. One run is inserted in place;
 * more are sorted with the rest: O(n log n) once, not O(n) each. */
static void pending_sort(struct fs_pending *p)
{
    if (p->added == 0)
        return;
    if (p->added == 1) {
        pending_insert_one(p);
        return;
    }
    size_t n = p->count + p->added;
    qsort(p->runs, n, sizeof(*p->runs), run_cmp);
    size_t out = 0;
    uint64_t blocks = 0;
    for (size_t i = 0; i < n; i++) {
        const struct pending_run r = p->runs[i];
        struct pending_run *o = out ? &p->runs[out - 1] : NULL;
        if (o && r.start <= o->end) {
            blocks -= o->end - o->start;
            run_absorb(o, &r);
            blocks += o->end - o->start;
            continue;
        }
        p->runs[out++] = r;
        blocks += r.end - r.start;
    }
    p->count = out;
    p->added = 0;
    p->blocks = blocks;
}

/* Makes room for one more run (and, with op_gen, one more record of the
 * operation's runs), so that the pending_add that follows cannot fail.
 * 0 or -ENOMEM. */
static int pending_reserve(struct fs_pending *p, uint64_t op_gen)
{
    if (p->op_gen != op_gen) {          /* a new operation */
        p->op_gen = op_gen;
        p->op_count = 0;
    }
    if (op_gen && p->op_count == p->op_cap) {
        size_t cap = p->op_cap ? p->op_cap * 2 : 16;
        uint64_t (*op_runs)[2] = realloc(p->op_runs, cap * sizeof(*op_runs));
        if (!op_runs)
            return -ENOMEM;
        p->op_runs = op_runs;
        p->op_cap = cap;
    }
    if (p->count + p->added < p->cap)
        return 0;
    size_t cap = p->cap ? p->cap * 2 : 64;
    struct pending_run *runs = realloc(p->runs, cap * sizeof(*runs));
    if (!runs)
        return -ENOMEM;
    p->runs = runs;
    p->cap = cap;
    return 0;
}

/* Takes blocks [start, end) out of the list (they were added by the
 * operation being undone: no other run covers them). A run cut in two
 * needs a slot; without memory the rest stays listed, which only delays
 * its reuse to the next commit. */
static void pending_remove(struct fs_pending *p, uint64_t start, uint64_t end)
{
    pending_sort(p);
    size_t i = pending_first_after(p, start);
    while (i < p->count && p->runs[i].start < end) {
        struct pending_run *r = &p->runs[i];
        uint64_t s = r->start > start ? r->start : start, e = r->end < end ? r->end : end;
        if (s > r->start && e < r->end) {           /* cut in two */
            if (pending_reserve(p, p->op_gen))
                return;
            r = &p->runs[i];
            memmove(&p->runs[i + 1], &p->runs[i], (p->count - i) * sizeof(*p->runs));
            p->count++;
            p->runs[i + 1].start = e;
            r->end = s;
            p->blocks -= e - s;
            return;
        }
        p->blocks -= e - s;
        if (s == r->start && e == r->end) {
            memmove(&p->runs[i], &p->runs[i + 1], (p->count - i - 1) * sizeof(*p->runs));
            p->count--;
            continue;
        }
        if (s == r->start)
            r->start = e;
        else
            r->end = s;
        i++;
    }
}

void fs_alloc_undo_pending(struct fs *fs)
{
    struct fs_pending *p = fs->pending;
    if (!p || p->op_gen != jnl_op_gen(fs->jnl))
        return;
    for (size_t i = p->op_count; i-- > 0;)
        pending_remove(p, p->op_runs[i][0], p->op_runs[i][1]);
    p->op_count = 0;
}

/* Adds [start, end) freed in seq to the unsorted runs (pending_sort
 * merges them); room was made by pending_reserve. */
static void pending_add(struct fs_pending *p, uint64_t start, uint64_t end, uint64_t seq)
{
    p->runs[p->count + p->added++] = (struct pending_run){ start, end, seq };
    p->blocks += end - start;
}

/* pending_add after pending_reserve (cannot fail), and the record of the
 * operation's run. */
static void pending_note(struct fs_pending *p, uint64_t op_gen, uint64_t start, uint64_t end,
                         uint64_t seq)
{
    pending_add(p, start, end, seq);
    if (op_gen) {
        p->op_runs[p->op_count][0] = start;
        p->op_runs[p->op_count][1] = end;
        p->op_count++;
    }
}

void fs_alloc_durable(void *ctx, uint64_t seq)
{
    fs_pins_durable(ctx, seq);
}

void fs_alloc_release(struct fs *fs, uint64_t seq)
{
    struct fs_pending *p = fs->pending;
    if (!p)
        return;
    pending_sort(p);
    size_t out = 0;
    for (size_t i = 0; i < p->count; i++) {
        if (p->runs[i].seq <= seq) {
            p->blocks -= p->runs[i].end - p->runs[i].start;
            if (fs->discard)
                fs_discard_released(fs, p->runs[i].start, p->runs[i].end);
        } else
            p->runs[out++] = p->runs[i];
    }
    p->count = out;
}

uint64_t fs_alloc_pending_blocks(struct fs *fs)
{
    return fs->pending ? fs->pending->blocks : 0;
}

int fs_alloc_wait_pending(struct fs *fs)
{
    jnl_lock(fs->jnl);
    if (fs->pending)
        pending_sort(fs->pending);
    uint64_t pending = fs_alloc_pending_blocks(fs), seq = 0;
    for (size_t i = 0; fs->pending && i < fs->pending->count; i++)
        if (fs->pending->runs[i].seq > seq)
            seq = fs->pending->runs[i].seq;
    jnl_unlock(fs->jnl);
    if (!pending)
        return 0;
    FS_COUNT(fs, enospc_retries, 1);
    int err = jnl_commit_wait(fs->jnl, seq);
    if (!err)
        err = fs_pins_wait(fs, seq);     /* zero-copy replies still in flight */
    if (err == -EBUSY)
        return 0;
    return err ? err : 1;
}

/* See fs_i.h. */
int fs_alloc_retry(struct fs *fs, int err, int *tries)
{
    return err == -ENOSPC && (*tries)++ < FS_ENOSPC_RETRIES && fs_alloc_wait_pending(fs) == 1;
}

/* ==== set-up ================================================================ */

int fs_alloc_init(struct fs *fs)
{
    fs->groups = (fs->block_count + BITS_PER_BMAP - 1) / BITS_PER_BMAP;
    fs->igroups = (fs->inode_count + BITS_PER_BMAP - 1) / BITS_PER_BMAP;
    fs->group_free = calloc(fs->groups, sizeof(*fs->group_free));
    fs->igroup_free = calloc(fs->igroups, sizeof(*fs->igroup_free));
    fs->pending = calloc(1, sizeof(*fs->pending));
    if (!fs->group_free || !fs->igroup_free || !fs->pending)
        return -ENOMEM;
    struct bmap bm = block_map(fs), im = inode_map(fs);
    int err = bmap_count(fs, &bm, fs->groups, &fs->free_blocks);
    free_published(fs);
    if (!err)
        err = bmap_count(fs, &im, fs->igroups, &fs->free_inodes);
    if (err)
        return err;
    fs->block_goal = fs->data_start;
    fs->meta_goal = fs->data_start;
    fs->inode_goal = 1;
    return 0;
}

/* The first clear bit of the block bitmap in [start, start+len), or
 * start+len, whatever the free counts say (they cover the data area only).
 * 0 or -EIO. */
static int first_clear(struct fs *fs, uint64_t start, uint64_t len, uint64_t *out)
{
    const struct bmap all = { fs->block_bitmap_start, 0, fs->block_count, NULL };
    return bmap_find(fs, &all, start, start + len, 0, out);
}

/* Range i of the data-area blocks a grown inode table keeps (FORMAT.md
 * §4b): its extents, then the inode bitmap's room when it has one. 0 past
 * the last. The superblock was validated at mount: count is in range. */
static int itab_range(struct fs *fs, uint32_t i, uint64_t *start, uint64_t *len)
{
    if (i < fs->itab.count) {
        *start = fs->itab.ext[i].start;
        *len = fs->itab.ext[i].blocks;
        return 1;
    }
    if (i == fs->itab.count && fs->itab.inode_bitmap_room) {
        *start = fs->inode_bitmap_start;
        *len = fs->itab.inode_bitmap_room;
        return 1;
    }
    return 0;
}

int fs_alloc_check_reserved(struct fs *fs, uint64_t *blk)
{
    /* The metadata region: the allocator never hands it out, but a bitmap
     * with its bits clear was damaged as a whole (a zeroed block), and its
     * data-area bits cannot be trusted either. */
    int err = first_clear(fs, 0, fs->data_start, blk);
    if (err || *blk < fs->data_start)
        return err;
    /* A grown inode table's extents and the inode bitmap's room lie in the
     * data area (FORMAT.md §4b): only their bits keep the allocator from
     * writing file data over inodes. */
    uint64_t s, l;
    for (uint32_t i = 0; itab_range(fs, i, &s, &l); i++) {
        err = first_clear(fs, s, l, blk);
        if (err || *blk < s + l)
            return err;
    }
    *blk = fs->block_count;
    return 0;
}

int fs_blocks_reserved(struct fs *fs, uint64_t start, uint64_t len)
{
    uint64_t s, l;
    for (uint32_t i = 0; itab_range(fs, i, &s, &l); i++)
        if (start < s + l && s < start + len)
            return 1;
    return 0;
}

void fs_alloc_fini(struct fs *fs)
{
    if (fs->pending) {
        free(fs->pending->runs);
        free(fs->pending->op_runs);
    }
    free(fs->pending);
    free(fs->group_free);
    free(fs->igroup_free);
    fs->pending = NULL;
    fs->group_free = fs->igroup_free = NULL;
}

/* ==== blocks ================================================================ */

/* The first free, non-pending run starting in [pos, hi), at most max long.
 * *len = 0 when there is none. */
static int next_run(struct fs *fs, const struct bmap *m, uint64_t pos, uint64_t hi,
                    uint64_t max, uint64_t *start, uint64_t *len)
{
    const struct fs_pending *p = fs->pending;
    *len = 0;
    while (pos < hi) {
        uint64_t s, e;
        int err = bmap_find(fs, m, pos, hi, 0, &s);
        if (err)
            return err;
        if (s >= hi)
            return 0;
        uint64_t limit = min_u64(hi, s + max);
        size_t i = pending_first_after(p, s);
        if (i < p->count) {
            if (p->runs[i].start <= s) {
                pos = p->runs[i].end;
                continue;
            }
            limit = min_u64(limit, p->runs[i].start);
        }
        err = bmap_find(fs, m, s + 1, limit, 1, &e);
        if (err)
            return err;
        *start = s;
        *len = e - s;
        return 0;
    }
    return 0;
}

/* A sparse image on a full host (hostspace.c): the first free run of at
 * most max blocks that the host already holds, reserved; -ENOSPC if there
 * is none. Blocks freed in the image keep their host blocks (no hole
 * punching), so after an rm a write can go on while the host stays full;
 * choosing by the bitmap alone found a hole and failed until space was
 * freed outside the mount. Walks the free runs, skipping to the host's
 * next data (SEEK_DATA) past each: one or two lseek per free run that
 * holds host data, on the ENOSPC path only. */
static int host_held_run(struct fs *fs, const struct bmap *m, uint64_t max,
                         uint64_t *start, uint64_t *len)
{
    const uint64_t bs = MMAPFS_BLOCK_SIZE;
    uint64_t pos = m->lo;
    while (pos < m->hi) {
        uint64_t s, n;
        int err = next_run(fs, m, pos, m->hi, m->hi, &s, &n);
        if (err)
            return err;
        if (n == 0)
            break;
        off_t d = lseek(fs->lock_fd, (off_t)(s * bs), SEEK_DATA);
        if (d < 0)
            break;     /* ENXIO: no host data past s (or no SEEK_DATA) */
        uint64_t ds = ((uint64_t)d + bs - 1) / bs;
        if (ds >= s + n) {
            pos = ds;  /* none in this run: on to the free blocks at d */
            continue;
        }
        off_t h = lseek(fs->lock_fd, d, SEEK_HOLE);
        if (h < 0)
            break;
        uint64_t e = min_u64(s + n, (uint64_t)h / bs);
        if (ds < e) {
            *start = ds;
            *len = min_u64(e - ds, max);
            /* allocated already: takes no space, and tells a host that
             * reports no holes (all data) from one that has them */
            return fs_host_reserve_blocks(fs, *start, *len);
        }
        pos = ((uint64_t)h + bs - 1) / bs;   /* > s: h > d >= s * bs */
    }
    return -ENOSPC;
}

int fs_alloc_blocks(struct fs *fs, uint64_t goal, uint64_t want, uint64_t *start, uint64_t *got)
{
    struct bmap m = block_map(fs);
    if (want == 0)
        return -EINVAL;
    if (want > ALLOC_MAX_WANT)
        want = ALLOC_MAX_WANT;
    if (goal < m.lo || goal >= m.hi)
        goal = fs->block_goal;
    if (goal < m.lo || goal >= m.hi)
        goal = m.lo;
    pending_sort(fs->pending);             /* next_run searches the runs */
    if (fs->free_blocks <= fs_alloc_pending_blocks(fs))
        return -ENOSPC;

    uint64_t pref = want < ALLOC_LONG_RUN ? want : ALLOC_LONG_RUN;
    uint64_t best_s = 0, best_len = 0, scanned = 0, runs = 0;
    for (int pass = 0; pass < 2; pass++) {
        uint64_t pos = pass ? m.lo : goal, end = pass ? goal : m.hi;
        while (pos < end) {
            uint64_t s, len;
            int err = next_run(fs, &m, pos, end, want, &s, &len);
            if (err)
                return err;
            if (len == 0)
                break;
            if (len >= pref || s == goal) {
                best_s = s;
                best_len = len;
                goto found;
            }
            if (best_len) {
                scanned += s + len - pos;
                runs++;
            }
            if (len > best_len) {
                best_s = s;
                best_len = len;
            }
            /* good enough: stop looking */
            if (scanned > ALLOC_SCAN_LIMIT || runs >= ALLOC_SCAN_RUNS)
                goto found;
            pos = s + len;
        }
    }
    if (best_len == 0)
        return -ENOSPC;
found:;
    /* a sparse image: the host must have the space before anything
     * points at these blocks (hostspace.c) */
    int err = fs_host_reserve_blocks(fs, best_s, best_len);
    if (err == -ENOSPC)
        err = host_held_run(fs, &m, want, &best_s, &best_len);
    if (err)
        return err;
    uint64_t changed;
    err = bmap_change(fs, &m, best_s, best_len, 1, &changed);
    if (err) {
        /* a partial change: the operation's undo takes it back */
        free_recount(fs);
        return err;
    }
    if (changed != best_len)   /* cannot happen: the bits were read clear */
        return fs_corrupt(fs, "block bitmap changed under the allocator at %llu",
                          (unsigned long long)best_s);
    fs->free_blocks -= best_len;
    free_published(fs);
    fs->block_goal = best_s + best_len;
    FS_COUNT(fs, blocks_allocated, best_len);
    *start = best_s;
    *got = best_len;
    return 0;
}

/* Checks that [start, start+len) is a legal run of data-area blocks. */
static int run_ok(struct fs *fs, uint64_t start, uint64_t len)
{
    return len > 0 && start >= fs->data_start && start < fs->block_count &&
           len <= fs->block_count - start;
}

/* Gives back a run allocated in this operation that was never used: it can
 * be reused at once (nothing durable points at it). */
static void unalloc_blocks(struct fs *fs, uint64_t start, uint64_t len)
{
    struct bmap m = block_map(fs);
    uint64_t changed;
    int err = bmap_change(fs, &m, start, len, 0, &changed);
    free_recount(fs);
    if (err)
        jnl_op_failed(fs->jnl, err);
}

/* free_blocks without the failure record. */
static int free_run(struct fs *fs, uint64_t start, uint64_t len)
{
    if (!run_ok(fs, start, len))
        return fs_corrupt(fs, "freeing blocks %llu+%llu outside the data area",
                          (unsigned long long)start, (unsigned long long)len);
    /* The pending record first: a freed block without one could be
     * handed out again before the freeing transaction is durable. */
    uint64_t op_gen = jnl_op_gen(fs->jnl);
    int err = pending_reserve(fs->pending, op_gen);
    if (err)
        return err;
    struct bmap m = block_map(fs);
    uint64_t changed;
    err = bmap_change(fs, &m, start, len, 0, &changed);
    if (err) {
        /* a partial change stays in the running transaction until the
         * operation's undo: keep the count right until then */
        free_recount(fs);
        pending_note(fs->pending, op_gen, start, start + len, jnl_running_seq(fs->jnl));
        return err;
    }
    fs->free_blocks += changed;
    free_published(fs);
    FS_COUNT(fs, blocks_freed, changed);
    fs_verified_clear(fs, start, len);
    jnl_forget_data(fs->jnl, start, len);
    pending_note(fs->pending, op_gen, start, start + len, jnl_running_seq(fs->jnl));
    if (changed != len)
        return fs_corrupt(fs, "blocks %llu+%llu freed twice (%llu were free)",
                          (unsigned long long)start, (unsigned long long)len,
                          (unsigned long long)(len - changed));
    return 0;
}

int fs_free_blocks(struct fs *fs, uint64_t start, uint64_t len)
{
    int err = free_run(fs, start, len);
    if (err)
        jnl_op_failed(fs->jnl, err);   /* for callers that cannot return it */
    return err;
}

int fs_alloc_meta(struct fs *fs, uint64_t goal, uint64_t *blk, void **ptr)
{
    uint64_t start, got;
    int err = fs_alloc_blocks(fs, goal ? goal : fs->meta_goal, 1, &start, &got);
    if (err)
        return err;
    void *p = jnl_write_new(fs->jnl, start);
    if (!p) {
        int saved = errno;
        unalloc_blocks(fs, start, 1);
        return fs_write_error(fs, saved);
    }
    if (!goal)
        fs->meta_goal = start + 1;
    *blk = start;
    *ptr = p;
    return 0;
}

void fs_free_meta(struct fs *fs, uint64_t blk)
{
    if (!run_ok(fs, blk, 1)) {
        jnl_op_failed(fs->jnl, fs_corrupt(fs, "freeing metadata block %llu outside the data area",
                                          (unsigned long long)blk));
        return;
    }
    jnl_forget(fs->jnl, blk);
    fs_free_blocks(fs, blk, 1);
}

/* ==== inodes ================================================================ */

/* A sparse image on a full host: a free inode whose table block the host
 * already holds (m: the inode map), as host_held_run for blocks. The
 * table is reserved a block at a time (hostspace.c) and the goal moves on
 * past freed inodes, so on a full host every create failed once the goal
 * reached a hole, however many files were removed. Walks the host's data
 * (SEEK_DATA, SEEK_HOLE) in each extent of the table. */
static int host_held_inode(struct fs *fs, const struct bmap *m, uint64_t *bit)
{
    const uint64_t bs = MMAPFS_BLOCK_SIZE;
    const struct mmapfs_disk_itab *t = &fs->itab;
    uint64_t idx = 0;   /* table index of the extent's first block */
    for (uint32_t i = 0; i <= t->count && i <= MMAPFS_ITAB_EXTENTS_MAX; i++) {
        uint64_t start = i ? t->ext[i - 1].start : fs->inode_table_start;
        uint64_t blocks = i ? t->ext[i - 1].blocks : fs->inode_table_blocks;
        uint64_t pos = start, end = start + blocks;
        while (pos < end) {
            off_t d = lseek(fs->lock_fd, (off_t)(pos * bs), SEEK_DATA);
            if (d < 0)
                break;
            uint64_t ds = ((uint64_t)d + bs - 1) / bs;
            if (ds >= end)
                break;
            off_t h = lseek(fs->lock_fd, d, SEEK_HOLE);
            if (h < 0)
                break;
            uint64_t he = min_u64(end, (uint64_t)h / bs);
            if (ds < he) {
                uint64_t lo = (idx + ds - start) * MMAPFS_INODES_PER_BLOCK;
                uint64_t hi = min_u64((idx + he - start) * MMAPFS_INODES_PER_BLOCK, m->hi);
                uint64_t b = hi;
                if (lo < hi) {
                    int err = bmap_find(fs, m, lo, hi, 0, &b);
                    if (err)
                        return err;
                }
                if (b < hi) {
                    *bit = b;
                    return 0;
                }
            }
            pos = ((uint64_t)h + bs - 1) / bs;   /* > pos: h > d >= pos * bs */
        }
        idx += blocks;
    }
    return -ENOSPC;
}

/* A sparse image: the host space of the table block of inode bit + 1,
 * before anything changes (a full host gives ENOSPC here, not a failed
 * checkpoint later); a block reserved during this mount stays so. On a
 * full host *bit may move to a free inode in a block the host holds. */
static int host_itab_reserve(struct fs *fs, struct bmap *m, uint64_t *bit)
{
    uint64_t tblk = mmapfs_inode_block(fs->inode_table_start, fs->inode_table_blocks,
                                       &fs->itab, *bit + 1);
    if (!fs->host_sparse || tblk == fs->host_itab_block)
        return 0;
    int err = fs_host_reserve_blocks(fs, tblk, 1);
    if (err == -ENOSPC && !(err = host_held_inode(fs, m, bit))) {
        tblk = mmapfs_inode_block(fs->inode_table_start, fs->inode_table_blocks,
                                  &fs->itab, *bit + 1);
        err = fs_host_reserve_blocks(fs, tblk, 1);   /* held: takes no space */
    }
    if (!err)
        fs->host_itab_block = tblk;
    return err;
}

/* The first clear bit of the inode bitmap from goal - 1 on, wrapping
 * around: 0 and *bit, or -ENOSPC, -errno. */
static int find_free_inode(struct fs *fs, struct bmap *m, uint64_t goal, uint64_t *bit)
{
    int err = bmap_find(fs, m, goal - 1, m->hi, 0, bit);
    if (err || *bit < m->hi)
        return err;
    err = bmap_find(fs, m, 0, goal - 1, 0, bit);     /* wrap around */
    return err ? err : *bit >= goal - 1 ? -ENOSPC : 0;
}

/* Marks inode bit in use. */
static int take_inode_bit(struct fs *fs, struct bmap *m, uint64_t bit)
{
    uint64_t changed;
    int err = bmap_change(fs, m, bit, 1, 1, &changed);
    if (!err)
        fs->free_inodes -= changed;
    return err;
}

int fs_alloc_inode(struct fs *fs, uint64_t goal, uint64_t *ino)
{
    struct bmap m = inode_map(fs);
    if (fs->free_inodes == 0)
        return -ENOSPC;
    if (goal < 1 || goal > fs->inode_count)
        goal = fs->inode_goal;
    if (goal < 1 || goal > fs->inode_count)
        goal = 1;
    uint64_t bit;
    int err;
    /* A clear bit whose record is live is a damaged bitmap (it carries no
     * checksum; a crash leaves the free counts mere hints): handing the
     * inode out would overwrite a file that entries still name. It is
     * reported and marked in use, as fsck -y does, so the next allocation
     * neither finds it again nor reports it again. The record is read once
     * its table block has host space: on a full tmpfs even a read of a
     * hole needs a page (SIGBUS, EIO). */
    for (uint64_t tries = 0;; tries++) {
        err = find_free_inode(fs, &m, goal, &bit);
        if (err)
            return err;
        err = host_itab_reserve(fs, &m, &bit);
        if (err)
            return err;
        int live = fs_inode_record_live(fs, bit + 1);
        if (live < 0)
            return live;
        if (!live)
            break;
        fs_corrupt(fs, "inode %llu is free in the inode bitmap but its record is live: the "
                   "bitmap is damaged, run fsck.mmapfs -y", (unsigned long long)(bit + 1));
        err = take_inode_bit(fs, &m, bit);
        if (err)
            return err;
        if (fs->free_inodes == 0 || tries >= fs->inode_count)
            return -ENOSPC;
        goal = bit + 2 <= fs->inode_count ? bit + 2 : 1;
    }
    err = take_inode_bit(fs, &m, bit);
    if (err)
        return err;
    fs->inode_goal = bit + 2 <= fs->inode_count ? bit + 2 : 1;
    FS_COUNT(fs, inodes_allocated, 1);
    *ino = bit + 1;
    return 0;
}

int fs_free_inode(struct fs *fs, uint64_t ino)
{
    if (ino < 1 || ino > fs->inode_count)
        return fs_corrupt(fs, "freeing inode %llu out of range", (unsigned long long)ino);
    struct bmap m = inode_map(fs);
    uint64_t changed;
    int err = bmap_change(fs, &m, ino - 1, 1, 0, &changed);
    if (err)
        return err;
    fs->free_inodes += changed;
    FS_COUNT(fs, inodes_freed, changed);
    if (!changed)
        return fs_corrupt(fs, "inode %llu freed twice", (unsigned long long)ino);
    return 0;
}

int fs_inode_in_use(struct fs *fs, uint64_t ino)
{
    if (ino < 1 || ino > fs->inode_count)
        return 0;
    uint64_t bit = ino - 1;
    const uint64_t *w = jnl_read(fs->jnl, fs->inode_bitmap_start + bit / BITS_PER_BMAP);
    if (!w)
        return jnl_read_error();
    return (w[(bit % BITS_PER_BMAP) / 64] >> (bit % 64)) & 1;
}
