/*
 * mmio — memory-mapped I/O engine (libmmio).
 *
 * A file-like value for I/O at byte offsets of a file or block device,
 * through one shared memory mapping (or pread/pwrite), thread safe, with
 * metrics and delayed batched syncs (group commit). C version of the
 * MMapIO / SeekableAsyncFile design of the Rust crate seekable-async-file.
 *
 * Every int function returns 0 or a negative errno.
 * Link: -Iinclude build/libmmio.a -lpthread
 * Full contract: docs/ENGINE.md.
 */
#ifndef MMAPFS_MMIO_H
#define MMAPFS_MMIO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct mmio;

enum mmio_backend { MMIO_BACKEND_MMAP = 0, MMIO_BACKEND_PREAD = 1 };

struct mmio_config {
    uint64_t sync_delay_us;      /* batching window of the delayed-sync loop */
    enum mmio_backend backend;   /* MMAP by default; PREAD uses pread/pwrite/fdatasync */
};

struct mmio_metrics {            /* totals since open */
    uint64_t sync_background_loops, syncs, sync_delayed,
             sync_longest_delay_us, sync_shortest_delay_us, sync_us,
             write_bytes, writes, write_us,
             read_bytes, reads, read_us;
};

struct mmio_write { uint64_t off; const void *data; size_t len; };

int  mmio_open(struct mmio **out, const char *path, uint64_t size, int flags,
               const struct mmio_config *cfg);          /* cfg may be NULL */
void mmio_close(struct mmio *io);                        /* syncs, stops the loop, unmaps */
uint64_t mmio_size(const struct mmio *io);
int  mmio_read_at(struct mmio *io, uint64_t off, void *buf, size_t len);
int  mmio_write_at(struct mmio *io, uint64_t off, const void *buf, size_t len);
const void *mmio_ptr(struct mmio *io, uint64_t off);     /* NULL if out of range or PREAD backend */
void *mmio_mut_ptr(struct mmio *io, uint64_t off);
int  mmio_sync(struct mmio *io);                         /* flush everything now */
int  mmio_sync_delayed(struct mmio *io);                 /* wait for a batched sync that started after this call */
int  mmio_write_delayed_sync(struct mmio *io, const struct mmio_write *w, size_t n);
void mmio_get_metrics(const struct mmio *io, struct mmio_metrics *out);

#ifdef __cplusplus
}
#endif
#endif
