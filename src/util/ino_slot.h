/* The slot of an inode number in a table of per-inode slots. */
#ifndef MMAPFS_INO_SLOT_H
#define MMAPFS_INO_SLOT_H

#include <stddef.h>
#include <stdint.h>

/* Slot of ino in a table of nslots (a power of two): the top bits of a
 * multiplicative (Fibonacci) hash of the inode number. */
static inline size_t mfs_ino_slot(uint64_t ino, size_t nslots)
{
    return (size_t)((ino * 0x9e3779b97f4a7c15ull) >> (64 - __builtin_ctzll(nslots)));
}

#endif
