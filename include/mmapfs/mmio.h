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
 *
 * Units: offsets, lengths and sizes are bytes; times are microseconds.
 * Thread safety: every function may be called from any thread at the same
 * time on one engine, except mmio_close, which must be the last call (no
 * other call may be running or start on that engine). Writes to
 * overlapping bytes from different threads at the same time leave those
 * bytes in an unspecified mix; the engine does not order them.
 * An engine must not be used across fork() (the child has no sync thread).
 *
 * SIGBUS: the MMAP backend installs a process-wide SIGBUS handler (on
 * every mmio_open, if it is not already the current one). Faults in the
 * engine's own copies (file truncated under it, device I/O error, disk
 * full under a sparse file) become -EIO; every other SIGBUS is passed to
 * the handler that was installed before, or kills the process as usual.
 * An application that installs its own SIGBUS handler afterwards must
 * chain to the previous one.
 */
#ifndef MMAPFS_MMIO_H
#define MMAPFS_MMIO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An open engine. Opaque; created by mmio_open, freed by mmio_close. */
struct mmio;

/* How the engine reaches the file.
 * MMAP:  one MAP_SHARED mapping of [0, size); reads are memcpy from it,
 *        writes pwrite into its page cache (docs/ENGINE.md), pointers
 *        available, durability by fdatasync.
 * PREAD: pread/pwrite (whole ranges: short transfers and EINTR retried)
 *        and fdatasync; no pointers; no SIGBUS handler needed. */
enum mmio_backend { MMIO_BACKEND_MMAP = 0, MMIO_BACKEND_PREAD = 1 };

/* Options of mmio_open; cfg == NULL means { 0, MMIO_BACKEND_MMAP, 0 }. */
struct mmio_config {
    /* Batching window of the delayed-sync loop, in microseconds: the
     * most a delayed sync may be held back to wait for other callers to
     * share it. The loop waits only when there is evidence of company
     * (several threads called lately and recent syncs served several
     * callers at once), and then at most min(window, the average sync
     * time), ending as soon as the expected callers are pending. A thread
     * that syncs alone never waits. 0 (the default): never wait; callers
     * still share syncs by riding the next one while a sync is in flight.
     * docs/ENGINE.md, "Waiting for company". */
    uint64_t sync_delay_us;      /* batching window of the delayed-sync loop */
    enum mmio_backend backend;   /* MMAP by default; PREAD uses pread/pwrite/fdatasync */
    /* Nonzero: read-only. The file is opened O_RDONLY (so read-only media,
     * immutable files and read-only block devices work) and mapped
     * PROT_READ; a missing file is -ENOENT (never created) and a size
     * beyond a regular file's is -EROFS (nothing is extended). Writes
     * (mmio_write_at, mmio_write_delayed_sync) return -EROFS,
     * mmio_mut_ptr returns NULL, and syncs return 0 without a system call:
     * the engine never writes. A read that faults in the mapping is
     * retried with pread (reading a hole of a file on a full tmpfs
     * through a mapping needs a new page; pread does not). Used by
     * fsck.mmapfs -n. */
    int read_only;
};

/* Totals since open. Each field is an independent relaxed atomic counter:
 * a snapshot is not one instant across fields. Only successful reads and
 * writes of at least one byte are counted.
 *   sync_background_loops  iterations of the delayed-sync loop (each woke
 *                          for pending requests and did one sync)
 *   syncs                  flushes performed (mmio_sync, loop, close); a
 *                          flush is one fdatasync and counts once
 *   sync_delayed           delayed-sync requests: calls of
 *                          mmio_sync_delayed / mmio_write_delayed_sync
 *   sync_longest_delay_us  sum over loop syncs of the wait of the batch's
 *                          earliest request before its sync began
 *   sync_shortest_delay_us same for the batch's latest request
 *   sync_us                microseconds spent in flushes
 *   writes, write_bytes, write_us   engine writes (after merging, for
 *                          mmio_write_delayed_sync), bytes, microseconds
 *   reads, read_bytes, read_us      engine reads, bytes, microseconds
 *   sync_company_waits     loop syncs held back to wait for company (see
 *                          mmio_config); the other sync_background_loops
 *                          went straight through
 *   sync_company_wait_us   microseconds the loop spent in those waits
 *   sync_company_joined    delayed-sync requests that arrived during those
 *                          waits (the company that came)
 *   discards, discard_bytes, discard_us   successful mmio_discard calls,
 *                          bytes given back, microseconds spent */
struct mmio_metrics {            /* totals since open */
    uint64_t sync_background_loops, syncs, sync_delayed,
             sync_longest_delay_us, sync_shortest_delay_us, sync_us,
             write_bytes, writes, write_us,
             read_bytes, reads, read_us,
             sync_company_waits, sync_company_wait_us, sync_company_joined,
             discards, discard_bytes, discard_us;
};

/* One write of a batch: len bytes from data to offset off. data is
 * borrowed for the duration of the call only. */
struct mmio_write { uint64_t off; const void *data; size_t len; };

/* Opens (creating if missing, mode 0644 minus umask) path read-write and
 * returns a new engine in *out (NULL on error). An existing file is never
 * truncated. flags are extra open(2) flags OR'd in (O_DIRECT, O_DSYNC,
 * O_NOATIME, ...); access mode, O_CREAT, O_EXCL, O_TRUNC, O_APPEND,
 * O_DIRECTORY and O_PATH are refused. O_CLOEXEC is always added.
 *
 * size: bytes to use, [0, size).
 *   0           the file's st_size, or for a block device its size
 *               (BLKGETSIZE64); an empty file gives -EINVAL.
 *   < the file  only the beginning of the file is used; nothing shrinks.
 *   > a regular file  the file is extended sparsely with ftruncate (holes
 *               read as zeros; blocks are allocated on first write, so a
 *               full disk shows up later as -EIO / -ENOSPC on writes). The
 *               extension stays even if a later step of mmio_open fails.
 *   > a block device  -ENOSPC (a device cannot grow).
 * A file that mmio_open created is removed again if it fails.
 *
 * O_DIRECT: the MMAP backend's mapping always goes through the page
 * cache, so O_DIRECT only affects the PREAD backend. There, offsets and
 * lengths must be multiples of the device's logical block size (else the
 * kernel's -EINVAL is returned); buffers need not be aligned: an unaligned
 * buffer is copied through an internal aligned bounce buffer. O_DSYNC
 * makes each PREAD write synchronous; it has no effect on stores into the
 * mapping. Durability always requires mmio_sync or mmio_sync_delayed.
 *
 * Starts the delayed-sync thread. With the MMAP backend installs the
 * SIGBUS handler (see above). cfg is copied; it may be NULL.
 * Errors: -EINVAL (NULL out/path, bad flags or backend, empty file with
 * size 0, neither regular file nor block device), -ENOSPC, -EFBIG (size
 * beyond off_t/size_t), -ENOMEM, any -errno of open, fstat, ioctl,
 * ftruncate, mmap, pthread_create. */
int  mmio_open(struct mmio **out, const char *path, uint64_t size, int flags,
               const struct mmio_config *cfg);          /* cfg may be NULL */

/* Says what an error of mmio_open means for the user: strerror, except
 * for the size of the image: -ENOMEM (the image is mapped whole, and the
 * address space or a memory limit refuses the mapping) and -EFBIG. */
const char *mmio_open_strerror(int err);

/* Serves every pending delayed sync, stops the sync thread, flushes
 * (result ignored: call mmio_sync first to see it), unmaps, closes the
 * file and frees io. Must be the last call on io; NULL is a no-op.
 * Pointers from mmio_ptr/mmio_mut_ptr become invalid. */
void mmio_close(struct mmio *io);                        /* syncs, stops the loop, unmaps */

/* The usable size in bytes (as decided by mmio_open); 0 for NULL. */
uint64_t mmio_size(const struct mmio *io);

/* Copies len bytes at off into buf. The range must lie within [0, size):
 * off + len <= size, computed without overflow; len 0 is always fine
 * where off <= size. Out of range: -ERANGE, nothing touched.
 * Errors: -EINVAL (NULL io, or NULL buf with len > 0), -ERANGE, -EIO (the
 * page could not be read: file truncated under the engine, device error;
 * buf may be partly written), PREAD: any -errno of pread. */
int  mmio_read_at(struct mmio *io, uint64_t off, void *buf, size_t len);

/* mmio_read_at for bytes read once, not again soon: with the mmap backend
 * too it copies with pread(2), from the page cache, without mapping the
 * pages into the process. A first touch of a page through the mapping
 * costs a page fault (pages written with mmio_write_at are in the page
 * cache but not mapped); a pread costs a system call. Same arguments,
 * range rules, errors and metrics as mmio_read_at. */
int  mmio_read_once(struct mmio *io, uint64_t off, void *buf, size_t len);

/* Copies len bytes from buf to off. Not durable until a sync. Same range
 * rules as mmio_read_at. Errors: -EINVAL, -ERANGE, -EIO (sticky sync
 * failure, or the page could not be written: truncated file, device
 * error, disk full under a sparse file; part of the range may have been
 * written), PREAD: any -errno of pwrite (e.g. -ENOSPC). */
int  mmio_write_at(struct mmio *io, uint64_t off, const void *buf, size_t len);

/* mmio_write_at for bytes whose durability no caller waits for (a journal
 * checkpoint: the log already holds them durably): the next sync makes
 * them durable like any other, but they do not make mmio_unsynced 1. */
int  mmio_write_lazy(struct mmio *io, uint64_t off, const void *buf, size_t len);

/* A pointer to byte off of the mapping, valid until mmio_close; NULL if
 * off >= size or with the PREAD backend. The caller may access
 * [ptr, ptr + size - off). Raw pointers are the caller's responsibility:
 * there is NO SIGBUS protection on accesses through them (a truncated
 * file or I/O error kills the process), no bounds checks and no metrics.
 * Stores through mmio_mut_ptr are not durable until a sync, and are not
 * refused after a sticky sync failure. */
const void *mmio_ptr(struct mmio *io, uint64_t off);     /* NULL if out of range or PREAD backend */
void *mmio_mut_ptr(struct mmio *io, uint64_t off);       /* also NULL if read_only */

/* Runs fn(arg) with the engine's SIGBUS guard armed over the whole mapping
 * (MMAP backend; PREAD: just calls fn), for callers that read through
 * mmio_ptr pointers: a fault on the mapping inside fn (the file truncated
 * under it, a device error on a page-in) abandons fn at that point — the
 * rest of fn does not run, nothing it allocated or locked is released —
 * and this returns -EIO; else 0 once fn returned. Faults outside the
 * mapping are not caught. Meant for a program that stops after the error
 * (fsck.mmapfs), not for a daemon. */
int mmio_guarded_call(struct mmio *io, void (*fn)(void *arg), void *arg);

/* Makes everything written so far durable, now, in the calling thread:
 * fdatasync of the file, for both backends (it writes back the pages
 * dirtied through the mapping too, commits sparse-file allocation and
 * flushes the device's write cache). A failure is STICKY: this call returns the failure's
 * -errno (usually -EIO, maybe -ENOSPC), and from then on every mmio_sync,
 * mmio_sync_delayed, mmio_write_at and mmio_write_delayed_sync returns
 * -EIO until mmio_close (after a failed writeback Linux may mark the pages
 * clean, so a retried sync could falsely succeed). Reads still work.
 * Errors: -EINVAL (NULL io), -EIO, -errno of fdatasync. */
int  mmio_sync(struct mmio *io);                         /* flush everything now */

/* Waits until a sync that BEGAN AFTER this call has completed, so that
 * everything written before the call is durable; concurrent callers share
 * syncs (group commit, docs/ENGINE.md). A thread that syncs alone pays
 * about one sync (two if a sync is in flight when it calls), whatever the
 * window; with company, the wait for it adds at most min(sync_delay_us,
 * average sync time). Errors: -EINVAL (NULL io), -EIO (that sync failed, or a
 * sync failed before: sticky). */
int  mmio_sync_delayed(struct mmio *io);                 /* wait for a batched sync that started after this call */

/* 1 if something written (or discarded) may not be durable yet: a write
 * (other than mmio_write_lazy) or discard since the start of the latest
 * successful sync, or a pointer
 * handed out by mmio_mut_ptr (the engine cannot see its stores; from then
 * on this is always 1). 0 when every write that completed before the call
 * is durable, so a caller can skip a sync it would only need for them. A
 * new engine starts at 1: the page cache may hold dirty pages of an
 * earlier writer of the file. 0 for a read-only engine or NULL. */
int  mmio_unsynced(struct mmio *io);

/* Applies n writes as if in order (later ones win where they overlap),
 * then waits like mmio_sync_delayed. The writes are first merged into the
 * minimal set (overlapping and adjacent ones joined, later data winning),
 * so each byte is copied once. All writes are checked first: a bad one
 * (-EINVAL: NULL data with len > 0; -ERANGE: out of range) writes
 * nothing. w may be NULL if n == 0 (then it is just a delayed sync).
 * Errors: those checks, -ENOMEM, and those of mmio_write_at (after which
 * a part of the batch may have been written) and mmio_sync_delayed. */
int  mmio_write_delayed_sync(struct mmio *io, const struct mmio_write *w, size_t n);

/* Gives the bytes [off, off+len) back to the storage: they are unused
 * (a freed block) and their content no longer matters. A regular file
 * gets a hole there (fallocate PUNCH_HOLE|KEEP_SIZE: the file keeps its
 * size, the range reads as zeros afterwards, the host filesystem frees the
 * space); a block device gets BLKDISCARD (what the range reads afterwards
 * depends on the device: zeros or the old bytes). Pages of the range in
 * the mapping are dropped; pointers into it stay valid. Partial blocks at
 * the ends of the range are zeroed, not freed (regular files). Immediate:
 * no sync is needed, and none is implied for other writes. The caller must
 * not discard bytes it (or another thread) still writes or reads.
 * Errors: -EINVAL (NULL io), -EROFS (read-only engine), -ERANGE (outside
 * [0, size)), -EOPNOTSUPP (the file system or device cannot discard;
 * sticky: later calls fail at once), other -errno of fallocate/ioctl. */
int  mmio_discard(struct mmio *io, uint64_t off, uint64_t len);

/* 0 if mmio_discard is known not to work on io (read-only, or it returned
 * -EOPNOTSUPP before), else 1 (not yet known to fail). */
int  mmio_discard_supported(const struct mmio *io);

/* Copies the current counters into *out; from any thread at any time.
 * NULL io gives zeros; NULL out is a no-op. */
void mmio_get_metrics(const struct mmio *io, struct mmio_metrics *out);

#ifdef __cplusplus
}
#endif
#endif
