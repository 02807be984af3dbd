/*
 * test_attr_owner.c — src/util/attr_owner.h: when a change of an inode
 * may skip telling the kernel, and when an answer must expire at once.
 *
 * The rules one by one, single-threaded; then threads (also under
 * ThreadSanitizer, make check-tsan): one changes an inode again and again
 * and answers itself, two others answer now and then, all reading a
 * version under one mutex as the filesystem's lock. Afterwards every
 * change that skipped the notification is checked against every answer
 * that read an older version and did not expire: some notification must
 * have been sent after that answer's request began (the kernel discards an
 * answer to a request sent before a notification), else the answer could
 * have been applied after the change and kept.
 *
 * The steps of one call that another thread's call may come between are
 * also tested one by one, deterministically: the table's observer
 * (mfs_attr_owner_observe) runs the other call at that point, on this
 * thread.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/attr_owner.h"

#define D 1000
#define T 100           /* the changing thread */
#define A 101           /* other threads */
#define B 102

static struct mfs_attr_owner *table(void)
{
    struct mfs_attr_owner *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    return t;
}

static int answer(struct mfs_attr_owner *t, uint64_t ino, int32_t tid)
{
    return mfs_attr_owner_answer(t, ino, tid, mfs_attr_owner_epoch(t));
}

static void test_first_change_notifies(void **state)
{
    (void)state;
    struct mfs_attr_owner *t = table();

    assert_int_equal(mfs_attr_owner_change(t, D, T), 0);    /* nothing known */
    /* no answer since that notification: nothing can arrive late */
    assert_int_equal(mfs_attr_owner_change(t, D, T), 1);
    free(t);
}

static void test_own_answers_skip(void **state)
{
    (void)state;
    struct mfs_attr_owner *t = table();

    assert_int_equal(mfs_attr_owner_change(t, D, T), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(answer(t, D, T), 0);
        assert_int_equal(answer(t, D, T), 0);
        assert_int_equal(mfs_attr_owner_change(t, D, T), 1);
    }
    free(t);
}

static void test_other_thread_notifies_once(void **state)
{
    (void)state;
    struct mfs_attr_owner *t = table();

    assert_int_equal(mfs_attr_owner_change(t, D, T), 0);
    assert_int_equal(answer(t, D, A), 0);
    assert_int_equal(mfs_attr_owner_change(t, D, T), 0);    /* A's may be late */
    assert_int_equal(answer(t, D, T), 0);
    assert_int_equal(mfs_attr_owner_change(t, D, T), 1);    /* told since */
    /* both threads, either order */
    assert_int_equal(answer(t, D, T), 0);
    assert_int_equal(answer(t, D, A), 0);
    assert_int_equal(mfs_attr_owner_change(t, D, T), 0);
    assert_int_equal(answer(t, D, A), 0);
    assert_int_equal(answer(t, D, T), 0);
    assert_int_equal(mfs_attr_owner_change(t, D, T), 0);
    /* A changing after answers to A alone skips too */
    assert_int_equal(answer(t, D, A), 0);
    assert_int_equal(mfs_attr_owner_change(t, D, A), 1);
    free(t);
}

static void test_unknown_callers(void **state)
{
    (void)state;
    struct mfs_attr_owner *t = table();

    assert_int_equal(mfs_attr_owner_change(t, D, T), 0);
    assert_int_equal(answer(t, D, 0), 0);       /* pid 0: another namespace */
    assert_int_equal(mfs_attr_owner_change(t, D, 0), 0);
    assert_int_equal(answer(t, D, -1), 0);
    assert_int_equal(mfs_attr_owner_change(t, D, T), 0);
    assert_int_equal(answer(t, D, 1 << 23), 0); /* beyond any pid */
    assert_int_equal(mfs_attr_owner_change(t, D, T), 0);
    /* an inode number too large to record: always told */
    uint64_t big = 1ull << 50;
    assert_int_equal(mfs_attr_owner_change(t, big, T), 0);
    assert_int_equal(mfs_attr_owner_change(t, big, T), 0);
    assert_int_equal(answer(t, big, T), 0);
    assert_int_equal(mfs_attr_owner_change(t, big, T), 0);
    free(t);
}

static void test_answer_beside_change_expires(void **state)
{
    (void)state;
    struct mfs_attr_owner *t = table();

    uint64_t begun = mfs_attr_owner_epoch(t);
    assert_int_equal(mfs_attr_owner_change(t, D, T), 0);
    /* began before the change: its attributes may be the old ones */
    assert_int_equal(mfs_attr_owner_answer(t, D, A, begun), 1);
    assert_int_equal(mfs_attr_owner_answer(t, D + 1, A, begun), 0);   /* another slot */
    /* began after it: current */
    assert_int_equal(answer(t, D, A), 0);
    free(t);
}

/* An inode whose slot is D's: answers for it take D's record over. */
static uint64_t slot_mate(void)
{
    for (uint64_t e = D + 1; e < D + 1000000; e++) {
        struct mfs_attr_owner *t = table();
        assert_int_equal(mfs_attr_owner_change(t, D, T), 0);
        assert_int_equal(answer(t, D, T), 0);
        assert_int_equal(answer(t, e, T), 0);
        int skipped = mfs_attr_owner_change(t, D, T);
        free(t);
        if (!skipped)
            return e;
    }
    fail_msg("no inode number shares a slot with %d", D);
    return 0;
}

static void test_taken_over_slot(void **state)
{
    (void)state;
    uint64_t e = slot_mate();
    struct mfs_attr_owner *t = table();

    /* A was answered about D; E takes the slot, then only T about E: D's
     * history is gone, so neither may skip */
    assert_int_equal(mfs_attr_owner_change(t, D, T), 0);
    assert_int_equal(answer(t, D, A), 0);
    assert_int_equal(answer(t, e, T), 0);
    assert_int_equal(answer(t, e, T), 0);
    assert_int_equal(mfs_attr_owner_change(t, e, T), 0);
    assert_int_equal(answer(t, D, T), 0);
    assert_int_equal(mfs_attr_owner_change(t, D, T), 0);
    /* a change of E raised the slot's change: an answer about D begun
     * before it expires at once as well */
    uint64_t begun = mfs_attr_owner_epoch(t);
    assert_int_equal(mfs_attr_owner_change(t, e, T), 0);
    assert_int_equal(mfs_attr_owner_answer(t, D, A, begun), 1);
    free(t);
}

/* ---- interleavings, made to happen by the observer ---------------------- */

static struct mfs_attr_owner *ot;
static struct {
    enum mfs_attr_owner_point at;   /* at this point of the outer call ... */
    void (*step)(void);             /* ... the other thread's call, once */
} cut;

static void observer(enum mfs_attr_owner_point at)
{
    void (*step)(void) = cut.step;

    if (at != cut.at || !step)
        return;
    cut.step = NULL;                /* once, and not inside the step itself */
    step();
}

static void observe_at(enum mfs_attr_owner_point at, void (*step)(void))
{
    cut.at = at;
    cut.step = step;
    mfs_attr_owner_observe = observer;
}

static void observed(void)
{
    assert_null(cut.step);          /* the step ran */
    mfs_attr_owner_observe = NULL;
    free(ot);
}

static void change_by_b(void)
{
    mfs_attr_owner_change(ot, D, B);
}

static void answer_by_b(void)
{
    answer(ot, D, B);
}

/* B's change takes a later epoch and raises changed_at before A's change,
 * which took the earlier one, gets to it: A's must not lower it, or an
 * answer that began between the two would not expire. */
static void test_change_after_a_later_change(void **state)
{
    (void)state;
    ot = table();
    observe_at(MFS_ATTR_OWNER_AT_CHANGE_EPOCH, change_by_b);
    mfs_attr_owner_change(ot, D, A);                 /* epoch 1; B's is 2 */
    assert_int_equal(mfs_attr_owner_epoch(ot), 2);
    assert_int_equal(mfs_attr_owner_answer(ot, D, A, 1), 1);
    assert_int_equal(mfs_attr_owner_answer(ot, D, A, 2), 0);
    observed();
}

/* An answer to B marks the slot after T's change read it and before T
 * starts the record again: B's mark must stay (its answer may reach the
 * kernel after T's next change), so that change notifies. */
static void test_answer_inside_change(void **state)
{
    (void)state;
    ot = table();
    assert_int_equal(answer(ot, D, A), 0);
    observe_at(MFS_ATTR_OWNER_AT_CHANGE_RESET, answer_by_b);
    assert_int_equal(mfs_attr_owner_change(ot, D, T), 0);   /* A was answered */
    assert_int_equal(mfs_attr_owner_change(ot, D, T), 0);   /* and B since */
    assert_int_equal(mfs_attr_owner_change(ot, D, T), 1);
    observed();
}

/* Two answers mark the slot at once (A's read it, B's marks it first):
 * both must count, so a change by A notifies for B's. */
static void test_answers_at_once(void **state)
{
    (void)state;
    ot = table();
    assert_int_equal(mfs_attr_owner_change(ot, D, T), 0);   /* the record: none */
    observe_at(MFS_ATTR_OWNER_AT_ANSWER_MARK, answer_by_b);
    assert_int_equal(answer(ot, D, A), 0);
    assert_int_equal(mfs_attr_owner_change(ot, D, A), 0);
    assert_int_equal(mfs_attr_owner_change(ot, D, A), 1);
    observed();
}

/* ---- threads ------------------------------------------------------------------ */

#define CHANGES 20000
#define ANSWERS 40000

struct rec_change { uint64_t n, at; int skipped; };
struct rec_answer { uint64_t v, began; int expired; };

static struct mfs_attr_owner *shared;
static pthread_mutex_t fs_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t version;            /* (fs_lock) */
static uint64_t clock_;             /* logical time (atomic) */
static int changes_done;            /* (atomic) */
static struct rec_change changes[CHANGES];
static struct rec_answer answers[2][ANSWERS];
static unsigned nanswers[2];

static uint64_t tick(void)
{
    return __atomic_add_fetch(&clock_, 1, __ATOMIC_SEQ_CST);
}

static uint64_t read_version(void)
{
    pthread_mutex_lock(&fs_lock);
    uint64_t v = version;
    pthread_mutex_unlock(&fs_lock);
    return v;
}

static void *changer(void *arg)
{
    (void)arg;
    for (int i = 0; i < CHANGES; i++) {
        if (i % 3) {                /* T's own answers (a GETATTR before each unlink) */
            uint64_t begun = mfs_attr_owner_epoch(shared);
            read_version();
            mfs_attr_owner_answer(shared, D, T, begun);
        }
        pthread_mutex_lock(&fs_lock);
        changes[i].n = ++version;
        pthread_mutex_unlock(&fs_lock);
        changes[i].skipped = mfs_attr_owner_change(shared, D, T);
        changes[i].at = tick();     /* the notification, if any, after this */
    }
    __atomic_store_n(&changes_done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void *answerer(void *arg)
{
    int k = (int)(intptr_t)arg;
    unsigned n = 0;
    while (!__atomic_load_n(&changes_done, __ATOMIC_SEQ_CST) && n < ANSWERS) {
        struct rec_answer *r = &answers[k][n++];
        r->began = tick();          /* the request is sent before this */
        uint64_t begun = mfs_attr_owner_epoch(shared);
        r->v = read_version();
        r->expired = mfs_attr_owner_answer(shared, D, k ? B : A, begun);
        if (n % 64 == 0)            /* quiet stretches: T alone, skips happen */
            for (volatile int spin = 0; spin < 20000; spin++)
                ;
    }
    nanswers[k] = n;
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    pthread_t th[3];
    unsigned skipped = 0, checked = 0;

    shared = table();
    assert_int_equal(pthread_create(&th[0], NULL, changer, NULL), 0);
    assert_int_equal(pthread_create(&th[1], NULL, answerer, (void *)0), 0);
    assert_int_equal(pthread_create(&th[2], NULL, answerer, (void *)1), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);

    /* latest[v]: the latest start of an answer that read version v and did
     * not expire; then, over versions below v (prefix maximum) */
    uint64_t *latest = calloc(CHANGES + 2, sizeof(*latest));
    assert_non_null(latest);
    for (int k = 0; k < 2; k++)
        for (unsigned a = 0; a < nanswers[k]; a++) {
            const struct rec_answer *r = &answers[k][a];
            checked += !r->expired;
            if (!r->expired && r->began > latest[r->v + 1])
                latest[r->v + 1] = r->began;
        }
    for (int v = 1; v <= CHANGES + 1; v++)
        if (latest[v - 1] > latest[v])
            latest[v] = latest[v - 1];
    uint64_t told = 0;              /* the latest notification so far */
    for (int i = 0; i < CHANGES; i++) {
        if (!changes[i].skipped) {
            told = changes[i].at;
            continue;
        }
        skipped++;
        /* every answer that read a version before this change's began
         * before the last notification (so the kernel discarded it, if it
         * came late) */
        if (latest[changes[i].n] >= told && latest[changes[i].n] > 0)
            fail_msg("change %d (version %llu) skipped the notification, but an answer "
                     "with an older version began at %llu, after the last notification "
                     "(%llu)", i, (unsigned long long)changes[i].n,
                     (unsigned long long)latest[changes[i].n], (unsigned long long)told);
    }
    free(latest);
    /* the test means something only if both happened */
    assert_true(skipped > 0);
    assert_true(skipped < CHANGES);
    print_message("%u of %d changes skipped the notification; %u answers checked\n",
                  skipped, CHANGES, checked);
    free(shared);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_change_notifies),
        cmocka_unit_test(test_own_answers_skip),
        cmocka_unit_test(test_other_thread_notifies_once),
        cmocka_unit_test(test_unknown_callers),
        cmocka_unit_test(test_answer_beside_change_expires),
        cmocka_unit_test(test_taken_over_slot),
        cmocka_unit_test(test_change_after_a_later_change),
        cmocka_unit_test(test_answer_inside_change),
        cmocka_unit_test(test_answers_at_once),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
