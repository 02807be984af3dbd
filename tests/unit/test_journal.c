/*
 * Unit tests of the journal (src/journal): shadows, commit, checkpoint,
 * group commit, throttling, recovery from simulated crashes at every step
 * of the commit protocol, torn and corrupt logs, corrupt headers.
 *
 * Images are sparse temporary files ($TMPDIR or /tmp) opened with libmmio.
 * A "crash" is simulated with the private hooks of journal_i.h: the commit
 * thread stops at a chosen point, the journal is dropped without writing
 * anything more, and jnl_recover runs on the image as it was left. (The
 * mapping is the "disk" here: these tests check the protocol's logic; real
 * power cuts are the job of tests/crash.)
 *
 * JNL_TEST_SEED=<n> replays the randomised tests with another seed.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fs/format.h"
#include "journal/journal.h"
#include "journal/journal_i.h"
#include "crash_points.h"
#include "mmapfs/mmio.h"
#include "util/crc32c.h"
#include "util/hash64.h"

#define BS          4096u
#define IMG_BLOCKS  2048u          /* 8 MiB */
#define J_START     1u
#define J_BLOCKS    1100u
#define DATA0       (J_START + J_BLOCKS)
#define LOG_BLOCKS  (J_BLOCKS - 2)

/* ---- helpers ---------------------------------------------------------------- */

struct img {
    char path[512];
    int fd;                 /* reads "the disk" behind the journal's back */
    struct mmio *io;
    struct jnl_geometry geo;
};

static void img_create_ex(struct img *im, uint64_t blocks, uint64_t jblocks,
                          enum mmio_backend backend)
{
    const char *dir = getenv("TMPDIR");
    struct mmio_config cfg = { .sync_delay_us = 0, .backend = backend };

    snprintf(im->path, sizeof(im->path), "%s/test_journal.XXXXXX", dir ? dir : "/tmp");
    im->fd = mkstemp(im->path);
    assert_true(im->fd >= 0);
    assert_int_equal(ftruncate(im->fd, (off_t)(blocks * BS)), 0);
    assert_int_equal(mmio_open(&im->io, im->path, 0, 0,
                               backend == MMIO_BACKEND_MMAP ? NULL : &cfg), 0);
    im->geo = (struct jnl_geometry){ .journal_start = J_START, .journal_blocks = jblocks,
                                     .block_count = blocks };
    assert_int_equal(jnl_format(im->io, &im->geo), 0);
}

static void img_create(struct img *im)
{
    img_create_ex(im, IMG_BLOCKS, J_BLOCKS, MMIO_BACKEND_MMAP);
}

static void img_destroy(struct img *im)
{
    mmio_close(im->io);
    close(im->fd);
    unlink(im->path);
}

static struct jnl *jopen(struct img *im)
{
    struct jnl_config cfg = { 0 };
    struct jnl *j = NULL;
    assert_int_equal(jnl_open(&j, im->io, &im->geo, &cfg), 0);
    assert_non_null(j);
    return j;
}

/* Content of block blk at version ver (version 0 = zeros). */
static void pattern(void *p, uint64_t blk, uint64_t ver)
{
    uint64_t *w = p;
    if (ver == 0) {
        memset(p, 0, BS);
        return;
    }
    for (uint64_t i = 0; i < BS / 8; i++)
        w[i] = (blk << 32) ^ (ver << 12) ^ i ^ 0x5a5a000000000000ull;
}

static int block_is(const void *p, uint64_t blk, uint64_t ver)
{
    static __thread uint8_t want[BS];
    pattern(want, blk, ver);
    return p && memcmp(p, want, BS) == 0;
}

/* Is the image's block blk (read with pread, not through the journal) at ver? */
static int disk_is(struct img *im, uint64_t blk, uint64_t ver)
{
    uint8_t buf[BS];
    if (pread(im->fd, buf, BS, (off_t)(blk * BS)) != (ssize_t)BS)
        return 0;
    return block_is(buf, blk, ver);
}

/* One operation: writes blocks blks[0..n) at version ver. Returns its seq. */
static uint64_t op_write(struct jnl *j, const uint64_t *blks, size_t n, uint64_t ver)
{
    assert_int_equal(jnl_begin(j), 0);
    for (size_t i = 0; i < n; i++) {
        void *p = jnl_write(j, blks[i]);
        assert_non_null(p);
        pattern(p, blks[i], ver);
    }
    uint64_t seq = jnl_running_seq(j);
    jnl_end(j);
    return seq;
}

static struct jnl_head_state read_head(struct img *im)
{
    struct jnl_head_state h;
    uint8_t buf[BS];
    assert_int_equal(jnl_head_read(im->io, &im->geo, &h, buf), 0);
    return h;
}

/* Flips one byte of log index idx at byte offset off. */
static void flip_log_byte(struct img *im, uint64_t idx, uint64_t off)
{
    uint8_t b;
    uint64_t at = jnl_log_off(&im->geo, idx) + off;
    assert_int_equal(mmio_read_at(im->io, at, &b, 1), 0);
    b ^= 0x40;
    assert_int_equal(mmio_write_at(im->io, at, &b, 1), 0);
}

static uint64_t replay_count(struct img *im)
{
    uint64_t n = 12345;
    assert_int_equal(jnl_recover(im->io, &im->geo, 1, &n), 0);
    return n;
}

static uint64_t rng_state;
static uint64_t rnd(uint64_t bound)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return bound ? rng_state % bound : rng_state;
}

static uint64_t test_seed(void)
{
    const char *s = getenv("JNL_TEST_SEED");
    return s ? strtoull(s, NULL, 0) : 20260126;
}

/* Calls jnl_commit_wait(seq) on its own thread. */
struct waiter {
    pthread_t thread;
    struct jnl *j;
    uint64_t seq;
    int result;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    w->result = jnl_commit_wait(w->j, w->seq);
    return NULL;
}

static void waiter_start(struct waiter *w, struct jnl *j, uint64_t seq)
{
    w->j = j;
    w->seq = seq;
    w->result = 1;
    assert_int_equal(pthread_create(&w->thread, NULL, waiter_main, w), 0);
}

static int waiter_join(struct waiter *w)
{
    pthread_join(w->thread, NULL);
    return w->result;
}

/* Durable callback (runs on the commit thread: no cmocka asserts there). */
static uint64_t last_durable_cb;
static int durable_cb_order_ok = 1;
static void durable_cb(void *ctx, uint64_t seq)
{
    (void)ctx;
    if (seq <= last_durable_cb)
        durable_cb_order_ok = 0;
    last_durable_cb = seq;
}

/* ---- basic commit, invariant 1 --------------------------------------------------- */

static void test_commit_basic(void **state)
{
    (void)state;
    struct img im;
    img_create(&im);
    struct jnl *j = jopen(&im);
    struct jnl_metrics m;
    uint64_t blks[10];

    for (int i = 0; i < 10; i++)
        blks[i] = DATA0 + 3 * (uint64_t)i;
    last_durable_cb = 0;
    jnl_set_durable_callback(j, durable_cb, NULL);
    uint64_t seq0 = jnl_running_seq(j);
    assert_int_equal(jnl_durable_seq(j), seq0 - 1);
    assert_true(seq0 < (1ull << 62));

    uint64_t seq = op_write(j, blks, 10, 1);
    assert_int_equal(seq, seq0);
    /* Invariant 1: the mapping keeps the old content, readers see the new. */
    jnl_lock(j);
    assert_int_equal(jnl_running_blocks(j), 10);
    for (int i = 0; i < 10; i++) {
        assert_true(disk_is(&im, blks[i], 0));
        assert_true(block_is(mmio_ptr(im.io, blks[i] * BS), blks[i], 0));
        assert_true(block_is(jnl_read(j, blks[i]), blks[i], 1));
    }
    assert_null(jnl_read(j, IMG_BLOCKS));
    assert_null(jnl_write(j, J_START + 5));       /* inside the journal */
    assert_int_equal(errno, ERANGE);
    jnl_unlock(j);

    assert_int_equal(jnl_commit_wait(j, seq), 0);
    assert_true(jnl_durable_seq(j) >= seq);
    assert_int_equal(last_durable_cb, seq);
    assert_true(durable_cb_order_ok);
    for (int i = 0; i < 10; i++)
        assert_true(disk_is(&im, blks[i], 1));
    jnl_get_metrics(j, &m);
    assert_int_equal(m.commits, 1);
    assert_int_equal(m.commit_blocks, 10);
    assert_int_equal(m.checkpoint_blocks, 10);
    assert_int_equal(m.shadow_blocks_now, 0);
    assert_int_equal(m.commit_waits, 1);

    /* Already durable: a data sync only; an empty running txn likewise. */
    assert_int_equal(jnl_commit_wait(j, seq), 0);
    assert_int_equal(jnl_commit_wait(j, jnl_running_seq(j)), 0);
    assert_int_equal(jnl_sync_data(j), 0);
    jnl_get_metrics(j, &m);
    assert_int_equal(m.commits, 1);

    assert_int_equal(jnl_close(j), 0);
    assert_int_equal(replay_count(&im), 0);
    j = jopen(&im);
    assert_true(jnl_running_seq(j) > seq);
    jnl_lock(j);
    assert_true(block_is(jnl_read(j, blks[3]), blks[3], 1));
    jnl_unlock(j);
    assert_int_equal(jnl_close(j), 0);
    img_destroy(&im);
}

/* ---- crash at each step of the commit protocol ------------------------------------- */

/* Raw copy of both journal header slots, read and written behind the
 * journal's back: restoring an older copy simulates a lazy header write
 * that a power cut lost. */
struct heads {
    uint8_t raw[2 * BS];
};

static void heads_save(struct img *im, struct heads *h)
{
    assert_int_equal(pread(im->fd, h->raw, 2 * BS, (off_t)(J_START * BS)), (ssize_t)(2 * BS));
}

static void heads_restore(struct img *im, const struct heads *h)
{
    assert_int_equal(pwrite(im->fd, h->raw, 2 * BS, (off_t)(J_START * BS)), (ssize_t)(2 * BS));
}

/* Puts block blk of the image at version ver (a lost home write). */
static void disk_put(struct img *im, uint64_t blk, uint64_t ver)
{
    uint8_t buf[BS];
    pattern(buf, blk, ver);
    assert_int_equal(pwrite(im->fd, buf, BS, (off_t)(blk * BS)), (ssize_t)BS);
}

/* An operation like op_write that also marks new file data. */
static uint64_t op_write_ordered(struct jnl *j, const uint64_t *blks, size_t n, uint64_t ver)
{
    assert_int_equal(jnl_begin(j), 0);
    jnl_note_new_data(j);
    for (size_t i = 0; i < n; i++)
        pattern(jnl_write(j, blks[i]), blks[i], ver);
    uint64_t seq = jnl_running_seq(j);
    jnl_end(j);
    return seq;
}

/* T1 and T2 commit normally, T3 is cut at 'point'. With 'lose', the
 * writes that were not synced at the cut are lost too: T2's checkpoint
 * (unless T3's first sync of an ordered commit ran) and the lazy header
 * written during T3's commit. 'ordered': T2 and T3 carry new file data
 * (two syncs each). Checks which header is current, the dry run, replay,
 * and that the journal goes on afterwards. */
static void crash_case(enum jnl_crash_point point, int lose, int ordered)
{
    struct img im;
    img_create(&im);
    struct jnl *j = jopen(&im);
    uint64_t a[4] = { DATA0, DATA0 + 1, DATA0 + 2, DATA0 + 3 };
    uint64_t b[3] = { DATA0, DATA0 + 10, DATA0 + 11 };
    struct heads saved;
    int t3 = point >= JNL_CRASH_AFTER_COMMIT_BLOCK;
    uint64_t (*op)(struct jnl *, const uint64_t *, size_t, uint64_t) =
        ordered ? op_write_ordered : op_write;

    uint64_t s1 = op_write(j, a, 4, 1);
    assert_int_equal(jnl_commit_wait(j, s1), 0);
    uint64_t s2 = op(j, a, 2, 2);
    assert_int_equal(jnl_commit_wait(j, s2), 0);
    /* lazy: a plain commit does not move the header to itself */
    assert_int_equal(read_head(&im).seq, ordered ? s2 : s1);
    heads_save(&im, &saved);
    uint64_t s3 = jnl_running_seq(j);
    crash_at(s3, point);
    assert_int_equal(op(j, b, 3, 3), s3);
    assert_int_equal(jnl_commit_wait(j, s3), -EIO);
    assert_int_equal(jnl_error(j), -EIO);
    assert_int_equal(jnl_begin(j), -EIO);
    jnl_lock(j);
    assert_null(jnl_write(j, DATA0 + 50));
    assert_int_equal(errno, EIO);
    jnl_unlock(j);
    jnl_abandon(j);

    /* Which header the commit of T3 left: T2 once T2's checkpoint could
     * be durable (after a sync of T3), T3 itself once an ordered T3 had
     * its first sync. */
    uint64_t want_head = s2;
    if (ordered && point >= JNL_CRASH_AFTER_COMMIT_BLOCK)
        want_head = s3;
    if (!ordered && point == JNL_CRASH_AFTER_LOG)
        want_head = s2;
    assert_int_equal(read_head(&im).seq, want_head);
    if (point != JNL_CRASH_MID_CHECKPOINT)
        assert_true(disk_is(&im, DATA0 + 10, 0));

    if (lose) {
        /* only writes not yet synced can be lost */
        assert_true(point <= JNL_CRASH_AFTER_COMMIT_BLOCK);
        heads_restore(&im, &saved);
        if (!(ordered && point == JNL_CRASH_AFTER_COMMIT_BLOCK))
            for (int i = 0; i < 2; i++)
                disk_put(&im, a[i], 1);
    }
    struct jnl_head_state h = read_head(&im);
    uint64_t want_replayed = s3 - h.seq + (uint64_t)t3;
    assert_int_equal(replay_count(&im), want_replayed);
    assert_int_equal(replay_count(&im), want_replayed);   /* dry run wrote nothing */

    uint64_t n = 0;
    assert_int_equal(jnl_recover(im.io, &im.geo, 0, &n), 0);
    assert_int_equal(n, want_replayed);
    assert_true(disk_is(&im, DATA0, t3 ? 3 : 2));
    assert_true(disk_is(&im, DATA0 + 1, 2));
    assert_true(disk_is(&im, DATA0 + 2, 1));
    assert_true(disk_is(&im, DATA0 + 3, 1));
    assert_true(disk_is(&im, DATA0 + 10, t3 ? 3 : 0));
    assert_true(disk_is(&im, DATA0 + 11, t3 ? 3 : 0));
    assert_int_equal(replay_count(&im), 0);               /* header reset */

    /* The journal goes on from there; seq numbers are not reused. */
    j = jopen(&im);
    assert_true(jnl_running_seq(j) > s3);
    uint64_t s4 = op_write(j, a, 1, 4);
    assert_int_equal(jnl_commit_wait(j, s4), 0);
    assert_true(disk_is(&im, DATA0, 4));
    assert_int_equal(jnl_close(j), 0);
    assert_int_equal(replay_count(&im), 0);
    img_destroy(&im);
}

static void test_crash_after_log(void **state)
{
    (void)state;
    crash_case(JNL_CRASH_AFTER_LOG, 0, 0);
    crash_case(JNL_CRASH_AFTER_LOG, 1, 0);     /* header back at T1: T1, T2 replayed */
    crash_case(JNL_CRASH_AFTER_LOG, 0, 1);
    crash_case(JNL_CRASH_AFTER_LOG, 1, 1);
}

static void test_crash_after_commit_block(void **state)
{
    (void)state;
    crash_case(JNL_CRASH_AFTER_COMMIT_BLOCK, 0, 0);  /* T3 found after T2 */
    crash_case(JNL_CRASH_AFTER_COMMIT_BLOCK, 1, 0);
    crash_case(JNL_CRASH_AFTER_COMMIT_BLOCK, 0, 1);  /* header at T3 already */
    crash_case(JNL_CRASH_AFTER_COMMIT_BLOCK, 1, 1);
}

static void test_crash_after_sync(void **state)
{
    (void)state;
    crash_case(JNL_CRASH_AFTER_SYNC, 0, 0);
    crash_case(JNL_CRASH_AFTER_SYNC, 0, 1);
}

static void test_crash_mid_checkpoint(void **state)
{
    (void)state;
    crash_case(JNL_CRASH_MID_CHECKPOINT, 0, 0);
    crash_case(JNL_CRASH_MID_CHECKPOINT, 0, 1);
}

/* One sync per commit in steady state; two when the transaction makes new
 * file data reachable (the data is synced before the commit block). */
static void test_commit_syncs(void **state)
{
    (void)state;
    struct img im;
    img_create(&im);
    struct jnl *j = jopen(&im);
    struct mmio_metrics e0, e1;
    struct jnl_metrics m0, m1;
    uint64_t blk[3];

    jnl_get_metrics(j, &m0);
    for (uint64_t k = 0; k < 20; k++) {
        int ordered = k >= 10;
        for (int i = 0; i < 3; i++)
            blk[i] = DATA0 + (k * 7 + (uint64_t)i) % 300;
        mmio_get_metrics(im.io, &e0);
        uint64_t s = ordered ? op_write_ordered(j, blk, 3, k + 1) : op_write(j, blk, 3, k + 1);
        assert_int_equal(jnl_commit_wait(j, s), 0);
        mmio_get_metrics(im.io, &e1);
        assert_int_equal(e1.syncs - e0.syncs, ordered ? 2 : 1);
        /* an ordered commit leaves the header at itself, a plain one
         * one behind (at the format's seq for the very first) */
        assert_int_equal(read_head(&im).seq, ordered || k == 0 ? s : s - 1);
    }
    jnl_get_metrics(j, &m1);
    assert_int_equal(m1.commits - m0.commits, 20);
    assert_int_equal(m1.ordered_commits - m0.ordered_commits, 10);
    assert_int_equal(m1.commit_syncs - m0.commit_syncs, 30);
    assert_int_equal(m1.log_full_syncs, 0);
    assert_true(m1.header_writes > 0);
    printf("commit syncs: %lu for 10 metadata-only + 10 ordered commits\n",
           (unsigned long)(m1.commit_syncs - m0.commit_syncs));
    assert_int_equal(jnl_close(j), 0);
    assert_int_equal(replay_count(&im), 0);
    img_destroy(&im);
}

/* The header lags: replay walks every transaction from the one it names,
 * and an older header (a lost lazy write) replays more of them. */
static void test_lazy_header(void **state)
{
    (void)state;
    struct img im;
    img_create(&im);
    struct heads first;
    heads_save(&im, &first);
    struct jnl *j = jopen(&im);
    uint64_t s[7], blk[2];

    for (uint64_t k = 1; k <= 6; k++) {
        blk[0] = DATA0;                 /* changed by every transaction */
        blk[1] = DATA0 + k;
        s[k] = op_write(j, blk, 2, k);
        if (k < 6)
            assert_int_equal(jnl_commit_wait(j, s[k]), 0);
    }
    crash_at(s[6], JNL_CRASH_AFTER_SYNC);
    assert_int_equal(jnl_commit_wait(j, s[6]), -EIO);
    jnl_abandon(j);

    struct jnl_head_state h = read_head(&im);
    assert_true(h.seq > s[1] && h.seq < s[6]);
    assert_int_equal(replay_count(&im), s[6] - h.seq + 1);
    /* the header format opened with (older, still intact log): six */
    heads_restore(&im, &first);
    assert_int_equal(replay_count(&im), 6);
    assert_int_equal(jnl_recover(im.io, &im.geo, 0, NULL), 0);
    assert_true(disk_is(&im, DATA0, 6));
    for (uint64_t k = 1; k <= 6; k++)
        assert_true(disk_is(&im, DATA0 + k, k));
    assert_int_equal(replay_count(&im), 0);
    img_destroy(&im);
}

/* Close after a failure returns the sticky error and writes nothing. */
static void test_sticky_close(void **state)
{
    (void)state;
    struct img im;
    img_create(&im);
    struct jnl *j = jopen(&im);
    uint64_t a[1] = { DATA0 };
    uint64_t s = jnl_running_seq(j);
    crash_at(s, JNL_CRASH_AFTER_SYNC);
    op_write(j, a, 1, 1);
    assert_int_equal(jnl_commit_wait(j, s), -EIO);
    assert_int_equal(jnl_sync_data(j), -EIO);
    assert_int_equal(jnl_close(j), -EIO);
    assert_true(disk_is(&im, DATA0, 0));
    assert_int_equal(replay_count(&im), 1);
    img_destroy(&im);
}

/* A small transaction nobody waits for is committed by the periodic timer. */
static void test_periodic_commit(void **state)
{
    (void)state;
    struct img im;
    img_create(&im);
    struct jnl_config cfg = { .commit_interval_ms = 50 };
    struct jnl *j = NULL;
    uint64_t a[1] = { DATA0 };

    assert_int_equal(jnl_open(&j, im.io, &im.geo, &cfg), 0);
    usleep(100 * 1000);           /* the commit thread is idle, no timer armed */
    uint64_t s = op_write(j, a, 1, 1);
    for (int i = 0; i < 200 && jnl_durable_seq(j) < s; i++)
        usleep(10 * 1000);
    assert_true(jnl_durable_seq(j) >= s);
    jnl_lock(j);                  /* the checkpoint ran under the lock */
    jnl_unlock(j);
    assert_true(disk_is(&im, DATA0, 1));
    assert_int_equal(jnl_close(j), 0);
    img_destroy(&im);
}

/* ---- torn transactions ------------------------------------------------------------- */

/* T1 home; T2 durable in the log only (the lazy header still names T1);
 * one byte of T2 (at log index start + rel, byte off) is flipped: T2 must
 * not be replayed, T1 (whose blocks are home) may be. */
static void torn_case(uint64_t rel, uint64_t off)
{
    struct img im;
    img_create(&im);
    struct jnl *j = jopen(&im);
    uint64_t a[3] = { DATA0, DATA0 + 1, DATA0 + 2 };

    uint64_t s1 = op_write(j, a, 3, 1);
    assert_int_equal(jnl_commit_wait(j, s1), 0);
    uint64_t s2 = jnl_running_seq(j);
    crash_at(s2, JNL_CRASH_AFTER_SYNC);
    op_write(j, a, 3, 2);
    assert_int_equal(jnl_commit_wait(j, s2), -EIO);
    jnl_abandon(j);

    struct jnl_head_state h = read_head(&im);
    assert_int_equal(h.seq, s1);
    assert_int_equal(replay_count(&im), 2);
    flip_log_byte(&im, h.start + 5 + rel, off);   /* T1: desc, 3 images, commit */
    assert_int_equal(replay_count(&im), 1);
    uint64_t n = 9;
    assert_int_equal(jnl_recover(im.io, &im.geo, 0, &n), 0);
    assert_int_equal(n, 1);
    for (int i = 0; i < 3; i++)
        assert_true(disk_is(&im, a[i], 1));
    /* The torn transaction's seq is skipped from now on. */
    assert_int_equal(read_head(&im).seq, s2 + 1);
    j = jopen(&im);
    assert_int_equal(jnl_running_seq(j), s2 + 1);
    assert_int_equal(jnl_close(j), 0);
    img_destroy(&im);
}

static void test_torn_image(void **state)
{
    (void)state;
    torn_case(2, 1000);            /* second image */
}

static void test_torn_commit_block(void **state)
{
    (void)state;
    torn_case(4, 20);              /* desc + 3 images, then the commit block */
}

static void test_torn_descriptor(void **state)
{
    (void)state;
    torn_case(0, 24 + 8 * 100);    /* an unused home[] slot: covered by the CRC */
}

/* ---- stale images that CRC-32C cannot see -------------------------------------------- */

/* Block content made of 16 records of 256 bytes, each ending in the CRC-32C
 * of its first 252 bytes, like an inode table block; variant changes one
 * byte of record 0 (and its CRC). */
static void records_block(uint8_t *p, unsigned variant)
{
    for (unsigned r = 0; r < BS / 256; r++) {
        uint8_t *rec = p + r * 256;
        for (unsigned k = 0; k < 252; k++)
            rec[k] = (uint8_t)(r * 7 + k);
        if (r == 0)
            rec[10] ^= (uint8_t)variant;
        uint32_t c = mfs_crc32c(0, rec, 252);
        memcpy(rec + 252, &c, sizeof(c));
    }
}

/* Rewrites the commit block at log index idx with flags and its data_hash
 * xor hash_xor, its own checksum made right again. */
static void edit_commit(struct img *im, uint64_t idx, uint32_t flags, uint64_t hash_xor)
{
    struct mmapfs_disk_jnl_commit c;
    uint64_t at = jnl_log_off(&im->geo, idx);
    assert_int_equal(mmio_read_at(im->io, at, &c, sizeof(c)), 0);
    assert_int_equal(c.magic, MMAPFS_JNL_COMMIT_MAGIC);
    assert_int_equal(c.flags, MMAPFS_JNL_COMMIT_HASH);     /* what writers write */
    c.flags = flags;
    c.data_hash ^= hash_xor;
    c.checksum = mfs_crc32c(0, &c, offsetof(struct mmapfs_disk_jnl_commit, checksum));
    assert_int_equal(mmio_write_at(im->io, at, &c, sizeof(c)), 0);
}

/* T1 home; T2 (one image of a[0], a block of self-checksummed records)
 * durable in the log only. Returns the log index of T2's descriptor. */
static uint64_t stale_setup(struct img *im, const uint64_t *a)
{
    struct jnl *j = jopen(im);
    uint64_t s1 = op_write(j, a, 3, 1);
    assert_int_equal(jnl_commit_wait(j, s1), 0);
    uint64_t s2 = jnl_running_seq(j);
    crash_at(s2, JNL_CRASH_AFTER_SYNC);
    assert_int_equal(jnl_begin(j), 0);
    uint8_t *p = jnl_write(j, a[0]);
    assert_non_null(p);
    assert_true(jnl_shadow_written(j, a[0]));
    records_block(p, 0);
    jnl_end(j);
    assert_int_equal(jnl_commit_wait(j, s2), -EIO);
    jnl_abandon(j);
    struct jnl_head_state h = read_head(im);
    assert_int_equal(h.seq, s1);
    assert_int_equal(replay_count(im), 2);
    return h.start + 5;                  /* after T1: desc, 3 images, commit */
}

/* An earlier lap of the log can leave, where a new transaction's image
 * goes, an older version of the same block. If the new image did not
 * reach the disk but the commit block did, replay must see it. Two
 * versions that differ only inside records ending in their own CRC-32C
 * have the same CRC-32C (the difference is a CRC codeword), so the
 * transaction's data_checksum is blind to it; data_hash is not. */
static void test_stale_image_same_crc(void **state)
{
    (void)state;
    struct img im;
    img_create(&im);
    uint64_t a[3] = { DATA0, DATA0 + 1, DATA0 + 2 };
    uint64_t t2 = stale_setup(&im, a);

    uint8_t fresh[BS], stale[BS];
    assert_int_equal(mmio_read_at(im.io, jnl_log_off(&im.geo, t2 + 1), fresh, BS), 0);
    records_block(stale, 0);
    assert_memory_equal(fresh, stale, BS);           /* T2's image is where expected */
    records_block(stale, 0x20);
    assert_memory_not_equal(fresh, stale, BS);
    assert_int_equal(mfs_crc32c(0, fresh, BS), mfs_crc32c(0, stale, BS));
    assert_true(mfs_hash64(0, fresh, BS) != mfs_hash64(0, stale, BS));

    assert_int_equal(mmio_write_at(im.io, jnl_log_off(&im.geo, t2 + 1), stale, BS), 0);
    assert_int_equal(replay_count(&im), 1);          /* T2 is torn, not replayed */
    uint64_t n = 9;
    assert_int_equal(jnl_recover(im.io, &im.geo, 0, &n), 0);
    assert_int_equal(n, 1);
    assert_true(disk_is(&im, a[0], 1));              /* not the stale image */
    img_destroy(&im);
}

/* Commits without the hash flag (written before it existed) are checked by
 * their CRC alone and replayed; with the flag, a wrong hash makes the
 * transaction invalid even when everything else checks out. */
static void test_commit_hash_flag(void **state)
{
    (void)state;
    uint64_t a[3] = { DATA0, DATA0 + 1, DATA0 + 2 };
    struct img im;

    img_create(&im);
    uint64_t t2 = stale_setup(&im, a);
    edit_commit(&im, t2 + 2, 0, 0);                  /* an older writer's commit */
    assert_int_equal(replay_count(&im), 2);
    img_destroy(&im);

    img_create(&im);
    t2 = stale_setup(&im, a);
    edit_commit(&im, t2 + 2, MMAPFS_JNL_COMMIT_HASH, 1);
    assert_int_equal(replay_count(&im), 1);
    img_destroy(&im);

    img_create(&im);
    t2 = stale_setup(&im, a);
    edit_commit(&im, t2 + 2, MMAPFS_JNL_COMMIT_HASH | 0x80, 0);  /* reserved bit: ignored */
    assert_int_equal(replay_count(&im), 2);
    img_destroy(&im);
}

/* An invalid transaction ends replay: a valid one after it is not applied. */
static void test_torn_stops_replay(void **state)
{
    (void)state;
    struct img im;
    img_create(&im);
    struct jnl *j = jopen(&im);
    uint64_t a[2] = { DATA0, DATA0 + 1 };

    uint64_t s1 = op_write(j, a, 2, 1);
    assert_int_equal(jnl_commit_wait(j, s1), 0);
    uint64_t s2 = op_write(j, a, 2, 2);
    assert_int_equal(jnl_commit_wait(j, s2), 0);
    uint64_t s3 = jnl_running_seq(j);
    crash_at(s3, JNL_CRASH_AFTER_COMMIT_BLOCK);
    op_write(j, a, 2, 3);
    assert_int_equal(jnl_commit_wait(j, s3), -EIO);
    jnl_abandon(j);

    struct jnl_head_state h = read_head(&im);
    assert_int_equal(h.seq, s2);
    assert_int_equal(replay_count(&im), 2);          /* T2 and T3 */
    flip_log_byte(&im, h.start + 1, 7);              /* T2's first image */
    assert_int_equal(replay_count(&im), 0);
    assert_int_equal(jnl_recover(im.io, &im.geo, 0, NULL), 0);
    assert_true(disk_is(&im, DATA0, 2));             /* T2 was home already */
    assert_true(disk_is(&im, DATA0 + 1, 2));         /* T3 not applied */
    img_destroy(&im);
}

/* Every single-byte corruption of a transaction's log blocks is caught. */
static void test_fuzz_flips(void **state)
{
    (void)state;
    struct img im;
    img_create(&im);
    struct jnl *j = jopen(&im);
    uint64_t a[5] = { DATA0, DATA0 + 7, DATA0 + 9, DATA0 + 100, 0 };

    rng_state = test_seed() | 1;
    uint64_t s = jnl_running_seq(j);
    crash_at(s, JNL_CRASH_AFTER_SYNC);
    op_write(j, a, 5, 1);
    assert_int_equal(jnl_commit_wait(j, s), -EIO);
    jnl_abandon(j);
    struct jnl_head_state h = read_head(&im);
    assert_int_equal(replay_count(&im), 1);
    for (int k = 0; k < 300; k++) {
        uint64_t rel = rnd(7), off = rnd(BS);     /* desc, 5 images, commit */
        flip_log_byte(&im, h.start + rel, off);
        assert_int_equal(replay_count(&im), 0);
        flip_log_byte(&im, h.start + rel, off);
    }
    assert_int_equal(replay_count(&im), 1);
    img_destroy(&im);
}

/* ---- wrap-around ----------------------------------------------------------------------- */

/* Many transactions of n_min .. n_min+n_span-1 blocks (of a pool of 400)
 * wrap around the log; the last one is cut after its commit block. Then
 * the writes not yet synced are lost too: the lazy header written during
 * the cut commit and the previous transaction's checkpoint. Replay from the
 * older header must still find every transaction it needs intact (the
 * live window kept them), and every block ends at its last version. */
static void wrap_case(size_t n_min, size_t n_span, uint64_t txns, uint64_t seed_mul,
                      struct jnl_metrics *m)
{
    struct img im;
    img_create(&im);
    struct jnl *j = jopen(&im);
    static uint64_t ver[400], before[400];
    uint64_t blks[400];
    struct heads saved;
    struct jnl_metrics m0;
    size_t n = 0;

    memset(ver, 0, sizeof(ver));
    rng_state = test_seed() * seed_mul + 1;
    for (uint64_t t = 1; t <= txns; t++) {
        memcpy(before, ver, sizeof(ver));
        n = n_min + rnd(n_span);
        for (size_t i = 0; i < n; i++) {
            blks[i] = (t * 37 + i) % 400;
            ver[blks[i]] = t;
            blks[i] += DATA0;
        }
        uint64_t s = op_write(j, blks, n, t);
        assert_int_equal(jnl_commit_wait(j, s), 0);
    }
    jnl_get_metrics(j, &m0);
    assert_true(m0.wraps >= 3);
    assert_int_equal(m0.commits, txns);

    /* The last transaction reaches the log only. */
    heads_save(&im, &saved);
    uint64_t s = jnl_running_seq(j);
    crash_at(s, JNL_CRASH_AFTER_COMMIT_BLOCK);
    uint64_t last_blks[400];
    memcpy(last_blks, blks, n * sizeof(*blks));
    size_t last_n = n;
    n = n_min + rnd(n_span);
    for (size_t i = 0; i < n; i++) {
        blks[i] = DATA0 + (i * 3) % 400;
        ver[(i * 3) % 400] = txns + 1;
    }
    op_write(j, blks, n, txns + 1);
    assert_int_equal(jnl_commit_wait(j, s), -EIO);
    jnl_get_metrics(j, m);
    jnl_abandon(j);

    /* the header's txn(s) and the last one; only the last one when the
     * cut commit caught the header up */
    int caught_up = m->log_full_syncs != m0.log_full_syncs;
    assert_true(replay_count(&im) >= (caught_up ? 1u : 2u));
    if (!caught_up) {
        /* no sync ran in the cut commit: lose what it did not sync */
        heads_restore(&im, &saved);
        for (size_t i = 0; i < last_n; i++)
            disk_put(&im, last_blks[i], before[last_blks[i] - DATA0]);
    }
    assert_int_equal(jnl_recover(im.io, &im.geo, 0, NULL), 0);
    for (uint64_t b = 0; b < 400; b++)
        assert_true(disk_is(&im, DATA0 + b, ver[b]));
    img_destroy(&im);
}

static void test_wraparound(void **state)
{
    (void)state;
    struct jnl_metrics m;
    wrap_case(20, 100, 120, 3, &m);
    assert_int_equal(m.log_full_syncs, 0);  /* three such txns always fit */
}

/* Transactions near the size limit: three do not fit in the log, so the
 * commit thread catches the header up (extra syncs) before placing one. */
static void test_log_full(void **state)
{
    (void)state;
    struct jnl_metrics m;
    wrap_case(250, 110, 30, 5, &m);
    printf("log full: %lu extra syncs in %lu commits\n", (unsigned long)m.log_full_syncs,
           (unsigned long)m.commits);
    assert_true(m.log_full_syncs > 0);
}

/* ---- group commit ---------------------------------------------------------------------- */

#define GC_THREADS 8
#define GC_ITERS   40

struct gc_arg {
    pthread_t thread;
    struct jnl *j;
    uint64_t blk;
    int failures;
};

static void *gc_main(void *arg)
{
    struct gc_arg *g = arg;
    for (uint64_t it = 1; it <= GC_ITERS; it++) {
        if (jnl_begin(g->j)) {
            g->failures++;
            continue;
        }
        void *p = jnl_write(g->j, g->blk);
        if (p)
            pattern(p, g->blk, it);
        else
            g->failures++;
        uint64_t seq = jnl_running_seq(g->j);
        jnl_end(g->j);
        if (jnl_commit_wait(g->j, seq) || jnl_durable_seq(g->j) < seq)
            g->failures++;
    }
    return NULL;
}

static void test_group_commit(void **state)
{
    (void)state;
    struct img im;
    img_create(&im);
    struct jnl *j = jopen(&im);
    struct gc_arg g[GC_THREADS];
    struct jnl_metrics m;

    for (int t = 0; t < GC_THREADS; t++) {
        g[t] = (struct gc_arg){ .j = j, .blk = DATA0 + 10 * (uint64_t)t };
        assert_int_equal(pthread_create(&g[t].thread, NULL, gc_main, &g[t]), 0);
    }
    for (int t = 0; t < GC_THREADS; t++) {
        pthread_join(g[t].thread, NULL);
        assert_int_equal(g[t].failures, 0);
        assert_true(disk_is(&im, g[t].blk, GC_ITERS));
    }
    jnl_get_metrics(j, &m);
    printf("group commit: %lu waits, %lu commits\n", (unsigned long)m.commit_waits,
           (unsigned long)m.commits);
    assert_int_equal(m.commit_waits, GC_THREADS * GC_ITERS);
    /* callers that arrive during a commit share the next one. How many
     * share depends on how long a commit takes against how fast the
     * threads come back (one sync per commit, ThreadSanitizer's slowdown):
     * 80-170 commits for 320 waits have been seen, so only sharing itself
     * is asserted; test_pipelined and test_commit_async count exactly. */
    assert_true(m.commits < m.commit_waits);
    assert_int_equal(jnl_close(j), 0);
    img_destroy(&im);
}

/* ---- asynchronous waiters (fsync answered from the commit thread) ----------------------- */

struct async_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls, err;
    pthread_t caller;
    int on_caller_thread;
};

static void async_done(void *ctx, int err)
{
    struct async_wait *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->calls++;
    w->err = err;
    w->on_caller_thread = pthread_equal(pthread_self(), w->caller);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void async_init(struct async_wait *w)
{
    *w = (struct async_wait){ .caller = pthread_self() };
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
}

static void async_join(struct async_wait *w)
{
    pthread_mutex_lock(&w->mu);
    while (w->calls == 0)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

/* jnl_commit_async returns at once and calls back exactly once from the
 * commit thread when the transaction is durable; a data-only waiter (its
 * transaction already durable) gets a sync that began after its call. */
static void test_commit_async(void **state)
{
    (void)state;
    struct img im;
    img_create(&im);
    struct jnl *j = jopen(&im);
    struct async_wait w[8];

    /* metadata: 8 waiters on one transaction share its commit */
    assert_int_equal(jnl_begin(j), 0);
    for (int i = 0; i < 8; i++)
        pattern(jnl_write(j, DATA0 + (uint64_t)i), DATA0 + (uint64_t)i, 7);
    uint64_t seq = jnl_running_seq(j);
    jnl_end(j);
    struct jnl_metrics m0, m1;
    jnl_get_metrics(j, &m0);
    for (int i = 0; i < 8; i++) {
        async_init(&w[i]);
        jnl_commit_async(j, seq, async_done, &w[i]);
    }
    for (int i = 0; i < 8; i++) {
        async_join(&w[i]);
        assert_int_equal(w[i].err, 0);
        assert_false(w[i].on_caller_thread);
        assert_true(disk_is(&im, DATA0 + (uint64_t)i, 7));
    }
    assert_true(jnl_durable_seq(j) >= seq);
    jnl_get_metrics(j, &m1);
    assert_int_equal(m1.commits - m0.commits, 1);
    for (int i = 0; i < 8; i++)
        assert_int_equal(w[i].calls, 1);

    /* data only: the transaction is durable, the waiter still gets a sync */
    struct mmio_metrics e0, e1;
    mmio_get_metrics(im.io, &e0);
    async_init(&w[0]);
    jnl_commit_async(j, seq, async_done, &w[0]);
    async_join(&w[0]);
    assert_int_equal(w[0].err, 0);
    mmio_get_metrics(im.io, &e1);
    assert_true(e1.syncs > e0.syncs);
    assert_int_equal(w[0].calls, 1);

    /* after a failure every waiter gets -EIO */
    assert_int_equal(jnl_begin(j), 0);
    pattern(jnl_write(j, DATA0), DATA0, 8);
    seq = jnl_running_seq(j);
    jnl_end(j);
    crash_at(seq, JNL_CRASH_AFTER_LOG);
    async_init(&w[1]);
    jnl_commit_async(j, seq, async_done, &w[1]);
    async_join(&w[1]);
    assert_int_equal(w[1].err, -EIO);
    async_init(&w[2]);
    jnl_commit_async(j, seq, async_done, &w[2]);    /* sticky: answered at once */
    assert_int_equal(w[2].calls, 1);
    assert_int_equal(w[2].err, -EIO);
    jnl_abandon(j);
    img_destroy(&im);
}

/* Pipelined ordered commits: T1 (ordered) is held after its close while
 * T2 (ordered) is queued; T2 then closes early and rides T1's final sync,
 * so the two cost three syncs, not four. With a cut at each point of T2's
 * commit, recovery gives T1, plus T2 once its commit block was written. */
static void pipelined_case(enum jnl_crash_point point)
{
    struct img im;
    img_create(&im);
    struct jnl *j = jopen(&im);
    uint64_t a[3] = { DATA0, DATA0 + 1, DATA0 + 2 }, b[2] = { DATA0 + 1, DATA0 + 5 };
    struct async_wait w1, w2;
    struct mmio_metrics e0, e1;
    struct jnl_metrics m;

    assert_int_equal(jnl_commit_wait(j, op_write(j, a, 3, 1)), 0);
    uint64_t s1 = jnl_running_seq(j);
    pause_after_close(s1);
    assert_int_equal(op_write_ordered(j, a, 3, 2), s1);
    async_init(&w1);
    jnl_commit_async(j, s1, async_done, &w1);
    wait_paused();
    uint64_t s2 = op_write_ordered(j, b, 2, 3);
    assert_int_equal(s2, s1 + 1);
    if (point != JNL_CRASH_NONE)
        crash_at(s2, point);
    async_init(&w2);
    jnl_commit_async(j, s2, async_done, &w2);
    mmio_get_metrics(im.io, &e0);
    resume_commit();
    async_join(&w1);
    async_join(&w2);
    mmio_get_metrics(im.io, &e1);
    jnl_get_metrics(j, &m);
    assert_int_equal(w1.err, 0);
    assert_int_equal(m.pipelined_commits, 1);
    int t2 = point == JNL_CRASH_NONE || point >= JNL_CRASH_AFTER_COMMIT_BLOCK;
    if (point == JNL_CRASH_NONE) {
        assert_int_equal(w2.err, 0);
        assert_int_equal(e1.syncs - e0.syncs, 3);
        assert_int_equal(m.commit_syncs, 1 + 3);
        assert_int_equal(m.ordered_commits, 2);
        assert_true(read_head(&im).seq >= s1);   /* ordered: at T2 or T1 */
        assert_int_equal(jnl_close(j), 0);
    } else {
        assert_int_equal(w2.err, -EIO);
        jnl_abandon(j);
        assert_int_equal(jnl_recover(im.io, &im.geo, 0, NULL), 0);
    }
    assert_true(disk_is(&im, DATA0, 2));
    assert_true(disk_is(&im, DATA0 + 2, 2));
    assert_true(disk_is(&im, DATA0 + 1, t2 ? 3 : 2));
    assert_true(disk_is(&im, DATA0 + 5, t2 ? 3 : 0));
    assert_int_equal(replay_count(&im), 0);
    img_destroy(&im);
}

/* Waiting for company: after a commit that had four fsync callers, a
 * commit asked for by one waits briefly for more (and is counted); a
 * caller alone in every recent commit never waits. */
static void test_commit_batching(void **state)
{
    (void)state;
    struct img im;
    img_create(&im);
    struct jnl *j = jopen(&im);
    struct async_wait w[4];
    struct jnl_metrics m;
    uint64_t blk = DATA0;

    for (int k = 0; k < 5; k++) {           /* a lone caller */
        uint64_t s = op_write(j, &blk, 1, (uint64_t)k + 1);
        async_init(&w[0]);
        jnl_commit_async(j, s, async_done, &w[0]);
        async_join(&w[0]);
        assert_int_equal(w[0].err, 0);
    }
    jnl_get_metrics(j, &m);
    assert_int_equal(m.batched_commits, 0);

    /* four callers in one transaction: the commit thread is held in the
     * previous commit while they register */
    uint64_t s0 = op_write(j, &blk, 1, 10);
    pause_after_close(s0);
    struct waiter first;
    waiter_start(&first, j, s0);
    wait_paused();
    uint64_t b1 = DATA0 + 1, s1 = op_write(j, &b1, 1, 11);
    for (int i = 0; i < 4; i++) {
        async_init(&w[i]);
        jnl_commit_async(j, s1, async_done, &w[i]);
    }
    resume_commit();
    assert_int_equal(waiter_join(&first), 0);
    for (int i = 0; i < 4; i++) {
        async_join(&w[i]);
        assert_int_equal(w[i].err, 0);
    }
    jnl_get_metrics(j, &m);
    assert_int_equal(m.batched_commits, 0);

    /* now one caller: held for company, then committed all the same */
    uint64_t s2 = op_write(j, &blk, 1, 12);
    async_init(&w[0]);
    jnl_commit_async(j, s2, async_done, &w[0]);
    async_join(&w[0]);
    assert_int_equal(w[0].err, 0);
    assert_true(jnl_durable_seq(j) >= s2);
    jnl_get_metrics(j, &m);
    assert_int_equal(m.batched_commits, 1);
    assert_int_equal(jnl_close(j), 0);
    assert_int_equal(replay_count(&im), 0);
    img_destroy(&im);
}

static void test_pipelined(void **state)
{
    (void)state;
    pipelined_case(JNL_CRASH_NONE);
    pipelined_case(JNL_CRASH_AFTER_LOG);
    pipelined_case(JNL_CRASH_AFTER_COMMIT_BLOCK);
    pipelined_case(JNL_CRASH_AFTER_SYNC);
    pipelined_case(JNL_CRASH_MID_CHECKPOINT);
}

/* ---- forget ------------------------------------------------------------------------------ */

static void test_forget(void **state)
{
    (void)state;
    struct img im;
    img_create(&im);
    struct jnl *j = jopen(&im);
    struct jnl_metrics m;
    uint64_t x = DATA0, y = DATA0 + 1;

    assert_int_equal(jnl_begin(j), 0);
    pattern(jnl_write(j, x), x, 1);
    pattern(jnl_write_new(j, y), y, 1);
    jnl_forget(j, y);
    assert_int_equal(jnl_running_blocks(j), 1);
    uint64_t s = jnl_running_seq(j);
    jnl_end(j);
    crash_at(s, JNL_CRASH_AFTER_SYNC);
    assert_int_equal(jnl_commit_wait(j, s), -EIO);
    jnl_abandon(j);

    /* The log holds x only. */
    struct jnl_head_state h = read_head(&im);
    struct mmapfs_disk_jnl_desc d;
    assert_int_equal(mmio_read_at(im.io, jnl_log_off(&im.geo, h.start), &d, BS), 0);
    assert_int_equal(d.magic, MMAPFS_JNL_DESC_MAGIC);
    assert_int_equal(d.count, 1);
    assert_int_equal(d.home[0], x);
    assert_int_equal(jnl_recover(im.io, &im.geo, 0, NULL), 0);
    assert_true(disk_is(&im, x, 1));
    assert_true(disk_is(&im, y, 0));

    /* A transaction emptied by jnl_forget: the waiter does not hang. */
    j = jopen(&im);
    assert_int_equal(jnl_begin(j), 0);
    pattern(jnl_write(j, y), y, 2);
    s = jnl_running_seq(j);
    jnl_end(j);
    struct waiter w;
    waiter_start(&w, j, s);
    jnl_lock(j);
    jnl_forget(j, y);
    jnl_unlock(j);
    assert_int_equal(waiter_join(&w), 0);
    jnl_get_metrics(j, &m);
    assert_int_equal(m.shadow_blocks_now, 0);
    assert_int_equal(jnl_close(j), 0);
    assert_true(disk_is(&im, y, 0) || disk_is(&im, y, 2));  /* committed before the forget, or not */
    img_destroy(&im);
}

/* x dirtied in T1; T1 is paused after step 1 (images frozen in the log);
 * T2 changes x again (and forgets z, which T1 also has). */
static void shadow_reuse_case(int crash_t2)
{
    struct img im;
    img_create(&im);
    struct jnl *j = jopen(&im);
    struct jnl_metrics m;
    uint64_t x = DATA0 + 5, y = DATA0 + 6, z = DATA0 + 7, t1[2] = { x, z };
    struct waiter w;

    uint64_t s1 = op_write(j, t1, 2, 1);
    pause_after_close(s1);
    waiter_start(&w, j, s1);
    wait_paused();

    assert_int_equal(jnl_begin(j), 0);
    assert_int_equal(jnl_running_seq(j), s1 + 1);
    assert_int_equal(jnl_running_blocks(j), 0);
    uint8_t *p = jnl_write(j, x);
    assert_true(block_is(p, x, 1));               /* T1's version */
    pattern(p, x, 2);
    pattern(jnl_write(j, y), y, 2);
    pattern(jnl_write(j, z), z, 2);
    jnl_forget(j, z);                             /* z stays T1's business */
    assert_true(block_is(jnl_read(j, x), x, 2));
    assert_true(block_is(jnl_read(j, z), z, 2));
    uint64_t s2 = jnl_running_seq(j);
    jnl_end(j);
    assert_true(disk_is(&im, x, 0));
    assert_true(disk_is(&im, z, 0));

    resume_commit();
    assert_int_equal(waiter_join(&w), 0);
    /* T1's images went home: x from the log (its shadow moved on), z too. */
    assert_true(disk_is(&im, x, 1));
    assert_true(disk_is(&im, z, 1));
    assert_true(disk_is(&im, y, 0));
    jnl_lock(j);
    assert_true(block_is(jnl_read(j, x), x, 2));
    assert_true(block_is(jnl_read(j, z), z, 1));  /* shadow dropped: the mapping */
    jnl_unlock(j);
    jnl_get_metrics(j, &m);
    assert_int_equal(m.shadow_blocks_now, 2);     /* x, y */

    if (crash_t2) {
        crash_at(s2, JNL_CRASH_AFTER_LOG);
        assert_int_equal(jnl_commit_wait(j, s2), -EIO);
        jnl_abandon(j);
        assert_int_equal(jnl_recover(im.io, &im.geo, 0, NULL), 0);
        assert_true(disk_is(&im, x, 1));
        assert_true(disk_is(&im, y, 0));
    } else {
        assert_int_equal(jnl_commit_wait(j, s2), 0);
        assert_true(disk_is(&im, x, 2));
        assert_true(disk_is(&im, y, 2));
        assert_true(disk_is(&im, z, 1));          /* freed in T2: never written by it */
        jnl_get_metrics(j, &m);
        assert_int_equal(m.shadow_blocks_now, 0);
        assert_int_equal(jnl_close(j), 0);
    }
    img_destroy(&im);
}

static void test_shadow_reuse(void **state)
{
    (void)state;
    shadow_reuse_case(0);
}

static void test_shadow_reuse_crash(void **state)
{
    (void)state;
    shadow_reuse_case(1);
}

/* ---- limits -------------------------------------------------------------------------------- */

struct throttled_op {
    pthread_t thread;
    struct jnl *j;
    uint64_t seq;
    volatile int done;
};

/* One 100-block operation (blocks DATA0 + 300 ..) on its own thread. */
static void *throttled_main(void *arg)
{
    struct throttled_op *t = arg;
    uint64_t blks[100];
    for (int i = 0; i < 100; i++)
        blks[i] = DATA0 + 300 + (uint64_t)i;
    t->seq = op_write(t->j, blks, 100, 4);
    __atomic_store_n(&t->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void test_begin_throttle(void **state)
{
    (void)state;
    struct img im;
    img_create(&im);
    struct jnl *j = jopen(&im);
    struct jnl_metrics m;
    struct throttled_op t = { 0 };
    uint64_t blks[100], seq = 0;
    uint64_t limit = jnl_begin_limit(j), max = jnl_max_txn_blocks(j);

    /* 1098 log blocks: 366 per transaction, 364 of them images. */
    assert_int_equal(max, 364);
    assert_int_equal(limit, max - JNL_MAX_OP_BLOCKS);

    /* T0 (op 1) is held in its commit, so ops 2 and 3 pile up in T1. */
    pause_after_close(jnl_running_seq(j));
    for (int i = 0; i < 100; i++)
        blks[i] = DATA0 + (uint64_t)i;
    uint64_t s0 = op_write(j, blks, 100, 1);
    struct waiter w;
    waiter_start(&w, j, s0);
    wait_paused();
    for (uint64_t op = 1; op < 3; op++) {
        for (int i = 0; i < 100; i++)
            blks[i] = DATA0 + op * 100 + (uint64_t)i;
        seq = op_write(j, blks, 100, op + 1);      /* 100, then 200 > limit */
    }
    assert_int_equal(seq, s0 + 1);
    jnl_lock(j);
    assert_int_equal(jnl_running_blocks(j), 200);
    jnl_unlock(j);

    /* Op 4 must wait: 200 + JNL_MAX_OP_BLOCKS would not fit. */
    t.j = j;
    assert_int_equal(pthread_create(&t.thread, NULL, throttled_main, &t), 0);
    usleep(100 * 1000);
    assert_false(__atomic_load_n(&t.done, __ATOMIC_SEQ_CST));
    resume_commit();
    pthread_join(t.thread, NULL);
    assert_int_equal(waiter_join(&w), 0);
    assert_int_equal(t.seq, s0 + 2);               /* T1 was closed for it */
    jnl_get_metrics(j, &m);
    assert_true(m.commits >= 1);
    assert_int_equal(jnl_commit_wait(j, t.seq), 0);
    for (uint64_t b = 0; b < 400; b++)
        assert_true(disk_is(&im, DATA0 + b, b / 100 + 1));

    /* Without jnl_begin the running transaction still cannot overflow. */
    jnl_lock(j);
    for (uint64_t i = 0; i < max; i++)
        assert_non_null(jnl_write(j, DATA0 + i));
    assert_null(jnl_write(j, DATA0 + max));
    assert_int_equal(errno, ENOSPC);
    assert_non_null(jnl_write(j, DATA0 + 1));     /* already in: fine */
    seq = jnl_running_seq(j);
    jnl_unlock(j);
    assert_int_equal(jnl_commit_wait(j, seq), 0);
    assert_int_equal(jnl_close(j), 0);
    img_destroy(&im);
}

/* Transactions with several descriptors (more than 509 images). */
static void test_large_txn(void **state)
{
    (void)state;
    struct img im;
    img_create_ex(&im, 8192, 4000, MMIO_BACKEND_MMAP);
    struct jnl *j = jopen(&im);
    uint64_t base = J_START + 4000, n = 1200;

    assert_true(jnl_max_txn_blocks(j) >= n);
    uint64_t s = jnl_running_seq(j);
    crash_at(s, JNL_CRASH_AFTER_SYNC);
    jnl_lock(j);
    for (uint64_t i = 0; i < n; i++)
        pattern(jnl_write(j, base + i * 3 % 4000), base + i * 3 % 4000, 7);
    assert_int_equal(jnl_running_seq(j), s);
    jnl_unlock(j);
    assert_int_equal(jnl_commit_wait(j, s), -EIO);
    jnl_abandon(j);
    assert_int_equal(replay_count(&im), 1);
    assert_int_equal(jnl_recover(im.io, &im.geo, 0, NULL), 0);
    for (uint64_t i = 0; i < n; i++)
        assert_true(disk_is(&im, base + i * 3 % 4000, 7));
    j = jopen(&im);
    jnl_lock(j);
    for (uint64_t i = 0; i < n; i++)
        pattern(jnl_write(j, base + i), base + i, 8);
    s = jnl_running_seq(j);
    jnl_unlock(j);
    assert_int_equal(jnl_commit_wait(j, s), 0);
    assert_int_equal(jnl_close(j), 0);
    for (uint64_t i = 0; i < n; i++)
        assert_true(disk_is(&im, base + i, 8));
    img_destroy(&im);
}

static void test_geometry(void **state)
{
    (void)state;
    struct img im;
    struct jnl *j = NULL;
    img_create(&im);
    struct jnl_geometry g = im.geo;

    g.journal_blocks = JNL_MIN_JOURNAL_BLOCKS - 1;
    assert_int_equal(jnl_format(im.io, &g), -EINVAL);
    assert_int_equal(jnl_open(&j, im.io, &g, NULL), -EINVAL);
    g = im.geo;
    g.block_count = IMG_BLOCKS + 1;               /* larger than the image */
    assert_int_equal(jnl_recover(im.io, &g, 1, NULL), -EINVAL);
    g = im.geo;
    g.journal_start = IMG_BLOCKS - 100;           /* journal past the end */
    assert_int_equal(jnl_format(im.io, &g), -EINVAL);
    g = im.geo;
    g.journal_start = 0;                          /* would overwrite block 0 */
    assert_int_equal(jnl_format(im.io, &g), -EINVAL);

    /* The minimum works, and leaves room for a whole operation. */
    g = im.geo;
    g.journal_blocks = JNL_MIN_JOURNAL_BLOCKS;
    assert_int_equal(jnl_format(im.io, &g), 0);
    assert_int_equal(jnl_open(&j, im.io, &g, NULL), 0);
    assert_true(jnl_begin_limit(j) > 0);
    assert_int_equal(jnl_close(j), 0);
    img_destroy(&im);
}

/* ---- corrupt headers and logs --------------------------------------------------------------- */

static void test_corrupt_headers(void **state)
{
    (void)state;
    struct img im;
    img_create(&im);
    struct jnl *j = NULL;
    uint8_t buf[BS];
    uint64_t a[1] = { DATA0 };

    /* Slot A corrupt, slot B zero. */
    assert_int_equal(mmio_read_at(im.io, J_START * BS + 100, buf, 1), 0);
    buf[0] ^= 1;
    assert_int_equal(mmio_write_at(im.io, J_START * BS + 100, buf, 1), 0);
    assert_int_equal(jnl_recover(im.io, &im.geo, 1, NULL), -EUCLEAN);
    assert_int_equal(jnl_recover(im.io, &im.geo, 0, NULL), -EUCLEAN);
    assert_int_equal(jnl_open(&j, im.io, &im.geo, NULL), -EUCLEAN);

    /* The newest valid slot wins; an older valid one is a fallback. */
    assert_int_equal(jnl_format(im.io, &im.geo), 0);
    j = jopen(&im);
    uint64_t s = op_write(j, a, 1, 1);
    assert_int_equal(jnl_commit_wait(j, s), 0);   /* lazy: header not moved */
    assert_int_equal(jnl_close(j), 0);            /* header gen 2 in slot B */
    struct jnl_head_state h = read_head(&im);
    assert_int_equal(h.slot, 1);
    assert_int_equal(h.generation, 2);
    assert_int_equal(mmio_read_at(im.io, (J_START + 1) * BS + 4092, buf, 1), 0);
    buf[0] ^= 1;
    assert_int_equal(mmio_write_at(im.io, (J_START + 1) * BS + 4092, buf, 1), 0);
    h = read_head(&im);
    assert_int_equal(h.slot, 0);
    assert_int_equal(h.seq, s);
    assert_int_equal(replay_count(&im), 1);       /* T1 again: harmless */
    assert_int_equal(jnl_recover(im.io, &im.geo, 0, NULL), 0);
    assert_true(disk_is(&im, DATA0, 1));

    /* Valid checksums but a header for another geometry / start out of
     * range / a generation or seq never written (from 2^63 on: the next
     * header's generation would wrap to 0, seq comparisons would wrap). */
    struct mmapfs_disk_jnl_header *hd = (void *)buf;
    for (int variant = 0; variant < 4; variant++) {
        for (uint64_t slot = 0; slot < 2; slot++) {
            memset(buf, 0, BS);
            hd->magic = MMAPFS_JNL_HEADER_MAGIC;
            hd->generation = variant == 2 ? UINT64_MAX : 9;
            hd->seq = variant == 3 ? 1ull << 63 : 5;
            hd->log_blocks = variant == 0 ? LOG_BLOCKS + 1 : LOG_BLOCKS;
            hd->start = variant == 1 ? LOG_BLOCKS : 0;
            hd->checksum = mfs_crc32c(0, hd, 4092);
            assert_int_equal(mmio_write_at(im.io, (J_START + slot) * BS, buf, BS), 0);
        }
        assert_int_equal(jnl_recover(im.io, &im.geo, 0, NULL), -EUCLEAN);
    }
    img_destroy(&im);
}

/* Writes a descriptor for seq at log index idx. */
static void put_desc(struct img *im, uint64_t idx, uint64_t seq, uint32_t count, uint64_t home)
{
    struct mmapfs_disk_jnl_desc d;
    memset(&d, 0, sizeof(d));
    d.magic = MMAPFS_JNL_DESC_MAGIC;
    d.seq = seq;
    d.count = count;
    for (uint32_t i = 0; i < count && i < MMAPFS_JNL_DESC_MAX; i++)
        d.home[i] = home + i;
    assert_int_equal(mmio_write_at(im->io, jnl_log_off(&im->geo, idx), &d, BS), 0);
}

static void test_garbage_log(void **state)
{
    (void)state;
    struct img im;
    img_create(&im);
    uint8_t buf[BS];
    struct jnl_head_state h = read_head(&im);
    uint64_t seq = h.seq;

    /* Random bytes everywhere in the log. */
    rng_state = test_seed() * 7 + 3;
    for (uint64_t i = 0; i < LOG_BLOCKS; i++) {
        for (int k = 0; k < (int)BS; k += 8) {
            uint64_t v = rnd(0);
            memcpy(buf + k, &v, 8);
        }
        assert_int_equal(mmio_write_at(im.io, jnl_log_off(&im.geo, i), buf, BS), 0);
    }
    assert_int_equal(replay_count(&im), 0);

    /* Plausible descriptors that do not check out. */
    put_desc(&im, 0, seq, 0, DATA0);                        /* count 0 */
    assert_int_equal(replay_count(&im), 0);
    put_desc(&im, 0, seq, MMAPFS_JNL_DESC_MAX + 1, DATA0);   /* count too big */
    assert_int_equal(replay_count(&im), 0);
    put_desc(&im, 0, seq, 3, IMG_BLOCKS - 1);               /* home past the end */
    assert_int_equal(replay_count(&im), 0);
    put_desc(&im, 0, seq, 3, J_START + 10);                 /* home inside the journal */
    assert_int_equal(replay_count(&im), 0);
    put_desc(&im, 0, seq, 3, DATA0);                        /* no commit block */
    assert_int_equal(replay_count(&im), 0);

    /* A transaction that would run past the end of the log. */
    assert_int_equal(jnl_head_write(im.io, &im.geo, &h, seq, LOG_BLOCKS - 3, buf), 0);
    put_desc(&im, LOG_BLOCKS - 3, seq, 5, DATA0);
    assert_int_equal(replay_count(&im), 0);
    assert_int_equal(jnl_recover(im.io, &im.geo, 0, NULL), 0);
    /* torn: the header moved on, and the seq was skipped */
    h = read_head(&im);
    assert_int_equal(h.seq, seq + 1);
    assert_int_equal(h.start, LOG_BLOCKS - 3);

    /* A journal opened on that log works normally. */
    struct jnl *j = jopen(&im);
    uint64_t a[2] = { DATA0, DATA0 + 1 };
    uint64_t s = op_write(j, a, 2, 4);
    assert_int_equal(jnl_commit_wait(j, s), 0);
    assert_int_equal(jnl_close(j), 0);
    assert_true(disk_is(&im, DATA0 + 1, 4));
    assert_int_equal(replay_count(&im), 0);
    img_destroy(&im);
}

/* ---- read-only open and the pread backend -------------------------------------------------- */

static void test_read_only_open(void **state)
{
    (void)state;
    struct img im;
    img_create(&im);
    struct jnl *j = jopen(&im);
    struct jnl_config ro = { .read_only = 1 };
    uint64_t a[2] = { DATA0, DATA0 + 1 };

    uint64_t s = jnl_running_seq(j);
    crash_at(s, JNL_CRASH_AFTER_SYNC);
    op_write(j, a, 2, 1);
    assert_int_equal(jnl_commit_wait(j, s), -EIO);
    jnl_abandon(j);

    assert_int_equal(jnl_open(&j, im.io, &im.geo, &ro), 0);
    jnl_lock(j);
    assert_true(block_is(jnl_read(j, DATA0), DATA0, 1));   /* replayed in memory */
    assert_true(jnl_is_shadow(j, DATA0));
    assert_false(jnl_shadow_written(j, DATA0));           /* its bytes came from the log */
    assert_null(jnl_write(j, DATA0));
    assert_int_equal(errno, EROFS);
    jnl_forget(j, DATA0);
    assert_true(block_is(jnl_read(j, DATA0), DATA0, 1));
    jnl_unlock(j);
    assert_int_equal(jnl_begin(j), -EROFS);
    assert_int_equal(jnl_commit_wait(j, s), 0);
    assert_int_equal(jnl_close(j), 0);
    assert_true(disk_is(&im, DATA0, 0));                   /* image untouched */
    assert_int_equal(replay_count(&im), 1);

    j = jopen(&im);                                        /* read-write: replays */
    assert_true(disk_is(&im, DATA0, 1));
    assert_int_equal(jnl_close(j), 0);
    img_destroy(&im);
}

/* ---- file data images (small new data rides in the log) --------------------------- */

#define DBLK (DATA0 + 600)      /* a "file data" block: written at home directly */

/* Writes version ver of data block blk at home, as the fs does. */
static void data_put(struct img *im, uint64_t blk, uint64_t ver)
{
    uint8_t buf[BS];
    pattern(buf, blk, ver);
    assert_int_equal(mmio_write_at(im->io, blk * BS, buf, BS), 0);
}

/* One operation: new data block d at version ver, logged (jnl_log_data),
 * and metadata block m changed with it. Returns its seq. */
static uint64_t op_new_data(struct img *im, struct jnl *j, uint64_t d, uint64_t m, uint64_t ver)
{
    assert_int_equal(jnl_begin(j), 0);
    data_put(im, d, ver);
    jnl_log_data(j, d, 1);
    pattern(jnl_write(j, m), m, ver);
    uint64_t seq = jnl_running_seq(j);
    jnl_end(j);
    return seq;
}

/* A small write's data rides in the log: one sync, and replay restores the
 * data even when its home write never reached the disk. */
static void test_data_logged(void **state)
{
    (void)state;
    struct img im;
    img_create(&im);
    struct jnl *j = jopen(&im);
    struct mmio_metrics e0, e1;
    struct jnl_metrics m;

    mmio_get_metrics(im.io, &e0);
    uint64_t s = op_new_data(&im, j, DBLK, DATA0, 1);
    assert_int_equal(jnl_commit_wait(j, s), 0);
    mmio_get_metrics(im.io, &e1);
    assert_int_equal(e1.syncs - e0.syncs, 1);
    jnl_get_metrics(j, &m);
    assert_int_equal(m.ordered_commits, 0);
    assert_int_equal(m.data_images, 1);
    /* the header is still at or before s: replay reaches it */
    assert_true(read_head(&im).seq <= s);
    jnl_abandon(j);
    data_put(&im, DBLK, 7);                 /* the home write was lost */
    assert_int_equal(jnl_recover(im.io, &im.geo, 0, NULL), 0);
    assert_true(disk_is(&im, DBLK, 1));
    assert_true(disk_is(&im, DATA0, 1));
    img_destroy(&im);
}

/* Too much new data for the log: the ordered way, two syncs, no image. */
static void test_data_large_ordered(void **state)
{
    (void)state;
    struct img im;
    img_create(&im);
    struct jnl *j = jopen(&im);
    struct jnl_metrics m;

    assert_int_equal(jnl_begin(j), 0);
    jnl_log_data(j, DBLK, 200);             /* a 800 KiB write */
    pattern(jnl_write(j, DATA0), DATA0, 1);
    uint64_t s = jnl_running_seq(j);
    jnl_end(j);
    assert_int_equal(jnl_commit_wait(j, s), 0);
    jnl_get_metrics(j, &m);
    assert_int_equal(m.ordered_commits, 1);
    assert_int_equal(m.commit_syncs, 2);
    assert_int_equal(m.data_images, 0);
    assert_int_equal(jnl_close(j), 0);
    img_destroy(&im);
}

/* A block logged in T1 and then overwritten in place: without a newer
 * image, replay from a header still at T1 would bring the old bytes back
 * over data a later fsync made durable. */
static void test_data_overwrite(void **state)
{
    (void)state;
    struct img im;
    img_create(&im);
    struct jnl *j = jopen(&im);
    struct jnl_metrics m;

    uint64_t s1 = op_new_data(&im, j, DBLK, DATA0, 1);
    assert_int_equal(jnl_commit_wait(j, s1), 0);
    jnl_lock(j);
    data_put(&im, DBLK, 2);                 /* overwrite in place */
    assert_int_equal(jnl_data_overwrite(j, DBLK, 1), 1);
    assert_int_equal(jnl_data_overwrite(j, DBLK + 1, 1), 0);  /* never logged */
    uint64_t s2 = jnl_running_seq(j);
    jnl_unlock(j);
    assert_int_equal(jnl_commit_wait(j, s2), 0);  /* the image alone is a transaction */
    jnl_get_metrics(j, &m);
    assert_int_equal(m.data_images, 2);
    assert_true(read_head(&im).seq <= s1);  /* replay would still reach T1 */
    jnl_abandon(j);
    assert_int_equal(jnl_recover(im.io, &im.geo, 0, NULL), 0);
    assert_true(disk_is(&im, DBLK, 2));
    img_destroy(&im);
}

/* The same when the running transaction has no room for another image:
 * its commit first moves the durable header past T1. */
static void test_data_overwrite_full(void **state)
{
    (void)state;
    struct img im;
    img_create(&im);
    struct jnl *j = jopen(&im);
    struct jnl_metrics m;

    uint64_t s1 = op_new_data(&im, j, DBLK, DATA0, 1);
    assert_int_equal(jnl_commit_wait(j, s1), 0);
    uint64_t blk = DATA0 + 1;
    uint64_t s2 = op_write(j, &blk, 1, 2);
    jnl_lock(j);
    uint32_t saved = j->data_max;
    j->data_max = 0;                        /* no room left for images */
    data_put(&im, DBLK, 3);
    assert_int_equal(jnl_data_overwrite(j, DBLK, 1), 1);
    j->data_max = saved;
    jnl_unlock(j);
    assert_int_equal(jnl_commit_wait(j, s2), 0);
    jnl_get_metrics(j, &m);
    assert_int_equal(m.data_images, 1);
    assert_true(m.head_past_syncs >= 1);
    assert_true(read_head(&im).seq > s1);
    jnl_abandon(j);
    assert_int_equal(jnl_recover(im.io, &im.geo, 0, NULL), 0);
    assert_true(disk_is(&im, DBLK, 3));
    assert_true(disk_is(&im, DATA0 + 1, 2));
    img_destroy(&im);
}

/* A logged block freed in the same transaction leaves it; once replay
 * cannot reach an image any more, the journal forgets the block. */
static void test_data_forget(void **state)
{
    (void)state;
    struct img im;
    img_create(&im);
    struct jnl *j = jopen(&im);
    struct jnl_metrics m;

    assert_int_equal(jnl_begin(j), 0);
    data_put(&im, DBLK, 1);
    jnl_log_data(j, DBLK, 1);
    jnl_forget_data(j, DBLK - 10, 20);      /* e.g. a truncate frees it */
    pattern(jnl_write(j, DATA0), DATA0, 1);
    uint64_t s = jnl_running_seq(j);
    jnl_end(j);
    assert_int_equal(jnl_commit_wait(j, s), 0);
    jnl_get_metrics(j, &m);
    assert_int_equal(m.data_images, 0);

    uint64_t s1 = op_new_data(&im, j, DBLK + 1, DATA0, 2);
    assert_int_equal(jnl_commit_wait(j, s1), 0);
    jnl_lock(j);
    assert_int_equal(jnl_data_overwrite(j, DBLK + 1, 1), 1);
    jnl_unlock(j);
    for (uint64_t k = 0; k < 5; k++) {
        uint64_t b = DATA0 + 2, t = op_write(j, &b, 1, k + 3);
        assert_int_equal(jnl_commit_wait(j, t), 0);
    }
    jnl_lock(j);
    assert_int_equal(jnl_data_overwrite(j, DBLK + 1, 1), 0);  /* pruned */
    jnl_unlock(j);
    jnl_abandon(j);
    data_put(&im, DBLK, 9);                 /* reused by another file */
    assert_int_equal(jnl_recover(im.io, &im.geo, 0, NULL), 0);
    assert_true(disk_is(&im, DBLK, 9));
    img_destroy(&im);
}

/* A read-only open replays data images in memory too. */
static void test_data_read_only(void **state)
{
    (void)state;
    struct img im;
    img_create(&im);
    struct jnl *j = jopen(&im);
    struct jnl_config ro = { .read_only = 1 };

    uint64_t s = op_new_data(&im, j, DBLK, DATA0, 1);
    assert_int_equal(jnl_commit_wait(j, s), 0);
    assert_int_equal(jnl_has_replayed(j), 0);
    jnl_abandon(j);
    data_put(&im, DBLK, 5);
    assert_int_equal(jnl_open(&j, im.io, &im.geo, &ro), 0);
    assert_int_equal(jnl_has_replayed(j), 1);
    jnl_lock(j);
    assert_true(block_is(jnl_replayed_block(j, DBLK), DBLK, 1));
    assert_null(jnl_replayed_block(j, DBLK + 1));
    jnl_unlock(j);
    assert_int_equal(jnl_close(j), 0);
    assert_true(disk_is(&im, DBLK, 5));     /* image untouched */
    img_destroy(&im);
}

static void test_pread_backend(void **state)
{
    (void)state;
    struct img im;
    img_create_ex(&im, IMG_BLOCKS, J_BLOCKS, MMIO_BACKEND_PREAD);
    struct jnl *j = jopen(&im);
    uint64_t a[3] = { DATA0, DATA0 + 1, DATA0 + 2 };

    uint64_t s = op_write(j, a, 3, 1);
    assert_int_equal(jnl_commit_wait(j, s), 0);
    jnl_lock(j);
    assert_true(block_is(jnl_read(j, DATA0 + 1), DATA0 + 1, 1));  /* a copy */
    assert_true(block_is(jnl_read(j, DATA0 + 5), DATA0 + 5, 0));
    jnl_unlock(j);
    s = jnl_running_seq(j);
    crash_at(s, JNL_CRASH_AFTER_SYNC);
    op_write(j, a, 3, 2);
    assert_int_equal(jnl_commit_wait(j, s), -EIO);
    jnl_abandon(j);
    assert_int_equal(jnl_recover(im.io, &im.geo, 0, NULL), 0);
    for (int i = 0; i < 3; i++)
        assert_true(disk_is(&im, a[i], 2));
    img_destroy(&im);
}

/* ---- randomised crash test ------------------------------------------------------------------- */

#define RC_ROUNDS 10
#define RC_POOL   150
#define RC_OPS    400
#define RC_MAXN   40

struct rc_op {
    uint64_t seq;
    uint32_t n;
    uint16_t blk[RC_MAXN];
};

/* Random operations (some ordered), random commits, a power cut at a
 * random step of a random transaction; after recovery every block must be
 * exactly as the last durable transaction left it: all or nothing per
 * transaction. */
static void test_random_crash(void **state)
{
    (void)state;
    static struct rc_op ops[RC_OPS + 64];
    uint64_t seed = test_seed();
    printf("random crash test: seed %lu (JNL_TEST_SEED to replay)\n", (unsigned long)seed);
    rng_state = seed * 2654435761u + 17;

    for (int round = 0; round < RC_ROUNDS; round++) {
        struct img im;
        img_create(&im);
        struct jnl *j = jopen(&im);
        uint64_t base = jnl_running_seq(j);
        uint64_t crash_seq = base + rnd(30);
        enum jnl_crash_point point = (enum jnl_crash_point)(1 + rnd(4));
        uint64_t nops = 0, blks[RC_MAXN];

        crash_at(crash_seq, point);
        while (nops < RC_OPS + 64 && !jnl_error(j)) {
            struct rc_op *op = &ops[nops];
            op->n = nops < RC_OPS ? 1 + (uint32_t)rnd(RC_MAXN) : 1;
            for (uint32_t i = 0; i < op->n; i++) {
                op->blk[i] = (uint16_t)rnd(RC_POOL);
                blks[i] = DATA0 + op->blk[i];
            }
            if (jnl_begin(j))
                break;
            if (rnd(3) == 0)
                jnl_note_new_data(j);       /* an ordered transaction */
            for (uint32_t i = 0; i < op->n; i++) {
                void *p = jnl_write(j, blks[i]);
                assert_non_null(p);
                pattern(p, blks[i], nops + 1);
            }
            op->seq = jnl_running_seq(j);
            jnl_end(j);
            nops++;
            /* past RC_OPS: one op per commit until the cut happens */
            if ((nops >= RC_OPS || rnd(4) == 0) && jnl_commit_wait(j, op->seq))
                break;
        }
        assert_int_equal(jnl_error(j), -EIO);
        jnl_abandon(j);

        uint64_t last = point >= JNL_CRASH_AFTER_COMMIT_BLOCK ? crash_seq : crash_seq - 1;
        assert_int_equal(jnl_recover(im.io, &im.geo, 0, NULL), 0);
        static uint64_t want[RC_POOL];
        memset(want, 0, sizeof(want));
        for (uint64_t k = 0; k < nops; k++)
            if (ops[k].seq <= last)
                for (uint32_t i = 0; i < ops[k].n; i++)
                    want[ops[k].blk[i]] = k + 1;
        for (uint64_t b = 0; b < RC_POOL; b++) {
            if (!disk_is(&im, DATA0 + b, want[b]))
                fail_msg("round %d: block %lu is not at version %lu (cut at seq %lu+%lu, point %d)",
                         round, (unsigned long)b, (unsigned long)want[b],
                         (unsigned long)base, (unsigned long)(crash_seq - base), (int)point);
        }
        img_destroy(&im);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commit_basic),
        cmocka_unit_test(test_crash_after_log),
        cmocka_unit_test(test_crash_after_commit_block),
        cmocka_unit_test(test_crash_after_sync),
        cmocka_unit_test(test_crash_mid_checkpoint),
        cmocka_unit_test(test_commit_syncs),
        cmocka_unit_test(test_lazy_header),
        cmocka_unit_test(test_sticky_close),
        cmocka_unit_test(test_periodic_commit),
        cmocka_unit_test(test_torn_image),
        cmocka_unit_test(test_torn_commit_block),
        cmocka_unit_test(test_torn_descriptor),
        cmocka_unit_test(test_stale_image_same_crc),
        cmocka_unit_test(test_commit_hash_flag),
        cmocka_unit_test(test_torn_stops_replay),
        cmocka_unit_test(test_fuzz_flips),
        cmocka_unit_test(test_wraparound),
        cmocka_unit_test(test_log_full),
        cmocka_unit_test(test_group_commit),
        cmocka_unit_test(test_commit_async),
        cmocka_unit_test(test_commit_batching),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_forget),
        cmocka_unit_test(test_shadow_reuse),
        cmocka_unit_test(test_shadow_reuse_crash),
        cmocka_unit_test(test_begin_throttle),
        cmocka_unit_test(test_large_txn),
        cmocka_unit_test(test_geometry),
        cmocka_unit_test(test_corrupt_headers),
        cmocka_unit_test(test_garbage_log),
        cmocka_unit_test(test_read_only_open),
        cmocka_unit_test(test_data_logged),
        cmocka_unit_test(test_data_large_ordered),
        cmocka_unit_test(test_data_overwrite),
        cmocka_unit_test(test_data_overwrite_full),
        cmocka_unit_test(test_data_forget),
        cmocka_unit_test(test_data_read_only),
        cmocka_unit_test(test_pread_backend),
        cmocka_unit_test(test_random_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
