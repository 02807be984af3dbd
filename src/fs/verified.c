/*
 * verified.c — which metadata blocks have had their checksum verified.
 *
 * A B+tree node read from the mapping is checked before use: its CRC-32C
 * and its structure. The structure depends on where the node is reached
 * from (key bounds, level, owner) and is checked on every access; the
 * checksum depends only on the bytes, which cannot change under us while
 * mounted except through this process (a journal shadow written home by a
 * checkpoint). So each block's checksum is verified once per mount: the
 * first successful verification sets its bit here, and freeing the block
 * clears it (it may come back holding anything). Like ext4's
 * buffer_verified, a page the kernel drops and reads again from a disk that
 * changed underneath is not re-verified; docs/DESIGN.md says why that is
 * acceptable.
 *
 * One bit per block, in chunks of MMAPFS_BLOCK_SIZE bytes allocated on
 * first use: an image of 1 TiB costs 64 KiB of chunk pointers plus 4 KiB
 * per 32,768 blocks that hold verified nodes. Bits are set and cleared
 * atomically; a chunk that cannot be allocated just means the block is
 * verified again next time.
 */
#include <errno.h>
#include <stdlib.h>

#include "fs/fs_i.h"

#define VBITS_PER_CHUNK ((uint64_t)MMAPFS_BLOCK_SIZE * 8)

int fs_verified_init(struct fs *fs)
{
    fs->verified_chunks = (fs->block_count + VBITS_PER_CHUNK - 1) / VBITS_PER_CHUNK;
    fs->verified = calloc(fs->verified_chunks ? fs->verified_chunks : 1,
                          sizeof(*fs->verified));
    return fs->verified ? 0 : -ENOMEM;
}

void fs_verified_fini(struct fs *fs)
{
    for (uint64_t i = 0; fs->verified && i < fs->verified_chunks; i++)
        free(fs->verified[i]);
    free(fs->verified);
    fs->verified = NULL;
}

/* The chunk of blk, allocated if create; NULL if none. */
static uint64_t *chunk_of(struct fs *fs, uint64_t blk, int create)
{
    if (!fs->verified || blk >= fs->block_count)
        return NULL;
    uint64_t **slot = &fs->verified[blk / VBITS_PER_CHUNK];
    uint64_t *c = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (c || !create)
        return c;
    uint64_t *fresh = calloc(1, MMAPFS_BLOCK_SIZE);
    if (!fresh)
        return NULL;
    if (__atomic_compare_exchange_n(slot, &c, fresh, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return fresh;
    free(fresh);                       /* another thread installed one: c */
    return c;
}

int fs_verified_has(struct fs *fs, uint64_t blk)
{
    uint64_t *c = chunk_of(fs, blk, 0);
    uint64_t bit = blk % VBITS_PER_CHUNK;
    return c && (__atomic_load_n(&c[bit / 64], __ATOMIC_RELAXED) >> (bit % 64) & 1);
}

void fs_verified_set(struct fs *fs, uint64_t blk)
{
    uint64_t *c = chunk_of(fs, blk, 1);
    uint64_t bit = blk % VBITS_PER_CHUNK;
    if (c)
        __atomic_fetch_or(&c[bit / 64], 1ull << (bit % 64), __ATOMIC_RELAXED);
}

void fs_verified_clear(struct fs *fs, uint64_t start, uint64_t len)
{
    for (uint64_t blk = start; blk < start + len;) {
        uint64_t *c = chunk_of(fs, blk, 0);
        uint64_t chunk_end = (blk / VBITS_PER_CHUNK + 1) * VBITS_PER_CHUNK;
        uint64_t stop = start + len < chunk_end ? start + len : chunk_end;
        if (!c) {
            blk = stop;
            continue;
        }
        while (blk < stop) {                    /* a word at a time */
            uint64_t bit = blk % VBITS_PER_CHUNK, n = 64 - bit % 64;
            if (n > stop - blk)
                n = stop - blk;
            uint64_t mask = (n == 64 ? ~0ull : ((1ull << n) - 1)) << (bit % 64);
            if (__atomic_load_n(&c[bit / 64], __ATOMIC_RELAXED) & mask)
                __atomic_fetch_and(&c[bit / 64], ~mask, __ATOMIC_RELAXED);
            blk += n;
        }
    }
}
