/* The CPU latency hold: while requests keep coming, ask the kernel that
 * idle CPUs poll instead of halting (a PM QoS CPU latency request of 0 us
 * through /dev/cpu_dma_latency), so that a caller waiting for its reply is
 * woken without waking a halted CPU; give the request back once requests
 * stop (docs/MOUNT.md, "Waking the caller").
 *
 * The caller feeds one tick at a time (the request loop's monitor, every
 * 0.5 ms while requests come; a longer tick of its counts as one when
 * active, as several short ones when quiet): active or not. The request is taken after
 * MFS_CPU_LATENCY_TAKE_TICKS active ticks in a row (a lone request takes
 * nothing) and given back after hold_ticks quiet ticks in a row. Only
 * changes are written: the kernel wakes every idle CPU on each one.
 *
 * Not thread-safe, except the counters (mfs_cpu_latency_counters). */
#ifndef MMAPFS_CPU_LATENCY_H
#define MMAPFS_CPU_LATENCY_H

#include <stdint.h>

#define MFS_CPU_LATENCY_DEV        "/dev/cpu_dma_latency"
#define MFS_CPU_LATENCY_TAKE_TICKS 2

struct mfs_cpu_latency {
    int fd;                 /* the PM QoS request; -1: none (off) */
    unsigned hold_ticks;    /* quiet ticks before it is given back */
    unsigned active_run, quiet_run;
    int held;
    int failed;             /* errno of the write that turned it off, or 0 */
    uint64_t holds;         /* times taken (atomic) */
    uint64_t held_ns;       /* time held, finished holds (atomic) */
    uint64_t since_ns;      /* CLOCK_MONOTONIC when the current hold began */
};

/* Opens the request at path (MFS_CPU_LATENCY_DEV; tests pass a file),
 * in a struct zeroed once before (the counters are kept, so that other
 * threads may read them at any time). hold_ticks 0 is off: nothing is
 * opened. Returns 0, or -errno when path
 * cannot be opened (then l is off: ticks do nothing). */
int mfs_cpu_latency_open(struct mfs_cpu_latency *l, const char *path, unsigned hold_ticks);

/* One tick: were requests served (or being served) during it? Returns 1
 * if the request was taken or given back by this tick, 0 if nothing
 * changed, -errno if the write failed: the request is then closed (the
 * kernel drops it) and l is off for good (l->failed). */
int mfs_cpu_latency_tick(struct mfs_cpu_latency *l, int active);

/* Gives the request back now if it is held (before the caller sleeps).
 * Same returns as mfs_cpu_latency_tick. */
int mfs_cpu_latency_release(struct mfs_cpu_latency *l);

/* Closes the request (the kernel drops it, held or not). */
void mfs_cpu_latency_close(struct mfs_cpu_latency *l);

/* Times taken, and microseconds held (the current hold included). */
void mfs_cpu_latency_counters(const struct mfs_cpu_latency *l, uint64_t *holds,
                              uint64_t *held_us);

#endif
