/*
 * recorder.h — the crash recorder: logs, beneath the filesystem, every page
 * of the image that changed between two engine flushes, and every flush
 * (barrier). Installed as the engine's observer (src/io/observe.h,
 * struct mmio_observer) by the recording mount daemon (record_main.c).
 * The log format and the reasoning are in docs/CRASH.md.
 */
#ifndef MMAPFS_CRASH_RECORDER_H
#define MMAPFS_CRASH_RECORDER_H

/* Page granularity of the record: the kernel writes mapped pages back
 * whole, one page at a time, in any order. */
#define CRASH_PAGE 4096u

/* Log file layout (all integers little-endian):
 *   file header  "MMCRLOG1", u64 page size, u64 image size
 *   barrier      "BARR", u32 0, u64 k, u64 n, n x u64 page index,
 *                n x page contents: the pages that differ from the image
 *                as of barrier k-1, taken just before flush k began
 *   completion   "DONE", u32 0, u64 k, i64 result of flush k (0 = durable)
 *   during       "DURG", u32 0, u64 k, u64 n, n x u64 page index, n x page:
 *                after a successful flush k, the pages that changed while
 *                it ran (written by other threads during msync/fdatasync;
 *                the kernel may have written them before k completed).
 *                They differ from barrier k's image and are logged again
 *                with barrier k+1.
 * Barrier 0 is the image at open time, written as base.img. */
#define CRASH_LOG_MAGIC "MMCRLOG1"

/* Installs the recorder as the engine observer; it records the first
 * engine opened afterwards into directory dir (created if missing):
 *   dir/base.img     the image as the engine opened it (sparse)
 *   dir/barriers.log the log above
 *   dir/synced       decimal count of completed barriers, replaced
 *                    atomically (rename) after each one, before the
 *                    flush returns to its caller
 *   dir/times        "k ns" per completed barrier k: CLOCK_MONOTONIC
 *                    time of its completion
 * Returns 0 or -errno (dir unusable). */
int crash_recorder_install(const char *dir);

#endif
