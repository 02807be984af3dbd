/*
 * readdir_race.c — are directory listings current while other processes
 * change and list the same directory?
 *
 *   readdir_race DIR SECONDS [WORKERS]
 *
 * WORKERS processes (default 4) each create and unlink their own files in
 * DIR/d (which must not exist) and after every change list DIR/d with
 * getdents64 through a buffer of a random 300..3300 bytes (a listing in
 * several calls; a third of the listings stop after the first call).
 * A listing that begins after a process's unlink returned must not show
 * the name, and a complete listing must show each of its present files
 * exactly once (its own names are not changed by anyone else meanwhile).
 *
 * mmapfs once declined OPENDIR (FUSE_CAP_NO_OPENDIR_SUPPORT), which also
 * turns on the kernel's listing cache (FOPEN_CACHE_DIR); with it, about
 * one listing in 300 here showed a name unlinked before it began or
 * missed a present one. ext4 and mmapfs answering OPENDIR: none.
 *
 * Exit status: 0 no stale listing, 1 stale listings (the first few and a
 * count per process are printed), 2 setup error.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LIVE 24         /* files of one process at most */

static int worker(int w, int secs)
{
    char names[LIVE][64], prefix[16], buf[4096];
    int live[LIVE] = { 0 };
    unsigned serial = 0, seed = (unsigned)w * 7919u + 1;
    long lists = 0, stale = 0;
    time_t end = time(NULL) + secs;

    snprintf(prefix, sizeof prefix, "w%d.", w);
    while (time(NULL) < end) {
        int i = (int)(rand_r(&seed) % LIVE);
        if (live[i]) {
            if (unlink(names[i]) < 0) {
                perror("unlink");
                return 2;
            }
            live[i] = 0;
        } else {
            snprintf(names[i], sizeof names[i], "d/w%d.%u", w, serial++);
            int fd = open(names[i], O_CREAT | O_EXCL | O_WRONLY, 0644);
            if (fd < 0) {
                perror("create");
                return 2;
            }
            close(fd);
            live[i] = 1;
        }
        int partial = rand_r(&seed) % 3 == 0, seen[LIVE] = { 0 }, bad = 0;
        size_t bs = 300 + rand_r(&seed) % 3000;
        int fd = open("d", O_RDONLY | O_DIRECTORY);
        if (fd < 0) {
            perror("open d");
            return 2;
        }
        for (;;) {
            long n = syscall(SYS_getdents64, fd, buf, bs);
            if (n < 0) {
                perror("getdents64");
                return 2;
            }
            if (n == 0)
                break;
            for (long off = 0; off < n;) {
                struct dirent64 *de = (struct dirent64 *)(buf + off);
                off += de->d_reclen;
                if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
                    continue;
                int own = 0;
                for (int k = 0; k < LIVE; k++)
                    if (live[k] && !strcmp(names[k] + 2, de->d_name)) {
                        own = 1;
                        seen[k]++;
                    }
                if (!own && !bad++ && stale < 3)
                    printf("process %d, listing %ld: shows d/%s, which it unlinked before\n", w,
                           lists, de->d_name);
            }
            if (partial)
                break;
        }
        close(fd);
        for (int k = 0; k < LIVE && !partial; k++)
            if (live[k] && seen[k] != 1 && !bad++ && stale < 3)
                printf("process %d, listing %ld: %s listed %d times\n", w, lists, names[k],
                       seen[k]);
        lists++;
        stale += bad > 0;
    }
    printf("process %d: %ld listings, %ld stale\n", w, lists, stale);
    return stale ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: readdir_race DIR SECONDS [WORKERS]\n");
        return 2;
    }
    int secs = atoi(argv[2]), n = argc > 3 ? atoi(argv[3]) : 4, rc = 0;
    if (chdir(argv[1]) < 0 || mkdir("d", 0755) < 0) {
        perror("chdir DIR, mkdir DIR/d (must not exist)");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int w = 0; w < n; w++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 2;
        }
        if (pid == 0)
            _exit(worker(w, secs));
    }
    for (int w = 0; w < n; w++) {
        int st;
        if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            rc = 1;
    }
    return rc;
}
