/*
 * check_dirs.c — fsck pass 2: directory entries (name, hash key, target,
 * type), directory sizes, the orphan list, link counts, parent fields and
 * reachability from the root.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/check_i.h"

/* The directory being walked. */
struct dir_ctx {
    struct check *c;
    uint64_t dir;
    uint64_t entries;
};

/* bt_walk item callback: one directory entry. */
static int dir_item(void *ctx, uint64_t key, const void *val, size_t len)
{
    struct dir_ctx *d = ctx;
    struct check *c = d->c;
    const uint8_t *v = val;
    struct mmapfs_disk_dirent de;

    d->entries++;
    if (len < sizeof(de) || len > sizeof(de) + MMAPFS_NAME_MAX) {
        check_error(c, "directory %" PRIu64 ": entry with key %#" PRIx64 ": value of %zu bytes",
                    d->dir, key, len);
        return 0;
    }
    memcpy(&de, v, sizeof(de));
    const char *name = (const char *)v + sizeof(de);
    char shown[4 * MMAPFS_NAME_MAX + 1];
    size_t name_len = len - sizeof(de);
    check_escape(shown, sizeof(shown), name, name_len);
    if (de.name_len != name_len || de.name_len == 0) {
        check_error(c, "directory %" PRIu64 ": entry with key %#" PRIx64 ": name length %u, "
                    "value holds %zu bytes of name", d->dir, key, de.name_len, name_len);
        return 0;
    }
    if (memchr(name, '/', name_len) || memchr(name, '\0', name_len) ||
        (name_len == 1 && name[0] == '.') || (name_len == 2 && !memcmp(name, "..", 2)))
        check_error(c, "directory %" PRIu64 ": entry '%s': invalid name", d->dir, shown);
    uint64_t hash = mmapfs_name_hash(name, name_len);
    if (key >> 8 != hash)
        check_error(c, "directory %" PRIu64 ": entry '%s': key %#" PRIx64 " does not match "
                    "the name's hash %#" PRIx64, d->dir, shown, key, hash);

    uint64_t t = de.ino;
    if (t < 1 || t > c->inode_count) {
        check_error(c, "directory %" PRIu64 ": entry '%s': inode %" PRIu64 " out of range",
                    d->dir, shown, t);
        return 0;
    }
    struct check_inode *ti = &c->inodes[t];
    if (!(ti->state & CI_USED)) {
        check_error(c, "directory %" PRIu64 ": entry '%s': inode %" PRIu64 " is free",
                    d->dir, shown, t);
        return 0;
    }
    if (!(ti->state & CI_VALID)) {
        check_error(c, "directory %" PRIu64 ": entry '%s': inode %" PRIu64 " is corrupt",
                    d->dir, shown, t);
        return 0;
    }
    if (de.type != ti->dtype)
        check_error(c, "directory %" PRIu64 ": entry '%s': type %u, but inode %" PRIu64
                    " has type %u", d->dir, shown, de.type, t, ti->dtype);
    if (t == MMAPFS_ROOT_INO) {
        check_error(c, "directory %" PRIu64 ": entry '%s' names the root directory",
                    d->dir, shown);
        return 0;
    }
    if (ti->links < UINT32_MAX)
        ti->links++;
    if (ti->dtype == DT_DIR) {
        struct check_inode *di = &c->inodes[d->dir];
        if (di->subdirs < UINT32_MAX)
            di->subdirs++;
        if (ti->named_by)
            check_error(c, "directory %" PRIu64 ": entry '%s': a second entry for directory %"
                        PRIu64 " (the first is in directory %" PRIu64 ")", d->dir, shown,
                        t, (uint64_t)ti->named_by);
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
    if (err)
        return 0;       /* reported in pass 1 */
    if (d.entries != di->size) {
        check_error(c, "directory %" PRIu64 ": size %" PRIu64 ", but it has %" PRIu64 " entries",
                    dir, di->size, d.entries);
        check_add_fix(c, dir, FIX_SIZE, d.entries);
    }
    return 0;
}

/* ---- orphan list ---------------------------------------------------------------- */

static int check_orphans(struct check *c)
{
    uint64_t ino = c->sb.orphan_head;
    for (uint64_t steps = 0; ino; steps++) {
        if (ino > c->inode_count || steps > c->inode_count) {
            check_error(c, "orphan list: inode %" PRIu64 " out of range", ino);
            return 0;
        }
        struct check_inode *ci = &c->inodes[ino];
        if (!(ci->state & CI_VALID)) {
            check_error(c, "orphan list: inode %" PRIu64 " is %s", ino,
                        ci->state & CI_USED ? "corrupt" : "free");
            return 0;
        }
        if (ci->state & CI_ORPHAN) {
            check_error(c, "orphan list: cycle at inode %" PRIu64, ino);
            return 0;
        }
        ci->state |= CI_ORPHAN;
        struct mmapfs_disk_inode di;
        int err = check_read_inode(c, ino, &di);
        if (err)
            return err;
        c->orphans++;
        if (di.nlink)
            check_error(c, "orphan list: inode %" PRIu64 " has %u links", ino, di.nlink);
        else
            check_info(c, "inode %" PRIu64 ": unlinked while open (orphan), released at the "
                       "next mount", ino);
        ino = di.orphan_next;
    }
    return 0;
}

/* ---- reachability ---------------------------------------------------------------- */

/* Resolves whether directory ino reaches the root through named_by links;
 * marks the whole chain CI_REACHED or CI_LOST. Reports a cycle once. */
static void resolve_dir(struct check *c, uint64_t ino)
{
    uint64_t cur = ino;
    int reached = 0;
    for (;;) {
        struct check_inode *ci = &c->inodes[cur];
        if (cur == MMAPFS_ROOT_INO || (ci->state & CI_REACHED)) {
            reached = 1;
            break;
        }
        if (ci->state & CI_LOST)
            break;
        if (ci->state & CI_VISITING) {
            check_error(c, "directory %" PRIu64 ": part of a cycle of directories cut off "
                        "from the root", cur);
            break;
        }
        if (!ci->named_by)
            break;          /* reported by the caller's link checks */
        ci->state |= CI_VISITING;
        cur = ci->named_by;
    }
    for (cur = ino;;) {
        struct check_inode *ci = &c->inodes[cur];
        if (!(ci->state & CI_VISITING))
            break;
        ci->state &= (uint8_t)~CI_VISITING;
        ci->state |= reached ? CI_REACHED : CI_LOST;
        cur = ci->named_by;
    }
    if (!(c->inodes[ino].state & (CI_REACHED | CI_LOST)))
        c->inodes[ino].state |= reached ? CI_REACHED : CI_LOST;
}

/* Link count, parent and reachability of one valid inode. */
static int check_links(struct check *c, uint64_t ino)
{
    struct check_inode *ci = &c->inodes[ino];
    struct mmapfs_disk_inode di;
    int err = check_read_inode(c, ino, &di);
    if (err)
        return err;
    int orphan = (ci->state & CI_ORPHAN) != 0;

    if (ci->dtype == DT_DIR) {
        if (ino == MMAPFS_ROOT_INO) {
            if (di.parent != MMAPFS_ROOT_INO) {
                check_error(c, "root directory: parent %" PRIu64 ", expected itself", di.parent);
                check_add_fix(c, ino, FIX_PARENT, MMAPFS_ROOT_INO);
            }
        } else if (!ci->named_by) {
            if (!orphan)
                check_error(c, "directory %" PRIu64 ": not named by any entry (unreachable)",
                            ino);
        } else {
            if (orphan)
                check_error(c, "directory %" PRIu64 ": on the orphan list but named in "
                            "directory %u", ino, ci->named_by);
            if (di.parent != ci->named_by) {
                check_error(c, "directory %" PRIu64 ": parent %" PRIu64 ", but its entry is "
                            "in directory %u", ino, di.parent, ci->named_by);
                check_add_fix(c, ino, FIX_PARENT, ci->named_by);
            }
            resolve_dir(c, ino);
        }
        uint64_t want = (orphan && !ci->named_by) ? 0 : 2 + (uint64_t)ci->subdirs;
        if (di.nlink != want) {
            check_error(c, "directory %" PRIu64 ": link count %u, expected %" PRIu64
                        " (2 + %u subdirectories)", ino, di.nlink, want, ci->subdirs);
            check_add_fix(c, ino, FIX_NLINK, want);
        }
        return 0;
    }
    if (ci->links == 0) {
        if (!orphan)
            check_error(c, "inode %" PRIu64 ": in use (%u links) but not named by any entry "
                        "and not on the orphan list", ino, di.nlink);
        return 0;
    }
    if (orphan)
        check_error(c, "inode %" PRIu64 ": on the orphan list but named by %u entries",
                    ino, ci->links);
    if (di.nlink != ci->links) {
        check_error(c, "inode %" PRIu64 ": link count %u, but %u entries name it",
                    ino, di.nlink, ci->links);
        check_add_fix(c, ino, FIX_NLINK, ci->links);
    }
    return 0;
}

/* ---- pass 2 ---------------------------------------------------------------------- */

int check_pass_dirs(struct check *c)
{
    struct check_inode *root = &c->inodes[MMAPFS_ROOT_INO];
    if (!(root->state & CI_VALID) || root->dtype != DT_DIR) {
        check_error(c, "root directory (inode 1): %s",
                    !(root->state & CI_USED) ? "free" :
                    !(root->state & CI_VALID) ? "corrupt" : "not a directory");
        c->structural = 1;
    }
    for (uint64_t ino = 1; ino <= c->inode_count; ino++) {
        struct check_inode *ci = &c->inodes[ino];
        if (!(ci->state & CI_VALID) || ci->dtype != DT_DIR || (ci->state & CI_TREE_BAD))
            continue;
        struct mmapfs_disk_inode di;
        int err = check_read_inode(c, ino, &di);
        if (!err)
            err = walk_dir(c, ino, &di);
        if (err)
            return err;
    }
    int err = check_orphans(c);
    if (err)
        return err;
    for (uint64_t ino = 1; ino <= c->inode_count; ino++) {
        if (!(c->inodes[ino].state & CI_VALID))
            continue;
        err = check_links(c, ino);
        if (err)
            return err;
    }
    return 0;
}
