/*
 * record_main.c — main of build/tests/crash/mmapfs-record, the recording
 * mount daemon: the production daemon (src/tools/mmapfs.c, its main
 * renamed mmapfs_real_main) with the crash recorder installed first.
 *
 *   MMAPFS_CRASH_RECORD=DIR mmapfs-record IMAGE MNT -f [-o ...]
 *
 * The production binary contains no recording code; only the engine's
 * observer pointer, which nobody sets there.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record_main.h"
#include "recorder.h"

int main(int argc, char **argv)
{
    const char *dir = getenv("MMAPFS_CRASH_RECORD");
    int err;

    if (!dir || !*dir) {
        fprintf(stderr, "mmapfs-record: set MMAPFS_CRASH_RECORD to the record directory\n");
        return 2;
    }
    err = crash_recorder_install(dir);
    if (err) {
        fprintf(stderr, "mmapfs-record: %s: %s\n", dir, strerror(-err));
        return 2;
    }
    return mmapfs_real_main(argc, argv);
}
