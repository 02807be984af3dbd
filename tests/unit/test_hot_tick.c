/*
 * test_hot_tick.c — src/util/hot_tick.h: the hot-thread loop monitor's
 * tick. It starts short, grows by doubling only after MFS_HOT_CALM_TICKS
 * calm ticks in a row (requests served, none waiting), stops at
 * MFS_HOT_TICK_MAX_US, and drops back to the short tick at once on a stall
 * or on a tick without requests. And the primary's spin: on while enough
 * spins of a window are hits, off for a rest of waits after a window with
 * too few, then on again.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/hot_tick.h"

/* n calm ticks; returns the last tick length. */
static unsigned calm(struct mfs_hot_tick *t, unsigned n)
{
    unsigned us = t->us;

    while (n--)
        us = mfs_hot_tick_next(t, 1, 0);
    return us;
}

static void test_starts_short_and_grows_after_calm_ticks(void **state)
{
    (void)state;
    struct mfs_hot_tick t;

    mfs_hot_tick_init(&t);
    assert_int_equal(t.us, MFS_HOT_TICK_US);
    /* one calm tick short of doubling: still short */
    assert_int_equal(calm(&t, MFS_HOT_CALM_TICKS - 1), MFS_HOT_TICK_US);
    assert_int_equal(calm(&t, 1), 2 * MFS_HOT_TICK_US);
    assert_int_equal(calm(&t, MFS_HOT_CALM_TICKS), 4 * MFS_HOT_TICK_US);
}

static void test_stops_at_the_longest_tick(void **state)
{
    (void)state;
    struct mfs_hot_tick t;

    mfs_hot_tick_init(&t);
    assert_int_equal(calm(&t, 100 * MFS_HOT_CALM_TICKS), MFS_HOT_TICK_MAX_US);
    assert_int_equal(calm(&t, MFS_HOT_CALM_TICKS), MFS_HOT_TICK_MAX_US);
}

static void test_stall_goes_back_to_short(void **state)
{
    (void)state;
    struct mfs_hot_tick t;

    mfs_hot_tick_init(&t);
    assert_int_equal(calm(&t, 100 * MFS_HOT_CALM_TICKS), MFS_HOT_TICK_MAX_US);
    /* requests served, but some waited behind the busy primary */
    assert_int_equal(mfs_hot_tick_next(&t, 1, 1), MFS_HOT_TICK_US);
    /* and the calm count started again: no early doubling */
    assert_int_equal(calm(&t, MFS_HOT_CALM_TICKS - 1), MFS_HOT_TICK_US);
    assert_int_equal(calm(&t, 1), 2 * MFS_HOT_TICK_US);
}

static void test_no_request_goes_back_to_short(void **state)
{
    (void)state;
    struct mfs_hot_tick t;

    mfs_hot_tick_init(&t);
    assert_int_equal(calm(&t, 2 * MFS_HOT_CALM_TICKS), 4 * MFS_HOT_TICK_US);
    /* a long request running with nothing waiting, or an idle tick */
    assert_int_equal(mfs_hot_tick_next(&t, 0, 0), MFS_HOT_TICK_US);
    /* the calm run before the gap does not count */
    calm(&t, MFS_HOT_CALM_TICKS / 2);
    assert_int_equal(mfs_hot_tick_next(&t, 0, 0), MFS_HOT_TICK_US);
    assert_int_equal(calm(&t, MFS_HOT_CALM_TICKS - 1), MFS_HOT_TICK_US);
}

/* One window of spins, hits of them hits. */
static void spin_window(struct mfs_hot_spin *s, unsigned hits)
{
    for (unsigned i = 0; i < MFS_HOT_SPIN_WINDOW; i++) {
        assert_true(mfs_hot_spin_wanted(s));
        mfs_hot_spin_done(s, i < hits);
    }
}

static void test_spin_stays_on_while_it_pays(void **state)
{
    (void)state;
    struct mfs_hot_spin s = { 0 };

    for (int w = 0; w < 10; w++)
        spin_window(&s, MFS_HOT_SPIN_MIN_HITS);    /* just enough */
    assert_true(mfs_hot_spin_wanted(&s));
}

static void test_spin_rests_after_a_poor_window(void **state)
{
    (void)state;
    struct mfs_hot_spin s = { 0 };
    unsigned i;

    spin_window(&s, MFS_HOT_SPIN_MIN_HITS - 1);
    for (i = 0; i < MFS_HOT_SPIN_REST; i++)
        assert_false(mfs_hot_spin_wanted(&s));
    /* then it tries again, with a fresh window */
    assert_true(mfs_hot_spin_wanted(&s));
    mfs_hot_spin_done(&s, 1);
    spin_window(&s, MFS_HOT_SPIN_WINDOW);
    assert_true(mfs_hot_spin_wanted(&s));
}

static void test_spin_window_counts_afresh(void **state)
{
    (void)state;
    struct mfs_hot_spin s = { 0 };

    /* hits of an earlier window do not carry over */
    spin_window(&s, MFS_HOT_SPIN_WINDOW);
    spin_window(&s, 0);
    assert_false(mfs_hot_spin_wanted(&s));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_starts_short_and_grows_after_calm_ticks),
        cmocka_unit_test(test_stops_at_the_longest_tick),
        cmocka_unit_test(test_stall_goes_back_to_short),
        cmocka_unit_test(test_no_request_goes_back_to_short),
        cmocka_unit_test(test_spin_stays_on_while_it_pays),
        cmocka_unit_test(test_spin_rests_after_a_poor_window),
        cmocka_unit_test(test_spin_window_counts_afresh),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
