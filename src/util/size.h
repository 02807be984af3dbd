/*
 * size.h — parsing sizes given on tool command lines.
 */
#ifndef MMAPFS_UTIL_SIZE_H
#define MMAPFS_UTIL_SIZE_H

#include <stdint.h>

/* Parses "123", "64M" ("1.5G" is not accepted): a decimal number of bytes,
 * optionally with a binary suffix K/M/G/T, itself optionally followed by
 * "iB" or "B". 0 or -EINVAL (also on overflow). */
int mfs_parse_size(const char *s, uint64_t *out);

#endif
