/*
 * mmio_observe.c — the process-wide observer (io/observe.h). The crash
 * recorder (tests/crash/) and the unit tests install one; the shipped
 * programs never do, so each hook costs one pointer load.
 */
#include <stddef.h>

#include "io/observe.h"

static const struct mmio_observer *observer;

void mmio_set_observer(const struct mmio_observer *o)
{
    __atomic_store_n(&observer, o, __ATOMIC_RELEASE);
}

const struct mmio_observer *mmio_observer_get(void)
{
    return __atomic_load_n(&observer, __ATOMIC_ACQUIRE);
}

int mmio_observe_at(struct mmio *io, enum mmio_point point, uint64_t a, uint64_t b)
{
    const struct mmio_observer *o = mmio_observer_get();
    return o && o->at ? o->at(o->ctx, io, point, a, b) : 0;
}
