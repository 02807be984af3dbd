/*
 * syslog_shim.c — an LD_PRELOAD library for the integration tests: every
 * syslog(3) call of the process appends its message, one line, to the
 * file named by $SYSLOG_SHIM_FILE, so that a test can read what a
 * daemonised mmapfs logs (the test machines have no syslog daemon).
 * Covers the _FORTIFY_SOURCE entry points too.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

static void record(const char *fmt, va_list ap)
{
    const char *path = getenv("SYSLOG_SHIM_FILE");
    char line[2048];
    int n;

    if (!path)
        return;
    n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    if (n < 0)
        return;
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        (void)!write(fd, line, (size_t)n);
        close(fd);
    }
}

void vsyslog(int prio, const char *fmt, va_list ap)
{
    (void)prio;
    record(fmt, ap);
}

void syslog(int prio, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsyslog(prio, fmt, ap);
    va_end(ap);
}

void __vsyslog_chk(int prio, int flag, const char *fmt, va_list ap)
{
    (void)flag;
    vsyslog(prio, fmt, ap);
}

void __syslog_chk(int prio, int flag, const char *fmt, ...)
{
    va_list ap;
    (void)flag;
    va_start(ap, fmt);
    vsyslog(prio, fmt, ap);
    va_end(ap);
}
