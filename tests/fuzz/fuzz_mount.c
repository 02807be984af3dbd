/*
 * fuzz_mount.c — target (a): the patched image mounted in memory, read-only
 * (or read-write when bit 1 of the first byte is set: then a few changes
 * follow) and walked through the fs core API (fuzz_walk: readdir, lookup,
 * stat, every file's data, symlinks, xattrs). Must never crash, hang or
 * leak; errors (EIO, EUCLEAN, a refused mount) are the expected answers.
 */
#include <stddef.h>
#include <stdint.h>

#include "tests/fuzz/fuzz_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_image img;
    if (fuzz_image_make(&img, data, size, FUZZ_REGION_USED) != 0)
        return 0;
    fuzz_mount_walk(&img, !(size && (data[0] & 2)), 1);
    fuzz_image_drop(&img);
    return 0;
}
