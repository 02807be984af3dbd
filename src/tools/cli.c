/*
 * cli.c — the option loop of the tools whose options are all flags
 * (tools/cli_i.h).
 */
#include <getopt.h>
#include <stdio.h>

#include "fuse/version_i.h"
#include "tools/cli_i.h"
#include "tools/exit_i.h"

int tool_parse_flags(const char *prog, int argc, char **argv, const struct tool_flag *flags,
                     void (*usage)(FILE *))
{
    /* ':' first (a missing value is told apart), the flags, "hV" */
    char shortopts[1 + TOOL_FLAGS_MAX + 3];
    struct option longopts[TOOL_FLAGS_MAX + 3];
    size_t n = 0, nlong = 0;
    int c;

    shortopts[0] = ':';
    for (; flags[n].opt; n++) {
        if (n == TOOL_FLAGS_MAX) {
            fprintf(stderr, "%s: more than %d flags: raise TOOL_FLAGS_MAX\n", prog,
                    TOOL_FLAGS_MAX);
            return TOOL_EXIT_FAILURE;
        }
        shortopts[1 + n] = flags[n].opt;
        if (flags[n].name)
            longopts[nlong++] = (struct option){ flags[n].name, no_argument, NULL,
                                                 flags[n].opt };
    }
    shortopts[1 + n] = 'h';
    shortopts[2 + n] = 'V';
    shortopts[3 + n] = 0;
    longopts[nlong++] = (struct option){ "help", no_argument, NULL, 'h' };
    longopts[nlong++] = (struct option){ "version", no_argument, NULL, 'V' };
    longopts[nlong] = (struct option){ NULL, 0, NULL, 0 };

    opterr = 0;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        size_t i = 0;
        while (i < n && flags[i].opt != c)
            i++;
        if (i < n) {
            *flags[i].set = 1;
            continue;
        }
        switch (c) {
        case 'h':
            usage(stdout);
            return TOOL_EXIT_OK;
        case 'V':
            tool_print_version(prog);
            return TOOL_EXIT_OK;
        default:
            tool_bad_option(prog, c, optopt, argv[optind - 1]);
            return TOOL_EXIT_USAGE;
        }
    }
    return -1;
}
