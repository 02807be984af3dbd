/*
 * test_fs_mmp.c — multi-mount protection (src/fs/mmp.c) through the fs
 * core: format with MMP, a second claim refused while the first holds the
 * image, a clean unmount releases the block, a crash leaves it live and
 * the next mount waits it out, a holder whose block is overwritten stops
 * committing. The cross-path case (loop device and file) is
 * tests/integration/77_mmp.sh.
 */
#include "fs_fixture.h"

#include <errno.h>
#include <fcntl.h>

#include <pthread.h>
#include <sys/wait.h>

#include "fs/mkfs.h"
#include "fs/mmp.h"
#include "fs/offline.h"
#include "util/crc32c.h"

static int img_setup(void **state)
{
    static const struct img_config c = { .name = "mmp" };
    return img_setup_config(state, &c);
}

/* A 32 MiB image with MMP and a 1 s heartbeat. */
static void format_mmp(struct img *m)
{
    snprintf(m->path, sizeof(m->path), "/tmp/mmapfs-test-mmp-XXXXXX");
    int fd = mkstemp(m->path);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 32 * MiB), 0);
    close(fd);
    struct mmio *io;
    assert_int_equal(mmio_open(&io, m->path, 0, 0, NULL), 0);
    struct fs_format_options opt = { .mmp = 1, .mmp_interval = 1 };
    assert_int_equal(fs_format(io, &opt), 0);
    mmio_close(io);
}

static struct mmapfs_disk_mmp peek(struct img *m)
{
    struct mmapfs_disk_mmp b;
    assert_int_equal(fs_mmp_peek(m->path, 1, &b), 0);
    assert_true(fs_mmp_block_valid(&b));
    return b;
}

static struct mmapfs_disk_superblock superblock(struct img *m)
{
    struct mmapfs_disk_superblock sb;
    int fd = open(m->path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &sb, sizeof(sb), 0), (ssize_t)sizeof(sb));
    close(fd);
    return sb;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void test_format_and_release(void **state)
{
    struct img *m = *state;
    format_mmp(m);
    struct mmapfs_disk_superblock sb = superblock(m);
    assert_true(sb.feature_incompat & MMAPFS_FEATURE_INCOMPAT_MMP);
    assert_int_equal(sb.mmp_block, 1);
    assert_int_equal(sb.mmp_interval, 1);
    assert_int_equal(sb.backup_block, 2);           /* after the MMP block */
    assert_int_equal(sb.journal_start, 3);
    assert_int_equal(peek(m).seq, MMAPFS_MMP_SEQ_CLEAN);

    img_mount(m);
    struct mmapfs_disk_mmp b = peek(m);
    assert_true(b.seq >= 1 && b.seq <= MMAPFS_MMP_SEQ_MAX);
    assert_int_equal(b.pid, (uint32_t)getpid());
    /* the heartbeat moves */
    sleep(2);
    assert_int_not_equal(peek(m).seq, b.seq);

    /* a second claim (another path to the image would get here past the
     * flock) is refused at once: this host, a live pid */
    struct mmp *other = NULL;
    double t0 = now_s();
    assert_int_equal(fs_mmp_claim(&other, m->path, &sb, MMP_MOUNT, "test", NULL), -EBUSY);
    assert_null(other);
    assert_true(now_s() - t0 < 1.0);
    mkfile(m->fs, ROOT, "f");
    img_unmount(m);
    assert_int_equal(peek(m).seq, MMAPFS_MMP_SEQ_CLEAN);

    /* clean: the next mount is immediate */
    t0 = now_s();
    img_mount(m);
    assert_true(now_s() - t0 < 1.0);
    assert_true(lookup(m->fs, ROOT, "f") > 0);
    img_unmount_check(m);
}

static void test_crash_then_takeover(void **state)
{
    struct img *m = *state;
    format_mmp(m);
    img_mount(m);
    mkfile(m->fs, ROOT, "before-crash");
    assert_int_equal(fs_fsync(m->fs, ROOT, 0), 0);
    fs_abandon(m->fs);
    m->fs = NULL;
    uint32_t seq = peek(m).seq;
    assert_true(seq >= 1 && seq <= MMAPFS_MMP_SEQ_MAX);

    /* the holder is "alive" (our pid) and recent: a mount refuses */
    assert_int_equal(img_try_mount(m, (struct fs_options){ 0 }), -EBUSY);
    /* once the block is old enough, the mount watches it for 3 s and
     * takes over */
    sleep(5);
    double t0 = now_s();
    img_mount(m);
    assert_true(now_s() - t0 >= 2.5);
    assert_true(lookup(m->fs, ROOT, "before-crash") > 0);
    img_unmount_check(m);
}

static void test_lost_block_stops_commits(void **state)
{
    struct img *m = *state;
    format_mmp(m);
    img_mount(m);
    /* another writer's mkfs, or a damaged device: the block is zeroed */
    int fd = open(m->path, O_WRONLY);
    assert_true(fd >= 0);
    static char zero[4096];
    assert_int_equal(pwrite(fd, zero, sizeof(zero), 4096), (ssize_t)sizeof(zero));
    assert_int_equal(fsync(fd), 0);
    close(fd);
    sleep(2);
    assert_int_equal(jnl_error(m->fs->jnl), -EIO);
    struct fs_stat st;
    assert_true(fs_mknod(m->fs, ROOT, "after", S_IFREG | 0644, 0, &cred, &st) < 0);
    struct fs *fs = m->fs;
    m->fs = NULL;
    assert_int_equal(fs_unmount(fs), -EIO);
}

/* mkfs's claim of the image open as fd, granted. */
static struct mmp *mkfs_claim(struct img *m, int fd)
{
    struct mmp *claim = NULL;
    assert_int_equal(fs_mkfs_claim_mmp(fd, m->path, 32 * MiB, "mkfs", stderr, &claim), 0);
    return claim;
}

/* mkfs's claim of the image open as fd, refused: its message (free it),
 * *len its length. */
static char *mkfs_claim_refused(struct img *m, int fd, size_t *len)
{
    char *msg = NULL;
    struct mmp *claim = NULL;
    FILE *err = open_memstream(&msg, len);
    assert_non_null(err);
    assert_int_equal(fs_mkfs_claim_mmp(fd, m->path, 32 * MiB, "mkfs", err, &claim), -EBUSY);
    fclose(err);
    assert_null(claim);
    return msg;
}

/* mkfs over an MMP image (fs_mkfs_claim_mmp): a released block is claimed
 * (FSCK while mkfs writes), a live holder is refused with one line naming
 * it, an image without MMP needs nothing; with block 0 zeroed the backup
 * superblock still names the MMP block. */
static void test_mkfs_over_live_image(void **state)
{
    struct img *m = *state;
    format_mmp(m);
    struct mmp *claim;
    int fd = open(m->path, O_RDWR);
    assert_true(fd >= 0);
    claim = mkfs_claim(m, fd);
    assert_non_null(claim);
    assert_int_equal(peek(m).seq, MMAPFS_MMP_SEQ_FSCK);
    fs_mmp_release(claim, 1);
    assert_int_equal(peek(m).seq, MMAPFS_MMP_SEQ_CLEAN);

    img_mount(m);
    size_t len;
    char *msg = mkfs_claim_refused(m, fd, &len);
    char want[64];
    snprintf(want, sizeof(want), "pid %d", (int)getpid());
    assert_non_null(strstr(msg, "in use (multi-mount protection)"));
    assert_non_null(strstr(msg, want));
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += msg[i] == '\n';
    assert_int_equal(lines, 1);
    free(msg);
    /* block 0 gone: the backup superblock still leads to the MMP block */
    static const uint8_t zero[4096];
    struct mmapfs_disk_superblock sb0;
    assert_int_equal(pread(fd, &sb0, sizeof(sb0), 0), (ssize_t)sizeof(sb0));
    assert_int_equal(pwrite(fd, zero, sizeof(zero), 0), (ssize_t)sizeof(zero));
    assert_int_equal(fs_mkfs_claim_mmp(fd, m->path, 32 * MiB, "mkfs", NULL, &claim), -EBUSY);
    assert_int_equal(pwrite(fd, &sb0, sizeof(sb0), 0), (ssize_t)sizeof(sb0));
    img_unmount(m);

    /* no MMP: nothing to claim */
    struct mmio *io;
    assert_int_equal(mmio_open(&io, m->path, 0, 0, NULL), 0);
    assert_int_equal(fs_format(io, NULL), 0);
    mmio_close(io);
    claim = mkfs_claim(m, fd);
    assert_null(claim);
    close(fd);
}

/* A holder on "another machine": rewrites the MMP block (block 1) with a
 * new sequence number every 300 ms until told to stop. */
struct foreign {
    const char *path;
    int stop;               /* atomic */
};

static void *foreign_heartbeat(void *arg)
{
    struct foreign *f = arg;
    int fd = open(f->path, O_RDWR);
    if (fd < 0)
        return NULL;
    for (uint32_t seq = 1; !__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE); seq++) {
        struct mmapfs_disk_mmp b;
        memset(&b, 0, sizeof(b));
        b.magic = MMAPFS_MMP_MAGIC;
        b.seq = seq;
        b.time = (uint64_t)time(NULL);
        b.pid = 4242;
        b.interval = 1;
        snprintf(b.nodename, sizeof(b.nodename), "other-host");
        snprintf(b.device, sizeof(b.device), "/dev/shared");
        b.checksum = mfs_crc32c(0, &b, offsetof(struct mmapfs_disk_mmp, checksum));
        if (pwrite(fd, &b, sizeof(b), 4096) != (ssize_t)sizeof(b))
            break;
        fdatasync(fd);
        usleep(300 * 1000);
    }
    close(fd);
    return NULL;
}

/* mmapfs-resize and mmapfs-trim (fs_offline_open): a live holder elsewhere
 * is refused naming it; a dead one is waited out and taken over; while
 * open the block says FSCK, after fs_offline_close CLEAN. */
static void test_offline_tools_claim(void **state)
{
    struct img *m = *state;
    format_mmp(m);
    struct fs_offline o;
    char msg[512];

    assert_int_equal(fs_offline_open(&o, m->path, msg, sizeof(msg)), 0);
    assert_int_equal(peek(m).seq, MMAPFS_MMP_SEQ_FSCK);
    fs_offline_close(&o);
    assert_int_equal(peek(m).seq, MMAPFS_MMP_SEQ_CLEAN);

    struct foreign f = { m->path, 0 };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, foreign_heartbeat, &f), 0);
    usleep(100 * 1000);
    assert_int_equal(fs_offline_open(&o, m->path, msg, sizeof(msg)), -EBUSY);
    assert_non_null(strstr(msg, "in use (multi-mount protection): host other-host, pid 4242"));
    __atomic_store_n(&f.stop, 1, __ATOMIC_RELEASE);
    pthread_join(t, NULL);

    /* the holder died: waited out (2 x 1 + 1 s), then taken */
    double t0 = now_s();
    assert_int_equal(fs_offline_open(&o, m->path, msg, sizeof(msg)), 0);
    assert_true(now_s() - t0 >= 2.5);
    assert_int_equal(peek(m).seq, MMAPFS_MMP_SEQ_FSCK);
    fs_offline_close(&o);
    assert_int_equal(peek(m).seq, MMAPFS_MMP_SEQ_CLEAN);
    img_mount(m);
    img_unmount_check(m);
}

/* fsck -y restoring block 0 from the backup superblock of an MMP image
 * claims the MMP block first: with a live holder elsewhere it refuses and
 * writes nothing. */
static void test_fsck_restore_claims_first(void **state)
{
    struct img *m = *state;
    format_mmp(m);
    static const uint8_t zero[4096];
    int fd = open(m->path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, zero, sizeof(zero), 0), (ssize_t)sizeof(zero));

    struct foreign f = { m->path, 0 };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, foreign_heartbeat, &f), 0);
    usleep(100 * 1000);
    struct fs_check_options o = { .mode = FS_CHECK_YES };
    assert_int_equal(fs_check(m->path, &o, stderr), FSCK_EXIT_OPERATIONAL);
    uint8_t b0[4096];
    assert_int_equal(pread(fd, b0, sizeof(b0), 0), (ssize_t)sizeof(b0));
    assert_memory_equal(b0, zero, sizeof(zero));        /* nothing written */
    __atomic_store_n(&f.stop, 1, __ATOMIC_RELEASE);
    pthread_join(t, NULL);

    /* the holder died: restored (after waiting it out) */
    assert_int_equal(fs_check(m->path, &o, stderr), FSCK_EXIT_CORRECTED);
    assert_int_equal(peek(m).seq, MMAPFS_MMP_SEQ_CLEAN);
    close(fd);
    img_mount(m);
    img_unmount_check(m);
}

/* Rewrites the MMP block's pid (and checksum). */
static void set_holder_pid(struct img *m, uint32_t pid)
{
    struct mmapfs_disk_mmp b = peek(m);
    b.pid = pid;
    b.checksum = mfs_crc32c(0, &b, offsetof(struct mmapfs_disk_mmp, checksum));
    int fd = open(m->path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, &b, sizeof(b), 4096), (ssize_t)sizeof(b));
    close(fd);
}

/* A mkfs that stops before writing (refused without -f, a geometry that
 * does not fit) gives the block back CLEAN; an FSCK mark whose holder on
 * this host has ended (killed fsck, a tool that failed) is taken over at
 * once instead of refusing every later mount, fsck and mkfs; one whose
 * holder still runs is refused. */
static void test_ended_fsck_mark(void **state)
{
    struct img *m = *state;
    format_mmp(m);
    struct mmp *claim;
    int fd = open(m->path, O_RDWR);
    assert_true(fd >= 0);
    claim = mkfs_claim(m, fd);
    assert_int_equal(peek(m).seq, MMAPFS_MMP_SEQ_FSCK);
    fs_mkfs_release_mmp(claim, 0);
    assert_int_equal(peek(m).seq, MMAPFS_MMP_SEQ_CLEAN);

    /* the mark stays FSCK once formatting began (mkfs writes the new block) */
    claim = mkfs_claim(m, fd);
    fs_mkfs_release_mmp(claim, 1);
    assert_int_equal(peek(m).seq, MMAPFS_MMP_SEQ_FSCK);

    /* its holder still runs (this process): refused, naming it */
    size_t len;
    char *msg = mkfs_claim_refused(m, fd, &len);
    assert_non_null(strstr(msg, "being repaired by fsck.mmapfs"));
    free(msg);

    /* its holder has ended: taken over without waiting, then mounted */
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0)
        _exit(0);
    assert_int_equal(waitpid(child, NULL, 0), child);
    set_holder_pid(m, (uint32_t)child);
    double t0 = now_s();
    img_mount(m);
    assert_true(now_s() - t0 < 2.5);      /* no watching: that takes 3 s */
    assert_int_not_equal(peek(m).seq, MMAPFS_MMP_SEQ_FSCK);
    img_unmount_check(m);
    assert_int_equal(peek(m).seq, MMAPFS_MMP_SEQ_CLEAN);
    close(fd);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, img_setup, img_teardown)
    const struct CMUnitTest tests[] = {
        T(test_format_and_release),
        T(test_crash_then_takeover),
        T(test_lost_block_stops_commits),
        T(test_mkfs_over_live_image),
        T(test_offline_tools_claim),
        T(test_fsck_restore_claims_first),
        T(test_ended_fsck_mark),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
