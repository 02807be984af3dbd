/*
 * test_fsck_readonly — fsck -n never writes to the image.
 *
 * An image is left with committed transactions that were never
 * checkpointed (the power went right after the commit's sync: journal
 * crash point JNL_CRASH_AFTER_SYNC), so the home blocks still hold the old
 * state and only the journal holds the new one. fsck -n must check the new
 * state (replayed in memory) and leave every byte of the image as it was;
 * fsck -y then replays it into the image. The same with the log torn in the
 * middle of a transaction (nothing to replay) and with the journal headers
 * destroyed (an error, still nothing written). The read-only media cases
 * (read-only loop device, read-only bind mount, immutable file, full host
 * disk) are in tests/integration/93_fsck_readonly.sh.
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
#include <sys/stat.h>
#include <unistd.h>

#include "fsck/fsck.h"
#include "fs/format.h"
#include "fs/fs.h"
#include "fs/fs_i.h"
#include "journal/journal_i.h"
#include "crash_points.h"
#include "mmapfs/mmio.h"

#define IMAGE_BYTES (32u << 20)

static const struct fs_cred root_cred = { 0, 0 };

/* The whole image file and its modification time. */
struct snapshot {
    uint8_t *bytes;
    struct timespec mtime;
};

static void snapshot_take(const char *path, struct snapshot *s)
{
    struct stat st;
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, IMAGE_BYTES);
    s->bytes = malloc(IMAGE_BYTES);
    assert_non_null(s->bytes);
    assert_int_equal(pread(fd, s->bytes, IMAGE_BYTES, 0), IMAGE_BYTES);
    s->mtime = st.st_mtim;
    close(fd);
}

/* 1 if the image is byte for byte (and by mtime) what the snapshot holds. */
static int snapshot_same(const char *path, const struct snapshot *s)
{
    struct snapshot now;
    snapshot_take(path, &now);
    int same = memcmp(now.bytes, s->bytes, IMAGE_BYTES) == 0 &&
               now.mtime.tv_sec == s->mtime.tv_sec && now.mtime.tv_nsec == s->mtime.tv_nsec;
    free(now.bytes);
    return same;
}

/* fs_check with a verbose report into *out (freed by the caller). */
static int check_report(const char *path, enum fs_check_mode mode, char **out)
{
    size_t len = 0;
    FILE *f = open_memstream(out, &len);
    assert_non_null(f);
    struct fs_check_options o = { .mode = mode, .verbose = 1 };
    int r = fs_check(path, &o, f);
    fclose(f);
    if (getenv("TEST_FSCK_VERBOSE"))
        fprintf(stderr, "--- fsck mode %d -> %d\n%s", mode, r, *out);
    return r;
}

/* A formatted sparse image at path (a template for mkstemp). */
static void new_image(char *path)
{
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, IMAGE_BYTES), 0);
    close(fd);
    struct mmio *io;
    assert_int_equal(mmio_open(&io, path, 0, 0, NULL), 0);
    assert_int_equal(fs_format(io, NULL), 0);
    mmio_close(io);
}

/* Mounts path, creates 'files' empty files in the root in one transaction
 * whose commit stops at 'point', and drops the mount as a crash would. */
static void crash_with_files(const char *path, int files, enum jnl_crash_point point)
{
    struct fs *fs;
    struct fs_options o = { .path = path };
    assert_int_equal(fs_mount(&fs, &o), 0);
    crash_at(jnl_running_seq(fs->jnl), point);
    for (int i = 0; i < files; i++) {
        char name[32];
        struct fs_stat st;
        snprintf(name, sizeof(name), "file%d", i);
        assert_int_equal(fs_mknod(fs, MMAPFS_ROOT_INO, name, S_IFREG | 0644, 0, &root_cred,
                                  &st), 0);
        fs_forget(fs, st.ino, 1);
    }
    assert_int_not_equal(fs_fsync(fs, MMAPFS_ROOT_INO, 0), 0);   /* the power cut */
    fs_abandon(fs);
}

/* fsck -n of path: exit want_rc, and the image is what before holds.
 * Returns the report (freed by the caller). */
static char *check_n_unchanged(const char *path, const struct snapshot *before, int want_rc)
{
    char *rep;
    int r = check_report(path, FS_CHECK_NO, &rep);
    if (r != want_rc)
        fprintf(stderr, "expected exit %d, got %d:\n%s", want_rc, r, rep);
    assert_int_equal(r, want_rc);
    assert_true(snapshot_same(path, before));
    return rep;
}

/* A new image at path, crashed as crash_with_files does; *before: its
 * bytes after the crash. */
static void crashed_image(char *path, int files, enum jnl_crash_point point,
                          struct snapshot *before)
{
    new_image(path);
    crash_with_files(path, files, point);
    snapshot_take(path, before);
}

/* Committed, not checkpointed: -n sees the files and writes nothing; -y
 * replays them into the image; -n is then clean without a replay. */
static void test_n_replays_in_memory(void **state)
{
    (void)state;
    char path[] = "/tmp/test_fsck_ro.XXXXXX";
    struct snapshot before;
    crashed_image(path, 3, JNL_CRASH_AFTER_SYNC, &before);

    char *rep = check_n_unchanged(path, &before, FSCK_EXIT_OK);
    /* the mount's own transaction (the MOUNTED state) and the files' */
    assert_non_null(strstr(rep, "replayed 2 committed transactions in memory"));
    assert_non_null(strstr(rep, "3 other inodes"));      /* the replayed state */
    assert_non_null(strstr(rep, ": clean;"));
    free(rep);
    /* a second -n sees the same: nothing was consumed */
    rep = check_n_unchanged(path, &before, FSCK_EXIT_OK);
    assert_non_null(strstr(rep, "replayed 2 committed transactions in memory"));
    free(rep);

    /* -y replays into the image (it changes) */
    int r = check_report(path, FS_CHECK_YES, &rep);
    assert_int_equal(r, FSCK_EXIT_OK);
    assert_non_null(strstr(rep, "replayed 2 committed transactions"));
    assert_null(strstr(rep, "in memory"));
    free(rep);
    assert_false(snapshot_same(path, &before));
    r = check_report(path, FS_CHECK_NO, &rep);
    assert_int_equal(r, FSCK_EXIT_OK);
    assert_null(strstr(rep, "replayed"));
    assert_non_null(strstr(rep, "3 other inodes"));
    free(rep);
    free(before.bytes);
    unlink(path);
}

/* The commit block never made it: only the mount's own transaction is
 * replayed, the files do not exist, the image is not written (a
 * read-write replay would write home blocks and a new journal header). */
static void test_n_torn_transaction(void **state)
{
    (void)state;
    char path[] = "/tmp/test_fsck_ro.XXXXXX";
    struct snapshot before;
    crashed_image(path, 2, JNL_CRASH_AFTER_LOG, &before);
    char *rep = check_n_unchanged(path, &before, FSCK_EXIT_OK);
    /* only the mount's transaction; the torn one is not replayed */
    assert_non_null(strstr(rep, "replayed 1 committed transaction in memory"));
    assert_non_null(strstr(rep, "0 other inodes"));
    free(rep);
    free(before.bytes);
    unlink(path);
}

/* Both journal header slots destroyed: -n reports it (exit 4) and still
 * writes nothing; -y writes fresh headers. */
static void test_n_bad_journal_headers(void **state)
{
    (void)state;
    char path[] = "/tmp/test_fsck_ro.XXXXXX";
    new_image(path);
    struct mmio *io;
    assert_int_equal(mmio_open(&io, path, 0, 0, NULL), 0);
    struct mmapfs_disk_superblock sb;
    assert_int_equal(mmio_read_at(io, 0, &sb, sizeof(sb)), 0);
    uint8_t junk[2 * MMAPFS_BLOCK_SIZE];
    memset(junk, 0xa5, sizeof(junk));
    assert_int_equal(mmio_write_at(io, sb.journal_start * MMAPFS_BLOCK_SIZE, junk,
                                   sizeof(junk)), 0);
    assert_int_equal(mmio_sync(io), 0);
    mmio_close(io);
    struct snapshot before;
    snapshot_take(path, &before);
    char *rep = check_n_unchanged(path, &before, FSCK_EXIT_UNCORRECTED);
    assert_non_null(strstr(rep, "both header slots are invalid"));
    free(rep);
    assert_int_equal(check_report(path, FS_CHECK_YES, &rep), FSCK_EXIT_CORRECTED);
    free(rep);
    assert_false(snapshot_same(path, &before));
    free(before.bytes);
    unlink(path);
}

/* The front door of fs_check: each refusal is one line that names the
 * problem, exit 8. */
static void test_bad_targets(void **state)
{
    (void)state;
    struct { const char *path; const char *says; } cases[] = {
        { "/nonexistent/image", "no such file or device" },
        { "/tmp", "is a directory" },
        { "/dev/null", "not a regular file or block device" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int mode = FS_CHECK_NO; mode <= FS_CHECK_YES; mode++) {
            char *rep;
            assert_int_equal(check_report(cases[i].path, mode, &rep), FSCK_EXIT_OPERATIONAL);
            if (!strstr(rep, cases[i].says))
                fprintf(stderr, "%s: expected \"%s\", got: %s", cases[i].path, cases[i].says,
                        rep);
            assert_non_null(strstr(rep, cases[i].says));
            size_t lines = 0;
            for (const char *p = rep; *p; p++)
                lines += *p == '\n';
            assert_int_equal(lines, 1);
            free(rep);
        }
    }
    /* too small to hold a superblock, and empty */
    char path[] = "/tmp/test_fsck_ro.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 100), 0);
    for (int size = 100; size >= 0; size -= 100) {
        assert_int_equal(ftruncate(fd, size), 0);
        char *rep;
        assert_int_equal(check_report(path, FS_CHECK_NO, &rep), FSCK_EXIT_OPERATIONAL);
        assert_non_null(strstr(rep, "too small to be an mmapfs filesystem"));
        free(rep);
    }
    close(fd);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_n_replays_in_memory),
        cmocka_unit_test(test_n_torn_transaction),
        cmocka_unit_test(test_n_bad_journal_headers),
        cmocka_unit_test(test_bad_targets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
