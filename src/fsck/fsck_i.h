/*
 * Private to the fsck core (src/fsck/).
 *
 *   fsck.c             driver: journal, rounds, summary
 *   fsck/open.c        the target: stat, open, lock, engine (read-only with -n)
 *   fsck/super.c       the superblock: validation, mending a bad checksum
 *   fsck/inodes.c      pass 1: inodes, extent trees, xattr blocks, block owners;
 *                       pass 1b: names both owners of every block claimed twice
 *   fsck/record.c      a record with a bad checksum: mend it or give it up
 *   fsck/acl.c         POSIX ACL xattr values: the filesystem's parser
 *   fsck/dirs.c        pass 2: directory entries, orphan list, link counts,
 *                       reachability
 *   fsck/dirent.c      one directory entry: checks and its repaired form
 *   fsck/bitmaps.c     pass 3: bitmaps and free counts; the simple repairs
 *   fsck/io.c          every repair write and sync (and a crash simulation)
 *   fsck/write.c       repair primitives: block/inode allocation, writes,
 *                       building a fresh B+tree in free blocks
 *   fsck/repair.c      repair driver (which phase runs), inode records,
 *                       the orphan list
 *   fsck/salvage.c     corrupt trees: salvage what is readable, rebuild
 *   fsck/repair_dup.c  blocks claimed twice: clone or punch
 *   fsck/repair_dir.c  directory rebuilds, lost+found, reconnection
 *   fsck/sparse.c      per-block bits and per-inode records, allocated in
 *                       pages as they are written (memory follows use)
 *
 * fsck runs in rounds: every round checks the whole image from scratch;
 * with -y one repair phase runs at its end (the earliest that has work:
 * inode records, then corrupt trees, then shared blocks, then directory
 * entries and reachability, then the simple counts and bitmaps), and the
 * next round checks the result. The last round finds nothing to repair
 * (or nothing more it can repair): what it reports is what is left.
 *
 * Everything read from the image is untrusted: every number is range
 * checked before it is used as an index or an offset.
 */
#ifndef MMAPFS_CHECK_I_H
#define MMAPFS_CHECK_I_H

#include <stdint.h>
#include <stdio.h>

#include "fs/btree.h"
#include "fsck/fsck.h"
#include "fs/format.h"
#include "fs/fs.h"
#include "mmapfs/mmio.h"
#include "util/progress.h"

#define CHECK_PROG "fsck.mmapfs"

/* Per-inode state (struct check_inode.state bits). */
enum {
    CI_USED     = 1 << 0,   /* set in the inode bitmap, or its record is live */
    CI_VALID    = 1 << 1,   /* checksum and type good: trusted */
    CI_ORPHAN   = 1 << 2,   /* on the orphan list */
    CI_TREE_BAD = 1 << 3,   /* its tree is corrupt (walk failed) */
    CI_REACHED  = 1 << 4,   /* directory: reachable from the root */
    CI_LOST     = 1 << 5,   /* directory: known unreachable */
    CI_VISITING = 1 << 6,   /* directory: on the chain being resolved */
};

/* Per-inode repair plan (struct check_inode.rflags bits), this round. */
enum {
    RF_REC_SUM     = 1 << 0,  /* record sane, checksum wrong: recompute it */
    RF_REC_CLEAR   = 1 << 1,  /* record unusable: free the inode */
    RF_REC_ROOT    = 1 << 2,  /* root record unusable: rewrite as a directory */
    RF_NO_TREE     = 1 << 3,  /* device/FIFO/socket with a tree, or a stray tree
                               * root beside inline content: drop the pointer */
    RF_NO_XATTR    = 1 << 4,  /* xattr block unusable: drop it */
    RF_ORPHAN_NEXT = 1 << 5,  /* orphan_next out of range: clear it */
    RF_SALVAGE     = 1 << 6,  /* tree corrupt or bad extents: salvage, rebuild */
    RF_REBUILD_DIR = 1 << 7,  /* directory: entries to drop or fix: rebuild index */
    RF_CUT         = 1 << 8,  /* directory in a detached cycle: drop its entry */
    RF_RECONNECT   = 1 << 9,  /* link into lost+found */
    RF_ORPHAN_OK   = 1 << 10, /* belongs on the orphan list (unnamed, nlink 0) */
    RF_KEPT        = 1 << 11, /* directory: its one entry was kept by a rebuild */
    RF_REC_TYPE    = 1 << 12, /* mode type contradicts its tree: take the tree's */
    RF_NO_INLINE   = 1 << 13, /* inode flags unusable: the ones the inline area
                               * says, else drop flags and inline area */
    RF_NO_IXATTR   = 1 << 14, /* in-inode xattr area damaged: drop it */
    RF_IXATTR_DUP  = 1 << 15, /* in-inode xattr also in the chain: drop the inode's copy */
};
#define RF_RECORD (RF_REC_SUM | RF_REC_CLEAR | RF_REC_ROOT | RF_NO_TREE | RF_NO_XATTR | \
                   RF_ORPHAN_NEXT | RF_REC_TYPE | RF_NO_INLINE | RF_NO_IXATTR | RF_IXATTR_DUP)

struct check_inode {
    uint32_t links;        /* directory entries naming it */
    uint32_t subdirs;      /* directories: entries naming subdirectories */
    uint32_t named_by;     /* directories: directory holding its (kept) entry */
    uint8_t state;         /* CI_* */
    uint8_t dtype;         /* DT_* of its mode (valid inodes) */
    uint16_t rflags;       /* RF_* */
};

/* One bit per block, in pages of 2^CHECK_BITS_PAGE_SHIFT bits (32 KiB,
 * 1 GiB of blocks) allocated on the first set bit (fsck/sparse.c). */
#define CHECK_BITS_PAGE_SHIFT 18
struct check_bits {
    uint8_t **pages;
    uint64_t npages;
    int nomem;                       /* a page could not be allocated */
};
/* Per-inode records in pages of 2^CHECK_INO_PAGE_SHIFT (64 KiB). */
#define CHECK_INO_PAGE_SHIFT 12

/* Per-inode simple repairs found (phase E). */
enum check_fix_field { FIX_NLINK, FIX_SIZE, FIX_BLOCKS, FIX_PARENT,
                       FIX_INODE_BIT,  /* set its inode bitmap bit */
                       FIX_INLINE_TAIL, /* zero the inline area from value on */
                       FIX_BAD_ACL,    /* remove its invalid ACL xattrs */
                       FIX_FIELDS };
struct check_fix {
    uint64_t ino;
    uint64_t value;
    enum check_fix_field field;
};

struct jnl;

struct check {
    struct mmio *io;                 /* read-only engine with -n */
    int fd;                          /* the target, open (and locked) */
    uint64_t hole_first, hole_end;   /* fsck_block_hole's last answer: blocks */
    uint64_t data_first, data_end;   /* [first, end) known a hole / data */
    struct jnl *replay;              /* -n: the journal replayed into memory only
                                        (read-only jnl, lock held), or NULL */
    FILE *out;
    const char *path;
    struct fs_check_options opt;
    struct mfs_progress progress;    /* opt.progress's line (util/progress.h) */
    int may_repair;                  /* mode != NO and no unknown ro_compat features */
    struct mmapfs_disk_superblock sb;  /* copy, re-read every round */
    const struct bt_store *store;    /* read-only store over the mapping */
    uint64_t block_count, inode_count, data_start;
    unsigned round;                  /* 1, 2, ... */

    /* ---- per round (reset by check_round_reset) ---- */
    struct check_bits claimed;       /* owned by some inode */
    struct check_bits dup;           /* claimed more than once */
    uint64_t ndup;
    struct check_inode **ci_pages;   /* records of inodes 0..inode_count (fsck_ci) */
    uint64_t ci_npages;
    int nomem;                       /* a record page could not be allocated */

    struct check_fix *fixes;
    size_t nfixes, fixes_cap;
    uint64_t xattr_chained;          /* xattr blocks after the first of a chain */
    uint64_t xattr_in_inode;         /* xattrs kept in inode records */
    int structural;                  /* a problem that makes a bitmap rebuild unsafe */
    int bitmap_bad, counts_bad;
    uint64_t ibits_lost;             /* live inodes free in the inode bitmap */
    /* repair plan (counts of inodes with the RF_* flags) */
    uint64_t nrecord, nsalvage, ndirfix, nreconnect;
    int orphan_bad;                  /* the orphan list must be rebuilt */
    uint64_t partial_dirs;           /* directories whose index is corrupt */
    uint64_t hidden_links;           /* link problems not listed because of them */
    uint64_t lnf_ino;                /* valid directory named "lost+found" in the root */
    int lnf_blocked;                 /* root's "lost+found" names a non-directory */
    /* repair allocator: blocks handed out (or reserved) in this round */
    struct check_bits taken;
    uint64_t alloc_next;
    int trust_claims;                /* every in-use inode and tree was read: a block
                                        no inode owns is free whatever the bitmap says */

    /* statistics of the round */
    uint64_t used_inodes, dirs, files, tree_nodes, data_blocks, orphans;
    uint64_t errors;

    /* ---- whole run ---- */
    uint64_t lines, repair_lines;    /* error / repair lines printed (cap without -v) */
    uint64_t repairs;                /* repair actions written */
    uint64_t repairs_pre;            /* of those, before the rounds (journal) */
    uint64_t first_errors;           /* errors the first round found */
    int journal_bad, error_state, error_set;
    int repair_started;              /* the ERROR flag is on disk while repairing */
    int stop_preen;                  /* -p met a problem it must not repair */
    int sb_mended;                   /* the superblock's checksum was wrong */
    int in_use;                      /* -n of an image another process holds */
    struct mmp *mmp;                 /* repairs: the MMP block says FSCK (fsck/mmp.c) */
};

/* Reports one problem: "fsck.mmapfs: <msg>" (the count always grows; the
 * printing stops after a cap unless verbose). */
void fsck_error(struct check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An informational line (not an error). */
void fsck_info(struct check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A repair made: "fsck.mmapfs: repair: <msg>". */
void fsck_repaired(struct check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Records a per-inode simple repair (an error already reported). */
void fsck_add_fix(struct check *c, uint64_t ino, enum check_fix_field f, uint64_t value);
/* Sets repair flags on inode ino, counting the inode once per plan. */
void fsck_plan(struct check *c, uint64_t ino, uint16_t rflags);

/* Pointer to block blk as the check sees it (with -n, a block replayed
 * from the journal is its in-memory copy), or NULL if out of the
 * filesystem. */
const uint8_t *fsck_block(struct check *c, uint64_t blk);
/* Copies len bytes at byte offset off as the check sees them (replayed
 * blocks included). 0 or an engine error. */
int fsck_read(struct check *c, uint64_t off, void *buf, size_t len);
/* Byte offset of inode ino's record (1 <= ino <= inode_count) in the
 * first inode table or a grown table's extents; 0 if there is none. */
uint64_t fsck_inode_offset(const struct check *c, uint64_t ino);
/* Does [start, start+len) overlap a grown inode table's extents or its
 * inode bitmap room (blocks of the data area no inode may own)? */
int fsck_in_itab(const struct check *c, uint64_t start, uint64_t len);
/* Claims the blocks of a grown inode table (its extents and the inode
 * bitmap's room in the data area) in c->claimed. */
void fsck_claim_itab(struct check *c);
/* Copies inode ino's record. 0 or -EIO. */
int fsck_read_inode(struct check *c, uint64_t ino, struct mmapfs_disk_inode *di);
/* Is inode ino set in the on-disk inode bitmap? */
int fsck_inode_bit(struct check *c, uint64_t ino);
/* Is block b set in the on-disk block bitmap? (1 when unreadable) */
int fsck_block_bit(struct check *c, uint64_t b);
/* Writes a printable form of name (escapes non-printable bytes). */
void fsck_escape(char *out, size_t out_len, const char *name, size_t len);

static inline int check_bit(const uint8_t *map, uint64_t i)
{
    return (map[i / 8] >> (i % 8)) & 1;
}
static inline void check_set_bit(uint8_t *map, uint64_t i)
{
    map[i / 8] |= (uint8_t)(1u << (i % 8));
}
static inline void check_clear_bit(uint8_t *map, uint64_t i)
{
    map[i / 8] &= (uint8_t)~(1u << (i % 8));
}

/* ---- sparse state (fsck/sparse.c) ---- */
int fsck_bits_init(struct check_bits *m, uint64_t nbits);      /* 0 or -ENOMEM */
void fsck_bits_reset(struct check_bits *m);                      /* all zero */
void fsck_bits_free(struct check_bits *m);
void fsck_bits_set(struct check_bits *m, uint64_t i);
void fsck_bits_clear(struct check_bits *m, uint64_t i);
/* The 64 bits from i (a multiple of 64) on, bit 0 = i. */
uint64_t fsck_bits_word(const struct check_bits *m, uint64_t i);
/* The first set bit in [from, end), or end. */
uint64_t fsck_bits_next(const struct check_bits *m, uint64_t from, uint64_t end);
uint64_t fsck_bits_count(const struct check_bits *m, uint64_t from, uint64_t end);
static inline int check_bits_get(const struct check_bits *m, uint64_t i)
{
    const uint8_t *p = m->pages[i >> CHECK_BITS_PAGE_SHIFT];
    return p && check_bit(p, i & ((1ull << CHECK_BITS_PAGE_SHIFT) - 1));
}
int fsck_ci_init(struct check *c);                                /* 0 or -ENOMEM */
void fsck_ci_reset(struct check *c);                              /* all zero */
void fsck_ci_free(struct check *c);
/* The record of inode ino (<= inode_count), allocating its page; on
 * allocation failure a scratch record and c->nomem. */
struct check_inode *fsck_ci(struct check *c, uint64_t ino);
/* The record of ino without allocating: a zero record where none is. */
const struct check_inode *fsck_ci_peek(const struct check *c, uint64_t ino);
/* The smallest inode >= ino that may have a non-zero record (its page
 * exists), or inode_count + 1: loops over records skip absent pages. */
uint64_t fsck_ci_next(const struct check *c, uint64_t ino);
/* Is block blk a hole of a sparse image file (never written, reads as
 * zeros)? Lets pass 1 skip the never-used part of an inode table without
 * faulting it in. 0 when unknown (no SEEK_DATA), for a block the -n
 * journal replay holds, and for a block device. */
int fsck_block_hole(struct check *c, uint64_t blk);
/* Forgets fsck_block_hole's cached answers (the image was written). */
void fsck_holes_reset(struct check *c);
/* The smallest inode >= ino set in the on-disk inode bitmap, or
 * inode_count + 1 (unreadable bitmap blocks count as clear). */
uint64_t fsck_next_inode_bit(struct check *c, uint64_t ino);

/* A record with a wrong checksum (fsck/record.c): sets its damaged fields
 * to safe values in *di and returns how many there were, or -1 if the
 * record is garbage (no valid type, or too much damage). entries: the
 * DT_* type every directory entry naming the inode gives (0: none known,
 * or they disagree), taken when the inode's own tree gives no type and the
 * record fits it (fsck_entries_type). */
int fsck_record_mend(struct check *c, uint64_t ino, struct mmapfs_disk_inode *di,
                     uint8_t entries);
/* Pass 2 notes the type of each entry naming an inode whose record is
 * corrupt (in check_inode.dtype, unused for such an inode); the type they
 * all give, or 0 (also for a valid inode). */
void fsck_note_entry_type(struct check_inode *ci, uint8_t type);
uint8_t fsck_entries_type(const struct check_inode *ci);
/* The tree type of the node at blk if it is a valid node of ino, else 0. */
uint16_t fsck_node_type(struct check *c, uint64_t ino, uint64_t blk);
/* Does the inline area hold what only a regular file or symlink has
 * (docs/FORMAT.md §6): flags EXTENTS with a first extent inside the data
 * area, or INLINE_DATA with 1..60 bytes and zeros after the size? The
 * tree root is not looked at. */
int fsck_inline_holds_file(const struct check *c, const struct mmapfs_disk_inode *di);
/* The flags a regular file's or symlink's inline area says it has
 * (fsck_inline_holds_file): the kind its flags name if that fits (EXTENTS
 * first when its bit is set), else the other; 0 when neither, or with a
 * tree root. */
uint32_t fsck_inline_flags_guess(const struct check *c, const struct mmapfs_disk_inode *di);
/* A mode whose type contradicts the inode's own tree root node (a
 * directory index under a file mode or a device's, a file's extent tree
 * under a directory's or a device's mode), or whose type is
 * invalid or has no data while the inline area holds a file's extents or
 * bytes: sets the type from the node (a regular file for the inline area)
 * in *di. 1 if changed, else 0. */
int fsck_record_type_from_tree(struct check *c, uint64_t ino, struct mmapfs_disk_inode *di);

/* Inode-resident data (docs/FORMAT.md §6), fsck/record.c. Are di's flags
 * usable: known bits, allowed by the superblock, at most one of the two
 * kinds, only for a file or symlink without a tree root? (0 flags: yes.) */
int fsck_inline_flags_ok(const struct check *c, const struct mmapfs_disk_inode *di);

/* In-inode xattrs (docs/FORMAT.md §6), fsck/record.c. Is di's xattr_area
 * valid (with MMAPFS_FEATURE_INCOMPAT_INODE_XATTR: entries within the
 * area, names, no repeats, zeros after the end; without it: all zero)? 1,
 * or 0 with the reason in msg (NULL: none wanted). Reads only the area. */
int fsck_ixattr_ok(const struct check *c, const struct mmapfs_disk_inode *di, char *msg,
                    size_t len);
/* Calls fn (a bt_walk item callback) for every used slot of an inline
 * extent area, in slot order; slots must be packed (a used slot after an
 * unused one: -EUCLEAN). Stops at and returns fn's non-zero result. */
int fsck_inline_extents(const struct mmapfs_disk_inode *di,
                         int (*fn)(void *ctx, uint64_t key, const void *val, size_t len),
                         void *ctx);
/* POSIX ACL values (fsck/acl.c), parsed as the filesystem does
 * (fs_acl_from_xattr). The name of the first invalid ACL of a validated
 * in-inode xattr area / of a validated xattr block, or NULL. */
const char *fsck_bad_acl_in_area(const uint8_t *area);
const char *fsck_bad_acl_in_block(struct check *c, uint64_t blk);
/* Removes inode ino's invalid ACL xattrs from di's area (the caller
 * writes di) and from its chain's blocks (written here; a block left
 * empty is unlinked). 0 or -errno. */
int fsck_drop_bad_acls(struct check *c, uint64_t ino, struct mmapfs_disk_inode *di);
/* Points di at a rebuilt tree: tree_root = root, inline extents dropped. */
void fsck_inline_to_tree(struct mmapfs_disk_inode *di, uint64_t root);

/* Opens c->path for the check (fsck/open.c): stat, open (read-only with
 * -n), image lock, engine (read-only with -n). On failure prints one line
 * naming the problem and what to do. *fd: the locked descriptor, or -1.
 * 0 or FSCK_EXIT_OPERATIONAL; call fsck_close in every case. */
int fsck_open(struct check *c, int *fd);
/* Closes what fsck_open and the in-memory replay opened. */
void fsck_close(struct check *c, int fd);

/* Reads the superblock into c->sb, validating it; mends one whose only
 * fault is its checksum, or takes the backup superblock in place of a
 * damaged one (fsck/super.c). 0 or FSCK_EXIT_* to stop with. */
int fsck_load_superblock(struct check *c, FILE *out);
/* Checks the backup superblock (feature compat 0x1) against c->sb: a
 * damaged or different backup is an error, rewritten from c->sb when
 * repairs are allowed (fsck/super.c). 0 or FSCK_EXIT_OPERATIONAL. */
int fsck_backup_superblock(struct check *c);

/* Multi-mount protection (fsck/mmp.c): with -n, a warning if the MMP
 * block shows a holder; for repairs, claims the block (it says FSCK until
 * fsck_mmp_release), refusing an image whose heartbeat is live. 0 or
 * FSCK_EXIT_OPERATIONAL. */
int fsck_mmp(struct check *c);
void fsck_mmp_release(struct check *c);

/* Passes. Each returns 0, or -ENOMEM / -EIO (operational failure). */
int fsck_pass_inodes(struct check *c);
int fsck_pass_duplicates(struct check *c);
int fsck_pass_dirs(struct check *c);
int fsck_pass_bitmaps(struct check *c);

/* ---- directory entries (fsck/dirent.c) ---- */

/* An entry in the form a repaired directory keeps. */
struct check_dent {
    uint64_t key;          /* 0 until assigned when rekey */
    uint64_t ino;
    uint8_t type;
    uint8_t name_len;
    uint8_t rekey;         /* the key does not match the name: a new one is needed */
    char name[MMAPFS_NAME_MAX];
};
enum { DENT_KEEP = 0, DENT_FIX = 1, DENT_DROP = 2 };
/* Checks one entry of directory dir (report: print each problem as an
 * error); fills *out with the repaired entry. Returns DENT_KEEP (entry is
 * right), DENT_FIX (*out differs: type, name or key) or DENT_DROP (entry
 * must go: bad value, target out of range, free, corrupt or the root). */
int fsck_dent_examine(struct check *c, uint64_t dir, uint64_t key, const void *val,
                       size_t len, int report, struct check_dent *out);
/* Strict check of an entry found in a leaf whose checksum is wrong: true
 * only if everything in it is consistent (key, name, target, type). */
int fsck_dent_trustworthy(struct check *c, uint64_t key, const void *val, size_t len);

/* ---- writes (fsck/io.c) ---- */

/* Every repair write and sync: mmio_write_at / mmio_sync, or the crash
 * simulation below. 0 or -errno. */
int fsck_io_write(struct check *c, uint64_t off, const void *buf, size_t len);

/* Validates xattr block blk of inode ino (range, magic, checksum, owner,
 * entries, a next pointer only with the chain feature); *next = its next
 * pointer. 0, or -1 with the problem described in msg (fsck/inodes.c). */
/* Does validated xattr block blk of an inode hold a name its valid
 * in-inode area holds too (fsck/inodes.c)? 1 or 0; with drop, such names
 * are removed from area. */
int fsck_xattr_block_in_inode(struct check *c, uint64_t blk, uint8_t *area, int drop);
int fsck_xattr_block(struct check *c, uint64_t ino, uint64_t blk, uint64_t *next, char *msg,
                      size_t len);
int fsck_io_sync(struct check *c);

/* ---- repair primitives (fsck/write.c) ---- */

/* A key/value pair for a tree being built; val points into caller memory. */
struct check_item {
    uint64_t key;
    const void *val;
    size_t seq;              /* insertion order (stable sort) */
    uint16_t len;
};
/* Growable item array with its own value arena. */
struct check_items {
    struct check_item *v;
    size_t n, cap;
    uint8_t **chunks;
    size_t nchunks, used;    /* bytes used in the last chunk */
};
/* Appends a copy of (key, val[len]). 0 or -ENOMEM. */
int fsck_items_add(struct check_items *it, uint64_t key, const void *val, size_t len);
/* Sorts by key (stable: equal keys keep their order). */
void fsck_items_sort(struct check_items *it);
void fsck_items_free(struct check_items *it);

/* Writes the ERROR flag before the first repair (once). 0 or -errno. */
int fsck_begin_repair(struct check *c);
/* Allocates up to want (>= 1) contiguous free blocks near goal: blocks of
 * the data area that no inode owns, the bitmap marks free (unless
 * trust_claims) and this round has not handed out. *got >= 1 on success; -ENOSPC if none is left. */
int fsck_alloc_run(struct check *c, uint64_t goal, uint64_t want, uint64_t *start,
                    uint64_t *got);
/* Gives back blocks allocated but not used (this round's reservation). */
void fsck_unalloc(struct check *c, uint64_t start, uint64_t len);
/* Blocks a tree of n items of vlen bytes each needs (bulk built). */
uint64_t fsck_tree_blocks(uint64_t n, size_t vlen);
/* Sets (on) or clears the on-disk block bitmap bits of [start, start+len). */
int fsck_write_block_bits(struct check *c, uint64_t start, uint64_t len, int on);
/* Rewrites xattr block blk's next pointer (and its checksum): cuts or
 * shortens a chain. 0 or -errno. */
int fsck_xattr_set_next(struct check *c, uint64_t blk, uint64_t next);
/* Sets or clears inode ino's on-disk inode bitmap bit. */
int fsck_write_inode_bit(struct check *c, uint64_t ino, int on);
/* Lowest free inode (bitmap clear, not used this round), bit set on disk. */
int fsck_alloc_inode(struct check *c, uint64_t *ino);
/* Writes inode ino's record with a fresh checksum. 0 or -errno. */
int fsck_write_inode(struct check *c, uint64_t ino, struct mmapfs_disk_inode *di);
/* Re-reads the superblock, lets edit() change it, writes it with a fresh
 * checksum and syncs. c->sb is refreshed. 0 or -errno. */
int fsck_write_super(struct check *c, void (*edit)(struct mmapfs_disk_superblock *, void *),
                      void *arg);
/* Builds a B+tree of owner/type holding items (sorted, unique keys) in
 * newly allocated blocks, written and marked in the block bitmap (not
 * synced). *root = 0 for no items; *nodes = blocks used. -ENOSPC leaves
 * nothing allocated that is marked on disk. */
int fsck_build_tree(struct check *c, uint64_t owner, uint16_t type,
                     const struct check_items *items, uint64_t *root, uint64_t *nodes);

/* ---- repairs ---- */

/* Runs the earliest repair phase that has work. Returns 1 if something
 * was written (another round must check it), 0 if nothing (more) could be
 * repaired, or -errno (operational failure). */
int fsck_repair(struct check *c);
/* Phase B: salvage corrupt trees (fsck/salvage.c). 1/0/-errno as above. */
int fsck_repair_salvage(struct check *c);
/* Phase C: blocks claimed twice (fsck/repair_dup.c). */
int fsck_repair_dups(struct check *c);
/* Phase D: directory rebuilds, lost+found (fsck/repair_dir.c). */
int fsck_repair_dirs(struct check *c);
/* Phase E: simple per-inode fixes, block bitmap, free counts. */
int fsck_apply_fixes(struct check *c);

#endif
