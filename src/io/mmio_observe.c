/*
 * mmio_observe.c — the process-wide flush observer (struct mmio_observer
 * in mmio_i.h). Only the crash recorder (tests/crash/) installs one; the
 * production binaries never do, so the engine pays one pointer load per
 * flush, open and close.
 */
#include <stddef.h>

#include "io/mmio_i.h"

static const struct mmio_observer *observer;

void mmio_set_observer(const struct mmio_observer *o)
{
    __atomic_store_n(&observer, o, __ATOMIC_RELEASE);
}

const struct mmio_observer *mmio_observer_get(void)
{
    return __atomic_load_n(&observer, __ATOMIC_ACQUIRE);
}
