/*
 * metrics_text.c — the "name value" metrics text of a mount (what
 * fs_format_metrics and the FUSE request counters produce) and its
 * Prometheus exposition: shared by mmapfs-stat --prometheus and the
 * daemon's metrics=PATH file, so that both print the same bytes.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/metrics_text.h"

/* ---- what each counter means ------------------------------------------------------- */

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
    { "*sync_company_wait_us",  "Time spent waiting for other callers before a sync", 0 },
    { "*sync_company_joined",   "Delayed-sync requests that arrived during such a wait", 0 },
    { "*sync_delayed",          "Delayed (batched) sync requests to the I/O engine", 0 },
    { "*sync_longest_delay_us", "Sum over delayed-sync batches of the wait of each batch's earliest request", 0 },
    { "*sync_shortest_delay_us", "Sum over delayed-sync batches of the wait of each batch's latest request", 0 },
    { "*sync_us",               "Time spent in device syncs", 0 },
    { "*fsync_commits",         "fsync calls that waited for a journal commit", 0 },
    { "*fsync_data_syncs",      "fsync calls that needed only a data sync", 0 },
    { "*fsyncs",                "fsync and fsyncdir calls", 0 },
    { "*commit_syncs",          "Device syncs issued by journal commits", 0 },
    { "*log_full_syncs",        "Extra syncs to catch the journal header up when the log was full", 0 },
    { "*syncs",                 "Device syncs (msync/fdatasync) by the I/O engine", 0 },
    { "*discards",              "Freed ranges given back to the storage (hole punch / BLKDISCARD)", 0 },
    { "*discard_bytes",         "Bytes given back to the storage by discards", 0 },
    { "*discard_us",            "Time spent in discards", 0 },
    /* journal (jnl_) */
    { "*shadow_blocks_now",     "Journal shadow buffers held now (4 KiB each)", 1 },
    { "*durable_seq",           "Sequence number of the last durable journal transaction", 1 },
    { "*commit_waits",          "Callers that waited for a journal commit", 0 },
    { "*commit_blocks",         "Metadata blocks carried by journal commits", 0 },
    { "*commit_us",             "Time from closing a transaction to its checkpoint", 0 },
    { "*ordered_commits",       "Journal commits with new file data (data synced first)", 0 },
    { "*pipelined_commits",     "Journal transactions that rode the previous ordered commit's sync", 0 },
    { "*header_writes",         "Lazy journal header writes", 0 },
    { "*data_images",           "File data blocks copied into the journal log (small writes, re-logged overwrites)", 0 },
    { "*head_past_syncs",       "Syncs spent moving the journal header past an older data image", 0 },
    { "*batched_commits",       "Journal commits held back briefly for more fsync callers to join", 0 },
    { "*commits",               "Journal transactions made durable", 0 },
    { "*checkpoint_blocks",     "Journal block images written to their home location", 0 },
    { "*wraps",                 "Journal log wrap-arounds", 0 },
    /* filesystem (fs_) */
    { "*blocks_pending_free",   "Blocks freed but not yet reusable (transaction not durable, or zero-copy replies in flight)", 1 },
    { "*blocks_total",          "Blocks (4 KiB) available to data and metadata", 1 },
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
    /* FUSE front end (fuse_) */
    { "*dirty_cap_bytes",       "The mount's cap on written data the kernel holds back, lowered near the full point", 1 },
    { "*cpu_latency_holds",     "Times the request loop asked idle CPUs to poll instead of halting (latency_hold=)", 0 },
    { "*cpu_latency_held_us",   "Time idle CPUs were asked to poll instead of halting", 0 },
    /* generic */
    { "*_now",                  "Current value", 1 },
    { "*longest*",              "Longest observed value", 1 },
    { "*shortest*",             "Shortest observed value", 1 },
    { "*write_bytes",           "Bytes written", 0 },
    { "*read_bytes",            "Bytes read", 0 },
    { "*write_us",              "Time spent writing", 0 },
    { "*read_us",               "Time spent reading", 0 },
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


/* ---- parsing ------------------------------------------------------------------------- */

int mfs_metrics_next(const char **pos, struct metric *m)
{
    while (**pos) {
        const char *line = *pos, *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        char buf[256];

        *pos = line + len + (nl ? 1 : 0);
        if (len >= sizeof(buf))
            continue;
        memcpy(buf, line, len);
        buf[len] = '\0';
        if (sscanf(buf, "%127s %63s", m->name, m->value) == 2 && is_number(m->value))
            return 1;
    }
    return 0;
}

/* ---- Prometheus -------------------------------------------------------------------------- */


/* Prints a label value with \\, \" and \n escaped. */
static void print_label_value(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fprintf(out, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", out);
        else
            fputc(*s, out);
    }
}

/* How one counter is exposed to Prometheus. */
struct prom_metric {
    char name[192];          /* mmapfs_<name>, unit suffix, _total for counters */
    const char *label;       /* value of the "op" label, or NULL */
    const char *help;
    double scale;            /* 1e-6 for microseconds shown as seconds, else 1 */
    int gauge;
};

#define FUSE_REQ_PREFIX "fuse_req_"

/* Appends suffix to pm->name unless it already ends with it. */
static void prom_suffix(struct prom_metric *pm, const char *suffix)
{
    size_t n = strlen(pm->name), sl = strlen(suffix);

    if ((n < sl || strcmp(pm->name + n - sl, suffix) != 0) && n + sl < sizeof(pm->name))
        memcpy(pm->name + n, suffix, sl + 1);
}

/* Prometheus naming (base units in the name, counters end in _total):
 * "x_us" becomes "mmapfs_x_seconds" with the value in seconds; the FUSE
 * request counts "fuse_req_KIND" become one family
 * mmapfs_fuse_requests_total{op="KIND"}. */
static void prom_describe(const char *name, struct prom_metric *pm)
{
    const struct metric_doc *doc = find_doc(name);
    size_t n, i;

    pm->gauge = doc && doc->gauge;
    pm->help = doc ? doc->help : "mmapfs counter";
    pm->scale = 1;
    pm->label = NULL;
    if (strncmp(name, FUSE_REQ_PREFIX, strlen(FUSE_REQ_PREFIX)) == 0 &&
        name[strlen(FUSE_REQ_PREFIX)]) {
        snprintf(pm->name, sizeof(pm->name), "mmapfs_fuse_requests_total");
        pm->label = name + strlen(FUSE_REQ_PREFIX);
        pm->help = "FUSE requests received since the mount, by kind";
        pm->gauge = 0;
        return;
    }
    n = (size_t)snprintf(pm->name, sizeof(pm->name) - 16, "mmapfs_%s", name);
    if (n >= sizeof(pm->name) - 16)
        n = sizeof(pm->name) - 17;
    for (i = 7; i < n; i++)
        if (!isalnum((unsigned char)pm->name[i]) && pm->name[i] != '_' && pm->name[i] != ':')
            pm->name[i] = '_';
    if (n > 3 && strcmp(pm->name + n - 3, "_us") == 0) {
        pm->name[n - 3] = '\0';
        prom_suffix(pm, "_seconds");
        pm->scale = 1e-6;
    }
    if (!pm->gauge)
        prom_suffix(pm, "_total");
}

int mfs_metrics_print_prometheus(FILE *out, const char *text, const char *mnt)
{
    const char *pos = text;
    struct metric m;
    int count = 0, fuse_family_done = 0;

    while (mfs_metrics_next(&pos, &m)) {
        struct prom_metric pm;

        prom_describe(m.name, &pm);
        count++;
        if (!pm.label || !fuse_family_done) {
            if (pm.label)
                fprintf(out, "# HELP %s %s (the fuse_req_* lines of mmapfs-stat).\n", pm.name, pm.help);
            else if (pm.scale != 1)
                fprintf(out, "# HELP %s %s, seconds (%s / 1e6).\n", pm.name, pm.help, m.name);
            else
                fprintf(out, "# HELP %s %s (%s).\n", pm.name, pm.help, m.name);
            fprintf(out, "# TYPE %s %s\n", pm.name, pm.gauge ? "gauge" : "counter");
            fuse_family_done |= pm.label != NULL;
        }
        fprintf(out, "%s{mountpoint=\"", pm.name);
        print_label_value(out, mnt);
        if (pm.label) {
            fprintf(out, "\",op=\"");
            print_label_value(out, pm.label);
        }
        if (pm.scale != 1)
            fprintf(out, "\"} %.6f\n", strtod(m.value, NULL) * pm.scale);
        else
            fprintf(out, "\"} %s\n", m.value);
    }
    return count;
}

