/*
 * journal/format.h — the journal's on-disk records, format version 1:
 * header slots, descriptor blocks, commit blocks. Owned by the journal;
 * the filesystem's format (src/fs/format.h) includes it and places the
 * journal in the image (superblock fields journal_start, journal_blocks).
 * Normative description: docs/FORMAT.md; they change together.
 *
 * All multi-byte fields are little-endian; checksums are CRC-32C.
 */
#ifndef MMAPFS_JOURNAL_FORMAT_H
#define MMAPFS_JOURNAL_FORMAT_H

#include <stddef.h>
#include <stdint.h>

/* Every journal block (slot, descriptor, image, commit) is one block of
 * the image; src/fs/format.h asserts that its block size is this one. */
#define MMAPFS_JNL_BLOCK_SIZE    4096u

/*
 * journal_start + 0, + 1: header slots A and B. The valid slot (magic and
 * checksum) with the larger 'generation' is current. The log area is blocks
 * journal_start + 2 .. journal_start + journal_blocks - 1, addressed by a
 * log index 0..log_blocks-1.
 *
 * A transaction with sequence number S occupies a contiguous run of the log:
 * one or more groups of [descriptor block][its 'count' block images], then
 * one commit block. Replay starts at the header's (start, seq): a transaction
 * is applied only if every descriptor carries seq S and the commit block
 * carries seq S and a data_checksum equal to the CRC-32C over all its
 * descriptor and image blocks in log order (and, when it has the flag
 * MMAPFS_JNL_COMMIT_HASH, a data_hash equal to their mfs_hash64); then the
 * next transaction (seq S+1) is looked for right after the commit block, or
 * at log index 0 when it did not fit before the end of the log. Replay stops
 * at the first transaction that is not valid. Replay writes every image to
 * its home block, in log order (later transactions win).
 */
#define MMAPFS_JNL_HEADER_MAGIC  0x484a4d4du  /* "MMJH" */
#define MMAPFS_JNL_DESC_MAGIC    0x444a4d4du  /* "MMJD" */
#define MMAPFS_JNL_COMMIT_MAGIC  0x434a4d4du  /* "MMJC" */
#define MMAPFS_JNL_DESC_MAX      509u         /* home block numbers per descriptor */

struct mmapfs_disk_jnl_header {
    uint32_t magic;            /*  0 MMAPFS_JNL_HEADER_MAGIC */
    uint32_t reserved0;        /*  4 */
    uint64_t generation;       /*  8 incremented on every header write */
    uint64_t seq;              /* 16 sequence number of the first transaction to replay */
    uint64_t start;            /* 24 log index where that transaction starts */
    uint64_t log_blocks;       /* 32 size of the log area, blocks (= journal_blocks - 2) */
    uint8_t  reserved[4092 - 40];
    uint32_t checksum;         /* 4092 crc32c of bytes 0..4091 */
};
_Static_assert(sizeof(struct mmapfs_disk_jnl_header) == MMAPFS_JNL_BLOCK_SIZE, "jh");

struct mmapfs_disk_jnl_desc {
    uint32_t magic;            /*  0 MMAPFS_JNL_DESC_MAGIC */
    uint32_t count;            /*  4 number of images that follow, 1..509 */
    uint64_t seq;              /*  8 transaction sequence number */
    uint64_t reserved0;        /* 16 */
    uint64_t home[MMAPFS_JNL_DESC_MAX]; /* 24 home block of each following image */
};
_Static_assert(sizeof(struct mmapfs_disk_jnl_desc) == MMAPFS_JNL_BLOCK_SIZE, "jd");

struct mmapfs_disk_jnl_commit {
    uint32_t magic;            /*  0 MMAPFS_JNL_COMMIT_MAGIC */
    uint32_t data_checksum;    /*  4 crc32c over all descriptor + image blocks of the txn */
    uint64_t seq;              /*  8 */
    uint64_t nblocks;          /* 16 descriptor + image blocks of the txn (commit excluded) */
    uint64_t commit_sec;       /* 24 wall clock at commit */
    uint32_t commit_nsec;      /* 32 */
    uint32_t flags;            /* 36 MMAPFS_JNL_COMMIT_* (0 in commits of older writers) */
    uint64_t data_hash;        /* 40 with MMAPFS_JNL_COMMIT_HASH: mfs_hash64 chained from
                                *    0 over the blocks data_checksum covers, in log order */
    uint8_t  reserved[4092 - 48];
    uint32_t checksum;         /* 4092 crc32c of bytes 0..4091 */
};
_Static_assert(sizeof(struct mmapfs_disk_jnl_commit) == MMAPFS_JNL_BLOCK_SIZE, "jc");
_Static_assert(offsetof(struct mmapfs_disk_jnl_commit, data_hash) == 40, "jc hash");

/* data_hash is set and must match. CRC-32C alone cannot tell an image from
 * an older version of the same block left in the log by an earlier lap when
 * the two differ only in records that end in their own CRC-32C (inodes,
 * superblock): such a difference has a CRC-32C of zero, so a torn write
 * would replay the old image. Readers that predate the flag ignore it and
 * check data_checksum alone. Other bits: reserved, written 0, ignored. */
#define MMAPFS_JNL_COMMIT_HASH   0x1u

#endif
