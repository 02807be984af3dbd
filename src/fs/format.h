/*
 * mmapfs on-disk format, version 1. Normative description: docs/FORMAT.md;
 * this header and that document change together.
 *
 * All multi-byte fields are little-endian. The block size is 4096 bytes.
 * Block numbers are 64-bit, counted from the start of the image.
 * Checksums are CRC-32C (src/util/crc32c.h).
 *
 *  block 0                superblock
 *  journal_start ..       journal: 2 header slots, then the log area
 *  block_bitmap_start ..  1 bit per block of the image, 1 = in use
 *  inode_bitmap_start ..  1 bit per inode (bit i-1 = inode i), 1 = in use
 *  inode_table_start ..   inode_count records of 256 bytes, 16 per block
 *  data_start ..          data blocks and metadata blocks (B+tree nodes,
 *                         xattr blocks), allocated through the block bitmap;
 *                         with ITAB also more inode table extents and
 *                         maybe the inode bitmap (struct mmapfs_disk_itab)
 */
#ifndef MMAPFS_FORMAT_H
#define MMAPFS_FORMAT_H

#include <endian.h>
#include <stddef.h>
#include <stdint.h>

#include "journal/format.h"

/* Structures are used in place on little-endian hosts; a big-endian port
 * would convert each field with le*toh/htole*. */
_Static_assert(__BYTE_ORDER == __LITTLE_ENDIAN, "mmapfs assumes a little-endian host");

#define MMAPFS_BLOCK_SIZE      4096u
#define MMAPFS_BLOCK_SHIFT     12
#define MMAPFS_FORMAT_VERSION  1u
#define MMAPFS_NAME_MAX        255u
#define MMAPFS_SYMLINK_MAX     4095u      /* target length, bytes, no NUL */
#define MMAPFS_ROOT_INO        1u         /* FUSE_ROOT_ID; inode 0 does not exist */
#define MMAPFS_MAX_FILE_SIZE   (1ull << 46)  /* 64 TiB: EFBIG beyond */

/* ---- superblock (block 0, first 4096 bytes) ------------------------------ */

#define MMAPFS_MAGIC "MMAPFS\x1a\x0a"   /* 8 bytes at offset 0 */

enum mmapfs_state {
    MMAPFS_STATE_CLEAN   = 1,  /* unmounted cleanly: journal empty, counts exact */
    MMAPFS_STATE_MOUNTED = 2,  /* mounted (or crashed while mounted) */
    MMAPFS_STATE_ERROR   = 4,  /* corruption seen: fsck needed (or-ed in) */
};

/*
 * Grown inode table (superblock bytes 2048..3071; docs/FORMAT.md §4b).
 * Only with MMAPFS_FEATURE_INCOMPAT_ITAB, else all zero. mmapfs-resize
 * adds inodes in extra table extents taken from the data area: the table
 * is inode_table_start + inode_table_blocks, then ext[0], ext[1], ... in
 * order, 16 records per block, and inode_count = 16 x (inode_table_blocks
 * + the extents' blocks). The inode bitmap may then lie in the data area
 * too (inode_bitmap_start >= data_start), with inode_bitmap_room blocks
 * reserved for it there (>= inode_bitmap_blocks). Every extent and the
 * room lie inside [data_start, block_count), overlap nothing and are set
 * in the block bitmap.
 */
#define MMAPFS_ITAB_EXTENTS_MAX 62u

/* feature_incompat bit: sb.itab lists extra inode table extents, the inode
 * bitmap may lie in the data area (set by mmapfs-resize when it adds
 * inodes; images never grown stay without it). */
#define MMAPFS_FEATURE_INCOMPAT_ITAB 0x10u

struct mmapfs_disk_itab_extent {
    uint64_t start;            /* first block */
    uint64_t blocks;           /* >= 1 */
};

struct mmapfs_disk_itab {
    uint32_t count;            /*    0 extents in use, 1..MMAPFS_ITAB_EXTENTS_MAX */
    uint32_t reserved0;        /*    4 zero */
    uint64_t inode_bitmap_room; /*   8 inode bitmap in the data area: blocks reserved, else 0 */
    struct mmapfs_disk_itab_extent ext[MMAPFS_ITAB_EXTENTS_MAX]; /* 16; unused: zero */
    uint8_t  reserved[16];     /* 1008 zero */
};
_Static_assert(sizeof(struct mmapfs_disk_itab) == 1024, "itab");

struct mmapfs_disk_superblock {
    uint8_t  magic[8];             /*   0 MMAPFS_MAGIC */
    uint32_t format_version;       /*   8 MMAPFS_FORMAT_VERSION */
    uint32_t block_size;           /*  12 4096 */
    uint64_t block_count;          /*  16 blocks in the filesystem */
    uint64_t inode_count;          /*  24 inodes 1..inode_count (<= 2^32-1) */
    uint64_t journal_start;        /*  32 first journal block (header slot A) */
    uint64_t journal_blocks;       /*  40 journal length incl. the 2 header slots */
    uint64_t block_bitmap_start;   /*  48 */
    uint64_t block_bitmap_blocks;  /*  56 ceil(block_count / 32768) */
    uint64_t inode_bitmap_start;   /*  64 */
    uint64_t inode_bitmap_blocks;  /*  72 ceil(inode_count / 32768) */
    uint64_t inode_table_start;    /*  80 */
    uint64_t inode_table_blocks;   /*  88 ceil(inode_count / 16) */
    uint64_t data_start;           /*  96 first block after the inode table */
    uint64_t root_ino;             /* 104 MMAPFS_ROOT_INO */
    uint64_t orphan_head;          /* 112 first inode of the orphan list, 0 = empty */
    uint64_t next_generation;      /* 120 next inode generation number */
    uint64_t free_blocks;          /* 128 exact when state is CLEAN, else a hint */
    uint64_t free_inodes;          /* 136 exact when state is CLEAN, else a hint */
    uint32_t feature_compat;       /* 144 unknown bits: ignore */
    uint32_t feature_ro_compat;    /* 148 unknown bits: mount read-only */
    uint32_t feature_incompat;     /* 152 unknown bits: refuse to mount (MMAPFS_FEATURE_INCOMPAT_*) */
    uint32_t state;                /* 156 enum mmapfs_state bits */
    uint8_t  uuid[16];             /* 160 random at mkfs */
    char     label[64];            /* 176 NUL-padded */
    uint64_t mkfs_time;            /* 240 seconds since the epoch */
    uint64_t mount_time;           /* 248 */
    uint64_t write_time;           /* 256 */
    uint32_t mount_count;          /* 264 */
    uint32_t reserved0;            /* 268 */
    uint8_t  reserved[1024 - 272]; /* 272 zero */
    uint64_t mmp_block;            /* 1024 MMP block (MMAPFS_FEATURE_INCOMPAT_MMP), else 0 */
    uint32_t mmp_interval;         /* 1032 heartbeat interval, seconds (MMP), else 0 */
    uint32_t mmp_reserved;         /* 1036 0 */
    uint64_t backup_block;         /* 1040 backup superblock (MMAPFS_FEATURE_COMPAT_BACKUP_SB), else 0 */
    uint8_t  reserved2[2048 - 1048]; /* 1048 zero */
    struct mmapfs_disk_itab itab;  /* 2048 grown inode table (MMAPFS_FEATURE_INCOMPAT_ITAB) */
    uint8_t  reserved3[4092 - 3072]; /* 3072 zero */
    uint32_t checksum;             /* 4092 crc32c of bytes 0..4091 */
};
_Static_assert(sizeof(struct mmapfs_disk_superblock) == MMAPFS_BLOCK_SIZE, "sb");
_Static_assert(offsetof(struct mmapfs_disk_superblock, mmp_block) == 1024, "sb mmp");
_Static_assert(offsetof(struct mmapfs_disk_superblock, backup_block) == 1040, "sb backup");
_Static_assert(offsetof(struct mmapfs_disk_superblock, itab) == 2048, "sb itab");

/* Has a grown inode table's bitmap moved into the data area? Then the gap
 * after the block bitmap (its room, docs/FORMAT.md §13a) reaches up to
 * inode_table_start, else up to inode_bitmap_start. */
static inline int mmapfs_inode_bitmap_moved(const struct mmapfs_disk_superblock *sb)
{
    return (sb->feature_incompat & MMAPFS_FEATURE_INCOMPAT_ITAB) &&
           sb->itab.inode_bitmap_room != 0;
}

static inline uint64_t mmapfs_block_bitmap_room_end(const struct mmapfs_disk_superblock *sb)
{
    return mmapfs_inode_bitmap_moved(sb) ? sb->inode_table_start : sb->inode_bitmap_start;
}

/* ---- feature bits (docs/FORMAT.md §2) ------------------------------------ */

/* Backup superblock: a copy of the superblock at sb.backup_block (mkfs:
 * block 1, block 2 with MMP), rewritten whenever a layout field changes
 * (mkfs, mmapfs-resize, fsck); fsck restores block 0 from it. */
#define MMAPFS_FEATURE_COMPAT_BACKUP_SB 0x1u
/* The blocks where a backup superblock may live (fsck and mount look at
 * both when block 0 is unusable). */
#define MMAPFS_BACKUP_SB_FIRST 1u
#define MMAPFS_BACKUP_SB_LAST  2u

/* Multi-mount protection: the superblock names an MMP block (below) that a
 * read-write mount keeps updating; a second mount that sees it change
 * refuses. */
#define MMAPFS_FEATURE_INCOMPAT_MMP 0x4u

/* ---- MMP block (multi-mount protection) ---------------------------------- */
/*
 * One block, at sb.mmp_block (mkfs: block 1, the journal starts at 2), read
 * and written with O_DIRECT and O_DSYNC, never through the mapping, so that
 * what another machine wrote to the device is what is read. seq is either
 * a live sequence number (1..MMAPFS_MMP_SEQ_MAX, changed by the holder at
 * least every mmp_interval seconds), or MMAPFS_MMP_SEQ_CLEAN (nobody holds
 * the image), or MMAPFS_MMP_SEQ_FSCK (fsck is repairing it).
 */
#define MMAPFS_MMP_MAGIC      0x504d4d4du   /* "MMMP" */
#define MMAPFS_MMP_SEQ_CLEAN  0xff4d4d50u
#define MMAPFS_MMP_SEQ_FSCK   0xe24d4d50u
#define MMAPFS_MMP_SEQ_MAX    0xe24d4d4fu
#define MMAPFS_MMP_INTERVAL_DEFAULT 5u      /* seconds */
#define MMAPFS_MMP_INTERVAL_MAX     300u

struct mmapfs_disk_mmp {
    uint32_t magic;            /*  0 MMAPFS_MMP_MAGIC */
    uint32_t seq;              /*  4 live sequence number, or CLEAN / FSCK */
    uint64_t time;             /*  8 last update, seconds since the epoch (holder's clock) */
    uint32_t pid;              /* 16 holder's process id */
    uint32_t interval;         /* 20 the holder's update interval, seconds */
    char     nodename[64];     /* 24 holder's host name (uname), NUL-padded */
    char     device[64];       /* 88 the path the holder opened (its last 63 bytes) */
    uint8_t  reserved[4092 - 152];
    uint32_t checksum;         /* 4092 crc32c of bytes 0..4091 */
};
_Static_assert(sizeof(struct mmapfs_disk_mmp) == MMAPFS_BLOCK_SIZE, "mmp");

/* feature_incompat bits (docs/FORMAT.md §2) */
#define MMAPFS_FEATURE_INCOMPAT_INODE_DATA 0x1u  /* inode-resident extents and data */
#define MMAPFS_FEATURE_INCOMPAT_INODE_XATTR 0x8u /* in-inode xattrs (xattr_area) */

/* ---- journal ------------------------------------------------------------- */
/*
 * journal_start + 0, + 1: header slots A and B, then the log area. The
 * journal owns its records (header slots, descriptors, commit blocks):
 * src/journal/format.h.
 */
_Static_assert(MMAPFS_BLOCK_SIZE == MMAPFS_JNL_BLOCK_SIZE, "one block size");

/* ---- inodes -------------------------------------------------------------- */

#define MMAPFS_INODE_SIZE        256u
#define MMAPFS_INODES_PER_BLOCK  (MMAPFS_BLOCK_SIZE / MMAPFS_INODE_SIZE)

/* inode flags (see below) */
#define MMAPFS_INODE_EXTENTS      0x1u  /* inline_area: extents (the map) */
#define MMAPFS_INODE_INLINE_DATA  0x2u  /* inline_area: the file's bytes */
#define MMAPFS_INODE_FLAGS_KNOWN  (MMAPFS_INODE_EXTENTS | MMAPFS_INODE_INLINE_DATA)

#define MMAPFS_INLINE_BYTES            60u   /* inline_area: bytes 132..191 */
#define MMAPFS_INLINE_EXTENT_BYTES     15u
#define MMAPFS_INLINE_EXTENTS          4u
#define MMAPFS_INLINE_EXTENT_UNWRITTEN 0x80000000u
#define MMAPFS_INLINE_LBLK_LIMIT       (1ull << 40)  /* logical blocks must be below */
#define MMAPFS_INLINE_PBLK_LIMIT       (1ull << 48)  /* physical blocks must be below */

/* In-inode extended attributes (MMAPFS_FEATURE_INCOMPAT_INODE_XATTR):
 * xattr_area, bytes 192..251 of every inode, whatever its type. */
#define MMAPFS_IXATTR_BYTES      60u
#define MMAPFS_IXATTR_ENTRY_HDR  3u    /* u8 name index, u8 name_len, u8 value_len */
enum mmapfs_ixattr_index {     /* name index: the prefix the stored name follows */
    MMAPFS_IXATTR_END         = 0,  /* no more entries; the rest of the area is zero */
    MMAPFS_IXATTR_USER        = 1,  /* "user." */
    MMAPFS_IXATTR_ACL_ACCESS  = 2,  /* "system.posix_acl_access" (stored name empty) */
    MMAPFS_IXATTR_ACL_DEFAULT = 3,  /* "system.posix_acl_default" (stored name empty) */
    MMAPFS_IXATTR_TRUSTED     = 4,  /* "trusted." */
    MMAPFS_IXATTR_SECURITY    = 5,  /* "security." */
    MMAPFS_IXATTR_SYSTEM      = 6,  /* "system." */
    MMAPFS_IXATTR_FULL        = 7,  /* "" (the whole name is stored) */
    MMAPFS_IXATTR_INDEX_MAX   = 7,
};

/*
 * Inode ino (1-based) lives in block inode_table_start + (ino-1)/16 at byte
 * offset ((ino-1)%16)*256 (with ITAB, past the first table: in the
 * extents, mmapfs_inode_block below). It is in use iff inode bitmap bit ino-1 is set;
 * the content of an unused record is undefined (mkfs does not zero the
 * table). A used inode has mode != 0.
 *
 * tree_root: root block of the inode's B+tree: the extent tree (key =
 * logical block) for regular files and symlinks, the directory index (key =
 * name hash) for directories; 0 = empty tree. Symlink targets are stored as
 * file data (size = target length).
 *
 * Inode-resident data (only with MMAPFS_FEATURE_INCOMPAT_INODE_DATA; flags
 * is 0 on images without it). A regular file or symlink whose tree_root is
 * 0 may keep its block map or its bytes in inline_area, and flags says
 * which (at most one of the two bits, only for S_IFREG and S_IFLNK, never
 * with tree_root != 0):
 *  MMAPFS_INODE_EXTENTS: inline_area holds 1..4 extents of
 *    MMAPFS_INLINE_EXTENT_BYTES each, packed from offset 0, sorted by
 *    logical block, not overlapping; unused slots are all zero. A slot:
 *    bytes 0..4 le40 first logical block, 5..10 le48 first physical block,
 *    11..14 le32 length (bits 0..30, >= 1) | MMAPFS_INLINE_EXTENT_UNWRITTEN.
 *  MMAPFS_INODE_INLINE_DATA: the file's bytes 0..size-1 are inline_area[0
 *    .. size-1] (size <= MMAPFS_INLINE_BYTES); the rest of the area is zero.
 *    The inode owns no data block.
 * With neither bit, inline_area is zero and the map is the tree (an empty
 * tree: no data).
 *
 * In-inode extended attributes (only with MMAPFS_FEATURE_INCOMPAT_INODE_XATTR;
 * xattr_area is zero on images without it): entries packed from byte 0 of
 * xattr_area, each {u8 index (enum mmapfs_ixattr_index, 1..7), u8
 * name_len, u8 value_len, name_len bytes of name, value_len bytes of
 * value}, no padding. The attribute's full name is the index's prefix
 * followed by the stored name (1..255 bytes in all; indexes 2 and 3 store
 * no name). The list ends at an index byte of 0 or at the end of the area;
 * every byte after the last entry is zero. Full names are unique in the
 * area and in the inode's xattr block chain together. An attribute is kept
 * here when it fits, else in the chain (docs/FORMAT.md §6).
 */
struct mmapfs_disk_inode {
    uint32_t mode;             /*   0 st_mode, type bits included */
    uint32_t uid;              /*   4 */
    uint32_t gid;              /*   8 */
    uint32_t nlink;            /*  12 */
    uint64_t size;             /*  16 bytes (dirs: number of entries) */
    uint64_t blocks;           /*  24 4 KiB blocks owned: data + tree nodes + xattr block */
    uint64_t atime_sec;        /*  32 times: signed seconds (two's complement) */
    uint64_t mtime_sec;        /*  40 */
    uint64_t ctime_sec;        /*  48 */
    uint64_t crtime_sec;       /*  56 */
    uint32_t atime_nsec;       /*  64 */
    uint32_t mtime_nsec;       /*  68 */
    uint32_t ctime_nsec;       /*  72 */
    uint32_t crtime_nsec;      /*  76 */
    uint64_t rdev;             /*  80 device number (dev_t) for S_IFCHR/S_IFBLK */
    uint64_t generation;       /*  88 */
    uint64_t tree_root;        /*  96 B+tree root block, 0 = empty */
    uint64_t xattr_block;      /* 104 xattr block, 0 = none */
    uint64_t orphan_next;      /* 112 next inode on the orphan list, 0 = end */
    uint64_t parent;           /* 120 directories: parent inode (root: itself) */
    uint32_t flags;            /* 128 MMAPFS_INODE_* */
    uint8_t  inline_area[MMAPFS_INLINE_BYTES]; /* 132 extents or data, per flags */
    uint8_t  xattr_area[MMAPFS_IXATTR_BYTES]; /* 192 in-inode xattrs (INODE_XATTR), else zero */
    uint32_t checksum;         /* 252 crc32c of (le64 ino ‖ bytes 0..251) */
};
_Static_assert(sizeof(struct mmapfs_disk_inode) == MMAPFS_INODE_SIZE, "inode");
_Static_assert(offsetof(struct mmapfs_disk_inode, xattr_area) == 192, "inode xattr_area");

/* Block holding the record of inode ino (1-based) in a table of
 * table_blocks blocks at table_start followed by t's extents (t NULL: no
 * extents), or 0 if the table has no such record. */
static inline uint64_t mmapfs_inode_block(uint64_t table_start, uint64_t table_blocks,
                                          const struct mmapfs_disk_itab *t, uint64_t ino)
{
    if (ino == 0)
        return 0;
    uint64_t b = (ino - 1) / MMAPFS_INODES_PER_BLOCK;
    if (b < table_blocks)
        return table_start + b;
    b -= table_blocks;
    for (uint32_t i = 0; t && i < t->count && i < MMAPFS_ITAB_EXTENTS_MAX; i++) {
        if (b < t->ext[i].blocks)
            return t->ext[i].start + b;
        b -= t->ext[i].blocks;
    }
    return 0;
}

/* Inverse: the first inode number whose record is in block blk, or 0 if
 * blk is not an inode table block. */
static inline uint64_t mmapfs_inode_block_first(uint64_t table_start, uint64_t table_blocks,
                                                const struct mmapfs_disk_itab *t, uint64_t blk)
{
    if (blk >= table_start && blk - table_start < table_blocks)
        return (blk - table_start) * MMAPFS_INODES_PER_BLOCK + 1;
    uint64_t idx = table_blocks;
    for (uint32_t i = 0; t && i < t->count && i < MMAPFS_ITAB_EXTENTS_MAX; i++) {
        if (blk >= t->ext[i].start && blk - t->ext[i].start < t->ext[i].blocks)
            return (idx + blk - t->ext[i].start) * MMAPFS_INODES_PER_BLOCK + 1;
        idx += t->ext[i].blocks;
    }
    return 0;
}

/* ---- B+tree nodes (extent trees and directory indexes) ------------------- */
/*
 * A node is one block. Header, then:
 *  leaf (level 0): nitems item headers growing up from offset 32, values
 *    packed downward from the end of the block; items sorted by key, keys
 *    unique. value_off is the byte offset of the value in the block.
 *  internal (level > 0): nitems entries {key, child} from offset 32, sorted;
 *    child i holds the keys k with key_i <= k < key_{i+1} (key_0 is the
 *    smallest key of its subtree). All leaves are at level 0; the root's
 *    level is the tree height - 1.
 * checksum = mfs_crc32c(le64 block number ‖ bytes 8..4095), so a node read from
 * the wrong place is detected.
 */
#define MMAPFS_BTREE_MAGIC   0x54424d4du    /* "MMBT" */
#define MMAPFS_BTREE_MAX_LEVEL 8
#define MMAPFS_BTREE_MAX_VALUE 300u          /* largest value, bytes */

enum mmapfs_tree_type {
    MMAPFS_TREE_EXTENTS = 1,
    MMAPFS_TREE_DIR     = 2,
};

struct mmapfs_disk_btree_header {
    uint32_t magic;            /*  0 MMAPFS_BTREE_MAGIC */
    uint32_t checksum;         /*  4 see above */
    uint64_t owner;            /*  8 inode number owning the tree */
    uint16_t level;            /* 16 0 = leaf */
    uint16_t nitems;           /* 18 */
    uint16_t type;             /* 20 enum mmapfs_tree_type */
    uint16_t value_start;      /* 22 leaves: lowest value offset in use (4096 if none) */
    uint64_t reserved;         /* 24 */
};
_Static_assert(sizeof(struct mmapfs_disk_btree_header) == 32, "bth");

struct mmapfs_disk_btree_item {    /* leaf item header */
    uint64_t key;
    uint16_t value_off;
    uint16_t value_len;
} __attribute__((packed));
_Static_assert(sizeof(struct mmapfs_disk_btree_item) == 12, "bti");

struct mmapfs_disk_btree_ptr {     /* internal node entry */
    uint64_t key;
    uint64_t child;
};
_Static_assert(sizeof(struct mmapfs_disk_btree_ptr) == 16, "btp");

/* Extent tree value (key = first logical block). Extents never overlap. */
#define MMAPFS_EXTENT_UNWRITTEN 1u    /* allocated by fallocate: reads as zeros */
struct mmapfs_disk_extent {
    uint64_t start;            /* first physical block */
    uint32_t len;              /* blocks, >= 1 */
    uint32_t flags;            /* MMAPFS_EXTENT_* */
};
_Static_assert(sizeof(struct mmapfs_disk_extent) == 16, "ext");

/* Little-endian n-byte fields of the inline extent slots. */
static inline uint64_t mmapfs_le_get(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = n; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

static inline void mmapfs_le_put(uint8_t *p, unsigned n, uint64_t v)
{
    for (unsigned i = 0; i < n; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

/* Slot i (< MMAPFS_INLINE_EXTENTS) of an inline extent area (struct
 * mmapfs_disk_inode) as a tree value and its logical block. A slot of all
 * zeros reads as len 0 (unused). */
static inline void mmapfs_inline_extent_get(const uint8_t *area, unsigned i, uint64_t *lblk,
                                            struct mmapfs_disk_extent *e)
{
    const uint8_t *p = area + i * MMAPFS_INLINE_EXTENT_BYTES;
    uint32_t lf = (uint32_t)mmapfs_le_get(p + 11, 4);
    *lblk = mmapfs_le_get(p, 5);
    e->start = mmapfs_le_get(p + 5, 6);
    e->len = lf & ~MMAPFS_INLINE_EXTENT_UNWRITTEN;
    e->flags = (lf & MMAPFS_INLINE_EXTENT_UNWRITTEN) ? MMAPFS_EXTENT_UNWRITTEN : 0;
}

/* The caller checks lblk < MMAPFS_INLINE_LBLK_LIMIT, e->start <
 * MMAPFS_INLINE_PBLK_LIMIT, e->len < 2^31. */
static inline void mmapfs_inline_extent_put(uint8_t *area, unsigned i, uint64_t lblk,
                                            const struct mmapfs_disk_extent *e)
{
    uint8_t *p = area + i * MMAPFS_INLINE_EXTENT_BYTES;
    mmapfs_le_put(p, 5, lblk);
    mmapfs_le_put(p + 5, 6, e->start);
    mmapfs_le_put(p + 11, 4, e->len | ((e->flags & MMAPFS_EXTENT_UNWRITTEN)
                                           ? MMAPFS_INLINE_EXTENT_UNWRITTEN : 0));
}

/*
 * Directory index value. key = (mmapfs_name_hash(name) << 8) | k, where k
 * (0..255) is the smallest number not used by another name with the same
 * hash; lookup scans keys hash<<8 .. hash<<8|255. "." and ".." are not
 * stored (".." is the inode's parent field). readdir offsets: 1 = ".",
 * 2 = "..", key + 3 = the entry after key.
 */
struct mmapfs_disk_dirent {
    uint64_t ino;
    uint8_t  type;             /* DT_* of the target */
    uint8_t  name_len;         /* 1..255 */
    char     name[];           /* not NUL-terminated */
} __attribute__((packed));
_Static_assert(sizeof(struct mmapfs_disk_dirent) == 10, "de");

/* 55-bit name hash: FNV-1a 64 over the name bytes, folded (h ^ (h >> 55)) and
 * masked to 55 bits, so keys fit below 2^63 with room for the readdir +3. */
static inline uint64_t mmapfs_name_hash(const char *name, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)name[i];
        h *= 0x100000001b3ull;
    }
    return (h ^ (h >> 55)) & ((1ull << 55) - 1);
}

/* ---- extended attributes --------------------------------------------------- */
/*
 * A chain of xattr blocks per inode, from xattr_block through each header's
 * 'next' (docs/FORMAT.md). Header, then entries packed from offset 32:
 * {u8 name_len, u8 reserved, le16 value_len, name, value}, each padded to 4
 * bytes; 'used' = bytes of entries. Names are full ("user.foo"), unique in
 * the whole chain; an entry never spans blocks. checksum = mfs_crc32c(le64
 * block number ‖ bytes 8..4095). An image with a chain longer than one
 * block has MMAPFS_FEATURE_INCOMPAT_XATTR_CHAIN set (drivers that do not
 * know 'next' must refuse it); a chain has at most MMAPFS_XATTR_CHAIN_MAX
 * blocks.
 */
#define MMAPFS_FEATURE_INCOMPAT_XATTR_CHAIN 0x2u
#define MMAPFS_XATTR_CHAIN_MAX 16384u
#define MMAPFS_XATTR_MAGIC 0x41584d4du   /* "MMXA" */
struct mmapfs_disk_xattr_header {
    uint32_t magic;            /*  0 */
    uint32_t checksum;         /*  4 */
    uint64_t owner;            /*  8 inode number */
    uint16_t count;            /* 16 */
    uint16_t used;             /* 18 bytes of entries after the header */
    uint32_t reserved0;        /* 20 zero */
    uint64_t next;             /* 24 next block of the chain, 0 = last
                                *    (non-zero only with the feature below) */
};
_Static_assert(sizeof(struct mmapfs_disk_xattr_header) == 32, "xh");

struct mmapfs_disk_xattr_entry {
    uint8_t  name_len;
    uint8_t  reserved;
    uint16_t value_len;
    char     data[];           /* name then value */
} __attribute__((packed));
_Static_assert(sizeof(struct mmapfs_disk_xattr_entry) == 4, "xe");

/* Bytes an entry takes in an xattr block, padded to a multiple of 4. */
static inline size_t mmapfs_xattr_entry_size(size_t name_len, size_t value_len)
{
    return (sizeof(struct mmapfs_disk_xattr_entry) + name_len + value_len + 3) & ~(size_t)3;
}

#endif
