/*
 * mmapfs-trim — gives every free block of an unmounted mmapfs filesystem
 * back to the storage: holes in an image file (it becomes sparse again),
 * BLKDISCARD on a block device. Thin main over fs_trim (src/fs/trim.c);
 * see docs/man/mmapfs-trim.8. The mounted counterpart is -o discard.
 *
 *   mmapfs-trim [-v] TARGET
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fs/offline.h"
#include "tools/cli_i.h"
#include "tools/exit_i.h"

#define PROG "mmapfs-trim"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: " PROG " [-v] TARGET\n"
        "Gives every free block of the unmounted mmapfs filesystem on TARGET back\n"
        "to the storage (holes in an image file, BLKDISCARD on a block device).\n"
        "  -v   print what was given back\n"
        "  -V   print the version\n"
        "  -h   this help\n"
        "exit status: 0 done, 1 failure (also: TARGET cannot discard), 2 usage,\n"
        "  3 TARGET cannot be opened, 4 not mmapfs, 5 mounted or in use,\n"
        "  7 corrupt or not cleanly unmounted\n");
}

int main(int argc, char **argv)
{
    int verbose = 0;
    char msg[512];
    struct fs_offline o;
    uint64_t runs = 0, blocks = 0;

    const struct tool_flag flags[] = {
        { 'v', "verbose", &verbose },
        { 0, NULL, NULL },
    };
    int status = tool_parse_flags(PROG, argc, argv, flags, usage);
    if (status >= 0)
        return status;
    if (optind != argc - 1) {
        fprintf(stderr, PROG ": %s: usage: " PROG " [-v] TARGET\n",
                optind >= argc ? "no TARGET given" : "more than one TARGET given");
        return TOOL_EXIT_USAGE;
    }
    const char *target = argv[optind];
    int err = fs_offline_open(&o, target, msg, sizeof(msg));
    if (err) {
        fprintf(stderr, PROG ": %s: %s\n", target, msg);
        return tool_exit_offline(err);
    }
    err = fs_trim(&o, &runs, &blocks);
    uint64_t sb_free = o.sb.free_blocks;
    fs_offline_close(&o);
    if (err == -EUCLEAN) {
        fprintf(stderr, PROG ": %s: the block bitmap counts %llu free blocks, the cleanly "
                "unmounted superblock %llu: a bitmap is damaged, run fsck.mmapfs -y "
                "(nothing given back)\n", target, (unsigned long long)blocks,
                (unsigned long long)sb_free);
        return TOOL_EXIT_CORRUPT;
    }
    if (err == -EOPNOTSUPP) {
        fprintf(stderr, PROG ": %s: cannot discard (no hole punching on this file "
                "system, or the device does not support discard)\n", target);
        return TOOL_EXIT_FAILURE;
    }
    if (err) {
        fprintf(stderr, PROG ": %s: %s (after %llu blocks)\n", target, strerror(-err),
                (unsigned long long)blocks);
        return TOOL_EXIT_FAILURE;
    }
    if (verbose)
        printf("%s: %llu free blocks (%.1f MiB) in %llu runs given back\n", target,
               (unsigned long long)blocks, (double)blocks * MMAPFS_BLOCK_SIZE / (1u << 20),
               (unsigned long long)runs);
    return TOOL_EXIT_OK;
}
