/*
 * mmio_company.c — the evidence the delayed-sync loop uses to decide
 * whether a batch should wait for more callers, and for how long (the
 * adaptive rule of docs/ENGINE.md, "Waiting for company"):
 *
 *   - which threads called mmio_sync_delayed lately (a small table of
 *     thread ids with the time of their last call),
 *   - how many callers each of the last few loop syncs served,
 *   - the average duration of a loop sync (moving average).
 *
 * Everything here runs with io->mu held; none of it blocks.
 */
#include "io/mmio_i.h"

/* The batching window in nanoseconds, saturated. */
static uint64_t window_ns(const struct mmio *io)
{
    uint64_t us = io->sync_delay_us;
    return us > UINT64_MAX / 1000u ? UINT64_MAX : us * 1000u;
}

void mmio_company_note_caller(struct mmio *io, uint64_t now_ns)
{
    struct mmio_company *c = &io->company;
    pthread_t self = pthread_self();
    unsigned oldest = 0;

    for (unsigned i = 0; i < c->n_callers; i++) {
        if (pthread_equal(c->callers[i].tid, self)) {
            c->callers[i].last_ns = now_ns;
            return;
        }
        if (c->callers[i].last_ns < c->callers[oldest].last_ns)
            oldest = i;
    }
    if (c->n_callers < MMIO_COMPANY_CALLERS)
        oldest = c->n_callers++;
    c->callers[oldest].tid = self;
    c->callers[oldest].last_ns = now_ns;
}

uint64_t mmio_company_expected(const struct mmio *io, uint64_t now_ns,
                               uint64_t pending)
{
    const struct mmio_company *c = &io->company;
    uint64_t distinct = 0, overlap = pending;
    /* a thread syncing in a loop calls again about one sync after its
     * previous call returned: remember callers for the window, and for at
     * least a few syncs even when the window is shorter than that */
    uint64_t horizon = window_ns(io);
    if (c->avg_sync_ns < UINT64_MAX / MMIO_COMPANY_HORIZON_SYNCS &&
        horizon < c->avg_sync_ns * MMIO_COMPANY_HORIZON_SYNCS)
        horizon = c->avg_sync_ns * MMIO_COMPANY_HORIZON_SYNCS;

    for (unsigned i = 0; i < MMIO_COMPANY_BATCHES; i++)
        if (c->batch_callers[i] > overlap)
            overlap = c->batch_callers[i];
    if (overlap < 2)
        return overlap;     /* callers never met: turn-takers are no company */
    for (unsigned i = 0; i < c->n_callers; i++)
        if (now_ns <= c->callers[i].last_ns ||
            now_ns - c->callers[i].last_ns <= horizon)
            distinct++;
    return distinct;
}

uint64_t mmio_company_wait_ns(const struct mmio *io)
{
    uint64_t w = window_ns(io);
    return io->company.avg_sync_ns < w ? io->company.avg_sync_ns : w;
}

void mmio_company_note_sync(struct mmio *io, uint64_t callers, uint64_t sync_ns)
{
    struct mmio_company *c = &io->company;

    c->batch_callers[c->batch_pos] = callers;
    c->batch_pos = (c->batch_pos + 1) % MMIO_COMPANY_BATCHES;
    /* weight 1/4 for the newest sample, as jbd2 averages commit times */
    c->avg_sync_ns = c->avg_sync_ns ? (c->avg_sync_ns * 3 + sync_ns) / 4 : sync_ns;
}
