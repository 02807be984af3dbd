/* The monitor's tick and the primary's spin: src/util/hot_tick.h. */
#include "util/hot_tick.h"

void mfs_hot_tick_init(struct mfs_hot_tick *t)
{
    t->us = MFS_HOT_TICK_US;
    t->calm = 0;
}

unsigned mfs_hot_tick_next(struct mfs_hot_tick *t, int served, int stalled)
{
    if (stalled || !served) {
        mfs_hot_tick_init(t);
    } else if (++t->calm >= MFS_HOT_CALM_TICKS) {
        t->calm = 0;
        if (t->us < MFS_HOT_TICK_MAX_US)
            t->us *= 2;
    }
    return t->us;
}

int mfs_hot_spin_wanted(struct mfs_hot_spin *s)
{
    if (s->rest == 0)
        return 1;
    s->rest--;
    return 0;
}

void mfs_hot_spin_done(struct mfs_hot_spin *s, int hit)
{
    s->spins++;
    s->hits += hit != 0;
    if (s->spins < MFS_HOT_SPIN_WINDOW)
        return;
    if (s->hits < MFS_HOT_SPIN_MIN_HITS)
        s->rest = MFS_HOT_SPIN_REST;
    s->spins = s->hits = 0;
}
