/*
 * datalog.c — small new file data rides in the log.
 *
 * A commit that makes newly written file data reachable must not become
 * durable before that data (invariant 3). The ordered way costs a second
 * device sync per commit: data first, then the commit block. For a small
 * write the commit instead copies the data blocks into the log beside the
 * metadata images, under the one sync that covers the commit block; replay
 * writes them home like any image (ZFS's ZIL logs small synchronous writes
 * the same way, ext4's data=journal logs all of them). The mapping keeps
 * the data at home too, so readers and the checkpoint never look at these
 * images: only replay does.
 *
 * The one new hazard is an older image replayed over newer bytes: block B
 * logged in T1, then overwritten in place and made durable by T2, then a
 * crash while the durable header still names T1. So every block with an
 * image in a transaction replay may still reach is remembered ('logged'),
 * and an in-place overwrite of such a block logs it again in the running
 * transaction (replay applies the newer image last), or, when that
 * transaction has no room left, makes its commit move the durable header
 * past the older image first. Freed blocks are simply forgotten: replaying
 * an image into a freed block is harmless (invariant 4).
 * Design: docs/JOURNAL.md, "Small new data rides in the log".
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "journal/journal_i.h"

/* A write whose new data spans more blocks than this goes the ordered way:
 * logging it would double a large write for no gain in syncs. */
#define DATA_RUN_MAX 32u
/* Most data images (new and re-logged) in one transaction. */
#define DATA_MAX 1024u

int jnl_datalog_init(struct jnl *j)
{
    j->data_max = (uint32_t)(j->begin_limit < DATA_MAX ? j->begin_limit : DATA_MAX);
    j->data_new_max = j->data_max / 4;
    j->running_data = calloc(j->data_max ? j->data_max : 1, sizeof(*j->running_data));
    if (!j->running_data || posix_memalign(&j->stage, JNL_BS, JNL_STAGE_BLOCKS * JNL_BS))
        return -ENOMEM;
    return jnl_map_init(&j->logged);
}

void jnl_datalog_destroy(struct jnl *j)
{
    jnl_map_destroy(&j->logged);
    free(j->running_data);
    free(j->stage);
}

uint64_t jnl_running_home(const struct jnl *j, uint64_t i)
{
    return i < j->running_count ? j->running[i]->blk
                                : j->running_data[i - j->running_count]->blk;
}

int jnl_running_image_copy(struct jnl *j, uint64_t i, void *dst)
{
    if (i < j->running_count) {
        memcpy(dst, j->running[i]->data, JNL_BS);
        return 0;
    }
    return mmio_read_once(j->io, jnl_running_home(j, i) * JNL_BS, dst, JNL_BS);
}

void jnl_datalog_close(struct jnl *j)
{
    for (uint32_t i = 0; i < j->running_data_count; i++)
        j->running_data[i]->running_idx = JNL_NOT_RUNNING;
    atomic_fetch_add(&j->ctr.data_images, j->running_data_count);
    j->running_data_count = 0;
    j->running_data_new = 0;
    j->running_head_past = 0;
}

/* Is there room for n more data images? They may only take room below
 * begin_limit: the operation adding them started below it and may still
 * add JNL_MAX_OP_BLOCKS metadata blocks, which must fit. */
static int data_room(const struct jnl *j, uint64_t n)
{
    return j->running_data_count + n <= j->data_max &&
           j->running_count + j->running_data_count + n <= j->begin_limit;
}

/* Puts blk's image into the running transaction (its entry is created if
 * needed). 0, or -ENOMEM. */
static int data_add(struct jnl *j, uint64_t blk)
{
    struct jnl_shadow *e = jnl_map_find(&j->logged, blk);
    if (e && e->running_idx != JNL_NOT_RUNNING)
        return 0;
    if (!e) {
        e = calloc(1, sizeof(*e));
        if (!e)
            return -ENOMEM;
        e->blk = blk;
        if (jnl_map_insert(&j->logged, e)) {
            free(e);
            return -ENOMEM;
        }
    }
    e->dirty_seq = atomic_load(&j->running_seq);
    e->running_idx = j->running_data_count;
    j->running_data[j->running_data_count++] = e;
    if (j->running_count + j->running_data_count == 1)
        jnl_running_started(j);
    return 0;
}

/* Takes entry e out of the running transaction and drops it. */
static void data_drop(struct jnl *j, struct jnl_shadow *e)
{
    if (e->running_idx != JNL_NOT_RUNNING) {
        struct jnl_shadow *last = j->running_data[--j->running_data_count];
        j->running_data[e->running_idx] = last;
        last->running_idx = e->running_idx;
        jnl_running_maybe_emptied(j);
    }
    jnl_map_remove(&j->logged, e->blk);
    free(e);
    if (j->undo.active)
        j->undo.forgot_data = 1;    /* see jnl_undo */
}

/* Holds [start, start+len) back until the operation ends: if it fails,
 * the blocks are file data again and their entries must still be there.
 * 0, or -ENOMEM (then the caller forgets them at once). */
static int forget_later(struct jnl *j, uint64_t start, uint64_t len)
{
    struct jnl_undo *u = &j->undo;
    if (u->forget_count == u->forget_cap) {
        uint32_t cap = u->forget_cap ? u->forget_cap * 2 : 16;
        uint64_t (*f)[2] = realloc(u->forgets, cap * sizeof(*f));
        if (!f)
            return -ENOMEM;
        u->forgets = f;
        u->forget_cap = cap;
    }
    u->forgets[u->forget_count][0] = start;
    u->forgets[u->forget_count][1] = len;
    u->forget_count++;
    return 0;
}

void jnl_log_data(struct jnl *j, uint64_t pblk, uint64_t n)
{
    if (n == 0 || n > DATA_RUN_MAX || j->running_data_new + n > j->data_new_max ||
        !data_room(j, n) || !jnl_home_ok(&j->geo, pblk) ||
        !jnl_home_ok(&j->geo, pblk + n - 1)) {
        jnl_note_new_data(j);
        return;
    }
    for (uint64_t i = 0; i < n; i++) {
        if (data_add(j, pblk + i)) {
            jnl_note_new_data(j);   /* out of memory: the ordered way is right too */
            return;
        }
    }
    j->running_data_new += (uint32_t)n;
}

int jnl_data_overwrite(struct jnl *j, uint64_t pblk, uint64_t n)
{
    int hit = 0;
    if (j->logged.count == 0)
        return 0;
    for (uint64_t b = pblk; b < pblk + n; b++) {
        struct jnl_shadow *e = jnl_map_find(&j->logged, b);
        if (!e)
            continue;
        hit = 1;
        if (e->running_idx != JNL_NOT_RUNNING)
            continue;           /* its image is taken at commit: newest bytes */
        uint64_t older = e->dirty_seq;
        if (data_room(j, 1) && !data_add(j, b))
            continue;
        if (j->running_head_past < older)
            j->running_head_past = older;
    }
    return hit;
}

/* Removes the entries for which drop(j, e, arg) says so; the table's
 * backward-shift deletion can move a later entry into a slot already
 * passed, so it rescans until a pass removes nothing. */
static void data_sweep(struct jnl *j, int (*drop)(const struct jnl_shadow *, const uint64_t *),
                       const uint64_t *arg)
{
    int removed = 1;
    while (removed && j->logged.count) {
        removed = 0;
        for (uint64_t i = 0; i <= j->logged.mask; i++) {
            struct jnl_shadow *e = j->logged.slots[i];
            if (e && drop(e, arg)) {
                data_drop(j, e);
                removed = 1;
            }
        }
    }
}

static int in_range(const struct jnl_shadow *e, const uint64_t *r)
{
    return e->blk >= r[0] && e->blk < r[1];
}

void jnl_forget_data(struct jnl *j, uint64_t start, uint64_t len)
{
    if (j->logged.count == 0)
        return;
    if (j->undo.active && forget_later(j, start, len) == 0)
        return;
    jnl_datalog_forget(j, start, len);
}

void jnl_datalog_forget(struct jnl *j, uint64_t start, uint64_t len)
{
    if (j->logged.count == 0)
        return;
    if (len <= 4 * j->logged.count) {
        for (uint64_t b = start; b < start + len; b++) {
            struct jnl_shadow *e = jnl_map_find(&j->logged, b);
            if (e)
                data_drop(j, e);
        }
        return;
    }
    uint64_t range[2] = { start, start + len };
    data_sweep(j, in_range, range);
}

static int unreachable(const struct jnl_shadow *e, const uint64_t *tail)
{
    return e->running_idx == JNL_NOT_RUNNING && e->dirty_seq < *tail;
}

void jnl_datalog_prune(struct jnl *j)
{
    if (j->logged.count == 0 || j->logged_pruned_tail == j->tail_seq)
        return;
    j->logged_pruned_tail = j->tail_seq;
    data_sweep(j, unreachable, &j->tail_seq);
}

int jnl_has_replayed(struct jnl *j)
{
    return j->read_only && j->map.count > 0;
}

const void *jnl_replayed_block(struct jnl *j, uint64_t blk)
{
    if (!j->read_only)
        return NULL;
    struct jnl_shadow *s = jnl_map_find(&j->map, blk);
    return s ? s->data : NULL;
}
