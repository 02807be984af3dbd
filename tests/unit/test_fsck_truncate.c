/*
 * test_fsck_truncate.c — fsck.mmapfs does not die of SIGBUS when the image
 * is truncated while it runs (fs_check reads metadata through raw
 * pointers into the engine's mapping; a page past the new end of the file
 * faults). It must stop with an operational error (exit 8) instead.
 *
 * The image is cut at data_start: the superblock, bitmaps and inode table
 * (read with guarded copies, mmio_read_at) stay, the tree nodes (read
 * through pointers) are gone.
 * - -y, deterministic: the engine's observer (mmio_set_observer,
 *   src/io/mmio_i.h, the crash recorder's hook) cuts the image right
 *   after fsck's first repair write; the next round's reads of tree nodes
 *   fault.
 * - -n: a second thread cuts the image at points spread over the time a
 *   check takes; every run must return 0 (it finished first), 4 (cut
 *   before it looked: the filesystem does not fit the image) or 8.
 * fsck runs in a child process (fsck_in_child), which must exit, not die.
 */
#include "fs_fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "fsck/fsck.h"
#include "fsck_report.h"
#include "io/mmio_i.h"

#define IMG_BYTES (64 * MiB)

static int img_setup(void **state)
{
    static const struct img_config c = { .name = "fsck-truncate", .bytes = IMG_BYTES };
    return img_setup_config(state, &c);
}

/* Fills the image: 40 directories of 60 files, so that the metadata
 * (directory trees, inline data) spreads over many blocks. */
static void populate(struct img *m)
{
    img_mount(m);
    for (int d = 0; d < 40; d++) {
        char name[64];
        snprintf(name, sizeof(name), "dir%d", d);
        uint64_t dir = mkdirectory(m->fs, ROOT, name);
        for (int f = 0; f < 60; f++) {
            snprintf(name, sizeof(name), "file-with-a-long-name-%d", f);
            uint64_t ino = mkfile(m->fs, dir, name);
            char buf[200];
            memset(buf, 'a' + f % 26, sizeof(buf));
            assert_int_equal(fs_write(m->fs, ino, 0, buf, sizeof(buf)), (ssize_t)sizeof(buf));
        }
    }
    img_unmount(m);
}

/* fsck_report in a child process: a run the guard abandons does not free
 * what its pass allocated (the program stops anyway), which the leak
 * checker of the sanitizer build would report at exit; the child leaves
 * with _exit. With cut_observer, the child installs it first. Returns the
 * exit code; the report in *report (the caller frees it). */
static const struct mmio_observer *cut_observer;

/* A thread the parent starts right after the fork (never before it: a
 * thread starting while the process forks can leave the child's allocator
 * locked), with its argument. */
static void *(*after_fork)(void *);
static void *after_fork_arg;

static int fsck_in_child(const char *path, enum fs_check_mode mode, char **report)
{
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(60);              /* a hung child fails the test, bounded */
        close(pipefd[0]);
        if (cut_observer)
            mmio_set_observer(cut_observer);
        char *rep = NULL;
        int r = fsck_report(path, mode, &rep);
        size_t len = strlen(rep), done = 0;
        while (done < len) {
            ssize_t w = write(pipefd[1], rep + done, len - done);
            if (w <= 0)
                break;
            done += (size_t)w;
        }
        _exit(r);
    }
    close(pipefd[1]);
    pthread_t t;
    if (after_fork)
        assert_int_equal(pthread_create(&t, NULL, after_fork, after_fork_arg), 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    char chunk[4096];
    ssize_t n;
    while ((n = read(pipefd[0], chunk, sizeof(chunk))) > 0)
        fwrite(chunk, 1, (size_t)n, f);
    fclose(f);
    close(pipefd[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (after_fork)
        pthread_join(t, NULL);
    if (!WIFEXITED(status))
        fail_msg("fsck died: %s", WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "?");
    if (report)
        *report = buf;
    else
        free(buf);
    return WEXITSTATUS(status);
}

/* ---- -y: truncated after the first repair write -------------------------------- */

static const char *cut_path;
static off_t cut_bytes;
static int cut_done;

static void cut_after_write(void *ctx, struct mmio *io, uint64_t off, size_t len)
{
    (void)ctx;
    (void)io;
    (void)off;
    (void)len;
    if (!cut_done && cut_path) {
        cut_done = 1;
        assert_int_equal(truncate(cut_path, cut_bytes), 0);
    }
}

static void test_repair_truncated(void **state)
{
    struct img *m = *state;
    populate(m);
    /* a repairable problem: the root directory's leaf marked free */
    struct mmapfs_disk_superblock sb;
    int fd = open(m->path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &sb, sizeof(sb), 0), (ssize_t)sizeof(sb));
    uint8_t map[4096];
    off_t at = (off_t)(sb.block_bitmap_start * 4096);
    assert_int_equal(pread(fd, map, sizeof(map), at), (ssize_t)sizeof(map));
    map[sb.data_start / 8] &= (uint8_t)~(1u << (sb.data_start % 8));
    assert_int_equal(pwrite(fd, map, sizeof(map), at), (ssize_t)sizeof(map));
    close(fd);

    static const struct mmio_observer obs = { .wrote = cut_after_write };
    cut_path = m->path;
    cut_bytes = (off_t)(sb.data_start * 4096);
    cut_done = 0;
    cut_observer = &obs;
    char *rep;
    int r = fsck_in_child(m->path, FS_CHECK_YES, &rep);
    cut_observer = NULL;
    /* the child cut the image */
    struct stat st;
    assert_int_equal(stat(m->path, &st), 0);
    assert_true(st.st_size < (off_t)IMG_BYTES);
    assert_int_equal(r, FSCK_EXIT_OPERATIONAL);
    assert_non_null(strstr(rep, "changed under fsck"));
    free(rep);
    m->skip_fsck = 1;
}

/* ---- -n: truncated by another thread -------------------------------------------- */

struct cutter {
    const char *path;
    off_t bytes;
    long delay_us;
};

static void *cut_later(void *arg)
{
    struct cutter *k = arg;
    struct timespec ts = { k->delay_us / 1000000, (k->delay_us % 1000000) * 1000 };
    nanosleep(&ts, NULL);
    if (truncate(k->path, k->bytes) != 0)
        abort();
    return NULL;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Copies file from to file to (sparse holes are written as zeros: the
 * image is small). */
static void copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(in >= 0 && out >= 0);
    static char buf[1 << 20];
    ssize_t n;
    while ((n = read(in, buf, sizeof(buf))) > 0)
        assert_int_equal(write(out, buf, (size_t)n), n);
    assert_int_equal(n, 0);
    close(in);
    close(out);
}

static void test_check_truncated(void **state)
{
    struct img *m = *state;
    populate(m);
    struct mmapfs_disk_superblock sb;
    int fd = open(m->path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &sb, sizeof(sb), 0), (ssize_t)sizeof(sb));
    close(fd);
    char work[80];
    snprintf(work, sizeof(work), "%s.work", m->path);
    copy_file(m->path, work);
    double t0 = now_s();
    assert_int_equal(fsck_in_child(work, FS_CHECK_NO, NULL), FSCK_EXIT_OK);
    double took = now_s() - t0;

    int stopped = 0, guarded = 0;
    enum { RUNS = 20 };
    for (int i = 0; i < RUNS; i++) {
        copy_file(m->path, work);
        struct cutter k = { work, (off_t)(sb.data_start * 4096), (long)(took * 1e6 * i / RUNS) };
        after_fork = cut_later;
        after_fork_arg = &k;
        char *rep;
        int r = fsck_in_child(work, FS_CHECK_NO, &rep);
        after_fork = NULL;
        /* finished first (0); cut before it looked (4: the filesystem does
         * not fit the image); cut while it ran (8); never killed */
        assert_true(r == FSCK_EXIT_OK || r == FSCK_EXIT_UNCORRECTED ||
                    r == FSCK_EXIT_OPERATIONAL);
        stopped += r != FSCK_EXIT_OK;
        guarded += strstr(rep, "changed under fsck") != NULL;
        free(rep);
    }
    print_message("fsck -n took %.3f s; %d of %d runs saw the cut, %d of them stopped by "
                  "the guard\n", took, stopped, RUNS, guarded);
    assert_true(stopped > 0);
    unlink(work);
}

#define T(f) cmocka_unit_test_setup_teardown(f, img_setup, img_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_repair_truncated),
        T(test_check_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
