/*
 * mmio_sync.c — durability: immediate flushes, the sticky failure state,
 * and the delayed-sync loop that batches mmio_sync_delayed callers into
 * shared syncs (group commit). The algorithm and its reasoning are in
 * docs/ENGINE.md, "Delayed syncs".
 *
 * Generations: the loop numbers its syncs 1, 2, 3, ... gen_started is the
 * latest begun, gen_done the latest completed (they complete in order). A
 * caller arriving when gen_started == g needs generation g + 1: that sync
 * has not begun yet (it begins under mu, after the caller's registration)
 * so it covers every write the caller made before calling. If sync g is in
 * flight the caller therefore rides g + 1, never g.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "io/mmio_i.h"

/* Adds a, b without wrapping (a huge sync_delay_us must not overflow). */
static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

int mmio_flush(struct mmio *io)
{
    uint64_t t0;
    int err = 0;

    if (io->read_only)
        return 0;           /* nothing of ours can be dirty */
    pthread_mutex_lock(&io->flush_mu);
    if (__atomic_load_n(&io->failed, __ATOMIC_ACQUIRE)) {
        err = -EIO;
        goto out;
    }

    /* changes is read before the flush: whatever it counts is in the page
     * cache already and this flush covers it (mmio_unsynced) */
    uint64_t changes = __atomic_load_n(&io->changes, __ATOMIC_SEQ_CST);
    const struct mmio_observer *obs = mmio_observer_get();
    t0 = mmio_now_ns();
    if (obs && obs->before_sync)
        err = obs->before_sync(obs->ctx, io);
    if (!err) {
        /* One fdatasync for both backends. On Linux the pages dirtied
         * through a shared file mapping are tracked in the page cache
         * (write-notify marks them dirty at the first store), so
         * fdatasync writes them back like pwrite's, then commits block
         * allocation and flushes the device cache. msync(MS_SYNC) is the
         * same range fdatasync in the kernel: calling both, as the first
         * version did, cost a second device flush per sync (measured:
         * docs/BENCH.md). */
        while (!err && fdatasync(io->fd)) {
            if (errno != EINTR)
                err = -errno;
        }
    }

    mmio_metric_add(&io->m.syncs, 1);
    mmio_metric_add(&io->m.sync_us, (mmio_now_ns() - t0) / 1000);
    if (err)    /* sticky: pages may now be marked clean, a retry could lie */
        __atomic_store_n(&io->failed, 1, __ATOMIC_RELEASE);
    else        /* flushes are serialised: synced only grows */
        __atomic_store_n(&io->synced, changes, __ATOMIC_SEQ_CST);
    if (obs && obs->after_sync)
        obs->after_sync(obs->ctx, io, err);
out:
    pthread_mutex_unlock(&io->flush_mu);
    return err;
}

int mmio_sync(struct mmio *io)
{
    if (!io)
        return -EINVAL;
    return mmio_flush(io);
}

/* Converts a CLOCK_MONOTONIC time in ns to a timespec for timedwait. */
static struct timespec ns_to_ts(uint64_t ns)
{
    struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
    return ts;
}

/* With a window set, lets the forming batch wait for company (mu held):
 * only if fewer callers are pending than recent history says to expect,
 * and at most min(window, average sync time); it ends as soon as the
 * expected number is pending. Callers wake the loop on each arrival while
 * company_wait is set. A lone thread never waits (docs/ENGINE.md,
 * "Waiting for company"). */
static void wait_for_company(struct mmio *io)
{
    uint64_t start = mmio_now_ns();
    uint64_t pending = io->batch_n;
    uint64_t expected = mmio_company_expected(io, start, pending);
    uint64_t max_wait = mmio_company_wait_ns(io);

    if (pending >= expected || !max_wait)
        return;
    uint64_t deadline = sat_add(start, max_wait);
    struct timespec ts = ns_to_ts(deadline);
    uint64_t now = start;
    io->company_wait = 1;
    while (!io->stop && io->batch_n < expected && now < deadline) {
        pthread_cond_timedwait(&io->loop_cv, &io->mu, &ts);
        now = mmio_now_ns();
    }
    io->company_wait = 0;
    mmio_metric_add(&io->m.sync_company_waits, 1);
    mmio_metric_add(&io->m.sync_company_wait_us, (now - start) / 1000);
    mmio_metric_add(&io->m.sync_company_joined, io->batch_n - pending);
}

/* The delayed-sync loop: one iteration per sync. Exits once stop is set
 * and no request is pending, so mmio_close never strands a caller. */
static void *loop_main(void *arg)
{
    struct mmio *io = arg;

    pthread_mutex_lock(&io->mu);
    for (;;) {
        while (!io->stop && io->gen_wanted <= io->gen_started)
            pthread_cond_wait(&io->loop_cv, &io->mu);
        if (io->gen_wanted <= io->gen_started)
            break;      /* stopping, nothing pending */
        mmio_metric_add(&io->m.sync_background_loops, 1);

        if (io->sync_delay_us)
            wait_for_company(io);

        uint64_t now = mmio_now_ns();
        uint64_t gen = ++io->gen_started;  /* later arrivals need gen + 1 */
        uint64_t callers = io->batch_n;
        uint64_t longest = callers ? (now - io->batch_first_ns) / 1000 : 0;
        uint64_t shortest = callers ? (now - io->batch_last_ns) / 1000 : 0;
        io->batch_n = 0;
        pthread_mutex_unlock(&io->mu);

        mmio_metric_add(&io->m.sync_longest_delay_us, longest);
        mmio_metric_add(&io->m.sync_shortest_delay_us, shortest);
        int err = mmio_flush(io);
        uint64_t end = mmio_now_ns();

        pthread_mutex_lock(&io->mu);
        if (err && !io->gen_failed)
            io->gen_failed = gen;
        io->gen_done = gen;
        mmio_company_note_sync(io, callers, end - now);
        pthread_cond_broadcast(&io->done_cv);
    }
    pthread_mutex_unlock(&io->mu);
    return NULL;
}

int mmio_loop_start(struct mmio *io)
{
    pthread_condattr_t ca;
    sigset_t all, old;
    int err;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&io->mu, NULL);
    pthread_cond_init(&io->loop_cv, &ca);
    pthread_cond_init(&io->done_cv, NULL);
    pthread_condattr_destroy(&ca);

    /* The loop thread takes no asynchronous signals: they belong to the
     * application's threads. It inherits the mask set around create. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    err = -pthread_create(&io->loop, NULL, loop_main, io);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        pthread_cond_destroy(&io->done_cv);
        pthread_cond_destroy(&io->loop_cv);
        pthread_mutex_destroy(&io->mu);
        return err;
    }
    io->loop_running = 1;
    return 0;
}

void mmio_loop_stop(struct mmio *io)
{
    if (!io->loop_running)
        return;
    pthread_mutex_lock(&io->mu);
    io->stop = 1;
    pthread_cond_signal(&io->loop_cv);
    pthread_mutex_unlock(&io->mu);
    pthread_join(io->loop, NULL);
    io->loop_running = 0;

    pthread_cond_destroy(&io->done_cv);
    pthread_cond_destroy(&io->loop_cv);
    pthread_mutex_destroy(&io->mu);
}

int mmio_sync_delayed(struct mmio *io)
{
    uint64_t need;
    int err;

    if (!io)
        return -EINVAL;
    mmio_metric_add(&io->m.sync_delayed, 1);

    pthread_mutex_lock(&io->mu);
    if (io->gen_failed || __atomic_load_n(&io->failed, __ATOMIC_ACQUIRE)) {
        err = -EIO;
        goto out;
    }
    need = io->gen_started + 1;     /* the first sync that has not begun */
    uint64_t now = mmio_now_ns();
    if (io->batch_n++ == 0)
        io->batch_first_ns = now;
    io->batch_last_ns = now;
    mmio_company_note_caller(io, now);
    if (io->gen_wanted < need) {
        io->gen_wanted = need;
        pthread_cond_signal(&io->loop_cv);
    } else if (io->company_wait) {
        pthread_cond_signal(&io->loop_cv);  /* company arrived */
    }
    while (io->gen_done < need)
        pthread_cond_wait(&io->done_cv, &io->mu);
    err = io->gen_failed && io->gen_failed <= need ? -EIO : 0;
out:
    pthread_mutex_unlock(&io->mu);
    return err;
}

int mmio_write_delayed_sync(struct mmio *io, const struct mmio_write *w, size_t n)
{
    struct mmio_merged m = {0};
    int err;

    if (!io || (n && !w))
        return -EINVAL;
    if (__atomic_load_n(&io->failed, __ATOMIC_ACQUIRE))
        return -EIO;
    for (size_t i = 0; i < n; i++) {     /* all or nothing on bad input */
        if (w[i].len && !w[i].data)
            return -EINVAL;
        if (!mmio_range_ok(io, w[i].off, w[i].len))
            return -ERANGE;
    }

    err = mmio_merge_writes(w, n, &m);
    if (err)
        return err;
    for (size_t i = 0; i < m.n; i++) {
        err = mmio_write_at(io, m.w[i].off, m.w[i].data, m.w[i].len);
        if (err)
            goto out;
    }
    err = mmio_sync_delayed(io);
out:
    mmio_merged_free(&m);
    return err;
}

/* ---- the delayed-sync loop's progress ------------------------------------ */

uint64_t mmio_loop_gen_started(struct mmio *io)
{
    pthread_mutex_lock(&io->mu);
    uint64_t g = io->gen_started;
    pthread_mutex_unlock(&io->mu);
    return g;
}

uint64_t mmio_loop_gen_done(struct mmio *io)
{
    pthread_mutex_lock(&io->mu);
    uint64_t g = io->gen_done;
    pthread_mutex_unlock(&io->mu);
    return g;
}
