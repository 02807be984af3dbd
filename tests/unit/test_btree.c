/*
 * Unit tests of the B+tree (src/fs/btree.h) over an in-memory block store.
 *
 * The store can run in "shadow" mode, which mimics the journal: write()
 * returns a separate copy of the block and scribbles over the previous
 * version, so a tree that kept using a read pointer after asking for the
 * writable copy would see garbage; ms_commit() makes the copies current.
 *
 * Environment: BT_SEED (default fixed, printed), BT_RANDOM_N (size of the
 * random test; default 1,000,000, 100,000 under AddressSanitizer).
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "fs/btree.h"
#include "fs/format.h"

#if defined(__SANITIZE_ADDRESS__)
#define BT_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BT_UNDER_ASAN 1
#endif
#endif
#ifndef BT_UNDER_ASAN
#define BT_UNDER_ASAN 0
#endif

#define BS MMAPFS_BLOCK_SIZE
#define MAXV MMAPFS_BTREE_MAX_VALUE
#define OWNER 4242u

/* ==== random numbers ============================================================ */

static uint64_t g_seed = 0x6d6d617066730001ull;
static uint64_t g_rng;

/* splitmix64 finalizer: a bijection of uint64_t. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Next pseudo-random number (splitmix64). */
static uint64_t rnd(void)
{
    g_rng += 0x9e3779b97f4a7c15ull;
    return mix64(g_rng);
}

/* Uniform-ish number in [0, n). */
static uint64_t rnd_below(uint64_t n)
{
    return rnd() % n;
}

/* Seconds of monotonic time. */
static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ==== in-memory store ============================================================= */

#define MS_BASE 1000u   /* first block number handed out; lower ones are unreadable */

struct mstore {
    struct bt_store st;
    uint8_t **home;        /* [slot] current (or committed) content, NULL = free */
    uint8_t **shadow;      /* [slot] writable copy in the running "transaction" */
    uint64_t cap, next;
    uint64_t *freelist, nfree;
    uint64_t *txn, ntxn;
    uint64_t live, allocs, frees, goal0_allocs;
    uint64_t op_allocs, max_op_blocks;   /* blocks changed by one "transaction" */
    uint64_t bad_reads, bad_writes, bad_frees;
    bool shadow_mode;
    long alloc_budget;     /* successful allocations left; < 0 = unlimited */
    long write_budget;     /* successful writes left; < 0 = unlimited */
};

/* Slot of blk, or -1 when blk is not a live block. */
static int64_t ms_slot(const struct mstore *ms, uint64_t blk)
{
    if (blk < MS_BASE || blk - MS_BASE >= ms->next || !ms->home[blk - MS_BASE])
        return -1;
    return (int64_t)(blk - MS_BASE);
}

/* bt_store.read */
static const void *ms_read(void *ctx, uint64_t blk)
{
    struct mstore *ms = ctx;
    int64_t s = ms_slot(ms, blk);
    if (s < 0) {
        ms->bad_reads++;
        return NULL;
    }
    return ms->shadow[s] ? ms->shadow[s] : ms->home[s];
}

/* bt_store.write */
static void *ms_write(void *ctx, uint64_t blk)
{
    struct mstore *ms = ctx;
    int64_t s = ms_slot(ms, blk);
    if (s < 0) {
        ms->bad_writes++;
        return NULL;
    }
    if (ms->write_budget == 0)
        return NULL;
    if (ms->write_budget > 0)
        ms->write_budget--;
    if (!ms->shadow_mode)
        return ms->home[s];
    if (!ms->shadow[s]) {
        uint8_t *c = aligned_alloc(BS, BS);
        assert_non_null(c);
        memcpy(c, ms->home[s], BS);
        memset(ms->home[s], 0xA5, BS);      /* stale pointers now see garbage */
        ms->shadow[s] = c;
        ms->txn[ms->ntxn++] = (uint64_t)s;
    }
    return ms->shadow[s];
}

/* Grows the slot arrays to hold at least n slots. */
static void ms_grow(struct mstore *ms, uint64_t n)
{
    if (n <= ms->cap)
        return;
    uint64_t cap = ms->cap ? ms->cap * 2 : 1024;
    while (cap < n)
        cap *= 2;
    ms->home = realloc(ms->home, cap * sizeof(*ms->home));
    ms->shadow = realloc(ms->shadow, cap * sizeof(*ms->shadow));
    ms->freelist = realloc(ms->freelist, cap * sizeof(*ms->freelist));
    ms->txn = realloc(ms->txn, cap * sizeof(*ms->txn));
    assert_true(ms->home && ms->shadow && ms->freelist && ms->txn);
    memset(ms->home + ms->cap, 0, (cap - ms->cap) * sizeof(*ms->home));
    memset(ms->shadow + ms->cap, 0, (cap - ms->cap) * sizeof(*ms->shadow));
    ms->cap = cap;
}

/* bt_store.alloc */
static int ms_alloc(void *ctx, uint64_t goal, uint64_t *blk, void **out)
{
    struct mstore *ms = ctx;
    if (ms->alloc_budget == 0)
        return -ENOSPC;
    if (ms->alloc_budget > 0)
        ms->alloc_budget--;
    uint64_t s;
    if (ms->nfree) {
        s = ms->freelist[--ms->nfree];
    } else {
        ms_grow(ms, ms->next + 1);
        s = ms->next++;
    }
    uint8_t *p = aligned_alloc(BS, BS);
    assert_non_null(p);
    memset(p, 0, BS);
    ms->home[s] = p;
    ms->live++;
    ms->allocs++;
    ms->op_allocs++;
    if (goal == 0)
        ms->goal0_allocs++;
    *blk = s + MS_BASE;
    *out = p;
    return 0;
}

/* bt_store.free */
static void ms_free(void *ctx, uint64_t blk)
{
    struct mstore *ms = ctx;
    int64_t s = ms_slot(ms, blk);
    if (s < 0) {
        ms->bad_frees++;
        return;
    }
    free(ms->home[s]);
    ms->home[s] = NULL;
    free(ms->shadow[s]);          /* stays in txn[]: ms_commit skips it */
    ms->shadow[s] = NULL;
    ms->freelist[ms->nfree++] = (uint64_t)s;
    ms->live--;
    ms->frees++;
}

/* Makes every shadow copy the current content (end of a "transaction"). */
static void ms_commit(struct mstore *ms)
{
    if (ms->ntxn + ms->op_allocs > ms->max_op_blocks)
        ms->max_op_blocks = ms->ntxn + ms->op_allocs;
    ms->op_allocs = 0;
    for (uint64_t i = 0; i < ms->ntxn; i++) {
        uint64_t s = ms->txn[i];
        if (!ms->shadow[s])
            continue;
        memcpy(ms->home[s], ms->shadow[s], BS);
        free(ms->shadow[s]);
        ms->shadow[s] = NULL;
    }
    ms->ntxn = 0;
}

/* Current content of live block blk, writable (for corrupting it). */
static uint8_t *ms_block(struct mstore *ms, uint64_t blk)
{
    int64_t s = ms_slot(ms, blk);
    assert_true(s >= 0);
    return ms->shadow[s] ? ms->shadow[s] : ms->home[s];
}

/* CRC of the content of every live block, to prove an operation changed nothing. */
static uint64_t ms_fingerprint(struct mstore *ms)
{
    uint64_t h = 0;
    for (uint64_t s = 0; s < ms->next; s++) {
        if (!ms->home[s])
            continue;
        const uint8_t *p = ms->shadow[s] ? ms->shadow[s] : ms->home[s];
        h = mix64(h ^ (s + MS_BASE)) ^ bt_block_checksum(s, p);
        h = mix64(h ^ ((const uint64_t *)p)[0]);   /* magic + checksum words */
    }
    return h;
}

static struct mstore *ms_new(bool shadow_mode)
{
    struct mstore *ms = calloc(1, sizeof(*ms));
    assert_non_null(ms);
    ms->st = (struct bt_store){ ms, ms_read, ms_write, ms_alloc, ms_free, NULL, NULL };
    ms->shadow_mode = shadow_mode;
    ms->alloc_budget = -1;
    ms->write_budget = -1;
    return ms;
}

static void ms_destroy(struct mstore *ms)
{
    for (uint64_t s = 0; s < ms->next; s++) {
        free(ms->home[s]);
        free(ms->shadow[s]);
    }
    free(ms->home);
    free(ms->shadow);
    free(ms->freelist);
    free(ms->txn);
    free(ms);
}

/* A tree of owner OWNER, directory type, over ms. */
static struct bt_tree tree_on(struct mstore *ms)
{
    return (struct bt_tree){ .store = &ms->st, .root = 0, .owner = OWNER,
                             .type = MMAPFS_TREE_DIR };
}

/* ==== tree inspection helpers ========================================================== */

struct node_list {
    uint64_t blk[1 << 16];
    unsigned level[1 << 16];
    unsigned n, max_level;
};

static int collect_node(void *ctx, uint64_t blk, unsigned level)
{
    struct node_list *nl = ctx;
    if (nl->n < (1u << 16)) {
        nl->blk[nl->n] = blk;
        nl->level[nl->n] = level;
        nl->n++;
    }
    if (level > nl->max_level)
        nl->max_level = level;
    return 0;
}

/* Lists the nodes of t in walk order (asserts the walk succeeds). */
static struct node_list *list_nodes(struct bt_tree *t)
{
    struct node_list *nl = calloc(1, sizeof(*nl));
    char msg[256];
    struct bt_walk w = { .node_fn = collect_node, .ctx = nl, .err_msg = msg, .err_len = sizeof msg };
    assert_non_null(nl);
    int err = bt_walk(t, &w);
    if (err)
        print_message("walk: %s\n", msg);
    assert_int_equal(err, 0);
    return nl;
}

/* i-th node of the given level in key order, or 0. */
static uint64_t nth_node(const struct node_list *nl, unsigned level, unsigned i)
{
    for (unsigned k = 0; k < nl->n; k++)
        if (nl->level[k] == level && i-- == 0)
            return nl->blk[k];
    return 0;
}

/* Recomputes the checksum of a node after a deliberate change. */
static void fix_csum(struct mstore *ms, uint64_t blk)
{
    uint8_t *p = ms_block(ms, blk);
    ((struct mmapfs_disk_btree_header *)p)->checksum = bt_block_checksum(blk, p);
}

static struct mmapfs_disk_btree_header *hdr_of(struct mstore *ms, uint64_t blk)
{
    return (struct mmapfs_disk_btree_header *)ms_block(ms, blk);
}

static struct mmapfs_disk_btree_item *items_of(struct mstore *ms, uint64_t blk)
{
    return (struct mmapfs_disk_btree_item *)(ms_block(ms, blk) + 32);
}

static struct mmapfs_disk_btree_ptr *ptrs_of(struct mstore *ms, uint64_t blk)
{
    return (struct mmapfs_disk_btree_ptr *)(ms_block(ms, blk) + 32);
}

/* Value of key k in the simple tests: len bytes derived from k and tag. */
static void simple_val(uint8_t *buf, uint64_t k, unsigned tag, unsigned len)
{
    for (unsigned i = 0; i < len; i++)
        buf[i] = (uint8_t)(mix64(k * 1315423911u + tag * 7919u + i / 8) >> (8 * (i % 8)));
}

/* Asserts that key k is present with simple_val(k, tag, len). */
static void expect_val(struct bt_tree *t, uint64_t k, unsigned tag, unsigned len)
{
    uint8_t want[MAXV], got[MAXV];
    size_t glen = sizeof got;
    simple_val(want, k, tag, len);
    assert_int_equal(bt_lookup(t, k, got, &glen), 0);
    assert_int_equal(glen, len);
    assert_memory_equal(got, want, len);
}

/* Inserts key k with simple_val(k, tag, len). */
static void put_val(struct bt_tree *t, uint64_t k, unsigned tag, unsigned len)
{
    uint8_t v[MAXV];
    simple_val(v, k, tag, len);
    assert_int_equal(bt_insert(t, k, v, len), 0);
}

/* Full validation; returns the number of items. */
static uint64_t count_items_cb_n;
static int count_items_cb(void *ctx, uint64_t key, const void *val, size_t len)
{
    (void)ctx; (void)key; (void)val; (void)len;
    count_items_cb_n++;
    return 0;
}

static uint64_t walk_ok(struct bt_tree *t)
{
    char msg[256];
    struct bt_walk w = { .item_fn = count_items_cb, .err_msg = msg, .err_len = sizeof msg };
    count_items_cb_n = 0;
    int err = bt_walk(t, &w);
    if (err)
        print_message("walk error %d: %s\n", err, msg);
    assert_int_equal(err, 0);
    return count_items_cb_n;
}

/* Asserts bt_walk reports -EUCLEAN with a message; returns nothing. */
static void walk_bad(struct bt_tree *t, int want)
{
    char msg[256];
    struct bt_walk w = { .err_msg = msg, .err_len = sizeof msg };
    assert_int_equal(bt_walk(t, &w), want);
    assert_true(strlen(msg) > 0);
}

/* ==== basic cases ================================================================== */

static void test_empty(void **state)
{
    (void)state;
    struct mstore *ms = ms_new(true);
    struct bt_tree t = tree_on(ms);
    uint8_t v[8] = {1};
    size_t len = sizeof v;
    uint64_t k, nodes = 99;

    assert_int_equal(bt_lookup(&t, 1, v, &len), -ENOENT);
    assert_int_equal(bt_lookup_le(&t, UINT64_MAX, &k, v, &len), -ENOENT);
    assert_int_equal(bt_lookup_ge(&t, 0, &k, v, &len), -ENOENT);
    assert_int_equal(bt_update(&t, 1, v, 1), -ENOENT);
    assert_int_equal(bt_delete(&t, 1), -ENOENT);
    assert_int_equal(bt_count_nodes(&t, &nodes), 0);
    assert_int_equal(nodes, 0);
    assert_int_equal(walk_ok(&t), 0);
    assert_int_equal(bt_destroy(&t), 0);
    assert_int_equal(t.root, 0);
    assert_int_equal(ms->live, 0);
    ms_destroy(ms);
}

static void test_insert_lookup_few(void **state)
{
    (void)state;
    struct mstore *ms = ms_new(true);
    struct bt_tree t = tree_on(ms);
    const uint64_t keys[] = { 5, 1, 9, 3, 0, UINT64_MAX, 7 };
    const size_t nk = sizeof keys / sizeof keys[0];

    for (size_t i = 0; i < nk; i++) {
        put_val(&t, keys[i], 0, 10 + (unsigned)i);
        ms_commit(ms);
    }
    for (size_t i = 0; i < nk; i++)
        expect_val(&t, keys[i], 0, 10 + (unsigned)i);
    assert_int_equal(walk_ok(&t), nk);

    /* Short buffer: truncated copy, real length reported; NULL buffer. */
    uint8_t want[32], buf[4];
    size_t len = sizeof buf;
    simple_val(want, 9, 0, 12);
    assert_int_equal(bt_lookup(&t, 9, buf, &len), 0);
    assert_int_equal(len, 12);
    assert_memory_equal(buf, want, 4);
    len = 0;
    assert_int_equal(bt_lookup(&t, 9, NULL, &len), 0);
    assert_int_equal(len, 12);
    assert_int_equal(bt_lookup(&t, 9, NULL, NULL), 0);
    assert_int_equal(bt_lookup(&t, 2, NULL, NULL), -ENOENT);
    assert_int_equal(bt_lookup(&t, 10, NULL, NULL), -ENOENT);

    uint64_t f;
    assert_int_equal(bt_lookup_le(&t, 4, &f, NULL, NULL), 0);
    assert_int_equal(f, 3);
    assert_int_equal(bt_lookup_ge(&t, 4, &f, NULL, NULL), 0);
    assert_int_equal(f, 5);
    assert_int_equal(bt_lookup_ge(&t, 10, &f, NULL, NULL), 0);
    assert_int_equal(f, UINT64_MAX);
    assert_int_equal(bt_lookup_le(&t, UINT64_MAX - 1, &f, NULL, NULL), 0);
    assert_int_equal(f, 9);
    assert_int_equal(bt_lookup_le(&t, 0, &f, NULL, NULL), 0);
    assert_int_equal(f, 0);

    uint64_t nodes;
    assert_int_equal(bt_count_nodes(&t, &nodes), 0);
    assert_int_equal(nodes, 1);
    assert_int_equal(bt_destroy(&t), 0);
    assert_int_equal(ms->live, 0);
    assert_int_equal(ms->bad_reads + ms->bad_writes + ms->bad_frees, 0);
    ms_destroy(ms);
}

static void test_duplicate(void **state)
{
    (void)state;
    struct mstore *ms = ms_new(true);
    struct bt_tree t = tree_on(ms);

    for (uint64_t k = 0; k < 2000; k++)
        put_val(&t, k * 3, 0, 100);
    ms_commit(ms);
    uint64_t before = ms_fingerprint(ms);
    uint8_t v[MAXV] = {0};
    for (uint64_t k = 0; k < 2000; k += 37)
        assert_int_equal(bt_insert(&t, k * 3, v, 50), -EEXIST);
    assert_int_equal(ms_fingerprint(ms), before);
    for (uint64_t k = 0; k < 2000; k++)
        expect_val(&t, k * 3, 0, 100);
    assert_int_equal(bt_destroy(&t), 0);
    assert_int_equal(ms->live, 0);
    ms_destroy(ms);
}

static void test_value_limits(void **state)
{
    (void)state;
    struct mstore *ms = ms_new(true);
    struct bt_tree t = tree_on(ms);
    uint8_t v[MAXV + 8];

    simple_val(v, 1, 0, sizeof v);
    assert_int_equal(bt_insert(&t, 1, v, MAXV + 1), -EINVAL);
    assert_int_equal(bt_insert(&t, 1, v, 0), -EINVAL);
    assert_int_equal(bt_insert(&t, 1, NULL, 5), -EINVAL);
    assert_int_equal(t.root, 0);
    assert_int_equal(ms->live, 0);

    /* Many max-size values: 13 per leaf, lots of splits. */
    for (uint64_t k = 0; k < 3000; k++) {
        put_val(&t, mix64(k), 1, MAXV);
        ms_commit(ms);
    }
    for (uint64_t k = 0; k < 3000; k++)
        expect_val(&t, mix64(k), 1, MAXV);
    assert_int_equal(walk_ok(&t), 3000);
    assert_int_equal(bt_update(&t, mix64(5), v, MAXV + 1), -EINVAL);
    assert_int_equal(bt_update(&t, mix64(5), v, 0), -EINVAL);
    expect_val(&t, mix64(5), 1, MAXV);
    /* Shrink every value to 1 byte then grow back to the maximum. */
    for (uint64_t k = 0; k < 3000; k++) {
        simple_val(v, mix64(k), 2, 1);
        assert_int_equal(bt_update(&t, mix64(k), v, 1), 0);
    }
    for (uint64_t k = 0; k < 3000; k++) {
        simple_val(v, mix64(k), 3, MAXV);
        assert_int_equal(bt_update(&t, mix64(k), v, MAXV), 0);
        ms_commit(ms);
    }
    for (uint64_t k = 0; k < 3000; k++)
        expect_val(&t, mix64(k), 3, MAXV);
    assert_int_equal(walk_ok(&t), 3000);
    assert_int_equal(bt_destroy(&t), 0);
    assert_int_equal(ms->live, 0);
    ms_destroy(ms);
}

static void test_update(void **state)
{
    (void)state;
    struct mstore *ms = ms_new(true);
    struct bt_tree t = tree_on(ms);
    enum { N = 4000 };
    static unsigned len[N], tag[N];
    uint8_t v[MAXV];

    assert_int_equal(bt_update(&t, 1, v, 1), -ENOENT);
    for (unsigned i = 0; i < N; i++) {
        len[i] = 1 + (unsigned)rnd_below(60);
        put_val(&t, i, 0, len[i]);
    }
    assert_int_equal(bt_update(&t, N + 5, v, 1), -ENOENT);
    /* Random shorter / longer updates: holes, compaction, splits. */
    for (unsigned r = 0; r < 40000; r++) {
        unsigned i = (unsigned)rnd_below(N);
        unsigned nl = 1 + (unsigned)rnd_below(rnd_below(4) ? 80 : MAXV);
        tag[i] = r + 1;
        len[i] = nl;
        simple_val(v, i, tag[i], nl);
        assert_int_equal(bt_update(&t, i, v, nl), 0);
        ms_commit(ms);
        if (r % 10000 == 0)
            assert_int_equal(walk_ok(&t), N);
    }
    for (unsigned i = 0; i < N; i++)
        expect_val(&t, i, tag[i], len[i]);
    assert_int_equal(walk_ok(&t), N);
    assert_int_equal(bt_destroy(&t), 0);
    assert_int_equal(ms->live, 0);
    ms_destroy(ms);
}

static void test_delete_to_empty(void **state)
{
    (void)state;
    struct mstore *ms = ms_new(true);
    struct bt_tree t = tree_on(ms);
    enum { N = 20000 };
    static uint64_t keys[N];

    for (unsigned i = 0; i < N; i++) {
        keys[i] = mix64(i + 77);
        put_val(&t, keys[i], 0, 20 + (unsigned)(keys[i] % 200));
        ms_commit(ms);
    }
    struct node_list *nl = list_nodes(&t);
    assert_true(nl->max_level >= 2);
    free(nl);
    for (unsigned i = N - 1; i > 0; i--) {
        unsigned j = (unsigned)rnd_below(i + 1);
        uint64_t x = keys[i]; keys[i] = keys[j]; keys[j] = x;
    }
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(bt_delete(&t, keys[i]), 0);
        ms_commit(ms);
        assert_int_equal(bt_delete(&t, keys[i]), -ENOENT);
        if (i % 2000 == 0)
            assert_int_equal(walk_ok(&t), N - i - 1);
    }
    assert_int_equal(t.root, 0);
    assert_int_equal(ms->live, 0);
    assert_int_equal(ms->allocs, ms->frees);
    assert_int_equal(ms->bad_reads + ms->bad_writes + ms->bad_frees, 0);
    /* And it is usable again. */
    put_val(&t, 42, 0, 5);
    expect_val(&t, 42, 0, 5);
    assert_int_equal(bt_delete(&t, 42), 0);
    assert_int_equal(t.root, 0);
    assert_int_equal(ms->live, 0);
    ms_destroy(ms);
}

/* Keys 10*i: checks le/ge for every key around every stored key. */
static void check_le_ge_grid(struct bt_tree *t, const bool *present, unsigned n)
{
    uint64_t f;
    uint8_t v[MAXV];
    for (uint64_t q = 0; q <= 10ull * n + 10; q++) {
        /* reference */
        int64_t le = -1, ge = -1;
        for (int64_t i = (int64_t)(q / 10); i >= 0; i--)
            if ((uint64_t)i < n && present[i] && (uint64_t)i * 10 <= q) { le = i; break; }
        for (uint64_t i = (q + 9) / 10; i < n; i++)
            if (present[i]) { ge = (int64_t)i; break; }
        size_t len = sizeof v;
        int err = bt_lookup_le(t, q, &f, v, &len);
        if (le < 0) {
            assert_int_equal(err, -ENOENT);
        } else {
            assert_int_equal(err, 0);
            assert_int_equal(f, (uint64_t)le * 10);
            assert_int_equal(len, 200);
            assert_int_equal(v[0], (uint8_t)(f >> 1));
        }
        len = sizeof v;
        err = bt_lookup_ge(t, q, &f, v, &len);
        if (ge < 0) {
            assert_int_equal(err, -ENOENT);
        } else {
            assert_int_equal(err, 0);
            assert_int_equal(f, (uint64_t)ge * 10);
            assert_int_equal(v[0], (uint8_t)(f >> 1));
        }
    }
}

static void test_le_ge_boundaries(void **state)
{
    (void)state;
    struct mstore *ms = ms_new(true);
    struct bt_tree t = tree_on(ms);
    enum { N = 1500 };
    static bool present[N];
    uint8_t v[200];

    for (unsigned i = 0; i < N; i++) {
        memset(v, (uint8_t)(i * 10 >> 1), sizeof v);
        assert_int_equal(bt_insert(&t, (uint64_t)i * 10, v, sizeof v), 0);
        present[i] = true;
    }
    ms_commit(ms);
    struct node_list *nl = list_nodes(&t);
    assert_true(nl->max_level >= 1);
    free(nl);
    check_le_ge_grid(&t, present, N);
    /* Empty out whole leaves and leaf edges: the next key is further away. */
    for (unsigned i = 0; i < N; i++) {
        if ((i / 19) % 3 == 1 || i % 19 == 0 || i % 19 == 18 || i == 0) {
            assert_int_equal(bt_delete(&t, (uint64_t)i * 10), 0);
            present[i] = false;
        }
    }
    ms_commit(ms);
    walk_ok(&t);
    check_le_ge_grid(&t, present, N);

    /* Extreme keys. */
    uint64_t f;
    memset(v, 0, sizeof v);
    assert_int_equal(bt_insert(&t, UINT64_MAX, v, 1), 0);
    assert_int_equal(bt_lookup_ge(&t, 10ull * N, &f, NULL, NULL), 0);
    assert_int_equal(f, UINT64_MAX);
    assert_int_equal(bt_lookup_le(&t, UINT64_MAX, &f, NULL, NULL), 0);
    assert_int_equal(f, UINT64_MAX);
    assert_int_equal(bt_lookup_le(&t, 5, &f, NULL, NULL), -ENOENT);
    assert_int_equal(bt_destroy(&t), 0);
    assert_int_equal(ms->live, 0);
    ms_destroy(ms);
}

/* ==== density ===================================================================== */

static void test_sequential_dense(void **state)
{
    (void)state;
    struct mstore *ms = ms_new(false);
    struct bt_tree t = tree_on(ms);
    t.type = MMAPFS_TREE_EXTENTS;
    enum { N = 200000, VAL = 16 };
    struct mmapfs_disk_extent e = { 0 };
    double t0 = now_sec();

    for (uint64_t k = 0; k < N; k++) {
        e.start = 1000 + k;
        e.len = 1;
        assert_int_equal(bt_insert(&t, k * 8, &e, sizeof e), 0);
    }
    double t1 = now_sec();
    uint64_t nodes;
    assert_int_equal(bt_count_nodes(&t, &nodes), 0);
    const uint64_t per_leaf = (BS - 32) / (12 + VAL);           /* 145 */
    uint64_t leaves = (N + per_leaf - 1) / per_leaf, minimal = leaves, level = leaves;
    while (level > 1) {
        level = (level + 253) / 254;
        minimal += level;
    }
    print_message("sequential %u keys: %" PRIu64 " nodes (minimal %" PRIu64 "), %.0f inserts/s\n",
                  (unsigned)N, nodes, minimal, N / (t1 - t0));
    assert_true(nodes <= minimal + minimal / 100);
    assert_int_equal(nodes, ms->live);
    assert_int_equal(ms->goal0_allocs, 1);       /* every split asks for a neighbour */
    assert_int_equal(walk_ok(&t), N);
    for (uint64_t k = 0; k < N; k++) {
        struct mmapfs_disk_extent g;
        size_t len = sizeof g;
        uint64_t f;
        assert_int_equal(bt_lookup_le(&t, k * 8 + 7, &f, &g, &len), 0);
        assert_int_equal(f, k * 8);
        assert_int_equal(g.start, 1000 + k);
    }
    /* Delete in order: leaves empty one after the other. */
    for (uint64_t k = 0; k < N; k++)
        assert_int_equal(bt_delete(&t, k * 8), 0);
    assert_int_equal(t.root, 0);
    assert_int_equal(ms->live, 0);

    /* Descending inserts: every insert is a new smallest key. */
    for (uint64_t k = 50000; k-- > 0;) {
        e.start = k;
        assert_int_equal(bt_insert(&t, k, &e, sizeof e), 0);
    }
    assert_int_equal(walk_ok(&t), 50000);
    uint64_t f;
    assert_int_equal(bt_lookup_ge(&t, 0, &f, NULL, NULL), 0);
    assert_int_equal(f, 0);
    assert_int_equal(bt_destroy(&t), 0);
    assert_int_equal(ms->live, 0);
    ms_destroy(ms);
}

/* ==== random 1M ====================================================================== */

struct ref {
    uint32_t n;            /* universe: indices 0..n-1 */
    uint32_t *ver;         /* current value version of index i */
    int32_t *pos;          /* position in list[], -1 = absent */
    uint32_t *list, nlist; /* present indices */
    uint64_t salt;
    /* walk accounting */
    uint64_t items, nodes;
    unsigned max_level;
    uint64_t value_bytes;
};

static uint64_t ref_key(const struct ref *r, uint32_t i)
{
    return mix64((uint64_t)i ^ r->salt);
}

/* Dirent-like value length 10..265 for version ver of index i. */
static unsigned ref_len(uint32_t i, uint32_t ver)
{
    return 10 + (unsigned)(mix64(((uint64_t)i << 32) ^ ver ^ 0x5555) % 256);
}

/* Value content: index, version, then pseudo-random bytes. */
static void ref_val(uint8_t *buf, uint32_t i, uint32_t ver, unsigned len)
{
    memcpy(buf, &i, 4);
    memcpy(buf + 4, &ver, 4);
    uint64_t s = mix64(((uint64_t)ver << 32) | i);
    for (unsigned k = 8; k < len; k++)
        buf[k] = (uint8_t)(mix64(s + k / 8) >> (8 * (k % 8)));
}

static void ref_add(struct ref *r, uint32_t i)
{
    r->pos[i] = (int32_t)r->nlist;
    r->list[r->nlist++] = i;
}

static void ref_del(struct ref *r, uint32_t i)
{
    uint32_t p = (uint32_t)r->pos[i], last = r->list[--r->nlist];
    r->list[p] = last;
    r->pos[last] = (int32_t)p;
    r->pos[i] = -1;
}

/* bt_walk item callback: every item must be exactly the reference's. */
static int ref_item(void *ctx, uint64_t key, const void *val, size_t len)
{
    struct ref *r = ctx;
    uint8_t want[MAXV];
    uint32_t i, ver;
    if (len < 8)
        return -100;
    memcpy(&i, val, 4);
    memcpy(&ver, (const uint8_t *)val + 4, 4);
    if (i >= r->n || ref_key(r, i) != key || r->pos[i] < 0 || r->ver[i] != ver ||
        len != ref_len(i, ver))
        return -101;
    ref_val(want, i, ver, (unsigned)len);
    if (memcmp(want, val, len))
        return -102;
    r->items++;
    r->value_bytes += len;
    return 0;
}

static int ref_node(void *ctx, uint64_t blk, unsigned level)
{
    struct ref *r = ctx;
    (void)blk;
    r->nodes++;
    if (level > r->max_level)
        r->max_level = level;
    return 0;
}

/* Full check of the tree against the reference. */
static void ref_check(struct ref *r, struct bt_tree *t, struct mstore *ms)
{
    char msg[256] = "";
    struct bt_walk w = { ref_node, ref_item, r, msg, sizeof msg };
    r->items = r->nodes = r->value_bytes = 0;
    r->max_level = 0;
    int err = bt_walk(t, &w);
    if (err)
        print_message("walk: %d %s\n", err, msg);
    assert_int_equal(err, 0);
    assert_int_equal(r->items, r->nlist);
    assert_int_equal(r->nodes, ms->live);
    uint64_t nodes;
    assert_int_equal(bt_count_nodes(t, &nodes), 0);
    assert_int_equal(nodes, r->nodes);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_random_1m(void **state)
{
    (void)state;
    uint32_t n = BT_UNDER_ASAN ? 100000 : 1000000;
    const char *env = getenv("BT_RANDOM_N");
    if (env && atol(env) > 0)
        n = (uint32_t)atol(env);
    struct mstore *ms = ms_new(true);
    struct bt_tree t = tree_on(ms);
    struct ref r = { .n = n, .salt = rnd() };
    r.ver = calloc(n, sizeof *r.ver);
    r.pos = malloc(n * sizeof *r.pos);
    r.list = malloc(n * sizeof *r.list);
    uint32_t *perm = malloc(n * sizeof *perm);
    assert_true(r.ver && r.pos && r.list && perm);
    for (uint32_t i = 0; i < n; i++) {
        r.pos[i] = -1;
        perm[i] = i;
    }
    for (uint32_t i = n - 1; i > 0; i--) {
        uint32_t j = (uint32_t)rnd_below(i + 1), x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
    uint8_t v[MAXV], g[MAXV];
    uint64_t ops = 0, walks = 0;
    double t0 = now_sec(), walk_time = 0;

    /* Phase 1: insert every index once, in random order, mixed with deletes
     * (20%), updates (10%) and lookups (30%) of random indices. */
    for (uint32_t s = 0; s < n; s++) {
        uint32_t i = perm[s];
        unsigned len = ref_len(i, r.ver[i]);
        ref_val(v, i, r.ver[i], len);
        assert_int_equal(bt_insert(&t, ref_key(&r, i), v, len), 0);
        ref_add(&r, i);
        ms_commit(ms);
        ops++;
        unsigned dice = (unsigned)rnd_below(100);
        if (dice < 20) {
            uint32_t d = r.list[rnd_below(r.nlist)];
            assert_int_equal(bt_delete(&t, ref_key(&r, d)), 0);
            ref_del(&r, d);
            r.ver[d]++;
            ms_commit(ms);
            ops++;
        } else if (dice < 30) {
            uint32_t u = r.list[rnd_below(r.nlist)];
            r.ver[u]++;
            len = ref_len(u, r.ver[u]);
            ref_val(v, u, r.ver[u], len);
            assert_int_equal(bt_update(&t, ref_key(&r, u), v, len), 0);
            ms_commit(ms);
            ops++;
        } else if (dice < 60) {
            uint32_t q = (uint32_t)rnd_below(n);
            size_t glen = sizeof g;
            int err = bt_lookup(&t, ref_key(&r, q), g, &glen);
            if (r.pos[q] < 0) {
                assert_int_equal(err, -ENOENT);
            } else {
                assert_int_equal(err, 0);
                assert_int_equal(glen, ref_len(q, r.ver[q]));
                ref_val(v, q, r.ver[q], (unsigned)glen);
                assert_memory_equal(g, v, glen);
            }
            ops++;
        }
        if ((s + 1) % (n / 4) == 0) {
            double w0 = now_sec();
            ref_check(&r, &t, ms);
            walk_time += now_sec() - w0;
            walks++;
        }
    }
    /* Phase 2: insert what was deleted: every index present. */
    for (uint32_t i = 0; i < n; i++) {
        if (r.pos[i] >= 0)
            continue;
        unsigned len = ref_len(i, r.ver[i]);
        ref_val(v, i, r.ver[i], len);
        assert_int_equal(bt_insert(&t, ref_key(&r, i), v, len), 0);
        ref_add(&r, i);
        ms_commit(ms);
        ops++;
    }
    double t1 = now_sec(), w0 = t1;
    ref_check(&r, &t, ms);
    walk_time += now_sec() - w0;
    walks++;
    assert_int_equal(r.nlist, n);
    print_message("random: %u keys: height %u, %" PRIu64 " nodes, leaf fill %.0f%%, "
                  "%.2f s build (%" PRIu64 " ops, %.0f ops/s)\n",
                  n, r.max_level + 1, r.nodes,
                  100.0 * (r.value_bytes + 12.0 * n) / ((double)r.nodes * (BS - 32)),
                  t1 - t0 - walk_time, ops, ops / (t1 - t0 - walk_time));

    /* Iteration in key order with lookup_ge, against the sorted keys. */
    uint64_t *sorted = malloc((size_t)n * sizeof *sorted);
    assert_non_null(sorted);
    for (uint32_t i = 0; i < n; i++)
        sorted[i] = ref_key(&r, i);
    qsort(sorted, n, sizeof *sorted, cmp_u64);
    double t2 = now_sec();
    uint64_t k = 0, f;
    for (uint32_t i = 0; i < n; i++) {
        size_t glen = sizeof g;
        assert_int_equal(bt_lookup_ge(&t, k, &f, g, &glen), 0);
        assert_int_equal(f, sorted[i]);
        k = f + 1;
    }
    if (sorted[n - 1] != UINT64_MAX)
        assert_int_equal(bt_lookup_ge(&t, k, &f, NULL, NULL), -ENOENT);
    /* lookup_le of random keys. */
    for (uint32_t q = 0; q < n / 10; q++) {
        uint64_t key = rnd();
        size_t lo = 0, hi = n;     /* first sorted > key */
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (sorted[mid] <= key) lo = mid + 1; else hi = mid;
        }
        int err = bt_lookup_le(&t, key, &f, NULL, NULL);
        if (lo == 0) {
            assert_int_equal(err, -ENOENT);
        } else {
            assert_int_equal(err, 0);
            assert_int_equal(f, sorted[lo - 1]);
        }
    }
    double t3 = now_sec();
    print_message("random: iterate %u keys with lookup_ge + %u lookup_le: %.2f s\n", n, n / 10,
                  t3 - t2);
    free(sorted);

    /* Phase 3: delete everything in random order. */
    for (uint32_t i = n - 1; i > 0; i--) {
        uint32_t j = (uint32_t)rnd_below(i + 1), x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
    double t4 = now_sec(), wt = 0;
    for (uint32_t s = 0; s < n; s++) {
        assert_int_equal(bt_delete(&t, ref_key(&r, perm[s])), 0);
        ref_del(&r, perm[s]);
        ms_commit(ms);
        if ((s + 1) % (n / 3) == 0 && r.nlist) {
            double w1 = now_sec();
            ref_check(&r, &t, ms);
            wt += now_sec() - w1;
            walks++;
        }
    }
    double t5 = now_sec();
    walk_time += wt;
    print_message("random: delete %u keys: %.2f s (%.0f deletes/s); %" PRIu64
                  " full walks: %.2f s\n",
                  n, t5 - t4 - wt, n / (t5 - t4 - wt), walks, walk_time);
    assert_int_equal(t.root, 0);
    assert_int_equal(ms->live, 0);
    assert_int_equal(ms->bad_reads + ms->bad_writes + ms->bad_frees, 0);
    print_message("random: at most %" PRIu64 " blocks changed by one operation (limit %d)\n",
                  ms->max_op_blocks, BT_MAX_OP_BLOCKS);
    assert_true(ms->max_op_blocks <= BT_MAX_OP_BLOCKS);
    free(perm);
    free(r.ver);
    free(r.pos);
    free(r.list);
    ms_destroy(ms);
}

/* bt_scan_ge callback: checks each item against the sorted keys. */
struct scan_check {
    const uint64_t *keys;
    unsigned next, n, stop_after;
};

static int scan_check_one(void *vctx, uint64_t key, const void *val, size_t len)
{
    struct scan_check *sc = vctx;
    uint8_t want[MAXV];

    assert_true(sc->next < sc->n);
    assert_int_equal(key, sc->keys[sc->next]);
    assert_int_equal(len, 1 + key % 120);
    simple_val(want, key, 0, (unsigned)len);
    assert_memory_equal(val, want, len);
    sc->next++;
    return sc->next == sc->stop_after ? 7 : 0;
}

/* A callback for scans of damaged trees: accepts anything. */
static int scan_any(void *vctx, uint64_t key, const void *val, size_t len)
{
    (void)vctx;
    (void)key;
    (void)val;
    return len == 0;
}

/* Iteration with lookup_ge over a tree built in random order, with gaps. */
static void test_iterate_ge(void **state)
{
    (void)state;
    struct mstore *ms = ms_new(true);
    struct bt_tree t = tree_on(ms);
    enum { N = 30000 };
    static uint64_t keys[N];

    for (unsigned i = 0; i < N; i++) {
        keys[i] = rnd() >> 1;
        if (bt_lookup(&t, keys[i], NULL, NULL) == 0) {
            i--;
            continue;
        }
        put_val(&t, keys[i], 0, 1 + (unsigned)(keys[i] % 120));
        ms_commit(ms);
    }
    qsort(keys, N, sizeof keys[0], cmp_u64);
    uint64_t k = 0, f;
    for (unsigned i = 0; i < N; i++) {
        uint8_t got[MAXV], want[MAXV];
        size_t len = sizeof got;
        assert_int_equal(bt_lookup_ge(&t, k, &f, got, &len), 0);
        assert_int_equal(f, keys[i]);
        assert_int_equal(len, 1 + f % 120);
        simple_val(want, f, 0, (unsigned)len);
        assert_memory_equal(got, want, len);
        k = f + 1;
    }
    assert_int_equal(bt_lookup_ge(&t, k, &f, NULL, NULL), -ENOENT);
    /* The same with one scan: from the start, from a key between two, from
     * past the end, and stopped by the callback. */
    struct scan_check sc = { .keys = keys, .n = N };
    assert_int_equal(bt_scan_ge(&t, 0, scan_check_one, &sc), 0);
    assert_int_equal(sc.next, N);
    sc.next = N / 3;
    assert_int_equal(bt_scan_ge(&t, keys[N / 3 - 1] + 1, scan_check_one, &sc), 0);
    assert_int_equal(sc.next, N);
    sc.next = N;
    assert_int_equal(bt_scan_ge(&t, keys[N - 1] + 1, scan_check_one, &sc), 0);
    sc.next = 100;
    sc.stop_after = 5000;
    assert_int_equal(bt_scan_ge(&t, keys[100], scan_check_one, &sc), 7);
    assert_int_equal(sc.next, 5000);
    /* Backwards with lookup_le. */
    k = UINT64_MAX;
    for (unsigned i = N; i-- > 0;) {
        assert_int_equal(bt_lookup_le(&t, k, &f, NULL, NULL), 0);
        assert_int_equal(f, keys[i]);
        k = f - 1;
    }
    assert_int_equal(bt_destroy(&t), 0);
    assert_int_equal(t.root, 0);
    assert_int_equal(ms->live, 0);
    ms_destroy(ms);
}

/* ==== corruption ========================================================================== */

/* A two-level tree: 600 keys i*10, 100-byte values (~36 per leaf). */
static void build_two_level(struct mstore *ms, struct bt_tree *t)
{
    for (uint64_t i = 0; i < 600; i++)
        put_val(t, i * 10, 0, 100);
    ms_commit(ms);
}

/* First key of node blk. */
static uint64_t first_key(struct mstore *ms, uint64_t blk)
{
    return hdr_of(ms, blk)->level ? ptrs_of(ms, blk)[0].key : items_of(ms, blk)[0].key;
}

/* Every access path reports want on the key k that lives in a bad node. */
static void expect_all_fail(struct bt_tree *t, uint64_t k, int want)
{
    uint8_t v[MAXV];
    size_t len = sizeof v;
    uint64_t f;
    simple_val(v, k, 9, 50);
    assert_int_equal(bt_lookup(t, k, v, &len), want);
    assert_int_equal(bt_lookup_le(t, k, &f, v, &len), want);
    assert_int_equal(bt_lookup_ge(t, k, &f, v, &len), want);
    assert_int_equal(bt_insert(t, k + 1, v, 50), want);
    assert_int_equal(bt_update(t, k, v, 50), want);
    assert_int_equal(bt_delete(t, k), want);
    walk_bad(t, want);
    uint64_t n;
    (void)bt_count_nodes(t, &n);
    uint64_t root = t->root;
    assert_int_equal(bt_destroy(t), want);
    assert_int_equal(t->root, root);
}

static void test_corrupt_flip(void **state)
{
    (void)state;
    struct mstore *ms = ms_new(true);
    struct bt_tree t = tree_on(ms);
    build_two_level(ms, &t);
    struct node_list *nl = list_nodes(&t);
    uint64_t leaf = nth_node(nl, 0, 3), live = ms->live;
    uint64_t k = first_key(ms, leaf) + 10;
    uint64_t fp = ms_fingerprint(ms);

    /* A flipped byte anywhere in a leaf: header, items, free space, values. */
    const unsigned offs[] = { 0, 5, 9, 17, 23, 40, 600, 2000, 4095 };
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        uint8_t *p = ms_block(ms, leaf);
        p[offs[i]] ^= 0x40;
        expect_all_fail(&t, k, -EUCLEAN);
        char msg[256];
        struct bt_walk w = { .err_msg = msg, .err_len = sizeof msg };
        assert_int_equal(bt_walk(&t, &w), -EUCLEAN);
        if (offs[i] >= 8)
            assert_non_null(strstr(msg, "checksum"));
        p[offs[i]] ^= 0x40;
        assert_int_equal(ms_fingerprint(ms), fp);
        assert_int_equal(ms->live, live);
        expect_val(&t, k, 0, 100);
    }
    /* The root. */
    ms_block(ms, t.root)[100] ^= 1;
    expect_all_fail(&t, k, -EUCLEAN);
    ms_block(ms, t.root)[100] ^= 1;
    assert_int_equal(walk_ok(&t), 600);
    /* A node read from the wrong block: checksum covers the block number. */
    uint64_t other = nth_node(nl, 0, 4);
    uint8_t save[BS];
    memcpy(save, ms_block(ms, other), BS);
    memcpy(ms_block(ms, other), ms_block(ms, leaf), BS);
    walk_bad(&t, -EUCLEAN);
    memcpy(ms_block(ms, other), save, BS);
    assert_int_equal(walk_ok(&t), 600);
    free(nl);
    assert_int_equal(bt_destroy(&t), 0);
    assert_int_equal(ms->live, 0);
    ms_destroy(ms);
}

/* A store that calls a block trusted skips its checksum check and the
 * scan of its body: a stale checksum, or a value length out of range, in
 * a trusted node is accepted; the header and the keys against the
 * parent's bounds are still checked; an untrusted node with the same
 * bytes is refused. */
static uint64_t trusted_blk;
static int trust_one(void *ctx, uint64_t blk)
{
    (void)ctx;
    return blk == trusted_blk;
}

static void test_trusted_skips_checksum_and_body(void **state)
{
    (void)state;
    struct mstore *ms = ms_new(true);
    struct bt_tree t = tree_on(ms);
    build_two_level(ms, &t);
    struct node_list *nl = list_nodes(&t);
    uint64_t leaf = nth_node(nl, 0, 3);
    uint64_t k = first_key(ms, leaf) + 10;
    uint8_t *p = ms_block(ms, leaf);

    p[4] ^= 0x01;                       /* checksum field only */
    expect_all_fail(&t, k, -EUCLEAN);   /* untrusted: refused */
    ms->st.trusted = trust_one;
    trusted_blk = leaf;
    expect_val(&t, k, 0, 100);          /* trusted: accepted */
    p[0] ^= 0x01;                       /* magic: still checked */
    expect_all_fail(&t, k, -EUCLEAN);
    p[0] ^= 0x01;
    struct mmapfs_disk_btree_item *it = items_of(ms, leaf);
    uint64_t first = it[0].key;
    it[0].key = first - 1;              /* below the parent's separator */
    expect_all_fail(&t, k, -EUCLEAN);   /* bounds: still checked */
    it[0].key = first;
    unsigned last = hdr_of(ms, leaf)->nitems - 1;
    assert_true(it[last].key != k);
    uint16_t len = it[last].value_len;
    it[last].value_len = 0;             /* body: not scanned again */
    expect_val(&t, k, 0, 100);
    trusted_blk = 0;
    expect_all_fail(&t, k, -EUCLEAN);   /* untrusted: the body is scanned */
    it[last].value_len = len;
    expect_all_fail(&t, k, -EUCLEAN);   /* the stale checksum */
    p[4] ^= 0x01;
    ms->st.trusted = NULL;
    expect_val(&t, k, 0, 100);
    free(nl);
    assert_int_equal(bt_destroy(&t), 0);
    ms_destroy(ms);
}

static void test_corrupt_owner_type(void **state)
{
    (void)state;
    struct mstore *ms = ms_new(true);
    struct bt_tree t = tree_on(ms);
    build_two_level(ms, &t);

    struct bt_tree wrong = t;
    wrong.owner = OWNER + 1;
    expect_all_fail(&wrong, 50, -EUCLEAN);
    wrong = t;
    wrong.type = MMAPFS_TREE_EXTENTS;
    expect_all_fail(&wrong, 50, -EUCLEAN);

    /* A leaf of another owner / type with a valid checksum. */
    struct node_list *nl = list_nodes(&t);
    uint64_t leaf = nth_node(nl, 0, 2);
    uint64_t k = first_key(ms, leaf);
    hdr_of(ms, leaf)->owner = OWNER + 7;
    fix_csum(ms, leaf);
    expect_all_fail(&t, k, -EUCLEAN);
    char msg[256];
    struct bt_walk w = { .err_msg = msg, .err_len = sizeof msg };
    assert_int_equal(bt_walk(&t, &w), -EUCLEAN);
    assert_non_null(strstr(msg, "owner"));
    hdr_of(ms, leaf)->owner = OWNER;
    hdr_of(ms, leaf)->type = MMAPFS_TREE_EXTENTS;
    fix_csum(ms, leaf);
    expect_all_fail(&t, k, -EUCLEAN);
    hdr_of(ms, leaf)->type = MMAPFS_TREE_DIR;
    fix_csum(ms, leaf);
    assert_int_equal(walk_ok(&t), 600);
    free(nl);
    assert_int_equal(bt_destroy(&t), 0);
    assert_int_equal(ms->live, 0);
    ms_destroy(ms);
}

/* One deliberate inconsistency, with a valid checksum. */
struct mutation {
    const char *name;
    bool internal;         /* applies to the root (internal) instead of a leaf */
    void (*fn)(struct mstore *ms, uint64_t blk, uint64_t root);
    int want;
};

#define H(ms, b) hdr_of(ms, b)
#define I(ms, b) items_of(ms, b)
#define P(ms, b) ptrs_of(ms, b)
static void m_nitems_huge(struct mstore *ms, uint64_t b, uint64_t r) { (void)r; H(ms, b)->nitems = 65535; }
static void m_nitems_313(struct mstore *ms, uint64_t b, uint64_t r) { (void)r; H(ms, b)->nitems = 313; }
static void m_nitems_0(struct mstore *ms, uint64_t b, uint64_t r) { (void)r; H(ms, b)->nitems = 0; }
static void m_nitems_plus1(struct mstore *ms, uint64_t b, uint64_t r) { (void)r; H(ms, b)->nitems++; }
static void m_vs_0(struct mstore *ms, uint64_t b, uint64_t r) { (void)r; H(ms, b)->value_start = 0; }
static void m_vs_32(struct mstore *ms, uint64_t b, uint64_t r) { (void)r; H(ms, b)->value_start = 32; }
static void m_vs_4097(struct mstore *ms, uint64_t b, uint64_t r) { (void)r; H(ms, b)->value_start = 4097; }
static void m_vs_huge(struct mstore *ms, uint64_t b, uint64_t r) { (void)r; H(ms, b)->value_start = 65535; }
static void m_vs_low(struct mstore *ms, uint64_t b, uint64_t r) { (void)r; H(ms, b)->value_start -= 8; }
static void m_off_0(struct mstore *ms, uint64_t b, uint64_t r) { (void)r; I(ms, b)[0].value_off = 0; }
static void m_off_end(struct mstore *ms, uint64_t b, uint64_t r) { (void)r; I(ms, b)[0].value_off = 4095; }
static void m_off_huge(struct mstore *ms, uint64_t b, uint64_t r) { (void)r; I(ms, b)[1].value_off = 65535; }
static void m_off_overlap(struct mstore *ms, uint64_t b, uint64_t r)
{
    (void)r;
    unsigned o0 = I(ms, b)[0].value_off, l1 = I(ms, b)[1].value_len;
    /* Half over item 0's value, still inside [value_start, 4096). */
    I(ms, b)[1].value_off = (uint16_t)(o0 + l1 / 2 + l1 <= BS ? o0 + l1 / 2 : o0 - l1 / 2);
}
static void m_len_0(struct mstore *ms, uint64_t b, uint64_t r) { (void)r; I(ms, b)[2].value_len = 0; }
static void m_len_301(struct mstore *ms, uint64_t b, uint64_t r) { (void)r; I(ms, b)[2].value_len = 301; }
static void m_len_huge(struct mstore *ms, uint64_t b, uint64_t r) { (void)r; I(ms, b)[2].value_len = 65535; }
static void m_key_dup(struct mstore *ms, uint64_t b, uint64_t r) { (void)r; I(ms, b)[3].key = I(ms, b)[2].key; }
static void m_key_first(struct mstore *ms, uint64_t b, uint64_t r) { (void)r; I(ms, b)[0].key -= 1; }
static void m_key_last(struct mstore *ms, uint64_t b, uint64_t r)
{
    (void)r;
    I(ms, b)[H(ms, b)->nitems - 1].key = UINT64_MAX;
}
static void m_level_1(struct mstore *ms, uint64_t b, uint64_t r) { (void)r; H(ms, b)->level = 1; }
static void m_level_9(struct mstore *ms, uint64_t b, uint64_t r) { (void)r; H(ms, b)->level = 9; }
static void m_level_huge(struct mstore *ms, uint64_t b, uint64_t r) { (void)r; H(ms, b)->level = 65535; }
static void m_magic(struct mstore *ms, uint64_t b, uint64_t r) { (void)r; H(ms, b)->magic ^= 0x100; }
static void m_int_level_0(struct mstore *ms, uint64_t b, uint64_t r) { (void)r; H(ms, b)->level = 0; }
static void m_int_level_2(struct mstore *ms, uint64_t b, uint64_t r) { (void)r; H(ms, b)->level = 2; }
static void m_int_nitems_255(struct mstore *ms, uint64_t b, uint64_t r) { (void)r; H(ms, b)->nitems = 255; }
static void m_int_cycle(struct mstore *ms, uint64_t b, uint64_t r) { P(ms, b)[1].child = r; }
static void m_int_dup_child(struct mstore *ms, uint64_t b, uint64_t r) { (void)r; P(ms, b)[1].child = P(ms, b)[0].child; }
static void m_int_swap_child(struct mstore *ms, uint64_t b, uint64_t r)
{
    (void)r;
    uint64_t c = P(ms, b)[1].child;
    P(ms, b)[1].child = P(ms, b)[2].child;
    P(ms, b)[2].child = c;
}
static void m_int_null(struct mstore *ms, uint64_t b, uint64_t r) { (void)r; P(ms, b)[1].child = 0; }
static void m_int_keys(struct mstore *ms, uint64_t b, uint64_t r) { (void)r; P(ms, b)[2].key = P(ms, b)[1].key; }
static void m_int_sep_low(struct mstore *ms, uint64_t b, uint64_t r) { (void)r; P(ms, b)[1].key -= 1; }
static void m_int_unreadable(struct mstore *ms, uint64_t b, uint64_t r) { (void)r; P(ms, b)[1].child = 5; }

static const struct mutation mutations[] = {
    { "leaf nitems 65535", false, m_nitems_huge, -EUCLEAN },
    { "leaf nitems 313", false, m_nitems_313, -EUCLEAN },
    { "leaf nitems 0", false, m_nitems_0, -EUCLEAN },
    { "leaf nitems + 1", false, m_nitems_plus1, -EUCLEAN },
    { "value_start 0", false, m_vs_0, -EUCLEAN },
    { "value_start 32", false, m_vs_32, -EUCLEAN },
    { "value_start 4097", false, m_vs_4097, -EUCLEAN },
    { "value_start 65535", false, m_vs_huge, -EUCLEAN },
    { "value_start below lowest value", false, m_vs_low, -EUCLEAN },
    { "value_off 0", false, m_off_0, -EUCLEAN },
    { "value_off 4095", false, m_off_end, -EUCLEAN },
    { "value_off 65535", false, m_off_huge, -EUCLEAN },
    { "values overlap", false, m_off_overlap, -EUCLEAN },
    { "value_len 0", false, m_len_0, -EUCLEAN },
    { "value_len 301", false, m_len_301, -EUCLEAN },
    { "value_len 65535", false, m_len_huge, -EUCLEAN },
    { "duplicate key", false, m_key_dup, -EUCLEAN },
    { "first key below separator", false, m_key_first, -EUCLEAN },
    { "last key past next separator", false, m_key_last, -EUCLEAN },
    { "leaf claims level 1", false, m_level_1, -EUCLEAN },
    { "leaf level 9", false, m_level_9, -EUCLEAN },
    { "leaf level 65535", false, m_level_huge, -EUCLEAN },
    { "bad magic", false, m_magic, -EUCLEAN },
    { "root level 0", true, m_int_level_0, -EUCLEAN },
    { "root level 2", true, m_int_level_2, -EUCLEAN },
    { "root level 9", true, m_level_9, -EUCLEAN },
    { "root nitems 0", true, m_nitems_0, -EUCLEAN },
    { "root nitems 255", true, m_int_nitems_255, -EUCLEAN },
    { "root nitems 65535", true, m_nitems_huge, -EUCLEAN },
    { "child -> root (cycle)", true, m_int_cycle, -EUCLEAN },
    { "two entries, same child", true, m_int_dup_child, -EUCLEAN },
    { "children swapped", true, m_int_swap_child, -EUCLEAN },
    { "null child", true, m_int_null, -EUCLEAN },
    { "separator keys not increasing", true, m_int_keys, -EUCLEAN },
    { "separator below child's first key", true, m_int_sep_low, -EUCLEAN },
    { "child block unreadable", true, m_int_unreadable, -EIO },
};

static void test_corrupt_absurd(void **state)
{
    (void)state;
    struct mstore *ms = ms_new(true);
    struct bt_tree t = tree_on(ms);
    build_two_level(ms, &t);
    struct node_list *nl = list_nodes(&t);
    uint64_t leaf = nth_node(nl, 0, 1);
    uint64_t k_leaf = first_key(ms, leaf) + 20;     /* a key in 'leaf' */
    uint64_t k_root = first_key(ms, nth_node(nl, 0, 1)) + 10;  /* under root entry 1 */
    uint64_t live = ms->live, fp = ms_fingerprint(ms);
    uint8_t save[BS];

    for (size_t i = 0; i < sizeof mutations / sizeof mutations[0]; i++) {
        const struct mutation *m = &mutations[i];
        uint64_t blk = m->internal ? t.root : leaf;
        memcpy(save, ms_block(ms, blk), BS);
        m->fn(ms, blk, t.root);
        fix_csum(ms, blk);
        char msg[256] = "";
        struct bt_walk w = { .err_msg = msg, .err_len = sizeof msg };
        int err = bt_walk(&t, &w);
        print_message("  %-36s -> %d %s\n", m->name, err, msg);
        assert_int_equal(err, m->want);
        expect_all_fail(&t, m->internal ? k_root : k_leaf, m->want);
        assert_int_equal(ms->live, live);
        memcpy(ms_block(ms, blk), save, BS);
        assert_int_equal(ms_fingerprint(ms), fp);
        assert_int_equal(walk_ok(&t), 600);
    }
    free(nl);
    assert_int_equal(bt_destroy(&t), 0);
    assert_int_equal(ms->live, 0);
    ms_destroy(ms);
}

static void test_corrupt_cycle(void **state)
{
    (void)state;
    struct mstore *ms = ms_new(true);
    struct bt_tree t = tree_on(ms);
    /* Three levels: ~19 values of 200 bytes per leaf, > 254 leaves. */
    for (uint64_t i = 0; i < 8000; i++)
        put_val(&t, mix64(i), 0, 200);
    ms_commit(ms);
    struct node_list *nl = list_nodes(&t);
    assert_int_equal(nl->max_level, 2);
    uint64_t mid = nth_node(nl, 1, 0), mid2 = nth_node(nl, 1, 1);
    uint64_t k = first_key(ms, mid) + 1;
    uint8_t save[BS];
    memcpy(save, ms_block(ms, mid), BS);

    const uint64_t targets[] = { t.root, mid, mid2 };
    for (size_t i = 0; i < 3; i++) {
        for (unsigned e = 0; e < 2; e++) {
            ptrs_of(ms, mid)[e].child = targets[i];
            fix_csum(ms, mid);
            uint64_t key = e ? ptrs_of(ms, mid)[1].key : k;
            char msg[256];
            struct bt_walk w = { .err_msg = msg, .err_len = sizeof msg };
            assert_int_equal(bt_walk(&t, &w), -EUCLEAN);
            print_message("  child %u of level-1 node -> %s: %s\n", e,
                          i == 0 ? "root" : i == 1 ? "itself" : "sibling", msg);
            expect_all_fail(&t, key, -EUCLEAN);
            memcpy(ms_block(ms, mid), save, BS);
        }
    }
    /* Root pointing at itself. */
    memcpy(save, ms_block(ms, t.root), BS);
    ptrs_of(ms, t.root)[0].child = t.root;
    fix_csum(ms, t.root);
    expect_all_fail(&t, first_key(ms, t.root), -EUCLEAN);
    memcpy(ms_block(ms, t.root), save, BS);
    assert_int_equal(walk_ok(&t), 8000);
    free(nl);
    assert_int_equal(bt_destroy(&t), 0);
    assert_int_equal(ms->live, 0);
    ms_destroy(ms);
}

/* Random mutations with fixed checksums; every call must return a sane code
 * (and, under ASan, never touch memory outside the blocks). */
static bool sane(int err)
{
    return err == 0 || err == -ENOENT || err == -EEXIST || err == -EUCLEAN || err == -EIO;
}

static void test_corrupt_fuzz(void **state)
{
    (void)state;
    unsigned iters = BT_UNDER_ASAN ? 1500 : 4000, detected = 0;
    for (unsigned it = 0; it < iters; it++) {
        struct mstore *ms = ms_new(it & 1);
        struct bt_tree t = tree_on(ms);
        unsigned nkeys = 100 + (unsigned)rnd_below(500);
        for (unsigned i = 0; i < nkeys; i++) {
            uint64_t k = rnd_below(4) ? rnd() : i;
            uint8_t v[MAXV];
            unsigned len = 1 + (unsigned)rnd_below(MAXV);
            simple_val(v, k, 0, len);
            (void)bt_insert(&t, k, v, len);
        }
        ms_commit(ms);
        struct node_list *nl = list_nodes(&t);
        uint64_t blk = nl->blk[rnd_below(nl->n)];
        uint8_t *p = ms_block(ms, blk);
        unsigned nmut = 1 + (unsigned)rnd_below(4);
        for (unsigned m = 0; m < nmut; m++) {
            unsigned off = rnd_below(3) ? (unsigned)rnd_below(32 + 16 * 40) : (unsigned)rnd_below(BS);
            if (rnd_below(2))
                p[off] ^= (uint8_t)(1u << rnd_below(8));
            else
                p[off] = (uint8_t)rnd();
        }
        if (rnd_below(8))
            fix_csum(ms, blk);
        free(nl);

        char msg[256];
        struct bt_walk w = { .err_msg = msg, .err_len = sizeof msg };
        int werr = bt_walk(&t, &w);
        assert_true(sane(werr));
        detected += werr != 0;
        for (unsigned op = 0; op < 60; op++) {
            uint64_t k = rnd_below(2) ? rnd() : rnd_below(nkeys), f;
            uint8_t v[MAXV];
            size_t len = sizeof v;
            unsigned vl = 1 + (unsigned)rnd_below(MAXV);
            simple_val(v, k, 1, vl);
            int err;
            switch (rnd_below(8)) {
            case 6: err = bt_scan_ge(&t, k, scan_any, NULL); break;
            case 0: err = bt_lookup(&t, k, v, &len); break;
            case 1: err = bt_lookup_le(&t, k, &f, v, &len); break;
            case 2: err = bt_lookup_ge(&t, k, &f, v, &len); break;
            case 3: err = bt_insert(&t, k, v, vl); break;
            case 4: err = bt_update(&t, k, v, vl); break;
            case 5: err = bt_delete(&t, k); break;
            default: {
                uint64_t n;
                err = bt_count_nodes(&t, &n);
                break;
            }
            }
            assert_true(sane(err));
            ms_commit(ms);
        }
        werr = bt_walk(&t, &w);
        assert_true(sane(werr));
        assert_true(sane(bt_destroy(&t)));
        assert_int_equal(ms->bad_frees, 0);
        ms_destroy(ms);
    }
    print_message("fuzz: %u corrupted trees, %u detected by bt_walk\n", iters, detected);
}

/* ==== failures leave the tree unchanged ========================================================== */

static void test_enospc_atomic(void **state)
{
    (void)state;
    struct mstore *ms = ms_new(true);
    struct bt_tree t = tree_on(ms);

    /* Root leaf with 13 max-size values: the 14th needs a split + new root. */
    for (uint64_t k = 0; k < 13; k++)
        put_val(&t, k * 2, 0, MAXV);
    ms_commit(ms);
    assert_int_equal(ms->live, 1);
    uint64_t root = t.root, fp = ms_fingerprint(ms);
    for (long budget = 0; budget < 2; budget++) {
        ms->alloc_budget = budget;
        uint8_t v[MAXV] = {0};
        assert_int_equal(bt_insert(&t, 7, v, MAXV), -ENOSPC);
        assert_int_equal(t.root, root);
        assert_int_equal(ms->live, 1);
        ms_commit(ms);
        assert_int_equal(ms_fingerprint(ms), fp);
    }
    ms->alloc_budget = -1;

    /* A bigger tree: inserts that need a split fail cleanly, others work. */
    for (uint64_t k = 100; k < 5000; k++)
        put_val(&t, mix64(k), 0, 150);
    ms_commit(ms);
    uint64_t items = walk_ok(&t), live = ms->live;
    ms->alloc_budget = 0;
    unsigned failed = 0, ok = 0;
    for (uint64_t k = 5000; k < 8000; k++) {
        fp = ms_fingerprint(ms);
        root = t.root;
        uint8_t v[MAXV];
        simple_val(v, mix64(k), 0, 150);
        int err = bt_insert(&t, mix64(k), v, 150);
        ms_commit(ms);
        if (err) {
            assert_int_equal(err, -ENOSPC);
            assert_int_equal(ms_fingerprint(ms), fp);
            assert_int_equal(t.root, root);
            assert_int_equal(bt_lookup(&t, mix64(k), NULL, NULL), -ENOENT);
            failed++;
        } else {
            ok++;
            items++;
        }
        /* Updates that grow a value in a full leaf fail the same way. */
        simple_val(v, mix64(100 + k % 4900), 5, MAXV);
        fp = ms_fingerprint(ms);
        err = bt_update(&t, mix64(100 + k % 4900), v, MAXV);
        ms_commit(ms);
        if (err) {
            assert_int_equal(err, -ENOSPC);
            assert_int_equal(ms_fingerprint(ms), fp);
        }
    }
    assert_true(failed > 0 && ok > 0);
    assert_int_equal(ms->live, live);
    assert_int_equal(walk_ok(&t), items);
    ms->alloc_budget = -1;
    assert_int_equal(bt_destroy(&t), 0);
    assert_int_equal(ms->live, 0);
    ms_destroy(ms);
}

static void test_eio_atomic(void **state)
{
    (void)state;
    struct mstore *ms = ms_new(true);
    struct bt_tree t = tree_on(ms);
    unsigned failed = 0;

    for (uint64_t k = 0; k < 3000; k++)
        put_val(&t, k * 4, 0, 120);
    ms_commit(ms);
    for (long budget = 0; budget < 4; budget++) {
        for (uint64_t k = 0; k < 300; k++) {
            /* Insert of a large value (often a split: several writes). */
            uint64_t fp = ms_fingerprint(ms), root = t.root;
            uint8_t v[MAXV];
            simple_val(v, k, 1, MAXV);
            ms->write_budget = budget;
            int err = bt_insert(&t, k * 4 + 1, v, MAXV);
            ms->write_budget = -1;
            ms_commit(ms);
            if (err) {
                assert_int_equal(err, -EIO);
                assert_int_equal(ms_fingerprint(ms), fp);
                assert_int_equal(t.root, root);
                assert_int_equal(bt_lookup(&t, k * 4 + 1, NULL, NULL), -ENOENT);
                failed++;
            } else {
                assert_int_equal(bt_delete(&t, k * 4 + 1), 0);
                ms_commit(ms);
            }
            /* Delete of a first key (separator updates: several writes). */
            uint64_t dk = k * 4 * 9;
            fp = ms_fingerprint(ms);
            root = t.root;
            ms->write_budget = budget;
            err = bt_delete(&t, dk);
            ms->write_budget = -1;
            ms_commit(ms);
            if (err) {
                assert_int_equal(err, -EIO);
                assert_int_equal(ms_fingerprint(ms), fp);
                assert_int_equal(t.root, root);
                failed++;
            } else {
                put_val(&t, dk, 0, 120);
                ms_commit(ms);
            }
        }
    }
    assert_true(failed > 0);
    assert_int_equal(walk_ok(&t), 3000);
    for (uint64_t k = 0; k < 3000; k++)
        expect_val(&t, k * 4, 0, 120);
    assert_int_equal(bt_destroy(&t), 0);
    assert_int_equal(ms->live, 0);
    ms_destroy(ms);
}

static void test_destroy(void **state)
{
    (void)state;
    struct mstore *ms = ms_new(true);
    struct bt_tree t = tree_on(ms);

    for (uint64_t k = 0; k < 20000; k++)
        put_val(&t, mix64(k), 0, 1 + (unsigned)(k % 200));
    ms_commit(ms);
    uint64_t nodes;
    assert_int_equal(bt_count_nodes(&t, &nodes), 0);
    assert_int_equal(nodes, ms->live);
    /* A corrupt leaf: nothing is freed. */
    struct node_list *nl = list_nodes(&t);
    uint64_t leaf = nth_node(nl, 0, 40);
    ms_block(ms, leaf)[3000] ^= 1;
    uint64_t live = ms->live, root = t.root;
    assert_int_equal(bt_destroy(&t), -EUCLEAN);
    assert_int_equal(ms->live, live);
    assert_int_equal(t.root, root);
    ms_block(ms, leaf)[3000] ^= 1;
    assert_int_equal(bt_destroy(&t), 0);
    assert_int_equal(t.root, 0);
    assert_int_equal(ms->live, 0);
    assert_int_equal(ms->bad_frees, 0);
    free(nl);
    ms_destroy(ms);
}

/* ==== main ================================================================================ */

int main(void)
{
    const char *env = getenv("BT_SEED");
    if (env)
        g_seed = strtoull(env, NULL, 0);
    g_rng = g_seed;
    printf("test_btree: seed 0x%016" PRIx64 " (set BT_SEED to repeat)%s\n", g_seed,
           BT_UNDER_ASAN ? ", AddressSanitizer: smaller random test" : "");
    fflush(stdout);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_insert_lookup_few),
        cmocka_unit_test(test_duplicate),
        cmocka_unit_test(test_value_limits),
        cmocka_unit_test(test_update),
        cmocka_unit_test(test_delete_to_empty),
        cmocka_unit_test(test_le_ge_boundaries),
        cmocka_unit_test(test_iterate_ge),
        cmocka_unit_test(test_sequential_dense),
        cmocka_unit_test(test_random_1m),
        cmocka_unit_test(test_corrupt_flip),
        cmocka_unit_test(test_trusted_skips_checksum_and_body),
        cmocka_unit_test(test_corrupt_owner_type),
        cmocka_unit_test(test_corrupt_absurd),
        cmocka_unit_test(test_corrupt_cycle),
        cmocka_unit_test(test_corrupt_fuzz),
        cmocka_unit_test(test_enospc_atomic),
        cmocka_unit_test(test_eio_atomic),
        cmocka_unit_test(test_destroy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
