/*
 * test_mountinfo.c — src/util/mountinfo.h: the fields of a mountinfo line
 * (optional fields of any number, escaped paths, malformed lines), and the
 * topmost mount on a mount point of this process.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "util/mountinfo.h"

static void test_parse(void **state)
{
    (void)state;
    struct mfs_mount m;
    char line[] = "36 35 0:52 / /mnt/my\\040disk rw,nosuid shared:1 master:2 - fuse.mmapfs "
                  "/srv/a\\134b.img rw,user_id=0\n";

    assert_int_equal(mfs_mountinfo_parse(line, &m), 0);
    assert_string_equal(m.devid, "0:52");
    assert_string_equal(m.point, "/mnt/my disk");
    assert_string_equal(m.fstype, "fuse.mmapfs");
    assert_string_equal(m.source, "/srv/a\\b.img");

    char plain[] = "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw";      /* no optional field */
    assert_int_equal(mfs_mountinfo_parse(plain, &m), 0);
    assert_string_equal(m.point, "/");
    assert_string_equal(m.fstype, "ext4");
    assert_string_equal(m.source, "/dev/sda1");

    char no_sep[] = "22 1 8:1 / / rw,relatime ext4 /dev/sda1 rw";
    char short_head[] = "22 1 8:1 / - ext4 /dev/sda1 rw";
    char no_source[] = "22 1 8:1 / /x rw - ext4";
    char empty[] = "";
    assert_int_equal(mfs_mountinfo_parse(no_sep, &m), -1);
    assert_int_equal(mfs_mountinfo_parse(short_head, &m), -1);
    assert_int_equal(mfs_mountinfo_parse(no_source, &m), -1);
    assert_int_equal(mfs_mountinfo_parse(empty, &m), -1);
}

static int count_one(const struct mfs_mount *m, void *ctx)
{
    (void)m;
    return ++*(int *)ctx == 2;      /* stops at the second line */
}

static void test_each_and_top(void **state)
{
    (void)state;
    struct mfs_mount_top top;
    int n = 0;

    assert_int_equal(mfs_mountinfo_each(count_one, &n), 1);
    assert_int_equal(n, 2);
    assert_int_equal(mfs_mountinfo_top("/proc", &top), 0);
    assert_string_equal(top.fstype, "proc");
    assert_non_null(strchr(top.devid, ':'));
    assert_int_equal(mfs_mountinfo_top("/proc/self", &top), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_each_and_top),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
