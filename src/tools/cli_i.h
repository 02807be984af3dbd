/*
 * cli_i.h — the command line of the tools whose options are all flags
 * (mmapfs-resize, mmapfs-trim): one getopt_long loop (src/tools/cli.c)
 * that sets the flags and answers -h/--help, -V/--version and a refused
 * option the same way in each of them (messages: tool_bad_option,
 * tools/exit_i.h; exit statuses: enum tool_exit).
 */
#ifndef MMAPFS_TOOLS_CLI_I_H
#define MMAPFS_TOOLS_CLI_I_H

#include <getopt.h>     /* optind */
#include <stdio.h>

/* Most flags a tool may have (besides -h and -V). */
#define TOOL_FLAGS_MAX 8

/* One flag of a tool: given as -opt or --name, it sets *set to 1. */
struct tool_flag {
    char opt;              /* short option letter (not 'h' or 'V') */
    const char *name;      /* long option name, or NULL for none */
    int *set;
};

/* Parses the options of argv (getopt_long; options and operands may mix,
 * "--" ends the options). flags ends with an entry whose opt is 0 and has
 * at most TOOL_FLAGS_MAX others. -h/--help prints usage(stdout),
 * -V/--version the version line; an unknown option prints one line on
 * stderr naming it. Returns -1 when the tool goes on with its operands
 * from argv[optind], else the exit status: TOOL_EXIT_OK after help or
 * version, TOOL_EXIT_USAGE after an unknown option. */
int tool_parse_flags(const char *prog, int argc, char **argv, const struct tool_flag *flags,
                     void (*usage)(FILE *));

#endif
