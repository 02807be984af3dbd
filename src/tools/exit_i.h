/*
 * Exit status of mmapfs (the mount daemon) and mkfs.mmapfs: one number per
 * kind of refusal, so that scripts can tell them apart; the message (one
 * line on stderr) names the problem and what to do. Listed in the EXIT
 * STATUS sections of docs/man/mmapfs.8 and docs/man/mkfs.mmapfs.8.
 * fsck.mmapfs keeps the fsck(8) bits instead (src/fsck/fsck.h).
 */
#ifndef MMAPFS_TOOLS_EXIT_I_H
#define MMAPFS_TOOLS_EXIT_I_H

#include <errno.h>
#include <stdio.h>
#include <string.h>

enum tool_exit {
    TOOL_EXIT_OK = 0,
    TOOL_EXIT_FAILURE = 1,       /* anything else: I/O error, the mount or format failed */
    TOOL_EXIT_USAGE = 2,         /* unknown option, bad option value, missing or
                                  * extra argument */
    TOOL_EXIT_TARGET_ACCESS = 3, /* TARGET missing, or cannot be read, written or
                                  * created (permissions, read-only media) */
    TOOL_EXIT_TARGET_KIND = 4,   /* TARGET is not an image file or block device
                                  * (a directory ...), is too small, or (mount) is
                                  * not an mmapfs filesystem this version mounts */
    TOOL_EXIT_IN_USE = 5,        /* TARGET mounted or locked by another process */
    TOOL_EXIT_MOUNT_POINT = 6,   /* mount: MOUNTPOINT missing, not a directory,
                                  * or already a mount point */
    TOOL_EXIT_CORRUPT = 7,       /* mount: the filesystem is corrupt (fsck.mmapfs) */
    TOOL_EXIT_EXISTING = 8,      /* mkfs: TARGET holds a filesystem (use -f) */
    TOOL_EXIT_NO_SPACE = 9,      /* mkfs: no room to preallocate the image */
    TOOL_EXIT_SHRINK = 10,       /* mmapfs-resize: SIZE below the current size */
    TOOL_EXIT_TOO_BIG = 11,      /* mmapfs-resize: no room for the larger bitmap */
};

/* Exit status for an error of fs_offline_open (mmapfs-trim, mmapfs-resize). */
static inline int tool_exit_offline(int err)
{
    switch (err) {
    case -EBUSY: return TOOL_EXIT_IN_USE;
    case -EUCLEAN: return TOOL_EXIT_CORRUPT;
    /* EISDIR, ENOTDIR: the open of TARGET, as mkfs.mmapfs tells them */
    case -EINVAL: case -EOPNOTSUPP: case -EFBIG: case -EISDIR: return TOOL_EXIT_TARGET_KIND;
    case -ENOENT: case -ENOTDIR: case -EACCES: case -EPERM: case -EROFS:
        return TOOL_EXIT_TARGET_ACCESS;
    default: return TOOL_EXIT_FAILURE;
    }
}

/* One line for an option getopt refused (call getopt with opterr = 0 and
 * an optstring that starts with ':'): c is what getopt returned (':' for
 * a missing value, '?' for an unknown option), opt its optopt, word the
 * argument that held it (argv[optind - 1]). */
static inline void tool_bad_option(const char *prog, int c, int opt, const char *word)
{
    char name[3] = { '-', (char)opt, 0 };
    int is_long = word && word[0] == '-' && word[1] == '-';
    const char *what = !is_long && opt > ' ' && opt < 127 ? name : word;
    const char *eq = is_long ? strchr(word, '=') : NULL;
    if (c == ':')
        fprintf(stderr, "%s: option %s needs a value (see %s --help)\n", prog, what, prog);
    else if (eq && opt)     /* a known long flag given a value: --dry-run=3 */
        fprintf(stderr, "%s: option %.*s takes no value (see %s --help)\n", prog,
                (int)(eq - word), word, prog);
    else
        fprintf(stderr, "%s: unknown option %s (see %s --help)\n", prog, what, prog);
}

#endif
