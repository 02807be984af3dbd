/*
 * fuzz_mount.c — target (a): the patched image mounted read-only in
 * memory and walked through the fs core API (fuzz_walk: readdir, lookup,
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
    fuzz_mount_walk(&img, 1, 1);
    fuzz_image_drop(&img);
    return 0;
}
