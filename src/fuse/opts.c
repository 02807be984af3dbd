/*
 * opts.c — command line of the mount daemon: one fuse_opt table with
 * offsetof into struct mmapfs_config, the help text beside it, strict
 * validation of values, and the argument vector handed to libfuse.
 *
 *   mmapfs TARGET MOUNTPOINT [-f] [-d] [-s] [-o OPT[,OPT...]]
 *
 * Options may come before, between or after the positionals (as
 * mount.fuse3 and fstab produce them). Options of mmapfs are consumed here;
 * generic mount(8) options are mapped or ignored; everything else is
 * passed to fuse_session_new, which rejects what it does not know.
 */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/format.h"
#include "fuse/fuse_i.h"
#include "tools/exit_i.h"
#include "util/mountinfo.h"

enum {
    KEY_HELP,
    KEY_VERSION,
    KEY_IGNORE_MOUNT_OPT,
};

#define MMAPFS_OPT(templ, field, value) \
    { templ, offsetof(struct mmapfs_config, field), value }

/* ---- the table and its help text ------------------------------------------ */

static const struct fuse_opt mmapfs_opts[] = {
    /* mmapfs options */
    MMAPFS_OPT("sync_delay=%s", sync_delay_str, 0),
    MMAPFS_OPT("io=%s", io_str, 0),
    MMAPFS_OPT("commit=%s", commit_str, 0),
    MMAPFS_OPT("entry_timeout=%s", entry_timeout_str, 0),
    MMAPFS_OPT("attr_timeout=%s", attr_timeout_str, 0),
    MMAPFS_OPT("max_threads=%s", max_threads_str, 0),
    MMAPFS_OPT("max_idle_threads=%s", idle_threads_str, 0),
    MMAPFS_OPT("spin=%s", spin_str, 0),
    MMAPFS_OPT("latency_hold=%s", latency_hold_str, 0),
    MMAPFS_OPT("readdirplus=%s", readdirplus_str, 0),
    MMAPFS_OPT("max_ratio=%s", max_ratio_str, 0),
    MMAPFS_OPT("min_ratio=%s", min_ratio_str, 0),
    MMAPFS_OPT("read_ahead_kb=%s", read_ahead_str, 0),
    MMAPFS_OPT("noclone_fd", no_clone_fd, 1),
    MMAPFS_OPT("clone_fd", no_clone_fd, 0),
    MMAPFS_OPT("hotloop", no_hot_loop, 0),
    MMAPFS_OPT("nohotloop", no_hot_loop, 1),
    MMAPFS_OPT("nowriteback_cache", no_writeback_cache, 1),
    MMAPFS_OPT("writeback_cache", no_writeback_cache, 0),
    MMAPFS_OPT("noacl", no_acl, 1),
    MMAPFS_OPT("acl", no_acl, 0),
    MMAPFS_OPT("nokillpriv_v2", no_killpriv_v2, 1),
    MMAPFS_OPT("killpriv_v2", no_killpriv_v2, 0),
    MMAPFS_OPT("discard", discard_opt, 1),
    MMAPFS_OPT("nodiscard", discard_opt, 2),
    MMAPFS_OPT("metrics=%s", metrics_arg, 0),
    MMAPFS_OPT("metrics_interval=%s", metrics_interval_str, 0),
    /* read-only: also passed on so that the kernel mount is read-only */
    MMAPFS_OPT("ro", read_only, 1),
    MMAPFS_OPT("rw", read_only, 0),
    FUSE_OPT_KEY("ro", FUSE_OPT_KEY_KEEP),
    FUSE_OPT_KEY("rw", FUSE_OPT_KEY_KEEP),
    /* daemon flags */
    MMAPFS_OPT("-f", foreground, 1),
    MMAPFS_OPT("-s", single_thread, 1),
    MMAPFS_OPT("-d", debug, 1),
    MMAPFS_OPT("-d", foreground, 1),
    MMAPFS_OPT("debug", debug, 1),
    MMAPFS_OPT("debug", foreground, 1),
    FUSE_OPT_KEY("-d", FUSE_OPT_KEY_KEEP),
    FUSE_OPT_KEY("debug", FUSE_OPT_KEY_KEEP),
    FUSE_OPT_KEY("-h", KEY_HELP),
    FUSE_OPT_KEY("--help", KEY_HELP),
    FUSE_OPT_KEY("-V", KEY_VERSION),
    FUSE_OPT_KEY("--version", KEY_VERSION),
    /* mount(8)/fstab options that mean nothing to a FUSE daemon */
    FUSE_OPT_KEY("defaults", KEY_IGNORE_MOUNT_OPT),
    FUSE_OPT_KEY("auto", KEY_IGNORE_MOUNT_OPT),
    FUSE_OPT_KEY("noauto", KEY_IGNORE_MOUNT_OPT),
    FUSE_OPT_KEY("user", KEY_IGNORE_MOUNT_OPT),
    FUSE_OPT_KEY("nouser", KEY_IGNORE_MOUNT_OPT),
    FUSE_OPT_KEY("users", KEY_IGNORE_MOUNT_OPT),
    FUSE_OPT_KEY("owner", KEY_IGNORE_MOUNT_OPT),
    FUSE_OPT_KEY("group", KEY_IGNORE_MOUNT_OPT),
    FUSE_OPT_KEY("_netdev", KEY_IGNORE_MOUNT_OPT),
    FUSE_OPT_KEY("nofail", KEY_IGNORE_MOUNT_OPT),
    FUSE_OPT_KEY("nonempty", KEY_IGNORE_MOUNT_OPT),
    FUSE_OPT_KEY("comment=", KEY_IGNORE_MOUNT_OPT),
    FUSE_OPT_END
};

static const char mmapfs_help[] =
"mmapfs options (-o OPT[,OPT...]):\n"
"    sync_delay=USEC        batching window of the engine's delayed sync,\n"
"                           microseconds (default: engine default, 0)\n"
"    io=mmap|pread          I/O engine backend (default mmap)\n"
"    commit=SEC             periodic journal commit interval (default 5)\n"
"    entry_timeout=SEC      kernel cache time of names, also of negative\n"
"                           lookups (default " MMAPFS_STR(MMAPFS_DEFAULT_TIMEOUT) "; fractions allowed)\n"
"    attr_timeout=SEC       kernel cache time of attributes (default " MMAPFS_STR(MMAPFS_DEFAULT_TIMEOUT) ")\n"
"    nowriteback_cache      write through to the daemon on every write(2)\n"
"                           (default: kernel writeback cache when offered)\n"
"    acl / noacl            POSIX ACLs (system.posix_acl_*), enforced by\n"
"                           the kernel (default acl)\n"
"    nokillpriv_v2          let the kernel ask for security.capability on\n"
"                           every write(2) (default: HANDLE_KILLPRIV_V2)\n"
"    max_threads=N          request worker threads at most (default 64)\n"
"    max_idle_threads=N     nohotloop: idle workers kept (default 16)\n"
"    nohotloop              libfuse's multi-threaded loop instead of the\n"
"                           hot-thread loop (one thread serves while it\n"
"                           keeps up, more when requests queue behind it)\n"
"    spin=USEC              hot loop: after a request, poll this long for\n"
"                           the next before sleeping (default " MMAPFS_STR(MMAPFS_DEFAULT_SPIN_US) ",\n"
"                           0..1000; 0 = sleep at once)\n"
"    latency_hold=MSEC      hot loop, as root: while requests keep coming\n"
"                           and MSEC after the last, idle CPUs poll instead\n"
"                           of halting (CPU latency request of 0 us), so a\n"
"                           waiting caller wakes at once; costs CPU time\n"
"                           (default " MMAPFS_STR(MMAPFS_DEFAULT_LATENCY_HOLD_MS) " with up to " MMAPFS_STR(MMAPFS_LATENCY_HOLD_MAX_CPUS) " CPUs,\n"
"                           else 0; 0..1000; 0 = off)\n"
"    noclone_fd             nohotloop: workers share one /dev/fuse\n"
"                           descriptor (default: one per worker)\n"
"    readdirplus=always|auto  attributes with every directory listing\n"
"                           (always, default) or as the kernel chooses\n"
"    max_ratio=PCT          most of the kernel's dirty-page limit this\n"
"                           mount may use (default " MMAPFS_STR(MMAPFS_DEFAULT_MAX_RATIO) "; 0 = kernel's);\n"
"                           lowered while the filesystem is nearly full\n"
"    min_ratio=PCT          share of it reserved for this mount\n"
"                           (default " MMAPFS_STR(MMAPFS_DEFAULT_MIN_RATIO) "; 0 = kernel's)\n"
"    read_ahead_kb=KB       the kernel's read-ahead for this mount: READs of\n"
"                           up to 1 MiB (default " MMAPFS_STR(MMAPFS_DEFAULT_READ_AHEAD_KB) "; 0 = kernel's 128)\n"
"    discard, nodiscard     give freed blocks back to the storage once\n"
"                           their transaction is durable: holes in an image\n"
"                           file, BLKDISCARD on a device (default nodiscard;\n"
"                           mmapfs-trim does it offline)\n"
"    metrics=PATH           write the counters in the Prometheus text format\n"
"                           (as mmapfs-stat --prometheus) to PATH every\n"
"                           metrics_interval seconds and at unmount\n"
"                           (PATH.tmp, then rename); PATH's directory must exist\n"
"    metrics_interval=SEC   seconds between metrics=PATH updates (default\n"
"                           " MMAPFS_STR(MMAPFS_DEFAULT_METRICS_INTERVAL) ", 1..86400)\n"
"    ro                     mount read-only (the image is not written)\n"
"\n"
"daemon flags:\n"
"    -f                     stay in the foreground\n"
"    -d, -o debug           foreground, print every FUSE request\n"
"    -s                     single-threaded request loop\n"
"    -h, --help             this help\n"
"    -V, --version          code and on-disk format versions\n"
"\n"
"FUSE and mount options passed on: allow_other, allow_root, fsname=,\n"
"suid/nosuid, dev/nodev, exec/noexec, atime/noatime/relatime/strictatime,\n"
"sync/async, dirsync, rw. default_permissions is always on; subtype=mmapfs\n"
"and fsname=TARGET are set. Ignored (fstab/mount(8)): defaults, auto,\n"
"noauto, user, nouser, users, owner, group, _netdev, nofail, x-*, comment=.\n";

void mmapfs_print_help(const char *prog)
{
    printf("usage: %s TARGET MOUNTPOINT [-f] [-d] [-s] [-o OPTIONS]\n"
           "Mounts the mmapfs image file or block device TARGET on MOUNTPOINT.\n"
           "Without -f the command returns once the mount is usable (exit 0)\n"
           "or has failed (exit 1..7, by kind: see mmapfs(8)); the daemon goes\n"
           "on in the background.\n"
           "Unmount with: fusermount3 -u MOUNTPOINT (or umount as root).\n\n",
           prog);
    fputs(mmapfs_help, stdout);
}

/* ---- parsing ------------------------------------------------------------------ */

/* fuse_opt callback: positionals, help/version, ignored and unknown options.
 * Returns 0 to drop the argument, 1 to keep it for libfuse, -1 to fail. */
static int opt_proc(void *data, const char *arg, int key, struct fuse_args *out)
{
    struct mmapfs_config *cfg = data;
    (void)out;

    switch (key) {
    case KEY_HELP:
        cfg->show_help = 1;
        return 0;
    case KEY_VERSION:
        cfg->show_version = 1;
        return 0;
    case KEY_IGNORE_MOUNT_OPT:
        return 0;
    case FUSE_OPT_KEY_NONOPT:
        if (!cfg->target_arg) {
            cfg->target_arg = arg;
            return 0;
        }
        if (!cfg->mountpoint_arg) {
            cfg->mountpoint_arg = arg;
            return 0;
        }
        fprintf(stderr, "mmapfs: unexpected argument '%s' (TARGET and MOUNTPOINT "
                "are already given)\n", arg);
        cfg->bad = 1;
        return -1;
    case FUSE_OPT_KEY_OPT:
        if (strncmp(arg, "x-", 2) == 0)         /* x-systemd.*, x-gvfs-* ... */
            return 0;
        if (arg[0] == '-') {
            fprintf(stderr, "mmapfs: unknown option '%s' (see mmapfs --help)\n", arg);
            cfg->bad = 1;
            return -1;
        }
        /* the daemon finds its mount in mountinfo as type fuse.mmapfs (the
         * dirty-page limits): another subtype would hide it */
        if (strncmp(arg, "subtype=", 8) == 0) {
            fprintf(stderr, "mmapfs: %s: the subtype is always mmapfs (the mount's "
                    "type is fuse.mmapfs)\n", arg);
            cfg->bad = 1;
            return -1;
        }
        return 1;    /* a FUSE/mount option: fuse_session_new validates it */
    default:
        return 1;
    }
}

/* Strict unsigned decimal in [min, max]; 0 or -EINVAL. */
static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (!s || !*s || *s == '-' || *s == '+')
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

/* Option name=str (str NULL: not given, *out untouched) as a number in
 * [min, max] into *out; on a bad value prints "mmapfs: name=str: expected
 * what" and returns -1. */
static int parse_count(const char *name, const char *str, uint64_t min, uint64_t max,
                       const char *what, unsigned *out)
{
    uint64_t v;

    if (!str)
        return 0;
    if (parse_u64(str, min, max, &v)) {
        fprintf(stderr, "mmapfs: %s=%s: expected %s\n", name, str, what);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

/* Strict non-negative decimal number of seconds in [0, max]. */
static int parse_seconds(const char *s, double max, double *out)
{
    char *end;
    double v;

    if (!s || !*s || *s == '-' || *s == '+')
        return -EINVAL;
    errno = 0;
    v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < 0 || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

/* A bdi ratio option: a percentage 0..100, 0 meaning "leave the kernel's
 * setting" (stored as -1). Unset (s NULL) keeps *out. */
static int parse_ratio(const char *name, const char *s, int *out)
{
    uint64_t v;

    if (!s)
        return 0;
    if (parse_u64(s, 0, 100, &v)) {
        fprintf(stderr, "mmapfs: %s=%s: expected a percentage, 0..100 "
                "(0: leave the kernel's setting)\n", name, s);
        return -1;
    }
    *out = v == 0 ? -1 : (int)v;
    return 0;
}

/* Converts the raw option strings into values; prints what is wrong. */
static int validate(struct mmapfs_config *cfg)
{
    uint64_t v;

    cfg->backend = MMIO_BACKEND_MMAP;
    cfg->commit_s = 5;
    cfg->entry_timeout = MMAPFS_DEFAULT_TIMEOUT;
    cfg->attr_timeout = MMAPFS_DEFAULT_TIMEOUT;
    cfg->max_threads = 64;
    cfg->idle_threads = 0;      /* set below: default depends on max_threads */
    cfg->readdirplus_auto = 0;
    cfg->max_ratio = MMAPFS_DEFAULT_MAX_RATIO;
    cfg->min_ratio = MMAPFS_DEFAULT_MIN_RATIO;
    cfg->read_ahead_kb = MMAPFS_DEFAULT_READ_AHEAD_KB;
    cfg->sync_delay_us = 0;

    if (cfg->sync_delay_str) {
        if (parse_u64(cfg->sync_delay_str, 0, 10000000, &v)) {
            fprintf(stderr, "mmapfs: sync_delay=%s: expected microseconds, "
                    "0..10000000\n", cfg->sync_delay_str);
            return -1;
        }
        cfg->sync_delay_us = v;
    }
    if (cfg->io_str) {
        if (strcmp(cfg->io_str, "mmap") == 0) {
            cfg->backend = MMIO_BACKEND_MMAP;
        } else if (strcmp(cfg->io_str, "pread") == 0) {
            cfg->backend = MMIO_BACKEND_PREAD;
        } else {
            fprintf(stderr, "mmapfs: io=%s: expected io=mmap or io=pread\n",
                    cfg->io_str);
            return -1;
        }
    }
    if (parse_count("commit", cfg->commit_str, 1, 86400, "seconds, 1..86400",
                    &cfg->commit_s))
        return -1;
    if (cfg->entry_timeout_str &&
        parse_seconds(cfg->entry_timeout_str, 86400, &cfg->entry_timeout)) {
        fprintf(stderr, "mmapfs: entry_timeout=%s: expected seconds, 0..86400\n",
                cfg->entry_timeout_str);
        return -1;
    }
    if (cfg->attr_timeout_str &&
        parse_seconds(cfg->attr_timeout_str, 86400, &cfg->attr_timeout)) {
        fprintf(stderr, "mmapfs: attr_timeout=%s: expected seconds, 0..86400\n",
                cfg->attr_timeout_str);
        return -1;
    }
    if (parse_count("max_threads", cfg->max_threads_str, 1, 1024, "1..1024",
                    &cfg->max_threads))
        return -1;
    /* one worker could not serve the writes a SEEK_DATA flush waits for:
     * that is the single-threaded loop */
    if (cfg->max_threads == 1)
        cfg->single_thread = 1;
    cfg->idle_threads = cfg->max_threads < MMAPFS_DEFAULT_IDLE_THREADS ?
                        cfg->max_threads : MMAPFS_DEFAULT_IDLE_THREADS;
    if (cfg->idle_threads_str) {
        if (parse_u64(cfg->idle_threads_str, 1, cfg->max_threads, &v)) {
            fprintf(stderr, "mmapfs: max_idle_threads=%s: expected 1..max_threads "
                    "(%u)\n", cfg->idle_threads_str, cfg->max_threads);
            return -1;
        }
        cfg->idle_threads = (unsigned)v;
    }
    cfg->spin_us = MMAPFS_DEFAULT_SPIN_US;
    if (parse_count("spin", cfg->spin_str, 0, 1000, "microseconds, 0..1000",
                    &cfg->spin_us))
        return -1;
    /* every idle CPU of the machine polls while it is held: the default
     * is off where that is many CPUs (docs/MOUNT.md, "Waking the caller") */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->latency_hold_ms = ncpu > 0 && ncpu <= MMAPFS_LATENCY_HOLD_MAX_CPUS ?
                           MMAPFS_DEFAULT_LATENCY_HOLD_MS : 0;
    if (parse_count("latency_hold", cfg->latency_hold_str, 0, 1000,
                    "milliseconds, 0..1000", &cfg->latency_hold_ms))
        return -1;
    if (cfg->readdirplus_str) {
        if (strcmp(cfg->readdirplus_str, "always") == 0) {
            cfg->readdirplus_auto = 0;
        } else if (strcmp(cfg->readdirplus_str, "auto") == 0) {
            cfg->readdirplus_auto = 1;
        } else {
            fprintf(stderr, "mmapfs: readdirplus=%s: expected readdirplus=always "
                    "or readdirplus=auto\n", cfg->readdirplus_str);
            return -1;
        }
    }
    if (parse_ratio("max_ratio", cfg->max_ratio_str, &cfg->max_ratio) ||
        parse_ratio("min_ratio", cfg->min_ratio_str, &cfg->min_ratio))
        return -1;
    if (parse_count("read_ahead_kb", cfg->read_ahead_str, 0, 65536, "kilobytes, "
                    "0..65536 (0: leave the kernel's setting)", &cfg->read_ahead_kb))
        return -1;
    /* off unless asked for: punching holes costs the host file system
     * real time under the journal lock (docs/MOUNT.md, "Discard") */
    cfg->discard = cfg->discard_opt == 1;
    cfg->metrics_interval_s = MMAPFS_DEFAULT_METRICS_INTERVAL;
    if (parse_count("metrics_interval", cfg->metrics_interval_str, 1, 86400,
                    "seconds, 1..86400", &cfg->metrics_interval_s))
        return -1;
    if (cfg->read_only && !cfg->max_ratio_str && !cfg->min_ratio_str)
        cfg->max_ratio = -1;     /* nothing to write back: reserve nothing */
    if (cfg->max_ratio < 0 && !cfg->min_ratio_str)
        cfg->min_ratio = -1;     /* the kernel's max (1) is below our min */
    if (cfg->min_ratio > 0 && cfg->max_ratio > 0 && cfg->min_ratio > cfg->max_ratio) {
        fprintf(stderr, "mmapfs: min_ratio=%d is above max_ratio=%d\n",
                cfg->min_ratio, cfg->max_ratio);
        return -1;
    }
    return 0;
}

/* Builds the libfuse argument vector: argv[0], the options mmapfs always
 * sets (before the user's, so that an explicit fsname= wins), then the
 * options left over from parsing. */
static int build_fuse_args(const struct mmapfs_config *cfg, struct fuse_args *rest,
                           struct fuse_args *out)
{
    char *escaped = NULL, *fixed = NULL;
    int i, err = 0;

    if (fuse_opt_add_opt_escaped(&escaped, cfg->target) ||
        asprintf(&fixed, "subtype=mmapfs,default_permissions,fsname=%s",
                 escaped) < 0) {
        free(escaped);
        return -ENOMEM;
    }
    free(escaped);
    if (fuse_opt_add_arg(out, rest->argv[0]) ||
        fuse_opt_add_arg(out, "-o") ||
        fuse_opt_add_arg(out, fixed))
        err = -ENOMEM;
    free(fixed);
    if (err)
        return err;
    for (i = 1; i < rest->argc; i++)
        if (fuse_opt_add_arg(out, rest->argv[i]))
            return -ENOMEM;
    return 0;
}

/* True for the "/dev/fd/N" mount point form of mount.fuse3 -o
 * drop_privileges (a /dev/fuse descriptor mounted by mount.fuse3). */
static int is_dev_fd_path(const char *path)
{
    return strncmp(path, "/dev/fd/", 8) == 0 && path[8] >= '0' && path[8] <= '9';
}

static int mount_point_one(const struct mfs_mount *m, void *path)
{
    return strcmp(m->fstype, "autofs") != 0 && strcmp(m->point, path) == 0;
}

/* 1 if path (resolved) is the mount point of a mount already. An autofs
 * trigger does not count: systemd's automount (x-systemd.automount in
 * fstab) mounts us over its autofs mount point. */
static int is_mount_point(const char *path)
{
    return mfs_mountinfo_each(mount_point_one, (void *)path) > 0;
}

/* TARGET as the mount will open it: read-write unless ro. Prints what is
 * wrong; 0 or -TOOL_EXIT_*. */
static int check_target(struct mmapfs_config *cfg)
{
    const char *t = cfg->target_arg;
    struct stat st;

    if (stat(t, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            fprintf(stderr, "mmapfs: %s: no such file or device: give the image file "
                    "or block device made by mkfs.mmapfs\n", t);
        else
            fprintf(stderr, "mmapfs: %s: %s\n", t, strerror(errno));
        return -TOOL_EXIT_TARGET_ACCESS;
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        fprintf(stderr, "mmapfs: %s: %s: give the image file or block device made by "
                "mkfs.mmapfs\n", t, S_ISDIR(st.st_mode) ? "is a directory"
                                                       : "not a regular file or block device");
        return -TOOL_EXIT_TARGET_KIND;
    }
    if (S_ISREG(st.st_mode) && st.st_size < FS_BLOCK_SIZE) {
        fprintf(stderr, "mmapfs: %s: %lld bytes: too small to be an mmapfs filesystem "
                "(make one with mkfs.mmapfs)\n", t, (long long)st.st_size);
        return -TOOL_EXIT_TARGET_KIND;
    }
    int fd = open(t, (cfg->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    int ro_device = 0;
    if (fd >= 0 && !cfg->read_only && S_ISBLK(st.st_mode) &&
        ioctl(fd, BLKROGET, &ro_device) == 0 && ro_device)
        errno = EROFS;      /* a read-only device may still open read-write */
    if (fd < 0 || ro_device) {
        int e = errno;
        if (cfg->read_only)
            fprintf(stderr, "mmapfs: %s: cannot read it: %s\n", t, strerror(e));
        else if (e == EROFS || e == EACCES || e == EPERM || e == ETXTBSY)
            fprintf(stderr, "mmapfs: %s: cannot open it for writing (%s): mount it "
                    "read-only with -o ro\n", t, strerror(e));
        else
            fprintf(stderr, "mmapfs: %s: cannot open: %s\n", t, strerror(e));
        if (fd >= 0)
            close(fd);
        return -TOOL_EXIT_TARGET_ACCESS;
    }
    int mounted = fs_image_mounted(fd);
    close(fd);
    if (mounted) {
        fprintf(stderr, "mmapfs: %s is already mounted: unmount it first "
                "(fusermount3 -u MOUNTPOINT)\n", t);
        return -TOOL_EXIT_IN_USE;
    }
    cfg->target = realpath(t, NULL);
    if (!cfg->target) {
        fprintf(stderr, "mmapfs: %s: %s\n", t, strerror(errno));
        return -TOOL_EXIT_TARGET_ACCESS;
    }
    return 0;
}

/* MOUNTPOINT: an existing directory that is not a mount point yet. Prints
 * what is wrong; 0 or -TOOL_EXIT_MOUNT_POINT. */
static int check_mount_point(struct mmapfs_config *cfg)
{
    const char *m = cfg->mountpoint_arg;
    struct stat st;

    if (is_dev_fd_path(m)) {
        /* the kernel mount was made by someone else with options mmapfs
         * cannot check; without default_permissions nobody would check
         * permissions at all */
        fprintf(stderr, "mmapfs: mount point %s: an already mounted /dev/fuse "
                "descriptor (mount.fuse3 -o drop_privileges) is not supported; "
                "umount the mount point it made\n", m);
        return -TOOL_EXIT_MOUNT_POINT;
    }
    if (stat(m, &st) != 0) {
        if (errno == ENOENT)
            fprintf(stderr, "mmapfs: mount point %s does not exist: create it "
                    "(mkdir) first\n", m);
        else
            fprintf(stderr, "mmapfs: mount point %s: %s\n", m, strerror(errno));
        return -TOOL_EXIT_MOUNT_POINT;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "mmapfs: mount point %s is not a directory: give an empty "
                "directory\n", m);
        return -TOOL_EXIT_MOUNT_POINT;
    }
    cfg->mountpoint = realpath(m, NULL);
    if (!cfg->mountpoint) {
        fprintf(stderr, "mmapfs: mount point %s: %s\n", m, strerror(errno));
        return -TOOL_EXIT_MOUNT_POINT;
    }
    if (is_mount_point(cfg->mountpoint)) {
        fprintf(stderr, "mmapfs: mount point %s is already mounted: unmount it "
                "first (fusermount3 -u %s) or choose another directory\n", m, m);
        return -TOOL_EXIT_MOUNT_POINT;
    }
    return 0;
}

/* metrics=PATH: its directory must exist and be writable, PATH must not be
 * a directory. Stores the absolute path (the daemon changes directory).
 * Prints what is wrong; 0 or -TOOL_EXIT_USAGE. */
static int check_metrics_path(struct mmapfs_config *cfg)
{
    const char *p = cfg->metrics_arg;
    struct stat st;

    if (!p)
        return 0;
    const char *slash = strrchr(p, '/');
    const char *base = slash ? slash + 1 : p;
    char *dir = slash ? strndup(p, (size_t)(slash - p) + (slash == p)) : strdup(".");
    char *real = dir ? realpath(dir, NULL) : NULL;
    int err = 0;

    if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
        fprintf(stderr, "mmapfs: metrics=%s: give a file name, not a directory\n", p);
        err = -TOOL_EXIT_USAGE;
    } else if (!real || stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "mmapfs: metrics=%s: directory %s does not exist: create it "
                "first (node_exporter's textfile collector directory)\n", p,
                dir ? dir : "?");
        err = -TOOL_EXIT_USAGE;
    } else if (access(real, W_OK | X_OK) != 0) {
        fprintf(stderr, "mmapfs: metrics=%s: cannot write in %s: %s\n", p, real,
                strerror(errno));
        err = -TOOL_EXIT_USAGE;
    } else if (asprintf(&cfg->metrics_path, "%s%s%s", real,
                        strcmp(real, "/") ? "/" : "", base) < 0) {
        cfg->metrics_path = NULL;
        fprintf(stderr, "mmapfs: out of memory\n");
        err = -TOOL_EXIT_FAILURE;
    } else if (stat(cfg->metrics_path, &st) == 0 && S_ISDIR(st.st_mode)) {
        fprintf(stderr, "mmapfs: metrics=%s is a directory: give a file name\n", p);
        err = -TOOL_EXIT_USAGE;
    }
    free(dir);
    free(real);
    return err;
}

int mmapfs_parse_args(int argc, char **argv, struct mmapfs_config *cfg,
                      struct fuse_args *fuse_args)
{
    struct fuse_args rest = FUSE_ARGS_INIT(argc, argv);
    const char *prog = argc > 0 ? argv[0] : "mmapfs";
    int ret;

    memset(cfg, 0, sizeof(*cfg));
    if (fuse_opt_parse(&rest, cfg, mmapfs_opts, opt_proc) != 0) {
        if (!cfg->bad)
            fprintf(stderr, "mmapfs: invalid options (see mmapfs --help)\n");
        ret = -TOOL_EXIT_USAGE;
        goto out;
    }
    if (cfg->show_help) {
        mmapfs_print_help(prog);
        ret = 1;
        goto out;
    }
    if (cfg->show_version) {
        printf("mmapfs %s (on-disk format %u, libfuse %s)\n",
               MMAPFS_VERSION_STRING, MMAPFS_FORMAT_VERSION, fuse_pkgversion());
        ret = 1;
        goto out;
    }
    if (!cfg->target_arg || !cfg->mountpoint_arg) {
        fprintf(stderr, "mmapfs: %s: usage: %s TARGET MOUNTPOINT [-f] [-d] [-s] "
                "[-o OPTIONS] (%s --help for the options)\n",
                cfg->target_arg ? "no MOUNTPOINT given" : "no TARGET given", prog, prog);
        ret = -TOOL_EXIT_USAGE;
        goto out;
    }
    if (validate(cfg)) {
        ret = -TOOL_EXIT_USAGE;
        goto out;
    }
    ret = check_metrics_path(cfg);
    if (!ret)
        ret = check_target(cfg);
    if (!ret)
        ret = check_mount_point(cfg);
    if (ret)
        goto out;
    if (build_fuse_args(cfg, &rest, fuse_args)) {
        fprintf(stderr, "mmapfs: out of memory\n");
        ret = -TOOL_EXIT_FAILURE;
        goto out;
    }
    ret = 0;
out:
    fuse_opt_free_args(&rest);
    return ret;
}

void mmapfs_config_free(struct mmapfs_config *cfg)
{
    free(cfg->target);
    free(cfg->mountpoint);
    free(cfg->sync_delay_str);
    free(cfg->io_str);
    free(cfg->commit_str);
    free(cfg->entry_timeout_str);
    free(cfg->attr_timeout_str);
    free(cfg->max_threads_str);
    free(cfg->idle_threads_str);
    free(cfg->spin_str);
    free(cfg->latency_hold_str);
    free(cfg->readdirplus_str);
    free(cfg->max_ratio_str);
    free(cfg->min_ratio_str);
    free(cfg->read_ahead_str);
    free(cfg->metrics_arg);
    free(cfg->metrics_interval_str);
    free(cfg->metrics_path);
    memset(cfg, 0, sizeof(*cfg));
}
