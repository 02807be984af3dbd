/*
 * fsck.c — the fsck driver: opens and locks the image (fsck/open.c),
 * validates the superblock, replays the journal, runs the rounds (each:
 * the passes of fsck/inodes.c, fsck/dirs.c, fsck/bitmaps.c, then with
 * -y/-p one repair phase, fsck/repair.c) and prints the summary. Also the
 * helpers the passes share (fsck_i.h).
 *
 * The journal is replayed even with -n: committed transactions are part of
 * the filesystem's content, not a repair (docs/man/fsck.mmapfs.8). With -n
 * the replay is in memory only (a read-only jnl whose blocks fsck_block
 * and fsck_read return): -n never writes to the image.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsck/fsck_i.h"
#include "fs/super.h"
#include "journal/journal.h"
#include "util/crc32c.h"

#define PROG CHECK_PROG
#define ERROR_LINES_MAX 200u     /* without -v, later error lines are counted only */
#define MAX_ROUNDS 12u           /* check + repair rounds; the last one only checks */

/* ---- reporting ------------------------------------------------------------------- */

/* Prints one prefixed line unless the cap of its kind (*lines: error or
 * repair lines printed) is reached. */
static void vline(struct check *c, uint64_t *lines, const char *kind, const char *prefix,
                  const char *fmt, va_list ap)
{
    if (!c->opt.verbose && *lines >= ERROR_LINES_MAX) {
        if ((*lines)++ == ERROR_LINES_MAX)
            fprintf(c->out, PROG ": too many %s; only counting the rest (-v lists all)\n",
                    kind);
        return;
    }
    (*lines)++;
    mfs_progress_clear(&c->progress);
    fputs(prefix, c->out);
    vfprintf(c->out, fmt, ap);
    fputc('\n', c->out);
}

/* See fsck_i.h. */
void fsck_error(struct check *c, const char *fmt, ...)
{
    c->errors++;
    if (!c->out)
        return;
    va_list ap;
    va_start(ap, fmt);
    vline(c, &c->lines, "errors", PROG ": ", fmt, ap);
    va_end(ap);
}

/* See fsck_i.h. */
void fsck_repaired(struct check *c, const char *fmt, ...)
{
    if (!c->out)
        return;
    va_list ap;
    va_start(ap, fmt);
    vline(c, &c->repair_lines, "repairs", PROG ": repair: ", fmt, ap);
    va_end(ap);
}

/* See fsck_i.h. */
void fsck_info(struct check *c, const char *fmt, ...)
{
    if (!c->out)
        return;
    va_list ap;
    va_start(ap, fmt);
    mfs_progress_clear(&c->progress);
    fputs(PROG ": info: ", c->out);
    vfprintf(c->out, fmt, ap);
    fputc('\n', c->out);
    va_end(ap);
}

/* Verbose-only progress line. */
static void check_verbose(struct check *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void check_verbose(struct check *c, const char *fmt, ...)
{
    if (!c->out || !c->opt.verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    mfs_progress_clear(&c->progress);
    fputs(PROG ": ", c->out);
    vfprintf(c->out, fmt, ap);
    fputc('\n', c->out);
    va_end(ap);
}

/* See fsck_i.h. */
void fsck_add_fix(struct check *c, uint64_t ino, enum check_fix_field f, uint64_t value)
{
    if (c->nfixes == c->fixes_cap) {
        size_t cap = c->fixes_cap ? c->fixes_cap * 2 : 64;
        struct check_fix *n = realloc(c->fixes, cap * sizeof(*n));
        if (!n)
            return;         /* the error stays uncorrected */
        c->fixes = n;
        c->fixes_cap = cap;
    }
    c->fixes[c->nfixes++] = (struct check_fix){ .ino = ino, .value = value, .field = f };
}

/* See fsck_i.h. */
void fsck_plan(struct check *c, uint64_t ino, uint16_t rflags)
{
    if (ino < 1 || ino > c->inode_count)
        return;
    struct check_inode *ci = fsck_ci(c, ino);
    uint16_t was = ci->rflags;
    ci->rflags |= rflags;
    if ((rflags & RF_RECORD) && !(was & RF_RECORD))
        c->nrecord++;
    if ((rflags & RF_SALVAGE) && !(was & RF_SALVAGE))
        c->nsalvage++;
    if ((rflags & RF_REBUILD_DIR) && !(was & RF_REBUILD_DIR))
        c->ndirfix++;
    if ((rflags & RF_RECONNECT) && !(was & RF_RECONNECT))
        c->nreconnect++;
}

/* See fsck_i.h. */
void fsck_escape(char *out, size_t out_len, const char *name, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < out_len; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\' && ch != '\'')
            out[o++] = (char)ch;
        else
            o += (size_t)snprintf(out + o, out_len - o, "\\x%02x", ch);
    }
    if (out_len)
        out[o < out_len ? o : out_len - 1] = '\0';
}

/* ---- reading the image -------------------------------------------------------------- */

const uint8_t *fsck_block(struct check *c, uint64_t blk)
{
    if (blk >= c->block_count)
        return NULL;
    if (c->replay && jnl_is_shadow(c->replay, blk))
        return jnl_read(c->replay, blk);    /* its lock is held for the whole check */
    return mmio_ptr(c->io, blk * MMAPFS_BLOCK_SIZE);
}

/* See fsck_i.h. */
int fsck_read(struct check *c, uint64_t off, void *buf, size_t len)
{
    uint8_t *to = buf;
    while (len) {
        uint64_t blk = off / MMAPFS_BLOCK_SIZE;
        size_t in = (size_t)(off % MMAPFS_BLOCK_SIZE);
        size_t n = len < MMAPFS_BLOCK_SIZE - in ? len : MMAPFS_BLOCK_SIZE - in;
        if (c->replay && jnl_is_shadow(c->replay, blk)) {
            memcpy(to, (const uint8_t *)jnl_read(c->replay, blk) + in, n);
        } else {
            int err = mmio_read_at(c->io, off, to, n);
            if (err)
                return err;
        }
        to += n;
        off += n;
        len -= n;
    }
    return 0;
}

/* See fsck_i.h. */
uint64_t fsck_inode_offset(const struct check *c, uint64_t ino)
{
    if (ino < 1 || ino > c->inode_count)
        return 0;
    uint64_t blk = mmapfs_inode_block(c->sb.inode_table_start, c->sb.inode_table_blocks,
                                      &c->sb.itab, ino);
    return blk ? blk * MMAPFS_BLOCK_SIZE +
                 ((ino - 1) % MMAPFS_INODES_PER_BLOCK) * MMAPFS_INODE_SIZE : 0;
}

/* See fsck_i.h. */
int fsck_in_itab(const struct check *c, uint64_t start, uint64_t len)
{
    const struct mmapfs_disk_itab *t = &c->sb.itab;
    if (!(c->sb.feature_incompat & MMAPFS_FEATURE_INCOMPAT_ITAB))
        return 0;
    for (uint32_t i = 0; i < t->count && i < MMAPFS_ITAB_EXTENTS_MAX; i++)
        if (start < t->ext[i].start + t->ext[i].blocks && t->ext[i].start < start + len)
            return 1;
    return t->inode_bitmap_room && start < c->sb.inode_bitmap_start + t->inode_bitmap_room &&
           c->sb.inode_bitmap_start < start + len;
}

/* See fsck_i.h. */
void fsck_claim_itab(struct check *c)
{
    if (!(c->sb.feature_incompat & MMAPFS_FEATURE_INCOMPAT_ITAB))
        return;
    for (uint32_t i = 0; i < c->sb.itab.count && i < MMAPFS_ITAB_EXTENTS_MAX; i++)
        for (uint64_t b = 0; b < c->sb.itab.ext[i].blocks; b++)
            fsck_bits_set(&c->claimed, c->sb.itab.ext[i].start + b);
    for (uint64_t b = 0; b < c->sb.itab.inode_bitmap_room; b++)
        fsck_bits_set(&c->claimed, c->sb.inode_bitmap_start + b);
}

/* See fsck_i.h. */
int fsck_read_inode(struct check *c, uint64_t ino, struct mmapfs_disk_inode *di)
{
    uint64_t off = fsck_inode_offset(c, ino);
    if (!off)
        return -EIO;
    int err = fsck_read(c, off, di, sizeof(*di));
    return err ? -EIO : 0;
}

/* See fsck_i.h. */
int fsck_inode_bit(struct check *c, uint64_t ino)
{
    uint64_t bit = ino - 1;
    const uint8_t *p = fsck_block(c, c->sb.inode_bitmap_start + bit / (MMAPFS_BLOCK_SIZE * 8));
    return p ? check_bit(p, bit % (MMAPFS_BLOCK_SIZE * 8)) : 0;
}

/* See fsck_i.h. */
int fsck_block_bit(struct check *c, uint64_t b)
{
    const uint8_t *p = fsck_block(c, c->sb.block_bitmap_start + b / (MMAPFS_BLOCK_SIZE * 8));
    return p ? check_bit(p, b % (MMAPFS_BLOCK_SIZE * 8)) : 1;
}

/* Read-only B+tree store: nodes live in the data area of the mapping. */
static const void *store_read(void *ctx, uint64_t blk)
{
    struct check *c = ctx;
    if (blk < c->data_start || blk >= c->block_count)
        return NULL;
    return fsck_block(c, blk);
}

static void *store_write(void *ctx, uint64_t blk)
{
    (void)ctx;
    (void)blk;
    return NULL;
}

static int store_alloc(void *ctx, uint64_t goal, uint64_t *blk, void **out)
{
    (void)ctx;
    (void)goal;
    (void)blk;
    (void)out;
    return -ENOSPC;
}

static void store_free(void *ctx, uint64_t blk)
{
    (void)ctx;
    (void)blk;
}

/* The store's ctx is set to the struct check in fs_check. */
static const struct bt_store check_store = {
    .ctx = NULL, .read = store_read, .write = store_write,
    .alloc = store_alloc, .free = store_free,
};

/* ---- driver ---------------------------------------------------------------------- */

/* -n: replays the journal into memory only. A dry run counts the valid
 * transactions; if there are any, a read-only journal object holds their
 * blocks (readers see the recovered state, the image is not written) and
 * its lock is held until the end of the check, so that the pointers
 * fsck_block returns stay valid. 0 or -errno (as jnl_recover). */
static int replay_in_memory(struct check *c, const struct jnl_geometry *g,
                            uint64_t *replayed)
{
    int err = jnl_recover(c->io, g, 1, replayed);
    if (err || !*replayed)
        return err;
    struct jnl_config cfg = { .read_only = 1 };
    err = jnl_open(&c->replay, c->io, g, &cfg);
    if (err)
        return err;
    jnl_lock(c->replay);
    return 0;
}

/* Superblock edit: the layout of the superblock before the replay. */
static void edit_geometry(struct mmapfs_disk_superblock *sb, void *arg)
{
    const struct mmapfs_disk_superblock *before = arg;
    sb->block_count = before->block_count;
    sb->inode_count = before->inode_count;
    sb->block_bitmap_start = before->block_bitmap_start;
    sb->inode_bitmap_start = before->inode_bitmap_start;
    sb->inode_table_start = before->inode_table_start;
    sb->inode_table_blocks = before->inode_table_blocks;
    sb->itab = before->itab;
    sb->data_start = before->data_start;
    sb->journal_start = before->journal_start;
    sb->journal_blocks = before->journal_blocks;
}

/* -y/-p: writes back into block 0 what (its layout, its features) it had
 * before the replay, by edit. 0 or FSCK_EXIT_OPERATIONAL. */
static int put_back(struct check *c, void (*edit)(struct mmapfs_disk_superblock *, void *),
                    const struct mmapfs_disk_superblock *before, const char *what)
{
    struct mmapfs_disk_superblock old = *before;
    int err = fsck_begin_repair(c);
    if (!err)
        err = fsck_write_super(c, edit, &old);
    if (err) {
        if (c->out)
            fprintf(c->out, PROG ": %s: cannot write the superblock: %s\n", c->path,
                    strerror(-err));
        return FSCK_EXIT_OPERATIONAL;
    }
    fsck_repaired(c, "superblock: wrote back the %s it had before the journal replay", what);
    c->repairs++;
    return 0;
}

/* After a replay that wrote block 0: its layout must be the one before
 * (fs_super_same_geometry, as the mount requires). Otherwise an error;
 * -y/-p write the old layout back. 0 or FSCK_EXIT_*. */
static int check_replayed_geometry(struct check *c, const struct mmapfs_disk_superblock *before)
{
    if (fs_super_same_geometry(before, &c->sb))
        return 0;
    fsck_error(c, "journal: its copy of the superblock changes the layout (%" PRIu64
               " blocks, %" PRIu64 " inodes, journal at %" PRIu64 " before; %" PRIu64
               ", %" PRIu64 ", %" PRIu64 " replayed): the mount refuses it",
               before->block_count, before->inode_count, before->journal_start,
               c->sb.block_count, c->sb.inode_count, c->sb.journal_start);
    if (!c->may_repair)
        return 0;
    int r = put_back(c, edit_geometry, before, "layout");
    if (!r) {
        c->block_count = c->sb.block_count;
        c->inode_count = c->sb.inode_count;
        c->data_start = c->sb.data_start;
    }
    return r;
}

/* Superblock edit: the features it had before the replay, but for
 * XATTR_CHAIN as replayed. */
static void edit_features(struct mmapfs_disk_superblock *sb, void *arg)
{
    fs_super_take_features(sb, arg);
}

/* After a replay: block 0's features must be those it had before, but for
 * XATTR_CHAIN; only mkfs and mmapfs-resize change them, offline, and the
 * mount refuses another change (load_after_replay). Such a change is a
 * damaged log, and the replayed features (an unknown incompat bit, say)
 * would stop the check itself: -y/-p write the old ones back; -n stops
 * here. 0 or FSCK_EXIT_*. */
static int check_replayed_features(struct check *c, const struct mmapfs_disk_superblock *before)
{
    struct mmapfs_disk_superblock sb;
    if (fsck_read(c, 0, &sb, sizeof(sb)) || fs_super_same_features(before, &sb))
        return 0;                   /* a read error: fsck_load_superblock reports it */
    fsck_error(c, "journal: its copy of the superblock changes the features (compat %#x, "
               "ro_compat %#x, incompat %#x before; %#x, %#x, %#x replayed): the mount "
               "refuses it", before->feature_compat, before->feature_ro_compat,
               before->feature_incompat, sb.feature_compat, sb.feature_ro_compat,
               sb.feature_incompat);
    if (!c->may_repair)
        return FSCK_EXIT_UNCORRECTED;
    return put_back(c, edit_features, before, "features");
}

/* Replays the journal: into the image with -y/-p, into memory with -n;
 * with -y/-p replaces a journal whose headers are both invalid by a fresh
 * empty one. 0 or FSCK_EXIT_*. */
static int replay_journal(struct check *c)
{
    const struct mmapfs_disk_superblock before = c->sb;
    struct jnl_geometry g = { .journal_start = c->sb.journal_start,
                              .journal_blocks = c->sb.journal_blocks,
                              .block_count = c->sb.block_count };
    uint64_t replayed = 0;
    int err = c->opt.mode == FS_CHECK_NO ? replay_in_memory(c, &g, &replayed)
                                         : jnl_recover(c->io, &g, 0, &replayed);
    if (err == -EUCLEAN || err == -EINVAL) {
        fsck_error(c, "journal: %s", err == -EUCLEAN ? "both header slots are invalid"
                                                      : "bad journal geometry");
        c->journal_bad = err == -EUCLEAN;
        if (c->journal_bad && c->may_repair) {
            err = fsck_begin_repair(c);
            if (!err)
                err = jnl_format(c->io, &g);
            if (err) {
                if (c->out)
                    fprintf(c->out, PROG ": %s: cannot write a new journal: %s\n", c->path,
                            strerror(-err));
                return FSCK_EXIT_OPERATIONAL;
            }
            fsck_repaired(c, "journal: wrote fresh, empty journal headers");
            c->repairs++;
            c->journal_bad = 0;
        }
        return 0;
    }
    if (err) {
        if (c->out)
            fprintf(c->out, PROG ": %s: journal replay failed: %s\n", c->path, strerror(-err));
        return FSCK_EXIT_OPERATIONAL;
    }
    if (replayed) {
        fsck_info(c, "journal: replayed %" PRIu64 " committed transaction%s%s", replayed,
                   replayed == 1 ? "" : "s",
                   c->replay ? " in memory (-n: the image is not written)" : "");
        int r = check_replayed_features(c, &before);
        if (!r)
            r = fsck_load_superblock(c, c->out);      /* block 0 may have been replayed */
        return r ? r : check_replayed_geometry(c, &before);
    }
    return 0;
}

/* Frees the sparse per-round state. */
static void free_state(struct check *c)
{
    fsck_bits_free(&c->claimed);
    fsck_bits_free(&c->dup);
    fsck_bits_free(&c->taken);
    fsck_ci_free(c);
}

/* Clears the per-round state before a new round. */
static void round_reset(struct check *c)
{
    fsck_bits_reset(&c->claimed);
    fsck_claim_itab(c);        /* validated: inside the filesystem */
    fsck_bits_reset(&c->dup);
    fsck_bits_reset(&c->taken);
    fsck_ci_reset(c);
    c->nomem = 0;
    (void)fsck_ci(c, MMAPFS_ROOT_INO);   /* loops over records visit the root */
    c->ndup = 0;
    c->nfixes = 0;
    c->structural = c->bitmap_bad = c->counts_bad = 0;
    c->ibits_lost = 0;
    fsck_holes_reset(c);        /* the repairs of the last round wrote */
    c->nrecord = c->nsalvage = c->ndirfix = c->nreconnect = 0;
    c->orphan_bad = c->lnf_blocked = 0;
    c->partial_dirs = c->hidden_links = 0;
    c->lnf_ino = 0;
    c->alloc_next = c->data_start;
    c->trust_claims = 0;
    c->used_inodes = c->dirs = c->files = c->tree_nodes = c->data_blocks = c->orphans = 0;
    c->xattr_chained = 0;
    c->xattr_in_inode = 0;
    c->errors = 0;
}

/* -ENOMEM if a page of the sparse state could not be allocated (some of
 * the state was then dropped), else err. */
static int nomem(const struct check *c, int err)
{
    if (!err && (c->nomem || c->claimed.nomem || c->dup.nomem || c->taken.nomem))
        return -ENOMEM;
    return err;
}

/* Runs the passes of one round. 0 or -errno. */
static int run_passes(struct check *c)
{
    int err;
    check_verbose(c, "pass 1: inodes, extents, trees, xattr blocks");
    err = nomem(c, fsck_pass_inodes(c));
    if (!err && c->ndup) {
        check_verbose(c, "pass 1b: %" PRIu64 " blocks claimed more than once", c->ndup);
        err = nomem(c, fsck_pass_duplicates(c));
    }
    if (!err) {
        check_verbose(c, "pass 2: directories, orphans, link counts, reachability");
        err = nomem(c, fsck_pass_dirs(c));
    }
    if (!err) {
        check_verbose(c, "pass 3: bitmaps and free counts");
        err = nomem(c, fsck_pass_bitmaps(c));
    }
    return err;
}

/* Prints an operational failure; returns FSCK_EXIT_OPERATIONAL. */
static int operational(struct check *c, int err)
{
    if (c->out)
        fprintf(c->out, PROG ": %s: %s\n", c->path,
                err == -ENOMEM ? "out of memory" :
                c->repairs ? "I/O error while repairing" : "I/O error while checking");
    return FSCK_EXIT_OPERATIONAL;
}

/* Checks (and repairs) in rounds until a round has nothing (more) to
 * repair. 0 or FSCK_EXIT_OPERATIONAL. */
static int run_rounds(struct check *c)
{
    for (c->round = 1;; c->round++) {
        if (c->round > 1 && fsck_load_superblock(c, c->out))
            return operational(c, -EIO);
        /* sized by this round's superblock */
        free_state(c);
        if (fsck_bits_init(&c->claimed, c->block_count) ||
            fsck_bits_init(&c->dup, c->block_count) ||
            fsck_bits_init(&c->taken, c->block_count) || fsck_ci_init(c))
            return operational(c, -ENOMEM);
        round_reset(c);
        if (c->round > 1)
            fsck_info(c, "checking again after the repairs (round %u)", c->round);
        int err = run_passes(c);
        if (err)
            return operational(c, err);
        if (!c->may_repair || !c->errors || c->round == MAX_ROUNDS)
            return 0;
        check_verbose(c, "repairing");
        int r = fsck_repair(c);
        if (r < 0)
            return operational(c, r);
        if (r == 0)
            return 0;
        if (c->round == 1)
            c->first_errors = c->errors;
    }
}

/* Sets or clears the ERROR state bit of the superblock (superblock edit). */
static void edit_error_state(struct mmapfs_disk_superblock *sb, void *arg)
{
    if (*(int *)arg)
        sb->state |= MMAPFS_STATE_ERROR;
    else
        sb->state &= ~(uint32_t)MMAPFS_STATE_ERROR;
}

/* After the rounds: the ERROR flag is cleared when nothing is left, set
 * when repairs ran and something is left. Prints the summary line and
 * computes the exit bits: what the first round found, what the last round
 * still finds (problems that only appear while repairing are listed with
 * their round, but the summary counts the image's own). */
static int finish(struct check *c, uint64_t pre_errors)
{
    mfs_progress_clear(&c->progress);
    uint64_t left = c->errors, pre_left = pre_errors - c->repairs_pre;
    int cleared = 0;
    if (c->round == 1)
        c->first_errors = c->errors;
    if (c->may_repair && !left && (c->error_state || c->error_set)) {
        int on = 0;
        if (fsck_write_super(c, edit_error_state, &on))
            return operational(c, -EIO);
        cleared = c->error_state;
    } else if (c->may_repair && left && !(c->sb.state & MMAPFS_STATE_ERROR)) {
        int on = 1;
        if (fsck_write_super(c, edit_error_state, &on))
            return operational(c, -EIO);
    }
    if (cleared && pre_left)
        pre_left--;
    uint64_t found = pre_errors + c->first_errors;
    left += pre_left;
    if (left > found)
        found = left;
    if (c->out) {
        if (c->opt.verbose)
            fprintf(c->out, PROG ": %" PRIu64 " directories, %" PRIu64 " other inodes, %"
                    PRIu64 " tree nodes, %" PRIu64 " data blocks, %" PRIu64 " orphans, %"
                    PRIu64 " chained xattr blocks, %" PRIu64 " in-inode xattrs\n", c->dirs,
                    c->files, c->tree_nodes, c->data_blocks, c->orphans, c->xattr_chained,
                    c->xattr_in_inode);
        fprintf(c->out, PROG ": %s: ", c->path);
        if (!found)
            fprintf(c->out, "clean");
        else if (!left)
            fprintf(c->out, "%" PRIu64 " error%s found, all corrected", found,
                    found == 1 ? "" : "s");
        else if (c->opt.mode == FS_CHECK_NO)
            fprintf(c->out, "%" PRIu64 " error%s found, not corrected (-n)", found,
                    found == 1 ? "" : "s");
        else
            fprintf(c->out, "%" PRIu64 " error%s found, %" PRIu64 " left (%s)", found,
                    found == 1 ? "" : "s", left,
                    !c->may_repair ? "unknown read-only features: no repairs" :
                    c->stop_preen ? "not repaired in preen mode: run fsck.mmapfs -y" :
                    "could not be repaired");
        if (c->round > 1)
            fprintf(c->out, " after %u rounds", c->round);
        fprintf(c->out, "; %" PRIu64 "/%" PRIu64 " inodes, %" PRIu64 "/%" PRIu64
                " blocks in use\n", c->inode_count - c->sb.free_inodes, c->inode_count,
                c->block_count - c->sb.free_blocks, c->block_count);
    }
    int ret = 0;
    if (c->repairs || cleared)
        ret |= FSCK_EXIT_CORRECTED;
    if (left)
        ret |= FSCK_EXIT_UNCORRECTED;
    return ret;
}

/* Everything after opening the target: superblock, MMP, journal, rounds,
 * summary. Returns the exit bits. */
static int check_image(struct check *c)
{
    FILE *report = c->out;
    int ret = fsck_load_superblock(c, report);
    if (ret)
        return ret;
    /* a superblock mended only in memory (-n, -p) is not written over */
    c->may_repair = c->opt.mode != FS_CHECK_NO && !c->sb.feature_ro_compat &&
                    !(c->sb_mended && !c->repair_started);
    if (c->sb.feature_ro_compat)
        fsck_info(c, "unknown read-only-compatible features %#x: checking without repairs",
                   c->sb.feature_ro_compat);
    if (c->opt.mode == FS_CHECK_PREEN && !c->opt.force &&
        c->sb.state == MMAPFS_STATE_CLEAN) {
        if (report)
            fprintf(report, PROG ": %s: clean, skipped (-f checks anyway)\n", c->path);
        return 0;
    }
    ret = fsck_mmp(c);
    if (!ret)
        ret = replay_journal(c);
    if (!ret)
        ret = fsck_backup_superblock(c);
    if (ret)
        return ret;
    if (c->sb.state & MMAPFS_STATE_ERROR) {
        fsck_error(c, "superblock: the filesystem is marked as having errors");
        c->error_state = 1;
    }
    /* errors so far (journal, ERROR state) are outside the rounds */
    uint64_t pre_errors = c->errors;
    c->repairs_pre = c->repairs;
    ret = run_rounds(c);
    if (!ret)
        ret = finish(c, pre_errors);
    return ret;
}

/* check_image under the engine's SIGBUS guard (mmio_guarded_call). */
struct guarded_check {
    struct check *c;
    int ret;
};

static void check_image_guarded(void *arg)
{
    struct guarded_check *g = arg;
    g->ret = check_image(g->c);
}

/* See fsck_i.h. */
int fs_check(const char *path, const struct fs_check_options *o, FILE *report)
{
    struct check c = { .out = report, .path = path };
    struct bt_store store = check_store;
    int fd;

    if (o)
        c.opt = *o;
    mfs_progress_init(&c.progress, c.opt.progress, PROG);
    int ret = fsck_open(&c, &fd);
    if (ret)
        goto out;
    c.fd = fd;
    store.ctx = &c;
    c.store = &store;
    /* the passes read metadata through pointers into the mapping: an image
     * truncated under fsck (or a read error on a page) faults there, and
     * the guard turns that into an operational error. What the abandoned
     * pass allocated is not freed: the program stops anyway. */
    struct guarded_check g = { &c, FSCK_EXIT_OPERATIONAL };
    if (mmio_guarded_call(c.io, check_image_guarded, &g)) {
        if (report)
            fprintf(report, PROG ": %s: the image changed under fsck (truncated?) or could "
                    "not be read: stopped; check that nothing else uses it and run "
                    "fsck.mmapfs again\n", path);
        ret = FSCK_EXIT_OPERATIONAL;
    } else {
        ret = g.ret;
    }
out:
    mfs_progress_clear(&c.progress);
    fsck_mmp_release(&c);
    free_state(&c);
    free(c.fixes);
    fsck_close(&c, fd);
    return ret;
}
