/*
 * crash_extract — the recovery side of the crash harness, without FUSE.
 *
 *   crash_extract [-p | -r] IMAGE OUTDIR MANIFEST
 *
 * Mounts IMAGE with the filesystem core (fs_mount: journal replay, orphan
 * reclaim — exactly what the mount daemon does before it serves requests),
 * copies the whole tree into OUTDIR (regular files with their contents as
 * fs_read returns them, directories, symlinks; other types as empty
 * placeholders) and writes MANIFEST: one JSON object per line per entry
 * ({"path","type","mode","nlink","size","ino","blocks512","uid","gid",
 * "mtime_ns","target","xattrs"}; xattrs: the user.* attributes, values in
 * hex), then
 * {"statfs":{...}}. With -p it then proves the filesystem takes new writes:
 * creates, writes, fsyncs, reads back and removes a probe file of 1 MiB, or
 * of half the free space when less than 2 MiB is free (a workload that
 * keeps the image nearly full: meta_reuse). With -r it mounts read-only
 * instead: the journal is replayed into memory (pinned shadows), orphans
 * stay, nothing is written. It unmounts at the end (fs_unmount must
 * succeed).
 *
 * Exit status: 0 ok; 1 mount failed; 2 the tree could not be walked or
 * copied (fs error); 3 the probe failed; 4 unmount failed; 5 usage or a
 * local (OUTDIR/MANIFEST) error. Messages on stderr.
 * Names in the manifest are JSON strings whose code points 0-255 are the
 * bytes of the name (latin-1), so any byte string round-trips.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fs/fs.h"

#define ROOT_INO 1
#define MAX_DEPTH 128
#define COPY_CHUNK (1u << 20)
#define PROBE_BYTES (1u << 20)

struct entry {
    char *name;
    struct fs_stat st;
};

struct entry_list {
    struct entry *v;
    size_t n, cap;
    int oom;                    /* an allocation failed: the list is short */
    uint64_t next_off;          /* cookie after the last entry seen */
    size_t seen;                /* entries seen by this fs_readdir call */
};

struct walk {
    struct fs *fs;
    FILE *manifest;
    unsigned char *buf;         /* COPY_CHUNK bytes */
    uint64_t entries;
};

/* ---- output -------------------------------------------------------------------- */

/* Writes s as a JSON string, bytes as code points (latin-1). */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* Writes the entry's "user." attributes as ,"xattrs":{"name":"hex value",...}
 * (names in the order fs_listxattr gives them). 0 or -errno. */
static int manifest_xattrs(FILE *f, struct fs *fs, uint64_t ino)
{
    static char names[1 << 16];
    static unsigned char value[1 << 16];
    int n = fs_listxattr(fs, ino, names, sizeof(names));
    if (n < 0)
        return n;
    fputs(",\"xattrs\":{", f);
    int first = 1;
    for (int i = 0; i < n; i += (int)strlen(names + i) + 1) {
        if (strncmp(names + i, "user.", 5))
            continue;
        int v = fs_getxattr(fs, ino, names + i, value, sizeof(value));
        if (v < 0)
            return v;
        if (!first)
            fputc(',', f);
        first = 0;
        json_str(f, names + i);
        fputs(":\"", f);
        for (int j = 0; j < v; j++)
            fprintf(f, "%02x", value[j]);
        fputc('"', f);
    }
    fputc('}', f);
    return 0;
}

/* One manifest line for the entry at path (relative, "" = root): its type,
 * mode, owner, mtime, sizes, symlink target and user.* attributes. 0 or
 * -errno (the attributes could not be read). */
static int manifest_line(FILE *f, struct fs *fs, const char *path, const struct fs_stat *st,
                         const char *target)
{
    char type = S_ISREG(st->mode) ? 'f' : S_ISDIR(st->mode) ? 'd' :
                S_ISLNK(st->mode) ? 'l' : 'o';
    fputs("{\"path\":", f);
    json_str(f, path);
    fprintf(f, ",\"type\":\"%c\",\"mode\":%u,\"nlink\":%u,\"size\":%llu,\"ino\":%llu,"
            "\"blocks512\":%llu,\"uid\":%u,\"gid\":%u,\"mtime_ns\":%lld", type, st->mode,
            st->nlink, (unsigned long long)st->size, (unsigned long long)st->ino,
            (unsigned long long)st->blocks512, st->uid, st->gid,
            (long long)st->mtime.tv_sec * 1000000000LL + st->mtime.tv_nsec);
    if (target) {
        fputs(",\"target\":", f);
        json_str(f, target);
    }
    int err = manifest_xattrs(f, fs, st->ino);
    fputs("}\n", f);
    return err;
}

/* ---- directory listing ------------------------------------------------------------ */

/* fs_readdir callback: collects every entry except "." and "..". */
static int collect(void *ctx, const char *name, const struct fs_stat *st, uint64_t next_off)
{
    struct entry_list *l = ctx;
    l->next_off = next_off;
    l->seen++;
    if (!strcmp(name, ".") || !strcmp(name, ".."))
        return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct entry *v = realloc(l->v, cap * sizeof(*v));
        if (!v) {
            l->oom = 1;
            return 1;       /* stop; reported by list_dir */
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n].name = strdup(name);
    if (!l->v[l->n].name) {
        l->oom = 1;
        return 1;
    }
    l->v[l->n].st = *st;
    l->n++;
    return 0;
}

/* Frees a listing, dropping the lookup references fs_readdir took. */
static void list_free(struct fs *fs, struct entry_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        fs_forget(fs, l->v[i].st.ino, 1);
        free(l->v[i].name);
    }
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* Lists directory ino completely (readdir plus). The callback takes every
 * entry, but fs_readdir stops early on an error after some entries (the
 * next call, from the cookie reached, reports it), so calls repeat until
 * one sees nothing. */
static int list_dir(struct fs *fs, uint64_t ino, struct entry_list *l)
{
    l->next_off = 0;
    do {
        l->seen = 0;
        int err = fs_readdir(fs, ino, l->next_off, 1, collect, l);
        if (err < 0)
            return err;
        if (l->oom)
            return -ENOMEM;
    } while (l->seen);
    return 0;
}

/* ---- copying ---------------------------------------------------------------------- */

/* Copies regular file ino (size bytes) into the new local file out. */
static int copy_file(struct walk *w, uint64_t ino, uint64_t size, const char *out)
{
    int fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    uint64_t off = 0;
    int err = 0;

    if (fd < 0) {
        fprintf(stderr, "crash_extract: %s: %s\n", out, strerror(errno));
        return -1000;
    }
    for (;;) {
        ssize_t n = fs_read(w->fs, ino, off, w->buf, COPY_CHUNK);
        if (n < 0) {
            err = (int)n;
            fprintf(stderr, "crash_extract: read inode %llu at %llu: %s\n",
                    (unsigned long long)ino, (unsigned long long)off, strerror(-err));
            break;
        }
        if (n == 0)
            break;
        if (write(fd, w->buf, (size_t)n) != n) {
            fprintf(stderr, "crash_extract: %s: %s\n", out, strerror(errno));
            err = -1000;
            break;
        }
        off += (uint64_t)n;
    }
    if (!err && off != size) {
        fprintf(stderr, "crash_extract: inode %llu: read %llu bytes, size is %llu\n",
                (unsigned long long)ino, (unsigned long long)off, (unsigned long long)size);
        err = -EIO;
    }
    close(fd);
    return err;
}

/* Walks directory ino at relative path rel (local copy at out), depth d.
 * 0, a -errno from the fs, or -1000 for a local error. */
static int walk_dir(struct walk *w, uint64_t ino, const char *rel, const char *out, int d)
{
    struct entry_list l = {0};
    char crel[PATH_MAX], cout[PATH_MAX], target[PATH_MAX];
    int err;

    if (d > MAX_DEPTH) {
        fprintf(stderr, "crash_extract: %s: deeper than %d levels\n", rel, MAX_DEPTH);
        return -ELOOP;
    }
    err = list_dir(w->fs, ino, &l);
    if (err) {
        fprintf(stderr, "crash_extract: readdir %s (inode %llu): %s\n", *rel ? rel : "/",
                (unsigned long long)ino, strerror(-err));
        goto out;
    }
    for (size_t i = 0; i < l.n && !err; i++) {
        const struct fs_stat *st = &l.v[i].st;
        const char *tgt = NULL;
        snprintf(crel, sizeof(crel), "%s%s%s", rel, *rel ? "/" : "", l.v[i].name);
        snprintf(cout, sizeof(cout), "%s/%s", out, l.v[i].name);
        w->entries++;
        if (S_ISLNK(st->mode)) {
            int n = fs_readlink(w->fs, st->ino, target, sizeof(target) - 1);
            if (n < 0) {
                err = n;
                fprintf(stderr, "crash_extract: readlink %s: %s\n", crel, strerror(-err));
                break;
            }
            target[n < (int)sizeof(target) - 1 ? n : (int)sizeof(target) - 1] = 0;
            tgt = target;
        }
        err = manifest_line(w->manifest, w->fs, crel, st, tgt);
        if (err) {
            fprintf(stderr, "crash_extract: attributes of %s: %s\n", crel, strerror(-err));
            break;
        }
        if (S_ISDIR(st->mode)) {
            if (mkdir(cout, 0755)) {
                err = -1000;
                break;
            }
            err = walk_dir(w, st->ino, crel, cout, d + 1);
        } else if (S_ISREG(st->mode)) {
            err = copy_file(w, st->ino, st->size, cout);
        } else if (S_ISLNK(st->mode)) {
            if (symlink(tgt, cout))
                err = -1000;
        } else {
            int fd = open(cout, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
            if (fd < 0)
                err = -1000;
            else
                close(fd);
        }
    }
out:
    list_free(w->fs, &l);
    return err;
}

/* ---- new writes ------------------------------------------------------------------- */

/* Creates, writes, fsyncs, reads back and unlinks a probe file of 'bytes'
 * (at most PROBE_BYTES) in the root. 0 or -errno. */
static int probe(struct fs *fs, unsigned char *buf, size_t bytes)
{
    static const char name[] = ".crash_probe";
    struct fs_cred cred = { 0, 0 };
    struct fs_stat st;
    ssize_t n;
    int err;

    err = fs_mknod(fs, ROOT_INO, name, S_IFREG | 0644, 0, &cred, &st);
    if (err)
        return err;
    for (size_t i = 0; i < bytes; i++)
        buf[i] = (unsigned char)(i * 7 + 3);
    n = fs_write(fs, st.ino, 0, buf, bytes);
    if (n != (ssize_t)bytes)
        err = n < 0 ? (int)n : -EIO;
    if (!err)
        err = fs_fsync(fs, st.ino, 0);
    if (!err) {
        memset(buf, 0, bytes);
        n = fs_read(fs, st.ino, 0, buf, bytes);
        if (n != (ssize_t)bytes)
            err = n < 0 ? (int)n : -EIO;
        for (size_t i = 0; !err && i < bytes; i++)
            if (buf[i] != (unsigned char)(i * 7 + 3))
                err = -EIO;
    }
    fs_forget(fs, st.ino, 1);
    int uerr = fs_unlink(fs, ROOT_INO, name);
    if (!err)
        err = uerr;
    if (!err)
        err = fs_fsync(fs, ROOT_INO, 0);
    return err;
}

/* ---- main --------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    struct fs_options fo = {0};
    struct statvfs sv;
    struct walk w = {0};
    struct fs_stat root;
    int do_probe = 0, ret = 0, err;

    if (argc > 1 && !strcmp(argv[1], "-p")) {
        do_probe = 1;
        argv++;
        argc--;
    } else if (argc > 1 && !strcmp(argv[1], "-r")) {
        fo.read_only = 1;
        argv++;
        argc--;
    }
    if (argc != 4) {
        fprintf(stderr, "usage: crash_extract [-p | -r] IMAGE OUTDIR MANIFEST\n");
        return 5;
    }
    w.buf = malloc(COPY_CHUNK > PROBE_BYTES ? COPY_CHUNK : PROBE_BYTES);
    w.manifest = fopen(argv[3], "w");
    if (!w.buf || !w.manifest || (mkdir(argv[2], 0755) && errno != EEXIST)) {
        fprintf(stderr, "crash_extract: %s / %s: %s\n", argv[2], argv[3], strerror(errno));
        return 5;
    }
    fo.path = argv[1];
    err = fs_mount(&w.fs, &fo);
    if (err) {
        fprintf(stderr, "crash_extract: mount %s: %s\n", argv[1], strerror(-err));
        return 1;
    }
    err = fs_getattr(w.fs, ROOT_INO, &root);
    if (!err) {
        err = manifest_line(w.manifest, w.fs, "", &root, NULL);
        if (!err)
            err = walk_dir(&w, ROOT_INO, "", argv[2], 0);
    }
    if (err) {
        ret = err == -1000 ? 5 : 2;
        if (err == -1000)
            fprintf(stderr, "crash_extract: local copy failed: %s\n", strerror(errno));
    }
    int have_sv = !ret && !fs_statfs(w.fs, &sv);
    if (have_sv)
        fprintf(w.manifest, "{\"statfs\":{\"bsize\":%lu,\"blocks\":%llu,\"bfree\":%llu,"
                "\"files\":%llu,\"ffree\":%llu}}\n", sv.f_frsize,
                (unsigned long long)sv.f_blocks, (unsigned long long)sv.f_bfree,
                (unsigned long long)sv.f_files, (unsigned long long)sv.f_ffree);
    if (!ret && do_probe) {
        size_t bytes = PROBE_BYTES;
        uint64_t avail = have_sv ? (uint64_t)sv.f_bavail * sv.f_frsize : 0;
        if (have_sv && avail < 2ull * PROBE_BYTES)
            bytes = avail / 2 > 4096 ? (size_t)(avail / 2) & ~(size_t)4095 : 4096;
        err = probe(w.fs, w.buf, bytes);
        if (err) {
            fprintf(stderr, "crash_extract: new writes fail after recovery: %s\n", strerror(-err));
            ret = 3;
        }
    }
    err = fs_unmount(w.fs);
    if (err) {
        fprintf(stderr, "crash_extract: unmount: %s\n", strerror(-err));
        if (!ret)
            ret = 4;
    }
    if (fclose(w.manifest) && !ret)
        ret = 5;
    free(w.buf);
    return ret;
}
