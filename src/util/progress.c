/*
 * progress.c — the progress line of progress.h.
 */
#include <time.h>

#include "util/progress.h"

#define SHOW_AFTER_MS 500u
#define EVERY_MS      200u

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void mfs_progress_init(struct mfs_progress *p, FILE *out, const char *prog)
{
    *p = (struct mfs_progress){ .out = out, .prog = prog };
}

void mfs_progress_update(struct mfs_progress *p, const char *what, uint64_t done,
                         uint64_t total)
{
    if (!p || !p->out)
        return;
    uint64_t t = now_ms();
    if (!p->start_ms)
        p->start_ms = t;
    if (t - p->start_ms < SHOW_AFTER_MS || (p->last_ms && t - p->last_ms < EVERY_MS))
        return;
    unsigned pct = total ? (unsigned)(done >= total ? 100 : done * 100 / total) : 0;
    int n = fprintf(p->out, "\r%s: %s %3u%%", p->prog, what, pct);
    if (n > 0 && (unsigned)n - 1 < p->width)         /* a shorter line: blank the rest */
        fprintf(p->out, "%*s", (int)(p->width - ((unsigned)n - 1)), "");
    if (n > 0 && (unsigned)n - 1 > p->width)
        p->width = (unsigned)n - 1;
    fflush(p->out);
    p->last_ms = t;
}

void mfs_progress_clear(struct mfs_progress *p)
{
    if (!p || !p->out || !p->last_ms)
        return;
    fprintf(p->out, "\r%*s\r", (int)p->width, "");
    fflush(p->out);
    p->last_ms = 0;
    p->width = 0;
}
