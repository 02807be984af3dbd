/*
 * handles.c — file handles on one filesystem, for 49_handles.sh.
 *
 *   handles DIR
 *   handles --save FILE HANDLE_FILE    (writes FILE's handle)
 *   handles --open DIR HANDLE_FILE     (opens it, prints the content)
 *
 * DIR is a directory on the filesystem under test (a fresh mount). The
 * program makes DIR/d/f (a file), DIR/d/sub (a directory), takes their
 * handles with name_to_handle_at, and then checks, printing one line per
 * check ("ok ..." or "FAIL ..."):
 *   - after all descriptors are closed and the caches dropped
 *     (echo 3 > /proc/sys/vm/drop_caches), open_by_handle_at of the file
 *     opens it and reads its content; of d, openat(dfd, "f") works; of sub,
 *     openat(subfd, "..") is d (the parent, found through "..");
 *   - a handle whose inode number is not in use (the file's handle with its
 *     number changed to a huge one) gives ESTALE;
 *   - after unlink, the file's handle gives ESTALE; then files are created
 *     in d until one gets the old inode number: the old handle gives ESTALE
 *     with the new inode cached, and again after the caches are dropped.
 * --save and --open carry a handle across an unmount and mount of DIR's
 * filesystem. Exit status: 0 if every check passed, 1 if one failed, 2 on a setup error.
 * The handle layouts known for the "huge number" check are FUSE's (types
 * 0x81/0x82: nodeid high, nodeid low, generation) and ext4's (types 1/2:
 * inode, generation); another layout skips that check.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONTENT "content reached through a file handle\n"
#define REUSE_TRIES 2000

static int failures;

static void result(int ok, const char *what, int err)
{
    if (ok)
        printf("ok   %s\n", what);
    else
        printf("FAIL %s (%s)\n", what, err ? strerror(err) : "wrong result");
    if (!ok)
        failures++;
}

static void die(const char *what)
{
    printf("SETUP %s: %s\n", what, strerror(errno));
    exit(2);
}

static struct file_handle *handle_of(const char *path)
{
    struct file_handle *h = malloc(sizeof(*h) + MAX_HANDLE_SZ);
    int mount_id;

    if (!h)
        die("malloc");
    h->handle_bytes = MAX_HANDLE_SZ;
    if (name_to_handle_at(AT_FDCWD, path, h, &mount_id, 0) != 0)
        die(path);
    return h;
}

static void drop_caches(void)
{
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
    sync();
    if (fd < 0 || write(fd, "3", 1) != 1)
        die("drop_caches");
    close(fd);
}

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) || close(fd) != 0)
        die(path);
}

static ino_t ino_of(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        die(path);
    return st.st_ino;
}

/* open_by_handle_at; -errno on failure. */
static int open_handle(int mount_fd, struct file_handle *h, int flags)
{
    int fd = open_by_handle_at(mount_fd, h, flags);
    return fd >= 0 ? fd : -errno;
}

/* The same handle with its inode number replaced by a huge one; 0 if the
 * layout is unknown. */
static int with_unused_number(const struct file_handle *h, struct file_handle *out)
{
    uint32_t w[3];

    memcpy(out, h, sizeof(*h) + h->handle_bytes);
    if ((h->handle_type == 0x81 || h->handle_type == 0x82) && h->handle_bytes >= 12) {
        memcpy(w, h->f_handle, 12);
        w[0] = 0;                       /* nodeid high */
        w[1] = 0x7ffffff0u;             /* nodeid low */
        memcpy(out->f_handle, w, 12);
        return 1;
    }
    if ((h->handle_type == 1 || h->handle_type == 2) && h->handle_bytes >= 8) {
        memcpy(w, h->f_handle, 8);
        w[0] = 0x7ffffff0u;             /* inode */
        memcpy(out->f_handle, w, 8);
        return 1;
    }
    return 0;
}

/* --save / --open: a handle kept in a file. */
static int saved_handle(const char *mode, const char *path, const char *file)
{
    struct file_handle *h;
    char buf[256];

    if (strcmp(mode, "--save") == 0) {
        h = handle_of(path);
        FILE *out = fopen(file, "wb");
        if (!out || fwrite(h, sizeof(*h) + h->handle_bytes, 1, out) != 1 || fclose(out))
            die(file);
        free(h);
        return 0;
    }
    h = malloc(sizeof(*h) + MAX_HANDLE_SZ);
    FILE *in = fopen(file, "rb");
    if (!h || !in || fread(h, sizeof(*h), 1, in) != 1 || h->handle_bytes > MAX_HANDLE_SZ ||
        fread(h->f_handle, h->handle_bytes, 1, in) != 1)
        die(file);
    fclose(in);
    int mount_fd = open(path, O_RDONLY | O_DIRECTORY);
    if (mount_fd < 0)
        die(path);
    int fd = open_by_handle_at(mount_fd, h, O_RDONLY);
    if (fd < 0) {
        printf("open_by_handle_at: %s\n", strerror(errno));
        return 1;
    }
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n > 0)
        fwrite(buf, 1, (size_t)n, stdout);
    close(fd);
    close(mount_fd);
    free(h);
    return n > 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    char d[4096], f[4200], sub[4200], path[4300], buf[256];
    struct stat st;

    if (argc == 4 && (strcmp(argv[1], "--save") == 0 || strcmp(argv[1], "--open") == 0))
        return saved_handle(argv[1], argv[2], argv[3]);
    if (argc != 2) {
        fprintf(stderr, "usage: handles DIR | --save FILE HANDLE_FILE | --open DIR HANDLE_FILE\n");
        return 2;
    }
    snprintf(d, sizeof(d), "%s/d", argv[1]);
    snprintf(f, sizeof(f), "%s/f", d);
    snprintf(sub, sizeof(sub), "%s/sub", d);
    if (mkdir(d, 0755) != 0 || mkdir(sub, 0755) != 0)
        die("mkdir");
    write_file(f, CONTENT);
    ino_t d_ino = ino_of(d), f_ino = ino_of(f);
    struct file_handle *hf = handle_of(f), *hd = handle_of(d), *hs = handle_of(sub);
    printf("info handle type %#x, %u bytes, file inode %llu\n", hf->handle_type,
           hf->handle_bytes, (unsigned long long)f_ino);
    int mount_fd = open(argv[1], O_RDONLY | O_DIRECTORY);
    if (mount_fd < 0)
        die(argv[1]);

    /* ---- handles of inodes the kernel no longer caches ---- */
    drop_caches();
    int fd = open_handle(mount_fd, hf, O_RDONLY);
    result(fd >= 0, "file handle opens after drop_caches", fd < 0 ? -fd : 0);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        result(n == (ssize_t)strlen(CONTENT) && memcmp(buf, CONTENT, (size_t)n) == 0,
               "read through the file handle gives the content", n < 0 ? errno : 0);
        close(fd);
    }
    drop_caches();
    fd = open_handle(mount_fd, hd, O_RDONLY | O_DIRECTORY);
    result(fd >= 0, "directory handle opens after drop_caches", fd < 0 ? -fd : 0);
    if (fd >= 0) {
        int ffd = openat(fd, "f", O_RDONLY);
        result(ffd >= 0, "openat(directory from handle, \"f\")", ffd < 0 ? errno : 0);
        if (ffd >= 0)
            close(ffd);
        close(fd);
    }
    drop_caches();
    fd = open_handle(mount_fd, hs, O_RDONLY | O_DIRECTORY);
    result(fd >= 0, "subdirectory handle opens after drop_caches", fd < 0 ? -fd : 0);
    if (fd >= 0) {
        int r = fstatat(fd, "..", &st, 0);
        result(r == 0 && st.st_ino == d_ino,
               "\"..\" of the subdirectory from its handle is its parent", r ? errno : 0);
        close(fd);
    }

    /* ---- numbers not in use, deleted and reused inodes ---- */
    struct file_handle *bad = malloc(sizeof(*bad) + MAX_HANDLE_SZ);
    if (!bad)
        die("malloc");
    if (with_unused_number(hf, bad)) {
        fd = open_handle(mount_fd, bad, O_RDONLY);
        result(fd == -ESTALE, "handle of an inode number not in use: ESTALE",
               fd >= 0 ? 0 : -fd);
        if (fd >= 0)
            close(fd);
    } else {
        printf("skip handle of an inode number not in use (layout %#x unknown)\n",
               hf->handle_type);
    }
    if (unlink(f) != 0)
        die("unlink");
    drop_caches();
    fd = open_handle(mount_fd, hf, O_RDONLY);
    result(fd == -ESTALE, "handle of a deleted file: ESTALE", fd >= 0 ? 0 : -fd);
    if (fd >= 0)
        close(fd);

    int reused = -1, made;
    for (made = 0; made < REUSE_TRIES && reused < 0; made++) {
        snprintf(path, sizeof(path), "%s/n%d", d, made);
        write_file(path, "new file\n");
        if (ino_of(path) == f_ino)
            reused = made;
    }
    if (reused < 0) {
        printf("skip inode %llu not reused after %d creations\n",
               (unsigned long long)f_ino, REUSE_TRIES);
    } else {
        printf("info inode %llu reused by creation %d\n", (unsigned long long)f_ino,
               reused + 1);
        snprintf(path, sizeof(path), "%s/n%d", d, reused);
        int keep = open(path, O_RDONLY);          /* the new inode stays cached */
        fd = open_handle(mount_fd, hf, O_RDONLY);
        result(fd == -ESTALE, "old handle of a reused inode (cached): ESTALE",
               fd >= 0 ? 0 : -fd);
        if (fd >= 0)
            close(fd);
        if (keep >= 0)
            close(keep);
        drop_caches();
        fd = open_handle(mount_fd, hf, O_RDONLY);
        result(fd == -ESTALE, "old handle of a reused inode (after drop_caches): ESTALE",
               fd >= 0 ? 0 : -fd);
        if (fd >= 0)
            close(fd);
        struct file_handle *hn = handle_of(path);
        drop_caches();
        fd = open_handle(mount_fd, hn, O_RDONLY);
        result(fd >= 0, "new handle of the reused inode opens", fd < 0 ? -fd : 0);
        if (fd >= 0)
            close(fd);
        free(hn);
    }
    for (int i = 0; i < made; i++) {
        snprintf(path, sizeof(path), "%s/n%d", d, i);
        unlink(path);
    }
    close(mount_fd);
    free(bad);
    free(hf);
    free(hd);
    free(hs);
    printf("%d failed\n", failures);
    return failures ? 1 : 0;
}
