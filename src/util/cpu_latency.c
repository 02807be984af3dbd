/*
 * cpu_latency.c — the CPU latency hold (cpu_latency.h).
 *
 * /dev/cpu_dma_latency is the kernel's PM QoS interface for a process
 * that needs short wake-up latencies: each open descriptor is one request;
 * writing a 32-bit value sets it (microseconds; -1 is the default, no
 * constraint); closing it, or the process's end, drops it. The cpuidle
 * governors honour the lowest request: at 0 an idle CPU polls its run
 * queue (and the kernel wakes a thread there by setting a flag) instead
 * of halting, which on a VM means leaving the guest until an interrupt
 * comes back through the hypervisor.
 */
#include "util/cpu_latency.h"

#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int mfs_cpu_latency_open(struct mfs_cpu_latency *l, const char *path, unsigned hold_ticks)
{
    /* the counters stay: other threads may read them meanwhile */
    l->fd = -1;
    l->hold_ticks = hold_ticks;
    l->active_run = l->quiet_run = 0;
    l->failed = 0;
    __atomic_store_n(&l->held, 0, __ATOMIC_RELAXED);
    if (hold_ticks == 0)
        return 0;
    l->fd = open(path, O_WRONLY | O_CLOEXEC);
    return l->fd < 0 ? -errno : 0;
}

/* Writes the request's new value; on failure closes it for good. */
static int set_value(struct mfs_cpu_latency *l, int32_t us)
{
    ssize_t n = write(l->fd, &us, sizeof(us));

    if (n == (ssize_t)sizeof(us))
        return 1;
    l->failed = n < 0 ? errno : EIO;
    mfs_cpu_latency_close(l);
    return -l->failed;
}

static int take(struct mfs_cpu_latency *l)
{
    int res = set_value(l, 0);

    if (res > 0) {
        __atomic_store_n(&l->since_ns, mono_ns(), __ATOMIC_RELAXED);
        __atomic_store_n(&l->held, 1, __ATOMIC_RELEASE);
        __atomic_add_fetch(&l->holds, 1, __ATOMIC_RELAXED);
    }
    return res;
}

/* Ends the current hold in the counters. */
static void end_hold(struct mfs_cpu_latency *l)
{
    __atomic_store_n(&l->held, 0, __ATOMIC_RELAXED);
    __atomic_add_fetch(&l->held_ns, mono_ns() - l->since_ns, __ATOMIC_RELEASE);
}

int mfs_cpu_latency_release(struct mfs_cpu_latency *l)
{
    if (l->fd < 0 || !l->held)
        return 0;
    end_hold(l);
    return set_value(l, -1);
}

int mfs_cpu_latency_tick(struct mfs_cpu_latency *l, int active)
{
    if (l->fd < 0)
        return 0;
    if (active) {
        l->quiet_run = 0;
        if (l->active_run < MFS_CPU_LATENCY_TAKE_TICKS)
            l->active_run++;
        if (!l->held && l->active_run >= MFS_CPU_LATENCY_TAKE_TICKS)
            return take(l);
        return 0;
    }
    l->active_run = 0;
    if (l->quiet_run < l->hold_ticks)
        l->quiet_run++;
    if (l->held && l->quiet_run >= l->hold_ticks)
        return mfs_cpu_latency_release(l);
    return 0;
}

void mfs_cpu_latency_close(struct mfs_cpu_latency *l)
{
    if (l->held)
        end_hold(l);
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
}

void mfs_cpu_latency_counters(const struct mfs_cpu_latency *l, uint64_t *holds,
                              uint64_t *held_us)
{
    uint64_t ns = 0;

    /* a hold that ends in between is counted in neither or, at worst, in
     * both reads: a metric off by one hold's length for one update */
    if (__atomic_load_n(&l->held, __ATOMIC_ACQUIRE))
        ns = mono_ns() - __atomic_load_n(&l->since_ns, __ATOMIC_RELAXED);
    ns += __atomic_load_n(&l->held_ns, __ATOMIC_ACQUIRE);
    *holds = __atomic_load_n(&l->holds, __ATOMIC_RELAXED);
    *held_us = ns / 1000u;
}
