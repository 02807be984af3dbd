/*
 * mmio_merge.c — merging of a batch of writes (mmio_write_delayed_sync).
 *
 * The batch is meant to be applied in order, later writes winning where
 * they overlap. We produce the minimal equivalent set: the writes sorted
 * by offset, grouped into clusters of writes that overlap or touch, one
 * output write per cluster. A cluster of one write keeps pointing at the
 * caller's buffer; a larger cluster is assembled in an arena by copying
 * its members in their original order, so the later data wins.
 *
 * Cost: O(n log n) for the sort plus one copy of each clustered byte.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "io/mmio_i.h"

/* cluster[] mark of a write that overlaps and touches nothing. */
#define SINGLE SIZE_MAX

/* A write's place in the input, for sorting by (off, index). */
struct slot {
    uint64_t off, end;
    size_t idx;
};

/* qsort order: by offset, then input order (makes the sort stable). */
static int slot_cmp(const void *a, const void *b)
{
    const struct slot *x = a, *y = b;
    if (x->off != y->off)
        return x->off < y->off ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

void mmio_merged_free(struct mmio_merged *m)
{
    free(m->w);
    free(m->arena);
    m->w = NULL;
    m->arena = NULL;
    m->n = 0;
}

/* Fills s[] with the non-empty writes of in[] and sorts them. Returns
 * how many, or -EINVAL / -ERANGE; *bytes gets their total length. */
static long collect(const struct mmio_write *in, size_t n, struct slot *s,
                    size_t *bytes)
{
    size_t k = 0;

    *bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i].len == 0)
            continue;
        if (!in[i].data)
            return -EINVAL;
        if (in[i].off > UINT64_MAX - in[i].len)
            return -ERANGE;
        s[k++] = (struct slot){ in[i].off, in[i].off + in[i].len, i };
        *bytes += in[i].len;
    }
    qsort(s, k, sizeof(*s), slot_cmp);
    return (long)k;
}

int mmio_merge_writes(const struct mmio_write *in, size_t n,
                      struct mmio_merged *out)
{
    struct slot *s = NULL;
    size_t *cluster = NULL;     /* input index -> output write */
    size_t bytes = 0, arena_used = 0;
    long k;
    int err = 0;

    *out = (struct mmio_merged){0};
    if (n == 0)
        return 0;
    if (!in)
        return -EINVAL;
    s = malloc(n * sizeof(*s));
    cluster = malloc(n * sizeof(*cluster));
    out->w = malloc(n * sizeof(*out->w));
    if (!s || !cluster || !out->w) {
        err = -ENOMEM;
        goto out;
    }
    k = collect(in, n, s, &bytes);
    if (k < 0) {
        err = (int)k;
        goto out;
    }

    /* Pass 1: clusters of overlapping or adjacent writes, in offset order.
     * A cluster's span is at most the sum of its lengths, so the arena
     * never needs more than bytes. */
    for (long i = 0; i < k;) {
        uint64_t start = s[i].off, end = s[i].end;
        long j = i + 1;
        while (j < k && s[j].off <= end) {
            if (s[j].end > end)
                end = s[j].end;
            j++;
        }
        for (long t = i; t < j; t++)    /* SINGLE: keeps its own buffer */
            cluster[s[t].idx] = j - i == 1 ? SINGLE : out->n;
        out->w[out->n++] = (struct mmio_write){
            start, j - i == 1 ? in[s[i].idx].data : NULL, (size_t)(end - start)
        };
        i = j;
    }

    /* Pass 2: assemble multi-write clusters, applying writes in input
     * order so that later data wins. */
    for (size_t c = 0; c < out->n; c++) {
        if (out->w[c].data)
            continue;
        if (!out->arena && !(out->arena = malloc(bytes))) {
            err = -ENOMEM;
            goto out;
        }
        out->w[c].data = out->arena + arena_used;
        arena_used += out->w[c].len;
    }
    for (size_t i = 0; i < n; i++) {
        if (in[i].len == 0 || cluster[i] == SINGLE)
            continue;
        struct mmio_write *o = &out->w[cluster[i]];
        memcpy((unsigned char *)o->data + (in[i].off - o->off), in[i].data,
               in[i].len);
    }

out:
    free(s);
    free(cluster);
    if (err)
        mmio_merged_free(out);
    return err;
}
