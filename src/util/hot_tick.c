/* The monitor's tick: src/util/hot_tick.h. */
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
