/*
 * metrics_file.c — mount option metrics=PATH: the counters written to a
 * file for node_exporter's textfile collector.
 *
 * Every metrics_interval seconds a thread formats the metrics text (as
 * the virtual xattr does), turns it into the Prometheus text format with
 * the code mmapfs-stat --prometheus uses, writes PATH.tmp and renames it
 * over PATH, so that a scrape never sees a half-written file. At unmount
 * the file is written one last time. A failed write is logged once (then
 * again only after a success) and retried at the next interval.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "fuse/fuse_i.h"
#include "util/metrics_text.h"

static struct {
    struct mmapfs_fuse *m;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running, stop, failing;
} mf = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* Writes the file once. 0 or -errno (logged once per failure streak). */
static int write_once(void)
{
    const struct mmapfs_config *cfg = mf.m->cfg;
    char *text = NULL, *tmp = NULL;
    FILE *f = NULL;
    int err = mfs_format_metrics(mf.m, &text);

    if (err >= 0)
        err = asprintf(&tmp, "%s.tmp", cfg->metrics_path) < 0 ? -ENOMEM : 0;
    if (err)
        goto out;
    f = fopen(tmp, "we");
    if (!f) {
        err = -errno;
        goto out;
    }
    mfs_metrics_print_prometheus(f, text, cfg->mountpoint);
    if (ferror(f))
        err = -EIO;
    if (fclose(f) && !err)
        err = -errno;
    if (!err && rename(tmp, cfg->metrics_path))
        err = -errno;
    if (err)
        unlink(tmp);
out:
    if (err && !mf.failing)
        mfs_log(LOG_WARNING, "metrics=%s: cannot write: %s (retrying every %u s)",
                cfg->metrics_path, strerror(-err), cfg->metrics_interval_s);
    mf.failing = err != 0;
    free(tmp);
    free(text);
    return err;
}

static void *writer(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mf.mu);
    while (!mf.stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += mf.m->cfg->metrics_interval_s;
        while (!mf.stop &&
               pthread_cond_timedwait(&mf.cv, &mf.mu, &until) != ETIMEDOUT)
            ;
        if (mf.stop)
            break;
        pthread_mutex_unlock(&mf.mu);
        write_once();
        pthread_mutex_lock(&mf.mu);
    }
    pthread_mutex_unlock(&mf.mu);
    return NULL;
}

int mfs_metrics_file_start(struct mmapfs_fuse *m)
{
    pthread_condattr_t ca;
    int err;

    if (!m->cfg->metrics_path)
        return 0;
    mf.m = m;
    mf.stop = 0;
    write_once();
    if (pthread_condattr_init(&ca))
        return -ENOMEM;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    err = -pthread_cond_init(&mf.cv, &ca);
    pthread_condattr_destroy(&ca);
    if (err)
        return err;
    err = -pthread_create(&mf.thread, NULL, writer, NULL);
    if (err) {
        pthread_cond_destroy(&mf.cv);
        return err;
    }
    mf.running = 1;
    return 0;
}

void mfs_metrics_file_stop(void)
{
    if (!mf.running)
        return;
    pthread_mutex_lock(&mf.mu);
    mf.stop = 1;
    pthread_cond_signal(&mf.cv);
    pthread_mutex_unlock(&mf.mu);
    pthread_join(mf.thread, NULL);
    pthread_cond_destroy(&mf.cv);
    mf.running = 0;
    write_once();
}
