/*
 * fuzz_image.h — what the three fuzz targets (tests/fuzz/fuzz_*.c) share:
 * the base images, the patch list that an input describes, and the walk
 * through the fs core API. docs/FUZZ.md explains the choices.
 *
 * An input is not an image (the smallest image mkfs allows is 16 MiB) but
 * a list of patches applied to a valid base image built once per process
 * (mkfs + a short workload, in memory):
 *
 *   byte 0           flags: bit 0 = start from the "crashed" base (log
 *                    not checkpointed, an orphan on the list) instead of
 *                    the clean one; bit 1 = fuzz_mount mounts read-write
 *                    (replay into the image, orphans freed) and changes
 *                    things after the walk
 *   then records     [u8 op][le16 sel][le16 off][u8 len][len bytes]
 *     op bit 0       recompute the block's checksums after the patch
 *                    (superblock, inode records, B+tree node, xattr block,
 *                    journal header/commit), so the damage gets past them
 *     op bit 1       zero the whole block first
 *     op bit 2       sel is a raw block number (mod block_count); else it
 *                    indexes the base image's non-zero blocks (metadata,
 *                    journal, the workload's data) — where damage matters
 *     off            byte offset in the block (mod 4096); the bytes are
 *                    clipped at the end of the block
 *   A record cut short by the end of the input is ignored.
 */
#ifndef MMAPFS_FUZZ_IMAGE_H
#define MMAPFS_FUZZ_IMAGE_H

#include <stddef.h>
#include <stdint.h>

struct fs;

/* Which region the record selectors of fuzz_image_make index. */
enum fuzz_region {
    FUZZ_REGION_USED,      /* every non-zero block of the base image */
    FUZZ_REGION_JOURNAL,   /* the non-zero blocks of the journal */
};

/* A patched image in a memfd. path is "/proc/self/fd/N" (what fs_mount and
 * fs_check open). */
struct fuzz_image {
    int fd;
    char path[48];
    uint64_t block_count;
    uint64_t journal_start, journal_blocks;
};

/* Builds the base images on first use (aborts if that fails: it is the
 * harness, not the input). */
void fuzz_init(void);

/* Makes a fresh memfd holding the base image chosen by data[0] with the
 * patches of data applied. 0 or -errno. */
int fuzz_image_make(struct fuzz_image *img, const uint8_t *data, size_t size,
                    enum fuzz_region region);
void fuzz_image_drop(struct fuzz_image *img);

/* Reads everything a mounted fs shows: readdir (both forms) of every
 * directory reachable from the root, lookup + getattr of every entry,
 * every regular file's data (bounded) through fs_read and fs_read_iov,
 * SEEK_DATA/SEEK_HOLE, every symlink, every xattr, statfs. Bounded in
 * inodes and bytes, cycles skipped. Errors are expected (corrupt image);
 * a crash, hang or leak is the finding. */
void fuzz_walk(struct fs *fs);

/* A few changes through the fs API (mkdir, create, write, truncate,
 * xattrs, rename exchange, unlink, rmdir, fsync) on a read-write mount:
 * the allocator, the orphan list and the tree updates meet the damage. */
void fuzz_change(struct fs *fs);

/* Mounts img (read-only or read-write), walks it if asked (and then, when
 * read-write, makes fuzz_change's changes), unmounts. Returns the fs_mount
 * result. */
int fuzz_mount_walk(const struct fuzz_image *img, int read_only, int walk);

/* Aborts with a message: an invariant of the harness failed. */
void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
