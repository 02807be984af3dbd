/*
 * Private interfaces of mkfs: geometry computation (src/fs/mkfs.c) and
 * detection of existing filesystems / signatures on a target
 * (src/fs/probe.c). Used by fs_format, the mkfs.mmapfs tool and tests.
 */
#ifndef MMAPFS_MKFS_H
#define MMAPFS_MKFS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fs/fs.h"
#include "mmapfs/mmio.h"

#define MKFS_MIN_BYTES                  (16ull << 20)  /* smallest filesystem */
#define MKFS_MIN_JOURNAL_BLOCKS         1026u          /* the journal layer needs this */
#define MKFS_DEFAULT_MAX_JOURNAL_BLOCKS 32768u         /* default: size/64 up to this */
#define MKFS_MIN_DATA_BLOCKS            256u           /* after the metadata region */
#define MKFS_BYTES_PER_INODE            16384u         /* default inode density */
#define MKFS_MIN_INODES                 64u            /* default never goes below */
#define MKFS_MAX_INODES                 0xffffffffull  /* numbers fit 32 bits */
#define MKFS_LABEL_MAX                  63u            /* bytes; label[64] keeps a NUL */
/* block bitmap room left after the bitmap, for growing in place
 * (mmapfs-resize, docs/FORMAT.md "Growing"): up to this many times the
 * size, at most MKFS_GROW_MAX_BLOCKS (16 TiB) */
#define MKFS_GROW_FACTOR                64u
#define MKFS_GROW_MAX_BLOCKS            (1ull << 32)

/* Layout of a filesystem, as fs_format writes it. */
struct mkfs_geometry {
    uint64_t block_count, inode_count;
    uint64_t mmp_block;          /* 0: no MMP */
    uint64_t backup_block;       /* the backup superblock */
    uint64_t journal_start, journal_blocks;
    uint64_t block_bitmap_start, block_bitmap_blocks;
    uint64_t inode_bitmap_start, inode_bitmap_blocks;
    uint64_t inode_table_start, inode_table_blocks;
    uint64_t data_start;
    uint64_t root_dir_block;     /* the root directory's B+tree leaf */
    uint64_t used_blocks;        /* blocks 0..used_blocks-1 are in use after mkfs */
};

/* Computes the layout for 'bytes' bytes (rounded down to 4096) and the
 * options (NULL or zero fields = defaults; opt->size is ignored here). The
 * inode count is rounded up to a multiple of 16. -EINVAL when too small or
 * when the options do not fit. */
/* Blocks from the block bitmap's start to the inode bitmap that mkfs
 * leaves for a filesystem of block_count blocks: the bitmap and the room
 * to grow it in place (MKFS_GROW_FACTOR). */
uint64_t fs_mkfs_bitmap_room(uint64_t block_count);

int fs_mkfs_geometry(uint64_t bytes, const struct fs_format_options *opt,
                  struct mkfs_geometry *g);

/* Looks for a known signature in the first bytes of a target. 'head' holds
 * the first 'len' bytes (MKFS_PROBE_BYTES is enough for every signature
 * checked; fewer is fine, signatures past the end are not matched). Returns
 * 1 and a short description in what[what_len] when something is found
 * ("mmapfs", "ext2/ext3/ext4 filesystem", ...), 0 when nothing is. */
#define MKFS_PROBE_BYTES 69632u   /* 68 KiB: btrfs magic at 65600 */
int fs_mkfs_probe_buffer(const void *head, size_t len, char *what, size_t what_len);

/* Same on an opened engine: reads min(size, MKFS_PROBE_BYTES) bytes.
 * 1 found, 0 nothing, -errno on a read error. */
int fs_mkfs_probe(struct mmio *io, char *what, size_t what_len);

/* Before formatting a target (open descriptor fd, path, bytes long) that
 * holds an mmapfs image with multi-mount protection (found through its
 * superblock, or the backup when block 0 is damaged): claims its MMP
 * block as fsck.mmapfs -y does (fs_mmp_claim, MMP_FSCK), so that a holder
 * that is alive — its heartbeat changes, here or on another machine, or
 * fsck is repairing it — is refused with one line on err naming it (host,
 * pid), and no mount starts while mkfs writes. 0 with *out (NULL when
 * there is no MMP image; else fs_mkfs_release_mmp(*out) after formatting),
 * or -EBUSY (refused, line printed) or -errno. */
struct mmp;
int fs_mkfs_claim_mmp(int fd, const char *path, uint64_t bytes, const char *prog, FILE *err,
                      struct mmp **out);

/* mkfs does not write the inode table, and the allocator and fsck take a
 * leftover record for live when it has links, a type, a good checksum and
 * was created at most a second before mkfs_time (slack for the kernel's
 * coarse clock; fs_inode_record_looks_live). Where the old table cannot
 * be cleared (a block device: it could be gigabytes; a host filesystem
 * that cannot punch holes), a reformat within a second of the last create
 * left records that looked live: the fresh image had "inode N in use but
 * free" errors and its first create marked it damaged. The earliest
 * mkfs_time (seconds since the epoch) at which no record of the mmapfs
 * found on the target (its superblock, or the backup) looks live: 2 s
 * past its clean unmount, or past now (the real time when mkfs began,
 * the target unused since) when it was not unmounted cleanly; 0 when the
 * target holds no mmapfs. */
uint64_t fs_mkfs_old_records_until(int fd, uint64_t bytes, uint64_t now);

/* Lets go of what fs_mkfs_claim_mmp claimed (NULL: nothing). formatted:
 * mkfs began to write the new image, whose own MMP block, if any, mkfs
 * writes itself; the old block is left as it is. Otherwise (refused,
 * failed before writing) the old image's block is marked CLEAN again:
 * left marked FSCK it would refuse every later mount, fsck and mkfs. */
void fs_mkfs_release_mmp(struct mmp *m, int formatted);

#endif
