/*
 * An outside program using libmmio through its public header only, built
 * by `make unit` exactly as a user would:
 *     cc -Iinclude prog.c build/libmmio.a -lpthread
 * It writes, syncs with the delayed (batched) sync, reads back and prints
 * the metrics; exits non-zero on any mismatch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include <mmapfs/mmio.h>

int main(void)
{
    char path[] = "/tmp/mmio-outside-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 1;
    close(fd);

    struct mmio *io;
    int err = mmio_open(&io, path, 1 << 20, 0, NULL);
    if (err) {
        fprintf(stderr, "mmio_open: %s\n", strerror(-err));
        unlink(path);
        return 1;
    }
    const char msg[] = "hello from outside";
    char back[sizeof(msg)];
    int bad = mmio_write_at(io, 4096, msg, sizeof(msg)) || mmio_sync_delayed(io) ||
              mmio_read_at(io, 4096, back, sizeof(back)) || memcmp(msg, back, sizeof(msg)) ||
              mmio_read_at(io, mmio_size(io), back, 1) != -ERANGE;
    struct mmio_metrics m;
    mmio_get_metrics(io, &m);
    printf("mmio outside program: size %llu, writes %llu, syncs %llu, delayed %llu\n",
           (unsigned long long)mmio_size(io), (unsigned long long)m.writes,
           (unsigned long long)m.syncs, (unsigned long long)m.sync_delayed);
    mmio_close(io);
    unlink(path);
    return bad || m.writes != 1 || m.syncs < 1 || m.sync_delayed != 1;
}
