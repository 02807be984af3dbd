/* mfs_hash64: four independent lanes over 8-byte words (so the multiplies
 * of one lane do not wait for another's), folded and mixed at the end. */
#include "util/hash64.h"

#include <endian.h>
#include <string.h>

#define K1 0x9E3779B97F4A7C15ull     /* odd constants with mixed bits */
#define K2 0xC2B2AE3D27D4EB4Full
#define K3 0x165667B19E3779F9ull

static uint64_t rotl(uint64_t x, unsigned r)
{
    return (x << r) | (x >> (64 - r));
}

static uint64_t word(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof(w));
    return le64toh(w);
}

/* One word into one lane: add, rotate, multiply (a bijection of the lane
 * for a fixed word, so a lane that differs stays different). */
static uint64_t lane_step(uint64_t lane, uint64_t w)
{
    return rotl(lane + w * K2, 31) * K1;
}

uint64_t mfs_hash64(uint64_t seed, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uint64_t l[4] = { seed + K1, seed ^ K2, seed - K3, rotl(seed, 17) + K3 };
    size_t i = 0;

    for (; i + 32 <= len; i += 32) {
        l[0] = lane_step(l[0], word(p + i));
        l[1] = lane_step(l[1], word(p + i + 8));
        l[2] = lane_step(l[2], word(p + i + 16));
        l[3] = lane_step(l[3], word(p + i + 24));
    }
    for (; i + 8 <= len; i += 8)
        l[0] = lane_step(l[0], word(p + i));
    for (; i < len; i++)
        l[1] = lane_step(l[1], p[i]);

    uint64_t h = rotl(l[0], 1) + rotl(l[1], 7) + rotl(l[2], 12) + rotl(l[3], 18);
    h ^= (uint64_t)len * K3;
    h ^= h >> 33;
    h *= K2;
    h ^= h >> 29;
    h *= K3;
    h ^= h >> 32;
    return h;
}
