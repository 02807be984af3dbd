/*
 * Private interfaces of the directory index (dir.c), shared with namei.c,
 * readdir.c and the unit tests.
 *
 * A directory's entries live in its B+tree (type MMAPFS_TREE_DIR). An entry
 * for a name with 55-bit hash h has key (h << 8) | k, where k (0..255) is
 * the smallest suffix not used by another name with the same hash when the
 * entry was added (format.h). The functions below work on a bare struct
 * bt_tree and take the hash as a parameter, so tests can force collisions
 * on an in-memory tree; dir.c wraps them with mmapfs_name_hash().
 */
#ifndef MMAPFS_DIR_I_H
#define MMAPFS_DIR_I_H

#include <stddef.h>
#include <stdint.h>

#include "fs/btree.h"
#include "fs/format.h"

/* Largest encoded directory entry value. */
#define DIRENT_MAX_VALUE (sizeof(struct mmapfs_disk_dirent) + MMAPFS_NAME_MAX)

/* Bytes of a value holding an entry; room for the largest one. */
union dirent_buf {
    struct mmapfs_disk_dirent de;
    uint8_t bytes[DIRENT_MAX_VALUE];
};

/* Checks a value read from a directory tree: length, name length, ino
 * within [1, inode_count] (inode_count 0 = unchecked), a name without '/'
 * or NUL that is not "." or "..". 0 or -EUCLEAN. */
int fs_dirent_validate(const union dirent_buf *buf, size_t len, uint64_t inode_count);

/* Finds name among the keys of hash. Sets *key, *ino and *type (each may be
 * NULL). 0, -ENOENT, -EUCLEAN (bad entry), tree errors. */
int fs_dirent_lookup_hashed(struct bt_tree *t, uint64_t hash, const char *name, size_t len,
                         uint64_t inode_count, uint64_t *key, uint64_t *ino, uint8_t *type);

/* Inserts name with the smallest free suffix k of hash; *key (may be NULL)
 * receives the key used. -EEXIST if name is there, -ENOSPC when all 256
 * suffixes of hash are taken, tree errors. */
int fs_dirent_insert_hashed(struct bt_tree *t, uint64_t hash, const char *name, size_t len,
                         uint64_t inode_count, uint64_t ino, uint8_t type, uint64_t *key);

/* Removes name. 0, -ENOENT, tree errors. */
int fs_dirent_delete_hashed(struct bt_tree *t, uint64_t hash, const char *name, size_t len,
                         uint64_t inode_count);

/* Points name at (ino, type), keeping its key. 0, -ENOENT, tree errors. */
int fs_dirent_update_hashed(struct bt_tree *t, uint64_t hash, const char *name, size_t len,
                         uint64_t inode_count, uint64_t ino, uint8_t type);

/* fs_dir_find that also gives the entry's key, for fs_dir_remove_key (saves a
 * second search when an operation finds an entry and then removes it). */
struct fs;
struct mmapfs_disk_inode;
int fs_dir_find_key(struct fs *fs, uint64_t dir, const struct mmapfs_disk_inode *ddi,
                 const char *name, size_t len, uint64_t *key, uint64_t *ino, uint8_t *type);
/* Removes the entry with this key (found in the same journal operation);
 * updates ddi like fs_dir_remove. -ENOENT if there is none. */
int fs_dir_remove_key(struct fs *fs, uint64_t dir, struct mmapfs_disk_inode *ddi, uint64_t key);

/* Checks a name from a caller: 0, -EINVAL (empty or contains '/'),
 * -ENAMETOOLONG. *len receives strlen(name). */
int fs_dir_check_name(const char *name, size_t *len);

#endif
