/*
 * tests/bench/nullfs.c — the floor of a FUSE filesystem on this kernel.
 *
 *     nullfs MOUNTPOINT        (foreground; ends at fusermount3 -u)
 *
 * A FUSE filesystem that keeps names, attributes and sizes in memory, keeps
 * no file data (reads return zeros) and answers every request at once. It
 * negotiates what mmapfs negotiates (writeback cache, no OPEN, READDIRPLUS,
 * parallel directory operations, POSIX ACLs, 1-hour entry and attribute
 * timeouts, cached negative entries, default_permissions), serves requests
 * the way mmapfs's hot loop does (one thread that keeps reading for 20 us
 * after each reply before it sleeps in poll) and holds idle CPUs polling
 * (a CPU latency request of 0 us) for as long as it is mounted, as mmapfs
 * does while requests come. So the kernel sends it the same requests as it
 * sends mmapfs, and a workload's time on it is what the kernel's half of
 * those round trips costs: no FUSE daemon can be faster on this machine.
 * (make bench also gives its mount mmapfs's share of the dirty pages.)
 * tests/bench/run.sh times the small-file rows on it too ("FUSE floor",
 * docs/BENCH.md). Regular files, directories and symlinks; no rename, no
 * hard links, no xattrs (ENODATA), at most 2^31 inodes.
 */
#define FUSE_USE_VERSION 34
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT 3600.0
#define SPIN_US 20
#define NBUCKETS (1u << 20)

struct node {
    uint32_t mode, nlink, uid, gid, rdev;
    uint64_t size, nlookup;
    struct timespec atime, mtime, ctime;
    uint32_t parent, hnext;          /* name hash chain */
    uint32_t first, last, next, prev; /* directory: children in order */
    uint64_t dpos, next_dpos;        /* readdir offset; next one to give */
    char *name, *link;
    int used;
};

static struct node *nodes;
static uint32_t nnodes, cap, free_head;  /* free list through hnext */
static uint32_t buckets[NBUCKETS];

static uint32_t hash(uint32_t parent, const char *name)
{
    uint64_t h = 1469598103934665603ull ^ parent;
    for (; *name; name++)
        h = (h ^ (unsigned char)*name) * 1099511628211ull;
    return (uint32_t)(h >> 20) & (NBUCKETS - 1);
}

static uint32_t find(uint32_t parent, const char *name)
{
    for (uint32_t i = buckets[hash(parent, name)]; i; i = nodes[i].hnext)
        if (nodes[i].parent == parent && strcmp(nodes[i].name, name) == 0)
            return i;
    return 0;
}

static uint32_t node_new(uint32_t mode, const struct fuse_ctx *ctx)
{
    uint32_t i;
    if (free_head) {
        i = free_head;
        free_head = nodes[i].hnext;
    } else {
        if (nnodes + 1 >= cap) {
            uint32_t ncap = cap ? cap * 2 : 1024;
            struct node *n = ncap <= (1u << 31) ? realloc(nodes, ncap * sizeof(*n)) : NULL;
            if (!n)
                return 0;
            nodes = n;
            cap = ncap;
        }
        i = ++nnodes;
    }
    struct node *n = &nodes[i];
    memset(n, 0, sizeof(*n));
    n->used = 1;
    n->mode = mode;
    n->nlink = S_ISDIR(mode) ? 2 : 1;
    n->uid = ctx ? ctx->uid : 0;
    n->gid = ctx ? ctx->gid : 0;
    n->next_dpos = 3;                /* 1 and 2: "." and ".." */
    clock_gettime(CLOCK_REALTIME, &n->mtime);
    n->atime = n->ctime = n->mtime;
    return i;
}

static void link_in(uint32_t parent, uint32_t i, const char *name)
{
    struct node *p = &nodes[parent], *n = &nodes[i];
    uint32_t h = hash(parent, name);
    n->parent = parent;
    n->name = strdup(name);
    n->hnext = buckets[h];
    buckets[h] = i;
    n->dpos = p->next_dpos++;
    n->prev = p->last;
    n->next = 0;
    if (p->last)
        nodes[p->last].next = i;
    else
        p->first = i;
    p->last = i;
    clock_gettime(CLOCK_REALTIME, &p->mtime);
    p->ctime = p->mtime;
}

static void link_out(uint32_t i)
{
    struct node *n = &nodes[i], *p = &nodes[n->parent];
    uint32_t *pp = &buckets[hash(n->parent, n->name)];
    while (*pp != i)
        pp = &nodes[*pp].hnext;
    *pp = n->hnext;
    if (n->prev)
        nodes[n->prev].next = n->next;
    else
        p->first = n->next;
    if (n->next)
        nodes[n->next].prev = n->prev;
    else
        p->last = n->prev;
    clock_gettime(CLOCK_REALTIME, &p->mtime);
    p->ctime = p->mtime;
    free(n->name);
    n->name = NULL;
    n->parent = 0;
}

static void node_put(uint32_t i)
{
    struct node *n = &nodes[i];
    if (i == FUSE_ROOT_ID || n->nlink || n->nlookup)
        return;
    free(n->link);
    n->used = 0;
    n->hnext = free_head;
    free_head = i;
}

static int valid(fuse_ino_t ino)
{
    return ino >= 1 && ino <= nnodes && nodes[ino].used;
}

static void to_stat(uint32_t i, struct stat *st)
{
    const struct node *n = &nodes[i];
    memset(st, 0, sizeof(*st));
    st->st_ino = i;
    st->st_mode = n->mode;
    st->st_nlink = n->nlink;
    st->st_uid = n->uid;
    st->st_gid = n->gid;
    st->st_rdev = n->rdev;
    st->st_size = (off_t)n->size;
    st->st_blocks = (blkcnt_t)((n->size + 511) / 512);
    st->st_blksize = 4096;
    st->st_atim = n->atime;
    st->st_mtim = n->mtime;
    st->st_ctim = n->ctime;
}

static void fill_entry(uint32_t i, struct fuse_entry_param *e)
{
    memset(e, 0, sizeof(*e));
    e->ino = i;
    e->generation = 1;
    e->attr_timeout = TIMEOUT;
    e->entry_timeout = TIMEOUT;
    to_stat(i, &e->attr);
}

static void reply_new(fuse_req_t req, uint32_t i)
{
    struct fuse_entry_param e;
    nodes[i].nlookup++;
    fill_entry(i, &e);
    fuse_reply_entry(req, &e);
}

static void nl_init(void *data, struct fuse_conn_info *conn)
{
    (void)data;
    unsigned want[] = { FUSE_CAP_WRITEBACK_CACHE, FUSE_CAP_NO_OPEN_SUPPORT,
                        FUSE_CAP_ASYNC_READ, FUSE_CAP_READDIRPLUS,
                        FUSE_CAP_PARALLEL_DIROPS,
                        FUSE_CAP_CACHE_SYMLINKS, FUSE_CAP_POSIX_ACL,
                        FUSE_CAP_DONT_MASK, FUSE_CAP_HANDLE_KILLPRIV };
    for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++)
        if (conn->capable & want[k])
            conn->want |= want[k];
    /* READDIRPLUS always, as mmapfs by default (readdirplus=always) */
    conn->want &= ~(unsigned)(FUSE_CAP_AUTO_INVAL_DATA | FUSE_CAP_ATOMIC_O_TRUNC |
                              FUSE_CAP_ASYNC_DIO | FUSE_CAP_READDIRPLUS_AUTO);
    conn->max_write = 1u << 20;
    conn->time_gran = 1;
}

static void nl_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    uint32_t i = valid(parent) ? find((uint32_t)parent, name) : 0;
    if (!i) {
        struct fuse_entry_param e;
        memset(&e, 0, sizeof(e));
        e.entry_timeout = TIMEOUT;   /* a cached negative entry */
        fuse_reply_entry(req, &e);
        return;
    }
    reply_new(req, i);
}

static void forget_one(fuse_ino_t ino, uint64_t n)
{
    if (!valid(ino))
        return;
    nodes[ino].nlookup -= n < nodes[ino].nlookup ? n : nodes[ino].nlookup;
    node_put((uint32_t)ino);
}

static void nl_forget(fuse_req_t req, fuse_ino_t ino, uint64_t n)
{
    forget_one(ino, n);
    fuse_reply_none(req);
}

static void nl_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f)
{
    for (size_t k = 0; k < count; k++)
        forget_one(f[k].ino, f[k].nlookup);
    fuse_reply_none(req);
}

static void nl_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)fi;
    struct stat st;
    if (!valid(ino)) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    to_stat((uint32_t)ino, &st);
    fuse_reply_attr(req, &st, TIMEOUT);
}

static void set_time(struct timespec *t, const struct timespec *v, int now)
{
    if (now)
        clock_gettime(CLOCK_REALTIME, t);
    else
        *t = *v;
}

static void nl_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *a, int to_set,
                       struct fuse_file_info *fi)
{
    (void)fi;
    struct stat st;
    if (!valid(ino)) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    struct node *n = &nodes[ino];
    if (to_set & FUSE_SET_ATTR_MODE)
        n->mode = (n->mode & S_IFMT) | (a->st_mode & 07777);
    if (to_set & FUSE_SET_ATTR_UID)
        n->uid = a->st_uid;
    if (to_set & FUSE_SET_ATTR_GID)
        n->gid = a->st_gid;
    if (to_set & FUSE_SET_ATTR_SIZE)
        n->size = (uint64_t)a->st_size;
    if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW))
        set_time(&n->atime, &a->st_atim, to_set & FUSE_SET_ATTR_ATIME_NOW);
    if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))
        set_time(&n->mtime, &a->st_mtim, to_set & FUSE_SET_ATTR_MTIME_NOW);
    if (to_set & FUSE_SET_ATTR_CTIME)
        n->ctime = a->st_ctim;
    else
        clock_gettime(CLOCK_REALTIME, &n->ctime);
    to_stat((uint32_t)ino, &st);
    fuse_reply_attr(req, &st, TIMEOUT);
}

static void make(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                 dev_t rdev, const char *link)
{
    if (!valid(parent) || !S_ISDIR(nodes[parent].mode)) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    if (find((uint32_t)parent, name)) {
        fuse_reply_err(req, EEXIST);
        return;
    }
    /* DONT_MASK (with ACLs): the umask is the daemon's to apply */
    uint32_t i = node_new(S_ISLNK(mode) ? mode : mode & ~fuse_req_ctx(req)->umask,
                          fuse_req_ctx(req));
    if (!i) {
        fuse_reply_err(req, ENOSPC);
        return;
    }
    nodes[i].rdev = (uint32_t)rdev;
    if (link) {
        nodes[i].link = strdup(link);
        nodes[i].size = strlen(link);
    }
    link_in((uint32_t)parent, i, name);
    if (S_ISDIR(mode))
        nodes[parent].nlink++;
    reply_new(req, i);
}

static void nl_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                     dev_t rdev)
{
    make(req, parent, name, mode, rdev, NULL);
}

static void nl_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    make(req, parent, name, S_IFDIR | (mode & 07777), 0, NULL);
}

static void nl_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    make(req, parent, name, S_IFLNK | 0777, 0, link);
}

static void nl_readlink(fuse_req_t req, fuse_ino_t ino)
{
    if (!valid(ino) || !nodes[ino].link)
        fuse_reply_err(req, EINVAL);
    else
        fuse_reply_readlink(req, nodes[ino].link);
}

static void remove_name(fuse_req_t req, fuse_ino_t parent, const char *name, int dir)
{
    uint32_t i = valid(parent) ? find((uint32_t)parent, name) : 0;
    if (!i) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    if (dir != !!S_ISDIR(nodes[i].mode)) {
        fuse_reply_err(req, dir ? ENOTDIR : EISDIR);
        return;
    }
    if (dir && nodes[i].first) {
        fuse_reply_err(req, ENOTEMPTY);
        return;
    }
    link_out(i);
    if (dir)
        nodes[parent].nlink--;
    nodes[i].nlink = 0;
    clock_gettime(CLOCK_REALTIME, &nodes[i].ctime);
    node_put(i);
    fuse_reply_err(req, 0);
}

static void nl_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    remove_name(req, parent, name, 0);
}

static void nl_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    remove_name(req, parent, name, 1);
}

static void nl_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    (void)fi;
    fuse_reply_err(req, ENOSYS);     /* no per-open state, like mmapfs */
}

static void nl_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    (void)parent;
    (void)name;
    (void)mode;
    (void)fi;
    fuse_reply_err(req, ENOSYS);     /* MKNOD then, like mmapfs */
}

static void nl_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    (void)fi;
    static char zeros[1 << 20];
    if (!valid(ino)) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    uint64_t end = nodes[ino].size;
    size_t n = (uint64_t)off >= end ? 0 : (size_t)(end - (uint64_t)off);
    if (n > size)
        n = size;
    if (n > sizeof(zeros))
        n = sizeof(zeros);
    fuse_reply_buf(req, zeros, n);
}

static void nl_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bufv, off_t off,
                         struct fuse_file_info *fi)
{
    (void)fi;
    size_t len = fuse_buf_size(bufv);
    if (!valid(ino)) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    if ((uint64_t)off + len > nodes[ino].size)
        nodes[ino].size = (uint64_t)off + len;
    fuse_reply_write(req, len);
}

static void nl_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    (void)ino;
    (void)datasync;
    (void)fi;
    fuse_reply_err(req, 0);
}

static void nl_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    if (!valid(ino) || !S_ISDIR(nodes[ino].mode)) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    fuse_reply_open(req, fi);
}

/* One entry of inode i; plus: with attributes and a lookup reference,
 * except for "." and ".." (dot: name, number and type only). */
static size_t add_entry(fuse_req_t req, char *buf, size_t room, const char *name,
                        uint32_t i, int dot, off_t next, int plus)
{
    struct fuse_entry_param e;
    memset(&e, 0, sizeof(e));
    e.attr.st_ino = i;
    e.attr.st_mode = nodes[i].mode & S_IFMT;
    if (!plus)
        return fuse_add_direntry(req, buf, room, name, &e.attr, next);
    if (!dot)
        fill_entry(i, &e);
    return fuse_add_direntry_plus(req, buf, room, name, &e, next);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, int plus)
{
    char *buf = malloc(size);
    size_t pos = 0, len;
    if (!buf || !valid(ino)) {
        free(buf);
        fuse_reply_err(req, buf ? ENOENT : ENOMEM);
        return;
    }
    if (off < 1) {
        len = add_entry(req, buf + pos, size - pos, ".", (uint32_t)ino, 1, 1, plus);
        if (len > size - pos)
            goto out;
        pos += len;
    }
    if (off < 2) {
        len = add_entry(req, buf + pos, size - pos, "..",
                        ino == FUSE_ROOT_ID ? FUSE_ROOT_ID : nodes[ino].parent, 1, 2, plus);
        if (len > size - pos)
            goto out;
        pos += len;
    }
    for (uint32_t i = nodes[ino].first; i; i = nodes[i].next) {
        if (nodes[i].dpos <= (uint64_t)off)
            continue;
        len = add_entry(req, buf + pos, size - pos, nodes[i].name, i, 0,
                        (off_t)nodes[i].dpos, plus);
        if (len > size - pos)
            break;
        nodes[i].nlookup += plus;
        pos += len;
    }
out:
    fuse_reply_buf(req, buf, pos);
    free(buf);
}

static void nl_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    (void)fi;
    do_readdir(req, ino, size, off, 0);
}

static void nl_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi)
{
    (void)fi;
    do_readdir(req, ino, size, off, 1);
}

static void nl_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    (void)fi;
    fuse_reply_err(req, 0);
}

static void nl_statfs(fuse_req_t req, fuse_ino_t ino)
{
    (void)ino;
    struct statvfs s;
    memset(&s, 0, sizeof(s));
    s.f_bsize = s.f_frsize = 4096;
    s.f_blocks = s.f_bfree = s.f_bavail = 1u << 30;
    s.f_files = s.f_ffree = s.f_favail = 1u << 30;
    s.f_namemax = 255;
    fuse_reply_statfs(req, &s);
}

static void nl_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    (void)ino;
    (void)name;
    (void)size;
    fuse_reply_err(req, ENODATA);
}

static void nl_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    (void)ino;
    if (size == 0)
        fuse_reply_xattr(req, 0);
    else
        fuse_reply_buf(req, NULL, 0);
}

static const struct fuse_lowlevel_ops ops = {
    .init = nl_init,           .lookup = nl_lookup,       .forget = nl_forget,
    .forget_multi = nl_forget_multi, .getattr = nl_getattr, .setattr = nl_setattr,
    .mknod = nl_mknod,         .mkdir = nl_mkdir,         .symlink = nl_symlink,
    .readlink = nl_readlink,   .unlink = nl_unlink,       .rmdir = nl_rmdir,
    .open = nl_open,           .create = nl_create,       .read = nl_read,
    .write_buf = nl_write_buf, .fsync = nl_fsync,         .opendir = nl_opendir,
    .readdir = nl_readdir, .readdirplus = nl_readdirplus, .releasedir = nl_releasedir, .statfs = nl_statfs,
    .getxattr = nl_getxattr,   .listxattr = nl_listxattr,
};

/* mmapfs's hot loop, one thread: read until SPIN_US pass with nothing,
 * then sleep in poll. */
static int serve(struct fuse_session *se)
{
    struct fuse_buf buf = { .mem = NULL };
    struct pollfd p = { .fd = fuse_session_fd(se), .events = POLLIN };
    struct timespec t0, t;
    int spun = 0, res = 0;

    if (fcntl(p.fd, F_SETFL, fcntl(p.fd, F_GETFL) | O_NONBLOCK) < 0)
        return -errno;
    while (!fuse_session_exited(se)) {
        res = fuse_session_receive_buf(se, &buf);
        if (res > 0) {
            fuse_session_process_buf(se, &buf);
            spun = 0;
            continue;
        }
        if (res == -EINTR)
            continue;
        if (res != -EAGAIN)
            break;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (!spun)
            t0 = t;
        spun = 1;
        if ((t.tv_sec - t0.tv_sec) * 1000000L + (t.tv_nsec - t0.tv_nsec) / 1000 < SPIN_US)
            continue;
        if (poll(&p, 1, -1) < 0 && errno != EINTR) {
            res = -errno;
            break;
        }
        spun = 0;
    }
    free(buf.mem);
    return res < 0 && res != -ENODEV ? res : 0;
}

int main(int argc, char **argv)
{
    char *fargv[] = { argv[0], "-o",
                      "default_permissions,subtype=nullfs,fsname=nullfs", NULL };
    struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
    struct fuse_session *se;
    int32_t zero = 0;
    int qos, res = 1;

    if (argc != 2) {
        fprintf(stderr, "usage: %s MOUNTPOINT\n", argv[0]);
        return 2;
    }
    if (!node_new(S_IFDIR | 0755, NULL)) {     /* the root, inode 1 */
        fprintf(stderr, "nullfs: out of memory\n");
        return 1;
    }
    se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
    if (!se)
        return 1;
    if (fuse_set_signal_handlers(se) == 0) {
        if (fuse_session_mount(se, argv[1]) == 0) {
            /* idle CPUs poll while mounted (as mmapfs's latency_hold while
             * requests come); released when the descriptor closes */
            qos = open("/dev/cpu_dma_latency", O_WRONLY | O_CLOEXEC);
            if (qos >= 0 && write(qos, &zero, sizeof(zero)) != sizeof(zero)) {
                close(qos);
                qos = -1;
            }
            res = serve(se) < 0;
            if (qos >= 0)
                close(qos);
            fuse_session_unmount(se);
        }
        fuse_remove_signal_handlers(se);
    }
    fuse_session_destroy(se);
    fuse_opt_free_args(&args);
    return res;
}
