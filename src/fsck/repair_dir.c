/*
 * fsck/repair_dir.c — repair phase D: directories whose entries need
 * repair are rebuilt, and unreachable inodes are linked into /lost+found
 * (created if missing) as "#<ino>".
 *
 * A rebuild reads the directory's (valid) index, passes every entry
 * through fsck_dent_examine (the same verdicts pass 2 reported), drops
 * second entries for a directory (the kept one is the one pass 2 chose),
 * the entry of a directory cut out of a detached cycle and repeated
 * names, gives new keys to entries whose key did not match their name
 * (the smallest free suffix), adds the new entries, and writes a fresh
 * index in free blocks; the inode is switched to it after a sync. Link
 * counts and parent fields are left to the next round, which recomputes
 * them from the repaired directories.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fsck/fsck_i.h"

#define LNF_NAME "lost+found"
#define LNF_LEN 10u

/* One directory being rebuilt. */
struct rebuild {
    struct check *c;
    uint64_t dir;
    int new_lnf;                   /* the root gets a new lost+found entry */
    struct check_items keyed;      /* entries with their key */
    struct check_items pending;    /* entries that need a key (key = hash << 8) */
    struct check_items assigned;   /* pending entries given a key */
    size_t *slots;                 /* hash index over assigned: index + 1, 0 = empty */
    size_t nslots;                 /* power of 2, at least twice the entries added */
    uint64_t kept, dropped, fixed, added;
};

/* First slot of hash h in the index over r->assigned. */
static size_t slot_of(const struct rebuild *r, uint64_t h)
{
    return (size_t)((h * 0x9e3779b97f4a7c15ull) >> 20) & (r->nslots - 1);
}

/* Encodes an entry value into buf; returns its length. */
static size_t encode(uint8_t *buf, uint64_t ino, uint8_t type, const char *name, size_t len)
{
    struct mmapfs_disk_dirent de = { .ino = ino, .type = type, .name_len = (uint8_t)len };
    memcpy(buf, &de, sizeof(de));
    memcpy(buf + sizeof(de), name, len);
    return sizeof(de) + len;
}

/* Does value v (an encoded entry) carry this name? */
static int same_name(const struct check_item *it, const char *name, size_t len)
{
    return it->len == sizeof(struct mmapfs_disk_dirent) + len &&
           !memcmp((const uint8_t *)it->val + sizeof(struct mmapfs_disk_dirent), name, len);
}

/* Scans the entries of hash h in keyed (sorted) and assigned: 1 if name is
 * there; fills used[32] with the suffixes in use. */
static int scan_hash(struct rebuild *r, uint64_t h, const char *name, size_t len,
                     uint8_t used[32])
{
    const struct check_items *k = &r->keyed;
    int found = 0;
    memset(used, 0, 32);
    size_t lo = 0, hi = k->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (k->v[mid].key < h << 8)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < k->n && k->v[i].key >> 8 == h; i++) {
        used[(k->v[i].key & 0xff) / 8] |= (uint8_t)(1u << (k->v[i].key % 8));
        found |= same_name(&k->v[i], name, len);
    }
    for (size_t s = slot_of(r, h); r->slots[s]; s = (s + 1) & (r->nslots - 1)) {
        const struct check_item *it = &r->assigned.v[r->slots[s] - 1];
        if (it->key >> 8 != h)
            continue;
        used[(it->key & 0xff) / 8] |= (uint8_t)(1u << (it->key % 8));
        found |= same_name(it, name, len);
    }
    return found;
}

/* Gives a pending entry a key: the smallest free suffix of its name's
 * hash. 1 added, 0 dropped (name taken or all 256 suffixes used). */
static int assign_key(struct rebuild *r, const struct check_item *p)
{
    const struct mmapfs_disk_dirent *de = p->val;
    const char *name = (const char *)p->val + sizeof(*de);
    size_t len = de->name_len;
    uint64_t h = mmapfs_name_hash(name, len);
    uint8_t used[32];
    if (scan_hash(r, h, name, len, used))
        return 0;
    for (unsigned k = 0; k < 256; k++) {
        if (used[k / 8] & (1u << (k % 8)))
            continue;
        if (r->assigned.n * 2 + 2 > r->nslots)
            return -EOVERFLOW;      /* sized by rebuild_dir: cannot happen */
        int err = fsck_items_add(&r->assigned, h << 8 | k, p->val, p->len);
        if (err)
            return err;
        size_t s = slot_of(r, h);
        while (r->slots[s])
            s = (s + 1) & (r->nslots - 1);
        r->slots[s] = r->assigned.n;
        return 1;
    }
    return 0;
}

/* Adds the entry "#<ino>" (or "#<ino>.<n>" if taken) for a reconnected
 * inode. 1 or -errno. */
static int add_reconnect(struct rebuild *r, uint64_t ino)
{
    struct check *c = r->c;
    uint8_t buf[sizeof(struct mmapfs_disk_dirent) + MMAPFS_NAME_MAX];
    char name[48];
    for (unsigned n = 0; n < 1000; n++) {
        int len = n ? snprintf(name, sizeof(name), "#%" PRIu64 ".%u", ino, n)
                    : snprintf(name, sizeof(name), "#%" PRIu64, ino);
        size_t vlen = encode(buf, ino, fsck_ci(c, ino)->dtype, name, (size_t)len);
        struct check_item it = { .val = buf, .len = (uint16_t)vlen };
        int got = assign_key(r, &it);
        if (got < 0)
            return got;
        if (got) {
            fsck_repaired(c, "inode %" PRIu64 " reconnected as /lost+found/%s", ino, name);
            r->added++;
            return 1;
        }
    }
    fsck_error(c, "inode %" PRIu64 ": no free name in lost+found", ino);
    return 0;
}

/* bt_walk item callback: one existing entry of the directory. */
static int take_entry(void *ctx, uint64_t key, const void *val, size_t len)
{
    struct rebuild *r = ctx;
    struct check *c = r->c;
    struct check_dent e;
    int v = fsck_dent_examine(c, r->dir, key, val, len, 0, &e);
    if (v == DENT_DROP) {
        r->dropped++;
        return 0;
    }
    struct check_inode *ti = fsck_ci(c, e.ino);
    if (ti->dtype == DT_DIR) {
        if (ti->named_by != r->dir || (ti->rflags & (RF_KEPT | RF_CUT))) {
            r->dropped++;           /* a second entry, or a cut cycle */
            return 0;
        }
        ti->rflags |= RF_KEPT;
    }
    if (r->new_lnf && e.name_len == LNF_LEN && !memcmp(e.name, LNF_NAME, LNF_LEN)) {
        r->dropped++;               /* names a non-directory: replaced */
        return 0;
    }
    uint8_t buf[sizeof(struct mmapfs_disk_dirent) + MMAPFS_NAME_MAX];
    size_t vlen = encode(buf, e.ino, e.type, e.name, e.name_len);
    if (v == DENT_FIX)
        r->fixed++;
    if (e.rekey)
        return fsck_items_add(&r->pending, 0, buf, vlen);
    return fsck_items_add(&r->keyed, e.key, buf, vlen);
}

/* Drops repeated names among the keyed entries (sorted): the lowest key
 * stays. Compacts r->keyed in place. */
static void drop_repeated(struct rebuild *r)
{
    struct check_items *k = &r->keyed;
    size_t o = 0, group = 0;
    for (size_t i = 0; i < k->n; i++) {
        if (o == 0 || k->v[o - 1].key >> 8 != k->v[i].key >> 8)
            group = o;
        int dup = 0;
        const struct mmapfs_disk_dirent *de = k->v[i].val;
        for (size_t j = group; j < o && !dup; j++)
            dup = same_name(&k->v[j], (const char *)k->v[i].val + sizeof(*de), de->name_len);
        if (dup) {
            r->dropped++;
            continue;
        }
        k->v[o++] = k->v[i];
    }
    k->n = o;
}

/* A rebuilt directory waiting for the switch. */
struct newdir {
    uint64_t ino, root, nodes, count;
};

/* Rebuilds directory dir (with the additions it gets). 1 built, 0 not
 * possible (reported), -errno. */
static int rebuild_dir(struct check *c, uint64_t dir, uint64_t lnf, int new_lnf,
                       struct newdir *nd)
{
    struct rebuild r = { .c = c, .dir = dir, .new_lnf = new_lnf && dir == MMAPFS_ROOT_INO };
    struct mmapfs_disk_inode di;
    int err = fsck_read_inode(c, dir, &di);
    if (err)
        return err;
    struct bt_tree t = { .store = c->store, .root = di.tree_root, .owner = dir,
                         .type = MMAPFS_TREE_DIR };
    struct bt_walk w = { .item_fn = take_entry, .ctx = &r };
    err = bt_walk(&t, &w);
    if (err == -EUCLEAN || err == -EIO) {
        fsck_error(c, "directory %" PRIu64 ": index unreadable while rebuilding it", dir);
        err = 0;
        goto out;
    }
    fsck_items_sort(&r.keyed);
    drop_repeated(&r);
    r.kept = r.keyed.n;
    size_t adds = r.pending.n + 1 + (dir == lnf ? (size_t)c->nreconnect : 0);
    r.nslots = 16;
    while (r.nslots < adds * 2 + 2)
        r.nslots *= 2;
    r.slots = calloc(r.nslots, sizeof(*r.slots));
    if (!r.slots) {
        err = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; !err && i < r.pending.n; i++) {
        int got = assign_key(&r, &r.pending.v[i]);
        if (got == 0)
            r.dropped++;
        err = got < 0 ? got : 0;
    }
    if (!err && r.new_lnf) {
        uint8_t buf[sizeof(struct mmapfs_disk_dirent) + LNF_LEN];
        struct check_item it = { .val = buf,
                                 .len = (uint16_t)encode(buf, lnf, DT_DIR, LNF_NAME, LNF_LEN) };
        int got = assign_key(&r, &it);
        err = got < 0 ? got : 0;
        r.added += got > 0;
    }
    for (uint64_t ino = fsck_ci_next(c, 1); !err && dir == lnf && ino <= c->inode_count;
         ino = fsck_ci_next(c, ino + 1))
        if (fsck_ci(c, ino)->rflags & RF_RECONNECT) {
            int got = add_reconnect(&r, ino);
            err = got < 0 ? got : 0;
        }
    for (size_t i = 0; !err && i < r.assigned.n; i++)
        err = fsck_items_add(&r.keyed, r.assigned.v[i].key, r.assigned.v[i].val,
                              r.assigned.v[i].len);
    if (err)
        goto out;
    fsck_items_sort(&r.keyed);
    *nd = (struct newdir){ .ino = dir, .count = r.keyed.n };
    err = fsck_build_tree(c, dir, MMAPFS_TREE_DIR, &r.keyed, &nd->root, &nd->nodes);
    if (err == -ENOSPC || err == -EFBIG) {
        fsck_error(c, "directory %" PRIu64 ": no free space to rebuild its index", dir);
        err = 0;
        goto out;
    }
    if (!err && (r.dropped || r.fixed || dir != lnf))
        fsck_repaired(c, "directory %" PRIu64 ": index rebuilt: %" PRIu64 " entries, %"
                       PRIu64 " removed, %" PRIu64 " repaired, %" PRIu64 " added", dir,
                       (uint64_t)r.keyed.n, r.dropped, r.fixed, r.added);
    if (!err && dir == lnf && r.added)     /* not capped like the lines per inode */
        fsck_info(c, "/lost+found (inode %" PRIu64 "): %" PRIu64 " inode%s reconnected", dir,
                   r.added, r.added == 1 ? "" : "s");
    if (!err)
        err = 1;
out:
    fsck_items_free(&r.keyed);
    fsck_items_free(&r.pending);
    fsck_items_free(&r.assigned);
    free(r.slots);
    return err;
}

/* Writes a new lost+found directory inode (its entry comes with the root's
 * rebuild). 0 or -errno. */
static int create_lnf(struct check *c, uint64_t *ino)
{
    int err = fsck_alloc_inode(c, ino);
    if (err == -ENOSPC) {
        fsck_error(c, "no free inode for /lost+found");
        return err;
    }
    if (err)
        return err;
    struct mmapfs_disk_inode di = { .mode = S_IFDIR | 0700, .nlink = 2,
                                    .parent = MMAPFS_ROOT_INO,
                                    .generation = c->sb.next_generation };
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    di.atime_sec = di.mtime_sec = di.ctime_sec = di.crtime_sec = (uint64_t)now.tv_sec;
    di.atime_nsec = di.mtime_nsec = di.ctime_nsec = di.crtime_nsec = (uint32_t)now.tv_nsec;
    err = fsck_write_inode(c, *ino, &di);
    if (!err)
        fsck_repaired(c, "created /lost+found (inode %" PRIu64 ")", *ino);
    return err;
}

/* Superblock edit: one generation number used. */
static void edit_generation(struct mmapfs_disk_superblock *sb, void *arg)
{
    (void)arg;
    sb->next_generation++;
}

/* Points each directory at its rebuilt index. */
static int switch_dirs(struct check *c, const struct newdir *nd, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct mmapfs_disk_inode di;
        int err = fsck_read_inode(c, nd[i].ino, &di);
        if (err)
            return err;
        di.tree_root = nd[i].root;
        di.size = nd[i].count;
        di.blocks = nd[i].nodes + (di.xattr_block ? 1 : 0);
        err = fsck_write_inode(c, nd[i].ino, &di);
        if (err)
            return err;
        c->repairs++;
    }
    return 0;
}

/* See fsck_i.h. */
int fsck_repair_dirs(struct check *c)
{
    uint64_t lnf = c->lnf_ino;
    int new_lnf = 0;
    struct newdir *nd = calloc(c->ndirfix + 2, sizeof(*nd));
    size_t n = 0;
    int err = fsck_begin_repair(c);
    if (!err && !nd)
        err = -ENOMEM;
    if (!err && c->nreconnect && !lnf) {
        err = create_lnf(c, &lnf);
        new_lnf = !err;
        if (err == -ENOSPC) {
            err = 0;
            lnf = 0;
        }
    }
    for (uint64_t ino = fsck_ci_next(c, 1); !err && ino <= c->inode_count && n < c->ndirfix + 2;
         ino = fsck_ci_next(c, ino + 1)) {
        const struct check_inode *ci = fsck_ci(c, ino);
        int need = (ci->rflags & RF_REBUILD_DIR) || (ino == lnf && c->nreconnect) ||
                   (ino == MMAPFS_ROOT_INO && new_lnf);
        if (!need)
            continue;
        int r = rebuild_dir(c, ino, lnf, new_lnf, &nd[n]);
        if (r < 0)
            err = r;
        else
            n += (size_t)r;
    }
    if (!err)
        err = fsck_io_sync(c);     /* new indexes (and lost+found's record) first */
    if (!err)
        err = switch_dirs(c, nd, n);
    if (!err)
        err = fsck_io_sync(c);
    if (!err && new_lnf)
        err = fsck_write_super(c, edit_generation, NULL);
    free(nd);
    if (err)
        return err;
    return n > 0 || new_lnf;
}
