/* mountinfo.c — reading /proc/self/mountinfo (mountinfo.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int mfs_mountinfo_parse(char *line, struct mfs_mount *m)
{
    char *field[5] = { NULL }, *save = NULL;
    /* the optional fields end at a lone "-"; escaped paths hold no space */
    char *sep = strstr(line, " - ");

    if (!sep)
        return -1;
    *sep = '\0';
    field[0] = strtok_r(line, " ", &save);
    for (int i = 1; i < 5 && field[i - 1]; i++)
        field[i] = strtok_r(NULL, " ", &save);
    if (!field[0] || !field[4])
        return -1;
    save = NULL;
    char *type = strtok_r(sep + 3, " \n", &save);
    char *source = strtok_r(NULL, " \n", &save);
    if (!type || !source)
        return -1;
    mfs_mountinfo_unescape(field[4]);
    mfs_mountinfo_unescape(source);
    m->devid = field[2];
    m->point = field[4];
    m->fstype = type;
    m->source = source;
    return 0;
}

int mfs_mountinfo_each(int (*fn)(const struct mfs_mount *m, void *ctx), void *ctx)
{
    char *line = NULL;
    size_t cap = 0;
    int ret = 0;
    FILE *f = fopen("/proc/self/mountinfo", "re");

    if (!f)
        return -errno;
    while (!ret && getline(&line, &cap, f) > 0) {
        struct mfs_mount m;
        if (mfs_mountinfo_parse(line, &m) == 0)
            ret = fn(&m, ctx);
    }
    free(line);
    fclose(f);
    return ret;
}

struct top_ctx {
    const char *point;
    struct mfs_mount_top *top;
    int found;
};

static int top_one(const struct mfs_mount *m, void *ctx)
{
    struct top_ctx *c = ctx;

    if (strcmp(m->point, c->point) == 0) {      /* later lines are on top */
        snprintf(c->top->fstype, sizeof(c->top->fstype), "%s", m->fstype);
        snprintf(c->top->devid, sizeof(c->top->devid), "%s", m->devid);
        c->found = 1;
    }
    return 0;
}

int mfs_mountinfo_top(const char *point, struct mfs_mount_top *top)
{
    struct top_ctx c = { point, top, 0 };
    int err = mfs_mountinfo_each(top_one, &c);

    if (err < 0)
        return err;
    return c.found ? 0 : -ENOENT;
}
