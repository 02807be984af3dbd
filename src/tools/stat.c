/*
 * mmapfs-stat — prints the counters of a running mmapfs mount.
 *
 *   mmapfs-stat [--prometheus] MOUNTPOINT
 *
 * The daemon answers the virtual xattr "trusted.mmapfs.metrics" on the
 * mount's root directory with "name value" lines (engine, journal and fs
 * counters from fs_format_metrics). This tool checks that MOUNTPOINT is an
 * mmapfs mount (/proc/self/mountinfo), reads the xattr and prints it as
 * text, or in the Prometheus text exposition format: names prefixed
 * "mmapfs_", # HELP and # TYPE lines, a label mountpoint="...".
 *
 * Reading trusted.* xattrs needs CAP_SYS_ADMIN (root).
 *
 * Exit status: 0 ok, 1 error, 2 usage.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fs/format.h"
#include "fuse/version_i.h"
#include "util/mountinfo.h"

#define METRICS_MAX 65536          /* XATTR_SIZE_MAX */

/* ---- is it an mmapfs mount? ---------------------------------------------------------- */

/* Finds the topmost mount on path 'mnt' and copies its type into fstype.
 * 0 if found, -ENOENT if mnt is not a mount point, other -errno. */
static int mount_type(const char *mnt, char *fstype, size_t size)
{
    char *line = NULL;
    size_t cap = 0;
    int found = -ENOENT;
    FILE *f;

    f = fopen("/proc/self/mountinfo", "r");
    if (!f)
        return -errno;
    while (getline(&line, &cap, f) > 0) {
        /* id parent maj:min root MOUNTPOINT opts [optional...] - TYPE src super */
        char *save = NULL, *tok, *point = NULL, *type = NULL;
        int field = 0, after_sep = 0;

        for (tok = strtok_r(line, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
            if (field == 4)
                point = tok;
            if (after_sep == 1) {
                type = tok;
                break;
            }
            if (after_sep)
                after_sep++;
            if (field > 5 && strcmp(tok, "-") == 0)
                after_sep = 1;
            field++;
        }
        if (!point || !type)
            continue;
        mountinfo_unescape(point);
        if (strcmp(point, mnt) == 0) {      /* later lines are mounted on top */
            snprintf(fstype, size, "%s", type);
            found = 0;
        }
    }
    free(line);
    fclose(f);
    return found;
}

/* ---- output ------------------------------------------------------------------------------ */

/* What a counter means, for # HELP; prefixes match the engine ("mmio_"),
 * journal ("jnl_") and fs names of fs_format_metrics. */
struct metric_doc {
    const char *name;      /* exact name or a prefix ending in '*' */
    const char *help;
    int gauge;             /* 1 = gauge, 0 = counter */
};

static const struct metric_doc metric_docs[] = {
    /* I/O engine (mmio_) */
    { "*sync_background_loops", "Iterations of the I/O engine's delayed-sync loop", 0 },
    { "*sync_company_waits",    "Delayed syncs held back to wait for other callers (adaptive batching)", 0 },
    { "*sync_company_wait_us",  "Time spent waiting for other callers before a sync, microseconds", 0 },
    { "*sync_company_joined",   "Delayed-sync requests that arrived during such a wait", 0 },
    { "*sync_delayed",          "Delayed (batched) sync requests to the I/O engine", 0 },
    { "*sync_longest_delay_us", "Longest wait of a delayed sync, microseconds", 1 },
    { "*sync_shortest_delay_us", "Shortest wait of a delayed sync, microseconds", 1 },
    { "*sync_us",               "Time spent in device syncs, microseconds", 0 },
    { "*fsync_commits",         "fsync calls that waited for a journal commit", 0 },
    { "*fsync_data_syncs",      "fsync calls that needed only a data sync", 0 },
    { "*fsyncs",                "fsync and fsyncdir calls", 0 },
    { "*commit_syncs",          "Device syncs issued by journal commits", 0 },
    { "*log_full_syncs",        "Extra syncs to catch the journal header up when the log was full", 0 },
    { "*syncs",                 "Device syncs (msync/fdatasync) by the I/O engine", 0 },
    /* journal (jnl_) */
    { "*shadow_blocks_now",     "Journal shadow buffers held now (4 KiB each)", 1 },
    { "*durable_seq",           "Sequence number of the last durable journal transaction", 1 },
    { "*commit_waits",          "Callers that waited for a journal commit", 0 },
    { "*commit_blocks",         "Metadata blocks carried by journal commits", 0 },
    { "*commit_us",             "Time from closing a transaction to its checkpoint, microseconds", 0 },
    { "*ordered_commits",       "Journal commits with new file data (data synced first)", 0 },
    { "*pipelined_commits",     "Journal transactions that rode the previous ordered commit's sync", 0 },
    { "*header_writes",         "Lazy journal header writes", 0 },
    { "*data_images",           "File data blocks copied into the journal log (small writes, re-logged overwrites)", 0 },
    { "*head_past_syncs",       "Syncs spent moving the journal header past an older data image", 0 },
    { "*commits",               "Journal transactions made durable", 0 },
    { "*checkpoint_blocks",     "Journal block images written to their home location", 0 },
    { "*wraps",                 "Journal log wrap-arounds", 0 },
    /* filesystem (fs_) */
    { "*blocks_pending_free",   "Blocks freed but not yet reusable (transaction not durable, or zero-copy replies in flight)", 1 },
    { "*blocks_total",          "Blocks available to data and metadata", 1 },
    { "*blocks_free",           "Free blocks", 1 },
    { "*inodes_total",          "Inodes in the inode table", 1 },
    { "*inodes_free",           "Free inodes", 1 },
    { "*inodes_cached",         "Inodes in the in-memory inode cache", 1 },
    { "*blocks_allocated",      "Blocks allocated", 0 },
    { "*blocks_freed",          "Blocks freed", 0 },
    { "*inodes_allocated",      "Inodes allocated", 0 },
    { "*inodes_freed",          "Inodes freed", 0 },
    { "*orphans_released",      "Unlinked-but-open inodes reclaimed", 0 },
    { "*enospc_retries",        "Allocations retried after committing freed blocks", 0 },
    { "*node_checksums",        "Tree node checksums verified (once per node per mount)", 0 },
    { "*corrupt",               "1 once corruption was detected (fsck needed)", 1 },
    { "*read_only",             "1 if mounted read-only", 1 },
    /* generic */
    { "*_now",                  "Current value", 1 },
    { "*longest*",              "Longest observed value", 1 },
    { "*shortest*",             "Shortest observed value", 1 },
    { "*write_bytes",           "Bytes written", 0 },
    { "*read_bytes",            "Bytes read", 0 },
    { "*write_us",              "Time spent writing, microseconds", 0 },
    { "*read_us",               "Time spent reading, microseconds", 0 },
    { "*writes",                "Write operations", 0 },
    { "*reads",                 "Read operations", 0 },
    { NULL, NULL, 0 },
};

/* Glob-lite: pattern may start and/or end with '*'. */
static int doc_matches(const char *pat, const char *name)
{
    size_t pl = strlen(pat), nl = strlen(name);
    int lead = pat[0] == '*', trail = pl > 1 && pat[pl - 1] == '*';
    const char *core = pat + lead;
    size_t cl = pl - (size_t)lead - (size_t)trail;
    char buf[128];

    if (cl >= sizeof(buf))
        return 0;
    memcpy(buf, core, cl);
    buf[cl] = '\0';
    if (lead && trail)
        return strstr(name, buf) != NULL;
    if (lead)
        return nl >= cl && strcmp(name + nl - cl, buf) == 0;
    if (trail)
        return strncmp(name, buf, cl) == 0;
    return strcmp(name, buf) == 0;
}

static const struct metric_doc *find_doc(const char *name)
{
    const struct metric_doc *d;

    for (d = metric_docs; d->name; d++)
        if (doc_matches(d->name, name))
            return d;
    return NULL;
}

/* Prometheus metric name: mmapfs_ + name with invalid characters as '_'. */
static void prom_name(const char *name, char *out, size_t size)
{
    size_t n = (size_t)snprintf(out, size, "mmapfs_%s", name);
    size_t i;

    if (n >= size)
        n = size - 1;
    for (i = 7; i < n; i++)
        if (!isalnum((unsigned char)out[i]) && out[i] != '_' && out[i] != ':')
            out[i] = '_';
}

/* Prints a label value with \\, \" and \n escaped. */
static void print_label_value(const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            printf("\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", stdout);
        else
            putchar(*s);
    }
}

/* True if s is a number (integer or decimal). */
static int is_number(const char *s)
{
    char *end;

    if (!*s)
        return 0;
    errno = 0;
    (void)strtod(s, &end);
    return errno == 0 && *end == '\0';
}

/* Prints the metrics text in the chosen format. Returns the number of
 * metrics printed. */
static int print_metrics(char *text, int prometheus, const char *mnt)
{
    char *save = NULL, *line;
    int count = 0;

    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[128], value[64], pname[160];
        const struct metric_doc *doc;

        if (sscanf(line, "%127s %63s", name, value) != 2 || !is_number(value))
            continue;
        count++;
        if (!prometheus) {
            printf("%s %s\n", name, value);
            continue;
        }
        prom_name(name, pname, sizeof(pname));
        doc = find_doc(name);
        printf("# HELP %s %s (%s).\n", pname, doc ? doc->help : "mmapfs counter", name);
        printf("# TYPE %s %s\n", pname, doc && doc->gauge ? "gauge" : "counter");
        printf("%s{mountpoint=\"", pname);
        print_label_value(mnt);
        printf("\"} %s\n", value);
    }
    return count;
}

/* ---- main -------------------------------------------------------------------------------- */

static void usage(FILE *to, const char *prog)
{
    fprintf(to,
            "usage: %s [--prometheus] MOUNTPOINT\n"
            "Prints the counters of the mmapfs mount on MOUNTPOINT (I/O engine,\n"
            "journal, filesystem) as \"name value\" lines, or with --prometheus in\n"
            "the Prometheus text format (names prefixed mmapfs_, label mountpoint).\n"
            "Needs root: the counters are read from the xattr %s.\n"
            "  -p, --prometheus   Prometheus exposition format\n"
            "  -h, --help         this help\n"
            "  -V, --version      version\n",
            prog, MMAPFS_METRICS_XATTR);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "prometheus", no_argument, NULL, 'p' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    char fstype[64], *mnt = NULL, *buf = NULL;
    int prometheus = 0, c, ret = 1, err;
    ssize_t len;

    while ((c = getopt_long(argc, argv, "phV", longopts, NULL)) != -1) {
        switch (c) {
        case 'p':
            prometheus = 1;
            break;
        case 'h':
            usage(stdout, argv[0]);
            return 0;
        case 'V':
            printf("mmapfs-stat %s (on-disk format %u)\n",
                   MMAPFS_VERSION_STRING, MMAPFS_FORMAT_VERSION);
            return 0;
        default:
            usage(stderr, argv[0]);
            return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr, argv[0]);
        return 2;
    }
    mnt = realpath(argv[optind], NULL);
    if (!mnt) {
        fprintf(stderr, "mmapfs-stat: %s: %s\n", argv[optind], strerror(errno));
        goto out;
    }
    err = mount_type(mnt, fstype, sizeof(fstype));
    if (err == -ENOENT) {
        fprintf(stderr, "mmapfs-stat: %s is not a mount point (not an mmapfs mount)\n",
                argv[optind]);
        goto out;
    }
    if (err) {
        fprintf(stderr, "mmapfs-stat: /proc/self/mountinfo: %s\n", strerror(-err));
        goto out;
    }
    if (strcmp(fstype, "fuse.mmapfs") != 0) {
        fprintf(stderr, "mmapfs-stat: %s is not an mmapfs mount (type %s)\n",
                argv[optind], fstype);
        goto out;
    }
    buf = malloc(METRICS_MAX + 1);
    if (!buf) {
        fprintf(stderr, "mmapfs-stat: out of memory\n");
        goto out;
    }
    len = getxattr(mnt, MMAPFS_METRICS_XATTR, buf, METRICS_MAX);
    if (len < 0) {
        if ((errno == ENODATA || errno == EPERM || errno == EACCES) && geteuid() != 0)
            fprintf(stderr, "mmapfs-stat: %s: reading %s needs root (CAP_SYS_ADMIN)\n",
                    argv[optind], MMAPFS_METRICS_XATTR);
        else
            fprintf(stderr, "mmapfs-stat: %s: cannot read metrics: %s\n",
                    argv[optind], strerror(errno));
        goto out;
    }
    buf[len] = '\0';
    if (print_metrics(buf, prometheus, mnt) == 0) {
        fprintf(stderr, "mmapfs-stat: %s: the mount reported no metrics\n", argv[optind]);
        goto out;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "mmapfs-stat: write error: %s\n", strerror(errno));
        goto out;
    }
    ret = 0;
out:
    free(buf);
    free(mnt);
    return ret;
}
