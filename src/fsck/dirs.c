/*
 * fsck/dirs.c — fsck pass 2: directory entries (fsck/dirent.c), unique
 * names, directory sizes, the orphan list, link counts, parent fields and
 * reachability from the root. Plans the repairs of phase D: directories
 * to rebuild, inodes to reconnect into lost+found, the orphan list.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsck/fsck_i.h"

/* A name already seen under the current hash (duplicate names). */
struct seen_name {
    uint8_t len;
    char name[MMAPFS_NAME_MAX];
};

/* The directory being walked. */
struct dir_ctx {
    struct check *c;
    uint64_t dir;
    uint64_t entries;
    uint64_t group_hash;           /* hash of the names in 'group' */
    struct seen_name *group;
    size_t ngroup, group_cap;
};

/* Is e's name already used by an earlier entry of the same hash? Records
 * it otherwise. -ENOMEM. */
static int name_seen(struct dir_ctx *d, const struct check_dent *e)
{
    uint64_t hash = e->key >> 8;
    if (!d->ngroup || d->group_hash != hash) {
        d->group_hash = hash;
        d->ngroup = 0;
    }
    for (size_t i = 0; i < d->ngroup; i++)
        if (d->group[i].len == e->name_len && !memcmp(d->group[i].name, e->name, e->name_len))
            return 1;
    if (d->ngroup == d->group_cap) {
        size_t cap = d->group_cap ? d->group_cap * 2 : 4;
        struct seen_name *n = realloc(d->group, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        d->group = n;
        d->group_cap = cap;
    }
    d->group[d->ngroup].len = e->name_len;
    memcpy(d->group[d->ngroup].name, e->name, e->name_len);
    d->ngroup++;
    return 0;
}

/* A second entry for directory t (in d->dir): the entry kept is the one in
 * the directory t's parent field names, else the first one found. */
static void second_dir_entry(struct dir_ctx *d, uint64_t t, const char *shown)
{
    struct check *c = d->c;
    struct check_inode *ti = fsck_ci(c, t);
    fsck_error(c, "directory %" PRIu64 ": entry '%s': a second entry for directory %" PRIu64
                " (the first is in directory %" PRIu64 ")", d->dir, shown, t,
                (uint64_t)ti->named_by);
    struct mmapfs_disk_inode tdi;
    if (!fsck_read_inode(c, t, &tdi) && tdi.parent == d->dir && ti->named_by != d->dir) {
        fsck_plan(c, ti->named_by, RF_REBUILD_DIR);
        ti->named_by = (uint32_t)d->dir;
    } else {
        fsck_plan(c, d->dir, RF_REBUILD_DIR);
    }
}

/* bt_walk item callback: one directory entry. */
static int dir_item(void *ctx, uint64_t key, const void *val, size_t len)
{
    struct dir_ctx *d = ctx;
    struct check *c = d->c;
    struct check_dent e;

    d->entries++;
    int v = fsck_dent_examine(c, d->dir, key, val, len, 1, &e);
    if (v != DENT_KEEP)
        fsck_plan(c, d->dir, RF_REBUILD_DIR);
    if (v == DENT_DROP)
        return 0;
    char shown[4 * MMAPFS_NAME_MAX + 1];
    fsck_escape(shown, sizeof(shown), e.name, e.name_len);
    if (!e.rekey) {
        int r = name_seen(d, &e);
        if (r < 0)
            return r;
        if (r) {
            fsck_error(c, "directory %" PRIu64 ": entry '%s' (key %#" PRIx64 "): a second "
                        "entry with this name", d->dir, shown, key);
            fsck_plan(c, d->dir, RF_REBUILD_DIR);
            return 0;
        }
    }
    uint64_t t = e.ino;
    struct check_inode *ti = fsck_ci(c, t);
    if (d->dir == MMAPFS_ROOT_INO && e.name_len == 10 && !memcmp(e.name, "lost+found", 10)) {
        if (ti->dtype == DT_DIR)
            c->lnf_ino = t;
        else
            c->lnf_blocked = 1;
    }
    if (ti->links < UINT32_MAX)
        ti->links++;
    if (ti->dtype == DT_DIR) {
        struct check_inode *di = fsck_ci(c, d->dir);
        if (di->subdirs < UINT32_MAX)
            di->subdirs++;
        if (ti->named_by)
            second_dir_entry(d, t, shown);
        else
            ti->named_by = (uint32_t)d->dir;
    }
    return 0;
}

/* Walks directory dir's entries (its tree was validated in pass 1). */
static int walk_dir(struct check *c, uint64_t dir, const struct mmapfs_disk_inode *di)
{
    struct dir_ctx d = { .c = c, .dir = dir };
    struct bt_tree t = { .store = c->store, .root = di->tree_root, .owner = dir,
                         .type = MMAPFS_TREE_DIR };
    char msg[256];
    struct bt_walk w = { .item_fn = dir_item, .ctx = &d, .err_msg = msg, .err_len = sizeof(msg) };
    int err = bt_walk(&t, &w);
    free(d.group);
    if (err == -ENOMEM)
        return err;
    if (err)
        return 0;       /* reported in pass 1 */
    if (d.entries != di->size) {
        fsck_error(c, "directory %" PRIu64 ": size %" PRIu64 ", but it has %" PRIu64 " entries",
                    dir, di->size, d.entries);
        fsck_add_fix(c, dir, FIX_SIZE, d.entries);
    }
    return 0;
}

/* ---- orphan list ---------------------------------------------------------------- */

/* Walks the orphan list, marking members CI_ORPHAN. Any problem means the
 * list is rebuilt (phase D). */
static int check_orphans(struct check *c)
{
    uint64_t ino = c->sb.orphan_head;
    for (uint64_t steps = 0; ino; steps++) {
        if (ino > c->inode_count || steps > c->inode_count) {
            fsck_error(c, "orphan list: inode %" PRIu64 " out of range", ino);
            c->orphan_bad = 1;
            return 0;
        }
        struct check_inode *ci = fsck_ci(c, ino);
        if (!(ci->state & CI_VALID)) {
            fsck_error(c, "orphan list: inode %" PRIu64 " is %s", ino,
                        ci->state & CI_USED ? "corrupt" : "free");
            c->orphan_bad = 1;
            return 0;
        }
        if (ci->state & CI_ORPHAN) {
            fsck_error(c, "orphan list: cycle at inode %" PRIu64, ino);
            c->orphan_bad = 1;
            return 0;
        }
        ci->state |= CI_ORPHAN;
        struct mmapfs_disk_inode di;
        int err = fsck_read_inode(c, ino, &di);
        if (err)
            return err;
        c->orphans++;
        if (di.nlink) {
            fsck_error(c, "orphan list: inode %" PRIu64 " has %u links", ino, di.nlink);
            c->orphan_bad = 1;
        } else {
            fsck_info(c, "inode %" PRIu64 ": unlinked while open (orphan), released at the "
                       "next mount", ino);
        }
        ino = di.orphan_next;
    }
    return 0;
}

/* ---- reachability ---------------------------------------------------------------- */

/* Resolves whether directory ino reaches the root through named_by links;
 * marks the whole chain CI_REACHED or CI_LOST. A cycle is reported once
 * and cut: the directory where it closes loses its entry and goes to
 * lost+found. */
static void resolve_dir(struct check *c, uint64_t ino)
{
    uint64_t cur = ino;
    int reached = 0;
    for (;;) {
        struct check_inode *ci = fsck_ci(c, cur);
        if (cur == MMAPFS_ROOT_INO || (ci->state & CI_REACHED)) {
            reached = 1;
            break;
        }
        if (ci->state & CI_LOST)
            break;
        if (ci->state & CI_VISITING) {
            fsck_error(c, "directory %" PRIu64 ": part of a cycle of directories cut off "
                        "from the root", cur);
            fsck_plan(c, cur, RF_CUT | RF_RECONNECT);
            fsck_plan(c, ci->named_by, RF_REBUILD_DIR);
            break;
        }
        if (!ci->named_by)
            break;          /* reported by the caller's link checks */
        ci->state |= CI_VISITING;
        cur = ci->named_by;
    }
    for (cur = ino;;) {
        struct check_inode *ci = fsck_ci(c, cur);
        if (!(ci->state & CI_VISITING))
            break;
        ci->state &= (uint8_t)~CI_VISITING;
        ci->state |= reached ? CI_REACHED : CI_LOST;
        cur = ci->named_by;
    }
    if (!(fsck_ci(c, ino)->state & (CI_REACHED | CI_LOST)))
        fsck_ci(c, ino)->state |= reached ? CI_REACHED : CI_LOST;
}

/* Reports a link count or reachability problem, unless a directory index
 * could not be read (then the picture is partial: the problems are only
 * counted, and checked again once the indexes are repaired). */
#define LINK_ERROR(c, ...)                                                             \
    do {                                                                               \
        if ((c)->partial_dirs)                                                         \
            (c)->hidden_links++;                                                       \
        else                                                                           \
            fsck_error((c), __VA_ARGS__);                                             \
    } while (0)

/* An inode no entry names: with nlink 0 it belongs on the orphan list
 * (the next mount releases it), otherwise in lost+found. */
static void plan_unnamed(struct check *c, uint64_t ino, uint32_t nlink, int orphan)
{
    if (nlink == 0) {
        fsck_plan(c, ino, RF_ORPHAN_OK);
        if (!orphan)
            c->orphan_bad = 1;
    } else {
        fsck_plan(c, ino, RF_RECONNECT);
    }
}

/* Link count, parent and reachability of one valid inode. */
static int check_links(struct check *c, uint64_t ino)
{
    struct check_inode *ci = fsck_ci(c, ino);
    struct mmapfs_disk_inode di;
    int err = fsck_read_inode(c, ino, &di);
    if (err)
        return err;
    int orphan = (ci->state & CI_ORPHAN) != 0;

    if (ci->dtype == DT_DIR) {
        if (ino == MMAPFS_ROOT_INO) {
            if (di.parent != MMAPFS_ROOT_INO) {
                fsck_error(c, "root directory: parent %" PRIu64 ", expected itself", di.parent);
                fsck_add_fix(c, ino, FIX_PARENT, MMAPFS_ROOT_INO);
            }
            if (orphan) {
                fsck_error(c, "root directory: on the orphan list");
                c->orphan_bad = 1;
            }
        } else if (!ci->named_by) {
            if (!orphan)
                LINK_ERROR(c, "directory %" PRIu64 ": not named by any entry (unreachable)",
                            ino);
            plan_unnamed(c, ino, di.nlink, orphan);
            if (orphan && (di.parent < 1 || di.parent > c->inode_count))
                fsck_add_fix(c, ino, FIX_PARENT, MMAPFS_ROOT_INO);   /* reported in pass 1 */
        } else {
            if (orphan) {
                fsck_error(c, "directory %" PRIu64 ": on the orphan list but named in "
                            "directory %u", ino, ci->named_by);
                c->orphan_bad = 1;
            }
            if (di.parent != ci->named_by) {
                fsck_error(c, "directory %" PRIu64 ": parent %" PRIu64 ", but its entry is "
                            "in directory %u", ino, di.parent, ci->named_by);
                fsck_add_fix(c, ino, FIX_PARENT, ci->named_by);
            }
            resolve_dir(c, ino);
        }
        uint64_t want = (orphan && !ci->named_by) ? 0 : 2 + (uint64_t)ci->subdirs;
        if (di.nlink != want && !(ci->rflags & RF_ORPHAN_OK)) {
            LINK_ERROR(c, "directory %" PRIu64 ": link count %u, expected %" PRIu64
                        " (2 + %u subdirectories)", ino, di.nlink, want, ci->subdirs);
            fsck_add_fix(c, ino, FIX_NLINK, want);
        }
        return 0;
    }
    if (ci->links == 0) {
        if (!orphan)
            LINK_ERROR(c, "inode %" PRIu64 ": in use (%u links) but not named by any entry "
                        "and not on the orphan list", ino, di.nlink);
        plan_unnamed(c, ino, di.nlink, orphan);
        return 0;
    }
    if (orphan) {
        fsck_error(c, "inode %" PRIu64 ": on the orphan list but named by %u entries",
                    ino, ci->links);
        c->orphan_bad = 1;
    }
    if (di.nlink != ci->links) {
        LINK_ERROR(c, "inode %" PRIu64 ": link count %u, but %u entries name it",
                    ino, di.nlink, ci->links);
        fsck_add_fix(c, ino, FIX_NLINK, ci->links);
    }
    return 0;
}

/* ---- pass 2 ---------------------------------------------------------------------- */

int fsck_pass_dirs(struct check *c)
{
    struct check_inode *root = fsck_ci(c, MMAPFS_ROOT_INO);
    if (!(root->state & CI_VALID) || root->dtype != DT_DIR) {
        fsck_error(c, "root directory (inode 1): %s",
                    !(root->state & CI_USED) ? "free" :
                    !(root->state & CI_VALID) ? "corrupt" : "not a directory");
        c->structural = 1;
    }
    for (uint64_t ino = fsck_ci_next(c, 1); ino <= c->inode_count;
         ino = fsck_ci_next(c, ino + 1)) {
        mfs_progress_update(&c->progress, "pass 2, directories:", ino, c->inode_count);
        struct check_inode *ci = fsck_ci(c, ino);
        if (!(ci->state & CI_VALID) || ci->dtype != DT_DIR || (ci->state & CI_TREE_BAD))
            continue;
        struct mmapfs_disk_inode di;
        int err = fsck_read_inode(c, ino, &di);
        if (!err)
            err = walk_dir(c, ino, &di);
        if (err)
            return err;
    }
    /* a corrupt index, or a corrupt inode that may be a directory: the
     * names seen are not all there are */
    for (uint64_t ino = fsck_ci_next(c, 1); ino <= c->inode_count;
         ino = fsck_ci_next(c, ino + 1)) {
        const struct check_inode *ci = fsck_ci(c, ino);
        if ((ci->state & CI_VALID) ? ci->dtype == DT_DIR && (ci->state & CI_TREE_BAD)
                                   : (ci->state & CI_USED) || ino == MMAPFS_ROOT_INO)
            c->partial_dirs++;
    }
    int err = check_orphans(c);
    if (err)
        return err;
    for (uint64_t ino = fsck_ci_next(c, 1); ino <= c->inode_count;
         ino = fsck_ci_next(c, ino + 1)) {
        if (!(fsck_ci(c, ino)->state & CI_VALID))
            continue;
        err = check_links(c, ino);
        if (err)
            return err;
    }
    if (c->hidden_links)
        fsck_error(c, "%" PRIu64 " link count or reachability problem%s not listed: %" PRIu64
                    " corrupt director%s or inode%s hide names (checked again once "
                    "repaired)", c->hidden_links, c->hidden_links == 1 ? "" : "s",
                    c->partial_dirs, c->partial_dirs == 1 ? "y" : "ies",
                    c->partial_dirs == 1 ? "" : "s");
    return 0;
}
