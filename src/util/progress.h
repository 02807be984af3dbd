/*
 * progress.h — a progress line for long offline work (fsck's passes,
 * mmapfs-resize's inode table zeroing) on a terminal.
 *
 * "PROG: WHAT NN%" is rewritten in place ("\r") at most five times a
 * second, and only once the work has run for half a second, so quick runs
 * print nothing; mfs_progress_clear erases it (before any other line is
 * printed, and at the end). A progress whose out is NULL prints nothing:
 * the tools pass their terminal's stderr, or NULL when it is not a
 * terminal or with -q.
 */
#ifndef MMAPFS_UTIL_PROGRESS_H
#define MMAPFS_UTIL_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

struct mfs_progress {
    FILE *out;              /* NULL: silent */
    const char *prog;
    uint64_t start_ms;      /* 0: not started */
    uint64_t last_ms;       /* last line written, 0: none on screen */
    unsigned width;         /* characters of the line on screen */
};

/* out NULL makes every call below a no-op. */
void mfs_progress_init(struct mfs_progress *p, FILE *out, const char *prog);

/* done of total units of the work named what (a short phrase). */
void mfs_progress_update(struct mfs_progress *p, const char *what, uint64_t done,
                         uint64_t total);

/* Erases the line if one is shown; the next update may show it again. */
void mfs_progress_clear(struct mfs_progress *p);

#endif
