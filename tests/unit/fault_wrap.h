/*
 * fault_wrap.h — fault injection for unit tests, like SQLite's replaceable
 * system-call table but at link time: the test binary is linked with
 * -Wl,--wrap=SYMBOL for the allocator (malloc, calloc, realloc, strdup,
 * posix_memalign) and the engine's system calls (pread64, pwrite64,
 * fdatasync, fsync, msync; the Makefile's FAULT_WRAP list), so every call
 * the libraries make goes through the __wrap_ functions below, which pass
 * it on to the real one unless a fault is armed for it. The libraries
 * themselves contain no hook (docs/FAULTS.md).
 *
 *   fault_arm(FAULT_MEM, n, 0)  the n-th allocation of this thread fails
 *                               (ENOMEM); other threads are not counted
 *   fault_arm(FAULT_IO, n, 1)   the n-th engine system call of any thread
 *                               fails (EIO)
 *   fault_arm_from(kind, n, t)  the n-th call fails and every later one
 *                               too (a persistent shortage)
 *   fault_disarm()              stops; returns 1 if the fault was hit
 *
 * FAULT_BACKTRACE=1 in the environment prints the stack of every injected
 * fault (link with -rdynamic for names, or use addr2line).
 *
 * Include it in exactly one test file (it defines the wrappers).
 */
#ifndef MMAPFS_TESTS_FAULT_WRAP_H
#define MMAPFS_TESTS_FAULT_WRAP_H

#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

enum { FAULT_MEM = 1, FAULT_IO = 2 };

static struct {
    int kind;                 /* armed kind, 0 = off (atomic) */
    long countdown;           /* calls left until the failing one (atomic) */
    int hit;                  /* the fault was injected (atomic) */
    int any_thread;
    int persistent;           /* every call after the n-th fails too */
    pthread_t thread;
} fault;

static inline void fault_arm(int kind, long n, int any_thread)
{
    fault.thread = pthread_self();
    fault.any_thread = any_thread;
    fault.persistent = 0;
    __atomic_store_n(&fault.hit, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&fault.countdown, n, __ATOMIC_SEQ_CST);
    __atomic_store_n(&fault.kind, kind, __ATOMIC_SEQ_CST);
}

static inline void fault_arm_from(int kind, long n, int any_thread)
{
    fault_arm(kind, n, any_thread);
    fault.persistent = 1;
}

static inline int fault_disarm(void)
{
    __atomic_store_n(&fault.kind, 0, __ATOMIC_SEQ_CST);
    return __atomic_load_n(&fault.hit, __ATOMIC_SEQ_CST);
}

/* Is this call the one that fails? */
static inline int fault_now(int kind)
{
    if (!(__atomic_load_n(&fault.kind, __ATOMIC_SEQ_CST) & kind))
        return 0;
    if (!fault.any_thread && !pthread_equal(pthread_self(), fault.thread))
        return 0;
    long left = __atomic_sub_fetch(&fault.countdown, 1, __ATOMIC_SEQ_CST);
    if (left != 0 && !(fault.persistent && left < 0))
        return 0;
    __atomic_store_n(&fault.hit, 1, __ATOMIC_SEQ_CST);
    const char *bt = getenv("FAULT_BACKTRACE");
    if (bt && *bt == '1') {
        void *frames[32];
        int n = backtrace(frames, 32);
        backtrace_symbols_fd(frames, n, 2);
    }
    return 1;
}

/* ---- the wrappers (declared for -Wmissing-prototypes) ---------------------- */

#define FAULT_DECLARE(ret, name, params) ret __real_##name params; ret __wrap_##name params;
FAULT_DECLARE(void *, malloc, (size_t n))
FAULT_DECLARE(void *, calloc, (size_t n, size_t size))
FAULT_DECLARE(void *, realloc, (void *p, size_t n))
FAULT_DECLARE(char *, strdup, (const char *s))
FAULT_DECLARE(int, posix_memalign, (void **p, size_t align, size_t n))
FAULT_DECLARE(ssize_t, pread64, (int fd, void *buf, size_t n, off_t off))
FAULT_DECLARE(ssize_t, pwrite64, (int fd, const void *buf, size_t n, off_t off))
FAULT_DECLARE(int, fdatasync, (int fd))
FAULT_DECLARE(int, fsync, (int fd))
FAULT_DECLARE(int, msync, (void *addr, size_t len, int flags))

/* The wrapper's body: the injected failure (errno err, result fail) or
 * the real call. */
#define FAULT_OR(kind, err, fail, call)                                       \
    do {                                                                      \
        if (fault_now(kind)) {                                                \
            errno = (err);                                                    \
            return (fail);                                                    \
        }                                                                     \
        return (call);                                                        \
    } while (0)

void *__wrap_malloc(size_t n) { FAULT_OR(FAULT_MEM, ENOMEM, NULL, __real_malloc(n)); }
void *__wrap_calloc(size_t n, size_t size) { FAULT_OR(FAULT_MEM, ENOMEM, NULL, __real_calloc(n, size)); }
void *__wrap_realloc(void *p, size_t n) { FAULT_OR(FAULT_MEM, ENOMEM, NULL, __real_realloc(p, n)); }
char *__wrap_strdup(const char *s) { FAULT_OR(FAULT_MEM, ENOMEM, NULL, __real_strdup(s)); }
int __wrap_posix_memalign(void **p, size_t align, size_t n)
{
    FAULT_OR(FAULT_MEM, ENOMEM, ENOMEM, __real_posix_memalign(p, align, n));
}
ssize_t __wrap_pread64(int fd, void *buf, size_t n, off_t off)
{
    FAULT_OR(FAULT_IO, EIO, -1, __real_pread64(fd, buf, n, off));
}
ssize_t __wrap_pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    FAULT_OR(FAULT_IO, EIO, -1, __real_pwrite64(fd, buf, n, off));
}
int __wrap_fdatasync(int fd) { FAULT_OR(FAULT_IO, EIO, -1, __real_fdatasync(fd)); }
int __wrap_fsync(int fd) { FAULT_OR(FAULT_IO, EIO, -1, __real_fsync(fd)); }
int __wrap_msync(void *addr, size_t len, int flags)
{
    FAULT_OR(FAULT_IO, EIO, -1, __real_msync(addr, len, flags));
}

#endif
