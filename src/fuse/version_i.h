/*
 * Code version of the mmapfs tools built from src/fuse and src/tools
 * (mmapfs, mmapfs-stat). The on-disk format version is a separate number:
 * MMAPFS_FORMAT_VERSION in src/fs/format.h.
 */
#ifndef MMAPFS_FUSE_VERSION_I_H
#define MMAPFS_FUSE_VERSION_I_H

#include <stdio.h>

#include "fs/format.h"

#ifndef MMAPFS_VERSION_STRING
#define MMAPFS_VERSION_STRING "0.1.0"
#endif

/* The -V line of the tools: "PROG VERSION (on-disk format N)". */
static inline void tool_print_version(const char *prog)
{
    printf("%s %s (on-disk format %u)\n", prog, MMAPFS_VERSION_STRING, MMAPFS_FORMAT_VERSION);
}

/* Name of the read-only virtual xattr on the root directory of a mount that
 * carries the metrics text (see docs/MOUNT.md). Shared by the FUSE layer
 * (which answers it) and mmapfs-stat (which reads it). */
#define MMAPFS_METRICS_XATTR "trusted.mmapfs.metrics"

#endif
