/*
 * test_cpu_latency.c — src/util/cpu_latency.h: when the CPU latency hold
 * is taken and given back (ticks in, values written out), that it is off
 * when it cannot open its device or when hold_ticks is 0, and that a write
 * that fails turns it off for good. The "device" is a regular file here:
 * every value written lands in it, in order; /dev/full fails each write.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/cpu_latency.h"

static char path[64];

static int setup(void **state)
{
    (void)state;
    int fd;

    snprintf(path, sizeof(path), "/tmp/test_cpu_latency.XXXXXX");
    fd = mkstemp(path);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    return 0;
}

/* The values written to the file so far, at most max; returns how many. */
static size_t written(int32_t *out, size_t max)
{
    FILE *f = fopen(path, "rb");
    size_t n;

    assert_non_null(f);
    n = fread(out, sizeof(*out), max, f);
    fclose(f);
    return n;
}

static void ticks(struct mfs_cpu_latency *l, int active, unsigned n)
{
    while (n--)
        assert_true(mfs_cpu_latency_tick(l, active) >= 0);
}

static void test_lone_request_takes_nothing(void **state)
{
    (void)state;
    struct mfs_cpu_latency l;
    int32_t v[4];

    memset(&l, 0, sizeof(l));
    assert_int_equal(mfs_cpu_latency_open(&l, path, 4), 0);
    for (int i = 0; i < 5; i++) {        /* one active tick, then quiet */
        ticks(&l, 1, MFS_CPU_LATENCY_TAKE_TICKS - 1);
        ticks(&l, 0, 3);
    }
    assert_int_equal(written(v, 4), 0);
    mfs_cpu_latency_close(&l);
    uint64_t holds, us;
    mfs_cpu_latency_counters(&l, &holds, &us);
    assert_int_equal(holds, 0);
}

static void test_take_then_give_back(void **state)
{
    (void)state;
    struct mfs_cpu_latency l;
    int32_t v[8];
    uint64_t holds, us;

    memset(&l, 0, sizeof(l));
    assert_int_equal(mfs_cpu_latency_open(&l, path, 4), 0);
    ticks(&l, 1, MFS_CPU_LATENCY_TAKE_TICKS - 1);
    assert_int_equal(mfs_cpu_latency_tick(&l, 1), 1);            /* taken */
    assert_int_equal(written(v, 8), 1);
    assert_int_equal(v[0], 0);
    ticks(&l, 1, 50);                       /* held: nothing more written */
    ticks(&l, 0, 3);                        /* quiet, but not long enough */
    ticks(&l, 1, 1);                        /* a request: quiet starts over */
    ticks(&l, 0, 3);
    assert_int_equal(written(v, 8), 1);
    assert_int_equal(mfs_cpu_latency_tick(&l, 0), 1);            /* given back */
    assert_int_equal(written(v, 8), 2);
    assert_int_equal(v[1], -1);                 /* -1: the kernel's default */
    ticks(&l, 0, 20);
    assert_int_equal(written(v, 8), 2);

    /* a second burst takes it again */
    ticks(&l, 1, MFS_CPU_LATENCY_TAKE_TICKS);
    assert_int_equal(written(v, 8), 3);
    assert_int_equal(v[2], 0);
    usleep(20000);
    mfs_cpu_latency_counters(&l, &holds, &us);
    assert_int_equal(holds, 2);
    assert_true(us >= 20000);                      /* the current hold counts */

    /* given back on demand (the monitor before it sleeps), once */
    assert_int_equal(mfs_cpu_latency_release(&l), 1);
    assert_int_equal(mfs_cpu_latency_release(&l), 0);
    assert_int_equal(written(v, 8), 4);
    assert_int_equal(v[3], -1);
    mfs_cpu_latency_close(&l);
    mfs_cpu_latency_counters(&l, &holds, &us);
    assert_int_equal(holds, 2);
    assert_true(us >= 20000);
    ticks(&l, 1, 10);                           /* closed: nothing happens */
    assert_int_equal(written(v, 8), 4);
}

static void test_off(void **state)
{
    (void)state;
    struct mfs_cpu_latency l;
    int32_t v[2];

    memset(&l, 0, sizeof(l));
    assert_int_equal(mfs_cpu_latency_open(&l, path, 0), 0);      /* hold 0: off */
    assert_int_equal(l.fd, -1);
    ticks(&l, 1, 10);
    assert_int_equal(mfs_cpu_latency_release(&l), 0);
    assert_int_equal(written(v, 2), 0);
    mfs_cpu_latency_close(&l);

    memset(&l, 0, sizeof(l));
    assert_int_equal(mfs_cpu_latency_open(&l, "/nonexistent/cpu_dma_latency", 4), -ENOENT);
    ticks(&l, 1, 10);
    ticks(&l, 0, 10);
    mfs_cpu_latency_close(&l);
}

/* A write that fails (ENOSPC from /dev/full): the tick says so, the
 * descriptor is closed, and later ticks do nothing. */
static void test_failed_write(void **state)
{
    (void)state;
    struct mfs_cpu_latency l;
    uint64_t holds, us;

    memset(&l, 0, sizeof(l));
    assert_int_equal(mfs_cpu_latency_open(&l, "/dev/full", 4), 0);
    ticks(&l, 1, MFS_CPU_LATENCY_TAKE_TICKS - 1);
    assert_int_equal(mfs_cpu_latency_tick(&l, 1), -ENOSPC);
    assert_int_equal(l.fd, -1);
    assert_int_equal(l.failed, ENOSPC);
    ticks(&l, 1, 10);
    ticks(&l, 0, 10);
    assert_int_equal(mfs_cpu_latency_release(&l), 0);
    mfs_cpu_latency_counters(&l, &holds, &us);
    assert_int_equal(holds, 0);
    mfs_cpu_latency_close(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lone_request_takes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_take_then_give_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_write, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
