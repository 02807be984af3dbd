/*
 * resize_stop.h — force-included (-include) when src/tools/resize.c is
 * compiled a second time with -Dmain=resize_real_main for
 * mmapfs-resize-stop (resize_stop.c), so that the renamed main has a
 * prototype.
 */
#ifndef MMAPFS_TESTS_RESIZE_STOP_H
#define MMAPFS_TESTS_RESIZE_STOP_H

int resize_real_main(int argc, char **argv);

#endif
