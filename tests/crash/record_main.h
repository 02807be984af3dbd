/*
 * record_main.h — force-included (-include) when src/tools/mmapfs.c is
 * compiled a second time with -Dmain=mmapfs_real_main for the recording
 * daemon (tests/crash/crash.mk), so that the renamed main has a prototype.
 */
#ifndef MMAPFS_CRASH_RECORD_MAIN_H
#define MMAPFS_CRASH_RECORD_MAIN_H

int mmapfs_real_main(int argc, char **argv);

#endif
