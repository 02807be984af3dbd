/*
 * icache.c — in-memory per-inode state: FUSE lookup counts and the
 * transactions that last changed an inode (for fsync). An open-addressing
 * hash table (linear probing) keyed by inode number, at most 3/4 full and
 * at most half full right after a rebuild. It is kept small on purpose: a
 * listing of 20,000 names adds 20,000 entries, and every page of a new
 * table costs a page fault when first touched (about 30 us each on the
 * two-core test VM, docs/BENCH.md). For those 20,000 names the tables it
 * allocates while growing come to 3.2 MiB, against 7.3 MiB with 48-byte
 * entries kept at most half full.
 *
 * Memory stays bounded: an entry with no lookup reference whose changes
 * are all durable carries no information (an unknown inode answers 0) and
 * is dropped when the table is rebuilt, which happens when it has grown to
 * twice the number of entries that survived the previous rebuild.
 * All functions run under the journal lock.
 */
#include <errno.h>
#include <stdlib.h>

#include "fs/fs_i.h"

struct icache_entry {
    uint64_t ino;             /* 0 = empty slot */
    uint64_t nlookup;
    uint64_t dirty_seq, data_seq;
    /* On the orphan list (orphan.c): its predecessor + 1 (1 = the head);
     * 0 = not on the list. */
    uint64_t orphan_link;
    /* Made by O_TMPFILE and not linked yet: link() may give it its first
     * name although its link count is 0 (fs_tmpfile, namei.c). */
    int linkable;
};

struct fs_icache {
    struct icache_entry *slots;
    uint64_t mask;            /* capacity - 1 */
    uint64_t count;
    uint64_t prune_at;        /* rebuild when count reaches this */
    /* Newest transaction whose record could not be kept (no memory for an
     * entry): every inode without an entry answers at least this, so an
     * fsync never returns after a data-only sync while the change it
     * needs is still in the running transaction. */
    uint64_t lost_dirty_seq, lost_data_seq;
    int orphan_changed;       /* the orphan mirror changed (fs_icache_orphan_changed) */
};

#define ICACHE_MIN_CAP   1024u
#define ICACHE_MIN_PRUNE 4096u

static uint64_t hash_ino(uint64_t ino)
{
    ino ^= ino >> 33;
    ino *= 0xff51afd7ed558ccdull;
    ino ^= ino >> 33;
    return ino;
}

/* Slot of ino, or of the empty slot where it would go. */
static struct icache_entry *slot_of(const struct fs_icache *c, uint64_t ino)
{
    uint64_t i = hash_ino(ino) & c->mask;
    while (c->slots[i].ino != 0 && c->slots[i].ino != ino)
        i = (i + 1) & c->mask;
    return &c->slots[i];
}

int fs_icache_init(struct fs *fs)
{
    struct fs_icache *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->slots = calloc(ICACHE_MIN_CAP, sizeof(*c->slots));
    if (!c->slots) {
        free(c);
        return -ENOMEM;
    }
    c->mask = ICACHE_MIN_CAP - 1;
    c->prune_at = ICACHE_MIN_PRUNE;
    fs->icache = c;
    return 0;
}

void fs_icache_fini(struct fs *fs)
{
    if (!fs->icache)
        return;
    free(fs->icache->slots);
    free(fs->icache);
    fs->icache = NULL;
}

/* Does the entry still tell something? */
static int entry_live(const struct icache_entry *e, uint64_t durable)
{
    return e->nlookup > 0 || e->orphan_link || e->linkable || e->dirty_seq > durable ||
           e->data_seq > durable;
}

/* The next pruning rebuild: when the table has doubled since this one. */
static void set_prune_at(struct fs_icache *c)
{
    c->prune_at = 2 * c->count > ICACHE_MIN_PRUNE ? 2 * c->count : ICACHE_MIN_PRUNE;
}

/* Rebuilds the table with room for what survives (and, if prune, without
 * entries that carry no information). 0 or -ENOMEM (table unchanged). */
static int rebuild(struct fs *fs, int prune)
{
    struct fs_icache *c = fs->icache;
    uint64_t durable = jnl_durable_seq(fs->jnl), live = 0;
    for (uint64_t i = 0; i <= c->mask; i++)
        if (c->slots[i].ino && (!prune || entry_live(&c->slots[i], durable)))
            live++;
    uint64_t cap = ICACHE_MIN_CAP;
    while (cap < 2 * (live + 1))
        cap *= 2;
    if (live == c->count && cap == c->mask + 1) {
        /* nothing to drop, no room needed: a copy would only cost pages */
        set_prune_at(c);
        return 0;
    }
    struct icache_entry *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    struct fs_icache old = *c;
    c->slots = slots;
    c->mask = cap - 1;
    c->count = 0;
    for (uint64_t i = 0; i <= old.mask; i++) {
        const struct icache_entry *e = &old.slots[i];
        if (e->ino && (!prune || entry_live(e, durable))) {
            *slot_of(c, e->ino) = *e;
            c->count++;
        }
    }
    free(old.slots);
    set_prune_at(c);
    return 0;
}

/* The entry of ino, created if missing; NULL when out of memory. */
static struct icache_entry *get_or_add(struct fs *fs, uint64_t ino)
{
    struct fs_icache *c = fs->icache;
    struct icache_entry *e = slot_of(c, ino);
    if (e->ino)
        return e;
    if (c->count + 1 >= c->prune_at)
        rebuild(fs, 1);
    /* keep it at most 3/4 full; if growing fails, keep one slot empty */
    if (4 * (c->count + 1) > 3 * (c->mask + 1) && rebuild(fs, 0) &&
        c->count + 2 > c->mask + 1)
        return NULL;
    e = slot_of(c, ino);
    e->ino = ino;
    e->nlookup = e->dirty_seq = e->data_seq = e->orphan_link = 0;
    e->linkable = 0;
    c->count++;
    return e;
}

static struct icache_entry *find(struct fs *fs, uint64_t ino)
{
    struct icache_entry *e = slot_of(fs->icache, ino);
    return e->ino ? e : NULL;
}

void fs_icache_ref(struct fs *fs, uint64_t ino)
{
    struct icache_entry *e = get_or_add(fs, ino);
    if (e)
        e->nlookup++;
}

uint64_t fs_icache_unref(struct fs *fs, uint64_t ino, uint64_t n)
{
    struct icache_entry *e = find(fs, ino);
    if (!e)
        return 0;
    e->nlookup = e->nlookup > n ? e->nlookup - n : 0;
    return e->nlookup;
}

uint64_t fs_icache_refs(struct fs *fs, uint64_t ino)
{
    struct icache_entry *e = find(fs, ino);
    return e ? e->nlookup : 0;
}

/* Raises *field to seq, or *lost when there is no entry. */
static void raise_seq(uint64_t *field, uint64_t *lost, uint64_t seq)
{
    uint64_t *p = field ? field : lost;
    if (seq > *p)
        *p = seq;
}

void fs_icache_set_dirty_seq(struct fs *fs, uint64_t ino, uint64_t seq)
{
    struct icache_entry *e = get_or_add(fs, ino);
    raise_seq(e ? &e->dirty_seq : NULL, &fs->icache->lost_dirty_seq, seq);
}

static uint64_t max_seq(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

uint64_t fs_icache_dirty_seq(struct fs *fs, uint64_t ino)
{
    struct icache_entry *e = find(fs, ino);
    return max_seq(e ? e->dirty_seq : 0, fs->icache->lost_dirty_seq);
}

void fs_icache_set_data_seq(struct fs *fs, uint64_t ino, uint64_t seq)
{
    struct icache_entry *e = get_or_add(fs, ino);
    raise_seq(e ? &e->data_seq : NULL, &fs->icache->lost_data_seq, seq);
}

uint64_t fs_icache_data_seq(struct fs *fs, uint64_t ino)
{
    struct icache_entry *e = find(fs, ino);
    return max_seq(e ? e->data_seq : 0, fs->icache->lost_data_seq);
}

uint64_t fs_icache_count(struct fs *fs)
{
    return fs->icache ? fs->icache->count : 0;
}

int fs_icache_orphan_set(struct fs *fs, uint64_t ino, uint64_t prev)
{
    struct icache_entry *e = get_or_add(fs, ino);
    if (!e)
        return -ENOMEM;
    e->orphan_link = prev + 1;
    fs->icache->orphan_changed = 1;
    return 0;
}

int fs_icache_orphan_get(struct fs *fs, uint64_t ino, uint64_t *prev)
{
    struct icache_entry *e = find(fs, ino);
    if (!e || !e->orphan_link)
        return 0;
    *prev = e->orphan_link - 1;
    return 1;
}

void fs_icache_orphan_clear(struct fs *fs, uint64_t ino)
{
    struct icache_entry *e = find(fs, ino);
    if (e) {
        e->orphan_link = 0;
        fs->icache->orphan_changed = 1;
    }
}

int fs_icache_orphan_changed(struct fs *fs)
{
    int changed = fs->icache->orphan_changed;
    fs->icache->orphan_changed = 0;
    return changed;
}

int fs_icache_set_linkable(struct fs *fs, uint64_t ino, int on)
{
    struct icache_entry *e = on ? get_or_add(fs, ino) : find(fs, ino);
    if (e)
        e->linkable = on;
    return e || !on ? 0 : -ENOMEM;
}

int fs_icache_linkable(struct fs *fs, uint64_t ino)
{
    struct icache_entry *e = find(fs, ino);
    return e && e->linkable;
}

void fs_icache_orphan_reset(struct fs *fs)
{
    struct fs_icache *c = fs->icache;
    for (uint64_t i = 0; i <= c->mask; i++)
        c->slots[i].orphan_link = 0;
}
