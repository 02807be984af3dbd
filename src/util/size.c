/*
 * size.c — sizes on tool command lines ("123", "64M", "1G", "2TiB").
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/size.h"

int mfs_parse_size(const char *s, uint64_t *out)
{
    char *end;
    /* a digit first: strtoull would also skip blanks and take a sign after
     * them (" -1" is 2^64 - 1) */
    if (*s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -EINVAL;
    unsigned shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    default: break;
    }
    if (shift && (!strcmp(end, "iB") || !strcmp(end, "B")))
        end += strlen(end);
    if (*end)
        return -EINVAL;
    if (shift && v > (UINT64_MAX >> shift))
        return -EINVAL;
    *out = (uint64_t)v << shift;
    return 0;
}
