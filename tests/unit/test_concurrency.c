/*
 * test_concurrency — the fs core and its journal driven from several
 * threads at once, on one mount, while commits and checkpoints run. Built
 * and run like every unit test, and again under ThreadSanitizer by
 * `make check-tsan` (docs in the Makefile), which is what most of its
 * value comes from: every interleaving it produces is checked for data
 * races as well as for results.
 *
 *  - private directories: 4 threads, each creating, writing, overwriting,
 *    truncating, renaming, hard-linking, unlinking and fsyncing (fs_fsync
 *    and fs_fsync_async) files in its own directory;
 *  - a shared directory: the same workers with their own names in one
 *    directory, plus shared files whose records all threads overwrite and
 *    one name all threads rename onto;
 *  - readers against extend / truncate / punch: every byte fs_read and
 *    fs_read_iov return belongs to the file read (its tag byte) or is zero,
 *    while the blocks freed by truncation are reused by the other files;
 *  - readdir (plain and plus, in small batches) of a directory whose
 *    entries come and go: no surviving entry is skipped or repeated.
 *  - early answers: a thread that starts at an operation's early answer
 *    (fs.h) sees the finished operation;
 *  - a full disk: four writers append to files that together want more
 *    than the disk holds and truncate them on ENOSPC (blocks freed by one
 *    become usable by the others once the truncation commits).
 *
 * In each, one more thread forces commits (fsync of the directories) in a
 * loop, and asks for metrics and statfs as mmapfs-stat and statfs(2) do.
 * The private-directory test runs with a sync batching window
 * (sync_delay), the shared-directory one with the pread backend. Threads record the first error they see; the main thread asserts
 * after joining them (cmocka's asserts work only on the main thread). The
 * results are then compared with a model each thread kept: listings hold
 * exactly the expected names, every file has exactly the content its last
 * writer wrote, link counts are right; finally the image unmounts and the
 * fsck core finds it clean.
 *
 * Work is bounded by iteration counts, not by time (TEST_CONCURRENCY_SCALE
 * multiplies them, default 1), so that a run takes the same work on a fast
 * and on a loaded machine. Images are sparse files from mkstemp in /tmp,
 * removed by the teardown.
 */
#include "fs_fixture.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stddef.h>
#include <linux/falloc.h>
#include <stdarg.h>
#include <sys/uio.h>

/* ==== shared helpers =========================================================== */

#define NWORKERS 4
#define SLOTS    8              /* files per worker */
#define BS       4096u

static unsigned scale(void)
{
    const char *s = getenv("TEST_CONCURRENCY_SCALE");
    int v = s ? atoi(s) : 1;
    return v > 0 ? (unsigned)v : 1;
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Deterministic content of 'len' bytes for seed. */
static void fill_pattern(uint8_t *buf, size_t len, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < len; i += 8) {
        uint64_t v = rng_next(&s);
        memcpy(buf + i, &v, len - i < 8 ? len - i : 8);
    }
}

/* The first error a thread saw: a message, kept for the main thread. */
struct failure {
    char msg[200];
};

static void failf(struct failure *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failf(struct failure *f, const char *fmt, ...)
{
    if (f->msg[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->msg, sizeof(f->msg), fmt, ap);
    va_end(ap);
}

/* Waits for fs_fsync_async's callback (called on the commit thread). */
struct async_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, err;
};

static void async_done(void *ctx, int err)
{
    struct async_wait *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->err = err;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static int fsync_async_wait(struct fs *fs, uint64_t ino, int datasync)
{
    struct async_wait w = { .done = 0 };
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    fs_fsync_async(fs, ino, datasync, async_done, &w);
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return w.err;
}

/* fsync of ino, one of three ways chosen by k: sync, async, fdatasync. */
static int some_fsync(struct fs *fs, uint64_t ino, uint64_t k)
{
    switch (k % 3) {
    case 0:  return fs_fsync(fs, ino, 0);
    case 1:  return fsync_async_wait(fs, ino, (int)(k & 4) != 0);
    default: return fs_fsync(fs, ino, 1);
    }
}

/* Whether the file ino is exactly 'len' bytes equal to want. */
static int content_is(struct fs *fs, uint64_t ino, const uint8_t *want, size_t len,
                      struct failure *f, const char *what)
{
    struct fs_stat st;
    int err = fs_getattr(fs, ino, &st);
    if (err) {
        failf(f, "%s: getattr: %s", what, strerror(-err));
        return 0;
    }
    if (st.size != len) {
        failf(f, "%s: size %llu, expected %zu", what, (unsigned long long)st.size, len);
        return 0;
    }
    uint8_t *got = malloc(len + 1);
    ssize_t n = got ? fs_read(fs, ino, 0, got, len + 1) : -ENOMEM;
    int ok = n == (ssize_t)len && memcmp(got, want, len) == 0;
    if (!ok)
        failf(f, "%s: read %zd bytes, content %s", what, n,
              n == (ssize_t)len ? "differs" : "short");
    free(got);
    return ok;
}

/* ---- directory listings --------------------------------------------------- */

#define MAXNAMES 256

struct names {
    char name[MAXNAMES][32];
    uint64_t ino[MAXNAMES];
    int count;
    int overflow;
};

/* fill() for a whole listing: collects names (without "." and ".."). */
static int collect_fill(void *ctx, const char *name, const struct fs_stat *st,
                        uint64_t next_off)
{
    struct names *n = ctx;
    (void)next_off;
    if (!strcmp(name, ".") || !strcmp(name, ".."))
        return 0;
    if (n->count == MAXNAMES) {
        n->overflow = 1;
        return 0;
    }
    snprintf(n->name[n->count], sizeof(n->name[0]), "%s", name);
    n->ino[n->count++] = st->ino;
    return 0;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Lists dir in one call into n, names sorted. */
static int list_dir(struct fs *fs, uint64_t dir, struct names *n)
{
    memset(n, 0, sizeof(*n));
    int err = fs_readdir(fs, dir, 0, 0, collect_fill, n);
    if (err < 0)
        return err;
    if (n->overflow)
        return -E2BIG;
    /* sort names only (the inos are not used after sorting) */
    qsort(n->name, (size_t)n->count, sizeof(n->name[0]), cmp_name);
    return 0;
}

/* Asserts (main thread) that dir holds exactly the names in want (sorted in place). */
static void assert_listing(struct fs *fs, uint64_t dir, struct names *want)
{
    static struct names got;
    assert_int_equal(list_dir(fs, dir, &got), 0);
    qsort(want->name, (size_t)want->count, sizeof(want->name[0]), cmp_name);
    for (int i = 0; i < got.count || i < want->count; i++) {
        const char *g = i < got.count ? got.name[i] : "(none)";
        const char *w = i < want->count ? want->name[i] : "(none)";
        if (strcmp(g, w))
            fail_msg("directory %llu: entry %d is %s, expected %s (%d entries, expected %d)",
                     (unsigned long long)dir, i, g, w, got.count, want->count);
    }
}

static void names_add(struct names *n, const char *name)
{
    assert_true(n->count < MAXNAMES);
    snprintf(n->name[n->count++], sizeof(n->name[0]), "%s", name);
}

/* ---- the committer ---------------------------------------------------------- */

/* Forces commits: fsync of some directories in a loop until told to stop
 * (or a bound of iterations, so that a stuck test still ends). */
struct committer {
    struct fs *fs;
    uint64_t dirs[NWORKERS + 1];
    int ndirs;
    int stop;                   /* __atomic */
    unsigned rounds;
    struct failure f;
    pthread_t th;
};

static void *committer_main(void *arg)
{
    struct committer *c = arg;
    const struct timespec pause = { 0, 500 * 1000 };
    for (unsigned i = 0; i < 20000 && !__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE); i++) {
        uint64_t dir = c->dirs[i % (unsigned)c->ndirs];
        int err = (i & 1) ? fs_fsync(c->fs, dir, 0) : fsync_async_wait(c->fs, dir, 0);
        if (err) {
            failf(&c->f, "committer: fsync of %llu: %s", (unsigned long long)dir,
                  strerror(-err));
            break;
        }
        /* what mmapfs-stat and statfs(2) ask meanwhile */
        char text[4096];
        struct statvfs sv;
        if (fs_format_metrics(c->fs, text, sizeof(text)) <= 0 || fs_statfs(c->fs, &sv)) {
            failf(&c->f, "committer: metrics or statfs failed");
            break;
        }
        c->rounds++;
        nanosleep(&pause, NULL);
    }
    return NULL;
}

/* Prints what the journal did during the test (main thread). */
static void print_journal(struct fs *fs, const struct committer *c)
{
    struct jnl_metrics jm;
    jnl_get_metrics(fs->jnl, &jm);
    printf("journal: %llu commits, %llu wraps, %llu checkpointed blocks; committer: %u fsyncs\n",
           (unsigned long long)jm.commits, (unsigned long long)jm.wraps,
           (unsigned long long)jm.checkpoint_blocks, c->rounds);
}

static void committer_start(struct committer *c, struct fs *fs)
{
    c->fs = fs;
    c->dirs[c->ndirs++] = ROOT;
    assert_int_equal(pthread_create(&c->th, NULL, committer_main, c), 0);
}

static void committer_stop(struct committer *c)
{
    __atomic_store_n(&c->stop, 1, __ATOMIC_RELEASE);
    assert_int_equal(pthread_join(c->th, NULL), 0);
    if (c->f.msg[0])
        fail_msg("%s", c->f.msg);
    assert_true(c->rounds > 0);
}

/* ==== file workers: private and shared directories =================================== */

/* One file of a worker, as the worker believes it is. */
struct slot {
    int exists;
    int renamed;                /* name is g<s> (else f<s>) */
    int linked;                 /* a second name h<s> exists */
    uint64_t ino;
    uint64_t seed;              /* content: fill_pattern(size, seed) */
    size_t size;
    uint64_t xattr_seed;        /* user.t is fill_pattern(XATTR_LEN, it); 0: none */
};

#define XATTR_LEN 24

/* Files every worker of the shared test writes: records of BS bytes, each
 * guarded by a mutex of the test so that its last writer is known. */
#define SHARED_FILES   3
#define SHARED_RECORDS 8

struct shared {
    uint64_t dir;
    uint64_t ino[SHARED_FILES];
    pthread_mutex_t mu[SHARED_FILES][SHARED_RECORDS];
    uint64_t seed[SHARED_FILES][SHARED_RECORDS];   /* last written */
    pthread_mutex_t target_mu;                      /* renames onto "target" */
    uint64_t target_seed;
    size_t target_size;
    int target_exists;
};

struct worker {
    struct fs *fs;
    int id;
    uint64_t dir;
    char prefix[16];            /* prefix of this worker's names */
    unsigned iters;
    struct shared *sh;          /* NULL: private directory test */
    struct slot slot[SLOTS];
    uint8_t *buf;               /* scratch, MAXFILE bytes */
    struct failure f;
    unsigned ops[11];           /* operations done, by kind */
    pthread_t th;
};

#define MAXFILE (40 * 1024)

static void slot_name(const struct worker *w, int s, char kind, char *out, size_t size)
{
    snprintf(out, size, "%s%c%d", w->prefix, kind, s);
}

/* Content seed of worker w at iteration k (and record r for shared files). */
static uint64_t content_seed(const struct worker *w, uint64_t k, uint64_t r)
{
    return ((uint64_t)(w->id + 1) << 48) | (r << 32) | k;
}

static size_t content_size(uint64_t seed)
{
    uint64_t s = seed;
    uint64_t v = rng_next(&s);
    /* a third are tiny, the rest up to MAXFILE (several blocks) */
    return v % 3 == 0 ? (size_t)(v >> 8) % 100 : (size_t)(v >> 8) % MAXFILE;
}

/* Writes the content of seed as the whole file ino: truncate then write,
 * or write then truncate to size, chosen by seed. */
static int write_content(struct worker *w, uint64_t ino, uint64_t seed, size_t size)
{
    fill_pattern(w->buf, size, seed);
    struct fs_setattr sa = { .size = size };
    int err = 0;
    if (seed & 1) {
        sa.size = 0;
        err = fs_setattr(w->fs, ino, &sa, FS_SET_SIZE, NULL);
        if (!err && size && fs_write(w->fs, ino, 0, w->buf, size) != (ssize_t)size)
            err = -EIO;
    } else {
        if (size && fs_write(w->fs, ino, 0, w->buf, size) != (ssize_t)size)
            err = -EIO;
        if (!err)
            err = fs_setattr(w->fs, ino, &sa, FS_SET_SIZE, NULL);
    }
    return err;
}

static int check_slot_content(struct worker *w, struct slot *sl, const char *what)
{
    fill_pattern(w->buf, sl->size, sl->seed);
    return content_is(w->fs, sl->ino, w->buf, sl->size, &w->f, what);
}

static int check_nlink(struct worker *w, uint64_t ino, uint32_t want, const char *what)
{
    struct fs_stat st;
    int err = fs_getattr(w->fs, ino, &st);
    if (err || st.nlink != want) {
        failf(&w->f, "%s: nlink %u (err %d), expected %u", what, err ? 0 : st.nlink, err,
              want);
        return 0;
    }
    return 1;
}

/* Whether slot sl's inode has the xattr of its model. */
static int check_xattr(struct worker *w, struct slot *sl, const char *what)
{
    uint8_t want[XATTR_LEN], got[XATTR_LEN];
    int n = fs_getxattr(w->fs, sl->ino, "user.t", got, sizeof(got));
    if (!sl->xattr_seed) {
        if (n != -ENODATA)
            failf(&w->f, "%s: getxattr %d, expected none", what, n);
        return n == -ENODATA;
    }
    fill_pattern(want, XATTR_LEN, sl->xattr_seed);
    if (n != XATTR_LEN || memcmp(got, want, XATTR_LEN)) {
        failf(&w->f, "%s: getxattr %d, value %s", what, n,
              n == XATTR_LEN ? "differs" : "missing");
        return 0;
    }
    return 1;
}

/* One operation on slot s at iteration k. 0 or -1 (w->f set). */
static int slot_op(struct worker *w, uint64_t k, uint64_t r)
{
    struct fs *fs = w->fs;
    int s = (int)(r % SLOTS);
    struct slot *sl = &w->slot[s];
    char name[32], other[32], link[32];
    slot_name(w, s, sl->renamed ? 'g' : 'f', name, sizeof(name));
    slot_name(w, s, sl->renamed ? 'f' : 'g', other, sizeof(other));
    slot_name(w, s, 'h', link, sizeof(link));
    int err = 0;

    if (!sl->exists) {
        struct fs_stat st;
        err = fs_mknod(fs, w->dir, name, S_IFREG | 0644, 0, &cred, &st);
        if (err) {
            failf(&w->f, "worker %d: create %s: %s", w->id, name, strerror(-err));
            return -1;
        }
        fs_forget(fs, st.ino, 1);
        *sl = (struct slot){ .exists = 1, .renamed = sl->renamed, .ino = st.ino,
                             .seed = content_seed(w, k, 0) };
        sl->size = content_size(sl->seed);
        err = write_content(w, sl->ino, sl->seed, sl->size);
        w->ops[0]++;
        if (err)
            failf(&w->f, "worker %d: write new %s: %s", w->id, name, strerror(-err));
        return err ? -1 : 0;
    }
    switch ((r >> 8) % 9) {
    case 0:
    case 1: /* overwrite with new content */
        sl->seed = content_seed(w, k, 0);
        sl->size = content_size(sl->seed);
        err = write_content(w, sl->ino, sl->seed, sl->size);
        w->ops[1]++;
        break;
    case 2: /* rename f<s> <-> g<s> */
        err = fs_rename(fs, w->dir, name, w->dir, other, (r & 0x10000) ? FS_RENAME_NOREPLACE : 0);
        if (!err)
            sl->renamed = !sl->renamed;
        w->ops[2]++;
        break;
    case 3: /* hard link h<s>, or drop it */
        if (sl->linked) {
            err = fs_unlink(fs, w->dir, link);
            if (!err && check_nlink(w, sl->ino, 1, "after unlink of the second name"))
                sl->linked = 0;
        } else {
            struct fs_stat st;
            err = fs_link(fs, sl->ino, w->dir, link, &st);
            if (!err) {
                fs_forget(fs, st.ino, 1);
                if (st.nlink != 2)
                    failf(&w->f, "worker %d: link %s: nlink %u", w->id, link, st.nlink);
                sl->linked = 1;
            }
        }
        w->ops[3]++;
        break;
    case 4: /* unlink every name */
        if (sl->linked)
            err = fs_unlink(fs, w->dir, link);
        if (!err)
            err = fs_unlink(fs, w->dir, name);
        if (!err) {
            struct fs_stat st;
            if (fs_lookup(fs, w->dir, name, &st) != -ENOENT)
                failf(&w->f, "worker %d: %s still found after unlink", w->id, name);
            sl->exists = sl->linked = 0;
        }
        w->ops[4]++;
        break;
    case 5: /* fsync */
        err = some_fsync(fs, sl->ino, r >> 20);
        w->ops[5]++;
        break;
    case 6: /* read back and compare */
        check_slot_content(w, sl, name);
        w->ops[6]++;
        break;
    case 7: /* set the xattr, read it back */
        sl->xattr_seed = content_seed(w, k, 0x77);
        fill_pattern(w->buf, XATTR_LEN, sl->xattr_seed);
        err = fs_setxattr(fs, sl->ino, "user.t", w->buf, XATTR_LEN, 0);
        if (!err)
            check_xattr(w, sl, name);
        w->ops[10]++;
        break;
    default: /* append a little, then fsync the directory */
        if (sl->size + 100 <= MAXFILE) {
            /* the model is "the first size bytes of the pattern of seed":
             * appending the next bytes of the same pattern keeps it */
            size_t old = sl->size;
            fill_pattern(w->buf, old + 100, sl->seed);
            if (fs_write(fs, sl->ino, old, w->buf + old, 100) != 100)
                err = -EIO;
            else
                sl->size = old + 100;
        }
        if (!err)
            err = some_fsync(fs, w->dir, r >> 24);
        w->ops[7]++;
        break;
    }
    if (err)
        failf(&w->f, "worker %d: op %llu on %s at iteration %llu: %s", w->id,
              (unsigned long long)((r >> 8) % 9), name, (unsigned long long)k, strerror(-err));
    return err ? -1 : 0;
}

/* Shared test: overwrite one record of a shared file. */
static int shared_record_op(struct worker *w, uint64_t k, uint64_t r)
{
    struct shared *sh = w->sh;
    int fi = (int)(r % SHARED_FILES), ri = (int)((r >> 8) % SHARED_RECORDS);
    uint64_t seed = content_seed(w, k, (uint64_t)ri + 1);
    fill_pattern(w->buf, BS, seed);
    pthread_mutex_lock(&sh->mu[fi][ri]);
    ssize_t n = fs_write(w->fs, sh->ino[fi], (uint64_t)ri * BS, w->buf, BS);
    if (n == BS)
        sh->seed[fi][ri] = seed;
    pthread_mutex_unlock(&sh->mu[fi][ri]);
    w->ops[8]++;
    if (n != BS) {
        failf(&w->f, "worker %d: shared write: %zd", w->id, n);
        return -1;
    }
    return 0;
}

/* Shared test: make a file of one's own and rename it onto "target". */
static int shared_rename_op(struct worker *w, uint64_t k)
{
    struct shared *sh = w->sh;
    char tmp[32];
    snprintf(tmp, sizeof(tmp), "%stmp", w->prefix);
    struct fs_stat st;
    int err = fs_mknod(w->fs, sh->dir, tmp, S_IFREG | 0600, 0, &cred, &st);
    if (err) {
        failf(&w->f, "worker %d: create %s: %s", w->id, tmp, strerror(-err));
        return -1;
    }
    fs_forget(w->fs, st.ino, 1);
    uint64_t seed = content_seed(w, k, 0xff);
    size_t size = content_size(seed);
    err = write_content(w, st.ino, seed, size);
    if (!err) {
        pthread_mutex_lock(&sh->target_mu);
        err = fs_rename(w->fs, sh->dir, tmp, sh->dir, "target", 0);
        if (!err) {
            sh->target_seed = seed;
            sh->target_size = size;
            sh->target_exists = 1;
        }
        pthread_mutex_unlock(&sh->target_mu);
    }
    w->ops[9]++;
    if (err)
        failf(&w->f, "worker %d: rename onto target: %s", w->id, strerror(-err));
    return err ? -1 : 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint64_t rs = (uint64_t)w->id * 0x51ed27u + 17;
    for (uint64_t k = 1; k <= w->iters; k++) {
        uint64_t r = rng_next(&rs);
        int err;
        if (w->sh && r % 8 == 0)
            err = shared_record_op(w, k, r >> 3);
        else if (w->sh && r % 16 == 1)
            err = shared_rename_op(w, k);
        else
            err = slot_op(w, k, r >> 4);
        if (err)
            break;
    }
    return NULL;
}

static void workers_run(struct worker *w, struct committer *c, struct fs *fs)
{
    uint8_t *bufs[NWORKERS];
    for (int i = 0; i < NWORKERS; i++) {
        bufs[i] = malloc(MAXFILE);
        assert_non_null(bufs[i]);
        w[i].buf = bufs[i];
    }
    committer_start(c, fs);
    for (int i = 0; i < NWORKERS; i++)
        assert_int_equal(pthread_create(&w[i].th, NULL, worker_main, &w[i]), 0);
    for (int i = 0; i < NWORKERS; i++)
        assert_int_equal(pthread_join(w[i].th, NULL), 0);
    committer_stop(c);
    for (int i = 0; i < NWORKERS; i++)
        if (w[i].f.msg[0])
            fail_msg("%s", w[i].f.msg);
}

/* After the run: worker w's files hold the content and link counts of its
 * model; their names are added to 'want' (the expected listing). */
static void worker_verify(struct worker *w, struct names *want)
{
    char name[32];
    for (int s = 0; s < SLOTS; s++) {
        struct slot *sl = &w->slot[s];
        if (!sl->exists)
            continue;
        slot_name(w, s, sl->renamed ? 'g' : 'f', name, sizeof(name));
        names_add(want, name);
        assert_int_equal(lookup(w->fs, w->dir, name), (int64_t)sl->ino);
        if (sl->linked) {
            slot_name(w, s, 'h', name, sizeof(name));
            names_add(want, name);
            assert_int_equal(lookup(w->fs, w->dir, name), (int64_t)sl->ino);
        }
        check_nlink(w, sl->ino, sl->linked ? 2 : 1, name);
        check_slot_content(w, sl, name);
        check_xattr(w, sl, name);
        if (w->f.msg[0])
            fail_msg("after the run: %s", w->f.msg);
    }
}

static void workers_report(const struct worker *w)
{
    for (int i = 0; i < NWORKERS; i++)
        printf("worker %d: creates %u, overwrites %u, renames %u, links %u, unlinks %u, "
               "fsyncs %u, reads %u, appends %u, xattrs %u, shared writes %u, "
               "renames onto target %u\n", i, w[i].ops[0], w[i].ops[1], w[i].ops[2],
               w[i].ops[3], w[i].ops[4], w[i].ops[5], w[i].ops[6], w[i].ops[7], w[i].ops[10],
               w[i].ops[8], w[i].ops[9]);
}

static int img_setup(void **state)
{
    static const struct img_config c = { .name = "concurrency", .bytes = 128 * MiB,
                                         .mount = 1, .check_at_teardown = 1 };
    return img_setup_config(state, &c);
}

/* Mounts the test's image again with other engine options. */
static void remount_with(struct img *m, struct fs_options o)
{
    img_unmount(m);
    assert_int_equal(img_try_mount(m, o), 0);
}

/* Four workers, each in its own directory; a sync batching window. */
static void test_private_dirs(void **state)
{
    struct img *m = *state;
    /* syncs batched by the engine's delayed-sync loop (mount option sync_delay) */
    remount_with(m, (struct fs_options){ .sync_delay_us = 300 });
    static struct worker w[NWORKERS];
    static struct committer c;
    memset(w, 0, sizeof(w));
    memset(&c, 0, sizeof(c));
    for (int i = 0; i < NWORKERS; i++) {
        char name[16];
        snprintf(name, sizeof(name), "p%d", i);
        w[i] = (struct worker){ .fs = m->fs, .id = i, .iters = 600 * scale(),
                                .dir = mkdirectory(m->fs, ROOT, name) };
        c.dirs[c.ndirs++] = w[i].dir;
    }
    workers_run(w, &c, m->fs);

    static struct names want;
    for (int i = 0; i < NWORKERS; i++) {
        memset(&want, 0, sizeof(want));
        worker_verify(&w[i], &want);
        assert_listing(m->fs, w[i].dir, &want);
        assert_int_equal(attr(m->fs, w[i].dir).nlink, 2);
    }
    workers_report(w);
    print_journal(m->fs, &c);
    img_unmount_check(m);
}

/* Four workers in one directory, with names of their own, records of
 * shared files and one name they all rename onto; pread backend. */
static void test_shared_dir(void **state)
{
    struct img *m = *state;
    /* the engine's other backend (mount option io=pread) */
    remount_with(m, (struct fs_options){ .backend = MMIO_BACKEND_PREAD });
    static struct worker w[NWORKERS];
    static struct committer c;
    static struct shared sh;
    memset(w, 0, sizeof(w));
    memset(&c, 0, sizeof(c));
    memset(&sh, 0, sizeof(sh));
    sh.dir = mkdirectory(m->fs, ROOT, "shared");
    pthread_mutex_init(&sh.target_mu, NULL);
    for (int f = 0; f < SHARED_FILES; f++) {
        char name[16];
        snprintf(name, sizeof(name), "S%d", f);
        sh.ino[f] = mkfile(m->fs, sh.dir, name);
        for (int r = 0; r < SHARED_RECORDS; r++)
            pthread_mutex_init(&sh.mu[f][r], NULL);
    }
    c.dirs[c.ndirs++] = sh.dir;
    for (int i = 0; i < NWORKERS; i++) {
        w[i] = (struct worker){ .fs = m->fs, .id = i, .iters = 500 * scale(), .dir = sh.dir,
                                .sh = &sh };
        snprintf(w[i].prefix, sizeof(w[i].prefix), "t%d_", i);
    }
    workers_run(w, &c, m->fs);

    static struct names want;
    memset(&want, 0, sizeof(want));
    for (int i = 0; i < NWORKERS; i++)
        worker_verify(&w[i], &want);
    static uint8_t expect[SHARED_RECORDS * BS];
    for (int f = 0; f < SHARED_FILES; f++) {
        char name[16];
        snprintf(name, sizeof(name), "S%d", f);
        names_add(&want, name);
        size_t size = 0;
        memset(expect, 0, sizeof(expect));
        for (int r = 0; r < SHARED_RECORDS; r++) {
            if (!sh.seed[f][r])
                continue;
            fill_pattern(expect + (size_t)r * BS, BS, sh.seed[f][r]);
            size = (size_t)(r + 1) * BS;
        }
        struct failure fl = { "" };
        if (!content_is(m->fs, sh.ino[f], expect, size, &fl, name))
            fail_msg("%s", fl.msg);
        assert_int_equal(attr(m->fs, sh.ino[f]).nlink, 1);
    }
    if (sh.target_exists) {
        names_add(&want, "target");
        int64_t ino = lookup(m->fs, sh.dir, "target");
        assert_true(ino > 0);
        uint8_t *buf = malloc(MAXFILE);
        assert_non_null(buf);
        fill_pattern(buf, sh.target_size, sh.target_seed);
        struct failure fl = { "" };
        int ok = content_is(m->fs, (uint64_t)ino, buf, sh.target_size, &fl, "target");
        free(buf);
        if (!ok)
            fail_msg("%s", fl.msg);
        assert_int_equal(attr(m->fs, (uint64_t)ino).nlink, 1);
    }
    assert_listing(m->fs, sh.dir, &want);
    assert_int_equal(attr(m->fs, sh.dir).nlink, 2);
    workers_report(w);
    print_journal(m->fs, &c);
    for (int f = 0; f < SHARED_FILES; f++)
        for (int r = 0; r < SHARED_RECORDS; r++)
            pthread_mutex_destroy(&sh.mu[f][r]);
    pthread_mutex_destroy(&sh.target_mu);
    img_unmount_check(m);
}

/* ==== readers against extend, truncate and punch ==================================== */

#define TFILES 3
#define TMAX   (1024 * 1024)          /* files stay below this size */
#define TCHUNK (64 * 1024)            /* largest write */
#define RMAX   (128 * 1024)           /* largest read */

/* Changes one file filled with its tag byte, keeping a byte model of it. */
struct mutator {
    struct fs *fs;
    uint64_t ino;
    uint8_t tag;
    unsigned iters;
    uint8_t *model;             /* TMAX bytes */
    size_t size;
    unsigned writes, truncates, punches, syncs;
    struct failure f;
    pthread_t th;
};

/* n bytes of tag (malloc'ed), or NULL with f set. */
static uint8_t *tag_buffer(size_t n, uint8_t tag, struct failure *f)
{
    uint8_t *b = malloc(n);
    if (b)
        memset(b, tag, n);
    else
        failf(f, "no memory");
    return b;
}

static void *mutator_main(void *arg)
{
    struct mutator *mu = arg;
    uint8_t *chunk = tag_buffer(TCHUNK, mu->tag, &mu->f);
    if (!chunk)
        return NULL;
    uint64_t rs = mu->tag * 7777ull;
    for (unsigned k = 0; k < mu->iters && !mu->f.msg[0]; k++) {
        uint64_t r = rng_next(&rs);
        size_t off = (size_t)(rng_next(&rs) % TMAX);
        size_t len = 1 + (size_t)(rng_next(&rs) % TCHUNK);
        if (len > TMAX - off)
            len = TMAX - off;
        int err = 0;
        switch (r % 8) {
        case 0: case 1: case 2: case 3: {
            ssize_t n = fs_write(mu->fs, mu->ino, off, chunk, len);
            if (n != (ssize_t)len) {
                err = n < 0 ? (int)n : -EIO;
                break;
            }
            memset(mu->model + off, mu->tag, len);
            if (off + len > mu->size)
                mu->size = off + len;
            mu->writes++;
            break;
        }
        case 4: case 5: {
            /* mostly shrink: a quarter of the time to 0 */
            size_t size = (r >> 8) % 4 == 0 ? 0 : (size_t)(rng_next(&rs) % TMAX);
            struct fs_setattr sa = { .size = size };
            err = fs_setattr(mu->fs, mu->ino, &sa, FS_SET_SIZE, NULL);
            if (err)
                break;
            if (size < mu->size)
                memset(mu->model + size, 0, mu->size - size);
            mu->size = size;
            mu->truncates++;
            break;
        }
        case 6:
            if (off >= mu->size)
                break;
            err = fs_fallocate(mu->fs, mu->ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                               off, len);
            if (err)
                break;
            memset(mu->model + off, 0, off + len > mu->size ? mu->size - off : len);
            mu->punches++;
            break;
        default:
            err = some_fsync(mu->fs, mu->ino, r >> 8);
            mu->syncs++;
            break;
        }
        if (err)
            failf(&mu->f, "mutator of tag %#x: op %llu at iteration %u: %s", mu->tag,
                  (unsigned long long)(r % 8), k, strerror(-err));
    }
    free(chunk);
    return NULL;
}

/* Reads the files while they change: every byte must be the file's tag or 0. */
struct reader {
    struct fs *fs;
    int id;
    uint64_t ino[TFILES];
    uint8_t tag[TFILES];
    unsigned iters;
    unsigned reads, iov_reads, bytes;
    struct failure f;
    pthread_t th;
};

/*
 * Copies n bytes out of the mapping, as the kernel does with the iovec of a
 * FUSE read reply (fs_read_iov's pointers). That copy is outside the
 * process, so ThreadSanitizer must not see this one either: fs.h says the
 * bytes may change under a concurrent writer, which is the race of any
 * read with a write. What it must never show is bytes of another file.
 */
__attribute__((no_sanitize_thread, noinline))
static void kernel_copy(uint8_t *dst, const volatile uint8_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i];
}

static int bytes_ok(struct reader *rd, int f, const uint8_t *buf, size_t n, uint64_t off,
                    const char *how)
{
    for (size_t i = 0; i < n; i++) {
        if (buf[i] != rd->tag[f] && buf[i] != 0) {
            failf(&rd->f, "reader %d: %s of file %d (tag %#x) at %llu: byte %#x", rd->id, how,
                  f, rd->tag[f], (unsigned long long)(off + i), buf[i]);
            return 0;
        }
    }
    return 1;
}

static void *reader_main(void *arg)
{
    struct reader *rd = arg;
    uint8_t *buf = malloc(RMAX);
    if (!buf) {
        failf(&rd->f, "no memory");
        return NULL;
    }
    uint64_t rs = (uint64_t)rd->id * 31337 + 5;
    for (unsigned k = 0; k < rd->iters && !rd->f.msg[0]; k++) {
        int f = (int)(rng_next(&rs) % TFILES);
        uint64_t off = rng_next(&rs) % (TMAX + TCHUNK);
        size_t len = 1 + (size_t)(rng_next(&rs) % RMAX);
        if (k & 1) {
            ssize_t n = fs_read(rd->fs, rd->ino[f], off, buf, len);
            if (n < 0 || (size_t)n > len) {
                failf(&rd->f, "reader %d: fs_read: %zd", rd->id, n);
                break;
            }
            bytes_ok(rd, f, buf, (size_t)n, off, "fs_read");
            rd->reads++;
            rd->bytes += (unsigned)n;
        } else {
            struct iovec iov[16];
            struct fs_read_pin pin;
            int niov = 0;
            fs_read_pin(rd->fs, &pin);      /* held until the "reply" is copied */
            ssize_t n = fs_read_iov(rd->fs, rd->ino[f], off, len, iov, 16, &niov, &pin);
            if (n < 0 || (size_t)n > len) {
                fs_read_unpin(rd->fs, &pin);
                failf(&rd->f, "reader %d: fs_read_iov: %zd", rd->id, n);
                break;
            }
            size_t got = 0;
            for (int i = 0; i < niov; i++) {
                if (got + iov[i].iov_len > (size_t)n) {
                    failf(&rd->f, "reader %d: iovec longer than %zd", rd->id, n);
                    break;
                }
                kernel_copy(buf + got, iov[i].iov_base, iov[i].iov_len);
                got += iov[i].iov_len;
            }
            fs_read_unpin(rd->fs, &pin);
            if (got != (size_t)n)
                failf(&rd->f, "reader %d: iovec has %zu bytes, returned %zd", rd->id, got, n);
            bytes_ok(rd, f, buf, got, off, "fs_read_iov");
            rd->iov_reads++;
            rd->bytes += (unsigned)got;
        }
    }
    free(buf);
    return NULL;
}

static void test_read_during_truncate(void **state)
{
    struct img *m = *state;
    enum { NREADERS = 2 };
    static struct mutator mu[TFILES];
    static struct reader rd[NREADERS];
    static struct committer c;
    memset(mu, 0, sizeof(mu));
    memset(rd, 0, sizeof(rd));
    memset(&c, 0, sizeof(c));
    for (int f = 0; f < TFILES; f++) {
        char name[16];
        snprintf(name, sizeof(name), "T%d", f);
        mu[f] = (struct mutator){ .fs = m->fs, .ino = mkfile(m->fs, ROOT, name),
                                  .tag = (uint8_t)(0xa1 + f), .iters = 400 * scale(),
                                  .model = calloc(1, TMAX) };
        assert_non_null(mu[f].model);
    }
    for (int i = 0; i < NREADERS; i++) {
        rd[i] = (struct reader){ .fs = m->fs, .id = i, .iters = 600 * scale() };
        for (int f = 0; f < TFILES; f++) {
            rd[i].ino[f] = mu[f].ino;
            rd[i].tag[f] = mu[f].tag;
        }
    }
    committer_start(&c, m->fs);
    for (int f = 0; f < TFILES; f++)
        assert_int_equal(pthread_create(&mu[f].th, NULL, mutator_main, &mu[f]), 0);
    for (int i = 0; i < NREADERS; i++)
        assert_int_equal(pthread_create(&rd[i].th, NULL, reader_main, &rd[i]), 0);
    for (int i = 0; i < NREADERS; i++)
        assert_int_equal(pthread_join(rd[i].th, NULL), 0);
    for (int f = 0; f < TFILES; f++)
        assert_int_equal(pthread_join(mu[f].th, NULL), 0);
    committer_stop(&c);
    for (int f = 0; f < TFILES; f++)
        if (mu[f].f.msg[0])
            fail_msg("%s", mu[f].f.msg);
    for (int i = 0; i < NREADERS; i++)
        if (rd[i].f.msg[0])
            fail_msg("%s", rd[i].f.msg);

    for (int f = 0; f < TFILES; f++) {
        struct failure fl = { "" };
        char what[32];
        snprintf(what, sizeof(what), "file T%d after the run", f);
        if (!content_is(m->fs, mu[f].ino, mu[f].model, mu[f].size, &fl, what))
            fail_msg("%s", fl.msg);
        printf("T%d: %u writes, %u truncates, %u punches, %u fsyncs, final size %zu\n", f,
               mu[f].writes, mu[f].truncates, mu[f].punches, mu[f].syncs, mu[f].size);
        free(mu[f].model);
    }
    for (int i = 0; i < NREADERS; i++)
        printf("reader %d: %u fs_read, %u fs_read_iov, %u bytes\n", i, rd[i].reads,
               rd[i].iov_reads, rd[i].bytes);
    print_journal(m->fs, &c);
    img_unmount_check(m);
}

/* ==== readdir while entries come and go ============================================== */

#define KEEP 40                 /* names never removed: keep00.. */
#define CHURN 30                /* names per churn thread: a00.., b00.. */

struct churn {
    struct fs *fs;
    uint64_t dir;
    char prefix;
    unsigned iters;
    int exists[CHURN];
    unsigned creates, unlinks, renames;
    struct failure f;
    pthread_t th;
};

static void *churn_main(void *arg)
{
    struct churn *ch = arg;
    uint64_t rs = (uint64_t)ch->prefix * 4242;
    char name[16], other[16];
    for (unsigned k = 0; k < ch->iters && !ch->f.msg[0]; k++) {
        uint64_t r = rng_next(&rs);
        int i = (int)(r % CHURN), j = (int)((r >> 8) % CHURN);
        snprintf(name, sizeof(name), "%c%02d", ch->prefix, i);
        snprintf(other, sizeof(other), "%c%02d", ch->prefix, j);
        int err;
        const char *op;
        if (!ch->exists[i]) {
            struct fs_stat st;
            op = "create";
            err = fs_mknod(ch->fs, ch->dir, name, S_IFREG | 0644, 0, &cred, &st);
            if (!err) {
                fs_forget(ch->fs, st.ino, 1);
                ch->exists[i] = 1;
                ch->creates++;
            }
        } else if ((r >> 16) % 3 == 0 && i != j) {
            op = "rename";
            err = fs_rename(ch->fs, ch->dir, name, ch->dir, other, 0);
            if (!err) {
                ch->exists[i] = 0;
                ch->exists[j] = 1;
                ch->renames++;
            }
        } else {
            op = "unlink";
            err = fs_unlink(ch->fs, ch->dir, name);
            if (!err) {
                ch->exists[i] = 0;
                ch->unlinks++;
            }
        }
        if (!err && k % 64 == 63) {
            op = "fsync";
            err = some_fsync(ch->fs, ch->dir, k / 64);
        }
        if (err)
            failf(&ch->f, "churn %c: %s %s: %s", ch->prefix, op, name, strerror(-err));
    }
    return NULL;
}

struct lister {
    struct fs *fs;
    int id;
    uint64_t dir;
    uint64_t keep_ino[KEEP];
    unsigned iters;
    unsigned listings, calls;
    struct failure f;
    pthread_t th;
};

/* One fs_readdir call's batch. */
struct batch {
    int limit, count;
    char name[8][16];
    struct fs_stat st[8];
    uint64_t next_off;
};

static int batch_fill(void *ctx, const char *name, const struct fs_stat *st, uint64_t next_off)
{
    struct batch *b = ctx;
    if (b->count == b->limit)
        return 1;
    snprintf(b->name[b->count], sizeof(b->name[0]), "%s", name);
    b->st[b->count++] = *st;
    b->next_off = next_off;
    return 0;
}

/* Checks one entry of a listing; seen counts keep names, then a and b
 * names, then "." and "..". 0 or -1. */
static int lister_entry(struct lister *l, const char *name, const struct fs_stat *st,
                        int plus, unsigned seen[KEEP + 2 * CHURN + 2])
{
    int idx;
    char c;
    if (!strcmp(name, "."))
        idx = KEEP + 2 * CHURN;
    else if (!strcmp(name, ".."))
        idx = KEEP + 2 * CHURN + 1;
    else if (sscanf(name, "keep%d", &idx) == 1 && idx >= 0 && idx < KEEP) {
        if (st->ino != l->keep_ino[idx] || (plus && (st->nlink != 1 || !S_ISREG(st->mode)))) {
            failf(&l->f, "lister %d: %s: ino %llu nlink %u mode %o", l->id, name,
                  (unsigned long long)st->ino, st->nlink, st->mode);
            return -1;
        }
    } else if (sscanf(name, "%c%d", &c, &idx) == 2 && (c == 'a' || c == 'b') && idx >= 0 &&
               idx < CHURN) {
        idx += KEEP + (c == 'b' ? CHURN : 0);
    } else {
        failf(&l->f, "lister %d: unexpected name %s", l->id, name);
        return -1;
    }
    if (++seen[idx] > 1) {
        failf(&l->f, "lister %d: %s listed twice", l->id, name);
        return -1;
    }
    return 0;
}

/* Lists the directory in batches of 1..8 entries, resuming at the offset
 * of the last one taken. 0 or -1. */
static int lister_once(struct lister *l, uint64_t r)
{
    unsigned seen[KEEP + 2 * CHURN + 2] = { 0 };
    int plus = (int)(r & 1);
    uint64_t off = 0;
    for (;;) {
        struct batch b = { .limit = 1 + (int)((r >> 1) % 8) };
        int err = fs_readdir(l->fs, l->dir, off, plus, batch_fill, &b);
        l->calls++;
        if (err < 0) {
            failf(&l->f, "lister %d: readdir at %llu: %s", l->id, (unsigned long long)off,
                  strerror(-err));
            return -1;
        }
        int bad = 0;
        for (int i = 0; i < b.count; i++) {
            if (!bad && lister_entry(l, b.name[i], &b.st[i], plus, seen))
                bad = 1;
            if (plus && strcmp(b.name[i], ".") && strcmp(b.name[i], ".."))
                fs_forget(l->fs, b.st[i].ino, 1);
        }
        if (bad)
            return -1;
        if (b.count == 0)
            break;
        off = b.next_off;
        r = (r >> 3) | (r << 61);
    }
    for (int i = 0; i < KEEP; i++)
        if (seen[i] != 1) {
            failf(&l->f, "lister %d: keep%02d listed %u times", l->id, i, seen[i]);
            return -1;
        }
    if (seen[KEEP + 2 * CHURN] != 1 || seen[KEEP + 2 * CHURN + 1] != 1) {
        failf(&l->f, "lister %d: . or .. missing", l->id);
        return -1;
    }
    l->listings++;
    return 0;
}

static void *lister_main(void *arg)
{
    struct lister *l = arg;
    uint64_t rs = (uint64_t)l->id * 99991 + 3;
    for (unsigned k = 0; k < l->iters; k++)
        if (lister_once(l, rng_next(&rs)))
            break;
    return NULL;
}

static void test_readdir_churn(void **state)
{
    struct img *m = *state;
    enum { NLISTERS = 2 };
    static struct churn ch[2];
    static struct lister ls[NLISTERS];
    static struct committer c;
    memset(ch, 0, sizeof(ch));
    memset(ls, 0, sizeof(ls));
    memset(&c, 0, sizeof(c));
    uint64_t dir = mkdirectory(m->fs, ROOT, "d");
    uint64_t keep_ino[KEEP];
    char name[16];
    for (int i = 0; i < KEEP; i++) {
        snprintf(name, sizeof(name), "keep%02d", i);
        keep_ino[i] = mkfile(m->fs, dir, name);
    }
    c.dirs[c.ndirs++] = dir;
    for (int i = 0; i < 2; i++)
        ch[i] = (struct churn){ .fs = m->fs, .dir = dir, .prefix = (char)('a' + i),
                                .iters = 1000 * scale() };
    for (int i = 0; i < NLISTERS; i++) {
        ls[i] = (struct lister){ .fs = m->fs, .id = i, .dir = dir, .iters = 150 * scale() };
        memcpy(ls[i].keep_ino, keep_ino, sizeof(keep_ino));
    }
    committer_start(&c, m->fs);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&ch[i].th, NULL, churn_main, &ch[i]), 0);
    for (int i = 0; i < NLISTERS; i++)
        assert_int_equal(pthread_create(&ls[i].th, NULL, lister_main, &ls[i]), 0);
    for (int i = 0; i < NLISTERS; i++)
        assert_int_equal(pthread_join(ls[i].th, NULL), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(ch[i].th, NULL), 0);
    committer_stop(&c);
    for (int i = 0; i < 2; i++)
        if (ch[i].f.msg[0])
            fail_msg("%s", ch[i].f.msg);
    for (int i = 0; i < NLISTERS; i++)
        if (ls[i].f.msg[0])
            fail_msg("%s", ls[i].f.msg);

    static struct names want;
    memset(&want, 0, sizeof(want));
    for (int i = 0; i < KEEP; i++) {
        snprintf(name, sizeof(name), "keep%02d", i);
        names_add(&want, name);
    }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < CHURN; j++) {
            snprintf(name, sizeof(name), "%c%02d", ch[i].prefix, j);
            if (ch[i].exists[j]) {
                names_add(&want, name);
                assert_int_equal(attr(m->fs, (uint64_t)lookup(m->fs, dir, name)).nlink, 1);
            }
        }
    assert_listing(m->fs, dir, &want);
    for (int i = 0; i < 2; i++)
        printf("churn %c: %u creates, %u unlinks, %u renames\n", ch[i].prefix, ch[i].creates,
               ch[i].unlinks, ch[i].renames);
    for (int i = 0; i < NLISTERS; i++)
        printf("lister %d: %u full listings in %u readdir calls\n", i, ls[i].listings,
               ls[i].calls);
    print_journal(m->fs, &c);
    img_unmount_check(m);
}

/* ==== a full disk ========================================================================= */

#define FULL_IMAGE (16 * MiB)          /* the smallest image: about 11 MiB of data */
#define FULL_FILE  (4 * MiB)           /* each writer's file grows to this, then is cut */

/* Appends its tag byte to its file until FULL_FILE or ENOSPC, then
 * truncates it to 0 and starts again: four of them ask for more than the
 * disk holds, and the blocks freed by one are reusable by the others only
 * after the truncation commits. */
struct filler {
    struct fs *fs;
    uint64_t ino;
    uint8_t tag;
    unsigned iters;
    size_t size;                /* model: size bytes of tag */
    unsigned appends, enospc, cuts;
    struct failure f;
    pthread_t th;
};

static void *filler_main(void *arg)
{
    struct filler *fl = arg;
    enum { MAXW = 512 * 1024 };
    uint8_t *chunk = tag_buffer(MAXW, fl->tag, &fl->f);
    if (!chunk)
        return NULL;
    uint64_t rs = fl->tag * 1234567ull;
    for (unsigned k = 0; k < fl->iters && !fl->f.msg[0]; k++) {
        size_t len = 4096 + (size_t)(rng_next(&rs) % (MAXW - 4096));
        int cut = fl->size + len > FULL_FILE;
        if (!cut) {
            ssize_t n = fs_write(fl->fs, fl->ino, fl->size, chunk, len);
            if (n == -ENOSPC) {
                fl->enospc++;
                cut = 1;
            } else if (n <= 0 || (size_t)n > len) {
                failf(&fl->f, "filler %#x: write of %zu at %zu: %zd", fl->tag, len, fl->size, n);
                break;
            } else {
                fl->size += (size_t)n;       /* a short write is a full disk too */
                fl->appends++;
                cut = (size_t)n < len;
                fl->enospc += cut;
            }
        }
        if (cut) {
            struct fs_setattr sa = { .size = 0 };
            int err = fs_setattr(fl->fs, fl->ino, &sa, FS_SET_SIZE, NULL);
            if (err) {
                failf(&fl->f, "filler %#x: truncate: %s", fl->tag, strerror(-err));
                break;
            }
            fl->size = 0;
            fl->cuts++;
        }
    }
    free(chunk);
    return NULL;
}

static int img_setup_empty(void **state)
{
    static const struct img_config c = { .name = "concurrency", .check_at_teardown = 1 };
    return img_setup_config(state, &c);
}

static void test_full_disk(void **state)
{
    struct img *m = *state;
    enum { NFILLERS = 4 };
    static struct filler fl[NFILLERS];
    static struct committer c;
    memset(fl, 0, sizeof(fl));
    memset(&c, 0, sizeof(c));
    img_create(m, FULL_IMAGE, 0);
    for (int i = 0; i < NFILLERS; i++) {
        char name[16];
        snprintf(name, sizeof(name), "F%d", i);
        fl[i] = (struct filler){ .fs = m->fs, .ino = mkfile(m->fs, ROOT, name),
                                 .tag = (uint8_t)(0xc1 + i), .iters = 60 * scale() };
    }
    committer_start(&c, m->fs);
    for (int i = 0; i < NFILLERS; i++)
        assert_int_equal(pthread_create(&fl[i].th, NULL, filler_main, &fl[i]), 0);
    for (int i = 0; i < NFILLERS; i++)
        assert_int_equal(pthread_join(fl[i].th, NULL), 0);
    committer_stop(&c);
    unsigned enospc = 0;
    uint8_t *want = malloc(FULL_FILE);
    assert_non_null(want);
    for (int i = 0; i < NFILLERS; i++) {
        if (fl[i].f.msg[0])
            fail_msg("%s", fl[i].f.msg);
        memset(want, fl[i].tag, fl[i].size);
        struct failure f = { "" };
        if (!content_is(m->fs, fl[i].ino, want, fl[i].size, &f, "filler file"))
            fail_msg("%s", f.msg);
        printf("F%d: %u appends, %u full, %u truncations, final size %zu\n", i,
               fl[i].appends, fl[i].enospc, fl[i].cuts, fl[i].size);
        enospc += fl[i].enospc;
    }
    free(want);
    print_journal(m->fs, &c);
    printf("full disk seen %u times\n", enospc);
    img_unmount_check(m);
}

/* ==== early answers ======================================================================
 *
 * An operation answers (fs.h, "early answers") before it writes its
 * changes, under the filesystem's lock. Another thread that starts the
 * moment the answer is given (as the kernel's next request from the same
 * caller would) must see the finished operation: the name gone, the
 * directory's count down, the times answered. One thread removes names
 * and sets times, answering through a semaphore; an observer checks each
 * answer at once; commits run beside them. */

#define EARLY_FILES 400

struct early_run {
    struct fs *fs;
    uint64_t dir, ino[EARLY_FILES];
    unsigned n;
    sem_t answered, checked;
    struct fs_early e;
    struct fs_stat st;          /* answered attributes (setattr) */
    unsigned at;                /* the file the answer is for */
    int setattr;                /* the answer is a setattr's */
    struct failure f;
    pthread_t th;
};

static void early_run_answer(struct fs_early *e, const struct fs_stat *st)
{
    struct early_run *r = (struct early_run *)((char *)e - offsetof(struct early_run, e));
    if (st)
        r->st = *st;
    sem_post(&r->answered);
}

static void *early_changer_main(void *arg)
{
    struct early_run *r = arg;
    char name[16];
    for (unsigned i = 0; i < r->n; i++) {
        struct fs_setattr sa = { .mtime = { 1000 + i, i } };
        struct fs_stat st;
        r->at = i;
        r->setattr = 1;
        r->e.answered = 0;
        int err = fs_setattr_early(r->fs, r->ino[i], &sa, FS_SET_MTIME, &st, &r->e);
        if (err)
            failf(&r->f, "setattr of file %u: %s", i, strerror(-err));
        if (!r->e.answered)
            sem_post(&r->answered);     /* the observer goes on either way */
        sem_wait(&r->checked);
        snprintf(name, sizeof(name), "e%03u", i);
        r->setattr = 0;
        r->e.answered = 0;
        err = fs_unlink_early(r->fs, r->dir, name, &r->e);
        if (err)
            failf(&r->f, "unlink of %s: %s", name, strerror(-err));
        if (!r->e.answered)
            sem_post(&r->answered);
        sem_wait(&r->checked);
    }
    return NULL;
}

static void test_early_answers_seen(void **state)
{
    struct img *m = *state;
    static struct early_run r;
    static struct committer c;
    memset(&r, 0, sizeof(r));
    memset(&c, 0, sizeof(c));
    char name[16];
    r.fs = m->fs;
    r.n = EARLY_FILES;
    r.dir = mkdirectory(m->fs, ROOT, "d");
    for (unsigned i = 0; i < r.n; i++) {
        snprintf(name, sizeof(name), "e%03u", i);
        r.ino[i] = mkfile(m->fs, r.dir, name);
    }
    r.e.answer = early_run_answer;
    sem_init(&r.answered, 0, 0);
    sem_init(&r.checked, 0, 0);
    c.dirs[c.ndirs++] = r.dir;
    committer_start(&c, m->fs);
    assert_int_equal(pthread_create(&r.th, NULL, early_changer_main, &r), 0);
    struct failure f = { "" };
    for (unsigned k = 0; k < 2 * r.n; k++) {     /* in step with the changer: no early exit */
        sem_wait(&r.answered);
        unsigned i = r.at;      /* written before the answer, read after it */
        struct fs_stat st;
        if (r.setattr) {
            int err = fs_getattr(m->fs, r.ino[i], &st);
            if (err || st.mtime.tv_sec != (time_t)(1000 + i) || r.st.mtime.tv_sec != st.mtime.tv_sec ||
                r.st.mtime.tv_nsec != st.mtime.tv_nsec)
                failf(&f, "file %u: answered mtime %lld, then read %lld (%d)", i,
                      (long long)r.st.mtime.tv_sec, (long long)st.mtime.tv_sec, err);
        } else {
            snprintf(name, sizeof(name), "e%03u", i);
            if (fs_lookup(m->fs, r.dir, name, &st) != -ENOENT)
                failf(&f, "%s still found after its unlink was answered", name);
            if (fs_getattr(m->fs, r.dir, &st) || st.size != r.n - i - 1)
                failf(&f, "after the answer for %s the directory counts %llu entries, not %u",
                      name, (unsigned long long)st.size, r.n - i - 1);
        }
        sem_post(&r.checked);
    }
    assert_int_equal(pthread_join(r.th, NULL), 0);
    committer_stop(&c);
    if (r.f.msg[0])
        fail_msg("%s", r.f.msg);
    if (f.msg[0])
        fail_msg("%s", f.msg);
    static struct names want;
    memset(&want, 0, sizeof(want));
    assert_listing(m->fs, r.dir, &want);
    sem_destroy(&r.answered);
    sem_destroy(&r.checked);
    print_journal(m->fs, &c);
    img_unmount_check(m);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, img_setup, img_teardown)
    const struct CMUnitTest tests[] = {
        T(test_private_dirs),
        T(test_shared_dir),
        T(test_read_during_truncate),
        T(test_readdir_churn),
        T(test_early_answers_seen),
        cmocka_unit_test_setup_teardown(test_full_disk, img_setup_empty, img_teardown),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
