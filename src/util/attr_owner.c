/*
 * attr_owner.c — who was answered with an inode's attributes (the rules
 * and their order: attr_owner.h).
 */
#include "util/attr_owner.h"
#include "util/ino_slot.h"

#define TID_BITS MFS_ATTR_OWNER_TID_BITS
#define NONE     0ull
#define MIXED    ((1ull << TID_BITS) - 1)
#define OWNER(ino, tid) (((uint64_t)(ino) << TID_BITS) | (uint64_t)(tid))

/* Can a slot name ino? Larger numbers are never recorded: always notified. */
static int ino_fits(uint64_t ino)
{
    return ino >> (64 - TID_BITS) == 0;
}

static int tid_known(int32_t tid)
{
    return tid > 0 && (uint64_t)tid < MIXED;
}

void (*mfs_attr_owner_observe)(enum mfs_attr_owner_point at);

static void observe(enum mfs_attr_owner_point at)
{
    void (*fn)(enum mfs_attr_owner_point) =
        __atomic_load_n(&mfs_attr_owner_observe, __ATOMIC_RELAXED);
    if (fn)
        fn(at);
}

uint64_t mfs_attr_owner_epoch(const struct mfs_attr_owner *t)
{
    return __atomic_load_n(&t->epoch, __ATOMIC_SEQ_CST);
}

/* Raises *p to v (never lowers it). */
static void raise_to(uint64_t *p, uint64_t v)
{
    uint64_t cur = __atomic_load_n(p, __ATOMIC_SEQ_CST);
    while (cur < v && !__atomic_compare_exchange_n(p, &cur, v, 0, __ATOMIC_SEQ_CST,
                                                   __ATOMIC_SEQ_CST))
        ;
}

int mfs_attr_owner_answer(struct mfs_attr_owner *t, uint64_t ino, int32_t tid,
                          uint64_t begun)
{
    size_t i = mfs_ino_slot(ino, MFS_ATTR_OWNER_SLOTS);
    uint64_t *slot = &t->owner[i];
    uint64_t mine = tid_known(tid) ? (uint64_t)tid : MIXED;
    uint64_t cur, want;

    raise_to(&t->answered_at[i], begun);      /* before the mark: see change */
    cur = __atomic_load_n(slot, __ATOMIC_SEQ_CST);

    while (ino_fits(ino)) {
        if (cur >> TID_BITS != ino)
            want = OWNER(ino, MIXED);           /* taken over */
        else if ((cur & MIXED) == NONE)
            want = OWNER(ino, mine);
        else if ((cur & MIXED) == mine)
            want = cur;
        else
            want = OWNER(ino, MIXED);
        if (cur != want)
            observe(MFS_ATTR_OWNER_AT_ANSWER_MARK);
        if (cur == want ||
            __atomic_compare_exchange_n(slot, &cur, want, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST))
            break;
    }
    return __atomic_load_n(&t->changed_at[i], __ATOMIC_SEQ_CST) > begun;
}

int mfs_attr_owner_change(struct mfs_attr_owner *t, uint64_t ino, int32_t tid)
{
    size_t i = mfs_ino_slot(ino, MFS_ATTR_OWNER_SLOTS);
    uint64_t e = __atomic_add_fetch(&t->epoch, 1, __ATOMIC_SEQ_CST), cur;
    observe(MFS_ATTR_OWNER_AT_CHANGE_EPOCH);

    /* only ever raised: a later change of a slot mate must not hide this one */
    raise_to(&t->changed_at[i], e);
    if (!ino_fits(ino))
        return 0;
    cur = __atomic_load_n(&t->owner[i], __ATOMIC_SEQ_CST);
    if (cur == OWNER(ino, NONE) || (tid_known(tid) && cur == OWNER(ino, tid)))
        return 1;
    /* The record starts again, unless an answer marked it meanwhile: that
     * answer read the attributes after this change (it sees changed_at
     * raised otherwise), but may reach the kernel after the next one, so
     * its mark stays. */
    observe(MFS_ATTR_OWNER_AT_CHANGE_RESET);
    if (__atomic_compare_exchange_n(&t->owner[i], &cur, OWNER(ino, NONE), 0,
                                    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST) &&
        __atomic_load_n(&t->answered_at[i], __ATOMIC_SEQ_CST) >= e) {
        /* An answer that began after this change's epoch raised answered_at
         * before marking, so it may have marked between the read of cur and
         * the reset without changing cur (MIXED already, or its own thread
         * again): its mark was just wiped out, so the slot says MIXED. If
         * another answer marked since the reset, that mark stays. */
        cur = OWNER(ino, NONE);
        (void)__atomic_compare_exchange_n(&t->owner[i], &cur, OWNER(ino, MIXED), 0,
                                          __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    }
    return 0;
}
