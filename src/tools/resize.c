/*
 * mmapfs-resize — grows an unmounted mmapfs filesystem into a larger image
 * file or block device. Thin main over fs_grow (src/fs/resize.c); see
 * docs/man/mmapfs-resize.8 and docs/FORMAT.md, "Growing".
 *
 *   mmapfs-resize [-n] TARGET [SIZE]
 *
 * SIZE: bytes, with K/M/G/T; omitted: the whole device, or the image
 * file's current size (after the user made it larger, e.g. truncate -s).
 * An image file smaller than SIZE is extended (sparse).
 *
 * Each step of fs_grow is an observation point (src/io/observe.h,
 * MMIO_AT_GROW_STEP), where a test build of this tool stops to leave what
 * a crash there would (tests/integration/resize_stop.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/offline.h"
#include "io/observe.h"
#include "tools/cli_i.h"
#include "tools/exit_i.h"
#include "util/progress.h"
#include "util/size.h"

#define PROG "mmapfs-resize"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: " PROG " [-n] [-q] TARGET [SIZE]\n"
        "Grows the unmounted mmapfs filesystem on TARGET (image file or block\n"
        "device) to SIZE bytes (suffixes K, M, G, T); without SIZE to the whole\n"
        "device or image file. An image file is extended if smaller. Shrinking\n"
        "is not supported.\n"
        "  -n   show what would be done, change nothing\n"
        "  -q   no progress line (shown on a terminal while a large new inode\n"
        "       table of a block device is zeroed)\n"
        "  -V   print the version\n"
        "  -h   this help\n"
        "exit status: 0 grown (or already that size), 1 failure, 2 usage,\n"
        "  3 TARGET cannot be opened, 4 not mmapfs, 5 mounted or in use,\n"
        "  7 corrupt or not cleanly unmounted, 10 SIZE smaller than the\n"
        "  filesystem, 11 no room for a bitmap that large\n");
}

/* fs_grow finished step: an observation point. */
static void step_done(enum fs_grow_step step, void *ctx)
{
    struct fs_offline *o = ctx;
    (void)mmio_observe_at(o->io, MMIO_AT_GROW_STEP, (uint64_t)step, 0);
}

static double gib(uint64_t blocks)
{
    return (double)blocks * MMAPFS_BLOCK_SIZE / (1u << 30);
}

int main(int argc, char **argv)
{
    int dry_run = 0, quiet = 0;
    struct mfs_progress progress;
    uint64_t size = 0;
    char msg[512];
    struct fs_offline o;
    struct fs_grow_plan plan;

    const struct tool_flag flags[] = {
        { 'n', "dry-run", &dry_run },
        { 'q', NULL, &quiet },
        { 0, NULL, NULL },
    };
    int status = tool_parse_flags(PROG, argc, argv, flags, usage);
    if (status >= 0)
        return status;
    if (optind >= argc || argc - optind > 2) {
        fprintf(stderr, PROG ": %s: usage: " PROG " [-n] [-q] TARGET [SIZE] (" PROG
                " --help)\n", optind >= argc ? "no TARGET given" : "too many arguments");
        return TOOL_EXIT_USAGE;
    }
    const char *target = argv[optind];
    if (optind + 1 < argc &&
        (mfs_parse_size(argv[optind + 1], &size) || size < MMAPFS_BLOCK_SIZE)) {
        fprintf(stderr, PROG ": SIZE %s: expected bytes with an optional K, M, G or "
                "T suffix (e.g. 20G)\n", argv[optind + 1]);
        return TOOL_EXIT_USAGE;
    }

    int err = fs_offline_open(&o, target, msg, sizeof(msg));
    if (err) {
        fprintf(stderr, PROG ": %s: %s\n", target, msg);
        return tool_exit_offline(err);
    }
    mfs_progress_init(&progress, !quiet && isatty(STDERR_FILENO) ? stderr : NULL, PROG);
    o.progress = &progress;
    if (!size)
        size = o.image_bytes;
    if (!o.regular && size > o.image_bytes) {
        fprintf(stderr, PROG ": %s: the device has %llu bytes, fewer than %llu: a "
                "device cannot grow (enlarge the volume first)\n", target,
                (unsigned long long)o.image_bytes, (unsigned long long)size);
        fs_offline_close(&o);
        return TOOL_EXIT_TOO_BIG;
    }
    err = fs_grow_plan(&o, size, &plan);
    if (err == -EINVAL) {
        fprintf(stderr, PROG ": %s: %llu bytes is smaller than the filesystem "
                "(%llu blocks, %llu bytes): shrinking is not supported\n", target,
                (unsigned long long)size, (unsigned long long)plan.old_blocks,
                (unsigned long long)(plan.old_blocks * MMAPFS_BLOCK_SIZE));
        fs_offline_close(&o);
        return TOOL_EXIT_SHRINK;
    }
    if (err == -EFBIG) {
        fprintf(stderr, PROG ": %s: cannot grow to %.1f GiB: the block bitmap has room "
                "for %.1f GiB at most (the journal has no blocks left to give: "
                "make a new filesystem and copy the files)\n", target,
                gib(plan.new_blocks), gib(plan.max_blocks));
        fs_offline_close(&o);
        return TOOL_EXIT_TOO_BIG;
    }
    if (plan.new_blocks == plan.old_blocks) {
        printf("%s: already %llu blocks (%.2f GiB): nothing to do\n", target,
               (unsigned long long)plan.old_blocks, gib(plan.old_blocks));
        fs_offline_close(&o);
        return TOOL_EXIT_OK;
    }
    printf("%s: %llu -> %llu blocks (%.2f -> %.2f GiB); block bitmap %llu blocks at "
           "%llu%s\n", target, (unsigned long long)plan.old_blocks,
           (unsigned long long)plan.new_blocks, gib(plan.old_blocks), gib(plan.new_blocks),
           (unsigned long long)plan.bitmap_blocks, (unsigned long long)plan.bitmap_start,
           plan.relocated ? " (moved into the journal's tail)" : " (in place)");
    if (plan.relocated)
        printf("%s: journal %llu -> %llu blocks\n", target,
               (unsigned long long)o.sb.journal_blocks,
               (unsigned long long)plan.journal_blocks);
    if (plan.itab_blocks)
        printf("%s: inodes %llu -> %llu (table extent of %llu blocks at %llu; inode "
               "bitmap %llu blocks at %llu%s)\n", target,
               (unsigned long long)plan.old_inodes, (unsigned long long)plan.new_inodes,
               (unsigned long long)plan.itab_blocks, (unsigned long long)plan.itab_start,
               (unsigned long long)plan.ibm_blocks, (unsigned long long)plan.ibm_start,
               plan.ibm_moved ? ", moved" : "");
    else
        printf("%s: inodes stay %llu\n", target, (unsigned long long)plan.old_inodes);
    if (dry_run) {
        fs_offline_close(&o);
        return TOOL_EXIT_OK;
    }
    err = fs_grow(&o, size, &plan, step_done, &o);
    fs_offline_close(&o);
    if (err) {
        fprintf(stderr, PROG ": %s: growing failed: %s (the filesystem keeps its old "
                "size)\n", target, strerror(-err));
        return TOOL_EXIT_FAILURE;
    }
    printf("%s: grown to %llu blocks\n", target, (unsigned long long)plan.new_blocks);
    return TOOL_EXIT_OK;
}
