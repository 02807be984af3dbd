/*
 * fuzz_fsck.c — target (b): fsck over the patched image. fsck -n must not
 * crash and must not call an image clean that does not mount; fsck -y must
 * leave, whenever it reports success (no "uncorrected" or "operational"
 * bit), an image that fsck -n finds clean and that mounts read-write and
 * survives the walk.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fsck/fsck.h"
#include "fs/fs.h"
#include "tests/fuzz/fuzz_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fs_check with its report kept (printed when an invariant fails). */
static int check(const struct fuzz_image *img, enum fs_check_mode mode, char **report)
{
    size_t len = 0;
    FILE *f = open_memstream(report, &len);
    struct fs_check_options o = { .mode = mode, .force = 1 };
    int r = fs_check(img->path, &o, f);
    if (f)
        fclose(f);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_image img;
    if (fuzz_image_make(&img, data, size, FUZZ_REGION_USED) != 0)
        return 0;
    char *before = NULL, *repair = NULL, *after = NULL;
    int r = check(&img, FS_CHECK_NO, &before);
    if (r == FSCK_EXIT_OK) {
        int err = fuzz_mount_walk(&img, 1, 0);
        if (err)
            fuzz_fail("fsck -n found the image clean, the mount refused it (%d)", err);
    }
    r = check(&img, FS_CHECK_YES, &repair);
    if (!(r & (FSCK_EXIT_UNCORRECTED | FSCK_EXIT_OPERATIONAL))) {
        int r2 = check(&img, FS_CHECK_NO, &after);
        if (r2 != FSCK_EXIT_OK)
            fuzz_fail("fsck -y exit %d, then fsck -n exit %d\n--- -n before:\n%s"
                      "--- -y:\n%s--- -n after:\n%s", r, r2, before, repair, after);
        int err = fuzz_mount_walk(&img, 0, 1);
        /* unknown read-only-compatible features: checked, not repaired,
         * and the mount must be read-only (docs/FORMAT.md §2) */
        if (err == -EROFS)
            err = fuzz_mount_walk(&img, 1, 1);
        if (err)
            fuzz_fail("fsck -y repaired the image, the mount refused it (%d)\n--- -y:\n%s",
                      err, repair);
    }
    free(before);
    free(repair);
    free(after);
    fuzz_image_drop(&img);
    return 0;
}
