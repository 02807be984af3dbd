/*
 * fsck core: checks (and for a few problems repairs) an mmapfs image.
 * Used by fsck.mmapfs (src/tools/fsck.c) and the unit tests. Reads the
 * metadata straight from the mapping; the checks are listed in
 * docs/man/fsck.mmapfs.8 and docs/FORMAT.md §14.
 */
#ifndef MMAPFS_FSCK_FSCK_H
#define MMAPFS_FSCK_FSCK_H

#include <stdio.h>

/* fsck(8) exit status bits. */
enum {
    FSCK_EXIT_OK          = 0,
    FSCK_EXIT_CORRECTED   = 1,
    FSCK_EXIT_REBOOT      = 2,   /* unused by mmapfs */
    FSCK_EXIT_UNCORRECTED = 4,
    FSCK_EXIT_OPERATIONAL = 8,
    FSCK_EXIT_USAGE       = 16,
    FSCK_EXIT_CANCELED    = 32,
};

enum fs_check_mode {
    FS_CHECK_NO = 0,     /* -n: report only; never writes (the journal is
                          * replayed into memory only) */
    FS_CHECK_YES = 1,    /* -y: repair what can be repaired */
    FS_CHECK_PREEN = 2,  /* -p: like -y; a clean filesystem is skipped without -f */
};

struct fs_check_options {
    enum fs_check_mode mode;
    int force;           /* -f: check even a clean filesystem in preen mode */
    int verbose;         /* -v: statistics and every error line (no cap) */
    FILE *progress;      /* a terminal for the passes' progress line, or NULL */
};

/* Checks the image at path: validates the superblock, replays the
 * journal, checks every structure, repairs the repairable problems unless
 * mode is FS_CHECK_NO. FS_CHECK_NO opens the image read-only and writes
 * nothing (the journal is replayed into memory); it takes a shared flock
 * and checks an image in use anyway, with a warning. The other modes take
 * the exclusive flock and refuse an image in use. Writes one line per
 * problem ("fsck.mmapfs: <what>: <details>") and a summary to report (may
 * be NULL: silent). Returns fsck(8) exit bits (FSCK_EXIT_*). */
int fs_check(const char *path, const struct fs_check_options *o, FILE *report);

#endif
