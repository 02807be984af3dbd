/*
 * fsck_report.h — runs the fsck core over an image and keeps its report,
 * for the unit tests of the backup superblock and of truncation under
 * fsck. Include after cmocka and fs/check.h.
 */
#ifndef MMAPFS_TESTS_FSCK_REPORT_H
#define MMAPFS_TESTS_FSCK_REPORT_H

#include <stdio.h>
#include <stdlib.h>

#include "fsck/fsck.h"

/* fs_check(path) with mode and -f; returns its exit code and the report
 * in *report (the caller frees it) if report is not NULL. The report goes
 * to stderr too with TEST_FSCK_VERBOSE=1. */
static inline int fsck_report(const char *path, enum fs_check_mode mode, char **report)
{
    struct fs_check_options o = { .mode = mode, .force = 1 };
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    int r = fs_check(path, &o, f);
    fclose(f);
    if (getenv("TEST_FSCK_VERBOSE"))
        fprintf(stderr, "--- fsck (mode %d) %s -> %d\n%s", (int)mode, path, r, buf);
    if (report)
        *report = buf;
    else
        free(buf);
    return r;
}

#endif
