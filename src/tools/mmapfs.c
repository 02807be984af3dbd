/*
 * mmapfs — the mount daemon.
 *
 *   mmapfs TARGET MOUNTPOINT [-f] [-d] [-s] [-o OPTIONS]
 *
 * A strict ladder, unwound in reverse through labels:
 *   1. parse and validate options and paths, create the FUSE session
 *      (libfuse rejects unknown options here; nothing touched yet);
 *   2. daemonise (unless -f/-d) by our own fork: fs_mount starts threads
 *      that would not survive a later fork. The parent waits on a pipe for
 *      one status byte and exits with it: 0 (mounted and usable) or the
 *      TOOL_EXIT_* code of the failure (src/tools/exit_i.h);
 *   3. fs_mount: every fallible check of TARGET (not mmapfs, in use,
 *      corrupt) happens here, before anything is mounted;
 *   4. signal handling, fuse_session_mount, report success;
 *   5. the request loop, until unmount or SIGTERM/SIGINT/SIGHUP;
 *   6. mfs_defer_stop (the replies still owed, such as fsyncs the commit
 *      thread answers, go out on the open device), fuse_session_unmount,
 *      fs_unmount (commits, marks the image clean; its error gives a
 *      non-zero exit status).
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "fuse/fuse_i.h"
#include "tools/exit_i.h"

/* ---- daemonising with a status pipe ---------------------------------------------- */

/* Closes every descriptor above stderr except 'keep', so that the daemon
 * does not hold pipes or files of whoever started it (a caller reading our
 * output to EOF would otherwise wait for the daemon's exit). Nothing of
 * ours is open yet: the FUSE session opens /dev/fuse only when mounting. */
static void close_inherited_fds(int keep)
{
    if ((keep <= 3 || close_range(3, (unsigned)keep - 1, 0) == 0) &&
        close_range((unsigned)keep + 1, ~0u, 0) == 0)
        return;
    for (int fd = 3; fd < 1024; fd++)      /* kernels without close_range */
        if (fd != keep)
            close(fd);
}

/* Forks. The parent waits for the child's status byte (the exit status:
 * 0 mounted, else a TOOL_EXIT_* code) and exits with it (never returns);
 * the child gets the write end in *status_fd, starts a new session and
 * leaves the caller's directory. */
static int daemonize(int *status_fd)
{
    unsigned char status;
    int p[2], st;
    pid_t pid;
    ssize_t r;

    if (pipe2(p, O_CLOEXEC) != 0) {
        fprintf(stderr, "mmapfs: pipe: %s\n", strerror(errno));
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "mmapfs: fork: %s\n", strerror(errno));
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid > 0) {
        close(p[1]);
        do {
            r = read(p[0], &status, 1);
        } while (r < 0 && errno == EINTR);
        if (r == 1)
            _exit(status);
        waitpid(pid, &st, 0);
        fprintf(stderr, "mmapfs: the mount daemon exited before mounting\n");
        _exit(TOOL_EXIT_FAILURE);
    }
    close(p[0]);
    close_inherited_fds(p[1]);
    if (setsid() < 0)
        fprintf(stderr, "mmapfs: setsid: %s\n", strerror(errno));
    if (chdir("/") != 0)
        fprintf(stderr, "mmapfs: chdir /: %s\n", strerror(errno));
    *status_fd = p[1];
    return 0;
}

/* The daemon's stderr once it runs in the background: each line goes to
 * syslog, as mfs_log's do. The filesystem core, the engine and libfuse
 * report on stderr (corruption, I/O errors, multi-mount protection,
 * discard, a full host); sent to /dev/null with the rest of stdio, their
 * lines were lost whenever mmapfs ran without -f. Called under the
 * stream's lock; a line longer than the buffer goes out in pieces. */
struct syslog_stream {
    char line[1024];
    size_t len;
};

static void syslog_flush_line(struct syslog_stream *s)
{
    const char *msg = s->line;
    s->line[s->len] = '\0';
    if (strncmp(msg, "mmapfs: ", 8) == 0)
        msg += 8;   /* syslog names the program already */
    if (*msg)
        syslog(LOG_ERR, "%s", msg);
    s->len = 0;
}

static ssize_t syslog_stream_write(void *cookie, const char *data, size_t size)
{
    struct syslog_stream *s = cookie;
    for (size_t i = 0; i < size; i++) {
        if (data[i] == '\n') {
            syslog_flush_line(s);
            continue;
        }
        if (s->len == sizeof(s->line) - 1)
            syslog_flush_line(s);
        s->line[s->len++] = data[i];
    }
    return (ssize_t)size;
}

static void stderr_to_syslog(void)
{
    static struct syslog_stream s;
    cookie_io_functions_t io = { .write = syslog_stream_write };
    FILE *f = fopencookie(&s, "w", io);
    if (!f)
        return;     /* then stderr stays on /dev/null */
    setvbuf(f, NULL, _IOLBF, 0);
    stderr = f;
}

/* Sends the status byte to the waiting parent (0 = mounted, else the
 * TOOL_EXIT_* code it exits with); on success the daemon's stdio goes to
 * /dev/null and messages, stderr's lines too, to syslog. */
static void report_status(int *status_fd, int code)
{
    unsigned char b = (unsigned char)code;
    int ok = code == 0;
    ssize_t r;
    int fd;

    if (*status_fd < 0)
        return;
    do {
        r = write(*status_fd, &b, 1);
    } while (r < 0 && errno == EINTR);
    close(*status_fd);
    *status_fd = -1;
    if (!ok)
        return;
    fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        if (fd > STDERR_FILENO)
            close(fd);
    }
    mfs_log_use_syslog(1);
    stderr_to_syslog();
}

/* ---- messages --------------------------------------------------------------------- */

/* Explains an fs_mount error in terms of what the user should do (after
 * fs_mount's own line naming the detail); returns the exit status. */
static int report_mount_error(const struct mmapfs_config *cfg, int err)
{
    const char *t = cfg->target_arg;

    switch (err) {
    case -EBUSY:
        fprintf(stderr, "mmapfs: %s is already mounted (or in use by fsck.mmapfs or "
                "mkfs.mmapfs); nothing mounted\n", t);
        return TOOL_EXIT_IN_USE;
    case -EUCLEAN:
        fprintf(stderr, "mmapfs: %s: the filesystem is corrupt; "
                "run fsck.mmapfs %s\n", t, t);
        return TOOL_EXIT_CORRUPT;
    case -EROFS:
        fprintf(stderr, "mmapfs: %s uses features this version can only mount "
                "read-only; mount with -o ro\n", t);
        return TOOL_EXIT_TARGET_KIND;
    case -EFBIG:                /* the image is smaller than its filesystem: said */
        return TOOL_EXIT_TARGET_KIND;
    case -EINVAL:
        fprintf(stderr, "mmapfs: %s: not an mmapfs filesystem (or an "
                "unsupported version); nothing mounted\n", t);
        return TOOL_EXIT_TARGET_KIND;
    case -ENOENT: case -EACCES: case -EPERM:
        fprintf(stderr, "mmapfs: cannot mount %s: %s\n", t, strerror(-err));
        return TOOL_EXIT_TARGET_ACCESS;
    default:
        fprintf(stderr, "mmapfs: cannot mount %s: %s\n", t, strerror(-err));
        return TOOL_EXIT_FAILURE;
    }
}

/* ---- main ------------------------------------------------------------------------------ */

/* ---- memory ------------------------------------------------------------------------ */

/* The daemon's memory comes and goes in bursts: a transaction's block
 * images are freed once it is home, a listing grows the inode cache. By
 * default glibc gives freed memory back to the kernel (a trimmed heap, an
 * unmapped large block), and the next burst takes fresh pages, each a page
 * fault on first touch, about 30 us on the two-core test VM (docs/BENCH.md,
 * "Page faults"). Kept instead: memory the daemon used once is reused. The
 * cost is that the daemon's resident size stays at its peak, which the
 * journal's transaction limit bounds. Called before any thread starts. */
static void keep_freed_memory(void)
{
    (void)mallopt(M_MMAP_THRESHOLD, MFS_MALLOC_MMAP_THRESHOLD);
    (void)mallopt(M_TRIM_THRESHOLD, MFS_MALLOC_TRIM_THRESHOLD);
}

int main(int argc, char **argv)
{

    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    struct mmapfs_config cfg;
    struct mmapfs_fuse data;
    struct fuse_session *se;
    struct fs_options fo;
    struct fs *fs = NULL;
    int status_fd = -1, ret = TOOL_EXIT_FAILURE, err;

    keep_freed_memory();
    err = mmapfs_parse_args(argc, argv, &cfg, &args);
    if (err) {
        ret = err > 0 ? TOOL_EXIT_OK : -err;
        goto out_args;
    }
    memset(&data, 0, sizeof(data));
    data.cfg = &cfg;
    mfs_defer_init(&data);
    se = mmapfs_session_new(&args, &data);
    if (!se) {
        /* libfuse printed the option it does not know */
        fprintf(stderr, "mmapfs: invalid FUSE option (see the line above and "
                "mmapfs --help); nothing mounted\n");
        ret = TOOL_EXIT_USAGE;
        goto out_args;
    }

    if (!cfg.foreground && daemonize(&status_fd) != 0)
        goto out_session;

    mmapfs_signals_block();     /* fs threads must not take these signals */
    memset(&fo, 0, sizeof(fo));
    fo.path = cfg.target;
    fo.read_only = cfg.read_only;
    fo.sync_delay_us = cfg.sync_delay_us;
    fo.backend = cfg.backend;
    fo.commit_interval_s = cfg.commit_s;
    fo.discard = cfg.discard;
    err = fs_mount(&fs, &fo);
    if (err) {
        ret = report_mount_error(&cfg, err);
        goto out_session;
    }
    data.fs = fs;
    fs_set_link_drop_fn(fs, mfs_link_dropped, &data);

    err = mmapfs_signals_start(&data, cfg.mountpoint);
    if (err) {
        fprintf(stderr, "mmapfs: signal setup: %s\n", strerror(-err));
        goto out_signals;
    }
    if (fuse_session_mount(se, cfg.mountpoint) != 0) {
        fprintf(stderr, "mmapfs: cannot mount on %s\n", cfg.mountpoint_arg);
        goto out_signals;
    }
    mmapfs_set_dirty_share(&data);
    if ((err = mmapfs_devio_install(se, !cfg.no_killpriv_v2)) != 0)
        mfs_log(LOG_WARNING, "cannot install the device I/O: %s; every write asks for "
                "security.capability, O_TMPFILE is refused, no birth times",
                strerror(-err));
    err = mfs_metrics_file_start(&data);
    if (err)
        mfs_log(LOG_WARNING, "metrics=%s: no updates: %s", cfg.metrics_path,
                strerror(-err));
    report_status(&status_fd, TOOL_EXIT_OK);

    err = mmapfs_session_loop(&data);
    mfs_defer_stop(&data);
    ret = TOOL_EXIT_OK;
    if (err) {
        mfs_log(LOG_ERR, "request loop failed: %s", strerror(-err));
        ret = TOOL_EXIT_FAILURE;
    }
    fuse_session_unmount(se);
out_signals:
    mmapfs_signals_stop();
    mfs_metrics_file_stop();
    err = fs_unmount(fs);
    if (err) {
        mfs_log(LOG_ERR, "unmounting %s: %s; the image may need fsck.mmapfs",
                cfg.target, strerror(-err));
        ret = TOOL_EXIT_FAILURE;
    }
out_session:
    fuse_session_destroy(se);
out_args:
    /* no-op once success was reported */
    report_status(&status_fd, ret ? ret : TOOL_EXIT_FAILURE);
    fuse_opt_free_args(&args);
    mmapfs_config_free(&cfg);
    return ret;
}
