/*
 * Whole-tree traversals: bt_walk (fsck), bt_count_nodes, bt_destroy.
 * One depth-first, key-ordered traversal with an explicit stack (the depth
 * is bounded by MMAPFS_BTREE_MAX_LEVEL: every child must be exactly one
 * level below its parent, so a cycle is reported, never followed).
 */
#include "fs/btree_i.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* ==== traversal ================================================================ */

struct trav {
    const struct bt_tree *t;
    /* Nodes below this level are not read: 'skip' gets their block. */
    unsigned min_level;
    /* Every node read (validated), parent before children; non-zero stops. */
    int (*pre)(struct trav *tr, uint64_t blk, const uint8_t *node);
    /* A child below min_level (not read). */
    void (*skip)(struct trav *tr, uint64_t blk);
    /* After all the children of a node read (its pointer is not used again). */
    void (*post)(struct trav *tr, uint64_t blk);
    /* Validation failure of blk; parent == 0 for the root. Returns err. */
    int (*fail)(struct trav *tr, int err, uint64_t blk, uint64_t parent,
                unsigned entry, const char *why);
    void *ctx;
};

/* Runs tr over the non-empty tree. */
static int trav_run(struct trav *tr)
{
    struct {
        uint64_t blk;
        const uint8_t *node;
        unsigned idx;
        struct bt_bounds b;
    } st[BT_MAX_HEIGHT];
    const struct bt_tree *t = tr->t;
    const uint8_t *node;
    const char *why = "";
    int err;

    err = bt_node_read(t, t->root, -1, NULL, &node, &why);
    if (err)
        return tr->fail ? tr->fail(tr, err, t->root, 0, 0, why) : err;
    unsigned h = bt_level(node), L = h;
    if (h < tr->min_level) {
        /* The root is always read; only its children can be skipped. */
        err = tr->pre ? tr->pre(tr, t->root, node) : 0;
        if (!err && tr->post)
            tr->post(tr, t->root);
        return err;
    }
    if (tr->pre && (err = tr->pre(tr, t->root, node)))
        return err;
    st[h].blk = t->root;
    st[h].node = node;
    st[h].idx = 0;
    memset(&st[h].b, 0, sizeof(st[h].b));
    while (L <= h) {
        if (L == 0 || st[L].idx == bt_nitems(st[L].node)) {
            if (tr->post)
                tr->post(tr, st[L].blk);
            L++;
            continue;
        }
        unsigned i = st[L].idx++;
        uint64_t child = bt_cptrs(st[L].node)[i].child;
        if (L - 1 < tr->min_level) {
            if (tr->skip)
                tr->skip(tr, child);
            continue;
        }
        struct bt_bounds b;
        bt_child_bounds(st[L].node, i, &st[L].b, &b);
        err = bt_node_read(t, child, (int)L - 1, &b, &node, &why);
        if (err)
            return tr->fail ? tr->fail(tr, err, child, st[L].blk, i, why) : err;
        if (tr->pre && (err = tr->pre(tr, child, node)))
            return err;
        L--;
        st[L].blk = child;
        st[L].node = node;
        st[L].idx = 0;
        st[L].b = b;
    }
    return 0;
}

/* ==== bt_walk =========================================================================== */

struct walk_state {
    struct bt_walk *w;
    uint64_t last;         /* last item key reported */
    bool have_last;
};

/* Formats the first structural error into the caller's buffer. */
static int walk_fail(struct trav *tr, int err, uint64_t blk, uint64_t parent,
                     unsigned entry, const char *why)
{
    struct bt_walk *w = ((struct walk_state *)tr->ctx)->w;

    if (w->err_msg && w->err_len) {
        if (parent)
            snprintf(w->err_msg, w->err_len,
                     "btree owner %" PRIu64 ": block %" PRIu64 " (entry %u of block %" PRIu64
                     "): %s", tr->t->owner, blk, entry, parent, why);
        else
            snprintf(w->err_msg, w->err_len, "btree owner %" PRIu64 ": root block %" PRIu64 ": %s",
                     tr->t->owner, blk, why);
    }
    return err;
}

/* Reports a node and, for leaves, its items, checking the global key order. */
static int walk_pre(struct trav *tr, uint64_t blk, const uint8_t *node)
{
    struct walk_state *ws = tr->ctx;
    struct bt_walk *w = ws->w;
    int err;

    if (w->node_fn && (err = w->node_fn(w->ctx, blk, bt_level(node))))
        return err;
    if (bt_level(node))
        return 0;
    const struct mmapfs_disk_btree_item *it = bt_citems(node);
    for (unsigned i = 0; i < bt_nitems(node); i++) {
        if (ws->have_last && it[i].key <= ws->last) {
            if (w->err_msg && w->err_len)
                snprintf(w->err_msg, w->err_len,
                         "btree owner %" PRIu64 ": block %" PRIu64 ": key %" PRIu64
                         " not above the previous key %" PRIu64,
                         tr->t->owner, blk, it[i].key, ws->last);
            return -EUCLEAN;
        }
        ws->last = it[i].key;
        ws->have_last = true;
        if (w->item_fn &&
            (err = w->item_fn(w->ctx, it[i].key, node + it[i].value_off, it[i].value_len)))
            return err;
    }
    return 0;
}

/* fsck walk: every node validated, visited in key order. */
int bt_walk(struct bt_tree *t, struct bt_walk *w)
{
    struct bt_walk none = { 0 };
    struct walk_state ws = { .w = w ? w : &none };
    struct trav tr = { .t = t, .pre = walk_pre, .fail = walk_fail, .ctx = &ws };

    if (ws.w->err_msg && ws.w->err_len)
        ws.w->err_msg[0] = '\0';
    if (!t->root)
        return 0;
    return trav_run(&tr);
}

/* ==== bt_count_nodes ===================================================================== */

/* Counts an internal node (or a leaf root) and the leaves below it. */
static int count_pre(struct trav *tr, uint64_t blk, const uint8_t *node)
{
    uint64_t *n = tr->ctx;

    (void)blk;
    *n += 1;
    if (bt_level(node) == 1)
        *n += bt_nitems(node);
    return 0;
}

/* Number of nodes: reads the internal nodes only (leaves are counted from
 * their parents' entries), about 1/100 of the tree. */
int bt_count_nodes(struct bt_tree *t, uint64_t *nodes)
{
    uint64_t n = 0;
    struct trav tr = { .t = t, .min_level = 1, .pre = count_pre, .ctx = &n };

    *nodes = 0;
    if (!t->root)
        return 0;
    int err = trav_run(&tr);
    if (err)
        return err;
    *nodes = n;
    return 0;
}

/* ==== bt_destroy ============================================================================ */

/* Frees one block of the tree. */
static void destroy_free(struct trav *tr, uint64_t blk)
{
    tr->t->store->free(tr->t->store->ctx, blk);
}

/* Frees every node. The whole tree is validated first (bt_walk), so a
 * corrupt tree is left untouched (-EUCLEAN) rather than half freed, and a
 * bad pointer can never free a block that is not a node of this tree. */
int bt_destroy(struct bt_tree *t)
{
    struct trav tr = { .t = t, .min_level = 1, .skip = destroy_free, .post = destroy_free };

    if (!t->root)
        return 0;
    int err = bt_walk(t, NULL);
    if (err)
        return err;
    err = trav_run(&tr);
    if (err)
        return err;
    t->root = 0;
    return 0;
}
