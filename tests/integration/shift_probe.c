/*
 * shift_probe.c — the mmapfs side of tests/integration/55_collapse.sh:
 * applies fallocate operations to one file of an unmounted mmapfs image
 * through the fs core (the kernel does not forward collapse and insert
 * range to a FUSE daemon, see docs/LINUX.md), then writes the file's
 * content to OUT.
 *
 *   shift_probe IMAGE NAME OUT MODE:OFFSET:LENGTH...
 *
 * Prints one line per operation, "MODE OFFSET LENGTH OK" or the errno
 * name, then "size N": the same lines shift.py prints on ext4.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/fs.h"
#include "fs/format.h"

static const char *errno_name(int e)
{
    switch (e) {
    case 0: return "OK";
    case EINVAL: return "EINVAL";
    case EFBIG: return "EFBIG";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EISDIR: return "EISDIR";
    case ENODEV: return "ENODEV";
    case ENOSPC: return "ENOSPC";
    default: return strerror(e);
    }
}

/* Writes the whole content of file ino to path. 0 or -1. */
static int dump(struct fs *fs, uint64_t ino, uint64_t size, const char *path)
{
    FILE *out = fopen(path, "w");
    char *buf = malloc(1 << 20);
    int rc = out && buf ? 0 : -1;
    for (uint64_t off = 0; !rc && off < size;) {
        ssize_t n = fs_read(fs, ino, off, buf, 1 << 20);
        if (n <= 0 || fwrite(buf, 1, (size_t)n, out) != (size_t)n)
            rc = -1;
        off += n > 0 ? (uint64_t)n : 0;
    }
    if (out && fclose(out))
        rc = -1;
    free(buf);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s IMAGE NAME OUT MODE:OFFSET:LENGTH...\n", argv[0]);
        return 2;
    }
    struct fs *fs;
    struct fs_options o = { .path = argv[1] };
    int err = fs_mount(&fs, &o);
    if (err) {
        fprintf(stderr, "mount %s: %s\n", argv[1], strerror(-err));
        return 1;
    }
    struct fs_stat st;
    int rc = 0;
    err = fs_lookup(fs, MMAPFS_ROOT_INO, argv[2], &st);
    if (err) {
        fprintf(stderr, "lookup %s: %s\n", argv[2], strerror(-err));
        fs_unmount(fs);
        return 1;
    }
    for (int i = 4; i < argc && !rc; i++) {
        int mode;
        unsigned long long off, len;
        if (sscanf(argv[i], "%i:%llu:%llu", &mode, &off, &len) != 3) {
            fprintf(stderr, "bad operation %s\n", argv[i]);
            rc = 2;
            break;
        }
        err = fs_fallocate(fs, st.ino, mode, off, len);
        printf("%d %llu %llu %s\n", mode, off, len, errno_name(-err));
    }
    if (!rc && fs_getattr(fs, st.ino, &st) == 0) {
        printf("size %" PRIu64 "\n", st.size);
        if (dump(fs, st.ino, st.size, argv[3]))
            rc = 1;
    }
    fs_forget(fs, st.ino, 1);
    if (fs_unmount(fs))
        rc = 1;
    return rc;
}
