/*
 * metrics_text.h — parsing the "name value" metrics text of a mount and
 * printing it in the Prometheus text format (metrics_text.c).
 */
#ifndef MMAPFS_UTIL_METRICS_TEXT_H
#define MMAPFS_UTIL_METRICS_TEXT_H

#include <stdio.h>

/* One "name value" line of the metrics text. */
struct metric {
    char name[128];
    char value[64];
};

/* Parses the next "name value" line of the NUL-terminated text at *pos
 * into m and moves *pos past it; lines that are not a name and a number
 * are skipped. Returns 1 if a metric was found, 0 at the end of the text. */
int mfs_metrics_next(const char **pos, struct metric *m);

/* Prints the metrics text to out in the Prometheus text exposition format:
 * names prefixed "mmapfs_", microsecond counters as *_seconds, counters
 * ending in _total, the fuse_req_* counts as one family with an "op"
 * label, # HELP and # TYPE lines, and the label mountpoint="mnt" on every
 * sample. Returns the number of metrics printed. */
int mfs_metrics_print_prometheus(FILE *out, const char *text, const char *mnt);

#endif
