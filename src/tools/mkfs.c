/*
 * mkfs.mmapfs — create an mmapfs filesystem in an image file or on a block
 * device. Thin main over fs_format() (src/fs/mkfs.c); see
 * docs/man/mkfs.mmapfs.8.
 *
 * Exit status: 0 success, else one TOOL_EXIT_* code per kind of refusal
 * (src/tools/exit_i.h, docs/man/mkfs.mmapfs.8), each with one line that
 * names the problem and what to do.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fs/format.h"
#include "fs/fs.h"
#include "fs/mkfs.h"
#include "fuse/version_i.h"
#include "mmapfs/mmio.h"
#include "tools/exit_i.h"
#include "util/size.h"

#define PROG "mkfs.mmapfs"

struct mkfs_args {
    uint64_t size;          /* -s, bytes; 0 = not given */
    uint64_t inodes;        /* -N */
    uint64_t journal;       /* -J, blocks */
    const char *label;      /* -L */
    int force, sparse, quiet;
    int mmp;                /* -O mmp: 1, -O ^mmp: 0, not given: -1 (block device: on) */
    uint32_t mmp_interval;  /* --mmp-interval, seconds; 0 = default */
    int no_inode_data;      /* --no-inode-data */
    int no_inode_xattr;     /* -O ^inode_xattr */
    const char *target;
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: " PROG " [options] TARGET\n"
        "  -s, --size SIZE        filesystem size (suffixes K, M, G, T: binary);\n"
        "                         required when TARGET does not exist\n"
        "  -L, --label LABEL      volume label (at most %u bytes)\n"
        "  -N, --inodes N         number of inodes (default: one per 16 KiB)\n"
        "  -J, --journal BLOCKS   journal size in 4 KiB blocks (default: size/64,\n"
        "                         clamped to [%u, %u])\n"
        "  -f, --force            overwrite an existing filesystem or signature\n"
        "      --sparse           do not preallocate an image file (the journal and\n"
        "                         the metadata region are allocated all the same)\n"
        "  -O mmp | -O ^mmp       multi-mount protection on or off (default: on for\n"
        "                         a block device, off for an image file)\n"
        "      --mmp-interval S   MMP heartbeat interval, seconds (default %u, at\n"
        "                         most %u); implies -O mmp\n"
        "      --no-inode-data    keep every file's extents and data out of its inode\n"
        "                         (the format before incompat feature 0x1)\n"
        "  -O ^inode_xattr        keep every extended attribute out of its inode\n"
        "                         (the format before incompat feature 0x8)\n"
        "  -q, --quiet            print nothing on success\n"
        "  -V, --version          print the version\n"
        "  -h, --help             this help\n",
        MKFS_LABEL_MAX, MKFS_MIN_JOURNAL_BLOCKS, MKFS_DEFAULT_MAX_JOURNAL_BLOCKS,
        MMAPFS_MMP_INTERVAL_DEFAULT, MMAPFS_MMP_INTERVAL_MAX);
}

/* Plain unsigned number. 0 or -EINVAL. */
static int parse_number(const char *s, uint64_t *out)
{
    char *end;
    if (*s < '0' || *s > '9')      /* no blanks, no sign: as mfs_parse_size */
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end)
        return -EINVAL;
    *out = v;
    return 0;
}

/* Fills *a from argv. 0, or 1 after --help / --version (exit 0), or
 * -TOOL_EXIT_USAGE after printing what is wrong. */
static int parse_args(int argc, char **argv, struct mkfs_args *a)
{
    enum { OPT_SPARSE = 256, OPT_MMP_INTERVAL, OPT_NO_INODE_DATA };
    static const struct option longopts[] = {
        { "size", required_argument, NULL, 's' },
        { "label", required_argument, NULL, 'L' },
        { "inodes", required_argument, NULL, 'N' },
        { "journal", required_argument, NULL, 'J' },
        { "force", no_argument, NULL, 'f' },
        { "sparse", no_argument, NULL, OPT_SPARSE },
        { "mmp-interval", required_argument, NULL, OPT_MMP_INTERVAL },
        { "no-inode-data", no_argument, NULL, OPT_NO_INODE_DATA },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    memset(a, 0, sizeof(*a));
    a->mmp = -1;
    int c;
    uint64_t n;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":s:L:N:J:O:fqhV", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (mfs_parse_size(optarg, &a->size) || a->size == 0) {
                fprintf(stderr, PROG ": -s %s: expected a size in bytes, with an optional "
                        "suffix K, M, G or T (for example 64M)\n", optarg);
                return -TOOL_EXIT_USAGE;
            }
            break;
        case 'L':
            if (strlen(optarg) > MKFS_LABEL_MAX) {
                fprintf(stderr, PROG ": -L: the label has %zu bytes; at most %u are "
                        "allowed\n", strlen(optarg), MKFS_LABEL_MAX);
                return -TOOL_EXIT_USAGE;
            }
            a->label = optarg;
            break;
        case 'N':
            if (parse_number(optarg, &a->inodes) || a->inodes == 0) {
                fprintf(stderr, PROG ": -N %s: expected a number of inodes, 1 or more\n",
                        optarg);
                return -TOOL_EXIT_USAGE;
            }
            break;
        case 'J':
            /* below the minimum here: the geometry's refusal would say
             * "does not fit ...: at most N blocks" of a smaller count */
            if (parse_number(optarg, &a->journal) || a->journal < MKFS_MIN_JOURNAL_BLOCKS) {
                fprintf(stderr, PROG ": -J %s: expected a number of 4 KiB blocks, at "
                        "least %u\n", optarg, MKFS_MIN_JOURNAL_BLOCKS);
                return -TOOL_EXIT_USAGE;
            }
            break;
        case 'O':
            if (strcmp(optarg, "mmp") == 0) {
                a->mmp = 1;
            } else if (strcmp(optarg, "^mmp") == 0) {
                a->mmp = 0;
            } else if (strcmp(optarg, "inode_xattr") == 0) {
                a->no_inode_xattr = 0;
            } else if (strcmp(optarg, "^inode_xattr") == 0) {
                a->no_inode_xattr = 1;
            } else {
                fprintf(stderr, PROG ": -O %s: the features are mmp, ^mmp, inode_xattr and "
                        "^inode_xattr\n", optarg);
                return -TOOL_EXIT_USAGE;
            }
            break;
        case OPT_MMP_INTERVAL:
            if (parse_number(optarg, &n) || n == 0 || n > MMAPFS_MMP_INTERVAL_MAX) {
                fprintf(stderr, PROG ": --mmp-interval %s: expected seconds, 1 to %u\n",
                        optarg, MMAPFS_MMP_INTERVAL_MAX);
                return -TOOL_EXIT_USAGE;
            }
            a->mmp_interval = (uint32_t)n;
            if (a->mmp < 0)
                a->mmp = 1;
            break;
        case 'f': a->force = 1; break;
        case OPT_SPARSE: a->sparse = 1; break;
        case OPT_NO_INODE_DATA: a->no_inode_data = 1; break;
        case 'q': a->quiet = 1; break;
        case 'h': usage(stdout); return 1;
        case 'V':
            tool_print_version(PROG);
            return 1;
        default:
            tool_bad_option(PROG, c, optopt, argv[optind - 1]);
            return -TOOL_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, PROG ": %s: usage: " PROG " [options] TARGET (" PROG
                " --help for the options)\n",
                optind >= argc ? "no TARGET given" : "more than one TARGET given");
        return -TOOL_EXIT_USAGE;
    }
    a->target = argv[optind];
    return 0;
}

/* Reads the head of fd and refuses (returns -TOOL_EXIT_* after a message)
 * when a known signature is there and -f was not given. */
static int check_signature(int fd, const struct mkfs_args *a)
{
    unsigned char *head = calloc(1, MKFS_PROBE_BYTES);
    if (!head) {
        fprintf(stderr, PROG ": out of memory\n");
        return -TOOL_EXIT_FAILURE;
    }
    size_t len = 0;
    while (len < MKFS_PROBE_BYTES) {
        ssize_t r = pread(fd, head + len, MKFS_PROBE_BYTES - len, (off_t)len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fprintf(stderr, PROG ": %s: read: %s\n", a->target, strerror(errno));
            free(head);
            return -TOOL_EXIT_FAILURE;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    char what[128];
    int found = fs_mkfs_probe_buffer(head, len, what, sizeof(what));
    free(head);
    if (!found)
        return 0;
    if (a->force) {
        if (!a->quiet)
            fprintf(stderr, PROG ": %s: found %s: overwriting it (-f)\n", a->target, what);
        return 0;
    }
    fprintf(stderr, PROG ": %s: found %s; use -f to overwrite it\n", a->target, what);
    return -TOOL_EXIT_EXISTING;
}

/* Refuses (returns -TOOL_EXIT_* after a message) a target whose MMP block
 * (an mmapfs image with multi-mount protection) shows a live holder; -f
 * does not override that. Else claims the block until the format is done
 * (*mmp, NULL without MMP). */
static int claim_mmp(int fd, const struct mkfs_args *a, const struct stat *st, struct mmp **mmp)
{
    uint64_t bytes = (uint64_t)st->st_size;
    if (S_ISBLK(st->st_mode) && ioctl(fd, BLKGETSIZE64, &bytes))
        bytes = 0;
    int err = fs_mkfs_claim_mmp(fd, a->target, bytes, PROG, stderr, mmp);
    if (err == -EBUSY)
        return -TOOL_EXIT_IN_USE;
    if (err) {
        fprintf(stderr, PROG ": %s: multi-mount protection: %s\n", a->target, strerror(-err));
        return -TOOL_EXIT_FAILURE;
    }
    return 0;
}

/* The largest value of *field (an inode count or journal size of o) in
 * [1, hi] with which the geometry of size bytes fits; 0 if none does. */
static uint64_t largest_fitting(uint64_t size, struct fs_format_options *o, uint64_t *field,
                                uint64_t hi)
{
    struct mkfs_geometry g;
    uint64_t lo = 0, keep = *field;

    while (lo < hi) {
        uint64_t mid = lo + (hi - lo + 1) / 2;
        *field = mid;
        if (fs_mkfs_geometry(size, o, &g) == 0)
            lo = mid;
        else
            hi = mid - 1;
    }
    *field = keep;
    return lo;
}

/* Explains why fs_mkfs_geometry refused opt; returns the exit status. */
static int explain_geometry(uint64_t size, struct fs_format_options *opt,
                            const struct mkfs_args *a)
{
    if ((size & ~(uint64_t)(MMAPFS_BLOCK_SIZE - 1)) < MKFS_MIN_BYTES) {
        fprintf(stderr, PROG ": %s: size %" PRIu64 " bytes is too small (minimum %llu MiB): "
                "give a larger -s or target\n", a->target, size, MKFS_MIN_BYTES >> 20);
        return TOOL_EXIT_TARGET_KIND;
    }
    uint64_t most_inodes = opt->inodes ? largest_fitting(size, opt, &opt->inodes,
                                                         MKFS_MAX_INODES) : 0;
    uint64_t most_journal = opt->journal_blocks ?
        largest_fitting(size, opt, &opt->journal_blocks, size / MMAPFS_BLOCK_SIZE) : 0;
    if (most_inodes)
        fprintf(stderr, PROG ": %s: -N %" PRIu64 " does not fit in %" PRIu64 " bytes%s: at "
                "most %" PRIu64 " inodes\n", a->target, opt->inodes, size,
                opt->journal_blocks ? " with this -J" : "", most_inodes);
    else if (most_journal >= MKFS_MIN_JOURNAL_BLOCKS)
        fprintf(stderr, PROG ": %s: -J %" PRIu64 " does not fit in %" PRIu64 " bytes%s: at "
                "most %" PRIu64 " blocks\n", a->target, opt->journal_blocks, size,
                opt->inodes ? " with this -N" : "", most_journal);
    else
        fprintf(stderr, PROG ": %s: the requested inode count (-N) and journal size (-J) "
                "do not fit together in %" PRIu64 " bytes (journal: %u blocks minimum, half "
                "the filesystem maximum; inodes: at most %llu)\n", a->target, size,
                MKFS_MIN_JOURNAL_BLOCKS, (unsigned long long)MKFS_MAX_INODES);
    return TOOL_EXIT_USAGE;
}

/* Prints the summary of the new filesystem. */
static void print_summary(struct mmio *io, const struct mkfs_args *a)
{
    struct mmapfs_disk_superblock sb;
    if (mmio_read_at(io, 0, &sb, sizeof(sb)))
        return;
    char uuid[37];
    const uint8_t *u = sb.uuid;
    snprintf(uuid, sizeof(uuid),
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10],
             u[11], u[12], u[13], u[14], u[15]);
    printf("mmapfs (format %u) on %s\n", sb.format_version, a->target);
    printf("  size:     %" PRIu64 " bytes (%" PRIu64 " MiB)\n",
           sb.block_count * MMAPFS_BLOCK_SIZE, (sb.block_count * MMAPFS_BLOCK_SIZE) >> 20);
    printf("  blocks:   %" PRIu64 " x 4096, %" PRIu64 " free, data from block %" PRIu64 "\n",
           sb.block_count, sb.free_blocks, sb.data_start);
    printf("  inodes:   %" PRIu64 ", %" PRIu64 " free\n", sb.inode_count, sb.free_inodes);
    printf("  journal:  %" PRIu64 " blocks (%" PRIu64 " MiB)\n", sb.journal_blocks,
           (sb.journal_blocks * MMAPFS_BLOCK_SIZE) >> 20);
    if (sb.feature_incompat & MMAPFS_FEATURE_INCOMPAT_MMP)
        printf("  mmp:      block %" PRIu64 ", heartbeat every %" PRIu32 " s\n",
               sb.mmp_block, sb.mmp_interval);
    printf("  uuid:     %s\n", uuid);
    if (sb.label[0])
        printf("  label:    %.64s\n", sb.label);
}

/* Refuses, before anything is allocated, an allocation of the first
 * `bytes` of the image that the host filesystem cannot hold: fallocate
 * that fails with ENOSPC keeps the blocks it took (ext4, xfs), so trying
 * would leave the host disk full for every other program. 0, or the exit
 * status (message printed). */
static int host_space_check(int fd, uint64_t bytes, const struct mkfs_args *a)
{
    struct stat st;
    struct statvfs vfs;
    if (fstat(fd, &st) || fstatvfs(fd, &vfs))
        return 0;                   /* no figures: let fallocate decide */
    uint64_t have = (uint64_t)st.st_blocks * 512u;
    uint64_t need = bytes > have ? bytes - have : 0;
    uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    if (need <= avail)
        return 0;
    fprintf(stderr, PROG ": %s: the host filesystem has %" PRIu64 " MiB free, this needs %"
            PRIu64 " MiB more%s: free space, choose a smaller -s%s\n",
            a->target, avail >> 20, (need + (1u << 20) - 1) >> 20,
            a->sparse ? " (the journal and metadata of a --sparse image)" : "",
            a->sparse ? "" : ", or use --sparse");
    return TOOL_EXIT_NO_SPACE;
}

/* Allocates the file's space up front (not with --sparse) so that the
 * mapping never hits ENOSPC. 0 or the exit status (message printed). */
static int preallocate(int fd, uint64_t size, const struct mkfs_args *a)
{
    int r = host_space_check(fd, size, a);
    if (r)
        return r;
    int err = posix_fallocate(fd, 0, (off_t)size);
    if (err == 0)
        return 0;
    if (err == ENOSPC) {
        fprintf(stderr, PROG ": %s: not enough space to preallocate %" PRIu64
                " bytes (use --sparse for a sparse image)\n", a->target, size);
        return TOOL_EXIT_NO_SPACE;
    }
    fprintf(stderr, PROG ": %s: fallocate: %s\n", a->target, strerror(err));
    return TOOL_EXIT_FAILURE;
}

/* --sparse: the metadata that is written (superblock, MMP and backup
 * blocks, journal, the two bitmaps, the inode table's first block with
 * the root inode, the root leaf) is allocated all the same, so that a full
 * host can never stop a commit (docs/ROBUSTNESS.md). The rest of the inode
 * table is reserved by the driver, a block at a time, when it first
 * allocates an inode there, and the block bitmap's room for growth only by
 * mmapfs-resize: a sparse image of 1 TiB takes about 150 MiB of the host
 * at mkfs, not the 17 GiB of its whole metadata region. 0 or the exit
 * status (message printed). */
static int reserve_metadata(int fd, const struct mkfs_geometry *g, const struct mkfs_args *a)
{
    const uint64_t ranges[][2] = {
        { 0, g->block_bitmap_start + g->block_bitmap_blocks },
        { g->inode_bitmap_start, g->inode_bitmap_blocks },
        { g->inode_table_start, 1 },
        { g->root_dir_block, 1 },
    };
    uint64_t blocks = 0;
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
        blocks += ranges[i][1];
    int r = host_space_check(fd, blocks * MMAPFS_BLOCK_SIZE, a);
    if (r)
        return r;
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        if (fallocate(fd, 0, (off_t)(ranges[i][0] * MMAPFS_BLOCK_SIZE),
                      (off_t)(ranges[i][1] * MMAPFS_BLOCK_SIZE)) == 0)
            continue;
        if (errno == EOPNOTSUPP || errno == ENOSYS)
            return 0;
        if (errno == ENOSPC || errno == EDQUOT) {
            fprintf(stderr, PROG ": %s: not enough space for the %" PRIu64 " bytes of "
                    "journal and metadata\n", a->target, blocks * MMAPFS_BLOCK_SIZE);
            return TOOL_EXIT_NO_SPACE;
        }
        fprintf(stderr, PROG ": %s: fallocate: %s\n", a->target, strerror(errno));
        return TOOL_EXIT_FAILURE;
    }
    return 0;
}

/* An existing image file: the new inode table's range is punched out
 * (zeros) once the space checks have passed, before anything is written.
 * mkfs does not write the inode table, and a record of the filesystem
 * formatted there before looks live to fsck and to the inode allocator
 * when it was created within the second before this mkfs (the test
 * "created since mkfs" has one second of slack for the kernel's coarse
 * clock): a reformat right after a run left "inode N in use but free in
 * the inode bitmap" on the fresh image, and its first create marked the
 * image as damaged. The range is then allocated again, as zeros: all of
 * it, or with --sparse the block reserve_metadata took (the driver
 * reserves the others when it first uses them). A block device keeps its
 * old records (zeroing could write gigabytes), as does a host filesystem
 * that cannot punch holes: for them, outwait_old_records. *cleared is set
 * when the range was cleared. 0 or the exit status (message printed). */
static int clear_inode_table(int fd, const struct mkfs_geometry *g, const struct mkfs_args *a,
                             int *cleared)
{
    off_t off = (off_t)(g->inode_table_start * MMAPFS_BLOCK_SIZE);
    off_t len = (off_t)(g->inode_table_blocks * MMAPFS_BLOCK_SIZE);
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) == 0 &&
        fallocate(fd, 0, off, a->sparse ? (off_t)MMAPFS_BLOCK_SIZE : len) == 0) {
        *cleared = 1;
        return 0;
    }
    int e = errno;
    if (e == EOPNOTSUPP || e == ENOSYS)
        return 0;       /* outwait_old_records instead */
    fprintf(stderr, PROG ": %s: fallocate (clearing the inode table): %s\n", a->target,
            strerror(e));
    return e == ENOSPC || e == EDQUOT ? TOOL_EXIT_NO_SPACE : TOOL_EXIT_FAILURE;
}

/* The target keeps the records of the mmapfs formatted there before (not
 * cleared by clear_inode_table): waits until a mkfs_time at which none of
 * them looks live (fs_mkfs_old_records_until), at most about 2 s, and
 * only right after that filesystem was last used. start: the real time
 * when mkfs began. */
static void outwait_old_records(int fd, uint64_t bytes, time_t start)
{
    uint64_t until = fs_mkfs_old_records_until(fd, bytes, (uint64_t)start);
    struct timespec now;

    for (;;) {
        clock_gettime(CLOCK_REALTIME, &now);
        if ((uint64_t)now.tv_sec >= until || (uint64_t)now.tv_sec + 3 < until)
            return;     /* done, or a clock that went back: do not hang */
        struct timespec rest = { 0, 1000000000L - now.tv_nsec };
        nanosleep(&rest, NULL);
    }
}

/* Explains a failed stat, open or create of the target (errno e); returns
 * the exit status. */
static int target_error(const struct mkfs_args *a, const char *what, int e)
{
    if (e == EBUSY) {
        fprintf(stderr, PROG ": %s: the device is in use (mounted?): unmount it first\n",
                a->target);
        return TOOL_EXIT_IN_USE;
    }
    if (e == EROFS || e == EACCES || e == EPERM || e == ETXTBSY)
        fprintf(stderr, PROG ": %s: cannot %s it (%s): give a target you may write\n",
                a->target, what, strerror(e));
    else
        fprintf(stderr, PROG ": %s: cannot %s it: %s\n", a->target, what, strerror(e));
    return TOOL_EXIT_TARGET_ACCESS;
}

int main(int argc, char **argv)
{
    struct mkfs_args a;
    int r = parse_args(argc, argv, &a);
    if (r)
        return r > 0 ? TOOL_EXIT_OK : -r;

    int created = 0, extended = 0, is_blk = 0, fd = -1, ret = TOOL_EXIT_FAILURE;
    int formatting = 0;     /* the old image is being overwritten */
    int cleared = 0;        /* its inode table was cleared */
    struct timespec start;
    clock_gettime(CLOCK_REALTIME, &start);
    off_t old_size = 0;
    struct mmio *io = NULL;
    struct mmp *mmp = NULL;
    struct stat st;

    if (stat(a.target, &st) == 0) {
        if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
            fprintf(stderr, PROG ": %s: %s: give an image file (created if missing) or a "
                    "block device\n", a.target,
                    S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file or block device");
            return TOOL_EXIT_TARGET_KIND;
        }
        /* O_EXCL on a block device fails if it is mounted or claimed */
        fd = open(a.target, O_RDWR | O_CLOEXEC | (S_ISBLK(st.st_mode) ? O_EXCL : 0));
        if (fd < 0)
            return target_error(&a, "open", errno);
        int ro_device = 0;
        if (S_ISBLK(st.st_mode) && ioctl(fd, BLKROGET, &ro_device) == 0 && ro_device) {
            close(fd);      /* a read-only device may still open read-write */
            return target_error(&a, "write", EROFS);
        }
        old_size = st.st_size;
        is_blk = S_ISBLK(st.st_mode);
    } else if (errno == ENOENT) {
        if (!a.size) {
            fprintf(stderr, PROG ": %s does not exist: give its size with -s SIZE\n", a.target);
            return TOOL_EXIT_USAGE;
        }
    } else {
        return target_error(&a, "reach", errno);
    }

    /* the size to use */
    uint64_t size = a.size;
    if (fd >= 0 && !is_blk && !size) {
        size = (uint64_t)st.st_size;
        if (!size) {
            fprintf(stderr, PROG ": %s is empty: give its size with -s SIZE\n", a.target);
            ret = TOOL_EXIT_USAGE;
            goto out;
        }
    }
    if (is_blk) {
        uint64_t dev = 0;
        if (ioctl(fd, BLKGETSIZE64, &dev)) {
            fprintf(stderr, PROG ": %s: cannot get the device size: %s\n", a.target,
                    strerror(errno));
            goto out;
        }
        if (size > dev) {
            fprintf(stderr, PROG ": %s: the device has only %" PRIu64 " bytes, -s asks for %"
                    PRIu64 ": give a smaller -s or none\n", a.target, dev, size);
            ret = TOOL_EXIT_TARGET_KIND;
            goto out;
        }
        if (!size)
            size = dev;
        old_size = (off_t)dev;     /* the old filesystem's reach */
    }
    struct fs_format_options opt = {
        .size = size & ~(uint64_t)(MMAPFS_BLOCK_SIZE - 1),
        .inodes = a.inodes,
        .journal_blocks = a.journal,
        .label = a.label,
        .mmp = a.mmp < 0 ? is_blk : a.mmp,
        .mmp_interval = a.mmp_interval,
        .no_inode_data = a.no_inode_data,
        .no_inode_xattr = a.no_inode_xattr,
    };
    struct mkfs_geometry geo;
    if (fs_mkfs_geometry(size, &opt, &geo)) {
        ret = explain_geometry(size, &opt, &a);
        goto out;
    }

    if (fd >= 0) {
        if (fs_lock_image(fd, FS_LOCK_WAIT_MS)) {
            fprintf(stderr, PROG ": %s is in use (mounted, or being checked): "
                    "unmount it first\n", a.target);
            ret = TOOL_EXIT_IN_USE;
            goto out;
        }
        r = claim_mmp(fd, &a, &st, &mmp);
        if (!r)
            r = check_signature(fd, &a);
        if (r) {
            ret = -r;
            goto out;
        }
    } else {
        fd = open(a.target, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0) {
            ret = target_error(&a, "create", errno);
            goto out;
        }
        created = 1;
        flock(fd, LOCK_EX | LOCK_NB);
    }

    extended = !is_blk && !created && (uint64_t)old_size < opt.size;
    if (!is_blk) {
        r = a.sparse ? reserve_metadata(fd, &geo, &a)
                     : preallocate(fd, opt.size, &a);
        if (!r && !created) {
            formatting = 1;
            r = clear_inode_table(fd, &geo, &a, &cleared);
        }
        if (r) {
            ret = r;
            goto out;
        }
    }

    if (!created && !cleared)
        outwait_old_records(fd, (uint64_t)old_size, start.tv_sec);

    int err = mmio_open(&io, a.target, opt.size, 0, NULL);
    if (err) {
        if (err == -EFBIG) {
            fprintf(stderr, PROG ": %s: no file of %" PRIu64 " bytes is allowed here (the "
                    "host filesystem's largest file, or the file size limit, ulimit -f): "
                    "choose a smaller -s\n", a.target, opt.size);
            ret = TOOL_EXIT_TARGET_KIND;
        } else if (err == -ENOMEM) {
            fprintf(stderr, PROG ": %s: cannot map %" PRIu64 " bytes: the image is mapped "
                    "whole, and this machine's address space or memory limits refuse "
                    "that size: choose a smaller -s\n", a.target, opt.size);
            ret = TOOL_EXIT_TARGET_KIND;
        } else {
            fprintf(stderr, PROG ": %s: cannot open: %s\n", a.target,
                    err == -ENOSPC ? "device smaller than the requested size"
                                   : strerror(-err));
        }
        io = NULL;
        goto out;
    }
    formatting = 1;
    err = fs_format(io, &opt);
    if (err) {
        fprintf(stderr, PROG ": %s: format failed: %s\n", a.target, strerror(-err));
        if (err == -ENOSPC)
            ret = TOOL_EXIT_NO_SPACE;
        goto out;
    }
    if (!a.quiet)
        print_summary(io, &a);
    mmio_close(io);
    io = NULL;
    ret = TOOL_EXIT_OK;
out:
    if (io)
        mmio_close(io);
    fs_mkfs_release_mmp(mmp, formatting);
    if (ret && created)
        unlink(a.target);
    else if (ret && extended && ftruncate(fd, old_size))
        fprintf(stderr, PROG ": %s: could not shrink back to %lld bytes\n", a.target,
                (long long)old_size);
    if (fd >= 0)
        close(fd);
    return ret;
}
