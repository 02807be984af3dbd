/*
 * mmio_sigbus.c — fault guard for copies to and from the mapping.
 *
 * An access to a shared mapping raises SIGBUS when the page cannot be
 * backed: the file was truncated under us, the device returned EIO on the
 * page-in, or a sparse file could not allocate a block (disk full). The
 * engine copies with mmio_guarded_copy, which arms a thread-local jump
 * buffer together with the mapping's address range. The process-wide
 * handler recovers (siglongjmp, the copy returns -EIO) only when the fault
 * hits on a thread whose guard is armed AND at an address inside that
 * thread's guarded range. Every other SIGBUS goes to the handler that was
 * installed before ours, or, if that was SIG_DFL/SIG_IGN, is made fatal as
 * it would have been without us.
 *
 * mmio_guarded_call arms the same guard around a whole function, for
 * callers that read through raw pointers (fsck).
 *
 * The only global mutable state of libmmio lives here: the installation
 * (prev_action, under install_mu). The guard state is per thread; a
 * thread's TLS block is touched before that thread can fault in a guarded
 * copy, so the handler reading it is async-signal-safe.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>

#include "io/mmio_i.h"

static pthread_mutex_t install_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sigaction prev_action;    /* what SIGBUS did before us */

static __thread sigjmp_buf *volatile guard_jmp;  /* armed: non-NULL */
static __thread const char *volatile guard_lo;
static __thread volatile size_t guard_len;

/* Hands a SIGBUS that is not ours to whatever handled it before us. With
 * no previous handler the default action is restored: a hardware fault
 * then repeats on return and kills the process as usual; a sent signal
 * (kill, raise: si_code <= 0) is raised again and delivered on return. */
static void chain(int sig, siginfo_t *si, void *uctx)
{
    const struct sigaction *p = &prev_action;

    if (p->sa_flags & SA_SIGINFO) {
        p->sa_sigaction(sig, si, uctx);
        return;
    }
    if (p->sa_handler != SIG_DFL && p->sa_handler != SIG_IGN) {
        p->sa_handler(sig);
        return;
    }
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    if (!si || si->si_code <= 0)
        raise(sig);
}

/* The SIGBUS handler: recover faults inside an armed guard's range. */
static void on_sigbus(int sig, siginfo_t *si, void *uctx)
{
    sigjmp_buf *jb = guard_jmp;

    if (jb && si) {
        const char *addr = si->si_addr;
        const char *lo = guard_lo;
        if (addr >= lo && (size_t)(addr - lo) < guard_len) {
            guard_jmp = NULL;
            siglongjmp(*jb, 1);
        }
    }
    chain(sig, si, uctx);
}

int mmio_sigbus_install(void)
{
    struct sigaction cur, sa;
    int err = 0;

    pthread_mutex_lock(&install_mu);
    if (sigaction(SIGBUS, NULL, &cur)) {
        err = -errno;
        goto out;
    }
    /* sa_handler and sa_sigaction share storage: compare the pointer. */
    if (cur.sa_sigaction == on_sigbus && (cur.sa_flags & SA_SIGINFO))
        goto out;   /* already ours */
    if (cur.sa_sigaction != on_sigbus)
        prev_action = cur;  /* else: ours, restored by signal(); keep prev */

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGBUS, &sa, NULL))
        err = -errno;
out:
    pthread_mutex_unlock(&install_mu);
    return err;
}

/* Runs fn(arg) with the guard armed over [range, range + range_len):
 * 0, or -EIO if a fault there abandoned fn. Guards nest (the outer one is
 * restored on the way out). */
static int guarded(void (*fn)(void *arg), void *arg, const void *range, size_t range_len)
{
    sigjmp_buf jb;
    sigjmp_buf *saved = guard_jmp;   /* nesting from a signal handler */
    const char *saved_lo = guard_lo;
    size_t saved_len = guard_len;

    /* savemask 0: no sigprocmask syscall per copy. After a recovered
     * fault SIGBUS is still blocked (the kernel blocked it for the
     * handler), so unblock it by hand. */
    if (sigsetjmp(jb, 0)) {
        sigset_t bus;
        sigemptyset(&bus);
        sigaddset(&bus, SIGBUS);
        pthread_sigmask(SIG_UNBLOCK, &bus, NULL);
        guard_lo = saved_lo;
        guard_len = saved_len;
        guard_jmp = saved;
        return -EIO;
    }
    guard_lo = range;
    guard_len = range_len;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    guard_jmp = &jb;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);

    fn(arg);

    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    guard_jmp = saved;
    guard_lo = saved_lo;
    guard_len = saved_len;
    return 0;
}

struct copy_args {
    void *dst;
    const void *src;
    size_t len;
};

static void copy(void *arg)
{
    struct copy_args *a = arg;
    memcpy(a->dst, a->src, a->len);
}

int mmio_guarded_copy(void *dst, const void *src, size_t len,
                      const void *range, size_t range_len)
{
    struct copy_args a = { dst, src, len };
    return guarded(copy, &a, range, range_len);
}

int mmio_guarded_call(struct mmio *io, void (*fn)(void *arg), void *arg)
{
    if (!io || !io->map) {
        fn(arg);
        return 0;
    }
    return guarded(fn, arg, io->map, io->size);
}
