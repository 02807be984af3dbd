/*
 * legacy_xattr.c — stores an extended attribute on an unmounted image
 * through the filesystem's own API, without the mount's namespace check:
 * a name outside user., trusted., security. and the ACL names, as a
 * version that did not check them stored it (56_xattr_many.sh).
 *
 *   legacy_xattr IMAGE INO NAME VALUE
 *
 * Exit status: 0 stored, 1 an error (printed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs.h"

int main(int argc, char **argv)
{
    struct fs_options opt = { 0 };
    struct fs *fs;
    int err;

    if (argc != 5) {
        fprintf(stderr, "usage: legacy_xattr IMAGE INO NAME VALUE\n");
        return 1;
    }
    opt.path = argv[1];
    err = fs_mount(&fs, &opt);
    if (err) {
        fprintf(stderr, "legacy_xattr: mount %s: %s\n", argv[1], strerror(-err));
        return 1;
    }
    err = fs_setxattr(fs, strtoull(argv[2], NULL, 10), argv[3], argv[4], strlen(argv[4]), 0);
    if (err)
        fprintf(stderr, "legacy_xattr: setxattr %s: %s\n", argv[3], strerror(-err));
    int uerr = fs_unmount(fs);
    if (uerr)
        fprintf(stderr, "legacy_xattr: unmount: %s\n", strerror(-uerr));
    return err || uerr;
}
