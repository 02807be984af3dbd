/*
 * fsck.mmapfs — check and repair an mmapfs image. Thin main over
 * fs_check() (src/fsck/); see docs/man/fsck.mmapfs.8 and docs/FSCK.md.
 *
 * Exit status, as fsck(8): 0 clean, 1 errors corrected, 4 errors left
 * uncorrected, 8 operational error, 16 usage error, 32 cancelled.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fsck/fsck.h"
#include "fs/format.h"
#include "fuse/version_i.h"
#include "tools/exit_i.h"

#define PROG "fsck.mmapfs"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: " PROG " [-n|-y|-p] [-f] [-v] [-q] TARGET\n"
        "  -n   check only, write nothing (the journal is replayed in memory;\n"
        "       read-only media and images in use can be checked)\n"
        "  -y   repair what can be repaired\n"
        "  -p   preen: repair what touches no data; skip a clean filesystem unless -f\n"
        "  -a   same as -p\n"
        "  -f   check even if the filesystem is clean (with -p)\n"
        "  -v   verbose: statistics, every error line\n"
        "  -q   quiet: no progress line (shown on a terminal for long checks)\n"
        "  -V   print the version\n"
        "  -h   this help\n"
        "exit status: 0 clean, 1 corrected, 4 errors left, 8 operational error,\n"
        "             16 usage error, 32 cancelled\n");
}

int main(int argc, char **argv)
{
    struct fs_check_options o = { .mode = FS_CHECK_NO };
    int modes = 0, quiet = 0, c;

    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":nypafvqhVC:", longopts, NULL)) != -1) {
        switch (c) {
        case 'n': o.mode = FS_CHECK_NO; modes++; break;
        case 'y': o.mode = FS_CHECK_YES; modes++; break;
        case 'p': case 'a': o.mode = FS_CHECK_PREEN; modes++; break;
        case 'f': o.force = 1; break;
        case 'v': o.verbose = 1; break;
        case 'q': quiet = 1; break;
        case 'C': break;                /* progress fd from fsck(8): ignored */
        case 'h': usage(stdout); return FSCK_EXIT_OK;
        case 'V':
            tool_print_version(PROG);
            return FSCK_EXIT_OK;
        default:
            tool_bad_option(PROG, c, optopt, argv[optind - 1]);
            return FSCK_EXIT_USAGE;
        }
    }
    if (modes > 1) {
        fprintf(stderr, PROG ": -n, -y and -p exclude each other: give one of them\n");
        return FSCK_EXIT_USAGE;
    }
    if (optind != argc - 1) {
        fprintf(stderr, PROG ": %s: usage: " PROG " [-n|-y|-p] [-f] [-v] [-q] TARGET (" PROG
                " --help for the options)\n",
                optind >= argc ? "no TARGET given" : "more than one TARGET given");
        return FSCK_EXIT_USAGE;
    }
    /* Ctrl-C mid-repair would leave a half-written fix: ignore it while
     * repairing; a plain check may be interrupted (exit 32 by convention). */
    if (o.mode != FS_CHECK_NO)
        signal(SIGINT, SIG_IGN);
    /* the progress line goes to stderr, and only to a terminal */
    if (!quiet && isatty(STDERR_FILENO))
        o.progress = stderr;
    return fs_check(argv[optind], &o, stdout);
}
