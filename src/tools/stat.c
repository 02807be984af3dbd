/*
 * mmapfs-stat — prints the counters of a running mmapfs mount.
 *
 *   mmapfs-stat [--prometheus | --json] MOUNTPOINT
 *   mmapfs-stat -w SECONDS [-c COUNT] [--json] MOUNTPOINT
 *
 * The daemon answers the virtual xattr "trusted.mmapfs.metrics" on the
 * mount's root directory with "name value" lines (engine, journal and fs
 * counters from fs_format_metrics, then the FUSE request counts). This tool
 * checks that MOUNTPOINT is an mmapfs mount (/proc/self/mountinfo), reads
 * the xattr and prints it:
 *   - as text, the lines unchanged;
 *   - with --prometheus in the Prometheus text exposition format: names
 *     prefixed "mmapfs_", units in the names (microsecond counters as
 *     *_seconds), counters ending in _total, the FUSE request counts as one
 *     family with a label, # HELP and # TYPE lines, a label mountpoint="...";
 *   - with --json as one JSON object, numbers as numbers;
 *   - with -w SECONDS, like vmstat: a line of per-second rates every
 *     SECONDS (fsyncs, commits, device syncs, syncs per fsync, bytes read
 *     and written, free space), COUNT lines or until interrupted; with
 *     --json one object per line.
 *
 * Reading trusted.* xattrs needs CAP_SYS_ADMIN (root).
 *
 * Exit status: 0 ok, 1 error, 2 usage.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "fs/format.h"
#include "fuse/version_i.h"
#include "util/metrics_text.h"
#include "util/mountinfo.h"

#define METRICS_MAX 65536          /* XATTR_SIZE_MAX */

/* ---- reading the counters ------------------------------------------------------------------ */

/* Reads the metrics text of the mmapfs mount mnt into buf (METRICS_MAX + 1
 * bytes), NUL-terminated. 0, or -1 after printing why (shown: the path as
 * the user gave it). */
static int read_metrics(const char *mnt, const char *shown, char *buf)
{
    ssize_t len = getxattr(mnt, MMAPFS_METRICS_XATTR, buf, METRICS_MAX);

    if (len < 0) {
        if ((errno == ENODATA || errno == EPERM || errno == EACCES) && geteuid() != 0)
            fprintf(stderr, "mmapfs-stat: %s: reading %s needs root (CAP_SYS_ADMIN)\n",
                    shown, MMAPFS_METRICS_XATTR);
        else
            fprintf(stderr, "mmapfs-stat: %s: cannot read metrics: %s\n", shown,
                    strerror(errno));
        return -1;
    }
    buf[len] = '\0';
    return 0;
}

/* ---- text and Prometheus output ---------------------------------------------------------------- */

/* Prints the metrics as "name value" lines. Returns the number printed. */
static int print_text(const char *text)
{
    const char *pos = text;
    struct metric m;
    int count = 0;

    while (mfs_metrics_next(&pos, &m)) {
        printf("%s %s\n", m.name, m.value);
        count++;
    }
    return count;
}

/* ---- JSON output ------------------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s, 0 if it is not one. */
static size_t utf8_len(const unsigned char *s)
{
    size_t n, i;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4;
    else
        return 0;
    for (i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

/* Prints s as a JSON string: quotes, backslashes and control characters
 * escaped, bytes that are not UTF-8 as U+FFFD. */
static void print_json_string(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    putchar('"');
    while (*p) {
        size_t n = utf8_len(p);

        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else if (n == 0)
            fputs("\\ufffd", stdout);
        else
            fwrite(p, 1, n, stdout);
        p += n ? n : 1;
    }
    putchar('"');
}

/* True if s is a number in JSON's grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int is_json_number(const char *s)
{
    if (*s == '-')
        s++;
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        while (isdigit((unsigned char)*s))
            s++;
    else
        return 0;
    if (*s == '.') {
        if (!isdigit((unsigned char)*++s))
            return 0;
        while (isdigit((unsigned char)*s))
            s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!isdigit((unsigned char)*s))
            return 0;
        while (isdigit((unsigned char)*s))
            s++;
    }
    return *s == '\0';
}

/* Prints a metric value as a JSON number (null if it has none). */
static void print_json_value(const char *value)
{
    double d;

    if (is_json_number(value)) {
        fputs(value, stdout);
        return;
    }
    d = strtod(value, NULL);
    if (isfinite(d))
        printf("%.17g", d);
    else
        fputs("null", stdout);
}

/* Prints the metrics as one JSON object
 * {"mountpoint": MNT, "metrics": {NAME: NUMBER, ...}}. Returns the number
 * of metrics printed. */
static int print_json(const char *text, const char *mnt)
{
    const char *pos = text;
    struct metric m;
    int count = 0;

    fputs("{\n  \"mountpoint\": ", stdout);
    print_json_string(mnt);
    fputs(",\n  \"metrics\": {", stdout);
    while (mfs_metrics_next(&pos, &m)) {
        fputs(count ? ",\n    " : "\n    ", stdout);
        print_json_string(m.name);
        fputs(": ", stdout);
        print_json_value(m.value);
        count++;
    }
    fputs(count ? "\n  }\n}\n" : "}\n}\n", stdout);
    return count;
}

/* ---- -w: rates, like vmstat ----------------------------------------------------------------- */

/* The counters a watch line is made of. */
enum { W_FSYNCS, W_COMMITS, W_SYNCS, W_READ_BYTES, W_WRITE_BYTES, W_FREE_BLOCKS, W_COUNT };
static const char *const watch_names[W_COUNT] = {
    "fs_fsyncs", "jnl_commits", "mmio_syncs", "fs_read_bytes", "fs_write_bytes", "fs_blocks_free",
};

/* One reading of those counters; have[i] is 0 if the mount did not report it. */
struct sample {
    double seconds;          /* CLOCK_MONOTONIC when read */
    double value[W_COUNT];
    int have[W_COUNT];
};

/* One watch line: rates per second between two samples; < 0 if unknown. */
struct rates {
    double interval;         /* seconds between the samples */
    double fsyncs, commits, syncs, read_bytes, write_bytes;
    double syncs_per_fsync;  /* device syncs per fsync; < 0 without fsyncs */
    double free_bytes;
};

static double monotonic_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void take_sample(const char *text, struct sample *s)
{
    const char *pos = text;
    struct metric m;
    int i;

    memset(s, 0, sizeof(*s));
    s->seconds = monotonic_seconds();
    while (mfs_metrics_next(&pos, &m))
        for (i = 0; i < W_COUNT; i++)
            if (strcmp(m.name, watch_names[i]) == 0) {
                s->value[i] = strtod(m.value, NULL);
                s->have[i] = 1;
            }
}

/* Per-second rate of counter i between a and b, -1 if unknown. */
static double rate(const struct sample *a, const struct sample *b, int i, double dt)
{
    if (!a->have[i] || !b->have[i] || dt <= 0 || b->value[i] < a->value[i])
        return -1;
    return (b->value[i] - a->value[i]) / dt;
}

static void compute_rates(const struct sample *a, const struct sample *b, struct rates *r)
{
    double dt = b->seconds - a->seconds;

    r->interval = dt;
    r->fsyncs = rate(a, b, W_FSYNCS, dt);
    r->commits = rate(a, b, W_COMMITS, dt);
    r->syncs = rate(a, b, W_SYNCS, dt);
    r->read_bytes = rate(a, b, W_READ_BYTES, dt);
    r->write_bytes = rate(a, b, W_WRITE_BYTES, dt);
    r->syncs_per_fsync = r->fsyncs > 0 && r->syncs >= 0 ? r->syncs / r->fsyncs : -1;
    r->free_bytes = b->have[W_FREE_BLOCKS] ? b->value[W_FREE_BLOCKS] * MMAPFS_BLOCK_SIZE : -1;
}

static const char watch_header[] =
    " fsync/s commit/s   sync/s sync/fsync  read KiB/s write KiB/s   free MiB\n";

/* Prints v with printf format fmt (one %f conversion) in width columns,
 * or "-" when v < 0 (unknown). */
static void print_column(const char *fmt, int width, double v)
{
    if (v < 0)
        printf("%*s", width, "-");
    else
        printf(fmt, width, v);
}

static void print_rates_text(const struct rates *r)
{
    print_column("%*.0f", 8, r->fsyncs);
    print_column(" %*.0f", 9, r->commits);
    print_column(" %*.0f", 8, r->syncs);
    print_column(" %*.2f", 10, r->syncs_per_fsync);
    print_column(" %*.0f", 11, r->read_bytes < 0 ? -1 : r->read_bytes / 1024);
    print_column(" %*.0f", 11, r->write_bytes < 0 ? -1 : r->write_bytes / 1024);
    print_column(" %*.0f", 10, r->free_bytes < 0 ? -1 : r->free_bytes / (1024 * 1024));
    putchar('\n');
}

/* Prints "name": v (null when v < 0), with a leading comma unless first. */
static void print_json_rate(const char *name, double v, const char *fmt)
{
    printf(", \"%s\": ", name);
    if (v < 0)
        fputs("null", stdout);
    else
        printf(fmt, v);
}

static void print_rates_json(const struct rates *r, const char *mnt)
{
    fputs("{\"mountpoint\": ", stdout);
    print_json_string(mnt);
    print_json_rate("interval_seconds", r->interval, "%.3f");
    print_json_rate("fsyncs_per_second", r->fsyncs, "%.3f");
    print_json_rate("commits_per_second", r->commits, "%.3f");
    print_json_rate("device_syncs_per_second", r->syncs, "%.3f");
    print_json_rate("syncs_per_fsync", r->syncs_per_fsync, "%.3f");
    print_json_rate("read_bytes_per_second", r->read_bytes, "%.0f");
    print_json_rate("write_bytes_per_second", r->write_bytes, "%.0f");
    print_json_rate("free_bytes", r->free_bytes, "%.0f");
    fputs("}\n", stdout);
}

/* Sleeps until *deadline (CLOCK_MONOTONIC), then moves it on by interval. */
static void sleep_until(struct timespec *deadline, double interval)
{
    long long ns = deadline->tv_nsec + (long long)(interval * 1e9);

    deadline->tv_sec += (time_t)(ns / 1000000000LL);
    deadline->tv_nsec = (long)(ns % 1000000000LL);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, deadline, NULL) == EINTR)
        ;
}

/* -w: prints a line of rates every interval seconds, count lines (0: until
 * interrupted or the mount goes away). 0 on success, 1 on an error. */
static int watch(const char *mnt, const char *shown, char *buf, double interval,
                 long count, int json)
{
    struct sample prev, cur;
    struct timespec deadline;
    struct rates r;
    long lines;

    if (read_metrics(mnt, shown, buf))
        return 1;
    take_sample(buf, &prev);
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    if (!json)
        fputs(watch_header, stdout);
    for (lines = 0; count == 0 || lines < count; lines++) {
        if (fflush(stdout) != 0)
            return 1;
        sleep_until(&deadline, interval);
        if (read_metrics(mnt, shown, buf))
            return 1;
        take_sample(buf, &cur);
        compute_rates(&prev, &cur, &r);
        if (json)
            print_rates_json(&r, mnt);
        else
            print_rates_text(&r);
        prev = cur;
    }
    return 0;
}

/* ---- main -------------------------------------------------------------------------------- */

static void usage(FILE *to, const char *prog)
{
    fprintf(to,
            "usage: %s [--prometheus | --json] MOUNTPOINT\n"
            "       %s -w SECONDS [-c COUNT] [--json] MOUNTPOINT\n"
            "Prints the counters of the mmapfs mount on MOUNTPOINT (I/O engine,\n"
            "journal, filesystem, FUSE requests) as \"name value\" lines.\n"
            "Needs root: the counters are read from the xattr %s.\n"
            "  -p, --prometheus     Prometheus text format (names mmapfs_*, units in\n"
            "                       the names, # HELP and # TYPE, label mountpoint)\n"
            "  -j, --json           one JSON object {\"mountpoint\", \"metrics\": {...}}\n"
            "  -w, --watch SECONDS  every SECONDS, a line of per-second rates: fsyncs,\n"
            "                       journal commits, device syncs, syncs per fsync,\n"
            "                       KiB read and written, free MiB (like vmstat);\n"
            "                       with --json one object per line\n"
            "  -c, --count N        with -w: stop after N lines (default: never)\n"
            "  -h, --help           this help\n"
            "  -V, --version        version\n",
            prog, prog, MMAPFS_METRICS_XATTR);
}

/* Resolves the MOUNTPOINT argument and checks that an mmapfs is mounted
 * there; *mnt is the canonical path (to free). 0, or 1 after printing why. */
static int open_mount(const char *arg, char **mnt)
{
    struct mfs_mount_top top;
    int err;

    *mnt = realpath(arg, NULL);
    if (!*mnt) {
        fprintf(stderr, "mmapfs-stat: %s: %s\n", arg, strerror(errno));
        return 1;
    }
    err = mfs_mountinfo_top(*mnt, &top);
    if (err == -ENOENT) {
        fprintf(stderr, "mmapfs-stat: %s is not a mount point (not an mmapfs mount)\n", arg);
        return 1;
    }
    if (err) {
        fprintf(stderr, "mmapfs-stat: /proc/self/mountinfo: %s\n", strerror(-err));
        return 1;
    }
    if (strcmp(top.fstype, "fuse.mmapfs") != 0) {
        fprintf(stderr, "mmapfs-stat: %s is not an mmapfs mount (type %s)\n", arg, top.fstype);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "prometheus", no_argument, NULL, 'p' },
        { "json", no_argument, NULL, 'j' },
        { "watch", required_argument, NULL, 'w' },
        { "count", required_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    char *mnt = NULL, *buf = NULL, *end;
    int prometheus = 0, json = 0, c, ret = 1, count_set = 0, printed;
    double interval = 0;
    long count = 0;

    while ((c = getopt_long(argc, argv, "pjw:c:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'p':
            prometheus = 1;
            break;
        case 'j':
            json = 1;
            break;
        case 'w':
            errno = 0;
            interval = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(interval >= 0.1 && interval <= 86400)) {
                fprintf(stderr, "mmapfs-stat: -w %s: seconds from 0.1 to 86400\n", optarg);
                return 2;
            }
            break;
        case 'c':
            errno = 0;
            count = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || count < 1) {
                fprintf(stderr, "mmapfs-stat: -c %s: a count of at least 1\n", optarg);
                return 2;
            }
            count_set = 1;
            break;
        case 'h':
            usage(stdout, argv[0]);
            return 0;
        case 'V':
            tool_print_version("mmapfs-stat");
            return 0;
        default:
            usage(stderr, argv[0]);
            return 2;
        }
    }
    if (optind != argc - 1 || (prometheus && json) || (interval > 0 && prometheus) ||
        (count_set && interval == 0)) {
        usage(stderr, argv[0]);
        return 2;
    }
    if (open_mount(argv[optind], &mnt))
        goto out;
    buf = malloc(METRICS_MAX + 1);
    if (!buf) {
        fprintf(stderr, "mmapfs-stat: out of memory\n");
        goto out;
    }
    if (interval > 0) {
        ret = watch(mnt, argv[optind], buf, interval, count, json);
        goto flush;
    }
    if (read_metrics(mnt, argv[optind], buf))
        goto out;
    printed = prometheus ? mfs_metrics_print_prometheus(stdout, buf, mnt) : json ? print_json(buf, mnt) : print_text(buf);
    if (printed == 0) {
        fprintf(stderr, "mmapfs-stat: %s: the mount reported no metrics\n", argv[optind]);
        goto out;
    }
    ret = 0;
flush:
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "mmapfs-stat: write error: %s\n", strerror(errno));
        ret = 1;
    }
out:
    free(buf);
    free(mnt);
    return ret;
}
