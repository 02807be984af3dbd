/*
 * fsck/sparse.c — the checker's per-block bits and per-inode records,
 * allocated in pages on first write, so that memory and time follow what
 * the image uses rather than its size (docs/FSCK.md, "Memory and time").
 * An absent page reads as zeros. A failed page allocation drops the write
 * and sets c->nomem; the passes then stop with "out of memory".
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "fsck/fsck_i.h"
#include "journal/journal.h"

#define BITS_PAGE_BITS   (1ull << CHECK_BITS_PAGE_SHIFT)
#define BITS_PAGE_BYTES  (BITS_PAGE_BITS / 8)
#define INO_PAGE_RECS    (1ull << CHECK_INO_PAGE_SHIFT)

/* ---- bits ---------------------------------------------------------------------- */

int fsck_bits_init(struct check_bits *m, uint64_t nbits)
{
    m->npages = (nbits + BITS_PAGE_BITS - 1) / BITS_PAGE_BITS;
    m->pages = calloc(m->npages ? m->npages : 1, sizeof(*m->pages));
    m->nomem = 0;
    return m->pages ? 0 : -ENOMEM;
}

void fsck_bits_reset(struct check_bits *m)
{
    for (uint64_t i = 0; m->pages && i < m->npages; i++) {
        free(m->pages[i]);
        m->pages[i] = NULL;
    }
    m->nomem = 0;
}

void fsck_bits_free(struct check_bits *m)
{
    fsck_bits_reset(m);
    free(m->pages);
    m->pages = NULL;
}

void fsck_bits_set(struct check_bits *m, uint64_t i)
{
    uint8_t **p = &m->pages[i >> CHECK_BITS_PAGE_SHIFT];
    if (!*p && !(*p = calloc(1, BITS_PAGE_BYTES))) {
        m->nomem = 1;
        return;
    }
    check_set_bit(*p, i & (BITS_PAGE_BITS - 1));
}

void fsck_bits_clear(struct check_bits *m, uint64_t i)
{
    uint8_t *p = m->pages[i >> CHECK_BITS_PAGE_SHIFT];
    if (p)
        check_clear_bit(p, i & (BITS_PAGE_BITS - 1));
}

uint64_t fsck_bits_word(const struct check_bits *m, uint64_t i)
{
    const uint8_t *p = m->pages[i >> CHECK_BITS_PAGE_SHIFT];
    uint64_t w = 0;
    if (p)
        memcpy(&w, p + (i & (BITS_PAGE_BITS - 1)) / 8, 8);
    return w;
}

uint64_t fsck_bits_next(const struct check_bits *m, uint64_t from, uint64_t end)
{
    while (from < end) {
        const uint8_t *p = m->pages[from >> CHECK_BITS_PAGE_SHIFT];
        uint64_t page_end = (from | (BITS_PAGE_BITS - 1)) + 1;
        if (!p) {
            from = page_end;
            continue;
        }
        uint64_t w = fsck_bits_word(m, from & ~63ull) >> (from & 63);
        if (w) {
            from += (uint64_t)__builtin_ctzll(w);
            return from < end ? from : end;
        }
        from = (from | 63) + 1;
    }
    return end;
}

uint64_t fsck_bits_count(const struct check_bits *m, uint64_t from, uint64_t end)
{
    uint64_t n = 0;
    for (uint64_t b = fsck_bits_next(m, from, end); b < end; b = fsck_bits_next(m, b + 1, end))
        n++;
    return n;
}

/* ---- inode records ------------------------------------------------------------- */

int fsck_ci_init(struct check *c)
{
    c->ci_npages = (c->inode_count + 1 + INO_PAGE_RECS - 1) / INO_PAGE_RECS;
    c->ci_pages = calloc(c->ci_npages ? c->ci_npages : 1, sizeof(*c->ci_pages));
    return c->ci_pages ? 0 : -ENOMEM;
}

void fsck_ci_reset(struct check *c)
{
    for (uint64_t i = 0; c->ci_pages && i < c->ci_npages; i++) {
        free(c->ci_pages[i]);
        c->ci_pages[i] = NULL;
    }
}

void fsck_ci_free(struct check *c)
{
    fsck_ci_reset(c);
    free(c->ci_pages);
    c->ci_pages = NULL;
}

struct check_inode *fsck_ci(struct check *c, uint64_t ino)
{
    static __thread struct check_inode scratch;
    struct check_inode **p;

    if (ino > c->inode_count)
        goto sink;
    p = &c->ci_pages[ino >> CHECK_INO_PAGE_SHIFT];
    if (!*p && !(*p = calloc(INO_PAGE_RECS, sizeof(**p)))) {
        c->nomem = 1;
        goto sink;
    }
    return &(*p)[ino & (INO_PAGE_RECS - 1)];
sink:
    memset(&scratch, 0, sizeof(scratch));
    return &scratch;
}

const struct check_inode *fsck_ci_peek(const struct check *c, uint64_t ino)
{
    static const struct check_inode zero;
    const struct check_inode *p;

    if (ino > c->inode_count)
        return &zero;
    p = c->ci_pages[ino >> CHECK_INO_PAGE_SHIFT];
    return p ? &p[ino & (INO_PAGE_RECS - 1)] : &zero;
}

uint64_t fsck_ci_next(const struct check *c, uint64_t ino)
{
    while (ino <= c->inode_count && !c->ci_pages[ino >> CHECK_INO_PAGE_SHIFT])
        ino = ((ino >> CHECK_INO_PAGE_SHIFT) + 1) << CHECK_INO_PAGE_SHIFT;
    return ino;
}

/* ---- the on-disk inode bitmap ------------------------------------------------------ */

uint64_t fsck_next_inode_bit(struct check *c, uint64_t ino)
{
    const uint64_t per_block = MMAPFS_BLOCK_SIZE * 8ull;

    while (ino >= 1 && ino <= c->inode_count) {
        uint64_t bit = ino - 1;
        const uint8_t *p = fsck_block(c, c->sb.inode_bitmap_start + bit / per_block);
        if (!p) {
            ino = (bit / per_block + 1) * per_block + 1;    /* unreadable: none set */
            continue;
        }
        uint64_t in = bit % per_block, w;
        memcpy(&w, p + (in & ~63ull) / 8, 8);
        w >>= in & 63;
        if (w) {
            ino += (uint64_t)__builtin_ctzll(w);
            return ino <= c->inode_count ? ino : c->inode_count + 1;
        }
        ino += 64 - (in & 63);
    }
    return c->inode_count + 1;
}

/* See fsck_i.h. */
void fsck_holes_reset(struct check *c)
{
    c->hole_first = c->hole_end = c->data_first = c->data_end = 0;
}

/* See fsck_i.h. */
int fsck_block_hole(struct check *c, uint64_t blk)
{
    const uint64_t bs = MMAPFS_BLOCK_SIZE;
    if (c->replay && jnl_is_shadow(c->replay, blk))
        return 0;
    if (blk >= c->hole_first && blk < c->hole_end)
        return 1;
    if (blk >= c->data_first && blk < c->data_end)
        return 0;
    off_t d = lseek(c->fd, (off_t)(blk * bs), SEEK_DATA);
    if (d < 0 && errno == ENXIO) {          /* no data up to the end of the file */
        c->hole_first = blk;
        c->hole_end = UINT64_MAX;
        return 1;
    }
    if (d < 0)
        return 0;                           /* not supported: read everything */
    if ((uint64_t)d / bs > blk) {           /* whole blocks before the data */
        c->hole_first = blk;
        c->hole_end = (uint64_t)d / bs;
        return 1;
    }
    off_t h = lseek(c->fd, (off_t)(blk * bs), SEEK_HOLE);
    c->data_first = blk;
    c->data_end = h > 0 ? ((uint64_t)h + bs - 1) / bs : blk + 1;
    return 0;
}
