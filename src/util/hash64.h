/* A 64-bit hash that is not linear over GF(2), for what CRC-32C cannot
 * tell apart (docs/FORMAT.md, "Commit block"). */
#ifndef MMAPFS_HASH64_H
#define MMAPFS_HASH64_H
#include <stddef.h>
#include <stdint.h>

/* Hash of buf[0..len) started from seed; chain blocks by passing the last
 * result as the next seed. Multiplications and additions mix the bits, so
 * unlike a CRC it has no blind differences: two blocks that differ only in
 * records ending in their own CRC-32C of what precedes them (inodes,
 * superblocks) have equal CRC-32Cs, but not equal hashes except by chance
 * (about 2^-64). Words are read little-endian: the value is the same on
 * every host. Not a cryptographic hash. */
uint64_t mfs_hash64(uint64_t seed, const void *buf, size_t len);

#endif
