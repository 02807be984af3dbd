/*
 * Private to the fsck core (src/fs/check*.c).
 *
 *   check.c          driver: open, lock, superblock, journal, passes, summary
 *   check_inodes.c   pass 1: inodes, extent trees, xattr blocks, block owners;
 *                    pass 1b: names both owners of every block claimed twice
 *   check_dirs.c     pass 2: directory entries, orphan list, link counts,
 *                    reachability
 *   check_bitmaps.c  pass 3: bitmaps and free counts; applying repairs
 *
 * Everything read from the image is untrusted: every number is range
 * checked before it is used as an index or an offset.
 */
#ifndef MMAPFS_CHECK_I_H
#define MMAPFS_CHECK_I_H

#include <stdint.h>
#include <stdio.h>

#include "fs/btree.h"
#include "fs/check.h"
#include "fs/format.h"
#include "mmapfs/mmio.h"

/* Per-inode state (struct check_inode.state bits). */
enum {
    CI_USED     = 1 << 0,   /* set in the inode bitmap */
    CI_VALID    = 1 << 1,   /* checksum and type good: trusted */
    CI_ORPHAN   = 1 << 2,   /* on the orphan list */
    CI_TREE_BAD = 1 << 3,   /* its tree or xattr block is corrupt */
    CI_REACHED  = 1 << 4,   /* directory: reachable from the root */
    CI_LOST     = 1 << 5,   /* directory: known unreachable */
    CI_VISITING = 1 << 6,   /* directory: on the chain being resolved */
};

struct check_inode {
    uint32_t links;        /* directory entries naming it */
    uint32_t subdirs;      /* directories: entries naming subdirectories */
    uint32_t named_by;     /* directories: directory holding its first entry */
    uint8_t state;         /* CI_* */
    uint8_t dtype;         /* DT_* of its mode (valid inodes) */
};

/* Per-inode repairs found (applied at the end unless -n). */
enum check_fix_field { FIX_NLINK, FIX_SIZE, FIX_BLOCKS, FIX_PARENT };
struct check_fix {
    uint64_t ino;
    uint64_t value;
    enum check_fix_field field;
};

struct check {
    struct mmio *io;
    FILE *out;
    const char *path;
    struct fs_check_options opt;
    int may_repair;                  /* mode != NO and no unknown ro_compat features */
    struct mmapfs_disk_superblock sb;  /* copy, after journal replay */
    const struct bt_store *store;    /* read-only store over the mapping */
    uint64_t block_count, inode_count, data_start;

    uint8_t *claimed;                /* 1 bit per block: owned by some inode */
    uint8_t *dup;                    /* 1 bit per block: claimed more than once */
    uint64_t ndup;
    struct check_inode *inodes;      /* [0..inode_count], index = inode number */

    struct check_fix *fixes;
    size_t nfixes, fixes_cap;
    int structural;                  /* a problem that makes a bitmap rebuild unsafe */
    int bitmap_bad, counts_bad, journal_bad, error_state;

    /* statistics */
    uint64_t used_inodes, dirs, files, tree_nodes, data_blocks, orphans;
    uint64_t errors, fixed, lines;
};

/* Reports one problem: "fsck.mmapfs: <msg>" (the count always grows; the
 * printing stops after a cap unless verbose). */
void check_error(struct check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An informational line (not an error). */
void check_info(struct check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Records a per-inode repair (an error already reported). */
void check_add_fix(struct check *c, uint64_t ino, enum check_fix_field f, uint64_t value);

/* Pointer to block blk of the mapping, or NULL if out of the filesystem. */
const uint8_t *check_block(struct check *c, uint64_t blk);
/* Copies inode ino's record. 0 or -EIO. */
int check_read_inode(struct check *c, uint64_t ino, struct mmapfs_disk_inode *di);
uint32_t check_inode_checksum(uint64_t ino, const struct mmapfs_disk_inode *di);
/* Is inode ino set in the on-disk inode bitmap? */
int check_inode_bit(struct check *c, uint64_t ino);
/* DT_* for a mode, 0 if the type is not a valid one. */
uint8_t check_mode_dtype(uint32_t mode);
/* Writes a printable form of name (escapes non-printable bytes). */
void check_escape(char *out, size_t out_len, const char *name, size_t len);

static inline int check_bit(const uint8_t *map, uint64_t i)
{
    return (map[i / 8] >> (i % 8)) & 1;
}
static inline void check_set_bit(uint8_t *map, uint64_t i)
{
    map[i / 8] |= (uint8_t)(1u << (i % 8));
}

/* Passes. Each returns 0, or -ENOMEM / -EIO (operational failure). */
int check_pass_inodes(struct check *c);
int check_pass_duplicates(struct check *c);
int check_pass_dirs(struct check *c);
int check_pass_bitmaps(struct check *c);
/* Applies recorded repairs (may_repair). */
int check_apply_fixes(struct check *c);

#endif
