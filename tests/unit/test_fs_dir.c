/*
 * test_fs_dir.c — directory index (src/fs/dir.c) and readdir (readdir.c).
 *
 *  - the hash-suffix logic (dir_i.h) on an in-memory B+tree, with forced
 *    hash collisions, including a full group of 256 names of one hash;
 *  - many names through the fs API, persistence across remount;
 *  - names whose real hashes collide, through the fs API;
 *  - readdir offsets (cookies): ".", "..", resumption, buffer-full rule,
 *    readdirplus references (and entries taken without one), and every
 *    entry removed while iterating in chunks of 100 (the "rm -r" pattern)
 *    on 100,000 entries;
 *  - one directory of 1,000,000 entries: create, random lookups, unlink half,
 *    readdir count, with timings printed.
 *
 * Sizes: MMAPFS_TEST_DIR_N overrides the 1,000,000 (and the ASan build uses
 * 20,000); MMAPFS_TEST_RM_N overrides the 100,000 (ASan: 10,000).
 * Images are sparse files from mkstemp in /tmp, removed by the teardown.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsck/fsck.h"
#include "fs/dir_i.h"
#include "fs/fs.h"
#include "fs/fs_i.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

#include "fs_fixture.h"

/* ==== image helpers ========================================================== */

/* No image yet: each test makes its own with img_create(); the teardown checks it. */
static int img_setup(void **state)
{
    static const struct img_config c = { .name = "dir", .check_at_teardown = 1 };
    return img_setup_config(state, &c);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t env_n(const char *name, uint64_t dflt, uint64_t asan_dflt)
{
    const char *s = getenv(name);
    if (s && *s)
        return strtoull(s, NULL, 0);
    return SANITIZED ? asan_dflt : dflt;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* ==== readdir collectors ===================================================== */

struct collect {
    unsigned max;          /* fill returns 1 after this many (0 = no limit) */
    unsigned n;
    char (*names)[MMAPFS_NAME_MAX + 1];
    uint64_t *inos;
    uint32_t *modes;
    uint32_t *nlinks;
    uint64_t *offs;
    unsigned cap;
    uint64_t last_off;
    uint64_t count_only;   /* counting mode: names not stored */
    uint64_t noref_ino;    /* fill takes this inode with FS_FILL_NOREF */
};

static int collect_fill(void *ctx, const char *name, const struct fs_stat *st, uint64_t next)
{
    struct collect *c = ctx;
    if (c->max && c->n >= c->max)
        return 1;
    if (c->names && c->n < c->cap) {
        snprintf(c->names[c->n], sizeof(c->names[0]), "%s", name);
        c->inos[c->n] = st->ino;
        c->modes[c->n] = st->mode;
        c->nlinks[c->n] = st->nlink;
        c->offs[c->n] = next;
    }
    c->n++;
    c->last_off = next;
    return c->noref_ino && st->ino == c->noref_ino ? FS_FILL_NOREF : 0;
}

static void collect_init(struct collect *c, unsigned cap, unsigned max)
{
    memset(c, 0, sizeof(*c));
    c->cap = cap;
    c->max = max;
    if (cap) {
        c->names = calloc(cap, sizeof(c->names[0]));
        c->inos = calloc(cap, sizeof(uint64_t));
        c->modes = calloc(cap, sizeof(uint32_t));
        c->nlinks = calloc(cap, sizeof(uint32_t));
        c->offs = calloc(cap, sizeof(uint64_t));
        assert_non_null(c->names);
        assert_non_null(c->inos);
        assert_non_null(c->modes);
        assert_non_null(c->nlinks);
        assert_non_null(c->offs);
    }
}

static void collect_free(struct collect *c)
{
    free(c->names);
    free(c->inos);
    free(c->modes);
    free(c->nlinks);
    free(c->offs);
}

/* Counts all entries of dir (including "." and ".."), in calls of 'chunk'. */
static uint64_t count_entries(struct fs *fs, uint64_t dir, unsigned chunk)
{
    uint64_t off = 0, total = 0;
    for (;;) {
        struct collect c;
        collect_init(&c, 0, chunk);
        assert_int_equal(fs_readdir(fs, dir, off, 0, collect_fill, &c), 0);
        if (c.n == 0)
            return total;
        total += c.n;
        off = c.last_off;
    }
}

/* ==== in-memory B+tree store for the hash-suffix tests ======================= */

#define MEM_BLOCKS 8192u

struct mem_store {
    uint8_t *blocks;
    uint8_t used[MEM_BLOCKS];
    unsigned nused;
};

static const void *mem_read(void *ctx, uint64_t blk)
{
    struct mem_store *m = ctx;
    if (blk == 0 || blk >= MEM_BLOCKS || !m->used[blk])
        return NULL;
    return m->blocks + blk * MMAPFS_BLOCK_SIZE;
}

static void *mem_write(void *ctx, uint64_t blk)
{
    return (void *)mem_read(ctx, blk);
}

static int mem_alloc(void *ctx, uint64_t goal, uint64_t *blk, void **out)
{
    struct mem_store *m = ctx;
    (void)goal;
    for (uint64_t b = 1; b < MEM_BLOCKS; b++) {
        if (!m->used[b]) {
            m->used[b] = 1;
            m->nused++;
            *blk = b;
            *out = m->blocks + b * MMAPFS_BLOCK_SIZE;
            memset(*out, 0, MMAPFS_BLOCK_SIZE);
            return 0;
        }
    }
    return -ENOSPC;
}

static void mem_free(void *ctx, uint64_t blk)
{
    struct mem_store *m = ctx;
    if (blk < MEM_BLOCKS && m->used[blk]) {
        m->used[blk] = 0;
        m->nused--;
    }
}

static void mem_tree(struct mem_store *m, struct bt_store *s, struct bt_tree *t)
{
    memset(m, 0, sizeof(*m));
    m->blocks = aligned_alloc(MMAPFS_BLOCK_SIZE, (size_t)MEM_BLOCKS * MMAPFS_BLOCK_SIZE);
    assert_non_null(m->blocks);
    *s = (struct bt_store){ m, mem_read, mem_write, mem_alloc, mem_free, NULL, NULL };
    *t = (struct bt_tree){ .store = s, .root = 0, .owner = 7, .type = MMAPFS_TREE_DIR };
}

/* ==== tests: hash suffixes ==================================================== */

/* Names sharing one hash get suffixes 0, 1, 2, ...; gaps are reused; a full
 * group of 256 gives -ENOSPC; neighbouring hashes do not interfere. */
static void test_suffix_collisions(void **state)
{
    (void)state;
    struct mem_store m;
    struct bt_store s;
    struct bt_tree t;
    const uint64_t H = 0x123456789abcdull;
    char name[32];
    uint64_t key, ino;
    uint8_t type;

    mem_tree(&m, &s, &t);
    /* neighbours on both sides of H, one of them with a name used under H */
    assert_int_equal(fs_dirent_insert_hashed(&t, H - 1, "n0", 2, 0, 50, DT_REG, &key), 0);
    assert_int_equal(key, (H - 1) << 8);
    assert_int_equal(fs_dirent_insert_hashed(&t, H + 1, "b", 1, 0, 51, DT_REG, &key), 0);
    assert_int_equal(key, (H + 1) << 8);

    for (unsigned i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "n%u", i);
        assert_int_equal(fs_dirent_insert_hashed(&t, H, name, strlen(name), 0, 100 + i,
                                              DT_REG, &key), 0);
        assert_int_equal(key, (H << 8) | i);
    }
    for (unsigned i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "n%u", i);
        assert_int_equal(fs_dirent_lookup_hashed(&t, H, name, strlen(name), 0, &key, &ino, &type), 0);
        assert_int_equal(key, (H << 8) | i);
        assert_int_equal(ino, 100 + i);
        assert_int_equal(type, DT_REG);
    }
    /* the neighbours are separate */
    assert_int_equal(fs_dirent_lookup_hashed(&t, H, "b", 1, 0, NULL, NULL, NULL), -ENOENT);
    assert_int_equal(fs_dirent_lookup_hashed(&t, H - 1, "n0", 2, 0, NULL, &ino, NULL), 0);
    assert_int_equal(ino, 50);
    assert_int_equal(fs_dirent_insert_hashed(&t, H, "n3", 2, 0, 1, DT_REG, NULL), -EEXIST);

    /* a removed suffix leaves a gap: others keep their keys, the gap is reused */
    assert_int_equal(fs_dirent_delete_hashed(&t, H, "n3", 2, 0), 0);
    assert_int_equal(fs_dirent_lookup_hashed(&t, H, "n3", 2, 0, NULL, NULL, NULL), -ENOENT);
    assert_int_equal(fs_dirent_delete_hashed(&t, H, "n3", 2, 0), -ENOENT);
    assert_int_equal(fs_dirent_lookup_hashed(&t, H, "n4", 2, 0, &key, NULL, NULL), 0);
    assert_int_equal(key, (H << 8) | 4);
    assert_int_equal(fs_dirent_insert_hashed(&t, H, "zz", 2, 0, 300, DT_DIR, &key), 0);
    assert_int_equal(key, (H << 8) | 3);

    /* update keeps the key, changes ino and type */
    assert_int_equal(fs_dirent_update_hashed(&t, H, "n5", 2, 0, 999, DT_DIR), 0);
    assert_int_equal(fs_dirent_lookup_hashed(&t, H, "n5", 2, 0, &key, &ino, &type), 0);
    assert_int_equal(key, (H << 8) | 5);
    assert_int_equal(ino, 999);
    assert_int_equal(type, DT_DIR);
    assert_int_equal(fs_dirent_update_hashed(&t, H, "nope", 4, 0, 1, DT_REG), -ENOENT);

    /* fill the group: 256 names (long ones, so the group spans leaves) */
    char longname[200];
    memset(longname, 'x', sizeof(longname));
    for (unsigned i = 10; i < 256; i++) {
        snprintf(longname, sizeof(longname), "long-%03u", i);
        longname[strlen(longname)] = 'x';
        assert_int_equal(fs_dirent_insert_hashed(&t, H, longname, 150, 0, 1000 + i, DT_REG, &key), 0);
        assert_int_equal(key, (H << 8) | i);
    }
    assert_int_equal(fs_dirent_insert_hashed(&t, H, "one-too-many", 12, 0, 5, DT_REG, NULL), -ENOSPC);
    for (unsigned i = 10; i < 256; i++) {
        snprintf(longname, sizeof(longname), "long-%03u", i);
        longname[strlen(longname)] = 'x';
        assert_int_equal(fs_dirent_lookup_hashed(&t, H, longname, 150, 0, &key, &ino, NULL), 0);
        assert_int_equal(key, (H << 8) | i);
        assert_int_equal(ino, 1000 + i);
    }
    /* the highest possible hash keeps keys below 2^63 (room for the +3) */
    const uint64_t HMAX = (1ull << 55) - 1;
    assert_int_equal(fs_dirent_insert_hashed(&t, HMAX, "top", 3, 0, 7, DT_REG, &key), 0);
    assert_true(key + 3 > key && key < (1ull << 63));
    assert_int_equal(fs_dirent_lookup_hashed(&t, HMAX, "top", 3, 0, NULL, &ino, NULL), 0);
    assert_int_equal(ino, 7);

    /* ino range check */
    assert_int_equal(fs_dirent_lookup_hashed(&t, H, "n4", 2, 50, NULL, NULL, NULL), -EUCLEAN);
    free(m.blocks);
}

/* Real hashes with many names (tree of several levels), plus one collision
 * group inserted in the middle of it; everything found, then removed. */
static void test_suffix_in_big_tree(void **state)
{
    (void)state;
    struct mem_store m;
    struct bt_store s;
    struct bt_tree t;
    char name[64];
    uint64_t ino;
    const unsigned N = 20000;

    mem_tree(&m, &s, &t);
    for (unsigned i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "file-%u-with-a-longer-name", i);
        assert_int_equal(fs_dirent_insert_hashed(&t, mmapfs_name_hash(name, strlen(name)), name,
                                              strlen(name), 0, i + 1, DT_REG, NULL), 0);
    }
    uint64_t H = mmapfs_name_hash("file-77-with-a-longer-name", 26);
    for (unsigned i = 0; i < 40; i++) {
        snprintf(name, sizeof(name), "collider-%u", i);
        assert_int_equal(fs_dirent_insert_hashed(&t, H, name, strlen(name), 0, 100000 + i,
                                              DT_REG, NULL), 0);
    }
    for (unsigned i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "file-%u-with-a-longer-name", i);
        assert_int_equal(fs_dirent_lookup_hashed(&t, mmapfs_name_hash(name, strlen(name)), name,
                                              strlen(name), 0, NULL, &ino, NULL), 0);
        assert_int_equal(ino, i + 1);
    }
    for (unsigned i = 0; i < 40; i++) {
        snprintf(name, sizeof(name), "collider-%u", i);
        assert_int_equal(fs_dirent_lookup_hashed(&t, H, name, strlen(name), 0, NULL, &ino, NULL), 0);
        assert_int_equal(ino, 100000 + i);
        assert_int_equal(fs_dirent_delete_hashed(&t, H, name, strlen(name), 0), 0);
    }
    for (unsigned i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "file-%u-with-a-longer-name", i);
        assert_int_equal(fs_dirent_delete_hashed(&t, mmapfs_name_hash(name, strlen(name)), name,
                                              strlen(name), 0), 0);
    }
    assert_int_equal(t.root, 0);
    assert_int_equal(m.nused, 0);
    free(m.blocks);
}

/* fs_dirent_validate and fs_dir_check_name reject what they must. */
static void test_entry_and_name_checks(void **state)
{
    (void)state;
    union dirent_buf b;
    size_t len;

    memset(&b, 0, sizeof(b));
    b.de.ino = 5;
    b.de.type = DT_REG;
    b.de.name_len = 3;
    memcpy(b.de.name, "abc", 3);
    assert_int_equal(fs_dirent_validate(&b, 13, 10), 0);
    assert_int_equal(fs_dirent_validate(&b, 12, 10), -EUCLEAN);   /* length mismatch */
    assert_int_equal(fs_dirent_validate(&b, 9, 10), -EUCLEAN);    /* shorter than header */
    assert_int_equal(fs_dirent_validate(&b, 13, 4), -EUCLEAN);    /* ino out of range */
    b.de.ino = 0;
    assert_int_equal(fs_dirent_validate(&b, 13, 10), -EUCLEAN);
    b.de.ino = 5;
    b.de.name_len = 0;
    assert_int_equal(fs_dirent_validate(&b, 10, 10), -EUCLEAN);

    char n256[257];
    memset(n256, 'a', 256);
    n256[256] = 0;
    assert_int_equal(fs_dir_check_name(n256, &len), -ENAMETOOLONG);
    n256[255] = 0;
    assert_int_equal(fs_dir_check_name(n256, &len), 0);
    assert_int_equal(len, 255);
    assert_int_equal(fs_dir_check_name("", &len), -EINVAL);
    assert_int_equal(fs_dir_check_name("a/b", &len), -EINVAL);
}

/* ==== tests: through the fs ================================================== */

/* Name i of test_many_names: a unique "i." prefix, then arbitrary bytes
 * (1..255, never '/') up to a length between 2 and 255. */
static void many_name(unsigned i, char *out)
{
    unsigned p = (unsigned)snprintf(out, 16, "%u.", i);
    unsigned len = 1 + (i * 37) % 255;
    uint64_t s = i * 0x9e3779b97f4a7c15ull + 1;

    if (len < p)
        len = p;
    for (unsigned j = p; j < len; j++) {
        char c = (char)(1 + xorshift(&s) % 255);
        out[j] = c == '/' ? '_' : c;
    }
    out[len] = '\0';
}

/* Thousands of names of every length: added, found, removed, listed, and
 * still there after a remount; dir size and inode state follow. */
static void test_many_names(void **state)
{
    struct img *m = *state;
    const unsigned N = 3000;
    char name[MMAPFS_NAME_MAX + 1];
    uint64_t *inos = calloc(N, sizeof(uint64_t));
    struct fs_stat st;

    img_create(m, 256ull << 20, 0);
    assert_int_equal(fs_mkdir(m->fs, MMAPFS_ROOT_INO, "d", 0755, &cred, &st), 0);
    uint64_t d = st.ino;
    fs_forget(m->fs, d, 1);
    for (unsigned i = 0; i < N; i++) {
        many_name(i, name);
        inos[i] = mkfile(m->fs, d, name);
    }
    assert_int_equal(fs_getattr(m->fs, d, &st), 0);
    assert_int_equal(st.size, N);
    assert_int_equal(st.nlink, 2);
    assert_true(st.blocks512 >= 8);            /* the index occupies blocks */

    for (unsigned i = 0; i < N; i += 3) {
        many_name(i, name);
        assert_int_equal(fs_unlink(m->fs, d, name), 0);
    }
    img_unmount(m);
    img_mount(m);

    unsigned left = 0;
    for (unsigned i = 0; i < N; i++) {
        many_name(i, name);
        int64_t r = lookup(m->fs, d, name);
        if (i % 3 == 0) {
            assert_int_equal(r, -ENOENT);
            assert_int_equal(fs_getattr(m->fs, inos[i], &st), -ENOENT);
        } else {
            assert_int_equal(r, (int64_t)inos[i]);
            left++;
        }
    }
    assert_int_equal(fs_getattr(m->fs, d, &st), 0);
    assert_int_equal(st.size, left);

    /* the internal API agrees */
    struct mmapfs_disk_inode ddi;
    uint64_t ino;
    uint8_t type;
    jnl_lock(m->fs->jnl);
    assert_int_equal(fs_inode_get(m->fs, d, &ddi), 0);
    many_name(1, name);
    assert_int_equal(fs_dir_find(m->fs, d, &ddi, name, strlen(name), &ino, &type), 0);
    assert_int_equal(ino, inos[1]);
    assert_int_equal(type, DT_REG);
    assert_int_equal(fs_dir_is_empty(&ddi), 0);
    jnl_unlock(m->fs->jnl);

    /* readdir lists exactly the survivors, each once, in offset order */
    struct collect c;
    collect_init(&c, N + 2, 0);
    assert_int_equal(fs_readdir(m->fs, d, 0, 0, collect_fill, &c), 0);
    assert_int_equal(c.n, left + 2);
    assert_string_equal(c.names[0], ".");
    assert_string_equal(c.names[1], "..");
    assert_int_equal(c.inos[1], MMAPFS_ROOT_INO);
    for (unsigned k = 2; k < c.n; k++) {
        assert_true(c.offs[k] > c.offs[k - 1]);
        assert_int_equal(c.modes[k] & S_IFMT, S_IFREG);
        int64_t r = lookup(m->fs, d, c.names[k]);
        assert_int_equal(r, (int64_t)c.inos[k]);
    }
    collect_free(&c);
    free(inos);
}

/* Pairs of 9-byte names with equal 55-bit hashes (FNV-1a 64 folded), found
 * by a birthday search over "h%08x": the suffix logic on real names, through
 * the fs API, rather than with a forced hash on a bare tree. */
static const char *const colliding[][2] = {
    { "h2b3d48cb", "h741f543e" },
    { "h42de904b", "hce6099a7" },
    { "h00868e95", "h86d20ee8" },
    { "h08b0a512", "hcef3b00d" },
};

/* The readdir offset (cookie) of each of names[0..n) in dir; 0 if absent,
 * and a name listed twice fails the test. */
static void cookies_of(struct fs *fs, uint64_t dir, const char *const *names, unsigned n,
                       uint64_t *offs)
{
    struct collect c;
    collect_init(&c, 64, 0);
    assert_int_equal(fs_readdir(fs, dir, 0, 0, collect_fill, &c), 0);
    assert_true(c.n <= c.cap);
    for (unsigned i = 0; i < n; i++) {
        offs[i] = 0;
        for (unsigned k = 0; k < c.n; k++) {
            if (strcmp(c.names[k], names[i]) == 0) {
                assert_int_equal(offs[i], 0);
                offs[i] = c.offs[k];
            }
        }
    }
    collect_free(&c);
}

/* Names of one real hash: the second gets suffix 1 (readdir offset
 * (hash << 8 | 1) + 3), either is found and removed without the other, a
 * freed suffix is reused, rename/link between them and a directory
 * replacing its colliding empty sibling keep every count right; all of it
 * survives a remount and the teardown's fsck is clean. */
static void test_real_collisions(void **state)
{
    struct img *m = *state;
    struct fs_stat st;
    uint64_t offs[2];

    for (unsigned i = 0; i < sizeof(colliding) / sizeof(colliding[0]); i++)
        assert_int_equal(mmapfs_name_hash(colliding[i][0], 9),
                         mmapfs_name_hash(colliding[i][1], 9));
    const char *a = colliding[0][0], *b = colliding[0][1];
    uint64_t h = mmapfs_name_hash(a, 9);

    img_create(m, 64ull << 20, 0);
    uint64_t d = mkdirectory(m->fs, MMAPFS_ROOT_INO, "d");
    uint64_t ia = mkfile(m->fs, d, a), ib = mkfile(m->fs, d, b);
    cookies_of(m->fs, d, colliding[0], 2, offs);
    assert_int_equal(offs[0], (h << 8 | 0) + 3);
    assert_int_equal(offs[1], (h << 8 | 1) + 3);
    assert_int_equal(lookup(m->fs, d, a), (int64_t)ia);
    assert_int_equal(lookup(m->fs, d, b), (int64_t)ib);

    /* the first goes: the second keeps its key; a new first takes suffix 0 */
    assert_int_equal(fs_unlink(m->fs, d, a), 0);
    assert_int_equal(lookup(m->fs, d, a), -ENOENT);
    assert_int_equal(lookup(m->fs, d, b), (int64_t)ib);
    ia = mkfile(m->fs, d, a);
    cookies_of(m->fs, d, colliding[0], 2, offs);
    assert_int_equal(offs[0], (h << 8 | 0) + 3);
    assert_int_equal(offs[1], (h << 8 | 1) + 3);

    /* rename onto the colliding name replaces it; and back to a free one */
    assert_int_equal(fs_rename(m->fs, d, a, d, b, 0), 0);
    assert_int_equal(lookup(m->fs, d, a), -ENOENT);
    assert_int_equal(lookup(m->fs, d, b), (int64_t)ia);
    assert_int_equal(fs_getattr(m->fs, ib, &st), -ENOENT);
    assert_int_equal(fs_rename(m->fs, d, b, d, a, 0), 0);
    assert_int_equal(lookup(m->fs, d, a), (int64_t)ia);
    assert_int_equal(lookup(m->fs, d, b), -ENOENT);

    /* a hard link under the colliding name, then a rename between the two
     * names of one inode, which changes nothing */
    assert_int_equal(fs_link(m->fs, ia, d, b, &st), 0);
    fs_forget(m->fs, ia, 1);
    assert_int_equal(attr(m->fs, ia).nlink, 2);
    assert_int_equal(fs_rename(m->fs, d, a, d, b, 0), 0);
    assert_int_equal(lookup(m->fs, d, a), (int64_t)ia);
    assert_int_equal(lookup(m->fs, d, b), (int64_t)ia);
    assert_int_equal(attr(m->fs, ia).nlink, 2);

    /* directories: one replaces its empty colliding sibling */
    const char *x = colliding[1][0], *y = colliding[1][1];
    uint64_t ix = mkdirectory(m->fs, d, x);
    mkdirectory(m->fs, d, y);
    assert_int_equal(attr(m->fs, d).nlink, 4);
    assert_int_equal(fs_rename(m->fs, d, x, d, y, 0), 0);
    assert_int_equal(lookup(m->fs, d, x), -ENOENT);
    assert_int_equal(lookup(m->fs, d, y), (int64_t)ix);
    assert_int_equal(attr(m->fs, d).nlink, 3);

    /* symlinks under both names of the other pairs */
    for (unsigned i = 2; i < 4; i++)
        for (unsigned j = 0; j < 2; j++) {
            assert_int_equal(fs_symlink(m->fs, d, colliding[i][j], colliding[i][j], &cred, &st), 0);
            fs_forget(m->fs, st.ino, 1);
        }

    img_remount(m);
    assert_int_equal(lookup(m->fs, d, a), (int64_t)ia);
    assert_int_equal(lookup(m->fs, d, b), (int64_t)ia);
    assert_int_equal(lookup(m->fs, d, y), (int64_t)ix);
    assert_int_equal(attr(m->fs, d).size, 7);
    for (unsigned i = 2; i < 4; i++)
        for (unsigned j = 0; j < 2; j++) {
            char target[16];
            int64_t ino = lookup(m->fs, d, colliding[i][j]);
            assert_true(ino > 0);
            assert_int_equal(fs_readlink(m->fs, (uint64_t)ino, target, sizeof(target)), 9);
            assert_memory_equal(target, colliding[i][j], 9);
        }
    for (unsigned i = 2; i < 4; i++) {
        cookies_of(m->fs, d, colliding[i], 2, offs);
        assert_int_equal(offs[1], offs[0] + 1);
    }
    assert_int_equal(count_entries(m->fs, d, 3), 7 + 2);
}

/* ".", "..", offsets 1 and 2, resumption after a full buffer, plus mode. */
static void test_readdir_offsets(void **state)
{
    struct img *m = *state;
    struct fs_stat st;
    struct collect c;

    img_create(m, 64ull << 20, 0);
    assert_int_equal(fs_mkdir(m->fs, MMAPFS_ROOT_INO, "d", 0755, &cred, &st), 0);
    uint64_t d = st.ino;
    fs_forget(m->fs, d, 1);
    assert_int_equal(fs_mkdir(m->fs, d, "sub", 0755, &cred, &st), 0);
    fs_forget(m->fs, st.ino, 1);
    for (unsigned i = 0; i < 10; i++) {
        char name[16];
        snprintf(name, sizeof(name), "f%u", i);
        mkfile(m->fs, d, name);
    }
    /* empty directory: only . and .. */
    collect_init(&c, 8, 0);
    assert_int_equal(fs_readdir(m->fs, MMAPFS_ROOT_INO, 0, 0, collect_fill, &c), 0);
    assert_string_equal(c.names[0], ".");
    assert_int_equal(c.offs[0], 1);
    assert_int_equal(c.inos[0], MMAPFS_ROOT_INO);
    assert_string_equal(c.names[1], "..");
    assert_int_equal(c.offs[1], 2);
    assert_int_equal(c.inos[1], MMAPFS_ROOT_INO);    /* the root is its own parent */
    assert_int_equal(c.modes[1] & S_IFMT, S_IFDIR);
    collect_free(&c);

    /* full listing */
    struct collect all;
    collect_init(&all, 32, 0);
    assert_int_equal(fs_readdir(m->fs, d, 0, 0, collect_fill, &all), 0);
    assert_int_equal(all.n, 13);
    assert_int_equal(all.inos[1], MMAPFS_ROOT_INO);

    /* buffer full after 1 entry, then resumed one entry at a time */
    uint64_t off = 0;
    for (unsigned k = 0; k < 13; k++) {
        collect_init(&c, 4, 1);
        assert_int_equal(fs_readdir(m->fs, d, off, 0, collect_fill, &c), 0);
        assert_int_equal(c.n, 1);
        assert_string_equal(c.names[0], all.names[k]);
        assert_int_equal(c.offs[0], all.offs[k]);
        off = c.offs[0];
        collect_free(&c);
    }
    collect_init(&c, 4, 0);
    assert_int_equal(fs_readdir(m->fs, d, off, 0, collect_fill, &c), 0);
    assert_int_equal(c.n, 0);
    collect_free(&c);
    /* resuming at offset 1 gives ".." first; at 2 the first entry */
    collect_init(&c, 32, 0);
    assert_int_equal(fs_readdir(m->fs, d, 1, 0, collect_fill, &c), 0);
    assert_int_equal(c.n, 12);
    assert_string_equal(c.names[0], "..");
    collect_free(&c);
    collect_init(&c, 32, 0);
    assert_int_equal(fs_readdir(m->fs, d, 2, 0, collect_fill, &c), 0);
    assert_int_equal(c.n, 11);
    assert_string_equal(c.names[0], all.names[2]);
    collect_free(&c);
    /* a huge offset is simply the end */
    collect_init(&c, 4, 0);
    assert_int_equal(fs_readdir(m->fs, d, UINT64_MAX, 0, collect_fill, &c), 0);
    assert_int_equal(c.n, 0);
    collect_free(&c);

    /* plus: full stats, one reference per entry taken (not . and ..) */
    collect_init(&c, 32, 5);
    assert_int_equal(fs_readdir(m->fs, d, 0, 1, collect_fill, &c), 0);
    assert_int_equal(c.n, 5);
    jnl_lock(m->fs->jnl);
    assert_int_equal(fs_icache_refs(m->fs, d), 0);
    for (unsigned k = 2; k < 5; k++)
        assert_int_equal(fs_icache_refs(m->fs, c.inos[k]), 1);
    assert_int_equal(fs_icache_refs(m->fs, all.inos[5]), 0);   /* refused by fill */
    jnl_unlock(m->fs->jnl);
    for (unsigned k = 2; k < 5; k++) {
        assert_int_equal(fs_getattr(m->fs, c.inos[k], &st), 0);
        assert_int_equal(c.modes[k], st.mode);
        fs_forget(m->fs, c.inos[k], 1);
    }
    collect_free(&c);

    /* plus, an entry taken without a reference (FS_FILL_NOREF: the FUSE
     * layer lists it without attributes): listed, not referenced */
    collect_init(&c, 32, 5);
    c.noref_ino = all.inos[3];
    assert_int_equal(fs_readdir(m->fs, d, 0, 1, collect_fill, &c), 0);
    assert_int_equal(c.n, 5);
    assert_int_equal(c.inos[3], all.inos[3]);
    uint64_t refs[3];
    jnl_lock(m->fs->jnl);       /* read under the lock, checked after it */
    for (unsigned k = 0; k < 3; k++)
        refs[k] = fs_icache_refs(m->fs, c.inos[2 + k]);
    jnl_unlock(m->fs->jnl);
    assert_int_equal(refs[0], 1);
    assert_int_equal(refs[1], 0);
    assert_int_equal(refs[2], 1);
    fs_forget(m->fs, c.inos[2], 1);
    fs_forget(m->fs, c.inos[4], 1);
    collect_free(&c);

    /* FS_LIST_NEW_ATTRS: an inode that holds a lookup reference (the
     * kernel caches it) comes without attributes (nlink 0, the type only)
     * and takes no reference even when fill takes it with 0; the others,
     * and "." and "..", come complete, and only the others take one */
    assert_int_equal(fs_lookup(m->fs, d, all.names[3], &st), 0);   /* keeps its reference */
    assert_int_equal(st.ino, all.inos[3]);
    collect_init(&c, 32, 5);
    assert_int_equal(fs_readdir(m->fs, d, 0, FS_LIST_NEW_ATTRS, collect_fill, &c), 0);
    assert_int_equal(c.n, 5);
    assert_true(c.nlinks[0] >= 2 && c.nlinks[1] >= 2);        /* . and .. */
    assert_int_equal(c.inos[3], all.inos[3]);
    assert_int_equal(c.nlinks[3], 0);
    assert_int_equal(c.modes[3], all.modes[3] & S_IFMT);
    assert_int_equal(c.modes[3] & ~S_IFMT, 0);
    assert_true(c.nlinks[2] >= 1 && c.nlinks[4] >= 1);
    assert_true((c.modes[2] & ~S_IFMT) != 0);
    jnl_lock(m->fs->jnl);
    for (unsigned k = 0; k < 3; k++)
        refs[k] = fs_icache_refs(m->fs, c.inos[2 + k]);
    uint64_t dir_refs = fs_icache_refs(m->fs, d);
    jnl_unlock(m->fs->jnl);
    assert_int_equal(refs[0], 1);
    assert_int_equal(refs[1], 1);                               /* the lookup's */
    assert_int_equal(refs[2], 1);
    assert_int_equal(dir_refs, 0);
    fs_forget(m->fs, c.inos[2], 1);
    fs_forget(m->fs, c.inos[3], 1);
    fs_forget(m->fs, c.inos[4], 1);
    collect_free(&c);

    /* ".." of a subdirectory is its parent; readdir of a file is ENOTDIR */
    assert_int_equal(fs_lookup(m->fs, d, "sub", &st), 0);
    uint64_t sub = st.ino;
    fs_forget(m->fs, sub, 1);
    collect_init(&c, 4, 0);
    assert_int_equal(fs_readdir(m->fs, sub, 0, 1, collect_fill, &c), 0);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.inos[0], sub);
    assert_int_equal(c.inos[1], d);
    collect_free(&c);
    int64_t f0 = lookup(m->fs, d, "f0");
    assert_true(f0 > 0);
    collect_init(&c, 4, 0);
    assert_int_equal(fs_readdir(m->fs, (uint64_t)f0, 0, 0, collect_fill, &c), -ENOTDIR);
    collect_free(&c);
    collect_free(&all);
}

/* The "rm -r" pattern: read 100 entries, remove them, continue from the last
 * cookie; every entry must be seen and removed exactly once. */
static void test_readdir_remove_while_iterating(void **state)
{
    struct img *m = *state;
    const unsigned N = (unsigned)env_n("MMAPFS_TEST_RM_N", 100000, 10000);
    struct fs_stat st;
    char name[32];

    img_create(m, 1ull << 30, N + 1024);
    assert_int_equal(fs_mkdir(m->fs, MMAPFS_ROOT_INO, "big", 0755, &cred, &st), 0);
    uint64_t d = st.ino;
    fs_forget(m->fs, d, 1);
    double t0 = now_s();
    for (unsigned i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "entry-%u", i);
        mkfile(m->fs, d, name);
    }
    double t1 = now_s();

    uint8_t *seen = calloc(N, 1);
    uint64_t off = 0, removed = 0, calls = 0;
    for (;;) {
        struct collect c;
        collect_init(&c, 100, 100);
        assert_int_equal(fs_readdir(m->fs, d, off, 0, collect_fill, &c), 0);
        calls++;
        if (c.n == 0) {
            collect_free(&c);
            break;
        }
        off = c.last_off;
        for (unsigned k = 0; k < c.n; k++) {
            if (!strcmp(c.names[k], ".") || !strcmp(c.names[k], ".."))
                continue;
            unsigned i;
            assert_int_equal(sscanf(c.names[k], "entry-%u", &i), 1);
            assert_true(i < N);
            assert_int_equal(seen[i], 0);
            seen[i] = 1;
            assert_int_equal(fs_unlink(m->fs, d, c.names[k]), 0);
            removed++;
        }
        collect_free(&c);
    }
    double t2 = now_s();
    assert_int_equal(removed, N);
    assert_int_equal(fs_getattr(m->fs, d, &st), 0);
    assert_int_equal(st.size, 0);
    assert_int_equal(count_entries(m->fs, d, 1000), 2);
    assert_int_equal(fs_rmdir(m->fs, MMAPFS_ROOT_INO, "big"), 0);
    print_message("    rm -r pattern, %u entries: create %.2f s, read+unlink %.2f s (%llu calls)\n",
                  N, t1 - t0, t2 - t1, (unsigned long long)calls);
    free(seen);
}

/* One directory of 1,000,000 entries: create, random lookups, unlink half,
 * count with readdir, remount and count again. Timings are printed. */
static void test_million_entries(void **state)
{
    struct img *m = *state;
    const uint64_t N = env_n("MMAPFS_TEST_DIR_N", 1000000, 20000);
    struct fs_stat st;
    char name[32];
    uint64_t seed = 12345;

    img_create(m, 4ull << 30, N + 1024);
    assert_int_equal(fs_mkdir(m->fs, MMAPFS_ROOT_INO, "huge", 0755, &cred, &st), 0);
    uint64_t d = st.ino;
    fs_forget(m->fs, d, 1);

    double t0 = now_s();
    for (uint64_t i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "f%07llu", (unsigned long long)i);
        mkfile(m->fs, d, name);
    }
    double t1 = now_s();
    const unsigned LOOKUPS = 100000;
    for (unsigned k = 0; k < LOOKUPS; k++) {
        uint64_t i = xorshift(&seed) % N;
        snprintf(name, sizeof(name), "f%07llu", (unsigned long long)i);
        assert_true(lookup(m->fs, d, name) > 0);
    }
    assert_int_equal(lookup(m->fs, d, "missing"), -ENOENT);
    double t2 = now_s();
    for (uint64_t i = 0; i < N; i += 2) {
        snprintf(name, sizeof(name), "f%07llu", (unsigned long long)i);
        assert_int_equal(fs_unlink(m->fs, d, name), 0);
    }
    double t3 = now_s();
    uint64_t n = count_entries(m->fs, d, 1000);
    double t4 = now_s();
    assert_int_equal(n, N / 2 + 2);
    assert_int_equal(fs_getattr(m->fs, d, &st), 0);
    assert_int_equal(st.size, N / 2);
    for (unsigned k = 0; k < 1000; k++) {
        uint64_t i = xorshift(&seed) % N;
        snprintf(name, sizeof(name), "f%07llu", (unsigned long long)i);
        assert_int_equal(lookup(m->fs, d, name) > 0, i % 2 == 1);
    }
    img_unmount(m);
    double t5 = now_s();
    img_mount(m);
    assert_int_equal(count_entries(m->fs, d, 4096), N / 2 + 2);
    double t6 = now_s();
    print_message("    %llu entries: create %.2f s (%.1f us/op), %u lookups %.2f s (%.1f us/op), "
                  "unlink half %.2f s, readdir %llu %.2f s, unmount %.2f s, remount+readdir %.2f s\n",
                  (unsigned long long)N, t1 - t0, (t1 - t0) * 1e6 / (double)N,
                  LOOKUPS, t2 - t1, (t2 - t1) * 1e6 / LOOKUPS, t3 - t2,
                  (unsigned long long)n, t4 - t3, t5 - t4, t6 - t5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_suffix_collisions),
        cmocka_unit_test(test_suffix_in_big_tree),
        cmocka_unit_test(test_entry_and_name_checks),
        cmocka_unit_test_setup_teardown(test_many_names, img_setup, img_teardown),
        cmocka_unit_test_setup_teardown(test_real_collisions, img_setup, img_teardown),
        cmocka_unit_test_setup_teardown(test_readdir_offsets, img_setup, img_teardown),
        cmocka_unit_test_setup_teardown(test_readdir_remove_while_iterating, img_setup,
                                        img_teardown),
        cmocka_unit_test_setup_teardown(test_million_entries, img_setup, img_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
