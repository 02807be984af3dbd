/*
 * fuzz_journal.c — target (c): journal replay. The patches land in the
 * journal of the crashed base image (headers, descriptors, block images,
 * commit blocks; checksums recomputed on request so that damaged
 * transactions can look valid). Replay runs as fsck -n runs it (dry run)
 * and as a mount runs it (into the image); then the image is mounted
 * read-only and walked, since replay may have written anything anywhere.
 */
#include <stddef.h>
#include <stdint.h>

#include "fs/fs.h"
#include "journal/journal.h"
#include "tests/fuzz/fuzz_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_image img;
    if (fuzz_image_make(&img, data, size, FUZZ_REGION_JOURNAL) != 0)
        return 0;
    struct mmio *io;
    if (mmio_open(&io, img.path, 0, 0, NULL) == 0) {
        struct jnl_geometry geo = {
            .journal_start = img.journal_start,
            .journal_blocks = img.journal_blocks,
            .block_count = img.block_count,
        };
        uint64_t dry = 0, real = 0;
        int err_dry = jnl_recover(io, &geo, 1, &dry);
        int err = jnl_recover(io, &geo, 0, &real);
        if (!err_dry && !err && dry != real)
            fuzz_fail("dry run found %llu transactions, replay %llu",
                      (unsigned long long)dry, (unsigned long long)real);
        mmio_close(io);
        fuzz_mount_walk(&img, 1, 1);
    }
    fuzz_image_drop(&img);
    return 0;
}
