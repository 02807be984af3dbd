/*
 * session.c — the FUSE session around the operation table: creation,
 * signal-driven shutdown, and the request loop.
 *
 * Shutdown. SIGTERM, SIGINT and SIGHUP are caught by a handler that only
 * writes a byte to a pipe. A dedicated shutdown thread (all signals
 * blocked) reads it, asks the kernel to write back the dirty pages of the
 * mount (syncfs on the mount point; the workers are still serving, so
 * those writes reach fs), has the requests that wait for the kernel's
 * write-back served and no new one wait (mfs_defer_no_flush: their WRITEs
 * need the loop), marks the session exited, and wakes the thread
 * running the loop with SIGUSR1 (a no-op handler without SA_RESTART:
 * sem_wait/read return EINTR and the loop sees the exit flag). It repeats
 * the wake-up until the loop has returned, so a wake-up that races with
 * the loop's own check is never lost. main() then unmounts the session and
 * calls fs_unmount, which commits and marks the image clean.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "fuse/fuse_i.h"
#include "util/hot_tick.h"

#define FUSE_SUPER_MAGIC_VALUE 0x65735546

struct fuse_session *mmapfs_session_new(struct fuse_args *args,
                                        struct mmapfs_fuse *data)
{
    data->se = fuse_session_new(args, &mmapfs_ll_ops, sizeof(mmapfs_ll_ops), data);
    return data->se;
}

/* ---- signals -------------------------------------------------------------------- */

static struct {
    int pipe[2];
    pthread_t thread, loop_thread;
    int started;
    struct mmapfs_fuse *m;
    struct fuse_session *se;
    const char *mountpoint;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int loop_done;              /* the loop returned (lock) */
    int stopping;               /* mmapfs_signals_stop called (lock) */
} sig = {
    .pipe = { -1, -1 },
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER,
};

static void shutdown_signal_handler(int signo)
{
    unsigned char b = (unsigned char)signo;
    int saved = errno;
    ssize_t r = write(sig.pipe[1], &b, 1);   /* async-signal-safe */
    (void)r;
    errno = saved;
}

static void wake_signal_handler(int signo)
{
    (void)signo;            /* interrupts sem_wait/read in the loop thread */
}

void mmapfs_signals_block(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* Writes back the kernel's dirty pages of the mount, if it is still ours. */
static void flush_kernel_cache(const char *mountpoint)
{
    struct statfs sfs;
    int fd;

    fd = open(mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    if (fstatfs(fd, &sfs) == 0 && (unsigned long)sfs.f_type == FUSE_SUPER_MAGIC_VALUE)
        syncfs(fd);
    close(fd);
}

/* The shutdown thread: waits for a signal byte (or the stop request),
 * flushes, exits the session and wakes the loop until it has returned. */
static void *shutdown_thread(void *arg)
{
    unsigned char b = 0;
    ssize_t r;
    (void)arg;

    do {
        r = read(sig.pipe[0], &b, 1);
    } while (r < 0 && errno == EINTR);

    pthread_mutex_lock(&sig.lock);
    if (sig.stopping) {
        pthread_mutex_unlock(&sig.lock);
        return NULL;
    }
    pthread_mutex_unlock(&sig.lock);

    mfs_log(LOG_INFO, "signal %d: flushing and unmounting %s", b, sig.mountpoint);
    flush_kernel_cache(sig.mountpoint);
    mfs_defer_no_flush(sig.m);
    fuse_session_exit(sig.se);

    pthread_mutex_lock(&sig.lock);
    while (!sig.loop_done && !sig.stopping) {
        struct timespec until;
        pthread_kill(sig.loop_thread, SIGUSR1);
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100 * 1000 * 1000;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&sig.cond, &sig.lock, &until);
    }
    pthread_mutex_unlock(&sig.lock);
    return NULL;
}

/* Installs 'handler' for signo, without SA_RESTART. */
static int set_handler(int signo, void (*handler)(int))
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    return sigaction(signo, &sa, NULL) == 0 ? 0 : -errno;
}

int mmapfs_signals_start(struct mmapfs_fuse *m, const char *mountpoint)
{
    struct fuse_session *se = m->se;
    sigset_t all, old, set;
    int err;

    if (pipe2(sig.pipe, O_CLOEXEC) != 0)
        return -errno;
    /* a burst of signals must never block the handler */
    fcntl(sig.pipe[1], F_SETFL, fcntl(sig.pipe[1], F_GETFL) | O_NONBLOCK);
    sig.m = m;
    sig.se = se;
    sig.mountpoint = mountpoint;
    sig.loop_thread = pthread_self();
    sig.loop_done = 0;
    sig.stopping = 0;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    err = -pthread_create(&sig.thread, NULL, shutdown_thread, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        close(sig.pipe[0]);
        close(sig.pipe[1]);
        sig.pipe[0] = sig.pipe[1] = -1;
        return err;
    }
    sig.started = 1;

    if ((err = set_handler(SIGTERM, shutdown_signal_handler)) ||
        (err = set_handler(SIGINT, shutdown_signal_handler)) ||
        (err = set_handler(SIGHUP, shutdown_signal_handler)) ||
        (err = set_handler(SIGUSR1, wake_signal_handler)))
        return err;
    signal(SIGPIPE, SIG_IGN);

    /* only this (the loop's) thread takes the signals */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    return 0;
}

void mmapfs_signals_stop(void)
{
    sigset_t set;

    if (!sig.started)
        return;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    pthread_mutex_lock(&sig.lock);
    sig.stopping = 1;
    sig.loop_done = 1;
    pthread_cond_broadcast(&sig.cond);
    pthread_mutex_unlock(&sig.lock);
    {
        unsigned char b = 0;
        ssize_t r = write(sig.pipe[1], &b, 1);   /* wakes a thread still in read */
        (void)r;
    }
    pthread_join(sig.thread, NULL);
    sig.started = 0;
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGUSR1, SIG_DFL);
    close(sig.pipe[0]);
    close(sig.pipe[1]);
    sig.pipe[0] = sig.pipe[1] = -1;
}

/* ---- loop ------------------------------------------------------------------------- */

/* Tells the shutdown thread that the loop has returned. */
static void loop_returned(void)
{
    pthread_mutex_lock(&sig.lock);
    sig.loop_done = 1;
    pthread_cond_broadcast(&sig.cond);
    pthread_mutex_unlock(&sig.lock);
}

/* ---- the hot-thread loop (default; nohotloop: libfuse's) ------------------------
 *
 * libfuse's multi-threaded loop keeps two or more workers waiting in
 * read(2) of /dev/fuse, and the kernel wakes the one that waited longest,
 * so one caller's consecutive requests alternate between threads: about
 * twice the latency of one thread (docs/MOUNT.md, "Request loop"). Here
 * the loop's own thread (the primary) serves every request as long as it
 * keeps up. A monitor thread checks every tick whether the primary is busy
 * while further requests wait (poll of /dev/fuse); then it wakes (or
 * starts, up to max_threads - 1) a backup worker, which serves requests
 * until none waits. Parallel callers thus get more threads within a tick,
 * and a request that blocks (cold image pages, a write-back the daemon
 * itself waits for) holds others up by about one tick. After
 * HOT_QUIET_TICKS without a request the monitor sleeps until the primary
 * takes the next one, so an idle mount wakes nobody.
 *
 * The tick is 0.5 ms after a stall (requests found waiting behind a busy
 * primary) or a tick without requests, and grows up to 4 ms while
 * requests keep coming and none waits (util/hot_tick.h): a lone caller's
 * stream of requests (rm -rf, a create loop), which the primary serves
 * alone, is not interrupted every 0.5 ms by a monitor that lands on the
 * caller's CPU, while parallel callers, who stall the primary often, keep
 * the short tick (docs/MOUNT.md, "Request loop").
 *
 * The monitor also ticks the CPU latency hold (util/cpu_latency.h): while
 * requests keep coming, idle CPUs poll instead of halting, so the caller
 * waiting for each reply wakes at once (docs/MOUNT.md, "Waking the
 * caller"). */
#define HOT_TICK_US        MFS_HOT_TICK_US
#define HOT_QUIET_TICKS    2000      /* in HOT_TICK_US */

struct hot_loop {
    struct fuse_session *se;
    struct mfs_cpu_latency *latency;  /* ticked by the monitor */
    pthread_mutex_t lock;
    pthread_cond_t cond;          /* backups wait here for 'wanted' */
    unsigned max_backups, nbackups, wanted;
    int stop;                     /* (lock) */
    uint64_t seq;                 /* requests the primary took (atomic) */
    int busy;                     /* the primary is serving one (atomic) */
    int monitor_idle;             /* the monitor sleeps on idle_cond (atomic) */
    pthread_cond_t idle_cond;
    pthread_t monitor, *backups;
    struct mfs_hot_spin spin;     /* the primary's alone */
};

/* True if the kernel has requests waiting on the session's device. */
static int hot_pending(struct hot_loop *h)
{
    struct pollfd p = { .fd = fuse_session_fd(h->se), .events = POLLIN };

    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* Takes the next request for the primary. The device is non-blocking
 * (hot_loop_run), so a read(2) that finds nothing returns EAGAIN at once:
 * for spin_us after the last reply the thread keeps reading instead of
 * sleeping, so a caller that sends its next request right after our reply
 * (a create loop, tar) finds it awake instead of paying a wake-up. A
 * request that is already there costs one read(2), not a poll(2) and a
 * read(2): one system call in three per request (about 3 us each on the
 * test VM). After spin_us it sleeps in poll(2) until the device is
 * readable; it does not spin at all while spinning does not pay
 * (util/hot_tick.h: the caller came back during too few recent spins, as
 * when busy CPUs leave it none to run on while we spin). Returns what
 * fuse_session_receive_buf returns; -EINTR when a signal woke it (the
 * caller checks whether the session exited). */
static int hot_receive(struct hot_loop *h, struct fuse_buf *buf, unsigned spin_us)
{
    struct pollfd p = { .fd = fuse_session_fd(h->se), .events = POLLIN };
    struct timespec t0 = { 0, 0 }, t;
    int res, spun = 0, spin = -1;    /* -1: not asked yet */

    for (;;) {
        res = fuse_session_receive_buf(h->se, buf);
        if (res != -EAGAIN) {
            if (spun)
                mfs_hot_spin_done(&h->spin, 1);
            return res;
        }
        if (spin < 0)
            spin = spin_us && mfs_hot_spin_wanted(&h->spin);
        if (spin) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            if (!spun)
                t0 = t;
            spun = 1;
            if ((t.tv_sec - t0.tv_sec) * 1000000L + (t.tv_nsec - t0.tv_nsec) / 1000 <
                (long)spin_us)
                continue;
            mfs_hot_spin_done(&h->spin, 0);
            spin = 0;
        }
        if (poll(&p, 1, -1) < 0 && errno == EINTR)
            return -EINTR;
        spun = 0;
    }
}

static void *hot_backup(void *arg)
{
    struct hot_loop *h = arg;
    struct fuse_buf buf = { .mem = NULL };
    int res;

    pthread_mutex_lock(&h->lock);
    for (;;) {
        while (!h->stop && h->wanted == 0)
            pthread_cond_wait(&h->cond, &h->lock);
        if (h->stop)
            break;
        h->wanted--;
        pthread_mutex_unlock(&h->lock);
        /* serve while requests wait */
        while (hot_pending(h) && !fuse_session_exited(h->se)) {
            res = fuse_session_receive_buf(h->se, &buf);
            if (res == -EINTR)
                continue;
            if (res <= 0)
                break;
            fuse_session_process_buf(h->se, &buf);
        }
        pthread_mutex_lock(&h->lock);
    }
    pthread_mutex_unlock(&h->lock);
    free(buf.mem);
    return NULL;
}

/* One tick of the CPU latency hold, or (release) its end before the
 * monitor sleeps. A failed write turns the hold off for good: said once. */
static void latency_tick(struct hot_loop *h, int active, int release)
{
    struct mfs_cpu_latency *l = h->latency;
    int res = release ? mfs_cpu_latency_release(l) : mfs_cpu_latency_tick(l, active);

    if (res < 0)
        mfs_log(LOG_WARNING, "%s: %s; the CPU latency hold is off, idle CPUs halt "
                "as usual", MFS_CPU_LATENCY_DEV, strerror(-res));
}

/* Wakes (or starts) a backup for requests waiting behind a busy primary:
 * returns 1 if there were such. h->lock held. */
static int hot_stalled(struct hot_loop *h)
{
    if (h->stop || !__atomic_load_n(&h->busy, __ATOMIC_ACQUIRE) || !hot_pending(h))
        return 0;
    if (h->wanted < h->nbackups) {
        h->wanted++;
        pthread_cond_signal(&h->cond);
    } else if (h->nbackups < h->max_backups &&
               pthread_create(&h->backups[h->nbackups], NULL, hot_backup, h) == 0) {
        h->nbackups++;
        h->wanted++;
    }
    return 1;
}

static void *hot_monitor(void *arg)
{
    struct hot_loop *h = arg;
    uint64_t last = 0, seq;
    struct mfs_hot_tick tick;
    unsigned quiet = 0, i, n;
    int stop, active, stalled;

    mfs_hot_tick_init(&tick);
    for (;;) {
        usleep(tick.us);
        n = tick.us / HOT_TICK_US;          /* in short ticks */
        seq = __atomic_load_n(&h->seq, __ATOMIC_SEQ_CST);
        quiet = seq == last ? quiet + n : 0;
        active = seq != last || __atomic_load_n(&h->busy, __ATOMIC_ACQUIRE);
        /* given back before the monitor sleeps (latency_hold_ms <= 1000
         * ends it sooner); a long tick counts as n short ones towards
         * that, but as one towards taking it (two ticks in a row) */
        for (i = 0; i < (active ? 1 : n); i++)
            latency_tick(h, active, quiet >= HOT_QUIET_TICKS);
        pthread_mutex_lock(&h->lock);
        if (quiet >= HOT_QUIET_TICKS && !h->stop) {
            /* Idle: sleep until the primary takes a request. The flag is
             * set before seq is read again and the primary bumps seq
             * before it reads the flag (both sequentially consistent), so
             * either this sees the new request or the primary sees the
             * flag and wakes us: a request never runs unwatched. */
            __atomic_store_n(&h->monitor_idle, 1, __ATOMIC_SEQ_CST);
            while (!h->stop && __atomic_load_n(&h->monitor_idle, __ATOMIC_SEQ_CST) &&
                   __atomic_load_n(&h->seq, __ATOMIC_SEQ_CST) == last)
                pthread_cond_wait(&h->idle_cond, &h->lock);
            __atomic_store_n(&h->monitor_idle, 0, __ATOMIC_SEQ_CST);
            quiet = 0;
            mfs_hot_tick_init(&tick);
        }
        stop = h->stop;
        stalled = hot_stalled(h);
        pthread_mutex_unlock(&h->lock);
        if (stop)
            return NULL;
        mfs_hot_tick_next(&tick, seq != last, stalled);
        last = seq;
    }
}

/* Stops the monitor and the backups: those blocked in read(2) are
 * interrupted with SIGUSR1 (a no-op handler, see mmapfs_signals_start)
 * until they have returned. */
static void hot_stop(struct hot_loop *h)
{
    unsigned i;

    pthread_mutex_lock(&h->lock);
    h->stop = 1;
    pthread_cond_broadcast(&h->cond);
    pthread_cond_broadcast(&h->idle_cond);
    pthread_mutex_unlock(&h->lock);
    pthread_join(h->monitor, NULL);
    latency_tick(h, 0, 1);
    for (i = 0; i < h->nbackups; i++) {
        struct timespec until;
        for (;;) {
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += 50 * 1000 * 1000;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            if (pthread_timedjoin_np(h->backups[i], NULL, &until) == 0)
                break;
            pthread_kill(h->backups[i], SIGUSR1);
        }
    }
}

static int hot_loop_run(struct mmapfs_fuse *m)
{
    struct fuse_session *se = m->se;
    unsigned max_threads = m->cfg->max_threads, spin_us = m->cfg->spin_us;
    struct hot_loop h;
    struct fuse_buf buf = { .mem = NULL };
    int res = 0, fl;

    memset(&h, 0, sizeof(h));
    h.se = se;
    h.latency = &m->cpu_latency;
    h.max_backups = max_threads > 1 ? max_threads - 1 : 0;
    h.backups = calloc(h.max_backups ? h.max_backups : 1, sizeof(*h.backups));
    if (!h.backups)
        return -ENOMEM;
    pthread_mutex_init(&h.lock, NULL);
    pthread_cond_init(&h.cond, NULL);
    pthread_cond_init(&h.idle_cond, NULL);
    fl = fcntl(fuse_session_fd(se), F_GETFL);
    if (fl < 0 || fcntl(fuse_session_fd(se), F_SETFL, fl | O_NONBLOCK) < 0) {
        res = -errno;
        free(h.backups);
        return res;
    }
    res = -pthread_create(&h.monitor, NULL, hot_monitor, &h);
    if (res) {
        free(h.backups);
        return res;
    }
    while (!fuse_session_exited(se)) {
        res = hot_receive(&h, &buf, spin_us);
        if (res == -EINTR) {
            /* a signal, no error: the shutdown thread's SIGUSR1 after
             * fuse_session_exit ends the loop here, and must not make
             * the daemon exit 1 ("request loop failed") */
            res = 0;
            continue;
        }
        if (res <= 0)
            break;
        __atomic_store_n(&h.busy, 1, __ATOMIC_RELEASE);
        __atomic_add_fetch(&h.seq, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&h.monitor_idle, __ATOMIC_SEQ_CST)) {
            pthread_mutex_lock(&h.lock);
            __atomic_store_n(&h.monitor_idle, 0, __ATOMIC_SEQ_CST);
            pthread_cond_signal(&h.idle_cond);
            pthread_mutex_unlock(&h.lock);
        }
        fuse_session_process_buf(se, &buf);
        __atomic_store_n(&h.busy, 0, __ATOMIC_RELEASE);
    }
    hot_stop(&h);
    free(buf.mem);
    free(h.backups);
    pthread_mutex_destroy(&h.lock);
    pthread_cond_destroy(&h.cond);
    pthread_cond_destroy(&h.idle_cond);
    return res < 0 ? res : 0;
}

int mmapfs_session_loop(struct mmapfs_fuse *m)
{
    struct fuse_session *se = m->se;
    const struct mmapfs_config *cfg = m->cfg;
    struct fuse_loop_config *lc;
    int ret, err;

    if (cfg->single_thread) {
        ret = fuse_session_loop(se);
    } else if (!cfg->no_hot_loop) {
        /* opened here, in the daemon (daemonize closes what was opened
         * before it); the hot loop's monitor alone ticks it */
        err = mfs_cpu_latency_open(&m->cpu_latency, MFS_CPU_LATENCY_DEV,
                                   cfg->latency_hold_ms * 1000 / HOT_TICK_US);
        if (err && cfg->latency_hold_str)
            mfs_log(LOG_WARNING, "latency_hold=%s: cannot open %s: %s; idle CPUs halt "
                    "as usual", cfg->latency_hold_str, MFS_CPU_LATENCY_DEV, strerror(-err));
        ret = hot_loop_run(m);
        mfs_cpu_latency_close(&m->cpu_latency);
    } else {
        lc = fuse_loop_cfg_create();
        if (!lc) {
            loop_returned();
            return -ENOMEM;
        }
        fuse_loop_cfg_set_clone_fd(lc, !cfg->no_clone_fd);
        fuse_loop_cfg_set_max_threads(lc, cfg->max_threads);
        fuse_loop_cfg_set_idle_threads(lc, cfg->idle_threads);
        ret = fuse_session_loop_mt(se, lc);
        fuse_loop_cfg_destroy(lc);
    }
    loop_returned();
    return ret > 0 ? 0 : ret;     /* > 0: ended by a signal */
}
