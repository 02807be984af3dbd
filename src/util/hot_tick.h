/* The tick of the hot-thread loop's monitor (src/fuse/session.c): how long
 * it sleeps before it looks again whether requests wait behind a busy
 * primary thread.
 *
 * Short (MFS_HOT_TICK_US) after a tick that found such a stall, or no
 * request at all; doubled, up to MFS_HOT_TICK_MAX_US, after every
 * MFS_HOT_CALM_TICKS ticks in a row that saw requests served and none
 * waiting. So a lone caller's stream of requests, which the primary serves
 * alone (rm -rf, a create loop), wakes the monitor about once in 4 ms
 * instead of every 0.5 ms, while parallel callers, who stall the primary
 * often, keep the short tick (docs/MOUNT.md, "Request loop"). */
#ifndef MMAPFS_HOT_TICK_H
#define MMAPFS_HOT_TICK_H

#define MFS_HOT_TICK_US     500
#define MFS_HOT_TICK_MAX_US 4000
#define MFS_HOT_CALM_TICKS  8

struct mfs_hot_tick {
    unsigned us;            /* the next tick, microseconds */
    unsigned calm;          /* calm ticks in a row at this length */
};

/* Starts at the short tick. */
void mfs_hot_tick_init(struct mfs_hot_tick *t);

/* After a tick: served = the primary took requests during it, stalled =
 * requests waited behind a busy primary at its end. Returns the length of
 * the next tick (t->us). */
unsigned mfs_hot_tick_next(struct mfs_hot_tick *t, int served, int stalled);

/* Whether the primary spins (keeps reading for spin= us) before it
 * sleeps: only while spinning pays. A spin is a hit when a request came
 * while it spun, a miss when it ran out. After every MFS_HOT_SPIN_WINDOW
 * spins with fewer than MFS_HOT_SPIN_MIN_HITS hits, the primary sleeps at
 * once for the next MFS_HOT_SPIN_REST waits, then tries again. Spins miss
 * when the caller is slow to come back, and above all when the CPUs are
 * busy: the spinning thread then holds the CPU its caller needs to send
 * the next request (a create loop beside one busy process on 2 CPUs: 2.3
 * times slower with the spin; docs/MOUNT.md, "Request loop"). */
#define MFS_HOT_SPIN_WINDOW   32
#define MFS_HOT_SPIN_MIN_HITS 8
#define MFS_HOT_SPIN_REST     2048

struct mfs_hot_spin {
    unsigned spins, hits;   /* in the current window */
    unsigned rest;          /* waits left without spinning */
};

/* Should this wait spin? (No: counts one wait of the rest.) */
int mfs_hot_spin_wanted(struct mfs_hot_spin *s);

/* A spin ended: hit = a request came while it spun. */
void mfs_hot_spin_done(struct mfs_hot_spin *s, int hit);

#endif
