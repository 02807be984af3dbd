/* mountinfo.c — decoding of /proc/self/mountinfo fields (mountinfo.h). */
#include "util/mountinfo.h"

void mfs_mountinfo_unescape(char *s)
{
    char *in = s, *out = s;

    while (*in) {
        if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' && in[2] >= '0' &&
            in[2] <= '7' && in[3] >= '0' && in[3] <= '7') {
            *out++ = (char)(((in[1] - '0') << 6) | ((in[2] - '0') << 3) | (in[3] - '0'));
            in += 4;
        } else {
            *out++ = *in++;
        }
    }
    *out = '\0';
}
