/*
 * test_progress.c — the progress line of src/util/progress.h: silent for
 * the first half second, then "PROG: WHAT NN%" rewritten in place at most
 * every 200 ms, erased by mfs_progress_clear; nothing at all without an
 * output.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/progress.h"

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static void test_line(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    struct mfs_progress p;
    mfs_progress_init(&p, f, "fsck.mmapfs");

    mfs_progress_update(&p, "pass 1, inodes:", 10, 100);
    fflush(f);
    assert_int_equal(len, 0);               /* quick work: nothing shown */

    sleep_ms(600);
    mfs_progress_update(&p, "pass 1, inodes:", 50, 100);
    fflush(f);
    assert_string_equal(buf, "\rfsck.mmapfs: pass 1, inodes:  50%");
    size_t shown = len;

    mfs_progress_update(&p, "pass 1, inodes:", 60, 100);
    fflush(f);
    assert_int_equal(len, shown);           /* at most every 200 ms */

    sleep_ms(250);
    mfs_progress_update(&p, "pass 2:", 300, 200);   /* past the end: 100% */
    fflush(f);
    /* the shorter line blanks what is left of the longer one */
    const char *second = buf + shown;
    assert_memory_equal(second, "\rfsck.mmapfs: pass 2: 100%", 26);
    assert_int_equal(strlen(second), 1 + strlen("fsck.mmapfs: pass 1, inodes:  50%"));
    shown = len;

    mfs_progress_clear(&p);
    fflush(f);
    const char *clear = buf + shown;
    assert_int_equal(clear[0], '\r');
    assert_int_equal(clear[strlen(clear) - 1], '\r');
    assert_int_equal(strspn(clear + 1, " "), strlen(clear) - 2);
    shown = len;
    mfs_progress_clear(&p);                 /* nothing shown: nothing to erase */
    fflush(f);
    assert_int_equal(len, shown);
    fclose(f);
    free(buf);
}

static void test_silent(void **state)
{
    (void)state;
    struct mfs_progress p;
    mfs_progress_init(&p, NULL, "x");
    sleep_ms(550);
    mfs_progress_update(&p, "y", 1, 2);     /* no output: no-op, no crash */
    mfs_progress_clear(&p);
    mfs_progress_update(NULL, "y", 1, 2);
    mfs_progress_clear(NULL);
    assert_null(p.out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line),
        cmocka_unit_test(test_silent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
