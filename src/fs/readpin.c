/*
 * readpin.c — read pins: when a block freed by a file may be reused.
 *
 * A zero-copy read (fs_read_iov) hands the front end pointers into the
 * mapping, and the front end sends them to the kernel after fs has let go
 * of every lock. If the file were truncated in between and its blocks
 * reused by another file, the reply would carry that file's bytes
 * (DESIGN.md invariant 8). So the reader holds a pin from before it looks
 * up the extents until its reply has been sent, and a freed block becomes
 * reusable only when every pin that could have seen it is gone.
 *
 * The scheme is a two-slot grace period (like SRCU). A pin counts itself
 * in slot `cur`. Blocks freed by transactions up to seq S, once S is
 * durable, wait for a grace period: `cur` flips, so new pins count in the
 * other slot, and the blocks are released when the old slot drains. A pin
 * taken after the flip cannot have seen them: their extents were removed
 * before S was durable, and a pin is taken before its lookup. A pin that
 * read `cur` just before the flip re-checks it after counting itself and
 * moves over, so no pin counts in a slot the releaser has already found
 * empty. Pins are held for one reply (microseconds), so a grace period
 * ends at the next durable callback or allocation shortage at the latest.
 *
 * Costs nothing but two atomic increments per read; no lock is taken.
 */
#include <errno.h>
#include <unistd.h>

#include "fs/fs_i.h"

void fs_read_pin(struct fs *fs, struct fs_read_pin *pin)
{
    for (;;) {
        unsigned idx = atomic_load(&fs->pins.cur);
        atomic_fetch_add(&fs->pins.active[idx], 1);
        if (atomic_load(&fs->pins.cur) == idx) {
            pin->idx = idx;
            pin->held = 1;
            return;
        }
        atomic_fetch_sub(&fs->pins.active[idx], 1);
    }
}

void fs_read_unpin(struct fs *fs, struct fs_read_pin *pin)
{
    if (!pin->held)
        return;
    atomic_fetch_sub(&fs->pins.active[pin->idx], 1);
    pin->held = 0;
}

void fs_pins_advance(struct fs *fs)
{
    struct fs_pins *p = &fs->pins;
    for (;;) {
        if (p->grace_seq) {
            if (atomic_load(&p->active[p->grace_idx]) != 0)
                return;                      /* a reader may still see them */
            fs_alloc_release(fs, p->grace_seq);
            p->released_seq = p->grace_seq;
            p->grace_seq = 0;
        }
        if (p->durable_seq <= p->released_seq)
            return;
        /* start a grace period for blocks freed up to durable_seq */
        unsigned old = atomic_load(&p->cur);
        p->grace_idx = old;
        p->grace_seq = p->durable_seq;
        atomic_store(&p->cur, old ^ 1u);
    }
}

void fs_pins_durable(struct fs *fs, uint64_t seq)
{
    if (seq > fs->pins.durable_seq)
        fs->pins.durable_seq = seq;
    fs_pins_advance(fs);
}

int fs_pins_wait(struct fs *fs, uint64_t seq)
{
    /* readers hold a pin for one reply; a second is plenty */
    for (int i = 0; i < 20000; i++) {
        jnl_lock(fs->jnl);
        fs_pins_advance(fs);
        int done = fs->pins.released_seq >= seq;
        jnl_unlock(fs->jnl);
        if (done)
            return 0;
        usleep(50);
    }
    return -EBUSY;
}
