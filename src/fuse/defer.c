/*
 * defer.c — requests that wait for the kernel's write-back, off the
 * request threads when they would take the last one.
 *
 * Before a rename replaces a file, and before SEEK_DATA/SEEK_HOLE, the
 * daemon asks the kernel to write the file's cached pages back
 * (mfs_flush_kernel_pages) and waits for it: the kernel sends those pages
 * as WRITE requests, which other request threads must serve. With every
 * request thread waiting like that, nobody serves them and the mount hangs
 * (measured: 100 processes replacing files in 100 directories, each with
 * its writer still open, hung the default mount within 6 s; 8 did with
 * max_threads=2). So at most max_threads - 1 request threads wait in place
 * (the common case: no extra hop); a request that would take the last one
 * is handed to a thread of its own (started on first use), which runs the
 * rest of the handler, waiting included, and replies. That thread serves
 * such requests one at a time; the request threads stay free for the
 * WRITEs.
 *
 * Replies owed by other threads. An FSYNC is answered by the journal's
 * commit thread once its transaction is durable, after the request
 * thread went back to the loop. When the loop ends (SIGTERM, an aborted
 * connection) such replies may still be due; main then unmounts, which
 * closes the session's device. A reply written after that went to a
 * closed descriptor, or to whatever file took its number meanwhile (the
 * metrics file is opened right then), and the fsync(2) caller got
 * ECONNABORTED for data that was durable. So mfs_defer_stop waits until
 * every owed reply was sent (the commit thread still runs: fs_unmount
 * comes later).
 *
 * Shutdown on a signal. A handler waiting in the kernel for write-back
 * (uninterruptibly) needs the loop to serve the WRITEs; once the session
 * is marked exited the loop threads read no more requests, so the
 * handler, the thread that joins it and the daemon waited for ever
 * (SIGTERM while 8 processes renamed over files being written: about one
 * time in three). So before the shutdown thread ends the loop,
 * mfs_defer_no_flush makes later handlers skip the wait (the kernel's
 * pages not written back by then are lost at the unmount anyway, as for
 * any file still being written) and waits for those already in it.
 */
#include <errno.h>
#include <stdlib.h>

#include "fuse/ops_i.h"

/* Takes a waiting slot: 1 if the caller may wait on a request thread. */
int mfs_wait_slot_take(struct mmapfs_fuse *m)
{
    /* -s runs one request thread whatever max_threads says */
    unsigned threads = m->cfg->single_thread ? 1 : m->cfg->max_threads;
    unsigned limit = threads > 1 ? threads - 1 : 0;
    unsigned n = __atomic_add_fetch(&m->defer.waiting, 1, __ATOMIC_ACQ_REL);

    if (n <= limit)
        return 1;
    __atomic_sub_fetch(&m->defer.waiting, 1, __ATOMIC_ACQ_REL);
    return 0;
}

void mfs_wait_slot_give(struct mmapfs_fuse *m)
{
    __atomic_sub_fetch(&m->defer.waiting, 1, __ATOMIC_ACQ_REL);
}

static void *defer_thread(void *arg)
{
    struct mmapfs_fuse *m = arg;
    struct mfs_defer *q = &m->defer;

    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (!q->head && !q->stop)
            pthread_cond_wait(&q->cond, &q->lock);
        struct mfs_deferred *d = q->head;
        if (!d)
            break;                       /* stopped, and nothing left */
        q->head = d->next;
        if (!q->head)
            q->tail = NULL;
        pthread_mutex_unlock(&q->lock);
        d->run(d);                       /* replies, frees d */
        pthread_mutex_lock(&q->lock);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

void mfs_defer(struct mmapfs_fuse *m, fuse_req_t req, struct mfs_deferred *d)
{
    struct mfs_defer *q = &m->defer;
    int err = d ? 0 : -ENOMEM;

    pthread_mutex_lock(&q->lock);
    if (!err && q->stop)
        err = -ESHUTDOWN;
    else if (!err && !q->started) {
        err = -pthread_create(&q->thread, NULL, defer_thread, m);
        q->started = !err;
    }
    if (!err) {
        d->next = NULL;
        d->req = req;
        if (q->tail)
            q->tail->next = d;
        else
            q->head = d;
        q->tail = d;
        pthread_cond_signal(&q->cond);
    }
    pthread_mutex_unlock(&q->lock);
    if (err) {
        free(d);
        mfs_reply_err(req, err);
    }
}

void mfs_reply_owed(struct mmapfs_fuse *m)
{
    pthread_mutex_lock(&m->defer.lock);
    m->defer.owed++;
    pthread_mutex_unlock(&m->defer.lock);
}

void mfs_reply_paid(struct mmapfs_fuse *m)
{
    pthread_mutex_lock(&m->defer.lock);
    if (--m->defer.owed == 0)
        pthread_cond_broadcast(&m->defer.cond);
    pthread_mutex_unlock(&m->defer.lock);
}

/* Counts the caller in flushing unless shutdown has begun: 1 if it may
 * wait for the kernel's write-back (then mfs_flush_end). Both sides use
 * sequentially consistent atomics: either the caller sees no_flush or
 * mfs_defer_no_flush sees the caller. */
int mfs_flush_begin(struct mmapfs_fuse *m)
{
    __atomic_add_fetch(&m->defer.flushing, 1, __ATOMIC_SEQ_CST);
    if (!__atomic_load_n(&m->defer.no_flush, __ATOMIC_SEQ_CST))
        return 1;
    mfs_flush_end(m);
    return 0;
}

void mfs_flush_end(struct mmapfs_fuse *m)
{
    if (__atomic_sub_fetch(&m->defer.flushing, 1, __ATOMIC_SEQ_CST) == 0 &&
        __atomic_load_n(&m->defer.no_flush, __ATOMIC_SEQ_CST)) {
        pthread_mutex_lock(&m->defer.lock);
        pthread_cond_broadcast(&m->defer.cond);
        pthread_mutex_unlock(&m->defer.lock);
    }
}

void mfs_defer_no_flush(struct mmapfs_fuse *m)
{
    __atomic_store_n(&m->defer.no_flush, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&m->defer.lock);
    while (__atomic_load_n(&m->defer.flushing, __ATOMIC_SEQ_CST))
        pthread_cond_wait(&m->defer.cond, &m->defer.lock);
    pthread_mutex_unlock(&m->defer.lock);
}

void mfs_defer_init(struct mmapfs_fuse *m)
{
    pthread_mutex_init(&m->defer.lock, NULL);
    pthread_cond_init(&m->defer.cond, NULL);
}

void mfs_defer_stop(struct mmapfs_fuse *m)
{
    struct mfs_defer *q = &m->defer;

    pthread_mutex_lock(&q->lock);
    q->stop = 1;
    pthread_cond_signal(&q->cond);
    int started = q->started;
    pthread_mutex_unlock(&q->lock);
    if (started)
        pthread_join(q->thread, NULL);
    pthread_mutex_lock(&q->lock);
    while (q->owed)
        pthread_cond_wait(&q->cond, &q->lock);
    pthread_mutex_unlock(&q->lock);
}
